//! No DTMF leaks through SetToneHandling (issue 13, acceptance 2): caller A
//! sends 100 key presses, every key at levels from −26 to 0 dBm0 and
//! durations from 40 to 500 ms, with espeak-ng speech between them, as
//! PCMU to legatod with tone handling on; callee B's peer records what it
//! receives. Two permissive detectors must find no digit in it:
//! legato-dsp's with one matching window (instead of two) and spandsp's
//! `dtmf_rx` (the comparison harness of `dsp/tests/spandsp/dtmf_rx.c`) with
//! no dial-tone filter, 12 dB of twist either way and a −45 dBm0
//! threshold. Every press raises one ToneReceived, and the speech between
//! them still reaches B.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use legato_client::{EventFilter, proto};
use legato_dsp::dtmf::{Digit, DtmfGenerator, DtmfGeneratorConfig};
use legato_tests::{
    G711, Io, Options, Peer, connected_leg_with, daemon_or_skip, espeak_8k, local_rtp, per_backend,
    permissive_dtmf, send_payloads_paced, spawn_collector, tempdir, wait_event,
};
use proto::event::Kind;

const KEYS: &str = "0123456789*#ABCD";
const PRESSES: usize = 100;
/// Key durations, cycled.
const DURATIONS_MS: [u32; 10] = [40, 50, 60, 80, 100, 150, 200, 300, 400, 500];
/// Speech between presses, ms.
const SPEECH_MS: usize = 120;

/// The presses: (key, level dBm0, duration ms).
fn presses() -> Vec<(Digit, f32, u32)> {
    (0..PRESSES)
        .map(|i| {
            let key = Digit::from_char(KEYS.chars().nth(i % KEYS.len()).unwrap()).unwrap();
            // 11 levels, stepped apart from the keys and the durations.
            let level = -26.0 + 2.6 * ((i * 7) % 11) as f32;
            (key, level, DURATIONS_MS[(i * 3) % DURATIONS_MS.len()])
        })
        .collect()
}

/// Speech and presses in turn, 8 kHz; also the speech alone, for the
/// level check.
fn signal(speech: &[i16]) -> (Vec<i16>, Vec<i16>) {
    let mut all = Vec::new();
    let mut talk = Vec::new();
    let mut at = 0;
    let mut words = |n: usize, all: &mut Vec<i16>| {
        let part: Vec<i16> = (0..n).map(|i| speech[(at + i) % speech.len()]).collect();
        at += n;
        all.extend(&part);
        talk.extend(part);
    };
    words(400 * 8, &mut all);
    for (key, level, ms) in presses() {
        let mut g = DtmfGenerator::new(
            DtmfGeneratorConfig {
                low_dbm0: level,
                high_dbm0: level,
                ..DtmfGeneratorConfig::default()
            }
            .with_durations_ms(ms, 0),
        )
        .unwrap();
        g.push(key).unwrap();
        let mut tone = vec![0i16; ms as usize * 8];
        g.fill(&mut tone);
        all.extend(tone);
        words(SPEECH_MS * 8, &mut all);
    }
    words(400 * 8, &mut all);
    (all, talk)
}

/// spandsp's receiver, compiled from the comparison harness; `Err` when
/// cc or libspandsp-dev is missing.
fn spandsp_rx(dir: &Path) -> Result<PathBuf, String> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dsp/tests/spandsp/dtmf_rx.c");
    let exe = dir.join("dtmf_rx");
    let out = Command::new("cc")
        .args(["-O2", "-o"])
        .arg(&exe)
        .arg(&source)
        .args(["-lspandsp", "-lm"])
        .output()
        .map_err(|e| format!("cannot run cc: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr)
            .lines()
            .take(2)
            .collect());
    }
    Ok(exe)
}

/// The digits permissive spandsp finds in `pcm` (its realtime reports and
/// its buffered ones).
fn spandsp_digits(exe: &Path, dir: &Path, pcm: &[i16]) -> String {
    let file = dir.join("heard.raw");
    let bytes: Vec<u8> = pcm
        .iter()
        .chain(&[0i16; 1600])
        .flat_map(|s| s.to_le_bytes())
        .collect();
    std::fs::write(&file, bytes).unwrap();
    let out = Command::new(exe)
        .arg("--permissive")
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "dtmf_rx: {out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut found = String::new();
    for line in text.lines() {
        if let Some(buffered) = line.strip_prefix('D') {
            found.push_str(&format!("[{}]", buffered.trim()));
        } else if let ["S", d, _] = line.split_whitespace().collect::<Vec<_>>().as_slice() {
            found.push_str(d);
        }
    }
    found
}

