//! Call-progress tone detection: classifies a country's dial, ringback,
//! busy, congestion, call-waiting and SIT tones from frequency and cadence.
//!
//! # Method
//!
//! The detector is built for one country. It gathers every frequency that
//! country's tones use (AM tones contribute their sidebands) into a bank of
//! Goertzel filters run over 10 ms blocks, with phase kept across blocks.
//!
//! 1. **Gating**: a block is *on* when it is louder than `min_level_dbm0`
//!    and at least half its energy sits at the frequencies of one of the
//!    country's sounds (white noise and silence are *off*). Two blocks in a
//!    row are needed to switch state, so a single block lost in a beat null
//!    does not split a tone.
//! 2. **Segments**: runs of on or off blocks; an on run is also split when
//!    its dominant frequency moves by more than 300 Hz (the SIT steps).
//! 3. **Sound**: for each on segment, 80 ms coherent windows (12.5 Hz
//!    resolution) give a power profile over the bank. That resolution
//!    separates AU 413 + 438 Hz (beating) from 425 Hz, JP/IN AM sidebands
//!    from a plain 400 Hz and US 440 + 480 from 350 + 440. The profile is
//!    matched to templates measured at construction by running the same
//!    analysis over each sound synthesised.
//! 4. **Cadence**: the recent segments are matched, from the newest back,
//!    against every tone's cadence at every phase, with ±15 % + 40 ms on
//!    durations and ±5 dB on level steps between bursts (AU congestion).
//!    A tone is *confirmed* when a whole cycle matches (a continuous tone:
//!    after 1 s and once it has outlasted every burst of the same sound),
//!    and *possible* while what has been heard so far fits it.
//!
//! A tone is reported when it is the only confirmed and the only possible
//! one: the first confident classification, with the sample offset of its
//! first matched segment and of the decision.

use super::{Country, ProgressTone, Sound, ToneSpec};
use crate::detector::{ConfigError, EventQueue, check_range};
use crate::goertzel::{GoertzelBank, dbm0_to_power};
use crate::osc::Osc;

/// Settings of a [`ProgressDetector`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProgressDetectorConfig {
    /// The country whose tones are expected.
    pub country: Country,
    /// Weakest tone component, dBm0. Default −40 (the table's quietest
    /// tones are −24 dBm0; 8 dB of loss still leaves 8 dB of margin).
    pub min_level_dbm0: f32,
    /// Cadence tolerance, percent of each segment (plus 40 ms). Default 15.
    pub duration_tolerance_percent: f32,
}

impl ProgressDetectorConfig {
    /// Defaults for `country`.
    pub fn new(country: Country) -> Self {
        Self {
            country,
            min_level_dbm0: -40.0,
            duration_tolerance_percent: 15.0,
        }
    }
}

/// What a [`ProgressDetector`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressEvent {
    /// A tone was classified with confidence.
    Detected {
        /// Which tone.
        tone: ProgressTone,
        /// Sample offset where its first matched segment started.
        start: u64,
        /// Sample offset of the decision.
        at: u64,
    },
}

/// Classifies call-progress tones of one country. See the module docs.
#[derive(Debug, Clone)]
pub struct ProgressDetector {
    config: ProgressDetectorConfig,
    min_power: f32,
    tolerance: f32,
    freqs: [f32; MAX_FREQS],
    freq_count: usize,
    group: [u8; MAX_FREQS],
    sounds: [Sound; MAX_SOUNDS],
    sound_count: usize,
    /// Which bank entries belong to each sound (bit mask).
    sound_mask: [u16; MAX_SOUNDS],
    templates: [[f32; MAX_FREQS]; MAX_SOUNDS],
    /// Index of each tone segment's sound in `sounds` (per tone, segment).
    tones: [&'static ToneSpec; 6],
    analysis: Analysis,
    fill: usize,
    samples: u64,
    // Gating and segmentation.
    state_on: bool,
    pending: u32,
    current: Current,
    history: [Observed; HISTORY],
    history_len: usize,
    reported: Option<ProgressTone>,
    events: EventQueue<ProgressEvent, 4>,
}

/// Goertzel analysis shared by the detector and its template builder.
#[derive(Debug, Clone)]
struct Analysis {
    bank: GoertzelBank<MAX_FREQS>,
    ring: [[(f32, f32); MAX_FREQS]; WINDOW_BLOCKS],
    blocks: u64,
    energy: f32,
}

impl Analysis {
    fn new(freqs: [f32; MAX_FREQS]) -> Self {
        Self {
            bank: GoertzelBank::new(freqs),
            ring: [[(0.0, 0.0); MAX_FREQS]; WINDOW_BLOCKS],
            blocks: 0,
            energy: 0.0,
        }
    }

