//! Criterion benches of the signal-path kernels, each on one 20 ms frame.
//!
//! `cargo bench -p legato-dsp --bench kernels` measures; `cargo test
//! --benches` runs every bench once so they cannot rot.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use legato_dsp::codec::g711::{self, G711, Law};
use legato_dsp::codec::g722::{G722Decoder, G722Encoder};
use legato_dsp::codec::opus::{OpusApplication, OpusDecoder, OpusEncoder};
use legato_dsp::codec::{Decoder, Encoder};
use legato_dsp::jitter::{JitterBuffer, JitterConfig};
use legato_dsp::mix::Mixer;
use legato_dsp::resample::Resampler;
use legato_dsp::rfc4733::{EventReceiver, EventSender};
use legato_dsp::stats::{NtpTime, ReceiverStats};
use legato_dsp::time::ClockRate;

/// A speech-band multi-tone frame of `n` samples at `rate`.
fn signal(rate: u32, n: usize) -> Vec<i16> {
    (0..n)
        .map(|i| {
            let t = i as f64 / rate as f64;
            let f = |hz: f64, a: f64| a * (2.0 * std::f64::consts::PI * hz * t).sin();
            (f(220.0, 5000.0) + f(710.0, 4000.0) + f(1330.0, 3000.0) + f(2450.0, 2000.0)) as i16
        })
        .collect()
}

fn g711(c: &mut Criterion) {
    let pcm = signal(8000, 160);
    let mut codes = [0u8; 160];
    let mut out = [0i16; 160];
    // Baseline: a plain table lookup loop (64 Ki-entry encode table,
    // 256-entry decode table), built from legato's own functions.
    let enc_table: Vec<u8> = (0..=u16::MAX)
        .map(|v| g711::linear_to_ulaw(v as i16))
        .collect();
    let dec_table: Vec<i16> = (0..=255u8).map(g711::ulaw_to_linear).collect();
    c.bench_function("g711/ulaw_encode_20ms", |b| {
        b.iter(|| g711::encode_ulaw(black_box(&pcm), &mut codes).unwrap())
    });
    c.bench_function("g711/table_lookup_encode_20ms", |b| {
        b.iter(|| {
            for (o, &s) in codes.iter_mut().zip(black_box(&pcm)) {
                *o = enc_table[s as u16 as usize];
            }
        })
    });
    g711::encode_ulaw(&pcm, &mut codes).unwrap();
    c.bench_function("g711/ulaw_decode_20ms", |b| {
        b.iter(|| g711::decode_ulaw(black_box(&codes), &mut out).unwrap())
    });
    c.bench_function("g711/table_lookup_decode_20ms", |b| {
        b.iter(|| {
            for (o, &c) in out.iter_mut().zip(black_box(&codes)) {
                *o = dec_table[c as usize];
            }
        })
    });
    c.bench_function("g711/alaw_encode_20ms", |b| {
        b.iter(|| g711::encode_alaw(black_box(&pcm), &mut codes).unwrap())
    });
    let mut codec = G711::new(Law::Alaw);
    c.bench_function("g711/alaw_decode_20ms", |b| {
        b.iter(|| codec.decode(black_box(&codes), &mut out).unwrap())
    });
}

fn g722(c: &mut Criterion) {
    let pcm = signal(16_000, 320);
    let mut codes = [0u8; 160];
    let mut out = [0i16; 320];
    let mut enc = G722Encoder::new();
    c.bench_function("g722/encode_20ms", |b| {
        b.iter(|| enc.encode(black_box(&pcm), &mut codes).unwrap())
    });
    let mut dec = G722Decoder::new();
    c.bench_function("g722/decode_20ms", |b| {
        b.iter(|| dec.decode(black_box(&codes), &mut out).unwrap())
    });
}

