//! Parsing of the endpoint strings accepted by [`Client::connect`](crate::Client::connect).

use crate::Error;

/// Turns `"127.0.0.1:50051"` or `"http://127.0.0.1:50051"` into the URI to
/// dial, `"http://127.0.0.1:50051"`; with `tls`, a bare `host:port` becomes
/// `"https://host:port"`.
///
/// The scheme must agree with `tls`: `https://` without TLS settings, or
/// `http://` with them, is refused instead of silently dialling something
/// other than what was asked for. Other schemes are refused too.
pub(crate) fn normalize(endpoint: &str, tls: bool) -> Result<String, Error> {
    let invalid = |reason: &str| Error::InvalidEndpoint {
        endpoint: endpoint.to_owned(),
        reason: reason.to_owned(),
    };
    let trimmed = endpoint.trim();
    if trimmed.is_empty() {
        return Err(invalid("empty"));
    }
    let uri = match trimmed.split_once("://") {
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("http") => {
            if tls {
                return Err(invalid(
                    "TLS settings given for an http:// endpoint: use https://",
                ));
            }
            trimmed.to_owned()
        }
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("https") => {
            if !tls {
                return Err(invalid(
                    "https:// needs TLS settings (a CA certificate to trust)",
                ));
            }
            // tonic recognises TLS endpoints by the lower-case scheme.
            format!("https://{}", &trimmed["https://".len()..])
        }
        Some((scheme, _)) => return Err(invalid(&format!("unsupported scheme '{scheme}'"))),
        None if tls => format!("https://{trimmed}"),
        None => format!("http://{trimmed}"),
    };
    let parsed: tonic::transport::Uri = uri.parse().map_err(|_| invalid("not a valid URI"))?;
    let Some(authority) = parsed.authority() else {
        return Err(invalid("missing host"));
    };
    if authority.host().is_empty() {
        return Err(invalid("missing host"));
    }
    if authority.as_str().contains('@') {
        return Err(invalid("user info is not supported"));
    }
    // The URI parser keeps any text after the colon; only a number is a port.
    let has_port = authority.as_str().len() > authority.host().len();
    if has_port && authority.port_u16().is_none() {
        return Err(invalid("invalid port"));
    }
    if parsed.path() != "/" && !parsed.path().is_empty() {
        return Err(invalid("a path is not supported"));
    }
    Ok(uri.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted() {
        let table = [
            ("127.0.0.1:50051", "http://127.0.0.1:50051"),
            ("http://127.0.0.1:50051", "http://127.0.0.1:50051"),
            ("HTTP://127.0.0.1:50051", "HTTP://127.0.0.1:50051"),
            ("http://127.0.0.1:50051/", "http://127.0.0.1:50051"),
            ("  localhost:50051 ", "http://localhost:50051"),
            ("[::1]:50051", "http://[::1]:50051"),
            ("http://[::1]:50051", "http://[::1]:50051"),
            ("legatod", "http://legatod"),
        ];
        for (input, expected) in table {
            match normalize(input, false) {
                Ok(uri) => assert_eq!(uri, expected, "{input:?}"),
                Err(err) => panic!("{input:?} rejected: {err}"),
            }
        }
        let tls = [
            ("127.0.0.1:50051", "https://127.0.0.1:50051"),
            ("https://localhost:50051/", "https://localhost:50051"),
            ("HTTPS://[::1]:50051", "https://[::1]:50051"),
        ];
        for (input, expected) in tls {
            match normalize(input, true) {
                Ok(uri) => assert_eq!(uri, expected, "{input:?}"),
                Err(err) => panic!("{input:?} rejected: {err}"),
            }
        }
    }

    #[test]
    fn rejected() {
        let table = [
            ("", "empty"),
            ("   ", "empty"),
            (
                "https://127.0.0.1:50051",
                "https:// needs TLS settings (a CA certificate to trust)",
            ),
            ("unix:///run/legato.sock", "unsupported scheme 'unix'"),
            ("http://", "not a valid URI"),
            ("127.0.0.1:notaport", "invalid port"),
            ("127.0.0.1:70000", "invalid port"),
            ("http://127.0.0.1:50051/legato", "a path is not supported"),
            ("user@127.0.0.1:50051", "user info is not supported"),
            ("bad host:1", "not a valid URI"),
        ];
        for (input, reason) in table {
            match normalize(input, false) {
                Ok(uri) => panic!("{input:?} accepted as {uri}"),
                Err(Error::InvalidEndpoint {
                    endpoint,
                    reason: got,
                }) => {
                    assert_eq!(endpoint, input);
                    assert_eq!(got, reason, "{input:?}");
                }
                Err(other) => panic!("{input:?}: unexpected error {other}"),
            }
        }
        match normalize("http://127.0.0.1:50051", true) {
            Err(Error::InvalidEndpoint { reason, .. }) => {
                assert_eq!(
                    reason,
                    "TLS settings given for an http:// endpoint: use https://"
                );
            }
            other => panic!("http:// with TLS: {other:?}"),
        }
    }
}
