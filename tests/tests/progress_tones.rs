//! PlayProgressTone and StopPlayback end to end (Call.playProgressTone,
//! Call.stopPlayback).
//!
//! - Every country's ringback and busy tone, played into 20 legs at once
//!   (PCMU and PCMA alternating), is classified as that tone by
//!   legato-dsp's call-progress detector on the audio the legs' peers
//!   receive; each playback raises PlaybackStarted.
//! - A tone on a leg that is still ringing waits: no packet and no
//!   PlaybackStarted until the leg goes to EARLY_MEDIA (the Call API's
//!   startEarlyMedia before playProgressTone). StopPlayback ends it with no
//!   PlaybackFinished and leaves the leg silent; SendMedia replaces a tone;
//!   bad requests get clear errors.

use std::time::{Duration, Instant};

use futures::StreamExt;
use legato_client::{Code, CreateLeg, EventFilter, MediaEndpoint, UpdateLeg, proto};
use legato_dsp::tone::{
    Country, ProgressDetector, ProgressDetectorConfig, ProgressEvent, ProgressTone,
};
use legato_tests::{
    Codec, G711, Io, Options, Peer, connected_leg_with, daemon_or_skip, decode_window, per_backend,
    spawn_collector, wait_event,
};

/// The API's name of a tone.
fn api_name(tone: ProgressTone) -> &'static str {
    match tone {
        ProgressTone::Ringback => "ringback",
        ProgressTone::Busy => "busy",
        ProgressTone::Dial => "dial",
        ProgressTone::Congestion => "congestion",
        ProgressTone::CallWaiting => "call_waiting",
        ProgressTone::SpecialInformation => "sit",
    }
}

/// The code PlayProgressTone takes for a country.
fn api_code(country: Country) -> &'static str {
    match country {
        Country::Uk => "GB",
        c => c.code(),
    }
}

async fn every_countrys_ringback_and_busy(io: Io) {
    let daemon = daemon_or_skip!(Options::new(io));
    let client = daemon.client().await.unwrap();
    let session = client.create_session(None).await.unwrap();
    let mut events = client
        .watch_events(EventFilter::new().session(&session))
        .await
        .unwrap();
    let mut cases = Vec::new();
    for (i, country) in Country::ALL.into_iter().enumerate() {
        for (j, tone) in [ProgressTone::Ringback, ProgressTone::Busy]
            .into_iter()
            .enumerate()
        {
            let law = if (i + j) % 2 == 0 {
                G711::Pcmu
            } else {
                G711::Pcma
            };
            let peer = Peer::new().unwrap();
            let leg = connected_leg_with(&client, &session, &peer, law.formats())
                .await
                .unwrap();
            cases.push((country, tone, law, peer, leg));
        }
    }
    // Two whole cycles of the longest cadence, plus margin.
    let longest = cases
        .iter()
        .map(|(c, t, ..)| c.tone(*t).cycle_ms())
        .max()
        .unwrap();
    let listen = Duration::from_millis(u64::from(2 * longest) + 1000).min(Duration::from_secs(14));
    let start = Instant::now();
    let until = start + listen;
    let collectors: Vec<_> = cases
        .iter()
        .map(|(.., peer, _)| spawn_collector(peer, until).unwrap())
        .collect();
    let mut playbacks = Vec::new();
    for (country, tone, _, _, leg) in &cases {
        let id = client
            .play_progress_tone(&leg.leg_id, api_code(*country), api_name(*tone))
            .await
            .unwrap();
        assert_eq!(id.len(), 20, "{id}");
        playbacks.push(id);
    }
    let mut started = Vec::new();
    while started.len() < playbacks.len() {
        let e = wait_event(&mut events, Duration::from_secs(10), |e| {
            matches!(e.kind, Some(proto::event::Kind::PlaybackStarted(_)))
        })
        .await
        .unwrap();
        if let Some(proto::event::Kind::PlaybackStarted(p)) = e.kind {
            assert_eq!(p.duration_ms, 0, "a tone has no end");
            started.push(p.playback_id);
        }
    }
    started.sort();
    let mut expected = playbacks.clone();
    expected.sort();
    assert_eq!(started, expected, "one PlaybackStarted per playback");

    let mut failures = Vec::new();
    for ((country, tone, law, _, leg), collector) in cases.iter().zip(collectors) {
        let got = collector.join().unwrap();
        let view = client.get_leg(&leg.leg_id).await.unwrap();
        assert!(!view.playback_id.is_empty(), "GetLeg names the playback");
        assert_eq!(view.media_path(), proto::MediaPath::Pcm);
        let pcm = decode_window(&got, *law, start, until);
        let mut detector = ProgressDetector::new(ProgressDetectorConfig::new(*country)).unwrap();
        detector.handle_samples(&pcm);
        let mut found = None;
        while let Some(ProgressEvent::Detected { tone, .. }) = detector.poll_event() {
            found.get_or_insert(tone);
        }
        eprintln!(
            "{io:?} {} {}: {} packets, {:.1} s, classified {:?}",
            country.code(),
            api_name(*tone),
            got.len(),
            pcm.len() as f64 / 8000.0,
            found
        );
        if found != Some(*tone) {
            failures.push(format!("{} {}: {found:?}", country.code(), api_name(*tone)));
        }
    }
    assert!(failures.is_empty(), "misclassified: {failures:?}");
}

