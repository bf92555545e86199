//! The receive side of a leg on the PCM path: received RTP goes through the
//! adaptive jitter buffer and the decoder (with concealment) into one 20 ms
//! frame of PCM per media-clock tick, at the codec's audio rate.
//!
//! Packets may last 10 to 60 ms (any multiple of 10): decoded audio goes
//! through a small FIFO and each tick takes 20 ms from it, popping the
//! jitter buffer as often as needed, so the buffer is popped once per
//! packet duration on average. Each pop is made at the media time its audio
//! will be heard, which keeps the buffer's playout arithmetic exact.
//!
//! RFC 4733 telephone events are turned into key presses here
//! ([`DigitBus`]) so that sinks on the PCM path can re-send them in their
//! own payload type and clock rate, or as in-band tones.

use legato_dsp::codec::g711::{self, Law};
use legato_dsp::dtmf::Digit;
use legato_dsp::jitter::{JitterBuffer, JitterConfig, Playout};
use legato_dsp::rfc4733::{DigitEvent, EventReceiver};
use legato_dsp::time::ClockRate;

use std::time::Instant;

use super::MediaClock;
use super::codec::{AudioDecoder, CodecKind, audio_rate, rtp_per_sample};
use super::dtmf_gate::DtmfGate;
use super::{FRAME_MS, Frame, MAX_FRAME, frame_len};
use crate::sdp::CodecSpec;
use crate::session::JitterBufferStats;

/// Longest packet the receive side plays, in ms.
pub(crate) const MAX_PACKET_MS: u32 = 60;
/// FIFO capacity: one longest packet plus one tick, at 48 kHz.
const FIFO: usize = (MAX_PACKET_MS as usize + FRAME_MS as usize) * 48;
/// Codes in 20 ms of G.711.
const G711_FRAME: usize = 160;
/// Consecutive packets of a new duration before the jitter buffer is set up
/// for it (a single odd packet is dropped instead).
const RESIZE_AFTER: u8 = 3;
/// Ticks between two jitter-buffer resizes at most (one per second), so a
/// peer alternating packet durations cannot make the shard allocate often.
const RESIZE_EVERY_TICKS: u64 = 50;
/// Frames below this mean power (about -50 dBFS) are a pause: the jitter
/// buffer may drop one there to shrink its delay, unheard.
const QUIET_POWER: u64 = 100 * 100;
/// Ticks the jitter buffer waits for a pause before it shrinks anyway (a
/// continuous sound must not let a fast clock's delay grow).
const SHRINK_WAIT_TICKS: u32 = 100;
/// The same when nobody hears the audio live (only taps read it: detectors
/// and recordings of a relayed leg): its delay costs nothing, while a frame
/// dropped in the middle of a sound can hide a beep or a digit from a
/// detector, so only a long continuous sound forces a shrink (30 s).
const SHRINK_WAIT_UNHEARD_TICKS: u32 = 1500;
/// A key press without packets for this long has ended (RFC 4733 §2.5.1.4
/// leaves it to the receiver; 500 ms is well above the 50 ms update rate).
const DIGIT_TIMEOUT_MS: u64 = 500;

/// Key presses of the source, for sinks to follow: each press gets a new
/// `id`; `ended` turns true once with its total duration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct DigitBus {
    /// Increments with each new press (0: none yet).
    pub(crate) id: u32,
    /// RFC 4733 event code of the current or last press.
    pub(crate) event: u8,
    /// Whether the current press has ended.
    pub(crate) ended: bool,
    /// Its duration in ms, once ended.
    pub(crate) duration_ms: u32,
}

/// Counters of a receive side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RxCounters {
    pub(crate) decoded_frames: u64,
    pub(crate) concealed_frames: u64,
    pub(crate) decode_errors: u64,
    /// Packets whose duration could not be played (not 10-60 ms in steps
    /// of 10, or a one-off change of duration).
    pub(crate) odd_duration_packets: u64,
    pub(crate) jitter_resizes: u64,
    /// Frames the jitter buffer dropped to shrink its delay.
    pub(crate) shrinks: u64,
}

