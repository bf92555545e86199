//! io_uring backend: one ring per shard, a multishot `recvmsg` per socket
//! drawing from a provided-buffer ring, sends batched as `sendmsg` entries
//! and submitted together with the wait, so a loop turn costs one
//! `io_uring_enter` however many packets it moves.
#![allow(
    unsafe_code,
    reason = "submission entries point at memory the kernel uses; see SAFETY notes"
)]

use std::io;
use std::net::UdpSocket;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use io_uring::types::{Fd, Fixed, RecvMsgOut, SubmitArgs, Timespec};
use io_uring::{IoUring, cqueue, opcode, squeue};

use super::bufring::BufRing;
use super::sys::decode_sockaddr;
use super::tx::{TxQueue, zero_msghdr};
use super::{Closer, PacketHandler, PollStats, SockId, SocketTable, WARM_BATCH};

const KIND_RECV: u64 = 1 << 56;
const KIND_SEND: u64 = 2 << 56;
const KIND_WAKE: u64 = 3 << 56;
const KIND_CANCEL: u64 = 4 << 56;
const KIND_MASK: u64 = 0xff << 56;

/// Completions handled between two checks of the transmit queue.
const CQ_CHUNK: usize = 512;
/// Queued sends that make a turn submit them before handling more
/// completions.
const FLUSH_AT: usize = 1024;

/// Buffer group id of the receive buffer ring.
const BUFFER_GROUP: u16 = 7;
/// Bytes per receive buffer: the recvmsg header, a sockaddr_in6 and a
/// datagram up to about 2000 bytes (RTP stays below the 1500-byte MTU).
const RECV_BUF_SIZE: usize = 2048;

/// The io_uring backend of one shard.
pub(crate) struct UringIo {
    // Field order matters: the ring is dropped (and its buffer ring
    // unregistered) before the memory the kernel was given.
    ring: IoUring,
    /// Sends use IORING_OP_SEND with a destination address (else SENDMSG).
    send_with_address: bool,
    bufs: BufRing,
    recv_hdr: Box<libc::msghdr>,
    wake_fd: RawFd,
    wake_buf: Box<[u8; 8]>,
    wake_armed: bool,
    sockets: SocketTable,
    /// Sockets whose multishot receive ended and must be armed again.
    rearm: Vec<SockId>,
    /// Second buffer for `rearm`, so re-arming (frequent under buffer
    /// pressure) reuses allocations instead of making new ones each turn.
    rearm_spare: Vec<SockId>,
    /// Sockets to close once the submission queue holding their last
    /// entries has been submitted.
    closer: Closer,
    /// Cancels that found the submission queue full, retried next turn.
    pending_cancel: Vec<SockId>,
    /// Sockets removed while no receive was armed: taken out of the table
    /// (and closed) at the end of the next turn, once every entry naming
    /// them has been submitted.
    retire_now: Vec<SockId>,
    /// Size of the registered-file table (0: none). Sockets whose id is
    /// below it are registered, and sends name them by index, which saves
    /// the kernel a descriptor lookup and reference count per datagram.
    fixed_files: u32,
}

/// Registered-file table sizes tried at start, largest first (the kernel
/// caps it at RLIMIT_NOFILE).
const FIXED_FILE_SIZES: [u32; 4] = [65_536, 16_384, 4_096, 1_024];

impl std::fmt::Debug for UringIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UringIo")
            .field("sockets", &self.sockets)
            .field("rearm", &self.rearm.len())
            .finish_non_exhaustive()
    }
}

