//! Typed media time and extension of RTP sequence numbers and timestamps.
//!
//! RTP carries 16-bit sequence numbers and 32-bit timestamps that wrap. All
//! arithmetic in legato happens on 64-bit extended values, produced in one
//! place by [`extend_u16`] and [`extend_u32`]. Sample counts travel with
//! their clock rate as [`MediaTime`], never as bare integers.

use core::cmp::Ordering;
use core::ops::{Add, Sub};

/// An RTP clock rate in Hz (samples per second per channel).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClockRate(u32);

impl ClockRate {
    /// 8 kHz: G.711, G.729, telephone-event, and G.722 (RFC 3551 §4.5.2
    /// keeps G.722's RTP clock at 8 kHz although it samples at 16 kHz).
    pub const HZ_8000: Self = Self(8000);
    /// 16 kHz: wideband PCM (L16/16000, G.722 audio).
    pub const HZ_16000: Self = Self(16_000);
    /// 48 kHz: Opus (RFC 7587 always uses a 48 kHz RTP clock).
    pub const HZ_48000: Self = Self(48_000);

    /// A rate in Hz; `None` for 0.
    pub const fn new(hz: u32) -> Option<Self> {
        if hz == 0 { None } else { Some(Self(hz)) }
    }

    /// The rate in Hz.
    pub const fn hz(self) -> u32 {
        self.0
    }

    /// Samples in `ms` milliseconds at this rate (rounded down).
    pub const fn samples_in_ms(self, ms: u32) -> u32 {
        ((self.0 as u64 * ms as u64) / 1000) as u32
    }
}

/// A point or span in media time: a sample count together with its clock
/// rate.
///
/// Arithmetic between two values requires the same rate; convert with
/// [`MediaTime::rebase`] first. Comparison across rates is exact (it
/// cross-multiplies), which is why `MediaTime` is not `Hash`.
#[derive(Clone, Copy, Debug)]
pub struct MediaTime {
    samples: i64,
    rate: ClockRate,
}

impl MediaTime {
    /// `samples` ticks of `rate`.
    pub const fn new(samples: i64, rate: ClockRate) -> Self {
        Self { samples, rate }
    }

    /// Zero at `rate`.
    pub const fn zero(rate: ClockRate) -> Self {
        Self { samples: 0, rate }
    }

    /// `ms` milliseconds expressed at `rate` (rounded down).
    pub const fn from_millis(ms: i64, rate: ClockRate) -> Self {
        Self {
            samples: ms * rate.0 as i64 / 1000,
            rate,
        }
    }

    /// The sample count.
    pub const fn samples(self) -> i64 {
        self.samples
    }

    /// The clock rate.
    pub const fn rate(self) -> ClockRate {
        self.rate
    }

    /// The value in whole milliseconds (rounded towards negative infinity).
    pub const fn as_millis(self) -> i64 {
        (self.samples * 1000).div_euclid(self.rate.0 as i64)
    }

    /// The value in whole microseconds (rounded towards negative infinity).
    pub const fn as_micros(self) -> i64 {
        (self.samples as i128 * 1_000_000).div_euclid(self.rate.0 as i128) as i64
    }

    /// The same instant at another rate (rounded towards negative infinity).
    pub const fn rebase(self, rate: ClockRate) -> Self {
        let s = (self.samples as i128 * rate.0 as i128).div_euclid(self.rate.0 as i128);
        Self {
            samples: s as i64,
            rate,
        }
    }

    /// `self + other` when both share a rate, `None` otherwise or on
    /// overflow.
    pub fn checked_add(self, other: Self) -> Option<Self> {
        if self.rate != other.rate {
            return None;
        }
        Some(Self {
            samples: self.samples.checked_add(other.samples)?,
            rate: self.rate,
        })
    }

    /// `self - other` when both share a rate, `None` otherwise or on
    /// overflow.
    pub fn checked_sub(self, other: Self) -> Option<Self> {
        if self.rate != other.rate {
            return None;
        }
        Some(Self {
            samples: self.samples.checked_sub(other.samples)?,
            rate: self.rate,
        })
    }
}

