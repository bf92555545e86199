//! Leg state machine tests without sockets: SDP in, packets in, plans and
//! events out. Includes the proof that the relay path does not allocate.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use super::media::Source;
use super::*;
use crate::engine::TxQueue;
use crate::rtp::RtpHeader;
use crate::sdp::{MediaDirection, PCMA, PCMU};

/// Counts allocations made by the current thread while armed.
struct Counting;

pub(super) static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
/// Bytes allocated minus bytes freed while armed (a structure's heap size
/// when it is built with the counter armed).
pub(super) static LIVE_BYTES: std::sync::atomic::AtomicIsize =
    std::sync::atomic::AtomicIsize::new(0);
thread_local! {
    pub(super) static ARMED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
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
            LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
            ARMED.with(|a| a.set(false));
            if std::env::var_os("ALLOC_TRACE").is_some() {
                eprintln!("{}", std::backtrace::Backtrace::force_capture());
            }
            ARMED.with(|a| a.set(true));
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ARMED.with(std::cell::Cell::get) {
            LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

pub(super) fn params() -> LegParams {
    LegParams {
        rtp_timeout: Duration::from_secs(7),
        rtcp_interval: Duration::from_secs(5),
        early_media_timeout: Duration::from_secs(60),
        relatch_after: Duration::from_secs(2),
        probation_packets: 5,
        own_media: OwnMedia {
            media_address: "127.0.0.1".parse().unwrap(),
            advertised_address: "127.0.0.1".parse().unwrap(),
            port_min: 30_000,
            port_max: 30_999,
        },
        telephone_event: true,
    }
}

fn offer(port: u16, formats: &str, direction: &str) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP {formats}\r\na=rtpmap:101 telephone-event/8000\r\n{direction}\r\n"
    )
}

fn incoming(id: &str, remote_port: u16, now: Instant) -> Leg {
    incoming_with(id, remote_port, now, false)
}

