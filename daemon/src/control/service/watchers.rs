//! WatchEvents: one task per stream feeds it from the event hub.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use legato_proto::v1 as pb;
use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::Service;
use crate::control::convert;
use crate::control::events::{Filter, Subscription};
use crate::control::limits;
use crate::control::metrics::ControlMetrics;

/// Events buffered per WatchEvents stream towards the client.
const WATCH_BUFFER: usize = 1024;

pub(super) async fn watch_events(
    svc: &Service,
    request: Request<pb::WatchEventsRequest>,
) -> Result<Response<super::EventStream>, Status> {
    if svc.stopping.load(Ordering::Relaxed) {
        return Err(Status::unavailable("legatod is shutting down"));
    }
    let req = request.into_inner();
    limits::at_most(&req.session_id, limits::MAX_ID_LEN, "session_id")?;
    limits::at_most(&req.leg_id, limits::LEG_ID_LEN, "leg_id")?;
    let slot = WatcherSlot::take(&svc.watchers, svc.engine.shared().config.max_watchers)?;
    let filter = Filter {
        session: req.session_id,
        leg: req.leg_id,
    };
    let from = req.from_sequence;
    let subscription = svc.hub.subscribe(from);
    let gap = if from > 0 && from < subscription.oldest {
        subscription.oldest - from
    } else {
        0
    };
    if gap > 0 && req.strict_resume {
        return Err(Status::out_of_range(format!(
            "events from {from} are no longer retained; the oldest is {}",
            subscription.oldest
        )));
    }
    let (tx, rx) = mpsc::channel(WATCH_BUFFER);
    let start = from.max(subscription.oldest);
    let (closing, metrics) = (svc.closing.clone(), svc.metrics.clone());
    tokio::spawn(async move {
        // Held for as long as the stream's task runs.
        let _slot = slot;
        forward_events(subscription, filter, gap, start, tx, closing, metrics).await;
    });
    Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
}

/// Feeds one WatchEvents stream: the gap notice (events older than the
/// replay window), the replay, then live events until the client goes away
/// or the daemon closes. A watcher that lags behind the live buffer gets
/// EventsDropped with the count and the first sequence it missed.
///
/// The task ends as soon as the client's stream is gone (`tx.closed()`),
/// whether or not an event for it ever comes again: a filtered watcher of
/// a finished call would otherwise stay subscribed, and cost every later
/// event a wake-up, until the daemon restarts.
async fn forward_events(
    subscription: Subscription,
    filter: Filter,
    gap: u64,
    start: u64,
    tx: mpsc::Sender<Result<pb::Event, Status>>,
    mut closing: watch::Receiver<bool>,
    metrics: Arc<ControlMetrics>,
) {
    let _counted = metrics.watcher();
    let mut live = subscription.live;
    // Sequence number of the last event this watcher saw (or skipped).
    let mut last = start.saturating_sub(1);
    if gap > 0 && tx.send(Ok(dropped_event(gap, start - gap))).await.is_err() {
        return;
    }
    for event in subscription.replay {
        last = event.sequence;
        if filter.matches(&event) && tx.send(Ok((*event).clone())).await.is_err() {
            return;
        }
    }
    loop {
        tokio::select! {
            biased;
            () = tx.closed() => return,
            received = live.recv() => match received {
                Ok(event) => {
                    if event.sequence != 0 {
                        last = event.sequence;
                    }
                    if filter.matches(&event) && tx.send(Ok((*event).clone())).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(count)) => {
                    metrics.watcher_dropped(count);
                    if tx.send(Ok(dropped_event(count, last + 1))).await.is_err() {
                        return;
                    }
                    last += count;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = async { let _ = closing.wait_for(|c| *c).await; } => {
                // Deliver what is already published, then end.
                while let Ok(event) = live.try_recv() {
                    if filter.matches(&event) && tx.send(Ok((*event).clone())).await.is_err() {
                        return;
                    }
                }
                return;
            }
        }
    }
}

/// One of the `max_watchers` WatchEvents streams open at once, given back
/// when the stream's task ends.
#[derive(Debug)]
struct WatcherSlot(Arc<AtomicUsize>);

impl WatcherSlot {
    fn take(open: &Arc<AtomicUsize>, max: usize) -> Result<Self, Status> {
        if open.fetch_add(1, Ordering::Relaxed) >= max {
            open.fetch_sub(1, Ordering::Relaxed);
            return Err(Status::resource_exhausted(format!(
                "{max} WatchEvents streams are open (max_watchers): close one first"
            )));
        }
        Ok(Self(open.clone()))
    }
}

impl Drop for WatcherSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An EventsDropped event for one watcher (not numbered: it is not part of
/// the daemon-wide sequence).
fn dropped_event(count: u64, first_missing: u64) -> pb::Event {
    pb::Event {
        sequence: 0,
        timestamp: Some(convert::timestamp(std::time::SystemTime::now())),
        kind: Some(pb::event::Kind::EventsDropped(pb::EventsDropped {
            count,
            first_missing,
        })),
        ..pb::Event::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::events::EventHub;

    #[tokio::test]
    async fn lagging_watcher_gets_events_dropped() {
        let hub = EventHub::new(1_000, 8);
        let subscription = hub.subscribe(0);
        let (tx, mut rx) = mpsc::channel(4);
        let (_closing_tx, closing) = watch::channel(false);
        let event = |leg: &str| pb::Event {
            session_id: "s".into(),
            leg_id: leg.into(),
            ..pb::Event::default()
        };
        // Nobody reads: the forwarder fills its 4-slot channel, then the
        // 8-event live buffer overflows.
        let task = tokio::spawn(forward_events(
            subscription,
            Filter::default(),
            0,
            1,
            tx,
            closing,
            Arc::new(ControlMetrics::new()),
        ));
        for _ in 0..50 {
            hub.publish(event("a"));
            tokio::task::yield_now().await;
        }
        let mut seen = Vec::new();
        while let Ok(Some(Ok(e))) =
            tokio::time::timeout(std::time::Duration::from_millis(200), rx.recv()).await
        {
            seen.push(e);
        }
        let dropped: Vec<_> = seen
            .iter()
            .filter_map(|e| match &e.kind {
                Some(pb::event::Kind::EventsDropped(d)) => Some((d.count, d.first_missing)),
                _ => None,
            })
            .collect();
        assert!(
            !dropped.is_empty(),
            "no EventsDropped in {} events",
            seen.len()
        );
        let delivered = seen.iter().filter(|e| e.sequence > 0).count() as u64;
        let lost: u64 = dropped.iter().map(|d| d.0).sum();
        assert_eq!(delivered + lost, 50, "every event delivered or counted");
        // The first missing sequence follows the last delivered one.
        let (_, first_missing) = dropped[0];
        let before = seen
            .iter()
            .take_while(|e| e.sequence > 0)
            .last()
            .map_or(0, |e| e.sequence);
        assert_eq!(first_missing, before + 1);
        task.abort();
    }
}
