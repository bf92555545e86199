//! DTMF reception (ITU-T Q.24).
//!
//! # Method
//!
//! The signal is cut into 5 ms sub-blocks (40 samples). For each sub-block a
//! bank of Goertzel filters gives the complex DFT value at every DTMF
//! frequency and at the harmonics checked in step 5, phase-referred to stream start, together with the sub-block's
//! energy. Every 5 ms the last five sub-blocks (a 25 ms window) are judged:
//!
//! 1. **Stationarity**: every sub-block holds at least 40 % of the energy of
//!    the strongest one. A tone that starts or stops inside the window, or
//!    speech with its syllabic envelope, fails here; this is also what makes
//!    a 20 ms tone impossible to accept (see *Timing*).
//! 2. **Strongest row and column**: the coherent sum of the five sub-block
//!    values is a 200-sample DFT (40 Hz bins); the strongest bin of each
//!    group is the candidate.
//! 3. **Frequency**: the coherent sum is re-evaluated at offsets from the
//!    nominal frequency (a 16-point grid over ±100 Hz, then parabolic
//!    interpolation), giving the tone's actual frequency to about 1 Hz. The
//!    tone must lie within `freq_tolerance_percent` + 1 Hz of nominal:
//!    2.5 % + 1 Hz by default, between Q.24's "accept ±1.5 % (+2 Hz)" and
//!    "reject beyond ±3.5 %". Deciding on measured frequency, not on how
//!    much energy a fixed-width bin caught, is what lets the detector accept
//!    the full ±1.5 % and still reject 3.5 %.
//! 4. **Level and twist** at the measured frequency: each tone at least
//!    `min_level_dbm0`, high-minus-low within
//!    `-max_reverse_twist_db..=max_forward_twist_db`.
//! 5. **Purity**: the two tones together carry at least `min_purity` of the
//!    window's energy, the runner-up bin of each group is at least 10 dB
//!    below the winner, and neither tone has a harmonic within 15 dB of it
//!    (3rd harmonic of the low tone, 2nd of the high tone, measured at
//!    exactly 3× and 2× the measured frequencies). Speech and music, whose energy is spread over
//!    harmonics and formants, fail here.
//!
//! # Timing
//!
//! A digit starts when `min_hits` consecutive windows (2 by default, 5 ms
//! apart) agree on it. A window only passes when all its five sub-blocks are
//! inside the tone, so a 20 ms tone (at most four full sub-blocks plus two
//! partial ones) yields at most one passing window and is never reported,
//! while a 40 ms tone yields at least three. **Decision latency** is at most
//! 35 ms after the tone's onset (5 ms alignment + 25 ms window + 5 ms second
//! window), plus whatever remains of the caller's frame; in-band suppression
//! therefore needs a look-ahead of 35 ms.
//!
//! A digit ends when no window has matched it for `bridge_gap_samples` +
//! 25 ms; a drop-out shorter than `bridge_gap_samples` (30 ms by default)
//! does not split a digit, while Q.24's 40 ms inter-digit pause always does.
//! Start and end are refined to the sample from the energy of the partial
//! sub-block at each edge.

use super::{Digit, HIGH_GROUP_HZ, LOW_GROUP_HZ};
use crate::detector::{ConfigError, EventQueue, check_range};
use crate::goertzel::{GoertzelBank, dbm0_to_power, power_to_dbm0};

/// Acceptance limits of a [`DtmfDetector`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DtmfDetectorConfig {
    /// Minimum level of each tone, dBm0. Default −31: Q.24 asks for
    /// detection down to −26 dBm0 per tone and rejection below about −35.
    pub min_level_dbm0: f32,
    /// How far the high-group tone may be above the low-group one, dB.
    /// Default 6 (Q.24 / Bellcore: accept +4 dB forward twist).
    pub max_forward_twist_db: f32,
    /// How far the high-group tone may be below the low-group one, dB.
    /// Default 10 (accept −8 dB reverse twist).
    pub max_reverse_twist_db: f32,
    /// Frequency tolerance per tone, percent of nominal, plus 1 Hz.
    /// Default 2.5.
    pub freq_tolerance_percent: f32,
    /// Share of the window's energy the two tones must carry (0..1).
    /// Default 0.8; white noise at 15 dB SNR leaves 0.97.
    pub min_purity: f32,
    /// Consecutive 5 ms windows that must agree before a digit starts
    /// (1..=8). Default 2.
    pub min_hits: u32,
    /// Longest drop-out, in samples, that does not end a digit. Default 240
    /// (30 ms): Q.24 bridges 10 ms interruptions and separates digits by
    /// 40 ms pauses.
    pub bridge_gap_samples: u32,
}

