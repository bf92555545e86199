//! Interop matrix with ffmpeg as the far end (issue 10, point 1).
//!
//! For every ordered pair of {PCMU, PCMA, G.722, Opus}, ffmpeg streams a
//! reference signal as RTP into leg A, whose SDP offers only that codec;
//! leg B's peer offers only the other codec. The peer collects what legato
//! sends it, writes the payloads into a file ffmpeg reads (raw G.711, raw
//! G.722, or Ogg Opus) and ffmpeg decodes it to 8 kHz PCM. Neither the
//! sender's encoder nor the receiver's decoder is legato's own.
//!
//! The reference is an analytic multi-tone: eight tones between 297 Hz and
//! 3.1 kHz (below 3.4 kHz, so G.711 at 8 kHz keeps all of them), each with a
//! slowly varying envelope of its own rate, written as WAV at 8, 16 and
//! 48 kHz for ffmpeg to encode. Its frequencies are not multiples of a
//! common step, so the signal has no short period and the cross-correlation
//! peak is unique. Because the reference is a formula, it can be evaluated
//! at any fractional delay, which matters at 3 kHz (half a sample of
//! misalignment there costs more than any of these codecs).
//!
//! Alignment: the whole-sample delay from the cross-correlation (±500 ms),
//! then, per 200 ms block, the whole-sample delay within ±40 ms of the
//! previous block's and the fractional delay by a golden-section search. A
//! change of delay between blocks is a slip: a frame the adaptive jitter
//! buffer dropped or inserted because the sender or the machine stalled.
//! A steady block whose SNR is 10 dB under the median block's is damaged
//! (it holds a concealed frame). Slips and damaged blocks are counted and
//! printed; the blocks next to a slip and the damaged ones are left out of
//! the measures, and at least half the blocks must remain. The relay path
//! has neither; the PCM path shows them when ffmpeg or the machine stalls
//! (see `BATCH`). "glob SNR" in the table is the
//! waveform SNR with one delay for the whole stream, for comparison.
//!
//! Three measures per pair, over the measured blocks after the first 300 ms:
//! - waveform SNR: signal against the residual after the delay and a
//!   least-squares gain (the gain is reported too);
//! - tone SNR: the received audio is fitted by least squares onto the
//!   in-phase and quadrature version of each enveloped tone; the ratio of
//!   the fitted part to the rest. It ignores a phase shift per tone and
//!   counts noise, distortion and anything not in the reference;
//! - tone level error: the largest |level| in dB of a fitted tone relative
//!   to the reference tone (spectral balance).
//!
//! Assertions: waveform pairs (G.711 and G.722 on both sides) must reach a
//! 20 dB waveform SNR (they measure 31-37 dB). Pairs with Opus on either
//! side are asserted on the tone SNR (15 dB) and every pair on the tone
//! level error (1 dB): Opus is a transform codec with noise shaping and
//! band-energy preservation, which promises the spectrum, not the
//! waveform, so a phase-insensitive noise measure and the per-tone levels
//! are what it must keep. Measured, legato's Opus encoder (audio mode,
//! 32 kbit/s) keeps these tones at 18 dB whichever measure, and ffmpeg's
//! 64 kbit/s stream decoded by legato at 28-30 dB; the waveform SNR of
//! Opus pairs is printed, not asserted. Also asserted: the path (relay for
//! the same codec and packet duration, transcoding otherwise), B's
//! payload type, and B's packet duration.
//!
//! Pairs stream [`BATCH`] at a time, the two backends' tests one after
//! the other. A pair that fails (in practice: one whose stream the loaded
//! machine disrupted) is streamed once more, alone, and that try counts;
//! both tables are printed.
//!
//! Knobs for reproducing: `INTEROP_ONLY="PCMU/20 -> G722/20,Opus/20 ->
//! PCMA"` runs only the pairs whose label contains one of the
//! comma-separated strings; `INTEROP_LATCH=1` lets ffmpeg send from ports
//! of its own choosing (legato latches after its probation);
//! `INTEROP_DEBUG=1` prints each block's delay.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use legato_proto::v1 as proto;
use legato_tests::{Io, Options, Peer, daemon_or_skip, local_rtp, per_backend};

/// Length of the reference signal, s.
const SECONDS: f64 = 4.0;
/// Audio skipped at the start of the comparison (codec and jitter-buffer
/// start-up), s.
const SKIP: f64 = 0.3;
/// Analysis rate: everything is decoded to it by ffmpeg.
const RATE: f64 = 8000.0;
/// Cross-correlation search range, samples at [`RATE`] (±500 ms).
const SEARCH: i64 = 4000;
/// Pairs streaming at the same time (see [`run_pairs`]).
const BATCH: usize = 4;
/// A sample above this magnitude is sound (the reference reaches
/// thousands within its first milliseconds; G.711 silence decodes to at
/// most 8).
const ONSET: f64 = 200.0;
/// Waveform SNR every G.711/G.722 pair must reach, dB.
const MIN_WAVEFORM_SNR: f64 = 20.0;
/// Tone SNR pairs with Opus must reach, dB.
const MIN_TONE_SNR: f64 = 15.0;
/// Share of the 200 ms blocks that must be measured: not next to a slip
/// (a frame the jitter buffer dropped or inserted) and not damaged (a
/// concealed frame), both of which an adaptive jitter buffer does when the
/// sender or the machine stalls; both are counted and printed.
const MIN_MEASURED_SHARE: f64 = 0.5;
/// A steady block whose waveform SNR is this much (dB) below the median
/// block's is damaged: it holds a concealed frame or a glitch.
const DAMAGED_BELOW: f64 = 10.0;
/// Largest tone level error allowed for every pair, dB.
const MAX_LEVEL_ERROR: f64 = 1.0;

