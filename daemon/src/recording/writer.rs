//! Writer threads: each owns some active recordings, drains their rings
//! every poll interval, rebuilds the timeline (missing ticks become
//! silence), resamples to the file's rate, mixes or interleaves, and hands
//! the samples to the file.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use legato_dsp::resample::{Converter, Resampler};
use legato_dsp::time::ClockRate;

use super::mp3::Mp3Writer;
use super::tap::{Frame, MAX_FRAME_SAMPLES, TapShared};
use super::wav::WavWriter;
use super::{EventSink, RecordingEvent};

/// Where a recording's samples go.
#[derive(Debug)]
pub(super) enum Sink {
    /// A WAV file.
    Wav(WavWriter),
    /// An MP3 file.
    Mp3(Mp3Writer),
}

impl Sink {
    fn write(&mut self, samples: &[i16]) -> std::io::Result<()> {
        match self {
            Self::Wav(w) => w.write(samples),
            Self::Mp3(m) => m.write(samples),
        }
    }

    fn checkpoint(&mut self) -> std::io::Result<()> {
        match self {
            Self::Wav(w) => w.checkpoint(),
            // Frames are written as LAME emits them; nothing to update.
            Self::Mp3(_) => Ok(()),
        }
    }

    fn len(&self) -> u64 {
        match self {
            Self::Wav(w) => w.len(),
            Self::Mp3(m) => m.len(),
        }
    }

    fn finish(self) -> std::io::Result<u64> {
        match self {
            Self::Wav(w) => w.finish(),
            Self::Mp3(m) => m.finish(),
        }
    }
}

/// One recording as its writer thread sees it.
#[derive(Debug)]
pub(super) struct Active {
    id: String,
    path: PathBuf,
    shared: Arc<TapShared>,
    /// `None` once writing failed (the file was finalized then).
    sink: Option<Sink>,
    /// File length when the sink was given up.
    final_len: u64,
    stereo: bool,
    /// The file's sample rate.
    rate: u32,
    /// Input rate the resamplers are built for (0: none yet).
    in_rate: u32,
    /// One per file channel.
    resamplers: Vec<Resample>,
    /// Brings the sent channel to the received one's rate when they
    /// differ (with the rate it was built for), and its output.
    align: Option<((u32, u32), Resample)>,
    aligned: Vec<i16>,
    /// This frame's sent channel taken from `aligned`, and the mono mix
    /// (both reused frame after frame).
    aligned_frame: Vec<i16>,
    mix: Vec<i16>,
    /// Tick of the first frame, and the next tick expected.
    first_tick: Option<u64>,
    next_tick: u64,
    /// Ticks the file covers so far (frames and gaps).
    ticks: u64,
    /// Samples per channel placed on the timeline.
    samples: u64,
    /// Samples per channel the sink took without error.
    written: u64,
    /// Per-channel resampler output not yet written.
    pending: Vec<Vec<i16>>,
    /// Interleaved samples for the sink.
    interleaved: Vec<i16>,
    /// Overflows already reported, and when last.
    overflow_reported: u64,
    overflow_at: Option<Instant>,
    /// Frames dropped for arriving with a tick already covered.
    late: u64,
    last_checkpoint: Instant,
}

impl Active {
    /// A recording writing to `sink`.
    pub(super) fn new(
        id: String,
        path: PathBuf,
        shared: Arc<TapShared>,
        sink: Sink,
        stereo: bool,
        rate: u32,
    ) -> Self {
        let channels = if stereo { 2 } else { 1 };
        Self {
            id,
            path,
            shared,
            final_len: sink.len(),
            sink: Some(sink),
            stereo,
            rate,
            in_rate: 0,
            resamplers: Vec::new(),
            align: None,
            aligned: Vec::new(),
            aligned_frame: Vec::with_capacity(MAX_FRAME_SAMPLES),
            mix: Vec::with_capacity(MAX_FRAME_SAMPLES),
            first_tick: None,
            next_tick: 0,
            ticks: 0,
            samples: 0,
            written: 0,
            pending: vec![Vec::new(); channels],
            interleaved: Vec::new(),
            overflow_reported: 0,
            overflow_at: None,
            late: 0,
            last_checkpoint: Instant::now(),
        }
    }

