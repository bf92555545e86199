//! Errors of engine operations, mapped to gRPC status codes in one place
//! (`control::status`).

use crate::sdp::SdpError;

/// Why an operation on a session, leg or route failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum EngineError {
    /// The request is malformed (bad SDP, bad id, bad value).
    #[error("{0}")]
    InvalidArgument(String),
    /// A named object does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A client-chosen id is taken.
    #[error("{0}")]
    AlreadyExists(String),
    /// The object is not in a state that allows the operation.
    #[error("{0}")]
    FailedPrecondition(String),
    /// Ports, legs or queues ran out.
    #[error("{0}")]
    ResourceExhausted(String),
    /// An operating-system call failed unexpectedly.
    #[error("{0}")]
    Internal(String),
}

impl From<SdpError> for EngineError {
    fn from(e: SdpError) -> Self {
        Self::InvalidArgument(format!("invalid SDP: {e}"))
    }
}
