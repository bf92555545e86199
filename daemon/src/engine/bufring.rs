//! The io_uring provided-buffer ring (IORING_REGISTER_PBUF_RING, Linux
//! 5.19): a page-aligned ring of buffer descriptors shared with the kernel
//! plus the buffer memory they point at. Multishot receives pick a buffer
//! from it per datagram; the shard hands each buffer back right after the
//! packet is processed.
#![allow(
    unsafe_code,
    reason = "memory shared with the kernel; see SAFETY notes"
)]

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::io;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::Submitter;
use io_uring::types::BufRingEntry;

/// A registered provided-buffer ring and its buffers.
#[derive(Debug)]
pub(crate) struct BufRing {
    ring: *mut BufRingEntry,
    layout: Layout,
    entries: u16,
    tail: u16,
    buffers: Box<[u8]>,
    buf_size: usize,
    group: u16,
    unpublished: u16,
}

/// Recycled buffers are published to the kernel at least this often within
/// one completion drain, so a long drain never starves the multishot
/// receives of buffers (which would end them with ENOBUFS).
const PUBLISH_BATCH: u16 = 64;

impl BufRing {
    /// Allocates `entries` (a power of two, at most 32768) buffers of
    /// `buf_size` bytes each, all initially available to the kernel.
    pub(crate) fn new(entries: u16, buf_size: usize, group: u16) -> io::Result<Self> {
        if !entries.is_power_of_two() || entries > 32_768 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "buffer ring size must be a power of two up to 32768",
            ));
        }
        let layout =
            Layout::from_size_align(usize::from(entries) * size_of::<BufRingEntry>(), 4096)
                .map_err(io::Error::other)?;
        // SAFETY: the layout has a non-zero size (entries >= 1) and a valid
        // power-of-two alignment.
        let ring = unsafe { alloc_zeroed(layout) }.cast::<BufRingEntry>();
        if ring.is_null() {
            return Err(io::Error::new(io::ErrorKind::OutOfMemory, "buffer ring"));
        }
        let mut this = Self {
            ring,
            layout,
            entries,
            tail: 0,
            buffers: vec![0u8; usize::from(entries) * buf_size].into_boxed_slice(),
            buf_size,
            group,
            unpublished: 0,
        };
        for bid in 0..entries {
            this.push(bid);
        }
        this.publish();
        Ok(this)
    }

    /// Registers the ring with the kernel under its buffer group id.
    pub(crate) fn register(&self, submitter: &Submitter<'_>) -> io::Result<()> {
        // SAFETY: `self.ring` points at `entries` descriptors that stay
        // allocated until `self` is dropped, and `UringIo` drops the io_uring
        // instance (which unregisters the ring) before this struct.
        unsafe {
            submitter.register_buf_ring_with_flags(self.ring as u64, self.entries, self.group, 0)
        }
    }

    /// The buffer group id receives must name.
    pub(crate) fn group(&self) -> u16 {
        self.group
    }

    /// The first `len` bytes of buffer `bid` as filled by the kernel.
    pub(crate) fn buffer(&self, bid: u16, len: usize) -> &[u8] {
        let start = usize::from(bid) * self.buf_size;
        let len = len.min(self.buf_size);
        self.buffers.get(start..start + len).unwrap_or(&[])
    }

    /// Gives buffer `bid` back to the kernel. Recycled buffers become
    /// visible in batches: every `PUBLISH_BATCH` recycles and at `publish`.
    pub(crate) fn recycle(&mut self, bid: u16) {
        if bid < self.entries {
            self.push(bid);
            self.unpublished += 1;
            if self.unpublished >= PUBLISH_BATCH {
                self.publish();
            }
        }
    }

    fn push(&mut self, bid: u16) {
        let index = usize::from(self.tail & (self.entries - 1));
        let addr = self.buffers.as_ptr() as u64 + (usize::from(bid) * self.buf_size) as u64;
        // SAFETY: `index < entries`, so the descriptor lies inside the ring
        // allocation; the kernel only reads descriptors between its head and
        // the published tail, and this one is past the published tail.
        let entry = unsafe { &mut *self.ring.add(index) };
        entry.set_addr(addr);
        entry.set_len(self.buf_size as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Publishes every recycled buffer to the kernel with one release store.
    pub(crate) fn publish(&mut self) {
        // SAFETY: the ring is page aligned and initialised; the tail field
        // overlays the `resv` field of the first descriptor, a naturally
        // aligned u16 that the kernel reads atomically.
        let tail = unsafe { &*BufRingEntry::tail(self.ring).cast::<AtomicU16>() };
        tail.store(self.tail, Ordering::Release);
        self.unpublished = 0;
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: `ring` was allocated with exactly this layout in `new`.
        unsafe { dealloc(self.ring.cast(), self.layout) };
    }
}
