//! Conversions between legato.v1 messages and engine types.

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use legato_proto::v1 as pb;

use crate::engine::EngineEvent;
use crate::sdp::MediaDirection;
use crate::session::{
    Counters, Endpoint, EngineError, EventKind, LegState, LegView, MediaPath, MediaStats,
    SourceChange, ToneSource,
};

pub(crate) fn leg_state(state: LegState) -> pb::LegState {
    match state {
        LegState::Progressing => pb::LegState::Progressing,
        LegState::Alerting => pb::LegState::Alerting,
        LegState::EarlyMedia => pb::LegState::EarlyMedia,
        LegState::Connected => pb::LegState::Connected,
        LegState::Terminated => pb::LegState::Terminated,
    }
}

/// The state an UpdateLeg asks for; `None` keeps the current one.
pub(crate) fn requested_state(value: i32) -> Result<Option<LegState>, EngineError> {
    match pb::LegState::try_from(value) {
        Ok(pb::LegState::Unspecified) => Ok(None),
        Ok(pb::LegState::Progressing) => Ok(Some(LegState::Progressing)),
        Ok(pb::LegState::Alerting) => Ok(Some(LegState::Alerting)),
        Ok(pb::LegState::EarlyMedia) => Ok(Some(LegState::EarlyMedia)),
        Ok(pb::LegState::Connected) => Ok(Some(LegState::Connected)),
        Ok(pb::LegState::Terminated) => Err(EngineError::InvalidArgument(
            "use HangupLeg to terminate a leg".into(),
        )),
        Err(_) => Err(EngineError::InvalidArgument(format!(
            "unknown leg state {value}"
        ))),
    }
}

pub(crate) fn direction(d: MediaDirection) -> pb::MediaDirection {
    match d {
        MediaDirection::SendRecv => pb::MediaDirection::Sendrecv,
        MediaDirection::SendOnly => pb::MediaDirection::Sendonly,
        MediaDirection::RecvOnly => pb::MediaDirection::Recvonly,
        MediaDirection::Inactive => pb::MediaDirection::Inactive,
    }
}

/// A requested media direction; `None` for UNSPECIFIED.
pub(crate) fn requested_direction(value: i32) -> Result<Option<MediaDirection>, EngineError> {
    match pb::MediaDirection::try_from(value) {
        Ok(pb::MediaDirection::Unspecified) => Ok(None),
        Ok(pb::MediaDirection::Sendrecv) => Ok(Some(MediaDirection::SendRecv)),
        Ok(pb::MediaDirection::Sendonly) => Ok(Some(MediaDirection::SendOnly)),
        Ok(pb::MediaDirection::Recvonly) => Ok(Some(MediaDirection::RecvOnly)),
        Ok(pb::MediaDirection::Inactive) => Ok(Some(MediaDirection::Inactive)),
        Err(_) => Err(EngineError::InvalidArgument(format!(
            "unknown media direction {value}"
        ))),
    }
}

fn address(a: SocketAddr) -> pb::Address {
    pb::Address {
        ip: a.ip().to_string(),
        port: u32::from(a.port()),
    }
}

