//! Adaptive jitter buffer for one RTP stream of fixed-duration frames.
//!
//! # Model
//!
//! The caller [`push`](JitterBuffer::push)es packets as they arrive, with
//! their arrival time, and [`pop`](JitterBuffer::pop)s one frame per media
//! tick. All times are sample counts of the stream's RTP clock on the
//! caller's monotonic media clock; the buffer never reads a clock.
//!
//! Each packet's *transit* is `arrival - timestamp` (extended to 64 bits).
//! The buffer keeps the minimum and maximum transit over a sliding window
//! of [`WINDOW_BUCKETS`] buckets of `window_bucket` samples (4 s by
//! default). Their spread is the jitter it must absorb: the target delay is
//! `spread + frame / 2`, clamped to `[min_delay, max_delay]`. A frame with
//! timestamp `ts` plays when `now - ts` reaches `min_transit + target`.
//!
//! When the playout offset lags the goal the buffer stretches (one
//! concealment frame without advancing, at once); when it exceeds the goal
//! by more than a frame it drops one frame, at most once every
//! [`SHRINK_EVERY`] ticks. Because the window slides, a jitter burst ages
//! out and the delay shrinks back: the buffer never only grows.
//!
//! Reordered packets land in their slot by timestamp; duplicates and
//! packets that arrive after their playout time are dropped and counted; a
//! missing frame asks the decoder to conceal ([`Playout::Conceal`]). A
//! change of SSRC or a timestamp jump larger than `resync_threshold`
//! restarts the buffer, as does a long run of empty ticks (a talk spurt
//! ended or the sender paused).

use crate::time::{ClockRate, MediaTime, extend_u32};

/// Jitter-buffer configuration. All durations in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JitterConfig {
    /// RTP clock rate of the stream.
    pub clock_rate: ClockRate,
    /// Frame duration (packetisation time), e.g. 20.
    pub frame_ms: u32,
    /// Smallest target delay, e.g. 20.
    pub min_delay_ms: u32,
    /// Largest target delay, e.g. 200.
    pub max_delay_ms: u32,
    /// Largest payload accepted, in bytes.
    pub max_payload: usize,
    /// Number of frame slots (must cover `max_delay` plus reordering).
    pub slots: usize,
    /// A transit change larger than this is a timestamp jump: restart.
    pub resync_threshold_ms: u32,
    /// Width of one window bucket; the window is [`WINDOW_BUCKETS`] wide.
    pub window_bucket_ms: u32,
    /// Consecutive empty ticks after which the buffer restarts buffering.
    pub max_empty_frames: u32,
}

impl JitterConfig {
    /// Defaults for `clock_rate` and `frame_ms`: delay 20-200 ms, 1500-byte
    /// payloads, 64 slots, 2 s resync threshold, 4 s window, restart after
    /// 10 empty ticks.
    pub fn new(clock_rate: ClockRate, frame_ms: u32) -> Self {
        Self {
            clock_rate,
            frame_ms,
            min_delay_ms: 20,
            max_delay_ms: 200,
            max_payload: 1500,
            slots: 64,
            resync_threshold_ms: 2000,
            window_bucket_ms: 500,
            max_empty_frames: 10,
        }
    }
}

/// What a tick plays.
#[derive(Debug, PartialEq, Eq)]
pub enum Playout<'a> {
    /// Decode this packet.
    Packet {
        /// The payload.
        payload: &'a [u8],
        /// Extended RTP timestamp.
        timestamp: u64,
        /// RTP sequence number.
        seq: u16,
    },
    /// A frame is missing (lost, late, or the buffer is stretching): ask
    /// the decoder to conceal.
    Conceal,
    /// Nothing to play yet (buffering, or the stream paused): silence.
    Empty,
}

/// What happened to a pushed packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushOutcome {
    /// Stored for playout.
    Stored,
    /// Same timestamp already buffered: dropped.
    Duplicate,
    /// Its playout time has passed: dropped.
    Late,
    /// Too far ahead for the slots: dropped.
    Overflow,
}

/// Errors from the jitter buffer.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JitterError {
    /// Payload larger than `max_payload`.
    PayloadTooLarge,
    /// Configuration rejected (zero frame, empty slots, min above max...).
    InvalidConfig,
}

