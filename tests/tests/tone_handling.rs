//! SetToneHandling and InjectDigits end to end (Call.handleTones), caller A
//! bridged to callee B, real peers over 127.0.0.1:
//!
//! - In-band "0123456789*#ABCD" (PCMU and PCMA; 100 ms keys at −26 to
//!   0 dBm0 between stretches of a 440 Hz "voice"): one ToneReceived per
//!   key, in order, source IN_BAND, with its duration; what B receives
//!   holds no digit a permissive detector (legato-dsp's, one window) can
//!   find, and the voice around the keys still arrives.
//! - RFC 4733 "159#": one ToneReceived per key, source RFC4733; B gets no
//!   telephone-event packet and no in-band copy.
//! - InjectDigits: source SIP_INFO while handling is on, nothing while off.
//! - Handling off: nothing raised, in-band keys and RFC 4733 events reach B.
//! - Detect only (`keep_in_audio`): every in-band and RFC 4733 key is
//!   reported, the call stays relayed, and B still gets every key.
//! - Bad requests get clear errors.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use legato_client::{Client, Code, EventFilter, proto};
use legato_dsp::dtmf::{Digit, DtmfGenerator, DtmfGeneratorConfig};
use legato_dsp::rfc4733::TelephoneEvent;
use legato_tests::{
    G711, Io, Options, Peer, Received, Rtp, connected_leg_with, daemon_or_skip, local_rtp, paced,
    per_backend, permissive_dtmf, send_payloads_paced, send_rtp, sine, spawn_collector,
    tone_level_db, wait_event,
};
use proto::event::Kind;

const KEYS: &str = "0123456789*#ABCD";
/// The peers' telephone-event payload type.
const EVENT_PT: u8 = 101;
/// Voice before the first key and after each, ms.
const VOICE_MS: usize = 200;
/// Each key, ms.
const KEY_MS: usize = 100;

/// Caller A bridged to callee B (A's audio goes to B), both in `law`.
struct Call {
    client: Client,
    a: proto::Leg,
    b: proto::Leg,
    a_peer: Peer,
    b_peer: Peer,
}

async fn call(client: &Client, law: G711) -> Call {
    let session = client.create_session(None).await.unwrap();
    let (a_peer, b_peer) = (Peer::new().unwrap(), Peer::new().unwrap());
    let a = connected_leg_with(client, &session, &a_peer, law.formats())
        .await
        .unwrap();
    let b = connected_leg_with(client, &session, &b_peer, law.formats())
        .await
        .unwrap();
    client
        .send_media(a.leg_id.as_str(), b.leg_id.as_str())
        .await
        .unwrap();
    Call {
        client: client.clone(),
        a,
        b,
        a_peer,
        b_peer,
    }
}

/// Voice, then each key of `KEYS` at a level from −26 to 0 dBm0 followed
/// by voice: 8 kHz samples.
fn in_band_keys() -> Vec<i16> {
    let voice = |n0: usize| sine(440.0, 1000.0, n0, VOICE_MS * 8);
    let mut pcm = voice(0);
    for (i, key) in KEYS.chars().enumerate() {
        let level = -26.0 + 26.0 * i as f32 / (KEYS.len() - 1) as f32;
        let mut g = DtmfGenerator::new(
            DtmfGeneratorConfig {
                low_dbm0: level,
                high_dbm0: level,
                ..DtmfGeneratorConfig::default()
            }
            .with_durations_ms(KEY_MS as u32, 0),
        )
        .unwrap();
        g.push(Digit::from_char(key).unwrap()).unwrap();
        let mut tone = vec![0i16; KEY_MS * 8];
        g.fill(&mut tone);
        pcm.extend(tone);
        pcm.extend(voice(pcm.len()));
    }
    pcm
}

/// Sends `pcm` from `peer` to `to` as paced 20 ms `law` packets.
fn send_pcm(peer: &Peer, to: SocketAddr, law: G711, pcm: &[i16]) -> std::thread::JoinHandle<()> {
    let socket = peer.socket.try_clone().unwrap();
    let frames = law.frames(pcm);
    std::thread::spawn(move || send_payloads_paced(&socket, to, law.pt(), 160, &frames))
}

