//! The prompt benchmark (`legato-loadgen playback`): many legs playing one
//! cached prompt, against a spawned legatod.
//!
//! 1. A 2 s WAV (8 kHz) is written to a temporary file and played once, so
//!    the prompt is cached.
//! 2. StartPlayback to first packet: for each of the first `probes` legs
//!    (connected PCMU legs, each with its own peer socket), the time from
//!    sending StartPlayback (`loop`), at a random phase of the media clock,
//!    to the first RTP packet on the peer's socket (the probe waits in
//!    `recv`).
//! 3. CPU and memory: the remaining legs are created idle; legatod's CPU
//!    over `seconds` and its RSS are read (procfs); then all of them start
//!    the prompt (looping) and the same is read again. CPU per playing leg
//!    per 20 ms tick is the difference over legs × ticks; RSS per playing
//!    leg likewise (the prompt itself is held once, shared).
//! 4. PlaybackReady of a 1 MB MP3 over loopback HTTP: a 128 kbit/s
//!    44.1 kHz stereo MP3 of about 1 MB (made by ffmpeg; the step is left
//!    out, and says so, where ffmpeg is missing) served by a small HTTP
//!    server in this process with `Cache-Control: no-store`, so each of
//!    `mp3_rounds` StartPlayback (`preload_only`) downloads, decodes and
//!    resamples it whole: the time from the request to PlaybackReady. The
//!    baseline, in the same run: ffmpeg decoding the same file to 48 kHz
//!    mono (`ffmpeg -i prompt.mp3 -ar 48000 -ac 1 -f null -`, process
//!    start included), as many rounds.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt as _;

use anyhow::{Context, Result, anyhow};
use legato_client::{Client, CreateLeg, EventFilter, UpdateLeg, proto};
use serde::Serialize;

use crate::procfs::ProcSample;
use crate::target::{leg_addr, offer};

/// What the probe measured.
#[derive(Debug, Serialize)]
pub struct PlaybackReport {
    pub legs: usize,
    pub probes: usize,
    pub seconds: f64,
    /// StartPlayback sent → first packet received, ms.
    pub first_packet_p50_ms: f64,
    pub first_packet_p99_ms: f64,
    pub first_packet_max_ms: f64,
    /// legatod CPU per playing leg per 20 ms tick (idle legs' share taken
    /// off), µs: equally, per packet sent.
    pub cpu_us_per_leg_tick: f64,
    /// legatod CPU per idle connected leg per tick, µs (the baseline).
    pub idle_cpu_us_per_leg_tick: f64,
    /// RSS added per leg by playing, KiB.
    pub rss_kib_per_playing_leg: f64,
    /// Packets the peers read back while measured, per leg per second: a
    /// lower bound (their socket buffers may overflow while unread).
    pub packets_per_leg_s: f64,
    /// Size of the MP3 of step 4 (0: ffmpeg missing, step left out).
    pub mp3_bytes: usize,
    /// Its duration, s.
    pub mp3_seconds: f64,
    /// StartPlayback (preload_only) → PlaybackReady of the MP3 over
    /// loopback HTTP, each round, ms.
    pub mp3_ready_ms: Vec<f64>,
    /// The baseline: ffmpeg decoding the same MP3 to 48 kHz mono, each
    /// round, ms.
    pub ffmpeg_decode_ms: Vec<f64>,
}