/// The reference tones: frequency (Hz), envelope rate (Hz), carrier phase
/// and envelope phase (rad).
const TONES: [(f64, f64, f64, f64); 8] = [
    (297.3, 0.37, 0.1, 0.0),
    (463.9, 0.61, 1.3, 2.1),
    (701.1, 0.83, 2.9, 4.0),
    (1013.7, 1.07, 0.7, 1.0),
    (1399.3, 1.29, 4.1, 3.3),
    (1831.9, 0.53, 5.3, 5.2),
    (2377.1, 0.97, 3.7, 0.6),
    (3041.3, 1.41, 2.2, 2.7),
];
/// Peak amplitude of one tone (the sum stays below 16 000).
const TONE_PEAK: f64 = 1900.0;

/// Envelope of tone `k` at time `t` (s): between 0.1 and 1 of the peak.
fn envelope(k: usize, t: f64) -> f64 {
    let (_, rate, _, phase) = TONES[k];
    TONE_PEAK * (0.55 + 0.45 * (2.0 * std::f64::consts::PI * rate * t + phase).sin())
}

/// In-phase and quadrature components of tone `k` at time `t` (s); the
/// reference tone is the in-phase one.
fn tone(k: usize, t: f64) -> (f64, f64) {
    let (hz, _, phase, _) = TONES[k];
    let env = envelope(k, t);
    let w = 2.0 * std::f64::consts::PI * hz * t + phase;
    (env * w.sin(), env * w.cos())
}

/// The reference signal at time `t` (s); zero outside `0..SECONDS`.
fn reference(t: f64) -> f64 {
    if !(0.0..SECONDS).contains(&t) {
        return 0.0;
    }
    (0..TONES.len()).map(|k| tone(k, t).0).sum()
}

/// A 16-bit mono WAV file of the reference at `rate`.
fn write_reference_wav(path: &Path, rate: u32) {
    let n = (SECONDS * f64::from(rate)) as usize;
    let data: Vec<u8> = (0..n)
        .flat_map(|i| {
            let x = reference(i as f64 / f64::from(rate)).round() as i16;
            x.to_le_bytes()
        })
        .collect();
    let mut wav = Vec::with_capacity(44 + data.len());
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&rate.to_le_bytes());
    wav.extend_from_slice(&(rate * 2).to_le_bytes());
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&(data.len() as u32).to_le_bytes());
    wav.extend_from_slice(&data);
    std::fs::write(path, wav).expect("write reference WAV");
}

/// A codec of the matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Codec {
    Pcmu,
    Pcma,
    G722,
    Opus,
}

impl Codec {
    const ALL: [Self; 4] = [Self::Pcmu, Self::Pcma, Self::G722, Self::Opus];

    fn name(self) -> &'static str {
        match self {
            Self::Pcmu => "PCMU",
            Self::Pcma => "PCMA",
            Self::G722 => "G722",
            Self::Opus => "Opus",
        }
    }

    fn pt(self) -> u8 {
        match self {
            Self::Pcmu => 0,
            Self::Pcma => 8,
            Self::G722 => 9,
            Self::Opus => 111,
        }
    }

    fn rtpmap(self) -> &'static str {
        match self {
            Self::Pcmu => "PCMU/8000",
            Self::Pcma => "PCMA/8000",
            Self::G722 => "G722/8000",
            Self::Opus => "opus/48000/2",
        }
    }

    /// Audio sample rate.
    fn audio_rate(self) -> u32 {
        match self {
            Self::Pcmu | Self::Pcma => 8000,
            Self::G722 => 16000,
            Self::Opus => 48000,
        }
    }

    /// RTP clock rate (G.722's is 8000 for historical reasons, RFC 3551).
    fn rtp_rate(self) -> u32 {
        match self {
            Self::Opus => 48000,
            _ => 8000,
        }
    }

    /// Whether it is a waveform codec (the output follows the input
    /// sample by sample).
    fn waveform(self) -> bool {
        self != Self::Opus
    }

    /// ffmpeg's arguments to encode and pace `ptime` ms packets of it.
    ///
    /// `asetnsamples` cuts the audio into one frame per packet (ffmpeg's
    /// RTP muxer sends G.711 and G.722 frames as they come from the
    /// encoder, cut at the packet size) and `arealtime` releases each frame
    /// at its time. `-re` instead paces demuxed packets, which a WAV file
    /// gives in 4 KiB blocks: bursts of 12-13 packets every 256 ms at
    /// 8 kHz, a far end no real phone resembles.
    fn ffmpeg_encode(self, ptime: u32) -> Vec<String> {
        let samples = self.audio_rate() * ptime / 1000;
        let mut args: Vec<String> = vec![
            "-af".into(),
            format!("asetnsamples=n={samples}:p=1,arealtime"),
        ];
        match self {
            Self::Pcmu => args.extend(["-c:a".into(), "pcm_mulaw".into()]),
            Self::Pcma => args.extend(["-c:a".into(), "pcm_alaw".into()]),
            Self::G722 => args.extend(["-c:a".into(), "g722".into()]),
            Self::Opus => {
                // A far end with bandwidth to spare: Opus at 64 kbit/s in
                // audio mode, so the matrix measures legato's side.
                args.extend(
                    [
                        "-c:a",
                        "libopus",
                        "-b:a",
                        "64k",
                        "-application",
                        "audio",
                        "-frame_duration",
                    ]
                    .map(String::from),
                );
                args.push(ptime.to_string());
            }
        }
        args
    }
}

/// One ordered pair: ffmpeg sends `a` with packets of `a_ptime` ms, the
/// peer on leg B receives `b` with packets of `b_ptime` ms.
#[derive(Clone, Copy, Debug)]
struct Pair {
    a: Codec,
    a_ptime: u32,
    b: Codec,
    b_ptime: u32,
}

impl Pair {
    fn label(&self) -> String {
        format!(
            "{}/{} -> {}/{}",
            self.a.name(),
            self.a_ptime,
            self.b.name(),
            self.b_ptime
        )
    }

    /// Whether legato may forward packets as they are.
    fn relayable(&self) -> bool {
        self.a == self.b && self.a_ptime == self.b_ptime
    }
}

