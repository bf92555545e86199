//! Key presses across the PCM path. A PCMU caller sends "159#" as RFC 4733
//! telephone events (payload type 101): for each digit a first packet with
//! the marker bit, an update 50 ms later with the same timestamp, and three
//! end packets at 100 ms; 100 ms of audio (a quiet 440 Hz tone) between
//! digits, as paced 20 ms packets over 127.0.0.1.
//!
//! - To a PCMA callee that negotiated telephone-event (in its own payload
//!   type, 100), the digits arrive as events again: exactly one per digit,
//!   distinct start timestamps, end bit present, at least 80 ms long.
//! - To a PCMA callee that negotiated none, they arrive as in-band DTMF,
//!   which legato-dsp's detector reads back as exactly "159#".
//! - To an Opus callee (`opus/48000/2`) with `telephone-event/48000`, they
//!   arrive as events in the 48 kHz clock: exactly one per digit, distinct
//!   start timestamps, at least 3840 units (80 ms) long.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use legato_client::{Client, proto};
use legato_dsp::dtmf::{DtmfDetector, DtmfDetectorConfig, DtmfEvent};
use legato_dsp::rfc4733::{TelephoneEvent, digit_to_event};
use legato_tests::{
    G711, Io, Options, Peer, Received, Rtp, connected_leg_sdp, connected_leg_with, local_rtp,
    paced, per_backend, send_rtp, sine, spawn_collector,
};

const DIGITS: &str = "159#";
/// The caller's telephone-event payload type.
const CALLER_EVENT_PT: u8 = 101;
/// The callee's, in case (a): different, so re-sending must rewrite it.
const CALLEE_EVENT_PT: u8 = 100;
/// Audio before the first digit and after the last, ms.
const LEAD_IN_MS: usize = 400;
const TRAILER_MS: usize = 600;
/// One digit: 100 ms of events, then 100 ms of audio.
const DIGIT_CYCLE_MS: usize = 200;

/// What the caller sends at one 10 ms step of its schedule.
fn caller_step(socket: &std::net::UdpSocket, to: SocketAddr, step: usize, seq: &mut u16) {
    let t = step * 10;
    let send = |seq: &mut u16, marker: bool, pt: u8, ts: usize, payload: &[u8]| {
        let h = Rtp {
            marker,
            pt,
            seq: *seq,
            ts: (ts * 8) as u32,
            ssrc: 0x0d7f,
        };
        send_rtp(socket, to, h, payload).unwrap();
        *seq = seq.wrapping_add(1);
    };
    let audio = |seq: &mut u16| {
        let pcm = sine(440.0, 1000.0, t * 8, 160);
        let payload: Vec<u8> = pcm.into_iter().map(|s| G711::Pcmu.encode(s)).collect();
        send(seq, *seq == 0, 0, t, &payload);
    };
    let digits_end = LEAD_IN_MS + DIGITS.len() * DIGIT_CYCLE_MS;
    if t < LEAD_IN_MS || t >= digits_end {
        if t.is_multiple_of(20) {
            audio(seq);
        }
        return;
    }
    let index = (t - LEAD_IN_MS) / DIGIT_CYCLE_MS;
    let start = LEAD_IN_MS + index * DIGIT_CYCLE_MS;
    let event = digit_to_event(DIGITS.chars().nth(index).expect("digit")).expect("DTMF");
    let payload = |end: bool, duration_ms: usize| {
        TelephoneEvent {
            event,
            end,
            volume: 10,
            duration: (duration_ms * 8) as u16,
        }
        .to_bytes()
    };
    match t - start {
        0 => send(seq, true, CALLER_EVENT_PT, start, &payload(false, 0)),
        50 => send(seq, false, CALLER_EVENT_PT, start, &payload(false, 50)),
        100 => {
            for _ in 0..3 {
                send(seq, false, CALLER_EVENT_PT, start, &payload(true, 100));
            }
            audio(seq);
        }
        dt if dt > 100 && dt.is_multiple_of(20) => audio(seq),
        _ => {}
    }
}

