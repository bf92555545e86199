//! Harness for legato end-to-end tests: starts the real `legatod` binary as
//! a process, connects `legato-client` to it, and plays RTP peers over real
//! UDP on 127.0.0.1.
//!
//! The binary is looked up next to the test executable's target directory
//! (`target/<profile>/legatod`, built by `cargo test --workspace` or
//! `cargo build -p legato-daemon`), or taken from `$LEGATOD_BIN`.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use legato_client::{Client, proto};

mod scrape;

pub use scrape::{Scrape, http_get};

/// The I/O backends the suite runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Io {
    /// io_uring (`--io uring`).
    Uring,
    /// epoll (`--io epoll`).
    Epoll,
}

impl Io {
    /// The `--io` flag value.
    pub fn flag(self) -> &'static str {
        match self {
            Self::Uring => "uring",
            Self::Epoll => "epoll",
        }
    }
}

/// Path of the legatod binary under test.
pub fn legatod_path() -> Result<PathBuf> {
    workspace_binary("legatod", "LEGATOD_BIN", "legato-daemon")
}

/// Path of the legatoctl binary under test.
pub fn legatoctl_path() -> Result<PathBuf> {
    workspace_binary("legatoctl", "LEGATOCTL_BIN", "legato-client")
}

/// A binary of the workspace next to the test executable's target
/// directory, or the path in `$env`.
fn workspace_binary(name: &str, env: &str, package: &str) -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(env) {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe()?;
    // target/<profile>/deps/<test-binary>
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .ok_or_else(|| anyhow!("cannot locate the target directory from {}", exe.display()))?;
    let path = profile_dir.join(name);
    if !path.exists() {
        bail!(
            "{} not found: build it with `cargo build -p {package}` (scripts/test.sh does) or set {env}",
            path.display()
        );
    }
    Ok(path)
}

/// Runs legatoctl against `endpoint` with `args`; panics (with its
/// stderr) unless it succeeds, and returns its stdout.
pub fn legatoctl_ok(endpoint: &str, args: &[&str]) -> String {
    let out = Command::new(legatoctl_path().expect("legatoctl"))
        .args(["--endpoint", endpoint])
        .args(args)
        .output()
        .expect("run legatoctl");
    assert!(
        out.status.success(),
        "legatoctl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Each daemon started by one test process gets its own media port range,
/// so parallel tests never compete for ports. The ranges (10000-19999)
/// stay below the kernel's ephemeral ports (32768 and up), where the test
/// peers bind: legatod refuses SDP naming a port of its own range on its
/// own address (a media loop), so a peer must never land inside it. They
/// also stay below legato-loadgen's media ports (20000 and up), so tests
/// and a benchmark can run side by side.
fn next_port_range(pairs: u16) -> (u16, u16) {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    // Spread test processes apart by pid, then hand out blocks within one.
    let base = 10_000 + (std::process::id() % 9) as u16 * 1_000;
    let offset = NEXT.fetch_add(pairs * 2 + 2, Ordering::Relaxed) % 960;
    let min = base + offset;
    (min, min + pairs * 2 - 1)
}

/// Options for [`Daemon::start`].
#[derive(Clone, Debug)]
pub struct Options {
    /// Backend.
    pub io: Io,
    /// Port pairs in the media range.
    pub pairs: u16,
    /// Extra command-line flags.
    pub args: Vec<String>,
    /// A fixed media port range instead of one picked for this daemon.
    pub ports: Option<(u16, u16)>,
    /// `--socket-recv-buffer`; `None`: 256 KiB (see [`Daemon::start`]),
    /// `Some(0)`: the daemon's own default.
    pub socket_recv_buffer: Option<usize>,
    /// Extra environment variables.
    pub envs: Vec<(String, String)>,
}

impl Options {
    /// Defaults: 100 port pairs, no extra flags.
    pub fn new(io: Io) -> Self {
        Self {
            io,
            pairs: 100,
            args: Vec::new(),
            ports: None,
            socket_recv_buffer: None,
            envs: Vec::new(),
        }
    }

    /// Adds an environment variable.
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.envs.push((name.into(), value.into()));
        self
    }

    /// Adds command-line flags.
    pub fn arg(mut self, flag: impl Into<String>) -> Self {
        self.args.push(flag.into());
        self
    }
}

/// A running legatod process; SIGTERM and wait on drop.
#[derive(Debug)]
pub struct Daemon {
    child: Option<Child>,
    /// gRPC address.
    pub grpc: SocketAddr,
    /// Backend it reported.
    pub backend: String,
    /// Metrics address, when started with `--metrics-listen`.
    pub metrics: Option<SocketAddr>,
    /// Media port range.
    pub ports: (u16, u16),
}

impl Daemon {
    /// Starts legatod and waits for its ready line. Returns `Ok(None)` when
    /// io_uring was asked for but the kernel does not allow it (the caller
    /// skips, saying so).
    pub fn start(options: Options) -> Result<Option<Self>> {
        let ports = options
            .ports
            .unwrap_or_else(|| next_port_range(options.pairs));
        // The tests push one socket at 100 times a real stream's rate (5
        // packets per ms): a larger buffer than the 16 KiB default keeps a
        // debug build on a loaded machine from dropping them.
        let recv_buffer = match options.socket_recv_buffer {
            None => vec!["--socket-recv-buffer".to_owned(), "262144".to_owned()],
            Some(0) => Vec::new(),
            Some(n) => vec!["--socket-recv-buffer".to_owned(), n.to_string()],
        };
        let mut child = Command::new(legatod_path()?)
            .args(["--grpc-listen", "127.0.0.1:0", "--shards", "2"])
            .args(&recv_buffer)
            .args(["--io", options.io.flag()])
            .args(["--port-min", &ports.0.to_string()])
            .args(["--port-max", &ports.1.to_string()])
            .args(&options.args)
            .envs(options.envs.iter().map(|(k, v)| (k, v)))
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawning legatod")?;
        let stdout = child.stdout.take().context("legatod stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            // Keep draining so the daemon never blocks on a full pipe.
            for _ in lines {}
        });
        let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) else {
            let _ = child.kill();
            let output = child.wait_with_output()?;
            let stderr = String::from_utf8_lossy(&output.stderr);
            if options.io == Io::Uring && stderr.contains("io_uring unavailable") {
                eprintln!("SKIPPED: io_uring is not available here: {stderr}");
                return Ok(None);
            }
            bail!("legatod did not become ready: {stderr}");
        };
        if let Some(stderr) = child.stderr.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    eprintln!("[legatod] {line}");
                }
            });
        }
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .map(str::to_owned)
        };
        let grpc = field("grpc=")
            .ok_or_else(|| anyhow!("unexpected ready line: {line}"))?
            .parse()?;
        let backend = field("backend=").unwrap_or_default();
        let expected = match options.io {
            Io::Uring => "io_uring",
            Io::Epoll => "epoll",
        };
        if backend != expected {
            bail!("asked for {expected}, legatod runs {backend}");
        }
        let metrics = field("metrics=").map(|a| a.parse()).transpose()?;
        Ok(Some(Self {
            child: Some(child),
            grpc,
            backend,
            metrics,
            ports,
        }))
    }

    /// Process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// gRPC endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.grpc)
    }

    /// Scrapes the metrics endpoint (the daemon must have been started
    /// with `--metrics-listen`).
    pub async fn scrape(&self) -> Result<Scrape> {
        let addr = self
            .metrics
            .context("legatod was started without --metrics-listen")?;
        Scrape::fetch(addr).await
    }

    /// A connected client.
    pub async fn client(&self) -> Result<Client> {
        Ok(Client::connect(self.endpoint()).await?)
    }

    /// Sends SIGTERM and waits for the exit status (at most 20 s).
    pub fn terminate(&mut self) -> Result<std::process::ExitStatus> {
        let mut child = self.child.take().context("already stopped")?;
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .context("running kill")?;
        if !status.success() {
            bail!("kill -TERM {} failed", child.id());
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("legatod did not exit within 20 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.terminate();
        }
    }
}

