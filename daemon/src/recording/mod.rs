//! Call recording, the part off the shards: a lock-free [`Tap`] a shard
//! pushes 20 ms frames into, writer threads that turn them into WAV or MP3
//! files, and the repair of files a crash left unfinalized.
//!
//! Two rules shape it (a carrier's): a recording is never lost or silently
//! cut short, and a shard never blocks, locks or allocates per frame.
//!
//! - **Tap** ([`Tap::push`]): copies the frame into a chunk of a ring
//!   preallocated at start ([`RecordingConfig::ring_chunks`] chunks of up
//!   to 100 ms); a full ring drops the frame and counts it. The writer places frames by tick, so dropped
//!   frames and ticks the shard skipped (a hold) become silence and the
//!   file always lasts (last tick − first tick + 1) × 20 ms. Overflow is
//!   reported as an Error event at most once a second; recording goes on.
//! - **Writers**: [`RecordingConfig::writers`] threads (not tokio tasks:
//!   they do blocking file I/O and CPU work) each own some recordings and
//!   drain them every [`RecordingConfig::poll_interval`]: timeline,
//!   resampling to the file's rate (per channel, rebuilt when the leg's
//!   rate changes), mono mix (saturating) or stereo (left: what the party
//!   said, right: what it heard), encoding, writing.
//! - **Crash-proof files**: a WAV's header sizes are rewritten in place
//!   every [`RecordingConfig::checkpoint_interval`] and its samples go out
//!   with plain writes each turn; MP3 frames are written as LAME emits
//!   them (it holds back well under a second). A SIGKILL leaves a file
//!   that ffmpeg and sox open, holding the audio up to about a second
//!   before the kill; [`repair_dir`], run at daemon start, brings WAV
//!   headers up to the file's length and cuts a partial last MP3 frame.
//! - **Write errors** (a full disk): the file is cut back to its last whole
//!   write and finalized, an Error event says why, the rest of the call is
//!   not recorded, and Stopped still follows when the recording ends.
//! - **Files**: `dir/<template>.wav|.mp3`, never an existing file (a
//!   collision gets `-1`, `-2`, ...); start refuses when the directory's
//!   free space is below [`RecordingConfig::free_space_floor_bytes`].
//!
//! Events go to the callback given to [`Recorders::new`], in order per
//! recording: Started (from [`Recorders::start`] itself, before it
//! returns), any Errors, then exactly one Stopped.

mod files;
mod mp3;
mod tap;
mod wav;
mod writer;

mod upload;

use std::fmt;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

pub(crate) use tap::{Channel, Tap};
pub(crate) use upload::{UploadConfig, Uploader};

use files::NameInputs;
use tap::TapShared;
use writer::{Active, Command, Sink, Timing};

/// How recordings are written.
#[derive(Clone, Debug)]
pub(crate) struct RecordingConfig {
    /// Where files go (created if missing).
    pub(crate) dir: PathBuf,
    /// File name without extension; `{session}`, `{leg}`, `{recording}`
    /// and `{start}` (UTC, `20261207T160405Z`) are replaced.
    pub(crate) template: String,
    /// Start refuses when fewer bytes than this are free in `dir`.
    pub(crate) free_space_floor_bytes: u64,
    /// Writer threads.
    pub(crate) writers: usize,
    /// Chunks each recording's ring holds: 3.9 KB each, 100 ms of 8 kHz
    /// audio, 60 ms at 16 kHz, 20 ms at 48 kHz.
    pub(crate) ring_chunks: usize,
    /// Recordings running at once, at most (each holds its ring).
    pub(crate) max_recordings: usize,
    /// How often writers drain the rings.
    pub(crate) poll_interval: Duration,
    /// How often a WAV file's header is brought up to date (the most audio
    /// a crash can leave outside the header).
    pub(crate) checkpoint_interval: Duration,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("recordings"),
            template: "{start}-{session}-{leg}-{recording}".to_owned(),
            // Leaves room for logs and other recordings already running.
            free_space_floor_bytes: 256 << 20,
            // Writing is cheap next to encoding; two threads keep up with
            // hundreds of 8 kHz recordings and leave the shards their cores.
            writers: 2,
            // Absorbs a writer stalled by a slow disk for 5 s at 8 kHz, 3 s
            // at 16 kHz, 1 s at 48 kHz; 195 KB per recording.
            ring_chunks: 50,
            max_recordings: 1000,
            // Drained 5 times a second: two 100 ms chunks per turn,
            // written at once (a system call per 200 ms, not per frame),
            // far below the ring's size.
            poll_interval: Duration::from_millis(200),
            // Every other turn (a 44-byte pwrite per recording 2.5 times a
            // second): a crash leaves at most about 0.7 s of audio outside
            // the header (a chunk being filled, 100 ms; a turn, 200 ms;
            // this, 400 ms).
            checkpoint_interval: Duration::from_millis(400),
        }
    }
}