/// Sets up caller → callee (callee offering `callee_sdp`), sends the
/// digits and returns what the callee's peer received and its leg.
async fn run(io: Io, callee_sdp: impl Fn(&Peer) -> String) -> Option<(Vec<Received>, proto::Leg)> {
    let daemon = legato_tests::Daemon::start(Options::new(io)).expect("start legatod")?;
    let client = daemon.client().await.unwrap();
    let session = client.create_session(None).await.unwrap();
    let (caller_peer, callee_peer) = (Peer::new().unwrap(), Peer::new().unwrap());
    let caller = connected_leg_with(&client, &session, &caller_peer, "0 101")
        .await
        .unwrap();
    let callee = incoming_connected(&client, &session, &callee_sdp(&callee_peer)).await;
    client
        .send_media(caller.leg_id.as_str(), callee.leg_id.as_str())
        .await
        .unwrap();
    let callee = client.get_leg(&callee.leg_id).await.unwrap();
    assert!(callee.transcoding, "PCMU to PCMA goes through the PCM path");
    let steps = (LEAD_IN_MS + DIGITS.len() * DIGIT_CYCLE_MS + TRAILER_MS) / 10;
    let start = Instant::now() + Duration::from_millis(50);
    let until = start + Duration::from_millis(steps as u64 * 10 + 300);
    let collector = spawn_collector(&callee_peer, until).unwrap();
    let socket = caller_peer.socket.try_clone().unwrap();
    let to = local_rtp(&caller);
    let sender = std::thread::spawn(move || {
        let mut seq = 0u16;
        paced(start, steps, Duration::from_millis(10), |step| {
            caller_step(&socket, to, step, &mut seq);
        });
    });
    sender.join().unwrap();
    let got = collector.join().unwrap();
    let leg = client.get_leg(&callee.leg_id).await.unwrap();
    drop(daemon);
    Some((got, leg))
}

async fn incoming_connected(client: &Client, session: &str, sdp: &str) -> proto::Leg {
    connected_leg_sdp(client, session, sdp.to_owned())
        .await
        .unwrap()
}