/// Starts a daemon for `io`, or returns from the test (skipping) when
/// io_uring is unavailable on this machine.
#[macro_export]
macro_rules! daemon_or_skip {
    ($options:expr) => {
        match $crate::Daemon::start($options).expect("start legatod") {
            Some(daemon) => daemon,
            None => return,
        }
    };
}

/// An RTP header as received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rtp {
    /// Marker bit.
    pub marker: bool,
    /// Payload type.
    pub pt: u8,
    /// Sequence number.
    pub seq: u16,
    /// Timestamp.
    pub ts: u32,
    /// SSRC.
    pub ssrc: u32,
}

/// A test RTP endpoint on 127.0.0.1.
#[derive(Debug)]
pub struct Peer {
    /// The socket.
    pub socket: UdpSocket,
}

impl Peer {
    /// Binds a new peer.
    pub fn new() -> Result<Self> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.set_read_timeout(Some(Duration::from_secs(2)))?;
        Ok(Self { socket })
    }

    /// Local address.
    pub fn addr(&self) -> SocketAddr {
        self.socket.local_addr().expect("bound socket")
    }

    /// An SDP offer for this peer: PCMU and PCMA and telephone-event 101.
    pub fn offer(&self) -> String {
        self.offer_with("0 8 101", "a=sendrecv", "127.0.0.1")
    }

    /// An SDP offer/answer with the given format list, direction line and
    /// connection address.
    pub fn offer_with(&self, formats: &str, direction: &str, address: &str) -> String {
        format!(
            "v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 {address}\r\nt=0 0\r\n\
             m=audio {} RTP/AVP {formats}\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n{direction}\r\n",
            self.addr().port()
        )
    }

    /// Sends one RTP packet with `payload` to `to`.
    pub fn send(&self, to: SocketAddr, h: Rtp, payload: &[u8]) -> Result<()> {
        let mut packet = Vec::with_capacity(12 + payload.len());
        packet.push(0x80);
        packet.push((u8::from(h.marker) << 7) | h.pt);
        packet.extend_from_slice(&h.seq.to_be_bytes());
        packet.extend_from_slice(&h.ts.to_be_bytes());
        packet.extend_from_slice(&h.ssrc.to_be_bytes());
        packet.extend_from_slice(payload);
        self.socket.send_to(&packet, to)?;
        Ok(())
    }

    /// Receives the next RTP packet, skipping RTCP; `None` on timeout.
    pub fn recv(&self) -> Result<Option<(Rtp, Vec<u8>, SocketAddr)>> {
        let mut buf = [0u8; 2048];
        loop {
            match self.socket.recv_from(&mut buf) {
                Ok((n, from)) => {
                    if n < 12 || (192..=223).contains(&buf[1]) {
                        continue;
                    }
                    let h = Rtp {
                        marker: buf[1] & 0x80 != 0,
                        pt: buf[1] & 0x7f,
                        seq: u16::from_be_bytes([buf[2], buf[3]]),
                        ts: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
                        ssrc: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
                    };
                    return Ok(Some((h, buf[12..n].to_vec(), from)));
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Local RTP address of a leg, from its description.
pub fn local_rtp(leg: &proto::Leg) -> SocketAddr {
    let a = leg.local_rtp.as_ref().expect("leg has a local address");
    SocketAddr::new(
        a.ip.parse().expect("ip"),
        u16::try_from(a.port).expect("port"),
    )
}

/// Creates an incoming leg for `peer` in `session` and connects it.
pub async fn connected_leg(client: &Client, session: &str, peer: &Peer) -> Result<proto::Leg> {
    connected_leg_sdp(client, session, peer.offer()).await
}

/// Creates an incoming leg in `session` from the remote offer `sdp` and
/// connects it.
pub async fn connected_leg_sdp(client: &Client, session: &str, sdp: String) -> Result<proto::Leg> {
    let created = client
        .create_leg(legato_client::CreateLeg::incoming(session, sdp))
        .await?;
    let updated = client
        .update_leg(
            legato_client::UpdateLeg::new(&created.leg.leg_id).state(proto::LegState::Connected),
        )
        .await?;
    Ok(updated.leg)
}

/// A daemon with one session and two connected legs, `a`'s audio sent to
/// `b`: the starting point of most relay tests. When destructuring, keep
/// the daemon bound (`daemon: _daemon`): dropping it stops legatod.
#[derive(Debug)]
pub struct OneWayBridge {
    /// The daemon (stopped on drop).
    pub daemon: Daemon,
    /// A client connected to it.
    pub client: Client,
    /// Peer behind leg `a` (the sender).
    pub pa: Peer,
    /// Peer behind leg `b` (the receiver).
    pub pb: Peer,
    /// Leg `a`.
    pub a: proto::Leg,
    /// Leg `b`.
    pub b: proto::Leg,
}

impl OneWayBridge {
    /// Sets the bridge up on `io`; `None` when io_uring is unavailable.
    pub async fn start(io: Io) -> Result<Option<Self>> {
        Self::start_with(Options::new(io)).await
    }

    /// Sets the bridge up on a legatod started with `options`.
    pub async fn start_with(options: Options) -> Result<Option<Self>> {
        let Some(daemon) = Daemon::start(options)? else {
            return Ok(None);
        };
        let client = daemon.client().await?;
        let session = client.create_session(None).await?;
        let (pa, pb) = (Peer::new()?, Peer::new()?);
        let a = connected_leg(&client, &session, &pa).await?;
        let b = connected_leg(&client, &session, &pb).await?;
        client
            .send_media(a.leg_id.as_str(), b.leg_id.as_str())
            .await?;
        Ok(Some(Self {
            daemon,
            client,
            pa,
            pb,
            a,
            b,
        }))
    }
}

/// Power of `freq` Hz in `samples` at 8 kHz relative to the total power
/// (Goertzel), 0..1.
pub fn tone_ratio(samples: &[i16], freq: f64) -> f64 {
    let n = samples.len() as f64;
    let k = (n * freq / 8000.0).round();
    let w = 2.0 * std::f64::consts::PI * k / n;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    let mut total = 0.0f64;
    for &x in samples {
        let x = f64::from(x);
        total += x * x;
        let s0 = x + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    // A pure tone's Goertzel power is n/2 times the signal energy / n... i.e.
    // energy * n / 2; normalise so a pure bin-centred tone gives ~1.
    if total == 0.0 {
        0.0
    } else {
        (2.0 * power / (n * total)).min(1.0)
    }
}

/// Defines `mod $name { uring, epoll }` tests that run `async fn
/// $name(io: Io)` once per I/O backend.
#[macro_export]
macro_rules! per_backend {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn uring() {
                    super::$name($crate::Io::Uring).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn epoll() {
                    super::$name($crate::Io::Epoll).await
                }
            }
        )+
    };
}

/// A 160-byte payload whose bytes encode `n`, to check payload integrity.
pub fn payload(n: u32) -> Vec<u8> {
    (0..160u32)
        .map(|i| (n.wrapping_mul(31).wrapping_add(i)) as u8)
        .collect()
}

/// Waits up to `timeout` for an event matching `pred` on `events`.
pub async fn wait_event<S>(
    events: &mut S,
    timeout: Duration,
    mut pred: impl FnMut(&proto::Event) -> bool,
) -> Result<proto::Event>
where
    S: futures::Stream<Item = Result<proto::Event, legato_client::Error>> + Unpin,
{
    use futures::StreamExt;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let next = tokio::time::timeout_at(deadline, events.next())
            .await
            .map_err(|_| anyhow!("no matching event within {timeout:?}"))?;
        match next {
            Some(Ok(event)) if pred(&event) => return Ok(event),
            Some(Ok(_)) => {}
            Some(Err(e)) => bail!("event stream failed: {e}"),
            None => bail!("event stream ended"),
        }
    }
}

/// The name of an event's kind, e.g. "Connected".
pub fn kind_name(e: &proto::Event) -> &'static str {
    use proto::event::Kind;
    match &e.kind {
        Some(Kind::StateChanged(_)) => "StateChanged",
        Some(Kind::Connected(_)) => "Connected",
        Some(Kind::Disconnected(_)) => "Disconnected",
        Some(Kind::Failed(_)) => "Failed",
        Some(Kind::AudioStarted(_)) => "AudioStarted",
        Some(Kind::FirstAudioPacketReceived(_)) => "FirstAudioPacketReceived",
        Some(Kind::RtpStopped(_)) => "RtpStopped",
        Some(Kind::RtpResumed(_)) => "RtpResumed",
        Some(Kind::OnHold(_)) => "OnHold",
        Some(Kind::OffHold(_)) => "OffHold",
        Some(Kind::EventsDropped(_)) => "EventsDropped",
        Some(Kind::SessionDeleted(_)) => "SessionDeleted",
        Some(Kind::MediaSourceChanged(_)) => "MediaSourceChanged",
        Some(Kind::RecordUploaded(_)) => "RecordUploaded",
        Some(_) => "Other",
        None => "None",
    }
}

// ---- PCM-path helpers: G.711 peers, paced tones, spectra ----------------

/// A G.711 law a test peer sends and decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum G711 {
    /// μ-law, static payload type 0.
    Pcmu,
    /// A-law, static payload type 8.
    Pcma,
}

