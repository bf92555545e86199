//! Small syscall wrappers the engine needs beyond std: eventfd, the
//! open-file limit, real-time scheduling, thread CPU time, connecting a
//! UDP socket to its peer and sockaddr decoding.
#![allow(
    unsafe_code,
    reason = "eventfd creation, resource limits, scheduling policy, thread CPU clocks and connect are raw syscalls; see SAFETY notes"
)]

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// A non-blocking eventfd used to wake a thread or task.
#[derive(Debug)]
pub(crate) struct EventFd {
    file: File,
}

impl EventFd {
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: eventfd(2) takes no pointers; the result is checked below.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a freshly created descriptor that nothing else owns.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self {
            file: File::from(owned),
        })
    }

    /// Adds one to the counter, waking a waiter. Never blocks: a counter at
    /// its maximum already means "wake up".
    pub(crate) fn notify(&self) {
        let _ = (&self.file).write(&1u64.to_ne_bytes());
    }

    /// Resets the counter; returns whether it was non-zero.
    pub(crate) fn drain(&self) -> bool {
        let mut buf = [0u8; 8];
        matches!((&self.file).read(&mut buf), Ok(8))
    }

    pub(crate) fn raw(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

/// Raises the soft limit on open descriptors to the hard limit: every leg
/// holds two sockets, and the usual soft limit (1,024) would cap legatod
/// near 500 legs. Returns the limit now in force.
pub(crate) fn raise_fd_limit() -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit(2) writes one rlimit into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit(2) reads one rlimit from a struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const raised) } == 0 {
            return Ok(raised.rlim_cur);
        }
    }
    Ok(limit.rlim_cur)
}

/// Puts the calling thread under `SCHED_FIFO` at `priority` (1-99), so
/// ordinary threads (kernel workers, other daemons, builds) no longer
/// preempt it. Needs CAP_SYS_NICE or an RLIMIT_RTPRIO of at least
/// `priority`; the kernel's real-time throttling (by default 95 % of each
/// second) still leaves the rest of the machine a share of the CPU.
pub(crate) fn set_realtime(priority: u8) -> io::Result<()> {
    let param = libc::sched_param {
        sched_priority: i32::from(priority),
    };
    // SAFETY: sched_setscheduler(2) on thread 0 (the caller) reads one
    // sched_param from a struct we own.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &raw const param) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// CPU time the calling thread has used so far (user and system), from
/// `CLOCK_THREAD_CPUTIME_ID`. A real syscall (not the vDSO), so shards read
/// it when asked for metrics, never per loop turn.
pub(crate) fn thread_cpu_time() -> io::Result<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime(2) writes one timespec into the struct we own.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut ts) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

/// Connects UDP socket `fd` to `peer`, or with `None` dissolves its
/// association. A connected UDP socket receives only from its peer: the
/// kernel drops datagrams from anyone else before they take room in the
/// socket's receive queue, so a flood from a stranger cannot squeeze the
/// peer's packets out. Sends with an explicit destination still work.
pub(crate) fn connect_udp(fd: RawFd, peer: Option<SocketAddr>) -> io::Result<()> {
    let rc = match peer {
        Some(SocketAddr::V4(a)) => {
            let sa = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: `sa` is a valid sockaddr_in for the duration of the
            // call and the length passed is its size.
            unsafe {
                libc::connect(
                    fd,
                    (&raw const sa).cast(),
                    size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            }
        }
        Some(SocketAddr::V6(a)) => {
            let sa = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: as above, for sockaddr_in6.
            unsafe {
                libc::connect(
                    fd,
                    (&raw const sa).cast(),
                    size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                )
            }
        }
        None => {
            // connect(2): an address of family AF_UNSPEC dissolves a UDP
            // socket's association.
            let sa = libc::sockaddr {
                sa_family: libc::AF_UNSPEC as libc::sa_family_t,
                sa_data: [0; 14],
            };
            // SAFETY: `sa` is a valid sockaddr for the duration of the call.
            unsafe {
                libc::connect(
                    fd,
                    &raw const sa,
                    size_of::<libc::sockaddr>() as libc::socklen_t,
                )
            }
        }
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Decodes a kernel `sockaddr_in`/`sockaddr_in6` from raw bytes.
pub(crate) fn decode_sockaddr(name: &[u8]) -> Option<SocketAddr> {
    let family = u16::from_ne_bytes([*name.first()?, *name.get(1)?]);
    let port = u16::from_be_bytes([*name.get(2)?, *name.get(3)?]);
    if i32::from(family) == libc::AF_INET {
        let ip: [u8; 4] = name.get(4..8)?.try_into().ok()?;
        Some(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port)))
    } else if i32::from(family) == libc::AF_INET6 {
        let flow = u32::from_be_bytes(name.get(4..8)?.try_into().ok()?);
        let ip: [u8; 16] = name.get(8..24)?.try_into().ok()?;
        let scope = u32::from_ne_bytes(name.get(24..28)?.try_into().ok()?);
        Some(SocketAddr::V6(SocketAddrV6::new(
            Ipv6Addr::from(ip),
            port,
            flow,
            scope,
        )))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eventfd_notify_and_drain() {
        let e = EventFd::new().unwrap();
        assert!(!e.drain());
        e.notify();
        e.notify();
        assert!(e.drain());
        assert!(!e.drain());
    }

    #[test]
    fn decodes_v4_and_rejects_garbage() {
        let mut v4 = [0u8; 16];
        v4[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        v4[2..4].copy_from_slice(&5004u16.to_be_bytes());
        v4[4..8].copy_from_slice(&[127, 0, 0, 1]);
        assert_eq!(
            decode_sockaddr(&v4),
            Some("127.0.0.1:5004".parse().unwrap())
        );
        assert_eq!(decode_sockaddr(&v4[..6]), None);
        assert_eq!(decode_sockaddr(&[]), None);
        assert_eq!(decode_sockaddr(&[9, 9, 9, 9, 9, 9, 9, 9]), None);
    }
}