/// See the module docs.
///
/// `repr(C)` keeps the fields in this order: what every packet and tick
/// reads comes first, on a few cache lines, and the large buffers last.
/// A shard ticks a thousand such legs in a row, each evicted since its last
/// tick by the others, so every further line a tick touches is a miss.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct PcmIn {
    kind: CodecKind,
    /// The G.711 law, for a G.711 stream.
    law: Option<Law>,
    /// Whether this tick's frame is the G.711 packet the jitter buffer
    /// played, read in place (see [`Frame`]).
    frame_is_codes: bool,
    /// Whether the decoder's concealment has yet to see the last codes
    /// played (they were never decoded here).
    unprimed: bool,
    /// Whether `frame` holds audio of this stream (not silence for lack of
    /// packets).
    active: bool,
    /// Whether `events` has a key press under way (it then needs ticks).
    events_active: bool,
    /// RTP clock rate of the stream.
    rtp_rate: ClockRate,
    /// Packet duration the jitter buffer is set up for, in RTP units.
    packet_rtp: u32,
    fifo_len: usize,
    events_rate: u32,
    digits: DigitBus,
    /// A different duration seen on consecutive packets.
    candidate: (u32, u8),
    last_resize_tick: u64,
    /// The jitter buffer, with the playout state and counters.
    playing: Playing,
    /// What it was set up for: codec and expected packet duration (ms).
    format: (CodecSpec, u32),
    events: EventReceiver,
    decoder: AudioDecoder,
    /// This tick's frame (at the codec's audio rate), unless
    /// `frame_is_codes`.
    frame: [i16; MAX_FRAME],
    fifo: [i16; FIFO],
    /// SetToneHandling: in-band digits cut out (with the delay that
    /// takes), RFC 4733 presses kept from the sinks; both reported.
    tones: Option<Box<ToneHandling>>,
}

/// A receive side's SetToneHandling state.
#[derive(Debug)]
struct ToneHandling {
    gate: DtmfGate,
    /// The RFC 4733 press last reported (its `DigitBus::id`).
    reported: u32,
    /// Digits to report, oldest first.
    found: [Option<ToneFound>; 4],
}

impl ToneHandling {
    /// Reports the RFC 4733 press of `digits` that just ended (once), runs
    /// `frame` (this tick's audio, `active` when it is the stream's)
    /// through the gate, and reports the in-band digits it found. Returns
    /// whether the frame the gate gives back is audio.
    fn report(
        &mut self,
        digits: DigitBus,
        frame: &mut [i16],
        active: bool,
        events_active: bool,
    ) -> bool {
        let found = &mut self.found;
        let mut push = |digit: Digit, rfc4733: bool, duration_ms: u32| {
            if let Some(slot) = found.iter_mut().find(|f| f.is_none()) {
                *slot = Some(ToneFound {
                    tone: digit.to_char(),
                    rfc4733,
                    duration_ms,
                });
            }
        };
        if digits.id != self.reported && digits.ended {
            self.reported = digits.id;
            if let Some(digit) = Digit::from_event_code(digits.event) {
                push(digit, true, digits.duration_ms);
            }
        }
        let pressing = digits.id != 0 && !digits.ended;
        let active = self.gate.process(frame, active, pressing || events_active);
        for found in self.gate.take_found() {
            push(found.digit, false, found.duration_ms);
        }
        active
    }
}

/// A key press a leg received while tone handling is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ToneFound {
    /// `0`-`9`, `*`, `#`, `A`-`D`.
    pub(crate) tone: char,
    /// RFC 4733 (true) or in-band.
    pub(crate) rfc4733: bool,
    pub(crate) duration_ms: u32,
}

