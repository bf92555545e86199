//! Call-progress tone detection: classifies dial, ringback, busy,
//! congestion, call-waiting and SIT tones of one or several countries from
//! frequency and cadence, in one pass.
//!
//! # Method
//!
//! The detector is built for a set of countries (one, several or all of
//! [`Country::ALL`]). Every cadence of every tone of those countries (the
//! table's and the [`Country::alternatives`] published sources give) is a
//! *candidate*; the distinct sounds of all candidates share one bank of
//! Goertzel filters run over 10 ms blocks, with phase kept across blocks.
//! The bank is a grid, not the nominal frequencies: 12.5 Hz steps over
//! 337.5-500 Hz and 600-637.5 Hz, 40 Hz steps around the SIT frequencies,
//! limited to the filters near the selected countries' sounds (at most 29
//! filters for all ten countries), so a tone off its nominal frequency
//! still falls on a filter.
//!
//! 1. **Gating**: a block is *on* when it is louder than `min_level_dbm0`
//!    and at least 70 % of its energy sits near the components of one of
//!    the sounds (each component within the frequency tolerance). White
//!    noise, DTMF and silence are *off*. Two blocks in a row start a burst
//!    and three end it, so a block or two lost in a beat null or an AM
//!    trough does not split a tone.
//! 2. **Segments**: runs of on or off blocks; an on run is also split when
//!    its dominant frequency jumps across a gap of more than 200 Hz in the
//!    bank (the SIT steps).
//! 3. **Sound**: for each on segment, 80 ms coherent windows (12.5 Hz
//!    resolution; 40 ms for bursts shorter than 80 ms) give a power profile
//!    over the bank. It is compared with templates computed from the
//!    window's Dirichlet kernel for every sound scaled by −3 … +3 % in
//!    0.5 % steps (the frequency tolerance; dual tones also with either
//!    component 6 dB down), and the segment *may be* every
//!    sound whose best template is near enough and nearly as near as the
//!    best one. So 412 Hz may be 400 Hz (+3 %) or 425 Hz (−3 %), but not the
//!    AU 413 + 438 Hz pair (no second component), and 425 Hz never looks
//!    like the JP/IN AM tones (no sidebands).
//! 4. **Cadence**: the recent segments are matched, from the newest back,
//!    against every candidate at every phase, with ±15 % + 40 ms on
//!    durations and ±5 dB on level steps between bursts (AU congestion).
//!    Each match has a *score*: mean duration error, error of the whole
//!    matched span (which tells 240 ms from 250 ms cycles apart after a few
//!    cycles) and the sound's template distance and frequency offset.
//!
//! # Decision
//!
//! The candidates explaining the longest run of recent segments (and the
//! segment now sounding) compete. A tone kind is reported when all of them
//! are of that kind and
//!
//! - one of them matched a whole cycle spanning at least 1 s of audio
//!   (short cycles: several; cycles with less than 200 ms of tone: two),
//!   or, for a continuous tone, 1 s of steady tone, by which time every
//!   cadenced candidate with a burst of the same sound that could still be
//!   running has been outlasted; or
//! - earlier, when at least 500 ms of tone matched, this run of segments
//!   is the longest any candidate has explained (not the tail of another
//!   tone) and either two segments matched with the next burst already
//!   classified or quiet following (e.g. SIT after its first two steps, UK
//!   ringback after 0.4-0.2-0.4 s), or one steady burst is followed by
//!   100 ms of quiet, which already rules out every candidate of another
//!   kind (e.g. US ringback after its 2 s burst, DE ringback after 1 s, IN
//!   busy after 0.75 s, US busy after 0.5 s); or, when all of them are
//!   call-waiting tones, 180 ms of tone followed by 300 ms of silence or
//!   steady noise (e.g. US call waiting after 0.8 s, not 10.3 s).
//!
//! When candidates of different kinds all match whole cycles equally long
//! (e.g. BR busy 250/250 ms and DE congestion 240/240 ms, both 425 Hz) the
//! best score wins once it is clearly better or after two cycles; scores
//! within 0.15 count as equal and then the preferred country wins, then
//! the best score, then table order. The country reported is chosen the
//! same way among the winning kind's candidates.
//!
//! # Ambiguities when the country is not known
//!
//! With several countries some tones are the same signal: 425 Hz dial of
//! BR, DE and RU; their 1 s / 4 s ringback; AU (375/375) and RU (400/400)
//! busy; IN busy and the UK's 0.75/0.75 alternative; the ITU SIT of every
//! country but CN and US. The kind is right; the country is the preferred
//! one, else the closest fit, else the first in table order. Some differ
//! only by a few percent and are told apart by the closest fit alone:
//! BR busy (425 Hz, 250/250 ms) from DE congestion (240/240) and RU
//! congestion (200/200) after two cycles; a 425 Hz tone 3 % high (438 Hz)
//! is nearer FR's 440 Hz, 3 % low (412 Hz) as near IN/JP/UK's 400 Hz, so
//! BR busy 3 % off is reported as FR or IN congestion (same cadence) when
//! no country is given. With the country given, ±3 % is always that
//! country's tone. Cadence jitter beyond the tolerance or a preferred
//! country whose tone of another kind fits as well can turn these close
//! pairs either way.
//!
//! # Robustness
//!
//! Gaps must be quiet (8 dB below the bursts next to them, or 3 dB when
//! they are steady broadband noise), on segments steady (window powers
//! within 3 dB), and a whole-cycle match must span 1 s of audio, so speech
//! and music, whose pauses are short and whose notes decay, glide and
//! follow each other without silence, are not taken for cadences. Once a
//! kind is reported, another kind is reported only from segments heard
//! after that decision.

use super::{Country, ProgressTone, Segment, Sound};
use crate::detector::{ConfigError, EventQueue, check_range};
use crate::goertzel::{GoertzelBank, SAMPLE_RATE, dbm0_to_power};
use std::sync::{Arc, OnceLock};

/// A set of [`Country`] values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CountrySet(u16);

impl CountrySet {
    /// Every country in the table.
    pub const ALL: Self = Self((1 << Country::ALL.len()) - 1);
    /// No country.
    pub const EMPTY: Self = Self(0);

    /// The set holding only `country`.
    pub fn only(country: Country) -> Self {
        Self(1 << country as u16)
    }

    /// The set of `countries`.
    pub fn from_countries(countries: &[Country]) -> Self {
        countries.iter().fold(Self::EMPTY, |set, &c| set.with(c))
    }

    /// This set plus `country`.
    #[must_use]
    pub fn with(self, country: Country) -> Self {
        Self(self.0 | 1 << country as u16)
    }

