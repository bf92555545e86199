//! What a "call" of a load point is: a relayed bridge (the fast path), a
//! bridge whose second leg negotiates another codec (legatod transcodes on
//! its PCM path: decode, jitter buffer, 20 ms media clock, re-encode; or,
//! for PCMU ↔ PCMA, converts code by code on the relay path unless the
//! legs ask for `always_transcode`), or a conference of N members, each
//! talking and listening (mix-minus).
//!
//! The unit of load stays the "call" of the sweep (`--calls`): a bridged
//! call has 2 legs, a conference of N members N legs. Every leg's party
//! sends 50 packets/s and receives 50 packets/s, so legatod handles
//! `legs × 50` packets in and as many out per second whatever the kind, and
//! the floor it is compared with relays the same number: `ceil(legs / 2)`
//! bridged calls ([`CallKind::floor_calls`]).

use std::fmt;
use std::str::FromStr;

use legato_dsp::codec::Encoder as _;
use legato_dsp::codec::g722::G722Encoder;
use legato_dsp::codec::opus::{OpusApplication, OpusEncoder};
use legato_dsp::time::ClockRate;

/// Members a conference may have here (legatod allows 64).
pub const MAX_CONFERENCE_MEMBERS: usize = 64;

/// See the module docs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CallKind {
    /// Both legs PCMU, routed both ways: relayed packet by packet.
    #[default]
    Relay,
    /// Leg A PCMU, leg B PCMA: G.711 ↔ G.711, which legatod converts
    /// code by code on the relay path.
    PcmuPcma,
    /// As [`CallKind::PcmuPcma`] with both legs asking for
    /// `always_transcode`: the PCM path (jitter buffer, media clock).
    PcmuPcmaPcm,
    /// Leg A PCMU, leg B G.722.
    PcmuG722,
    /// Leg A PCMU, leg B Opus.
    PcmuOpus,
    /// A conference of this many PCMU members, each talking and listening.
    Conference(usize),
    /// As [`CallKind::Relay`] (PCMU both ways, relayed), with leg A
    /// recorded to a mono 8 kHz WAV while measured.
    RecordWav,
    /// The same recorded to the Call API's default MP3 (8 kHz mono,
    /// 32 kbit/s).
    RecordMp3,
    /// As [`CallKind::Relay`], with leg A's VAD (SetMicStatusHandling),
    /// beep detection and answering-machine detection on while measured:
    /// taps on a copy, the call stays relayed.
    RelayDetect,
    /// As [`CallKind::Relay`], with SetToneHandling on leg A while
    /// measured: its audio to B goes through the PCM path and the DTMF
    /// gate.
    RelayTones,
    /// As [`CallKind::Relay`], with SetToneHandling `keep_in_audio` on leg
    /// A while measured: the DTMF tap reads a copy, the call stays
    /// relayed.
    RelayDtmf,
    /// As [`CallKind::Relay`], with every detector on leg A while
    /// measured: DTMF (`keep_in_audio`), VAD, beep, answering-machine and
    /// call-progress detection (all ten tables); the call stays relayed.
    RelayAll,
}

/// What a unit of a kind turns on for its leg A while measured, besides
/// its routes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extra {
    /// StartRecording in this format.
    Record(legato_client::proto::RecordingFormat),
    /// VAD, beep and answering-machine detection.
    Detect,
    /// SetToneHandling (digits removed).
    Tones,
    /// SetToneHandling with `keep_in_audio` (digits only reported).
    DetectTones,
    /// Every detector: [`Extra::DetectTones`], [`Extra::Detect`] and
    /// call-progress detection.
    All,
}

impl CallKind {
    /// Legs of one unit of load.
    pub fn legs(self) -> usize {
        match self {
            Self::Conference(n) => n,
            _ => 2,
        }
    }

    /// Whether legatod relays this kind's packets as they are (the probe
    /// payload survives, so latency is measured per packet).
    pub fn is_relay(self) -> bool {
        self == Self::Relay
    }