/// File formats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Format {
    /// MPEG-1/2/2.5 Layer III, CBR (LAME).
    #[default]
    Mp3,
    /// 16-bit PCM WAV.
    Wav,
}

impl Format {
    /// The file extension.
    pub(crate) fn extension(self) -> &'static str {
        match self {
            Self::Mp3 => "mp3",
            Self::Wav => "wav",
        }
    }
}

/// What to record and how.
#[derive(Clone, Debug)]
pub(crate) struct RecordingSpec {
    /// The session id, for the file name.
    pub(crate) session: String,
    /// The leg id, for the file name.
    pub(crate) leg: String,
    /// The recording id: the file name's `{recording}` and the id in events.
    pub(crate) recording: String,
    /// When recording started (the file name's `{start}`).
    pub(crate) start: SystemTime,
    /// File format.
    pub(crate) format: Format,
    /// Two channels (left: received, right: sent) instead of their mix.
    pub(crate) stereo: bool,
    /// The file's sample rate: 8000, 11025, 16000, 22050, 24000, 32000,
    /// 44100 or 48000.
    pub(crate) sample_rate: u32,
    /// MP3 bitrate in kbit/s (ignored for WAV).
    pub(crate) bitrate_kbps: u32,
}

impl RecordingSpec {
    /// The defaults (MP3, 8 kHz, mono, 32 kbit/s) for these ids, starting
    /// now.
    pub(crate) fn new(session: &str, leg: &str, recording: &str) -> Self {
        Self {
            session: session.to_owned(),
            leg: leg.to_owned(),
            recording: recording.to_owned(),
            start: SystemTime::now(),
            format: Format::Mp3,
            stereo: false,
            sample_rate: 8000,
            bitrate_kbps: 32,
        }
    }
}

/// A recording that started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RecordingInfo {
    /// The recording id.
    pub(crate) id: String,
    /// The file.
    pub(crate) path: PathBuf,
    /// Its format.
    pub(crate) format: Format,
    /// Channels in the file (1 or 2).
    pub(crate) channels: u16,
    /// The file's sample rate.
    pub(crate) sample_rate: u32,
    /// MP3 bitrate in kbit/s (0 for WAV).
    pub(crate) bitrate_kbps: u32,
}

/// What happens to a recording, in this order: Started, any Errors,
/// Stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RecordingEvent {
    /// The file exists and the tap is ready.
    Started {
        /// The recording id.
        id: String,
        /// The file.
        path: PathBuf,
    },
    /// Something went wrong. The recording goes on after an overflow
    /// (frames written as silence); after a write error nothing more is
    /// written, but the file keeps what was written and stays valid.
    Error {
        /// The recording id.
        id: String,
        /// What happened.
        error: String,
    },
    /// The file is finalized and closed.
    Stopped {
        /// The recording id.
        id: String,
        /// The file.
        path: PathBuf,
        /// Audio in the file, in milliseconds.
        duration_ms: u64,
        /// The file's size.
        bytes: u64,
    },
}

/// Why a recording could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartError {
    /// A parameter or the resulting file name is not acceptable.
    #[error("{0}")]
    InvalidArgument(String),
    /// The recording directory's free space is below the floor.
    #[error(
        "{available} bytes free in {}, below the {floor} bytes kept free",
        dir.display()
    )]
    NoSpace {
        /// The directory.
        dir: PathBuf,
        /// Bytes free.
        available: u64,
        /// The floor.
        floor: u64,
    },
    /// The directory or file could not be created or written.
    #[error("{0}")]
    Io(String),
    /// As many recordings as configured are running.
    #[error("{0} recordings are running already (max_recordings)")]
    Busy(usize),
}

/// The event callback.
type EventSink = Arc<dyn Fn(RecordingEvent) + Send + Sync>;

/// The recording service: writer threads and the settings new recordings
/// use. Created once; dropping it drains and finalizes every recording
/// still running, then joins the threads.
pub(crate) struct Recorders {
    config: RecordingConfig,
    events: EventSink,
    writers: Vec<Writer>,
}

