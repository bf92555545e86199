//! The RTCP reception report block (RFC 3550 §6.4.1).

use super::RtcpError;

/// One reception report block: what a receiver says about one source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReportBlock {
    /// SSRC of the source reported on.
    pub ssrc: u32,
    /// Fraction of packets lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost (24-bit signed on the wire; duplicates can
    /// make it negative).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received (cycles << 16 | seq).
    pub highest_seq: u32,
    /// Interarrival jitter in RTP timestamp units.
    pub jitter: u32,
    /// Last SR timestamp: middle 32 bits of its NTP time, 0 if none.
    pub lsr: u32,
    /// Delay since that SR, in 1/65536 s.
    pub dlsr: u32,
}

impl ReportBlock {
    /// Wire length in bytes.
    pub const LEN: usize = 24;

    /// Parses a block from the first 24 bytes of `b`.
    pub fn parse(b: &[u8]) -> Result<Self, RtcpError> {
        let b = b.get(..Self::LEN).ok_or(RtcpError::Truncated)?;
        let word = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let lost = word(4) & 0x00FF_FFFF;
        // Sign-extend 24 bits.
        let cumulative_lost = ((lost << 8) as i32) >> 8;
        Ok(Self {
            ssrc: word(0),
            fraction_lost: b[4],
            cumulative_lost,
            highest_seq: word(8),
            jitter: word(12),
            lsr: word(16),
            dlsr: word(20),
        })
    }

    /// Writes the block into the first 24 bytes of `out`; the cumulative
    /// loss is clamped to the 24-bit signed range.
    pub fn write(&self, out: &mut [u8]) -> Result<usize, RtcpError> {
        let out = out.get_mut(..Self::LEN).ok_or(RtcpError::OutputTooSmall)?;
        let lost = self.cumulative_lost.clamp(-0x80_0000, 0x7F_FFFF) as u32 & 0x00FF_FFFF;
        out[0..4].copy_from_slice(&self.ssrc.to_be_bytes());
        out[4..8].copy_from_slice(&(((self.fraction_lost as u32) << 24) | lost).to_be_bytes());
        out[8..12].copy_from_slice(&self.highest_seq.to_be_bytes());
        out[12..16].copy_from_slice(&self.jitter.to_be_bytes());
        out[16..20].copy_from_slice(&self.lsr.to_be_bytes());
        out[20..24].copy_from_slice(&self.dlsr.to_be_bytes());
        Ok(Self::LEN)
    }
}

/// Up to 31 report blocks, stored inline (no allocation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReportBlocks {
    blocks: [ReportBlock; MAX_BLOCKS],
    len: usize,
}

impl ReportBlocks {
    /// No blocks.
    pub const fn new() -> Self {
        Self {
            blocks: [ReportBlock {
                ssrc: 0,
                fraction_lost: 0,
                cumulative_lost: 0,
                highest_seq: 0,
                jitter: 0,
                lsr: 0,
                dlsr: 0,
            }; MAX_BLOCKS],
            len: 0,
        }
    }

    /// Appends a block; fails beyond 31.
    pub fn push(&mut self, b: ReportBlock) -> Result<(), RtcpError> {
        let slot = self
            .blocks
            .get_mut(self.len)
            .ok_or(RtcpError::TooManyBlocks)?;
        *slot = b;
        self.len += 1;
        Ok(())
    }

    /// The blocks.
    pub fn as_slice(&self) -> &[ReportBlock] {
        &self.blocks[..self.len]
    }

    /// Number of blocks.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no blocks.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Parses `count` blocks from `body`.
    pub(super) fn parse(count: usize, body: &[u8]) -> Result<Self, RtcpError> {
        if body.len() < count * ReportBlock::LEN {
            return Err(RtcpError::Malformed);
        }
        let mut out = Self::new();
        for i in 0..count {
            out.push(ReportBlock::parse(&body[i * ReportBlock::LEN..])?)?;
        }
        Ok(out)
    }

    pub(super) fn write(&self, out: &mut [u8]) -> Result<usize, RtcpError> {
        for (i, b) in self.as_slice().iter().enumerate() {
            b.write(&mut out[i * ReportBlock::LEN..])?;
        }
        Ok(self.len * ReportBlock::LEN)
    }
}

impl Default for ReportBlocks {
    fn default() -> Self {
        Self::new()
    }
}

/// At most 31 blocks fit the 5-bit report count.
pub const MAX_BLOCKS: usize = 31;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_round_trip_and_sign() {
        let cases = [0, 1, -1, 0x7F_FFFF, -0x80_0000];
        for lost in cases {
            let b = ReportBlock {
                ssrc: 7,
                fraction_lost: 64,
                cumulative_lost: lost,
                highest_seq: 0x1_0005,
                jitter: 33,
                lsr: 9,
                dlsr: 10,
            };
            let mut buf = [0u8; 24];
            b.write(&mut buf).unwrap();
            assert_eq!(ReportBlock::parse(&buf).unwrap(), b);
        }
        let b = ReportBlock {
            cumulative_lost: 10_000_000,
            ..Default::default()
        };
        let mut buf = [0u8; 24];
        b.write(&mut buf).unwrap();
        assert_eq!(ReportBlock::parse(&buf).unwrap().cumulative_lost, 0x7F_FFFF);
        assert_eq!(ReportBlock::parse(&buf[..23]), Err(RtcpError::Truncated));
        let mut blocks = ReportBlocks::new();
        for _ in 0..31 {
            blocks.push(b).unwrap();
        }
        assert_eq!(blocks.push(b), Err(RtcpError::TooManyBlocks));
    }
}
