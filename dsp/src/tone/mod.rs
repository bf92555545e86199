//! Call-progress tones: a country table after ITU-T E.180 (and its
//! supplement listing national tones), a generator, and a detector that
//! classifies the tones from frequency and cadence.
//!
//! The table covers dial, ringback, busy, congestion, call-waiting and
//! special information tone (SIT) for [`Country::ALL`]: dual tones (US, UK),
//! amplitude-modulated tones (JP ringback 400 Hz × 16 Hz, IN 400 Hz × 25 Hz),
//! beating pairs (AU 413 + 438 Hz), multi-part cadences (UK ringback
//! 0.4-0.2-0.4-2.0 s) and level-alternating bursts (AU congestion).
//!
//! Frequencies and cadences are national values as collected in E.180
//! Supplement 2; levels are nominal send levels per component. Values
//! checked against public lists derived from it carry their source in a
//! comment; dsp/README.md lists which values were corrected and which remain
//! unverified (all levels among them).

mod detect;
mod generate;

pub use detect::{CountrySet, ProgressDetector, ProgressDetectorConfig, ProgressEvent};
pub use generate::ProgressToneGenerator;

/// Countries in the table (ISO 3166 alpha-2, alphabetical).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Country {
    /// Australia.
    Au,
    /// Brazil.
    Br,
    /// China.
    Cn,
    /// Germany.
    De,
    /// France.
    Fr,
    /// India.
    In,
    /// Japan.
    Jp,
    /// Russia.
    Ru,
    /// United Kingdom.
    Uk,
    /// United States (and the North American numbering plan).
    Us,
}

impl Country {
    /// Every country in the table.
    pub const ALL: [Self; 10] = [
        Self::Au,
        Self::Br,
        Self::Cn,
        Self::De,
        Self::Fr,
        Self::In,
        Self::Jp,
        Self::Ru,
        Self::Uk,
        Self::Us,
    ];

    /// Parses an ISO 3166 alpha-2 code (case-insensitive; `GB` for the UK).
    pub fn from_code(code: &str) -> Option<Self> {
        Some(match code.to_ascii_uppercase().as_str() {
            "AU" => Self::Au,
            "BR" => Self::Br,
            "CN" => Self::Cn,
            "DE" => Self::De,
            "FR" => Self::Fr,
            "IN" => Self::In,
            "JP" => Self::Jp,
            "RU" => Self::Ru,
            "UK" | "GB" => Self::Uk,
            "US" | "CA" => Self::Us,
            _ => return None,
        })
    }

    /// The country's two-letter code.
    pub fn code(self) -> &'static str {
        ["AU", "BR", "CN", "DE", "FR", "IN", "JP", "RU", "UK", "US"][self as usize]
    }

    /// The country's definition of `tone`.
    pub fn tone(self, tone: ProgressTone) -> &'static ToneSpec {
        &TABLE[self as usize][tone as usize]
    }

    /// Other cadences of `tone` that published sources give for this
    /// country (same sounds as [`Country::tone`], other timing). The
    /// detector accepts them as well; the generator plays only the table's.
    pub fn alternatives(self, tone: ProgressTone) -> &'static [&'static [Segment]] {
        ALTERNATIVES
            .iter()
            .filter(|(c, t, _)| *c == self && *t == tone)
            .map(|(_, _, cadences)| *cadences)
            .next()
            .unwrap_or(&[])
    }
}

/// Kinds of call-progress tone (alphabetical).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProgressTone {
    /// Called party busy.
    Busy,
    /// Call-waiting indication.
    CallWaiting,
    /// Network congestion / reorder / equipment engaged.
    Congestion,
    /// Dial tone.
    Dial,
    /// Ringing (ringback) tone.
    Ringback,
    /// Special information tone (ITU-T Q.35 / E.180 §7).
    SpecialInformation,
}

impl ProgressTone {
    /// Every kind.
    pub const ALL: [Self; 6] = [
        Self::Busy,
        Self::CallWaiting,
        Self::Congestion,
        Self::Dial,
        Self::Ringback,
        Self::SpecialInformation,
    ];

    /// Short lowercase name.
    pub fn name(self) -> &'static str {
        [
            "busy",
            "call-waiting",
            "congestion",
            "dial",
            "ringback",
            "sit",
        ][self as usize]
    }
}

