//! Voicemail-beep detection: a single sustained tone anywhere in a
//! frequency range (300-2500 Hz by default) lasting at least 80 ms.
//!
//! # Method
//!
//! The signal is cut into 5 ms sub-blocks. A pure sinusoid satisfies
//! `x[n] + x[n-2] = 2·cos(ω)·x[n-1]` exactly, so for each sub-block the
//! detector fits that one-parameter predictor by least squares: the fitted
//! `cos(ω)` gives the frequency, and the prediction error relative to the
//! block's energy measures *purity* (0 for one sinusoid, about 1 for white
//! noise, large for two tones far apart such as DTMF or speech with several
//! formants). A sub-block is *tonal* when it is loud enough, pure enough
//! and in range.
//!
//! A beep is a run of tonal sub-blocks whose frequency stays within
//! `max_deviation_percent` of the run's mean and whose energy stays within
//! ±3 dB of the run's mean. Dual tones close together (US ringback
//! 440 + 480 Hz) look pure over 5 ms but beat: their envelope falls to zero
//! every 25 ms, which breaks the run. Finally, before reporting, a Goertzel
//! filter tuned to the run's measured frequency must find at least
//! `min_tone_share` of the energy of the run's last 60 ms in that single
//! frequency, with the same phase-derived frequency in each 20 ms third of
//! that window (no drift or vibrato), and its 2nd and 3rd harmonics at
//! least 20 dB down. This rejects sustained vowels and musical notes, whose
//! pitch moves and whose energy is spread over harmonics.
//!
//! A beep is reported as [`BeepEvent::Started`] as soon as it has lasted
//! `min_duration_samples` (80 ms): within 90 ms of its onset. When it stops,
//! [`BeepEvent::Ended`] gives its duration. Onset and end are refined to the
//! sample from the energy of the edge sub-blocks.

use crate::detector::{ConfigError, EventQueue, check_range};
use crate::goertzel::{dbm0_to_power, power_to_dbm0};

/// Limits of a [`BeepDetector`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BeepDetectorConfig {
    /// Lowest beep frequency, Hz. Default 300.
    pub min_hz: f32,
    /// Highest beep frequency, Hz. Default 2500.
    pub max_hz: f32,
    /// Shortest beep, in samples. Default 640 (80 ms).
    pub min_duration_samples: u32,
    /// Weakest beep, dBm0. Default −40.
    pub min_level_dbm0: f32,
    /// Largest deviation of a 5 ms sub-block's frequency estimate from the
    /// run mean, percent (plus 2 Hz). Default 3: wide enough for the
    /// estimate's noise at 20 dB SNR; the final single-frequency check is
    /// what enforces a pure, steady tone.
    pub max_deviation_percent: f32,
    /// Share of energy the final single-frequency check must find (0..1).
    /// Default 0.95 (white noise at 15 dB SNR leaves 0.97).
    pub min_tone_share: f32,
}

impl Default for BeepDetectorConfig {
    fn default() -> Self {
        Self {
            min_hz: 300.0,
            max_hz: 2500.0,
            min_duration_samples: 640,
            min_level_dbm0: -40.0,
            max_deviation_percent: 3.0,
            min_tone_share: 0.95,
        }
    }
}

/// What a [`BeepDetector`] reports. Times are sample offsets from the first
/// sample fed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BeepEvent {
    /// A beep has lasted the minimum duration.
    Started {
        /// Estimated first sample of the beep.
        onset: u64,
        /// Sample offset at which the decision was taken.
        at: u64,
        /// Measured frequency, Hz.
        frequency_hz: f32,
        /// Measured level, dBm0.
        level_dbm0: f32,
    },
    /// The beep reported by the last `Started` stopped.
    Ended {
        /// Estimated first sample of the beep.
        onset: u64,
        /// Estimated first sample after the beep.
        end: u64,
        /// Mean frequency over the whole beep, Hz.
        frequency_hz: f32,
    },
}

