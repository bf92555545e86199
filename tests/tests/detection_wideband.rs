//! Detectors on wideband legs (G.722 at 16 kHz, Opus at 48 kHz): the taps
//! bring what the leg receives to 8 kHz for the detectors. One leg per
//! codec, fed by a real RTP peer: in-band DTMF keys with tone handling in
//! detect-only mode, then a beep, then a US busy tone, with beep and
//! call-progress detection on. Each raises its events as on a G.711 leg.

use std::time::Duration;

use legato_client::{EventFilter, proto};
use legato_tests::{
    Codec, Io, Options, Peer, connected_leg_codec, daemon_or_skip, local_rtp, per_backend,
    send_payloads_paced, wait_event,
};
use proto::event::Kind;

/// `len` samples at `rate` of the sum of `tones` (Hz, peak amplitude).
fn tones(rate: u32, len: usize, tones: &[(f64, f64)]) -> Vec<f64> {
    (0..len)
        .map(|n| {
            let t = n as f64 / f64::from(rate);
            tones
                .iter()
                .map(|&(f, a)| a * (2.0 * std::f64::consts::PI * f * t).sin())
                .sum()
        })
        .collect()
}

/// Silence, the keys "159#" (100 ms each, 100 ms apart, about −12 dBm0 per
/// tone), silence, a 1 kHz beep of 300 ms, silence, then 3 s of the US busy
/// tone (480 + 620 Hz, 0.5 s on, 0.5 s off): at `rate`.
fn signal(rate: u32) -> Vec<i16> {
    let ms = |ms: usize| ms * rate as usize / 1000;
    let mut x = vec![0.0; ms(500)];
    for (low, high) in [
        (697.0, 1209.0),
        (770.0, 1336.0),
        (852.0, 1477.0),
        (941.0, 1477.0),
    ] {
        x.extend(tones(rate, ms(100), &[(low, 2900.0), (high, 2900.0)]));
        x.extend(vec![0.0; ms(100)]);
    }
    x.extend(vec![0.0; ms(500)]);
    x.extend(tones(rate, ms(300), &[(1000.0, 6000.0)]));
    x.extend(vec![0.0; ms(700)]);
    for _ in 0..3 {
        x.extend(tones(rate, ms(500), &[(480.0, 2300.0), (620.0, 2300.0)]));
        x.extend(vec![0.0; ms(500)]);
    }
    x.iter().map(|&v| v.round() as i16).collect()
}

async fn detectors_on_wideband_legs(io: Io) {
    let daemon = daemon_or_skip!(Options::new(io));
    let client = daemon.client().await.unwrap();
    for codec in [Codec::G722, Codec::Opus] {
        let session = client.create_session(None).await.unwrap();
        let peer = Peer::new().unwrap();
        let leg = connected_leg_codec(&client, &session, &peer, codec)
            .await
            .unwrap();
        let mut events = client
            .watch_events(EventFilter::new().leg(&leg.leg_id))
            .await
            .unwrap();
        client.set_tone_detection(&leg.leg_id, true).await.unwrap();
        client.enable_beep_detection(&leg.leg_id, 0).await.unwrap();
        client
            .enable_tone_detection(&leg.leg_id, vec!["US".into()])
            .await
            .unwrap();
        let pcm = signal(codec.audio_rate());
        let mut encoder = codec.encoder().unwrap();
        let frames: Vec<Vec<u8>> = pcm
            .chunks(codec.samples_per_frame())
            .map(|f| {
                let mut frame = f.to_vec();
                frame.resize(codec.samples_per_frame(), 0);
                encoder.encode(&frame).unwrap()
            })
            .collect();
        let socket = peer.socket.try_clone().unwrap();
        let to = local_rtp(&leg);
        let (pt, step) = (codec.pt(), codec.rtp_units_per_frame());
        tokio::task::spawn_blocking(move || send_payloads_paced(&socket, to, pt, step, &frames))
            .await
            .unwrap();
        let mut seen = Vec::new();
        while let Ok(e) = wait_event(&mut events, Duration::from_millis(1000), |_| true).await {
            seen.push(e);
        }
        let keys: String = seen
            .iter()
            .filter_map(|e| match &e.kind {
                Some(Kind::ToneReceived(t)) if t.source() == proto::ToneSource::InBand => {
                    Some(t.tone.clone())
                }
                _ => None,
            })
            .collect();
        let beeps: Vec<f64> = seen
            .iter()
            .filter_map(|e| match &e.kind {
                Some(Kind::BeepDetectionComplete(b)) => Some(b.frequency_hz),
                _ => None,
            })
            .collect();
        let progress: Vec<String> = seen
            .iter()
            .filter_map(|e| match &e.kind {
                Some(Kind::ToneDetected(t)) => Some(t.tone.clone()),
                _ => None,
            })
            .collect();
        eprintln!("{io:?} {codec:?}: keys {keys:?}, beeps {beeps:?}, tones {progress:?}");
        assert_eq!(keys, "159#", "{io:?} {codec:?}");
        assert!(
            beeps.len() == 1 && (beeps[0] - 1000.0).abs() < 20.0,
            "{io:?} {codec:?}: {beeps:?}"
        );
        assert_eq!(progress, ["busy"], "{io:?} {codec:?}");
    }
}

per_backend!(detectors_on_wideband_legs);
