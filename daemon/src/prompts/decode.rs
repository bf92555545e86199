//! Decoding a prompt into [`PromptAudio`] (a blocking job for a prompt
//! worker, never a shard): any container and codec symphonia is built with
//! here (WAV with 8/16/24/32-bit PCM, float, µ-law or A-law; MP3; FLAC;
//! Ogg Vorbis), any channel count (mixed down to mono), any rate
//! (converted to the nearest media-clock rate at or above it: 8, 16, 24,
//! 32 or 48 kHz). Segments are published as they decode: a short first one
//! so playback can start at once, then about a second each.

use std::io::ErrorKind;

use legato_dsp::resample::Converter;
use legato_dsp::time::ClockRate;
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{CODEC_TYPE_NULL, DecoderOptions};
use symphonia::core::errors::Error;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::{MediaSource, MediaSourceStream};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use super::audio::PromptAudio;

/// Rates the media clock plays.
const RATES: [u32; 5] = [8_000, 16_000, 24_000, 32_000, 48_000];
/// The first segment: enough to start playing (100 ms).
const FIRST_SEGMENT_MS: u64 = 100;
/// Later segments (1 s).
const SEGMENT_MS: u64 = 1000;
/// Packets that fail to decode before the prompt counts as broken.
const MAX_BAD_PACKETS: u32 = 20;

/// The media-clock rate a file at `hz` plays at.
pub(crate) fn target_rate(hz: u32) -> ClockRate {
    let hz = RATES.into_iter().find(|&r| r >= hz).unwrap_or(48_000);
    ClockRate::new(hz).unwrap_or(ClockRate::HZ_8000)
}

/// Decodes `source` into `audio`, failing it with a message a controller
/// can act on. `extension` hints the format; `max_seconds` bounds the
/// duration.
pub(crate) fn decode(
    source: Box<dyn MediaSource>,
    extension: Option<&str>,
    audio: &PromptAudio,
    max_seconds: u32,
) {
    match run(source, extension, audio, max_seconds) {
        Ok(()) => audio.complete(),
        Err(error) => audio.fail(error),
    }
}

