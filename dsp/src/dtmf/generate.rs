//! DTMF tone generation (ITU-T Q.23).

use std::fmt;

use super::Digit;
use crate::detector::{ConfigError, check_range};
use crate::goertzel::{FULL_SCALE_SINE_DBM0, dbm0_to_amplitude};
use crate::osc::{Osc, saturate};

/// How digits are played.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DtmfGeneratorConfig {
    /// Level of the low-group tone, dBm0 (G.711 convention: a full-scale
    /// sine is +3.14 dBm0).
    pub low_dbm0: f32,
    /// Level of the high-group tone, dBm0. `high_dbm0 - low_dbm0` is the
    /// twist (positive: high group louder).
    pub high_dbm0: f32,
    /// Tone duration per digit, in samples at 8 kHz.
    pub on_samples: u32,
    /// Silence after each digit, in samples at 8 kHz.
    pub off_samples: u32,
}

impl DtmfGeneratorConfig {
    /// Sets the tone and pause durations in milliseconds.
    pub fn with_durations_ms(mut self, on_ms: u32, off_ms: u32) -> Self {
        self.on_samples = on_ms.saturating_mul(8);
        self.off_samples = off_ms.saturating_mul(8);
        self
    }

    /// Sets both levels from the low-group level and a twist in dB
    /// (high minus low).
    pub fn with_levels(mut self, low_dbm0: f32, twist_db: f32) -> Self {
        self.low_dbm0 = low_dbm0;
        self.high_dbm0 = low_dbm0 + twist_db;
        self
    }
}

impl Default for DtmfGeneratorConfig {
    /// −7 dBm0 low, −5 dBm0 high (2 dB forward twist, within the usual
    /// telephone-set range), 100 ms on, 100 ms off.
    fn default() -> Self {
        Self {
            low_dbm0: -7.0,
            high_dbm0: -5.0,
            on_samples: 800,
            off_samples: 800,
        }
    }
}

/// The generator's digit queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFull;

impl fmt::Display for QueueFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("dtmf generator queue full")
    }
}

impl std::error::Error for QueueFull {}

/// Plays queued digits as in-band DTMF.
///
/// ```
/// use legato_dsp::dtmf::{Digit, DtmfGenerator, DtmfGeneratorConfig};
///
/// let mut generator = DtmfGenerator::new(DtmfGeneratorConfig::default()).unwrap();
/// generator.push(Digit::D5).unwrap();
/// let mut frame = [0i16; 160];
/// let produced = generator.fill(&mut frame);
/// assert_eq!(produced, 160);
/// ```
#[derive(Debug, Clone)]
pub struct DtmfGenerator {
    config: DtmfGeneratorConfig,
    low_amp: f64,
    high_amp: f64,
    queue: [Digit; QUEUE_CAPACITY],
    head: usize,
    len: usize,
    state: State,
    low: Osc,
    high: Osc,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Idle,
    Tone { remaining: u32 },
    Pause { remaining: u32 },
}

