//! Turning a leg's detectors on and off (the detection RPCs): each needs
//! the leg's receive side, so every change re-plans.

use super::EngineError;
use super::event::{EventKind, EventSink, ToneSource};
use super::legs::{LegSlot, Legs};
use super::media::{AmdTap, BeepTap, Detectors, LegMedia, ProgressTap, VadTap};

/// A change to a leg's detectors.
#[derive(Debug)]
pub(crate) enum DetectorChange {
    /// EnableBeepDetection.
    Beep(Box<BeepTap>),
    /// DisableBeepDetection.
    NoBeep,
    /// EnableToneDetection.
    Tones(Box<ProgressTap>),
    /// DisableToneDetection.
    NoTones,
    /// SetMicStatusHandling on (with its VAD) or off (`None`).
    Vad(Option<Box<VadTap>>),
    /// StartAudioIdentification.
    Identify(Box<AmdTap>),
    /// StopAudioIdentification.
    StopIdentify,
}

impl<S: Copy, C> Legs<S, C> {
    /// Leg `leg`, refused when unknown or terminated.
    fn live_leg(&mut self, leg: &str) -> Result<&mut LegSlot<S, C>, EngineError> {
        let slot = self.find(leg)?;
        let entry = self
            .get_mut(slot)
            .ok_or_else(|| EngineError::NotFound(format!("no such leg '{leg}'")))?;
        if entry.leg.is_terminated() {
            return Err(EngineError::FailedPrecondition(format!(
                "leg '{leg}' is terminated"
            )));
        }
        Ok(entry)
    }

    /// Applies `change` to leg `leg`'s detectors. Turning one on that is
    /// already on, or off that is not, is refused; so is a terminated leg.
    /// Raises AudioIdentificationStarted/Stopped on `events`.
    pub(crate) fn change_detectors(
        &mut self,
        leg: &str,
        change: DetectorChange,
        events: &mut impl EventSink,
    ) -> Result<(), EngineError> {
        let entry = self.live_leg(leg)?;
        if matches!(change, DetectorChange::Tones(_)) && entry.media.tone_detected {
            return Err(EngineError::FailedPrecondition(format!(
                "ToneDetected already fired for leg '{leg}' (once per call)"
            )));
        }
        let detectors = entry.media.detect.get_or_insert_with(Box::default);
        let result = apply(detectors, leg, change);
        if let Ok(Some(kind)) = &result {
            events.emit(&entry.leg.session, Some(&entry.leg.id), kind.clone());
        }
        if detectors.is_empty() {
            entry.media.detect = None;
        }
        self.replan();
        result.map(|_| ())
    }
}

impl<S: Copy, C> Legs<S, C> {
    /// SetToneHandling: the leg's received digits are reported and kept
    /// from its sinks (on), reported and left in the audio (on, `keep`),
    /// or forwarded untouched and not reported (off). Idempotent.
    pub(crate) fn set_tone_handling(
        &mut self,
        leg: &str,
        on: bool,
        keep: bool,
    ) -> Result<(), EngineError> {
        let entry = self.live_leg(leg)?;
        let keep = on && keep;
        if entry.leg.handle_tones != on || entry.leg.keep_tones != keep {
            entry.leg.handle_tones = on;
            entry.leg.keep_tones = keep;
            self.replan();
        }
        Ok(())
    }

    /// InjectDigits: `digits` the controller received by SIP INFO, each
    /// reported as ToneReceived while the leg's tone handling is on (off:
    /// nothing is reported, as for media digits). Whether they were.
    pub(crate) fn inject_digits(
        &mut self,
        leg: &str,
        digits: &str,
        duration_ms: u32,
        events: &mut impl EventSink,
    ) -> Result<bool, EngineError> {
        let entry = self.live_leg(leg)?;
        if !entry.leg.handle_tones {
            return Ok(false);
        }
        for tone in digits.chars() {
            events.emit(
                &entry.leg.session,
                Some(&entry.leg.id),
                EventKind::ToneReceived {
                    tone,
                    source: ToneSource::SipInfo,
                    duration_ms,
                },
            );
        }
        Ok(true)
    }
}

/// Whether a leg's party is speaking, as its VAD last decided (false
/// while SetMicStatusHandling is off).
pub(crate) fn is_speaking(media: &LegMedia) -> bool {
    media
        .detect
        .as_ref()
        .and_then(|d| d.vad.as_ref())
        .is_some_and(|v| v.is_speech())
}

/// `change` on `d`; the event it raises, if any.
fn apply(
    d: &mut Detectors,
    leg: &str,
    change: DetectorChange,
) -> Result<Option<EventKind>, EngineError> {
    let already = |what: &str| {
        Err(EngineError::FailedPrecondition(format!(
            "{what} is already on for leg '{leg}'"
        )))
    };
    let not_on = |what: &str| {
        Err(EngineError::FailedPrecondition(format!(
            "{what} is not on for leg '{leg}'"
        )))
    };
    match change {
        DetectorChange::Beep(tap) => {
            if d.beep.is_some() {
                return already("beep detection");
            }
            d.beep = Some(*tap);
            Ok(None)
        }
        DetectorChange::NoBeep => {
            if d.beep.take().is_none() {
                return not_on("beep detection");
            }
            Ok(None)
        }
        DetectorChange::Tones(tap) => {
            if d.progress.is_some() {
                return already("tone detection");
            }
            d.progress = Some(*tap);
            Ok(None)
        }
        DetectorChange::NoTones => {
            if d.progress.take().is_none() {
                return not_on("tone detection");
            }
            Ok(None)
        }
        DetectorChange::Vad(Some(tap)) => {
            // Idempotent: handleMicStatus(true) twice keeps the VAD's state.
            if d.vad.is_none() {
                d.vad = Some(*tap);
            }
            Ok(None)
        }
        DetectorChange::Vad(None) => {
            d.vad = None;
            Ok(None)
        }
        DetectorChange::Identify(tap) => {
            if d.amd.is_some() {
                return already("audio identification");
            }
            d.amd = Some(*tap);
            Ok(Some(EventKind::AudioIdentificationStarted))
        }
        DetectorChange::StopIdentify => {
            if d.amd.take().is_none() {
                return not_on("audio identification");
            }
            Ok(Some(EventKind::AudioIdentificationStopped))
        }
    }
}
