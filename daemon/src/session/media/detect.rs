//! Detectors on what a leg receives: voicemail beeps (EnableBeepDetection),
//! call-progress tones (EnableToneDetection), voice activity
//! (SetMicStatusHandling) and answering machines
//! (StartAudioIdentification).
//!
//! They are taps: the leg's receive side decodes a copy of what arrives
//! (a relayed leg stays relayed), and every 20 ms tick its frame, brought
//! to the detectors' 8 kHz, goes to each detector that is on. A tick with
//! no audio (no RTP, hold) feeds silence, so every detector's clock is the
//! call's. Turning a detector on allocates it once; per frame nothing
//! allocates. A detector that is off costs nothing, and a leg with none
//! has no [`Detectors`] at all.

use legato_dsp::amd::{Amd, AmdConfig, AmdReason, AmdVerdict};
use legato_dsp::beep::{BeepDetector, BeepDetectorConfig, BeepEvent};
use legato_dsp::resample::Resampler;
use legato_dsp::time::ClockRate;
use legato_dsp::tone::{Country, ProgressDetector, ProgressDetectorConfig, ProgressEvent};
use legato_dsp::vad::{Vad, VadConfig, VadEvent};

use super::{Frame, MAX_FRAME, country_code, tone_name};

/// Samples per 20 ms at the detectors' rate.
const FRAME_8K: usize = 160;
/// Samples per millisecond at 8 kHz.
const PER_MS: u64 = 8;

/// The detectors of one leg, each `None` while off.
#[derive(Debug, Default)]
pub(crate) struct Detectors {
    /// Brings a faster leg's audio to 8 kHz (rebuilt when the rate
    /// changes).
    down: Option<(ClockRate, Box<Resampler>)>,
    pub(crate) beep: Option<BeepTap>,
    pub(crate) progress: Option<ProgressTap>,
    pub(crate) vad: Option<VadTap>,
    pub(crate) amd: Option<AmdTap>,
}

/// What the detectors found in one tick.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Detected {
    /// BeepDetectionComplete: onset from when detection (beep, or
    /// answering-machine for the beep after a machine's greeting) started.
    Beep {
        frequency_hz: f32,
        duration_ms: u32,
        offset_ms: u64,
    },
    /// BeepDetectionError: no beep before the timeout.
    BeepTimeout { timeout_ms: u64 },
    /// ToneDetected.
    Tone {
        tone: &'static str,
        country: &'static str,
        offset_ms: u64,
    },
    /// Speech started or stopped (VoiceActivity, and MicStatusChange).
    Voice { active: bool, at_ms: u64 },
    /// AudioIdentificationResult.
    Identified {
        verdict: AmdVerdict,
        reason: AmdReason,
        decision_ms: u64,
    },
    /// AudioIdentificationStopped: the analysis (and the wait for a
    /// machine's beep) is over.
    IdentificationOver,
}

/// Events of one tick, at most one per kind of detector and the end of
/// answering-machine detection (no allocation).
#[derive(Debug, Default)]
pub(crate) struct Found {
    items: [Option<Detected>; 6],
    len: usize,
}

impl Found {
    fn push(&mut self, d: Detected) {
        if let Some(slot) = self.items.get_mut(self.len) {
            *slot = Some(d);
            self.len += 1;
        }
    }

    /// The events, in the order found.
    pub(crate) fn iter(&self) -> impl Iterator<Item = Detected> + '_ {
        self.items[..self.len].iter().flatten().copied()
    }
}

/// EnableBeepDetection.
#[derive(Debug)]
pub(crate) struct BeepTap {
    detector: BeepDetector,
    /// Give up after this many samples (None: until disabled).
    timeout: Option<u64>,
}

impl BeepTap {
    /// A beep detector giving up after `timeout_ms` (0: never).
    pub(crate) fn new(timeout_ms: u64) -> Result<Self, String> {
        Ok(Self {
            detector: beep_detector()?,
            timeout: (timeout_ms > 0).then(|| timeout_ms.saturating_mul(PER_MS)),
        })
    }
}

/// The beep detector's settings: the library's defaults (300-2500 Hz, at
/// least 80 ms, −40 dBm0).
fn beep_detector() -> Result<BeepDetector, String> {
    BeepDetector::new(BeepDetectorConfig::default()).map_err(|e| e.to_string())
}

