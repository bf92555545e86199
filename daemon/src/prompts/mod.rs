//! Prompts: audio files decoded off the shards and cached as shared,
//! immutable PCM ([`PromptAudio`]) that shards play without locking.
//!
//! - **Sources**: an absolute path, a `file://` URL, or an `http(s)://`
//!   URL (see `http.rs`: caching headers, conditional revalidation, the
//!   body decoded as it downloads; `prompt_hosts` limits where from). With
//!   `prompt_dirs` configured, only files under those directories (after
//!   resolving links) may be played. Speech comes from `tts.rs`.
//! - **Workers**: decoding runs on a bounded pool (`workers` jobs at once)
//!   behind a bounded queue (`queue` jobs waiting); a request beyond it
//!   gets RESOURCE_EXHAUSTED. Neither a shard nor the gRPC runtime waits
//!   for a decode.
//! - **Cache**: keyed by the file's resolved path and checked against its
//!   size and modification time on every request (a changed file is
//!   decoded again), or by the whole URL (query string included) and kept
//!   as its Cache-Control, ETag and Last-Modified say (no-store: never;
//!   stale: revalidated with If-None-Match / If-Modified-Since, 304 keeps
//!   it; when the server cannot be reached or fails with a 5xx, the stale
//!   copy plays, as RFC 5861's stale-if-error allows), or by engine,
//!   voice, language and text for speech; requests for a prompt being
//!   decoded share that decode; failed decodes are not kept; bounded by
//!   the bytes of PCM it holds (checked at every request: decodes that
//!   finish in between may take it over for a while), least recently used
//!   first out (a prompt still playing stays alive in its players until
//!   they end). Optionally backed by a directory (`disk.rs`) that outlives
//!   the process.
//! - **Limits**: file size and duration; over either, the playback ends
//!   with PlaybackFinished carrying the reason.

mod audio;
mod decode;
mod disk;
mod http;
mod tts;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use tokio::sync::Semaphore;
use tonic::Status;

pub(crate) use audio::{Progress, PromptAudio};

use crate::control::limits::quote;

/// Longest prompt URL or path accepted.
pub(crate) const MAX_URL_LEN: usize = 4096;
/// Longest text Say speaks (the Call API's limit).
pub(crate) const MAX_SAY_CHARS: usize = 1500;

/// Bounds of the prompt machinery.
#[derive(Clone, Debug)]
pub(crate) struct PromptLimits {
    /// Directories files may be played from; empty: any readable file.
    pub(crate) dirs: Vec<PathBuf>,
    /// Hosts http(s) prompts may come from; empty: any.
    pub(crate) hosts: Vec<String>,
    /// Certificates (PEM) trusted for https besides the webpki roots.
    pub(crate) ca_pem: Option<Vec<u8>>,
    /// Largest file accepted, in bytes.
    pub(crate) max_file_bytes: u64,
    /// Longest prompt, in seconds.
    pub(crate) max_seconds: u32,
    /// PCM the cache keeps, in bytes.
    pub(crate) cache_bytes: usize,
    /// The on-disk cache's directory and byte budget.
    pub(crate) disk: Option<(PathBuf, u64)>,
    /// Decodes running at once.
    pub(crate) workers: usize,
    /// Decodes waiting for a worker, at most.
    pub(crate) queue: usize,
    /// The text-to-speech command (argv with `{voice}`, `{lang}`, `{out}`);
    /// empty: espeak-ng (unless `tts_url`).
    pub(crate) tts_command: Vec<String>,
    /// The text-to-speech HTTP endpoint, instead of a command.
    pub(crate) tts_url: Option<String>,
}

