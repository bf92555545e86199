//! Goertzel filters: single DFT bins computed sample by sample.
//!
//! The detectors in this crate all need the energy, and often the phase, of
//! a handful of known frequencies. A Goertzel filter gives one DFT bin for
//! two multiply-adds per sample, and [`GoertzelBank`] runs `N` of them in
//! lock step so the compiler can vectorise the inner loop.
//!
//! Two views of the result are offered:
//!
//! - [`Goertzel::power`]: the mean-square of the sinusoid at the filter's
//!   frequency over the block, `A²/2` for `A·cos(ωn+φ)` on the bin. It is
//!   directly comparable with the block's mean-square energy and with
//!   [`dbm0_to_power`].
//! - [`GoertzelBank::finish_block`]: the complex bin value with its phase
//!   referred to an absolute sample index (stream start), so that
//!   consecutive short blocks can be summed coherently into a longer DFT, or
//!   compared in phase to measure a frequency offset.

/// Sample rate every detector in this crate runs at, in Hz.
pub const SAMPLE_RATE: f32 = 8000.0;

/// Level of a full-scale sine in dBm0 under the G.711 convention
/// (ITU-T G.711 §5: the digital milliwatt is 3.14 dB below full scale).
#[allow(
    clippy::approx_constant,
    reason = "3.14 dB is the G.711 level offset, not π"
)]
pub const FULL_SCALE_SINE_DBM0: f32 = 3.14;

/// Peak amplitude of a sine at `dbm0` dBm0 in 16-bit linear samples.
///
/// `amplitude(3.14) == 32767.0`; 0 dBm0 is about 22 780.
pub fn dbm0_to_amplitude(dbm0: f32) -> f32 {
    32767.0 * 10f32.powf((dbm0 - FULL_SCALE_SINE_DBM0) / 20.0)
}

/// Mean-square value of a sine at `dbm0` dBm0 (amplitude²/2).
pub fn dbm0_to_power(dbm0: f32) -> f32 {
    let a = dbm0_to_amplitude(dbm0);
    a * a / 2.0
}

/// Level in dBm0 of a sinusoid whose mean-square value is `power`.
///
/// Returns a very low level (−200 dBm0) for zero power instead of −∞.
pub fn power_to_dbm0(power: f32) -> f32 {
    if power <= 0.0 {
        return -200.0;
    }
    10.0 * (power / dbm0_to_power(0.0)).log10()
}

/// One Goertzel filter over blocks of any length.
#[derive(Debug, Clone)]
pub struct Goertzel {
    omega: f64,
    coeff: f32,
    cos: f32,
    sin: f32,
    s1: f32,
    s2: f32,
    len: u32,
}

impl Goertzel {
    /// A filter tuned to `freq_hz` at [`SAMPLE_RATE`].
    pub fn new(freq_hz: f32) -> Self {
        let w = 2.0 * std::f64::consts::PI * f64::from(freq_hz) / f64::from(SAMPLE_RATE);
        Self {
            omega: w,
            coeff: (2.0 * w.cos()) as f32,
            cos: w.cos() as f32,
            sin: w.sin() as f32,
            s1: 0.0,
            s2: 0.0,
            len: 0,
        }
    }