fn rms(x: &[i16]) -> f64 {
    (x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

/// Sends `pcm` from `peer` to `to` as paced 20 ms PCMU packets.
fn send(peer: &Peer, to: SocketAddr, pcm: &[i16]) {
    send_payloads_paced(&peer.socket, to, 0, 160, &G711::Pcmu.frames(pcm));
}

async fn hundred_presses_leak_nothing(io: Io) {
    let Some(speech) = espeak_8k(
        "When the caller presses a key, the menu answers at once, and nothing of the tone reaches the agent on the other side of the call.",
    ) else {
        eprintln!("skipped: needs espeak-ng and ffmpeg");
        return;
    };
    let dir = tempdir(&format!("no-leak-{io:?}"));
    let rx = match spandsp_rx(&dir) {
        Ok(exe) => exe,
        Err(why) => {
            eprintln!("skipped: spandsp's dtmf_rx does not build here: {why}");
            return;
        }
    };
    let (input, talk) = signal(&speech);
    let expected: String = presses().iter().map(|(k, ..)| k.to_char()).collect();
    // The input as sent (through µ-law) holds every press for both.
    let sent: Vec<i16> = input
        .iter()
        .map(|&s| G711::Pcmu.decode(G711::Pcmu.encode(s)))
        .collect();
    assert_eq!(
        permissive_dtmf(&sent),
        expected,
        "legato-dsp reads the input"
    );
    let spandsp_in = spandsp_digits(&rx, &dir, &sent);
    assert_eq!(
        spandsp_in,
        format!("{expected}[{expected}]"),
        "permissive spandsp reads every press in the input"
    );

    let daemon = daemon_or_skip!(Options::new(io));
    let client = daemon.client().await.unwrap();
    let session = client.create_session(None).await.unwrap();
    let (a_peer, b_peer) = (Peer::new().unwrap(), Peer::new().unwrap());
    let a = connected_leg_with(&client, &session, &a_peer, "0")
        .await
        .unwrap();
    let b = connected_leg_with(&client, &session, &b_peer, "0")
        .await
        .unwrap();
    client
        .send_media(a.leg_id.as_str(), b.leg_id.as_str())
        .await
        .unwrap();
    client.set_tone_handling(&a.leg_id, true).await.unwrap();
    let mut events = client
        .watch_events(EventFilter::new().leg(&a.leg_id))
        .await
        .unwrap();
    let seconds = input.len() as f64 / 8000.0;
    let until = Instant::now() + Duration::from_secs_f64(seconds + 1.0);
    let collector = spawn_collector(&b_peer, until).unwrap();
    let to = local_rtp(&a);
    let sender = {
        let input = input.clone();
        let peer = Peer {
            socket: a_peer.socket.try_clone().unwrap(),
        };
        std::thread::spawn(move || send(&peer, to, &input))
    };
    let mut reported = String::new();
    let deadline = Instant::now() + Duration::from_secs_f64(seconds + 2.0);
    while reported.len() < PRESSES && Instant::now() < deadline {
        let Ok(e) = wait_event(&mut events, Duration::from_secs(2), |e| {
            matches!(e.kind, Some(Kind::ToneReceived(_)))
        })
        .await
        else {
            break;
        };
        if let Some(Kind::ToneReceived(t)) = e.kind {
            assert_eq!(t.source(), proto::ToneSource::InBand);
            reported.push_str(&t.tone);
        }
    }
    sender.join().unwrap();
    let got = tokio::task::spawn_blocking(move || collector.join().unwrap())
        .await
        .unwrap();
    let heard: Vec<i16> = got
        .iter()
        .filter(|p| p.rtp.pt == 0)
        .flat_map(|p| p.payload.iter().map(|&c| G711::Pcmu.decode(c)))
        .collect();
    let (legato_out, spandsp_out) = (permissive_dtmf(&heard), spandsp_digits(&rx, &dir, &heard));
    let (talk_rms, heard_rms) = (rms(&talk), rms(&heard));
    eprintln!(
        "{io:?}: {PRESSES} presses ({seconds:.1} s), all read in the input by both detectors; ToneReceived {}; in what B heard: legato-dsp {:?}, spandsp {:?}; speech RMS sent {talk_rms:.0}, heard (whole call) {heard_rms:.0}",
        reported.len(),
        legato_out,
        spandsp_out,
    );
    assert_eq!(reported, expected, "one ToneReceived per press, in order");
    assert_eq!(legato_out, "", "legato-dsp read digits in what B heard");
    assert_eq!(spandsp_out, "[]", "spandsp read digits in what B heard");
    eprintln!(
        "{io:?}: speech RMS {heard_rms:.0} heard against {:.0} expected",
        talk_rms * (talk.len() as f64 / heard.len().max(1) as f64).sqrt()
    );
    // The speech arrives: B heard about as much energy as the speech
    // alone holds (the presses took a share of the time, silence now).
    let share = talk.len() as f64 / heard.len().max(1) as f64;
    let expected_rms = talk_rms * share.sqrt();
    assert!(
        heard_rms > 0.7 * expected_rms && heard_rms < 1.3 * expected_rms,
        "heard RMS {heard_rms:.0}, expected about {expected_rms:.0}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

per_backend!(hundred_presses_leak_nothing);