fn incoming_with(id: &str, remote_port: u16, now: Instant, strict_source: bool) -> Leg {
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
                strict_source,
                local_direction: MediaDirection::SendRecv,
                ptime: 20,
                always_transcode: false,
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

pub(super) fn connect(
    leg: &mut Leg,
    now: Instant,
    events: &mut Vec<(Option<Arc<str>>, EventKind)>,
) {
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
    use crate::engine::{SendTo, SockId};
    let now = Instant::now();
    let mut events = Vec::with_capacity(64);
    let mut a = incoming("a", 4000, now);
    let mut b = incoming("b", 4002, now);
    connect(&mut a, now, &mut events);
    connect(&mut b, now, &mut events);
    // The shard's own slab and relay path, a routed to b.
    a.sinks.push(1);
    b.source = Some(Source::Leg(0));
    b.path = MediaPath::Relay;
    a.relays = true;
    let mut legs: Legs<SendTo, ()> = Legs::new(now, SystemTime::now());
    for (slot, leg) in [a, b].into_iter().enumerate() {
        let send = SendTo {
            fd: 3,
            id: SockId(slot as u32),
        };
        legs.slots.push(Some(LegSlot {
            send,
            media: LegMedia::default(),
            leg,
            io: (),
        }));
    }
    let mut tx = TxQueue::new(64);
    let from: SocketAddr = "127.0.0.1:4000".parse().unwrap();
    let mut relay = |seq: u16, tx: &mut TxQueue, events: &mut Vec<_>| {
        let data = packet(seq);
        let t = now + Duration::from_millis(20 * u64::from(seq));
        ARMED.with(|a| a.set(true));
        warm(&legs, &[0]);
        handle_packet(&mut legs, events, t, 0, false, from, &data, tx);
        ARMED.with(|a| a.set(false));
        // What a backend does after handing the batch to the kernel.
        let ready = tx.take_ready();
        assert_eq!(ready.len(), 1, "packet {seq} relayed");
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
    let b = &legs.get(1).unwrap().leg;
    assert_eq!(b.counters.rtp_packets_sent, 1_000);
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
                ptime: 20,
                always_transcode: false,
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

/// RTP with sequence `seq` and SSRC `ssrc`, parsed.
fn rtp(seq: u16, ssrc: u32) -> (Vec<u8>, RtpHeader) {
    let mut p = packet(seq);
    p[8..12].copy_from_slice(&ssrc.to_be_bytes());
    let h = RtpHeader::parse(&p).unwrap();
    (p, h)
}

pub(super) type Events = Vec<(Option<Arc<str>>, EventKind)>;

/// Feeds one packet from `from` at `t`; whether it was accepted.
fn feed(leg: &mut Leg, t: Instant, from: &str, seq: u16, ssrc: u32, events: &mut Events) -> bool {
    let (p, h) = rtp(seq, ssrc);
    leg.handle_rtp(t, from.parse().unwrap(), &h, p.len(), events)
        .is_some()
}

fn switches(events: &Events) -> Vec<(Option<SocketAddr>, SocketAddr, SourceChange)> {
    events
        .iter()
        .filter_map(|(_, e)| match e {
            EventKind::MediaSourceChanged {
                old, new, reason, ..
            } => Some((*old, *new, *reason)),
            _ => None,
        })
        .collect()
}

fn destination(leg: &mut Leg, t: Instant) -> SocketAddr {
    let (_, h) = rtp(1, 1);
    leg.plan_generated(t, &h, PacketKind::Audio)
        .unwrap()
        .destination
}

#[test]
fn stranger_first_never_beats_the_sdp_address() {
    let t0 = Instant::now();
    let mut events = Events::new();
    let mut a = incoming("a", 4000, t0);
    connect(&mut a, t0, &mut events);
    events.clear();
    let sdp: SocketAddr = "127.0.0.1:4000".parse().unwrap();
    // A stranger's first packets are probation: dropped, legato keeps
    // sending to the SDP address.
    for seq in 0..4 {
        assert!(!feed(&mut a, t0, "10.9.9.9:5000", seq, 77, &mut events));
    }
    assert_eq!(a.counters.probation_packets, 4);
    assert_eq!(destination(&mut a, t0), sdp);
    // The SDP address sends: accepted at once, no switch (nothing a peer
    // sees changes).
    assert!(feed(&mut a, t0, "127.0.0.1:4000", 100, 1, &mut events));
    assert_eq!(a.counters.source_switches, 0);
    // The stranger can go on in sequence: it never gets through, not even
    // after the party is silent for much longer than relatch_after.
    for (i, seq) in (4..40).enumerate() {
        let t = t0 + Duration::from_secs(10) + Duration::from_millis(20 * i as u64);
        assert!(!feed(&mut a, t, "10.9.9.9:5000", seq, 77, &mut events));
    }
    assert_eq!(destination(&mut a, t0 + Duration::from_secs(11)), sdp);
    assert_eq!(a.counters.unexpected_source_packets, 36);
    assert!(switches(&events).is_empty());
    assert_eq!(a.view(None, |_| None).latched_rtp, Some(sdp));
}

#[test]
fn sdp_address_takes_over_from_a_learned_source() {
    let t0 = Instant::now();
    let mut events = Events::new();
    let mut a = incoming("a", 4000, t0);
    connect(&mut a, t0, &mut events);
    events.clear();
    let stranger: SocketAddr = "10.9.9.9:5000".parse().unwrap();
    let sdp: SocketAddr = "127.0.0.1:4000".parse().unwrap();
    // Five in-sequence packets: the stranger passes probation (as a NAT'd
    // party would) and is sent to from then on.
    for seq in 0..5 {
        assert!(!feed(&mut a, t0, "10.9.9.9:5000", seq, 77, &mut events));
    }
    assert!(feed(&mut a, t0, "10.9.9.9:5000", 5, 77, &mut events));
    assert_eq!(destination(&mut a, t0), stranger);
    // The SDP address sends: it wins at once and for good.
    assert!(feed(&mut a, t0, "127.0.0.1:4000", 1, 1, &mut events));
    assert_eq!(destination(&mut a, t0), sdp);
    assert!(!feed(&mut a, t0, "10.9.9.9:5000", 6, 77, &mut events));
    assert_eq!(
        switches(&events),
        [
            (None, stranger, SourceChange::Probation),
            (Some(stranger), sdp, SourceChange::SdpAddress)
        ]
    );
    assert_eq!(a.counters.source_switches, 2);
    assert_eq!(a.counters.probation_packets, 5);
    assert_eq!(a.counters.rtp_packets_received, 2);
}

#[test]
fn natted_party_is_learned_and_relearned_only_by_probation() {
    let t0 = Instant::now();
    let mut events = Events::new();
    // The SDP names a private address that never sends.
    let mut a = incoming("a", 4000, t0);
    connect(&mut a, t0, &mut events);
    events.clear();
    let nat: SocketAddr = "192.0.2.1:7000".parse().unwrap();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    // Out of sequence or changing SSRC: probation starts over.
    for (seq, ssrc) in [(0, 5), (1, 5), (3, 5), (4, 6), (5, 6)] {
        assert!(!feed(
            &mut a,
            ms(0),
            "192.0.2.1:7000",
            seq,
            ssrc,
            &mut events
        ));
    }
    assert!(switches(&events).is_empty());
    for seq in 6..9 {
        assert!(!feed(&mut a, ms(0), "192.0.2.1:7000", seq, 6, &mut events));
    }
    // The fifth in a row: learned.
    assert_eq!(switches(&events), [(None, nat, SourceChange::Probation)]);
    assert!(feed(&mut a, ms(20), "192.0.2.1:7000", 9, 6, &mut events));
    // A stranger while the party talks: refused, no probation.
    for seq in 0..10 {
        assert!(!feed(&mut a, ms(40), "203.0.113.5:9", seq, 1, &mut events));
    }
    assert_eq!(a.counters.unexpected_source_packets, 10);
    // The party pauses past relatch_after; a stranger starts probation,
    // and the party's next packet cancels it.
    for seq in 10..14 {
        assert!(!feed(
            &mut a,
            ms(2_100),
            "203.0.113.5:9",
            seq,
            1,
            &mut events
        ));
    }
    assert!(feed(
        &mut a,
        ms(2_120),
        "192.0.2.1:7000",
        10,
        6,
        &mut events
    ));
    assert!(!feed(
        &mut a,
        ms(2_140),
        "203.0.113.5:9",
        14,
        1,
        &mut events
    ));
    assert_eq!(destination(&mut a, ms(2_140)), nat);
    // After another silence, a full probation moves the leg (NAT rebinding).
    for seq in 20..25 {
        assert!(!feed(
            &mut a,
            ms(5_000),
            "192.0.2.1:7002",
            seq,
            6,
            &mut events
        ));
    }
    assert!(feed(
        &mut a,
        ms(5_020),
        "192.0.2.1:7002",
        25,
        6,
        &mut events
    ));
    assert_eq!(switches(&events).len(), 2);
    assert_eq!(a.counters.source_switches, 2);
}

#[test]
fn strict_source_accepts_only_the_sdp_address() {
    let t0 = Instant::now();
    let mut events = Events::new();
    let mut a = incoming_with("a", 4000, t0, true);
    connect(&mut a, t0, &mut events);
    for seq in 0..20 {
        assert!(!feed(&mut a, t0, "10.9.9.9:5000", seq, 77, &mut events));
    }
    assert!(feed(&mut a, t0, "127.0.0.1:4000", 1, 1, &mut events));
    assert_eq!(a.counters.unexpected_source_packets, 20);
    assert_eq!(a.counters.probation_packets, 0);
}

#[test]
fn sdp_pointing_at_legato_is_refused() {
    let now = Instant::now();
    let mut events = Events::new();
    let request = |port: u16| LegRequest {
        incoming: true,
        metadata: Metadata::default(),
        remote_offer: Some(offer(port, "0", "a=sendrecv")),
        codecs: vec![PCMU],
        rtcp_mux: true,
        strict_source: false,
        local_direction: MediaDirection::SendRecv,
        ptime: 20,
        always_transcode: false,
    };
    let new = |port: u16| {
        Leg::new(
            NewLeg {
                id: "l".into(),
                session: Arc::from("s"),
                request: request(port),
                advertised: "127.0.0.1".parse().unwrap(),
                rtp_port: 30_000,
                rtcp_port: 30_001,
                seeds: [1, 2],
            },
            params(),
            now,
            SystemTime::now(),
        )
    };
    for port in [30_000, 30_002, 30_998] {
        let err = new(port).unwrap_err();
        assert!(
            matches!(&err, EngineError::InvalidArgument(m) if m.contains("loop")),
            "{err:?}"
        );
    }
    let mut leg = new(31_000).unwrap().0;
    // And in a re-offer.
    let update = LegUpdate {
        remote_sdp: Some((true, offer(30_010, "0", "a=sendrecv"))),
        ..LegUpdate::default()
    };
    assert!(matches!(
        leg.update(update, now, SystemTime::now(), &mut events),
        Err(EngineError::InvalidArgument(_))
    ));
}

#[test]
fn own_media_with_wildcard_bind() {
    let own = OwnMedia {
        media_address: "0.0.0.0".parse().unwrap(),
        advertised_address: "198.51.100.7".parse().unwrap(),
        port_min: 30_000,
        port_max: 39_999,
    };
    for (addr, own_socket) in [
        ("127.0.0.1:30000", true),
        ("127.1.2.3:39999", true),
        ("198.51.100.7:35000", true),
        ("[::ffff:198.51.100.7]:35000", true),
        ("198.51.100.7:40000", false),
        ("198.51.100.8:35000", false),
        ("127.0.0.1:29999", false),
    ] {
        assert_eq!(own.contains(addr.parse().unwrap()), own_socket, "{addr}");
    }
}

#[test]
fn telephone_event_payload_length_checked() {
    let t0 = Instant::now();
    let mut events = Events::new();
    let mut a = incoming("a", 4000, t0);
    connect(&mut a, t0, &mut events);
    let from: SocketAddr = "127.0.0.1:4000".parse().unwrap();
    for (len, ok) in [(0, false), (3, false), (4, true), (6, false), (8, true)] {
        let mut p = vec![0x80, 101, 0, 1, 0, 0, 0, 0, 0, 0, 0, 5];
        p.extend(std::iter::repeat_n(0u8, len));
        let h = RtpHeader::parse(&p).unwrap();
        assert_eq!(
            a.handle_rtp(t0, from, &h, p.len(), &mut events).is_some(),
            ok,
            "{len}-byte telephone-event payload"
        );
    }
    assert_eq!(a.counters.malformed_packets, 3);
    assert_eq!(a.counters.telephone_event_packets_received, 2);
}

/// What the kernel is told to let through as a leg's latching moves on:
/// open while latching is open, the SDP address and the learned source
/// while a NAT'd party talks, open again while it is silent (so a new
/// mapping can pass probation), and only the SDP address once it sent.
#[test]
fn kernel_filter_follows_latching() {
    let t0 = Instant::now();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    let mut events = Events::new();
    let mut a = incoming("a", 4000, t0);
    connect(&mut a, t0, &mut events);
    let sdp: SocketAddr = "127.0.0.1:4000".parse().unwrap();
    let nat: SocketAddr = "192.0.2.1:7000".parse().unwrap();
    assert_eq!(a.take_peer_change(), Some(KernelFilter::Open));
    assert_eq!(a.take_peer_change(), None, "reported once");
    for seq in 0..5 {
        feed(&mut a, ms(0), "192.0.2.1:7000", seq, 6, &mut events);
    }
    assert_eq!(a.take_peer_change(), Some(KernelFilter::Pair(sdp, nat)));
    assert!(feed(&mut a, ms(20), "192.0.2.1:7000", 5, 6, &mut events));
    assert_eq!(a.take_peer_change(), None, "nothing per packet");
    // Silent past relatch_after: the timer sweep opens the socket.
    assert_eq!(
        a.handle_timeout(ms(1_000), &mut events),
        TimeoutAction::None
    );
    assert_eq!(a.take_peer_change(), None);
    assert_eq!(
        a.handle_timeout(ms(2_100), &mut events),
        TimeoutAction::None
    );
    assert_eq!(a.take_peer_change(), Some(KernelFilter::Open));
    // The party is back: filtered again.
    assert!(feed(&mut a, ms(2_200), "192.0.2.1:7000", 6, 6, &mut events));
    assert_eq!(a.take_peer_change(), Some(KernelFilter::Pair(sdp, nat)));
    // The SDP address sends: it holds the leg, a connected socket.
    assert!(feed(&mut a, ms(2_300), "127.0.0.1:4000", 0, 9, &mut events));
    assert_eq!(a.take_peer_change(), Some(KernelFilter::Only(sdp)));
    a.handle_timeout(ms(10_000), &mut events);
    assert_eq!(a.take_peer_change(), None, "a settled leg stays closed");
}

/// Routing without sockets: a new source replaces the old, StopMedia only
/// removes an existing route, and a torn-down leg leaves no route behind.
#[test]
fn routes_replace_stop_and_detach() {
    let now = Instant::now();
    let mut events = Events::new();
    let mut legs: Legs<(), ()> = Legs::new(now, SystemTime::now());
    for (i, id) in ["a", "b", "c"].into_iter().enumerate() {
        let mut leg = incoming(id, 4000 + 2 * i as u16, now);
        connect(&mut leg, now, &mut events);
        legs.by_id.insert(leg.id.clone(), i as u32);
        legs.slots.push(Some(LegSlot {
            send: (),
            media: LegMedia::default(),
            leg,
            io: (),
        }));
    }
    let leg = |id: &str| Endpoint::Leg(id.into());
    let sinks = |legs: &Legs<(), ()>, slot: u32| legs.get(slot).unwrap().leg.sinks.to_vec();
    let source = |legs: &Legs<(), ()>, slot: u32| legs.get(slot).unwrap().leg.source;
    assert_eq!(
        legs.route(&leg("a"), &leg("c"), 0.0).unwrap().replaced,
        None
    );
    assert_eq!(
        legs.route(&leg("a"), &leg("c"), 0.0).unwrap().replaced,
        None,
        "idempotent"
    );
    assert_eq!(sinks(&legs, 0), [2]);
    // b replaces a as c's source.
    assert_eq!(
        legs.route(&leg("b"), &leg("c"), 0.0).unwrap().replaced,
        Some(leg("a"))
    );
    assert!(sinks(&legs, 0).is_empty());
    assert_eq!(
        (sinks(&legs, 1), source(&legs, 2)),
        (vec![2], Some(Source::Leg(1)))
    );
    assert!(matches!(
        legs.unroute(&leg("a"), &leg("c")),
        Err(EngineError::NotFound(_))
    ));
    assert!(matches!(
        legs.route(&leg("c"), &leg("c"), 0.0),
        Err(EngineError::InvalidArgument(_))
    ));
    // c feeds a and b; tearing c down clears both ends of every route.
    legs.route(&leg("c"), &leg("a"), 0.0).unwrap();
    legs.route(&leg("c"), &leg("b"), 0.0).unwrap();
    legs.detach(2);
    for slot in 0..3 {
        assert!(sinks(&legs, slot).is_empty(), "slot {slot}");
        assert_eq!(source(&legs, slot), None, "slot {slot}");
    }
    legs.route(&leg("a"), &leg("b"), 0.0).unwrap();
    legs.unroute(&leg("a"), &leg("b")).unwrap();
    assert_eq!(source(&legs, 1), None);
}

/// Session limits on a virtual clock: the idle limit fires within one
/// round of checks, a touch postpones it, the lifetime limit fires however
/// busy the session is, and a re-created id does not inherit a limit.
#[test]
fn session_limits_on_a_virtual_clock() {
    let t0 = Instant::now();
    let s = |n: u64| t0 + Duration::from_secs(n);
    let wall = SystemTime::now();
    let legs: Legs<(), ()> = Legs::new(t0, SystemTime::now());
    let mut sessions = Sessions::default();
    let idle = SessionLimits {
        idle_timeout: Some(Duration::from_secs(60)),
        max_duration: None,
    };
    let lifetime = SessionLimits {
        idle_timeout: None,
        max_duration: Some(Duration::from_secs(100)),
    };
    sessions.create("idle".into(), idle, s(0), wall).unwrap();
    sessions
        .create("busy".into(), lifetime, s(0), wall)
        .unwrap();
    sessions
        .create("plain".into(), SessionLimits::default(), s(0), wall)
        .unwrap();
    assert!(matches!(
        sessions.create("idle".into(), idle, s(0), wall),
        Err(EngineError::AlreadyExists(_))
    ));
    // Every check round (CHECK_ROUNDS calls) sees every limited session.
    let round = |sessions: &mut Sessions, at: Instant| {
        let mut all = Vec::new();
        for _ in 0..registry::CHECK_ROUNDS {
            all.extend(sessions.expired(at, &legs));
        }
        all.into_iter()
            .map(|(id, _)| id.to_string())
            .collect::<Vec<_>>()
    };
    sessions.touch("idle", s(30));
    assert!(round(&mut sessions, s(80)).is_empty(), "touched at 30 s");
    assert_eq!(round(&mut sessions, s(95)), ["idle"]);
    sessions.remove("idle");
    // Busy (touched all the time) still ends at its lifetime.
    sessions.touch("busy", s(99));
    assert!(round(&mut sessions, s(99)).is_empty());
    assert_eq!(round(&mut sessions, s(100)), ["busy"]);
    sessions.remove("busy");
    // "idle" again, now without a limit: the old entry does not apply.
    sessions
        .create("idle".into(), SessionLimits::default(), s(200), wall)
        .unwrap();
    assert!(round(&mut sessions, s(10_000)).is_empty());
    assert!(!sessions.has_limits());
    assert_eq!(sessions.len(), 2);
}
