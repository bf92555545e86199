//! Connection settings: [`ClientBuilder`] with TLS ([`Tls`]) and a bearer
//! token, for daemons that ask for them.

use std::fmt;

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use crate::{Client, Error};

/// TLS settings for a connection, from PEM data (see
/// [`ClientBuilder::tls`]).
///
/// The daemon's certificate must chain to [`Tls::ca_pem`]'s CA and name the
/// host of the endpoint (or [`Tls::domain_name`]). A daemon with mutual TLS
/// also wants a client certificate: [`Tls::identity_pem`].
///
/// The handshake uses rustls with the ring provider. A program whose other
/// dependencies enable a second rustls provider must pick one with
/// `rustls::crypto::CryptoProvider::install_default` before connecting.
///
/// ```
/// use legato_client::Tls;
/// # fn pem() -> Vec<u8> { Vec::new() }
/// let tls = Tls::new()
///     .ca_pem(pem())
///     .identity_pem(pem(), pem())
///     .domain_name("legatod.internal");
/// ```
#[derive(Clone, Default)]
pub struct Tls {
    ca: Option<Vec<u8>>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
    domain: Option<String>,
}

impl Tls {
    /// No settings yet; a CA is required before connecting.
    pub fn new() -> Self {
        Self::default()
    }

    /// The CA certificate(s) to trust, PEM (a bundle may hold several).
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca = Some(pem.into());
        self
    }

    /// The client certificate chain and its private key, PEM, for a daemon
    /// that asks for client certificates (mutual TLS).
    pub fn identity_pem(mut self, cert: impl Into<Vec<u8>>, key: impl Into<Vec<u8>>) -> Self {
        self.identity = Some((cert.into(), key.into()));
        self
    }

    /// The name the daemon's certificate must carry, when it differs from
    /// the endpoint's host (e.g. connecting by IP address to a certificate
    /// issued for a DNS name).
    pub fn domain_name(mut self, name: impl Into<String>) -> Self {
        self.domain = Some(name.into());
        self
    }

    /// Checks the PEM data and builds tonic's configuration.
    fn into_config(self) -> Result<ClientTlsConfig, Error> {
        let ca = self.ca.ok_or_else(|| {
            credentials("TLS needs a CA certificate to trust (the daemon's CA, PEM)")
        })?;
        check_certificates(&ca, "CA certificate")?;
        let mut config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
        if let Some((cert, key)) = self.identity {
            check_certificates(&cert, "client certificate")?;
            PrivateKeyDer::from_pem_slice(&key)
                .map_err(|_| credentials("client key: no PEM private key found"))?;
            config = config.identity(Identity::from_pem(cert, key));
        }
        if let Some(domain) = self.domain {
            if domain.is_empty() {
                return Err(credentials("the TLS domain name is empty"));
            }
            config = config.domain_name(domain);
        }
        Ok(config.timeout(HANDSHAKE_TIMEOUT))
    }
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // No key material in logs.
        f.debug_struct("Tls")
            .field("ca", &self.ca.is_some())
            .field("client_identity", &self.identity.is_some())
            .field("domain", &self.domain)
            .finish()
    }
}

/// How to reach a daemon: the endpoint, TLS settings and a bearer token.
/// From [`Client::builder`]; [`Client::connect`] is the plain shortcut.
///
/// ```no_run
/// use legato_client::{Client, Tls};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let ca = std::fs::read("/etc/legato/ca.pem")?;
/// let client = Client::builder("https://legatod.internal:50051")
///     .tls(Tls::new().ca_pem(ca))
///     .bearer_token("s3cr3t-t0ken-from-a-file")
///     .connect()
///     .await?;
/// println!("{} sessions", client.list_sessions().await?.len());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ClientBuilder {
    endpoint: String,
    tls: Option<Tls>,
    token: Option<String>,
}

