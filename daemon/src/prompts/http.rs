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
//!
//! Trust and reach: https servers are checked against the webpki roots
//! plus the configured `prompt_ca_file`; with `prompt_hosts` configured,
//! only those hosts may be fetched from, redirects included (a redirect
//! elsewhere fails the download).

use std::io::Read;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
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

/// Hosts prompts may be fetched from: empty, any; else exact names
/// (`prompts.example.com`) or suffixes (`*.example.com`, which matches
/// the subdomains, not the bare name), compared without case.
#[derive(Clone, Debug, Default)]
pub(crate) struct Hosts(Arc<[String]>);

impl Hosts {
    pub(crate) fn new(hosts: &[String]) -> Self {
        Self(hosts.iter().map(|h| h.to_ascii_lowercase()).collect())
    }

    /// Whether `url` may be fetched.
    pub(crate) fn allow(&self, url: &reqwest::Url) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let Some(host) = url.host_str().map(str::to_ascii_lowercase) else {
            return false;
        };
        self.0
            .iter()
            .any(|allowed| match allowed.strip_prefix("*.") {
                Some(suffix) => host
                    .strip_suffix(suffix)
                    .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
                None => *allowed == host,
            })
    }
}

/// Redirects a prompt download follows at most.
const MAX_REDIRECTS: usize = 5;

/// A client for prompt downloads (rustls with the webpki roots, plus the
/// certificates in `ca_pem`), following redirects only to `hosts`.
pub(crate) fn client(ca_pem: Option<&[u8]>, hosts: Hosts) -> Result<reqwest::Client, String> {
    let redirects = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= MAX_REDIRECTS {
            attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
        } else if hosts.allow(attempt.url()) {
            attempt.follow()
        } else {
            let to = attempt.url().host_str().unwrap_or("").to_owned();
            attempt.error(format!("redirected to {to}, not in prompt_hosts"))
        }
    });
    let mut builder = reqwest::Client::builder()
        .connect_timeout(HEADERS_TIMEOUT)
        .redirect(redirects)
        .user_agent(concat!("legatod/", env!("CARGO_PKG_VERSION")));
    if let Some(pem) = ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| format!("prompt_ca_file: {}", error_chain(&e)))?;
        if certs.is_empty() {
            return Err("prompt_ca_file holds no PEM certificate".into());
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map_err(|e| format!("cannot set up the HTTP client: {}", error_chain(&e)))
}

/// Why a fetch failed.
#[derive(Debug)]
pub(crate) struct FetchError {
    /// The server's answer, when it answered with an error status.
    pub(crate) status: Option<StatusCode>,
    pub(crate) message: String,
}

impl FetchError {
    fn new(message: String) -> Self {
        Self {
            status: None,
            message,
        }
    }

    /// Whether a cached copy may still be served (RFC 5861's
    /// stale-if-error): the server could not be reached or failed (5xx),
    /// as opposed to saying the resource is gone or forbidden (4xx).
    pub(crate) fn transient(&self) -> bool {
        self.status.is_none_or(|s| s.is_server_error())
    }
}

/// GETs `url`, conditionally on `cached` when it has validators.
pub(crate) async fn fetch(
    client: &reqwest::Client,
    url: &str,
    cached: Option<&Validators>,
) -> Result<Fetched, FetchError> {
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
            FetchError::new(format!(
                "no response from {url} within {} s",
                HEADERS_TIMEOUT.as_secs()
            ))
        })?
        .map_err(|e| FetchError::new(format!("fetching {url} failed: {}", error_chain(&e))))?;
    let validators = Validators::from_headers(response.headers(), Instant::now());
    match response.status() {
        StatusCode::NOT_MODIFIED if cached.is_some() => Ok(Fetched::NotModified(validators)),
        StatusCode::OK => Ok(Fetched::Body(Box::new(response), validators)),
        status => Err(FetchError {
            status: Some(status),
            message: format!("HTTP {status} from {url}"),
        }),
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

    #[test]
    fn hosts_match_names_and_suffixes() {
        let url = |u: &str| reqwest::Url::parse(u).unwrap();
        assert!(Hosts::default().allow(&url("http://anything/x.wav")));
        let hosts = Hosts::new(&["Prompts.Example.com".into(), "*.cdn.net".into()]);
        for (u, ok) in [
            ("https://prompts.example.com/a.wav", true),
            ("https://PROMPTS.example.com:8443/a.wav", true),
            ("https://evil-prompts.example.com/a.wav", false),
            ("https://prompts.example.com.evil.org/a.wav", false),
            ("http://a.cdn.net/x", true),
            ("http://a.b.cdn.net/x", true),
            ("http://cdn.net/x", false),
            ("http://xcdn.net/x", false),
            ("http://169.254.169.254/latest", false),
        ] {
            assert_eq!(hosts.allow(&url(u)), ok, "{u}");
        }
    }
}
