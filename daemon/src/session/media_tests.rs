//! The PCM path on a virtual clock: legs, the media clock and the packet
//! path driven with made-up instants (no sockets, no sleeping), so minutes
//! of call run in milliseconds.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use legato_dsp::codec::g711::{self, Law, alaw_to_linear, linear_to_ulaw};

use super::media::{Endpoint, MediaClock};
use super::tests::{ALLOCATIONS, ARMED, Events, LIVE_BYTES, connect, params};
use super::*;
use crate::engine::{SendTo, SockId, TxQueue};
use crate::sdp::{G722, MediaDirection, OPUS, PCMA, PCMU};

/// A shard's legs without sockets: leg `i`'s remote party is
/// 127.0.0.1:(5000 + 2i).
struct Harness {
    legs: Legs<SendTo, ()>,
    events: Events,
    tx: TxQueue,
    t0: Instant,
    /// Packets sent: (destination, datagram); not recorded while `quiet`.
    sent: Vec<(SocketAddr, Vec<u8>)>,
    quiet: bool,
}

fn remote(i: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 5000 + 2 * i as u16))
}

fn offer(port: u16, formats: &str) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP {formats}\r\na=rtpmap:101 telephone-event/8000\r\n\
         a=rtpmap:9 G722/8000\r\na=rtpmap:111 opus/48000/2\r\na=sendrecv\r\n"
    )
}

impl Harness {
    /// Connected legs "l0", "l1"... offering `formats` each.
    fn new(formats: &[&str]) -> Self {
        Self::with(formats, false)
    }

    /// As [`Harness::new`], every leg asking for `always_transcode`.
    fn transcoding(formats: &[&str]) -> Self {
        Self::with(formats, true)
    }

    /// `formats` starting with "out:" make an outgoing leg whose peer
    /// answers with the formats after it.
    fn with(formats: &[&str], always_transcode: bool) -> Self {
        let t0 = Instant::now();
        let mut legs = Legs::new(t0, SystemTime::now());
        let mut events = Events::new();
        for (i, f) in formats.iter().enumerate() {
            let answer = f.strip_prefix("out:");
            let f = answer.unwrap_or(f);
            let (mut leg, _) = Leg::new(
                NewLeg {
                    id: format!("l{i}").into(),
                    session: Arc::from("s"),
                    request: LegRequest {
                        incoming: answer.is_none(),
                        metadata: Metadata::default(),
                        remote_offer: answer.is_none().then(|| offer(remote(i).port(), f)),
                        codecs: vec![PCMU, PCMA, G722, OPUS],
                        rtcp_mux: true,
                        strict_source: false,
                        local_direction: MediaDirection::SendRecv,
                        ptime: 20,
                        always_transcode,
                    },
                    advertised: "127.0.0.1".parse().unwrap(),
                    rtp_port: 30_000 + 2 * i as u16,
                    rtcp_port: 30_001 + 2 * i as u16,
                    seeds: [7 + i as u64, 9 + i as u64],
                },
                params(),
                t0,
                SystemTime::now(),
            )
            .unwrap();
            if answer.is_some() {
                let update = LegUpdate {
                    remote_sdp: Some((false, offer(remote(i).port(), f))),
                    ..LegUpdate::default()
                };
                leg.update(update, t0, SystemTime::now(), &mut events)
                    .unwrap();
            }
            connect(&mut leg, t0, &mut events);
            legs.by_id.insert(leg.id.clone(), i as u32);
            legs.slots.push(Some(LegSlot {
                send: SendTo {
                    fd: -1,
                    id: SockId(i as u32),
                },
                media: LegMedia::default(),
                leg,
                io: (),
            }));
        }
        Self {
            legs,
            events,
            tx: TxQueue::new(256),
            t0,
            sent: Vec::new(),
            quiet: false,
        }
    }

    fn leg(i: usize) -> Endpoint {
        Endpoint::Leg(format!("l{i}").into())
    }

    /// A received RTP packet on leg `slot` from its remote party.
    fn receive(&mut self, at: Instant, slot: usize, datagram: &[u8]) {
        handle_packet(
            &mut self.legs,
            &mut self.events,
            at,
            slot as u32,
            false,
            remote(slot),
            datagram,
            &mut self.tx,
        );
        self.drain();
    }

    /// Runs the media clock up to `t`.
    fn run_until(&mut self, t: Instant) {
        while let Some(tick) = self.legs.clock.due(t) {
            let at = self.legs.clock.next_deadline().min(t);
            self.legs
                .media_tick(tick, at, &mut self.tx, &mut self.events);
            self.drain();
        }
    }

