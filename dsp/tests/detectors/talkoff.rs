//! Talk-off: at least 10 minutes of espeak-ng speech in several languages
//! and voices, plus music-like signals, on linear, µ-law and A-law audio,
//! must give zero DTMF digits and zero beeps.

use legato_dsp::dtmf::{DtmfDetector, DtmfDetectorConfig, DtmfEvent};

use crate::beep::run_beep;
use crate::common::{Path, music, skip_without_speech, speech_corpus};

fn count_digits(x: &[i16]) -> Vec<(char, u64)> {
    let mut detector = DtmfDetector::new(DtmfDetectorConfig::default()).expect("valid");
    let mut digits = Vec::new();
    for chunk in x.chunks(160) {
        detector.handle_samples(chunk);
        while let Some(event) = detector.poll_event() {
            if let DtmfEvent::Started { digit, start, .. } = event {
                digits.push((digit.to_char(), start));
            }
        }
    }
    digits
}

#[test]
fn speech_and_music_trigger_no_digit_and_no_beep() {
    let Some(corpus) = speech_corpus() else {
        skip_without_speech("talk-off");
        return;
    };
    let speech: Vec<i16> = corpus.iter().flatten().copied().collect();
    let speech_minutes = speech.len() as f64 / 8000.0 / 60.0;
    let music = music(180.0, 7);
    assert!(
        speech_minutes >= 10.0,
        "corpus only {speech_minutes:.1} min"
    );
    let mut failures = Vec::new();
    for (name, x) in [("speech", &speech), ("music", &music)] {
        for path in Path::ALL {
            let y = path.apply(x);
            let digits = count_digits(&y);
            let beeps = run_beep(&y, 160).len() / 2;
            eprintln!(
                "talk-off {name} {:.1} min {}: {} false digits, {} false beeps",
                y.len() as f64 / 480_000.0,
                path.name(),
                digits.len(),
                beeps
            );
            if !digits.is_empty() || beeps != 0 {
                eprintln!("{:?}", run_beep(&y, 160));
                failures.push(format!(
                    "{name} {}: digits {digits:?}, beeps {beeps}",
                    path.name()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
