//! CPU time and memory of a process from `/proc`, and the kernel's UDP
//! drop counters, sampled at the edges of a measuring window.

use std::io;
use std::path::Path;

/// One sample of a process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcSample {
    /// User CPU time in clock ticks (`/proc/PID/stat` field 14), whole
    /// process including exited threads.
    pub utime_ticks: u64,
    /// System CPU time in clock ticks (field 15).
    pub stime_ticks: u64,
    /// CPU time in ns summed over the live threads' `schedstat` (the same
    /// clock `utime + stime` is scaled from, without tick rounding); `None`
    /// when the kernel has no schedstats.
    pub sched_ns: Option<u64>,
    /// Resident set size in KiB (`VmRSS`).
    pub rss_kib: u64,
}

/// CPU used between two samples.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CpuDelta {
    /// `utime + stime` difference in seconds (clock-tick resolution).
    pub stat_s: f64,
    /// `schedstat` difference in seconds, when available.
    pub sched_s: Option<f64>,
}

impl CpuDelta {
    /// The most precise figure: `schedstat` when available, else
    /// `utime + stime`.
    pub fn best_s(&self) -> f64 {
        self.sched_s.unwrap_or(self.stat_s)
    }
}

impl ProcSample {
    /// Samples process `pid`.
    pub fn of(pid: u32) -> io::Result<Self> {
        Self::read(&Path::new("/proc").join(pid.to_string()))
    }

    /// Samples this process.
    pub fn current() -> io::Result<Self> {
        Self::read(Path::new("/proc/self"))
    }

    fn read(dir: &Path) -> io::Result<Self> {
        let stat = std::fs::read_to_string(dir.join("stat"))?;
        let (utime_ticks, stime_ticks) = parse_stat(&stat)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unexpected /proc stat"))?;
        let status = std::fs::read_to_string(dir.join("status"))?;
        let rss_kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        Ok(Self {
            utime_ticks,
            stime_ticks,
            sched_ns: sched_ns(dir),
            rss_kib,
        })
    }

    /// CPU used from `earlier` to `self`.
    pub fn cpu_since(&self, earlier: &Self) -> CpuDelta {
        let ticks = (self.utime_ticks + self.stime_ticks)
            .saturating_sub(earlier.utime_ticks + earlier.stime_ticks);
        CpuDelta {
            stat_s: ticks as f64 / clock_ticks_per_second() as f64,
            sched_s: match (self.sched_ns, earlier.sched_ns) {
                (Some(a), Some(b)) => Some(a.saturating_sub(b) as f64 / 1e9),
                _ => None,
            },
        }
    }
}

/// `(utime, stime)` from a `/proc/PID/stat` line. The command name (field
/// 2) may hold spaces and parentheses, so fields are counted after the last
/// `)`: field 3 (state) is the first there, utime (14) the 12th.
fn parse_stat(stat: &str) -> Option<(u64, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime = fields.next()?.parse().ok()?;
    let stime = fields.next()?.parse().ok()?;
    Some((utime, stime))
}

fn sched_ns(dir: &Path) -> Option<u64> {
    let mut total = 0u64;
    let mut any = false;
    for task in std::fs::read_dir(dir.join("task")).ok()?.flatten() {
        // A thread may exit between listing and reading: skip it.
        let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        if let Some(ns) = text
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
        {
            total += ns;
            any = true;
        }
    }
    any.then_some(total)
}

/// `sysconf(_SC_CLK_TCK)`, the unit of `utime`/`stime` (100 on Linux).
pub fn clock_ticks_per_second() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|v| u64::try_from(v).ok())
        .filter(|&v| v > 0)
        .unwrap_or(100)
}

/// Busy CPU time of the whole machine (all CPUs, every mode but idle and
/// iowait) from `/proc/stat`, in seconds; `None` if unreadable. Minus the
/// processes under test, it tells how much else ran during a window.
pub fn machine_busy_s() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest is in user).
    let busy: u64 = v.iter().take(8).sum::<u64>() - v.get(3)? - v.get(4)?;
    Some(busy as f64 / clock_ticks_per_second() as f64)
}

/// Datagrams the kernel dropped on arrival at the IPv4 UDP sockets bound to
/// `ports` (their receive buffers were full): the `drops` column of
/// `/proc/net/udp`. Zero when it cannot be read.
pub fn udp_socket_drops(ports: &[u16]) -> u64 {
    std::fs::read_to_string("/proc/net/udp")
        .map(|t| parse_udp_socket_drops(&t, ports))
        .unwrap_or(0)
}

