//! Orphans of a crashed controller: a session can carry an idle and a
//! lifetime limit (or inherit the daemon's), after which legatod deletes
//! it with its legs' Disconnected/Failed events and SessionDeleted.

use std::time::{Duration, Instant};

use legato_client::{CreateLeg, EventFilter, SessionLimits, proto};
use legato_tests::{
    Io, Options, Peer, Rtp, connected_leg, daemon_or_skip, kind_name, legatoctl_ok, local_rtp,
    payload, wait_event,
};

fn deleted_reason(e: &proto::Event) -> Option<&str> {
    match &e.kind {
        Some(proto::event::Kind::SessionDeleted(d)) => Some(&d.reason),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_session_is_deleted_with_its_legs() {
    let daemon = daemon_or_skip!(Options::new(Io::Epoll));
    let client = daemon.client().await.unwrap();
    let limits = SessionLimits {
        idle_timeout: Some(Duration::from_millis(1_500)),
        max_duration: None,
    };
    let session = client
        .create_session_with_limits(Some("orphan"), limits)
        .await
        .unwrap();
    let mut events = client
        .watch_events(EventFilter::new().session(&session))
        .await
        .unwrap();
    let peer = Peer::new().unwrap();
    let connected = connected_leg(&client, &session, &peer).await.unwrap();
    let ringing = client
        .create_leg(CreateLeg::outgoing(&session))
        .await
        .unwrap()
        .leg;
    let listed = client.list_sessions().await.unwrap();
    assert_eq!(listed[0].idle_timeout_ms, 1_500);
    // The controller "crashes": no RPC, no RTP from here on.
    let started = Instant::now();
    let deleted = wait_event(&mut events, Duration::from_secs(15), |e| {
        deleted_reason(e).is_some()
    })
    .await
    .unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1_200),
        "deleted after {took:?}"
    );
    let reason = deleted_reason(&deleted).unwrap();
    assert!(reason.contains("idle"), "{reason}");
    assert!(client.list_sessions().await.unwrap().is_empty());
    // Both legs were hung up with the usual events (replayed from the
    // start of the stream).
    let mut replay = client
        .watch_events(EventFilter::new().session(&session).from_sequence(1))
        .await
        .unwrap();
    let disconnected = wait_event(&mut replay, Duration::from_secs(5), |e| {
        kind_name(e) == "Disconnected" && e.leg_id == connected.leg_id
    })
    .await
    .unwrap();
    let Some(proto::event::Kind::Disconnected(d)) = disconnected.kind else {
        unreachable!()
    };
    assert_eq!(d.code, 200);
    assert!(d.reason.contains("idle"), "{}", d.reason);
    wait_event(&mut replay, Duration::from_secs(5), |e| {
        kind_name(e) == "Failed" && e.leg_id == ringing.leg_id
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtp_keeps_a_session_alive_until_its_lifetime_ends() {
    // The daemon-wide defaults: idle 1 s, lifetime 4 s.
    let daemon = daemon_or_skip!(
        Options::new(Io::Epoll)
            .arg("--session-idle-timeout-ms=1000")
            .arg("--session-max-duration-ms=4000")
    );
    let client = daemon.client().await.unwrap();
    let session = client.create_session(Some("talking")).await.unwrap();
    let mut events = client
        .watch_events(EventFilter::new().session(&session))
        .await
        .unwrap();
    let peer = Peer::new().unwrap();
    let leg = connected_leg(&client, &session, &peer).await.unwrap();
    let to = local_rtp(&leg);
    // RTP every 50 ms keeps it from going idle, with no RPC at all.
    let started = Instant::now();
    let sender = std::thread::spawn(move || {
        for i in 0..120u32 {
            let h = Rtp {
                marker: false,
                pt: 0,
                seq: i as u16,
                ts: 160 * i,
                ssrc: 3,
            };
            let _ = peer.send(to, h, &payload(i));
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let deleted = wait_event(&mut events, Duration::from_secs(20), |e| {
        deleted_reason(e).is_some()
    })
    .await
    .unwrap();
    let took = started.elapsed();
    let reason = deleted_reason(&deleted).unwrap();
    assert!(reason.contains("lifetime"), "{reason} after {took:?}");
    assert!(took >= Duration::from_millis(3_000), "{took:?}");
    sender.join().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legatoctl_lists_age_and_limits() {
    let daemon = daemon_or_skip!(Options::new(Io::Epoll));
    let endpoint = daemon.endpoint();
    let ctl = |args: &[&str]| legatoctl_ok(&endpoint, args);
    ctl(&["session", "create", "--id", "aged", "--idle-timeout", "600"]);
    ctl(&["session", "create", "--id", "plain"]);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let listed = ctl(&["session", "list"]);
    let aged = listed.lines().find(|l| l.contains("session aged")).unwrap();
    let age: u64 = aged
        .split_whitespace()
        .find_map(|w| w.strip_prefix("age="))
        .and_then(|a| a.strip_suffix('s'))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no age in {aged}"));
    assert!((1..120).contains(&age), "{aged}");
    assert!(aged.contains(" idle_limit=600s"), "{aged}");
    let plain = listed
        .lines()
        .find(|l| l.contains("session plain"))
        .unwrap();
    assert!(!plain.contains("idle_limit"), "{plain}");
    let json = ctl(&["--json", "session", "list"]);
    assert!(json.contains("\"idle_timeout_ms\":600000"), "{json}");
}

/// A limit belongs to one session, not to its id: a session deleted and
/// created again under the same id without a limit lives on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_does_not_outlive_its_session() {
    let daemon = daemon_or_skip!(Options::new(Io::Epoll));
    let client = daemon.client().await.unwrap();
    let limits = SessionLimits {
        idle_timeout: Some(Duration::from_millis(800)),
        max_duration: None,
    };
    client
        .create_session_with_limits(Some("reused"), limits)
        .await
        .unwrap();
    // Many limited sessions are checked a slice per tick, all in time.
    for i in 0..200 {
        client
            .create_session_with_limits(Some(&format!("bulk-{i}")), limits)
            .await
            .unwrap();
    }
    client.delete_session("reused").await.unwrap();
    client.create_session(Some("reused")).await.unwrap();
    let started = Instant::now();
    loop {
        let left = client.list_sessions().await.unwrap();
        if left.len() == 1 {
            assert_eq!(left[0].session_id, "reused");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{} sessions left",
            left.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    assert_eq!(client.list_sessions().await.unwrap().len(), 1);
}
