//! Detector sets through legatod (issue 13, acceptance 3 and 4): many legs
//! at once, each fed by its own real RTP peer, judged by the events the
//! daemon raises.
//!
//! - **Beep**: espeak-ng greetings (five voices) followed by a beep of
//!   400-2,000 Hz lasting 80, 250 or 1,000 ms, clean, with its 2nd and 3rd
//!   harmonics 15 dB down (those below 3,400 Hz), or in white noise 10 dB below the beep, over
//!   PCMU or PCMA: one BeepDetectionComplete each, at the right frequency,
//!   decided at most 100 ms into the beep. US ringback, DTMF keys, speech
//!   and music raise none (their detection times out with
//!   BeepDetectionError instead).
//! - **Call-progress tones**: busy and dial tones of all ten countries,
//!   with the country given and with none: ToneDetected exactly once, with
//!   the right kind (and country when given). Speech and music raise none.
//!   A leg hears a busy tone before it is connected: nothing until it is.

use std::net::SocketAddr;
use std::time::Duration;

use legato_client::{Client, EventFilter, proto};
use legato_dsp::dtmf::{Digit, DtmfGenerator, DtmfGeneratorConfig};
use legato_dsp::goertzel::dbm0_to_amplitude;
use legato_dsp::tone::{Country, ProgressTone, ProgressToneGenerator};
use legato_tests::{
    G711, Io, Options, Peer, connected_leg_with, daemon_or_skip, espeak_voice_8k, local_rtp,
    per_backend, send_payloads_paced, wait_event,
};
use proto::event::Kind;

/// Voices and greetings before the beeps.
const GREETINGS: [(&str, &str); 5] = [
    ("en", "Please leave a message after the tone."),
    ("de", "Bitte sprechen Sie nach dem Signalton."),
    ("fr+f2", "Laissez un message après le bip."),
    ("es+m3", "Deje su mensaje después de la señal."),
    ("en-us+f4", "You have reached the voicemail of Anna."),
];

/// Beep frequencies, Hz.
const BEEP_HZ: [f64; 5] = [400.0, 700.0, 1000.0, 1400.0, 2000.0];
/// Beep durations, ms.
const BEEP_MS: [usize; 3] = [80, 250, 1000];
/// The beep's level, dBm0.
const BEEP_DBM0: f32 = -12.0;

#[derive(Clone, Copy, Debug)]
enum Condition {
    Clean,
    /// 2nd and 3rd harmonics each 15 dB below the fundamental.
    Harmonics,
    /// White noise over the whole call, 10 dB below the beep.
    Noise,
}

/// Deterministic Gaussian noise (xorshift, Box-Muller).
fn gaussian_noise(len: usize, rms: f64, seed: u64) -> Vec<f64> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    (0..len)
        .map(|_| {
            let (u1, u2) = (uniform(), uniform());
            rms * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
        })
        .collect()
}

fn to_i16(x: &[f64]) -> Vec<i16> {
    x.iter()
        .map(|&v| v.round().clamp(-32768.0, 32767.0) as i16)
        .collect()
}

/// A greeting, 300 ms of silence, the beep, 700 ms of silence; and where
/// the beep starts (ms).
fn beep_call(greeting: &[i16], hz: f64, ms: usize, condition: Condition, seed: u64) -> Vec<i16> {
    let mut x: Vec<f64> = greeting.iter().map(|&v| f64::from(v)).collect();
    x.extend(std::iter::repeat_n(0.0, 2400));
    let amplitude = f64::from(dbm0_to_amplitude(BEEP_DBM0));
    let harmonic = amplitude * 10f64.powf(-15.0 / 20.0);
    let w = 2.0 * std::f64::consts::PI * hz / 8000.0;
    for n in 0..ms * 8 {
        let t = n as f64;
        let mut v = amplitude * (w * t).sin();
        if let Condition::Harmonics = condition {
            // Only harmonics inside the telephone band (a line's filters
            // remove the rest before the 8 kHz sampling).
            for (h, phase) in [(2.0, 0.7), (3.0, 1.9)] {
                if h * hz < 3400.0 {
                    v += harmonic * (h * w * t + phase).sin();
                }
            }
        }
        x.push(v);
    }
    x.extend(std::iter::repeat_n(0.0, 5600));
    if let Condition::Noise = condition {
        let rms = amplitude / 2f64.sqrt() * 10f64.powf(-10.0 / 20.0);
        let noise = gaussian_noise(x.len(), rms, seed);
        for (v, n) in x.iter_mut().zip(noise) {
            *v += n;
        }
    }
    to_i16(&x)
}

