//! The latency probe of a transcoded call (`legato-loadgen latency`): one
//! bridged call, side A a jitter-free PCMU sender of silence with a short
//! click (a 5 ms, 2 kHz square burst at the start of one frame) every
//! second; side B decodes what legatod sends it in B's codec and finds each
//! click's first sample.
//!
//! Timing: a packet sent at `Ts` carries the 20 ms of audio before `Ts`,
//! the click at its sample 0. A packet received at `T` (kernel
//! `SO_TIMESTAMPNS` stamp) with the click's onset at sample `k` carries it
//! `k / rate` after that packet's first sample, so the click's one-way
//! latency is `T + k / rate − Ts`: what a listener playing each packet as
//! it arrives would hear on top of the network. Also reported: the packet
//! part alone, `T − Ts`.
//!
//! On legatod's PCM path that latency is the jitter buffer's delay (its
//! minimum, 20 ms, for a jitter-free sender), plus the wait for the next
//! 20 ms media-clock tick (0-20 ms, depending on the phase of the sender
//! against the clock), plus the codecs' look-ahead ([`expected_bound_ms`]).
//! Relayed calls (`--call-kind relay`) show the fast path's figure for
//! comparison.

use std::io::IoSliceMut;
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use legato_client::Client;
use legato_dsp::codec::Decoder as _;
use legato_dsp::codec::g711::{G711, Law, linear_to_ulaw};
use legato_dsp::codec::g722::G722Decoder;
use legato_dsp::codec::opus::OpusDecoder;
use legato_dsp::time::ClockRate;
use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrIn, recvmsg, setsockopt, sockopt};
use nix::sys::time::TimeSpec;
use serde::Serialize;

use crate::generator::PEER_ADDRESS;
use crate::histogram::Histogram;
use crate::kind::{CallKind, Codec};
use crate::target;
use crate::wire;

/// Packets between two clicks (1 s).
const CLICK_EVERY: u64 = 50;
/// Packets before the first click (jitter buffer and clock settled).
const LEAD_IN: u64 = 100;
/// Click length in 8 kHz samples (5 ms) and amplitude.
const CLICK_SAMPLES: usize = 40;
const CLICK_AMPLITUDE: i16 = 20_000;
/// A decoded sample above this (magnitude) is a click's onset.
const ONSET_THRESHOLD: i32 = 5_000;
/// After an onset, further ones are ignored for this long (sample time).
const REFRACTORY_MS: u32 = 300;
/// A click matched to an onset more than this after it was sent is lost.
const MAX_LATENCY_NS: u64 = 500_000_000;
/// The sender wakes this long before a packet is due and spins the rest.
const SPIN: Duration = Duration::from_micros(300);

/// What the probe measured.
#[derive(Clone, Debug, Serialize)]
pub struct LatencyReport {
    /// The call kind probed.
    pub call_kind: String,
    /// Side B's codec, as legatod answered it.
    pub codec_b: String,
    /// Clicks sent.
    pub clicks_sent: u64,
    /// Clicks whose onset was found at side B.
    pub clicks_found: u64,
    /// Click latency (`T + k / rate − Ts`), ms: p50, p99, min, max.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Lowest, ms.
    pub min_ms: f64,
    /// Highest, ms.
    pub max_ms: f64,
    /// The packet part alone (`T − Ts`), ms: p50.
    pub packet_p50_ms: f64,
    /// The packet part alone, ms: p99.
    pub packet_p99_ms: f64,
    /// How late the sender sent against its schedule, µs: p99.
    pub send_lag_p99_us: f64,
    /// The stated bound: frame + jitter-buffer minimum + codec look-ahead, ms.
    pub expected_bound_ms: f64,
    /// How the bound is made up.
    pub expected_bound: String,
    /// Every click's latency, ms, in order.
    pub latencies_ms: Vec<f64>,
}

