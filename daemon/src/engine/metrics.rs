//! What a shard reports for the Prometheus endpoint, and how.
//!
//! The packet path keeps its plain per-leg [`Counters`]: nothing is added
//! per packet, nothing is shared between shards. When the metrics endpoint
//! is scraped, the control plane sends every shard [`Command::Metrics`];
//! the shard sums its live legs' counters, adds the totals of legs it has
//! already freed (folded in when their slot is released, so every sum only
//! grows) and answers with a [`ShardMetrics`].
//!
//! [`Command::Metrics`]: super::Command::Metrics

use std::time::{Duration, Instant};

use super::PollStats;
use crate::session::{Counters, LegState};

/// One per-leg counter as a sample of a Prometheus counter family.
#[derive(Debug)]
pub(crate) struct LegCounterMetric {
    /// Family name after the `legato_` prefix, without `_total`.
    pub(crate) family: &'static str,
    /// Help text of the family (the first entry of a family gives it).
    pub(crate) help: &'static str,
    /// The one label telling this sample from the others of its family.
    pub(crate) label: Option<(&'static str, &'static str)>,
    /// Reads the counter from a leg's counters.
    pub(crate) read: fn(&Counters) -> u64,
}

const fn counter(
    family: &'static str,
    help: &'static str,
    label: Option<(&'static str, &'static str)>,
    read: fn(&Counters) -> u64,
) -> LegCounterMetric {
    LegCounterMetric {
        family,
        help,
        label,
        read,
    }
}

const PACKETS: &str = "RTP packets received (in) and relayed (out) by legs";
const BYTES: &str = "RTP bytes received (in) and relayed (out) by legs, headers included";
const DROPPED: &str = "Packets dropped by legs, by reason";

/// Every per-leg counter the endpoint exposes. A new field of
/// [`Counters`] becomes a metric with one line here (entries of one
/// family stay together).
pub(crate) const LEG_COUNTERS: &[LegCounterMetric] = &[
    counter("rtp_packets", PACKETS, Some(("direction", "in")), |c| {
        c.rtp_packets_received
    }),
    counter("rtp_packets", PACKETS, Some(("direction", "out")), |c| {
        c.rtp_packets_sent
    }),
    counter("rtp_bytes", BYTES, Some(("direction", "in")), |c| {
        c.rtp_bytes_received
    }),
    counter("rtp_bytes", BYTES, Some(("direction", "out")), |c| {
        c.rtp_bytes_sent
    }),
    counter(
        "rtcp_packets_received",
        "RTCP packets received by legs",
        None,
        |c| c.rtcp_packets_received,
    ),
    counter(
        "telephone_event_packets_received",
        "RFC 4733 telephone-event packets received by legs",
        None,
        |c| c.telephone_event_packets_received,
    ),
    counter(
        "packets_dropped",
        DROPPED,
        Some(("reason", "malformed")),
        |c| c.malformed_packets,
    ),
    counter(
        "packets_dropped",
        DROPPED,
        Some(("reason", "unexpected_source")),
        |c| c.unexpected_source_packets,
    ),
    counter(
        "packets_dropped",
        DROPPED,
        Some(("reason", "unsupported_payload")),
        |c| c.unsupported_payload_packets,
    ),
    counter(
        "packets_dropped",
        DROPPED,
        Some(("reason", "send_failure")),
        |c| c.send_failures,
    ),
    counter(
        "packets_dropped",
        DROPPED,
        Some(("reason", "held_back")),
        |c| c.held_back_packets,
    ),
    counter(
        "packets_dropped",
        DROPPED,
        Some(("reason", "probation")),
        |c| c.probation_packets,
    ),
    counter(
        "packets_dropped",
        DROPPED,
        Some(("reason", "oversize")),
        |c| c.oversize_packets,
    ),
    counter("packets_dropped", DROPPED, Some(("reason", "loop")), |c| {
        c.loop_packets
    }),
    counter(
        "packets_dropped",
        DROPPED,
        Some(("reason", "unsendable_payload")),
        |c| c.unsendable_payload_packets,
    ),
    counter(
        "source_switches",
        "Times a leg's media source address changed (the SDP address taking over, or another source passing probation)",
        None,
        |c| c.source_switches,
    ),
];

/// Leg states in the order of [`ShardMetrics::legs_by_state`].
pub(crate) const LEG_STATES: [LegState; 5] = [
    LegState::Progressing,
    LegState::Alerting,
    LegState::EarlyMedia,
    LegState::Connected,
    LegState::Terminated,
];

/// I/O events a shard's backend counted, summed over the shard's life.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct IoTotals {
    /// Datagrams longer than a receive buffer (2 KiB), cut and dropped.
    pub(crate) truncated: u64,
    /// Receive calls or completions that failed.
    pub(crate) recv_errors: u64,
    /// Send calls or completions that failed.
    pub(crate) send_errors: u64,
    /// io_uring: times the provided-buffer ring ran dry.
    pub(crate) buffer_exhausted: u64,
}

impl IoTotals {
    /// Adds one poll's counts (once per loop turn).
    pub(crate) fn add(&mut self, stats: &PollStats) {
        self.truncated += stats.truncated;
        self.recv_errors += stats.recv_errors;
        self.send_errors += stats.send_errors;
        self.buffer_exhausted += stats.buffer_exhausted;
    }
}

