//! Deciding each sink's path (relay or PCM) and running the media clock's
//! ticks over the legs and conferences that need them.

use std::time::Instant;

use legato_dsp::time::ClockRate;

use super::conference::PlayerTick;
use super::pcm_in::DigitBus;
use super::pcm_out::OutPacket;
use super::player::Step;
use super::{
    Detected, Frame, GENERATED_SSRC, Generated, LegMedia, MediaClock, PcmIn, PcmOut, Schedule,
    Source, audio_rate,
};
use crate::rtp::RtpHeader;
use crate::session::leg::{MediaPath, law_of};
use crate::session::legs::{LegSlot, Legs};
use crate::session::relay::Transmit;
use crate::session::{EventKind, EventSink, Leg, PacketKind, ToneSource};

/// What a leg's send side is set up for: codec, packet duration and
/// telephone-event clock rate.
type TxFormat = (crate::sdp::CodecSpec, u32, Option<u32>, u32);

impl<S: Copy, C> Legs<S, C> {
    /// Decides, for every leg with a source, whether its source's packets
    /// are relayed or go through the PCM path, and sets up (or drops) the
    /// receive and send sides and conferences accordingly. Runs on every
    /// routing, codec and conference change; allocation is fine here.
    pub(crate) fn replan(&mut self) {
        let n = self.slots.len();
        let mut need_rx = vec![false; n];
        let mut relays = vec![false; n];
        // Whose received audio is heard live (a sink on the PCM path, a
        // conference), not only read by taps.
        let mut heard = vec![false; n];
        for entry in self.slots.iter_mut().flatten() {
            // A terminated leg's recordings end (their files are finalized
            // off the shard when the taps go).
            if entry.leg.is_terminated() {
                entry.media.recordings.clear();
            }
        }
        for slot in 0..n {
            let Some(entry) = self.slots[slot].as_ref() else {
                continue;
            };
            // Detectors and tone handling listen to what the leg receives.
            if entry.media.detect.is_some() || entry.leg.handle_tones {
                need_rx[slot] = true;
            }
            // A recorded leg needs what it receives and what its source
            // leg receives decoded, whether or not that is relayed.
            if !entry.media.recordings.is_empty() {
                need_rx[slot] = true;
                if let Some(Source::Leg(src)) = entry.leg.source
                    && let Some(flag) = need_rx.get_mut(src as usize)
                {
                    *flag = true;
                }
            }
            let path = match entry.leg.source {
                Some(Source::Leg(src)) => match self.get(src) {
                    Some(s) => {
                        let path = leg_path(&s.leg, &entry.leg);
                        if path.is_relayed() {
                            relays[src as usize] = true;
                        } else {
                            need_rx[src as usize] = true;
                            heard[src as usize] = true;
                        }
                        path
                    }
                    None => MediaPath::None,
                },
                Some(Source::Conference(_) | Source::Player) => MediaPath::Pcm,
                None => MediaPath::None,
            };
            let relayed = path.is_relayed();
            let format = if relayed || entry.leg.is_terminated() {
                None
            } else if entry.leg.source.is_some() || entry.leg.sending_digits {
                tx_format(&entry.leg)
            } else {
                None
            };
            let input_rate = match entry.leg.source {
                Some(Source::Leg(src)) => self
                    .get(src)
                    .filter(|s| s.leg.codec().is_some())
                    .map(|s| audio_rate(s.leg.receive_codec().kind)),
                Some(Source::Conference(c)) => self.conference(c).map(|c| c.rate()),
                Some(Source::Player) => entry.media.player.as_ref().map(|p| p.rate()),
                None => None,
            };
            let source_digits = match entry.leg.source {
                Some(Source::Leg(src)) => self
                    .get(src)
                    .and_then(|s| s.media.rx.as_ref())
                    .map(|rx| rx.digits()),
                _ => None,
            };
            let Some(entry) = self.slots[slot].as_mut() else {
                continue;
            };
            let was_relayed = entry.leg.path.is_relayed();
            entry.leg.path = path;
            set_tx(&mut entry.media, format, input_rate, source_digits);
            if was_relayed != relayed {
                entry.leg.reset_out_source();
            }
        }
        // Conferences: talkers need their receive side; mix at the widest
        // member rate.
        for c in 0..self.conferences.len() {
            // A member that has left and faded out no longer counts
            // towards the mix's rate.
            if let Some(conf) = self.conferences[c].as_mut() {
                conf.prune();
            }
            let Some(conf) = self.conferences[c].as_ref() else {
                continue;
            };
            for leg in conf.talkers() {
                if let Some(flag) = need_rx.get_mut(leg as usize) {
                    *flag = true;
                }
                if let Some(flag) = heard.get_mut(leg as usize) {
                    *flag = true;
                }
            }
            let rate_of = |leg: u32| {
                self.get(leg)
                    .filter(|s| s.leg.codec().is_some())
                    .map(|s| audio_rate(s.leg.receive_codec().kind))
            };
            let widest = conf
                .legs()
                .filter_map(rate_of)
                .max_by_key(|r| r.hz())
                .unwrap_or(ClockRate::HZ_8000);
            let rate = conf.fixed_rate().unwrap_or(widest);
            let rates: Vec<(u32, Option<ClockRate>)> =
                conf.legs().map(|leg| (leg, rate_of(leg))).collect();
            if let Some(conf) = self.conferences[c].as_mut() {
                conf.configure(rate, |leg| {
                    rates.iter().find(|(l, _)| *l == leg).and_then(|(_, r)| *r)
                });
                let rate = conf.rate();
                for leg in conf.legs().collect::<Vec<_>>() {
                    if let Some(Some(entry)) = self.slots.get_mut(leg as usize)
                        && entry.leg.source == Some(Source::Conference(c as u32))
                        && let Some(tx) = entry.media.tx.as_mut()
                    {
                        tx.set_input_rate(rate);
                    }
                }
            }
        }
        for (slot, need) in need_rx.into_iter().enumerate() {
            let Some(entry) = self.slots[slot].as_mut() else {
                continue;
            };
            entry.leg.relays = relays[slot];
            let format = if need && !entry.leg.is_terminated() {
                entry
                    .leg
                    .codec()
                    .map(|_| (entry.leg.receive_codec(), entry.leg.receive_ptime()))
            } else {
                None
            };
            match format {
                None => entry.media.rx = None,
                Some((codec, ptime)) => {
                    let current = entry.media.rx.as_ref().map(|rx| rx.format());
                    if current != Some((codec, ptime)) {
                        entry.media.rx = PcmIn::new(&codec, ptime).map(Box::new);
                    }
                }
            }
            if let Some(rx) = entry.media.rx.as_mut() {
                rx.set_tone_handling(entry.leg.handle_tones, !entry.leg.keep_tones);
                rx.set_heard(heard[slot]);
            }
        }
        self.schedule = self.schedule_now();
    }