async fn tone_waits_for_the_leg_and_stops(io: Io) {
    let daemon = daemon_or_skip!(Options::new(io));
    let client = daemon.client().await.unwrap();
    let session = client.create_session(None).await.unwrap();
    let peer = Peer::new().unwrap();
    let created = client
        .create_leg(CreateLeg::incoming(
            &session,
            peer.offer_with("0 101", "a=sendrecv", "127.0.0.1"),
        ))
        .await
        .unwrap();
    let leg = created.leg.leg_id.clone();
    let mut events = client
        .watch_events(EventFilter::new().leg(&leg))
        .await
        .unwrap();

    // Still PROGRESSING: the tone waits.
    let playback = client
        .play_progress_tone(&leg, "us", "ringback")
        .await
        .unwrap();
    let quiet = spawn_collector(&peer, Instant::now() + Duration::from_millis(400)).unwrap();
    let got = quiet.join().unwrap();
    assert!(got.is_empty(), "{} packets before EARLY_MEDIA", got.len());
    let view = client.get_leg(&leg).await.unwrap();
    assert_eq!(view.playback_id, playback);

    // EARLY_MEDIA: it plays.
    client
        .update_leg(UpdateLeg::new(&leg).state(proto::LegState::EarlyMedia))
        .await
        .unwrap();
    let e = wait_event(&mut events, Duration::from_secs(5), |e| {
        matches!(e.kind, Some(proto::event::Kind::PlaybackStarted(_)))
    })
    .await
    .unwrap();
    let Some(proto::event::Kind::PlaybackStarted(p)) = e.kind else {
        unreachable!()
    };
    assert_eq!(p.playback_id, playback);
    let playing = spawn_collector(&peer, Instant::now() + Duration::from_millis(1000)).unwrap();
    let got = playing.join().unwrap();
    assert!(
        got.len() >= 30,
        "{} packets in 1 s of EARLY_MEDIA",
        got.len()
    );
    assert!(got.iter().all(|p| p.rtp.pt == 0));
    let pcm: Vec<i16> = got
        .iter()
        .flat_map(|p| p.payload.iter().map(|&c| G711::Pcmu.decode(c)))
        .collect();
    assert!(
        pcm.iter().any(|s| s.unsigned_abs() > 1000),
        "US ringback starts with 2 s on"
    );

    // StopPlayback: silence, no PlaybackFinished, no playback on GetLeg.
    client.stop_playback(&leg).await.unwrap();
    // Read away what was sent before the stop took effect.
    let _ = spawn_collector(&peer, Instant::now() + Duration::from_millis(200))
        .unwrap()
        .join();
    let after = spawn_collector(&peer, Instant::now() + Duration::from_millis(400)).unwrap();
    let got = after.join().unwrap();
    assert!(got.is_empty(), "{} packets after StopPlayback", got.len());
    let view = client.get_leg(&leg).await.unwrap();
    assert!(view.playback_id.is_empty());
    assert_eq!(view.media_path(), proto::MediaPath::Unspecified);
    // Stopping again is harmless.
    client.stop_playback(&leg).await.unwrap();

    // SendMedia replaces a tone; a tone replaces SendMedia's source.
    let other_peer = Peer::new().unwrap();
    let other = connected_leg_with(&client, &session, &other_peer, "0 101")
        .await
        .unwrap();
    client.play_progress_tone(&leg, "DE", "busy").await.unwrap();
    let routed = client
        .send_media(other.leg_id.as_str(), leg.as_str())
        .await
        .unwrap();
    assert!(routed.replaced.is_none(), "a player is not an endpoint");
    let view = client.get_leg(&leg).await.unwrap();
    assert!(view.playback_id.is_empty());
    assert_eq!(view.media_source_leg_id, other.leg_id);
    client.play_progress_tone(&leg, "fr", "dial").await.unwrap();
    let view = client.get_leg(&leg).await.unwrap();
    assert!(!view.playback_id.is_empty());
    assert!(view.media_source_leg_id.is_empty());
    let other_view = client.get_leg(&other.leg_id).await.unwrap();
    assert!(other_view.media_sink_leg_ids.is_empty());

    // No PlaybackFinished for stopped or replaced tones.
    let finished = tokio::time::timeout(Duration::from_millis(300), async {
        while let Some(Ok(e)) = events.next().await {
            if matches!(e.kind, Some(proto::event::Kind::PlaybackFinished(_))) {
                return true;
            }
        }
        false
    })
    .await;
    assert!(
        !matches!(finished, Ok(true)),
        "PlaybackFinished after a stop"
    );

    // Bad requests.
    let err = client
        .play_progress_tone(&leg, "XX", "busy")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.to_string().contains("GB"), "{err}");
    let err = client
        .play_progress_tone(&leg, "US", "howler")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.to_string().contains("call_waiting"), "{err}");
    let err = client
        .play_progress_tone("00000000000000000000", "US", "busy")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = client
        .play_progress_tone("", "US", "busy")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = client.stop_playback("nope").await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    client.hangup_leg(&leg, 0, "").await.unwrap();
    let err = client
        .play_progress_tone(&leg, "US", "busy")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
}

