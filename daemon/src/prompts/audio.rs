//! A prompt's decoded audio, shared by every leg that plays it: mono
//! 16-bit PCM at one of the media clock's rates, published segment by
//! segment while a worker decodes it, so playback can start before the
//! decoding (or download) ends. The worker appends; shards read without
//! locking or allocating (an `ArcSwap` load and an `Arc` clone per
//! segment).

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use legato_dsp::time::ClockRate;

/// Where a prompt's decoding stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Progress {
    /// Segments are still being added.
    Loading,
    /// Every segment is there.
    Complete,
    /// It could not be decoded (whatever was published stays playable).
    Failed,
}

const LOADING: u8 = 0;
const COMPLETE: u8 = 1;
const FAILED: u8 = 2;

/// See the module docs.
#[derive(Debug)]
pub(crate) struct PromptAudio {
    rate: OnceLock<ClockRate>,
    segments: ArcSwap<Vec<Arc<[i16]>>>,
    samples: AtomicU64,
    progress: AtomicU8,
    error: OnceLock<String>,
}

impl Default for PromptAudio {
    fn default() -> Self {
        Self {
            rate: OnceLock::new(),
            segments: ArcSwap::from_pointee(Vec::new()),
            samples: AtomicU64::new(0),
            progress: AtomicU8::new(LOADING),
            error: OnceLock::new(),
        }
    }
}

impl PromptAudio {
    /// Audio that failed before any sample, with `error`.
    pub(crate) fn failed(error: String) -> Self {
        let audio = Self::default();
        audio.fail(error);
        audio
    }

    /// Sets the rate of every segment (once, before the first).
    pub(crate) fn set_rate(&self, rate: ClockRate) {
        let _ = self.rate.set(rate);
    }

    /// Appends a segment (the worker's side).
    pub(crate) fn publish(&self, segment: Vec<i16>) {
        if segment.is_empty() {
            return;
        }
        let len = segment.len() as u64;
        let mut next = Vec::clone(&self.segments.load());
        next.push(segment.into());
        self.segments.store(Arc::new(next));
        self.samples.fetch_add(len, Ordering::Release);
    }

    /// Every segment is published.
    pub(crate) fn complete(&self) {
        let _ =
            self.progress
                .compare_exchange(LOADING, COMPLETE, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Decoding stopped with `error`.
    pub(crate) fn fail(&self, error: String) {
        let _ = self.error.set(error);
        self.progress.store(FAILED, Ordering::Release);
    }

    pub(crate) fn progress(&self) -> Progress {
        match self.progress.load(Ordering::Acquire) {
            LOADING => Progress::Loading,
            COMPLETE => Progress::Complete,
            _ => Progress::Failed,
        }
    }

    /// Why it failed, once it has.
    pub(crate) fn error(&self) -> Option<&str> {
        self.error.get().map(String::as_str)
    }

    /// The segments' rate, once known.
    pub(crate) fn rate(&self) -> Option<ClockRate> {
        self.rate.get().copied()
    }

    /// Segment `i`, if published (no allocation: an `Arc` clone).
    pub(crate) fn segment(&self, i: usize) -> Option<Arc<[i16]>> {
        self.segments.load().get(i).cloned()
    }

    /// Samples published so far.
    pub(crate) fn samples(&self) -> u64 {
        self.samples.load(Ordering::Acquire)
    }

    /// Duration published so far, in ms.
    pub(crate) fn duration_ms(&self) -> u64 {
        match self.rate() {
            Some(rate) => self.samples() * 1000 / u64::from(rate.hz()),
            None => 0,
        }
    }

    /// Memory its samples take.
    pub(crate) fn bytes(&self) -> usize {
        self.samples() as usize * 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_published_in_order_and_stay_after_a_failure() {
        let a = PromptAudio::default();
        assert_eq!(a.progress(), Progress::Loading);
        assert!(a.rate().is_none() && a.segment(0).is_none());
        a.set_rate(ClockRate::HZ_8000);
        a.publish(vec![1; 8000]);
        a.publish(Vec::new());
        a.publish(vec![2; 4000]);
        assert_eq!(a.segment(1).unwrap()[0], 2);
        assert!(a.segment(2).is_none());
        assert_eq!(
            (a.samples(), a.duration_ms(), a.bytes()),
            (12_000, 1500, 24_000)
        );
        a.fail("broken".into());
        a.complete();
        assert_eq!(a.progress(), Progress::Failed);
        assert_eq!(a.error(), Some("broken"));
        assert_eq!(a.segment(0).unwrap().len(), 8000);
        let f = PromptAudio::failed("nope".into());
        assert_eq!((f.progress(), f.error()), (Progress::Failed, Some("nope")));
    }
}
