//! The packet generator and receiver: one thread, a small pool of
//! non-blocking UDP sockets, `sendmmsg`/`recvmmsg` batches.
//!
//! Each call has two streams (A→B, B→A), each 50 packets/s. Stream `s` is
//! due at `t0 + s·20 ms/streams + n·20 ms`, so the load is spread evenly over
//! every 20 ms; the loop wakes once per tick (1 ms by default), sends what
//! is due, then drains the receive queues. Send times are stamped into each
//! batch right before its `sendmmsg`; receive times are the kernel's
//! `SO_TIMESTAMPNS` stamps, taken when the relay's send reached the loopback
//! receive path, so the one-way latency does not include the generator's
//! own sleep between ticks.
//!
//! The peers of all calls share `sockets` sockets (call `i`'s A side is
//! socket `2i mod sockets`, its B side `2i+1 mod sockets`). The relay's cost
//! does not depend on that (it sends each packet to the address the leg's
//! SDP names), and it is what lets the generator batch: per-call sockets
//! would cost one syscall per packet.
//!
//! A unit of load need not be a bridged call of two streams: a conference
//! of N members has N ([`Generator::with_units`]), member `m` of unit `i`
//! on socket `(N·i + m) mod sockets`. When legatod transcodes or mixes, the
//! probe payload does not survive; the generator then learns, per stream,
//! the legatod leg address its output comes from
//! ([`Generator::set_output_source`]) and accounts received packets by
//! their source address and RTP sequence number instead: loss from gaps in
//! legatod's numbering, packets counted by kernel receive time inside the
//! window, no latency.

use std::io::{IoSlice, IoSliceMut};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::errno::Errno;
use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrIn, recvmmsg, sendmmsg,
    setsockopt, sockopt,
};
use nix::sys::time::TimeSpec;

use crate::histogram::Histogram;
use crate::kind::Codec;
use crate::wire::{self, PACKET_LEN};

/// Address the generator's peers bind to: 127.0.0.2, not legatod's
/// 127.0.0.1. Their ephemeral ports fall inside legatod's media range, and
/// legatod refuses SDP (and drops datagrams) naming one of its own media
/// ports on its own address as a media loop.
pub const PEER_ADDRESS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// Datagrams per `sendmmsg`: also bounds how long the last datagram of a
/// batch waits after its time stamp (a few µs each).
const SEND_BATCH: usize = 32;
/// Datagrams per `recvmmsg`.
const RECV_BATCH: usize = 64;
/// Receive buffer size; probes are 172 bytes, anything larger is foreign.
const RECV_BUF: usize = 512;
/// `recvmmsg` rounds per socket per loop turn, so a receive queue that
/// fills faster than it drains cannot stall sending (the excess shows up
/// as kernel receive-buffer drops, i.e. the generator is the bottleneck).
const RECV_ROUNDS: usize = 8;
/// Socket buffer size asked for (forced past `rmem_max` when allowed).
const SOCKET_BUFFER: usize = 8 << 20;
/// Packet interval of one stream.
pub const PACKET_INTERVAL: Duration = Duration::from_millis(20);

/// Where the measuring window starts and ends, for the caller's samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Warm-up is over: take the "before" samples now.
    WindowStart,
    /// The last in-window packet is sent: take the "after" samples now.
    WindowEnd,
}

/// How long each part of a run lasts.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Sending before the window opens (latching, caches, first-packet
    /// events).
    pub warmup: Duration,
    /// The measuring window.
    pub window: Duration,
    /// Receiving after the last send, for packets still in flight.
    pub drain: Duration,
    /// Loop period.
    pub tick: Duration,
}

