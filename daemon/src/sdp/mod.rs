//! SDP for legato's media plane: parse what a SIP controller hands us, answer
//! offers and generate our own (RFC 4566 syntax, RFC 3264 offer/answer).
//!
//! # What it does
//!
//! - [`parse()`] turns an SDP body into an [`Sdp`] holding only what a media
//!   plane needs: origin, connection addresses, `m=` lines, `a=rtpmap`,
//!   `a=fmtp`, direction attributes, `a=rtcp` (RFC 3605), `a=rtcp-mux`
//!   (RFC 5761), `a=ptime` and `a=maxptime`. Lines it does not need (`b=`,
//!   `k=`, `t=`, unknown attributes, unknown line types) are skipped, never
//!   rejected.
//! - [`answer`] answers a remote offer for one audio stream (RFC 3264 §6) and
//!   reports the outcome as a [`Negotiated`].
//! - [`build_offer`] writes legato's own offer; [`apply_answer`] reads the
//!   remote answer to it.
//!
//! # Codecs
//!
//! [`SUPPORTED_CODECS`]: PCMU (PT 0) and PCMA (PT 8) (RFC 3551 §4.5.14),
//! G.722 (PT 9, `G722/8000`: RFC 3551 §4.5.2 keeps an 8000 Hz RTP clock
//! although the audio is 16 kHz) and Opus (`opus/48000/2`, a dynamic PT,
//! RFC 7587). Each [`CodecSpec`] carries a [`CodecKind`] for the engine to
//! match on, the RTP `clock_rate` (timestamps, events) and the `audio_rate`
//! its decoder produces. A static payload type without `a=rtpmap` denotes
//! its RFC 3551 codec; a dynamic one needs an `a=rtpmap`.
//!
//! # Opus parameters
//!
//! legato writes `useinbandfec=1;usedtx=0;stereo=0;sprop-stereo=0;
//! maxplaybackrate=48000;maxaveragebitrate=32000` ([`OPUS_MAX_AVERAGE_BITRATE`])
//! in its offers and answers, and reads the remote's into [`OpusParams`]
//! (defaults without an fmtp). Unknown parameters and unreadable values are
//! ignored, never errors (RFC 4566 §6). `stereo=1` from the remote is
//! accepted, but legato sends mono: RFC 7587 §7.1 makes `stereo` a receiver
//! preference, and every Opus decoder plays a mono stream.
//!
//! # Telephone events
//!
//! RFC 4733 §7.1.1 wants `telephone-event` at the clock rate of the audio it
//! accompanies. legato's offer has one per codec clock rate: `/8000` at PT 101
//! (G.711, G.722) and `/48000` at a dynamic PT when Opus is offered. An answer
//! takes only the `telephone-event` whose rate equals the chosen codec's RTP
//! clock (8000 for G.722, not 16000); one of another rate is not negotiated.
//!
//! # Packet durations
//!
//! An SDP's `a=ptime` is the packet duration its writer wants to receive, and
//! `a=maxptime` the longest it accepts (RFC 4566 §6); both are hints. legato
//! writes its own `a=ptime` (per leg, default 20) and `a=maxptime:60`, and
//! sends [`Negotiated::send_ptime_ms`]: the remote's `a=ptime` (else its own)
//! clamped into 10..=60 ms and rounded to a multiple of 10, capped by the
//! remote's `a=maxptime` (itself clamped into 10..=60 and rounded down), and
//! for Opus the nearest of 10, 20, 40 or 60 ms within that cap. So
//! `a=ptime:7`, `a=ptime:1000` or `a=maxptime:5` are clamped, never refused;
//! `a=ptime:0` or an unreadable value counts as absent.
//!
//! # Payload type switching
//!
//! RFC 3264 §7 lets an answerer keep several of the offered codecs and send
//! any of them. [`Negotiated::receive_formats`] lists every (legato payload
//! type, codec) the remote may send: just the chosen codec when legato
//! answers (its answer names one), every offered codec the remote kept when
//! legato offered, the chosen one first. What legato sends never switches.
//!
//! # What it does not do
//!
//! No SRTP, DTLS or ICE (offers that require them are refused with a reason),
//! no DNS (connection addresses must be IP literals), no video, and at most one
//! audio stream per leg: further streams are declined with port 0.
//!
//! # Hostile input
//!
//! The body comes from the network via the controller. Parsing never panics,
//! is bounded by [`MAX_SDP_BYTES`] and [`MAX_SDP_LINES`], rejects control
//! characters inside lines (so nothing we echo back can inject lines), and
//! every error names the offending line so a carrier engineer can read it
//! straight from a gRPC `INVALID_ARGUMENT`.
//!
//! # Driving it
//!
//! ```ignore
//! // Incoming call: the controller passes the remote offer.
//! let offer = sdp::parse(&offer_text)?;
//! let (negotiated, answer_text) = sdp::answer(&offer, &local)?;
//!
//! // Outgoing call: legato offers, the controller later passes the answer.
//! let offer_text = sdp::build_offer(&local)?;
//! let negotiated = sdp::apply_answer(&sdp::parse(&answer_text)?, &local)?;
//! ```

