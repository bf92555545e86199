//! The load generator's results: one [`Point`] per (target, backend,
//! load), the human table and the JSON document.

use serde::Serialize;

use crate::procfs::Machine;
use crate::setup::SetupReport;

/// Latency quantiles of one point, µs.
#[derive(Clone, Debug, Default, Serialize)]
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
#[derive(Clone, Debug, Default, Serialize)]
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

/// One measured load point.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Point {
    /// "legatod" or "floor".
    pub target: String,
    /// legatod's backend as its ready line reported it ("io_uring",
    /// "epoll"), "epoll" for the floor.
    pub io: String,
    /// Bridged calls sending in the window.
    pub calls: usize,
    /// Relayed legs set up (2 per call set up; more than `2 × calls` in a
    /// phased run, where the calls beyond `calls` stay idle).
    pub legs: usize,
    /// Phase index (0-based) in a phased run (`--phases`), else none.
    pub phase: Option<usize>,
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
    /// One-way latency (generator send → relay's send reaching loopback).
    pub latency: Latency,
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
    /// legatod µs/packet ÷ floor µs/packet at the same load.
    pub cpu_ratio_to_floor: Option<f64>,
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
}

impl Report {
    /// Fills `cpu_ratio_to_floor` of each legatod point from the floor point
    /// with the same number of calls (and the same phase, in a phased run).
    pub fn fill_ratios(&mut self) {
        let floors: Vec<(usize, Option<usize>, f64)> = self
            .points
            .iter()
            .filter(|p| p.target == "floor")
            .map(|p| (p.calls, p.phase, p.target_cpu.us_per_packet))
            .collect();
        for p in self.points.iter_mut().filter(|p| p.target != "floor") {
            p.cpu_ratio_to_floor = floors
                .iter()
                .find(|(calls, phase, _)| *calls == p.calls && *phase == p.phase)
                .filter(|(_, _, us)| *us > 0.0)
                .map(|(_, _, us)| p.target_cpu.us_per_packet / us);
        }
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
            out.push_str(&format!(
                "{:<8} {:<8} {:>5} {:>8} {:>8} {:>8} {:>7} {:>7} {:>7} {:>7} {:>6} {:>7} {:>6} {:>8} {:>6} {:>7} {:>6}\n",
                "target", "io", "calls", "off/s", "recv/s", "loss%", "p50us", "p99us", "p999us",
                "maxus", "cpu%", "us/pkt", "ratio", "KiB/leg", "gen%", "gen-us", "other%"
            ));
            for p in &self.points {
                out.push_str(&format!(
                    "{:<8} {:<8} {:>5} {:>8.0} {:>8.0} {:>8.4} {:>7.1} {:>7.1} {:>7.1} {:>7.0} {:>6.1} {:>7.3} {:>6} {:>8.1} {:>6.1} {:>7.3} {:>6}\n",
                    p.target,
                    p.io,
                    p.calls,
                    p.offered_pps,
                    p.received_pps,
                    p.loss_percent,
                    p.latency.p50_us,
                    p.latency.p99_us,
                    p.latency.p999_us,
                    p.latency.max_us,
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
        for s in &self.setup {
            out.push_str(&format!(
                "call setups ({}): {} ok, {} failed, concurrency {}, {:.2} s: {:.0} setups/s\n",
                s.io, s.setups, s.errors, s.concurrency, s.elapsed_s, s.setups_per_s
            ));
            if let Some(e) = &s.first_error {
                out.push_str(&format!("first error: {e}\n"));
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

    /// The table of a phased run: one row per (target, backend, phase),
    /// with the starvation figures instead of memory.
    fn phase_table(&self) -> String {
        let mut out = format!(
            "{:<8} {:<8} {:>5} {:>5} {:>8} {:>8} {:>8} {:>7} {:>8} {:>8} {:>6} {:>7} {:>6} {:>7} {:>7} {:>6} {:>6}\n",
            "target",
            "io",
            "phase",
            "calls",
            "off/s",
            "recv/s",
            "loss%",
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
                "{:<8} {:<8} {:>5} {:>5} {:>8.0} {:>8.0} {:>8.4} {:>7.1} {:>8.1} {:>8.0} {:>6.1} {:>7.3} {:>6} {:>7} {:>7.2} {:>6.1} {:>6}\n",
                p.target,
                p.io,
                p.phase.map_or_else(|| "-".to_owned(), |k| k.to_string()),
                p.calls,
                p.offered_pps,
                p.received_pps,
                p.loss_percent,
                p.latency.p50_us,
                p.latency.p99_us,
                p.latency.max_us,
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
