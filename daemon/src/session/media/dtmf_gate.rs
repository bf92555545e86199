//! In-band DTMF removal for SetToneHandling: what a leg receives is held
//! back [`DELAY_MS`] while a DTMF detector reads it, and every stretch the
//! detector finds a tone in (a confirmed digit from its estimated onset, or
//! a tone still being confirmed) is cut to silence before the audio goes
//! on to the leg's sinks.
//!
//! Why a delay: the detector needs up to 35 ms of a tone to recognise it
//! (legato-dsp's `DtmfDetector`: a 25 ms window that must match twice, 5 ms
//! apart), plus the rest of the 20 ms frame it arrived in. Forwarding at
//! once would leak those first 35-55 ms, enough for a far-side detector to
//! read the digit again. Holding the audio three frames (60 ms) back means
//! the decision always comes before the tone's first sample goes out, so
//! nothing of it does: the tone is cut from [`MARGIN_MS`] before its
//! estimated onset to [`MARGIN_MS`] after its end.
//!
//! A gate built not to remove (SetToneHandling's `keep_in_audio`) only
//! reports: the frame passes at once and untouched.
//!
//! Nothing allocates per frame: the delay line and the cut list are
//! arrays; the resampler to the detector's 8 kHz is built when the gate is.

use legato_dsp::dtmf::{Digit, DtmfDetector, DtmfDetectorConfig, DtmfEvent};
use legato_dsp::resample::Resampler;
use legato_dsp::time::ClockRate;

use super::{MAX_FRAME, frame_len};

/// How long the gate holds audio back.
pub(crate) const DELAY_MS: u64 = 60;
/// Frames held back.
const DELAY_FRAMES: usize = (DELAY_MS / 20) as usize;
/// Silence added on each side of a detected tone.
const MARGIN_MS: u64 = 10;
/// 8 kHz samples per ms.
const PER_MS: u64 = 8;
/// 8 kHz samples per frame.
const FRAME_8K: usize = 160;
/// A tone being confirmed (not yet a digit) started at most this long
/// before the frame in which the detector sees it: its 25 ms window plus
/// one 5 ms step.
const CANDIDATE_MS: u64 = 30;
/// An in-band digit this close to an RFC 4733 press is the same key sent
/// both ways (some phones do): it is cut but not reported twice.
const SAME_KEY_MS: u64 = 200;
/// Stretches to cut that can be pending at once (digits are at least
/// 40 ms apart, so two fit in the delay; the rest is room).
const CUTS: usize = 4;
/// In-band digits reported per tick at most.
const FOUND: usize = 4;

/// A detected in-band key press: the key and how long it sounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct InBandDigit {
    pub(crate) digit: Digit,
    pub(crate) duration_ms: u32,
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct DtmfGate {
    detector: DtmfDetector,
    /// Whether tones are cut out (else the gate only reports, with no
    /// delay).
    remove: bool,
    /// The stream's audio rate, and the resampler to 8 kHz (none at
    /// 8 kHz).
    rate: ClockRate,
    down: Option<Box<Resampler>>,
    /// Frames held back (oldest at `head`) and whether each was audio.
    held: [[i16; MAX_FRAME]; DELAY_FRAMES],
    held_active: [bool; DELAY_FRAMES],
    head: usize,
    /// Frames taken so far.
    frames: u64,
    /// Stretches to cut, in 8 kHz samples from the gate's start:
    /// `[from, to)`.
    cuts: [(u64, u64); CUTS],
    /// Where the last RFC 4733 press was seen (8 kHz samples), if any.
    last_rfc4733: Option<u64>,
    found: [Option<InBandDigit>; FOUND],
}

impl DtmfGate {
    /// A gate for a stream at `rate`; `remove`: cut the tones out (else
    /// only report them).
    pub(crate) fn new(rate: ClockRate, remove: bool) -> Option<Self> {
        let detector = DtmfDetector::new(DtmfDetectorConfig::default()).ok()?;
        let down = if rate.hz() == 8000 {
            None
        } else {
            Some(Box::new(
                Resampler::new(rate, ClockRate::new(8000)?, 20).ok()?,
            ))
        };
        Some(Self {
            detector,
            remove,
            rate,
            down,
            held: [[0; MAX_FRAME]; DELAY_FRAMES],
            held_active: [false; DELAY_FRAMES],
            head: 0,
            frames: 0,
            cuts: [(0, 0); CUTS],
            last_rfc4733: None,
            found: [None; FOUND],
        })
    }

    /// Whether it cuts tones out (else it only reports them).
    pub(crate) fn removes(&self) -> bool {
        self.remove
    }

    /// The rate it was built for.
    pub(crate) fn rate(&self) -> ClockRate {
        self.rate
    }

