//! Parsing of the endpoint strings accepted by [`Client::connect`](crate::Client::connect).

use crate::Error;

/// Turns `"127.0.0.1:50051"` or `"http://127.0.0.1:50051"` into the URI to
/// dial, `"http://127.0.0.1:50051"`.
///
/// Only plain-text HTTP/2 is supported: an `https://` endpoint (or any other
/// scheme) is refused instead of silently dialling without TLS.
pub(crate) fn normalize(endpoint: &str) -> Result<String, Error> {
    let invalid = |reason: &str| Error::InvalidEndpoint {
        endpoint: endpoint.to_owned(),
        reason: reason.to_owned(),
    };
    let trimmed = endpoint.trim();
    if trimmed.is_empty() {
        return Err(invalid("empty"));
    }
    let uri = match trimmed.split_once("://") {
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("http") => trimmed.to_owned(),
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("https") => {
            return Err(invalid("TLS is not supported, use http://"));
        }
        Some((scheme, _)) => return Err(invalid(&format!("unsupported scheme '{scheme}'"))),
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
            match normalize(input) {
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
                "TLS is not supported, use http://",
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
            match normalize(input) {
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
    }
}
