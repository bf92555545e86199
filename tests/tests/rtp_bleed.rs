//! RTP bleed and media loops (issue 9, items 3, 6, 7 and the packet-level
//! parts of 8), on a real legatod over real UDP: a stranger who sends to a
//! leg's port never gets the party's audio once the party's SDP address has
//! sent and never takes over from it; a NAT'd party is still learned, by
//! probation; SDP pointing at legato itself or at multicast/broadcast
//! addresses is refused; looped, oversize and malformed RFC 4733 packets
//! are counted and dropped; a restarted daemon hands out other ports first.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use legato_client::{Code, CreateLeg, EventFilter, UpdateLeg, proto};
use legato_tests::{
    Daemon, Io, Options, Peer, Rtp, connected_leg, daemon_or_skip, kind_name, local_rtp, payload,
    per_backend, wait_event,
};

/// `count` in-sequence packets from `peer` to `to` (sequence from `seq0`,
/// one SSRC), each carrying `payload(tag + i)`.
fn send_run(peer: &Peer, to: SocketAddr, ssrc: u32, seq0: u16, count: u16, tag: u32) {
    for i in 0..count {
        let seq = seq0.wrapping_add(i);
        let h = Rtp {
            marker: false,
            pt: 0,
            seq,
            ts: 160 * u32::from(seq),
            ssrc,
        };
        peer.send(to, h, &payload(tag + u32::from(i)))
            .expect("send");
        if i % 5 == 4 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Everything `peer` receives until it has been quiet for `quiet`.
fn drain(peer: &Peer, quiet: Duration) -> Vec<Vec<u8>> {
    peer.socket.set_read_timeout(Some(quiet)).expect("timeout");
    let mut got = Vec::new();
    while let Some((_, p, _)) = peer.recv().expect("recv") {
        got.push(p);
    }
    got
}

/// Receives until a packet with `wanted` payload arrives (others skipped).
fn wait_for(peer: &Peer, wanted: &[u8]) -> bool {
    peer.socket
        .set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    while let Some((_, p, _)) = peer.recv().expect("recv") {
        if p == wanted {
            return true;
        }
    }
    false
}

async fn counters(client: &legato_client::Client, leg: &str) -> proto::LegCounters {
    client
        .get_leg(leg)
        .await
        .unwrap()
        .counters
        .expect("counters")
}

fn source_change(e: &proto::Event) -> Option<&proto::MediaSourceChanged> {
    match &e.kind {
        Some(proto::event::Kind::MediaSourceChanged(c)) => Some(c),
        _ => None,
    }
}

const QUIET: Duration = Duration::from_millis(400);

/// (a) A stranger who sends first: its first packets are probation (not
/// relayed, legato keeps sending to the SDP address); once the party's
/// SDP address has sent, the stranger gets nothing and injects nothing,
/// whatever it sends. Also when it sent long enough to pass probation
/// before the party's first packet: the SDP address takes over at once.
async fn stranger_first_gets_nothing_once_party_sent(io: Io) {
    for filter in [true, false] {
        stranger_first(io, filter).await;
    }
}

/// With `kernel_filter` (the default) the leg's socket is connected to the
/// SDP address once it has sent, and the kernel drops the stranger's later
/// datagrams (not counted by legatod); without, legatod counts and drops
/// them.
async fn stranger_first(io: Io, kernel_filter: bool) {
    let mut options = Options::new(io);
    if !kernel_filter {
        options = options.arg("--no-kernel-source-filter");
    }
    let daemon = daemon_or_skip!(options);
    let client = daemon.client().await.unwrap();
    let session = client.create_session(None).await.unwrap();
    let mut events = client
        .watch_events(EventFilter::new().session(&session))
        .await
        .unwrap();
    for (round, stranger_first) in [(0u32, 3u16), (1, 20)] {
        let (pa, pb, stranger) = (
            Peer::new().unwrap(),
            Peer::new().unwrap(),
            Peer::new().unwrap(),
        );
        let a = connected_leg(&client, &session, &pa).await.unwrap();
        let b = connected_leg(&client, &session, &pb).await.unwrap();
        client.send_media(&*a.leg_id, &*b.leg_id).await.unwrap();
        client.send_media(&*b.leg_id, &*a.leg_id).await.unwrap();
        let (to_a, to_b) = (local_rtp(&a), local_rtp(&b));

        send_run(&stranger, to_a, 0x5555, 0, stranger_first, 10_000);
        let early = drain(&pb, QUIET);
        if stranger_first < 5 {
            assert!(early.is_empty(), "probation packets relayed: {early:?}");
            // b's audio goes to the SDP address, never to the stranger.
            send_run(&pb, to_b, 0x2222, 0, 5, 20_000);
            assert_eq!(
                drain(&pa, QUIET).len(),
                5,
                "round {round}: to the SDP address"
            );
            assert!(drain(&stranger, QUIET).is_empty(), "stranger got audio");
        } else {
            // Passed probation (as a NAT'd party would): learned.
            assert_eq!(early.len(), usize::from(stranger_first) - 5);
        }
        // The party's SDP address sends.
        pa.send(
            to_a,
            Rtp {
                marker: true,
                pt: 0,
                seq: 100,
                ts: 0,
                ssrc: 0x1111,
            },
            &payload(1_000),
        )
        .unwrap();
        assert!(wait_for(&pb, &payload(1_000)), "party's packet relayed");
        // From now on b's audio reaches only the party ...
        send_run(&pb, to_b, 0x2222, 100, 50, 30_000);
        assert_eq!(drain(&pa, QUIET).len(), 50, "round {round}: party hears b");
        assert!(
            drain(&stranger, QUIET).is_empty(),
            "round {round}: stranger got audio"
        );
        // ... and the stranger injects nothing, in sequence or not.
        send_run(&stranger, to_a, 0x5555, stranger_first, 30, 40_000);
        assert!(
            drain(&pb, QUIET).is_empty(),
            "round {round}: stranger relayed"
        );
        let c = counters(&client, &a.leg_id).await;
        let unexpected = if kernel_filter { 0 } else { 30 };
        assert_eq!(
            c.unexpected_source_packets, unexpected,
            "round {round}: {c:?}"
        );
        assert_eq!(c.probation_packets, u64::from(stranger_first.min(5)));
        let leg = client.get_leg(&a.leg_id).await.unwrap();
        assert_eq!(
            leg.latched_rtp.unwrap().port,
            u32::from(pa.addr().port()),
            "latched to the SDP address"
        );
        if stranger_first >= 5 {
            assert_eq!(c.source_switches, 2);
            let learned = wait_event(&mut events, Duration::from_secs(5), |e| {
                e.leg_id == a.leg_id && kind_name(e) == "MediaSourceChanged"
            })
            .await
            .unwrap();
            let learned = source_change(&learned).unwrap();
            assert_eq!(learned.reason(), proto::MediaSourceChangeReason::Probation);
            assert_eq!(learned.old_address, None);
            let back = wait_event(&mut events, Duration::from_secs(5), |e| {
                e.leg_id == a.leg_id && kind_name(e) == "MediaSourceChanged"
            })
            .await
            .unwrap();
            let back = source_change(&back).unwrap();
            assert_eq!(back.reason(), proto::MediaSourceChangeReason::SdpAddress);
            assert_eq!(back.ssrc, 0x1111);
            assert_eq!(
                back.new_address.as_ref().unwrap().port,
                u32::from(pa.addr().port())
            );
        } else {
            assert_eq!(c.source_switches, 0);
        }
    }
}

/// (b) After the party pauses past relatch_after, a stranger's in-sequence
/// stream still does not take over from the SDP-listed party. A NAT'd
/// party (its SDP names an address that never sends) is learned through
/// probation, with the switch counted and reported, and is then sent to;
/// after a silence its new NAT mapping is learned the same way.
async fn pause_does_not_hand_the_leg_over(io: Io) {
    let daemon = daemon_or_skip!(Options::new(io).arg("--relatch-after-ms").arg("300"));
    let client = daemon.client().await.unwrap();
    let session = client.create_session(None).await.unwrap();
    let mut events = client
        .watch_events(EventFilter::new().session(&session))
        .await
        .unwrap();
    let (pa, pb, stranger) = (
        Peer::new().unwrap(),
        Peer::new().unwrap(),
        Peer::new().unwrap(),
    );
    let a = connected_leg(&client, &session, &pa).await.unwrap();
    let b = connected_leg(&client, &session, &pb).await.unwrap();
    client.send_media(&*a.leg_id, &*b.leg_id).await.unwrap();
    client.send_media(&*b.leg_id, &*a.leg_id).await.unwrap();
    let (to_a, to_b) = (local_rtp(&a), local_rtp(&b));
    send_run(&pa, to_a, 0x1111, 0, 10, 0);
    assert_eq!(drain(&pb, QUIET).len(), 10);
    // The party pauses (hold, mute) well past relatch_after ...
    tokio::time::sleep(Duration::from_millis(900)).await;
    // ... and a stranger streams in sequence.
    send_run(&stranger, to_a, 0x5555, 0, 40, 10_000);
    assert!(drain(&pb, QUIET).is_empty(), "stranger took the leg over");
    send_run(&pb, to_b, 0x2222, 0, 20, 20_000);
    assert_eq!(drain(&pa, QUIET).len(), 20, "party still hears b");
    assert!(drain(&stranger, QUIET).is_empty(), "stranger got audio");
    // The party comes back: relayed at once.
    send_run(&pa, to_a, 0x1111, 10, 5, 50);
    assert_eq!(drain(&pb, QUIET).len(), 5);
    let c = counters(&client, &a.leg_id).await;
    // The kernel dropped the stranger's datagrams (kernel_source_filter).
    assert_eq!((c.unexpected_source_packets, c.source_switches), (0, 0));

    // NAT: the SDP names `ghost`, which never sends; `natted` is the party.
    let (ghost, natted, pd) = (
        Peer::new().unwrap(),
        Peer::new().unwrap(),
        Peer::new().unwrap(),
    );
    let c_leg = connected_leg(&client, &session, &ghost).await.unwrap();
    let d = connected_leg(&client, &session, &pd).await.unwrap();
    client.send_media(&*c_leg.leg_id, &*d.leg_id).await.unwrap();
    client.send_media(&*d.leg_id, &*c_leg.leg_id).await.unwrap();
    let (to_c, to_d) = (local_rtp(&c_leg), local_rtp(&d));
    send_run(&natted, to_c, 0x7777, 0, 5, 0);
    assert!(drain(&pd, QUIET).is_empty(), "probation packets relayed");
    send_run(&natted, to_c, 0x7777, 5, 20, 5);
    let relayed = drain(&pd, QUIET);
    assert_eq!(relayed.len(), 20, "NAT'd party relayed after probation");
    assert_eq!(relayed[0], payload(5));
    send_run(&pd, to_d, 0x8888, 0, 10, 0);
    assert_eq!(drain(&natted, QUIET).len(), 10, "NAT'd party hears d");
    assert!(drain(&ghost, QUIET).is_empty());
    let c = counters(&client, &c_leg.leg_id).await;
    assert_eq!((c.probation_packets, c.source_switches), (5, 1), "{c:?}");
    let event = wait_event(&mut events, Duration::from_secs(5), |e| {
        e.leg_id == c_leg.leg_id && kind_name(e) == "MediaSourceChanged"
    })
    .await
    .unwrap();
    let change = source_change(&event).unwrap();
    assert_eq!(change.reason(), proto::MediaSourceChangeReason::Probation);
    assert_eq!(
        change.new_address.as_ref().unwrap().port,
        u32::from(natted.addr().port())
    );
    assert_eq!(change.ssrc, 0x7777);
    // While the NAT'd party talks, a stranger gets nowhere.
    send_run(&natted, to_c, 0x7777, 25, 1, 25);
    send_run(&stranger, to_c, 0x5555, 0, 20, 60_000);
    assert_eq!(drain(&pd, QUIET), [payload(25)], "stranger relayed");
    // The NAT mapping changes (new public port) after a silence past
    // relatch_after: the new mapping is learned by probation again.
    tokio::time::sleep(Duration::from_millis(900)).await;
    let rebound = Peer::new().unwrap();
    send_run(&rebound, to_c, 0x7777, 100, 5, 100);
    assert!(drain(&pd, QUIET).is_empty(), "probation packets relayed");
    send_run(&rebound, to_c, 0x7777, 105, 10, 105);
    assert_eq!(drain(&pd, QUIET).len(), 10, "rebound party relayed");
    send_run(&pd, to_d, 0x8888, 10, 10, 10);
    assert_eq!(drain(&rebound, QUIET).len(), 10, "rebound party hears d");
    assert!(drain(&natted, QUIET).is_empty());
    let c = counters(&client, &c_leg.leg_id).await;
    assert_eq!((c.probation_packets, c.source_switches), (10, 2), "{c:?}");
}

/// (d) SDP naming legato's own media address and port range is refused,
/// in CreateLeg and in UpdateLeg; a packet from one of legato's own ports
/// is dropped and counted, not relayed. (f) Multicast and broadcast
/// connection addresses are refused.
async fn loops_and_group_addresses_refused(io: Io) {
    let daemon = daemon_or_skip!(Options::new(io));
    let client = daemon.client().await.unwrap();
    let session = client.create_session(None).await.unwrap();
    let sdp = |address: &str, port: u16| {
        format!(
            "v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 {address}\r\nt=0 0\r\n\
             m=audio {port} RTP/AVP 0\r\n"
        )
    };
    let (min, max) = daemon.ports;
    for (what, text, fragment) in [
        ("own first port", sdp("127.0.0.1", min), "loop"),
        ("own last port", sdp("127.0.0.1", max - 1), "loop"),
        ("multicast", sdp("233.252.0.1/16", 4000), "multicast"),
        ("broadcast", sdp("255.255.255.255", 4000), "broadcast"),
    ] {
        let err = client
            .create_leg(CreateLeg::incoming(&session, text))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{what}: {err}");
        assert!(err.to_string().contains(fragment), "{what}: {err}");
    }
    let (pa, pb) = (Peer::new().unwrap(), Peer::new().unwrap());
    let a = connected_leg(&client, &session, &pa).await.unwrap();
    let b = connected_leg(&client, &session, &pb).await.unwrap();
    client.send_media(&*a.leg_id, &*b.leg_id).await.unwrap();
    client.send_media(&*b.leg_id, &*a.leg_id).await.unwrap();
    // A re-offer pointing a at b's own port: the loop legato would run.
    let err = client
        .update_leg(UpdateLeg::new(&a.leg_id).remote_offer(sdp("127.0.0.1", local_rtp(&b).port())))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    // A datagram from a port of legato's range (not bound by legato yet,
    // so the test can send from it) is a loop: dropped and counted.
    let own = (min..=max)
        .rev()
        .find_map(|port| UdpSocket::bind(("127.0.0.1", port)).ok())
        .expect("a free port in legato's range");
    let mut packet = vec![0x80, 0, 0, 1, 0, 0, 0, 160, 0, 0, 0, 9];
    packet.extend_from_slice(&payload(1));
    for _ in 0..3 {
        own.send_to(&packet, local_rtp(&a)).unwrap();
    }
    assert!(drain(&pb, QUIET).is_empty(), "looped packet relayed");
    let c = counters(&client, &a.leg_id).await;
    assert_eq!(c.loop_packets, 3, "{c:?}");
    assert_eq!(c.rtp_packets_received, 0);
    assert_eq!(counters(&client, &b.leg_id).await.rtp_packets_sent, 0);
}

/// (e) RFC 4733 payloads that are not 4-byte event blocks are counted as
/// malformed and dropped; valid ones are relayed. (g) A datagram over the
/// 2 KiB receive buffer is counted as oversize and dropped.
async fn bad_events_and_oversize_counted(io: Io) {
    let daemon = daemon_or_skip!(Options::new(io));
    let client = daemon.client().await.unwrap();
    let session = client.create_session(None).await.unwrap();
    let (pa, pb) = (Peer::new().unwrap(), Peer::new().unwrap());
    let a = connected_leg(&client, &session, &pa).await.unwrap();
    let b = connected_leg(&client, &session, &pb).await.unwrap();
    client.send_media(&*a.leg_id, &*b.leg_id).await.unwrap();
    let to = local_rtp(&a);
    let event = |seq: u16, body: &[u8]| {
        pa.send(
            to,
            Rtp {
                marker: false,
                pt: 101,
                seq,
                ts: 0,
                ssrc: 1,
            },
            body,
        )
        .unwrap();
    };
    event(1, &[5, 10, 0, 160]);
    event(2, &[5, 10, 0]);
    event(3, &[5, 10, 1, 64, 0, 0]);
    event(4, &[]);
    event(5, &[5, 0x8a, 1, 224]);
    let got = drain(&pb, QUIET);
    assert_eq!(got, [vec![5, 10, 0, 160], vec![5, 0x8a, 1, 224]]);
    let mut big = vec![0x80, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 1];
    big.resize(3_000, 0x55);
    pa.socket.send_to(&big, to).unwrap();
    assert!(drain(&pb, QUIET).is_empty(), "oversize datagram relayed");
    let c = counters(&client, &a.leg_id).await;
    assert_eq!(c.malformed_packets, 3, "{c:?}");
    assert_eq!(c.oversize_packets, 1, "{c:?}");
    assert_eq!(c.telephone_event_packets_received, 2);
}

/// Item 7: a restarted daemon does not hand out the same first ports. The
/// pool starts at a random one of 500 pairs: three starts giving the same
/// first three ports has a chance of 1 in 250,000.
async fn restart_hands_out_other_ports(io: Io) {
    let mut options = Options::new(io);
    options.pairs = 500;
    let mut range = None;
    let mut firsts = Vec::new();
    for _ in 0..3 {
        let mut o = options.clone();
        o.ports = range;
        let Some(mut daemon) = Daemon::start(o).unwrap() else {
            return;
        };
        range = Some(daemon.ports);
        let client = daemon.client().await.unwrap();
        let session = client.create_session(None).await.unwrap();
        let peer = Peer::new().unwrap();
        let mut ports = Vec::new();
        for _ in 0..3 {
            let leg = connected_leg(&client, &session, &peer).await.unwrap();
            ports.push(local_rtp(&leg).port());
        }
        firsts.push(ports);
        drop(client);
        assert!(daemon.terminate().unwrap().success());
    }
    assert!(
        firsts.iter().any(|f| f != &firsts[0]),
        "every start handed out {:?} first",
        firsts[0]
    );
}

per_backend!(
    stranger_first_gets_nothing_once_party_sent,
    pause_does_not_hand_the_leg_over,
    loops_and_group_addresses_refused,
    bad_events_and_oversize_counted,
    restart_hands_out_other_ports
);