/// (a) A PCMA callee with telephone-event in payload type 100.
async fn events_to_events(io: Io) {
    let sdp = |peer: &Peer| {
        format!(
            "v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {} RTP/AVP 8 {CALLEE_EVENT_PT}\r\na=rtpmap:8 PCMA/8000\r\n\
             a=rtpmap:{CALLEE_EVENT_PT} telephone-event/8000\r\na=fmtp:{CALLEE_EVENT_PT} 0-16\r\n\
             a=sendrecv\r\n",
            peer.addr().port()
        )
    };
    let Some((got, leg)) = run(io, sdp).await else {
        return;
    };
    assert_eq!(leg.telephone_event_payload_type, u32::from(CALLEE_EVENT_PT));
    let audio = got.iter().filter(|p| p.rtp.pt == 8).count();
    let events: Vec<&Received> = got.iter().filter(|p| p.rtp.pt == CALLEE_EVENT_PT).collect();
    let others = got.len() - audio - events.len();
    assert_eq!(others, 0, "packets of other payload types");
    // Group the events by start timestamp, in order of arrival.
    let mut presses: Vec<(u32, Vec<(bool, TelephoneEvent)>)> = Vec::new();
    for p in &events {
        let ev = TelephoneEvent::parse(&p.payload).expect("4-byte event");
        match presses.iter_mut().find(|(ts, _)| *ts == p.rtp.ts) {
            Some((_, packets)) => packets.push((p.rtp.marker, ev)),
            None => presses.push((p.rtp.ts, vec![(p.rtp.marker, ev)])),
        }
    }
    let summary: Vec<String> = presses
        .iter()
        .map(|(ts, packets)| {
            let last = packets.last().expect("one packet").1;
            format!(
                "'{}' ts {ts}: {} packets, {} end, duration {} ({} ms)",
                legato_dsp::rfc4733::event_to_digit(last.event).unwrap_or('?'),
                packets.len(),
                packets.iter().filter(|(_, e)| e.end).count(),
                last.duration,
                u32::from(last.duration) / 8
            )
        })
        .collect();
    eprintln!("{io:?}: {audio} PCMA packets; events: {summary:#?}");
    assert_eq!(presses.len(), DIGITS.len(), "one event per digit");
    for ((ts, packets), digit) in presses.iter().zip(DIGITS.chars()) {
        let code = digit_to_event(digit).unwrap();
        assert!(
            packets.iter().all(|(_, e)| e.event == code),
            "digit {digit} at {ts}"
        );
        assert!(packets[0].0, "digit {digit}: marker on the first packet");
        assert!(
            packets[1..].iter().all(|(m, _)| !m),
            "digit {digit}: one marker"
        );
        let ends: Vec<u16> = packets
            .iter()
            .filter(|(_, e)| e.end)
            .map(|(_, e)| e.duration)
            .collect();
        assert!(!ends.is_empty(), "digit {digit}: no end packet");
        let duration = *ends.iter().max().unwrap();
        assert!(
            (640..=2400).contains(&duration),
            "digit {digit}: duration {duration} (8 kHz units)"
        );
    }
    // RFC 4733 §2.5.1.1: no audio while an event is under way, and the
    // audio after it resumes at or after the event's end in media time.
    for (ts, packets) in &presses {
        let first = got
            .iter()
            .position(|p| p.rtp.pt == CALLEE_EVENT_PT && p.rtp.ts == *ts);
        let first_end = got.iter().position(|p| {
            p.rtp.pt == CALLEE_EVENT_PT
                && p.rtp.ts == *ts
                && TelephoneEvent::parse(&p.payload).is_some_and(|e| e.end)
        });
        let (first, first_end) = (first.unwrap(), first_end.unwrap());
        assert!(
            got[first..first_end]
                .iter()
                .all(|p| p.rtp.pt == CALLEE_EVENT_PT),
            "audio inside the event at {ts}"
        );
        let duration = packets
            .iter()
            .map(|(_, e)| u32::from(e.duration))
            .max()
            .unwrap();
        let resumed = got[first_end..]
            .iter()
            .find(|p| p.rtp.pt == 8)
            .map(|p| p.rtp.ts.wrapping_sub(*ts));
        assert!(
            resumed.is_some_and(|r| r >= duration && r <= duration + 800),
            "audio resumes {resumed:?} units after the event at {ts} ({duration} long)"
        );
    }
    let starts: Vec<u32> = presses.iter().map(|(ts, _)| *ts).collect();
    for w in starts.windows(2) {
        let gap = w[1].wrapping_sub(w[0]);
        // Digits start 200 ms (1600 units) apart; allow scheduling slack.
        assert!((1200..=2000).contains(&gap), "start timestamps {starts:?}");
    }
    assert!(audio >= 60, "audio between digits: {audio} packets");
}

/// (b) A PCMA callee without telephone-event: in-band DTMF.
async fn events_to_inband(io: Io) {
    let Some((got, leg)) = run(io, |peer: &Peer| {
        peer.offer_with("8", "a=sendrecv", "127.0.0.1")
    })
    .await
    else {
        return;
    };
    assert_eq!(
        leg.telephone_event_payload_type, 0,
        "no telephone-event negotiated"
    );
    assert!(got.iter().all(|p| p.rtp.pt == 8), "only PCMA packets");
    for w in got.windows(2) {
        assert_eq!(w[1].rtp.seq, w[0].rtp.seq.wrapping_add(1), "no gaps");
    }
    let mut detector = DtmfDetector::new(DtmfDetectorConfig::default()).unwrap();
    let mut heard = String::new();
    let mut spans = Vec::new();
    for p in &got {
        let pcm: Vec<i16> = p.payload.iter().map(|&c| G711::Pcma.decode(c)).collect();
        detector.handle_samples(&pcm);
        while let Some(event) = detector.poll_event() {
            match event {
                DtmfEvent::Started {
                    digit,
                    low_dbm0,
                    high_dbm0,
                    ..
                } => {
                    heard.push(digit.to_char());
                    spans.push(format!(
                        "'{}' {low_dbm0:.1}/{high_dbm0:.1} dBm0",
                        digit.to_char()
                    ));
                }
                DtmfEvent::Ended { digit, start, end } => {
                    spans.push(format!("'{}' {} ms", digit.to_char(), (end - start) / 8));
                }
            }
        }
    }
    eprintln!("{io:?}: {} PCMA packets; detector: {spans:?}", got.len());
    assert_eq!(heard, DIGITS);
}