impl UringIo {
    /// Creates the ring; fails if io_uring or provided-buffer rings (Linux
    /// 5.19+) are unavailable, so the caller can fall back to epoll.
    pub(crate) fn new(wake_fd: RawFd, ring_entries: u32, recv_buffers: u16) -> io::Result<Self> {
        let cq = ring_entries.saturating_mul(4).max(ring_entries);
        // Only this thread submits, and completions are only needed when it
        // asks for them: DEFER_TASKRUN (Linux 6.1) runs the kernel's task
        // work in our io_uring_enter instead of interrupting the thread.
        // Older kernels get the plainer setups.
        let modern = IoUring::builder()
            .setup_cqsize(cq)
            .setup_single_issuer()
            .setup_defer_taskrun()
            .build(ring_entries);
        // A kernel with DEFER_TASKRUN (6.1) also has IORING_OP_SEND with a
        // destination address (6.0), cheaper than SENDMSG: no msghdr to
        // copy and parse per datagram.
        let send_with_address = modern.is_ok();
        let ring = modern
            .or_else(|_| {
                IoUring::builder()
                    .setup_cqsize(cq)
                    .setup_coop_taskrun()
                    .setup_single_issuer()
                    .build(ring_entries)
            })
            .or_else(|_| IoUring::builder().setup_cqsize(cq).build(ring_entries))?;
        let bufs = BufRing::new(recv_buffers, RECV_BUF_SIZE, BUFFER_GROUP)?;
        bufs.register(&ring.submitter())?;
        let mut recv_hdr = Box::new(zero_msghdr());
        recv_hdr.msg_namelen = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
        let mut this = Self {
            ring,
            send_with_address,
            bufs,
            recv_hdr,
            wake_fd,
            wake_buf: Box::new([0; 8]),
            wake_armed: false,
            sockets: SocketTable::default(),
            rearm: Vec::new(),
            rearm_spare: Vec::new(),
            closer: Closer::default(),
            pending_cancel: Vec::new(),
            retire_now: Vec::new(),
            fixed_files: 0,
        };
        for size in FIXED_FILE_SIZES {
            if this.ring.submitter().register_files_sparse(size).is_ok() {
                this.fixed_files = size;
                break;
            }
        }
        tracing::debug!(
            fixed_files = this.fixed_files,
            send_with_address,
            "io_uring ring ready"
        );
        this.arm_wake()?;
        this.ring.submit()?;
        Ok(this)
    }

    pub(crate) fn add_socket(&mut self, socket: UdpSocket, token: u64) -> io::Result<SockId> {
        socket.set_nonblocking(true)?;
        let fd = socket.as_raw_fd();
        let id = self.sockets.insert(socket, token);
        if id.0 < self.fixed_files
            && self
                .ring
                .submitter()
                .register_files_update(id.0, &[fd])
                .is_ok()
            && let Some(entry) = self.sockets.get_mut(id)
        {
            entry.fixed = true;
        }
        self.rearm.push(id);
        Ok(id)
    }

    /// Takes a socket out of the table, unregistering its file, and
    /// defers its close to the end of this turn.
    fn retire(&mut self, id: SockId, tag: u64) {
        let fixed = self.sockets.get_mut(id).is_some_and(|e| e.fixed);
        if fixed {
            let _ = self.ring.submitter().register_files_update(id.0, &[-1]);
        }
        if let Some(socket) = self.sockets.remove(id) {
            self.closer.defer(socket, tag);
        }
    }

    pub(crate) fn closer(&mut self) -> &mut Closer {
        &mut self.closer
    }

    pub(crate) fn remove_socket(&mut self, id: SockId, tag: u64) {
        let Some(entry) = self.sockets.get_mut(id) else {
            return;
        };
        if entry.retiring {
            return;
        }
        entry.retiring = true;
        entry.close_tag = tag;
        if entry.armed {
            // The socket closes when the receive's final completion arrives.
            let cancel = opcode::AsyncCancel::new(KIND_RECV | u64::from(id.0))
                .build()
                .user_data(KIND_CANCEL | u64::from(id.0));
            if !self.push_sqe(&cancel) {
                self.pending_cancel.push(id);
            }
        } else {
            self.retire_now.push(id);
        }
    }

