//! Players: audio legato makes itself and plays into a leg as its single
//! source (VoxEngine: a call hears one stream at a time; a new one replaces
//! the old). A player lives in the leg it plays to ([`super::LegMedia`]),
//! is ticked on the media clock like a receive side, and hands the leg's
//! send side one 20 ms frame per tick at its own rate (the send side
//! resamples and encodes it in the leg's codec).
//!
//! A player advances only while its leg can send (EARLY_MEDIA or
//! CONNECTED, not on hold): a tone or prompt started on a leg that is still
//! ringing, or put on hold, waits for it instead of running on unheard.
//! Its first frame raises PlaybackStarted; a player that ends on its own
//! raises PlaybackFinished and leaves its leg with no source (it hears
//! nothing until routed again). StopPlayback ends it without an event.

use std::sync::Arc;

use legato_dsp::time::ClockRate;
use legato_dsp::tone::{Country, ProgressTone, ProgressToneGenerator};

use super::{MAX_FRAME, frame_len};
use crate::prompts::{Progress, PromptAudio};

/// What a player plays.
#[derive(Debug)]
enum Kind {
    /// A country's progress tone, cadence repeated until stopped.
    Tone(Box<ProgressToneGenerator>),
    /// A prompt's decoded audio, read as it is published.
    Prompt(Box<Cursor>),
}

/// Where a prompt player is in its audio.
#[derive(Debug)]
struct Cursor {
    audio: Arc<PromptAudio>,
    /// The segment being read and the next one's index.
    current: Option<Arc<[i16]>>,
    next: usize,
    offset: usize,
    looping: bool,
    /// PlaybackReady was raised.
    ready: bool,
}

/// What one tick of a player gave.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// A frame ([`Player::frame`]).
    Frame,
    /// Nothing yet: a prompt still decoding.
    Wait,
    /// Nothing yet: a prompt's rate just became known, the leg's send side
    /// is set up for it first (the caller re-plans).
    Replan,
    /// It ended: on its own, or with an error.
    Ended(Option<String>),
}

/// One playback into one leg.
#[derive(Debug)]
pub(crate) struct Player {
    /// The playback id the controller was given.
    pub(crate) id: Arc<str>,
    kind: Kind,
    rate: ClockRate,
    frame: [i16; MAX_FRAME],
    len: usize,
    /// PlaybackStarted is due (the first frame was made).
    started: bool,
    /// A frame was made (PlaybackStarted raised or due).
    playing: bool,
    /// The rate is known (a prompt's, once its decoding says it).
    rate_known: bool,
}

impl Player {
    /// A player of `country`'s `tone` (at the table's nominal level).
    pub(crate) fn tone(id: Arc<str>, country: Country, tone: ProgressTone) -> Option<Self> {
        let generator = ProgressToneGenerator::new(country, tone, 0.0).ok()?;
        Some(Self::new(
            id,
            Kind::Tone(Box::new(generator)),
            ClockRate::HZ_8000,
        ))
    }

    /// A player of a prompt (`looping`: from the start again at its end).
    pub(crate) fn prompt(id: Arc<str>, audio: Arc<PromptAudio>, looping: bool) -> Self {
        let rate = audio.rate();
        let cursor = Cursor {
            audio,
            current: None,
            next: 0,
            offset: 0,
            looping,
            ready: false,
        };
        let mut player = Self::new(
            id,
            Kind::Prompt(Box::new(cursor)),
            rate.unwrap_or(ClockRate::HZ_8000),
        );
        player.rate_known = rate.is_some();
        player
    }

    fn new(id: Arc<str>, kind: Kind, rate: ClockRate) -> Self {
        Self {
            id,
            kind,
            rate,
            frame: [0; MAX_FRAME],
            len: frame_len(rate).min(MAX_FRAME),
            started: false,
            playing: false,
            rate_known: true,
        }
    }

    /// The rate of the frames it makes.
    pub(crate) fn rate(&self) -> ClockRate {
        self.rate
    }

    /// Makes the next 20 ms frame, if it can.
    pub(crate) fn tick(&mut self) -> Step {
        if !self.rate_known {
            let Kind::Prompt(cursor) = &self.kind else {
                return Step::Wait;
            };
            if let Some(rate) = cursor.audio.rate() {
                self.rate = rate;
                self.len = frame_len(rate).min(MAX_FRAME);
                self.rate_known = true;
                return Step::Replan;
            }
            if cursor.audio.progress() == Progress::Failed {
                return Step::Ended(cursor.audio.error().map(str::to_owned));
            }
            return Step::Wait;
        }
        let out = &mut self.frame[..self.len];
        let step = match &mut self.kind {
            Kind::Tone(generator) => {
                generator.fill(out);
                Step::Frame
            }
            Kind::Prompt(cursor) => cursor.fill(out),
        };
        if step == Step::Frame && !self.playing {
            self.playing = true;
            self.started = true;
        }
        step
    }

    /// PlaybackReady is due (once, when a prompt is wholly decoded), with
    /// its duration in ms.
    pub(crate) fn take_ready(&mut self) -> Option<u64> {
        let Kind::Prompt(cursor) = &mut self.kind else {
            return None;
        };
        if cursor.ready || cursor.audio.progress() != Progress::Complete {
            return None;
        }
        cursor.ready = true;
        Some(cursor.audio.duration_ms())
    }

    /// The frame the last [`Player::tick`] made.
    pub(crate) fn frame(&self) -> &[i16] {
        &self.frame[..self.len]
    }

    /// Whether PlaybackStarted is due (once, after the first frame).
    pub(crate) fn take_started(&mut self) -> bool {
        std::mem::take(&mut self.started)
    }