impl PromptLimits {
    /// The limits `config` sets.
    pub(crate) fn from_config(config: &crate::config::Config) -> Self {
        Self {
            dirs: config.prompt_dirs.clone(),
            hosts: config.prompt_hosts.clone(),
            ca_pem: config.prompt_ca_pem.clone(),
            max_file_bytes: config.prompt_max_file_bytes,
            max_seconds: config.prompt_max_seconds,
            cache_bytes: config.prompt_cache_bytes,
            disk: config
                .prompt_cache_dir
                .clone()
                .map(|d| (d, config.prompt_cache_dir_bytes)),
            workers: config.prompt_workers,
            queue: 64,
            tts_command: config.tts_command.clone(),
            tts_url: config.tts_url.clone(),
        }
    }
}

impl Default for PromptLimits {
    fn default() -> Self {
        Self {
            dirs: Vec::new(),
            hosts: Vec::new(),
            ca_pem: None,
            max_file_bytes: 64 << 20,
            max_seconds: 3600,
            cache_bytes: 256 << 20,
            disk: None,
            workers: 2,
            queue: 64,
            tts_command: Vec::new(),
            tts_url: None,
        }
    }
}

/// A cached prompt.
#[derive(Debug)]
struct Entry {
    audio: Arc<PromptAudio>,
    /// The file's size and modification time when decoded.
    len: u64,
    modified: Option<SystemTime>,
    /// An http(s) prompt's caching headers.
    http: Option<http::Validators>,
    last_used: u64,
}

/// Where a prompt comes from.
#[derive(Debug)]
enum Source {
    File(PathBuf),
    Http,
}

/// The text-to-speech engine.
#[derive(Debug)]
enum Tts {
    Command(tts::Engine),
    Http {
        url: String,
        client: reqwest::Client,
    },
}

impl Tts {
    /// Names the engine in cache keys.
    fn name(&self) -> String {
        match self {
            Self::Command(engine) => engine.program.display().to_string(),
            Self::Http { url, .. } => url.clone(),
        }
    }
}

/// The extension of a URL's or path's last segment (query left out), as a
/// format hint.
fn extension_of(url: &str) -> Option<String> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let name = path.rsplit('/').next()?;
    let (_, ext) = name.rsplit_once('.')?;
    (!ext.is_empty() && ext.len() <= 5).then(|| ext.to_ascii_lowercase())
}