    /// Whether `country` is in the set.
    pub fn contains(self, country: Country) -> bool {
        self.0 & (1 << country as u16) != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Number of countries in the set.
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// The countries in table order.
    pub fn iter(self) -> impl Iterator<Item = Country> {
        Country::ALL.into_iter().filter(move |&c| self.contains(c))
    }
}

/// Settings of a [`ProgressDetector`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProgressDetectorConfig {
    /// The countries whose tones are expected (not empty).
    pub countries: CountrySet,
    /// The country preferred when several countries' tones fit equally
    /// (must be in `countries`).
    pub preferred: Option<Country>,
    /// Weakest block level taken as tone, dBm0. Default −46: a −30 dBm0
    /// tone still shows its −10 dB bursts (AU congestion) and the troughs
    /// of its 100 % AM (JP, IN).
    pub min_level_dbm0: f32,
    /// Cadence tolerance, percent of each segment (plus 40 ms). Default 15.
    pub duration_tolerance_percent: f32,
    /// Frequency tolerance, percent of each component (1 to 4). Default 3.
    pub frequency_tolerance_percent: f32,
}

impl ProgressDetectorConfig {
    /// Defaults for one known `country`.
    pub fn new(country: Country) -> Self {
        Self {
            countries: CountrySet::only(country),
            preferred: Some(country),
            ..Self::any_country(None)
        }
    }

    /// Defaults for an unknown country: all ten tables, `preferred` first
    /// when tones fit equally.
    pub fn any_country(preferred: Option<Country>) -> Self {
        Self {
            countries: CountrySet::ALL,
            preferred,
            min_level_dbm0: -46.0,
            duration_tolerance_percent: 15.0,
            frequency_tolerance_percent: DEFAULT_FREQUENCY_TOLERANCE,
        }
    }

    /// Defaults for `countries` (all of them when empty), the first one
    /// preferred.
    pub fn for_countries(countries: &[Country]) -> Self {
        if countries.is_empty() {
            return Self::any_country(None);
        }
        Self {
            countries: CountrySet::from_countries(countries),
            preferred: countries.first().copied(),
            ..Self::any_country(None)
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
        /// The country whose table matched (the preferred one when several
        /// fit equally).
        country: Country,
        /// Sample offset where its first matched segment started.
        start: u64,
        /// Sample offset of the decision.
        at: u64,
    },
}

/// One cadence of one tone of one country.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    country: Country,
    tone: ProgressTone,
    segments: &'static [Segment],
    /// Index of each segment's sound in the detector's sounds (`NO_SOUND`
    /// for silence).
    sound_of: [u8; MAX_SEGMENTS],
    continuous: bool,
}

/// A candidate's match of the completed segments, from one phase back.
#[derive(Debug, Clone, Copy, Default)]
struct Walk {
    matched: u32,
    start: u64,
    /// Sum of per-segment duration errors, each relative to its tolerance.
    duration_error: f32,
    /// Sum of on segments' sound deviations.
    sound_error: f32,
    on_count: u32,
    on_samples: u64,
    span_observed: u64,
    span_expected: u64,
    span_tolerance: u64,
}

/// How well what has been heard fits one candidate.
#[derive(Debug, Clone, Copy)]
struct Fit {
    matched: u32,
    confirmed: bool,
    start: u64,
    score: f32,
    on_samples: u64,
}

/// Goertzel analysis: block values kept for coherent windows, for a bank
/// of `N` filters (results are written to `MAX_FREQS`-wide arrays).
#[derive(Debug, Clone)]
struct Bank<const N: usize> {
    bank: GoertzelBank<N>,
    ring: [[(f32, f32); N]; WINDOW_BLOCKS],
    blocks: u64,
    energy: f32,
    /// Energy of the first difference (high for white noise, low for
    /// the low tones, speech and most music).
    slope: f32,
    last: f32,
}

impl<const N: usize> Bank<N> {
    fn new(freqs: &[f32; MAX_FREQS]) -> Self {
        Self {
            bank: GoertzelBank::new(std::array::from_fn(|i| freqs[i])),
            ring: [[(0.0, 0.0); N]; WINDOW_BLOCKS],
            blocks: 0,
            energy: 0.0,
            slope: 0.0,
            last: 0.0,
        }
    }

    fn update(&mut self, samples: &[i16]) {
        self.bank.update(samples);
        for &x in samples {
            let x = f32::from(x);
            self.energy += x * x;
            let d = x - self.last;
            self.slope += d * d;
            self.last = x;
        }
    }

    fn finish_block(&mut self, powers: &mut [f32; MAX_FREQS]) -> (f32, f32) {
        let slot = (self.blocks % WINDOW_BLOCKS as u64) as usize;
        self.bank.finish_block(&mut self.ring[slot]);
        self.blocks += 1;
        let scale = 2.0 / (BLOCK * BLOCK) as f32;
        for (p, v) in powers.iter_mut().zip(&self.ring[slot]) {
            *p = (v.0 * v.0 + v.1 * v.1) * scale;
        }
        (
            std::mem::take(&mut self.energy),
            std::mem::take(&mut self.slope),
        )
    }

    fn add_window(&self, skip: usize, n: usize, count: usize, profile: &mut [f32; MAX_FREQS]) {
        let n = n.min(WINDOW_BLOCKS - skip.min(WINDOW_BLOCKS));
        if (self.blocks as usize) < skip + n {
            return;
        }
        let newest = self.blocks - 1 - skip as u64;
        for (i, p) in profile[..count.min(N)].iter_mut().enumerate() {
            let (mut re, mut im) = (0.0, 0.0);
            for age in 0..n as u64 {
                let slot = ((newest - age) % WINDOW_BLOCKS as u64) as usize;
                re += self.ring[slot][i].0;
                im += self.ring[slot][i].1;
            }
            *p += re * re + im * im;
        }
    }
}

/// The analysis sized to the bank in use (its cost grows with its size):
/// one country needs 5 (CN) to 25 (US) filters, all ten need 29.
#[derive(Debug, Clone)]
enum Analysis {
    Small(Box<Bank<16>>),
    Medium(Box<Bank<28>>),
    Large(Box<Bank<MAX_FREQS>>),
}

impl Analysis {
    fn new(freqs: &[f32; MAX_FREQS], count: usize) -> Self {
        match count {
            0..=16 => Self::Small(Box::new(Bank::new(freqs))),
            17..=28 => Self::Medium(Box::new(Bank::new(freqs))),
            _ => Self::Large(Box::new(Bank::new(freqs))),
        }
    }

    fn update(&mut self, samples: &[i16]) {
        match self {
            Self::Small(b) => b.update(samples),
            Self::Medium(b) => b.update(samples),
            Self::Large(b) => b.update(samples),
        }
    }

    /// Ends a block; returns its energy and first-difference energy, and
    /// per-filter block powers.
    fn finish_block(&mut self, powers: &mut [f32; MAX_FREQS]) -> (f32, f32) {
        match self {
            Self::Small(b) => b.finish_block(powers),
            Self::Medium(b) => b.finish_block(powers),
            Self::Large(b) => b.finish_block(powers),
        }
    }

