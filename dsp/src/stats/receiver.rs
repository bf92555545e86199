//! Reception statistics for one RTP source (RFC 3550 §6.4.1, A.1, A.3,
//! A.8).

use super::NtpTime;
use super::report_block::ReportBlock;

/// Per-source reception statistics.
///
/// Feed every received RTP packet to [`handle_packet`](Self::handle_packet)
/// with its arrival time in RTP timestamp units of the caller's media
/// clock; build report blocks with [`report_block`](Self::report_block).
#[derive(Clone, Debug)]
pub struct ReceiverStats {
    ssrc: u32,
    started: bool,
    max_seq: u16,
    cycles: u32,
    base_seq: u32,
    bad_seq: Option<u16>,
    received: u64,
    expected_prior: u64,
    received_prior: u64,
    /// Jitter scaled by 16 (A.8).
    jitter_q4: u32,
    last_transit: Option<u32>,
    last_sr: Option<(u32, u64)>,
}

impl ReceiverStats {
    /// Statistics for source `ssrc`.
    pub fn new(ssrc: u32) -> Self {
        Self {
            ssrc,
            started: false,
            max_seq: 0,
            cycles: 0,
            base_seq: 0,
            bad_seq: None,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            jitter_q4: 0,
            last_transit: None,
            last_sr: None,
        }
    }

    /// Handles one received packet: `arrival` in RTP timestamp units on the
    /// media clock, and its sequence number and timestamp. Returns false
    /// for a packet A.1 does not count (first packet of a suspected
    /// restart after a large jump).
    pub fn handle_packet(&mut self, arrival: u64, seq: u16, timestamp: u32) -> bool {
        if !self.started {
            self.restart(seq);
            self.started = true;
        } else {
            let delta = seq.wrapping_sub(self.max_seq);
            if delta < MAX_DROPOUT {
                if seq < self.max_seq {
                    self.cycles = self.cycles.wrapping_add(1 << 16);
                }
                self.max_seq = seq;
            } else if delta <= u16::MAX - MAX_MISORDER + 1 {
                // A very large jump: accept it only if the next packet
                // confirms it (the source restarted its numbering).
                if self.bad_seq == Some(seq) {
                    self.restart(seq);
                } else {
                    self.bad_seq = Some(seq.wrapping_add(1));
                    return false;
                }
            }
            // Otherwise a duplicate or reordered packet: counted below.
        }
        self.received += 1;
        // Interarrival jitter (A.8), in wrapping 32-bit timestamp units.
        let transit = (arrival as u32).wrapping_sub(timestamp);
        if let Some(last) = self.last_transit {
            let d = (transit.wrapping_sub(last) as i32).unsigned_abs();
            let j = self.jitter_q4 as i64 + d as i64 - ((self.jitter_q4 as i64 + 8) >> 4);
            self.jitter_q4 = j.clamp(0, u32::MAX as i64) as u32;
        }
        self.last_transit = Some(transit);
        true
    }

    /// Records a sender report from this source: its NTP time and the local
    /// wall-clock time when it arrived (for LSR/DLSR).
    pub fn handle_sender_report(&mut self, sr_ntp: NtpTime, arrival: NtpTime) {
        self.last_sr = Some((sr_ntp.middle32(), arrival.0));
    }

    /// Extended highest sequence number received.
    pub fn extended_highest_seq(&self) -> u32 {
        self.cycles.wrapping_add(self.max_seq as u32)
    }

    /// Packets expected (A.3).
    pub fn expected(&self) -> u64 {
        if !self.started {
            return 0;
        }
        (self.cycles as u64 + self.max_seq as u64 + 1).saturating_sub(self.base_seq as u64)
    }

    /// Packets received, duplicates included.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Cumulative packets lost (negative with duplicates).
    pub fn cumulative_lost(&self) -> i64 {
        self.expected() as i64 - self.received as i64
    }

    /// Interarrival jitter in RTP timestamp units.
    pub fn jitter(&self) -> u32 {
        self.jitter_q4 >> 4
    }

