//! The load generator's results: one [`Point`] per (target, backend,
//! load), the human table and the JSON document.

use serde::{Deserialize, Serialize};

use crate::procfs::Machine;
use crate::setup::SetupReport;

/// Latency quantiles of one point, µs.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Latency {
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Slowest.
    pub max_us: f64,
    /// Mean.
    pub mean_us: f64,
}

/// CPU of one process over the window.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Cpu {
    /// `utime + stime` difference, s (clock-tick resolution).
    pub stat_s: f64,
    /// Sum of the threads' `schedstat` run time difference, s (ns resolution).
    pub sched_s: Option<f64>,
    /// CPU share of the window, % of one core (schedstat when available).
    pub percent: f64,
    /// CPU µs per packet (per forwarded packet for a relay, per packet sent
    /// plus received for the generator), schedstat when available.
    pub us_per_packet: f64,
    /// The same from `utime + stime` only.
    pub us_per_packet_stat: f64,
}

/// One measured load point (read back from a JSON report by
/// `legato-loadgen plot`; fields a report lacks take their defaults).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Point {
    /// "legatod" or "floor".
    pub target: String,
    /// legatod's backend as its ready line reported it ("io_uring",
    /// "epoll"), "epoll" for the floor.
    pub io: String,
    /// What a call is (`relay`, `pcmu-pcma`, `conference:3`, ...; see
    /// `kind.rs`); `relay` for the floor.
    pub call_kind: String,
    /// Bridged calls sending in the window (conferences, for a conference
    /// kind).
    pub calls: usize,
    /// Floor calls relaying as many packets as this point's sending calls:
    /// `ceil(legs sending / 2)`; the floor point with this load (same phase,
    /// same round) gives the ratio.
    pub floor_calls: usize,
    /// Relayed legs set up (2 per call set up; more than `2 × calls` in a
    /// phased run, where the calls beyond `calls` stay idle).
    pub legs: usize,
    /// Phase index (0-based) in a phased run (`--phases`), else none.
    pub phase: Option<usize>,
    /// Round index (0-based) in an interleaved run (`--rounds` > 1), else
    /// none.
    pub round: Option<usize>,
    /// Sending streams (2 per sending call) that received nothing, or whose
    /// loss exceeded the starvation factor × the point's average loss
    /// (capped at halfway from the average to 100 %, at least 5 %).
    pub starved_streams: u64,
    /// Highest loss of any sending stream, %.
    pub stream_loss_max_percent: f64,
    /// Measuring window, s.
    pub window_s: f64,
    /// Probes sent in the window per second (both directions).
    pub offered_pps: f64,
    /// Window probes received per second.
    pub received_pps: f64,
    /// Probes sent in the window.
    pub offered: u64,
    /// Distinct window probes received (= forwarded by the relay).
    pub received: u64,
    /// Window probes never received.
    pub lost: u64,
    /// `lost / offered`, %.
    pub loss_percent: f64,
    /// Extra copies received.
    pub duplicates: u64,
    /// Probes received after a later one of the same stream.
    pub reordered: u64,
    /// Probes the generator's kernel refused to send.
    pub send_errors: u64,
    /// Kernel UDP receive-buffer drops during the window (system-wide).
    pub udp_rcvbuf_errors: u64,
    /// Drops at the generator's own sockets from the start of the run
    /// (warm-up) to the end of its drain: relayed packets the generator
    /// was too busy to take in (counted as loss, but not the relay's).
    /// Near zero unless the generator's core is saturated.
    pub generator_socket_drops: u64,
    /// One-way latency (generator send → relay's send reaching loopback);
    /// none when legatod transcodes or mixes (the probe payload does not
    /// survive; see `legato-loadgen latency` for those).
    pub latency: Option<Latency>,
    /// The relay process.
    pub target_cpu: Cpu,
    /// RSS of the relay before calls were set up, KiB.
    pub rss_idle_kib: u64,
    /// RSS of the relay at the end of the window, KiB.
    pub rss_loaded_kib: u64,
    /// `(loaded − idle) / legs` (legs set up), KiB.
    pub rss_per_leg_kib: f64,
    /// The generator process.
    pub generator_cpu: Cpu,
    /// CPU used by everything else on the machine during the window, % of
    /// one core (all CPUs' busy time minus relay and generator): other
    /// work competing with the measurement when well above a few %.
    pub other_cpu_percent: Option<f64>,
    /// How late the generator sent against its schedule: p99, µs.
    pub generator_send_lag_p99_us: f64,
    /// How late the generator sent against its schedule: max, µs.
    pub generator_send_lag_max_us: f64,
    /// Call setup time through gRPC for this point, s (legatod only).
    pub setup_s: Option<f64>,
    /// legatod µs/packet ÷ floor µs/packet at the same load (same phase,
    /// same round).
    pub cpu_ratio_to_floor: Option<f64>,
}

