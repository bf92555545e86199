//! N-way mixing with per-input gain and mix-minus.
//!
//! [`mix`] sums any number of frames into one with saturation. [`Mixer`] is
//! the conference kernel: it owns one input and one output frame per member
//! and computes every member's mix-minus (everyone but itself) in O(N) per
//! frame: one pass sums all members into a 32-bit accumulator, a second pass
//! gives each member `sum - own`, saturated once at the end. Clipping is
//! therefore applied only to what a member actually hears, never to partial
//! sums.

/// A linear gain in Q12 fixed point (4096 = 1.0, 0 dB).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Gain(u16);

impl Gain {
    /// 0 dB.
    pub const UNITY: Self = Self(1 << Q);
    /// Silence.
    pub const MUTE: Self = Self(0);

    /// A raw Q12 value (4096 = 1.0; the largest, 65535, is about +24 dB).
    pub const fn from_q12(raw: u16) -> Self {
        Self(raw)
    }

    /// The gain for `db` decibels, clamped to [mute, +24 dB]. Use in
    /// configuration, not per frame (it uses floating point `powf`).
    pub fn from_db(db: f32) -> Self {
        let lin = 10f32.powf(db / 20.0) * (1 << Q) as f32;
        Self(lin.round().clamp(0.0, u16::MAX as f32) as u16)
    }

    /// The raw Q12 value.
    pub const fn q12(self) -> u16 {
        self.0
    }

    #[inline]
    fn apply(self, s: i16) -> i32 {
        if self.0 == 1 << Q {
            s as i32
        } else {
            (s as i32 * self.0 as i32) >> Q
        }
    }
}

impl Default for Gain {
    fn default() -> Self {
        Self::UNITY
    }
}

/// Errors from mixing.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MixError {
    /// Frames of different lengths were given.
    LengthMismatch,
    /// The member index is out of range.
    NoSuchMember,
}

impl core::fmt::Display for MixError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::LengthMismatch => "frame lengths differ",
            Self::NoSuchMember => "no such mixer member",
        })
    }
}

impl std::error::Error for MixError {}

/// Mixes `inputs`, each scaled by its gain, into `out` with saturation.
/// Every input must be as long as `out`.
pub fn mix(inputs: &[(&[i16], Gain)], out: &mut [i16]) -> Result<(), MixError> {
    if inputs.iter().any(|(f, _)| f.len() != out.len()) {
        return Err(MixError::LengthMismatch);
    }
    for (i, o) in out.iter_mut().enumerate() {
        let sum: i32 = inputs.iter().map(|(f, g)| g.apply(f[i])).sum();
        *o = saturate(sum);
    }
    Ok(())
}

/// Adds `input` scaled by `gain` into `acc` with saturation (`acc += g·x`).
pub fn mix_into(acc: &mut [i16], input: &[i16], gain: Gain) -> Result<(), MixError> {
    if acc.len() != input.len() {
        return Err(MixError::LengthMismatch);
    }
    for (a, &x) in acc.iter_mut().zip(input) {
        *a = saturate(*a as i32 + gain.apply(x));
    }
    Ok(())
}

/// A conference mixer with a fixed number of member slots and frame length.
///
/// Per frame: write each talking member's audio with
/// [`input_mut`](Self::input_mut) (or [`set_input`](Self::set_input)),
/// call [`mix`](Self::mix), read each member's mix-minus with
/// [`output`](Self::output). Members that are not marked as talking this
/// frame contribute nothing (muted, no packet, not speaking) but still
/// receive the others' mix.
#[derive(Clone, Debug)]
pub struct Mixer {
    frame: usize,
    members: usize,
    inputs: Vec<i16>,
    outputs: Vec<i16>,
    gains: Vec<Gain>,
    talking: Vec<bool>,
    acc: Vec<i32>,
}

impl Mixer {
    /// A mixer for up to `members` members and frames of `frame` samples.
    pub fn new(members: usize, frame: usize) -> Self {
        Self {
            frame,
            members,
            inputs: vec![0; members * frame],
            outputs: vec![0; members * frame],
            gains: vec![Gain::UNITY; members],
            talking: vec![false; members],
            acc: vec![0; frame],
        }
    }

