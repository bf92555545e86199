//! `--json` output: a hand mapping of the prost types to `serde_json::Value`
//! (they do not implement `Serialize`).
//!
//! Field names are the proto field names; enums are their short names
//! (`"CONNECTED"`); unset messages are `null`; 64-bit integers are numbers.

use legato_client::{MediaEndpoint, proto};
use serde_json::{Map, Value, json};

use crate::names;

/// All fields of a leg.
pub(crate) fn leg(leg: &proto::Leg) -> Value {
    json!({
        "leg_id": leg.leg_id,
        "session_id": leg.session_id,
        "state": names::leg_state(leg.state),
        "incoming": leg.incoming,
        "metadata": leg.metadata.as_ref().map(metadata),
        "codec": leg.codec.as_ref().map(codec),
        "telephone_event_payload_type": leg.telephone_event_payload_type,
        "local_rtp": leg.local_rtp.as_ref().map(address),
        "local_rtcp": leg.local_rtcp.as_ref().map(address),
        "remote_rtp": leg.remote_rtp.as_ref().map(address),
        "latched_rtp": leg.latched_rtp.as_ref().map(address),
        "rtcp_mux": leg.rtcp_mux,
        "remote_direction": names::media_direction(leg.remote_direction),
        "local_direction": names::media_direction(leg.local_direction),
        "on_hold": leg.on_hold,
        "media_source_leg_id": leg.media_source_leg_id,
        "media_sink_leg_ids": leg.media_sink_leg_ids,
        "media_source_conference_id": leg.media_source_conference_id,
        "transcoding": leg.transcoding,
        "media_path": names::media_path(leg.media_path),
        "playback_id": leg.playback_id,
        "voice_active": leg.voice_active,
        "created_at_ms": leg.created_at_ms,
        "connected_at_ms": leg.connected_at_ms,
        "counters": leg.counters.as_ref().map(counters),
        "description": leg.description,
        "termination_code": leg.termination_code,
    })
}

/// A leg with the SDP legato produced for it.
pub(crate) fn leg_and_sdp(leg_value: &proto::Leg, local_sdp: &str) -> Value {
    json!({ "leg": leg(leg_value), "local_sdp": local_sdp })
}

/// One session summary.
pub(crate) fn session(session: &proto::SessionInfo) -> Value {
    json!({
        "session_id": session.session_id,
        "leg_ids": session.leg_ids,
        "created_at_ms": session.created_at_ms,
        "idle_ms": session.idle_ms,
        "idle_timeout_ms": session.idle_timeout_ms,
        "max_duration_ms": session.max_duration_ms,
    })
}

/// A media endpoint as its proto oneof: `{"leg_id": ..}` or
/// `{"conference_id": ..}`.
pub(crate) fn media_endpoint(endpoint: &MediaEndpoint) -> Value {
    match endpoint {
        MediaEndpoint::Leg(id) => json!({ "leg_id": id }),
        MediaEndpoint::Conference(id) => json!({ "conference_id": id }),
        _ => json!({ "id": endpoint.id() }),
    }
}

/// Media quality figures.
pub(crate) fn statistics(stats: &proto::MediaStatistics) -> Value {
    json!({
        "counters": stats.counters.as_ref().map(counters),
        "jitter_ms": stats.jitter_ms,
        "packets_lost": stats.packets_lost,
        "fraction_lost": stats.fraction_lost,
        "rtt_ms": stats.rtt_ms,
        "mos": stats.mos,
        "remote_jitter_ms": stats.remote_jitter_ms,
        "remote_fraction_lost": stats.remote_fraction_lost,
        "packets_expected": stats.packets_expected,
        "jitter_buffer_delay_ms": stats.jitter_buffer_delay_ms,
        "jitter_buffer_target_ms": stats.jitter_buffer_target_ms,
        "concealed_frames": stats.concealed_frames,
        "codec": stats.codec,
        "clock_rate": stats.clock_rate,
        "payload_type": stats.payload_type,
        "remote_packets_lost": stats.remote_packets_lost,
        "rtcp_reports_sent": stats.rtcp_reports_sent,
        "rtcp_reports_received": stats.rtcp_reports_received,
        "rtt_known": stats.rtt_known,
    })
}