impl PcmIn {
    /// A receive side for `codec`, expecting packets of `ptime_ms`.
    pub(crate) fn new(codec: &CodecSpec, ptime_ms: u32) -> Option<Self> {
        let kind = codec.kind;
        let rtp_rate = ClockRate::new(codec.clock_rate)?;
        let ptime = ptime_ms.clamp(10, MAX_PACKET_MS) / 10 * 10;
        let jitter = JitterBuffer::new(jitter_config(kind, rtp_rate, ptime)).ok()?;
        Some(Self {
            kind,
            format: (*codec, ptime_ms),
            rtp_rate,
            playing: Playing {
                jitter,
                quiet: true,
                loudness_pending: None,
                shrink_wait: 0,
                heard: true,
                counters: RxCounters::default(),
            },
            packet_rtp: rtp_rate.samples_in_ms(ptime),
            candidate: (0, 0),
            last_resize_tick: 0,
            decoder: AudioDecoder::new(kind).ok()?,
            law: match kind {
                CodecKind::Pcmu => Some(Law::Ulaw),
                CodecKind::Pcma => Some(Law::Alaw),
                _ => None,
            },
            fifo: [0; FIFO],
            fifo_len: 0,
            frame: [0; MAX_FRAME],
            frame_is_codes: false,
            unprimed: false,
            active: false,
            events_active: false,
            events: EventReceiver::new(u64::from(rtp_rate.samples_in_ms(DIGIT_TIMEOUT_MS as u32))),
            events_rate: rtp_rate.hz(),
            digits: DigitBus::default(),
            tones: None,
        })
    }

    /// Turns tone handling on or off. On with `remove`: RFC 4733 presses
    /// no longer reach [`PcmIn::digits`], and the audio is held back by
    /// the in-band gate's delay with the tones cut out. On without: digits
    /// are reported and the audio and presses pass untouched. Allocates
    /// when turned on.
    pub(crate) fn set_tone_handling(&mut self, on: bool, remove: bool) {
        let rate = self.audio_rate();
        match (&self.tones, on) {
            (Some(t), true) if t.gate.rate() == rate && t.gate.removes() == remove => {}
            (_, true) => {
                self.tones = DtmfGate::new(rate, remove).map(|gate| {
                    Box::new(ToneHandling {
                        gate,
                        reported: self.digits.id,
                        found: [None; 4],
                    })
                });
            }
            (_, false) => self.tones = None,
        }
    }

    /// Whether the audio is heard live (else only taps read it, and the
    /// jitter buffer keeps its delay through a continuous sound rather
    /// than drop a frame of it).
    pub(crate) fn set_heard(&mut self, heard: bool) {
        self.playing.heard = heard;
    }