/// EnableToneDetection: one classifier over the requested country tables
/// (all ten when none is given), the first requested country preferred
/// when several fit equally; fed only while the leg is connected; fires
/// once.
#[derive(Debug)]
pub(crate) struct ProgressTap {
    /// `None` only if the configuration was refused (never for countries
    /// the table knows).
    detector: Option<ProgressDetector>,
    /// Ticks since enabled (connected or not), for the offset.
    ticks: u64,
}

impl ProgressTap {
    /// A classifier for `countries` (all the tables when empty), the first
    /// one preferred.
    pub(crate) fn new(countries: &[Country]) -> Self {
        Self {
            detector: ProgressDetector::new(ProgressDetectorConfig::for_countries(countries)).ok(),
            ticks: 0,
        }
    }
}

/// SetMicStatusHandling: voice activity.
#[derive(Debug)]
pub(crate) struct VadTap {
    vad: Vad,
}

impl VadTap {
    pub(crate) fn new() -> Result<Self, String> {
        Ok(Self {
            vad: Vad::new(VadConfig::default()).map_err(|e| e.to_string())?,
        })
    }

    /// Whether the party is speaking now.
    pub(crate) fn is_speech(&self) -> bool {
        self.vad.is_speech()
    }
}

/// StartAudioIdentification, then (after a machine verdict) the wait for
/// the greeting's beep.
#[derive(Debug)]
pub(crate) struct AmdTap {
    amd: Amd,
    /// Watches for a beep after a machine verdict that was not the beep
    /// itself.
    beep: Option<BeepDetector>,
    /// The detector `beep` takes, made at start (no allocation later).
    beep_detector: Option<BeepDetector>,
    /// Samples fed.
    fed: u64,
    /// How long to wait for the beep after the verdict, in samples.
    beep_wait: u64,
    /// When the verdict came, in samples.
    decided: Option<u64>,
}

/// How long answering-machine detection waits for a machine's beep after
/// its verdict, by default.
pub(crate) const BEEP_WAIT_MS: u64 = 30_000;

impl AmdTap {
    /// A detector with `config`, waiting `beep_wait_ms` for a machine's beep.
    pub(crate) fn new(config: AmdConfig, beep_wait_ms: u64) -> Result<Self, String> {
        let amd = Amd::new(config).map_err(|e| e.to_string())?;
        Ok(Self {
            amd,
            beep: None,
            beep_detector: Some(beep_detector()?),
            fed: 0,
            beep_wait: beep_wait_ms.saturating_mul(PER_MS),
            decided: None,
        })
    }
}

impl Detectors {
    /// Whether any detector is on.
    pub(crate) fn is_empty(&self) -> bool {
        self.beep.is_none() && self.progress.is_none() && self.vad.is_none() && self.amd.is_none()
    }

