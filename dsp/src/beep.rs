//! Voicemail-beep detection: a single sustained tone anywhere in a
//! frequency range (300-2500 Hz by default) lasting at least 80 ms, clean
//! or square-ish (2nd and 3rd harmonics), in noise, right after speech.
//!
//! # Method
//!
//! **Runs.** The signal is cut into 5 ms sub-blocks. A pure sinusoid
//! satisfies `x[n] + x[n-2] = 2·cos(ω)·x[n-1]` exactly, so for each
//! sub-block the detector fits that one-parameter predictor by least
//! squares over 10 ms: the fitted `cos(ω)` gives a rough frequency, and
//! the prediction error relative to the energy measures *purity* (0 for
//! one sinusoid, about 1 for white noise, 0.2-0.4 for a tone 10 dB above
//! white noise or with 2nd and 3rd harmonics at −15 dB). A sub-block is
//! *tonal* when it is loud enough, pure enough (≤ 0.65) and in range. A
//! candidate is a run of tonal sub-blocks whose frequency stays within
//! `max_deviation_percent` of the run's mean (plus the fit's own expected
//! spread, which grows with the impurity) and whose energy stays within
//! ±3 dB of the run's mean. Dual tones close together (US ringback
//! 440 + 480 Hz) beat: their envelope falls to zero every 25 ms, which
//! breaks the run. This stage is cheap and deliberately loose; the
//! decision is the final check's.
//!
//! **Final check.** The last 90 ms of samples are kept in a ring. When a
//! run has lasted `min_duration_samples` (80 ms), the run minus its first
//! sub-block (about 75 ms) is judged:
//!
//! 1. *Frequency*: from the spacing of zero crossings (with hysteresis;
//!    exact whatever the harmonics) and from the least-squares mean
//!    (better when noise adds crossings), each refined by the phase
//!    advance between 5 ms blocks; the one with more power wins, then the
//!    phase advance between the window's Hann-windowed quarters refines it
//!    to a fraction of a Hz.
//! 2. *Harmonics*: Goertzel filters over the window at exact multiples of
//!    that frequency. The 2nd may be up to −10 dB and the 3rd up to −9 dB
//!    (a clipped or square-ish beep has them near −15 dB, a square wave's
//!    3rd is −9.5 dB); the 4th-8th together must be below −20 dB. The fundamental with its 2nd and 3rd
//!    must hold `min_tone_share` (0.8) of the energy: white noise at 10 dB
//!    SNR leaves 0.9.
//! 3. *Noise*: the noise level is measured in Hann-windowed bins *between*
//!    the harmonics (0.25, 0.5, 0.75, 1.25 … × f), trimmed of the largest
//!    quarter. What the tone and its harmonics leave unexplained must be
//!    that noise (at most 4 × it plus 3 % of the energy): a second tone
//!    (DTMF with 8 dB twist, a ringback pair at unequal levels, a chord)
//!    or a tone smeared by vibrato is not.
//! 4. *Steady pitch*: the frequency measured between the quarters may
//!    vary only by what that noise explains (5 σ) plus 0.05 Hz: a
//!    generator holds its frequency exactly; voices, bowed and blown notes
//!    move.
//! 5. *Steady level*: first and last quarter within ±1 dB (plus what the
//!    noise explains): plucked and struck notes decay, sung ones swell.
//!
//! # Beep with harmonics or instrument note?
//!
//! Both have harmonics at exact integer multiples with a fixed phase
//! relation, so that cannot separate them. What does, in general: an
//! electronic beep has *few* harmonics (a clipped or square-ish
//! oscillator: 2nd and 3rd, the rest far down or filtered out), a level
//! and a frequency that are constant from the first 5 ms; an instrument or
//! a voice has a *series* of harmonics (bowed, blown and sung notes have
//! 2nd or 3rd above −10 dB or a 4th-8th above −20 dB), vibrato or
//! intonation, and an envelope that swells or decays. Each rule above
//! holds for beeps whatever their source, so none is tuned to the tests.
//!
//! What still fools it: a note is judged on 75 ms, so a *steady* note
//! whose harmonics happen to meet the beep rules is a beep physically and
//! is reported: an electronic organ or flute stop, a synthesiser, a sung
//! vowel held without vibrato; in particular any steady note above about
//! 1270 Hz (only its 2nd harmonic is left in band) or 1900 Hz (none left)
//! whose 2nd harmonic is below −10 dB, and a steady note near a vibrato's
//! turning point if its vibrato is shallow (under about 0.3 %). Inside a
//! chord, the other voices' partials fall in the noise bins and read as
//! noise, which widens the drift allowance: a note held through a chord
//! can pass with more vibrato than that. A single
//! continuous dial tone (425 Hz) is a beep as well. Very noisy beeps
//! (below about 8 dB SNR) fail the share and are missed.
//!
//! A beep is reported as [`BeepEvent::Started`] as soon as it has lasted
//! `min_duration_samples` (80 ms), less 10 ms of tolerance on the edges'
//! estimates: within 90 ms of its onset. When it stops,
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
    /// run mean, percent (plus 2 Hz and the estimate's expected spread).
    /// Default 3; the final check is what enforces a pure, steady tone.
    pub max_deviation_percent: f32,
    /// Share of the energy the final check must find in the tone and its
    /// 2nd and 3rd harmonics (0..1). Default 0.8 (white noise at 10 dB SNR
    /// leaves 0.9).
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
            min_tone_share: 0.8,
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
        /// Frequency found by the final check, Hz.
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
    /// The last `RING` samples, indexed by sample offset modulo `RING`: the
    /// final check judges a run on them.
    ring: [i16; RING],
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
    /// Frequency found by the final check.
    frequency_hz: f32,
    reported: Option<u64>,
}

