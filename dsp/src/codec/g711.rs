//! G.711 µ-law and A-law companding (ITU-T G.711, 1988).
//!
//! The standard quantises a 14-bit (µ-law) or 13-bit (A-law) sign-magnitude
//! sample into eight segments of sixteen intervals each. legato works on
//! 16-bit two's-complement samples, and maps them onto the standard's input
//! the way the ITU-T G.191 reference tools do: a non-negative sample keeps its
//! top 14 (13) bits, a negative sample `x` is quantised like `!x` (that is,
//! `-x - 1`), so the quantiser is symmetric around -0.5 and `-1` encodes like
//! `0` with the negative sign. Decoding returns the interval's reconstruction
//! value scaled back to 16 bits (µ-law range ±32124, A-law range ±32256).
//!
//! Both directions are table lookups, with tables built at compile time by
//! `const fn` from the segment rules. Encoding needs no 64 Ki-entry table:
//! the µ-law code of a 16-bit sample depends only on its top 14 bits (the
//! standard's 14-bit domain, and `!x` keeps the top bits of `x` complemented),
//! and the A-law code only on its top 12 bits (13-bit domain whose finest step
//! is 2). The encode tables therefore have 16 384 and 4 096 one-byte entries
//! (20 KiB together, L1-resident) and are exact for all 65 536 inputs; the
//! tests check every input against an independent reference.

use super::plc::RepeatFade;
use super::{CodecError, Decoder, Encoder};

/// Encodes one 16-bit linear sample to a µ-law code (bits inverted, as sent
/// on the wire).
#[inline]
pub fn linear_to_ulaw(x: i16) -> u8 {
    // The code depends only on the top 14 bits (see `ULAW_ENCODE`).
    ULAW_ENCODE[usize::from(x as u16 >> ULAW_DROP)]
}

/// The µ-law segment rule, evaluated at compile time into `ULAW_ENCODE`.
const fn ulaw_encode_one(x: i16) -> u8 {
    // Magnitude in the standard's 14-bit domain (see module docs for `!x`).
    let (sign, mag) = if x < 0 {
        (0x00u32, (!x as u32) >> 2)
    } else {
        (0x80u32, (x as u32) >> 2)
    };
    // Adding the bias 33 puts every segment's lower edge on a power of two.
    let biased = mag + ULAW_BIAS;
    let biased = if biased > 0x1FFF { 0x1FFF } else { biased };
    let seg = (31 - biased.leading_zeros()) - 5;
    let q = (biased >> (seg + 1)) & 0x0F;
    (sign | (!((seg << 4) | q) & 0x7F)) as u8
}

/// Decodes one µ-law code to a 16-bit linear sample.
#[inline]
pub fn ulaw_to_linear(code: u8) -> i16 {
    ULAW_DECODE[code as usize]
}

/// Encodes one 16-bit linear sample to an A-law code (even bits inverted, as
/// sent on the wire).
#[inline]
pub fn linear_to_alaw(x: i16) -> u8 {
    // The code depends only on the top 12 bits (see `ALAW_ENCODE`).
    ALAW_ENCODE[usize::from(x as u16 >> ALAW_DROP)]
}

/// The A-law segment rule, evaluated at compile time into `ALAW_ENCODE`.
const fn alaw_encode_one(x: i16) -> u8 {
    // Magnitude in the standard's 13-bit domain, counted in its first-segment
    // step of 2 (so 0..=2047).
    let (sign, mag) = if x < 0 {
        (0x00u32, (!x as u32) >> 4)
    } else {
        (0x80u32, (x as u32) >> 4)
    };
    let code = if mag < 16 {
        mag
    } else {
        // mag has 5..=11 significant bits: segments 1..=7.
        let seg = (32 - mag.leading_zeros()) - 4;
        (seg << 4) | ((mag >> (seg - 1)) & 0x0F)
    };
    ((sign | code) ^ ALAW_XOR) as u8
}

/// Decodes one A-law code to a 16-bit linear sample.
#[inline]
pub fn alaw_to_linear(code: u8) -> i16 {
    ALAW_DECODE[code as usize]
}

/// Encodes `pcm` into µ-law codes; `out` must be at least as long as `pcm`.
/// Returns the number of codes written.
pub fn encode_ulaw(pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
    let out = out.get_mut(..pcm.len()).ok_or(CodecError::OutputTooSmall)?;
    for (o, &s) in out.iter_mut().zip(pcm) {
        *o = linear_to_ulaw(s);
    }
    Ok(pcm.len())
}

