//! Say end to end (Call.say), with espeak-ng (installed by
//! scripts/test.sh) run through a configured `tts_command` script that
//! logs each synthesis, so the cache is seen from outside:
//!
//! - speech reaches the peer: voiced audio for about as long as espeak-ng
//!   itself makes the text last; PlaybackFinished without error;
//! - the same text again is not synthesized again; another voice is;
//! - 1,501 characters end with PlaybackFinished carrying an error;
//! - SSML plays; a bad language tag is INVALID_ARGUMENT;
//! - a daemon whose engine is missing answers FAILED_PRECONDITION naming it.

use std::path::Path;
use std::time::{Duration, Instant};

use legato_client::{Code, EventFilter, proto};
use legato_tests::{
    G711, Io, Options, Peer, connected_leg_with, daemon_or_skip, per_backend, spawn_collector,
    wait_event,
};

fn say(leg: &str, text: &str, voice: &str) -> proto::SayRequest {
    proto::SayRequest {
        leg_id: leg.to_owned(),
        text: text.to_owned(),
        language: "en-US".into(),
        voice: voice.to_owned(),
        conference_id: String::new(),
    }
}

/// Seconds of `pcm` (8 kHz) in 20 ms blocks louder than -40 dBFS.
fn voiced_seconds(pcm: &[i16]) -> f64 {
    pcm.chunks(160)
        .filter(|b| {
            let e: f64 = b.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / b.len() as f64;
            e.sqrt() > 328.0
        })
        .count() as f64
        * 0.02
}

/// Voiced duration of what espeak-ng makes of `text`, run here directly
/// (its WAV: 16-bit mono at 22,050 Hz after a 44-byte header), measured
/// as [`voiced_seconds`] does.
fn espeak_seconds(text: &str, dir: &Path) -> f64 {
    let out = dir.join("reference.wav");
    let status = std::process::Command::new("espeak-ng")
        .args(["-v", "en-us", "-w"])
        .arg(&out)
        .arg(text)
        .status()
        .expect("espeak-ng (installed by scripts/test.sh)");
    assert!(status.success());
    let bytes = std::fs::read(&out).unwrap();
    let pcm: Vec<i16> = bytes[44..]
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    pcm.chunks(441)
        .filter(|b| {
            let e: f64 = b.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / b.len() as f64;
            e.sqrt() > 328.0
        })
        .count() as f64
        * 0.02
}

async fn next_playback_event(
    events: &mut legato_client::EventStream,
    id: &str,
) -> proto::event::Kind {
    let id = id.to_owned();
    let e = wait_event(events, Duration::from_secs(20), |e| match &e.kind {
        Some(proto::event::Kind::PlaybackFinished(f)) => f.playback_id == id,
        Some(proto::event::Kind::PlaybackStarted(s)) => s.playback_id == id,
        _ => false,
    })
    .await
    .unwrap();
    e.kind.unwrap()
}

