//! RFC 4733 telephone-event payloads (DTMF over RTP): the 4-byte payload,
//! a sender state machine and a receiver that turns a packet stream into key
//! presses.
//!
//! Times given to [`EventSender`] and [`EventReceiver`] are sample counts of
//! the event's RTP clock (normally 8 kHz) on the caller's media clock; the
//! machines never read a clock themselves.

use crate::time::extend_u16;

/// The telephone-event payload (RFC 4733 §2.3).
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// |     event     |E|R| volume    |          duration             |
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TelephoneEvent {
    /// Event code (§3.2: 0-9 digits, 10 `*`, 11 `#`, 12-15 A-D).
    pub event: u8,
    /// End bit: this packet ends the event.
    pub end: bool,
    /// Power level in -dBm0, 0..=63 (higher is quieter).
    pub volume: u8,
    /// Duration so far in RTP timestamp units, from the event's timestamp.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Payload length in bytes.
    pub const LEN: usize = 4;

    /// Parses the first event of a payload. Returns `None` if it is shorter
    /// than 4 bytes. The reserved bit is ignored, as §2.3.3 asks.
    pub fn parse(payload: &[u8]) -> Option<Self> {
        let b = payload.get(..Self::LEN)?;
        Some(Self {
            event: b[0],
            end: b[1] & 0x80 != 0,
            volume: b[1] & 0x3F,
            duration: u16::from_be_bytes([b[2], b[3]]),
        })
    }

    /// The wire bytes (reserved bit zero, volume truncated to 6 bits).
    pub fn to_bytes(self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [
            self.event,
            (if self.end { 0x80 } else { 0 }) | (self.volume & 0x3F),
            d[0],
            d[1],
        ]
    }

    /// Writes the payload into `out`, returning its length, or `None` if
    /// `out` is shorter than 4 bytes.
    pub fn write(self, out: &mut [u8]) -> Option<usize> {
        out.get_mut(..Self::LEN)?.copy_from_slice(&self.to_bytes());
        Some(Self::LEN)
    }
}

/// Maps a DTMF character (`0-9 * # A-D`, case-insensitive) to its event
/// code.
pub fn digit_to_event(c: char) -> Option<u8> {
    Some(match c {
        '0'..='9' => c as u8 - b'0',
        '*' => 10,
        '#' => 11,
        'A'..='D' => c as u8 - b'A' + 12,
        'a'..='d' => c as u8 - b'a' + 12,
        _ => return None,
    })
}

/// Maps an event code 0..=15 to its DTMF character.
pub fn event_to_digit(event: u8) -> Option<char> {
    Some(match event {
        0..=9 => (b'0' + event) as char,
        10 => '*',
        11 => '#',
        12..=15 => (b'A' + event - 12) as char,
        _ => return None,
    })
}

/// One packet the sender wants transmitted. The RTP layer adds sequence
/// number and SSRC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventPacket {
    /// RTP marker bit (set on the first packet of an event).
    pub marker: bool,
    /// RTP timestamp: the event's start (or, for events over 0xFFFF units,
    /// the current segment's start).
    pub timestamp: u32,
    /// The payload.
    pub payload: TelephoneEvent,
}

/// Errors from the RFC 4733 machines.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rfc4733Error {
    /// The payload is shorter than 4 bytes.
    Truncated,
    /// The sender is still sending an event.
    Busy,
    /// A zero duration or interval was requested.
    InvalidDuration,
}

impl core::fmt::Display for Rfc4733Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::Truncated => "telephone-event payload shorter than 4 bytes",
            Self::Busy => "an event is already being sent",
            Self::InvalidDuration => "zero duration",
        })
    }
}

impl std::error::Error for Rfc4733Error {}