/// Music-like audio: plucked notes with a 1/h harmonic series decaying,
/// bowed notes with vibrato, three-note chords, and a flute-like note (a
/// strong fundamental, 2nd harmonic 10 dB down, breath noise, slight
/// vibrato).
fn music(seconds: usize, seed: u64) -> Vec<i16> {
    // A minor-key melody, MIDI note numbers.
    const NOTES: [f64; 12] = [
        57.0, 60.0, 64.0, 69.0, 67.0, 64.0, 65.0, 62.0, 71.0, 72.0, 76.0, 74.0,
    ];
    let hz = |midi: f64| 440.0 * 2f64.powf((midi - 69.0) / 12.0);
    let len = seconds * 8000;
    let mut x = vec![0.0f64; len];
    let noise = gaussian_noise(len, 1.0, seed);
    let note_len = 3200;
    for (k, start) in (0..len).step_by(note_len).enumerate() {
        let root = NOTES[(k + seed as usize) % NOTES.len()];
        let style = (k + seed as usize) % 4;
        let chord: &[f64] = if style == 2 { &[0.0, 3.0, 7.0] } else { &[0.0] };
        for &step in chord {
            let f = hz(root + step);
            for n in 0..note_len.min(len - start) {
                let t = n as f64 / 8000.0;
                let (envelope, vibrato, harmonics): (f64, f64, &[f64]) = match style {
                    0 => ((-t * 3.0).exp(), 0.0, &[1.0, 0.5, 0.33, 0.25, 0.2, 0.17]),
                    1 | 2 => (
                        (t * 20.0).min(1.0),
                        0.012 * (2.0 * std::f64::consts::PI * 5.5 * t).sin(),
                        &[1.0, 0.6, 0.4, 0.3, 0.2],
                    ),
                    _ => (
                        (t * 15.0).min(1.0),
                        0.004 * (2.0 * std::f64::consts::PI * 5.0 * t).sin(),
                        &[1.0, 0.32, 0.05],
                    ),
                };
                let phase = 2.0 * std::f64::consts::PI * f * (t + vibrato / 8.0);
                let mut v = 0.0;
                for (h, a) in harmonics.iter().enumerate() {
                    v += a * ((h + 1) as f64 * phase).sin();
                }
                if style == 3 {
                    v += 0.03 * noise[start + n];
                }
                x[start + n] += 3000.0 * envelope * v;
            }
        }
    }
    to_i16(&x)
}

/// DTMF keys "0123456789*#ABCD", 100 ms on and off, then a 1 s "5", at
/// −10 dBm0 per tone.
fn dtmf_keys() -> Vec<i16> {
    let mut out = Vec::new();
    let mut add = |keys: &str, on: u32| {
        let mut g = DtmfGenerator::new(
            DtmfGeneratorConfig {
                low_dbm0: -10.0,
                high_dbm0: -10.0,
                ..DtmfGeneratorConfig::default()
            }
            .with_durations_ms(on, 100),
        )
        .unwrap();
        for key in keys.chars() {
            g.push(Digit::from_char(key).unwrap()).unwrap();
        }
        let mut pcm = vec![0i16; keys.len() * (on as usize + 100) * 8];
        g.fill(&mut pcm);
        out.extend(pcm);
    };
    add("0123456789*#ABCD", 100);
    add("5", 1000);
    out
}

/// The ISO 3166 code events use for `country` (`GB` for the UK).
fn iso_code(country: Country) -> &'static str {
    match country {
        Country::Uk => "GB",
        other => other.code(),
    }
}