/// Decodes µ-law codes into `out`, which must be at least as long as
/// `codes`. Returns the number of samples written.
pub fn decode_ulaw(codes: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
    let out = out
        .get_mut(..codes.len())
        .ok_or(CodecError::OutputTooSmall)?;
    for (o, &c) in out.iter_mut().zip(codes) {
        *o = ulaw_to_linear(c);
    }
    Ok(codes.len())
}

/// Encodes `pcm` into A-law codes; `out` must be at least as long as `pcm`.
/// Returns the number of codes written.
pub fn encode_alaw(pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
    let out = out.get_mut(..pcm.len()).ok_or(CodecError::OutputTooSmall)?;
    for (o, &s) in out.iter_mut().zip(pcm) {
        *o = linear_to_alaw(s);
    }
    Ok(pcm.len())
}

/// Decodes A-law codes into `out`, which must be at least as long as
/// `codes`. Returns the number of samples written.
pub fn decode_alaw(codes: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
    let out = out
        .get_mut(..codes.len())
        .ok_or(CodecError::OutputTooSmall)?;
    for (o, &c) in out.iter_mut().zip(codes) {
        *o = alaw_to_linear(c);
    }
    Ok(codes.len())
}

/// Converts G.711 codes of law `from` into codes of law `to` (a copy when
/// the laws are equal); `out` must be at least as long as `codes`. Each
/// code maps exactly as decoding and re-encoding it would (one 256-entry
/// table per direction, built at compile time from the two tables above),
/// so a µ-law ↔ A-law transcoder needs no linear samples in between.
/// Returns the number of codes written.
pub fn convert(from: Law, to: Law, codes: &[u8], out: &mut [u8]) -> Result<usize, CodecError> {
    let out = out
        .get_mut(..codes.len())
        .ok_or(CodecError::OutputTooSmall)?;
    let table = match (from, to) {
        (Law::Ulaw, Law::Alaw) => &ULAW_TO_ALAW,
        (Law::Alaw, Law::Ulaw) => &ALAW_TO_ULAW,
        _ => {
            out.copy_from_slice(codes);
            return Ok(codes.len());
        }
    };
    for (o, &c) in out.iter_mut().zip(codes) {
        *o = table[usize::from(c)];
    }
    Ok(codes.len())
}

/// Converts G.711 codes of law `from` into law `to` where they lie, as
/// [`convert`] does: the relay path rewrites a packet's payload in its
/// transmit buffer with it, so a µ-law ↔ A-law bridge costs one table load
/// per byte and no jitter buffer.
pub fn convert_in_place(from: Law, to: Law, codes: &mut [u8]) {
    let table = match (from, to) {
        (Law::Ulaw, Law::Alaw) => &ULAW_TO_ALAW,
        (Law::Alaw, Law::Ulaw) => &ALAW_TO_ULAW,
        _ => return,
    };
    for c in codes {
        *c = table[usize::from(*c)];
    }
}

/// Decodes `codes` of `law` into `out` (see [`decode_ulaw`],
/// [`decode_alaw`]).
pub fn decode(law: Law, codes: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
    match law {
        Law::Ulaw => decode_ulaw(codes, out),
        Law::Alaw => decode_alaw(codes, out),
    }
}

/// Which G.711 companding law a [`G711`] codec uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Law {
    /// µ-law (PCMU, static RTP payload type 0).
    Ulaw,
    /// A-law (PCMA, static RTP payload type 8).
    Alaw,
}

/// Stateless G.711 codec implementing [`Encoder`] and [`Decoder`] at 8 kHz.
///
/// Concealment repeats the last decoded frame with 6 dB attenuation per
/// concealed frame (a simple stand-in for G.711 Appendix I), fading to
/// silence after five frames.
#[derive(Clone, Debug)]
pub struct G711 {
    law: Law,
    plc: RepeatFade<MAX_FRAME>,
}

impl G711 {
    /// Creates a codec for `law`.
    pub fn new(law: Law) -> Self {
        Self {
            law,
            plc: RepeatFade::new(),
        }
    }

    /// The companding law.
    pub fn law(&self) -> Law {
        self.law
    }
}

impl Encoder for G711 {
    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        match self.law {
            Law::Ulaw => encode_ulaw(pcm, out),
            Law::Alaw => encode_alaw(pcm, out),
        }
    }

    fn sample_rate(&self) -> u32 {
        8000
    }
}

