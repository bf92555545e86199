//! The legato.v1 gRPC API: Rust types and tonic stubs generated from the
//! `.proto` files in `legato/v1/` of this crate.
//!
//! The `.proto` files are the reference: every RPC, field and error code is
//! documented there. This crate only compiles them (with protox, so no
//! system `protoc` is needed) and exposes the encoded descriptor set for
//! gRPC server reflection.
#![forbid(unsafe_code)]

pub mod codec;

/// Generated types and service stubs of package `legato.v1`.
pub mod v1 {
    #![allow(
        missing_docs,
        unreachable_pub,
        unused_qualifications,
        clippy::all,
        clippy::use_self,
        reason = "generated code"
    )]
    tonic::include_proto!("legato.v1");
}

/// Encoded `FileDescriptorSet` of the legato.v1 API, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/legato_descriptor.bin"));

/// Directory holding the `.proto` sources, for clients in other languages.
pub const PROTO_DIR: &str = env!("CARGO_MANIFEST_DIR");
