//! Sample-rate conversion between 8, 16 and 48 kHz (and any two rates a
//! small integer ratio apart, such as 32 and 48 kHz) in fixed chunks.
//!
//! A polyphase FIR resampler: the input is conceptually raised to the two
//! rates' least common multiple by inserting zeros (up by `L`), low-pass
//! filtered there, and every `M`-th sample kept (down by `M`); only the
//! products that survive are computed, one filter phase per output sample.
//! The filter is a linear-phase windowed sinc (Kaiser window, β for about
//! 70 dB of stop-band attenuation), designed relative to the lower of the
//! two rates `f`: pass band to 0.425·f (3.4 kHz at 8 kHz, 6.8 kHz at
//! 16 kHz), cut-off (−6 dB) at 0.4925·f, stop band from 0.56·f. A signal
//! above the lower rate's Nyquist frequency is attenuated by about 70 dB
//! before it could alias into the pass band.
//!
//! Every call takes exactly one input frame (160 samples for 20 ms at
//! 8 kHz, 320 at 16 kHz, 960 at 48 kHz) and returns exactly one output frame,
//! which is what a media clock needs. All state (the filter bank and the
//! input history, a few KiB) is allocated in [`Resampler::new`];
//! [`Resampler::process`] does not allocate.
//!
//! # Latency
//!
//! The linear-phase filter delays the signal by half its length: 16 samples
//! of the lower rate (rounded up to a whole output sample where the rates
//! need it, as 24 → 32 kHz does), so 2 ms between 8 kHz and 16 or 48 kHz
//! and 1 ms between 16 and 48 kHz ([`Resampler::delay`], checked by the
//! `latency_table` test). Equal rates copy and add no delay.

use crate::time::{ClockRate, MediaTime};

/// Errors from the resampler.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResampleError {
    /// The rate pair or frame duration cannot be set up.
    Unsupported,
    /// Input is not exactly one input frame, or output is too short.
    BadLength,
}

impl core::fmt::Display for ResampleError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::Unsupported => "unsupported resampling configuration",
            Self::BadLength => "input or output is not one frame",
        })
    }
}

impl std::error::Error for ResampleError {}

/// Largest up or down factor (`L`, `M`) accepted: 6 covers 8 ↔ 48 kHz.
const MAX_FACTOR: u32 = 6;
/// The filter's half length (its delay) in samples of the lower rate.
const HALF_LEN_AT_LOW_RATE: usize = 16;
/// Cut-off (−6 dB point) as a fraction of the lower rate.
const CUTOFF: f64 = 0.4925;
/// Kaiser β for about 70 dB of stop-band attenuation
/// (β = 0.1102·(A − 8.7), Kaiser's formula).
const KAISER_BETA: f64 = 0.1102 * (70.0 - 8.7);
/// The kernels compute this many neighbouring outputs (or, for a ratio
/// that is neither a pure up- nor a pure downsampling, this many taps) per
/// step, in independent sums the compiler keeps in vector registers.
const LANES: usize = 32;

/// How the filter is applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    /// Equal rates: a copy.
    Copy,
    /// Up by `up` (`down` is 1): `bank[p·taps..]` holds phase `p`'s taps,
    /// time-reversed.
    Up,
    /// Down by `down` (`up` is 1): the input is split into `down`
    /// interleaved streams; `bank[r·taps..]` holds the taps stream `r`
    /// meets, time-reversed.
    Down,
    /// Both factors above 1 (e.g. 32 ↔ 48 kHz): one dot product per output
    /// sample; `bank[p·taps..]` holds phase `p`'s taps, time-reversed and
    /// padded to a multiple of [`LANES`].
    Rational,
}

/// A mono fixed-chunk resampler.
pub struct Resampler {
    from: ClockRate,
    to: ClockRate,
    in_len: usize,
    out_len: usize,
    form: Form,
    /// Up factor `L` and down factor `M`: `from · L = to · M`.
    up: usize,
    down: usize,
    /// Taps per phase (per stream for [`Form::Down`]).
    taps: usize,
    /// The filter bank, laid out as [`Form`] says.
    bank: Vec<f32>,
    /// `history` samples of earlier input followed by the current frame.
    buf: Vec<f32>,
    history: usize,
    /// [`Form::Down`]'s de-interleaved input, `down` streams of
    /// `out_len + taps − 1` samples.
    streams: Vec<f32>,
    /// Delay in output samples.
    delay: usize,
}

