//! RFC 3264 offer/answer for legato's single audio stream.

use std::fmt::{self, Write as _};
use std::net::{IpAddr, SocketAddr};

use super::parse::{Media, RtpMap, Sdp};
use super::{
    CodecSpec, DEFAULT_TELEPHONE_EVENT_PT, MediaDirection, SdpError, TELEPHONE_EVENT,
    TELEPHONE_EVENT_CLOCK_RATE, TELEPHONE_EVENTS_OFFERED, address_type, clip,
};

/// Everything negotiation decided for the leg's audio stream.
/// `repr(C)`: the fields the packet path reads come first (see `Leg`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[repr(C)]
pub(crate) struct Negotiated {
    /// Payload type legato puts on the RTP it sends: the number in the remote's SDP
    /// (RFC 3264 §5.1: an SDP's payload types are the ones its writer expects to receive).
    pub(crate) payload_type: u8,
    /// Payload type for `codec` in legato's own SDP, i.e. on the RTP legato receives.
    /// Equal to `payload_type` except when an answerer renumbered a dynamic payload type.
    pub(crate) local_payload_type: u8,
    /// Remote's payload type for `telephone-event/8000` (RFC 4733) when both sides have it.
    pub(crate) telephone_event_pt: Option<u8>,
    /// Payload type for `telephone-event/8000` in legato's own SDP, when negotiated.
    pub(crate) local_telephone_event_pt: Option<u8>,
    /// RTP and RTCP share one port (RFC 5761): both sides signalled `a=rtcp-mux`.
    pub(crate) rtcp_mux: bool,
    /// The remote address is `0.0.0.0` (or `::`): old-style hold (RFC 2543),
    /// legato must not send RTP there.
    pub(crate) remote_on_hold_address: bool,
    /// Remote's direction: media-level attribute, else session-level, else `sendrecv`.
    pub(crate) remote_direction: MediaDirection,
    /// The direction legato put in its SDP.
    pub(crate) local_direction: MediaDirection,
    /// Where to send RTP: `c=` (media level over session level) and the `m=` port.
    pub(crate) remote_rtp: SocketAddr,
    /// The chosen codec.
    pub(crate) codec: CodecSpec,
    /// Remote's `a=ptime` (how long the packets it wants to receive are), if any.
    pub(crate) ptime: Option<u32>,
    /// Index of legato's audio stream among the `m=` lines (same in offer and answer).
    pub(crate) media_index: usize,
    /// Where to send RTCP: `a=rtcp` (RFC 3605) if given, else the RTP port + 1;
    /// equal to `remote_rtp` when `rtcp_mux` (or when the RTP port is 65535).
    pub(crate) remote_rtcp: SocketAddr,
}

/// What legato puts in its own SDP.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LocalParams<'a> {
    /// Advertised address for `c=` and `o=`.
    pub(crate) address: IpAddr,
    /// Local RTP port.
    pub(crate) rtp_port: u16,
    /// Local RTCP port, advertised with `a=rtcp` when RTCP is not multiplexed.
    pub(crate) rtcp_port: u16,
    /// Offer `a=rtcp-mux`; when answering, accept it if offered.
    pub(crate) rtcp_mux: bool,
    /// Direction legato wants; when answering it is narrowed by the offer's.
    pub(crate) direction: MediaDirection,
    /// Codecs in legato's preference order.
    pub(crate) codecs: &'a [CodecSpec],
    /// Offer, or accept, RFC 4733 `telephone-event/8000`.
    pub(crate) telephone_event: bool,
    /// Session id for the `o=` line.
    pub(crate) session_id: u64,
    /// Session version for the `o=` line; the caller increments it for each new SDP.
    pub(crate) version: u64,
    /// `a=ptime` in milliseconds (20 is usual); 0 leaves the attribute out.
    pub(crate) ptime: u32,
}

