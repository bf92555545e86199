//! Progress-tone generation from the country table.

use super::{Country, ProgressTone, Sound, ToneSpec};
use crate::detector::{ConfigError, check_range};
use crate::goertzel::{FULL_SCALE_SINE_DBM0, dbm0_to_amplitude};
use crate::osc::{Osc, saturate};

/// Plays one progress tone of one country, cadence repeated forever.
///
/// ```
/// use legato_dsp::tone::{Country, ProgressTone, ProgressToneGenerator};
///
/// let mut uk_ringback = ProgressToneGenerator::new(Country::Uk, ProgressTone::Ringback, 0.0).unwrap();
/// let mut frame = [0i16; 160];
/// uk_ringback.fill(&mut frame);
/// assert!(frame.iter().any(|&s| s != 0));
/// ```
#[derive(Debug, Clone)]
pub struct ProgressToneGenerator {
    spec: &'static ToneSpec,
    gain_db: f32,
    segment: usize,
    /// Samples left in the current segment (`u64::MAX` for continuous).
    remaining: u64,
    amplitude: f64,
    oscillators: [Osc; 3],
    sound: Option<Sound>,
}

impl ProgressToneGenerator {
    /// A generator for `country`'s `tone`, `gain_db` relative to the
    /// table's nominal level (−30..=+6 dB; the result is clipped at full
    /// scale).
    pub fn new(country: Country, tone: ProgressTone, gain_db: f32) -> Result<Self, ConfigError> {
        check_range(gain_db, -30.0, 6.0, "gain_db")?;
        let spec = country.tone(tone);
        let mut generator = Self {
            spec,
            gain_db,
            segment: 0,
            remaining: 0,
            amplitude: 0.0,
            oscillators: [Osc::new(0.0), Osc::new(0.0), Osc::new(0.0)],
            sound: None,
        };
        generator.enter(0);
        Ok(generator)
    }

    /// Fills `out` with the next samples of the tone.
    pub fn fill(&mut self, out: &mut [i16]) {
        let mut i = 0;
        while i < out.len() {
            if self.remaining == 0 {
                let next = (self.segment + 1) % self.spec.segments.len();
                self.enter(next);
            }
            let n = (out.len() - i).min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
            for sample in &mut out[i..i + n] {
                *sample = saturate(self.next_value());
            }
            i += n;
            if self.remaining != u64::MAX {
                self.remaining -= n as u64;
            }
        }
    }

    fn enter(&mut self, index: usize) {
        self.segment = index;
        let segment = self.spec.segments[index];
        self.remaining = if segment.ms == 0 {
            u64::MAX
        } else {
            u64::from(segment.ms) * 8
        };
        let level =
            (self.spec.level_dbm0 + self.gain_db + segment.level_db).min(FULL_SCALE_SINE_DBM0);
        self.amplitude = f64::from(dbm0_to_amplitude(level));
        // A new sound restarts its oscillators; the same sound carries on
        // (SIT steps and repeated bursts start cleanly from phase 0).
        if segment.sound != self.sound || segment.sound.is_none() {
            self.sound = segment.sound;
            match segment.sound {
                Some(Sound::Single(f)) => self.oscillators[0] = Osc::new(f64::from(f)),
                Some(Sound::Dual(a, b)) => {
                    self.oscillators[0] = Osc::new(f64::from(a));
                    self.oscillators[1] = Osc::new(f64::from(b));
                }
                Some(Sound::Modulated { carrier, rate }) => {
                    self.oscillators[0] = Osc::new(f64::from(carrier));
                    self.oscillators[1] = Osc::new(f64::from(rate));
                }
                None => {}
            }
        }
    }

    #[inline]
    fn next_value(&mut self) -> f64 {
        let a = self.amplitude;
        match self.sound {
            None => 0.0,
            Some(Sound::Single(_)) => a * self.oscillators[0].next_sample(),
            Some(Sound::Dual(..)) => {
                a * (self.oscillators[0].next_sample() + self.oscillators[1].next_sample())
            }
            Some(Sound::Modulated { .. }) => {
                // 100 % AM with the carrier at the nominal level on average:
                // (1 + sin m)·sin c, scaled so the mean power equals one
                // sine at `a` (factor sqrt(2/3)).
                let m = self.oscillators[1].next_sample();
                a * 0.816_496_6 * (1.0 + m) * self.oscillators[0].next_sample()
            }
        }
    }
}

impl ProgressToneGenerator {
    /// The gain in use relative to the table's nominal level, dB.
    pub fn gain_db(&self) -> f32 {
        self.gain_db
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::goertzel::{Goertzel, power_to_dbm0};

    #[test]
    fn cadence_and_level() {
        let mut g = ProgressToneGenerator::new(Country::Uk, ProgressTone::Ringback, 0.0).unwrap();
        let mut x = vec![0i16; 8 * 3000 * 2];
        for chunk in x.chunks_mut(77) {
            g.fill(chunk);
        }
        // 400 on, 200 off, 400 on, 2000 off, twice.
        let energy =
            |r: std::ops::Range<usize>| x[r].iter().map(|&v| i64::from(v).abs()).sum::<i64>();
        assert!(energy(100..3100) > 0);
        assert_eq!(energy(3300..4700), 0);
        assert!(energy(4900..7900) > 0);
        assert_eq!(energy(8100..23900), 0);
        assert!(energy(24_100..27_000) > 0);
        let mut g400 = Goertzel::new(400.0);
        g400.update(&x[0..3200]);
        assert!((power_to_dbm0(g400.power()) + 13.0).abs() < 0.2);
        // Continuous dial tone never stops.
        let mut dial = ProgressToneGenerator::new(Country::Us, ProgressTone::Dial, -8.0).unwrap();
        let mut y = vec![0i16; 80_000];
        dial.fill(&mut y);
        assert!(y[79_000..].iter().any(|&v| v != 0));
        assert!(ProgressToneGenerator::new(Country::Us, ProgressTone::Dial, 20.0).is_err());
    }
}