    /// Builds a report block at wall-clock time `now`, and starts a new
    /// interval for the fraction lost.
    pub fn report_block(&mut self, now: NtpTime) -> ReportBlock {
        let expected = self.expected();
        let expected_interval = expected - self.expected_prior.min(expected);
        let received_interval = self.received - self.received_prior.min(self.received);
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = expected_interval as i64 - received_interval as i64;
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / expected_interval as i64).min(255) as u8
        };
        let (lsr, dlsr) = match self.last_sr {
            Some((lsr, at)) => {
                // Delay in 1/65536 s: middle 32 bits of the NTP difference.
                (lsr, (now.0.wrapping_sub(at) >> 16) as u32)
            }
            None => (0, 0),
        };
        ReportBlock {
            ssrc: self.ssrc,
            fraction_lost,
            cumulative_lost: self.cumulative_lost().clamp(-0x80_0000, 0x7F_FFFF) as i32,
            highest_seq: self.extended_highest_seq(),
            jitter: self.jitter(),
            lsr,
            dlsr,
        }
    }

    fn restart(&mut self, seq: u16) {
        self.base_seq = seq as u32;
        self.max_seq = seq;
        self.cycles = 0;
        self.bad_seq = None;
        self.received = 0;
        self.expected_prior = 0;
        self.received_prior = 0;
    }
}

/// Largest forward jump treated as loss rather than a restart (A.1).
const MAX_DROPOUT: u16 = 3000;
/// Largest backward jump treated as reordering (A.1).
const MAX_MISORDER: u16 = 100;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_and_highest_seq_across_wrap() {
        let mut s = ReceiverStats::new(5);
        let mut ts = 0u32;
        // 65530..=65535 then 0..=9, with 65533 and 4 lost and 7 duplicated.
        for seq in (65_530u32..65_546).map(|v| v as u16) {
            ts = ts.wrapping_add(160);
            if seq == 65_533 || seq == 4 {
                continue;
            }
            s.handle_packet(ts as u64, seq, ts);
            if seq == 7 {
                s.handle_packet(ts as u64, seq, ts);
            }
        }
        assert_eq!(s.extended_highest_seq(), 65_536 + 9);
        assert_eq!(s.expected(), 16);
        assert_eq!(s.received(), 15);
        assert_eq!(s.cumulative_lost(), 1);
        let b = s.report_block(NtpTime(0));
        assert_eq!(
            (b.fraction_lost, b.cumulative_lost, b.highest_seq),
            (16, 1, 65_545)
        );
        // Next interval: nothing new.
        assert_eq!(s.report_block(NtpTime(0)).fraction_lost, 0);
    }

    #[test]
    fn restart_needs_two_sequential_packets() {
        let mut s = ReceiverStats::new(5);
        for seq in 100..110u16 {
            s.handle_packet(0, seq, 0);
        }
        assert!(!s.handle_packet(0, 40_000, 0));
        assert_eq!(s.extended_highest_seq(), 109);
        assert!(s.handle_packet(0, 40_001, 0));
        assert_eq!(s.extended_highest_seq(), 40_001);
        assert_eq!(s.expected(), 1);
        assert_eq!(s.received(), 1);
    }

    #[test]
    fn jitter_constant_delay_is_zero_and_step_converges() {
        let mut s = ReceiverStats::new(5);
        for k in 0..100u32 {
            s.handle_packet(1000 + k as u64 * 160, k as u16, k * 160);
        }
        assert_eq!(s.jitter(), 0);
        // Alternate 0 / 80 units of extra delay: |D| = 80 each packet, so J
        // converges to 80.
        for k in 100..1000u32 {
            let extra = if k % 2 == 0 { 80 } else { 0 };
            s.handle_packet(1000 + k as u64 * 160 + extra, k as u16, k * 160);
        }
        assert!((78..=80).contains(&s.jitter()), "{}", s.jitter());
    }

    #[test]
    fn lsr_dlsr() {
        let mut s = ReceiverStats::new(5);
        s.handle_packet(0, 1, 0);
        let sr = NtpTime(0x0000_1234_5678_0000);
        s.handle_sender_report(sr, NtpTime(10u64 << 32));
        let b = s.report_block(NtpTime((12u64 << 32) | 0x8000_0000));
        assert_eq!((b.lsr, b.dlsr), (0x1234_5678, 0x0002_8000));
    }
}
