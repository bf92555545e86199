//! A bounded storm of hostile requests against a real legatod: random and
//! extreme field values for every RPC that is built, and mutated SDP. No
//! request may be answered INTERNAL or UNKNOWN (both mean a bug), the
//! daemon must keep running, and a real call must still work afterwards.
//! Seeded, so a failure can be replayed with `HOSTILE_SEED`.

use std::time::Duration;

use legato_client::proto;
use legato_tests::{Io, Options, Peer, Rtp, connected_leg, daemon_or_skip, local_rtp, payload};
use proto::media_plane_client::MediaPlaneClient;
use tonic::transport::Channel;

struct Gen {
    rng: fastrand::Rng,
    sessions: Vec<String>,
    legs: Vec<String>,
}

impl Gen {
    fn string(&mut self) -> String {
        match self.rng.u8(0..12) {
            0 => String::new(),
            1 => self.rng.choice(&self.sessions).cloned().unwrap_or_default(),
            2 => self.rng.choice(&self.legs).cloned().unwrap_or_default(),
            3 => format!("{:016x}{:04x}", self.rng.u64(..), self.rng.u16(0..4)),
            4 => "x".repeat(self.rng.usize(100..200_000)),
            5 => "\u{0}\u{7f}\n\t\r ".repeat(self.rng.usize(1..50)),
            6 => "é€😀\u{202e}".repeat(self.rng.usize(1..100)),
            7 => format!("{:x}", self.rng.u128(..)),
            8 => "%s%n%x{}'\"\\".into(),
            _ => (0..self.rng.usize(1..40))
                .map(|_| self.rng.alphanumeric())
                .collect(),
        }
    }

    fn number(&mut self) -> u64 {
        match self.rng.u8(0..6) {
            0 => 0,
            1 => u64::MAX,
            2 => u64::from(u32::MAX),
            3 => self.rng.u64(0..1_000),
            4 => 1 << self.rng.u32(0..64),
            _ => self.rng.u64(..),
        }
    }

    fn enumeration(&mut self) -> i32 {
        match self.rng.u8(0..4) {
            0 => i32::MIN,
            1 => i32::MAX,
            _ => self.rng.i32(-3..12),
        }
    }

    /// A valid offer mutated: lines dropped, duplicated, cut or garbled.
    fn sdp(&mut self, peer: &Peer) -> String {
        if self.rng.u8(0..5) == 0 {
            return self.string();
        }
        let offer = peer.offer();
        let mut lines: Vec<String> = offer.split("\r\n").map(str::to_owned).collect();
        for _ in 0..self.rng.usize(1..6) {
            let i = self.rng.usize(0..lines.len());
            match self.rng.u8(0..9) {
                0 => {
                    lines.remove(i);
                }
                1 => lines.insert(i, lines[i].clone()),
                2 => {
                    let mut cut = self.rng.usize(0..=lines[i].len());
                    while !lines[i].is_char_boundary(cut) {
                        cut -= 1;
                    }
                    lines[i].truncate(cut);
                }
                3 => lines[i].push_str(&self.number().to_string()),
                4 => lines.insert(i, format!("a=rtpmap:{} X/{}", self.number(), self.number())),
                5 => lines.insert(
                    i,
                    format!("m=audio {} RTP/AVP {}", self.number(), self.number()),
                ),
                6 => lines.insert(i, format!("c=IN IP4 {}", self.string())),
                7 => lines.insert(
                    i,
                    format!("a=rtcp:{} IN IP6 ::ffff:{}", self.number(), self.number()),
                ),
                _ => lines[i] = self.string(),
            }
        }
        lines.join(if self.rng.bool() { "\r\n" } else { "\n" })
    }

    fn endpoint(&mut self) -> Option<proto::MediaEndpoint> {
        use proto::media_endpoint::Endpoint;
        match self.rng.u8(0..4) {
            0 => None,
            1 => Some(proto::MediaEndpoint { endpoint: None }),
            2 => Some(proto::MediaEndpoint {
                endpoint: Some(Endpoint::ConferenceId(self.string())),
            }),
            _ => Some(proto::MediaEndpoint {
                endpoint: Some(Endpoint::LegId(self.string())),
            }),
        }
    }
}

