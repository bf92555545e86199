//! The one place where engine errors become gRPC statuses.

use tonic::Status;

use crate::session::EngineError;

impl From<EngineError> for Status {
    fn from(e: EngineError) -> Self {
        let message = e.to_string();
        match e {
            EngineError::InvalidArgument(_) => Self::invalid_argument(message),
            EngineError::NotFound(_) => Self::not_found(message),
            EngineError::AlreadyExists(_) => Self::already_exists(message),
            EngineError::FailedPrecondition(_) => Self::failed_precondition(message),
            EngineError::ResourceExhausted(_) => Self::resource_exhausted(message),
            EngineError::Internal(_) => Self::internal(message),
        }
    }
}

/// The status of an RPC that is declared in legato.v1 but not built yet.
pub(crate) fn unimplemented(rpc: &str, what: &str) -> Status {
    Status::unimplemented(format!(
        "{rpc}: {what} is not built in this version of legatod (built: sessions, legs, SDP, routing between same-codec legs, events)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn codes_table() {
        let cases = [
            (
                EngineError::InvalidArgument("a".into()),
                Code::InvalidArgument,
            ),
            (EngineError::NotFound("a".into()), Code::NotFound),
            (EngineError::AlreadyExists("a".into()), Code::AlreadyExists),
            (
                EngineError::FailedPrecondition("a".into()),
                Code::FailedPrecondition,
            ),
            (
                EngineError::ResourceExhausted("a".into()),
                Code::ResourceExhausted,
            ),
            (EngineError::Internal("a".into()), Code::Internal),
        ];
        for (error, code) in cases {
            let status = Status::from(error);
            assert_eq!(status.code(), code);
            assert_eq!(status.message(), "a");
        }
        assert_eq!(
            unimplemented("StreamAudio", "the audio fork").code(),
            Code::Unimplemented
        );
    }
}