    fn schedule_now(&self) -> Schedule {
        let mut schedule = Schedule::default();
        for (slot, entry) in self.slots.iter().enumerate() {
            let Some(entry) = entry else { continue };
            if entry.media.rx.is_some() {
                schedule.rx.push(slot as u32);
            }
            if entry.media.tx.is_some() {
                schedule.tx.push(slot as u32);
            }
            if !entry.media.recordings.is_empty() {
                schedule.rec.push(slot as u32);
            }
            if entry.media.detect.is_some() {
                schedule.detect.push(slot as u32);
            }
        }
        for (c, conf) in self.conferences.iter().enumerate() {
            // A recorded conference ticks even when empty: its recordings'
            // timeline goes on (silence).
            if conf
                .as_ref()
                .is_some_and(|c| c.len() > 0 || !c.recordings.is_empty())
            {
                schedule.conferences.push(c as u32);
            }
        }
        schedule
    }

    /// Whether the media clock has work.
    pub(crate) fn has_media_work(&self) -> bool {
        !self.schedule.is_empty()
    }

    /// One media-clock tick (number `tick`, run at `now`): receive sides
    /// produce their frames, conferences mix, send sides encode and queue
    /// packets on `tx`. No allocation.
    pub(crate) fn media_tick<T: Transmit<Handle = S>>(
        &mut self,
        tick: u64,
        now: Instant,
        tx: &mut T,
        events: &mut impl EventSink,
    ) {
        for &slot in &self.schedule.rx {
            let Some(Some(entry)) = self.slots.get_mut(slot as usize) else {
                continue;
            };
            let events_rate = entry.leg.telephone_event_rate();
            if let Some(rx) = entry.media.rx.as_mut() {
                let rate = rx.rtp_rate().hz();
                rx.tick(
                    MediaClock::tick_time(tick, rate),
                    MediaClock::tick_time(tick, events_rate.unwrap_or(rate)),
                );
                if entry.leg.handle_tones {
                    for found in rx.take_tones() {
                        events.emit(
                            &entry.leg.session,
                            Some(&entry.leg.id),
                            EventKind::ToneReceived {
                                tone: found.tone,
                                source: if found.rfc4733 {
                                    ToneSource::Rfc4733
                                } else {
                                    ToneSource::InBand
                                },
                                duration_ms: found.duration_ms,
                            },
                        );
                    }
                }
            }
        }
        let mut regroup = false;
        for &c in &self.schedule.conferences {
            let slots = &self.slots;
            let Some(Some(conf)) = self.conferences.get_mut(c as usize) else {
                continue;
            };
            regroup |= conf.mix(|leg| {
                let rx = slots.get(leg as usize)?.as_ref()?.media.rx.as_ref()?;
                rx.is_active().then(|| (rx.frame(), rx.audio_rate()))
            });
            if let Some(playback) = conf.playback().cloned() {
                let session = conf.session.clone();
                let tick = conf.tick_player(|id, duration_ms| {
                    events.emit(
                        &session,
                        None,
                        EventKind::PlaybackReady {
                            playback: id.clone(),
                            duration_ms,
                        },
                    );
                });
                let kind = match tick {
                    PlayerTick::Quiet => None,
                    PlayerTick::Replan => {
                        regroup = true;
                        None
                    }
                    PlayerTick::Started(duration_ms) => Some(EventKind::PlaybackStarted {
                        playback,
                        duration_ms,
                    }),
                    PlayerTick::Ended(error) => {
                        Some(EventKind::PlaybackFinished { playback, error })
                    }
                };
                if let Some(kind) = kind {
                    events.emit(&session, None, kind);
                }
            }
            conf.record(tick);
        }
        for &slot in &self.schedule.tx {
            let source = match self.slots.get(slot as usize) {
                Some(Some(entry)) => entry.leg.source,
                _ => continue,
            };
            match source {
                Some(Source::Leg(src)) if src != slot => {
                    // The source's frame is read in place: borrow the two
                    // slots apart.
                    let (source, sink) = pair_mut(&mut self.slots, src as usize, slot as usize);
                    let Some(rx) = source.and_then(|s| s.media.rx.as_deref()) else {
                        continue;
                    };
                    if let Some(sink) = sink {
                        regroup |= tick_sink(
                            sink,
                            Some((rx.frame(), rx.audio_rate())),
                            rx.digits(),
                            now,
                            tx,
                        );
                    }
                }
                Some(Source::Conference(c)) => {
                    let input = self
                        .conferences
                        .get(c as usize)
                        .and_then(|c| c.as_ref())
                        .and_then(|conf| Some((conf.output(slot)?, conf.rate())));
                    let Some(Some(sink)) = self.slots.get_mut(slot as usize) else {
                        continue;
                    };
                    if let Some((output, rate)) = input {
                        regroup |= tick_sink(
                            sink,
                            Some((Frame::Pcm(output), rate)),
                            DigitBus::default(),
                            now,
                            tx,
                        );
                    }
                }
                Some(Source::Player) => {
                    let Some(Some(sink)) = self.slots.get_mut(slot as usize) else {
                        continue;
                    };
                    regroup |= tick_player(sink, now, tx, events);
                }
                None => {
                    // No source: only SendDigits keys keep a send side.
                    if let Some(Some(sink)) = self.slots.get_mut(slot as usize) {
                        regroup |= tick_sink(sink, None, DigitBus::default(), now, tx);
                    }
                }
                _ => {}
            }
        }
        if !self.schedule.rec.is_empty() {
            self.record(tick);
        }
        if !self.schedule.detect.is_empty() {
            regroup |= self.detect(events);
        }
        if regroup {
            self.replan();
        }
    }

