//! Answering-machine detection on synthetic human and machine greetings
//! (espeak-ng, several voices and languages), with and without a beep, on
//! linear and G.711 audio.

use legato_dsp::amd::{Amd, AmdConfig, AmdVerdict};

use crate::common::{Path, add_tones, have_speech_tools, skip_without_speech, speech, to_i16};

const HUMAN: [(&str, &str); 6] = [
    ("en", "Hello?"),
    ("en-us+f2", "Yes, hello."),
    ("de", "Hallo?"),
    ("fr+m3", "Allô?"),
    ("es+f4", "¿Diga?"),
    ("ru", "Алло?"),
];

const MACHINE: [(&str, &str); 4] = [
    (
        "en",
        "Hi, you have reached the voicemail of John Smith. I cannot take your call right now, please leave a message after the tone.",
    ),
    (
        "en-us+f2",
        "Thank you for calling Acme Corporation. Our office is currently closed.",
    ),
    (
        "de",
        "Guten Tag, Sie sind verbunden mit dem Anrufbeantworter von Familie Müller. Bitte sprechen Sie nach dem Signalton.",
    ),
    (
        "fr+m3",
        "Bonjour, vous êtes sur la messagerie de Pierre, laissez un message après le bip.",
    ),
];

/// `lead` ms of silence, the phrase, then `tail` ms of silence (and a
/// 1 kHz beep at its start if `beep`).
fn call(voice: &str, text: &str, lead: usize, tail: usize, beep: bool) -> Option<Vec<i16>> {
    let words = speech(voice, 160, text)?;
    let mut x = vec![0.0; lead * 8];
    x.extend(words.iter().map(|&v| f64::from(v)));
    let at = x.len() + 2400;
    x.extend(std::iter::repeat_n(0.0, tail * 8));
    if beep {
        add_tones(&mut x, at, 3200, &[(1000.0, -12.0)], 0.0);
    }
    Some(to_i16(&x))
}

fn verdict(x: &[i16]) -> (AmdVerdict, String) {
    let mut amd = Amd::new(AmdConfig::default()).expect("valid");
    for chunk in x.chunks(160) {
        amd.handle_samples(chunk);
    }
    match amd.poll_decision() {
        Some(d) => (
            d.verdict,
            format!(
                "{:?} at {:.2} s, {} words",
                d.reason,
                d.at as f64 / 8000.0,
                d.words
            ),
        ),
        None => (AmdVerdict::Unknown, "undecided".into()),
    }
}

#[test]
fn human_and_machine_greetings() {
    if !have_speech_tools() {
        skip_without_speech("amd");
        return;
    }
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for (voice, text) in HUMAN {
        rows.push((
            "human",
            voice,
            text,
            call(voice, text, 600, 3000, false),
            AmdVerdict::Human,
        ));
    }
    for (voice, text) in MACHINE {
        rows.push((
            "machine",
            voice,
            text,
            call(voice, text, 400, 2000, false),
            AmdVerdict::Machine,
        ));
    }
    // Beep only after a short silence (a voicemail that skips its greeting).
    rows.push((
        "machine (beep only)",
        "-",
        "-",
        Some({
            let mut x = vec![0.0; 8000 + 3200 + 8000];
            add_tones(&mut x, 8000, 3200, &[(1000.0, -12.0)], 0.0);
            to_i16(&x)
        }),
        AmdVerdict::Machine,
    ));
    // Nobody says anything.
    rows.push((
        "silence",
        "-",
        "-",
        Some(vec![0i16; 8000 * 6]),
        AmdVerdict::Machine,
    ));
    eprintln!("| case | voice | path | verdict | reason |");
    eprintln!("|---|---|---|---|---|");
    let mut correct = 0;
    let mut total = 0;
    for (kind, voice, _text, x, expected) in &rows {
        let Some(x) = x else { continue };
        for path in Path::ALL {
            let (got, why) = verdict(&path.apply(x));
            total += 1;
            if got == *expected {
                correct += 1;
            } else {
                failures.push(format!("{kind} {voice} {}: {got:?} ({why})", path.name()));
            }
            eprintln!("| {kind} | {voice} | {} | {got:?} | {why} |", path.name());
        }
    }
    eprintln!("AMD: {correct}/{total} correct");
    assert!(failures.is_empty(), "{failures:#?}");
}
