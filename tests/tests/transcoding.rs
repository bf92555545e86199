//! Transcoding between G.711 laws on the PCM path: a PCMU caller's tone
//! reaches a PCMA callee decoded and re-encoded, in one continuous RTP
//! stream, and a sink switched between a relayed and a transcoded source
//! keeps one SSRC with continuous numbering.

use std::time::{Duration, Instant};

use legato_dsp::codec::g711::{alaw_to_linear, linear_to_ulaw};
use legato_proto::v1 as proto;
use legato_tests::{
    Io, Options, Peer, Rtp, connected_leg_sdp, connected_leg_transcoding, daemon_or_skip,
    local_rtp, per_backend, tone_ratio,
};

/// Creates an incoming leg offering only `formats` and connects it.
async fn leg_with(
    client: &legato_client::Client,
    session: &str,
    peer: &Peer,
    formats: &str,
) -> proto::Leg {
    let offer = peer.offer_with(formats, "a=sendrecv", "127.0.0.1");
    connected_leg_sdp(client, session, offer).await.unwrap()
}

fn tone(n: usize, start: usize, hz: f64) -> Vec<i16> {
    (start..start + n)
        .map(|i| (8000.0 * (2.0 * std::f64::consts::PI * hz * i as f64 / 8000.0).sin()) as i16)
        .collect()
}

/// An SDP offer from `peer` for one codec: `(payload type, rtpmap)`, with
/// telephone-event at `te_rate` when given.
fn offer_for(peer: &Peer, pt: u8, rtpmap: &str, fmtp: &str, te_rate: Option<u32>) -> String {
    let port = peer.addr().port();
    let mut sdp = format!(
        "v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP {pt}{}\r\na=rtpmap:{pt} {rtpmap}\r\n",
        if te_rate.is_some() { " 101" } else { "" }
    );
    if !fmtp.is_empty() {
        sdp.push_str(&format!("a=fmtp:{pt} {fmtp}\r\n"));
    }
    if let Some(rate) = te_rate {
        sdp.push_str(&format!("a=rtpmap:101 telephone-event/{rate}\r\n"));
    }
    sdp.push_str("a=sendrecv\r\n");
    sdp
}

async fn leg_offering(client: &legato_client::Client, session: &str, offer: String) -> proto::Leg {
    connected_leg_sdp(client, session, offer).await.unwrap()
}

/// Share of the power of `samples` (at `rate`) at `hz`.
fn share_at(samples: &[i16], rate: f64, hz: f64) -> f64 {
    let (mut re, mut im, mut total) = (0.0f64, 0.0f64, 0.0f64);
    for (n, &s) in samples.iter().enumerate() {
        let w = 2.0 * std::f64::consts::PI * hz * n as f64 / rate;
        re += f64::from(s) * w.cos();
        im += f64::from(s) * w.sin();
        total += f64::from(s) * f64::from(s);
    }
    2.0 * (re * re + im * im) / (samples.len() as f64 * total.max(1.0))
}

/// PCMU in, `codec` out: the 1 kHz tone arrives decoded by legato-dsp's
/// decoder of that codec.
async fn pcmu_to_wideband(io: Io, pt: u8, rtpmap: &str, fmtp: &str) {
    let daemon = daemon_or_skip!(Options::new(io));
    let client = daemon.client().await.unwrap();
    let session = client.create_session(None).await.unwrap();
    let (pa, pb) = (Peer::new().unwrap(), Peer::new().unwrap());
    let a = leg_with(&client, &session, &pa, "0 101").await;
    let b = leg_offering(&client, &session, offer_for(&pb, pt, rtpmap, fmtp, None)).await;
    assert_eq!(
        b.codec.as_ref().map(|c| c.payload_type),
        Some(u32::from(pt))
    );
    client
        .send_media(a.leg_id.as_str(), b.leg_id.as_str())
        .await
        .unwrap();
    let target = local_rtp(&a);
    let sender = std::thread::spawn(move || send_tone(&pa, target, 100, 7, 1000.0));
    let mut packets = Vec::new();
    while let Some((h, p, _)) = pb.recv().unwrap() {
        packets.push((h, p));
        if packets.len() >= 90 {
            break;
        }
    }
    sender.join().unwrap();
    assert!(packets.len() >= 80, "received {} packets", packets.len());
    assert!(packets.iter().all(|(h, _)| h.pt == pt));
    let (rate, mut decoder): (f64, Box<dyn legato_dsp::codec::Decoder>) = if pt == 9 {
        (
            16000.0,
            Box::new(legato_dsp::codec::g722::G722Decoder::new()),
        )
    } else {
        (
            48000.0,
            Box::new(
                legato_dsp::codec::opus::OpusDecoder::new(legato_dsp::time::ClockRate::HZ_48000)
                    .unwrap(),
            ),
        )
    };
    let mut pcm = Vec::new();
    let mut frame = vec![0i16; 960 * 3];
    for (_, p) in packets.iter().skip(10) {
        let n = decoder.decode(p, &mut frame).unwrap();
        pcm.extend_from_slice(&frame[..n]);
    }
    let share = share_at(&pcm, rate, 1000.0);
    eprintln!("PCMU → {rtpmap}: 1 kHz carries {share:.3} of the power");
    assert!(share > 0.9, "1 kHz carries {share:.3} of the power");
}

