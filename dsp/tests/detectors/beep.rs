//! Beep detector: detection rate, latency, frequency and duration accuracy
//! over 300-2500 Hz, and false positives on tones that are not beeps.

use legato_dsp::beep::{BeepDetector, BeepDetectorConfig, BeepEvent};
use legato_dsp::dtmf::{Digit, DtmfGenerator, DtmfGeneratorConfig};

use std::sync::OnceLock;

use crate::common::{
    Path, add_noise, add_note, add_pink_noise, add_tones, have_speech_tools, music,
    skip_without_speech, speech, speech_corpus, to_i16, tone_power,
};

pub(crate) fn run_beep(x: &[i16], frame: usize) -> Vec<BeepEvent> {
    let mut detector = BeepDetector::new(BeepDetectorConfig::default()).expect("valid config");
    let mut events = Vec::new();
    for chunk in x.chunks(frame).chain(std::iter::once(&[0i16; 800][..])) {
        detector.handle_samples(chunk);
        while let Some(e) = detector.poll_event() {
            events.push(e);
        }
    }
    events
}

const FREQS: [f64; 13] = [
    300.0, 350.0, 425.0, 440.0, 500.0, 800.0, 1000.0, 1200.0, 1400.0, 1700.0, 2000.0, 2300.0,
    2500.0,
];

#[test]
fn beeps_across_range_levels_noise_and_g711() {
    // (duration ms, level dBm0, SNR dB)
    let cases: [(usize, f32, Option<f64>); 7] = [
        (80, -15.0, None),
        (100, -15.0, None),
        (250, -30.0, None),
        (500, -3.0, None),
        (1000, -20.0, Some(20.0)),
        (120, -10.0, Some(20.0)),
        (2000, -25.0, Some(25.0)),
    ];
    let mut expected = 0;
    let mut detected = 0;
    let mut false_positives = 0;
    let mut worst_latency = 0u64;
    let mut worst_freq_error = 0.0f32;
    let mut worst_duration_error = 0u64;
    let mut failures = Vec::new();
    for path in Path::ALL {
        for (ci, &(ms, level, snr)) in cases.iter().enumerate() {
            // Beeps one after another, 300 ms apart, at odd offsets.
            let len = ms * 8;
            let mut x = vec![0.0; FREQS.len() * (len + 2400 + 40) + 800];
            let mut onsets = Vec::new();
            let mut at = 800 + ci * 7;
            for (i, &f) in FREQS.iter().enumerate() {
                add_tones(&mut x, at, len, &[(f, level)], i as f64);
                onsets.push(at);
                at += len + 2400 + (i * 11) % 40;
            }
            if let Some(snr) = snr {
                add_noise(
                    &mut x,
                    tone_power(level) / 10f64.powf(snr / 10.0),
                    5 + ci as u64,
                );
            }
            let y = path.apply(&to_i16(&x));
            let events = run_beep(&y, [160, 80, 333][ci % 3]);
            let mut started = 0;
            for event in &events {
                match *event {
                    BeepEvent::Started {
                        onset,
                        at,
                        frequency_hz,
                        ..
                    } => {
                        let Some(i) = onsets.iter().position(|&o| onset.abs_diff(o as u64) <= 40)
                        else {
                            false_positives += 1;
                            continue;
                        };
                        started += 1;
                        detected += 1;
                        let latency = at - onsets[i] as u64;
                        if ms >= 100 {
                            worst_latency = worst_latency.max(latency);
                        }
                        let err = (frequency_hz - FREQS[i] as f32).abs();
                        worst_freq_error = worst_freq_error.max(err / FREQS[i] as f32 * 100.0);
                    }
                    BeepEvent::Ended { onset, end, .. } => {
                        worst_duration_error =
                            worst_duration_error.max((end - onset).abs_diff(len as u64));
                    }
                }
            }
            expected += FREQS.len();
            if started != FREQS.len() {
                let found: Vec<f64> = events
                    .iter()
                    .filter_map(|e| match e {
                        BeepEvent::Started { onset, .. } => onsets
                            .iter()
                            .position(|&o| onset.abs_diff(o as u64) <= 40)
                            .map(|i| FREQS[i]),
                        _ => None,
                    })
                    .collect();
                eprintln!("{} {ms} ms: found {found:?}", path.name());
                failures.push(format!(
                    "{} {ms} ms {level} dBm0 snr {snr:?}: {started}/{}",
                    path.name(),
                    FREQS.len()
                ));
            }
        }
    }
    eprintln!(
        "beep detection: {detected}/{expected} detected, {false_positives} false, worst latency {:.1} ms (beeps ≥ 100 ms), \
         worst frequency error {worst_freq_error:.2} %, worst duration error {:.1} ms",
        worst_latency as f64 / 8.0,
        worst_duration_error as f64 / 8.0
    );
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(false_positives, 0);
    assert!(worst_latency <= 800, "latency {worst_latency}");
    assert!(worst_freq_error < 1.0);
    assert!(worst_duration_error <= 80);
}

