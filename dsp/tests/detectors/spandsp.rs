//! Side-by-side with spandsp, the DTMF receiver FreeSWITCH's mod_spandsp
//! uses (issue 5): the Q.24 test set of `dtmf.rs`, on linear, µ-law and
//! A-law, through legato's detector and through spandsp's `dtmf_rx` with its
//! default parameters. spandsp runs as a separate process: the C program
//! `tests/spandsp/dtmf_rx.c`, compiled here with `cc … -lspandsp`. Without a
//! C compiler or libspandsp-dev the test prints `SKIPPED` and passes.
//!
//! Both detectors are scored by the same rule: a detection counts for a
//! burst when its digit is right and it is reported between the burst's
//! onset and the next burst's onset; anything else (a second report of one
//! burst, a wrong digit, a digit on a must-reject burst) is a false
//! detection. legato must detect every expected burst with no false
//! detection; spandsp's figures are only reported.

use std::path::{Path as FsPath, PathBuf};
use std::process::Command;

use legato_dsp::dtmf::{Digit, DtmfDetectorConfig};

use crate::common::{Path, to_i16};
use crate::dtmf::{Burst, criteria, detect, render};

/// Silence appended after the last burst (as `dtmf::detect` does), so the
/// last tone ends inside the input.
const TRAILER: usize = 1200;

#[derive(Default, Clone, Copy)]
struct Score {
    detected: usize,
    expected: usize,
    false_detections: usize,
}

impl Score {
    fn cell(self) -> String {
        if self.expected == 0 {
            format!("{} false", self.false_detections)
        } else if self.false_detections == 0 {
            format!("{}/{}", self.detected, self.expected)
        } else {
            format!(
                "{}/{} (+{} false)",
                self.detected, self.expected, self.false_detections
            )
        }
    }
}

/// Scores detections `(digit, decision sample)` against the bursts.
fn score(bursts: &[Burst], starts: &[usize], detections: &[(Digit, u64)]) -> Score {
    let mut s = Score {
        expected: bursts.iter().filter(|b| b.expect).count(),
        ..Score::default()
    };
    let mut used = vec![false; bursts.len()];
    for &(digit, at) in detections {
        // The burst whose window [onset, next onset) holds the decision.
        let index = starts
            .iter()
            .rposition(|&start| start as u64 <= at)
            .filter(|&i| bursts[i].expect && bursts[i].digit == digit && !used[i]);
        match index {
            Some(i) => {
                used[i] = true;
                s.detected += 1;
            }
            None => s.false_detections += 1,
        }
    }
    s
}

/// A scratch directory under the system temp dir, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir =
            std::env::temp_dir().join(format!("legato-dsp-spandsp-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Compiles `tests/spandsp/dtmf_rx.c` into `dir`. `Err` carries the reason
/// to skip (no compiler, no spandsp header or library); a compile error in
/// the program itself panics.
fn build_receiver(dir: &FsPath) -> Result<PathBuf, String> {
    let source = FsPath::new(env!("CARGO_MANIFEST_DIR")).join("tests/spandsp/dtmf_rx.c");
    let exe = dir.join("dtmf_rx");
    let output = Command::new("cc")
        .args(["-O2", "-o"])
        .arg(&exe)
        .arg(&source)
        .args(["-lspandsp", "-lm"])
        .output()
        .map_err(|e| format!("cannot run cc: {e}"))?;
    if output.status.success() {
        return Ok(exe);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("spandsp.h") || stderr.contains("-lspandsp") || stderr.contains("tiffio.h") {
        return Err(format!(
            "libspandsp-dev not installed ({})",
            stderr.lines().next().unwrap_or("").trim()
        ));
    }
    panic!("compiling {} failed:\n{stderr}", source.display());
}

/// Runs the spandsp receiver over `x`; returns `(digit, sample)` per
/// reported digit start.
fn spandsp_detect(exe: &FsPath, pcm: &FsPath, x: &[i16]) -> Vec<(Digit, u64)> {
    let mut bytes = Vec::with_capacity(2 * (x.len() + TRAILER));
    for &s in x.iter().chain(std::iter::repeat_n(&0i16, TRAILER)) {
        bytes.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::write(pcm, &bytes).expect("write PCM");
    let output = Command::new(exe).arg(pcm).output().expect("run dtmf_rx");
    assert!(output.status.success(), "dtmf_rx failed: {output:?}");
    let stdout = String::from_utf8(output.stdout).expect("utf-8 output");
    let mut starts = Vec::new();
    let mut buffered = String::new();
    for line in stdout.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            ["S", digit, at] => {
                let c = digit.chars().next().expect("digit");
                let digit = Digit::from_char(c).expect("spandsp reports DTMF digits");
                starts.push((digit, at.parse().expect("sample count")));
            }
            ["D", digits] => buffered = (*digits).to_owned(),
            _ => {}
        }
    }
    // The realtime reports and a second, buffering receiver must agree.
    let realtime: String = starts.iter().map(|(d, _)| d.to_char()).collect();
    assert_eq!(realtime, buffered, "spandsp callback vs dtmf_rx_get");
    starts
}

#[test]
fn dtmf_q24_legato_vs_spandsp() {
    let scratch = Scratch::new();
    let exe = match build_receiver(&scratch.0) {
        Ok(exe) => exe,
        Err(reason) => {
            eprintln!(
                "SKIPPED dtmf_q24_legato_vs_spandsp: {reason} \
                 (apt-get install libspandsp-dev; scripts/test.sh installs it)"
            );
            return;
        }
    };
    let pcm = scratch.0.join("input.raw");
    let mut failures = Vec::new();
    let mut spandsp_missed = 0;
    let mut spandsp_false = 0;
    eprintln!(
        "| criterion | legato linear | legato µ-law | legato A-law \
         | spandsp linear | spandsp µ-law | spandsp A-law |"
    );
    eprintln!("|---|---|---|---|---|---|---|");
    for (index, (name, bursts, snr)) in criteria().into_iter().enumerate() {
        let (x, starts) = render(&bursts, snr, 17 + index as u64);
        let x = to_i16(&x);
        let mut legato_cells = Vec::new();
        let mut spandsp_cells = Vec::new();
        for path in Path::ALL {
            let y = path.apply(&x);
            let frame = [160, 80, 37, 240][index % 4];
            let ours: Vec<(Digit, u64)> = detect(&y, frame, DtmfDetectorConfig::default())
                .into_iter()
                .map(|(digit, _, at, _)| (digit, at))
                .collect();
            let ours = score(&bursts, &starts, &ours);
            let theirs = score(&bursts, &starts, &spandsp_detect(&exe, &pcm, &y));
            if ours.detected != ours.expected || ours.false_detections != 0 {
                failures.push(format!("{name} / {}: legato {}", path.name(), ours.cell()));
            }
            spandsp_missed += theirs.expected - theirs.detected;
            spandsp_false += theirs.false_detections;
            legato_cells.push(ours.cell());
            spandsp_cells.push(theirs.cell());
        }
        eprintln!(
            "| {name} | {} | {} |",
            legato_cells.join(" | "),
            spandsp_cells.join(" | ")
        );
    }
    eprintln!("spandsp: {spandsp_missed} missed, {spandsp_false} false over all rows and paths");
    assert!(failures.is_empty(), "{failures:#?}");
}
