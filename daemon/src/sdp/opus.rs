//! Opus `a=fmtp` parameters (RFC 7587 §6.1 and §7): reading the remote's,
//! writing legato's.
//!
//! The parameters are `name=value` pairs separated by `;` (whitespace around
//! them is tolerated). Names are matched ASCII case-insensitively. A receiver
//! ignores parameters it does not know (RFC 4566 §6), and legato ignores a
//! known parameter whose value it cannot read, keeping the RFC 7587 default;
//! nothing in an fmtp line is ever an error.

use std::fmt::Write as _;

use super::OPUS_MAX_AVERAGE_BITRATE;
use super::parse::parse_decimal;

/// What the remote's Opus `a=fmtp` says. Absent or unreadable parameters hold
/// the RFC 7587 default (`0` for the flags, none for the numbers).
///
/// The receiver-side parameters (`stereo`, `maxplaybackrate`,
/// `maxaveragebitrate`, `useinbandfec`, `usedtx`, `cbr`) describe what the
/// remote prefers to *receive*, so they steer legato's encoder; the `sprop-*`
/// ones describe what the remote will *send*.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct OpusParams {
    /// `useinbandfec=1`: the remote's decoder uses in-band FEC, so legato's
    /// encoder should put it in (it costs bitrate and helps under loss).
    pub(crate) useinbandfec: bool,
    /// `usedtx=1`: the remote prefers that legato sends nothing in silence.
    pub(crate) usedtx: bool,
    /// `stereo=1`: the remote prefers to receive stereo. legato sends mono
    /// anyway, which every Opus decoder plays (RFC 7587 §7.1: a preference).
    pub(crate) stereo: bool,
    /// `sprop-stereo=1`: the remote is likely to send stereo; legato's decoder
    /// downmixes.
    pub(crate) sprop_stereo: bool,
    /// `cbr=1`: the remote prefers constant bitrate.
    pub(crate) cbr: bool,
    /// `maxaveragebitrate` in bit/s: the most the remote wants to receive on
    /// average. Only values within 6000..=510000 (RFC 7587 §6.1) are kept.
    pub(crate) maxaveragebitrate: Option<u32>,
    /// `maxplaybackrate` in Hz: the highest audio rate the remote renders, so
    /// legato's encoder need not code a wider band. Clamped into 8000..=48000.
    pub(crate) maxplaybackrate: Option<u32>,
    /// `sprop-maxcapturerate` in Hz: the highest rate the remote captures at.
    /// Clamped into 8000..=48000.
    pub(crate) sprop_maxcapturerate: Option<u32>,
    /// `ptime` in ms, the fmtp spelling of `a=ptime` (used only without one).
    pub(crate) ptime: Option<u32>,
    /// `minptime` in ms: the shortest packets the remote wants.
    pub(crate) minptime: Option<u32>,
    /// `maxptime` in ms, the fmtp spelling of `a=maxptime` (used only without one).
    pub(crate) maxptime: Option<u32>,
}

impl OpusParams {
    /// Reads an Opus fmtp parameter string such as
    /// `minptime=10;useinbandfec=1`. Never fails: see the module docs. When a
    /// parameter repeats, the last readable value counts.
    pub(crate) fn parse(text: &str) -> Self {
        let mut params = Self::default();
        for pair in text.split(';') {
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            let (name, value) = (name.trim(), value.trim());
            let is = |known: &str| name.eq_ignore_ascii_case(known);
            if is("useinbandfec") {
                set_flag(&mut params.useinbandfec, value);
            } else if is("usedtx") {
                set_flag(&mut params.usedtx, value);
            } else if is("stereo") {
                set_flag(&mut params.stereo, value);
            } else if is("sprop-stereo") {
                set_flag(&mut params.sprop_stereo, value);
            } else if is("cbr") {
                set_flag(&mut params.cbr, value);
            } else if is("maxaveragebitrate") {
                set_number(&mut params.maxaveragebitrate, value, |rate| {
                    (MIN_BITRATE..=MAX_BITRATE).contains(&rate).then_some(rate)
                });
            } else if is("maxplaybackrate") {
                set_number(&mut params.maxplaybackrate, value, audio_rate);
            } else if is("sprop-maxcapturerate") {
                set_number(&mut params.sprop_maxcapturerate, value, audio_rate);
            } else if is("ptime") {
                set_number(&mut params.ptime, value, positive);
            } else if is("minptime") {
                set_number(&mut params.minptime, value, positive);
            } else if is("maxptime") {
                set_number(&mut params.maxptime, value, positive);
            }
        }
        params
    }
}

/// legato's own Opus fmtp parameters, for its offers and answers: it decodes
/// in-band FEC, wants no DTX (a silent stream looks like a dead one to RTP
/// timeouts), prefers and sends mono, renders fullband and asks for at most
/// [`OPUS_MAX_AVERAGE_BITRATE`].
pub(super) fn write_local_fmtp(out: &mut String) {
    // Writing into a String cannot fail.
    let _ = write!(
        out,
        "useinbandfec=1;usedtx=0;stereo=0;sprop-stereo=0;maxplaybackrate=48000;maxaveragebitrate={OPUS_MAX_AVERAGE_BITRATE}"
    );
}

/// `0` and `1` set a flag; anything else leaves the default.
fn set_flag(slot: &mut bool, value: &str) {
    match value {
        "0" => *slot = false,
        "1" => *slot = true,
        _ => {}
    }
}

/// A plain decimal that `accept` keeps replaces the slot; anything else is ignored.
fn set_number(slot: &mut Option<u32>, value: &str, accept: impl Fn(u32) -> Option<u32>) {
    if let Some(number) = parse_decimal::<u32>(value).and_then(accept) {
        *slot = Some(number);
    }
}

fn audio_rate(rate: u32) -> Option<u32> {
    (rate > 0).then_some(rate.clamp(MIN_AUDIO_RATE, MAX_AUDIO_RATE))
}

fn positive(ms: u32) -> Option<u32> {
    (ms > 0).then_some(ms)
}

/// Lowest `maxaveragebitrate` RFC 7587 §6.1 allows, bit/s.
const MIN_BITRATE: u32 = 6_000;
/// Highest `maxaveragebitrate` RFC 7587 §6.1 allows, bit/s.
const MAX_BITRATE: u32 = 510_000;
/// Narrowband, the lowest audio rate Opus codes.
const MIN_AUDIO_RATE: u32 = 8_000;
/// Fullband, the highest audio rate Opus codes.
const MAX_AUDIO_RATE: u32 = 48_000;
