//! The optional on-disk prompt cache (`prompt_cache_dir`): decoded prompts
//! kept as WAV files (mono 16-bit PCM at the media-clock rate they play
//! at), so a restart, or an entry the memory cache let go, costs a file
//! read instead of a download or a text-to-speech run. http(s) prompts
//! keep their validators beside them and are revalidated as in memory;
//! speech is kept by its engine, voice, language and text; local files
//! are not copied (they are on disk already).
//!
//! Each entry is two files named by a hash of its key: `<hash>.wav` and
//! `<hash>.json` (the whole key, so a hash collision is a miss, never the
//! wrong audio). Both are written to temporary names and renamed, so a
//! crash leaves no half entry under a real name. The directory is kept
//! within its byte budget by removing the least recently used entries
//! after each store (a hit refreshes an entry's modification time).
//! Everything here is blocking file I/O, run on prompt workers.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::audio::PromptAudio;
use super::http::Validators;

/// Largest metadata file read back.
const MAX_META_BYTES: u64 = 64 * 1024;

/// What is kept beside an entry's audio.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Meta {
    /// The cache key the entry belongs to.
    pub(crate) key: String,
    pub(crate) etag: Option<String>,
    pub(crate) last_modified: Option<String>,
    /// Fresh until then (seconds since the Unix epoch).
    pub(crate) fresh_until: Option<u64>,
}

impl Meta {
    /// The metadata of `key` with `validators` (none for speech).
    pub(crate) fn new(key: &str, validators: Option<&Validators>) -> Self {
        let now = Instant::now();
        let wall = SystemTime::now();
        Self {
            key: key.to_owned(),
            etag: validators.and_then(|v| v.etag.clone()),
            last_modified: validators.and_then(|v| v.last_modified.clone()),
            fresh_until: validators
                .and_then(|v| v.fresh_until)
                .map(|t| wall + t.saturating_duration_since(now))
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_secs()),
        }
    }

    /// The validators an http(s) entry had.
    pub(crate) fn validators(&self) -> Validators {
        let now_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Validators {
            etag: self.etag.clone(),
            last_modified: self.last_modified.clone(),
            fresh_until: self
                .fresh_until
                .filter(|&t| t > now_unix)
                .and_then(|t| Instant::now().checked_add(Duration::from_secs(t - now_unix))),
            no_store: false,
        }
    }
}

/// A stored entry: its audio file and metadata.
#[derive(Debug)]
pub(crate) struct Stored {
    pub(crate) wav: PathBuf,
    pub(crate) meta: Meta,
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Disk {
    dir: PathBuf,
    budget: u64,
}

impl Disk {
    /// The cache in `dir` (created if missing), holding at most `budget`
    /// bytes.
    pub(crate) fn open(dir: &Path, budget: u64) -> Result<Self, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("prompt_cache_dir {}: {e}", dir.display()))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            budget,
        })
    }

    fn paths(&self, key: &str) -> (PathBuf, PathBuf) {
        // SipHash with fixed keys: stable within a build, and a mismatch
        // after an upgrade is only a miss (the metadata holds the key).
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        let name = format!("{:016x}", hasher.finish());
        (
            self.dir.join(format!("{name}.wav")),
            self.dir.join(format!("{name}.json")),
        )
    }

    /// The entry stored under `key`, if any (its use time refreshed).
    pub(crate) fn load(&self, key: &str) -> Option<Stored> {
        use std::io::Read as _;
        let (wav, meta_path) = self.paths(key);
        let mut text = String::new();
        std::fs::File::open(&meta_path)
            .ok()?
            .take(MAX_META_BYTES)
            .read_to_string(&mut text)
            .ok()?;
        let meta: Meta = serde_json::from_str(&text).ok()?;
        if meta.key != key {
            return None;
        }
        let file = std::fs::File::options().append(true).open(&wav).ok()?;
        let _ = file.set_modified(SystemTime::now());
        Some(Stored { wav, meta })
    }

    /// Rewrites `key`'s metadata (after a revalidation).
    pub(crate) fn update(&self, meta: &Meta) {
        let (_, meta_path) = self.paths(&meta.key);
        if let Err(e) = self.write_meta(&meta_path, meta) {
            tracing::warn!(error = %e, "prompt cache: metadata not updated");
        }
    }

    /// Stores `audio` (complete) under `meta.key`, then trims the
    /// directory to its budget. Failures are logged: the disk cache is an
    /// optimisation, never a reason for a playback to fail.
    pub(crate) fn store(&self, audio: &PromptAudio, meta: &Meta) {
        if let Err(e) = self.try_store(audio, meta) {
            tracing::warn!(error = %e, "prompt cache: entry not stored");
        }
        self.trim();
    }

    fn try_store(&self, audio: &PromptAudio, meta: &Meta) -> Result<(), String> {
        let Some(rate) = audio.rate() else {
            return Ok(());
        };
        let (wav, meta_path) = self.paths(&meta.key);
        let samples = audio.samples();
        let data_bytes = u32::try_from(samples * 2)
            .ok()
            .filter(|&b| b <= u32::MAX - 36)
            .ok_or("over 4 GiB")?;
        let tmp = self.temporary(&wav);
        let result = (|| {
            let mut out =
                std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(|e| e.to_string())?);
            out.write_all(&wav_header(rate.hz(), data_bytes))
                .map_err(|e| e.to_string())?;
            let mut i = 0;
            while let Some(segment) = audio.segment(i) {
                for s in segment.iter() {
                    out.write_all(&s.to_le_bytes()).map_err(|e| e.to_string())?;
                }
                i += 1;
            }
            out.into_inner()
                .map_err(|e| e.to_string())?
                .sync_data()
                .map_err(|e| e.to_string())?;
            std::fs::rename(&tmp, &wav).map_err(|e| e.to_string())?;
            self.write_meta(&meta_path, meta)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    fn write_meta(&self, path: &Path, meta: &Meta) -> Result<(), String> {
        let tmp = self.temporary(path);
        let text = serde_json::to_vec(meta).map_err(|e| e.to_string())?;
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                e.to_string()
            })
    }

    fn temporary(&self, path: &Path) -> PathBuf {
        path.with_extension(format!("tmp{:08x}", fastrand::u32(..)))
    }

    /// Removes `key`'s entry (the origin says it is gone).
    pub(crate) fn remove(&self, key: &str) {
        let (wav, meta) = self.paths(key);
        let _ = std::fs::remove_file(meta);
        let _ = std::fs::remove_file(wav);
    }

    /// Removes least recently used entries (and leftovers of interrupted
    /// stores) until the directory fits its budget.
    fn trim(&self) {
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut entries = Vec::new();
        let mut total = 0u64;
        for entry in dir.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            let old = meta
                .modified()
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|age| age > Duration::from_secs(3600));
            if ext.starts_with("tmp") && old {
                let _ = std::fs::remove_file(&path);
            } else if ext == "wav" {
                total += meta.len();
                entries.push((meta.modified().unwrap_or(UNIX_EPOCH), path, meta.len()));
            }
        }
        entries.sort();
        for (_, wav, len) in entries {
            if total <= self.budget {
                break;
            }
            let _ = std::fs::remove_file(wav.with_extension("json"));
            let _ = std::fs::remove_file(&wav);
            total -= len;
        }
    }
}