impl Decoder for G711 {
    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        let n = match self.law {
            Law::Ulaw => decode_ulaw(payload, out)?,
            Law::Alaw => decode_alaw(payload, out)?,
        };
        self.plc.remember(&out[..n]);
        Ok(n)
    }

    fn conceal(&mut self, out: &mut [i16]) -> Result<usize, CodecError> {
        self.plc.conceal(out);
        Ok(out.len())
    }

    fn sample_rate(&self) -> u32 {
        8000
    }
}

/// Longest frame kept for concealment: 60 ms at 8 kHz.
const MAX_FRAME: usize = 480;
/// µ-law bias (G.711 table 2: decision values are offset by 33).
const ULAW_BIAS: u32 = 33;
/// A-law inverts the even bits of every code on the wire.
const ALAW_XOR: u32 = 0x55;

const fn ulaw_decode_one(code: u8) -> i16 {
    let c = !code;
    let seg = ((c >> 4) & 0x07) as i32;
    let q = (c & 0x0F) as i32;
    let mag = ((((q << 1) + 33) << seg) - 33) << 2;
    if c & 0x80 != 0 {
        -mag as i16
    } else {
        mag as i16
    }
}

const fn alaw_decode_one(code: u8) -> i16 {
    let c = code ^ ALAW_XOR as u8;
    let seg = ((c >> 4) & 0x07) as i32;
    let q = (c & 0x0F) as i32;
    let mag = if seg == 0 {
        (q << 4) + 8
    } else {
        ((q << 4) + 0x108) << (seg - 1)
    };
    if c & 0x80 != 0 {
        mag as i16
    } else {
        -mag as i16
    }
}

const fn build_table(alaw: bool) -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if alaw {
            alaw_decode_one(i as u8)
        } else {
            ulaw_decode_one(i as u8)
        };
        i += 1;
    }
    t
}

static ULAW_DECODE: [i16; 256] = build_table(false);
static ALAW_DECODE: [i16; 256] = build_table(true);

/// Entry `c`: the other law's code for the value code `c` decodes to.
const fn build_convert_table(alaw_in: bool) -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if alaw_in {
            ulaw_encode_one(alaw_decode_one(i as u8))
        } else {
            alaw_encode_one(ulaw_decode_one(i as u8))
        };
        i += 1;
    }
    t
}

static ULAW_TO_ALAW: [u8; 256] = build_convert_table(false);
static ALAW_TO_ULAW: [u8; 256] = build_convert_table(true);

/// Low input bits µ-law encoding ignores: 16-bit input, 14-bit domain.
const ULAW_DROP: u32 = 2;
/// Low input bits A-law encoding ignores: 16-bit input, 13-bit domain with a
/// finest quantisation step of 2.
const ALAW_DROP: u32 = 4;

/// Builds an encode table indexed by `x as u16 >> drop`. Entry `i` encodes
/// the smallest input with those top bits; every input sharing them has the
/// same code (the exhaustive tests check all 65 536).
const fn build_encode_table<const N: usize>(drop: u32, alaw: bool) -> [u8; N] {
    let mut t = [0u8; N];
    let mut i = 0;
    while i < N {
        let x = ((i as u32) << drop) as u16 as i16;
        t[i] = if alaw {
            alaw_encode_one(x)
        } else {
            ulaw_encode_one(x)
        };
        i += 1;
    }
    t
}

/// µ-law codes for every 14-bit input prefix.
static ULAW_ENCODE: [u8; 1 << (16 - ULAW_DROP)] = build_encode_table(ULAW_DROP, false);
/// A-law codes for every 12-bit input prefix.
static ALAW_ENCODE: [u8; 1 << (16 - ALAW_DROP)] = build_encode_table(ALAW_DROP, true);

#[cfg(test)]
mod tests {
    use super::*;

    /// Independent reference built from the interval tables of G.711 (table
    /// 1 for A-law, table 2 for µ-law): for each of the 128 magnitudes, the
    /// decision interval `[lo, hi)` in the standard's integer domain and the
    /// reconstruction value. Written as the standard describes the segments,
    /// not from the production bit formulas.
    struct Reference {
        lo: [i32; 128],
        hi: [i32; 128],
        out: [i32; 128],
        /// Scale from the standard's domain to 16 bits.
        scale: i32,
    }