/// What `law` audio B received, decoded in arrival order.
fn decoded(got: &[Received], law: G711) -> Vec<i16> {
    got.iter()
        .filter(|p| p.rtp.pt == law.pt())
        .flat_map(|p| p.payload.iter().map(move |&c| law.decode(c)))
        .collect()
}

/// The ToneReceived events among `events`: (tone, source, duration).
fn tones(events: &[proto::Event]) -> Vec<(String, proto::ToneSource, u32)> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            Some(Kind::ToneReceived(t)) => Some((t.tone.clone(), t.source(), t.duration_ms)),
            _ => None,
        })
        .collect()
}

/// Every event until `quiet` passes without one.
async fn drain<S>(events: &mut S, quiet: Duration) -> Vec<proto::Event>
where
    S: futures::Stream<Item = Result<proto::Event, legato_client::Error>> + Unpin,
{
    let mut seen = Vec::new();
    while let Ok(e) = wait_event(events, quiet, |_| true).await {
        seen.push(e);
    }
    seen
}

/// Sends `pcm` from A and returns what B received and A's events.
async fn run_in_band(c: &Call, law: G711, pcm: &[i16]) -> (Vec<Received>, Vec<proto::Event>) {
    let mut events = c
        .client
        .watch_events(EventFilter::new().leg(&c.a.leg_id))
        .await
        .unwrap();
    let until = Instant::now() + Duration::from_millis((pcm.len() / 8) as u64 + 800);
    let collector = spawn_collector(&c.b_peer, until).unwrap();
    send_pcm(&c.a_peer, local_rtp(&c.a), law, pcm)
        .join()
        .unwrap();
    let got = tokio::task::spawn_blocking(move || collector.join().unwrap())
        .await
        .unwrap();
    let seen = drain(&mut events, Duration::from_millis(300)).await;
    (got, seen)
}

async fn in_band_keys_are_reported_and_removed(io: Io) {
    let daemon = daemon_or_skip!(Options::new(io));
    let client = daemon.client().await.unwrap();
    let pcm = in_band_keys();
    assert_eq!(permissive_dtmf(&pcm), KEYS, "the input holds every key");
    for law in [G711::Pcmu, G711::Pcma] {
        let c = call(&client, law).await;
        client.set_tone_handling(&c.a.leg_id, true).await.unwrap();
        // Idempotent.
        client.set_tone_handling(&c.a.leg_id, true).await.unwrap();
        let (got, seen) = run_in_band(&c, law, &pcm).await;
        let found = tones(&seen);
        let keys: String = found.iter().map(|(t, ..)| t.as_str()).collect();
        assert_eq!(keys, KEYS, "{io:?} {law:?}: {found:?}");
        for (tone, source, ms) in &found {
            assert_eq!(*source, proto::ToneSource::InBand, "{tone}");
            assert!(ms.abs_diff(KEY_MS as u32) <= 15, "{tone}: {ms} ms");
        }
        let heard = decoded(&got, law);
        let leaked = permissive_dtmf(&heard);
        assert_eq!(leaked, "", "{io:?} {law:?}: B heard digits");
        // The voice still arrives: the 440 Hz level B heard over the whole
        // call is within 3 dB of what A sent (the keys took a third).
        let sent = tone_level_db(&pcm, 440.0);
        let got_level = tone_level_db(&heard, 440.0);
        eprintln!(
            "{io:?} {law:?}: {} keys reported, none leaked; 440 Hz sent {sent:.1} dB, heard {got_level:.1} dB over {} ms",
            found.len(),
            heard.len() / 8
        );
        assert!((got_level - sent).abs() < 3.0, "{got_level} vs {sent}");

        // InjectDigits while on: SIP_INFO.
        let mut events = client
            .watch_events(EventFilter::new().leg(&c.a.leg_id))
            .await
            .unwrap();
        client.inject_digits(&c.a.leg_id, "5#b", 120).await.unwrap();
        let seen = drain(&mut events, Duration::from_millis(300)).await;
        assert_eq!(
            tones(&seen),
            [
                ("5".to_owned(), proto::ToneSource::SipInfo, 120),
                ("#".to_owned(), proto::ToneSource::SipInfo, 120),
                ("B".to_owned(), proto::ToneSource::SipInfo, 120),
            ]
        );
    }
}