/// The 16 ordered pairs at 20 ms, plus PCMU 20 ms → PCMU 30 ms and PCMA
/// 30 ms → PCMU 20 ms.
fn pairs() -> Vec<Pair> {
    let mut pairs = Vec::new();
    for a in Codec::ALL {
        for b in Codec::ALL {
            pairs.push(Pair {
                a,
                a_ptime: 20,
                b,
                b_ptime: 20,
            });
        }
    }
    pairs.push(Pair {
        a: Codec::Pcmu,
        a_ptime: 20,
        b: Codec::Pcmu,
        b_ptime: 30,
    });
    pairs.push(Pair {
        a: Codec::Pcma,
        a_ptime: 30,
        b: Codec::Pcmu,
        b_ptime: 20,
    });
    pairs
}

/// An SDP offer for port `port` of 127.0.0.1 naming only `codec`, with
/// `a=ptime`.
fn offer(port: u16, codec: Codec, ptime: u32) -> String {
    let pt = codec.pt();
    format!(
        "v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP {pt}\r\na=rtpmap:{pt} {}\r\na=ptime:{ptime}\r\na=sendrecv\r\n",
        codec.rtpmap()
    )
}

async fn connected(client: &legato_client::Client, session: &str, sdp: String) -> proto::Leg {
    let created = client
        .create_leg(legato_client::CreateLeg::incoming(session, sdp))
        .await
        .expect("create leg");
    client
        .update_leg(
            legato_client::UpdateLeg::new(&created.leg.leg_id).state(proto::LegState::Connected),
        )
        .await
        .expect("connect leg")
        .leg
}

/// An RTP packet leg B's peer received.
#[derive(Clone, Debug)]
struct Packet {
    pt: u8,
    seq: u16,
    ts: u32,
    payload: Vec<u8>,
}

/// Receives RTP (skipping RTCP) on `peer` until `stop` is set.
fn collect(peer: &Peer, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<Packet>> {
    let socket = peer.socket.try_clone().expect("clone socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("read timeout");
    std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        // Drop what the PCM path sent (silence) while earlier pairs were
        // streaming: the socket's buffer overflowed on it long ago.
        socket.set_nonblocking(true).expect("non-blocking");
        while socket.recv_from(&mut buf).is_ok() {}
        socket.set_nonblocking(false).expect("blocking");
        while !stop.load(Ordering::Relaxed) {
            let Ok((n, _)) = socket.recv_from(&mut buf) else {
                continue;
            };
            if n < 12 || (192..=223).contains(&buf[1]) {
                continue;
            }
            got.push(Packet {
                pt: buf[1] & 0x7f,
                seq: u16::from_be_bytes([buf[2], buf[3]]),
                ts: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
                payload: buf[12..n].to_vec(),
            });
        }
        got
    })
}

/// Packets in sequence order (duplicates dropped) and the number missing
/// between the first and the last.
fn in_order(mut packets: Vec<Packet>) -> (Vec<Packet>, u64) {
    let Some(first) = packets.first().map(|p| p.seq) else {
        return (packets, 0);
    };
    // Extend sequence numbers relative to the first (a 4 s stream never
    // gets near half the sequence space).
    let ext = |seq: u16| i64::from(seq.wrapping_sub(first) as i16);
    packets.sort_by_key(|p| ext(p.seq));
    packets.dedup_by_key(|p| p.seq);
    let span = match (packets.first(), packets.last()) {
        (Some(f), Some(l)) => (ext(l.seq) - ext(f.seq) + 1) as u64,
        _ => 0,
    };
    let missing = span - packets.len() as u64;
    (packets, missing)
}

/// Samples at 48 kHz in one Opus packet (RFC 6716 §3.1), from its TOC
/// byte and frame count.
fn opus_samples(packet: &[u8]) -> u64 {
    let Some(&toc) = packet.first() else {
        return 0;
    };
    let config = toc >> 3;
    let frame = match config {
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
        12..=15 => [480, 960][usize::from(config % 2)],
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    };
    let frames = match toc & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => packet.get(1).map_or(0, |b| u64::from(b & 0x3f)),
    };
    frame * frames
}

