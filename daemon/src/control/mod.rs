//! The gRPC control plane: the MediaPlane service, health, reflection and
//! the event hub, on a small tokio runtime. It reaches sessions only by
//! sending commands to the shard that owns them.

mod convert;
mod events;
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

use crate::engine::Engine;
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

/// Serves the API on `listener` until `shutdown` resolves, then stops the
/// engine (hanging up every leg), delivers the last events and returns.
pub async fn serve(
    engine: Arc<Engine>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_with_metrics(engine, listener, None, shutdown).await
}

/// [`serve`], plus the Prometheus endpoint (`GET /metrics`) on
/// `metrics` when given.
pub async fn serve_with_metrics(
    engine: Arc<Engine>,
    listener: TcpListener,
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
    let control_metrics = Arc::new(metrics::ControlMetrics::new());
    let metrics_task = metrics.map(|listener| {
        let sources = Arc::new(metrics::Sources {
            engine: engine.clone(),
            hub: hub.clone(),
            control: control_metrics.clone(),
        });
        tokio::spawn(metrics::serve(listener, sources))
    });
    let service = service::Service::new(
        engine.clone(),
        hub.clone(),
        stopping.clone(),
        closing_rx,
        control_metrics.clone(),
    );

    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<MediaPlaneServer<service::Service>>()
        .await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(legato_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(legato_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let stop = {
        let engine = engine.clone();
        let hub = hub.clone();
        async move {
            shutdown.await;
            tracing::info!("shutting down: refusing new requests, hanging up legs");
            stopping.store(true, Ordering::Relaxed);
            health
                .set_not_serving::<MediaPlaneServer<service::Service>>()
                .await;
            let stopper = engine.clone();
            let _ = tokio::task::spawn_blocking(move || stopper.shutdown()).await;
            pump_stop.store(true, Ordering::Release);
            pump.thread().unpark();
            let _ = tokio::task::spawn_blocking(move || pump.join()).await;
            events::drain(engine.shared(), &hub);
            let _ = closing_tx.send(true);
            // Give watchers a moment to flush their last events.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };

    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(metrics::Instrumented::new(
            MediaPlaneServer::new(service),
            control_metrics,
        ))
        .serve_with_incoming_shutdown(incoming(listener), stop)
        .await?;
    if let Some(task) = metrics_task {
        task.abort();
    }
    Ok(())
}
