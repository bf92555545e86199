//! The error type of the client and the gRPC status codes it carries.

use std::{error::Error as StdError, fmt};

/// Everything a [`Client`](crate::Client) call can fail with.
///
/// Match on [`Error::code`] to react to a specific condition without
/// depending on tonic:
///
/// ```
/// # use legato_client::{Code, Error};
/// fn is_gone(err: &Error) -> bool {
///     err.code() == Code::NotFound
/// }
/// ```
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The endpoint string is not a usable `http://host:port` or
    /// `https://host:port` address.
    #[error("invalid endpoint '{endpoint}': {reason}")]
    InvalidEndpoint {
        /// The endpoint as given by the caller.
        endpoint: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The TLS settings or the bearer token given to
    /// [`ClientBuilder`](crate::ClientBuilder) are unusable (no CA, a file
    /// that is not PEM, a token with spaces...). The token is never quoted.
    #[error("invalid credentials: {reason}")]
    InvalidCredentials {
        /// What is wrong.
        reason: String,
    },
    /// The connection to the daemon could not be established.
    #[error("cannot connect to {endpoint}")]
    Connect {
        /// The normalised endpoint URI that was dialled.
        endpoint: String,
        /// The transport error, with its cause chain.
        #[source]
        source: Box<dyn StdError + Send + Sync + 'static>,
    },
    /// The daemon (or the transport below the call) answered with a
    /// non-OK gRPC status.
    #[error("{}", status_text(*.code, .message))]
    Status {
        /// The gRPC status code, e.g. [`Code::NotFound`].
        code: Code,
        /// The message the daemon gave; may be empty.
        message: String,
    },
    /// The daemon answered OK but left out a field the API promises, e.g.
    /// the `leg` of a `GetLegResponse`.
    #[error("malformed reply: missing {0}")]
    MissingField(&'static str),
}

impl Error {
    /// The gRPC code that best describes the error.
    ///
    /// [`Error::Status`] returns its own code. A failed connection counts as
    /// [`Code::Unavailable`], a bad endpoint string as
    /// [`Code::InvalidArgument`], unusable TLS settings or token as
    /// [`Code::InvalidArgument`] too, and a malformed reply as
    /// [`Code::Internal`]. A token the daemon refuses is a
    /// [`Code::Unauthenticated`] status.
    pub fn code(&self) -> Code {
        match self {
            Self::InvalidEndpoint { .. } | Self::InvalidCredentials { .. } => Code::InvalidArgument,
            Self::Connect { .. } => Code::Unavailable,
            Self::Status { code, .. } => *code,
            Self::MissingField(_) => Code::Internal,
        }
    }

    /// The daemon's message for [`Error::Status`]; `None` for errors raised
    /// on the client side.
    pub fn status_message(&self) -> Option<&str> {
        match self {
            Self::Status { message, .. } => Some(message),
            _ => None,
        }
    }

    /// Converts a tonic status; kept crate-private so tonic stays out of the
    /// public API.
    ///
    /// A status made on the client side from a transport failure (e.g. a
    /// TLS alert from a daemon that refused the client certificate) carries
    /// its cause; the cause's text is appended so the message says what
    /// happened instead of just "transport error".
    pub(crate) fn from_status(status: tonic::Status) -> Self {
        let mut message = status.message().to_owned();
        let mut source = StdError::source(&status);
        while let Some(cause) = source {
            let text = cause.to_string();
            if !text.is_empty() && !message.contains(&text) {
                if !message.is_empty() {
                    message.push_str(": ");
                }
                message.push_str(&text);
            }
            source = cause.source();
        }
        Self::Status {
            code: Code::from_tonic(status.code()),
            message,
        }
    }
}

/// A gRPC status code (the canonical codes of `google.rpc.Code`, without
/// `OK`), in numeric order.
///
/// See `proto/legato/v1/media_plane.proto` for what each code means for each
/// RPC. [`Display`](fmt::Display) prints the canonical upper-case name, e.g.
/// `NOT_FOUND`.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    /// The operation was cancelled, typically by the caller.
    Cancelled,
    /// Unknown error, e.g. a status without a recognised code.
    Unknown,
    /// Malformed request, bad SDP, unknown codec or enum value.
    InvalidArgument,
    /// The deadline expired before the operation completed.
    DeadlineExceeded,
    /// No such session, leg, conference, playback or recording.
    NotFound,
    /// A client-chosen id is already taken.
    AlreadyExists,
    /// The caller is not allowed to do this.
    PermissionDenied,
    /// No free media ports, or a leg/session limit was reached.
    ResourceExhausted,
    /// The object is in the wrong state for the operation.
    FailedPrecondition,
    /// The operation was aborted, e.g. by a concurrency conflict.
    Aborted,
    /// A value is outside the valid range, e.g. an event sequence number
    /// older than the replay window.
    OutOfRange,
    /// The RPC is declared in the API but not built in this daemon.
    Unimplemented,
    /// An internal error of the daemon (a bug).
    Internal,
    /// The daemon cannot be reached or is shutting down.
    Unavailable,
    /// Unrecoverable data loss or corruption.
    DataLoss,
    /// The request lacks valid credentials.
    Unauthenticated,
}