impl core::fmt::Debug for Resampler {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Resampler")
            .field("from", &self.from)
            .field("to", &self.to)
            .field("in_len", &self.in_len)
            .field("out_len", &self.out_len)
            .field("taps", &self.taps)
            .finish_non_exhaustive()
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// The zeroth-order modified Bessel function of the first kind (its power
/// series; converges quickly for the β used here).
fn bessel_i0(x: f64) -> f64 {
    let (mut sum, mut term, mut k) = (1.0, 1.0, 1.0);
    while term > 1e-12 * sum {
        term *= (x / (2.0 * k)) * (x / (2.0 * k));
        sum += term;
        k += 1.0;
    }
    sum
}

/// `len` taps of a Kaiser-windowed sinc low-pass with cut-off `cutoff`
/// (cycles per sample), summing to `gain`.
fn lowpass(len: usize, cutoff: f64, gain: f64) -> Vec<f64> {
    let center = (len - 1) as f64 / 2.0;
    let norm = bessel_i0(KAISER_BETA);
    let mut h: Vec<f64> = (0..len)
        .map(|i| {
            let x = i as f64 - center;
            let sinc = if x == 0.0 {
                1.0
            } else {
                let a = core::f64::consts::PI * 2.0 * cutoff * x;
                a.sin() / a
            };
            let r = x / center;
            let window = bessel_i0(KAISER_BETA * (1.0 - r * r).max(0.0).sqrt()) / norm;
            sinc * window
        })
        .collect();
    let sum: f64 = h.iter().sum();
    for t in &mut h {
        *t *= gain / sum;
    }
    h
}

impl Resampler {
    /// A resampler from `from` to `to` for frames of `frame_ms`
    /// milliseconds. The two rates must be a ratio of small integers apart
    /// (up and down factors at most 6: any two of 8, 16, 24, 32 and
    /// 48 kHz), and the frame a whole number of samples at both.
    pub fn new(from: ClockRate, to: ClockRate, frame_ms: u32) -> Result<Self, ResampleError> {
        let in_len = from.samples_in_ms(frame_ms) as usize;
        let out_len = to.samples_in_ms(frame_ms) as usize;
        if in_len == 0
            || out_len == 0
            || (in_len as u64 * 1000 != from.hz() as u64 * frame_ms as u64)
            || (out_len as u64 * 1000 != to.hz() as u64 * frame_ms as u64)
        {
            return Err(ResampleError::Unsupported);
        }
        let g = gcd(from.hz(), to.hz());
        let (up, down) = (to.hz() / g, from.hz() / g);
        if up > MAX_FACTOR || down > MAX_FACTOR {
            return Err(ResampleError::Unsupported);
        }
        let (up, down) = (up as usize, down as usize);
        let mut r = Self {
            from,
            to,
            in_len,
            out_len,
            form: Form::Copy,
            up,
            down,
            taps: 0,
            bank: Vec::new(),
            buf: Vec::new(),
            history: 0,
            streams: Vec::new(),
            delay: 0,
        };
        if up == down {
            return Ok(r);
        }
        // At the common rate `from · up = to · down`, one sample of the
        // lower rate spans `max(up, down)` samples.
        let high_per_low = up.max(down);
        // Half the filter, rounded up so the delay is a whole number of
        // output samples (it already is for every pair of 8, 16, 32 and
        // 48 kHz; 24 → 32 kHz needs 66 common-rate samples, not 64).
        let half = (HALF_LEN_AT_LOW_RATE * high_per_low).next_multiple_of(down);
        let len = 2 * half + 1;
        // `h[age]`: the tap for the input `age` common-rate samples old.
        let h = lowpass(len, CUTOFF / high_per_low as f64, up as f64);
        let tap = |i: usize| h.get(i).map_or(0.0, |&t| t as f32);
        // Phase `p`'s `taps` taps, time-reversed: output n·up + p meets
        // input n − k with tap p + k·up.
        let phases = |taps: usize| -> Vec<f32> {
            (0..up)
                .flat_map(|p| (0..taps).map(move |j| (p, j)))
                .map(|(p, j)| tap(p + (taps - 1 - j) * up))
                .collect()
        };
        r.delay = half / down;
        if down == 1 {
            r.form = Form::Up;
            r.taps = len.div_ceil(up);
            r.history = r.taps - 1;
            r.bank = phases(r.taps);
        } else if up == 1 {
            // Output m meets input m·down − a with tap a. With
            // T = taps·down history-and-current samples per output, input
            // m·down − a sits at buf[m·down + T − 1 − a]: stream
            // r = (T − 1 − a) mod down, position m + (T − 1 − a) div down.
            r.form = Form::Down;
            r.taps = len.div_ceil(down);
            let span = r.taps * down;
            r.history = span - 1;
            r.bank = (0..down)
                .flat_map(|s| (0..r.taps).map(move |k| (s, k)))
                .map(|(s, k)| tap(span - 1 - (k * down + s)))
                .collect();
            r.streams = vec![0.0; down * (out_len + r.taps - 1)];
        } else {
            r.form = Form::Rational;
            r.taps = len.div_ceil(up).div_ceil(LANES) * LANES;
            r.history = r.taps - 1;
            r.bank = phases(r.taps);
        }
        r.buf = vec![0.0; r.history + in_len];
        Ok(r)
    }

