//! The media port pool: even/odd port pairs (RTP on the even port, RTCP on
//! the next, RFC 3550 §11) from the configured range. Allocation happens on
//! the control plane under a mutex; shards give ports back through a
//! lock-free queue, so they never wait on the control side.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_queue::ArrayQueue;
use socket2::{Domain, Protocol, Socket, Type};

/// A bound RTP/RTCP socket pair.
#[derive(Debug)]
pub(crate) struct PortPair {
    pub(crate) rtp: UdpSocket,
    pub(crate) rtcp: UdpSocket,
    pub(crate) port: u16,
    /// Gives the pair back to the pool if it is dropped before a shard
    /// took it over (a cancelled request, a refused leg).
    pub(crate) lease: PortLease,
}

/// The right to a port pair of the pool: dropping it gives the pair back,
/// so no path (error, cancelled RPC, command dropped at shutdown) can lose
/// a pair. A shard that keeps the pair's sockets calls [`PortLease::keep`]
/// and later releases the pair itself once the sockets are closed.
#[derive(Debug)]
pub(crate) struct PortLease {
    pool: Option<Arc<PortPool>>,
    port: u16,
}

impl PortLease {
    /// The shard owns the pair from now on.
    pub(crate) fn keep(mut self) {
        self.pool = None;
    }
}

impl Drop for PortLease {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.release(self.port);
        }
    }
}

/// Free even ports of the range, least recently used first. The order
/// starts at a random pair, so a restarted daemon does not hand out the
/// ports of the calls it just lost first: their peers may still be
/// sending there (the latching policy keeps them out too).
#[derive(Debug)]
pub(crate) struct PortPool {
    address: IpAddr,
    free: Mutex<VecDeque<u16>>,
    released: ArrayQueue<u16>,
    /// Kernel receive buffer asked for each socket (`Config::socket_recv_buffer`).
    recv_buffer: usize,
    /// Pairs whose sockets are closing and will be released shortly.
    closing: AtomicUsize,
    total: usize,
}

impl PortPool {
    pub(crate) fn new(address: IpAddr, min: u16, max: u16, recv_buffer: usize) -> Self {
        let first = min + min % 2;
        let mut free: VecDeque<u16> = (first..max)
            .step_by(2)
            .filter(|p| p.checked_add(1).is_some_and(|q| q <= max))
            .collect();
        let total = free.len();
        free.rotate_left(fastrand::usize(..total.max(1)));
        Self {
            address,
            free: Mutex::new(free),
            released: ArrayQueue::new(total.max(1)),
            recv_buffer,
            closing: AtomicUsize::new(0),
            total,
        }
    }

    /// Number of pairs in the range.
    pub(crate) fn total(&self) -> usize {
        self.total
    }

    /// Binds the next free pair. Ports some other process holds are skipped
    /// (and retried later). `None` when no pair could be bound.
    pub(crate) fn allocate(self: &Arc<Self>) -> Option<PortPair> {
        let mut free = self.free.lock().ok()?;
        while let Some(port) = self.released.pop() {
            free.push_back(port);
        }
        for _ in 0..free.len() {
            let port = free.pop_front()?;
            match (self.bind(port), self.bind(port + 1)) {
                (Ok(rtp), Ok(rtcp)) => {
                    return Some(PortPair {
                        rtp,
                        rtcp,
                        port,
                        lease: PortLease {
                            pool: Some(self.clone()),
                            port,
                        },
                    });
                }
                _ => free.push_back(port),
            }
        }
        None
    }

    /// Notes that a pair's sockets are being closed; `release` follows.
    pub(crate) fn closing(&self) {
        self.closing.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether pairs are about to come back.
    pub(crate) fn has_closing(&self) -> bool {
        self.closing.load(Ordering::Relaxed) > 0
    }

    /// Gives back a pair announced with `closing`.
    pub(crate) fn release_closed(&self, port: u16) {
        self.closing.fetch_sub(1, Ordering::Relaxed);
        self.release(port);
    }

    /// Gives a pair back (its sockets are closed).
    pub(crate) fn release(&self, port: u16) {
        // The queue holds every pair of the range, so this cannot overflow
        // unless a port is released twice, which the shard never does.
        let _ = self.released.push(port);
    }

    fn bind(&self, port: u16) -> io::Result<UdpSocket> {
        let addr = SocketAddr::new(self.address, port);
        let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        let _ = socket.set_recv_buffer_size(self.recv_buffer);
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        Ok(socket.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An odd port `min` such that min+1..=min+4 are free now (other
    /// processes on a shared machine hold random ports).
    fn free_range() -> u16 {
        (0..200u16)
            .map(|i| 45_001 + 8 * i)
            .find(|&min| {
                let held: Vec<_> = (min + 1..=min + 4)
                    .filter_map(|p| UdpSocket::bind(("127.0.0.1", p)).ok())
                    .collect();
                held.len() == 4
            })
            .expect("a free port range")
    }

    #[test]
    fn pairs_are_even_odd_and_exhaust() {
        let min = free_range();
        let pool = Arc::new(PortPool::new(
            "127.0.0.1".parse().unwrap(),
            min,
            min + 5,
            16 * 1024,
        ));
        assert_eq!(pool.total(), 2); // min+1/+2, min+3/+4
        let a = pool.allocate().unwrap();
        let b = pool.allocate().unwrap();
        assert_eq!(a.port % 2, 0);
        assert_eq!(a.rtcp.local_addr().unwrap().port(), a.port + 1);
        assert!(pool.allocate().is_none());
        let port = a.port;
        // Dropping an unkept pair gives it back.
        drop(a);
        let c = pool.allocate().unwrap();
        assert_eq!(c.port, port);
        // A kept pair stays out until released (as a shard does once the
        // pair's sockets are closed).
        let mut ports = Vec::new();
        for pair in [b, c] {
            let PortPair {
                rtp,
                rtcp,
                port,
                lease,
            } = pair;
            lease.keep();
            drop((rtp, rtcp));
            ports.push(port);
        }
        assert!(pool.allocate().is_none());
        for port in ports {
            pool.release(port);
        }
        assert!(pool.allocate().is_some());
    }

    #[test]
    fn order_starts_at_a_random_pair() {
        // 500 pairs: two pools start at the same pair with probability
        // 1/500; eight all starting at the same one, never in practice.
        let firsts: Vec<u16> = (0..8)
            .map(|_| {
                let pool = PortPool::new("127.0.0.1".parse().unwrap(), 46_000, 46_999, 16 * 1024);
                let mut free = pool.free.lock().unwrap();
                let first = free[0];
                // Least recently used order after the offset: consecutive pairs.
                assert_eq!(free[1], if first == 46_998 { 46_000 } else { first + 2 });
                free.clear();
                first
            })
            .collect();
        assert!(
            firsts.iter().any(|&p| p != firsts[0]),
            "every pool started at {}",
            firsts[0]
        );
    }
}
