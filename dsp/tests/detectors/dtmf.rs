//! DTMF detector against the ITU-T Q.24 reception criteria, on linear,
//! µ-law and A-law audio. Every criterion prints a `detected/expected` row;
//! these rows are the table in dsp/README.md.

use legato_dsp::dtmf::{
    Digit, DtmfDetector, DtmfDetectorConfig, DtmfEvent, DtmfGenerator, DtmfGeneratorConfig,
};

use crate::common::{Path, add_noise, add_tones, to_i16, tone_power};

/// One test tone: frequencies, levels, duration, and whether it must be
/// detected.
#[derive(Clone, Copy)]
pub(crate) struct Burst {
    pub(crate) digit: Digit,
    low_hz: f64,
    high_hz: f64,
    low_dbm0: f32,
    high_dbm0: f32,
    on: usize,
    off: usize,
    /// Samples of silence cut out of the middle of the tone (drop-out).
    dropout: usize,
    pub(crate) expect: bool,
}

impl Burst {
    fn nominal(digit: Digit, low_dbm0: f32, high_dbm0: f32) -> Self {
        let (lo, hi) = digit.frequencies();
        Self {
            digit,
            low_hz: f64::from(lo),
            high_hz: f64::from(hi),
            low_dbm0,
            high_dbm0,
            on: 400,
            off: 480,
            dropout: 0,
            expect: true,
        }
    }
}

struct Outcome {
    detected: usize,
    expected: usize,
    false_detections: usize,
    max_latency: u64,
    max_start_error: u64,
}

/// Renders bursts (after 100 ms of lead-in), optionally with white noise at
/// `snr_db` relative to each burst's two-tone power.
pub(crate) fn render(bursts: &[Burst], snr_db: Option<f64>, seed: u64) -> (Vec<f64>, Vec<usize>) {
    let total: usize = 800 + bursts.iter().map(|b| b.on + b.off + 40).sum::<usize>();
    let mut x = vec![0.0; total];
    let mut starts = Vec::new();
    let mut at = 800;
    for (i, b) in bursts.iter().enumerate() {
        let phase = i as f64 * 1.3;
        add_tones(
            &mut x,
            at,
            b.on,
            &[(b.low_hz, b.low_dbm0), (b.high_hz, b.high_dbm0)],
            phase,
        );
        if b.dropout > 0 {
            let mid = at + b.on / 2 - b.dropout / 2;
            x[mid..mid + b.dropout].fill(0.0);
        }
        starts.push(at);
        // Odd gaps so onsets fall anywhere within the detector's sub-blocks.
        at += b.on + b.off + (i * 13) % 40;
    }
    if let Some(snr) = snr_db {
        // Noise at the level of the loudest burst's SNR, over the whole run.
        let signal = bursts
            .iter()
            .map(|b| tone_power(b.low_dbm0) + tone_power(b.high_dbm0))
            .fold(0.0, f64::max);
        add_noise(&mut x, signal / 10f64.powf(snr / 10.0), seed);
    }
    (x, starts)
}

pub(crate) fn detect(
    x: &[i16],
    frame: usize,
    config: DtmfDetectorConfig,
) -> Vec<(Digit, u64, u64, Option<u64>)> {
    let mut detector = DtmfDetector::new(config).expect("valid config");
    let mut out: Vec<(Digit, u64, u64, Option<u64>)> = Vec::new();
    for chunk in x.chunks(frame).chain(std::iter::once(&[0i16; 1200][..])) {
        detector.handle_samples(chunk);
        while let Some(event) = detector.poll_event() {
            match event {
                DtmfEvent::Started {
                    digit, start, at, ..
                } => out.push((digit, start, at, None)),
                DtmfEvent::Ended { end, .. } => {
                    if let Some(last) = out.last_mut() {
                        last.3 = Some(end);
                    }
                }
            }
        }
    }
    out
}

fn judge(bursts: &[Burst], starts: &[usize], events: &[(Digit, u64, u64, Option<u64>)]) -> Outcome {
    let mut outcome = Outcome {
        detected: 0,
        expected: bursts.iter().filter(|b| b.expect).count(),
        false_detections: 0,
        max_latency: 0,
        max_start_error: 0,
    };
    let mut used = vec![false; bursts.len()];
    for &(digit, start, at, _) in events {
        let hit = bursts.iter().zip(starts).enumerate().find(|&(i, (b, &s))| {
            !used[i]
                && b.expect
                && b.digit == digit
                && start + 160 >= s as u64
                && start <= (s + b.on) as u64
        });
        match hit {
            Some((i, (_, &s))) => {
                used[i] = true;
                outcome.detected += 1;
                outcome.max_latency = outcome.max_latency.max(at - s as u64);
                outcome.max_start_error = outcome.max_start_error.max(start.abs_diff(s as u64));
            }
            None => outcome.false_detections += 1,
        }
    }
    outcome
}

