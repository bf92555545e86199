//! Audio codecs behind one pair of traits.
//!
//! Every codec works on 16-bit mono PCM at its own [`Encoder::sample_rate`]
//! and on caller-supplied buffers: `encode` and `decode` never allocate.
//! Frames are whatever the caller hands in (legato uses 20 ms); codecs with
//! a fixed frame size reject other lengths with [`CodecError::BadFrameSize`].
//!
//! - [`g711`]: µ-law / A-law (PCMU / PCMA), bit-exact with ITU-T G.711.
//! - [`g722`]: 64 kbit/s sub-band ADPCM (ITU-T G.722), 16 kHz audio.
//! - [`opus`]: Opus (RFC 6716) at 48 or 16 kHz, through the pure-Rust
//!   `opus-rs` crate.

pub mod g711;
pub mod g722;
pub mod opus;
mod plc;

/// Errors returned by codecs.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodecError {
    /// The output buffer cannot hold the result.
    OutputTooSmall,
    /// The input length is not a frame size this codec accepts.
    BadFrameSize,
    /// The payload is malformed (bytes from the network: never a panic).
    InvalidPayload,
    /// The codec could not be configured as asked.
    Unsupported,
}

impl core::fmt::Display for CodecError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::OutputTooSmall => "output buffer too small",
            Self::BadFrameSize => "unsupported frame size",
            Self::InvalidPayload => "invalid payload",
            Self::Unsupported => "unsupported codec configuration",
        })
    }
}

impl std::error::Error for CodecError {}

/// Turns PCM frames into codec payloads.
pub trait Encoder {
    /// Encodes one frame of `pcm` (mono, at [`Self::sample_rate`]) into
    /// `out`, returning the payload length. Never allocates.
    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError>;

    /// PCM sample rate the encoder consumes, in Hz.
    fn sample_rate(&self) -> u32;
}

/// Turns codec payloads into PCM frames.
pub trait Decoder {
    /// Decodes one payload into `out`, returning the number of samples
    /// written. Malformed payloads return an error, never panic.
    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError>;

    /// Fills `out` with a concealment frame for a lost packet (packet-loss
    /// concealment), returning the number of samples written. The caller
    /// passes a buffer of exactly one frame.
    fn conceal(&mut self, out: &mut [i16]) -> Result<usize, CodecError>;

    /// PCM sample rate the decoder produces, in Hz.
    fn sample_rate(&self) -> u32;
}