impl Default for DtmfDetectorConfig {
    fn default() -> Self {
        Self {
            min_level_dbm0: -31.0,
            max_forward_twist_db: 6.0,
            max_reverse_twist_db: 10.0,
            freq_tolerance_percent: 2.5,
            min_purity: 0.8,
            min_hits: 2,
            bridge_gap_samples: 240,
        }
    }
}

/// What a [`DtmfDetector`] reports. Times are sample offsets from the first
/// sample the detector was fed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DtmfEvent {
    /// A digit was recognised; sent once per digit as soon as it is certain.
    Started {
        /// The digit.
        digit: Digit,
        /// Estimated first sample of the tone.
        start: u64,
        /// Sample offset at which the decision was taken (`at - start` is
        /// the decision latency).
        at: u64,
        /// Measured low-group level, dBm0.
        low_dbm0: f32,
        /// Measured high-group level, dBm0.
        high_dbm0: f32,
        /// Measured low-group frequency, Hz.
        low_hz: f32,
        /// Measured high-group frequency, Hz.
        high_hz: f32,
    },
    /// The digit that last started has ended.
    Ended {
        /// The digit.
        digit: Digit,
        /// Estimated first sample of the tone (as in `Started`).
        start: u64,
        /// Estimated first sample after the tone.
        end: u64,
    },
}

/// Detects DTMF digits in 8 kHz linear audio. See the module docs for the
/// method and its limits.
///
/// ```
/// use legato_dsp::dtmf::{Digit, DtmfDetector, DtmfDetectorConfig, DtmfEvent,
///     DtmfGenerator, DtmfGeneratorConfig};
///
/// let mut generator = DtmfGenerator::new(DtmfGeneratorConfig::default()).unwrap();
/// generator.push(Digit::Hash).unwrap();
/// let mut detector = DtmfDetector::new(DtmfDetectorConfig::default()).unwrap();
/// let mut frame = [0i16; 160];
/// let mut digits = Vec::new();
/// for _ in 0..20 {
///     generator.fill(&mut frame);
///     detector.handle_samples(&frame);
///     while let Some(event) = detector.poll_event() {
///         if let DtmfEvent::Started { digit, .. } = event {
///             digits.push(digit);
///         }
///     }
/// }
/// assert_eq!(digits, [Digit::Hash]);
/// ```
#[derive(Debug, Clone)]
pub struct DtmfDetector {
    config: DtmfDetectorConfig,
    min_power: f32,
    max_ratio: f32,
    min_ratio: f32,
    bank: GoertzelBank<FILTERS>,
    block_energy: f32,
    /// Complex bin values of the last `WINDOW` sub-blocks (ring).
    bins: [[(f32, f32); FILTERS]; WINDOW],
    /// Energies of the last `WINDOW + 1` sub-blocks (ring).
    energies: [f32; WINDOW + 1],
    blocks_done: u64,
    samples: u64,
    grid: [(f32, f32); GRID],
    candidate: Option<Candidate>,
    active: Option<Active>,
    events: EventQueue<DtmfEvent, 16>,
}

#[derive(Debug, Clone, Copy)]
struct Hit {
    digit: Digit,
    low_dbm0: f32,
    high_dbm0: f32,
    low_hz: f32,
    high_hz: f32,
    reference_energy: f32,
}

#[derive(Debug, Clone, Copy)]
struct Candidate {
    hit: Hit,
    hits: u32,
    start: u64,
}

#[derive(Debug, Clone, Copy)]
struct Active {
    digit: Digit,
    start: u64,
    last_hit_end: u64,
    reference_energy: f32,
    /// Energy of the newest sub-block of the last matching window.
    last_block_energy: f32,
    end: Option<u64>,
}

