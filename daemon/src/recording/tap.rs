//! The shard side of a recording: [`Tap`] copies each 20 ms frame into a
//! preallocated bounded ring that a writer thread drains.
//!
//! A shard never waits for a writer. Frames travel in chunks of up to
//! [`CHUNK_FRAMES`] (100 ms): [`Tap::push`] writes the frame's samples
//! into the chunk the tap holds (decoding G.711 straight into it; only the
//! samples used are touched, and a silent channel takes none), and a full
//! chunk goes to the writer through a lock-free queue; the writer hands
//! the buffer back when done. So the shard touches the queues shared with
//! the writer once per 100 ms, not once per frame. All the buffers were
//! allocated when the recording started. When none is free the frame is
//! dropped and counted; the writer later sees the missing tick and writes
//! silence in its place, so the file's timeline (and duration) is kept.
//!
//! This file uses only `std` and `crossbeam-queue`, so the no-allocation
//! test (`daemon/tests/recording_tap_no_alloc.rs`) can compile it on its own
//! with a counting global allocator.

use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crossbeam_queue::ArrayQueue;

/// Samples in one 20 ms frame at the highest rate a leg uses (48 kHz).
pub(crate) const MAX_FRAME_SAMPLES: usize = 960;

/// Frames a chunk holds at most: 100 ms, so a frame reaches its writer at
/// most that much later than it would one by one.
pub(crate) const CHUNK_FRAMES: usize = 5;

/// Samples a chunk holds, both channels of all its frames: five 8 kHz
/// frames, three at 16 kHz, one at 48 kHz (a silent channel takes none).
const CHUNK_SAMPLES: usize = 2 * MAX_FRAME_SAMPLES;

/// Where one frame sits in its chunk.
#[derive(Clone, Copy, Debug)]
struct Header {
    tick: u64,
    rate: u32,
    sent_rate: u32,
    /// First sample of the frame in the chunk.
    start: u16,
    len: u16,
    sent_len: u16,
    has_received: bool,
    has_sent: bool,
}

const NO_HEADER: Header = Header {
    tick: 0,
    rate: 8000,
    sent_rate: 8000,
    start: 0,
    len: 0,
    sent_len: 0,
    has_received: false,
    has_sent: false,
};

/// Up to [`CHUNK_FRAMES`] consecutive frames, stored inline.
#[derive(Debug)]
pub(crate) struct Chunk {
    headers: [Header; CHUNK_FRAMES],
    /// Frames in the chunk.
    count: usize,
    /// Samples used.
    used: usize,
    samples: [i16; CHUNK_SAMPLES],
}

impl Chunk {
    /// An empty chunk (allocated once per ring slot).
    fn empty() -> Box<Self> {
        Box::new(Self {
            headers: [NO_HEADER; CHUNK_FRAMES],
            count: 0,
            used: 0,
            samples: [0; CHUNK_SAMPLES],
        })
    }

    /// Its frames, oldest first.
    pub(crate) fn frames(&self) -> impl Iterator<Item = Frame<'_>> {
        self.headers[..self.count].iter().map(|h| {
            let (start, len, sent_len) = (
                usize::from(h.start),
                usize::from(h.len),
                usize::from(h.sent_len),
            );
            let sent_start = start + if h.has_received { len } else { 0 };
            Frame {
                tick: h.tick,
                rate: h.rate,
                len: h.len,
                sent_rate: h.sent_rate,
                received: h.has_received.then(|| &self.samples[start..start + len]),
                sent: h
                    .has_sent
                    .then(|| &self.samples[sent_start..sent_start + sent_len]),
            }
        })
    }

    /// Frames in the chunk.
    pub(crate) fn len(&self) -> usize {
        self.count
    }
}

/// One frame as the shard handed it over.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Frame<'a> {
    /// Media clock tick (20 ms apart).
    pub(crate) tick: u64,
    /// PCM rate of the received channel, in Hz.
    pub(crate) rate: u32,
    /// Samples in the received channel (one 20 ms frame at `rate`).
    pub(crate) len: u16,
    /// PCM rate of the sent channel (the leg's source may run at another
    /// rate than the leg itself), in Hz.
    pub(crate) sent_rate: u32,
    received: Option<&'a [i16]>,
    sent: Option<&'a [i16]>,
}

impl<'a> Frame<'a> {
    /// What the party said, or `None` for silence.
    pub(crate) fn received(&self) -> Option<&'a [i16]> {
        self.received
    }

    /// What the party heard, or `None` for silence.
    pub(crate) fn sent(&self) -> Option<&'a [i16]> {
        self.sent
    }
}

