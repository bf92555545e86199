//! The API from a second language: Python grpcio (from PyPI) compiles the
//! .proto files, creates a session and a leg, reads an event, checks health
//! and server reflection.

use std::process::Command;

use legato_tests::{Io, Options, daemon_or_skip};

#[test]
fn python_grpcio_client() {
    let check = Command::new("python3")
        .args([
            "-c",
            "import grpc, grpc_tools, grpc_health, grpc_reflection",
        ])
        .status();
    assert!(
        matches!(check, Ok(s) if s.success()),
        "python3 with grpcio, grpcio-tools, grpcio-health-checking and grpcio-reflection is needed: run scripts/test.sh, which installs them"
    );
    let daemon = daemon_or_skip!(Options::new(Io::Epoll));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/client_test.py");
    let output = Command::new("python3")
        .arg(script)
        .arg(daemon.grpc.to_string())
        .arg(legato_proto::PROTO_DIR)
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "python client failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("python client: ok"), "{stdout}");
}
