//! RFC 3264 offer/answer for legato's single audio stream.

use std::fmt::{self, Write as _};
use std::net::{IpAddr, SocketAddr};

use super::opus::{OpusParams, write_local_fmtp};
use super::parse::{Media, RtpMap, Sdp};
use super::{
    CodecKind, CodecSpec, DEFAULT_PTIME_MS, DEFAULT_TELEPHONE_EVENT_PT, MAX_PTIME_MS, MIN_PTIME_MS,
    MediaDirection, OPUS_FRAME_MS, SUPPORTED_CODECS, SdpError, TELEPHONE_EVENT,
    TELEPHONE_EVENTS_OFFERED, address_type, clip,
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
    /// Remote's payload type for `telephone-event` at `telephone_event_rate`
    /// (RFC 4733), when both sides have it: what legato sends events with.
    pub(crate) telephone_event_pt: Option<u8>,
    /// Payload type for `telephone-event` at `telephone_event_rate` in legato's
    /// own SDP (the events legato receives), when negotiated.
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
    /// The codec legato sends (and, first of all, expects to receive).
    pub(crate) codec: CodecSpec,
    /// How much audio each packet legato sends carries, in ms: the remote's
    /// `a=ptime` (else legato's own), made a multiple of 10 within 10..=60,
    /// never above the remote's `a=maxptime`, and for Opus one of
    /// [`OPUS_FRAME_MS`]. See the module docs.
    pub(crate) send_ptime_ms: u32,
    /// The packet duration legato asked for in its own `a=ptime`, in ms (20
    /// when it wrote none). The remote may send other durations; the receive
    /// path must follow the packets, not this.
    pub(crate) recv_ptime_ms: u32,
    /// Clock rate of the negotiated `telephone-event` (RFC 4733 §7.1.1): always
    /// `codec.clock_rate` (8000 for G.711 and G.722, 48000 for Opus), `None`
    /// without telephone events.
    pub(crate) telephone_event_rate: Option<u32>,
    /// Every format the remote may send legato according to the exchange, as
    /// (legato's payload type, codec); the first is `local_payload_type` and
    /// `codec`. More than one only when legato offered and the remote answered
    /// several of its codecs (RFC 3264 §7): the remote may then switch between
    /// them mid-call, and the receive path should follow.
    pub(crate) receive_formats: ReceiveFormats,
    /// Remote's `a=ptime` (media level, else session level, else the Opus
    /// fmtp `ptime`) as written, if any.
    pub(crate) remote_ptime: Option<u32>,
    /// Remote's `a=maxptime` (media level, else session level, else the Opus
    /// fmtp `maxptime`) as written, if any.
    pub(crate) remote_maxptime: Option<u32>,
    /// Index of legato's audio stream among the `m=` lines (same in offer and answer).
    pub(crate) media_index: usize,
    /// Where to send RTCP: `a=rtcp` (RFC 3605) if given, else the RTP port + 1;
    /// equal to `remote_rtp` when `rtcp_mux` (or when the RTP port is 65535).
    pub(crate) remote_rtcp: SocketAddr,
    /// The remote's Opus `a=fmtp` (defaults without one) when Opus is among
    /// the negotiated formats (`codec` or `receive_formats`), else `None`.
    pub(crate) opus: Option<OpusParams>,
}

/// Most entries in [`ReceiveFormats`]: one per supported codec, since legato
/// offers each codec once.
pub(crate) const MAX_RECEIVE_FORMATS: usize = 4;

const _: () = assert!(SUPPORTED_CODECS.len() <= MAX_RECEIVE_FORMATS);

/// The (legato's payload type, codec) pairs the remote may send, in order,
/// without duplicate payload types; a fixed-size `Copy` value, so cloning a
/// [`Negotiated`] never allocates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ReceiveFormats {
    entries: [Option<(u8, CodecSpec)>; MAX_RECEIVE_FORMATS],
    len: u8,
}

