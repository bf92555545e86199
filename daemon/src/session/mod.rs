//! Sessions and legs as sans-IO state machines: they take packets, commands
//! and the current time, and report events and what to transmit. They never
//! touch a socket, a thread or the clock; `engine::shard` drives them.

mod detection;
mod error;
mod event;
mod leg;
mod legs;
mod media;
#[cfg(test)]
mod media_tests;
mod registry;
mod relay;
mod routing;
mod rtcp;
mod stats;
mod stream;
#[cfg(test)]
mod tests;

pub(crate) use detection::DetectorChange;
pub(crate) use error::EngineError;
pub(crate) use event::{EventKind, EventSink, ToneSource};
pub(crate) use leg::{
    Counters, KernelFilter, Leg, LegParams, LegRequest, LegState, LegUpdate, LegView, MediaPath,
    Metadata, NewLeg, OwnMedia, PacketKind, SourceChange, TimeoutAction,
};
pub(crate) use legs::{LegSlot, Legs};
pub(crate) use media::{
    AmdTap, BEEP_WAIT_MS, BeepTap, DIGIT_COMMA_MS, Endpoint, Key, LegMedia, MediaClock, Player,
    ProgressTap, VadTap, country_code, tone_by_name, tone_name,
};
pub(crate) use registry::{Page, SessionInfo, SessionLimits, Sessions};
pub(crate) use relay::{Transmit, WARM_BATCH, handle_packet, warm};
pub(crate) use routing::{DigitMode, MAX_QUEUED_KEYS, Routed};
pub(crate) use rtcp::MAX_COMPOUND_LEN;
pub(crate) use stats::{JitterBufferStats, MediaStats};
#[cfg(test)]
pub(crate) use {rtcp::RtcpSession, stats::CodecInfo};
