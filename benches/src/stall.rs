//! The stall probe: how often a CPU of this machine stops running a busy
//! thread, and for how long.
//!
//! A thread spins reading the monotonic clock; any gap between two reads
//! above [`MIN_GAP`] is time the thread did not run: an interrupt, a kernel
//! thread, or (in a VM) the hypervisor running something else on the
//! virtual CPU. A relay on that CPU is stalled just as long, and every
//! packet arriving meanwhile waits, so the stalls bound what a tail latency
//! measured on this machine can show.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Gaps shorter than this are the clock read itself and cache misses.
pub const MIN_GAP: Duration = Duration::from_micros(50);

/// What one CPU's probe saw.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct StallStats {
    /// The CPU the probe ran on (as asked; the caller pins it).
    pub cpu: Option<usize>,
    /// Seconds spun.
    pub seconds: f64,
    /// Gaps longer than 100 µs, 500 µs, 1 ms and 5 ms.
    pub over_100us: u64,
    /// See `over_100us`.
    pub over_500us: u64,
    /// See `over_100us`.
    pub over_1ms: u64,
    /// See `over_100us`.
    pub over_5ms: u64,
    /// Longest gap, µs.
    pub max_us: f64,
    /// Time lost in gaps above [`MIN_GAP`], as a share of the run, %.
    pub lost_percent: f64,
}

/// Spins for `duration` on the calling thread and reports the gaps.
pub fn spin(duration: Duration, cpu: Option<usize>) -> StallStats {
    let start = Instant::now();
    let mut last = start;
    let mut stats = StallStats {
        cpu,
        ..StallStats::default()
    };
    let mut lost = Duration::ZERO;
    let mut max = Duration::ZERO;
    loop {
        let now = Instant::now();
        let gap = now - last;
        last = now;
        if gap > MIN_GAP {
            lost += gap;
            max = max.max(gap);
            let us = gap.as_micros();
            stats.over_100us += u64::from(us > 100);
            stats.over_500us += u64::from(us > 500);
            stats.over_1ms += u64::from(us > 1_000);
            stats.over_5ms += u64::from(us > 5_000);
        }
        if now - start >= duration {
            break;
        }
    }
    let total = last - start;
    stats.seconds = total.as_secs_f64();
    stats.max_us = max.as_secs_f64() * 1e6;
    stats.lost_percent = lost.as_secs_f64() / total.as_secs_f64().max(1e-9) * 100.0;
    stats
}

/// One line per CPU.
pub fn table(all: &[StallStats]) -> String {
    let mut out = format!(
        "{:>4} {:>7} {:>8} {:>8} {:>8} {:>8} {:>9} {:>7}\n",
        "cpu", "seconds", ">100us", ">500us", ">1ms", ">5ms", "max-us", "lost%"
    );
    for s in all {
        out.push_str(&format!(
            "{:>4} {:>7.1} {:>8} {:>8} {:>8} {:>8} {:>9.0} {:>7.3}\n",
            s.cpu.map_or_else(|| "-".to_owned(), |c| c.to_string()),
            s.seconds,
            s.over_100us,
            s.over_500us,
            s.over_1ms,
            s.over_5ms,
            s.max_us,
            s.lost_percent
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_spin_reports_its_length() {
        let s = spin(Duration::from_millis(50), Some(3));
        assert!(s.seconds >= 0.05 && s.seconds < 5.0, "{s:?}");
        assert!(s.over_5ms <= s.over_1ms && s.over_1ms <= s.over_500us);
        assert!(s.lost_percent >= 0.0 && s.lost_percent <= 100.0);
        assert!(table(&[s]).lines().count() == 2);
    }
}
