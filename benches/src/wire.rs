//! The probe packets: a 12-byte RTP header (PCMU, payload type 0) and a
//! 160-byte payload whose first 20 bytes carry what the receiver needs to
//! measure the relay: a magic, the stream, the generator's sequence number
//! and the send time. legatod rewrites the RTP header only, so the payload
//! arrives as sent.

use std::time::{SystemTime, UNIX_EPOCH};

/// Bytes of one probe datagram: 12 header + 160 payload (20 ms of PCMU).
pub const PACKET_LEN: usize = 172;
/// Fixed RTP header length.
pub const RTP_HEADER_LEN: usize = 12;
/// RTP timestamp increment per packet (20 ms at 8 kHz).
pub const SAMPLES_PER_PACKET: u32 = 160;
/// Marks a probe payload.
const MAGIC: [u8; 4] = *b"LGT1";
/// Offset of the send time in the datagram.
const TIME_AT: usize = RTP_HEADER_LEN + 12;

/// What a probe payload says about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    /// Stream index: `2 * call + direction`.
    pub stream: u32,
    /// Generator sequence number within the stream (never wraps in a run).
    pub seq: u32,
    /// Send time, ns since the Unix epoch (`CLOCK_REALTIME`, the clock of
    /// the kernel's `SO_TIMESTAMPNS` receive stamps).
    pub sent_ns: u64,
}

/// Writes a whole probe (header and payload) for `stream`/`seq`, with a
/// zero send time; [`stamp`] sets it right before the datagram is sent.
pub fn build(buf: &mut [u8; PACKET_LEN], stream: u32, seq: u32, ssrc: u32) {
    buf[0] = 0x80;
    buf[1] = 0; // PCMU, no marker
    buf[2..4].copy_from_slice(&(seq as u16).to_be_bytes());
    buf[4..8].copy_from_slice(&seq.wrapping_mul(SAMPLES_PER_PACKET).to_be_bytes());
    buf[8..12].copy_from_slice(&ssrc.to_be_bytes());
    let p = RTP_HEADER_LEN;
    buf[p..p + 4].copy_from_slice(&MAGIC);
    buf[p + 4..p + 8].copy_from_slice(&stream.to_le_bytes());
    buf[p + 8..p + 12].copy_from_slice(&seq.to_le_bytes());
    buf[TIME_AT..TIME_AT + 8].fill(0);
    // µ-law silence for the rest of the 20 ms frame.
    buf[TIME_AT + 8..].fill(0xff);
}

/// Rewrites a built probe's payload type and timestamp for a codec whose
/// packets advance the RTP clock by `ts_step` (0: [`SAMPLES_PER_PACKET`]).
pub fn set_format(buf: &mut [u8; PACKET_LEN], pt: u8, seq: u32, ts_step: u32) {
    let step = if ts_step == 0 {
        SAMPLES_PER_PACKET
    } else {
        ts_step
    };
    buf[1] = pt & 0x7f;
    buf[4..8].copy_from_slice(&seq.wrapping_mul(step).to_be_bytes());
}

/// Replaces the probe payload with `payload` (at most 160 bytes; longer is
/// cut), returning the datagram length.
pub fn set_payload(buf: &mut [u8; PACKET_LEN], payload: &[u8]) -> usize {
    let n = payload.len().min(PACKET_LEN - RTP_HEADER_LEN);
    buf[RTP_HEADER_LEN..RTP_HEADER_LEN + n].copy_from_slice(&payload[..n]);
    RTP_HEADER_LEN + n
}

/// Sets the send time of a built probe.
pub fn stamp(buf: &mut [u8], sent_ns: u64) {
    if let Some(field) = buf.get_mut(TIME_AT..TIME_AT + 8) {
        field.copy_from_slice(&sent_ns.to_le_bytes());
    }
}

/// Reads a probe back; `None` for anything that is not one.
pub fn parse(datagram: &[u8]) -> Option<Probe> {
    if datagram.len() != PACKET_LEN || datagram[0] >> 6 != 2 {
        return None;
    }
    let p = RTP_HEADER_LEN;
    if datagram[p..p + 4] != MAGIC {
        return None;
    }
    let word = |at: usize| {
        u32::from_le_bytes([
            datagram[at],
            datagram[at + 1],
            datagram[at + 2],
            datagram[at + 3],
        ])
    };
    let mut time = [0u8; 8];
    time.copy_from_slice(&datagram[TIME_AT..TIME_AT + 8]);
    Some(Probe {
        stream: word(p + 4),
        seq: word(p + 8),
        sent_ns: u64::from_le_bytes(time),
    })
}

/// Now, in ns since the Unix epoch (`CLOCK_REALTIME`, read through the vDSO).
pub fn realtime_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut buf = [0u8; PACKET_LEN];
        build(&mut buf, 7, 70_000, 0xdead_beef);
        stamp(&mut buf, 1_234_567_890_123);
        assert_eq!(
            parse(&buf),
            Some(Probe {
                stream: 7,
                seq: 70_000,
                sent_ns: 1_234_567_890_123
            })
        );
        // RTP header: PT 0, 16-bit sequence, timestamp in 160-sample steps.
        assert_eq!(buf[1], 0);
        assert_eq!(u16::from_be_bytes([buf[2], buf[3]]), 70_000u32 as u16);
        assert_eq!(
            u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
            70_000 * 160
        );
        assert_eq!(parse(&buf[..100]), None);
        buf[RTP_HEADER_LEN] = b'X';
        assert_eq!(parse(&buf), None);
    }
}
