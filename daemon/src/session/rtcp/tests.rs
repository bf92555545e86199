//! Virtual-clock tests of [`RtcpSession`]: nothing sleeps; `Instant`s are
//! advanced by hand and wall-clock time is derived from them.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::*;

const A: u32 = 0xA0A0_0001;
const B: u32 = 0xB0B0_0002;

/// A fixed wall clock: 2023-11-14 plus the virtual time elapsed since `t0`,
/// shifted by `skew`.
fn wall(t0: Instant, now: Instant, skew: Duration) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000) + skew + now.duration_since(t0)
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// Runs `s` to its next report and returns (time, packet bytes).
fn next_report(s: &mut RtcpSession, t0: Instant) -> (Instant, Vec<u8>) {
    let at = s.poll_timeout().expect("open session has a deadline");
    let mut out = [0u8; MAX_COMPOUND_LEN];
    assert_eq!(
        s.poll_transmit(
            at - Duration::from_millis(1),
            wall(t0, at, Duration::ZERO),
            &mut out
        ),
        None
    );
    let n = s
        .poll_transmit(at, wall(t0, at, Duration::ZERO), &mut out)
        .expect("due report is written");
    (at, out[..n].to_vec())
}

// ---- An independent decoder: RFC 3550 §6.4 offsets, written from the RFC
// ---- and not from legato-dsp's parser.

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

#[derive(Debug, Default)]
struct Decoded {
    pt: u8,
    ssrc: u32,
    /// Sender info: NTP, RTP ts, packets, octets.
    sender: Option<(u64, u32, u32, u32)>,
    /// (ssrc, fraction, cumulative lost, highest seq, jitter, lsr, dlsr)
    blocks: Vec<(u32, u8, i32, u32, u32, u32, u32)>,
    cname: Option<String>,
    bye: Vec<u32>,
}

/// Decodes our compound packet; asserts the §6.1 rules it must follow.
fn decode(p: &[u8]) -> Decoded {
    assert_eq!(p.len() % 4, 0, "compound length is a multiple of 4");
    let mut d = Decoded::default();
    let mut at = 0;
    let mut first = true;
    while at < p.len() {
        let v = p[at] >> 6;
        let padding = p[at] & 0x20 != 0;
        let count = (p[at] & 0x1F) as usize;
        let pt = p[at + 1];
        let words = u16::from_be_bytes([p[at + 2], p[at + 3]]) as usize;
        let len = (words + 1) * 4;
        assert_eq!(v, 2);
        assert!(!padding, "legato never pads");
        let pkt = &p[at..at + len];
        if first {
            assert!(pt == 200 || pt == 201, "compound starts with SR or RR");
            d.pt = pt;
            d.ssrc = be32(pkt, 4);
            let mut off = 8;
            if pt == 200 {
                let ntp = (u64::from(be32(pkt, 8)) << 32) | u64::from(be32(pkt, 12));
                d.sender = Some((ntp, be32(pkt, 16), be32(pkt, 20), be32(pkt, 24)));
                off = 28;
            }
            assert_eq!(len, off + 24 * count);
            for i in 0..count {
                let b = &pkt[off + 24 * i..off + 24 * (i + 1)];
                let lost24 = (u32::from(b[5]) << 16) | (u32::from(b[6]) << 8) | u32::from(b[7]);
                let lost = if lost24 & 0x80_0000 != 0 {
                    lost24 as i32 - 0x100_0000
                } else {
                    lost24 as i32
                };
                d.blocks.push((
                    be32(b, 0),
                    b[4],
                    lost,
                    be32(b, 8),
                    be32(b, 12),
                    be32(b, 16),
                    be32(b, 20),
                ));
            }
            first = false;
        } else if pt == 202 {
            assert_eq!(count, 1);
            assert_eq!(be32(pkt, 4), d.ssrc);
            assert_eq!(pkt[8], 1, "CNAME item");
            let n = pkt[9] as usize;
            d.cname = Some(String::from_utf8(pkt[10..10 + n].to_vec()).unwrap());
            // At least one null octet ends the item list, then padding.
            assert!(10 + n < len);
            assert!(pkt[10 + n..].iter().all(|&b| b == 0));
        } else if pt == 203 {
            for i in 0..count {
                d.bye.push(be32(pkt, 4 + 4 * i));
            }
            assert_eq!(len, 4 + 4 * count);
        } else {
            panic!("unexpected packet type {pt}");
        }
        at += len;
    }
    assert_eq!(at, p.len());
    assert!(d.cname.is_some(), "every compound carries SDES CNAME");
    d
}

