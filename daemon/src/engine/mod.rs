//! The engine: shard threads that own sessions and their sockets, each with
//! its own I/O backend (io_uring, or epoll where io_uring is unavailable).
//!
//! ```text
//!  gRPC handlers ──Command──▶ [ArrayQueue + eventfd] ──▶ shard thread ──┐
//!        ▲                                                             │ packets in/out
//!        └──── oneshot reply ◀──────────────────────────────────────── │ (one ring per shard)
//!  event hub ◀── [ArrayQueue + eventfd] ◀── EngineEvent ◀──────────────┘
//! ```
//!
//! Control reaches a shard only through its bounded lock-free command
//! queue; shards never block on the control side: replies go through
//! oneshot channels and events through a bounded queue whose overflow is
//! counted and later reported as EventsDropped.

mod admission;
mod bufring;
mod epoll;
mod metrics;
mod ports;
mod shard;
pub(crate) mod sys;
mod tx;
mod uring;

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use crossbeam_queue::ArrayQueue;
use tokio::sync::oneshot;

use crate::config::{Config, IoMode};
use crate::session::{
    DigitMode, Endpoint, EngineError, EventKind, Key, LegRequest, LegUpdate, LegView, MediaStats,
    Player,
};

use crate::prompts::PromptAudio;
pub(crate) use crate::session::{Page, Routed, SessionInfo, SessionLimits};
pub(crate) use admission::{Admitted, Limit};
pub(crate) use metrics::{LEG_COUNTERS, LEG_STATES, ShardMetrics};
pub(crate) use ports::{PortPair, PortPool};
use sys::EventFd;
pub(crate) use tx::{SendTo, TxQueue};

/// Commands queued per shard before senders see RESOURCE_EXHAUSTED.
const COMMAND_QUEUE: usize = 4096;
/// Events queued per shard before they are dropped (and counted).
const EVENT_QUEUE: usize = 65_536;

/// Identifies a socket inside one backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SockId(pub(crate) u32);

/// What one poll did, for the shard's counters.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PollStats {
    pub(crate) received: u64,
    pub(crate) sent: u64,
    pub(crate) truncated: u64,
    pub(crate) recv_errors: u64,
    pub(crate) send_errors: u64,
    pub(crate) buffer_exhausted: u64,
}

/// What a backend hands received datagrams to (the shard's packet path).
pub(crate) trait PacketHandler {
    /// The tokens of the datagrams about to be handed to [`packet`], in
    /// order, before the first of them. The handler reads the state those
    /// packets will touch, so the cache misses of a whole batch overlap
    /// instead of stalling one packet after another.
    ///
    /// [`packet`]: PacketHandler::packet
    fn warm(&mut self, tokens: &[u64]);

    /// One datagram received on the socket registered with `token`.
    fn packet(&mut self, token: u64, source: SocketAddr, data: &[u8], tx: &mut TxQueue);

    /// A datagram larger than the receive buffer arrived on the socket
    /// registered with `token`; the kernel cut it, and it is dropped.
    fn oversize(&mut self, token: u64);
}

pub(crate) use crate::session::WARM_BATCH;

/// A socket registered with a backend.
#[derive(Debug)]
struct SockEntry {
    token: u64,
    socket: Option<UdpSocket>,
    armed: bool,
    retiring: bool,
    /// Reported through `take_closed` once the socket is really closed.
    close_tag: u64,
    /// Registered in the io_uring file table at index = its id.
    fixed: bool,
}

/// Sockets waiting to be closed, and the tags of those already closed.
#[derive(Debug, Default)]
pub(crate) struct Closer {
    pending: Vec<(UdpSocket, u64)>,
    closed: Vec<u64>,
}

impl Closer {
    fn defer(&mut self, socket: UdpSocket, tag: u64) {
        self.pending.push((socket, tag));
    }

    /// Closes every deferred socket (their last kernel use is submitted).
    fn close_all(&mut self) {
        for (socket, tag) in self.pending.drain(..) {
            drop(socket);
            self.closed.push(tag);
        }
    }
}

/// Slab of a backend's sockets, indexed by [`SockId`].
#[derive(Debug, Default)]
struct SocketTable {
    entries: Vec<Option<SockEntry>>,
    free: Vec<u32>,
}

