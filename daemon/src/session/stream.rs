//! The outgoing RTP stream of a leg that relays packets from a source: SSRC,
//! sequence numbers and timestamps rewritten so the far end sees one
//! continuous stream across source switches and source restarts.

use std::time::{Duration, Instant};

use crate::rtp::RtpHeader;

/// Mapping of one source stream (leg slot + SSRC) into the output stream.
#[derive(Clone, Copy, Debug)]
struct Mapping {
    source: u32,
    ssrc: u32,
    seq_delta: u16,
    ts_delta: u32,
}

/// State of a relayed output stream.
#[derive(Debug)]
pub(crate) struct OutStream {
    pub(crate) ssrc: u32,
    next_seq: u16,
    last_ts: u32,
    last_sent: Option<Instant>,
    /// Timestamp step between the last two packets sent (one frame), so a
    /// new source never starts inside the previous packet's audio.
    last_step: u32,
    mapping: Option<Mapping>,
}

/// Rewritten header fields for one relayed packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rewritten {
    pub(crate) marker: bool,
    pub(crate) sequence: u16,
    pub(crate) timestamp: u32,
}

impl OutStream {
    /// Reads what [`OutStream::map`] uses (see `Leg::warm`).
    pub(crate) fn warm(&self) -> u64 {
        u64::from(self.next_seq)
            ^ u64::from(self.last_ts)
            ^ u64::from(self.last_sent.is_some())
            ^ self.mapping.as_ref().map_or(0, |m| u64::from(m.source))
    }

    /// A new stream with the given SSRC and random-looking initial
    /// sequence number and timestamp (RFC 3550 §5.1 recommends random
    /// starts).
    pub(crate) fn new(ssrc: u32, initial_seq: u16, initial_ts: u32) -> Self {
        Self {
            ssrc,
            next_seq: initial_seq,
            last_ts: initial_ts,
            last_sent: None,
            last_step: 0,
            mapping: None,
        }
    }

    /// Forgets the current source mapping: the next packet starts a new
    /// mapping (used when the route changes).
    pub(crate) fn reset_source(&mut self) {
        self.mapping = None;
    }

    /// Maps a packet of source `source` (a leg slot) into the output stream
    /// at `now`. A new source or SSRC
    /// continues the sequence where the output left off and advances the
    /// timestamp by the wall time elapsed since the last packet sent, at
    /// `clock_rate` Hz, but at least by one frame (the last packet's
    /// duration, 20 ms if unknown), and sets the marker bit (RFC 3551 §4.1:
    /// start of a talkspurt).
    pub(crate) fn map(
        &mut self,
        now: Instant,
        source: u32,
        header: &RtpHeader,
        clock_rate: u32,
    ) -> Rewritten {
        let (ssrc, seq, ts) = (header.ssrc, header.sequence, header.timestamp);
        let mut marker = header.marker;
        let mapping = match self.mapping {
            Some(m) if m.source == source && m.ssrc == ssrc => m,
            _ => {
                let ts_next = match self.last_sent {
                    Some(at) => {
                        let elapsed = samples(now.saturating_duration_since(at), clock_rate);
                        let frame = match self.last_step {
                            0 => clock_rate / 50,
                            step => step,
                        };
                        self.last_ts.wrapping_add(elapsed.max(frame).max(1))
                    }
                    None => self.last_ts,
                };
                let m = Mapping {
                    source,
                    ssrc,
                    seq_delta: self.next_seq.wrapping_sub(seq),
                    ts_delta: ts_next.wrapping_sub(ts),
                };
                self.mapping = Some(m);
                marker = true;
                m
            }
        };
        let sequence = seq.wrapping_add(mapping.seq_delta);
        let timestamp = ts.wrapping_add(mapping.ts_delta);
        let step = timestamp.wrapping_sub(self.last_ts);
        // A frame's duration is the step between consecutive packets; steps
        // across losses or above one second say nothing about it.
        if sequence == self.next_seq && step > 0 && step < clock_rate {
            self.last_step = step;
        }
        if sequence.wrapping_sub(self.next_seq) as i16 >= 0 {
            self.next_seq = sequence.wrapping_add(1);
        }
        if step as i32 >= 0 {
            self.last_ts = timestamp;
        }
        self.last_sent = Some(now);
        Rewritten {
            marker,
            sequence,
            timestamp,
        }
    }
}

/// Whole samples in `d` at `rate` Hz, saturating at u32::MAX.
fn samples(d: Duration, rate: u32) -> u32 {
    let n = d.as_micros().saturating_mul(u128::from(rate)) / 1_000_000;
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(ssrc: u32, sequence: u16, timestamp: u32) -> RtpHeader {
        RtpHeader {
            marker: false,
            payload_type: 0,
            sequence,
            timestamp,
            ssrc,
            payload_offset: 12,
            payload_len: 160,
        }
    }

    #[test]
    fn continuous_across_source_switch() {
        let t0 = Instant::now();
        let mut out = OutStream::new(7, 65_530, 4_294_967_000);
        // Source 1: seq 100.., ts 1000.. every 20 ms.
        let mut last = None;
        for i in 0..10u16 {
            let r = out.map(
                t0 + Duration::from_millis(20 * u64::from(i)),
                1,
                &h(0xaaaa, 100 + i, 1000 + 160 * u32::from(i)),
                8000,
            );
            assert_eq!(r.marker, i == 0);
            if let Some((s, t)) = last {
                assert_eq!(r.sequence, u16::wrapping_add(s, 1));
                assert_eq!(r.timestamp, u32::wrapping_add(t, 160));
            }
            last = Some((r.sequence, r.timestamp));
        }
        let (s, t) = last.unwrap();
        // Switch to source 2 with unrelated numbering, 20 ms later.
        let r = out.map(t0 + Duration::from_millis(200), 2, &h(0xbbbb, 9, 77), 8000);
        assert!(r.marker);
        assert_eq!(r.sequence, s.wrapping_add(1));
        assert_eq!(r.timestamp, t.wrapping_add(160));
        let r2 = out.map(
            t0 + Duration::from_millis(220),
            2,
            &h(0xbbbb, 10, 237),
            8000,
        );
        assert!(!r2.marker);
        assert_eq!(r2.sequence, s.wrapping_add(2));
        assert_eq!(r2.timestamp, t.wrapping_add(320));
    }

    #[test]
    fn reordered_packets_keep_their_place_and_gap_advances_time() {
        let t0 = Instant::now();
        let mut out = OutStream::new(1, 10, 0);
        let a = out.map(t0, 1, &h(5, 50, 8000), 8000);
        let c = out.map(t0, 1, &h(5, 52, 8320), 8000);
        let b = out.map(t0, 1, &h(5, 51, 8160), 8000);
        assert_eq!((a.sequence, b.sequence, c.sequence), (10, 11, 12));
        // A new SSRC right away starts one frame (160 samples) later.
        let e = out.map(t0, 1, &h(7, 0, 0), 8000);
        assert_eq!(e.timestamp, c.timestamp + 160);
        let c = e;
        // New SSRC one second later: timestamp advances by 8000 samples.
        let d = out.map(t0 + Duration::from_secs(1), 1, &h(6, 0, 0), 8000);
        assert_eq!(d.sequence, 14);
        assert_eq!(d.timestamp, c.timestamp + 8000);
    }
}
