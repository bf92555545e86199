//! RTCP on the wire: each leg sends its own reports (RFC 3550), at the
//! RFC's intervals, with rtcp-mux and with a separate RTCP port; an
//! independent parser (a Python script written from RFC 3550 §6.4) accepts
//! them; a peer's receiver report gives legato the round-trip time, which
//! GetStatistics reports.

use std::io::Write as _;
use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use legato_proto::v1 as proto;
use legato_tests::{
    Io, Options, Peer, Rtp, connected_leg_sdp, daemon_or_skip, local_rtp, per_backend,
};

/// An offer from `peer` for PCMU, with rtcp-mux or with `a=rtcp` naming
/// `rtcp` (a socket of its own).
fn offer(peer: &Peer, rtcp: Option<&UdpSocket>) -> String {
    let port = peer.addr().port();
    let layout = match rtcp {
        None => "a=rtcp-mux\r\n".to_owned(),
        Some(s) => format!("a=rtcp:{}\r\n", s.local_addr().unwrap().port()),
    };
    format!(
        "v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n{layout}a=sendrecv\r\n"
    )
}

async fn leg(client: &legato_client::Client, session: &str, offer: String) -> proto::Leg {
    connected_leg_sdp(client, session, offer).await.unwrap()
}

/// RTCP datagrams (second byte 200-204) received on `socket` until
/// `deadline`, with their arrival times; RTP is ignored.
fn collect_rtcp(socket: &UdpSocket, deadline: Instant) -> Vec<(Instant, Vec<u8>)> {
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 1500];
    while Instant::now() < deadline {
        if let Ok((n, _)) = socket.recv_from(&mut buf)
            && n >= 8
            && (200..=204).contains(&buf[1])
        {
            out.push((Instant::now(), buf[..n].to_vec()));
        }
    }
    out
}

/// Checks the datagrams with an RFC 3550 parser written in Python (not
/// legato's code): every one is a valid compound packet starting with SR
/// or RR and carrying SDES CNAME. Prints one summary line per datagram:
/// `SR <ssrc> <ntp_sec> <rtp_ts> <packets> <octets> <blocks>` or
/// `RR <ssrc> <blocks>`.
fn python_parse(datagrams: &[Vec<u8>]) -> Vec<String> {
    const SCRIPT: &str = r#"
import struct, sys
for line in sys.stdin:
    d = bytes.fromhex(line.strip())
    off, first, cname, summary = 0, True, False, None
    while off < len(d):
        assert len(d) - off >= 4, "truncated header"
        b0, pt, length = struct.unpack_from("!BBH", d, off)
        assert b0 >> 6 == 2, "version"
        count = b0 & 0x1f
        size = (length + 1) * 4
        assert off + size <= len(d), "length beyond datagram"
        if first:
            assert pt in (200, 201), "compound must start with SR or RR"
            assert not (b0 & 0x20), "padding only on the last packet"
        if pt == 200:
            ssrc, ntp_hi, ntp_lo, rtp_ts, packets, octets = struct.unpack_from("!IIIIII", d, off + 4)
            assert size == 28 + 24 * count, "SR size"
            summary = "SR %d %d %d %d %d %d" % (ssrc, ntp_hi, rtp_ts, packets, octets, count)
        elif pt == 201:
            (ssrc,) = struct.unpack_from("!I", d, off + 4)
            assert size == 8 + 24 * count, "RR size"
            summary = "RR %d %d" % (ssrc, count)
        elif pt == 202:
            p = off + 4
            for _ in range(count):
                p += 4
                while True:
                    item = d[p]
                    if item == 0:
                        p = (p + 4) & ~3
                        break
                    ilen = d[p + 1]
                    if item == 1:
                        cname = True
                    p += 2 + ilen
        first = False
        off += size
    assert off == len(d), "trailing bytes"
    assert cname, "no SDES CNAME"
    print(summary)
"#;
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (installed by scripts/test.sh)");
    let mut input = String::new();
    for d in datagrams {
        for b in d {
            input.push_str(&format!("{b:02x}"));
        }
        input.push('\n');
    }
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the Python RTCP parser refused legato's reports: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The middle 32 bits of the NTP timestamp of an SR (for a receiver
/// report's LSR field).
fn sr_middle(sr: &[u8]) -> u32 {
    u32::from_be_bytes([sr[10], sr[11], sr[12], sr[13]])
}

/// A receiver report from `ssrc` about `about`, echoing `lsr` after
/// `dlsr` (1/65536 s), followed by SDES CNAME.
fn receiver_report(ssrc: u32, about: u32, lsr: u32, dlsr: u32) -> Vec<u8> {
    let mut p = vec![0x81, 201, 0, 7];
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&about.to_be_bytes());
    p.extend_from_slice(&[0; 4]); // fraction lost, cumulative lost
    p.extend_from_slice(&[0; 4]); // highest sequence
    p.extend_from_slice(&[0; 4]); // jitter
    p.extend_from_slice(&lsr.to_be_bytes());
    p.extend_from_slice(&dlsr.to_be_bytes());
    // SDES: one chunk, CNAME "peer", end, padded to 4 bytes.
    p.extend_from_slice(&[0x81, 202, 0, 3]);
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&[1, 4, b'p', b'e', b'e', b'r', 0, 0]);
    p
}

