//! The gRPC control plane: the MediaPlane service, health, reflection and
//! the event hub, on a small tokio runtime. It reaches sessions only by
//! sending commands to the shard that owns them. TLS and bearer tokens are
//! set up in `auth`.

pub(crate) mod auth;
mod convert;
mod events;
pub(crate) mod limits;
mod metrics;
mod service;
mod status;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use legato_proto::v1::media_plane_server::MediaPlaneServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::interceptor::InterceptedService;

use crate::engine::Engine;
pub use auth::{ControlSecurity, TokenStore};
use events::EventHub;

/// Accepted connections with Nagle's algorithm off: small gRPC replies
/// must not wait for the peer's delayed ACK (a 40 ms stall per RPC).
fn incoming(
    listener: TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use futures::StreamExt;
    TcpListenerStream::new(listener).map(|stream| {
        let stream = stream?;
        stream.set_nodelay(true)?;
        Ok(stream)
    })
}

/// At shutdown, the longest legatod waits for recordings to be finalized.
const RECORDING_FINALIZE_TIME: Duration = Duration::from_secs(10);

/// Serves the API on `listener` until `shutdown` resolves, then stops the
/// engine (hanging up every leg), delivers the last events and returns.
///
/// TLS and tokens are loaded from the engine's configuration; see
/// [`serve_secured`] to load them beforehand.
pub async fn serve(
    engine: Arc<Engine>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let security = ControlSecurity::load(&engine.shared().config).map_err(anyhow::Error::msg)?;
    serve_secured(engine, listener, security, None, shutdown).await
}

/// [`serve`] with the TLS settings and tokens already loaded (legatod loads
/// them before starting the engine, so bad files fail fast).
///
/// Every RPC of the MediaPlane service and of reflection needs a valid
/// bearer token when a token file is configured; the health service needs
/// one only with `health_requires_auth`.
///
/// With `metrics`, the Prometheus endpoint (`GET /metrics`) is served on
/// that listener too.
pub async fn serve_secured(
    engine: Arc<Engine>,
    listener: TcpListener,
    security: ControlSecurity,
    metrics: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let shared = engine.shared().clone();
    let hub = Arc::new(EventHub::new(
        shared.config.event_replay,
        shared.config.event_watch_buffer,
    ));
    let pump_stop = Arc::new(AtomicBool::new(false));
    let pump = {
        let (shared, hub, stop) = (shared.clone(), hub.clone(), pump_stop.clone());
        std::thread::Builder::new()
            .name("legato-events".into())
            .spawn(move || events::pump(&shared, &hub, &stop))?
    };
    let stopping = Arc::new(AtomicBool::new(false));
    let (closing_tx, closing_rx) = watch::channel(false);
    // Told once the last events are published: the drain time starts.
    let drained = Arc::new(tokio::sync::Notify::new());
    let drain_time = shared.config.shutdown_drain;
    let control_metrics = Arc::new(metrics::ControlMetrics::new());
    let metrics_task = metrics.map(|listener| {
        let sources = Arc::new(metrics::Sources {
            engine: engine.clone(),
            hub: hub.clone(),
            control: control_metrics.clone(),
        });
        tokio::spawn(metrics::serve(listener, sources))
    });
    let recording_owners = Arc::new(service::Owners::default());
    let recorders = service::start_recorders(&shared, &recording_owners);
    let service = service::Service::new(
        engine.clone(),
        hub.clone(),
        stopping.clone(),
        closing_rx,
        control_metrics.clone(),
        recorders.clone(),
        recording_owners,
    );

    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<MediaPlaneServer<service::Service>>()
        .await;
    let auth = security.authenticator();
    // HTTP/2 pings find controllers that died without closing their
    // connection (host crash, cable, NAT timeout): their streams, and the
    // WatchEvents places they hold, are released when a ping goes
    // unanswered.
    let keepalive = shared.config.grpc_keepalive;
    let mut builder = tonic::transport::Server::builder()
        .http2_keepalive_interval(keepalive)
        .http2_keepalive_timeout(keepalive);
    if let Some(tls) = security.server_tls() {
        builder = builder.tls_config(tls.clone())?;
    }
    let media_plane = MediaPlaneServer::new(service).max_decoding_message_size(limits::MAX_REQUEST);
    // Outside the authenticator, so refused calls count too.
    let mut router = builder.add_service(metrics::Instrumented::new(
        InterceptedService::new(media_plane, auth.clone()),
        control_metrics,
    ));
    router = if security.health_requires_auth() {
        router.add_service(InterceptedService::new(health_service, auth.clone()))
    } else {
        router.add_service(health_service)
    };
    if security.reflection() {
        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(legato_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(legato_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;
        router = router
            .add_service(InterceptedService::new(reflection_v1, auth.clone()))
            .add_service(InterceptedService::new(reflection_v1alpha, auth));
    }

    let stop = {
        let engine = engine.clone();
        let hub = hub.clone();
        let drained = drained.clone();
        async move {
            shutdown.await;
            tracing::info!("shutting down: refusing new requests, hanging up legs");
            stopping.store(true, Ordering::Relaxed);
            health
                .set_not_serving::<MediaPlaneServer<service::Service>>()
                .await;
            let stopper = engine.clone();
            let _ = tokio::task::spawn_blocking(move || stopper.shutdown()).await;
            // The legs are gone and with them the recordings' taps: let
            // the writers finalize the files (RecordStopped) before the
            // last events go out.
            if let Some(recorders) = recorders {
                let _ = tokio::task::spawn_blocking(move || {
                    recorders.wait_idle(RECORDING_FINALIZE_TIME)
                })
                .await;
            }
            pump_stop.store(true, Ordering::Release);
            pump.thread().unpark();
            let _ = tokio::task::spawn_blocking(move || pump.join()).await;
            events::drain(engine.shared(), &hub);
            let _ = closing_tx.send(true);
            drained.notify_one();
            // Give watchers a moment to flush their last events.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };

    let server = router.serve_with_incoming_shutdown(incoming(listener), stop);
    // The graceful shutdown waits for every open stream to finish; a
    // WatchEvents client that stopped reading would hold it forever. The
    // drain time bounds it: what was not delivered by then is not.
    tokio::select! {
        result = server => result?,
        () = async {
            drained.notified().await;
            tokio::time::sleep(drain_time).await;
        } => {
            tracing::warn!(
                drain_ms = drain_time.as_millis() as u64,
                "shutdown drain time over: closing connections that still hold undelivered events"
            );
        }
    }
    if let Some(task) = metrics_task {
        task.abort();
    }
    Ok(())
}
