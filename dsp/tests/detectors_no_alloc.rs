//! A counting global allocator proves that feeding frames to the detectors
//! and generators allocates nothing: all memory is taken in constructors.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use legato_dsp::amd::{Amd, AmdConfig};
use legato_dsp::beep::{BeepDetector, BeepDetectorConfig};
use legato_dsp::dtmf::{
    Digit, DtmfDetector, DtmfDetectorConfig, DtmfGenerator, DtmfGeneratorConfig,
};
use legato_dsp::tone::{
    Country, ProgressDetector, ProgressDetectorConfig, ProgressTone, ProgressToneGenerator,
};
use legato_dsp::vad::{Vad, VadConfig};

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn per_frame_calls_do_not_allocate() {
    // Everything is built before counting starts.
    let mut dtmf_gen =
        DtmfGenerator::new(DtmfGeneratorConfig::default().with_durations_ms(60, 60)).unwrap();
    let mut tone_gen =
        ProgressToneGenerator::new(Country::Uk, ProgressTone::Ringback, 0.0).unwrap();
    let mut dtmf = DtmfDetector::new(DtmfDetectorConfig::default()).unwrap();
    let mut beep = BeepDetector::new(BeepDetectorConfig::default()).unwrap();
    let mut progress = ProgressDetector::new(ProgressDetectorConfig::new(Country::Uk)).unwrap();
    let mut vad = Vad::new(VadConfig::default()).unwrap();
    let mut amd = Amd::new(AmdConfig::default()).unwrap();
    let mut frame = [0i16; 160];
    let mut tone = [0i16; 160];
    let mut events = 0usize;

    COUNTING.store(true, Ordering::SeqCst);
    for i in 0..1500 {
        if i % 50 == 0 {
            let _ = dtmf_gen.push(Digit::ALL[i / 50 % 16]);
        }
        dtmf_gen.fill(&mut frame);
        tone_gen.fill(&mut tone);
        for (f, t) in frame.iter_mut().zip(&tone) {
            *f = f.saturating_add(*t / 2);
        }
        // Odd sub-frame sizes too.
        for part in [&frame[..37], &frame[37..]] {
            dtmf.handle_samples(part);
            beep.handle_samples(part);
            progress.handle_samples(part);
            vad.handle_samples(part);
            amd.handle_samples(part);
        }
        while dtmf.poll_event().is_some() {
            events += 1;
        }
        while beep.poll_event().is_some() {}
        while progress.poll_event().is_some() {
            events += 1;
        }
        while vad.poll_event().is_some() {}
        let _ = amd.poll_decision();
    }
    COUNTING.store(false, Ordering::SeqCst);
    assert!(events > 0, "the signal should have produced events");
    assert_eq!(
        ALLOCATIONS.load(Ordering::SeqCst),
        0,
        "allocations during per-frame calls"
    );
}