impl core::fmt::Display for JitterError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::PayloadTooLarge => "payload larger than the jitter buffer's slots",
            Self::InvalidConfig => "invalid jitter buffer configuration",
        })
    }
}

impl std::error::Error for JitterError {}

/// Counters, cumulative since construction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JitterCounters {
    /// Packets stored.
    pub stored: u64,
    /// Packets played.
    pub played: u64,
    /// Duplicates dropped.
    pub duplicates: u64,
    /// Packets dropped for arriving after their playout time.
    pub late: u64,
    /// Packets dropped for lack of slots.
    pub overflow: u64,
    /// Concealment frames asked for.
    pub concealed: u64,
    /// Frames dropped to shrink the delay.
    pub shrink_drops: u64,
    /// Restarts for an SSRC change or a timestamp jump.
    pub resyncs: u64,
    /// Restarts after a run of empty ticks (the stream paused).
    pub rebuffers: u64,
}

/// The adaptive jitter buffer. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct JitterBuffer {
    frame: i64,
    min_delay: i64,
    max_delay: i64,
    resync: i64,
    bucket_len: u64,
    max_empty: u32,
    max_payload: usize,
    rate: ClockRate,
    slots: Vec<Slot>,
    data: Vec<u8>,
    /// Slot of the packet the last pop played, until a packet is stored in
    /// its place (see [`JitterBuffer::last_played`]).
    played: Option<usize>,
    ssrc: Option<u32>,
    highest_ts: Option<u64>,
    /// Timestamp that slot indices are counted from.
    base_ts: i64,
    state: State,
    buckets: [Bucket; WINDOW_BUCKETS],
    empty_run: u32,
    since_shrink: u32,
    buffered: usize,
    counters: JitterCounters,
}

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    used: bool,
    ts: i64,
    seq: u16,
    len: usize,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    id: u64,
    min: i64,
    max: i64,
    used: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// No playout position yet.
    Buffering,
    /// Playing; `next` is the timestamp of the next frame, `started` once a
    /// packet has been played.
    Playing { next: i64, started: bool },
}

impl JitterBuffer {
    /// A buffer for `config`; allocates all slots now.
    pub fn new(config: JitterConfig) -> Result<Self, JitterError> {
        let ms = |v: u32| config.clock_rate.samples_in_ms(v) as i64;
        let frame = ms(config.frame_ms);
        if frame == 0
            || config.slots < 2
            || config.min_delay_ms > config.max_delay_ms
            || config.max_payload == 0
            || config.window_bucket_ms == 0
            || ms(config.max_delay_ms) >= frame * config.slots as i64
        {
            return Err(JitterError::InvalidConfig);
        }
        Ok(Self {
            frame,
            min_delay: ms(config.min_delay_ms),
            max_delay: ms(config.max_delay_ms),
            resync: ms(config.resync_threshold_ms).max(ms(config.max_delay_ms)),
            bucket_len: ms(config.window_bucket_ms) as u64,
            max_empty: config.max_empty_frames.max(1),
            max_payload: config.max_payload,
            rate: config.clock_rate,
            slots: vec![Slot::default(); config.slots],
            data: vec![0; config.slots * config.max_payload],
            played: None,
            ssrc: None,
            highest_ts: None,
            base_ts: 0,
            state: State::Buffering,
            buckets: [Bucket {
                id: 0,
                min: 0,
                max: 0,
                used: false,
            }; WINDOW_BUCKETS],
            empty_run: 0,
            since_shrink: 0,
            buffered: 0,
            counters: JitterCounters::default(),
        })
    }

