//! Bad input on the PCM path (issue acceptance 8): unknown fmtp, Opus
//! `stereo=1`, `a=ptime:7`, G.722 payloads of odd length, random bytes as
//! Opus, a switch to a payload type never negotiated, and a conference
//! routed into itself. SDP and RPCs get clear answers (or are accepted by
//! the documented rule, see `daemon/src/sdp/mod.rs`: unknown fmtp ignored,
//! `stereo=1` accepted with mono sent, `a=ptime:7` clamped to 10 ms;
//! CreateLeg `ptime_ms` 7 is INVALID_ARGUMENT); bad packets are counted
//! and concealed; legatod does not panic; and another call on the same
//! daemon, transcoded too, keeps flowing without a gap.
//!
//! Timeline, 20 ms steps over 6 s: every source sends valid audio for
//! 1.5 s, then 3 s of bad packets, then valid audio again for 1.5 s. The
//! other call (PCMU to PCMA, session "victim") streams a tone throughout.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use legato_client::{Client, Code, CreateLeg, MediaEndpoint, UpdateLeg, proto};
use legato_dsp::codec::Encoder as _;
use legato_dsp::codec::g722::G722Encoder;
use legato_dsp::codec::opus::{OpusApplication, OpusEncoder};
use legato_dsp::time::ClockRate;
use legato_tests::{
    G711, Io, Options, Peer, Received, Rtp, connected_leg_transcoding, connected_leg_with,
    daemon_or_skip, decode_window, local_rtp, paced, per_backend, send_rtp, sine, spawn_collector,
    tone_level_db,
};

/// Steps of 20 ms: valid until `BAD.start`, bad in `BAD`, valid after.
const STEPS: usize = 300;
const BAD: std::ops::Range<usize> = 75..225;
const OPUS_PT: u8 = 111;
const AMPLITUDE: f64 = 4000.0;

/// An SDP offer from `peer` with the given `m=` format list and extra
/// attribute lines (each ending in CRLF).
fn offer(peer: &Peer, formats: &str, attributes: &str) -> String {
    format!(
        "v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {} RTP/AVP {formats}\r\n{attributes}a=sendrecv\r\n",
        peer.addr().port()
    )
}

/// Creates and connects an incoming leg for `sdp`, returning it and
/// legato's answer.
async fn leg_for(client: &Client, session: &str, sdp: String) -> (proto::Leg, String) {
    let created = client
        .create_leg(CreateLeg::incoming(session, sdp))
        .await
        .unwrap();
    let leg = client
        .update_leg(UpdateLeg::new(&created.leg.leg_id).state(proto::LegState::Connected))
        .await
        .unwrap()
        .leg;
    (leg, created.local_sdp)
}

/// The fmtp line of payload type `pt` in `sdp`.
fn fmtp(sdp: &str, pt: u8) -> Option<&str> {
    let prefix = format!("a=fmtp:{pt} ");
    sdp.lines().find_map(|l| l.strip_prefix(prefix.as_str()))
}

/// One source of the timeline: what it sends at each step.
struct Source {
    socket: UdpSocket,
    to: SocketAddr,
    ssrc: u32,
    kind: Kind,
    seq: u16,
}

enum Kind {
    /// Valid PCMU throughout (the other call, and the feeder).
    Pcmu(f64),
    /// G.722 at PT 9; in `BAD`, every other packet has 159 bytes.
    G722OddLength(Box<G722Encoder>),
    /// Opus at PT 111; in `BAD`, random bytes of random length.
    OpusRandom(Box<OpusEncoder>),
    /// PCMU at PT 0; in `BAD`, PCMA at PT 8 (never negotiated) and every
    /// fifth packet PT 96.
    PayloadTypeSwitch,
}

impl Source {
    fn new(peer: &Peer, leg: &proto::Leg, kind: Kind) -> Self {
        Self {
            socket: peer.socket.try_clone().unwrap(),
            to: local_rtp(leg),
            ssrc: fastrand::u32(..),
            kind,
            seq: 0,
        }
    }

