//! One outgoing stream whichever path feeds it. Acceptance: a sink switched
//! between a relayed source and a transcoded one (and back) sees one SSRC,
//! continuous sequence numbers and timestamps consistent with wall-clock
//! time.
//!
//! Sink S (PCMU) is fed first by a PCMU leg (relayed packet by packet),
//! then SendMedia switches its source to a PCMA leg (decoded, re-encoded on
//! the media clock: S has no telephone-event, so the PCMA leg's digits
//! would be played in-band and the per-packet law conversion is not
//! used), then back. Both sources send steady tones (300 and
//! 700 Hz) as paced 20 ms packets over 127.0.0.1; S's peer records every
//! packet with its arrival time.
//!
//! Timestamps against wall-clock time: for each packet the offset
//! ts/8000 − (arrival − first arrival) is constant on a steady path, up to
//! the scheduling jitter of the sender and of the daemon. At a switch the
//! new path's first packet is stamped from the wall time elapsed since the
//! last packet sent, but at least one 20 ms frame later; and the two paths
//! send on different schedules (the relay when the source's packet comes
//! in, the PCM path on the 20 ms media clock ticks, delayed further by the
//! jitter buffer only in its audio, not its timestamps). So each switch may
//! shift the offset by up to one frame plus one tick of phase (40 ms);
//! allowing 60 ms per switch, accumulated, leaves 20 ms for the loaded
//! machine. The offset is taken per segment as its median, away from the
//! switches, and single packets may stray from it by scheduling jitter
//! (under 50 ms).

use std::time::{Duration, Instant};

use legato_client::proto;
use legato_tests::{
    G711, Io, Options, Peer, Received, ToneStream, connected_leg_with, daemon_or_skip,
    decode_window, local_rtp, paced, per_backend, spawn_collector, tone_level_db,
};

/// Per switch, the most the timestamp/wall-clock offset may move.
const PER_SWITCH: f64 = 0.060;
/// The most one packet's offset may stray from its segment's median.
const JITTER: f64 = 0.050;

