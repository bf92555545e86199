//! Answering-machine detection: decides whether an answered call reached a
//! person or a machine from the first seconds of received audio.
//!
//! The detector runs a [`Vad`] (raw 10 ms frame decisions) and a
//! [`BeepDetector`] and feeds a state machine with the classic cues: how
//! long the callee stays silent before speaking, how long the greeting
//! lasts, how many words it has, whether it is followed by silence (a person
//! says "Hello?" and waits), and whether a beep sounds. The defaults follow
//! the ones carriers know from Asterisk's `amd.conf`; every one is tunable.
//!
//! Decision rules, in the order they are checked each frame:
//!
//! | verdict | reason | when |
//! |---|---|---|
//! | machine | [`AmdReason::Beep`] | a beep is detected |
//! | machine | [`AmdReason::InitialSilence`] | no voice within `initial_silence_ms` |
//! | machine | [`AmdReason::LongGreeting`] | voice for more than `greeting_ms` since the first word |
//! | machine | [`AmdReason::TooManyWords`] | more than `max_words` words |
//! | machine | [`AmdReason::LongWord`] | one word longer than `max_word_ms` |
//! | human | [`AmdReason::SilenceAfterGreeting`] | `after_greeting_silence_ms` of silence after at least one word |
//! | unknown | [`AmdReason::Timeout`] | nothing decided within `total_analysis_ms` |

use crate::beep::{BeepDetector, BeepDetectorConfig, BeepEvent};
use crate::detector::ConfigError;
use crate::vad::{Vad, VadConfig};

/// Thresholds of an [`Amd`], in milliseconds unless noted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AmdConfig {
    /// Longest silence before the first word. Default 2500.
    pub initial_silence_ms: u32,
    /// Longest greeting. Default 1500.
    pub greeting_ms: u32,
    /// Silence after the greeting that means a person waits. Default 800.
    pub after_greeting_silence_ms: u32,
    /// Time after which the detector gives up. Default 5000.
    pub total_analysis_ms: u32,
    /// Shortest voiced stretch that counts as a word. Default 100.
    pub min_word_ms: u32,
    /// Silence that separates two words. Default 50.
    pub between_words_silence_ms: u32,
    /// Most words a person's greeting has (count). Default 3.
    pub max_words: u32,
    /// Longest single word. Default 5000.
    pub max_word_ms: u32,
    /// Voice activity classifier used for the frame decisions.
    pub vad: VadConfig,
}

impl Default for AmdConfig {
    fn default() -> Self {
        Self {
            initial_silence_ms: 2500,
            greeting_ms: 1500,
            after_greeting_silence_ms: 800,
            total_analysis_ms: 5000,
            min_word_ms: 100,
            between_words_silence_ms: 50,
            max_words: 3,
            max_word_ms: 5000,
            vad: VadConfig::default(),
        }
    }
}

/// Who answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmdVerdict {
    /// A person.
    Human,
    /// An answering machine or voicemail.
    Machine,
    /// No decision within the analysis time.
    Unknown,
}

/// The rule that decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmdReason {
    /// A beep was heard.
    Beep,
    /// Silence for too long before anyone spoke.
    InitialSilence,
    /// The greeting lasted too long.
    LongGreeting,
    /// Too many words.
    TooManyWords,
    /// One word lasted too long.
    LongWord,
    /// The callee spoke briefly, then waited.
    SilenceAfterGreeting,
    /// The analysis time ran out.
    Timeout,
}

/// The outcome of an [`Amd`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmdDecision {
    /// Who answered.
    pub verdict: AmdVerdict,
    /// Why.
    pub reason: AmdReason,
    /// Sample offset of the decision.
    pub at: u64,
    /// Words counted until then.
    pub words: u32,
}

/// Answering-machine detector; see the module docs.
#[derive(Debug)]
pub struct Amd {
    config: AmdConfig,
    vad: Vad,
    beep: BeepDetector,
    samples: u64,
    frame_fill: usize,
    /// Frames so far (10 ms).
    frames: u32,
    in_word: bool,
    voiced_run: u32,
    silent_run: u32,
    words: u32,
    first_voice: Option<u32>,
    decision: Option<AmdDecision>,
    polled: bool,
}

impl Amd {
    /// Creates a detector.
    pub fn new(config: AmdConfig) -> Result<Self, ConfigError> {
        if config.total_analysis_ms == 0 || config.total_analysis_ms > 60_000 {
            return Err(ConfigError {
                field: "total_analysis_ms",
            });
        }
        if config.min_word_ms < 10 {
            return Err(ConfigError {
                field: "min_word_ms",
            });
        }
        Ok(Self {
            config,
            vad: Vad::new(config.vad)?,
            beep: BeepDetector::new(BeepDetectorConfig::default())?,
            samples: 0,
            frame_fill: 0,
            frames: 0,
            in_word: false,
            voiced_run: 0,
            silent_run: 0,
            words: 0,
            first_voice: None,
            decision: None,
            polled: false,
        })
    }