/// Sends one event at a time (RFC 4733 §2.5.1): a first packet with the
/// marker bit, an update every `interval` samples with the growing duration
/// and the same timestamp, and three end packets with the final duration.
/// Events longer than 0xFFFF units are split into segments (§2.5.1.3).
///
/// Drive it with [`start`](Self::start), then call [`poll`](Self::poll)
/// on every media tick until it returns `None`.
#[derive(Clone, Debug)]
pub struct EventSender {
    interval: u32,
    volume: u8,
    active: Option<Sending>,
}

#[derive(Clone, Copy, Debug)]
struct Sending {
    event: u8,
    start_ts: u32,
    start_now: u64,
    total: u64,
    /// Index of the next update (update k is due at start + k * interval).
    next: u64,
    seg_offset: u64,
    marker_sent: bool,
    ends_left: u8,
}

impl EventSender {
    /// A sender that updates every `interval` samples (400 = 50 ms at
    /// 8 kHz) at power level `volume` (-dBm0, clamped to 63).
    pub fn new(interval: u32, volume: u8) -> Result<Self, Rfc4733Error> {
        if interval == 0 {
            return Err(Rfc4733Error::InvalidDuration);
        }
        Ok(Self {
            interval,
            volume: volume.min(63),
            active: None,
        })
    }

    /// Whether an event is being sent.
    pub fn is_active(&self) -> bool {
        self.active.is_some()
    }

    /// Starts sending `event` for `duration` samples; `now` is the media
    /// clock and `timestamp` the RTP timestamp of the event's start.
    pub fn start(
        &mut self,
        event: u8,
        duration: u64,
        now: u64,
        timestamp: u32,
    ) -> Result<(), Rfc4733Error> {
        if self.active.is_some() {
            return Err(Rfc4733Error::Busy);
        }
        if duration == 0 {
            return Err(Rfc4733Error::InvalidDuration);
        }
        self.active = Some(Sending {
            event,
            start_ts: timestamp,
            start_now: now,
            total: duration,
            next: 0,
            seg_offset: 0,
            marker_sent: false,
            ends_left: 0,
        });
        Ok(())
    }

    /// Ends the current event early (key released): its duration becomes
    /// the time elapsed until `now`, at least one interval.
    pub fn stop(&mut self, now: u64) {
        if let Some(s) = &mut self.active
            && s.ends_left == 0
        {
            let elapsed = now.saturating_sub(s.start_now).max(self.interval as u64);
            s.total = s.total.min(elapsed.max(s.seg_offset + 1));
        }
    }

    /// The next packet due at `now`, if any. Call until it returns `None`.
    pub fn poll(&mut self, now: u64) -> Option<EventPacket> {
        let interval = self.interval as u64;
        let s = self.active.as_mut()?;
        if s.ends_left > 0 {
            let pkt = Self::packet(s, self.volume, s.total, true);
            s.ends_left -= 1;
            if s.ends_left == 0 {
                self.active = None;
            }
            return Some(pkt);
        }
        let due = s.start_now + s.next * interval;
        if now < due {
            return None;
        }
        if s.marker_sent {
            // A late caller skips updates that are already stale.
            s.next = s.next.max((now - s.start_now) / interval);
        }
        let elapsed = ((s.next + 1) * interval).min(s.total);
        if elapsed - s.seg_offset > 0xFFFF {
            // Close this segment at the largest duration and open the next
            // one at timestamp + 0xFFFF (§2.5.1.3).
            let pkt = Self::packet(s, self.volume, s.seg_offset + 0xFFFF, false);
            s.seg_offset += 0xFFFF;
            return Some(pkt);
        }
        if elapsed == s.total {
            let pkt = Self::packet(s, self.volume, elapsed, true);
            s.ends_left = 2;
            return Some(pkt);
        }
        s.next += 1;
        Some(Self::packet(s, self.volume, elapsed, false))
    }

