//! Control-plane security: TLS (optionally mutual) on the gRPC listener and
//! bearer tokens on every RPC.
//!
//! Everything is read and checked once at startup by
//! [`ControlSecurity::load`], so a typo in a path or a broken PEM file stops
//! legatod before it listens instead of surfacing at the first connection.
//!
//! Tokens come from a file with one token per line; blank lines and lines
//! starting with `#` are skipped. Several tokens may be valid at once, which
//! is how a token is rotated: add the new one, move the controllers over,
//! remove the old one, and send legatod SIGHUP to re-read the file. A
//! request carries its token as `authorization: Bearer <token>` metadata;
//! the token is compared in constant time against every configured token.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject as _;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};
use tonic::{Request, Status};

use crate::config::{Config, TlsFiles};

/// The control plane's TLS settings and accepted tokens, loaded from the
/// files a [`Config`] names.
#[derive(Clone, Debug)]
pub struct ControlSecurity {
    tls: Option<ServerTlsConfig>,
    mutual_tls: bool,
    tokens: Option<TokenStore>,
    health_requires_auth: bool,
    reflection: bool,
}

impl ControlSecurity {
    /// Reads and checks the TLS files and the token file of `config`.
    ///
    /// Fails with a message naming the config key and the file for an
    /// unreadable file, a file without the expected PEM block, a key that
    /// does not belong to the certificate, or an empty token file.
    pub fn load(config: &Config) -> Result<Self, String> {
        let tls = config.tls.as_ref().map(load_tls).transpose()?;
        let tokens = match &config.auth_token_file {
            Some(path) => Some(TokenStore::load(path)?),
            None => None,
        };
        Ok(Self {
            tls,
            mutual_tls: config.tls.as_ref().is_some_and(|t| t.client_ca.is_some()),
            tokens,
            health_requires_auth: config.health_requires_auth,
            reflection: config.reflection,
        })
    }

    /// Whether the listener speaks TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Whether clients must present a certificate signed by the configured CA.
    pub fn is_mutual_tls(&self) -> bool {
        self.mutual_tls
    }

    /// The accepted tokens, when a token file is configured: a handle whose
    /// [`TokenStore::reload`] re-reads the file (legatod calls it on SIGHUP).
    pub fn tokens(&self) -> Option<&TokenStore> {
        self.tokens.as_ref()
    }

    /// Warnings for a listener on `addr`: a control plane reachable from
    /// other hosts should be encrypted and authenticated.
    pub fn exposure_warnings(&self, addr: std::net::SocketAddr) -> Vec<String> {
        let mut warnings = Vec::new();
        if addr.ip().is_loopback() {
            return warnings;
        }
        if self.tls.is_none() {
            warnings.push(format!(
                "gRPC listens on non-loopback address {addr} without TLS: requests, SDP and tokens travel in clear text (set tls_cert and tls_key)"
            ));
        }
        if self.tokens.is_none() && !self.mutual_tls {
            warnings.push(format!(
                "gRPC listens on non-loopback address {addr} without client authentication: anyone who can reach it controls every call (set auth_token_file or tls_client_ca)"
            ));
        }
        warnings
    }

    pub(crate) fn server_tls(&self) -> Option<&ServerTlsConfig> {
        self.tls.as_ref()
    }

    pub(crate) fn authenticator(&self) -> Authenticator {
        Authenticator {
            tokens: self.tokens.clone(),
        }
    }

    pub(crate) fn health_requires_auth(&self) -> bool {
        self.health_requires_auth
    }

    pub(crate) fn reflection(&self) -> bool {
        self.reflection
    }
}

/// The accepted bearer tokens, shared with every connection; cheap to clone.
#[derive(Clone)]
pub struct TokenStore {
    path: Arc<Path>,
    tokens: Arc<RwLock<Tokens>>,
}

impl TokenStore {
    fn load(path: &Path) -> Result<Self, String> {
        Ok(Self {
            path: path.into(),
            tokens: Arc::new(RwLock::new(Tokens::read(path)?)),
        })
    }

