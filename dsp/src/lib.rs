//! legato-dsp: pure, sans-IO audio code for the legato media plane.
//!
//! Everything here is a function or a small state machine over `&[i16]`
//! frames. It never opens a socket, spawns a thread, reads a clock or takes a
//! lock, and per-frame calls never allocate: buffers are sized in
//! constructors.
//!
//! # Signal path
//!
//! | module | what |
//! | --- | --- |
//! | [`time`] | [`time::ClockRate`], [`time::MediaTime`], and the one place RTP sequence numbers and timestamps are extended to 64 bits ([`time::extend_u16`], [`time::extend_u32`]) |
//! | [`codec`] | [`codec::Encoder`] / [`codec::Decoder`] traits (with concealment); G.711 (bit-exact, exhaustively tested), G.722 (64 kbit/s, bit-exact with ffmpeg), Opus 48/16 kHz (pure-Rust `opus-rs`) |
//! | [`resample`] | 8/16/48 kHz in fixed chunks (polyphase Kaiser-windowed FIR, 2 ms delay) |
//! | [`mix`] | saturating N-way mix, per-input gain, O(N) mix-minus |
//! | [`rfc4733`] | telephone-event payloads, sender and receiver state machines |
//! | [`jitter`] | adaptive jitter buffer (reorder, duplicates, loss, wrap, resync, shrinks after bursts) |
//! | [`stats`] | RFC 3550 reception statistics, SR/RR, RTT, G.107 E-model MOS |
//!
//! Times are sample counts passed in by the caller (`now`, `arrival`); the
//! caller's media clock drives every state machine.
//!
//! A PCM leg's receive side, one 20 ms tick at a time:
//!
//! ```
//! use legato_dsp::codec::{Decoder, g711::{G711, Law}};
//! use legato_dsp::jitter::{JitterBuffer, JitterConfig, Playout};
//! use legato_dsp::resample::Resampler;
//! use legato_dsp::time::ClockRate;
//!
//! let mut jb = JitterBuffer::new(JitterConfig::new(ClockRate::HZ_8000, 20)).unwrap();
//! let mut pcmu = G711::new(Law::Ulaw);
//! let mut up = Resampler::new(ClockRate::HZ_8000, ClockRate::HZ_48000, 20).unwrap();
//! let (mut pcm, mut wide) = ([0i16; 160], [0i16; 960]);
//! for tick in 0..10u64 {
//!     let now = tick * 160; // media clock, in 8 kHz samples
//!     // A packet arrives (normally from the socket, with its receive time).
//!     jb.push(now, 0x1234, tick as u16, (tick * 160) as u32, &[0xFF; 160]).unwrap();
//!     match jb.pop(now) {
//!         Playout::Packet { payload, .. } => { pcmu.decode(payload, &mut pcm).unwrap(); }
//!         Playout::Conceal => { pcmu.conceal(&mut pcm).unwrap(); }
//!         Playout::Empty => pcm.fill(0),
//!     }
//!     up.process(&pcm, &mut wide).unwrap(); // on to a 48 kHz mixer or encoder
//! }
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod amd;
pub mod beep;
pub mod codec;
pub mod detector;
pub mod dtmf;
pub mod goertzel;
pub mod jitter;
pub mod mix;
mod osc;
pub mod resample;
pub mod rfc4733;
pub mod stats;
pub mod time;
pub mod tone;
pub mod vad;