/// CRC-32 of an Ogg page (polynomial 0x04c11db7, no reflection, initial
/// value 0).
fn ogg_crc(data: &[u8]) -> u32 {
    let mut crc = 0u32;
    for &byte in data {
        crc ^= u32::from(byte) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04c1_1db7
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Appends one Ogg page holding one packet.
fn ogg_page(out: &mut Vec<u8>, flags: u8, granule: u64, sequence: u32, packet: &[u8]) {
    let start = out.len();
    out.extend_from_slice(b"OggS");
    out.push(0);
    out.push(flags);
    out.extend_from_slice(&granule.to_le_bytes());
    out.extend_from_slice(&0x1e6a_7000u32.to_le_bytes()); // stream serial
    out.extend_from_slice(&sequence.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes()); // CRC, filled in below
    let mut lacing = vec![255u8; packet.len() / 255];
    lacing.push((packet.len() % 255) as u8);
    out.push(lacing.len() as u8);
    out.extend_from_slice(&lacing);
    out.extend_from_slice(packet);
    let crc = ogg_crc(&out[start..]);
    out[start + 22..start + 26].copy_from_slice(&crc.to_le_bytes());
}

/// An Ogg Opus file (RFC 7845) of `packets`, mono, no pre-skip.
fn ogg_opus(packets: &[Packet]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut head = b"OpusHead".to_vec();
    head.push(1); // version
    head.push(1); // channels
    head.extend_from_slice(&0u16.to_le_bytes()); // pre-skip
    head.extend_from_slice(&48000u32.to_le_bytes());
    head.extend_from_slice(&0i16.to_le_bytes()); // output gain
    head.push(0); // channel mapping family
    ogg_page(&mut out, 0x02, 0, 0, &head);
    let mut tags = b"OpusTags".to_vec();
    tags.extend_from_slice(&6u32.to_le_bytes());
    tags.extend_from_slice(b"legato");
    tags.extend_from_slice(&0u32.to_le_bytes());
    ogg_page(&mut out, 0, 0, 1, &tags);
    let mut granule = 0u64;
    for (i, p) in packets.iter().enumerate() {
        granule += opus_samples(&p.payload);
        let flags = if i + 1 == packets.len() { 0x04 } else { 0 };
        ogg_page(&mut out, flags, granule, i as u32 + 2, &p.payload);
    }
    out
}

/// Decodes `packets` of `codec` with ffmpeg to 8 kHz mono samples.
fn ffmpeg_decode(dir: &Path, tag: &str, codec: Codec, packets: &[Packet]) -> Vec<f64> {
    let (input, format, extra): (PathBuf, &str, &[&str]) = match codec {
        Codec::Pcmu => (
            dir.join(format!("{tag}.ulaw")),
            "mulaw",
            &["-ar", "8000", "-ac", "1"],
        ),
        Codec::Pcma => (
            dir.join(format!("{tag}.alaw")),
            "alaw",
            &["-ar", "8000", "-ac", "1"],
        ),
        Codec::G722 => (dir.join(format!("{tag}.g722")), "g722", &[]),
        Codec::Opus => (dir.join(format!("{tag}.opus")), "ogg", &[]),
    };
    let bytes = match codec {
        Codec::Opus => ogg_opus(packets),
        _ => packets
            .iter()
            .flat_map(|p| p.payload.iter().copied())
            .collect(),
    };
    std::fs::write(&input, bytes).expect("write received audio");
    let output = dir.join(format!("{tag}.s16"));
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-f", format])
        .args(extra)
        .arg("-i")
        .arg(&input)
        .args(["-ar", "8000", "-ac", "1", "-f", "s16le"])
        .arg(&output)
        .stdin(Stdio::null())
        .output()
        .expect("run ffmpeg decoder");
    assert!(
        out.status.success(),
        "ffmpeg could not decode {}: {}",
        input.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(&output)
        .expect("read decoded audio")
        .chunks_exact(2)
        .map(|b| f64::from(i16::from_le_bytes([b[0], b[1]])))
        .collect()
}

/// What one pair measured.
#[derive(Clone, Debug)]
struct Measured {
    pair: Pair,
    transcoding: bool,
    packets: usize,
    missing: u64,
    /// RTP timestamp steps seen on B, in ms (should be B's ptime).
    steps_ms: Vec<u32>,
    /// Leg A's interarrival jitter (ms) and concealed frames as ffmpeg's
    /// stream ended.
    a_jitter_ms: f64,
    a_concealed: u64,
    /// Changes of delay between consecutive blocks (frames the jitter
    /// buffer dropped or inserted).
    slips: usize,
    /// Each slip: when (s into the reference) and by how much (ms).
    slip_list: Vec<(f64, f64)>,
    /// Steady blocks left out as damaged.
    damaged: usize,
    /// Share of the blocks measured.
    measured_share: f64,
    /// Waveform SNR with one delay for the whole stream, dB.
    global_snr: f64,
    /// Least-squares gain, dB.
    gain_db: f64,
    /// Waveform SNR with each block at its own delay, dB.
    waveform_snr: f64,
    tone_snr: f64,
    level_error: f64,
}

/// Length of an alignment block, samples at [`RATE`] (200 ms).
const BLOCK: usize = 1600;
/// How far a block's delay is searched around the whole stream's,
/// samples (±40 ms).
const BLOCK_SEARCH: i64 = 320;

/// The received audio cut into blocks, each with the delay (samples,
/// fractional) that aligns it with the reference.
#[derive(Debug)]
struct Alignment {
    /// `(first sample, delay)` of each block of [`BLOCK`] samples.
    blocks: Vec<(usize, f64)>,
    /// Whole-sample delay of each block.
    lags: Vec<i64>,
    /// Whether each block is measured: steady, and not damaged.
    clean: Vec<bool>,
}

impl Alignment {
    /// The blocks measured: `(samples, delay)`.
    fn measured(&self) -> impl Iterator<Item = (std::ops::Range<usize>, f64)> + '_ {
        (0..self.blocks.len()).filter(|&i| self.clean[i]).map(|i| {
            let (start, delay) = self.blocks[i];
            (start..start + BLOCK, delay)
        })
    }

    /// Whether block `i`'s whole-sample delay equals both neighbours' (a
    /// block holding a slip is half misaligned whatever its delay; its
    /// neighbours are dropped with it).
    fn is_steady(&self, i: usize) -> bool {
        let lag = self.lags[i];
        (i == 0 || self.lags[i - 1] == lag) && self.lags.get(i + 1).is_none_or(|&l| l == lag)
    }

    fn slips(&self) -> usize {
        self.lags.windows(2).filter(|w| w[0] != w[1]).count()
    }

    /// Each slip: the reference time it happened by (s) and the change of
    /// delay (ms, positive: audio inserted).
    fn slip_list(&self) -> Vec<(f64, f64)> {
        self.blocks
            .windows(2)
            .zip(self.lags.windows(2))
            .filter(|(_, l)| l[0] != l[1])
            .map(|(b, l)| {
                let at = (b[1].0 as f64 - b[1].1) / RATE;
                (at, (l[1] - l[0]) as f64 / RATE * 1000.0)
            })
            .collect()
    }

    /// Steady blocks left out for a waveform SNR more than
    /// [`DAMAGED_BELOW`] under the median block's.
    fn damaged(&self) -> usize {
        (0..self.blocks.len())
            .filter(|&i| self.is_steady(i) && !self.clean[i])
            .count()
    }

    /// Share of the blocks measured.
    fn measured_share(&self) -> f64 {
        let clean = self.clean.iter().filter(|&&c| c).count();
        clean as f64 / self.blocks.len().max(1) as f64
    }
}

/// Samples of `received` (at [`RATE`]) that are compared to the reference
/// delayed by `delay` samples: those whose reference time lies in
/// `SKIP..SECONDS - 0.05`.
fn overlap(received_len: usize, delay: f64) -> std::ops::Range<usize> {
    let from = (SKIP * RATE + delay).ceil().max(0.0) as usize;
    let to = (((SECONDS - 0.05) * RATE + delay).floor().max(0.0) as usize).min(received_len);
    from..to.max(from)
}

/// Sums for the waveform SNR: received energy, cross term, reference
/// energy.
#[derive(Clone, Copy, Debug, Default)]
struct Sums {
    rr: f64,
    rx: f64,
    xx: f64,
}

impl Sums {
    /// Adds every `step`-th sample of `range` against the reference
    /// delayed by `delay`.
    fn add(&mut self, received: &[f64], range: std::ops::Range<usize>, delay: f64, step: usize) {
        for n in range.step_by(step) {
            let Some(&r) = received.get(n) else { break };
            let x = reference((n as f64 - delay) / RATE);
            self.rr += r * r;
            self.rx += r * x;
            self.xx += x * x;
        }
    }

    /// SNR (dB) and least-squares gain.
    fn snr(&self) -> (f64, f64) {
        if self.xx == 0.0 {
            return (f64::NEG_INFINITY, 0.0);
        }
        let gain = self.rx / self.xx;
        let signal = gain * gain * self.xx;
        let noise = (self.rr - signal).max(1e-9);
        (10.0 * (signal / noise).log10(), gain)
    }
}

/// The reference sampled at [`RATE`].
fn reference_samples() -> Vec<f64> {
    (0..(SECONDS * RATE) as usize)
        .map(|n| reference(n as f64 / RATE))
        .collect()
}

/// The whole-sample delay in `range` maximising the normalised
/// cross-correlation of `received[window]` with the reference.
fn best_lag(
    received: &[f64],
    reference: &[f64],
    window: std::ops::Range<usize>,
    range: std::ops::RangeInclusive<i64>,
) -> Option<i64> {
    let window = window.start..window.end.min(received.len());
    let energy_prefix: Vec<f64> = std::iter::once(0.0)
        .chain(reference.iter().scan(0.0, |sum, x| {
            *sum += x * x;
            Some(*sum)
        }))
        .collect();
    let mut best: Option<(f64, i64)> = None;
    for delay in range {
        // Reference indices n - delay for n in the window, clipped to it.
        let from = (window.start as i64 - delay).max(0);
        let to = (window.end as i64 - delay).min(reference.len() as i64);
        if to - from < 100 {
            continue;
        }
        let x = &reference[from as usize..to as usize];
        let r = &received[(from + delay) as usize..(to + delay) as usize];
        let dot: f64 = r.iter().zip(x).map(|(a, b)| a * b).sum();
        let energy = energy_prefix[to as usize] - energy_prefix[from as usize];
        let score = dot / energy.max(1.0).sqrt();
        if best.is_none_or(|(s, _)| score > s) {
            best = Some((score, delay));
        }
    }
    best.map(|(_, d)| d)
}

/// The delay (samples, fractional) maximising the waveform SNR of `range`
/// within one sample of `coarse`: golden-section search (20 steps: 10⁻⁴
/// sample).
fn fine_delay(received: &[f64], range: std::ops::Range<usize>, coarse: i64) -> f64 {
    let phi = (5f64.sqrt() - 1.0) / 2.0;
    let score = |d: f64| {
        let mut sums = Sums::default();
        sums.add(received, range.clone(), d, 3);
        sums.snr().0
    };
    let (mut lo, mut hi) = (coarse as f64 - 1.0, coarse as f64 + 1.0);
    let mut c = hi - phi * (hi - lo);
    let mut d = lo + phi * (hi - lo);
    let (mut fc, mut fd) = (score(c), score(d));
    for _ in 0..20 {
        if fc > fd {
            hi = d;
            d = c;
            fd = fc;
            c = hi - phi * (hi - lo);
            fc = score(c);
        } else {
            lo = c;
            c = d;
            fc = fd;
            d = lo + phi * (hi - lo);
            fd = score(d);
        }
    }
    (lo + hi) / 2.0
}

/// Aligns `received` with the reference: the whole-sample delay from the
/// cross-correlation over ±[`SEARCH`] of 0.25 s, 1 s in; its fractional
/// part from a golden-section search on the first 0.5 s after [`SKIP`];
/// then each 200 ms block's whole-sample delay within ±40 ms of it (the
/// fractional part stays: a jitter buffer drops or inserts whole frames,
/// which are whole samples at 8 kHz). Also returns the whole-stream delay.
fn align(received: &[f64], reference: &[f64]) -> (Alignment, f64) {
    let coarse = best_lag(received, reference, 8000..10000, -SEARCH..=SEARCH).unwrap_or(0);
    let start = overlap(received.len(), coarse as f64).start;
    let global = fine_delay(received, start..start + 4000, coarse);
    let fraction = global - global.round();
    let mut blocks = Vec::new();
    let range = overlap(received.len(), global);
    let mut delay = global.round() as i64;
    let mut n = range.start;
    while n + BLOCK <= range.end {
        // Follow the previous block's delay, so slips add up.
        if let Some(lag) = best_lag(
            received,
            reference,
            n..n + BLOCK,
            delay - BLOCK_SEARCH..=delay + BLOCK_SEARCH,
        ) {
            delay = lag;
        }
        blocks.push((n, delay as f64 + fraction));
        n += BLOCK;
    }
    // Refine each block whose neighbours share its whole-sample delay: a
    // slip may shift the fraction too (concealment or a resampler
    // restarting at the codec's own rate).
    let lags: Vec<i64> = blocks.iter().map(|b| b.1.round() as i64).collect();
    let clean = vec![false; blocks.len()];
    let mut alignment = Alignment {
        blocks,
        lags,
        clean,
    };
    let mut snrs = Vec::new();
    for i in 0..alignment.blocks.len() {
        if alignment.is_steady(i) {
            let (start, _) = alignment.blocks[i];
            let delay = fine_delay(received, start..start + BLOCK, alignment.lags[i]);
            alignment.blocks[i].1 = delay;
            let mut sums = Sums::default();
            sums.add(received, start..start + BLOCK, delay, 1);
            snrs.push((i, sums.snr().0));
        }
    }
    let mut sorted: Vec<f64> = snrs.iter().map(|s| s.1).collect();
    sorted.sort_by(f64::total_cmp);
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0.0);
    for (i, snr) in snrs {
        alignment.clean[i] = snr >= median - DAMAGED_BELOW;
    }
    (alignment, global)
}

/// Least-squares fit of the steady blocks of `received` onto the in-phase
/// and quadrature components of every tone: the tone SNR (fitted part
/// against the rest, dB) and the largest |level error| of a tone (dB).
fn tone_fit(received: &[f64], alignment: &Alignment) -> (f64, f64) {
    const M: usize = 2 * TONES.len();
    let mut ata = [[0.0f64; M]; M];
    let mut atb = [0.0f64; M];
    let mut rr = 0.0;
    for (range, delay) in alignment.measured() {
        for n in range {
            let t = (n as f64 - delay) / RATE;
            let mut basis = [0.0f64; M];
            for k in 0..TONES.len() {
                let (i, q) = tone(k, t);
                basis[2 * k] = i;
                basis[2 * k + 1] = q;
            }
            let r = received[n];
            rr += r * r;
            for row in 0..M {
                atb[row] += basis[row] * r;
                for col in row..M {
                    ata[row][col] += basis[row] * basis[col];
                }
            }
        }
    }
    // Only the upper triangle was summed: mirror it.
    let upper = ata;
    for (row, line) in ata.iter_mut().enumerate() {
        for (col, v) in line.iter_mut().enumerate().take(row) {
            *v = upper[col][row];
        }
    }
    let Some(coef) = solve(ata, atb) else {
        return (f64::NEG_INFINITY, f64::INFINITY);
    };
    // Energy of the fit: c·(AᵀA)c = c·Aᵀb for the least-squares solution.
    let fitted: f64 = coef.iter().zip(&atb).map(|(c, b)| c * b).sum();
    let rest = (rr - fitted).max(1e-9);
    let level_error = (0..TONES.len())
        .map(|k| {
            let amplitude = coef[2 * k].hypot(coef[2 * k + 1]);
            (20.0 * amplitude.max(1e-9).log10()).abs()
        })
        .fold(0.0, f64::max);
    (10.0 * (fitted.max(1e-9) / rest).log10(), level_error)
}

/// Solves `a x = b` by Gaussian elimination with partial pivoting.
fn solve<const M: usize>(mut a: [[f64; M]; M], mut b: [f64; M]) -> Option<[f64; M]> {
    for col in 0..M {
        let pivot = (col..M).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        for row in col + 1..M {
            let f = a[row][col] / a[col][col];
            let pivot_row = a[col];
            for (x, p) in a[row][col..].iter_mut().zip(&pivot_row[col..]) {
                *x -= f * p;
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = [0.0f64; M];
    for row in (0..M).rev() {
        let s: f64 = (row + 1..M).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - s) / a[row][row];
    }
    Some(x)
}

/// One pair set up on the daemon: the leg ids and the peers.
struct Prepared {
    pair: Pair,
    /// The RTP and RTCP ports named in leg A's SDP, held until ffmpeg
    /// binds them to send from (symmetric RTP, as a phone does: legato
    /// accepts the SDP's address at once, where another source would go
    /// through its latching probation).
    ffmpeg_ports: (UdpSocket, UdpSocket),
    receiver: Peer,
    target: std::net::SocketAddr,
    transcoding: bool,
    /// Leg A's id, for its receive statistics.
    leg_a: String,
}

/// Two sockets on consecutive ports of 127.0.0.1, the first even.
fn port_pair() -> (UdpSocket, UdpSocket) {
    for _ in 0..100 {
        let rtp = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let port = rtp.local_addr().expect("bound").port();
        if !port.is_multiple_of(2) || port == u16::MAX {
            continue;
        }
        if let Ok(rtcp) = UdpSocket::bind(("127.0.0.1", port + 1)) {
            return (rtp, rtcp);
        }
    }
    panic!("no free pair of ports");
}

async fn prepare(client: &legato_client::Client, pair: Pair) -> Prepared {
    let session = client.create_session(None).await.expect("create session");
    let ffmpeg_ports = port_pair();
    let receiver = Peer::new().expect("peer");
    let a_port = ffmpeg_ports.0.local_addr().expect("bound").port();
    let a = connected(client, &session, offer(a_port, pair.a, pair.a_ptime)).await;
    let b_port = receiver.addr().port();
    let b = connected(client, &session, offer(b_port, pair.b, pair.b_ptime)).await;
    for (leg, codec) in [(&a, pair.a), (&b, pair.b)] {
        assert_eq!(
            leg.codec.as_ref().map(|c| c.payload_type),
            Some(u32::from(codec.pt())),
            "{}: leg negotiated {:?}",
            pair.label(),
            leg.codec
        );
    }
    client
        .send_media(a.leg_id.as_str(), b.leg_id.as_str())
        .await
        .expect("send media");
    let transcoding = client
        .get_leg(&b.leg_id)
        .await
        .expect("get leg")
        .transcoding;
    Prepared {
        pair,
        ffmpeg_ports,
        receiver,
        target: local_rtp(&a),
        transcoding,
        leg_a: a.leg_id.clone(),
    }
}

/// What came back from streaming one pair.
struct Streamed {
    pair: Pair,
    transcoding: bool,
    packets: Vec<Packet>,
    stats: proto::MediaStatistics,
}

/// Streams the reference with ffmpeg into leg A and collects leg B's
/// packets.
fn stream(
    dir: &Path,
    prepared: Prepared,
    client: &legato_client::Client,
    runtime: &tokio::runtime::Handle,
) -> Streamed {
    let pair = prepared.pair;
    let stop = Arc::new(AtomicBool::new(false));
    let collector = collect(&prepared.receiver, stop.clone());
    let (rtp, _) = &prepared.ffmpeg_ports;
    let port = rtp.local_addr().expect("bound").port();
    // ffmpeg binds these next.
    drop(prepared.ffmpeg_ports);
    let wav = dir.join(format!("reference-{}.wav", pair.a.audio_rate()));
    let pkt_size = 12 + pair.a.rtp_rate() * pair.a_ptime / 1000;
    // INTEROP_LATCH=1: ffmpeg sends from ports of its own choosing, so
    // legato must latch onto them after its probation.
    let mut options = Vec::new();
    if std::env::var_os("INTEROP_LATCH").is_none() {
        options.push(format!("localrtpport={port}"));
        options.push(format!("localrtcpport={}", port + 1));
    }
    if pair.a != Codec::Opus {
        options.push(format!("pkt_size={pkt_size}"));
    }
    let mut url = format!("rtp://{}", prepared.target);
    if !options.is_empty() {
        url = format!("{url}?{}", options.join("&"));
    }
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(&wav)
        .args(["-ac", "1"])
        .args(pair.a.ffmpeg_encode(pair.a_ptime))
        .args(["-payload_type", &pair.a.pt().to_string(), "-f", "rtp"])
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .output()
        .expect("run ffmpeg sender");
    assert!(
        out.status.success(),
        "{}: ffmpeg sender failed: {}",
        pair.label(),
        String::from_utf8_lossy(&out.stderr)
    );
    // Leg A's receive side as the stream ends (the PCM path conceals on
    // after it stops).
    let stats = runtime
        .block_on(client.get_statistics(&prepared.leg_a))
        .expect("leg A statistics");
    // Let the jitter buffer drain.
    std::thread::sleep(Duration::from_millis(600));
    stop.store(true, Ordering::Relaxed);
    Streamed {
        pair,
        transcoding: prepared.transcoding,
        packets: collector.join().expect("collector"),
        stats,
    }
}

/// Decodes what leg B's peer received with ffmpeg and measures it.
fn analyse(dir: &Path, tag: &str, streamed: Streamed) -> Measured {
    let pair = streamed.pair;
    let packets = streamed.packets.len();
    assert!(
        packets > 0,
        "{}: leg B's peer received nothing",
        pair.label()
    );
    let (received, missing) = in_order(streamed.packets);
    assert!(
        received.iter().all(|p| p.pt == pair.b.pt()),
        "{}: payload types {:?} on B",
        pair.label(),
        received
            .iter()
            .map(|p| p.pt)
            .collect::<std::collections::BTreeSet<_>>()
    );
    let mut steps_ms: Vec<u32> = received
        .windows(2)
        .filter(|w| w[1].seq == w[0].seq.wrapping_add(1))
        .map(|w| w[1].ts.wrapping_sub(w[0].ts) * 1000 / pair.b.rtp_rate())
        .collect();
    steps_ms.sort_unstable();
    steps_ms.dedup();
    let decoded = ffmpeg_decode(dir, tag, pair.b, &received);
    // The PCM path sends (silence) from the moment the legs are bridged,
    // which may be seconds before ffmpeg starts: start the comparison
    // 100 ms before the first sound.
    let onset = decoded
        .iter()
        .position(|x| x.abs() > ONSET)
        .unwrap_or(0)
        .saturating_sub(RATE as usize / 10);
    let pcm = &decoded[onset..];
    if std::env::var_os("INTEROP_DEBUG").is_some() {
        eprintln!("{}: {tag} onset at {onset}", pair.label());
    }
    let reference = reference_samples();
    let (alignment, global) = align(pcm, &reference);
    if std::env::var_os("INTEROP_DEBUG").is_some() {
        eprintln!(
            "{}: {} samples, global delay {global:.2}, blocks {:?}",
            pair.label(),
            pcm.len(),
            alignment
                .blocks
                .iter()
                .zip(&alignment.lags)
                .zip(&alignment.clean)
                .map(|(((start, delay), lag), clean)| {
                    let mut sums = Sums::default();
                    sums.add(pcm, *start..start + BLOCK, *delay, 1);
                    (start, lag, clean, sums.snr().0.round())
                })
                .collect::<Vec<_>>()
        );
    }
    let mut whole = Sums::default();
    whole.add(pcm, overlap(pcm.len(), global), global, 1);
    let mut steady = Sums::default();
    for (range, delay) in alignment.measured() {
        steady.add(pcm, range, delay, 1);
    }
    let (waveform_snr, gain) = steady.snr();
    let (tone_snr, level_error) = tone_fit(pcm, &alignment);
    Measured {
        pair,
        transcoding: streamed.transcoding,
        packets,
        missing,
        steps_ms,
        a_jitter_ms: streamed.stats.jitter_ms,
        a_concealed: streamed.stats.concealed_frames,
        slips: alignment.slips(),
        slip_list: alignment.slip_list(),
        damaged: alignment.damaged(),
        measured_share: alignment.measured_share(),
        global_snr: whole.snr().0,
        gain_db: 20.0 * gain.abs().max(1e-9).log10(),
        waveform_snr,
        tone_snr,
        level_error,
    }
}

/// Sets up, streams (at most `batch` pairs at a time) and measures
/// `pairs`; `tag` names their files.
async fn run_pairs(
    client: &legato_client::Client,
    dir: &Path,
    pairs: &[Pair],
    batch: usize,
    tag: &str,
) -> Vec<Measured> {
    let mut prepared = Vec::new();
    for &pair in pairs {
        prepared.push(prepare(client, pair).await);
    }
    // Every pair has its own session, ports and ffmpeg processes, so pairs
    // stream side by side, but only a few at a time: a debug legatod
    // transcoding 18 streams next to 18 ffmpeg processes on a loaded
    // 2-core machine runs its media clock late enough that the jitter
    // buffers conceal and slip frames. Decoding and analysis follow once
    // all have streamed.
    let runtime = tokio::runtime::Handle::current();
    let mut streamed = Vec::new();
    let mut prepared = prepared.into_iter().peekable();
    while prepared.peek().is_some() {
        let tasks: Vec<_> = prepared
            .by_ref()
            .take(batch)
            .map(|p| {
                let (dir, client, runtime) = (dir.to_owned(), client.clone(), runtime.clone());
                tokio::task::spawn_blocking(move || stream(&dir, p, &client, &runtime))
            })
            .collect();
        for task in tasks {
            streamed.push(task.await.expect("stream task"));
        }
    }
    let tasks: Vec<_> = streamed
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let (dir, tag) = (dir.to_owned(), format!("{tag}{i}"));
            tokio::task::spawn_blocking(move || analyse(&dir, &tag, s))
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.expect("analysis task"));
    }
    results
}

/// What is wrong with one pair's measurement, if anything.
fn check(m: &Measured) -> Vec<String> {
    let label = m.pair.label();
    let mut failures = Vec::new();
    if m.transcoding == m.pair.relayable() {
        failures.push(format!(
            "{label}: path is {}",
            if m.transcoding { "transcode" } else { "relay" }
        ));
    }
    if m.steps_ms != [m.pair.b_ptime] {
        failures.push(format!(
            "{label}: B's packets last {:?} ms, negotiated {}",
            m.steps_ms, m.pair.b_ptime
        ));
    }
    if m.measured_share < MIN_MEASURED_SHARE {
        failures.push(format!(
            "{label}: {} slips and {} damaged blocks leave {:.0} % of the audio measured",
            m.slips,
            m.damaged,
            m.measured_share * 100.0
        ));
    }
    if m.pair.a.waveform() && m.pair.b.waveform() {
        if m.waveform_snr < MIN_WAVEFORM_SNR {
            failures.push(format!(
                "{label}: waveform SNR {:.1} dB < {MIN_WAVEFORM_SNR} dB",
                m.waveform_snr
            ));
        }
    } else if m.tone_snr < MIN_TONE_SNR {
        failures.push(format!(
            "{label}: tone SNR {:.1} dB < {MIN_TONE_SNR} dB",
            m.tone_snr
        ));
    }
    if m.level_error > MAX_LEVEL_ERROR {
        failures.push(format!(
            "{label}: a tone is {:.2} dB off its level",
            m.level_error
        ));
    }
    failures
}

/// Prints the table of `results` (and the slips) under `title`.
fn print_table(title: &str, results: &[Measured]) {
    eprintln!("\n{title}");
    eprintln!(
        "{:<20} {:<9} {:>4} {:>4} {:>4} {:>5} {:>5} {:>5} {:>4} {:>5} {:>8} {:>7} {:>8} {:>8} {:>7}",
        "pair (codec/ptime)",
        "path",
        "pkts",
        "lost",
        "B ms",
        "A jit",
        "A plc",
        "slips",
        "dmg",
        "meas%",
        "glob SNR",
        "gain dB",
        "wave SNR",
        "tone SNR",
        "lvl err"
    );
    for m in results {
        eprintln!(
            "{:<20} {:<9} {:>4} {:>4} {:>4} {:>5.1} {:>5} {:>5} {:>4} {:>5.0} {:>8.1} {:>7.2} {:>8.1} {:>8.1} {:>7.2}",
            m.pair.label(),
            if m.transcoding { "transcode" } else { "relay" },
            m.packets,
            m.missing,
            m.steps_ms
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(","),
            m.a_jitter_ms,
            m.a_concealed,
            m.slips,
            m.damaged,
            m.measured_share * 100.0,
            m.global_snr,
            m.gain_db,
            m.waveform_snr,
            m.tone_snr,
            m.level_error,
        );
    }
    for m in results.iter().filter(|m| !m.slip_list.is_empty()) {
        let slips: Vec<String> = m
            .slip_list
            .iter()
            .map(|(at, ms)| format!("{ms:+.0} ms by {at:.1} s"))
            .collect();
        eprintln!("{}: slips {}", m.pair.label(), slips.join(", "));
    }
}

async fn interop_matrix(io: Io) {
    if Command::new("ffmpeg").arg("-version").output().is_err() {
        panic!("ffmpeg is missing: run scripts/test.sh, which installs it");
    }
    let encoders = Command::new("ffmpeg")
        .args(["-hide_banner", "-encoders"])
        .output()
        .expect("ffmpeg -encoders");
    assert!(
        String::from_utf8_lossy(&encoders.stdout).contains("libopus"),
        "this ffmpeg has no libopus encoder"
    );
    // The two backends' tests take turns: each streams pairs in real time
    // and must not compete with the other for the CPU.
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = TURN.lock().await;
    let daemon = daemon_or_skip!(Options::new(io));
    let client = daemon.client().await.unwrap();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "interop_matrix-{}-{}",
        io.flag(),
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    for rate in [8000, 16000, 48000] {
        write_reference_wav(&dir.join(format!("reference-{rate}.wav")), rate);
    }
    let started = Instant::now();
    // INTEROP_ONLY=<substring>[,<substring>...] runs only the pairs whose
    // label (e.g. "PCMU/20 -> G722/20") contains one of them.
    let only = std::env::var("INTEROP_ONLY").unwrap_or_default();
    let selected: Vec<Pair> = pairs()
        .into_iter()
        .filter(|p| only.is_empty() || only.split(',').any(|o| p.label().contains(o.trim())))
        .collect();
    let mut results = run_pairs(&client, &dir, &selected, BATCH, "pair").await;
    print_table(
        &format!(
            "interop matrix ({}, ffmpeg far end, {SECONDS} s multi-tone, {BATCH} pairs at a time; {:.1} s):",
            io.flag(),
            started.elapsed().as_secs_f64()
        ),
        &results,
    );
    // A pair whose stream the machine disrupted (concealment, slips) gets
    // one more try, alone: what the codecs do to the audio does not change
    // between tries, the machine's load does.
    let failing: Vec<usize> = (0..results.len())
        .filter(|&i| !check(&results[i]).is_empty())
        .collect();
    if !failing.is_empty() {
        let retry: Vec<Pair> = failing.iter().map(|&i| results[i].pair).collect();
        let again = run_pairs(&client, &dir, &retry, 1, "retry").await;
        print_table(
            &format!(
                "retried alone ({}; {:.1} s in all):",
                io.flag(),
                started.elapsed().as_secs_f64()
            ),
            &again,
        );
        for (i, m) in failing.into_iter().zip(again) {
            results[i] = m;
        }
    }
    let failures: Vec<String> = results.iter().flat_map(check).collect();
    assert!(
        failures.is_empty(),
        "interop failures:\n{}",
        failures.join("\n")
    );
    if std::env::var_os("INTEROP_DEBUG").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

per_backend!(interop_matrix);
