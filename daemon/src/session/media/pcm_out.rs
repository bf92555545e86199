//! The send side of a leg on the PCM path: on each media-clock tick it
//! takes 20 ms of audio from its source (at the source's rate), resamples
//! it to the codec's rate, and encodes and packetises it in the leg's
//! packet duration (10 to 60 ms: a FIFO between the 20 ms ticks and the
//! packets). Key presses of the source go out as RFC 4733 events in the
//! leg's own telephone-event payload type and clock rate, or, when the peer
//! negotiated none, as in-band DTMF tones.
//!
//! Packets are numbered here on a stream of their own (sequence and
//! timestamp from zero, advancing with media time); the leg's `OutStream`
//! maps them into its one outgoing stream, exactly as it maps relayed
//! packets, so a peer sees one SSRC and continuous numbering whichever path
//! feeds it.

use legato_dsp::dtmf::{Digit, DtmfGenerator, DtmfGeneratorConfig};
use legato_dsp::resample::Resampler;
use legato_dsp::rfc4733::EventSender;
use legato_dsp::time::ClockRate;

use super::codec::{AudioEncoder, CodecKind, audio_rate, rtp_per_sample};
use super::pcm_in::{DigitBus, MAX_PACKET_MS};
use super::{FRAME_MS, Frame, MAX_FRAME, frame_len};
use crate::sdp::CodecSpec;

/// FIFO capacity: one longest packet plus one tick, at 48 kHz.
const FIFO: usize = (MAX_PACKET_MS as usize + FRAME_MS as usize) * 48;
/// Largest encoded payload.
pub(crate) const MAX_PAYLOAD: usize = 1275;
/// RFC 4733 updates every 50 ms (§2.5.1.2 suggests 50 ms).
const EVENT_INTERVAL_MS: u32 = 50;
/// Power level of the events legato sends, -dBm0 (RFC 4733 §2.3.4).
const EVENT_VOLUME: u8 = 10;
/// Longest key press legato re-sends, so a source whose end packets are
/// lost cannot hold a digit forever (the receiver's timeout ends it first).
const MAX_DIGIT_MS: u32 = 8000;
/// Duration of an in-band digit that had not ended when it started, and
/// of the pause after it (ITU-T Q.24 asks for at least 40 ms of each).
const INBAND_DIGIT_MS: u32 = 100;

/// Pause a ',' of SendDigits stands for.
pub(crate) const DIGIT_COMMA_MS: u32 = 500;

/// One key of a SendDigits request: a DTMF digit, or `None` for a ','
/// pause; how long its tone lasts and the pause after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Key {
    pub(crate) digit: Option<Digit>,
    pub(crate) on_ms: u32,
    pub(crate) off_ms: u32,
    /// Sent as RFC 4733 events (else as in-band tones).
    pub(crate) events: bool,
}

/// Keys the controller asked the leg to send, played in order on the
/// media clock (allocated by the command, never per tick).
#[derive(Debug)]
struct LocalDigits {
    keys: Vec<Key>,
    next: usize,
    /// Audio samples until the next key may start.
    wait: u64,
}

/// What a generated packet carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Generated {
    Audio,
    TelephoneEvent,
}

/// One packet for the leg to send.
#[derive(Debug)]
pub(crate) struct OutPacket<'a> {
    pub(crate) kind: Generated,
    pub(crate) marker: bool,
    pub(crate) sequence: u16,
    pub(crate) timestamp: u32,
    pub(crate) payload: &'a [u8],
}

/// Counters of a send side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TxCounters {
    pub(crate) encoded_frames: u64,
    pub(crate) encode_errors: u64,
    pub(crate) events_sent: u64,
    pub(crate) inband_digits: u64,
}