async fn pcmu_to_g722(io: Io) {
    pcmu_to_wideband(io, 9, "G722/8000", "").await;
}

async fn pcmu_to_opus(io: Io) {
    pcmu_to_wideband(io, 111, "opus/48000/2", "useinbandfec=1").await;
}

/// Sends `count` 20 ms PCMU packets of a `hz` tone from `peer` to `to`,
/// paced in real time, starting at sequence `seq0`.
fn send_tone(peer: &Peer, to: std::net::SocketAddr, count: usize, seq0: u16, hz: f64) {
    let start = Instant::now();
    for i in 0..count {
        let pcm = tone(160, i * 160, hz);
        let payload: Vec<u8> = pcm.iter().map(|&s| linear_to_ulaw(s)).collect();
        let h = Rtp {
            marker: i == 0,
            pt: 0,
            seq: seq0.wrapping_add(i as u16),
            ts: (i * 160) as u32,
            ssrc: 0x1234,
        };
        peer.send(to, h, &payload).unwrap();
        let due = start + Duration::from_millis(20 * (i as u64 + 1));
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
}

/// PCMU to PCMA: converted packet by packet on the relay path.
async fn pcmu_to_pcma(io: Io) {
    pcmu_to_pcma_on(io, false).await;
}

/// PCMU to PCMA with `always_transcode` on the sink: the PCM path.
async fn pcmu_to_pcma_pcm_path(io: Io) {
    pcmu_to_pcma_on(io, true).await;
}

async fn pcmu_to_pcma_on(io: Io, always_transcode: bool) {
    let daemon = daemon_or_skip!(Options::new(io));
    let client = daemon.client().await.unwrap();
    let session = client.create_session(None).await.unwrap();
    let (pa, pb) = (Peer::new().unwrap(), Peer::new().unwrap());
    let a = leg_with(&client, &session, &pa, "0 101").await;
    let b = if always_transcode {
        connected_leg_transcoding(&client, &session, &pb, "8 101")
            .await
            .unwrap()
    } else {
        leg_with(&client, &session, &pb, "8 101").await
    };
    client
        .send_media(a.leg_id.as_str(), b.leg_id.as_str())
        .await
        .unwrap();
    let leg_b = client.get_leg(&b.leg_id).await.unwrap();
    assert!(leg_b.transcoding);
    let path = if always_transcode {
        proto::MediaPath::Pcm
    } else {
        proto::MediaPath::Convert
    };
    assert_eq!(leg_b.media_path(), path);
    let target = local_rtp(&a);
    let sender = std::thread::spawn(move || send_tone(&pa, target, 100, 7, 1000.0));
    let mut packets = Vec::new();
    while let Some((h, p, _)) = pb.recv().unwrap() {
        packets.push((h, p));
        if packets.len() >= 90 {
            break;
        }
    }
    sender.join().unwrap();
    assert!(packets.len() >= 80, "received {} packets", packets.len());
    assert!(packets.iter().all(|(h, _)| h.pt == 8), "PCMA payload type");
    let ssrc = packets[0].0.ssrc;
    for w in packets.windows(2) {
        assert_eq!(w[1].0.ssrc, ssrc);
        assert_eq!(
            w[1].0.seq,
            w[0].0.seq.wrapping_add(1),
            "continuous sequence"
        );
        assert_eq!(
            w[1].0.ts,
            w[0].0.ts.wrapping_add(160),
            "continuous timestamps"
        );
    }
    let pcm: Vec<i16> = packets
        .iter()
        .skip(10)
        .flat_map(|(_, p)| p.iter().map(|&b| alaw_to_linear(b)))
        .collect();
    let window = &pcm[..pcm.len().min(8000)];
    let at_1k = tone_ratio(window, 1000.0);
    assert!(at_1k > 0.95, "1 kHz carries {at_1k:.3} of the power");
}

per_backend!(
    pcmu_to_pcma,
    pcmu_to_pcma_pcm_path,
    pcmu_to_g722,
    pcmu_to_opus
);