    fn update(&mut self, samples: &[i16]) {
        self.bank.update(samples);
        for &x in samples {
            let x = f32::from(x);
            self.energy += x * x;
        }
    }

    /// Ends a block; returns its energy and per-filter block powers.
    fn finish_block(&mut self, powers: &mut [f32; MAX_FREQS]) -> f32 {
        let slot = (self.blocks % WINDOW_BLOCKS as u64) as usize;
        self.bank.finish_block(&mut self.ring[slot]);
        self.blocks += 1;
        let scale = 2.0 / (BLOCK * BLOCK) as f32;
        for (p, v) in powers.iter_mut().zip(&self.ring[slot]) {
            *p = (v.0 * v.0 + v.1 * v.1) * scale;
        }
        std::mem::take(&mut self.energy)
    }

    /// Adds to `profile` the power of the coherent sum of the last `n`
    /// blocks (n ≤ WINDOW_BLOCKS) per filter.
    fn add_window(&self, n: usize, profile: &mut [f32; MAX_FREQS]) {
        let n = n.min(WINDOW_BLOCKS).min(self.blocks as usize);
        for (i, p) in profile.iter_mut().enumerate() {
            let (mut re, mut im) = (0.0, 0.0);
            for age in 0..n {
                let slot = ((self.blocks - 1 - age as u64) % WINDOW_BLOCKS as u64) as usize;
                re += self.ring[slot][i].0;
                im += self.ring[slot][i].1;
            }
            *p += re * re + im * im;
        }
    }
}

/// The segment being observed.
#[derive(Debug, Clone, Copy)]
struct Current {
    start: u64,
    blocks: u32,
    group: u8,
    energy: f32,
    profile: [f32; MAX_FREQS],
    windows: u32,
}

/// A completed segment.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Observed {
    /// `None` for silence; `Some(None)` for an unrecognised sound.
    sound: Option<Option<u8>>,
    start: u64,
    samples: u64,
    level_db: f32,
}

/// How well what has been heard fits one tone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fit {
    /// Completed segments matched from the newest back (continuous tones:
    /// `CONTINUOUS_MATCH` once long enough).
    matched: usize,
    /// A whole cycle matched.
    confirmed: bool,
    /// Start of the oldest matched segment.
    start: u64,
}