/// RFC 4733 presses of "159#" from A, 100 ms each, voice between.
fn send_events(peer: &Peer, to: SocketAddr) -> std::thread::JoinHandle<()> {
    const DIGITS: &str = "159#";
    let socket = peer.socket.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut seq = 0u16;
        let steps = (400 + DIGITS.len() * 200 + 400) / 10;
        paced(Instant::now(), steps, Duration::from_millis(10), |step| {
            let t = step * 10;
            let mut send = |marker: bool, pt: u8, ts: usize, payload: &[u8]| {
                let h = Rtp {
                    marker,
                    pt,
                    seq,
                    ts: (ts * 8) as u32,
                    ssrc: 0x4733,
                };
                send_rtp(&socket, to, h, payload).unwrap();
                seq = seq.wrapping_add(1);
            };
            let in_digits = t >= 400 && t < 400 + DIGITS.len() * 200;
            let index = t.saturating_sub(400) / 200;
            let start = 400 + index * 200;
            if in_digits && t - start <= 100 {
                let event = Digit::from_char(DIGITS.chars().nth(index).unwrap())
                    .unwrap()
                    .event_code();
                let payload = |end: bool, ms: usize| {
                    TelephoneEvent {
                        event,
                        end,
                        volume: 10,
                        duration: (ms * 8) as u16,
                    }
                    .to_bytes()
                };
                match t - start {
                    0 => send(true, EVENT_PT, start, &payload(false, 0)),
                    50 => send(false, EVENT_PT, start, &payload(false, 50)),
                    100 => {
                        for _ in 0..3 {
                            send(false, EVENT_PT, start, &payload(true, 100));
                        }
                    }
                    _ => {}
                }
                return;
            }
            if t.is_multiple_of(20) {
                let pcm = sine(440.0, 1000.0, t * 8, 160);
                let payload: Vec<u8> = pcm.into_iter().map(|s| G711::Pcmu.encode(s)).collect();
                send(false, 0, t, &payload);
            }
        });
    })
}

/// Sends [`send_events`] from A: what B received and A's ToneReceived.
async fn run_events(c: &Call) -> (Vec<Received>, Vec<(String, proto::ToneSource, u32)>) {
    let mut events = c
        .client
        .watch_events(EventFilter::new().leg(&c.a.leg_id))
        .await
        .unwrap();
    let until = Instant::now() + Duration::from_millis(2400);
    let collector = spawn_collector(&c.b_peer, until).unwrap();
    send_events(&c.a_peer, local_rtp(&c.a)).join().unwrap();
    let got = tokio::task::spawn_blocking(move || collector.join().unwrap())
        .await
        .unwrap();
    let seen = drain(&mut events, Duration::from_millis(300)).await;
    (got, tones(&seen))
}

async fn rfc4733_keys_are_reported_and_not_forwarded(io: Io) {
    let daemon = daemon_or_skip!(Options::new(io));
    let client = daemon.client().await.unwrap();
    for on in [true, false] {
        let c = call(&client, G711::Pcmu).await;
        client.set_tone_handling(&c.a.leg_id, on).await.unwrap();
        let (got, found) = run_events(&c).await;
        let event_packets = got.iter().filter(|p| p.rtp.pt == EVENT_PT).count();
        eprintln!("{io:?} handling {on}: {found:?}, {event_packets} event packets at B");
        if on {
            let keys: String = found.iter().map(|(t, ..)| t.as_str()).collect();
            assert_eq!(keys, "159#");
            for (_, source, ms) in &found {
                assert_eq!(*source, proto::ToneSource::Rfc4733);
                assert_eq!(*ms, 100);
            }
            assert_eq!(event_packets, 0, "no telephone-event reaches B");
            assert_eq!(
                permissive_dtmf(&decoded(&got, G711::Pcmu)),
                "",
                "nor an in-band copy"
            );
        } else {
            assert!(found.is_empty(), "{found:?}");
            assert!(
                event_packets >= 4 * 5,
                "{event_packets} event packets relayed"
            );
        }
    }
}