/// Median, lowest and highest of a figure across rounds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Spread {
    /// Median (mean of the middle two for an even count).
    pub median: f64,
    /// Lowest.
    pub min: f64,
    /// Highest.
    pub max: f64,
}

impl Spread {
    /// The spread of `values`; none when empty.
    pub fn of(values: &[f64]) -> Option<Self> {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let (&min, &max) = (sorted.first()?, sorted.last()?);
        let mid = sorted.len() / 2;
        let median = if sorted.len().is_multiple_of(2) {
            f64::midpoint(sorted[mid - 1], sorted[mid])
        } else {
            sorted[mid]
        };
        Some(Self { median, min, max })
    }
}

/// One target at one load across the rounds of an interleaved run
/// (`--rounds`).
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// "legatod" or "floor".
    pub target: String,
    /// Backend, as in [`Point::io`].
    pub io: String,
    /// As in [`Point::call_kind`].
    pub call_kind: String,
    /// Bridged calls sending.
    pub calls: usize,
    /// Rounds measured.
    pub rounds: usize,
    /// Relay CPU µs per forwarded packet across rounds.
    pub us_per_packet: Spread,
    /// Per-round `cpu_ratio_to_floor` across rounds (legatod with a floor
    /// measured in the same rounds).
    pub cpu_ratio_to_floor: Option<Spread>,
    /// Rounds whose ratio was ≤ 1.0 (when ratios are known).
    pub rounds_ratio_at_most_1: Option<usize>,
    /// Highest loss of any round, %.
    pub loss_percent_max: f64,
    /// p99 one-way latency across rounds, µs (none without latency).
    pub p99_us: Option<Spread>,
    /// Rounds with loss < 0.01 % and p99 < 1 ms (the latency target).
    pub rounds_low_latency: usize,
    /// Highest `other_cpu_percent` of any round (when known).
    pub other_cpu_percent_max: Option<f64>,
}

/// The whole run.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Where it ran.
    pub machine: Machine,
    /// The command line.
    pub command: String,
    /// CPU legatod/floor were pinned to.
    pub pin_daemon: Option<usize>,
    /// CPU the generator was pinned to.
    pub pin_generator: Option<usize>,
    /// Load points.
    pub points: Vec<Point>,
    /// The control-plane benchmark, once per backend, when run.
    pub setup: Vec<SetupReport>,
    /// Per target and load across rounds, in an interleaved run
    /// (`--rounds` > 1); empty otherwise.
    pub summaries: Vec<Summary>,
}

impl Point {
    /// Generator socket drops as a share of the offered probes, %.
    pub fn generator_drop_percent(&self) -> f64 {
        if self.offered == 0 {
            0.0
        } else {
            self.generator_socket_drops as f64 * 100.0 / self.offered as f64
        }
    }
}

impl Report {
    /// Fills `cpu_ratio_to_floor` of each legatod point from the floor point
    /// with the same number of calls (and the same phase, in a phased run;
    /// the same round, in an interleaved one).
    pub fn fill_ratios(&mut self) {
        type Key = (usize, Option<usize>, Option<usize>);
        let key = |p: &Point| -> Key { (p.floor_calls, p.phase, p.round) };
        let floors: Vec<(Key, f64)> = self
            .points
            .iter()
            .filter(|p| p.target == "floor")
            .map(|p| (key(p), p.target_cpu.us_per_packet))
            .collect();
        for p in self.points.iter_mut().filter(|p| p.target != "floor") {
            p.cpu_ratio_to_floor = floors
                .iter()
                .find(|(k, _)| *k == key(p))
                .filter(|(_, us)| *us > 0.0)
                .map(|(_, us)| p.target_cpu.us_per_packet / us);
        }
    }

