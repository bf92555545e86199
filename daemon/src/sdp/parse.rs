//! SDP text to [`Sdp`] (RFC 4566 syntax), keeping what a media plane needs.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use super::{MediaDirection, SdpError, show};

/// A parsed SDP body: only what a media plane needs.
///
/// Lines the media plane does not use (`b=`, `k=`, `t=`, `i=`, unknown
/// attributes and unknown line types) are skipped, never rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Sdp {
    /// The `o=` line.
    pub(crate) origin: Origin,
    /// The `s=` line's text (may be empty or `-`).
    pub(crate) session_name: String,
    /// Session-level `c=` address; a media-level `c=` overrides it.
    pub(crate) connection: Option<IpAddr>,
    /// Session-level direction attribute; a media-level one overrides it.
    pub(crate) direction: Option<MediaDirection>,
    /// Session-level `a=ptime` (not in RFC 4566 but sent by some equipment).
    pub(crate) ptime: Option<u32>,
    /// Session-level `a=maxptime`, like `ptime`.
    pub(crate) maxptime: Option<u32>,
    /// The `m=` sections in order.
    pub(crate) media: Vec<Media>,
}

/// The `o=` line: `o=<username> <sess-id> <sess-version> IN <addrtype> <address>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Origin {
    /// Username, `-` when the writer has none.
    pub(crate) username: String,
    /// Session id as written (kept as text: some equipment exceeds 64 bits).
    pub(crate) session_id: String,
    /// Session version as written; it changes whenever the SDP changes.
    pub(crate) version: String,
    /// Unicast address or host name of the originator, as written.
    pub(crate) address: String,
}

/// One `m=` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Media {
    /// Media type: `audio`, `video`, `image`, `application`...
    pub(crate) kind: String,
    /// Transport port; 0 disables the stream (RFC 3264 §5.1).
    pub(crate) port: u16,
    /// Number of ports from `<port>/<count>`, 1 when absent.
    pub(crate) port_count: u16,
    /// Transport protocol as written: `RTP/AVP`, `RTP/SAVP`, `udptl`...
    pub(crate) proto: String,
    /// Format list as written; for RTP protocols each is a payload type 0-127.
    pub(crate) formats: Vec<String>,
    /// Media-level `c=` address.
    pub(crate) connection: Option<IpAddr>,
    /// `a=rtpmap` lines in order.
    pub(crate) rtpmaps: Vec<RtpMap>,
    /// `a=fmtp` lines as payload type and parameter text.
    pub(crate) fmtps: Vec<(u8, String)>,
    /// Media-level direction attribute.
    pub(crate) direction: Option<MediaDirection>,
    /// `a=rtcp` (RFC 3605): RTCP port and optional address.
    pub(crate) rtcp: Option<(u16, Option<IpAddr>)>,
    /// `a=rtcp-mux` present (RFC 5761).
    pub(crate) rtcp_mux: bool,
    /// `a=ptime` in milliseconds.
    pub(crate) ptime: Option<u32>,
    /// `a=maxptime` in milliseconds (RFC 4566 §6).
    pub(crate) maxptime: Option<u32>,
}