/// See the module docs.
///
/// `repr(C)`: what each tick reads first, the buffers last (see
/// `PcmIn`).
#[derive(Debug)]
#[repr(C)]
pub(crate) struct PcmOut {
    kind: CodecKind,
    /// An event being sent: ends when the source's press ends.
    event_on: bool,
    fifo_len: usize,
    /// Packet duration in audio samples and in RTP units.
    packet_samples: usize,
    packet_rtp: u32,
    sequence: u16,
    timestamp: u32,
    /// The last key press of the source acted on.
    digit_id: u32,
    /// The peer's telephone-event clock rate, when it negotiated events.
    events_rate: Option<u32>,
    pub(crate) counters: TxCounters,
    encoder: AudioEncoder,
    events: EventSender,
    inband: DtmfGenerator,
    /// Resampler from the source's rate, when it differs.
    resampler: Option<(ClockRate, Resampler)>,
    /// Upsampler of the 8 kHz in-band tones for wideband codecs.
    inband_resampler: Option<Resampler>,
    /// SendDigits keys being played (the source's presses are not
    /// followed meanwhile).
    local: Option<Box<LocalDigits>>,
    payload: [u8; MAX_PAYLOAD],
    scratch: [i16; MAX_FRAME],
    fifo: [i16; FIFO],
}

impl PcmOut {
    /// A send side for `codec`, sending packets of `ptime_ms`, with
    /// telephone events at `events_rate` (None: in-band DTMF).
    pub(crate) fn new(
        codec: &CodecSpec,
        ptime_ms: u32,
        events_rate: Option<u32>,
        bitrate: u32,
    ) -> Option<Self> {
        let kind = codec.kind;
        let rate = audio_rate(kind);
        // Opus frames are 10, 20, 40 or 60 ms (the SDP layer picks one).
        let ptime = match kind {
            CodecKind::Opus if ![10, 20, 40, 60].contains(&ptime_ms) => FRAME_MS,
            _ => ptime_ms.clamp(10, MAX_PACKET_MS) / 10 * 10,
        };
        let packet_samples = rate.samples_in_ms(ptime) as usize;
        let (num, den) = rtp_per_sample(kind);
        let events_interval = events_rate.map_or(400, |r| r * EVENT_INTERVAL_MS / 1000);
        let inband_resampler = if rate == ClockRate::HZ_8000 || events_rate.is_some() {
            None
        } else {
            Some(Resampler::new(ClockRate::HZ_8000, rate, FRAME_MS).ok()?)
        };
        Some(Self {
            kind,
            packet_samples,
            packet_rtp: packet_samples as u32 * num / den,
            encoder: AudioEncoder::new(kind, ptime, bitrate).ok()?,
            resampler: None,
            fifo: [0; FIFO],
            fifo_len: 0,
            scratch: [0; MAX_FRAME],
            payload: [0; MAX_PAYLOAD],
            sequence: 0,
            timestamp: 0,
            events_rate,
            events: EventSender::new(events_interval.max(1), EVENT_VOLUME).ok()?,
            event_on: false,
            inband: DtmfGenerator::new(
                DtmfGeneratorConfig::default().with_durations_ms(INBAND_DIGIT_MS, INBAND_DIGIT_MS),
            )
            .ok()?,
            inband_resampler,
            local: None,
            digit_id: 0,
            counters: TxCounters::default(),
        })
    }

    /// Prepares for a source whose frames come at `rate` (allocates a
    /// resampler when the rate is new: a routing change, not a tick).
    pub(crate) fn set_input_rate(&mut self, rate: ClockRate) {
        let own = audio_rate(self.kind);
        if rate == own {
            self.resampler = None;
        } else if self.resampler.as_ref().is_none_or(|(r, _)| *r != rate) {
            self.resampler = Resampler::new(rate, own, FRAME_MS).ok().map(|r| (rate, r));
        }
    }

    /// Queues SendDigits keys after those still being played. At most
    /// `max` keys may wait at once: `false` (nothing queued) beyond it.
    pub(crate) fn queue_keys(&mut self, keys: &[Key], max: usize) -> bool {
        let local = self.local.get_or_insert_with(|| {
            Box::new(LocalDigits {
                keys: Vec::with_capacity(keys.len()),
                next: 0,
                wait: 0,
            })
        });
        if local.keys.len() - local.next + keys.len() > max {
            return false;
        }
        local.keys.drain(..local.next);
        local.next = 0;
        local.keys.extend_from_slice(keys);
        true
    }

    /// Whether SendDigits keys are still being played (tones, events or
    /// their pauses).
    pub(crate) fn sending_keys(&self) -> bool {
        self.local.is_some()
    }

    /// Starts following a new source's key presses from `digits` (presses
    /// already under way are not re-sent).
    pub(crate) fn follow_digits(&mut self, digits: DigitBus) {
        self.digit_id = digits.id;
    }