    fn packet(s: &mut Sending, volume: u8, elapsed: u64, end: bool) -> EventPacket {
        let marker = !s.marker_sent;
        s.marker_sent = true;
        EventPacket {
            marker,
            timestamp: s.start_ts.wrapping_add(s.seg_offset as u32),
            payload: TelephoneEvent {
                event: s.event,
                end,
                volume,
                duration: (elapsed - s.seg_offset).min(0xFFFF) as u16,
            },
        }
    }
}

/// What the receiver reports: exactly one `Begin` and one `End` per key
/// press.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DigitEvent {
    /// A new event started (first packet seen, marker or not).
    Begin {
        /// Event code.
        event: u8,
        /// RTP timestamp of the event's start: the key press's identity.
        timestamp: u32,
    },
    /// The event ended.
    End {
        /// Event code.
        event: u8,
        /// RTP timestamp of the event's start.
        timestamp: u32,
        /// Total duration in RTP timestamp units (64-bit: long events and
        /// wrapped duration fields are extended).
        duration: u64,
        /// Why the receiver considers it ended.
        reason: EndReason,
    },
}

/// Why an event ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// A packet with the end bit arrived.
    EndBit,
    /// A packet of another event arrived first (all end packets lost).
    Replaced,
    /// No packet arrived for the receiver's timeout.
    Timeout,
}

/// Turns a telephone-event packet stream into key presses.
///
/// Keys presses are identified by their start timestamp (and event code),
/// not by the marker bit, so a lost first packet or a missing marker still
/// yields one press. Repeated end packets and late updates of a finished
/// event are dropped; a duration field that wraps past 0xFFFF is extended;
/// segmented long events (§2.5.1.3) are joined into one press.
#[derive(Clone, Debug)]
pub struct EventReceiver {
    timeout: u64,
    current: Option<Receiving>,
    /// Start (timestamp, event) of recently finished events.
    finished: [(u32, u8); FINISHED],
    finished_len: usize,
    finished_next: usize,
    last_start: Option<u32>,
    queue: [Option<DigitEvent>; QUEUE],
    queue_head: usize,
    queue_len: usize,
}

#[derive(Clone, Copy, Debug)]
struct Receiving {
    event: u8,
    start_ts: u32,
    seg_ts: u32,
    seg_base: u64,
    seg_dur: Option<u64>,
    last_seen: u64,
}

impl Receiving {
    fn total(&self) -> u64 {
        self.seg_base + self.seg_dur.unwrap_or(0)
    }
}

impl EventReceiver {
    /// A receiver that ends an event after `timeout` samples without a
    /// packet for it (e.g. 4000 = 500 ms at 8 kHz).
    pub fn new(timeout: u64) -> Self {
        Self {
            timeout: timeout.max(1),
            current: None,
            finished: [(0, 0); FINISHED],
            finished_len: 0,
            finished_next: 0,
            last_start: None,
            queue: [None; QUEUE],
            queue_head: 0,
            queue_len: 0,
        }
    }

    /// Forgets all state (e.g. on an SSRC change), without reporting the
    /// current event's end.
    pub fn reset(&mut self) {
        *self = Self::new(self.timeout);
    }

