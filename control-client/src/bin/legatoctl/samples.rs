//! Sample values shared by the formatting tests.

use legato_client::proto;

/// A connected incoming leg with every field set except `latched_rtp`.
pub(crate) fn leg() -> proto::Leg {
    let local = proto::Address {
        ip: "127.0.0.1".into(),
        port: 30000,
    };
    proto::Leg {
        leg_id: "l1".into(),
        session_id: "s1".into(),
        state: proto::LegState::Connected.into(),
        incoming: true,
        metadata: Some(proto::LegMetadata {
            caller_id: "+15551234567".into(),
            display_name: "Alice".into(),
            number: "100".into(),
            client_type: proto::ClientType::Pstn.into(),
            custom_data: r#"{"crm":7}"#.into(),
        }),
        codec: Some(pcmu()),
        telephone_event_payload_type: 101,
        local_rtp: Some(local.clone()),
        local_rtcp: Some(local),
        remote_rtp: Some(proto::Address {
            ip: "192.0.2.7".into(),
            port: 4000,
        }),
        latched_rtp: None,
        rtcp_mux: true,
        remote_direction: proto::MediaDirection::Sendrecv.into(),
        local_direction: proto::MediaDirection::Sendrecv.into(),
        on_hold: false,
        media_source_leg_id: "l2".into(),
        media_sink_leg_ids: vec!["l2".into(), "l3".into()],
        voice_active: false,
        created_at_ms: 1_700_000_000_000,
        connected_at_ms: 1_700_000_001_500,
        counters: Some(proto::LegCounters {
            rtp_packets_received: 50,
            rtp_bytes_received: 8600,
            rtp_packets_sent: 49,
            rtp_bytes_sent: 8428,
            rtcp_packets_received: 2,
            malformed_packets: 1,
            unexpected_source_packets: 0,
            unsupported_payload_packets: 0,
            send_failures: 0,
            telephone_event_packets_received: 3,
            held_back_packets: 0,
            source_switches: 0,
            probation_packets: 0,
            oversize_packets: 0,
            loop_packets: 0,
            unsendable_payload_packets: 0,
        }),
        description: "incoming call from +15551234567".into(),
        termination_code: 0,
        media_source_conference_id: String::new(),
        transcoding: false,
        media_path: proto::MediaPath::Relay.into(),
        playback_id: String::new(),
    }
}

/// `Connected` of leg l1, event #42 at 2023-11-14T22:13:21.123Z.
pub(crate) fn connected_event() -> proto::Event {
    proto::Event {
        sequence: 42,
        timestamp: Some(prost_types::Timestamp {
            seconds: 1_700_000_001,
            nanos: 123_456_789,
        }),
        session_id: "s1".into(),
        leg_id: "l1".into(),
        kind: Some(proto::event::Kind::Connected(proto::Connected {
            codec: Some(pcmu()),
        })),
    }
}

/// `Disconnected` of leg l1, event #43, 12.5 s after [`connected_event`].
pub(crate) fn disconnected_event() -> proto::Event {
    proto::Event {
        sequence: 43,
        timestamp: Some(prost_types::Timestamp {
            seconds: 1_700_000_013,
            nanos: 623_000_000,
        }),
        session_id: "s1".into(),
        leg_id: "l1".into(),
        kind: Some(proto::event::Kind::Disconnected(proto::Disconnected {
            code: 487,
            reason: "caller cancelled".into(),
            duration_seconds: 12.5,
        })),
    }
}

fn pcmu() -> proto::Codec {
    proto::Codec {
        name: "PCMU".into(),
        payload_type: 0,
        clock_rate: 8000,
        channels: 1,
    }
}