#[derive(Debug, Default)]
struct Cache {
    /// `file:<resolved path>`, `url:<url>` or
    /// `tts:<engine>\0<voice>\0<language>\0<text>`.
    entries: HashMap<String, Entry>,
    clock: u64,
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Prompts {
    limits: PromptLimits,
    cache: Arc<Mutex<Cache>>,
    workers: Arc<Semaphore>,
    /// Decodes queued or running.
    jobs: Arc<AtomicUsize>,
    /// The text-to-speech engine, when its program is installed.
    tts: Option<Tts>,
    /// The client of http(s) prompts.
    http: Option<reqwest::Client>,
    hosts: http::Hosts,
    /// The on-disk cache, when configured and usable.
    disk: Option<Arc<disk::Disk>>,
}

impl Prompts {
    /// The prompt machinery within `limits`. A part that cannot be set up
    /// (the HTTP client, the cache directory) is logged and left out: its
    /// requests fail with the reason instead.
    pub(crate) fn new(limits: PromptLimits) -> Self {
        let hosts = http::Hosts::new(&limits.hosts);
        let http = http::client(limits.ca_pem.as_deref(), hosts.clone())
            .inspect_err(|e| tracing::error!(error = %e, "http(s) prompts are off"))
            .ok();
        let tts = match &limits.tts_url {
            Some(url) => http::client(limits.ca_pem.as_deref(), http::Hosts::default())
                .inspect_err(|e| tracing::error!(error = %e, "tts_url is off"))
                .ok()
                .map(|client| Tts::Http {
                    url: url.clone(),
                    client,
                }),
            None => tts::Engine::find(&limits.tts_command).map(Tts::Command),
        };
        let disk = limits.disk.as_ref().and_then(|(dir, budget)| {
            disk::Disk::open(dir, *budget)
                .inspect_err(|e| tracing::error!(error = %e, "the on-disk prompt cache is off"))
                .ok()
                .map(Arc::new)
        });
        Self {
            workers: Arc::new(Semaphore::new(limits.workers.max(1))),
            tts,
            http,
            hosts,
            disk,
            limits,
            cache: Arc::default(),
            jobs: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The audio of `url`: from the cache, or a decode started now (the
    /// audio fills as it goes). File problems (missing, unreadable, too
    /// big, not audio) come back as failed audio, for PlaybackFinished;
    /// what the request itself gets wrong is a gRPC status.
    pub(crate) async fn open(&self, url: &str) -> Result<Arc<PromptAudio>, Status> {
        let path = match self.source_of(url)? {
            Source::File(path) => path,
            Source::Http => return self.open_http(url).await,
        };
        let resolved = match tokio::fs::canonicalize(&path).await {
            Ok(resolved) => resolved,
            Err(e) => return Ok(failed(format!("cannot open {}: {e}", path.display()))),
        };
        if !self.limits.dirs.is_empty() && !self.limits.dirs.iter().any(|d| resolved.starts_with(d))
        {
            return Err(Status::permission_denied(format!(
                "{} is outside the prompt directories",
                quote(&resolved.to_string_lossy())
            )));
        }
        let meta = match tokio::fs::metadata(&resolved).await {
            Ok(meta) if meta.is_file() => meta,
            Ok(_) => return Ok(failed(format!("{} is not a file", resolved.display()))),
            Err(e) => return Ok(failed(format!("cannot open {}: {e}", resolved.display()))),
        };
        if meta.len() > self.limits.max_file_bytes {
            return Ok(failed(format!(
                "{} is {} bytes, over the {} bytes a prompt file may have",
                resolved.display(),
                meta.len(),
                self.limits.max_file_bytes
            )));
        }
        let key = format!("file:{}", resolved.display());
        let version = (meta.len(), meta.modified().ok());
        self.cached_or_start(key, version, Job::File(resolved))
    }

    /// Speech for `text` in `language` and `voice` from the configured
    /// engine: from the cache (keyed by engine, voice, language and text),
    /// or synthesized and decoded now. Text over [`MAX_SAY_CHARS`] comes
    /// back as failed audio, for PlaybackFinished (as the Call API says).
    pub(crate) fn say(
        &self,
        text: &str,
        language: &str,
        voice: &str,
    ) -> Result<Arc<PromptAudio>, Status> {
        if text.trim().is_empty() {
            return Err(Status::invalid_argument("text is required"));
        }
        let language = if language.is_empty() {
            "en-US"
        } else {
            language
        };
        check_token(language, "language", 35, |c| {
            c.is_ascii_alphanumeric() || c == '-'
        })?;
        check_token(voice, "voice", 64, |c| {
            c.is_ascii_alphanumeric() || "-_+.".contains(c)
        })?;
        let chars = text.chars().count();
        if chars > MAX_SAY_CHARS {
            return Ok(failed(format!(
                "the text has {chars} characters, over the {MAX_SAY_CHARS} Say accepts"
            )));
        }
        let engine = self.tts.as_ref().ok_or_else(|| {
            Status::failed_precondition(match &self.limits.tts_url {
                Some(url) => format!(
                    "no text-to-speech engine: the HTTP client for {} could not be set up \
                     (see legatod's log)",
                    quote(url)
                ),
                None => format!(
                    "no text-to-speech engine: {} was not found on this host (install it, \
                     or configure tts_command or tts_url)",
                    self.limits
                        .tts_command
                        .first()
                        .map_or("espeak-ng", String::as_str)
                ),
            })
        })?;
        let key = format!("tts:{}\0{voice}\0{language}\0{text}", engine.name());
        let job = match engine {
            Tts::Command(engine) => Job::Speech {
                argv: engine.argv(language, voice, text),
                text: text.to_owned(),
            },
            Tts::Http { url, client } => Job::SpeechHttp {
                client: client.clone(),
                url: url.clone(),
                text: text.to_owned(),
                language: language.to_owned(),
                voice: voice.to_owned(),
            },
        };
        let store = self.disk.clone().map(|d| (d, key.clone()));
        let (audio, new) =
            self.claim(key, (0, None), |e| e.audio.progress() != Progress::Failed)?;
        if new {
            self.spawn(job, audio.clone(), store);
        }
        Ok(audio)
    }

    /// The cached audio under `key` at `version`, or a job started for it
    /// (shared by every request until it ends; not kept if it fails).
    fn cached_or_start(
        &self,
        key: String,
        version: (u64, Option<SystemTime>),
        job: Job,
    ) -> Result<Arc<PromptAudio>, Status> {
        let (audio, new) = self.claim(key, version, |e| {
            (e.len, e.modified) == version && e.audio.progress() != Progress::Failed
        })?;
        if new {
            self.spawn(job, audio.clone(), None);
        }
        Ok(audio)
    }

    /// An http(s) prompt: the cached copy while fresh (or while its first
    /// download runs: concurrent requests share it), revalidated with a
    /// conditional GET once stale, downloaded again when changed. The
    /// on-disk cache, when configured, is the second level.
    async fn open_http(&self, url: &str) -> Result<Arc<PromptAudio>, Status> {
        let key = format!("url:{url}");
        let Some(client) = self.http.clone() else {
            return Ok(failed(
                "http(s) prompts are off: the HTTP client could not be set up (see legatod's log)"
                    .into(),
            ));
        };
        let cached = {
            let mut cache = self.lock();
            cache.clock += 1;
            let now = cache.clock;
            match cache.entries.get_mut(&key) {
                Some(e) if e.audio.progress() != Progress::Failed => {
                    e.last_used = now;
                    Some((e.audio.clone(), e.http.clone().unwrap_or_default()))
                }
                _ => None,
            }
        };
        let (stored, validators) = match cached {
            Some((audio, validators)) => {
                let fresh = validators.fresh_until.is_some_and(|t| Instant::now() < t);
                if fresh || audio.progress() == Progress::Loading {
                    return Ok(audio);
                }
                (Cached::Memory(audio), validators)
            }
            None => match self.disk_load(&key).await {
                Some(stored) => {
                    let validators = stored.meta.validators();
                    if validators.fresh_until.is_some() {
                        return self.start_stored(key, stored.wav, validators);
                    }
                    (Cached::Disk(stored.wav), validators)
                }
                None => return self.start_http(key, client, url, None),
            },
        };
        if !validators.can_revalidate() {
            return self.start_http(key, client, url, None);
        }
        match http::fetch(&client, url, Some(&validators)).await {
            Ok(http::Fetched::NotModified(refreshed)) => {
                let merged = http::Validators {
                    etag: refreshed.etag.or(validators.etag),
                    last_modified: refreshed.last_modified.or(validators.last_modified),
                    ..refreshed
                };
                if let Some(disk) = self.disk.clone() {
                    let meta = disk::Meta::new(&key, Some(&merged));
                    tokio::task::spawn_blocking(move || disk.update(&meta));
                }
                match stored {
                    Cached::Memory(audio) => {
                        if let Some(e) = self.lock().entries.get_mut(&key) {
                            e.http = Some(merged);
                        }
                        Ok(audio)
                    }
                    Cached::Disk(wav) => self.start_stored(key, wav, merged),
                }
            }
            Ok(http::Fetched::Body(response, refreshed)) => {
                self.start_http(key, client, url, Some((*response, refreshed)))
            }
            Err(e) if e.transient() => {
                tracing::warn!(error = %e.message, "prompt revalidation failed: playing the cached copy");
                match stored {
                    Cached::Memory(audio) => Ok(audio),
                    Cached::Disk(wav) => self.start_stored(key, wav, validators),
                }
            }
            Err(e) => {
                self.lock().entries.remove(&key);
                if let Some(disk) = self.disk.clone() {
                    tokio::task::spawn_blocking(move || disk.remove(&key));
                }
                Ok(failed(e.message))
            }
        }
    }

    /// The on-disk entry of `key`, if the disk cache is on and has it.
    async fn disk_load(&self, key: &str) -> Option<disk::Stored> {
        let disk = self.disk.clone()?;
        let key = key.to_owned();
        tokio::task::spawn_blocking(move || disk.load(&key))
            .await
            .ok()
            .flatten()
    }

    /// Decodes an on-disk entry (`wav`) into new audio under `key`, with
    /// the http(s) validators it was kept with.
    fn start_stored(
        &self,
        key: String,
        wav: PathBuf,
        validators: http::Validators,
    ) -> Result<Arc<PromptAudio>, Status> {
        let (audio, new) = self.claim(key.clone(), (0, None), |e| {
            e.audio.progress() == Progress::Loading
        })?;
        if new {
            if let Some(e) = self.lock().entries.get_mut(&key) {
                e.http = Some(validators);
            }
            self.spawn(Job::File(wav), audio.clone(), None);
        }
        Ok(audio)
    }

    /// Starts downloading and decoding `url` (or decoding `response`, a
    /// download already under way) into new audio under `key`.
    fn start_http(
        &self,
        key: String,
        client: reqwest::Client,
        url: &str,
        response: Option<(reqwest::Response, http::Validators)>,
    ) -> Result<Arc<PromptAudio>, Status> {
        // A first download another request started meanwhile is shared; a
        // changed copy (`response`) replaces the entry.
        let replace = response.is_some();
        let (audio, new) = self.claim(key.clone(), (0, None), |e| {
            !replace && e.audio.progress() == Progress::Loading
        })?;
        if !new {
            return Ok(audio);
        }
        let (workers, jobs, cache) = (self.workers.clone(), self.jobs.clone(), self.cache.clone());
        let (max_bytes, max_seconds) = (self.limits.max_file_bytes, self.limits.max_seconds);
        let disk = self.disk.clone();
        let url = url.to_owned();
        let into = audio.clone();
        tokio::spawn(async move {
            let fetched = match response {
                Some((response, validators)) => Ok((response, validators)),
                None => match http::fetch(&client, &url, None).await {
                    Ok(http::Fetched::Body(response, validators)) => Ok((*response, validators)),
                    Ok(http::Fetched::NotModified(_)) => Err(format!("HTTP 304 from {url}")),
                    Err(e) => Err(e.message),
                },
            };
            match fetched {
                Err(e) => into.fail(e),
                Ok((response, validators)) => {
                    {
                        let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
                        if validators.no_store {
                            cache.entries.remove(&key);
                        } else if let Some(e) = cache.entries.get_mut(&key)
                            && Arc::ptr_eq(&e.audio, &into)
                        {
                            e.http = Some(validators.clone());
                        }
                    }
                    let ext = extension_of(&url);
                    let reader = http::body_reader(response, max_bytes);
                    let permit = workers.acquire_owned().await;
                    let job = into.clone();
                    let store = disk
                        .filter(|_| !validators.no_store)
                        .map(|d| (d, disk::Meta::new(&key, Some(&validators))));
                    let decoded = tokio::task::spawn_blocking(move || {
                        let _permit = permit;
                        let source = symphonia::core::io::ReadOnlySource::new(reader);
                        decode::decode(Box::new(source), ext.as_deref(), &job, max_seconds);
                        if let Some((disk, meta)) = store
                            && job.progress() == Progress::Complete
                        {
                            disk.store(&job, &meta);
                        }
                    })
                    .await;
                    if decoded.is_err() {
                        into.fail("the prompt decoder stopped".into());
                    }
                }
            }
            if let Some(error) = into.error() {
                tracing::info!(%error, "prompt not playable");
            }
            jobs.fetch_sub(1, Ordering::AcqRel);
        });
        Ok(audio)
    }

    /// Locks the cache (a poisoned lock is still a cache).
    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Under one lock, so concurrent requests for one prompt share one
    /// job: the entry under `key` when `reuse` accepts it (`false`: no job
    /// to start), else a new loading entry at `version` whose job the
    /// caller starts (`true`, counted in `jobs`), unless the job queue is
    /// full.
    fn claim(
        &self,
        key: String,
        version: (u64, Option<SystemTime>),
        reuse: impl Fn(&Entry) -> bool,
    ) -> Result<(Arc<PromptAudio>, bool), Status> {
        let mut cache = self.lock();
        cache.clock += 1;
        let now = cache.clock;
        if let Some(entry) = cache.entries.get_mut(&key)
            && reuse(entry)
        {
            entry.last_used = now;
            let audio = entry.audio.clone();
            self.evict(&mut cache);
            return Ok((audio, false));
        }
        if self.jobs.load(Ordering::Acquire) >= self.limits.queue + self.limits.workers {
            return Err(Status::resource_exhausted(format!(
                "{} prompt jobs are queued or running already",
                self.limits.queue + self.limits.workers
            )));
        }
        let audio = Arc::new(PromptAudio::default());
        cache.entries.insert(
            key,
            Entry {
                audio: audio.clone(),
                len: version.0,
                modified: version.1,
                http: None,
                last_used: now,
            },
        );
        self.jobs.fetch_add(1, Ordering::AcqRel);
        self.evict(&mut cache);
        Ok((audio, true))
    }

    /// What a URL names.
    fn source_of(&self, url: &str) -> Result<Source, Status> {
        if url.is_empty() {
            return Err(Status::invalid_argument("url is required"));
        }
        if url.len() > MAX_URL_LEN {
            return Err(Status::invalid_argument(format!(
                "url is {} bytes, over {MAX_URL_LEN}",
                url.len()
            )));
        }
        let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            let parsed = reqwest::Url::parse(url).map_err(|e| {
                Status::invalid_argument(format!("{} is not a valid URL: {e}", quote(url)))
            })?;
            if !self.hosts.allow(&parsed) {
                return Err(Status::permission_denied(format!(
                    "{} is not in prompt_hosts",
                    quote(parsed.host_str().unwrap_or(""))
                )));
            }
            return Ok(Source::Http);
        }
        let path = if let Some(rest) = url.strip_prefix("file://") {
            rest
        } else if let Some((scheme, _)) = url.split_once("://") {
            return Err(Status::invalid_argument(format!(
                "unknown URL scheme {}: an absolute path, file://, http:// or https://",
                quote(scheme)
            )));
        } else {
            url
        };
        let path = Path::new(path);
        if !path.is_absolute() {
            return Err(Status::invalid_argument(format!(
                "{} is not an absolute path",
                quote(url)
            )));
        }
        Ok(Source::File(path.to_path_buf()))
    }

    /// Drops least recently used, finished entries while the cache holds
    /// more than its budget.
    fn evict(&self, cache: &mut Cache) {
        let mut total: usize = cache.entries.values().map(|e| e.audio.bytes()).sum();
        while total > self.limits.cache_bytes {
            let victim = cache
                .entries
                .iter()
                .filter(|(_, e)| e.audio.progress() != Progress::Loading)
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, e)| (k.clone(), e.audio.bytes()));
            let Some((key, bytes)) = victim else {
                break;
            };
            cache.entries.remove(&key);
            total -= bytes;
        }
    }

