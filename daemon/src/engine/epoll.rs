//! epoll backend, for kernels or sandboxes without io_uring: level-triggered
//! readiness, `recvmmsg` in batches, sends flushed with `sendmmsg` once per
//! loop turn (one call per run of datagrams leaving the same socket).
#![allow(
    unsafe_code,
    reason = "raw epoll/recvmmsg/sendmmsg syscalls; see SAFETY notes"
)]

use std::io;
use std::net::UdpSocket;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use std::sync::Arc;

use super::sys::{EventFd, decode_sockaddr};
use super::tx::{TxQueue, zero_msghdr};
use super::{Closer, PacketHandler, PollStats, SockId, SocketTable, WARM_BATCH};

/// Datagrams read per `recvmmsg` call.
const RECV_BATCH: usize = 32;
/// `recvmmsg` calls per ready socket per loop turn: bounds the work one busy
/// socket can do before others (and timers, commands) get their turn.
const RECV_ROUNDS: usize = 4;
/// Queued sends that make a turn flush before receiving from more sockets.
const FLUSH_AT: usize = 1024;
/// Bytes per receive buffer.
const RECV_BUF_SIZE: usize = 2048;
/// epoll data value of the wake eventfd (socket ids are below 2^32).
const WAKE_DATA: u64 = u64::MAX;

/// Receive buffers and headers for one `recvmmsg` batch.
struct RecvBatch {
    bufs: Box<[[u8; RECV_BUF_SIZE]]>,
    names: Box<[libc::sockaddr_in6]>,
    iovs: Box<[libc::iovec]>,
    hdrs: Box<[libc::mmsghdr]>,
}

impl RecvBatch {
    /// Points every header at its name, iovec and buffer. The boxed slices
    /// never move, so this is done once; each receive then only resets the
    /// lengths the kernel overwrote.
    fn link(&mut self) {
        for k in 0..RECV_BATCH {
            self.iovs[k] = libc::iovec {
                iov_base: self.bufs[k].as_mut_ptr().cast(),
                iov_len: RECV_BUF_SIZE,
            };
            let hdr = &mut self.hdrs[k];
            hdr.msg_hdr = zero_msghdr();
            hdr.msg_hdr.msg_name = (&raw mut self.names[k]).cast();
            hdr.msg_hdr.msg_namelen = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            hdr.msg_hdr.msg_iov = &raw mut self.iovs[k];
            hdr.msg_hdr.msg_iovlen = 1;
            hdr.msg_len = 0;
        }
    }

    /// Resets the fields the kernel wrote for the first `used` headers.
    fn reset(&mut self, used: usize) {
        for hdr in &mut self.hdrs[..used] {
            hdr.msg_hdr.msg_namelen = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            hdr.msg_hdr.msg_flags = 0;
            hdr.msg_len = 0;
        }
    }
}

impl std::fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvBatch").finish_non_exhaustive()
    }
}

/// The epoll backend of one shard.
#[derive(Debug)]
pub(crate) struct EpollIo {
    epoll: OwnedFd,
    wake: Arc<EventFd>,
    sockets: SocketTable,
    events: Vec<libc::epoll_event>,
    rx: RecvBatch,
    tx_hdrs: Vec<libc::mmsghdr>,
    closer: Closer,
}