/// What sounds during an "on" segment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sound {
    /// One sine, Hz.
    Single(f32),
    /// Two sines of equal level, Hz.
    Dual(f32, f32),
    /// A carrier amplitude-modulated by a low frequency (100 % depth,
    /// E.180's "f1 × f2" notation), Hz.
    Modulated {
        /// Carrier, Hz.
        carrier: f32,
        /// Modulating frequency, Hz.
        rate: f32,
    },
}

impl Sound {
    /// Frequencies with energy in this sound (AM: carrier and sidebands).
    pub fn components(self) -> ([f32; 3], usize) {
        match self {
            Self::Single(f) => ([f, 0.0, 0.0], 1),
            Self::Dual(a, b) => ([a, b, 0.0], 2),
            Self::Modulated { carrier, rate } => ([carrier - rate, carrier, carrier + rate], 3),
        }
    }
}

/// One segment of a cadence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Segment {
    /// What sounds, or `None` for silence.
    pub sound: Option<Sound>,
    /// Duration in milliseconds; 0 means "until stopped" (continuous tone).
    pub ms: u32,
    /// Level change of this segment relative to the tone's nominal level, dB.
    pub level_db: f32,
}

/// A country's definition of one progress tone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ToneSpec {
    /// Nominal level of each sine component, dBm0.
    pub level_dbm0: f32,
    /// The cadence, repeated forever.
    pub segments: &'static [Segment],
}

impl ToneSpec {
    /// True for a continuous tone (one segment of unlimited length).
    pub fn is_continuous(&self) -> bool {
        self.segments.len() == 1 && self.segments[0].ms == 0
    }

    /// Length of one cadence cycle in ms (0 for continuous tones).
    pub fn cycle_ms(&self) -> u32 {
        self.segments.iter().map(|s| s.ms).sum()
    }
}

const fn on(sound: Sound, ms: u32) -> Segment {
    Segment {
        sound: Some(sound),
        ms,
        level_db: 0.0,
    }
}

const fn on_at(sound: Sound, ms: u32, level_db: f32) -> Segment {
    Segment {
        sound: Some(sound),
        ms,
        level_db,
    }
}

const fn off(ms: u32) -> Segment {
    Segment {
        sound: None,
        ms,
        level_db: 0.0,
    }
}

const fn spec(level_dbm0: f32, segments: &'static [Segment]) -> ToneSpec {
    ToneSpec {
        level_dbm0,
        segments,
    }
}

use Sound::{Dual, Modulated, Single};

/// ITU-T SIT (Q.35): 950, 1400, 1800 Hz, 330 ms each, then 1 s silence.
const SIT_ITU: &[Segment] = &[
    on(Single(950.0), 330),
    on(Single(1400.0), 330),
    on(Single(1800.0), 330),
    off(1000),
];

/// Cadences where public sources disagree with the table, per country and
/// tone. Sources:
///
/// - DE busy 0.5/0.5 s and congestion 0.2/0.2 s: the ITU list of national
///   tones (after E.180 Supplement 2) gives Germany two variants each,
///   "busy I" 0.48/0.48 and "busy II" 0.5/0.5, "congestion I" 0.24/0.24 and
///   "congestion II" 0.2/0.2 (reproduced in the PalmMicro PA1688 SDK's
///   `dialtone.txt`).
/// - RU ringback 0.8/3.2 s: the value this table carried from the E.180
///   Supplement 2 list before the Russian equipment rules (1.0 ± 0.1 s on,
///   4.0 ± 0.4 s off) replaced it; equipment built to the older list still
///   plays it.
/// - UK busy 0.75/0.75 s: a textbook table of British and North American
///   tones ("Radio Frequency", free-ebooks.net, page 114) gives "number
///   busy" 400 Hz 0.75 s on, 0.75 s off (BT SIN 350 and the table:
///   0.375/0.375).
static ALTERNATIVES: &[(Country, ProgressTone, &[&[Segment]])] = &[
    (
        Country::De,
        ProgressTone::Busy,
        &[&[on(Single(425.0), 500), off(500)]],
    ),
    (
        Country::De,
        ProgressTone::Congestion,
        &[&[on(Single(425.0), 200), off(200)]],
    ),
    (
        Country::Ru,
        ProgressTone::Ringback,
        &[&[on(Single(425.0), 800), off(3200)]],
    ),
    (
        Country::Uk,
        ProgressTone::Busy,
        &[&[on(Single(400.0), 750), off(750)]],
    ),
];