/// A tone played into a conference: every listener (PCMU, PCMA, G.722)
/// hears it, over the members' mix; its events carry the session and no
/// leg; StopPlayback of the conference ends it; bad targets are refused.
async fn a_tone_into_a_conference(io: Io) {
    let daemon = daemon_or_skip!(Options::new(io));
    let client = daemon.client().await.unwrap();
    let session = client.create_session(None).await.unwrap();
    let conference = client.create_conference(&session).await.unwrap();
    let mut events = client
        .watch_events(EventFilter::new().session(&session))
        .await
        .unwrap();
    let mut members = Vec::new();
    for formats in ["0", "8", "9"] {
        let peer = Peer::new().unwrap();
        let leg = connected_leg_with(&client, &session, &peer, formats)
            .await
            .unwrap();
        client
            .send_media(
                MediaEndpoint::Conference(conference.clone()),
                leg.leg_id.as_str(),
            )
            .await
            .unwrap();
        members.push((peer, formats));
    }
    let start = Instant::now();
    let until = start + Duration::from_millis(3500);
    let collectors: Vec<_> = members
        .iter()
        .map(|(peer, _)| spawn_collector(peer, until).unwrap())
        .collect();
    let id = client
        .play_progress_tone(MediaEndpoint::Conference(conference.clone()), "US", "busy")
        .await
        .unwrap();
    let e = wait_event(
        &mut events,
        Duration::from_secs(5),
        |e| matches!(&e.kind, Some(proto::event::Kind::PlaybackStarted(s)) if s.playback_id == id),
    )
    .await
    .unwrap();
    assert!(e.leg_id.is_empty(), "a conference's event names no leg");
    for ((_, formats), collector) in members.iter().zip(collectors) {
        let got = collector.join().unwrap();
        let codec = match *formats {
            "0" => Codec::Pcmu,
            "8" => Codec::Pcma,
            _ => Codec::G722,
        };
        let pcm = decode_window(&got, codec, start, until);
        // G.722 decodes at 16 kHz: every other sample for the 8 kHz
        // detector (the busy tone's 480 and 620 Hz are far below 4 kHz).
        let pcm: Vec<i16> = if codec == Codec::G722 {
            pcm.iter().step_by(2).copied().collect()
        } else {
            pcm
        };
        let mut detector = ProgressDetector::new(ProgressDetectorConfig::new(Country::Us)).unwrap();
        detector.handle_samples(&pcm);
        let found = detector
            .poll_event()
            .map(|ProgressEvent::Detected { tone, .. }| tone);
        assert_eq!(found, Some(ProgressTone::Busy), "member on {codec:?}");
    }
    client
        .stop_playback(MediaEndpoint::Conference(conference.clone()))
        .await
        .unwrap();
    // Bad targets.
    let unknown = MediaEndpoint::Conference("00000000000000000000".into());
    let err = client
        .play_progress_tone(unknown, "US", "busy")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err}");
    let err = client
        .start_playback(proto::StartPlaybackRequest {
            conference_id: conference.clone(),
            url: "/nonexistent.wav".into(),
            preload_only: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    let err = client
        .start_playback(proto::StartPlaybackRequest {
            leg_id: "00000000000000000000".into(),
            conference_id: conference.clone(),
            url: "/nonexistent.wav".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
}

per_backend!(
    every_countrys_ringback_and_busy,
    tone_waits_for_the_leg_and_stops,
    a_tone_into_a_conference
);