impl DtmfDetector {
    /// Creates a detector; fails if a limit is out of its sensible range.
    pub fn new(config: DtmfDetectorConfig) -> Result<Self, ConfigError> {
        check_range(config.min_level_dbm0, -60.0, 0.0, "min_level_dbm0")?;
        check_range(
            config.max_forward_twist_db,
            0.0,
            20.0,
            "max_forward_twist_db",
        )?;
        check_range(
            config.max_reverse_twist_db,
            0.0,
            20.0,
            "max_reverse_twist_db",
        )?;
        check_range(
            config.freq_tolerance_percent,
            0.5,
            4.5,
            "freq_tolerance_percent",
        )?;
        check_range(config.min_purity, 0.1, 1.0, "min_purity")?;
        if !(1..=8).contains(&config.min_hits) {
            return Err(ConfigError { field: "min_hits" });
        }
        if config.bridge_gap_samples > 8000 {
            return Err(ConfigError {
                field: "bridge_gap_samples",
            });
        }
        let mut grid = [(0.0, 0.0); GRID];
        for (j, r) in grid.iter_mut().enumerate() {
            let delta = grid_offset(j);
            let angle = -2.0 * std::f32::consts::PI * delta * BLOCK as f32 / 8000.0;
            *r = (angle.cos(), angle.sin());
        }
        // Filters: low group, high group, 3rd harmonics of the low group,
        // 2nd harmonics of the high group (the low group's 2nd harmonics
        // would sit among the high-group tones).
        let mut freqs = [0.0; FILTERS];
        freqs[..4].copy_from_slice(&LOW_GROUP_HZ);
        freqs[4..8].copy_from_slice(&HIGH_GROUP_HZ);
        for i in 0..4 {
            freqs[8 + i] = 3.0 * LOW_GROUP_HZ[i];
            freqs[12 + i] = 2.0 * HIGH_GROUP_HZ[i];
        }
        Ok(Self {
            config,
            min_power: dbm0_to_power(config.min_level_dbm0),
            max_ratio: 10f32.powf(config.max_forward_twist_db / 10.0),
            min_ratio: 10f32.powf(-config.max_reverse_twist_db / 10.0),
            bank: GoertzelBank::new(freqs),
            block_energy: 0.0,
            bins: [[(0.0, 0.0); FILTERS]; WINDOW],
            energies: [0.0; WINDOW + 1],
            blocks_done: 0,
            samples: 0,
            grid,
            candidate: None,
            active: None,
            events: EventQueue::new(),
        })
    }

    /// The limits in use.
    pub fn config(&self) -> &DtmfDetectorConfig {
        &self.config
    }

    /// Feeds 8 kHz linear samples (any number, including zero).
    pub fn handle_samples(&mut self, mut samples: &[i16]) {
        while !samples.is_empty() {
            let room = BLOCK - self.bank.len() as usize;
            let (now, rest) = samples.split_at(room.min(samples.len()));
            self.bank.update(now);
            let mut energy = 0.0f32;
            for &x in now {
                let x = f32::from(x);
                energy += x * x;
            }
            self.block_energy += energy;
            self.samples += now.len() as u64;
            samples = rest;
            if self.bank.len() as usize == BLOCK {
                self.finish_block();
            }
        }
    }

    /// Next pending event, oldest first.
    pub fn poll_event(&mut self) -> Option<DtmfEvent> {
        self.events.pop()
    }

    /// Number of samples fed so far.
    pub fn samples_seen(&self) -> u64 {
        self.samples
    }

    /// The digit currently sounding (started and not yet ended), if any.
    pub fn current_digit(&self) -> Option<Digit> {
        self.active.map(|a| a.digit)
    }

    /// True while a digit is sounding or a tone is being confirmed: a caller
    /// doing in-band suppression mutes audio while this holds.
    pub fn is_tone_present(&self) -> bool {
        self.candidate.is_some() || self.active.is_some_and(|a| a.end.is_none())
    }

    /// Events lost because the queue was full (the caller did not poll).
    pub fn dropped_events(&self) -> u64 {
        self.events.dropped()
    }

    /// Forgets all state, as if newly created (sample offsets restart at 0).
    pub fn reset(&mut self) {
        if let Ok(fresh) = Self::new(self.config) {
            *self = fresh;
        }
    }

