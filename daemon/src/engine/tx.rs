//! The shard's transmit queue: a fixed pool of datagram slots filled by the
//! packet path and drained by the I/O backend once per loop turn, so sends
//! are batched per wake-up and nothing allocates per packet.

use std::net::SocketAddr;
use std::os::fd::RawFd;

use super::SockId;

/// Largest datagram legato sends (an Ethernet-MTU RTP packet).
pub(crate) const MAX_DATAGRAM: usize = 1500;

/// One outgoing datagram. The kernel reads `hdr`, which points at `iov`,
/// `v4`/`v6` and `buf` of the same slot, so slots never move once the pool
/// is allocated.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct TxSlot {
    pub(crate) hdr: libc::msghdr,
    pub(crate) iov: libc::iovec,
    pub(crate) v4: libc::sockaddr_in,
    pub(crate) v6: libc::sockaddr_in6,
    pub(crate) is_v6: bool,
    pub(crate) fd: RawFd,
    /// The sending socket's id in its backend (for registered files).
    pub(crate) sock: u32,
    pub(crate) len: usize,
    pub(crate) buf: [u8; MAX_DATAGRAM],
}

impl TxSlot {
    fn empty() -> Self {
        Self {
            hdr: zero_msghdr(),
            iov: libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            },
            v4: libc::sockaddr_in {
                sin_family: 0,
                sin_port: 0,
                sin_addr: libc::in_addr { s_addr: 0 },
                sin_zero: [0; 8],
            },
            v6: libc::sockaddr_in6 {
                sin6_family: 0,
                sin6_port: 0,
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr { s6_addr: [0; 16] },
                sin6_scope_id: 0,
            },
            is_v6: false,
            fd: -1,
            sock: u32::MAX,
            len: 0,
            buf: [0; MAX_DATAGRAM],
        }
    }

    fn set_destination(&mut self, dst: SocketAddr) {
        match dst {
            SocketAddr::V4(a) => {
                self.is_v6 = false;
                self.v4.sin_family = libc::AF_INET as libc::sa_family_t;
                self.v4.sin_port = a.port().to_be();
                self.v4.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
            }
            SocketAddr::V6(a) => {
                self.is_v6 = true;
                self.v6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                self.v6.sin6_port = a.port().to_be();
                self.v6.sin6_flowinfo = a.flowinfo();
                self.v6.sin6_addr.s6_addr = a.ip().octets();
                self.v6.sin6_scope_id = a.scope_id();
            }
        }
    }

    /// Payload pointer and length, destination address pointer and length,
    /// for a send entry that takes them directly.
    pub(crate) fn raw_parts(&self) -> (*const u8, u32, *const libc::sockaddr, libc::socklen_t) {
        let (addr, addr_len) = if self.is_v6 {
            (
                (&raw const self.v6).cast::<libc::sockaddr>(),
                size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            )
        } else {
            (
                (&raw const self.v4).cast::<libc::sockaddr>(),
                size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        (self.buf.as_ptr(), self.len as u32, addr, addr_len)
    }

    /// Points `hdr` at this slot's own address, iovec and payload. Called
    /// right before the slot is handed to the kernel.
    pub(crate) fn prepare(&mut self) -> *const libc::msghdr {
        self.iov.iov_base = self.buf.as_mut_ptr().cast();
        self.iov.iov_len = self.len;
        self.hdr = zero_msghdr();
        if self.is_v6 {
            self.hdr.msg_name = (&raw mut self.v6).cast();
            self.hdr.msg_namelen = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
        } else {
            self.hdr.msg_name = (&raw mut self.v4).cast();
            self.hdr.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
        }
        self.hdr.msg_iov = &raw mut self.iov;
        self.hdr.msg_iovlen = 1;
        &raw const self.hdr
    }
}

/// A zeroed `msghdr` (all pointers null, all lengths zero).
pub(crate) fn zero_msghdr() -> libc::msghdr {
    libc::msghdr {
        msg_name: std::ptr::null_mut(),
        msg_namelen: 0,
        msg_iov: std::ptr::null_mut(),
        msg_iovlen: 0,
        msg_control: std::ptr::null_mut(),
        msg_controllen: 0,
        msg_flags: 0,
    }
}

/// Pool of transmit slots with a free list and the list of slots filled in
/// this loop turn.
#[derive(Debug)]
pub(crate) struct TxQueue {
    slots: Box<[TxSlot]>,
    free: Vec<u32>,
    ready: Vec<u32>,
    /// Datagrams dropped because every slot was in use (overload).
    pub(crate) dropped_full: u64,
}

impl TxQueue {
    /// Allocates `capacity` slots up front.
    pub(crate) fn new(capacity: usize) -> Self {
        let capacity = capacity.clamp(1, u32::MAX as usize);
        let slots: Box<[TxSlot]> = (0..capacity).map(|_| TxSlot::empty()).collect();
        Self {
            slots,
            free: (0..capacity as u32).rev().collect(),
            ready: Vec::with_capacity(capacity),
            dropped_full: 0,
        }
    }

    /// Queues a datagram of `len` bytes for socket `sock` (descriptor `fd`)
    /// to `dst`; `fill` writes the
    /// bytes into the slot. Returns false (and counts a drop) when no slot
    /// is free or the datagram is too large.
    pub(crate) fn push(
        &mut self,
        fd: RawFd,
        sock: SockId,
        dst: SocketAddr,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> bool {
        if len > MAX_DATAGRAM {
            return false;
        }
        let Some(index) = self.free.pop() else {
            self.dropped_full += 1;
            return false;
        };
        let slot = &mut self.slots[index as usize];
        slot.fd = fd;
        slot.sock = sock.0;
        slot.len = len;
        slot.set_destination(dst);
        fill(&mut slot.buf[..len]);
        self.ready.push(index);
        true
    }

    /// Datagrams waiting to be handed to the kernel.
    pub(crate) fn ready_len(&self) -> usize {
        self.ready.len()
    }

    /// Whether datagrams wait to be handed to the kernel.
    pub(crate) fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Moves the ready list out (keeping its allocation) for the backend to
    /// submit; give it back with [`TxQueue::restore_ready`].
    pub(crate) fn take_ready(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.ready)
    }

    /// Returns the (drained) ready list so its capacity is reused.
    pub(crate) fn restore_ready(&mut self, mut list: Vec<u32>) {
        list.clear();
        if self.ready.is_empty() {
            self.ready = list;
        }
    }

    /// The slot at `index`.
    pub(crate) fn slot_mut(&mut self, index: u32) -> &mut TxSlot {
        &mut self.slots[index as usize]
    }

    /// Returns a slot to the free list once the kernel is done with it.
    pub(crate) fn release(&mut self, index: u32) {
        self.free.push(index);
    }
}

/// The handle packets to a leg's remote party go out through: its RTP
/// socket, as the backend knows it. Read on every relayed packet.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SendTo {
    pub(crate) fd: RawFd,
    pub(crate) id: SockId,
}

impl From<SendTo> for u64 {
    /// Folded into the warm-up's meaningless value.
    fn from(s: SendTo) -> Self {
        s.fd as Self ^ Self::from(s.id.0)
    }
}

/// The relay path sends through the queue: a leg's handle is its RTP
/// socket.
impl crate::session::Transmit for TxQueue {
    type Handle = SendTo;

    fn push(
        &mut self,
        handle: Self::Handle,
        to: SocketAddr,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> bool {
        Self::push(self, handle.fd, handle.id, to, len, fill)
    }
}