/// One event: the common fields, `kind` (the oneof field name, `null` for
/// a kind this build does not know) and the payload under that name.
pub(crate) fn event(event: &proto::Event) -> Value {
    let mut object = Map::new();
    object.insert("sequence".into(), event.sequence.into());
    object.insert(
        "timestamp".into(),
        event
            .timestamp
            .map_or(Value::Null, |ts| Value::String(ts.to_string())),
    );
    object.insert("session_id".into(), event.session_id.clone().into());
    object.insert("leg_id".into(), event.leg_id.clone().into());
    match event.kind.as_ref().map(event_kind) {
        Some((name, payload)) => {
            object.insert("kind".into(), name.into());
            object.insert(name.into(), payload);
        }
        None => {
            object.insert("kind".into(), Value::Null);
        }
    }
    Value::Object(object)
}

fn event_kind(kind: &proto::event::Kind) -> (&'static str, Value) {
    use proto::event::Kind;
    match kind {
        Kind::StateChanged(e) => (
            "state_changed",
            json!({
                "old_state": names::leg_state(e.old_state),
                "new_state": names::leg_state(e.new_state),
            }),
        ),
        Kind::Connected(e) => ("connected", json!({ "codec": e.codec.as_ref().map(codec) })),
        Kind::Disconnected(e) => (
            "disconnected",
            json!({
                "code": e.code,
                "reason": e.reason,
                "duration_seconds": e.duration_seconds,
            }),
        ),
        Kind::Failed(e) => ("failed", json!({ "code": e.code, "reason": e.reason })),
        Kind::AudioStarted(_) => ("audio_started", json!({})),
        Kind::FirstAudioPacketReceived(e) => (
            "first_audio_packet_received",
            json!({
                "source": e.source.as_ref().map(address),
                "payload_type": e.payload_type,
                "ssrc": e.ssrc,
            }),
        ),
        Kind::PlaybackReady(e) => (
            "playback_ready",
            json!({ "playback_id": e.playback_id, "duration_ms": e.duration_ms }),
        ),
        Kind::PlaybackStarted(e) => (
            "playback_started",
            json!({ "playback_id": e.playback_id, "duration_ms": e.duration_ms }),
        ),
        Kind::PlaybackFinished(e) => (
            "playback_finished",
            json!({ "playback_id": e.playback_id, "error": e.error }),
        ),
        Kind::RecordStarted(e) => (
            "record_started",
            json!({ "recording_id": e.recording_id, "path": e.path, "url": e.url }),
        ),
        Kind::RecordStopped(e) => (
            "record_stopped",
            json!({
                "recording_id": e.recording_id,
                "path": e.path,
                "url": e.url,
                "duration_ms": e.duration_ms,
                "size_bytes": e.size_bytes,
            }),
        ),
        Kind::RecordError(e) => (
            "record_error",
            json!({ "recording_id": e.recording_id, "error": e.error }),
        ),
        Kind::ToneReceived(e) => (
            "tone_received",
            json!({
                "tone": e.tone,
                "source": names::tone_source(e.source),
                "duration_ms": e.duration_ms,
            }),
        ),
        Kind::ToneDetected(e) => (
            "tone_detected",
            json!({ "tone": e.tone, "country": e.country, "offset_ms": e.offset_ms }),
        ),
        Kind::BeepDetectionComplete(e) => (
            "beep_detection_complete",
            json!({
                "frequency_hz": e.frequency_hz,
                "duration_ms": e.duration_ms,
                "offset_ms": e.offset_ms,
            }),
        ),
        Kind::BeepDetectionError(e) => ("beep_detection_error", json!({ "error": e.error })),
        Kind::AudioIdentificationStarted(_) => ("audio_identification_started", json!({})),
        Kind::AudioIdentificationResult(e) => (
            "audio_identification_result",
            json!({ "result": e.result, "reason": e.reason, "decision_ms": e.decision_ms }),
        ),
        Kind::AudioIdentificationStopped(_) => ("audio_identification_stopped", json!({})),
        Kind::AudioIdentificationError(e) => {
            ("audio_identification_error", json!({ "error": e.error }))
        }
        Kind::RtpStopped(e) => ("rtp_stopped", json!({ "silence_ms": e.silence_ms })),
        Kind::RtpResumed(e) => ("rtp_resumed", json!({ "gap_ms": e.gap_ms })),
        Kind::OnHold(e) => (
            "on_hold",
            json!({ "remote_direction": names::media_direction(e.remote_direction) }),
        ),
        Kind::OffHold(e) => (
            "off_hold",
            json!({ "remote_direction": names::media_direction(e.remote_direction) }),
        ),
        Kind::MediaStatisticsReceived(e) => (
            "media_statistics_received",
            json!({ "statistics": e.statistics.as_ref().map(statistics) }),
        ),
        Kind::Statistics(e) => (
            "statistics",
            json!({ "statistics": e.statistics.as_ref().map(statistics) }),
        ),
        Kind::MicStatusChange(e) => ("mic_status_change", json!({ "active": e.active })),
        Kind::VoiceActivity(e) => ("voice_activity", json!({ "active": e.active })),
        Kind::EventsDropped(e) => (
            "events_dropped",
            json!({ "count": e.count, "first_missing": e.first_missing }),
        ),
        Kind::SessionDeleted(e) => ("session_deleted", json!({ "reason": e.reason })),
        Kind::RecordUploaded(e) => (
            "record_uploaded",
            json!({ "recording_id": e.recording_id, "path": e.path, "url": e.url }),
        ),
        Kind::MediaSourceChanged(e) => (
            "media_source_changed",
            json!({
                "old_address": e.old_address.as_ref().map(address),
                "new_address": e.new_address.as_ref().map(address),
                "ssrc": e.ssrc,
                "reason": names::source_change_reason(e.reason),
            }),
        ),
    }
}