/// `ms` of `country`'s `tone`.
fn progress(country: Country, tone: ProgressTone, ms: usize) -> Vec<i16> {
    let mut g = ProgressToneGenerator::new(country, tone, 0.0).unwrap();
    let mut out = vec![0; ms * 8];
    g.fill(&mut out);
    out
}

/// Sends `pcm` as paced 20 ms `law` packets from `socket` to `to`.
fn send(socket: std::net::UdpSocket, to: SocketAddr, law: G711, pcm: Vec<i16>) {
    send_payloads_paced(&socket, to, law.pt(), 160, &law.frames(&pcm));
}

/// One leg of a set: what it is fed and what it must raise.
struct Case {
    name: String,
    law: G711,
    pcm: Vec<i16>,
    /// Beep: the frequency; progress: (kind, country when given).
    expect: Expect,
}

enum Expect {
    Beep(f64),
    NoBeep,
    Tone(&'static str, Option<&'static str>),
    NoTone,
}

/// Creates a connected leg per case (each in its own session), runs
/// `enable` on it, sends every case's audio at once, and returns each
/// leg's events, in case order.
async fn run_set<F, Fut>(client: &Client, cases: &[Case], enable: F) -> Vec<Vec<proto::Event>>
where
    F: Fn(String, usize) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut events = client.watch_events(EventFilter::new()).await.unwrap();
    let mut legs = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let session = client.create_session(None).await.unwrap();
        let peer = Peer::new().unwrap();
        let leg = connected_leg_with(client, &session, &peer, case.law.formats())
            .await
            .unwrap();
        enable(leg.leg_id.clone(), i).await;
        legs.push((peer, leg));
    }
    let senders: Vec<_> = cases
        .iter()
        .zip(&legs)
        .map(|(case, (peer, leg))| {
            let socket = peer.socket.try_clone().unwrap();
            let (to, law, pcm) = (local_rtp(leg), case.law, case.pcm.clone());
            std::thread::spawn(move || send(socket, to, law, pcm))
        })
        .collect();
    tokio::task::spawn_blocking(move || {
        for s in senders {
            s.join().unwrap();
        }
    })
    .await
    .unwrap();
    let mut by_leg = vec![Vec::new(); cases.len()];
    while let Ok(e) = wait_event(&mut events, Duration::from_millis(1500), |_| true).await {
        if let Some(i) = legs.iter().position(|(_, leg)| e.leg_id == leg.leg_id) {
            by_leg[i].push(e);
        }
    }
    by_leg
}