    /// Fills `summaries` from the points that have a round: one per
    /// (target, backend, load), in the order they were first measured.
    /// Run after [`Self::fill_ratios`].
    pub fn summarize(&mut self) {
        let mut groups: Vec<Vec<&Point>> = Vec::new();
        for p in self.points.iter().filter(|p| p.round.is_some()) {
            let same = |q: &&Point| {
                q.target == p.target
                    && q.io == p.io
                    && q.call_kind == p.call_kind
                    && q.calls == p.calls
            };
            match groups.iter_mut().find(|g| g.first().is_some_and(same)) {
                Some(group) => group.push(p),
                None => groups.push(vec![p]),
            }
        }
        self.summaries = groups
            .iter()
            .filter_map(|group| {
                let first = group.first()?;
                let us: Vec<f64> = group.iter().map(|p| p.target_cpu.us_per_packet).collect();
                let ratios: Vec<f64> = group.iter().filter_map(|p| p.cpu_ratio_to_floor).collect();
                let others: Vec<f64> = group.iter().filter_map(|p| p.other_cpu_percent).collect();
                let p99: Vec<f64> = group
                    .iter()
                    .filter_map(|p| p.latency.as_ref().map(|l| l.p99_us))
                    .collect();
                Some(Summary {
                    target: first.target.clone(),
                    io: first.io.clone(),
                    call_kind: first.call_kind.clone(),
                    calls: first.calls,
                    rounds: group.len(),
                    us_per_packet: Spread::of(&us)?,
                    cpu_ratio_to_floor: Spread::of(&ratios),
                    rounds_ratio_at_most_1: (!ratios.is_empty())
                        .then(|| ratios.iter().filter(|&&r| r <= 1.0).count()),
                    loss_percent_max: group.iter().map(|p| p.loss_percent).fold(0.0, f64::max),
                    p99_us: Spread::of(&p99),
                    rounds_low_latency: group
                        .iter()
                        .filter(|p| {
                            p.loss_percent < 0.01
                                && p.latency.as_ref().is_some_and(|l| l.p99_us < 1000.0)
                        })
                        .count(),
                    other_cpu_percent_max: Spread::of(&others).map(|s| s.max),
                })
            })
            .collect();
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        out.push_str(&format!(
            "machine: {} CPUs, {}, kernel {}; pinned: relay={} generator={}\n",
            m.nproc,
            m.cpu_model,
            m.kernel,
            self.pin_daemon
                .map_or_else(|| "-".into(), |c| c.to_string()),
            self.pin_generator
                .map_or_else(|| "-".into(), |c| c.to_string()),
        ));
        let phased = self.points.iter().any(|p| p.phase.is_some());
        if phased {
            out.push_str(&self.phase_table());
        } else if !self.points.is_empty() {
            // The round column only in an interleaved run.
            let rounds = self.points.iter().any(|p| p.round.is_some());
            let round = |r: String| {
                if rounds {
                    format!(" {r:>5}")
                } else {
                    String::new()
                }
            };
            // The kind column only when some point is not a plain relay.
            let kinds = self.points.iter().any(|p| p.call_kind != "relay");
            let kind = |k: &str| {
                if kinds {
                    format!(" {k:<13}")
                } else {
                    String::new()
                }
            };
            out.push_str(&format!(
                "{:<8} {:<8}{}{} {:>5} {:>8} {:>8} {:>8} {:>7} {:>7} {:>7} {:>7} {:>6} {:>7} {:>6} {:>8} {:>6} {:>7} {:>6}\n",
                "target", "io", kind("kind"), round("round".to_owned()), "calls", "off/s", "recv/s", "loss%", "p50us",
                "p99us", "p999us", "maxus", "cpu%", "us/pkt", "ratio", "KiB/leg", "gen%", "gen-us",
                "other%"
            ));
            for p in &self.points {
                let l = p.latency.as_ref();
                out.push_str(&format!(
                    "{:<8} {:<8}{}{} {:>5} {:>8.0} {:>8.0} {:>8.4} {:>7} {:>7} {:>7} {:>7} {:>6.1} {:>7.3} {:>6} {:>8.1} {:>6.1} {:>7.3} {:>6}\n",
                    p.target,
                    p.io,
                    kind(&p.call_kind),
                    round(p.round.map_or_else(|| "-".to_owned(), |r| r.to_string())),
                    p.calls,
                    p.offered_pps,
                    p.received_pps,
                    p.loss_percent,
                    opt(l.map(|l| l.p50_us), 1),
                    opt(l.map(|l| l.p99_us), 1),
                    opt(l.map(|l| l.p999_us), 1),
                    opt(l.map(|l| l.max_us), 0),
                    p.target_cpu.percent,
                    p.target_cpu.us_per_packet,
                    p.cpu_ratio_to_floor
                        .map_or_else(|| "-".to_owned(), |r| format!("{r:.2}")),
                    p.rss_per_leg_kib,
                    p.generator_cpu.percent,
                    p.generator_cpu.us_per_packet,
                    p.other_cpu_percent
                        .map_or_else(|| "-".to_owned(), |o| format!("{o:.0}")),
                ));
            }
        }
        if !self.summaries.is_empty() {
            out.push_str(&self.summary_table());
        }
        for s in &self.setup {
            out.push_str(&format!(
                "call setups ({}): {} ok, {} failed, concurrency {}, {:.2} s: {:.0} setups/s\n",
                s.io, s.setups, s.errors, s.concurrency, s.elapsed_s, s.setups_per_s
            ));
            if let Some(e) = &s.first_error {
                out.push_str(&format!("first error: {e}\n"));
            }
            if let (Some(cpu), Some(rss)) = (s.daemon_cpu_s, s.daemon_rss_kib) {
                out.push_str(&format!(
                    "legatod: {:.1} us CPU per setup, RSS {} KiB, after {} closed watchers\n",
                    cpu * 1e6 / s.setups.max(1) as f64,
                    rss,
                    s.closed_watchers
                ));
            }
            out.push_str(&format!(
                "{:<14} {:>8} {:>9} {:>9} {:>9}\n",
                "rpc", "count", "p50 us", "p99 us", "max us"
            ));
            for r in &s.rpc {
                out.push_str(&format!(
                    "{:<14} {:>8} {:>9.0} {:>9.0} {:>9.0}\n",
                    r.name, r.count, r.p50_us, r.p99_us, r.max_us
                ));
            }
        }
        out
    }

