//! Routing (Call.sendMediaTo / stopMediaTo) between legs and conferences:
//! a leg's received audio may feed any number of sinks, a sink leg has
//! exactly one source (a leg or a conference), and a new one replaces the
//! old. A leg routed into a conference talks in it; a conference routed
//! into a leg makes the leg listen to it. Routes are kept as slots on both
//! ends (`Leg::source`, `Leg::sinks`, conference members) so the media
//! paths follow them without a lookup; after each change `Legs::replan`
//! decides relay or PCM path.

use std::sync::Arc;

use legato_dsp::mix::Gain;
use legato_dsp::time::ClockRate;

use super::EngineError;
use super::legs::{LegSlot, Legs};
use super::media::{
    Conference, Endpoint, Key, MAX_CONFERENCES, MAX_MEMBERS, MAX_RECORDINGS_PER_LEG, Player,
    Recording, Source,
};

/// Most SendDigits keys one leg may have waiting.
pub(crate) const MAX_QUEUED_KEYS: usize = 256;

/// How SendDigits sends its digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DigitMode {
    /// RFC 4733 when the leg negotiated telephone-event, else in-band.
    Auto,
    Rfc4733,
    InBand,
}

/// The outcome of SendMedia.
#[derive(Clone, Debug)]
pub(crate) struct Routed {
    /// The source the sink had before, if any.
    pub(crate) replaced: Option<Endpoint>,
    /// Why nothing is forwarded to the sink now, if that is so (the sink
    /// is not CONNECTED or in EARLY_MEDIA, or on hold).
    pub(crate) held_back: Option<String>,
}

impl<S: Copy, C> Legs<S, C> {
    /// SendMedia: makes `from`'s audio the source of `to` (a leg), or makes
    /// leg `from` talk in conference `to` with `gain_db`.
    pub(crate) fn route(
        &mut self,
        from: &Endpoint,
        to: &Endpoint,
        gain_db: f32,
    ) -> Result<Routed, EngineError> {
        let routed = match (from, to) {
            (Endpoint::Leg(from), Endpoint::Leg(to)) => self.route_legs(from, to)?,
            (Endpoint::Leg(from), Endpoint::Conference(to)) => self.join(from, to, gain_db)?,
            (Endpoint::Conference(from), Endpoint::Leg(to)) => self.listen(from, to)?,
            (Endpoint::Conference(from), Endpoint::Conference(to)) => {
                return Err(EngineError::InvalidArgument(if from == to {
                    format!("conference '{from}' cannot send media to itself")
                } else {
                    format!(
                        "conference '{from}' cannot send media to conference '{to}': route a leg between them"
                    )
                }));
            }
        };
        self.replan();
        Ok(routed)
    }

    /// StopMedia: `from` stops being `to`'s source (or leg `from` stops
    /// talking in conference `to`).
    pub(crate) fn unroute(&mut self, from: &Endpoint, to: &Endpoint) -> Result<(), EngineError> {
        match (from, to) {
            (Endpoint::Leg(from), Endpoint::Leg(to)) => {
                let from_slot = self.find(from)?;
                let to_slot = self.find(to)?;
                if self.source_of(to_slot) != Some(Source::Leg(from_slot)) {
                    return Err(EngineError::NotFound(format!(
                        "leg '{from}' is not sending media to leg '{to}'"
                    )));
                }
                self.clear_source(to_slot);
            }
            (Endpoint::Leg(from), Endpoint::Conference(to)) => {
                let leg = self.find(from)?;
                let c = self.find_conference(to)?;
                let left = self.conferences[c as usize]
                    .as_mut()
                    .is_some_and(|conf| conf.leave(leg, true));
                if !left {
                    return Err(EngineError::NotFound(format!(
                        "leg '{from}' is not sending media to conference '{to}'"
                    )));
                }
            }
            (Endpoint::Conference(from), Endpoint::Leg(to)) => {
                let c = self.find_conference(from)?;
                let leg = self.find(to)?;
                if self.source_of(leg) != Some(Source::Conference(c)) {
                    return Err(EngineError::NotFound(format!(
                        "conference '{from}' is not sending media to leg '{to}'"
                    )));
                }
                self.clear_source(leg);
            }
            (Endpoint::Conference(from), Endpoint::Conference(to)) => {
                return Err(EngineError::NotFound(format!(
                    "conference '{from}' is not sending media to conference '{to}'"
                )));
            }
        }
        self.replan();
        Ok(())
    }