impl DtmfGenerator {
    /// Creates a generator. Levels must lie in −60..=+3.14 dBm0 and the
    /// tone must last at least one sample.
    pub fn new(config: DtmfGeneratorConfig) -> Result<Self, ConfigError> {
        check_range(config.low_dbm0, -60.0, FULL_SCALE_SINE_DBM0, "low_dbm0")?;
        check_range(config.high_dbm0, -60.0, FULL_SCALE_SINE_DBM0, "high_dbm0")?;
        if config.on_samples == 0 {
            return Err(ConfigError {
                field: "on_samples",
            });
        }
        Ok(Self {
            config,
            low_amp: f64::from(dbm0_to_amplitude(config.low_dbm0)),
            high_amp: f64::from(dbm0_to_amplitude(config.high_dbm0)),
            queue: [Digit::D0; QUEUE_CAPACITY],
            head: 0,
            len: 0,
            state: State::Idle,
            low: Osc::new(697.0),
            high: Osc::new(1209.0),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &DtmfGeneratorConfig {
        &self.config
    }

    /// Queues a digit to play after those already queued.
    pub fn push(&mut self, digit: Digit) -> Result<(), QueueFull> {
        if self.len == QUEUE_CAPACITY {
            return Err(QueueFull);
        }
        self.queue[(self.head + self.len) % QUEUE_CAPACITY] = digit;
        self.len += 1;
        Ok(())
    }

    /// Queues every character of `digits`; stops at the first character
    /// that is not a DTMF key (returning its index) or when the queue fills.
    pub fn push_str(&mut self, digits: &str) -> Result<(), PushStrError> {
        for (index, c) in digits.chars().enumerate() {
            let digit = Digit::from_char(c).ok_or(PushStrError::InvalidDigit { index })?;
            self.push(digit)
                .map_err(|QueueFull| PushStrError::QueueFull { index })?;
        }
        Ok(())
    }

    /// True when nothing is queued or playing (pauses included).
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Idle) && self.len == 0
    }

    /// Drops queued digits and stops the current one at once.
    pub fn clear(&mut self) {
        self.len = 0;
        self.state = State::Idle;
    }

    /// Fills `out` with the next samples: digit tones and pauses while any
    /// remain, silence after. Returns how many samples belonged to digits
    /// (tones or their pauses); the rest of `out` is zero.
    pub fn fill(&mut self, out: &mut [i16]) -> usize {
        let mut produced = 0;
        let mut i = 0;
        while i < out.len() {
            match self.state {
                State::Idle => {
                    if self.len == 0 {
                        out[i..].fill(0);
                        break;
                    }
                    let digit = self.queue[self.head];
                    self.head = (self.head + 1) % QUEUE_CAPACITY;
                    self.len -= 1;
                    let (lo, hi) = digit.frequencies();
                    self.low = Osc::new(f64::from(lo));
                    self.high = Osc::new(f64::from(hi));
                    self.state = State::Tone {
                        remaining: self.config.on_samples,
                    };
                }
                State::Tone { remaining } => {
                    let n = (remaining as usize).min(out.len() - i);
                    for sample in &mut out[i..i + n] {
                        let v = self.low_amp * self.low.next_sample()
                            + self.high_amp * self.high.next_sample();
                        *sample = saturate(v);
                    }
                    i += n;
                    produced += n;
                    let remaining = remaining - n as u32;
                    self.state = if remaining > 0 {
                        State::Tone { remaining }
                    } else if self.config.off_samples > 0 {
                        State::Pause {
                            remaining: self.config.off_samples,
                        }
                    } else {
                        State::Idle
                    };
                }
                State::Pause { remaining } => {
                    let n = (remaining as usize).min(out.len() - i);
                    out[i..i + n].fill(0);
                    i += n;
                    produced += n;
                    let remaining = remaining - n as u32;
                    self.state = if remaining > 0 {
                        State::Pause { remaining }
                    } else {
                        State::Idle
                    };
                }
            }
        }
        produced
    }
}

/// Why [`DtmfGenerator::push_str`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushStrError {
    /// The character at `index` (in chars) is not a DTMF key.
    InvalidDigit {
        /// Position of the character.
        index: usize,
    },
    /// The queue filled before the character at `index`.
    QueueFull {
        /// Position of the first character not queued.
        index: usize,
    },
}

impl fmt::Display for PushStrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidDigit { index } => write!(f, "not a dtmf digit at position {index}"),
            Self::QueueFull { index } => write!(f, "dtmf queue full at position {index}"),
        }
    }
}

impl std::error::Error for PushStrError {}

/// Digits that can wait in a generator's queue.
const QUEUE_CAPACITY: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::goertzel::{Goertzel, power_to_dbm0};

    #[test]
    fn levels_durations_and_frequencies() {
        let config = DtmfGeneratorConfig::default()
            .with_levels(-10.0, 3.0)
            .with_durations_ms(50, 30);
        let mut generator = DtmfGenerator::new(config).unwrap();
        generator.push_str("9#").unwrap();
        let mut out = vec![0i16; 2000];
        // Odd frame sizes must not change the output.
        let mut produced = 0;
        for chunk in out.chunks_mut(37) {
            produced += generator.fill(chunk);
        }
        assert_eq!(produced, 2 * (400 + 240));
        assert!(generator.is_idle());
        assert!(out[400..640].iter().all(|&s| s == 0));
        assert!(out[1280..].iter().all(|&s| s == 0));
        for (range, lo, hi) in [(0..400, 852.0, 1477.0), (640..1040, 941.0, 1477.0)] {
            let mut g_lo = Goertzel::new(lo);
            let mut g_hi = Goertzel::new(hi);
            g_lo.update(&out[range.clone()]);
            g_hi.update(&out[range]);
            assert!((power_to_dbm0(g_lo.power()) + 10.0).abs() < 0.1);
            assert!((power_to_dbm0(g_hi.power()) + 7.0).abs() < 0.1);
        }
    }

    #[test]
    fn bad_config_and_full_queue() {
        let bad = DtmfGeneratorConfig {
            low_dbm0: 5.0,
            ..DtmfGeneratorConfig::default()
        };
        assert_eq!(DtmfGenerator::new(bad).unwrap_err().field, "low_dbm0");
        let mut generator = DtmfGenerator::new(DtmfGeneratorConfig::default()).unwrap();
        assert_eq!(
            generator.push_str("12x"),
            Err(PushStrError::InvalidDigit { index: 2 })
        );
        for _ in 0..QUEUE_CAPACITY {
            let _ = generator.push(Digit::D1);
        }
        assert_eq!(generator.push(Digit::D1), Err(QueueFull));
        generator.clear();
        assert!(generator.is_idle());
    }
}
