//! Answering-machine detection on synthetic human and machine greetings
//! (espeak-ng, several voices and languages), with and without a beep, on
//! linear and G.711 audio.

use legato_dsp::amd::{Amd, AmdConfig, AmdVerdict};

use crate::common::{
    Path, add_noise, add_tones, have_speech_tools, mean_square, skip_without_speech, speak_all,
    speech, to_i16,
};

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

/// Short answers a person gives, by voice.
const ANSWERS: [(&str, &str); 16] = [
    ("en", "Hello?"),
    ("en-us", "Hi."),
    ("en-gb", "Yes?"),
    ("en-us", "Hello, this is Mark."),
    ("en-gb", "Good morning."),
    ("de", "Hallo?"),
    ("de", "Ja, bitte?"),
    ("fr", "Allô?"),
    ("fr", "Oui, allô?"),
    ("es", "¿Diga?"),
    ("es", "Hola."),
    ("it", "Pronto?"),
    ("pt-br", "Alô?"),
    ("ru", "Алло?"),
    ("nl", "Hallo, met Jan."),
    ("pl", "Halo?"),
];

/// What a person says after waiting for the caller to speak.
const FOLLOW_UPS: [(&str, &str); 6] = [
    ("en", "Hello? Who is this?"),
    ("en-us", "Hello?"),
    ("de", "Hallo? Wer ist da?"),
    ("fr", "Allô? Qui est à l'appareil?"),
    ("es", "¿Hola? ¿Quién es?"),
    ("it", "Pronto? Chi parla?"),
];

/// Voicemail and office greetings of several lengths (short: about 2 s,
/// medium: about 4 s, long: 7 s and more).
const GREETINGS: [(&str, &str); 14] = [
    ("en", "Please leave a message after the tone."),
    ("en-us", "You have reached 555 0142. Leave a message."),
    (
        "en-gb",
        "Hello, you've reached Sarah. I can't come to the phone right now, so please leave your name and number.",
    ),
    (
        "en-us",
        "Thank you for calling Northwind Traders. Our offices are closed. Our business hours are Monday to Friday, nine to five. Please call again during business hours or leave a message.",
    ),
    ("de", "Bitte hinterlassen Sie eine Nachricht."),
    (
        "de",
        "Hier ist der Anschluss von Thomas Weber. Ich bin gerade nicht erreichbar, bitte sprechen Sie nach dem Piepton.",
    ),
    ("fr", "Laissez un message après le bip."),
    (
        "fr",
        "Bonjour, vous êtes bien chez Claire et Marc. Nous ne pouvons pas vous répondre pour le moment. Laissez-nous un message et nous vous rappellerons.",
    ),
    ("es", "Deje su mensaje después de la señal."),
    (
        "es",
        "Hola, ha llamado a la oficina de Ana García. En este momento no puedo atenderle, deje su nombre y su número.",
    ),
    (
        "it",
        "Risponde la segreteria telefonica di Marco Rossi. Lasciate un messaggio dopo il segnale acustico.",
    ),
    (
        "pt-br",
        "Você ligou para Paulo. Não posso atender agora, deixe seu recado após o sinal.",
    ),
    (
        "nl",
        "U bent verbonden met de voicemail van Pieter. Spreek een bericht in na de piep.",
    ),
    (
        "ru",
        "Здравствуйте, вы позвонили Ивану. Оставьте, пожалуйста, сообщение после сигнала.",
    ),
];

/// One call of the labelled set.
struct Case {
    label: &'static str,
    expected: AmdVerdict,
    audio: Vec<i16>,
}

/// Appends `ms` of silence.
fn pad(x: &mut Vec<f64>, ms: usize) {
    x.extend(std::iter::repeat_n(0.0, ms * 8));
}