impl G711 {
    /// Static payload type.
    pub fn pt(self) -> u8 {
        match self {
            Self::Pcmu => 0,
            Self::Pcma => 8,
        }
    }

    /// The SDP format list offering only this law and telephone-event 101.
    pub fn formats(self) -> &'static str {
        match self {
            Self::Pcmu => "0 101",
            Self::Pcma => "8 101",
        }
    }

    /// Encodes one sample.
    pub fn encode(self, sample: i16) -> u8 {
        use legato_dsp::codec::g711;
        match self {
            Self::Pcmu => g711::linear_to_ulaw(sample),
            Self::Pcma => g711::linear_to_alaw(sample),
        }
    }

    /// Encodes `pcm` as 20 ms payloads (160 codes; the last one may be
    /// shorter).
    pub fn frames(self, pcm: &[i16]) -> Vec<Vec<u8>> {
        pcm.chunks(160)
            .map(|f| f.iter().map(|&s| self.encode(s)).collect())
            .collect()
    }

    /// Decodes one code.
    pub fn decode(self, code: u8) -> i16 {
        use legato_dsp::codec::g711;
        match self {
            Self::Pcmu => g711::ulaw_to_linear(code),
            Self::Pcma => g711::alaw_to_linear(code),
        }
    }

    /// The code of silence.
    pub fn silence(self) -> u8 {
        self.encode(0)
    }
}

