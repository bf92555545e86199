//! Signal builders shared by the detector tests: tones, noise, G.711 round
//! trips, music-like signals and espeak-ng speech.

use std::f64::consts::PI;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use legato_dsp::codec::g711::{alaw_to_linear, linear_to_alaw, linear_to_ulaw, ulaw_to_linear};
use legato_dsp::goertzel::dbm0_to_amplitude;

/// The three ways audio reaches a detector in telephony.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Path {
    Linear,
    Ulaw,
    Alaw,
}

impl Path {
    pub(crate) const ALL: [Self; 3] = [Self::Linear, Self::Ulaw, Self::Alaw];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Linear => "linear",
            Self::Ulaw => "µ-law",
            Self::Alaw => "A-law",
        }
    }

    /// Passes `x` through this path's codec (encode then decode).
    pub(crate) fn apply(self, x: &[i16]) -> Vec<i16> {
        match self {
            Self::Linear => x.to_vec(),
            Self::Ulaw => x
                .iter()
                .map(|&s| ulaw_to_linear(linear_to_ulaw(s)))
                .collect(),
            Self::Alaw => x
                .iter()
                .map(|&s| alaw_to_linear(linear_to_alaw(s)))
                .collect(),
        }
    }
}

/// Adds `tone(freqs, levels)` of `samples` length to `out` starting at `at`.
/// Phase of each component starts at `phase`.
pub(crate) fn add_tones(
    out: &mut [f64],
    at: usize,
    samples: usize,
    tones: &[(f64, f32)],
    phase: f64,
) {
    for &(f, dbm0) in tones {
        let amp = f64::from(dbm0_to_amplitude(dbm0));
        for n in 0..samples {
            if let Some(o) = out.get_mut(at + n) {
                *o += amp * (2.0 * PI * f * n as f64 / 8000.0 + phase).sin();
            }
        }
    }
}

/// Saturating conversion to 16-bit.
pub(crate) fn to_i16(x: &[f64]) -> Vec<i16> {
    x.iter()
        .map(|&v| v.round().clamp(-32768.0, 32767.0) as i16)
        .collect()
}

/// Deterministic Gaussian noise (xorshift + Box-Muller).
pub(crate) struct Noise(u64);

impl Noise {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub(crate) fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    pub(crate) fn gaussian(&mut self) -> f64 {
        let (u1, u2) = (self.uniform(), self.uniform());
        (-2.0 * u1.ln()).sqrt() * (2.0 * PI * u2).cos()
    }
}

/// Adds white Gaussian noise with mean-square `power` to `x`.
pub(crate) fn add_noise(x: &mut [f64], power: f64, seed: u64) {
    let mut noise = Noise::new(seed);
    let sigma = power.sqrt();
    for v in x {
        *v += sigma * noise.gaussian();
    }
}

/// Mean-square of a sine at `dbm0`.
pub(crate) fn tone_power(dbm0: f32) -> f64 {
    let a = f64::from(dbm0_to_amplitude(dbm0));
    a * a / 2.0
}

/// Mean-square of `x`.
pub(crate) fn mean_square(x: &[i16]) -> f64 {
    x.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / x.len().max(1) as f64
}

/// Music-like test signal: melodies and chords of equal-tempered notes,
/// including notes at F5 (698 Hz) and F#6 (1480 Hz), which sit on DTMF
/// frequencies. Timbres: bowed-string and reed-like notes with natural
/// vibrato (4.5-6.5 Hz, ±0.6-1.6 %), and piano-like decaying notes with a
/// 1/h harmonic series. A steady note with no vibrato and nothing but its
/// fundamental in the 300-3400 Hz band is physically a beep and is not
/// generated.
pub(crate) fn music(seconds: f64, seed: u64) -> Vec<i16> {
    let total = (seconds * 8000.0) as usize;
    let mut out = vec![0.0f64; total];
    let mut rng = Noise::new(seed);
    let mut at = 0usize;
    while at < total {
        let note_len = 800 + (rng.uniform() * 3200.0) as usize; // 100-500 ms
        let voices = 1 + (rng.uniform() * 3.0) as usize; // 1-3 notes at once
        let timbre = (rng.uniform() * 3.0) as usize;
        for _ in 0..voices {
            // MIDI notes 55 (196 Hz) to 91 (1568 Hz).
            let midi = 55.0 + (rng.uniform() * 37.0).floor();
            let f0 = 440.0 * 2f64.powf((midi - 69.0) / 12.0);
            let level = -18.0 - rng.uniform() * 10.0;
            let amp = f64::from(dbm0_to_amplitude(level as f32));
            let vibrato_rate = 4.5 + 2.0 * rng.uniform();
            let vibrato_depth = if timbre == 2 {
                0.0
            } else {
                0.006 + 0.01 * rng.uniform()
            };
            let vibrato_phase = rng.uniform() * 2.0 * PI;
            for h in 1..=8u32 {
                let f = f0 * f64::from(h);
                if f > 3800.0 {
                    break;
                }
                let weight = match timbre {
                    0 => 1.0 / f64::from(h), // bowed string
                    1 => {
                        if h % 2 == 1 {
                            1.0 / f64::from(h)
                        } else {
                            0.4 / f64::from(h)
                        }
                    } // reed
                    _ => 1.0 / f64::from(h), // piano-like
                };
                let decay = if timbre == 2 { 4.0 } else { 0.5 };
                let phase = rng.uniform() * 2.0 * PI;
                let mut arg = phase;
                for n in 0..note_len.min(total - at) {
                    let t = n as f64 / 8000.0;
                    let env = (1.0 - (-t * 200.0).exp()) * (-t * decay).exp();
                    let inst = f
                        * (1.0
                            + vibrato_depth * (2.0 * PI * vibrato_rate * t + vibrato_phase).sin());
                    arg += 2.0 * PI * inst / 8000.0;
                    out[at + n] += amp * weight * env * arg.sin();
                }
            }
        }
        at += note_len;
    }
    to_i16(&out)
}

