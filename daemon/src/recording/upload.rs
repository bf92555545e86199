//! Finished recordings to S3-compatible object storage (AWS S3, MinIO,
//! Ceph RGW, ...): one signed PUT of the whole file per attempt, retried
//! with exponential backoff when the failure may be passing.
//!
//! - **Request**: `PUT {endpoint}/{bucket}/{key}` (path style) or
//!   `PUT {bucket}.{host}/{key}` (virtual-hosted), the key being
//!   [`UploadConfig::prefix`] followed by the file's name. The body is
//!   streamed from the file with its length in Content-Length, so a file is
//!   never held in memory; a single PUT takes at most [`MAX_OBJECT_BYTES`]
//!   (5 GiB, S3's limit; multipart uploads are not implemented), a larger
//!   file fails at once. Content-Type comes from the extension (`.mp3`,
//!   `.wav`).
//! - **Signing**: AWS Signature Version 4 in the Authorization header,
//!   written from AWS's description of it ("Authenticating Requests: Using
//!   the Authorization Header"). Signed headers are `host`,
//!   `x-amz-content-sha256` and `x-amz-date`; the payload is declared
//!   `UNSIGNED-PAYLOAD`, so the file is read once, not hashed first (TLS
//!   protects it in transit on https endpoints).
//! - **Retries**: connection errors, timeouts (each attempt is bounded by
//!   [`UploadConfig::timeout`]), 5xx, 429, 408 and S3's 400 RequestTimeout
//!   are retried up to [`UploadConfig::retries`] times, waiting
//!   [`UploadConfig::first_backoff`], then twice as long each time, at most
//!   [`MAX_BACKOFF`]. Any other answer (403 for a bad signature, 404 for a
//!   missing bucket) fails at once with its status and the start of its
//!   body.
//! - **The local file is only read**: never modified, renamed or deleted,
//!   whatever the outcome; what to do with it afterwards is the caller's
//!   call.

use std::fmt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use hmac::{Hmac, KeyInit, Mac};
use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HOST};
use reqwest::{Method, StatusCode, Url};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use tokio_util::io::ReaderStream;

use super::files::utc_stamp;
use crate::control::auth::error_chain;

/// Where and how recordings are uploaded.
#[derive(Clone)]
pub(crate) struct UploadConfig {
    /// Scheme, host and optional port, e.g. `http://127.0.0.1:9000` or
    /// `https://s3.eu-west-1.amazonaws.com`; no path or query.
    pub(crate) endpoint: String,
    /// Bucket name (S3's rules: 3 to 63 lowercase letters, digits, `.` and
    /// `-`).
    pub(crate) bucket: String,
    /// Signing region, e.g. `us-east-1` (MinIO's default too).
    pub(crate) region: String,
    /// Access key id.
    pub(crate) access_key: String,
    /// Secret access key (never printed by `Debug`).
    pub(crate) secret_key: String,
    /// Prepended to the file name to make the object key, e.g.
    /// `recordings/`; may be empty.
    pub(crate) prefix: String,
    /// `true` (default): `{endpoint}/{bucket}/{key}`, which every
    /// S3-compatible server accepts; `false`: virtual-hosted
    /// `{bucket}.{host}/{key}`, which AWS prefers.
    pub(crate) path_style: bool,
    /// Attempts after the first one, for failures that may pass
    /// (default 5).
    pub(crate) retries: u32,
    /// Wait before the first retry (default 1 s); doubles each retry, up to
    /// [`MAX_BACKOFF`].
    pub(crate) first_backoff: Duration,
    /// Bound on one attempt, body included (default 5 minutes: a 5 GiB
    /// file needs about 140 Mbit/s to fit).
    pub(crate) timeout: Duration,
}

impl Default for UploadConfig {
    /// The documented defaults; endpoint, bucket, region and keys are empty
    /// and must be filled in ([`Uploader::new`] refuses them empty).
    fn default() -> Self {
        Self {
            endpoint: String::new(),
            bucket: String::new(),
            region: String::new(),
            access_key: String::new(),
            secret_key: String::new(),
            prefix: String::new(),
            path_style: true,
            retries: 5,
            first_backoff: Duration::from_secs(1),
            timeout: Duration::from_secs(300),
        }
    }
}

impl fmt::Debug for UploadConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UploadConfig")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field("prefix", &self.prefix)
            .field("path_style", &self.path_style)
            .field("retries", &self.retries)
            .field("first_backoff", &self.first_backoff)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Uploads files to one bucket; cheap to share (`&self` methods only).
#[derive(Debug)]
pub(crate) struct Uploader {
    config: UploadConfig,
    client: reqwest::Client,
    signer: Signer,
    /// `http` or `https`.
    scheme: String,
    /// The Host header's value: host, and `:port` unless the scheme's
    /// default (what reqwest would send, and what is signed).
    host: String,
    /// URI path of the bucket, without a trailing slash: `/bucket` (path
    /// style) or empty (virtual-hosted).
    bucket_path: String,
}

