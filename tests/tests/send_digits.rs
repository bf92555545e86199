//! SendDigits end to end (Call.sendDigits).
//!
//! - "123#*0" to a peer that negotiated telephone-event arrives as exactly
//!   those RFC 4733 events, each with one start timestamp, three end
//!   packets and the asked duration, in the leg's one outgoing stream; the
//!   leg, relayed before, returns to the relay after them.
//! - The same digits to a peer without telephone-event arrive as in-band
//!   tones that legato-dsp's DTMF detector and multimon-ng (an independent
//!   decoder, fed through sox) both read back.
//! - Bad requests get clear errors.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use legato_client::{Code, proto};
use legato_dsp::dtmf::{DtmfDetector, DtmfDetectorConfig, DtmfEvent};
use legato_tests::{
    G711, Io, Options, Peer, connected_leg_with, daemon_or_skip, per_backend, spawn_collector,
};

const DIGITS: &str = "123#*0";

fn request(leg: &str, digits: &str, mode: proto::DtmfMode, ms: u32) -> proto::SendDigitsRequest {
    proto::SendDigitsRequest {
        leg_id: leg.to_owned(),
        digits: digits.to_owned(),
        mode: mode.into(),
        duration_ms: ms,
        pause_ms: ms,
    }
}

/// RFC 4733 event code of a key.
fn code(c: char) -> u8 {
    match c {
        '*' => 10,
        '#' => 11,
        c => c.to_digit(10).unwrap() as u8,
    }
}

/// DTMF keys multimon-ng reads in 8 kHz `pcm`.
fn multimon(pcm: &[i16]) -> String {
    let mut sox = Command::new("sox")
        .args([
            "-t", "raw", "-r", "8000", "-e", "signed", "-b", "16", "-c", "1", "-", "-t", "raw",
            "-r", "22050", "-e", "signed", "-b", "16", "-c", "1", "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sox (installed by scripts/test.sh)");
    let mut input = sox.stdin.take().unwrap();
    let bytes: Vec<u8> = pcm.iter().flat_map(|s| s.to_le_bytes()).collect();
    let writer = std::thread::spawn(move || input.write_all(&bytes));
    let out = Command::new("multimon-ng")
        .args(["-q", "-a", "DTMF", "-t", "raw", "-"])
        .stdin(sox.stdout.take().unwrap())
        .output()
        .expect("multimon-ng (installed by scripts/test.sh)");
    writer.join().unwrap().unwrap();
    sox.wait().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("DTMF: "))
        .collect()
}

