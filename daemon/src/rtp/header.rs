//! The fixed RTP header (RFC 3550 §5.1) and the first-byte demultiplexing of
//! RTP and RTCP on one port (RFC 5761 §4).
//!
//! Items are `pub` so the `internals` feature can expose them to benches.
#![allow(
    unreachable_pub,
    reason = "reachable through legato_daemon::internals with the internals feature"
)]

/// Length of the fixed RTP header in bytes.
const FIXED_LEN: usize = 12;

/// The fields of an RTP header legato reads; the rest of the packet stays
/// where it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtpHeader {
    /// Marker bit.
    pub marker: bool,
    /// Payload type.
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// Timestamp.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
    /// Offset of the payload (after CSRCs and header extension).
    pub payload_offset: usize,
    /// Length of the payload without padding.
    pub payload_len: usize,
}

impl RtpHeader {
    /// Parses and validates an RTP packet: version 2, CSRC list, header
    /// extension and padding all within the datagram. Returns `None` for
    /// anything malformed.
    pub fn parse(packet: &[u8]) -> Option<Self> {
        if packet.len() < FIXED_LEN {
            return None;
        }
        let b0 = packet[0];
        if b0 >> 6 != 2 {
            return None;
        }
        let padding = b0 & 0x20 != 0;
        let extension = b0 & 0x10 != 0;
        let csrc_count = usize::from(b0 & 0x0f);
        let mut offset = FIXED_LEN + 4 * csrc_count;
        if extension {
            let ext = packet.get(offset..offset + 4)?;
            let words = usize::from(u16::from_be_bytes([ext[2], ext[3]]));
            offset += 4 + 4 * words;
        }
        if offset > packet.len() {
            return None;
        }
        let mut end = packet.len();
        if padding {
            let pad = usize::from(*packet.last()?);
            if pad == 0 || pad > end - offset {
                return None;
            }
            end -= pad;
        }
        Some(Self {
            marker: packet[1] & 0x80 != 0,
            payload_type: packet[1] & 0x7f,
            sequence: u16::from_be_bytes([packet[2], packet[3]]),
            timestamp: u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]),
            ssrc: u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]),
            payload_offset: offset,
            payload_len: end - offset,
        })
    }
}

/// Rewrites marker, payload type, sequence number, timestamp and SSRC of an
/// RTP packet in place. `packet` must hold at least a fixed header (callers
/// pass packets that [`RtpHeader::parse`] accepted).
pub fn rewrite_header(
    packet: &mut [u8],
    marker: bool,
    payload_type: u8,
    sequence: u16,
    timestamp: u32,
    ssrc: u32,
) {
    let Some(head) = packet.get_mut(..FIXED_LEN) else {
        return;
    };
    head[1] = (u8::from(marker) << 7) | (payload_type & 0x7f);
    head[2..4].copy_from_slice(&sequence.to_be_bytes());
    head[4..8].copy_from_slice(&timestamp.to_be_bytes());
    head[8..12].copy_from_slice(&ssrc.to_be_bytes());
}

/// Whether a datagram on an rtcp-mux port is RTCP rather than RTP: RFC 5761
/// §4 reserves second-byte values 192..=223 (RTCP packet types 192-223).
pub fn is_rtcp(packet: &[u8]) -> bool {
    packet.len() >= 2 && (192..=223).contains(&packet[1])
}