    /// Handles one arriving packet. `arrival` is the media clock (in RTP
    /// clock samples) when it was received.
    pub fn push(
        &mut self,
        arrival: u64,
        ssrc: u32,
        seq: u16,
        timestamp: u32,
        payload: &[u8],
    ) -> Result<PushOutcome, JitterError> {
        if payload.len() > self.max_payload {
            return Err(JitterError::PayloadTooLarge);
        }
        if self.ssrc != Some(ssrc) {
            if self.ssrc.is_some() {
                self.restart();
                self.counters.resyncs += 1;
            }
            self.ssrc = Some(ssrc);
        }
        let mut ext = extend_u32(self.highest_ts, timestamp);
        let mut transit = arrival as i64 - ext as i64;
        if let Some((min, _)) = self.window()
            && (transit - min).abs() > self.resync
        {
            self.restart();
            self.counters.resyncs += 1;
            self.ssrc = Some(ssrc);
            ext = timestamp as u64;
            transit = arrival as i64 - ext as i64;
        }
        if self.highest_ts.is_none() {
            self.base_ts = ext as i64;
        }
        self.highest_ts = Some(self.highest_ts.map_or(ext, |h| h.max(ext)));
        let ts = ext as i64;

        if let State::Playing { next, .. } = self.state
            && ts < next
        {
            // Late packets show the delay was too small: they count for
            // the jitter estimate. Duplicates and overflow do not.
            self.record_transit(arrival, transit);
            self.counters.late += 1;
            return Ok(PushOutcome::Late);
        }
        let floor = match self.state {
            State::Playing { next, .. } => next,
            State::Buffering => self.lowest_buffered().unwrap_or(ts),
        };
        if ts >= floor + self.frame * self.slots.len() as i64 {
            self.counters.overflow += 1;
            return Ok(PushOutcome::Overflow);
        }
        let i = self.index(ts);
        let slot = &mut self.slots[i];
        if slot.used && slot.ts == ts {
            self.counters.duplicates += 1;
            return Ok(PushOutcome::Duplicate);
        }
        if !slot.used {
            self.buffered += 1;
        }
        if self.played == Some(i) {
            self.played = None;
        }
        *slot = Slot {
            used: true,
            ts,
            seq,
            len: payload.len(),
        };
        let off = i * self.max_payload;
        self.data[off..off + payload.len()].copy_from_slice(payload);
        self.counters.stored += 1;
        self.record_transit(arrival, transit);
        Ok(PushOutcome::Stored)
    }