/// One channel of a frame as the shard has it: samples, or codes to decode
/// (the decoding then writes straight into the ring's buffer).
pub(crate) trait Channel {
    /// Samples in the channel.
    fn len(&self) -> usize;

    /// Writes the samples into `out`, exactly [`Channel::len`] long.
    fn write_to(&self, out: &mut [i16]);
}

impl Channel for &[i16] {
    fn len(&self) -> usize {
        <[i16]>::len(self)
    }

    fn write_to(&self, out: &mut [i16]) {
        out.copy_from_slice(self);
    }
}

/// Chunks kept on the hot free list: a few more than a writer turn
/// (200 ms, 2 chunks) leaves in flight. The rest of a ring's chunks wait
/// on the spare list and are taken only when a writer falls behind, so in
/// steady state a recording cycles through a few cache-warm buffers
/// instead of all of them.
const HOT_CHUNKS: usize = 6;

/// State shared by the tap and the writer of one recording.
#[derive(Debug)]
pub(crate) struct TapShared {
    /// Chunks pushed and not yet drained.
    ring: ArrayQueue<Box<Chunk>>,
    /// Chunks free for the next frames, taken first (see [`HOT_CHUNKS`]).
    free: ArrayQueue<Box<Chunk>>,
    /// Free chunks beyond the hot ones, for a writer that falls behind.
    spare: ArrayQueue<Box<Chunk>>,
    /// Frames dropped because no chunk was free.
    overflowed: AtomicU64,
    /// Frames rejected as malformed (rate or length out of range).
    rejected: AtomicU64,
    /// One past the latest tick pushed, taken or not (0: none yet), so
    /// frames lost at the very end still count on the timeline.
    end_tick: AtomicU64,
    /// Set by [`Tap::stop`] or when the [`Tap`] is dropped: no frame
    /// follows.
    ended: AtomicBool,
}

impl TapShared {
    /// A ring of `chunks` chunks (at least 2), allocated now: each holds
    /// 100 ms of 8 kHz audio, 60 ms at 16 kHz, 20 ms at 48 kHz.
    pub(crate) fn new(chunks: usize) -> Arc<Self> {
        let capacity = chunks.max(2);
        let (free, spare) = (ArrayQueue::new(capacity), ArrayQueue::new(capacity));
        for i in 0..capacity {
            // Cannot fail: each queue has room for every chunk.
            let _ = if i < HOT_CHUNKS { &free } else { &spare }.push(Chunk::empty());
        }
        Arc::new(Self {
            ring: ArrayQueue::new(capacity),
            free,
            spare,
            overflowed: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            end_tick: AtomicU64::new(0),
            ended: AtomicBool::new(false),
        })
    }

    /// The oldest chunk not yet drained; its buffer goes back to the free
    /// list when the returned guard is dropped.
    pub(crate) fn pop(&self) -> Option<Popped<'_>> {
        self.ring.pop().map(|chunk| Popped {
            chunk: Some(chunk),
            shared: self,
        })
    }

    /// A free chunk, emptied.
    fn take_free(&self) -> Option<Box<Chunk>> {
        let mut chunk = self.free.pop().or_else(|| self.spare.pop())?;
        chunk.count = 0;
        chunk.used = 0;
        Some(chunk)
    }

    /// Gives a chunk back to the free lists.
    fn recycle(&self, chunk: Box<Chunk>) {
        // Cannot fail: every chunk is in exactly one of the queues, a
        // guard or a tap, and each queue has room for all of them.
        let _ = if self.free.len() < HOT_CHUNKS {
            &self.free
        } else {
            &self.spare
        }
        .push(chunk);
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

/// A chunk taken from the ring: reads as a [`Chunk`], and gives its
/// buffer back to the free list when dropped.
#[derive(Debug)]
pub(crate) struct Popped<'a> {
    /// Always `Some` until dropped.
    chunk: Option<Box<Chunk>>,
    shared: &'a TapShared,
}

impl Deref for Popped<'_> {
    type Target = Chunk;

    fn deref(&self) -> &Chunk {
        // `chunk` is taken only in drop; an empty chunk is never seen.
        self.chunk.as_deref().unwrap_or(&EMPTY)
    }
}

impl Drop for Popped<'_> {
    fn drop(&mut self) {
        if let Some(chunk) = self.chunk.take() {
            self.shared.recycle(chunk);
        }
    }
}

/// What a [`Popped`] would read after its buffer went back (never seen).
static EMPTY: Chunk = Chunk {
    headers: [NO_HEADER; CHUNK_FRAMES],
    count: 0,
    used: 0,
    samples: [0; CHUNK_SAMPLES],
};

