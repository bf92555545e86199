//! The load generator runs end to end on a tiny load (5 calls for 2 s
//! through a spawned debug legatod on epoll, and through the floor relay)
//! and reports sane numbers; then a tiny phased run (3, 6, 3 calls on one
//! legatod / floor), tiny interleaved rounds (floor and legatod side by
//! side, 2 rounds), a tiny control-plane benchmark and a short stall probe.
//! Measures nothing: the figures that matter come from release builds (README).

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

/// legatod next to this test's target directory (`target/<profile>`), or
/// `$LEGATOD_BIN`.
fn legatod() -> PathBuf {
    if let Some(path) = std::env::var_os("LEGATOD_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test executable");
    // target/<profile>/deps/<test-binary>
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target directory")
        .join("legatod");
    assert!(
        path.exists(),
        "{} not found: build it with `cargo build -p legato-daemon` (scripts/test.sh does) or set LEGATOD_BIN",
        path.display()
    );
    path
}

fn run_loadgen(name: &str, args: &[&str]) -> Value {
    let dir = std::env::temp_dir().join(format!(
        "legato-loadgen-smoke-{}-{name}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("report.json");
    let output = Command::new(env!("CARGO_BIN_EXE_legato-loadgen"))
        .args(args)
        .arg("--legatod")
        .arg(legatod())
        .arg("--json")
        .arg(&json)
        .output()
        .expect("running legato-loadgen");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "legato-loadgen failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    println!("{stdout}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    report
}

fn f(v: &Value, path: &str) -> f64 {
    let mut v = v;
    for key in path.split('.') {
        v = &v[key];
    }
    v.as_f64()
        .unwrap_or_else(|| panic!("{path} is not a number in {v}"))
}

/// The checks every measured point gets: offered probes within `offered`,
/// nearly all received, no duplicates, ordered latencies below 1 s, relay
/// CPU measured.
fn assert_sane_point(p: &Value, what: &str, offered: std::ops::RangeInclusive<f64>) {
    let sent = f(p, "offered");
    assert!(
        offered.contains(&sent),
        "{what}: offered {sent}, want {offered:?}"
    );
    let received = f(p, "received");
    assert!(
        received >= sent * 0.99,
        "{what}: received {received} of {sent}"
    );
    assert_eq!(f(p, "duplicates"), 0.0, "{what}: duplicates");
    let (p50, p99) = (f(p, "latency.p50_us"), f(p, "latency.p99_us"));
    assert!(
        p50 > 0.0 && p50 <= p99 && p99 < 1e6,
        "{what}: latency {p50} {p99}"
    );
    assert!(f(p, "target_cpu.us_per_packet") > 0.0, "{what}: relay CPU");
}

#[test]
fn tiny_load_reports_sane_numbers() {
    let report = run_loadgen(
        "load",
        &[
            "--spawn",
            "--target",
            "both",
            "--io",
            "epoll",
            "--calls",
            "5",
            "--duration-s",
            "2",
            "--warmup-s",
            "1",
            "--drain-ms",
            "200",
        ],
    );
    let points = report["points"].as_array().expect("points");
    let targets: Vec<&str> = points
        .iter()
        .map(|p| p["target"].as_str().unwrap())
        .collect();
    assert_eq!(targets, ["floor", "legatod"]);
    for p in points {
        let what = p["target"].as_str().unwrap();
        // 5 calls × 2 directions × 50 packets/s for 2 s.
        assert_sane_point(p, what, 900.0..=1100.0);
        assert!(f(p, "loss_percent") <= 1.0, "{what}: loss");
        assert!(f(p, "generator_cpu.percent") > 0.0, "{what}: generator CPU");
        assert!(f(p, "rss_loaded_kib") > 0.0, "{what}: RSS");
    }
    let legatod = &points[1];
    assert_eq!(legatod["io"], "epoll");
    assert!(f(legatod, "cpu_ratio_to_floor") > 0.0);
}

/// Phased mode: 6 calls set up once per target, 3 then 6 then 3 of them
/// sending, 1 s each; every phase's numbers are sane and no stream starves.
#[test]
fn tiny_phased_run_reports_each_phase() {
    let report = run_loadgen(
        "phases",
        &[
            "--spawn",
            "--target",
            "both",
            "--io",
            "epoll",
            "--phases",
            "3,6,3",
            "--phase-s",
            "1",
            "--warmup-s",
            "0.5",
            "--drain-ms",
            "200",
        ],
    );
    let points = report["points"].as_array().expect("points");
    let rows: Vec<(&str, u64, u64)> = points
        .iter()
        .map(|p| {
            (
                p["target"].as_str().unwrap(),
                p["phase"].as_u64().unwrap(),
                p["calls"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("floor", 0, 3),
            ("floor", 1, 6),
            ("floor", 2, 3),
            ("legatod", 0, 3),
            ("legatod", 1, 6),
            ("legatod", 2, 3),
        ]
    );
    for p in points {
        let what = format!("{} phase {}", p["target"], p["phase"]);
        // All 6 calls are set up in every phase, whatever sends.
        assert_eq!(f(p, "legs"), 12.0, "{what}");
        // calls × 2 directions × 50 packets/s for 1 s.
        let want = f(p, "calls") * 100.0;
        assert_sane_point(p, &what, want * 0.9..=want * 1.1);
        assert_eq!(f(p, "starved_streams"), 0.0, "{what}: starved");
        assert!(
            f(p, "stream_loss_max_percent") <= 5.0,
            "{what}: worst stream"
        );
    }
    assert!(f(&points[4], "cpu_ratio_to_floor") > 0.0);
}

/// Interleaved rounds: the floor and a legatod (epoll) set up side by side
/// at 4 calls, each measured once per round for 2 rounds; every window is
/// sane, each legatod round has its own ratio, and each target a summary.
#[test]
fn tiny_interleaved_rounds_report_each_round() {
    let report = run_loadgen(
        "rounds",
        &[
            "--spawn",
            "--target",
            "both",
            "--io",
            "epoll",
            "--calls",
            "4",
            "--rounds",
            "2",
            "--duration-s",
            "1",
            "--warmup-s",
            "0.5",
            "--round-warmup-s",
            "0.2",
            "--drain-ms",
            "200",
        ],
    );
    let points = report["points"].as_array().expect("points");
    let rows: Vec<(&str, u64)> = points
        .iter()
        .map(|p| (p["target"].as_str().unwrap(), p["round"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        rows,
        [("floor", 0), ("legatod", 0), ("floor", 1), ("legatod", 1)]
    );
    for p in points {
        let what = format!("{} round {}", p["target"], p["round"]);
        assert_eq!(f(p, "calls"), 4.0, "{what}");
        assert_eq!(f(p, "legs"), 8.0, "{what}");
        // 4 calls × 2 directions × 50 packets/s for 1 s.
        assert_sane_point(p, &what, 360.0..=440.0);
        if p["target"] == "legatod" {
            assert_eq!(p["io"], "epoll");
            assert!(f(p, "setup_s") > 0.0, "{what}: setup time");
            // Against the floor of the same round.
            let floor = points
                .iter()
                .find(|q| q["target"] == "floor" && q["round"] == p["round"])
                .expect("floor of the same round");
            let want = f(p, "target_cpu.us_per_packet") / f(floor, "target_cpu.us_per_packet");
            let ratio = f(p, "cpu_ratio_to_floor");
            assert!((ratio - want).abs() < 1e-9, "{what}: ratio {ratio}");
        } else {
            assert!(p["cpu_ratio_to_floor"].is_null(), "{what}");
        }
    }
    let summaries = report["summaries"].as_array().expect("summaries");
    let targets: Vec<&str> = summaries
        .iter()
        .map(|s| s["target"].as_str().unwrap())
        .collect();
    assert_eq!(targets, ["floor", "legatod"]);
    for s in summaries {
        let what = s["target"].as_str().unwrap();
        assert_eq!(f(s, "calls"), 4.0, "{what}");
        assert_eq!(f(s, "rounds"), 2.0, "{what}");
        let (median, min, max) = (
            f(s, "us_per_packet.median"),
            f(s, "us_per_packet.min"),
            f(s, "us_per_packet.max"),
        );
        assert!(
            0.0 < min && min <= median && median <= max,
            "{what}: {min} {median} {max}"
        );
        assert!(f(s, "loss_percent_max") <= 1.0, "{what}: loss");
    }
    let legatod = &summaries[1];
    let (median, min, max) = (
        f(legatod, "cpu_ratio_to_floor.median"),
        f(legatod, "cpu_ratio_to_floor.min"),
        f(legatod, "cpu_ratio_to_floor.max"),
    );
    assert!(
        0.0 < min && min <= median && median <= max,
        "ratio {min} {median} {max}"
    );
    assert!(f(legatod, "rounds_ratio_at_most_1") <= 2.0);
    assert!(summaries[0]["cpu_ratio_to_floor"].is_null());
}

#[test]
fn tiny_setup_bench_reports_rates() {
    let report = run_loadgen(
        "setup",
        &[
            "--spawn",
            "--setup-bench",
            "--io",
            "epoll",
            "--setups",
            "40",
            "--concurrency",
            "4",
        ],
    );
    let setup = &report["setup"][0];
    assert_eq!(f(setup, "setups"), 40.0, "{setup}");
    assert_eq!(f(setup, "errors"), 0.0, "{setup}");
    assert!(f(setup, "setups_per_s") > 0.0);
    let rpc = setup["rpc"].as_array().unwrap();
    let create_leg = rpc.iter().find(|r| r["name"] == "CreateLeg").unwrap();
    assert_eq!(f(create_leg, "count"), 80.0);
    assert!(f(create_leg, "p50_us") > 0.0 && f(create_leg, "p99_us") < 1e6);
}

#[test]
fn stall_probe_reports_each_cpu() {
    let dir = std::env::temp_dir().join(format!("legato-stall-probe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("stalls.json");
    let output = Command::new(env!("CARGO_BIN_EXE_legato-loadgen"))
        .args(["stall-probe", "--seconds", "0.3", "--cpus", "0", "--json"])
        .arg(&json)
        .output()
        .expect("running legato-loadgen stall-probe");
    assert!(
        output.status.success(),
        "stall-probe failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let cpus = report.as_array().expect("one entry per CPU");
    assert_eq!(cpus.len(), 1);
    assert_eq!(cpus[0]["cpu"], 0);
    let seconds = f(&cpus[0], "seconds");
    assert!((0.3..10.0).contains(&seconds), "{seconds}");
    let lost = f(&cpus[0], "lost_percent");
    assert!((0.0..=100.0).contains(&lost), "{lost}");
}

/// `--rt-priority` re-runs the generator under `chrt` (root only: skipped
/// otherwise), and its spawned relays inherit the policy.
#[test]
fn tiny_load_under_realtime_priority() {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false);
    if !root {
        eprintln!("SKIPPED: --rt-priority needs root or CAP_SYS_NICE");
        return;
    }
    let report = run_loadgen(
        "rt",
        &[
            "--spawn",
            "--target",
            "both",
            "--io",
            "epoll",
            "--calls",
            "3",
            "--duration-s",
            "1",
            "--warmup-s",
            "0.5",
            "--drain-ms",
            "200",
            "--rt-priority",
            "1",
        ],
    );
    let points = report["points"].as_array().expect("points");
    assert_eq!(points.len(), 2);
    for p in points {
        let what = p["target"].as_str().unwrap();
        // 3 calls × 2 directions × 50 packets/s for 1 s.
        assert_sane_point(p, what, 270.0..=330.0);
    }
    assert!(
        report["command"]
            .as_str()
            .is_some_and(|c| c.contains("--rt-priority")),
        "command recorded"
    );
}

/// The checks of a point whose legatod transcodes or mixes: no latency
/// (the probe payload does not survive), legatod's output counted by
/// source address and RTP sequence number, CPU measured, ratio to the
/// floor of the same packet rate.
fn assert_sane_pcm_point(p: &Value, what: &str, offered: std::ops::RangeInclusive<f64>) {
    let sent = f(p, "offered");
    assert!(
        offered.contains(&sent),
        "{what}: offered {sent}, want {offered:?}"
    );
    // legatod's media clock sends 50 packets/s per leg whatever arrives:
    // about as many as were offered.
    let received = f(p, "received");
    assert!(
        received >= sent * 0.9 && received <= sent * 1.1,
        "{what}: received {received} of {sent}"
    );
    assert!(p["latency"].is_null(), "{what}: latency {}", p["latency"]);
    assert_eq!(f(p, "duplicates"), 0.0, "{what}: duplicates");
    assert!(f(p, "loss_percent") <= 1.0, "{what}: loss");
    assert!(f(p, "target_cpu.us_per_packet") > 0.0, "{what}: relay CPU");
    assert!(f(p, "cpu_ratio_to_floor") > 0.0, "{what}: ratio");
}

/// PCMU ↔ PCMA calls: 3 calls for 2 s against a floor of 3 calls.
#[test]
fn tiny_transcoded_load_reports_sane_numbers() {
    let report = run_loadgen(
        "pcmu-pcma",
        &[
            "--spawn",
            "--target",
            "both",
            "--io",
            "epoll",
            "--call-kind",
            "pcmu-pcma",
            "--calls",
            "3",
            "--duration-s",
            "2",
            "--warmup-s",
            "1",
            "--drain-ms",
            "200",
        ],
    );
    let points = report["points"].as_array().expect("points");
    let rows: Vec<(&str, &str, f64)> = points
        .iter()
        .map(|p| {
            (
                p["target"].as_str().unwrap(),
                p["call_kind"].as_str().unwrap(),
                f(p, "floor_calls"),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [("floor", "relay", 3.0), ("legatod", "pcmu-pcma", 3.0)]
    );
    // 3 calls × 2 directions × 50 packets/s for 2 s.
    assert_sane_point(&points[0], "floor", 540.0..=660.0);
    assert_sane_pcm_point(&points[1], "legatod pcmu-pcma", 540.0..=660.0);
}

/// Conferences of 3 in interleaved rounds: 2 conferences (6 members)
/// against a floor of 3 calls (6 legs), 2 rounds of 1 s; the routes are
/// switched on only while legatod is measured.
#[test]
fn tiny_conference_rounds_report_sane_numbers() {
    let report = run_loadgen(
        "conference",
        &[
            "--spawn",
            "--target",
            "both",
            "--io",
            "epoll",
            "--call-kind",
            "conference:3",
            "--calls",
            "2",
            "--rounds",
            "2",
            "--duration-s",
            "1",
            "--warmup-s",
            "0.5",
            "--round-warmup-s",
            "0.3",
            "--drain-ms",
            "200",
        ],
    );
    let points = report["points"].as_array().expect("points");
    assert_eq!(points.len(), 4);
    for p in points {
        let what = format!("{} round {}", p["target"], p["round"]);
        // 6 legs × 50 packets/s for 1 s.
        if p["target"] == "floor" {
            assert_eq!(f(p, "calls"), 3.0, "{what}");
            assert_sane_point(p, &what, 270.0..=330.0);
        } else {
            assert_eq!(p["call_kind"], "conference:3");
            assert_eq!(f(p, "calls"), 2.0, "{what}");
            assert_eq!(f(p, "legs"), 6.0, "{what}");
            assert_eq!(f(p, "floor_calls"), 3.0, "{what}");
            assert_sane_pcm_point(p, &what, 270.0..=330.0);
        }
    }
    let legatod = &report["summaries"][1];
    assert_eq!(legatod["call_kind"], "conference:3");
    assert!(legatod["p99_us"].is_null());
    assert!(f(legatod, "cpu_ratio_to_floor.median") > 0.0);
}

/// The latency probe of a PCMU → PCMA call on the PCM path
/// (`always_transcode`) finds its clicks, each well under a second late.
#[test]
fn latency_probe_finds_the_clicks() {
    let report = run_loadgen(
        "latency",
        &[
            "latency",
            "--call-kind",
            "pcmu-pcma-pcm",
            "--clicks",
            "3",
            "--io",
            "epoll",
        ],
    );
    assert_eq!(f(&report, "clicks_sent"), 3.0, "{report}");
    assert!(f(&report, "clicks_found") >= 2.0, "{report}");
    let (p50, p99) = (f(&report, "p50_ms"), f(&report, "p99_ms"));
    assert!(0.0 < p50 && p50 <= p99 && p99 < 500.0, "{report}");
    assert_eq!(f(&report, "expected_bound_ms"), 40.0);
}

/// The playback probe on a few legs: every probe gets its first packet
/// well under a second, playing legs cost CPU and send about 50 packets/s.
#[test]
fn playback_probe_reports_sane_numbers() {
    let report = run_loadgen(
        "playback",
        &[
            "playback",
            "--legs",
            "6",
            "--probes",
            "3",
            "--seconds",
            "1",
            "--mp3-rounds",
            "1",
            "--io",
            "epoll",
        ],
    );
    assert_eq!(f(&report, "legs"), 6.0, "{report}");
    // The MP3 step (ffmpeg is installed by scripts/test.sh).
    assert!(f(&report, "mp3_bytes") > 900_000.0, "{report}");
    let (p50, p99) = (
        f(&report, "first_packet_p50_ms"),
        f(&report, "first_packet_p99_ms"),
    );
    assert!(0.0 < p50 && p50 <= p99 && p99 < 1000.0, "{report}");
    assert!(f(&report, "cpu_us_per_leg_tick") > 0.0, "{report}");
    assert!(f(&report, "packets_per_leg_s") > 30.0, "{report}");
}

/// The recording probe on a few recordings: every file written, none
/// behind.
#[test]
fn recording_probe_reports_sane_numbers() {
    let report = run_loadgen(
        "recording",
        &[
            "recording",
            "--recordings",
            "4",
            "--format",
            "mp3",
            "--seconds",
            "1",
            "--io",
            "epoll",
        ],
    );
    assert_eq!(f(&report, "recordings"), 4.0, "{report}");
    assert_eq!(f(&report, "record_errors"), 0.0, "{report}");
    assert!(f(&report, "bytes") > 0.0, "{report}");
    assert!(
        f(&report, "shortest_ms") >= f(&report, "recorded_ms") - 100.0,
        "{report}"
    );
}