/// Speech from espeak-ng at 8 kHz, or `None` when espeak-ng or sox is
/// missing (the caller skips with a message).
pub(crate) fn speech(voice: &str, speed: u32, text: &str) -> Option<Vec<i16>> {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = temp_dir()?;
    let id = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let wav = dir.join(format!("speech-{id}.wav"));
    let raw = dir.join(format!("speech-{id}.raw"));
    let status = Command::new("espeak-ng")
        .args(["-v", voice, "-s", &speed.to_string(), "-w"])
        .arg(&wav)
        .arg(text)
        .status()
        .ok()?;
    if !status.success() {
        return None;
    }
    let status = Command::new("sox")
        .arg(&wav)
        .args([
            "-r",
            "8000",
            "-c",
            "1",
            "-t",
            "raw",
            "-e",
            "signed-integer",
            "-b",
            "16",
        ])
        .arg(&raw)
        .status()
        .ok()?;
    if !status.success() {
        return None;
    }
    let bytes = std::fs::read(&raw).ok()?;
    let _ = std::fs::remove_file(&wav);
    let _ = std::fs::remove_file(&raw);
    Some(
        bytes
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect(),
    )
}

/// True when espeak-ng and sox can be run.
pub(crate) fn have_speech_tools() -> bool {
    static HAVE: OnceLock<bool> = OnceLock::new();
    *HAVE.get_or_init(|| {
        let ok = |cmd: &str, arg: &str| {
            Command::new(cmd)
                .arg(arg)
                .output()
                .is_ok_and(|o| o.status.success())
        };
        ok("espeak-ng", "--version") && ok("sox", "--version")
    })
}

/// A per-run temporary directory, removed at exit is not needed: files are
/// deleted as soon as they are read.
fn temp_dir() -> Option<PathBuf> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "legato-dsp-detectors-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).ok()?;
        Some(dir)
    })
    .clone()
}

/// Texts for the talk-off corpus, one per language.
pub(crate) const TEXTS: [(&str, &str); 8] = [
    (
        "en",
        "Thank you for calling. Your call is important to us. Please listen carefully, as our menu \
         options have recently changed. If you know the extension of the person you wish to reach, \
         you may dial it at any time. For sales, press one. For support, press two. To hear these \
         options again, stay on the line. The weather today will be mostly sunny with a chance of \
         rain in the evening, and temperatures around twenty degrees. Meanwhile the committee met \
         on Tuesday to discuss the budget, the new library, and the repairs to the old bridge.",
    ),
    (
        "de",
        "Guten Tag, Sie sind verbunden mit der Kundenbetreuung. Leider sind im Moment alle \
         Mitarbeiter im Gespräch. Bitte haben Sie etwas Geduld, Sie werden mit dem nächsten freien \
         Platz verbunden. Das Wetter morgen wird wechselhaft, mit Regen im Norden und Sonne im \
         Süden. Die Sitzung des Ausschusses wurde auf nächsten Donnerstag verschoben.",
    ),
    (
        "fr",
        "Bonjour, vous êtes bien sur la messagerie de Jean. Je ne suis pas disponible pour le \
         moment, laissez-moi un message après le bip sonore et je vous rappellerai dès que \
         possible. Le conseil municipal se réunira mardi soir pour discuter des travaux de la \
         place du marché et du nouveau parc.",
    ),
    (
        "es",
        "Hola, gracias por llamar. En este momento no podemos atender su llamada. Por favor, deje \
         su nombre y número de teléfono y nos comunicaremos con usted lo antes posible. Mañana \
         habrá sol por la mañana y lluvias débiles por la tarde en toda la región.",
    ),
    (
        "ru",
        "Здравствуйте, вы позвонили в службу поддержки. Все операторы сейчас заняты. Пожалуйста, \
         оставайтесь на линии, и вам ответит первый освободившийся специалист. Завтра ожидается \
         переменная облачность, без осадков, температура около пятнадцати градусов.",
    ),
    (
        "it",
        "Buongiorno, avete raggiunto la segreteria telefonica di Marco. Lasciate un messaggio dopo \
         il segnale acustico. La riunione di domani è stata spostata alle dieci e trenta nella sala \
         grande al secondo piano.",
    ),
    (
        "pt-br",
        "Olá, você ligou para a central de atendimento. Todos os nossos atendentes estão ocupados. \
         Por favor, aguarde na linha. Amanhã o tempo será ensolarado com possibilidade de chuva à \
         noite no litoral.",
    ),
    (
        "nl",
        "Goedemiddag, u spreekt met het antwoordapparaat van de familie de Vries. Wij zijn op dit \
         moment niet bereikbaar. Spreek na de piep een bericht in, dan bellen wij u zo snel \
         mogelijk terug.",
    ),
];