    /// Input samples per call.
    pub fn input_len(&self) -> usize {
        self.in_len
    }

    /// Output samples per call.
    pub fn output_len(&self) -> usize {
        self.out_len
    }

    /// Signal delay through the resampler, at the output rate.
    pub fn delay(&self) -> MediaTime {
        MediaTime::new(self.delay as i64, self.to)
    }

    /// Clears the filter state (e.g. after a stream restart).
    pub fn reset(&mut self) {
        self.buf.fill(0.0);
    }

    /// Resamples exactly [`input_len`](Self::input_len) samples into the
    /// first [`output_len`](Self::output_len) samples of `output`,
    /// returning the output length.
    pub fn process(&mut self, input: &[i16], output: &mut [i16]) -> Result<usize, ResampleError> {
        if input.len() != self.in_len || output.len() < self.out_len {
            return Err(ResampleError::BadLength);
        }
        let output = &mut output[..self.out_len];
        if self.form == Form::Copy {
            output.copy_from_slice(input);
            return Ok(self.out_len);
        }
        for (b, &s) in self.buf[self.history..].iter_mut().zip(input) {
            *b = f32::from(s);
        }
        match self.form {
            Form::Copy => {}
            Form::Up => self.upsample(output),
            Form::Down => self.downsample(output),
            Form::Rational => self.rational(output),
        }
        self.buf.copy_within(self.in_len.., 0);
        Ok(self.out_len)
    }

    /// [`Form::Up`]: output `n·up + p` is phase `p`'s taps against
    /// `buf[n..n + taps]` (inputs `n − taps + 1 ..= n`). [`LANES`]
    /// consecutive `n` are computed together.
    fn upsample(&self, output: &mut [i16]) {
        let (up, taps) = (self.up, self.taps);
        for p in 0..up {
            let h = self.bank.get(p * taps..(p + 1) * taps).unwrap_or_default();
            let mut n = 0;
            while n + LANES <= self.in_len {
                let mut acc = [0f32; LANES];
                fir_block(&mut acc, self.buf.get(n..).unwrap_or_default(), h);
                for (i, &a) in acc.iter().enumerate() {
                    if let Some(o) = output.get_mut((n + i) * up + p) {
                        *o = to_i16(a);
                    }
                }
                n += LANES;
            }
            for n in n..self.in_len {
                let x = self.buf.get(n..).unwrap_or_default();
                if let Some(o) = output.get_mut(n * up + p) {
                    *o = to_i16(x.iter().zip(h).map(|(x, h)| x * h).sum());
                }
            }
        }
    }

    /// [`Form::Down`]: output `m` is the sum over the `down` streams of
    /// stream `r`'s taps against its samples `m..m + taps`. [`LANES`]
    /// consecutive outputs are computed together.
    fn downsample(&mut self, output: &mut [i16]) {
        let (down, taps) = (self.down, self.taps);
        let span = self.out_len + taps - 1;
        for (r, stream) in self.streams.chunks_exact_mut(span).enumerate() {
            for (s, &x) in stream.iter_mut().zip(self.buf.iter().skip(r).step_by(down)) {
                *s = x;
            }
        }
        let streams = &self.streams;
        let bank = &self.bank;
        let mut m = 0;
        while m + LANES <= self.out_len {
            let mut acc = [0f32; LANES];
            for (stream, h) in streams.chunks_exact(span).zip(bank.chunks_exact(taps)) {
                fir_block(&mut acc, stream.get(m..).unwrap_or_default(), h);
            }
            for (o, &a) in output.iter_mut().skip(m).zip(&acc) {
                *o = to_i16(a);
            }
            m += LANES;
        }
        for (m, o) in output.iter_mut().enumerate().skip(m) {
            let mut sum = 0.0;
            for (stream, h) in streams.chunks_exact(span).zip(bank.chunks_exact(taps)) {
                let x = stream.get(m..).unwrap_or_default();
                sum += x.iter().zip(h).map(|(x, h)| x * h).sum::<f32>();
            }
            *o = to_i16(sum);
        }
    }

