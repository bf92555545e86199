//! VAD frame-level precision and recall against ground truth, for plain
//! webrtc-vad, gated webrtc-vad (the default) and the energy mode, at clean,
//! 20, 10 and 5 dB SNR, on linear and G.711 audio.

use legato_dsp::vad::{Vad, VadConfig, VadMode};

use crate::common::{Noise, Path, add_noise, skip_without_speech, speech_corpus};

/// Utterances separated by 0.8-2.5 s of silence, the truth per 10 ms frame
/// (frame energy of the clean speech above −45 dBm0, pauses shorter than
/// 300 ms inside an utterance counted as speech) and the speech power.
fn build(corpus: &[Vec<i16>]) -> (Vec<i16>, Vec<bool>, f64) {
    let mut rng = Noise::new(77);
    let mut x = vec![0i16; 8000];
    for piece in corpus.iter().step_by(3).take(12) {
        let cut = &piece[..piece.len().min(8000 * 4)];
        x.extend_from_slice(cut);
        let gap = 6400 + (rng.uniform() * 13_600.0) as usize;
        x.extend(std::iter::repeat_n(0i16, gap));
    }
    let threshold = legato_dsp::goertzel::dbm0_to_power(-45.0) as f64 * 2.0;
    let mut truth: Vec<bool> = x
        .chunks(80)
        .map(|f| f.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / 80.0 > threshold)
        .collect();
    // Fill short pauses (< 300 ms) between speech frames.
    let mut last: Option<usize> = None;
    for i in 0..truth.len() {
        if truth[i] {
            if let Some(l) = last
                && i - l <= 30
            {
                truth[l..i].iter_mut().for_each(|t| *t = true);
            }
            last = Some(i);
        }
    }
    let active: Vec<f64> = x
        .chunks(80)
        .zip(&truth)
        .filter(|(_, t)| **t)
        .flat_map(|(f, _)| f.iter().map(|&v| f64::from(v) * f64::from(v)))
        .collect();
    let power = active.iter().sum::<f64>() / active.len().max(1) as f64;
    (x, truth, power)
}

fn score(x: &[i16], truth: &[bool], config: VadConfig) -> (f64, f64) {
    let mut vad = Vad::new(config).expect("valid");
    let (mut tp, mut fp, mut fn_) = (0u32, 0u32, 0u32);
    for (frame, &t) in x.chunks(80).zip(truth) {
        vad.handle_samples(frame);
        while vad.poll_event().is_some() {}
        match (vad.is_speech(), t) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, true) => fn_ += 1,
            _ => {}
        }
    }
    let precision = f64::from(tp) / f64::from((tp + fp).max(1));
    let recall = f64::from(tp) / f64::from((tp + fn_).max(1));
    (precision, recall)
}

#[test]
fn precision_recall_per_snr() {
    let Some(corpus) = speech_corpus() else {
        skip_without_speech("vad precision/recall");
        return;
    };
    let (clean, truth, power) = build(corpus);
    let modes = [
        (
            "webrtc-vad (mode 2, no gate)",
            VadMode::Webrtc {
                aggressiveness: 2,
                noise_gate_db: None,
            },
        ),
        (
            "webrtc-vad + 6 dB noise gate (default)",
            VadMode::Webrtc {
                aggressiveness: 2,
                noise_gate_db: Some(6.0),
            },
        ),
        (
            "energy, 9 dB over noise floor",
            VadMode::Energy { threshold_db: 9.0 },
        ),
    ];
    eprintln!("| mode | path | clean P/R | 20 dB P/R | 10 dB P/R | 5 dB P/R |");
    eprintln!("|---|---|---|---|---|---|");
    let mut gated_10db = (0.0, 0.0);
    for (name, mode) in modes {
        for path in Path::ALL {
            let mut cells = Vec::new();
            for snr in [None, Some(20.0), Some(10.0), Some(5.0)] {
                let mut y: Vec<f64> = clean.iter().map(|&v| f64::from(v)).collect();
                if let Some(snr) = snr {
                    add_noise(&mut y, power / 10f64.powf(snr / 10.0), 31);
                }
                let y: Vec<i16> = y
                    .iter()
                    .map(|&v| v.round().clamp(-32768.0, 32767.0) as i16)
                    .collect();
                let y = path.apply(&y);
                let (p, r) = score(
                    &y,
                    &truth,
                    VadConfig {
                        mode,
                        ..VadConfig::default()
                    },
                );
                if snr == Some(10.0) && name.contains("default") && path == Path::Linear {
                    gated_10db = (p, r);
                }
                cells.push(format!("{:.2}/{:.2}", p, r));
            }
            eprintln!("| {name} | {} | {} |", path.name(), cells.join(" | "));
        }
    }
    // Useful at 10 dB: neither "always speech" nor deaf.
    assert!(
        gated_10db.0 >= 0.75 && gated_10db.1 >= 0.6,
        "gated webrtc at 10 dB: {gated_10db:?}"
    );
}