impl Media {
    /// The payload types in the format list, in order; empty for non-RTP protocols.
    pub(crate) fn payload_types(&self) -> impl Iterator<Item = u8> + '_ {
        let formats: &[String] = if self.is_rtp() { &self.formats } else { &[] };
        formats
            .iter()
            .filter_map(|format| parse_payload_type(format))
    }

    /// The first `a=rtpmap` for `pt`.
    pub(crate) fn rtpmap(&self, pt: u8) -> Option<&RtpMap> {
        self.rtpmaps.iter().find(|map| map.pt == pt)
    }

    /// The parameters of the first `a=fmtp` for `pt`.
    pub(crate) fn fmtp(&self, pt: u8) -> Option<&str> {
        self.fmtps
            .iter()
            .find(|(fmtp_pt, _)| *fmtp_pt == pt)
            .map(|(_, params)| params.as_str())
    }

    /// Whether this is an `audio` stream.
    pub(crate) fn is_audio(&self) -> bool {
        self.kind.eq_ignore_ascii_case("audio")
    }

    /// Whether the transport carries RTP (`RTP/AVP`, `RTP/SAVP`, `UDP/TLS/RTP/SAVPF`...).
    pub(crate) fn is_rtp(&self) -> bool {
        self.proto_parts()
            .any(|part| part.eq_ignore_ascii_case("RTP"))
    }

    /// Whether the transport is plain RTP legato can terminate: `RTP/AVP` or `RTP/AVPF`.
    pub(crate) fn is_plain_rtp(&self) -> bool {
        self.proto.eq_ignore_ascii_case("RTP/AVP") || self.proto.eq_ignore_ascii_case("RTP/AVPF")
    }

    /// Whether the transport is secure RTP (`RTP/SAVP`, `UDP/TLS/RTP/SAVPF`...).
    pub(crate) fn is_srtp(&self) -> bool {
        self.proto_parts()
            .any(|part| part.eq_ignore_ascii_case("SAVP") || part.eq_ignore_ascii_case("SAVPF"))
    }

    fn proto_parts(&self) -> impl Iterator<Item = &str> {
        self.proto.split('/')
    }
}

/// An `a=rtpmap:<pt> <encoding>/<clock rate>[/<channels>]` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RtpMap {
    /// Payload type, 0-127.
    pub(crate) pt: u8,
    /// Encoding name as written.
    pub(crate) encoding: String,
    /// Clock rate in Hz, never 0.
    pub(crate) clock_rate: u32,
    /// Channel count, 1 when the line has none; never 0.
    pub(crate) channels: u8,
}

/// Parses an SDP body.
///
/// Accepts CRLF or LF line endings, blank lines and whitespace around lines.
/// Requires `v=0` first, then `o=` and `s=`; validates `c=`, `m=`, `a=rtpmap`,
/// `a=fmtp` and `a=rtcp`. Direction attributes and `c=` may appear at session
/// and media level; when one level repeats a direction attribute the last
/// wins, when it repeats `c=` the first wins. A malformed or zero `a=ptime` or
/// `a=maxptime` is ignored: both are hints (RFC 4566 §6).
pub(crate) fn parse(text: &str) -> Result<Sdp, SdpError> {
    if text.len() > MAX_SDP_BYTES {
        return Err(SdpError::TooLarge);
    }
    let mut builder = Builder::default();
    let mut seen_version = false;
    let mut line_count = 0_usize;
    for (index, raw) in text.split('\n').enumerate() {
        let number = index + 1;
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        line_count += 1;
        if line_count > MAX_SDP_LINES {
            return Err(SdpError::TooManyLines);
        }
        if line.chars().any(|c| c.is_ascii_control() && c != '\t') {
            return Err(syntax(number, "control character inside a line"));
        }
        let Some((kind, value)) = split_line(line) else {
            return Err(syntax(
                number,
                format!("expected <type>=<value>, got {}", show(line)),
            ));
        };
        if !seen_version {
            if kind != 'v' {
                return Err(syntax(number, "sdp must start with v=0"));
            }
            if value.trim() != "0" {
                return Err(syntax(
                    number,
                    format!("unsupported sdp version {}", show(value)),
                ));
            }
            seen_version = true;
            continue;
        }
        builder.line(number, kind, value)?;
    }
    if !seen_version {
        return Err(SdpError::Missing("v= line"));
    }
    builder.finish()
}

/// Largest SDP body [`parse()`] accepts, in bytes. Real offers are 0.3-4 KiB;
/// WebRTC ones with many candidates stay well under 16 KiB.
pub(crate) const MAX_SDP_BYTES: usize = 64 * 1024;

/// Most non-empty lines [`parse()`] accepts.
pub(crate) const MAX_SDP_LINES: usize = 1024;

/// Session-level state collected while reading lines.
#[derive(Default)]
struct Builder {
    origin: Option<Origin>,
    session_name: Option<String>,
    connection: Option<IpAddr>,
    direction: Option<MediaDirection>,
    ptime: Option<u32>,
    maxptime: Option<u32>,
    media: Vec<Media>,
}

