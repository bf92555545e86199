//! `legato-loadgen`: packet-rate load generator for legatod, with the bare
//! floor relay it is compared against and the control-plane benchmark.
//! See benches/README.md.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use legato_benches::generator::{Generator, Phase, RunStats, Timing};
use legato_benches::kind::{CallKind, Codec};
use legato_benches::procfs::{self, CpuDelta, Machine, ProcSample, UdpCounters};
use legato_benches::report::{Cpu, Latency, Point, Report};
use legato_benches::target::{self, Call, Spawned, Unit};
use legato_benches::{floor, latency, playback, plot, recording, setup, stall};
use legato_client::Client;

/// Environment variable set once the generator runs under `taskset`.
const PINNED_ENV: &str = "LEGATO_LOADGEN_PINNED";

#[derive(Debug, Parser)]
#[command(
    name = "legato-loadgen",
    about = "Packet-rate load generator for legatod, against a bare relay floor",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Sub>,
    /// What to measure: legatod, the floor relay, or both (same loads).
    #[arg(long, value_enum, default_value = "both")]
    target: TargetSel,
    /// Loads to sweep, in bridged calls (2 legs, 100 packets/s each), or
    /// conferences with --call-kind conference:N.
    #[arg(long, value_delimiter = ',', default_value = "100")]
    calls: Vec<usize>,
    /// What a call is: relay (both legs PCMU, the fast path), pcmu-pcma
    /// (legatod converts G.711 laws code by code on the relay path),
    /// pcmu-pcma-pcm (the same with always_transcode: the PCM path),
    /// pcmu-g722, pcmu-opus (side B offers that codec: legatod transcodes),
    /// or conference:N (N PCMU members per conference, each talking and
    /// listening). The floor relays as many packets: ceil(legs / 2) calls.
    #[arg(long, default_value = "relay")]
    call_kind: CallKind,
    /// Write an SVG plot of the sweep here: CPU per packet and p99 latency
    /// against load, one line per target.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Measuring window per point, seconds.
    #[arg(long, default_value_t = 10.0)]
    duration_s: f64,
    /// Interleaved, repeated measurement (with --spawn, sweep only): for
    /// each load, set up every selected target at once (the floor and one
    /// legatod per backend, each with its own ports) and measure them in
    /// turn, floor then io_uring then epoll, this many rounds; ratios to
    /// the floor are taken within each round. 1: each target in its own
    /// block of time.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// With a record-*, relay-detect, relay-tones, relay-dtmf or relay-all --call-kind and
    /// --rounds: every round also measures the same calls without the
    /// recording (detectors, tone handling), in the same legatod, just
    /// before (a `relay` row): the baseline for its extra cost, free of the
    /// drift between processes and runs.
    #[arg(long)]
    record_baseline: bool,
    /// Warm-up of every round after the first (--rounds), seconds; the
    /// first round uses --warmup-s.
    #[arg(long, default_value_t = 0.5)]
    round_warmup_s: f64,
    /// Phased run instead of a sweep: calls sending in each phase, e.g.
    /// 1000,2500,1000. Sets up max(phases) calls once per target (one
    /// legatod or floor) and sends only on the first N of them in each
    /// phase; one row per phase.
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["calls", "duration_s", "setup_bench"])]
    phases: Vec<usize>,
    /// Measuring window per phase, seconds (--phases). Only the first phase
    /// gets the warm-up; each phase ends with --drain-ms of receiving only.
    #[arg(long, default_value_t = 5.0)]
    phase_s: f64,
    /// A sending stream counts as starved when it received nothing, or lost
    /// more than this many times the point's average loss (capped at
    /// halfway from the average to 100 %; at least 5 %).
    #[arg(long, default_value_t = 5.0)]
    starve_factor: f64,
    /// Sending before the window opens, seconds.
    #[arg(long, default_value_t = 2.0)]
    warmup_s: f64,
    /// Receiving after the last send, milliseconds.
    #[arg(long, default_value_t = 300)]
    drain_ms: u64,
    /// legatod backend(s) to measure (with --spawn).
    #[arg(long, value_enum, default_value = "both")]
    io: IoSel,
    /// legatod binary [default: legatod next to this binary].
    #[arg(long)]
    legatod: Option<PathBuf>,
    /// Start legatod for each point (fresh process, one shard, ports
    /// 20000-59999, split between the legatods of --rounds).
    #[arg(long, conflicts_with = "endpoint")]
    spawn: bool,
    /// gRPC endpoint of an already running legatod.
    #[arg(long)]
    endpoint: Option<String>,
    /// Pid of the legatod behind --endpoint [default: the only process
    /// named legatod].
    #[arg(long)]
    pid: Option<u32>,
    /// Pin legatod and the floor relay to this CPU (taskset).
    #[arg(long)]
    pin_daemon: Option<usize>,
    /// Pin the generator to this CPU (re-runs itself under taskset).
    #[arg(long)]
    pin_gen: Option<usize>,
    /// Run the generator and the relays it spawns (legatod, floor) under
    /// SCHED_FIFO at this priority, 1-99 (re-runs itself under `chrt`;
    /// children inherit it). Needs root or CAP_SYS_NICE. Use loads that
    /// leave the cores some idle time: the kernel throttles real-time
    /// threads at 95 % of each second.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=99))]
    rt_priority: Option<u8>,
    /// Write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Generator sockets shared by all calls' peers.
    #[arg(long, default_value_t = 16)]
    gen_sockets: usize,
    /// Generator loop period, µs.
    #[arg(long, default_value_t = 1000)]
    tick_us: u64,
    /// Shards of a spawned legatod.
    #[arg(long, default_value_t = 1)]
    shards: usize,
    /// First port of the floor relay's consecutive range (2 per call);
    /// 0: ports the kernel picks.
    #[arg(long, default_value_t = 0)]
    floor_port_base: u16,
    /// Run the floor relay with connected sockets (a tuning prototype).
    #[arg(long)]
    floor_connect: bool,
    /// Call setups in flight while preparing a load point.
    #[arg(long, default_value_t = 32)]
    setup_concurrency: usize,
    /// Run the control-plane benchmark instead of the packet sweep.
    #[arg(long)]
    setup_bench: bool,
    /// Call setups for --setup-bench.
    #[arg(long, default_value_t = 5000)]
    setups: usize,
    /// Before --setup-bench measures, open this many WatchEvents streams
    /// filtered on sessions that never exist and close them again (what a
    /// controller with one watcher per call leaves behind): their cost, if
    /// any, shows as daemon CPU per setup.
    #[arg(long, default_value_t = 0)]
    closed_watchers: usize,
    /// Setups in flight for --setup-bench.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
}

