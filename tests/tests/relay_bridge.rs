//! Two RTP peers bridged through legatod both ways: 1,000 packets each way
//! arrive in order with continuous sequence numbers and timestamps and the
//! exact payload; switching the source keeps the stream continuous.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use legato_tests::{
    Io, OneWayBridge, Options, Peer, Rtp, connected_leg, daemon_or_skip, local_rtp, payload,
    per_backend,
};

const PACKETS: u32 = 1000;

/// Sends `count` packets 20 ms apart in spirit but paced at 5 per ms, so the
/// test is quick yet never overflows a socket buffer.
fn send_stream(peer: &Peer, to: SocketAddr, ssrc: u32, seq0: u16, ts0: u32, count: u32) {
    for i in 0..count {
        let h = Rtp {
            marker: i == 0,
            pt: 0,
            seq: seq0.wrapping_add(i as u16),
            ts: ts0.wrapping_add(160 * i),
            ssrc,
        };
        peer.send(to, h, &payload(i)).expect("send");
        if i % 5 == 4 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Receives until `count` packets arrived or the peer times out.
fn receive_stream(peer: &Peer, count: u32) -> Vec<(Rtp, Vec<u8>)> {
    let mut got = Vec::new();
    while got.len() < count as usize {
        match peer.recv().expect("recv") {
            Some((h, p, _)) => got.push((h, p)),
            None => break,
        }
    }
    got
}

fn check_continuous(got: &[(Rtp, Vec<u8>)], what: &str) {
    for pair in got.windows(2) {
        let (a, b) = (&pair[0].0, &pair[1].0);
        assert_eq!(
            b.seq,
            a.seq.wrapping_add(1),
            "{what}: sequence gap {a:?} -> {b:?}"
        );
        assert_eq!(
            b.ts,
            a.ts.wrapping_add(160),
            "{what}: timestamp jump {a:?} -> {b:?}"
        );
        assert_eq!(b.ssrc, a.ssrc, "{what}: SSRC changed");
        assert_eq!(b.pt, 0, "{what}: payload type");
    }
}

async fn bridge_both_ways(io: Io) {
    let daemon = daemon_or_skip!(Options::new(io));
    let client = daemon.client().await.unwrap();
    let session = client.create_session(None).await.unwrap();
    let (pa, pb, pc) = (
        Peer::new().unwrap(),
        Peer::new().unwrap(),
        Peer::new().unwrap(),
    );
    let a = connected_leg(&client, &session, &pa).await.unwrap();
    let b = connected_leg(&client, &session, &pb).await.unwrap();
    let c = connected_leg(&client, &session, &pc).await.unwrap();
    client
        .send_media(a.leg_id.as_str(), b.leg_id.as_str())
        .await
        .unwrap();
    client
        .send_media(b.leg_id.as_str(), a.leg_id.as_str())
        .await
        .unwrap();
    let (addr_a, addr_b, addr_c) = (local_rtp(&a), local_rtp(&b), local_rtp(&c));

    let (at_b, at_a) = std::thread::scope(|s| {
        let rb = s.spawn(|| receive_stream(&pb, PACKETS));
        let ra = s.spawn(|| receive_stream(&pa, PACKETS));
        s.spawn(|| send_stream(&pa, addr_a, 0x1111, 100, 5_000, PACKETS));
        s.spawn(|| send_stream(&pb, addr_b, 0x2222, 60_000, 4_294_960_000, PACKETS));
        (rb.join().unwrap(), ra.join().unwrap())
    });
    for (got, what) in [(&at_b, "a->b"), (&at_a, "b->a")] {
        assert_eq!(got.len(), PACKETS as usize, "{what}: packets received");
        check_continuous(got, what);
        for (i, (_, p)) in got.iter().enumerate() {
            assert_eq!(p, &payload(i as u32), "{what}: payload of packet {i}");
        }
        assert!(got[0].0.marker, "{what}: first packet carries the marker");
    }
    // legato's SSRCs are its own, not the peers'.
    assert!(!HashSet::from([0x1111, 0x2222]).contains(&at_b[0].0.ssrc));

    // Source switch: c replaces a as b's source; b's stream continues.
    let replaced = client
        .send_media(c.leg_id.as_str(), b.leg_id.as_str())
        .await
        .unwrap();
    assert_eq!(
        replaced.replaced.map(|r| r.id().to_owned()),
        Some(a.leg_id.clone())
    );
    let last = at_b.last().unwrap().0;
    let switched = std::thread::scope(|s| {
        let rb = s.spawn(|| receive_stream(&pb, 200));
        s.spawn(|| send_stream(&pc, addr_c, 0x3333, 7, 123_456, 200));
        // Packets from a are no longer sent to b.
        s.spawn(|| send_stream(&pa, addr_a, 0x1111, 1100, 165_000, 50));
        rb.join().unwrap()
    });
    assert_eq!(switched.len(), 200, "packets after the switch");
    let first = switched[0].0;
    assert_eq!(
        first.seq,
        last.seq.wrapping_add(1),
        "sequence continues across the switch"
    );
    assert_eq!(first.ssrc, last.ssrc, "SSRC stays across the switch");
    assert!(
        first.marker,
        "marker bit on the first packet of the new source"
    );
    let advance = first.ts.wrapping_sub(last.ts);
    assert!(
        (160..8000 * 30).contains(&advance),
        "timestamp advances by the elapsed time: {advance}"
    );
    check_continuous(&switched, "c->b");
    for (i, (_, p)) in switched.iter().enumerate() {
        assert_eq!(p, &payload(i as u32), "payload after switch {i}");
    }
    let leg_b = client.get_leg(&b.leg_id).await.unwrap();
    assert_eq!(leg_b.media_source_leg_id, c.leg_id);
    let counters = leg_b.counters.unwrap();
    assert_eq!(counters.rtp_packets_sent, u64::from(PACKETS) + 200);
    assert_eq!(counters.rtp_packets_received, u64::from(PACKETS));
}

async fn telephone_event_relayed(io: Io) {
    let Some(OneWayBridge {
        daemon: _daemon,
        pa,
        pb,
        a,
        ..
    }) = OneWayBridge::start(io).await.unwrap()
    else {
        return;
    };
    let to = local_rtp(&a);
    // Audio, then an RFC 4733 event for digit 5 (3 packets), then audio.
    let event = |end: bool, duration: u16| {
        let mut p = vec![5, if end { 0x80 | 10 } else { 10 }];
        p.extend_from_slice(&duration.to_be_bytes());
        p
    };
    let mut seq = 10u16;
    let mut send = |pt: u8, ts: u32, body: &[u8]| {
        pa.send(
            to,
            Rtp {
                marker: false,
                pt,
                seq,
                ts,
                ssrc: 9,
            },
            body,
        )
        .unwrap();
        seq += 1;
    };
    send(0, 0, &payload(0));
    send(101, 160, &event(false, 160));
    send(101, 160, &event(false, 320));
    send(101, 160, &event(true, 480));
    send(0, 640, &payload(1));
    let mut got = Vec::new();
    while let Some((h, p, _)) = pb.recv().unwrap() {
        got.push((h, p));
        if got.len() == 5 {
            break;
        }
    }
    assert_eq!(got.len(), 5);
    let pts: Vec<u8> = got.iter().map(|(h, _)| h.pt).collect();
    assert_eq!(pts, [0, 101, 101, 101, 0]);
    let base = got[0].0.ts;
    assert_eq!(
        got[1].0.ts.wrapping_sub(base),
        160,
        "events keep their timestamp offset"
    );
    assert_eq!(got[3].1, event(true, 480));
    assert_eq!(got[4].0.ts.wrapping_sub(base), 640);
}

per_backend!(bridge_both_ways, telephone_event_relayed);
