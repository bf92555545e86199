//! Interoperability with ffmpeg (libavcodec's G.722, libopus): legato's
//! encoder output decoded by ffmpeg, and ffmpeg's encoded streams decoded
//! by legato, each compared with the original signal after aligning for
//! the codec delay.
//!
//! ffmpeg runs as a separate process on temporary files. These tests skip
//! (with a message) only when no `ffmpeg` binary is on the PATH;
//! `scripts/test.sh` installs it.

use std::path::PathBuf;
use std::process::Command;

use legato_dsp::codec::g722::{G722Decoder, G722Encoder};
use legato_dsp::codec::opus::{OpusApplication, OpusDecoder, OpusEncoder};
use legato_dsp::codec::{Decoder, Encoder};
use legato_dsp::time::ClockRate;

fn ffmpeg_available() -> bool {
    let ok = Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!(
            "SKIPPED: ffmpeg not found on PATH; install it (scripts/test.sh does) to run interop tests"
        );
    }
    ok
}

/// A unique temporary path.
fn temp(name: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("legato-dsp-{}-{n}-{name}", std::process::id()))
}

fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .expect("spawn ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn write_s16(path: &PathBuf, pcm: &[i16]) {
    let bytes: Vec<u8> = pcm.iter().flat_map(|s| s.to_le_bytes()).collect();
    std::fs::write(path, bytes).unwrap();
}

fn read_s16(path: &PathBuf) -> Vec<i16> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// A speech-band multi-tone test signal with a slow amplitude envelope.
fn multitone(rate: u32, seconds: f64) -> Vec<i16> {
    let n = (rate as f64 * seconds) as usize;
    (0..n)
        .map(|i| {
            let t = i as f64 / rate as f64;
            let f = |hz: f64, a: f64| a * (2.0 * std::f64::consts::PI * hz * t).sin();
            let env = 0.75 + 0.25 * (2.0 * std::f64::consts::PI * 1.5 * t).sin();
            (env * (f(220.0, 5000.0)
                + f(710.0, 4000.0)
                + f(1330.0, 3000.0)
                + f(2450.0, 2000.0)
                + f(3150.0, 1200.0))) as i16
        })
        .collect()
}

/// Best SNR in dB of `got` against `want` over delays `0..max_delay`
/// (the first 200 ms skipped for codec start-up), and the delay.
fn snr_aligned(want: &[i16], got: &[i16], max_delay: usize, skip: usize) -> (f64, usize) {
    let mut best = (f64::MIN, 0);
    for d in 0..max_delay {
        let end = want.len().min(got.len().saturating_sub(d));
        if end <= skip {
            continue;
        }
        let (mut s, mut e) = (0f64, 0f64);
        for i in skip..end {
            let w = want[i] as f64;
            s += w * w;
            e += (got[i + d] as f64 - w).powi(2);
        }
        let snr = 10.0 * (s / e).log10();
        if snr > best.0 {
            best = (snr, d);
        }
    }
    best
}

#[test]
fn g722_legato_encoder_ffmpeg_decoder() {
    if !ffmpeg_available() {
        return;
    }
    let pcm = multitone(16_000, 2.0);
    let mut enc = G722Encoder::new();
    let mut codes = Vec::new();
    let mut buf = [0u8; 160];
    for frame in pcm.chunks_exact(320) {
        let n = enc.encode(frame, &mut buf).unwrap();
        codes.extend_from_slice(&buf[..n]);
    }
    let (src, dst) = (temp("enc.g722"), temp("dec.raw"));
    std::fs::write(&src, &codes).unwrap();
    ffmpeg(&[
        "-f",
        "g722",
        "-i",
        src.to_str().unwrap(),
        "-f",
        "s16le",
        "-ar",
        "16000",
        "-ac",
        "1",
        dst.to_str().unwrap(),
    ]);
    let got = read_s16(&dst);
    let _ = std::fs::remove_file(&src);
    let _ = std::fs::remove_file(&dst);
    let (snr, delay) = snr_aligned(&pcm, &got, 64, 3200);
    eprintln!("G.722 legato -> ffmpeg: SNR {snr:.1} dB (delay {delay} samples)");
    assert!(snr >= 30.0, "SNR {snr:.1} dB");
}

