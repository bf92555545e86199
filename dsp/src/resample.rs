//! Sample-rate conversion between 8, 16 and 48 kHz in fixed 20 ms chunks.
//!
//! Built on rubato's synchronous FFT resampler with both sides fixed
//! (`Fft` with `FixedSync::Both`): every call takes exactly one input frame
//! (160 samples at 8 kHz, 320 at 16 kHz, 960 at 48 kHz) and returns exactly
//! one output frame, which is what a 20 ms media clock needs. Scratch
//! buffers are allocated in [`Resampler::new`]; [`Resampler::process`]
//! does not allocate.
//!
//! # Latency
//!
//! The FFT resampler delays the signal by half its internal FFT block:
//! [`Resampler::delay`] reports it. Measured with the default 20 ms frames
//! (see the `latency_table` test): 8↔48 kHz and 16↔48 kHz 10 ms, 8↔16 kHz
//! 10 ms. Equal rates copy and add no delay.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler as _};

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

/// A mono fixed-chunk resampler.
pub struct Resampler {
    inner: Option<Fft<f32>>,
    from: ClockRate,
    to: ClockRate,
    in_len: usize,
    out_len: usize,
    in_buf: Vec<f32>,
    out_buf: Vec<f32>,
}

impl core::fmt::Debug for Resampler {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Resampler")
            .field("from", &self.from)
            .field("to", &self.to)
            .field("in_len", &self.in_len)
            .field("out_len", &self.out_len)
            .finish_non_exhaustive()
    }
}

impl Resampler {
    /// A resampler from `from` to `to` for frames of `frame_ms`
    /// milliseconds.
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
        let inner = if from == to {
            None
        } else {
            let fft = Fft::<f32>::new(
                from.hz() as usize,
                to.hz() as usize,
                in_len,
                1,
                FixedSync::Both,
            )
            .map_err(|_| ResampleError::Unsupported)?;
            if fft.input_frames_next() != in_len || fft.output_frames_next() != out_len {
                return Err(ResampleError::Unsupported);
            }
            Some(fft)
        };
        Ok(Self {
            inner,
            from,
            to,
            in_len,
            out_len,
            in_buf: vec![0.0; in_len],
            out_buf: vec![0.0; out_len],
        })
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
        let d = self.inner.as_ref().map_or(0, |r| r.output_delay());
        MediaTime::new(d as i64, self.to)
    }

    /// Clears the filter state (e.g. after a stream restart).
    pub fn reset(&mut self) {
        if let Some(r) = &mut self.inner {
            r.reset();
        }
    }

    /// Resamples exactly [`input_len`](Self::input_len) samples into the
    /// first [`output_len`](Self::output_len) samples of `output`,
    /// returning the output length.
    pub fn process(&mut self, input: &[i16], output: &mut [i16]) -> Result<usize, ResampleError> {
        if input.len() != self.in_len || output.len() < self.out_len {
            return Err(ResampleError::BadLength);
        }
        let Some(fft) = &mut self.inner else {
            output[..self.out_len].copy_from_slice(input);
            return Ok(self.out_len);
        };
        for (f, &s) in self.in_buf.iter_mut().zip(input) {
            *f = s as f32 * (1.0 / 32768.0);
        }
        let inp = InterleavedSlice::new(&self.in_buf[..], 1, self.in_len)
            .map_err(|_| ResampleError::BadLength)?;
        let mut out = InterleavedSlice::new_mut(&mut self.out_buf[..], 1, self.out_len)
            .map_err(|_| ResampleError::BadLength)?;
        let (_, produced) = fft
            .process_into_buffer(&inp, &mut out, None)
            .map_err(|_| ResampleError::BadLength)?;
        if produced != self.out_len {
            return Err(ResampleError::BadLength);
        }
        for (o, &f) in output.iter_mut().zip(&self.out_buf) {
            *o = (f * 32768.0).round().clamp(-32768.0, 32767.0) as i16;
        }
        Ok(self.out_len)
    }
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
                assert!(ms <= 12.0, "{from:?} -> {to:?}: {ms} ms");
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
                // Skip the first 100 ms (filter settling) and align.
                let skip = to.samples_in_ms(100) as usize;
                let (mut sig, mut err) = (0f64, 0f64);
                for i in skip..got.len() {
                    let w = want[i - delay] as f64;
                    sig += w * w;
                    err += (got[i] as f64 - w).powi(2);
                }
                let snr = 10.0 * (sig / err).log10();
                assert!(snr > 40.0, "{} -> {}: SNR {snr:.1} dB", from.hz(), to.hz());
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