impl Builder {
    fn line(&mut self, number: usize, kind: char, value: &str) -> Result<(), SdpError> {
        match kind {
            'v' => Err(syntax(number, "v= line after the first line")),
            'o' => {
                self.check_session_level(number, "o=")?;
                if self.origin.is_some() {
                    return Err(syntax(number, "duplicate o= line"));
                }
                self.origin = Some(parse_origin(number, value)?);
                Ok(())
            }
            's' => {
                self.check_session_level(number, "s=")?;
                if self.session_name.is_some() {
                    return Err(syntax(number, "duplicate s= line"));
                }
                self.session_name = Some(value.trim().to_owned());
                Ok(())
            }
            'c' => {
                let address = parse_connection(number, value)?;
                let slot = match self.media.last_mut() {
                    Some(media) => &mut media.connection,
                    None => &mut self.connection,
                };
                slot.get_or_insert(address);
                Ok(())
            }
            'm' => {
                self.media.push(parse_media(number, value)?);
                Ok(())
            }
            'a' => self.attribute(number, value),
            // b=, k=, t=, r=, z=, i=, u=, e=, p= and unknown types: not needed here.
            _ => Ok(()),
        }
    }

    fn attribute(&mut self, number: usize, value: &str) -> Result<(), SdpError> {
        let (name, argument) = match value.split_once(':') {
            Some((name, argument)) => (name.trim(), Some(argument.trim())),
            None => (value.trim(), None),
        };
        if let Some(direction) = MediaDirection::from_attribute(name) {
            match self.media.last_mut() {
                Some(media) => media.direction = Some(direction),
                None => self.direction = Some(direction),
            }
            return Ok(());
        }
        let Some(media) = self.media.last_mut() else {
            if name.eq_ignore_ascii_case("ptime") {
                self.ptime = argument.and_then(parse_ptime);
            } else if name.eq_ignore_ascii_case("maxptime") {
                self.maxptime = argument.and_then(parse_ptime);
            }
            // Other session-level attributes (rtpmap, rtcp-mux...) are media-level only.
            return Ok(());
        };
        if name.eq_ignore_ascii_case("rtpmap") {
            if media.is_rtp() {
                media.rtpmaps.push(parse_rtpmap(number, argument)?);
            }
        } else if name.eq_ignore_ascii_case("fmtp") {
            if media.is_rtp() {
                media.fmtps.push(parse_fmtp(number, argument)?);
            }
        } else if name.eq_ignore_ascii_case("rtcp") {
            media.rtcp = Some(parse_rtcp(number, argument)?);
        } else if name.eq_ignore_ascii_case("rtcp-mux") {
            media.rtcp_mux = true;
        } else if name.eq_ignore_ascii_case("ptime") {
            media.ptime = argument.and_then(parse_ptime);
        } else if name.eq_ignore_ascii_case("maxptime") {
            media.maxptime = argument.and_then(parse_ptime);
        }
        Ok(())
    }

    fn check_session_level(&self, number: usize, what: &str) -> Result<(), SdpError> {
        if self.media.is_empty() {
            Ok(())
        } else {
            Err(syntax(
                number,
                format!("{what} line inside a media section"),
            ))
        }
    }

    fn finish(self) -> Result<Sdp, SdpError> {
        Ok(Sdp {
            origin: self.origin.ok_or(SdpError::Missing("o= line"))?,
            session_name: self.session_name.ok_or(SdpError::Missing("s= line"))?,
            connection: self.connection,
            direction: self.direction,
            ptime: self.ptime,
            maxptime: self.maxptime,
            media: self.media,
        })
    }
}

/// Splits `x=value` into its type letter and value.
fn split_line(line: &str) -> Option<(char, &str)> {
    let (kind, value) = line.split_once('=')?;
    let mut chars = kind.trim_end().chars();
    match (chars.next(), chars.next()) {
        (Some(kind), None) if kind.is_ascii_alphabetic() => Some((kind, value)),
        _ => None,
    }
}

fn parse_origin(number: usize, value: &str) -> Result<Origin, SdpError> {
    let fields: Vec<&str> = value.split_ascii_whitespace().collect();
    let [
        username,
        session_id,
        version,
        _net_type,
        _address_type,
        address,
    ] = fields[..]
    else {
        return Err(syntax(
            number,
            "o= line must be \"<username> <sess-id> <sess-version> IN <addrtype> <address>\"",
        ));
    };
    Ok(Origin {
        username: username.to_owned(),
        session_id: session_id.to_owned(),
        version: version.to_owned(),
        address: address.to_owned(),
    })
}