impl PlaybackReport {
    pub fn text(&self) -> String {
        format!(
            "playback: {} legs on one cached prompt, {:.0} s measured\n\
             StartPlayback to first packet ({} legs): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms\n\
             legatod CPU per playing leg per 20 ms tick: {:.3} us (idle connected leg: {:.3} us)\n\
             RSS added per playing leg: {:.1} KiB; packets read back per leg per second: at least {:.1}\n\
             PlaybackReady of a {:.2} MB, {:.0} s MP3 over loopback HTTP: {}\n",
            self.legs,
            self.seconds,
            self.probes,
            self.first_packet_p50_ms,
            self.first_packet_p99_ms,
            self.first_packet_max_ms,
            self.cpu_us_per_leg_tick,
            self.idle_cpu_us_per_leg_tick,
            self.rss_kib_per_playing_leg,
            self.packets_per_leg_s,
            self.mp3_bytes as f64 / 1e6,
            self.mp3_seconds,
            if self.mp3_bytes == 0 {
                "not measured (no ffmpeg to make the MP3)".to_owned()
            } else {
                let mut sorted = self.mp3_ready_ms.clone();
                sorted.sort_by(f64::total_cmp);
                let mut ffmpeg = self.ffmpeg_decode_ms.clone();
                ffmpeg.sort_by(f64::total_cmp);
                format!(
                    "median {:.0} ms, max {:.0} ms over {} rounds \
                     (ffmpeg decoding it to 48 kHz mono: median {:.0} ms; ratio {:.2})",
                    percentile(&sorted, 0.5),
                    sorted.last().copied().unwrap_or(0.0),
                    sorted.len(),
                    percentile(&ffmpeg, 0.5),
                    percentile(&sorted, 0.5) / percentile(&ffmpeg, 0.5).max(1e-9)
                )
            },
        )
    }
}

/// A 16-bit mono WAV at 8 kHz: `seconds` of a 440 Hz tone.
fn wav(seconds: f64) -> Vec<u8> {
    let n = (8000.0 * seconds) as usize;
    let data = (n * 2) as u32;
    let mut w = Vec::with_capacity(44 + n * 2);
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    for v in [16u32, 0x0001_0001, 8000, 16_000, 0x0010_0002] {
        w.extend_from_slice(&v.to_le_bytes());
    }
    w.extend_from_slice(b"data");
    w.extend_from_slice(&data.to_le_bytes());
    for i in 0..n {
        let s = (6000.0 * (2.0 * std::f64::consts::PI * 440.0 * i as f64 / 8000.0).sin()) as i16;
        w.extend_from_slice(&s.to_le_bytes());
    }
    w
}

/// About 1 MB of MP3 (64 s, 44.1 kHz stereo, 128 kbit/s: a chord under
/// a slow swell) made by ffmpeg in `dir`; `None` without ffmpeg.
fn mp3(dir: &Path) -> Option<(Vec<u8>, f64)> {
    let seconds = 64.0;
    let out = dir.join("prompt.mp3");
    let status = std::process::Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!(
            "aevalsrc=0.3*sin(2*PI*300*t)*(0.6+0.4*sin(2*PI*3*t))+0.2*sin(2*PI*1100*t)|\
             0.3*sin(2*PI*500*t)+0.1*sin(2*PI*2300*t):s=44100:d={seconds}"
        ))
        .args(["-c:a", "libmp3lame", "-b:a", "128k"])
        .arg(&out)
        .stdin(std::process::Stdio::null())
        .status()
        .ok()?;
    let bytes = std::fs::read(&out).ok().filter(|_| status.success())?;
    Some((bytes, seconds))
}