    /// Handles one received telephone-event packet: `now` on the media
    /// clock, and the packet's RTP timestamp, marker bit and payload.
    pub fn handle_packet(
        &mut self,
        now: u64,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
    ) -> Result<(), Rfc4733Error> {
        let ev = TelephoneEvent::parse(payload).ok_or(Rfc4733Error::Truncated)?;
        if let Some(c) = &mut self.current {
            if c.event == ev.event && timestamp == c.seg_ts {
                Self::update(c, now, ev.duration);
                if ev.end {
                    self.finish(EndReason::EndBit);
                }
                return Ok(());
            }
            let delta = timestamp.wrapping_sub(c.seg_ts);
            let seg_dur = c.seg_dur.unwrap_or(0);
            if c.event == ev.event
                && !marker
                && seg_dur >= LONG_SEGMENT
                && delta as u64 >= LONG_SEGMENT
                && delta as u64 <= seg_dur + self.timeout
            {
                // Next segment of a long event.
                c.seg_base += delta as u64;
                c.seg_ts = timestamp;
                c.seg_dur = None;
                Self::update(c, now, ev.duration);
                if ev.end {
                    self.finish(EndReason::EndBit);
                }
                return Ok(());
            }
            if (delta as i32) < 0 {
                // Older than the current event: a late packet, drop it.
                return Ok(());
            }
        }
        if self.is_finished(timestamp, ev.event) || self.is_stale(timestamp) {
            return Ok(());
        }
        self.finish(EndReason::Replaced);
        self.push(DigitEvent::Begin {
            event: ev.event,
            timestamp,
        });
        let mut c = Receiving {
            event: ev.event,
            start_ts: timestamp,
            seg_ts: timestamp,
            seg_base: 0,
            seg_dur: None,
            last_seen: now,
        };
        Self::update(&mut c, now, ev.duration);
        self.current = Some(c);
        self.last_start = Some(timestamp);
        if ev.end {
            self.finish(EndReason::EndBit);
        }
        Ok(())
    }

    /// Ends the current event if no packet came for the timeout.
    pub fn handle_timeout(&mut self, now: u64) {
        if let Some(c) = &self.current
            && now >= c.last_seen + self.timeout
        {
            self.finish(EndReason::Timeout);
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) next has work to do.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.current.map(|c| c.last_seen + self.timeout)
    }

    /// The next key-press event, if any.
    pub fn poll_event(&mut self) -> Option<DigitEvent> {
        if self.queue_len == 0 {
            return None;
        }
        let e = self.queue[self.queue_head].take();
        self.queue_head = (self.queue_head + 1) % QUEUE;
        self.queue_len -= 1;
        e
    }

    /// Whether an event is in progress.
    pub fn is_active(&self) -> bool {
        self.current.is_some()
    }

    fn update(c: &mut Receiving, now: u64, duration: u16) {
        let d = extend_u16(c.seg_dur, duration);
        // Reordered updates never shrink the duration.
        c.seg_dur = Some(c.seg_dur.map_or(d, |p| p.max(d)));
        c.last_seen = now;
    }

    fn finish(&mut self, reason: EndReason) {
        let Some(c) = self.current.take() else { return };
        self.finished[self.finished_next] = (c.start_ts, c.event);
        self.finished_next = (self.finished_next + 1) % FINISHED;
        self.finished_len = (self.finished_len + 1).min(FINISHED);
        // A segmented event's later segments also count as finished.
        if c.seg_ts != c.start_ts {
            self.finished[self.finished_next] = (c.seg_ts, c.event);
            self.finished_next = (self.finished_next + 1) % FINISHED;
            self.finished_len = (self.finished_len + 1).min(FINISHED);
        }
        self.push(DigitEvent::End {
            event: c.event,
            timestamp: c.start_ts,
            duration: c.total(),
            reason,
        });
    }

    fn is_finished(&self, ts: u32, event: u8) -> bool {
        self.finished[..self.finished_len].contains(&(ts, event))
    }

    fn is_stale(&self, ts: u32) -> bool {
        // Before the last event's start, but not so far that it must be a
        // timestamp jump of the stream.
        self.last_start.is_some_and(|last| {
            let back = last.wrapping_sub(ts);
            back != 0 && back < STALE_WINDOW
        })
    }

    fn push(&mut self, e: DigitEvent) {
        if self.queue_len == QUEUE {
            // Never reached with the caller draining after each packet
            // (one packet produces at most three events); drop the oldest.
            self.queue_head = (self.queue_head + 1) % QUEUE;
            self.queue_len -= 1;
        }
        let tail = (self.queue_head + self.queue_len) % QUEUE;
        self.queue[tail] = Some(e);
        self.queue_len += 1;
    }
}

