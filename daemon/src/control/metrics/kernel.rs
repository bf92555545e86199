//! Kernel receive-buffer drops of legatod's media sockets, read from
//! `/proc/self/net/udp` and `udp6` at scrape time (off the shards).
//!
//! The kernel counts, per socket, the datagrams it dropped because the
//! socket's receive queue was full (the `drops` column). A socket's count
//! leaves with the socket, so the sum covers the sockets open now and can
//! go down when legs end: it is exported as a gauge.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::RangeInclusive;

/// Sum of the `drops` column over UDP sockets bound to `address` (or a
/// wildcard) on a port in `ports`; `None` when neither table is readable.
pub(crate) fn receive_drops(address: IpAddr, ports: RangeInclusive<u16>) -> Option<u64> {
    let mut total = None;
    for table in ["/proc/self/net/udp", "/proc/self/net/udp6"] {
        if let Ok(text) = std::fs::read_to_string(table) {
            *total.get_or_insert(0) += sum_drops(&text, address, &ports);
        }
    }
    total
}

fn sum_drops(table: &str, address: IpAddr, ports: &RangeInclusive<u16>) -> u64 {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut cols = line.split_whitespace();
            let (ip, port) = cols.nth(1)?.split_once(':')?;
            let port = u16::from_str_radix(port, 16).ok()?;
            let ip = parse_ip(ip)?;
            let ours = ports.contains(&port) && (ip == address || ip.is_unspecified());
            // The drops column is the last one.
            ours.then(|| cols.last()?.parse::<u64>().ok())?
        })
        .sum()
}

/// An address as the kernel prints it: 32-bit words in hex, each in host
/// byte order.
fn parse_ip(hex: &str) -> Option<IpAddr> {
    let word = |i: usize| -> Option<[u8; 4]> {
        let w = u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok()?;
        Some(w.to_ne_bytes())
    };
    match hex.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::from(word(0)?))),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            Some(IpAddr::V6(Ipv6Addr::from(bytes)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_drops_of_media_sockets_only() {
        let lo = u32::from_ne_bytes([127, 0, 0, 1]);
        let other = u32::from_ne_bytes([10, 0, 0, 1]);
        let table = format!(
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
             \x20  1: {lo:08X}:7530 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 100 2 0000000000000000 5\n\
             \x20  2: {lo:08X}:7531 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 101 2 0000000000000000 2\n\
             \x20  3: {lo:08X}:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 102 2 0000000000000000 9\n\
             \x20  4: {other:08X}:7532 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 103 2 0000000000000000 7\n\
             \x20  5: 00000000:7534 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 104 2 0000000000000000 1\n\
             garbage line\n"
        );
        let drops = sum_drops(&table, IpAddr::V4(Ipv4Addr::LOCALHOST), &(30_000..=30_009));
        assert_eq!(drops, 5 + 2 + 1);
    }

    #[test]
    fn parses_v6() {
        let words = [0u32, 0, 0, u32::from_ne_bytes([0, 0, 0, 1])];
        let hex: String = words.iter().map(|w| format!("{w:08X}")).collect();
        assert_eq!(parse_ip(&hex), Some(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        assert_eq!(parse_ip("zz"), None);
    }

    #[test]
    fn reads_this_process_table() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = socket.local_addr().unwrap().port();
        assert_eq!(
            receive_drops(IpAddr::V4(Ipv4Addr::LOCALHOST), port..=port),
            Some(0)
        );
    }
}
