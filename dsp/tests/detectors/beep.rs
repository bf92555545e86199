//! Beep detector: detection rate, latency, frequency and duration accuracy
//! over 300-2500 Hz, and false positives on tones that are not beeps.

use legato_dsp::beep::{BeepDetector, BeepDetectorConfig, BeepEvent};
use legato_dsp::dtmf::{Digit, DtmfGenerator, DtmfGeneratorConfig};

use crate::common::{Path, add_noise, add_tones, music, to_i16, tone_power};

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