impl ReceiveFormats {
    /// Just one format.
    pub(crate) fn one(pt: u8, codec: CodecSpec) -> Self {
        let mut formats = Self::default();
        formats.push(pt, codec);
        formats
    }

    /// Appends a format; returns false (and changes nothing) when `pt` is
    /// already listed or all [`MAX_RECEIVE_FORMATS`] places are taken.
    pub(crate) fn push(&mut self, pt: u8, codec: CodecSpec) -> bool {
        let len = usize::from(self.len);
        if len == MAX_RECEIVE_FORMATS || self.codec_for(pt).is_some() {
            return false;
        }
        self.entries[len] = Some((pt, codec));
        self.len += 1;
        true
    }

    /// The codec legato receives with payload type `pt`, if it is listed.
    pub(crate) fn codec_for(&self, pt: u8) -> Option<CodecSpec> {
        self.iter()
            .find(|(listed, _)| *listed == pt)
            .map(|(_, codec)| codec)
    }

    /// The negotiated format.
    #[cfg(test)]
    pub(crate) fn first(&self) -> Option<(u8, CodecSpec)> {
        self.entries[0]
    }

    /// How many formats are listed.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether no format is listed (never so in a [`Negotiated`]).
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The formats in order, the negotiated one first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u8, CodecSpec)> + '_ {
        self.entries.iter().flatten().copied()
    }
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
    /// Offer, or accept, RFC 4733 `telephone-event` at the clock rate of each
    /// codec (8000 and, with Opus, 48000).
    pub(crate) telephone_event: bool,
    /// Session id for the `o=` line.
    pub(crate) session_id: u64,
    /// Session version for the `o=` line; the caller increments it for each new SDP.
    pub(crate) version: u64,
    /// `a=ptime` in milliseconds: the packet duration legato asks to receive,
    /// one of 10, 20, ..., 60 (see [`super::is_valid_ptime`]); 0 leaves the
    /// attribute out and counts as [`DEFAULT_PTIME_MS`].
    pub(crate) ptime: u32,
}