impl Uploader {
    /// Checks `config` and prepares uploads with `client` (whose own
    /// timeouts, proxies and trusted roots apply as well).
    pub(crate) fn new(config: UploadConfig, client: reqwest::Client) -> Result<Self, String> {
        let url = Url::parse(&config.endpoint)
            .map_err(|e| format!("upload endpoint {:?}: {e}", config.endpoint))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "upload endpoint {:?}: the scheme must be http or https",
                config.endpoint
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(
                "upload endpoint: put credentials in access_key/secret_key, not the URL".into(),
            );
        }
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err(format!(
                "upload endpoint {:?}: only scheme, host and port are allowed (no path or query)",
                config.endpoint
            ));
        }
        let Some(host) = url.host_str() else {
            return Err(format!("upload endpoint {:?}: no host", config.endpoint));
        };
        check_bucket(&config.bucket)?;
        let (host, bucket_path) = if config.path_style {
            (host.to_owned(), format!("/{}", config.bucket))
        } else {
            if url.domain().is_none() {
                return Err(
                    "upload endpoint: virtual-hosted buckets (path_style = false) need a host \
                     name, not an IP address"
                        .into(),
                );
            }
            (format!("{}.{host}", config.bucket), String::new())
        };
        let host = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host,
        };
        for (name, value) in [
            ("region", &config.region),
            ("access_key", &config.access_key),
            ("secret_key", &config.secret_key),
        ] {
            if value.trim().is_empty() {
                return Err(format!("upload {name} is empty"));
            }
        }
        if config.timeout.is_zero() {
            return Err("upload timeout must be above zero".into());
        }
        let signer = Signer {
            access_key: config.access_key.clone(),
            secret_key: config.secret_key.clone(),
            region: config.region.clone(),
        };
        Ok(Self {
            scheme: url.scheme().to_owned(),
            host,
            bucket_path,
            signer,
            config,
            client,
        })
    }

    /// PUTs the file at `path` as `prefix + file name`, retrying as the
    /// module docs say; returns the object's URL, or the last error with
    /// the number of attempts made. The file is only read.
    pub(crate) async fn upload(&self, path: &Path) -> Result<String, String> {
        let shown = path.display();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            return Err(format!(
                "upload of {shown}: the file name is not UTF-8 text"
            ));
        };
        let key = format!("{}{name}", self.config.prefix);
        check_key(&key).map_err(|e| format!("upload of {shown}: {e}"))?;
        let url = self.url(&key);
        let content_type = content_type(path);
        let attempts = self.config.retries.saturating_add(1);
        let mut attempt = 1;
        loop {
            let error = match self.put_file(path, &key, content_type).await {
                Ok(()) => {
                    tracing::debug!(file = %shown, url, attempt, "recording uploaded");
                    return Ok(url);
                }
                Err(Failure::Final(error)) => {
                    return Err(format!(
                        "upload of {shown} to {url} failed after {attempt} attempt{} (not \
                         retried): {error}",
                        plural(attempt)
                    ));
                }
                Err(Failure::Passing(error)) => error,
            };
            if attempt >= attempts {
                return Err(format!(
                    "upload of {shown} to {url} failed after {attempt} attempt{}: {error}",
                    plural(attempt)
                ));
            }
            let wait = backoff(self.config.first_backoff, attempt);
            tracing::warn!(file = %shown, url, attempt, ?wait, error, "recording upload failed, will retry");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// The object URL for `key` (encoded as it is signed).
    fn url(&self, key: &str) -> String {
        format!("{}://{}{}", self.scheme, self.host, self.object_path(key))
    }

    /// The canonical (URI-encoded) path of `key`'s object.
    fn object_path(&self, key: &str) -> String {
        format!("{}/{}", self.bucket_path, uri_encode_path(key))
    }

    /// One attempt at PUTting the file.
    async fn put_file(&self, path: &Path, key: &str, content_type: &str) -> Result<(), Failure> {
        // Opened anew per attempt: a retry sends the file from its start.
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| Failure::Final(format!("cannot open the file: {e}")))?;
        let len = file
            .metadata()
            .await
            .map_err(|e| Failure::Final(format!("cannot read the file's size: {e}")))?
            .len();
        if len > MAX_OBJECT_BYTES {
            return Err(Failure::Final(format!(
                "the file holds {len} bytes, more than the {MAX_OBJECT_BYTES} (5 GiB) a single \
                 PUT may carry"
            )));
        }
        // `take`: never more bytes than Content-Length promises, should the
        // file grow meanwhile (a shrinking file fails the attempt).
        let stream = ReaderStream::with_capacity(file.take(len), READ_CHUNK);
        let response = self
            .signed(Method::PUT, &self.object_path(key))
            .header(CONTENT_LENGTH, len)
            .header(CONTENT_TYPE, content_type)
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await
            .map_err(|e| send_failure(&e))?;
        check_response(response).await.map(drop)
    }

    /// A request to `uri_path` (already URI-encoded) with the SigV4
    /// headers, bounded by the per-attempt timeout.
    fn signed(&self, method: Method, uri_path: &str) -> reqwest::RequestBuilder {
        let amz_date = utc_stamp(SystemTime::now());
        let canonical = CanonicalRequest::new(
            method.as_str(),
            uri_path,
            &[
                ("host", &self.host),
                ("x-amz-content-sha256", UNSIGNED_PAYLOAD),
                ("x-amz-date", &amz_date),
            ],
            UNSIGNED_PAYLOAD,
        );
        let authorization = self.signer.authorization(&amz_date, &canonical);
        let url = format!("{}://{}{uri_path}", self.scheme, self.host);
        self.client
            .request(method, url)
            .timeout(self.config.timeout)
            .header(HOST, &self.host)
            .header("x-amz-content-sha256", UNSIGNED_PAYLOAD)
            .header("x-amz-date", amz_date)
            .header(AUTHORIZATION, authorization)
    }

    /// Creates the bucket (in the server's default region): tests only.
    #[cfg(test)]
    async fn create_bucket(&self) -> Result<(), String> {
        let path = if self.bucket_path.is_empty() {
            "/"
        } else {
            &self.bucket_path
        };
        let response = self
            .signed(Method::PUT, path)
            .header(CONTENT_LENGTH, 0)
            .send()
            .await
            .map_err(|e| error_chain(&e))?;
        check_response(response)
            .await
            .map(drop)
            .map_err(Failure::into_message)
    }

    /// GETs an object's bytes: tests only.
    #[cfg(test)]
    async fn get_object(&self, key: &str) -> Result<Vec<u8>, String> {
        let response = self
            .signed(Method::GET, &self.object_path(key))
            .send()
            .await
            .map_err(|e| error_chain(&e))?;
        let response = check_response(response)
            .await
            .map_err(Failure::into_message)?;
        let body = response.bytes().await.map_err(|e| error_chain(&e))?;
        Ok(body.to_vec())
    }
}