    fn drain(&mut self) {
        let list = self.tx.take_ready();
        for &i in &list {
            if !self.quiet {
                let slot = self.tx.slot_mut(i);
                let port = u16::from_be(slot.v4.sin_port);
                let data = slot.buf[..slot.len].to_vec();
                self.sent
                    .push((SocketAddr::from(([127, 0, 0, 1], port)), data));
            }
            self.tx.release(i);
        }
        self.tx.restore_ready(list);
    }
}

fn rtp_packet(pt: u8, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, pt, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&ts.to_be_bytes());
    p[8..12].copy_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// Share of the power of 8 kHz `pcm` at `hz` (1 for a pure tone there).
fn tone_share(pcm: &[i16], hz: f64) -> f64 {
    let (mut re, mut im, mut total) = (0.0f64, 0.0f64, 0.0f64);
    for (n, &s) in pcm.iter().enumerate() {
        let w = 2.0 * std::f64::consts::PI * hz * n as f64 / 8000.0;
        re += f64::from(s) * w.cos();
        im += f64::from(s) * w.sin();
        total += f64::from(s) * f64::from(s);
    }
    2.0 * (re * re + im * im) / (pcm.len() as f64 * total.max(1.0))
}

fn tone_ulaw(start: usize, n: usize, hz: f64) -> Vec<u8> {
    (start..start + n)
        .map(|i| {
            let x = 8000.0 * (2.0 * std::f64::consts::PI * hz * i as f64 / 8000.0).sin();
            linear_to_ulaw(x as i16)
        })
        .collect()
}

#[test]
fn media_clock_is_drift_free_and_catches_up_a_bounded_number_of_ticks() {
    let t0 = Instant::now();
    let mut clock = MediaClock::new(t0, SystemTime::now());
    // Late wake-ups do not shift the grid.
    assert_eq!(clock.due(t0 + Duration::from_millis(7)), Some(0));
    assert_eq!(clock.due(t0 + Duration::from_millis(19)), None);
    assert_eq!(clock.next_deadline(), t0 + Duration::from_millis(20));
    assert_eq!(clock.due(t0 + Duration::from_millis(33)), Some(1));
    assert_eq!(clock.next_deadline(), t0 + Duration::from_millis(40));
    // A one-second stall: at most MAX_CATCH_UP + 1 ticks run back to back.
    let late = t0 + Duration::from_millis(1030);
    let mut run = 0;
    while clock.due(late).is_some() {
        run += 1;
    }
    assert_eq!(run, media::MAX_CATCH_UP + 1);
    assert!(clock.skipped > 40);
    assert_eq!(clock.next_deadline(), t0 + Duration::from_millis(1040));
    assert_eq!(MediaClock::tick_time(50, 8000), 8000);
}

/// PCMU → PCMA over a virtual minute: continuous output, the tone intact,
/// and (after the first ticks) no allocation at all.
#[test]
fn transcoding_runs_without_allocation() {
    let mut h = Harness::transcoding(&["0 101", "8 101"]);
    h.legs
        .route(&Harness::leg(0), &Harness::leg(1), 0.0)
        .unwrap();
    assert_eq!(
        h.legs.get(1).unwrap().leg.view(None, |_| None).path,
        MediaPath::Pcm
    );
    let t0 = h.t0;
    let mut sent_by_b = 0;
    for i in 0..3000usize {
        let at = t0 + Duration::from_millis(20 * i as u64 + 3);
        if i == 200 {
            // Warmed up: from now on nothing may allocate.
            h.quiet = true;
            ALLOCATIONS.store(0, Ordering::Relaxed);
            ARMED.with(|a| a.set(true));
        }
        // Only the shard's work is counted, not the test's packet making.
        ARMED.with(|a| a.set(false));
        let p = rtp_packet(
            0,
            i as u16,
            (i * 160) as u32,
            0xabc,
            &tone_ulaw(i * 160, 160, 1000.0),
        );
        ARMED.with(|a| a.set(i >= 200));
        h.receive(at, 0, &p);
        h.run_until(at + Duration::from_millis(10));
        if i < 200 {
            sent_by_b = h.sent.iter().filter(|(to, _)| *to == remote(1)).count();
        }
    }
    ARMED.with(|a| a.set(false));
    assert_eq!(
        ALLOCATIONS.load(Ordering::Relaxed),
        0,
        "allocations per tick"
    );
    assert!(sent_by_b > 180, "{sent_by_b} packets in the first 4 s");
    // The first 200 packets: PCMA, one stream, the 1 kHz tone.
    let out: Vec<&Vec<u8>> = h
        .sent
        .iter()
        .filter(|(to, _)| *to == remote(1))
        .map(|(_, p)| p)
        .collect();
    assert!(out.iter().all(|p| p[1] & 0x7f == 8));
    let pcm: Vec<i16> = out[20..]
        .iter()
        .flat_map(|p| p[12..].iter().map(|&b| alaw_to_linear(b)))
        .collect();
    let share = tone_share(&pcm, 1000.0);
    assert!(share > 0.9, "1 kHz share {share}");
}

