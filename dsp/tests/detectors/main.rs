//! Detector acceptance tests (issue 5): DTMF (Q.24), beep, call progress,
//! VAD, answering-machine detection and talk-off, each on linear, µ-law and
//! A-law audio. One test binary so generated corpora are shared and tests
//! run in parallel.

mod amd;
mod beep;
mod common;
mod dtmf;
mod progress;
mod spandsp;
mod talkoff;
mod vad;
