//! The sessions of a shard: which legs each holds, its idle and lifetime
//! limits, and listing. Deleting a session's legs touches their sockets,
//! so the engine does that with what [`Sessions::remove`] hands back.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::EngineError;
use super::legs::Legs;

/// Sessions with limits checked per call of [`Sessions::expired`]: all of
/// them over this many calls (the engine calls it every 50 ms tick, so
/// each is checked once a second and a limit fires at most a second late,
/// while many sessions never stall the packet path at once).
pub(crate) const CHECK_ROUNDS: usize = 20;

/// Optional limits that delete a session a controller forgot (a crashed
/// controller leaves its sessions behind otherwise).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SessionLimits {
    /// Deleted after this long without an RPC naming it or one of its legs
    /// and without RTP received on any of its legs.
    pub(crate) idle_timeout: Option<Duration>,
    /// Deleted this long after it was created, whatever happens.
    pub(crate) max_duration: Option<Duration>,
}

/// Summary of a session.
#[derive(Clone, Debug)]
pub(crate) struct SessionInfo {
    pub(crate) id: Arc<str>,
    pub(crate) legs: Vec<Arc<str>>,
    pub(crate) created_at: SystemTime,
    pub(crate) limits: SessionLimits,
    /// How long the session has been idle (see [`SessionLimits`]).
    pub(crate) idle: Duration,
}

/// One page of a listing: items whose id sorts after `after`, at most
/// `limit` of them, in id order.
#[derive(Clone, Debug, Default)]
pub(crate) struct Page {
    pub(crate) after: Option<Arc<str>>,
    pub(crate) limit: usize,
}

impl Page {
    /// Whether an item id belongs to the page's range.
    pub(crate) fn admits(&self, id: &str) -> bool {
        self.after.as_deref().is_none_or(|after| id > after)
    }
}

/// A session: the unit a controller creates per call scenario.
#[derive(Debug)]
pub(crate) struct Session {
    /// Slots of its legs (terminated ones included).
    pub(crate) legs: Vec<u32>,
    created_at: SystemTime,
    limits: SessionLimits,
    /// When it was created (monotonic), for `max_duration`.
    started: Instant,
    /// The last RPC naming it or one of its legs, for `idle_timeout`.
    last_command: Instant,
}

impl Session {
    /// When the session last showed a sign of life: an RPC, or RTP on one
    /// of its legs.
    fn last_activity<S, C>(&self, legs: &Legs<S, C>) -> Instant {
        self.legs
            .iter()
            .filter_map(|&slot| legs.get(slot).and_then(|e| e.leg.last_rtp()))
            .fold(self.last_command, Instant::max)
    }

    /// Why the session must be deleted now, if it must.
    fn expired<S, C>(&self, now: Instant, legs: &Legs<S, C>) -> Option<String> {
        if let Some(max) = self.limits.max_duration
            && now.saturating_duration_since(self.started) >= max
        {
            return Some(format!(
                "session lifetime limit reached ({} s)",
                max.as_secs()
            ));
        }
        if let Some(idle) = self.limits.idle_timeout
            && now.saturating_duration_since(self.last_activity(legs)) >= idle
        {
            return Some(format!(
                "session idle for {} s (no RPC and no RTP)",
                idle.as_secs()
            ));
        }
        None
    }
}

/// The sessions of a shard.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    map: HashMap<Arc<str>, Session>,
    /// Sessions with an idle or lifetime limit, with their start (a
    /// deleted session's entry, or one of an older session of the same
    /// id, is dropped when the check reaches it).
    limited: Vec<(Arc<str>, Instant)>,
    /// Next entry of `limited` the check reaches.
    cursor: usize,
}

impl Sessions {
    /// Sessions alive.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Session `id`, if it exists.
    pub(crate) fn get(&self, id: &str) -> Option<&Session> {
        self.map.get(id)
    }

