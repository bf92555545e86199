//! Detectors on live legs (issue 13): EnableBeepDetection, EnableToneDetection,
//! SetMicStatusHandling and StartAudioIdentification, fed by real RTP peers
//! sending espeak-ng speech, beeps and progress tones as PCMU.
//!
//! - Speech then a 1 kHz beep: MicStatusChange (and VoiceActivity) goes on
//!   during the speech and off after it, GetLeg's `voice_active` follows,
//!   and BeepDetectionComplete names the beep's frequency and onset.
//! - A US busy tone raises ToneDetected "busy" once, with the country given
//!   and with none.
//! - A long voicemail greeting ending in a beep: AudioIdentificationResult
//!   "machine", then BeepDetectionComplete for the beep, then
//!   AudioIdentificationStopped; "Hello?" and silence: "human".
//! - Bad requests get clear errors.

use std::net::SocketAddr;
use std::time::Duration;

use legato_client::{Client, Code, EventFilter, proto};
use legato_dsp::tone::{Country, ProgressTone, ProgressToneGenerator};
use legato_tests::{
    G711, Io, Options, Peer, connected_leg_with, daemon_or_skip, espeak_8k, local_rtp, per_backend,
    send_payloads_paced, wait_event,
};
use proto::event::Kind;

/// `ms` of silence at 8 kHz.
fn silence(ms: usize) -> Vec<i16> {
    vec![0; ms * 8]
}

/// A sine of `hz` for `ms` at 8 kHz, at about −10 dBm0.
fn beep(hz: f64, ms: usize) -> Vec<i16> {
    let w = 2.0 * std::f64::consts::PI * hz / 8000.0;
    (0..ms * 8)
        .map(|i| (8000.0 * (w * i as f64).sin()) as i16)
        .collect()
}

/// `ms` of `country`'s `tone` at 8 kHz.
fn progress(country: Country, tone: ProgressTone, ms: usize) -> Vec<i16> {
    let mut g = ProgressToneGenerator::new(country, tone, 0.0).unwrap();
    let mut out = vec![0; ms * 8];
    g.fill(&mut out);
    out
}

/// Sends `pcm` as 20 ms PCMU packets from `peer` to `to`, paced in real
/// time, on a thread; joins it.
async fn send(peer: &Peer, to: SocketAddr, pcm: Vec<i16>) {
    send_from(peer.socket.try_clone().unwrap(), to, pcm).await;
}

/// [`send`] from a socket.
async fn send_from(socket: std::net::UdpSocket, to: SocketAddr, pcm: Vec<i16>) {
    tokio::task::spawn_blocking(move || {
        send_payloads_paced(&socket, to, 0, 160, &G711::Pcmu.frames(&pcm));
    })
    .await
    .unwrap();
}

/// Every event of `leg` seen on `events` until `timeout` passes without
/// one.
async fn drain<S>(events: &mut S, timeout: Duration) -> Vec<proto::Event>
where
    S: futures::Stream<Item = Result<proto::Event, legato_client::Error>> + Unpin,
{
    let mut seen = Vec::new();
    while let Ok(e) = wait_event(events, timeout, |_| true).await {
        seen.push(e);
    }
    seen
}

async fn new_leg(client: &Client, session: &str) -> (Peer, proto::Leg) {
    let peer = Peer::new().unwrap();
    let leg = connected_leg_with(client, session, &peer, G711::Pcmu.formats())
        .await
        .unwrap();
    (peer, leg)
}

