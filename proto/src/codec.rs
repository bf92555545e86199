//! The gRPC codec of the legato.v1 stubs: prost encoding, with one change.
//!
//! A request that does not decode (truncated or malformed protobuf, a
//! string field that is not UTF-8) is the caller's mistake, so it is
//! answered `INVALID_ARGUMENT`. tonic's stock prost codec answers
//! `INTERNAL`, which the legato.v1 API reserves for bugs in legatod.
//!
//! The generated client shares the codec, so a response that does not
//! decode also reads as `INVALID_ARGUMENT` there; with matching versions
//! of client and daemon that cannot happen.

use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::ProstCodec;

/// [`ProstCodec`] whose decode errors are `INVALID_ARGUMENT`.
#[derive(Debug, Clone, Default)]
pub struct LegatoCodec<T, U> {
    inner: ProstCodec<T, U>,
}

impl<T, U> LegatoCodec<T, U> {
    /// A codec (what the generated stubs call).
    pub fn new() -> Self {
        Self {
            inner: ProstCodec::new(),
        }
    }
}

impl<T, U> Codec for LegatoCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = <ProstCodec<T, U> as Codec>::Encoder;
    type Decoder = LegatoDecoder<<ProstCodec<T, U> as Codec>::Decoder>;

    fn encoder(&mut self) -> Self::Encoder {
        self.inner.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        LegatoDecoder(self.inner.decoder())
    }
}

/// A prost decoder whose errors are `INVALID_ARGUMENT`.
#[derive(Debug)]
pub struct LegatoDecoder<D>(D);

impl<D: Decoder<Error = Status>> Decoder for LegatoDecoder<D> {
    type Item = D::Item;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
        self.0.decode(buf).map_err(|status| {
            Status::invalid_argument(format!(
                "request is not a valid protobuf message: {}",
                status.message()
            ))
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}