fn metadata(metadata: &proto::LegMetadata) -> Value {
    json!({
        "caller_id": metadata.caller_id,
        "display_name": metadata.display_name,
        "number": metadata.number,
        "client_type": names::client_type(metadata.client_type),
        "custom_data": metadata.custom_data,
    })
}

fn codec(codec: &proto::Codec) -> Value {
    json!({
        "name": codec.name,
        "payload_type": codec.payload_type,
        "clock_rate": codec.clock_rate,
        "channels": codec.channels,
    })
}

fn address(address: &proto::Address) -> Value {
    json!({ "ip": address.ip, "port": address.port })
}

fn counters(counters: &proto::LegCounters) -> Value {
    json!({
        "rtp_packets_received": counters.rtp_packets_received,
        "rtp_bytes_received": counters.rtp_bytes_received,
        "rtp_packets_sent": counters.rtp_packets_sent,
        "rtp_bytes_sent": counters.rtp_bytes_sent,
        "rtcp_packets_received": counters.rtcp_packets_received,
        "malformed_packets": counters.malformed_packets,
        "unexpected_source_packets": counters.unexpected_source_packets,
        "unsupported_payload_packets": counters.unsupported_payload_packets,
        "send_failures": counters.send_failures,
        "telephone_event_packets_received": counters.telephone_event_packets_received,
        "held_back_packets": counters.held_back_packets,
        "source_switches": counters.source_switches,
        "probation_packets": counters.probation_packets,
        "oversize_packets": counters.oversize_packets,
        "loop_packets": counters.loop_packets,
        "unsendable_payload_packets": counters.unsendable_payload_packets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples;

    /// Number of fields of message `name` in the legato.v1 descriptors.
    fn proto_field_count(name: &str) -> usize {
        use prost::Message as _;
        let set = prost_types::FileDescriptorSet::decode(legato_proto::FILE_DESCRIPTOR_SET)
            .expect("the embedded descriptor set decodes");
        set.file
            .iter()
            .flat_map(|f| &f.message_type)
            .find(|m| m.name() == name)
            .map_or(0, |m| m.field.len())
    }

    #[test]
    fn leg_has_every_field() {
        let value = leg(&samples::leg());
        let Value::Object(object) = &value else {
            panic!("not an object: {value}");
        };
        assert_eq!(object.len(), 27, "one key per Leg field");
        assert_eq!(value["leg_id"], "l1");
        assert_eq!(value["session_id"], "s1");
        assert_eq!(value["state"], "CONNECTED");
        assert_eq!(value["incoming"], true);
        assert_eq!(value["metadata"]["caller_id"], "+15551234567");
        assert_eq!(value["metadata"]["client_type"], "PSTN");
        assert_eq!(value["codec"]["name"], "PCMU");
        assert_eq!(value["codec"]["clock_rate"], 8000);
        assert_eq!(value["telephone_event_payload_type"], 101);
        assert_eq!(
            value["local_rtp"],
            json!({ "ip": "127.0.0.1", "port": 30000 })
        );
        assert_eq!(
            value["local_rtcp"],
            json!({ "ip": "127.0.0.1", "port": 30000 })
        );
        assert_eq!(
            value["remote_rtp"],
            json!({ "ip": "192.0.2.7", "port": 4000 })
        );
        assert_eq!(value["latched_rtp"], Value::Null);
        assert_eq!(value["rtcp_mux"], true);
        assert_eq!(value["remote_direction"], "SENDRECV");
        assert_eq!(value["local_direction"], "SENDRECV");
        assert_eq!(value["on_hold"], false);
        assert_eq!(value["media_source_leg_id"], "l2");
        assert_eq!(value["media_sink_leg_ids"], json!(["l2", "l3"]));
        assert_eq!(value["voice_active"], false);
        assert_eq!(value["created_at_ms"], 1_700_000_000_000_i64);
        assert_eq!(value["connected_at_ms"], 1_700_000_001_500_i64);
        assert_eq!(value["counters"]["rtp_packets_received"], 50);
        assert_eq!(
            value["counters"].as_object().map(Map::len),
            Some(proto_field_count("LegCounters")),
            "one key per LegCounters field"
        );
        assert_eq!(value["description"], "incoming call from +15551234567");
        assert_eq!(value["termination_code"], 0);
        // One line per result.
        assert!(!value.to_string().contains('\n'));
    }

    #[test]
    fn event_line() {
        let value = event(&samples::connected_event());
        assert_eq!(
            value,
            json!({
                "sequence": 42,
                "timestamp": "2023-11-14T22:13:21.123456789Z",
                "session_id": "s1",
                "leg_id": "l1",
                "kind": "connected",
                "connected": {
                    "codec": { "name": "PCMU", "payload_type": 0, "clock_rate": 8000, "channels": 1 },
                },
            })
        );
        // One line per event.
        assert!(!value.to_string().contains('\n'));

        let value = event(&samples::disconnected_event());
        assert_eq!(value["kind"], "disconnected");
        assert_eq!(value["disconnected"]["code"], 487);
        assert_eq!(value["disconnected"]["reason"], "caller cancelled");
        assert_eq!(value["disconnected"]["duration_seconds"], 12.5);

        let unknown = proto::Event {
            sequence: 7,
            ..proto::Event::default()
        };
        let value = event(&unknown);
        assert_eq!(value["kind"], Value::Null);
        assert_eq!(value["timestamp"], Value::Null);
        assert_eq!(value["leg_id"], "");
    }
}
