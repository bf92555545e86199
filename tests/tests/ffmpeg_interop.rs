//! Interop with an independent RTP sender: ffmpeg streams a 1 kHz tone as
//! PCMU RTP into one leg; the bridged leg's peer receives it and the
//! decoded audio is checked to carry that tone.

use std::process::{Command, Stdio};
use std::time::Duration;

use legato_dsp::codec::g711::ulaw_to_linear;
use legato_tests::{
    Io, Options, Peer, connected_leg, daemon_or_skip, local_rtp, per_backend, tone_ratio,
};

async fn ffmpeg_tone_is_relayed(io: Io) {
    if Command::new("ffmpeg").arg("-version").output().is_err() {
        panic!("ffmpeg is missing: run scripts/test.sh, which installs it");
    }
    let daemon = daemon_or_skip!(Options::new(io));
    let client = daemon.client().await.unwrap();
    let session = client.create_session(None).await.unwrap();
    // The "ffmpeg" side is described by an SDP whose address is where
    // ffmpeg would listen; latching learns ffmpeg's real source port.
    let ffmpeg_side = Peer::new().unwrap();
    let receiver = Peer::new().unwrap();
    receiver
        .socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let a = connected_leg(&client, &session, &ffmpeg_side)
        .await
        .unwrap();
    let b = connected_leg(&client, &session, &receiver).await.unwrap();
    client
        .send_media(a.leg_id.as_str(), b.leg_id.as_str())
        .await
        .unwrap();
    let target = local_rtp(&a);
    let mut ffmpeg = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi"])
        .args(["-i", "sine=frequency=1000:sample_rate=8000:duration=2"])
        .args(["-ar", "8000", "-ac", "1", "-c:a", "pcm_mulaw", "-f", "rtp"])
        .arg(format!("rtp://{target}?pkt_size=172"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ffmpeg");
    let mut packets = Vec::new();
    while let Some((h, p, _)) = receiver.recv().unwrap() {
        packets.push((h, p));
        if packets.len() >= 100 {
            break;
        }
    }
    let status = ffmpeg.wait().unwrap();
    assert!(status.success(), "ffmpeg failed");
    assert!(
        packets.len() >= 50,
        "received {} packets from ffmpeg via legato",
        packets.len()
    );
    assert!(packets.iter().all(|(h, _)| h.pt == 0), "PCMU payload type");
    let pcm: Vec<i16> = packets
        .iter()
        .skip(5)
        .flat_map(|(_, p)| p.iter().map(|&b| ulaw_to_linear(b)))
        .collect();
    let window = &pcm[..pcm.len().min(8000)];
    let at_1k = tone_ratio(window, 1000.0);
    let at_other = tone_ratio(window, 1300.0);
    assert!(at_1k > 0.9, "1 kHz carries {at_1k:.3} of the power");
    assert!(
        at_other < 0.01,
        "1.3 kHz carries {at_other:.3} of the power"
    );
    let leg_a = client.get_leg(&a.leg_id).await.unwrap();
    assert!(
        leg_a.latched_rtp.is_some(),
        "latched to ffmpeg's source port"
    );
}

per_backend!(ffmpeg_tone_is_relayed);