    /// Adds to `profile` (first `count` filters) the power of the coherent
    /// sum of `n` blocks, skipping the newest `skip`.
    fn add_window(&self, skip: usize, n: usize, count: usize, profile: &mut [f32; MAX_FREQS]) {
        match self {
            Self::Small(b) => b.add_window(skip, n, count, profile),
            Self::Medium(b) => b.add_window(skip, n, count, profile),
            Self::Large(b) => b.add_window(skip, n, count, profile),
        }
    }
}

/// Power profiles of every sound over the bank, for 80 and 40 ms
/// windows, scaled over the frequency tolerance; dual tones also with
/// either component 6 dB down (twist).
#[derive(Debug)]
struct Templates {
    /// `[window][sound][shape][shift]`, normalised over the bank.
    data: Box<[[f32; MAX_FREQS]]>,
    /// Per window and sound: bank entries that can hold its strongest bin.
    peaks: [[u32; MAX_SOUNDS]; 2],
}

impl Templates {
    fn new(sounds: &[Sound], freqs: &[f32], ftol: f32) -> Self {
        let sound_count = sounds.len();
        let mut data =
            vec![[0.0f32; MAX_FREQS]; 2 * sound_count * SHAPES * SHIFTS].into_boxed_slice();
        let mut peaks = [[0u32; MAX_SOUNDS]; 2];
        for (w, n) in [WINDOW_BLOCKS, SHORT_WINDOW_BLOCKS].into_iter().enumerate() {
            let len = (n * BLOCK) as f32;
            for (s, &sound) in sounds.iter().enumerate() {
                let (nominal, count) = parts(sound);
                for shape in 0..shapes(sound) {
                    let mut parts = nominal;
                    if shape > 0 {
                        parts[shape - 1].1 = TWIST;
                    }
                    for k in 0..SHIFTS {
                        let scale = 1.0 + ftol * (k as f32 / (SHIFTS - 1) as f32 * 2.0 - 1.0);
                        let t = &mut data[template_index(w, sound_count, s, shape, k)];
                        for (v, &g) in t.iter_mut().zip(freqs) {
                            *v = parts[..count]
                                .iter()
                                .map(|&(f, a)| a * a * dirichlet(f * scale - g, len))
                                .sum();
                        }
                        let used = &mut t[..freqs.len()];
                        let total: f32 = used.iter().sum();
                        let top = used.iter().copied().fold(0.0f32, f32::max);
                        for (i, v) in used.iter_mut().enumerate() {
                            if *v >= 0.5 * top {
                                peaks[w][s] |= 1 << i;
                            }
                            *v /= total.max(f32::MIN_POSITIVE);
                        }
                    }
                }
            }
        }
        Self { data, peaks }
    }
}

/// The segment being observed.
#[derive(Debug, Clone, Copy)]
struct Current {
    start: u64,
    blocks: u32,
    group: u8,
    energy: f32,
    /// Energies of the three loudest blocks (off segments).
    peaks: [f32; 3],
    /// Energy of the quietest block (off segments).
    floor: f32,
    /// First-difference energy (off segments).
    slope: f32,
    profile: [f32; MAX_FREQS],
    windows: u32,
    /// Sounds the segment may be (valid once `windows > 0`).
    sounds: u32,
    /// Weakest and strongest window power over the bank.
    window_range: (f32, f32),
}

/// A completed segment.
#[derive(Debug, Clone, Copy)]
struct Observed {
    on: bool,
    /// False for a burst too short to tell sounds apart (any sound).
    classified: bool,
    /// An on segment of steady power (see `Current::steady`).
    steady: bool,
    /// An off segment of steady noise (see `Current::stationary`).
    stationary: bool,
    /// Sounds it may be (on segments; 0: not a tone).
    sounds: u32,
    /// Deviation from each possible sound (template distance plus
    /// frequency offset).
    deviation: [f32; MAX_SOUNDS],
    start: u64,
    samples: u64,
    level_db: f32,
}

/// Classifies call-progress tones of one or several countries. See the
/// module docs.
#[derive(Debug, Clone)]
pub struct ProgressDetector {
    config: ProgressDetectorConfig,
    min_power: f32,
    tolerance: f32,
    freq_count: usize,
    group: [u8; MAX_FREQS],
    sounds: [Sound; MAX_SOUNDS],
    sound_count: usize,
    /// Per sound and component: bank entries within the frequency
    /// tolerance (bit masks), for gating.
    ranges: [[u32; 3]; MAX_SOUNDS],
    /// Sound templates (shared between detectors of the same setup).
    templates: Arc<Templates>,
    candidates: Box<[Candidate]>,
    /// Cached walks, `[candidate][phase]`.
    walks: Box<[Walk]>,
    analysis: Analysis,
    fill: usize,
    samples: u64,
    state_on: bool,
    pending: u32,
    /// Energy of the blocks of the pending change before the newest.
    pending_energy: f32,
    current: Current,
    history: [Observed; HISTORY],
    history_len: usize,
    /// Most segments any candidate has explained since nothing matched:
    /// an early decision needs the current run to be the longest (not
    /// the tail of a tone another candidate explained better).
    peak_matched: u32,
    /// Decide again at this sample count even if nothing changed.
    next_check: u64,
    dirty: bool,
    reported: Option<(ProgressTone, Country)>,
    /// When the last report was made.
    reported_at: u64,
    events: EventQueue<ProgressEvent, 4>,
}