/// PCMU → PCMA with telephone-event on both sides: every packet is
/// forwarded at once with each code mapped (exactly decode + encode),
/// digits pass through under the sink's payload type, nothing allocates.
/// Without telephone-event on the sink, or with `always_transcode`, the
/// PCM path takes over (it plays the digits in-band); a peer switching to
/// the sink's law is relayed as is.
#[test]
fn g711_law_conversion_on_the_relay_path() {
    let path = |h: &Harness| h.legs.get(1).unwrap().leg.view(None, |_| None).path;
    let mut h = Harness::new(&["out:0 8 101", "8 101"]);
    h.legs
        .route(&Harness::leg(0), &Harness::leg(1), 0.0)
        .unwrap();
    assert_eq!(
        path(&h),
        MediaPath::Convert {
            from: Law::Ulaw,
            to: Law::Alaw
        }
    );
    let t0 = h.t0;
    let mut sent = Vec::new();
    for i in 0..400usize {
        let at = t0 + Duration::from_millis(20 * i as u64 + 3);
        let payload = tone_ulaw(i * 160, 160, 700.0);
        let p = rtp_packet(0, 1000 + i as u16, (i * 160) as u32, 0xabc, &payload);
        if i == 100 {
            h.quiet = true;
            ALLOCATIONS.store(0, Ordering::Relaxed);
        }
        ARMED.with(|a| a.set(i >= 100));
        h.receive(at, 0, &p);
        h.run_until(at + Duration::from_millis(10));
        ARMED.with(|a| a.set(false));
        if i < 100 {
            // Forwarded by the packet itself, not by a tick.
            let (to, out) = h.sent.last().expect("forwarded at once").clone();
            assert_eq!(to, remote(1));
            sent.push((payload, out));
        }
    }
    assert_eq!(ALLOCATIONS.load(Ordering::Relaxed), 0, "allocations");
    assert_eq!(sent.len(), 100);
    for (i, (payload, out)) in sent.iter().enumerate() {
        assert_eq!(out[1] & 0x7f, 8, "PCMA payload type");
        let mut expect = payload.clone();
        g711::convert_in_place(Law::Ulaw, Law::Alaw, &mut expect);
        assert_eq!(&out[12..], &expect[..], "packet {i}");
        let seq = u16::from_be_bytes([out[2], out[3]]);
        let first = u16::from_be_bytes([sent[0].1[2], sent[0].1[3]]);
        assert_eq!(seq, first.wrapping_add(i as u16));
    }
    // A digit: forwarded under the sink's telephone-event type (101).
    h.quiet = false;
    h.sent.clear();
    let at = t0 + Duration::from_millis(20 * 400 + 3);
    h.receive(
        at,
        0,
        &rtp_packet(101, 1400, 400 * 160, 0xabc, &[5, 0x0a, 0, 160]),
    );
    let (_, digit) = h.sent.last().expect("digit forwarded");
    assert_eq!(
        (digit[1] & 0x7f, &digit[12..]),
        (101, &[5, 0x0a, 0, 160][..])
    );

    // The peer switches to PCMA: after the re-plan, relayed as is.
    let mut now = at;
    for i in 0..5usize {
        now += Duration::from_millis(20);
        let p = rtp_packet(
            8,
            1401 + i as u16,
            (401 + i as u32) * 160,
            0xabc,
            &[0x55; 160],
        );
        h.receive(now, 0, &p);
        if h.legs.get_mut(0).unwrap().leg.take_format_change() {
            h.legs.replan();
        }
    }
    assert_eq!(path(&h), MediaPath::Relay);
    let (_, last) = h.sent.last().unwrap();
    assert_eq!((last[1] & 0x7f, &last[12..]), (8, &[0x55; 160][..]));

    // No telephone-event on the sink: the PCM path (digits in-band).
    let mut h = Harness::new(&["0 101", "8"]);
    h.legs
        .route(&Harness::leg(0), &Harness::leg(1), 0.0)
        .unwrap();
    assert_eq!(path(&h), MediaPath::Pcm);
    // The sink asked for the PCM path.
    let mut h = Harness::transcoding(&["0", "8"]);
    h.legs
        .route(&Harness::leg(0), &Harness::leg(1), 0.0)
        .unwrap();
    assert_eq!(path(&h), MediaPath::Pcm);
    // Without digits anywhere, conversion.
    let mut h = Harness::new(&["8", "0"]);
    h.legs
        .route(&Harness::leg(0), &Harness::leg(1), 0.0)
        .unwrap();
    assert_eq!(
        path(&h),
        MediaPath::Convert {
            from: Law::Alaw,
            to: Law::Ulaw
        }
    );
}

