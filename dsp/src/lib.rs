//! legato-dsp: pure, sans-IO audio code for the legato media plane.
//!
//! Everything here is a function or a small state machine over `&[i16]`
//! frames. It never opens a socket, spawns a thread, reads a clock or takes a
//! lock, and per-frame calls never allocate: buffers are sized in
//! constructors.
#![deny(unsafe_code)]
#![warn(missing_docs)]
