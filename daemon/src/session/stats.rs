//! What GetStatistics reports for a leg: its RTP counters, its RTCP view
//! (loss, jitter, RTT, what the peer reports), its jitter buffer and
//! concealment, its codec, and an ITU-T G.107 E-model MOS estimate.
//!
//! The MOS is computed once, when the snapshot is built, from figures of
//! the receive direction (what the leg hears from its peer):
//!
//! - loss: the RTCP fraction lost since our last report
//!   ([`RtcpStats::fraction_lost`]), as random loss (burst ratio 1);
//! - one-way delay: jitter-buffer delay plus half the RTCP round-trip time
//!   (0 while RTT is unknown); codec and packetisation delay are not added;
//! - codec impairment: legato-dsp's G.711/G.722/Opus constants, chosen by
//!   codec name; another codec is rated as G.711 with concealment.
//!
//! There is no MOS before any RTP was received (nothing to rate).

use std::time::Duration;

use legato_dsp::stats::{CodecImpairment, EModel};

use super::Counters;
use super::rtcp::RtcpStats;

/// The codec a leg uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CodecInfo {
    /// Encoding name as in `a=rtpmap` ("PCMU", "G722", "opus", ...).
    pub(crate) name: &'static str,
    /// RTP clock rate in Hz.
    pub(crate) clock_rate: u32,
    /// Negotiated payload type.
    pub(crate) payload_type: u8,
}

impl CodecInfo {
    /// The E-model impairment values for this codec.
    pub(crate) fn impairment(&self) -> CodecImpairment {
        let name = self.name;
        if name.eq_ignore_ascii_case("PCMU") || name.eq_ignore_ascii_case("PCMA") {
            CodecImpairment::G711_PLC
        } else if name.eq_ignore_ascii_case("G722") {
            CodecImpairment::G722
        } else if name.eq_ignore_ascii_case("opus") {
            CodecImpairment::OPUS
        } else {
            // No G.113 entry known to legato: rated like G.711 with PLC.
            CodecImpairment::G711_PLC
        }
    }
}

/// Jitter-buffer figures of a leg; zero for a relay leg, which has none.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct JitterBufferStats {
    /// Current buffering delay, in milliseconds.
    pub(crate) delay_ms: f64,
    /// Delay the buffer adapts towards, in milliseconds.
    pub(crate) target_ms: f64,
}

/// Media statistics of one leg, as GetStatistics returns them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct MediaStats {
    /// The leg's RTP/RTCP packet counters.
    pub(crate) counters: Counters,
    /// The leg's RTCP view: reception statistics, RTT, the peer's reports.
    pub(crate) rtcp: RtcpStats,
    /// Jitter buffer delay (zero without a buffer).
    pub(crate) jitter_buffer: JitterBufferStats,
    /// Frames the decoder concealed (packet-loss concealment).
    pub(crate) concealed_frames: u64,
    /// The codec, if media was negotiated.
    pub(crate) codec: Option<CodecInfo>,
    /// E-model MOS estimate (1.0..=4.5); `None` before any RTP arrived.
    pub(crate) mos: Option<f64>,
}

impl MediaStats {
    /// A snapshot from its parts; computes the MOS (see the module docs).
    pub(crate) fn new(
        counters: Counters,
        rtcp: RtcpStats,
        jitter_buffer: JitterBufferStats,
        concealed_frames: u64,
        codec: Option<CodecInfo>,
    ) -> Self {
        let mos = (rtcp.packets_expected > 0).then(|| {
            let rtt = rtcp.rtt.unwrap_or(Duration::ZERO);
            EModel {
                codec: codec.map_or(CodecImpairment::G711_PLC, |c| c.impairment()),
                delay_ms: jitter_buffer.delay_ms.max(0.0) + rtt.as_secs_f64() * 1000.0 / 2.0,
                loss_percent: rtcp.fraction_lost * 100.0,
                burst_ratio: 1.0,
            }
            .mos()
        });
        Self {
            counters,
            rtcp,
            jitter_buffer,
            concealed_frames,
            codec,
            mos,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::session::rtcp::RtcpSession;

    fn rtcp(expected: u64, fraction_lost: f64, rtt_ms: Option<u64>) -> RtcpStats {
        let mut s = RtcpSession::new(1, "x", 8000, 1, Instant::now()).stats(Instant::now());
        s.packets_expected = expected;
        s.fraction_lost = fraction_lost;
        s.rtt = rtt_ms.map(Duration::from_millis);
        s
    }

    fn mos(codec: &'static str, loss: f64, jb_ms: f64, rtt_ms: Option<u64>) -> f64 {
        let codec = CodecInfo {
            name: codec,
            clock_rate: 8000,
            payload_type: 0,
        };
        let jb = JitterBufferStats {
            delay_ms: jb_ms,
            target_ms: jb_ms,
        };
        MediaStats::new(
            Counters::default(),
            rtcp(100, loss, rtt_ms),
            jb,
            0,
            Some(codec),
        )
        .mos
        .unwrap()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 0.005
    }

    #[test]
    fn mos_values() {
        // No loss, short delay: the G.107 default rating R 93.2.
        assert!(close(mos("PCMU", 0.0, 40.0, Some(100)), 4.41));
        // 100 ms one-way is still free; beyond it delay costs.
        assert!(close(mos("pcma", 0.0, 50.0, Some(100)), 4.41));
        // 2 % loss on G.711 with PLC: R = 93.2 - 95 * 2 / 27.1 = 86.19.
        let r = 93.2 - 95.0 * 2.0 / 27.1;
        let expect = 1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7.0e-6;
        assert!(close(mos("PCMU", 0.02, 20.0, None), expect));
        // Opus is more robust to the same loss; G.722 rated as G.711 PLC.
        assert!(mos("opus", 0.05, 20.0, None) > mos("PCMU", 0.05, 20.0, None));
        assert!(close(
            mos("G722", 0.05, 20.0, None),
            mos("PCMU", 0.05, 20.0, None)
        ));
        // 400 ms one-way (jitter buffer 100 + RTT 600 / 2): Idd 24.07.
        let r = 93.2 - 24.07;
        let expect = 1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7.0e-6;
        assert!(close(mos("PCMU", 0.0, 100.0, Some(600)), expect));
        // Everything lost: R = 93.2 - 95 * 100 / 125.1 = 17.26.
        let r = 93.2 - 95.0 * 100.0 / 125.1;
        let expect = 1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7.0e-6;
        assert!(close(mos("PCMU", 1.0, 0.0, None), expect));
        assert!(expect < 1.3);
    }

    #[test]
    fn no_mos_without_media() {
        let s = MediaStats::new(
            Counters::default(),
            rtcp(0, 0.0, None),
            JitterBufferStats::default(),
            0,
            None,
        );
        assert_eq!(s.mos, None);
        let unknown = CodecInfo {
            name: "L16",
            clock_rate: 16_000,
            payload_type: 96,
        };
        assert_eq!(unknown.impairment(), CodecImpairment::G711_PLC);
    }
}