    /// Drains the ring (at most its capacity's worth, so a tap pushing
    /// without pause cannot hold the thread), writes, checkpoints when
    /// `checkpoint` has passed, reports overflow. Returns true when the
    /// recording has ended and everything it pushed is written (the caller
    /// then finalizes it).
    fn service(&mut self, now: Instant, checkpoint: Duration, events: &EventSink) -> bool {
        // Read before draining: frames pushed before the end are then seen.
        let ended = self.shared.is_ended();
        let shared = Arc::clone(&self.shared);
        let mut drained = 0;
        let mut empty = false;
        while drained < MAX_DRAIN {
            let Some(chunk) = shared.pop() else {
                empty = true;
                break;
            };
            for frame in chunk.frames() {
                self.frame(&frame, events);
            }
            drained += chunk.len();
        }
        // One write per turn for everything drained (a write per frame
        // cost a system call every 20 ms per recording).
        self.emit(events);
        self.report_overflow(now, events);
        if now.duration_since(self.last_checkpoint) >= checkpoint {
            self.last_checkpoint = now;
            if let Some(sink) = &mut self.sink
                && let Err(e) = sink.checkpoint()
            {
                self.fail(&e, events);
            }
        }
        ended && empty
    }

    /// Reports frames lost to overflow, at most once per second.
    fn report_overflow(&mut self, now: Instant, events: &EventSink) {
        let lost = self.shared.overflowed() - self.overflow_reported;
        if lost == 0 {
            return;
        }
        let due = self
            .overflow_at
            .is_none_or(|at| now.duration_since(at) >= Duration::from_secs(1));
        if !due {
            return;
        }
        self.overflow_reported += lost;
        self.overflow_at = Some(now);
        tracing::warn!(recording = %self.id, lost, "recording writer fell behind");
        events(RecordingEvent::Error {
            id: self.id.clone(),
            error: format!("the writer fell behind: {lost} frames written as silence"),
        });
    }

    /// Places one frame on the timeline.
    fn frame(&mut self, frame: &Frame<'_>, events: &EventSink) {
        if self.sink.is_none() {
            return;
        }
        if self.first_tick.is_none() {
            self.first_tick = Some(frame.tick);
            self.next_tick = frame.tick;
        }
        if frame.tick < self.next_tick {
            self.late += 1;
            return;
        }
        let gap = frame.tick - self.next_tick;
        if gap > 0 {
            self.silence(gap.min(MAX_GAP_TICKS), events);
            if gap > MAX_GAP_TICKS {
                events(RecordingEvent::Error {
                    id: self.id.clone(),
                    error: format!(
                        "the media clock jumped {gap} ticks; only {MAX_GAP_TICKS} ticks of silence were written"
                    ),
                });
            }
        }
        self.next_tick = frame.tick + 1;
        if frame.rate != self.in_rate {
            self.flush_resamplers();
            self.in_rate = frame.rate;
            let channels = self.pending.len();
            self.resamplers = (0..channels)
                .map(|_| Resample::new(frame.rate, self.rate))
                .collect();
        }
        let len = usize::from(frame.len);
        let zeros = &ZEROS[..len];
        let sent: Option<&[i16]> = match frame.sent() {
            Some(sent) if frame.sent_rate != frame.rate => {
                let key = (frame.sent_rate, frame.rate);
                if self.align.as_ref().map(|(k, _)| *k) != Some(key) {
                    self.align = Some((key, Resample::new(key.0, key.1)));
                    self.aligned.clear();
                }
                if let Some((_, align)) = self.align.as_mut() {
                    align.push(sent, &mut self.aligned);
                }
                // Exactly one frame, whatever the converter holds back
                // (zeros where it holds back more than it has).
                let n = self.aligned.len().min(len);
                self.aligned_frame.clear();
                self.aligned_frame.extend_from_slice(&self.aligned[..n]);
                self.aligned_frame.resize(len, 0);
                self.aligned.drain(..n);
                Some(&self.aligned_frame)
            }
            other => other,
        };
        if self.stereo {
            let inputs = [frame.received().unwrap_or(zeros), sent.unwrap_or(zeros)];
            for (c, resampler) in self.resamplers.iter_mut().enumerate() {
                resampler.push(inputs[c], &mut self.pending[c]);
            }
        } else {
            // The mix of both, built where the resampler takes it from.
            let mix = match (frame.received(), sent) {
                (Some(r), Some(s)) => {
                    self.mix.clear();
                    self.mix
                        .extend(r.iter().zip(s).map(|(&a, &b)| a.saturating_add(b)));
                    &self.mix[..]
                }
                (Some(only), None) | (None, Some(only)) => only,
                (None, None) => zeros,
            };
            if let Some(resampler) = self.resamplers.first_mut() {
                resampler.push(mix, &mut self.pending[0]);
            }
        }
        self.ticks += 1;
    }