    /// Feeds 8 kHz linear samples received from the callee since answer.
    /// Samples after the decision are ignored.
    pub fn handle_samples(&mut self, samples: &[i16]) {
        let mut rest = samples;
        while !rest.is_empty() && self.decision.is_none() {
            let take = (FRAME - self.frame_fill).min(rest.len());
            self.vad.handle_samples(&rest[..take]);
            self.beep.handle_samples(&rest[..take]);
            self.samples += take as u64;
            self.frame_fill += take;
            rest = &rest[take..];
            while self.vad.poll_event().is_some() {}
            if self.frame_fill == FRAME {
                self.frame_fill = 0;
                self.finish_frame();
            }
        }
    }

    /// The decision, once, when it is made.
    pub fn poll_decision(&mut self) -> Option<AmdDecision> {
        if self.polled {
            return None;
        }
        let decision = self.decision?;
        self.polled = true;
        Some(decision)
    }

    /// The decision if made (does not consume it).
    pub fn decision(&self) -> Option<AmdDecision> {
        self.decision
    }

    fn finish_frame(&mut self) {
        self.frames += 1;
        let c = &self.config;
        let ms = |frames: u32| frames * 10;
        let mut beep = false;
        while let Some(event) = self.beep.poll_event() {
            beep |= matches!(event, BeepEvent::Started { .. });
        }
        if beep {
            return self.decide(AmdVerdict::Machine, AmdReason::Beep);
        }
        let voiced = self.vad.last_frame_is_speech();
        if voiced {
            self.voiced_run += 1;
            self.silent_run = 0;
            if !self.in_word && ms(self.voiced_run) >= c.min_word_ms {
                self.in_word = true;
                self.words += 1;
                self.first_voice
                    .get_or_insert(self.frames - self.voiced_run);
            }
        } else {
            self.silent_run += 1;
            if ms(self.silent_run) >= c.between_words_silence_ms {
                self.in_word = false;
                self.voiced_run = 0;
            }
        }
        let now = ms(self.frames);
        match self.first_voice {
            None if now >= c.initial_silence_ms => {
                return self.decide(AmdVerdict::Machine, AmdReason::InitialSilence);
            }
            Some(first) => {
                if self.in_word && now - ms(first) > c.greeting_ms {
                    return self.decide(AmdVerdict::Machine, AmdReason::LongGreeting);
                }
                if self.words > c.max_words {
                    return self.decide(AmdVerdict::Machine, AmdReason::TooManyWords);
                }
                if self.in_word && ms(self.voiced_run) > c.max_word_ms {
                    return self.decide(AmdVerdict::Machine, AmdReason::LongWord);
                }
                if ms(self.silent_run) >= c.after_greeting_silence_ms {
                    return self.decide(AmdVerdict::Human, AmdReason::SilenceAfterGreeting);
                }
            }
            None => {}
        }
        if now >= c.total_analysis_ms {
            self.decide(AmdVerdict::Unknown, AmdReason::Timeout);
        }
    }

    fn decide(&mut self, verdict: AmdVerdict, reason: AmdReason) {
        self.decision = Some(AmdDecision {
            verdict,
            reason,
            at: self.samples,
            words: self.words,
        });
    }
}

/// Frame length: 10 ms.
const FRAME: usize = 80;

#[cfg(test)]
mod tests {
    use super::*;

    fn voice(len: usize) -> Vec<i16> {
        (0..len)
            .map(|n| {
                let t = n as f32 / 8000.0;
                (3000.0
                    * (2.0 * std::f32::consts::PI * 140.0 * t).sin().signum()
                    * (1.0 + (t * 37.0).sin())
                    * 0.5) as i16
            })
            .collect()
    }

    fn run(x: &[i16]) -> AmdDecision {
        let mut amd = Amd::new(AmdConfig {
            vad: VadConfig {
                mode: crate::vad::VadMode::Energy { threshold_db: 9.0 },
                ..VadConfig::default()
            },
            ..AmdConfig::default()
        })
        .unwrap();
        for chunk in x.chunks(160) {
            amd.handle_samples(chunk);
        }
        amd.poll_decision().expect("decided")
    }

    #[test]
    fn silence_is_machine_and_short_hello_is_human() {
        assert_eq!(run(&vec![0; 40_000]).reason, AmdReason::InitialSilence);
        let mut x = vec![0i16; 4000];
        x.extend(voice(4000));
        x.extend(vec![0i16; 16_000]);
        let d = run(&x);
        assert_eq!(
            (d.verdict, d.reason),
            (AmdVerdict::Human, AmdReason::SilenceAfterGreeting)
        );
        let mut x = vec![0i16; 4000];
        x.extend(voice(24_000));
        let d = run(&x);
        assert_eq!(
            (d.verdict, d.reason),
            (AmdVerdict::Machine, AmdReason::LongGreeting)
        );
    }
}