/// What every probe subcommand takes: the legatod it spawns and where the
/// result goes.
#[derive(Debug, Clone, clap::Args)]
struct ProbeArgs {
    /// legatod backend: uring or epoll.
    #[arg(long, value_enum, default_value = "uring")]
    io: IoSel,
    /// legatod binary [default: legatod next to this binary].
    #[arg(long)]
    legatod: Option<PathBuf>,
    /// Pin legatod to this CPU.
    #[arg(long)]
    pin_daemon: Option<usize>,
    /// Write the result as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

impl ProbeArgs {
    /// The one backend (`--io`) the `what` probe runs on.
    fn backend(&self, what: &str) -> Result<&'static str> {
        match self.io.flags() {
            &[io] => Ok(io),
            _ => bail!("the {what} probe runs on one backend: --io uring or --io epoll"),
        }
    }
}

#[derive(Debug, Subcommand)]
enum Sub {
    /// Run the floor relay (started by the load generator itself).
    FloorServer {
        /// Calls (2 sockets each).
        #[arg(long)]
        calls: usize,
        /// First port; 0: ports the kernel picks.
        #[arg(long, default_value_t = 0)]
        port_base: u16,
        /// Exit after this many seconds at the latest.
        #[arg(long, default_value_t = 3600)]
        max_run_s: u64,
        /// connect() each socket to its latched peer (see floor docs).
        #[arg(long)]
        connect: bool,
    },
    /// Latency of one transcoded call: a jitter-free PCMU sender of silence
    /// with a click every second; side B decodes legatod's output and finds
    /// each click (kernel receive time stamps). Spawns its own legatod.
    Latency {
        /// Kind of the call: pcmu-pcma, pcmu-pcma-pcm, pcmu-g722, pcmu-opus,
        /// or relay.
        #[arg(long, default_value = "pcmu-pcma")]
        call_kind: CallKind,
        /// Clicks to send (one per second, after 2 s of lead-in).
        #[arg(long, default_value_t = 40)]
        clicks: u64,
        /// Pin the probe (sender and receiver) to this CPU.
        #[arg(long)]
        pin_gen: Option<usize>,
        #[command(flatten)]
        probe: ProbeArgs,
    },
    /// Many legs playing one cached prompt: StartPlayback to first packet
    /// (p50/p99), legatod CPU and RSS per playing leg. Spawns its own
    /// legatod.
    Playback {
        /// Legs that play.
        #[arg(long, default_value_t = 1000)]
        legs: usize,
        /// Legs whose StartPlayback to first packet is timed.
        #[arg(long, default_value_t = 200)]
        probes: usize,
        /// Measuring window, seconds (idle, then playing).
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// Downloads of a 1 MB MP3 over loopback HTTP timed to
        /// PlaybackReady (0: none; needs ffmpeg to make the MP3).
        #[arg(long, default_value_t = 5)]
        mp3_rounds: usize,
        #[command(flatten)]
        probe: ProbeArgs,
    },
    /// Many recordings at once (two per idle leg): legatod CPU and RSS per
    /// recording, the disk write rate, and RecordError events (writers
    /// falling behind). Spawns its own legatod, recording into a
    /// temporary directory removed afterwards.
    Recording {
        /// Recordings at once.
        #[arg(long, default_value_t = 1000)]
        recordings: usize,
        /// wav or mp3.
        #[arg(long, default_value = "wav")]
        format: String,
        /// Measuring window, seconds (idle, then recording).
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        #[command(flatten)]
        probe: ProbeArgs,
    },
    /// Plot JSON reports of earlier sweeps into one SVG (one line per
    /// target and call kind across all reports).
    Plot {
        /// The SVG to write.
        #[arg(long)]
        out: PathBuf,
        /// Title at the top.
        #[arg(long, default_value = "legato-loadgen sweep")]
        title: String,
        /// JSON reports (--json) to read.
        #[arg(required = true)]
        reports: Vec<PathBuf>,
    },
    /// Measure how often each CPU stops running a busy thread (interrupts,
    /// kernel threads, the hypervisor), and for how long: one spinning
    /// process per CPU, all at once. Run it on an otherwise idle machine.
    StallProbe {
        /// Seconds to spin.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// CPUs to probe, e.g. 0,1 [default: all].
        #[arg(long, value_delimiter = ',')]
        cpus: Vec<usize>,
        /// Write the per-CPU figures as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Spin on this process's own CPU and print JSON (used per CPU).
        #[arg(long, hide = true)]
        one: Option<usize>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum TargetSel {
    Legatod,
    Floor,
    Both,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum IoSel {
    Uring,
    Epoll,
    Both,
}

impl IoSel {
    fn flags(self) -> &'static [&'static str] {
        match self {
            Self::Uring => &["uring"],
            Self::Epoll => &["epoll"],
            Self::Both => &["uring", "epoll"],
        }
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    if let Some(Sub::FloorServer {
        calls,
        port_base,
        max_run_s,
        connect,
    }) = cli.command
    {
        return floor::serve(calls, port_base, Duration::from_secs(max_run_s), connect);
    }
    if let Some(Sub::StallProbe {
        seconds,
        cpus,
        json,
        one,
    }) = &cli.command
    {
        return stall_probe(*seconds, cpus, json.as_deref(), *one);
    }
    if let Some(Sub::Plot {
        out,
        title,
        reports,
    }) = &cli.command
    {
        return plot_reports(out, title, reports);
    }
    if let Some(Sub::Playback {
        legs,
        probes,
        seconds,
        mp3_rounds,
        probe,
    }) = &cli.command
    {
        return playback_probe((*legs, *probes, *seconds, *mp3_rounds), probe);
    }
    if let Some(Sub::Recording {
        recordings,
        format,
        seconds,
        probe,
    }) = &cli.command
    {
        return recording_probe((*recordings, format, *seconds), probe);
    }
    if let Some(Sub::Latency {
        call_kind,
        clicks,
        pin_gen,
        probe,
    }) = &cli.command
    {
        return latency_probe(*call_kind, *clicks, *pin_gen, probe);
    }
    check_rounds(&cli)?;
    if (cli.pin_gen.is_some() || cli.rt_priority.is_some())
        && std::env::var_os(PINNED_ENV).is_none()
    {
        use std::os::unix::process::CommandExt as _;
        // chrt -f PRIO taskset -c CPU <this binary> <same arguments>
        let mut wrap: Vec<String> = Vec::new();
        if let Some(priority) = cli.rt_priority {
            wrap.extend(["chrt".into(), "-f".into(), priority.to_string()]);
        }
        if let Some(cpu) = cli.pin_gen {
            wrap.extend(["taskset".into(), "-c".into(), cpu.to_string()]);
        }
        let error = std::process::Command::new(&wrap[0])
            .args(&wrap[1..])
            .arg(std::env::current_exe()?)
            .args(std::env::args_os().skip(1))
            .env(PINNED_ENV, "1")
            .exec();
        bail!("cannot re-run under {}: {error}", wrap[0]);
    }
    // One worker drives the gRPC connection in the background, so the
    // daemon's graceful shutdown sees it close while this thread waits.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let mut report = Report {
        machine: Machine::detect(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        pin_daemon: cli.pin_daemon,
        pin_generator: cli.pin_gen,
        points: Vec::new(),
        setup: Vec::new(),
        summaries: Vec::new(),
    };
    if cli.setup_bench {
        for io in backends(&cli) {
            let result =
                with_legatod(&cli, &runtime, io, cli.setups / 2 + 16, |client, pid, _| {
                    let peer = UdpSocket::bind((legato_benches::generator::PEER_ADDRESS, 0))?;
                    runtime.block_on(setup::churn_watchers(client, cli.closed_watchers))?;
                    let before = ProcSample::of(pid)?;
                    let mut r = runtime.block_on(setup::run(
                        client,
                        cli.setups,
                        cli.concurrency,
                        peer.local_addr()?,
                    ))?;
                    let after = ProcSample::of(pid)?;
                    r.io = io.to_owned();
                    r.closed_watchers = cli.closed_watchers;
                    r.daemon_cpu_s = Some(after.cpu_since(&before).best_s());
                    r.daemon_rss_kib = Some(after.rss_kib);
                    Ok(r)
                })?;
            report.setup.push(result);
        }
    } else if cli.rounds > 1 {
        for &calls in &cli.calls {
            let points = rounds_points(&cli, &runtime, calls)
                .with_context(|| format!("interleaved rounds at {calls} calls"))?;
            report.points.extend(points);
        }
        report.fill_ratios();
        report.summarize();
    } else {
        if cli.phases.contains(&0) {
            bail!("--phases: every phase needs at least one call");
        }
        // A sweep measures each load on its own target; a phased run all
        // phases on one.
        let plans: Vec<Vec<usize>> = if cli.phases.is_empty() {
            cli.calls.iter().map(|&calls| vec![calls]).collect()
        } else {
            vec![cli.phases.clone()]
        };
        for loads in &plans {
            if cli.target != TargetSel::Legatod {
                let points = floor_points(&cli, &runtime, loads).context("floor")?;
                report.points.extend(points);
            }
            if cli.target != TargetSel::Floor {
                for io in backends(&cli) {
                    let points = legatod_points(&cli, &runtime, io, loads)
                        .with_context(|| format!("legatod {io} at {loads:?} calls"))?;
                    report.points.extend(points);
                }
            }
        }
        report.fill_ratios();
    }
    print!("{}", report.table());
    if let Some(path) = &cli.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &cli.plot {
        let title = format!("legato-loadgen, call kind {}", cli.call_kind);
        std::fs::write(path, plot::svg(&plot::series(&report.points), &title))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Reads the points of JSON reports and plots them into one SVG.
fn plot_reports(out: &Path, title: &str, reports: &[PathBuf]) -> Result<()> {
    #[derive(serde::Deserialize)]
    struct Points {
        points: Vec<Point>,
    }
    let mut points = Vec::new();
    for path in reports {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let report: Points =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        points.extend(report.points);
    }
    std::fs::write(out, plot::svg(&plot::series(&points), title))
        .with_context(|| format!("writing {}", out.display()))
}

/// `legato-loadgen latency`: spawns a legatod, probes one call of `kind`.
fn latency_probe(
    kind: CallKind,
    clicks: u64,
    pin_gen: Option<usize>,
    probe: &ProbeArgs,
) -> Result<()> {
    let io = probe.backend("latency")?;
    if let Some(cpu) = pin_gen {
        let mut set = nix::sched::CpuSet::new();
        set.set(cpu)?;
        nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
            .with_context(|| format!("pinning the probe to CPU {cpu}"))?;
    }
    let args = target::legatod_args(io, 4, 1, target::MEDIA_PORTS);
    let report = probe_spawned(probe, &args, |runtime, client, _| {
        latency::probe(runtime, client, kind, clicks)
    })?;
    print!("{}", report.text());
    write_json(probe.json.as_deref(), &report)
}

/// `legato-loadgen playback`: see `legato_benches::playback`.
fn playback_probe(
    (legs, probes, seconds, mp3_rounds): (usize, usize, f64, usize),
    probe: &ProbeArgs,
) -> Result<()> {
    let io = probe.backend("playback")?;
    if legs == 0 || !(seconds > 0.0 && seconds <= 600.0) {
        bail!("--legs must be at least 1 and --seconds 0-600");
    }
    let args = target::legatod_args(io, legs, 1, target::MEDIA_PORTS);
    let report = probe_spawned(probe, &args, |runtime, client, pid| {
        playback::probe(runtime, client, pid, legs, probes, seconds, mp3_rounds)
    })?;
    print!("{}", report.text());
    write_json(probe.json.as_deref(), &report)
}

/// `legato-loadgen recording`: see `legato_benches::recording`.
fn recording_probe(
    (recordings, format, seconds): (usize, &str, f64),
    probe: &ProbeArgs,
) -> Result<()> {
    let io = probe.backend("recording")?;
    let format = match format {
        "wav" => legato_client::proto::RecordingFormat::Wav,
        "mp3" => legato_client::proto::RecordingFormat::Mp3,
        other => bail!("--format {other:?}: wav or mp3"),
    };
    if recordings == 0 || !(seconds > 0.0 && seconds <= 600.0) {
        bail!("--recordings must be at least 1 and --seconds 0-600");
    }
    let args = target::legatod_args(io, recordings, 1, target::MEDIA_PORTS);
    let report = probe_spawned(probe, &args, |runtime, client, pid| {
        recording::probe(runtime, client, pid, recordings, format, seconds)
    });
    target::remove_recordings();
    let report = report?;
    print!("{}", report.text());
    write_json(probe.json.as_deref(), &report)
}

/// For the probe subcommands (no sweep options): spawns legatod (`--legatod`
/// or the one next to this binary) with `args`, runs `probe` with a client
/// of it (and its pid), and stops it.
fn probe_spawned<T>(
    options: &ProbeArgs,
    args: &[String],
    probe: impl FnOnce(&tokio::runtime::Runtime, &Client, u32) -> Result<T>,
) -> Result<T> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let path = match &options.legatod {
        Some(p) => p.clone(),
        None => default_legatod()?,
    };
    let mut process = Spawned::start(&path, args, options.pin_daemon, "legatod ready")?;
    let grpc = process
        .field("grpc")
        .context("legatod's ready line has no grpc=")?
        .to_owned();
    let client = runtime.block_on(Client::connect(format!("http://{grpc}")))?;
    let result = probe(&runtime, &client, process.pid);
    drop(client);
    process.stop()?;
    result
}

/// Writes `report` as JSON to `path`, when given.
fn write_json(path: Option<&Path>, report: &impl serde::Serialize) -> Result<()> {
    if let Some(path) = path {
        std::fs::write(path, serde_json::to_string_pretty(report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// `--record-baseline`: per legatod and round, the recorded calls' CPU per
/// packet over the same calls' not recorded, measured just before in the
/// same process; the median and range across rounds.
fn print_recording_extra(points: &[Point]) {
    let mut extras: Vec<(String, f64)> = Vec::new();
    for p in points
        .iter()
        .filter(|p| p.target == "legatod" && p.call_kind != "relay")
    {
        let base = points.iter().find(|q| {
            q.target == p.target && q.io == p.io && q.round == p.round && q.call_kind == "relay"
        });
        if let Some(base) = base
            && base.target_cpu.us_per_packet > 0.0
        {
            let extra = p.target_cpu.us_per_packet / base.target_cpu.us_per_packet - 1.0;
            extras.push((p.io.clone(), extra));
        }
    }
    let mut ios: Vec<&String> = extras.iter().map(|(io, _)| io).collect();
    ios.sort();
    ios.dedup();
    for io in ios {
        let mut e: Vec<f64> = extras
            .iter()
            .filter(|(i, _)| i == io)
            .map(|(_, e)| *e)
            .collect();
        e.sort_by(f64::total_cmp);
        let median = e[e.len() / 2];
        eprintln!(
            "extra CPU per packet, {io}: {median:.3}x the same calls without it (median of {} rounds; {:.3}-{:.3})",
            e.len(),
            e[0],
            e[e.len() - 1]
        );
    }
}

/// Refuses `--rounds 0`, and `--rounds` > 1 outside a spawned sweep.
fn check_rounds(cli: &Cli) -> Result<()> {
    match cli.rounds {
        0 => bail!("--rounds must be at least 1"),
        1 if cli.record_baseline => bail!("--record-baseline needs --rounds 2 or more"),
        1 => return Ok(()),
        _ => {}
    }
    if !cli.phases.is_empty() {
        bail!("--rounds > 1 is for a sweep (--calls), not --phases");
    }
    if cli.record_baseline && (cli.call_kind.extra().is_none() || cli.target == TargetSel::Floor) {
        bail!(
            "--record-baseline is for legatod with a record-*, relay-detect, relay-tones, relay-dtmf or relay-all --call-kind"
        );
    }
    if cli.setup_bench {
        bail!("--rounds > 1 is for the packet sweep, not --setup-bench");
    }
    if !cli.spawn {
        bail!(
            "--rounds > 1 needs --spawn: it starts the floor and one legatod per backend side by side"
        );
    }
    Ok(())
}

/// Runs one spinning probe per CPU at once (each re-run of this binary
/// under `taskset`), or, with `one`, the probe itself.
fn stall_probe(
    seconds: f64,
    cpus: &[usize],
    json: Option<&Path>,
    one: Option<usize>,
) -> Result<()> {
    let duration = Duration::from_secs_f64(seconds.clamp(0.1, 3600.0));
    if let Some(cpu) = one {
        println!(
            "{}",
            serde_json::to_string(&stall::spin(duration, Some(cpu)))?
        );
        return Ok(());
    }
    let cpus: Vec<usize> = if cpus.is_empty() {
        (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect()
    } else {
        cpus.to_vec()
    };
    let exe = std::env::current_exe()?;
    let children = cpus
        .iter()
        .map(|cpu| {
            std::process::Command::new("taskset")
                .arg("-c")
                .arg(cpu.to_string())
                .arg(&exe)
                .args(["stall-probe", "--seconds", &seconds.to_string(), "--one"])
                .arg(cpu.to_string())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .with_context(|| format!("starting the probe on CPU {cpu} (taskset)"))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut all = Vec::with_capacity(children.len());
    for child in children {
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!("a stall probe failed: {}", out.status);
        }
        all.push(serde_json::from_slice::<stall::StallStats>(&out.stdout).context("probe output")?);
    }
    print!("{}", stall::table(&all));
    if let Some(path) = json {
        std::fs::write(path, serde_json::to_string_pretty(&all)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn backends(cli: &Cli) -> Vec<&'static str> {
    if cli.spawn {
        cli.io.flags().to_vec()
    } else {
        vec!["external"]
    }
}

fn one_line(p: &Point) -> String {
    let phase = p.phase.map_or_else(String::new, |k| {
        format!(" phase {k} ({} streams starved)", p.starved_streams)
    });
    let round = p.round.map_or_else(String::new, |r| format!(" round {r}"));
    let kind = if p.call_kind == "relay" {
        String::new()
    } else {
        format!(" {}", p.call_kind)
    };
    let p99 = p
        .latency
        .as_ref()
        .map_or_else(|| "n/a".to_owned(), |l| format!("{:.1} us", l.p99_us));
    format!(
        "{} {}{kind}{phase}{round} calls={}: offered {:.0}/s received {:.0}/s loss {:.4}% p99 {p99}, cpu {:.3} us/pkt ({:.1}%), gen {:.1}%",
        p.target,
        p.io,
        p.calls,
        p.offered_pps,
        p.received_pps,
        p.loss_percent,
        p.target_cpu.us_per_packet,
        p.target_cpu.percent,
        p.generator_cpu.percent
    )
}

/// Timing of point (or phase) `k`: in a phased run only the first phase
/// warms up, and windows last --phase-s.
fn timing(cli: &Cli, k: usize) -> Timing {
    if cli.phases.is_empty() {
        timing_of(cli, cli.warmup_s, cli.duration_s)
    } else {
        timing_of(cli, if k == 0 { cli.warmup_s } else { 0.0 }, cli.phase_s)
    }
}

/// Timing of round `round` of an interleaved run (--rounds): the first
/// round warms up for --warmup-s, later ones for --round-warmup-s.
fn round_timing(cli: &Cli, round: usize) -> Timing {
    let warmup_s = if round == 0 {
        cli.warmup_s
    } else {
        cli.round_warmup_s
    };
    timing_of(cli, warmup_s, cli.duration_s)
}

/// A warm-up and a window (seconds), with --drain-ms and --tick-us.
fn timing_of(cli: &Cli, warmup_s: f64, window_s: f64) -> Timing {
    Timing {
        warmup: Duration::from_secs_f64(warmup_s.max(0.0)),
        window: Duration::from_secs_f64(window_s.max(0.1)),
        drain: Duration::from_millis(cli.drain_ms),
        tick: Duration::from_micros(cli.tick_us.max(50)),
    }
}

fn legatod_path(cli: &Cli) -> Result<PathBuf> {
    if let Some(path) = &cli.legatod {
        return Ok(path.clone());
    }
    default_legatod()
}

/// legatod next to this binary.
fn default_legatod() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.with_file_name("legatod");
    if !path.exists() {
        bail!(
            "{} not found: build it (cargo build --release -p legato-daemon) or pass --legatod",
            path.display()
        );
    }
    Ok(path)
}

/// The pid of the only process named `legatod`.
fn find_legatod() -> Result<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if std::fs::read_to_string(entry.path().join("comm")).is_ok_and(|c| c.trim() == "legatod") {
            found.push(pid);
        }
    }
    match found.as_slice() {
        [pid] => Ok(*pid),
        [] => bail!("no legatod process found: pass --pid"),
        _ => bail!("several legatod processes ({found:?}): pass --pid"),
    }
}

/// A legatod started by the load generator, with a gRPC client connected.
#[derive(Debug)]
struct Daemon {
    /// Declared before `process`, so it is dropped first: the daemon's
    /// graceful shutdown waits for the connection to close.
    client: Client,
    process: Spawned,
    /// The backend its ready line reported.
    backend: String,
    /// RecordError events seen (a recording's writer fell behind, or a
    /// write failed), counted by a watcher for the record-* kinds.
    record_errors: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Daemon {
    /// Starts legatod on backend `io`, sized for `calls` calls, with media
    /// ports `ports`, and connects to its gRPC port.
    fn spawn(
        cli: &Cli,
        runtime: &tokio::runtime::Runtime,
        io: &str,
        calls: usize,
        ports: (u16, u16),
    ) -> Result<Self> {
        let process = Spawned::start(
            &legatod_path(cli)?,
            &target::legatod_args(io, calls, cli.shards, ports),
            cli.pin_daemon,
            "legatod ready",
        )?;
        let grpc = process
            .field("grpc")
            .context("legatod's ready line has no grpc=")?
            .to_owned();
        let backend = process.field("backend").unwrap_or(io).to_owned();
        let client = runtime
            .block_on(Client::connect(format!("http://{grpc}")))
            .with_context(|| format!("connecting to legatod at {grpc}"))?;
        let record_errors = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        if cli.call_kind.recording().is_some() {
            let (client, count) = (client.clone(), record_errors.clone());
            runtime.spawn(async move {
                use futures::StreamExt as _;
                let Ok(mut events) = client.watch_events(legato_client::EventFilter::new()).await
                else {
                    return;
                };
                while let Some(Ok(event)) = events.next().await {
                    if let Some(legato_client::proto::event::Kind::RecordError(e)) = event.kind
                        && count.fetch_add(1, std::sync::atomic::Ordering::Relaxed) == 0
                    {
                        eprintln!("RecordError: {}", e.error);
                    }
                }
            });
        }
        Ok(Self {
            client,
            process,
            backend,
            record_errors,
        })
    }

    /// Closes the connection, then stops the process.
    fn stop(self) -> Result<()> {
        let Self {
            client,
            mut process,
            record_errors,
            ..
        } = self;
        drop(client);
        let stopped = process.stop();
        // The record-* kinds' files: their size says what was written.
        let bytes = target::remove_recordings();
        if bytes > 0 {
            eprintln!(
                "recordings: {:.1} MB written (removed); {} RecordError events (writers falling behind or failing)",
                bytes as f64 / 1e6,
                record_errors.load(std::sync::atomic::Ordering::Relaxed)
            );
        }
        stopped
    }
}

/// Runs `body` against a legatod: a fresh one (with --spawn) or the one at
/// --endpoint. `body` gets the client, the pid and the backend name.
fn with_legatod<T>(
    cli: &Cli,
    runtime: &tokio::runtime::Runtime,
    io: &str,
    calls: usize,
    body: impl FnOnce(&Client, u32, &str) -> Result<T>,
) -> Result<T> {
    if cli.spawn {
        let daemon = Daemon::spawn(cli, runtime, io, calls, target::MEDIA_PORTS)?;
        let result = body(&daemon.client, daemon.process.pid, &daemon.backend);
        daemon.stop()?;
        result
    } else {
        let endpoint = cli
            .endpoint
            .as_deref()
            .context("legatod needs --spawn or --endpoint")?;
        let pid = match cli.pid {
            Some(pid) => pid,
            None => find_legatod()?,
        };
        let client = runtime.block_on(Client::connect(endpoint))?;
        body(&client, pid, io)
    }
}

/// Samples taken at the window's edges.
#[derive(Debug, Default)]
struct Samples {
    target: Option<ProcSample>,
    generator: Option<ProcSample>,
    udp: UdpCounters,
    machine_busy_s: Option<f64>,
}

impl Samples {
    fn take(pid: u32) -> Self {
        Self {
            target: ProcSample::of(pid).ok(),
            generator: ProcSample::current().ok(),
            udp: UdpCounters::read(),
            machine_busy_s: procfs::machine_busy_s(),
        }
    }
}

/// One generator run with the samples at its window's edges.
#[derive(Debug)]
struct Measured {
    stats: RunStats,
    before: Samples,
    after: Samples,
    /// Drops at the generator's own sockets, warm-up to drain.
    generator_drops: u64,
}

/// Runs the generator for `timing` with the first `active` calls sending.
fn measure(generator: &mut Generator, pid: u32, timing: Timing, active: usize) -> Measured {
    let (mut before, mut after) = (Samples::default(), Samples::default());
    // Reading /proc/net/udp walks every UDP socket of the machine (tens of
    // ms with a loaded relay's thousands): only while the generator is
    // idle, before its warm-up and after its drain, never at the window's
    // edges where it would stall the sending.
    let ports = generator.local_ports();
    let drops_before = procfs::udp_socket_drops(&ports);
    let stats = generator.run(timing, active, &mut |phase| match phase {
        Phase::WindowStart => before = Samples::take(pid),
        Phase::WindowEnd => after = Samples::take(pid),
    });
    let generator_drops = procfs::udp_socket_drops(&ports).saturating_sub(drops_before);
    Measured {
        stats,
        before,
        after,
        generator_drops,
    }
}

/// A relay ready to measure: its generator has every call set up through
/// it.
#[derive(Debug)]
struct Prepared {
    /// "legatod" or "floor".
    target: &'static str,
    /// Backend, as reported in [`Point::io`].
    io: String,
    /// The relay process.
    pid: u32,
    generator: Generator,
    /// The relay's RSS before calls were set up, KiB.
    rss_idle_kib: u64,
    /// Call setup time through gRPC, s (legatod only).
    setup_s: Option<f64>,
    /// What a call is (the floor: relay).
    kind: CallKind,
    /// A non-relay kind's units and the client that switches their routes
    /// on for each window and off after it.
    units: Option<(Client, Vec<Unit>)>,
}

impl Prepared {
    /// Measures one window of `timing` with the first `active` calls
    /// sending (0: all). A non-relay kind's routes are on only for the
    /// window (with its warm-up and drain).
    fn measure(
        &mut self,
        cli: &Cli,
        runtime: &tokio::runtime::Runtime,
        timing: Timing,
        active: usize,
    ) -> Result<Point> {
        self.measure_recorded(cli, runtime, timing, active, true)
    }

    /// [`measure`](Self::measure), with the record-* kinds' recordings
    /// left off when `record` is false (the row then says `relay`).
    fn measure_recorded(
        &mut self,
        cli: &Cli,
        runtime: &tokio::runtime::Runtime,
        timing: Timing,
        active: usize,
        record: bool,
    ) -> Result<Point> {
        let legs = self.kind.legs() * self.generator.calls();
        let sending = if active == 0 {
            self.generator.calls()
        } else {
            active.min(self.generator.calls())
        };
        // Only the sending units' routes: an idle unit on the PCM path would
        // still send (silence) to its streams.
        let route = |units: &Option<(Client, Vec<Unit>)>, on: bool| -> Result<()> {
            if let Some((client, units)) = units {
                let mut units = units[..sending.min(units.len())].to_vec();
                if !record {
                    for unit in &mut units {
                        unit.extra = None;
                    }
                }
                runtime
                    .block_on(target::route_units(
                        client,
                        &units,
                        on,
                        cli.setup_concurrency,
                    ))
                    .with_context(|| {
                        format!("switching routes {}", if on { "on" } else { "off" })
                    })?;
            }
            Ok(())
        };
        route(&self.units, true)?;
        let m = measure(&mut self.generator, self.pid, timing, active);
        route(&self.units, false)?;
        let mut p = point(
            self.target,
            &self.io,
            active,
            legs,
            &m,
            self.rss_idle_kib,
            cli.starve_factor,
        );
        p.setup_s = self.setup_s;
        p.call_kind = if record || self.kind.extra().is_none() {
            self.kind.to_string()
        } else {
            CallKind::Relay.to_string()
        };
        p.floor_calls = self.kind.floor_calls(sending);
        if self.generator.accounts_by_header() {
            p.latency = None;
            let expected = m.stats.received + m.stats.lost;
            p.loss_percent = if expected == 0 {
                0.0
            } else {
                m.stats.lost as f64 * 100.0 / expected as f64
            };
        }
        Ok(p)
    }
}

/// Measures `loads` on a prepared target: one point per entry, the calls
/// sending in it. Phased (`--phases`): phase index set, one warm-up.
fn measure_points(
    cli: &Cli,
    runtime: &tokio::runtime::Runtime,
    relay: &mut Prepared,
    loads: &[usize],
) -> Result<Vec<Point>> {
    let mut points = Vec::with_capacity(loads.len());
    for (k, &calls) in loads.iter().enumerate() {
        let mut p = relay.measure(cli, runtime, timing(cli, k), calls)?;
        p.phase = (!cli.phases.is_empty()).then_some(k);
        eprintln!("{}", one_line(&p));
        points.push(p);
    }
    Ok(points)
}

fn cpu(delta: CpuDelta, window_s: f64, packets: u64) -> Cpu {
    let per = |s: f64| {
        if packets == 0 {
            0.0
        } else {
            s * 1e6 / packets as f64
        }
    };
    Cpu {
        stat_s: delta.stat_s,
        sched_s: delta.sched_s,
        percent: delta.best_s() / window_s.max(1e-9) * 100.0,
        us_per_packet: per(delta.best_s()),
        us_per_packet_stat: per(delta.stat_s),
    }
}

fn point(
    target: &str,
    io: &str,
    calls: usize,
    legs: usize,
    m: &Measured,
    rss_idle_kib: u64,
    starve_factor: f64,
) -> Point {
    let (stats, before, after) = (&m.stats, &m.before, &m.after);
    let w = stats.window_s.max(1e-9);
    let h = &stats.latency;
    let us = |ns: u64| ns as f64 / 1e3;
    let delta = |a: &Option<ProcSample>, b: &Option<ProcSample>| match (a, b) {
        (Some(a), Some(b)) => b.cpu_since(a),
        _ => CpuDelta::default(),
    };
    let rss_loaded_kib = after.target.map_or(0, |s| s.rss_kib);
    let target_cpu = delta(&before.target, &after.target);
    let generator_cpu = delta(&before.generator, &after.generator);
    let other_cpu_percent = match (before.machine_busy_s, after.machine_busy_s) {
        (Some(a), Some(b)) => {
            Some(((b - a) - target_cpu.stat_s - generator_cpu.stat_s).max(0.0) / w * 100.0)
        }
        _ => None,
    };
    Point {
        target: target.to_owned(),
        io: io.to_owned(),
        call_kind: CallKind::Relay.to_string(),
        calls,
        floor_calls: calls,
        legs,
        phase: None,
        round: None,
        starved_streams: stats.starved_streams(starve_factor),
        stream_loss_max_percent: stats.worst_stream_loss_percent(),
        window_s: stats.window_s,
        offered_pps: stats.offered as f64 / w,
        received_pps: stats.received as f64 / w,
        offered: stats.offered,
        received: stats.received,
        lost: stats.lost,
        loss_percent: if stats.offered == 0 {
            0.0
        } else {
            stats.lost as f64 * 100.0 / stats.offered as f64
        },
        duplicates: stats.duplicates,
        reordered: stats.reordered,
        send_errors: stats.send_errors,
        udp_rcvbuf_errors: after.udp.since(&before.udp).rcvbuf_errors,
        generator_socket_drops: m.generator_drops,
        latency: Some(Latency {
            p50_us: us(h.quantile(0.5)),
            p99_us: us(h.quantile(0.99)),
            p999_us: us(h.quantile(0.999)),
            max_us: us(h.max()),
            mean_us: h.mean() / 1e3,
        }),
        target_cpu: cpu(target_cpu, stats.window_s, stats.received),
        rss_idle_kib,
        rss_loaded_kib,
        rss_per_leg_kib: rss_loaded_kib.saturating_sub(rss_idle_kib) as f64 / legs as f64,
        generator_cpu: cpu(
            generator_cpu,
            stats.window_s,
            stats.offered + stats.received,
        ),
        other_cpu_percent,
        generator_send_lag_p99_us: us(stats.send_lag.quantile(0.99)),
        generator_send_lag_max_us: us(stats.send_lag.max()),
        setup_s: None,
        cpu_ratio_to_floor: None,
    }
}

/// Sets up `calls` calls on a legatod (pid `pid`, reached through
/// `client`) for a fresh generator pointed at them. Returns the relay and
/// the calls (to tear down on a legatod that outlives the run).
fn prepare_legatod(
    cli: &Cli,
    runtime: &tokio::runtime::Runtime,
    client: &Client,
    pid: u32,
    backend: &str,
    calls: usize,
) -> Result<(Prepared, Vec<String>)> {
    if !cli.call_kind.is_relay() {
        return prepare_units(cli, runtime, client, pid, backend, calls);
    }
    let mut generator = Generator::new(calls, cli.gen_sockets)?;
    let rss_idle_kib = ProcSample::of(pid).map_or(0, |s| s.rss_kib);
    let peers: Vec<(SocketAddr, SocketAddr)> = (0..calls)
        .map(|i| (generator.peer_addr(i, 0), generator.peer_addr(i, 1)))
        .collect();
    let started = Instant::now();
    let bridged = runtime.block_on(target::bridge_all(client, &peers, cli.setup_concurrency))?;
    let setup_s = started.elapsed().as_secs_f64();
    for (i, call) in bridged.iter().enumerate() {
        generator.set_relay(i, call.a, call.b);
    }
    let relay = Prepared {
        target: "legatod",
        io: backend.to_owned(),
        pid,
        generator,
        rss_idle_kib,
        setup_s: Some(setup_s),
        kind: CallKind::Relay,
        units: None,
    };
    let sessions = bridged.into_iter().map(|c: Call| c.session).collect();
    Ok((relay, sessions))
}

/// [`prepare_legatod`] for a non-relay --call-kind: `calls` units (bridged
/// calls of two codecs, or conferences), their routes off until measured;
/// each stream's output accounted by the leg address it comes from.
fn prepare_units(
    cli: &Cli,
    runtime: &tokio::runtime::Runtime,
    client: &Client,
    pid: u32,
    backend: &str,
    calls: usize,
) -> Result<(Prepared, Vec<String>)> {
    let kind = cli.call_kind;
    let per_unit = kind.legs();
    let mut generator = Generator::with_units(calls, per_unit, cli.gen_sockets)?;
    let rss_idle_kib = ProcSample::of(pid).map_or(0, |s| s.rss_kib);
    let peers: Vec<Vec<SocketAddr>> = (0..calls)
        .map(|i| (0..per_unit).map(|m| generator.peer_addr(i, m)).collect())
        .collect();
    let started = Instant::now();
    let units = runtime.block_on(target::setup_units(
        client,
        kind,
        &peers,
        cli.setup_concurrency,
    ))?;
    let setup_s = started.elapsed().as_secs_f64();
    for (i, unit) in units.iter().enumerate() {
        let base = per_unit * i;
        match kind.side_b() {
            // Stream 2i (A → B) comes out of leg B, 2i+1 out of leg A.
            Some(codec_b) => {
                generator.set_stream(base, unit.legs[0], Codec::Pcmu);
                generator.set_stream(base + 1, unit.legs[1], codec_b);
                generator.set_output_source(base, unit.legs[1]);
                generator.set_output_source(base + 1, unit.legs[0]);
            }
            // Member m talks to and hears the mix from its own leg.
            None => {
                for (m, &leg) in unit.legs.iter().enumerate() {
                    generator.set_stream(base + m, leg, Codec::Pcmu);
                    generator.set_output_source(base + m, leg);
                }
            }
        }
    }
    let sessions = units.iter().map(|u| u.session.clone()).collect();
    let relay = Prepared {
        target: "legatod",
        io: backend.to_owned(),
        pid,
        generator,
        rss_idle_kib,
        setup_s: Some(setup_s),
        kind,
        units: Some((client.clone(), units)),
    };
    Ok((relay, sessions))
}

/// Sets up max(loads) calls on one legatod and measures each load on it.
fn legatod_points(
    cli: &Cli,
    runtime: &tokio::runtime::Runtime,
    io: &str,
    loads: &[usize],
) -> Result<Vec<Point>> {
    let calls = loads.iter().copied().max().unwrap_or(0);
    // legatod is sized in bridged calls: as many legs.
    let size = cli.call_kind.floor_calls(calls);
    with_legatod(cli, runtime, io, size, |client, pid, backend| {
        let (mut relay, sessions) = prepare_legatod(cli, runtime, client, pid, backend, calls)?;
        let points = measure_points(cli, runtime, &mut relay, loads)?;
        if !cli.spawn {
            runtime.block_on(target::teardown_sessions(
                client,
                sessions,
                cli.setup_concurrency,
            ))?;
        }
        Ok(points)
    })
}

/// Starts a floor relay for `calls` calls and a fresh generator pointed at
/// its sockets.
fn start_floor(cli: &Cli, calls: usize) -> Result<(Spawned, Prepared)> {
    let generator = Generator::new(calls, cli.gen_sockets)?;
    let mut args = vec![
        "floor-server".to_owned(),
        "--calls".to_owned(),
        calls.to_string(),
        "--port-base".to_owned(),
        cli.floor_port_base.to_string(),
    ];
    if cli.floor_connect {
        args.push("--connect".to_owned());
    }
    let process = Spawned::start(
        &std::env::current_exe()?,
        &args,
        cli.pin_daemon,
        floor::READY_PREFIX,
    )?;
    let rss_idle_kib = ProcSample::of(process.pid).map_or(0, |s| s.rss_kib);
    let ports = floor::parse_ports(&process.ready_line)?;
    if ports.len() != 2 * calls {
        bail!("floor relay bound {} ports for {calls} calls", ports.len());
    }
    let mut relay = Prepared {
        target: "floor",
        io: if cli.floor_connect {
            "epoll+connect"
        } else {
            "epoll"
        }
        .to_owned(),
        pid: process.pid,
        generator,
        rss_idle_kib,
        setup_s: None,
        kind: CallKind::Relay,
        units: None,
    };
    for i in 0..calls {
        let port = |side: usize| ports[2 * i + side];
        relay.generator.set_relay(
            i,
            SocketAddrV4::new(Ipv4Addr::LOCALHOST, port(0)),
            SocketAddrV4::new(Ipv4Addr::LOCALHOST, port(1)),
        );
    }
    Ok((process, relay))
}

/// Starts one floor relay for max(loads) calls and measures each load on it
/// (`loads` in calls of --call-kind: the floor relays as many packets).
fn floor_points(
    cli: &Cli,
    runtime: &tokio::runtime::Runtime,
    loads: &[usize],
) -> Result<Vec<Point>> {
    let loads: Vec<usize> = loads
        .iter()
        .map(|&l| cli.call_kind.floor_calls(l))
        .collect();
    let calls = loads.iter().copied().max().unwrap_or(0);
    let (mut process, mut relay) = start_floor(cli, calls)?;
    let points = measure_points(cli, runtime, &mut relay, &loads);
    process.stop()?;
    points
}

/// The process behind a target kept alive for a whole interleaved load
/// point.
#[derive(Debug)]
enum Process {
    /// The floor relay.
    Floor(Spawned),
    /// Boxed: a client is much larger than a bare process.
    Legatod(Box<Daemon>),
}

impl Process {
    /// Stops the process (a legatod after closing its client).
    fn stop(self) -> Result<()> {
        match self {
            Self::Floor(mut p) => p.stop(),
            Self::Legatod(d) => d.stop(),
        }
    }
}

/// Interleaved rounds at `calls` calls (--rounds): starts the floor (with
/// --target floor|both) and one legatod per backend (with --target
/// legatod|both), each on its own media ports, sets every one up, then
/// measures them in turn --rounds times while the others sit idle. One
/// point per target and round, round index set.
fn rounds_points(cli: &Cli, runtime: &tokio::runtime::Runtime, calls: usize) -> Result<Vec<Point>> {
    let ios: &[&str] = if cli.target == TargetSel::Floor {
        &[]
    } else {
        cli.io.flags()
    };
    let ranges = target::port_ranges(ios.len());
    // legatod and the floor are sized in bridged calls of as many legs.
    let size = cli.call_kind.floor_calls(calls);
    if let Some(&ports) = ranges.first()
        && size > target::calls_in_range(ports)
    {
        bail!(
            "{calls} calls need {} media ports per legatod, but with {} legatod(s) side by side each gets {}-{} ({} calls)",
            size * target::PORTS_PER_CALL,
            ios.len(),
            ports.0,
            ports.1,
            target::calls_in_range(ports)
        );
    }
    // On an early return the processes stop on drop (a legatod's client
    // is closed before its process gets SIGTERM).
    let mut targets: Vec<(Process, Prepared)> = Vec::new();
    if cli.target != TargetSel::Legatod {
        let (process, relay) = start_floor(cli, size).context("floor")?;
        targets.push((Process::Floor(process), relay));
    }
    for (&io, ports) in ios.iter().zip(ranges) {
        let daemon = Daemon::spawn(cli, runtime, io, size, ports)
            .with_context(|| format!("starting legatod {io}"))?;
        let (relay, _) = prepare_legatod(
            cli,
            runtime,
            &daemon.client,
            daemon.process.pid,
            &daemon.backend,
            calls,
        )
        .with_context(|| format!("setting up {calls} calls on legatod {io}"))?;
        targets.push((Process::Legatod(Box::new(daemon)), relay));
    }
    let mut points = Vec::with_capacity(cli.rounds * targets.len());
    for round in 0..cli.rounds {
        let timing = round_timing(cli, round);
        for (_, relay) in &mut targets {
            let active = if relay.target == "floor" { size } else { calls };
            let baseline =
                cli.record_baseline && relay.target != "floor" && cli.call_kind.extra().is_some();
            if baseline {
                let mut p = relay.measure_recorded(cli, runtime, timing, active, false)?;
                p.round = Some(round);
                eprintln!("{}", one_line(&p));
                points.push(p);
            }
            let mut p = relay.measure(cli, runtime, timing, active)?;
            p.round = Some(round);
            eprintln!("{}", one_line(&p));
            points.push(p);
        }
    }
    if cli.record_baseline {
        print_recording_extra(&points);
    }
    // Stop every process, even after one fails to stop; report the first
    // failure.
    let mut stopped = Ok(());
    for (process, relay) in targets {
        drop(relay);
        let result = process.stop();
        if stopped.is_ok() {
            stopped = result;
        }
    }
    stopped?;
    Ok(points)
}