impl BeepEvent {
    /// Duration in samples, for `Ended`.
    pub fn duration(&self) -> Option<u64> {
        match *self {
            Self::Started { .. } => None,
            Self::Ended { onset, end, .. } => Some(end.saturating_sub(onset)),
        }
    }
}

/// Detects voicemail beeps in 8 kHz linear audio. See the module docs.
#[derive(Debug, Clone)]
pub struct BeepDetector {
    config: BeepDetectorConfig,
    min_power: f32,
    // History across blocks.
    x1: f32,
    x2: f32,
    // Current sub-block sums.
    fill: usize,
    sum_a: f32,
    sum_b: f32,
    sum_c: f32,
    /// Sums of the previous sub-block.
    prev_sums: (f32, f32, f32),
    samples: u64,
    /// Energy of the sub-block before the current run (onset refinement).
    previous_energy: f32,
    run: Option<Run>,
    events: EventQueue<BeepEvent, 8>,
}

#[derive(Debug, Clone, Copy)]
struct Run {
    first_block_start: u64,
    /// Sub-blocks in the run.
    blocks: u32,
    /// Sub-blocks counted in the frequency and energy sums.
    stat_blocks: u32,
    freq_sum: f32,
    energy_sum: f32,
    first_energy: f32,
    before_energy: f32,
    last_energy: f32,
    /// Goertzel check tuned after the first blocks of the run.
    check: Option<Check>,
    reported: Option<u64>,
}

/// The final single-frequency check: block-local DFT values at the run's
/// early frequency estimate, kept for the last `CHECK_BLOCKS` sub-blocks.
#[derive(Debug, Clone, Copy)]
struct Check {
    omega: f32,
    coeff: f32,
    cos: f32,
    sin: f32,
    s1: f32,
    s2: f32,
    values: [(f32, f32); CHECK_BLOCKS],
    energies: [f32; CHECK_BLOCKS],
    blocks: usize,
    /// Goertzel filters at the second and third harmonic over the whole
    /// check (coefficient, s1, s2); a harmonic at or above 3800 Hz is off.
    harmonics: [(f32, f32, f32); 2],
    harmonic_len: u32,
}

impl Check {
    fn new(freq_hz: f32) -> Self {
        let omega = 2.0 * std::f32::consts::PI * freq_hz / 8000.0;
        Self {
            omega,
            coeff: 2.0 * omega.cos(),
            cos: omega.cos(),
            sin: omega.sin(),
            s1: 0.0,
            s2: 0.0,
            values: [(0.0, 0.0); CHECK_BLOCKS],
            energies: [0.0; CHECK_BLOCKS],
            blocks: 0,
            harmonics: [2.0f32, 3.0].map(|h| {
                let w = omega * h;
                let coeff = if freq_hz * h < 3800.0 {
                    2.0 * w.cos()
                } else {
                    f32::NAN
                };
                (coeff, 0.0, 0.0)
            }),
            harmonic_len: 0,
        }
    }