impl ProgressDetector {
    /// Creates a detector for `config.country`.
    pub fn new(config: ProgressDetectorConfig) -> Result<Self, ConfigError> {
        check_range(config.min_level_dbm0, -60.0, 0.0, "min_level_dbm0")?;
        check_range(
            config.duration_tolerance_percent,
            1.0,
            50.0,
            "duration_tolerance_percent",
        )?;
        let tones = ProgressTone::ALL.map(|t| config.country.tone(t));
        // Distinct sounds and frequencies.
        let mut sounds = [Sound::Single(0.0); MAX_SOUNDS];
        let mut sound_count = 0;
        let mut freqs = [100.0f32; MAX_FREQS];
        let mut freq_count = 0;
        for spec in tones {
            for segment in spec.segments {
                let Some(sound) = segment.sound else { continue };
                if sounds[..sound_count].contains(&sound) {
                    continue;
                }
                if sound_count == MAX_SOUNDS {
                    return Err(ConfigError { field: "country" });
                }
                sounds[sound_count] = sound;
                sound_count += 1;
                let (components, n) = sound.components();
                for &f in &components[..n] {
                    if freqs[..freq_count].iter().any(|&g| (g - f).abs() < 1.0) {
                        continue;
                    }
                    if freq_count == MAX_FREQS {
                        return Err(ConfigError { field: "country" });
                    }
                    freqs[freq_count] = f;
                    freq_count += 1;
                }
            }
        }
        let mut sound_mask = [0u16; MAX_SOUNDS];
        for (s, mask) in sounds[..sound_count].iter().zip(&mut sound_mask) {
            let (components, n) = s.components();
            for &f in &components[..n] {
                if let Some(i) = freqs[..freq_count]
                    .iter()
                    .position(|&g| (g - f).abs() < 1.0)
                {
                    *mask |= 1 << i;
                }
            }
        }
        // Frequency groups: chains of frequencies closer than 300 Hz.
        let mut group = [0u8; MAX_FREQS];
        let mut order: [usize; MAX_FREQS] = std::array::from_fn(|i| i);
        order[..freq_count].sort_by(|&a, &b| freqs[a].total_cmp(&freqs[b]));
        let mut g = 0u8;
        for k in 0..freq_count {
            if k > 0 && freqs[order[k]] - freqs[order[k - 1]] > GROUP_SPAN_HZ {
                g += 1;
            }
            group[order[k]] = g;
        }
        let mut detector = Self {
            config,
            min_power: dbm0_to_power(config.min_level_dbm0),
            tolerance: config.duration_tolerance_percent / 100.0,
            freqs,
            freq_count,
            group,
            sounds,
            sound_count,
            sound_mask,
            templates: [[0.0; MAX_FREQS]; MAX_SOUNDS],
            tones,
            analysis: Analysis::new(freqs),
            fill: 0,
            samples: 0,
            state_on: false,
            pending: 0,
            current: Current::new(0, 0),
            history: [Observed {
                sound: None,
                start: 0,
                samples: 0,
                level_db: 0.0,
            }; HISTORY],
            history_len: 0,
            reported: None,
            events: EventQueue::new(),
        };
        for (s, &sound) in sounds[..sound_count].iter().enumerate() {
            detector.templates[s] = detector.template(sound);
        }
        Ok(detector)
    }

    /// The settings in use.
    pub fn config(&self) -> &ProgressDetectorConfig {
        &self.config
    }

    /// Feeds 8 kHz linear samples (any number).
    pub fn handle_samples(&mut self, samples: &[i16]) {
        let mut rest = samples;
        while !rest.is_empty() {
            let take = (BLOCK - self.fill).min(rest.len());
            self.analysis.update(&rest[..take]);
            self.fill += take;
            self.samples += take as u64;
            rest = &rest[take..];
            if self.fill == BLOCK {
                self.fill = 0;
                self.finish_block();
            }
        }
    }

    /// Next pending event.
    pub fn poll_event(&mut self) -> Option<ProgressEvent> {
        self.events.pop()
    }

