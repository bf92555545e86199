//! Recording tests: content (tones per channel), timeline (gaps,
//! overflow, rate changes), crash-proof files (a child process killed with
//! SIGKILL mid-recording, checked with ffprobe and sox), a full disk, file
//! naming and repair. Tests that need ffmpeg, ffprobe or sox say so and
//! skip when they are missing.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::*;

/// A fresh, empty directory under the system temp directory, removed when
/// dropped.
struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn temp_dir(name: &str) -> TempDir {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "legato-rec-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

/// Recorders writing into `dir`, and the events they report.
fn recorders(dir: &Path, ring_chunks: usize) -> (Recorders, Arc<Mutex<Vec<RecordingEvent>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    let config = RecordingConfig {
        dir: dir.to_owned(),
        free_space_floor_bytes: 0,
        ring_chunks,
        poll_interval: Duration::from_millis(20),
        ..RecordingConfig::default()
    };
    let recorders = Recorders::new(config, move |e| sink.lock().unwrap().push(e)).unwrap();
    (recorders, events)
}

fn spec(id: &str, format: Format, stereo: bool, sample_rate: u32) -> RecordingSpec {
    RecordingSpec {
        format,
        stereo,
        sample_rate,
        ..RecordingSpec::new("s1", "l1", id)
    }
}

/// Waits for `id`'s Stopped event and returns (duration_ms, bytes).
fn stopped(events: &Mutex<Vec<RecordingEvent>>, id: &str) -> (u64, u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for e in events.lock().unwrap().iter() {
            if let RecordingEvent::Stopped {
                id: i,
                duration_ms,
                bytes,
                ..
            } = e
                && i == id
            {
                return (*duration_ms, *bytes);
            }
        }
        assert!(Instant::now() < deadline, "no Stopped for {id}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn errors(events: &Mutex<Vec<RecordingEvent>>, id: &str) -> Vec<String> {
    events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            RecordingEvent::Error { id: i, error } if i == id => Some(error.clone()),
            _ => None,
        })
        .collect()
}

/// One 20 ms frame of a sine at `freq` Hz, continuous across ticks.
fn tone(freq: f64, rate: u32, tick: u64, amplitude: f64) -> Vec<i16> {
    let len = rate as usize / 50;
    (0..len)
        .map(|i| {
            let n = tick as f64 * len as f64 + i as f64;
            (amplitude * (2.0 * std::f64::consts::PI * freq * n / f64::from(rate)).sin()) as i16
        })
        .collect()
}

/// Power of `freq` in `x` (Goertzel).
fn goertzel(x: &[i16], rate: u32, freq: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq / f64::from(rate);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &v in x {
        let s = f64::from(v) + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (x.len() as f64).powi(2)
}

fn db(a: f64, b: f64) -> f64 {
    10.0 * (a / b.max(1e-12)).log10()
}

/// (rate, channels, samples) of a canonical 16-bit WAV.
fn read_wav(path: &Path) -> (u32, u16, Vec<i16>) {
    let bytes = fs::read(path).unwrap();
    assert_eq!(&bytes[0..4], b"RIFF");
    assert_eq!(&bytes[36..40], b"data");
    let channels = u16::from_le_bytes([bytes[22], bytes[23]]);
    let rate = u32::from_le_bytes(bytes[24..28].try_into().unwrap());
    let data = u32::from_le_bytes(bytes[40..44].try_into().unwrap()) as usize;
    let samples = bytes[44..44 + data]
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect();
    (rate, channels, samples)
}

/// Every `channels`-th sample from `c`.
fn channel(samples: &[i16], channels: usize, c: usize) -> Vec<i16> {
    samples.iter().skip(c).step_by(channels).copied().collect()
}

fn have(tool: &str) -> bool {
    Path::new("/usr/bin").join(tool).exists()
}

/// Decodes with ffmpeg to interleaved s16 at the file's rate.
fn ffmpeg_decode(path: &Path, channels: u16) -> Vec<i16> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "s16le", "-ac", &channels.to_string(), "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect()
}

