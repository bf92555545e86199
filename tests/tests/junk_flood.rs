//! Junk flooding a bridged leg's own RTP port (issue 9, item 10): the
//! stranger's datagrams must not squeeze the party's legitimate packets out
//! of the leg's socket. `junk_does_not_cost_legitimate_packets` checks it
//! with counts only (no timing); `measure_junk_flood` (ignored) is the
//! measurement behind the default recorded in benches/README.md:
//!
//! ```text
//! cargo test --release -p legato-tests --test junk_flood -- --ignored --nocapture
//! ```
//!
//! tuned with `FLOOD_BUFFERS` (comma-separated socket receive buffer sizes,
//! 0 = legatod's default), `FLOOD_SECONDS`, `FLOOD_RUNS`, `FLOOD_JUNK_PPS`
//! and `FLOOD_BURN` (threads spinning to make the host busy).

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use legato_tests::{Io, OneWayBridge, Options, Rtp, payload, per_backend};

/// A 172-byte datagram that looks like RTP (PCMU, random sequence and
/// SSRC): what an attacker scanning for media ports sends.
fn junk(state: &mut u32, out: &mut [u8; 172]) {
    *state ^= *state << 13;
    *state ^= *state >> 17;
    *state ^= *state << 5;
    out[0] = 0x80;
    out[1] = 0;
    out[2..6].copy_from_slice(&state.to_be_bytes());
    out[8..12].copy_from_slice(&state.rotate_left(7).to_be_bytes());
}

fn legit(pa: &legato_tests::Peer, to: SocketAddr, seq: u16) {
    pa.send(
        to,
        Rtp {
            marker: false,
            pt: 0,
            seq,
            ts: 160 * u32::from(seq),
            ssrc: 0x1111,
        },
        &payload(u32::from(seq)),
    )
    .expect("send");
}

/// Counts what `pb` receives until `expected` arrived or 2 s of quiet.
fn count_received(pb: &legato_tests::Peer, expected: usize) -> usize {
    pb.socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let mut got = 0;
    while got < expected {
        match pb.recv().expect("recv") {
            Some(_) => got += 1,
            None => break,
        }
    }
    got
}