    /// Feeds samples into the current block.
    pub fn update(&mut self, samples: &[i16]) {
        let (mut s1, mut s2) = (self.s1, self.s2);
        for &x in samples {
            let s0 = f32::from(x) + self.coeff * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        self.s1 = s1;
        self.s2 = s2;
        self.len = self.len.saturating_add(samples.len() as u32);
    }

    /// Number of samples in the current block.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// True when no sample has been fed since the last reset.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The DFT bin of the current block, phase referred to the block's first
    /// sample: `Σ x[n]·e^{-jωn}` as `(re, im)`.
    pub fn dft(&self) -> (f32, f32) {
        dft_from_state(self.s1, self.s2, self.cos, self.sin, self.omega, self.len)
    }

    /// Mean-square of the bin's sinusoid over the current block (`A²/2`).
    pub fn power(&self) -> f32 {
        if self.len == 0 {
            return 0.0;
        }
        let (s1, s2) = (self.s1, self.s2);
        let mag2 = s1 * s1 + s2 * s2 - self.coeff * s1 * s2;
        let n = self.len as f32;
        2.0 * mag2 / (n * n)
    }

    /// Starts a new block.
    pub fn reset(&mut self) {
        self.s1 = 0.0;
        self.s2 = 0.0;
        self.len = 0;
    }
}

/// `N` Goertzel filters fed the same samples, with phase tracking so that
/// block results can be combined coherently across blocks.
///
/// Each block's complex result is referred to absolute sample index 0 (the
/// first sample ever fed): for a steady tone exactly on a bin, consecutive
/// blocks give the same phase, and the sum of the block values equals the DFT
/// of the concatenated blocks.
#[derive(Debug, Clone)]
pub struct GoertzelBank<const N: usize> {
    coeff: [f32; N],
    cos: [f32; N],
    sin: [f32; N],
    s1: [f32; N],
    s2: [f32; N],
    len: u32,
    /// `ω` per filter, radians per sample.
    omega: [f64; N],
    /// `e^{-jω·block_start}` per filter, kept in f64 and renormalised.
    phasor: [(f64, f64); N],
    /// Block length the cached `step` belongs to.
    step_len: u32,
    /// `e^{-jω·step_len}` per filter.
    step: [(f64, f64); N],
}

impl<const N: usize> GoertzelBank<N> {
    /// A bank tuned to `freqs` (Hz) at [`SAMPLE_RATE`].
    pub fn new(freqs: [f32; N]) -> Self {
        let mut bank = Self {
            coeff: [0.0; N],
            cos: [0.0; N],
            sin: [0.0; N],
            s1: [0.0; N],
            s2: [0.0; N],
            len: 0,
            omega: [0.0; N],
            phasor: [(1.0, 0.0); N],
            step_len: 0,
            step: [(1.0, 0.0); N],
        };
        for (i, &f) in freqs.iter().enumerate() {
            let w = 2.0 * std::f64::consts::PI * f64::from(f) / f64::from(SAMPLE_RATE);
            bank.omega[i] = w;
            bank.coeff[i] = (2.0 * w.cos()) as f32;
            bank.cos[i] = w.cos() as f32;
            bank.sin[i] = w.sin() as f32;
        }
        bank
    }

    /// Feeds samples into the current block of every filter.
    #[inline]
    pub fn update(&mut self, samples: &[i16]) {
        let mut s1 = self.s1;
        let mut s2 = self.s2;
        for &x in samples {
            let x = f32::from(x);
            for i in 0..N {
                let s0 = x + self.coeff[i] * s1[i] - s2[i];
                s2[i] = s1[i];
                s1[i] = s0;
            }
        }
        self.s1 = s1;
        self.s2 = s2;
        self.len = self.len.saturating_add(samples.len() as u32);
    }

    /// Number of samples in the current block.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// True when the current block holds no sample yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Ends the current block: writes each filter's complex bin value
    /// `Σ x[m]·e^{-jωm}` over the block's absolute sample indices `m` (phase
    /// referred to the first sample ever fed) into `out`, and starts the
    /// next block.
    #[allow(
        clippy::needless_range_loop,
        reason = "seven parallel arrays indexed together"
    )]
    pub fn finish_block(&mut self, out: &mut [(f32, f32); N]) {
        let len = self.len;
        if len != self.step_len {
            for i in 0..N {
                let (s, c) = (self.omega[i] * f64::from(len)).sin_cos();
                self.step[i] = (c, -s);
            }
            self.step_len = len;
        }
        for i in 0..N {
            // y = s[len] - e^{-jω}·s[len-1] (one extra zero input) equals
            // e^{jω·len}·Σ x[n]e^{-jωn}; the absolute bin value is therefore
            // y·e^{-jω(start+len)}.
            let (s1, s2) = (self.s1[i], self.s2[i]);
            let yr = f64::from(self.cos[i] * s1 - s2);
            let yi = f64::from(self.sin[i] * s1);
            let (pr, pi) = self.phasor[i];
            let (sr, si) = self.step[i];
            let (mut er, mut ei) = (pr * sr - pi * si, pr * si + pi * sr);
            let mag = (er * er + ei * ei).sqrt();
            if mag > 0.0 {
                er /= mag;
                ei /= mag;
            }
            out[i] = ((yr * er - yi * ei) as f32, (yr * ei + yi * er) as f32);
            self.phasor[i] = (er, ei);
        }
        self.s1 = [0.0; N];
        self.s2 = [0.0; N];
        self.len = 0;
    }

    /// Ends the current block, returning only each filter's power
    /// (mean-square of its sinusoid, `A²/2`) in `out`, and starts the next.
    #[allow(
        clippy::needless_range_loop,
        reason = "parallel arrays indexed together"
    )]
    pub fn finish_block_power(&mut self, out: &mut [f32; N]) {
        let len = self.len;
        let n = len.max(1) as f32;
        for i in 0..N {
            let (s1, s2) = (self.s1[i], self.s2[i]);
            let mag2 = s1 * s1 + s2 * s2 - self.coeff[i] * s1 * s2;
            out[i] = 2.0 * mag2 / (n * n);
            // Keep the absolute phase reference current.
            let (s, c) = (self.omega[i] * f64::from(len)).sin_cos();
            let (pr, pi) = self.phasor[i];
            self.phasor[i] = (pr * c + pi * s, pi * c - pr * s);
        }
        self.s1 = [0.0; N];
        self.s2 = [0.0; N];
        self.len = 0;
    }
}