/// A progress tone played into a connected PCMA leg on the virtual clock:
/// one packet per tick, the tone's 425 Hz in them, PlaybackStarted once,
/// nothing allocated per tick; StopPlayback silences the leg at once.
#[test]
fn a_tone_player_is_a_source_on_the_media_clock() {
    use legato_dsp::tone::{Country, ProgressTone};
    let mut h = Harness::new(&["8 101"]);
    let player = Player::tone("p1".into(), Country::De, ProgressTone::Dial).unwrap();
    let routed = h.legs.play("l0", player).unwrap();
    assert!(routed.replaced.is_none() && routed.held_back.is_none());
    let view = h.legs.view(0).unwrap();
    assert_eq!(view.playback.as_deref(), Some("p1"));
    assert_eq!(view.path, MediaPath::Pcm);
    let t0 = h.t0;
    for i in 1..=250u64 {
        if i == 50 {
            h.quiet = true;
            ALLOCATIONS.store(0, Ordering::Relaxed);
            ARMED.with(|a| a.set(true));
        }
        h.run_until(t0 + Duration::from_millis(20 * i + 1));
    }
    ARMED.with(|a| a.set(false));
    assert_eq!(
        ALLOCATIONS.load(Ordering::Relaxed),
        0,
        "allocations per tick"
    );
    let out: Vec<&Vec<u8>> = h
        .sent
        .iter()
        .filter(|(to, _)| *to == remote(0))
        .map(|(_, p)| p)
        .collect();
    assert!(
        (48..=52).contains(&out.len()),
        "{} packets in 1 s",
        out.len()
    );
    assert!(out.iter().all(|p| p[1] & 0x7f == 8));
    let pcm: Vec<i16> = out[1..]
        .iter()
        .flat_map(|p| p[12..].iter().map(|&b| alaw_to_linear(b)))
        .collect();
    let share = tone_share(&pcm, 425.0);
    assert!(share > 0.9, "425 Hz share {share}");
    let started: Vec<_> = h
        .events
        .iter()
        .filter(|(_, e)| matches!(e, EventKind::PlaybackStarted { .. }))
        .collect();
    assert_eq!(started.len(), 1);
    // Stopped: no more packets, no PlaybackFinished.
    assert!(h.legs.stop_playback("l0").unwrap());
    assert!(!h.legs.stop_playback("l0").unwrap());
    h.quiet = false;
    h.sent.clear();
    h.run_until(t0 + Duration::from_millis(20 * 300));
    assert!(h.sent.is_empty(), "{} packets after the stop", h.sent.len());
    assert!(
        !h.events
            .iter()
            .any(|(_, e)| matches!(e, EventKind::PlaybackFinished { .. }))
    );
    assert_eq!(h.legs.view(0).unwrap().playback, None);
}