    /// µ-law: magnitude domain 0..8159. The first interval is 0..1 (output
    /// 0), the rest of segment 1 has 15 intervals of width 2 up to 31; the
    /// following seven segments have 16 intervals each of width 4, 8, ...,
    /// 256, ending at 95, 223, 479, 991, 2015, 4063, 8159. Outputs are
    /// interval midpoints.
    fn ulaw_reference() -> Reference {
        let mut r = Reference {
            lo: [0; 128],
            hi: [0; 128],
            out: [0; 128],
            scale: 4,
        };
        r.lo[0] = 0;
        r.hi[0] = 1;
        r.out[0] = 0;
        let mut edge = 1;
        let mut k = 1;
        for (seg, width) in [2, 4, 8, 16, 32, 64, 128, 256].into_iter().enumerate() {
            let count = if seg == 0 { 15 } else { 16 };
            for _ in 0..count {
                r.lo[k] = edge;
                r.hi[k] = edge + width;
                r.out[k] = edge + width / 2;
                edge += width;
                k += 1;
            }
        }
        assert_eq!(edge, 8159);
        r
    }

    /// A-law: magnitude domain 0..4096. Segments 1 and 2 (the first 32
    /// intervals) have width 2, then 16 intervals each of width 4, 8, ...,
    /// 128, ending at 128, 256, ..., 4096. Outputs are interval midpoints.
    fn alaw_reference() -> Reference {
        let mut r = Reference {
            lo: [0; 128],
            hi: [0; 128],
            out: [0; 128],
            scale: 8,
        };
        let mut edge = 0;
        let mut k = 0;
        for width in [2, 2, 4, 8, 16, 32, 64, 128] {
            for _ in 0..16 {
                r.lo[k] = edge;
                r.hi[k] = edge + width;
                r.out[k] = edge + width / 2;
                edge += width;
                k += 1;
            }
        }
        assert_eq!(edge, 4096);
        r
    }

    impl Reference {
        /// Index 0..128 of the interval holding magnitude `m` (clipping at
        /// the top), by linear search over the decision values.
        fn quantise(&self, m: i32) -> usize {
            (0..128)
                .find(|&k| m >= self.lo[k] && m < self.hi[k])
                .unwrap_or(127)
        }

        /// Standard-domain magnitude of a 16-bit sample (G.191 mapping).
        fn magnitude(&self, x: i16) -> i32 {
            let x = x as i32;
            let m = if x < 0 { -x - 1 } else { x };
            m / self.scale
        }
    }

    /// Wire code for magnitude index `k` and sign, per G.711: µ-law sends
    /// the complement of sign|segment|interval with sign 1 = positive;
    /// A-law sends sign|segment|interval with sign 1 = positive and the even
    /// bits inverted.
    fn ulaw_wire(k: usize, positive: bool) -> u8 {
        let plain = (k as u8) | if positive { 0 } else { 0x80 };
        !plain
    }
    fn alaw_wire(k: usize, positive: bool) -> u8 {
        ((k as u8) | if positive { 0x80 } else { 0 }) ^ 0x55
    }

    #[test]
    fn ulaw_encode_exhaustive() {
        let r = ulaw_reference();
        for x in i16::MIN..=i16::MAX {
            let want = ulaw_wire(r.quantise(r.magnitude(x)), x >= 0);
            assert_eq!(linear_to_ulaw(x), want, "x = {x}");
        }
    }

    #[test]
    fn alaw_encode_exhaustive() {
        let r = alaw_reference();
        for x in i16::MIN..=i16::MAX {
            let want = alaw_wire(r.quantise(r.magnitude(x)), x >= 0);
            assert_eq!(linear_to_alaw(x), want, "x = {x}");
        }
    }

    #[test]
    fn tables_match_segment_rules_for_every_input() {
        // The tables drop low bits; the rules see all 16. Same answer.
        for x in i16::MIN..=i16::MAX {
            assert_eq!(linear_to_ulaw(x), ulaw_encode_one(x), "x = {x}");
            assert_eq!(linear_to_alaw(x), alaw_encode_one(x), "x = {x}");
        }
    }

    #[test]
    fn ulaw_decode_all_codes() {
        let r = ulaw_reference();
        for k in 0..128 {
            let v = (r.out[k] * r.scale) as i16;
            assert_eq!(ulaw_to_linear(ulaw_wire(k, true)), v, "k = {k}");
            assert_eq!(ulaw_to_linear(ulaw_wire(k, false)), -v, "k = {k}");
        }
    }

