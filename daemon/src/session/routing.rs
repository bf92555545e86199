//! Routing between legs (Call.sendMediaTo / stopMediaTo): a source may
//! feed any number of sinks, a sink has exactly one source, and a new one
//! replaces the old. Routes are kept as slots on both ends (`Leg::source`,
//! `Leg::sinks`) so the relay path follows them without a lookup.

use std::sync::Arc;

use super::EngineError;
use super::legs::Legs;

/// The outcome of SendMedia.
#[derive(Clone, Debug)]
pub(crate) struct Routed {
    /// The source the sink had before, if any.
    pub(crate) replaced: Option<Arc<str>>,
    /// Why nothing is forwarded to the sink now, if that is so (the sink
    /// is not CONNECTED or in EARLY_MEDIA, or on hold).
    pub(crate) held_back: Option<String>,
}

impl<S, C> Legs<S, C> {
    /// SendMedia: makes leg `from`'s received audio the source of `to`.
    pub(crate) fn route(&mut self, from: &str, to: &str) -> Result<Routed, EngineError> {
        let from_slot = self.find(from)?;
        let to_slot = self.find(to)?;
        if from_slot == to_slot {
            return Err(EngineError::InvalidArgument(format!(
                "leg '{from}' cannot send media to itself"
            )));
        }
        let (Some(source), Some(sink)) = (self.get(from_slot), self.get(to_slot)) else {
            return Err(EngineError::NotFound(format!("no such leg '{from}'")));
        };
        if source.leg.session != sink.leg.session {
            return Err(EngineError::InvalidArgument(format!(
                "legs '{from}' and '{to}' belong to different sessions"
            )));
        }
        for (name, slot) in [(from, source), (to, sink)] {
            if slot.leg.is_terminated() {
                return Err(EngineError::FailedPrecondition(format!(
                    "leg '{name}' is terminated"
                )));
            }
        }
        let (Some(src_codec), Some(dst_codec)) = (source.leg.codec(), sink.leg.codec()) else {
            let missing = if source.leg.codec().is_none() {
                from
            } else {
                to
            };
            return Err(EngineError::FailedPrecondition(format!(
                "leg '{missing}' has no negotiated media yet"
            )));
        };
        if src_codec != dst_codec {
            return Err(EngineError::FailedPrecondition(format!(
                "leg '{from}' uses {}/{} and leg '{to}' uses {}/{}: transcoding is not built yet, so both legs need the same codec",
                src_codec.name, src_codec.clock_rate, dst_codec.name, dst_codec.clock_rate
            )));
        }
        let held_back = sink.leg.held_back_reason();
        let previous = sink.leg.source;
        if previous == Some(from_slot) {
            return Ok(Routed {
                replaced: None,
                held_back,
            });
        }
        let replaced = previous.and_then(|p| self.name(p));
        if let Some(old) = previous
            && let Some(old_entry) = self.get_mut(old)
        {
            old_entry.leg.sinks.retain(|s| *s != to_slot);
        }
        if let Some(sink) = self.get_mut(to_slot) {
            sink.leg.source = Some(from_slot);
            sink.leg.reset_out_source();
        }
        if let Some(source) = self.get_mut(from_slot) {
            source.leg.sinks.push(to_slot);
        }
        Ok(Routed {
            replaced,
            held_back,
        })
    }

    /// StopMedia: `from` stops being `to`'s source.
    pub(crate) fn unroute(&mut self, from: &str, to: &str) -> Result<(), EngineError> {
        let from_slot = self.find(from)?;
        let to_slot = self.find(to)?;
        let is_source = self
            .get(to_slot)
            .is_some_and(|s| s.leg.source == Some(from_slot));
        if !is_source {
            return Err(EngineError::NotFound(format!(
                "leg '{from}' is not sending media to leg '{to}'"
            )));
        }
        if let Some(sink) = self.get_mut(to_slot) {
            sink.leg.source = None;
            sink.leg.reset_out_source();
        }
        if let Some(source) = self.get_mut(from_slot) {
            source.leg.sinks.retain(|s| *s != to_slot);
        }
        Ok(())
    }

    /// Removes every route of the leg in `slot` (it is being torn down):
    /// its source stops feeding it, and its sinks lose their source.
    pub(crate) fn detach(&mut self, slot: u32) {
        let Some(entry) = self.get_mut(slot) else {
            return;
        };
        let source = entry.leg.source.take();
        let sinks = std::mem::take(&mut entry.leg.sinks);
        if let Some(source) = source
            && let Some(s) = self.get_mut(source)
        {
            s.leg.sinks.retain(|x| *x != slot);
        }
        for sink in sinks {
            if let Some(s) = self.get_mut(sink) {
                s.leg.source = None;
                s.leg.reset_out_source();
            }
        }
    }
}