async fn speech_then_beep(io: Io) {
    let Some(talk) = espeak_8k("Good morning, this is a test of voice activity.") else {
        eprintln!("skipped: needs espeak-ng and ffmpeg");
        return;
    };
    let daemon = daemon_or_skip!(Options::new(io));
    let client = daemon.client().await.unwrap();
    let session = client.create_session(None).await.unwrap();
    let (peer, leg) = new_leg(&client, &session).await;
    let mut events = client
        .watch_events(EventFilter::new().leg(&leg.leg_id))
        .await
        .unwrap();
    client
        .set_mic_status_handling(&leg.leg_id, true)
        .await
        .unwrap();
    client.enable_beep_detection(&leg.leg_id, 0).await.unwrap();
    let speech_ms = talk.len() / 8;
    let mut pcm = silence(600);
    pcm.extend(&talk);
    pcm.extend(silence(1000));
    let beep_at = pcm.len() / 8;
    pcm.extend(beep(1000.0, 500));
    pcm.extend(silence(600));
    let sender = {
        let to = local_rtp(&leg);
        let pcm = pcm.clone();
        let socket = peer.socket.try_clone().unwrap();
        tokio::spawn(send_from(socket, to, pcm))
    };
    // Speaking: the VAD says so, and GetLeg too.
    wait_event(
        &mut events,
        Duration::from_secs(5),
        |e| matches!(&e.kind, Some(Kind::MicStatusChange(m)) if m.active),
    )
    .await
    .unwrap();
    assert!(client.get_leg(&leg.leg_id).await.unwrap().voice_active);
    sender.await.unwrap();
    let seen = drain(&mut events, Duration::from_millis(800)).await;
    let beep = seen
        .iter()
        .find_map(|e| match &e.kind {
            Some(Kind::BeepDetectionComplete(b)) => Some(*b),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{io:?}: no BeepDetectionComplete in {seen:?}"));
    eprintln!("{io:?}: speech {speech_ms} ms, beep at {beep_at} ms: {beep:?}");
    assert!((beep.frequency_hz - 1000.0).abs() < 15.0, "{beep:?}");
    // Within the jitter buffer's delay and a loaded machine's slack.
    let onset = beep.offset_ms as i64;
    assert!(
        (onset - beep_at as i64).abs() < 400,
        "onset {onset} ms, sent at {beep_at} ms"
    );
    assert!(
        beep.duration_ms >= 60 && beep.duration_ms <= 200,
        "{beep:?}"
    );
    // The speech ended: the last MicStatusChange is off, and GetLeg agrees.
    let last = seen.iter().rev().find_map(|e| match &e.kind {
        Some(Kind::MicStatusChange(m)) => Some(m.active),
        _ => None,
    });
    assert_eq!(last, Some(false), "{seen:?}");
    assert!(!client.get_leg(&leg.leg_id).await.unwrap().voice_active);
    assert!(
        seen.iter()
            .any(|e| matches!(&e.kind, Some(Kind::VoiceActivity(v)) if !v.active))
    );
    // Beep detection ended with the beep: disabling it now is refused.
    let err = client
        .disable_beep_detection(&leg.leg_id)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err}");
    // A timeout with nothing arriving: BeepDetectionError.
    client
        .enable_beep_detection(&leg.leg_id, 300)
        .await
        .unwrap();
    let e = wait_event(&mut events, Duration::from_secs(5), |e| {
        matches!(&e.kind, Some(Kind::BeepDetectionError(_)))
    })
    .await
    .unwrap();
    let Some(Kind::BeepDetectionError(err)) = e.kind else {
        unreachable!()
    };
    assert!(err.error.contains("300 ms"), "{err:?}");
}

async fn busy_tone_is_detected_once(io: Io) {
    let daemon = daemon_or_skip!(Options::new(io));
    let client = daemon.client().await.unwrap();
    let session = client.create_session(None).await.unwrap();
    for countries in [vec!["US".to_owned()], vec![]] {
        let (peer, leg) = new_leg(&client, &session).await;
        let mut events = client
            .watch_events(EventFilter::new().leg(&leg.leg_id))
            .await
            .unwrap();
        client
            .enable_tone_detection(&leg.leg_id, countries.clone())
            .await
            .unwrap();
        let mut pcm = silence(300);
        pcm.extend(progress(Country::Us, ProgressTone::Busy, 4000));
        send(&peer, local_rtp(&leg), pcm).await;
        let seen = drain(&mut events, Duration::from_millis(600)).await;
        let tones: Vec<proto::ToneDetected> = seen
            .iter()
            .filter_map(|e| match &e.kind {
                Some(Kind::ToneDetected(t)) => Some(t.clone()),
                _ => None,
            })
            .collect();
        eprintln!("{io:?} {countries:?}: {tones:?}");
        assert_eq!(tones.len(), 1, "{countries:?}: {seen:?}");
        assert_eq!(tones[0].tone, "busy");
        if !countries.is_empty() {
            assert_eq!(tones[0].country, "US");
        }
        // Once per call.
        let err = client
            .enable_tone_detection(&leg.leg_id, vec![])
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition, "{err}");
        // And it ended when it fired.
        let err = client
            .disable_tone_detection(&leg.leg_id)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition, "{err}");
    }
}

