//! Prometheus metrics: what the control plane counts itself (RPCs, event
//! watchers), and the scrape that asks every shard for its counters.
//!
//! Nothing here runs on a shard's packet path. Shards keep plain per-leg
//! counters and answer a `Command::Metrics` when scraped (see
//! `engine::metrics`); the control plane's own counters are atomics
//! touched once per RPC or per watcher, never per packet.

mod http;
mod kernel;
mod rpc;

use std::sync::Arc;
use std::time::Duration;

use legato_proto::v1::media_plane_server::MediaPlaneServer;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::sync::oneshot;
use tonic::server::NamedService;

use super::events::EventHub;
use crate::engine::{Command, Engine, LEG_COUNTERS, LEG_STATES, ShardMetrics};

pub(crate) use http::serve;
pub(crate) use rpc::Instrumented;

/// How long a scrape waits for a shard's answer.
const SHARD_TIMEOUT: Duration = Duration::from_secs(2);
/// Latency buckets of RPCs, in seconds: 100 µs to 5 s.
const LATENCY_BUCKETS: [f64; 14] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Labels of a sample: (name, value) pairs.
type Labels = Vec<(&'static str, Arc<str>)>;

/// What the control plane counts itself.
#[derive(Debug)]
pub(crate) struct ControlMetrics {
    /// MediaPlane method names, as `/legato.v1.MediaPlane/Name` paths.
    methods: Vec<(String, Arc<str>)>,
    /// The label value of a path that names no method.
    unknown: Arc<str>,
    rpcs: Family<Labels, Counter>,
    latency: Family<Labels, Histogram, fn() -> Histogram>,
    watchers: Gauge,
    watcher_drops: Counter,
}

impl ControlMetrics {
    pub(crate) fn new() -> Self {
        Self {
            methods: media_plane_methods(),
            unknown: "unknown".into(),
            rpcs: Family::default(),
            latency: Family::new_with_constructor(|| Histogram::new(LATENCY_BUCKETS)),
            watchers: Gauge::default(),
            watcher_drops: Counter::default(),
        }
    }

    /// The method label of a request path: a MediaPlane method name, or
    /// `unknown` (so a client cannot grow the label set).
    fn method(&self, path: &str) -> Arc<str> {
        self.methods
            .iter()
            .find(|(p, _)| p == path)
            .map_or_else(|| self.unknown.clone(), |(_, name)| name.clone())
    }

    /// Counts one finished RPC.
    fn finished(&self, method: &Arc<str>, code: tonic::Code) {
        self.rpcs
            .get_or_create(&vec![
                ("method", method.clone()),
                ("code", code_name(code).into()),
            ])
            .inc();
    }

    /// Records how long a handler took to answer (to its response headers).
    fn answered(&self, method: &Arc<str>, elapsed: Duration) {
        self.latency
            .get_or_create(&vec![("method", method.clone())])
            .observe(elapsed.as_secs_f64());
    }

    /// Counts an open WatchEvents forwarder until the guard drops.
    pub(crate) fn watcher(self: &Arc<Self>) -> WatcherGuard {
        self.watchers.inc();
        WatcherGuard {
            metrics: self.clone(),
        }
    }

    /// Counts live events a lagging watcher missed (its EventsDropped).
    pub(crate) fn watcher_dropped(&self, count: u64) {
        self.watcher_drops.inc_by(count);
    }
}

/// Keeps one watcher counted in `legato_event_watchers`.
#[derive(Debug)]
pub(crate) struct WatcherGuard {
    metrics: Arc<ControlMetrics>,
}

impl Drop for WatcherGuard {
    fn drop(&mut self) {
        self.metrics.watchers.dec();
    }
}

/// Everything a scrape reads.
#[derive(Debug)]
pub(crate) struct Sources {
    pub(crate) engine: Arc<Engine>,
    pub(crate) hub: Arc<EventHub>,
    pub(crate) control: Arc<ControlMetrics>,
}

impl Sources {
    /// Asks every shard for its counters and renders all metrics in the
    /// Prometheus text format (version 0.0.4).
    pub(crate) async fn render(&self) -> Result<String, String> {
        let mut pending = Vec::with_capacity(self.engine.shard_count());
        for index in 0..self.engine.shard_count() {
            let (reply, rx) = oneshot::channel();
            self.engine
                .send(index, Command::Metrics { reply })
                .map_err(|e| format!("shard {index}: {e}"))?;
            pending.push(rx);
        }
        let mut shards = Vec::with_capacity(pending.len());
        for (index, rx) in pending.into_iter().enumerate() {
            match tokio::time::timeout(SHARD_TIMEOUT, rx).await {
                Ok(Ok(Ok(metrics))) => shards.push(metrics),
                Ok(Ok(Err(e))) => return Err(format!("shard {index}: {e}")),
                Ok(Err(_)) => return Err(format!("shard {index} has stopped")),
                Err(_) => return Err(format!("shard {index} did not answer in time")),
            }
        }
        let mut registry = self.registry(&shards);
        // A few hundred bytes of procfs: read inline.
        let (v4, v6) = kernel::udp_receive_buffer_errors();
        let errors = Family::<Labels, Counter>::default();
        for (family, value) in [("ipv4", v4), ("ipv6", v6)] {
            if let Some(value) = value {
                errors.get_or_create(&label("family", family)).inc_by(value);
            }
        }
        registry.register(
            "netns_udp_receive_buffer_errors",
            "Datagrams the kernel dropped because a UDP socket's receive buffer was full, over every UDP socket of legatod's network namespace (RcvbufErrors of /proc/net/snmp and snmp6)",
            errors,
        );
        let mut text = String::new();
        prometheus_text::encode(&mut text, &registry).map_err(|e| e.to_string())?;
        Ok(text)
    }

    fn registry(&self, shards: &[ShardMetrics]) -> Registry {
        let mut registry = Registry::with_prefix("legato");

        let sessions = Gauge::<i64>::default();
        sessions.set(shards.iter().map(|s| s.sessions as i64).sum());
        registry.register("sessions", "Sessions alive", sessions);

        let legs = Family::<Labels, Gauge>::default();
        for (i, state) in LEG_STATES.iter().enumerate() {
            let count: u64 = shards.iter().map(|s| s.legs_by_state[i]).sum();
            legs.get_or_create(&label("state", state.as_str()))
                .set(count as i64);
        }
        registry.register(
            "legs",
            "Legs held, by state (terminated legs stay until their session is deleted)",
            legs,
        );

        let mut start = 0;
        while start < LEG_COUNTERS.len() {
            let first = &LEG_COUNTERS[start];
            let end = LEG_COUNTERS[start..]
                .iter()
                .position(|m| m.family != first.family)
                .map_or(LEG_COUNTERS.len(), |n| start + n);
            if first.label.is_none() {
                let counter = Counter::<u64>::default();
                counter.inc_by(shards.iter().map(|s| s.leg_counters[start]).sum());
                registry.register(first.family, first.help, counter);
                start += 1;
                continue;
            }
            let family = Family::<Labels, Counter>::default();
            for (i, metric) in LEG_COUNTERS.iter().enumerate().take(end).skip(start) {
                let labels = metric
                    .label
                    .map(|(name, value)| label(name, value))
                    .unwrap_or_default();
                let total: u64 = shards.iter().map(|s| s.leg_counters[i]).sum();
                family.get_or_create(&labels).inc_by(total);
            }
            registry.register(first.family, first.help, family);
            start = end;
        }

        let io = Family::<Labels, Counter>::default();
        let cpu = Family::<Labels, Counter<f64, std::sync::atomic::AtomicU64>>::default();
        let utilisation = Family::<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        for (index, shard) in shards.iter().enumerate() {
            let name: Arc<str> = index.to_string().into();
            let with = |event: &'static str| vec![("shard", name.clone()), ("event", event.into())];
            io.get_or_create(&with("truncated"))
                .inc_by(shard.io.truncated);
            io.get_or_create(&with("recv_error"))
                .inc_by(shard.io.recv_errors);
            io.get_or_create(&with("send_error"))
                .inc_by(shard.io.send_errors);
            io.get_or_create(&with("recv_buffers_exhausted"))
                .inc_by(shard.io.buffer_exhausted);
            let shard_label = vec![("shard", name.clone())];
            if let Some(time) = shard.cpu_time {
                cpu.get_or_create(&shard_label).inc_by(time.as_secs_f64());
            }
            if let Some(u) = shard.utilisation {
                utilisation.get_or_create(&shard_label).set(u);
            }
        }
        registry.register(
            "shard_io_events",
            "I/O events of a shard's backend: truncated (datagrams over 2 KiB, dropped), recv_error, send_error, recv_buffers_exhausted (io_uring buffer ring ran dry)",
            io,
        );
        registry.register("shard_cpu_seconds", "CPU time used by a shard thread", cpu);
        registry.register(
            "shard_loop_utilisation",
            "Fraction of wall time a shard thread was running rather than waiting for packets, since the previous scrape",
            utilisation,
        );

        let published = Counter::<u64>::default();
        published.inc_by(self.hub.published());
        registry.register(
            "events_published",
            "Events numbered and published to WatchEvents",
            published,
        );
        let dropped = Family::<Labels, Counter>::default();
        dropped
            .get_or_create(&label("stage", "engine_queue"))
            .inc_by(self.engine.shared().events.dropped_total());
        dropped
            .get_or_create(&label("stage", "watcher"))
            .inc_by(self.control.watcher_drops.get());
        registry.register(
            "events_dropped",
            "Events lost: engine_queue (the shards' queue to the event hub was full) or watcher (a lagging WatchEvents stream got EventsDropped instead)",
            dropped,
        );
        registry.register(
            "event_watchers",
            "WatchEvents streams open",
            self.control.watchers.clone(),
        );
        registry.register(
            "grpc_requests",
            "MediaPlane RPCs finished, by method and gRPC status code",
            self.control.rpcs.clone(),
        );
        registry.register(
            "grpc_request_duration_seconds",
            "Time MediaPlane handlers took to answer (to the response headers; for streams, until the stream opened)",
            self.control.latency.clone(),
        );
        registry
    }
}

fn label(name: &'static str, value: &str) -> Labels {
    vec![(name, value.into())]
}

/// Method names of the MediaPlane service, read from the compiled
/// descriptors, keyed by their request paths.
fn media_plane_methods() -> Vec<(String, Arc<str>)> {
    use prost::Message;
    let service = <MediaPlaneServer<super::service::Service> as NamedService>::NAME;
    let Ok(set) = prost_types::FileDescriptorSet::decode(legato_proto::FILE_DESCRIPTOR_SET) else {
        return Vec::new();
    };
    let mut methods = Vec::new();
    for file in &set.file {
        for s in &file.service {
            let full = format!("{}.{}", file.package(), s.name());
            if full != service {
                continue;
            }
            for m in &s.method {
                methods.push((format!("/{full}/{}", m.name()), m.name().into()));
            }
        }
    }
    methods
}

/// The name of a gRPC status code as the gRPC docs spell it.
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Cancelled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_come_from_the_descriptors() {
        let m = ControlMetrics::new();
        assert_eq!(&*m.method("/legato.v1.MediaPlane/CreateLeg"), "CreateLeg");
        assert_eq!(
            &*m.method("/legato.v1.MediaPlane/WatchEvents"),
            "WatchEvents"
        );
        assert_eq!(&*m.method("/legato.v1.MediaPlane/Bogus"), "unknown");
        assert_eq!(&*m.method("/x"), "unknown");
        assert!(m.methods.len() > 20, "{:?}", m.methods);
    }
}