async fn beep_set(io: Io) {
    let greetings: Option<Vec<Vec<i16>>> = GREETINGS
        .iter()
        .map(|(voice, text)| espeak_voice_8k(voice, text))
        .collect();
    let Some(greetings) = greetings else {
        eprintln!("skipped: needs espeak-ng and ffmpeg");
        return;
    };
    let Some(speech) = espeak_voice_8k(
        "en-us+m3",
        "Thank you for calling. All our agents are busy at the moment. Your call is important to us, please hold the line and we will be with you shortly.",
    ) else {
        eprintln!("skipped: needs espeak-ng and ffmpeg");
        return;
    };
    let daemon = daemon_or_skip!(Options::new(io));
    let client = daemon.client().await.unwrap();
    let mut cases = Vec::new();
    let conditions = [Condition::Clean, Condition::Harmonics, Condition::Noise];
    for (fi, &hz) in BEEP_HZ.iter().enumerate() {
        for (di, &ms) in BEEP_MS.iter().enumerate() {
            for (ci, &condition) in conditions.iter().enumerate() {
                let i = cases.len();
                let law = if i % 2 == 0 { G711::Pcmu } else { G711::Pcma };
                let greeting = &greetings[(fi + di + ci) % greetings.len()];
                cases.push(Case {
                    name: format!("{hz} Hz {ms} ms {condition:?} {law:?}"),
                    law,
                    pcm: beep_call(greeting, hz, ms, condition, i as u64 + 1),
                    expect: Expect::Beep(hz),
                });
            }
        }
    }
    let mut ringback = progress(Country::Us, ProgressTone::Ringback, 6500);
    ringback.extend(progress(Country::Us, ProgressTone::Ringback, 2500));
    for (name, law, pcm) in [
        ("US ringback", G711::Pcmu, ringback),
        ("DTMF keys", G711::Pcma, dtmf_keys()),
        ("speech", G711::Pcmu, speech.clone()),
        ("music", G711::Pcmu, music(8, 1)),
        ("music", G711::Pcma, music(8, 2)),
    ] {
        cases.push(Case {
            name: name.to_owned(),
            law,
            pcm,
            expect: Expect::NoBeep,
        });
    }
    // Negative legs time out a little after their audio ends.
    let timeouts: Vec<u32> = cases
        .iter()
        .map(|c| match c.expect {
            Expect::NoBeep => (c.pcm.len() / 8) as u32 + 300,
            _ => 0,
        })
        .collect();
    let client2 = client.clone();
    let events = run_set(&client, &cases, |leg, i| {
        let client = client2.clone();
        let timeout = timeouts[i];
        async move { client.enable_beep_detection(&leg, timeout).await.unwrap() }
    })
    .await;
    let mut failures = Vec::new();
    let mut worst = 0;
    for (case, seen) in cases.iter().zip(&events) {
        let beeps: Vec<proto::BeepDetectionComplete> = seen
            .iter()
            .filter_map(|e| match &e.kind {
                Some(Kind::BeepDetectionComplete(b)) => Some(*b),
                _ => None,
            })
            .collect();
        match case.expect {
            Expect::Beep(hz) => match beeps.as_slice() {
                [b] => {
                    worst = worst.max(b.duration_ms);
                    if (b.frequency_hz - hz).abs() > hz * 0.02 || b.duration_ms > 100 {
                        failures.push(format!("{}: {b:?}", case.name));
                    }
                }
                other => failures.push(format!("{}: {other:?}", case.name)),
            },
            _ => {
                let timed_out = seen
                    .iter()
                    .any(|e| matches!(&e.kind, Some(Kind::BeepDetectionError(_))));
                if !beeps.is_empty() || !timed_out {
                    failures.push(format!("{}: {beeps:?}, timed out: {timed_out}", case.name));
                }
            }
        }
    }
    eprintln!(
        "{io:?}: {} beeps, {} negatives; worst decision {worst} ms into the beep; {} failures",
        cases.len() - 5,
        5,
        failures.len()
    );
    assert!(failures.is_empty(), "{io:?}: {failures:#?}");
}

