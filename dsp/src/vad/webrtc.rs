//! The one place webrtc-vad's `Vad` is held, made movable between threads.

/// Owns one libfvad instance through webrtc-vad's `Vad`.
///
/// `Vad` is `!Send` only because it holds a raw pointer. This wrapper owns
/// its `Vad` exclusively: the field is private, never cloned, never lent
/// out (not even as `&Vad`), and only used through `&mut self`.
pub(crate) struct OwnedVad(webrtc_vad::Vad);

// SAFETY: the raw pointer inside `Vad` is the only handle to a heap object
// created by `fvad_new` and freed by `Vad`'s `Drop`; libfvad keeps all of
// its state in that object (its sources hold no mutable globals and no
// thread-locals, only const tables), so the object has no affinity to the
// thread that created it. `OwnedVad` owns the `Vad` exclusively and exposes
// it only through `&mut self`, so sending an `OwnedVad` to another thread is
// a transfer of sole ownership, exactly like moving a `Box`. `Sync` is *not*
// implemented: shared references never reach the C code.
#[allow(unsafe_code)]
unsafe impl Send for OwnedVad {}

impl OwnedVad {
    /// A new instance at 8 kHz in `mode` (0..=3, webrtc aggressiveness).
    pub(crate) fn new(mode: u8) -> Self {
        let mode = match mode {
            0 => webrtc_vad::VadMode::Quality,
            1 => webrtc_vad::VadMode::LowBitrate,
            2 => webrtc_vad::VadMode::Aggressive,
            _ => webrtc_vad::VadMode::VeryAggressive,
        };
        Self(webrtc_vad::Vad::new_with_rate_and_mode(
            webrtc_vad::SampleRate::Rate8kHz,
            mode,
        ))
    }

    /// Decision for exactly one 10 ms frame (80 samples).
    pub(crate) fn is_voice(&mut self, frame: &[i16; 80]) -> bool {
        // 80 samples at 8 kHz is a valid length, so the library cannot
        // report a length error; treat any error as "no voice".
        self.0.is_voice_segment(frame).unwrap_or(false)
    }
}

impl std::fmt::Debug for OwnedVad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OwnedVad")
    }
}
