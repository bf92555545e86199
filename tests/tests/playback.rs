//! StartPlayback of files end to end (Call.startPlayback).
//!
//! - A 3 s multi-tone WAV at 8 kHz played to a PCMU leg reaches its peer
//!   with at least 25 dB SNR after alignment; PlaybackReady, then
//!   PlaybackStarted when the first packet goes, then PlaybackFinished
//!   about 3 s later. The same file as a 22.05 kHz MP3 (made by ffmpeg) and
//!   a 16 kHz WAV to a G.722 leg: SNR stated.
//! - A second play of the same file (from the cache: the daemon's unit
//!   tests count decodes) sounds the same; a rewritten file is decoded
//!   again.
//! - `loop` plays until StopPlayback; `preload_only` raises PlaybackReady
//!   and sends nothing.
//! - Missing file, HTML page, WAV whose header lies, unknown scheme,
//!   relative path: a clear PlaybackFinished error or status (http(s)
//!   prompts: tests/http_prompts.rs).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use legato_client::{Code, EventFilter, proto};
use legato_tests::{
    Codec, G711, Io, Options, Peer, connected_leg_sdp, connected_leg_with, daemon_or_skip,
    decode_window, per_backend, spawn_collector, tempdir, wait_event, wav,
};

/// The reference signal: three tones under a slow swell, like speech's
/// formants, `seconds` long at `rate`.
fn reference(rate: u32, seconds: f64) -> Vec<i16> {
    let n = (f64::from(rate) * seconds) as usize;
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            let swell = 0.6 + 0.4 * (2.0 * std::f64::consts::PI * 3.0 * t).sin();
            let x = (2.0 * std::f64::consts::PI * 300.0 * t).sin()
                + 0.7 * (2.0 * std::f64::consts::PI * 1100.0 * t).sin()
                + 0.5 * (2.0 * std::f64::consts::PI * 2300.0 * t).sin();
            (4000.0 * swell * x) as i16
        })
        .collect()
}

/// SNR of `got` against `reference` at the best delay (up to 200 ms at
/// 8 kHz... or `max_lag` samples) and gain, over the middle of the signal.
fn aligned_snr(reference: &[i16], got: &[i16], max_lag: usize) -> f64 {
    let r: Vec<f64> = reference.iter().map(|&s| f64::from(s)).collect();
    let g: Vec<f64> = got.iter().map(|&s| f64::from(s)).collect();
    let start = reference.len() / 6;
    let len = reference.len() * 2 / 3;
    let mut best = (f64::MIN, 0usize);
    for lag in 0..max_lag {
        if start + lag + len > g.len() {
            break;
        }
        let c: f64 = (0..len).map(|i| r[start + i] * g[start + lag + i]).sum();
        if c > best.0 {
            best = (c, lag);
        }
    }
    let lag = best.1;
    let (mut rr, mut rg) = (0.0, 0.0);
    for i in 0..len {
        rr += r[start + i] * r[start + i];
        rg += r[start + i] * g[start + lag + i];
    }
    let gain = rg / rr.max(1.0);
    let mut err = 0.0;
    for i in 0..len {
        let e = g[start + lag + i] - gain * r[start + i];
        err += e * e;
    }
    10.0 * (rr * gain * gain / err.max(1e-9)).log10()
}