/// Creates an incoming leg for `peer` offering only `formats` (an SDP
/// format list such as `"8 101"`) and connects it.
pub async fn connected_leg_with(
    client: &Client,
    session: &str,
    peer: &Peer,
    formats: &str,
) -> Result<proto::Leg> {
    let offer = peer.offer_with(formats, "a=sendrecv", "127.0.0.1");
    connected(client, legato_client::CreateLeg::incoming(session, offer)).await
}

/// Creates the leg `params` describe and connects it.
async fn connected(client: &Client, params: legato_client::CreateLeg) -> Result<proto::Leg> {
    let created = client.create_leg(params).await?;
    let updated = client
        .update_leg(
            legato_client::UpdateLeg::new(&created.leg.leg_id).state(proto::LegState::Connected),
        )
        .await?;
    Ok(updated.leg)
}

/// As [`connected_leg_with`], the leg asking for `always_transcode`: audio
/// routed to it always takes the PCM path (jitter buffer, decode,
/// re-encode), even from a source it could relay or G.711-convert.
pub async fn connected_leg_transcoding(
    client: &Client,
    session: &str,
    peer: &Peer,
    formats: &str,
) -> Result<proto::Leg> {
    let offer = peer.offer_with(formats, "a=sendrecv", "127.0.0.1");
    let params = legato_client::CreateLeg::incoming(session, offer).always_transcode(true);
    connected(client, params).await
}

/// A new directory of this test run under the system temp dir, named after
/// `name` (removing it is the test's job).
pub fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("legato-{name}-{}", fastrand::u64(..)));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    dir
}

/// Samples `n0..n0 + len` of a sine of `hz` and peak `amplitude` at 8 kHz.
pub fn sine(hz: f64, amplitude: f64, n0: usize, len: usize) -> Vec<i16> {
    (n0..n0 + len)
        .map(|i| {
            let t = i as f64 / 8000.0;
            (amplitude * (2.0 * std::f64::consts::PI * hz * t).sin()).round() as i16
        })
        .collect()
}