/// Why an attempt failed.
#[derive(Debug)]
enum Failure {
    /// Worth another attempt: the network, a timeout, a busy server.
    Passing(String),
    /// Trying again would fail the same way.
    Final(String),
}

impl Failure {
    #[cfg(test)]
    fn into_message(self) -> String {
        match self {
            Self::Passing(m) | Self::Final(m) => m,
        }
    }
}

/// Classifies an error that kept a request from getting an answer.
fn send_failure(e: &reqwest::Error) -> Failure {
    let message = if e.is_timeout() {
        format!("timed out: {}", error_chain(e))
    } else {
        error_chain(e)
    };
    if e.is_builder() {
        Failure::Final(message)
    } else {
        // Connecting, TLS, a reset mid-body, reading the file: all may pass.
        Failure::Passing(message)
    }
}

/// The response if its status is a success; else the status and the start
/// of the body, classified.
async fn check_response(mut response: reqwest::Response) -> Result<reqwest::Response, Failure> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let mut body = Vec::new();
    while body.len() < ERROR_BODY_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(ERROR_BODY_BYTES)]);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let message = if text.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {text}")
    };
    let passing = status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        // S3's "socket not read from or written to in time": a 400 that
        // passes.
        || (status == StatusCode::BAD_REQUEST && text.contains("<Code>RequestTimeout</Code>"));
    Err(if passing {
        Failure::Passing(message)
    } else {
        Failure::Final(message)
    })
}

/// The wait before retry number `attempt` (1 = the first retry):
/// `first × 2^(attempt − 1)`, at most [`MAX_BACKOFF`].
fn backoff(first: Duration, attempt: u32) -> Duration {
    let factor = 1_u32
        .checked_shl(attempt.saturating_sub(1))
        .unwrap_or(u32::MAX);
    first.saturating_mul(factor).min(MAX_BACKOFF)
}

/// Content-Type by the file's extension.
fn content_type(path: &Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("mp3") => "audio/mpeg",
        Some("wav") => "audio/wav",
        _ => "application/octet-stream",
    }
}

fn plural(n: u32) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// S3's bucket naming rules, the parts that matter here: 3 to 63
/// characters, lowercase letters, digits, `.` and `-`, a letter or digit at
/// each end, no `..`, not shaped like an IPv4 address.
fn check_bucket(bucket: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("bucket name {bucket:?}: {why}"));
    if !(3..=63).contains(&bucket.len()) {
        return bad("must be 3 to 63 characters long");
    }
    if !bucket
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return bad("only lowercase letters, digits, '.' and '-' are allowed");
    }
    let alphanumeric = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_alphanumeric());
    if !alphanumeric(bucket.bytes().next()) || !alphanumeric(bucket.bytes().last()) {
        return bad("must begin and end with a letter or digit");
    }
    if bucket.contains("..") {
        return bad("must not contain '..'");
    }
    if bucket.parse::<std::net::Ipv4Addr>().is_ok() {
        return bad("must not look like an IP address");
    }
    Ok(())
}

/// What S3 and the URL in between accept as a key: 1 to 1024 bytes, and
/// no `.` or `..` segment (HTTP clients fold those away, so the request
/// would name another object than the one signed).
fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > 1024 {
        return Err(format!("object key {key:?} must be 1 to 1024 bytes long"));
    }
    if key
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Err(format!(
            "object key {key:?} has a '.' or '..' segment (check the prefix)"
        ));
    }
    Ok(())
}

