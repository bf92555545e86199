//! Every per-frame call of legato-dsp allocates nothing: a counting global
//! allocator watches this thread while each kernel runs for many frames,
//! starting with its very first call after construction.

// A global allocator must implement the unsafe `GlobalAlloc` trait; this
// harness only forwards to `System` and counts.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use legato_dsp::codec::g711::{self, G711, Law};
use legato_dsp::codec::g722::{G722Decoder, G722Encoder};
use legato_dsp::codec::opus::{OpusApplication, OpusDecoder, OpusEncoder};
use legato_dsp::codec::{Decoder, Encoder};
use legato_dsp::jitter::{JitterBuffer, JitterConfig, Playout};
use legato_dsp::mix::{self, Gain, Mixer};
use legato_dsp::resample::Resampler;
use legato_dsp::rfc4733::{EventReceiver, EventSender};
use legato_dsp::stats::{NtpTime, ReceiverReport, ReceiverStats, SenderReport};
use legato_dsp::time::ClockRate;

struct Counting;

thread_local! {
    static WATCHING: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

fn note() {
    // try_with: the allocator can run while thread-locals are torn down.
    if WATCHING.try_with(Cell::get).unwrap_or(false) {
        let _ = COUNT.try_with(|c| c.set(c.get() + 1));
    }
}

// SAFETY: every method forwards to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f` while counting this thread's allocations; returns the count.
fn allocations(f: impl FnOnce()) -> u64 {
    COUNT.with(|c| c.set(0));
    WATCHING.with(|w| w.set(true));
    f();
    WATCHING.with(|w| w.set(false));
    COUNT.with(Cell::get)
}

fn tone(n: usize, period: usize) -> Vec<i16> {
    (0..n)
        .map(|i| (((i % period) as i32 * 2000 / period as i32) - 1000) as i16 * 8)
        .collect()
}

#[test]
fn per_frame_calls_do_not_allocate() {
    const FRAMES: usize = 100;
    let mut report = Vec::new();

    // The counter works.
    assert!(allocations(|| drop(std::hint::black_box(vec![1u8; 10]))) > 0);

    // G.711.
    let pcm8 = tone(160, 37);
    let mut codes = [0u8; 160];
    let mut out8 = [0i16; 160];
    let mut ulaw = G711::new(Law::Ulaw);
    let n = allocations(|| {
        for _ in 0..FRAMES {
            g711::encode_alaw(&pcm8, &mut codes).unwrap();
            g711::decode_alaw(&codes, &mut out8).unwrap();
            ulaw.encode(&pcm8, &mut codes).unwrap();
            ulaw.decode(&codes, &mut out8).unwrap();
            ulaw.conceal(&mut out8).unwrap();
        }
    });
    report.push(("g711 encode/decode/conceal", n));

    // G.722.
    let pcm16 = tone(320, 41);
    let mut g722_codes = [0u8; 160];
    let mut out16 = [0i16; 320];
    let mut enc = G722Encoder::new();
    let mut dec = G722Decoder::new();
    let n = allocations(|| {
        for _ in 0..FRAMES {
            enc.encode(&pcm16, &mut g722_codes).unwrap();
            dec.decode(&g722_codes, &mut out16).unwrap();
            dec.conceal(&mut out16).unwrap();
        }
    });
    report.push(("g722 encode/decode/conceal", n));

    // Opus, both rates.
    for rate in [ClockRate::HZ_48000, ClockRate::HZ_16000] {
        let frame = rate.samples_in_ms(20) as usize;
        let pcm = tone(frame, 97);
        let mut out = vec![0i16; frame];
        let mut pkt = [0u8; 1275];
        let mut enc = OpusEncoder::new(rate, OpusApplication::Voip, 32_000).unwrap();
        let mut dec = OpusDecoder::new(rate).unwrap();
        let n = allocations(|| {
            for i in 0..FRAMES {
                let len = enc.encode(&pcm, &mut pkt).unwrap();
                if i % 10 == 9 {
                    dec.conceal(&mut out).unwrap();
                } else {
                    dec.decode(&pkt[..len], &mut out).unwrap();
                }
            }
        });
        report.push((
            if rate.hz() == 48_000 {
                "opus 48k encode/decode/conceal"
            } else {
                "opus 16k encode/decode/conceal"
            },
            n,
        ));

        // In-band FEC (16 kHz only, see OpusEncoder::set_inband_fec),
        // runtime bitrate/complexity changes, 60 ms frames.
        enc.set_inband_fec(rate == ClockRate::HZ_16000, 20).unwrap();
        let mut prev = [0u8; 1500];
        let mut prev_len = 0;
        let mut pkt60 = [0u8; 1500];
        let pcm60 = tone(rate.samples_in_ms(60) as usize, 89);
        let mut out60 = vec![0i16; pcm60.len()];
        let n = allocations(|| {
            for i in 0..FRAMES {
                enc.set_bitrate(16_000 + (i as u32 % 4) * 8_000);
                enc.set_complexity((i % 11) as u8).unwrap();
                let len = enc.encode(&pcm, &mut pkt).unwrap();
                if i % 10 == 5 {
                    // The previous packet was "lost": rebuild it from this one.
                    dec.decode_fec(&pkt[..len], &mut out).unwrap();
                } else if prev_len > 0 {
                    dec.decode(&prev[..prev_len], &mut out).unwrap();
                }
                prev[..len].copy_from_slice(&pkt[..len]);
                prev_len = len;
            }
            enc.set_frame_ms(60).unwrap();
            for _ in 0..FRAMES / 10 {
                let len = enc.encode(&pcm60, &mut pkt60).unwrap();
                dec.decode(&pkt60[..len], &mut out60).unwrap();
            }
            enc.set_frame_ms(20).unwrap();
        });
        report.push((
            if rate.hz() == 48_000 {
                "opus 48k FEC/decode_fec/set_*/60 ms"
            } else {
                "opus 16k FEC/decode_fec/set_*/60 ms"
            },
            n,
        ));
    }

    // Resampling, every pair.
    let rates = [ClockRate::HZ_8000, ClockRate::HZ_16000, ClockRate::HZ_48000];
    let mut resamplers: Vec<(Resampler, Vec<i16>, Vec<i16>)> = rates
        .iter()
        .flat_map(|&a| rates.iter().map(move |&b| (a, b)))
        .filter(|(a, b)| a != b)
        .map(|(a, b)| {
            let r = Resampler::new(a, b, 20).unwrap();
            let input = tone(r.input_len(), 53);
            let output = vec![0i16; r.output_len()];
            (r, input, output)
        })
        .collect();
    let n = allocations(|| {
        for _ in 0..FRAMES {
            for (r, input, output) in resamplers.iter_mut() {
                r.process(input, output).unwrap();
            }
        }
    });
    report.push(("resample (all six pairs)", n));

    // Mixing.
    let mut mixer = Mixer::new(8, 160);
    let mut mixed = [0i16; 160];
    let n = allocations(|| {
        for _ in 0..FRAMES {
            for m in 0..8 {
                mixer.set_input(m, &pcm8).unwrap();
            }
            mixer.mix();
            let _ = std::hint::black_box(mixer.output(3).unwrap());
            mix::mix(
                &[(&pcm8, Gain::UNITY), (&out8, Gain::from_q12(2048))],
                &mut mixed,
            )
            .unwrap();
            mix::mix_into(&mut mixed, &pcm8, Gain::UNITY).unwrap();
        }
    });
    report.push(("mixer (8 members) + mix", n));

    // Jitter buffer: in order, reordered, duplicated, lost.
    let mut jb = JitterBuffer::new(JitterConfig::new(ClockRate::HZ_8000, 20)).unwrap();
    let n = allocations(|| {
        for k in 0..FRAMES as u64 * 4 {
            let seq = (k ^ 1) as u16; // pairwise reordered
            if k % 17 != 5 {
                jb.push(k * 160 + 80, 1, seq, (seq as u32) * 160, &codes)
                    .unwrap();
            }
            if k % 13 == 0 {
                jb.push(k * 160 + 90, 1, seq, (seq as u32) * 160, &codes)
                    .unwrap();
            }
            if let Playout::Packet { payload, .. } = jb.pop(k * 160) {
                std::hint::black_box(payload);
            }
        }
    });
    report.push(("jitter buffer push/pop", n));

    // RFC 4733: sender and receiver step.
    let mut tx = EventSender::new(400, 10).unwrap();
    let mut rx = EventReceiver::new(4000);
    let n = allocations(|| {
        let mut now = 0u64;
        for digit in 0..16u8 {
            tx.start(digit, 1600, now, now as u32).unwrap();
            while tx.is_active() {
                while let Some(p) = tx.poll(now) {
                    rx.handle_packet(now, p.timestamp, p.marker, &p.payload.to_bytes())
                        .unwrap();
                    while rx.poll_event().is_some() {}
                }
                rx.handle_timeout(now);
                now += 160;
            }
            now += 800;
        }
    });
    report.push(("rfc4733 sender/receiver", n));

    // RTP/RTCP statistics.
    let mut stats = ReceiverStats::new(0x1234);
    let mut rtcp = [0u8; 1500];
    let n = allocations(|| {
        for k in 0..FRAMES as u64 * 4 {
            stats.handle_packet(k * 160 + (k % 7) * 10, k as u16, (k * 160) as u32);
            if k % 50 == 0 {
                let mut rr = ReceiverReport::new(1);
                rr.blocks
                    .push(stats.report_block(NtpTime(k << 32)))
                    .unwrap();
                let len = rr.write(&mut rtcp).unwrap();
                ReceiverReport::parse(&rtcp[..len]).unwrap();
                let sr = SenderReport {
                    ssrc: 1,
                    ntp: NtpTime(k),
                    rtp_timestamp: 0,
                    packet_count: 0,
                    octet_count: 0,
                    blocks: rr.blocks,
                };
                let len = sr.write(&mut rtcp).unwrap();
                SenderReport::parse(&rtcp[..len]).unwrap();
                stats.handle_sender_report(sr.ntp, NtpTime(k << 32));
            }
        }
    });
    report.push(("rtcp stats update + SR/RR build/parse", n));

    for (name, n) in &report {
        eprintln!("{name}: {n} allocations");
    }
    let failing: Vec<_> = report.iter().filter(|(_, n)| *n > 0).collect();
    assert!(
        failing.is_empty(),
        "allocating per-frame calls: {failing:?}"
    );
}