    /// The shared id of session `id`, if it exists.
    pub(crate) fn key(&self, id: &str) -> Option<&Arc<str>> {
        self.map.get_key_value(id).map(|(k, _)| k)
    }

    /// Creates a session; ALREADY_EXISTS when the id is taken.
    pub(crate) fn create(
        &mut self,
        id: Arc<str>,
        limits: SessionLimits,
        now: Instant,
        wall: SystemTime,
    ) -> Result<(), EngineError> {
        if self.map.contains_key(&id) {
            return Err(EngineError::AlreadyExists(format!(
                "session '{id}' already exists"
            )));
        }
        if limits != SessionLimits::default() {
            self.limited.push((id.clone(), now));
        }
        self.map.insert(
            id,
            Session {
                legs: Vec::new(),
                created_at: wall,
                limits,
                started: now,
                last_command: now,
            },
        );
        Ok(())
    }

    /// Takes session `id` out (its legs are the caller's to hang up).
    pub(crate) fn remove(&mut self, id: &str) -> Option<(Arc<str>, Session)> {
        self.map.remove_entry(id)
    }

    /// Adds leg `slot` to session `id`.
    pub(crate) fn add_leg(&mut self, id: &str, slot: u32) {
        if let Some(s) = self.map.get_mut(id) {
            s.legs.push(slot);
        }
    }

    /// Notes an RPC naming session `id` (a sign of life).
    pub(crate) fn touch(&mut self, id: &str, now: Instant) {
        if let Some(s) = self.map.get_mut(id) {
            s.last_command = now;
        }
    }

    /// Notes an RPC naming leg `leg` (a sign of life of its session).
    pub(crate) fn touch_leg<S, C>(&mut self, legs: &Legs<S, C>, leg: &str, now: Instant) {
        if let Some(entry) = legs.by_id.get(leg).and_then(|&slot| legs.get(slot)) {
            self.touch(&entry.leg.session, now);
        }
    }

    /// One page of the sessions, in id order.
    pub(crate) fn list<S, C>(
        &self,
        page: &Page,
        now: Instant,
        legs: &Legs<S, C>,
    ) -> Vec<SessionInfo> {
        let mut ids: Vec<&Arc<str>> = self.map.keys().filter(|id| page.admits(id)).collect();
        ids.sort_unstable();
        ids.truncate(page.limit);
        ids.into_iter()
            .filter_map(|id| {
                let s = self.map.get(id)?;
                Some(SessionInfo {
                    id: id.clone(),
                    legs: s.legs.iter().filter_map(|&l| legs.name(l)).collect(),
                    created_at: s.created_at,
                    limits: s.limits,
                    idle: now.saturating_duration_since(s.last_activity(legs)),
                })
            })
            .collect()
    }

    /// Checks the next slice of the sessions with limits; returns those
    /// whose idle or lifetime limit passed, with why (the caller deletes
    /// them).
    pub(crate) fn expired<S, C>(
        &mut self,
        now: Instant,
        legs: &Legs<S, C>,
    ) -> Vec<(Arc<str>, String)> {
        let mut expired = Vec::new();
        let mut budget = self.limited.len().div_ceil(CHECK_ROUNDS);
        while budget > 0 && !self.limited.is_empty() {
            budget -= 1;
            if self.cursor >= self.limited.len() {
                self.cursor = 0;
            }
            let (id, started) = &self.limited[self.cursor];
            let verdict = match self.map.get(id) {
                Some(s) if s.started == *started => s.expired(now, legs).map(Some),
                // Deleted, or an older session of this id.
                _ => Some(None),
            };
            let Some(reason) = verdict else {
                self.cursor += 1;
                continue;
            };
            let (id, _) = self.limited.swap_remove(self.cursor);
            if let Some(reason) = reason {
                expired.push((id, reason));
            }
        }
        expired
    }

    /// Whether any session has a limit (else [`Sessions::expired`] has
    /// nothing to do).
    pub(crate) fn has_limits(&self) -> bool {
        !self.limited.is_empty()
    }
}
