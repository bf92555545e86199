//! SDP for legato's media plane: parse what a SIP controller hands us, answer
//! offers and generate our own (RFC 4566 syntax, RFC 3264 offer/answer).
//!
//! # What it does
//!
//! - [`parse()`] turns an SDP body into an [`Sdp`] holding only what a media
//!   plane needs: origin, connection addresses, `m=` lines, `a=rtpmap`,
//!   `a=fmtp`, direction attributes, `a=rtcp` (RFC 3605), `a=rtcp-mux`
//!   (RFC 5761) and `a=ptime`. Lines it does not need (`b=`, `k=`, `t=`,
//!   unknown attributes, unknown line types) are skipped, never rejected.
//! - [`answer`] answers a remote offer for one audio stream (RFC 3264 §6) and
//!   reports the outcome as a [`Negotiated`].
//! - [`build_offer`] writes legato's own offer; [`apply_answer`] reads the
//!   remote answer to it.
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
mod parse;
#[cfg(test)]
mod tests;

pub(crate) use negotiate::{LocalParams, Negotiated, answer, apply_answer, build_offer};
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

/// A codec legato can negotiate, as it appears in `a=rtpmap`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct CodecSpec {
    /// Encoding name as written in `a=rtpmap` (matched case-insensitively).
    pub(crate) name: &'static str,
    /// Static payload type from RFC 3551 §6, or `None` for a dynamic one.
    pub(crate) static_pt: Option<u8>,
    /// RTP clock rate in Hz (not always the sample rate: G.722 uses 8000).
    pub(crate) clock_rate: u32,
    /// Number of channels; `a=rtpmap` without a channel count means 1.
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
    static_pt: Some(0),
    clock_rate: 8000,
    channels: 1,
};

/// G.711 A-law, RFC 3551 §4.5.14, static payload type 8.
pub(crate) const PCMA: CodecSpec = CodecSpec {
    name: "PCMA",
    static_pt: Some(8),
    clock_rate: 8000,
    channels: 1,
};

/// Every codec the SDP layer will negotiate.
///
/// Adding a codec is one line here, e.g. G.722 as
/// `CodecSpec { name: "G722", static_pt: Some(9), clock_rate: 8000, channels: 1 }`
/// (RFC 3551 §4.5.2: the clock is 8000 although it samples at 16 kHz) or Opus as
/// `CodecSpec { name: "opus", static_pt: None, clock_rate: 48000, channels: 2 }`
/// (RFC 7587 §7: always `opus/48000/2`, dynamic payload type).
pub(crate) const SUPPORTED_CODECS: &[CodecSpec] = &[PCMU, PCMA];

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

/// The only telephone-event clock rate legato negotiates (RFC 4733 §7.1.1 default).
pub(crate) const TELEPHONE_EVENT_CLOCK_RATE: u32 = 8000;

/// Events legato offers in `a=fmtp`: DTMF 0-9, *, #, A-D (0-15) and flash (16),
/// RFC 4733 §3.2.
pub(crate) const TELEPHONE_EVENTS_OFFERED: &str = "0-16";

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