/// A 16-bit mono WAV file of `samples` at `rate`; `declared` overrides
/// the data size its header announces (a lying header).
pub fn wav(rate: u32, samples: &[i16], declared: Option<u32>) -> Vec<u8> {
    let data = (samples.len() * 2) as u32;
    let declared = declared.unwrap_or(data);
    let mut w = Vec::new();
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + declared).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&rate.to_le_bytes());
    w.extend_from_slice(&(rate * 2).to_le_bytes());
    w.extend_from_slice(&2u16.to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&declared.to_le_bytes());
    for s in samples {
        w.extend_from_slice(&s.to_le_bytes());
    }
    w
}

/// Calls `f(i)` for `i` in `0..count`, call `i` at `start + i × period`
/// (real time, drift-free: a late call does not delay the next ones).
pub fn paced(start: Instant, count: usize, period: Duration, mut f: impl FnMut(usize)) {
    for i in 0..count {
        let due = start + period * i as u32;
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        f(i);
    }
}

/// Sends `payloads` from `socket` to `to` as one RTP stream (payload type
/// `pt`, a random SSRC, the timestamp advancing `ts_step` per packet, the
/// marker on the first), one packet every 20 ms in real time; returns when
/// the last is sent. Panics if a send fails.
pub fn send_payloads_paced(
    socket: &UdpSocket,
    to: SocketAddr,
    pt: u8,
    ts_step: u32,
    payloads: &[Vec<u8>],
) {
    let ssrc = fastrand::u32(..);
    paced(
        Instant::now(),
        payloads.len(),
        Duration::from_millis(20),
        |i| {
            let h = Rtp {
                marker: i == 0,
                pt,
                seq: i as u16,
                ts: (i as u32).wrapping_mul(ts_step),
                ssrc,
            };
            send_rtp(socket, to, h, &payloads[i]).expect("an RTP packet sent");
        },
    );
}

/// A stream of 20 ms packets of any [`Codec`] carrying a steady tone, as
/// one test peer sends it: call [`ToneStream::send`] every 20 ms.
#[derive(Debug)]
pub struct ToneStream {
    /// Socket it sends from (a clone of the peer's).
    pub socket: UdpSocket,
    /// Where it sends (the leg's local RTP address).
    pub to: SocketAddr,
    /// Codec.
    pub codec: Codec,
    /// Tone frequency, Hz (0: silence).
    pub hz: f64,
    /// Tone peak amplitude.
    pub amplitude: f64,
    /// Phase of the tone at timestamp 0, radians (0: a sine).
    pub phase: f64,
    /// SSRC.
    pub ssrc: u32,
    /// Packets sent so far.
    pub sent: usize,
    encoder: FrameEncoder,
}

impl ToneStream {
    /// A stream from `peer` to `to` in `codec` (a [`G711`] law or any
    /// [`Codec`]).
    pub fn new(
        peer: &Peer,
        to: SocketAddr,
        codec: impl Into<Codec>,
        hz: f64,
        amplitude: f64,
    ) -> Result<Self> {
        let codec = codec.into();
        Ok(Self {
            socket: peer.socket.try_clone()?,
            to,
            codec,
            hz,
            amplitude,
            phase: 0.0,
            ssrc: fastrand::u32(..),
            sent: 0,
            encoder: codec.encoder()?,
        })
    }

    /// The payload of the next 20 ms frame (the tone's phase continues
    /// from the frames before), without sending it.
    fn next_payload(&mut self) -> Result<Vec<u8>> {
        let len = self.codec.samples_per_frame();
        let n0 = self.sent * len;
        let w = 2.0 * std::f64::consts::PI * self.hz / f64::from(self.codec.audio_rate());
        let pcm: Vec<i16> = (n0..n0 + len)
            .map(|i| (self.amplitude * (w * i as f64 + self.phase).sin()).round() as i16)
            .collect();
        self.encoder.encode(&pcm)
    }

    /// Sends the next 20 ms packet (sequence and timestamp follow from the
    /// packets sent before; the tone's phase is continuous).
    pub fn send(&mut self) -> Result<()> {
        let payload = self.next_payload()?;
        let h = Rtp {
            marker: self.sent == 0,
            pt: self.codec.pt(),
            seq: self.sent as u16,
            ts: (self.sent as u32).wrapping_mul(self.codec.rtp_units_per_frame()),
            ssrc: self.ssrc,
        };
        send_rtp(&self.socket, self.to, h, &payload)?;
        self.sent += 1;
        Ok(())
    }
}

/// Sends one RTP packet with `payload` from `socket` to `to`.
pub fn send_rtp(socket: &UdpSocket, to: SocketAddr, h: Rtp, payload: &[u8]) -> Result<()> {
    let mut packet = Vec::with_capacity(12 + payload.len());
    packet.push(0x80);
    packet.push((u8::from(h.marker) << 7) | h.pt);
    packet.extend_from_slice(&h.seq.to_be_bytes());
    packet.extend_from_slice(&h.ts.to_be_bytes());
    packet.extend_from_slice(&h.ssrc.to_be_bytes());
    packet.extend_from_slice(payload);
    socket.send_to(&packet, to)?;
    Ok(())
}