/// A prompt (16 kHz, three segments) played into a PCMU leg: one packet
/// per tick while it lasts, its audio resampled in them, nothing allocated
/// per tick (segments are read through `ArcSwap` and `Arc` clones), then
/// PlaybackReady/Started/Finished once each and the leg quiet.
#[test]
fn a_prompt_player_reads_shared_pcm_without_allocating() {
    use crate::prompts::PromptAudio;
    let audio = Arc::new(PromptAudio::default());
    audio.set_rate(legato_dsp::time::ClockRate::HZ_16000);
    let tone: Vec<i16> = (0..48_000)
        .map(|i| {
            (8000.0 * (2.0 * std::f64::consts::PI * 500.0 * f64::from(i) / 16_000.0).sin()) as i16
        })
        .collect();
    for chunk in tone.chunks(16_000) {
        audio.publish(chunk.to_vec());
    }
    audio.complete();
    let mut h = Harness::new(&["0"]);
    h.legs
        .play("l0", Player::prompt("pr".into(), audio, false))
        .unwrap();
    let t0 = h.t0;
    for i in 1..=200u64 {
        if i == 20 {
            h.quiet = true;
            ALLOCATIONS.store(0, Ordering::Relaxed);
            ARMED.with(|a| a.set(true));
        }
        if i == 140 {
            ARMED.with(|a| a.set(false));
            assert_eq!(
                ALLOCATIONS.load(Ordering::Relaxed),
                0,
                "allocations per tick"
            );
            h.quiet = false;
        }
        h.run_until(t0 + Duration::from_millis(20 * i + 1));
    }
    let kinds: Vec<&str> = h
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            EventKind::PlaybackReady { .. } => Some("ready"),
            EventKind::PlaybackStarted { duration_ms, .. } => {
                assert_eq!(*duration_ms, 3000);
                Some("started")
            }
            EventKind::PlaybackFinished { error, .. } => {
                assert_eq!(error, &None);
                Some("finished")
            }
            _ => None,
        })
        .collect();
    assert_eq!(kinds, ["ready", "started", "finished"]);
    // 3 s = 150 packets; the quiet window kept ticks 20-139 out of `sent`.
    let out: Vec<&Vec<u8>> = h.sent.iter().map(|(_, p)| p).collect();
    assert_eq!(
        out.len() + 120,
        150,
        "{} packets outside the quiet window",
        out.len()
    );
    let pcm: Vec<i16> = out[..19]
        .iter()
        .flat_map(|p| p[12..].iter().map(|&b| g711::ulaw_to_linear(b)))
        .collect();
    assert!(tone_share(&pcm[160..], 500.0) > 0.9);
    assert_eq!(h.legs.view(0).unwrap().playback, None, "ended: no source");
}

/// A short prompt into a conference of two listeners: both hear it, the
/// events (no leg) come once each, and the conference is quiet after.
#[test]
fn a_prompt_into_a_conference_reaches_every_listener() {
    use crate::prompts::PromptAudio;
    let audio = Arc::new(PromptAudio::default());
    audio.set_rate(legato_dsp::time::ClockRate::HZ_8000);
    audio.publish(vec![3000; 800]);
    audio.complete();
    let mut h = Harness::new(&["0", "0"]);
    h.legs
        .create_conference("c".into(), "s".into(), None)
        .unwrap();
    for i in 0..2 {
        h.legs
            .route(&Endpoint::Conference("c".into()), &Harness::leg(i), 0.0)
            .unwrap();
    }
    h.legs
        .play_conference("c", Player::prompt("cp".into(), audio, false))
        .unwrap();
    h.run_until(h.t0 + Duration::from_millis(20 * 20 + 1));
    for i in 0..2 {
        let loud = h
            .sent
            .iter()
            .filter(|(to, p)| *to == remote(i) && g711::ulaw_to_linear(p[20]) > 1000)
            .count();
        assert!((4..=5).contains(&loud), "listener {i}: {loud} loud packets");
    }
    let events: Vec<(bool, &str)> = h
        .events
        .iter()
        .filter_map(|(leg, e)| {
            let kind = match e {
                EventKind::PlaybackReady { .. } => "ready",
                EventKind::PlaybackStarted { .. } => "started",
                EventKind::PlaybackFinished { .. } => "finished",
                _ => return None,
            };
            Some((leg.is_none(), kind))
        })
        .collect();
    assert_eq!(
        events,
        [(true, "ready"), (true, "started"), (true, "finished")]
    );
    assert!(
        !h.legs.stop_conference_playback("c").unwrap(),
        "already over"
    );
}

/// A player waits while its leg cannot send (here the peer put the call
/// on hold with `a=sendonly`): no packet and no PlaybackStarted.
#[test]
fn a_player_waits_for_a_leg_that_cannot_send() {
    use legato_dsp::tone::{Country, ProgressTone};
    let mut h = Harness::new(&["0"]);
    let hold = LegUpdate {
        remote_sdp: Some((
            true,
            offer(remote(0).port(), "0").replace("a=sendrecv", "a=sendonly"),
        )),
        ..LegUpdate::default()
    };
    h.legs
        .get_mut(0)
        .unwrap()
        .leg
        .update(hold, h.t0, SystemTime::now(), &mut h.events)
        .unwrap();
    let player = Player::tone("p".into(), Country::Us, ProgressTone::Ringback).unwrap();
    let routed = h.legs.play("l0", player).unwrap();
    assert!(routed.held_back.is_some());
    h.run_until(h.t0 + Duration::from_millis(500));
    assert!(h.sent.is_empty());
    assert!(
        !h.events
            .iter()
            .any(|(_, e)| matches!(e, EventKind::PlaybackStarted { .. }))
    );
}