impl ProgressDetector {
    /// Creates a detector for `config.countries`.
    pub fn new(config: ProgressDetectorConfig) -> Result<Self, ConfigError> {
        check_range(config.min_level_dbm0, -60.0, 0.0, "min_level_dbm0")?;
        check_range(
            config.duration_tolerance_percent,
            1.0,
            50.0,
            "duration_tolerance_percent",
        )?;
        check_range(
            config.frequency_tolerance_percent,
            1.0,
            4.0,
            "frequency_tolerance_percent",
        )?;
        if config.countries.is_empty() {
            return Err(ConfigError { field: "countries" });
        }
        if config
            .preferred
            .is_some_and(|c| !config.countries.contains(c))
        {
            return Err(ConfigError { field: "preferred" });
        }
        let ftol = config.frequency_tolerance_percent / 100.0;
        // Candidates and their distinct sounds.
        let mut sounds = [Sound::Single(0.0); MAX_SOUNDS];
        let mut sound_count = 0;
        let mut candidates = Vec::new();
        for country in config.countries.iter() {
            for tone in ProgressTone::ALL {
                let main = country.tone(tone).segments;
                for &segments in std::iter::once(&main).chain(country.alternatives(tone)) {
                    if segments.len() > MAX_SEGMENTS {
                        return Err(ConfigError { field: "countries" });
                    }
                    let mut sound_of = [NO_SOUND; MAX_SEGMENTS];
                    for (slot, segment) in sound_of.iter_mut().zip(segments) {
                        let Some(sound) = segment.sound else { continue };
                        let index = match sounds[..sound_count].iter().position(|&s| s == sound) {
                            Some(i) => i,
                            None => {
                                if sound_count == MAX_SOUNDS {
                                    return Err(ConfigError { field: "countries" });
                                }
                                sounds[sound_count] = sound;
                                sound_count += 1;
                                sound_count - 1
                            }
                        };
                        *slot = index as u8;
                    }
                    candidates.push(Candidate {
                        country,
                        tone,
                        segments,
                        sound_of,
                        continuous: segments.len() == 1 && segments[0].ms == 0,
                    });
                }
            }
        }
        // The bank: grid filters within the tolerance plus one grid step
        // of any component.
        let mut freqs = [100.0f32; MAX_FREQS];
        let mut freq_count = 0;
        for g in grid() {
            let near = sounds[..sound_count].iter().any(|&s| {
                let (parts, n) = parts(s);
                parts[..n]
                    .iter()
                    .any(|&(f, _)| (g - f).abs() <= f * ftol + grid_step(g))
            });
            if near {
                if freq_count == MAX_FREQS {
                    return Err(ConfigError { field: "countries" });
                }
                freqs[freq_count] = g;
                freq_count += 1;
            }
        }
        // Frequency groups: chains of frequencies closer than 200 Hz (the
        // grid is sorted).
        let mut group = [0u8; MAX_FREQS];
        for k in 1..freq_count {
            group[k] = group[k - 1] + u8::from(freqs[k] - freqs[k - 1] > GROUP_SPAN_HZ);
        }
        // Gating ranges.
        let mut ranges = [[0u32; 3]; MAX_SOUNDS];
        for (s, sound) in sounds[..sound_count].iter().enumerate() {
            let (parts, n) = parts(*sound);
            for (c, &(f, _)) in parts[..n].iter().enumerate() {
                let mut mask = 0u32;
                let mut nearest = 0;
                for k in 0..freq_count {
                    if (freqs[k] - f).abs() <= f * ftol + 20.0 {
                        mask |= 1 << k;
                    }
                    if (freqs[k] - f).abs() < (freqs[nearest] - f).abs() {
                        nearest = k;
                    }
                }
                ranges[s][c] = mask | 1 << nearest;
            }
        }
        // The all-tables set at the default tolerance is the common case
        // (unknown country): its templates are built once per process and
        // shared.
        let templates = if config.countries == CountrySet::ALL
            && config.frequency_tolerance_percent == DEFAULT_FREQUENCY_TOLERANCE
        {
            static SHARED: OnceLock<Arc<Templates>> = OnceLock::new();
            Arc::clone(SHARED.get_or_init(|| {
                Arc::new(Templates::new(
                    &sounds[..sound_count],
                    &freqs[..freq_count],
                    ftol,
                ))
            }))
        } else {
            Arc::new(Templates::new(
                &sounds[..sound_count],
                &freqs[..freq_count],
                ftol,
            ))
        };
        if candidates.len() > MAX_CANDIDATES {
            return Err(ConfigError { field: "countries" });
        }
        let walks = vec![Walk::default(); candidates.len() * MAX_SEGMENTS].into_boxed_slice();
        Ok(Self {
            config,
            min_power: dbm0_to_power(config.min_level_dbm0),
            tolerance: config.duration_tolerance_percent / 100.0,
            freq_count,
            group,
            sounds,
            sound_count,
            ranges,
            templates,
            candidates: candidates.into_boxed_slice(),
            walks,
            analysis: Analysis::new(&freqs, freq_count),
            fill: 0,
            samples: 0,
            state_on: false,
            pending: 0,
            pending_energy: 0.0,
            current: Current::new(0, 0),
            history: [Observed {
                on: false,
                classified: false,
                steady: false,
                stationary: false,
                sounds: 0,
                deviation: [0.0; MAX_SOUNDS],
                start: 0,
                samples: 0,
                level_db: 0.0,
            }; HISTORY],
            history_len: 0,
            peak_matched: 0,
            next_check: 0,
            dirty: true,
            reported: None,
            reported_at: 0,
            events: EventQueue::new(),
        })
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
        self.reported.map(|(tone, _)| tone)
    }

    /// The country of the tone last reported, if any.
    pub fn current_country(&self) -> Option<Country> {
        self.reported.map(|(_, country)| country)
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
        let (energy, slope) = self.analysis.finish_block(&mut powers);
        let block_start = self.samples - BLOCK as u64;
        let mean_square = energy / BLOCK as f32;
        // Tonality: best share of the block's energy near one sound's
        // components.
        let mut share = 0.0f32;
        for ranges in &self.ranges[..self.sound_count] {
            let mut sum = 0.0;
            for &mask in ranges.iter().filter(|&&m| m != 0) {
                sum += max_over(&powers, mask);
            }
            share = share.max(sum / mean_square.max(1.0));
        }
        let on = mean_square >= self.min_power && share >= MIN_SHARE;
        let dominant = (0..self.freq_count)
            .max_by(|&a, &b| powers[a].total_cmp(&powers[b]))
            .map_or(0, |i| self.group[i]);
        let wants_change = on != self.state_on
            || (on && self.current.blocks > 0 && dominant != self.current.group);
        if wants_change {
            self.pending += 1;
        } else {
            self.pending = 0;
            self.pending_energy = 0.0;
        }
        let mut switched = false;
        // Ending a burst takes one block more: the troughs of 100 % AM
        // sink into noise for up to two blocks.
        let needed = if self.state_on && !on {
            SWITCH_BLOCKS + 1
        } else {
            SWITCH_BLOCKS
        };
        if self.pending >= needed {
            // The change began `pending - 1` blocks ago; their energy
            // belongs to the new segment.
            let start = block_start - u64::from(self.pending - 1) * BLOCK as u64;
            self.current.energy -= self.pending_energy;
            self.close_segment(start);
            self.state_on = on;
            self.current = Current::new(start, dominant);
            // Re-count the blocks already in the new state.
            self.current.blocks = self.pending - 1;
            self.current.energy = self.pending_energy;
            self.pending = 0;
            self.pending_energy = 0.0;
            self.dirty = true;
            switched = true;
        }
        if wants_change && !switched {
            self.pending_energy += energy;
        }
        self.current.blocks += 1;
        self.current.energy += energy;
        if self.state_on {
            if self.current.blocks as usize >= WINDOW_BLOCKS {
                let mut window = [0.0f32; MAX_FREQS];
                self.analysis
                    .add_window(0, WINDOW_BLOCKS, self.freq_count, &mut window);
                let power: f32 = window[..self.freq_count].iter().sum();
                let range = &mut self.current.window_range;
                *range = (range.0.min(power), range.1.max(power));
                for (p, w) in self.current.profile.iter_mut().zip(&window) {
                    *p += w;
                }
                self.current.windows += 1;
                if self.current.windows % RECLASSIFY_WINDOWS == 1 {
                    let (sounds, _) = self.classify(&self.current.profile, 0);
                    if sounds != self.current.sounds || self.current.windows == 1 {
                        self.dirty = true;
                    }
                    self.current.sounds = sounds;
                }
            }
        } else {
            let current = &mut self.current;
            current.slope += slope;
            current.floor = current.floor.min(energy);
            if let Some(i) = current.peaks.iter().position(|&p| energy > p) {
                current.peaks.copy_within(i..2, i + 1);
                current.peaks[i] = energy;
            }
        }
        if self.dirty || self.samples >= self.next_check {
            self.dirty = false;
            self.decide();
        }
    }

