//! The Call API's rule that a leg sends media only once it is EARLY_MEDIA
//! or CONNECTED is kept, but made visible: SendMedia says so, the held-back
//! packets are counted in GetLeg, and legatoctl warns.

use std::time::Duration;

use legato_client::{CreateLeg, UpdateLeg, proto};
use legato_tests::{
    Io, Options, Peer, Rtp, connected_leg, daemon_or_skip, legatoctl_ok, local_rtp, payload,
    per_backend,
};

fn send(peer: &Peer, to: std::net::SocketAddr, from: u32, count: u32) {
    for i in from..from + count {
        let h = Rtp {
            marker: false,
            pt: 0,
            seq: i as u16,
            ts: 160 * i,
            ssrc: 9,
        };
        peer.send(to, h, &payload(i)).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
}

async fn media_to_a_ringing_leg_is_held_back_and_counted(io: Io) {
    let daemon = daemon_or_skip!(Options::new(io));
    let client = daemon.client().await.unwrap();
    let session = client.create_session(None).await.unwrap();
    let (pa, pb) = (Peer::new().unwrap(), Peer::new().unwrap());
    let a = connected_leg(&client, &session, &pa).await.unwrap();
    // b is only ringing: its SDP is known, but it is not connected.
    let b = client
        .create_leg(CreateLeg::incoming(&session, pb.offer()))
        .await
        .unwrap()
        .leg;
    let routed = client
        .send_media(a.leg_id.as_str(), b.leg_id.as_str())
        .await
        .unwrap();
    let why = routed
        .held_back
        .expect("SendMedia says the media is held back");
    assert!(why.contains("PROGRESSING"), "{why}");

    send(&pa, local_rtp(&a), 0, 20);
    assert!(pb.recv().unwrap().is_none(), "a ringing leg sent media");
    let counters = client.get_leg(&b.leg_id).await.unwrap().counters.unwrap();
    assert_eq!(counters.held_back_packets, 20);
    assert_eq!(counters.rtp_packets_sent, 0);

    // legatoctl shows the count and warns on a new route.
    let endpoint = daemon.endpoint();
    let ctl = |args: &[&str]| legatoctl_ok(&endpoint, args);
    let shown = ctl(&["leg", "get", &b.leg_id]);
    assert!(shown.contains("held_back=20"), "{shown}");
    let routed = ctl(&["media", "send", "--from", &a.leg_id, "--to", &b.leg_id]);
    assert!(routed.contains("warning: nothing is sent yet"), "{routed}");
    let json = ctl(&[
        "--json", "media", "send", "--from", &a.leg_id, "--to", &b.leg_id,
    ]);
    assert!(json.contains("\"held_back\":\"leg"), "{json}");

    // Once connected, the same route carries media and SendMedia is quiet.
    client
        .update_leg(UpdateLeg::new(&b.leg_id).state(proto::LegState::Connected))
        .await
        .unwrap();
    send(&pa, local_rtp(&a), 20, 5);
    for _ in 0..5 {
        assert!(pb.recv().unwrap().is_some(), "connected leg sends");
    }
    let routed = client
        .send_media(a.leg_id.as_str(), b.leg_id.as_str())
        .await
        .unwrap();
    assert_eq!(routed.held_back, None);
    let counters = client.get_leg(&b.leg_id).await.unwrap().counters.unwrap();
    assert_eq!(counters.held_back_packets, 20);
    assert_eq!(counters.rtp_packets_sent, 5);
}

per_backend!(media_to_a_ringing_leg_is_held_back_and_counted);
