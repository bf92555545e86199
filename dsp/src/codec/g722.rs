//! G.722 (ITU-T G.722, 11/1988) 64 kbit/s sub-band ADPCM, 16 kHz audio.
//!
//! Written from the algorithm description of the standard:
//!
//! - a 24-tap quadrature mirror filter pair splits 16 kHz input into two
//!   8 kHz sub-bands (and the receive QMF joins them again);
//! - the lower band is coded with 6-bit adaptive PCM of the prediction
//!   error (quantiser `QUANTL`, inverse quantisers with the 6-bit table
//!   for output and the 4-bit table for the predictor, log-domain scale
//!   factor `LOGSCL`/`SCALEL`);
//! - the higher band with 2-bit ADPCM (`QUANTH`, `LOGSCH`/`SCALEH`);
//! - both bands share the adaptive predictor: a 2-pole section
//!   (`UPPOL1`, `UPPOL2`, `FILTEP`) and a 6-zero section (`UPZERO`,
//!   `FILTEZ`).
//!
//! One code byte carries one sample pair: `ih << 6 | il`. The RTP clock is
//! 8 kHz by historical error (RFC 3551 §4.5.2) but the audio is 16 kHz, and
//! this codec consumes and produces 16 kHz PCM: 20 ms is 320 samples in,
//! 160 bytes out. Only the 64 kbit/s mode is implemented (56 and 48 kbit/s
//! modes differ in the decoder's inverse quantiser only).
//!
//! Concealment repeats the last decoded frame, attenuated 6 dB per lost
//! frame and muted after five, and leaves the ADPCM state untouched; the
//! predictor re-converges on the next good packet.

use super::plc::RepeatFade;
use super::{CodecError, Decoder, Encoder};

/// G.722 encoder (16 kHz PCM in, 64 kbit/s codes out).
#[derive(Clone, Debug)]
pub struct G722Encoder {
    qmf: [i32; 24],
    low: Band,
    high: Band,
}

/// G.722 decoder (64 kbit/s codes in, 16 kHz PCM out).
#[derive(Clone, Debug)]
pub struct G722Decoder {
    qmf: [i32; 24],
    low: Band,
    high: Band,
    plc: RepeatFade<MAX_FRAME>,
}

impl Default for G722Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl G722Encoder {
    /// A fresh encoder in the standard's reset state.
    pub fn new() -> Self {
        Self {
            qmf: [0; 24],
            low: Band::new(DET_LOW),
            high: Band::new(DET_HIGH),
        }
    }

    /// Encodes one sample pair.
    #[inline]
    fn encode_pair(&mut self, x0: i16, x1: i16) -> u8 {
        // Transmit QMF: newest sample at index 0.
        self.qmf.copy_within(0..22, 2);
        self.qmf[1] = x0 as i32;
        self.qmf[0] = x1 as i32;
        let (mut a, mut b) = (0i32, 0i32);
        for i in 0..12 {
            a += QMF[2 * i] * self.qmf[2 * i];
            b += QMF[2 * i + 1] * self.qmf[2 * i + 1];
        }
        let xl = sat((a + b) >> 14);
        let xh = sat((a - b) >> 14);

        // Lower band: 6-bit quantiser of the prediction error.
        let el = sat(xl - self.low.s);
        let wd = if el >= 0 { el } else { -(el + 1) };
        let mut mil = 1;
        while mil < 30 && wd >= (Q6[mil] * self.low.det) >> 12 {
            mil += 1;
        }
        let il = if el < 0 { ILN[mil] } else { ILP[mil] } as usize;
        let ilr = il >> 2;
        let dlt = (self.low.det * QM4[ilr]) >> 15;
        self.low.adapt_scale_low(ilr);
        self.low.update(dlt);

        // Higher band: 2-bit quantiser.
        let eh = sat(xh - self.high.s);
        let wd = if eh >= 0 { eh } else { -(eh + 1) };
        let mih = if wd >= (564 * self.high.det) >> 12 {
            2
        } else {
            1
        };
        let ih = if eh < 0 { IHN[mih] } else { IHP[mih] } as usize;
        let dh = (self.high.det * QM2[ih]) >> 15;
        self.high.adapt_scale_high(ih);
        self.high.update(dh);

        ((ih << 6) | il) as u8
    }
}

impl Encoder for G722Encoder {
    /// Encodes an even number of 16 kHz samples into half as many bytes.
    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        if !pcm.len().is_multiple_of(2) {
            return Err(CodecError::BadFrameSize);
        }
        let n = pcm.len() / 2;
        let out = out.get_mut(..n).ok_or(CodecError::OutputTooSmall)?;
        for (o, pair) in out.iter_mut().zip(pcm.chunks_exact(2)) {
            *o = self.encode_pair(pair[0], pair[1]);
        }
        Ok(n)
    }

    fn sample_rate(&self) -> u32 {
        16_000
    }
}

