//! The slab of a shard's legs, each with the engine's handles for it.
//! Slot numbers are stable while a leg exists: sockets carry them as their
//! token, and routes (a leg's source and sinks) name legs by slot.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::media::{Conference, Endpoint, LegMedia, MediaClock, Schedule, Source};
use super::{EngineError, Leg, LegView};

/// A leg with what the engine keeps for it: `send`, the handle packets to
/// the leg's remote party go out through (small and `Copy`, read on every
/// relayed packet), and `io`, the engine's other bookkeeping (sockets,
/// port, kernel filter), read on the control path only. Aligned to a cache
/// line so the packet path's fields (`send`, then the leg's hot fields)
/// start one.
#[derive(Debug)]
#[repr(C, align(64))]
pub(crate) struct LegSlot<S, C> {
    pub(crate) send: S,
    /// The PCM path's receive and send sides, when the leg has them (the
    /// packet path checks `media.rx`).
    pub(crate) media: LegMedia,
    pub(crate) leg: Leg,
    pub(crate) io: C,
}

/// Slab of legs, with the conferences they may join and the media clock
/// that ticks their PCM path; see the module docs.
#[derive(Debug)]
pub(crate) struct Legs<S, C> {
    pub(crate) slots: Vec<Option<LegSlot<S, C>>>,
    pub(crate) free: Vec<u32>,
    pub(crate) by_id: HashMap<Arc<str>, u32>,
    pub(crate) conferences: Vec<Option<Conference>>,
    pub(crate) conference_ids: HashMap<Arc<str>, u32>,
    /// What the media clock ticks (see `Legs::replan`).
    pub(crate) schedule: Schedule,
    pub(crate) clock: MediaClock,
}

impl<S, C> Legs<S, C> {
    /// No legs yet; the media clock starts at `epoch` (wall-clock time
    /// `wall_epoch`).
    pub(crate) fn new(epoch: Instant, wall_epoch: SystemTime) -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            by_id: HashMap::new(),
            conferences: Vec::new(),
            conference_ids: HashMap::new(),
            schedule: Schedule::default(),
            clock: MediaClock::new(epoch, wall_epoch),
        }
    }

    /// The conference in slot `c`.
    pub(crate) fn conference(&self, c: u32) -> Option<&Conference> {
        self.conferences.get(c as usize)?.as_ref()
    }

    /// The slot of conference `id`.
    pub(crate) fn find_conference(&self, id: &str) -> Result<u32, EngineError> {
        self.conference_ids
            .get(id)
            .copied()
            .ok_or_else(|| EngineError::NotFound(format!("no such conference '{id}'")))
    }

    pub(crate) fn get(&self, slot: u32) -> Option<&LegSlot<S, C>> {
        self.slots.get(slot as usize)?.as_ref()
    }

    pub(crate) fn get_mut(&mut self, slot: u32) -> Option<&mut LegSlot<S, C>> {
        self.slots.get_mut(slot as usize)?.as_mut()
    }

    /// The slot of leg `id`.
    pub(crate) fn find(&self, id: &str) -> Result<u32, EngineError> {
        self.by_id
            .get(id)
            .copied()
            .ok_or_else(|| EngineError::NotFound(format!("no such leg '{id}'")))
    }

    /// A free slot number (the slot stays empty until filled).
    pub(crate) fn next_slot(&mut self) -> u32 {
        match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(None);
                (self.slots.len() - 1) as u32
            }
        }
    }

    /// The id of the leg in `slot`.
    pub(crate) fn name(&self, slot: u32) -> Option<Arc<str>> {
        self.get(slot).map(|s| s.leg.id.clone())
    }

    /// A snapshot of the leg in `slot` for the control plane.
    pub(crate) fn view(&self, slot: u32) -> Option<LegView> {
        let entry = self.get(slot)?;
        let source = match entry.leg.source {
            Some(Source::Leg(s)) => self.name(s).map(Endpoint::Leg),
            Some(Source::Conference(c)) => self
                .conference(c)
                .map(|c| Endpoint::Conference(c.id.clone())),
            Some(Source::Player) | None => None,
        };
        let mut view = entry.leg.view(source, |other| self.name(other));
        view.playback = entry.media.player.as_ref().map(|p| p.id.clone());
        view.voice_active = super::detection::is_speaking(&entry.media);
        Some(view)
    }
}