/// `c=IN IP4 <address>[/<ttl>[/<count>]]`; the address must be a literal.
fn parse_connection(number: usize, value: &str) -> Result<IpAddr, SdpError> {
    let fields: Vec<&str> = value.split_ascii_whitespace().collect();
    let [net_type, address_type, address] = fields[..] else {
        return Err(syntax(
            number,
            "c= line must be \"IN IP4 <address>\" or \"IN IP6 <address>\"",
        ));
    };
    check_net_type(number, net_type)?;
    // Multicast addresses carry /<ttl> and /<count> suffixes.
    let host = address.split_once('/').map_or(address, |(host, _)| host);
    parse_address(number, address_type, host)
}

fn check_net_type(number: usize, net_type: &str) -> Result<(), SdpError> {
    if net_type.eq_ignore_ascii_case("IN") {
        Ok(())
    } else {
        Err(syntax(
            number,
            format!("unsupported network type {} (expected IN)", show(net_type)),
        ))
    }
}

fn parse_address(number: usize, address_type: &str, host: &str) -> Result<IpAddr, SdpError> {
    let parsed = if address_type.eq_ignore_ascii_case("IP4") {
        Ipv4Addr::from_str(host).ok().map(IpAddr::V4)
    } else if address_type.eq_ignore_ascii_case("IP6") {
        Ipv6Addr::from_str(host).ok().map(IpAddr::V6)
    } else {
        return Err(syntax(
            number,
            format!(
                "unsupported address type {} (expected IP4 or IP6)",
                show(address_type)
            ),
        ));
    };
    parsed.ok_or_else(|| {
        syntax(
            number,
            format!(
                "invalid {} address {} (an IP literal is required)",
                address_type.to_ascii_uppercase(),
                show(host)
            ),
        )
    })
}

/// `m=<media> <port>[/<count>] <proto> <fmt> ...`
fn parse_media(number: usize, value: &str) -> Result<Media, SdpError> {
    let mut fields = value.split_ascii_whitespace();
    let (Some(kind), Some(port_field), Some(proto)) = (fields.next(), fields.next(), fields.next())
    else {
        return Err(syntax(
            number,
            "m= line must be \"<media> <port> <proto> <fmt> ...\"",
        ));
    };
    let formats: Vec<String> = fields.map(str::to_owned).collect();
    let (port, port_count) = match port_field.split_once('/') {
        Some((port, count)) => (port, Some(count)),
        None => (port_field, None),
    };
    let port = parse_decimal::<u16>(port)
        .ok_or_else(|| syntax(number, format!("invalid port {} in m= line", show(port))))?;
    let port_count = match port_count {
        None => 1,
        Some(count) => parse_decimal::<u16>(count)
            .filter(|&count| count > 0)
            .ok_or_else(|| {
                syntax(
                    number,
                    format!("invalid port count {} in m= line", show(count)),
                )
            })?,
    };
    // RFC 4566 requires a format, but some equipment omits it on disabled streams.
    if formats.is_empty() && port != 0 {
        return Err(syntax(number, "m= line has no formats"));
    }
    let media = Media {
        kind: kind.to_owned(),
        port,
        port_count,
        proto: proto.to_owned(),
        formats,
        connection: None,
        rtpmaps: Vec::new(),
        fmtps: Vec::new(),
        direction: None,
        rtcp: None,
        rtcp_mux: false,
        ptime: None,
        maxptime: None,
    };
    if media.is_rtp()
        && let Some(bad) = media
            .formats
            .iter()
            .find(|format| parse_payload_type(format).is_none())
    {
        return Err(syntax(
            number,
            format!(
                "invalid payload type {} in m= line (must be 0-127)",
                show(bad)
            ),
        ));
    }
    Ok(media)
}