    /// The recording each unit of this kind makes of its leg A, if any.
    pub fn recording(self) -> Option<legato_client::proto::RecordingFormat> {
        match self.extra() {
            Some(Extra::Record(format)) => Some(format),
            _ => None,
        }
    }

    /// What each unit of this kind turns on for its leg A, if anything.
    pub fn extra(self) -> Option<Extra> {
        use legato_client::proto::RecordingFormat;
        match self {
            Self::RecordWav => Some(Extra::Record(RecordingFormat::Wav)),
            Self::RecordMp3 => Some(Extra::Record(RecordingFormat::Mp3)),
            Self::RelayDetect => Some(Extra::Detect),
            Self::RelayTones => Some(Extra::Tones),
            Self::RelayDtmf => Some(Extra::DetectTones),
            Self::RelayAll => Some(Extra::All),
            _ => None,
        }
    }

    /// Whether the legs ask for `always_transcode` (the PCM path).
    pub fn always_transcode(self) -> bool {
        self == Self::PcmuPcmaPcm
    }

    /// Floor calls relaying as many packets as `units` of this kind.
    pub fn floor_calls(self, units: usize) -> usize {
        (units * self.legs()).div_ceil(2)
    }

    /// The codec side B offers (bridged kinds only).
    pub fn side_b(self) -> Option<Codec> {
        match self {
            Self::Relay
            | Self::RecordWav
            | Self::RecordMp3
            | Self::RelayDetect
            | Self::RelayTones
            | Self::RelayDtmf
            | Self::RelayAll => Some(Codec::Pcmu),
            Self::PcmuPcma | Self::PcmuPcmaPcm => Some(Codec::Pcma),
            Self::PcmuG722 => Some(Codec::G722),
            Self::PcmuOpus => Some(Codec::Opus),
            Self::Conference(_) => None,
        }
    }
}

impl fmt::Display for CallKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Relay => f.write_str("relay"),
            Self::PcmuPcma => f.write_str("pcmu-pcma"),
            Self::PcmuPcmaPcm => f.write_str("pcmu-pcma-pcm"),
            Self::PcmuG722 => f.write_str("pcmu-g722"),
            Self::PcmuOpus => f.write_str("pcmu-opus"),
            Self::Conference(n) => write!(f, "conference:{n}"),
            Self::RecordWav => f.write_str("record-wav"),
            Self::RecordMp3 => f.write_str("record-mp3"),
            Self::RelayDetect => f.write_str("relay-detect"),
            Self::RelayTones => f.write_str("relay-tones"),
            Self::RelayDtmf => f.write_str("relay-dtmf"),
            Self::RelayAll => f.write_str("relay-all"),
        }
    }
}

impl FromStr for CallKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "relay" => Ok(Self::Relay),
            "pcmu-pcma" => Ok(Self::PcmuPcma),
            "pcmu-pcma-pcm" => Ok(Self::PcmuPcmaPcm),
            "pcmu-g722" => Ok(Self::PcmuG722),
            "pcmu-opus" => Ok(Self::PcmuOpus),
            "record-wav" => Ok(Self::RecordWav),
            "record-mp3" => Ok(Self::RecordMp3),
            "relay-detect" => Ok(Self::RelayDetect),
            "relay-tones" => Ok(Self::RelayTones),
            "relay-dtmf" => Ok(Self::RelayDtmf),
            "relay-all" => Ok(Self::RelayAll),
            _ => {
                let n = s
                    .strip_prefix("conference:")
                    .and_then(|n| n.parse::<usize>().ok())
                    .ok_or_else(|| {
                        format!(
                            "unknown call kind {s:?}: relay, pcmu-pcma, pcmu-pcma-pcm, pcmu-g722, pcmu-opus, record-wav, record-mp3, relay-detect, relay-tones, relay-dtmf, relay-all or conference:N"
                        )
                    })?;
                if !(2..=MAX_CONFERENCE_MEMBERS).contains(&n) {
                    return Err(format!(
                        "conference:{n}: members must be 2-{MAX_CONFERENCE_MEMBERS}"
                    ));
                }
                Ok(Self::Conference(n))
            }
        }
    }
}