    /// [`Form::Rational`]: output `m` sits at common-rate position
    /// `m·down`: input `n = ⌊m·down / up⌋` of this frame, phase
    /// `p = m·down mod up`, whose taps meet `buf[n..n + taps]`.
    fn rational(&self, output: &mut [i16]) {
        let (mut n, mut p) = (0, 0);
        for o in output.iter_mut() {
            let x = self.buf.get(n..n + self.taps).unwrap_or_default();
            let h = self
                .bank
                .get(p * self.taps..(p + 1) * self.taps)
                .unwrap_or_default();
            *o = to_i16(dot(x, h));
            p += self.down;
            while p >= self.up {
                p -= self.up;
                n += 1;
            }
        }
    }
}

fn to_i16(x: f32) -> i16 {
    x.round().clamp(-32768.0, 32767.0) as i16
}

/// Adds [`LANES`] outputs of the FIR filter `h` over `x` to `acc`:
/// `acc[i] += Σ_j h[j]·x[i + j]` (`x` holds at least
/// `h.len() + LANES − 1` samples; with fewer, the taps past its end are
/// skipped).
fn fir_block(acc: &mut [f32; LANES], x: &[f32], h: &[f32]) {
    for (w, &c) in x.windows(LANES).zip(h) {
        let Ok(w) = <&[f32; LANES]>::try_from(w) else {
            continue;
        };
        for i in 0..LANES {
            acc[i] += c * w[i];
        }
    }
}

/// The dot product of two equally long slices whose length is a multiple
/// of [`LANES`], in [`LANES`] independent sums.
fn dot(x: &[f32], h: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    for (xs, hs) in x.chunks_exact(LANES).zip(h.chunks_exact(LANES)) {
        for i in 0..LANES {
            acc[i] += xs[i] * hs[i];
        }
    }
    acc.iter().sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATES: [ClockRate; 3] = [ClockRate::HZ_8000, ClockRate::HZ_16000, ClockRate::HZ_48000];

    fn tone(rate: u32, n: usize, start: usize) -> Vec<i16> {
        (start..start + n)
            .map(|i| {
                let t = i as f64 / rate as f64;
                (8000.0 * (2.0 * core::f64::consts::PI * 440.0 * t).sin()
                    + 6000.0 * (2.0 * core::f64::consts::PI * 1270.0 * t).sin())
                    as i16
            })
            .collect()
    }

    #[test]
    fn latency_table() {
        for from in RATES {
            for to in RATES {
                let r = Resampler::new(from, to, 20).unwrap();
                let ms = r.delay().as_micros() as f64 / 1000.0;
                eprintln!("{} -> {} Hz: delay {ms} ms", from.hz(), to.hz());
                let want = match (from.hz().min(to.hz()), from == to) {
                    (_, true) => 0.0,
                    (8000, _) => 2.0,
                    _ => 1.0,
                };
                assert_eq!(ms, want, "{from:?} -> {to:?}");
                assert_eq!(r.input_len(), from.samples_in_ms(20) as usize);
                assert_eq!(r.output_len(), to.samples_in_ms(20) as usize);
            }
        }
    }

    #[test]
    fn multitone_passes_with_high_snr() {
        for from in RATES {
            for to in RATES {
                let mut r = Resampler::new(from, to, 20).unwrap();
                let (il, ol) = (r.input_len(), r.output_len());
                let delay = r.delay().samples() as usize;
                let mut got = Vec::new();
                let mut out = vec![0i16; ol];
                for k in 0..50 {
                    r.process(&tone(from.hz(), il, k * il), &mut out).unwrap();
                    got.extend_from_slice(&out);
                }
                let want = tone(to.hz(), got.len(), 0);
                // Skip the first 100 ms (filter settling).
                let snr = aligned_snr(&got, &want, delay, to.samples_in_ms(100) as usize);
                assert!(snr > 40.0, "{} -> {}: SNR {snr:.1} dB", from.hz(), to.hz());
            }
        }
    }

    fn sine(rate: u32, hz: f64, amp: f64, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| {
                (amp * (2.0 * core::f64::consts::PI * hz * i as f64 / rate as f64).sin()) as i16
            })
            .collect()
    }

    /// Runs `input` through `r` frame by frame.
    fn run(r: &mut Resampler, input: &[i16]) -> Vec<i16> {
        let mut out = vec![0i16; r.output_len()];
        let mut got = Vec::new();
        for frame in input.chunks_exact(r.input_len()) {
            r.process(frame, &mut out).unwrap();
            got.extend_from_slice(&out);
        }
        got
    }