impl Default for G722Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl G722Decoder {
    /// A fresh decoder in the standard's reset state.
    pub fn new() -> Self {
        Self {
            qmf: [0; 24],
            low: Band::new(DET_LOW),
            high: Band::new(DET_HIGH),
            plc: RepeatFade::new(),
        }
    }

    /// Decodes one code byte into a sample pair.
    #[inline]
    fn decode_pair(&mut self, code: u8) -> (i16, i16) {
        let il = (code & 0x3F) as usize;
        let ih = (code >> 6) as usize;

        // Lower band: 6-bit inverse quantiser for the output, 4-bit for the
        // predictor.
        let ilr = il >> 2;
        let dl = (self.low.det * QM6[il]) >> 15;
        let rl = (self.low.s + dl).clamp(-16_384, 16_383);
        let dlt = (self.low.det * QM4[ilr]) >> 15;
        self.low.adapt_scale_low(ilr);
        self.low.update(dlt);

        let dh = (self.high.det * QM2[ih]) >> 15;
        let rh = (self.high.s + dh).clamp(-16_384, 16_383);
        self.high.adapt_scale_high(ih);
        self.high.update(dh);

        // Receive QMF.
        self.qmf.copy_within(0..22, 2);
        self.qmf[1] = rl - rh;
        self.qmf[0] = rl + rh;
        let (mut a, mut b) = (0i32, 0i32);
        for i in 0..12 {
            a += QMF[2 * i] * self.qmf[2 * i + 1];
            b += QMF[2 * i + 1] * self.qmf[2 * i];
        }
        (sat(a >> 11) as i16, sat(b >> 11) as i16)
    }
}

impl Decoder for G722Decoder {
    /// Decodes each byte into two 16 kHz samples. Every byte value is a
    /// valid code.
    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        let n = payload.len() * 2;
        let out = out.get_mut(..n).ok_or(CodecError::OutputTooSmall)?;
        for (pair, &c) in out.chunks_exact_mut(2).zip(payload) {
            let (a, b) = self.decode_pair(c);
            pair[0] = a;
            pair[1] = b;
        }
        self.plc.remember(&out[..n]);
        Ok(n)
    }

    fn conceal(&mut self, out: &mut [i16]) -> Result<usize, CodecError> {
        self.plc.conceal(out);
        Ok(out.len())
    }

    fn sample_rate(&self) -> u32 {
        16_000
    }
}

/// State of one sub-band's ADPCM: scale factor and adaptive predictor.
#[derive(Clone, Copy, Debug)]
struct Band {
    /// Log scale factor (`NBL` / `NBH`).
    nb: i32,
    /// Linear scale factor (`DETL` / `DETH`).
    det: i32,
    /// Signal estimate `S`.
    s: i32,
    /// Zero-section output `SZ`.
    sz: i32,
    /// Pole coefficients a1, a2 (index 1, 2).
    a: [i32; 3],
    /// Zero coefficients b1..b6.
    b: [i32; 7],
    /// Quantised difference signal, d[0] newest.
    d: [i32; 7],
    /// Reconstructed signal r[0..3].
    r: [i32; 3],
    /// Partially reconstructed signal p[0..3].
    p: [i32; 3],
}

impl Band {
    fn new(det: i32) -> Self {
        Self {
            nb: 0,
            det,
            s: 0,
            sz: 0,
            a: [0; 3],
            b: [0; 7],
            d: [0; 7],
            r: [0; 3],
            p: [0; 3],
        }
    }

    /// `LOGSCL` + `SCALEL`.
    fn adapt_scale_low(&mut self, ilr: usize) {
        let nb = ((self.nb * 127) >> 7) + WL[RL42[ilr]];
        self.nb = nb.clamp(0, 18_432);
        self.det = scale(self.nb, 8);
    }

    /// `LOGSCH` + `SCALEH`.
    fn adapt_scale_high(&mut self, ih: usize) {
        let nb = ((self.nb * 127) >> 7) + WH[RH2[ih]];
        self.nb = nb.clamp(0, 22_528);
        self.det = scale(self.nb, 10);
    }