    /// Duration of what it plays in ms, when it has an end (0: until
    /// stopped).
    pub(crate) fn duration_ms(&self) -> u64 {
        match &self.kind {
            Kind::Tone(_) => 0,
            Kind::Prompt(cursor) => match cursor.audio.progress() {
                Progress::Complete => cursor.audio.duration_ms(),
                _ => 0,
            },
        }
    }
}

impl Cursor {
    /// Fills `out` from the audio published so far. A frame the audio
    /// ends in is completed with silence; one the decoding has not reached
    /// yet waits (a gap in what the leg hears only when decoding runs
    /// slower than real time).
    fn fill(&mut self, out: &mut [i16]) -> Step {
        let mut filled = 0;
        while filled < out.len() {
            if let Some(current) = &self.current
                && self.offset < current.len()
            {
                let n = (out.len() - filled).min(current.len() - self.offset);
                out[filled..filled + n].copy_from_slice(&current[self.offset..self.offset + n]);
                self.offset += n;
                filled += n;
                continue;
            }
            if let Some(segment) = self.audio.segment(self.next) {
                self.current = Some(segment);
                self.next += 1;
                self.offset = 0;
                continue;
            }
            match self.audio.progress() {
                Progress::Loading => break,
                Progress::Failed => {
                    return Step::Ended(self.audio.error().map(str::to_owned));
                }
                Progress::Complete if self.looping && self.audio.samples() > 0 => {
                    self.current = None;
                    self.next = 0;
                    self.offset = 0;
                }
                Progress::Complete => break,
            }
        }
        if filled == 0 {
            return match self.audio.progress() {
                Progress::Loading => Step::Wait,
                _ => Step::Ended(self.audio.error().map(str::to_owned)),
            };
        }
        out[filled..].fill(0);
        Step::Frame
    }
}

/// Parses a progress tone's name as the API spells it (`call_waiting`;
/// `call-waiting` and any case are accepted too).
pub(crate) fn tone_by_name(name: &str) -> Option<ProgressTone> {
    let name = name.to_ascii_lowercase().replace('-', "_");
    ProgressTone::ALL
        .into_iter()
        .find(|t| tone_name(*t) == name)
}

/// A country's code as the API spells it (ISO 3166: GB for the UK).
pub(crate) fn country_code(country: Country) -> &'static str {
    match country {
        Country::Uk => "GB",
        c => c.code(),
    }
}

/// A progress tone's name as the API spells it.
pub(crate) fn tone_name(tone: ProgressTone) -> &'static str {
    match tone {
        ProgressTone::Busy => "busy",
        ProgressTone::CallWaiting => "call_waiting",
        ProgressTone::Congestion => "congestion",
        ProgressTone::Dial => "dial",
        ProgressTone::Ringback => "ringback",
        ProgressTone::SpecialInformation => "sit",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tone_names_round_trip() {
        for tone in ProgressTone::ALL {
            assert_eq!(tone_by_name(tone_name(tone)), Some(tone));
        }
        assert_eq!(
            tone_by_name("Call-Waiting"),
            Some(ProgressTone::CallWaiting)
        );
        assert_eq!(tone_by_name("beep"), None);
    }

    #[test]
    fn a_tone_player_makes_20_ms_frames_and_starts_once() {
        let mut p = Player::tone("p".into(), Country::Us, ProgressTone::Ringback).unwrap();
        assert_eq!(p.rate(), ClockRate::HZ_8000);
        assert_eq!(p.tick(), Step::Frame);
        assert_eq!(p.frame().len(), 160);
        assert!(p.frame().iter().any(|&s| s != 0), "US ringback starts on");
        assert!(p.take_started());
        assert_eq!(p.tick(), Step::Frame);
        assert!(!p.take_started());
        assert_eq!(p.duration_ms(), 0);
        assert_eq!(p.take_ready(), None);
    }

    #[test]
    fn a_prompt_player_follows_its_audio_as_it_is_published() {
        let audio = Arc::new(PromptAudio::default());
        let mut p = Player::prompt("p".into(), audio.clone(), false);
        assert_eq!(p.tick(), Step::Wait, "no rate yet");
        audio.set_rate(ClockRate::HZ_16000);
        assert_eq!(p.tick(), Step::Replan, "rate known: re-plan first");
        assert_eq!(p.rate(), ClockRate::HZ_16000);
        assert_eq!(p.tick(), Step::Wait, "no samples yet");
        audio.publish((0..400).collect());
        assert_eq!(p.tick(), Step::Frame);
        assert_eq!(p.frame().len(), 320);
        assert_eq!(p.frame()[319], 319);
        assert!(p.take_started());
        // 80 samples left, the decoder still busy: a frame ending in
        // silence would be wrong, but this is what was published.
        audio.publish((400..800).collect());
        assert_eq!(p.tick(), Step::Frame);
        assert_eq!(p.frame()[0], 320);
        assert_eq!(p.take_ready(), None);
        audio.complete();
        assert_eq!(p.take_ready(), Some(50));
        assert_eq!(p.take_ready(), None);
        assert_eq!(p.tick(), Step::Frame, "the last 160 samples, padded");
        assert_eq!((p.frame()[159], p.frame()[160]), (799, 0));
        assert_eq!(p.tick(), Step::Ended(None));

        // Looping restarts; a failure ends with its reason.
        let mut l = Player::prompt("l".into(), audio, true);
        for _ in 0..10 {
            assert_eq!(l.tick(), Step::Frame);
        }
        let broken = Arc::new(PromptAudio::failed("not audio".into()));
        let mut b = Player::prompt("b".into(), broken, false);
        assert_eq!(b.tick(), Step::Ended(Some("not audio".into())));
    }
}