/// A canonical 44-byte header of mono 16-bit PCM at `hz`.
fn wav_header(hz: u32, data_bytes: u32) -> [u8; 44] {
    let mut h = [0u8; 44];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&(36 + data_bytes).to_le_bytes());
    h[8..16].copy_from_slice(b"WAVEfmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes());
    h[22..24].copy_from_slice(&1u16.to_le_bytes());
    h[24..28].copy_from_slice(&hz.to_le_bytes());
    h[28..32].copy_from_slice(&(hz * 2).to_le_bytes());
    h[32..34].copy_from_slice(&2u16.to_le_bytes());
    h[34..36].copy_from_slice(&16u16.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data_bytes.to_le_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use legato_dsp::time::ClockRate;

    fn audio(samples: usize, value: i16) -> PromptAudio {
        let audio = PromptAudio::default();
        audio.set_rate(ClockRate::HZ_8000);
        audio.publish(vec![value; samples]);
        audio.complete();
        audio
    }

    /// Stored audio decodes back to the same samples; the key is checked;
    /// the budget removes the oldest entries first.
    #[test]
    fn store_load_and_trim() {
        let dir = std::env::temp_dir().join(format!("legato-disk-{}", fastrand::u64(..)));
        let disk = Disk::open(&dir, 50_000).unwrap();
        let v = Validators {
            etag: Some("\"x\"".into()),
            fresh_until: Some(Instant::now() + Duration::from_secs(60)),
            ..Validators::default()
        };
        disk.store(&audio(8000, 7), &Meta::new("url:a", Some(&v)));
        let stored = disk.load("url:a").unwrap();
        assert_eq!(stored.meta.etag.as_deref(), Some("\"x\""));
        assert!(stored.meta.validators().fresh_until.is_some());
        let back = PromptAudio::default();
        super::super::decode::decode(
            Box::new(std::fs::File::open(&stored.wav).unwrap()),
            Some("wav"),
            &back,
            60,
        );
        assert_eq!(back.samples(), 8000);
        assert_eq!(back.segment(0).unwrap()[0], 7);
        assert!(disk.load("url:b").is_none());
        // 16 kB each: three fit in 50 kB, the fourth removes the oldest.
        for (i, key) in ["url:b", "url:c", "url:d"].into_iter().enumerate() {
            std::thread::sleep(Duration::from_millis(20));
            disk.store(&audio(8000, i as i16), &Meta::new(key, None));
        }
        assert!(disk.load("url:a").is_none(), "oldest removed");
        assert!(disk.load("url:d").is_some());
        disk.remove("url:d");
        assert!(disk.load("url:d").is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
