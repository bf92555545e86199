//! Kernel UDP receive-buffer drops, read from `/proc/self/net/snmp` and
//! `snmp6` at scrape time (off the shards).
//!
//! These are the network namespace's counters (`RcvbufErrors`): datagrams
//! the kernel dropped because a UDP socket's receive queue was full. They
//! cover every UDP socket of the namespace, not only legatod's; on a media
//! host (or in legatod's own container) that is mostly legatod.
//!
//! The per-socket `drops` column of `/proc/net/udp` would single out
//! legatod's sockets, but the kernel formats that table under the UDP hash
//! locks: with 4,000 media sockets one read took about 20 ms and stalled
//! relaying for as long (p99 latency 0.36 ms → 8-11 ms at one scrape a
//! second in the packet-rate bench), so it is not read.

/// `RcvbufErrors` of IPv4 and IPv6 UDP; `None` for a table that cannot
/// be read or parsed.
pub(crate) fn udp_receive_buffer_errors() -> (Option<u64>, Option<u64>) {
    let v4 = std::fs::read_to_string("/proc/self/net/snmp")
        .ok()
        .and_then(|t| snmp_value(&t, "Udp:", "RcvbufErrors"));
    let v6 = std::fs::read_to_string("/proc/self/net/snmp6")
        .ok()
        .and_then(|t| snmp6_value(&t, "Udp6RcvbufErrors"));
    (v4, v6)
}

/// A value of `/proc/net/snmp`: a header line `Prefix: Name...` followed
/// by a line `Prefix: value...`.
fn snmp_value(table: &str, prefix: &str, name: &str) -> Option<u64> {
    let mut lines = table.lines().filter(|l| l.starts_with(prefix));
    let names = lines.next()?;
    let values = lines.next()?;
    let index = names.split_whitespace().position(|n| n == name)?;
    values.split_whitespace().nth(index)?.parse().ok()
}

/// A value of `/proc/net/snmp6`: lines `Name value`.
fn snmp6_value(table: &str, name: &str) -> Option<u64> {
    table.lines().find_map(|l| {
        let mut cols = l.split_whitespace();
        (cols.next()? == name).then(|| cols.next()?.parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_tables() {
        let snmp = "Ip: Forwarding DefaultTTL\nIp: 1 64\n\
                    Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors\n\
                    Udp: 100 2 7 90 5 0\n\
                    UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors\n\
                    UdpLite: 0 0 0 0 0 0\n";
        assert_eq!(snmp_value(snmp, "Udp:", "RcvbufErrors"), Some(5));
        assert_eq!(snmp_value(snmp, "Udp:", "Bogus"), None);
        assert_eq!(
            snmp_value("Udp: RcvbufErrors\n", "Udp:", "RcvbufErrors"),
            None
        );
        let snmp6 = "Udp6InErrors                    \t3\nUdp6RcvbufErrors                \t4\n";
        assert_eq!(snmp6_value(snmp6, "Udp6RcvbufErrors"), Some(4));
        assert_eq!(snmp6_value(snmp6, "Udp6NoPorts"), None);
    }

    #[test]
    fn reads_this_namespace() {
        let (v4, _) = udp_receive_buffer_errors();
        assert!(v4.is_some(), "/proc/self/net/snmp has no Udp RcvbufErrors");
    }
}