fn run(
    source: Box<dyn MediaSource>,
    extension: Option<&str>,
    audio: &PromptAudio,
    max_seconds: u32,
) -> Result<(), String> {
    let stream = MediaSourceStream::new(source, Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = extension {
        hint.with_extension(ext);
    }
    let probed = symphonia::default::get_probe()
        .format(
            &hint,
            stream,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
        .map_err(|e| format!("not audio legato can play (WAV, MP3, FLAC, Ogg Vorbis): {e}"))?;
    let mut format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or("the file has no audio track")?;
    let track_id = track.id;
    let params = track.codec_params.clone();
    let mut decoder = symphonia::default::get_codecs()
        .make(&params, &DecoderOptions::default())
        .map_err(|e| format!("unsupported audio codec: {e}"))?;
    let expected_frames = params.n_frames;
    let mut out = Output::new(audio, max_seconds);
    let mut bad = 0u32;
    let mut frames = 0u64;
    loop {
        let packet = match format.next_packet() {
            Ok(packet) => packet,
            Err(Error::IoError(e)) if e.kind() == ErrorKind::UnexpectedEof => break,
            Err(Error::ResetRequired) => break,
            Err(e) => return Err(format!("reading the file failed: {e}")),
        };
        if packet.track_id() != track_id {
            continue;
        }
        match decoder.decode(&packet) {
            Ok(decoded) => {
                let spec = *decoded.spec();
                let channels = spec.channels.count().max(1);
                let mut buffer = SampleBuffer::<i16>::new(decoded.capacity() as u64, spec);
                buffer.copy_interleaved_ref(decoded);
                frames += (buffer.samples().len() / channels) as u64;
                out.push(buffer.samples(), channels, spec.rate)?;
            }
            Err(Error::DecodeError(e)) => {
                bad += 1;
                if bad > MAX_BAD_PACKETS {
                    return Err(format!("decoding failed ({bad} bad packets): {e}"));
                }
            }
            Err(Error::IoError(e)) if e.kind() == ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(format!("decoding failed: {e}")),
        }
    }
    out.finish()?;
    if frames == 0 {
        return Err("the file holds no audio".into());
    }
    if let Some(expected) = expected_frames
        && frames + frames / 100 < expected
    {
        let rate = u64::from(params.sample_rate.unwrap_or(8000).max(1));
        return Err(format!(
            "the file ends after {:.1} s of the {:.1} s its header announces (truncated)",
            frames as f64 / rate as f64,
            expected as f64 / rate as f64
        ));
    }
    Ok(())
}

/// Mixes to mono, converts the rate and publishes segments.
struct Output<'a> {
    audio: &'a PromptAudio,
    max_seconds: u32,
    converter: Option<Converter>,
    /// The source rate everything so far came at.
    source_rate: Option<u32>,
    mono: Vec<i16>,
    pending: Vec<i16>,
    published_segments: usize,
}

impl<'a> Output<'a> {
    fn new(audio: &'a PromptAudio, max_seconds: u32) -> Self {
        Self {
            audio,
            max_seconds,
            converter: None,
            source_rate: None,
            mono: Vec::new(),
            pending: Vec::new(),
            published_segments: 0,
        }
    }

    fn push(&mut self, interleaved: &[i16], channels: usize, rate: u32) -> Result<(), String> {
        match self.source_rate {
            None => {
                if rate == 0 {
                    return Err("the file declares a sample rate of 0".into());
                }
                let target = target_rate(rate);
                self.audio.set_rate(target);
                if target.hz() != rate {
                    self.converter = Some(
                        Converter::new(rate, target.hz())
                            .map_err(|_| format!("cannot convert {rate} Hz audio"))?,
                    );
                }
                self.source_rate = Some(rate);
            }
            Some(r) if r != rate => {
                return Err(format!(
                    "the sample rate changes mid-file ({r} Hz, then {rate} Hz)"
                ));
            }
            Some(_) => {}
        }
        self.mono.clear();
        self.mono.extend(interleaved.chunks(channels).map(|frame| {
            let sum: i32 = frame.iter().map(|&s| i32::from(s)).sum();
            (sum / channels as i32) as i16
        }));
        match &mut self.converter {
            Some(converter) => converter.push(&self.mono, &mut self.pending),
            None => self.pending.extend_from_slice(&self.mono),
        }
        self.flush(false)
    }

    fn finish(&mut self) -> Result<(), String> {
        if let Some(converter) = &mut self.converter {
            converter.finish(&mut self.pending);
        }
        self.flush(true)
    }

    /// Publishes what is pending once it makes a segment (or at the end).
    fn flush(&mut self, end: bool) -> Result<(), String> {
        let Some(rate) = self.audio.rate() else {
            return Ok(());
        };
        let hz = u64::from(rate.hz());
        let total = self.audio.samples() + self.pending.len() as u64;
        if total > u64::from(self.max_seconds) * hz {
            return Err(format!(
                "longer than the {} s prompts may last",
                self.max_seconds
            ));
        }
        let segment_ms = if self.published_segments == 0 {
            FIRST_SEGMENT_MS
        } else {
            SEGMENT_MS
        };
        if end || self.pending.len() as u64 >= hz * segment_ms / 1000 {
            let segment = std::mem::take(&mut self.pending);
            if !segment.is_empty() {
                self.audio.publish(segment);
                self.published_segments += 1;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::prompts::audio::Progress;
    use std::io::Cursor;

    /// A 16-bit PCM WAV; `declared` overrides the data size in its header.
    pub(in crate::prompts) fn wav(
        rate: u32,
        channels: u16,
        samples: &[i16],
        declared: Option<u32>,
    ) -> Vec<u8> {
        let data = (samples.len() * 2) as u32;
        let declared = declared.unwrap_or(data);
        let mut w = Vec::new();
        w.extend_from_slice(b"RIFF");
        w.extend_from_slice(&(36 + declared).to_le_bytes());
        w.extend_from_slice(b"WAVEfmt ");
        w.extend_from_slice(&16u32.to_le_bytes());
        w.extend_from_slice(&1u16.to_le_bytes());
        w.extend_from_slice(&channels.to_le_bytes());
        w.extend_from_slice(&rate.to_le_bytes());
        w.extend_from_slice(&(rate * 2 * u32::from(channels)).to_le_bytes());
        w.extend_from_slice(&(2 * channels).to_le_bytes());
        w.extend_from_slice(&16u16.to_le_bytes());
        w.extend_from_slice(b"data");
        w.extend_from_slice(&declared.to_le_bytes());
        for s in samples {
            w.extend_from_slice(&s.to_le_bytes());
        }
        w
    }

    fn run_on(bytes: Vec<u8>) -> PromptAudio {
        let audio = PromptAudio::default();
        decode(Box::new(Cursor::new(bytes)), Some("wav"), &audio, 60);
        audio
    }

    #[test]
    fn a_wav_decodes_into_segments_at_its_rate() {
        let samples: Vec<i16> = (0..16_000).map(|i| (i % 100) as i16 * 100).collect();
        let audio = run_on(wav(8000, 1, &samples, None));
        assert_eq!(audio.progress(), Progress::Complete, "{:?}", audio.error());
        assert_eq!(audio.rate(), Some(ClockRate::HZ_8000));
        assert_eq!(audio.samples(), 16_000);
        let first = audio.segment(0).unwrap().len();
        assert!(
            (800..2000).contains(&first),
            "a short first segment: {first}"
        );
        assert_eq!(&audio.segment(0).unwrap()[..5], &samples[..5]);
    }

    #[test]
    fn stereo_at_44_1_khz_is_mixed_and_converted() {
        let mut samples = Vec::new();
        for i in 0..44_100 {
            samples.push((i % 50) as i16);
            samples.push((i % 50) as i16 + 100);
        }
        let audio = run_on(wav(44_100, 2, &samples, None));
        assert_eq!(audio.progress(), Progress::Complete, "{:?}", audio.error());
        assert_eq!(audio.rate(), Some(ClockRate::HZ_48000));
        assert_eq!(audio.samples(), 48_000);
    }

    #[test]
    fn bad_files_fail_with_a_reason() {
        let html = b"<!doctype html><html><body>404</body></html>".to_vec();
        let audio = run_on(html);
        assert_eq!(audio.progress(), Progress::Failed);
        assert!(
            audio.error().unwrap().contains("not audio"),
            "{:?}",
            audio.error()
        );
        // A header announcing 2 s over 1 s of data.
        let samples = vec![0i16; 8000];
        let audio = run_on(wav(8000, 1, &samples, Some(32_000)));
        assert_eq!(audio.progress(), Progress::Failed);
        assert!(
            audio.error().unwrap().contains("truncated"),
            "{:?}",
            audio.error()
        );
        // Over the duration limit.
        let audio = PromptAudio::default();
        decode(
            Box::new(Cursor::new(wav(8000, 1, &vec![0; 8000 * 3], None))),
            Some("wav"),
            &audio,
            2,
        );
        assert!(
            audio.error().unwrap().contains("2 s"),
            "{:?}",
            audio.error()
        );
    }
}