    fn rms(x: &[i16]) -> f64 {
        (x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
    }

    /// Signal-to-error ratio in dB of `got` against `want` delayed by
    /// `delay` samples, from sample `skip` on.
    fn aligned_snr(got: &[i16], want: &[i16], delay: usize, skip: usize) -> f64 {
        let (mut sig, mut err) = (0f64, 0f64);
        for i in skip.max(delay)..got.len() {
            let w = f64::from(want[i - delay]);
            sig += w * w;
            err += (f64::from(got[i]) - w).powi(2);
        }
        10.0 * (sig / err).log10()
    }

    /// A `hz` sine of amplitude `amp` at `from` Hz for `ms`, resampled to
    /// `to` Hz; also the resampler's delay in output samples.
    fn resampled_sine(from: u32, to: u32, hz: f64, amp: f64, ms: u32) -> (Vec<i16>, usize) {
        let (from, to) = (ClockRate::new(from).unwrap(), ClockRate::new(to).unwrap());
        let mut r = Resampler::new(from, to, 20).unwrap();
        let got = run(
            &mut r,
            &sine(from.hz(), hz, amp, from.samples_in_ms(ms) as usize),
        );
        (got, r.delay().samples() as usize)
    }

    /// A `hz` sine of amplitude 10,000 resampled from `from` to `to` Hz for
    /// 400 ms, against the ideal sine at `to` delayed by the resampler's
    /// [`delay`](Resampler::delay): the signal-to-error ratio in dB over
    /// the last 200 ms. Images, aliases, pass-band ripple, a wrong delay
    /// and rounding all count as error.
    fn sine_snr(from: u32, to: u32, hz: f64) -> f64 {
        let (got, delay) = resampled_sine(from, to, hz, 10000.0, 400);
        let want = sine(to, hz, 10000.0, got.len());
        let snr = aligned_snr(&got, &want, delay, got.len() / 2);
        eprintln!("{from} -> {to} Hz, {hz} Hz sine: SNR {snr:.1} dB");
        snr
    }

    #[test]
    fn pass_band_edge_is_kept_and_delay_is_exact() {
        // The top of the pass band (3.4 kHz, the telephone band's edge,
        // for every pair with 8 kHz; 6.8 kHz for 16 <-> 48 kHz) comes out
        // as the same sine, delayed by exactly `delay`, the error over
        // 60 dB down (about 72 dB measured: pass-band ripple and rounding).
        for (from, to, hz) in [
            (8000, 16000, 3400.0),
            (16000, 8000, 3400.0),
            (8000, 48000, 3400.0),
            (48000, 8000, 3400.0),
            (16000, 48000, 6800.0),
            (48000, 16000, 6800.0),
        ] {
            let snr = sine_snr(from, to, hz);
            assert!(snr > 60.0, "{from} -> {to} at {hz} Hz: SNR {snr:.1} dB");
        }
    }

    #[test]
    fn no_aliasing_and_no_images() {
        // Down: a tone above the lower rate's Nyquist frequency (which would
        // fold into the pass band) is attenuated by at least 60 dB.
        for (from, to, hz) in [
            (48000, 8000, 4600.0),
            (48000, 8000, 7000.0),
            (16000, 8000, 4600.0),
            (48000, 16000, 9200.0),
        ] {
            let (got, _) = resampled_sine(from, to, hz, 20000.0, 200);
            let level = 20.0 * (rms(&got[got.len() / 2..]) / (20000.0 / 2f64.sqrt())).log10();
            eprintln!("{from} -> {to} Hz, {hz} Hz sine: {level:.1} dB");
            assert!(level < -60.0, "{from} -> {to} at {hz} Hz: {level:.1} dB");
        }
        // Up: a 1 kHz tone at 8 kHz has images at 7, 9, 15, 17 ... kHz;
        // after the resampler everything but 1 kHz is at least 60 dB down.
        for (from, to) in [(8000, 48000), (8000, 16000), (16000, 48000)] {
            let snr = sine_snr(from, to, 1000.0);
            assert!(snr > 60.0, "{from} -> {to}: images at {snr:.1} dB");
        }
    }

    #[test]
    fn frames_of_10_ms_and_other_rates() {
        // 10 ms frames give the same output as 20 ms ones (10 ms at 8 kHz
        // leaves a partial block of outputs, summed in another order).
        for (from, to) in [
            (ClockRate::HZ_8000, ClockRate::HZ_48000),
            (ClockRate::HZ_48000, ClockRate::HZ_8000),
            (ClockRate::HZ_16000, ClockRate::HZ_8000),
        ] {
            let input = tone(from.hz(), from.samples_in_ms(200) as usize, 0);
            let mut a = Resampler::new(from, to, 10).unwrap();
            let mut b = Resampler::new(from, to, 20).unwrap();
            let (x, y) = (run(&mut a, &input), run(&mut b, &input));
            assert_eq!(x.len(), y.len());
            // Equal up to the rounding of float sums taken in another order.
            let worst = x.iter().zip(&y).map(|(a, b)| (a - b).abs()).max();
            assert!(worst <= Some(1), "{from:?} -> {to:?}: {worst:?}");
        }
        // Neither rate divides the other: 32 <-> 48 kHz (up 3, down 2),
        // 24 <-> 32 kHz (up 4, down 3).
        for (from, to) in [
            (32_000, 48_000),
            (48_000, 32_000),
            (24_000, 32_000),
            (32_000, 24_000),
        ] {
            let snr = sine_snr(from, to, 1000.0);
            assert!(snr > 60.0, "{from} -> {to}: SNR {snr:.1} dB");
        }
        // Reset forgets the history.
        let mut r = Resampler::new(ClockRate::HZ_8000, ClockRate::HZ_16000, 20).unwrap();
        let mut out = [0i16; 320];
        r.process(&tone(8000, 160, 0), &mut out).unwrap();
        r.reset();
        r.process(&[0; 160], &mut out).unwrap();
        assert!(out.iter().all(|&s| s == 0));
    }

    #[test]
    fn full_scale_input_saturates_without_wrapping() {
        // A full-scale square wave overshoots (Gibbs): the output clamps.
        let square: Vec<i16> = (0..1600)
            .map(|i| {
                if (i / 20) % 2 == 0 {
                    i16::MAX
                } else {
                    i16::MIN
                }
            })
            .collect();
        for (from, to) in [
            (ClockRate::HZ_8000, ClockRate::HZ_48000),
            (ClockRate::HZ_8000, ClockRate::HZ_16000),
        ] {
            let mut r = Resampler::new(from, to, 20).unwrap();
            let got = run(&mut r, &square);
            // Where the input is high, the output is high (no wrap to negative).
            let d = r.delay().samples() as usize;
            let ratio = (to.hz() / from.hz()) as usize;
            for (i, &s) in got.iter().enumerate().skip(d) {
                let src = (i - d) / ratio;
                if src % 20 == 10 {
                    assert!((s > 0) == (square[src] > 0), "sample {i}: {s}");
                }
            }
        }
    }

    #[test]
    fn rejects_bad_lengths_and_rates() {
        let mut r = Resampler::new(ClockRate::HZ_8000, ClockRate::HZ_48000, 20).unwrap();
        let mut out = [0i16; 960];
        assert_eq!(
            r.process(&[0; 159], &mut out),
            Err(ResampleError::BadLength)
        );
        assert_eq!(
            r.process(&[0; 160], &mut out[..959]),
            Err(ResampleError::BadLength)
        );
        assert_eq!(
            Resampler::new(ClockRate::HZ_8000, ClockRate::HZ_48000, 0).err(),
            Some(ResampleError::Unsupported)
        );
        let odd = ClockRate::new(11_025).unwrap();
        assert_eq!(
            Resampler::new(odd, ClockRate::HZ_48000, 20).err(),
            Some(ResampleError::Unsupported)
        );
    }
}

/// A streaming converter between any two sample rates, for audio prepared
/// off the media path (prompts decoded from files at 44.1 or 22.05 kHz, say):
/// it allocates as it goes, unlike [`Resampler`].
///
/// Band-limited interpolation: each output sample at input position `t` is
/// `Σ x[k]·h(t − k)` over the [`Converter::HALF_TAPS`] input samples on each
/// side, with `h` a Kaiser-windowed sinc (β for about 70 dB) whose cut-off
/// follows the lower rate (0.4925 of it, as [`Resampler`]'s), read from a
/// table of 256 phases per input sample with linear interpolation between
/// phases. The output is aligned with the input (the filter's delay is
/// compensated): sample `n` of the output is the input at `n·from/to`.
///
/// When `to / gcd(from, to)` is small (every pair of common rates: 44.1 →
/// 48 kHz has 160 phases, 11.025 → 16 kHz 640), the output samples fall on
/// that many distinct phases, whose coefficients are computed once: each
/// output sample is then one dot product over contiguous input (about 20×
/// faster than evaluating the kernel per tap).
pub struct Converter {
    from: u32,
    to: u32,
    /// `h` at `PHASES` points per input sample, over `-HALF_TAPS..=HALF_TAPS`.
    table: Vec<f32>,
    /// Coefficients per output phase (`2·reach` each, scale included),
    /// when the ratio has few phases; empty otherwise.
    bank: Vec<f32>,
    /// `gcd(from, to)`.
    gcd: u32,
    /// Scale of `t` in the table's argument (below 1 when down-sampling:
    /// the kernel widens so its cut-off follows the output rate).
    scale: f64,
    /// Input not yet consumed, starting at input index `base`.
    input: Vec<f32>,
    base: u64,
    /// Index of the next output sample.
    next: u64,
}

impl core::fmt::Debug for Converter {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Converter")
            .field("from", &self.from)
            .field("to", &self.to)
            .finish_non_exhaustive()
    }
}