    /// The tone last reported, if any.
    pub fn current_tone(&self) -> Option<ProgressTone> {
        self.reported
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
        let mut powers = [0.0f32; MAX_FREQS];
        let energy = self.analysis.finish_block(&mut powers);
        let block_start = self.samples - BLOCK as u64;
        let mean_square = energy / BLOCK as f32;
        // Tonality: best share of the block's energy in one sound's bins.
        let mut share = 0.0f32;
        for mask in &self.sound_mask[..self.sound_count] {
            let sum: f32 = (0..self.freq_count)
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| powers[i])
                .sum();
            share = share.max(sum / mean_square.max(1.0));
        }
        let on = mean_square >= self.min_power && share >= 0.5;
        let dominant = (0..self.freq_count)
            .max_by(|&a, &b| powers[a].total_cmp(&powers[b]))
            .map_or(0, |i| self.group[i]);
        let wants_change = on != self.state_on
            || (on && self.current.blocks > 0 && dominant != self.current.group);
        if wants_change {
            self.pending += 1;
        } else {
            self.pending = 0;
        }
        if self.pending >= SWITCH_BLOCKS {
            // The change began `pending - 1` blocks ago.
            let start = block_start - u64::from(self.pending - 1) * BLOCK as u64;
            self.close_segment(start);
            self.state_on = on;
            self.current = Current::new(start, dominant);
            // Re-count the blocks already in the new state.
            self.current.blocks = self.pending - 1;
            self.pending = 0;
        }
        self.current.blocks += 1;
        if self.state_on {
            self.current.energy += energy;
            if self.current.blocks as usize >= WINDOW_BLOCKS {
                self.analysis
                    .add_window(WINDOW_BLOCKS, &mut self.current.profile);
                self.current.windows += 1;
            }
        }
        self.decide();
    }

    fn close_segment(&mut self, end: u64) {
        let current = self.current;
        let samples = end.saturating_sub(current.start);
        if samples == 0 {
            return;
        }
        let sound = if self.state_on {
            let mut profile = current.profile;
            if current.windows == 0 {
                // Short burst: one coherent window over what there is,
                // skipping the blocks of the new state already counted.
                let n = (current.blocks as usize).max(1);
                self.analysis
                    .add_window(n + self.pending as usize - 1, &mut profile);
            }
            Some(self.classify(&profile))
        } else {
            None
        };
        let blocks = (samples / BLOCK as u64).max(1) as f32;
        let level_db = 10.0 * (current.energy / (blocks * BLOCK as f32)).max(1.0).log10();
        let observed = Observed {
            sound,
            start: current.start,
            samples,
            level_db,
        };
        if self.history_len == HISTORY {
            self.history.copy_within(1.., 0);
            self.history_len -= 1;
        }
        self.history[self.history_len] = observed;
        self.history_len += 1;
    }

    /// Nearest template, if near enough.
    fn classify(&self, profile: &[f32; MAX_FREQS]) -> Option<u8> {
        let total: f32 = profile[..self.freq_count].iter().sum();
        if total <= 0.0 {
            return None;
        }
        let mut best = None;
        let mut best_distance = MAX_DISTANCE;
        for s in 0..self.sound_count {
            let distance: f32 = (0..self.freq_count)
                .map(|i| (profile[i] / total - self.templates[s][i]).abs())
                .sum();
            if distance < best_distance {
                best_distance = distance;
                best = Some(s as u8);
            }
        }
        best
    }

    /// The analysis profile of `sound` synthesised for 800 ms.
    fn template(&self, sound: Sound) -> [f32; MAX_FREQS] {
        let mut analysis = Analysis::new(self.freqs);
        let mut oscillators = [Osc::new(0.0), Osc::new(0.0)];
        match sound {
            Sound::Single(f) => oscillators[0] = Osc::new(f64::from(f)),
            Sound::Dual(a, b) => oscillators = [Osc::new(f64::from(a)), Osc::new(f64::from(b))],
            Sound::Modulated { carrier, rate } => {
                oscillators = [Osc::new(f64::from(carrier)), Osc::new(f64::from(rate))];
            }
        }
        let mut profile = [0.0f32; MAX_FREQS];
        let mut block = [0i16; BLOCK];
        let mut powers = [0.0f32; MAX_FREQS];
        for b in 0..80 {
            for s in &mut block {
                let v = match sound {
                    Sound::Single(_) => oscillators[0].next_sample(),
                    Sound::Dual(..) => oscillators[0].next_sample() + oscillators[1].next_sample(),
                    Sound::Modulated { .. } => {
                        (1.0 + oscillators[1].next_sample()) * oscillators[0].next_sample()
                    }
                };
                *s = (v * 8000.0) as i16;
            }
            analysis.update(&block);
            analysis.finish_block(&mut powers);
            if b + 1 >= WINDOW_BLOCKS {
                analysis.add_window(WINDOW_BLOCKS, &mut profile);
            }
        }
        let total: f32 = profile[..self.freq_count].iter().sum();
        if total > 0.0 {
            for p in &mut profile {
                *p /= total;
            }
        }
        profile
    }

    fn decide(&mut self) {
        // The tone explaining the longest stretch of recent segments wins,
        // if it explains a whole cycle and strictly more than any other.
        let mut best: Option<(usize, Fit)> = None;
        let mut tie = false;
        for (t, spec) in self.tones.iter().enumerate() {
            let Some(fit) = self.fit(spec) else { continue };
            match best {
                Some((_, b)) if fit.matched < b.matched => {}
                Some((_, b)) if fit.matched == b.matched => tie = true,
                _ => {
                    best = Some((t, fit));
                    tie = false;
                }
            }
        }
        if let Some((t, fit)) = best
            && fit.confirmed
            && !tie
            && self.reported != Some(ProgressTone::ALL[t])
        {
            let tone = ProgressTone::ALL[t];
            self.reported = Some(tone);
            self.events.push(ProgressEvent::Detected {
                tone,
                start: fit.start,
                at: self.samples,
            });
        }
    }

    fn sound_index(&self, sound: Option<Sound>) -> Option<u8> {
        let sound = sound?;
        self.sounds[..self.sound_count]
            .iter()
            .position(|&s| s == sound)
            .map(|i| i as u8)
    }

    fn tolerance_samples(&self, ms: u32) -> u64 {
        let expected = f64::from(ms) * 8.0;
        (expected * f64::from(self.tolerance) + 320.0) as u64
    }

    /// How well what has been heard fits `spec`; `None` if the segment
    /// now sounding cannot belong to it.
    fn fit(&self, spec: &ToneSpec) -> Option<Fit> {
        let ongoing = u64::from(self.current.blocks) * BLOCK as u64;
        let ongoing_sound = if self.state_on && self.current.windows > 0 {
            Some(self.classify(&self.current.profile))
        } else {
            None
        };
        if spec.is_continuous() {
            let wanted = self.sound_index(spec.segments[0].sound);
            if !self.state_on || ongoing_sound.is_some_and(|found| found != wanted) {
                return None;
            }
            let confirmed =
                ongoing_sound.is_some() && ongoing >= self.continuous_after(spec.segments[0].sound);
            return Some(Fit {
                matched: if confirmed { CONTINUOUS_MATCH } else { 0 },
                confirmed,
                start: self.current.start,
            });
        }
        let len = spec.segments.len();
        let mut best: Option<Fit> = None;
        for phase in 0..len {
            // The segment now sounding must fit pattern position `phase`.
            let segment = spec.segments[phase];
            if segment.sound.is_some() != self.state_on
                || ongoing > u64::from(segment.ms) * 8 + self.tolerance_samples(segment.ms)
            {
                continue;
            }
            if let (Some(found), true) = (ongoing_sound, segment.sound.is_some())
                && found != self.sound_index(segment.sound)
            {
                continue;
            }
            // Walk back over completed segments while they fit.
            let mut fit = Fit {
                matched: 0,
                confirmed: false,
                start: self.current.start,
            };
            let mut later_on = None;
            for back in 0..self.history_len {
                let observed = self.history[self.history_len - 1 - back];
                let segment = spec.segments[(phase + len * HISTORY - 1 - back) % len];
                // Silence from the start of the stream is not part of any
                // tone, whatever its length.
                let lead_in = observed.start == 0 && observed.sound.is_none();
                if lead_in || !self.segment_matches(observed, segment, &mut later_on) {
                    break;
                }
                fit.matched += 1;
                fit.start = observed.start;
            }
            fit.confirmed = fit.matched >= len;
            if best.is_none_or(|b| fit.matched > b.matched) {
                best = Some(fit);
            }
        }
        best
    }

    fn segment_matches(
        &self,
        observed: Observed,
        segment: super::Segment,
        later_on: &mut Option<(f32, f32)>,
    ) -> bool {
        let expected = u64::from(segment.ms) * 8;
        if observed.samples.abs_diff(expected) > self.tolerance_samples(segment.ms) {
            return false;
        }
        match (observed.sound, segment.sound) {
            (None, None) => true,
            (Some(found), Some(sound)) => {
                if found.is_none() || found != self.sound_index(Some(sound)) {
                    return false;
                }
                if let Some((later_observed, later_expected)) = *later_on {
                    let step = later_observed - observed.level_db;
                    let expected_step = later_expected - segment.level_db;
                    if (step - expected_step).abs() > LEVEL_TOLERANCE_DB {
                        return false;
                    }
                }
                *later_on = Some((observed.level_db, segment.level_db));
                true
            }
            _ => false,
        }
    }

    /// How long a continuous tone of `sound` must last: 1 s, and longer
    /// than any burst of the same sound in the country's other tones.
    fn continuous_after(&self, sound: Option<Sound>) -> u64 {
        let mut after = 8000u64;
        for spec in &self.tones {
            for segment in spec.segments {
                if segment.ms > 0 && segment.sound == sound {
                    after = after
                        .max(u64::from(segment.ms) * 8 + self.tolerance_samples(segment.ms) + 800);
                }
            }
        }
        after
    }
}

