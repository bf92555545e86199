//! Events of the Call API: FirstAudioPacketReceived, OnHold/OffHold from a
//! re-offer, RtpStopped about 7 s after the peer stops and RtpResumed when
//! it starts again, Failed vs Disconnected, the early-media limit, resume by
//! sequence number, and a clean SIGTERM.

use std::time::{Duration, Instant};

use futures::StreamExt;
use legato_client::{CreateLeg, EventFilter, UpdateLeg, proto};
use legato_tests::{
    Io, Options, Peer, Rtp, connected_leg, daemon_or_skip, kind_name, local_rtp, payload,
    per_backend, wait_event,
};

fn send_audio(peer: &Peer, to: std::net::SocketAddr, from: u32, count: u32) {
    for i in from..from + count {
        peer.send(
            to,
            Rtp {
                marker: false,
                pt: 0,
                seq: i as u16,
                ts: 160 * i,
                ssrc: 5,
            },
            &payload(i),
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
}

async fn rtp_and_hold_events(io: Io) {
    let daemon = daemon_or_skip!(Options::new(io));
    let client = daemon.client().await.unwrap();
    let session = client.create_session(None).await.unwrap();
    let mut events = client
        .watch_events(EventFilter::new().session(&session))
        .await
        .unwrap();
    let peer = Peer::new().unwrap();
    let leg = connected_leg(&client, &session, &peer).await.unwrap();
    let to = local_rtp(&leg);
    let is = |name: &'static str| move |e: &proto::Event| kind_name(e) == name;

    wait_event(&mut events, Duration::from_secs(5), is("Connected"))
        .await
        .unwrap();
    send_audio(&peer, to, 0, 10);
    let first = wait_event(
        &mut events,
        Duration::from_secs(5),
        is("FirstAudioPacketReceived"),
    )
    .await
    .unwrap();
    assert_eq!(first.leg_id, leg.leg_id);
    let Some(proto::event::Kind::FirstAudioPacketReceived(f)) = first.kind else {
        unreachable!()
    };
    assert_eq!(f.source.unwrap().port, u32::from(peer.addr().port()));

    // The peer stops: RtpStopped after about 7 s (the Call API's limit).
    let stopped_at = Instant::now();
    let stopped = wait_event(&mut events, Duration::from_secs(15), is("RtpStopped"))
        .await
        .unwrap();
    let after = stopped_at.elapsed();
    assert!(
        after >= Duration::from_millis(6_500) && after <= Duration::from_secs(10),
        "RtpStopped after {after:?}"
    );
    let Some(proto::event::Kind::RtpStopped(s)) = stopped.kind else {
        unreachable!()
    };
    assert!(
        (6_900..9_000).contains(&s.silence_ms),
        "silence {}",
        s.silence_ms
    );
    send_audio(&peer, to, 10, 5);
    let resumed = wait_event(&mut events, Duration::from_secs(5), is("RtpResumed"))
        .await
        .unwrap();
    let Some(proto::event::Kind::RtpResumed(r)) = resumed.kind else {
        unreachable!()
    };
    assert!(r.gap_ms >= 6_900, "gap {}", r.gap_ms);

    // Hold by re-offer (sendonly), then off hold (sendrecv).
    let hold = client
        .update_leg(UpdateLeg::new(&leg.leg_id).remote_offer(peer.offer_with(
            "0 101",
            "a=sendonly",
            "127.0.0.1",
        )))
        .await
        .unwrap();
    assert!(
        hold.local_sdp.contains("a=recvonly"),
        "answer to sendonly: {}",
        hold.local_sdp
    );
    assert!(hold.leg.on_hold);
    let on = wait_event(&mut events, Duration::from_secs(5), is("OnHold"))
        .await
        .unwrap();
    assert_eq!(on.leg_id, leg.leg_id);
    let unhold = client
        .update_leg(UpdateLeg::new(&leg.leg_id).remote_offer(peer.offer()))
        .await
        .unwrap();
    assert!(unhold.local_sdp.contains("a=sendrecv"));
    wait_event(&mut events, Duration::from_secs(5), is("OffHold"))
        .await
        .unwrap();
    // Old-style hold: c=0.0.0.0.
    client
        .update_leg(UpdateLeg::new(&leg.leg_id).remote_offer(peer.offer_with(
            "0 101",
            "a=sendrecv",
            "0.0.0.0",
        )))
        .await
        .unwrap();
    wait_event(&mut events, Duration::from_secs(5), is("OnHold"))
        .await
        .unwrap();
    // While on hold no RtpStopped is reported even though no RTP flows.
    let quiet = tokio::time::timeout(
        Duration::from_secs(8),
        wait_event(&mut events, Duration::from_secs(8), is("RtpStopped")),
    )
    .await;
    assert!(!matches!(quiet, Ok(Ok(_))), "RtpStopped while on hold");
}

async fn failed_vs_disconnected(io: Io) {
    let daemon = daemon_or_skip!(Options::new(io).arg("--early-media-timeout-ms").arg("1500"));
    let client = daemon.client().await.unwrap();
    let session = client.create_session(None).await.unwrap();
    let mut events = client
        .watch_events(EventFilter::new().session(&session))
        .await
        .unwrap();
    let peer = Peer::new().unwrap();
    let terminal = |leg: String| {
        move |e: &proto::Event| e.leg_id == leg && matches!(kind_name(e), "Failed" | "Disconnected")
    };

    // Outgoing, never connected: Failed with the code given.
    let out = client
        .create_leg(CreateLeg::outgoing(&session))
        .await
        .unwrap();
    assert!(out.local_sdp.contains("m=audio"));
    client
        .hangup_leg(&out.leg.leg_id, 486, "busy")
        .await
        .unwrap();
    let e = wait_event(
        &mut events,
        Duration::from_secs(5),
        terminal(out.leg.leg_id.clone()),
    )
    .await
    .unwrap();
    match e.kind {
        Some(proto::event::Kind::Failed(f)) => {
            assert_eq!((f.code, f.reason.as_str()), (486, "busy"))
        }
        other => panic!("expected Failed, got {other:?}"),
    }

    // Outgoing, answered, connected, hung up: Disconnected.
    let out = client
        .create_leg(CreateLeg::outgoing(&session))
        .await
        .unwrap();
    let answered = client
        .update_leg(
            UpdateLeg::new(&out.leg.leg_id)
                .remote_answer(peer.offer_with("0 101", "a=sendrecv", "127.0.0.1"))
                .state(proto::LegState::Connected),
        )
        .await
        .unwrap();
    assert_eq!(answered.leg.state, proto::LegState::Connected as i32);
    client.hangup_leg(&out.leg.leg_id, 0, "").await.unwrap();
    let e = wait_event(
        &mut events,
        Duration::from_secs(5),
        terminal(out.leg.leg_id.clone()),
    )
    .await
    .unwrap();
    match e.kind {
        Some(proto::event::Kind::Disconnected(d)) => assert_eq!(d.code, 200),
        other => panic!("expected Disconnected, got {other:?}"),
    }

    // Incoming rejected before answer: Disconnected (Call.reject), 603.
    let inc = client
        .create_leg(CreateLeg::incoming(&session, peer.offer()))
        .await
        .unwrap();
    client
        .hangup_leg(&inc.leg.leg_id, 603, "rejected")
        .await
        .unwrap();
    let e = wait_event(
        &mut events,
        Duration::from_secs(5),
        terminal(inc.leg.leg_id.clone()),
    )
    .await
    .unwrap();
    assert!(matches!(e.kind, Some(proto::event::Kind::Disconnected(ref d)) if d.code == 603));

    // Early media without answer ends with 408 (limit shortened for the test).
    let out = client
        .create_leg(CreateLeg::outgoing(&session))
        .await
        .unwrap();
    client
        .update_leg(
            UpdateLeg::new(&out.leg.leg_id)
                .remote_answer(peer.offer_with("0", "a=sendrecv", "127.0.0.1"))
                .state(proto::LegState::EarlyMedia),
        )
        .await
        .unwrap();
    let e = wait_event(
        &mut events,
        Duration::from_secs(10),
        terminal(out.leg.leg_id.clone()),
    )
    .await
    .unwrap();
    assert!(
        matches!(e.kind, Some(proto::event::Kind::Failed(ref f)) if f.code == 408),
        "{e:?}"
    );
    let leg = client.get_leg(&out.leg.leg_id).await.unwrap();
    assert_eq!(leg.state, proto::LegState::Terminated as i32);
    assert_eq!(leg.termination_code, 408);
}

async fn resume_and_shutdown(io: Io) {
    let mut daemon = daemon_or_skip!(Options::new(io));
    let client = daemon.client().await.unwrap();
    let session = client.create_session(None).await.unwrap();
    let peer = Peer::new().unwrap();
    let leg = connected_leg(&client, &session, &peer).await.unwrap();
    // Every event so far can be replayed from sequence 1, in order.
    let mut replay = client
        .watch_events(EventFilter::new().from_sequence(1))
        .await
        .unwrap();
    let mut kinds = Vec::new();
    let mut last_seq = 0;
    while kinds.len() < 3 {
        let e = tokio::time::timeout(Duration::from_secs(5), replay.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(e.sequence > last_seq, "sequence increases");
        last_seq = e.sequence;
        assert!(e.timestamp.is_some());
        kinds.push(kind_name(&e));
    }
    assert_eq!(kinds, ["StateChanged", "Connected", "AudioStarted"]);
    let mut live = client
        .watch_events(EventFilter::new().leg(&leg.leg_id))
        .await
        .unwrap();
    // SIGTERM: legs are hung up (Disconnected), the process exits 0.
    let status = tokio::task::spawn_blocking(move || daemon.terminate())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
    let mut seen = Vec::new();
    while let Ok(Some(Ok(e))) = tokio::time::timeout(Duration::from_secs(5), live.next()).await {
        seen.push(kind_name(&e));
    }
    assert!(
        seen.contains(&"Disconnected"),
        "events at shutdown: {seen:?}"
    );
}

per_backend!(
    rtp_and_hold_events,
    failed_vs_disconnected,
    resume_and_shutdown
);