    /// Key presses found since the last call (tone handling on).
    pub(crate) fn take_tones(&mut self) -> impl Iterator<Item = ToneFound> + '_ {
        self.tones
            .iter_mut()
            .flat_map(|t| t.found.iter_mut().filter_map(Option::take))
    }

    /// What it was set up for: codec and expected packet duration (ms).
    pub(crate) fn format(&self) -> (CodecSpec, u32) {
        self.format
    }

    /// The stream's RTP clock rate.
    pub(crate) fn rtp_rate(&self) -> ClockRate {
        self.rtp_rate
    }

    /// The rate of [`PcmIn::frame`].
    pub(crate) fn audio_rate(&self) -> ClockRate {
        audio_rate(self.kind)
    }

    /// This tick's 20 ms of audio.
    pub(crate) fn frame(&self) -> Frame<'_> {
        match self.law {
            Some(law) if self.frame_is_codes => {
                Frame::G711(law, self.playing.jitter.last_played().unwrap_or(&[]))
            }
            _ => Frame::Pcm(&self.frame[..frame_len(self.audio_rate())]),
        }
    }

    /// Whether this tick's frame carries the stream's audio.
    pub(crate) fn is_active(&self) -> bool {
        self.active
    }

    /// The source's key presses.
    pub(crate) fn digits(&self) -> DigitBus {
        if self.tones.as_ref().is_some_and(|t| t.gate.removes()) {
            // Handled here: not forwarded.
            return DigitBus::default();
        }
        self.digits
    }

    /// Its counters.
    pub(crate) fn counters(&self) -> &RxCounters {
        &self.playing.counters
    }

    /// The jitter buffer.
    #[cfg(test)]
    pub(crate) fn jitter(&self) -> &JitterBuffer {
        &self.playing.jitter
    }

    /// The jitter buffer's current and target delay, for statistics.
    pub(crate) fn jitter_stats(&self, now: Instant, clock: &MediaClock) -> JitterBufferStats {
        let rate = self.rtp_rate.hz();
        let ms = |samples: i64| samples as f64 * 1000.0 / f64::from(rate);
        JitterBufferStats {
            delay_ms: self
                .playing
                .jitter
                .current_delay(clock.time(now, rate))
                .map_or(0.0, |d| ms(d.samples())),
            target_ms: ms(self.playing.jitter.target_delay().samples()),
        }
    }

    /// Takes one received audio packet; `arrival` is its receive time on
    /// the media clock in RTP units (see `MediaClock::rtp_time`), `tick`
    /// the current tick number.
    pub(crate) fn push(
        &mut self,
        arrival: u64,
        tick: u64,
        ssrc: u32,
        sequence: u16,
        timestamp: u32,
        payload: &[u8],
    ) {
        let Some(duration) = packet_duration(self.kind, payload) else {
            self.playing.counters.decode_errors += 1;
            return;
        };
        if duration != self.packet_rtp && !self.follow_duration(duration, tick) {
            self.playing.counters.odd_duration_packets += 1;
            return;
        }
        if self
            .playing
            .jitter
            .push(arrival, ssrc, sequence, timestamp, payload)
            .is_err()
        {
            self.playing.counters.decode_errors += 1;
        }
    }

    /// Whether packets of `duration` RTP units can be played now, setting
    /// the jitter buffer up for them when they have become the norm.
    fn follow_duration(&mut self, duration: u32, tick: u64) -> bool {
        let ms = duration * 1000 / self.rtp_rate.hz();
        let playable = (10..=MAX_PACKET_MS).contains(&ms)
            && ms.is_multiple_of(10)
            && self.rtp_rate.samples_in_ms(ms) == duration;
        if !playable {
            return false;
        }
        if self.candidate.0 == duration {
            self.candidate.1 = self.candidate.1.saturating_add(1);
        } else {
            self.candidate = (duration, 1);
        }
        if self.candidate.1 < RESIZE_AFTER
            || tick.saturating_sub(self.last_resize_tick) < RESIZE_EVERY_TICKS
                && self.playing.counters.jitter_resizes > 0
        {
            return false;
        }
        let Ok(jitter) = JitterBuffer::new(jitter_config(self.kind, self.rtp_rate, ms)) else {
            return false;
        };
        // A new packet duration: rare (a re-INVITE or a peer changing its
        // mind), so allocating here is fine.
        self.playing.jitter = jitter;
        self.packet_rtp = duration;
        self.last_resize_tick = tick;
        self.playing.counters.jitter_resizes += 1;
        true
    }

    /// Takes one received telephone-event packet (RFC 4733); `now` is the
    /// media clock in RTP units of the event's clock `rate`.
    pub(crate) fn push_event(
        &mut self,
        now: u64,
        rate: u32,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
    ) {
        if rate != self.events_rate {
            self.events_rate = rate;
            self.events = EventReceiver::new(u64::from(rate) * DIGIT_TIMEOUT_MS / 1000);
        }
        if self
            .events
            .handle_packet(now, timestamp, marker, payload)
            .is_err()
        {
            self.playing.counters.decode_errors += 1;
        }
        self.events_active = self.events.is_active();
        self.drain_events();
    }

    fn drain_events(&mut self) {
        while let Some(event) = self.events.poll_event() {
            match event {
                DigitEvent::Begin { event, .. } => {
                    self.digits = DigitBus {
                        id: self.digits.id.wrapping_add(1).max(1),
                        event,
                        ended: false,
                        duration_ms: 0,
                    };
                }
                DigitEvent::End { duration, .. } => {
                    let ms = duration.saturating_mul(1000) / u64::from(self.events_rate.max(1));
                    self.digits.ended = true;
                    self.digits.duration_ms = u32::try_from(ms).unwrap_or(u32::MAX);
                }
            }
        }
    }

    /// Produces this tick's frame. `now` is the tick's media time in RTP
    /// units of the stream; `events_now` the same in the telephone-event
    /// clock.
    pub(crate) fn tick(&mut self, now: u64, events_now: u64) {
        self.produce(now, events_now);
        if self.tones.is_some() {
            self.handle_tones();
        }
    }

    /// Tone handling of this tick's frame: RFC 4733 presses that ended are
    /// reported; the frame goes through the gate (decoded first when it
    /// is G.711 read in place), in-band digits it found are reported. A
    /// gate that only reports (`keep_in_audio`) reads a decoded copy and
    /// leaves the frame as it is.
    fn handle_tones(&mut self) {
        let want = frame_len(self.audio_rate());
        let remove = self.tones.as_ref().is_some_and(|t| t.gate.removes());
        let mut scratch = [0i16; MAX_FRAME];
        let frame: &mut [i16] = match (self.frame_is_codes, remove) {
            (true, _) => {
                let codes = self.playing.jitter.last_played().unwrap_or(&[]);
                let out = if remove {
                    self.frame_is_codes = false;
                    &mut self.frame[..want]
                } else {
                    &mut scratch[..want]
                };
                if let Some(law) = self.law {
                    Frame::G711(law, codes).write_pcm(&mut out[..want.min(codes.len())]);
                }
                out
            }
            (false, true) => &mut self.frame[..want],
            (false, false) => {
                scratch[..want].copy_from_slice(&self.frame[..want]);
                &mut scratch[..want]
            }
        };
        let Some(t) = self.tones.as_deref_mut() else {
            return;
        };
        let active = t.report(self.digits, frame, self.active, self.events_active);
        if remove {
            self.active = active;
        }
    }

    /// Decodes this tick's frame (see [`PcmIn::tick`]).
    fn produce(&mut self, now: u64, events_now: u64) {
        if self.events_active {
            self.events.handle_timeout(events_now);
            self.events_active = self.events.is_active();
            self.drain_events();
        }
        self.frame_is_codes = false;
        let rate = self.audio_rate();
        let want = frame_len(rate);
        let (num, den) = rtp_per_sample(self.kind);
        let packet_samples = (self.packet_rtp * den / num) as usize;
        if let Some(law) = self.law
            && self.fifo_len == 0
            && packet_samples == want
        {
            // 20 ms G.711 packets (the most common case): keep the codes.
            self.active = self.play_codes(law, now);
            return;
        }
        self.unprimed = false;
        if self.fifo_len == 0 && packet_samples == want {
            // Packets of one frame (the common case): straight into it.
            let out = &mut self.frame[..want];
            let (produced, active) = play(&mut self.playing, &mut self.decoder, now, out);
            out[produced.min(want)..].fill(0);
            self.active = active;
            return;
        }
        let mut active = false;
        let leftover = self.fifo_len > 0;
        while self.fifo_len < want {
            // The media time at which the popped audio will be heard.
            let at = now + (self.fifo_len as u64 * u64::from(num) / u64::from(den));
            let start = self.fifo_len;
            let end = start + packet_samples;
            if end > FIFO {
                break;
            }
            let (produced, heard) = play(
                &mut self.playing,
                &mut self.decoder,
                at,
                &mut self.fifo[start..end],
            );
            active |= heard;
            self.fifo_len = start + produced.min(packet_samples);
        }
        let n = want.min(self.fifo_len);
        self.frame[..n].copy_from_slice(&self.fifo[..n]);
        self.frame[n..want].fill(0);
        self.fifo.copy_within(n..self.fifo_len, 0);
        self.fifo_len -= n;
        self.active = active || (leftover && self.active);
    }
}