/// `a=rtpmap:<pt> <encoding>/<clock rate>[/<channels>]`
fn parse_rtpmap(number: usize, argument: Option<&str>) -> Result<RtpMap, SdpError> {
    let invalid = || {
        syntax(
            number,
            "a=rtpmap must be \"<pt> <encoding>/<clock rate>[/<channels>]\"",
        )
    };
    let fields: Vec<&str> = argument
        .ok_or_else(invalid)?
        .split_ascii_whitespace()
        .collect();
    let [pt, spec] = fields[..] else {
        return Err(invalid());
    };
    let pt = parse_payload_type(pt).ok_or_else(|| {
        syntax(
            number,
            format!(
                "invalid payload type {} in a=rtpmap (must be 0-127)",
                show(pt)
            ),
        )
    })?;
    let parts: Vec<&str> = spec.split('/').collect();
    let (encoding, clock_rate, channels) = match parts[..] {
        [encoding, clock_rate] => (encoding, clock_rate, None),
        [encoding, clock_rate, channels] => (encoding, clock_rate, Some(channels)),
        _ => return Err(invalid()),
    };
    if encoding.is_empty() {
        return Err(invalid());
    }
    let clock_rate = parse_decimal::<u32>(clock_rate)
        .filter(|&rate| rate > 0)
        .ok_or_else(|| {
            syntax(
                number,
                format!("invalid clock rate {} in a=rtpmap", show(clock_rate)),
            )
        })?;
    let channels = match channels {
        None => 1,
        Some(channels) => parse_decimal::<u8>(channels)
            .filter(|&channels| channels > 0)
            .ok_or_else(|| {
                syntax(
                    number,
                    format!("invalid channel count {} in a=rtpmap", show(channels)),
                )
            })?,
    };
    Ok(RtpMap {
        pt,
        encoding: encoding.to_owned(),
        clock_rate,
        channels,
    })
}

/// `a=fmtp:<pt> <parameters>`; the parameters are kept as text.
fn parse_fmtp(number: usize, argument: Option<&str>) -> Result<(u8, String), SdpError> {
    let argument = argument.ok_or_else(|| syntax(number, "a=fmtp has no payload type"))?;
    let (pt, params) = argument
        .split_once(|c: char| c.is_ascii_whitespace())
        .unwrap_or((argument, ""));
    let pt = parse_payload_type(pt).ok_or_else(|| {
        syntax(
            number,
            format!(
                "invalid payload type {} in a=fmtp (must be 0-127)",
                show(pt)
            ),
        )
    })?;
    Ok((pt, params.trim().to_owned()))
}

/// `a=rtcp:<port> [IN <addrtype> <address>]` (RFC 3605 §2.1).
fn parse_rtcp(number: usize, argument: Option<&str>) -> Result<(u16, Option<IpAddr>), SdpError> {
    let invalid = || syntax(number, "a=rtcp must be \"<port> [IN IP4|IP6 <address>]\"");
    let fields: Vec<&str> = argument
        .ok_or_else(invalid)?
        .split_ascii_whitespace()
        .collect();
    let (port, address) = match fields[..] {
        [port] => (port, None),
        [port, net_type, address_type, address] => {
            check_net_type(number, net_type)?;
            (port, Some(parse_address(number, address_type, address)?))
        }
        _ => return Err(invalid()),
    };
    let port = parse_decimal::<u16>(port)
        .ok_or_else(|| syntax(number, format!("invalid port {} in a=rtcp", show(port))))?;
    Ok((port, address))
}

/// A positive `a=ptime` or `a=maxptime` value in whole ms; anything else
/// (zero, fractions, signs, overflow) counts as absent.
fn parse_ptime(value: &str) -> Option<u32> {
    parse_decimal::<u32>(value).filter(|&ptime| ptime > 0)
}

/// An RTP payload type: decimal 0-127.
pub(super) fn parse_payload_type(text: &str) -> Option<u8> {
    parse_decimal::<u8>(text).filter(|&pt| pt <= 0x7f)
}

/// Plain ASCII decimal digits only (no sign, no spaces) that fit in `T`.
pub(super) fn parse_decimal<T: FromStr>(text: &str) -> Option<T> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn syntax(line: usize, message: impl Into<String>) -> SdpError {
    SdpError::Syntax {
        line,
        message: message.into(),
    }
}