// ---- Scheduling.

const C: f64 = core::f64::consts::E - 1.5;

#[test]
fn first_report_at_half_interval() {
    let t0 = Instant::now();
    let (lo, hi) = (2.5 * 0.5 / C, 2.5 * 1.5 / C);
    let mut sum = 0.0;
    for seed in 0..500 {
        let s = RtcpSession::new(A, "a@legato", 8000, seed, t0);
        let d = s.poll_timeout().unwrap().duration_since(t0).as_secs_f64();
        assert!((lo..=hi).contains(&d), "seed {seed}: {d}");
        sum += d;
    }
    let mean = sum / 500.0;
    assert!((mean - 2.5 / C).abs() < 0.1, "{mean}");
}

#[test]
fn intervals_stay_within_bounds() {
    let t0 = Instant::now();
    let mut s = RtcpSession::new(A, "a@legato", 8000, 42, t0);
    let (mut prev, _) = next_report(&mut s, t0);
    let (lo, hi) = (5.0 * 0.5 / C, 5.0 * 1.5 / C);
    let (mut min, mut max, mut sum) = (f64::MAX, 0.0f64, 0.0);
    let n = 2000u32;
    for _ in 0..n {
        let (at, p) = next_report(&mut s, t0);
        assert_eq!(decode(&p).pt, 201);
        let d = at.duration_since(prev).as_secs_f64();
        assert!((lo..=hi).contains(&d), "{d}");
        (min, max, sum) = (min.min(d), max.max(d), sum + d);
        prev = at;
    }
    let mean = sum / f64::from(n);
    assert!((mean - 5.0 / C).abs() < 0.1, "mean {mean}");
    // The randomisation actually spreads over the range.
    assert!(min < lo + 0.1 && max > hi - 0.1, "{min} {max}");
    assert_eq!(s.stats(prev).reports_sent, u64::from(n) + 1);
}

#[test]
fn configured_minimum_and_bandwidth_rule() {
    let t0 = Instant::now();
    let mut s = RtcpSession::new(A, "a", 8000, 1, t0);
    s.set_config(
        t0,
        RtcpConfig {
            min_interval: Duration::from_secs(1),
            session_bandwidth: None,
        },
    );
    let first = s.poll_timeout().unwrap().duration_since(t0).as_secs_f64();
    assert!((0.5 * 0.5 / C..=0.5 * 1.5 / C).contains(&first), "{first}");
    let cfg = |bw| RtcpConfig {
        min_interval: Duration::from_secs(5),
        session_bandwidth: bw,
    };
    // 80 kbit/s: RTCP 500 B/s, 2 x 100 B -> 0.4 s, so the minimum wins.
    assert_eq!(
        deterministic_interval(cfg(Some(80_000)), 2, 2, true, 100.0, false),
        5.0
    );
    assert_eq!(
        deterministic_interval(cfg(Some(80_000)), 2, 2, true, 100.0, true),
        2.5
    );
    // 2 kbit/s: 12.5 B/s, 2 x 100 B -> 16 s.
    let t = deterministic_interval(cfg(Some(2000)), 2, 1, true, 100.0, false);
    assert!((t - 16.0).abs() < 1e-9, "{t}");
    // Few senders (1 of 8): a sender shares 25 % among 1, a receiver 75 %
    // among 7.
    let t = deterministic_interval(cfg(Some(2000)), 8, 1, true, 100.0, false);
    assert!((t - 100.0 / (12.5 * 0.25)).abs() < 1e-9, "{t}");
    let t = deterministic_interval(cfg(Some(2000)), 8, 1, false, 100.0, false);
    assert!((t - 7.0 * 100.0 / (12.5 * 0.75)).abs() < 1e-9, "{t}");
    assert_eq!(
        deterministic_interval(cfg(Some(0)), 2, 1, true, 100.0, false),
        5.0
    );
}