    /// Writes `gap` ticks of silence at the file's rate (after flushing the
    /// resamplers, which are rebuilt at the next frame).
    fn silence(&mut self, gap: u64, events: &EventSink) {
        self.flush_resamplers();
        self.emit(events);
        self.in_rate = 0;
        self.ticks += gap;
        self.pad(events);
    }

    /// Writes zeros until the file covers `ticks` exactly.
    fn pad(&mut self, events: &EventSink) {
        let target = self.ticks * u64::from(self.rate) / 50;
        while self.samples < target && self.sink.is_some() {
            let n = (target - self.samples).min(SILENCE_CHUNK as u64) as usize;
            for p in &mut self.pending {
                p.resize(p.len() + n, 0);
            }
            self.emit(events);
        }
    }

    /// Runs what the resamplers still hold into `pending`.
    fn flush_resamplers(&mut self) {
        for (c, r) in self.resamplers.iter_mut().enumerate() {
            r.finish(&mut self.pending[c]);
        }
        self.resamplers.clear();
    }

    /// Writes the samples every channel has.
    fn emit(&mut self, events: &EventSink) {
        let n = self.pending.iter().map(Vec::len).min().unwrap_or(0);
        if n == 0 {
            return;
        }
        // Never past the timeline: a resampler's rounding may run a
        // sample ahead of it.
        let limit = (self.ticks * u64::from(self.rate) / 50).saturating_sub(self.samples);
        let n = n.min(limit as usize);
        self.interleaved.clear();
        if self.stereo {
            let (left, right) = (&self.pending[0][..n], &self.pending[1][..n]);
            self.interleaved
                .extend(left.iter().zip(right).flat_map(|(&l, &r)| [l, r]));
        } else {
            self.interleaved.extend_from_slice(&self.pending[0][..n]);
        }
        for p in &mut self.pending {
            p.drain(..n);
        }
        self.samples += n as u64;
        if let Some(sink) = &mut self.sink {
            match sink.write(&self.interleaved) {
                Ok(()) => self.written += n as u64,
                Err(e) => {
                    // A WAV keeps the pieces written before the error.
                    if let Sink::Wav(w) = sink {
                        let channels = self.pending.len().max(1) as u64;
                        self.written = (w.len() - super::wav::HEADER_LEN) / 2 / channels;
                    }
                    self.fail(&e, events);
                }
            }
        }
    }

    /// Gives up writing after `error`: finalizes what was written (the
    /// file stays valid) and reports the error. Stopped follows when the
    /// recording ends.
    fn fail(&mut self, error: &std::io::Error, events: &EventSink) {
        let Some(sink) = self.sink.take() else {
            return;
        };
        self.final_len = sink.len();
        tracing::warn!(recording = %self.id, path = %self.path.display(), %error, "recording write failed");
        if let Ok(len) = sink.finish() {
            self.final_len = len;
        }
        events(RecordingEvent::Error {
            id: self.id.clone(),
            error: format!(
                "writing {} failed: {error}; the recording keeps what was written",
                self.path.display()
            ),
        });
    }

    /// Ends the file: the resamplers' tails, silence up to the last tick,
    /// final header or flush. Reports Stopped (and an error first if the
    /// end itself fails).
    fn finalize(mut self, events: &EventSink) {
        // Whatever is still in the ring (a shutdown) goes in first.
        let shared = Arc::clone(&self.shared);
        while let Some(chunk) = shared.pop() {
            for frame in chunk.frames() {
                self.frame(&frame, events);
            }
        }
        self.report_overflow(Instant::now(), events);
        // Frames lost to overflow at the very end still take their time.
        let end = self.shared.end_tick();
        if self.first_tick.is_some() && end > self.next_tick && self.sink.is_some() {
            let gap = (end - self.next_tick).min(MAX_GAP_TICKS);
            self.next_tick = end;
            self.silence(gap, events);
        }
        self.flush_resamplers();
        self.emit(events);
        self.pad(events);
        let bytes = match self.sink.take() {
            Some(sink) => {
                let len = sink.len();
                match sink.finish() {
                    Ok(len) => len,
                    Err(e) => {
                        events(RecordingEvent::Error {
                            id: self.id.clone(),
                            error: format!("finishing {} failed: {e}", self.path.display()),
                        });
                        len
                    }
                }
            }
            None => self.final_len,
        };
        if self.late > 0 {
            tracing::debug!(recording = %self.id, late = self.late, "frames dropped for repeating a tick");
        }
        let rejected = self.shared.rejected();
        if rejected > 0 {
            tracing::warn!(recording = %self.id, rejected, "malformed frames refused by the tap");
        }
        // What the file holds: every tick from the first to the last,
        // unless a write failed.
        let rate = u64::from(self.rate.max(1));
        events(RecordingEvent::Stopped {
            id: self.id,
            path: self.path,
            duration_ms: (self.written * 1000 + rate / 2) / rate,
            bytes,
        });
    }
}