impl SocketTable {
    fn insert(&mut self, socket: UdpSocket, token: u64) -> SockId {
        let entry = SockEntry {
            token,
            socket: Some(socket),
            armed: false,
            retiring: false,
            close_tag: 0,
            fixed: false,
        };
        if let Some(i) = self.free.pop() {
            self.entries[i as usize] = Some(entry);
            SockId(i)
        } else {
            self.entries.push(Some(entry));
            SockId((self.entries.len() - 1) as u32)
        }
    }

    fn get_mut(&mut self, id: SockId) -> Option<&mut SockEntry> {
        self.entries.get_mut(id.0 as usize)?.as_mut()
    }

    fn remove(&mut self, id: SockId) -> Option<UdpSocket> {
        let entry = self.entries.get_mut(id.0 as usize)?.take()?;
        self.free.push(id.0);
        entry.socket
    }
}

/// The I/O backend of a shard.
#[derive(Debug)]
pub(crate) enum Io {
    Uring(Box<uring::UringIo>),
    Epoll(Box<epoll::EpollIo>),
}

impl Io {
    fn add_socket(&mut self, socket: UdpSocket, token: u64) -> io::Result<SockId> {
        match self {
            Self::Uring(io) => io.add_socket(socket, token),
            Self::Epoll(io) => io.add_socket(socket, token),
        }
    }

    /// Stops delivering packets of socket `id` at once and closes it as
    /// soon as the kernel is done with it; `tag` then shows up in
    /// [`Io::take_closed`].
    fn remove_socket(&mut self, id: SockId, tag: u64) {
        match self {
            Self::Uring(io) => io.remove_socket(id, tag),
            Self::Epoll(io) => io.remove_socket(id, tag),
        }
    }

    /// Moves the tags of sockets closed since the last call into `out`.
    fn take_closed(&mut self, out: &mut Vec<u64>) {
        let closer = match self {
            Self::Uring(io) => io.closer(),
            Self::Epoll(io) => io.closer(),
        };
        out.append(&mut closer.closed);
    }

    fn poll<H: PacketHandler>(
        &mut self,
        tx: &mut TxQueue,
        timeout: Duration,
        handler: &mut H,
    ) -> io::Result<PollStats> {
        match self {
            Self::Uring(io) => io.poll(tx, timeout, handler),
            Self::Epoll(io) => io.poll(tx, timeout, handler),
        }
    }
}

/// The backend actually in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// io_uring with multishot receive and provided buffers.
    Uring,
    /// epoll with recvmmsg/sendmmsg.
    Epoll,
}

impl Backend {
    /// Short name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Uring => "io_uring",
            Self::Epoll => "epoll",
        }
    }
}

/// An event leaving a shard, stamped with its wall-clock time.
#[derive(Debug)]
pub(crate) struct EngineEvent {
    pub(crate) session: Arc<str>,
    pub(crate) leg: Option<Arc<str>>,
    pub(crate) at: SystemTime,
    pub(crate) kind: EventKind,
}

/// The bounded queue of events from all shards to the event hub.
#[derive(Debug)]
pub(crate) struct EventQueue {
    queue: ArrayQueue<EngineEvent>,
    dropped: AtomicU64,
    /// Drops already taken by [`EventQueue::take_dropped`].
    dropped_taken: AtomicU64,
    /// The thread that moves events to the hub; unparked when events wait.
    pump: std::sync::OnceLock<std::thread::Thread>,
}

impl EventQueue {
    fn new() -> Self {
        Self {
            queue: ArrayQueue::new(EVENT_QUEUE),
            dropped: AtomicU64::new(0),
            dropped_taken: AtomicU64::new(0),
            pump: std::sync::OnceLock::new(),
        }
    }