/// One shard's answer to a metrics scrape.
#[derive(Clone, Debug)]
pub(crate) struct ShardMetrics {
    /// Sessions the shard owns.
    pub(crate) sessions: u64,
    /// Legs held (terminated ones stay until their session is deleted),
    /// indexed like [`LEG_STATES`].
    pub(crate) legs_by_state: [u64; LEG_STATES.len()],
    /// Sums of [`LEG_COUNTERS`] over every leg the shard ever had.
    pub(crate) leg_counters: Vec<u64>,
    /// The backend's I/O counts.
    pub(crate) io: IoTotals,
    /// CPU time the shard thread used since it started.
    pub(crate) cpu_time: Option<Duration>,
    /// Fraction of wall time the shard thread was on a CPU (not blocked
    /// waiting for packets) since the previous scrape.
    pub(crate) utilisation: Option<f64>,
}

/// The shard-side bookkeeping behind [`ShardMetrics`].
#[derive(Debug)]
pub(crate) struct ShardTotals {
    /// [`LEG_COUNTERS`] summed over legs whose slot was freed.
    freed: Vec<u64>,
    pub(crate) io: IoTotals,
    /// Wall time and thread CPU time at the previous scrape.
    last: Option<(Instant, Duration)>,
}

impl ShardTotals {
    /// New totals; on the shard thread, so the first scrape's utilisation
    /// covers the time since the shard started.
    pub(crate) fn new() -> Self {
        let cpu = super::sys::thread_cpu_time().ok();
        Self {
            freed: vec![0; LEG_COUNTERS.len()],
            io: IoTotals::default(),
            last: cpu.map(|cpu| (Instant::now(), cpu)),
        }
    }

    /// Folds the counters of a leg whose slot is being freed.
    pub(crate) fn fold(&mut self, counters: &Counters) {
        for (total, metric) in self.freed.iter_mut().zip(LEG_COUNTERS) {
            *total += (metric.read)(counters);
        }
    }

    /// A snapshot over the shard's live legs (`legs` yields each leg's
    /// state and counters). Reads the thread's CPU clock: call it on the
    /// shard thread.
    pub(crate) fn snapshot<'a>(
        &mut self,
        sessions: usize,
        legs: impl Iterator<Item = (LegState, &'a Counters)>,
        now: Instant,
    ) -> ShardMetrics {
        let mut leg_counters = self.freed.clone();
        let mut legs_by_state = [0; LEG_STATES.len()];
        for (state, counters) in legs {
            if let Some(i) = LEG_STATES.iter().position(|s| *s == state) {
                legs_by_state[i] += 1;
            }
            for (total, metric) in leg_counters.iter_mut().zip(LEG_COUNTERS) {
                *total += (metric.read)(counters);
            }
        }
        let cpu_time = super::sys::thread_cpu_time().ok();
        let utilisation = match (cpu_time, self.last) {
            (Some(cpu), Some((at, last_cpu))) => {
                let wall = now.saturating_duration_since(at).as_secs_f64();
                (wall > 0.0)
                    .then(|| (cpu.saturating_sub(last_cpu).as_secs_f64() / wall).clamp(0.0, 1.0))
            }
            _ => None,
        };
        if let Some(cpu) = cpu_time {
            self.last = Some((now, cpu));
        }
        ShardMetrics {
            sessions: sessions as u64,
            legs_by_state,
            leg_counters,
            io: self.io,
            cpu_time,
            utilisation,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freed_legs_keep_the_sums_growing() {
        let mut totals = ShardTotals::new();
        let live = Counters {
            rtp_packets_received: 5,
            malformed_packets: 1,
            ..Counters::default()
        };
        let gone = Counters {
            rtp_packets_received: 7,
            send_failures: 2,
            ..Counters::default()
        };
        let before = totals.snapshot(
            1,
            [(LegState::Connected, &live), (LegState::Terminated, &gone)].into_iter(),
            Instant::now(),
        );
        totals.fold(&gone);
        let after = totals.snapshot(
            1,
            [(LegState::Connected, &live)].into_iter(),
            Instant::now(),
        );
        assert_eq!(before.leg_counters, after.leg_counters);
        let value = |m: &ShardMetrics, family: &str, label: &str| {
            LEG_COUNTERS
                .iter()
                .position(|c| c.family == family && c.label.is_none_or(|l| l.1 == label))
                .map(|i| m.leg_counters[i])
        };
        assert_eq!(value(&after, "rtp_packets", "in"), Some(12));
        assert_eq!(value(&after, "packets_dropped", "malformed"), Some(1));
        assert_eq!(value(&after, "packets_dropped", "send_failure"), Some(2));
        assert_eq!(before.legs_by_state, [0, 0, 0, 1, 1]);
        assert_eq!(after.legs_by_state, [0, 0, 0, 1, 0]);
        assert!(after.cpu_time.is_some());
        for m in [&before, &after] {
            let u = m
                .utilisation
                .expect("a utilisation since start or the last scrape");
            assert!((0.0..=1.0).contains(&u), "{u}");
        }
    }

    #[test]
    fn families_stay_together_and_samples_are_distinct() {
        for (i, m) in LEG_COUNTERS.iter().enumerate() {
            if let Some(first) = LEG_COUNTERS.iter().position(|o| o.family == m.family) {
                assert!(
                    LEG_COUNTERS[first..=i].iter().all(|o| o.family == m.family),
                    "entries of family {} are not adjacent",
                    m.family
                );
            }
            let same = LEG_COUNTERS
                .iter()
                .filter(|o| o.family == m.family && o.label == m.label)
                .count();
            assert_eq!(same, 1, "duplicate sample in family {}", m.family);
        }
    }
}