/// Writes legato's offer: one `audio` `RTP/AVP` stream with every codec in
/// `local.codecs` (static payload types where RFC 3551 defines one, else
/// dynamic from 96 up, skipping 101), `telephone-event/8000` at 101 with
/// `a=fmtp:101 0-16` when enabled, `a=ptime`, `a=rtcp`, `a=rtcp-mux` when
/// enabled, and the direction. Lines end with CRLF.
///
/// Fails with [`SdpError::InvalidLocalParams`] when `local.codecs` is empty,
/// needs more dynamic payload types than exist, or a local port is 0.
pub(crate) fn build_offer(local: &LocalParams<'_>) -> Result<String, SdpError> {
    check_ports(local)?;
    let formats = offer_formats(local)?;
    let mut out = String::with_capacity(512);
    write_session(&mut out, local);

    let mut m_line = format!("m=audio {} RTP/AVP", local.rtp_port);
    for (pt, _) in &formats {
        push_str(&mut m_line, format_args!(" {pt}"));
    }
    if local.telephone_event {
        push_str(&mut m_line, format_args!(" {DEFAULT_TELEPHONE_EVENT_PT}"));
    }
    push_line(&mut out, format_args!("{m_line}"));
    for (pt, codec) in &formats {
        write_rtpmap(&mut out, *pt, codec);
    }
    if local.telephone_event {
        write_telephone_event(
            &mut out,
            DEFAULT_TELEPHONE_EVENT_PT,
            Some(TELEPHONE_EVENTS_OFFERED),
        );
    }
    if local.ptime > 0 {
        push_line(&mut out, format_args!("a=ptime:{}", local.ptime));
    }
    // Always advertised: it is where RTCP goes if the answerer declines rtcp-mux.
    push_line(&mut out, format_args!("a=rtcp:{}", local.rtcp_port));
    if local.rtcp_mux {
        push_line(&mut out, format_args!("a=rtcp-mux"));
    }
    push_line(&mut out, format_args!("a={}", local.direction.as_str()));
    Ok(out)
}

/// Answers a remote offer (RFC 3264 §6) and returns the outcome and the answer text.
///
/// legato takes the first `audio` stream with a non-zero port, an `RTP/AVP` or
/// `RTP/AVPF` transport and a codec in common; every other stream is declined
/// with port 0. The codec is the first of `local.codecs` the stream offers
/// (static payload types 0-95 may lack `a=rtpmap`, dynamic ones need it); the
/// answer keeps the offer's payload type numbers and lists only that codec,
/// plus `telephone-event/8000` when both sides want it.
///
/// Errors: [`SdpError::NoAcceptableMedia`] saying why no stream fits,
/// [`SdpError::Missing`] without a connection address,
/// [`SdpError::AddressFamily`] when the remote address is of the other IP
/// family than `local.address` (an unspecified hold address is exempt), and
/// [`SdpError::InvalidLocalParams`] when a local port is 0.
pub(crate) fn answer(
    offer: &Sdp,
    local: &LocalParams<'_>,
) -> Result<(Negotiated, String), SdpError> {
    check_ports(local)?;
    let chosen = select_offered_audio(offer, local)?;
    let media = chosen.media;
    let rtcp_mux = media.rtcp_mux && local.rtcp_mux;
    let remote = remote_transport(offer, media, local.address, rtcp_mux)?;
    let telephone_event = if local.telephone_event {
        media
            .payload_types()
            .find(|&pt| media.rtpmap(pt).is_some_and(is_telephone_event))
    } else {
        None
    };
    let remote_direction = media.direction.or(offer.direction).unwrap_or_default();
    let local_direction = local.direction.intersect(remote_direction.reversed());

    let mut out = String::with_capacity(512);
    write_session(&mut out, local);
    for (index, offered) in offer.media.iter().enumerate() {
        if index != chosen.index {
            // RFC 3264 §6: decline with port 0, same transport, one of its formats.
            let format = offered.formats.first().map_or("0", String::as_str);
            push_line(
                &mut out,
                format_args!("m={} 0 {} {format}", offered.kind, offered.proto),
            );
            continue;
        }
        let mut m_line = format!(
            "m={} {} {} {}",
            media.kind, local.rtp_port, media.proto, chosen.pt
        );
        if let Some(pt) = telephone_event {
            push_str(&mut m_line, format_args!(" {pt}"));
        }
        push_line(&mut out, format_args!("{m_line}"));
        write_rtpmap(&mut out, chosen.pt, &chosen.codec);
        if let Some(pt) = telephone_event {
            write_telephone_event(&mut out, pt, media.fmtp(pt));
        }
        if local.ptime > 0 {
            push_line(&mut out, format_args!("a=ptime:{}", local.ptime));
        }
        if rtcp_mux {
            push_line(&mut out, format_args!("a=rtcp-mux"));
        } else {
            push_line(&mut out, format_args!("a=rtcp:{}", local.rtcp_port));
        }
        push_line(&mut out, format_args!("a={}", local_direction.as_str()));
    }

    let negotiated = Negotiated {
        media_index: chosen.index,
        codec: chosen.codec,
        payload_type: chosen.pt,
        local_payload_type: chosen.pt,
        telephone_event_pt: telephone_event,
        local_telephone_event_pt: telephone_event,
        remote_rtp: remote.rtp,
        remote_rtcp: remote.rtcp,
        rtcp_mux,
        remote_direction,
        local_direction,
        ptime: media.ptime.or(offer.ptime),
        remote_on_hold_address: remote.on_hold_address,
    };
    Ok((negotiated, out))
}

