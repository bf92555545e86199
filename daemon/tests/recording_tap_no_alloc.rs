//! A recording's [`Tap::push`] runs on a shard every 20 ms: it must not
//! allocate. The tap's source is compiled here on its own (it uses only
//! std and crossbeam-queue) so this binary can count allocations with its
//! own global allocator; the daemon's unit tests already have one.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

#[allow(dead_code, reason = "only the shard side of the tap is exercised")]
#[path = "../src/recording/tap.rs"]
mod tap;

use tap::{Tap, TapShared};

/// Counts allocations made by the current thread while armed.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: forwards every call to the system allocator unchanged.
#[allow(
    unsafe_code,
    reason = "a counting global allocator for the no-allocation test"
)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ARMED.with(Cell::get) {
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
fn push_does_not_allocate() {
    let shared = TapShared::new(20);
    let mut tap = Tap::new(shared.clone());
    let narrow = vec![1000i16; 160];
    let wide = vec![-1000i16; 960];
    // The counter works: one allocation while armed is seen.
    ARMED.with(|a| a.set(true));
    drop(std::hint::black_box(Box::new(1u64)));
    ARMED.with(|a| a.set(false));
    assert_eq!(ALLOCATIONS.swap(0, Ordering::Relaxed), 1);

    ARMED.with(|a| a.set(true));
    let mut taken = 0;
    for tick in 0..300u64 {
        // Rates change, channels come and go, the ring fills and overflows.
        let ok = match tick % 4 {
            0 => tap.push(tick, 8000, Some(&narrow), Some(&narrow)),
            1 => tap.push(tick, 8000, None, Some(&narrow)),
            2 => tap.push(tick, 48_000, Some(&wide), None),
            _ => tap.push(tick, 48_000, None, None),
        };
        taken += usize::from(ok);
        if tick == 150 {
            // The writer drains meanwhile.
            while shared.pop().is_some() {}
        }
    }
    tap.stop();
    assert!(!tap.push(300, 8000, None, None));
    ARMED.with(|a| a.set(false));
    assert_eq!(ALLOCATIONS.load(Ordering::Relaxed), 0, "push allocated");
    // 20 chunks: the first ticks fill them (a 48 kHz frame with audio
    // takes a chunk's room alone) and the rest up to 150 overflow;
    // drained at 150, the later frames go in again, until they fill the
    // chunks once more.
    assert!(taken > 100 && tap.overflowed() > 100, "{taken}");
    assert_eq!(taken as u64 + tap.overflowed(), 300);
    drop(tap);
    assert!(shared.pop().is_some());
}