/// Complex DFT `Σ_{n<len} x[n]·e^{-jωn}` from the Goertzel state after `len`
/// samples (`s1 = s[len-1]`, `s2 = s[len-2]`).
fn dft_from_state(s1: f32, s2: f32, cos: f32, sin: f32, omega: f64, len: u32) -> (f32, f32) {
    // y = s[len] - e^{-jω} s[len-1] with s[len] = 2cos·s1 - s2 (a zero input)
    // equals e^{jω·len}·X.
    let yr = cos * s1 - s2;
    let yi = sin * s1;
    let (ws, wc) = (omega * f64::from(len)).sin_cos();
    let (wc, ws) = (wc as f32, ws as f32);
    (yr * wc + yi * ws, yi * wc - yr * ws)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn direct_dft(x: &[i16], f: f64, start: u64) -> (f64, f64) {
        let w = 2.0 * std::f64::consts::PI * f / 8000.0;
        let mut re = 0.0;
        let mut im = 0.0;
        for (n, &v) in x.iter().enumerate() {
            let a = w * (start as f64 + n as f64);
            re += f64::from(v) * a.cos();
            im -= f64::from(v) * a.sin();
        }
        (re, im)
    }

    fn tone(f: f64, amp: f64, phase: f64, len: usize) -> Vec<i16> {
        (0..len)
            .map(|n| {
                (amp * (2.0 * std::f64::consts::PI * f * n as f64 / 8000.0 + phase).cos()).round()
                    as i16
            })
            .collect()
    }

    #[test]
    fn power_matches_sine_mean_square() {
        for &(f, dbm0) in &[(697.0, 0.0), (1633.0, -20.0), (425.0, -10.0)] {
            let x = tone(f, f64::from(dbm0_to_amplitude(dbm0)), 0.3, 400);
            let mut g = Goertzel::new(f as f32);
            g.update(&x);
            let level = power_to_dbm0(g.power());
            assert!((level - dbm0).abs() < 0.1, "{f} Hz: {level} vs {dbm0}");
        }
    }

    #[test]
    fn dft_matches_direct_sum() {
        let x = tone(941.0, 9000.0, 1.1, 123);
        let mut g = Goertzel::new(950.0);
        g.update(&x);
        let (re, im) = g.dft();
        let (dre, dim) = direct_dft(&x, 950.0, 0);
        assert!((f64::from(re) - dre).abs() < 2.0 && (f64::from(im) - dim).abs() < 2.0);
    }

    #[test]
    fn bank_blocks_are_phase_coherent() {
        let x = tone(770.0, 5000.0, 0.7, 400);
        let mut bank = GoertzelBank::new([697.0, 770.0]);
        let mut sum = [(0.0f64, 0.0f64); 2];
        let mut out = [(0.0, 0.0); 2];
        for chunk in x.chunks(40) {
            bank.update(chunk);
            bank.finish_block(&mut out);
            for i in 0..2 {
                sum[i].0 += f64::from(out[i].0);
                sum[i].1 += f64::from(out[i].1);
            }
        }
        for (i, f) in [697.0, 770.0].into_iter().enumerate() {
            let (re, im) = direct_dft(&x, f, 0);
            assert!((sum[i].0 - re).abs() < 20.0, "{f}: {} vs {re}", sum[i].0);
            assert!((sum[i].1 - im).abs() < 20.0, "{f}: {} vs {im}", sum[i].1);
        }
        // A later block alone equals the direct DFT referred to sample 0.
        let mut bank = GoertzelBank::new([770.0]);
        bank.update(&x[..200]);
        bank.finish_block(&mut [(0.0, 0.0)]);
        bank.update(&x[200..240]);
        let mut one = [(0.0, 0.0)];
        bank.finish_block(&mut one);
        let (re, im) = direct_dft(&x[200..240], 770.0, 200);
        assert!((f64::from(one[0].0) - re).abs() < 5.0 && (f64::from(one[0].1) - im).abs() < 5.0);
    }

    #[test]
    fn level_conversions_round_trip() {
        assert!((dbm0_to_amplitude(FULL_SCALE_SINE_DBM0) - 32767.0).abs() < 0.01);
        assert!((power_to_dbm0(dbm0_to_power(-26.0)) + 26.0).abs() < 1e-3);
        assert_eq!(power_to_dbm0(0.0), -200.0);
    }
}
