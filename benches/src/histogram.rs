//! A log-linear latency histogram: exact below 128 ns, then 64 buckets per
//! power of two (under 1.6 % relative error), fixed size, no allocation per
//! sample.

/// Sub-buckets per power of two.
const SUB: u64 = 64;
/// Values below this are their own bucket.
const LINEAR: u64 = 2 * SUB;
/// Buckets for the whole u64 range.
const BUCKETS: usize = (LINEAR + (64 - 7) * SUB) as usize;

/// Counts of nanosecond values.
#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Box<[u64]>,
    total: u64,
    max: u64,
    sum: u128,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            total: 0,
            max: 0,
            sum: 0,
        }
    }

    fn bucket(value: u64) -> usize {
        if value < LINEAR {
            return value as usize;
        }
        let exp = 63 - u64::from(value.leading_zeros()); // >= 7
        let sub = (value >> (exp - 6)) & (SUB - 1);
        (LINEAR + (exp - 7) * SUB + sub) as usize
    }

    /// Largest value that falls in `bucket`.
    fn upper(bucket: usize) -> u64 {
        let b = bucket as u64;
        if b < LINEAR {
            return b;
        }
        let exp = (b - LINEAR) / SUB + 7;
        let sub = (b - LINEAR) % SUB;
        let low = (SUB + sub) << (exp - 6);
        low.saturating_add((1u64 << (exp - 6)) - 1)
    }

    /// Adds one value.
    pub fn record(&mut self, value: u64) {
        self.counts[Self::bucket(value)] += 1;
        self.total += 1;
        self.max = self.max.max(value);
        self.sum += u128::from(value);
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Self) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Largest value recorded (0 when empty).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Mean (0 when empty).
    pub fn mean(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum as f64 / self.total as f64
        }
    }

    /// The value at quantile `q` (0..=1), reported as the upper edge of its
    /// bucket (never above the maximum); 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (bucket, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Self::upper(bucket).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_values() {
        for v in [0u64, 1, 127, 128, 129, 1000, 65_535, 1 << 40, u64::MAX] {
            let b = Histogram::bucket(v);
            assert!(Histogram::upper(b) >= v, "{v}");
            if b > 0 {
                assert!(Histogram::upper(b - 1) < v, "{v}");
            }
        }
    }

    #[test]
    fn quantiles_within_two_percent() {
        let mut h = Histogram::new();
        for v in 1..=100_000u64 {
            h.record(v);
        }
        for (q, want) in [(0.5, 50_000.0), (0.99, 99_000.0), (0.999, 99_900.0)] {
            let got = h.quantile(q) as f64;
            assert!((got - want).abs() / want < 0.02, "q{q}: {got} vs {want}");
        }
        assert_eq!(h.quantile(1.0), 100_000);
        assert_eq!(Histogram::new().quantile(0.5), 0);
    }
}