    fn close_segment(&mut self, end: u64) {
        let current = self.current;
        let samples = end.saturating_sub(current.start);
        if samples == 0 {
            return;
        }
        let mut classified = true;
        let (sounds, deviation) = if self.state_on {
            let skip = self.pending.saturating_sub(1) as usize;
            let segment_blocks = (current.blocks as usize).saturating_sub(skip);
            if current.windows > 0 {
                self.classify(&current.profile, 0)
            } else if segment_blocks >= SHORT_WINDOW_BLOCKS {
                let mut profile = [0.0f32; MAX_FREQS];
                self.analysis
                    .add_window(skip, SHORT_WINDOW_BLOCKS, self.freq_count, &mut profile);
                self.classify(&profile, 1)
            } else {
                // Too short to tell sounds apart: any sound.
                classified = false;
                (0, [0.0; MAX_SOUNDS])
            }
        } else {
            (0, [0.0; MAX_SOUNDS])
        };
        let level_db = if self.state_on {
            let blocks = (samples / BLOCK as u64).max(1) as f32;
            10.0 * (current.energy / (blocks * BLOCK as f32)).max(1.0).log10()
        } else {
            current.quiet_level_db()
        };
        let observed = Observed {
            on: self.state_on,
            classified,
            steady: self.state_on && (current.windows == 0 || current.steady()),
            stationary: !self.state_on && current.stationary(),
            sounds,
            deviation,
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
        for c in 0..self.candidates.len() {
            let candidate = self.candidates[c];
            if candidate.continuous {
                continue;
            }
            for phase in 0..candidate.segments.len() {
                self.walks[c * MAX_SEGMENTS + phase] = self.walk(&candidate, phase);
            }
        }
    }

    /// Sounds `profile` may be and the deviation from each, using the 80 ms
    /// (`window` 0) or 40 ms (1) templates.
    fn classify(&self, profile: &[f32; MAX_FREQS], window: usize) -> (u32, [f32; MAX_SOUNDS]) {
        let mut deviation = [f32::INFINITY; MAX_SOUNDS];
        let n = self.freq_count;
        let total: f32 = profile[..n].iter().sum();
        if total <= 0.0 {
            return (0, deviation);
        }
        let mut normalised = [0.0f32; MAX_FREQS];
        let mut top = 0;
        for i in 0..n {
            normalised[i] = profile[i] / total;
            if normalised[i] > normalised[top] {
                top = i;
            }
        }
        let mut distance = [f32::INFINITY; MAX_SOUNDS];
        let mut best = f32::INFINITY;
        for s in 0..self.sound_count {
            if self.templates.peaks[window][s] & (1 << top) == 0 {
                continue;
            }
            for shape in 0..shapes(self.sounds[s]) {
                for k in 0..SHIFTS {
                    let t =
                        &self.templates.data[template_index(window, self.sound_count, s, shape, k)];
                    let d: f32 = normalised[..n]
                        .iter()
                        .zip(&t[..n])
                        .map(|(a, b)| (a - b).abs())
                        .sum();
                    let offset = (k as f32 / (SHIFTS - 1) as f32 * 2.0 - 1.0).abs();
                    let twisted = if shape > 0 { TWIST_ERROR } else { 0.0 };
                    if d < distance[s] {
                        distance[s] = d;
                        deviation[s] = d + FREQUENCY_WEIGHT * offset + twisted;
                    }
                }
            }
            best = best.min(distance[s]);
        }
        let sounds = distance[..self.sound_count]
            .iter()
            .enumerate()
            .filter(|&(_, &d)| d <= MAX_DISTANCE && d <= best + DISTANCE_MARGIN)
            .fold(0u32, |set, (s, _)| set | 1 << s);
        (sounds, deviation)
    }

    fn tolerance_samples(&self, ms: u32) -> u64 {
        let expected = f64::from(ms) * 8.0;
        (expected * f64::from(self.tolerance) + 320.0) as u64
    }

    /// How far the completed segments, newest first, fit `candidate` when
    /// the segment now sounding is at position `phase` of its cadence.
    fn walk(&self, candidate: &Candidate, phase: usize) -> Walk {
        let len = candidate.segments.len();
        let mut walk = Walk {
            start: self.current.start,
            ..Walk::default()
        };
        let mut later_on: Option<(f32, f32)> = None;
        // The walk as of its oldest matched burst: a run of a cadence
        // starts with a burst (silence before a tone is not part of it).
        let mut at_burst = walk;
        for back in 0..self.history_len {
            let observed = self.history[self.history_len - 1 - back];
            let position = (phase + len * HISTORY - 1 - back) % len;
            let segment = candidate.segments[position];
            // Silence from the start of the stream is not part of any
            // tone, whatever its length.
            if observed.start == 0 && !observed.on {
                break;
            }
            let expected = u64::from(segment.ms) * 8;
            let tolerance = self.tolerance_samples(segment.ms);
            let error = observed.samples.abs_diff(expected);
            if error > tolerance || observed.on != segment.sound.is_some() {
                break;
            }
            if !observed.on {
                // A tone's gaps are quiet: at least `QUIET_DB` below the
                // louder burst next to them (music and speech fill them).
                let index = self.history_len - 1 - back;
                let louder = [index.wrapping_sub(1), index + 1]
                    .into_iter()
                    .filter_map(|i| self.history[..self.history_len].get(i))
                    .filter(|o| o.on)
                    .map(|o| o.level_db)
                    .fold(f32::NEG_INFINITY, f32::max);
                if !is_quiet(observed.level_db, observed.stationary, louder) {
                    break;
                }
            }
            if observed.on {
                let s = usize::from(candidate.sound_of[position]);
                let unknown = !observed.classified;
                if (!unknown && observed.sounds & (1 << s) == 0) || !observed.steady {
                    break;
                }
                if let Some((later_level, later_expected)) = later_on {
                    let step = later_level - observed.level_db;
                    let expected_step = later_expected - segment.level_db;
                    if (step - expected_step).abs() > LEVEL_TOLERANCE_DB {
                        break;
                    }
                }
                later_on = Some((observed.level_db, segment.level_db));
                walk.sound_error += if unknown {
                    UNKNOWN_SOUND_ERROR
                } else {
                    observed.deviation[s]
                };
                walk.on_count += 1;
                walk.on_samples += observed.samples;
            }
            walk.duration_error += error as f32 / tolerance as f32;
            walk.span_observed += observed.samples;
            walk.span_expected += expected;
            walk.span_tolerance += tolerance;
            walk.matched += 1;
            walk.start = observed.start;
            if observed.on {
                at_burst = walk;
            }
        }
        at_burst
    }

    /// The best fit of `candidate` with the segment now sounding, if it
    /// can belong to it; lowers `next_check` to when that may change.
    fn fit(&self, candidate: &Candidate, index: usize, next_check: &mut u64) -> Option<Fit> {
        let ongoing = u64::from(self.current.blocks) * BLOCK as u64;
        let known = self.state_on && self.current.windows > 0;
        if candidate.continuous {
            let s = candidate.sound_of[0];
            if !self.state_on || (known && self.current.sounds & (1 << s) == 0) {
                return None;
            }
            let confirmed = known && ongoing >= CONTINUOUS_SAMPLES && self.current.steady();
            if !confirmed {
                *next_check = (*next_check).min(self.current.start + CONTINUOUS_SAMPLES);
            }
            return Some(Fit {
                matched: 0,
                confirmed,
                start: self.current.start,
                score: 0.0,
                on_samples: ongoing,
            });
        }
        let len = candidate.segments.len();
        let mut best: Option<Fit> = None;
        for phase in 0..len {
            let segment = candidate.segments[phase];
            let limit = u64::from(segment.ms) * 8 + self.tolerance_samples(segment.ms);
            if segment.sound.is_some() != self.state_on || ongoing > limit {
                continue;
            }
            if known && self.current.sounds & (1 << candidate.sound_of[phase]) == 0 {
                continue;
            }
            *next_check = (*next_check).min(self.current.start + limit + 1);
            let walk = self.walks[index * MAX_SEGMENTS + phase];
            let mut score = 0.0;
            if walk.matched > 0 {
                score += walk.duration_error / walk.matched as f32;
                score += SPAN_WEIGHT * walk.span_observed.abs_diff(walk.span_expected) as f32
                    / walk.span_tolerance.max(1) as f32;
            }
            if walk.on_count > 0 {
                score += walk.sound_error / walk.on_count as f32;
            }
            let fit = Fit {
                matched: walk.matched,
                // A whole cycle, with enough tone in it (short bursts:
                // two cycles).
                confirmed: walk.matched as usize >= len
                    && walk.span_observed >= CONFIRM_SPAN_SAMPLES
                    && (walk.on_samples >= CONFIRM_ON_SAMPLES || walk.matched as usize >= 2 * len),
                start: walk.start,
                score,
                on_samples: walk.on_samples,
            };
            if best.is_none_or(|b| {
                fit.matched > b.matched || (fit.matched == b.matched && fit.score < b.score)
            }) {
                best = Some(fit);
            }
        }
        best
    }

    fn decide(&mut self) {
        let mut next_check = u64::MAX;
        let mut fits = [None; MAX_CANDIDATES];
        let mut most = 0;
        let mut any = false;
        for (c, candidate) in self.candidates.iter().enumerate() {
            let fit = self.fit(candidate, c, &mut next_check);
            if let Some(f) = fit {
                most = if any { most.max(f.matched) } else { f.matched };
                any = true;
            }
            fits[c] = fit;
        }
        let ongoing = u64::from(self.current.blocks) * BLOCK as u64;
        if !self.state_on {
            for wait in [EARLY_QUIET_SAMPLES, SHORT_EARLY_QUIET_SAMPLES] {
                let at = self.current.start + wait;
                if at > self.samples {
                    next_check = next_check.min(at);
                }
            }
        }
        self.next_check = next_check;
        if !any || most == 0 {
            self.peak_matched = 0;
        }
        if !any {
            return;
        }
        // Competitors: candidates explaining the most segments.
        let competing = |c: usize| fits[c].filter(|f| f.matched == most);
        let mut kinds = 0u8;
        let mut all_confirmed = true;
        let mut any_confirmed = false;
        let mut enough_cycles = true;
        for (c, candidate) in self.candidates.iter().enumerate() {
            if let Some(f) = competing(c) {
                kinds |= 1 << candidate.tone as u8;
                all_confirmed &= f.confirmed;
                any_confirmed |= f.confirmed;
                enough_cycles &= f.matched as usize >= 2 * candidate.segments.len();
            }
        }
        let winner = self.pick(competing);
        let Some((w, fit)) = winner else { return };
        let tone = self.candidates[w].tone;
        let decided = if kinds.count_ones() == 1 {
            let burst_then_quiet = !self.state_on
                && self.quiet()
                && (most >= 2 || self.history[self.history_len - 1].steady);
            let early = most >= self.peak_matched
                && ((fit.on_samples >= EARLY_ON_SAMPLES
                    && if self.state_on {
                        most >= 2 && self.current.windows > 0
                    } else {
                        ongoing >= EARLY_QUIET_SAMPLES && burst_then_quiet
                    })
                    // Call waiting (short bursts, long gaps): from a
                    // shorter burst, after a longer gap that is silence or
                    // steady noise.
                    || (tone == ProgressTone::CallWaiting
                        && fit.on_samples >= SHORT_EARLY_ON_SAMPLES
                        && ongoing >= SHORT_EARLY_QUIET_SAMPLES
                        && burst_then_quiet
                        && self.silent()
                        && self.current.silence_or_noise()));
            any_confirmed || early
        } else if all_confirmed {
            // Different kinds fit whole cycles: the best score once it is
            // clearly better than every other kind's, or after two cycles.
            let rival = self.pick(|c| competing(c).filter(|_| self.candidates[c].tone != tone));
            let gap = rival.map_or(f32::INFINITY, |(_, r)| r.score - fit.score);
            gap >= KIND_GAP || enough_cycles || self.history_len >= HISTORY - 1
        } else {
            false
        };
        self.peak_matched = self.peak_matched.max(most);
        // Another kind after a report only from segments heard after that
        // decision (a new tone, not another reading of the same one).
        let fresh = self
            .reported
            .is_none_or(|(t, _)| t != tone && fit.start >= self.reported_at);
        if decided && fresh {
            let country = self.candidates[w].country;
            self.reported = Some((tone, country));
            self.reported_at = self.samples;
            self.events.push(ProgressEvent::Detected {
                tone,
                country,
                start: fit.start,
                at: self.samples,
            });
        }
    }

    /// Among the candidates `fit_of` gives a fit for: the best score, or
    /// the preferred country's candidate when its score is within
    /// `SCORE_EQUAL` of the best (ties: table order).
    fn pick(&self, fit_of: impl Fn(usize) -> Option<Fit>) -> Option<(usize, Fit)> {
        let mut best: Option<(usize, Fit)> = None;
        let mut preferred: Option<(usize, Fit)> = None;
        for (c, candidate) in self.candidates.iter().enumerate() {
            let Some(f) = fit_of(c) else { continue };
            if best.is_none_or(|(_, b)| f.score < b.score) {
                best = Some((c, f));
            }
            if Some(candidate.country) == self.config.preferred
                && preferred.is_none_or(|(_, p)| f.score < p.score)
            {
                preferred = Some((c, f));
            }
        }
        match (best, preferred) {
            (Some((_, b)), Some(p)) if p.1.score <= b.score + SCORE_EQUAL => Some(p),
            _ => best,
        }
    }

    /// Whether the off segment now running is `QUIET_DB` below the last
    /// burst (whatever it sounds like).
    fn silent(&self) -> bool {
        self.history[..self.history_len]
            .iter()
            .rev()
            .find(|o| o.on)
            .is_some_and(|o| self.current.quiet_level_db() <= o.level_db - QUIET_DB)
    }

    /// Whether the off segment now running is quiet: its level (without
    /// its two loudest blocks, which may hold the edge of a burst) at least
    /// `QUIET_DB` below the last on segment.
    fn quiet(&self) -> bool {
        let Some(last_on) = self.history[..self.history_len].iter().rev().find(|o| o.on) else {
            return false;
        };
        is_quiet(
            self.current.quiet_level_db(),
            self.current.stationary(),
            last_on.level_db,
        )
    }
}

impl Current {
    /// Whether an off segment is steady broadband noise: its third
    /// loudest block within `STATIONARY_RATIO` of its quietest (speech and
    /// music fluctuate far more), and as much energy in its first
    /// difference as white noise has about (low notes and speech far
    /// less).
    fn stationary(&self) -> bool {
        self.slope >= NOISE_SLOPE * self.energy
            && (self.blocks < 5 || self.peaks[2] <= STATIONARY_RATIO * self.floor)
    }