/// Reads the remote answer to the offer [`build_offer`] wrote from `offered`.
///
/// Uses the answer's first `audio` stream: port 0 is [`SdpError::Rejected`];
/// the codec is the first answered format that legato offered, recognised by
/// `a=rtpmap` or, without one, by legato's payload type number. Telephone
/// events and rtcp-mux count only when legato offered them. Direction
/// consistency is not enforced, only reported.
pub(crate) fn apply_answer(
    answer: &Sdp,
    offered: &LocalParams<'_>,
) -> Result<Negotiated, SdpError> {
    let offered_formats = offer_formats(offered)?;
    let Some((media_index, media)) = answer
        .media
        .iter()
        .enumerate()
        .find(|(_, media)| media.is_audio())
    else {
        return Err(SdpError::NoAcceptableMedia(
            "answer has no audio stream".to_owned(),
        ));
    };
    if media.port == 0 {
        return Err(SdpError::Rejected);
    }
    if !media.is_plain_rtp() {
        return Err(SdpError::NoAcceptableMedia(format!(
            "answer uses transport {} but legato offered RTP/AVP",
            clip(&media.proto)
        )));
    }
    let Some((payload_type, local_payload_type, codec)) = media.payload_types().find_map(|pt| {
        answered_codec(media, pt, &offered_formats).map(|(local_pt, codec)| (pt, local_pt, codec))
    }) else {
        return Err(SdpError::NoAcceptableMedia(format!(
            "answer has no codec legato offered (answered: {}; offered: {})",
            describe_formats(media),
            codec_names(offered_formats.iter().map(|(_, codec)| codec)),
        )));
    };
    let telephone_event_pt = if offered.telephone_event {
        media.payload_types().find(|&pt| match media.rtpmap(pt) {
            Some(map) => is_telephone_event(map),
            None => pt == DEFAULT_TELEPHONE_EVENT_PT,
        })
    } else {
        None
    };
    let rtcp_mux = media.rtcp_mux && offered.rtcp_mux;
    let remote = remote_transport(answer, media, offered.address, rtcp_mux)?;
    Ok(Negotiated {
        media_index,
        codec,
        payload_type,
        local_payload_type,
        telephone_event_pt,
        local_telephone_event_pt: telephone_event_pt.map(|_| DEFAULT_TELEPHONE_EVENT_PT),
        remote_rtp: remote.rtp,
        remote_rtcp: remote.rtcp,
        rtcp_mux,
        remote_direction: media.direction.or(answer.direction).unwrap_or_default(),
        local_direction: offered.direction,
        ptime: media.ptime.or(answer.ptime),
        remote_on_hold_address: remote.on_hold_address,
    })
}

