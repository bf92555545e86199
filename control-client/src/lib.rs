//! Typed async client for the legato media-plane daemon (gRPC API
//! `legato.v1.MediaPlane`).
//!
//! [`Client`] wraps the tonic stub generated in `legato-proto` with one async
//! method per RPC, plain Rust arguments, and the crate's own [`Error`] whose
//! [`Code`] can be matched without depending on tonic. Replies are the
//! generated prost types, re-exported as [`proto`]; the `.proto` files in
//! `proto/legato/v1/` document every field and error.
//!
//! What it does not do: retry, time out calls, cache state or interpret
//! SDP. Each method is one RPC; an `Ok` means the daemon made the change.
//!
//! A daemon with TLS, mutual TLS or bearer tokens is reached through
//! [`Client::builder`] with [`Tls`] settings and a token; the token then
//! goes with every call, event and audio streams included.
//!
//! # Example
//!
//! An incoming call answered by legato, then watched until it ends:
//!
//! ```no_run
//! use futures::StreamExt as _;
//! use legato_client::{Client, Code, CreateLeg, EventFilter, UpdateLeg, proto};
//!
//! # async fn run(offer: String) -> Result<(), legato_client::Error> {
//! let client = Client::connect("127.0.0.1:50051").await?;
//! let session = client.create_session(Some("call-id-1@pbx")).await?;
//! let mut events = client
//!     .watch_events(EventFilter::new().session(&session))
//!     .await?;
//!
//! // The remote SDP offer from the INVITE; legato answers.
//! let created = client.create_leg(CreateLeg::incoming(&session, offer).codec("PCMU")).await?;
//! println!("answer SDP:\n{}", created.local_sdp);
//!
//! // 200 OK sent by the controller: mark the leg connected.
//! let leg_id = created.leg.leg_id.clone();
//! client
//!     .update_leg(UpdateLeg::new(&leg_id).state(proto::LegState::Connected))
//!     .await?;
//!
//! while let Some(event) = events.next().await {
//!     let event = event?;
//!     if let Some(proto::event::Kind::Disconnected(end)) = event.kind {
//!         println!("leg {} ended with {}", event.leg_id, end.code);
//!         break;
//!     }
//! }
//!
//! match client.delete_session(&session).await {
//!     Ok(_) => {}
//!     Err(err) if err.code() == Code::NotFound => {} // already gone
//!     Err(err) => return Err(err),
//! }
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod client;
mod connect;
mod endpoint;
mod error;
mod params;

pub use client::{AudioStream, Client, EventStream, LegAndSdp, Routed, SessionLimits};
pub use connect::{ClientBuilder, Tls};
pub use error::{Code, Error};
/// The generated types of package `legato.v1` (requests, replies, [`Leg`],
/// [`Event`] and their enums), from `legato-proto`.
///
/// [`Leg`]: proto::Leg
/// [`Event`]: proto::Event
pub use legato_proto::v1 as proto;
pub use params::{CreateLeg, EventFilter, MediaEndpoint, UpdateLeg};