const PHASES: usize = 256;
/// Most output phases given a precomputed coefficient bank.
const MAX_BANK_PHASES: usize = 2048;

impl Converter {
    /// Input samples the kernel reaches on each side (at the higher rate
    /// when up-sampling; more input samples when down-sampling).
    pub const HALF_TAPS: usize = 32;

    /// A converter from `from` Hz to `to` Hz (each 1 Hz to 384 kHz).
    pub fn new(from: u32, to: u32) -> Result<Self, ResampleError> {
        if !(1..=384_000).contains(&from) || !(1..=384_000).contains(&to) {
            return Err(ResampleError::Unsupported);
        }
        let scale = (f64::from(to) / f64::from(from)).min(1.0);
        let half = Self::HALF_TAPS as f64;
        let norm = bessel_i0(KAISER_BETA);
        let points = 2 * Self::HALF_TAPS * PHASES + 1;
        let table = (0..points)
            .map(|i| {
                // u in kernel units: -HALF_TAPS..=HALF_TAPS.
                let u = i as f64 / PHASES as f64 - half;
                let x = 2.0 * CUTOFF * u;
                let sinc = if x == 0.0 {
                    1.0
                } else {
                    (core::f64::consts::PI * x).sin() / (core::f64::consts::PI * x)
                };
                let r = u / half;
                let window = bessel_i0(KAISER_BETA * (1.0 - r * r).max(0.0).sqrt()) / norm;
                (2.0 * CUTOFF * sinc * window) as f32
            })
            .collect();
        let mut converter = Self {
            from,
            to,
            table,
            bank: Vec::new(),
            gcd: gcd(from, to),
            scale,
            input: Vec::new(),
            base: 0,
            next: 0,
        };
        let phases = (to / converter.gcd) as usize;
        let taps = 2 * converter.reach() as usize;
        if phases <= MAX_BANK_PHASES {
            let reach = converter.reach() as f64;
            let mut bank = Vec::with_capacity(phases * taps);
            for phase in 0..phases {
                let frac = phase as f64 / phases as f64;
                for j in 0..taps {
                    let u = (frac + reach - 1.0 - j as f64) * scale;
                    bank.push(converter.kernel(u) * scale as f32);
                }
            }
            converter.bank = bank;
        }
        Ok(converter)
    }