    /// StartPlayback, Say, PlayProgressTone: `player` becomes the source of
    /// leg `leg`, replacing what it heard (returned as `replaced` when that
    /// was a leg or conference; a replaced player ends without an event).
    pub(crate) fn play(&mut self, leg: &str, player: Player) -> Result<Routed, EngineError> {
        let slot = self.find(leg)?;
        let entry = self.media_ready(slot, leg)?;
        let held_back = entry.leg.held_back_reason();
        let replaced = self.clear_source(slot);
        if let Some(entry) = self.get_mut(slot) {
            entry.leg.source = Some(Source::Player);
            entry.media.player = Some(Box::new(player));
            entry.leg.reset_out_source();
        }
        self.replan();
        Ok(Routed {
            replaced,
            held_back,
        })
    }

    /// StartPlayback, Say, PlayProgressTone into conference `id`: every
    /// listener hears `player` over the mix, replacing the conference's
    /// previous player (which ends without an event).
    pub(crate) fn play_conference(&mut self, id: &str, player: Player) -> Result<(), EngineError> {
        let c = self.find_conference(id)?;
        if let Some(conf) = self.conferences[c as usize].as_mut() {
            conf.set_player(Some(player));
        }
        self.replan();
        Ok(())
    }

    /// StartRecording: `tap` (recording `id`) gets `target`'s frames from
    /// the next tick on: a leg's (what it received and what it was sent;
    /// the leg keeps its path: a relayed leg stays relayed, its receive
    /// side and its source's decode a copy) or a conference's whole mix.
    pub(crate) fn attach_recording(
        &mut self,
        target: &Endpoint,
        id: Arc<str>,
        tap: crate::recording::Tap,
    ) -> Result<(), EngineError> {
        if let Endpoint::Leg(leg) = target
            && self
                .get(self.find(leg)?)
                .is_some_and(|e| e.leg.is_terminated())
        {
            return Err(EngineError::FailedPrecondition(format!(
                "leg '{leg}' is terminated"
            )));
        }
        let recordings = self.recordings_mut(target)?;
        if recordings.len() >= MAX_RECORDINGS_PER_LEG {
            return Err(EngineError::ResourceExhausted(format!(
                "'{}' has {MAX_RECORDINGS_PER_LEG} recordings already",
                target.id()
            )));
        }
        recordings.push(Recording { id, tap });
        self.replan();
        Ok(())
    }

    /// StopRecording: ends recording `id` of `target`, or all of them
    /// (`None`); how many ended. Their files are finalized off the shard,
    /// then RecordStopped follows.
    pub(crate) fn stop_recording(
        &mut self,
        target: &Endpoint,
        id: Option<&str>,
    ) -> Result<usize, EngineError> {
        let recordings = self.recordings_mut(target)?;
        let before = recordings.len();
        recordings.retain_mut(|r| {
            let stop = id.is_none_or(|id| *r.id == *id);
            if stop {
                r.tap.stop();
            }
            !stop
        });
        let stopped = before - recordings.len();
        if stopped == 0
            && let Some(id) = id
        {
            return Err(EngineError::NotFound(format!(
                "'{}' has no recording '{id}'",
                target.id()
            )));
        }
        self.replan();
        Ok(stopped)
    }

