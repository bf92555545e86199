//! The processes under test: starting legatod or the floor relay (pinned
//! with `taskset` when asked), reading their ready lines, setting up calls
//! through legatod's gRPC API, and stopping them.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, SocketAddrV4};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use legato_client::{Client, CreateLeg, MediaEndpoint, UpdateLeg, proto};

use crate::kind::{CallKind, Codec, Extra};

/// A process started by the load generator; SIGTERM and wait on drop.
#[derive(Debug)]
pub struct Spawned {
    child: Option<Child>,
    /// Process id (the target itself: `taskset` execs it).
    pub pid: u32,
    /// The ready line it printed.
    pub ready_line: String,
}

impl Spawned {
    /// Runs `program args`, pinned to `cpu` through `taskset -c` when given,
    /// and waits up to 30 s for a stdout line starting with `ready_prefix`.
    pub fn start(
        program: &Path,
        args: &[String],
        cpu: Option<usize>,
        ready_prefix: &str,
    ) -> Result<Self> {
        let mut command = match cpu {
            Some(cpu) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(cpu.to_string()).arg(program);
                c
            }
            None => Command::new(program),
        };
        let mut child = command
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let stdout = child.stdout.take().context("child stdout")?;
        let stderr = child.stderr.take().context("child stderr")?;
        let name = program
            .file_name()
            .map_or_else(|| "target".to_owned(), |n| n.to_string_lossy().into_owned());
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[{name}] {line}");
            }
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let prefix = ready_prefix.to_owned();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            for line in lines.by_ref().map_while(Result::ok) {
                if line.starts_with(&prefix) {
                    let _ = tx.send(line);
                    break;
                }
            }
            // Keep draining so the child never blocks on a full pipe.
            for _ in lines {}
        });
        let pid = child.id();
        let mut this = Self {
            child: Some(child),
            pid,
            ready_line: String::new(),
        };
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => this.ready_line = line,
            Err(_) => bail!("{} did not print its ready line", program.display()),
        }
        Ok(this)
    }

    /// The value of `name=` in the ready line.
    pub fn field(&self, name: &str) -> Option<&str> {
        let key = format!("{name}=");
        self.ready_line
            .split_whitespace()
            .find_map(|w| w.strip_prefix(key.as_str()))
    }

    /// Sends SIGTERM and waits (at most 20 s, then SIGKILL).
    pub fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id())?);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        drop(child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if child.try_wait()?.is_some() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("process {} did not exit within 20 s of SIGTERM", child.id());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// The media port range the load generator gives the legatods it spawns.
pub const MEDIA_PORTS: (u16, u16) = (20_000, 59_999);

/// Media ports a legatod needs per bridged call: an RTP/RTCP pair per leg.
pub const PORTS_PER_CALL: usize = 4;

/// [`MEDIA_PORTS`] split into `count` disjoint ranges of equal size (a
/// multiple of 4 ports, each starting on an even port), one per legatod
/// alive at the same time. legatod's port pool would skip ports another
/// process holds, but every skip costs a failed `bind` on the setup path,
/// so legatods running side by side get ranges of their own.
pub fn port_ranges(count: usize) -> Vec<(u16, u16)> {
    if count == 0 {
        return Vec::new();
    }
    let (min, max) = (usize::from(MEDIA_PORTS.0), usize::from(MEDIA_PORTS.1));
    let size = (max - min + 1) / count / PORTS_PER_CALL * PORTS_PER_CALL;
    (0..count)
        .map(|k| {
            let first = min + k * size;
            // Both ends stay within MEDIA_PORTS, so they fit in u16.
            let port = |p: usize| u16::try_from(p).unwrap_or(u16::MAX);
            (port(first), port(first + size - 1))
        })
        .collect()
}

/// Calls a legatod with media ports `ports` can bridge.
pub fn calls_in_range(ports: (u16, u16)) -> usize {
    (usize::from(ports.1) + 1).saturating_sub(usize::from(ports.0)) / PORTS_PER_CALL
}

/// Flags for a legatod started by the load generator: one shard, media
/// ports `ports` (4 per call; [`MEDIA_PORTS`] unless several legatods run
/// at once), limits above the load.
pub fn legatod_args(io: &str, calls: usize, shards: usize, ports: (u16, u16)) -> Vec<String> {
    let legs = (2 * calls + 16).to_string();
    [
        "--grpc-listen",
        "127.0.0.1:0",
        "--port-min",
        &ports.0.to_string(),
        "--port-max",
        &ports.1.to_string(),
        "--shards",
        &shards.to_string(),
        "--io",
        io,
        "--max-legs",
        &legs,
        "--max-sessions",
        &legs,
        "--recording-dir",
        &recording_dir().to_string_lossy(),
        "--recording-min-free-mb",
        "0",
        "--max-recordings",
        &legs,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// An SDP offer for a generator peer at `addr`: PCMU only, sendrecv.
pub fn offer(addr: SocketAddr) -> String {
    format!(
        "v=0\r\no=loadgen 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n",
        ip = addr.ip(),
        port = addr.port()
    )
}

/// An SDP offer for a generator peer at `addr` offering only `codec`.
pub fn offer_codec(addr: SocketAddr, codec: Codec) -> String {
    format!(
        "v=0\r\no=loadgen 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP {pt}\r\na=rtpmap:{pt} {map}\r\na=sendrecv\r\n",
        ip = addr.ip(),
        port = addr.port(),
        pt = codec.payload_type(),
        map = codec.rtpmap(),
    )
}

/// Local RTP address of a leg.
pub fn leg_addr(leg: &proto::Leg) -> Result<SocketAddrV4> {
    let a = leg
        .local_rtp
        .as_ref()
        .ok_or_else(|| anyhow!("leg {} has no local address", leg.leg_id))?;
    Ok(SocketAddrV4::new(a.ip.parse()?, u16::try_from(a.port)?))
}

/// One bridged call: its session and the relay addresses of its legs.
#[derive(Clone, Debug)]
pub struct Call {
    /// Session id.
    pub session: String,
    /// Leg A's local RTP address (side A sends here).
    pub a: SocketAddrV4,
    /// Leg B's local RTP address.
    pub b: SocketAddrV4,
}

/// Sets up one bridged call: session, two incoming legs answered and
/// connected, media both ways.
pub async fn bridge(client: &Client, peer_a: SocketAddr, peer_b: SocketAddr) -> Result<Call> {
    let session = client.create_session(None).await?;
    let mut addrs = Vec::with_capacity(2);
    let mut ids = Vec::with_capacity(2);
    for peer in [peer_a, peer_b] {
        let created = client
            .create_leg(CreateLeg::incoming(&session, offer(peer)))
            .await?;
        client
            .update_leg(UpdateLeg::new(&created.leg.leg_id).state(proto::LegState::Connected))
            .await?;
        addrs.push(leg_addr(&created.leg)?);
        ids.push(created.leg.leg_id);
    }
    client.send_media(ids[0].as_str(), ids[1].as_str()).await?;
    client.send_media(ids[1].as_str(), ids[0].as_str()).await?;
    Ok(Call {
        session,
        a: addrs[0],
        b: addrs[1],
    })
}

/// Sets up `peers.len()` calls with `concurrency` in flight.
pub async fn bridge_all(
    client: &Client,
    peers: &[(SocketAddr, SocketAddr)],
    concurrency: usize,
) -> Result<Vec<Call>> {
    let client = client.clone();
    in_parallel(peers.to_vec(), concurrency, move |i, (a, b)| {
        let client = client.clone();
        async move {
            bridge(&client, a, b)
                .await
                .with_context(|| format!("setting up call {i}"))
        }
    })
    .await
}

/// Runs `task` on every item, `concurrency` at a time, and returns the
/// results in the items' order; the first error ends the run.
async fn in_parallel<I, O, F, Fut>(items: Vec<I>, concurrency: usize, task: F) -> Result<Vec<O>>
where
    I: Clone + Send + Sync + 'static,
    O: Clone + Send + 'static,
    F: Fn(usize, I) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<O>> + Send,
{
    let items: Arc<[I]> = items.into();
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (items, next, task) = (items.clone(), next.clone(), task.clone());
        tasks.spawn(async move {
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i).cloned() else {
                    return Ok::<_, anyhow::Error>(done);
                };
                done.push((i, task(i, item).await?));
            }
        });
    }
    let mut results: Vec<Option<O>> = vec![None; items.len()];
    while let Some(joined) = tasks.join_next().await {
        for (i, result) in joined?? {
            results[i] = Some(result);
        }
    }
    results
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.ok_or_else(|| anyhow!("item {i} was not done")))
        .collect()
}