fn parse_udp_socket_drops(text: &str, ports: &[u16]) -> u64 {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let port = fields.get(1)?.rsplit(':').next()?;
            let port = u16::from_str_radix(port, 16).ok()?;
            if !ports.contains(&port) {
                return None;
            }
            fields.last()?.parse::<u64>().ok()
        })
        .sum()
}

/// System-wide UDP counters from `/proc/net/snmp` (this network namespace).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UdpCounters {
    /// Datagrams dropped because a receive buffer was full.
    pub rcvbuf_errors: u64,
    /// Datagrams dropped because a send buffer was full.
    pub sndbuf_errors: u64,
    /// All receive errors (includes `rcvbuf_errors`).
    pub in_errors: u64,
}

impl UdpCounters {
    /// Reads the counters; zeros when they cannot be read.
    pub fn read() -> Self {
        std::fs::read_to_string("/proc/net/snmp")
            .ok()
            .and_then(|t| Self::parse(&t))
            .unwrap_or_default()
    }

    fn parse(text: &str) -> Option<Self> {
        let mut udp = text.lines().filter(|l| l.starts_with("Udp:"));
        let names: Vec<&str> = udp.next()?.split_whitespace().collect();
        let values: Vec<&str> = udp.next()?.split_whitespace().collect();
        let get = |name: &str| -> u64 {
            names
                .iter()
                .position(|n| *n == name)
                .and_then(|i| values.get(i))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Some(Self {
            rcvbuf_errors: get("RcvbufErrors"),
            sndbuf_errors: get("SndbufErrors"),
            in_errors: get("InErrors"),
        })
    }

    /// Counter increases from `earlier` to `self`.
    pub fn since(&self, earlier: &Self) -> Self {
        Self {
            rcvbuf_errors: self.rcvbuf_errors.saturating_sub(earlier.rcvbuf_errors),
            sndbuf_errors: self.sndbuf_errors.saturating_sub(earlier.sndbuf_errors),
            in_errors: self.in_errors.saturating_sub(earlier.in_errors),
        }
    }
}

/// Machine details for the report.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Machine {
    /// CPUs online.
    pub nproc: usize,
    /// `model name` from `/proc/cpuinfo`.
    pub cpu_model: String,
    /// Kernel release.
    pub kernel: String,
}

impl Machine {
    /// Reads this machine's details.
    pub fn detect() -> Self {
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("model name"))
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
            })
            .unwrap_or_default();
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        Self {
            // Not available_parallelism: that honours this process's
            // affinity, and the generator usually runs pinned to one CPU.
            nproc: nix::unistd::sysconf(nix::unistd::SysconfVar::_NPROCESSORS_ONLN)
                .ok()
                .flatten()
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(1),
            cpu_model,
            kernel,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_the_command_name() {
        let line = "1234 (a (weird) name) S 1 2 3 4 5 6 7 8 9 10 111 222 13 14 15";
        assert_eq!(parse_stat(line), Some((111, 222)));
    }

    #[test]
    fn own_sample_is_sane() {
        let a = ProcSample::current().unwrap();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let b = ProcSample::current().unwrap();
        assert!(b.rss_kib > 0);
        assert!(b.cpu_since(&a).best_s() >= 0.0);
    }

    #[test]
    fn snmp_udp_lines() {
        let text = "Ip: a b\nIp: 1 2\nUdp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors\nUdp: 10 0 5 9 4 1\n";
        let c = UdpCounters::parse(text).unwrap();
        assert_eq!((c.in_errors, c.rcvbuf_errors, c.sndbuf_errors), (5, 4, 1));
    }

    #[test]
    fn per_socket_drops_by_port() {
        let text = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
  1: 0100007F:4E20 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2 ffff 7\n\
  2: 0100007F:4E21 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 2 2 ffff 5\n\
  3: 0100007F:9C40 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 3 2 ffff 100\n";
        assert_eq!(parse_udp_socket_drops(text, &[20_000, 20_001]), 12);
        assert_eq!(parse_udp_socket_drops(text, &[40_000]), 100);
        assert_eq!(parse_udp_socket_drops(text, &[1]), 0);
    }
}