#[test]
fn sender_report_while_sending_then_receiver_report() {
    let t0 = Instant::now();
    let mut s = RtcpSession::new(A, "alice@example.org", 8000, 7, t0);
    let (first, p) = next_report(&mut s, t0);
    assert_eq!(decode(&p).pt, 201, "nothing sent yet: RR");
    assert_eq!(s.stats(first).last_rr_sent, Some(first));
    // Send 1 s of 20 ms packets, the last at `last`.
    let mut ts = 1000u32;
    let mut last = first;
    for k in 1..=50u32 {
        last = first + Duration::from_millis(20 * u64::from(k));
        ts = ts.wrapping_add(160);
        s.on_rtp_sent(last, ts, 160);
    }
    let (at, p) = next_report(&mut s, t0);
    let d = decode(&p);
    assert_eq!(d.pt, 200);
    assert_eq!(d.ssrc, A);
    assert_eq!(d.cname.as_deref(), Some("alice@example.org"));
    assert!(d.blocks.is_empty(), "nothing received: no block");
    let (ntp, rtp_ts, packets, octets) = d.sender.unwrap();
    assert_eq!((packets, octets), (50, 8000));
    // NTP is the wall clock at `at`.
    let expect = NtpTime::from_unix(
        wall(t0, at, Duration::ZERO)
            .duration_since(UNIX_EPOCH)
            .unwrap(),
    );
    assert_eq!(ntp, expect.0);
    // RTP timestamp extrapolated from the last packet at 8 kHz.
    let gap = at.duration_since(last).as_secs_f64() * 8000.0;
    assert!(
        (f64::from(rtp_ts.wrapping_sub(ts)) - gap).abs() <= 1.0,
        "{rtp_ts} {ts} {gap}"
    );
    // Still within two intervals of the last packet: SR again, then RR.
    assert_eq!(decode(&next_report(&mut s, t0).1).pt, 200);
    let (at, p) = next_report(&mut s, t0);
    assert_eq!(decode(&p).pt, 201);
    let st = s.stats(at);
    assert_eq!(
        (st.packets_sent, st.bytes_sent, st.reports_sent),
        (50, 8000, 4)
    );
    assert!(st.last_sr_sent.unwrap() < st.last_rr_sent.unwrap());
}

#[test]
fn bye_closes() {
    let t0 = Instant::now();
    let mut s = RtcpSession::new(A, "a", 8000, 7, t0);
    s.on_rtp_sent(t0, 5, 160);
    s.on_rtp_received(t0, B, 1, 1, 160);
    let mut out = [0u8; MAX_COMPOUND_LEN];
    let w = wall(t0, t0, Duration::ZERO);
    assert_eq!(s.bye(t0, w, &mut out[..MAX_COMPOUND_LEN - 1]), None);
    assert_eq!(s.poll_timeout(), None);
    let mut s = RtcpSession::new(A, "a", 8000, 7, t0);
    s.on_rtp_sent(t0, 5, 160);
    s.on_rtp_received(t0, B, 1, 1, 160);
    let n = s.bye(t0, w, &mut out).unwrap();
    let d = decode(&out[..n]);
    assert_eq!((d.pt, d.blocks.len(), d.bye.as_slice()), (200, 1, &[A][..]));
    assert_eq!(s.poll_timeout(), None);
    assert_eq!(s.poll_transmit(t0 + secs(100.0), w, &mut out), None);
    assert_eq!(s.bye(t0, w, &mut out), None);
    // The peer notes it.
    let mut peer = RtcpSession::new(B, "b", 8000, 8, t0);
    peer.handle_rtcp(t0, w, &out[..n]).unwrap();
    assert!(peer.stats(t0).bye_received);
}