impl PcmIn {
    /// Plays one 20 ms G.711 packet at media time `now`: the packet stays
    /// in the jitter buffer, read in place (`frame_is_codes`); concealment
    /// or silence go into `frame`. Returns whether the frame is the
    /// stream's audio.
    fn play_codes(&mut self, law: Law, now: u64) -> bool {
        let Self {
            playing,
            decoder,
            frame,
            frame_is_codes,
            unprimed,
            ..
        } = self;
        let out = &mut frame[..G711_FRAME];
        let conceal = match playing.next(now) {
            Playout::Packet { payload, .. } if payload.len() == G711_FRAME => {
                playing.counters.decoded_frames += 1;
                // Measured only if the jitter buffer wants to shrink.
                playing.loudness_pending = Some(law);
                *frame_is_codes = true;
                *unprimed = true;
                return true;
            }
            Playout::Packet { .. } => {
                playing.counters.decode_errors += 1;
                true
            }
            Playout::Conceal => true,
            Playout::Empty => false,
        };
        if !conceal {
            out.fill(0);
            return false;
        }
        playing.counters.concealed_frames += 1;
        // The decoder's concealment repeats what it decoded last: show it
        // the last codes played, which it never saw.
        if std::mem::take(unprimed)
            && let Some(codes) = playing.jitter.last_played()
        {
            let _ = decoder.decode(codes, out);
        }
        if decoder.conceal(out).is_err() {
            out.fill(0);
        }
        true
    }
}

