//! Default, human-readable output: one line per leg, session or event;
//! `key=value` pairs after a fixed prefix, free text quoted.

use std::fmt::Write as _;

use legato_client::{MediaEndpoint, proto};

use crate::names;

/// `leg l1 CONNECTED incoming PCMU/8000 local 127.0.0.1:30000 remote
/// 192.0.2.7:4000 session=s1 ...`
pub(crate) fn leg_line(leg: &proto::Leg) -> String {
    let mut line = format!(
        "leg {} {} {} {} local {} remote {} session={}",
        leg.leg_id,
        names::leg_state(leg.state),
        if leg.incoming { "incoming" } else { "outgoing" },
        leg.codec.as_ref().map_or_else(|| "-".to_owned(), codec),
        optional_address(leg.local_rtp.as_ref()),
        optional_address(leg.remote_rtp.as_ref()),
        leg.session_id,
    );
    if let Some(latched) = &leg.latched_rtp
        && leg.remote_rtp.as_ref() != Some(latched)
    {
        let _ = write!(line, " latched={}", address(latched));
    }
    if leg.on_hold {
        line.push_str(" on-hold");
    }
    if !leg.media_source_leg_id.is_empty() {
        let _ = write!(line, " source={}", leg.media_source_leg_id);
    }
    if !leg.media_source_conference_id.is_empty() {
        let _ = write!(line, " conference={}", leg.media_source_conference_id);
    }
    if !leg.playback_id.is_empty() {
        let _ = write!(line, " playback={}", leg.playback_id);
    }
    match proto::MediaPath::try_from(leg.media_path) {
        Ok(proto::MediaPath::Convert) => line.push_str(" converting"),
        Ok(proto::MediaPath::Pcm) => line.push_str(" transcoding"),
        _ if leg.transcoding => line.push_str(" transcoding"),
        _ => {}
    }
    if !leg.media_sink_leg_ids.is_empty() {
        let _ = write!(line, " sinks={}", leg.media_sink_leg_ids.join(","));
    }
    if leg.termination_code != 0 {
        let _ = write!(line, " code={}", leg.termination_code);
    }
    line
}

/// Every field of a leg: the summary line, then one indented line per
/// group of fields.
pub(crate) fn leg_details(leg: &proto::Leg) -> String {
    let mut out = leg_line(leg);
    let mut row = |label: &str, value: String| {
        let _ = write!(out, "\n  {label:<13} {value}");
    };
    row("description", quote(&leg.description));
    let metadata = leg.metadata.clone().unwrap_or_default();
    row(
        "metadata",
        format!(
            "caller_id={} display_name={} number={} client_type={} custom_data={}",
            quote(&metadata.caller_id),
            quote(&metadata.display_name),
            quote(&metadata.number),
            names::client_type(metadata.client_type),
            quote(&metadata.custom_data),
        ),
    );
    row(
        "codec",
        format!(
            "{} pt={} telephone-event pt={}",
            leg.codec.as_ref().map_or_else(|| "-".to_owned(), codec),
            leg.codec
                .as_ref()
                .map_or_else(|| "-".to_owned(), |c| c.payload_type.to_string()),
            optional_number(leg.telephone_event_payload_type),
        ),
    );
    row(
        "local",
        format!(
            "rtp={} rtcp={} rtcp-mux={} direction={}",
            optional_address(leg.local_rtp.as_ref()),
            optional_address(leg.local_rtcp.as_ref()),
            yes_no(leg.rtcp_mux),
            names::media_direction(leg.local_direction),
        ),
    );
    row(
        "remote",
        format!(
            "rtp={} latched={} direction={} on-hold={}",
            optional_address(leg.remote_rtp.as_ref()),
            optional_address(leg.latched_rtp.as_ref()),
            names::media_direction(leg.remote_direction),
            yes_no(leg.on_hold),
        ),
    );
    row(
        "routing",
        format!(
            "source={}{} sinks={}{}",
            optional_text(&leg.media_source_leg_id),
            if !leg.media_source_conference_id.is_empty() {
                format!(" conference={}", leg.media_source_conference_id)
            } else if !leg.playback_id.is_empty() {
                format!(" playback={}", leg.playback_id)
            } else {
                String::new()
            },
            if leg.media_sink_leg_ids.is_empty() {
                "-".to_owned()
            } else {
                leg.media_sink_leg_ids.join(",")
            },
            match proto::MediaPath::try_from(leg.media_path) {
                Ok(proto::MediaPath::Convert) => " (G.711 law converted per packet)",
                Ok(proto::MediaPath::Pcm) => " (transcoding)",
                _ if leg.transcoding => " (transcoding)",
                _ => "",
            },
        ),
    );
    row("voice-active", yes_no(leg.voice_active).to_owned());
    row("created", time_ms(leg.created_at_ms));
    row("connected", time_ms(leg.connected_at_ms));
    row("termination", optional_number(leg.termination_code));
    row(
        "counters",
        leg.counters
            .as_ref()
            .map_or_else(|| "-".to_owned(), counters),
    );
    out
}