/// 5,000 junk datagrams in bursts of 25 sent as fast as one thread can,
/// one packet of the party's stream after each burst (200, one per 2 ms:
/// 10 times a real stream's rate), at legatod's default socket receive
/// buffer: every legitimate packet arrives. (Without the kernel source
/// filter the bursts fill the 16 KiB buffer and the party loses packets;
/// see benches/README.md.)
async fn junk_does_not_cost_legitimate_packets(io: Io) {
    let mut options = Options::new(io);
    options.socket_recv_buffer = Some(0);
    let Some(bridge) = OneWayBridge::start_with(options).await.unwrap() else {
        return;
    };
    let to = legato_tests::local_rtp(&bridge.a);
    // The party's first packet: its SDP address holds the leg.
    legit(&bridge.pa, to, 0);
    assert_eq!(count_received(&bridge.pb, 1), 1);
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    const JUNK: usize = 5_000;
    const GOOD: u16 = 200;
    let received = std::thread::scope(|s| {
        let rx = s.spawn(|| count_received(&bridge.pb, usize::from(GOOD)));
        let mut state = 0x2545_f491_u32;
        let mut buf = [0u8; 172];
        for i in 0..JUNK {
            junk(&mut state, &mut buf);
            let _ = stranger.send_to(&buf, to);
            if i % 25 == 24 {
                legit(&bridge.pa, to, (i / 25 + 1) as u16);
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        rx.join().unwrap()
    });
    assert_eq!(received, usize::from(GOOD), "legitimate packets lost");
    let counters = bridge
        .client
        .get_leg(&bridge.a.leg_id)
        .await
        .unwrap()
        .counters
        .unwrap();
    assert_eq!(counters.rtp_packets_received, u64::from(GOOD) + 1);
    assert_eq!(counters.rtp_packets_sent, 0);
}

/// One measured run: junk at `junk_pps` and the party at 50 pps for
/// `seconds`; returns (legitimate sent, legitimate received, junk sent).
async fn flood_run(
    io: Io,
    buffer: usize,
    filter: bool,
    seconds: f64,
    junk_pps: f64,
) -> Option<(u32, u32, u64)> {
    let mut options = Options::new(io);
    options.socket_recv_buffer = Some(buffer);
    if !filter {
        options = options.arg("--no-kernel-source-filter");
    }
    let bridge = OneWayBridge::start_with(options).await.unwrap()?;
    let to = legato_tests::local_rtp(&bridge.a);
    legit(&bridge.pa, to, 0);
    assert_eq!(count_received(&bridge.pb, 1), 1);
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    let legit_count = (seconds * 50.0) as u32;
    let done = AtomicBool::new(false);
    let (received, junk_sent) = std::thread::scope(|s| {
        let rx = s.spawn(|| count_received(&bridge.pb, legit_count as usize));
        let flood = s.spawn(|| {
            let start = Instant::now();
            let (mut state, mut buf, mut sent) = (0x9e37_79b9_u32, [0u8; 172], 0u64);
            while !done.load(Ordering::Relaxed) {
                let due = (start.elapsed().as_secs_f64() * junk_pps) as u64;
                while sent < due {
                    junk(&mut state, &mut buf);
                    let _ = stranger.send_to(&buf, to);
                    sent += 1;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            sent
        });
        let start = Instant::now();
        for k in 1..=legit_count {
            let due = start + Duration::from_millis(20 * u64::from(k));
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            legit(&bridge.pa, to, k as u16);
        }
        let received = rx.join().unwrap();
        done.store(true, Ordering::Relaxed);
        (received, flood.join().unwrap())
    });
    Some((legit_count, received as u32, junk_sent))
}

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement: minutes of traffic; run with --ignored --nocapture"]
async fn measure_junk_flood() {
    let buffers: Vec<usize> = std::env::var("FLOOD_BUFFERS")
        .unwrap_or_else(|_| "0,16384,65536,262144".into())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    let seconds = env("FLOOD_SECONDS", 10.0);
    let runs = env("FLOOD_RUNS", 3usize);
    let junk_pps = env("FLOOD_JUNK_PPS", 5_000.0);
    let burn = env("FLOOD_BURN", 0usize);
    let filters: Vec<bool> = std::env::var("FLOOD_FILTER")
        .unwrap_or_else(|_| "on,off".into())
        .split(',')
        .map(|v| v.trim() == "on")
        .collect();
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let burners: Vec<_> = (0..burn)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut x = 1u64;
                while !stop.load(Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005));
                }
            })
        })
        .collect();
    println!("backend  filter  buffer  run  legit_lost/sent  junk_sent  junk_pps  (burn {burn})");
    for io in [Io::Uring, Io::Epoll] {
        for &filter in &filters {
            for &buffer in &buffers {
                for run in 0..runs {
                    let t = Instant::now();
                    let Some((sent, received, junk_sent)) =
                        flood_run(io, buffer, filter, seconds, junk_pps).await
                    else {
                        println!("{}: unavailable", io.flag());
                        break;
                    };
                    let shown = if buffer == 0 {
                        "default".to_owned()
                    } else {
                        buffer.to_string()
                    };
                    println!(
                        "{:<7} {:>7} {shown:>7} {run:>4} {:>8}/{sent:<6} {junk_sent:>9} {:>9.0}",
                        io.flag(),
                        if filter { "on" } else { "off" },
                        sent - received,
                        junk_sent as f64 / t.elapsed().as_secs_f64(),
                    );
                }
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    for b in burners {
        let _ = b.join();
    }
}

/// The same flood on the leg of a NAT'd party: its SDP names an address
/// that never sends, and its real source is learned by probation. From
/// then on a socket filter lets only that source and the SDP address
/// through, so the junk never reaches legatod and costs the party nothing;
/// after a silence the filter is lifted again and a new NAT mapping is
/// learned as before.
async fn junk_on_a_natted_leg_costs_nothing(io: Io) {
    let mut options = Options::new(io).arg("--relatch-after-ms=300");
    options.socket_recv_buffer = Some(0);
    let Some(daemon) = legato_tests::Daemon::start(options).unwrap() else {
        return;
    };
    let client = daemon.client().await.unwrap();
    let session = client.create_session(None).await.unwrap();
    let (ghost, natted, pb) = (
        legato_tests::Peer::new().unwrap(),
        legato_tests::Peer::new().unwrap(),
        legato_tests::Peer::new().unwrap(),
    );
    let a = legato_tests::connected_leg(&client, &session, &ghost)
        .await
        .unwrap();
    let b = legato_tests::connected_leg(&client, &session, &pb)
        .await
        .unwrap();
    client
        .send_media(a.leg_id.as_str(), b.leg_id.as_str())
        .await
        .unwrap();
    let to = legato_tests::local_rtp(&a);
    // Probation (5 packets, not relayed), then the first relayed one.
    for seq in 0..6 {
        legit(&natted, to, seq);
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(count_received(&pb, 1), 1);
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    const JUNK: usize = 5_000;
    const GOOD: u16 = 200;
    let received = std::thread::scope(|s| {
        let rx = s.spawn(|| count_received(&pb, usize::from(GOOD)));
        let mut state = 0x2545_f491_u32;
        let mut buf = [0u8; 172];
        for i in 0..JUNK {
            junk(&mut state, &mut buf);
            let _ = stranger.send_to(&buf, to);
            if i % 25 == 24 {
                legit(&natted, to, (i / 25 + 6) as u16);
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        rx.join().unwrap()
    });
    assert_eq!(received, usize::from(GOOD), "legitimate packets lost");
    let counters = client.get_leg(&a.leg_id).await.unwrap().counters.unwrap();
    assert_eq!(
        counters.unexpected_source_packets, 0,
        "junk reached legatod: {counters:?}"
    );
    // Silence past relatch_after (and a sweep): the NAT mapping changes
    // and the new one is learned by probation.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let rebound = legato_tests::Peer::new().unwrap();
    for seq in 300..306 {
        legit(&rebound, to, seq);
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(count_received(&pb, 1), 1, "new NAT mapping not learned");
    let counters = client.get_leg(&a.leg_id).await.unwrap().counters.unwrap();
    assert_eq!(counters.source_switches, 2, "{counters:?}");
}

per_backend!(
    junk_does_not_cost_legitimate_packets,
    junk_on_a_natted_leg_costs_nothing
);