async fn reports(io: Io, mux: bool) {
    // A short minimum interval keeps the non-mux run brief; the mux run
    // checks the RFC's default 5 s.
    let options = if mux {
        Options::new(io)
    } else {
        Options::new(io).arg("--rtcp-interval-ms=1000")
    };
    let min_interval = if mux { 5.0 } else { 1.0 };
    let daemon = daemon_or_skip!(options);
    let client = daemon.client().await.unwrap();
    let session = client.create_session(None).await.unwrap();
    let (pa, pb) = (Peer::new().unwrap(), Peer::new().unwrap());
    let rtcp_b = (!mux).then(|| UdpSocket::bind("127.0.0.1:0").unwrap());
    let a = leg(&client, &session, offer(&pa, None)).await;
    let b = leg(&client, &session, offer(&pb, rtcp_b.as_ref())).await;
    assert_eq!(b.rtcp_mux, mux);
    client
        .send_media(a.leg_id.as_str(), b.leg_id.as_str())
        .await
        .unwrap();
    // Peer A talks for the whole test, so leg B sends (SR) and leg A
    // receives (a report block in its RR).
    let target = local_rtp(&a);
    let run = Duration::from_secs_f64(if mux { 13.0 } else { 4.0 });
    let sender = std::thread::spawn(move || {
        let start = Instant::now();
        let mut i = 0u32;
        while start.elapsed() < run {
            let h = Rtp {
                marker: false,
                pt: 0,
                seq: i as u16,
                ts: i * 160,
                ssrc: 0xa11ce,
            };
            pa.send(target, h, &[0xff; 160]).unwrap();
            i += 1;
            std::thread::sleep(Duration::from_millis(20));
        }
        pa
    });
    let socket_b = rtcp_b.as_ref().unwrap_or(&pb.socket);
    let started = Instant::now();
    let got = collect_rtcp(socket_b, started + run);
    let pa = sender.join().unwrap();
    // Leg A's reports reach peer A's RTP port (rtcp-mux).
    let from_a = collect_rtcp(&pa.socket, Instant::now() + Duration::from_millis(300));
    let lines = python_parse(&got.iter().map(|(_, d)| d.clone()).collect::<Vec<_>>());
    eprintln!("leg B sent {} reports: {lines:?}", lines.len());
    // 13 s hold at least two reports even at the longest intervals
    // (first ≤ 3.1 s, then ≤ 6.2 s each).
    assert!(lines.len() >= 2, "reports from leg B: {lines:?}");
    assert!(lines.iter().all(|l| l.starts_with("SR")), "leg B sends: SR");
    // RFC 3550 §6.3: first report after [0.5, 1.5] × half the interval
    // (divided by e - 3/2), then [0.5, 1.5] × the interval / (e - 3/2).
    let comp = std::f64::consts::E - 1.5;
    let first = got[0].0.duration_since(started).as_secs_f64();
    assert!(
        first <= 1.5 * min_interval / 2.0 / comp + 0.5,
        "first report after {first:.2} s"
    );
    for w in got.windows(2) {
        let gap = w[1].0.duration_since(w[0].0).as_secs_f64();
        assert!(
            gap >= 0.5 * min_interval / comp - 0.3 && gap <= 1.5 * min_interval / comp + 0.5,
            "interval {gap:.2} s (minimum {min_interval} s)"
        );
    }
    // The SR's NTP time is now, give or take; its packet count grows.
    let fields: Vec<Vec<u64>> = lines
        .iter()
        .map(|l| l.split(' ').skip(1).map(|x| x.parse().unwrap()).collect())
        .collect();
    let unix_now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let ntp_now = unix_now + 2_208_988_800;
    let last = fields.last().unwrap();
    assert!(
        last[1].abs_diff(ntp_now) < 30,
        "SR NTP seconds {} vs {ntp_now}",
        last[1]
    );
    assert!(last[3] > fields[0][3], "packet count grows: {fields:?}");
    assert_eq!(last[4], last[3] * 160, "octet count of 160-byte payloads");
    assert!(last[5] == 0, "leg B receives nothing: no report block");
    // Leg A receives: its RR carries a report block about peer A.
    let a_lines = python_parse(&from_a.iter().map(|(_, d)| d.clone()).collect::<Vec<_>>());
    if let Some(rr) = a_lines.last() {
        assert!(rr.starts_with("RR"), "{rr}");
        assert!(rr.ends_with(" 1"), "one report block: {rr}");
    }
    // Peer B answers leg B's last SR: legato computes the round trip.
    let (sr_arrival, last_sr) = got.last().unwrap();
    let legato_ssrc = u32::from_be_bytes([last_sr[4], last_sr[5], last_sr[6], last_sr[7]]);
    let dlsr = (sr_arrival.elapsed().as_secs_f64() * 65536.0) as u32;
    let rr = receiver_report(0xb0b, legato_ssrc, sr_middle(last_sr), dlsr);
    let to: SocketAddr = if mux {
        local_rtp(&b)
    } else {
        let a = b.local_rtcp.as_ref().unwrap();
        SocketAddr::new(a.ip.parse().unwrap(), a.port as u16)
    };
    socket_b.send_to(&rr, to).unwrap();
    let mut rtt = None;
    for _ in 0..50 {
        let stats = client.get_statistics(&b.leg_id).await.unwrap();
        if stats.rtt_known {
            rtt = Some(stats.rtt_ms);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rtt = rtt.expect("RTT reported after the peer's receiver report");
    eprintln!("RTT from the peer's RR: {rtt:.1} ms");
    // DLSR says how long the peer held the SR: what remains is loopback
    // and the two processes' scheduling, small on a loaded machine too.
    assert!((0.0..500.0).contains(&rtt), "RTT {rtt} ms");
    let stats_b = client.get_statistics(&b.leg_id).await.unwrap();
    assert!(stats_b.rtcp_reports_sent >= 2 && stats_b.rtcp_reports_received >= 1);
}

async fn rtcp_mux(io: Io) {
    reports(io, true).await;
}

async fn separate_rtcp_port(io: Io) {
    reports(io, false).await;
}

per_backend!(rtcp_mux, separate_rtcp_port);