/// What one run measured. Packet counts cover probes *sent* inside the
/// window, wherever they were received.
#[derive(Clone, Debug, Default)]
pub struct RunStats {
    /// Window length in seconds, by the clock the stamps use.
    pub window_s: f64,
    /// Probes handed to the kernel in the window.
    pub offered: u64,
    /// Distinct window probes received.
    pub received: u64,
    /// Window probes never received (per stream: offered − received).
    pub lost: u64,
    /// Window probes received more than once (extra copies).
    pub duplicates: u64,
    /// Window probes that arrived after a later probe of their stream.
    pub reordered: u64,
    /// Probes the kernel refused to send (whole run).
    pub send_errors: u64,
    /// Datagrams received that were not probes of this run.
    pub foreign: u64,
    /// Probes whose receive time preceded the send time (clock step).
    pub negative_latency: u64,
    /// Receives without a kernel time stamp (user-space time used).
    pub unstamped: u64,
    /// One-way latency of window probes, ns.
    pub latency: Histogram,
    /// How late the generator sent each window packet against its
    /// schedule, ns: large values mean the generator itself was saturated
    /// or descheduled.
    pub send_lag: Histogram,
    /// Per-stream window counts of the streams that were sending (the
    /// first `2 × active calls`), for fairness figures.
    pub streams: Vec<StreamCount>,
}

/// Window probes of one stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamCount {
    /// Probes sent in the window.
    pub offered: u64,
    /// Distinct window probes received.
    pub received: u64,
}

impl StreamCount {
    /// Lost fraction (0 when nothing was offered).
    pub fn loss(&self) -> f64 {
        if self.offered == 0 {
            0.0
        } else {
            self.offered.saturating_sub(self.received) as f64 / self.offered as f64
        }
    }
}

/// A stream never counts as starved below this loss, however small the
/// average: at 0.01 % average loss, one lost packet of 250 is no starvation.
pub const STARVE_MIN_LOSS: f64 = 0.05;

impl RunStats {
    /// Sending streams that received nothing, or whose loss exceeds
    /// `factor` × the run's average loss, capped at halfway between the
    /// average and 100 % (so it still means something under heavy loss),
    /// and at least [`STARVE_MIN_LOSS`].
    pub fn starved_streams(&self, factor: f64) -> u64 {
        let average = if self.offered == 0 {
            0.0
        } else {
            self.lost as f64 / self.offered as f64
        };
        let threshold = (factor * average)
            .min(average + (1.0 - average) / 2.0)
            .max(STARVE_MIN_LOSS);
        self.streams
            .iter()
            .filter(|s| s.offered > 0 && (s.received == 0 || s.loss() > threshold))
            .count() as u64
    }