    /// Re-reads the token file. On error the tokens in use stay as they
    /// were, and the error says why the file was not taken.
    pub fn reload(&self) -> Result<usize, String> {
        let fresh = Tokens::read(&self.path)?;
        let count = fresh.0.len();
        // A poisoned lock only means a reader panicked; the data is whole.
        *self.tokens.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(count)
    }

    /// The token file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn accepts(&self, presented: &[u8]) -> bool {
        self.tokens
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .accepts(presented)
    }
}

impl fmt::Debug for TokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the tokens themselves.
        f.debug_struct("TokenStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The parsed token file.
struct Tokens(Vec<Box<[u8]>>);

impl Tokens {
    fn read(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read auth_token_file {}: {e}", path.display()))?;
        warn_if_world_readable(path, "auth_token_file");
        Self::parse(&text).map_err(|e| format!("auth_token_file {}: {e}", path.display()))
    }

    fn parse(text: &str) -> Result<Self, String> {
        let mut tokens = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let token = line.trim();
            if token.is_empty() || token.starts_with('#') {
                continue;
            }
            let number = index + 1;
            // Tokens travel in an HTTP header: visible ASCII only. The
            // message names the line, never the token.
            if !token.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(format!(
                    "line {number}: a token is one word of visible ASCII characters"
                ));
            }
            if token.len() < MIN_TOKEN_LEN {
                return Err(format!(
                    "line {number}: a token needs at least {MIN_TOKEN_LEN} characters"
                ));
            }
            if token.len() > MAX_TOKEN_LEN {
                return Err(format!(
                    "line {number}: a token has at most {MAX_TOKEN_LEN} characters"
                ));
            }
            tokens.push(token.as_bytes().into());
        }
        if tokens.is_empty() {
            return Err("no token in the file (blank lines and # comments do not count)".into());
        }
        Ok(Self(tokens))
    }

    /// Whether `presented` equals one of the tokens. Every token is compared
    /// in full whatever matched before, so the time taken does not tell an
    /// attacker which token, or how much of one, was right.
    fn accepts(&self, presented: &[u8]) -> bool {
        let mut matched = false;
        for token in &self.0 {
            matched |= constant_time_eq(token, presented);
        }
        matched
    }
}

/// Compares `secret` with `presented` in time that depends only on their
/// lengths, never on where they differ.
fn constant_time_eq(secret: &[u8], presented: &[u8]) -> bool {
    let mut diff = u8::from(secret.len() != presented.len());
    for (i, &s) in secret.iter().enumerate() {
        let p = presented.get(i).copied().unwrap_or(0);
        diff |= std::hint::black_box(s ^ p);
    }
    diff == 0
}

/// Checks the bearer token of every request it sees; lets everything
/// through when no token file is configured.
#[derive(Clone, Debug)]
pub(crate) struct Authenticator {
    tokens: Option<TokenStore>,
}

impl tonic::service::Interceptor for Authenticator {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(tokens) = &self.tokens else {
            return Ok(request);
        };
        let presented = request
            .metadata()
            .get("authorization")
            .and_then(|value| bearer_token(value.as_bytes()));
        match presented {
            None => {
                tracing::debug!(peer = ?request.remote_addr(), "request without bearer token refused");
                Err(Status::unauthenticated("missing bearer token"))
            }
            Some(token) if tokens.accepts(token) => Ok(request),
            Some(_) => {
                tracing::debug!(peer = ?request.remote_addr(), "request with an invalid bearer token refused");
                Err(Status::unauthenticated("invalid bearer token"))
            }
        }
    }
}