    fn finish_block(&mut self) {
        let slot = (self.blocks_done % WINDOW as u64) as usize;
        self.bank.finish_block(&mut self.bins[slot]);
        self.energies[(self.blocks_done % (WINDOW as u64 + 1)) as usize] = self.block_energy;
        self.block_energy = 0.0;
        self.blocks_done += 1;
        if self.blocks_done < WINDOW as u64 + 1 {
            return;
        }
        let hit = self.evaluate();
        self.step(hit);
    }

    /// Energy of the sub-block `age` blocks before the newest (0 = newest).
    fn energy(&self, age: u64) -> f32 {
        let index = (self.blocks_done - 1 - age) % (WINDOW as u64 + 1);
        self.energies[index as usize]
    }

    /// Judges the window made of the last `WINDOW` sub-blocks.
    fn evaluate(&self) -> Option<Hit> {
        let mut total = 0.0;
        let mut max_e = 0.0f32;
        let mut min_e = f32::MAX;
        for age in 0..WINDOW as u64 {
            let e = self.energy(age);
            total += e;
            max_e = max_e.max(e);
            min_e = min_e.min(e);
        }
        let n = (WINDOW * BLOCK) as f32;
        let mean_square = total / n;
        if mean_square < self.min_power || min_e < STATIONARITY * max_e {
            return None;
        }
        // Coherent sums (window DFT at nominal frequencies), oldest first.
        let first = (self.blocks_done % WINDOW as u64) as usize;
        let mut ordered = [[(0.0f32, 0.0f32); WINDOW]; FILTERS];
        let mut power = [0.0f32; 8];
        for (k, column) in (0..WINDOW).map(|k| (k, (first + k) % WINDOW)) {
            for (row, &value) in ordered.iter_mut().zip(&self.bins[column]) {
                row[k] = value;
            }
        }
        let scale = 2.0 / (n * n);
        for i in 0..8 {
            let (re, im) = ordered[i]
                .iter()
                .fold((0.0, 0.0), |acc, v| (acc.0 + v.0, acc.1 + v.1));
            power[i] = (re * re + im * im) * scale;
        }
        let (low, low_runner) = best_two(&power[..4]);
        let (high, high_runner) = best_two(&power[4..]);
        // Lenient pre-check so the frequency search only runs on likely tones.
        if power[low] + power[4 + high] < PRE_PURITY * mean_square {
            return None;
        }
        let (low_offset, low_power) = self.refine(&ordered[low]);
        let (high_offset, high_power) = self.refine(&ordered[4 + high]);
        let low_hz = LOW_GROUP_HZ[low] + low_offset;
        let high_hz = HIGH_GROUP_HZ[high] + high_offset;
        let tolerance = |f: f32| f * self.config.freq_tolerance_percent / 100.0 + 1.0;
        if low_offset.abs() > tolerance(LOW_GROUP_HZ[low])
            || high_offset.abs() > tolerance(HIGH_GROUP_HZ[high])
        {
            return None;
        }
        if low_power < self.min_power || high_power < self.min_power {
            return None;
        }
        let ratio = high_power / low_power;
        if ratio > self.max_ratio || ratio < self.min_ratio {
            return None;
        }
        if low_power + high_power < self.config.min_purity * mean_square {
            return None;
        }
        if power[low_runner] > RUNNER_UP * low_power
            || power[4 + high_runner] > RUNNER_UP * high_power
        {
            return None;
        }
        // Tone generators make pure sines; voices and instruments have
        // harmonics, measured exactly at 3× and 2× the measured tones.
        let low_harmonic = window_power(&ordered[8 + low], 3.0 * low_offset);
        let high_harmonic = window_power(&ordered[12 + high], 2.0 * high_offset);
        if low_harmonic > HARMONIC * low_power || high_harmonic > HARMONIC * high_power {
            return None;
        }
        Some(Hit {
            digit: Digit::from_position(low, high)?,
            low_dbm0: power_to_dbm0(low_power),
            high_dbm0: power_to_dbm0(high_power),
            low_hz,
            high_hz,
            reference_energy: total / WINDOW as f32,
        })
    }

