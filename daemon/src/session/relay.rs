//! The relay fast path: a received datagram is validated, accounted on its
//! leg (RTP counters, RTCP reception statistics) and forwarded to every
//! relayed sink of that leg with payload type, SSRC, sequence number and
//! timestamp rewritten (and, towards a sink using the other G.711 law,
//! every payload byte mapped through a 256-entry table); when the leg also feeds the PCM path, the packet is
//! stored in its receive side's jitter buffer too. It runs once per packet,
//! so it takes no lock, makes no allocation and no syscall: sends go into
//! the engine's transmit queue through [`Transmit`].

use std::net::SocketAddr;
use std::time::Instant;

use legato_dsp::codec::g711;

use super::legs::Legs;
use super::{EventSink, PacketKind};
use crate::rtp::{RtpHeader, is_rtcp, valid_rtcp};

/// Where relayed packets go: the engine's transmit queue.
pub(crate) trait Transmit {
    /// The per-leg handle a packet to the leg's remote party goes through.
    type Handle: Copy;

    /// Queues a datagram of `len` bytes to `to` through `handle`, filled in
    /// place by `fill`. `false` when it cannot be queued (counted by the
    /// caller as a send failure).
    fn push(
        &mut self,
        handle: Self::Handle,
        to: SocketAddr,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> bool;
}

/// Datagrams warmed together: enough to overlap the misses of a batch,
/// few enough that the first ones are still cached when handled.
pub(crate) const WARM_BATCH: usize = 32;

/// Reads the state the packets of legs `slots` will touch (their legs,
/// then those legs' first sinks) so that the cache misses of a whole batch
/// overlap instead of stalling one packet after another.
pub(crate) fn warm<S: Copy + Into<u64>, C>(legs: &Legs<S, C>, slots: &[u32]) {
    // Two passes of independent loads: the receiving legs (which name
    // their sinks), then the sinks. Nothing here depends on the previous
    // packet, so the CPU keeps many misses in flight.
    let n = slots.len().min(WARM_BATCH);
    let mut sinks = [u32::MAX; WARM_BATCH];
    let mut acc = 0u64;
    for (sink, &slot) in sinks.iter_mut().zip(&slots[..n]) {
        if let Some(entry) = legs.get(slot) {
            acc ^= entry.leg.warm();
            *sink = entry.leg.sinks.first().copied().unwrap_or(u32::MAX);
        }
    }
    for &sink in &sinks[..n] {
        if let Some(entry) = legs.get(sink) {
            acc ^= entry.leg.warm() ^ entry.send.into();
        }
    }
    std::hint::black_box(acc);
}

/// Handles one datagram received on leg `slot`'s RTP socket (or its RTCP
/// socket, with `rtcp_socket`): RTCP is checked and counted, RTP is
/// checked against the leg's latching and payload types, then relayed to
/// every sink that may send it now.
#[allow(
    clippy::too_many_arguments,
    reason = "the packet path's inputs, passed by value to stay in registers"
)]
pub(crate) fn handle_packet<S: Copy, C, T: Transmit<Handle = S>>(
    legs: &mut Legs<S, C>,
    events: &mut impl EventSink,
    now: Instant,
    slot: u32,
    rtcp_socket: bool,
    source: SocketAddr,
    data: &[u8],
    tx: &mut T,
) {
    // Field borrows: the slot mutably, the media clock shared.
    let clock = &legs.clock;
    let Some(entry) = legs.slots.get_mut(slot as usize).and_then(Option::as_mut) else {
        return;
    };
    if entry.leg.is_terminated() {
        return;
    }
    if rtcp_socket || (entry.leg.rtcp_mux() && is_rtcp(data)) {
        if !valid_rtcp(data) {
            entry.leg.counters.malformed_packets += 1;
        } else if entry.leg.accept_rtcp_source(source) {
            entry.leg.handle_rtcp(now, clock.wall(now), data);
        }
        return;
    }
    let Some(header) = RtpHeader::parse(data) else {
        entry.leg.counters.malformed_packets += 1;
        return;
    };
    let Some(kind) = entry
        .leg
        .handle_rtp(now, source, &header, data.len(), events)
    else {
        return;
    };
    if let Some(rx) = entry.media.rx.as_deref_mut() {
        // The PCM path needs it too: into the jitter buffer.
        let payload = data
            .get(header.payload_offset..header.payload_offset + header.payload_len)
            .unwrap_or_default();
        match kind {
            PacketKind::Audio => {
                let arrival = clock.time(now, rx.rtp_rate().hz());
                rx.push(
                    arrival,
                    clock.ticks(),
                    header.ssrc,
                    header.sequence,
                    header.timestamp,
                    payload,
                );
            }
            PacketKind::TelephoneEvent => {
                let rate = entry
                    .leg
                    .telephone_event_rate()
                    .unwrap_or_else(|| rx.rtp_rate().hz());
                let at = clock.time(now, rate);
                rx.push_event(at, rate, header.timestamp, header.marker, payload);
            }
        }
    }
    relay(legs, now, slot, &header, kind, data, tx);
}

/// Forwards an accepted RTP packet of leg `slot` to each of its sinks.
fn relay<S: Copy, C, T: Transmit<Handle = S>>(
    legs: &mut Legs<S, C>,
    now: Instant,
    slot: u32,
    header: &RtpHeader,
    kind: PacketKind,
    data: &[u8],
    tx: &mut T,
) {
    let Some(entry) = legs.get(slot) else {
        return;
    };
    if !entry.leg.relays {
        return;
    }
    // What the peer sends now: the negotiated codec, or the one of the
    // exchange it switched to.
    let codec = entry.leg.codec().map(|_| entry.leg.receive_codec());
    let sinks = entry.leg.sinks.len();
    for i in 0..sinks {
        let Some(sink_slot) = legs.get(slot).and_then(|e| e.leg.sinks.get(i).copied()) else {
            break;
        };
        let Some(sink) = legs.get_mut(sink_slot) else {
            continue;
        };
        let Some(plan) = sink.leg.plan_forward(now, slot, header, kind, codec) else {
            continue;
        };
        let sent = tx.push(sink.send, plan.destination, data.len(), |buf| {
            buf.copy_from_slice(data);
            plan.stamp(buf);
            if let Some((from, to)) = plan.convert
                && let Some(payload) =
                    buf.get_mut(header.payload_offset..header.payload_offset + header.payload_len)
            {
                g711::convert_in_place(from, to, payload);
            }
        });
        sink.leg.counters.count_send(sent, data.len());
    }
}
