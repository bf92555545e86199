//! MP3 files through LAME (CBR), written as the encoder produces frames.
//!
//! LAME keeps only about two frames of audio (well under a second at any
//! rate used here) before it emits them, so writing its output as it comes
//! keeps the file within a second of the audio without flushing mid-stream
//! (a no-gap flush pads a whole frame of silence each time, which would
//! stretch the timeline). The first frame is LAME's placeholder for the
//! Info tag (a valid, silent frame); [`Mp3Writer::finish`] overwrites it
//! with the real tag, which tells players the encoder delay and padding so
//! they trim them. A file cut before that still plays; it just starts
//! with the encoder delay (about 0.14 s at 8 kHz) and one silent frame.
//!
//! LAME's output does not end on frame boundaries, so a file being
//! written (or killed) usually ends inside a frame. ffmpeg and sox both
//! decode such a file (exit status 0; ffmpeg may log "invalid new
//! backstep" for the cut frame, checked by the crash test). [`frames`]
//! walks the frame headers so [`repair`] can cut that partial frame off,
//! after which both decode it without a word.

use std::fs::File;
use std::io::{self, Write};
use std::num::NonZeroU32;
use std::os::unix::fs::FileExt;

use mp3lame_encoder::{Bitrate, Builder, Encoder, FlushGap, InterleavedPcm, Mode, MonoPcm};

/// The bitrates (kbit/s) a file at `rate` Hz may use: the MPEG-1 or
/// MPEG-2/2.5 Layer III table, less the rates LAME's Rust wrapper lacks
/// (56 and 144). Empty for a rate MP3 does not have.
pub(crate) fn bitrates(rate: u32) -> &'static [u32] {
    match rate {
        32_000 | 44_100 | 48_000 => &[32, 40, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320],
        8000 | 11_025 | 12_000 | 16_000 | 22_050 | 24_000 => {
            &[8, 16, 24, 32, 40, 48, 64, 80, 96, 112, 128, 160]
        }
        _ => &[],
    }
}

/// An MP3 file being written.
pub(crate) struct Mp3Writer {
    file: File,
    encoder: Encoder,
    stereo: bool,
    /// Bytes in the file.
    len: u64,
    /// The encoder's output, reused.
    out: Vec<u8>,
    /// A write failed: the encoder is ahead of the file, so its flush and
    /// Info tag (which counts frames) must not be written.
    failed: bool,
}