impl ClientBuilder {
    pub(crate) fn new(endpoint: String) -> Self {
        Self {
            endpoint,
            tls: None,
            token: None,
        }
    }

    /// Speaks TLS to the daemon. An endpoint without a scheme then means
    /// `https://`; an `http://` endpoint is refused.
    pub fn tls(mut self, tls: Tls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Sends `authorization: Bearer <token>` with every call, streams
    /// included. The token is one word of visible ASCII.
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Connects, failing with [`Error::InvalidEndpoint`] for an unusable
    /// endpoint, [`Error::InvalidCredentials`] for bad TLS data or token,
    /// and [`Error::Connect`] when no connection (TLS handshake included)
    /// is made within 5 seconds.
    pub async fn connect(self) -> Result<Client, Error> {
        let token = self.token.as_deref().map(bearer_value).transpose()?;
        let tls = self.tls.map(Tls::into_config).transpose()?;
        Client::connect_with(&self.endpoint, tls, BearerAuth(token)).await
    }
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("endpoint", &self.endpoint)
            .field("tls", &self.tls)
            .field("bearer_token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Adds the bearer token to each outgoing request.
#[derive(Clone)]
pub(crate) struct BearerAuth(Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for BearerAuth {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

impl BearerAuth {
    pub(crate) fn none() -> Self {
        Self(None)
    }
}

impl fmt::Debug for BearerAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "BearerAuth(<redacted>)"
        } else {
            "BearerAuth(none)"
        })
    }
}

fn bearer_value(token: &str) -> Result<MetadataValue<Ascii>, Error> {
    if token.is_empty() {
        return Err(credentials("the bearer token is empty"));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(credentials(
            "the bearer token must be one word of visible ASCII characters",
        ));
    }
    let mut value: MetadataValue<Ascii> = format!("Bearer {token}")
        .parse()
        .map_err(|_| credentials("the bearer token is not a valid header value"))?;
    // Keeps it out of HPACK's dynamic table and out of debug output.
    value.set_sensitive(true);
    Ok(value)
}

fn check_certificates(pem: &[u8], what: &str) -> Result<(), Error> {
    let mut count = 0;
    for item in CertificateDer::pem_slice_iter(pem) {
        item.map_err(|_| credentials(&format!("{what}: invalid PEM")))?;
        count += 1;
    }
    if count == 0 {
        return Err(credentials(&format!(
            "{what}: no PEM CERTIFICATE block found"
        )));
    }
    Ok(())
}

fn credentials(reason: &str) -> Error {
    Error::InvalidCredentials {
        reason: reason.to_owned(),
    }
}

/// How long the TLS handshake may take.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_values() {
        let value = bearer_value("abc-123_XYZ").unwrap();
        assert_eq!(value.to_str().unwrap(), "Bearer abc-123_XYZ");
        assert!(value.is_sensitive());
        for bad in ["", "two words", "tab\there", "é"] {
            let err = bearer_value(bad).unwrap_err();
            assert_eq!(err.code(), crate::Code::InvalidArgument, "{bad:?}");
            assert!(!err.to_string().contains(bad) || bad.is_empty(), "{err}");
        }
    }

    #[test]
    fn tls_needs_a_ca_and_real_pem() {
        let err = Tls::new().into_config().unwrap_err();
        assert!(err.to_string().contains("needs a CA certificate"), "{err}");
        let err = Tls::new().ca_pem("junk").into_config().unwrap_err();
        assert!(
            err.to_string()
                .contains("CA certificate: no PEM CERTIFICATE block found"),
            "{err}"
        );
    }

    #[test]
    fn debug_hides_secrets() {
        let builder = ClientBuilder::new("https://x".into())
            .bearer_token("very-secret-token")
            .tls(Tls::new().identity_pem("cert", "super-secret-key"));
        let text = format!("{builder:?}");
        assert!(!text.contains("very-secret-token"), "{text}");
        assert!(!text.contains("super-secret-key"), "{text}");
    }
}