/// An RTP packet a collector received, with its arrival time.
#[derive(Clone, Debug)]
pub struct Received {
    /// Header.
    pub rtp: Rtp,
    /// Payload.
    pub payload: Vec<u8>,
    /// When it was read from the socket.
    pub at: Instant,
}

/// Receives RTP (skipping RTCP) on a clone of `peer`'s socket in a thread
/// until `until`, returning what came in arrival order.
pub fn spawn_collector(
    peer: &Peer,
    until: Instant,
) -> Result<std::thread::JoinHandle<Vec<Received>>> {
    let socket = peer.socket.try_clone()?;
    Ok(std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return got;
            }
            let _ = socket.set_read_timeout(Some(left.min(Duration::from_millis(50))));
            let Ok((n, _)) = socket.recv_from(&mut buf) else {
                continue;
            };
            let at = Instant::now();
            if n < 12 || (192..=223).contains(&buf[1]) {
                continue;
            }
            got.push(Received {
                rtp: Rtp {
                    marker: buf[1] & 0x80 != 0,
                    pt: buf[1] & 0x7f,
                    seq: u16::from_be_bytes([buf[2], buf[3]]),
                    ts: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
                    ssrc: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
                },
                payload: buf[12..n].to_vec(),
                at,
            });
        }
    }))
}

/// The audio of the `codec` packets among `packets` whose arrival lies in
/// `from..to`, decoded at the codec's [`audio rate`](Codec::audio_rate)
/// and concatenated in arrival order (localhost does not reorder). The
/// packets before `from` are decoded too (and dropped), so that stateful
/// codecs (G.722, Opus) start the window with their state settled.
pub fn decode_window(
    packets: &[Received],
    codec: impl Into<Codec>,
    from: Instant,
    to: Instant,
) -> Vec<i16> {
    let codec = codec.into();
    let mut decoder = codec.decoder().expect("a decoder for a test codec");
    let mut out = Vec::new();
    for p in packets
        .iter()
        .filter(|p| p.rtp.pt == codec.pt() && p.at < to)
    {
        // A payload the decoder refuses reads as nothing (the sizes and
        // sample counts the callers check show it).
        let pcm = decoder.decode(&p.payload).unwrap_or_default();
        if p.at >= from {
            out.extend_from_slice(&pcm);
        }
    }
    out
}

/// Level of the `hz` component of 8 kHz `samples`, in dB relative to a
/// sine of peak 1: [`tone_level_db_at`] at 8000 Hz.
pub fn tone_level_db(samples: &[i16], hz: f64) -> f64 {
    tone_level_db_at(samples, 8000, hz)
}

/// Level of the `hz` component of `samples` taken at `rate` Hz, in dB
/// relative to a sine of peak 1 (a sine of peak A reads 20·log10(A)). A
/// Hann window keeps the leakage of tones more than a few bins away far
/// below G.711's quantisation noise, whatever their phase; -200 for
/// silence.
pub fn tone_level_db_at(samples: &[i16], rate: u32, hz: f64) -> f64 {
    let n = samples.len();
    if n == 0 {
        return -200.0;
    }
    let w = 2.0 * std::f64::consts::PI * hz / f64::from(rate);
    let (mut re, mut im, mut window_sum) = (0.0f64, 0.0f64, 0.0f64);
    for (i, &x) in samples.iter().enumerate() {
        let hann = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos();
        let v = f64::from(x) * hann;
        re += v * (w * i as f64).cos();
        im -= v * (w * i as f64).sin();
        window_sum += hann;
    }
    // A sine of peak A gives |X| = A/2 · Σw.
    let amplitude = 2.0 * (re * re + im * im).sqrt() / window_sum;
    if amplitude <= 0.0 {
        -200.0
    } else {
        20.0 * amplitude.log10()
    }
}

/// Largest |x[n] - x[n-1]| in `samples`.
pub fn max_step(samples: &[i16]) -> i32 {
    samples
        .windows(2)
        .map(|w| (i32::from(w[1]) - i32::from(w[0])).abs())
        .max()
        .unwrap_or(0)
}

/// Largest |x[n] - x[n-1]| over the `codec` audio of the packets arriving
/// in `from..to` (decoded at the codec's audio rate, the packets before
/// `from` too, for the decoder's state), across packet boundaries too,
/// except where a sequence gap breaks the stream (a lost packet is not a
/// click the sender made). Returns the step and the number of gaps
/// skipped.
pub fn max_step_window(
    packets: &[Received],
    codec: impl Into<Codec>,
    from: Instant,
    to: Instant,
) -> (i32, usize) {
    let codec = codec.into();
    let mut decoder = codec.decoder().expect("a decoder for a test codec");
    let mut step = 0;
    let mut gaps = 0;
    let mut last: Option<(u16, i16)> = None;
    for p in packets
        .iter()
        .filter(|p| p.rtp.pt == codec.pt() && p.at < to)
    {
        let pcm = decoder.decode(&p.payload).unwrap_or_default();
        if p.at < from {
            continue;
        }
        match last {
            Some((seq, x)) if p.rtp.seq == seq.wrapping_add(1) => {
                if let Some(&first) = pcm.first() {
                    step = step.max((i32::from(first) - i32::from(x)).abs());
                }
            }
            Some(_) => gaps += 1,
            None => {}
        }
        step = step.max(max_step(&pcm));
        if let Some(&x) = pcm.last() {
            last = Some((p.rtp.seq, x));
        }
    }
    (step, gaps)
}