/// `session s1 created=2023-11-14T22:13:20Z age=75s idle=3s legs=l1,l2`,
/// with ` idle_limit=..` and ` max_duration=..` when the session has them;
/// `now_ms` is the current time in ms since the Unix epoch.
pub(crate) fn session_line(session: &proto::SessionInfo, now_ms: i64) -> String {
    let mut limits = String::new();
    if session.idle_timeout_ms > 0 {
        let _ = write!(limits, " idle_limit={}", seconds(session.idle_timeout_ms));
    }
    if session.max_duration_ms > 0 {
        let _ = write!(limits, " max_duration={}", seconds(session.max_duration_ms));
    }
    let age = u64::try_from(now_ms.saturating_sub(session.created_at_ms)).unwrap_or(0);
    format!(
        "session {} created={} age={} idle={}{limits} legs={}",
        session.session_id,
        time_ms(session.created_at_ms),
        seconds(age),
        seconds(session.idle_ms),
        if session.leg_ids.is_empty() {
            "-".to_owned()
        } else {
            session.leg_ids.join(",")
        },
    )
}

/// `leg l1` or `conference c1`.
pub(crate) fn media_endpoint(endpoint: &MediaEndpoint) -> String {
    match endpoint {
        MediaEndpoint::Leg(id) => format!("leg {id}"),
        MediaEndpoint::Conference(id) => format!("conference {id}"),
        _ => endpoint.id().to_owned(),
    }
}

/// Media statistics on one line.
pub(crate) fn statistics(stats: &proto::MediaStatistics) -> String {
    let mut line = format!(
        "codec={}/{} jitter_ms={:.1} packets_lost={} fraction_lost={:.3} rtt_ms={} mos={:.2} \
         remote_jitter_ms={:.1} remote_fraction_lost={:.3} jitter_buffer_ms={:.0}/{:.0} \
         concealed={} rtcp_sent={} rtcp_received={}",
        if stats.codec.is_empty() {
            "-"
        } else {
            &stats.codec
        },
        stats.clock_rate,
        stats.jitter_ms,
        stats.packets_lost,
        stats.fraction_lost,
        if stats.rtt_known {
            format!("{:.1}", stats.rtt_ms)
        } else {
            "-".to_owned()
        },
        stats.mos,
        stats.remote_jitter_ms,
        stats.remote_fraction_lost,
        stats.jitter_buffer_delay_ms,
        stats.jitter_buffer_target_ms,
        stats.concealed_frames,
        stats.rtcp_reports_sent,
        stats.rtcp_reports_received,
    );
    if let Some(c) = &stats.counters {
        let _ = write!(line, " {}", counters(c));
    }
    line
}

/// `#42 12:00:01.123 session=s1 leg=l1 Connected codec=PCMU/8000` (time in
/// UTC).
pub(crate) fn event_line(event: &proto::Event) -> String {
    let mut line = format!(
        "#{} {} session={}",
        event.sequence,
        event
            .timestamp
            .as_ref()
            .map_or_else(|| "--:--:--.---".to_owned(), clock),
        event.session_id,
    );
    if !event.leg_id.is_empty() {
        let _ = write!(line, " leg={}", event.leg_id);
    }
    line.push(' ');
    match &event.kind {
        Some(kind) => line.push_str(&event_kind(kind)),
        None => line.push_str("Unknown"),
    }
    line
}