/// The token of an `authorization: Bearer <token>` value (RFC 6750 §2.1;
/// the scheme name is case-insensitive).
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(BEARER.len())?;
    if !scheme.eq_ignore_ascii_case(BEARER) {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

fn load_tls(files: &TlsFiles) -> Result<ServerTlsConfig, String> {
    let cert = read_pem_file(&files.cert, "tls_cert")?;
    let chain =
        parse_certificates(&cert).map_err(|e| format!("tls_cert {}: {e}", files.cert.display()))?;
    let key = read_pem_file(&files.key, "tls_key")?;
    warn_if_world_readable(&files.key, "tls_key");
    PrivateKeyDer::from_pem_slice(&key).map_err(|e| {
        format!(
            "tls_key {}: no usable private key ({}); expected a PEM PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block",
            files.key.display(),
            pem_error(&e)
        )
    })?;
    let mut config = ServerTlsConfig::new()
        .identity(Identity::from_pem(&cert, &key))
        .timeout(HANDSHAKE_TIMEOUT);
    if let Some(path) = &files.client_ca {
        let bundle = read_pem_file(path, "tls_client_ca")?;
        parse_certificates(&bundle)
            .map_err(|e| format!("tls_client_ca {}: {e}", path.display()))?;
        config = config.client_ca_root(Certificate::from_pem(bundle));
    }
    // Let rustls build its configuration now, so a key that does not match
    // the certificate, or a CA it cannot use, fails at startup.
    tonic::transport::Server::builder()
        .tls_config(config.clone())
        .map_err(|e| {
            format!(
                "TLS setup from tls_cert {} and tls_key {} failed: {}",
                files.cert.display(),
                files.key.display(),
                error_chain(&e)
            )
        })?;
    tracing::debug!(certificates = chain, "TLS identity loaded");
    Ok(config)
}

fn read_pem_file(path: &Path, key: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {key} {}: {e}", path.display()))
}

/// Counts the certificates of a PEM bundle; at least one must be there.
fn parse_certificates(pem: &[u8]) -> Result<usize, String> {
    let mut count = 0;
    for item in CertificateDer::pem_slice_iter(pem) {
        item.map_err(|e| format!("invalid PEM ({})", pem_error(&e)))?;
        count += 1;
    }
    if count == 0 {
        return Err("no PEM CERTIFICATE block found".into());
    }
    Ok(count)
}

fn pem_error(e: &rustls_pki_types::pem::Error) -> String {
    use rustls_pki_types::pem::Error as E;
    match e {
        E::NoItemsFound => "no matching PEM block".into(),
        E::MissingSectionEnd { .. } => "a PEM block has no END line".into(),
        E::IllegalSectionStart { .. } => "a PEM BEGIN line is malformed".into(),
        E::Base64Decode(_) => "bad base64 in a PEM block".into(),
        other => format!("{other:?}"),
    }
}

/// An error and its causes, on one line.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Secrets other users can read are worth a warning, not a refusal: the
/// file may sit in a directory nobody else can enter.
fn warn_if_world_readable(path: &Path, key: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o004 != 0
    {
        tracing::warn!(
            file = %path.display(),
            "{key} is readable by every user of this host; chmod o-r it"
        );
    }
}

const BEARER: &[u8] = b"Bearer ";
/// Shorter tokens can be guessed; 16 random characters are about 95 bits.
const MIN_TOKEN_LEN: usize = 16;
/// Keeps a token well inside gRPC's default 8 KiB metadata limit.
const MAX_TOKEN_LEN: usize = 4_096;
/// A client that opens a connection and stalls its handshake is dropped
/// after this long, so it cannot hold a task and a socket forever.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0123456789abcdef-token-a";
    const B: &str = "0123456789abcdef-token-b";

    #[test]
    fn token_file_format() {
        let tokens = Tokens::parse(&format!("# rotation\n\n  {A}  \n#{B}\n{B}\n")).unwrap();
        assert_eq!(tokens.0.len(), 2);
        assert!(tokens.accepts(A.as_bytes()));
        assert!(tokens.accepts(B.as_bytes()));
        assert!(!tokens.accepts(b"0123456789abcdef-token-c"));
        assert!(!tokens.accepts(&A.as_bytes()[..A.len() - 1]));
        assert!(!tokens.accepts(format!("{A}x").as_bytes()));
        assert!(!tokens.accepts(b""));

        for (text, message) in [
            ("", "no token in the file"),
            ("# only a comment\n\n", "no token in the file"),
            ("short", "line 1: a token needs at least 16 characters"),
            (
                "# x\n0123456789abcdef ghijk",
                "line 2: a token is one word of visible ASCII",
            ),
            ("0123456789abcdéf-token", "visible ASCII"),
        ] {
            let err = Tokens::parse(text).err().unwrap();
            assert!(err.contains(message), "{text:?}: {err}");
            assert!(
                !err.contains("0123456789"),
                "the error echoes the token: {err}"
            );
        }
        let long = "x".repeat(MAX_TOKEN_LEN + 1);
        assert!(Tokens::parse(&long).is_err());
    }

    #[test]
    fn constant_time_compare() {
        let table: [(&[u8], &[u8], bool); 6] = [
            (b"abc", b"abc", true),
            (b"abc", b"abd", false),
            (b"abc", b"ab", false),
            (b"abc", b"abcd", false),
            (b"abc", b"", false),
            (b"\0\0", b"", false),
        ];
        for (secret, presented, equal) in table {
            assert_eq!(
                constant_time_eq(secret, presented),
                equal,
                "{secret:?} {presented:?}"
            );
        }
    }

    #[test]
    fn bearer_values() {
        let table: [(&[u8], Option<&[u8]>); 7] = [
            (b"Bearer abc", Some(b"abc")),
            (b"bearer abc", Some(b"abc")),
            (b"BEARER  abc ", Some(b"abc")),
            (b"Bearer ", None),
            (b"Bearer", None),
            (b"Basic YWxhZGRpbjpvcGVuc2VzYW1l", None),
            (b"abc", None),
        ];
        for (value, token) in table {
            assert_eq!(bearer_token(value), token, "{value:?}");
        }
    }

    #[test]
    fn interceptor_codes() {
        use tonic::service::Interceptor as _;

        let dir = std::env::temp_dir().join(format!("legato-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tokens");
        std::fs::write(&path, format!("{A}\n{B}\n")).unwrap();
        let store = TokenStore::load(&path).unwrap();
        let mut auth = Authenticator {
            tokens: Some(store.clone()),
        };
        let request = |value: Option<&str>| {
            let mut request = Request::new(());
            if let Some(value) = value {
                request
                    .metadata_mut()
                    .insert("authorization", value.parse().unwrap());
            }
            request
        };
        assert!(auth.call(request(Some(&format!("Bearer {A}")))).is_ok());
        assert!(auth.call(request(Some(&format!("Bearer {B}")))).is_ok());
        let err = auth.call(request(None)).unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
        assert_eq!(err.message(), "missing bearer token");
        let err = auth
            .call(request(Some("Bearer 0123456789abcdef-wrong")))
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
        assert_eq!(err.message(), "invalid bearer token");

        // Rotation: the file changes, a reload takes it.
        std::fs::write(&path, format!("{B}\n")).unwrap();
        assert_eq!(store.reload(), Ok(1));
        assert!(auth.call(request(Some(&format!("Bearer {A}")))).is_err());
        assert!(auth.call(request(Some(&format!("Bearer {B}")))).is_ok());
        // A broken file keeps the tokens in use.
        std::fs::write(&path, "# emptied\n").unwrap();
        assert!(store.reload().is_err());
        assert!(auth.call(request(Some(&format!("Bearer {B}")))).is_ok());

        let mut open = Authenticator { tokens: None };
        assert!(open.call(request(None)).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn tls_file_errors() {
        let dir = std::env::temp_dir().join(format!("legato-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "not a certificate\n").unwrap();
        let files = |cert: &Path, key: &Path| TlsFiles {
            cert: cert.to_owned(),
            key: key.to_owned(),
            client_ca: None,
        };
        let err = load_tls(&files(&dir.join("missing.pem"), &junk)).unwrap_err();
        assert!(err.starts_with("cannot read tls_cert"), "{err}");
        let err = load_tls(&files(&junk, &junk)).unwrap_err();
        assert!(err.contains("no PEM CERTIFICATE block found"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