    /// Finds the frequency offset (Hz) maximising the coherent sum of
    /// `values` and the power (`A²/2`) at that offset.
    fn refine(&self, values: &[(f32, f32); WINDOW]) -> (f32, f32) {
        let mut mags = [0.0f32; GRID];
        let mut best = 0;
        for (j, &r) in self.grid.iter().enumerate() {
            let (re, im) = horner(values, r);
            mags[j] = (re * re + im * im).sqrt();
            if mags[j] > mags[best] {
                best = j;
            }
        }
        let a = mags[(best + GRID - 1) % GRID];
        let b = mags[best];
        let c = mags[(best + 1) % GRID];
        let denom = a - 2.0 * b + c;
        let shift = if denom < 0.0 {
            (0.5 * (a - c) / denom).clamp(-0.5, 0.5)
        } else {
            0.0
        };
        let offset = grid_offset(best) + shift * GRID_STEP_HZ;
        (offset, window_power(values, offset))
    }

    fn step(&mut self, hit: Option<Hit>) {
        let window_end = self.samples;
        let window_start = window_end - (WINDOW * BLOCK) as u64;
        let bridge = u64::from(self.config.bridge_gap_samples);
        let newest = self.energy(0);
        match hit {
            Some(hit) => {
                if let Some(active) = &mut self.active
                    && active.digit == hit.digit
                    && window_start.saturating_sub(active.last_hit_end) <= bridge
                {
                    active.last_hit_end = window_end;
                    active.last_block_energy = newest;
                    active.end = None;
                    self.candidate = None;
                    return;
                }
                let candidate = match self.candidate {
                    Some(mut c) if c.hit.digit == hit.digit => {
                        c.hits += 1;
                        c
                    }
                    _ => Candidate {
                        hit,
                        hits: 1,
                        start: self.onset(window_start, hit.reference_energy),
                    },
                };
                self.candidate = Some(candidate);
                if candidate.hits >= self.config.min_hits {
                    self.candidate = None;
                    if let Some(active) = self.active.take() {
                        self.end_active(active);
                    }
                    self.events.push(DtmfEvent::Started {
                        digit: hit.digit,
                        start: candidate.start,
                        at: window_end,
                        low_dbm0: hit.low_dbm0,
                        high_dbm0: hit.high_dbm0,
                        low_hz: hit.low_hz,
                        high_hz: hit.high_hz,
                    });
                    self.active = Some(Active {
                        digit: hit.digit,
                        start: candidate.start,
                        last_hit_end: window_end,
                        reference_energy: hit.reference_energy,
                        last_block_energy: newest,
                        end: None,
                    });
                }
            }
            None => {
                self.candidate = None;
                if let Some(active) = &mut self.active {
                    if active.end.is_none() {
                        // The tone ended inside either the last matching
                        // window's newest sub-block (if that one was weak) or
                        // the sub-block just after it.
                        // Tone energy in the two edge sub-blocks, in units of
                        // a full sub-block, places the end.
                        let last = active.last_block_energy / active.reference_energy;
                        let next = newest / active.reference_energy;
                        let covered = (last.clamp(0.0, 1.0) + next.clamp(0.0, 1.0)) * BLOCK as f32;
                        active.end =
                            Some(active.last_hit_end - BLOCK as u64 + covered.round() as u64);
                    }
                    if window_end - active.last_hit_end > bridge + (WINDOW * BLOCK) as u64 {
                        let active = *active;
                        self.active = None;
                        self.end_active(active);
                    }
                }
            }
        }
    }

    fn end_active(&mut self, active: Active) {
        self.events.push(DtmfEvent::Ended {
            digit: active.digit,
            start: active.start,
            end: active.end.unwrap_or(active.last_hit_end),
        });
    }

    /// Estimated onset of a tone whose first passing window starts at
    /// `window_start`, from the energy of the edge sub-blocks.
    fn onset(&self, window_start: u64, reference: f32) -> u64 {
        let first = (self.energy(WINDOW as u64 - 1) / reference).clamp(0.0, 1.0);
        let before = (self.energy(WINDOW as u64) / reference).clamp(0.0, 1.0);
        let covered = ((first + before) * BLOCK as f32).round() as u64;
        (window_start + BLOCK as u64).saturating_sub(covered)
    }
}