fn event_kind(kind: &proto::event::Kind) -> String {
    use proto::event::Kind;
    match kind {
        Kind::StateChanged(e) => format!(
            "StateChanged old={} new={}",
            names::leg_state(e.old_state),
            names::leg_state(e.new_state)
        ),
        Kind::Connected(e) => format!(
            "Connected codec={}",
            e.codec.as_ref().map_or_else(|| "-".to_owned(), codec)
        ),
        Kind::Disconnected(e) => format!(
            "Disconnected code={} reason={} duration={:.3}s",
            e.code,
            quote(&e.reason),
            e.duration_seconds
        ),
        Kind::Failed(e) => format!("Failed code={} reason={}", e.code, quote(&e.reason)),
        Kind::AudioStarted(_) => "AudioStarted".to_owned(),
        Kind::FirstAudioPacketReceived(e) => format!(
            "FirstAudioPacketReceived source={} pt={} ssrc={:#010x}",
            optional_address(e.source.as_ref()),
            e.payload_type,
            e.ssrc
        ),
        Kind::PlaybackReady(e) => format!(
            "PlaybackReady playback={} duration_ms={}",
            e.playback_id, e.duration_ms
        ),
        Kind::PlaybackStarted(e) => format!(
            "PlaybackStarted playback={} duration_ms={}",
            e.playback_id, e.duration_ms
        ),
        Kind::PlaybackFinished(e) => {
            let mut text = format!("PlaybackFinished playback={}", e.playback_id);
            if !e.error.is_empty() {
                let _ = write!(text, " error={}", quote(&e.error));
            }
            text
        }
        Kind::RecordStarted(e) => format!(
            "RecordStarted recording={} path={} url={}",
            e.recording_id,
            quote(&e.path),
            quote(&e.url)
        ),
        Kind::RecordStopped(e) => format!(
            "RecordStopped recording={} path={} url={} duration_ms={} size_bytes={}",
            e.recording_id,
            quote(&e.path),
            quote(&e.url),
            e.duration_ms,
            e.size_bytes
        ),
        Kind::RecordError(e) => format!(
            "RecordError recording={} error={}",
            e.recording_id,
            quote(&e.error)
        ),
        Kind::ToneReceived(e) => format!(
            "ToneReceived tone={} source={} duration_ms={}",
            quote(&e.tone),
            names::tone_source(e.source),
            e.duration_ms
        ),
        Kind::ToneDetected(e) => format!(
            "ToneDetected tone={} country={} offset_ms={}",
            quote(&e.tone),
            quote(&e.country),
            e.offset_ms
        ),
        Kind::BeepDetectionComplete(e) => format!(
            "BeepDetectionComplete frequency_hz={:.1} duration_ms={} offset_ms={}",
            e.frequency_hz, e.duration_ms, e.offset_ms
        ),
        Kind::BeepDetectionError(e) => format!("BeepDetectionError error={}", quote(&e.error)),
        Kind::AudioIdentificationStarted(_) => "AudioIdentificationStarted".to_owned(),
        Kind::AudioIdentificationResult(e) => format!(
            "AudioIdentificationResult result={} reason={} decision_ms={}",
            quote(&e.result),
            quote(&e.reason),
            e.decision_ms
        ),
        Kind::AudioIdentificationStopped(_) => "AudioIdentificationStopped".to_owned(),
        Kind::AudioIdentificationError(e) => {
            format!("AudioIdentificationError error={}", quote(&e.error))
        }
        Kind::RtpStopped(e) => format!("RtpStopped silence_ms={}", e.silence_ms),
        Kind::RtpResumed(e) => format!("RtpResumed gap_ms={}", e.gap_ms),
        Kind::OnHold(e) => format!(
            "OnHold remote_direction={}",
            names::media_direction(e.remote_direction)
        ),
        Kind::OffHold(e) => format!(
            "OffHold remote_direction={}",
            names::media_direction(e.remote_direction)
        ),
        Kind::MediaStatisticsReceived(e) => format!(
            "MediaStatisticsReceived {}",
            e.statistics
                .as_ref()
                .map_or_else(|| "-".to_owned(), statistics)
        ),
        Kind::Statistics(e) => format!(
            "Statistics {}",
            e.statistics
                .as_ref()
                .map_or_else(|| "-".to_owned(), statistics)
        ),
        Kind::MicStatusChange(e) => format!("MicStatusChange active={}", e.active),
        Kind::VoiceActivity(e) => format!("VoiceActivity active={}", e.active),
        Kind::EventsDropped(e) => format!(
            "EventsDropped count={} first_missing={}",
            e.count, e.first_missing
        ),
        Kind::SessionDeleted(e) if e.reason.is_empty() => "SessionDeleted".to_owned(),
        Kind::SessionDeleted(e) => format!("SessionDeleted reason={:?}", e.reason),
        Kind::RecordUploaded(e) => {
            format!("RecordUploaded recording={} url={}", e.recording_id, e.url)
        }
        Kind::MediaSourceChanged(e) => format!(
            "MediaSourceChanged old={} new={} ssrc={} reason={}",
            optional_address(e.old_address.as_ref()),
            optional_address(e.new_address.as_ref()),
            e.ssrc,
            names::source_change_reason(e.reason)
        ),
    }
}