/// One unit of load of a non-relay kind set up on legatod: a transcoded
/// call (legs A, B) or a conference (its members' legs), with the routes
/// that carry its media, switched on only while it is measured (legatod's
/// PCM path sends every 20 ms whether or not its source sends).
#[derive(Clone, Debug)]
pub struct Unit {
    /// Session id.
    pub session: String,
    /// The legs' local RTP addresses, in the order of the unit's peers.
    pub legs: Vec<SocketAddrV4>,
    /// Routes (from, to) of the unit's media.
    pub routes: Vec<(MediaEndpoint, MediaEndpoint)>,
    /// A leg recorded, or with detectors or tone handling on, while the
    /// routes are on.
    pub extra: Option<(String, Extra)>,
}

/// Creates an incoming leg for `peer` offering only `codec`, connects it
/// and checks legatod answered with that codec.
async fn leg_offering(
    client: &Client,
    session: &str,
    peer: SocketAddr,
    codec: Codec,
    kind: CallKind,
) -> Result<proto::Leg> {
    let mut params = CreateLeg::incoming(session, offer_codec(peer, codec))
        .always_transcode(kind.always_transcode());
    if codec != Codec::Pcmu {
        params = params.codec(codec.name());
    }
    let created = client.create_leg(params).await.map_err(|e| {
        anyhow!(
            "{kind}: side B offered only {} and legatod refused it ({e}); this legatod does not negotiate {}",
            codec.rtpmap(),
            codec.name()
        )
    })?;
    let answered = created
        .leg
        .codec
        .as_ref()
        .map_or("(none)", |c| c.name.as_str());
    if !answered.eq_ignore_ascii_case(codec.name()) {
        bail!(
            "{kind}: side B offered only {} but legatod answered with {answered}",
            codec.rtpmap()
        );
    }
    client
        .update_leg(UpdateLeg::new(&created.leg.leg_id).state(proto::LegState::Connected))
        .await?;
    Ok(created.leg)
}