/// Mean power of G.711 `codes` as [`mean_power`] measures samples.
fn codes_power(law: Law, codes: &[u8]) -> u64 {
    let sum: u64 = codes
        .iter()
        .step_by(4)
        .map(|&c| {
            let x = match law {
                Law::Ulaw => g711::ulaw_to_linear(c),
                Law::Alaw => g711::alaw_to_linear(c),
            };
            u64::from(x.unsigned_abs()) * u64::from(x.unsigned_abs())
        })
        .sum();
    sum / codes.len().div_ceil(4).max(1) as u64
}

/// The jitter buffer and what goes with its playout.
#[derive(Debug)]
struct Playing {
    jitter: JitterBuffer,
    /// Whether the last decoded packet was a pause (see [`QUIET_POWER`]).
    quiet: bool,
    /// The last packet played was G.711 of this law, its loudness not yet
    /// measured into `quiet` (done only when a shrink asks for it).
    loudness_pending: Option<Law>,
    /// Ticks the jitter buffer has wanted to shrink without a pause.
    shrink_wait: u32,
    /// Whether the audio is heard live (played to a leg or a conference),
    /// not only read by taps.
    heard: bool,
    counters: RxCounters,
}

/// Plays one packet's worth of audio at media time `at` into `out` (one
/// packet duration): decoded, concealed (Opus: rebuilt from the next
/// packet's FEC), or silence. Returns the samples written and whether they
/// are the stream's audio.
fn play(p: &mut Playing, decoder: &mut AudioDecoder, at: u64, out: &mut [i16]) -> (usize, bool) {
    let samples = out.len();
    match p.next(at) {
        Playout::Packet { payload, .. } => match decoder.decode(payload, out) {
            Ok(n) if n == samples => {
                p.counters.decoded_frames += 1;
                p.quiet = mean_power(out) < QUIET_POWER;
                p.loudness_pending = None;
                (n, true)
            }
            _ => {
                // Malformed (e.g. random bytes as Opus) or of a length the
                // jitter buffer did not expect: conceal.
                p.counters.decode_errors += 1;
                p.counters.concealed_frames += 1;
                let n = decoder.conceal(out).unwrap_or_else(|_| {
                    out.fill(0);
                    samples
                });
                (n, true)
            }
        },
        Playout::Conceal => {
            p.counters.concealed_frames += 1;
            let next = p.jitter.peek_next();
            let n = decoder.recover(next, out).unwrap_or_else(|_| {
                out.fill(0);
                samples
            });
            (n, true)
        }
        Playout::Empty => {
            out.fill(0);
            (samples, false)
        }
    }
}

impl Playing {
    /// The jitter buffer's next packet for media time `at`, shrinking the
    /// delay in a pause, or after waiting long enough.
    fn next(&mut self, at: u64) -> Playout<'_> {
        let wants = self.jitter.wants_to_shrink(at);
        if wants && let Some(law) = self.loudness_pending.take() {
            self.quiet = self
                .jitter
                .last_played()
                .is_some_and(|codes| codes_power(law, codes) < QUIET_POWER);
        }
        let wait = if self.heard {
            SHRINK_WAIT_TICKS
        } else {
            SHRINK_WAIT_UNHEARD_TICKS
        };
        let may_shrink = !wants || self.quiet || self.shrink_wait >= wait;
        if wants && may_shrink {
            self.shrink_wait = 0;
            self.counters.shrinks += 1;
        } else if wants {
            self.shrink_wait += 1;
        }
        self.jitter.pop_with(at, may_shrink)
    }
}

