//! Item 8's packet rules, end to end: RTCP is checked against its source
//! (strict or latching), a payload type the leg did not negotiate is
//! counted on the leg that received it, and a relayed packet the sink
//! cannot send (telephone-event to a leg without it) on the sink.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use legato_client::{CreateLeg, UpdateLeg, proto};
use legato_tests::{
    Io, Options, Peer, Rtp, connected_leg, daemon_or_skip, local_rtp, payload, per_backend,
};

/// An RTCP receiver report without report blocks (RFC 3550 §6.4.2).
const RTCP_RR: [u8; 8] = [0x80, 201, 0x00, 0x01, 0, 0, 0, 7];

fn local_rtcp(leg: &proto::Leg) -> SocketAddr {
    let a = leg.local_rtcp.as_ref().unwrap();
    SocketAddr::new(a.ip.parse().unwrap(), u16::try_from(a.port).unwrap())
}

/// An offer without rtcp-mux whose RTCP goes to `rtcp` (RFC 3605).
fn offer_with_rtcp(rtp: &Peer, rtcp: &UdpSocket) -> String {
    let offer = rtp.offer();
    offer.replace(
        "a=sendrecv\r\n",
        &format!(
            "a=rtcp:{}\r\na=sendrecv\r\n",
            rtcp.local_addr().unwrap().port()
        ),
    )
}

async fn counters(client: &legato_client::Client, leg: &str) -> proto::LegCounters {
    client.get_leg(leg).await.unwrap().counters.unwrap()
}

async fn wait_for(
    client: &legato_client::Client,
    leg: &str,
    what: impl Fn(&proto::LegCounters) -> bool,
) -> proto::LegCounters {
    for _ in 0..100 {
        let c = counters(client, leg).await;
        if what(&c) {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    counters(client, leg).await
}

async fn rtcp_is_source_checked(io: Io) {
    let daemon = daemon_or_skip!(Options::new(io));
    let client = daemon.client().await.unwrap();
    let session = client.create_session(None).await.unwrap();
    for strict in [true, false] {
        let peer = Peer::new().unwrap();
        let peer_rtcp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
        let leg = client
            .create_leg(
                CreateLeg::incoming(&session, offer_with_rtcp(&peer, &peer_rtcp))
                    .strict_source(strict),
            )
            .await
            .unwrap()
            .leg;
        assert!(!leg.rtcp_mux);
        let leg = client
            .update_leg(UpdateLeg::new(&leg.leg_id).state(proto::LegState::Connected))
            .await
            .unwrap()
            .leg;
        let to = local_rtcp(&leg);
        for _ in 0..3 {
            stranger.send_to(&RTCP_RR, to).unwrap();
        }
        let c = wait_for(&client, &leg.leg_id, |c| c.unexpected_source_packets >= 3).await;
        assert_eq!(c.unexpected_source_packets, 3, "strict={strict}: {c:?}");
        assert_eq!(c.rtcp_packets_received, 0, "strict={strict}: {c:?}");
        peer_rtcp.send_to(&RTCP_RR, to).unwrap();
        let c = wait_for(&client, &leg.leg_id, |c| c.rtcp_packets_received >= 1).await;
        assert_eq!(c.rtcp_packets_received, 1, "strict={strict}: {c:?}");
        assert_eq!(c.unexpected_source_packets, 3, "strict={strict}: {c:?}");
    }
}

async fn payload_drops_are_counted_where_the_proto_says(io: Io) {
    let daemon = daemon_or_skip!(Options::new(io));
    let client = daemon.client().await.unwrap();
    let session = client.create_session(None).await.unwrap();
    let (pa, pb) = (Peer::new().unwrap(), Peer::new().unwrap());
    let a = connected_leg(&client, &session, &pa).await.unwrap();
    // b negotiates PCMU only: no telephone-event.
    let b = client
        .create_leg(CreateLeg::incoming(
            &session,
            pb.offer_with("0", "a=sendrecv", "127.0.0.1"),
        ))
        .await
        .unwrap()
        .leg;
    let b = client
        .update_leg(UpdateLeg::new(&b.leg_id).state(proto::LegState::Connected))
        .await
        .unwrap()
        .leg;
    client
        .send_media(a.leg_id.as_str(), b.leg_id.as_str())
        .await
        .unwrap();
    let to = local_rtp(&a);
    let rtp = |seq: u16, pt: u8| Rtp {
        marker: false,
        pt,
        seq,
        ts: 160 * u32::from(seq),
        ssrc: 11,
    };
    // Audio first, so a has latched to pa.
    for seq in 0..5 {
        pa.send(to, rtp(seq, 0), &payload(u32::from(seq))).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    // PT 96 was never negotiated on a: counted on a, the receiving leg.
    for seq in 5..8 {
        pa.send(to, rtp(seq, 96), &payload(0)).unwrap();
    }
    // A valid telephone-event (RFC 4733: event 5, end bit, volume 10,
    // duration 800): a has it, b does not, so b cannot send it.
    for seq in 8..10 {
        pa.send(to, rtp(seq, 101), &[5, 0x8a, 0x03, 0x20]).unwrap();
    }
    let ca = wait_for(&client, &a.leg_id, |c| {
        c.telephone_event_packets_received >= 2
    })
    .await;
    assert_eq!(ca.unsupported_payload_packets, 3, "{ca:?}");
    let cb = wait_for(&client, &b.leg_id, |c| c.unsendable_payload_packets >= 2).await;
    assert_eq!(cb.unsendable_payload_packets, 2, "{cb:?}");
    assert_eq!(cb.rtp_packets_sent, 5, "{cb:?}");
    // b's remote party got the audio and nothing else.
    let mut got = 0;
    while let Some((h, _, _)) = pb.recv().unwrap() {
        assert_eq!(h.pt, 0);
        got += 1;
        if got == 5 {
            break;
        }
    }
    assert_eq!(got, 5);
}

per_backend!(
    rtcp_is_source_checked,
    payload_drops_are_counted_where_the_proto_says
);