/// The bound a jitter-free sender should stay under on the PCM path: one
/// 20 ms frame (the wait for the media clock) + the jitter buffer's
/// minimum delay (20 ms, `legato_dsp::jitter::JitterConfig::new`) + the
/// codecs' look-ahead (G.711: none; G.722: its QMF filter pair, 23 samples
/// at 16 kHz ≈ 1.5 ms; Opus: 6.5 ms at 20 ms frames, RFC 6716 §2). The
/// resampler between 8 kHz and B's rate (G.722, Opus) adds its own filter
/// delay (2 ms, `legato_dsp::resample`), not counted here: the measured
/// figure has to fit it into the bound's slack.
pub fn expected_bound_ms(kind: CallKind) -> (f64, String) {
    let codec = kind.side_b().unwrap_or(Codec::Pcmu);
    if kind.is_relay() {
        return (0.0, "relay: no jitter buffer, no media clock".to_owned());
    }
    if kind == CallKind::PcmuPcma {
        return (
            0.0,
            "PCMU to PCMA converted per packet: no jitter buffer, no media clock".to_owned(),
        );
    }
    let lookahead = match codec {
        Codec::Pcmu | Codec::Pcma => 0.0,
        Codec::G722 => 1.5,
        Codec::Opus => 6.5,
    };
    (
        20.0 + 20.0 + lookahead,
        format!(
            "20 ms frame + 20 ms jitter-buffer minimum + {lookahead} ms {} look-ahead",
            codec.name()
        ),
    )
}

/// Side B's decoder.
enum Dec {
    G711(Box<G711>),
    G722(Box<G722Decoder>),
    Opus(Box<OpusDecoder>),
}

impl Dec {
    fn new(codec: Codec) -> Result<(Self, u32)> {
        Ok(match codec {
            Codec::Pcmu => (Self::G711(Box::new(G711::new(Law::Ulaw))), 8000),
            Codec::Pcma => (Self::G711(Box::new(G711::new(Law::Alaw))), 8000),
            Codec::G722 => (Self::G722(Box::new(G722Decoder::new())), 16_000),
            Codec::Opus => (
                Self::Opus(Box::new(
                    OpusDecoder::new(ClockRate::HZ_48000)
                        .map_err(|e| anyhow::anyhow!("opus decoder: {e}"))?,
                )),
                48_000,
            ),
        })
    }

    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> usize {
        let result = match self {
            Self::G711(d) => d.decode(payload, out),
            Self::G722(d) => d.decode(payload, out),
            Self::Opus(d) => d.decode(payload, out),
        };
        result.unwrap_or(0)
    }
}

/// A socket on [`PEER_ADDRESS`] with kernel receive time stamps.
fn peer_socket() -> Result<UdpSocket> {
    let socket = UdpSocket::bind((PEER_ADDRESS, 0)).context("binding a probe socket")?;
    setsockopt(&socket, sockopt::ReceiveTimestampns, &true).context("SO_TIMESTAMPNS")?;
    socket.set_read_timeout(Some(Duration::from_millis(100)))?;
    Ok(socket)
}

/// Sets up one call of `kind` on legatod, sends `clicks` clicks and
/// measures each one's latency at side B.
pub fn probe(
    runtime: &tokio::runtime::Runtime,
    client: &Client,
    kind: CallKind,
    clicks: u64,
) -> Result<LatencyReport> {
    let Some(codec_b) = kind.side_b() else {
        bail!("the latency probe measures bridged calls, not {kind}");
    };
    if clicks == 0 {
        bail!("no clicks to send");
    }
    let (a, b) = (peer_socket()?, peer_socket()?);
    let peers = [a.local_addr()?, b.local_addr()?];
    let (leg_a, leg_b, session) = if kind.is_relay() {
        let call = runtime.block_on(target::bridge(client, peers[0], peers[1]))?;
        (call.a, call.b, call.session)
    } else {
        let unit = runtime.block_on(target::setup_unit(client, kind, &peers))?;
        runtime.block_on(target::route_units(
            client,
            std::slice::from_ref(&unit),
            true,
            1,
        ))?;
        (unit.legs[0], unit.legs[1], unit.session)
    };
    let stop = Arc::new(AtomicBool::new(false));
    let receiver = {
        let stop = stop.clone();
        std::thread::spawn(move || receive(&b, leg_b, codec_b, &stop))
    };
    let sent = send(&a, leg_a, LEAD_IN + clicks * CLICK_EVERY);
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let onsets = receiver
        .join()
        .map_err(|_| anyhow::anyhow!("receiver thread panicked"))??;
    let _ = runtime.block_on(client.delete_session(&session));
    let (bound, parts) = expected_bound_ms(kind);
    Ok(summarize(kind, codec_b, &sent, &onsets, bound, parts))
}

/// What the sender did: each click's send time, and its lateness.
struct Sent {
    clicks_ns: Vec<u64>,
    lag: Histogram,
}