/// The shard's handle on a recording, holding the chunk being filled.
/// Dropping it ends the recording as [`Tap::stop`] does (a call that ends
/// without a StopRecording still gets a finalized file).
#[derive(Debug)]
pub(crate) struct Tap {
    shared: Arc<TapShared>,
    /// The chunk being filled.
    current: Option<Box<Chunk>>,
}

impl Tap {
    /// A tap feeding `shared`.
    pub(crate) fn new(shared: Arc<TapShared>) -> Self {
        Self {
            shared,
            current: None,
        }
    }

    /// Copies one 20 ms frame at `rate` Hz: `received` is what the party
    /// said, `sent` what it heard (`None`: silence). Never blocks and never
    /// allocates. Returns false when the frame was not taken: no chunk is
    /// free (counted; the writer writes silence for it), the recording has
    /// stopped, or the frame is malformed (a rate whose 20 ms is not a
    /// whole number of samples up to 960, or a channel that is not exactly
    /// one frame long).
    pub(crate) fn push(
        &mut self,
        tick: u64,
        rate: u32,
        received: Option<&[i16]>,
        sent: Option<&[i16]>,
    ) -> bool {
        self.push_rates(tick, (rate, received), (rate, sent))
    }

    /// As [`push`](Self::push), each channel at its own rate: what the
    /// party said at the leg's rate, what it heard at its source's.
    pub(crate) fn push_rates<R: Channel, S: Channel>(
        &mut self,
        tick: u64,
        (rate, received): (u32, Option<R>),
        (sent_rate, sent): (u32, Option<S>),
    ) -> bool {
        let shared = &*self.shared;
        if shared.ended.load(Ordering::Relaxed) {
            return false;
        }
        let (len, sent_len) = (frame_len(rate), frame_len(sent_rate));
        if len == 0
            || sent_len == 0
            || received.as_ref().is_some_and(|c| c.len() != len)
            || sent.as_ref().is_some_and(|c| c.len() != sent_len)
        {
            shared.rejected.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        // One shard pushes, in tick order: a plain store, no atomic
        // read-modify-write per frame (a late tick never moves it back).
        let end = tick.saturating_add(1);
        if end > shared.end_tick.load(Ordering::Relaxed) {
            shared.end_tick.store(end, Ordering::Release);
        }
        let (has_received, has_sent) = (received.is_some(), sent.is_some());
        let need = if has_received { len } else { 0 } + if has_sent { sent_len } else { 0 };
        if self
            .current
            .as_ref()
            .is_some_and(|c| c.count == CHUNK_FRAMES || c.used + need > CHUNK_SAMPLES)
        {
            self.flush();
        }
        if self.current.is_none() {
            self.current = self.shared.take_free();
        }
        let Some(chunk) = self.current.as_mut() else {
            self.shared.overflowed.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        let start = chunk.used;
        let mut at = start;
        if let Some(r) = received {
            r.write_to(&mut chunk.samples[at..at + len]);
            at += len;
        }
        if let Some(s) = sent {
            s.write_to(&mut chunk.samples[at..at + sent_len]);
            at += sent_len;
        }
        chunk.headers[chunk.count] = Header {
            tick,
            rate,
            sent_rate,
            // Below CHUNK_SAMPLES and MAX_FRAME_SAMPLES: fit in u16.
            start: start as u16,
            len: len as u16,
            sent_len: sent_len as u16,
            has_received,
            has_sent,
        };
        chunk.count += 1;
        chunk.used = at;
        if chunk.count == CHUNK_FRAMES {
            self.flush();
        }
        true
    }

    /// Hands the chunk being filled to the writer.
    fn flush(&mut self) {
        if let Some(chunk) = self.current.take() {
            if chunk.count == 0 {
                self.shared.recycle(chunk);
            } else if let Err(chunk) = self.shared.ring.push(chunk) {
                // Cannot happen (the ring has room for every chunk); were
                // it to, the frames count as lost.
                self.shared
                    .overflowed
                    .fetch_add(chunk.count as u64, Ordering::Relaxed);
                self.shared.recycle(chunk);
            }
        }
    }

    /// Ends the recording: what is held goes to the writer, which drains
    /// it, finalizes the file and reports Stopped. Later pushes are
    /// refused.
    pub(crate) fn stop(&mut self) {
        self.flush();
        self.shared.end();
    }

    /// Frames dropped so far because no chunk was free.
    #[cfg(test)]
    pub(crate) fn overflowed(&self) -> u64 {
        self.shared.overflowed()
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.stop();
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