/// ffprobe's `stream=key` values (e.g. `sample_rate`), and the format
/// duration, or the error it printed.
fn ffprobe(path: &Path, entries: &str) -> Result<String, String> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            entries,
            "-of",
            "default=nw=1",
        ])
        .arg(path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() && err.trim().is_empty() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("status {}: {err}", out.status))
    }
}

fn ffprobe_duration(path: &Path) -> f64 {
    let out = ffprobe(path, "format=duration").unwrap();
    out.trim()
        .strip_prefix("duration=")
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("ffprobe duration of {}: {out}", path.display()))
}

/// Runs sox decoding the whole file (`sox f -n stat`): Ok(stat output) or
/// the error.
fn sox_stat(path: &Path) -> Result<String, String> {
    let out = Command::new("sox")
        .arg(path)
        .args(["-n", "stat"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() && !err.contains("FAIL") && !err.to_lowercase().contains("error") {
        Ok(err)
    } else {
        Err(format!("status {}: {err}", out.status))
    }
}

/// The "Length (seconds)" sox's stat reports.
fn sox_seconds(stat: &str) -> f64 {
    stat.lines()
        .find(|l| l.starts_with("Length (seconds)"))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

/// Pushes `ticks` with 700 Hz received and 1300 Hz sent at `rate`.
fn push_tones(tap: &mut Tap, ticks: std::ops::Range<u64>, rate: u32) {
    for t in ticks {
        let r = tone(700.0, rate, t, 8000.0);
        let s = tone(1300.0, rate, t, 8000.0);
        assert!(tap.push(t, rate, Some(&r), Some(&s)), "tick {t} refused");
    }
}

/// Checks left = 700 Hz and right = 1300 Hz, each ≥ 30 dB over the other.
fn check_stereo(samples: &[i16], rate: u32, what: &str) -> (f64, f64) {
    // Skip the first and last half second (encoder delay, edges).
    let skip = rate as usize / 2 * 2;
    let body = &samples[skip..samples.len() - skip];
    let (left, right) = (channel(body, 2, 0), channel(body, 2, 1));
    let l = db(goertzel(&left, rate, 700.0), goertzel(&left, rate, 1300.0));
    let r = db(
        goertzel(&right, rate, 1300.0),
        goertzel(&right, rate, 700.0),
    );
    eprintln!("{what}: left 700 Hz over 1300 Hz {l:.1} dB, right 1300 Hz over 700 Hz {r:.1} dB");
    assert!(l >= 30.0, "{what}: left separation {l:.1} dB");
    assert!(r >= 30.0, "{what}: right separation {r:.1} dB");
    (l, r)
}

#[test]
fn stereo_wav_keeps_each_party_on_its_channel() {
    let dir = temp_dir("stereo-wav");
    let (rec, events) = recorders(&dir, 400);
    let (mut tap, info) = rec.start(&spec("w", Format::Wav, true, 8000)).unwrap();
    assert_eq!(info.channels, 2);
    push_tones(&mut tap, 0..250, 8000);
    tap.stop();
    let (ms, bytes) = stopped(&events, "w");
    assert_eq!(ms, 5000);
    assert_eq!(bytes, fs::metadata(&info.path).unwrap().len());
    assert_eq!(bytes, 44 + 160_000);
    let (rate, channels, samples) = read_wav(&info.path);
    assert_eq!((rate, channels, samples.len()), (8000, 2, 2 * 40_000));
    check_stereo(&samples, 8000, "stereo WAV");
    let events = events.lock().unwrap();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(
        events[0],
        RecordingEvent::Started {
            id: "w".to_owned(),
            path: info.path
        }
    );
}

#[test]
fn stereo_mp3_keeps_each_party_on_its_channel() {
    if !have("ffmpeg") {
        eprintln!("skipped: no /usr/bin/ffmpeg");
        return;
    }
    let dir = temp_dir("stereo-mp3");
    let (rec, events) = recorders(&dir, 400);
    let mut s = spec("m", Format::Mp3, true, 8000);
    s.bitrate_kbps = 32;
    let (mut tap, info) = rec.start(&s).unwrap();
    push_tones(&mut tap, 0..250, 8000);
    drop(tap);
    let (ms, _) = stopped(&events, "m");
    assert_eq!(ms, 5000);
    let samples = ffmpeg_decode(&info.path, 2);
    let decoded = samples.len() as f64 / 2.0 / 8000.0;
    let probed = ffprobe_duration(&info.path);
    eprintln!("stereo MP3: decoded {decoded:.4} s, ffprobe {probed:.4} s for 5.000 s pushed");
    assert!((decoded - 5.0).abs() <= 0.06, "decoded {decoded} s");
    // ffprobe counts whole frames (the Info tag's count × 576 samples),
    // encoder delay and padding included; decoders trim them.
    assert!((probed - 5.0).abs() <= 0.25, "ffprobe {probed} s");
    check_stereo(&samples, 8000, "stereo MP3");
}

#[test]
fn mono_mix_carries_both_parties() {
    let dir = temp_dir("mono");
    let (rec, events) = recorders(&dir, 400);
    let (mut tap, info) = rec.start(&spec("w", Format::Wav, false, 8000)).unwrap();
    push_tones(&mut tap, 0..250, 8000);
    tap.stop();
    assert_eq!(stopped(&events, "w").0, 5000);
    let (_, channels, samples) = read_wav(&info.path);
    assert_eq!((channels, samples.len()), (1, 40_000));
    let a = goertzel(&samples, 8000, 700.0);
    let b = goertzel(&samples, 8000, 1300.0);
    let off = goertzel(&samples, 8000, 1000.0);
    eprintln!(
        "mono mix: 700 Hz {:.1} dB and 1300 Hz {:.1} dB over 1000 Hz",
        db(a, off),
        db(b, off)
    );
    assert!(db(a, off) > 30.0 && db(b, off) > 30.0);
    assert!(db(a, b).abs() < 1.0, "both parties at the same level");

    // The default: MP3 mono 8 kHz at 32 kbit/s, exactly that in ffprobe.
    if have("ffprobe") {
        let (mut tap, info) = rec.start(&RecordingSpec::new("s", "l", "d")).unwrap();
        push_tones(&mut tap, 0..250, 8000);
        tap.stop();
        assert_eq!(stopped(&events, "d").0, 5000);
        let probe = ffprobe(
            &info.path,
            "stream=codec_name,sample_rate,channels,bit_rate:format=duration",
        )
        .unwrap();
        eprintln!("default MP3: {}", probe.replace('\n', " "));
        for want in [
            "codec_name=mp3",
            "sample_rate=8000",
            "channels=1",
            "bit_rate=32000",
        ] {
            assert!(probe.contains(want), "{want} not in {probe}");
        }
        let decoded = ffmpeg_decode(&info.path, 1);
        let a = goertzel(&decoded[4000..36_000], 8000, 700.0);
        let b = goertzel(&decoded[4000..36_000], 8000, 1300.0);
        let off = goertzel(&decoded[4000..36_000], 8000, 1000.0);
        assert!(db(a, off) > 20.0 && db(b, off) > 20.0);
    }
}

#[test]
fn skipped_ticks_are_silence_and_keep_the_duration() {
    let dir = temp_dir("timeline");
    let (rec, events) = recorders(&dir, 400);
    // 16 kHz file from 8 kHz input: resampled.
    let (mut tap, info) = rec.start(&spec("w", Format::Wav, false, 16_000)).unwrap();
    push_tones(&mut tap, 0..51, 8000);
    push_tones(&mut tap, 200..251, 8000);
    tap.stop();
    let (ms, _) = stopped(&events, "w");
    assert_eq!(ms, 251 * 20);
    let (rate, _, samples) = read_wav(&info.path);
    assert_eq!(samples.len(), 251 * rate as usize / 50);
    let per_tick = rate as usize / 50;
    // The hold (ticks 51..200) is silent, a tick clear of its edges.
    let gap = &samples[52 * per_tick..199 * per_tick];
    assert!(gap.iter().all(|&s| s == 0), "the gap is not silent");
    // Audio on both sides, in place.
    let before = &samples[10 * per_tick..50 * per_tick];
    let after = &samples[201 * per_tick..250 * per_tick];
    assert!(goertzel(before, rate, 700.0) > 1e5);
    assert!(goertzel(after, rate, 700.0) > 1e5);
}

#[test]
fn overflow_is_reported_once_and_written_as_silence() {
    let dir = temp_dir("overflow");
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    let config = RecordingConfig {
        dir: dir.to_path_buf(),
        free_space_floor_bytes: 0,
        // Two chunks of five 8 kHz frames.
        ring_chunks: 2,
        poll_interval: Duration::from_millis(300),
        ..RecordingConfig::default()
    };
    let rec = Recorders::new(config, move |e| sink.lock().unwrap().push(e)).unwrap();
    let (mut tap, info) = rec.start(&spec("o", Format::Wav, false, 8000)).unwrap();
    let frame = tone(700.0, 8000, 0, 8000.0);
    let taken = (0..50)
        .filter(|&t| tap.push(t, 8000, Some(&frame), None))
        .count();
    assert_eq!(taken, 10);
    assert_eq!(tap.overflowed(), 40);
    // After the writer drained, later frames go in and the end is kept.
    std::thread::sleep(Duration::from_millis(700));
    for t in 50..60 {
        assert!(tap.push(t, 8000, Some(&frame), None));
    }
    // Frames lost at the very end still count.
    for t in 60..70 {
        tap.push(t, 8000, Some(&frame), None);
    }
    tap.stop();
    let (ms, _) = stopped(&events, "o");
    assert_eq!(ms, 70 * 20);
    let errs = errors(&events, "o");
    eprintln!("overflow errors: {errs:?}");
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].contains("fell behind: 40 frames written as silence"));
    let (_, _, samples) = read_wav(&info.path);
    assert_eq!(samples.len(), 70 * 160);
    assert!(samples[10 * 160..50 * 160].iter().all(|&s| s == 0));
    assert!(samples[..10 * 160].iter().any(|&s| s != 0));
    assert!(samples[50 * 160..60 * 160].iter().any(|&s| s != 0));
    assert!(samples[50 * 160..55 * 160].iter().any(|&s| s != 0));
}

#[test]
fn rate_changes_keep_the_timeline() {
    let dir = temp_dir("rates");
    let (rec, events) = recorders(&dir, 1000);
    for (id, rate) in [("a", 8000), ("b", 44_100), ("c", 48_000)] {
        let (mut tap, info) = rec.start(&spec(id, Format::Wav, true, rate)).unwrap();
        push_tones(&mut tap, 0..50, 16_000);
        push_tones(&mut tap, 50..100, 8000);
        push_tones(&mut tap, 100..150, 48_000);
        push_tones(&mut tap, 150..200, 24_000);
        tap.stop();
        assert_eq!(stopped(&events, id).0, 4000, "{id}");
        let (r, _, samples) = read_wav(&info.path);
        assert_eq!(samples.len() / 2, 4 * r as usize, "{id}");
        let left = channel(&samples, 2, 0);
        let quarter = r as usize;
        for q in 0..4 {
            let part = &left[q * quarter + quarter / 8..(q + 1) * quarter - quarter / 8];
            assert!(
                db(goertzel(part, r, 700.0), goertzel(part, r, 1300.0)) > 30.0,
                "{id} second {q}"
            );
        }
    }
}

#[test]
fn push_refuses_malformed_frames_and_after_stop() {
    let shared = TapShared::new(4);
    let mut tap = Tap::new(Arc::clone(&shared));
    assert!(!tap.push(0, 8000, Some(&[0; 159]), None));
    assert!(!tap.push(0, 11_025, Some(&[0; 220]), None));
    assert!(!tap.push(0, 96_000, Some(&[0; 1920]), None));
    assert!(tap.push(0, 8000, Some(&[1; 160]), None));
    assert!(tap.push(1, 48_000, None, Some(&[1; 960])));
    assert!(!shared.is_ended());
    drop(tap);
    assert!(shared.is_ended(), "dropping the tap ends the recording");
    // What it held went to the writer's side first.
    let frames: usize = std::iter::from_fn(|| shared.pop().map(|c| c.len())).sum();
    assert_eq!(frames, 2);
    assert_eq!(shared.rejected(), 3);
}

#[test]
fn never_overwrites_and_checks_names() {
    let dir = temp_dir("names");
    let (rec, events) = recorders(&dir, 100);
    let mut s = spec("r", Format::Wav, false, 8000);
    s.start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_659_445);
    let first = dir.join("20261207T160405Z-s1-l1-r.wav");
    fs::write(&first, b"precious").unwrap();
    let (tap, info) = rec.start(&s).unwrap();
    assert_eq!(info.path, dir.join("20261207T160405Z-s1-l1-r-1.wav"));
    let (tap2, info2) = rec.start(&s).unwrap();
    assert_eq!(info2.path, dir.join("20261207T160405Z-s1-l1-r-2.wav"));
    drop((tap, tap2));
    stopped(&events, "r");
    assert_eq!(fs::read(&first).unwrap(), b"precious");

    let bad = |session: &str, template: &str| {
        let config = RecordingConfig {
            dir: dir.to_path_buf(),
            template: template.to_owned(),
            free_space_floor_bytes: 0,
            ..RecordingConfig::default()
        };
        let rec = Recorders::new(config, |_| {}).unwrap();
        let mut s = spec("r", Format::Wav, false, 8000);
        s.session = session.to_owned();
        match rec.start(&s) {
            Err(StartError::InvalidArgument(m)) => m,
            other => panic!("{session} {template}: {other:?}"),
        }
    };
    for (session, template) in [
        ("s", "../{session}"),
        ("../../etc/x", "{session}"),
        ("a/b", "{session}-{leg}"),
        ("..", "{session}"),
        ("s", "{nope}"),
        ("s", "{session"),
        ("", "{session}"),
    ] {
        eprintln!("{session:?} {template:?}: {}", bad(session, template));
    }
    assert_eq!(
        fs::read_dir(&dir).unwrap().count(),
        3,
        "only the three files"
    );

    // Invalid formats.
    let invalid = |s: RecordingSpec| matches!(rec.start(&s), Err(StartError::InvalidArgument(_)));
    assert!(invalid(spec("x", Format::Wav, false, 12_345)));
    let mut s = spec("x", Format::Mp3, false, 8000);
    s.bitrate_kbps = 320;
    assert!(invalid(s.clone()));
    s.sample_rate = 48_000;
    s.bitrate_kbps = 8;
    assert!(invalid(s.clone()));
    s.bitrate_kbps = 320;
    assert!(!invalid(s));
}