impl std::fmt::Debug for Mp3Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mp3Writer")
            .field("stereo", &self.stereo)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl Mp3Writer {
    /// A CBR encoder for `rate` Hz, mono or stereo (left and right kept
    /// apart, not joint), `kbps` kbit/s. Errors say which value LAME
    /// refused.
    pub(crate) fn encoder(rate: u32, stereo: bool, kbps: u32) -> Result<Encoder, String> {
        let bitrate = match kbps {
            8 => Bitrate::Kbps8,
            16 => Bitrate::Kbps16,
            24 => Bitrate::Kbps24,
            32 => Bitrate::Kbps32,
            40 => Bitrate::Kbps40,
            48 => Bitrate::Kbps48,
            64 => Bitrate::Kbps64,
            80 => Bitrate::Kbps80,
            96 => Bitrate::Kbps96,
            112 => Bitrate::Kbps112,
            128 => Bitrate::Kbps128,
            160 => Bitrate::Kbps160,
            192 => Bitrate::Kbps192,
            224 => Bitrate::Kbps224,
            256 => Bitrate::Kbps256,
            320 => Bitrate::Kbps320,
            _ => return Err(format!("MP3 bitrate {kbps} kbit/s is not supported")),
        };
        let lame = |what: &str, e: mp3lame_encoder::BuildError| format!("LAME refused {what}: {e}");
        let mut b = Builder::new().ok_or("LAME could not allocate an encoder")?;
        b.set_num_channels(if stereo { 2 } else { 1 })
            .map_err(|e| lame("the channel count", e))?;
        b.set_sample_rate(rate)
            .map_err(|e| lame("the sample rate", e))?;
        // Without this LAME picks its own output rate for the bitrate.
        b.set_output_sample_rate(NonZeroU32::new(rate))
            .map_err(|e| lame("the sample rate", e))?;
        b.set_brate(bitrate).map_err(|e| lame("the bitrate", e))?;
        b.set_mode(if stereo { Mode::Stereo } else { Mode::Mono })
            .map_err(|e| lame("the channel mode", e))?;
        // 5: LAME's default speed/quality trade-off ("good").
        b.set_quality(mp3lame_encoder::Quality::Good)
            .map_err(|e| lame("the quality", e))?;
        // The Info tag: encoder delay and padding for exact durations.
        b.set_to_write_vbr_tag(true)
            .map_err(|e| lame("the Info tag", e))?;
        b.build().map_err(|e| lame("the settings", e))
    }

    /// Writes into the new, empty `file` with `encoder`.
    pub(crate) fn new(file: File, encoder: Encoder, stereo: bool) -> Self {
        Self {
            file,
            encoder,
            stereo,
            len: 0,
            out: Vec::new(),
            failed: false,
        }
    }

    /// Encodes interleaved samples and appends what LAME emits. On a
    /// write error the file is cut back to the last whole write (frames
    /// stay whole); nothing more should be written.
    pub(crate) fn write(&mut self, samples: &[i16]) -> io::Result<()> {
        if samples.is_empty() {
            return Ok(());
        }
        self.out.clear();
        let frames = if self.stereo {
            samples.len() / 2
        } else {
            samples.len()
        };
        self.out
            .reserve(mp3lame_encoder::max_required_buffer_size(frames));
        let encoded = if self.stereo {
            self.encoder
                .encode_to_vec(InterleavedPcm(samples), &mut self.out)
        } else {
            self.encoder.encode_to_vec(MonoPcm(samples), &mut self.out)
        };
        if let Err(e) = encoded {
            self.failed = true;
            return Err(io::Error::other(format!("MP3 encoder: {e}")));
        }
        self.append()
    }

    /// Flushes the encoder, writes the Info tag over the placeholder
    /// frame, syncs. Returns the file's length.
    pub(crate) fn finish(mut self) -> io::Result<u64> {
        if self.failed {
            self.file.sync_all()?;
            return Ok(self.len);
        }
        self.out.clear();
        self.out.reserve(FLUSH_BYTES);
        self.encoder
            .flush_to_vec::<FlushGap>(&mut self.out)
            .map_err(|e| io::Error::other(format!("MP3 encoder: {e}")))?;
        self.append()?;
        self.out.clear();
        self.out.reserve(self.encoder.lame_tag_size());
        if self.encoder.lame_tag_encode_to_vec(&mut self.out).is_some()
            && self.out.len() as u64 <= self.len
        {
            self.file.write_all_at(&self.out, 0)?;
        }
        self.file.sync_all()?;
        Ok(self.len)
    }

    /// Bytes in the file.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    fn append(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        if let Err(e) = (&self.file).write_all(&self.out) {
            self.failed = true;
            let _ = self.file.set_len(self.len);
            return Err(e);
        }
        self.len += self.out.len() as u64;
        Ok(())
    }
}

/// One MPEG audio Layer III frame header's facts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct FrameHeader {
    /// Frame length in bytes, header included.
    pub(crate) len: usize,
    /// Samples per channel in the frame.
    pub(crate) samples: u32,
    /// Sample rate in Hz.
    pub(crate) rate: u32,
    /// Bitrate in kbit/s.
    pub(crate) kbps: u32,
    /// Whether the frame is mono.
    pub(crate) mono: bool,
}

/// Parses a Layer III frame header (MPEG 1, 2 or 2.5; free-format and
/// reserved values refused).
pub(crate) fn parse_header(h: [u8; 4]) -> Option<FrameHeader> {
    if h[0] != 0xff || h[1] & 0xe0 != 0xe0 {
        return None;
    }
    let version = (h[1] >> 3) & 3; // 0: 2.5, 1: reserved, 2: 2, 3: 1
    let layer = (h[1] >> 1) & 3; // 1: Layer III
    if version == 1 || layer != 1 {
        return None;
    }
    let bitrate_index = usize::from(h[2] >> 4);
    let rate_index = usize::from((h[2] >> 2) & 3);
    if bitrate_index == 0 || bitrate_index == 15 || rate_index == 3 {
        return None;
    }
    let padding = usize::from((h[2] >> 1) & 1);
    let mono = (h[3] >> 6) == 3;
    let mpeg1 = version == 3;
    let kbps = if mpeg1 {
        [
            0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
        ][bitrate_index]
    } else {
        [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160][bitrate_index]
    };
    let rate = match version {
        3 => [44_100, 48_000, 32_000][rate_index],
        2 => [22_050, 24_000, 16_000][rate_index],
        _ => [11_025, 12_000, 8000][rate_index],
    };
    let (samples, factor) = if mpeg1 { (1152, 144) } else { (576, 72) };
    let len = (factor * kbps as usize * 1000) / rate as usize + padding;
    Some(FrameHeader {
        len,
        samples,
        rate,
        kbps,
        mono,
    })
}

