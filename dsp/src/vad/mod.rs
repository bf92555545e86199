//! Voice activity detection with speech-start / speech-end events.
//!
//! Two frame classifiers, chosen by [`VadMode`]:
//!
//! - **webrtc-vad** (libfvad, the WebRTC GMM classifier), optionally gated
//!   by a tracked noise floor: a frame only counts as speech when it is
//!   also `noise_gate_db` above the background. Plain webrtc-vad reports
//!   almost every frame as speech once steady noise reaches 10 dB SNR; the
//!   gate keeps it useful there.
//! - **energy**: frame energy against the same noise-floor tracker.
//!
//! Decisions are made every 10 ms and smoothed: speech starts after
//! `start_frames` speech frames within the last `start_window` frames, and
//! ends after `hangover_ms` without speech. Event times are sample offsets
//! from stream start (the start is dated at the first speech frame of the
//! run that triggered it; the end at the sample after the last speech
//! frame).
//!
//! [`Vad`] is `Send`: the webrtc instance it owns moves with it (see
//! `vad/webrtc.rs` for the one `unsafe impl` that allows this).

mod energy;
mod webrtc;

use crate::detector::{ConfigError, EventQueue, check_range};
use energy::{NoiseFloor, mean_square};
use webrtc::OwnedVad;

/// Which frame classifier a [`Vad`] uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum VadMode {
    /// Energy above the tracked noise floor by `threshold_db`.
    Energy {
        /// Margin above the noise floor, dB. 9 is a good start.
        threshold_db: f32,
    },
    /// webrtc-vad at an aggressiveness of 0-3, optionally gated.
    Webrtc {
        /// webrtc aggressiveness 0 (quality) to 3 (very aggressive).
        aggressiveness: u8,
        /// If set, a frame must also be this far above the noise floor, dB.
        noise_gate_db: Option<f32>,
    },
}

/// Settings of a [`Vad`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VadConfig {
    /// Frame classifier. Default: webrtc aggressiveness 2 with a 6 dB gate.
    pub mode: VadMode,
    /// Speech frames needed to start speech. Default 3.
    pub start_frames: u32,
    /// Window (10 ms frames) those speech frames must fall in. Default 5.
    pub start_window: u32,
    /// Silence after the last speech frame before speech ends, ms.
    /// Default 300.
    pub hangover_ms: u32,
    /// Frames quieter than this are never speech, dBm0. Default −50.
    pub min_level_dbm0: f32,
}

impl Default for VadConfig {
    fn default() -> Self {
        Self {
            mode: VadMode::Webrtc {
                aggressiveness: 2,
                noise_gate_db: Some(6.0),
            },
            start_frames: 3,
            start_window: 5,
            hangover_ms: 300,
            min_level_dbm0: -50.0,
        }
    }
}

/// Speech start and end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VadEvent {
    /// Speech began at sample `at`.
    SpeechStarted {
        /// First sample of the speech.
        at: u64,
    },
    /// Speech ended at sample `at` (first sample after it).
    SpeechEnded {
        /// First sample after the speech.
        at: u64,
    },
}

/// Voice activity detector over 8 kHz linear audio. See the module docs.
#[derive(Debug)]
pub struct Vad {
    config: VadConfig,
    webrtc: Option<OwnedVad>,
    gate: f32,
    min_power: f32,
    floor: NoiseFloor,
    frame: [i16; FRAME],
    fill: usize,
    samples: u64,
    /// Recent raw decisions, newest in bit 0.
    recent: u32,
    speaking: bool,
    last_speech_end: u64,
    speech_frames: u64,
    frames: u64,
    last_decision: bool,
    events: EventQueue<VadEvent, 8>,
}

impl Vad {
    /// Creates a detector.
    pub fn new(config: VadConfig) -> Result<Self, ConfigError> {
        if !(1..=32).contains(&config.start_window)
            || !(1..=config.start_window).contains(&config.start_frames)
        {
            return Err(ConfigError {
                field: "start_frames",
            });
        }
        if config.hangover_ms > 10_000 {
            return Err(ConfigError {
                field: "hangover_ms",
            });
        }
        check_range(config.min_level_dbm0, -90.0, 0.0, "min_level_dbm0")?;
        let (webrtc, gate_db) = match config.mode {
            VadMode::Energy { threshold_db } => {
                check_range(threshold_db, 0.0, 40.0, "threshold_db")?;
                (None, threshold_db)
            }
            VadMode::Webrtc {
                aggressiveness,
                noise_gate_db,
            } => {
                if aggressiveness > 3 {
                    return Err(ConfigError {
                        field: "aggressiveness",
                    });
                }
                let gate = noise_gate_db.unwrap_or(0.0);
                check_range(gate, 0.0, 40.0, "noise_gate_db")?;
                (Some(OwnedVad::new(aggressiveness)), gate)
            }
        };
        Ok(Self {
            config,
            webrtc,
            gate: 10f32.powf(gate_db / 10.0),
            min_power: crate::goertzel::dbm0_to_power(config.min_level_dbm0) * 2.0,
            floor: NoiseFloor::new(3.0),
            frame: [0; FRAME],
            fill: 0,
            samples: 0,
            recent: 0,
            speaking: false,
            last_speech_end: 0,
            speech_frames: 0,
            frames: 0,
            last_decision: false,
            events: EventQueue::new(),
        })
    }