/// The table, indexed by `Country as usize` then `ProgressTone as usize`
/// (busy, call waiting, congestion, dial, ringback, SIT).
static TABLE: [[ToneSpec; 6]; 10] = [
    // AU: 425 Hz; dial and ringback 413 + 438 Hz (425 Hz beating at 25 Hz);
    // congestion alternates full and −10 dB bursts.
    [
        spec(-13.0, &[on(Single(425.0), 375), off(375)]),
        spec(
            -13.0,
            &[
                on(Single(425.0), 200),
                off(200),
                on(Single(425.0), 200),
                off(4400),
            ],
        ),
        spec(
            -13.0,
            &[
                on(Single(425.0), 375),
                off(375),
                on_at(Single(425.0), 375, -10.0),
                off(375),
            ],
        ),
        spec(-13.0, &[on(Dual(413.0, 438.0), 0)]),
        spec(
            -13.0,
            &[
                on(Dual(413.0, 438.0), 400),
                off(200),
                on(Dual(413.0, 438.0), 400),
                off(2000),
            ],
        ),
        spec(-16.0, SIT_ITU),
    ],
    // BR: 425 Hz.
    [
        spec(-10.0, &[on(Single(425.0), 250), off(250)]),
        spec(-10.0, &[on(Single(425.0), 50), off(1000)]),
        spec(
            -10.0,
            &[
                on(Single(425.0), 250),
                off(250),
                on(Single(425.0), 750),
                off(250),
            ],
        ),
        spec(-10.0, &[on(Single(425.0), 0)]),
        spec(-10.0, &[on(Single(425.0), 1000), off(4000)]),
        spec(-16.0, SIT_ITU),
    ],
    // CN: 450 Hz.
    [
        spec(-10.0, &[on(Single(450.0), 350), off(350)]),
        spec(-10.0, &[on(Single(450.0), 400), off(4000)]),
        spec(-10.0, &[on(Single(450.0), 700), off(700)]),
        spec(-10.0, &[on(Single(450.0), 0)]),
        spec(-10.0, &[on(Single(450.0), 1000), off(4000)]),
        // China, special information tone: 450 Hz, three 0.1 s bursts
        // 0.1 s apart, then 0.4 s on, 0.4 s off (DAHDI tools zonedata.c, zone
        // "cn", after the ITU list of national tones per E.180); not the
        // three-frequency Q.35 sequence.
        spec(
            -10.0,
            &[
                on(Single(450.0), 100),
                off(100),
                on(Single(450.0), 100),
                off(100),
                on(Single(450.0), 100),
                off(100),
                on(Single(450.0), 400),
                off(400),
            ],
        ),
    ],
    // DE: 425 Hz.
    [
        spec(-10.0, &[on(Single(425.0), 480), off(480)]),
        spec(
            -10.0,
            &[
                on(Single(425.0), 200),
                off(200),
                on(Single(425.0), 200),
                off(5000),
            ],
        ),
        spec(-10.0, &[on(Single(425.0), 240), off(240)]),
        spec(-10.0, &[on(Single(425.0), 0)]),
        spec(-10.0, &[on(Single(425.0), 1000), off(4000)]),
        spec(-16.0, SIT_ITU),
    ],
    // FR: 440 Hz.
    [
        spec(-10.0, &[on(Single(440.0), 500), off(500)]),
        spec(-10.0, &[on(Single(440.0), 300), off(10_000)]),
        spec(-10.0, &[on(Single(440.0), 250), off(250)]),
        spec(-10.0, &[on(Single(440.0), 0)]),
        spec(-10.0, &[on(Single(440.0), 1500), off(3500)]),
        spec(-16.0, SIT_ITU),
    ],
    // IN: 400 Hz; dial and ringback 400 × 25 Hz.
    [
        spec(-10.0, &[on(Single(400.0), 750), off(750)]),
        spec(
            -10.0,
            &[
                on(Single(400.0), 200),
                off(100),
                on(Single(400.0), 200),
                off(7500),
            ],
        ),
        spec(-10.0, &[on(Single(400.0), 250), off(250)]),
        spec(
            -10.0,
            &[on(
                Modulated {
                    carrier: 400.0,
                    rate: 25.0,
                },
                0,
            )],
        ),
        spec(
            -10.0,
            &[
                on(
                    Modulated {
                        carrier: 400.0,
                        rate: 25.0,
                    },
                    400,
                ),
                off(200),
                on(
                    Modulated {
                        carrier: 400.0,
                        rate: 25.0,
                    },
                    400,
                ),
                off(2000),
            ],
        ),
        spec(-16.0, SIT_ITU),
    ],
    // JP: 400 Hz; ringback 400 × 16 Hz.
    [
        spec(-10.0, &[on(Single(400.0), 500), off(500)]),
        spec(
            -10.0,
            &[
                on(Single(400.0), 100),
                off(100),
                on(Single(400.0), 100),
                off(3000),
            ],
        ),
        spec(-10.0, &[on(Single(400.0), 250), off(250)]),
        spec(-10.0, &[on(Single(400.0), 0)]),
        spec(
            -10.0,
            &[
                on(
                    Modulated {
                        carrier: 400.0,
                        rate: 16.0,
                    },
                    1000,
                ),
                off(2000),
            ],
        ),
        spec(-16.0, SIT_ITU),
    ],
    // RU: 425 Hz. Russian Federation, equipment rules (table of
    // information tones, consultant.ru): ringback 1.0 ± 0.1 s on,
    // 4.0 ± 0.4 s off; busy 0.3-0.4 s on and off; congestion ("busy on
    // overload") 0.15-0.2 s on and off; levels −15 to −5 dB. DAHDI tools
    // zonedata.c (zone "ru", after GOST R 45.223-2001) also gives 1.0/4.0 s
    // ringback. Busy 0.4/0.4 and congestion 0.2/0.2 are inside the ranges.
    [
        spec(-10.0, &[on(Single(425.0), 400), off(400)]),
        spec(-10.0, &[on(Single(425.0), 200), off(5000)]),
        spec(-10.0, &[on(Single(425.0), 200), off(200)]),
        spec(-10.0, &[on(Single(425.0), 0)]),
        spec(-10.0, &[on(Single(425.0), 1000), off(4000)]),
        spec(-16.0, SIT_ITU),
    ],
    // UK: dial 350 + 440 Hz, ringback 400 + 450 Hz, others 400 Hz.
    [
        spec(-10.0, &[on(Single(400.0), 375), off(375)]),
        // United Kingdom, call waiting: 400 Hz, 0.1 s on, 4.0 s off (DAHDI
        // tools zonedata.c, zone "uk", from BT SIN 350).
        spec(-10.0, &[on(Single(400.0), 100), off(4000)]),
        spec(
            -10.0,
            &[
                on(Single(400.0), 400),
                off(350),
                on(Single(400.0), 225),
                off(525),
            ],
        ),
        spec(-13.0, &[on(Dual(350.0, 440.0), 0)]),
        spec(
            -13.0,
            &[
                on(Dual(400.0, 450.0), 400),
                off(200),
                on(Dual(400.0, 450.0), 400),
                off(2000),
            ],
        ),
        spec(-16.0, SIT_ITU),
    ],
    // US: precise tone plan; SIT uses the North American 913.8, 1370.6,
    // 1776.7 Hz (274, 274, 380 ms).
    [
        spec(-24.0, &[on(Dual(480.0, 620.0), 500), off(500)]),
        // United States, call waiting: 440 Hz, 0.3 s on, 10 s off (Silicon
        // Labs AN93 table 82, taken from E.180 Supplement 2 (04/98); DAHDI
        // tools zonedata.c, zone "us").
        spec(-13.0, &[on(Single(440.0), 300), off(10_000)]),
        spec(-24.0, &[on(Dual(480.0, 620.0), 250), off(250)]),
        spec(-13.0, &[on(Dual(350.0, 440.0), 0)]),
        spec(-19.0, &[on(Dual(440.0, 480.0), 2000), off(4000)]),
        spec(
            -24.0,
            &[
                on(Single(913.8), 274),
                on(Single(1370.6), 274),
                on(Single(1776.7), 380),
                off(1000),
            ],
        ),
    ],
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_shapes() {
        for country in Country::ALL {
            assert_eq!(Country::from_code(country.code()), Some(country));
            for tone in ProgressTone::ALL {
                let spec = country.tone(tone);
                assert!(!spec.segments.is_empty());
                assert_eq!(
                    spec.is_continuous(),
                    tone == ProgressTone::Dial,
                    "{country:?} {tone:?}"
                );
                assert!(spec.segments.iter().any(|s| s.sound.is_some()));
            }
        }
        assert_eq!(Country::from_code("gb"), Some(Country::Uk));
        assert_eq!(Country::from_code("xx"), None);
        assert_eq!(Country::Uk.tone(ProgressTone::Ringback).cycle_ms(), 3000);
    }
}
