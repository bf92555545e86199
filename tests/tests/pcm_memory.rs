//! A measurement, not a check (ignored by default): legatod's resident
//! memory per leg on the PCM path, for transcoded calls of each codec.
//!
//! `cargo test -p legato-tests --test pcm_memory -- --ignored --nocapture`
//! (build legatod first; `LEGATOD_BIN` picks another binary, e.g. a
//! release build).

use std::time::{Duration, Instant};

use legato_proto::v1 as proto;
use legato_tests::{Io, Options, Peer, Rtp, local_rtp};

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

fn offer(peer: &Peer, pt: u8, rtpmap: &str) -> String {
    format!(
        "v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {} RTP/AVP {pt}\r\na=rtpmap:{pt} {rtpmap}\r\na=rtcp-mux\r\na=sendrecv\r\n",
        peer.addr().port()
    )
}

/// RSS (KiB) of a fresh legatod with `calls` calls PCMU ↔ `codec`, both
/// directions routed, after 2 s of audio.
async fn measure(codec: (u8, &str), calls: usize) -> u64 {
    let daemon = Daemon::start(Options::new(Io::Epoll).arg("--max-legs=4000"))
        .unwrap()
        .unwrap();
    let pid = daemon.pid().unwrap();
    let client = daemon.client().await.unwrap();
    let mut peers = Vec::new();
    // Warm the daemon up with one call first, so one-time allocations
    // (thread stacks, tables) are not counted per leg.
    let before = rss_kib(pid);
    for i in 0..calls + 1 {
        let session = client.create_session(None).await.unwrap();
        let (pa, pb) = (Peer::new().unwrap(), Peer::new().unwrap());
        let mut legs = Vec::new();
        for (peer, (pt, map)) in [(&pa, (0u8, "PCMU/8000")), (&pb, codec)] {
            let created = client
                .create_leg(legato_client::CreateLeg::incoming(
                    &session,
                    offer(peer, pt, map),
                ))
                .await
                .unwrap();
            let leg = client
                .update_leg(
                    legato_client::UpdateLeg::new(&created.leg.leg_id)
                        .state(proto::LegState::Connected),
                )
                .await
                .unwrap()
                .leg;
            legs.push(leg);
        }
        client
            .send_media(legs[0].leg_id.as_str(), legs[1].leg_id.as_str())
            .await
            .unwrap();
        client
            .send_media(legs[1].leg_id.as_str(), legs[0].leg_id.as_str())
            .await
            .unwrap();
        if i > 0 {
            peers.push((pa, local_rtp(&legs[0])));
        }
    }
    let start = rss_kib(pid);
    // PCMU into every A leg for 2 s: every receive and send side runs.
    let t0 = Instant::now();
    let mut n = 0u32;
    while t0.elapsed() < Duration::from_secs(2) {
        for (peer, to) in &peers {
            let h = Rtp {
                marker: false,
                pt: 0,
                seq: n as u16,
                ts: n * 160,
                ssrc: 1,
            };
            peer.send(*to, h, &[0x55; 160]).unwrap();
        }
        n += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after = rss_kib(pid);
    eprintln!(
        "PCMU <-> {}: {calls} calls, RSS {before} -> {start} (set up) -> {after} KiB (running)",
        codec.1
    );
    after
}

use legato_tests::Daemon;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --ignored --nocapture"]
async fn rss_per_pcm_leg() {
    // The same calls relayed (PCMU both sides) are the baseline: what the
    // PCM path adds per leg is the difference, divided by the legs.
    let calls = 45;
    let relay = measure((0, "PCMU/8000"), calls).await;
    for codec in [(8, "PCMA/8000"), (9, "G722/8000"), (111, "opus/48000/2")] {
        let rss = measure(codec, calls).await;
        let per_leg = (rss as f64 - relay as f64) / (2 * calls) as f64;
        eprintln!(
            "PCMU <-> {}: {per_leg:.0} KiB more per leg than relayed",
            codec.1
        );
    }
}