async fn handling_off_forwards_everything(io: Io) {
    let daemon = daemon_or_skip!(Options::new(io));
    let client = daemon.client().await.unwrap();
    let c = call(&client, G711::Pcmu).await;
    client.set_tone_handling(&c.a.leg_id, true).await.unwrap();
    client.set_tone_handling(&c.a.leg_id, false).await.unwrap();
    let pcm = in_band_keys();
    let (got, seen) = run_in_band(&c, G711::Pcmu, &pcm).await;
    assert!(tones(&seen).is_empty(), "{seen:?}");
    let a = client.get_leg(&c.b.leg_id).await.unwrap();
    assert!(!a.transcoding, "relayed again once handling is off");
    let heard = decoded(&got, G711::Pcmu);
    assert_eq!(permissive_dtmf(&heard), KEYS, "every key reaches B");
    // Digits injected while off raise nothing.
    let mut events = client
        .watch_events(EventFilter::new().leg(&c.a.leg_id))
        .await
        .unwrap();
    client.inject_digits(&c.a.leg_id, "1", 0).await.unwrap();
    assert!(tones(&drain(&mut events, Duration::from_millis(300)).await).is_empty());
}

async fn detect_only_reports_and_forwards(io: Io) {
    let daemon = daemon_or_skip!(Options::new(io));
    let client = daemon.client().await.unwrap();
    let c = call(&client, G711::Pcmu).await;
    client.set_tone_detection(&c.a.leg_id, true).await.unwrap();
    let b = client.get_leg(&c.b.leg_id).await.unwrap();
    assert!(!b.transcoding, "the call stays relayed");
    let pcm = in_band_keys();
    let (got, seen) = run_in_band(&c, G711::Pcmu, &pcm).await;
    let found = tones(&seen);
    let keys: String = found.iter().map(|(t, ..)| t.as_str()).collect();
    assert_eq!(keys, KEYS, "{io:?}: {found:?}");
    assert!(
        found
            .iter()
            .all(|(_, source, _)| *source == proto::ToneSource::InBand)
    );
    assert_eq!(
        permissive_dtmf(&decoded(&got, G711::Pcmu)),
        KEYS,
        "every key reaches B"
    );
    // RFC 4733: reported, and the events are still relayed.
    let (got, found) = run_events(&c).await;
    let keys: String = found.iter().map(|(t, ..)| t.as_str()).collect();
    assert_eq!(keys, "159#", "{found:?}");
    assert!(
        found
            .iter()
            .all(|(_, source, _)| *source == proto::ToneSource::Rfc4733)
    );
    let event_packets = got.iter().filter(|p| p.rtp.pt == EVENT_PT).count();
    assert!(
        event_packets >= 4 * 5,
        "{event_packets} event packets relayed"
    );
    // Switching to removal moves the call to the PCM path; off relays it.
    client.set_tone_handling(&c.a.leg_id, true).await.unwrap();
    assert!(client.get_leg(&c.b.leg_id).await.unwrap().transcoding);
    client.set_tone_handling(&c.a.leg_id, false).await.unwrap();
    assert!(!client.get_leg(&c.b.leg_id).await.unwrap().transcoding);
}

async fn bad_requests(io: Io) {
    let daemon = daemon_or_skip!(Options::new(io));
    let client = daemon.client().await.unwrap();
    let c = call(&client, G711::Pcmu).await;
    let id = c.a.leg_id.as_str();
    let code = |r: Result<(), legato_client::Error>| r.unwrap_err().code();
    assert_eq!(
        code(client.set_tone_handling("nope", true).await),
        Code::NotFound
    );
    assert_eq!(
        code(client.set_tone_handling("", true).await),
        Code::InvalidArgument
    );
    assert_eq!(
        code(client.inject_digits("nope", "1", 0).await),
        Code::NotFound
    );
    assert_eq!(
        code(client.inject_digits(id, "", 0).await),
        Code::InvalidArgument
    );
    let err = client.inject_digits(id, "12E", 0).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.to_string().contains("'E' is not a DTMF key"), "{err}");
    assert_eq!(
        code(client.inject_digits(id, &"1".repeat(65), 0).await),
        Code::InvalidArgument
    );
    assert_eq!(
        code(client.inject_digits(id, "1", 60_001).await),
        Code::InvalidArgument
    );
    client.hangup_leg(id, 0, "").await.unwrap();
    assert_eq!(
        code(client.set_tone_handling(id, true).await),
        Code::FailedPrecondition
    );
    assert_eq!(
        code(client.inject_digits(id, "1", 0).await),
        Code::FailedPrecondition
    );
}

per_backend!(
    in_band_keys_are_reported_and_removed,
    rfc4733_keys_are_reported_and_not_forwarded,
    handling_off_forwards_everything,
    detect_only_reports_and_forwards,
    bad_requests
);