    /// Whether an off segment is near digital silence (below
    /// `SILENCE_POWER`) or steady broadband noise.
    fn silence_or_noise(&self) -> bool {
        self.energy <= SILENCE_POWER * (self.blocks.max(1) as usize * BLOCK) as f32
            || self.stationary()
    }

    /// Whether the on segment's window powers stayed within
    /// `STEADY_RATIO` (a tone; not a decaying or changing note).
    fn steady(&self) -> bool {
        self.windows > 0 && self.window_range.1 <= STEADY_RATIO * self.window_range.0
    }

    /// Mean-square level of an off segment without its two loudest
    /// blocks, dB.
    fn quiet_level_db(&self) -> f32 {
        // The two loudest blocks may hold the edges of the bursts around.
        let blocks = self.blocks.saturating_sub(2).max(1) as f32;
        let energy = (self.energy - self.peaks[0] - self.peaks[1]).max(0.0);
        10.0 * (energy / (blocks * BLOCK as f32)).max(1.0).log10()
    }

    fn new(start: u64, group: u8) -> Self {
        Self {
            start,
            blocks: 0,
            group,
            energy: 0.0,
            peaks: [0.0; 3],
            floor: f32::INFINITY,
            slope: 0.0,
            profile: [0.0; MAX_FREQS],
            windows: 0,
            sounds: 0,
            window_range: (f32::INFINITY, 0.0),
        }
    }
}

/// Whether a gap at `level_db` is quiet next to a burst at `burst_db`:
/// `QUIET_DB` below it, or `NOISY_QUIET_DB` below it when the gap is
/// steady noise (a tone at low SNR).
fn is_quiet(level_db: f32, stationary: bool, burst_db: f32) -> bool {
    level_db <= burst_db - QUIET_DB || (stationary && level_db <= burst_db - NOISY_QUIET_DB)
}

/// Template shapes of `sound`: dual tones nominal and with either
/// component `TWIST` down; others nominal only.
fn shapes(sound: Sound) -> usize {
    if matches!(sound, Sound::Dual(..)) {
        SHAPES
    } else {
        1
    }
}

/// Index of a template in `ProgressDetector::templates`.
fn template_index(window: usize, sounds: usize, sound: usize, shape: usize, shift: usize) -> usize {
    ((window * sounds + sound) * SHAPES + shape) * SHIFTS + shift
}

/// Components of `sound` as (frequency, amplitude): AM gives the carrier
/// and two sidebands at half its amplitude (100 % modulation).
fn parts(sound: Sound) -> ([(f32, f32); 3], usize) {
    match sound {
        Sound::Single(f) => ([(f, 1.0), (0.0, 0.0), (0.0, 0.0)], 1),
        Sound::Dual(a, b) => ([(a, 1.0), (b, 1.0), (0.0, 0.0)], 2),
        Sound::Modulated { carrier, rate } => (
            [(carrier - rate, 0.5), (carrier, 1.0), (carrier + rate, 0.5)],
            3,
        ),
    }
}

/// Power response of a `len`-sample rectangular DFT bin to a sinusoid
/// `delta` Hz away (1 on the bin).
fn dirichlet(delta: f32, len: f32) -> f32 {
    let x = std::f32::consts::PI * delta / SAMPLE_RATE;
    let s = x.sin();
    if s.abs() < 1e-7 {
        return 1.0;
    }
    let r = (x * len).sin() / (len * s);
    r * r
}

/// Largest of `powers` over the bank entries in `mask`.
fn max_over(powers: &[f32; MAX_FREQS], mut mask: u32) -> f32 {
    let mut best = 0.0f32;
    while mask != 0 {
        let i = mask.trailing_zeros() as usize;
        best = best.max(powers[i]);
        mask &= mask - 1;
    }
    best
}

/// The filter grid, ascending: 12.5 Hz steps where the table's low tones
/// and their ±3 % lie, 40 Hz steps around the SIT frequencies (a 10 ms
/// block's filter is wide enough there; the SIT steps differ by octaves).
fn grid() -> impl Iterator<Item = f32> {
    let low = (0..14).map(|k| 337.5 + 12.5 * k as f32);
    let high = (0..4).map(|k| 600.0 + 12.5 * k as f32);
    let sit = [
        880.0, 920.0, 960.0, 1320.0, 1360.0, 1400.0, 1440.0, 1720.0, 1760.0, 1800.0, 1840.0,
    ];
    low.chain(high).chain(sit)
}

/// Spacing of the grid around `g`, Hz.
fn grid_step(g: f32) -> f32 {
    if g < 800.0 { 12.5 } else { 40.0 }
}

/// Default frequency tolerance, percent.
const DEFAULT_FREQUENCY_TOLERANCE: f32 = 3.0;

/// Block length: 10 ms.
const BLOCK: usize = 80;
/// Coherent window for sound profiles: 80 ms (12.5 Hz resolution).
const WINDOW_BLOCKS: usize = 8;
/// Window for bursts shorter than `WINDOW_BLOCKS`: 40 ms.
const SHORT_WINDOW_BLOCKS: usize = 4;
/// The ongoing segment is classified again every this many windows.
const RECLASSIFY_WINDOWS: u32 = 4;
/// Blocks in a new state before the state changes.
const SWITCH_BLOCKS: u32 = 2;
/// Filters in the bank (unused ones sit at 100 Hz).
const MAX_FREQS: usize = 32;
/// Distinct sounds over all countries.
const MAX_SOUNDS: usize = 24;
/// Candidates (cadences) over all countries, with alternatives.
const MAX_CANDIDATES: usize = 96;
/// Segments per cadence.
const MAX_SEGMENTS: usize = 8;
/// Marks a silent segment in `Candidate::sound_of`.
const NO_SOUND: u8 = u8::MAX;
/// Frequency scalings per template: −tol … +tol in 12 steps.
const SHIFTS: usize = 13;
/// Template shapes per sound (dual tones: nominal and either component
/// down by `TWIST`).
const SHAPES: usize = 3;
/// Amplitude of a twisted component: −6 dB.
const TWIST: f32 = 0.5;
/// Score of a twisted match.
const TWIST_ERROR: f32 = 0.1;
/// Completed segments remembered.
const HISTORY: usize = 12;
/// Frequencies closer than this belong to one sound group.
const GROUP_SPAN_HZ: f32 = 200.0;
/// Largest L1 distance between a profile and its template.
const MAX_DISTANCE: f32 = 0.6;
/// Sounds within this distance of the best one are possible as well.
const DISTANCE_MARGIN: f32 = 0.2;
/// Score weight of a frequency offset at the full tolerance.
const FREQUENCY_WEIGHT: f32 = 0.3;
/// Score of a burst too short to classify.
const UNKNOWN_SOUND_ERROR: f32 = 0.5;
/// Score weight of the whole matched span's duration error.
const SPAN_WEIGHT: f32 = 2.0;
/// Scores closer than this count as equal (the preferred country wins).
const SCORE_EQUAL: f32 = 0.15;
/// Score gap that settles a tie between kinds before two cycles.
const KIND_GAP: f32 = 0.4;
/// Tolerance on level steps between bursts, dB.
const LEVEL_TOLERANCE_DB: f32 = 5.0;
/// A continuous tone is confirmed after 1 s.
const CONTINUOUS_SAMPLES: u64 = 8000;
/// Largest ratio of window powers in a steady on segment (3 dB).
const STEADY_RATIO: f32 = 2.0;
/// Tone in a confirmed cycle (less: two cycles needed): 200 ms.
const CONFIRM_ON_SAMPLES: u64 = 1600;
/// Cadence matched in a confirmed decision (short cycles: several): 1 s.
const CONFIRM_SPAN_SAMPLES: u64 = 8000;
/// Tone matched before an early decision: 500 ms.
const EARLY_ON_SAMPLES: u64 = 4000;
/// Share of a block's energy near one sound's components for it to be on.
const MIN_SHARE: f32 = 0.7;
/// Tone matched before an early decision on call waiting: 180 ms.
const SHORT_EARLY_ON_SAMPLES: u64 = 1440;
/// Silence after short bursts before an early decision: 300 ms.
const SHORT_EARLY_QUIET_SAMPLES: u64 = 2400;
/// Quiet after a single burst before an early decision: 100 ms.
const EARLY_QUIET_SAMPLES: u64 = 800;
/// An off segment this far below the last burst is quiet, dB.
const QUIET_DB: f32 = 8.0;
/// The same for an off segment of steady noise, dB.
const NOISY_QUIET_DB: f32 = 3.0;
/// Mean-square below which a gap is silence whatever its spectrum (G.711
/// idle codes decode to a constant ±8): −60 dBm0.
const SILENCE_POWER: f32 = 260.0;
/// Least first-difference energy of noise relative to its energy (white
/// noise: 2; a 1 kHz tone: 0.6).
const NOISE_SLOPE: f32 = 1.0;
/// Largest ratio of block energies in steady noise (6 dB).
const STATIONARY_RATIO: f32 = 4.0;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tone::ProgressToneGenerator;