    pub(crate) fn poll<H: PacketHandler>(
        &mut self,
        tx: &mut TxQueue,
        timeout: Duration,
        handler: &mut H,
    ) -> io::Result<PollStats> {
        let mut stats = PollStats::default();
        self.submit_sends(tx);
        self.arm_pending()?;
        let ts = Timespec::new()
            .sec(timeout.as_secs())
            .nsec(timeout.subsec_nanos());
        let args = SubmitArgs::new().timespec(&ts);
        match self.ring.submitter().submit_with_args(1, &args) {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN)
                ) => {}
            Err(e) => return Err(e),
        }
        let mut retired: Vec<(SockId, u64)> = Vec::new();
        let mut batch = RecvBatch::default();
        // In chunks: between two, sends queued past FLUSH_AT go out at once
        // instead of after the whole turn, and their slots come back sooner.
        loop {
            let mut seen = 0;
            let mut cq = self.ring.completion();
            cq.sync();
            for cqe in &mut cq {
                seen += 1;
                let data = cqe.user_data();
                let index = (data & 0xffff_ffff) as u32;
                match data & KIND_MASK {
                    KIND_RECV => {
                        let id = SockId(index);
                        let flags = cqe.flags();
                        let result = cqe.result();
                        if let Some(bid) = cqueue::buffer_select(flags) {
                            let token = self
                                .sockets
                                .get_mut(id)
                                .filter(|e| !e.retiring)
                                .map(|e| e.token);
                            match token {
                                Some(token) if result > 0 => {
                                    batch.push(token, bid, result as u32);
                                    if batch.is_full() {
                                        batch.dispatch(
                                            &mut self.bufs,
                                            &self.recv_hdr,
                                            tx,
                                            handler,
                                            &mut stats,
                                        );
                                    }
                                }
                                _ => self.bufs.recycle(bid),
                            }
                        }
                        if result < 0 && result != -libc::ENOBUFS && result != -libc::ECANCELED {
                            stats.recv_errors += 1;
                        }
                        if result == -libc::ENOBUFS {
                            stats.buffer_exhausted += 1;
                        }
                        // A final completion: the socket's buffers already
                        // taken stay valid until recycled in `dispatch`.
                        if !cqueue::more(flags)
                            && let Some(entry) = self.sockets.get_mut(id)
                        {
                            entry.armed = false;
                            if entry.retiring {
                                let tag = entry.close_tag;
                                retired.push((id, tag));
                            } else {
                                self.rearm.push(id);
                            }
                        }
                    }
                    KIND_SEND => {
                        tx.release(index);
                        if cqe.result() < 0 {
                            stats.send_errors += 1;
                        } else {
                            stats.sent += 1;
                        }
                    }
                    KIND_WAKE => self.wake_armed = false,
                    _ => {}
                }
                if seen == CQ_CHUNK {
                    break;
                }
            }
            drop(cq);
            batch.dispatch(&mut self.bufs, &self.recv_hdr, tx, handler, &mut stats);
            if seen < CQ_CHUNK {
                break;
            }
            if tx.ready_len() >= FLUSH_AT {
                self.submit_sends(tx);
                // Sends are issued inline. If the kernel refuses (busy),
                // the entries stay in the ring for the next turn's submit;
                // they name only legs still running, whose sockets stay open.
                let _ = self.ring.submit();
            }
        }
        // Every entry pushed before this turn's wait has been submitted, and
        // terminated legs queue no more sends: deferred sockets can close.
        for (id, tag) in retired {
            self.retire(id, tag);
        }
        for id in std::mem::take(&mut self.retire_now) {
            let tag = self.sockets.get_mut(id).map_or(0, |e| e.close_tag);
            self.retire(id, tag);
        }
        self.closer.close_all();
        self.bufs.publish();
        if !self.wake_armed {
            self.arm_wake()?;
        }
        Ok(stats)
    }

    fn submit_sends(&mut self, tx: &mut TxQueue) {
        if !tx.has_ready() {
            return;
        }
        let ready = tx.take_ready();
        for &index in &ready {
            let slot = tx.slot_mut(index);
            let fd = slot.fd;
            let fixed = self
                .sockets
                .get_mut(SockId(slot.sock))
                .is_some_and(|e| e.fixed);
            let sqe = match (self.send_with_address, fixed) {
                (true, true) => {
                    let (data, len, addr, addr_len) = slot.raw_parts();
                    opcode::Send::new(Fixed(slot.sock), data, len)
                        .dest_addr(addr)
                        .dest_addr_len(addr_len)
                        .build()
                }
                (true, false) => {
                    let (data, len, addr, addr_len) = slot.raw_parts();
                    opcode::Send::new(Fd(fd), data, len)
                        .dest_addr(addr)
                        .dest_addr_len(addr_len)
                        .build()
                }
                (false, true) => opcode::SendMsg::new(Fixed(slot.sock), slot.prepare()).build(),
                (false, false) => opcode::SendMsg::new(Fd(fd), slot.prepare()).build(),
            }
            .user_data(KIND_SEND | u64::from(index));
            if !self.push_sqe(&sqe) {
                tx.release(index);
                tx.dropped_full += 1;
            }
        }
        tx.restore_ready(ready);
    }

    fn arm_pending(&mut self) -> io::Result<()> {
        for id in std::mem::take(&mut self.pending_cancel) {
            let cancel = opcode::AsyncCancel::new(KIND_RECV | u64::from(id.0))
                .build()
                .user_data(KIND_CANCEL | u64::from(id.0));
            if !self.push_sqe(&cancel) {
                self.pending_cancel.push(id);
            }
        }
        // First come, first served: sockets re-armed in the order their
        // receives ended, so under buffer pressure (ENOBUFS) every socket
        // takes its turn at the buffers and none is starved.
        let mut batch = std::mem::replace(&mut self.rearm, std::mem::take(&mut self.rearm_spare));
        for id in batch.drain(..) {
            let Some(entry) = self.sockets.get_mut(id) else {
                continue;
            };
            if entry.armed || entry.retiring {
                continue;
            }
            let Some(fd) = entry.socket.as_ref().map(AsRawFd::as_raw_fd) else {
                continue;
            };
            let sqe =
                opcode::RecvMsgMulti::new(Fd(fd), &raw const *self.recv_hdr, self.bufs.group())
                    .build()
                    .user_data(KIND_RECV | u64::from(id.0));
            if self.push_sqe(&sqe) {
                if let Some(entry) = self.sockets.get_mut(id) {
                    entry.armed = true;
                }
            } else {
                self.rearm.push(id);
            }
        }
        self.rearm_spare = batch;
        Ok(())
    }

    fn arm_wake(&mut self) -> io::Result<()> {
        let sqe = opcode::Read::new(Fd(self.wake_fd), self.wake_buf.as_mut_ptr(), 8)
            .build()
            .user_data(KIND_WAKE);
        self.wake_armed = self.push_sqe(&sqe);
        Ok(())
    }

    /// Pushes one entry, submitting the queue once if it is full. Returns
    /// false when the kernel did not make room (the caller retries later).
    fn push_sqe(&mut self, sqe: &squeue::Entry) -> bool {
        for _ in 0..2 {
            // SAFETY: every entry built here points at memory that outlives
            // its completion: `recv_hdr`, `wake_buf` and the buffer ring live
            // as long as the ring, transmit slots are released only on their
            // completion, and sockets are closed only after their last entry
            // completed (receives) or was submitted (sends, which hold their
            // own file reference once submitted).
            let pushed = unsafe { self.ring.submission().push(sqe) };
            if pushed.is_ok() {
                return true;
            }
            if self.ring.submit().is_err() {
                break;
            }
        }
        false
    }
}