    /// Number of member slots.
    pub fn members(&self) -> usize {
        self.members
    }

    /// Samples per frame.
    pub fn frame_len(&self) -> usize {
        self.frame
    }

    /// Sets a member's input gain.
    pub fn set_gain(&mut self, member: usize, gain: Gain) -> Result<(), MixError> {
        *self.gains.get_mut(member).ok_or(MixError::NoSuchMember)? = gain;
        Ok(())
    }

    /// The member's input frame for this round, marking it as talking.
    pub fn input_mut(&mut self, member: usize) -> Result<&mut [i16], MixError> {
        if member >= self.members {
            return Err(MixError::NoSuchMember);
        }
        self.talking[member] = true;
        Ok(&mut self.inputs[member * self.frame..(member + 1) * self.frame])
    }

    /// Copies `pcm` (exactly one frame) as the member's input.
    pub fn set_input(&mut self, member: usize, pcm: &[i16]) -> Result<(), MixError> {
        if pcm.len() != self.frame {
            return Err(MixError::LengthMismatch);
        }
        self.input_mut(member)?.copy_from_slice(pcm);
        Ok(())
    }

    /// Computes every member's output and clears the talking marks for the
    /// next frame. O(members × frame).
    pub fn mix(&mut self) {
        let f = self.frame;
        self.acc.fill(0);
        for m in 0..self.members {
            if !self.talking[m] {
                continue;
            }
            let g = self.gains[m];
            for (a, &x) in self.acc.iter_mut().zip(&self.inputs[m * f..(m + 1) * f]) {
                *a += g.apply(x);
            }
        }
        for m in 0..self.members {
            let out = &mut self.outputs[m * f..(m + 1) * f];
            if self.talking[m] {
                let g = self.gains[m];
                let own = &self.inputs[m * f..(m + 1) * f];
                for ((o, &a), &x) in out.iter_mut().zip(&self.acc).zip(own) {
                    *o = saturate(a - g.apply(x));
                }
            } else {
                for (o, &a) in out.iter_mut().zip(&self.acc) {
                    *o = saturate(a);
                }
            }
        }
        self.talking.fill(false);
    }

    /// The member's mix-minus from the last [`mix`](Self::mix), to be
    /// processed in place (e.g. faded) before it is read.
    pub fn output_mut(&mut self, member: usize) -> Result<&mut [i16], MixError> {
        if member >= self.members {
            return Err(MixError::NoSuchMember);
        }
        Ok(&mut self.outputs[member * self.frame..(member + 1) * self.frame])
    }

    /// Everything the talkers said in the last [`mix`](Self::mix) (the sum
    /// of their inputs with their gains, saturated), into `out` (one
    /// frame): what a recording of the whole conference holds.
    pub fn write_total(&self, out: &mut [i16]) -> Result<(), MixError> {
        if out.len() != self.frame {
            return Err(MixError::LengthMismatch);
        }
        for (o, &a) in out.iter_mut().zip(&self.acc) {
            *o = saturate(a);
        }
        Ok(())
    }

    /// The member's mix-minus from the last [`mix`](Self::mix).
    pub fn output(&self, member: usize) -> Result<&[i16], MixError> {
        if member >= self.members {
            return Err(MixError::NoSuchMember);
        }
        Ok(&self.outputs[member * self.frame..(member + 1) * self.frame])
    }
}

/// Fractional bits of [`Gain`].
const Q: u32 = 12;

