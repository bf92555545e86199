//! In-band DTMF (ITU-T Q.23 signals, Q.24 reception): a generator and a
//! detector.
//!
//! - [`DtmfGenerator`] turns queued [`Digit`]s into 8 kHz samples with a
//!   chosen level per tone (dBm0, G.711 convention), hence twist, and
//!   on/off durations.
//! - [`DtmfDetector`] takes 8 kHz frames of any length and reports each
//!   digit once, with its start and end as sample offsets from stream start.
//!   See its docs for the acceptance limits and the decision latency.
//!
//! [`Digit::event_code`] is the RFC 4733 event number, so a detected digit
//! maps directly onto `crate::rfc4733` telephone events.

mod detect;
mod generate;

pub use detect::{DtmfDetector, DtmfDetectorConfig, DtmfEvent};
pub use generate::{DtmfGenerator, DtmfGeneratorConfig, PushStrError, QueueFull};

/// Low-group frequencies (rows of the keypad), Hz (ITU-T Q.23).
pub const LOW_GROUP_HZ: [f32; 4] = [697.0, 770.0, 852.0, 941.0];

/// High-group frequencies (columns of the keypad), Hz (ITU-T Q.23).
pub const HIGH_GROUP_HZ: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];

/// One DTMF digit: a key of the 4×4 keypad.
///
/// Variants are in RFC 4733 event-code order (0-9, `*`, `#`, A-D).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Digit {
    /// Key `0` (941 + 1336 Hz).
    D0,
    /// Key `1` (697 + 1209 Hz).
    D1,
    /// Key `2` (697 + 1336 Hz).
    D2,
    /// Key `3` (697 + 1477 Hz).
    D3,
    /// Key `4` (770 + 1209 Hz).
    D4,
    /// Key `5` (770 + 1336 Hz).
    D5,
    /// Key `6` (770 + 1477 Hz).
    D6,
    /// Key `7` (852 + 1209 Hz).
    D7,
    /// Key `8` (852 + 1336 Hz).
    D8,
    /// Key `9` (852 + 1477 Hz).
    D9,
    /// Key `*` (941 + 1209 Hz).
    Star,
    /// Key `#` (941 + 1477 Hz).
    Hash,
    /// Key `A` (697 + 1633 Hz).
    A,
    /// Key `B` (770 + 1633 Hz).
    B,
    /// Key `C` (852 + 1633 Hz).
    C,
    /// Key `D` (941 + 1633 Hz).
    D,
}

impl Digit {
    /// All sixteen digits, in event-code order.
    pub const ALL: [Self; 16] = [
        Self::D0,
        Self::D1,
        Self::D2,
        Self::D3,
        Self::D4,
        Self::D5,
        Self::D6,
        Self::D7,
        Self::D8,
        Self::D9,
        Self::Star,
        Self::Hash,
        Self::A,
        Self::B,
        Self::C,
        Self::D,
    ];

    /// The RFC 4733 event code (0-15).
    pub fn event_code(self) -> u8 {
        self as u8
    }

    /// The digit for an RFC 4733 event code, if it is one of 0-15.
    pub fn from_event_code(code: u8) -> Option<Self> {
        Self::ALL.get(usize::from(code)).copied()
    }

    /// The keypad character: `0`-`9`, `*`, `#`, `A`-`D`.
    pub fn to_char(self) -> char {
        b"0123456789*#ABCD"[self as usize] as char
    }

    /// The digit for a keypad character (`a`-`d` accepted too).
    pub fn from_char(c: char) -> Option<Self> {
        let c = c.to_ascii_uppercase();
        b"0123456789*#ABCD"
            .iter()
            .position(|&k| char::from(k) == c)
            .and_then(|i| Self::ALL.get(i).copied())
    }

    /// Keypad row (index into [`LOW_GROUP_HZ`]) and column (index into
    /// [`HIGH_GROUP_HZ`]).
    pub fn position(self) -> (usize, usize) {
        KEYPAD_POSITION[self as usize]
    }

    /// The digit at a keypad row and column, if both are below 4.
    pub fn from_position(row: usize, col: usize) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.position() == (row, col))
    }

    /// Low- and high-group frequencies in Hz.
    pub fn frequencies(self) -> (f32, f32) {
        let (row, col) = self.position();
        (LOW_GROUP_HZ[row], HIGH_GROUP_HZ[col])
    }
}

/// Row and column per digit, in event-code order.
const KEYPAD_POSITION: [(usize, usize); 16] = [
    (3, 1), // 0
    (0, 0), // 1
    (0, 1), // 2
    (0, 2), // 3
    (1, 0), // 4
    (1, 1), // 5
    (1, 2), // 6
    (2, 0), // 7
    (2, 1), // 8
    (2, 2), // 9
    (3, 0), // *
    (3, 2), // #
    (0, 3), // A
    (1, 3), // B
    (2, 3), // C
    (3, 3), // D
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digit_table() {
        let cases = [
            ('1', 697.0, 1209.0, 1),
            ('5', 770.0, 1336.0, 5),
            ('9', 852.0, 1477.0, 9),
            ('0', 941.0, 1336.0, 0),
            ('*', 941.0, 1209.0, 10),
            ('#', 941.0, 1477.0, 11),
            ('A', 697.0, 1633.0, 12),
            ('D', 941.0, 1633.0, 15),
        ];
        for (c, lo, hi, code) in cases {
            let d = Digit::from_char(c).expect("valid digit");
            assert_eq!(d.frequencies(), (lo, hi), "{c}");
            assert_eq!(d.event_code(), code, "{c}");
            assert_eq!(Digit::from_event_code(code), Some(d));
            assert_eq!(d.to_char(), c);
        }
        assert_eq!(Digit::from_char('b'), Some(Digit::B));
        assert_eq!(Digit::from_char('x'), None);
        assert_eq!(Digit::from_event_code(16), None);
        for d in Digit::ALL {
            let (r, c) = d.position();
            assert_eq!(Digit::from_position(r, c), Some(d));
        }
        assert_eq!(Digit::from_position(4, 0), None);
    }

    #[test]
    fn event_codes_agree_with_rfc4733_module() {
        for d in Digit::ALL {
            assert_eq!(
                crate::rfc4733::digit_to_event(d.to_char()),
                Some(d.event_code())
            );
        }
    }
}