    /// `RECONS`, `PARREC`, `UPPOL2`, `UPPOL1`, `UPZERO`, `DELAYA`,
    /// `FILTEP`, `FILTEZ`, `PREDIC` for difference signal `d`.
    fn update(&mut self, d: i32) {
        self.d[0] = d;
        self.r[0] = sat(self.s + d);
        self.p[0] = sat(self.sz + d);

        // UPPOL2.
        let sg0 = self.p[0] >> 15;
        let sg1 = self.p[1] >> 15;
        let sg2 = self.p[2] >> 15;
        let wd1 = sat(self.a[1] << 2);
        let wd2 = if sg0 == sg1 { -wd1 } else { wd1 }.min(32_767);
        let wd3 = (wd2 >> 7) + if sg0 == sg2 { 128 } else { -128 } + ((self.a[2] * 32_512) >> 15);
        self.a[2] = wd3.clamp(-12_288, 12_288);

        // UPPOL1.
        let wd1 = if sg0 == sg1 { 192 } else { -192 };
        let wd2 = (self.a[1] * 32_640) >> 15;
        let lim = sat(15_360 - self.a[2]);
        self.a[1] = sat(wd1 + wd2).clamp(-lim, lim);

        // UPZERO.
        let step = if d == 0 { 0 } else { 128 };
        let sgd = d >> 15;
        for i in 1..7 {
            let wd2 = if self.d[i] >> 15 == sgd { step } else { -step };
            self.b[i] = sat(wd2 + ((self.b[i] * 32_640) >> 15));
        }

        // DELAYA.
        self.d.copy_within(0..6, 1);
        self.r[2] = self.r[1];
        self.r[1] = self.r[0];
        self.p[2] = self.p[1];
        self.p[1] = self.p[0];

        // FILTEP, FILTEZ, PREDIC.
        let sp =
            sat(((self.a[1] * sat(self.r[1] << 1)) >> 15)
                + ((self.a[2] * sat(self.r[2] << 1)) >> 15));
        let mut sz = 0;
        for i in 1..7 {
            sz += (self.b[i] * sat(self.d[i] << 1)) >> 15;
        }
        self.sz = sat(sz);
        self.s = sat(sp + self.sz);
    }
}

/// `SCALEL` / `SCALEH`: linear scale factor from the log one.
fn scale(nb: i32, base: i32) -> i32 {
    let wd1 = ((nb >> 6) & 31) as usize;
    let wd2 = base - (nb >> 11);
    let wd3 = if wd2 < 0 {
        ILB[wd1] << -wd2
    } else {
        ILB[wd1] >> wd2
    };
    wd3 << 2
}

#[inline]
fn sat(x: i32) -> i32 {
    x.clamp(i16::MIN as i32, i16::MAX as i32)
}

/// Longest frame kept for concealment: 60 ms at 16 kHz.
const MAX_FRAME: usize = 960;
/// Reset values of the scale factors.
const DET_LOW: i32 = 32;
const DET_HIGH: i32 = 8;

/// QMF coefficients h0..h23 (G.722 table 11), scaled by 2^13.
const QMF: [i32; 24] = [
    3, -11, -11, 53, 12, -156, 32, 362, -210, -805, 951, 3876, 3876, 951, -805, -210, 362, 32,
    -156, 12, 53, -11, -11, 3,
];

/// Lower-band quantiser decision levels (table 6, scaled by 2^3 against
/// the normalised scale factor).
const Q6: [i32; 32] = [
    0, 35, 72, 110, 150, 190, 233, 276, 323, 370, 422, 473, 530, 587, 650, 714, 786, 858, 940,
    1023, 1121, 1219, 1339, 1458, 1612, 1765, 1980, 2195, 2557, 2919, 0, 0,
];
/// 6-bit codes for negative (`ILN`) and positive (`ILP`) errors by interval.
const ILN: [u8; 32] = [
    0, 63, 62, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11,
    10, 9, 8, 7, 6, 5, 4, 0,
];
const ILP: [u8; 32] = [
    0, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47, 46, 45, 44, 43, 42, 41, 40, 39,
    38, 37, 36, 35, 34, 33, 32, 0,
];
/// 6-bit inverse quantiser output levels by code (table 7).
const QM6: [i32; 64] = [
    -136, -136, -136, -136, -24_808, -21_904, -19_008, -16_704, -14_984, -13_512, -12_280, -11_192,
    -10_232, -9_360, -8_576, -7_856, -7_192, -6_576, -6_000, -5_456, -4_944, -4_464, -4_008,
    -3_576, -3_168, -2_776, -2_400, -2_032, -1_688, -1_360, -1_040, -728, 24_808, 21_904, 19_008,
    16_704, 14_984, 13_512, 12_280, 11_192, 10_232, 9_360, 8_576, 7_856, 7_192, 6_576, 6_000,
    5_456, 4_944, 4_464, 4_008, 3_576, 3_168, 2_776, 2_400, 2_032, 1_688, 1_360, 1_040, 728, 432,
    136, -432, -136,
];
/// 4-bit inverse quantiser output levels (the predictor's view).
const QM4: [i32; 16] = [
    0, -20_456, -12_896, -8_968, -6_288, -4_240, -2_584, -1_200, 20_456, 12_896, 8_968, 6_288,
    4_240, 2_584, 1_200, 0,
];
/// Log scale factor multipliers for the lower band, by `RL42[ilr]`.
const WL: [i32; 8] = [-60, -30, 58, 172, 334, 538, 1198, 3042];
const RL42: [usize; 16] = [0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0];
/// Scale factor table: 2^(i/32) scaled by 2^11.
const ILB: [i32; 32] = [
    2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543, 2599, 2656, 2714, 2774, 2834,
    2896, 2960, 3025, 3091, 3158, 3228, 3298, 3371, 3444, 3520, 3597, 3676, 3756, 3838, 3922, 4008,
];
/// Higher band: codes, inverse quantiser levels and log multipliers.
const IHN: [u8; 3] = [0, 1, 0];
const IHP: [u8; 3] = [0, 3, 2];
const QM2: [i32; 4] = [-7408, -1616, 7408, 1616];
const WH: [i32; 3] = [0, -214, 798];
const RH2: [usize; 4] = [2, 1, 2, 1];