/// The offered audio stream legato answers, and how.
struct Chosen<'a> {
    index: usize,
    media: &'a Media,
    codec: CodecSpec,
    pt: u8,
}

/// Picks the first usable audio stream, or explains why there is none.
fn select_offered_audio<'a>(
    offer: &'a Sdp,
    local: &LocalParams<'_>,
) -> Result<Chosen<'a>, SdpError> {
    let mut reasons: Vec<(usize, String)> = Vec::new();
    for (index, media) in offer.media.iter().enumerate() {
        if !media.is_audio() {
            continue;
        }
        let reason = if media.port == 0 {
            "audio stream is disabled (port 0)".to_owned()
        } else if media.is_srtp() {
            format!("SRTP ({}) is not supported", clip(&media.proto))
        } else if !media.is_plain_rtp() {
            format!("transport {} is not supported", clip(&media.proto))
        } else if let Some((codec, pt)) = choose_codec(media, local.codecs) {
            return Ok(Chosen {
                index,
                media,
                codec,
                pt,
            });
        } else {
            format!(
                "no common codec (offered: {}; supported: {})",
                describe_formats(media),
                codec_names(local.codecs.iter()),
            )
        };
        reasons.push((index, reason));
    }
    let message = match &reasons[..] {
        [] => "no audio stream offered".to_owned(),
        [(_, reason)] => reason.clone(),
        many => {
            let mut message = String::new();
            for (n, (index, reason)) in many.iter().enumerate() {
                if n == MAX_REASONS {
                    push_str(
                        &mut message,
                        format_args!("; {} more", many.len() - MAX_REASONS),
                    );
                    break;
                }
                let separator = if n == 0 { "" } else { "; " };
                push_str(
                    &mut message,
                    format_args!("{separator}m= line {}: {reason}", index + 1),
                );
            }
            message
        }
    };
    Err(SdpError::NoAcceptableMedia(message))
}

/// The first codec of `codecs` (preference order) that `media` offers, with the offer's PT.
fn choose_codec(media: &Media, codecs: &[CodecSpec]) -> Option<(CodecSpec, u8)> {
    codecs.iter().find_map(|codec| {
        media
            .payload_types()
            .find(|&pt| match media.rtpmap(pt) {
                Some(map) => codec.matches_rtpmap(map),
                None => pt < FIRST_DYNAMIC_PT && codec.static_pt == Some(pt),
            })
            .map(|pt| (*codec, pt))
    })
}

/// Which of legato's offered formats an answered payload type denotes:
/// `(legato's PT, codec)`.
fn answered_codec(media: &Media, pt: u8, offered: &[(u8, CodecSpec)]) -> Option<(u8, CodecSpec)> {
    match media.rtpmap(pt) {
        Some(map) => offered
            .iter()
            .find(|(_, codec)| codec.matches_rtpmap(map))
            .copied(),
        None => offered
            .iter()
            .find(|(offered_pt, _)| *offered_pt == pt)
            .copied(),
    }
}

fn is_telephone_event(map: &RtpMap) -> bool {
    map.encoding.eq_ignore_ascii_case(TELEPHONE_EVENT)
        && map.clock_rate == TELEPHONE_EVENT_CLOCK_RATE
}