/// SigV4's URI encoding of an object key: every byte but the unreserved
/// `A-Z a-z 0-9 - _ . ~` becomes `%XX` (uppercase hex), `/` is kept as the
/// segment separator. S3 keys are encoded once (not twice, unlike other
/// AWS services).
fn uri_encode_path(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX_UPPER[usize::from(b >> 4)]));
            out.push(char::from(HEX_UPPER[usize::from(b & 0xf)]));
        }
    }
    out
}

/// The request as SigV4 hashes it (its "canonical request").
#[derive(Debug)]
struct CanonicalRequest<'a> {
    method: &'a str,
    /// URI-encoded path, as sent.
    path: &'a str,
    /// Signed headers: lowercase names, sorted, values trimmed with inner
    /// runs of spaces folded to one.
    headers: Vec<(String, String)>,
    /// Hex SHA-256 of the body, or `UNSIGNED-PAYLOAD`.
    payload_hash: &'a str,
}

impl<'a> CanonicalRequest<'a> {
    /// A request without a query string (nothing here sends one) whose
    /// signed headers are `headers` (each name once).
    fn new(
        method: &'a str,
        path: &'a str,
        headers: &[(&str, &str)],
        payload_hash: &'a str,
    ) -> Self {
        let mut headers: Vec<_> = headers
            .iter()
            .map(|(name, value)| {
                let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
                (name.to_ascii_lowercase(), value)
            })
            .collect();
        headers.sort();
        Self {
            method,
            path,
            headers,
            payload_hash,
        }
    }

    /// `host;x-amz-content-sha256;x-amz-date`.
    fn signed_headers(&self) -> String {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        names.join(";")
    }

    /// Method, path, query (empty), headers, signed header names, payload
    /// hash, one per line.
    fn text(&self) -> String {
        let mut text = format!("{}\n{}\n\n", self.method, self.path);
        for (name, value) in &self.headers {
            text.push_str(name);
            text.push(':');
            text.push_str(value);
            text.push('\n');
        }
        text.push('\n');
        text.push_str(&self.signed_headers());
        text.push('\n');
        text.push_str(self.payload_hash);
        text
    }
}

/// AWS Signature Version 4 for the `s3` service.
#[derive(Clone)]
struct Signer {
    access_key: String,
    secret_key: String,
    region: String,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("access_key", &self.access_key)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// The Authorization header of `request` made at `amz_date`
    /// (`YYYYMMDDTHHMMSSZ`, the x-amz-date header's value).
    fn authorization(&self, amz_date: &str, request: &CanonicalRequest<'_>) -> String {
        let scope = self.scope(amz_date);
        let string_to_sign = string_to_sign(amz_date, &scope, request);
        let signature = hex(&hmac(
            &self.signing_key(amz_date),
            string_to_sign.as_bytes(),
        ));
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope},SignedHeaders={},Signature={signature}",
            self.access_key,
            request.signed_headers()
        )
    }

    /// `20130524/us-east-1/s3/aws4_request`.
    fn scope(&self, amz_date: &str) -> String {
        format!("{}/{}/s3/aws4_request", date_of(amz_date), self.region)
    }

    /// HMAC chain from `"AWS4" + secret` over the date, region, service
    /// and `aws4_request`.
    fn signing_key(&self, amz_date: &str) -> [u8; 32] {
        let date = hmac(
            format!("AWS4{}", self.secret_key).as_bytes(),
            date_of(amz_date).as_bytes(),
        );
        let region = hmac(&date, self.region.as_bytes());
        let service = hmac(&region, b"s3");
        hmac(&service, b"aws4_request")
    }
}

/// Algorithm, time, scope and the canonical request's hash, one per line.
fn string_to_sign(amz_date: &str, scope: &str, request: &CanonicalRequest<'_>) -> String {
    let hash = hex(&Sha256::digest(request.text().as_bytes()));
    format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hash}")
}

/// The `YYYYMMDD` of an x-amz-date.
fn date_of(amz_date: &str) -> &str {
    amz_date.split_once('T').map_or(amz_date, |(date, _)| date)
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length: `new_from_slice` cannot fail.
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(HEX_LOWER[usize::from(b >> 4)]));
        out.push(char::from(HEX_LOWER[usize::from(b & 0xf)]));
    }
    out
}

