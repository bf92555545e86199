//! Admission accounting survives cancelled requests, every string of the
//! API is bounded, errors never echo a huge input, and unknown leg ids are
//! NOT_FOUND however they are made up.

use std::time::Duration;

use legato_client::{Code, CreateLeg, Error, proto};
use legato_tests::{Io, Options, Peer, connected_leg, daemon_or_skip};

fn code<T: std::fmt::Debug>(result: Result<T, Error>) -> Code {
    result.expect_err("the call must fail").code()
}

/// 10,000 CreateSession calls for a taken id, each cancelled by its client
/// at a random moment (before, during or after the shard's refusal): not
/// one session slot may be lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_create_session_loses_no_slot() {
    const MAX: usize = 200;
    let daemon = daemon_or_skip!(Options::new(Io::Epoll).arg(format!("--max-sessions={MAX}")));
    let client = daemon.client().await.unwrap();
    client.create_session(Some("dup")).await.unwrap();
    let mut tasks = Vec::new();
    for worker in 0..20u64 {
        let endpoint = daemon.endpoint();
        tasks.push(tokio::spawn(async move {
            let mut client = legato_client::Client::connect(endpoint.as_str())
                .await
                .unwrap();
            let mut rng = fastrand::Rng::with_seed(worker);
            let (mut cancelled, mut reconnects) = (0u32, 0u32);
            for _ in 0..500 {
                let wait = Duration::from_micros(rng.u64(0..1_500));
                match tokio::time::timeout(wait, client.create_session(Some("dup"))).await {
                    Err(_) => cancelled += 1,
                    Ok(Ok(_)) => panic!("a second session 'dup' was created"),
                    Ok(Err(e)) if e.code() == Code::AlreadyExists => {}
                    // HTTP/2's rapid-reset protection closes a connection
                    // whose client resets many streams: connect again.
                    Ok(Err(_)) => {
                        reconnects += 1;
                        client = legato_client::Client::connect(endpoint.as_str())
                            .await
                            .unwrap();
                    }
                }
            }
            (cancelled, reconnects)
        }));
    }
    let (mut cancelled, mut reconnects) = (0, 0);
    for task in tasks {
        let (c, r) = task.await.unwrap();
        cancelled += c;
        reconnects += r;
    }
    eprintln!(
        "{cancelled} of 10,000 attempts were cancelled by the client ({reconnects} reconnections)"
    );
    assert!(cancelled > 100, "too few cancellations to mean anything");
    // Every one of the other MAX - 1 slots is still there.
    for i in 1..MAX {
        client
            .create_session(Some(&format!("s{i}")))
            .await
            .unwrap_or_else(|e| panic!("session {i} of {MAX}: {e}"));
    }
    assert_eq!(
        code(client.create_session(Some("one-too-many")).await),
        Code::ResourceExhausted
    );
}