impl PartialEq for MediaTime {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for MediaTime {}

impl PartialOrd for MediaTime {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for MediaTime {
    fn cmp(&self, other: &Self) -> Ordering {
        let a = self.samples as i128 * other.rate.0 as i128;
        let b = other.samples as i128 * self.rate.0 as i128;
        a.cmp(&b)
    }
}

/// Adds two times of the same rate. Panics if the rates differ, which is a
/// programming error, never a property of network input; use
/// [`MediaTime::checked_add`] where rates are not fixed by construction.
impl Add for MediaTime {
    type Output = Self;
    fn add(self, rhs: Self) -> Self {
        assert_eq!(self.rate, rhs.rate, "MediaTime rates differ");
        Self {
            samples: self.samples + rhs.samples,
            rate: self.rate,
        }
    }
}

/// Subtracts two times of the same rate. Panics if the rates differ, like
/// [`Add`].
impl Sub for MediaTime {
    type Output = Self;
    fn sub(self, rhs: Self) -> Self {
        assert_eq!(self.rate, rhs.rate, "MediaTime rates differ");
        Self {
            samples: self.samples - rhs.samples,
            rate: self.rate,
        }
    }
}

/// Extends a 16-bit RTP sequence number to 64 bits: the value with low bits
/// `seq` closest to `prev` (the previous extended value), or `seq` itself
/// when there is no previous value. Never goes below zero.
pub fn extend_u16(prev: Option<u64>, seq: u16) -> u64 {
    extend(prev, seq as u64, 16)
}

/// Extends a 32-bit RTP timestamp to 64 bits, like [`extend_u16`].
pub fn extend_u32(prev: Option<u64>, ts: u32) -> u64 {
    extend(prev, ts as u64, 32)
}

fn extend(prev: Option<u64>, v: u64, bits: u32) -> u64 {
    let Some(prev) = prev else { return v };
    let max = 1u64 << bits;
    let half = max >> 1;
    let c = (prev & !(max - 1)) | v;
    if c < prev && prev - c > half {
        // Far behind in this cycle: it belongs to the next one.
        c.checked_add(max).unwrap_or(c)
    } else if c > prev && c - prev > half && c >= max {
        // Far ahead: it belongs to the previous cycle.
        c - max
    } else {
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extend_u16_table() {
        let cases: &[(Option<u64>, u16, u64)] = &[
            (None, 0, 0),
            (None, 65_535, 65_535),
            (Some(0), 1, 1),
            (Some(65_535), 0, 65_536),
            (Some(65_535), 1, 65_537),
            (Some(65_536), 65_535, 65_535),
            (Some(65_536 + 10), 65_530, 65_530),
            (Some(5), 65_530, 65_530), // no negative extension below zero
            (Some(131_071), 2, 131_074),
            (Some(100_000), 34_464, 100_000),
            (Some(100_000), 34_464 - 32_768, 100_000 - 32_768),
            (Some(100_000), 34_464 - 32_769, 100_000 + 32_767),
        ];
        for &(prev, seq, want) in cases {
            assert_eq!(extend_u16(prev, seq), want, "prev {prev:?} seq {seq}");
        }
    }

    #[test]
    fn extend_u32_table() {
        let cases: &[(Option<u64>, u32, u64)] = &[
            (None, 0xFFFF_FF00, 0xFFFF_FF00),
            (Some(0xFFFF_FF00), 0x0000_00A0, 0x1_0000_00A0),
            (Some(0x1_0000_00A0), 0xFFFF_FF00, 0xFFFF_FF00),
            (Some(0x1_0000_00A0), 0x0000_0140, 0x1_0000_0140),
            (Some(0x2_7FFF_FFFF), 0xFFFF_FFFF, 0x2_FFFF_FFFF),
            (Some(0x2_0000_0000), 0xFFFF_FFFF, 0x1_FFFF_FFFF),
        ];
        for &(prev, ts, want) in cases {
            assert_eq!(extend_u32(prev, ts), want, "prev {prev:?} ts {ts:#x}");
        }
    }

    #[test]
    fn extend_walks_many_cycles() {
        let mut prev = None;
        let mut want = 0u64;
        for _ in 0..300_000 {
            let got = extend_u16(prev, want as u16);
            assert_eq!(got, want);
            prev = Some(got);
            want += 7;
        }
    }

    #[test]
    fn media_time_conversions() {
        let t = MediaTime::from_millis(20, ClockRate::HZ_8000);
        assert_eq!(t.samples(), 160);
        assert_eq!(t.rebase(ClockRate::HZ_48000).samples(), 960);
        assert_eq!(t.as_micros(), 20_000);
        assert_eq!(t, MediaTime::new(960, ClockRate::HZ_48000));
        assert!(t < MediaTime::new(961, ClockRate::HZ_48000));
        assert_eq!(MediaTime::new(-1, ClockRate::HZ_8000).as_millis(), -1);
        assert_eq!(t.checked_add(MediaTime::new(1, ClockRate::HZ_16000)), None);
        assert_eq!((t + t).samples(), 320);
        assert_eq!(ClockRate::HZ_16000.samples_in_ms(20), 320);
        assert_eq!(ClockRate::new(0), None);
    }
}
