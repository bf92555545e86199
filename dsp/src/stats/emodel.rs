//! ITU-T G.107 E-model: transmission rating factor R and the estimated
//! MOS (conversational quality) it maps to.
//!
//! legato computes `R = R0 - Is - Id - Ie,eff + A` with every parameter at
//! its G.107 default except the two a media server measures: the one-way
//! (mouth-to-ear) delay `Ta`, and the effective equipment impairment
//! `Ie,eff` from the codec and the packet loss. With defaults,
//! `R0 - Is - Idte - Idle = 93.2` (the G.107 default rating), and the
//! delay term is the G.107 (7-28) `Idd`:
//!
//! ```text
//! Idd = 0                                                       Ta <= 100 ms
//! Idd = 25 { (1 + X^6)^(1/6) - 3 (1 + (X/3)^6)^(1/6) + 2 },    X = log2(Ta / 100)
//! Ie,eff = Ie + (95 - Ie) · Ppl / (Ppl / BurstR + Bpl)           (7-29)
//! MOS = 1 + 0.035 R + R (R - 60)(100 - R) · 7e-6,  0 < R < 100   (B-4)
//! ```
//!
//! This runs once per statistics interval, not per frame, so it uses
//! floating point.

/// Codec impairment values: `Ie` and the packet-loss robustness `Bpl`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CodecImpairment {
    /// Equipment impairment factor with no loss.
    pub ie: f64,
    /// Packet-loss robustness factor.
    pub bpl: f64,
}

impl CodecImpairment {
    /// G.711 with packet-loss concealment (G.113 Appendix I: Ie 0,
    /// Bpl 25.1).
    pub const G711_PLC: Self = Self { ie: 0.0, bpl: 25.1 };
    /// G.711 without concealment (G.113 Appendix I: Ie 0, Bpl 4.3).
    pub const G711: Self = Self { ie: 0.0, bpl: 4.3 };
    /// G.722 at 64 kbit/s with concealment. G.107's narrowband scale has
    /// no entry for it; legato assumes G.711's values (its narrowband part
    /// is at least as good), so the estimate is conservative.
    pub const G722: Self = Self { ie: 0.0, bpl: 25.1 };
    /// Opus. Not in G.113; legato assumes Ie 0 and Bpl 30 (Opus has
    /// built-in concealment comparable to or better than G.711 PLC).
    pub const OPUS: Self = Self { ie: 0.0, bpl: 30.0 };
}

/// Inputs of one E-model evaluation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EModel {
    /// The codec's impairment values.
    pub codec: CodecImpairment,
    /// One-way mouth-to-ear delay in milliseconds (network one-way delay,
    /// commonly RTT / 2, plus jitter-buffer and codec delay).
    pub delay_ms: f64,
    /// Packet-loss probability in percent (0..=100).
    pub loss_percent: f64,
    /// Burst ratio (1 for random loss).
    pub burst_ratio: f64,
}

impl EModel {
    /// The G.107 default rating with no delay and no impairment.
    pub const R_DEFAULT: f64 = 93.2;

    /// The transmission rating factor R (0..=100 in practice).
    pub fn r_factor(&self) -> f64 {
        let idd = delay_impairment(self.delay_ms);
        let ppl = self.loss_percent.clamp(0.0, 100.0);
        let burst = if self.burst_ratio > 0.0 {
            self.burst_ratio
        } else {
            1.0
        };
        let ie = self.codec.ie;
        let ie_eff = ie + (95.0 - ie) * ppl / (ppl / burst + self.codec.bpl);
        (Self::R_DEFAULT - idd - ie_eff).clamp(0.0, 100.0)
    }

    /// The estimated MOS (1.0..=4.5).
    pub fn mos(&self) -> f64 {
        mos_from_r(self.r_factor())
    }
}

/// G.107 Annex B: MOS from R.
pub fn mos_from_r(r: f64) -> f64 {
    if r <= 0.0 {
        1.0
    } else if r >= 100.0 {
        4.5
    } else {
        1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7.0e-6
    }
}

/// G.107 delay impairment `Idd` for a one-way delay in ms.
pub fn delay_impairment(ta_ms: f64) -> f64 {
    if ta_ms <= 100.0 {
        return 0.0;
    }
    let x = (ta_ms / 100.0).log2();
    25.0 * ((1.0 + x.powi(6)).powf(1.0 / 6.0) - 3.0 * (1.0 + (x / 3.0).powi(6)).powf(1.0 / 6.0)
        + 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, eps: f64) -> bool {
        (a - b).abs() <= eps
    }

    #[test]
    fn known_points() {
        // Default rating maps to the familiar 4.41 MOS.
        let m = EModel {
            codec: CodecImpairment::G711_PLC,
            delay_ms: 0.0,
            loss_percent: 0.0,
            burst_ratio: 1.0,
        };
        assert!(close(m.r_factor(), 93.2, 1e-9));
        assert!(close(m.mos(), 4.409, 0.001), "{}", m.mos());
        // Annex B table points.
        let table = [
            (0.0, 1.0),
            (50.0, 2.575),
            (60.0, 3.1),
            (70.0, 3.597),
            (80.0, 4.024),
            (90.0, 4.339),
            (100.0, 4.5),
        ];
        for (r, mos) in table {
            assert!(close(mos_from_r(r), mos, 0.001), "R {r}: {}", mos_from_r(r));
        }
        // Idd: 0 up to 100 ms, then growing steeply (values from the formula
        // evaluated independently).
        assert_eq!(delay_impairment(100.0), 0.0);
        assert!(
            close(delay_impairment(200.0), 3.044, 0.001),
            "{}",
            delay_impairment(200.0)
        );
        assert!(
            close(delay_impairment(400.0), 24.070, 0.001),
            "{}",
            delay_impairment(400.0)
        );
        // Loss: 2 % random loss on G.711 with PLC costs 95·2/27.1 ≈ 7.01.
        let lossy = EModel {
            loss_percent: 2.0,
            ..m
        };
        assert!(close(lossy.r_factor(), 93.2 - 95.0 * 2.0 / 27.1, 1e-9));
        // Without PLC the same loss is far worse.
        let no_plc = EModel {
            codec: CodecImpairment::G711,
            ..lossy
        };
        assert!(no_plc.mos() < lossy.mos() - 0.7);
        // Total loss floors at MOS 1.
        let dead = EModel {
            loss_percent: 100.0,
            delay_ms: 2000.0,
            ..m
        };
        assert_eq!(dead.mos(), 1.0);
    }
}