    /// The highest loss of any sending stream, %.
    pub fn worst_stream_loss_percent(&self) -> f64 {
        self.streams
            .iter()
            .map(|s| s.loss() * 100.0)
            .fold(0.0, f64::max)
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct TxStream {
    dest: Option<SockaddrIn>,
    socket: u32,
    ssrc: u32,
    seq: u32,
    offered: u64,
    /// RTP payload type sent.
    pt: u8,
    /// Timestamp units per packet (0: [`wire::SAMPLES_PER_PACKET`]).
    ts_step: u32,
    /// Payload: 0 the probe, `k > 0` the generator's template `k - 1`.
    template: u8,
}

/// No stream: an entry of the source-port table.
const NO_STREAM: u32 = u32::MAX;

/// Receive accounting by RTP header: where each stream's output comes from
/// and what its sequence numbers say.
#[derive(Debug)]
struct HeaderAccounting {
    /// Source IPv4 address of legatod's packets.
    ip: u32,
    /// Stream of each source port ([`NO_STREAM`]: none).
    by_port: Box<[u32]>,
    /// Per stream: highest extended sequence number seen (0: none yet).
    last_ext: Vec<u32>,
    /// Per stream: lowest extended sequence number received in the window.
    lowest: Vec<u32>,
}

/// Extended sequence numbers start here, so reordering before the first
/// packet cannot go below zero.
const EXT_BASE: u32 = 1 << 20;

#[derive(Clone, Copy, Debug, Default)]
struct RxStream {
    seen_any: bool,
    highest: u32,
    /// Bit `d` set: `highest - d` was received.
    recent: u64,
    received: u64,
    duplicates: u64,
    reordered: u64,
}

impl RxStream {
    /// Records `seq`; returns false for a duplicate.
    fn accept(&mut self, seq: u32) -> (bool, bool) {
        if !self.seen_any {
            self.seen_any = true;
            self.highest = seq;
            self.recent = 1;
            return (true, false);
        }
        if seq > self.highest {
            let shift = seq - self.highest;
            self.recent = if shift >= 64 { 0 } else { self.recent << shift };
            self.recent |= 1;
            self.highest = seq;
            return (true, false);
        }
        let back = self.highest - seq;
        if back >= 64 {
            // Too old to tell a duplicate apart: count it as late.
            return (true, true);
        }
        if self.recent & (1 << back) != 0 {
            return (false, false);
        }
        self.recent |= 1 << back;
        (true, true)
    }
}

/// A batch of datagrams waiting to leave one socket.
#[derive(Debug)]
struct SendBatch {
    bufs: Box<[[u8; PACKET_LEN]; SEND_BATCH]>,
    dests: [Option<SockaddrIn>; SEND_BATCH],
    streams: [u32; SEND_BATCH],
    /// Datagram lengths.
    lens: [usize; SEND_BATCH],
    /// Whether the datagram carries a probe (gets a send time stamp).
    probes: [bool; SEND_BATCH],
    len: usize,
}

impl SendBatch {
    fn new() -> Self {
        Self {
            bufs: Box::new([[0; PACKET_LEN]; SEND_BATCH]),
            dests: [None; SEND_BATCH],
            streams: [0; SEND_BATCH],
            lens: [PACKET_LEN; SEND_BATCH],
            probes: [true; SEND_BATCH],
            len: 0,
        }
    }
}

/// The generator: sockets, per-stream state and the batches in flight.
#[derive(Debug)]
pub struct Generator {
    sockets: Vec<UdpSocket>,
    calls: usize,
    /// Streams per unit of load (2 for a bridged call).
    per_unit: usize,
    /// Payloads of streams that do not send probes.
    templates: Vec<Vec<u8>>,
    /// Set once any stream's output source is known: account received
    /// packets by RTP header instead of probe payload.
    headers: Option<HeaderAccounting>,
    tx: Vec<TxStream>,
    rx: Vec<RxStream>,
    batches: Vec<SendBatch>,
    send_hdrs: MultiHeaders<SockaddrIn>,
    recv_hdrs: MultiHeaders<SockaddrIn>,
    recv_bufs: Box<[[u8; RECV_BUF]; RECV_BATCH]>,
    stats: RunStats,
    window: (u64, u64),
    /// Calls sending in the current run.
    active: usize,
}

impl Generator {
    /// Binds `sockets` sockets on [`PEER_ADDRESS`] for `calls` calls.
    pub fn new(calls: usize, sockets: usize) -> Result<Self> {
        Self::with_units(calls, 2, sockets)
    }

    /// Binds `sockets` sockets on [`PEER_ADDRESS`] for `units` units of
    /// `per_unit` streams each (a conference of N members: N).
    pub fn with_units(calls: usize, per_unit: usize, sockets: usize) -> Result<Self> {
        if calls == 0 || per_unit == 0 {
            bail!("no calls");
        }
        let count = sockets.clamp(1, per_unit * calls);
        let mut bound = Vec::with_capacity(count);
        for _ in 0..count {
            let socket =
                UdpSocket::bind((PEER_ADDRESS, 0)).context("binding a generator socket")?;
            socket.set_nonblocking(true)?;
            if setsockopt(&socket, sockopt::RcvBufForce, &SOCKET_BUFFER).is_err() {
                let _ = setsockopt(&socket, sockopt::RcvBuf, &SOCKET_BUFFER);
            }
            if setsockopt(&socket, sockopt::SndBufForce, &SOCKET_BUFFER).is_err() {
                let _ = setsockopt(&socket, sockopt::SndBuf, &SOCKET_BUFFER);
            }
            setsockopt(&socket, sockopt::ReceiveTimestampns, &true)
                .context("enabling SO_TIMESTAMPNS")?;
            bound.push(socket);
        }
        let streams = per_unit * calls;
        let tx = (0..streams)
            .map(|s| TxStream {
                dest: None,
                socket: (s % count) as u32,
                ssrc: 0x4c47_0000 ^ (s as u32).wrapping_mul(2_654_435_761),
                seq: 0,
                offered: 0,
                pt: 0,
                ts_step: 0,
                template: 0,
            })
            .collect();
        Ok(Self {
            sockets: bound,
            calls,
            per_unit,
            templates: Vec::new(),
            headers: None,
            tx,
            rx: vec![RxStream::default(); streams],
            batches: (0..count).map(|_| SendBatch::new()).collect(),
            send_hdrs: MultiHeaders::preallocate(SEND_BATCH, None),
            recv_hdrs: MultiHeaders::preallocate(RECV_BATCH, Some(nix::cmsg_space!(TimeSpec))),
            recv_bufs: Box::new([[0; RECV_BUF]; RECV_BATCH]),
            stats: RunStats::default(),
            window: (u64::MAX, u64::MAX),
            active: calls,
        })
    }

    /// Calls this generator drives.
    pub fn calls(&self) -> usize {
        self.calls
    }

    /// Local ports of the generator's sockets.
    pub fn local_ports(&self) -> Vec<u16> {
        self.sockets
            .iter()
            .filter_map(|s| s.local_addr().ok().map(|a| a.port()))
            .collect()
    }

    /// The generator's address for one side (0 = A, 1 = B; member `m` of a
    /// conference) of `call`: the address to put in that leg's SDP offer.
    pub fn peer_addr(&self, call: usize, side: usize) -> SocketAddr {
        let socket = (self.per_unit * call + side) % self.sockets.len();
        self.sockets[socket]
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
    }

    /// Sets the relay addresses of `call`: where side A sends (leg A's local
    /// RTP address) and where side B sends.
    pub fn set_relay(&mut self, call: usize, a: SocketAddrV4, b: SocketAddrV4) {
        self.tx[2 * call].dest = Some(SockaddrIn::from(a));
        self.tx[2 * call + 1].dest = Some(SockaddrIn::from(b));
    }

    /// Sets where `stream` (member `m` of unit `i`: `per_unit · i + m`)
    /// sends, in which codec: PCMU and the other codecs whose every 160-byte
    /// payload is a frame carry the probe, Opus sends encoded silence.
    pub fn set_stream(&mut self, stream: usize, dest: SocketAddrV4, codec: Codec) {
        let template = if codec.carries_probe() {
            0
        } else {
            let frame = codec.silence_frame();
            let k = match self.templates.iter().position(|t| *t == frame) {
                Some(k) => k,
                None => {
                    self.templates.push(frame);
                    self.templates.len() - 1
                }
            };
            u8::try_from(k + 1).unwrap_or(u8::MAX)
        };
        if let Some(tx) = self.tx.get_mut(stream) {
            tx.dest = Some(SockaddrIn::from(dest));
            tx.pt = codec.payload_type();
            tx.ts_step = codec.timestamp_step();
            tx.template = template;
        }
    }

    /// Accounts the packets legatod sends from `source` (a leg's local RTP
    /// address) to `stream`; from the first call on, every received packet
    /// is accounted by RTP header (see the module docs).
    pub fn set_output_source(&mut self, stream: usize, source: SocketAddrV4) {
        let streams = self.tx.len();
        if stream >= streams {
            return;
        }
        let h = self.headers.get_or_insert_with(|| HeaderAccounting {
            ip: u32::from(*source.ip()),
            by_port: vec![NO_STREAM; 1 << 16].into_boxed_slice(),
            last_ext: vec![0; streams],
            lowest: vec![u32::MAX; streams],
        });
        h.by_port[usize::from(source.port())] = stream as u32;
    }

    /// Whether received packets are accounted by RTP header (no latency).
    pub fn accounts_by_header(&self) -> bool {
        self.headers.is_some()
    }

    /// Sends on the first `active` calls (all of them when `active` is 0 or
    /// larger than [`Self::calls`]; the others stay silent) and receives for
    /// `timing`, calling `probe` at the window's edges, and returns what was
    /// measured. Probes of an earlier run still arriving count as nothing
    /// (their send time is before this run's window).
    pub fn run(&mut self, timing: Timing, active: usize, probe: &mut dyn FnMut(Phase)) -> RunStats {
        self.stats = RunStats::default();
        self.window = (u64::MAX, u64::MAX);
        for s in &mut self.tx {
            s.offered = 0;
        }
        self.rx.fill(RxStream::default());
        if let Some(h) = &mut self.headers {
            h.lowest.fill(u32::MAX);
        }
        let active = if active == 0 {
            self.calls
        } else {
            active.min(self.calls)
        };
        self.active = active;
        let streams = (self.per_unit * active) as u64;
        let period = PACKET_INTERVAL.as_nanos() as u64;
        let t0 = Instant::now();
        let window_start = t0 + timing.warmup;
        let send_end = window_start + timing.window;
        let end = send_end + timing.drain;
        // Next due packet: (cycle, stream).
        let (mut cycle, mut next) = (0u64, 0u64);
        let due = |cycle: u64, stream: u64| {
            t0 + Duration::from_nanos(cycle * period + stream * period / streams)
        };
        let mut started = false;
        let mut ended = false;
        loop {
            let now = Instant::now();
            if !started && now >= window_start {
                started = true;
                probe(Phase::WindowStart);
                self.window.0 = wire::realtime_ns();
            }
            if !ended {
                let limit = now.min(send_end);
                let in_window = started;
                while due(cycle, next) <= limit {
                    if in_window {
                        let lag = now.saturating_duration_since(due(cycle, next));
                        self.stats.send_lag.record(lag.as_nanos() as u64);
                    }
                    self.enqueue(next as usize);
                    next += 1;
                    if next == streams {
                        next = 0;
                        cycle += 1;
                    }
                }
                for socket in 0..self.sockets.len() {
                    self.flush(socket);
                }
                if now >= send_end {
                    ended = true;
                    self.window.1 = wire::realtime_ns();
                    probe(Phase::WindowEnd);
                }
            }
            for socket in 0..self.sockets.len() {
                self.drain(socket);
            }
            let now = Instant::now();
            // A generator that fell behind may pass `end` inside one turn:
            // the window still ends through the branch above first.
            if ended && now >= end {
                break;
            }
            let tick = timing.tick.as_nanos().max(1) as u64;
            let since = now.duration_since(t0).as_nanos() as u64;
            let sleep =
                Duration::from_nanos(tick - since % tick).min(end.saturating_duration_since(now));
            std::thread::sleep(sleep);
        }
        self.finish(timing)
    }

    fn enqueue(&mut self, stream: usize) {
        let tx = &mut self.tx[stream];
        let Some(dest) = tx.dest else {
            return;
        };
        let socket = tx.socket as usize;
        let batch = &mut self.batches[socket];
        let k = batch.len;
        wire::build(&mut batch.bufs[k], stream as u32, tx.seq, tx.ssrc);
        batch.lens[k] = PACKET_LEN;
        batch.probes[k] = tx.template == 0;
        if tx.pt != 0 || tx.ts_step != 0 {
            wire::set_format(&mut batch.bufs[k], tx.pt, tx.seq, tx.ts_step);
        }
        if let Some(frame) = self.templates.get(usize::from(tx.template).wrapping_sub(1)) {
            batch.lens[k] = wire::set_payload(&mut batch.bufs[k], frame);
        }
        tx.seq += 1;
        batch.dests[k] = Some(dest);
        batch.streams[k] = stream as u32;
        batch.len += 1;
        if batch.len == SEND_BATCH {
            self.flush(socket);
        }
    }

    fn flush(&mut self, socket: usize) {
        let fd = self.sockets[socket].as_raw_fd();
        let batch = &mut self.batches[socket];
        let len = batch.len;
        if len == 0 {
            return;
        }
        batch.len = 0;
        let now = wire::realtime_ns();
        let in_window = now >= self.window.0 && self.window.1 == u64::MAX;
        for (buf, &probe) in batch.bufs[..len].iter_mut().zip(&batch.probes) {
            if probe {
                wire::stamp(buf, now);
            }
        }
        let mut done = 0;
        while done < len {
            let iovs: [[IoSlice<'_>; 1]; SEND_BATCH] =
                std::array::from_fn(|k| [IoSlice::new(&batch.bufs[k][..batch.lens[k]])]);
            let cmsgs: [ControlMessage<'_>; 0] = [];
            let result = sendmmsg(
                fd,
                &mut self.send_hdrs,
                &iovs[done..len],
                &batch.dests[done..len],
                cmsgs,
                MsgFlags::MSG_DONTWAIT,
            );
            let sent = match result {
                Ok(results) => results.count(),
                Err(Errno::EINTR) => continue,
                Err(_) => 0,
            };
            for &stream in &batch.streams[done..done + sent] {
                if in_window {
                    self.tx[stream as usize].offered += 1;
                }
            }
            if sent == 0 {
                // The first datagram failed (buffer full): drop it, go on.
                self.stats.send_errors += 1;
                done += 1;
            } else {
                done += sent;
            }
        }
    }

    fn drain(&mut self, socket: usize) {
        let fd: RawFd = self.sockets[socket].as_raw_fd();
        for _ in 0..RECV_ROUNDS {
            let mut meta = [(0usize, 0u64, (0u32, 0u16)); RECV_BATCH];
            let mut n = 0;
            {
                let mut iovs: [[IoSliceMut<'_>; 1]; RECV_BATCH] =
                    self.recv_bufs.each_mut().map(|b| [IoSliceMut::new(b)]);
                let results = match recvmmsg(
                    fd,
                    &mut self.recv_hdrs,
                    iovs.iter_mut(),
                    MsgFlags::MSG_DONTWAIT,
                    None,
                ) {
                    Ok(results) => results,
                    Err(Errno::EINTR) => continue,
                    Err(_) => return, // EAGAIN: drained
                };
                for msg in results {
                    let mut stamp = 0;
                    if let Ok(cmsgs) = msg.cmsgs() {
                        for cmsg in cmsgs {
                            if let ControlMessageOwned::ScmTimestampns(ts) = cmsg {
                                stamp = (ts.tv_sec() as u64) * 1_000_000_000 + ts.tv_nsec() as u64;
                            }
                        }
                    }
                    let len = if msg.flags.contains(MsgFlags::MSG_TRUNC) {
                        0
                    } else {
                        msg.bytes
                    };
                    let source = msg
                        .address
                        .map_or((0, 0), |a| (u32::from(a.ip()), a.port()));
                    meta[n] = (len, stamp, source);
                    n += 1;
                }
            }
            let fallback = wire::realtime_ns();
            for (k, &(len, stamp, source)) in meta[..n].iter().enumerate() {
                let received_ns = if stamp == 0 {
                    self.stats.unstamped += 1;
                    fallback
                } else {
                    stamp
                };
                if self.headers.is_some() {
                    self.account_header(k, len, received_ns, source);
                } else {
                    self.account(k, len, received_ns);
                }
            }
            if n < RECV_BATCH {
                return;
            }
        }
    }

    fn account(&mut self, k: usize, len: usize, received_ns: u64) {
        let Some(probe) = wire::parse(&self.recv_bufs[k][..len]) else {
            self.stats.foreign += 1;
            return;
        };
        let Some(rx) = self.rx.get_mut(probe.stream as usize) else {
            self.stats.foreign += 1;
            return;
        };
        let (fresh, late) = rx.accept(probe.seq);
        let (start, end) = self.window;
        if probe.sent_ns < start || probe.sent_ns >= end {
            return;
        }
        if !fresh {
            rx.duplicates += 1;
            return;
        }
        rx.received += 1;
        if late {
            rx.reordered += 1;
        }
        if received_ns < probe.sent_ns {
            self.stats.negative_latency += 1;
            self.stats.latency.record(0);
        } else {
            self.stats.latency.record(received_ns - probe.sent_ns);
        }
    }

    /// Accounts a packet of legatod's own making (transcoded or mixed):
    /// stream by source address, window by receive time, sequence numbers
    /// from the RTP header.
    fn account_header(&mut self, k: usize, len: usize, received_ns: u64, source: (u32, u16)) {
        let Some(h) = self.headers.as_mut() else {
            return;
        };
        let datagram = &self.recv_bufs[k][..len];
        let stream = h.by_port[usize::from(source.1)];
        if stream == NO_STREAM || source.0 != h.ip || len < 12 || datagram[0] >> 6 != 2 {
            self.stats.foreign += 1;
            return;
        }
        let stream = stream as usize;
        let seq = u16::from_be_bytes([datagram[2], datagram[3]]);
        let last = h.last_ext[stream];
        let ext = extend_seq(last, seq);
        h.last_ext[stream] = last.max(ext);
        let (start, end) = self.window;
        if received_ns < start || received_ns >= end {
            return;
        }
        let rx = &mut self.rx[stream];
        let (fresh, late) = rx.accept(ext);
        if !fresh {
            rx.duplicates += 1;
            return;
        }
        rx.received += 1;
        if late {
            rx.reordered += 1;
        }
        h.lowest[stream] = h.lowest[stream].min(ext);
    }

    fn finish(&mut self, timing: Timing) -> RunStats {
        let mut stats = std::mem::take(&mut self.stats);
        let (start, end) = self.window;
        stats.window_s = if end > start && end != u64::MAX {
            (end - start) as f64 / 1e9
        } else {
            timing.window.as_secs_f64()
        };
        if let Some(h) = &self.headers {
            // Output expected per stream: the span of legatod's sequence
            // numbers received in the window.
            let expected = |s: usize| {
                let rx = &self.rx[s];
                if rx.received == 0 {
                    0
                } else {
                    u64::from(rx.highest - h.lowest[s]) + 1
                }
            };
            for (s, (tx, rx)) in self.tx.iter().zip(&self.rx).enumerate() {
                stats.offered += tx.offered;
                stats.received += rx.received;
                stats.lost += expected(s).saturating_sub(rx.received);
                stats.duplicates += rx.duplicates;
                stats.reordered += rx.reordered;
            }
            stats.streams = (0..self.per_unit * self.active)
                .map(|s| StreamCount {
                    offered: expected(s),
                    received: self.rx[s].received,
                })
                .collect();
            return stats;
        }
        for (tx, rx) in self.tx.iter().zip(&self.rx) {
            stats.offered += tx.offered;
            stats.received += rx.received;
            stats.lost += tx.offered.saturating_sub(rx.received);
            stats.duplicates += rx.duplicates;
            stats.reordered += rx.reordered;
        }
        stats.streams = self.tx[..self.per_unit * self.active]
            .iter()
            .zip(&self.rx)
            .map(|(tx, rx)| StreamCount {
                offered: tx.offered,
                received: rx.received,
            })
            .collect();
        stats
    }
}

/// The extended form of RTP sequence number `seq`, the stream's highest so
/// far being `last` (0: none yet): the nearest value with those low 16 bits.
fn extend_seq(last: u32, seq: u16) -> u32 {
    if last == 0 {
        return EXT_BASE + u32::from(seq);
    }
    let delta = i32::from(seq.wrapping_sub(last as u16) as i16);
    last.saturating_add_signed(delta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_extension_follows_wraps() {
        let first = extend_seq(0, 65_534);
        assert_eq!(first, EXT_BASE + 65_534);
        let wrapped = extend_seq(first, 1);
        assert_eq!(wrapped, first + 3);
        // A late packet from before the wrap.
        assert_eq!(extend_seq(wrapped, 65_535), first + 1);
    }

    /// Header accounting: side A's packets reach side B's socket straight
    /// (no relay), accounted by source address; no latency is recorded.
    #[test]
    fn loopback_accounted_by_header() {
        let mut generator = Generator::with_units(1, 3, 3).unwrap();
        let addr = |g: &Generator, m: usize| {
            let SocketAddr::V4(a) = g.peer_addr(0, m) else {
                unreachable!()
            };
            a
        };
        // A conference of 3 "members": member m sends to member m+1's
        // socket, so member m+1 receives from member m's address.
        for m in 0..3 {
            let next = addr(&generator, (m + 1) % 3);
            let own = addr(&generator, m);
            generator.set_stream(m, next, Codec::Pcma);
            generator.set_output_source((m + 1) % 3, own);
        }
        assert!(generator.accounts_by_header());
        let stats = generator.run(
            Timing {
                warmup: Duration::from_millis(100),
                window: Duration::from_millis(400),
                drain: Duration::from_millis(100),
                tick: Duration::from_millis(1),
            },
            0,
            &mut |_| {},
        );
        // 3 streams at 50/s for 0.4 s, counted by receive time.
        assert!((54..=66).contains(&stats.offered), "{stats:?}");
        assert!((54..=66).contains(&stats.received), "{stats:?}");
        assert_eq!(stats.lost, 0, "{stats:?}");
        assert_eq!(stats.duplicates, 0);
        assert_eq!(stats.foreign, 0);
        assert_eq!(stats.latency.count(), 0);
        assert_eq!(stats.streams.len(), 3);
    }

    #[test]
    fn sequence_tracking() {
        let mut rx = RxStream::default();
        let cases = [
            (10, (true, false)),
            (11, (true, false)),
            (13, (true, false)),
            (12, (true, true)),   // late but new
            (12, (false, false)), // duplicate
            (200, (true, false)),
            (100, (true, true)), // too old to check: counted late
        ];
        for (seq, want) in cases {
            assert_eq!(rx.accept(seq), want, "seq {seq}");
        }
    }

    /// Two generator sockets looped back to each other without a relay:
    /// every probe arrives, with a small positive latency.
    #[test]
    fn loopback_without_relay() {
        let mut generator = Generator::new(2, 4).unwrap();
        for call in 0..2 {
            let SocketAddr::V4(a) = generator.peer_addr(call, 1) else {
                unreachable!()
            };
            let SocketAddr::V4(b) = generator.peer_addr(call, 0) else {
                unreachable!()
            };
            // Side A sends straight to side B's socket and vice versa.
            generator.set_relay(call, a, b);
        }
        let mut phases = Vec::new();
        let stats = generator.run(
            Timing {
                warmup: Duration::from_millis(100),
                window: Duration::from_millis(400),
                drain: Duration::from_millis(100),
                tick: Duration::from_millis(1),
            },
            0,
            &mut |p| phases.push(p),
        );
        assert_eq!(phases, [Phase::WindowStart, Phase::WindowEnd]);
        // 4 streams at 50/s for 0.4 s.
        assert!((76..=84).contains(&stats.offered), "{stats:?}");
        assert_eq!(stats.received, stats.offered);
        assert_eq!(stats.lost, 0);
        assert_eq!(stats.duplicates, 0);
        let p50 = stats.latency.quantile(0.5);
        assert!(p50 > 0 && p50 < 100_000_000, "p50 {p50} ns");
        assert_eq!(stats.streams.len(), 4);
        assert_eq!(stats.starved_streams(5.0), 0);
    }

    /// Only the first `active` calls send; the same generator runs again
    /// with all of them.
    #[test]
    fn active_calls_only() {
        let mut generator = Generator::new(3, 6).unwrap();
        for call in 0..3 {
            let SocketAddr::V4(a) = generator.peer_addr(call, 1) else {
                unreachable!()
            };
            let SocketAddr::V4(b) = generator.peer_addr(call, 0) else {
                unreachable!()
            };
            generator.set_relay(call, a, b);
        }
        let timing = Timing {
            warmup: Duration::ZERO,
            window: Duration::from_millis(200),
            drain: Duration::from_millis(50),
            tick: Duration::from_millis(1),
        };
        let one = generator.run(timing, 1, &mut |_| {});
        assert_eq!(one.streams.len(), 2);
        // 2 streams at 50/s for 0.2 s.
        assert!((18..=22).contains(&one.offered), "{one:?}");
        assert_eq!(one.received, one.offered);
        let all = generator.run(timing, 3, &mut |_| {});
        assert_eq!(all.streams.len(), 6);
        assert!((56..=64).contains(&all.offered), "{all:?}");
        assert_eq!(all.starved_streams(5.0), 0);
    }

    #[test]
    fn starvation_rule() {
        let count = |offered, received| StreamCount { offered, received };
        let mut stats = RunStats {
            streams: vec![count(100, 100); 100],
            offered: 10_000,
            ..RunStats::default()
        };
        stats.streams[0] = count(100, 97); // 3 %: under the 5 % floor
        stats.lost = 3;
        assert_eq!(stats.starved_streams(5.0), 0);
        stats.streams[1] = count(100, 0); // nothing received
        stats.lost = 103;
        assert_eq!(stats.starved_streams(5.0), 1);
        // Average 1.63 %: 3 % is fine, 60 % is starved.
        stats.streams[2] = count(100, 40);
        stats.lost = 163;
        assert_eq!(stats.starved_streams(5.0), 2);
        assert_eq!(stats.worst_stream_loss_percent(), 100.0);
        stats.streams[3] = count(0, 0); // idle: never starved
        assert_eq!(stats.starved_streams(5.0), 2);
        // Average 30 %: 5 × is over 100 %, the cap (65 %) still applies.
        stats.streams = vec![count(100, 70); 100];
        stats.streams[0] = count(100, 2);
        stats.lost = 30 * 99 + 98;
        assert_eq!(stats.starved_streams(5.0), 1);
    }
}