#[test]
fn small_buffer_skips_the_report() {
    let t0 = Instant::now();
    let mut s = RtcpSession::new(A, "a", 8000, 7, t0);
    let at = s.poll_timeout().unwrap();
    let mut out = [0u8; 64];
    assert_eq!(
        s.poll_transmit(at, wall(t0, at, Duration::ZERO), &mut out),
        None
    );
    assert!(s.poll_timeout().unwrap() > at, "rescheduled, not due again");
    assert_eq!(s.stats(at).reports_sent, 0);
}

#[test]
fn long_cname_is_truncated_on_a_char_boundary() {
    let t0 = Instant::now();
    let name = "é".repeat(200); // 400 bytes
    let mut s = RtcpSession::new(A, &name, 8000, 7, t0);
    let d = decode(&next_report(&mut s, t0).1);
    assert_eq!(d.cname.unwrap(), "é".repeat(127));
    let mut s = RtcpSession::new(A, &"x".repeat(300), 8000, 7, t0);
    s.on_rtp_sent(t0, 1, 1);
    s.on_rtp_received(t0, B, 1, 1, 1);
    let mut out = [0u8; MAX_COMPOUND_LEN];
    let n = s.bye(t0, wall(t0, t0, Duration::ZERO), &mut out).unwrap();
    assert_eq!(
        n, MAX_COMPOUND_LEN,
        "the largest packet fills the buffer exactly"
    );
    assert_eq!(decode(&out[..n]).cname.unwrap().len(), 255);
}

// ---- Two sessions talking: RTT.

enum Item {
    Rtp { ssrc: u32, seq: u16, ts: u32 },
    Rtcp(Vec<u8>),
}

/// Two sessions exchanging 20 ms RTP and RTCP over a path with a fixed
/// one-way delay; B's wall clock is off by `skew`. Returns them at `end`.
fn run_pair(owd: Duration, skew: Duration, end: Duration) -> (RtcpSession, RtcpSession, Instant) {
    let t0 = Instant::now();
    let mut peers = [
        RtcpSession::new(A, "a", 8000, 1, t0),
        RtcpSession::new(B, "b", 8000, 2, t0),
    ];
    let ssrcs = [A, B];
    let skews = [Duration::ZERO, skew];
    let mut queue: VecDeque<(Instant, usize, Item)> = VecDeque::new();
    let mut seq = [100u16, 9000];
    let mut ts = [0u32, 77_777];
    let mut out = [0u8; MAX_COMPOUND_LEN];
    let step = Duration::from_millis(1);
    let mut now = t0;
    let mut ms = 0u64;
    while now < t0 + end {
        while queue.front().is_some_and(|(at, _, _)| *at <= now) {
            let (_, to, item) = queue.pop_front().unwrap();
            match item {
                Item::Rtp { ssrc, seq, ts } => peers[to].on_rtp_received(now, ssrc, seq, ts, 160),
                Item::Rtcp(p) => peers[to]
                    .handle_rtcp(now, wall(t0, now, skews[to]), &p)
                    .unwrap(),
            }
        }
        for i in 0..2 {
            if ms.is_multiple_of(20) {
                seq[i] = seq[i].wrapping_add(1);
                ts[i] = ts[i].wrapping_add(160);
                peers[i].on_rtp_sent(now, ts[i], 160);
                let item = Item::Rtp {
                    ssrc: ssrcs[i],
                    seq: seq[i],
                    ts: ts[i],
                };
                queue.push_back((now + owd, 1 - i, item));
            }
            if let Some(n) = peers[i].poll_transmit(now, wall(t0, now, skews[i]), &mut out) {
                queue.push_back((now + owd, 1 - i, Item::Rtcp(out[..n].to_vec())));
            }
        }
        now += step;
        ms += 1;
    }
    let [a, b] = peers;
    (a, b, now)
}