// ---- Any codec: PCMU, PCMA, G.722, Opus ---------------------------------

/// A codec a test peer offers, sends and decodes. Every one is sent in
/// 20 ms frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// μ-law (`PCMU/8000`, payload type 0): 8 kHz audio.
    Pcmu,
    /// A-law (`PCMA/8000`, payload type 8): 8 kHz audio.
    Pcma,
    /// G.722 (`G722/8000`, payload type 9): 16 kHz audio on an 8000 Hz
    /// RTP clock (RFC 3551 §4.5.2), 160 bytes per 20 ms.
    G722,
    /// Opus (`opus/48000/2`, dynamic payload type [`Codec::OPUS_PT`]), sent
    /// mono at 48 kHz, 64 kbit/s.
    Opus,
}

impl From<G711> for Codec {
    fn from(law: G711) -> Self {
        match law {
            G711::Pcmu => Self::Pcmu,
            G711::Pcma => Self::Pcma,
        }
    }
}

impl Codec {
    /// The dynamic payload type the tests give Opus.
    pub const OPUS_PT: u8 = 111;

    /// Payload type.
    pub fn pt(self) -> u8 {
        match self {
            Self::Pcmu => 0,
            Self::Pcma => 8,
            Self::G722 => 9,
            Self::Opus => Self::OPUS_PT,
        }
    }

    /// The encoding name and RTP clock of its `a=rtpmap` line.
    pub fn rtpmap(self) -> &'static str {
        match self {
            Self::Pcmu => "PCMU/8000",
            Self::Pcma => "PCMA/8000",
            Self::G722 => "G722/8000",
            Self::Opus => "opus/48000/2",
        }
    }

    /// Its `a=fmtp` parameters, if any.
    pub fn fmtp(self) -> Option<&'static str> {
        match self {
            Self::Opus => Some("useinbandfec=1"),
            _ => None,
        }
    }

    /// The SDP format list offering only this codec and telephone-event
    /// 101.
    pub fn formats(self) -> &'static str {
        match self {
            Self::Pcmu => "0 101",
            Self::Pcma => "8 101",
            Self::G722 => "9 101",
            Self::Opus => "111 101",
        }
    }

    /// The `a=rtpmap`/`a=fmtp` lines of an offer of [`Self::formats`]
    /// (telephone-event at the codec's RTP clock), each ending in CRLF.
    pub fn sdp_lines(self) -> String {
        let pt = self.pt();
        let mut lines = format!("a=rtpmap:{pt} {}\r\n", self.rtpmap());
        if let Some(fmtp) = self.fmtp() {
            lines.push_str(&format!("a=fmtp:{pt} {fmtp}\r\n"));
        }
        lines.push_str(&format!(
            "a=rtpmap:101 telephone-event/{}\r\na=fmtp:101 0-16\r\n",
            self.rtp_rate()
        ));
        lines
    }

    /// Sample rate of its audio, Hz.
    pub fn audio_rate(self) -> u32 {
        match self {
            Self::Pcmu | Self::Pcma => 8000,
            Self::G722 => 16_000,
            Self::Opus => 48_000,
        }
    }

    /// Its RTP clock rate, Hz.
    pub fn rtp_rate(self) -> u32 {
        match self {
            Self::Pcmu | Self::Pcma | Self::G722 => 8000,
            Self::Opus => 48_000,
        }
    }

    /// RTP timestamp units in one 20 ms frame.
    pub fn rtp_units_per_frame(self) -> u32 {
        self.rtp_rate() / 50
    }

    /// Audio samples in one 20 ms frame.
    pub fn samples_per_frame(self) -> usize {
        self.audio_rate() as usize / 50
    }

    /// A fresh encoder.
    pub fn encoder(self) -> Result<FrameEncoder> {
        use legato_dsp::codec::{g711, g722, opus};
        let inner: Box<dyn legato_dsp::codec::Encoder + Send> = match self {
            Self::Pcmu => Box::new(g711::G711::new(g711::Law::Ulaw)),
            Self::Pcma => Box::new(g711::G711::new(g711::Law::Alaw)),
            Self::G722 => Box::new(g722::G722Encoder::new()),
            Self::Opus => Box::new(
                opus::OpusEncoder::new(
                    legato_dsp::time::ClockRate::HZ_48000,
                    opus::OpusApplication::Audio,
                    64_000,
                )
                .map_err(|e| anyhow!("Opus encoder: {e}"))?,
            ),
        };
        Ok(FrameEncoder {
            codec: self,
            inner,
            out: vec![0; 1500],
        })
    }

    /// A fresh decoder.
    pub fn decoder(self) -> Result<FrameDecoder> {
        use legato_dsp::codec::{g711, g722, opus};
        let inner: Box<dyn legato_dsp::codec::Decoder + Send> = match self {
            Self::Pcmu => Box::new(g711::G711::new(g711::Law::Ulaw)),
            Self::Pcma => Box::new(g711::G711::new(g711::Law::Alaw)),
            Self::G722 => Box::new(g722::G722Decoder::new()),
            Self::Opus => Box::new(
                opus::OpusDecoder::new(legato_dsp::time::ClockRate::HZ_48000)
                    .map_err(|e| anyhow!("Opus decoder: {e}"))?,
            ),
        };
        Ok(FrameDecoder {
            codec: self,
            inner,
            // Room for the longest Opus packet, 120 ms at 48 kHz.
            out: vec![0; 5760],
        })
    }
}