    /// Takes this tick's frame (`frame_len(rate)` samples in `frame`,
    /// `active` when it is audio) and replaces it with the frame of
    /// [`DELAY_MS`] ago, tones cut out; returns whether that one was audio.
    /// `rfc4733_press` tells that the stream has an RFC 4733 key press
    /// under way (its in-band copy is then not reported again). A gate
    /// that does not remove leaves `frame` as it is and returns `active`.
    pub(crate) fn process(&mut self, frame: &mut [i16], active: bool, rfc4733_press: bool) -> bool {
        let n = frame_len(self.rate).min(frame.len());
        let frame = &mut frame[..n];
        let start = self.frames * FRAME_8K as u64;
        let end = start + FRAME_8K as u64;
        if rfc4733_press {
            self.last_rfc4733 = Some(end);
        }
        let mut narrow = [0i16; FRAME_8K];
        match self.down.as_mut() {
            None => narrow[..n.min(FRAME_8K)].copy_from_slice(&frame[..n.min(FRAME_8K)]),
            Some(down) => {
                if down.process(frame, &mut narrow).is_err() {
                    narrow.fill(0);
                }
            }
        }
        self.detector.handle_samples(&narrow);
        while let Some(event) = self.detector.poll_event() {
            match event {
                DtmfEvent::Started { start, .. } => {
                    self.cut(start.saturating_sub(MARGIN_MS * PER_MS), end);
                }
                DtmfEvent::Ended {
                    digit,
                    start,
                    end: over,
                } => {
                    self.cut(
                        start.saturating_sub(MARGIN_MS * PER_MS),
                        over + MARGIN_MS * PER_MS,
                    );
                    let doubled = self
                        .last_rfc4733
                        .is_some_and(|at| at + SAME_KEY_MS * PER_MS >= start);
                    if !doubled && let Some(slot) = self.found.iter_mut().find(|f| f.is_none()) {
                        *slot = Some(InBandDigit {
                            digit,
                            duration_ms: ((over - start) / PER_MS) as u32,
                        });
                    }
                }
            }
        }
        if !self.remove {
            self.frames += 1;
            return active;
        }
        if self.detector.is_tone_present() {
            // A tone being confirmed, or a digit still sounding.
            self.cut(
                end.saturating_sub(CANDIDATE_MS * PER_MS),
                end + MARGIN_MS * PER_MS,
            );
        }
        // Into the delay line; out comes the oldest frame.
        let slot = self.head;
        self.held[slot][..n].swap_with_slice(frame);
        let was_active = std::mem::replace(&mut self.held_active[slot], active);
        self.head = (self.head + 1) % DELAY_FRAMES;
        self.frames += 1;
        // The frame going out covers these 8 kHz samples.
        let out_start = start.saturating_sub(DELAY_FRAMES as u64 * FRAME_8K as u64);
        if self.frames <= DELAY_FRAMES as u64 {
            // The line is still filling: what comes out is its silence.
            frame.fill(0);
            return false;
        }
        self.apply_cuts(frame, out_start);
        was_active
    }

