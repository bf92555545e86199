//! Prompts over http(s): a GET (or a conditional GET to revalidate a
//! cached copy: If-None-Match / If-Modified-Since, never a HEAD), the
//! response's caching headers (Cache-Control max-age and no-store, ETag,
//! Last-Modified), and the body streamed into the decoder as it arrives,
//! so a long prompt starts playing long before its download ends.
//!
//! Bounds: connecting and the response headers within [`HEADERS_TIMEOUT`];
//! no body data for [`STALL_TIMEOUT`] ends the download; the body may not
//! exceed the file-size limit. Each failure ends the playback with a
//! PlaybackFinished error naming it (HTTP status, timeout, size).

use std::io::Read;
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::StatusCode;

use crate::control::auth::error_chain;
use reqwest::header::{
    CACHE_CONTROL, ETAG, HeaderMap, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED,
};

/// Connecting plus the response's headers.
pub(crate) const HEADERS_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for the next piece of body.
pub(crate) const STALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Body chunks in flight between the download and the decoder.
const CHUNKS: usize = 64;

/// What makes a cached response reusable.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Validators {
    pub(crate) etag: Option<String>,
    pub(crate) last_modified: Option<String>,
    /// Fresh until then (Cache-Control max-age); `None`: revalidate on
    /// every use.
    pub(crate) fresh_until: Option<Instant>,
    /// Cache-Control no-store: never kept.
    pub(crate) no_store: bool,
}

impl Validators {
    fn from_headers(headers: &HeaderMap, now: Instant) -> Self {
        let text = |name| {
            headers
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        let mut v = Self {
            etag: text(ETAG),
            last_modified: text(LAST_MODIFIED),
            ..Self::default()
        };
        for directive in headers
            .get_all(CACHE_CONTROL)
            .iter()
            .filter_map(|h| h.to_str().ok())
            .flat_map(|h| h.split(','))
        {
            let directive = directive.trim().to_ascii_lowercase();
            if directive == "no-store" {
                v.no_store = true;
            } else if directive == "no-cache" {
                v.fresh_until = None;
            } else if let Some(age) = directive.strip_prefix("max-age=")
                && let Ok(secs) = age.trim_matches('"').parse::<u64>()
                && !headers
                    .get_all(CACHE_CONTROL)
                    .iter()
                    .any(|h| h.to_str().is_ok_and(|s| s.contains("no-cache")))
            {
                v.fresh_until = Some(now + Duration::from_secs(secs.min(365 * 86_400)));
            }
        }
        v
    }

    /// Whether a conditional request can revalidate it.
    pub(crate) fn can_revalidate(&self) -> bool {
        self.etag.is_some() || self.last_modified.is_some()
    }
}

/// What a (conditional) GET gave.
#[derive(Debug)]
pub(crate) enum Fetched {
    /// 304: the cached copy is still good, with refreshed validators.
    NotModified(Validators),
    /// 200: a body to decode.
    Body(Box<reqwest::Response>, Validators),
}

/// A client for prompt downloads (rustls, system-independent roots).
pub(crate) fn client() -> Option<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(HEADERS_TIMEOUT)
        .user_agent(concat!("legatod/", env!("CARGO_PKG_VERSION")))
        .build()
        .ok()
}

/// GETs `url`, conditionally on `cached` when it has validators.
pub(crate) async fn fetch(
    client: &reqwest::Client,
    url: &str,
    cached: Option<&Validators>,
) -> Result<Fetched, String> {
    let mut request = client.get(url);
    if let Some(v) = cached {
        if let Some(etag) = &v.etag {
            request = request.header(IF_NONE_MATCH, etag);
        }
        if let Some(date) = &v.last_modified {
            request = request.header(IF_MODIFIED_SINCE, date);
        }
    }
    let response = tokio::time::timeout(HEADERS_TIMEOUT, request.send())
        .await
        .map_err(|_| {
            format!(
                "no response from {url} within {} s",
                HEADERS_TIMEOUT.as_secs()
            )
        })?
        .map_err(|e| format!("fetching {url} failed: {}", error_chain(&e)))?;
    let validators = Validators::from_headers(response.headers(), Instant::now());
    match response.status() {
        StatusCode::NOT_MODIFIED if cached.is_some() => Ok(Fetched::NotModified(validators)),
        StatusCode::OK => Ok(Fetched::Body(Box::new(response), validators)),
        status => Err(format!("HTTP {status} from {url}")),
    }
}

