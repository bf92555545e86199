//! legatod: the legato media-plane daemon.
//!
//! A signalling controller (a SIP proxy or B2BUA, in any language) drives
//! legatod over the `legato.v1.MediaPlane` gRPC API: it creates sessions and
//! legs, passes SDP in and out, routes audio between legs and listens to
//! events. legatod terminates RTP on shard threads that each own an
//! io_uring ring (or an epoll loop where io_uring is unavailable).
//!
//! Layout: `engine` (shards, I/O backends, ports) drives `session` (sans-IO
//! leg state machines), which uses `sdp` and `rtp`; `control` is the gRPC
//! side and reaches sessions only through shard commands.
//!
//! The library exists so tests and benches can embed the daemon:
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! use std::sync::Arc;
//! let config = legato_daemon::Config::default();
//! let engine = Arc::new(legato_daemon::Engine::start(config.clone())?);
//! let listener = tokio::net::TcpListener::bind(config.grpc_listen).await?;
//! legato_daemon::serve(engine, listener, async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```

pub mod config;
mod control;
mod engine;
mod prompts;
mod recording;
mod rtp;
mod sdp;
mod session;

pub use config::{Config, FileConfig, IoMode, LogFormat, TlsFiles};
pub use control::{ControlSecurity, TokenStore, serve, serve_secured};
pub use engine::{Backend, Engine};

/// Hot-path pieces exposed for the criterion benches and fuzzers. Not a
/// stable API: enabled only with the `internals` feature.
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod internals {
    pub use crate::rtp::{RtpHeader, is_rtcp, rewrite_header, valid_rtcp};
}