    /// Plays one frame at media time `now` (same clock as arrivals). Call
    /// once per frame duration.
    pub fn pop(&mut self, now: u64) -> Playout<'_> {
        self.pop_with(now, true)
    }

    /// [`pop`](Self::pop), letting the caller veto shrinking this tick
    /// (`may_shrink` false): a caller that decodes the audio can keep the
    /// buffer from dropping a frame in the middle of a sound and let it
    /// drop one in a pause instead, where nobody hears it. The caller must
    /// allow shrinking eventually (e.g. after a bounded wait), or the delay
    /// of a clock drifting fast grows.
    pub fn pop_with(&mut self, now: u64, may_shrink: bool) -> Playout<'_> {
        let now = now as i64;
        let (next, started) = match self.state {
            State::Buffering => {
                let Some(goal) = self.goal_offset() else {
                    return Playout::Empty;
                };
                if self.buffered == 0 {
                    return Playout::Empty;
                }
                // Align the playout position to the frame grid.
                let k = (now - goal - self.base_ts).div_euclid(self.frame);
                let next = self.base_ts + k * self.frame;
                self.state = State::Playing {
                    next,
                    started: false,
                };
                self.since_shrink = 0;
                (next, false)
            }
            State::Playing { next, started } => (next, started),
        };
        let mut next = next;
        let goal = self.goal_offset().unwrap_or(now - next);
        let offset = now - next;
        self.since_shrink = self.since_shrink.saturating_add(1);
        if offset < goal && started {
            // Behind the goal: stretch by one frame.
            self.counters.concealed += 1;
            return Playout::Conceal;
        }
        if offset > goal + self.frame && self.since_shrink >= SHRINK_EVERY && started && may_shrink
        {
            // Ahead of the goal: drop the frame due now.
            self.take(next);
            next += self.frame;
            self.counters.shrink_drops += 1;
            self.since_shrink = 0;
        }
        self.state = State::Playing {
            next: next + self.frame,
            started,
        };
        let i = self.index(next);
        if self.slots[i].used && self.slots[i].ts == next {
            self.slots[i].used = false;
            self.buffered -= 1;
            self.empty_run = 0;
            self.counters.played += 1;
            self.state = State::Playing {
                next: next + self.frame,
                started: true,
            };
            let s = self.slots[i];
            let off = i * self.max_payload;
            self.played = Some(i);
            return Playout::Packet {
                payload: &self.data[off..off + s.len],
                timestamp: s.ts as u64,
                seq: s.seq,
            };
        }
        // Stale entry from before a restart.
        if self.slots[i].used && self.slots[i].ts < next {
            self.slots[i].used = false;
            self.buffered -= 1;
        }
        if !started {
            return Playout::Empty;
        }
        if self.buffered == 0 {
            self.empty_run += 1;
            if self.empty_run >= self.max_empty {
                // The stream paused: buffer afresh when it resumes (its
                // timestamps may not have advanced during the pause).
                self.restart();
                self.counters.rebuffers += 1;
                return Playout::Empty;
            }
        }
        self.counters.concealed += 1;
        Playout::Conceal
    }

    /// The payload of the packet the last [`pop`](Self::pop) played, for as
    /// long as no later packet has been stored in its place: a caller can
    /// read it again after the pop's borrow has ended (e.g. convert it
    /// later in the same tick) instead of copying it out.
    pub fn last_played(&self) -> Option<&[u8]> {
        let i = self.played?;
        let off = i * self.max_payload;
        self.data.get(off..off + self.slots.get(i)?.len)
    }

    /// Whether the next [`pop`](Self::pop) would drop a frame to shrink the
    /// delay, were it allowed to.
    pub fn wants_to_shrink(&self, now: u64) -> bool {
        let State::Playing { next, started } = self.state else {
            return false;
        };
        let Some(goal) = self.goal_offset() else {
            return false;
        };
        started && now as i64 - next > goal + self.frame && self.since_shrink + 1 >= SHRINK_EVERY
    }

    /// The current target delay (jitter spread plus margin, within bounds).
    pub fn target_delay(&self) -> MediaTime {
        MediaTime::new(self.target().unwrap_or(self.min_delay), self.rate)
    }

    /// The current playout delay of the fastest packets: how long a packet
    /// with minimum transit waits in the buffer. `None` while buffering.
    pub fn current_delay(&self, now: u64) -> Option<MediaTime> {
        let State::Playing { next, .. } = self.state else {
            return None;
        };
        let (min, _) = self.window()?;
        Some(MediaTime::new(now as i64 - next - min, self.rate))
    }

    /// The payload of the packet the next [`pop`](Self::pop) plays, if it
    /// is buffered: after a [`Playout::Conceal`], the packet that follows
    /// the lost one, whose in-band FEC (Opus) can rebuild it.
    pub fn peek_next(&self) -> Option<&[u8]> {
        let State::Playing { next, .. } = self.state else {
            return None;
        };
        let i = self.index(next);
        let slot = &self.slots[i];
        if !slot.used || slot.ts != next {
            return None;
        }
        let off = i * self.max_payload;
        Some(&self.data[off..off + slot.len])
    }

    /// Number of packets buffered.
    pub fn len(&self) -> usize {
        self.buffered
    }

    /// Whether no packet is buffered.
    pub fn is_empty(&self) -> bool {
        self.buffered == 0
    }

    /// Cumulative counters.
    pub fn counters(&self) -> JitterCounters {
        self.counters
    }

    fn restart(&mut self) {
        for s in &mut self.slots {
            s.used = false;
        }
        for b in &mut self.buckets {
            b.used = false;
        }
        self.buffered = 0;
        self.highest_ts = None;
        self.state = State::Buffering;
        self.empty_run = 0;
    }

    fn take(&mut self, ts: i64) {
        let i = self.index(ts);
        if self.slots[i].used && self.slots[i].ts <= ts {
            self.slots[i].used = false;
            self.buffered -= 1;
        }
    }

    fn index(&self, ts: i64) -> usize {
        let k = (ts - self.base_ts).div_euclid(self.frame);
        k.rem_euclid(self.slots.len() as i64) as usize
    }

    fn lowest_buffered(&self) -> Option<i64> {
        self.slots.iter().filter(|s| s.used).map(|s| s.ts).min()
    }

    fn record_transit(&mut self, arrival: u64, transit: i64) {
        let id = arrival / self.bucket_len;
        let b = &mut self.buckets[(id % WINDOW_BUCKETS as u64) as usize];
        if !b.used || b.id != id {
            *b = Bucket {
                id,
                min: transit,
                max: transit,
                used: true,
            };
        } else {
            b.min = b.min.min(transit);
            b.max = b.max.max(transit);
        }
        // Forget buckets older than the window.
        for b in &mut self.buckets {
            if b.used && b.id + (WINDOW_BUCKETS as u64) <= id {
                b.used = false;
            }
        }
    }

    fn window(&self) -> Option<(i64, i64)> {
        self.buckets
            .iter()
            .filter(|b| b.used)
            .fold(None, |acc, b| match acc {
                None => Some((b.min, b.max)),
                Some((lo, hi)) => Some((b.min.min(lo), b.max.max(hi))),
            })
    }

    fn target(&self) -> Option<i64> {
        let (min, max) = self.window()?;
        Some((max - min + self.frame / 2).clamp(self.min_delay, self.max_delay))
    }

    /// Desired `now - next` for the frame being played.
    fn goal_offset(&self) -> Option<i64> {
        let (min, _) = self.window()?;
        Some(min + self.target()?)
    }
}