/// `PCMU/8000`, with `/2` appended for stereo codecs.
fn codec(codec: &proto::Codec) -> String {
    if codec.channels > 1 {
        format!("{}/{}/{}", codec.name, codec.clock_rate, codec.channels)
    } else {
        format!("{}/{}", codec.name, codec.clock_rate)
    }
}

/// Whole seconds of a span in ms: `75s`.
fn seconds(ms: u64) -> String {
    format!("{}s", ms / 1000)
}

fn counters(c: &proto::LegCounters) -> String {
    format!(
        "rx={}pkt/{}B tx={}pkt/{}B rtcp_rx={} malformed={} unexpected_source={} \
         unsupported_payload={} send_failures={} telephone_events_rx={} held_back={} \
         source_switches={} probation={} oversize={} loop={} unsendable_payload={}",
        c.rtp_packets_received,
        c.rtp_bytes_received,
        c.rtp_packets_sent,
        c.rtp_bytes_sent,
        c.rtcp_packets_received,
        c.malformed_packets,
        c.unexpected_source_packets,
        c.unsupported_payload_packets,
        c.send_failures,
        c.telephone_event_packets_received,
        c.held_back_packets,
        c.source_switches,
        c.probation_packets,
        c.oversize_packets,
        c.loop_packets,
        c.unsendable_payload_packets,
    )
}

/// `ip:port`, with brackets around an IPv6 address.
fn address(address: &proto::Address) -> String {
    if address.ip.contains(':') {
        format!("[{}]:{}", address.ip, address.port)
    } else {
        format!("{}:{}", address.ip, address.port)
    }
}

fn optional_address(address_value: Option<&proto::Address>) -> String {
    address_value.map_or_else(|| "-".to_owned(), address)
}

fn optional_number(value: u32) -> String {
    if value == 0 {
        "-".to_owned()
    } else {
        value.to_string()
    }
}

fn optional_text(text: &str) -> &str {
    if text.is_empty() { "-" } else { text }
}

fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "no" }
}

/// Free text in double quotes with escapes, so a line stays one line.
fn quote(text: &str) -> String {
    format!("{text:?}")
}

/// Time of day in UTC, `HH:MM:SS.mmm`.
fn clock(timestamp: &prost_types::Timestamp) -> String {
    let mut normalized = *timestamp;
    normalized.normalize();
    let seconds = normalized.seconds.rem_euclid(86_400);
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60,
        normalized.nanos / 1_000_000,
    )
}

