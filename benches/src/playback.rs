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

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use legato_client::{Client, CreateLeg, UpdateLeg, proto};
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
}

impl PlaybackReport {
    pub fn text(&self) -> String {
        format!(
            "playback: {} legs on one cached prompt, {:.0} s measured\n\
             StartPlayback to first packet ({} legs): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms\n\
             legatod CPU per playing leg per 20 ms tick: {:.3} us (idle connected leg: {:.3} us)\n\
             RSS added per playing leg: {:.1} KiB; packets read back per leg per second: at least {:.1}\n",
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
        })
    });
    let _ = std::fs::remove_dir_all(&dir);
    result.map_err(|e| anyhow!("playback probe: {e:#}"))
}