    /// Feeds this tick's received frame (`None`: silence) to every
    /// detector that is on; `connected` gates call-progress detection.
    /// Detectors that finished are turned off. No allocation.
    pub(crate) fn tick(&mut self, frame: Option<(Frame<'_>, ClockRate)>, connected: bool) -> Found {
        let mut pcm = [0i16; MAX_FRAME];
        let mut narrow = [0i16; FRAME_8K];
        if let Some((frame, rate)) = frame {
            let n = frame.len().min(MAX_FRAME);
            frame.write_pcm(&mut pcm[..n]);
            self.narrow(&pcm[..n], rate, &mut narrow);
        }
        let mut found = Found::default();
        let samples = &narrow[..];
        if let Some(tap) = self.beep.as_mut() {
            tap.detector.handle_samples(samples);
            let seen = tap.detector.samples_seen();
            let mut done = false;
            if let Some(beep) = first_beep(&mut tap.detector, 0) {
                found.push(beep);
                done = true;
            }
            if !done
                && let Some(timeout) = tap.timeout
                && seen >= timeout
            {
                found.push(Detected::BeepTimeout {
                    timeout_ms: ms(timeout),
                });
                done = true;
            }
            if done {
                self.beep = None;
            }
        }
        if let Some(tap) = self.progress.as_mut() {
            tap.ticks += 1;
            if connected {
                let mut hit = None;
                if let Some(detector) = tap.detector.as_mut() {
                    detector.handle_samples(samples);
                    while let Some(ProgressEvent::Detected { tone, country, .. }) =
                        detector.poll_event()
                    {
                        hit.get_or_insert((country, tone));
                    }
                }
                if let Some((country, tone)) = hit {
                    found.push(Detected::Tone {
                        tone: tone_name(tone),
                        country: country_code(country),
                        offset_ms: tap.ticks.saturating_sub(1) * 20,
                    });
                    // At most once per call.
                    self.progress = None;
                }
            }
        }
        if let Some(tap) = self.vad.as_mut() {
            tap.vad.handle_samples(samples);
            while let Some(event) = tap.vad.poll_event() {
                let (active, at) = match event {
                    VadEvent::SpeechStarted { at } => (true, at),
                    VadEvent::SpeechEnded { at } => (false, at),
                };
                found.push(Detected::Voice {
                    active,
                    at_ms: ms(at),
                });
            }
        }
        if let Some(tap) = self.amd.as_mut() {
            tap.fed += samples.len() as u64;
            if tap.decided.is_none() {
                tap.amd.handle_samples(samples);
                if let Some(d) = tap.amd.poll_decision() {
                    found.push(Detected::Identified {
                        verdict: d.verdict,
                        reason: d.reason,
                        decision_ms: ms(d.at),
                    });
                    tap.decided = Some(tap.fed);
                    if d.verdict == AmdVerdict::Machine
                        && d.reason != AmdReason::Beep
                        && tap.beep_detector.is_some()
                    {
                        tap.beep = tap.beep_detector.take();
                    } else {
                        found.push(Detected::IdentificationOver);
                        self.amd = None;
                    }
                }
            } else if let Some(beep) = tap.beep.as_mut() {
                beep.handle_samples(samples);
                let found_beep = first_beep(beep, tap.decided.unwrap_or(0));
                let over = found_beep.is_some();
                if let Some(b) = found_beep {
                    found.push(b);
                }
                if over || beep.samples_seen() >= tap.beep_wait {
                    found.push(Detected::IdentificationOver);
                    self.amd = None;
                }
            }
        }
        found
    }

    /// `pcm` at `rate` into exactly 160 samples at 8 kHz.
    fn narrow(&mut self, pcm: &[i16], rate: ClockRate, out: &mut [i16; FRAME_8K]) {
        if rate.hz() == 8000 {
            let n = pcm.len().min(FRAME_8K);
            out[..n].copy_from_slice(&pcm[..n]);
            return;
        }
        if self.down.as_ref().is_none_or(|(r, _)| *r != rate) {
            // Once per rate change (a re-INVITE to another codec), not per
            // frame.
            self.down = ClockRate::new(8000)
                .and_then(|to| Resampler::new(rate, to, 20).ok())
                .map(|r| (rate, Box::new(r)));
        }
        if let Some((_, down)) = self.down.as_mut()
            && down.process(pcm, out).is_err()
        {
            out.fill(0);
        }
    }
}

/// The first beep `detector` recognised, if any, as BeepDetectionComplete
/// with its onset counted from `base` samples before the detector's start.
fn first_beep(detector: &mut BeepDetector, base: u64) -> Option<Detected> {
    while let Some(event) = detector.poll_event() {
        if let BeepEvent::Started {
            onset,
            at,
            frequency_hz,
            ..
        } = event
        {
            return Some(Detected::Beep {
                frequency_hz,
                duration_ms: ms(at.saturating_sub(onset)) as u32,
                offset_ms: ms(base + onset),
            });
        }
    }
    None
}

/// Milliseconds in `samples` at 8 kHz.
fn ms(samples: u64) -> u64 {
    samples / PER_MS
}

/// The protocol's name of a verdict.
pub(crate) fn verdict_name(v: AmdVerdict) -> &'static str {
    match v {
        AmdVerdict::Human => "human",
        AmdVerdict::Machine => "machine",
        AmdVerdict::Unknown => "unknown",
    }
}

/// The protocol's name of the rule that decided.
pub(crate) fn reason_name(r: AmdReason) -> &'static str {
    match r {
        AmdReason::Beep => "beep",
        AmdReason::InitialSilence => "initial silence",
        AmdReason::LongGreeting => "long greeting",
        AmdReason::TooManyWords => "max words",
        AmdReason::LongWord => "long word",
        AmdReason::SilenceAfterGreeting => "silence after greeting",
        AmdReason::Timeout => "timeout",
    }
}
