//! Call-progress detector: every tone of every country with the country
//! given and with all ten tables (no preferred country, or another one
//! preferred), on linear, µ-law and A-law audio; frequencies ±3 %, the
//! alternative cadences, levels −10..−30 dBm0 per component, cadence
//! jitter with noise; decision times; and no detection on speech, music,
//! white noise, DTMF and silence.

use std::f64::consts::PI;

use legato_dsp::dtmf::{Digit, DtmfGenerator, DtmfGeneratorConfig};
use legato_dsp::goertzel::dbm0_to_amplitude;
use legato_dsp::tone::{
    Country, ProgressDetector, ProgressDetectorConfig, ProgressEvent, ProgressTone, Segment, Sound,
};

use crate::common::{
    Noise, Path, add_noise, mean_square, music, skip_without_speech, speech_corpus, to_i16,
    tone_power,
};

/// Lead-in silence before every tone: 300 ms.
const LEAD: usize = 2400;

/// How a tone is played.
#[derive(Clone, Copy)]
struct Play {
    /// Level offset from the table's nominal level, dB.
    gain_db: f32,
    /// Absolute level per component instead of the table's, dBm0.
    level_dbm0: Option<f32>,
    /// Frequency scale (0.97 = 3 % low).
    scale: f64,
    /// Largest random change of each segment's duration, fraction.
    jitter: f64,
    /// White noise this many dB below one component's level.
    snr_db: Option<f64>,
    /// Second component of dual tones this many dB below the first.
    twist_db: f32,
    seed: u64,
}

const NOMINAL: Play = Play {
    gain_db: 0.0,
    level_dbm0: None,
    scale: 1.0,
    jitter: 0.0,
    snr_db: None,
    twist_db: 0.0,
    seed: 1,
};

/// `segments` played for two cycles plus 1 s (at least 3 s; continuous
/// tones 4 s) after the lead-in silence.
fn render(segments: &[Segment], nominal_dbm0: f32, play: Play) -> Vec<i16> {
    let continuous = segments.len() == 1 && segments[0].ms == 0;
    let cycle: u32 = segments.iter().map(|s| s.ms).sum();
    let ms = if continuous {
        4000
    } else {
        (cycle * 2 + 1000).max(3000)
    } as usize;
    let total = LEAD + ms * 8;
    let level = play.level_dbm0.unwrap_or(nominal_dbm0 + play.gain_db);
    let mut x = vec![0.0f64; total];
    let mut rng = Noise::new(play.seed);
    let mut at = LEAD;
    let mut index = 0;
    while at < total {
        let segment = segments[index % segments.len()];
        index += 1;
        let mut len = if continuous {
            total - at
        } else {
            segment.ms as usize * 8
        };
        if play.jitter > 0.0 {
            let factor = 1.0 + play.jitter * (2.0 * rng.uniform() - 1.0);
            len = (len as f64 * factor) as usize;
        }
        let len = len.min(total - at);
        let amp = f64::from(dbm0_to_amplitude(level + segment.level_db));
        let second = amp * 10f64.powf(-f64::from(play.twist_db) / 20.0);
        let s = play.scale;
        for n in 0..len {
            let t = n as f64 / 8000.0;
            let sine = |f: f64| (2.0 * PI * f * s * t).sin();
            x[at + n] += match segment.sound {
                None => 0.0,
                Some(Sound::Single(f)) => amp * sine(f64::from(f)),
                Some(Sound::Dual(a, b)) => amp * sine(f64::from(a)) + second * sine(f64::from(b)),
                Some(Sound::Modulated { carrier, rate }) => {
                    // 100 % AM, mean power of one sine at `amp`.
                    let m = (2.0 * PI * f64::from(rate) * t).sin();
                    amp * (2.0f64 / 3.0).sqrt() * (1.0 + m) * sine(f64::from(carrier))
                }
            };
        }
        at += len;
    }
    if let Some(snr) = play.snr_db {
        add_noise(
            &mut x,
            tone_power(level) / 10f64.powf(snr / 10.0),
            play.seed + 7,
        );
    }
    to_i16(&x)
}

fn render_tone(country: Country, tone: ProgressTone, play: Play) -> Vec<i16> {
    let spec = country.tone(tone);
    render(spec.segments, spec.level_dbm0, play)
}