use std::net::IpAddr;

mod negotiate;
mod opus;
mod parse;
#[cfg(test)]
mod tests;

pub(crate) use negotiate::{LocalParams, Negotiated, answer, apply_answer, build_offer};
#[cfg(test)]
pub(crate) use negotiate::{MAX_RECEIVE_FORMATS, ReceiveFormats};
#[cfg(test)]
pub(crate) use opus::OpusParams;
#[cfg(test)]
pub(crate) use parse::Sdp;
pub(crate) use parse::{MAX_SDP_BYTES, MAX_SDP_LINES, RtpMap, parse};

/// SDP media direction attribute (RFC 3264 §5.1), from the writer's point of view.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) enum MediaDirection {
    /// `a=sendrecv`: the writer sends and receives; also what no attribute means.
    #[default]
    SendRecv,
    /// `a=sendonly`: the writer sends but does not want to receive (it holds the other side).
    SendOnly,
    /// `a=recvonly`: the writer receives but does not send.
    RecvOnly,
    /// `a=inactive`: no media either way.
    Inactive,
}

impl MediaDirection {
    /// The same direction seen from the other end: `sendonly` and `recvonly` swap.
    pub(crate) fn reversed(self) -> Self {
        match self {
            Self::SendOnly => Self::RecvOnly,
            Self::RecvOnly => Self::SendOnly,
            other => other,
        }
    }

    /// The direction both `self` and `other` allow (both from the same point of view):
    /// it sends only if both send and receives only if both receive.
    pub(crate) fn intersect(self, other: Self) -> Self {
        Self::from_flags(
            self.sends() && other.sends(),
            self.receives() && other.receives(),
        )
    }

    /// Whether the writer sends media.
    pub(crate) fn sends(self) -> bool {
        matches!(self, Self::SendRecv | Self::SendOnly)
    }

    /// Whether the writer receives media.
    pub(crate) fn receives(self) -> bool {
        matches!(self, Self::SendRecv | Self::RecvOnly)
    }

    /// The attribute name: `sendrecv`, `sendonly`, `recvonly` or `inactive`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::SendRecv => "sendrecv",
            Self::SendOnly => "sendonly",
            Self::RecvOnly => "recvonly",
            Self::Inactive => "inactive",
        }
    }

    /// The direction that sends and receives as given.
    pub(crate) fn from_flags(sends: bool, receives: bool) -> Self {
        match (sends, receives) {
            (true, true) => Self::SendRecv,
            (true, false) => Self::SendOnly,
            (false, true) => Self::RecvOnly,
            (false, false) => Self::Inactive,
        }
    }

    /// Parses an attribute name such as `sendonly` (ASCII case-insensitive).
    pub(crate) fn from_attribute(name: &str) -> Option<Self> {
        [
            Self::SendRecv,
            Self::SendOnly,
            Self::RecvOnly,
            Self::Inactive,
        ]
        .into_iter()
        .find(|direction| direction.as_str().eq_ignore_ascii_case(name))
    }
}

/// Which codec a [`CodecSpec`] is, so the media engine can pick a decoder and
/// an encoder without comparing names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum CodecKind {
    /// G.711 µ-law.
    Pcmu,
    /// G.711 A-law.
    Pcma,
    /// G.722 (64 kbit/s SB-ADPCM, 16 kHz audio on an 8 kHz RTP clock).
    G722,
    /// Opus (RFC 6716), carried as RFC 7587 describes.
    Opus,
}

