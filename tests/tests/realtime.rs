//! legatod with `--realtime-priority`: its shard threads run under
//! SCHED_FIFO when the process may (root or CAP_SYS_NICE), legatod keeps
//! running at normal priority when it may not, and relaying works either
//! way.

use std::time::Duration;

use legato_tests::{Io, OneWayBridge, Options, Rtp, local_rtp, payload, per_backend};

/// `SCHED_FIFO` in the `policy` field of `/proc/PID/task/TID/stat`.
const SCHED_FIFO: u32 = 1;

/// Scheduling policy of each of `pid`'s threads named `legato-shard-*`.
fn shard_policies(pid: u32) -> Vec<u32> {
    let mut policies = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("task list") {
        let dir = task.expect("task").path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if !comm.starts_with("legato-shard") {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).expect("stat");
        // Fields after "pid (comm) " start at field 3 (state); policy is
        // field 41 (proc(5)).
        let rest = &stat[stat.rfind(')').expect("comm end") + 2..];
        let policy = rest
            .split_whitespace()
            .nth(41 - 3)
            .and_then(|f| f.parse().ok())
            .expect("policy field");
        policies.push(policy);
    }
    policies
}

/// Whether this test runs as root (effective uid 0), and so may hand out
/// real-time priorities.
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

async fn realtime_shards_relay(io: Io) {
    let options = Options::new(io).arg("--realtime-priority").arg("3");
    let Some(OneWayBridge {
        daemon, pa, pb, a, ..
    }) = OneWayBridge::start_with(options).await.unwrap()
    else {
        return;
    };
    let policies = shard_policies(daemon.pid().expect("running"));
    assert_eq!(policies.len(), 2, "two shard threads: {policies:?}");
    if is_root() {
        assert!(
            policies.iter().all(|&p| p == SCHED_FIFO),
            "shards not under SCHED_FIFO: {policies:?}"
        );
    }
    let to = local_rtp(&a);
    const PACKETS: u32 = 200;
    for i in 0..PACKETS {
        let h = Rtp {
            marker: i == 0,
            pt: 0,
            seq: 100 + i as u16,
            ts: 160 * i,
            ssrc: 0x5eed,
        };
        pa.send(to, h, &payload(i)).expect("send");
        if i % 5 == 4 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let mut got = 0;
    while got < PACKETS {
        match pb.recv().expect("recv") {
            Some(_) => got += 1,
            None => break,
        }
    }
    assert_eq!(got, PACKETS, "relayed under real-time scheduling");
}

per_backend!(realtime_shards_relay);