#[test]
fn g722_ffmpeg_encoder_legato_decoder() {
    if !ffmpeg_available() {
        return;
    }
    let pcm = multitone(16_000, 2.0);
    let (src, dst) = (temp("src.raw"), temp("ff.g722"));
    write_s16(&src, &pcm);
    ffmpeg(&[
        "-f",
        "s16le",
        "-ar",
        "16000",
        "-ac",
        "1",
        "-i",
        src.to_str().unwrap(),
        "-c:a",
        "g722",
        "-f",
        "g722",
        dst.to_str().unwrap(),
    ]);
    let codes = std::fs::read(&dst).unwrap();
    let _ = std::fs::remove_file(&src);
    let _ = std::fs::remove_file(&dst);
    let mut dec = G722Decoder::new();
    let mut got = Vec::new();
    let mut out = [0i16; 320];
    for chunk in codes.chunks(160) {
        let n = dec.decode(chunk, &mut out).unwrap();
        got.extend_from_slice(&out[..n]);
    }
    let (snr, delay) = snr_aligned(&pcm, &got, 64, 3200);
    eprintln!("G.722 ffmpeg -> legato: SNR {snr:.1} dB (delay {delay} samples)");
    assert!(snr >= 30.0, "SNR {snr:.1} dB");
}

#[test]
fn g722_matches_ffmpeg_bit_for_bit() {
    if !ffmpeg_available() {
        return;
    }
    // Includes energy above 4 kHz so the higher band is exercised too.
    let pcm: Vec<i16> = multitone(16_000, 1.0)
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            let hi = 900.0 * (2.0 * std::f64::consts::PI * 5100.0 * i as f64 / 16_000.0).sin();
            (s as f64 * 0.8 + hi) as i16
        })
        .collect();
    let (src, ff_codes, ff_pcm, ours) = (
        temp("bx.raw"),
        temp("bx.g722"),
        temp("bx-dec.raw"),
        temp("bx-ours.g722"),
    );
    write_s16(&src, &pcm);
    ffmpeg(&[
        "-f",
        "s16le",
        "-ar",
        "16000",
        "-ac",
        "1",
        "-i",
        src.to_str().unwrap(),
        "-c:a",
        "g722",
        "-f",
        "g722",
        ff_codes.to_str().unwrap(),
    ]);
    let theirs = std::fs::read(&ff_codes).unwrap();
    let mut enc = G722Encoder::new();
    let mut mine = vec![0u8; pcm.len() / 2];
    enc.encode(&pcm, &mut mine).unwrap();
    let same = mine.iter().zip(&theirs).filter(|(a, b)| a == b).count();
    eprintln!(
        "G.722 encoder: {same} of {} code bytes identical to ffmpeg's",
        theirs.len()
    );
    assert_eq!(mine.len(), theirs.len());
    assert_eq!(same, theirs.len(), "encoder output differs from ffmpeg's");
    // Decoder: ffmpeg decodes our codes; compare PCM sample by sample.
    std::fs::write(&ours, &mine).unwrap();
    ffmpeg(&[
        "-f",
        "g722",
        "-i",
        ours.to_str().unwrap(),
        "-f",
        "s16le",
        "-ar",
        "16000",
        "-ac",
        "1",
        ff_pcm.to_str().unwrap(),
    ]);
    let their_pcm = read_s16(&ff_pcm);
    let mut dec = G722Decoder::new();
    let mut my_pcm = vec![0i16; mine.len() * 2];
    dec.decode(&mine, &mut my_pcm).unwrap();
    let max_diff = my_pcm
        .iter()
        .zip(&their_pcm)
        .map(|(a, b)| (*a as i32 - *b as i32).abs())
        .max()
        .unwrap();
    eprintln!("G.722 decoder: max sample difference from ffmpeg's decoder {max_diff}");
    for p in [src, ff_codes, ff_pcm, ours] {
        let _ = std::fs::remove_file(p);
    }
    assert_eq!(my_pcm.len(), their_pcm.len());
    assert!(max_diff <= 1, "decoder differs by {max_diff}");
}