    /// The recordings of a leg or of a conference.
    fn recordings_mut(&mut self, target: &Endpoint) -> Result<&mut Vec<Recording>, EngineError> {
        match target {
            Endpoint::Leg(leg) => {
                let slot = self.find(leg)?;
                self.get_mut(slot)
                    .map(|entry| &mut entry.media.recordings)
                    .ok_or_else(|| EngineError::NotFound(format!("no such leg '{leg}'")))
            }
            Endpoint::Conference(c) => {
                let slot = self.find_conference(c)?;
                self.conferences
                    .get_mut(slot as usize)
                    .and_then(Option::as_mut)
                    .map(|conf| &mut conf.recordings)
                    .ok_or_else(|| EngineError::NotFound(format!("no such conference '{c}'")))
            }
        }
    }

    /// StopPlayback of conference `id`: its player ends with no event.
    pub(crate) fn stop_conference_playback(&mut self, id: &str) -> Result<bool, EngineError> {
        let c = self.find_conference(id)?;
        let stopped = self.conferences[c as usize]
            .as_mut()
            .and_then(|conf| conf.set_player(None))
            .is_some();
        Ok(stopped)
    }

    /// SendDigits: queues `keys` on leg `leg`'s send side, as RFC 4733
    /// events or in-band tones per `mode`. The leg takes the PCM path
    /// until they are over (a relayed leg returns to the relay after).
    pub(crate) fn send_digits(
        &mut self,
        leg: &str,
        mut keys: Vec<Key>,
        mode: DigitMode,
    ) -> Result<(), EngineError> {
        let slot = self.find(leg)?;
        let entry = self.media_ready(slot, leg)?;
        let has_events = entry.leg.telephone_event_rate().is_some();
        let events = match mode {
            DigitMode::Auto => has_events,
            DigitMode::InBand => false,
            DigitMode::Rfc4733 if has_events => true,
            DigitMode::Rfc4733 => {
                return Err(EngineError::FailedPrecondition(format!(
                    "leg '{leg}' negotiated no telephone-event: send its digits IN_BAND or AUTO"
                )));
            }
        };
        for key in &mut keys {
            key.events = events;
        }
        let was_sending = entry.leg.sending_digits;
        if let Some(entry) = self.get_mut(slot) {
            entry.leg.sending_digits = true;
        }
        if !was_sending {
            self.replan();
        }
        let queued = self
            .get_mut(slot)
            .and_then(|e| e.media.tx.as_mut())
            .map(|tx| tx.queue_keys(&keys, MAX_QUEUED_KEYS));
        match queued {
            Some(true) => Ok(()),
            Some(false) => Err(EngineError::ResourceExhausted(format!(
                "leg '{leg}' has digits waiting already: at most {MAX_QUEUED_KEYS} at once"
            ))),
            None => {
                if let Some(entry) = self.get_mut(slot) {
                    entry.leg.sending_digits = false;
                }
                self.replan();
                Err(EngineError::FailedPrecondition(format!(
                    "leg '{leg}' cannot send audio in its codec"
                )))
            }
        }
    }

    /// StopPlayback: ends the player of leg `leg`, if it has one, with no
    /// event; the leg then hears nothing until routed again. Whether a
    /// player was stopped.
    pub(crate) fn stop_playback(&mut self, leg: &str) -> Result<bool, EngineError> {
        let slot = self.find(leg)?;
        if self.source_of(slot) != Some(Source::Player) {
            return Ok(false);
        }
        self.clear_source(slot);
        self.replan();
        Ok(true)
    }

    fn source_of(&self, slot: u32) -> Option<Source> {
        self.get(slot).and_then(|e| e.leg.source)
    }