/// Wraps a phase into ±π.
fn wrap(a: f32) -> f32 {
    (a + std::f32::consts::PI).rem_euclid(2.0 * std::f32::consts::PI) - std::f32::consts::PI
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
        if !(MIN_DURATION_FLOOR..=80_000).contains(&config.min_duration_samples) {
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
            ring: [0; RING],
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
            // A block never straddles the ring's wrap (RING is a multiple
            // of BLOCK), so this is one copy.
            let at = (self.samples % RING as u64) as usize;
            self.ring[at..at + take].copy_from_slice(now);
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
                    frequency_hz: 0.0,
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
            // The newest sub-block may hold the end of a short beep: judge
            // the run up to the one before.
            self.report(now, now - BLOCK as u64);
        }
    }

    /// Runs the final check on the current run, whose last sample is just
    /// before `end`, and reports it (or marks it as never reportable).
    fn report(&mut self, now: u64, end: u64) {
        let Some(run) = self.run else { return };
        let n = run.stat_blocks as f32;
        let mean_energy = run.energy_sum / n;
        let onset = run_onset(&run);
        // The window: the whole run but its first sub-block (the onset
        // estimate may be a few samples early), at most what the ring holds.
        let start = (onset + BLOCK as u64).max(end.saturating_sub(WINDOW as u64));
        let verdict = (end >= start + MIN_WINDOW as u64)
            .then(|| self.judge(start, end, run.freq_sum / n))
            .flatten();
        let Some(run) = &mut self.run else { return };
        let Some(frequency_hz) = verdict else {
            // Not one steady in-range tone (a vowel, a note, a chord): keep
            // the run so it is not re-detected, never report it.
            run.reported = Some(NEVER);
            return;
        };
        run.reported = Some(onset);
        run.frequency_hz = frequency_hz;
        self.events.push(BeepEvent::Started {
            onset,
            at: now,
            frequency_hz,
            level_dbm0: power_to_dbm0(mean_energy / BLOCK as f32),
        });
    }

    /// The final decision on the samples `start..end` (in the ring): the
    /// tone's frequency if they hold a beep. `rough_hz` is the run's mean
    /// least-squares frequency. The rules, and why each holds for beeps in
    /// general and fails for other sounds, are in the module docs.
    fn judge(&self, start: u64, end: u64, rough_hz: f32) -> Option<f32> {
        let len = (end - start) as usize;
        // The window as one contiguous run of samples (at most two copies
        // out of the ring), so the filters below index a plain slice.
        let mut buffer = [0.0f32; WINDOW];
        let x = &mut buffer[..len];
        let first = (start % RING as u64) as usize;
        let straight = (RING - first).min(len);
        let wrapped = len - straight;
        let (mut sum, mut sum_squares) = (0.0f32, 0.0f32);
        let source = self.ring[first..first + straight]
            .iter()
            .chain(&self.ring[..wrapped]);
        for (v, &s) in x.iter_mut().zip(source) {
            *v = f32::from(s);
            sum += *v;
            sum_squares += *v * *v;
        }
        let x = &*x;
        // 1. Frequency. The spacing of zero crossings is right to a few
        // percent whatever the harmonics; the least-squares frequency is
        // pulled towards the harmonics of a square-ish beep (by about 10 %
        // with 2nd and 3rd at −15 dB) but is the better start when noise
        // adds or hides crossings. Each start is refined from the phase
        // advance between 5 ms blocks (unambiguous within ±100 Hz), and the
        // one that finds more power is kept.
        let mean_square = sum_squares / len as f32;
        let mean = sum / len as f32;
        let crossing = crossing_frequency(x, mean, (mean_square - mean * mean).max(0.0).sqrt());
        // Both starts usually agree; then one refinement is enough.
        let second = Some(rough_hz).filter(|r| crossing.is_none_or(|c| (c - r).abs() > 10.0));
        let mut best = (0.0f32, 0.0f32);
        for guess in [crossing, second].into_iter().flatten() {
            let f = refine_by_blocks(x, guess);
            let p = goertzel(x, f).0;
            if p > best.1 {
                best = (f, p);
            }
        }
        // Cheap early exit (DTMF, chords, speech): even with both low
        // harmonics at their limit, this tone could not hold the share.
        if best.1 <= 0.0
            || best.1 * (1.0 + MAX_SECOND + MAX_THIRD) < self.config.min_tone_share * mean_square
        {
            return None;
        }
        // 2. Steadiness, from the tone's phase in each quarter of the
        // window (Hann-windowed, so a clean tone reads steady to a few
        // hundredths of a Hz): the three quarter-to-quarter phase advances
        // give the frequency three times, 1/4 window apart.
        let quarter = len / 4;
        let mut phases = [0.0f32; 4];
        let mut amplitudes = [0.0f32; 4];
        for (k, (p, a)) in phases.iter_mut().zip(&mut amplitudes).enumerate() {
            (*p, *a) = windowed_phase(&x[k * quarter..(k + 1) * quarter], best.0);
        }
        // Each phase is referred to its quarter's middle, so a tone
        // exactly at the estimate advances by ω·quarter; the excess gives
        // the frequency error.
        let nominal = 2.0 * std::f32::consts::PI * best.0 / 8000.0 * quarter as f32;
        let advances = [1, 2, 3].map(|k| wrap(phases[k] - phases[k - 1] - nominal));
        let mean_advance = advances.iter().sum::<f32>() / 3.0;
        let to_hz = 8000.0 / (2.0 * std::f32::consts::PI * quarter as f32);
        let f = best.0 + mean_advance * to_hz;
        let drift_hz = advances
            .iter()
            .map(|a| (a - mean_advance).abs())
            .fold(0.0f32, f32::max)
            * to_hz;
        if f < self.config.min_hz * 0.995 || f > self.config.max_hz * 1.005 {
            return None;
        }
        // 3. Power of the fundamental and of each harmonic below 3800 Hz
        // over the whole window, by Goertzel filters at exact multiples of
        // the refined frequency: 600 samples resolve 13 Hz, so white noise
        // at 10 dB SNR puts only about −35 dB of the tone's power in each.
        // Square-ish and clipped beeps: the 2nd harmonic allowed up to
        // −10 dB, the 3rd up to −9 dB (a square wave's); anything above,
        // and a 4th-8th harmonic together above −20 dB, is the rich
        // spectrum of a voice or an instrument. The tone
        // and those two harmonics must then hold `min_tone_share` of the
        // energy; the rest may be noise.
        let fundamental = goertzel(x, f).0;
        let harmonic = |h: usize| {
            if f * h as f32 >= 3800.0 {
                0.0
            } else {
                goertzel(x, f * h as f32).0
            }
        };
        let low = [harmonic(2), harmonic(3)];
        let tonal = fundamental + low[0] + low[1];
        if fundamental <= 0.0
            || low[0] > MAX_SECOND * fundamental
            || low[1] > MAX_THIRD * fundamental
            || tonal < self.config.min_tone_share * mean_square
        {
            return None;
        }
        let high: f32 = (4..=MAX_HARMONIC).map(harmonic).sum();
        if high > MAX_HIGH_HARMONICS * fundamental {
            return None;
        }
        // 4. The noise level. It comes from Hann-windowed bins between the
        // harmonics (at 0.25, 0.5, 0.75, 1.25, … times f, up to eight below
        // 3800 Hz), not from what the tone leaves unexplained: a vibrato
        // smears the tone out of its bin, and counting that as noise would
        // excuse the very drift it causes. Each bin is taken over each half
        // of the window, for twice the degrees of freedom at the same cost.
        // White noise of mean-square σ² gives |Y|² = 0.375·N·σ² in each,
        // exponentially distributed. The largest quarter are dropped (a
        // second tone, such as the other half of a DTMF pair, may sit in
        // one) and the mean of the rest is scaled by its expectation under
        // white noise.
        let mut bins = [0.0f32; 2 * NOISE_POINTS];
        let mut count = 0;
        let half = len / 2;
        for j in 0..3 * NOISE_POINTS {
            let m = (j / 3) as f32 + [0.25, 0.5, 0.75][j % 3];
            if f * m >= 3800.0 || count == bins.len() {
                break;
            }
            for h in 0..2 {
                bins[count] = windowed_phase(&x[h * half..(h + 1) * half], f * m).1;
                count += 1;
            }
        }
        let bins = &mut bins[..count];
        bins.sort_unstable_by(f32::total_cmp);
        let kept = (count - count / 4).max(1).min(count);
        let noise = if count == 0 {
            mean_square
        } else {
            bins[..kept].iter().sum::<f32>()
                / kept as f32
                / trimmed_exponential_mean(count, kept)
                / (0.375 * half as f32)
        }
        .max(mean_square * 1e-4);
        // What the tone and its harmonics leave must be that noise, not a
        // second tone (a DTMF pair with strong twist, a ringback pair at
        // unequal levels, a chord) or a smeared one (vibrato).
        if mean_square - tonal - high > MAX_EXCESS_NOISE * noise + 0.03 * mean_square {
            return None;
        }
        // 5. Steady pitch: the drift allowed is what that noise can explain
        // (5 σ of a phase difference between quarters) plus a small floor.
        // Each quarter's phase has variance 1/(N·SNR) for a plain DFT of N
        // samples, 1.5 times that with the Hann window; a difference has
        // twice that.
        let phase_sigma = (3.0 * noise / (fundamental * quarter as f32)).sqrt();
        if drift_hz > DRIFT_FLOOR_HZ + f * DRIFT_RELATIVE + DRIFT_SIGMAS * phase_sigma * to_hz {
            return None;
        }
        // 6. Steady level: a beep is switched on and held; plucked, struck
        // and sung notes swell or decay. Noise moves the log-power ratio of
        // two quarters by about twice the phase σ; 4 of those are allowed
        // on top.
        let change = (amplitudes[3] / amplitudes[0].max(1e-9)).ln().abs();
        if change > MAX_ENVELOPE_CHANGE.ln() + 8.0 * phase_sigma {
            return None;
        }
        Some(f)
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
            self.report(end, end.min(run_end));
            run = self.run.take().unwrap_or(run);
        }
        let Some(onset) = run.reported else { return };
        if onset == NEVER {
            return;
        }
        self.events.push(BeepEvent::Ended {
            onset,
            end,
            frequency_hz: run.frequency_hz,
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

/// Goertzel filter at `freq_hz` over `x`: the mean-square of that
/// sinusoid and the filter state `(s1, s2, coeff)` for the caller's phase.
fn goertzel(x: &[f32], freq_hz: f32) -> (f32, (f32, f32, f32)) {
    let coeff = 2.0 * (2.0 * std::f32::consts::PI * freq_hz / 8000.0).cos();
    let (mut s1, mut s2) = (0.0f32, 0.0f32);
    for &v in x {
        let s0 = v + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let n = x.len() as f32;
    let power = 2.0 * (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (n * n);
    (power, (s1, s2, coeff))
}

/// Phase of the sinusoid at `freq_hz` in `x`, referred to its middle, and its squared magnitude (arbitrary scale),
/// from a Hann-windowed DFT. The window matters: with a plain 75 ms-or-less
/// rectangle, a 400 Hz tone's own negative-frequency image and its
/// harmonics leak into the value (sidelobes near −30 dB) and wobble its
/// phase by enough to read as a 0.1-0.2 Hz drift; Hann sidelobes at those
/// distances are below −60 dB.
fn windowed_phase(x: &[f32], freq_hz: f32) -> (f32, f32) {
    let len = x.len();
    let omega = 2.0 * std::f32::consts::PI * freq_hz / 8000.0;
    let coeff = 2.0 * omega.cos();
    // The window's cosine by rotation, not a cos() per sample.
    let step = 2.0 * std::f32::consts::PI / len as f32;
    let (rot_s, rot_c) = step.sin_cos();
    let (mut wc, mut ws) = (1.0f32, 0.0f32);
    let (mut s1, mut s2) = (0.0f32, 0.0f32);
    for &v in x {
        let v = v * (0.5 - 0.5 * wc);
        (wc, ws) = (wc * rot_c - ws * rot_s, ws * rot_c + wc * rot_s);
        let s0 = v + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    // y = s1 − s2·e^{−jω} = e^{jω(N−1)}·Σ x[n]·e^{−jωn}; the DFT of a
    // symmetric window about its middle has the tone's phase there.
    let (sin_w, cos_w) = omega.sin_cos();
    let (zr, zi) = (s1 - s2 * cos_w, s2 * sin_w);
    let back = -omega * (len as f32 - 1.0) / 2.0;
    let (bs, bc) = back.sin_cos();
    let (yr, yi) = (zr * bc - zi * bs, zr * bs + zi * bc);
    (yi.atan2(yr), yr * yr + yi * yi)
}

/// `guess_hz` corrected by the mean phase advance, beyond the nominal's,
/// of the tone between consecutive 5 ms blocks of `x` (each block's DFT
/// value weighted by its power). Unambiguous within ±100 Hz.
fn refine_by_blocks(x: &[f32], guess_hz: f32) -> f32 {
    let omega = 2.0 * std::f32::consts::PI * guess_hz / 8000.0;
    let (sin_w, cos_w) = omega.sin_cos();
    let (mut pr, mut pi) = (0.0f32, 0.0f32);
    let mut previous: Option<(f32, f32)> = None;
    for block in x.chunks_exact(BLOCK) {
        let (_, (s1, s2, _)) = goertzel(block, guess_hz);
        // Block-local DFT value, phase referred to the block's end: only
        // differences between blocks are used.
        let v = (cos_w * s1 - s2, sin_w * s1);
        if let Some(u) = previous {
            pr += v.0 * u.0 + v.1 * u.1;
            pi += v.1 * u.0 - v.0 * u.1;
        }
        previous = Some(v);
    }
    let theta = wrap(pi.atan2(pr) - omega * BLOCK as f32);
    guess_hz + theta * 8000.0 / (2.0 * std::f32::consts::PI * BLOCK as f32)
}

/// Expected mean of the `kept` smallest of `n` independent unit-mean
/// exponential variables: the k-th smallest has mean Σ 1/i for i from
/// n − k + 1 to n.
fn trimmed_exponential_mean(n: usize, kept: usize) -> f32 {
    let mut order = 0.0f32;
    let mut sum = 0.0f32;
    for k in 1..=kept.min(n) {
        order += 1.0 / (n + 1 - k) as f32;
        sum += order;
    }
    if kept == 0 { 1.0 } else { sum / kept as f32 }
}

/// Frequency from the spacing of upward zero crossings in `x` (whose mean
/// and RMS about it are given). A crossing
/// counts only after the signal has been below −0.7 × its RMS (about half
/// a sine's amplitude), so harmonics that wrinkle the waveform near its
/// peaks, and noise well below the tone, add none. `None` with fewer than
/// three crossings.
fn crossing_frequency(x: &[f32], mean: f32, rms: f32) -> Option<f32> {
    let threshold = -0.7 * rms;
    let mut armed = false;
    let (mut first, mut last, mut count) = (0.0f32, 0.0f32, 0u32);
    let mut previous = x.first().map_or(0.0, |v| v - mean);
    for (n, v) in x.iter().enumerate().skip(1) {
        let v = v - mean;
        if v < threshold {
            armed = true;
        } else if armed && previous < 0.0 && v >= 0.0 {
            // Linear interpolation of the crossing between the samples.
            let t = (n - 1) as f32 + previous / (previous - v);
            if count == 0 {
                first = t;
            }
            last = t;
            count += 1;
            armed = false;
        }
        previous = v;
    }
    (count >= 3).then(|| (count - 1) as f32 * 8000.0 / (last - first))
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
/// gives 0.8-1.3, a tone 20 dB above white noise about 0.02, 10 dB above
/// with 2nd and 3rd harmonics at −15 dB up to about 0.4).
const MAX_IMPURITY: f32 = 0.65;
/// Marks a run that failed the final check.
const NEVER: u64 = u64::MAX;
/// Tolerance on the minimum duration, samples (10 ms): in noise the
/// energy-based onset and end of a run are each a few samples off, and a
/// beep faded in and out over 5 ms reads about 6 ms short; an 80 ms beep
/// must not miss an 80 ms minimum by that (a 60 ms tone is still far too
/// short).
const DURATION_SLACK: u64 = 80;
/// Blocks during which a run's statistics may restart.
const SETTLE_BLOCKS: u32 = 3;
/// Shortest `min_duration_samples` accepted (45 ms): the final check needs
/// a window of at least `MIN_WINDOW`.
const MIN_DURATION_FLOOR: u32 = 360;
/// Shortest window the final check judges (35 ms).
const MIN_WINDOW: usize = 280;
/// Longest window the final check judges (90 ms).
const WINDOW: usize = 720;
/// Samples kept for the final check: its window plus the sub-block that
/// may end a run (a multiple of `BLOCK`).
const RING: usize = WINDOW + 2 * BLOCK;
/// Largest ratio of the power left by the tone and its harmonics to the
/// noise level measured between them (plus 3 % of the power).
const MAX_EXCESS_NOISE: f32 = 4.0;
/// Standard deviations of noise allowed in the drift between quarters.
const DRIFT_SIGMAS: f32 = 5.0;
/// Most points between harmonics at which the final check measures the
/// noise level.
const NOISE_POINTS: usize = 8;
/// Highest harmonic the final check measures.
const MAX_HARMONIC: usize = 8;
/// Largest power of the 2nd harmonic relative to the fundamental
/// (−10 dB): an oscillator's asymmetry gives it, rarely strongly.
const MAX_SECOND: f32 = 0.1;
/// Largest power of the 3rd harmonic relative to the fundamental (−9 dB):
/// symmetric clipping gives it, up to a square wave's −9.5 dB.
const MAX_THIRD: f32 = 0.126;
/// Largest power of the 4th-8th harmonics together relative to the
/// fundamental (−20 dB).
const MAX_HIGH_HARMONICS: f32 = 0.01;
/// Drift allowed between the quarters of the final check on a clean tone:
/// a floor plus a share of the frequency.
const DRIFT_FLOOR_HZ: f32 = 0.05;
const DRIFT_RELATIVE: f32 = 0.00005;
/// Largest power ratio between the first and last quarters of the final
/// check on a clean tone (±1 dB).
const MAX_ENVELOPE_CHANGE: f32 = 1.26;

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