#[cfg(test)]
mod tests {
    use super::*;

    fn multitone(n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| {
                let t = i as f64 / 16_000.0;
                let f = |hz: f64, a: f64| a * (2.0 * core::f64::consts::PI * hz * t).sin();
                (f(300.0, 5000.0) + f(1100.0, 4000.0) + f(2300.0, 3000.0) + f(3400.0, 1500.0))
                    as i16
            })
            .collect()
    }

    /// Best SNR (dB) of `got` against `want` over delays 0..64.
    fn snr_aligned(want: &[i16], got: &[i16]) -> (f64, usize) {
        (0..64)
            .map(|d| {
                let (mut s, mut e) = (0f64, 0f64);
                for i in 1000..want.len() - 64 {
                    let w = want[i] as f64;
                    s += w * w;
                    e += (got[i + d] as f64 - w).powi(2);
                }
                (10.0 * (s / e).log10(), d)
            })
            .fold((f64::MIN, 0), |a, b| if b.0 > a.0 { b } else { a })
    }

    #[test]
    fn round_trip_multitone() {
        let pcm = multitone(16_000);
        let mut enc = G722Encoder::new();
        let mut dec = G722Decoder::new();
        let mut codes = vec![0u8; 160];
        let mut out = vec![0i16; 320];
        let mut got = Vec::new();
        for frame in pcm.chunks(320) {
            assert_eq!(enc.encode(frame, &mut codes), Ok(160));
            assert_eq!(dec.decode(&codes, &mut out), Ok(320));
            got.extend_from_slice(&out);
        }
        let (snr, delay) = snr_aligned(&pcm, &got);
        eprintln!("g722 round trip: SNR {snr:.1} dB at delay {delay}");
        assert_eq!(delay, 22);
        assert!(snr > 30.0, "SNR {snr:.1} dB");
    }

    #[test]
    fn silence_stays_quiet_and_bad_sizes_fail() {
        let mut enc = G722Encoder::new();
        let mut dec = G722Decoder::new();
        let mut codes = [0u8; 160];
        let mut out = [0i16; 320];
        for _ in 0..10 {
            enc.encode(&[0; 320], &mut codes).unwrap();
            dec.decode(&codes, &mut out).unwrap();
        }
        assert!(out.iter().all(|s| s.abs() < 16), "{:?}", &out[..8]);
        assert_eq!(
            enc.encode(&[0; 3], &mut codes),
            Err(CodecError::BadFrameSize)
        );
        assert_eq!(
            enc.encode(&[0; 322], &mut codes),
            Err(CodecError::OutputTooSmall)
        );
        assert_eq!(
            dec.decode(&[0; 161], &mut out),
            Err(CodecError::OutputTooSmall)
        );
    }

    #[test]
    fn decoder_survives_any_bytes_and_conceals() {
        let mut dec = G722Decoder::new();
        let mut out = [0i16; 512];
        let bytes: Vec<u8> = (0..=255).collect();
        for _ in 0..50 {
            dec.decode(&bytes, &mut out).unwrap();
        }
        let mut plc = [0i16; 320];
        dec.conceal(&mut plc).unwrap();
        assert_eq!(plc[0], dec.plc.first() >> 1);
    }
}