/// A resampler for one channel.
#[derive(Debug)]
enum Resample {
    /// Same rate: a copy.
    Copy,
    /// Rates a small ratio apart (8, 16, 24, 32, 48 kHz): one output
    /// frame per input frame, no allocation.
    Fixed(Box<Resampler>, Vec<i16>),
    /// Any other pair (a file at 11.025, 22.05 or 44.1 kHz).
    Stream(Box<Converter>),
}

impl Resample {
    fn new(from: u32, to: u32) -> Self {
        if from == to {
            return Self::Copy;
        }
        let fixed = ClockRate::new(from)
            .zip(ClockRate::new(to))
            .and_then(|(f, t)| Resampler::new(f, t, 20).ok());
        if let Some(r) = fixed {
            let out = vec![0; r.output_len()];
            return Self::Fixed(Box::new(r), out);
        }
        match Converter::new(from, to) {
            Ok(c) => Self::Stream(Box::new(c)),
            // Rates are validated at start (file) and by the tap (input,
            // 50 to 48 000 Hz), all within the converter's range.
            Err(_) => Self::Copy,
        }
    }

    fn push(&mut self, input: &[i16], out: &mut Vec<i16>) {
        match self {
            Self::Copy => out.extend_from_slice(input),
            Self::Fixed(r, buf) => match r.process(input, buf) {
                Ok(n) => out.extend_from_slice(&buf[..n]),
                // Lengths are checked by the tap; keep the timeline anyway.
                Err(_) => out.resize(out.len() + buf.len(), 0),
            },
            Self::Stream(c) => c.push(input, out),
        }
    }

    fn finish(&mut self, out: &mut Vec<i16>) {
        if let Self::Stream(c) = self {
            c.finish(out);
        }
    }
}

/// Messages to a writer thread.
#[derive(Debug)]
pub(super) enum Command {
    /// Start writing this recording.
    Add(Box<Active>),
}

/// Timing of a writer thread.
#[derive(Clone, Copy, Debug)]
pub(super) struct Timing {
    /// How often the rings are drained.
    pub(super) poll: Duration,
    /// How often WAV headers are brought up to date.
    pub(super) checkpoint: Duration,
}

/// A writer thread's loop: takes recordings from `commands`, services them
/// every `timing.poll`, finalizes those that end. When `commands` closes
/// (the daemon shuts down) every recording is drained and finalized.
pub(super) fn run(
    commands: Receiver<Command>,
    timing: Timing,
    events: EventSink,
    load: Arc<AtomicUsize>,
) {
    let mut active: Vec<Active> = Vec::new();
    let mut next = Instant::now() + timing.poll;
    let mut closed = false;
    while !closed {
        let wait = next.saturating_duration_since(Instant::now());
        match commands.recv_timeout(wait) {
            Ok(Command::Add(a)) => {
                active.push(*a);
                continue;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => closed = true,
        }
        let now = Instant::now();
        next = now + timing.poll;
        let mut i = 0;
        while i < active.len() {
            if active[i].service(now, timing.checkpoint, &events) {
                active.swap_remove(i).finalize(&events);
                load.fetch_sub(1, Ordering::Relaxed);
            } else {
                i += 1;
            }
        }
    }
    for a in active.drain(..) {
        a.finalize(&events);
        load.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Silence for a missing channel.
static ZEROS: [i16; MAX_FRAME_SAMPLES] = [0; MAX_FRAME_SAMPLES];

/// Frames drained from one ring per turn, at most.
const MAX_DRAIN: usize = 4096;
/// Zeros written per call while filling a gap.
const SILENCE_CHUNK: usize = 48_000;
/// Longest gap filled with silence: 6 hours of ticks. A larger jump is a
/// clock fault, not a hold; it is reported.
const MAX_GAP_TICKS: u64 = 6 * 3600 * 50;