/// Streams `response`'s body into a blocking reader for the decoder; the
/// download stops with an error (read by the decoder as an I/O error,
/// then reported) on a stall or over `max_bytes`.
pub(crate) fn body_reader(response: reqwest::Response, max_bytes: u64) -> BodyReader {
    let (tx, rx) = sync_channel(CHUNKS);
    tokio::spawn(pump(response, tx, max_bytes));
    BodyReader {
        rx: Mutex::new(rx),
        chunk: Vec::new(),
        at: 0,
        error: None,
    }
}

async fn pump(response: reqwest::Response, tx: SyncSender<Result<Vec<u8>, String>>, max: u64) {
    let mut stream = response.bytes_stream();
    let mut total = 0u64;
    loop {
        let next = match tokio::time::timeout(STALL_TIMEOUT, stream.next()).await {
            Err(_) => Err(format!(
                "the download stalled: no data for {} s",
                STALL_TIMEOUT.as_secs()
            )),
            Ok(None) => return,
            Ok(Some(Err(e))) => Err(format!("the download failed: {}", error_chain(&e))),
            Ok(Some(Ok(bytes))) => {
                total += bytes.len() as u64;
                if total > max {
                    Err(format!(
                        "the file is over the {max} bytes a prompt may have"
                    ))
                } else {
                    Ok(bytes.to_vec())
                }
            }
        };
        let failed = next.is_err();
        // The decoder's side is a blocking thread: hand over without
        // blocking this runtime thread for long (a full channel means the
        // decoder is behind; wait for it in small steps).
        let mut item = Some(next);
        while let Some(value) = item.take() {
            match tx.try_send(value) {
                Ok(()) => {}
                Err(std::sync::mpsc::TrySendError::Full(value)) => {
                    item = Some(value);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(std::sync::mpsc::TrySendError::Disconnected(_)) => return,
            }
        }
        if failed {
            return;
        }
    }
}

/// The decoder's end of a download.
#[derive(Debug)]
pub(crate) struct BodyReader {
    /// Only the decoder reads it; the lock makes the reader `Sync`, as
    /// symphonia's sources must be.
    rx: Mutex<Receiver<Result<Vec<u8>, String>>>,
    chunk: Vec<u8>,
    at: usize,
    /// Why the download ended early, once it has.
    pub(crate) error: Option<String>,
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at >= self.chunk.len() {
            let next = match self.rx.get_mut() {
                Ok(rx) => rx.recv(),
                Err(poisoned) => poisoned.into_inner().recv(),
            };
            match next {
                Ok(Ok(chunk)) => {
                    self.chunk = chunk;
                    self.at = 0;
                }
                Ok(Err(e)) => {
                    self.error = Some(e.clone());
                    return Err(std::io::Error::other(e));
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn caching_headers_are_read() {
        let now = Instant::now();
        let mut h = HeaderMap::new();
        h.insert(ETAG, HeaderValue::from_static("\"abc\""));
        h.insert(
            CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=60"),
        );
        let v = Validators::from_headers(&h, now);
        assert_eq!(v.etag.as_deref(), Some("\"abc\""));
        assert_eq!(v.fresh_until, Some(now + Duration::from_secs(60)));
        assert!(!v.no_store && v.can_revalidate());
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        assert!(Validators::from_headers(&h, now).no_store);
        h.insert(
            CACHE_CONTROL,
            HeaderValue::from_static("max-age=60, no-cache"),
        );
        assert_eq!(Validators::from_headers(&h, now).fresh_until, None);
        h.insert(CACHE_CONTROL, HeaderValue::from_static("max-age=bogus"));
        assert_eq!(Validators::from_headers(&h, now).fresh_until, None);
    }
}
