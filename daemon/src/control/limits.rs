//! The bounds on what a request may carry (documented at the top of
//! `media_plane.proto`), and quoting client input in error messages
//! without echoing it whole.

use tonic::Status;

/// Largest encoded request the server decodes.
pub(crate) const MAX_REQUEST: usize = 1024 * 1024;
/// Longest session id (and, later, conference id).
pub(crate) const MAX_ID_LEN: usize = 128;
/// Length of legato's leg ids.
pub(crate) const LEG_ID_LEN: usize = 20;
/// Largest remote SDP.
pub(crate) const MAX_SDP: usize = 16 * 1024;
/// Largest caller_id, display_name, number.
pub(crate) const MAX_METADATA_FIELD: usize = 256;
/// Largest custom_data a leg stores.
pub(crate) const MAX_CUSTOM_DATA: usize = 8 * 1024;
/// Most codec names in a request.
pub(crate) const MAX_CODECS: usize = 16;
/// Longest codec name.
pub(crate) const MAX_CODEC_NAME: usize = 32;
/// Longest HangupLeg reason.
pub(crate) const MAX_REASON: usize = 256;
/// Largest page of a listing, and the default one.
pub(crate) const MAX_PAGE: usize = 1000;
/// Page size when the request says 0.
pub(crate) const DEFAULT_PAGE: usize = 100;
/// Longest page token.
pub(crate) const MAX_PAGE_TOKEN: usize = 256;
/// A reply page stops before its encoded size passes this.
pub(crate) const MAX_PAGE_BYTES: usize = 1024 * 1024;
/// Characters of client input an error message quotes.
const QUOTE_CHARS: usize = 64;

/// `value` for an error message: whole when short, else its first
/// characters and its length, so a huge id cannot make a huge status.
pub(crate) fn quote(value: &str) -> String {
    if value.chars().count() <= QUOTE_CHARS {
        return format!("'{}'", value.escape_debug());
    }
    let head: String = value.chars().take(QUOTE_CHARS).collect();
    format!("'{}...' ({} bytes)", head.escape_debug(), value.len())
}

/// Fails when `value` is longer than `max` bytes.
pub(crate) fn at_most(value: &str, max: usize, field: &str) -> Result<(), Status> {
    if value.len() > max {
        return Err(Status::invalid_argument(format!(
            "{field} is {} bytes; at most {max}",
            value.len()
        )));
    }
    Ok(())
}

/// Checks a client-chosen session id.
pub(crate) fn session_id(id: &str) -> Result<(), Status> {
    if id.is_empty() || id.len() > MAX_ID_LEN || !id.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(Status::invalid_argument(format!(
            "session id {} must be 1 to {MAX_ID_LEN} printable ASCII characters without spaces",
            quote(id)
        )));
    }
    Ok(())
}

/// Page size of a listing request.
pub(crate) fn page_size(requested: u32) -> Result<usize, Status> {
    match requested as usize {
        0 => Ok(DEFAULT_PAGE),
        n @ 1..=MAX_PAGE => Ok(n),
        n => Err(Status::invalid_argument(format!(
            "page_size {n}: at most {MAX_PAGE}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_is_bounded() {
        assert_eq!(quote("abc"), "'abc'");
        let long = "x".repeat(1_000_000);
        let q = quote(&long);
        assert!(q.len() < 100, "{}", q.len());
        assert!(q.ends_with("(1000000 bytes)"));
        assert_eq!(quote("a\nb"), "'a\\nb'");
    }

    #[test]
    fn session_id_rules() {
        assert!(session_id("abc-123@host").is_ok());
        assert!(session_id("has space").is_err());
        assert!(session_id(&"a".repeat(129)).is_err());
        assert!(session_id("tab\t").is_err());
        assert!(session_id("").is_err());
        let e = session_id(&"b".repeat(4 << 20)).unwrap_err();
        assert!(e.message().len() < 300);
    }

    #[test]
    fn page_sizes() {
        assert_eq!(page_size(0).unwrap(), DEFAULT_PAGE);
        assert_eq!(page_size(1000).unwrap(), 1000);
        assert!(page_size(1001).is_err());
    }
}
