//! The control-plane benchmark: full call setups through gRPC (session, two
//! incoming legs with SDP offers, both CONNECTED, media both ways, session
//! deleted), `concurrency` at a time, with the latency of every RPC.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::Result;
use legato_client::{Client, CreateLeg, EventFilter, UpdateLeg, proto};
use serde::Serialize;

use crate::histogram::Histogram;
use crate::target::offer;

/// The RPCs of one setup, in order of first use.
const KINDS: [&str; 5] = [
    "CreateSession",
    "CreateLeg",
    "UpdateLeg",
    "SendMedia",
    "DeleteSession",
];

/// Latency of one RPC kind.
#[derive(Clone, Debug, Serialize)]
pub struct RpcLatency {
    /// RPC name, or "all" / "setup" (a whole setup, 7 RPCs).
    pub name: String,
    /// Calls measured.
    pub count: u64,
    /// Median, µs.
    pub p50_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// Slowest, µs.
    pub max_us: f64,
}

impl RpcLatency {
    fn from_histogram(name: &str, h: &Histogram) -> Self {
        Self {
            name: name.to_owned(),
            count: h.count(),
            p50_us: h.quantile(0.5) as f64 / 1e3,
            p99_us: h.quantile(0.99) as f64 / 1e3,
            max_us: h.max() as f64 / 1e3,
        }
    }
}

/// What the control-plane benchmark measured.
#[derive(Clone, Debug, Serialize)]
pub struct SetupReport {
    /// legatod's backend.
    pub io: String,
    /// Setups completed without error.
    pub setups: u64,
    /// Setups that failed (first error aborts that setup).
    pub errors: u64,
    /// The first error seen, if any.
    pub first_error: Option<String>,
    /// RPCs in flight at once (one setup per worker).
    pub concurrency: usize,
    /// Wall time of the whole run, s.
    pub elapsed_s: f64,
    /// Completed setups per second.
    pub setups_per_s: f64,
    /// Latency per RPC kind, then over all RPCs ("all") and per setup.
    pub rpc: Vec<RpcLatency>,
    /// Filtered WatchEvents streams opened and closed before the run.
    pub closed_watchers: usize,
    /// legatod's CPU time over the run, s (each setup makes 7 events).
    pub daemon_cpu_s: Option<f64>,
    /// legatod's resident memory after the run, KiB.
    pub daemon_rss_kib: Option<u64>,
}

/// Opens `n` WatchEvents streams filtered on sessions that never exist,
/// 100 at a time, and closes them.
pub async fn churn_watchers(client: &Client, n: usize) -> Result<()> {
    let mut open = Vec::with_capacity(100);
    for i in 0..n {
        let filter = EventFilter::new().session(format!("never-{i}"));
        open.push(client.watch_events(filter).await?);
        if open.len() == 100 {
            open.clear();
        }
    }
    drop(open);
    // Let the daemon see the last streams close.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    Ok(())
}

#[derive(Debug, Default)]
struct Worker {
    kinds: Vec<Histogram>,
    setup: Histogram,
    ok: u64,
    errors: u64,
    first_error: Option<String>,
}

async fn timed<T, E>(h: &mut Histogram, f: impl Future<Output = Result<T, E>>) -> Result<T, E> {
    let start = Instant::now();
    let result = f.await;
    h.record(start.elapsed().as_nanos() as u64);
    result
}

async fn one_setup(client: &Client, peer: SocketAddr, h: &mut [Histogram]) -> Result<()> {
    let session = timed(&mut h[0], client.create_session(None)).await?;
    let mut legs = Vec::with_capacity(2);
    for _ in 0..2 {
        let created = timed(
            &mut h[1],
            client.create_leg(CreateLeg::incoming(&session, offer(peer))),
        )
        .await?;
        timed(
            &mut h[2],
            client
                .update_leg(UpdateLeg::new(&created.leg.leg_id).state(proto::LegState::Connected)),
        )
        .await?;
        legs.push(created.leg.leg_id);
    }
    timed(
        &mut h[3],
        client.send_media(legs[0].as_str(), legs[1].as_str()),
    )
    .await?;
    timed(
        &mut h[3],
        client.send_media(legs[1].as_str(), legs[0].as_str()),
    )
    .await?;
    timed(&mut h[4], client.delete_session(&session)).await?;
    Ok(())
}

/// Runs `setups` setups, `concurrency` at a time; the legs' SDP names
/// `peer` (no media is sent).
pub async fn run(
    client: &Client,
    setups: usize,
    concurrency: usize,
    peer: SocketAddr,
) -> Result<SetupReport> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    let start = Instant::now();
    for _ in 0..concurrency.max(1) {
        let (client, next) = (client.clone(), next.clone());
        tasks.spawn(async move {
            let mut w = Worker {
                kinds: KINDS.iter().map(|_| Histogram::new()).collect(),
                ..Worker::default()
            };
            while next.fetch_add(1, Ordering::Relaxed) < setups {
                let begun = Instant::now();
                match one_setup(&client, peer, &mut w.kinds).await {
                    Ok(()) => {
                        w.ok += 1;
                        w.setup.record(begun.elapsed().as_nanos() as u64);
                    }
                    Err(e) => {
                        w.errors += 1;
                        w.first_error.get_or_insert_with(|| format!("{e:#}"));
                    }
                }
            }
            w
        });
    }
    let mut kinds: Vec<Histogram> = KINDS.iter().map(|_| Histogram::new()).collect();
    let mut setup = Histogram::new();
    let (mut ok, mut errors, mut first_error) = (0, 0, None);
    while let Some(joined) = tasks.join_next().await {
        let w = joined?;
        for (a, b) in kinds.iter_mut().zip(&w.kinds) {
            a.merge(b);
        }
        setup.merge(&w.setup);
        ok += w.ok;
        errors += w.errors;
        if first_error.is_none() {
            first_error = w.first_error;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let mut all = Histogram::new();
    for h in &kinds {
        all.merge(h);
    }
    let mut rpc: Vec<RpcLatency> = KINDS
        .iter()
        .zip(&kinds)
        .map(|(name, h)| RpcLatency::from_histogram(name, h))
        .collect();
    rpc.push(RpcLatency::from_histogram("all", &all));
    rpc.push(RpcLatency::from_histogram("setup", &setup));
    Ok(SetupReport {
        io: String::new(),
        setups: ok,
        errors,
        first_error,
        concurrency,
        elapsed_s: elapsed,
        setups_per_s: ok as f64 / elapsed.max(1e-9),
        rpc,
        closed_watchers: 0,
        daemon_cpu_s: None,
        daemon_rss_kib: None,
    })
}
