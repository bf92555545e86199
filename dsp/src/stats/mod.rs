//! RTP/RTCP statistics (RFC 3550) and a call-quality estimate (ITU-T
//! G.107 E-model).
//!
//! - [`receiver`]: per-source reception statistics: extended highest
//!   sequence number, cumulative and fractional loss, interarrival jitter
//!   (RFC 3550 §6.4.1, appendices A.1, A.3, A.8).
//! - [`report_block`], [`sr`], [`rr`]: RTCP report blocks, sender and
//!   receiver reports, built into and parsed from caller buffers.
//! - [`rtt`]: round-trip time from LSR/DLSR (§6.4.1).
//! - [`emodel`]: R-factor and MOS per codec.

pub mod emodel;
pub mod receiver;
pub mod report_block;
pub mod rr;
pub mod sr;

use core::time::Duration;

pub use emodel::{CodecImpairment, EModel};
pub use receiver::ReceiverStats;
pub use report_block::ReportBlock;
pub use rr::ReceiverReport;
pub use sr::SenderReport;

/// A 64-bit NTP timestamp (seconds since 1900 in the high 32 bits, binary
/// fraction in the low 32). Wall-clock time is always passed in; nothing
/// here reads a clock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NtpTime(pub u64);

impl NtpTime {
    /// Seconds between 1900-01-01 (NTP era 0) and 1970-01-01 (Unix epoch).
    pub const UNIX_OFFSET: u64 = 2_208_988_800;

    /// The NTP time of a duration since the Unix epoch.
    pub fn from_unix(since_epoch: Duration) -> Self {
        let secs = since_epoch.as_secs().wrapping_add(Self::UNIX_OFFSET);
        let frac = ((since_epoch.subsec_nanos() as u64) << 32) / 1_000_000_000;
        Self((secs << 32) | frac)
    }

    /// The middle 32 bits, as carried in LSR and used for RTT (units of
    /// 1/65536 s).
    pub fn middle32(self) -> u32 {
        (self.0 >> 16) as u32
    }
}

/// Errors from RTCP parsing and building.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RtcpError {
    /// Shorter than its header or its length field says.
    Truncated,
    /// Version is not 2.
    BadVersion,
    /// Not the packet type asked for.
    WrongType,
    /// Padding or report count inconsistent with the length.
    Malformed,
    /// The output buffer is too small.
    OutputTooSmall,
    /// More than 31 report blocks.
    TooManyBlocks,
}

impl core::fmt::Display for RtcpError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::Truncated => "rtcp packet truncated",
            Self::BadVersion => "rtcp version is not 2",
            Self::WrongType => "unexpected rtcp packet type",
            Self::Malformed => "malformed rtcp packet",
            Self::OutputTooSmall => "output buffer too small",
            Self::TooManyBlocks => "more than 31 report blocks",
        })
    }
}

impl std::error::Error for RtcpError {}

/// Round-trip time seen by a sender that receives a report block at
/// `arrival` (RFC 3550 §6.4.1: `A - LSR - DLSR`, in units of 1/65536 s).
/// `None` when the block carries no LSR (no SR received yet) or the result
/// would be negative (clock skew or a bogus block).
pub fn rtt(arrival: NtpTime, lsr: u32, dlsr: u32) -> Option<Duration> {
    if lsr == 0 {
        return None;
    }
    let a = arrival.middle32();
    let r = a.wrapping_sub(lsr).wrapping_sub(dlsr);
    if r > 0x8000_0000 {
        return None;
    }
    Some(Duration::from_nanos((r as u64 * 1_000_000_000) >> 16))
}

/// Iterates the packets of a compound RTCP datagram, yielding
/// `(packet type, whole packet bytes)`; stops at the first malformed
/// header with an error.
pub fn compound(datagram: &[u8]) -> impl Iterator<Item = Result<(u8, &[u8]), RtcpError>> {
    let mut rest = datagram;
    core::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let r = split_packet(rest).map(|(pkt, tail)| {
            rest = tail;
            (pkt[1], pkt)
        });
        if r.is_err() {
            rest = &[];
        }
        Some(r)
    })
}

/// Splits one RTCP packet off the front of `buf`.
fn split_packet(buf: &[u8]) -> Result<(&[u8], &[u8]), RtcpError> {
    let hdr = buf.get(..4).ok_or(RtcpError::Truncated)?;
    if hdr[0] >> 6 != 2 {
        return Err(RtcpError::BadVersion);
    }
    let len = (u16::from_be_bytes([hdr[2], hdr[3]]) as usize + 1) * 4;
    if buf.len() < len {
        return Err(RtcpError::Truncated);
    }
    Ok(buf.split_at(len))
}

/// Validates the common header of one packet of type `pt` and returns
/// (report count, body without header and padding).
fn parse_header(pkt: &[u8], pt: u8) -> Result<(usize, &[u8]), RtcpError> {
    let (pkt, _) = split_packet(pkt)?;
    if pkt[1] != pt {
        return Err(RtcpError::WrongType);
    }
    let mut end = pkt.len();
    if pkt[0] & 0x20 != 0 {
        let pad = pkt[end - 1] as usize;
        if pad == 0 || pad > end - 4 {
            return Err(RtcpError::Malformed);
        }
        end -= pad;
    }
    Ok(((pkt[0] & 0x1F) as usize, &pkt[4..end]))
}

fn write_header(out: &mut [u8], count: usize, pt: u8, len: usize) -> Result<(), RtcpError> {
    if out.len() < len {
        return Err(RtcpError::OutputTooSmall);
    }
    out[0] = 0x80 | count as u8;
    out[1] = pt;
    out[2..4].copy_from_slice(&((len / 4 - 1) as u16).to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtt_table() {
        // RFC 3550 §6.4.1 example: A = 0xb710:8000 (46864.500 s),
        // LSR = 0xb705:2000 (46853.125 s), DLSR = 0x0005:4000 (5.250 s),
        // RTT = 6.125 s.
        let a = NtpTime((0xB710_8000u64) << 16);
        assert_eq!(
            rtt(a, 0xB705_2000, 0x0005_4000),
            Some(Duration::from_millis(6125))
        );
        assert_eq!(rtt(a, 0, 0), None);
        assert_eq!(rtt(a, 0xB710_8000, 0x0001_0000), None);
        // Wraps across the 32-bit boundary.
        let a = NtpTime(0x0000_0000_1000_0000);
        assert_eq!(
            rtt(a, 0xFFFF_F000, 0),
            Some(Duration::from_nanos((0x2000u64 * 1_000_000_000) >> 16))
        );
    }

    #[test]
    fn ntp_from_unix() {
        let t = NtpTime::from_unix(Duration::new(1, 500_000_000));
        assert_eq!(t.0 >> 32, NtpTime::UNIX_OFFSET + 1);
        assert_eq!(t.0 as u32, 0x8000_0000);
    }

    #[test]
    fn compound_iteration_stops_on_garbage() {
        let mut buf = [0u8; 64];
        let rr = ReceiverReport::new(0x1234);
        let n = rr.write(&mut buf).unwrap();
        let m = rr.write(&mut buf[n..]).unwrap();
        let items: Vec<_> = compound(&buf[..n + m]).collect();
        assert_eq!(items.len(), 2);
        assert!(items.iter().all(|r| matches!(r, Ok((201, _)))));
        buf[n + m] = 0x40;
        let items: Vec<_> = compound(&buf[..n + m + 4]).collect();
        assert_eq!(items.last(), Some(&Err(RtcpError::BadVersion)));
    }
}