/// Milliseconds since the epoch as RFC 3339; `-` for 0 ("never").
fn time_ms(ms: i64) -> String {
    if ms == 0 {
        return "-".to_owned();
    }
    let mut timestamp = prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        // rem_euclid(1000) is in 0..1000, so the product fits in an i32.
        nanos: i32::try_from(ms.rem_euclid(1000) * 1_000_000).unwrap_or(0),
    };
    timestamp.normalize();
    timestamp.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples;

    #[test]
    fn leg_summary() {
        assert_eq!(
            leg_line(&samples::leg()),
            "leg l1 CONNECTED incoming PCMU/8000 local 127.0.0.1:30000 remote 192.0.2.7:4000 \
             session=s1 source=l2 sinks=l2,l3"
        );

        let terminated = proto::Leg {
            leg_id: "l9".into(),
            session_id: "s1".into(),
            state: proto::LegState::Terminated.into(),
            on_hold: true,
            latched_rtp: Some(proto::Address {
                ip: "2001:db8::1".into(),
                port: 5004,
            }),
            termination_code: 487,
            ..proto::Leg::default()
        };
        assert_eq!(
            leg_line(&terminated),
            "leg l9 TERMINATED outgoing - local - remote - session=s1 latched=[2001:db8::1]:5004 \
             on-hold code=487"
        );
    }

    #[test]
    fn leg_full() {
        let text = leg_details(&samples::leg());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 12, "{text}");
        assert_eq!(lines[0], leg_line(&samples::leg()));
        let expected = [
            "  description   \"incoming call from +15551234567\"",
            "  metadata      caller_id=\"+15551234567\" display_name=\"Alice\" number=\"100\" \
             client_type=PSTN custom_data=\"{\\\"crm\\\":7}\"",
            "  codec         PCMU/8000 pt=0 telephone-event pt=101",
            "  local         rtp=127.0.0.1:30000 rtcp=127.0.0.1:30000 rtcp-mux=yes \
             direction=SENDRECV",
            "  remote        rtp=192.0.2.7:4000 latched=- direction=SENDRECV on-hold=no",
            "  routing       source=l2 sinks=l2,l3",
            "  voice-active  no",
            "  created       2023-11-14T22:13:20Z",
            "  connected     2023-11-14T22:13:21.500Z",
            "  termination   -",
        ];
        for (got, want) in lines[1..].iter().zip(expected) {
            assert_eq!(*got, want);
        }
        assert!(lines[11].starts_with("  counters      rx=50pkt/8600B tx=49pkt/8428B"));
    }

    #[test]
    fn events() {
        assert_eq!(
            event_line(&samples::connected_event()),
            "#42 22:13:21.123 session=s1 leg=l1 Connected codec=PCMU/8000"
        );
        assert_eq!(
            event_line(&samples::disconnected_event()),
            "#43 22:13:33.623 session=s1 leg=l1 Disconnected code=487 \
             reason=\"caller cancelled\" duration=12.500s"
        );
        let session_wide = proto::Event {
            sequence: 44,
            session_id: "s1".into(),
            kind: Some(proto::event::Kind::SessionDeleted(proto::SessionDeleted {
                reason: "session deleted".into(),
            })),
            ..proto::Event::default()
        };
        assert_eq!(
            event_line(&session_wide),
            "#44 --:--:--.--- session=s1 SessionDeleted reason=\"session deleted\""
        );
    }

    #[test]
    fn sessions_and_endpoints() {
        let session = proto::SessionInfo {
            session_id: "s1".into(),
            leg_ids: vec!["l1".into(), "l2".into()],
            created_at_ms: 1_700_000_000_000,
            idle_timeout_ms: 0,
            max_duration_ms: 0,
            idle_ms: 3_400,
        };
        assert_eq!(
            session_line(&session, 1_700_000_075_500),
            "session s1 created=2023-11-14T22:13:20Z age=75s idle=3s legs=l1,l2"
        );
        let limited = proto::SessionInfo {
            idle_timeout_ms: 60_000,
            max_duration_ms: 7_200_000,
            ..session
        };
        assert_eq!(
            session_line(&limited, 1_700_000_000_000),
            "session s1 created=2023-11-14T22:13:20Z age=0s idle=3s idle_limit=60s max_duration=7200s legs=l1,l2"
        );
        assert_eq!(media_endpoint(&MediaEndpoint::from("l1")), "leg l1");
    }

    #[test]
    fn clock_wraps_days_and_rounds_down() {
        let table = [
            (0, 0, "00:00:00.000"),
            (86_399, 999_999_999, "23:59:59.999"),
            (86_400 + 3_723, 45_000_000, "01:02:03.045"),
            (-1, 0, "23:59:59.000"),
        ];
        for (seconds, nanos, want) in table {
            assert_eq!(clock(&prost_types::Timestamp { seconds, nanos }), want);
        }
    }
}