/// CreateLeg cancelled at random moments: afterwards every leg unit and
/// every port pair can still be used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_create_leg_loses_no_slot_or_port() {
    const LEGS: usize = 20;
    let mut options = Options::new(Io::Epoll).arg(format!("--max-legs={LEGS}"));
    options.pairs = LEGS as u16;
    let daemon = daemon_or_skip!(options);
    let client = daemon.client().await.unwrap();
    let session = client.create_session(Some("storm")).await.unwrap();
    let mut tasks = Vec::new();
    for worker in 0..10u64 {
        let (client, session) = (daemon.client().await.unwrap(), session.clone());
        let endpoint = daemon.endpoint();
        tasks.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(worker);
            let mut client = client;
            for _ in 0..200 {
                let wait = Duration::from_micros(rng.u64(0..3_000));
                let create = client.create_leg(CreateLeg::outgoing(&session));
                match tokio::time::timeout(wait, create).await {
                    Ok(Ok(leg)) => {
                        let _ = client.hangup_leg(&leg.leg.leg_id, 0, "").await;
                    }
                    Ok(Err(e))
                        if e.code() == Code::ResourceExhausted
                            && e.to_string().contains("limit") => {}
                    Ok(Err(_)) => {
                        client = legato_client::Client::connect(endpoint.as_str())
                            .await
                            .unwrap()
                    }
                    Err(_) => {}
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    // Legs whose creation completed after their client gave up are live
    // legs of the session: deleting it gives their units and ports back.
    client.delete_session(&session).await.unwrap();
    let session = client.create_session(Some("after")).await.unwrap();
    for i in 0..LEGS {
        client
            .create_leg(CreateLeg::outgoing(&session))
            .await
            .unwrap_or_else(|e| panic!("leg {i} of {LEGS}: {e}"));
    }
    assert_eq!(
        code(client.create_leg(CreateLeg::outgoing(&session)).await),
        Code::ResourceExhausted
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_strings_are_invalid_argument() {
    let daemon = daemon_or_skip!(Options::new(Io::Epoll));
    let client = daemon.client().await.unwrap();
    let mut raw = proto::media_plane_client::MediaPlaneClient::new(
        tonic::transport::Endpoint::from_shared(daemon.endpoint())
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    let session = client.create_session(Some("limits")).await.unwrap();
    let peer = Peer::new().unwrap();
    let leg = connected_leg(&client, &session, &peer).await.unwrap();
    let big = "r".repeat(300_000);

    // HangupLeg.reason: 300 KB was once a 300 KB event for every watcher.
    let status = raw
        .hangup_leg(proto::HangupLegRequest {
            leg_id: leg.leg_id.clone(),
            code: 0,
            reason: big.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("reason"), "{}", status.message());
    assert!(status.message().len() < 200);
    // The leg was not hung up.
    let got = client.get_leg(&leg.leg_id).await.unwrap();
    assert_eq!(got.state(), proto::LegState::Connected);

    // Metadata fields, SDP and codec lists.
    let metadata = |f: &dyn Fn(&mut proto::LegMetadata)| {
        let mut m = proto::LegMetadata::default();
        f(&mut m);
        proto::CreateLegRequest {
            session_id: session.clone(),
            direction: proto::Direction::Outgoing.into(),
            metadata: Some(m),
            ..proto::CreateLegRequest::default()
        }
    };
    let long = "x".repeat(257);
    let requests = [
        ("caller_id", metadata(&|m| m.caller_id = long.clone())),
        ("display_name", metadata(&|m| m.display_name = long.clone())),
        ("number", metadata(&|m| m.number = long.clone())),
        (
            "custom_data",
            metadata(&|m| m.custom_data = "c".repeat(8193)),
        ),
        (
            "remote_sdp",
            proto::CreateLegRequest {
                session_id: session.clone(),
                direction: proto::Direction::Incoming.into(),
                remote_sdp: format!("{}a={}\r\n", peer.offer(), "s".repeat(17_000)),
                ..proto::CreateLegRequest::default()
            },
        ),
        (
            "codecs",
            proto::CreateLegRequest {
                session_id: session.clone(),
                direction: proto::Direction::Outgoing.into(),
                codecs: vec!["PCMU".into(); 17],
                ..proto::CreateLegRequest::default()
            },
        ),
        (
            "codec name",
            proto::CreateLegRequest {
                session_id: session.clone(),
                direction: proto::Direction::Outgoing.into(),
                codecs: vec!["P".repeat(33)],
                ..proto::CreateLegRequest::default()
            },
        ),
        (
            "ptime_ms = 25",
            proto::CreateLegRequest {
                session_id: session.clone(),
                direction: proto::Direction::Outgoing.into(),
                ptime_ms: 25,
                ..proto::CreateLegRequest::default()
            },
        ),
        (
            "ptime_ms = 4294967295",
            proto::CreateLegRequest {
                session_id: session.clone(),
                direction: proto::Direction::Outgoing.into(),
                ptime_ms: u32::MAX,
                ..proto::CreateLegRequest::default()
            },
        ),
    ];
    for (field, request) in requests {
        let status = raw.create_leg(request).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{field}");
        assert!(
            status.message().contains(field),
            "{field}: {}",
            status.message()
        );
    }
    // Nothing was created by the refused requests.
    assert_eq!(client.list_legs(Some(&session)).await.unwrap().len(), 1);

    // A valid per-leg ptime_ms is what the leg's SDP asks for; 0 is the
    // daemon's default (20).
    for (ptime_ms, line) in [(40, "a=ptime:40\r\n"), (0, "a=ptime:20\r\n")] {
        let created = client
            .create_leg(CreateLeg::outgoing(&session).ptime_ms(ptime_ms))
            .await
            .unwrap();
        assert!(created.local_sdp.contains(line), "{}", created.local_sdp);
        assert!(created.local_sdp.contains("a=maxptime:60\r\n"));
        client.hangup_leg(&created.leg.leg_id, 0, "").await.unwrap();
    }

    // Ids: a 1 MB made-up id is NOT_FOUND with a short message, never an
    // echo too large for the client to read.
    let huge_id = "f".repeat(1_000_000);
    for result in [
        client.get_leg(&huge_id).await.map(drop),
        client.hangup_leg(&huge_id, 0, "").await.map(drop),
        client
            .send_media(huge_id.as_str(), leg.leg_id.as_str())
            .await
            .map(drop),
    ] {
        let e = result.unwrap_err();
        assert_eq!(e.code(), Code::NotFound, "{e}");
        assert!(e.status_message().unwrap().len() < 200, "{e}");
    }
    let e = client.delete_session(&huge_id).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e}");
    assert!(e.status_message().unwrap().len() < 300, "{e}");
    let status = raw
        .watch_events(proto::WatchEventsRequest {
            session_id: "s".repeat(129),
            ..proto::WatchEventsRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);

    // Above the 1 MiB request cap gRPC itself refuses.
    let status = raw
        .get_leg(proto::GetLegRequest {
            leg_id: "g".repeat(2 << 20),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::OutOfRange, "{status:?}");
    // The daemon is fine.
    client.get_leg(&leg.leg_id).await.unwrap();
}

/// Listings come in pages a default-sized client can read, even when every
/// leg carries the largest metadata allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_are_paged() {
    let mut options = Options::new(Io::Epoll);
    options.pairs = 300;
    let daemon = daemon_or_skip!(options);
    let client = daemon.client().await.unwrap();
    let mut raw = proto::media_plane_client::MediaPlaneClient::new(
        tonic::transport::Endpoint::from_shared(daemon.endpoint())
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    let mut sessions = Vec::new();
    for s in 0..3 {
        sessions.push(
            client
                .create_session(Some(&format!("page-{s}")))
                .await
                .unwrap(),
        );
    }
    let custom = "m".repeat(8 * 1024);
    let mut ids = Vec::new();
    for i in 0..250 {
        let leg = client
            .create_leg(CreateLeg::outgoing(&sessions[i % 3]).custom_data(custom.clone()))
            .await
            .unwrap();
        ids.push(leg.leg.leg_id);
    }
    ids.sort();
    // 250 legs with 8 KiB each are 2 MB: more than one 1 MiB page.
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let reply = raw
            .list_legs(proto::ListLegsRequest {
                page_size: 1000,
                page_token: token,
                ..proto::ListLegsRequest::default()
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        assert!(prost::Message::encoded_len(&reply) <= 1024 * 1024 + 16 * 1024);
        seen.extend(reply.legs.into_iter().map(|l| l.leg_id));
        if reply.next_page_token.is_empty() {
            break;
        }
        token = reply.next_page_token;
    }
    assert!(pages >= 2, "{pages} pages");
    assert_eq!(seen, ids, "every leg once, in id order");
    // The client library follows the pages.
    assert_eq!(client.list_legs(None).await.unwrap().len(), 250);
    // Small pages of sessions.
    let first = raw
        .list_sessions(proto::ListSessionsRequest {
            page_size: 2,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.sessions.len(), 2);
    assert_eq!(first.next_page_token, "page-1");
    let second = raw
        .list_sessions(proto::ListSessionsRequest {
            page_size: 2,
            page_token: first.next_page_token,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.sessions.len(), 1);
    assert!(second.next_page_token.is_empty());
    let status = raw
        .list_legs(proto::ListLegsRequest {
            page_size: 1001,
            ..proto::ListLegsRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
}

/// A made-up leg id that names another shard is NOT_FOUND, not "legs
/// belong to different sessions".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_media_to_made_up_leg_on_another_shard_is_not_found() {
    let daemon = daemon_or_skip!(Options::new(Io::Epoll));
    let client = daemon.client().await.unwrap();
    let session = client.create_session(Some("x")).await.unwrap();
    let peer = Peer::new().unwrap();
    let leg = connected_leg(&client, &session, &peer).await.unwrap();
    let shard = u16::from_str_radix(&leg.leg_id[16..], 16).unwrap();
    let other = format!("{:016x}{:04x}", 0x1234_5678_9abc_def0_u64, 1 - shard);
    for (from, to) in [(&leg.leg_id, &other), (&other, &leg.leg_id)] {
        let e = client
            .send_media(from.as_str(), to.as_str())
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::NotFound, "{e}");
        let e = client
            .stop_media(from.as_str(), to.as_str())
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::NotFound, "{e}");
    }
    // Two real legs of different sessions on different shards: still
    // INVALID_ARGUMENT.
    let mut n = 0;
    let other_leg = loop {
        let s = client.create_session(Some(&format!("y{n}"))).await.unwrap();
        let p = Peer::new().unwrap();
        let l = connected_leg(&client, &s, &p).await.unwrap();
        if l.leg_id[16..] != leg.leg_id[16..] {
            break l;
        }
        n += 1;
    };
    let e = client
        .send_media(leg.leg_id.as_str(), other_leg.leg_id.as_str())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e}");
}

/// Undecodable requests (bad protobuf, a string that is not UTF-8) are the
/// caller's fault: INVALID_ARGUMENT, not INTERNAL. Sent raw from Python
/// grpcio, which does not check what it sends.
#[test]
fn malformed_protobuf_is_invalid_argument() {
    let daemon = daemon_or_skip!(Options::new(Io::Epoll));
    let script = r#"
import sys, grpc
channel = grpc.insecure_channel(sys.argv[1])
for name, body in [
    ("truncated varint", b"\x10\xff"),
    ("bad wire type", b"\x0f"),
    ("length past the end", b"\x0a\x50abc"),
    ("invalid UTF-8", b"\x0a\x02\xff\xfe"),
]:
    call = channel.unary_unary("/legato.v1.MediaPlane/CreateSession",
        request_serializer=lambda x: x, response_deserializer=lambda x: x)
    try:
        call(body, timeout=10)
        print(name, "OK?!")
    except grpc.RpcError as e:
        print(name, e.code().name, e.details())
"#;
    let output = std::process::Command::new("python3")
        .args(["-c", script, &daemon.grpc.to_string()])
        .output()
        .expect("python3 (scripts/test.sh installs grpcio)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    for line in lines {
        assert!(line.contains(" INVALID_ARGUMENT "), "{line}");
    }
}