async fn one(raw: &mut MediaPlaneClient<Channel>, g: &mut Gen, peer: &Peer) -> tonic::Code {
    let result = match g.rng.u8(0..12) {
        0 => raw
            .create_session(proto::CreateSessionRequest {
                session_id: g.string(),
                idle_timeout_ms: g.number(),
                max_duration_ms: g.number(),
            })
            .await
            .map(|r| g.sessions.push(r.into_inner().session_id)),
        1 => raw
            .delete_session(proto::DeleteSessionRequest {
                session_id: g.string(),
            })
            .await
            .map(drop),
        2 => raw
            .list_sessions(proto::ListSessionsRequest {
                page_size: g.number() as u32,
                page_token: g.string(),
            })
            .await
            .map(drop),
        3 | 4 => {
            let metadata = proto::LegMetadata {
                caller_id: g.string(),
                display_name: g.string(),
                number: g.string(),
                client_type: g.enumeration(),
                custom_data: g.string(),
            };
            raw.create_leg(proto::CreateLegRequest {
                session_id: g.string(),
                direction: g.enumeration(),
                remote_sdp: g.sdp(peer),
                metadata: g.rng.bool().then_some(metadata),
                codecs: (0..g.rng.usize(0..4)).map(|_| g.string()).collect(),
                rtcp_mux: g.rng.bool().then(|| g.rng.bool()),
                strict_source: g.rng.bool().then(|| g.rng.bool()),
                local_direction: g.enumeration(),
                ptime_ms: g
                    .rng
                    .choice([0, 7, 10, 20, 25, 60, 1000, u32::MAX])
                    .unwrap_or(0),
                always_transcode: g.rng.bool(),
            })
            .await
            .map(|r| {
                if let Some(leg) = r.into_inner().leg {
                    g.legs.push(leg.leg_id);
                }
            })
        }
        5 => raw
            .update_leg(proto::UpdateLegRequest {
                leg_id: g.string(),
                remote_sdp: g.rng.bool().then(|| proto::SessionDescription {
                    r#type: g.enumeration(),
                    sdp: g.sdp(peer),
                }),
                create_offer: g.rng.bool(),
                local_direction: g.enumeration(),
                state: g.enumeration(),
            })
            .await
            .map(drop),
        6 => raw
            .hangup_leg(proto::HangupLegRequest {
                leg_id: g.string(),
                code: g.number() as u32,
                reason: g.string(),
            })
            .await
            .map(drop),
        7 => raw
            .get_leg(proto::GetLegRequest { leg_id: g.string() })
            .await
            .map(drop),
        8 => raw
            .list_legs(proto::ListLegsRequest {
                session_id: g.string(),
                page_size: g.number() as u32,
                page_token: g.string(),
            })
            .await
            .map(drop),
        9 => raw
            .send_media(proto::SendMediaRequest {
                from: g.endpoint(),
                to: g.endpoint(),
                gain_db: f32::from_bits(g.number() as u32),
            })
            .await
            .map(drop),
        10 => raw
            .stop_media(proto::StopMediaRequest {
                from: g.endpoint(),
                to: g.endpoint(),
            })
            .await
            .map(drop),
        _ => raw
            .watch_events(proto::WatchEventsRequest {
                session_id: g.string(),
                leg_id: g.string(),
                from_sequence: g.number(),
                strict_resume: g.rng.bool(),
            })
            .await
            .map(drop),
    };
    match result {
        Ok(()) => tonic::Code::Ok,
        Err(status) => {
            assert!(
                !matches!(status.code(), tonic::Code::Internal | tonic::Code::Unknown),
                "{status:?}"
            );
            assert!(
                status.message().len() < 1024,
                "{} bytes",
                status.message().len()
            );
            status.code()
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_break_nothing() {
    let daemon = daemon_or_skip!(Options::new(Io::Epoll).arg("--max-watchers=4096"));
    let seed = std::env::var("HOSTILE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x1e6a70);
    eprintln!("HOSTILE_SEED={seed}");
    let mut raw = MediaPlaneClient::new(
        tonic::transport::Endpoint::from_shared(daemon.endpoint())
            .unwrap()
            .connect()
            .await
            .unwrap(),
    )
    .max_decoding_message_size(64 << 20);
    let mut g = Gen {
        rng: fastrand::Rng::with_seed(seed),
        sessions: Vec::new(),
        legs: Vec::new(),
    };
    let peer = Peer::new().unwrap();
    let mut codes = std::collections::BTreeMap::new();
    for _ in 0..3_000 {
        let code = one(&mut raw, &mut g, &peer).await;
        *codes.entry(format!("{code:?}")).or_insert(0) += 1;
    }
    eprintln!("answers: {codes:?}");
    assert!(codes.get("Ok").copied().unwrap_or(0) > 100, "{codes:?}");

    // Still a working media plane.
    let client = daemon.client().await.unwrap();
    let session = client
        .create_session(Some("after-the-storm"))
        .await
        .unwrap();
    let (pa, pb) = (Peer::new().unwrap(), Peer::new().unwrap());
    let a = connected_leg(&client, &session, &pa).await.unwrap();
    let b = connected_leg(&client, &session, &pb).await.unwrap();
    client
        .send_media(a.leg_id.as_str(), b.leg_id.as_str())
        .await
        .unwrap();
    for seq in 0..5u16 {
        let h = Rtp {
            marker: false,
            pt: 0,
            seq,
            ts: 160 * u32::from(seq),
            ssrc: 4,
        };
        pa.send(local_rtp(&a), h, &payload(u32::from(seq))).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    for _ in 0..5 {
        assert!(pb.recv().unwrap().is_some(), "relay works after the storm");
    }
}