#[test]
fn rtt_from_an_sr_rr_exchange() {
    let owd = Duration::from_millis(40);
    let (a, b, now) = run_pair(owd, Duration::from_secs(3600), Duration::from_secs(30));
    for (name, s) in [("a", &a), ("b", &b)] {
        let st = s.stats(now);
        let rtt = st.rtt.expect("rtt known after a few reports");
        assert!(
            rtt.abs_diff(2 * owd) < Duration::from_millis(2),
            "{name}: {rtt:?}"
        );
        assert!(
            st.reports_sent >= 5 && st.reports_received >= 5,
            "{name}: {st:?}"
        );
        let remote = st.remote.expect("peer reported on us");
        assert_eq!((remote.packets_lost, remote.fraction_lost), (0, 0.0));
        assert!(remote.jitter_ms < 0.5, "{name}: {remote:?}");
        assert_eq!(st.packets_lost, 0);
        assert!(st.jitter_ms < 0.5);
        assert!(st.last_sr_received.is_some());
        assert!(!st.bye_received);
    }
    assert_eq!(a.stats(now).remote_ssrc, Some(B));
}

#[test]
fn rtt_falls_back_to_the_wall_clock_for_an_unknown_lsr() {
    let t0 = Instant::now();
    let mut a = RtcpSession::new(A, "a", 8000, 1, t0);
    let now = t0 + secs(10.0);
    let w = wall(t0, now, Duration::ZERO);
    // An SR of ours from 150 ms ago that `a` no longer remembers, held
    // 30 ms by the peer: RTT 120 ms.
    let lsr = ntp(w - Duration::from_millis(150)).middle32();
    let mut rr = ReceiverReport::new(B);
    rr.blocks
        .push(ReportBlock {
            ssrc: A,
            lsr,
            dlsr: to_q16(Duration::from_millis(30)),
            ..Default::default()
        })
        .unwrap();
    let mut buf = [0u8; 64];
    let n = rr.write(&mut buf).unwrap();
    a.handle_rtcp(now, w, &buf[..n]).unwrap();
    let rtt = a.stats(now).rtt.unwrap();
    assert!(
        rtt.abs_diff(Duration::from_millis(120)) < Duration::from_millis(1),
        "{rtt:?}"
    );
    // A DLSR longer than the elapsed time (negative RTT) is ignored.
    let mut rr = ReceiverReport::new(B);
    rr.blocks
        .push(ReportBlock {
            ssrc: A,
            lsr,
            dlsr: to_q16(Duration::from_secs(1)),
            ..Default::default()
        })
        .unwrap();
    let n = rr.write(&mut buf).unwrap();
    a.handle_rtcp(now, w, &buf[..n]).unwrap();
    assert_eq!(a.stats(now).rtt, Some(rtt));
    // A block about another source is not about us.
    let mut rr = ReceiverReport::new(B);
    rr.blocks
        .push(ReportBlock {
            ssrc: 99,
            fraction_lost: 128,
            ..Default::default()
        })
        .unwrap();
    let n = rr.write(&mut buf).unwrap();
    a.handle_rtcp(now, w, &buf[..n]).unwrap();
    assert_eq!(a.stats(now).remote.unwrap().fraction_lost, 0.0);
    assert_eq!(a.stats(now).reports_received, 3);
}

// ---- Reception statistics.