    /// The settings in use.
    pub fn config(&self) -> &VadConfig {
        &self.config
    }

    /// Feeds 8 kHz linear samples (any number).
    pub fn handle_samples(&mut self, samples: &[i16]) {
        let mut rest = samples;
        while !rest.is_empty() {
            let take = (FRAME - self.fill).min(rest.len());
            self.frame[self.fill..self.fill + take].copy_from_slice(&rest[..take]);
            self.fill += take;
            self.samples += take as u64;
            rest = &rest[take..];
            if self.fill == FRAME {
                self.fill = 0;
                self.finish_frame();
            }
        }
    }

    /// Next pending event.
    pub fn poll_event(&mut self) -> Option<VadEvent> {
        self.events.pop()
    }

    /// True while speech is in progress (after smoothing).
    pub fn is_speech(&self) -> bool {
        self.speaking
    }

    /// The raw classifier decision for the last complete 10 ms frame.
    pub fn last_frame_is_speech(&self) -> bool {
        self.last_decision
    }

    /// Share of frames so far classified as speech (raw decisions).
    pub fn speech_ratio(&self) -> f32 {
        self.speech_frames as f32 / self.frames.max(1) as f32
    }

    /// Number of samples fed so far.
    pub fn samples_seen(&self) -> u64 {
        self.samples
    }

    /// The tracked background level, dBm0 (very low before any frame).
    pub fn noise_floor_dbm0(&self) -> f32 {
        crate::goertzel::power_to_dbm0(self.floor.floor() * 2.0)
    }

    fn finish_frame(&mut self) {
        let energy = mean_square(&self.frame);
        let floor = self.floor.update(energy);
        let loud = energy >= self.min_power && energy >= floor * self.gate;
        let decision = match &mut self.webrtc {
            Some(vad) => loud && vad.is_voice(&self.frame),
            None => loud,
        };
        self.last_decision = decision;
        self.frames += 1;
        self.speech_frames += u64::from(decision);
        self.recent = (self.recent << 1) | u32::from(decision);
        let frame_end = self.samples;
        let window_mask = if self.config.start_window >= 32 {
            u32::MAX
        } else {
            (1u32 << self.config.start_window) - 1
        };
        if decision {
            self.last_speech_end = frame_end;
        }
        if !self.speaking {
            let hits = (self.recent & window_mask).count_ones();
            if hits >= self.config.start_frames {
                // Date the start at the oldest speech frame in the window.
                let oldest = 31 - (self.recent & window_mask).leading_zeros();
                let at = frame_end.saturating_sub(u64::from(oldest + 1) * FRAME as u64);
                self.speaking = true;
                self.events.push(VadEvent::SpeechStarted { at });
            }
        } else if frame_end - self.last_speech_end >= u64::from(self.config.hangover_ms) * 8 {
            self.speaking = false;
            self.events.push(VadEvent::SpeechEnded {
                at: self.last_speech_end,
            });
        }
    }
}

/// Frame length: 10 ms.
const FRAME: usize = 80;

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>() {}

    #[test]
    fn is_send_and_finds_a_burst() {
        assert_send::<Vad>();
        let mut vad = Vad::new(VadConfig {
            mode: VadMode::Energy { threshold_db: 9.0 },
            ..VadConfig::default()
        })
        .unwrap();
        let mut x = vec![0i16; 16_000];
        for (n, v) in x[4000..8000].iter_mut().enumerate() {
            *v = ((n as f32 * 0.3).sin() * 3000.0 * (1.0 + (n as f32 * 0.01).sin())) as i16;
        }
        let mut events = Vec::new();
        for chunk in x.chunks(160) {
            vad.handle_samples(chunk);
            while let Some(e) = vad.poll_event() {
                events.push(e);
            }
        }
        assert_eq!(events.len(), 2, "{events:?}");
        assert!(matches!(events[0], VadEvent::SpeechStarted { at } if at.abs_diff(4000) <= 80));
        assert!(matches!(events[1], VadEvent::SpeechEnded { at } if at.abs_diff(8000) <= 160));
    }

    #[test]
    fn webrtc_moves_between_threads() {
        let mut vad = Vad::new(VadConfig::default()).unwrap();
        vad.handle_samples(&[0; 800]);
        let vad = std::thread::spawn(move || {
            vad.handle_samples(&[0; 800]);
            vad
        })
        .join()
        .unwrap();
        assert!(!vad.is_speech());
        assert_eq!(vad.samples_seen(), 1600);
    }
}