/// The result of walking a file's frames.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Walk {
    /// Whole frames found from the start (after any ID3v2 tag).
    pub(crate) frames: u64,
    /// Samples per channel in them.
    pub(crate) samples: u64,
    /// Their sample rate (of the first frame).
    pub(crate) rate: u32,
    /// Where the whole frames end.
    pub(crate) end: u64,
    /// Whether the walk stopped at a frame whose header is whole but whose
    /// body runs past the end of the file (a cut frame).
    pub(crate) cut: bool,
}

/// Walks the frames of `file` from its start (skipping an ID3v2 tag) until
/// something is not a frame or the file ends.
pub(crate) fn frames(file: &File) -> io::Result<Walk> {
    let len = file.metadata()?.len();
    let mut window = Window::new(file);
    let mut pos = 0u64;
    if let Some(id3) = window.get(0, 10)?
        && &id3[0..3] == b"ID3"
    {
        let size = id3[6..10]
            .iter()
            .fold(0u64, |acc, &b| (acc << 7) | u64::from(b & 0x7f));
        pos = 10 + size + if id3[5] & 0x10 != 0 { 10 } else { 0 };
    }
    let mut walk = Walk::default();
    loop {
        let Some(h) = window.get(pos, 4)? else {
            // Fewer bytes than a header left: a cut header, if any.
            walk.cut = pos < len;
            break;
        };
        let Some(frame) = parse_header([h[0], h[1], h[2], h[3]]) else {
            break;
        };
        if walk.frames == 0 {
            walk.rate = frame.rate;
        } else if frame.rate != walk.rate {
            break;
        }
        if pos + frame.len as u64 > len {
            walk.cut = true;
            break;
        }
        pos += frame.len as u64;
        walk.frames += 1;
        walk.samples += u64::from(frame.samples);
        walk.end = pos;
    }
    Ok(walk)
}

/// Whether the first frame of `file` carries a Xing or Info tag (LAME
/// writes it when the file is finalized; a file cut short has the
/// placeholder, all zeros, there instead).
pub(crate) fn has_info_tag(file: &File) -> io::Result<bool> {
    let mut head = [0u8; 64];
    let mut got = 0;
    while got < head.len() {
        match file.read_at(&mut head[got..], got as u64)? {
            0 => break,
            n => got += n,
        }
    }
    Ok(head[..got].windows(4).any(|w| w == b"Info" || w == b"Xing"))
}

/// Reads a file through a 64 KiB window.
struct Window<'a> {
    file: &'a File,
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    at: u64,
}

impl<'a> Window<'a> {
    fn new(file: &'a File) -> Self {
        Self {
            file,
            buf: Vec::new(),
            at: 0,
        }
    }

    /// `n` bytes at `pos`, or `None` when the file ends first.
    fn get(&mut self, pos: u64, n: usize) -> io::Result<Option<&[u8]>> {
        let inside = pos >= self.at && pos + n as u64 <= self.at + self.buf.len() as u64;
        if !inside {
            self.buf.resize(WINDOW, 0);
            let mut got = 0;
            while got < WINDOW {
                match self.file.read_at(&mut self.buf[got..], pos + got as u64)? {
                    0 => break,
                    k => got += k,
                }
            }
            self.buf.truncate(got);
            self.at = pos;
        }
        let start = (pos - self.at) as usize;
        Ok(self.buf.get(start..start + n))
    }
}

/// Cuts a partial last frame off an MP3 file: only when at least
/// [`MIN_FRAMES`] whole frames run from the start straight to it (so a
/// file that is not an MP3 of this shape is never touched). Returns the
/// seconds of audio the file holds when it was cut.
pub(crate) fn repair(file: &File) -> io::Result<Option<f64>> {
    if has_info_tag(file)? {
        return Ok(None);
    }
    let walk = frames(file)?;
    if !walk.cut || walk.frames < MIN_FRAMES || walk.rate == 0 {
        return Ok(None);
    }
    file.set_len(walk.end)?;
    file.sync_all()?;
    Ok(Some(walk.samples as f64 / f64::from(walk.rate)))
}

/// Whole frames a file must start with before [`repair`] trusts it.
const MIN_FRAMES: u64 = 3;
/// Bytes [`Window`] reads at a time.
const WINDOW: usize = 64 << 10;
/// Room for the encoder's final flush (LAME asks for at least 7200).
const FLUSH_BYTES: usize = 7200;