/// Sends `packets` 20 ms PCMU packets from `socket` to `to`, paced on a
/// monotonic schedule (sleep, then spin the last [`SPIN`]), a click in
/// every [`CLICK_EVERY`]th after [`LEAD_IN`].
fn send(socket: &UdpSocket, to: SocketAddrV4, packets: u64) -> Sent {
    let silence = [0xffu8; 160];
    let mut click = silence;
    for (i, byte) in click.iter_mut().take(CLICK_SAMPLES).enumerate() {
        // 2 kHz square wave: 2 samples up, 2 down.
        let v = if i % 4 < 2 {
            CLICK_AMPLITUDE
        } else {
            -CLICK_AMPLITUDE
        };
        *byte = linear_to_ulaw(v);
    }
    let mut buf = [0u8; wire::RTP_HEADER_LEN + 160];
    let mut sent = Sent {
        clicks_ns: Vec::new(),
        lag: Histogram::new(),
    };
    let start = Instant::now() + Duration::from_millis(20);
    for n in 0..packets {
        let due = start + Duration::from_millis(20 * n);
        let early = due.saturating_duration_since(Instant::now());
        if early > SPIN {
            std::thread::sleep(early - SPIN);
        }
        while Instant::now() < due {
            std::hint::spin_loop();
        }
        let is_click = n >= LEAD_IN && (n - LEAD_IN).is_multiple_of(CLICK_EVERY);
        buf[0] = 0x80;
        buf[1] = if n == 0 { 0x80 } else { 0 };
        buf[2..4].copy_from_slice(&(n as u16).to_be_bytes());
        buf[4..8].copy_from_slice(&((n as u32).wrapping_mul(160)).to_be_bytes());
        buf[8..12].copy_from_slice(&0x4c47_4c41u32.to_be_bytes());
        buf[12..].copy_from_slice(if is_click { &click } else { &silence });
        let now_ns = wire::realtime_ns();
        sent.lag
            .record(Instant::now().saturating_duration_since(due).as_nanos() as u64);
        if socket.send_to(&buf, SocketAddr::V4(to)).is_ok() && is_click {
            sent.clicks_ns.push(now_ns);
        }
    }
    sent
}

/// One onset found at side B: the packet's kernel receive time and the
/// onset's offset in it, ns.
#[derive(Clone, Copy, Debug)]
struct Onset {
    packet_ns: u64,
    offset_ns: u64,
}

/// Receives legatod's packets for side B from `from` until `stop`, decodes
/// them and returns the clicks' onsets.
fn receive(
    socket: &UdpSocket,
    from: SocketAddrV4,
    codec: Codec,
    stop: &AtomicBool,
) -> Result<Vec<Onset>> {
    let (mut decoder, rate) = Dec::new(codec)?;
    let mut pcm = vec![0i16; 5760];
    let mut buf = [0u8; 2048];
    let mut cmsg = nix::cmsg_space!(TimeSpec);
    let mut onsets = Vec::new();
    // Samples of sample time since the last onset (starts "long ago").
    let refractory = u64::from(rate * REFRACTORY_MS / 1000);
    let mut since_onset = refractory;
    let want = SockaddrIn::from(from);
    while !stop.load(Ordering::Relaxed) {
        let (len, stamp, source) = {
            let mut iov = [IoSliceMut::new(&mut buf)];
            // Timeout or EINTR: look at `stop` again.
            let Ok(msg) = recvmsg::<SockaddrIn>(
                socket.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::empty(),
            ) else {
                continue;
            };
            let mut stamp = 0;
            if let Ok(cmsgs) = msg.cmsgs() {
                for c in cmsgs {
                    if let ControlMessageOwned::ScmTimestampns(ts) = c {
                        stamp = ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64;
                    }
                }
            }
            (msg.bytes, stamp, msg.address)
        };
        if source != Some(want) || len < wire::RTP_HEADER_LEN || stamp == 0 {
            continue;
        }
        let n = decoder.decode(&buf[wire::RTP_HEADER_LEN..len], &mut pcm);
        for (k, &s) in pcm[..n].iter().enumerate() {
            if since_onset >= refractory && i32::from(s).abs() > ONSET_THRESHOLD {
                onsets.push(Onset {
                    packet_ns: stamp,
                    offset_ns: k as u64 * 1_000_000_000 / u64::from(rate),
                });
                since_onset = 0;
            } else {
                since_onset += 1;
            }
        }
    }
    Ok(onsets)
}