#[test]
fn refuses_below_the_free_space_floor() {
    let dir = temp_dir("floor");
    let config = RecordingConfig {
        dir: dir.to_path_buf(),
        free_space_floor_bytes: u64::MAX,
        ..RecordingConfig::default()
    };
    let rec = Recorders::new(config, |_| {}).unwrap();
    match rec.start(&RecordingSpec::new("s", "l", "r")) {
        Err(e @ StartError::NoSpace { .. }) => eprintln!("{e}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        fs::read_dir(&dir).unwrap().count(),
        0,
        "no file was created"
    );
}

#[test]
fn dropping_the_service_finalizes_running_recordings() {
    let dir = temp_dir("shutdown");
    let (rec, events) = recorders(&dir, 400);
    let (mut tap, info) = rec.start(&spec("w", Format::Wav, false, 8000)).unwrap();
    push_tones(&mut tap, 0..100, 8000);
    drop(rec);
    // Stopped came before the drop returned.
    let (ms, _) = stopped(&events, "w");
    assert_eq!(ms, 2000);
    assert_eq!(read_wav(&info.path).2.len(), 16_000);
    drop(tap);
}

/// Not a test by itself: the child process of
/// `killed_recording_stays_playable`. Records a WAV and an MP3 in real time
/// until it is killed.
#[test]
#[ignore = "run as a child process by killed_recording_stays_playable"]
fn crash_child() {
    let Some(dir) = std::env::var_os("LEGATO_REC_CRASH_DIR") else {
        return;
    };
    let config = RecordingConfig {
        dir: PathBuf::from(dir),
        free_space_floor_bytes: 0,
        ..RecordingConfig::default()
    };
    let rec = Recorders::new(config, |_| {}).unwrap();
    let (mut wav, _) = rec.start(&spec("wav", Format::Wav, true, 8000)).unwrap();
    let (mut mp3, _) = rec.start(&spec("mp3", Format::Mp3, false, 8000)).unwrap();
    println!("REC-STARTED");
    let start = Instant::now();
    for t in 0..3000u64 {
        let r = tone(700.0, 8000, t, 8000.0);
        let s = tone(1300.0, 8000, t, 8000.0);
        wav.push(t, 8000, Some(&r), Some(&s));
        mp3.push(t, 8000, Some(&r), Some(&s));
        let due = start + Duration::from_millis(20 * (t + 1));
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
}

#[test]
fn killed_recording_stays_playable() {
    if !(have("ffprobe") && have("sox")) {
        eprintln!("skipped: needs /usr/bin/ffprobe and /usr/bin/sox");
        return;
    }
    let dir = temp_dir("crash");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "recording::tests::crash_child",
            "--ignored",
            "--nocapture",
        ])
        .env("LEGATO_REC_CRASH_DIR", &*dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        let n = std::io::BufRead::read_line(&mut out, &mut line).unwrap();
        assert!(n > 0, "the child ended before recording");
        if line.contains("REC-STARTED") {
            break;
        }
    }
    let started = Instant::now();
    std::thread::sleep(Duration::from_millis(2500));
    child.kill().unwrap(); // SIGKILL
    let elapsed = started.elapsed().as_secs_f64();
    child.wait().unwrap();

    let mut wav = None;
    let mut mp3 = None;
    for e in fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        match p.extension().and_then(|e| e.to_str()) {
            Some("wav") => wav = Some(p),
            Some("mp3") => mp3 = Some(p),
            _ => {}
        }
    }
    let (wav, mp3) = (wav.unwrap(), mp3.unwrap());
    for path in [&wav, &mp3] {
        let probed = ffprobe_duration(path);
        let stat = sox_stat(path).unwrap_or_else(|e| panic!("sox {}: {e}", path.display()));
        let sox = sox_seconds(&stat);
        eprintln!(
            "killed after {elapsed:.3} s: {} ffprobe {probed:.3} s, sox {sox:.3} s ({} bytes)",
            path.display(),
            fs::metadata(path).unwrap().len()
        );
        assert!(probed >= elapsed - 1.0, "ffprobe {probed} s of {elapsed} s");
        assert!(sox >= elapsed - 1.0, "sox {sox} s of {elapsed} s");
    }
    let info = Command::new("sox").arg("--i").arg(&wav).output().unwrap();
    assert!(info.status.success());

    // Cut anywhere (a WAV at whole sample frames: cut mid-sample inside its
    // declared data, which a crash does not leave, ffmpeg logs an error
    // for the last packet), both files decode in both tools. An MP3 cut
    // mid-frame decodes (exit 0) but ffmpeg may log an error for the cut
    // frame ("invalid new backstep"); after the repair it is clean.
    let ffmpeg = |path: &Path| {
        let out = Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(path)
            .args(["-f", "null", "-"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        assert!(out.status.success(), "ffmpeg on {}: {err}", path.display());
        err
    };
    for (path, align) in [(&wav, 4), (&mp3, 1)] {
        let bytes = fs::read(path).unwrap();
        for k in 1..=8 {
            let at = bytes.len() * k / 9 + 13;
            let at = at - (at - 44) % align;
            let cut = dir.join(format!(
                "cut-{k}.{}",
                path.extension().unwrap().to_str().unwrap()
            ));
            fs::write(&cut, &bytes[..at]).unwrap();
            let logged = ffmpeg(&cut);
            if let Err(e) = sox_stat(&cut) {
                panic!("sox on {} cut at {k}/9: {e}", path.display());
            }
            if align == 1 {
                if !logged.is_empty() {
                    eprintln!("MP3 cut at {k}/9, ffmpeg logged: {logged}");
                }
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&cut)
                    .unwrap();
                assert!(mp3::repair(&file).unwrap().is_some());
                assert_eq!(ffmpeg(&cut), "", "MP3 cut at {k}/9, repaired");
                sox_stat(&cut).unwrap();
            } else {
                assert_eq!(logged, "", "WAV cut at {k}/9");
            }
            fs::remove_file(&cut).unwrap();
        }
    }

    // Repair brings the WAV header up to the file (unless the kill came
    // right after a checkpoint: then the header already covers it all);
    // then nothing is left. The samples written reach within a chunk
    // (100 ms) and a writer turn (200 ms) of the kill.
    let before = ffprobe_duration(&wav);
    let repaired = repair_dir(&dir);
    eprintln!("repaired: {repaired:?}");
    let probed = ffprobe_duration(&wav);
    match repaired.iter().find(|r| r.path == wav) {
        Some(w) => assert!((probed - w.seconds).abs() < 0.01),
        None => assert!(
            (probed - before).abs() < 0.001,
            "{probed} s, {before} s before"
        ),
    }
    assert!(probed >= elapsed - 0.5, "{probed} s of {elapsed} s");
    assert!(repair_dir(&dir).is_empty());

    // An MP3 cut mid-frame: what ffmpeg and sox make of it, then repair.
    let len = fs::metadata(&mp3).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&mp3)
        .unwrap()
        .set_len(len - 37)
        .unwrap();
    eprintln!(
        "MP3 cut mid-frame: ffprobe {:?}, sox {:?}",
        ffprobe(&mp3, "format=duration").map(|d| d.trim().to_owned()),
        sox_stat(&mp3).map(|s| sox_seconds(&s))
    );
    let repaired = repair_dir(&dir);
    assert_eq!(repaired.len(), 1, "{repaired:?}");
    assert_eq!(repaired[0].path, mp3);
    let after = ffprobe_duration(&mp3);
    let stat = sox_stat(&mp3).unwrap();
    eprintln!(
        "MP3 after repair: {:.3} s (repair says {:.3} s), ffprobe {after:.3} s, sox {:.3} s",
        repaired[0].seconds,
        repaired[0].seconds,
        sox_seconds(&stat)
    );
    assert!(repair_dir(&dir).is_empty());
}