/// One writer thread.
#[derive(Debug)]
struct Writer {
    commands: Option<Sender<Command>>,
    thread: Option<JoinHandle<()>>,
    /// Recordings it owns.
    load: Arc<AtomicUsize>,
}

impl fmt::Debug for Recorders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recorders")
            .field("config", &self.config)
            .field("writers", &self.writers)
            .finish_non_exhaustive()
    }
}

impl Recorders {
    /// Starts `config.writers` writer threads (at least one); `events`
    /// receives every recording's events (from the writer threads; Started
    /// on the thread calling [`start`](Self::start)).
    pub(crate) fn new(
        config: RecordingConfig,
        events: impl Fn(RecordingEvent) + Send + Sync + 'static,
    ) -> std::io::Result<Self> {
        let events: EventSink = Arc::new(events);
        let timing = Timing {
            poll: config.poll_interval.max(Duration::from_millis(1)),
            checkpoint: config.checkpoint_interval,
        };
        let writers = (0..config.writers.max(1))
            .map(|i| {
                let (tx, rx) = mpsc::channel();
                let load = Arc::new(AtomicUsize::new(0));
                let thread = std::thread::Builder::new()
                    .name(format!("legato-rec-{i}"))
                    .spawn({
                        let events = Arc::clone(&events);
                        let load = Arc::clone(&load);
                        move || writer::run(rx, timing, events, load)
                    })?;
                Ok(Writer {
                    commands: Some(tx),
                    thread: Some(thread),
                    load,
                })
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Self {
            config,
            events,
            writers,
        })
    }

    /// Starts a recording: checks `spec`, the free space and the file
    /// name, creates the file (header included, for WAV), hands it to the
    /// least loaded writer and reports Started before returning. Does
    /// blocking file-system calls (a few, small): call it from a blocking
    /// context, not a shard.
    pub(crate) fn start(&self, spec: &RecordingSpec) -> Result<(Tap, RecordingInfo), StartError> {
        let running = self.active();
        if running >= self.config.max_recordings {
            return Err(StartError::Busy(running));
        }
        let encoder = validate(spec)?;
        let name = files::expand(
            &self.config.template,
            &NameInputs {
                session: &spec.session,
                leg: &spec.leg,
                recording: &spec.recording,
                start: spec.start,
            },
        )
        .map_err(StartError::InvalidArgument)?;
        let dir = &self.config.dir;
        std::fs::create_dir_all(dir)
            .map_err(|e| StartError::Io(format!("cannot create {}: {e}", dir.display())))?;
        let available = files::available_space(dir)
            .map_err(|e| StartError::Io(format!("cannot stat {}: {e}", dir.display())))?;
        if available < self.config.free_space_floor_bytes {
            return Err(StartError::NoSpace {
                dir: dir.clone(),
                available,
                floor: self.config.free_space_floor_bytes,
            });
        }
        let (file, path) =
            files::create_unique(dir, &name, spec.format.extension()).map_err(|e| {
                StartError::Io(format!("cannot create {name} in {}: {e}", dir.display()))
            })?;
        let channels: u16 = if spec.stereo { 2 } else { 1 };
        let sink = match encoder {
            Some(encoder) => Sink::Mp3(mp3::Mp3Writer::new(file, encoder, spec.stereo)),
            None => match wav::WavWriter::create(file, spec.sample_rate, channels) {
                Ok(w) => Sink::Wav(w),
                Err(e) => {
                    let _ = std::fs::remove_file(&path);
                    return Err(StartError::Io(format!(
                        "cannot write {}: {e}",
                        path.display()
                    )));
                }
            },
        };
        let shared = TapShared::new(self.config.ring_chunks);
        let active = Active::new(
            spec.recording.clone(),
            path.clone(),
            Arc::clone(&shared),
            sink,
            spec.stereo,
            spec.sample_rate,
        );
        let writer = self
            .writers
            .iter()
            .min_by_key(|w| w.load.load(Ordering::Relaxed))
            .ok_or_else(|| StartError::Io("no recording writer is running".to_owned()))?;
        writer.load.fetch_add(1, Ordering::Relaxed);
        let sent = writer
            .commands
            .as_ref()
            .is_some_and(|c| c.send(Command::Add(Box::new(active))).is_ok());
        if !sent {
            writer.load.fetch_sub(1, Ordering::Relaxed);
            let _ = std::fs::remove_file(&path);
            return Err(StartError::Io(
                "the recording writer has stopped".to_owned(),
            ));
        }
        // Before the caller has the tap nothing can end the recording, so
        // the writer cannot report anything ahead of this.
        (self.events)(RecordingEvent::Started {
            id: spec.recording.clone(),
            path: path.clone(),
        });
        let info = RecordingInfo {
            id: spec.recording.clone(),
            path,
            format: spec.format,
            channels,
            sample_rate: spec.sample_rate,
            bitrate_kbps: if spec.format == Format::Mp3 {
                spec.bitrate_kbps
            } else {
                0
            },
        };
        Ok((Tap::new(shared), info))
    }

    /// Waits until no recording is being written (each finalized), or
    /// `limit` has passed; whether none is left.
    pub(crate) fn wait_idle(&self, limit: Duration) -> bool {
        let end = std::time::Instant::now() + limit;
        while self.active() > 0 {
            if std::time::Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    /// Recordings being written.
    pub(crate) fn active(&self) -> usize {
        self.writers
            .iter()
            .map(|w| w.load.load(Ordering::Relaxed))
            .sum()
    }
}

impl Drop for Recorders {
    fn drop(&mut self) {
        for w in &mut self.writers {
            w.commands = None;
        }
        for w in &mut self.writers {
            if let Some(t) = w.thread.take() {
                let _ = t.join();
            }
        }
    }
}

/// Checks `spec`; for MP3 builds the encoder (so whatever LAME refuses is
/// an invalid argument here, not an error later).
fn validate(spec: &RecordingSpec) -> Result<Option<mp3lame_encoder::Encoder>, StartError> {
    let invalid = |m: String| Err(StartError::InvalidArgument(m));
    if !SAMPLE_RATES.contains(&spec.sample_rate) {
        return invalid(format!(
            "sample rate {} Hz is not one of {SAMPLE_RATES:?}",
            spec.sample_rate
        ));
    }
    match spec.format {
        Format::Wav => Ok(None),
        Format::Mp3 => {
            let allowed = mp3::bitrates(spec.sample_rate);
            if !allowed.contains(&spec.bitrate_kbps) {
                return invalid(format!(
                    "MP3 bitrate {} kbit/s is not available at {} Hz (one of {allowed:?})",
                    spec.bitrate_kbps, spec.sample_rate
                ));
            }
            mp3::Mp3Writer::encoder(spec.sample_rate, spec.stereo, spec.bitrate_kbps)
                .map(Some)
                .map_err(StartError::InvalidArgument)
        }
    }
}

/// A file [`repair_dir`] fixed.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Repaired {
    /// The file.
    pub(crate) path: PathBuf,
    /// Seconds of audio it holds now.
    pub(crate) seconds: f64,
}

/// Repairs the recordings a crash left unfinalized in `dir` (not its
/// subdirectories): WAV files whose header sizes fall short of the file
/// (sizes fixed, a trailing partial sample frame dropped) and MP3 files
/// ending in a partial frame (cut off). Finalized files and anything that
/// does not parse are left alone; unreadable entries are skipped. Run it
/// at daemon start, before recordings begin; log what it returns.
pub(crate) fn repair_dir(dir: &Path) -> Vec<Repaired> {
    let mut repaired = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return repaired;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        // Regular files only: no directories, no links out of the directory.
        if !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let result = match ext.as_deref() {
            Some("wav") => repair_wav(&path),
            Some("mp3") => repair_mp3(&path),
            _ => continue,
        };
        match result {
            Ok(Some(seconds)) => repaired.push(Repaired { path, seconds }),
            Ok(None) => {}
            Err(e) => tracing::warn!(path = %path.display(), error = %e, "cannot repair recording"),
        }
    }
    repaired.sort_by(|a, b| a.path.cmp(&b.path));
    repaired
}

fn repair_wav(path: &Path) -> std::io::Result<Option<f64>> {
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    Ok(match wav::repair(&mut file)? {
        wav::WavState::Repaired(seconds) => Some(seconds),
        wav::WavState::Finalized | wav::WavState::Unknown => None,
    })
}

fn repair_mp3(path: &Path) -> std::io::Result<Option<f64>> {
    let file = OpenOptions::new().read(true).write(true).open(path)?;
    mp3::repair(&file)
}

/// File sample rates accepted (all of them MP3 rates LAME encodes).
const SAMPLE_RATES: [u32; 8] = [8000, 11_025, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000];

#[cfg(test)]
mod tests;