/// A codec a generator party offers and sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// G.711 µ-law, payload type 0.
    Pcmu,
    /// G.711 A-law, payload type 8.
    Pcma,
    /// G.722, payload type 9 (RTP clock 8000, audio 16 kHz).
    G722,
    /// Opus, dynamic payload type [`OPUS_PT`], `opus/48000/2`.
    Opus,
}

/// Payload type the generator offers Opus with.
pub const OPUS_PT: u8 = 111;

impl Codec {
    /// Encoding name as legatod reports it in a leg's codec.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pcmu => "PCMU",
            Self::Pcma => "PCMA",
            Self::G722 => "G722",
            Self::Opus => "opus",
        }
    }

    /// RTP payload type offered.
    pub fn payload_type(self) -> u8 {
        match self {
            Self::Pcmu => 0,
            Self::Pcma => 8,
            Self::G722 => 9,
            Self::Opus => OPUS_PT,
        }
    }

    /// The `a=rtpmap` value.
    pub fn rtpmap(self) -> &'static str {
        match self {
            Self::Pcmu => "PCMU/8000",
            Self::Pcma => "PCMA/8000",
            Self::G722 => "G722/8000",
            Self::Opus => "opus/48000/2",
        }
    }

    /// RTP timestamp units per 20 ms packet.
    pub fn timestamp_step(self) -> u32 {
        match self {
            Self::Pcmu | Self::Pcma | Self::G722 => 160,
            Self::Opus => 960,
        }
    }

    /// Whether a 160-byte probe payload is a valid 20 ms frame of this
    /// codec (every byte string is, for G.711 and G.722; the probe decodes
    /// as noise except for PCMU's silence tail).
    pub fn carries_probe(self) -> bool {
        !matches!(self, Self::Opus)
    }

    /// One 20 ms frame of silence in this codec, for a party that cannot
    /// send probes (Opus: any bytes are not a valid packet).
    pub fn silence_frame(self) -> Vec<u8> {
        match self {
            Self::Pcmu => vec![0xff; 160],
            Self::Pcma => vec![0xd5; 160],
            Self::G722 => {
                let mut out = vec![0; 160];
                let n = G722Encoder::new().encode(&[0; 320], &mut out).unwrap_or(0);
                out.truncate(n);
                out
            }
            Self::Opus => opus_silence().unwrap_or_default(),
        }
    }
}

fn opus_silence() -> Option<Vec<u8>> {
    let mut encoder =
        OpusEncoder::new(ClockRate::new(48_000)?, OpusApplication::Voip, 32_000).ok()?;
    let mut out = vec![0; 400];
    let n = encoder.encode(&[0; 960], &mut out).ok()?;
    out.truncate(n);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_and_print() {
        for s in [
            "relay",
            "pcmu-pcma",
            "pcmu-pcma-pcm",
            "pcmu-g722",
            "pcmu-opus",
            "conference:3",
        ] {
            assert_eq!(s.parse::<CallKind>().unwrap().to_string(), s);
        }
        assert!("conference:1".parse::<CallKind>().is_err());
        assert!("conference:x".parse::<CallKind>().is_err());
        assert!("pcma".parse::<CallKind>().is_err());
        assert_eq!(CallKind::Conference(10).legs(), 10);
        assert_eq!(CallKind::Conference(3).floor_calls(5), 8);
        assert_eq!(CallKind::PcmuPcma.floor_calls(5), 5);
    }

    #[test]
    fn silence_frames_are_20_ms() {
        assert_eq!(Codec::Pcma.silence_frame().len(), 160);
        assert_eq!(Codec::G722.silence_frame().len(), 160);
        let opus = Codec::Opus.silence_frame();
        assert!(!opus.is_empty() && opus.len() < 160, "{}", opus.len());
    }
}
