//! Side-by-side encode time of legato-dsp's Opus encoder and libopus itself
//! (issue acceptance: at most 1.5× libopus per 20 ms frame at the same
//! complexity and bitrate).
//!
//! libopus runs as a separate process: the C program
//! `tests/opus/libopus_encode.c`, compiled here with `cc -O2 … -lopus`
//! against Debian's libopus-dev (`apt-get install libopus-dev`). Both sides
//! encode the same 48 kHz mono PCM in the same 20 ms frames with a fresh
//! encoder per pass, timing only the encode calls; each configuration runs
//! libopus and legato alternately for several passes and reports the median
//! pass.
//!
//! The input is espeak-ng speech resampled to 48 kHz by sox when both are
//! installed, otherwise a synthetic voiced signal (a pitch-varying harmonic
//! series with formant-like spectral peaks and syllable-rate gating).
//!
//! Timing depends on the machine and its load, so this test is ignored by
//! default and asserts nothing about time; run it in release mode:
//!
//! ```sh
//! cargo test --release -p legato-dsp --test opus_vs_libopus -- --ignored --nocapture
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use legato_dsp::codec::Encoder;
use legato_dsp::codec::opus::{OpusApplication, OpusEncoder};
use legato_dsp::time::ClockRate;

const RATE: u32 = 48_000;
const FRAME: usize = 960;
const PASSES: usize = 5;
const BITRATE: u32 = 32_000;

/// A scratch directory under the system temp dir, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir =
            std::env::temp_dir().join(format!("legato-dsp-opus-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Compiles `tests/opus/libopus_encode.c`. `Err` carries the reason to skip.
fn build_libopus_encoder(dir: &Path) -> Result<PathBuf, String> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/opus/libopus_encode.c");
    let exe = dir.join("libopus_encode");
    let output = Command::new("cc")
        .args(["-O2", "-o"])
        .arg(&exe)
        .arg(&source)
        .args(["-lopus", "-lm"])
        .output()
        .map_err(|e| format!("cannot run cc: {e}"))?;
    if output.status.success() {
        return Ok(exe);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("opus/opus.h") || stderr.contains("-lopus") {
        return Err(format!(
            "libopus-dev not installed ({})",
            stderr.lines().next().unwrap_or("").trim()
        ));
    }
    panic!("compiling {} failed:\n{stderr}", source.display());
}

/// About 14 s of espeak-ng speech at 48 kHz, or `None` without espeak-ng
/// or sox.
fn espeak_speech(dir: &Path) -> Option<Vec<i16>> {
    let wav = dir.join("speech.wav");
    let raw = dir.join("speech.raw");
    let text = "The quick brown fox jumps over the lazy dog. Please call me back \
                at extension four two seven before noon tomorrow. Thank you for \
                calling, your call is important to us, please stay on the line.";
    let spoke = Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "150", "-w"])
        .arg(&wav)
        .arg(text)
        .status()
        .ok()?
        .success();
    let converted = spoke
        && Command::new("sox")
            .arg(&wav)
            .args([
                "-r", "48000", "-c", "1", "-b", "16", "-e", "signed", "-t", "raw",
            ])
            .arg(&raw)
            .status()
            .ok()?
            .success();
    if !converted {
        return None;
    }
    let bytes = std::fs::read(&raw).ok()?;
    Some(
        bytes
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect(),
    )
}

/// 14 s of a synthetic voiced signal: harmonics of a 100–180 Hz pitch
/// contour weighted by three formant-like peaks, gated at syllable rate
/// with short pauses.
fn synthetic_speech() -> Vec<i16> {
    let n = RATE as usize * 14;
    let formants = [(700.0f64, 130.0f64), (1220.0, 170.0), (2600.0, 250.0)];
    let mut phase = 0.0f64;
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(RATE);
            let pitch = 140.0 + 40.0 * (2.0 * std::f64::consts::PI * 0.7 * t).sin();
            phase += 2.0 * std::f64::consts::PI * pitch / f64::from(RATE);
            let mut x = 0.0;
            let mut k = 1.0;
            while k * pitch < 4000.0 {
                let f = k * pitch;
                let gain: f64 = formants
                    .iter()
                    .map(|&(c, bw)| 1.0 / (1.0 + ((f - c) / bw).powi(2)))
                    .sum();
                x += gain * (k * phase).sin() / k.sqrt();
                k += 1.0;
            }
            let syllable = (std::f64::consts::PI * 4.0 * t).sin().abs();
            let pause = if (t % 2.5) > 2.1 { 0.0 } else { 1.0 };
            (x * syllable * pause * 6000.0).clamp(-32000.0, 32000.0) as i16
        })
        .collect()
}