    /// Runs `job` into `audio` on the worker pool (counted in `jobs` by
    /// [`Prompts::claim`]); speech is looked up in, and stored to, the
    /// on-disk cache under the key in `disk`.
    fn spawn(&self, job: Job, audio: Arc<PromptAudio>, disk: Option<(Arc<disk::Disk>, String)>) {
        let (workers, jobs) = (self.workers.clone(), self.jobs.clone());
        let (max_seconds, max_bytes) = (self.limits.max_seconds, self.limits.max_file_bytes);
        tokio::spawn(async move {
            let stored = match &disk {
                Some((d, key)) => {
                    let (d, key) = (d.clone(), key.clone());
                    tokio::task::spawn_blocking(move || d.load(&key))
                        .await
                        .ok()
                        .flatten()
                }
                None => None,
            };
            // An HTTP engine's request runs here, before a worker is taken
            // (it waits on the network, not on a CPU).
            let job = match (stored, job) {
                (Some(stored), _) => Job::File(stored.wav),
                (
                    None,
                    Job::SpeechHttp {
                        client,
                        url,
                        text,
                        language,
                        voice,
                    },
                ) => match tts::request(&client, &url, &text, &language, &voice, max_bytes).await {
                    Ok((bytes, hint)) => Job::Bytes(bytes, hint),
                    Err(e) => Job::Fail(e),
                },
                (None, job) => job,
            };
            let permit = workers.acquire_owned().await;
            let into = audio.clone();
            let result = tokio::task::spawn_blocking(move || {
                let _permit = permit;
                let keep = matches!(job, Job::Speech { .. } | Job::Bytes(..));
                job.run(&into, max_seconds);
                if keep
                    && into.progress() == Progress::Complete
                    && let Some((disk, key)) = disk
                {
                    disk.store(&into, &disk::Meta::new(&key, None));
                }
            })
            .await;
            if result.is_err() {
                audio.fail("the prompt decoder stopped".into());
            }
            if let Some(error) = audio.error() {
                tracing::info!(%error, "prompt not playable");
            }
            jobs.fetch_sub(1, Ordering::AcqRel);
        });
    }
}

/// A copy an http(s) prompt may be served from once revalidated.
enum Cached {
    Memory(Arc<PromptAudio>),
    Disk(PathBuf),
}

fn failed(error: String) -> Arc<PromptAudio> {
    Arc::new(PromptAudio::failed(error))
}

/// Fails unless `value` is at most `max` bytes of `allowed` characters.
fn check_token(
    value: &str,
    field: &str,
    max: usize,
    allowed: impl Fn(char) -> bool,
) -> Result<(), Status> {
    if value.len() > max || !value.chars().all(allowed) {
        return Err(Status::invalid_argument(format!(
            "{field} {} is not a valid {field} (letters, digits and '-', at most {max})",
            quote(value)
        )));
    }
    Ok(())
}

/// What a worker does for a prompt.
#[derive(Debug)]
enum Job {
    /// Decode a file.
    File(PathBuf),
    /// Run the text-to-speech command (`{out}` already filled in argv).
    Speech { argv: Vec<String>, text: String },
    /// Ask the text-to-speech HTTP endpoint (done before a worker is
    /// taken; becomes `Bytes` or `Fail`).
    SpeechHttp {
        client: reqwest::Client,
        url: String,
        text: String,
        language: String,
        voice: String,
    },
    /// Decode audio held in memory, with a format hint.
    Bytes(Vec<u8>, Option<String>),
    /// Fail with this reason.
    Fail(String),
}

impl Job {
    fn run(self, audio: &PromptAudio, max_seconds: u32) {
        match self {
            Self::File(path) => match std::fs::File::open(&path) {
                Ok(file) => {
                    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_owned);
                    decode::decode(Box::new(file), ext.as_deref(), audio, max_seconds);
                }
                Err(e) => audio.fail(format!("cannot open {}: {e}", path.display())),
            },
            Self::Speech { argv, text } => match tts::synthesize(&argv, &text) {
                Ok(file) => {
                    let reader = std::fs::File::open(file.path());
                    match reader {
                        Ok(reader) => {
                            decode::decode(Box::new(reader), Some("wav"), audio, max_seconds)
                        }
                        Err(e) => audio.fail(format!("text-to-speech output unreadable: {e}")),
                    }
                }
                Err(e) => audio.fail(e),
            },
            Self::Bytes(bytes, hint) => decode::decode(
                Box::new(std::io::Cursor::new(bytes)),
                hint.as_deref(),
                audio,
                max_seconds,
            ),
            Self::SpeechHttp { url, .. } => {
                audio.fail(format!("text-to-speech request to {url} was not made"))
            }
            Self::Fail(error) => audio.fail(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(samples: usize, value: i16) -> Vec<u8> {
        decode::tests::wav(8000, 1, &vec![value; samples], None)
    }

    async fn settled(audio: &PromptAudio) -> Progress {
        for _ in 0..500 {
            if audio.progress() != Progress::Loading {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        audio.progress()
    }

    /// Twenty requests at once share one decode; a second request later
    /// is a cache hit; a rewritten file is decoded again; a failed decode
    /// is not kept; the cache stays within its budget.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_decode_per_file_version_within_budget() {
        let dir = std::env::temp_dir().join(format!("legato-prompts-{}", fastrand::u64(..)));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.wav");
        std::fs::write(&path, wav(8000, 100)).unwrap();
        let limits = PromptLimits {
            cache_bytes: 40_000,
            ..PromptLimits::default()
        };
        let prompts = Arc::new(Prompts::new(limits));
        let url = path.to_str().unwrap().to_owned();
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (p, u) = (prompts.clone(), url.clone());
            tasks.push(tokio::spawn(async move { p.open(&u).await.unwrap() }));
        }
        let mut opened = Vec::new();
        for t in tasks {
            opened.push(t.await.unwrap());
        }
        assert!(
            opened.iter().all(|a| Arc::ptr_eq(a, &opened[0])),
            "one decode"
        );
        assert_eq!(settled(&opened[0]).await, Progress::Complete);
        let again = prompts.open(&url).await.unwrap();
        assert!(Arc::ptr_eq(&again, &opened[0]), "cache hit");
        // Rewritten (another size): a new decode.
        std::fs::write(&path, wav(4000, 200)).unwrap();
        let new = prompts.open(&url).await.unwrap();
        assert!(!Arc::ptr_eq(&new, &opened[0]));
        assert_eq!(settled(&new).await, Progress::Complete);
        assert_eq!(new.segment(0).unwrap()[0], 200);
        // Broken: failed, not kept.
        std::fs::write(&path, b"not audio at all").unwrap();
        let broken = prompts.open(&url).await.unwrap();
        assert_eq!(settled(&broken).await, Progress::Failed);
        std::fs::write(&path, wav(4000, 300)).unwrap();
        let fixed = prompts.open(&url).await.unwrap();
        assert!(!Arc::ptr_eq(&fixed, &broken));
        assert_eq!(settled(&fixed).await, Progress::Complete);
        // Budget: 40 kB holds two 8 kB prompts and more, not three 16 kB.
        for i in 0..3 {
            let p = dir.join(format!("b{i}.wav"));
            std::fs::write(&p, wav(8000, i)).unwrap();
            let a = prompts.open(p.to_str().unwrap()).await.unwrap();
            settled(&a).await;
        }
        let _ = prompts.open(&url).await.unwrap();
        let held: usize = prompts
            .cache
            .lock()
            .unwrap()
            .entries
            .values()
            .map(|e| e.audio.bytes())
            .sum();
        assert!(held <= 40_000, "{held} bytes cached");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn urls_are_checked() {
        let p = Prompts::new(PromptLimits::default());
        let file = |url: &str| match p.source_of(url) {
            Ok(Source::File(path)) => path,
            other => panic!("{url}: {other:?}"),
        };
        assert_eq!(file("/a/b.wav"), PathBuf::from("/a/b.wav"));
        assert_eq!(file("file:///a/b.wav"), PathBuf::from("/a/b.wav"));
        for url in ["HTTPS://x/y.wav?a=1.2", "http://x/y.wav"] {
            assert!(matches!(p.source_of(url), Ok(Source::Http)), "{url}");
        }
        for url in ["", "b.wav", "ftp://x/y.wav"] {
            let code = p.source_of(url).unwrap_err().code();
            assert_eq!(code, tonic::Code::InvalidArgument, "{url}");
        }
        let long = format!("/{}", "a".repeat(MAX_URL_LEN));
        assert_eq!(
            p.source_of(&long).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
        assert_eq!(extension_of("http://h/a/b.MP3?x=1.2"), Some("mp3".into()));
        assert_eq!(extension_of("http://h/a/b?x=1.wav"), None);
    }
}