    fn route_legs(&mut self, from: &str, to: &str) -> Result<Routed, EngineError> {
        let from_slot = self.find(from)?;
        let to_slot = self.find(to)?;
        if from_slot == to_slot {
            return Err(EngineError::InvalidArgument(format!(
                "leg '{from}' cannot send media to itself"
            )));
        }
        let (Some(source), Some(sink)) = (self.get(from_slot), self.get(to_slot)) else {
            return Err(EngineError::NotFound(format!("no such leg '{from}'")));
        };
        if source.leg.session != sink.leg.session {
            return Err(EngineError::InvalidArgument(format!(
                "legs '{from}' and '{to}' belong to different sessions"
            )));
        }
        self.media_ready(from_slot, from)?;
        self.media_ready(to_slot, to)?;
        let held_back = sink.leg.held_back_reason();
        if self.source_of(to_slot) == Some(Source::Leg(from_slot)) {
            return Ok(Routed {
                replaced: None,
                held_back,
            });
        }
        let replaced = self.clear_source(to_slot);
        if let Some(sink) = self.get_mut(to_slot) {
            sink.leg.source = Some(Source::Leg(from_slot));
            sink.leg.reset_out_source();
        }
        if let Some(source) = self.get_mut(from_slot) {
            source.leg.sinks.push(to_slot);
        }
        Ok(Routed {
            replaced,
            held_back,
        })
    }

    /// Leg `leg` talks in conference `conference`.
    fn join(&mut self, leg: &str, conference: &str, gain_db: f32) -> Result<Routed, EngineError> {
        let slot = self.find(leg)?;
        let c = self.find_conference(conference)?;
        self.check_member(slot, c, leg, conference)?;
        let Some(conf) = self.conferences[c as usize].as_mut() else {
            return Err(EngineError::NotFound(format!(
                "no such conference '{conference}'"
            )));
        };
        if !conf.join(slot, true) {
            return Err(EngineError::ResourceExhausted(format!(
                "conference '{conference}' has {MAX_MEMBERS} members already"
            )));
        }
        conf.set_gain(slot, Gain::from_db(gain_db));
        Ok(Routed {
            replaced: None,
            held_back: None,
        })
    }

    /// Leg `leg` hears conference `conference` (its new source).
    fn listen(&mut self, conference: &str, leg: &str) -> Result<Routed, EngineError> {
        let c = self.find_conference(conference)?;
        let slot = self.find(leg)?;
        self.check_member(slot, c, leg, conference)?;
        let held_back = self.get(slot).and_then(|e| e.leg.held_back_reason());
        if self.source_of(slot) == Some(Source::Conference(c)) {
            return Ok(Routed {
                replaced: None,
                held_back,
            });
        }
        if self
            .conference(c)
            .is_some_and(|conf| conf.len() >= MAX_MEMBERS && !conf.legs().any(|l| l == slot))
        {
            return Err(EngineError::ResourceExhausted(format!(
                "conference '{conference}' has {MAX_MEMBERS} members already"
            )));
        }
        let replaced = self.clear_source(slot);
        if let Some(conf) = self.conferences[c as usize].as_mut() {
            conf.join(slot, false);
        }
        if let Some(entry) = self.get_mut(slot) {
            entry.leg.source = Some(Source::Conference(c));
            entry.leg.reset_out_source();
        }
        Ok(Routed {
            replaced,
            held_back,
        })
    }

    fn check_member(
        &self,
        slot: u32,
        c: u32,
        leg: &str,
        conference: &str,
    ) -> Result<(), EngineError> {
        let (Some(entry), Some(conf)) = (self.get(slot), self.conference(c)) else {
            return Err(EngineError::NotFound(format!("no such leg '{leg}'")));
        };
        if entry.leg.session != conf.session {
            return Err(EngineError::InvalidArgument(format!(
                "leg '{leg}' and conference '{conference}' belong to different sessions"
            )));
        }
        self.media_ready(slot, leg).map(drop)
    }

    /// The leg in `slot` (named `name`), if it can take part in media: not
    /// terminated, media negotiated.
    fn media_ready(&self, slot: u32, name: &str) -> Result<&LegSlot<S, C>, EngineError> {
        let Some(entry) = self.get(slot) else {
            return Err(EngineError::NotFound(format!("no such leg '{name}'")));
        };
        if entry.leg.is_terminated() {
            return Err(EngineError::FailedPrecondition(format!(
                "leg '{name}' is terminated"
            )));
        }
        if entry.leg.codec().is_none() {
            return Err(EngineError::FailedPrecondition(format!(
                "leg '{name}' has no negotiated media yet"
            )));
        }
        Ok(entry)
    }

