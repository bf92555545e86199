//! The simple packet-loss concealment G.711 and G.722 share: repeat the
//! last decoded frame, attenuated 6 dB per concealed frame, and mute after
//! five (a stand-in for G.711 Appendix I).

/// Remembers the last decoded frame (up to `N` samples) and conceals from
/// it. No allocation: the frame lives inline.
#[derive(Clone, Debug)]
pub(crate) struct RepeatFade<const N: usize> {
    last: [i16; N],
    len: usize,
    concealed: u32,
}

impl<const N: usize> RepeatFade<N> {
    pub(crate) const fn new() -> Self {
        Self {
            last: [0; N],
            len: 0,
            concealed: 0,
        }
    }

    /// Keeps the tail of a decoded frame and ends any concealment run.
    pub(crate) fn remember(&mut self, decoded: &[i16]) {
        let keep = decoded.len().min(N);
        self.last[..keep].copy_from_slice(&decoded[decoded.len() - keep..]);
        self.len = keep;
        self.concealed = 0;
    }

    /// Fills `out` with the next concealment frame.
    pub(crate) fn conceal(&mut self, out: &mut [i16]) {
        self.concealed = self.concealed.saturating_add(1);
        let shift = self.concealed.min(15);
        let mute = self.concealed > 5 || self.len == 0;
        for (i, o) in out.iter_mut().enumerate() {
            *o = if mute {
                0
            } else {
                self.last[i % self.len] >> shift
            };
        }
    }

    /// The first remembered sample (for tests).
    #[cfg(test)]
    pub(crate) fn first(&self) -> i16 {
        self.last[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_with_fade_then_mutes() {
        let mut plc = RepeatFade::<4>::new();
        let mut out = [0i16; 6];
        plc.conceal(&mut out);
        assert_eq!(out, [0; 6], "nothing decoded yet: silence");
        plc.remember(&[9, 9, 800, -800, 400, -400]);
        plc.conceal(&mut out);
        assert_eq!(out, [400, -400, 200, -200, 400, -400]);
        plc.conceal(&mut out);
        assert_eq!(out[0], 200);
        for _ in 0..4 {
            plc.conceal(&mut out);
        }
        assert_eq!(out, [0; 6], "muted after five frames");
        plc.remember(&[100]);
        plc.conceal(&mut out);
        assert_eq!(out, [50; 6]);
    }
}