#[test]
fn repair_leaves_finalized_and_junk_files_alone() {
    let dir = temp_dir("junk");
    let (rec, events) = recorders(&dir, 400);
    for (id, format) in [("w", Format::Wav), ("m", Format::Mp3)] {
        let (mut tap, _) = rec.start(&spec(id, format, false, 8000)).unwrap();
        push_tones(&mut tap, 0..100, 8000);
        tap.stop();
        stopped(&events, id);
    }
    let mut junk: u64 = 0x1234_5678;
    let random: Vec<u8> = (0..10_000)
        .map(|_| {
            junk ^= junk << 13;
            junk ^= junk >> 7;
            junk ^= junk << 17;
            junk as u8
        })
        .collect();
    fs::write(dir.join("random.wav"), &random).unwrap();
    fs::write(dir.join("random.mp3"), &random).unwrap();
    fs::write(dir.join("empty.wav"), b"").unwrap();
    fs::write(dir.join("empty.mp3"), b"").unwrap();
    fs::write(dir.join("short.wav"), b"RIFF\x10\0\0\0WAVEfmt ").unwrap();
    let mut riff = b"RIFF\xff\xff\xff\xffWAVEdata\xff\xff\xff\xff".to_vec();
    riff.extend_from_slice(&random[..100]);
    fs::write(dir.join("nofmt.wav"), &riff).unwrap();
    fs::create_dir(dir.join("x.wav")).unwrap();
    fs::create_dir(dir.join("x.mp3")).unwrap();
    let before: Vec<(PathBuf, Vec<u8>)> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| (p.clone(), fs::read(&p).unwrap()))
        .collect();
    assert!(repair_dir(&dir).is_empty());
    for (p, bytes) in before {
        assert_eq!(fs::read(&p).unwrap(), bytes, "{} changed", p.display());
    }
    assert!(repair_dir(&dir.join("missing")).is_empty());
}