#[test]
fn loss_and_jitter_of_a_lossy_jittery_stream() {
    let t0 = Instant::now();
    let mut s = RtcpSession::new(A, "a", 8000, 3, t0);
    let mut rng = fastrand::Rng::with_seed(99);
    let total = 2500u32; // 50 s
    let mut dropped = 0;
    let mut reports = Vec::new();
    let mut out = [0u8; MAX_COMPOUND_LEN];
    for k in 0..total {
        let sent = t0 + Duration::from_millis(20 * u64::from(k));
        // Jitter: 30 ms base delay plus uniform 0..10 ms (no reordering).
        let arrival = sent + Duration::from_millis(30) + Duration::from_micros(rng.u64(0..10_000));
        let due = s.poll_timeout().unwrap();
        if due <= arrival {
            let n = s
                .poll_transmit(due, wall(t0, due, Duration::ZERO), &mut out)
                .unwrap();
            reports.push(decode(&out[..n]));
        }
        let seq = (65_000 + k) as u16; // wraps past 65535
        if k != 0 && k != total - 1 && rng.f64() < 0.05 {
            dropped += 1;
            continue;
        }
        s.on_rtp_received(arrival, B, seq, 1_000_000 + k * 160, 160);
    }
    let end = t0 + Duration::from_millis(20 * u64::from(total) + 100);
    let st = s.stats(end);
    assert!((100..=150).contains(&dropped), "{dropped}");
    assert_eq!(st.packets_expected, u64::from(total));
    assert_eq!(st.packets_lost, i64::from(dropped));
    assert_eq!(st.packets_received, u64::from(total - dropped));
    assert_eq!(st.bytes_received, u64::from(total - dropped) * 160);
    // Uniform 0..a delay: mean |D| = a / 3 = 3.3 ms.
    assert!((2.5..=4.2).contains(&st.jitter_ms), "{}", st.jitter_ms);
    assert!(
        (0.0..=0.2).contains(&st.fraction_lost),
        "{}",
        st.fraction_lost
    );
    // The reports say the same, read with the independent decoder.
    assert!(reports.len() >= 10);
    let mut last_lost = 0;
    for r in &reports[1..] {
        let &(ssrc, fraction, lost, highest, jitter, lsr, _) = r.blocks.first().unwrap();
        assert_eq!((ssrc, lsr), (B, 0));
        assert!(fraction < 64, "{fraction}");
        assert!(lost >= last_lost);
        last_lost = lost;
        assert!(highest >= 65_000);
        assert!(jitter < 60, "{jitter} units"); // < 7.5 ms
    }
    let (_, _, _, highest, _, _, _) = reports.last().unwrap().blocks[0];
    assert!(highest > 65_536, "cycles counted: {highest}");
    let f = reports
        .iter()
        .skip(1)
        .map(|r| f64::from(r.blocks[0].1))
        .sum::<f64>()
        / (reports.len() - 1) as f64
        / 256.0;
    assert!((0.02..=0.09).contains(&f), "mean fraction {f}");
    // A final report carries the cumulative loss exactly.
    let n = s.bye(end, wall(t0, end, Duration::ZERO), &mut out).unwrap();
    assert_eq!(decode(&out[..n]).blocks[0].2, dropped as i32);
}

#[test]
fn clock_rate_change_keeps_arrival_continuous() {
    let t0 = Instant::now();
    let mut s = RtcpSession::new(A, "a", 8000, 3, t0);
    let mut ts = 0u32;
    let mut now = t0;
    for seq in 0..200u16 {
        let arrival = now + Duration::from_millis(25);
        if seq == 100 {
            // The first packet of the new codec arrives.
            s.set_clock_rate(arrival, 48_000);
        }
        s.on_rtp_received(arrival, B, seq, ts, 160);
        let jitter = s.stats(now).jitter_ms;
        assert!(jitter < 0.01, "seq {seq}: {jitter}");
        ts = ts.wrapping_add(if seq < 100 { 160 } else { 960 });
        now += Duration::from_millis(20);
    }
    // A new SSRC starts the statistics over.
    s.on_rtp_received(now, 0x1234, 5000, 9, 160);
    let st = s.stats(now);
    assert_eq!(
        (st.remote_ssrc, st.packets_expected, st.packets_received),
        (Some(0x1234), 1, 201)
    );
}

#[test]
fn report_block_only_when_received_since_last_report() {
    let t0 = Instant::now();
    let mut s = RtcpSession::new(A, "a", 8000, 3, t0);
    s.on_rtp_received(t0, B, 1, 160, 160);
    assert_eq!(decode(&next_report(&mut s, t0).1).blocks.len(), 1);
    assert_eq!(decode(&next_report(&mut s, t0).1).blocks.len(), 0);
}

// ---- Hostile input.