    fn step(&mut self, step: usize, rng: &mut fastrand::Rng) {
        let bad = BAD.contains(&step);
        let pcm8k = sine(700.0, AMPLITUDE, step * 160, 160);
        let (pt, ts, payload): (u8, u32, Vec<u8>) = match &mut self.kind {
            Kind::Pcmu(hz) => {
                let pcm = sine(*hz, AMPLITUDE, step * 160, 160);
                let payload = pcm.into_iter().map(|s| G711::Pcmu.encode(s)).collect();
                (0, step as u32 * 160, payload)
            }
            Kind::G722OddLength(encoder) => {
                let pcm: Vec<i16> = (0..320)
                    .map(|i| {
                        let t = (step * 320 + i) as f64 / 16000.0;
                        (AMPLITUDE * (2.0 * std::f64::consts::PI * 700.0 * t).sin()) as i16
                    })
                    .collect();
                let mut out = [0u8; 160];
                let n = encoder.encode(&pcm, &mut out).unwrap();
                let len = if bad && step.is_multiple_of(2) {
                    159
                } else {
                    n
                };
                (9, step as u32 * 160, out[..len].to_vec())
            }
            Kind::OpusRandom(encoder) => {
                let payload = if bad {
                    let len = rng.usize(1..300);
                    (0..len).map(|_| rng.u8(..)).collect()
                } else {
                    let pcm: Vec<i16> = (0..960)
                        .map(|i| {
                            let t = (step * 960 + i) as f64 / 48000.0;
                            (AMPLITUDE * (2.0 * std::f64::consts::PI * 700.0 * t).sin()) as i16
                        })
                        .collect();
                    let mut out = [0u8; 1275];
                    let n = encoder.encode(&pcm, &mut out).unwrap();
                    out[..n].to_vec()
                };
                (OPUS_PT, step as u32 * 960, payload)
            }
            Kind::PayloadTypeSwitch => {
                if !bad {
                    let payload = pcm8k.into_iter().map(|s| G711::Pcmu.encode(s)).collect();
                    (0, step as u32 * 160, payload)
                } else if step.is_multiple_of(5) {
                    (
                        96,
                        step as u32 * 160,
                        (0..160).map(|_| rng.u8(..)).collect(),
                    )
                } else {
                    let payload = pcm8k.into_iter().map(|s| G711::Pcma.encode(s)).collect();
                    (8, step as u32 * 160, payload)
                }
            }
        };
        let h = Rtp {
            marker: step == 0,
            pt,
            seq: self.seq,
            ts,
            ssrc: self.ssrc,
        };
        send_rtp(&self.socket, self.to, h, &payload).unwrap();
        self.seq = self.seq.wrapping_add(1);
    }
}

/// Checks a sink's stream: one SSRC, no sequence gaps, timestamps
/// advancing by `ts_step` per packet (audio packets only). Returns the
/// number of packets.
fn check_continuous(name: &str, got: &[Received], pt: u8, ts_step: u32) -> usize {
    let audio: Vec<&Received> = got.iter().filter(|p| p.rtp.pt == pt).collect();
    assert!(!audio.is_empty(), "{name}: nothing received");
    for w in got.windows(2) {
        assert_eq!(w[1].rtp.ssrc, w[0].rtp.ssrc, "{name}: one SSRC");
        assert_eq!(
            w[1].rtp.seq,
            w[0].rtp.seq.wrapping_add(1),
            "{name}: sequence gap"
        );
    }
    for w in audio.windows(2) {
        assert_eq!(
            w[1].rtp.ts.wrapping_sub(w[0].rtp.ts),
            ts_step,
            "{name}: timestamps"
        );
    }
    audio.len()
}