#[test]
fn repair_fixes_a_header_behind_and_a_partial_sample() {
    let dir = temp_dir("wav-repair");
    let path = dir.join("cut.wav");
    let mut bytes = wav::header(8000, 2, 400).to_vec();
    bytes.extend(std::iter::repeat_n(7u8, 4000 + 3));
    fs::write(&path, &bytes).unwrap();
    let repaired = repair_dir(&dir);
    assert_eq!(repaired.len(), 1);
    assert!((repaired[0].seconds - 1000.0 / 8000.0).abs() < 1e-9);
    let (_, _, samples) = read_wav(&path);
    assert_eq!(samples.len(), 2000);
    assert_eq!(fs::metadata(&path).unwrap().len(), 44 + 4000);
    assert!(repair_dir(&dir).is_empty());
}

/// A 200 KiB tmpfs mounted at a directory, unmounted (and the directory
/// removed) on drop, even when the test fails.
struct SmallTmpfs(PathBuf);

impl SmallTmpfs {
    /// Mounts it at `dir`; `None` when that is not allowed here.
    fn mount(dir: &Path) -> Option<Self> {
        Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=200k", "tmpfs"])
            .arg(dir)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
            .then(|| Self(dir.to_owned()))
    }
}

impl Drop for SmallTmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn full_disk_reports_the_error_and_keeps_a_valid_file() {
    if !have("ffprobe") {
        eprintln!("skipped: no /usr/bin/ffprobe");
        return;
    }
    for (id, format, ticks) in [("w", Format::Wav, 1000u64), ("m", Format::Mp3, 3500)] {
        let dir = temp_dir("full");
        let Some(_mount) = SmallTmpfs::mount(&dir) else {
            eprintln!("skipped: cannot mount a tmpfs (needs root)");
            return;
        };
        let (rec, events) = recorders(&dir, 4000);
        let (mut tap, info) = rec.start(&spec(id, format, false, 8000)).unwrap();
        // The first 2 s, then the rest once the writer has put something
        // on disk: the disk then fills part-way through the file even when
        // a loaded machine starves the writer thread (its first write
        // would otherwise hold the whole file and fail at once).
        push_tones(&mut tap, 0..100, 8000);
        let deadline = Instant::now() + Duration::from_secs(30);
        while fs::metadata(&info.path).map_or(0, |m| m.len()) < 1000 {
            assert!(Instant::now() < deadline, "nothing written");
            std::thread::sleep(Duration::from_millis(10));
        }
        push_tones(&mut tap, 100..ticks, 8000);
        tap.stop();
        let (ms, bytes) = stopped(&events, id);
        let errs = errors(&events, id);
        eprintln!("full disk ({format:?}): {errs:?}; Stopped after {ms} ms, {bytes} bytes");
        assert!(errs.iter().any(|e| e.contains("No space left")), "{errs:?}");
        assert!(ms < ticks * 20 && ms > 1000);
        {
            let events = events.lock().unwrap();
            let error = events
                .iter()
                .position(|e| matches!(e, RecordingEvent::Error { .. }));
            let stop = events
                .iter()
                .position(|e| matches!(e, RecordingEvent::Stopped { .. }));
            assert!(error < stop, "{events:?}");
        }
        assert_eq!(bytes, fs::metadata(&info.path).unwrap().len());
        let probed = ffprobe_duration(&info.path);
        eprintln!("full disk ({format:?}): ffprobe {probed:.3} s");
        assert!((probed - ms as f64 / 1000.0).abs() < 0.5);
        drop(rec);
    }
}