    /// Removes the source of leg `slot`, returning what it was.
    fn clear_source(&mut self, slot: u32) -> Option<Endpoint> {
        let source = self.get_mut(slot)?.leg.source.take()?;
        if let Some(entry) = self.get_mut(slot) {
            entry.leg.reset_out_source();
        }
        match source {
            Source::Leg(from) => {
                let name = self.name(from);
                if let Some(entry) = self.get_mut(from) {
                    entry.leg.sinks.retain(|s| *s != slot);
                }
                name.map(Endpoint::Leg)
            }
            Source::Conference(c) => {
                let conf = self.conferences.get_mut(c as usize)?.as_mut()?;
                conf.leave(slot, false);
                Some(Endpoint::Conference(conf.id.clone()))
            }
            Source::Player => {
                self.get_mut(slot)?.media.player = None;
                None
            }
        }
    }

    /// Removes every route of the leg in `slot` (it is being torn down):
    /// its source stops feeding it, its sinks lose their source, and it
    /// leaves every conference.
    pub(crate) fn detach(&mut self, slot: u32) {
        self.clear_source(slot);
        let Some(entry) = self.get_mut(slot) else {
            return;
        };
        let sinks = std::mem::take(&mut entry.leg.sinks);
        for sink in sinks {
            if let Some(s) = self.get_mut(sink) {
                s.leg.source = None;
                s.leg.reset_out_source();
            }
        }
        for conf in self.conferences.iter_mut().flatten() {
            conf.remove(slot);
        }
        self.replan();
    }

    /// CreateConference: a new, empty conference of `session`, mixing at
    /// `rate` or (`None`) at the widest member's.
    pub(crate) fn create_conference(
        &mut self,
        id: Arc<str>,
        session: Arc<str>,
        rate: Option<ClockRate>,
    ) -> Result<(), EngineError> {
        if self.conference_ids.contains_key(&id) {
            return Err(EngineError::AlreadyExists(format!(
                "conference '{id}' already exists"
            )));
        }
        if self.conference_ids.len() >= MAX_CONFERENCES {
            return Err(EngineError::ResourceExhausted(format!(
                "this shard holds {MAX_CONFERENCES} conferences already"
            )));
        }
        let slot = match self.conferences.iter().position(Option::is_none) {
            Some(slot) => slot,
            None => {
                self.conferences.push(None);
                self.conferences.len() - 1
            }
        };
        self.conferences[slot] = Some(Conference::new(id.clone(), session, rate));
        self.conference_ids.insert(id, slot as u32);
        Ok(())
    }

    /// DeleteConference: its listeners lose their source, its talkers
    /// stop talking in it.
    pub(crate) fn delete_conference(&mut self, id: &str) -> Result<(), EngineError> {
        let c = self.find_conference(id)?;
        self.remove_conference(c);
        Ok(())
    }

    fn remove_conference(&mut self, c: u32) {
        let Some(conf) = self.conferences.get_mut(c as usize).and_then(Option::take) else {
            return;
        };
        self.conference_ids.remove(&conf.id);
        for leg in conf.legs() {
            if let Some(entry) = self.get_mut(leg)
                && entry.leg.source == Some(Source::Conference(c))
            {
                entry.leg.source = None;
                entry.leg.reset_out_source();
            }
        }
        self.replan();
    }

    /// Deletes the conferences of session `session` (it is being deleted).
    pub(crate) fn delete_session_conferences(&mut self, session: &str) {
        let doomed: Vec<u32> = self
            .conferences
            .iter()
            .enumerate()
            .filter(|(_, c)| c.as_ref().is_some_and(|c| &*c.session == session))
            .map(|(i, _)| i as u32)
            .collect();
        for c in doomed {
            self.remove_conference(c);
        }
    }
}