/// The largest object one PUT may create (S3: 5 GiB).
pub(crate) const MAX_OBJECT_BYTES: u64 = 5 << 30;
/// Longest wait between two attempts.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// x-amz-content-sha256 for a body that is not hashed.
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// Bytes read from the file per body chunk.
const READ_CHUNK: usize = 64 * 1024;
/// Bytes of an error response kept for the message.
const ERROR_BODY_BYTES: usize = 300;
const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";
const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    //! The signer against AWS's published example, the request on the wire
    //! (a scripted HTTP server), retries and their limits, and a round trip
    //! through moto's S3 server (skipped, saying so, without moto).

    use std::net::TcpListener as StdListener;
    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    use super::*;

    /// AWS's "Example: GET Object" for Signature Version 4 (Amazon S3 API
    /// reference, "Signature Calculations for the Authorization Header:
    /// Transferring Payload in a Single Chunk"): the canonical request's
    /// hash and the Authorization header it gives.
    #[test]
    fn signs_the_aws_get_object_example() {
        const EMPTY_SHA256: &str =
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let request = CanonicalRequest::new(
            "GET",
            "/test.txt",
            &[
                ("Host", "examplebucket.s3.amazonaws.com"),
                ("Range", "bytes=0-9"),
                ("x-amz-content-sha256", EMPTY_SHA256),
                ("x-amz-date", "20130524T000000Z"),
            ],
            EMPTY_SHA256,
        );
        assert_eq!(
            hex(&Sha256::digest(request.text().as_bytes())),
            "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"
        );
        let signer = Signer {
            access_key: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            region: "us-east-1".into(),
        };
        assert_eq!(
            signer.authorization("20130524T000000Z", &request),
            "AWS4-HMAC-SHA256 \
             Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,\
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,\
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn uri_encoding_keeps_unreserved_and_slashes() {
        for (key, encoded) in [
            ("rec/2026/a.wav", "rec/2026/a.wav"),
            ("A-Z_a-z.0-9~", "A-Z_a-z.0-9~"),
            ("a b+c=d", "a%20b%2Bc%3Dd"),
            ("x:y@z&q?r#s%", "x%3Ay%40z%26q%3Fr%23s%25"),
            ("ü€", "%C3%BC%E2%82%AC"),
            ("a//b", "a//b"),
        ] {
            assert_eq!(uri_encode_path(key), encoded, "{key:?}");
        }
    }

    #[test]
    fn bucket_names() {
        for ok in ["abc", "my-bucket.2026", "0rec", &"a".repeat(63)] {
            assert!(check_bucket(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "ab",
            &"a".repeat(64),
            "MyBucket",
            "my_bucket",
            "-abc",
            "abc.",
            "a..b",
            "192.168.1.1",
            "a/b",
        ] {
            assert!(check_bucket(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn backoff_doubles_up_to_a_minute() {
        let second = Duration::from_secs(1);
        let ms = Duration::from_millis;
        for (first, attempt, wait) in [
            (second, 1, second),
            (second, 2, 2 * second),
            (second, 6, 32 * second),
            (second, 7, MAX_BACKOFF),
            (second, 40, MAX_BACKOFF),
            (second, u32::MAX, MAX_BACKOFF),
            (ms(50), 1, ms(50)),
            (ms(50), 2, ms(100)),
            (ms(50), 3, ms(200)),
        ] {
            assert_eq!(backoff(first, attempt), wait, "{first:?} {attempt}");
        }
    }

    #[test]
    fn content_types() {
        for (name, ty) in [
            ("a.mp3", "audio/mpeg"),
            ("a.MP3", "audio/mpeg"),
            ("a.wav", "audio/wav"),
            ("a.txt", "application/octet-stream"),
            ("a", "application/octet-stream"),
        ] {
            assert_eq!(content_type(Path::new(name)), ty, "{name}");
        }
    }

    #[test]
    fn config_checks() {
        let new = |change: fn(&mut UploadConfig)| {
            let mut config = config("http://127.0.0.1:9000");
            change(&mut config);
            Uploader::new(config, reqwest::Client::new()).map(drop)
        };
        assert!(new(|_| {}).is_ok());
        let refused: [(Change, &str); 9] = [
            (|c| c.endpoint = "ftp://h".into(), "http or https"),
            (|c| c.endpoint = "127.0.0.1:9000".into(), "endpoint"),
            (|c| c.endpoint = "http://h/base".into(), "no path"),
            (|c| c.endpoint = "http://u:p@h".into(), "credentials"),
            (|c| c.bucket = "No".into(), "bucket name"),
            (|c| c.region = String::new(), "region is empty"),
            (|c| c.access_key = " ".into(), "access_key is empty"),
            (|c| c.secret_key = String::new(), "secret_key is empty"),
            (|c| c.path_style = false, "host name, not an IP"),
        ];
        for (change, why) in refused {
            let error = new(change).unwrap_err();
            assert!(error.contains(why), "{error:?} should say {why:?}");
        }
        let virtual_hosted = Uploader::new(
            UploadConfig {
                path_style: false,
                ..config("https://s3.eu-west-1.amazonaws.com")
            },
            reqwest::Client::new(),
        )
        .unwrap();
        assert_eq!(
            virtual_hosted.url("rec/a b.wav"),
            "https://recordings.s3.eu-west-1.amazonaws.com/rec/a%20b.wav"
        );
        let path_style =
            Uploader::new(config("http://[::1]:9000"), reqwest::Client::new()).unwrap();
        assert_eq!(
            path_style.url("a.mp3"),
            "http://[::1]:9000/recordings/a.mp3"
        );
        let debug = format!("{:?}", config("http://h"));
        assert!(!debug.contains("SECRET"), "{debug}");
    }

    /// The request on the wire: a PUT to the encoded key with
    /// Content-Length (no chunked encoding), the content type, the SigV4
    /// headers, and the file's bytes.
    #[tokio::test]
    async fn request_on_the_wire() {
        let server = Scripted::start(vec![(200, "")]).await;
        let dir = temp_dir("wire");
        let file = dir.join("call 1.wav");
        let bytes = pattern(100_000);
        std::fs::write(&file, &bytes).unwrap();
        let uploader = Uploader::new(
            UploadConfig {
                prefix: "pbx-1/".into(),
                ..config(&server.endpoint)
            },
            reqwest::Client::new(),
        )
        .unwrap();

        let url = uploader.upload(&file).await.unwrap();

        assert_eq!(
            url,
            format!("{}/recordings/pbx-1/call%201.wav", server.endpoint)
        );
        let requests = server.requests();
        assert_eq!(requests.len(), 1);
        let (head, body) = &requests[0];
        let head = head.to_ascii_lowercase();
        assert!(
            head.starts_with("put /recordings/pbx-1/call%201.wav http/1.1\r\n"),
            "{head}"
        );
        for line in [
            "content-length: 100000",
            "content-type: audio/wav",
            "x-amz-content-sha256: unsigned-payload",
            "authorization: aws4-hmac-sha256 credential=access/",
            "/us-east-1/s3/aws4_request,signedheaders=host;x-amz-content-sha256;x-amz-date,signature=",
            &format!("host: {}", server.endpoint.trim_start_matches("http://")),
        ] {
            assert!(head.contains(line), "{line:?} missing from:\n{head}");
        }
        assert!(!head.contains("transfer-encoding"), "{head}");
        assert!(*body == bytes, "the body differs from the file");
    }

    /// 503 and 429 are retried (the file sent whole each time); a 403 is
    /// not, and its message carries the status and the body's start.
    #[tokio::test]
    async fn retries_what_may_pass_only() {
        let dir = temp_dir("retry");
        let file = dir.join("a.mp3");
        let bytes = pattern(10_000);
        std::fs::write(&file, &bytes).unwrap();

        let busy = Scripted::start(vec![
            (503, "<Error><Code>SlowDown</Code></Error>"),
            (429, ""),
            (200, ""),
        ])
        .await;
        let uploader =
            Uploader::new(fast(config(&busy.endpoint), 5), reqwest::Client::new()).unwrap();
        uploader.upload(&file).await.unwrap();
        let requests = busy.requests();
        assert_eq!(requests.len(), 3);
        assert!(requests.iter().all(|(_, body)| *body == bytes));

        let denied = Scripted::start(vec![(
            403,
            "<?xml version=\"1.0\"?>\n<Error><Code>SignatureDoesNotMatch</Code>\
             <Message>The request signature we calculated does not match</Message></Error>",
        )])
        .await;
        let uploader =
            Uploader::new(fast(config(&denied.endpoint), 5), reqwest::Client::new()).unwrap();
        let error = uploader.upload(&file).await.unwrap_err();
        assert_eq!(denied.requests().len(), 1, "{error}");
        for part in [
            "after 1 attempt (not retried)",
            "HTTP 403 Forbidden",
            "SignatureDoesNotMatch",
        ] {
            assert!(error.contains(part), "{error:?} should say {part:?}");
        }

        let down = Scripted::start(vec![(500, "")]).await;
        let uploader =
            Uploader::new(fast(config(&down.endpoint), 2), reqwest::Client::new()).unwrap();
        let error = uploader.upload(&file).await.unwrap_err();
        assert_eq!(down.requests().len(), 3, "{error}");
        assert!(error.contains("after 3 attempts: HTTP 500"), "{error}");
        assert_eq!(std::fs::read(&file).unwrap(), bytes);
    }

    /// Nobody listening: 3 attempts (retries = 2) after 50 + 100 ms of
    /// backoff, well within a second or two; the file is left as it was.
    #[tokio::test]
    async fn server_down_gives_up_after_the_retries() {
        let dir = temp_dir("down");
        let file = dir.join("a.wav");
        let bytes = pattern(300_000);
        std::fs::write(&file, &bytes).unwrap();
        let endpoint = format!("http://127.0.0.1:{}", free_port());
        let uploader = Uploader::new(fast(config(&endpoint), 2), reqwest::Client::new()).unwrap();

        let start = Instant::now();
        let error = uploader.upload(&file).await.unwrap_err();
        let took = start.elapsed();

        assert!(error.contains("after 3 attempts"), "{error}");
        assert!(took >= Duration::from_millis(150), "{took:?}");
        assert!(took < Duration::from_secs(3), "{took:?}");
        assert_eq!(std::fs::read(&file).unwrap(), bytes);
    }

    /// Over 5 GiB (a sparse file): refused at once, nothing sent.
    #[tokio::test]
    async fn refuses_files_over_5_gib() {
        let dir = temp_dir("big");
        let file = dir.join("huge.wav");
        std::fs::File::create(&file)
            .unwrap()
            .set_len(MAX_OBJECT_BYTES + 1)
            .unwrap();
        let server = Scripted::start(vec![(200, "")]).await;
        let uploader = Uploader::new(config(&server.endpoint), reqwest::Client::new()).unwrap();
        let error = uploader.upload(&file).await.unwrap_err();
        assert!(
            error.contains("more than the 5368709120 (5 GiB)"),
            "{error}"
        );
        assert!(error.contains("not retried"), "{error}");
        assert!(server.requests().is_empty());
    }

    /// A 300 kB recording to moto's S3 server and back, byte for byte;
    /// then a bucket that does not exist fails at once.
    #[tokio::test]
    async fn moto_round_trip() {
        let Some(moto) = Moto::start().await else {
            return;
        };
        let dir = temp_dir("moto");
        let file = dir.join("2026-01-02 call+1.mp3");
        let bytes = pattern(300_000);
        std::fs::write(&file, &bytes).unwrap();
        let uploader = Uploader::new(
            UploadConfig {
                prefix: "pbx-1/".into(),
                ..config(&moto.endpoint)
            },
            reqwest::Client::new(),
        )
        .unwrap();
        uploader.create_bucket().await.unwrap();

        let url = uploader.upload(&file).await.unwrap();

        assert_eq!(
            url,
            format!(
                "{}/recordings/pbx-1/2026-01-02%20call%2B1.mp3",
                moto.endpoint
            )
        );
        let stored = uploader
            .get_object("pbx-1/2026-01-02 call+1.mp3")
            .await
            .unwrap();
        assert!(
            stored == bytes,
            "{} bytes came back, not the 300 000 sent",
            stored.len()
        );
        assert_eq!(std::fs::read(&file).unwrap(), bytes);

        let missing = Uploader::new(
            UploadConfig {
                bucket: "no-such-bucket".into(),
                ..config(&moto.endpoint)
            },
            reqwest::Client::new(),
        )
        .unwrap();
        let start = Instant::now();
        let error = missing.upload(&file).await.unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(1), "{error}");
        for part in ["after 1 attempt (not retried)", "HTTP 404", "NoSuchBucket"] {
            assert!(error.contains(part), "{error:?} should say {part:?}");
        }
    }

    /// With moto checking signatures (botocore computes its own and
    /// compares): the upload, the bucket's creation and the GET are
    /// accepted, and a wrong secret key is refused at once with 403.
    ///
    /// The key has a space (`%20`) but no `+` or non-ASCII letter: moto
    /// hands botocore the path as werkzeug rebuilds it, with those left
    /// unencoded, so it computes another canonical URI than AWS's rule
    /// (every byte but the unreserved ones as `%XX`, pinned by
    /// `uri_encoding_keeps_unreserved_and_slashes`) and refuses keys that
    /// have them.
    #[tokio::test]
    async fn moto_checks_the_signatures() {
        let Some(moto) = Moto::start().await else {
            return;
        };
        let (access_key, secret_key) = moto.enable_auth().await;
        let dir = temp_dir("moto-auth");
        let file = dir.join("2026-01-02 call 1.wav");
        let bytes = pattern(50_000);
        std::fs::write(&file, &bytes).unwrap();
        let signed = |secret_key: &str| {
            Uploader::new(
                UploadConfig {
                    access_key: access_key.clone(),
                    secret_key: secret_key.into(),
                    prefix: "pbx-1/".into(),
                    ..fast(config(&moto.endpoint), 3)
                },
                reqwest::Client::new(),
            )
            .unwrap()
        };
        let uploader = signed(&secret_key);
        uploader.create_bucket().await.unwrap();
        uploader.upload(&file).await.unwrap();
        let stored = uploader
            .get_object("pbx-1/2026-01-02 call 1.wav")
            .await
            .unwrap();
        assert!(stored == bytes, "{} bytes came back", stored.len());

        let error = signed("not-the-secret").upload(&file).await.unwrap_err();
        for part in [
            "after 1 attempt (not retried)",
            "HTTP 403",
            "SignatureDoesNotMatch",
        ] {
            assert!(error.contains(part), "{error:?} should say {part:?}");
        }
    }

    /// An edit to a configuration.
    type Change = fn(&mut UploadConfig);

    /// A request's head and body.
    type Request = (String, Vec<u8>);

    /// A path-style configuration for `endpoint` with test credentials.
    fn config(endpoint: &str) -> UploadConfig {
        UploadConfig {
            endpoint: endpoint.into(),
            bucket: "recordings".into(),
            region: "us-east-1".into(),
            access_key: "access".into(),
            secret_key: "SECRET".into(),
            ..UploadConfig::default()
        }
    }

    /// `config` with `retries` and 50 ms of first backoff.
    fn fast(config: UploadConfig, retries: u32) -> UploadConfig {
        UploadConfig {
            retries,
            first_backoff: Duration::from_millis(50),
            timeout: Duration::from_secs(20),
            ..config
        }
    }

    /// `len` bytes that are not all alike.
    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    /// A port nothing listens on (just freed; nothing else here takes it).
    fn free_port() -> u16 {
        StdListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    /// A fresh directory under the system temp directory, removed when
    /// dropped.
    struct TempDir(PathBuf);

    impl std::ops::Deref for TempDir {
        type Target = Path;

        fn deref(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn temp_dir(name: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "legato-upload-{}-{}-{name}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// An HTTP/1.1 server on 127.0.0.1 answering requests with `replies`
    /// in turn (the last one again once they run out), one request per
    /// connection, and keeping each request's head and body.
    struct Scripted {
        endpoint: String,
        requests: Arc<Mutex<Vec<Request>>>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Scripted {
        async fn start(replies: Vec<(u16, &'static str)>) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let endpoint = format!("http://{}", listener.local_addr().unwrap());
            let requests = Arc::new(Mutex::new(Vec::new()));
            let seen = Arc::clone(&requests);
            let task = tokio::spawn(async move {
                for n in 0.. {
                    let Ok((mut socket, _)) = listener.accept().await else {
                        return;
                    };
                    let Some(request) = read_request(&mut socket).await else {
                        continue;
                    };
                    seen.lock().unwrap().push(request);
                    let (status, body) = replies[n.min(replies.len() - 1)];
                    let reply = format!(
                        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(reply.as_bytes()).await;
                    let _ = socket.shutdown().await;
                }
            });
            Self {
                endpoint,
                requests,
                task,
            }
        }

        fn requests(&self) -> Vec<Request> {
            self.requests.lock().unwrap().clone()
        }
    }

    impl Drop for Scripted {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    /// A request's head (up to the blank line) and its Content-Length body.
    async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<Request> {
        let mut data = Vec::new();
        let mut buf = vec![0; 64 * 1024];
        let head_end = loop {
            if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            let n = socket.read(&mut buf).await.ok().filter(|&n| n > 0)?;
            data.extend_from_slice(&buf[..n]);
        };
        let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .unwrap_or(0);
        while data.len() < head_end + len {
            let n = socket.read(&mut buf).await.ok().filter(|&n| n > 0)?;
            data.extend_from_slice(&buf[..n]);
        }
        Some((head, data[head_end..].to_vec()))
    }

    /// moto's S3 server (`python3 -m moto.server`) on a free port, killed
    /// when dropped.
    struct Moto {
        endpoint: String,
        child: Child,
    }

    impl Moto {
        /// `None`, after printing `SKIPPED:`, when moto is not installed.
        async fn start() -> Option<Self> {
            let installed = Command::new("python3")
                .args(["-c", "import moto.server"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !installed {
                println!("SKIPPED: moto is not installed (python3 -m pip install 'moto[server]')");
                return None;
            }
            let port = free_port();
            let child = Command::new("python3")
                .args([
                    "-m",
                    "moto.server",
                    "-H",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("python3 runs");
            let moto = Self {
                endpoint: format!("http://127.0.0.1:{port}"),
                child,
            };
            let client = reqwest::Client::new();
            let deadline = Instant::now() + Duration::from_secs(30);
            while client.get(&moto.endpoint).send().await.is_err() {
                assert!(Instant::now() < deadline, "moto did not answer within 30 s");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Some(moto)
        }
    }

    impl Moto {
        /// Makes moto check signatures from now on and returns the access
        /// key of an IAM user allowed `s3:*` (created by the three
        /// unauthenticated IAM calls moto is told to let through).
        async fn enable_auth(&self) -> (String, String) {
            let client = reqwest::Client::new();
            let iam = |action: &str, params: &str| {
                client
                    .post(format!("{}/", self.endpoint))
                    .header(
                        AUTHORIZATION,
                        "AWS4-HMAC-SHA256 Credential=setup/20260101/us-east-1/iam/aws4_request, \
                         SignedHeaders=host, Signature=0",
                    )
                    .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(format!(
                        "Action={action}&Version=2010-05-08&UserName=legato{params}"
                    ))
                    .send()
            };
            // A plain body: Flask leaves a form-encoded one out of `data`.
            let reply = client
                .post(format!("{}/moto-api/reset-auth", self.endpoint))
                .header(CONTENT_TYPE, "text/plain")
                .body("3")
                .send()
                .await
                .unwrap();
            assert!(
                reply.status().is_success(),
                "reset-auth: {}",
                reply.status()
            );
            let text = |reply: reqwest::Response| async move {
                let status = reply.status();
                let text = reply.text().await.unwrap();
                assert!(status.is_success(), "IAM: {status} {text}");
                text
            };
            text(iam("CreateUser", "").await.unwrap()).await;
            let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
            text(
                iam(
                    "PutUserPolicy",
                    &format!("&PolicyName=s3&PolicyDocument={}", uri_encode_path(policy)),
                )
                .await
                .unwrap(),
            )
            .await;
            let created = text(iam("CreateAccessKey", "").await.unwrap()).await;
            let field = |name: &str| {
                let start = created.find(&format!("<{name}>")).unwrap() + name.len() + 2;
                let end = created.find(&format!("</{name}>")).unwrap();
                created[start..end].to_owned()
            };
            (field("AccessKeyId"), field("SecretAccessKey"))
        }
    }

    impl Drop for Moto {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