/// Sets up one unit of `kind` (not [`CallKind::Relay`]) for `peers` (2 for
/// a bridged kind, N for a conference of N), routes off.
pub async fn setup_unit(client: &Client, kind: CallKind, peers: &[SocketAddr]) -> Result<Unit> {
    let session = client.create_session(None).await?;
    let mut legs = Vec::with_capacity(peers.len());
    let mut routes = Vec::with_capacity(2 * peers.len());
    let mut extra = None;
    match kind.side_b() {
        Some(codec_b) => {
            let [a, b] = peers else {
                bail!("a bridged call has 2 peers, not {}", peers.len());
            };
            let leg_a = leg_offering(client, &session, *a, Codec::Pcmu, kind).await?;
            let leg_b = leg_offering(client, &session, *b, codec_b, kind).await?;
            legs.push(leg_addr(&leg_a)?);
            legs.push(leg_addr(&leg_b)?);
            extra = kind.extra().map(|e| (leg_a.leg_id.clone(), e));
            let (a, b) = (
                MediaEndpoint::Leg(leg_a.leg_id),
                MediaEndpoint::Leg(leg_b.leg_id),
            );
            routes.push((a.clone(), b.clone()));
            routes.push((b, a));
        }
        None => {
            let conference = MediaEndpoint::Conference(client.create_conference(&session).await?);
            for &peer in peers {
                let leg = leg_offering(client, &session, peer, Codec::Pcmu, kind).await?;
                legs.push(leg_addr(&leg)?);
                let leg = MediaEndpoint::Leg(leg.leg_id);
                routes.push((leg.clone(), conference.clone()));
                routes.push((conference.clone(), leg));
            }
        }
    }
    Ok(Unit {
        session,
        legs,
        routes,
        extra,
    })
}

/// Sets up one unit of `kind` per entry of `peers`, `concurrency` at a time.
pub async fn setup_units(
    client: &Client,
    kind: CallKind,
    peers: &[Vec<SocketAddr>],
    concurrency: usize,
) -> Result<Vec<Unit>> {
    let client = client.clone();
    in_parallel(peers.to_vec(), concurrency, move |i, p| {
        let client = client.clone();
        async move {
            setup_unit(&client, kind, &p)
                .await
                .with_context(|| format!("setting up {kind} unit {i}"))
        }
    })
    .await
}

