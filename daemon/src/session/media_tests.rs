//! The PCM path on a virtual clock: legs, the media clock and the packet
//! path driven with made-up instants (no sockets, no sleeping), so minutes
//! of call run in milliseconds.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use legato_dsp::codec::g711::{alaw_to_linear, linear_to_ulaw};

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
        let t0 = Instant::now();
        let mut legs = Legs::new(t0, SystemTime::now());
        let mut events = Events::new();
        for (i, f) in formats.iter().enumerate() {
            let (mut leg, _) = Leg::new(
                NewLeg {
                    id: format!("l{i}").into(),
                    session: Arc::from("s"),
                    request: LegRequest {
                        incoming: true,
                        metadata: Metadata::default(),
                        remote_offer: Some(offer(remote(i).port(), f)),
                        codecs: vec![PCMU, PCMA, G722, OPUS],
                        rtcp_mux: true,
                        strict_source: false,
                        local_direction: MediaDirection::SendRecv,
                        ptime: 20,
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
            self.legs.media_tick(tick, at, &mut self.tx);
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
    let mut h = Harness::new(&["0 101", "8 101"]);
    h.legs
        .route(&Harness::leg(0), &Harness::leg(1), 0.0)
        .unwrap();
    assert!(h.legs.get(1).unwrap().leg.view(None, |_| None).transcoding);
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
    let (mut at, mut total) = (0.0f64, 0.0f64);
    for (n, &s) in pcm.iter().enumerate() {
        let w = 2.0 * std::f64::consts::PI * 1000.0 * n as f64 / 8000.0;
        at += f64::from(s) * w.sin();
        total += f64::from(s) * f64::from(s);
    }
    let share = 2.0 * at * at / (pcm.len() as f64 * total);
    assert!(share > 0.9, "1 kHz share {share}");
}

/// A sender with 5 % loss, up to 40 ms of jitter, 1 % reordering and a
/// clock 0.5 % fast for 60 s, then a clean one for 20 s: the sink keeps
/// sending one packet per tick, the jitter buffer's delay stays within its
/// bounds, and it returns to its floor once the impairment ends.
#[test]
fn impaired_sender_on_a_virtual_clock() {
    let mut h = Harness::new(&["0 101", "8 101"]);
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
