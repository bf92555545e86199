//! The codecs of the PCM path: one encoder or decoder per leg direction,
//! chosen from the negotiated [`CodecSpec`], over legato-dsp's codecs.

use legato_dsp::codec::g711::{self, G711, Law};
use legato_dsp::codec::g722::{G722Decoder, G722Encoder};
use legato_dsp::codec::opus::{OpusApplication, OpusDecoder, OpusEncoder};
use legato_dsp::codec::{CodecError, Decoder as _, Encoder as _};
use legato_dsp::time::ClockRate;

pub(crate) use crate::sdp::CodecKind;

/// The rate of the PCM `kind` codes (G.722 codes 16 kHz audio on an 8 kHz
/// RTP clock, RFC 3551 §4.5.2).
pub(crate) fn audio_rate(kind: CodecKind) -> ClockRate {
    match kind {
        CodecKind::Pcmu | CodecKind::Pcma => ClockRate::HZ_8000,
        CodecKind::G722 => ClockRate::HZ_16000,
        CodecKind::Opus => ClockRate::HZ_48000,
    }
}

/// RTP timestamp units per audio sample of `kind`, as a fraction
/// (numerator, denominator).
pub(crate) fn rtp_per_sample(kind: CodecKind) -> (u32, u32) {
    match kind {
        CodecKind::G722 => (1, 2),
        _ => (1, 1),
    }
}

/// Opus bit rate legato encodes at (RFC 7587 §3.1.1: 24-32 kbit/s is
/// fullband speech quality); lowered to the peer's maxaveragebitrate.
pub(crate) const OPUS_BITRATE: u32 = 32_000;

/// Opus encoder complexity (0-10). With opus-rs, complexity 5 in audio
/// mode costs about a fifth of complexity 10 in VoIP mode per frame
/// (63 µs against 341 µs at 48 kHz on this project's machine, see
/// benches/README.md "Opus encoder against libopus") and keeps the bit rate
/// on target (VoIP mode overshoots by 15-50 %), at a quality that still
/// keeps the waveform (SNR above 20 dB on speech-band tones at 32 kbit/s).
const OPUS_COMPLEXITY: u8 = 5;

/// A decoder for one received stream. G.711 stays inline (it is the
/// common case, and its state is read every tick); the others are boxed.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "the G.711 state inline saves a pointer chase per tick; the enum lives in a boxed PcmIn"
)]
pub(crate) enum AudioDecoder {
    G711(G711),
    G722(Box<G722Decoder>),
    Opus(Box<OpusDecoder>),
}

impl AudioDecoder {
    pub(crate) fn new(kind: CodecKind) -> Result<Self, CodecError> {
        Ok(match kind {
            CodecKind::Pcmu => Self::G711(G711::new(Law::Ulaw)),
            CodecKind::Pcma => Self::G711(G711::new(Law::Alaw)),
            CodecKind::G722 => Self::G722(Box::default()),
            CodecKind::Opus => Self::Opus(Box::new(OpusDecoder::new(ClockRate::HZ_48000)?)),
        })
    }

    /// Decodes one payload into `out`, returning the samples written.
    pub(crate) fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        match self {
            Self::G711(c) => c.decode(payload, out),
            Self::G722(c) => c.decode(payload, out),
            Self::Opus(c) => c.decode(payload, out),
        }
    }

    /// Fills `out` (one lost frame) from the in-band FEC of `next`, the
    /// packet after the lost one, when the codec has FEC (Opus), else with
    /// concealment.
    pub(crate) fn recover(
        &mut self,
        next: Option<&[u8]>,
        out: &mut [i16],
    ) -> Result<usize, CodecError> {
        match (self, next) {
            (Self::Opus(c), Some(next)) if !next.is_empty() => c.decode_fec(next, out),
            (this, _) => this.conceal(out),
        }
    }

    /// Fills `out` (one lost frame) with concealment.
    pub(crate) fn conceal(&mut self, out: &mut [i16]) -> Result<usize, CodecError> {
        match self {
            Self::G711(c) => c.conceal(out),
            Self::G722(c) => c.conceal(out),
            Self::Opus(c) => c.conceal(out),
        }
    }
}

/// An encoder for one sent stream. G.711 encoding is stateless: the law
/// is all it needs.
#[derive(Debug)]
pub(crate) enum AudioEncoder {
    G711(Law),
    G722(Box<G722Encoder>),
    Opus(Box<OpusEncoder>),
}

impl AudioEncoder {
    /// An encoder of `kind` for packets of `ptime_ms`; `bitrate` applies to
    /// Opus.
    pub(crate) fn new(kind: CodecKind, ptime_ms: u32, bitrate: u32) -> Result<Self, CodecError> {
        Ok(match kind {
            CodecKind::Pcmu => Self::G711(Law::Ulaw),
            CodecKind::Pcma => Self::G711(Law::Alaw),
            CodecKind::G722 => Self::G722(Box::default()),
            CodecKind::Opus => {
                let mut opus =
                    OpusEncoder::new(ClockRate::HZ_48000, OpusApplication::Audio, bitrate)?;
                opus.set_complexity(OPUS_COMPLEXITY)?;
                opus.set_frame_ms(ptime_ms)?;
                Self::Opus(Box::new(opus))
            }
        })
    }

    /// Encodes one packet's worth of G.711 `codes` of `law` into `out`: a
    /// G.711 encoder converts them code by code, any other decodes them
    /// into `scratch` (at least as long as `codes`) first.
    pub(crate) fn encode_codes(
        &mut self,
        law: Law,
        codes: &[u8],
        scratch: &mut [i16],
        out: &mut [u8],
    ) -> Result<usize, CodecError> {
        match self {
            Self::G711(to) => g711::convert(law, *to, codes, out),
            _ => {
                let n = g711::decode(law, codes, scratch)?;
                self.encode(&scratch[..n], out)
            }
        }
    }

    /// Encodes one packet's worth of `pcm` into `out`.
    pub(crate) fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        match self {
            Self::G711(Law::Ulaw) => g711::encode_ulaw(pcm, out),
            Self::G711(Law::Alaw) => g711::encode_alaw(pcm, out),
            Self::G722(c) => c.encode(pcm, out),
            Self::Opus(c) => c.encode(pcm, out),
        }
    }
}