async fn bad_input_on_the_pcm_path(io: Io) {
    let daemon = daemon_or_skip!(Options::new(io));
    let pid = daemon.pid().expect("running");
    let client = daemon.client().await.unwrap();

    // The other call: PCMU to PCMA, streaming all along.
    let victim = client.create_session(Some("victim")).await.unwrap();
    let (pva, pvb) = (Peer::new().unwrap(), Peer::new().unwrap());
    let va = connected_leg_with(&client, &victim, &pva, G711::Pcmu.formats())
        .await
        .unwrap();
    let vb = connected_leg_with(&client, &victim, &pvb, G711::Pcma.formats())
        .await
        .unwrap();
    client
        .send_media(va.leg_id.as_str(), vb.leg_id.as_str())
        .await
        .unwrap();

    let session = client.create_session(Some("bad")).await.unwrap();

    // ---- SDP ----------------------------------------------------------------
    // Unknown fmtp parameters (and an fmtp for a format not offered) are
    // ignored.
    let p_unknown = Peer::new().unwrap();
    let (unknown, answer) = leg_for(
        &client,
        &session,
        offer(
            &p_unknown,
            "0 101",
            "a=rtpmap:0 PCMU/8000\r\na=fmtp:0 x-legato-unknown=1;annexb\r\n\
             a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16;bogus=??\r\n\
             a=fmtp:97 mode=30\r\n",
        ),
    )
    .await;
    assert_eq!(
        unknown.codec.as_ref().map(|c| c.name.as_str()),
        Some("PCMU")
    );
    assert!(answer.contains("PCMU/8000"), "{answer}");
    // Opus stereo=1: accepted; legato answers stereo=0 and sends mono.
    let p_stereo = Peer::new().unwrap();
    let (stereo, answer) = leg_for(
        &client,
        &session,
        offer(
            &p_stereo,
            "111",
            "a=rtpmap:111 opus/48000/2\r\na=fmtp:111 stereo=1;sprop-stereo=1;useinbandfec=1\r\n",
        ),
    )
    .await;
    let stereo_fmtp = fmtp(&answer, OPUS_PT).unwrap_or_default().to_owned();
    eprintln!("{io:?}: answer to stereo=1: a=fmtp:{OPUS_PT} {stereo_fmtp}");
    assert!(stereo_fmtp.contains("stereo=0"), "{answer}");
    // a=ptime:7 is clamped to 10 ms.
    let p_ptime = Peer::new().unwrap();
    let (ptime7, _) = leg_for(
        &client,
        &session,
        offer(&p_ptime, "0", "a=rtpmap:0 PCMU/8000\r\na=ptime:7\r\n"),
    )
    .await;
    // CreateLeg with ptime_ms 7: not one legato writes.
    for sdp in [Some(offer(&Peer::new().unwrap(), "0", "")), None] {
        let params = match sdp {
            Some(sdp) => CreateLeg::incoming(&session, sdp),
            None => CreateLeg::outgoing(&session),
        };
        let err = client.create_leg(params.ptime_ms(7)).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "ptime_ms 7: {err}");
        eprintln!("{io:?}: CreateLeg ptime_ms 7: {err}");
    }

    // ---- the sources and their sinks ---------------------------------------
    let p_feed = Peer::new().unwrap();
    let feed = connected_leg_with(&client, &session, &p_feed, G711::Pcmu.formats())
        .await
        .unwrap();
    let p_g722 = Peer::new().unwrap();
    let (g722, _) = leg_for(
        &client,
        &session,
        offer(&p_g722, "9", "a=rtpmap:9 G722/8000\r\n"),
    )
    .await;
    let p_opus = Peer::new().unwrap();
    let (opus, _) = leg_for(
        &client,
        &session,
        offer(&p_opus, "111", "a=rtpmap:111 opus/48000/2\r\n"),
    )
    .await;
    let p_switch = Peer::new().unwrap();
    let switch = connected_leg_with(&client, &session, &p_switch, G711::Pcmu.formats())
        .await
        .unwrap();
    let sink_peers: Vec<Peer> = (0..3).map(|_| Peer::new().unwrap()).collect();
    let mut sinks = Vec::new();
    for (peer, law) in sink_peers.iter().zip([G711::Pcmu, G711::Pcmu, G711::Pcma]) {
        // The PCM path's concealment is what the PT switch exercises
        // (PCMU to PCMA alone would be converted packet by packet).
        sinks.push(
            connected_leg_transcoding(&client, &session, peer, law.formats())
                .await
                .unwrap(),
        );
    }
    let routes = [
        (&feed, &stereo),
        (&feed, &ptime7),
        (&g722, &sinks[0]),
        (&opus, &sinks[1]),
        (&switch, &sinks[2]),
    ];
    for (from, to) in routes {
        client
            .send_media(from.leg_id.as_str(), to.leg_id.as_str())
            .await
            .unwrap();
        let to = client.get_leg(&to.leg_id).await.unwrap();
        assert_eq!(
            to.media_path(),
            proto::MediaPath::Pcm,
            "{} is on the PCM path",
            to.leg_id
        );
    }

    // ---- a conference routed into itself -------------------------------------
    let c = client.create_conference(&session).await.unwrap();
    let conf = || MediaEndpoint::Conference(c.clone());
    let err = client.send_media(conf(), conf()).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    eprintln!("{io:?}: SendMedia conference to itself: {err}");
    // Its members may talk and listen at once (mix-minus): the feeder
    // talks and hears nobody but itself, i.e. silence.
    let p_member = Peer::new().unwrap();
    let member = connected_leg_with(&client, &session, &p_member, G711::Pcmu.formats())
        .await
        .unwrap();
    client
        .send_media(member.leg_id.as_str(), conf())
        .await
        .unwrap();
    client
        .send_media(conf(), member.leg_id.as_str())
        .await
        .unwrap();

    // ---- run the timeline -----------------------------------------------------
    let start = Instant::now() + Duration::from_millis(100);
    let until = start + Duration::from_millis(STEPS as u64 * 20 + 300);
    let victim_rx = spawn_collector(&pvb, until).unwrap();
    let stereo_rx = spawn_collector(&p_stereo, until).unwrap();
    let ptime_rx = spawn_collector(&p_ptime, until).unwrap();
    let member_rx = spawn_collector(&p_member, until).unwrap();
    let sink_rx: Vec<_> = sink_peers
        .iter()
        .map(|p| spawn_collector(p, until).unwrap())
        .collect();
    let mut sources = vec![
        Source::new(&pva, &va, Kind::Pcmu(440.0)),
        Source::new(&p_feed, &feed, Kind::Pcmu(500.0)),
        Source::new(&p_member, &member, Kind::Pcmu(600.0)),
        Source::new(
            &p_g722,
            &g722,
            Kind::G722OddLength(Box::new(G722Encoder::new())),
        ),
        Source::new(
            &p_opus,
            &opus,
            Kind::OpusRandom(Box::new(
                OpusEncoder::new(ClockRate::HZ_48000, OpusApplication::Voip, 32_000).unwrap(),
            )),
        ),
        Source::new(&p_switch, &switch, Kind::PayloadTypeSwitch),
    ];
    let sender = std::thread::spawn(move || {
        let mut rng = fastrand::Rng::with_seed(0x0bad_1a70);
        paced(start, STEPS, Duration::from_millis(20), |step| {
            for s in &mut sources {
                s.step(step, &mut rng);
            }
        });
    });
    sender.join().unwrap();
    let victim_got = victim_rx.join().unwrap();
    let stereo_got = stereo_rx.join().unwrap();
    let ptime_got = ptime_rx.join().unwrap();
    let member_got = member_rx.join().unwrap();
    let sink_got: Vec<Vec<Received>> = sink_rx.into_iter().map(|h| h.join().unwrap()).collect();

    // ---- legatod is alive and answering ---------------------------------------
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "legatod exited"
    );
    let sessions = client.list_sessions().await.unwrap();
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    for leg in client.list_legs(None).await.unwrap() {
        assert_eq!(
            leg.state(),
            proto::LegState::Connected,
            "{}: {:?}",
            leg.leg_id,
            leg.state()
        );
    }

    // ---- the other call did not notice ----------------------------------------
    let n = check_continuous("victim", &victim_got, 8, 160);
    let levels: Vec<f64> = (1..6)
        .map(|s| {
            let from = start + Duration::from_secs(s);
            tone_level_db(
                &decode_window(&victim_got, G711::Pcma, from, from + Duration::from_secs(1)),
                440.0,
            )
        })
        .collect();
    let widest = victim_got
        .windows(2)
        .map(|w| w[1].at.duration_since(w[0].at))
        .max()
        .unwrap_or_default();
    eprintln!("{io:?}: victim call: {n} packets, tone {levels:.1?} dB, widest gap {widest:?}");
    assert!(n >= STEPS - 15, "victim received {n} of {STEPS}");
    let nominal = 20.0 * AMPLITUDE.log10();
    assert!(
        levels.iter().all(|l| (l - nominal).abs() < 3.0),
        "victim tone {levels:.1?} dB"
    );

    // ---- each bad source: counted, concealed, its sink continuous ------------
    let stats = |leg: &proto::Leg| {
        let client = client.clone();
        let id = leg.leg_id.clone();
        async move { client.get_statistics(&id).await.unwrap() }
    };
    let bad_count = BAD.len() as u64;
    let g = stats(&g722).await;
    let o = stats(&opus).await;
    let s = stats(&switch).await;
    let counters = |m: &proto::MediaStatistics| m.counters.unwrap_or_default();
    for (name, m) in [
        ("G.722 odd length", &g),
        ("random Opus", &o),
        ("PT switch", &s),
    ] {
        let c = counters(m);
        eprintln!(
            "{io:?}: {name}: received {} (unsupported {}, malformed {}), concealed {}",
            c.rtp_packets_received,
            c.unsupported_payload_packets,
            c.malformed_packets,
            m.concealed_frames
        );
    }
    // G.722: every packet is valid RTP; the 75 odd ones are dropped by the
    // PCM path and concealed.
    assert_eq!(counters(&g).rtp_packets_received, STEPS as u64);
    assert!(
        g.concealed_frames >= bad_count / 2 * 8 / 10,
        "G.722: {} concealed for {} odd packets",
        g.concealed_frames,
        bad_count / 2
    );
    // Opus: counted; what the decoder cannot take is concealed (random
    // bytes that happen to parse are decoded as noise).
    assert_eq!(counters(&o).rtp_packets_received, STEPS as u64);
    assert!(o.concealed_frames > 10, "random Opus: {o:?}");
    // PT switch: counted as unsupported and dropped; the stream goes quiet
    // (concealed, then rebuffered) until PT 0 comes back.
    assert_eq!(counters(&s).unsupported_payload_packets, bad_count);
    assert!(s.concealed_frames > 0, "PT switch: {s:?}");
    for ((name, got), law) in ["G.722 sink", "Opus sink", "PT switch sink"]
        .iter()
        .zip(&sink_got)
        .zip([G711::Pcmu, G711::Pcmu, G711::Pcma])
    {
        let n = check_continuous(name, got, law.pt(), 160);
        // Valid audio before and after the bad part reaches the sink.
        let before = tone_level_db(
            &decode_window(
                got,
                law,
                start + Duration::from_millis(500),
                start + Duration::from_millis(1500),
            ),
            700.0,
        );
        let after = tone_level_db(
            &decode_window(
                got,
                law,
                start + Duration::from_millis(4900),
                start + Duration::from_millis(5900),
            ),
            700.0,
        );
        eprintln!("{io:?}: {name}: {n} packets, 700 Hz {before:.1} dB before, {after:.1} dB after");
        assert!(before > nominal - 6.0, "{name}: {before:.1} dB before");
        assert!(after > nominal - 6.0, "{name}: {after:.1} dB after");
    }

    // ---- the SDP cases carry media by their rule ------------------------------
    // stereo=1: mono Opus (TOC stereo flag clear), decodable.
    let opus_packets: Vec<&Received> = stereo_got.iter().filter(|p| p.rtp.pt == OPUS_PT).collect();
    assert!(
        opus_packets.len() > 250,
        "{} Opus packets",
        opus_packets.len()
    );
    assert!(
        opus_packets.iter().all(|p| p.payload[0] & 0x04 == 0),
        "a stereo Opus packet"
    );
    let mut decoder = legato_dsp::codec::opus::OpusDecoder::new(ClockRate::HZ_48000).unwrap();
    let mut pcm = vec![0i16; 5760];
    for p in &opus_packets {
        use legato_dsp::codec::Decoder as _;
        let n = decoder.decode(&p.payload, &mut pcm).unwrap();
        assert_eq!(n, 960, "20 ms mono frames");
    }
    // a=ptime:7: 10 ms packets of 80 bytes, 100 a second.
    let ptime_audio: Vec<&Received> = ptime_got.iter().filter(|p| p.rtp.pt == 0).collect();
    check_continuous("ptime 7 sink", &ptime_got, 0, 80);
    eprintln!(
        "{io:?}: stereo=1 leg got {} mono Opus packets; ptime 7 leg got {} packets of {:?} bytes",
        opus_packets.len(),
        ptime_audio.len(),
        ptime_audio.first().map(|p| p.payload.len())
    );
    assert!(ptime_audio.iter().all(|p| p.payload.len() == 80));
    assert!(ptime_audio.len() > 500, "{} packets", ptime_audio.len());
    // The conference member hears mix-minus: not itself.
    let heard = decode_window(
        &member_got,
        G711::Pcmu,
        start + Duration::from_secs(1),
        start + Duration::from_secs(5),
    );
    let own = tone_level_db(&heard, 600.0);
    eprintln!(
        "{io:?}: conference member: {} packets, its own tone at {own:.1} dB",
        member_got.len()
    );
    assert!(own < 20.0, "the member hears itself at {own:.1} dB");
}

per_backend!(bad_input_on_the_pcm_path);