/// SendDigits on a relayed leg with telephone-event: the leg moves to the
/// PCM path, sends each digit as RFC 4733 events (one start timestamp,
/// duration 100 ms = 800, three end packets) in its one outgoing stream,
/// then returns to the relay. On a leg without telephone-event the digits
/// go in-band, and legato-dsp's detector reads them back.
#[test]
fn send_digits_as_events_then_in_band() {
    use legato_dsp::dtmf::{Digit, DtmfDetector, DtmfDetectorConfig, DtmfEvent};
    let key = |c: char| Key {
        digit: Digit::from_char(c),
        on_ms: 100,
        off_ms: 100,
        events: false,
    };
    let mut h = Harness::new(&["0 101", "0 101"]);
    h.legs
        .route(&Harness::leg(0), &Harness::leg(1), 0.0)
        .unwrap();
    assert_eq!(h.legs.view(1).unwrap().path, MediaPath::Relay);
    h.legs
        .send_digits("l1", vec![key('1'), key(','), key('#')], DigitMode::Auto)
        .unwrap();
    assert_eq!(h.legs.view(1).unwrap().path, MediaPath::Pcm);
    let t0 = h.t0;
    for i in 1..=75u64 {
        h.run_until(t0 + Duration::from_millis(20 * i + 1));
    }
    assert_eq!(h.legs.view(1).unwrap().path, MediaPath::Relay, "back");
    let out: Vec<&Vec<u8>> = h
        .sent
        .iter()
        .filter(|(to, _)| *to == remote(1))
        .map(|(_, p)| p)
        .collect();
    let ssrc = &out[0][8..12];
    assert!(out.iter().all(|p| &p[8..12] == ssrc), "one SSRC");
    for w in out.windows(2) {
        let (a, b) = (
            u16::from_be_bytes([w[0][2], w[0][3]]),
            u16::from_be_bytes([w[1][2], w[1][3]]),
        );
        assert_eq!(b, a.wrapping_add(1), "continuous sequence");
    }
    let events: Vec<(u8, bool, u16, u32)> = out
        .iter()
        .filter(|p| p[1] & 0x7f == 101)
        .map(|p| {
            (
                p[12],
                p[13] & 0x80 != 0,
                u16::from_be_bytes([p[14], p[15]]),
                u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
            )
        })
        .collect();
    let ends: Vec<_> = events.iter().filter(|e| e.1).collect();
    assert_eq!(ends.len(), 6, "three end packets per digit: {events:?}");
    assert!(ends[..3].iter().all(|e| e.0 == 1 && e.2 == 800));
    assert!(ends[3..].iter().all(|e| e.0 == 11 && e.2 == 800));
    for code in [1u8, 11] {
        let stamps: Vec<u32> = events.iter().filter(|e| e.0 == code).map(|e| e.3).collect();
        assert!(
            stamps.windows(2).all(|w| w[0] == w[1]),
            "{code}: one timestamp"
        );
    }
    let (t1, t2) = (
        events.iter().find(|e| e.0 == 1).unwrap().3,
        events.iter().find(|e| e.0 == 11).unwrap().3,
    );
    // 100 ms tone + 100 ms pause + 500 ms for ','.
    assert_eq!(t2.wrapping_sub(t1), 5600, "digit spacing");

    // Without telephone-event: in-band, read back by the detector.
    let mut h = Harness::new(&["8"]);
    h.legs
        .send_digits(
            "l0",
            vec![key('1'), key('5'), key('9'), key('#')],
            DigitMode::Auto,
        )
        .unwrap();
    let err = h
        .legs
        .send_digits("l0", vec![key('1')], DigitMode::Rfc4733)
        .unwrap_err();
    assert!(matches!(err, EngineError::FailedPrecondition(_)), "{err:?}");
    for i in 1..=60u64 {
        h.run_until(h.t0 + Duration::from_millis(20 * i + 1));
    }
    let pcm: Vec<i16> = h
        .sent
        .iter()
        .filter(|(to, _)| *to == remote(0))
        .flat_map(|(_, p)| p[12..].iter().map(|&b| alaw_to_linear(b)))
        .collect();
    let mut detector = DtmfDetector::new(DtmfDetectorConfig::default()).unwrap();
    detector.handle_samples(&pcm);
    let mut read = String::new();
    while let Some(e) = detector.poll_event() {
        if let DtmfEvent::Started { digit, .. } = e {
            read.push(digit.to_char());
        }
    }
    assert_eq!(read, "159#");
    // Done: no send side left on a leg with no source.
    assert_eq!(h.legs.view(0).unwrap().path, MediaPath::None);
    let sent = h.sent.len();
    h.run_until(h.t0 + Duration::from_millis(2000));
    assert_eq!(h.sent.len(), sent, "silent once the digits are over");
}