    #[test]
    fn alaw_decode_all_codes() {
        let r = alaw_reference();
        for k in 0..128 {
            let v = (r.out[k] * r.scale) as i16;
            assert_eq!(alaw_to_linear(alaw_wire(k, true)), v, "k = {k}");
            assert_eq!(alaw_to_linear(alaw_wire(k, false)), -v, "k = {k}");
        }
    }

    #[test]
    fn round_trip_is_idempotent_for_every_code() {
        // Decoding then re-encoding any code yields the same code, except
        // µ-law negative zero (0x7F) which decodes to 0 and re-encodes as
        // positive zero (0xFF).
        for c in 0..=255u8 {
            let u = linear_to_ulaw(ulaw_to_linear(c));
            if c == 0x7F {
                assert_eq!(u, 0xFF);
            } else {
                assert_eq!(u, c, "ulaw {c:#04x}");
            }
            assert_eq!(linear_to_alaw(alaw_to_linear(c)), c, "alaw {c:#04x}");
        }
    }

    #[test]
    fn conversion_equals_decode_then_encode() {
        let codes: Vec<u8> = (0..=255).collect();
        let mut out = [0u8; 256];
        convert(Law::Ulaw, Law::Alaw, &codes, &mut out).unwrap();
        for c in 0..=255u8 {
            assert_eq!(
                out[usize::from(c)],
                linear_to_alaw(ulaw_to_linear(c)),
                "{c:#04x}"
            );
        }
        convert(Law::Alaw, Law::Ulaw, &codes, &mut out).unwrap();
        for c in 0..=255u8 {
            assert_eq!(
                out[usize::from(c)],
                linear_to_ulaw(alaw_to_linear(c)),
                "{c:#04x}"
            );
        }
        convert(Law::Ulaw, Law::Ulaw, &codes, &mut out).unwrap();
        assert_eq!(&out[..], &codes[..]);
        for (from, to) in [
            (Law::Ulaw, Law::Alaw),
            (Law::Alaw, Law::Ulaw),
            (Law::Alaw, Law::Alaw),
        ] {
            let mut in_place = codes.clone();
            convert_in_place(from, to, &mut in_place);
            convert(from, to, &codes, &mut out).unwrap();
            assert_eq!(&in_place[..], &out[..], "{from:?} -> {to:?}");
        }
        assert_eq!(
            convert(Law::Alaw, Law::Ulaw, &codes, &mut [0u8; 10]),
            Err(CodecError::OutputTooSmall)
        );
    }

    #[test]
    fn known_values() {
        // (linear, µ-law, A-law) from the G.711 tables: silence, small,
        // full scale.
        let table: &[(i16, u8, u8)] = &[
            (0, 0xFF, 0xD5),
            (-1, 0x7F, 0x55),
            (i16::MAX, 0x80, 0xAA),
            (i16::MIN, 0x00, 0x2A),
            (1000, 0xCE, 0xFA),
            (-1000, 0x4E, 0x7A),
        ];
        for &(x, u, a) in table {
            assert_eq!(linear_to_ulaw(x), u, "ulaw {x}");
            assert_eq!(linear_to_alaw(x), a, "alaw {x}");
        }
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(alaw_to_linear(0xAA), 32256);
        assert_eq!(alaw_to_linear(0xD5), 8);
    }

    #[test]
    fn slice_helpers_check_length() {
        let pcm = [0i16, 1000, -1000];
        let mut small = [0u8; 2];
        assert_eq!(
            encode_ulaw(&pcm, &mut small),
            Err(CodecError::OutputTooSmall)
        );
        let mut codes = [0u8; 3];
        assert_eq!(encode_alaw(&pcm, &mut codes), Ok(3));
        let mut back = [0i16; 3];
        assert_eq!(decode_alaw(&codes, &mut back), Ok(3));
        assert_eq!(back, [8, 1008, -1008]);
    }

    #[test]
    fn codec_conceals_with_fade() {
        let mut c = G711::new(Law::Ulaw);
        let mut out = [0i16; 160];
        let payload = [0x80u8; 160];
        c.decode(&payload, &mut out).unwrap();
        let mut plc = [0i16; 160];
        c.conceal(&mut plc).unwrap();
        assert_eq!(plc[0], 32124 >> 1);
        for _ in 0..5 {
            c.conceal(&mut plc).unwrap();
        }
        assert!(plc.iter().all(|&s| s == 0));
    }
}
