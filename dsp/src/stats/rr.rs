//! RTCP receiver report (RFC 3550 §6.4.2, packet type 201).

use super::report_block::{ReportBlock, ReportBlocks};
use super::{RtcpError, parse_header, write_header};

/// A receiver report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReceiverReport {
    /// SSRC of the reporter.
    pub ssrc: u32,
    /// Reception report blocks.
    pub blocks: ReportBlocks,
}

impl ReceiverReport {
    /// Packet type.
    pub const PT: u8 = 201;

    /// A report from `ssrc` with no blocks.
    pub fn new(ssrc: u32) -> Self {
        Self {
            ssrc,
            blocks: ReportBlocks::new(),
        }
    }

    /// Parses one RR packet (the first packet of `pkt`).
    pub fn parse(pkt: &[u8]) -> Result<Self, RtcpError> {
        let (count, body) = parse_header(pkt, Self::PT)?;
        let ssrc = body.get(..4).ok_or(RtcpError::Malformed)?;
        Ok(Self {
            ssrc: u32::from_be_bytes([ssrc[0], ssrc[1], ssrc[2], ssrc[3]]),
            blocks: ReportBlocks::parse(count, &body[4..])?,
        })
    }

    /// Wire length.
    pub fn len(&self) -> usize {
        8 + self.blocks.len() * ReportBlock::LEN
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
        self.blocks.write(&mut out[8..])?;
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_blocks() {
        let mut rr = ReceiverReport::new(0xCAFE_BABE);
        let mut buf = [0u8; 8 + 24 * 31];
        assert_eq!(rr.write(&mut buf), Ok(8));
        assert_eq!(&buf[..4], &[0x80, 201, 0, 1]);
        for i in 0..31 {
            rr.blocks
                .push(ReportBlock {
                    ssrc: i,
                    jitter: i * 3,
                    ..Default::default()
                })
                .unwrap();
        }
        let n = rr.write(&mut buf).unwrap();
        assert_eq!(n, buf.len());
        assert_eq!(ReceiverReport::parse(&buf).unwrap(), rr);
        assert_eq!(ReceiverReport::parse(&buf[..4]), Err(RtcpError::Truncated));
    }
}