/// A sender with 5 % loss, up to 40 ms of jitter, 1 % reordering and a
/// clock 0.5 % fast for 60 s, then a clean one for 20 s: the sink keeps
/// sending one packet per tick, the jitter buffer's delay stays within its
/// bounds, and it returns to its floor once the impairment ends.
#[test]
fn impaired_sender_on_a_virtual_clock() {
    let mut h = Harness::transcoding(&["0 101", "8 101"]);
    h.legs
        .route(&Harness::leg(0), &Harness::leg(1), 0.0)
        .unwrap();
    let mut rng = fastrand::Rng::with_seed(7);
    let t0 = h.t0 + Duration::from_millis(1);
    // (arrival, seq): built first, then delivered in arrival order.
    let mut arrivals: Vec<(Instant, u16)> = Vec::new();
    let impaired = 3000u32; // 60 s of 20 ms packets
    for i in 0..impaired {
        if rng.f64() < 0.05 {
            continue;
        }
        let sent = t0 + Duration::from_secs_f64(f64::from(i) * 0.020 / 1.005);
        let jitter = Duration::from_micros(rng.u64(0..40_000));
        arrivals.push((sent + jitter, i as u16));
    }
    for k in 0..arrivals.len() - 1 {
        if rng.f64() < 0.01 {
            let (a, b) = (arrivals[k].0, arrivals[k + 1].0);
            arrivals[k].0 = b;
            arrivals[k + 1].0 = a;
        }
    }
    let clean_from = t0 + Duration::from_secs_f64(f64::from(impaired) * 0.020 / 1.005);
    for i in 0..1000u32 {
        let at = clean_from + Duration::from_millis(20 * u64::from(i));
        arrivals.push((at, (impaired + i) as u16));
    }
    arrivals.sort_by_key(|a| a.0);
    let mut max_delay_ms = 0i64;
    let mut last_delays = Vec::new();
    let payload = tone_ulaw(0, 160, 440.0);
    for (at, seq) in arrivals {
        h.run_until(at);
        let p = rtp_packet(0, seq, u32::from(seq) * 160, 0x55, &payload);
        h.receive(at, 0, &p);
        let rx = h.legs.get(0).unwrap().media.rx.as_ref().unwrap();
        let now = h.legs.clock.time(at, 8000);
        if let Some(d) = rx.jitter().current_delay(now) {
            if at < clean_from {
                max_delay_ms = max_delay_ms.max(d.as_millis());
            } else {
                last_delays.push(d.as_millis());
            }
        }
    }
    let rx = h.legs.get(0).unwrap().media.rx.as_ref().unwrap();
    let counters = rx.jitter().counters();
    eprintln!("jitter buffer: max delay {max_delay_ms} ms under impairment, {counters:?}");
    assert!(max_delay_ms <= 220, "delay grew to {max_delay_ms} ms");
    let settled = &last_delays[last_delays.len() - 100..];
    let floor = settled.iter().copied().max().unwrap();
    assert!(floor <= 60, "delay after the impairment: {floor} ms");
    // The sink sent one packet per tick, numbered without a gap.
    let out: Vec<u16> = h
        .sent
        .iter()
        .filter(|(to, _)| *to == remote(1))
        .map(|(_, p)| u16::from_be_bytes([p[2], p[3]]))
        .collect();
    let span = h.legs.clock.ticks() as usize;
    assert!(
        out.len() + 5 >= span,
        "{} packets in {span} ticks",
        out.len()
    );
    assert!(out.windows(2).all(|w| w[1] == w[0].wrapping_add(1)));
}