fn sr_with_block(blocks: u32) -> Vec<u8> {
    let mut sr = SenderReport {
        ssrc: B,
        ntp: NtpTime(0xE000_0000_1234_0000),
        rtp_timestamp: 1,
        packet_count: 2,
        octet_count: 3,
        blocks: ReportBlocks::new(),
    };
    for i in 0..blocks {
        sr.blocks
            .push(ReportBlock {
                ssrc: if i == blocks - 1 { A } else { i },
                fraction_lost: 64,
                jitter: 80,
                ..Default::default()
            })
            .unwrap();
    }
    let mut buf = vec![0u8; sr.len()];
    sr.write(&mut buf).unwrap();
    buf
}

#[test]
fn hostile_compounds_are_errors_and_change_nothing() {
    let t0 = Instant::now();
    let w = wall(t0, t0, Duration::ZERO);
    let mut s = RtcpSession::new(A, "a", 8000, 3, t0);
    let good = sr_with_block(1);
    let mut bad: Vec<(Vec<u8>, RtcpError)> = vec![(Vec::new(), RtcpError::Truncated)];
    // Every proper prefix.
    for i in 1..good.len() {
        bad.push((good[..i].to_vec(), RtcpError::Truncated));
    }
    // Version 1.
    let mut v1 = good.clone();
    v1[0] = 0x41;
    bad.push((v1, RtcpError::BadVersion));
    // Length longer than the datagram.
    let mut long = good.clone();
    long[3] += 1;
    bad.push((long, RtcpError::Truncated));
    // Length shorter than the sender info: parsed as a short SR.
    let mut short = good.clone();
    short[3] = 1;
    bad.push((short[..8].to_vec(), RtcpError::Malformed));
    // Zero length SR and RR (a bare header).
    bad.push((vec![0x80, 200, 0, 0], RtcpError::Malformed));
    bad.push((vec![0x81, 201, 0, 0], RtcpError::Malformed));
    // Report count 31 with one block in the body.
    let mut rc = good.clone();
    rc[0] = 0x80 | 31;
    bad.push((rc, RtcpError::Malformed));
    // A valid SR followed by garbage: the SR must not be applied either.
    let mut tail = good.clone();
    tail.extend_from_slice(&[0x80, 202, 0, 9]);
    bad.push((tail, RtcpError::Truncated));
    // BYE claiming 31 sources with room for one.
    let mut bye = good.clone();
    bye.extend_from_slice(&[0x80 | 31, 203, 0, 1, 0, 0, 0, 1]);
    bad.push((bye, RtcpError::Malformed));
    // Padding larger than the packet.
    let mut pad = good.clone();
    pad[0] |= 0x20;
    *pad.last_mut().unwrap() = 200;
    bad.push((pad, RtcpError::Malformed));
    for (p, e) in &bad {
        assert_eq!(s.handle_rtcp(t0, w, p), Err(*e), "{p:02x?}");
    }
    let st = s.stats(t0);
    assert_eq!(
        (st.reports_received, st.remote, st.last_sr_received),
        (0, None, None)
    );
    // The good one is taken.
    s.handle_rtcp(t0, w, &good).unwrap();
    let st = s.stats(t0);
    assert_eq!(st.reports_received, 1);
    assert_eq!(st.remote.unwrap().fraction_lost, 0.25);
    assert_eq!(st.remote.unwrap().jitter_ms, 10.0);
}

#[test]
fn thirty_one_blocks_and_unknown_types() {
    let t0 = Instant::now();
    let w = wall(t0, t0, Duration::ZERO);
    let mut s = RtcpSession::new(A, "a", 8000, 3, t0);
    let mut p = sr_with_block(31);
    assert_eq!(p.len(), 28 + 31 * 24);
    // APP, an unknown type 210 with zero length, and SDES: skipped.
    p.extend_from_slice(&[0x80, 204, 0, 2, 0, 0, 0, 2, b'n', b'a', b'm', b'e']);
    p.extend_from_slice(&[0x80, 210, 0, 0]);
    p.extend_from_slice(&[0x81, 202, 0, 2, 0, 0, 0, 2, 1, 0, 0, 0]);
    s.handle_rtcp(t0, w, &p).unwrap();
    let st = s.stats(t0);
    assert_eq!(st.reports_received, 1);
    assert_eq!(st.remote.unwrap().fraction_lost, 0.25);
    // Our own SSRC looped back is ignored.
    let mut own = RtcpSession::new(B, "b", 8000, 3, t0);
    own.handle_rtcp(t0, w, &sr_with_block(1)).unwrap();
    assert_eq!(own.stats(t0).reports_received, 0);
    // A BYE naming only ourselves is not the peer's.
    own.handle_rtcp(t0, w, &[0x81, 203, 0, 1, 0xB0, 0xB0, 0, 2])
        .unwrap();
    assert!(!own.stats(t0).bye_received);
}