    /// Copies this tick's frames of every recorded leg into its
    /// recordings' rings: what the leg received (its receive side) and
    /// what it was sent (its source leg's receive side, its conference's
    /// mix for it, or its player's frame), each at its own rate; silence
    /// where there is none. No allocation, and G.711 frames decode straight
    /// into the ring's buffers.
    fn record(&mut self, tick: u64) {
        for i in 0..self.schedule.rec.len() {
            let slot = self.schedule.rec[i];
            // Out of the slot while its frames are read (the source may be
            // another leg); put back below. Moving a Vec does not allocate.
            let Some(Some(entry)) = self.slots.get_mut(slot as usize) else {
                continue;
            };
            let mut recordings = std::mem::take(&mut entry.media.recordings);
            let Some(Some(entry)) = self.slots.get(slot as usize) else {
                continue;
            };
            let rx = entry.media.rx.as_deref();
            let received_rate = rx.map_or(8000, |rx| rx.audio_rate().hz());
            let received = rx.filter(|rx| rx.is_active()).map(|rx| rx.frame());
            let (sent_rate, sent) = match entry.leg.source {
                Some(Source::Leg(src)) if src != slot => {
                    match self.get(src).and_then(|s| s.media.rx.as_deref()) {
                        Some(rx) => (rx.audio_rate().hz(), rx.is_active().then(|| rx.frame())),
                        None => (received_rate, None),
                    }
                }
                Some(Source::Conference(c)) => match self.conference(c) {
                    Some(conf) => (conf.rate().hz(), conf.output(slot).map(Frame::Pcm)),
                    None => (received_rate, None),
                },
                Some(Source::Player) => match entry.media.player.as_deref() {
                    Some(player) if entry.leg.can_send() => {
                        (player.rate().hz(), Some(Frame::Pcm(player.frame())))
                    }
                    Some(player) => (player.rate().hz(), None),
                    None => (received_rate, None),
                },
                _ => (received_rate, None),
            };
            for recording in &mut recordings {
                // A full ring is counted by the tap and written as
                // silence by its writer: nothing to do here.
                let _ =
                    recording
                        .tap
                        .push_rates(tick, (received_rate, received), (sent_rate, sent));
            }
            if let Some(Some(entry)) = self.slots.get_mut(slot as usize) {
                entry.media.recordings = recordings;
            }
        }
    }
}