/// Writes legato's offer: one `audio` `RTP/AVP` stream with every codec in
/// `local.codecs` (static payload types where RFC 3551 defines one, else
/// dynamic from 96 up, skipping 101) and legato's Opus `a=fmtp`; when enabled,
/// `telephone-event` at each codec clock rate (`/8000` at 101 with
/// `a=fmtp:101 0-16`, others at the next free dynamic payload type, left out
/// if none is free); `a=ptime`, `a=maxptime:60`, `a=rtcp`, `a=rtcp-mux` when
/// enabled, and the direction. Lines end with CRLF.
///
/// Fails with [`SdpError::InvalidLocalParams`] when `local.codecs` is empty,
/// needs more dynamic payload types than exist, or a local port is 0.
pub(crate) fn build_offer(local: &LocalParams<'_>) -> Result<String, SdpError> {
    check_ports(local)?;
    let formats = offer_formats(local)?;
    let mut out = String::with_capacity(640);
    write_session(&mut out, local);

    let mut m_line = format!("m=audio {} RTP/AVP", local.rtp_port);
    for (pt, _) in &formats.codecs {
        push_str(&mut m_line, format_args!(" {pt}"));
    }
    for (pt, _) in &formats.telephone_events {
        push_str(&mut m_line, format_args!(" {pt}"));
    }
    push_line(&mut out, format_args!("{m_line}"));
    for (pt, codec) in &formats.codecs {
        write_rtpmap(&mut out, *pt, codec);
    }
    for &(pt, rate) in &formats.telephone_events {
        write_telephone_event(&mut out, pt, rate, Some(TELEPHONE_EVENTS_OFFERED));
    }
    write_ptime(&mut out, local);
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
/// answer keeps the offer's payload type numbers and lists only that codec
/// (with legato's Opus `a=fmtp` for Opus), plus the offered `telephone-event`
/// whose clock rate is the codec's when both sides want it.
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
        media.payload_types().find(|&pt| {
            media
                .rtpmap(pt)
                .is_some_and(|map| is_telephone_event(map, chosen.codec.clock_rate))
        })
    } else {
        None
    };
    let remote_direction = media.direction.or(offer.direction).unwrap_or_default();
    let local_direction = local.direction.intersect(remote_direction.reversed());

    let mut out = String::with_capacity(640);
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
            write_telephone_event(&mut out, pt, chosen.codec.clock_rate, media.fmtp(pt));
        }
        write_ptime(&mut out, local);
        if rtcp_mux {
            push_line(&mut out, format_args!("a=rtcp-mux"));
        } else {
            push_line(&mut out, format_args!("a=rtcp:{}", local.rtcp_port));
        }
        push_line(&mut out, format_args!("a={}", local_direction.as_str()));
    }

    let opus = (chosen.codec.kind == CodecKind::Opus)
        .then(|| OpusParams::parse(media.fmtp(chosen.pt).unwrap_or("")));
    let ptime = Ptime::of(offer, media, opus.as_ref(), &chosen.codec, local);
    let negotiated = Negotiated {
        media_index: chosen.index,
        codec: chosen.codec,
        payload_type: chosen.pt,
        local_payload_type: chosen.pt,
        telephone_event_pt: telephone_event,
        local_telephone_event_pt: telephone_event,
        telephone_event_rate: telephone_event.map(|_| chosen.codec.clock_rate),
        remote_rtp: remote.rtp,
        remote_rtcp: remote.rtcp,
        rtcp_mux,
        remote_direction,
        local_direction,
        send_ptime_ms: ptime.send,
        recv_ptime_ms: ptime.recv,
        remote_ptime: ptime.remote,
        remote_maxptime: ptime.remote_max,
        receive_formats: ReceiveFormats::one(chosen.pt, chosen.codec),
        remote_on_hold_address: remote.on_hold_address,
        opus,
    };
    Ok((negotiated, out))
}

/// Reads the remote answer to the offer [`build_offer`] wrote from `offered`.
///
/// Uses the answer's first `audio` stream: port 0 is [`SdpError::Rejected`];
/// the codec is the first answered format that legato offered, recognised by
/// `a=rtpmap` or, without one, by legato's payload type number; every other
/// answered format legato offered goes into `receive_formats` too. Telephone
/// events count only when legato offered them at the codec's clock rate, and
/// rtcp-mux only when legato offered it. Direction consistency is not
/// enforced, only reported.
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
    let mut chosen: Option<(u8, u8, CodecSpec)> = None;
    let mut receive_formats = ReceiveFormats::default();
    let mut remote_opus_pt = None;
    for pt in media.payload_types() {
        let Some((local_pt, codec)) = answered_codec(media, pt, &offered_formats.codecs) else {
            continue;
        };
        if receive_formats.push(local_pt, codec) && codec.kind == CodecKind::Opus {
            remote_opus_pt = Some(pt);
        }
        chosen.get_or_insert((pt, local_pt, codec));
    }
    let Some((payload_type, local_payload_type, codec)) = chosen else {
        return Err(SdpError::NoAcceptableMedia(format!(
            "answer has no codec legato offered (answered: {}; offered: {})",
            describe_formats(media),
            codec_names(offered_formats.codecs.iter().map(|(_, codec)| codec)),
        )));
    };
    let local_telephone_event_pt = offered_formats
        .telephone_events
        .iter()
        .find(|(_, rate)| *rate == codec.clock_rate)
        .map(|(pt, _)| *pt);
    let telephone_event_pt = local_telephone_event_pt.and_then(|local_pt| {
        media.payload_types().find(|&pt| match media.rtpmap(pt) {
            Some(map) => is_telephone_event(map, codec.clock_rate),
            None => pt == local_pt,
        })
    });
    let rtcp_mux = media.rtcp_mux && offered.rtcp_mux;
    let remote = remote_transport(answer, media, offered.address, rtcp_mux)?;
    let opus = remote_opus_pt.map(|pt| OpusParams::parse(media.fmtp(pt).unwrap_or("")));
    let ptime = Ptime::of(answer, media, opus.as_ref(), &codec, offered);
    Ok(Negotiated {
        media_index,
        codec,
        payload_type,
        local_payload_type,
        telephone_event_pt,
        local_telephone_event_pt: telephone_event_pt.and(local_telephone_event_pt),
        telephone_event_rate: telephone_event_pt.map(|_| codec.clock_rate),
        remote_rtp: remote.rtp,
        remote_rtcp: remote.rtcp,
        rtcp_mux,
        remote_direction: media.direction.or(answer.direction).unwrap_or_default(),
        local_direction: offered.direction,
        send_ptime_ms: ptime.send,
        recv_ptime_ms: ptime.recv,
        remote_ptime: ptime.remote,
        remote_maxptime: ptime.remote_max,
        receive_formats,
        remote_on_hold_address: remote.on_hold_address,
        opus,
    })
}