    /// Kernel value at `u` kernel units from its centre (0 outside).
    fn kernel(&self, u: f64) -> f32 {
        let pos = (u + Self::HALF_TAPS as f64) * PHASES as f64;
        if pos < 0.0 {
            return 0.0;
        }
        let i = pos as usize;
        let frac = (pos - i as f64) as f32;
        match (self.table.get(i), self.table.get(i + 1)) {
            (Some(&a), Some(&b)) => a + (b - a) * frac,
            (Some(&a), None) => a,
            _ => 0.0,
        }
    }

    /// Input samples each side of an output sample that the kernel reaches.
    fn reach(&self) -> i64 {
        (Self::HALF_TAPS as f64 / self.scale).ceil() as i64
    }

    /// Converts `samples` (the next input), appending to `out` every output
    /// sample whose neighbourhood is now known.
    pub fn push(&mut self, samples: &[i16], out: &mut Vec<i16>) {
        self.input.extend(samples.iter().map(|&s| f32::from(s)));
        self.produce(out, false);
    }

    /// Ends the input: the remaining output (the input's tail, read as if
    /// followed by silence) goes to `out`.
    pub fn finish(&mut self, out: &mut Vec<i16>) {
        self.produce(out, true);
    }

    fn produce(&mut self, out: &mut Vec<i16>, end: bool) {
        let reach = self.reach();
        let available = self.base + self.input.len() as u64;
        // Total output for the input so far, when it ends here.
        let total_out = available * u64::from(self.to) / u64::from(self.from);
        let taps = 2 * reach as usize;
        loop {
            if end && self.next >= total_out {
                break;
            }
            // The bank: one dot product where every tap's input is here.
            if !self.bank.is_empty() {
                let position = self.next * u64::from(self.from);
                let centre = position / u64::from(self.to);
                let phase = ((position % u64::from(self.to)) / u64::from(self.gcd)) as usize;
                let first = (centre + 1).checked_sub(reach as u64);
                if let Some(first) = first
                    && first >= self.base
                    && centre + (reach as u64) < available
                {
                    let at = (first - self.base) as usize;
                    let x = &self.input[at..at + taps];
                    let h = &self.bank[phase * taps..(phase + 1) * taps];
                    let acc = dot_any(x, h);
                    out.push(acc.round().clamp(-32768.0, 32767.0) as i16);
                    self.next += 1;
                    continue;
                }
            }
            // Input position of this output sample.
            let t = self.next as f64 * f64::from(self.from) / f64::from(self.to);
            let centre = t.floor() as i64;
            if !end && centre + reach >= available as i64 {
                break;
            }
            let mut acc = 0.0f32;
            for k in (centre - reach + 1)..=(centre + reach) {
                if k < self.base as i64 {
                    continue;
                }
                let Some(&x) = self.input.get((k - self.base as i64) as usize) else {
                    break;
                };
                acc += x * self.kernel((t - k as f64) * self.scale);
            }
            let y = acc * self.scale as f32;
            out.push(y.round().clamp(-32768.0, 32767.0) as i16);
            self.next += 1;
        }
        // Drop input no future output needs.
        let t = self.next as f64 * f64::from(self.from) / f64::from(self.to);
        let keep_from = (t.floor() as i64 - reach).max(self.base as i64) as u64;
        let drop = (keep_from - self.base) as usize;
        if drop > 0 {
            self.input.drain(..drop.min(self.input.len()));
            self.base += drop as u64;
        }
    }
}