/// Plays `url` to a fresh leg offering `formats`, checks it ends without
/// error and returns the SNR of what the peer heard (in `codec`) against
/// `reference` (best delay up to `max_lag` samples).
async fn played_snr(
    client: &legato_client::Client,
    session: &str,
    (formats, codec): (&str, Codec),
    url: &Path,
    reference: &[i16],
    max_lag: usize,
) -> f64 {
    let p = play(
        client,
        session,
        formats,
        url.to_str().unwrap(),
        Duration::from_secs(6),
    )
    .await;
    assert_eq!(
        p.finished.as_ref().map(|f| f.1.as_str()),
        Some(""),
        "{url:?} plays"
    );
    let (from, to) = (Instant::now() - Duration::from_secs(60), Instant::now());
    let pcm = decode_window(&p.packets, codec, from, to);
    aligned_snr(reference, &pcm, max_lag)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn kind(e: &proto::Event) -> Option<&proto::event::Kind> {
    e.kind.as_ref()
}

/// Plays `path` to a fresh connected leg offering `formats`, collects its
/// peer's packets and the playback's events.
struct Played {
    packets: Vec<legato_tests::Received>,
    ready: Option<Instant>,
    started: Option<Instant>,
    finished: Option<(Instant, String)>,
    playback: String,
}

async fn play(
    client: &legato_client::Client,
    session: &str,
    formats: &str,
    url: &str,
    listen: Duration,
) -> Played {
    let peer = Peer::new().unwrap();
    // Opus needs its rtpmap in the offer; the G.711 and G.722 formats
    // are static.
    let leg = if formats == "111" {
        let lines = Codec::Opus.sdp_lines();
        let offer = peer.offer_with("111", &format!("{lines}a=sendrecv"), "127.0.0.1");
        connected_leg_sdp(client, session, offer).await.unwrap()
    } else {
        connected_leg_with(client, session, &peer, formats)
            .await
            .unwrap()
    };
    let mut events = client
        .watch_events(EventFilter::new().leg(&leg.leg_id))
        .await
        .unwrap();
    let until = Instant::now() + listen;
    let collector = spawn_collector(&peer, until).unwrap();
    let playback = client
        .start_playback(proto::StartPlaybackRequest {
            leg_id: leg.leg_id.clone(),
            url: url.to_owned(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut played = Played {
        packets: Vec::new(),
        ready: None,
        started: None,
        finished: None,
        playback,
    };
    while played.finished.is_none() {
        let left = until.saturating_duration_since(Instant::now());
        let Ok(e) = wait_event(&mut events, left, |e| {
            matches!(
                kind(e),
                Some(
                    proto::event::Kind::PlaybackReady(_)
                        | proto::event::Kind::PlaybackStarted(_)
                        | proto::event::Kind::PlaybackFinished(_)
                )
            )
        })
        .await
        else {
            break;
        };
        let now = Instant::now();
        match kind(&e) {
            Some(proto::event::Kind::PlaybackReady(r)) => {
                assert_eq!(r.playback_id, played.playback);
                played.ready = Some(now);
            }
            Some(proto::event::Kind::PlaybackStarted(s)) => {
                assert_eq!(s.playback_id, played.playback);
                played.started = Some(now);
            }
            Some(proto::event::Kind::PlaybackFinished(f)) => {
                assert_eq!(f.playback_id, played.playback);
                played.finished = Some((now, f.error.clone()));
            }
            _ => {}
        }
    }
    played.packets = collector.join().unwrap();
    played
}

async fn files_play_with_their_events(io: Io) {
    let daemon = daemon_or_skip!(Options::new(io));
    let client = daemon.client().await.unwrap();
    let session = client.create_session(None).await.unwrap();
    let dir = tempdir("playback");
    let narrow = reference(8000, 3.0);
    let path = write(&dir, "prompt.wav", &wav(8000, &narrow, None));

    // WAV on PCMU: SNR, events and their times.
    let p = play(
        &client,
        &session,
        "0",
        path.to_str().unwrap(),
        Duration::from_secs(6),
    )
    .await;
    let (finished_at, error) = p.finished.clone().expect("PlaybackFinished");
    assert_eq!(error, "", "no error");
    // PlaybackReady comes once the file is wholly decoded: here usually
    // with PlaybackStarted, on a loaded machine after it (playback starts
    // from the first decoded segment).
    p.ready.expect("PlaybackReady");
    let started = p.started.expect("PlaybackStarted");
    let first = p.packets.first().expect("packets").at;
    let last = p.packets.last().unwrap().at;
    let start_skew = started.max(first) - started.min(first);
    let end_skew = finished_at.max(last) - finished_at.min(last);
    eprintln!(
        "{io:?} WAV/PCMU: {} packets over {:.2} s; PlaybackStarted {:.0} ms from the first packet, PlaybackFinished {:.0} ms from the last",
        p.packets.len(),
        (last - first).as_secs_f64(),
        start_skew.as_secs_f64() * 1000.0,
        end_skew.as_secs_f64() * 1000.0
    );
    assert!(
        (145..=155).contains(&p.packets.len()),
        "{} packets for 3 s",
        p.packets.len()
    );
    assert!(start_skew < Duration::from_millis(150), "{start_skew:?}");
    assert!(end_skew < Duration::from_millis(150), "{end_skew:?}");
    let pcm = decode_window(
        &p.packets,
        G711::Pcmu,
        first,
        last + Duration::from_millis(1),
    );
    let snr = aligned_snr(&narrow, &pcm, 800);
    eprintln!("{io:?} WAV 8 kHz on PCMU: SNR {snr:.1} dB");
    assert!(snr >= 25.0, "WAV on G.711: {snr:.1} dB");

    // Played again (from the cache) on PCMA.
    let snr = played_snr(&client, &session, ("8", Codec::Pcma), &path, &narrow, 800).await;
    eprintln!("{io:?} WAV 8 kHz on PCMA (cached): SNR {snr:.1} dB");
    assert!(snr >= 25.0, "WAV on PCMA: {snr:.1} dB");

    // MP3 at 22.05 kHz (ffmpeg), on PCMU.
    let mp3 = dir.join("prompt.mp3");
    let status = std::process::Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-i"])
        .arg(&path)
        .args(["-ar", "22050", "-b:a", "64k"])
        .arg(&mp3)
        .status()
        .expect("ffmpeg (installed by scripts/test.sh)");
    assert!(status.success());
    let snr = played_snr(&client, &session, ("0", Codec::Pcmu), &mp3, &narrow, 2400).await;
    eprintln!("{io:?} MP3 22.05 kHz 64 kbit/s on PCMU: SNR {snr:.1} dB");
    assert!(snr >= 15.0, "MP3 on G.711: {snr:.1} dB");

    // A 16 kHz WAV on G.722; a 48 kHz WAV on Opus (a perceptual codec:
    // its waveform SNR is low by design; the bound only says the prompt
    // arrives in order, whole).
    for (rate, formats, codec, max_lag, bound) in [
        (16_000, "9", Codec::G722, 1600, 20.0),
        (48_000, "111", Codec::Opus, 9600, 8.0),
    ] {
        let signal = reference(rate, 3.0);
        let file = write(&dir, &format!("{rate}.wav"), &wav(rate, &signal, None));
        let snr = played_snr(&client, &session, (formats, codec), &file, &signal, max_lag).await;
        eprintln!("{io:?} WAV {rate} Hz on {codec:?}: SNR {snr:.1} dB");
        assert!(snr >= bound, "WAV {rate} Hz on {codec:?}: {snr:.1} dB");
    }

    // The file rewritten (another length): decoded again, not the cache.
    let short = reference(8000, 1.0);
    std::fs::write(&path, wav(8000, &short, None)).unwrap();
    let p = play(
        &client,
        &session,
        "0",
        path.to_str().unwrap(),
        Duration::from_secs(4),
    )
    .await;
    assert!(
        (45..=55).contains(&p.packets.len()),
        "rewritten file: {} packets",
        p.packets.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

async fn loop_preload_and_bad_files(io: Io) {
    let daemon = daemon_or_skip!(Options::new(io));
    let client = daemon.client().await.unwrap();
    let session = client.create_session(None).await.unwrap();
    let dir = tempdir("playback");
    let short = write(&dir, "short.wav", &wav(8000, &reference(8000, 0.5), None));

    // loop: still playing after three lengths, until StopPlayback.
    let peer = Peer::new().unwrap();
    let leg = connected_leg_with(&client, &session, &peer, "0")
        .await
        .unwrap();
    let mut events = client
        .watch_events(EventFilter::new().leg(&leg.leg_id))
        .await
        .unwrap();
    client
        .start_playback(proto::StartPlaybackRequest {
            leg_id: leg.leg_id.clone(),
            url: format!("file://{}", short.display()),
            r#loop: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let got = spawn_collector(&peer, Instant::now() + Duration::from_millis(1600))
        .unwrap()
        .join()
        .unwrap();
    assert!(got.len() >= 70, "looping: {} packets in 1.6 s", got.len());
    client.stop_playback(&leg.leg_id).await.unwrap();
    let finished = wait_event(&mut events, Duration::from_millis(300), |e| {
        matches!(kind(e), Some(proto::event::Kind::PlaybackFinished(_)))
    })
    .await;
    assert!(
        finished.is_err(),
        "no PlaybackFinished for a loop or a stop"
    );

    // preload_only: PlaybackReady, no audio. First read away what the loop
    // sent before the stop took effect.
    let _ = spawn_collector(&peer, Instant::now() + Duration::from_millis(300))
        .unwrap()
        .join();
    let other = write(&dir, "other.wav", &wav(8000, &reference(8000, 1.0), None));
    let collector = spawn_collector(&peer, Instant::now() + Duration::from_millis(800)).unwrap();
    let id = client
        .start_playback(proto::StartPlaybackRequest {
            leg_id: leg.leg_id.clone(),
            url: other.to_str().unwrap().to_owned(),
            preload_only: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let e = wait_event(&mut events, Duration::from_secs(5), |e| {
        matches!(kind(e), Some(proto::event::Kind::PlaybackReady(_)))
    })
    .await
    .unwrap();
    let Some(proto::event::Kind::PlaybackReady(r)) = kind(&e) else {
        unreachable!()
    };
    assert_eq!((r.playback_id.as_str(), r.duration_ms), (id.as_str(), 1000));
    assert!(
        collector.join().unwrap().is_empty(),
        "preload sends nothing"
    );

    // Bad files: PlaybackFinished with the reason.
    let html = write(
        &dir,
        "page.wav",
        b"<!doctype html><html><body>Not Found</body></html>",
    );
    let liar = write(
        &dir,
        "liar.wav",
        &wav(8000, &reference(8000, 0.5), Some(64_000)),
    );
    let missing = dir.join("missing.wav");
    // An MP3 (ffmpeg writes an Info header with its frame count) cut to
    // 40 %: truncated.
    let whole = dir.join("whole.mp3");
    let status = std::process::Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-i"])
        .arg(&other)
        .args(["-b:a", "32k"])
        .arg(&whole)
        .status()
        .expect("ffmpeg (installed by scripts/test.sh)");
    assert!(status.success());
    let bytes = std::fs::read(&whole).unwrap();
    let cut = write(&dir, "cut.mp3", &bytes[..bytes.len() * 2 / 5]);
    for (path, reason) in [
        (missing.as_path(), "cannot open"),
        (html.as_path(), "not audio"),
        (liar.as_path(), "truncated"),
        (cut.as_path(), "truncated"),
    ] {
        let p = play(
            &client,
            &session,
            "0",
            path.to_str().unwrap(),
            Duration::from_secs(5),
        )
        .await;
        let (_, error) = p
            .finished
            .unwrap_or_else(|| panic!("{path:?}: no PlaybackFinished"));
        assert!(error.contains(reason), "{path:?}: {error:?}");
    }
    // Bad requests: statuses.
    for (url, code) in [
        ("relative.wav", Code::InvalidArgument),
        ("ftp://host/x.wav", Code::InvalidArgument),
        ("", Code::InvalidArgument),
    ] {
        let err = client
            .start_playback(proto::StartPlaybackRequest {
                leg_id: leg.leg_id.clone(),
                url: url.to_owned(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), code, "{url}: {err}");
    }
    let err = client
        .start_playback(proto::StartPlaybackRequest {
            leg_id: "00000000000000000000".into(),
            url: short.to_str().unwrap().to_owned(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let _ = std::fs::remove_dir_all(&dir);
}

/// With `--prompt-dir`, only files under it play: a file elsewhere, a
/// `..` path out of it and a link pointing out of it are PERMISSION_DENIED;
/// a file inside plays; over `--prompt-max-file-mb` ends with an error.
async fn prompt_dirs_and_limits(io: Io) {
    let allowed = tempdir("playback");
    let outside = tempdir("playback");
    let inside = write(&allowed, "ok.wav", &wav(8000, &reference(8000, 0.3), None));
    let secret = write(
        &outside,
        "secret.wav",
        &wav(8000, &reference(8000, 0.3), None),
    );
    let link = allowed.join("link.wav");
    std::os::unix::fs::symlink(&secret, &link).unwrap();
    // 1.2 MiB of audio: over a 1 MiB limit.
    let big = write(
        &allowed,
        "big.wav",
        &wav(8000, &reference(8000, 80.0), None),
    );
    let options = Options::new(io)
        .arg("--prompt-dir")
        .arg(allowed.to_str().unwrap())
        .arg("--prompt-max-file-mb")
        .arg("1");
    let daemon = daemon_or_skip!(options);
    let client = daemon.client().await.unwrap();
    let session = client.create_session(None).await.unwrap();
    let peer = Peer::new().unwrap();
    let leg = connected_leg_with(&client, &session, &peer, "0")
        .await
        .unwrap();
    let dotdot = format!(
        "{}/../{}/secret.wav",
        allowed.display(),
        outside.file_name().unwrap().to_str().unwrap()
    );
    for url in [
        secret.to_str().unwrap(),
        link.to_str().unwrap(),
        dotdot.as_str(),
    ] {
        let err = client
            .start_playback(proto::StartPlaybackRequest {
                leg_id: leg.leg_id.clone(),
                url: url.to_owned(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{url}: {err}");
    }
    let p = play(
        &client,
        &session,
        "0",
        inside.to_str().unwrap(),
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(p.finished.map(|f| f.1), Some(String::new()), "inside plays");
    let p = play(
        &client,
        &session,
        "0",
        big.to_str().unwrap(),
        Duration::from_secs(3),
    )
    .await;
    let error = p.finished.expect("PlaybackFinished").1;
    assert!(error.contains("bytes"), "{error}");
    assert!(p.packets.is_empty());
    let _ = std::fs::remove_dir_all(&allowed);
    let _ = std::fs::remove_dir_all(&outside);
}

per_backend!(
    files_play_with_their_events,
    loop_preload_and_bad_files,
    prompt_dirs_and_limits
);
