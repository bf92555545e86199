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

/// Lets only datagrams from `allowed` into UDP socket `fd` (IPv4), with a
/// classic BPF socket filter, or with `None` removes the filter. Like a
/// connected socket, the kernel then drops anyone else's datagrams before
/// they take room in the receive queue, but for two sources: a NAT'd
/// party's learned address and its SDP address, which must still be
/// heard.
///
/// For a UDP socket the filter sees the datagram from its UDP header on
/// (source port at offset 0); the IP header is reached through the
/// kernel's `SKF_NET_OFF` base (IPv4 source address at offset 12).
pub(crate) fn filter_udp_sources(fd: RawFd, allowed: Option<&[SocketAddrV4]>) -> io::Result<()> {
    let Some(allowed) = allowed else {
        // SO_DETACH_FILTER ignores its value, but SOL_SOCKET options
        // must pass at least an int.
        let unused: libc::c_int = 0;
        // SAFETY: `unused` lives for the call and the length passed is its
        // size; `fd` is a socket the caller owns.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_DETACH_FILTER,
                (&raw const unused).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        return match rc {
            0 => Ok(()),
            _ => {
                let e = io::Error::last_os_error();
                // No filter attached: nothing to remove.
                if e.raw_os_error() == Some(libc::ENOENT) {
                    Ok(())
                } else {
                    Err(e)
                }
            }
        };
    };
    let program = source_filter_program(allowed);
    let fprog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: `fprog` points at `program`, which outlives the call (the
    // kernel copies the program); the length passed is the struct's size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&raw const fprog).cast(),
            size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The classic BPF program of [`filter_udp_sources`]: for each allowed
/// address, compare the source address, then the source port; accept the
/// whole datagram on a match, drop it when none matches.
fn source_filter_program(allowed: &[SocketAddrV4]) -> Vec<libc::sock_filter> {
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const LD_H_ABS: u16 = (libc::BPF_LD | libc::BPF_H | libc::BPF_ABS) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    let op = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let ip_source = (libc::SKF_NET_OFF + 12) as u32;
    let mut program = Vec::with_capacity(5 * allowed.len() + 1);
    for address in allowed {
        program.extend([
            op(LD_W_ABS, 0, 0, ip_source),
            // Not this address: skip to the next entry (3 on).
            op(JEQ_K, 0, 3, u32::from(*address.ip())),
            op(LD_H_ABS, 0, 0, 0),
            op(JEQ_K, 0, 1, u32::from(address.port())),
            op(RET_K, 0, 0, u32::MAX),
        ]);
    }
    program.push(op(RET_K, 0, 0, 0));
    program
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The socket filter against the real kernel: only the two allowed
    /// sources get through, and removing the filter opens the socket.
    #[test]
    fn source_filter_lets_two_sources_through() {
        use std::net::UdpSocket;
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        receiver
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let [a, b, stranger] = std::array::from_fn(|_| UdpSocket::bind("127.0.0.1:0").unwrap());
        let v4 = |s: &UdpSocket| match s.local_addr().unwrap() {
            SocketAddr::V4(a) => a,
            SocketAddr::V6(_) => unreachable!("bound to 127.0.0.1"),
        };
        let to = receiver.local_addr().unwrap();
        filter_udp_sources(receiver.as_raw_fd(), Some(&[v4(&a), v4(&b)])).unwrap();
        let receive_all = || {
            let mut got = Vec::new();
            let mut buf = [0u8; 16];
            while let Ok((n, _)) = receiver.recv_from(&mut buf) {
                got.push(buf[..n].to_vec());
            }
            got
        };
        stranger.send_to(b"stranger", to).unwrap();
        a.send_to(b"a", to).unwrap();
        stranger.send_to(b"stranger", to).unwrap();
        b.send_to(b"b", to).unwrap();
        assert_eq!(receive_all(), [b"a".to_vec(), b"b".to_vec()]);
        // The same address on another port is someone else.
        let same_ip_other_port = UdpSocket::bind("127.0.0.1:0").unwrap();
        same_ip_other_port.send_to(b"other", to).unwrap();
        assert!(receive_all().is_empty());
        filter_udp_sources(receiver.as_raw_fd(), None).unwrap();
        // Removing a filter that is not there is fine.
        filter_udp_sources(receiver.as_raw_fd(), None).unwrap();
        stranger.send_to(b"stranger", to).unwrap();
        assert_eq!(receive_all(), [b"stranger".to_vec()]);
    }

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
