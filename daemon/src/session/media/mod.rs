//! The PCM path: what a leg does when its audio cannot simply be relayed.
//!
//! A sink leg is fed by one [`Source`]. When the source is a leg with the
//! same codec and packet duration, packets are relayed one by one (see
//! `relay.rs`): the fast path, which never touches this module. Otherwise
//! (codecs, rates or packet durations differ, or the source is a
//! conference) the sink is on the PCM path:
//!
//! ```text
//!  source leg: RTP ─▶ PcmIn (jitter buffer, decoder, PLC) ─▶ 20 ms frame ─┐
//!                                                  conference mix-minus ◀─┤
//!  sink leg:   RTP ◀─ PcmOut (resampler, encoder, packetiser) ◀─ frame ◀──┘
//! ```
//!
//! Which path a sink takes is decided by `Legs::replan` whenever routing,
//! codecs or conferences change, never per packet. Receive and send sides
//! are allocated there; the media clock's ticks (`Legs::media_tick`,
//! every 20 ms) then run with no allocation: receive sides first, then
//! conferences, then send sides.
//!
//! Players (tones, prompts, speech: `player.rs`) are a [`Source`] too,
//! held by the leg they play to. Recordings are taps: a leg being recorded
//! has its receive side (and its source leg's) even when its audio is
//! relayed, and after each tick its frames (what the party said, what it
//! heard) are copied into each recording's lock-free ring
//! (`crate::recording::Tap`), which writer threads drain. Later sources
//! (forks) and taps (detectors) plug in the same way.

mod codec;
mod conference;
mod detect;
mod dtmf_gate;
mod pcm_in;
mod pcm_out;
mod plan;
mod player;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use legato_dsp::codec::g711::{self, Law};
use legato_dsp::time::ClockRate;

pub(crate) use codec::{OPUS_BITRATE, audio_rate};
pub(crate) use conference::{Conference, MAX_MEMBERS};
pub(crate) use detect::{AmdTap, BEEP_WAIT_MS, BeepTap, Detected, Detectors, ProgressTap, VadTap};
pub(crate) use pcm_in::PcmIn;
pub(crate) use pcm_out::{DIGIT_COMMA_MS, Generated, Key, PcmOut};
pub(crate) use player::{Player, country_code, tone_by_name, tone_name};

use crate::sdp::CodecSpec;

/// The media clock's period.
pub(crate) const FRAME_MS: u32 = 20;
/// Samples of the longest frame (20 ms at 48 kHz).
pub(crate) const MAX_FRAME: usize = 960;
/// Ticks the clock runs back to back after a stall before it gives up on
/// the lost time and starts afresh (the jitter buffers then resynchronise).
pub(crate) const MAX_CATCH_UP: u64 = 5;
/// The `source` the leg's outgoing stream sees for packets legato makes
/// (for `OutStream::map`); leg slots never reach it.
pub(crate) const GENERATED: u32 = u32::MAX;
/// SSRC of the stream of generated packets before `OutStream` maps it.
const GENERATED_SSRC: u32 = 0x6c65_6761;
/// Conferences per shard at most.
pub(crate) const MAX_CONFERENCES: usize = 4096;

/// Samples in one frame at `rate`.
pub(crate) fn frame_len(rate: ClockRate) -> usize {
    rate.samples_in_ms(FRAME_MS) as usize
}

/// What a sink leg sends: its single source (VoxEngine: a call hears one
/// thing at a time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// Another leg's received audio (slot).
    Leg(u32),
    /// A conference's mix, minus the leg's own voice (conference slot).
    Conference(u32),
    /// The leg's own player (`LegMedia::player`): a tone, prompt or speech.
    Player,
}

/// One tick's 20 ms of a source's audio, as its receive side holds it:
/// decoded samples, or the G.711 codes of a 20 ms packet as they arrived.
/// Keeping the codes lets a G.711 sink of the other law convert them code
/// by code (ITU-T G.711's µ-law ↔ A-law tables), with no linear samples in
/// between; every other consumer decodes them where it needs samples
/// ([`Frame::write_pcm`], [`Frame::pcm`]), straight into its own buffer.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Frame<'a> {
    Pcm(&'a [i16]),
    G711(Law, &'a [u8]),
}

impl<'a> Frame<'a> {
    /// Samples in the frame.
    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Pcm(pcm) => pcm.len(),
            Self::G711(_, codes) => codes.len(),
        }
    }

    /// Writes the samples into `out`, which is [`Frame::len`] long.
    pub(crate) fn write_pcm(&self, out: &mut [i16]) {
        match *self {
            Self::Pcm(pcm) => out.copy_from_slice(pcm),
            Self::G711(law, codes) => {
                if g711::decode(law, codes, out).is_err() {
                    out.fill(0);
                }
            }
        }
    }

    /// The samples: in place, or decoded into `scratch` (at least
    /// [`Frame::len`] long).
    pub(crate) fn pcm<'b>(&self, scratch: &'b mut [i16]) -> &'b [i16]
    where
        'a: 'b,
    {
        match *self {
            Self::Pcm(pcm) => pcm,
            Self::G711(law, codes) => {
                let n = g711::decode(law, codes, scratch).unwrap_or(0);
                &scratch[..n]
            }
        }
    }
}

impl crate::recording::Channel for Frame<'_> {
    fn len(&self) -> usize {
        Frame::len(self)
    }

    fn write_to(&self, out: &mut [i16]) {
        self.write_pcm(out);
    }
}