    /// The table of an interleaved run's summaries: µs/pkt and the
    /// same-round ratio to the floor across rounds (median, min, max), and
    /// how many rounds had legatod at or below the floor.
    fn summary_table(&self) -> String {
        let kinds = self.summaries.iter().any(|s| s.call_kind != "relay");
        let kind = |k: &str| {
            if kinds {
                format!(" {k:<13}")
            } else {
                String::new()
            }
        };
        let mut out = format!(
            "\nacross rounds:\n{:<8} {:<8}{} {:>5} {:>6} {:>7} {:>7} {:>7} {:>6} {:>6} {:>6} {:>6} {:>7} {:>8} {:>8} {:>6} {:>6}\n",
            "target",
            "io",
            kind("kind"),
            "calls",
            "rounds",
            "us-med",
            "us-min",
            "us-max",
            "r-med",
            "r-min",
            "r-max",
            "r<=1",
            "maxloss",
            "p99-med",
            "p99-max",
            "<1ms",
            "other"
        );
        let dash = || "-".to_owned();
        for s in &self.summaries {
            let ratio = |f: fn(&Spread) -> f64| {
                s.cpu_ratio_to_floor
                    .as_ref()
                    .map_or_else(dash, |r| format!("{:.2}", f(r)))
            };
            out.push_str(&format!(
                "{:<8} {:<8}{} {:>5} {:>6} {:>7.3} {:>7.3} {:>7.3} {:>6} {:>6} {:>6} {:>6} {:>7.4} {:>8} {:>8} {:>6} {:>6}\n",
                s.target,
                s.io,
                kind(&s.call_kind),
                s.calls,
                s.rounds,
                s.us_per_packet.median,
                s.us_per_packet.min,
                s.us_per_packet.max,
                ratio(|r| r.median),
                ratio(|r| r.min),
                ratio(|r| r.max),
                s.rounds_ratio_at_most_1
                    .map_or_else(dash, |n| format!("{n}/{}", s.rounds)),
                s.loss_percent_max,
                opt(s.p99_us.map(|p| p.median), 1),
                opt(s.p99_us.map(|p| p.max), 1),
                format!("{}/{}", s.rounds_low_latency, s.rounds),
                s.other_cpu_percent_max
                    .map_or_else(dash, |o| format!("{o:.0}")),
            ));
        }
        out
    }