/// Validates a compound RTCP packet (RFC 3550 §6.1): every packet version 2,
/// lengths consistent with the datagram, first packet SR or RR (or any
/// RTCP type, as reduced-size RTCP allows: RFC 5506), padding only last.
pub fn valid_rtcp(packet: &[u8]) -> bool {
    let mut rest = packet;
    if rest.len() < 4 {
        return false;
    }
    while !rest.is_empty() {
        if rest.len() < 4 || rest[0] >> 6 != 2 || !(192..=223).contains(&rest[1]) {
            return false;
        }
        let words = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        let len = 4 * (words + 1);
        if len > rest.len() {
            return false;
        }
        if rest[0] & 0x20 != 0 && len != rest.len() {
            return false;
        }
        rest = &rest[len..];
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(b0: u8, extra: &[u8]) -> Vec<u8> {
        let mut p = vec![
            b0,
            0x80 | 8,
            0x12,
            0x34,
            0,
            0,
            0x01,
            0x40,
            0xde,
            0xad,
            0xbe,
            0xef,
        ];
        p.extend_from_slice(extra);
        p
    }

    #[test]
    fn parses_fixed_header() {
        let p = packet(0x80, &[1, 2, 3]);
        let h = RtpHeader::parse(&p).unwrap();
        assert!(h.marker);
        assert_eq!(h.payload_type, 8);
        assert_eq!(h.sequence, 0x1234);
        assert_eq!(h.timestamp, 320);
        assert_eq!(h.ssrc, 0xdead_beef);
        assert_eq!((h.payload_offset, h.payload_len), (12, 3));
    }

    #[test]
    fn rejects_malformed_table() {
        let cases: &[(&str, Vec<u8>)] = &[
            ("empty", vec![]),
            ("short", vec![0x80; 11]),
            ("version 1", packet(0x40, &[])),
            ("csrc beyond end", packet(0x82, &[0; 4])),
            ("extension header cut", packet(0x90, &[0xbe, 0xde])),
            (
                "extension beyond end",
                packet(0x90, &[0xbe, 0xde, 0, 2, 0, 0, 0, 0]),
            ),
            ("zero padding", packet(0xa0, &[1, 0])),
            ("padding beyond payload", packet(0xa0, &[1, 9])),
        ];
        for (name, p) in cases {
            assert_eq!(RtpHeader::parse(p), None, "{name}");
        }
    }

    #[test]
    fn accepts_csrc_extension_padding() {
        let mut extra = vec![0, 0, 0, 1]; // one CSRC
        extra.extend_from_slice(&[0xbe, 0xde, 0, 1, 9, 9, 9, 9]); // one-word extension
        extra.extend_from_slice(&[7, 7, 0, 2]); // payload 7 7 + 2 padding bytes
        let p = packet(0xb1, &extra);
        let h = RtpHeader::parse(&p).unwrap();
        assert_eq!((h.payload_offset, h.payload_len), (12 + 4 + 8, 2));
    }

    #[test]
    fn rewrite_round_trip() {
        let mut p = packet(0x80, &[5; 160]);
        rewrite_header(&mut p, false, 0, 0xffff, 0xffff_fff0, 42);
        let h = RtpHeader::parse(&p).unwrap();
        assert_eq!(
            (h.marker, h.payload_type, h.sequence, h.timestamp, h.ssrc),
            (false, 0, 0xffff, 0xffff_fff0, 42)
        );
        assert_eq!(&p[12..], &[5; 160]);
    }

    #[test]
    fn rtcp_demux_and_validation() {
        let rr = [0x80, 201, 0, 1, 0, 0, 0, 1];
        assert!(is_rtcp(&rr));
        assert!(valid_rtcp(&rr));
        assert!(!is_rtcp(&packet(0x80, &[])));
        assert!(!valid_rtcp(&[0x80, 201, 0, 5, 0, 0, 0, 1]));
        assert!(!valid_rtcp(&[0x80, 100, 0, 1, 0, 0, 0, 1]));
        assert!(!valid_rtcp(&[0x80]));
    }

    #[test]
    fn never_panics_on_random_bytes() {
        let mut state = 0x1234_5678_u32;
        let mut buf = [0u8; 64];
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let len = (state % 64) as usize;
            for b in buf.iter_mut() {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                *b = (state >> 24) as u8;
            }
            let _ = RtpHeader::parse(&buf[..len]);
            let _ = valid_rtcp(&buf[..len]);
        }
    }
}