/// Payload type of the Opus callee's audio.
const OPUS_PT: u8 = 111;

/// (c) An Opus callee with telephone-event/48000 in payload type 101.
async fn events_to_opus_events(io: Io) {
    let sdp = |peer: &Peer| {
        format!(
            "v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {} RTP/AVP {OPUS_PT} 101\r\na=rtpmap:{OPUS_PT} opus/48000/2\r\n\
             a=fmtp:{OPUS_PT} useinbandfec=1\r\n\
             a=rtpmap:101 telephone-event/48000\r\na=fmtp:101 0-16\r\na=sendrecv\r\n",
            peer.addr().port()
        )
    };
    let Some((got, leg)) = run(io, sdp).await else {
        return;
    };
    assert_eq!(
        leg.codec.as_ref().map(|c| c.payload_type),
        Some(u32::from(OPUS_PT))
    );
    assert_eq!(leg.telephone_event_payload_type, 101);
    let audio = got.iter().filter(|p| p.rtp.pt == OPUS_PT).count();
    let events: Vec<&Received> = got.iter().filter(|p| p.rtp.pt == 101).collect();
    assert_eq!(
        got.len() - audio - events.len(),
        0,
        "packets of other payload types"
    );
    let mut presses: Vec<(u32, Vec<(bool, TelephoneEvent)>)> = Vec::new();
    for p in &events {
        let ev = TelephoneEvent::parse(&p.payload).expect("4-byte event");
        match presses.iter_mut().find(|(ts, _)| *ts == p.rtp.ts) {
            Some((_, packets)) => packets.push((p.rtp.marker, ev)),
            None => presses.push((p.rtp.ts, vec![(p.rtp.marker, ev)])),
        }
    }
    let summary: Vec<String> = presses
        .iter()
        .map(|(ts, packets)| {
            let longest = packets.iter().map(|(_, e)| e.duration).max().unwrap_or(0);
            format!(
                "'{}' ts {ts}: {} packets, {} end, duration {longest} ({} ms)",
                legato_dsp::rfc4733::event_to_digit(packets[0].1.event).unwrap_or('?'),
                packets.len(),
                packets.iter().filter(|(_, e)| e.end).count(),
                u32::from(longest) / 48
            )
        })
        .collect();
    eprintln!("{io:?}: {audio} Opus packets; events: {summary:#?}");
    assert_eq!(presses.len(), DIGITS.len(), "one event per digit");
    for ((ts, packets), digit) in presses.iter().zip(DIGITS.chars()) {
        let code = digit_to_event(digit).unwrap();
        assert!(
            packets.iter().all(|(_, e)| e.event == code),
            "digit {digit} at {ts}"
        );
        assert!(packets[0].0, "digit {digit}: marker on the first packet");
        assert!(
            packets.iter().any(|(_, e)| e.end),
            "digit {digit}: no end packet"
        );
        let duration = packets.iter().map(|(_, e)| e.duration).max().unwrap();
        // 80 ms at least (100 ms sent), at most 300 ms, in 48 kHz units.
        assert!(
            (3840..=14400).contains(&duration),
            "digit {digit}: duration {duration} (48 kHz units)"
        );
    }
    let starts: Vec<u32> = presses.iter().map(|(ts, _)| *ts).collect();
    for w in starts.windows(2) {
        let gap = w[1].wrapping_sub(w[0]);
        // Digits start 200 ms (9600 units) apart; allow scheduling slack.
        assert!((7200..=12000).contains(&gap), "start timestamps {starts:?}");
    }
    assert!(audio >= 60, "audio between digits: {audio} packets");
}

per_backend!(events_to_events, events_to_inband, events_to_opus_events);