/// Received datagrams waiting to be handed over together.
struct RecvBatch {
    tokens: [u64; WARM_BATCH],
    bids: [u16; WARM_BATCH],
    lens: [u32; WARM_BATCH],
    len: usize,
}

impl Default for RecvBatch {
    fn default() -> Self {
        Self {
            tokens: [0; WARM_BATCH],
            bids: [0; WARM_BATCH],
            lens: [0; WARM_BATCH],
            len: 0,
        }
    }
}

impl RecvBatch {
    fn push(&mut self, token: u64, bid: u16, len: u32) {
        self.tokens[self.len] = token;
        self.bids[self.len] = bid;
        self.lens[self.len] = len;
        self.len += 1;
    }

    fn is_full(&self) -> bool {
        self.len == WARM_BATCH
    }

    /// Hands the batch to the handler (warming the state its packets
    /// touch first) and gives the buffers back to the ring.
    fn dispatch<H: PacketHandler>(
        &mut self,
        bufs: &mut BufRing,
        recv_hdr: &libc::msghdr,
        tx: &mut TxQueue,
        handler: &mut H,
        stats: &mut PollStats,
    ) {
        let n = self.len;
        if n == 0 {
            return;
        }
        handler.warm(&self.tokens[..n]);
        for i in 0..n {
            let bid = self.bids[i];
            let buf = bufs.buffer(bid, self.lens[i] as usize);
            if let Ok(msg) = RecvMsgOut::parse(buf, recv_hdr) {
                if msg.is_payload_truncated() {
                    stats.truncated += 1;
                    handler.oversize(self.tokens[i]);
                } else if let Some(src) = decode_sockaddr(msg.name_data()) {
                    stats.received += 1;
                    handler.packet(self.tokens[i], src, msg.payload_data(), tx);
                }
            }
            bufs.recycle(bid);
        }
        self.len = 0;
    }
}

/// Whether this kernel and sandbox allow io_uring with provided-buffer rings.
pub(crate) fn probe() -> io::Result<()> {
    let efd = super::sys::EventFd::new()?;
    UringIo::new(efd.raw(), 8, 8).map(drop)
}
