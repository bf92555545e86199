//! Compiles `legato/v1/*.proto` with protox (pure Rust, no system protoc)
//! and generates prost/tonic code from the resulting descriptor set. The
//! encoded descriptor set is kept for gRPC server reflection.

use std::{env, fs, path::PathBuf};

use prost::Message;

const PROTOS: &[&str] = &[
    "legato/v1/types.proto",
    "legato/v1/events.proto",
    "legato/v1/media_plane.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let fds = protox::compile(PROTOS, ["."])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out.join("legato_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // Malformed requests are INVALID_ARGUMENT, not INTERNAL (see codec.rs).
        .codec_path("crate::codec::LegatoCodec")
        .compile_fds(fds)?;
    Ok(())
}