/// A route's end as the controller names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Leg(Arc<str>),
    Conference(Arc<str>),
}

impl Endpoint {
    /// The id, whatever the kind.
    pub(crate) fn id(&self) -> &Arc<str> {
        match self {
            Self::Leg(id) | Self::Conference(id) => id,
        }
    }
}

/// A leg's PCM-path state, when it has any.
#[derive(Debug, Default)]
pub(crate) struct LegMedia {
    /// Decoding what the leg receives (some sink or conference needs it).
    pub(crate) rx: Option<Box<PcmIn>>,
    /// Encoding what the leg sends (its source is not relayed).
    pub(crate) tx: Option<Box<PcmOut>>,
    /// What `tx` was set up for: codec, packet duration (ms),
    /// telephone-event clock rate and (Opus) bit rate.
    pub(crate) tx_format: Option<(CodecSpec, u32, Option<u32>, u32)>,
    /// What the leg plays when its source is [`Source::Player`].
    pub(crate) player: Option<Box<Player>>,
    /// Recordings of the leg (StartRecording), fed every tick.
    pub(crate) recordings: Vec<Recording>,
    /// Detectors on what the leg receives, while any is on.
    pub(crate) detect: Option<Box<Detectors>>,
    /// ToneDetected fired (it does at most once per call).
    pub(crate) tone_detected: bool,
}

/// One recording of a leg: its id and the tap its frames go into.
#[derive(Debug)]
pub(crate) struct Recording {
    pub(crate) id: Arc<str>,
    pub(crate) tap: crate::recording::Tap,
}

/// Recordings one leg may have at once.
pub(crate) const MAX_RECORDINGS_PER_LEG: usize = 8;

/// The legs and conferences the media clock ticks, rebuilt by
/// `Legs::replan`.
#[derive(Debug, Default)]
pub(crate) struct Schedule {
    pub(crate) rx: Vec<u32>,
    pub(crate) conferences: Vec<u32>,
    pub(crate) tx: Vec<u32>,
    /// Legs being recorded.
    pub(crate) rec: Vec<u32>,
    /// Legs with detectors on.
    pub(crate) detect: Vec<u32>,
}

impl Schedule {
    /// Whether the media clock has anything to do.
    pub(crate) fn is_empty(&self) -> bool {
        self.rx.is_empty()
            && self.conferences.is_empty()
            && self.tx.is_empty()
            && self.rec.is_empty()
            && self.detect.is_empty()
    }
}

/// A shard's media clock: ticks every [`FRAME_MS`] at fixed points from its
/// start (so it does not drift with late wake-ups), catches up at most
/// [`MAX_CATCH_UP`] ticks after a stall, and converts instants to media
/// time in any RTP clock rate.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MediaClock {
    epoch: Instant,
    /// Wall-clock time at `epoch`: RTCP's NTP times are derived from the
    /// monotonic clock, so a stepped system clock cannot make them jump.
    wall_epoch: SystemTime,
    /// Ticks run so far (the next one is number `ticks`).
    ticks: u64,
    /// Ticks skipped after stalls.
    pub(crate) skipped: u64,
}

impl MediaClock {
    pub(crate) fn new(epoch: Instant, wall_epoch: SystemTime) -> Self {
        Self {
            epoch,
            wall_epoch,
            ticks: 0,
            skipped: 0,
        }
    }

    /// When the next tick is due.
    pub(crate) fn next_deadline(&self) -> Instant {
        self.epoch + Duration::from_micros(self.ticks.saturating_mul(u64::from(FRAME_MS) * 1000))
    }

    /// The number of the next tick to run at `now`, if one is due; skips
    /// ticks lost beyond [`MAX_CATCH_UP`].
    pub(crate) fn due(&mut self, now: Instant) -> Option<u64> {
        let elapsed = now.saturating_duration_since(self.epoch);
        let reached = (elapsed.as_micros() / (u128::from(FRAME_MS) * 1000)) as u64;
        if reached < self.ticks {
            return None;
        }
        if reached - self.ticks > MAX_CATCH_UP {
            self.skipped += reached - self.ticks - MAX_CATCH_UP;
            self.ticks = reached - MAX_CATCH_UP;
        }
        let tick = self.ticks;
        self.ticks += 1;
        Some(tick)
    }

    /// The number of the next tick.
    pub(crate) fn ticks(&self) -> u64 {
        self.ticks
    }

    /// Restarts counting from `now` (the clock was idle: nothing to catch up).
    pub(crate) fn resume(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.epoch);
        let reached = (elapsed.as_micros() / (u128::from(FRAME_MS) * 1000)) as u64;
        self.ticks = self.ticks.max(reached);
    }

    /// Wall-clock time at `t`.
    pub(crate) fn wall(&self, t: Instant) -> SystemTime {
        self.wall_epoch + t.saturating_duration_since(self.epoch)
    }

    /// `t` on the media clock, in units of `rate`.
    pub(crate) fn time(&self, t: Instant, rate: u32) -> u64 {
        let us = t.saturating_duration_since(self.epoch).as_micros() as u64;
        us.saturating_mul(u64::from(rate)) / 1_000_000
    }

    /// The start of tick `tick`, in units of `rate`.
    pub(crate) fn tick_time(tick: u64, rate: u32) -> u64 {
        tick * u64::from(rate) * u64::from(FRAME_MS) / 1000
    }
}
