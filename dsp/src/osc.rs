//! Sine oscillator shared by the tone generators.

/// A sine oscillator: a unit phasor rotated once per sample, renormalised
/// regularly so its amplitude never drifts. Deterministic and free of
/// per-sample trigonometry.
#[derive(Debug, Clone)]
pub(crate) struct Osc {
    re: f64,
    im: f64,
    step_re: f64,
    step_im: f64,
    count: u32,
}

impl Osc {
    /// An oscillator at `freq_hz` (8 kHz sample rate) starting at phase 0
    /// (the first sample is `sin(0) = 0`).
    pub(crate) fn new(freq_hz: f64) -> Self {
        let w = 2.0 * std::f64::consts::PI * freq_hz / 8000.0;
        Self {
            re: 1.0,
            im: 0.0,
            step_re: w.cos(),
            step_im: w.sin(),
            count: 0,
        }
    }

    /// Returns `sin(ωn)` for the current sample and advances.
    #[inline]
    pub(crate) fn next_sample(&mut self) -> f64 {
        let out = self.im;
        let re = self.re * self.step_re - self.im * self.step_im;
        let im = self.re * self.step_im + self.im * self.step_re;
        self.re = re;
        self.im = im;
        self.count += 1;
        if self.count == 256 {
            self.count = 0;
            let mag = (self.re * self.re + self.im * self.im).sqrt();
            self.re /= mag;
            self.im /= mag;
        }
        out
    }
}

/// Converts a float sample to i16 with saturation (no wrap-around).
#[inline]
pub(crate) fn saturate(x: f64) -> i16 {
    x.round().clamp(-32768.0, 32767.0) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_sin_over_a_long_run() {
        let mut osc = Osc::new(1336.0);
        for n in 0..80_000u32 {
            let want = (2.0 * std::f64::consts::PI * 1336.0 * f64::from(n) / 8000.0).sin();
            let got = osc.next_sample();
            assert!((got - want).abs() < 1e-6, "n={n}");
        }
    }
}
