//! StartRecording / StopRecording end to end (Call.record), checked with
//! ffprobe, ffmpeg and sox (installed by scripts/test.sh):
//!
//! - content: peer A sends 700 Hz, peer B 1,300 Hz on a bridged call; a
//!   stereo WAV, a stereo MP3 and a default MP3 (mono, 8 kHz, 32 kbit/s)
//!   of A's leg at once: formats as asked, left = A, right = B (each at
//!   least 30 dB over the other), the mono mix carries both, the 3 s
//!   pause in the middle is silence in the file and the duration follows
//!   the wall clock;
//! - crash: 100 recordings, legatod killed with SIGKILL: every file opens
//!   in ffprobe and sox and lasts up to about a second before the kill;
//!   a new legatod on the directory repairs the WAV headers;
//! - disk full (a small tmpfs; skipped where mounting is not allowed):
//!   RecordError, the call's media undisturbed, the partial file valid;
//! - bad requests: statuses; recordings end with the leg (RecordStopped
//!   after Disconnected) and are finalized at SIGTERM.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use legato_client::{Client, Code, EventFilter, MediaEndpoint, proto};
use legato_tests::{
    G711, Io, Options, Peer, ToneStream, connected_leg_with, daemon_or_skip, local_rtp,
    per_backend, spawn_collector, tempdir, tone_level_db_at, wait_event,
};

/// `ffprobe`'s stream fields of `path`: codec_name, sample_rate,
/// channels, bit_rate, and the format's duration.
fn probe(path: &Path) -> Option<(String, u32, u32, u64, f64)> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries"])
        .arg("stream=codec_name,sample_rate,channels,bit_rate:format=duration")
        .args(["-of", "default=noprint_wrappers=1"])
        .arg(path)
        .output()
        .expect("ffprobe (installed by scripts/test.sh)");
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or("")
            .to_owned()
    };
    Some((
        field("codec_name"),
        field("sample_rate").parse().unwrap_or(0),
        field("channels").parse().unwrap_or(0),
        field("bit_rate").parse().unwrap_or(0),
        field("duration").parse().unwrap_or(0.0),
    ))
}