/// A new leg with its events watched and answering-machine detection
/// started.
async fn identifying_leg(
    client: &Client,
    session: &str,
) -> (
    Peer,
    proto::Leg,
    impl futures::Stream<Item = Result<proto::Event, legato_client::Error>> + Unpin,
) {
    let (peer, leg) = new_leg(client, session).await;
    let events = client
        .watch_events(EventFilter::new().leg(&leg.leg_id))
        .await
        .unwrap();
    client
        .start_audio_identification(proto::StartAudioIdentificationRequest {
            leg_id: leg.leg_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    (peer, leg, events)
}

async fn answering_machine_and_human(io: Io) {
    let (Some(greeting), Some(hello)) = (
        espeak_8k(
            "Hello, you have reached the voicemail of John Smith. I am not available right now. Please leave your message after the tone.",
        ),
        espeak_8k("Hello?"),
    ) else {
        eprintln!("skipped: needs espeak-ng and ffmpeg");
        return;
    };
    let daemon = daemon_or_skip!(Options::new(io));
    let client = daemon.client().await.unwrap();
    let session = client.create_session(None).await.unwrap();

    // A machine: the verdict, then its beep, then the end.
    let (peer, leg, mut events) = identifying_leg(&client, &session).await;
    let mut pcm = silence(400);
    pcm.extend(&greeting);
    pcm.extend(silence(300));
    let beep_at = pcm.len() / 8;
    pcm.extend(beep(850.0, 400));
    pcm.extend(silence(500));
    send(&peer, local_rtp(&leg), pcm).await;
    let seen = drain(&mut events, Duration::from_millis(800)).await;
    let names: Vec<&str> = seen
        .iter()
        .filter_map(|e| match &e.kind {
            Some(Kind::AudioIdentificationStarted(_)) => Some("started"),
            Some(Kind::AudioIdentificationResult(_)) => Some("result"),
            Some(Kind::BeepDetectionComplete(_)) => Some("beep"),
            Some(Kind::AudioIdentificationStopped(_)) => Some("stopped"),
            _ => None,
        })
        .collect();
    assert_eq!(names, ["started", "result", "beep", "stopped"], "{seen:?}");
    for e in &seen {
        match &e.kind {
            Some(Kind::AudioIdentificationResult(r)) => {
                eprintln!("{io:?} machine: {r:?}");
                assert_eq!(r.result, "machine", "{r:?}");
            }
            Some(Kind::BeepDetectionComplete(b)) => {
                eprintln!("{io:?} greeting beep (sent at {beep_at} ms): {b:?}");
                assert!((b.frequency_hz - 850.0).abs() < 15.0, "{b:?}");
                assert!((b.offset_ms as i64 - beep_at as i64).abs() < 400, "{b:?}");
            }
            _ => {}
        }
    }

    // A person: "Hello?", then waiting.
    let (peer, leg, mut events) = identifying_leg(&client, &session).await;
    let mut pcm = silence(500);
    pcm.extend(&hello);
    pcm.extend(silence(2000));
    send(&peer, local_rtp(&leg), pcm).await;
    let result = wait_event(&mut events, Duration::from_secs(3), |e| {
        matches!(&e.kind, Some(Kind::AudioIdentificationResult(_)))
    })
    .await
    .unwrap();
    let Some(Kind::AudioIdentificationResult(r)) = result.kind else {
        unreachable!()
    };
    eprintln!("{io:?} human: {r:?}");
    assert_eq!(r.result, "human", "{r:?}");
    wait_event(&mut events, Duration::from_secs(2), |e| {
        matches!(&e.kind, Some(Kind::AudioIdentificationStopped(_)))
    })
    .await
    .unwrap();
}

async fn bad_requests(io: Io) {
    let daemon = daemon_or_skip!(Options::new(io));
    let client = daemon.client().await.unwrap();
    let session = client.create_session(None).await.unwrap();
    let (_peer, leg) = new_leg(&client, &session).await;
    let id = leg.leg_id.as_str();
    let code = |r: Result<(), legato_client::Error>| r.unwrap_err().code();

    assert_eq!(
        code(client.enable_beep_detection("nope", 0).await),
        Code::NotFound
    );
    assert_eq!(
        code(client.enable_beep_detection("", 0).await),
        Code::InvalidArgument
    );
    assert_eq!(
        code(client.enable_beep_detection(id, 3_600_001).await),
        Code::InvalidArgument
    );
    client.enable_beep_detection(id, 0).await.unwrap();
    assert_eq!(
        code(client.enable_beep_detection(id, 0).await),
        Code::FailedPrecondition
    );
    client.disable_beep_detection(id).await.unwrap();
    assert_eq!(
        code(client.disable_beep_detection(id).await),
        Code::FailedPrecondition
    );

    let err = client
        .enable_tone_detection(id, vec!["XX".into()])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.to_string().contains("XX"), "{err}");
    assert_eq!(
        code(
            client
                .enable_tone_detection(id, vec!["US".into(); 17])
                .await
        ),
        Code::InvalidArgument
    );
    client
        .enable_tone_detection(id, vec!["gb".into()])
        .await
        .unwrap();
    assert_eq!(
        code(client.enable_tone_detection(id, vec![]).await),
        Code::FailedPrecondition
    );
    // Off, then on again (it has not fired), then off twice.
    client.disable_tone_detection(id).await.unwrap();
    client.enable_tone_detection(id, vec![]).await.unwrap();
    client.disable_tone_detection(id).await.unwrap();
    assert_eq!(
        code(client.disable_tone_detection(id).await),
        Code::FailedPrecondition
    );
    assert_eq!(
        code(client.disable_tone_detection("nope").await),
        Code::NotFound
    );
    assert_eq!(
        code(client.disable_tone_detection("").await),
        Code::InvalidArgument
    );

    // Mic status: idempotent both ways.
    client.set_mic_status_handling(id, true).await.unwrap();
    client.set_mic_status_handling(id, true).await.unwrap();
    client.set_mic_status_handling(id, false).await.unwrap();
    client.set_mic_status_handling(id, false).await.unwrap();

    let amd = |f: fn(&mut proto::StartAudioIdentificationRequest)| {
        let mut r = proto::StartAudioIdentificationRequest {
            leg_id: id.to_owned(),
            ..Default::default()
        };
        f(&mut r);
        r
    };
    for bad in [
        amd(|r| r.greeting_ms = 60_001),
        amd(|r| r.total_analysis_ms = u32::MAX),
        amd(|r| r.max_words = 101),
    ] {
        let err = client.start_audio_identification(bad).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    }
    client
        .start_audio_identification(amd(|_| {}))
        .await
        .unwrap();
    let err = client
        .start_audio_identification(amd(|_| {}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err}");
    client.stop_audio_identification(id).await.unwrap();
    assert_eq!(
        code(client.stop_audio_identification(id).await),
        Code::FailedPrecondition
    );

    // A terminated leg.
    client.hangup_leg(id, 0, "").await.unwrap();
    assert_eq!(
        code(client.enable_beep_detection(id, 0).await),
        Code::FailedPrecondition
    );
    assert_eq!(
        code(client.disable_tone_detection(id).await),
        Code::FailedPrecondition
    );
}

per_backend!(
    speech_then_beep,
    busy_tone_is_detected_once,
    answering_machine_and_human,
    bad_requests
);