#[test]
fn random_datagrams_never_panic() {
    let t0 = Instant::now();
    let w = wall(t0, t0, Duration::ZERO);
    let mut s = RtcpSession::new(A, "a", 8000, 3, t0);
    let mut rng = fastrand::Rng::with_seed(5);
    let seeds = [sr_with_block(1), sr_with_block(31), {
        let mut v = sr_with_block(2);
        v.extend_from_slice(&[0x81, 203, 0, 1, 0, 0, 0, 2]);
        v
    }];
    let mut buf = vec![0u8; 1024];
    for i in 0..20_000 {
        let len = if i % 2 == 0 {
            // Mutate a valid compound.
            let src = &seeds[i % seeds.len()];
            buf[..src.len()].copy_from_slice(src);
            for _ in 0..rng.usize(1..4) {
                let at = rng.usize(..src.len());
                buf[at] = rng.u8(..);
            }
            rng.usize(..=src.len())
        } else {
            let len = rng.usize(..256);
            rng.fill(&mut buf[..len]);
            if len > 0 {
                buf[0] = 0x80 | (buf[0] & 0x3F);
            }
            len
        };
        let _ = s.handle_rtcp(t0, w, &buf[..len]);
    }
    // Still produces reports.
    let (_, p) = next_report(&mut s, t0);
    decode(&p);
}

// ---- Cost.

/// Per-packet cost of `on_rtp_received`. Meaningful only in an optimised
/// build: `cargo test --release -p legato-daemon rtcp_receive_cost -- --ignored --nocapture`.
#[test]
#[ignore = "timing; run in release"]
fn rtcp_receive_cost() {
    let t0 = Instant::now();
    let mut s = RtcpSession::new(A, "a", 8000, 3, t0);
    let n = 20_000_000u32;
    let nows: Vec<Instant> = (0..1024u64)
        .map(|k| t0 + Duration::from_micros(20_000 * k + k % 7))
        .collect();
    let start = Instant::now();
    for k in 0..n {
        let now = nows[(k & 1023) as usize];
        s.on_rtp_received(
            std::hint::black_box(now),
            std::hint::black_box(B),
            k as u16,
            k.wrapping_mul(160),
            160,
        );
    }
    let per = start.elapsed().as_nanos() as f64 / f64::from(n);
    std::hint::black_box(s.stats(t0));
    println!("on_rtp_received: {per:.2} ns/packet");
    // The parts: the arrival conversion alone, and legato-dsp's A.1/A.8
    // bookkeeping alone.
    let start = Instant::now();
    let mut sum = 0u64;
    for k in 0..n {
        let now = nows[(k & 1023) as usize];
        sum = sum.wrapping_add(s.arrival_units(std::hint::black_box(now)));
    }
    std::hint::black_box(sum);
    let arrival = start.elapsed().as_nanos() as f64 / f64::from(n);
    let mut r = ReceiverStats::new(B);
    let start = Instant::now();
    for k in 0..n {
        r.handle_packet(
            std::hint::black_box(u64::from(k) * 160 + u64::from(k & 7)),
            k as u16,
            k.wrapping_mul(160),
        );
    }
    std::hint::black_box(&r);
    let dsp = start.elapsed().as_nanos() as f64 / f64::from(n);
    println!(
        "  of which arrival conversion {arrival:.2} ns, ReceiverStats::handle_packet {dsp:.2} ns"
    );
}