impl Current {
    fn new(start: u64, group: u8) -> Self {
        Self {
            start,
            blocks: 0,
            group,
            energy: 0.0,
            profile: [0.0; MAX_FREQS],
            windows: 0,
        }
    }
}

/// Block length: 10 ms.
const BLOCK: usize = 80;
/// Coherent window for sound profiles: 80 ms (12.5 Hz resolution).
const WINDOW_BLOCKS: usize = 8;
/// Blocks in a new state before the state changes.
const SWITCH_BLOCKS: u32 = 2;
/// Filters in the bank (unused ones sit at 100 Hz).
const MAX_FREQS: usize = 16;
/// Distinct sounds per country.
const MAX_SOUNDS: usize = 8;
/// Completed segments remembered.
const HISTORY: usize = 12;
/// Frequencies closer than this belong to one sound group.
const GROUP_SPAN_HZ: f32 = 300.0;
/// Match count standing for a confirmed continuous tone.
const CONTINUOUS_MATCH: usize = 1000;
/// Largest L1 distance between a profile and its template.
const MAX_DISTANCE: f32 = 0.6;
/// Tolerance on level steps between bursts, dB.
const LEVEL_TOLERANCE_DB: f32 = 5.0;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tone::ProgressToneGenerator;

    fn detect(country: Country, tone: ProgressTone, seconds: usize) -> Vec<ProgressEvent> {
        let mut generator = ProgressToneGenerator::new(country, tone, 0.0).unwrap();
        let mut detector = ProgressDetector::new(ProgressDetectorConfig::new(country)).unwrap();
        let mut frame = [0i16; 160];
        let mut events = Vec::new();
        for _ in 0..seconds * 50 {
            generator.fill(&mut frame);
            detector.handle_samples(&frame);
            while let Some(e) = detector.poll_event() {
                events.push(e);
            }
        }
        events
    }

    #[test]
    fn uk_ringback_and_us_busy() {
        let events = detect(Country::Uk, ProgressTone::Ringback, 8);
        assert!(
            matches!(
                events.first(),
                Some(ProgressEvent::Detected {
                    tone: ProgressTone::Ringback,
                    ..
                })
            ),
            "{events:?}"
        );
        let events = detect(Country::Us, ProgressTone::Busy, 4);
        assert!(
            matches!(
                events.first(),
                Some(ProgressEvent::Detected {
                    tone: ProgressTone::Busy,
                    ..
                })
            ),
            "{events:?}"
        );
    }
}