    fn push(&self, event: EngineEvent) {
        if self.queue.push(event).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Queues `event` from outside the shards (the recording writers) and
    /// wakes the pump.
    pub(crate) fn post(&self, event: EngineEvent) {
        self.push(event);
        self.wake();
    }

    /// Wakes the pump (once per shard loop turn that produced events).
    fn wake(&self) {
        if let Some(pump) = self.pump.get() {
            pump.unpark();
        }
    }

    /// Names the thread to wake when events arrive.
    pub(crate) fn set_pump(&self, thread: std::thread::Thread) {
        let _ = self.pump.set(thread);
    }

    /// Takes the next event.
    pub(crate) fn pop(&self) -> Option<EngineEvent> {
        self.queue.pop()
    }

    /// Takes the count of events dropped since the last call.
    pub(crate) fn take_dropped(&self) -> u64 {
        let n = self.dropped.swap(0, Ordering::Relaxed);
        self.dropped_taken.fetch_add(n, Ordering::Relaxed);
        n
    }

    /// Events dropped since the engine started (for metrics).
    pub(crate) fn dropped_total(&self) -> u64 {
        self.dropped_taken.load(Ordering::Relaxed) + self.dropped.load(Ordering::Relaxed)
    }
}

/// Reply channel of a command.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, EngineError>>;

/// A new leg's parameters, resolved by the control plane, with the port
/// pair it already bound.
#[derive(Debug)]
pub(crate) struct CreateLeg {
    pub(crate) id: Arc<str>,
    pub(crate) ports: PortPair,
    /// The leg's unit of `max_legs`.
    pub(crate) admitted: Admitted,
    pub(crate) session: Arc<str>,
    pub(crate) request: LegRequest,
}

/// Work for a shard, grouped by concern: each group has its own handler
/// on the shard, and a new RPC group adds a group here.
#[derive(Debug)]
pub(crate) enum Command {
    /// Sessions: create, delete, list.
    Session(SessionCommand),
    /// Legs: create, update, hang up, read, list.
    Leg(LegCommand),
    /// Routing between legs (SendMedia, StopMedia).
    Route(RouteCommand),
    /// Players: tones, prompts, speech (PlayProgressTone, StopPlayback).
    Play(PlayCommand),
    /// Counters and gauges for a metrics scrape.
    Metrics { reply: Reply<ShardMetrics> },
    /// Hang up every leg, close every socket and end the thread.
    Shutdown,
}

/// Session commands.
#[derive(Debug)]
pub(crate) enum SessionCommand {
    Create {
        id: Arc<str>,
        /// The session's unit of `max_sessions`.
        admitted: Admitted,
        limits: SessionLimits,
        reply: Reply<()>,
    },
    Delete {
        id: Arc<str>,
        reply: Reply<u32>,
    },
    List {
        page: Page,
        reply: Reply<Vec<SessionInfo>>,
    },
}

/// Leg commands.
#[derive(Debug)]
pub(crate) enum LegCommand {
    Create {
        leg: Box<CreateLeg>,
        reply: Reply<(LegView, String)>,
    },
    Update {
        leg: Arc<str>,
        update: Box<LegUpdate>,
        reply: Reply<(LegView, Option<String>)>,
    },
    Hangup {
        leg: Arc<str>,
        code: u16,
        reason: String,
        reply: Reply<LegView>,
    },
    Get {
        leg: Arc<str>,
        reply: Reply<LegView>,
    },
    List {
        session: Option<Arc<str>>,
        page: Page,
        reply: Reply<Vec<LegView>>,
    },
    /// GetStatistics.
    Statistics {
        leg: Arc<str>,
        reply: Reply<Box<MediaStats>>,
    },
    /// MonitorMediaStatistics: events every `interval`, or none.
    MonitorStatistics {
        leg: Arc<str>,
        interval: Option<Duration>,
        reply: Reply<()>,
    },
}

/// Routing commands.
#[derive(Debug)]
pub(crate) enum RouteCommand {
    /// SendMedia: `from`'s received audio becomes `to`'s source.
    Send {
        from: Endpoint,
        to: Endpoint,
        /// A talker's gain in a conference, in dB.
        gain_db: f32,
        reply: Reply<Routed>,
    },
    /// StopMedia.
    Stop {
        from: Endpoint,
        to: Endpoint,
        reply: Reply<()>,
    },
    /// CreateConference: conference `id` in session `session`.
    CreateConference {
        id: Arc<str>,
        session: Arc<str>,
        /// A fixed mixing rate, or `None` for the widest member's.
        rate: Option<legato_dsp::time::ClockRate>,
        reply: Reply<()>,
    },
    /// DeleteConference.
    DeleteConference { id: Arc<str>, reply: Reply<()> },
    /// Whether conference `id` exists (NOT_FOUND when not).
    /// Whether conference `id` exists: its session.
    CheckConference {
        id: Arc<str>,
        reply: Reply<Arc<str>>,
    },
}

impl From<SessionCommand> for Command {
    fn from(c: SessionCommand) -> Self {
        Self::Session(c)
    }
}

impl From<LegCommand> for Command {
    fn from(c: LegCommand) -> Self {
        Self::Leg(c)
    }
}

/// Player commands.
#[derive(Debug)]
pub(crate) enum PlayCommand {
    /// `player` becomes a leg's source, or plays over a conference's mix.
    Start {
        target: Endpoint,
        player: Box<Player>,
        reply: Reply<Routed>,
    },
    /// StopPlayback of a leg or conference: whether a player was stopped.
    Stop {
        target: Endpoint,
        reply: Reply<bool>,
    },
    /// StartPlayback with `preload_only`: PlaybackReady (or
    /// PlaybackFinished with the error) on leg `leg` once `audio` is
    /// decoded.
    Preload {
        leg: Arc<str>,
        playback: Arc<str>,
        audio: Arc<PromptAudio>,
        reply: Reply<()>,
    },
    /// SendDigits.
    Digits {
        leg: Arc<str>,
        keys: Vec<Key>,
        mode: DigitMode,
        reply: Reply<()>,
    },
    /// StartRecording: `tap` gets a leg's or a conference's frames from
    /// the next tick.
    Record {
        target: Endpoint,
        recording: Arc<str>,
        tap: crate::recording::Tap,
        reply: Reply<()>,
    },
    /// StopRecording of one recording of a leg or conference, or all
    /// (`None`): how many ended.
    StopRecording {
        target: Endpoint,
        recording: Option<Arc<str>>,
        reply: Reply<usize>,
    },
    /// SetToneHandling.
    ToneHandling {
        leg: Arc<str>,
        enabled: bool,
        /// Report only: the digits stay in the audio.
        keep_in_audio: bool,
        reply: Reply<()>,
    },
    /// InjectDigits (validated: `0-9*#A-D`): whether they were reported.
    InjectDigits {
        leg: Arc<str>,
        digits: String,
        duration_ms: u32,
        reply: Reply<bool>,
    },
    /// A detection RPC: a leg's detector on or off.
    Detect {
        leg: Arc<str>,
        change: crate::session::DetectorChange,
        reply: Reply<()>,
    },
}

impl From<PlayCommand> for Command {
    fn from(c: PlayCommand) -> Self {
        Self::Play(c)
    }
}

impl From<RouteCommand> for Command {
    fn from(c: RouteCommand) -> Self {
        Self::Route(c)
    }
}

/// State shared between the control plane and the shards.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) ports: Arc<PortPool>,
    pub(crate) events: EventQueue,
    /// Legs holding sockets (not terminated).
    pub(crate) live_legs: AtomicUsize,
    /// Sessions alive.
    pub(crate) sessions: AtomicUsize,
}