/// Index of the largest and of the second largest value.
fn best_two(values: &[f32]) -> (usize, usize) {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    let mut runner = if best == 0 { 1 } else { 0 };
    for (i, &v) in values.iter().enumerate() {
        if i != best && v > values[runner] {
            runner = i;
        }
    }
    (best, runner)
}

/// Power (`A²/2`) of the window's coherent sum `offset` Hz from the
/// filters' frequency.
fn window_power(values: &[(f32, f32); WINDOW], offset: f32) -> f32 {
    let angle = -2.0 * std::f32::consts::PI * offset * BLOCK as f32 / 8000.0;
    let (re, im) = horner(values, (angle.cos(), angle.sin()));
    let n = (WINDOW * BLOCK) as f32;
    (re * re + im * im) * 2.0 / (n * n)
}

/// `Σ_k values[k]·r^k`.
#[inline]
fn horner(values: &[(f32, f32); WINDOW], r: (f32, f32)) -> (f32, f32) {
    let mut acc = values[WINDOW - 1];
    for v in values[..WINDOW - 1].iter().rev() {
        acc = (
            acc.0 * r.0 - acc.1 * r.1 + v.0,
            acc.0 * r.1 + acc.1 * r.0 + v.1,
        );
    }
    acc
}

fn grid_offset(j: usize) -> f32 {
    -100.0 + GRID_STEP_HZ * j as f32
}

/// Goertzel filters: 8 tones, 3rd harmonics of the low group, 2nd
/// harmonics of the high group.
const FILTERS: usize = 16;
/// Largest harmonic power relative to its tone (−15 dB).
const HARMONIC: f32 = 0.03;
/// Sub-block length: 5 ms.
const BLOCK: usize = 40;
/// Sub-blocks per judged window: 25 ms.
const WINDOW: usize = 5;
/// Frequency search grid: one period of the sub-block phase step (200 Hz).
const GRID: usize = 16;
const GRID_STEP_HZ: f32 = 200.0 / GRID as f32;
/// Weakest sub-block relative to the strongest in a passing window.
const STATIONARITY: f32 = 0.4;
/// Share of energy at the nominal bins below which no search is done.
const PRE_PURITY: f32 = 0.2;
/// Runner-up bin of a group relative to the winner (−10 dB).
const RUNNER_UP: f32 = 0.1;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtmf::{DtmfGenerator, DtmfGeneratorConfig};

    fn run(detector: &mut DtmfDetector, x: &[i16], frame: usize) -> Vec<DtmfEvent> {
        let mut events = Vec::new();
        for chunk in x.chunks(frame) {
            detector.handle_samples(chunk);
            while let Some(e) = detector.poll_event() {
                events.push(e);
            }
        }
        events
    }

    #[test]
    fn sequence_with_times() {
        let config = DtmfGeneratorConfig::default().with_durations_ms(60, 60);
        let mut generator = DtmfGenerator::new(config).unwrap();
        generator.push_str("0123456789*#ABCD").unwrap();
        let mut x = vec![0i16; 333];
        let mut tail = vec![0i16; 16 * 960 + 2000];
        generator.fill(&mut tail);
        x.extend_from_slice(&tail);
        let mut detector = DtmfDetector::new(DtmfDetectorConfig::default()).unwrap();
        let events = run(&mut detector, &x, 97);
        let mut started = Vec::new();
        for e in &events {
            match *e {
                DtmfEvent::Started {
                    digit, start, at, ..
                } => {
                    let index = started.len() as u64;
                    let true_start = 333 + index * 960;
                    assert!(
                        start.abs_diff(true_start) <= 8,
                        "{digit:?} start {start} vs {true_start}"
                    );
                    assert!(at - true_start <= 280, "latency {}", at - true_start);
                    started.push(digit.to_char());
                }
                DtmfEvent::Ended { start, end, .. } => {
                    assert!(
                        (end - start).abs_diff(480) <= 12,
                        "duration {}",
                        end - start
                    );
                }
            }
        }
        assert_eq!(started.iter().collect::<String>(), "0123456789*#ABCD");
        assert_eq!(events.len(), 32);
    }
}
