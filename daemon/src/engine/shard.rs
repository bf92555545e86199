//! A shard thread: owns its sessions, legs and sockets, runs one I/O
//! backend, and is the only caller of the session state machines.
//!
//! Each loop turn: run timers if due, take queued commands (bounded), then
//! hand the backend the queued sends and wait for packets until the next
//! timer. The per-packet path does slab lookups only: no lock, no heap
//! allocation, no syscall of its own.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_queue::ArrayQueue;

use super::metrics::ShardTotals;
use super::sys::EventFd;
use super::{
    Admitted, Backend, Command, CreateLeg, EngineEvent, Io, LegCommand, PacketHandler, Page,
    PlayCommand, RouteCommand, SessionCommand, SessionLimits, Shared, SockId, WARM_BATCH, epoll,
    uring,
};
use super::{SendTo, TxQueue};
use crate::prompts::{Progress, PromptAudio};
use crate::session::{
    Endpoint, EngineError, EventKind, EventSink, JitterBufferStats, KernelFilter, Leg, LegMedia,
    LegParams, LegSlot, LegUpdate, LegView, MAX_COMPOUND_LEN, MediaClock, MediaStats, NewLeg,
    OwnMedia, Sessions, TimeoutAction,
};

/// Timer tick. Each tick checks a slice of the legs, so that every leg is
/// checked once per [`SWEEP_TICKS`] ticks (250 ms): RtpStopped and the
/// early-media limit fire at most that late, and a shard with many legs
/// does not sweep its whole table (and evict the packet path's cache
/// lines) twenty times a second.
const TICK: Duration = Duration::from_millis(50);
/// Ticks per full sweep of the leg table.
const SWEEP_TICKS: usize = 5;
/// Commands taken per loop turn, so a burst of control work cannot starve
/// packet processing for long.
const COMMANDS_PER_TURN: usize = 256;
/// Transmit slots per shard: a loop turn sends at most this many datagrams
/// (at 2,000 relayed calls a turn moves far fewer).
const TX_SLOTS: usize = 8192;
/// io_uring submission queue size.
const RING_ENTRIES: u32 = 4096;
/// Token bit marking a leg's RTCP socket.
const RTCP_BIT: u64 = 1 << 32;

