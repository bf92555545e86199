//! ns per 20 ms frame (160 samples) for each detector, and for all of them
//! together as one leg would run them. Input: a mix of speech-like noise,
//! DTMF and silence, so every code path (including the frequency search on
//! likely tones) is exercised.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use legato_dsp::amd::{Amd, AmdConfig};
use legato_dsp::beep::{BeepDetector, BeepDetectorConfig};
use legato_dsp::dtmf::{
    Digit, DtmfDetector, DtmfDetectorConfig, DtmfGenerator, DtmfGeneratorConfig,
};
use legato_dsp::tone::{
    Country, ProgressDetector, ProgressDetectorConfig, ProgressTone, ProgressToneGenerator,
};
use legato_dsp::vad::{Vad, VadConfig, VadMode};

/// 2 s of test signal: DTMF digits, then pseudo-random noise bursts.
fn signal() -> Vec<i16> {
    let mut generator = DtmfGenerator::new(DtmfGeneratorConfig::default()).expect("valid");
    for d in Digit::ALL {
        generator.push(d).expect("room");
    }
    let mut x = vec![0i16; 16_000];
    generator.fill(&mut x[..8000]);
    let mut state = 0x1234_5678u32;
    for (n, v) in x[8000..].iter_mut().enumerate() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let burst = if (n / 1600) % 2 == 0 { 4000 } else { 200 };
        *v = ((state >> 16) as i16 as i32 * burst / 32768) as i16;
    }
    x
}

fn per_frame<T>(
    c: &mut Criterion,
    name: &str,
    mut make: impl FnMut() -> T,
    mut feed: impl FnMut(&mut T, &[i16]),
) {
    let x = signal();
    let frames: Vec<&[i16]> = x.chunks(160).collect();
    let mut detector = make();
    let mut i = 0;
    c.bench_function(name, |b| {
        b.iter(|| {
            feed(&mut detector, black_box(frames[i % frames.len()]));
            i += 1;
        });
    });
}

fn detectors(c: &mut Criterion) {
    per_frame(
        c,
        "dtmf_detector_20ms",
        || DtmfDetector::new(DtmfDetectorConfig::default()).expect("valid"),
        |d, f| {
            d.handle_samples(f);
            while d.poll_event().is_some() {}
        },
    );
    per_frame(
        c,
        "beep_detector_20ms",
        || BeepDetector::new(BeepDetectorConfig::default()).expect("valid"),
        |d, f| {
            d.handle_samples(f);
            while d.poll_event().is_some() {}
        },
    );
    per_frame(
        c,
        "progress_detector_us_20ms",
        || ProgressDetector::new(ProgressDetectorConfig::new(Country::Us)).expect("valid"),
        |d, f| {
            d.handle_samples(f);
            while d.poll_event().is_some() {}
        },
    );
    // One detector over all ten country tables (unknown country).
    per_frame(
        c,
        "progress_detector_all_20ms",
        || ProgressDetector::new(ProgressDetectorConfig::any_country(None)).expect("valid"),
        |d, f| {
            d.handle_samples(f);
            while d.poll_event().is_some() {}
        },
    );
    // The same on call-progress tones (DE ringback, UK ringback, US busy,
    // 4 s each, looped), where every block is classified and matched; a
    // fresh detector every 2 s so it keeps analysing after its decision.
    let mut tones = Vec::new();
    for (country, tone) in [
        (Country::De, ProgressTone::Ringback),
        (Country::Uk, ProgressTone::Ringback),
        (Country::Us, ProgressTone::Busy),
    ] {
        let mut generator = ProgressToneGenerator::new(country, tone, -6.0).expect("valid");
        let mut x = vec![0i16; 32_000];
        generator.fill(&mut x);
        tones.extend(x);
    }
    let frames: Vec<&[i16]> = tones.chunks(160).collect();
    for (name, config) in [
        (
            "progress_detector_us_on_tones_20ms",
            ProgressDetectorConfig::new(Country::Us),
        ),
        (
            "progress_detector_all_on_tones_20ms",
            ProgressDetectorConfig::any_country(None),
        ),
    ] {
        let fresh = ProgressDetector::new(config).expect("valid");
        let mut detector = fresh.clone();
        let mut i = 0;
        c.bench_function(name, |b| {
            b.iter(|| {
                if i % 100 == 0 {
                    detector.clone_from(&fresh);
                }
                detector.handle_samples(black_box(frames[i % frames.len()]));
                while detector.poll_event().is_some() {}
                i += 1;
            });
        });
    }
    per_frame(
        c,
        "vad_webrtc_gated_20ms",
        || Vad::new(VadConfig::default()).expect("valid"),
        |d, f| {
            d.handle_samples(f);
            while d.poll_event().is_some() {}
        },
    );
    per_frame(
        c,
        "vad_energy_20ms",
        || {
            Vad::new(VadConfig {
                mode: VadMode::Energy { threshold_db: 9.0 },
                ..VadConfig::default()
            })
            .expect("valid")
        },
        |d, f| {
            d.handle_samples(f);
            while d.poll_event().is_some() {}
        },
    );
    // AMD decides within seconds and then ignores input, so each iteration
    // runs a fresh detector over 1 s (50 frames) of undecided analysis;
    // divide by 50 for ns per frame.
    let x = signal();
    c.bench_function("amd_50_frames", |b| {
        b.iter_batched(
            || Amd::new(AmdConfig::default()).expect("valid"),
            |mut amd| {
                for f in x[8000..].chunks(160).take(50) {
                    amd.handle_samples(black_box(f));
                }
                amd
            },
            BatchSize::SmallInput,
        );
    });
    // One leg running DTMF + beep + call progress + VAD together (AMD
    // contains its own VAD and beep detector and replaces them while it runs).
    per_frame(
        c,
        "all_detectors_per_leg_20ms",
        || {
            (
                DtmfDetector::new(DtmfDetectorConfig::default()).expect("valid"),
                BeepDetector::new(BeepDetectorConfig::default()).expect("valid"),
                ProgressDetector::new(ProgressDetectorConfig::new(Country::Us)).expect("valid"),
                Vad::new(VadConfig::default()).expect("valid"),
            )
        },
        |(dtmf, beep, progress, vad), f| {
            dtmf.handle_samples(f);
            beep.handle_samples(f);
            progress.handle_samples(f);
            vad.handle_samples(f);
            while dtmf.poll_event().is_some() {}
            while beep.poll_event().is_some() {}
            while progress.poll_event().is_some() {}
            while vad.poll_event().is_some() {}
        },
    );
}

criterion_group!(benches, detectors);
criterion_main!(benches);