/// Ogg (RFC 3533) CRC-32: polynomial 0x04C11DB7, MSB first, no reflection.
fn ogg_crc(data: &[u8]) -> u32 {
    let mut crc = 0u32;
    for &b in data {
        crc ^= (b as u32) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Appends one Ogg page holding exactly one packet.
fn ogg_page(out: &mut Vec<u8>, packet: &[u8], flags: u8, granule: u64, seq: u32) {
    let mut page = Vec::new();
    page.extend_from_slice(b"OggS");
    page.push(0);
    page.push(flags);
    page.extend_from_slice(&granule.to_le_bytes());
    page.extend_from_slice(&0x4C45_4741u32.to_le_bytes()); // serial
    page.extend_from_slice(&seq.to_le_bytes());
    page.extend_from_slice(&[0; 4]); // CRC, filled below
    let mut lacing = vec![255u8; packet.len() / 255];
    lacing.push((packet.len() % 255) as u8);
    page.push(lacing.len() as u8);
    page.extend_from_slice(&lacing);
    page.extend_from_slice(packet);
    let crc = ogg_crc(&page);
    page[22..26].copy_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&page);
}

/// Ogg Opus (RFC 7845) file of 20 ms mono packets.
fn ogg_opus(packets: &[Vec<u8>], input_rate: u32, pre_skip: u16) -> Vec<u8> {
    let mut out = Vec::new();
    let mut head = b"OpusHead".to_vec();
    head.push(1);
    head.push(1);
    head.extend_from_slice(&pre_skip.to_le_bytes());
    head.extend_from_slice(&input_rate.to_le_bytes());
    head.extend_from_slice(&0i16.to_le_bytes());
    head.push(0);
    ogg_page(&mut out, &head, 0x02, 0, 0);
    let mut tags = b"OpusTags".to_vec();
    tags.extend_from_slice(&6u32.to_le_bytes());
    tags.extend_from_slice(b"legato");
    tags.extend_from_slice(&0u32.to_le_bytes());
    ogg_page(&mut out, &tags, 0, 0, 1);
    for (i, p) in packets.iter().enumerate() {
        let last = i == packets.len() - 1;
        ogg_page(
            &mut out,
            p,
            if last { 0x04 } else { 0 },
            (i as u64 + 1) * 960,
            i as u32 + 2,
        );
    }
    out
}

/// The packets of an Ogg stream (one logical stream), headers included.
fn ogg_packets(data: &[u8]) -> Vec<Vec<u8>> {
    let mut packets = Vec::new();
    let mut cur = Vec::new();
    let mut pos = 0;
    while pos + 27 <= data.len() {
        assert_eq!(&data[pos..pos + 4], b"OggS", "bad page at {pos}");
        let nseg = data[pos + 26] as usize;
        let lacing = &data[pos + 27..pos + 27 + nseg];
        let mut body = pos + 27 + nseg;
        for &l in lacing {
            cur.extend_from_slice(&data[body..body + l as usize]);
            body += l as usize;
            if l < 255 {
                packets.push(std::mem::take(&mut cur));
            }
        }
        pos = body;
    }
    packets
}

/// Best SNR over signed delays (ffmpeg trims the pre-skip, so legato's
/// output can lead or lag).
fn snr_signed(want: &[i16], got: &[i16], max_delay: usize, skip: usize) -> (f64, isize) {
    let (a, da) = snr_aligned(want, got, max_delay, skip);
    let (b, db) = snr_aligned(got, want, max_delay, skip);
    if a >= b {
        (a, da as isize)
    } else {
        (b, -(db as isize))
    }
}

fn opus_legato_to_ffmpeg(rate: ClockRate) {
    if !ffmpeg_available() {
        return;
    }
    let pcm = multitone(rate.hz(), 2.0);
    let mut enc = OpusEncoder::new(rate, OpusApplication::Audio, 128_000).unwrap();
    let frame = enc.frame_len();
    let mut packets = Vec::new();
    let mut buf = [0u8; 1275];
    for f in pcm.chunks_exact(frame) {
        let n = enc.encode(f, &mut buf).unwrap();
        packets.push(buf[..n].to_vec());
    }
    let (src, dst) = (temp("ours.opus"), temp("ours-dec.raw"));
    std::fs::write(&src, ogg_opus(&packets, rate.hz(), 312)).unwrap();
    // libopus decodes at its native 48 kHz; the reference is the same
    // analytic multi-tone rendered at 48 kHz, so no resampler of ffmpeg's
    // sits in the measured path.
    ffmpeg(&[
        "-c:a",
        "libopus",
        "-i",
        src.to_str().unwrap(),
        "-f",
        "s16le",
        "-ac",
        "1",
        dst.to_str().unwrap(),
    ]);
    let got = read_s16(&dst);
    let _ = std::fs::remove_file(&src);
    let _ = std::fs::remove_file(&dst);
    let want = multitone(48_000, 2.0);
    let (snr, delay) = snr_signed(&want, &got, 48 * 15, 48 * 200);
    eprintln!(
        "Opus {} Hz legato -> ffmpeg libopus (decoded at 48 kHz): SNR {snr:.1} dB (delay {delay} samples at 48 kHz)",
        rate.hz()
    );
    assert!(snr >= 30.0, "SNR {snr:.1} dB");
}

fn opus_ffmpeg_to_legato(rate: ClockRate) {
    if !ffmpeg_available() {
        return;
    }
    let pcm = multitone(rate.hz(), 2.0);
    let (src, dst) = (temp("ff-src.raw"), temp("ff.opus"));
    write_s16(&src, &pcm);
    let ar = rate.hz().to_string();
    ffmpeg(&[
        "-f",
        "s16le",
        "-ar",
        &ar,
        "-ac",
        "1",
        "-i",
        src.to_str().unwrap(),
        "-c:a",
        "libopus",
        "-b:a",
        "128k",
        "-application",
        "audio",
        "-frame_duration",
        "20",
        "-f",
        "ogg",
        dst.to_str().unwrap(),
    ]);
    let data = std::fs::read(&dst).unwrap();
    let _ = std::fs::remove_file(&src);
    let _ = std::fs::remove_file(&dst);
    let packets = ogg_packets(&data);
    assert!(packets[0].starts_with(b"OpusHead") && packets[1].starts_with(b"OpusTags"));
    let mut dec = OpusDecoder::new(rate).unwrap();
    let mut out = vec![0i16; rate.samples_in_ms(120) as usize];
    let mut got = Vec::new();
    for p in &packets[2..] {
        let n = dec.decode(p, &mut out).unwrap();
        got.extend_from_slice(&out[..n]);
    }
    let (snr, delay) = snr_signed(
        &pcm,
        &got,
        rate.samples_in_ms(15) as usize,
        rate.samples_in_ms(200) as usize,
    );
    eprintln!(
        "Opus {} Hz ffmpeg libopus -> legato: SNR {snr:.1} dB (delay {delay} samples)",
        rate.hz()
    );
    assert!(snr >= 30.0, "SNR {snr:.1} dB");
}

#[test]
fn opus_48k_legato_encoder_ffmpeg_decoder() {
    opus_legato_to_ffmpeg(ClockRate::HZ_48000);
}

#[test]
fn opus_16k_legato_encoder_ffmpeg_decoder() {
    opus_legato_to_ffmpeg(ClockRate::HZ_16000);
}

#[test]
fn opus_48k_ffmpeg_encoder_legato_decoder() {
    opus_ffmpeg_to_legato(ClockRate::HZ_48000);
}

#[test]
fn opus_16k_ffmpeg_encoder_legato_decoder() {
    opus_ffmpeg_to_legato(ClockRate::HZ_16000);
}