/// Runs shard `index` until it receives `Command::Shutdown`.
pub(super) fn run(
    index: usize,
    backend: Backend,
    commands: Arc<ArrayQueue<Command>>,
    wake: Arc<EventFd>,
    shared: Arc<Shared>,
    ready: mpsc::Sender<io::Result<()>>,
) {
    if let Some(priority) = shared.config.realtime_priority {
        match super::sys::set_realtime(priority) {
            Ok(()) => tracing::info!(shard = index, priority, "shard runs under SCHED_FIFO"),
            Err(e) => tracing::warn!(
                shard = index,
                priority,
                error = %e,
                "cannot use real-time scheduling (needs CAP_SYS_NICE); the shard runs at normal priority"
            ),
        }
    }
    let io = match backend {
        Backend::Uring => uring::UringIo::new(wake.raw(), RING_ENTRIES, shared.config.recv_buffers)
            .map(|io| Io::Uring(Box::new(io))),
        Backend::Epoll => epoll::EpollIo::new(wake).map(|io| Io::Epoll(Box::new(io))),
    };
    let io = match io {
        Ok(io) => io,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    let own_media = OwnMedia {
        media_address: shared.config.media_address,
        advertised_address: shared.config.advertised_address,
        port_min: shared.config.port_min,
        port_max: shared.config.port_max,
    };
    let params = LegParams {
        rtp_timeout: shared.config.rtp_timeout,
        rtcp_interval: shared.config.rtcp_interval,
        early_media_timeout: shared.config.early_media_timeout,
        relatch_after: shared.config.relatch_after,
        probation_packets: shared.config.latch_probation_packets,
        own_media,
        telephone_event: true,
    };
    let mut shard = Shard {
        index,
        io,
        closing: HashMap::new(),
        closed: Vec::new(),
        tx: TxQueue::new(TX_SLOTS),
        commands,
        legs: Legs::new(Instant::now(), SystemTime::now()),
        sessions: Sessions::default(),
        events: ShardEvents {
            shared: shared.clone(),
            produced: false,
        },
        shared,
        params,
        running: true,
        sweep_cursor: 0,
        totals: ShardTotals::new(),
        preloads: Vec::new(),
    };
    tracing::info!(shard = index, backend = backend.as_str(), "shard started");
    shard.run();
    tracing::info!(shard = index, "shard stopped");
}

/// What the shard keeps for a leg besides its send handle: its sockets
/// (until torn down), its port pair and the kernel filter in force.
#[derive(Debug)]
struct LegIo {
    rtp: Option<SockId>,
    rtcp: Option<SockId>,
    /// Where RTCP goes out without rtcp-mux: the RTCP socket.
    rtcp_send: SendTo,
    port: u16,
    /// What the kernel lets through to the RTP socket now
    /// (`kernel_source_filter`).
    filter: KernelFilter,
}

/// A shard's legs.
type Legs = crate::session::Legs<SendTo, LegIo>;

impl LegSlot<SendTo, LegIo> {
    /// Restricts the RTP socket to the sources the leg accepts, when that
    /// changed (see `Leg::kernel_filter`): connected to a settled source,
    /// a socket filter for a NAT'd party's learned address and its SDP
    /// address, or open. Rare: when a source is settled or learned, when a
    /// learned one falls silent or comes back, and on SDP changes.
    fn sync_peer(&mut self, enabled: bool) {
        let Some(wanted) = self.leg.take_peer_change() else {
            return;
        };
        let wanted = match wanted {
            _ if !enabled => KernelFilter::Open,
            // The socket filter is written for IPv4.
            KernelFilter::Pair(SocketAddr::V4(_), SocketAddr::V4(_)) => wanted,
            KernelFilter::Pair(..) => KernelFilter::Open,
            other => other,
        };
        if wanted == self.io.filter || self.io.rtp.is_none() {
            return;
        }
        let fd = self.send.fd;
        let result = (|| {
            // Undo the current restriction, then apply the new one.
            match self.io.filter {
                KernelFilter::Open => {}
                KernelFilter::Only(_) => super::sys::connect_udp(fd, None)?,
                KernelFilter::Pair(..) => super::sys::filter_udp_sources(fd, None)?,
            }
            self.io.filter = KernelFilter::Open;
            match wanted {
                KernelFilter::Open => {}
                KernelFilter::Only(peer) => super::sys::connect_udp(fd, Some(peer))?,
                KernelFilter::Pair(SocketAddr::V4(a), SocketAddr::V4(b)) => {
                    super::sys::filter_udp_sources(fd, Some(&[a, b]))?;
                }
                KernelFilter::Pair(..) => return Ok(()),
            }
            self.io.filter = wanted;
            Ok::<(), io::Error>(())
        })();
        if let Err(e) = result {
            tracing::debug!(
                leg = %self.leg.id,
                error = %e,
                "cannot restrict the RTP socket's sources; the leg filters in userspace"
            );
        }
    }
}

impl LegSlot<SendTo, LegIo> {
    /// Sends the leg's RTCP report if one is due: through the RTP socket
    /// with rtcp-mux, else through the RTCP socket.
    fn send_rtcp(&mut self, now: Instant, wall: SystemTime, tx: &mut TxQueue) {
        let mut buf = [0u8; MAX_COMPOUND_LEN];
        if let Some((len, to)) = self.leg.poll_rtcp(now, wall, &mut buf) {
            self.push_rtcp(to, &buf[..len], tx);
        }
    }

    /// Sends the leg's RTCP BYE (it is being torn down).
    fn send_bye(&mut self, now: Instant, wall: SystemTime, tx: &mut TxQueue) {
        let mut buf = [0u8; MAX_COMPOUND_LEN];
        if self.io.rtp.is_some()
            && let Some((len, to)) = self.leg.rtcp_bye(now, wall, &mut buf)
        {
            self.push_rtcp(to, &buf[..len], tx);
        }
    }

    fn push_rtcp(&mut self, to: SocketAddr, packet: &[u8], tx: &mut TxQueue) {
        let via = if self.leg.rtcp_mux() {
            self.send
        } else {
            self.io.rtcp_send
        };
        if !tx.push(via.fd, via.id, to, packet.len(), |b| {
            b.copy_from_slice(packet)
        }) {
            self.leg.counters.send_failures += 1;
        }
    }

    /// GetStatistics for this leg.
    fn media_stats(&self, now: Instant, clock: &MediaClock) -> Box<MediaStats> {
        let (jitter, concealed) = match self.media.rx.as_deref() {
            Some(rx) => (rx.jitter_stats(now, clock), rx.counters().concealed_frames),
            None => (JitterBufferStats::default(), 0),
        };
        Box::new(self.leg.media_stats(now, jitter, concealed))
    }
}

/// Pushes events to the shared queue, stamped with wall-clock time.
#[derive(Debug)]
struct ShardEvents {
    shared: Arc<Shared>,
    produced: bool,
}

impl EventSink for ShardEvents {
    fn emit(&mut self, session: &Arc<str>, leg: Option<&Arc<str>>, kind: EventKind) {
        self.shared.events.push(EngineEvent {
            session: session.clone(),
            leg: leg.cloned(),
            at: SystemTime::now(),
            kind,
        });
        self.produced = true;
    }
}

struct Shard {
    index: usize,
    io: Io,
    /// Port pairs whose sockets are still closing: sockets left per port.
    closing: HashMap<u16, u8>,
    closed: Vec<u64>,
    tx: TxQueue,
    commands: Arc<ArrayQueue<Command>>,
    legs: Legs,
    sessions: Sessions,
    events: ShardEvents,
    shared: Arc<Shared>,
    params: LegParams,
    running: bool,
    /// Next slot the timer sweep checks.
    sweep_cursor: usize,
    /// Counters of freed legs and I/O totals, for metrics.
    totals: ShardTotals,
    /// Preloaded prompts whose PlaybackReady is due once decoded.
    preloads: Vec<Preload>,
}

/// A StartPlayback with `preload_only`, waiting for its prompt.
#[derive(Debug)]
struct Preload {
    session: Arc<str>,
    leg: Arc<str>,
    playback: Arc<str>,
    audio: Arc<PromptAudio>,
}

/// Preloads a shard follows at once, at most.
const MAX_PRELOADS: usize = 1024;

impl Shard {
    fn run(&mut self) {
        let mut next_tick = Instant::now() + TICK;
        let mut media_idle = true;
        while self.running {
            let now = Instant::now();
            if now >= next_tick {
                self.tick(now);
                next_tick = now + TICK;
            }
            if self.legs.has_media_work() {
                if media_idle {
                    // Nothing ran while idle: nothing to catch up on.
                    self.legs.clock.resume(now);
                    media_idle = false;
                }
                self.media_ticks(now);
            } else {
                media_idle = true;
            }
            for _ in 0..COMMANDS_PER_TURN {
                let Some(command) = self.commands.pop() else {
                    break;
                };
                self.handle_command(command);
            }
            self.wake_hub();
            if !self.running {
                break;
            }
            let mut deadline = next_tick;
            if self.legs.has_media_work() {
                deadline = deadline.min(self.legs.clock.next_deadline());
            }
            let timeout = deadline.saturating_duration_since(Instant::now());
            self.poll(timeout);
        }
        // Flush the last sends and close sockets still retiring.
        for _ in 0..3 {
            self.poll(Duration::ZERO);
        }
        self.wake_hub();
    }

    fn wake_hub(&mut self) {
        if self.events.produced {
            self.events.produced = false;
            self.shared.events.wake();
        }
    }

    fn poll(&mut self, timeout: Duration) {
        let mut path = PacketPath {
            legs: &mut self.legs,
            events: &mut self.events,
            own_media: self.params.own_media,
            kernel_source_filter: self.shared.config.kernel_source_filter,
            clock: None,
        };
        let result = self.io.poll(&mut self.tx, timeout, &mut path);
        match result {
            Ok(stats) => self.totals.io.add(&stats),
            Err(e) => {
                tracing::error!(shard = self.index, error = %e, "I/O backend poll failed");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        self.release_closed_ports();
    }

    /// Gives a port pair back to the pool once both its sockets closed, so
    /// the next leg can bind it at once.
    fn release_closed_ports(&mut self) {
        self.io.take_closed(&mut self.closed);
        for tag in self.closed.drain(..) {
            let port = tag as u16;
            if let Some(left) = self.closing.get_mut(&port) {
                *left -= 1;
                if *left == 0 {
                    self.closing.remove(&port);
                    self.shared.ports.release_closed(port);
                }
            }
        }
    }

    /// Runs the media clock's due ticks (a bounded number after a stall).
    fn media_ticks(&mut self, now: Instant) {
        while let Some(tick) = self.legs.clock.due(now) {
            self.legs
                .media_tick(tick, now, &mut self.tx, &mut self.events);
        }
    }

    fn tick(&mut self, now: Instant) {
        if self.sessions.has_limits() {
            self.expire_sessions(now);
        }
        if !self.preloads.is_empty() {
            self.finish_preloads();
        }
        let len = self.legs.slots.len();
        let start = self.sweep_cursor.min(len);
        let end = (start + len.div_ceil(SWEEP_TICKS)).min(len);
        self.sweep_cursor = if end >= len { 0 } else { end };
        let clock = self.legs.clock;
        for slot in start as u32..end as u32 {
            let Some(entry) = self.legs.get_mut(slot) else {
                continue;
            };
            if entry.leg.is_terminated() {
                continue;
            }
            let action = entry.leg.handle_timeout(now, &mut self.events);
            // A learned source that fell silent lifts its filter.
            entry.sync_peer(self.shared.config.kernel_source_filter);
            entry.send_rtcp(now, clock.wall(now), &mut self.tx);
            if entry.leg.stats_due(now) {
                let stats = entry.media_stats(now, &clock);
                let (session, id) = (entry.leg.session.clone(), entry.leg.id.clone());
                self.events
                    .emit(&session, Some(&id), EventKind::MediaStatistics(stats));
            }
            if let TimeoutAction::Hangup { code, reason } = action
                && entry
                    .leg
                    .hangup(code, &reason, now, &mut self.events)
                    .is_ok()
            {
                self.teardown(slot);
            }
        }
    }

    /// Deletes the sessions whose idle or lifetime limit passed (a slice
    /// of them is checked per tick).
    fn expire_sessions(&mut self, now: Instant) {
        for (id, reason) in self.sessions.expired(now, &self.legs) {
            tracing::info!(shard = self.index, session = %id, %reason, "deleting session");
            let _ = self.delete_session(&id, &reason, now);
        }
    }

    fn handle_command(&mut self, command: Command) {
        let now = Instant::now();
        match command {
            Command::Session(c) => self.handle_session_command(c, now),
            Command::Leg(c) => self.handle_leg_command(c, now),
            Command::Route(c) => self.handle_route_command(c, now),
            Command::Play(c) => self.handle_play_command(c, now),
            Command::Metrics { reply } => {
                let legs = self.legs.slots.iter().flatten();
                let legs = legs.map(|s| (s.leg.state(), &s.leg.counters));
                let metrics = self.totals.snapshot(self.sessions.len(), legs, now);
                let _ = reply.send(Ok(metrics));
            }
            Command::Shutdown => self.shutdown(now),
        }
    }

    fn handle_session_command(&mut self, command: SessionCommand, now: Instant) {
        match command {
            SessionCommand::Create {
                id,
                admitted,
                limits,
                reply,
            } => {
                let _ = reply.send(self.create_session(id, admitted, limits, now));
            }
            SessionCommand::Delete { id, reply } => {
                let _ = reply.send(self.delete_session(&id, "session deleted", now));
            }
            SessionCommand::List { page, reply } => {
                let _ = reply.send(Ok(self.sessions.list(&page, now, &self.legs)));
            }
        }
    }

    /// Leg commands; each one naming a leg (or a session) counts as a sign
    /// of life of its session (the idle limit).
    fn handle_leg_command(&mut self, command: LegCommand, now: Instant) {
        match &command {
            LegCommand::Update { leg, .. }
            | LegCommand::Hangup { leg, .. }
            | LegCommand::Get { leg, .. }
            | LegCommand::Statistics { leg, .. }
            | LegCommand::MonitorStatistics { leg, .. } => {
                self.sessions.touch_leg(&self.legs, leg, now);
            }
            LegCommand::List {
                session: Some(session),
                ..
            } => self.sessions.touch(session, now),
            LegCommand::Create { .. } | LegCommand::List { session: None, .. } => {}
        }
        match command {
            LegCommand::Create { leg, reply } => {
                let _ = reply.send(self.create_leg(*leg, now));
            }
            LegCommand::Update { leg, update, reply } => {
                let _ = reply.send(self.update_leg(&leg, *update, now));
            }
            LegCommand::Hangup {
                leg,
                code,
                reason,
                reply,
            } => {
                let _ = reply.send(self.hangup_leg(&leg, code, &reason, now));
            }
            LegCommand::Get { leg, reply } => {
                let result = self
                    .legs
                    .find(&leg)
                    .and_then(|slot| self.legs.view(slot).ok_or_else(|| not_found(&leg)));
                let _ = reply.send(result);
            }
            LegCommand::List {
                session,
                page,
                reply,
            } => {
                let _ = reply.send(self.list_legs(session.as_deref(), &page));
            }
            LegCommand::Statistics { leg, reply } => {
                let result = self
                    .legs
                    .find(&leg)
                    .and_then(|slot| self.legs.get(slot).ok_or_else(|| not_found(&leg)))
                    .map(|entry| entry.media_stats(now, &self.legs.clock));
                let _ = reply.send(result);
            }
            LegCommand::MonitorStatistics {
                leg,
                interval,
                reply,
            } => {
                let result = self
                    .legs
                    .find(&leg)
                    .and_then(|slot| self.legs.get_mut(slot).ok_or_else(|| not_found(&leg)))
                    .map(|entry| entry.leg.monitor_stats(interval, now));
                let _ = reply.send(result);
            }
        }
    }

    fn handle_route_command(&mut self, command: RouteCommand, now: Instant) {
        match command {
            RouteCommand::Send {
                from,
                to,
                gain_db,
                reply,
            } => {
                self.touch_endpoints(&from, &to, now);
                let _ = reply.send(self.legs.route(&from, &to, gain_db));
            }
            RouteCommand::Stop { from, to, reply } => {
                self.touch_endpoints(&from, &to, now);
                let _ = reply.send(self.legs.unroute(&from, &to));
            }
            RouteCommand::CreateConference {
                id,
                session,
                rate,
                reply,
            } => {
                self.sessions.touch(&session, now);
                let result = match self.sessions.key(&session) {
                    Some(key) => self.legs.create_conference(id, key.clone(), rate),
                    None => Err(EngineError::NotFound(format!(
                        "no such session '{session}'"
                    ))),
                };
                let _ = reply.send(result);
            }
            RouteCommand::DeleteConference { id, reply } => {
                let session = self
                    .legs
                    .find_conference(&id)
                    .ok()
                    .and_then(|c| self.legs.conference(c))
                    .map(|c| c.session.clone());
                if let Some(session) = session {
                    self.sessions.touch(&session, now);
                }
                let _ = reply.send(self.legs.delete_conference(&id));
            }
            RouteCommand::CheckConference { id, reply } => {
                let session = self.legs.find_conference(&id).and_then(|c| {
                    self.legs
                        .conference(c)
                        .map(|conf| conf.session.clone())
                        .ok_or_else(|| EngineError::NotFound(format!("no such conference '{id}'")))
                });
                let _ = reply.send(session);
            }
        }
    }

    fn handle_play_command(&mut self, command: PlayCommand, now: Instant) {
        match command {
            PlayCommand::Start {
                target,
                player,
                reply,
            } => {
                self.touch_endpoints(&target, &target, now);
                let result = match &target {
                    Endpoint::Leg(leg) => self.legs.play(leg, *player),
                    Endpoint::Conference(id) => {
                        self.legs
                            .play_conference(id, *player)
                            .map(|()| crate::session::Routed {
                                replaced: None,
                                held_back: None,
                            })
                    }
                };
                let _ = reply.send(result);
            }
            PlayCommand::Stop { target, reply } => {
                self.touch_endpoints(&target, &target, now);
                let _ = reply.send(match &target {
                    Endpoint::Leg(leg) => self.legs.stop_playback(leg),
                    Endpoint::Conference(id) => self.legs.stop_conference_playback(id),
                });
            }
            PlayCommand::Preload {
                leg,
                playback,
                audio,
                reply,
            } => {
                self.sessions.touch_leg(&self.legs, &leg, now);
                let result = self
                    .legs
                    .find(&leg)
                    .and_then(|slot| self.legs.get(slot).ok_or_else(|| not_found(&leg)))
                    .and_then(|entry| {
                        if self.preloads.len() >= MAX_PRELOADS {
                            return Err(EngineError::ResourceExhausted(format!(
                                "{MAX_PRELOADS} preloads are pending on this shard"
                            )));
                        }
                        self.preloads.push(Preload {
                            session: entry.leg.session.clone(),
                            leg: entry.leg.id.clone(),
                            playback,
                            audio,
                        });
                        Ok(())
                    });
                if result.is_ok() {
                    self.finish_preloads();
                }
                let _ = reply.send(result);
            }
            PlayCommand::Digits {
                leg,
                keys,
                mode,
                reply,
            } => {
                self.sessions.touch_leg(&self.legs, &leg, now);
                let _ = reply.send(self.legs.send_digits(&leg, keys, mode));
            }
            PlayCommand::Record {
                target,
                recording,
                tap,
                reply,
            } => {
                self.touch_endpoints(&target, &target, now);
                let _ = reply.send(self.legs.attach_recording(&target, recording, tap));
            }
            PlayCommand::StopRecording {
                target,
                recording,
                reply,
            } => {
                self.touch_endpoints(&target, &target, now);
                let _ = reply.send(self.legs.stop_recording(&target, recording.as_deref()));
            }
            PlayCommand::ToneHandling {
                leg,
                enabled,
                keep_in_audio,
                reply,
            } => {
                self.sessions.touch_leg(&self.legs, &leg, now);
                let _ = reply.send(self.legs.set_tone_handling(&leg, enabled, keep_in_audio));
            }
            PlayCommand::InjectDigits {
                leg,
                digits,
                duration_ms,
                reply,
            } => {
                self.sessions.touch_leg(&self.legs, &leg, now);
                let _ = reply.send(self.legs.inject_digits(
                    &leg,
                    &digits,
                    duration_ms,
                    &mut self.events,
                ));
            }
            PlayCommand::Detect { leg, change, reply } => {
                self.sessions.touch_leg(&self.legs, &leg, now);
                let _ = reply.send(self.legs.change_detectors(&leg, change, &mut self.events));
            }
        }
    }

    /// Raises PlaybackReady (or PlaybackFinished with the error) for every
    /// preload whose prompt is decoded.
    fn finish_preloads(&mut self) {
        let events = &mut self.events;
        self.preloads.retain(|p| {
            let kind = match p.audio.progress() {
                Progress::Loading => return true,
                Progress::Complete => EventKind::PlaybackReady {
                    playback: p.playback.clone(),
                    duration_ms: p.audio.duration_ms(),
                },
                Progress::Failed => EventKind::PlaybackFinished {
                    playback: p.playback.clone(),
                    error: Some(p.audio.error().unwrap_or("decoding failed").to_owned()),
                },
            };
            events.emit(&p.session, Some(&p.leg), kind);
            false
        });
    }

    /// A route names legs or conferences: each is a sign of life of its
    /// session.
    fn touch_endpoints(&mut self, from: &Endpoint, to: &Endpoint, now: Instant) {
        for endpoint in [from, to] {
            match endpoint {
                Endpoint::Leg(id) => self.sessions.touch_leg(&self.legs, id, now),
                Endpoint::Conference(id) => {
                    let session = self
                        .legs
                        .find_conference(id)
                        .ok()
                        .and_then(|c| self.legs.conference(c))
                        .map(|c| c.session.clone());
                    if let Some(session) = session {
                        self.sessions.touch(&session, now);
                    }
                }
            }
        }
    }

    fn create_session(
        &mut self,
        id: Arc<str>,
        admitted: Admitted,
        limits: SessionLimits,
        now: Instant,
    ) -> Result<(), EngineError> {
        // On error `admitted` is dropped: the unit goes back.
        self.sessions.create(id, limits, now, SystemTime::now())?;
        admitted.keep();
        Ok(())
    }

    fn delete_session(&mut self, id: &str, reason: &str, now: Instant) -> Result<u32, EngineError> {
        let Some((id, session)) = self.sessions.remove(id) else {
            return Err(EngineError::NotFound(format!("no such session '{id}'")));
        };
        let mut terminated = 0;
        for &slot in &session.legs {
            if let Some(entry) = self.legs.get_mut(slot)
                && !entry.leg.is_terminated()
                && entry.leg.hangup(0, reason, now, &mut self.events).is_ok()
            {
                terminated += 1;
                self.teardown(slot);
            }
        }
        for &slot in &session.legs {
            if let Some(entry) = self
                .legs
                .slots
                .get_mut(slot as usize)
                .and_then(Option::take)
            {
                self.totals.fold(&entry.leg.counters);
                self.legs.by_id.remove(&entry.leg.id);
                self.legs.free.push(slot);
            }
        }
        self.legs.delete_session_conferences(&id);
        self.events.emit(
            &id,
            None,
            EventKind::SessionDeleted {
                reason: reason.to_owned(),
            },
        );
        self.shared.sessions.fetch_sub(1, Ordering::Relaxed);
        Ok(terminated)
    }

    /// Creates a leg. On any error the port pair and the leg's unit of
    /// `max_legs` go back when `request` is dropped (their guards).
    fn create_leg(
        &mut self,
        request: CreateLeg,
        now: Instant,
    ) -> Result<(LegView, String), EngineError> {
        let CreateLeg {
            id,
            ports,
            admitted,
            ..
        } = request;
        let Some(session_id) = self.sessions.key(&request.session) else {
            return Err(EngineError::NotFound(format!(
                "no such session '{}'",
                request.session
            )));
        };
        let session_id = session_id.clone();
        if self.legs.by_id.contains_key(&id) {
            return Err(EngineError::AlreadyExists(format!(
                "leg '{id}' already exists"
            )));
        }
        let rtp_port = ports
            .rtp
            .local_addr()
            .map(|a| a.port())
            .unwrap_or(ports.port);
        let rtcp_port = ports
            .rtcp
            .local_addr()
            .map(|a| a.port())
            .unwrap_or(ports.port + 1);
        let (leg, sdp) = Leg::new(
            NewLeg {
                id: id.clone(),
                session: session_id.clone(),
                request: request.request,
                advertised: self.shared.config.advertised_address,
                rtp_port,
                rtcp_port,
                seeds: [fastrand::u64(..), fastrand::u64(..)],
            },
            self.params.clone(),
            now,
            SystemTime::now(),
        )?;
        let slot = self.legs.next_slot();
        let token = u64::from(slot);
        let rtp_fd = ports.rtp.as_raw_fd();
        let rtp = match self.io.add_socket(ports.rtp, token) {
            Ok(id) => id,
            Err(e) => {
                self.legs.free.push(slot);
                return Err(EngineError::Internal(format!(
                    "cannot register RTP socket: {e}"
                )));
            }
        };
        let lease = ports.lease;
        let rtcp_fd = ports.rtcp.as_raw_fd();
        let rtcp = match self.io.add_socket(ports.rtcp, token | RTCP_BIT) {
            Ok(id) => id,
            Err(e) => {
                // The caller releases the pair; a bind racing the deferred
                // close of this socket just skips the pair once.
                self.io.remove_socket(rtp, u64::from(ports.port));
                self.legs.free.push(slot);
                return Err(EngineError::Internal(format!(
                    "cannot register RTCP socket: {e}"
                )));
            }
        };
        // The leg exists: the shard releases the pair and the leg's unit
        // in `teardown`.
        lease.keep();
        admitted.keep();
        self.legs.slots[slot as usize] = Some(LegSlot {
            send: SendTo {
                fd: rtp_fd,
                id: rtp,
            },
            media: LegMedia::default(),
            leg,
            io: LegIo {
                rtp: Some(rtp),
                rtcp: Some(rtcp),
                rtcp_send: SendTo {
                    fd: rtcp_fd,
                    id: rtcp,
                },
                port: ports.port,
                filter: KernelFilter::Open,
            },
        });
        if let Some(entry) = self.legs.get_mut(slot) {
            entry.sync_peer(self.shared.config.kernel_source_filter);
        }
        self.legs.by_id.insert(id.clone(), slot);
        self.sessions.add_leg(&session_id, slot);
        let view = self.legs.view(slot).ok_or_else(|| not_found(&id))?;
        Ok((view, sdp))
    }

    fn update_leg(
        &mut self,
        id: &str,
        update: LegUpdate,
        now: Instant,
    ) -> Result<(LegView, Option<String>), EngineError> {
        let slot = self.legs.find(id)?;
        let entry = self.legs.get_mut(slot).ok_or_else(|| not_found(id))?;
        let sdp = entry
            .leg
            .update(update, now, SystemTime::now(), &mut self.events)?;
        entry.sync_peer(self.shared.config.kernel_source_filter);
        // Codecs or packet durations may have changed: relay or PCM path.
        self.legs.replan();
        let view = self.legs.view(slot).ok_or_else(|| not_found(id))?;
        Ok((view, sdp))
    }

    fn hangup_leg(
        &mut self,
        id: &str,
        code: u16,
        reason: &str,
        now: Instant,
    ) -> Result<LegView, EngineError> {
        let slot = self.legs.find(id)?;
        let entry = self.legs.get_mut(slot).ok_or_else(|| not_found(id))?;
        entry.leg.hangup(code, reason, now, &mut self.events)?;
        self.teardown(slot);
        self.legs.view(slot).ok_or_else(|| not_found(id))
    }

    fn list_legs(&self, session: Option<&str>, page: &Page) -> Result<Vec<LegView>, EngineError> {
        let mut slots: Vec<(&str, u32)> = match session {
            Some(id) => {
                let session = self
                    .sessions
                    .get(id)
                    .ok_or_else(|| EngineError::NotFound(format!("no such session '{id}'")))?;
                session
                    .legs
                    .iter()
                    .filter_map(|&s| self.legs.get(s).map(|e| (&*e.leg.id, s)))
                    .collect()
            }
            None => self.legs.by_id.iter().map(|(id, &s)| (&**id, s)).collect(),
        };
        slots.retain(|(id, _)| page.admits(id));
        slots.sort_unstable();
        slots.truncate(page.limit);
        Ok(slots
            .into_iter()
            .filter_map(|(_, s)| self.legs.view(s))
            .collect())
    }

    /// Removes a terminated leg's routes and closes its sockets (after an
    /// RTCP BYE).
    fn teardown(&mut self, slot: u32) {
        let now = Instant::now();
        let clock = self.legs.clock;
        let Some(entry) = self.legs.get_mut(slot) else {
            return;
        };
        if entry.io.rtp.is_some() {
            // The leg's last figures (CallEvents.Statistics), then RTCP BYE.
            let stats = entry.media_stats(now, &clock);
            let (session, id) = (entry.leg.session.clone(), entry.leg.id.clone());
            self.events
                .emit(&session, Some(&id), EventKind::Statistics(stats));
        }
        entry.send_bye(now, clock.wall(now), &mut self.tx);
        let sockets = [entry.io.rtp.take(), entry.io.rtcp.take()];
        let port = entry.io.port;
        self.legs.detach(slot);
        let open = sockets.iter().flatten().count() as u8;
        for id in sockets.into_iter().flatten() {
            self.io.remove_socket(id, u64::from(port));
        }
        if open > 0 {
            self.closing.insert(port, open);
            self.shared.ports.closing();
            self.shared.live_legs.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn shutdown(&mut self, now: Instant) {
        for slot in 0..self.legs.slots.len() as u32 {
            if let Some(entry) = self.legs.get_mut(slot)
                && !entry.leg.is_terminated()
                && entry
                    .leg
                    .hangup(0, "legatod shutting down", now, &mut self.events)
                    .is_ok()
            {
                self.teardown(slot);
            }
        }
        self.running = false;
    }
}

fn not_found(id: &str) -> EngineError {
    EngineError::NotFound(format!("no such leg '{id}'"))
}

/// The shard's packet path, as the backend's [`PacketHandler`].
struct PacketPath<'a> {
    legs: &'a mut Legs,
    events: &'a mut ShardEvents,
    /// legato's own sockets: datagrams from them are loops, dropped.
    own_media: OwnMedia,
    /// Connect RTP sockets to their settled source.
    kernel_source_filter: bool,
    /// One clock read per poll: packets of one wake-up share it.
    clock: Option<Instant>,
}

impl PacketHandler for PacketPath<'_> {
    fn warm(&mut self, tokens: &[u64]) {
        let mut slots = [0u32; WARM_BATCH];
        let n = tokens.len().min(WARM_BATCH);
        for (slot, &token) in slots.iter_mut().zip(&tokens[..n]) {
            *slot = token as u32;
        }
        crate::session::warm(self.legs, &slots[..n]);
    }

    fn packet(&mut self, token: u64, source: SocketAddr, data: &[u8], tx: &mut TxQueue) {
        let now = *self.clock.get_or_insert_with(Instant::now);
        if self.own_media.contains(source) {
            // One of legato's own sockets sent it: a media loop (an SDP
            // pointing a leg at legato is refused, so this is an injected
            // or spoofed packet). Dropped before it can be relayed again.
            if let Some(entry) = self.legs.get_mut(token as u32) {
                entry.leg.counters.loop_packets += 1;
            }
            return;
        }
        let slot = token as u32;
        crate::session::handle_packet(
            self.legs,
            self.events,
            now,
            slot,
            token & RTCP_BIT != 0,
            source,
            data,
            tx,
        );
        // The packet may have settled or brought back the leg's source, or
        // switched its format (rare: at most once a second per leg).
        if let Some(entry) = self.legs.get_mut(slot) {
            entry.sync_peer(self.kernel_source_filter);
            if entry.leg.take_format_change() {
                self.legs.replan();
            }
        }
    }

    fn oversize(&mut self, token: u64) {
        if let Some(entry) = self.legs.get_mut(token as u32) {
            entry.leg.counters.oversize_packets += 1;
        }
    }
}
