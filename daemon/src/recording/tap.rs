//! The shard side of a recording: [`Tap`] copies each 20 ms frame into a
//! preallocated bounded ring that a writer thread drains.
//!
//! A shard never waits for a writer: [`Tap::push`] is a copy into a slot of
//! a lock-free queue whose memory was allocated when the recording started.
//! When the ring is full the frame is dropped and counted; the writer later
//! sees the missing tick and writes silence in its place, so the file's
//! timeline (and duration) is kept.
//!
//! This file uses only `std` and `crossbeam-queue`, so the no-allocation
//! test (`daemon/tests/recording_tap_no_alloc.rs`) can compile it on its own
//! with a counting global allocator.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crossbeam_queue::ArrayQueue;

/// Samples in one 20 ms frame at the highest rate a leg uses (48 kHz).
pub(crate) const MAX_FRAME_SAMPLES: usize = 960;

/// One frame as the shard handed it over, stored inline (no heap).
#[derive(Clone, Debug)]
pub(crate) struct FrameBuf {
    /// Media clock tick (20 ms apart).
    pub(crate) tick: u64,
    /// PCM rate of the received channel, in Hz.
    pub(crate) rate: u32,
    /// Samples used in the received channel (one 20 ms frame at `rate`).
    pub(crate) len: u16,
    /// PCM rate of the sent channel (the leg's source may run at another
    /// rate than the leg itself), in Hz.
    pub(crate) sent_rate: u32,
    /// Samples used in the sent channel.
    pub(crate) sent_len: u16,
    /// Whether `received` holds audio (false: silence).
    pub(crate) has_received: bool,
    /// Whether `sent` holds audio (false: silence).
    pub(crate) has_sent: bool,
    /// What the party said.
    pub(crate) received: [i16; MAX_FRAME_SAMPLES],
    /// What the party heard.
    pub(crate) sent: [i16; MAX_FRAME_SAMPLES],
}

impl FrameBuf {
    /// The received channel, or `None` for silence.
    pub(crate) fn received(&self) -> Option<&[i16]> {
        self.has_received
            .then(|| &self.received[..usize::from(self.len)])
    }

    /// The sent channel, or `None` for silence.
    pub(crate) fn sent(&self) -> Option<&[i16]> {
        self.has_sent
            .then(|| &self.sent[..usize::from(self.sent_len)])
    }
}

/// State shared by the taps and the writer of one recording.
#[derive(Debug)]
pub(crate) struct TapShared {
    /// Frames pushed and not yet drained.
    ring: ArrayQueue<FrameBuf>,
    /// Frames dropped because the ring was full.
    overflowed: AtomicU64,
    /// Frames rejected as malformed (rate or length out of range).
    rejected: AtomicU64,
    /// One past the latest tick pushed, taken or not (0: none yet), so
    /// frames lost at the very end still count on the timeline.
    end_tick: AtomicU64,
    /// Set by [`Tap::stop`] or when the last [`Tap`] is dropped: no frame
    /// follows.
    ended: AtomicBool,
}

impl TapShared {
    /// A ring of `capacity` frames (at least 1), allocated now.
    pub(crate) fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            ring: ArrayQueue::new(capacity.max(1)),
            overflowed: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            end_tick: AtomicU64::new(0),
            ended: AtomicBool::new(false),
        })
    }

    /// The oldest frame not yet drained.
    pub(crate) fn pop(&self) -> Option<FrameBuf> {
        self.ring.pop()
    }

    /// Frames dropped so far because the ring was full.
    pub(crate) fn overflowed(&self) -> u64 {
        self.overflowed.load(Ordering::Relaxed)
    }

    /// Frames rejected so far as malformed.
    pub(crate) fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// One past the latest tick a tap offered (0: none).
    pub(crate) fn end_tick(&self) -> u64 {
        self.end_tick.load(Ordering::Acquire)
    }

    /// Whether the recording has ended. Frames pushed before the end are
    /// visible to a [`pop`](Self::pop) after this returns true.
    pub(crate) fn is_ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    /// Marks the end (as [`Tap::stop`] does).
    pub(crate) fn end(&self) {
        self.ended.store(true, Ordering::Release);
    }
}