/// The jitter buffer for packets of `ptime_ms`: legato-dsp's defaults
/// (20-200 ms of delay), with slots for the largest delay plus 160 ms of
/// reordering and no larger than the codec's packets can be, so a PCM leg
/// stays small (16 slots of 160 bytes for 20 ms of G.711, instead of 64
/// Ethernet-sized ones).
fn jitter_config(kind: CodecKind, rate: ClockRate, ptime_ms: u32) -> JitterConfig {
    let mut config = JitterConfig::new(rate, ptime_ms);
    config.max_payload = match kind {
        // One byte per sample at 8 kHz (G.722: two 16 kHz samples).
        CodecKind::Pcmu | CodecKind::Pcma | CodecKind::G722 => 8 * ptime_ms as usize,
        // RFC 6716 §3.4: at most 1275 bytes per frame; legato's peers send
        // one frame per packet (two or three at most for 40-60 ms SILK).
        CodecKind::Opus => 1275,
    };
    config.slots = ((config.max_delay_ms + 160) / ptime_ms + 1) as usize;
    config
}

/// Mean power of `samples` (sum of squares over their number), from every
/// fourth sample: a pause detector needs no more, and it runs per frame.
fn mean_power(samples: &[i16]) -> u64 {
    let sum: u64 = samples
        .iter()
        .step_by(4)
        .map(|&x| u64::from(x.unsigned_abs()) * u64::from(x.unsigned_abs()))
        .sum();
    sum / samples.len().div_ceil(4).max(1) as u64
}

/// How long an audio payload lasts, in RTP units, or `None` when it is not
/// a valid payload of `kind`.
pub(crate) fn packet_duration(kind: CodecKind, payload: &[u8]) -> Option<u32> {
    let n = payload.len() as u32;
    match kind {
        CodecKind::Pcmu | CodecKind::Pcma | CodecKind::G722 if n > 0 => Some(n),
        CodecKind::Opus => opus_duration(payload),
        _ => None,
    }
}

