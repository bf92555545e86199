//! Call-progress detector: confusion matrix per country, on nominal tones
//! and on tones 8 dB below nominal in white noise at 20 dB SNR, each on
//! linear, µ-law and A-law audio.

use legato_dsp::tone::{
    Country, ProgressDetector, ProgressDetectorConfig, ProgressEvent, ProgressTone,
    ProgressToneGenerator,
};

use crate::common::{Path, add_noise, mean_square};

/// Signal long enough for two cadence cycles (4 s for continuous tones).
fn render(
    country: Country,
    tone: ProgressTone,
    gain_db: f32,
    snr_db: Option<f64>,
    seed: u64,
) -> Vec<i16> {
    let spec = country.tone(tone);
    let ms = if spec.is_continuous() {
        4000
    } else {
        (spec.cycle_ms() * 2 + 1000).max(3000)
    } as usize;
    let mut generator = ProgressToneGenerator::new(country, tone, gain_db).expect("valid gain");
    // 300 ms of silence (or noise) first, then the tone.
    let mut x = vec![0i16; ms * 8 + 2400];
    generator.fill(&mut x[2400..]);
    if let Some(snr) = snr_db {
        // SNR against the tone's power while on.
        let on: Vec<i16> = x[2400..].iter().copied().filter(|&v| v != 0).collect();
        let power = mean_square(&on);
        let mut y: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
        add_noise(&mut y, power / 10f64.powf(snr / 10.0), seed);
        x = y
            .iter()
            .map(|&v| v.round().clamp(-32768.0, 32767.0) as i16)
            .collect();
    }
    x
}

fn classify(country: Country, x: &[i16]) -> (Option<ProgressTone>, u64) {
    let mut detector = ProgressDetector::new(ProgressDetectorConfig::new(country)).expect("valid");
    for chunk in x.chunks(160) {
        detector.handle_samples(chunk);
        if let Some(ProgressEvent::Detected { tone, at, .. }) = detector.poll_event() {
            return (Some(tone), at);
        }
    }
    (None, 0)
}

#[test]
fn confusion_matrix_per_country() {
    let conditions: [(&str, f32, Option<f64>); 2] = [
        ("nominal", 0.0, None),
        ("−8 dB, SNR 20 dB", -8.0, Some(20.0)),
    ];
    let mut failures = Vec::new();
    eprintln!(
        "| country | condition | path | busy | call-waiting | congestion | dial | ringback | sit | worst decision s |"
    );
    eprintln!("|---|---|---|---|---|---|---|---|---|---|");
    for country in Country::ALL {
        for (ci, &(condition, gain, snr)) in conditions.iter().enumerate() {
            let signals: Vec<Vec<i16>> = ProgressTone::ALL
                .iter()
                .enumerate()
                .map(|(t, &tone)| render(country, tone, gain, snr, 100 + t as u64 + 10 * ci as u64))
                .collect();
            for path in Path::ALL {
                let mut cells = Vec::new();
                let mut worst = 0.0f64;
                for (t, &tone) in ProgressTone::ALL.iter().enumerate() {
                    let (found, at) = classify(country, &path.apply(&signals[t]));
                    let name = found.map_or("none", ProgressTone::name);
                    if found == Some(tone) {
                        cells.push("✓".to_string());
                        worst = worst.max((at as f64 - 2400.0) / 8000.0);
                    } else {
                        cells.push(format!("✗ {name}"));
                        failures.push(format!(
                            "{} {condition} {}: {} -> {name}",
                            country.code(),
                            path.name(),
                            tone.name()
                        ));
                    }
                }
                eprintln!(
                    "| {} | {condition} | {} | {} | {worst:.2} |",
                    country.code(),
                    path.name(),
                    cells.join(" | ")
                );
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn silence_noise_and_dtmf_are_not_progress_tones() {
    let mut noise = vec![0.0; 80_000];
    add_noise(&mut noise, 1.0e5, 4);
    let noise: Vec<i16> = noise.iter().map(|&v| v as i16).collect();
    for country in Country::ALL {
        assert_eq!(classify(country, &vec![0i16; 40_000]).0, None);
        assert_eq!(classify(country, &noise).0, None, "{}", country.code());
    }
}