fn opus(c: &mut Criterion) {
    for (rate, name) in [(ClockRate::HZ_48000, "48k"), (ClockRate::HZ_16000, "16k")] {
        let frame = rate.samples_in_ms(20) as usize;
        let pcm = signal(rate.hz(), frame);
        let mut pkt = [0u8; 1275];
        let mut out = vec![0i16; frame];
        let mut enc = OpusEncoder::new(rate, OpusApplication::Voip, 32_000).unwrap();
        c.bench_function(&format!("opus/{name}_voip32k_encode_20ms"), |b| {
            b.iter(|| enc.encode(black_box(&pcm), &mut pkt).unwrap())
        });
        let len = enc.encode(&pcm, &mut pkt).unwrap();
        let mut dec = OpusDecoder::new(rate).unwrap();
        c.bench_function(&format!("opus/{name}_voip32k_decode_20ms"), |b| {
            b.iter(|| dec.decode(black_box(&pkt[..len]), &mut out).unwrap())
        });
        c.bench_function(&format!("opus/{name}_conceal_20ms"), |b| {
            b.iter(|| dec.conceal(&mut out).unwrap())
        });
    }
}

fn resample(c: &mut Criterion) {
    let pairs = [
        (ClockRate::HZ_8000, ClockRate::HZ_48000),
        (ClockRate::HZ_48000, ClockRate::HZ_8000),
        (ClockRate::HZ_16000, ClockRate::HZ_48000),
        (ClockRate::HZ_48000, ClockRate::HZ_16000),
        (ClockRate::HZ_8000, ClockRate::HZ_16000),
        (ClockRate::HZ_16000, ClockRate::HZ_8000),
    ];
    for (from, to) in pairs {
        let mut r = Resampler::new(from, to, 20).unwrap();
        let input = signal(from.hz(), r.input_len());
        let mut output = vec![0i16; r.output_len()];
        c.bench_function(
            &format!("resample/{}_to_{}_20ms", from.hz(), to.hz()),
            |b| b.iter(|| r.process(black_box(&input), &mut output).unwrap()),
        );
    }
}

fn mixer(c: &mut Criterion) {
    let pcm = signal(8000, 160);
    for members in [3, 10] {
        let mut m = Mixer::new(members, 160);
        c.bench_function(&format!("mix/mix_minus_{members}_members_20ms"), |b| {
            b.iter(|| {
                for i in 0..members {
                    m.set_input(i, black_box(&pcm)).unwrap();
                }
                m.mix();
                black_box(m.output(0).unwrap()[0])
            })
        });
    }
}

fn jitter(c: &mut Criterion) {
    let payload = [0x55u8; 160];
    let mut jb = JitterBuffer::new(JitterConfig::new(ClockRate::HZ_8000, 20)).unwrap();
    let mut k = 0u64;
    c.bench_function("jitter/push_pop_20ms", |b| {
        b.iter(|| {
            let ts = k * 160;
            jb.push(
                ts + (k % 5) * 30,
                7,
                k as u16,
                ts as u32,
                black_box(&payload),
            )
            .unwrap();
            let r = matches!(jb.pop(ts), legato_dsp::jitter::Playout::Packet { .. });
            k += 1;
            black_box(r)
        })
    });
}

fn rfc4733(c: &mut Criterion) {
    let mut tx = EventSender::new(400, 10).unwrap();
    let mut rx = EventReceiver::new(4000);
    let mut now = 0u64;
    let mut digit = 0u8;
    c.bench_function("rfc4733/sender_receiver_step_20ms", |b| {
        b.iter(|| {
            if !tx.is_active() {
                digit = (digit + 1) % 16;
                tx.start(digit, 800, now, now as u32).unwrap();
            }
            while let Some(p) = tx.poll(now) {
                rx.handle_packet(now, p.timestamp, p.marker, &p.payload.to_bytes())
                    .unwrap();
            }
            rx.handle_timeout(now);
            while let Some(e) = rx.poll_event() {
                black_box(e);
            }
            now += 160;
        })
    });
}

fn stats(c: &mut Criterion) {
    let mut s = ReceiverStats::new(1);
    let mut k = 0u64;
    c.bench_function("stats/receiver_update_per_packet", |b| {
        b.iter(|| {
            s.handle_packet(k * 160 + (k % 3) * 7, k as u16, (k * 160) as u32);
            k += 1;
        })
    });
    c.bench_function("stats/report_block", |b| {
        b.iter(|| black_box(s.report_block(NtpTime(k << 32))))
    });
}

criterion_group!(
    benches, g711, g722, opus, resample, mixer, jitter, rfc4733, stats
);
criterion_main!(benches);