fn each_digit(f: impl Fn(Digit) -> Vec<Burst>) -> Vec<Burst> {
    Digit::ALL.into_iter().flat_map(f).collect()
}

fn deviate(mut b: Burst, low_factor: f64, low_hz: f64, high_factor: f64, high_hz: f64) -> Burst {
    b.low_hz = b.low_hz * low_factor + low_hz;
    b.high_hz = b.high_hz * high_factor + high_hz;
    b
}

/// The Q.24 criteria: (name, bursts, SNR). Also the test set of the
/// spandsp comparison (`spandsp.rs`).
pub(crate) fn criteria() -> Vec<(&'static str, Vec<Burst>, Option<f64>)> {
    let base = |d| Burst::nominal(d, -10.0, -10.0);
    let mut list = vec![
        (
            "all 16 digits, nominal, −10 dBm0",
            each_digit(|d| vec![base(d)]),
            None,
        ),
        (
            "freq +1.5 % +2 Hz / −1.5 % −2 Hz (all sign combinations)",
            each_digit(|d| {
                let b = base(d);
                vec![
                    deviate(b, 1.015, 2.0, 1.015, 2.0),
                    deviate(b, 0.985, -2.0, 0.985, -2.0),
                    deviate(b, 1.015, 2.0, 0.985, -2.0),
                    deviate(b, 0.985, -2.0, 1.015, 2.0),
                ]
            }),
            None,
        ),
        (
            "freq ±1.5 % with −20 dBm0 and twist +4/−8",
            each_digit(|d| {
                let b = Burst::nominal(d, -20.0, -16.0);
                let r = Burst::nominal(d, -16.0, -24.0);
                vec![
                    deviate(b, 1.015, 0.0, 0.985, 0.0),
                    deviate(r, 0.985, 0.0, 1.015, 0.0),
                ]
            }),
            None,
        ),
        (
            "reject: one tone ±3.5 % off",
            each_digit(|d| {
                let mut b = base(d);
                b.expect = false;
                vec![
                    deviate(b, 1.035, 0.0, 1.0, 0.0),
                    deviate(b, 0.965, 0.0, 1.0, 0.0),
                    deviate(b, 1.0, 0.0, 1.035, 0.0),
                    deviate(b, 1.0, 0.0, 0.965, 0.0),
                ]
            }),
            None,
        ),
        (
            "reject: one tone ±4.5 % off",
            each_digit(|d| {
                let mut b = base(d);
                b.expect = false;
                vec![
                    deviate(b, 1.045, 0.0, 1.0, 0.0),
                    deviate(b, 0.955, 0.0, 1.0, 0.0),
                    deviate(b, 1.0, 0.0, 1.045, 0.0),
                    deviate(b, 1.0, 0.0, 0.955, 0.0),
                ]
            }),
            None,
        ),
        (
            "twist +4 dB forward (high louder)",
            each_digit(|d| {
                vec![
                    Burst::nominal(d, -10.0, -6.0),
                    Burst::nominal(d, -24.0, -20.0),
                ]
            }),
            None,
        ),
        (
            "twist −8 dB reverse (low louder)",
            each_digit(|d| {
                vec![
                    Burst::nominal(d, -6.0, -14.0),
                    Burst::nominal(d, -18.0, -26.0),
                ]
            }),
            None,
        ),
        (
            "level 0 dBm0 per tone (peaks clip)",
            each_digit(|d| vec![Burst::nominal(d, 0.0, 0.0)]),
            None,
        ),
        (
            "level −3 dBm0 per tone (peaks at full scale)",
            each_digit(|d| vec![Burst::nominal(d, -3.0, -3.0)]),
            None,
        ),
        (
            "level −26 dBm0 per tone",
            each_digit(|d| vec![Burst::nominal(d, -26.0, -26.0)]),
            None,
        ),
        (
            "reject: level −35 dBm0 per tone",
            each_digit(|d| {
                let mut b = Burst::nominal(d, -35.0, -35.0);
                b.expect = false;
                vec![b]
            }),
            None,
        ),
        (
            "40 ms on / 40 ms off",
            each_digit(|d| {
                let mut b = base(d);
                b.on = 320;
                b.off = 320;
                vec![b]
            }),
            None,
        ),
        (
            "reject: 20 ms tones",
            each_digit(|d| {
                let mut b = base(d);
                b.on = 160;
                b.off = 320;
                b.expect = false;
                vec![b]
            }),
            None,
        ),
        (
            "10 ms drop-out inside a 100 ms tone = one digit",
            each_digit(|d| {
                let mut b = base(d);
                b.on = 800;
                b.dropout = 80;
                vec![b]
            }),
            None,
        ),
    ];
    for seed in 0..3u64 {
        list.push((
            [
                "white noise, SNR 15 dB (seed 0)",
                "white noise, SNR 15 dB (seed 1)",
                "white noise, SNR 15 dB (seed 2)",
            ][seed as usize],
            each_digit(|d| vec![base(d)]),
            Some(15.0),
        ));
    }
    list
}

