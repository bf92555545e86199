//! The floor: a bare relay that does what legatod's relay path does minus
//! every piece of RTP logic, so its CPU per packet is the kernel's price of
//! moving a datagram in and out of user space.
//!
//! One thread, level-triggered epoll over `2 × calls` sockets on
//! consecutive ports (`base + 2·call` for side A, `+1` for side B). For a
//! ready socket it reads up to [`RECV_BATCH`] datagrams with one `recvmmsg`,
//! latches the sender's address (symmetric RTP, like legatod), and sends
//! them all out of the partner socket to the partner's latched address with
//! one `sendmmsg`. It runs as its own process (`legato-loadgen
//! floor-server`) so its CPU is read from `/proc` exactly like legatod's,
//! and exits when its standard input closes or after `max_run`.

use std::io::{IoSlice, IoSliceMut, Read, Write};
use std::net::{Ipv4Addr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The ports of a floor relay's sockets, from its ready line.
pub fn parse_ports(ready_line: &str) -> Result<Vec<u16>> {
    let list = ready_line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("ports="))
        .context("floor ready line without ports=")?;
    Ok(list.split(',').map(str::parse).collect::<Result<_, _>>()?)
}
use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::socket::{
    ControlMessage, MsgFlags, MultiHeaders, SockaddrIn, recvmmsg, sendmmsg, setsockopt, sockopt,
};

/// Datagrams per `recvmmsg` (and so per `sendmmsg`); legatod's epoll
/// backend reads 32 at a time too.
pub const RECV_BATCH: usize = 32;
/// `recvmmsg` rounds per ready socket per wake-up.
const RECV_ROUNDS: usize = 4;
const BUF: usize = 2048;
/// epoll data of standard input.
const STDIN_DATA: u64 = u64::MAX;

/// The ready line the server prints once every socket is bound.
pub const READY_PREFIX: &str = "floor ready";

/// Binds the sockets, prints `floor ready calls=N ports=P0,P1,...` and
/// relays until standard input closes or `max_run` passes.
///
/// With `connect`, each socket is `connect()`ed to the peer it latches and
/// sends without a destination address: the kernel then reuses the
/// socket's cached route instead of looking one up per datagram (a
/// prototype of a possible legatod change, measured against the plain
/// floor).
pub fn serve(calls: usize, port_base: u16, max_run: Duration, connect: bool) -> Result<()> {
    if calls == 0 {
        bail!("no calls");
    }
    let count = 2 * calls;
    if port_base != 0 && usize::from(port_base) + count > usize::from(u16::MAX) + 1 {
        bail!("{count} ports from {port_base} do not fit below 65536");
    }
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
    let mut sockets = Vec::with_capacity(count);
    let mut ports = String::new();
    for j in 0..count {
        let port = if port_base == 0 {
            0
        } else {
            port_base + j as u16
        };
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, port))
            .with_context(|| format!("floor: binding 127.0.0.1:{port}"))?;
        if j > 0 {
            ports.push(',');
        }
        ports.push_str(&socket.local_addr()?.port().to_string());
        socket.set_nonblocking(true)?;
        let _ = setsockopt(&socket, sockopt::RcvBuf, &(1usize << 20));
        epoll.add(&socket, EpollEvent::new(EpollFlags::EPOLLIN, j as u64))?;
        sockets.push(socket);
    }
    let stdin = std::io::stdin();
    epoll.add(
        stdin.as_fd(),
        EpollEvent::new(EpollFlags::EPOLLIN, STDIN_DATA),
    )?;
    println!("{READY_PREFIX} calls={calls} ports={ports}");
    std::io::stdout().flush()?;

    let mut peers: Vec<Option<SockaddrIn>> = vec![None; count];
    let mut recv_hdrs = MultiHeaders::<SockaddrIn>::preallocate(RECV_BATCH, None);
    let mut send_hdrs = MultiHeaders::<SockaddrIn>::preallocate(RECV_BATCH, None);
    let mut bufs = Box::new([[0u8; BUF]; RECV_BATCH]);
    let mut events = vec![EpollEvent::empty(); 256];
    let deadline = Instant::now() + max_run;
    while Instant::now() < deadline {
        let n = match epoll.wait(&mut events, EpollTimeout::from(100u16)) {
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        for event in &events[..n] {
            let j = event.data();
            if j == STDIN_DATA {
                let mut byte = [0u8; 64];
                if matches!(stdin.lock().read(&mut byte), Ok(0) | Err(_)) {
                    return Ok(());
                }
                continue;
            }
            let j = j as usize;
            let out = j ^ 1;
            for _ in 0..RECV_ROUNDS {
                let mut lens = [0usize; RECV_BATCH];
                let mut got = 0;
                {
                    let mut iovs: [[IoSliceMut<'_>; 1]; RECV_BATCH] =
                        bufs.each_mut().map(|b| [IoSliceMut::new(b)]);
                    let Ok(results) = recvmmsg(
                        sockets[j].as_raw_fd(),
                        &mut recv_hdrs,
                        iovs.iter_mut(),
                        MsgFlags::MSG_DONTWAIT,
                        None,
                    ) else {
                        break;
                    };
                    for msg in results {
                        if let Some(src) = msg.address {
                            if connect && peers[j] != Some(src) {
                                let _ = nix::sys::socket::connect(sockets[j].as_raw_fd(), &src);
                            }
                            peers[j] = Some(src);
                        }
                        lens[got] = msg.bytes.min(BUF);
                        got += 1;
                    }
                }
                if let Some(dest) = peers[out] {
                    let iovs: [[IoSlice<'_>; 1]; RECV_BATCH] =
                        std::array::from_fn(|k| [IoSlice::new(&bufs[k][..lens[k]])]);
                    let dests = [if connect { None } else { Some(dest) }; RECV_BATCH];
                    let mut done = 0;
                    while done < got {
                        let cmsgs: [ControlMessage<'_>; 0] = [];
                        match sendmmsg(
                            sockets[out].as_raw_fd(),
                            &mut send_hdrs,
                            &iovs[done..got],
                            &dests[done..got],
                            cmsgs,
                            MsgFlags::MSG_DONTWAIT,
                        ) {
                            Ok(results) => done += results.count().max(1),
                            // Buffer full or a refused datagram: drop it.
                            Err(_) => done += 1,
                        }
                    }
                }
                if got < RECV_BATCH {
                    break;
                }
            }
        }
    }
    Ok(())
}