/// Voice variants used to vary pitch and timbre.
pub(crate) const VARIANTS: [&str; 6] = ["", "+m3", "+f2", "+f4", "+m7", "+klatt"];

/// The talk-off speech corpus: every text in several voices and speeds,
/// generated once per test run, in parallel. `None` without espeak-ng.
pub(crate) fn speech_corpus() -> Option<&'static [Vec<i16>]> {
    static CORPUS: OnceLock<Option<Vec<Vec<i16>>>> = OnceLock::new();
    CORPUS
        .get_or_init(|| {
            if !have_speech_tools() {
                return None;
            }
            let mut jobs = Vec::new();
            for (i, (lang, text)) in TEXTS.iter().enumerate() {
                for (j, variant) in VARIANTS.iter().enumerate() {
                    let speed = 130 + ((i * 7 + j * 13) % 70) as u32;
                    jobs.push((format!("{lang}{variant}"), speed, *text));
                }
            }
            let pieces: Vec<Vec<i16>> = speak_all(&jobs).into_iter().flatten().collect();
            (!pieces.is_empty()).then_some(pieces)
        })
        .as_deref()
}

/// [`speech`] for every `(voice, speed, text)` job, four at a time, in
/// the jobs' order.
pub(crate) fn speak_all(jobs: &[(String, u32, &str)]) -> Vec<Option<Vec<i16>>> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .chunks(jobs.len().div_ceil(4).max(1))
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|(voice, speed, text)| speech(voice, *speed, text))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

/// Prints the skip message used when espeak-ng is absent.
pub(crate) fn skip_without_speech(test: &str) {
    eprintln!("SKIPPED {test}: espeak-ng or sox not installed (scripts/test.sh installs them)");
}

/// Adds pink (1/f) Gaussian noise with mean-square about `power` to `x`:
/// white noise through Paul Kellet's economy three-pole filter, whose gain
/// is measured on the generated noise and divided out.
pub(crate) fn add_pink_noise(x: &mut [f64], power: f64, seed: u64) {
    let mut noise = Noise::new(seed);
    let mut b = [0.0f64; 3];
    let pink: Vec<f64> = (0..x.len())
        .map(|_| {
            let w = noise.gaussian();
            b[0] = 0.99765 * b[0] + w * 0.0990460;
            b[1] = 0.96300 * b[1] + w * 0.2965164;
            b[2] = 0.57000 * b[2] + w * 1.0526913;
            b[0] + b[1] + b[2] + w * 0.1848
        })
        .collect();
    let ms = pink.iter().map(|v| v * v).sum::<f64>() / pink.len().max(1) as f64;
    let gain = (power / ms.max(1e-12)).sqrt();
    for (o, p) in x.iter_mut().zip(&pink) {
        *o += gain * p;
    }
}

/// One synthetic note added to `out` at `at`: fundamental `f0` at `dbm0`,
/// harmonic `h` (from 2) at `harmonics_db[h - 2]` dB relative to it (only
/// those below 3800 Hz), with a sinusoidal vibrato of `vibrato` (relative
/// depth) at `rate` Hz and a linear attack of `attack` samples. Phases come
/// from `seed`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn add_note(
    out: &mut [f64],
    at: usize,
    samples: usize,
    f0: f64,
    dbm0: f32,
    harmonics_db: &[f64],
    (vibrato, rate): (f64, f64),
    attack: usize,
    seed: u64,
) {
    let mut rng = Noise::new(seed);
    let amp = f64::from(dbm0_to_amplitude(dbm0));
    let vibrato_phase = rng.uniform() * 2.0 * PI;
    let gains: Vec<f64> = std::iter::once(0.0)
        .chain(harmonics_db.iter().copied())
        .collect();
    for (i, &db) in gains.iter().enumerate() {
        let h = (i + 1) as f64;
        if f0 * h >= 3800.0 {
            break;
        }
        let a = amp * 10f64.powf(db / 20.0);
        let mut arg = rng.uniform() * 2.0 * PI;
        for n in 0..samples {
            let t = n as f64 / 8000.0;
            let inst = f0 * h * (1.0 + vibrato * (2.0 * PI * rate * t + vibrato_phase).sin());
            arg += 2.0 * PI * inst / 8000.0;
            let env = ((n as f64 + 1.0) / attack.max(1) as f64).min(1.0);
            if let Some(o) = out.get_mut(at + n) {
                *o += a * env * arg.sin();
            }
        }
    }
}