    /// One tick: `input` is the source's 20 ms frame at `input_rate`
    /// (`None`: silence), `digits` the source's key presses. Each packet
    /// due goes to `emit`.
    pub(crate) fn tick(
        &mut self,
        input: Option<(Frame<'_>, ClockRate)>,
        digits: DigitBus,
        mut emit: impl FnMut(OutPacket<'_>),
    ) {
        let rate = audio_rate(self.kind);
        let n = frame_len(rate);
        if self.local.is_some() {
            // The source's presses are not followed while the controller's
            // keys play; presses already under way are not picked up later.
            self.digit_id = digits.id;
            self.play_keys(rate, n);
        } else {
            self.follow(digits);
        }
        if let Some((frame, r)) = input
            && r == rate
            && frame.len() == n
            && n == self.packet_samples
            && self.fifo_len == 0
            && self.inband.is_idle()
        {
            // One frame, one packet, same rate (the common case): encode
            // the source's frame as it is (G.711 to G.711: code by code).
            self.send_packet(Some(frame), &mut emit);
            return;
        }
        if self.fifo_len + n > FIFO {
            // Cannot happen: each tick drains whole packets. Keep the
            // newest audio rather than overrun.
            self.fifo_len = 0;
        }
        let dst = &mut self.fifo[self.fifo_len..self.fifo_len + n];
        match input {
            Some((frame, r)) if r == rate && frame.len() == n => frame.write_pcm(dst),
            Some((frame, r)) => match &mut self.resampler {
                Some((from, resampler)) if *from == r => {
                    let pcm = frame.pcm(&mut self.scratch);
                    if resampler.process(pcm, dst).is_err() {
                        dst.fill(0);
                    }
                }
                _ => dst.fill(0),
            },
            None => dst.fill(0),
        }
        if !self.inband.is_idle() {
            self.mix_inband(n);
        }
        self.fifo_len += n;
        while self.fifo_len >= self.packet_samples {
            self.send_packet(None, &mut emit);
        }
    }

    /// Advances the SendDigits keys by one tick of `n` samples at `rate`:
    /// starts the next key when the last one and its pause are over.
    fn play_keys(&mut self, rate: ClockRate, n: usize) {
        let Some(local) = self.local.as_mut() else {
            return;
        };
        let n = n as u64;
        if local.wait > 0 {
            // Rounded up to whole ticks: a key never cuts the last one's
            // pause short.
            local.wait = local.wait.saturating_sub(n);
            return;
        }
        let Some(key) = local.keys.get(local.next).copied() else {
            if !self.events.is_active() && self.inband.is_idle() {
                // Done: back to the defaults for the source's presses.
                self.local = None;
                self.reset_inband(INBAND_DIGIT_MS, INBAND_DIGIT_MS);
            }
            return;
        };
        local.next += 1;
        // This tick's samples are the key's first: it starts on the media
        // clock, so the spacing of keys rounds up to whole 20 ms ticks.
        let samples = |ms: u32| u64::from(rate.samples_in_ms(ms));
        let Some(digit) = key.digit else {
            local.wait = samples(DIGIT_COMMA_MS).saturating_sub(n);
            return;
        };
        local.wait = (samples(key.on_ms) + samples(key.off_ms)).saturating_sub(n);
        match (key.events, self.events_rate) {
            (true, Some(events_rate)) => {
                let duration = u64::from(events_rate) * u64::from(key.on_ms) / 1000;
                let now = u64::from(self.timestamp);
                if self.events.is_active() {
                    self.events.stop(now);
                }
                if self
                    .events
                    .start(digit.event_code(), duration, now, self.timestamp)
                    .is_ok()
                {
                    self.counters.events_sent += 1;
                }
            }
            _ => {
                self.reset_inband(key.on_ms, key.off_ms);
                if self.inband.push(digit).is_ok() {
                    self.counters.inband_digits += 1;
                }
            }
        }
    }

    /// A fresh in-band generator with these durations (a plain value: no
    /// allocation).
    fn reset_inband(&mut self, on_ms: u32, off_ms: u32) {
        if let Ok(generator) =
            DtmfGenerator::new(DtmfGeneratorConfig::default().with_durations_ms(on_ms, off_ms))
        {
            self.inband = generator;
        }
    }

    /// Acts on a new or ended key press of the source.
    fn follow(&mut self, digits: DigitBus) {
        if digits.id != self.digit_id {
            self.digit_id = digits.id;
            if digits.id == 0 {
                return;
            }
            match self.events_rate {
                Some(rate) => {
                    let max = u64::from(rate) * u64::from(MAX_DIGIT_MS) / 1000;
                    // A new press replaces one still being sent.
                    if self.events.is_active() {
                        self.events.stop(u64::from(self.timestamp));
                    }
                    if self
                        .events
                        .start(digits.event, max, u64::from(self.timestamp), self.timestamp)
                        .is_ok()
                    {
                        self.event_on = true;
                        self.counters.events_sent += 1;
                    }
                }
                None => {
                    if let Some(digit) = Digit::from_event_code(digits.event)
                        && self.inband.push(digit).is_ok()
                    {
                        self.counters.inband_digits += 1;
                    }
                }
            }
        }
        if digits.ended && self.event_on {
            self.event_on = false;
            self.events.stop(u64::from(self.timestamp));
        }
    }

    /// Replaces the frame just queued with the in-band tones.
    fn mix_inband(&mut self, n: usize) {
        let start = self.fifo_len;
        match &mut self.inband_resampler {
            None => {
                self.inband.fill(&mut self.fifo[start..start + n]);
            }
            Some(up) => {
                let narrow = &mut self.scratch[..frame_len(ClockRate::HZ_8000)];
                self.inband.fill(narrow);
                if up
                    .process(narrow, &mut self.fifo[start..start + n])
                    .is_err()
                {
                    self.fifo[start..start + n].fill(0);
                }
            }
        }
    }

    /// Sends the packet due: from `pcm` (exactly one packet of audio) or,
    /// with `None`, from the front of the FIFO.
    fn send_packet(&mut self, pcm: Option<Frame<'_>>, emit: &mut impl FnMut(OutPacket<'_>)) {
        let samples = self.packet_samples;
        let now = u64::from(self.timestamp);
        if self.events.is_active() {
            // RFC 4733 §2.5.1.1: no audio packets while an event is sent;
            // its packets carry the event's start timestamp.
            while let Some(packet) = self.events.poll(now) {
                let bytes = packet.payload.to_bytes();
                self.payload[..4].copy_from_slice(&bytes);
                emit(OutPacket {
                    kind: Generated::TelephoneEvent,
                    marker: packet.marker,
                    sequence: self.sequence,
                    timestamp: packet.timestamp,
                    payload: &self.payload[..4],
                });
                self.sequence = self.sequence.wrapping_add(1);
            }
        } else {
            let encoded = match pcm {
                Some(Frame::G711(law, codes)) => {
                    self.encoder
                        .encode_codes(law, codes, &mut self.scratch, &mut self.payload)
                }
                Some(Frame::Pcm(pcm)) => self.encoder.encode(pcm, &mut self.payload),
                None => self
                    .encoder
                    .encode(&self.fifo[..samples], &mut self.payload),
            };
            match encoded {
                Ok(len) => {
                    self.counters.encoded_frames += 1;
                    emit(OutPacket {
                        kind: Generated::Audio,
                        marker: false,
                        sequence: self.sequence,
                        timestamp: self.timestamp,
                        payload: &self.payload[..len],
                    });
                    self.sequence = self.sequence.wrapping_add(1);
                }
                Err(_) => self.counters.encode_errors += 1,
            }
        }
        if pcm.is_none() {
            self.fifo.copy_within(samples..self.fifo_len, 0);
            self.fifo_len -= samples;
        }
        self.timestamp = self.timestamp.wrapping_add(self.packet_rtp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdp::{PCMA, PCMU};

    #[test]
    fn thirty_ms_packets_from_twenty_ms_ticks() {
        let mut tx = PcmOut::new(&PCMA, 30, Some(8000), 0).unwrap();
        let frame = [1000i16; 160];
        let mut packets = Vec::new();
        for _ in 0..30 {
            tx.tick(
                Some((Frame::Pcm(&frame), ClockRate::HZ_8000)),
                DigitBus::default(),
                |p| {
                    packets.push((p.sequence, p.timestamp, p.payload.len()));
                },
            );
        }
        assert_eq!(packets.len(), 20);
        for (i, &(seq, ts, len)) in packets.iter().enumerate() {
            assert_eq!((seq, ts, len), (i as u16, i as u32 * 240, 240));
        }
    }

    /// PCMU in, PCMA out, 20 ms each: the codes are converted one by one
    /// exactly as decoding and re-encoding would, and a lost packet is
    /// concealed from the last codes although they were never decoded.
    #[test]
    fn g711_codes_are_converted_and_concealed() {
        use super::super::PcmIn;
        use legato_dsp::codec::g711::{
            alaw_to_linear, linear_to_alaw, linear_to_ulaw, ulaw_to_linear,
        };
        let mut rx = PcmIn::new(&PCMU, 20).unwrap();
        let mut tx = PcmOut::new(&PCMA, 20, Some(8000), 0).unwrap();
        let packet = |n: u32| -> Vec<u8> {
            (0..160u32)
                .map(|i| {
                    let t = f64::from(n * 160 + i) / 8000.0;
                    linear_to_ulaw((9000.0 * (2.0 * std::f64::consts::PI * 700.0 * t).sin()) as i16)
                })
                .collect()
        };
        let mut sent = Vec::new();
        let mut out = Vec::new();
        for tick in 0..40u64 {
            let now = tick * 160;
            let n = tick as u32;
            // Packet 30 is lost.
            if n != 30 {
                rx.push(now, tick, 7, n as u16, n * 160, &packet(n));
            }
            sent.push(packet(n));
            rx.tick(now, now);
            let frame = rx.frame();
            tx.tick(
                Some((frame, ClockRate::HZ_8000)),
                DigitBus::default(),
                |p| {
                    out.push(p.payload.to_vec());
                },
            );
        }
        assert_eq!(out.len(), 40);
        // The jitter buffer delays by its minimum; match packets by content.
        let converted = |codes: &[u8]| -> Vec<u8> {
            codes
                .iter()
                .map(|&c| linear_to_alaw(ulaw_to_linear(c)))
                .collect()
        };
        let first = out
            .iter()
            .position(|p| *p == converted(&sent[0]))
            .expect("packet 0 converted");
        for (k, payload) in out[first..].iter().enumerate() {
            if k == 30 {
                // Concealed: the last frame repeated, a little quieter.
                let power = |codes: &[u8]| -> f64 {
                    codes
                        .iter()
                        .map(|&c| f64::from(alaw_to_linear(c)).powi(2))
                        .sum()
                };
                let (lost, before) = (power(payload), power(&converted(&sent[29])));
                assert!(lost > before / 16.0 && lost < before, "{lost} {before}");
            } else {
                assert_eq!(*payload, converted(&sent[k]), "packet {k}");
            }
        }
        assert_eq!(rx.counters().concealed_frames, 1);
    }

    #[test]
    fn a_key_press_becomes_events_or_tones() {
        let frame = [0i16; 160];
        let press = |id, ended| DigitBus {
            id,
            event: 5,
            ended,
            duration_ms: if ended { 120 } else { 0 },
        };
        // With telephone-event: marker first, same timestamp, three ends.
        let mut tx = PcmOut::new(&PCMU, 20, Some(8000), 0).unwrap();
        let mut events = Vec::new();
        for tick in 0..20 {
            let digits = press(1, tick >= 6);
            tx.tick(
                Some((Frame::Pcm(&frame), ClockRate::HZ_8000)),
                digits,
                |p| {
                    if p.kind == Generated::TelephoneEvent {
                        events.push((p.marker, p.timestamp, p.payload[1] & 0x80 != 0));
                    }
                },
            );
        }
        assert!(events[0].0);
        assert!(events.iter().all(|e| e.1 == events[0].1));
        assert_eq!(events.iter().filter(|e| e.2).count(), 3);
        // Without: the audio carries the tones.
        let mut tx = PcmOut::new(&PCMU, 20, None, 0).unwrap();
        let mut loud = 0;
        for tick in 0..20 {
            tx.tick(
                Some((Frame::Pcm(&frame), ClockRate::HZ_8000)),
                press(1, tick >= 6),
                |p| {
                    if p.payload.iter().any(|&b| b != 0xff && b != 0x7f) {
                        loud += 1;
                    }
                },
            );
        }
        assert_eq!(tx.counters.inband_digits, 1);
        assert!((4..=6).contains(&loud), "{loud}");
    }
}