/// A [`Codec`]'s encoder with its state, for one stream of 20 ms frames.
pub struct FrameEncoder {
    codec: Codec,
    inner: Box<dyn legato_dsp::codec::Encoder + Send>,
    out: Vec<u8>,
}

impl std::fmt::Debug for FrameEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameEncoder")
            .field("codec", &self.codec)
            .finish_non_exhaustive()
    }
}

impl FrameEncoder {
    /// Encodes one 20 ms frame ([`Codec::samples_per_frame`] samples at
    /// the codec's audio rate) into a payload.
    pub fn encode(&mut self, pcm: &[i16]) -> Result<Vec<u8>> {
        let n = self
            .inner
            .encode(pcm, &mut self.out)
            .map_err(|e| anyhow!("{:?} encoder: {e}", self.codec))?;
        Ok(self.out[..n].to_vec())
    }
}

/// A [`Codec`]'s decoder with its state, for one received stream.
pub struct FrameDecoder {
    codec: Codec,
    inner: Box<dyn legato_dsp::codec::Decoder + Send>,
    out: Vec<i16>,
}

impl std::fmt::Debug for FrameDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameDecoder")
            .field("codec", &self.codec)
            .finish_non_exhaustive()
    }
}

impl FrameDecoder {
    /// Decodes one payload into PCM at the codec's audio rate.
    pub fn decode(&mut self, payload: &[u8]) -> Result<Vec<i16>> {
        let n = self
            .inner
            .decode(payload, &mut self.out)
            .map_err(|e| anyhow!("{:?} decoder: {e}", self.codec))?;
        Ok(self.out[..n].to_vec())
    }
}

impl Peer {
    /// An SDP offer/answer from this peer offering only `codec` (and
    /// telephone-event 101), with the given direction line.
    pub fn offer_codec(&self, codec: Codec, direction: &str) -> String {
        format!(
            "v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {} RTP/AVP {}\r\n{}{direction}\r\n",
            self.addr().port(),
            codec.formats(),
            codec.sdp_lines(),
        )
    }
}

/// Creates an incoming leg for `peer` offering only `codec` and connects
/// it.
pub async fn connected_leg_codec(
    client: &Client,
    session: &str,
    peer: &Peer,
    codec: Codec,
) -> Result<proto::Leg> {
    let created = client
        .create_leg(legato_client::CreateLeg::incoming(
            session,
            peer.offer_codec(codec, "a=sendrecv"),
        ))
        .await?;
    let updated = client
        .update_leg(
            legato_client::UpdateLeg::new(&created.leg.leg_id).state(proto::LegState::Connected),
        )
        .await?;
    Ok(updated.leg)
}

/// espeak-ng's `text` as 8 kHz samples, or `None` when espeak-ng or ffmpeg
/// is missing.
pub fn espeak_8k(text: &str) -> Option<Vec<i16>> {
    espeak_voice_8k("en", text)
}

/// [`espeak_8k`] in espeak-ng's `voice` (e.g. `de`, `fr+f2`).
pub fn espeak_voice_8k(voice: &str, text: &str) -> Option<Vec<i16>> {
    let wav = Command::new("espeak-ng")
        .args(["-v", voice, "--stdout", text])
        .output()
        .ok()?;
    if !wav.status.success() {
        return None;
    }
    let mut ffmpeg = Command::new("ffmpeg")
        .args([
            "-v", "error", "-i", "-", "-ar", "8000", "-ac", "1", "-f", "s16le", "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .ok()?;
    let mut stdin = ffmpeg.stdin.take()?;
    let feeder = std::thread::spawn(move || {
        use std::io::Write;
        let _ = stdin.write_all(&wav.stdout);
    });
    let out = ffmpeg.wait_with_output().ok()?;
    let _ = feeder.join();
    out.status.success().then(|| {
        out.stdout
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect()
    })
}

/// The DTMF digits a permissive reader finds in 8 kHz `pcm`: legato-dsp's
/// detector accepting a single matching 25 ms window (the default needs
/// two), as a far side hunting for leaked tones would.
pub fn permissive_dtmf(pcm: &[i16]) -> String {
    use legato_dsp::dtmf::{DtmfDetector, DtmfDetectorConfig, DtmfEvent};
    let mut d = DtmfDetector::new(DtmfDetectorConfig {
        min_hits: 1,
        ..DtmfDetectorConfig::default()
    })
    .expect("valid settings");
    let mut found = String::new();
    // Polled as it goes: the detector's event queue is short.
    for chunk in pcm.chunks(160) {
        d.handle_samples(chunk);
        while let Some(e) = d.poll_event() {
            if let DtmfEvent::Started { digit, .. } = e {
                found.push(digit.to_char());
            }
        }
    }
    found
}