impl<S: Copy, C> Legs<S, C> {
    /// Feeds this tick's received frame of every leg with detectors to
    /// them (silence when nothing arrived) and raises what they found.
    /// Whether a leg's last detector finished (the caller re-plans: its
    /// receive side may no longer be needed).
    fn detect(&mut self, events: &mut impl EventSink) -> bool {
        let mut regroup = false;
        for i in 0..self.schedule.detect.len() {
            let slot = self.schedule.detect[i];
            let Some(Some(entry)) = self.slots.get_mut(slot as usize) else {
                continue;
            };
            let connected = entry.leg.state() == crate::session::LegState::Connected;
            let frame = entry
                .media
                .rx
                .as_deref()
                .filter(|rx| rx.is_active())
                .map(|rx| (rx.frame(), rx.audio_rate()));
            let Some(detectors) = entry.media.detect.as_deref_mut() else {
                continue;
            };
            let found = detectors.tick(frame, connected);
            for d in found.iter() {
                let (session, leg) = (&entry.leg.session, Some(&entry.leg.id));
                if let Detected::Voice { active, .. } = d {
                    events.emit(session, leg, EventKind::MicStatusChange { active });
                }
                if let Detected::Tone { .. } = d {
                    entry.media.tone_detected = true;
                }
                events.emit(session, leg, detected_event(d));
            }
            if detectors.is_empty() {
                entry.media.detect = None;
                regroup = true;
            }
        }
        regroup
    }
}