/// Builds the labelled set: 64 people answering, 56 machine greetings, 6
/// lines where nobody speaks. Every parameter is a deterministic function
/// of the case's index, so the set is the same on every run.
fn labelled_set() -> Option<Vec<Case>> {
    // (voice, speed, text) for every utterance, generated in parallel.
    let mut jobs: Vec<(String, u32, &str)> = Vec::new();
    for (i, (voice, text)) in ANSWERS.iter().enumerate() {
        for k in 0..4 {
            let variant = crate::common::VARIANTS[(i + k) % crate::common::VARIANTS.len()];
            jobs.push((
                format!("{voice}{variant}"),
                140 + ((i * 17 + k * 29) % 60) as u32,
                text,
            ));
        }
    }
    for (i, (voice, text)) in FOLLOW_UPS.iter().enumerate() {
        jobs.push((format!("{voice}+f2"), 150 + (i * 11 % 40) as u32, text));
    }
    for (i, (voice, text)) in GREETINGS.iter().enumerate() {
        for k in 0..4 {
            let variant = crate::common::VARIANTS[(i * 3 + k) % crate::common::VARIANTS.len()];
            jobs.push((
                format!("{voice}{variant}"),
                140 + ((i * 13 + k * 23) % 60) as u32,
                text,
            ));
        }
    }
    let clips = speak_all(&jobs);
    let clips: Vec<Vec<i16>> = clips.into_iter().collect::<Option<_>>()?;
    let (answers, rest) = clips.split_at(ANSWERS.len() * 4);
    let (follow_ups, greetings) = rest.split_at(FOLLOW_UPS.len());
    let as_f64 = |x: &[i16]| x.iter().map(|&v| f64::from(v)).collect::<Vec<f64>>();
    let mut cases = Vec::new();
    // Noise on a third of the calls: white noise 20 or 12 dB below the
    // speech's mean power.
    let noisy = |x: &mut Vec<f64>, i: usize, speech_power: f64| match i % 3 {
        1 => add_noise(x, speech_power / 100.0, i as u64 + 1),
        2 => add_noise(x, speech_power / 10f64.powf(1.2), i as u64 + 1),
        _ => {}
    };
    for (i, answer) in answers.iter().enumerate() {
        let power = mean_square(answer);
        let mut x = Vec::new();
        // People speak 0.3-1.2 s after answering.
        pad(&mut x, 300 + (i * 131) % 900);
        x.extend(as_f64(answer));
        let label = if i % 2 == 0 {
            // Then wait for the caller.
            pad(&mut x, 5000);
            "human: answer, silence"
        } else {
            // Then, after a pause of 0.9-1.5 s, speak again.
            pad(&mut x, 900 + (i * 97) % 600);
            x.extend(as_f64(&follow_ups[i % follow_ups.len()]));
            pad(&mut x, 4000);
            "human: answer, pause, more speech"
        };
        noisy(&mut x, i, power);
        cases.push(Case {
            label,
            expected: AmdVerdict::Human,
            audio: to_i16(&x),
        });
    }
    for (i, greeting) in greetings.iter().enumerate() {
        let power = mean_square(greeting);
        let mut x = Vec::new();
        // Machines answer with 0.2-1.5 s of silence.
        pad(&mut x, 200 + (i * 173) % 1300);
        x.extend(as_f64(greeting));
        let label = if i % 2 == 0 {
            // A beep 0.2-0.8 s after the greeting: 400-1400 Hz, 200-800 ms.
            pad(&mut x, 200 + (i * 89) % 600);
            let at = x.len();
            let len = (200 + (i * 61) % 600) * 8;
            pad(&mut x, len / 8 + 3000);
            let freq = 400.0 + ((i * 137) % 1000) as f64;
            add_tones(&mut x, at, len, &[(freq, -14.0)], 0.0);
            "machine: greeting, beep"
        } else {
            pad(&mut x, 3000);
            "machine: greeting"
        };
        noisy(&mut x, i, power);
        cases.push(Case {
            label,
            expected: AmdVerdict::Machine,
            audio: to_i16(&x),
        });
    }
    // Nobody speaks: dead air, or line noise 40-50 dB below speech level.
    for i in 0..6 {
        let mut x = vec![0.0; 8000 * 6];
        if i > 0 {
            add_noise(&mut x, 10f64.powf(2.5 + i as f64 * 0.2), 100 + i as u64);
        }
        cases.push(Case {
            label: "nobody speaks",
            expected: AmdVerdict::Machine,
            audio: to_i16(&x),
        });
    }
    Some(cases)
}

