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

/// What a player plays.
#[derive(Debug)]
enum Kind {
    /// A country's progress tone, cadence repeated until stopped.
    Tone(Box<ProgressToneGenerator>),
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
    /// Frames made so far.
    frames: u64,
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

    fn new(id: Arc<str>, kind: Kind, rate: ClockRate) -> Self {
        Self {
            id,
            kind,
            rate,
            frame: [0; MAX_FRAME],
            len: frame_len(rate).min(MAX_FRAME),
            started: false,
            frames: 0,
        }
    }

    /// The rate of the frames it makes.
    pub(crate) fn rate(&self) -> ClockRate {
        self.rate
    }

    /// Makes the next 20 ms frame; `false` when the player has ended (no
    /// frame then).
    pub(crate) fn tick(&mut self) -> bool {
        let out = &mut self.frame[..self.len];
        match &mut self.kind {
            Kind::Tone(generator) => generator.fill(out),
        }
        if self.frames == 0 {
            self.started = true;
        }
        self.frames += 1;
        true
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
        match self.kind {
            Kind::Tone(_) => 0,
        }
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
        assert!(p.tick());
        assert_eq!(p.frame().len(), 160);
        assert!(p.frame().iter().any(|&s| s != 0), "US ringback starts on");
        assert!(p.take_started());
        assert!(p.tick());
        assert!(!p.take_started());
        assert_eq!(p.duration_ms(), 0);
    }
}
