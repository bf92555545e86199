//! GetStatistics and MonitorMediaStatistics against the real legatod, on a
//! relayed call (two PCMU legs, A's audio sent to B) fed a clean paced
//! stream over 127.0.0.1:
//!
//! - MonitorMediaStatistics(A, 1000 ms) makes WatchEvents deliver a
//!   MediaStatisticsReceived about A about once a second (3 to 6 in 4 s,
//!   each about a second after the last); interval 0 turns them off;
//!   500 ms is INVALID_ARGUMENT; an unknown leg is NOT_FOUND.
//! - GetStatistics on the relayed legs: packet counts match what was sent,
//!   codec PCMU/8000/0, no loss, little jitter, no jitter buffer (a relay
//!   has none) and a MOS above 4.

use std::time::{Duration, Instant};

use futures::StreamExt;
use legato_client::{Code, EventFilter, proto};
use legato_tests::{G711, Io, OneWayBridge, ToneStream, local_rtp, paced, per_backend};

/// Sends `count` paced 20 ms PCMU packets of a tone from `bridge.pa` to
/// leg A, in a thread.
fn spawn_stream(bridge: &OneWayBridge, count: usize) -> std::thread::JoinHandle<usize> {
    let mut stream =
        ToneStream::new(&bridge.pa, local_rtp(&bridge.a), G711::Pcmu, 440.0, 4000.0).unwrap();
    std::thread::spawn(move || {
        paced(Instant::now(), count, Duration::from_millis(20), |_| {
            stream.send().unwrap();
        });
        stream.sent
    })
}

/// Receives events until `deadline`, returning the MediaStatisticsReceived
/// ones with their arrival times.
async fn statistics_events(
    events: &mut legato_client::EventStream,
    deadline: tokio::time::Instant,
) -> Vec<(Instant, proto::MediaStatistics)> {
    use proto::event::Kind;
    let mut out = Vec::new();
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, events.next()).await {
        let event = event.expect("event stream");
        if let Some(Kind::MediaStatisticsReceived(m)) = event.kind {
            out.push((Instant::now(), m.statistics.expect("statistics")));
        }
    }
    out
}

async fn monitor_media_statistics(io: Io) {
    let Some(bridge) = OneWayBridge::start(io).await.unwrap() else {
        return;
    };
    let client = bridge.client.clone();
    let a = bridge.a.leg_id.clone();
    let sender = spawn_stream(&bridge, 500);
    let mut events = client
        .watch_events(EventFilter::new().leg(a.clone()))
        .await
        .unwrap();

    client.monitor_media_statistics(&a, 1000).await.unwrap();
    let on = Instant::now();
    let got = statistics_events(
        &mut events,
        tokio::time::Instant::now() + Duration::from_secs(4),
    )
    .await;
    let offsets: Vec<String> = got
        .iter()
        .map(|(at, s)| {
            format!(
                "{:.2}s ({} packets)",
                at.duration_since(on).as_secs_f64(),
                s.counters.as_ref().map_or(0, |c| c.rtp_packets_received)
            )
        })
        .collect();
    eprintln!(
        "{io:?}: {} MediaStatisticsReceived in 4 s: {offsets:?}",
        got.len()
    );
    assert!(
        (3..=6).contains(&got.len()),
        "{} events in 4 s at 1000 ms",
        got.len()
    );
    for w in got.windows(2) {
        let gap = w[1].0.duration_since(w[0].0);
        assert!(
            gap > Duration::from_millis(600) && gap < Duration::from_millis(1600),
            "events {gap:?} apart"
        );
        let count =
            |s: &proto::MediaStatistics| s.counters.as_ref().map_or(0, |c| c.rtp_packets_received);
        assert!(
            count(&w[1].1) > count(&w[0].1),
            "counters move between events"
        );
    }
    let last = &got.last().unwrap().1;
    assert_eq!(last.codec, "PCMU");
    assert!(last.mos > 4.0, "mos {}", last.mos);

    // 0 turns them off (one may already be under way).
    client.monitor_media_statistics(&a, 0).await.unwrap();
    let off = Instant::now();
    let after = statistics_events(
        &mut events,
        tokio::time::Instant::now() + Duration::from_millis(2500),
    )
    .await;
    let late: Vec<Duration> = after.iter().map(|(at, _)| at.duration_since(off)).collect();
    eprintln!("{io:?}: after interval 0: events at {late:?}");
    assert!(
        late.iter().all(|d| *d < Duration::from_millis(300)),
        "events after MonitorMediaStatistics(0): {late:?}"
    );

    // Errors.
    let err = client.monitor_media_statistics(&a, 500).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    let err = client.monitor_media_statistics(&a, 999).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    // A well-formed id of a leg that does not exist, on either shard.
    for unknown in ["0123456789abcdef0000", "0123456789abcdef0001"] {
        let err = client
            .monitor_media_statistics(unknown, 1000)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "{unknown}: {err}");
        let err = client.get_statistics(unknown).await.unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "{unknown}: {err}");
    }
    let err = client
        .monitor_media_statistics("no-such-leg", 1000)
        .await
        .unwrap_err();
    assert!(
        matches!(err.code(), Code::NotFound | Code::InvalidArgument),
        "{err}"
    );
    sender.join().unwrap();
}