async fn speech_reaches_the_peer_and_is_cached(io: Io) {
    let dir = std::env::temp_dir().join(format!("legato-say-{}", fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("tts.sh");
    let log = dir.join("calls.log");
    std::fs::write(
        &script,
        "#!/bin/sh\necho \"$1\" >> \"$3\"\nexec espeak-ng -m -v \"$1\" -w \"$2\" --stdin\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut options = Options::new(io);
    for arg in [
        script.to_str().unwrap(),
        "{voice}",
        "{out}",
        log.to_str().unwrap(),
    ] {
        options = options.arg(format!("--tts-command={arg}"));
    }
    let daemon = daemon_or_skip!(options);
    let client = daemon.client().await.unwrap();
    let session = client.create_session(None).await.unwrap();
    let peer = Peer::new().unwrap();
    let leg = connected_leg_with(&client, &session, &peer, "0")
        .await
        .unwrap();
    let mut events = client
        .watch_events(EventFilter::new().leg(&leg.leg_id))
        .await
        .unwrap();
    let text = "Hello, this is legato speaking. Please hold the line.";
    let expected = espeak_seconds(text, &dir);

    let id = client.say(say(&leg.leg_id, text, "")).await.unwrap();
    assert!(matches!(
        next_playback_event(&mut events, &id).await,
        proto::event::Kind::PlaybackStarted(_)
    ));
    let finished = next_playback_event(&mut events, &id).await;
    let proto::event::Kind::PlaybackFinished(f) = finished else {
        panic!("{finished:?}")
    };
    assert_eq!(f.error, "", "speech plays to its end");

    // Again, same text, on a second leg (the cache is the daemon's): no
    // synthesis; its peer hears the speech.
    let peer2 = Peer::new().unwrap();
    let leg2 = connected_leg_with(&client, &session, &peer2, "0")
        .await
        .unwrap();
    let mut events2 = client
        .watch_events(EventFilter::new().leg(&leg2.leg_id))
        .await
        .unwrap();
    let collector = spawn_collector(&peer2, Instant::now() + Duration::from_secs(6)).unwrap();
    let id = client.say(say(&leg2.leg_id, text, "")).await.unwrap();
    next_playback_event(&mut events2, &id).await;
    let finished = next_playback_event(&mut events2, &id).await;
    assert!(matches!(finished, proto::event::Kind::PlaybackFinished(ref f) if f.error.is_empty()));
    let got = collector.join().unwrap();
    let pcm: Vec<i16> = got
        .iter()
        .flat_map(|p| p.payload.iter().map(|&c| G711::Pcmu.decode(c)))
        .collect();
    let voiced = voiced_seconds(&pcm);
    eprintln!(
        "{io:?}: espeak-ng makes {expected:.2} s of voiced audio; the peer heard {voiced:.2} s in {} packets",
        got.len()
    );
    assert!(
        voiced > expected * 0.8 && voiced < expected * 1.2,
        "voiced {voiced:.2} s of {expected:.2} s"
    );
    let calls = std::fs::read_to_string(&log).unwrap();
    assert_eq!(calls.lines().count(), 1, "cached: {calls:?}");

    // Another voice: synthesized again.
    let id = client.say(say(&leg.leg_id, text, "f3")).await.unwrap();
    next_playback_event(&mut events, &id).await;
    client.stop_playback(&leg.leg_id).await.unwrap();
    let calls = std::fs::read_to_string(&log).unwrap();
    assert_eq!(calls.lines().collect::<Vec<_>>(), ["en-us", "en-us+f3"]);

    // SSML plays.
    let id = client
        .say(say(
            &leg.leg_id,
            "<speak>One <break time=\"300ms\"/> two.</speak>",
            "",
        ))
        .await
        .unwrap();
    next_playback_event(&mut events, &id).await;
    let finished = next_playback_event(&mut events, &id).await;
    assert!(matches!(finished, proto::event::Kind::PlaybackFinished(ref f) if f.error.is_empty()));

    // 1,501 characters: PlaybackFinished with an error.
    let id = client
        .say(say(&leg.leg_id, &"a".repeat(1501), ""))
        .await
        .unwrap();
    let finished = next_playback_event(&mut events, &id).await;
    let proto::event::Kind::PlaybackFinished(f) = finished else {
        panic!("{finished:?}")
    };
    assert!(f.error.contains("1500"), "{f:?}");

    // Bad requests.
    for (req, code) in [
        (say(&leg.leg_id, "", ""), Code::InvalidArgument),
        (
            proto::SayRequest {
                language: "en US; rm -rf".into(),
                ..say(&leg.leg_id, "hi", "")
            },
            Code::InvalidArgument,
        ),
        (say(&leg.leg_id, "hi", "a voice"), Code::InvalidArgument),
        (say("00000000000000000000", "hi", ""), Code::NotFound),
    ] {
        let err = client.say(req.clone()).await.unwrap_err();
        assert_eq!(err.code(), code, "{req:?}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

async fn a_missing_engine_is_named(io: Io) {
    let daemon = daemon_or_skip!(Options::new(io).arg("--tts-command=/nonexistent/cloud-tts"));
    let client = daemon.client().await.unwrap();
    let session = client.create_session(None).await.unwrap();
    let peer = Peer::new().unwrap();
    let leg = connected_leg_with(&client, &session, &peer, "0")
        .await
        .unwrap();
    let err = client.say(say(&leg.leg_id, "hi", "")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.to_string().contains("/nonexistent/cloud-tts"), "{err}");
}

per_backend!(
    speech_reaches_the_peer_and_is_cached,
    a_missing_engine_is_named
);