/// Every detection over `x` fed in 20 ms frames: (tone, country, decision
/// sample).
fn detect(config: ProgressDetectorConfig, x: &[i16]) -> Vec<(ProgressTone, Country, u64)> {
    let mut detector = ProgressDetector::new(config).expect("valid");
    let mut found = Vec::new();
    for chunk in x.chunks(160) {
        detector.handle_samples(chunk);
        while let Some(ProgressEvent::Detected {
            tone, country, at, ..
        }) = detector.poll_event()
        {
            found.push((tone, country, at));
        }
    }
    found
}

/// The detector settings compared: the country given, all ten tables with
/// no preference, all ten with the next country in the table preferred.
fn modes(country: Country) -> [(&'static str, ProgressDetectorConfig); 3] {
    let next = Country::ALL[(country as usize + 1) % Country::ALL.len()];
    [
        ("given", ProgressDetectorConfig::new(country)),
        ("all", ProgressDetectorConfig::any_country(None)),
        (
            "all, other preferred",
            ProgressDetectorConfig::any_country(Some(next)),
        ),
    ]
}

fn kind_ok(
    signal: (Country, ProgressTone),
    _config: &ProgressDetectorConfig,
    found: ProgressTone,
) -> bool {
    found == signal.1
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Decision time bound: one cycle plus 1.5 s (continuous: 2.5 s).
fn bound_s(country: Country, tone: ProgressTone) -> f64 {
    let spec = country.tone(tone);
    if spec.is_continuous() {
        2.5
    } else {
        f64::from(spec.cycle_ms()) / 1000.0 + 1.5
    }
}

#[test]
fn confusion_matrix_per_country() {
    let conditions: [(&str, Play); 2] = [
        ("nominal", NOMINAL),
        (
            "−8 dB, SNR 20 dB",
            Play {
                gain_db: -8.0,
                snr_db: Some(20.0),
                ..NOMINAL
            },
        ),
    ];
    let mut failures = Vec::new();
    eprintln!(
        "| country | mode | busy | call-waiting | congestion | dial | ringback | sit | decision median / worst s |"
    );
    eprintln!(
        "(cells: right first classifications / runs, median decision s after the tone starts)"
    );
    eprintln!("|---|---|---|---|---|---|---|---|---|");
    for country in Country::ALL {
        let mut cells = vec![vec![(0usize, 0usize); ProgressTone::ALL.len()]; 3];
        let mut times = vec![Vec::new(); 3];
        let mut cell_times = vec![vec![Vec::new(); ProgressTone::ALL.len()]; 3];
        let mut wrong = vec![vec![Vec::new(); ProgressTone::ALL.len()]; 3];
        for (ci, &(condition, play)) in conditions.iter().enumerate() {
            for (t, &tone) in ProgressTone::ALL.iter().enumerate() {
                let signal = render_tone(
                    country,
                    tone,
                    Play {
                        seed: 100 + t as u64 + 10 * ci as u64,
                        ..play
                    },
                );
                for path in Path::ALL {
                    let x = path.apply(&signal);
                    for (m, (mode, config)) in modes(country).iter().enumerate() {
                        let found = detect(*config, &x);
                        cells[m][t].1 += 1;
                        let ok = found.len() == 1 && kind_ok((country, tone), config, found[0].0);
                        let seconds = found
                            .first()
                            .map_or(f64::NAN, |f| (f.2 as f64 - LEAD as f64) / 8000.0);
                        if ok && seconds <= bound_s(country, tone) {
                            cells[m][t].0 += 1;
                            times[m].push(seconds);
                            cell_times[m][t].push(seconds);
                        } else {
                            let seen: Vec<String> = found
                                .iter()
                                .map(|f| format!("{} {} {:.2}s", f.1.code(), f.0.name(), seconds))
                                .collect();
                            wrong[m][t].push(seen.join("+"));
                            failures.push(format!(
                                "{} {} {condition} {} {mode}: {:?}",
                                country.code(),
                                tone.name(),
                                path.name(),
                                seen
                            ));
                        }
                    }
                }
            }
        }
        for (m, (mode, _)) in modes(country).iter().enumerate() {
            let row: Vec<String> = cells[m]
                .iter()
                .zip(&wrong[m])
                .zip(&mut cell_times[m])
                .map(|((&(ok, n), w), t)| {
                    let seconds = median(t);
                    if w.is_empty() {
                        format!("{ok}/{n} {seconds:.2}")
                    } else {
                        format!("{ok}/{n} {seconds:.2} ({})", w[0])
                    }
                })
                .collect();
            let worst = times[m].iter().copied().fold(0.0f64, f64::max);
            eprintln!(
                "| {} | {mode} | {} | {:.2} / {:.2} |",
                country.code(),
                row.join(" | "),
                median(&mut times[m]),
                worst
            );
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Decisions that need less than one cadence cycle, with the country given
/// and with all ten tables.
#[test]
fn decides_before_a_full_cycle_where_possible() {
    let cases: [(Country, ProgressTone, f64); 11] = [
        (Country::Us, ProgressTone::CallWaiting, 1.5),
        (Country::Ru, ProgressTone::CallWaiting, 1.0),
        (Country::Us, ProgressTone::Ringback, 2.6),
        (Country::De, ProgressTone::Ringback, 1.6),
        (Country::Fr, ProgressTone::Ringback, 2.1),
        (Country::Uk, ProgressTone::Ringback, 1.2),
        (Country::In, ProgressTone::Busy, 1.2),
        (Country::Us, ProgressTone::Busy, 0.9),
        (Country::De, ProgressTone::SpecialInformation, 1.2),
        (Country::Us, ProgressTone::Dial, 1.3),
        (Country::Uk, ProgressTone::Dial, 1.3),
    ];
    let mut failures = Vec::new();
    for (country, tone, limit) in cases {
        let x = render_tone(country, tone, NOMINAL);
        for (mode, config) in &modes(country)[..2] {
            let found = detect(*config, &x);
            let seconds = found
                .first()
                .map_or(f64::NAN, |f| (f.2 as f64 - LEAD as f64) / 8000.0);
            eprintln!(
                "{} {} {mode}: {:.2} s (cycle {:.2} s)",
                country.code(),
                tone.name(),
                seconds,
                f64::from(country.tone(tone).cycle_ms()) / 1000.0
            );
            if found.len() != 1 || found[0].0 != tone || seconds.is_nan() || seconds > limit {
                failures.push(format!(
                    "{} {} {mode}: {found:?}",
                    country.code(),
                    tone.name()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Tones that, 3 % off, are another country's tone of another kind
/// within tolerance (reported without a country by the closer fit): BR
/// busy (425 Hz, 250/250 ms) 3 % low is 412 Hz, as near IN congestion
/// (400 Hz, 250/250) as itself; 3 % high it is 438 Hz, nearer FR
/// congestion (440 Hz, 250/250); FR congestion 3 % low is 427 Hz, nearer BR
/// busy.
const OFF_FREQUENCY_OVERLAPS: &[(Country, ProgressTone, f64, ProgressTone)] = &[
    (
        Country::Br,
        ProgressTone::Busy,
        0.97,
        ProgressTone::Congestion,
    ),
    (
        Country::Br,
        ProgressTone::Busy,
        1.03,
        ProgressTone::Congestion,
    ),
    (
        Country::Fr,
        ProgressTone::Congestion,
        0.97,
        ProgressTone::Busy,
    ),
];

/// ±3 % on every component: right kind with the country given, and with
/// all ten tables.
#[test]
fn frequency_three_percent_off() {
    let mut failures = Vec::new();
    for country in Country::ALL {
        for tone in ProgressTone::ALL {
            for scale in [0.97, 1.03] {
                let x = Path::Alaw.apply(&render_tone(country, tone, Play { scale, ..NOMINAL }));
                for (mode, config) in &modes(country)[..2] {
                    let found = detect(*config, &x);
                    let ambiguous = config.preferred.is_none()
                        && found.len() == 1
                        && OFF_FREQUENCY_OVERLAPS.contains(&(country, tone, scale, found[0].0));
                    if found.len() != 1
                        || !(ambiguous || kind_ok((country, tone), config, found[0].0))
                    {
                        failures.push(format!(
                            "{} {} ×{scale} {mode}: {found:?}",
                            country.code(),
                            tone.name()
                        ));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// The cadences published sources give besides the table's.
#[test]
fn alternative_cadences() {
    let mut failures = Vec::new();
    let mut count = 0;
    for country in Country::ALL {
        for tone in ProgressTone::ALL {
            for cadence in country.alternatives(tone) {
                count += 1;
                let x = Path::Ulaw.apply(&render(cadence, country.tone(tone).level_dbm0, NOMINAL));
                for (mode, config) in &modes(country)[..2] {
                    let found = detect(*config, &x);
                    if found.len() != 1 || found[0].0 != tone {
                        failures.push(format!(
                            "{} {} alternative {mode}: {found:?}",
                            country.code(),
                            tone.name()
                        ));
                    }
                }
            }
        }
    }
    assert!(count >= 4, "alternatives: {count}");
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Every tone at −10, −20 and −30 dBm0 per component through µ-law and
/// A-law, with the country given and with all ten tables.
#[test]
fn levels_minus_10_to_minus_30_dbm0() {
    let mut failures = Vec::new();
    for country in Country::ALL {
        for tone in ProgressTone::ALL {
            for level in [-10.0, -20.0, -30.0] {
                let signal = render_tone(
                    country,
                    tone,
                    Play {
                        level_dbm0: Some(level),
                        ..NOMINAL
                    },
                );
                // The rendered level is the one asked for (on samples only).
                let on: Vec<i16> = signal.iter().copied().filter(|&v| v != 0).collect();
                let expected = tone_power(level);
                assert!(mean_square(&on) > expected * 0.5, "{level} dBm0");
                for path in [Path::Ulaw, Path::Alaw] {
                    let x = path.apply(&signal);
                    for (mode, config) in &modes(country)[..2] {
                        let found = detect(*config, &x);
                        if found.len() != 1 || !kind_ok((country, tone), config, found[0].0) {
                            failures.push(format!(
                                "{} {} {level} dBm0 {} {mode}: {found:?}",
                                country.code(),
                                tone.name(),
                                path.name()
                            ));
                        }
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Field-like conditions: cadence jitter ±8 %, frequency 1-1.5 % off,
/// 6 dB low, noise at 15, 10 or 8 dB SNR, dual tones with up to 6 dB
/// twist, µ-law.
#[test]
fn jitter_offset_and_noise() {
    let mut failures = Vec::new();
    for country in Country::ALL {
        for tone in [
            ProgressTone::Busy,
            ProgressTone::Ringback,
            ProgressTone::Dial,
            ProgressTone::Congestion,
        ] {
            for (k, (scale, snr, twist_db)) in [
                (0.985, 15.0, 0.0),
                (1.015, 15.0, 4.0),
                (1.01, 10.0, -4.0),
                (1.0, 8.0, 6.0),
            ]
            .into_iter()
            .enumerate()
            {
                let play = Play {
                    gain_db: -6.0,
                    scale,
                    jitter: 0.08,
                    snr_db: Some(snr),
                    twist_db,
                    seed: 500 + country as u64 * 10 + tone as u64 + 100 * k as u64,
                    ..NOMINAL
                };
                let x = Path::Ulaw.apply(&render_tone(country, tone, play));
                for (mode, config) in &modes(country)[..2] {
                    let found = detect(*config, &x);
                    if found.len() != 1 || !kind_ok((country, tone), config, found[0].0) {
                        failures.push(format!(
                            "{} {} ×{scale} {mode}: {found:?}",
                            country.code(),
                            tone.name()
                        ));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

fn no_detection(name: &str, x: &[i16], failures: &mut Vec<String>) {
    let mut configs = vec![("all", ProgressDetectorConfig::any_country(None))];
    configs.extend(
        Country::ALL
            .iter()
            .map(|&c| (c.code(), ProgressDetectorConfig::new(c))),
    );
    for (mode, config) in configs {
        let found = detect(config, x);
        if !found.is_empty() {
            failures.push(format!("{name} {mode}: {found:?}"));
        }
    }
}

#[test]
fn silence_noise_and_dtmf_are_not_progress_tones() {
    let mut failures = Vec::new();
    no_detection("silence", &vec![0i16; 40_000], &mut failures);
    for (k, power) in [1.0e3, 1.0e5, 1.0e7].into_iter().enumerate() {
        let mut noise = vec![0.0; 80_000];
        add_noise(&mut noise, power, 4 + k as u64);
        no_detection("white noise", &to_i16(&noise), &mut failures);
    }
    let mut generator = DtmfGenerator::new(DtmfGeneratorConfig::default()).expect("valid");
    let mut x = vec![0i16; 8000 * 6];
    for round in 0..3 {
        for d in Digit::ALL {
            generator.push(d).expect("room");
        }
        let part = &mut x[round * 16_000..(round + 1) * 16_000];
        generator.fill(part);
    }
    for path in Path::ALL {
        no_detection("dtmf", &path.apply(&x), &mut failures);
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn music_is_not_a_progress_tone() {
    let mut failures = Vec::new();
    for seed in 1..=10 {
        let x = music(60.0, seed);
        no_detection("music", &Path::Ulaw.apply(&x), &mut failures);
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn speech_is_not_a_progress_tone() {
    let Some(corpus) = speech_corpus() else {
        skip_without_speech("speech_is_not_a_progress_tone");
        return;
    };
    let mut failures = Vec::new();
    let mut seconds = 0.0;
    for (i, piece) in corpus.iter().enumerate() {
        seconds += piece.len() as f64 / 8000.0;
        let x = Path::ALL[i % 3].apply(piece);
        no_detection(&format!("speech {i}"), &x, &mut failures);
    }
    eprintln!(
        "speech: {:.1} min, {} pieces, all tables and each country",
        seconds / 60.0,
        corpus.len()
    );
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Tones with music or speech before and after them (as early media and
/// announcements put them): detected once, right kind.
#[test]
fn tones_between_music_or_speech() {
    let speech = speech_corpus();
    if speech.is_none() {
        skip_without_speech("tones_between_music_or_speech (speech half)");
    }
    let mut failures = Vec::new();
    let mut runs = 0;
    for country in Country::ALL {
        for (t, tone) in [
            ProgressTone::Busy,
            ProgressTone::Ringback,
            ProgressTone::Congestion,
            ProgressTone::Dial,
        ]
        .into_iter()
        .enumerate()
        {
            let seed = country as u64 * 10 + t as u64;
            let mut surroundings = vec![("music", music(3.0, seed), music(3.0, seed + 50))];
            if let Some(corpus) = speech {
                let piece = &corpus[(seed as usize) % corpus.len()];
                let n = piece.len().min(24_000);
                surroundings.push((
                    "speech",
                    piece[..n].to_vec(),
                    piece[piece.len() - n..].to_vec(),
                ));
            }
            for (name, before, after) in surroundings {
                let tone_audio = render_tone(country, tone, NOMINAL);
                let x: Vec<i16> = before
                    .iter()
                    .chain(&tone_audio)
                    .chain(&after)
                    .copied()
                    .collect();
                let x = Path::Alaw.apply(&x);
                for (mode, config) in &modes(country)[..2] {
                    runs += 1;
                    let found = detect(*config, &x);
                    let in_tone = |at: u64| {
                        at as usize > before.len()
                            && (at as usize) < before.len() + tone_audio.len()
                    };
                    if found.len() != 1 || found[0].0 != tone || !in_tone(found[0].2) {
                        failures.push(format!(
                            "{} {} {name} {mode}: {found:?}",
                            country.code(),
                            tone.name()
                        ));
                    }
                }
            }
        }
    }
    eprintln!("{runs} runs, {} failures", failures.len());
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Where several countries play the same signal, the preferred country is
/// reported; with none preferred, the closest fit (then table order).
#[test]
fn preferred_country_breaks_ties() {
    let cases = [
        // 425 Hz continuous: BR, DE and RU dial tone.
        (
            Country::De,
            ProgressTone::Dial,
            Some(Country::Ru),
            Country::Ru,
        ),
        (
            Country::De,
            ProgressTone::Dial,
            Some(Country::Br),
            Country::Br,
        ),
        (Country::De, ProgressTone::Dial, None, Country::Br),
        // ITU SIT: every country but CN and US.
        (
            Country::Fr,
            ProgressTone::SpecialInformation,
            Some(Country::Uk),
            Country::Uk,
        ),
        (
            Country::Fr,
            ProgressTone::SpecialInformation,
            None,
            Country::Au,
        ),
        // 425 Hz 1 s / 4 s: BR, DE and RU ringback.
        (
            Country::Br,
            ProgressTone::Ringback,
            Some(Country::De),
            Country::De,
        ),
        // A preferred country without that signal does not matter.
        (
            Country::Us,
            ProgressTone::Busy,
            Some(Country::Uk),
            Country::Us,
        ),
    ];
    let mut failures = Vec::new();
    for (signal, tone, preferred, expected) in cases {
        let x = render_tone(signal, tone, NOMINAL);
        let found = detect(ProgressDetectorConfig::any_country(preferred), &x);
        if found.len() != 1 || found[0].0 != tone || found[0].1 != expected {
            failures.push(format!(
                "{} {} preferred {preferred:?}: {found:?}",
                signal.code(),
                tone.name()
            ));
        }
    }
    // BR busy (250/250) and DE congestion (240/240) differ by 4 %: with
    // DE preferred the kind may be either (printed, not asserted).
    let x = render_tone(Country::Br, ProgressTone::Busy, NOMINAL);
    let found = detect(ProgressDetectorConfig::any_country(Some(Country::De)), &x);
    eprintln!("BR busy, DE preferred: {found:?}");
    assert!(failures.is_empty(), "{failures:#?}");
}