async fn relayed_leg_statistics(io: Io) {
    let Some(bridge) = OneWayBridge::start(io).await.unwrap() else {
        return;
    };
    let client = bridge.client.clone();
    let leg_b = client.get_leg(&bridge.b.leg_id).await.unwrap();
    assert!(!leg_b.transcoding, "PCMU to PCMU is relayed");
    let sent = spawn_stream(&bridge, 250).join().unwrap();
    // Let the last packets land.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let a = client.get_statistics(&bridge.a.leg_id).await.unwrap();
    let b = client.get_statistics(&bridge.b.leg_id).await.unwrap();
    eprintln!("{io:?}: A {a:?}");
    eprintln!("{io:?}: B {b:?}");
    let ca = a.counters.as_ref().expect("counters");
    assert_eq!(ca.rtp_packets_received, sent as u64);
    // Bytes count whole RTP packets: 12-byte header and 160 bytes of PCMU.
    assert_eq!(ca.rtp_bytes_received, sent as u64 * 172);
    assert_eq!(a.packets_expected, sent as u64);
    assert_eq!(a.packets_lost, 0);
    assert_eq!(a.fraction_lost, 0.0);
    assert!(a.jitter_ms < 5.0, "jitter {} ms on 127.0.0.1", a.jitter_ms);
    assert_eq!(
        (a.codec.as_str(), a.clock_rate, a.payload_type),
        ("PCMU", 8000, 0)
    );
    assert!(a.mos > 4.0 && a.mos <= 4.5, "mos {}", a.mos);
    assert_eq!(
        a.jitter_buffer_delay_ms, 0.0,
        "a relay has no jitter buffer"
    );
    assert_eq!(a.concealed_frames, 0);
    // B sent what A received, relayed one by one.
    let cb = b.counters.as_ref().expect("counters");
    assert_eq!(cb.rtp_packets_sent, sent as u64);
    assert_eq!(cb.rtp_packets_received, 0);
    assert_eq!((b.codec.as_str(), b.clock_rate), ("PCMU", 8000));
    // Nothing received on B: no MOS to give.
    assert_eq!(b.mos, 0.0);
    // B's peer got them all.
    let mut received = 0;
    while let Some((h, _, _)) = bridge.pb.recv().unwrap() {
        assert_eq!(h.pt, 0);
        received += 1;
        if received == sent {
            break;
        }
    }
    assert_eq!(received, sent);
}

per_backend!(monitor_media_statistics, relayed_leg_statistics);