#[test]
fn not_beeps() {
    let mut cases: Vec<(&str, Vec<i16>)> = Vec::new();
    // US ringback (440 + 480 Hz), UK ringback (400 + 450), dial tone
    // (350 + 440), each for 2 s, at equal and unequal levels.
    for (name, a, b) in [
        ("440+480", 440.0, 480.0),
        ("400+450", 400.0, 450.0),
        ("350+440", 350.0, 440.0),
    ] {
        for (la, lb) in [(-19.0, -19.0), (-16.0, -22.0)] {
            let mut x = vec![0.0; 16000];
            add_tones(&mut x, 0, 16000, &[(a, la), (b, lb)], 0.0);
            cases.push((name, to_i16(&x)));
        }
    }
    // Every DTMF digit, 200 ms each.
    let config = DtmfGeneratorConfig::default().with_durations_ms(200, 100);
    let mut generator = DtmfGenerator::new(config).expect("valid");
    for d in Digit::ALL {
        generator.push(d).expect("room");
    }
    let mut dtmf = vec![0i16; 16 * 2400];
    generator.fill(&mut dtmf);
    cases.push(("dtmf", dtmf));
    // 60 ms tones (too short), out-of-range tones.
    let mut short = vec![0.0; 8000];
    add_tones(&mut short, 800, 480, &[(1000.0, -10.0)], 0.0);
    cases.push(("60 ms tone", to_i16(&short)));
    for f in [200.0, 3000.0] {
        let mut x = vec![0.0; 8000];
        add_tones(&mut x, 0, 8000, &[(f, -10.0)], 0.0);
        cases.push(("out of range", to_i16(&x)));
    }
    // White noise and music-like signals.
    let mut noise = vec![0.0; 80_000];
    add_noise(&mut noise, tone_power(-15.0), 3);
    cases.push(("noise", to_i16(&noise)));
    cases.push(("music", music(60.0, 11)));
    for (name, x) in &cases {
        for path in Path::ALL {
            let events = run_beep(&path.apply(x), 160);
            assert!(events.is_empty(), "{name} {}: {events:?}", path.name());
        }
    }
}

/// Beep frequencies of the acceptance table (issue: 400-2000 Hz).
const TABLE_FREQS: [f64; 9] = [
    400.0, 520.0, 650.0, 800.0, 1000.0, 1250.0, 1500.0, 1750.0, 2000.0,
];
/// Beep durations of the acceptance table, ms.
const TABLE_MS: [usize; 4] = [80, 100, 250, 1000];
/// Beep levels, dBm0, cycled through the table.
const TABLE_LEVELS: [f32; 4] = [-30.0, -20.0, -10.0, -3.0];
/// Largest allowed delay of `Started` after the true onset: 100 ms.
const MAX_LATENCY: u64 = 800;

