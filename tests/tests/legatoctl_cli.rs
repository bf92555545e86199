//! legatoctl against a real legatod: the subcommands for what is built,
//! human and JSON output, and its exit codes.

use std::process::{Command, Output};

use legato_tests::{Io, Options, Peer, daemon_or_skip, legatoctl_path};

fn ctl(endpoint: &str, args: &[&str]) -> Output {
    Command::new(legatoctl_path().expect("legatoctl"))
        .arg("--endpoint")
        .arg(endpoint)
        .args(args)
        .output()
        .expect("run legatoctl")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn legatoctl_drives_a_call() {
    let recordings = std::env::temp_dir().join(format!("legatoctl-rec-{}", std::process::id()));
    let options = Options::new(Io::Epoll)
        .arg("--recording-dir")
        .arg(recordings.to_str().unwrap())
        .arg("--recording-min-free-mb")
        .arg("0");
    let daemon = daemon_or_skip!(options);
    let endpoint = daemon.endpoint();
    let peer = Peer::new().unwrap();
    let offer = std::env::temp_dir().join(format!("legatoctl-offer-{}.sdp", std::process::id()));
    std::fs::write(&offer, peer.offer()).unwrap();

    let out = ctl(&endpoint, &["session", "create", "--id", "cli-call"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out).trim(), "cli-call");

    let out = ctl(
        &endpoint,
        &[
            "--json",
            "leg",
            "create",
            "--session",
            "cli-call",
            "--sdp",
            offer.to_str().unwrap(),
            "--caller-id",
            "+15550001",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    let leg_id = text
        .split("\"leg_id\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("leg_id in JSON output")
        .to_owned();
    assert!(text.contains("m=audio"), "local SDP in the output: {text}");

    let out = ctl(
        &endpoint,
        &["leg", "update", &leg_id, "--state", "connected"],
    );
    assert!(out.status.success(), "{out:?}");
    let out = ctl(&endpoint, &["leg", "get", &leg_id]);
    assert!(
        out.status.success() && stdout(&out).contains("CONNECTED"),
        "{out:?}"
    );
    assert!(
        stdout(&out).contains("+15550001"),
        "metadata shown: {}",
        stdout(&out)
    );
    let out = ctl(&endpoint, &["leg", "list", "--session", "cli-call"]);
    assert!(stdout(&out).contains(&leg_id));
    // A conference: the leg talks (at -6 dB) and listens; stats show it.
    let out = ctl(
        &endpoint,
        &["conference", "create", "--session", "cli-call"],
    );
    assert!(out.status.success(), "{out:?}");
    let conference = stdout(&out).trim().to_owned();
    let out = ctl(
        &endpoint,
        &[
            "media",
            "send",
            "--from",
            &leg_id,
            "--to-conference",
            &conference,
            "--gain-db",
            "-6",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let out = ctl(
        &endpoint,
        &[
            "media",
            "send",
            "--from-conference",
            &conference,
            "--to",
            &leg_id,
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let out = ctl(&endpoint, &["leg", "get", &leg_id]);
    assert!(stdout(&out).contains(&conference), "{}", stdout(&out));
    let out = ctl(&endpoint, &["--json", "stats", &leg_id]);
    assert!(
        stdout(&out).contains("\"codec\":\"PCMU\""),
        "{}",
        stdout(&out)
    );
    // Players into the conference and the leg, and digits.
    let out = ctl(
        &endpoint,
        &[
            "--json",
            "tone",
            "--conference",
            &conference,
            "busy",
            "--country",
            "GB",
        ],
    );
    assert!(
        out.status.success() && stdout(&out).contains("\"playback_id\""),
        "{out:?}"
    );
    let out = ctl(
        &endpoint,
        &["say", "--conference", &conference, "hello everyone"],
    );
    assert!(
        out.status.success() && stdout(&out).starts_with("playback "),
        "{out:?}"
    );
    let out = ctl(
        &endpoint,
        &["playback", "stop", "--conference", &conference],
    );
    assert!(
        out.status.success() && stdout(&out).contains("conference"),
        "{out:?}"
    );
    let prompt = offer.with_extension("wav");
    let samples = legato_tests::sine(440.0, 4000.0, 0, 4000);
    std::fs::write(&prompt, legato_tests::wav(8000, &samples, None)).unwrap();
    let out = ctl(
        &endpoint,
        &["playback", "start", &leg_id, prompt.to_str().unwrap()],
    );
    assert!(out.status.success(), "{out:?}");
    let out = ctl(&endpoint, &["tone", &leg_id, "ringback", "--country", "DE"]);
    assert!(out.status.success(), "{out:?}");
    let out = ctl(&endpoint, &["digits", &leg_id, "12#"]);
    assert!(
        out.status.success() && stdout(&out).contains("12#"),
        "{out:?}"
    );
    let out = ctl(&endpoint, &["tone", "--conference", "nope", "busy"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("NOT_FOUND"),
        "{out:?}"
    );
    let _ = std::fs::remove_file(prompt);
    let out = ctl(&endpoint, &["conference", "delete", &conference]);
    assert!(out.status.success(), "{out:?}");
    let out = ctl(
        &endpoint,
        &[
            "--json", "record", "start", &leg_id, "--format", "wav", "--stereo",
        ],
    );
    assert!(
        out.status.success() && stdout(&out).contains("\"path\""),
        "{out:?}"
    );
    let out = ctl(&endpoint, &["record", "stop", &leg_id]);
    assert!(out.status.success(), "{out:?}");
    let wavs = std::fs::read_dir(&recordings)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "wav")
        })
        .count();
    assert_eq!(wavs, 1, "the recording's file");
    // Detectors on and off.
    for args in [
        &["detect", "dtmf", &leg_id][..],
        &["detect", "inject", &leg_id, "12#", "--duration", "80"],
        &["detect", "dtmf", &leg_id, "--keep-in-audio"],
        &["detect", "dtmf", &leg_id, "--off"],
        &["detect", "beep", &leg_id, "--timeout", "5000"],
        &["detect", "beep", &leg_id, "--off"],
        &["detect", "vad", &leg_id],
        &["detect", "vad", &leg_id, "--off"],
        &["detect", "amd", &leg_id, "--greeting", "2000"],
        &["detect", "amd", &leg_id, "--stop"],
        &["detect", "tones", &leg_id, "--country", "DE"],
        &["detect", "tones", &leg_id, "--off"],
        &["detect", "tones", &leg_id],
    ] {
        let out = ctl(&endpoint, args);
        assert!(out.status.success(), "{args:?}: {out:?}");
    }
    let out = ctl(&endpoint, &["--json", "detect", "vad", &leg_id]);
    assert!(
        out.status.success() && stdout(&out).contains("\"detector\":\"vad\""),
        "{out:?}"
    );
    let out = ctl(&endpoint, &["detect", "tones", &leg_id, "--country", "XX"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("INVALID_ARGUMENT"),
        "{out:?}"
    );
    let out = ctl(&endpoint, &["leg", "hangup", &leg_id, "--code", "486"]);
    assert!(out.status.success(), "{out:?}");
    // Errors: NOT_FOUND and FAILED_PRECONDITION with exit status 1.
    let out = ctl(&endpoint, &["leg", "get", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("NOT_FOUND"),
        "{out:?}"
    );
    // Recording: JSON names the file; a terminated leg cannot record.
    let out = ctl(&endpoint, &["record", "start", &leg_id]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("FAILED_PRECONDITION"),
        "{out:?}"
    );
    let out = ctl(&endpoint, &["session", "delete", "cli-call"]);
    assert!(out.status.success(), "{out:?}");
    let _ = std::fs::remove_file(offer);
    let _ = std::fs::remove_dir_all(&recordings);
}