    /// In-band digits found since the last call.
    pub(crate) fn take_found(&mut self) -> impl Iterator<Item = InBandDigit> + '_ {
        self.found.iter_mut().filter_map(Option::take)
    }

    /// Adds `[from, to)` to the stretches to cut, merging with one it
    /// touches.
    fn cut(&mut self, from: u64, to: u64) {
        if let Some(c) = self
            .cuts
            .iter_mut()
            .find(|c| c.1 > c.0 && from <= c.1 && to >= c.0)
        {
            *c = (c.0.min(from), c.1.max(to));
            return;
        }
        // A free or spent slot (spent: ends before anything still held),
        // else the oldest.
        let held_from = (self.frames.saturating_sub(DELAY_FRAMES as u64)) * FRAME_8K as u64;
        let slot = self
            .cuts
            .iter()
            .position(|c| c.1 <= c.0 || c.1 <= held_from)
            .unwrap_or_else(|| {
                (0..CUTS)
                    .min_by_key(|&i| self.cuts[i].1)
                    .unwrap_or_default()
            });
        self.cuts[slot] = (from, to);
    }

    /// Silences the parts of `frame` (starting at 8 kHz sample `at`) that
    /// fall in a cut.
    fn apply_cuts(&self, frame: &mut [i16], at: u64) {
        let n = frame.len() as u64;
        let end = at + FRAME_8K as u64;
        for &(from, to) in &self.cuts {
            if to <= at || from >= end || to <= from {
                continue;
            }
            // 8 kHz positions to the stream's samples.
            let a = (from.max(at) - at) * n / FRAME_8K as u64;
            let b = (to.min(end) - at) * n / FRAME_8K as u64;
            frame[a as usize..b as usize].fill(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use legato_dsp::dtmf::{DtmfGenerator, DtmfGeneratorConfig};

    use super::*;

    /// Runs `input` (8 kHz) through a gate; the output and the digits.
    fn gate(input: &[i16], rfc4733: bool) -> (Vec<i16>, Vec<InBandDigit>) {
        let mut g = DtmfGate::new(ClockRate::new(8000).unwrap(), true).unwrap();
        let mut out = Vec::new();
        let mut digits = Vec::new();
        for chunk in input.chunks(160) {
            let mut frame = [0i16; 160];
            frame[..chunk.len()].copy_from_slice(chunk);
            g.process(&mut frame, true, rfc4733);
            out.extend_from_slice(&frame);
            digits.extend(g.take_found());
        }
        (out, digits)
    }

    fn digits_in(samples: &[i16]) -> Vec<Digit> {
        let mut d = DtmfDetector::new(DtmfDetectorConfig {
            min_hits: 1,
            ..DtmfDetectorConfig::default()
        })
        .unwrap();
        d.handle_samples(samples);
        std::iter::from_fn(|| d.poll_event())
            .filter_map(|e| match e {
                DtmfEvent::Started { digit, .. } => Some(digit),
                DtmfEvent::Ended { .. } => None,
            })
            .collect()
    }

    /// 300 ms of a 440 Hz "voice", then `key` for `ms`, then the voice.
    fn voice_key_voice(key: Digit, ms: u32, level_db: f32) -> Vec<i16> {
        let voice = |n: usize| -> Vec<i16> {
            (0..n)
                .map(|i| {
                    (3000.0 * (2.0 * std::f64::consts::PI * 440.0 * i as f64 / 8000.0).sin()) as i16
                })
                .collect()
        };
        let mut generator = DtmfGenerator::new(
            DtmfGeneratorConfig {
                low_dbm0: level_db,
                high_dbm0: level_db,
                ..DtmfGeneratorConfig::default()
            }
            .with_durations_ms(ms, 0),
        )
        .unwrap();
        generator.push(key).unwrap();
        let mut tone = vec![0i16; (ms * 8) as usize];
        generator.fill(&mut tone);
        let mut all = voice(2400);
        all.extend(tone);
        all.extend(voice(2400));
        all
    }

    #[test]
    fn digits_are_reported_once_and_cut_whole() {
        for (key, ms, level) in [
            (Digit::D5, 40, -26.0),
            (Digit::Star, 60, -10.0),
            (Digit::Hash, 500, 0.0),
            (Digit::D1, 100, -3.0),
        ] {
            let input = voice_key_voice(key, ms, level);
            assert_eq!(digits_in(&input), [key], "the input holds {key:?}");
            let (out, found) = gate(&input, false);
            assert_eq!(found.len(), 1, "{key:?} {ms} ms");
            assert_eq!(found[0].digit, key);
            assert!(found[0].duration_ms.abs_diff(ms) <= 10, "{:?}", found[0]);
            // The output is the input 60 ms later, the key gone.
            let delay = (DELAY_MS * PER_MS) as usize;
            assert!(digits_in(&out).is_empty(), "{key:?} {ms} ms leaked");
            // Voice lost around the key: samples that were voice and came
            // out silent (a 10 ms margin on each side, rounded to the
            // detector's estimates).
            let tone_at = 2400..2400 + (ms * 8) as usize;
            let lost = (0..input.len())
                .filter(|i| {
                    !tone_at.contains(i) && input[*i] != 0 && out.get(i + delay) == Some(&0)
                })
                .count();
            eprintln!(
                "{key:?} {ms} ms at {level} dBm0: {} ms of voice cut",
                lost / 8
            );
            assert!(lost <= 30 * 8, "{} ms of voice cut", lost / 8);
            // The voice before and after still arrives.
            assert_eq!(&out[delay + 800..delay + 2000], &input[800..2000]);
            let after = 2400 + (ms * 8) as usize + 400;
            assert_eq!(
                &out[delay + after..delay + after + 1200],
                &input[after..after + 1200]
            );
        }
    }

    #[test]
    fn a_gate_that_keeps_tones_reports_and_changes_nothing() {
        let input = voice_key_voice(Digit::D9, 80, -12.0);
        let mut g = DtmfGate::new(ClockRate::new(8000).unwrap(), false).unwrap();
        assert!(!g.removes());
        let mut out = Vec::new();
        let mut found = Vec::new();
        for chunk in input.chunks(160) {
            let mut frame = [0i16; 160];
            frame[..chunk.len()].copy_from_slice(chunk);
            assert!(g.process(&mut frame, true, false));
            out.extend_from_slice(&frame[..chunk.len()]);
            found.extend(g.take_found());
        }
        assert_eq!(out, input, "no delay, nothing cut");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].digit, Digit::D9);
    }

    #[test]
    fn an_rfc4733_press_is_not_reported_again() {
        let input = voice_key_voice(Digit::D7, 120, -10.0);
        let (out, found) = gate(&input, true);
        assert!(found.is_empty());
        assert!(digits_in(&out).is_empty());
    }
}