/// Number of window buckets.
pub const WINDOW_BUCKETS: usize = 8;
/// Minimum ticks between two frames dropped to shrink the delay.
pub const SHRINK_EVERY: u32 = 8;

#[cfg(test)]
mod tests {
    use super::*;

    const F: u64 = 160;

    fn jb() -> JitterBuffer {
        JitterBuffer::new(JitterConfig::new(ClockRate::HZ_8000, 20)).unwrap()
    }

    #[test]
    fn the_last_played_payload_stays_readable_until_overwritten() {
        let mut jb = JitterBuffer::new(JitterConfig {
            slots: 4,
            max_delay_ms: 60,
            ..JitterConfig::new(ClockRate::HZ_8000, 20)
        })
        .unwrap();
        assert_eq!(jb.last_played(), None);
        let mut now = 0;
        for k in 0..3u32 {
            jb.push(u64::from(k) * F, 1, k as u16, k * F as u32, &[k as u8; 3])
                .unwrap();
        }
        let played = loop {
            if let Playout::Packet { payload, .. } = jb.pop(now) {
                break payload.to_vec();
            }
            now += F;
        };
        assert_eq!(jb.last_played(), Some(&played[..]));
        // Storing packets in the other slots keeps it; its own slot ends it.
        let k0 = u32::from(played[0]);
        let mut k = 3;
        while jb.last_played().is_some() {
            assert!(k < k0 + 8, "never overwritten");
            jb.push(now, 1, k as u16, k * F as u32, &[k as u8; 3])
                .unwrap();
            if jb.last_played().is_some() {
                assert_eq!(jb.last_played(), Some(&played[..]));
            }
            k += 1;
        }
        assert_eq!(k, k0 + 5);
    }

    /// Pops until the buffer starts playing and returns the played
    /// timestamps, or `C` / `E`, for `ticks` ticks starting at `now`.
    fn run(jb: &mut JitterBuffer, now: &mut u64, ticks: usize) -> Vec<String> {
        (0..ticks)
            .map(|_| {
                let r = match jb.pop(*now) {
                    Playout::Packet { timestamp, .. } => timestamp.to_string(),
                    Playout::Conceal => "C".into(),
                    Playout::Empty => "E".into(),
                };
                *now += F;
                r
            })
            .collect()
    }

    #[test]
    fn peek_next_shows_the_packet_after_a_loss() {
        let mut b = jb();
        let mut now = 0;
        for k in [0u64, 1, 3, 4, 5] {
            b.push(k * F, 1, k as u16, (k * F) as u32, &[k as u8])
                .unwrap();
        }
        let mut seen = Vec::new();
        for _ in 0..8 {
            let played = match b.pop(now) {
                Playout::Packet { timestamp, .. } => timestamp.to_string(),
                Playout::Conceal => "C".into(),
                Playout::Empty => "E".into(),
            };
            if played == "C" {
                seen.push(b.peek_next().map(<[u8]>::to_vec));
            }
            now += F;
        }
        // Frame 2 is lost; frame 3 (payload [3]) is next.
        assert_eq!(seen.first(), Some(&Some(vec![3])));
    }

    #[test]
    fn in_order_stream_plays_after_min_delay() {
        let mut b = jb();
        let mut now = 0;
        let mut out = Vec::new();
        for k in 0..6u64 {
            b.push(now, 1, k as u16, (k * F) as u32, &[k as u8])
                .unwrap();
            out.extend(run(&mut b, &mut now, 1));
        }
        assert_eq!(out, ["E", "0", "160", "320", "480", "640"]);
        assert_eq!(b.target_delay().as_millis(), 20);
    }

