//! legato benchmarks: criterion micro-benches and the packet-rate load generator.