/// A codec legato can negotiate, as it appears in `a=rtpmap`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct CodecSpec {
    /// Encoding name as written in `a=rtpmap` (matched case-insensitively).
    pub(crate) name: &'static str,
    /// Which codec this is, for the engine's decoder and encoder choice.
    pub(crate) kind: CodecKind,
    /// Static payload type from RFC 3551 §6, or `None` for a dynamic one.
    pub(crate) static_pt: Option<u8>,
    /// RTP clock rate in Hz (not always the sample rate: G.722 uses 8000).
    /// RTP timestamps and `telephone-event` durations count in this clock.
    pub(crate) clock_rate: u32,
    /// Sample rate of the audio the codec encodes and decodes, in Hz:
    /// 8000 for G.711, 16000 for G.722, 48000 for Opus.
    pub(crate) audio_rate: u32,
    /// Number of channels in `a=rtpmap`; without a channel count it means 1.
    /// Opus always says 2 (RFC 7587 §7) whatever it actually carries.
    pub(crate) channels: u8,
}

impl CodecSpec {
    /// Whether an `a=rtpmap` entry (encoding name, clock rate, channels) denotes this codec.
    pub(crate) fn matches(&self, encoding: &str, clock_rate: u32, channels: u8) -> bool {
        self.name.eq_ignore_ascii_case(encoding)
            && self.clock_rate == clock_rate
            && self.channels == channels
    }

    /// Whether `map` denotes this codec.
    pub(crate) fn matches_rtpmap(&self, map: &RtpMap) -> bool {
        self.matches(&map.encoding, map.clock_rate, map.channels)
    }
}

/// G.711 µ-law, RFC 3551 §4.5.14, static payload type 0.
pub(crate) const PCMU: CodecSpec = CodecSpec {
    name: "PCMU",
    kind: CodecKind::Pcmu,
    static_pt: Some(0),
    clock_rate: 8000,
    audio_rate: 8000,
    channels: 1,
};

/// G.711 A-law, RFC 3551 §4.5.14, static payload type 8.
pub(crate) const PCMA: CodecSpec = CodecSpec {
    name: "PCMA",
    kind: CodecKind::Pcma,
    static_pt: Some(8),
    clock_rate: 8000,
    audio_rate: 8000,
    channels: 1,
};

/// G.722, RFC 3551 §4.5.2, static payload type 9: `G722/8000` although the
/// audio is sampled at 16 kHz (an error in RFC 1890 kept for compatibility),
/// so RTP timestamps advance 160 per 20 ms packet of 320 samples.
pub(crate) const G722: CodecSpec = CodecSpec {
    name: "G722",
    kind: CodecKind::G722,
    static_pt: Some(9),
    clock_rate: 8000,
    audio_rate: 16000,
    channels: 1,
};

/// Opus, RFC 7587: always `opus/48000/2` with a dynamic payload type, whether
/// the stream is mono or stereo and whatever the encoder's internal rate.
pub(crate) const OPUS: CodecSpec = CodecSpec {
    name: "opus",
    kind: CodecKind::Opus,
    static_pt: None,
    clock_rate: 48000,
    audio_rate: 48000,
    channels: 2,
};

/// Every codec the SDP layer will negotiate.
pub(crate) const SUPPORTED_CODECS: &[CodecSpec] = &[PCMU, PCMA, G722, OPUS];

/// The daemon's codec preference when the configuration names none.
pub(crate) const DEFAULT_CODEC_NAMES: &[&str] = &["PCMU", "PCMA", "G722", "opus"];

/// Looks a supported codec up by encoding name, ASCII case-insensitively.
pub(crate) fn codec_by_name(name: &str) -> Option<CodecSpec> {
    SUPPORTED_CODECS
        .iter()
        .find(|codec| codec.name.eq_ignore_ascii_case(name))
        .copied()
}

/// Payload type legato uses for `telephone-event/8000` in its own offers (RFC 4733),
/// the value most SIP equipment uses.
pub(crate) const DEFAULT_TELEPHONE_EVENT_PT: u8 = 101;

/// Encoding name of RFC 4733 named telephone events (matched case-insensitively).
pub(crate) const TELEPHONE_EVENT: &str = "telephone-event";