/// Packet durations decided by an exchange, in ms.
struct Ptime {
    /// What legato sends.
    send: u32,
    /// What legato asked for.
    recv: u32,
    /// The remote's `a=ptime` as written.
    remote: Option<u32>,
    /// The remote's `a=maxptime` as written.
    remote_max: Option<u32>,
}

impl Ptime {
    /// Reads the remote's `a=ptime` and `a=maxptime` (media level, session
    /// level, then the Opus fmtp spelling) and decides the durations.
    fn of(
        sdp: &Sdp,
        media: &Media,
        opus: Option<&OpusParams>,
        codec: &CodecSpec,
        local: &LocalParams<'_>,
    ) -> Self {
        let remote = media
            .ptime
            .or(sdp.ptime)
            .or_else(|| opus.and_then(|opus| opus.ptime));
        let remote_max = media
            .maxptime
            .or(sdp.maxptime)
            .or_else(|| opus.and_then(|opus| opus.maxptime));
        let recv = local_ptime(local);
        Self {
            send: send_ptime(remote.unwrap_or(recv), remote_max, codec.kind),
            recv,
            remote,
            remote_max,
        }
    }
}

/// The packet duration legato asks for: `local.ptime`, or the default for 0.
fn local_ptime(local: &LocalParams<'_>) -> u32 {
    if local.ptime == 0 {
        DEFAULT_PTIME_MS
    } else {
        local.ptime
    }
}

