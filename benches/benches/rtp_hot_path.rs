//! Criterion benches of legatod's per-packet relay path, piece by piece:
//! RTP header parse, the copy-and-rewrite a forwarded packet gets, the
//! RTCP demux and validation, and the leg lookup (slab index as the shard
//! does, against hash maps).
//!
//! `cargo bench -p legato-benches --bench rtp_hot_path` measures; `cargo
//! test --benches` runs every bench once so they cannot rot.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use legato_benches::wire::{self, PACKET_LEN};
use legato_daemon::internals::{RtpHeader, is_rtcp, rewrite_header, valid_rtcp};

/// A 172-byte PCMU probe, as the load generator sends it.
fn rtp_packet() -> [u8; PACKET_LEN] {
    let mut p = [0u8; PACKET_LEN];
    wire::build(&mut p, 3, 1000, 0x1234_5678);
    wire::stamp(&mut p, 42);
    p
}

/// A receiver report with one report block (RFC 3550 §6.4.2), 32 bytes.
fn rtcp_rr() -> [u8; 32] {
    let mut p = [0u8; 32];
    p[0] = 0x81; // V=2, RC=1
    p[1] = 201; // RR
    p[2..4].copy_from_slice(&7u16.to_be_bytes()); // length in words - 1
    p[4..8].copy_from_slice(&0xabcd_0001u32.to_be_bytes());
    p
}

fn header(c: &mut Criterion) {
    let packet = rtp_packet();
    let rr = rtcp_rr();
    let mut g = c.benchmark_group("rtp");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse", |b| {
        b.iter(|| RtpHeader::parse(black_box(&packet)));
    });
    let mut out = packet;
    g.bench_function("rewrite", |b| {
        let mut seq = 0u16;
        b.iter(|| {
            seq = seq.wrapping_add(1);
            rewrite_header(
                black_box(&mut out),
                false,
                0,
                seq,
                u32::from(seq) * 160,
                0x5555,
            );
        });
    });
    // What the shard does per forwarded packet: copy into a transmit slot,
    // then rewrite the header there.
    let mut slot = [0u8; 1500];
    g.bench_function("copy_and_rewrite_172B", |b| {
        let mut seq = 0u16;
        b.iter(|| {
            seq = seq.wrapping_add(1);
            let buf = &mut slot[..PACKET_LEN];
            buf.copy_from_slice(black_box(&packet));
            rewrite_header(buf, false, 0, seq, u32::from(seq) * 160, 0x5555);
            black_box(&slot);
        });
    });
    g.bench_function("is_rtcp", |b| {
        b.iter(|| (is_rtcp(black_box(&packet)), is_rtcp(black_box(&rr))));
    });
    g.bench_function("valid_rtcp_rr", |b| {
        b.iter(|| valid_rtcp(black_box(&rr)));
    });
    g.finish();
}

/// A leg's worth of state the packet path touches, roughly.
#[derive(Clone, Copy, Debug, Default)]
struct LegState {
    sink: u32,
    seq: u16,
    packets: u64,
}

fn lookup(c: &mut Criterion) {
    let mut g = c.benchmark_group("leg_lookup");
    g.throughput(Throughput::Elements(1));
    for legs in [200usize, 4000] {
        let slab: Vec<Option<LegState>> = (0..legs)
            .map(|i| {
                Some(LegState {
                    sink: (i ^ 1) as u32,
                    ..LegState::default()
                })
            })
            .collect();
        let by_token: HashMap<u64, LegState> = slab
            .iter()
            .enumerate()
            .map(|(i, s)| (i as u64, s.unwrap_or_default()))
            .collect();
        let by_id: HashMap<Arc<str>, u32> = (0..legs)
            .map(|i| (Arc::from(format!("leg-{i:08x}").as_str()), i as u32))
            .collect();
        let ids: Vec<Arc<str>> = (0..legs)
            .map(|i| Arc::from(format!("leg-{i:08x}").as_str()))
            .collect();
        // Visit legs in a scattered order, as packets of many calls arrive.
        let order: Vec<usize> = (0..legs).map(|i| (i * 7919) % legs).collect();
        let mut slab = slab;
        g.bench_function(BenchmarkId::new("slab_index_mut", legs), |b| {
            let mut k = 0;
            b.iter(|| {
                let i = order[k];
                k = (k + 1) % legs;
                if let Some(Some(leg)) = slab.get_mut(i) {
                    leg.packets += 1;
                    leg.seq = leg.seq.wrapping_add(1);
                    black_box(leg.sink);
                }
            });
        });
        let mut by_token = by_token;
        g.bench_function(BenchmarkId::new("hashmap_u64_get_mut", legs), |b| {
            let mut k = 0;
            b.iter(|| {
                let i = order[k] as u64;
                k = (k + 1) % legs;
                if let Some(leg) = by_token.get_mut(&i) {
                    leg.packets += 1;
                    leg.seq = leg.seq.wrapping_add(1);
                    black_box(leg.sink);
                }
            });
        });
        g.bench_function(BenchmarkId::new("hashmap_str_id", legs), |b| {
            let mut k = 0;
            b.iter(|| {
                let id = &ids[order[k]];
                k = (k + 1) % legs;
                black_box(by_id.get(&**id));
            });
        });
    }
    g.finish();
}

criterion_group!(benches, header, lookup);
criterion_main!(benches);