/// The shard's handle on a recording. Cloning shares the recording; when
/// the last clone is dropped the recording ends as if [`Tap::stop`] had
/// been called (a call that ends without a StopRecording still gets a
/// finalized file).
#[derive(Clone, Debug)]
pub(crate) struct Tap {
    handle: Arc<Handle>,
}

/// Ends the recording when the last [`Tap`] goes.
#[derive(Debug)]
struct Handle {
    shared: Arc<TapShared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.end();
    }
}

impl Tap {
    /// A tap feeding `shared`.
    pub(crate) fn new(shared: Arc<TapShared>) -> Self {
        Self {
            handle: Arc::new(Handle { shared }),
        }
    }

    /// Copies one 20 ms frame at `rate` Hz into the ring: `received` is
    /// what the party said, `sent` what it heard (`None`: silence). Never
    /// blocks and never allocates. Returns false when the frame was not
    /// taken: the ring is full (counted; the writer writes silence for
    /// it), the recording has stopped, or the frame is malformed (a rate
    /// whose 20 ms is not a whole number of samples up to 960, or a
    /// channel that is not exactly one frame long).
    pub(crate) fn push(
        &self,
        tick: u64,
        rate: u32,
        received: Option<&[i16]>,
        sent: Option<&[i16]>,
    ) -> bool {
        self.push_rates(tick, (rate, received), (rate, sent))
    }

    /// As [`push`](Self::push), each channel at its own rate: what the
    /// party said at the leg's rate, what it heard at its source's.
    pub(crate) fn push_rates(
        &self,
        tick: u64,
        (rate, received): (u32, Option<&[i16]>),
        (sent_rate, sent): (u32, Option<&[i16]>),
    ) -> bool {
        let shared = &self.handle.shared;
        if shared.ended.load(Ordering::Relaxed) {
            return false;
        }
        let (len, sent_len) = (frame_len(rate), frame_len(sent_rate));
        let fits = |channel: Option<&[i16]>, len: usize| channel.is_none_or(|c| c.len() == len);
        if len == 0 || sent_len == 0 || !fits(received, len) || !fits(sent, sent_len) {
            shared.rejected.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        shared
            .end_tick
            .fetch_max(tick.saturating_add(1), Ordering::AcqRel);
        let mut frame = FrameBuf {
            tick,
            rate,
            // At most MAX_FRAME_SAMPLES (frame_len's bound): fits in u16.
            len: len as u16,
            sent_rate,
            sent_len: sent_len as u16,
            has_received: received.is_some(),
            has_sent: sent.is_some(),
            received: [0; MAX_FRAME_SAMPLES],
            sent: [0; MAX_FRAME_SAMPLES],
        };
        if let Some(r) = received {
            frame.received[..len].copy_from_slice(r);
        }
        if let Some(s) = sent {
            frame.sent[..sent_len].copy_from_slice(s);
        }
        match shared.ring.push(frame) {
            Ok(()) => true,
            Err(_) => {
                shared.overflowed.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Ends the recording: the writer drains what was pushed, finalizes
    /// the file and reports Stopped. Later pushes are refused.
    pub(crate) fn stop(&self) {
        self.handle.shared.end();
    }

    /// Frames dropped so far because the ring was full.
    #[cfg(test)]
    pub(crate) fn overflowed(&self) -> u64 {
        self.handle.shared.overflowed()
    }
}

/// Samples in 20 ms at `rate` Hz, or 0 when that is not a whole number of
/// samples between 1 and [`MAX_FRAME_SAMPLES`].
pub(crate) fn frame_len(rate: u32) -> usize {
    if rate == 0 || !rate.is_multiple_of(50) || rate / 50 > MAX_FRAME_SAMPLES as u32 {
        return 0;
    }
    (rate / 50) as usize
}