#[test]
fn q24_criteria_on_linear_ulaw_alaw() {
    let config = DtmfDetectorConfig::default();
    let mut failures = Vec::new();
    let mut worst_latency = 0;
    eprintln!("| criterion | path | detected/expected | false | max latency ms |");
    eprintln!("|---|---|---|---|---|");
    for (index, (name, bursts, snr)) in criteria().into_iter().enumerate() {
        let (x, starts) = render(&bursts, snr, 17 + index as u64);
        let x = to_i16(&x);
        for path in Path::ALL {
            let y = path.apply(&x);
            let frame = [160, 80, 37, 240][index % 4];
            let events = detect(&y, frame, config);
            let outcome = judge(&bursts, &starts, &events);
            let latency_ms = outcome.max_latency as f64 / 8.0;
            eprintln!(
                "| {name} | {} | {}/{} | {} | {:.1} |",
                path.name(),
                outcome.detected,
                outcome.expected,
                outcome.false_detections,
                latency_ms
            );
            worst_latency = worst_latency.max(outcome.max_latency);
            if outcome.detected != outcome.expected || outcome.false_detections != 0 {
                failures.push(format!(
                    "{name} / {}: {}/{} false {}",
                    path.name(),
                    outcome.detected,
                    outcome.expected,
                    outcome.false_detections
                ));
            }
            if outcome.max_start_error > 40 {
                failures.push(format!(
                    "{name} / {}: start error {} samples",
                    path.name(),
                    outcome.max_start_error
                ));
            }
        }
    }
    eprintln!(
        "worst decision latency: {:.1} ms after onset",
        worst_latency as f64 / 8.0
    );
    assert!(worst_latency <= 45 * 8, "latency {worst_latency} samples");
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn generator_round_trip_every_frame_size() {
    for frame in [1, 80, 160, 333] {
        let config = DtmfGeneratorConfig::default().with_durations_ms(45, 45);
        let mut generator = DtmfGenerator::new(config).unwrap();
        generator.push_str("147*2580369#ABCD").unwrap();
        let mut x = vec![0i16; 16 * 720 + 1600];
        generator.fill(&mut x);
        for path in Path::ALL {
            let events = detect(&path.apply(&x), frame, DtmfDetectorConfig::default());
            let digits: String = events.iter().map(|e| e.0.to_char()).collect();
            assert_eq!(digits, "147*2580369#ABCD", "frame {frame} {}", path.name());
            for (i, e) in events.iter().enumerate() {
                let start = (i * 720) as u64;
                let end = e.3.expect("every digit ends");
                assert!(e.1.abs_diff(start) <= 16, "start {} vs {start}", e.1);
                assert!((end - e.1).abs_diff(360) <= 24, "duration {}", end - e.1);
            }
        }
    }
}

#[test]
fn silence_and_noise_alone_give_nothing() {
    let mut x = vec![0.0; 8000 * 20];
    add_noise(&mut x, tone_power(-20.0), 99);
    let x = to_i16(&x);
    for path in Path::ALL {
        assert!(detect(&path.apply(&x), 160, DtmfDetectorConfig::default()).is_empty());
    }
    assert!(detect(&vec![0i16; 8000], 160, DtmfDetectorConfig::default()).is_empty());
    // Full-scale square-ish garbage must not panic or detect.
    let garbage: Vec<i16> = (0..16000)
        .map(|i| if (i / 3) % 2 == 0 { i16::MAX } else { i16::MIN })
        .collect();
    let _ = detect(&garbage, 160, DtmfDetectorConfig::default());
}