async fn digits_as_events_and_in_band(io: Io) {
    let daemon = daemon_or_skip!(Options::new(io));
    let client = daemon.client().await.unwrap();
    let session = client.create_session(None).await.unwrap();
    let (p_src, p_events, p_inband) = (
        Peer::new().unwrap(),
        Peer::new().unwrap(),
        Peer::new().unwrap(),
    );
    let src = connected_leg_with(&client, &session, &p_src, "0 101")
        .await
        .unwrap();
    let events_leg = connected_leg_with(&client, &session, &p_events, "0 101")
        .await
        .unwrap();
    let inband_leg = connected_leg_with(&client, &session, &p_inband, "8")
        .await
        .unwrap();
    client
        .send_media(src.leg_id.as_str(), events_leg.leg_id.as_str())
        .await
        .unwrap();
    let view = client.get_leg(&events_leg.leg_id).await.unwrap();
    assert_eq!(view.media_path(), proto::MediaPath::Relay);

    let until = Instant::now() + Duration::from_millis(2500);
    let c_events = spawn_collector(&p_events, until).unwrap();
    let c_inband = spawn_collector(&p_inband, until).unwrap();
    client
        .send_digits(request(
            &events_leg.leg_id,
            DIGITS,
            proto::DtmfMode::Auto,
            0,
        ))
        .await
        .unwrap();
    client
        .send_digits(request(
            &inband_leg.leg_id,
            DIGITS,
            proto::DtmfMode::Auto,
            80,
        ))
        .await
        .unwrap();
    let during = client.get_leg(&events_leg.leg_id).await.unwrap();
    assert_eq!(
        during.media_path(),
        proto::MediaPath::Pcm,
        "digits on the PCM path"
    );

    // RFC 4733: exactly the digits, each once, with end bits and 100 ms.
    let got = c_events.join().unwrap();
    let ssrc = got[0].rtp.ssrc;
    assert!(got.iter().all(|p| p.rtp.ssrc == ssrc), "one SSRC");
    for w in got.windows(2) {
        assert_eq!(
            w[1].rtp.seq,
            w[0].rtp.seq.wrapping_add(1),
            "continuous sequence"
        );
    }
    let events: Vec<_> = got.iter().filter(|p| p.rtp.pt == 101).collect();
    let mut keys: Vec<(u32, u8)> = Vec::new();
    for e in &events {
        if keys.last().is_none_or(|k| k.0 != e.rtp.ts) {
            keys.push((e.rtp.ts, e.payload[0]));
        }
    }
    let expected: Vec<u8> = DIGITS.chars().map(code).collect();
    assert_eq!(
        keys.iter().map(|k| k.1).collect::<Vec<_>>(),
        expected,
        "{keys:?}"
    );
    for (ts, key) in &keys {
        let ends: Vec<_> = events
            .iter()
            .filter(|e| e.rtp.ts == *ts && e.payload[1] & 0x80 != 0)
            .collect();
        assert_eq!(ends.len(), 3, "key {key}: three end packets");
        for e in ends {
            assert_eq!(e.payload[0], *key);
            let duration = u16::from_be_bytes([e.payload[2], e.payload[3]]);
            assert_eq!(duration, 800, "key {key}: 100 ms at 8 kHz");
        }
    }
    let after = client.get_leg(&events_leg.leg_id).await.unwrap();
    assert_eq!(
        after.media_path(),
        proto::MediaPath::Relay,
        "back to the relay"
    );

    // In-band: read back by two decoders.
    let got = c_inband.join().unwrap();
    assert!(got.iter().all(|p| p.rtp.pt == 8));
    let pcm: Vec<i16> = got
        .iter()
        .flat_map(|p| p.payload.iter().map(|&c| G711::Pcma.decode(c)))
        .collect();
    let mut detector = DtmfDetector::new(DtmfDetectorConfig::default()).unwrap();
    detector.handle_samples(&pcm);
    let mut read = String::new();
    while let Some(e) = detector.poll_event() {
        if let DtmfEvent::Started { digit, .. } = e {
            read.push(digit.to_char());
        }
    }
    assert_eq!(read, DIGITS, "legato-dsp's detector");
    assert_eq!(multimon(&pcm), DIGITS, "multimon-ng");
    let view = client.get_leg(&inband_leg.leg_id).await.unwrap();
    assert_eq!(
        view.media_path(),
        proto::MediaPath::Unspecified,
        "no source, no send side"
    );

    // Bad requests.
    let leg = inband_leg.leg_id.as_str();
    for (req, code) in [
        (
            request(leg, "12x", proto::DtmfMode::Auto, 0),
            Code::InvalidArgument,
        ),
        (
            request(leg, "", proto::DtmfMode::Auto, 0),
            Code::InvalidArgument,
        ),
        (
            request(leg, &"1".repeat(300), proto::DtmfMode::Auto, 0),
            Code::InvalidArgument,
        ),
        (
            request(leg, "1", proto::DtmfMode::Auto, 10),
            Code::InvalidArgument,
        ),
        (
            request(leg, "1", proto::DtmfMode::Auto, 6000),
            Code::InvalidArgument,
        ),
        (
            request(leg, "1", proto::DtmfMode::Rfc4733, 0),
            Code::FailedPrecondition,
        ),
        (
            request("00000000000000000000", "1", proto::DtmfMode::Auto, 0),
            Code::NotFound,
        ),
    ] {
        let err = client.send_digits(req.clone()).await.unwrap_err();
        assert_eq!(err.code(), code, "{req:?}: {err}");
    }
    let mut bad_mode = request(leg, "1", proto::DtmfMode::Auto, 0);
    bad_mode.mode = 42;
    let err = client.send_digits(bad_mode).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    // Too many waiting: 256 (one of them may have started by the next
    // request) then two more.
    client
        .send_digits(request(
            leg,
            &"1".repeat(256),
            proto::DtmfMode::InBand,
            5000,
        ))
        .await
        .unwrap();
    let err = client
        .send_digits(request(leg, "22", proto::DtmfMode::InBand, 0))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
    client.hangup_leg(leg, 0, "").await.unwrap();
    let err = client
        .send_digits(request(leg, "1", proto::DtmfMode::Auto, 0))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
}

per_backend!(digits_as_events_and_in_band);