    /// The table of a phased run: one row per (target, backend, phase),
    /// with the starvation figures instead of memory.
    fn phase_table(&self) -> String {
        let mut out = format!(
            "{:<8} {:<8} {:>5} {:>5} {:>8} {:>8} {:>8} {:>7} {:>7} {:>7} {:>8} {:>8} {:>6} {:>7} {:>6} {:>7} {:>7} {:>6} {:>6}\n",
            "target",
            "io",
            "phase",
            "calls",
            "off/s",
            "recv/s",
            "loss%",
            "gdrop%",
            "rloss%",
            "p50us",
            "p99us",
            "maxus",
            "cpu%",
            "us/pkt",
            "ratio",
            "starved",
            "worst%",
            "gen%",
            "other%"
        );
        for p in &self.points {
            out.push_str(&format!(
                "{:<8} {:<8} {:>5} {:>5} {:>8.0} {:>8.0} {:>8.4} {:>7.2} {:>7.2} {:>7} {:>8} {:>8} {:>6.1} {:>7.3} {:>6} {:>7} {:>7.2} {:>6.1} {:>6}\n",
                p.target,
                p.io,
                p.phase.map_or_else(|| "-".to_owned(), |k| k.to_string()),
                p.calls,
                p.offered_pps,
                p.received_pps,
                p.loss_percent,
                p.generator_drop_percent(),
                (p.loss_percent - p.generator_drop_percent()).max(0.0),
                opt(p.latency.as_ref().map(|l| l.p50_us), 1),
                opt(p.latency.as_ref().map(|l| l.p99_us), 1),
                opt(p.latency.as_ref().map(|l| l.max_us), 0),
                p.target_cpu.percent,
                p.target_cpu.us_per_packet,
                p.cpu_ratio_to_floor
                    .map_or_else(|| "-".to_owned(), |r| format!("{r:.2}")),
                p.starved_streams,
                p.stream_loss_max_percent,
                p.generator_cpu.percent,
                p.other_cpu_percent
                    .map_or_else(|| "-".to_owned(), |o| format!("{o:.0}")),
            ));
        }
        out
    }
}

/// `value` with `precision` decimals, or "-" when unknown.
fn opt(value: Option<f64>, precision: usize) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.precision$}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(target: &str, io: &str, round: usize, us: f64) -> Point {
        Point {
            target: target.to_owned(),
            io: io.to_owned(),
            calls: 100,
            round: Some(round),
            target_cpu: Cpu {
                us_per_packet: us,
                ..Cpu::default()
            },
            loss_percent: 0.1 * round as f64,
            ..Point::default()
        }
    }

    fn report(points: Vec<Point>) -> Report {
        Report {
            machine: Machine::default(),
            command: String::new(),
            pin_daemon: None,
            pin_generator: None,
            points,
            setup: Vec::new(),
            summaries: Vec::new(),
        }
    }

    #[test]
    fn spread_takes_the_middle() {
        assert_eq!(Spread::of(&[]), None);
        let odd = Spread::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((odd.median, odd.min, odd.max), (2.0, 1.0, 3.0));
        let even = Spread::of(&[4.0, 1.0, 2.0, 3.0]).unwrap();
        assert_eq!((even.median, even.min, even.max), (2.5, 1.0, 4.0));
    }

    /// Each legatod round is compared with the floor of its own round, and
    /// the summary counts the rounds at or below the floor.
    #[test]
    fn rounds_get_same_round_ratios_and_a_summary() {
        let mut r = report(vec![
            point("floor", "epoll", 0, 4.0),
            point("legatod", "epoll", 0, 5.0),
            point("floor", "epoll", 1, 5.0),
            point("legatod", "epoll", 1, 5.0),
            point("floor", "epoll", 2, 5.0),
            point("legatod", "epoll", 2, 4.0),
        ]);
        r.fill_ratios();
        r.summarize();
        let ratios: Vec<Option<f64>> = r.points.iter().map(|p| p.cpu_ratio_to_floor).collect();
        assert_eq!(ratios, [None, Some(1.25), None, Some(1.0), None, Some(0.8)]);
        assert_eq!(r.summaries.len(), 2);
        let (floor, legatod) = (&r.summaries[0], &r.summaries[1]);
        assert_eq!((floor.target.as_str(), floor.rounds), ("floor", 3));
        assert_eq!(floor.us_per_packet.median, 5.0);
        assert_eq!(floor.cpu_ratio_to_floor, None);
        assert_eq!(floor.rounds_ratio_at_most_1, None);
        let ratio = legatod.cpu_ratio_to_floor.unwrap();
        assert_eq!((ratio.median, ratio.min, ratio.max), (1.0, 0.8, 1.25));
        assert_eq!(legatod.rounds_ratio_at_most_1, Some(2));
        assert!((legatod.loss_percent_max - 0.2).abs() < 1e-9);
        let table = r.table();
        assert!(table.contains("round"), "{table}");
        assert!(table.contains("across rounds"), "{table}");
    }

    /// Without rounds: no round column, no summaries.
    #[test]
    fn sweep_without_rounds_has_no_round_column() {
        let mut p = point("floor", "epoll", 0, 4.0);
        p.round = None;
        let mut r = report(vec![p]);
        r.fill_ratios();
        r.summarize();
        assert!(r.summaries.is_empty());
        let table = r.table();
        assert!(!table.contains("round"), "{table}");
    }
}