/// The packet duration legato sends, from the one wanted and the remote's
/// `a=maxptime`, both mere hints (RFC 4566 §6) so never errors: `wanted` is
/// clamped into 10..=60 and rounded to the nearest multiple of 10 (halves up);
/// `maxptime` is clamped into 10..=60 and rounded down to a multiple of 10,
/// and caps the result. Opus then takes the nearest frame size of
/// [`OPUS_FRAME_MS`] within the cap (the longer one on a tie).
pub(super) fn send_ptime(wanted: u32, maxptime: Option<u32>, kind: CodecKind) -> u32 {
    let cap = maxptime.map_or(MAX_PTIME_MS, |max| {
        max.clamp(MIN_PTIME_MS, MAX_PTIME_MS) / 10 * 10
    });
    let ms = (wanted.clamp(MIN_PTIME_MS, MAX_PTIME_MS) + 5) / 10 * 10;
    let ms = ms.min(cap);
    if kind != CodecKind::Opus {
        return ms;
    }
    OPUS_FRAME_MS
        .iter()
        .copied()
        .filter(|&frame| frame <= cap)
        .min_by_key(|&frame| (frame.abs_diff(ms), std::cmp::Reverse(frame)))
        .unwrap_or(MIN_PTIME_MS)
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

/// Whether `map` is `telephone-event` at `clock_rate`.
fn is_telephone_event(map: &RtpMap, clock_rate: u32) -> bool {
    map.encoding.eq_ignore_ascii_case(TELEPHONE_EVENT) && map.clock_rate == clock_rate
}

/// Payload types of legato's offer.
struct OfferFormats {
    /// Codecs in preference order, without duplicates.
    codecs: Vec<(u8, CodecSpec)>,
    /// `telephone-event` payload types and clock rates, one per codec clock
    /// rate (when enabled).
    telephone_events: Vec<(u8, u32)>,
}

/// Payload types for legato's offer: codecs first (static ones where RFC 3551
/// has one, dynamic from 96 skipping 101), then `telephone-event` per codec
/// clock rate, 8000 at 101, other rates at the next free dynamic type (a rate
/// with none free goes without events).
fn offer_formats(local: &LocalParams<'_>) -> Result<OfferFormats, SdpError> {
    let mut codecs: Vec<(u8, CodecSpec)> = Vec::with_capacity(local.codecs.len());
    let mut next_dynamic = FIRST_DYNAMIC_PT;
    let mut take_dynamic = || {
        if next_dynamic == DEFAULT_TELEPHONE_EVENT_PT {
            next_dynamic += 1;
        }
        if next_dynamic > LAST_DYNAMIC_PT {
            return None;
        }
        next_dynamic += 1;
        Some(next_dynamic - 1)
    };
    for codec in local.codecs {
        if codecs.iter().any(|(_, known)| known == codec) {
            continue;
        }
        let pt = match codec.static_pt {
            Some(pt) => pt,
            None => take_dynamic().ok_or(SdpError::InvalidLocalParams(
                "more dynamic codecs than free payload types",
            ))?,
        };
        codecs.push((pt, *codec));
    }
    if codecs.is_empty() {
        return Err(SdpError::InvalidLocalParams("no codecs"));
    }
    let mut telephone_events: Vec<(u8, u32)> = Vec::new();
    if local.telephone_event {
        for (_, codec) in &codecs {
            let rate = codec.clock_rate;
            if telephone_events.iter().any(|(_, known)| *known == rate) {
                continue;
            }
            let pt = if rate == TELEPHONE_EVENT_8000 {
                Some(DEFAULT_TELEPHONE_EVENT_PT)
            } else {
                take_dynamic()
            };
            if let Some(pt) = pt {
                telephone_events.push((pt, rate));
            }
        }
    }
    Ok(OfferFormats {
        codecs,
        telephone_events,
    })
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

/// `a=rtpmap` for a codec, and legato's `a=fmtp` for Opus.
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
    if codec.kind == CodecKind::Opus {
        push_str(out, format_args!("a=fmtp:{pt} "));
        write_local_fmtp(out);
        out.push_str("\r\n");
    }
}

/// `a=ptime` (unless 0) and `a=maxptime`.
fn write_ptime(out: &mut String, local: &LocalParams<'_>) {
    if local.ptime > 0 {
        push_line(out, format_args!("a=ptime:{}", local.ptime));
    }
    push_line(out, format_args!("a=maxptime:{MAX_PTIME_MS}"));
}

fn write_telephone_event(out: &mut String, pt: u8, clock_rate: u32, fmtp: Option<&str>) {
    push_line(
        out,
        format_args!("a=rtpmap:{pt} {TELEPHONE_EVENT}/{clock_rate}"),
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

/// The `telephone-event` clock rate that gets [`DEFAULT_TELEPHONE_EVENT_PT`].
const TELEPHONE_EVENT_8000: u32 = 8000;

/// First dynamic RTP payload type (RFC 3551 §3).
const FIRST_DYNAMIC_PT: u8 = 96;

/// Last RTP payload type (7 bits).
const LAST_DYNAMIC_PT: u8 = 0x7f;

/// Streams named in a "no acceptable media" message before it says "N more".
const MAX_REASONS: usize = 4;

/// Formats listed in an error message before it says "...".
const MAX_DESCRIBED_FORMATS: usize = 12;