/// Payload types for legato's offer, in preference order, without duplicates.
fn offer_formats(local: &LocalParams<'_>) -> Result<Vec<(u8, CodecSpec)>, SdpError> {
    let mut formats: Vec<(u8, CodecSpec)> = Vec::with_capacity(local.codecs.len());
    let mut next_dynamic = FIRST_DYNAMIC_PT;
    for codec in local.codecs {
        if formats.iter().any(|(_, known)| known == codec) {
            continue;
        }
        let pt = match codec.static_pt {
            Some(pt) => pt,
            None => {
                if next_dynamic == DEFAULT_TELEPHONE_EVENT_PT {
                    next_dynamic += 1;
                }
                if next_dynamic > LAST_DYNAMIC_PT {
                    return Err(SdpError::InvalidLocalParams(
                        "more dynamic codecs than free payload types",
                    ));
                }
                next_dynamic += 1;
                next_dynamic - 1
            }
        };
        formats.push((pt, *codec));
    }
    if formats.is_empty() {
        return Err(SdpError::InvalidLocalParams("no codecs"));
    }
    Ok(formats)
}

/// Port 0 in legato's own SDP would decline the stream; that is not what the caller means.
fn check_ports(local: &LocalParams<'_>) -> Result<(), SdpError> {
    if local.rtp_port == 0 || local.rtcp_port == 0 {
        Err(SdpError::InvalidLocalParams("local port 0"))
    } else {
        Ok(())
    }
}

/// Remote transport addresses of a stream.
struct RemoteTransport {
    rtp: SocketAddr,
    rtcp: SocketAddr,
    on_hold_address: bool,
}

fn remote_transport(
    sdp: &Sdp,
    media: &Media,
    local: IpAddr,
    rtcp_mux: bool,
) -> Result<RemoteTransport, SdpError> {
    let ip = media
        .connection
        .or(sdp.connection)
        .ok_or(SdpError::Missing(
            "connection address (c= line) for the audio stream",
        ))?;
    check_family(ip, local)?;
    check_unicast(ip, "connection address", true)?;
    let rtp = SocketAddr::new(ip, media.port);
    let rtcp = if rtcp_mux {
        rtp
    } else if let Some((port, address)) = media.rtcp {
        let rtcp_ip = address.unwrap_or(ip);
        check_family(rtcp_ip, local)?;
        check_unicast(rtcp_ip, "a=rtcp address", address.is_none())?;
        SocketAddr::new(rtcp_ip, port)
    } else {
        // RFC 3550 §11: the next port; 65535 has none, so keep the RTP port.
        SocketAddr::new(ip, media.port.checked_add(1).unwrap_or(media.port))
    };
    Ok(RemoteTransport {
        rtp,
        rtcp,
        on_hold_address: ip.is_unspecified(),
    })
}

/// legato sends only to one party: multicast and broadcast addresses are
/// refused, and so is an unspecified address unless it is the old hold
/// convention (`c=` 0.0.0.0 or `::`, RFC 3264 §8.4), which legato never
/// sends to.
fn check_unicast(ip: IpAddr, what: &'static str, hold_allowed: bool) -> Result<(), SdpError> {
    let ip = ip.to_canonical();
    let kind = if ip.is_multicast() {
        "a multicast address"
    } else if ip == IpAddr::V4(std::net::Ipv4Addr::BROADCAST) {
        "the broadcast address"
    } else if ip.is_unspecified() && !hold_allowed {
        "unspecified"
    } else {
        return Ok(());
    };
    Err(SdpError::NotUnicast {
        what,
        address: ip,
        kind,
    })
}

/// The remote address must be of `local`'s family, except an unspecified hold address.
fn check_family(remote: IpAddr, local: IpAddr) -> Result<(), SdpError> {
    if remote.is_unspecified() || remote.is_ipv4() == local.is_ipv4() {
        Ok(())
    } else {
        Err(SdpError::AddressFamily {
            remote: address_type(remote),
            local: address_type(local),
        })
    }
}