impl EpollIo {
    pub(crate) fn new(wake: Arc<EventFd>) -> io::Result<Self> {
        // SAFETY: epoll_create1 takes no pointers; the result is checked.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor owned by nothing else.
        let epoll = unsafe { OwnedFd::from_raw_fd(fd) };
        let empty_name = libc::sockaddr_in6 {
            sin6_family: 0,
            sin6_port: 0,
            sin6_flowinfo: 0,
            sin6_addr: libc::in6_addr { s6_addr: [0; 16] },
            sin6_scope_id: 0,
        };
        let rx = RecvBatch {
            bufs: vec![[0u8; RECV_BUF_SIZE]; RECV_BATCH].into_boxed_slice(),
            names: vec![empty_name; RECV_BATCH].into_boxed_slice(),
            iovs: vec![
                libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0
                };
                RECV_BATCH
            ]
            .into_boxed_slice(),
            hdrs: (0..RECV_BATCH)
                .map(|_| libc::mmsghdr {
                    msg_hdr: zero_msghdr(),
                    msg_len: 0,
                })
                .collect(),
        };
        let wake_fd = wake.raw();
        let mut this = Self {
            epoll,
            wake,
            sockets: SocketTable::default(),
            events: vec![libc::epoll_event { events: 0, u64: 0 }; 256],
            rx,
            tx_hdrs: Vec::with_capacity(1024),
            closer: Closer::default(),
        };
        this.ctl(libc::EPOLL_CTL_ADD, wake_fd, WAKE_DATA)?;
        this.rx.link();
        Ok(this)
    }

    fn ctl(&mut self, op: libc::c_int, fd: RawFd, data: u64) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: data,
        };
        // SAFETY: `event` is a valid epoll_event for the duration of the call.
        let rc = unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &raw mut event) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    pub(crate) fn add_socket(&mut self, socket: UdpSocket, token: u64) -> io::Result<SockId> {
        socket.set_nonblocking(true)?;
        let fd = socket.as_raw_fd();
        let id = self.sockets.insert(socket, token);
        if let Err(e) = self.ctl(libc::EPOLL_CTL_ADD, fd, u64::from(id.0)) {
            self.sockets.remove(id);
            return Err(e);
        }
        Ok(id)
    }

    pub(crate) fn closer(&mut self) -> &mut Closer {
        &mut self.closer
    }

    pub(crate) fn remove_socket(&mut self, id: SockId, tag: u64) {
        if let Some(socket) = self.sockets.remove(id) {
            let _ = self.ctl(libc::EPOLL_CTL_DEL, socket.as_raw_fd(), 0);
            // Datagrams already queued for this socket are flushed first.
            self.closer.defer(socket, tag);
        }
    }

    pub(crate) fn poll<H: PacketHandler>(
        &mut self,
        tx: &mut TxQueue,
        timeout: Duration,
        handler: &mut H,
    ) -> io::Result<PollStats> {
        let mut stats = PollStats::default();
        self.flush(tx, &mut stats);
        // Closed sockets free their ports: return at once so the shard can
        // hand them back to the pool instead of after a full wait.
        let timeout = if self.closer.pending.is_empty() {
            timeout
        } else {
            Duration::ZERO
        };
        self.closer.close_all();
        let timeout_ms = i32::try_from(timeout.as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
        // SAFETY: `events` is a valid buffer of `len` epoll_event entries.
        let n = unsafe {
            libc::epoll_wait(
                self.epoll.as_raw_fd(),
                self.events.as_mut_ptr(),
                self.events.len() as i32,
                timeout_ms,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                return Ok(stats);
            }
            return Err(e);
        }
        // In chunks: warm the state of a chunk's sockets' legs, then
        // receive and handle their datagrams.
        let n = n as usize;
        let mut tokens = [0u64; WARM_BATCH];
        for chunk_start in (0..n).step_by(WARM_BATCH) {
            let chunk = chunk_start..n.min(chunk_start + WARM_BATCH);
            let mut warm = 0;
            for i in chunk.clone() {
                let data = self.events[i].u64;
                if data == WAKE_DATA {
                    continue;
                }
                if let Some(entry) = self.sockets.get_mut(SockId(data as u32)) {
                    tokens[warm] = entry.token;
                    warm += 1;
                }
            }
            handler.warm(&tokens[..warm]);
            for i in chunk {
                self.handle_event(i, tx, handler, &mut stats);
            }
            // Under overload one turn can receive more than the transmit
            // queue holds (256 sockets with a full receive buffer each):
            // send what is queued before receiving more, so datagrams are
            // dropped by the kernel on arrival, not after the work of
            // receiving them.
            if tx.ready_len() >= FLUSH_AT {
                self.flush(tx, &mut stats);
            }
        }
        Ok(stats)
    }

    fn handle_event<H: PacketHandler>(
        &mut self,
        i: usize,
        tx: &mut TxQueue,
        handler: &mut H,
        stats: &mut PollStats,
    ) {
        let data = self.events[i].u64;
        if data == WAKE_DATA {
            self.wake.drain();
            return;
        }
        let id = SockId(data as u32);
        let Some(entry) = self.sockets.get_mut(id) else {
            return;
        };
        let token = entry.token;
        let Some(fd) = entry.socket.as_ref().map(AsRawFd::as_raw_fd) else {
            return;
        };
        for _ in 0..RECV_ROUNDS {
            let got = self.recv_batch(fd, stats);
            for k in 0..got {
                let name_len = (self.rx.hdrs[k].msg_hdr.msg_namelen as usize)
                    .min(size_of::<libc::sockaddr_in6>());
                let len = (self.rx.hdrs[k].msg_len as usize).min(RECV_BUF_SIZE);
                if self.rx.hdrs[k].msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                    stats.truncated += 1;
                    handler.oversize(token);
                    continue;
                }
                let name = sockaddr_bytes(&self.rx.names[k]);
                if let Some(src) = decode_sockaddr(&name[..name_len]) {
                    stats.received += 1;
                    handler.packet(token, src, &self.rx.bufs[k][..len], tx);
                }
            }
            self.rx.reset(got);
            if got < RECV_BATCH {
                break;
            }
        }
    }

    fn recv_batch(&mut self, fd: RawFd, stats: &mut PollStats) -> usize {
        // SAFETY: every header points at a name, iovec and buffer of this
        // batch (linked once in `RecvBatch::link`; the boxed slices never
        // move), all alive and not otherwise borrowed during the call.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.rx.hdrs.as_mut_ptr(),
                RECV_BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if !matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EINTR)) {
                stats.recv_errors += 1;
            }
            return 0;
        }
        n as usize
    }

    fn flush(&mut self, tx: &mut TxQueue, stats: &mut PollStats) {
        if !tx.has_ready() {
            return;
        }
        let ready = tx.take_ready();
        let mut start = 0;
        while start < ready.len() {
            let fd = tx.slot_mut(ready[start]).fd;
            let mut end = start;
            self.tx_hdrs.clear();
            while end < ready.len() && tx.slot_mut(ready[end]).fd == fd {
                let hdr = tx.slot_mut(ready[end]).prepare();
                // SAFETY: `prepare` returned a pointer to the slot's own,
                // fully initialised msghdr.
                let msg_hdr = unsafe { *hdr };
                self.tx_hdrs.push(libc::mmsghdr {
                    msg_hdr,
                    msg_len: 0,
                });
                end += 1;
            }
            let mut done = 0;
            while done < self.tx_hdrs.len() {
                // SAFETY: the headers point into transmit slots that stay
                // untouched until they are released below.
                let n = unsafe {
                    libc::sendmmsg(
                        fd,
                        self.tx_hdrs[done..].as_mut_ptr(),
                        (self.tx_hdrs.len() - done) as libc::c_uint,
                        libc::MSG_DONTWAIT,
                    )
                };
                if n <= 0 {
                    // Socket buffer full or a per-datagram error: drop this
                    // datagram and carry on with the rest.
                    stats.send_errors += 1;
                    done += 1;
                } else {
                    stats.sent += n as u64;
                    done += n as usize;
                }
            }
            for &index in &ready[start..end] {
                tx.release(index);
            }
            start = end;
        }
        tx.restore_ready(ready);
    }
}

fn sockaddr_bytes(name: &libc::sockaddr_in6) -> [u8; 28] {
    let mut out = [0u8; 28];
    out[..2].copy_from_slice(&name.sin6_family.to_ne_bytes());
    out[2..4].copy_from_slice(&name.sin6_port.to_ne_bytes());
    if i32::from(name.sin6_family) == libc::AF_INET {
        // A sockaddr_in written into the sockaddr_in6 storage: the IPv4
        // address occupies bytes 4..8, which overlay `sin6_flowinfo`.
        out[4..8].copy_from_slice(&name.sin6_flowinfo.to_ne_bytes());
    } else {
        out[4..8].copy_from_slice(&name.sin6_flowinfo.to_ne_bytes());
        out[8..24].copy_from_slice(&name.sin6_addr.s6_addr);
        out[24..28].copy_from_slice(&name.sin6_scope_id.to_ne_bytes());
    }
    out
}