/// The p-th percentile (0..=100) of sorted `v`.
fn percentile(v: &[f64], p: usize) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() - 1) * p).div_ceil(100)]
}

/// The labelled set of acceptance 5: accuracy and decision time over 126
/// calls, each through one of linear, µ-law and A-law in turn.
#[test]
fn labelled_set_accuracy_and_decision_time() {
    if !have_speech_tools() {
        skip_without_speech("amd labelled set");
        return;
    }
    let Some(cases) = labelled_set() else {
        skip_without_speech("amd labelled set (a voice is missing)");
        return;
    };
    let mut by_label: Vec<(&str, usize, usize, Vec<f64>)> = Vec::new();
    let mut human_times = Vec::new();
    let mut machine_times = Vec::new();
    let mut failures = Vec::new();
    let mut correct = 0;
    for (i, case) in cases.iter().enumerate() {
        let path = Path::ALL[i % 3];
        let mut amd = Amd::new(AmdConfig::default()).expect("valid");
        for chunk in path.apply(&case.audio).chunks(160) {
            amd.handle_samples(chunk);
        }
        let decision = amd.poll_decision();
        let (got, seconds) = decision.map_or((AmdVerdict::Unknown, f64::NAN), |d| {
            (d.verdict, d.at as f64 / 8000.0)
        });
        let row = match by_label.iter().position(|r| r.0 == case.label) {
            Some(r) => r,
            None => {
                by_label.push((case.label, 0, 0, Vec::new()));
                by_label.len() - 1
            }
        };
        by_label[row].2 += 1;
        if got == case.expected {
            correct += 1;
            by_label[row].1 += 1;
            by_label[row].3.push(seconds);
        } else {
            failures.push(format!(
                "case {i} ({}, {}): {got:?} {:?} at {seconds:.2} s",
                case.label,
                path.name(),
                decision.map(|d| d.reason)
            ));
        }
        match case.expected {
            AmdVerdict::Human => human_times.push(seconds),
            _ => machine_times.push(seconds),
        }
    }
    for v in [&mut human_times, &mut machine_times] {
        v.retain(|t| t.is_finite());
        v.sort_by(f64::total_cmp);
    }
    eprintln!("| calls | correct | decision p50 | decision p95 |");
    eprintln!("|---|---|---|---|");
    for (label, ok, total, times) in &mut by_label {
        times.sort_by(f64::total_cmp);
        eprintln!(
            "| {label} | {ok}/{total} | {:.2} s | {:.2} s |",
            percentile(times, 50),
            percentile(times, 95)
        );
    }
    let accuracy = correct as f64 / cases.len() as f64;
    eprintln!(
        "AMD labelled set: {correct}/{} correct ({:.1} %); humans decided p50 {:.2} s, p95 {:.2} s; machines p50 {:.2} s, p95 {:.2} s",
        cases.len(),
        accuracy * 100.0,
        percentile(&human_times, 50),
        percentile(&human_times, 95),
        percentile(&machine_times, 50),
        percentile(&machine_times, 95),
    );
    for f in &failures {
        eprintln!("miss: {f}");
    }
    assert!(cases.len() >= 100);
    assert!(accuracy >= 0.95, "accuracy {accuracy}: {failures:#?}");
    assert!(
        percentile(&human_times, 95) < 3.0,
        "human p95 decision time"
    );
}