/// Handle of one shard for the control plane.
#[derive(Debug)]
struct ShardHandle {
    commands: Arc<ArrayQueue<Command>>,
    wake: Arc<EventFd>,
    thread: std::sync::Mutex<Option<JoinHandle<()>>>,
}

/// The running engine: shard threads plus what the control plane needs to
/// reach them.
#[derive(Debug)]
pub struct Engine {
    shards: Vec<ShardHandle>,
    shared: Arc<Shared>,
    backend: Backend,
}

impl Engine {
    /// Starts the shard threads with the configured backend.
    pub fn start(config: Config) -> io::Result<Self> {
        match sys::raise_fd_limit() {
            Ok(limit) => {
                // Two sockets per leg, plus gRPC connections and the rest;
                // the port range caps the legs as much as max_legs does.
                let pairs = usize::from(config.port_max - config.port_min) / 2 + 1;
                let legs = config.max_legs.min(pairs);
                let needed = 2 * legs as u64 + 256;
                if limit < needed {
                    tracing::warn!(
                        limit,
                        needed,
                        legs,
                        "open-file limit is below what max_legs (or the port range) needs; raise it (ulimit -n / LimitNOFILE)"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the open-file limit"),
        }
        warn_ephemeral_overlap(&config);
        let backend = match config.io {
            IoMode::Epoll => Backend::Epoll,
            IoMode::Uring => {
                uring::probe().map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("io_uring unavailable ({e}); use --io epoll or auto"),
                    )
                })?;
                Backend::Uring
            }
            IoMode::Auto => match uring::probe() {
                Ok(()) => Backend::Uring,
                Err(e) => {
                    tracing::warn!(error = %e, "io_uring unavailable, falling back to epoll");
                    Backend::Epoll
                }
            },
        };
        let shared = Arc::new(Shared {
            ports: Arc::new(PortPool::new(
                config.media_address,
                config.port_min,
                config.port_max,
                config.socket_recv_buffer,
            )),
            events: EventQueue::new(),
            live_legs: AtomicUsize::new(0),
            sessions: AtomicUsize::new(0),
            config,
        });
        let mut shards = Vec::with_capacity(shared.config.shards);
        for index in 0..shared.config.shards {
            let commands = Arc::new(ArrayQueue::new(COMMAND_QUEUE));
            let wake = Arc::new(EventFd::new()?);
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            let thread = {
                let commands = commands.clone();
                let wake = wake.clone();
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("legato-shard-{index}"))
                    .spawn(move || shard::run(index, backend, commands, wake, shared, ready_tx))?
            };
            ready_rx
                .recv()
                .map_err(|_| io::Error::other("shard thread died during startup"))??;
            shards.push(ShardHandle {
                commands,
                wake,
                thread: std::sync::Mutex::new(Some(thread)),
            });
        }
        Ok(Self {
            shards,
            shared,
            backend,
        })
    }

    /// The backend the shards use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Number of shards.
    pub(crate) fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Queues a command for shard `index` and wakes it.
    pub(crate) fn send(&self, index: usize, command: Command) -> Result<(), EngineError> {
        let shard = self
            .shards
            .get(index)
            .ok_or_else(|| EngineError::Internal(format!("no shard {index}")))?;
        if shard.commands.push(command).is_err() {
            return Err(EngineError::ResourceExhausted(
                "engine command queue full; retry later".into(),
            ));
        }
        shard.wake.notify();
        Ok(())
    }

    /// Stops every shard: legs are hung up (their events emitted) and
    /// sockets closed. Blocks until the threads exit.
    /// Call from a blocking context (not from inside an async task).
    pub fn shutdown(&self) {
        for (index, shard) in self.shards.iter().enumerate() {
            // A full queue is retried: shutdown must get through.
            while shard.commands.push(Command::Shutdown).is_err() {
                shard.wake.notify();
                std::thread::sleep(Duration::from_millis(1));
            }
            shard.wake.notify();
            tracing::debug!(shard = index, "shutdown requested");
        }
        for shard in &self.shards {
            let thread = shard.thread.lock().map(|mut t| t.take()).unwrap_or(None);
            if let Some(thread) = thread {
                let _ = thread.join();
            }
        }
    }
}

/// Warns when media binds a loopback address and its port range overlaps
/// the kernel's ephemeral ports: a peer on the same host and address that
/// binds port 0 may land inside the range, and legatod refuses such SDP
/// (and drops such datagrams) as a media loop.
fn warn_ephemeral_overlap(config: &Config) {
    if !config.media_address.is_loopback() {
        return;
    }
    let Ok(text) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range") else {
        return;
    };
    let mut bounds = text
        .split_whitespace()
        .filter_map(|v| v.parse::<u16>().ok());
    if let (Some(low), Some(high)) = (bounds.next(), bounds.next())
        && low <= config.port_max
        && config.port_min <= high
    {
        tracing::warn!(
            port_min = config.port_min,
            port_max = config.port_max,
            ephemeral_low = low,
            ephemeral_high = high,
            "the media port range overlaps the ephemeral ports on a loopback media address: local peers bound to port 0 there may be refused as media loops; bind them to another address (e.g. 127.0.0.2) or move the range"
        );
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shutdown();
    }
}