/// [`dot`] of slices of any (equal) length.
fn dot_any(x: &[f32], h: &[f32]) -> f32 {
    let n = x.len() / LANES * LANES;
    let tail: f32 = x[n..].iter().zip(&h[n..]).map(|(x, h)| x * h).sum();
    dot(&x[..n], &h[..n]) + tail
}

#[cfg(test)]
mod converter_tests {
    use super::*;

    fn sine(hz: f64, rate: u32, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| {
                (10_000.0 * (2.0 * core::f64::consts::PI * hz * i as f64 / f64::from(rate)).sin())
                    as i16
            })
            .collect()
    }

    /// The coefficient bank gives what the per-tap kernel gives (within
    /// one step of rounding), chunk by chunk, ends included.
    #[test]
    fn the_bank_matches_the_kernel() {
        for (from, to) in [
            (44_100, 48_000),
            (11_025, 8_000),
            (22_050, 16_000),
            (48_000, 8_000),
            (8_000, 48_000),
        ] {
            let input: Vec<i16> = (0..4_000)
                .map(|i: i32| (i * 7_919 % 20_001 - 10_000) as i16)
                .collect();
            let run = |bank: bool| {
                let mut c = Converter::new(from, to).unwrap();
                assert!(!c.bank.is_empty(), "{from} -> {to} has a bank");
                if !bank {
                    c.bank.clear();
                }
                let mut out = Vec::new();
                for chunk in input.chunks(333) {
                    c.push(chunk, &mut out);
                }
                c.finish(&mut out);
                out
            };
            let (fast, slow) = (run(true), run(false));
            assert_eq!(fast.len(), slow.len(), "{from} -> {to}");
            let worst = fast
                .iter()
                .zip(&slow)
                .map(|(a, b)| (i32::from(*a) - i32::from(*b)).abs())
                .max()
                .unwrap();
            assert!(worst <= 1, "{from} -> {to}: {worst}");
        }
    }

    /// SNR of `got` against a sine of `hz` at `rate`, away from the ends.
    fn snr(got: &[i16], hz: f64, rate: u32) -> f64 {
        let want = sine(hz, rate, got.len());
        let (mut s, mut e) = (0.0f64, 0.0f64);
        for (g, w) in got.iter().zip(&want).skip(500).take(got.len() - 1000) {
            s += f64::from(*w).powi(2);
            e += (f64::from(*g) - f64::from(*w)).powi(2);
        }
        10.0 * (s / e.max(1e-9)).log10()
    }

    #[test]
    fn converts_common_file_rates_cleanly_in_any_chunking() {
        for (from, to, hz) in [
            (44_100, 8_000, 1000.0),
            (44_100, 48_000, 3000.0),
            (22_050, 16_000, 2500.0),
            (11_025, 8_000, 700.0),
            (8_000, 16_000, 1000.0),
        ] {
            let input = sine(hz, from, from as usize);
            let mut c = Converter::new(from, to).unwrap();
            let mut out = Vec::new();
            for chunk in input.chunks(1234) {
                c.push(chunk, &mut out);
            }
            c.finish(&mut out);
            let expected = input.len() as u64 * u64::from(to) / u64::from(from);
            assert_eq!(out.len() as u64, expected, "{from} -> {to}");
            let snr = snr(&out, hz, to);
            assert!(snr > 50.0, "{from} -> {to}: SNR {snr:.1} dB");
        }
    }

    #[test]
    fn removes_what_the_lower_rate_cannot_carry() {
        // 6 kHz at 44.1 kHz into 8 kHz: above the new Nyquist, gone.
        let input = sine(6000.0, 44_100, 44_100);
        let mut c = Converter::new(44_100, 8_000).unwrap();
        let mut out = Vec::new();
        c.push(&input, &mut out);
        c.finish(&mut out);
        let rms = (out[500..7500]
            .iter()
            .map(|&s| f64::from(s).powi(2))
            .sum::<f64>()
            / 7000.0)
            .sqrt();
        assert!(rms < 10.0, "alias rms {rms}");
        assert!(Converter::new(0, 8000).is_err());
    }
}