fn millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub(crate) fn timestamp(t: SystemTime) -> prost_types::Timestamp {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    prost_types::Timestamp {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

pub(crate) fn counters(c: &Counters) -> pb::LegCounters {
    pb::LegCounters {
        rtp_packets_received: c.rtp_packets_received,
        rtp_bytes_received: c.rtp_bytes_received,
        rtp_packets_sent: c.rtp_packets_sent,
        rtp_bytes_sent: c.rtp_bytes_sent,
        rtcp_packets_received: c.rtcp_packets_received,
        malformed_packets: c.malformed_packets,
        unexpected_source_packets: c.unexpected_source_packets,
        unsupported_payload_packets: c.unsupported_payload_packets,
        send_failures: c.send_failures,
        telephone_event_packets_received: c.telephone_event_packets_received,
        held_back_packets: c.held_back_packets,
        source_switches: c.source_switches,
        probation_packets: c.probation_packets,
        oversize_packets: c.oversize_packets,
        loop_packets: c.loop_packets,
        unsendable_payload_packets: c.unsendable_payload_packets,
    }
}

/// The proto form of a leg's media statistics (GetStatistics,
/// MediaStatisticsReceived). Unknown figures become 0 as the proto
/// documents (`rtt_known` tells a 0 ms RTT from none).
#[allow(dead_code, reason = "GetStatistics is not wired to MediaStats yet")]
pub(crate) fn media_statistics(s: &MediaStats) -> pb::MediaStatistics {
    let r = &s.rtcp;
    let remote = r.remote;
    pb::MediaStatistics {
        counters: Some(counters(&s.counters)),
        jitter_ms: r.jitter_ms,
        packets_lost: r.packets_lost,
        fraction_lost: r.fraction_lost,
        rtt_ms: r.rtt.map_or(0.0, |d| d.as_secs_f64() * 1000.0),
        mos: s.mos.unwrap_or(0.0),
        remote_jitter_ms: remote.map_or(0.0, |x| x.jitter_ms),
        remote_fraction_lost: remote.map_or(0.0, |x| x.fraction_lost),
        packets_expected: r.packets_expected,
        jitter_buffer_delay_ms: s.jitter_buffer.delay_ms,
        jitter_buffer_target_ms: s.jitter_buffer.target_ms,
        concealed_frames: s.concealed_frames,
        codec: s.codec.map(|c| c.name.to_owned()).unwrap_or_default(),
        clock_rate: s.codec.map_or(0, |c| c.clock_rate),
        payload_type: s.codec.map_or(0, |c| u32::from(c.payload_type)),
        remote_packets_lost: remote.map_or(0, |x| x.packets_lost),
        rtcp_reports_sent: r.reports_sent,
        rtcp_reports_received: r.reports_received,
        rtt_known: r.rtt.is_some(),
    }
}

fn codec(spec: crate::sdp::CodecSpec, payload_type: u8) -> pb::Codec {
    pb::Codec {
        name: spec.name.to_owned(),
        payload_type: u32::from(payload_type),
        clock_rate: spec.clock_rate,
        channels: u32::from(spec.channels),
    }
}

pub(crate) fn leg(v: &LegView) -> pb::Leg {
    let state = leg_state(v.state);
    let description = format!(
        "leg {} ({}) {} {}{}",
        v.id,
        if v.incoming { "incoming" } else { "outgoing" },
        v.state.as_str(),
        v.codec
            .map(|(c, _)| format!("{}/{}", c.name, c.clock_rate))
            .unwrap_or_else(|| "no media".into()),
        if v.on_hold { " on hold" } else { "" },
    );
    pb::Leg {
        leg_id: v.id.to_string(),
        session_id: v.session.to_string(),
        state: state.into(),
        incoming: v.incoming,
        metadata: Some(pb::LegMetadata {
            caller_id: v.metadata.caller_id.clone(),
            display_name: v.metadata.display_name.clone(),
            number: v.metadata.number.clone(),
            client_type: v.metadata.client_type,
            custom_data: v.metadata.custom_data.clone(),
        }),
        codec: v.codec.map(|(c, pt)| codec(c, pt)),
        telephone_event_payload_type: v.telephone_event_pt.map_or(0, u32::from),
        local_rtp: Some(address(v.local_rtp)),
        local_rtcp: Some(address(v.local_rtcp)),
        remote_rtp: v.remote_rtp.map(address),
        latched_rtp: v.latched_rtp.map(address),
        rtcp_mux: v.rtcp_mux,
        remote_direction: v
            .remote_direction
            .map_or(pb::MediaDirection::Unspecified, direction)
            .into(),
        local_direction: direction(v.local_direction).into(),
        on_hold: v.on_hold,
        media_source_leg_id: match &v.source {
            Some(Endpoint::Leg(id)) => id.to_string(),
            _ => String::new(),
        },
        media_source_conference_id: match &v.source {
            Some(Endpoint::Conference(id)) => id.to_string(),
            _ => String::new(),
        },
        transcoding: matches!(v.path, MediaPath::Convert { .. } | MediaPath::Pcm),
        media_path: match v.path {
            MediaPath::None => pb::MediaPath::Unspecified,
            MediaPath::Relay => pb::MediaPath::Relay,
            MediaPath::Convert { .. } => pb::MediaPath::Convert,
            MediaPath::Pcm => pb::MediaPath::Pcm,
        }
        .into(),
        media_sink_leg_ids: v.sinks.iter().map(|s| s.to_string()).collect(),
        voice_active: v.voice_active,
        created_at_ms: millis(v.created_at),
        connected_at_ms: v.connected_at.map_or(0, millis),
        counters: Some(counters(&v.counters)),
        description,
        termination_code: u32::from(v.termination_code),
        playback_id: v.playback.as_deref().unwrap_or_default().to_owned(),
    }
}

/// The proto form of an engine event, without its sequence number.
pub(crate) fn event(e: &EngineEvent) -> pb::Event {
    use pb::event::Kind;
    let kind = match &e.kind {
        EventKind::StateChanged { old, new } => Kind::StateChanged(pb::StateChanged {
            old_state: leg_state(*old).into(),
            new_state: leg_state(*new).into(),
        }),
        EventKind::Connected {
            codec: c,
            payload_type,
        } => Kind::Connected(pb::Connected {
            codec: c.map(|c| codec(c, *payload_type)),
        }),
        EventKind::Disconnected {
            code,
            reason,
            duration_seconds,
        } => Kind::Disconnected(pb::Disconnected {
            code: u32::from(*code),
            reason: reason.clone(),
            duration_seconds: *duration_seconds,
        }),
        EventKind::Failed { code, reason } => Kind::Failed(pb::Failed {
            code: u32::from(*code),
            reason: reason.clone(),
        }),
        EventKind::AudioStarted => Kind::AudioStarted(pb::AudioStarted {}),
        EventKind::PlaybackReady {
            playback,
            duration_ms,
        } => Kind::PlaybackReady(pb::PlaybackReady {
            playback_id: playback.to_string(),
            duration_ms: *duration_ms,
        }),
        EventKind::PlaybackStarted {
            playback,
            duration_ms,
        } => Kind::PlaybackStarted(pb::PlaybackStarted {
            playback_id: playback.to_string(),
            duration_ms: *duration_ms,
        }),
        EventKind::PlaybackFinished { playback, error } => {
            Kind::PlaybackFinished(pb::PlaybackFinished {
                playback_id: playback.to_string(),
                error: error.clone().unwrap_or_default(),
            })
        }
        EventKind::FirstAudioPacketReceived {
            source,
            payload_type,
            ssrc,
        } => Kind::FirstAudioPacketReceived(pb::FirstAudioPacketReceived {
            source: Some(address(*source)),
            payload_type: u32::from(*payload_type),
            ssrc: *ssrc,
        }),
        EventKind::RtpStopped { silence_ms } => Kind::RtpStopped(pb::RtpStopped {
            silence_ms: *silence_ms,
        }),
        EventKind::RtpResumed { gap_ms } => Kind::RtpResumed(pb::RtpResumed { gap_ms: *gap_ms }),
        EventKind::OnHold { remote_direction } => Kind::OnHold(pb::OnHold {
            remote_direction: direction(*remote_direction).into(),
        }),
        EventKind::OffHold { remote_direction } => Kind::OffHold(pb::OffHold {
            remote_direction: direction(*remote_direction).into(),
        }),
        EventKind::SessionDeleted { reason } => Kind::SessionDeleted(pb::SessionDeleted {
            reason: reason.clone(),
        }),
        EventKind::MediaStatistics(stats) => {
            Kind::MediaStatisticsReceived(pb::MediaStatisticsReceived {
                statistics: Some(media_statistics(stats)),
            })
        }
        EventKind::Statistics(stats) => Kind::Statistics(pb::Statistics {
            statistics: Some(media_statistics(stats)),
        }),
        EventKind::RecordStarted {
            recording,
            path,
            url,
        } => Kind::RecordStarted(pb::RecordStarted {
            recording_id: recording.to_string(),
            path: path.clone(),
            url: url.clone(),
        }),
        EventKind::RecordStopped {
            recording,
            path,
            url,
            duration_ms,
            bytes,
        } => Kind::RecordStopped(pb::RecordStopped {
            recording_id: recording.to_string(),
            path: path.clone(),
            url: url.clone(),
            duration_ms: *duration_ms,
            size_bytes: *bytes,
        }),
        EventKind::RecordUploaded {
            recording,
            path,
            url,
        } => Kind::RecordUploaded(pb::RecordUploaded {
            recording_id: recording.to_string(),
            path: path.clone(),
            url: url.clone(),
        }),
        EventKind::RecordError { recording, error } => Kind::RecordError(pb::RecordError {
            recording_id: recording.to_string(),
            error: error.clone(),
        }),
        EventKind::ToneReceived {
            tone,
            source,
            duration_ms,
        } => Kind::ToneReceived(pb::ToneReceived {
            tone: tone.to_string(),
            source: match source {
                ToneSource::Rfc4733 => pb::ToneSource::Rfc4733,
                ToneSource::InBand => pb::ToneSource::InBand,
                ToneSource::SipInfo => pb::ToneSource::SipInfo,
            }
            .into(),
            duration_ms: *duration_ms,
        }),
        EventKind::BeepDetectionComplete {
            frequency_hz,
            duration_ms,
            offset_ms,
        } => Kind::BeepDetectionComplete(pb::BeepDetectionComplete {
            frequency_hz: *frequency_hz,
            duration_ms: *duration_ms,
            offset_ms: *offset_ms,
        }),
        EventKind::BeepDetectionError { error } => {
            Kind::BeepDetectionError(pb::BeepDetectionError {
                error: error.clone(),
            })
        }
        EventKind::ToneDetected {
            tone,
            country,
            offset_ms,
        } => Kind::ToneDetected(pb::ToneDetected {
            tone: (*tone).to_owned(),
            country: (*country).to_owned(),
            offset_ms: *offset_ms,
        }),
        EventKind::MicStatusChange { active } => {
            Kind::MicStatusChange(pb::MicStatusChange { active: *active })
        }
        EventKind::VoiceActivity { active, offset_ms } => Kind::VoiceActivity(pb::VoiceActivity {
            active: *active,
            offset_ms: *offset_ms,
        }),
        EventKind::AudioIdentificationStarted => {
            Kind::AudioIdentificationStarted(pb::AudioIdentificationStarted {})
        }
        EventKind::AudioIdentificationResult {
            result,
            reason,
            decision_ms,
        } => Kind::AudioIdentificationResult(pb::AudioIdentificationResult {
            result: (*result).to_owned(),
            reason: (*reason).to_owned(),
            decision_ms: *decision_ms,
        }),
        EventKind::AudioIdentificationStopped => {
            Kind::AudioIdentificationStopped(pb::AudioIdentificationStopped {})
        }
        EventKind::MediaSourceChanged {
            old,
            new,
            ssrc,
            reason,
        } => Kind::MediaSourceChanged(pb::MediaSourceChanged {
            old_address: old.map(address),
            new_address: Some(address(*new)),
            ssrc: *ssrc,
            reason: match reason {
                SourceChange::SdpAddress => pb::MediaSourceChangeReason::SdpAddress,
                SourceChange::Probation => pb::MediaSourceChangeReason::Probation,
            }
            .into(),
        }),
    };
    pb::Event {
        sequence: 0,
        timestamp: Some(timestamp(e.at)),
        session_id: e.session.to_string(),
        leg_id: e.leg.as_deref().unwrap_or_default().to_owned(),
        kind: Some(kind),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::session::{CodecInfo, JitterBufferStats, RtcpSession};

    #[test]
    fn media_statistics_fields() {
        let t0 = Instant::now();
        let mut rtcp = RtcpSession::new(1, "a", 8000, 1, t0);
        for seq in [10u16, 11, 13] {
            rtcp.on_rtp_received(t0, 2, seq, u32::from(seq) * 160, 160);
        }
        let mut stats = rtcp.stats(t0);
        stats.rtt = Some(Duration::from_millis(40));
        let counters = Counters {
            rtp_packets_received: 3,
            ..Counters::default()
        };
        let s = MediaStats::new(
            counters,
            stats,
            JitterBufferStats {
                delay_ms: 40.0,
                target_ms: 60.0,
            },
            2,
            Some(CodecInfo {
                name: "PCMA",
                clock_rate: 8000,
                payload_type: 8,
            }),
        );
        let p = media_statistics(&s);
        assert_eq!(p.counters.unwrap().rtp_packets_received, 3);
        assert_eq!((p.packets_expected, p.packets_lost), (4, 1));
        assert_eq!(p.fraction_lost, 0.25);
        assert_eq!((p.rtt_ms, p.rtt_known), (40.0, true));
        assert!(p.mos > 1.0 && p.mos < 4.41, "{}", p.mos);
        assert_eq!(
            (p.jitter_buffer_delay_ms, p.jitter_buffer_target_ms),
            (40.0, 60.0)
        );
        assert_eq!(p.concealed_frames, 2);
        assert_eq!(
            (p.codec.as_str(), p.clock_rate, p.payload_type),
            ("PCMA", 8000, 8)
        );
        assert_eq!((p.remote_packets_lost, p.remote_jitter_ms), (0, 0.0));
        assert_eq!((p.rtcp_reports_sent, p.rtcp_reports_received), (0, 0));
        // Nothing known.
        let empty = MediaStats::new(
            Counters::default(),
            RtcpSession::new(1, "a", 8000, 1, t0).stats(t0),
            JitterBufferStats::default(),
            0,
            None,
        );
        let p = media_statistics(&empty);
        assert_eq!((p.mos, p.rtt_ms, p.rtt_known), (0.0, 0.0, false));
        assert_eq!((p.codec.as_str(), p.clock_rate), ("", 0));
    }
}
