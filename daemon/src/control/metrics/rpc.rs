//! Counts and times every MediaPlane RPC by method and final status code.
//!
//! A failed RPC answers with the status in its response headers
//! ("trailers-only"); a successful one, and every stream, carries it in the
//! trailers after the body. So the wrapper looks at the headers first and
//! otherwise watches the body for its trailers. A body dropped before its
//! trailers (the client went away) counts as `Cancelled`.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tonic::body::Body;
use tonic::codegen::http::{HeaderMap, Request, Response};
use tonic::codegen::{BoxFuture, Bytes, Service};
use tonic::server::NamedService;

use super::ControlMetrics;

/// A gRPC service wrapped with RPC metrics.
#[derive(Clone, Debug)]
pub(crate) struct Instrumented<S> {
    inner: S,
    metrics: Arc<ControlMetrics>,
}

impl<S> Instrumented<S> {
    pub(crate) fn new(inner: S, metrics: Arc<ControlMetrics>) -> Self {
        Self { inner, metrics }
    }
}

impl<S: NamedService> NamedService for Instrumented<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> Service<Request<Body>> for Instrumented<S>
where
    S: Service<Request<Body>, Response = Response<B>, Error = Infallible>,
    S::Future: Send + 'static,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<tonic::codegen::StdError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Response<Body>, Infallible>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let method = self.metrics.method(request.uri().path());
        let metrics = self.metrics.clone();
        let start = Instant::now();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await?;
            metrics.answered(&method, start.elapsed());
            let (parts, body) = response.into_parts();
            if let Some(code) = status(&parts.headers) {
                metrics.finished(&method, code);
                return Ok(Response::from_parts(parts, Body::new(body)));
            }
            let body = Watched {
                inner: Box::pin(body),
                pending: Some((metrics, method)),
            };
            Ok(Response::from_parts(parts, Body::new(body)))
        })
    }
}

/// The `grpc-status` in a header map, if any.
fn status(headers: &HeaderMap) -> Option<tonic::Code> {
    headers
        .get("grpc-status")
        .map(|v| tonic::Code::from_bytes(v.as_bytes()))
}

/// A response body that records the status from its trailers.
struct Watched<B> {
    inner: Pin<Box<B>>,
    /// What to record, until recorded.
    pending: Option<(Arc<ControlMetrics>, Arc<str>)>,
}

impl<B> Watched<B> {
    fn record(&mut self, code: tonic::Code) {
        if let Some((metrics, method)) = self.pending.take() {
            metrics.finished(&method, code);
        }
    }
}

impl<B: HttpBody<Data = Bytes>> HttpBody for Watched<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = self.inner.as_mut().poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(status) {
                    self.record(code);
                }
            }
            Poll::Ready(Some(Err(_))) => self.record(tonic::Code::Internal),
            Poll::Ready(None) => self.record(tonic::Code::Unknown),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for Watched<B> {
    fn drop(&mut self) {
        self.record(tonic::Code::Cancelled);
    }
}