    #[test]
    fn reorder_duplicate_loss_and_late() {
        let mut b = jb();
        let mut now = 0;
        let push = |b: &mut JitterBuffer, now: u64, k: u64| {
            b.push(now, 7, k as u16, (k * F) as u32, &[1, 2, 3])
                .unwrap()
        };
        assert_eq!(push(&mut b, now, 0), PushOutcome::Stored);
        assert_eq!(push(&mut b, now, 2), PushOutcome::Stored);
        assert_eq!(push(&mut b, now, 1), PushOutcome::Stored);
        assert_eq!(push(&mut b, now, 1), PushOutcome::Duplicate);
        assert_eq!(push(&mut b, now, 4), PushOutcome::Stored); // 3 is lost
        let out = run(&mut b, &mut now, 6);
        assert_eq!(out[..6], ["E", "0", "160", "320", "C", "640"]);
        assert_eq!(push(&mut b, now, 3), PushOutcome::Late);
        let c = b.counters();
        assert_eq!((c.duplicates, c.late, c.played), (1, 1, 4));
        assert!(c.concealed >= 1);
    }

    #[test]
    fn sequence_and_timestamp_wrap() {
        let mut b = jb();
        let mut now = 0;
        let ts0 = u32::MAX - 2 * F as u32 + 1;
        let mut played = Vec::new();
        for k in 0..8u64 {
            let ts = ts0.wrapping_add((k * F) as u32);
            let seq = 65_533u16.wrapping_add(k as u16);
            b.push(now, 9, seq, ts, &[k as u8]).unwrap();
            if let Playout::Packet { payload, seq, .. } = b.pop(now) {
                played.push((payload[0], seq));
            }
            now += F;
        }
        assert_eq!(
            played.iter().map(|p| p.0).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4, 5, 6]
        );
        assert_eq!(played[3].1, 0);
    }

    #[test]
    fn ssrc_change_and_timestamp_jump_restart() {
        let mut b = jb();
        let mut now = 0;
        for k in 0..5u64 {
            b.push(now, 1, k as u16, (k * F) as u32, &[0]).unwrap();
            b.pop(now);
            now += F;
        }
        // New SSRC with unrelated numbering.
        for k in 0..5u64 {
            b.push(now, 2, 9000 + k as u16, 77_777 + (k * F) as u32, &[1])
                .unwrap();
            b.pop(now);
            now += F;
        }
        assert_eq!(b.counters().resyncs, 1);
        assert!(b.counters().played >= 7);
        // Same SSRC, timestamp jumps forward by an hour.
        let played = b.counters().played;
        for k in 0..5u64 {
            b.push(
                now,
                2,
                9005 + k as u16,
                77_777 + 28_800_000 + (k * F) as u32,
                &[2],
            )
            .unwrap();
            b.pop(now);
            now += F;
        }
        assert_eq!(b.counters().resyncs, 2);
        assert!(b.counters().played >= played + 3);
    }

    #[test]
    fn pause_rebuffers() {
        let mut b = jb();
        let mut now = 0;
        for k in 0..3u64 {
            b.push(now, 1, k as u16, (k * F) as u32, &[0]).unwrap();
            b.pop(now);
            now += F;
        }
        let out = run(&mut b, &mut now, 12);
        assert!(
            out.ends_with(&["E".to_string(), "E".to_string()]),
            "{out:?}"
        );
        // Resumes with the timestamp continuing from where the sender was.
        b.push(now, 1, 3, 100 * F as u32, &[0]).unwrap();
        let out = run(&mut b, &mut now, 2);
        assert!(out.contains(&(100 * F).to_string()), "{out:?}");
    }

    #[test]
    fn rejects_bad_input() {
        let mut b = jb();
        assert_eq!(
            b.push(0, 1, 0, 0, &[0; 1501]),
            Err(JitterError::PayloadTooLarge)
        );
        let mut c = JitterConfig::new(ClockRate::HZ_8000, 20);
        c.slots = 5;
        assert_eq!(JitterBuffer::new(c).err(), Some(JitterError::InvalidConfig));
        c.slots = 64;
        c.frame_ms = 0;
        assert_eq!(JitterBuffer::new(c).err(), Some(JitterError::InvalidConfig));
    }
}