/// The event a detector's finding raises.
fn detected_event(d: Detected) -> EventKind {
    use super::detect::{reason_name, verdict_name};
    match d {
        Detected::Beep {
            frequency_hz,
            duration_ms,
            offset_ms,
        } => EventKind::BeepDetectionComplete {
            frequency_hz: f64::from(frequency_hz),
            duration_ms,
            offset_ms,
        },
        Detected::BeepTimeout { timeout_ms } => EventKind::BeepDetectionError {
            error: format!("no beep within {timeout_ms} ms"),
        },
        Detected::Tone {
            tone,
            country,
            offset_ms,
        } => EventKind::ToneDetected {
            tone,
            country,
            offset_ms,
        },
        Detected::Voice { active, at_ms } => EventKind::VoiceActivity {
            active,
            offset_ms: at_ms,
        },
        Detected::Identified {
            verdict,
            reason,
            decision_ms,
        } => EventKind::AudioIdentificationResult {
            result: verdict_name(verdict),
            reason: reason_name(reason),
            decision_ms,
        },
        Detected::IdentificationOver => EventKind::AudioIdentificationStopped,
    }
}

/// One tick of a leg playing its own player: the player's next frame into
/// the leg's send side, while the leg can send (a player waits for a leg
/// that is ringing or on hold). Raises PlaybackStarted after the first
/// frame; a player that ended raises PlaybackFinished and leaves the leg
/// with no source. Whether routing changed (the caller re-plans).
fn tick_player<S: Copy, C, T: Transmit<Handle = S>>(
    sink: &mut LegSlot<S, C>,
    now: Instant,
    tx: &mut T,
    events: &mut impl EventSink,
) -> bool {
    if !sink.leg.can_send() {
        return false;
    }
    // Out of the slot while the send side (in the same slot) reads its
    // frame: a move of the box, no allocation.
    let Some(mut player) = sink.media.player.take() else {
        return false;
    };
    let step = player.tick();
    if let Some(duration_ms) = player.take_ready() {
        events.emit(
            &sink.leg.session,
            Some(&sink.leg.id),
            EventKind::PlaybackReady {
                playback: player.id.clone(),
                duration_ms,
            },
        );
    }
    if player.take_started() {
        events.emit(
            &sink.leg.session,
            Some(&sink.leg.id),
            EventKind::PlaybackStarted {
                playback: player.id.clone(),
                duration_ms: player.duration_ms(),
            },
        );
    }
    let error = match step {
        Step::Frame => {
            let input = (Frame::Pcm(player.frame()), player.rate());
            let replan = tick_sink(sink, Some(input), DigitBus::default(), now, tx);
            sink.media.player = Some(player);
            return replan;
        }
        Step::Wait | Step::Replan => {
            sink.media.player = Some(player);
            return step == Step::Replan;
        }
        Step::Ended(error) => error,
    };
    events.emit(
        &sink.leg.session,
        Some(&sink.leg.id),
        EventKind::PlaybackFinished {
            playback: player.id.clone(),
            error,
        },
    );
    sink.leg.source = None;
    sink.leg.reset_out_source();
    true
}

/// Shared access to slot `a` and exclusive access to slot `b` (`a != b`).
fn pair_mut<T>(slots: &mut [Option<T>], a: usize, b: usize) -> (Option<&T>, Option<&mut T>) {
    if a >= slots.len() || b >= slots.len() || a == b {
        return (None, None);
    }
    if a < b {
        let (low, high) = slots.split_at_mut(b);
        (low[a].as_ref(), high[0].as_mut())
    } else {
        let (low, high) = slots.split_at_mut(a);
        (high[0].as_ref(), low[b].as_mut())
    }
}

