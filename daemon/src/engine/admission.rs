//! Admission accounting: the session and leg limits.
//!
//! A unit of a limit is taken by the control plane before it asks a shard
//! for the object, as an [`Admitted`] guard. The guard travels inside the
//! command; the shard calls [`Admitted::keep`] once the object exists (and
//! gives the unit back itself when the object goes away). On every other
//! path (an error, a gRPC call cancelled by its client while it waits, a
//! command dropped at shutdown) the guard is dropped and the unit comes
//! back: nothing hand-written on each branch can forget it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::Shared;
use crate::session::EngineError;

/// Which limit a unit belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Limit {
    /// `max_legs`: legs holding sockets.
    Legs,
    /// `max_sessions`: sessions alive.
    Sessions,
}

/// One unit of a limit, given back on drop unless kept.
#[derive(Debug)]
pub(crate) struct Admitted {
    shared: Option<Arc<Shared>>,
    limit: Limit,
}

impl Admitted {
    /// Takes one unit of `limit`, or fails with RESOURCE_EXHAUSTED.
    pub(crate) fn take(shared: &Arc<Shared>, limit: Limit) -> Result<Self, EngineError> {
        let (count, max, what) = match limit {
            Limit::Legs => (&shared.live_legs, shared.config.max_legs, "leg"),
            Limit::Sessions => (&shared.sessions, shared.config.max_sessions, "session"),
        };
        if count.fetch_add(1, Ordering::Relaxed) >= max {
            count.fetch_sub(1, Ordering::Relaxed);
            return Err(EngineError::ResourceExhausted(format!(
                "{what} limit reached ({max} {what}s)"
            )));
        }
        Ok(Self {
            shared: Some(shared.clone()),
            limit,
        })
    }

    /// The object exists: its owner gives the unit back when it goes.
    pub(crate) fn keep(mut self) {
        self.shared = None;
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            counter(&shared, self.limit).fetch_sub(1, Ordering::Relaxed);
        }
    }
}

fn counter(shared: &Shared, limit: Limit) -> &AtomicUsize {
    match limit {
        Limit::Legs => &shared.live_legs,
        Limit::Sessions => &shared.sessions,
    }
}