/// The file decoded by ffmpeg to 16-bit PCM at `rate`, in `channels`
/// (interleaved).
fn decode(path: &Path, rate: u32, channels: u32) -> Vec<i16> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "s16le", "-acodec", "pcm_s16le", "-ar"])
        .arg(rate.to_string())
        .arg("-ac")
        .arg(channels.to_string())
        .arg("-")
        .output()
        .expect("ffmpeg");
    assert!(out.status.success(), "ffmpeg decodes {path:?}");
    out.stdout
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// Whether sox reads the whole file without error.
fn sox_reads(path: &Path) -> bool {
    Command::new("sox")
        .arg(path)
        .args(["-n", "stat"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Channel `c` of interleaved `pcm` with `channels`, samples `from..to`.
fn channel(pcm: &[i16], channels: usize, c: usize, from: usize, to: usize) -> Vec<i16> {
    pcm.chunks_exact(channels)
        .skip(from)
        .take(to.saturating_sub(from))
        .map(|f| f[c])
        .collect()
}

/// A daemon recording into `dir`, with no free-space floor.
fn recording_options(io: Io, dir: &Path) -> Options {
    Options::new(io)
        .arg("--recording-dir")
        .arg(dir.to_str().unwrap())
        .arg("--recording-min-free-mb")
        .arg("0")
}

fn rms_db(pcm: &[i16]) -> f64 {
    let e = pcm.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / pcm.len().max(1) as f64;
    10.0 * (e / (32768.0f64 * 32768.0)).max(1e-20).log10()
}

fn start(leg: &str, format: proto::RecordingFormat, stereo: bool) -> proto::StartRecordingRequest {
    proto::StartRecordingRequest {
        leg_id: leg.to_owned(),
        format: format.into(),
        stereo,
        ..Default::default()
    }
}

/// Sends tones from both peers every 20 ms for `seconds` (pacing from
/// `start`, a tick count `from` on).
fn tones(a: &mut ToneStream, b: &mut ToneStream, seconds: f64) {
    let begin = Instant::now();
    let n = (seconds * 50.0) as usize;
    legato_tests::paced(begin, n, Duration::from_millis(20), |_| {
        let _ = a.send();
        let _ = b.send();
    });
}

/// Waits for `count` RecordStopped events: (recording id, duration ms,
/// bytes, path).
async fn stopped(
    events: &mut legato_client::EventStream,
    count: usize,
) -> Vec<(String, u64, u64, String)> {
    let mut got = Vec::new();
    while got.len() < count {
        let e = wait_event(events, Duration::from_secs(20), |e| {
            matches!(e.kind, Some(proto::event::Kind::RecordStopped(_)))
        })
        .await
        .expect("RecordStopped");
        if let Some(proto::event::Kind::RecordStopped(s)) = e.kind {
            got.push((s.recording_id, s.duration_ms, s.size_bytes, s.path));
        }
    }
    got
}

async fn bridged(client: &Client, session: &str) -> (Peer, Peer, proto::Leg, proto::Leg) {
    let (pa, pb) = (Peer::new().unwrap(), Peer::new().unwrap());
    let a = connected_leg_with(client, session, &pa, "0").await.unwrap();
    let b = connected_leg_with(client, session, &pb, "0").await.unwrap();
    client
        .send_media(a.leg_id.as_str(), b.leg_id.as_str())
        .await
        .unwrap();
    client
        .send_media(b.leg_id.as_str(), a.leg_id.as_str())
        .await
        .unwrap();
    (pa, pb, a, b)
}

/// Tones on both sides, a pause, tones again; three recordings of A's leg.
async fn content_channels_and_timeline(io: Io) {
    let dir = tempdir("rec-content");
    let options = recording_options(io, &dir);
    let daemon = daemon_or_skip!(options);
    let client = daemon.client().await.unwrap();
    let session = client.create_session(None).await.unwrap();
    let (pa, pb, a, b) = bridged(&client, &session).await;
    let mut events = client
        .watch_events(EventFilter::new().leg(&a.leg_id))
        .await
        .unwrap();
    let mut ta = ToneStream::new(&pa, local_rtp(&a), G711::Pcmu, 700.0, 8000.0).unwrap();
    let mut tb = ToneStream::new(&pb, local_rtp(&b), G711::Pcmu, 1300.0, 8000.0).unwrap();
    // Let both streams latch before recording.
    tones(&mut ta, &mut tb, 0.4);
    let begin = Instant::now();
    let wav = client
        .start_recording(start(&a.leg_id, proto::RecordingFormat::Wav, true))
        .await
        .unwrap();
    let mp3 = client
        .start_recording(start(&a.leg_id, proto::RecordingFormat::Mp3, true))
        .await
        .unwrap();
    let mono = client
        .start_recording(proto::StartRecordingRequest {
            leg_id: a.leg_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let started = Instant::now();
    tones(&mut ta, &mut tb, 2.0);
    // 3 s with no RTP from either side (a hold): silence in the files.
    let _drain = spawn_collector(&pa, Instant::now() + Duration::from_secs(3));
    tokio::time::sleep(Duration::from_secs(3)).await;
    tones(&mut ta, &mut tb, 2.0);
    let stop_at = Instant::now();
    client.stop_recording(&a.leg_id, None).await.unwrap();
    let wall = stop_at - started;
    let done = stopped(&mut events, 3).await;
    for (id, ms, bytes, path) in &done {
        let want = [&wav, &mp3, &mono]
            .into_iter()
            .find(|r| r.recording_id == *id)
            .expect("a recording of ours");
        assert_eq!(*path, want.path);
        assert_eq!(std::fs::metadata(path).unwrap().len(), *bytes, "{path}");
        let skew = *ms as f64 / 1000.0 - wall.as_secs_f64();
        eprintln!(
            "{io:?} {path}: {ms} ms recorded, {:.0} ms of wall clock between StartRecording's answer and StopRecording ({:+.0} ms); first StartRecording sent {:.0} ms before",
            wall.as_secs_f64() * 1000.0,
            skew * 1000.0,
            (started - begin).as_secs_f64() * 1000.0
        );
        assert!(
            (-0.06..=0.12).contains(&skew),
            "{path}: {ms} ms against {wall:?}"
        );
    }
    // Formats.
    let (codec, rate, channels, _, _) = probe(Path::new(&wav.path)).expect("WAV opens");
    assert_eq!((codec.as_str(), rate, channels), ("pcm_s16le", 8000, 2));
    let (codec, rate, channels, bitrate, _) = probe(Path::new(&mp3.path)).expect("MP3 opens");
    assert_eq!((codec.as_str(), rate, channels), ("mp3", 8000, 2));
    assert_eq!(bitrate, 32_000);
    let (codec, rate, channels, bitrate, _) = probe(Path::new(&mono.path)).expect("MP3 opens");
    assert_eq!(
        (codec.as_str(), rate, channels, bitrate),
        ("mp3", 8000, 1, 32_000),
        "the Call API's default"
    );
    // Channels: left A (700 Hz), right B (1300 Hz), in the first second of
    // tones and in the last; the pause silent.
    for path in [&wav.path, &mp3.path] {
        let pcm = decode(Path::new(path), 8000, 2);
        for (from, to) in [(4_000, 12_000), (44_000, 52_000)] {
            let left = channel(&pcm, 2, 0, from, to);
            let right = channel(&pcm, 2, 1, from, to);
            let (l7, l13) = (
                tone_level_db_at(&left, 8000, 700.0),
                tone_level_db_at(&left, 8000, 1300.0),
            );
            let (r7, r13) = (
                tone_level_db_at(&right, 8000, 700.0),
                tone_level_db_at(&right, 8000, 1300.0),
            );
            eprintln!(
                "{io:?} {path} {from}..{to}: left 700 Hz {l7:.1} dB, 1300 Hz {l13:.1} dB; right 700 Hz {r7:.1}, 1300 Hz {r13:.1}"
            );
            assert!(l7 - l13 >= 30.0, "left carries A only: {l7:.1} / {l13:.1}");
            assert!(r13 - r7 >= 30.0, "right carries B only: {r13:.1} / {r7:.1}");
        }
        let pause = channel(&pcm, 2, 0, 18_000, 38_000);
        let pause_right = channel(&pcm, 2, 1, 18_000, 38_000);
        assert!(
            rms_db(&pause) < -60.0 && rms_db(&pause_right) < -60.0,
            "{path}: the pause is silence ({:.1} / {:.1} dBFS)",
            rms_db(&pause),
            rms_db(&pause_right)
        );
        assert!(sox_reads(Path::new(path)), "sox reads {path}");
    }
    let pcm = decode(Path::new(&mono.path), 8000, 1);
    let part = &pcm[4_000..12_000];
    let (m7, m13) = (
        tone_level_db_at(part, 8000, 700.0),
        tone_level_db_at(part, 8000, 1300.0),
    );
    assert!(
        m7 > -20.0 && m13 > -20.0,
        "the mix has both: {m7:.1} / {m13:.1}"
    );
    drop(daemon);
    let _ = std::fs::remove_dir_all(&dir);
}

/// 100 recordings, legatod killed: every file opens and holds audio up to
/// about a second before the kill; a new legatod repairs the WAVs.
async fn killed_mid_call(io: Io) {
    let dir = tempdir("rec-crash");
    let options = || recording_options(io, &dir);
    let mut daemon = daemon_or_skip!(options());
    let client = daemon.client().await.unwrap();
    let session = client.create_session(None).await.unwrap();
    let mut peers = Vec::new();
    let mut files = Vec::new();
    for i in 0..50 {
        let peer = Peer::new().unwrap();
        let leg = connected_leg_with(&client, &session, &peer, "0")
            .await
            .unwrap();
        for format in [proto::RecordingFormat::Wav, proto::RecordingFormat::Mp3] {
            let r = client
                .start_recording(start(&leg.leg_id, format, i % 2 == 0))
                .await
                .unwrap();
            files.push(PathBuf::from(r.path));
        }
        peers.push((peer, leg));
    }
    let started = Instant::now();
    // The first leg's peer talks (700 Hz) until the kill.
    let mut tone = ToneStream::new(
        &peers[0].0,
        local_rtp(&peers[0].1),
        G711::Pcmu,
        700.0,
        8000.0,
    )
    .unwrap();
    legato_tests::paced(Instant::now(), 150, Duration::from_millis(20), |_| {
        let _ = tone.send();
    });
    let alive = started.elapsed().as_secs_f64();
    let pid = daemon.pid().expect("legatod runs");
    assert!(
        Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    std::thread::sleep(Duration::from_millis(300));
    let _ = daemon.terminate();
    assert_eq!(files.len(), 100);
    let mut shortest = f64::MAX;
    for path in &files {
        let (_, _, _, _, seconds) =
            probe(path).unwrap_or_else(|| panic!("ffprobe opens {path:?} after the kill"));
        assert!(sox_reads(path), "sox reads {path:?} after the kill");
        shortest = shortest.min(seconds);
    }
    eprintln!(
        "{io:?}: killed {alive:.2} s after the last StartRecording; shortest file {shortest:.2} s"
    );
    assert!(
        shortest >= alive - 1.0,
        "every file holds audio up to within a second of the kill: {shortest:.2} s of {alive:.2}"
    );
    // The talking leg's files hold its tone near their end.
    let pcm = decode(&files[0], 8000, 1);
    let tail = &pcm[pcm.len().saturating_sub(8000)..pcm.len().saturating_sub(2000)];
    assert!(
        tone_level_db_at(tail, 8000, 700.0) > -30.0,
        "the tone is there up to the end"
    );
    // A new legatod repairs the WAV headers (sizes up to the file's end).
    let declared = |path: &Path| {
        let bytes = std::fs::read(path).unwrap();
        (
            u32::from_le_bytes([bytes[40], bytes[41], bytes[42], bytes[43]]) as usize,
            bytes.len() - 44,
        )
    };
    let wavs: Vec<&PathBuf> = files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "wav"))
        .collect();
    let behind = wavs
        .iter()
        .filter(|p| {
            let (said, has) = declared(p);
            said < has
        })
        .count();
    let again = daemon_or_skip!(options());
    let client = again.client().await.unwrap();
    client.list_sessions().await.unwrap();
    for path in &wavs {
        let (said, has) = declared(path);
        assert!(has - said < 4, "{path:?} repaired: {said} of {has} bytes");
    }
    eprintln!(
        "{io:?}: {behind} of {} WAV headers were behind their data after the kill; all repaired",
        wavs.len()
    );
    drop(again);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A full disk: RecordError, media undisturbed, the partial file valid.
async fn disk_full(io: Io) {
    let dir = tempdir("rec-full");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(&dir)
        .output()
        .is_ok_and(|o| o.status.success());
    if !mounted {
        eprintln!("SKIPPED: cannot mount a tmpfs here (not root?): the disk-full test needs one");
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _unmount = Unmount(dir.clone());
    // The default floor (256 MiB free) refuses to start at all.
    {
        let options = Options::new(io)
            .arg("--recording-dir")
            .arg(dir.to_str().unwrap());
        let daemon = daemon_or_skip!(options);
        let client = daemon.client().await.unwrap();
        let session = client.create_session(None).await.unwrap();
        let peer = Peer::new().unwrap();
        let leg = connected_leg_with(&client, &session, &peer, "0")
            .await
            .unwrap();
        let err = client
            .start_recording(start(&leg.leg_id, proto::RecordingFormat::Wav, false))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
    }
    let options = recording_options(io, &dir);
    let daemon = daemon_or_skip!(options);
    let client = daemon.client().await.unwrap();
    let session = client.create_session(None).await.unwrap();
    let (pa, pb, a, _b) = bridged(&client, &session).await;
    let mut events = client
        .watch_events(EventFilter::new().leg(&a.leg_id))
        .await
        .unwrap();
    // 48 kHz stereo WAV: 192 kB/s fills 256 kB in under 2 s.
    let r = client
        .start_recording(proto::StartRecordingRequest {
            leg_id: a.leg_id.clone(),
            format: proto::RecordingFormat::Wav.into(),
            stereo: true,
            sample_rate: 48_000,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut ta = ToneStream::new(&pa, local_rtp(&a), G711::Pcmu, 700.0, 8000.0).unwrap();
    let collector = spawn_collector(&pb, Instant::now() + Duration::from_millis(4200)).unwrap();
    legato_tests::paced(Instant::now(), 200, Duration::from_millis(20), |_| {
        let _ = ta.send();
    });
    let got = collector.join().unwrap();
    let e = wait_event(&mut events, Duration::from_secs(5), |e| {
        matches!(e.kind, Some(proto::event::Kind::RecordError(_)))
    })
    .await
    .expect("RecordError");
    let Some(proto::event::Kind::RecordError(error)) = e.kind else {
        unreachable!()
    };
    eprintln!(
        "{io:?}: RecordError {:?}; B got {} packets of 200",
        error.error,
        got.len()
    );
    assert_eq!(error.recording_id, r.recording_id);
    assert!(
        error.error.to_lowercase().contains("space"),
        "{}",
        error.error
    );
    assert!(got.len() >= 190, "the call's media goes on: {}", got.len());
    client.stop_recording(&a.leg_id, None).await.unwrap();
    let done = stopped(&mut events, 1).await;
    let (_, _, _, _, seconds) = probe(Path::new(&r.path)).expect("the partial file opens");
    eprintln!(
        "{io:?}: partial file {seconds:.2} s, RecordStopped says {} ms",
        done[0].1
    );
    assert!(seconds > 0.2);
}

/// A three-member conference recorded: its mix carries all three.
async fn conference_mix(io: Io) {
    let dir = tempdir("rec-conf");
    let options = recording_options(io, &dir);
    let daemon = daemon_or_skip!(options);
    let client = daemon.client().await.unwrap();
    let session = client.create_session(None).await.unwrap();
    let conference = client.create_conference(&session).await.unwrap();
    let tones_hz = [450.0, 850.0, 1250.0];
    let mut streams = Vec::new();
    let mut peers = Vec::new();
    for hz in tones_hz {
        let peer = Peer::new().unwrap();
        let leg = connected_leg_with(&client, &session, &peer, "0")
            .await
            .unwrap();
        let c = MediaEndpoint::Conference(conference.clone());
        client
            .send_media(leg.leg_id.as_str(), c.clone())
            .await
            .unwrap();
        client.send_media(c, leg.leg_id.as_str()).await.unwrap();
        streams.push(ToneStream::new(&peer, local_rtp(&leg), G711::Pcmu, hz, 6000.0).unwrap());
        peers.push(peer);
    }
    let err = client
        .start_recording(proto::StartRecordingRequest {
            conference_id: conference.clone(),
            stereo: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    let mut events = client
        .watch_events(EventFilter::new().session(&session))
        .await
        .unwrap();
    let r = client
        .start_recording(proto::StartRecordingRequest {
            conference_id: conference.clone(),
            format: proto::RecordingFormat::Wav.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    legato_tests::paced(Instant::now(), 100, Duration::from_millis(20), |_| {
        for s in &mut streams {
            let _ = s.send();
        }
    });
    client
        .stop_recording(MediaEndpoint::Conference(conference.clone()), None)
        .await
        .unwrap();
    let done = stopped(&mut events, 1).await;
    assert_eq!(done[0].0, r.recording_id);
    let pcm = decode(Path::new(&r.path), 8000, 1);
    let middle = &pcm[pcm.len() / 4..pcm.len() * 3 / 4];
    for hz in tones_hz {
        let level = tone_level_db_at(middle, 8000, hz);
        eprintln!("{io:?} conference recording: {hz} Hz at {level:.1} dB");
        assert!(level > 60.0, "{hz} Hz in the mix: {level:.1} dB");
    }
    drop(daemon);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Statuses of bad requests.
async fn bad_requests(io: Io) {
    let dir = tempdir("rec-bad");
    let options = recording_options(io, &dir);
    let daemon = daemon_or_skip!(options);
    let client = daemon.client().await.unwrap();
    let session = client.create_session(None).await.unwrap();
    let peer = Peer::new().unwrap();
    let leg = connected_leg_with(&client, &session, &peer, "0")
        .await
        .unwrap();
    for (request, code) in [
        (
            proto::StartRecordingRequest {
                leg_id: leg.leg_id.clone(),
                sample_rate: 12_345,
                ..Default::default()
            },
            Code::InvalidArgument,
        ),
        (
            proto::StartRecordingRequest {
                leg_id: leg.leg_id.clone(),
                bitrate_kbps: 999,
                ..Default::default()
            },
            Code::InvalidArgument,
        ),
        (
            proto::StartRecordingRequest {
                leg_id: leg.leg_id.clone(),
                format: 7,
                ..Default::default()
            },
            Code::InvalidArgument,
        ),
        (
            proto::StartRecordingRequest {
                leg_id: "00000000000000000000".into(),
                ..Default::default()
            },
            Code::NotFound,
        ),
        (
            proto::StartRecordingRequest::default(),
            Code::InvalidArgument,
        ),
    ] {
        let err = client.start_recording(request).await.unwrap_err();
        assert_eq!(err.code(), code, "{err}");
    }
    // Eight at once, then RESOURCE_EXHAUSTED; an unknown id to stop is
    // NOT_FOUND; stopping all ends them.
    for _ in 0..8 {
        client
            .start_recording(start(&leg.leg_id, proto::RecordingFormat::Wav, false))
            .await
            .unwrap();
    }
    let err = client
        .start_recording(start(&leg.leg_id, proto::RecordingFormat::Wav, false))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
    let err = client
        .stop_recording(&leg.leg_id, Some("nope"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err}");
    let mut events = client
        .watch_events(EventFilter::new().leg(&leg.leg_id))
        .await
        .unwrap();
    // Hanging up ends them too: RecordStopped after Disconnected.
    client.hangup_leg(&leg.leg_id, 200, "bye").await.unwrap();
    let mut saw_disconnected = false;
    let mut stops = 0;
    while stops < 8 {
        let e = wait_event(&mut events, Duration::from_secs(10), |e| {
            matches!(
                e.kind,
                Some(proto::event::Kind::RecordStopped(_) | proto::event::Kind::Disconnected(_))
            )
        })
        .await
        .expect("RecordStopped after the hangup");
        match e.kind {
            Some(proto::event::Kind::Disconnected(_)) => saw_disconnected = true,
            _ => {
                assert!(saw_disconnected, "Disconnected comes first");
                stops += 1;
            }
        }
    }
    // SIGTERM finalizes what is being recorded: the WAV's header covers
    // all of its data.
    let peer = Peer::new().unwrap();
    let leg = connected_leg_with(&client, &session, &peer, "0")
        .await
        .unwrap();
    let r = client
        .start_recording(start(&leg.leg_id, proto::RecordingFormat::Wav, false))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    drop(events);
    let mut daemon = daemon;
    assert!(daemon.terminate().unwrap().success());
    let bytes = std::fs::read(&r.path).unwrap();
    let declared = u32::from_le_bytes([bytes[40], bytes[41], bytes[42], bytes[43]]) as usize;
    assert_eq!(declared, bytes.len() - 44, "finalized at shutdown");
    assert!(declared >= 16_000, "{declared} bytes: at least a second");
    let _ = std::fs::remove_dir_all(&dir);
}

per_backend!(
    content_channels_and_timeline,
    killed_mid_call,
    disk_full,
    conference_mix,
    bad_requests,
    unwritable_directory,
    uploads_to_object_storage
);

/// moto's S3 server on a free loopback port, stopped on drop.
struct Moto(std::process::Child, u16);

impl Moto {
    fn start() -> Option<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let moto = Self(child, port);
        let until = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(moto)
    }

    /// Runs `code` in Python with `s3`, a boto3 client of the server.
    fn python(&self, code: &str) -> Vec<u8> {
        let out = Command::new("python3")
            .args([
                "-c",
                &format!(
                    "import boto3\n\
                     s3 = boto3.client('s3', endpoint_url='http://127.0.0.1:{}', \
                     aws_access_key_id='test', aws_secret_access_key='test', region_name='us-east-1')\n{code}",
                    self.1
                ),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Finished recordings go to S3-compatible storage (moto's server): the
/// object holds the file's bytes; a server that is down gets retries, then
/// RecordError, and the local file stays.
async fn uploads_to_object_storage(io: Io) {
    let imported = Command::new("python3")
        .args(["-c", "import moto.server, flask"])
        .status()
        .is_ok_and(|s| s.success());
    if !imported {
        eprintln!("SKIPPED: moto[server] is not installed (scripts/test.sh installs it)");
        return;
    }
    let moto = Moto::start().expect("moto's server starts");
    moto.python("s3.create_bucket(Bucket='legato-test')");
    let dir = tempdir("rec-upload");
    for (endpoint, retries) in [
        (format!("http://127.0.0.1:{}", moto.1), "5"),
        ("http://127.0.0.1:9".to_owned(), "1"),
    ] {
        let options = recording_options(io, &dir)
            .arg("--recording-upload-endpoint")
            .arg(endpoint.as_str())
            .arg("--recording-upload-bucket")
            .arg("legato-test")
            .arg("--recording-upload-prefix")
            .arg("calls/")
            .arg("--recording-upload-retries")
            .arg(retries)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test");
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
        let r = client
            .start_recording(start(&leg.leg_id, proto::RecordingFormat::Mp3, false))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        client
            .stop_recording(leg.leg_id.as_str(), None)
            .await
            .unwrap();
        let e = wait_event(&mut events, Duration::from_secs(20), |e| {
            matches!(
                e.kind,
                Some(proto::event::Kind::RecordUploaded(_) | proto::event::Kind::RecordError(_))
            )
        })
        .await
        .expect("RecordUploaded or RecordError");
        let local = std::fs::read(&r.path).expect("the local file stays");
        match e.kind {
            Some(proto::event::Kind::RecordUploaded(u)) => {
                assert!(retries == "5", "uploaded to a server that is down?");
                let name = Path::new(&r.path).file_name().unwrap().to_str().unwrap();
                assert!(
                    u.url.ends_with(&format!("/legato-test/calls/{name}")),
                    "{}",
                    u.url
                );
                let object = moto.python(&format!(
                    "import sys\n\
                     sys.stdout.buffer.write(s3.get_object(Bucket='legato-test', Key='calls/{name}')['Body'].read())"
                ));
                assert_eq!(object, local, "the object holds the file's bytes");
                eprintln!("{io:?}: {} bytes uploaded to {}", object.len(), u.url);
            }
            Some(proto::event::Kind::RecordError(err)) => {
                assert!(retries == "1", "upload to moto failed: {}", err.error);
                assert!(err.error.contains("upload of"), "{}", err.error);
                assert!(err.error.contains("local file is kept"), "{}", err.error);
                assert!(err.error.contains("2 attempts"), "{}", err.error);
                eprintln!("{io:?}: server down: {}", err.error);
            }
            _ => unreachable!(),
        }
        drop(daemon);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A recording directory legatod cannot create: FAILED_PRECONDITION with
/// the reason.
async fn unwritable_directory(io: Io) {
    let file = std::env::temp_dir().join(format!("legato-rec-file-{}", fastrand::u64(..)));
    std::fs::write(&file, b"a file, not a directory").unwrap();
    let options = recording_options(io, &file.join("recordings"));
    let daemon = daemon_or_skip!(options);
    let client = daemon.client().await.unwrap();
    let session = client.create_session(None).await.unwrap();
    let peer = Peer::new().unwrap();
    let leg = connected_leg_with(&client, &session, &peer, "0")
        .await
        .unwrap();
    let err = client
        .start_recording(start(&leg.leg_id, proto::RecordingFormat::Wav, false))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err}");
    assert!(err.to_string().contains("recordings"), "{err}");
    drop(daemon);
    let _ = std::fs::remove_file(&file);
}