    fn update(&mut self, samples: &[i16]) {
        let (mut s1, mut s2) = (self.s1, self.s2);
        for &x in samples {
            let s0 = f32::from(x) + self.coeff * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        self.s1 = s1;
        self.s2 = s2;
        for h in &mut self.harmonics {
            if h.0.is_nan() {
                continue;
            }
            let (mut s1, mut s2) = (h.1, h.2);
            for &x in samples {
                let s0 = f32::from(x) + h.0 * s1 - s2;
                s2 = s1;
                s1 = s0;
            }
            h.1 = s1;
            h.2 = s2;
        }
        self.harmonic_len += samples.len() as u32;
    }

    /// Mean-square of the second and third harmonics over the whole check.
    fn harmonic_power(&self) -> f32 {
        let n = self.harmonic_len.max(1) as f32;
        self.harmonics
            .iter()
            .filter(|h| !h.0.is_nan())
            .map(|&(coeff, s1, s2)| 2.0 * (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (n * n))
            .sum()
    }

    fn finish_block(&mut self, energy: f32) {
        // Block-local DFT value (phase referred to the block's end is fine:
        // only differences between blocks are used).
        let value = (self.cos * self.s1 - self.s2, self.sin * self.s1);
        let slot = self.blocks % CHECK_BLOCKS;
        self.values[slot] = value;
        self.energies[slot] = energy;
        self.blocks += 1;
        self.s1 = 0.0;
        self.s2 = 0.0;
    }

    /// Phase advance per block, beyond the nominal's, over checked blocks
    /// `from..to` (relative to `first`), in radians within ±π.
    fn advance(&self, first: usize, from: usize, to: usize) -> f32 {
        let at = |k: usize| self.values[(first + k) % CHECK_BLOCKS];
        let (mut pr, mut pi) = (0.0f32, 0.0f32);
        for k in from + 1..to {
            let (a, b) = (at(k), at(k - 1));
            pr += a.0 * b.0 + a.1 * b.1;
            pi += a.1 * b.0 - a.0 * b.1;
        }
        let theta = pi.atan2(pr) - self.omega * BLOCK as f32;
        (theta + std::f32::consts::PI).rem_euclid(2.0 * std::f32::consts::PI) - std::f32::consts::PI
    }

    /// Share of the checked blocks' energy found in one sinusoid, after
    /// refining its frequency from the phase advance between blocks, and
    /// that frequency. The share is 0 when the tone drifts, has harmonics,
    /// or lies more than ~16 Hz from the frequency the check was tuned to.
    fn tone_share(&self) -> (f32, f32) {
        let count = self.blocks.min(CHECK_BLOCKS);
        if count < 6 {
            return (0.0, 0.0);
        }
        let first = self.blocks - count;
        let at = |k: usize| self.values[(first + k) % CHECK_BLOCKS];
        // Phase advance per block beyond the nominal's, over the whole
        // window and over each third: a steady electronic tone has the same
        // frequency in all three, a sung or bowed note (vibrato) or a voiced
        // vowel (intonation) drifts or curves.
        let theta = self.advance(first, 0, count);
        let freq_hz = (self.omega + theta / BLOCK as f32) * 8000.0 / (2.0 * std::f32::consts::PI);
        let advance = self.omega * BLOCK as f32 + theta;
        // Coherent sum of one third of the blocks with the measured advance
        // removed: its phase is steady for a steady tone.
        let third = count / 3;
        let phase_of = |from: usize, to: usize| {
            let (mut yr, mut yi) = (0.0f32, 0.0f32);
            for k in from..to {
                let (s, c) = (-(advance * k as f32)).sin_cos();
                let v = at(k);
                yr += v.0 * c - v.1 * s;
                yi += v.0 * s + v.1 * c;
            }
            yi.atan2(yr)
        };
        let wrap = |a: f32| {
            (a + std::f32::consts::PI).rem_euclid(2.0 * std::f32::consts::PI) - std::f32::consts::PI
        };
        let (p1, p2, p3) = (
            phase_of(0, third),
            phase_of(third, 2 * third),
            phase_of(2 * third, 3 * third),
        );
        // Change of frequency from the first to the last two thirds.
        let bend = wrap(wrap(p3 - p2) - wrap(p2 - p1));
        let drift_hz = bend.abs() * 8000.0 / (2.0 * std::f32::consts::PI * (third * BLOCK) as f32);
        if drift_hz > freq_hz * MAX_DRIFT + 1.0 {
            return (0.0, freq_hz);
        }
        // Refine the advance with the phase slope across the thirds, then
        // sum all blocks coherently with it removed.
        let theta = theta + wrap(p3 - p1) / (2 * third) as f32;
        let freq_hz = (self.omega + theta / BLOCK as f32) * 8000.0 / (2.0 * std::f32::consts::PI);
        if theta.abs() > MAX_CHECK_OFFSET {
            return (0.0, freq_hz);
        }
        let advance = self.omega * BLOCK as f32 + theta;
        let (mut yr, mut yi) = (0.0f32, 0.0f32);
        for k in 0..count {
            let (s, c) = (-(advance * k as f32)).sin_cos();
            let v = at(k);
            yr += v.0 * c - v.1 * s;
            yi += v.0 * s + v.1 * c;
        }
        // Loss of a block-length DFT that is off by theta/M per sample.
        let half = theta / 2.0;
        let gain = if half.abs() < 1e-4 {
            1.0
        } else {
            (half).sin() / (BLOCK as f32 * (half / BLOCK as f32).sin())
        };
        let len = (count * BLOCK) as f32;
        let energy: f32 = (0..count)
            .map(|k| self.energies[(first + k) % CHECK_BLOCKS])
            .sum();
        if energy <= 0.0 {
            return (0.0, freq_hz);
        }
        let tone = 2.0 * (yr * yr + yi * yi) / (len * len) / (gain * gain);
        // Electronic beeps are sines; voices and instruments have
        // harmonics.
        if self.harmonic_power() > MAX_HARMONICS * tone {
            return (0.0, freq_hz);
        }
        (tone / (energy / len), freq_hz)
    }
}

impl BeepDetector {
    /// Creates a detector; fails if a limit is out of range.
    pub fn new(config: BeepDetectorConfig) -> Result<Self, ConfigError> {
        check_range(config.min_hz, 100.0, 3800.0, "min_hz")?;
        check_range(config.max_hz, config.min_hz, 3800.0, "max_hz")?;
        check_range(config.min_level_dbm0, -60.0, 0.0, "min_level_dbm0")?;
        check_range(
            config.max_deviation_percent,
            0.1,
            10.0,
            "max_deviation_percent",
        )?;
        check_range(config.min_tone_share, 0.1, 1.0, "min_tone_share")?;
        if !(RUN_CHECK_AFTER * BLOCK as u32 + 160..=80_000).contains(&config.min_duration_samples) {
            return Err(ConfigError {
                field: "min_duration_samples",
            });
        }
        Ok(Self {
            config,
            min_power: dbm0_to_power(config.min_level_dbm0),
            x1: 0.0,
            x2: 0.0,
            fill: 0,
            sum_a: 0.0,
            sum_b: 0.0,
            sum_c: 0.0,
            prev_sums: (0.0, 0.0, 0.0),
            samples: 0,
            previous_energy: 0.0,
            run: None,
            events: EventQueue::new(),
        })
    }

    /// The limits in use.
    pub fn config(&self) -> &BeepDetectorConfig {
        &self.config
    }

    /// Feeds 8 kHz linear samples (any number).
    pub fn handle_samples(&mut self, samples: &[i16]) {
        let mut rest = samples;
        while !rest.is_empty() {
            let take = (BLOCK - self.fill).min(rest.len());
            let (now, later) = rest.split_at(take);
            let (mut x1, mut x2) = (self.x1, self.x2);
            let (mut a, mut b, mut c) = (self.sum_a, self.sum_b, self.sum_c);
            for &x in now {
                let x0 = f32::from(x);
                let outer = x0 + x2;
                a += outer * outer;
                b += x1 * outer;
                c += x1 * x1;
                x2 = x1;
                x1 = x0;
            }
            if let Some(check) = self.run.as_mut().and_then(|r| r.check.as_mut()) {
                check.update(now);
            }
            (self.x1, self.x2) = (x1, x2);
            (self.sum_a, self.sum_b, self.sum_c) = (a, b, c);
            self.fill += take;
            self.samples += take as u64;
            rest = later;
            if self.fill == BLOCK {
                self.finish_block();
            }
        }
    }

    /// Next pending event, oldest first.
    pub fn poll_event(&mut self) -> Option<BeepEvent> {
        self.events.pop()
    }

    /// True while a reported beep is still sounding.
    pub fn is_beep_present(&self) -> bool {
        self.run.is_some_and(|r| r.reported.is_some())
    }

    /// Number of samples fed so far.
    pub fn samples_seen(&self) -> u64 {
        self.samples
    }

    /// Forgets all state, as if newly created.
    pub fn reset(&mut self) {
        if let Ok(fresh) = Self::new(self.config) {
            *self = fresh;
        }
    }

    fn finish_block(&mut self) {
        let (a, b, c) = (self.sum_a, self.sum_b, self.sum_c);
        self.fill = 0;
        self.sum_a = 0.0;
        self.sum_b = 0.0;
        self.sum_c = 0.0;
        let block_start = self.samples - BLOCK as u64;
        let energy = c; // Σ x[n-1]² over the block: its energy, one sample late.
        let mean_square = energy / BLOCK as f32;
        // The frequency fit uses this block and the previous one (10 ms).
        let (wa, wb, wc) = (
            a + self.prev_sums.0,
            b + self.prev_sums.1,
            c + self.prev_sums.2,
        );
        self.prev_sums = (a, b, c);
        let (cos_w, purity) = fit_sinusoid(wa, wb, wc);
        // Expected spread of the 10 ms frequency estimate given the fit's
        // prediction error: σ(cos ω) ≈ sqrt(purity / 2N), N = 80.
        let spread = 3.0 * (purity / 160.0).sqrt() * 8000.0
            / (2.0 * std::f32::consts::PI * (1.0 - cos_w * cos_w).sqrt().max(0.05));
        let raw_freq = cos_to_hz(cos_w);
        let tonal = mean_square >= self.min_power
            && purity <= MAX_IMPURITY
            && raw_freq >= self.config.min_hz * 0.98 - spread
            && raw_freq <= self.config.max_hz * 1.02 + spread;
        let freq = if tonal { raw_freq } else { 0.0 };

        let deviation = self.config.max_deviation_percent / 100.0;
        let continues = match &self.run {
            // While a run settles, its first sub-blocks may hold the onset
            // only partly (and the 10 ms fit straddles it): any tonal block
            // continues it, and its statistics restart from that block.
            Some(run) if tonal && run.blocks < SETTLE_BLOCKS => true,
            Some(run) if tonal => {
                let n = run.stat_blocks as f32;
                let mean_freq = run.freq_sum / n;
                let mean_energy = run.energy_sum / n;
                (freq - mean_freq).abs() <= mean_freq * deviation + 2.0 + spread
                    && energy <= mean_energy * 2.0
                    && energy >= mean_energy * 0.5
            }
            _ => false,
        };
        if continues {
            if let Some(check) = self.run.as_mut().and_then(|r| r.check.as_mut()) {
                check.finish_block(energy);
            }
            if let Some(run) = &mut self.run {
                if run.blocks < SETTLE_BLOCKS {
                    run.stat_blocks = 0;
                    run.freq_sum = 0.0;
                    run.energy_sum = 0.0;
                }
                run.blocks += 1;
                run.stat_blocks += 1;
                run.freq_sum += freq;
                run.energy_sum += energy;
                run.last_energy = energy;
                if run.blocks == RUN_CHECK_AFTER {
                    let mean = run.freq_sum / run.stat_blocks as f32;
                    run.check = Some(Check::new(mean));
                }
            }
            self.maybe_report();
        } else {
            if let Some(run) = self.run.take() {
                self.close_run(run, energy);
            }
            if tonal {
                self.run = Some(Run {
                    first_block_start: block_start,
                    blocks: 1,
                    stat_blocks: 1,
                    freq_sum: freq,
                    energy_sum: energy,
                    first_energy: energy,
                    before_energy: self.previous_energy,
                    last_energy: energy,
                    check: None,
                    reported: None,
                });
            }
        }
        self.previous_energy = energy;
    }

    fn maybe_report(&mut self) {
        let now = self.samples;
        let Some(run) = self.run else { return };
        if run.reported.is_some() {
            return;
        }
        let onset = run_onset(&run);
        if now.saturating_sub(onset) >= u64::from(self.config.min_duration_samples) {
            self.report(now);
        }
    }

    /// Runs the single-frequency check on the current run and reports it
    /// (or marks it as never reportable).
    fn report(&mut self, now: u64) {
        let (min_hz, max_hz, min_share) = (
            self.config.min_hz,
            self.config.max_hz,
            self.config.min_tone_share,
        );
        let Some(run) = &mut self.run else { return };
        let Some(check) = run.check else { return };
        let n = run.stat_blocks as f32;
        let mean_energy = run.energy_sum / n;
        let (share, frequency_hz) = check.tone_share();
        if share < min_share || frequency_hz < min_hz * 0.995 || frequency_hz > max_hz * 1.005 {
            // Not one pure in-range frequency (a vowel, a note with
            // harmonics): keep the run so it is not re-detected, never
            // report it.
            run.reported = Some(NEVER);
            return;
        }
        let onset = run_onset(run);
        run.reported = Some(onset);
        self.events.push(BeepEvent::Started {
            onset,
            at: now,
            frequency_hz,
            level_dbm0: power_to_dbm0(mean_energy / BLOCK as f32),
        });
    }

    /// A run stopped; `next_energy` is the energy of the block that broke it.
    fn close_run(&mut self, run: Run, next_energy: f32) {
        let n = run.stat_blocks as f32;
        let mean_energy = run.energy_sum / n;
        let run_end = run.first_block_start + u64::from(run.blocks) * BLOCK as u64;
        let covered = ((run.last_energy / mean_energy).clamp(0.0, 1.0)
            + (next_energy / mean_energy).clamp(0.0, 1.0))
            * BLOCK as f32;
        let end = run_end - BLOCK as u64 + covered.round() as u64;
        let mut run = run;
        if run.reported.is_none()
            && end.saturating_sub(run_onset(&run)) + DURATION_SLACK
                >= u64::from(self.config.min_duration_samples)
        {
            // Long enough once the partial last sub-block is counted.
            self.run = Some(run);
            self.report(end);
            run = self.run.take().unwrap_or(run);
        }
        let Some(onset) = run.reported else { return };
        if onset == NEVER {
            return;
        }
        self.events.push(BeepEvent::Ended {
            onset,
            end,
            frequency_hz: run.freq_sum / n,
        });
    }
}

/// Estimated onset of a run.
fn run_onset(run: &Run) -> u64 {
    let reference = run.energy_sum / run.stat_blocks as f32;
    edge_onset(
        run.first_block_start,
        run.before_energy,
        run.first_energy,
        reference,
    )
}

/// Least-squares fit of `x[n] + x[n-2] = 2·cos(ω)·x[n-1]` from the sums
/// `a = Σ(x[n]+x[n-2])²`, `b = Σ x[n-1]·(x[n]+x[n-2])`, `c = Σ x[n-1]²`
/// over a stretch of signal. Returns `cos(ω)` and the prediction error relative to
/// the energy (0 for a pure tone, about 1 for white noise).
///
/// White noise inflates `c` but not `b`, which would bias `cos(ω)` towards 0
/// (a 300 Hz tone at 20 dB SNR would read 350 Hz); the noise power is
/// estimated from the prediction error and removed from `c`, twice.
fn fit_sinusoid(a: f32, b: f32, c: f32) -> (f32, f32) {
    if c <= 0.0 {
        return (0.0, 1.0);
    }
    let residual = |k: f32| (a - 4.0 * k * b + 4.0 * k * k * c).max(0.0);
    let mut k = b / (2.0 * c);
    for _ in 0..2 {
        let noise = residual(k) / (2.0 + 4.0 * k * k);
        let corrected = (c - noise).max(0.5 * c);
        k = b / (2.0 * corrected);
    }
    (k, residual(k) / (2.0 * c))
}

/// Onset from the energy of the block before the run and of its first block.
fn edge_onset(first_block_start: u64, before: f32, first: f32, reference: f32) -> u64 {
    let covered =
        ((before / reference).clamp(0.0, 1.0) + (first / reference).clamp(0.0, 1.0)) * BLOCK as f32;
    (first_block_start + BLOCK as u64).saturating_sub(covered.round() as u64)
}

fn cos_to_hz(cos_w: f32) -> f32 {
    cos_w.clamp(-1.0, 1.0).acos() * 8000.0 / (2.0 * std::f32::consts::PI)
}

/// Sub-block length: 5 ms.
const BLOCK: usize = 40;
/// Largest normalised prediction error of a tonal sub-block (white noise
/// gives about 1, a tone 20 dB above white noise about 0.02).
const MAX_IMPURITY: f32 = 0.1;
/// Marks a run that failed the final check.
const NEVER: u64 = u64::MAX;
/// Tolerance on the minimum duration, samples (1 ms).
const DURATION_SLACK: u64 = 8;
/// Blocks after which the run's frequency is frozen for the final check.
const RUN_CHECK_AFTER: u32 = 5;
/// Blocks during which a run's statistics may restart.
const SETTLE_BLOCKS: u32 = 3;
/// Sub-blocks the final check looks at (60 ms).
const CHECK_BLOCKS: usize = 12;
/// Largest power of the 2nd + 3rd harmonics relative to the tone (−20 dB).
const MAX_HARMONICS: f32 = 0.01;
/// Largest phase advance per sub-block between the tone and the check's
/// tuning (0.5 rad: about 16 Hz), beyond which the check is not trusted.
const MAX_CHECK_OFFSET: f32 = 0.5;
/// Largest relative frequency difference between the thirds of the final
/// check (plus 1 Hz).
const MAX_DRIFT: f32 = 0.0005;

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(f: f64, dbm0: f32, len: usize) -> Vec<i16> {
        let a = f64::from(crate::goertzel::dbm0_to_amplitude(dbm0));
        (0..len)
            .map(|n| {
                (a * (2.0 * std::f64::consts::PI * f * n as f64 / 8000.0).sin()).round() as i16
            })
            .collect()
    }

    #[test]
    fn reports_onset_frequency_and_duration() {
        let mut x = vec![0i16; 1234];
        x.extend(tone(1000.0, -15.0, 2000));
        x.extend(vec![0i16; 800]);
        let mut detector = BeepDetector::new(BeepDetectorConfig::default()).unwrap();
        let mut events = Vec::new();
        for chunk in x.chunks(160) {
            detector.handle_samples(chunk);
            while let Some(e) = detector.poll_event() {
                events.push(e);
            }
        }
        assert_eq!(events.len(), 2, "{events:?}");
        match events[0] {
            BeepEvent::Started {
                onset,
                at,
                frequency_hz,
                level_dbm0,
            } => {
                assert!(onset.abs_diff(1234) <= 8, "onset {onset}");
                assert!(at - 1234 <= 800, "latency {}", at - 1234);
                assert!((frequency_hz - 1000.0).abs() < 5.0, "{frequency_hz}");
                assert!((level_dbm0 + 15.0).abs() < 0.5, "{level_dbm0}");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            events[1].duration().unwrap().abs_diff(2000) <= 16,
            "{:?}",
            events[1]
        );
    }

    #[test]
    fn ringback_pair_is_not_a_beep() {
        let a = tone(440.0, -19.0, 16000);
        let b = tone(480.0, -19.0, 16000);
        let x: Vec<i16> = a
            .iter()
            .zip(&b)
            .map(|(p, q)| p.saturating_add(*q))
            .collect();
        let mut detector = BeepDetector::new(BeepDetectorConfig::default()).unwrap();
        detector.handle_samples(&x);
        assert_eq!(detector.poll_event(), None);
    }
}