/// Serves `body` as `audio/mpeg` (no-store) to every request on a
/// loopback port until the returned flag is set.
fn serve(body: Vec<u8>) -> Result<(u16, Arc<AtomicBool>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let port = listener.local_addr()?.port();
    let stop = Arc::new(AtomicBool::new(false));
    let done = stop.clone();
    std::thread::spawn(move || {
        while !done.load(Ordering::Relaxed) {
            let Ok((mut conn, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            };
            let _ = conn.set_nonblocking(false);
            let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && head.len() < 16_384 {
                match conn.read(&mut byte) {
                    Ok(1) => head.push(byte[0]),
                    _ => break,
                }
            }
            let header = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: audio/mpeg\r\nContent-Length: {}\r\n\
                 Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(header.as_bytes());
            let _ = conn.write_all(&body);
        }
    });
    Ok((port, stop))
}

/// Step 4: PlaybackReady times of `rounds` preloads of an MP3 over HTTP
/// on `leg`; the MP3's size and duration (0 and nothing without ffmpeg).
async fn mp3_ready(
    client: &Client,
    leg: &str,
    dir: &Path,
    rounds: usize,
) -> Result<(usize, f64, Vec<f64>, Vec<f64>)> {
    let Some((body, seconds)) = mp3(dir) else {
        return Ok((0, 0.0, Vec::new(), Vec::new()));
    };
    let size = body.len();
    let (port, stop) = serve(body)?;
    let url = format!("http://127.0.0.1:{port}/prompt.mp3");
    let mut events = client.watch_events(EventFilter::new().leg(leg)).await?;
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let sent = Instant::now();
        let id = client
            .start_playback(proto::StartPlaybackRequest {
                leg_id: leg.to_owned(),
                url: url.clone(),
                preload_only: true,
                ..Default::default()
            })
            .await?;
        loop {
            let event = tokio::time::timeout(Duration::from_secs(60), events.next())
                .await
                .context("no PlaybackReady within 60 s")?
                .context("the event stream ended")??;
            match event.kind {
                Some(proto::event::Kind::PlaybackReady(r)) if r.playback_id == id => break,
                Some(proto::event::Kind::PlaybackFinished(f)) if f.playback_id == id => {
                    stop.store(true, Ordering::Relaxed);
                    return Err(anyhow!("the MP3 did not load: {}", f.error));
                }
                _ => {}
            }
        }
        times.push(sent.elapsed().as_secs_f64() * 1000.0);
    }
    stop.store(true, Ordering::Relaxed);
    let mut ffmpeg = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let begin = Instant::now();
        let status = std::process::Command::new("ffmpeg")
            .args(["-loglevel", "error", "-i"])
            .arg(dir.join("prompt.mp3"))
            .args(["-ar", "48000", "-ac", "1", "-f", "null", "-"])
            .stdin(std::process::Stdio::null())
            .status()?;
        if !status.success() {
            return Err(anyhow!("ffmpeg could not decode the MP3 ({status})"));
        }
        ffmpeg.push(begin.elapsed().as_secs_f64() * 1000.0);
    }
    Ok((size, seconds, times, ffmpeg))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// A connected PCMU leg whose peer is `peer`.
async fn leg(client: &Client, session: &str, peer: SocketAddr) -> Result<String> {
    let created = client
        .create_leg(CreateLeg::incoming(session, offer(peer)))
        .await?;
    client
        .update_leg(UpdateLeg::new(&created.leg.leg_id).state(proto::LegState::Connected))
        .await?;
    leg_addr(&created.leg)?;
    Ok(created.leg.leg_id)
}

fn start(leg: &str, url: &str) -> proto::StartPlaybackRequest {
    proto::StartPlaybackRequest {
        leg_id: leg.to_owned(),
        url: url.to_owned(),
        r#loop: true,
        ..Default::default()
    }
}