/// Answering-machine greetings from espeak-ng (several voices and
/// languages), generated once. `None` without espeak-ng.
fn greetings() -> Option<&'static [Vec<i16>]> {
    static GREETINGS: OnceLock<Option<Vec<Vec<i16>>>> = OnceLock::new();
    GREETINGS
        .get_or_init(|| {
            if !have_speech_tools() {
                return None;
            }
            let texts = [
                (
                    "en",
                    "Hi, you have reached Anna. Please leave a message after the tone.",
                ),
                (
                    "en+f2",
                    "Sorry I missed your call. Leave your name and number.",
                ),
                (
                    "en+m3",
                    "The person you are calling is not available. Record your message.",
                ),
                (
                    "de",
                    "Bitte hinterlassen Sie eine Nachricht nach dem Signalton.",
                ),
                ("fr+f4", "Laissez-moi un message après le bip sonore."),
                ("es+m7", "Deje su mensaje después de la señal."),
            ];
            texts
                .iter()
                .enumerate()
                .map(|(i, (voice, text))| speech(voice, 150 + 10 * i as u32, text))
                .collect()
        })
        .as_deref()
}

/// A condition of the acceptance table: any combination of 2nd and 3rd
/// harmonics at −15 dB, white noise at 10 dB SNR and a spoken greeting
/// right before the beep.
#[derive(Debug, Clone, Copy)]
struct Condition {
    harmonics: bool,
    noise: bool,
    speech: bool,
}

impl Condition {
    fn all() -> impl Iterator<Item = Self> {
        (0..8).map(|i| Self {
            harmonics: i & 1 != 0,
            noise: i & 2 != 0,
            speech: i & 4 != 0,
        })
    }

    fn name(self) -> String {
        let mut parts = Vec::new();
        if self.harmonics {
            parts.push("harmonics −15 dB");
        }
        if self.noise {
            parts.push("white noise 10 dB SNR");
        }
        if self.speech {
            parts.push("after speech");
        }
        if parts.is_empty() {
            "clean".into()
        } else {
            parts.join(" + ")
        }
    }
}

/// One signal per condition and duration: every table frequency once (at
/// cycled levels and odd offsets), each after a greeting and a 0-300 ms gap
/// if `speech`, followed by 600 ms of silence (or noise). Returns the
/// samples and the true onsets and lengths.
fn table_signal(
    condition: Condition,
    ms: usize,
    greetings: &[Vec<i16>],
    seed: u64,
) -> (Vec<f64>, Vec<(usize, usize)>) {
    let len = ms * 8;
    let mut x = vec![0.0; 800];
    let mut beeps = Vec::new();
    for (i, &f) in TABLE_FREQS.iter().enumerate() {
        let level = TABLE_LEVELS[(i + ms) % TABLE_LEVELS.len()];
        let slot_start = x.len();
        if condition.speech {
            let greeting = &greetings[(i + ms) % greetings.len()];
            x.extend(greeting.iter().map(|&v| f64::from(v)));
            let gap = [0, 400, 800, 1600, 2400][(i + ms / 10) % 5];
            x.extend(std::iter::repeat_n(0.0, gap));
        }
        let onset = x.len() + (i * 13 + ms) % 40;
        x.resize(onset + len + 4800, 0.0);
        let phase = i as f64 * 0.7;
        add_tones(&mut x, onset, len, &[(f, level)], phase);
        if condition.harmonics {
            for (h, p) in [(2.0, 1.3), (3.0, 2.9)] {
                if f * h < 4000.0 {
                    add_tones(&mut x, onset, len, &[(f * h, level - 15.0)], phase + p);
                }
            }
        }
        if condition.noise {
            let power = tone_power(level) / 10.0;
            add_noise(&mut x[slot_start..], power, seed + i as u64);
        }
        beeps.push((onset, len));
    }
    (x, beeps)
}