/// Events legato offers in `a=fmtp`: DTMF 0-9, *, #, A-D (0-15) and flash (16),
/// RFC 4733 §3.2.
pub(crate) const TELEPHONE_EVENTS_OFFERED: &str = "0-16";

/// legato's packet duration when neither the request nor the configuration
/// names one, in ms.
pub(crate) const DEFAULT_PTIME_MS: u32 = 20;

/// Shortest packet duration legato sends, in ms.
pub(crate) const MIN_PTIME_MS: u32 = 10;

/// Longest packet duration legato sends or receives, in ms; legato writes it
/// as `a=maxptime` in its own SDP.
pub(crate) const MAX_PTIME_MS: u32 = 60;

/// Whether `ms` is a packet duration legato can be asked for (per leg or in
/// the configuration): 10, 20, 30, 40, 50 or 60.
pub(crate) fn is_valid_ptime(ms: u32) -> bool {
    (MIN_PTIME_MS..=MAX_PTIME_MS).contains(&ms) && ms.is_multiple_of(10)
}

/// Opus frame durations legato sends, one frame per packet, in ms (RFC 6716
/// §2.1.4 also has 2.5 and 5 ms, which are not whole multiples of 10).
pub(crate) const OPUS_FRAME_MS: [u32; 4] = [10, 20, 40, 60];

/// `maxaveragebitrate` legato writes in its Opus `a=fmtp` (bit/s, RFC 7587
/// §6.1): wideband-to-fullband speech with in-band FEC fits comfortably.
pub(crate) const OPUS_MAX_AVERAGE_BITRATE: u32 = 32_000;

/// Why an SDP body could not be parsed or negotiated.
///
/// Messages are short and name the cause, for a carrier engineer reading a gRPC
/// `INVALID_ARGUMENT`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum SdpError {
    /// The remote connection address is IPv4 and ours IPv6 or the other way round.
    #[error("address family mismatch: remote uses {remote}, legato uses {local}")]
    AddressFamily {
        /// Remote address type, `IP4` or `IP6`.
        remote: &'static str,
        /// Address type of [`LocalParams::address`], `IP4` or `IP6`.
        local: &'static str,
    },
    /// The caller passed [`LocalParams`] that cannot produce a valid SDP.
    #[error("invalid local media parameters: {0}")]
    InvalidLocalParams(&'static str),
    /// A required line or value is absent, e.g. `o= line`.
    #[error("missing {0}")]
    Missing(&'static str),
    /// No audio stream in the SDP is one legato can use; the text says why.
    #[error("no acceptable media: {0}")]
    NoAcceptableMedia(String),
    /// The remote answered legato's audio stream with port 0.
    #[error("remote rejected the audio stream (port 0 in answer)")]
    Rejected,
    /// A malformed line; `line` counts from 1.
    #[error("line {line}: {message}")]
    Syntax {
        /// Line number, from 1.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// A remote address legato must not send to (multicast, broadcast).
    #[error("{what} {address} is {kind}: legato sends media to one unicast address")]
    NotUnicast {
        /// Which address (`connection address`, `a=rtcp address`).
        what: &'static str,
        /// The address.
        address: IpAddr,
        /// What is wrong with it.
        kind: &'static str,
    },
    /// The body exceeds [`MAX_SDP_BYTES`].
    #[error("sdp body exceeds {} bytes", MAX_SDP_BYTES)]
    TooLarge,
    /// The body exceeds [`MAX_SDP_LINES`] non-empty lines.
    #[error("sdp body exceeds {} lines", MAX_SDP_LINES)]
    TooManyLines,
}

/// `IP4` or `IP6`, the SDP address type of `ip`.
fn address_type(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() { "IP4" } else { "IP6" }
}

/// At most 40 characters of untrusted text for an error message, quoted and escaped.
fn show(text: &str) -> String {
    format!("{:?}", clip(text))
}

/// At most 40 characters of untrusted text, with `...` when cut.
fn clip(text: &str) -> String {
    const MAX_CHARS: usize = 40;
    let mut out: String = text.chars().take(MAX_CHARS).collect();
    if text.chars().nth(MAX_CHARS).is_some() {
        out.push_str("...");
    }
    out
}
