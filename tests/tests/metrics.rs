//! The Prometheus endpoint of a real legatod, scraped over HTTP during a
//! bridged call: packet and byte counters move with the traffic, legs and
//! sessions match, RPCs are counted by method and status code, malformed
//! packets and event watchers show up, counters survive the legs' removal,
//! other paths answer 404, and there is no endpoint unless asked for.

use std::time::Duration;

use legato_client::EventFilter;
use legato_tests::{
    Daemon, Io, OneWayBridge, Options, Rtp, Scrape, daemon_or_skip, http_get, local_rtp, payload,
    per_backend,
};

/// Packets sent through the bridge.
const PACKETS: u32 = 300;
/// Bytes of each: 12 header + 160 payload.
const PACKET_BYTES: f64 = 172.0;

fn with_metrics(io: Io) -> Options {
    Options::new(io).arg("--metrics-listen").arg("127.0.0.1:0")
}

/// Scrapes until `check` holds (10 s at most), returning the last scrape.
async fn scrape_until(daemon: &Daemon, what: &str, check: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let scrape = daemon.scrape().await.expect("scrape");
        if check(&scrape) {
            return scrape;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not seen within 10 s; last scrape:\n{}",
            scrape.text
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn rpcs(s: &Scrape, method: &str, code: &str) -> f64 {
    s.value(
        "legato_grpc_requests_total",
        &[("method", method), ("code", code)],
    )
}

async fn metrics_follow_a_bridged_call(io: Io) {
    let Some(bridge) = OneWayBridge::start_with(with_metrics(io)).await.unwrap() else {
        return;
    };
    let OneWayBridge {
        daemon,
        client,
        pa,
        pb,
        a,
        b,
    } = bridge;
    let before = daemon.scrape().await.unwrap();
    assert_eq!(before.value("legato_sessions", &[]), 1.0);
    assert_eq!(before.value("legato_legs", &[("state", "CONNECTED")]), 2.0);
    assert_eq!(before.value("legato_legs", &[]), 2.0, "{}", before.text);
    assert_eq!(rpcs(&before, "CreateLeg", "OK"), 2.0);
    assert_eq!(rpcs(&before, "UpdateLeg", "OK"), 2.0);
    assert_eq!(rpcs(&before, "SendMedia", "OK"), 1.0);
    assert_eq!(
        before.value(
            "legato_grpc_request_duration_seconds_count",
            &[("method", "CreateLeg")]
        ),
        2.0
    );
    assert!(
        before.has("legato_netns_udp_receive_buffer_errors_total"),
        "{}",
        before.text
    );
    for shard in ["0", "1"] {
        assert!(before.has("legato_shard_cpu_seconds_total"));
        let u = before.value("legato_shard_loop_utilisation", &[("shard", shard)]);
        assert!((0.0..=1.0).contains(&u), "utilisation {u}");
    }

    // Traffic: PACKETS from a's peer, relayed to b's peer.
    let to = local_rtp(&a);
    let sender = std::thread::spawn(move || {
        for i in 0..PACKETS {
            let h = Rtp {
                marker: i == 0,
                pt: 0,
                seq: i as u16,
                ts: 160 * i,
                ssrc: 0x1234,
            };
            pa.send(to, h, &payload(i)).expect("send");
            if i % 5 == 4 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        pa
    });
    let mut received = 0u32;
    while received < PACKETS {
        match pb.recv().unwrap() {
            Some(_) => received += 1,
            None => break,
        }
    }
    let pa = sender.join().unwrap();
    assert!(
        received >= PACKETS * 9 / 10,
        "only {received} of {PACKETS} relayed"
    );
    let after = scrape_until(&daemon, "packets in", |s| {
        s.value("legato_rtp_packets_total", &[("direction", "in")])
            - before.value("legato_rtp_packets_total", &[("direction", "in")])
            >= f64::from(received)
    })
    .await;
    let delta = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.value(name, labels)
    };
    let packets_in = delta("legato_rtp_packets_total", &[("direction", "in")]);
    let packets_out = delta("legato_rtp_packets_total", &[("direction", "out")]);
    assert!(
        packets_in >= f64::from(received) && packets_in <= f64::from(PACKETS),
        "in: {packets_in}, sent {PACKETS}, relayed {received}"
    );
    assert!(
        packets_out >= f64::from(received) && packets_out <= packets_in,
        "out: {packets_out}, in {packets_in}, relayed {received}"
    );
    assert_eq!(
        delta("legato_rtp_bytes_total", &[("direction", "in")]),
        packets_in * PACKET_BYTES
    );
    assert_eq!(
        delta("legato_rtp_bytes_total", &[("direction", "out")]),
        packets_out * PACKET_BYTES
    );
    assert_eq!(
        delta("legato_packets_dropped_total", &[("reason", "malformed")]),
        0.0
    );

    // A malformed packet (too short for an RTP header) is counted.
    pa.socket.send_to(&[0x80, 0, 1], to).unwrap();
    let malformed = scrape_until(&daemon, "malformed drop", |s| {
        s.value("legato_packets_dropped_total", &[("reason", "malformed")])
            > before.value("legato_packets_dropped_total", &[("reason", "malformed")])
    })
    .await;
    assert_eq!(
        malformed.value("legato_packets_dropped_total", &[("reason", "malformed")])
            - before.value("legato_packets_dropped_total", &[("reason", "malformed")]),
        1.0
    );

    // A failed RPC is counted with its code.
    let err = client.get_leg("no-such-leg").await.unwrap_err();
    assert!(format!("{err}").contains("no such leg"), "{err}");
    let failed = daemon.scrape().await.unwrap();
    assert_eq!(rpcs(&failed, "GetLeg", "NotFound"), 1.0, "{}", failed.text);
    assert_eq!(rpcs(&failed, "GetLeg", "OK"), 0.0);

    // The watcher gauge goes up with a WatchEvents stream and back down once
    // its forwarder notices the stream is gone (it watches for that, and
    // also learns it at the next event).
    let events_before = failed.value("legato_events_published_total", &[]);
    let stream = client.watch_events(EventFilter::new()).await.unwrap();
    scrape_until(&daemon, "one watcher", |s| {
        s.value("legato_event_watchers", &[]) == 1.0
    })
    .await;
    drop(stream);
    // Each probe session publishes events, which would also end the
    // forwarder if it missed the closed stream.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let watched = loop {
        let probe = client.create_session(None).await.unwrap();
        client.delete_session(&probe).await.unwrap();
        let s = daemon.scrape().await.unwrap();
        if s.value("legato_event_watchers", &[]) == 0.0 {
            break s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the watcher gauge stayed up:\n{}",
            s.text
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // The hub publishes the probes' events off the RPC's path: the counter
    // follows soon after, not necessarily by the scrape that saw the gauge
    // drop.
    scrape_until(&daemon, "probe events published", |s| {
        s.value("legato_events_published_total", &[]) > events_before
    })
    .await;
    assert!(
        rpcs(&watched, "WatchEvents", "Cancelled") + rpcs(&watched, "WatchEvents", "OK") >= 1.0
    );

    // Hang up and delete: the legs go, their counters stay.
    client
        .hangup_leg(b.leg_id.as_str(), 200, "done")
        .await
        .unwrap();
    let hung = daemon.scrape().await.unwrap();
    assert_eq!(hung.value("legato_legs", &[("state", "TERMINATED")]), 1.0);
    assert_eq!(hung.value("legato_legs", &[("state", "CONNECTED")]), 1.0);
    let session = a.session_id.clone();
    client.delete_session(&session).await.unwrap();
    let gone = daemon.scrape().await.unwrap();
    assert_eq!(gone.value("legato_sessions", &[]), 0.0);
    assert_eq!(gone.value("legato_legs", &[]), 0.0);
    for (name, labels) in [
        ("legato_rtp_packets_total", [("direction", "in")]),
        ("legato_rtp_packets_total", [("direction", "out")]),
        ("legato_rtp_bytes_total", [("direction", "in")]),
        ("legato_packets_dropped_total", [("reason", "malformed")]),
    ] {
        assert_eq!(
            gone.value(name, &labels),
            malformed.value(name, &labels),
            "{name} {labels:?} changed when the legs were removed"
        );
    }

    // Only /metrics exists.
    let addr = daemon.metrics.unwrap();
    for path in ["/", "/metrics/x", "/nope"] {
        let response = http_get(addr, path).await.unwrap();
        assert_eq!(response.status, 404, "{path}");
    }
}

per_backend!(metrics_follow_a_bridged_call);

/// Listening TCP sockets of process `pid` (from /proc).
fn listening_sockets(pid: u32) -> usize {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd dir")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    ["tcp", "tcp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(format!("/proc/{pid}/net/{f}")).ok())
        .flat_map(|t| t.lines().skip(1).map(str::to_owned).collect::<Vec<_>>())
        .filter(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // st (column 4) 0A is LISTEN; column 10 is the inode.
            cols.get(3) == Some(&"0A") && cols.get(9).is_some_and(|i| inodes.iter().any(|x| x == i))
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_metrics_endpoint_by_default() {
    let daemon = daemon_or_skip!(Options::new(Io::Epoll));
    assert_eq!(
        daemon.metrics, None,
        "the ready line names a metrics address"
    );
    let pid = daemon.pid().unwrap();
    assert_eq!(listening_sockets(pid), 1, "only the gRPC listener");
    let with = daemon_or_skip!(with_metrics(Io::Epoll));
    assert!(with.metrics.is_some());
    assert_eq!(listening_sockets(with.pid().unwrap()), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leg_rpc_errors_are_counted_by_code() {
    let daemon = daemon_or_skip!(with_metrics(Io::Epoll));
    let client = daemon.client().await.unwrap();
    let session = client.create_session(Some("dup")).await.unwrap();
    assert!(client.create_session(Some("dup")).await.is_err());
    assert!(
        client
            .create_leg(legato_client::CreateLeg::incoming(&session, "not sdp"))
            .await
            .is_err()
    );
    let s = daemon.scrape().await.unwrap();
    assert_eq!(rpcs(&s, "CreateSession", "OK"), 1.0, "{}", s.text);
    assert_eq!(rpcs(&s, "CreateSession", "AlreadyExists"), 1.0);
    assert_eq!(rpcs(&s, "CreateLeg", "InvalidArgument"), 1.0);
}

/// Clients that connect and never send a request take the endpoint's few
/// connection slots only until the header timeout (5 s); an oversized
/// request head is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_clients_cannot_hold_the_endpoint() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let daemon = daemon_or_skip!(with_metrics(Io::Epoll));
    let addr = daemon.metrics.unwrap();
    let mut idle = Vec::new();
    for _ in 0..8 {
        idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    // Within 15 s (header timeout 5 s, generous for a loaded machine) a
    // scrape gets through again, while the idle connections stay open on
    // the client side.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if daemon.scrape().await.is_ok() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "idle connections held the endpoint for 15 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The server closed the stalled connections.
    for mut c in idle {
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(15), c.read(&mut buf))
            .await
            .expect("a stalled connection is closed by the server")
            .unwrap_or(0);
        assert_eq!(n, 0);
    }
    let mut big = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let _ = big.write_all(head.as_bytes()).await;
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), big.read_to_end(&mut reply)).await;
    let reply = String::from_utf8_lossy(&reply);
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 431"),
        "{reply}"
    );
}
