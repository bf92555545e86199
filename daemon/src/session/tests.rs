//! Leg state machine tests without sockets: SDP in, packets in, plans and
//! events out. Includes the proof that the relay path does not allocate.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use super::*;
use crate::engine::TxQueue;
use crate::rtp::{RtpHeader, rewrite_header};
use crate::sdp::{MediaDirection, PCMA, PCMU};

/// Counts allocations made by the current thread while armed.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
thread_local! {
    static ARMED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

// SAFETY: forwards every call to the system allocator unchanged.
#[allow(
    unsafe_code,
    reason = "a counting global allocator for the no-allocation test"
)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ARMED.with(std::cell::Cell::get) {
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

fn params() -> LegParams {
    LegParams {
        rtp_timeout: Duration::from_secs(7),
        early_media_timeout: Duration::from_secs(60),
        relatch_after: Duration::from_secs(2),
        telephone_event: true,
        ptime: 20,
    }
}

fn offer(port: u16, formats: &str, direction: &str) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP {formats}\r\na=rtpmap:101 telephone-event/8000\r\n{direction}\r\n"
    )
}

fn incoming(id: &str, remote_port: u16, now: Instant) -> Leg {
    let (leg, answer) = Leg::new(
        NewLeg {
            id: id.into(),
            session: Arc::from("s"),
            request: LegRequest {
                incoming: true,
                metadata: Metadata::default(),
                remote_offer: Some(offer(remote_port, "0 8 101", "a=sendrecv")),
                codecs: vec![PCMU, PCMA],
                rtcp_mux: true,
                strict_source: false,
                local_direction: MediaDirection::SendRecv,
            },
            advertised: "127.0.0.1".parse().unwrap(),
            rtp_port: 30_000,
            rtcp_port: 30_001,
            seeds: [7, 9],
        },
        params(),
        now,
        SystemTime::now(),
    )
    .unwrap();
    assert!(answer.contains("m=audio 30000 RTP/AVP 0 101"), "{answer}");
    leg
}

fn connect(leg: &mut Leg, now: Instant, events: &mut Vec<(Option<Arc<str>>, EventKind)>) {
    let update = LegUpdate {
        state: Some(LegState::Connected),
        ..LegUpdate::default()
    };
    leg.update(update, now, SystemTime::now(), events).unwrap();
}

fn packet(seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5];
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&[0x55; 160]);
    p
}

#[test]
fn relay_path_does_not_allocate() {
    let now = Instant::now();
    let mut events = Vec::with_capacity(64);
    let mut a = incoming("a", 4000, now);
    let mut b = incoming("b", 4002, now);
    connect(&mut a, now, &mut events);
    connect(&mut b, now, &mut events);
    let mut tx = TxQueue::new(64);
    let from: SocketAddr = "127.0.0.1:4000".parse().unwrap();
    let mut relay = |seq: u16, tx: &mut TxQueue, events: &mut Vec<_>| {
        let data = packet(seq);
        let t = now + Duration::from_millis(20 * u64::from(seq));
        ARMED.with(|a| a.set(true));
        let header = RtpHeader::parse(&data).unwrap();
        let kind = a.handle_rtp(t, from, &header, data.len(), events).unwrap();
        let plan = b.plan_forward(t, 0, &header, kind, a.codec()).unwrap();
        let pushed = tx.push(
            3,
            crate::engine::SockId(0),
            plan.destination,
            data.len(),
            |buf| {
                buf.copy_from_slice(&data);
                rewrite_header(
                    buf,
                    plan.marker,
                    plan.payload_type,
                    plan.sequence,
                    plan.timestamp,
                    plan.ssrc,
                );
            },
        );
        ARMED.with(|a| a.set(false));
        assert!(pushed);
        // What a backend does after handing the batch to the kernel.
        let ready = tx.take_ready();
        for &index in &ready {
            tx.release(index);
        }
        tx.restore_ready(ready);
    };
    // The first packet emits FirstAudioPacketReceived (an event with its
    // own allocation-free queue in the engine; here a Vec with capacity).
    relay(0, &mut tx, &mut events);
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for seq in 1..1_000 {
        relay(seq, &mut tx, &mut events);
    }
    assert_eq!(
        ALLOCATIONS.load(Ordering::Relaxed) - before,
        0,
        "allocations on the relay path"
    );
}

#[test]
fn hold_and_unhold_by_reoffer() {
    let now = Instant::now();
    let mut events = Vec::new();
    let mut a = incoming("a", 4000, now);
    connect(&mut a, now, &mut events);
    events.clear();
    let hold = LegUpdate {
        remote_sdp: Some((true, offer(4000, "0", "a=sendonly"))),
        ..LegUpdate::default()
    };
    let answer = a
        .update(hold, now, SystemTime::now(), &mut events)
        .unwrap()
        .unwrap();
    assert!(answer.contains("a=recvonly"), "{answer}");
    assert!(matches!(events.last(), Some((_, EventKind::OnHold { .. }))));
    // No RtpStopped while on hold.
    assert_eq!(
        a.handle_timeout(now + Duration::from_secs(30), &mut events),
        TimeoutAction::None
    );
    assert!(
        !events
            .iter()
            .any(|(_, e)| matches!(e, EventKind::RtpStopped { .. }))
    );
    let unhold = LegUpdate {
        remote_sdp: Some((true, offer(4000, "0", "a=sendrecv"))),
        ..LegUpdate::default()
    };
    a.update(unhold, now, SystemTime::now(), &mut events)
        .unwrap();
    assert!(matches!(
        events.last(),
        Some((_, EventKind::OffHold { .. }))
    ));
    a.handle_timeout(now + Duration::from_secs(8), &mut events);
    assert!(matches!(
        events.last(),
        Some((_, EventKind::RtpStopped { .. }))
    ));
}

#[test]
fn failed_versus_disconnected() {
    let now = Instant::now();
    let mut events = Vec::new();
    let mut out = Leg::new(
        NewLeg {
            id: "o".into(),
            session: Arc::from("s"),
            request: LegRequest {
                incoming: false,
                metadata: Metadata::default(),
                remote_offer: None,
                codecs: vec![PCMU],
                rtcp_mux: true,
                strict_source: false,
                local_direction: MediaDirection::SendRecv,
            },
            advertised: "127.0.0.1".parse().unwrap(),
            rtp_port: 30_002,
            rtcp_port: 30_003,
            seeds: [1, 2],
        },
        params(),
        now,
        SystemTime::now(),
    )
    .unwrap()
    .0;
    out.hangup(0, "", now, &mut events).unwrap();
    assert!(matches!(
        events.last(),
        Some((_, EventKind::Failed { code: 487, .. }))
    ));
    let mut inc = incoming("i", 4000, now);
    inc.hangup(603, "rejected", now, &mut events).unwrap();
    assert!(matches!(
        events.last(),
        Some((_, EventKind::Disconnected { code: 603, .. }))
    ));
    assert!(inc.hangup(0, "", now, &mut events).is_err());
}
