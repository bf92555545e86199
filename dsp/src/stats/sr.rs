//! RTCP sender report (RFC 3550 §6.4.1, packet type 200).

use super::report_block::{ReportBlock, ReportBlocks};
use super::{NtpTime, RtcpError, parse_header, write_header};

/// A sender report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SenderReport {
    /// SSRC of the sender.
    pub ssrc: u32,
    /// Wall-clock time when the report was sent.
    pub ntp: NtpTime,
    /// RTP timestamp corresponding to `ntp`.
    pub rtp_timestamp: u32,
    /// Packets sent since the start.
    pub packet_count: u32,
    /// Payload octets sent since the start.
    pub octet_count: u32,
    /// Reception report blocks.
    pub blocks: ReportBlocks,
}

impl SenderReport {
    /// Packet type.
    pub const PT: u8 = 200;

    /// Parses one SR packet (the first packet of `pkt`).
    pub fn parse(pkt: &[u8]) -> Result<Self, RtcpError> {
        let (count, body) = parse_header(pkt, Self::PT)?;
        if body.len() < 24 {
            return Err(RtcpError::Malformed);
        }
        let word = |i: usize| u32::from_be_bytes([body[i], body[i + 1], body[i + 2], body[i + 3]]);
        Ok(Self {
            ssrc: word(0),
            ntp: NtpTime(((word(4) as u64) << 32) | word(8) as u64),
            rtp_timestamp: word(12),
            packet_count: word(16),
            octet_count: word(20),
            blocks: ReportBlocks::parse(count, &body[24..])?,
        })
    }

    /// Wire length.
    pub fn len(&self) -> usize {
        28 + self.blocks.len() * ReportBlock::LEN
    }

    /// Always false: a report has at least its header.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes the packet into `out`, returning its length.
    pub fn write(&self, out: &mut [u8]) -> Result<usize, RtcpError> {
        let len = self.len();
        write_header(out, self.blocks.len(), Self::PT, len)?;
        out[4..8].copy_from_slice(&self.ssrc.to_be_bytes());
        out[8..16].copy_from_slice(&self.ntp.0.to_be_bytes());
        out[16..20].copy_from_slice(&self.rtp_timestamp.to_be_bytes());
        out[20..24].copy_from_slice(&self.packet_count.to_be_bytes());
        out[24..28].copy_from_slice(&self.octet_count.to_be_bytes());
        self.blocks.write(&mut out[28..])?;
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_known_bytes() {
        let mut sr = SenderReport {
            ssrc: 0x0102_0304,
            ntp: NtpTime(0xE000_0000_8000_0000),
            rtp_timestamp: 160,
            packet_count: 2,
            octet_count: 320,
            blocks: ReportBlocks::new(),
        };
        let mut buf = [0u8; 128];
        let n = sr.write(&mut buf).unwrap();
        assert_eq!(n, 28);
        assert_eq!(&buf[..8], &[0x80, 200, 0, 6, 1, 2, 3, 4]);
        assert_eq!(SenderReport::parse(&buf[..n]).unwrap(), sr);
        sr.blocks
            .push(ReportBlock {
                ssrc: 9,
                fraction_lost: 25,
                cumulative_lost: -3,
                highest_seq: 70_000,
                jitter: 12,
                lsr: 1,
                dlsr: 2,
            })
            .unwrap();
        let n = sr.write(&mut buf).unwrap();
        assert_eq!((n, buf[0], buf[3]), (52, 0x81, 12));
        assert_eq!(SenderReport::parse(&buf[..n]).unwrap(), sr);
        assert_eq!(sr.write(&mut buf[..51]), Err(RtcpError::OutputTooSmall));
    }

    #[test]
    fn malformed_inputs_are_errors() {
        let mut buf = [0u8; 52];
        let mut sr = SenderReport {
            ssrc: 1,
            ntp: NtpTime(0),
            rtp_timestamp: 0,
            packet_count: 0,
            octet_count: 0,
            blocks: ReportBlocks::new(),
        };
        sr.blocks.push(ReportBlock::default()).unwrap();
        let n = sr.write(&mut buf).unwrap();
        // Report count larger than the body.
        let mut bad = buf;
        bad[0] = 0x82;
        assert_eq!(SenderReport::parse(&bad[..n]), Err(RtcpError::Malformed));
        // Truncated.
        assert_eq!(
            SenderReport::parse(&buf[..n - 1]),
            Err(RtcpError::Truncated)
        );
        // Receiver report type.
        bad = buf;
        bad[1] = 201;
        assert_eq!(SenderReport::parse(&bad[..n]), Err(RtcpError::WrongType));
        // Padding count larger than the packet.
        bad = buf;
        bad[0] |= 0x20;
        bad[n - 1] = 200;
        assert_eq!(SenderReport::parse(&bad[..n]), Err(RtcpError::Malformed));
        // Every prefix and every single-byte corruption is handled.
        for i in 0..n {
            let _ = SenderReport::parse(&buf[..i]);
            for v in [0u8, 0x1F, 0xFF] {
                let mut c = buf;
                c[i] = v;
                let _ = SenderReport::parse(&c[..n]);
            }
        }
    }
}