#[inline]
fn saturate(x: i32) -> i16 {
    x.clamp(i16::MIN as i32, i16::MAX as i32) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_saturates_and_applies_gain() {
        let cases: &[(i16, i16, Gain, i16)] = &[
            (1000, 2000, Gain::UNITY, 3000),
            (30_000, 30_000, Gain::UNITY, i16::MAX),
            (-30_000, -30_000, Gain::UNITY, i16::MIN),
            (1000, 2000, Gain::MUTE, 1000),
            (1000, 2000, Gain::from_q12(2048), 2000),
            (0, -32_768, Gain::from_q12(2048), -16_384),
        ];
        for &(a, b, g, want) in cases {
            let mut out = [0i16; 2];
            mix(&[(&[a, a], Gain::UNITY), (&[b, b], g)], &mut out).unwrap();
            assert_eq!(out, [want, want], "{a} + {b} * {g:?}");
            let mut acc = [a];
            mix_into(&mut acc, &[b], g).unwrap();
            assert_eq!(acc, [want]);
        }
        let mut out = [0i16; 2];
        assert_eq!(
            mix(&[(&[1], Gain::UNITY)], &mut out),
            Err(MixError::LengthMismatch)
        );
        assert_eq!(Gain::from_db(0.0), Gain::UNITY);
        assert_eq!(Gain::from_db(-6.0206).q12(), 2048);
        assert_eq!(Gain::from_db(-200.0), Gain::MUTE);
        assert_eq!(Gain::from_db(40.0).q12(), u16::MAX);
    }

    #[test]
    fn mix_minus_matches_naive_quadratic_mix() {
        let n = 7;
        let frame = 160;
        let mut mixer = Mixer::new(n, frame);
        let mut rng = 0x9E37_79B9u32;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 17;
            rng ^= rng << 5;
            rng
        };
        for round in 0..20 {
            let mut frames = vec![vec![0i16; frame]; n];
            let mut talking = vec![false; n];
            let gains: Vec<Gain> = (0..n)
                .map(|_| Gain::from_q12((next() % 8192) as u16))
                .collect();
            for m in 0..n {
                mixer.set_gain(m, gains[m]).unwrap();
                talking[m] = next() % 4 != 0;
                for s in &mut frames[m] {
                    // Loud rounds exercise saturation.
                    let amp = if round % 3 == 0 { 32_768 } else { 4000 };
                    *s = ((next() % (2 * amp)) as i32 - amp as i32) as i16;
                }
                if talking[m] {
                    mixer.set_input(m, &frames[m]).unwrap();
                }
            }
            mixer.mix();
            for m in 0..n {
                let got = mixer.output(m).unwrap();
                for (i, &got) in got.iter().enumerate() {
                    let want: i32 = (0..n)
                        .filter(|&k| k != m && talking[k])
                        .map(|k| (frames[k][i] as i32 * gains[k].q12() as i32) >> 12)
                        .sum();
                    let want = want.clamp(-32_768, 32_767) as i16;
                    assert_eq!(got, want, "round {round} member {m} i {i}");
                }
            }
            let mut total = vec![0i16; frame];
            mixer.write_total(&mut total).unwrap();
            for (i, &got) in total.iter().enumerate() {
                let want: i32 = (0..n)
                    .filter(|&k| talking[k])
                    .map(|k| (frames[k][i] as i32 * gains[k].q12() as i32) >> 12)
                    .sum();
                assert_eq!(
                    got,
                    want.clamp(-32_768, 32_767) as i16,
                    "total, round {round}"
                );
            }
        }
        assert_eq!(
            mixer.write_total(&mut [0; 3]),
            Err(MixError::LengthMismatch)
        );
        assert_eq!(mixer.output(n).err(), Some(MixError::NoSuchMember));
        assert_eq!(mixer.set_input(0, &[0; 3]), Err(MixError::LengthMismatch));
    }

    #[test]
    fn silent_member_hears_everyone() {
        let mut mixer = Mixer::new(3, 4);
        mixer.set_input(0, &[100; 4]).unwrap();
        mixer.set_input(1, &[20; 4]).unwrap();
        mixer.mix();
        assert_eq!(mixer.output(0).unwrap(), &[20; 4]);
        assert_eq!(mixer.output(1).unwrap(), &[100; 4]);
        assert_eq!(mixer.output(2).unwrap(), &[120; 4]);
        // Next frame: nobody talks.
        mixer.mix();
        assert_eq!(mixer.output(2).unwrap(), &[0; 4]);
    }
}