/// Items 1 and 4 of the beep issue: every table frequency, duration,
/// condition (and combination) and G.711 law gives exactly one `Started`
/// within 100 ms of the true onset, and nothing else.
#[test]
fn beep_table_400_2000_hz_all_conditions() {
    let greetings = greetings();
    if greetings.is_none() {
        skip_without_speech("beep table, after-speech conditions");
    }
    let mut failures = Vec::new();
    let mut worst_latency = 0u64;
    let mut report = Vec::new();
    for condition in Condition::all() {
        let Some(greetings) = (if condition.speech {
            greetings
        } else {
            Some(&[][..])
        }) else {
            continue;
        };
        for path in [Path::Ulaw, Path::Alaw] {
            let (mut expected, mut detected, mut false_positives) = (0, 0, 0);
            let mut condition_latency = 0u64;
            for (di, &ms) in TABLE_MS.iter().enumerate() {
                let (x, beeps) = table_signal(condition, ms, greetings, 100 + di as u64);
                let y = path.apply(&to_i16(&x));
                let events = run_beep(&y, [160, 80, 333, 160][di]);
                let mut found = vec![false; beeps.len()];
                for event in &events {
                    let BeepEvent::Started { at, .. } = *event else {
                        continue;
                    };
                    let slot = beeps.iter().position(|&(onset, _)| {
                        at >= onset as u64 && at <= (onset + MAX_LATENCY as usize) as u64
                    });
                    match slot {
                        Some(i) if !found[i] => {
                            found[i] = true;
                            let latency = at - beeps[i].0 as u64;
                            condition_latency = condition_latency.max(latency);
                        }
                        _ => {
                            false_positives += 1;
                            failures.push(format!(
                                "{} {} {ms} ms: unexpected {event:?}",
                                condition.name(),
                                path.name()
                            ));
                        }
                    }
                }
                expected += beeps.len();
                detected += found.iter().filter(|&&f| f).count();
                for (i, _) in found.iter().enumerate().filter(|(_, f)| !**f) {
                    failures.push(format!(
                        "{} {} {ms} ms: {} Hz at {} dBm0 missed",
                        condition.name(),
                        path.name(),
                        TABLE_FREQS[i],
                        TABLE_LEVELS[(i + ms) % TABLE_LEVELS.len()]
                    ));
                }
            }
            worst_latency = worst_latency.max(condition_latency);
            report.push(format!(
                "{:<58} {:<6} {detected}/{expected} detected, {false_positives} false, worst latency {:.1} ms",
                condition.name(),
                path.name(),
                condition_latency as f64 / 8.0
            ));
        }
    }
    for line in &report {
        eprintln!("beep table: {line}");
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(worst_latency <= MAX_LATENCY, "latency {worst_latency}");
}

/// Harmonic levels (dB relative to the fundamental, from the 2nd) of a
/// sung vowel at `f0`: a flat source falling 12 dB per octave, shaped by
/// three formant resonances.
fn vowel_harmonics(f0: f64, formants: [f64; 3]) -> Vec<f64> {
    let envelope = |f: f64| {
        let source = -12.0 * (f / f0).log2();
        let resonance: f64 = formants
            .iter()
            .map(|&fc| {
                let bandwidth = 80.0 + fc * 0.05;
                -10.0 * (1.0 + ((f - fc) / (bandwidth / 2.0)).powi(2)).log10()
            })
            .sum();
        source + resonance
    };
    let base = envelope(f0);
    (2..=12)
        .map(|h| envelope(f0 * f64::from(h)) - base)
        .collect()
}

/// The negative set of the beep issue (item 2), by class. Each signal is
/// long enough that its notes and tones outlast the 80 ms minimum.
fn not_beep_classes() -> Vec<(String, Vec<i16>)> {
    let mut classes: Vec<(String, Vec<i16>)> = Vec::new();
    // US ringback, 440 + 480 Hz, 2 s on / 4 s off, three cycles, at equal
    // and unequal levels and in noise.
    for (la, lb, snr) in [
        (-19.0, -19.0, None),
        (-16.0, -22.0, None),
        (-10.0, -10.0, None),
        (-19.0, -19.0, Some(15.0)),
    ] {
        let mut x = vec![0.0; 3 * 48_000];
        for cycle in 0..3 {
            add_tones(
                &mut x,
                cycle * 48_000,
                16_000,
                &[(440.0, la), (480.0, lb)],
                0.3,
            );
        }
        if let Some(snr) = snr {
            add_noise(&mut x, 2.0 * tone_power(la) / 10f64.powf(snr / 10.0), 41);
        }
        classes.push((format!("US ringback {la}/{lb} dBm0"), to_i16(&x)));
    }
    // All 16 DTMF digits at several durations, levels and twists.
    for on_ms in [40, 100, 250, 1000] {
        for (low, twist) in [
            (-25.0, 0.0),
            (-12.0, 4.0),
            (-6.0, -4.0),
            (-3.0, 2.0),
            (-20.0, 8.0),
            (-10.0, -8.0),
        ] {
            let config = DtmfGeneratorConfig::default()
                .with_durations_ms(on_ms, 100)
                .with_levels(low, twist);
            let mut generator = DtmfGenerator::new(config).expect("valid");
            for d in Digit::ALL {
                generator.push(d).expect("room");
            }
            let mut x = vec![0i16; 16 * (on_ms as usize + 100) * 8 + 800];
            generator.fill(&mut x);
            classes.push((format!("DTMF {on_ms} ms {low} dBm0 twist {twist}"), x));
        }
    }
    // Music: the shared music-like signal.
    classes.push(("music (common::music)".into(), music(120.0, 21)));
    // Sustained notes with vibrato (string-like 1/h harmonics, and
    // flute-like weak harmonics), MIDI 55-96 (196-2093 Hz).
    let semitones = |midi: i32| 440.0 * 2f64.powf(f64::from(midi - 69) / 12.0);
    for (name, harmonics) in [
        (
            "string",
            (2..=12)
                .map(|h| -20.0 * f64::from(h).log10())
                .collect::<Vec<_>>(),
        ),
        ("flute", vec![-12.0, -18.0, -24.0, -30.0]),
    ] {
        let mut x = vec![0.0; 42 * 8000 + 800];
        for (i, midi) in (55..97).enumerate() {
            let depth = 0.005 + 0.01 * f64::from(i as u32 % 3) / 2.0;
            let rate = 4.5 + f64::from(i as u32 % 5) * 0.5;
            let level = -25.0 + (i % 4) as f32 * 5.0;
            add_note(
                &mut x,
                i * 8000 + 400,
                6400,
                semitones(midi),
                level,
                &harmonics,
                (depth, rate),
                80,
                i as u64,
            );
        }
        classes.push((format!("{name} notes with vibrato"), to_i16(&x)));
    }
    // Organ-like steady notes (no vibrato, no decay) with a rich harmonic
    // series, up to A6 (1760 Hz: above about 1900 Hz no harmonic is left in
    // band and the note is physically a beep), and steady notes whose
    // every harmonic is 15 dB down, whose 4th harmonic is in band (below
    // 950 Hz).
    let organ: Vec<f64> = vec![-3.0, -6.0, -8.0, -10.0, -12.0, -14.0, -16.0, -18.0];
    let mut x = vec![0.0; 42 * 8000 + 800];
    for (i, midi) in (55..94).enumerate() {
        add_note(
            &mut x,
            i * 8000 + 400,
            6400,
            semitones(midi),
            -15.0,
            &organ,
            (0.0, 0.0),
            40,
            i as u64,
        );
    }
    classes.push(("organ notes, rich harmonics".into(), to_i16(&x)));
    let mut x = vec![0.0; 26 * 8000 + 800];
    for (i, midi) in (55..81).enumerate() {
        add_note(
            &mut x,
            i * 8000 + 400,
            6400,
            semitones(midi),
            -15.0,
            &[-15.0; 11],
            (0.0, 0.0),
            40,
            i as u64,
        );
    }
    classes.push((
        "steady notes, all harmonics −15 dB, f0 < 950 Hz".into(),
        to_i16(&x),
    ));
    // Chords: major and minor triads of organ-like notes.
    let mut x = vec![0.0; 24 * 8000 + 800];
    for (i, root) in (55..79).enumerate() {
        let third = if i % 2 == 0 { 4 } else { 3 };
        for (k, interval) in [0, third, 7].into_iter().enumerate() {
            add_note(
                &mut x,
                i * 8000 + 400,
                6400,
                semitones(root + interval),
                -20.0,
                &organ[..4],
                (0.0, 0.0),
                40,
                (i * 3 + k) as u64,
            );
        }
    }
    classes.push(("organ chords".into(), to_i16(&x)));
    // Sung vowels /a/, /i/, /u/ at 196-880 Hz with vibrato.
    let vowels = [
        [800.0, 1200.0, 2500.0],
        [300.0, 2300.0, 3000.0],
        [320.0, 800.0, 2400.0],
    ];
    let mut x = vec![0.0; 26 * 8000 + 800];
    for (i, midi) in (55..81).enumerate() {
        let harmonics = vowel_harmonics(semitones(midi), vowels[i % 3]);
        add_note(
            &mut x,
            i * 8000 + 400,
            6400,
            semitones(midi),
            -18.0,
            &harmonics,
            (0.012 + 0.004 * (i % 3) as f64, 5.5),
            400,
            i as u64,
        );
    }
    classes.push(("sung vowels".into(), to_i16(&x)));
    // Noise and silence.
    for level in [-35.0, -15.0, -5.0] {
        let mut x = vec![0.0; 80_000];
        add_noise(&mut x, tone_power(level), 7);
        classes.push((format!("white noise {level} dBm0"), to_i16(&x)));
        let mut x = vec![0.0; 80_000];
        add_pink_noise(&mut x, tone_power(level), 8);
        classes.push((format!("pink noise {level} dBm0"), to_i16(&x)));
    }
    classes.push(("silence".into(), vec![0; 40_000]));
    // Speech: the whole espeak-ng corpus (8 languages, 6 voices each),
    // clean and in white and pink noise at 10 dB SNR.
    if let Some(corpus) = speech_corpus() {
        let clean: Vec<i16> = corpus.iter().flatten().copied().collect();
        let speech: Vec<f64> = clean.iter().map(|&v| f64::from(v)).collect();
        classes.push(("speech (espeak-ng corpus)".into(), clean));
        let power = speech.iter().map(|v| v * v).sum::<f64>() / speech.len() as f64;
        let mut white = speech.clone();
        add_noise(&mut white, power / 10.0, 51);
        classes.push(("speech + white noise 10 dB SNR".into(), to_i16(&white)));
        let mut pink = speech;
        add_pink_noise(&mut pink, power / 10.0, 52);
        classes.push(("speech + pink noise 10 dB SNR".into(), to_i16(&pink)));
    }
    classes
}

/// Item 2 of the beep issue: no `Started` on ringback, DTMF, speech in
/// noise, music and synthetic notes, noise or silence, on linear, µ-law and
/// A-law audio.
#[test]
fn beep_negative_set_has_no_false_positive() {
    if speech_corpus().is_none() {
        skip_without_speech("beep negative set, speech classes");
    }
    let mut failures = Vec::new();
    for (name, x) in not_beep_classes() {
        let mut counts = Vec::new();
        for path in Path::ALL {
            let events = run_beep(&path.apply(&x), 160);
            let started: Vec<_> = events
                .iter()
                .filter(|e| matches!(e, BeepEvent::Started { .. }))
                .collect();
            counts.push(started.len());
            if !started.is_empty() {
                failures.push(format!("{name} {}: {started:?}", path.name()));
            }
        }
        eprintln!(
            "beep negatives: {name:<50} {:.1} s: false beeps linear/µ-law/A-law {counts:?}",
            x.len() as f64 / 8000.0
        );
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
