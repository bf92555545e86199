//! The event hub: takes engine events off the shards' queue, numbers them,
//! keeps a bounded replay window and fans them out to WatchEvents streams.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use legato_proto::v1 as pb;
use tokio::sync::broadcast;

use super::convert;
use crate::engine::Shared;

/// Numbered events, the replay window and the live fan-out.
#[derive(Debug)]
pub(crate) struct EventHub {
    state: Mutex<HubState>,
    live: broadcast::Sender<Arc<pb::Event>>,
}

#[derive(Debug)]
struct HubState {
    next_sequence: u64,
    window: VecDeque<Arc<pb::Event>>,
    capacity: usize,
}

/// What a new watcher starts from.
#[derive(Debug)]
pub(crate) struct Subscription {
    /// Retained events with sequence >= the requested one.
    pub(crate) replay: Vec<Arc<pb::Event>>,
    /// Everything published after the replay.
    pub(crate) live: broadcast::Receiver<Arc<pb::Event>>,
    /// Oldest sequence number still retained (the next one if none is).
    pub(crate) oldest: u64,
}

impl EventHub {
    /// A hub retaining `capacity` events for replay and buffering
    /// `live_buffer` live events per watcher.
    pub(crate) fn new(capacity: usize, live_buffer: usize) -> Self {
        Self {
            state: Mutex::new(HubState {
                next_sequence: 1,
                window: VecDeque::with_capacity(capacity.min(1 << 16)),
                capacity,
            }),
            live: broadcast::channel(live_buffer.max(1)).0,
        }
    }

    /// Numbers and publishes an event.
    pub(crate) fn publish(&self, mut event: pb::Event) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        event.sequence = state.next_sequence;
        state.next_sequence += 1;
        let event = Arc::new(event);
        if state.window.len() >= state.capacity {
            state.window.pop_front();
        }
        state.window.push_back(event.clone());
        // Sent under the lock so live order equals sequence order and a
        // subscriber sees each event exactly once (replay or live).
        let _ = self.live.send(event);
    }

    /// Events published so far (for metrics).
    pub(crate) fn published(&self) -> u64 {
        let state = match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        state.next_sequence - 1
    }

    /// Subscribes, replaying retained events from `from` (0: none).
    pub(crate) fn subscribe(&self, from: u64) -> Subscription {
        let state = match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        let live = self.live.subscribe();
        let oldest = state
            .window
            .front()
            .map_or(state.next_sequence, |e| e.sequence);
        let replay = if from == 0 {
            Vec::new()
        } else {
            state
                .window
                .iter()
                .filter(|e| e.sequence >= from)
                .cloned()
                .collect()
        };
        Subscription {
            replay,
            live,
            oldest,
        }
    }
}

/// Moves engine events into the hub until `stop` is set; runs on its own
/// thread, woken by the shards (`EventQueue::wake`).
pub(crate) fn pump(shared: &Shared, hub: &EventHub, stop: &AtomicBool) {
    shared.events.set_pump(std::thread::current());
    while !stop.load(Ordering::Acquire) {
        drain(shared, hub);
        std::thread::park_timeout(Duration::from_millis(100));
    }
    drain(shared, hub);
}

/// Publishes every queued engine event (and a count of dropped ones).
pub(crate) fn drain(shared: &Shared, hub: &EventHub) {
    let dropped = shared.events.take_dropped();
    if dropped > 0 {
        tracing::warn!(dropped, "engine event queue overflowed");
        hub.publish(pb::Event {
            timestamp: Some(convert::timestamp(std::time::SystemTime::now())),
            kind: Some(pb::event::Kind::EventsDropped(pb::EventsDropped {
                count: dropped,
                first_missing: 0,
            })),
            ..pb::Event::default()
        });
    }
    while let Some(event) = shared.events.pop() {
        hub.publish(convert::event(&event));
    }
}

/// A WatchEvents filter.
#[derive(Clone, Debug, Default)]
pub(crate) struct Filter {
    pub(crate) session: String,
    pub(crate) leg: String,
}

impl Filter {
    pub(crate) fn matches(&self, e: &pb::Event) -> bool {
        if e.session_id.is_empty() {
            return true; // daemon-wide events (EventsDropped)
        }
        if !self.session.is_empty() && e.session_id != self.session {
            return false;
        }
        self.leg.is_empty() || e.leg_id == self.leg || e.leg_id.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(session: &str, leg: &str) -> pb::Event {
        pb::Event {
            session_id: session.into(),
            leg_id: leg.into(),
            ..pb::Event::default()
        }
    }

    #[test]
    fn numbering_replay_and_window() {
        let hub = EventHub::new(4, 16);
        for _ in 0..6 {
            hub.publish(ev("s", "l"));
        }
        let sub = hub.subscribe(2);
        assert_eq!(sub.oldest, 3);
        let seqs: Vec<u64> = sub.replay.iter().map(|e| e.sequence).collect();
        assert_eq!(seqs, [3, 4, 5, 6]);
        let mut live = sub.live;
        hub.publish(ev("s", "l"));
        assert_eq!(live.try_recv().unwrap().sequence, 7);
    }

    #[test]
    fn filter_table() {
        let f = Filter {
            session: "s1".into(),
            leg: "l1".into(),
        };
        assert!(f.matches(&ev("s1", "l1")));
        assert!(f.matches(&ev("s1", "")));
        assert!(f.matches(&ev("", "")));
        assert!(!f.matches(&ev("s1", "l2")));
        assert!(!f.matches(&ev("s2", "l1")));
        assert!(Filter::default().matches(&ev("x", "y")));
    }
}