fn summarize(
    kind: CallKind,
    codec_b: Codec,
    sent: &Sent,
    onsets: &[Onset],
    bound: f64,
    parts: String,
) -> LatencyReport {
    let (mut click, mut packet) = (Histogram::new(), Histogram::new());
    let mut latencies_ms = Vec::new();
    let mut next = 0;
    for &sent_ns in &sent.clicks_ns {
        // The first onset at or after this click, before the next click.
        while next < onsets.len() && onsets[next].packet_ns < sent_ns {
            next += 1;
        }
        let Some(o) = onsets.get(next) else {
            break;
        };
        let packet_ns = o.packet_ns - sent_ns;
        if packet_ns > MAX_LATENCY_NS {
            continue;
        }
        next += 1;
        let ns = packet_ns + o.offset_ns;
        click.record(ns);
        packet.record(packet_ns);
        latencies_ms.push(ns as f64 / 1e6);
    }
    let ms = |ns: u64| ns as f64 / 1e6;
    let min = latencies_ms.iter().copied().fold(f64::INFINITY, f64::min);
    LatencyReport {
        call_kind: kind.to_string(),
        codec_b: codec_b.name().to_owned(),
        clicks_sent: sent.clicks_ns.len() as u64,
        clicks_found: latencies_ms.len() as u64,
        p50_ms: ms(click.quantile(0.5)),
        p99_ms: ms(click.quantile(0.99)),
        min_ms: if min.is_finite() { min } else { 0.0 },
        max_ms: ms(click.max()),
        packet_p50_ms: ms(packet.quantile(0.5)),
        packet_p99_ms: ms(packet.quantile(0.99)),
        send_lag_p99_us: sent.lag.quantile(0.99) as f64 / 1e3,
        expected_bound_ms: bound,
        expected_bound: parts,
        latencies_ms,
    }
}

impl LatencyReport {
    /// The human summary.
    pub fn text(&self) -> String {
        format!(
            "latency probe {} (side B {}): {} of {} clicks found\n\
             click latency: p50 {:.2} ms, p99 {:.2} ms, min {:.2} ms, max {:.2} ms \
             (packet part: p50 {:.2} ms, p99 {:.2} ms); sender lag p99 {:.0} us\n\
             expected bound: {:.1} ms ({}): p99 {}\n",
            self.call_kind,
            self.codec_b,
            self.clicks_found,
            self.clicks_sent,
            self.p50_ms,
            self.p99_ms,
            self.min_ms,
            self.max_ms,
            self.packet_p50_ms,
            self.packet_p99_ms,
            self.send_lag_p99_us,
            self.expected_bound_ms,
            self.expected_bound,
            if self.expected_bound_ms == 0.0 {
                "n/a".to_owned()
            } else if self.p99_ms <= self.expected_bound_ms {
                "within it".to_owned()
            } else {
                format!("{:.2} ms over it", self.p99_ms - self.expected_bound_ms)
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clicks_match_the_next_onset() {
        let sent = Sent {
            clicks_ns: vec![1_000_000_000, 2_000_000_000, 3_000_000_000],
            lag: Histogram::new(),
        };
        let onsets = [
            // A stray onset before the first click is skipped.
            Onset {
                packet_ns: 900_000_000,
                offset_ns: 0,
            },
            Onset {
                packet_ns: 1_030_000_000,
                offset_ns: 2_000_000,
            },
            // The second click was lost; the third arrives.
            Onset {
                packet_ns: 3_040_000_000,
                offset_ns: 0,
            },
        ];
        let r = summarize(
            CallKind::PcmuPcma,
            Codec::Pcma,
            &sent,
            &onsets,
            40.0,
            String::new(),
        );
        assert_eq!(r.clicks_sent, 3);
        assert_eq!(r.latencies_ms, [32.0, 40.0]);
        assert_eq!(r.clicks_found, 2);
        assert!(r.text().contains("within it"), "{}", r.text());
    }

    #[test]
    fn bounds() {
        assert_eq!(expected_bound_ms(CallKind::PcmuPcma).0, 0.0);
        assert_eq!(expected_bound_ms(CallKind::PcmuPcmaPcm).0, 40.0);
        assert_eq!(expected_bound_ms(CallKind::PcmuOpus).0, 46.5);
        assert_eq!(expected_bound_ms(CallKind::Relay).0, 0.0);
    }
}