/// Duration of an Opus packet at 48 kHz from its TOC byte (RFC 6716 §3.1).
fn opus_duration(payload: &[u8]) -> Option<u32> {
    let toc = *payload.first()?;
    let config = toc >> 3;
    // Frame size in 48 kHz samples per configuration (RFC 6716 table 2).
    let frame = match config {
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
        12..=15 => [480, 960][usize::from(config % 2)],
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    };
    let frames = match toc & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => u32::from(*payload.get(1)? & 0x3f),
    };
    let total = frame * frames;
    // RFC 6716 §3.2.5: at most 120 ms per packet.
    (frames > 0 && total <= 5760).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdp::PCMU;

    #[test]
    fn opus_durations_from_toc() {
        // config 1 (SILK NB 20 ms), code 0.
        assert_eq!(opus_duration(&[1 << 3]), Some(960));
        // config 31 (CELT FB 20 ms), code 1: two frames.
        assert_eq!(opus_duration(&[31 << 3 | 1]), Some(1920));
        // code 3 with 0 frames, or 120 ms exceeded: invalid.
        assert_eq!(opus_duration(&[31 << 3 | 3, 0]), None);
        assert_eq!(opus_duration(&[3 << 3 | 3, 3]), None);
        assert_eq!(opus_duration(&[]), None);
    }

    #[test]
    fn thirty_ms_packets_become_twenty_ms_frames() {
        let mut rx = PcmIn::new(&PCMU, 30).unwrap();
        // A 30 ms sender: one packet per 240 units; ticks every 160.
        let mut sent = 0u32;
        let mut frames = 0;
        for tick in 0..300u64 {
            let now = tick * 160;
            while u64::from(sent) * 240 <= now {
                let payload = [0x80u8; 240];
                rx.push(now, tick, 1, sent as u16, sent * 240, &payload);
                sent += 1;
            }
            rx.tick(now, now);
            assert_eq!(rx.frame().len(), 160);
            if rx.is_active() {
                frames += 1;
            }
        }
        assert!(frames > 280, "{frames}");
        assert_eq!(rx.counters().odd_duration_packets, 0);
        assert!(rx.counters().concealed_frames < 5, "{:?}", rx.counters());
    }

    /// Ticks at which the jitter buffer shrank while playing `ticks` frames
    /// of a 440 Hz tone (silent over `pause`, in seconds) whose first 40
    /// packets arrived up to 80 ms late; `heard` as [`PcmIn::set_heard`].
    fn shrink_ticks(heard: bool, ticks: u64, pause: std::ops::Range<f64>, seed: u64) -> Vec<u64> {
        use legato_dsp::codec::g711::linear_to_ulaw;
        let mut rx = PcmIn::new(&PCMU, 20).unwrap();
        rx.set_heard(heard);
        let mut rng = fastrand::Rng::with_seed(seed);
        let tone = |k: u32| {
            let t = f64::from(k) / 8000.0;
            let x = if pause.contains(&t) {
                0.0
            } else {
                8000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()
            };
            linear_to_ulaw(x as i16)
        };
        let mut shrinks = Vec::new();
        let mut pushed = 0u32;
        for tick in 0..ticks {
            let now = tick * 160;
            // Packets sent every 20 ms; the first 40 arrive up to 80 ms late.
            while u64::from(pushed) * 160 <= now {
                let late = if pushed < 40 { rng.u64(0..640) } else { 0 };
                let arrival = u64::from(pushed) * 160 + late;
                let payload: Vec<u8> = (0..160).map(|i| tone(pushed * 160 + i)).collect();
                rx.push(
                    arrival.max(now),
                    tick,
                    1,
                    pushed as u16,
                    pushed * 160,
                    &payload,
                );
                pushed += 1;
            }
            let before = rx.counters().shrinks;
            rx.tick(now, now);
            if rx.counters().shrinks != before {
                shrinks.push(tick);
            }
        }
        shrinks
    }

    /// Start-up jitter ages out of the buffer's window while a tone plays:
    /// the frame it drops to shrink falls in the pause, not in the tone.
    #[test]
    fn the_delay_shrinks_in_a_pause() {
        // 5 s of tone, 400 ms of pause, then tone again.
        let shrinks = shrink_ticks(true, 400, 5.0..5.4, 3);
        assert!(!shrinks.is_empty(), "the delay never shrank");
        // The pause is ticks 250-270 (at the sender; played a little later).
        assert!(
            shrinks.iter().all(|&t| (250..=280).contains(&t)),
            "shrinks at ticks {shrinks:?}"
        );
    }

    /// Audio someone hears has its delay shrunk within a continuous sound
    /// (after waiting 2 s for a pause); audio only taps read keeps it, so
    /// no frame of a sound a detector is reading goes missing.
    #[test]
    fn only_heard_audio_is_shrunk_in_a_continuous_sound() {
        let heard = shrink_ticks(true, 1000, 0.0..0.0, 5);
        assert!(!heard.is_empty(), "a heard stream's delay shrinks");
        let unheard = shrink_ticks(false, 1000, 0.0..0.0, 5);
        assert!(unheard.is_empty(), "shrinks at ticks {unheard:?}");
    }

    #[test]
    fn odd_packets_are_dropped_and_a_new_duration_is_followed() {
        let mut rx = PcmIn::new(&PCMU, 20).unwrap();
        rx.push(0, 0, 1, 0, 0, &[0u8; 7]);
        assert_eq!(rx.counters().odd_duration_packets, 1);
        for i in 0..5u16 {
            rx.push(u64::from(i) * 240, 0, 1, i, u32::from(i) * 240, &[0u8; 240]);
        }
        assert_eq!(rx.counters().jitter_resizes, 1);
    }
}