fn write_session(out: &mut String, local: &LocalParams<'_>) {
    let family = address_type(local.address);
    push_line(out, format_args!("v=0"));
    push_line(
        out,
        format_args!(
            "o=legato {} {} IN {family} {}",
            local.session_id, local.version, local.address
        ),
    );
    push_line(out, format_args!("s=legato"));
    push_line(out, format_args!("c=IN {family} {}", local.address));
    push_line(out, format_args!("t=0 0"));
}

fn write_rtpmap(out: &mut String, pt: u8, codec: &CodecSpec) {
    if codec.channels == 1 {
        push_line(
            out,
            format_args!("a=rtpmap:{pt} {}/{}", codec.name, codec.clock_rate),
        );
    } else {
        push_line(
            out,
            format_args!(
                "a=rtpmap:{pt} {}/{}/{}",
                codec.name, codec.clock_rate, codec.channels
            ),
        );
    }
}

fn write_telephone_event(out: &mut String, pt: u8, fmtp: Option<&str>) {
    push_line(
        out,
        format_args!("a=rtpmap:{pt} {TELEPHONE_EVENT}/{TELEPHONE_EVENT_CLOCK_RATE}"),
    );
    if let Some(params) = fmtp.filter(|params| !params.is_empty()) {
        push_line(out, format_args!("a=fmtp:{pt} {params}"));
    }
}

/// Human-readable format list of an offered or answered stream, for error messages.
fn describe_formats(media: &Media) -> String {
    let mut text = String::new();
    for (n, pt) in media.payload_types().enumerate() {
        if n == MAX_DESCRIBED_FORMATS {
            text.push_str(", ...");
            break;
        }
        if n > 0 {
            text.push_str(", ");
        }
        match media.rtpmap(pt) {
            Some(map) if map.channels == 1 => push_str(
                &mut text,
                format_args!("{}/{}", clip(&map.encoding), map.clock_rate),
            ),
            Some(map) => push_str(
                &mut text,
                format_args!(
                    "{}/{}/{}",
                    clip(&map.encoding),
                    map.clock_rate,
                    map.channels
                ),
            ),
            None => match static_payload_name(pt) {
                Some(name) => text.push_str(name),
                None => push_str(&mut text, format_args!("{pt} without rtpmap")),
            },
        }
    }
    if text.is_empty() {
        text.push_str("nothing");
    }
    text
}

fn codec_names<'c>(codecs: impl Iterator<Item = &'c CodecSpec>) -> String {
    let names: Vec<&str> = codecs.map(|codec| codec.name).collect();
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

/// Audio encodings of RFC 3551 §6 static payload types, for error messages only.
fn static_payload_name(pt: u8) -> Option<&'static str> {
    Some(match pt {
        0 => "PCMU",
        3 => "GSM",
        4 => "G723",
        5 => "DVI4/8000",
        6 => "DVI4/16000",
        7 => "LPC",
        8 => "PCMA",
        9 => "G722",
        10 => "L16/44100/2",
        11 => "L16/44100",
        12 => "QCELP",
        13 => "CN",
        14 => "MPA",
        15 => "G728",
        16 => "DVI4/11025",
        17 => "DVI4/22050",
        18 => "G729",
        _ => return None,
    })
}

/// Appends formatted text and CRLF.
fn push_line(out: &mut String, args: fmt::Arguments<'_>) {
    push_str(out, args);
    out.push_str("\r\n");
}

/// Appends formatted text.
fn push_str(out: &mut String, args: fmt::Arguments<'_>) {
    // Writing into a String cannot fail.
    let _ = out.write_fmt(args);
}

/// First dynamic RTP payload type (RFC 3551 §3).
const FIRST_DYNAMIC_PT: u8 = 96;

/// Last RTP payload type (7 bits).
const LAST_DYNAMIC_PT: u8 = 0x7f;

/// Streams named in a "no acceptable media" message before it says "N more".
const MAX_REASONS: usize = 4;

/// Formats listed in an error message before it says "...".
const MAX_DESCRIBED_FORMATS: usize = 12;
