#!/usr/bin/env bash
# Runs the whole legato test suite on a fresh machine with only the Rust
# toolchain: installs the system tools the tests use as independent peers
# (ffmpeg, sox with MP3, multimon-ng, espeak-ng, Python grpcio, moto's S3 server, libspandsp and libopus for comparison tests)
# when they are missing, then runs
# formatting, lint and every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v ffmpeg >/dev/null 2>&1 || need_apt+=(ffmpeg)
command -v sox >/dev/null 2>&1 || need_apt+=(sox)
# sox reading MP3 (the recording tests check files with it).
sox -h 2>/dev/null | grep -q "FILE FORMATS:.* mp3 " || need_apt+=(libsox-fmt-mp3)
# multimon-ng: an independent DTMF decoder for the SendDigits test.
command -v multimon-ng >/dev/null 2>&1 || need_apt+=(multimon-ng)
command -v espeak-ng >/dev/null 2>&1 || need_apt+=(espeak-ng)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3 python3-pip)
# spandsp is the DTMF detector FreeSWITCH uses; a dsp test compares against it.
[ -f /usr/include/spandsp.h ] || need_apt+=(libspandsp-dev)
# libopus for the (ignored) Opus encoder timing comparison, test time only.
[ -f /usr/include/opus/opus.h ] || need_apt+=(libopus-dev)
command -v cc >/dev/null 2>&1 || need_apt+=(gcc)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "test.sh: installing ${need_apt[*]}" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
if ! python3 -c "import grpc, grpc_tools, grpc_health, grpc_reflection" >/dev/null 2>&1; then
  echo "test.sh: installing grpcio, grpcio-tools, grpcio-health-checking, grpcio-reflection from PyPI" >&2
  python3 -m pip install -q grpcio grpcio-tools grpcio-health-checking grpcio-reflection 2>/dev/null \
    || python3 -m pip install -q --break-system-packages grpcio grpcio-tools grpcio-health-checking grpcio-reflection
fi
# moto's S3 server: the object storage the recording upload test talks to.
if ! python3 -c "import moto.server, flask" >/dev/null 2>&1; then
  echo "test.sh: installing moto[server] from PyPI" >&2
  python3 -m pip install -q 'moto[server]' 2>/dev/null \
    || python3 -m pip install -q --break-system-packages 'moto[server]'
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The end-to-end tests run the real legatod binary: build it first.
cargo build --workspace --bins --locked
cargo test --workspace --locked "$@"
# Benches are compiled and run once in test mode so they cannot rot.
cargo test --workspace --locked --benches -q