    fn detect(
        config: ProgressDetectorConfig,
        country: Country,
        tone: ProgressTone,
        seconds: usize,
    ) -> Vec<ProgressEvent> {
        let mut generator = ProgressToneGenerator::new(country, tone, 0.0).unwrap();
        let mut detector = ProgressDetector::new(config).unwrap();
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

    fn kind(events: &[ProgressEvent]) -> Option<ProgressTone> {
        events
            .first()
            .map(|ProgressEvent::Detected { tone, .. }| *tone)
    }

    #[test]
    fn uk_ringback_and_us_busy() {
        let uk = ProgressDetectorConfig::new(Country::Uk);
        let events = detect(uk, Country::Uk, ProgressTone::Ringback, 8);
        assert_eq!(kind(&events), Some(ProgressTone::Ringback), "{events:?}");
        let any = ProgressDetectorConfig::any_country(None);
        let events = detect(any, Country::Us, ProgressTone::Busy, 4);
        assert_eq!(kind(&events), Some(ProgressTone::Busy), "{events:?}");
        assert!(matches!(
            events[0],
            ProgressEvent::Detected {
                country: Country::Us,
                ..
            }
        ));
    }

    #[test]
    fn bank_sizes() {
        for country in Country::ALL {
            let d = ProgressDetector::new(ProgressDetectorConfig::new(country)).unwrap();
            assert!(d.freq_count <= 28, "{country:?}: {}", d.freq_count);
            assert!(!matches!(d.analysis, Analysis::Large(_)));
        }
        let all = ProgressDetector::new(ProgressDetectorConfig::any_country(None)).unwrap();
        assert_eq!(all.freq_count, 29);
        assert_eq!(all.candidates.len(), 64);
    }

    #[test]
    fn config_checks() {
        assert!(ProgressDetector::new(ProgressDetectorConfig::any_country(None)).is_ok());
        let mut bad = ProgressDetectorConfig::new(Country::De);
        bad.preferred = Some(Country::Fr);
        assert!(ProgressDetector::new(bad).is_err());
        bad.countries = CountrySet::EMPTY;
        bad.preferred = None;
        assert!(ProgressDetector::new(bad).is_err());
        let set = CountrySet::from_countries(&[Country::Uk, Country::Au]);
        assert_eq!(set.len(), 2);
        assert_eq!(set.iter().collect::<Vec<_>>(), [Country::Au, Country::Uk]);
    }
}