async fn relay_transcode_relay(io: Io) {
    let daemon = daemon_or_skip!(Options::new(io));
    let client = daemon.client().await.unwrap();
    let session = client.create_session(None).await.unwrap();
    let (pu, pa, ps) = (
        Peer::new().unwrap(),
        Peer::new().unwrap(),
        Peer::new().unwrap(),
    );
    let u = connected_leg_with(&client, &session, &pu, G711::Pcmu.formats())
        .await
        .unwrap();
    let a = connected_leg_with(&client, &session, &pa, G711::Pcma.formats())
        .await
        .unwrap();
    // No telephone-event on the sink: digits from the PCMA source must be
    // played in-band, so PCMA to it takes the PCM path (not the per-packet
    // law conversion) while PCMU to it is relayed.
    let s = connected_leg_with(&client, &session, &ps, "0")
        .await
        .unwrap();
    let route = |from: &str| {
        let (client, from, to) = (client.clone(), from.to_owned(), s.leg_id.clone());
        async move {
            client.send_media(from.as_str(), to.as_str()).await.unwrap();
            client.get_leg(&to).await.unwrap()
        }
    };
    let leg = route(&u.leg_id).await;
    assert_eq!(leg.media_path(), proto::MediaPath::Relay, "PCMU to PCMU");
    assert_eq!(leg.media_source_leg_id, u.leg_id);

    let start = Instant::now() + Duration::from_millis(50);
    let until = start + Duration::from_millis(4700);
    let collector = spawn_collector(&ps, until).unwrap();
    let mut streams = vec![
        ToneStream::new(&pu, local_rtp(&u), G711::Pcmu, 300.0, 4000.0).unwrap(),
        ToneStream::new(&pa, local_rtp(&a), G711::Pcma, 700.0, 4000.0).unwrap(),
    ];
    let sender = std::thread::spawn(move || {
        paced(start, 230, Duration::from_millis(20), |_| {
            for s in &mut streams {
                s.send().unwrap();
            }
        });
    });
    let mut switches = Vec::new();
    for (at_ms, from, path) in [
        (1500, &a.leg_id, proto::MediaPath::Pcm),
        (3000, &u.leg_id, proto::MediaPath::Relay),
    ] {
        tokio::time::sleep_until((start + Duration::from_millis(at_ms)).into()).await;
        let before = Instant::now();
        let leg = route(from).await;
        switches.push((before, Instant::now()));
        assert_eq!(leg.media_path(), path, "GetLeg after switching to {from}");
        assert_eq!(&leg.media_source_leg_id, from);
    }
    sender.join().unwrap();
    let got = collector.join().unwrap();
    assert!(got.len() >= 200, "{} packets", got.len());

    // One SSRC, one payload type, sequence numbers strictly +1.
    let ssrc = got[0].rtp.ssrc;
    for (i, w) in got.windows(2).enumerate() {
        assert_eq!(w[1].rtp.ssrc, ssrc, "packet {}: SSRC changed", i + 1);
        assert_eq!(
            w[1].rtp.seq,
            w[0].rtp.seq.wrapping_add(1),
            "packet {}: sequence {} after {}",
            i + 1,
            w[1].rtp.seq,
            w[0].rtp.seq
        );
    }
    assert!(got.iter().all(|p| p.rtp.pt == 0), "all PCMU");

    // Timestamps against arrival times.
    let t0 = got[0].at;
    let ts0 = got[0].rtp.ts;
    let offset = |p: &Received| {
        f64::from(p.rtp.ts.wrapping_sub(ts0) as i32) / 8000.0 - (p.at - t0).as_secs_f64()
    };
    let bounds = [
        (start, switches[0].0),
        (switches[0].1, switches[1].0),
        (switches[1].1, until),
    ];
    let mut medians = Vec::new();
    for &(from, to) in &bounds {
        // Away from the switches: 100 ms after, 20 ms before.
        let from = from + Duration::from_millis(100);
        let to = to - Duration::from_millis(20);
        let mut offsets: Vec<f64> = got
            .iter()
            .filter(|p| p.at >= from && p.at < to)
            .map(offset)
            .collect();
        assert!(
            offsets.len() >= 40,
            "{} packets in a segment",
            offsets.len()
        );
        offsets.sort_by(f64::total_cmp);
        let median = offsets[offsets.len() / 2];
        let spread = (offsets[0] - median)
            .abs()
            .max(offsets[offsets.len() - 1] - median);
        assert!(
            spread < JITTER,
            "offsets stray {spread:.3} s from their median"
        );
        medians.push((median, spread));
    }
    let shifts: Vec<f64> = medians.windows(2).map(|w| w[1].0 - w[0].0).collect();
    for (k, &(median, _)) in medians.iter().enumerate().skip(1) {
        let drift = (median - medians[0].0).abs();
        assert!(
            drift < PER_SWITCH * k as f64,
            "after {k} switches the timestamps are {drift:.3} s off wall-clock time"
        );
    }
    for shift in &shifts {
        assert!(
            shift.abs() < PER_SWITCH,
            "a switch moved the timestamps by {shift:.3} s"
        );
    }
    // Each segment carries its source's tone.
    let levels: Vec<(f64, f64)> = bounds
        .iter()
        .map(|&(from, to)| {
            let pcm = decode_window(&got, G711::Pcmu, from + Duration::from_millis(300), to);
            (tone_level_db(&pcm, 300.0), tone_level_db(&pcm, 700.0))
        })
        .collect();
    let markers: Vec<u16> = got
        .iter()
        .filter(|p| p.rtp.marker)
        .map(|p| p.rtp.seq)
        .collect();
    eprintln!(
        "{io:?}: {} packets, SSRC {ssrc:#x}, no gap; offset medians (ms) {:?} with spreads {:?}; \
         shifts at the switches (ms) {:?}; 300/700 Hz levels (dB) per segment {:?}; markers at \
         sequence {markers:?}",
        got.len(),
        medians
            .iter()
            .map(|m| (m.0 * 1000.0).round())
            .collect::<Vec<_>>(),
        medians
            .iter()
            .map(|m| (m.1 * 1000.0).round())
            .collect::<Vec<_>>(),
        shifts
            .iter()
            .map(|s| (s * 1000.0).round())
            .collect::<Vec<_>>(),
        levels
            .iter()
            .map(|(a, b)| (a.round(), b.round()))
            .collect::<Vec<_>>(),
    );
    // RFC 3551 §4.1: the marker starts each talkspurt: the first packet
    // and the first of each new path.
    assert_eq!(markers.len(), 3, "markers at {markers:?}");
    for (k, &(l300, l700)) in levels.iter().enumerate() {
        let (heard, other) = if k == 1 { (l700, l300) } else { (l300, l700) };
        assert!(
            heard > 69.0 && heard - other > 30.0,
            "segment {k}: {l300:.1}/{l700:.1} dB"
        );
    }
}

per_backend!(relay_transcode_relay);