impl Code {
    /// The canonical upper-case name, e.g. `"NOT_FOUND"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cancelled => "CANCELLED",
            Self::Unknown => "UNKNOWN",
            Self::InvalidArgument => "INVALID_ARGUMENT",
            Self::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Self::NotFound => "NOT_FOUND",
            Self::AlreadyExists => "ALREADY_EXISTS",
            Self::PermissionDenied => "PERMISSION_DENIED",
            Self::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Self::FailedPrecondition => "FAILED_PRECONDITION",
            Self::Aborted => "ABORTED",
            Self::OutOfRange => "OUT_OF_RANGE",
            Self::Unimplemented => "UNIMPLEMENTED",
            Self::Internal => "INTERNAL",
            Self::Unavailable => "UNAVAILABLE",
            Self::DataLoss => "DATA_LOSS",
            Self::Unauthenticated => "UNAUTHENTICATED",
        }
    }

    fn from_tonic(code: tonic::Code) -> Self {
        match code {
            tonic::Code::Cancelled => Self::Cancelled,
            tonic::Code::InvalidArgument => Self::InvalidArgument,
            tonic::Code::DeadlineExceeded => Self::DeadlineExceeded,
            tonic::Code::NotFound => Self::NotFound,
            tonic::Code::AlreadyExists => Self::AlreadyExists,
            tonic::Code::PermissionDenied => Self::PermissionDenied,
            tonic::Code::ResourceExhausted => Self::ResourceExhausted,
            tonic::Code::FailedPrecondition => Self::FailedPrecondition,
            tonic::Code::Aborted => Self::Aborted,
            tonic::Code::OutOfRange => Self::OutOfRange,
            tonic::Code::Unimplemented => Self::Unimplemented,
            tonic::Code::Internal => Self::Internal,
            tonic::Code::Unavailable => Self::Unavailable,
            tonic::Code::DataLoss => Self::DataLoss,
            tonic::Code::Unauthenticated => Self::Unauthenticated,
            // An error status with code OK makes no sense; treat it as
            // unknown rather than pretend the call succeeded.
            tonic::Code::Ok | tonic::Code::Unknown => Self::Unknown,
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn status_text(code: Code, message: &str) -> String {
    if message.is_empty() {
        code.to_string()
    } else {
        format!("{code}: {message}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_every_tonic_code() {
        use tonic::Code as T;

        let table = [
            (T::Ok, Code::Unknown, "UNKNOWN"),
            (T::Cancelled, Code::Cancelled, "CANCELLED"),
            (T::Unknown, Code::Unknown, "UNKNOWN"),
            (
                T::InvalidArgument,
                Code::InvalidArgument,
                "INVALID_ARGUMENT",
            ),
            (
                T::DeadlineExceeded,
                Code::DeadlineExceeded,
                "DEADLINE_EXCEEDED",
            ),
            (T::NotFound, Code::NotFound, "NOT_FOUND"),
            (T::AlreadyExists, Code::AlreadyExists, "ALREADY_EXISTS"),
            (
                T::PermissionDenied,
                Code::PermissionDenied,
                "PERMISSION_DENIED",
            ),
            (
                T::ResourceExhausted,
                Code::ResourceExhausted,
                "RESOURCE_EXHAUSTED",
            ),
            (
                T::FailedPrecondition,
                Code::FailedPrecondition,
                "FAILED_PRECONDITION",
            ),
            (T::Aborted, Code::Aborted, "ABORTED"),
            (T::OutOfRange, Code::OutOfRange, "OUT_OF_RANGE"),
            (T::Unimplemented, Code::Unimplemented, "UNIMPLEMENTED"),
            (T::Internal, Code::Internal, "INTERNAL"),
            (T::Unavailable, Code::Unavailable, "UNAVAILABLE"),
            (T::DataLoss, Code::DataLoss, "DATA_LOSS"),
            (T::Unauthenticated, Code::Unauthenticated, "UNAUTHENTICATED"),
        ];
        for (tonic_code, code, name) in table {
            let err = Error::from_status(tonic::Status::new(tonic_code, "boom"));
            assert_eq!(err.code(), code, "{tonic_code:?}");
            assert_eq!(err.to_string(), format!("{name}: boom"));
            assert_eq!(err.status_message(), Some("boom"));
        }
    }

    #[test]
    fn status_display() {
        let err = Error::from_status(tonic::Status::not_found("no such leg 'x'"));
        assert_eq!(err.to_string(), "NOT_FOUND: no such leg 'x'");
        assert!(matches!(
            err,
            Error::Status {
                code: Code::NotFound,
                ..
            }
        ));

        let err = Error::from_status(tonic::Status::unimplemented(""));
        assert_eq!(err.to_string(), "UNIMPLEMENTED");
    }

    #[test]
    fn transport_causes_are_kept() {
        let mut status = tonic::Status::unknown("transport error");
        status.set_source(std::sync::Arc::new(io_error(
            "received fatal alert: UnknownCA",
        )));
        let err = Error::from_status(status);
        assert_eq!(err.code(), Code::Unknown);
        assert_eq!(
            err.to_string(),
            "UNKNOWN: transport error: received fatal alert: UnknownCA"
        );
    }

    fn io_error(text: &str) -> std::io::Error {
        std::io::Error::other(text.to_owned())
    }

    #[test]
    fn client_side_codes() {
        let err = Error::MissingField("leg");
        assert_eq!(err.code(), Code::Internal);
        assert_eq!(err.status_message(), None);
        assert_eq!(err.to_string(), "malformed reply: missing leg");

        let err = Error::Connect {
            endpoint: "http://127.0.0.1:1".into(),
            source: "connection refused".into(),
        };
        assert_eq!(err.code(), Code::Unavailable);
        assert_eq!(err.to_string(), "cannot connect to http://127.0.0.1:1");
        assert_eq!(
            StdError::source(&err).map(ToString::to_string).as_deref(),
            Some("connection refused")
        );
    }
}
