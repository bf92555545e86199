//! The metrics HTTP endpoint: `GET /metrics` in the Prometheus text format,
//! 404 for any other path. HTTP/1.1 only, one request per connection, a
//! few connections at once, each bounded in size and time, so a slow or
//! hostile client cannot hold the endpoint.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::encoding::prometheus_text;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::Sources;

/// Connections served at once; more are closed on accept.
const MAX_CONNECTIONS: usize = 4;
/// Time a client gets to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a whole connection may take, scrape included.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(15);
/// Read buffer, and so the largest request head accepted.
const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// Serves the endpoint on `listener` until the task is dropped.
pub(crate) async fn serve(listener: TcpListener, sources: Arc<Sources>) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors, usually: back off instead of spinning.
                tracing::warn!(error = %e, "metrics endpoint: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "metrics endpoint: too many connections, closing one");
            continue;
        };
        let sources = sources.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = service_fn(move |request| {
                let sources = sources.clone();
                async move { Ok::<_, Infallible>(answer(&request, &sources).await) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_REQUEST_HEAD)
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service);
            match tokio::time::timeout(CONNECTION_TIMEOUT, connection).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "metrics endpoint: connection failed")
                }
                Err(_) => tracing::debug!(%peer, "metrics endpoint: connection timed out"),
            }
        });
    }
}

async fn answer(request: &Request<Incoming>, sources: &Sources) -> Response<Full<Bytes>> {
    if request.uri().path() != "/metrics" {
        return plain(
            StatusCode::NOT_FOUND,
            "not found: metrics are at /metrics\n",
        );
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
    }
    match sources.render().await {
        Ok(text) => {
            let mut response = Response::new(Full::new(Bytes::from(text)));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(prometheus_text::CONTENT_TYPE),
            );
            response
        }
        Err(e) => {
            tracing::warn!(error = %e, "metrics scrape failed");
            plain(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("metrics unavailable: {e}\n"),
            )
        }
    }
}

fn plain(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text.to_owned())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