/// Runs the probe against legatod (`pid`) through `client`.
pub fn probe(
    runtime: &tokio::runtime::Runtime,
    client: &Client,
    pid: u32,
    legs: usize,
    probes: usize,
    seconds: f64,
    mp3_rounds: usize,
) -> Result<PlaybackReport> {
    let probes = probes.min(legs);
    let dir = std::env::temp_dir().join(format!("legato-loadgen-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let file: PathBuf = dir.join("prompt.wav");
    std::fs::write(&file, wav(2.0))?;
    let url = file.to_string_lossy().into_owned();
    let result = runtime.block_on(async {
        let session = client.create_session(None).await?;
        let mut peers = Vec::with_capacity(legs);
        let mut ids = Vec::with_capacity(legs);
        for _ in 0..legs {
            // Not 127.0.0.1: its ephemeral ports overlap legatod's media range.
            let socket = UdpSocket::bind("127.0.0.2:0")?;
            socket.set_read_timeout(Some(Duration::from_secs(2)))?;
            ids.push(leg(client, &session, socket.local_addr()?).await?);
            peers.push(socket);
        }
        // Cache the prompt: play it once on the last leg and stop.
        client.start_playback(start(&ids[legs - 1], &url)).await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        client.stop_playback(ids[legs - 1].as_str()).await?;
        // First packets.
        let mut latencies = Vec::with_capacity(probes);
        let mut buf = [0u8; 2048];
        for i in 0..probes {
            let socket = &peers[i];
            socket.set_nonblocking(true)?;
            while socket.recv(&mut buf).is_ok() {}
            socket.set_nonblocking(false)?;
            // A random phase against the media clock: the previous probe's
            // packet left on a tick, and a request sent right after it
            // would always wait a whole tick.
            tokio::time::sleep(Duration::from_micros(i as u64 * 7_919 % 20_000)).await;
            let sent = Instant::now();
            client.start_playback(start(&ids[i], &url)).await?;
            loop {
                let n = socket
                    .recv(&mut buf)
                    .with_context(|| format!("no packet on leg {i}'s peer"))?;
                // RTP, not RTCP.
                if n >= 12 && !(192..=223).contains(&buf[1]) {
                    break;
                }
            }
            latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
        }
        // Idle baseline: the other legs connected and silent. The probe
        // legs stop for it.
        for id in &ids[..probes] {
            client.stop_playback(id.as_str()).await?;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let window = Duration::from_secs_f64(seconds);
        let idle0 = ProcSample::of(pid)?;
        tokio::time::sleep(window).await;
        let idle1 = ProcSample::of(pid)?;
        // All of them playing.
        for id in &ids {
            client.start_playback(start(id, &url)).await?;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        for s in &peers {
            s.set_nonblocking(true)?;
            while s.recv(&mut buf).is_ok() {}
        }
        let busy0 = ProcSample::of(pid)?;
        tokio::time::sleep(window).await;
        let busy1 = ProcSample::of(pid)?;
        let mut received = 0u64;
        for s in &peers {
            while s.recv(&mut buf).is_ok() {
                received += 1;
            }
        }
        for id in &ids {
            client.stop_playback(id.as_str()).await?;
        }
        let (mp3_bytes, mp3_seconds, mp3_ready_ms, ffmpeg_decode_ms) = if mp3_rounds > 0 {
            mp3_ready(client, &ids[0], &dir, mp3_rounds).await?
        } else {
            (0, 0.0, Vec::new(), Vec::new())
        };
        client.delete_session(&session).await?;
        latencies.sort_by(f64::total_cmp);
        let ticks = legs as f64 * seconds * 50.0;
        let idle_s = idle1.cpu_since(&idle0).best_s();
        let busy_s = busy1.cpu_since(&busy0).best_s();
        Ok::<_, anyhow::Error>(PlaybackReport {
            legs,
            probes,
            seconds,
            first_packet_p50_ms: percentile(&latencies, 0.5),
            first_packet_p99_ms: percentile(&latencies, 0.99),
            first_packet_max_ms: latencies.last().copied().unwrap_or(0.0),
            cpu_us_per_leg_tick: (busy_s - idle_s) / ticks * 1e6,
            idle_cpu_us_per_leg_tick: idle_s / ticks * 1e6,
            rss_kib_per_playing_leg: (busy1.rss_kib as f64 - idle1.rss_kib as f64) / legs as f64,
            packets_per_leg_s: received as f64 / legs as f64 / seconds,
            mp3_bytes,
            mp3_seconds,
            mp3_ready_ms,
            ffmpeg_decode_ms,
        })
    });
    let _ = std::fs::remove_dir_all(&dir);
    result.map_err(|e| anyhow!("playback probe: {e:#}"))
}
