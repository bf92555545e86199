//! legato's benchmarks: criterion micro-benches of the per-packet hot path
//! (`benches/`) and the packet-rate load generator `legato-loadgen`
//! (`src/bin/`), whose pieces live in this library so the binary stays thin.
//!
//! The load generator sets up bridged calls through a running `legatod`
//! (or through the bare [`floor`] relay, the kernel floor every legatod
//! figure is quoted against), sends 20 ms PCMU RTP both ways at real-time
//! pace from a few batched sockets ([`generator`]), and measures loss,
//! duplicates, reordering, one-way latency ([`histogram`]) and the CPU and
//! memory of the process under test from `/proc` ([`procfs`]). See
//! `benches/README.md` for how to run it and what each figure means.
//!
//! What it deliberately does not do: send anywhere but loopback, run
//! unbounded (every run has a fixed duration), or assert targets: tests only
//! check that the tools run and report sane numbers.

pub mod floor;
pub mod generator;
pub mod histogram;
pub mod kind;
pub mod latency;
pub mod playback;
pub mod plot;
pub mod procfs;
pub mod recording;
pub mod report;
pub mod setup;
pub mod stall;
pub mod target;
pub mod wire;