/// Runs the libopus program for one configuration: nanoseconds per frame
/// of each pass, and bytes produced per pass.
fn libopus_passes(exe: &Path, pcm: &Path, complexity: u8, app: &str) -> (Vec<f64>, u64, String) {
    let output = Command::new(exe)
        .arg(pcm)
        .arg(RATE.to_string())
        .arg(complexity.to_string())
        .arg(BITRATE.to_string())
        .arg(app)
        .arg(PASSES.to_string())
        .output()
        .expect("run libopus_encode");
    assert!(output.status.success(), "libopus_encode failed: {output:?}");
    let stdout = String::from_utf8(output.stdout).expect("utf-8 output");
    let mut per_frame = Vec::new();
    let mut bytes = 0;
    let mut version = String::new();
    for line in stdout.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            ["P", _, ns, frames, produced] => {
                let ns: f64 = ns.parse().expect("ns");
                let frames: f64 = frames.parse().expect("frames");
                per_frame.push(ns / frames);
                bytes = produced.parse().expect("bytes");
            }
            ["V", rest @ ..] => version = rest.join(" "),
            _ => {}
        }
    }
    (per_frame, bytes, version)
}

/// One pass of legato's encoder: nanoseconds per frame and bytes produced.
fn legato_pass(pcm: &[i16], complexity: u8, app: OpusApplication) -> (f64, u64) {
    let mut enc = OpusEncoder::new(ClockRate::HZ_48000, app, BITRATE).expect("encoder");
    enc.set_complexity(complexity).expect("complexity");
    let mut packet = [0u8; 1500];
    let mut total = 0u128;
    let mut bytes = 0u64;
    let mut frames = 0u32;
    for frame in pcm.chunks_exact(FRAME) {
        let start = Instant::now();
        let n = enc.encode(frame, &mut packet).expect("encode");
        total += start.elapsed().as_nanos();
        bytes += n as u64;
        frames += 1;
    }
    (total as f64 / f64::from(frames), bytes)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[test]
#[ignore = "timing comparison; run in release with --ignored (needs cc and libopus-dev)"]
fn opus_encoder_vs_libopus() {
    if cfg!(debug_assertions) {
        eprintln!("note: debug build; legato's figures are meaningless without --release");
    }
    let scratch = Scratch::new();
    let exe = match build_libopus_encoder(&scratch.0) {
        Ok(exe) => exe,
        Err(reason) => {
            eprintln!(
                "SKIPPED opus_encoder_vs_libopus: {reason} \
                 (apt-get install libopus-dev; scripts/test.sh installs it)"
            );
            return;
        }
    };
    let (pcm, source) = match espeak_speech(&scratch.0) {
        Some(pcm) => (pcm, "espeak-ng speech"),
        None => (synthetic_speech(), "synthetic voiced signal"),
    };
    let raw = scratch.0.join("input.raw");
    let bytes: Vec<u8> = pcm.iter().flat_map(|s| s.to_le_bytes()).collect();
    std::fs::write(&raw, bytes).expect("write PCM");
    let frames = pcm.len() / FRAME;

    let mut version = String::new();
    eprintln!(
        "input: {source}, {frames} frames of 20 ms at 48 kHz mono; {BITRATE} bit/s; \
         median of {PASSES} passes"
    );
    eprintln!(
        "| complexity | application | libopus µs/frame | legato µs/frame | ratio | libopus kbit/s | legato kbit/s |"
    );
    eprintln!("|---|---|---|---|---|---|---|");
    for complexity in [10u8, 5] {
        for (app, name) in [
            (OpusApplication::Voip, "voip"),
            (OpusApplication::Audio, "audio"),
        ] {
            // Alternate the two sides so machine load drifts hit both.
            let mut c_times = Vec::new();
            let mut rust_times = Vec::new();
            let mut c_bytes = 0;
            let mut rust_bytes = 0;
            for _ in 0..2 {
                let (times, produced, v) = libopus_passes(&exe, &raw, complexity, name);
                c_times.extend(times);
                c_bytes = produced;
                version = v;
                for _ in 0..PASSES {
                    let (t, produced) = legato_pass(&pcm, complexity, app);
                    rust_times.push(t);
                    rust_bytes = produced;
                }
            }
            assert!(c_bytes > 0 && rust_bytes > 0);
            let c = median(c_times) / 1000.0;
            let r = median(rust_times) / 1000.0;
            let kbps = |b: u64| b as f64 * 8.0 / (frames as f64 * 0.02) / 1000.0;
            eprintln!(
                "| {complexity} | {name} | {c:.1} | {r:.1} | {:.2} | {:.1} | {:.1} |",
                r / c,
                kbps(c_bytes),
                kbps(rust_bytes)
            );
        }
    }
    eprintln!("libopus: {version}");
}
