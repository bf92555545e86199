//! A seeded network simulation (loss, jitter, a jitter burst, reordering,
//! duplicates, sequence and timestamp wrap) through the jitter buffer and
//! the RTCP receiver statistics, checked against values computed here
//! independently.

use legato_dsp::jitter::{JitterBuffer, JitterConfig, Playout};
use legato_dsp::stats::{NtpTime, ReceiverStats};
use legato_dsp::time::ClockRate;

const FRAME: u64 = 160; // 20 ms at 8 kHz
const MS: u64 = 8; // samples per ms

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(1000) < percent * 10
    }
}

#[derive(Clone, Copy, Debug)]
struct Arrival {
    at: u64,
    k: u64,
    seq: u16,
    ts: u32,
}

const SEQ0: u16 = 64_000;
const TS0: u32 = 0xFFFE_0000;
const BURST: (u64, u64) = (10_000 * MS, 16_000 * MS);
const PACKETS: u64 = 2000; // 40 s

/// The network: 40 ms base delay, 0-15 ms jitter, 0-150 ms during the
/// burst, 3 % loss, 2 % reordered by an extra 30 ms, 2 % duplicated.
fn simulate(seed: u64) -> (Vec<Arrival>, u64) {
    let mut rng = Rng(seed);
    let mut out = Vec::new();
    let mut lost = 0;
    for k in 0..PACKETS {
        let sent = k * FRAME;
        if rng.chance(3) {
            lost += 1;
            continue;
        }
        let burst = sent >= BURST.0 && sent < BURST.1;
        let jitter = if burst {
            rng.below(150 * MS)
        } else {
            rng.below(15 * MS)
        };
        let mut at = sent + 40 * MS + jitter;
        if rng.chance(2) {
            at += 30 * MS;
        }
        let a = Arrival {
            at,
            k,
            seq: SEQ0.wrapping_add(k as u16),
            ts: TS0.wrapping_add((k * FRAME) as u32),
        };
        out.push(a);
        if rng.chance(2) {
            out.push(Arrival {
                at: at + rng.below(40 * MS),
                ..a
            });
        }
    }
    out.sort_by_key(|a| a.at);
    (out, lost)
}

#[test]
fn delay_stays_in_bounds_and_recovers_after_burst() {
    for seed in [1u64, 0xDEAD_BEEF, 42_4242] {
        let (arrivals, _) = simulate(seed);
        let mut jb = JitterBuffer::new(JitterConfig::new(ClockRate::HZ_8000, 20)).unwrap();
        let mut next = 0;
        let mut played = Vec::new();
        let mut target_at = Vec::new();
        let end = PACKETS * FRAME + 500 * MS;
        let mut now = 0;
        while now < end {
            while next < arrivals.len() && arrivals[next].at <= now {
                let a = arrivals[next];
                jb.push(a.at, 0x5EED, a.seq, a.ts, &a.k.to_be_bytes())
                    .unwrap();
                next += 1;
            }
            let target = jb.target_delay().as_millis();
            assert!(
                (20..=200).contains(&target),
                "seed {seed}: target {target} ms at {now}"
            );
            target_at.push((now, target, jb.current_delay(now).map(|d| d.as_millis())));
            if let Playout::Packet { payload, .. } = jb.pop(now) {
                let k = u64::from_be_bytes(payload.try_into().unwrap());
                // Residence time of the first copy that arrived.
                let first = arrivals.iter().find(|a| a.k == k).unwrap().at;
                let residence = (now - first) / MS;
                assert!(
                    residence <= 220,
                    "seed {seed}: packet {k} waited {residence} ms"
                );
                played.push(k);
            }
            now += FRAME;
        }
        // Played in order, each at most once.
        assert!(played.windows(2).all(|w| w[0] < w[1]), "seed {seed}: order");
        // Almost everything that arrived in the calm phases was played.
        let calm = |k: &u64| k * FRAME < BURST.0 - 1000 * MS || k * FRAME > BURST.1 + 1000 * MS;
        let delivered: std::collections::BTreeSet<u64> =
            arrivals.iter().map(|a| a.k).filter(calm).collect();
        let played_calm = played.iter().filter(|k| calm(k)).count();
        assert!(
            played_calm * 100 >= delivered.len() * 97,
            "seed {seed}: played {played_calm} of {}",
            delivered.len()
        );
        // During the burst the target grew...
        let in_burst: Vec<i64> = target_at
            .iter()
            .filter(|(t, ..)| *t > BURST.0 + 3000 * MS && *t < BURST.1)
            .map(|(_, d, _)| *d)
            .collect();
        let peak = *in_burst.iter().max().unwrap();
        assert!(peak >= 120, "seed {seed}: burst target only {peak} ms");
        // ...and shrank again within 6 s after it ended, back to what the
        // calm phase needs (0-15 ms jitter plus 30 ms reordering, plus half
        // a frame of margin: at most 55 ms).
        let after: Vec<_> = target_at
            .iter()
            .filter(|(t, ..)| *t > BURST.1 + 6000 * MS)
            .collect();
        assert!(!after.is_empty());
        for (t, target, current) in after {
            assert!(*target <= 55, "seed {seed}: target {target} ms at {t}");
            if let Some(c) = current {
                assert!(*c <= 75, "seed {seed}: delay {c} ms at {t}");
            }
        }
        let c = jb.counters();
        eprintln!(
            "seed {seed}: played {} concealed {} late {} dup {} shrink {} resync {} peak target {peak} ms",
            c.played, c.concealed, c.late, c.duplicates, c.shrink_drops, c.resyncs
        );
        assert!(c.duplicates > 0 && c.shrink_drops > 0 && c.concealed > 0);
        assert_eq!(c.resyncs, 0);
    }
}