async fn progress_set(io: Io) {
    let daemon = daemon_or_skip!(Options::new(io));
    let client = daemon.client().await.unwrap();
    let mut cases = Vec::new();
    for (ci, &country) in Country::ALL.iter().enumerate() {
        for (ti, (tone, name)) in [(ProgressTone::Busy, "busy"), (ProgressTone::Dial, "dial")]
            .into_iter()
            .enumerate()
        {
            for given in [true, false] {
                let law = if (ci + ti) % 2 == 0 {
                    G711::Pcmu
                } else {
                    G711::Pcma
                };
                let mut pcm = vec![0i16; 2400];
                pcm.extend(progress(country, tone, 6000));
                cases.push(Case {
                    name: format!("{} {name} (country given: {given})", country.code()),
                    law,
                    pcm,
                    expect: Expect::Tone(name, given.then(|| iso_code(country))),
                });
            }
        }
    }
    let speech = espeak_voice_8k(
        "en",
        "Hello, this is a test call. We are checking that speech does not look like a busy or dial tone to the detector.",
    );
    if let Some(speech) = speech {
        cases.push(Case {
            name: "speech".into(),
            law: G711::Pcmu,
            pcm: speech,
            expect: Expect::NoTone,
        });
    } else {
        eprintln!("speech case skipped: needs espeak-ng and ffmpeg");
    }
    cases.push(Case {
        name: "music".into(),
        law: G711::Pcma,
        pcm: music(8, 3),
        expect: Expect::NoTone,
    });
    let countries: Vec<Vec<String>> = cases
        .iter()
        .map(|c| match c.expect {
            Expect::Tone(_, Some(code)) => vec![code.to_owned()],
            _ => vec![],
        })
        .collect();
    let client2 = client.clone();
    let events = run_set(&client, &cases, |leg, i| {
        let client = client2.clone();
        let countries = countries[i].clone();
        async move { client.enable_tone_detection(&leg, countries).await.unwrap() }
    })
    .await;
    let mut failures = Vec::new();
    let mut decided = Vec::new();
    for (case, seen) in cases.iter().zip(&events) {
        let tones: Vec<&proto::ToneDetected> = seen
            .iter()
            .filter_map(|e| match &e.kind {
                Some(Kind::ToneDetected(t)) => Some(t),
                _ => None,
            })
            .collect();
        match case.expect {
            Expect::Tone(kind, country) => match tones.as_slice() {
                [t] if t.tone == kind && country.is_none_or(|c| t.country == c) => {
                    decided.push(t.offset_ms.saturating_sub(300));
                }
                other => failures.push(format!("{}: {other:?}", case.name)),
            },
            _ => {
                if !tones.is_empty() {
                    failures.push(format!("{}: {tones:?}", case.name));
                }
            }
        }
    }
    decided.sort_unstable();
    eprintln!(
        "{io:?}: {} tones; decided after (ms from the tone's start, network delay included): median {:?}, worst {:?}; {} failures",
        decided.len(),
        decided.get(decided.len() / 2),
        decided.last(),
        failures.len()
    );
    assert!(failures.is_empty(), "{io:?}: {failures:#?}");
}

/// A busy tone heard before the leg is connected raises nothing; the same
/// tone once connected raises ToneDetected once.
async fn tone_only_after_connected(io: Io) {
    let daemon = daemon_or_skip!(Options::new(io));
    let client = daemon.client().await.unwrap();
    let session = client.create_session(None).await.unwrap();
    let peer = Peer::new().unwrap();
    let offer = peer.offer_with(G711::Pcmu.formats(), "a=sendrecv", "127.0.0.1");
    let created = client
        .create_leg(legato_client::CreateLeg::incoming(&session, offer))
        .await
        .unwrap();
    let leg = created.leg;
    assert_ne!(leg.state(), proto::LegState::Connected);
    let mut events = client
        .watch_events(EventFilter::new().leg(&leg.leg_id))
        .await
        .unwrap();
    client
        .enable_tone_detection(&leg.leg_id, vec!["DE".into()])
        .await
        .unwrap();
    let socket = peer.socket.try_clone().unwrap();
    let to = local_rtp(&leg);
    let busy = progress(Country::De, ProgressTone::Busy, 3000);
    let early = busy.clone();
    tokio::task::spawn_blocking(move || send(socket, to, G711::Pcmu, early))
        .await
        .unwrap();
    let early = wait_event(&mut events, Duration::from_millis(800), |e| {
        matches!(&e.kind, Some(Kind::ToneDetected(_)))
    })
    .await;
    assert!(early.is_err(), "raised before Connected: {early:?}");
    client
        .update_leg(legato_client::UpdateLeg::new(&leg.leg_id).state(proto::LegState::Connected))
        .await
        .unwrap();
    let socket = peer.socket.try_clone().unwrap();
    tokio::task::spawn_blocking(move || send(socket, to, G711::Pcmu, busy))
        .await
        .unwrap();
    let mut found = Vec::new();
    while let Ok(e) = wait_event(&mut events, Duration::from_millis(1000), |e| {
        matches!(&e.kind, Some(Kind::ToneDetected(_)))
    })
    .await
    {
        found.push(e);
    }
    assert_eq!(found.len(), 1, "{found:?}");
    let Some(Kind::ToneDetected(t)) = &found[0].kind else {
        unreachable!()
    };
    assert_eq!((t.tone.as_str(), t.country.as_str()), ("busy", "DE"));
}

per_backend!(beep_set, progress_set, tone_only_after_connected);