/// A leg on the PCM path (receive and send side) takes at most 128 KiB of
/// heap with G.711 and G.722 (6 KiB each, measured). Opus is printed, not
/// bounded: 525 KiB, of which opus-rs's encoder and decoder states are 299
/// and 173 KiB, where libopus 1.3.1 needs 43 and 18
/// (`opus_encoder_get_size(1)`, `opus_decoder_get_size(1)`); see
/// benches/README.md, "Memory per PCM leg".
#[test]
fn a_pcm_leg_stays_small() {
    use super::media::{PcmIn, PcmOut};
    for codec in [PCMU, PCMA, G722, OPUS] {
        LIVE_BYTES.store(0, Ordering::Relaxed);
        ARMED.with(|a| a.set(true));
        let rx = PcmIn::new(&codec, 20).unwrap();
        let mut tx = PcmOut::new(&codec, 20, Some(codec.clock_rate), 32_000).unwrap();
        // A source at another rate: the send side's resampler.
        tx.set_input_rate(if codec == PCMU || codec == PCMA {
            legato_dsp::time::ClockRate::HZ_16000
        } else {
            legato_dsp::time::ClockRate::HZ_8000
        });
        ARMED.with(|a| a.set(false));
        let bytes = LIVE_BYTES.load(Ordering::Relaxed);
        eprintln!("{}: {} KiB per PCM leg", codec.name, bytes / 1024);
        if codec != OPUS {
            assert!(bytes <= 128 * 1024, "{}: {bytes} bytes", codec.name);
        }
        drop((rx, tx));
    }
}

/// A conference of four members on four codecs (PCMU, PCMA, G.722 and
/// Opus, so it mixes at 48 kHz), each talking and listening: after the
/// first ticks, packets and ticks allocate nothing.
#[test]
fn a_wideband_conference_runs_without_allocation() {
    use legato_dsp::codec::Encoder as _;
    use legato_dsp::codec::opus::{OpusApplication, OpusEncoder};
    use legato_dsp::time::ClockRate;
    let mut h = Harness::new(&["0", "8", "9", "111"]);
    let conference = Endpoint::Conference("c".into());
    h.legs
        .create_conference("c".into(), "s".into(), None)
        .unwrap();
    for i in 0..4 {
        h.legs.route(&Harness::leg(i), &conference, 0.0).unwrap();
        h.legs.route(&conference, &Harness::leg(i), 0.0).unwrap();
    }
    let c = h.legs.find_conference("c").unwrap();
    assert_eq!(h.legs.conference(c).unwrap().rate(), ClockRate::HZ_48000);
    let mut opus = OpusEncoder::new(ClockRate::HZ_48000, OpusApplication::Audio, 32_000).unwrap();
    let t0 = h.t0;
    for i in 0..500usize {
        let at = t0 + Duration::from_millis(20 * i as u64 + 3);
        ARMED.with(|a| a.set(false));
        if i == 100 {
            h.quiet = true;
            ALLOCATIONS.store(0, Ordering::Relaxed);
        }
        let narrow = tone_ulaw(i * 160, 160, 500.0);
        let wide: Vec<i16> = (0..960)
            .map(|k| {
                let t = (i * 960 + k) as f64 / 48_000.0;
                (6000.0 * (2.0 * std::f64::consts::PI * 700.0 * t).sin()) as i16
            })
            .collect();
        let mut encoded = [0u8; 1275];
        let n = opus.encode(&wide, &mut encoded).unwrap();
        let packets = [
            rtp_packet(0, i as u16, (i * 160) as u32, 1, &narrow),
            rtp_packet(8, i as u16, (i * 160) as u32, 2, &narrow),
            rtp_packet(9, i as u16, (i * 160) as u32, 3, &narrow),
            rtp_packet(111, i as u16, (i * 960) as u32, 4, &encoded[..n]),
        ];
        ARMED.with(|a| a.set(i >= 100));
        for (leg, p) in packets.iter().enumerate() {
            h.receive(at, leg, p);
        }
        h.run_until(at + Duration::from_millis(10));
    }
    ARMED.with(|a| a.set(false));
    assert_eq!(
        ALLOCATIONS.load(Ordering::Relaxed),
        0,
        "allocations per packet and tick"
    );
    // Each member got its own codec's packets all along.
    for (leg, pt) in [(0, 0u8), (1, 8), (2, 9), (3, 111)] {
        let sent: Vec<_> = h.sent.iter().filter(|(to, _)| *to == remote(leg)).collect();
        assert!(sent.len() > 90, "member {leg}: {} packets", sent.len());
        assert!(sent.iter().all(|(_, p)| p[1] & 0x7f == pt), "member {leg}");
    }
}