/// Recently finished events remembered for duplicate suppression.
const FINISHED: usize = 8;
/// Pending receiver outputs.
const QUEUE: usize = 8;
/// A segment this long (units) may be followed by a continuation segment.
const LONG_SEGMENT: u64 = 0xF000;
/// Packets up to this far (units) behind the last start are stale: 30 s at
/// 8 kHz.
const STALE_WINDOW: u32 = 240_000;

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(rx: &mut EventReceiver) -> Vec<DigitEvent> {
        core::iter::from_fn(|| rx.poll_event()).collect()
    }

    fn payload(event: u8, end: bool, duration: u16) -> [u8; 4] {
        TelephoneEvent {
            event,
            end,
            volume: 10,
            duration,
        }
        .to_bytes()
    }

    #[test]
    fn payload_round_trip_and_wire_layout() {
        let e = TelephoneEvent {
            event: 11,
            end: true,
            volume: 10,
            duration: 0x0320,
        };
        assert_eq!(e.to_bytes(), [0x0B, 0x8A, 0x03, 0x20]);
        assert_eq!(TelephoneEvent::parse(&e.to_bytes()), Some(e));
        // Reserved bit ignored on receive.
        assert_eq!(TelephoneEvent::parse(&[0x0B, 0xCA, 0x03, 0x20]), Some(e));
        assert_eq!(TelephoneEvent::parse(&[1, 2, 3]), None);
        let mut buf = [0u8; 3];
        assert_eq!(e.write(&mut buf), None);
        for c in "0123456789*#ABCD".chars() {
            assert_eq!(event_to_digit(digit_to_event(c).unwrap()), Some(c));
        }
        assert_eq!(digit_to_event('x'), None);
        assert_eq!(event_to_digit(16), None);
    }

    #[test]
    fn sender_sequence() {
        // 8 kHz, 50 ms updates, a 180 ms digit "5".
        let mut tx = EventSender::new(400, 10).unwrap();
        tx.start(5, 1440, 1000, 0xFFFF_FF00).unwrap();
        assert_eq!(tx.start(6, 100, 1000, 0), Err(Rfc4733Error::Busy));
        let mut sent = Vec::new();
        for now in (1000..4000).step_by(160) {
            while let Some(p) = tx.poll(now) {
                sent.push((now, p));
            }
        }
        let summary: Vec<_> = sent
            .iter()
            .map(|(now, p)| (*now, p.marker, p.payload.duration, p.payload.end))
            .collect();
        assert_eq!(
            summary,
            vec![
                (1000, true, 400, false),
                (1480, false, 800, false),
                (1800, false, 1200, false),
                (2280, false, 1440, true),
                (2280, false, 1440, true),
                (2280, false, 1440, true),
            ]
        );
        assert!(
            sent.iter()
                .all(|(_, p)| p.timestamp == 0xFFFF_FF00 && p.payload.event == 5)
        );
        assert!(!tx.is_active());
    }

    #[test]
    fn sender_short_event_and_stop() {
        let mut tx = EventSender::new(400, 10).unwrap();
        tx.start(1, 200, 0, 7).unwrap();
        let p: Vec<_> = core::iter::from_fn(|| tx.poll(0)).collect();
        assert_eq!(p.len(), 3);
        assert!(p[0].marker && !p[1].marker && p.iter().all(|p| p.payload.end));
        tx.start(2, 80_000, 0, 0).unwrap();
        assert!(tx.poll(0).is_some());
        tx.stop(1000);
        let p: Vec<_> = core::iter::from_fn(|| tx.poll(1000)).collect();
        assert_eq!(p.len(), 3);
        assert!(
            p.iter()
                .all(|p| p.payload.end && p.payload.duration == 1000)
        );
        assert_eq!(
            EventSender::new(0, 0).err(),
            Some(Rfc4733Error::InvalidDuration)
        );
    }

    #[test]
    fn sender_segments_long_events_and_receiver_joins_them() {
        // 10 s at 8 kHz = 80 000 units > 0xFFFF.
        let mut tx = EventSender::new(400, 10).unwrap();
        tx.start(9, 80_000, 0, 1_000).unwrap();
        let mut rx = EventReceiver::new(4000);
        let mut packets = Vec::new();
        for now in (0..=90_000).step_by(160) {
            while let Some(p) = tx.poll(now) {
                packets.push(p);
                rx.handle_packet(now, p.timestamp, p.marker, &p.payload.to_bytes())
                    .unwrap();
            }
        }
        assert!(packets.iter().any(|p| p.timestamp == 1_000 + 0xFFFF));
        assert!(
            packets
                .iter()
                .all(|p| p.timestamp == 1_000 || p.timestamp == 1_000 + 0xFFFF)
        );
        assert_eq!(packets.iter().filter(|p| p.marker).count(), 1);
        let ends: Vec<_> = packets.iter().filter(|p| p.payload.end).collect();
        assert_eq!(ends.len(), 3);
        assert_eq!(ends[0].payload.duration as u64, 80_000 - 0xFFFF);
        assert_eq!(
            drain(&mut rx),
            vec![
                DigitEvent::Begin {
                    event: 9,
                    timestamp: 1_000
                },
                DigitEvent::End {
                    event: 9,
                    timestamp: 1_000,
                    duration: 80_000,
                    reason: EndReason::EndBit
                },
            ]
        );
    }

    /// (timestamp, marker, event, end, duration) fed to a receiver, and the
    /// events it must report.
    type Case = (
        &'static str,
        &'static [(u32, bool, u8, bool, u16)],
        &'static [DigitEvent],
    );

    #[test]
    fn receiver_edge_cases() {
        use DigitEvent::{Begin, End};
        use EndReason::*;
        let cases: &[Case] = &[
            (
                "normal press with three end packets",
                &[
                    (100, true, 1, false, 400),
                    (100, false, 1, false, 800),
                    (100, false, 1, true, 960),
                    (100, false, 1, true, 960),
                    (100, false, 1, true, 960),
                ],
                &[
                    Begin {
                        event: 1,
                        timestamp: 100,
                    },
                    End {
                        event: 1,
                        timestamp: 100,
                        duration: 960,
                        reason: EndBit,
                    },
                ],
            ),
            (
                "missing marker and lost start packet",
                &[(100, false, 2, false, 800), (100, false, 2, true, 960)],
                &[
                    Begin {
                        event: 2,
                        timestamp: 100,
                    },
                    End {
                        event: 2,
                        timestamp: 100,
                        duration: 960,
                        reason: EndBit,
                    },
                ],
            ),
            (
                "same digit twice, all end packets of the first lost",
                &[
                    (100, true, 3, false, 400),
                    (2000, true, 3, false, 400),
                    (2000, false, 3, true, 800),
                ],
                &[
                    Begin {
                        event: 3,
                        timestamp: 100,
                    },
                    End {
                        event: 3,
                        timestamp: 100,
                        duration: 400,
                        reason: Replaced,
                    },
                    Begin {
                        event: 3,
                        timestamp: 2000,
                    },
                    End {
                        event: 3,
                        timestamp: 2000,
                        duration: 800,
                        reason: EndBit,
                    },
                ],
            ),
            (
                "late update and end after the next digit started",
                &[
                    (100, true, 4, false, 400),
                    (100, false, 4, true, 800),
                    (2000, true, 5, false, 400),
                    (100, false, 4, true, 800),
                    (100, false, 4, false, 400),
                ],
                &[
                    Begin {
                        event: 4,
                        timestamp: 100,
                    },
                    End {
                        event: 4,
                        timestamp: 100,
                        duration: 800,
                        reason: EndBit,
                    },
                    Begin {
                        event: 5,
                        timestamp: 2000,
                    },
                ],
            ),
            (
                "only end packets arrive",
                &[(100, false, 6, true, 800), (100, false, 6, true, 800)],
                &[
                    Begin {
                        event: 6,
                        timestamp: 100,
                    },
                    End {
                        event: 6,
                        timestamp: 100,
                        duration: 800,
                        reason: EndBit,
                    },
                ],
            ),
            (
                "duration field wraps (non-segmenting sender)",
                &[
                    (100, true, 7, false, 65_000),
                    (100, false, 7, false, 65_400),
                    (100, false, 7, false, 264),
                    (100, false, 7, true, 664),
                ],
                &[
                    Begin {
                        event: 7,
                        timestamp: 100,
                    },
                    End {
                        event: 7,
                        timestamp: 100,
                        duration: 65_536 + 664,
                        reason: EndBit,
                    },
                ],
            ),
            (
                "reordered updates never shrink the duration",
                &[
                    (100, true, 8, false, 800),
                    (100, false, 8, false, 400),
                    (100, false, 8, true, 1200),
                ],
                &[
                    Begin {
                        event: 8,
                        timestamp: 100,
                    },
                    End {
                        event: 8,
                        timestamp: 100,
                        duration: 1200,
                        reason: EndBit,
                    },
                ],
            ),
            (
                "timestamp wrap between presses",
                &[
                    (0xFFFF_FE00, true, 1, false, 400),
                    (0xFFFF_FE00, false, 1, true, 800),
                    (0x0000_0400, true, 2, true, 400),
                ],
                &[
                    Begin {
                        event: 1,
                        timestamp: 0xFFFF_FE00,
                    },
                    End {
                        event: 1,
                        timestamp: 0xFFFF_FE00,
                        duration: 800,
                        reason: EndBit,
                    },
                    Begin {
                        event: 2,
                        timestamp: 0x400,
                    },
                    End {
                        event: 2,
                        timestamp: 0x400,
                        duration: 400,
                        reason: EndBit,
                    },
                ],
            ),
        ];
        for (name, packets, want) in cases {
            let mut rx = EventReceiver::new(4000);
            let mut got = Vec::new();
            for (i, &(ts, m, ev, end, dur)) in packets.iter().enumerate() {
                rx.handle_packet(i as u64 * 160, ts, m, &payload(ev, end, dur))
                    .unwrap();
                got.extend(drain(&mut rx));
            }
            assert_eq!(&got, want, "{name}");
        }
    }

    #[test]
    fn receiver_timeout_and_truncated_payload() {
        let mut rx = EventReceiver::new(4000);
        assert_eq!(
            rx.handle_packet(0, 0, true, &[1, 2]),
            Err(Rfc4733Error::Truncated)
        );
        rx.handle_packet(0, 500, true, &payload(0, false, 400))
            .unwrap();
        assert_eq!(rx.poll_timeout(), Some(4000));
        rx.handle_timeout(3999);
        assert_eq!(drain(&mut rx).len(), 1);
        rx.handle_timeout(4000);
        assert_eq!(
            drain(&mut rx),
            vec![DigitEvent::End {
                event: 0,
                timestamp: 500,
                duration: 400,
                reason: EndReason::Timeout
            }]
        );
        assert!(!rx.is_active());
        // A repeated end after the timeout is still dropped.
        rx.handle_packet(5000, 500, false, &payload(0, true, 800))
            .unwrap();
        assert_eq!(drain(&mut rx), vec![]);
    }

    #[test]
    fn receiver_never_panics_on_random_bytes() {
        let mut rx = EventReceiver::new(4000);
        let mut x = 0x1234_5678u32;
        for i in 0..20_000u64 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let b = x.to_be_bytes();
            let len = (x % 6) as usize;
            let _ = rx.handle_packet(i * 7, x.rotate_left(7) % 3000, x & 1 == 0, &b[..len.min(4)]);
            rx.handle_timeout(i * 7);
            while rx.poll_event().is_some() {}
        }
    }
}
