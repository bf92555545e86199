//! Hostile and mistaken input: clear gRPC statuses, nothing leaked, junk
//! datagrams counted and dropped without disturbing a bridged stream.

use std::net::UdpSocket;
use std::time::Duration;

use legato_client::{Code, CreateLeg, UpdateLeg, proto};
use legato_tests::{
    Io, OneWayBridge, Options, Peer, Rtp, connected_leg, daemon_or_skip, local_rtp, payload,
    per_backend,
};

async fn statuses_for_bad_requests(io: Io) {
    let daemon = daemon_or_skip!(Options::new(io));
    let client = daemon.client().await.unwrap();
    let session = client.create_session(Some("bad-input")).await.unwrap();
    let peer = Peer::new().unwrap();

    let cases = [
        ("garbage", "hello"),
        (
            "no m= line",
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n",
        ),
        (
            "port out of range",
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 99999 RTP/AVP 0\r\n",
        ),
        (
            "no common codec",
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 18\r\n",
        ),
        (
            "SRTP only",
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/SAVP 0\r\n",
        ),
    ];
    for (what, sdp) in cases {
        let err = client
            .create_leg(CreateLeg::incoming(&session, sdp))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{what}: {err}");
    }
    let err = client
        .create_leg(CreateLeg::incoming("no-such-session", peer.offer()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    for leg in ["", "nope", "0123456789abcdef0000"] {
        let err = client.get_leg(leg).await.unwrap_err();
        assert!(
            matches!(err.code(), Code::NotFound | Code::InvalidArgument),
            "{leg}: {err}"
        );
    }
    let err = client
        .hangup_leg("0123456789abcdef0001", 0, "")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = client.delete_session("nope").await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = client.create_session(Some("bad-input")).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);

    // State machine misuse.
    let out = client
        .create_leg(CreateLeg::outgoing(&session))
        .await
        .unwrap();
    let err = client
        .update_leg(UpdateLeg::new(&out.leg.leg_id).state(proto::LegState::Connected))
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::FailedPrecondition,
        "connect before any SDP: {err}"
    );
    let a = connected_leg(&client, &session, &peer).await.unwrap();
    let err = client
        .update_leg(UpdateLeg::new(&a.leg_id).state(proto::LegState::Alerting))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "backwards state: {err}");
    let err = client
        .update_leg(UpdateLeg::new(&a.leg_id).remote_answer(peer.offer()))
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::InvalidArgument,
        "answer without offer: {err}"
    );
    let err = client
        .send_media(a.leg_id.as_str(), a.leg_id.as_str())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = client
        .send_media(out.leg.leg_id.as_str(), a.leg_id.as_str())
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::FailedPrecondition,
        "no media negotiated: {err}"
    );
    let pcma = client
        .create_leg(CreateLeg::incoming(
            &session,
            Peer::new()
                .unwrap()
                .offer_with("8", "a=sendrecv", "127.0.0.1"),
        ))
        .await
        .unwrap();
    // PCMU to PCMA is transcoded (the PCMA leg is not answered yet: held
    // back until it is).
    let routed = client
        .send_media(a.leg_id.as_str(), pcma.leg.leg_id.as_str())
        .await
        .unwrap();
    assert!(routed.held_back.is_some(), "{routed:?}");
    let err = client
        .stop_media(pcma.leg.leg_id.as_str(), a.leg_id.as_str())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = client.hangup_leg(&a.leg_id, 99, "").await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "bad SIP code");
    client.hangup_leg(&a.leg_id, 0, "").await.unwrap();
    let err = client.hangup_leg(&a.leg_id, 0, "").await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "second hangup");
    let err = client
        .create_leg(CreateLeg::incoming(&session, peer.offer()).codec("G729"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    // Declared but not built: an honest UNIMPLEMENTED.
    let Err(err) = client
        .stream_audio(&pcma.leg.leg_id, 8000, futures::stream::empty())
        .await
    else {
        panic!("StreamAudio succeeded although it is not built");
    };
    assert_eq!(err.code(), Code::Unimplemented);
}

async fn port_exhaustion_leaks_nothing(io: Io) {
    let mut options = Options::new(io);
    options.pairs = 3;
    let daemon = daemon_or_skip!(options);
    let client = daemon.client().await.unwrap();
    for round in 0..3 {
        let session = client.create_session(None).await.unwrap();
        let peer = Peer::new().unwrap();
        let mut legs = Vec::new();
        for _ in 0..3 {
            legs.push(
                client
                    .create_leg(CreateLeg::incoming(&session, peer.offer()))
                    .await
                    .unwrap(),
            );
        }
        let err = client
            .create_leg(CreateLeg::incoming(&session, peer.offer()))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted, "round {round}: {err}");
        // A failed creation (bad SDP) with free ports must give its port back too.
        client.hangup_leg(&legs[0].leg.leg_id, 0, "").await.unwrap();
        let err = client
            .create_leg(CreateLeg::incoming(&session, "junk"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        client
            .create_leg(CreateLeg::incoming(&session, peer.offer()))
            .await
            .unwrap();
        assert_eq!(client.delete_session(&session).await.unwrap(), 3);
    }
    assert!(client.list_legs(None).await.unwrap().is_empty());
}

async fn junk_flood_is_counted_and_harmless(io: Io) {
    // Without the kernel source filter every junk datagram reaches legatod,
    // which counts and drops it (with it, the kernel drops the stranger's
    // share before legatod sees it: tests/tests/junk_flood.rs).
    let Some(OneWayBridge {
        daemon: _daemon,
        client,
        pa,
        pb,
        a,
        ..
    }) = OneWayBridge::start_with(Options::new(io).arg("--no-kernel-source-filter"))
        .await
        .unwrap()
    else {
        return;
    };
    let target = local_rtp(&a);
    let junk = UdpSocket::bind("127.0.0.1:0").unwrap();
    const JUNK: usize = 10_000;
    const GOOD: u32 = 500;
    let received = std::thread::scope(|s| {
        let rx = s.spawn(|| {
            let mut got = Vec::new();
            while let Some((h, p, _)) = pb.recv().unwrap() {
                got.push((h, p));
                if got.len() == GOOD as usize {
                    break;
                }
            }
            got
        });
        // The good stream starts first so legato latches to it.
        pa.send(
            target,
            Rtp {
                marker: true,
                pt: 0,
                seq: 0,
                ts: 0,
                ssrc: 1,
            },
            &payload(0),
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(50));
        s.spawn(|| {
            let mut state = 0x9e37_79b9_u32;
            for i in 0..JUNK {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                let len = (state % 300) as usize;
                let mut buf: Vec<u8> = (0..len).map(|k| (state >> (k % 24)) as u8).collect();
                match i % 4 {
                    // Valid-looking RTP from the wrong source.
                    0 if len >= 12 => {
                        buf[0] = 0x80;
                        buf[1] = 0;
                    }
                    // RTCP-looking junk.
                    1 if len >= 8 => {
                        buf[0] = 0x80;
                        buf[1] = 200;
                    }
                    _ => {}
                }
                let _ = junk.send_to(&buf, target);
                if i % 20 == 19 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        });
        for i in 1..GOOD {
            pa.send(
                target,
                Rtp {
                    marker: false,
                    pt: 0,
                    seq: i as u16,
                    ts: 160 * i,
                    ssrc: 1,
                },
                &payload(i),
            )
            .unwrap();
            if i % 5 == 4 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        rx.join().unwrap()
    });
    assert_eq!(received.len(), GOOD as usize, "good stream undisturbed");
    for (i, (h, p)) in received.iter().enumerate() {
        assert_eq!(p, &payload(i as u32), "payload {i}");
        if i > 0 {
            assert_eq!(h.seq, received[i - 1].0.seq.wrapping_add(1));
        }
    }
    // Let the tail of the junk arrive, then read the counters.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let counters = client.get_leg(&a.leg_id).await.unwrap().counters.unwrap();
    let counted = counters.malformed_packets
        + counters.unexpected_source_packets
        + counters.unsupported_payload_packets
        + counters.rtcp_packets_received;
    assert_eq!(counters.rtp_packets_received, u64::from(GOOD));
    assert!(
        counted as f64 >= JUNK as f64 * 0.9,
        "junk counted: malformed {} + unexpected source {} + unsupported {} + rtcp {} of {JUNK}",
        counters.malformed_packets,
        counters.unexpected_source_packets,
        counters.unsupported_payload_packets,
        counters.rtcp_packets_received,
    );
    assert!(counters.malformed_packets > 0 && counters.unexpected_source_packets > 0);
    // The daemon still answers.
    client.list_sessions().await.unwrap();
}

async fn strict_source_and_latching(io: Io) {
    let daemon = daemon_or_skip!(Options::new(io));
    let client = daemon.client().await.unwrap();
    let session = client.create_session(None).await.unwrap();
    let (pa, pb, stranger) = (
        Peer::new().unwrap(),
        Peer::new().unwrap(),
        Peer::new().unwrap(),
    );
    let strict = client
        .create_leg(CreateLeg::incoming(&session, pa.offer()).strict_source(true))
        .await
        .unwrap();
    client
        .update_leg(UpdateLeg::new(&strict.leg.leg_id).state(proto::LegState::Connected))
        .await
        .unwrap();
    let b = connected_leg(&client, &session, &pb).await.unwrap();
    client
        .send_media(strict.leg.leg_id.as_str(), b.leg_id.as_str())
        .await
        .unwrap();
    let to = local_rtp(&strict.leg);
    let rtp = |seq: u16| Rtp {
        marker: false,
        pt: 0,
        seq,
        ts: 160 * u32::from(seq),
        ssrc: 3,
    };
    // A stranger's valid RTP is never accepted by a strict leg.
    for seq in 0..20 {
        stranger
            .send(to, rtp(seq), &payload(u32::from(seq)))
            .unwrap();
    }
    pb.socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    assert!(pb.recv().unwrap().is_none(), "stranger's packet relayed");
    // The SDP address is.
    pa.send(to, rtp(20), &payload(20)).unwrap();
    let (_, p, _) = pb
        .recv()
        .unwrap()
        .expect("packet from the SDP address relayed");
    assert_eq!(p, payload(20));
    let counters = client
        .get_leg(&strict.leg.leg_id)
        .await
        .unwrap()
        .counters
        .unwrap();
    // The strict leg's socket is connected to the SDP address from the
    // start (kernel_source_filter): the kernel drops the stranger's
    // datagrams before legatod sees them, so they are not counted.
    assert_eq!(counters.unexpected_source_packets, 0);
    assert_eq!(counters.rtp_packets_received, 1);

    // Without strict source, legato learns where RTP really comes from (a
    // NAT'd peer whose SDP address never sends) after a probation of 5
    // in-sequence packets, which are not relayed, and sends there.
    let natted = Peer::new().unwrap();
    let c = connected_leg(&client, &session, &pa).await.unwrap();
    let d = connected_leg(&client, &session, &pb).await.unwrap();
    client
        .send_media(c.leg_id.as_str(), d.leg_id.as_str())
        .await
        .unwrap();
    client
        .send_media(d.leg_id.as_str(), c.leg_id.as_str())
        .await
        .unwrap();
    for seq in 1..=5 {
        natted
            .send(local_rtp(&c), rtp(seq), &payload(u32::from(seq)))
            .unwrap();
    }
    natted.send(local_rtp(&c), rtp(6), &payload(6)).unwrap();
    let (_, p, _) = pb.recv().unwrap().expect("relayed from the latched source");
    assert_eq!(p, payload(6), "probation packets are not relayed");
    pb.send(local_rtp(&d), rtp(1), &payload(7)).unwrap();
    natted
        .socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let (_, p, _) = natted
        .recv()
        .unwrap()
        .expect("answer goes to the latched address");
    assert_eq!(p, payload(7));
    let leg_c = client.get_leg(&c.leg_id).await.unwrap();
    assert_eq!(
        leg_c.latched_rtp.unwrap().port,
        u32::from(natted.addr().port())
    );
}

per_backend!(
    statuses_for_bad_requests,
    port_exhaustion_leaks_nothing,
    junk_flood_is_counted_and_harmless,
    strict_source_and_latching
);