/// Switches the routes of `units` on (SendMedia) or off (StopMedia),
/// `concurrency` RPCs at a time.
pub async fn route_units(
    client: &Client,
    units: &[Unit],
    on: bool,
    concurrency: usize,
) -> Result<()> {
    let routes: Arc<[(MediaEndpoint, MediaEndpoint)]> = units
        .iter()
        .flat_map(|u| u.routes.iter().cloned())
        .collect();
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (client, routes, next) = (client.clone(), routes.clone(), next.clone());
        tasks.spawn(async move {
            while let Some((from, to)) = routes.get(next.fetch_add(1, Ordering::Relaxed)) {
                if on {
                    client.send_media(from.clone(), to.clone()).await?;
                } else {
                    client.stop_media(from.clone(), to.clone()).await?;
                }
            }
            Ok::<_, legato_client::Error>(())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined??;
    }
    // Recordings, detectors and tone handling run while the routes are on.
    let extras: Arc<[(String, Extra)]> = units.iter().filter_map(|u| u.extra.clone()).collect();
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (client, extras, next) = (client.clone(), extras.clone(), next.clone());
        tasks.spawn(async move {
            while let Some((leg, extra)) = extras.get(next.fetch_add(1, Ordering::Relaxed)) {
                switch_extra(&client, leg, *extra, on).await?;
            }
            Ok::<_, legato_client::Error>(())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined??;
    }
    Ok(())
}

/// Turns `extra` on or off for `leg`.
async fn switch_extra(
    client: &Client,
    leg: &str,
    extra: Extra,
    on: bool,
) -> Result<(), legato_client::Error> {
    match (extra, on) {
        (Extra::Record(format), true) => {
            client
                .start_recording(proto::StartRecordingRequest {
                    leg_id: leg.to_owned(),
                    format: format.into(),
                    ..Default::default()
                })
                .await?;
        }
        (Extra::Record(_), false) => client.stop_recording(leg, None).await?,
        (Extra::Detect, true) => {
            client.set_mic_status_handling(leg, true).await?;
            client.enable_beep_detection(leg, 0).await?;
            client
                .start_audio_identification(proto::StartAudioIdentificationRequest {
                    leg_id: leg.to_owned(),
                    ..Default::default()
                })
                .await?;
        }
        (Extra::Detect, false) => {
            client.set_mic_status_handling(leg, false).await?;
            // Either may have ended on its own (a beep found, a verdict
            // reached): refused then, which is fine.
            let _ = client.disable_beep_detection(leg).await;
            let _ = client.stop_audio_identification(leg).await;
        }
        (Extra::Tones, on) => client.set_tone_handling(leg, on).await?,
        (Extra::DetectTones, on) => client.set_tone_detection(leg, on).await?,
        (Extra::All, on) => {
            Box::pin(switch_extra(client, leg, Extra::DetectTones, on)).await?;
            Box::pin(switch_extra(client, leg, Extra::Detect, on)).await?;
            if on {
                client.enable_tone_detection(leg, Vec::new()).await?;
            } else {
                // Refused if it fired (it does not on this traffic).
                let _ = client.disable_tone_detection(leg).await;
            }
        }
    }
    Ok(())
}

/// Where a spawned legatod writes recordings (the `record-*` kinds): a
/// directory of this process, emptied at start and removed by
/// [`remove_recordings`].
pub fn recording_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("legato-loadgen-rec-{}", std::process::id()))
}

/// Removes [`recording_dir`] and what is in it: its size in bytes before.
pub fn remove_recordings() -> u64 {
    let dir = recording_dir();
    let size = std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    let _ = std::fs::remove_dir_all(&dir);
    size
}

/// Deletes every session of `calls`, `concurrency` at a time.
pub async fn teardown_all(client: &Client, calls: &[Call], concurrency: usize) -> Result<()> {
    let sessions = calls.iter().map(|c| c.session.clone()).collect();
    teardown_sessions(client, sessions, concurrency).await
}

/// Deletes `sessions`, `concurrency` at a time.
pub async fn teardown_sessions(
    client: &Client,
    sessions: Vec<String>,
    concurrency: usize,
) -> Result<()> {
    let sessions: Arc<[String]> = sessions.into();
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (client, sessions, next) = (client.clone(), sessions.clone(), next.clone());
        tasks.spawn(async move {
            while let Some(s) = sessions.get(next.fetch_add(1, Ordering::Relaxed)) {
                client.delete_session(s).await?;
            }
            Ok::<_, legato_client::Error>(())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined??;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges_are_disjoint_and_cover_the_load() {
        assert!(port_ranges(0).is_empty());
        assert_eq!(port_ranges(1), [MEDIA_PORTS]);
        assert_eq!(port_ranges(2), [(20_000, 39_999), (40_000, 59_999)]);
        let three = port_ranges(3);
        assert_eq!(three.len(), 3);
        for pair in three.windows(2) {
            assert!(pair[0].1 < pair[1].0, "{three:?}");
        }
        for &(min, max) in &three {
            assert_eq!(min % 2, 0, "{three:?}");
            assert!(max <= MEDIA_PORTS.1, "{three:?}");
            assert_eq!(calls_in_range((min, max)), 3_333, "{three:?}");
        }
        assert_eq!(calls_in_range(MEDIA_PORTS), 10_000);
        assert_eq!(calls_in_range((20_000, 20_002)), 0);
    }

    #[test]
    fn legatod_args_carry_the_port_range() {
        let args = legatod_args("epoll", 10, 1, (40_000, 59_999));
        let after = |flag: &str| {
            let k = args.iter().position(|a| a == flag).unwrap();
            args[k + 1].as_str()
        };
        assert_eq!(after("--port-min"), "40000");
        assert_eq!(after("--port-max"), "59999");
        assert_eq!(after("--max-legs"), "36");
    }
}