#[test]
fn receiver_statistics_match_independent_computation() {
    let (arrivals, _) = simulate(7);
    let mut stats = ReceiverStats::new(0x5EED);
    // Independent float version of RFC 3550 §6.4.1 jitter, and loss
    // computed from the simulation's ground truth (packet index k).
    let mut jitter = 0.0f64;
    let mut last_transit: Option<i64> = None;
    let base_k = arrivals[0].k;
    let mut max_k = base_k;
    let mut received = 0u64;
    let (mut prior_expected, mut prior_received) = (0u64, 0u64);
    let mut reports = 0;
    for (i, a) in arrivals.iter().enumerate() {
        stats.handle_packet(a.at, a.seq, a.ts);
        let transit = a.at as i64 - (a.k * FRAME) as i64;
        if let Some(last) = last_transit {
            jitter += ((transit - last).abs() as f64 - jitter) / 16.0;
        }
        last_transit = Some(transit);
        received += 1;
        max_k = max_k.max(a.k);
        if i % 250 == 249 || i == arrivals.len() - 1 {
            let block = stats.report_block(NtpTime(0));
            let expected = max_k - base_k + 1;
            assert_eq!(block.highest_seq, SEQ0 as u32 + max_k as u32, "highest seq");
            assert_eq!(
                block.cumulative_lost as i64,
                expected as i64 - received as i64
            );
            let (ei, ri) = (expected - prior_expected, received - prior_received);
            let want_fraction = if ri >= ei {
                0
            } else {
                ((ei - ri) * 256 / ei) as u8
            };
            assert_eq!(block.fraction_lost, want_fraction);
            let diff = (block.jitter as f64 - jitter).abs();
            assert!(
                diff <= 1.0 + jitter * 0.01,
                "jitter {} vs {jitter:.2}",
                block.jitter
            );
            prior_expected = expected;
            prior_received = received;
            reports += 1;
        }
    }
    // The sequence numbers wrapped, so the extended highest carries a cycle.
    assert!(stats.extended_highest_seq() > 65_535);
    assert!(reports >= 7);
    eprintln!(
        "stats: expected {} received {} lost {} jitter {} (independent {jitter:.2})",
        stats.expected(),
        stats.received(),
        stats.cumulative_lost(),
        stats.jitter()
    );
}
