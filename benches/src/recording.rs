//! The recording-writer benchmark (`legato-loadgen recording`): many
//! recordings at once against a spawned legatod, to see whether its writer
//! threads keep up and what a recording costs.
//!
//! 1. `legs` connected PCMU legs are created, idle (no RTP: a recording's
//!    writer does the same work for silence, since the timeline is written
//!    whole), and legatod's CPU and RSS are read over `seconds` (procfs).
//! 2. `per_leg` recordings of each leg are started (WAV or MP3, the Call
//!    API's defaults otherwise: 8 kHz mono), CPU and RSS are read again
//!    over the same window, while a watcher counts RecordError events (a
//!    writer that fell behind reports the frames it wrote as silence).
//! 3. The recordings are stopped; their RecordStopped events give the
//!    bytes and durations written: the disk write rate, and whether every
//!    file covers the time it was recorded.
//!
//! CPU per recording = (recording − idle) CPU / recordings, as a share of
//! one core: 1 / that is how many such recordings one core sustains.

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use futures::StreamExt as _;
use legato_client::{Client, CreateLeg, EventFilter, UpdateLeg, proto};
use serde::Serialize;

use crate::procfs::ProcSample;
use crate::target::{leg_addr, offer};

/// What the probe measured.
#[derive(Debug, Serialize)]
pub struct RecordingReport {
    pub format: String,
    pub recordings: usize,
    pub seconds: f64,
    /// legatod CPU per recording, share of one core (idle legs' taken off).
    pub cpu_core_share_per_recording: f64,
    /// How many such recordings one core sustains (1 / the share).
    pub recordings_per_core: f64,
    /// RSS added per recording, KiB.
    pub rss_kib_per_recording: f64,
    /// RecordError events while recording (writers falling behind).
    pub record_errors: u64,
    /// Bytes the finished files hold, and per second of recording.
    pub bytes: u64,
    pub write_bytes_per_s: f64,
    /// Shortest and longest file against the time recorded, ms.
    pub shortest_ms: u64,
    pub longest_ms: u64,
    /// Wall-clock time from the last StartRecording to StopRecording, ms.
    pub recorded_ms: u64,
}

impl RecordingReport {
    pub fn text(&self) -> String {
        format!(
            "recording: {} {} recordings, {:.0} s measured\n\
             legatod CPU per recording: {:.4} of a core (one core sustains about {:.0}); RSS {:.1} KiB per recording\n\
             written: {:.1} MB, {:.2} MB/s; files {}-{} ms for {} ms recorded; RecordError events: {}\n",
            self.recordings,
            self.format,
            self.seconds,
            self.cpu_core_share_per_recording,
            self.recordings_per_core,
            self.rss_kib_per_recording,
            self.bytes as f64 / 1e6,
            self.write_bytes_per_s / 1e6,
            self.shortest_ms,
            self.longest_ms,
            self.recorded_ms,
            self.record_errors,
        )
    }
}

/// Runs the probe against legatod (`pid`) through `client`: `recordings`
/// recordings in `format`, two per leg.
pub fn probe(
    runtime: &tokio::runtime::Runtime,
    client: &Client,
    pid: u32,
    recordings: usize,
    format: proto::RecordingFormat,
    seconds: f64,
) -> Result<RecordingReport> {
    let per_leg = 2;
    let legs = recordings.div_ceil(per_leg);
    runtime
        .block_on(async {
            let session = client.create_session(None).await?;
            let mut peers = Vec::with_capacity(legs);
            let mut ids = Vec::with_capacity(legs);
            for _ in 0..legs {
                // Not 127.0.0.1: its ephemeral ports overlap legatod's media range.
                let socket = UdpSocket::bind("127.0.0.2:0")?;
                let created = client
                    .create_leg(CreateLeg::incoming(&session, offer(socket.local_addr()?)))
                    .await?;
                client
                    .update_leg(
                        UpdateLeg::new(&created.leg.leg_id).state(proto::LegState::Connected),
                    )
                    .await?;
                leg_addr(&created.leg)?;
                ids.push(created.leg.leg_id);
                peers.push(socket);
            }
            let window = Duration::from_secs_f64(seconds);
            tokio::time::sleep(Duration::from_millis(500)).await;
            let idle0 = ProcSample::of(pid)?;
            tokio::time::sleep(window).await;
            let idle1 = ProcSample::of(pid)?;

            let errors = Arc::new(AtomicU64::new(0));
            let mut events = client
                .watch_events(EventFilter::new().session(&session))
                .await?;
            let mut started = 0;
            for id in &ids {
                for _ in 0..per_leg {
                    if started == recordings {
                        break;
                    }
                    client
                        .start_recording(proto::StartRecordingRequest {
                            leg_id: id.clone(),
                            format: format.into(),
                            ..Default::default()
                        })
                        .await?;
                    started += 1;
                }
            }
            let begin = Instant::now();
            tokio::time::sleep(Duration::from_millis(500)).await;
            let busy0 = ProcSample::of(pid)?;
            tokio::time::sleep(window).await;
            let busy1 = ProcSample::of(pid)?;
            for id in &ids {
                client.stop_recording(id.as_str(), None).await?;
            }
            let recorded_ms = begin.elapsed().as_millis() as u64;
            let (mut bytes, mut stopped) = (0u64, 0usize);
            let (mut shortest, mut longest) = (u64::MAX, 0u64);
            let deadline = Instant::now() + Duration::from_secs(30);
            while stopped < recordings {
                let left = deadline.saturating_duration_since(Instant::now());
                let Ok(Some(event)) = tokio::time::timeout(left, events.next()).await else {
                    bail!("{stopped} of {recordings} RecordStopped within 30 s");
                };
                match event?.kind {
                    Some(proto::event::Kind::RecordStopped(s)) => {
                        stopped += 1;
                        bytes += s.size_bytes;
                        shortest = shortest.min(s.duration_ms);
                        longest = longest.max(s.duration_ms);
                    }
                    Some(proto::event::Kind::RecordError(_)) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
            client.delete_session(&session).await?;
            drop(peers);
            let idle_s = idle1.cpu_since(&idle0).best_s();
            let busy_s = busy1.cpu_since(&busy0).best_s();
            let share = (busy_s - idle_s) / seconds / recordings as f64;
            Ok(RecordingReport {
                format: format.as_str_name().to_owned(),
                recordings,
                seconds,
                cpu_core_share_per_recording: share,
                recordings_per_core: if share > 0.0 { 1.0 / share } else { 0.0 },
                rss_kib_per_recording: (busy1.rss_kib as f64 - idle1.rss_kib as f64)
                    / recordings as f64,
                record_errors: errors.load(Ordering::Relaxed),
                bytes,
                write_bytes_per_s: bytes as f64 / (recorded_ms as f64 / 1000.0),
                shortest_ms: shortest,
                longest_ms: longest,
                recorded_ms,
            })
        })
        .map_err(|e: anyhow::Error| anyhow!("recording probe: {e:#}"))
}