/// One tick of a sink's send side, fed `input`. Whether its SendDigits
/// keys just ended (the leg's path is then re-planned: back to the relay,
/// or no send side without a source).
fn tick_sink<S: Copy, C, T: Transmit<Handle = S>>(
    sink: &mut LegSlot<S, C>,
    input: Option<(Frame<'_>, ClockRate)>,
    digits: DigitBus,
    now: Instant,
    tx: &mut T,
) -> bool {
    let LegSlot {
        send, leg, media, ..
    } = sink;
    let Some(out) = media.tx.as_mut() else {
        return false;
    };
    let send = *send;
    out.tick(input, digits, |packet| {
        send_generated(leg, send, now, &packet, tx);
    });
    if leg.sending_digits && !out.sending_keys() {
        leg.sending_digits = false;
        return true;
    }
    false
}

/// How `sink` gets `source`'s audio:
/// - relayed as they are: same codec and packet duration (unless the sink
///   asked for `always_transcode`);
/// - relayed with each code converted: µ-law ↔ A-law with the same packet
///   duration, when nothing the PCM path would give is lost, that is when
///   the source's RFC 4733 digits can be forwarded (the sink has
///   telephone-event at the same rate, or the source has none); else the
///   PCM path plays them in-band;
/// - otherwise the PCM path.
fn leg_path(source: &Leg, sink: &Leg) -> MediaPath {
    let (Some(_), Some(to)) = (source.codec(), sink.codec()) else {
        return MediaPath::Pcm;
    };
    let from = source.receive_codec();
    let same_ptime = source.receive_ptime() == sink.send_ptime();
    let removes_tones = source.handle_tones && !source.keep_tones;
    if removes_tones || sink.always_transcode || sink.sending_digits || !same_ptime {
        return MediaPath::Pcm;
    }
    if from == to {
        return MediaPath::Relay;
    }
    let digits_pass = match (source.telephone_event_rate(), sink.telephone_event_rate()) {
        (None, _) => true,
        (Some(a), Some(b)) => a == b,
        (Some(_), None) => false,
    };
    match (law_of(from.kind), law_of(to.kind)) {
        (Some(from), Some(to)) if digits_pass => MediaPath::Convert { from, to },
        _ => MediaPath::Pcm,
    }
}

fn tx_format(leg: &Leg) -> Option<TxFormat> {
    let codec = leg.codec()?;
    Some((
        codec,
        leg.send_ptime(),
        leg.telephone_event_rate(),
        leg.opus_bitrate(),
    ))
}

/// Sets up (or drops) a leg's send side for `format`.
fn set_tx(
    media: &mut LegMedia,
    format: Option<TxFormat>,
    input_rate: Option<ClockRate>,
    digits: Option<DigitBus>,
) {
    let Some(format) = format else {
        media.tx = None;
        media.tx_format = None;
        return;
    };
    if media.tx_format != Some(format) || media.tx.is_none() {
        let (codec, ptime, events, bitrate) = format;
        media.tx = PcmOut::new(&codec, ptime, events, bitrate).map(Box::new);
        media.tx_format = Some(format);
        if let (Some(tx), Some(digits)) = (media.tx.as_mut(), digits) {
            tx.follow_digits(digits);
        }
    }
    if let (Some(tx), Some(rate)) = (media.tx.as_mut(), input_rate) {
        tx.set_input_rate(rate);
    }
}

/// Sends one packet the PCM path generated for `leg`, through the leg's
/// outgoing stream (one SSRC, continuous numbering across paths).
fn send_generated<S: Copy, T: Transmit<Handle = S>>(
    leg: &mut Leg,
    send: S,
    now: Instant,
    packet: &OutPacket<'_>,
    tx: &mut T,
) {
    let kind = match packet.kind {
        Generated::Audio => PacketKind::Audio,
        Generated::TelephoneEvent => PacketKind::TelephoneEvent,
    };
    let header = RtpHeader {
        marker: packet.marker,
        payload_type: 0,
        sequence: packet.sequence,
        timestamp: packet.timestamp,
        ssrc: GENERATED_SSRC,
        payload_offset: 12,
        payload_len: packet.payload.len(),
    };
    let Some(plan) = leg.plan_generated(now, &header, kind) else {
        return;
    };
    let len = 12 + packet.payload.len();
    let sent = tx.push(send, plan.destination, len, |buf| {
        buf[0] = 0x80;
        plan.stamp(buf);
        buf[12..].copy_from_slice(packet.payload);
    });
    leg.counters.count_send(sent, len);
}
