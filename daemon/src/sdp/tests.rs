use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::*;

const LOCAL_V4: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
const LOCAL_V6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));

fn local() -> LocalParams<'static> {
    LocalParams {
        address: LOCAL_V4,
        rtp_port: 30000,
        rtcp_port: 30001,
        rtcp_mux: true,
        direction: MediaDirection::SendRecv,
        codecs: &[PCMU, PCMA],
        telephone_event: true,
        session_id: 42,
        version: 1,
        ptime: 20,
    }
}

fn v4(a: u8, b: u8, c: u8, d: u8, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(a, b, c, d)), port)
}

fn answer_text(offer: &str, local: &LocalParams<'_>) -> Result<(Negotiated, String), SdpError> {
    answer(&parse(offer)?, local)
}

fn syntax_line(result: Result<Sdp, SdpError>) -> (usize, String) {
    match result {
        Err(SdpError::Syntax { line, message }) => (line, message),
        other => panic!("expected a syntax error, got {other:?}"),
    }
}

fn no_acceptable(result: Result<(Negotiated, String), SdpError>) -> String {
    match result {
        Err(SdpError::NoAcceptableMedia(message)) => message,
        other => panic!("expected NoAcceptableMedia, got {other:?}"),
    }
}

// Offers in the style of common equipment (addresses from RFC 5737 / RFC 3849).

const ASTERISK: &str = "v=0\r
o=- 1234567890 1234567890 IN IP4 192.0.2.10\r
s=Asterisk\r
c=IN IP4 192.0.2.10\r
t=0 0\r
m=audio 12000 RTP/AVP 0 8 3 101\r
a=rtpmap:0 PCMU/8000\r
a=rtpmap:8 PCMA/8000\r
a=rtpmap:3 GSM/8000\r
a=rtpmap:101 telephone-event/8000\r
a=fmtp:101 0-16\r
a=ptime:20\r
a=maxptime:150\r
a=sendrecv\r
";

const FREESWITCH: &str = "v=0\r
o=FreeSWITCH 1700000000 1700000001 IN IP4 198.51.100.7\r
s=FreeSWITCH\r
c=IN IP4 198.51.100.7\r
t=0 0\r
m=audio 16384 RTP/AVP 9 102 8 0 101 13\r
a=rtpmap:9 G722/8000\r
a=rtpmap:102 opus/48000/2\r
a=fmtp:102 useinbandfec=1; maxaveragebitrate=30000; maxplaybackrate=48000; ptime=20\r
a=rtpmap:8 PCMA/8000\r
a=rtpmap:0 PCMU/8000\r
a=rtpmap:101 telephone-event/8000\r
a=fmtp:101 0-16\r
a=rtpmap:13 CN/8000\r
a=ptime:20\r
a=sendrecv\r
a=rtcp:16385 IN IP4 198.51.100.7\r
";

const CISCO: &str = "v=0\r
o=CiscoSystemsSIP-GW-UserAgent 4713 1163 IN IP4 203.0.113.5\r
s=SIP Call\r
c=IN IP4 203.0.113.5\r
t=0 0\r
m=audio 17542 RTP/AVP 18 8 101 100\r
c=IN IP4 203.0.113.6\r
a=rtpmap:18 G729/8000\r
a=fmtp:18 annexb=no\r
a=rtpmap:8 PCMA/8000\r
a=rtpmap:101 telephone-event/8000\r
a=fmtp:101 0-15\r
a=rtpmap:100 X-NSE/8000\r
a=fmtp:100 192-194\r
a=ptime:30\r
";

const LINPHONE_V6: &str = "v=0
o=alice 3092 1818 IN IP6 2001:db8::15
s=Talk
c=IN IP6 2001:db8::15
t=0 0
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics
m=audio 7078 RTP/AVP 96 97 98 0 8 101 99 100
a=rtpmap:96 opus/48000/2
a=fmtp:96 useinbandfec=1
a=rtpmap:97 SILK/16000
a=rtpmap:98 speex/16000
a=fmtp:98 vbr=on
a=rtpmap:101 telephone-event/48000
a=rtpmap:99 telephone-event/16000
a=rtpmap:100 telephone-event/8000
a=rtcp-mux
a=rtcp-fb:* trr-int 1000
a=rtcp-fb:* ccm tmmbr
";

const AUDIO_VIDEO: &str = "v=0\r
o=- 20518 0 IN IP4 203.0.113.1\r
s=-\r
c=IN IP4 203.0.113.1\r
t=0 0\r
b=AS:2048\r
m=video 51372 RTP/AVP 96 97\r
a=rtpmap:96 H264/90000\r
a=rtpmap:97 VP8/90000\r
m=audio 49170 RTP/AVP 8 0 101\r
a=rtpmap:101 telephone-event/8000\r
m=image 0 udptl t38\r
";

#[test]
fn direction_table() {
    use MediaDirection::*;
    // (direction, reversed, sends, receives, text)
    let table = [
        (SendRecv, SendRecv, true, true, "sendrecv"),
        (SendOnly, RecvOnly, true, false, "sendonly"),
        (RecvOnly, SendOnly, false, true, "recvonly"),
        (Inactive, Inactive, false, false, "inactive"),
    ];
    for (direction, reversed, sends, receives, text) in table {
        assert_eq!(direction.reversed(), reversed, "{direction:?}");
        assert_eq!(direction.sends(), sends, "{direction:?}");
        assert_eq!(direction.receives(), receives, "{direction:?}");
        assert_eq!(direction.as_str(), text);
        assert_eq!(MediaDirection::from_attribute(text), Some(direction));
        assert_eq!(
            MediaDirection::from_attribute(&text.to_ascii_uppercase()),
            Some(direction)
        );
        assert_eq!(MediaDirection::from_flags(sends, receives), direction);
    }
    assert_eq!(MediaDirection::default(), SendRecv);
    assert_eq!(MediaDirection::from_attribute("sendrecvx"), None);

    // (a, b, a ∩ b)
    let intersections = [
        (SendRecv, SendRecv, SendRecv),
        (SendRecv, SendOnly, SendOnly),
        (SendRecv, RecvOnly, RecvOnly),
        (SendRecv, Inactive, Inactive),
        (SendOnly, RecvOnly, Inactive),
        (SendOnly, SendOnly, SendOnly),
        (RecvOnly, RecvOnly, RecvOnly),
        (Inactive, SendRecv, Inactive),
    ];
    for (a, b, both) in intersections {
        assert_eq!(a.intersect(b), both, "{a:?} ∩ {b:?}");
        assert_eq!(b.intersect(a), both, "{b:?} ∩ {a:?}");
    }
}

#[test]
fn codec_lookup() {
    assert_eq!(codec_by_name("PCMU"), Some(PCMU));
    assert_eq!(codec_by_name("pcmu"), Some(PCMU));
    assert_eq!(codec_by_name("PcmA"), Some(PCMA));
    assert_eq!(codec_by_name("G729"), None);
    assert_eq!(codec_by_name(""), None);
    assert_eq!(PCMU.static_pt, Some(0));
    assert_eq!(PCMA.static_pt, Some(8));
    assert!(PCMU.matches("pcmu", 8000, 1));
    assert!(!PCMU.matches("PCMU", 16000, 1));
    assert!(!PCMU.matches("PCMU", 8000, 2));
}

#[test]
fn parses_asterisk_offer() {
    let sdp = parse(ASTERISK).unwrap();
    assert_eq!(sdp.origin.username, "-");
    assert_eq!(sdp.origin.session_id, "1234567890");
    assert_eq!(sdp.origin.version, "1234567890");
    assert_eq!(sdp.origin.address, "192.0.2.10");
    assert_eq!(sdp.session_name, "Asterisk");
    assert_eq!(
        sdp.connection,
        Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)))
    );
    assert_eq!(sdp.media.len(), 1);
    let media = &sdp.media[0];
    assert_eq!(media.kind, "audio");
    assert_eq!((media.port, media.port_count), (12000, 1));
    assert_eq!(media.proto, "RTP/AVP");
    assert_eq!(media.formats, ["0", "8", "3", "101"]);
    assert_eq!(media.payload_types().collect::<Vec<_>>(), [0, 8, 3, 101]);
    assert_eq!(media.rtpmaps.len(), 4);
    assert_eq!(
        media.rtpmap(101),
        Some(&RtpMap {
            pt: 101,
            encoding: "telephone-event".to_owned(),
            clock_rate: 8000,
            channels: 1,
        })
    );
    assert_eq!(media.fmtp(101), Some("0-16"));
    assert_eq!(media.direction, Some(MediaDirection::SendRecv));
    assert_eq!(media.ptime, Some(20));
    assert!(!media.rtcp_mux);
    assert_eq!(media.rtcp, None);
}

#[test]
fn answers_asterisk_offer() {
    let (negotiated, text) = answer_text(ASTERISK, &local()).unwrap();
    assert_eq!(
        negotiated,
        Negotiated {
            media_index: 0,
            codec: PCMU,
            payload_type: 0,
            local_payload_type: 0,
            telephone_event_pt: Some(101),
            local_telephone_event_pt: Some(101),
            remote_rtp: v4(192, 0, 2, 10, 12000),
            remote_rtcp: v4(192, 0, 2, 10, 12001),
            rtcp_mux: false,
            remote_direction: MediaDirection::SendRecv,
            local_direction: MediaDirection::SendRecv,
            send_ptime_ms: 20,
            recv_ptime_ms: 20,
            telephone_event_rate: Some(8000),
            receive_formats: ReceiveFormats::one(0, PCMU),
            remote_ptime: Some(20),
            remote_maxptime: Some(150),
            remote_on_hold_address: false,
            opus: None,
        }
    );
    assert_eq!(
        text,
        "v=0\r\n\
         o=legato 42 1 IN IP4 192.0.2.1\r\n\
         s=legato\r\n\
         c=IN IP4 192.0.2.1\r\n\
         t=0 0\r\n\
         m=audio 30000 RTP/AVP 0 101\r\n\
         a=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\n\
         a=fmtp:101 0-16\r\n\
         a=ptime:20\r\n\
         a=maxptime:60\r\n\
         a=rtcp:30001\r\n\
         a=sendrecv\r\n"
    );
}

#[test]
fn answers_real_world_offers() {
    struct Case {
        name: &'static str,
        offer: &'static str,
        local: LocalParams<'static>,
        codec: CodecSpec,
        pt: u8,
        telephone_event: Option<u8>,
        rtp: SocketAddr,
        rtcp: SocketAddr,
        rtcp_mux: bool,
        ptime: Option<u32>,
        m_line: &'static str,
    }
    let v6 = |port| SocketAddr::new("2001:db8::15".parse().unwrap(), port);
    let cases = [
        Case {
            name: "asterisk, PCMA preferred",
            offer: ASTERISK,
            local: LocalParams {
                codecs: &[PCMA, PCMU],
                ..local()
            },
            codec: PCMA,
            pt: 8,
            telephone_event: Some(101),
            rtp: v4(192, 0, 2, 10, 12000),
            rtcp: v4(192, 0, 2, 10, 12001),
            rtcp_mux: false,
            ptime: Some(20),
            m_line: "m=audio 30000 RTP/AVP 8 101",
        },
        Case {
            name: "freeswitch, a=rtcp with address",
            offer: FREESWITCH,
            local: local(),
            codec: PCMU,
            pt: 0,
            telephone_event: Some(101),
            rtp: v4(198, 51, 100, 7, 16384),
            rtcp: v4(198, 51, 100, 7, 16385),
            rtcp_mux: false,
            ptime: Some(20),
            m_line: "m=audio 30000 RTP/AVP 0 101",
        },
        Case {
            name: "cisco, media-level c= and G729 first",
            offer: CISCO,
            local: local(),
            codec: PCMA,
            pt: 8,
            telephone_event: Some(101),
            rtp: v4(203, 0, 113, 6, 17542),
            rtcp: v4(203, 0, 113, 6, 17543),
            rtcp_mux: false,
            ptime: Some(30),
            m_line: "m=audio 30000 RTP/AVP 8 101",
        },
        Case {
            name: "cisco, telephone-event disabled locally",
            offer: CISCO,
            local: LocalParams {
                telephone_event: false,
                ..local()
            },
            codec: PCMA,
            pt: 8,
            telephone_event: None,
            rtp: v4(203, 0, 113, 6, 17542),
            rtcp: v4(203, 0, 113, 6, 17543),
            rtcp_mux: false,
            ptime: Some(30),
            m_line: "m=audio 30000 RTP/AVP 8",
        },
        Case {
            name: "linphone, IPv6, rtcp-mux, telephone-event at 8000 only",
            offer: LINPHONE_V6,
            local: LocalParams {
                address: LOCAL_V6,
                ..local()
            },
            codec: PCMU,
            pt: 0,
            telephone_event: Some(100),
            rtp: v6(7078),
            rtcp: v6(7078),
            rtcp_mux: true,
            ptime: None,
            m_line: "m=audio 30000 RTP/AVP 0 100",
        },
        Case {
            name: "linphone, rtcp-mux declined locally",
            offer: LINPHONE_V6,
            local: LocalParams {
                address: LOCAL_V6,
                rtcp_mux: false,
                ..local()
            },
            codec: PCMU,
            pt: 0,
            telephone_event: Some(100),
            rtp: v6(7078),
            rtcp: v6(7079),
            rtcp_mux: false,
            ptime: None,
            m_line: "m=audio 30000 RTP/AVP 0 100",
        },
    ];
    for case in cases {
        let (negotiated, text) =
            answer_text(case.offer, &case.local).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(negotiated.codec, case.codec, "{}", case.name);
        assert_eq!(negotiated.payload_type, case.pt, "{}", case.name);
        assert_eq!(negotiated.local_payload_type, case.pt, "{}", case.name);
        assert_eq!(
            negotiated.telephone_event_pt, case.telephone_event,
            "{}",
            case.name
        );
        assert_eq!(negotiated.remote_rtp, case.rtp, "{}", case.name);
        assert_eq!(negotiated.remote_rtcp, case.rtcp, "{}", case.name);
        assert_eq!(negotiated.rtcp_mux, case.rtcp_mux, "{}", case.name);
        assert_eq!(negotiated.remote_ptime, case.ptime, "{}", case.name);
        assert!(
            text.contains(&format!("{}\r\n", case.m_line)),
            "{}: {text}",
            case.name
        );
        assert_eq!(
            text.contains("a=rtcp-mux\r\n"),
            case.rtcp_mux,
            "{}",
            case.name
        );
        assert_eq!(
            text.contains("a=rtcp:30001\r\n"),
            !case.rtcp_mux,
            "{}",
            case.name
        );
        if case.local.address.is_ipv6() {
            assert!(text.contains("c=IN IP6 2001:db8::1\r\n"), "{}", case.name);
        }
        // The answer itself is valid SDP with the offer's stream count.
        let reparsed = parse(&text).unwrap();
        assert_eq!(
            reparsed.media.len(),
            parse(case.offer).unwrap().media.len(),
            "{}",
            case.name
        );
    }
}

#[test]
fn answer_echoes_telephone_event_fmtp() {
    let (_, text) = answer_text(CISCO, &local()).unwrap();
    assert!(text.contains("a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n"));
    // Without fmtp in the offer the answer has none either (RFC 4733 default 0-15 applies).
    let (_, text) = answer_text(AUDIO_VIDEO, &local()).unwrap();
    assert!(text.contains("a=rtpmap:101 telephone-event/8000\r\n"));
    assert!(!text.contains("a=fmtp"));
}

#[test]
fn declines_video_and_image_with_port_zero() {
    let (negotiated, text) = answer_text(AUDIO_VIDEO, &local()).unwrap();
    assert_eq!(negotiated.media_index, 1);
    assert_eq!(negotiated.codec, PCMU);
    assert_eq!(negotiated.payload_type, 0);
    assert_eq!(negotiated.remote_rtp, v4(203, 0, 113, 1, 49170));
    let answer = parse(&text).unwrap();
    let lines: Vec<_> = answer
        .media
        .iter()
        .map(|m| (m.kind.as_str(), m.port, m.proto.as_str(), m.formats.clone()))
        .collect();
    assert_eq!(
        lines,
        [
            ("video", 0, "RTP/AVP", vec!["96".to_owned()]),
            (
                "audio",
                30000,
                "RTP/AVP",
                vec!["0".to_owned(), "101".to_owned()]
            ),
            ("image", 0, "udptl", vec!["t38".to_owned()]),
        ]
    );
}

#[test]
fn second_audio_stream_is_declined() {
    let offer = "v=0\r\no=- 1 1 IN IP4 203.0.113.1\r\ns=-\r\nc=IN IP4 203.0.113.1\r\nt=0 0\r\n\
                 m=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n\
                 m=audio 4002 RTP/AVP 8\r\n\
                 m=audio 4004 RTP/AVP 0\r\n";
    let (negotiated, text) = answer_text(offer, &local()).unwrap();
    assert_eq!(negotiated.media_index, 1);
    assert_eq!(negotiated.codec, PCMA);
    assert_eq!(negotiated.remote_rtp, v4(203, 0, 113, 1, 4002));
    let ports: Vec<_> = parse(&text).unwrap().media.iter().map(|m| m.port).collect();
    assert_eq!(ports, [0, 30000, 0]);
    assert!(text.contains("m=audio 0 RTP/SAVP 0\r\n"));
}

#[test]
fn refuses_unusable_offers_with_a_reason() {
    let header = "v=0\r\no=- 1 1 IN IP4 203.0.113.1\r\ns=-\r\nc=IN IP4 203.0.113.1\r\nt=0 0\r\n";
    // (media section, words the message must contain)
    let cases: &[(&str, &[&str])] = &[
        (
            "m=audio 4000 RTP/SAVP 0 8\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:abc\r\n",
            &["SRTP (RTP/SAVP) is not supported"],
        ),
        (
            "m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\na=rtpmap:111 opus/48000/2\r\na=fingerprint:sha-256 AB:CD\r\n",
            &["SRTP (UDP/TLS/RTP/SAVPF) is not supported"],
        ),
        (
            "m=audio 4000 RTP/AVP 18 4 96\r\na=rtpmap:96 opus/48000/2\r\n",
            &[
                "no common codec",
                "offered: G729, G723, opus/48000/2",
                "supported: PCMU, PCMA",
            ],
        ),
        (
            "m=audio 4000 RTP/AVP 96\r\n",
            &["no common codec", "96 without rtpmap"],
        ),
        (
            "m=audio 4000 RTP/AVP 97\r\na=rtpmap:97 PCMU/16000\r\n",
            &["no common codec", "PCMU/16000"],
        ),
        (
            "m=audio 0 RTP/AVP 0\r\n",
            &["audio stream is disabled (port 0)"],
        ),
        (
            "m=audio 4000 TCP/MRCPv2 1\r\n",
            &["transport TCP/MRCPv2 is not supported"],
        ),
        (
            "m=video 4000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n",
            &["no audio stream offered"],
        ),
        ("", &["no audio stream offered"]),
        (
            "m=audio 4000 RTP/SAVP 0\r\nm=audio 4002 RTP/AVP 18\r\n",
            &[
                "m= line 1: SRTP (RTP/SAVP)",
                "; m= line 2: no common codec (offered: G729;",
            ],
        ),
    ];
    for (media, words) in cases {
        let message = no_acceptable(answer_text(&format!("{header}{media}"), &local()));
        for word in *words {
            assert!(
                message.contains(word),
                "{media:?}: {message:?} lacks {word:?}"
            );
        }
    }
    let error = answer_text(&format!("{header}{}", cases[0].0), &local()).unwrap_err();
    assert_eq!(
        error.to_string(),
        "no acceptable media: SRTP (RTP/SAVP) is not supported"
    );
}

#[test]
fn no_common_codec_when_local_list_empty() {
    let message = no_acceptable(answer_text(
        ASTERISK,
        &LocalParams {
            codecs: &[],
            ..local()
        },
    ));
    assert!(message.contains("supported: none"), "{message}");
}

#[test]
fn hold_offers() {
    use MediaDirection::*;
    let offer = |session_attr: &str, address: &str, media_attr: &str| {
        format!(
            "v=0\r\no=- 1 2 IN IP4 203.0.113.1\r\ns=-\r\nc=IN IP4 {address}\r\nt=0 0\r\n{session_attr}\
             m=audio 4000 RTP/AVP 0\r\n{media_attr}"
        )
    };
    // (offer, local direction, remote direction, answered direction, hold address)
    #[rustfmt::skip]
    let cases = [
        (offer("", "203.0.113.1", "a=sendonly\r\n"), SendRecv, SendOnly, RecvOnly, false),
        (offer("a=sendonly\r\n", "203.0.113.1", ""), SendRecv, SendOnly, RecvOnly, false),
        (offer("a=sendonly\r\n", "203.0.113.1", "a=sendrecv\r\n"), SendRecv, SendRecv, SendRecv, false),
        (offer("", "203.0.113.1", "a=inactive\r\n"), SendRecv, Inactive, Inactive, false),
        (offer("", "203.0.113.1", "a=recvonly\r\n"), SendRecv, RecvOnly, SendOnly, false),
        (offer("", "0.0.0.0", ""), SendRecv, SendRecv, SendRecv, true),
        (offer("", "0.0.0.0", "a=sendonly\r\n"), SendRecv, SendOnly, RecvOnly, true),
        // legato holding the remote while the remote holds legato.
        (offer("", "203.0.113.1", "a=sendonly\r\n"), SendOnly, SendOnly, Inactive, false),
        (offer("", "203.0.113.1", ""), RecvOnly, SendRecv, RecvOnly, false),
    ];
    for (text, local_direction, remote, answered, hold_address) in cases {
        let local = LocalParams {
            direction: local_direction,
            ..local()
        };
        let (negotiated, answer) = answer_text(&text, &local).unwrap();
        assert_eq!(negotiated.remote_direction, remote, "{text}");
        assert_eq!(negotiated.local_direction, answered, "{text}");
        assert_eq!(negotiated.remote_on_hold_address, hold_address, "{text}");
        assert!(
            answer.ends_with(&format!("a={}\r\n", answered.as_str())),
            "{answer}"
        );
    }
}

#[test]
fn ipv4_hold_address_is_accepted_on_ipv6_leg() {
    let offer = "v=0\r\no=- 1 2 IN IP6 2001:db8::2\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    let local = LocalParams {
        address: LOCAL_V6,
        ..local()
    };
    let (negotiated, _) = answer_text(offer, &local).unwrap();
    assert!(negotiated.remote_on_hold_address);
}

#[test]
fn dynamic_payload_type_pcmu() {
    let offer = "v=0\r\no=- 1 1 IN IP4 203.0.113.1\r\ns=-\r\nc=IN IP4 203.0.113.1\r\nt=0 0\r\n\
                 m=audio 4000 RTP/AVP 112 113\r\na=rtpmap:112 pcmu/8000\r\na=rtpmap:113 TELEPHONE-EVENT/8000\r\n";
    let (negotiated, text) = answer_text(offer, &local()).unwrap();
    assert_eq!(negotiated.codec, PCMU);
    assert_eq!(negotiated.payload_type, 112);
    assert_eq!(negotiated.telephone_event_pt, Some(113));
    assert!(text.contains("m=audio 30000 RTP/AVP 112 113\r\na=rtpmap:112 PCMU/8000\r\n"));
    assert!(text.contains("a=rtpmap:113 telephone-event/8000\r\n"));
}

#[test]
fn static_payload_type_with_contrary_rtpmap_follows_rtpmap() {
    // PT 0 remapped to PCMA: the rtpmap wins over the static assignment.
    let offer = "v=0\r\no=- 1 1 IN IP4 203.0.113.1\r\ns=-\r\nc=IN IP4 203.0.113.1\r\nt=0 0\r\n\
                 m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMA/8000\r\n";
    let (negotiated, _) = answer_text(offer, &local()).unwrap();
    assert_eq!((negotiated.codec, negotiated.payload_type), (PCMA, 0));
}

#[test]
fn rtcp_attribute_and_port_counts() {
    let offer = "v=0\r\no=- 1 1 IN IP4 126.16.64.4\r\ns=-\r\nc=IN IP4 126.16.64.4\r\nt=0 0\r\n\
                 m=audio 49170/2 RTP/AVP 0\r\na=rtcp:53020 IN IP4 126.16.64.5\r\n";
    let sdp = parse(offer).unwrap();
    assert_eq!((sdp.media[0].port, sdp.media[0].port_count), (49170, 2));
    assert_eq!(
        sdp.media[0].rtcp,
        Some((53020, Some(IpAddr::V4(Ipv4Addr::new(126, 16, 64, 5)))))
    );
    let (negotiated, _) = answer(&sdp, &local()).unwrap();
    assert_eq!(negotiated.remote_rtp, v4(126, 16, 64, 4, 49170));
    assert_eq!(negotiated.remote_rtcp, v4(126, 16, 64, 5, 53020));

    // Port only: the connection address applies.
    let offer = offer.replace("a=rtcp:53020 IN IP4 126.16.64.5", "a=rtcp:53020");
    let (negotiated, _) = answer_text(&offer, &local()).unwrap();
    assert_eq!(negotiated.remote_rtcp, v4(126, 16, 64, 4, 53020));

    // Top port: no room for RTCP at port + 1.
    let offer = offer
        .replace("49170/2", "65535")
        .replace("a=rtcp:53020\r\n", "");
    let (negotiated, _) = answer_text(&offer, &local()).unwrap();
    assert_eq!(negotiated.remote_rtcp, v4(126, 16, 64, 4, 65535));
}

#[test]
fn address_family_mismatch() {
    let error = answer_text(LINPHONE_V6, &local()).unwrap_err();
    assert!(matches!(
        error,
        SdpError::AddressFamily {
            remote: "IP6",
            local: "IP4"
        }
    ));
    assert_eq!(
        error.to_string(),
        "address family mismatch: remote uses IP6, legato uses IP4"
    );
    // An a=rtcp address of the other family is refused too.
    let offer = "v=0\r\no=- 1 1 IN IP4 203.0.113.1\r\ns=-\r\nc=IN IP4 203.0.113.1\r\nt=0 0\r\n\
                 m=audio 4000 RTP/AVP 0\r\na=rtcp:4001 IN IP6 2001:db8::9\r\n";
    assert!(matches!(
        answer_text(offer, &local()),
        Err(SdpError::AddressFamily { .. })
    ));
}

#[test]
fn missing_connection_address() {
    let offer = "v=0\r\no=- 1 1 IN IP4 203.0.113.1\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    let error = answer_text(offer, &local()).unwrap_err();
    assert!(matches!(error, SdpError::Missing(_)), "{error:?}");
    assert_eq!(
        error.to_string(),
        "missing connection address (c= line) for the audio stream"
    );
    // A media-level c= is enough.
    let offer = offer.replace("RTP/AVP 0\r\n", "RTP/AVP 0\r\nc=IN IP4 203.0.113.9\r\n");
    let (negotiated, _) = answer_text(&offer, &local()).unwrap();
    assert_eq!(negotiated.remote_rtp, v4(203, 0, 113, 9, 4000));
}

#[test]
fn tolerates_whitespace_and_line_endings() {
    let offer = "\n\nv=0 \no=- 1 1 IN IP4 203.0.113.1  \r\ns=\r\nc=IN IP4 203.0.113.1\t\nt=0 0\n\
                 i=an info line\nu=http://example.com\ne=noc@example.com\nb=AS:64\nk=prompt\nz=0 0\nr=7d 1h 0 25h\n\
                 x=unknown line type\nm=audio 4000 RTP/AVP 0  8 \r\nb=TIAS:64000\na=rtpmap:8 PCMA/8000/1\n\
                 a=x-custom:1 2 3\na=\na=ptime:nonsense\n\n\r\n  \n";
    let sdp = parse(offer).unwrap();
    assert_eq!(sdp.session_name, "");
    let media = &sdp.media[0];
    assert_eq!(media.formats, ["0", "8"]);
    assert_eq!(media.rtpmap(8).map(|map| map.channels), Some(1));
    assert_eq!(media.ptime, None);
    let (negotiated, _) = answer(&sdp, &local()).unwrap();
    assert_eq!(negotiated.codec, PCMU);
}

#[test]
fn rtpmap_channels_and_session_level_ptime() {
    let offer = "v=0\r\no=- 1 1 IN IP4 203.0.113.1\r\ns=-\r\nc=IN IP4 203.0.113.1\r\nt=0 0\r\na=ptime:40\r\n\
                 m=audio 4000 RTP/AVP 96 97\r\na=rtpmap:96 L16/8000/2\r\na=rtpmap:97 PCMA/8000\r\n";
    let sdp = parse(offer).unwrap();
    assert_eq!(sdp.ptime, Some(40));
    assert_eq!(sdp.media[0].rtpmap(96).map(|map| map.channels), Some(2));
    assert_eq!(sdp.media[0].rtpmap(97).map(|map| map.channels), Some(1));
    let (negotiated, _) = answer(&sdp, &local()).unwrap();
    assert_eq!((negotiated.codec, negotiated.payload_type), (PCMA, 97));
    assert_eq!(negotiated.remote_ptime, Some(40));
    assert_eq!(negotiated.send_ptime_ms, 40);
}

#[test]
fn ipv6_connection_and_non_rtp_formats() {
    let offer = "v=0\no=- 1 1 IN IP6 ::1\ns=-\nc=IN IP6 ::1\nt=0 0\n\
                 m=audio 5004 RTP/AVP 0\n\
                 m=application 5060 UDP/BFCP *\n\
                 m=image 0 udptl t38\n\
                 m=video 0 RTP/AVP\n";
    let sdp = parse(offer).unwrap();
    assert_eq!(sdp.connection, Some(IpAddr::V6(Ipv6Addr::LOCALHOST)));
    assert_eq!(sdp.media[1].formats, ["*"]);
    assert_eq!(sdp.media[1].payload_types().count(), 0);
    assert!(sdp.media[3].formats.is_empty());
    let local = LocalParams {
        address: IpAddr::V6(Ipv6Addr::LOCALHOST),
        ..local()
    };
    let (negotiated, text) = answer(&sdp, &local).unwrap();
    assert_eq!(negotiated.remote_rtp, "[::1]:5004".parse().unwrap());
    assert!(text.contains("m=application 0 UDP/BFCP *\r\n"));
    assert!(text.contains("m=video 0 RTP/AVP 0\r\n"));
    assert_eq!(parse(&text).unwrap().media.len(), 4);
}

#[test]
fn multicast_connection_suffix() {
    let offer = "v=0\r\no=- 1 1 IN IP4 203.0.113.1\r\ns=-\r\nc=IN IP4 233.252.0.1/127/3\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    assert_eq!(
        parse(offer).unwrap().connection,
        Some(IpAddr::V4(Ipv4Addr::new(233, 252, 0, 1)))
    );
}

#[test]
fn syntax_errors_name_the_line() {
    let valid = "v=0\r\no=- 1 1 IN IP4 203.0.113.1\r\ns=-\r\nc=IN IP4 203.0.113.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    // (text to replace in `valid`, replacement, line, message fragment)
    #[rustfmt::skip]
    let cases = [
        ("v=0", "v=1", 1, "unsupported sdp version \"1\""),
        ("v=0", "o=x", 1, "sdp must start with v=0"),
        ("v=0", "version 0", 1, "expected <type>=<value>, got \"version 0\""),
        ("s=-", "s=-\r\nv=0", 4, "v= line after the first line"),
        ("o=- 1 1 IN IP4 203.0.113.1", "o=- 1 1 IN IP4", 2, "o= line must be"),
        ("s=-", "s=-\r\no=- 2 2 IN IP4 192.0.2.1", 4, "duplicate o= line"),
        ("s=-", "s=-\r\ns=again", 4, "duplicate s= line"),
        ("c=IN IP4 203.0.113.1", "c=IN IP4 example.com", 4, "invalid IP4 address \"example.com\""),
        ("c=IN IP4 203.0.113.1", "c=IN IP4 2001:db8::1", 4, "invalid IP4 address"),
        ("c=IN IP4 203.0.113.1", "c=IN IP6 203.0.113.1", 4, "invalid IP6 address"),
        ("c=IN IP4 203.0.113.1", "c=IN IPX 203.0.113.1", 4, "unsupported address type \"IPX\""),
        ("c=IN IP4 203.0.113.1", "c=ATM NSAP 47.0091", 4, "unsupported network type \"ATM\""),
        ("c=IN IP4 203.0.113.1", "c=IN IP4", 4, "c= line must be"),
        ("c=IN IP4 203.0.113.1", "c=IN IP4 256.0.0.1", 4, "invalid IP4 address"),
        ("m=audio 4000 RTP/AVP 0", "m=audio 70000 RTP/AVP 0", 6, "invalid port \"70000\""),
        ("m=audio 4000 RTP/AVP 0", "m=audio -1 RTP/AVP 0", 6, "invalid port \"-1\""),
        ("m=audio 4000 RTP/AVP 0", "m=audio +4000 RTP/AVP 0", 6, "invalid port \"+4000\""),
        ("m=audio 4000 RTP/AVP 0", "m=audio 4000/0 RTP/AVP 0", 6, "invalid port count \"0\""),
        ("m=audio 4000 RTP/AVP 0", "m=audio 4000 RTP/AVP 128", 6, "invalid payload type \"128\""),
        ("m=audio 4000 RTP/AVP 0", "m=audio 4000 RTP/AVP PCMU", 6, "invalid payload type \"PCMU\""),
        ("m=audio 4000 RTP/AVP 0", "m=audio 4000 RTP/AVP", 6, "m= line has no formats"),
        ("m=audio 4000 RTP/AVP 0", "m=audio 4000", 6, "m= line must be"),
        // A line appended after the m= line.
        ("m=audio 4000 RTP/AVP 0", "m=audio 4000 RTP/AVP 0\r\no=- 1 1 IN IP4 192.0.2.1", 7, "o= line inside a media section"),
        ("m=audio 4000 RTP/AVP 0", "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0", 7, "a=rtpmap must be"),
        ("m=audio 4000 RTP/AVP 0", "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU", 7, "a=rtpmap must be"),
        ("m=audio 4000 RTP/AVP 0", "m=audio 4000 RTP/AVP 0\r\na=rtpmap:200 PCMU/8000", 7, "invalid payload type \"200\" in a=rtpmap"),
        ("m=audio 4000 RTP/AVP 0", "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/0", 7, "invalid clock rate \"0\""),
        ("m=audio 4000 RTP/AVP 0", "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000/0", 7, "invalid channel count \"0\""),
        ("m=audio 4000 RTP/AVP 0", "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000/1/1", 7, "a=rtpmap must be"),
        ("m=audio 4000 RTP/AVP 0", "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 /8000", 7, "a=rtpmap must be"),
        ("m=audio 4000 RTP/AVP 0", "m=audio 4000 RTP/AVP 0\r\na=fmtp:x 0-15", 7, "invalid payload type \"x\" in a=fmtp"),
        ("m=audio 4000 RTP/AVP 0", "m=audio 4000 RTP/AVP 0\r\na=fmtp", 7, "a=fmtp has no payload type"),
        ("m=audio 4000 RTP/AVP 0", "m=audio 4000 RTP/AVP 0\r\na=rtcp:99999", 7, "invalid port \"99999\" in a=rtcp"),
        ("m=audio 4000 RTP/AVP 0", "m=audio 4000 RTP/AVP 0\r\na=rtcp:4001 IN IP4", 7, "a=rtcp must be"),
        ("m=audio 4000 RTP/AVP 0", "m=audio 4000 RTP/AVP 0\r\na=rtcp:4001 IN IP4 nowhere", 7, "invalid IP4 address \"nowhere\""),
        ("m=audio 4000 RTP/AVP 0", "m=audio 4000 RTP/AVP 0\r\nab=cd", 7, "expected <type>=<value>"),
        ("m=audio 4000 RTP/AVP 0", "m=audio 4000 RTP/AVP 0\r\n=x", 7, "expected <type>=<value>"),
        ("m=audio 4000 RTP/AVP 0", "m=audio 4000 RTP/AVP 0\r\n1=x", 7, "expected <type>=<value>"),
        ("m=audio 4000 RTP/AVP 0", "m=audio 4000 RTP/AVP 0\r\na=fmtp:0 a\rm=video", 7, "control character"),
        ("m=audio 4000 RTP/AVP 0", "m=audio 4000 RTP/AVP 0\r\na=tool:x\0", 7, "control character"),
    ];
    for (from, to, line, fragment) in cases {
        let text = valid.replacen(from, to, 1);
        let (got_line, message) = syntax_line(parse(&text));
        assert_eq!(got_line, line, "{to:?}: {message}");
        assert!(
            message.contains(fragment),
            "{to:?}: {message:?} lacks {fragment:?}"
        );
    }
    let error = parse(&valid.replace("70000", "x").replace("4000", "70000")).unwrap_err();
    assert_eq!(
        error.to_string(),
        "line 6: invalid port \"70000\" in m= line"
    );
}

#[test]
fn long_tokens_are_clipped_in_errors() {
    let long = "9".repeat(5000);
    let text = format!("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nm=audio {long} RTP/AVP 0\r\n");
    let message = parse(&text).unwrap_err().to_string();
    assert!(message.len() < 100, "{message}");
    assert!(message.contains("...\""), "{message}");
}

#[test]
fn missing_required_lines() {
    // (text, what is missing)
    let cases = [
        ("", "v= line"),
        ("\r\n\r\n", "v= line"),
        ("v=0\r\n", "o= line"),
        ("v=0\r\ns=-\r\n", "o= line"),
        ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\n", "s= line"),
        (
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio 1 RTP/AVP 0\r\n",
            "s= line",
        ),
    ];
    for (text, missing) in cases {
        match parse(text) {
            Err(SdpError::Missing(what)) => assert_eq!(what, missing, "{text:?}"),
            other => panic!("{text:?}: expected Missing({missing}), got {other:?}"),
        }
    }
}

#[test]
fn size_limits() {
    let header = "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\n";
    let big = format!("{header}a=x:{}\r\n", "y".repeat(MAX_SDP_BYTES));
    assert!(matches!(parse(&big), Err(SdpError::TooLarge)));

    let lines = format!("{header}{}", "a=x\r\n".repeat(MAX_SDP_LINES));
    assert!(matches!(parse(&lines), Err(SdpError::TooManyLines)));

    // Exactly at the line limit is fine; blank lines do not count.
    let at_limit = format!(
        "{header}{}\r\n\r\n\r\n",
        "a=x\r\n".repeat(MAX_SDP_LINES - 3)
    );
    assert!(parse(&at_limit).is_ok());
    assert!(SdpError::TooLarge.to_string().contains("65536"));
}

#[test]
fn offer_text() {
    let text = build_offer(&local()).unwrap();
    assert_eq!(
        text,
        "v=0\r\n\
         o=legato 42 1 IN IP4 192.0.2.1\r\n\
         s=legato\r\n\
         c=IN IP4 192.0.2.1\r\n\
         t=0 0\r\n\
         m=audio 30000 RTP/AVP 0 8 101\r\n\
         a=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\n\
         a=fmtp:101 0-16\r\n\
         a=ptime:20\r\n\
         a=maxptime:60\r\n\
         a=rtcp:30001\r\n\
         a=rtcp-mux\r\n\
         a=sendrecv\r\n"
    );
    let text = build_offer(&LocalParams {
        address: LOCAL_V6,
        rtcp_mux: false,
        telephone_event: false,
        ptime: 0,
        direction: MediaDirection::SendOnly,
        codecs: &[PCMA],
        version: 7,
        ..local()
    })
    .unwrap();
    assert_eq!(
        text,
        "v=0\r\n\
         o=legato 42 7 IN IP6 2001:db8::1\r\n\
         s=legato\r\n\
         c=IN IP6 2001:db8::1\r\n\
         t=0 0\r\n\
         m=audio 30000 RTP/AVP 8\r\n\
         a=rtpmap:8 PCMA/8000\r\n\
         a=maxptime:60\r\n\
         a=rtcp:30001\r\n\
         a=sendonly\r\n"
    );
}

#[test]
fn offer_dynamic_payload_types() {
    // Distinct dynamic codecs (distinct clock rates) get 96, 97... skipping 101.
    let dynamic: Vec<CodecSpec> = (0..8)
        .map(|n| CodecSpec {
            name: "X-TEST",
            kind: CodecKind::Pcmu,
            static_pt: None,
            clock_rate: 8000 + n,
            audio_rate: 8000 + n,
            channels: 1,
        })
        .collect();
    let mut codecs = vec![PCMU, OPUS, PCMU];
    codecs.extend_from_slice(&dynamic);
    let text = build_offer(&LocalParams {
        codecs: &codecs,
        telephone_event: false,
        ..local()
    })
    .unwrap();
    assert!(
        text.contains("m=audio 30000 RTP/AVP 0 96 97 98 99 100 102 103 104 105\r\n"),
        "{text}"
    );
    assert!(text.contains("a=rtpmap:96 opus/48000/2\r\n"));
    assert!(text.contains("a=rtpmap:102 X-TEST/8004\r\n"));

    // 31 dynamic payload types exist besides 101.
    let many: Vec<CodecSpec> = (0..32)
        .map(|n| CodecSpec {
            name: "X-TEST",
            kind: CodecKind::Pcmu,
            static_pt: None,
            clock_rate: 8000 + n,
            audio_rate: 8000 + n,
            channels: 1,
        })
        .collect();
    let fits = build_offer(&LocalParams {
        codecs: &many[..31],
        ..local()
    })
    .unwrap();
    assert!(fits.contains("a=rtpmap:127 X-TEST/8030\r\n"));
    assert!(matches!(
        build_offer(&LocalParams {
            codecs: &many,
            ..local()
        }),
        Err(SdpError::InvalidLocalParams(_))
    ));
    assert!(matches!(
        build_offer(&LocalParams {
            codecs: &[],
            ..local()
        }),
        Err(SdpError::InvalidLocalParams("no codecs"))
    ));
}

#[test]
fn local_port_zero_is_misuse() {
    for params in [
        LocalParams {
            rtp_port: 0,
            ..local()
        },
        LocalParams {
            rtcp_port: 0,
            ..local()
        },
    ] {
        assert!(matches!(
            build_offer(&params),
            Err(SdpError::InvalidLocalParams("local port 0"))
        ));
        assert!(matches!(
            answer_text(ASTERISK, &params),
            Err(SdpError::InvalidLocalParams("local port 0"))
        ));
    }
}

#[test]
fn offer_answer_round_trip() {
    use MediaDirection::*;
    let alice_v4 = local();
    let bob_v4 = LocalParams {
        address: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 2)),
        rtp_port: 40000,
        rtcp_port: 40001,
        session_id: 9,
        version: 3,
        ..local()
    };
    // (offerer, answerer, codec, te, mux, offerer direction, answerer direction)
    let cases = [
        (alice_v4, bob_v4, PCMU, Some(101), true, SendRecv, SendRecv),
        (
            alice_v4,
            LocalParams {
                codecs: &[PCMA, PCMU],
                rtcp_mux: false,
                ..bob_v4
            },
            PCMA,
            Some(101),
            false,
            SendRecv,
            SendRecv,
        ),
        (
            LocalParams {
                direction: SendOnly,
                telephone_event: false,
                ..alice_v4
            },
            bob_v4,
            PCMU,
            None,
            true,
            SendOnly,
            RecvOnly,
        ),
        (
            LocalParams {
                direction: Inactive,
                ..alice_v4
            },
            LocalParams {
                telephone_event: false,
                ..bob_v4
            },
            PCMU,
            None,
            true,
            Inactive,
            Inactive,
        ),
        (
            LocalParams {
                address: LOCAL_V6,
                codecs: &[OPUS, PCMA],
                ..alice_v4
            },
            LocalParams {
                address: "2001:db8::2".parse().unwrap(),
                codecs: &[OPUS],
                ..bob_v4
            },
            OPUS,
            // telephone-event/48000, after opus at 96 (101 is /8000's).
            Some(97),
            true,
            SendRecv,
            SendRecv,
        ),
    ];
    for (alice, bob, codec, te, mux, alice_direction, bob_direction) in cases {
        let offer_text = build_offer(&alice).unwrap();
        let offer = parse(&offer_text).unwrap();
        let (at_bob, answer_text) = answer(&offer, &bob).unwrap();
        let at_alice = apply_answer(&parse(&answer_text).unwrap(), &alice).unwrap();

        let rtcp_port = |params: &LocalParams<'_>| {
            if mux {
                params.rtp_port
            } else {
                params.rtcp_port
            }
        };
        assert_eq!(at_bob.codec, codec);
        assert_eq!(at_alice.codec, codec);
        assert_eq!(at_bob.payload_type, at_alice.local_payload_type);
        assert_eq!(at_alice.payload_type, at_bob.local_payload_type);
        assert_eq!(at_bob.telephone_event_pt, te);
        assert_eq!(at_alice.telephone_event_pt, te);
        assert_eq!(at_alice.local_telephone_event_pt, te);
        assert_eq!((at_bob.rtcp_mux, at_alice.rtcp_mux), (mux, mux));
        assert_eq!(
            at_bob.remote_rtp,
            SocketAddr::new(alice.address, alice.rtp_port)
        );
        assert_eq!(
            at_bob.remote_rtcp,
            SocketAddr::new(alice.address, rtcp_port(&alice))
        );
        assert_eq!(
            at_alice.remote_rtp,
            SocketAddr::new(bob.address, bob.rtp_port)
        );
        assert_eq!(
            at_alice.remote_rtcp,
            SocketAddr::new(bob.address, rtcp_port(&bob))
        );
        assert_eq!(at_alice.local_direction, alice_direction);
        assert_eq!(at_bob.remote_direction, alice_direction);
        assert_eq!(at_bob.local_direction, bob_direction);
        assert_eq!(at_alice.remote_direction, bob_direction);
        assert_eq!(
            (at_bob.remote_ptime, at_alice.remote_ptime),
            (Some(20), Some(20))
        );
        assert_eq!((at_bob.send_ptime_ms, at_alice.send_ptime_ms), (20, 20));
        assert_eq!(
            (at_bob.remote_maxptime, at_alice.remote_maxptime),
            (Some(60), Some(60))
        );
        assert_eq!((at_bob.media_index, at_alice.media_index), (0, 0));
        assert!(!at_bob.remote_on_hold_address && !at_alice.remote_on_hold_address);
    }
}

#[test]
fn apply_answer_cases() {
    let alice = LocalParams {
        codecs: &[OPUS, PCMU, PCMA],
        ..local()
    };
    let header = "v=0\r\no=- 1 1 IN IP4 203.0.113.1\r\ns=-\r\nc=IN IP4 203.0.113.1\r\nt=0 0\r\n";
    let apply = |media: &str| apply_answer(&parse(&format!("{header}{media}")).unwrap(), &alice);

    // Renumbered dynamic payload types: send with the answer's, receive ours.
    let negotiated = apply(
        "m=audio 5000 RTP/AVP 111 110\r\na=rtpmap:111 OPUS/48000/2\r\na=rtpmap:110 telephone-event/48000\r\n\
         a=rtcp-mux\r\na=recvonly\r\n",
    )
    .unwrap();
    assert_eq!(negotiated.codec, OPUS);
    assert_eq!(
        (negotiated.payload_type, negotiated.local_payload_type),
        (111, 96)
    );
    assert_eq!(
        (
            negotiated.telephone_event_pt,
            negotiated.local_telephone_event_pt
        ),
        (Some(110), Some(97))
    );
    assert_eq!(negotiated.telephone_event_rate, Some(48000));
    assert!(negotiated.rtcp_mux);
    assert_eq!(negotiated.remote_rtcp, v4(203, 0, 113, 1, 5000));
    assert_eq!(negotiated.remote_direction, MediaDirection::RecvOnly);

    // No rtpmap: recognised by legato's payload type numbers.
    let negotiated = apply("m=audio 5000 RTP/AVP 8 101\r\n").unwrap();
    assert_eq!((negotiated.codec, negotiated.payload_type), (PCMA, 8));
    assert_eq!(negotiated.telephone_event_pt, Some(101));
    assert!(!negotiated.rtcp_mux);
    assert_eq!(negotiated.remote_rtcp, v4(203, 0, 113, 1, 5001));

    // First answered format legato offered wins, whatever legato's preference.
    let negotiated = apply("m=audio 5000 RTP/AVP 18 0 8\r\n").unwrap();
    assert_eq!(negotiated.codec, PCMU);
    assert_eq!(negotiated.telephone_event_pt, None);

    // telephone-event and rtcp-mux count only if offered.
    let quiet = LocalParams {
        telephone_event: false,
        rtcp_mux: false,
        ..alice
    };
    let text = format!(
        "{header}m=audio 5000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=rtcp-mux\r\n"
    );
    let negotiated = apply_answer(&parse(&text).unwrap(), &quiet).unwrap();
    assert_eq!(negotiated.telephone_event_pt, None);
    assert!(!negotiated.rtcp_mux);

    assert!(matches!(
        apply("m=audio 0 RTP/AVP 0\r\n"),
        Err(SdpError::Rejected)
    ));
    assert_eq!(
        apply("m=audio 0 RTP/AVP 0\r\n").unwrap_err().to_string(),
        "remote rejected the audio stream (port 0 in answer)"
    );
    let message = match apply("m=audio 5000 RTP/AVP 18 97\r\na=rtpmap:97 opus/48000/1\r\n") {
        Err(SdpError::NoAcceptableMedia(message)) => message,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        message,
        "answer has no codec legato offered (answered: G729, opus/48000; offered: opus, PCMU, PCMA)"
    );
    assert!(matches!(
        apply("m=audio 5000 RTP/SAVP 0\r\n"),
        Err(SdpError::NoAcceptableMedia(_))
    ));
    assert!(matches!(
        apply("m=video 5000 RTP/AVP 96\r\n"),
        Err(SdpError::NoAcceptableMedia(_))
    ));
    assert!(matches!(
        apply_answer(&parse(LINPHONE_V6).unwrap(), &alice),
        Err(SdpError::AddressFamily { .. })
    ));
}

/// SplitMix64: a small deterministic generator for the fuzz-style tests.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform-ish in `0..n`; `n` must be non-zero.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

/// Fragments that tend to reach interesting parser states.
const TOKENS: &[&str] = &[
    "\r\n",
    "\n",
    "\r",
    " ",
    "\t",
    "=",
    ":",
    "/",
    "0",
    "127",
    "128",
    "255",
    "256",
    "65535",
    "65536",
    "4294967295",
    "4294967296",
    "18446744073709551616",
    "-1",
    "+1",
    "m=audio ",
    "m=audio 0 RTP/AVP 0",
    "m=audio 1 RTP/SAVP 0",
    "m=video 2 RTP/AVP 96",
    "a=rtpmap:",
    "a=rtpmap:96 PCMU/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:",
    "a=rtcp:",
    "a=rtcp:65535 IN IP6 ::",
    "a=rtcp-mux",
    "a=sendonly",
    "a=inactive",
    "a=ptime:",
    "a=maxptime:",
    "a=rtpmap:96 opus/48000/2",
    "a=rtpmap:97 telephone-event/48000",
    "a=fmtp:96 stereo=1;maxaveragebitrate=",
    "useinbandfec=1;",
    "a=rtpmap:9 G722/8000",
    "c=IN IP4 0.0.0.0",
    "c=IN IP6 ::1",
    "c=IN IP4 ",
    "IN IP6 ",
    "o=- 1 1 IN IP4 1.1.1.1",
    "v=0",
    "s=",
    "/2",
    "//",
    "é",
    "\u{0}",
    "\u{7f}",
    "😀",
    "::",
    "0.0.0.0",
    "audio",
    "RTP/AVP",
];

fn mutate(rng: &mut Rng, seed: &str) -> String {
    let mut bytes = seed.as_bytes().to_vec();
    for _ in 0..=rng.below(4) {
        let len = bytes.len();
        match rng.below(8) {
            0 if len > 0 => {
                let at = rng.below(len);
                bytes[at] = rng.next() as u8;
            }
            1 => {
                let at = rng.below(len + 1);
                let token = rng.pick(TOKENS).as_bytes();
                bytes.splice(at..at, token.iter().copied());
            }
            2 if len > 0 => {
                let start = rng.below(len);
                let end = (start + rng.below(64)).min(len);
                bytes.drain(start..end);
            }
            3 => bytes.truncate(rng.below(len + 1)),
            4 | 5 => {
                // Line-level surgery: duplicate, drop or swap lines.
                let text = String::from_utf8_lossy(&bytes).into_owned();
                let mut lines: Vec<&str> = text.split('\n').collect();
                let a = rng.below(lines.len());
                let b = rng.below(lines.len());
                match rng.below(3) {
                    0 => lines.insert(b, lines[a]),
                    1 => {
                        lines.remove(a);
                    }
                    _ => lines.swap(a, b),
                }
                bytes = lines.join("\n").into_bytes();
            }
            6 => {
                // Replace a digit run with an extreme number.
                if let Some(at) = (0..len)
                    .map(|_| rng.below(len))
                    .find(|&i| bytes[i].is_ascii_digit())
                {
                    let mut end = at;
                    while end < bytes.len() && bytes[end].is_ascii_digit() {
                        end += 1;
                    }
                    let number =
                        rng.pick(&["0", "65535", "65536", "127", "128", "99999999999999999999"]);
                    bytes.splice(at..end, number.bytes());
                }
            }
            _ => {
                let at = rng.below(len + 1);
                let noise: Vec<u8> = (0..rng.below(16)).map(|_| rng.next() as u8).collect();
                bytes.splice(at..at, noise);
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Runs everything downstream of a successful parse and checks what legato writes;
/// returns how many answers it produced.
fn exercise(text: &str) -> usize {
    let Ok(sdp) = parse(text) else { return 0 };
    let mut answers = 0;
    let v6 = LocalParams {
        address: LOCAL_V6,
        rtcp_mux: false,
        telephone_event: false,
        codecs: &[PCMA, OPUS, PCMU],
        ..local()
    };
    let all = LocalParams {
        codecs: &[OPUS, G722, PCMU, PCMA],
        ptime: 30,
        ..local()
    };
    for params in [local(), v6, all] {
        if let Ok((negotiated, answer_text)) = answer(&sdp, &params) {
            check_negotiated(&negotiated);
            // Every line legato writes is clean and CRLF-terminated.
            assert!(answer_text.ends_with("\r\n"));
            for line in answer_text.trim_end_matches("\r\n").split("\r\n") {
                assert!(
                    !line.chars().any(|c| c.is_control() && c != '\t'),
                    "{line:?} in {answer_text:?}"
                );
            }
            let reparsed = parse(&answer_text).unwrap_or_else(|e| {
                panic!("answer does not parse: {e}\n{answer_text}\nfor\n{text}")
            });
            assert_eq!(reparsed.media.len(), sdp.media.len());
            let ours = &reparsed.media[negotiated.media_index];
            assert_eq!(ours.port, params.rtp_port);
            assert_eq!(ours.payload_types().next(), Some(negotiated.payload_type));
            answers += 1;
        }
        if let Ok(negotiated) = apply_answer(&sdp, &params) {
            check_negotiated(&negotiated);
        }
    }
    answers
}

/// What must hold of every negotiation, whatever the input.
fn check_negotiated(negotiated: &Negotiated) {
    assert!(is_valid_ptime(negotiated.send_ptime_ms), "{negotiated:?}");
    if negotiated.codec.kind == CodecKind::Opus {
        assert!(OPUS_FRAME_MS.contains(&negotiated.send_ptime_ms));
        assert!(negotiated.opus.is_some());
    }
    assert_eq!(
        negotiated.receive_formats.first(),
        Some((negotiated.local_payload_type, negotiated.codec))
    );
    assert_eq!(
        negotiated.telephone_event_rate,
        negotiated
            .telephone_event_pt
            .map(|_| negotiated.codec.clock_rate)
    );
}

#[test]
fn mutated_sdp_never_panics() {
    let offer = build_offer(&local()).unwrap();
    let (_, answer) = answer_text(ASTERISK, &local()).unwrap();
    let seeds = [
        ASTERISK,
        FREESWITCH,
        CISCO,
        LINPHONE_V6,
        AUDIO_VIDEO,
        offer.as_str(),
        answer.as_str(),
    ];
    let mut rng = Rng(0x1e9a_705d);
    let (mut parsed, mut answered) = (0, 0);
    for round in 0..30_000 {
        let seed = seeds[round % seeds.len()];
        let text = mutate(&mut rng, seed);
        if parse(&text).is_ok() {
            parsed += 1;
        }
        answered += exercise(&text);
    }
    // The mutations must leave enough SDP valid to reach negotiation.
    assert!(parsed > 3_000, "only {parsed} mutated bodies parsed");
    assert!(answered > 3_000, "only {answered} answers");
}

#[test]
fn random_text_never_panics() {
    let mut rng = Rng(7);
    for _ in 0..5_000 {
        let mut text = String::from("v=0\n");
        for _ in 0..rng.below(40) {
            if rng.below(4) == 0 {
                text.push(char::from_u32(rng.next() as u32 % 0x11_0000).unwrap_or('\u{fffd}'));
            } else {
                text.push_str(rng.pick(TOKENS));
            }
        }
        let _ = exercise(&text);
    }
}

#[test]
fn multicast_and_broadcast_addresses_are_refused() {
    let offer = |c: &str, extra: &str| {
        format!(
            "v=0\r\no=- 1 1 IN IP4 203.0.113.1\r\ns=-\r\nc=IN IP4 {c}\r\nt=0 0\r\n\
             m=audio 4000 RTP/AVP 0\r\n{extra}"
        )
    };
    for (c, extra, fragment) in [
        (
            "233.252.0.1/127",
            "",
            "connection address 233.252.0.1 is a multicast address",
        ),
        ("224.0.0.1", "", "multicast"),
        (
            "255.255.255.255",
            "",
            "connection address 255.255.255.255 is the broadcast address",
        ),
        (
            "203.0.113.1",
            "a=rtcp:4001 IN IP4 239.1.1.1\r\n",
            "a=rtcp address 239.1.1.1 is a multicast",
        ),
        (
            "203.0.113.1",
            "a=rtcp:4001 IN IP4 0.0.0.0\r\n",
            "a=rtcp address 0.0.0.0 is unspecified",
        ),
    ] {
        let error = answer_text(&offer(c, extra), &local()).unwrap_err();
        assert!(
            matches!(error, SdpError::NotUnicast { .. }),
            "{c}: {error:?}"
        );
        assert!(error.to_string().contains(fragment), "{error}");
    }
    // The hold convention stays accepted.
    let (negotiated, _) = answer_text(&offer("0.0.0.0", ""), &local()).unwrap();
    assert!(negotiated.remote_on_hold_address);
}

// ---- G.722, Opus, telephone-event rates, ptime, payload type switching ----

const SESSION: &str =
    "v=0\r\no=- 1 1 IN IP4 203.0.113.1\r\ns=-\r\nc=IN IP4 203.0.113.1\r\nt=0 0\r\n";

/// An offer of one audio stream with the given `m=` formats and attribute lines.
fn offer_of(formats: &str, attributes: &str) -> String {
    format!("{SESSION}m=audio 4000 RTP/AVP {formats}\r\n{attributes}")
}

const DEFAULT_CODECS: &[CodecSpec] = &[PCMU, PCMA, G722, OPUS];

/// legato's Opus fmtp parameters as written.
const LEGATO_OPUS_FMTP: &str =
    "useinbandfec=1;usedtx=0;stereo=0;sprop-stereo=0;maxplaybackrate=48000;maxaveragebitrate=32000";

#[test]
fn new_codecs_lookup() {
    assert_eq!(SUPPORTED_CODECS, DEFAULT_CODECS);
    for name in ["G722", "g722"] {
        assert_eq!(codec_by_name(name), Some(G722));
    }
    for name in ["opus", "OPUS", "Opus"] {
        assert_eq!(codec_by_name(name), Some(OPUS));
    }
    assert_eq!(codec_by_name("G.722"), None);
    assert_eq!(codec_by_name("opus/48000/2"), None);
    // (codec, kind, static PT, RTP clock, audio rate, channels)
    let table = [
        (PCMU, CodecKind::Pcmu, Some(0), 8000, 8000, 1),
        (PCMA, CodecKind::Pcma, Some(8), 8000, 8000, 1),
        (G722, CodecKind::G722, Some(9), 8000, 16000, 1),
        (OPUS, CodecKind::Opus, None, 48000, 48000, 2),
    ];
    for (codec, kind, pt, clock, audio, channels) in table {
        assert_eq!(
            (
                codec.kind,
                codec.static_pt,
                codec.clock_rate,
                codec.audio_rate,
                codec.channels
            ),
            (kind, pt, clock, audio, channels),
            "{}",
            codec.name
        );
    }
    assert_eq!(
        DEFAULT_CODEC_NAMES
            .iter()
            .map(|name| codec_by_name(name).unwrap())
            .collect::<Vec<_>>(),
        DEFAULT_CODECS
    );
    assert!(OPUS.matches("OPUS", 48000, 2));
    assert!(!OPUS.matches("opus", 48000, 1));
    assert!(G722.matches("g722", 8000, 1));
    assert!(!G722.matches("G722", 16000, 1));
}

#[test]
fn offer_with_every_codec() {
    let text = build_offer(&LocalParams {
        codecs: DEFAULT_CODECS,
        ..local()
    })
    .unwrap();
    assert_eq!(
        text,
        format!(
            "v=0\r\n\
             o=legato 42 1 IN IP4 192.0.2.1\r\n\
             s=legato\r\n\
             c=IN IP4 192.0.2.1\r\n\
             t=0 0\r\n\
             m=audio 30000 RTP/AVP 0 8 9 96 101 97\r\n\
             a=rtpmap:0 PCMU/8000\r\n\
             a=rtpmap:8 PCMA/8000\r\n\
             a=rtpmap:9 G722/8000\r\n\
             a=rtpmap:96 opus/48000/2\r\n\
             a=fmtp:96 {LEGATO_OPUS_FMTP}\r\n\
             a=rtpmap:101 telephone-event/8000\r\n\
             a=fmtp:101 0-16\r\n\
             a=rtpmap:97 telephone-event/48000\r\n\
             a=fmtp:97 0-16\r\n\
             a=ptime:20\r\n\
             a=maxptime:60\r\n\
             a=rtcp:30001\r\n\
             a=rtcp-mux\r\n\
             a=sendrecv\r\n"
        )
    );
    // Opus alone: events only at its clock rate, no /8000.
    let text = build_offer(&LocalParams {
        codecs: &[OPUS],
        ptime: 40,
        ..local()
    })
    .unwrap();
    assert!(text.contains("m=audio 30000 RTP/AVP 96 97\r\n"), "{text}");
    assert!(text.contains("a=rtpmap:97 telephone-event/48000\r\n"));
    assert!(!text.contains("/8000"));
    assert!(text.contains("a=ptime:40\r\na=maxptime:60\r\n"));
    // G.711 and G.722 share the /8000 events.
    let text = build_offer(&LocalParams {
        codecs: &[G722, PCMA],
        ..local()
    })
    .unwrap();
    assert!(text.contains("m=audio 30000 RTP/AVP 9 8 101\r\n"), "{text}");
    assert_eq!(text.matches("telephone-event").count(), 1);
    // The offer parses back to what was meant.
    let sdp = parse(
        &build_offer(&LocalParams {
            codecs: DEFAULT_CODECS,
            ..local()
        })
        .unwrap(),
    )
    .unwrap();
    let media = &sdp.media[0];
    assert_eq!(media.ptime, Some(20));
    assert_eq!(media.maxptime, Some(60));
    assert_eq!(media.fmtp(96), Some(LEGATO_OPUS_FMTP));
    assert_eq!(
        OpusParams::parse(LEGATO_OPUS_FMTP),
        OpusParams {
            useinbandfec: true,
            maxplaybackrate: Some(48000),
            maxaveragebitrate: Some(OPUS_MAX_AVERAGE_BITRATE),
            ..OpusParams::default()
        }
    );
}

#[test]
fn answers_g722() {
    let g722_first = LocalParams {
        codecs: &[G722, PCMU],
        ..local()
    };
    // FreeSWITCH offers G722 first with an rtpmap.
    let (negotiated, text) = answer_text(FREESWITCH, &g722_first).unwrap();
    assert_eq!((negotiated.codec, negotiated.payload_type), (G722, 9));
    assert_eq!(negotiated.codec.audio_rate, 16000);
    // Events at the RTP clock of G.722, 8000, not its audio rate.
    assert_eq!(negotiated.telephone_event_pt, Some(101));
    assert_eq!(negotiated.telephone_event_rate, Some(8000));
    assert_eq!(negotiated.opus, None);
    assert!(text.contains("m=audio 30000 RTP/AVP 9 101\r\na=rtpmap:9 G722/8000\r\n"));

    // Static PT 9 without rtpmap is G.722 (RFC 3551 §6).
    let offer = offer_of("9 101", "a=rtpmap:101 telephone-event/8000\r\n");
    let (negotiated, text) = answer_text(&offer, &g722_first).unwrap();
    assert_eq!((negotiated.codec, negotiated.payload_type), (G722, 9));
    assert_eq!(negotiated.telephone_event_pt, Some(101));
    assert!(text.contains("a=rtpmap:9 G722/8000\r\n"), "{text}");

    // Events offered only at 16000 (G.722's audio rate) do not fit its 8000 clock.
    let offer = offer_of("9 100", "a=rtpmap:100 telephone-event/16000\r\n");
    let (negotiated, text) = answer_text(&offer, &g722_first).unwrap();
    assert_eq!(negotiated.codec, G722);
    assert_eq!(negotiated.telephone_event_pt, None);
    assert_eq!(negotiated.telephone_event_rate, None);
    assert!(!text.contains("telephone-event"), "{text}");
    assert!(text.contains("m=audio 30000 RTP/AVP 9\r\n"), "{text}");

    // G722/16000 is not G.722 as RFC 3551 registers it.
    let offer = offer_of("96", "a=rtpmap:96 G722/16000\r\n");
    assert!(no_acceptable(answer_text(&offer, &g722_first)).contains("G722/16000"));
}

#[test]
fn answers_opus() {
    let opus_first = LocalParams {
        codecs: DEFAULT_CODECS,
        ..local()
    };
    let opus_preferred = LocalParams {
        codecs: &[OPUS, PCMU],
        ..local()
    };
    // Default preference keeps G.711 first.
    let (negotiated, _) = answer_text(FREESWITCH, &opus_first).unwrap();
    assert_eq!(negotiated.codec, PCMU);
    assert_eq!(negotiated.opus, None);

    // FreeSWITCH: opus at 102 with fmtp; events only at 8000, so none for Opus.
    let (negotiated, text) = answer_text(FREESWITCH, &opus_preferred).unwrap();
    assert_eq!((negotiated.codec, negotiated.payload_type), (OPUS, 102));
    assert_eq!(negotiated.local_payload_type, 102);
    assert_eq!(negotiated.telephone_event_pt, None);
    assert_eq!(
        negotiated.opus,
        Some(OpusParams {
            useinbandfec: true,
            maxaveragebitrate: Some(30000),
            maxplaybackrate: Some(48000),
            ptime: Some(20),
            ..OpusParams::default()
        })
    );
    assert_eq!(
        negotiated.receive_formats.iter().collect::<Vec<_>>(),
        [(102, OPUS)]
    );
    assert!(
        text.contains(&format!(
            "m=audio 30000 RTP/AVP 102\r\na=rtpmap:102 opus/48000/2\r\na=fmtp:102 {LEGATO_OPUS_FMTP}\r\n"
        )),
        "{text}"
    );

    // Linphone: opus at 96 and telephone-event/48000 at 101 (besides /16000 and /8000).
    let (negotiated, text) = answer_text(
        LINPHONE_V6,
        &LocalParams {
            address: LOCAL_V6,
            ..opus_preferred
        },
    )
    .unwrap();
    assert_eq!((negotiated.codec, negotiated.payload_type), (OPUS, 96));
    assert_eq!(
        (
            negotiated.telephone_event_pt,
            negotiated.local_telephone_event_pt,
            negotiated.telephone_event_rate
        ),
        (Some(101), Some(101), Some(48000))
    );
    assert!(text.contains("m=audio 30000 RTP/AVP 96 101\r\n"), "{text}");
    assert!(text.contains("a=rtpmap:101 telephone-event/48000\r\n"));
    assert!(!text.contains("/16000") && !text.contains("telephone-event/8000"));
    assert_eq!(
        negotiated.opus,
        Some(OpusParams {
            useinbandfec: true,
            ..OpusParams::default()
        })
    );

    // Opus without any fmtp: RFC 7587 defaults.
    let offer = offer_of("111", "a=rtpmap:111 opus/48000/2\r\n");
    let (negotiated, _) = answer_text(&offer, &opus_preferred).unwrap();
    assert_eq!(negotiated.opus, Some(OpusParams::default()));
    assert_eq!(negotiated.send_ptime_ms, 20);

    // stereo=1: accepted, legato still asks for and sends mono.
    let offer = offer_of(
        "111",
        "a=rtpmap:111 opus/48000/2\r\na=fmtp:111 stereo=1; sprop-stereo=1\r\n",
    );
    let (negotiated, text) = answer_text(&offer, &opus_preferred).unwrap();
    let opus = negotiated.opus.unwrap();
    assert!(opus.stereo && opus.sprop_stereo);
    assert!(text.contains("stereo=0;sprop-stereo=0"), "{text}");
}

#[test]
fn opus_fmtp_is_read_leniently() {
    // (fmtp text, expected)
    let cases = [
        ("", OpusParams::default()),
        (
            "minptime=10;useinbandfec=1",
            OpusParams {
                minptime: Some(10),
                useinbandfec: true,
                ..OpusParams::default()
            },
        ),
        (
            " USEINBANDFEC = 1 ; UseDtx=1;CBR=1;x-unknown=7;foo;=;;bar=",
            OpusParams {
                useinbandfec: true,
                usedtx: true,
                cbr: true,
                ..OpusParams::default()
            },
        ),
        (
            // Malformed and out-of-range values keep the default.
            "maxaveragebitrate=abc;maxplaybackrate=-1;stereo=yes;usedtx=2;ptime=0;minptime=1.5",
            OpusParams::default(),
        ),
        (
            "maxaveragebitrate=99999999999999999999;sprop-maxcapturerate=4294967296",
            OpusParams::default(),
        ),
        ("maxaveragebitrate=5999", OpusParams::default()),
        ("maxaveragebitrate=510001", OpusParams::default()),
        (
            "maxaveragebitrate=6000;maxplaybackrate=96000;sprop-maxcapturerate=4000",
            OpusParams {
                maxaveragebitrate: Some(6000),
                maxplaybackrate: Some(48000),
                sprop_maxcapturerate: Some(8000),
                ..OpusParams::default()
            },
        ),
        (
            // Repeats: the last readable value counts.
            "stereo=1;stereo=0;maxaveragebitrate=20000;maxaveragebitrate=zz;ptime=40;maxptime=120",
            OpusParams {
                maxaveragebitrate: Some(20000),
                ptime: Some(40),
                maxptime: Some(120),
                ..OpusParams::default()
            },
        ),
        (
            "stereo=1;sprop-stereo=1;é=1;😀;maxplaybackrate=16000",
            OpusParams {
                stereo: true,
                sprop_stereo: true,
                maxplaybackrate: Some(16000),
                ..OpusParams::default()
            },
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(OpusParams::parse(text), expected, "{text:?}");
    }
    // Through an SDP: unknown parameters do not disturb negotiation.
    let offer = offer_of(
        "111 0",
        "a=rtpmap:111 opus/48000/2\r\na=fmtp:111 x-vendor=\"a;b\";maxaveragebitrate=abc;usedtx=1\r\n",
    );
    let (negotiated, _) = answer_text(
        &offer,
        &LocalParams {
            codecs: &[OPUS],
            ..local()
        },
    )
    .unwrap();
    assert_eq!(
        negotiated.opus,
        Some(OpusParams {
            usedtx: true,
            ..OpusParams::default()
        })
    );
}

#[test]
fn send_ptime_rules() {
    use CodecKind::*;
    // (wanted, remote maxptime, codec kind, sent)
    let table = [
        (20, None, Pcmu, 20),
        (30, None, Pcma, 30),
        (7, None, Pcmu, 10),
        (0, None, Pcmu, 10),
        (1, None, G722, 10),
        (14, None, Pcmu, 10),
        (15, None, Pcmu, 20),
        (25, None, Pcmu, 30),
        (55, None, Pcmu, 60),
        (1000, None, Pcmu, 60),
        (u32::MAX, None, Pcmu, 60),
        (20, Some(5), Pcmu, 10),
        (40, Some(25), Pcmu, 20),
        (40, Some(150), Pcmu, 40),
        (60, Some(u32::MAX), G722, 60),
        (30, Some(0), Pcmu, 10),
        // Opus: 10, 20, 40 or 60, the longer one on a tie, within maxptime.
        (20, None, Opus, 20),
        (7, None, Opus, 10),
        (30, None, Opus, 40),
        (30, Some(30), Opus, 20),
        (50, None, Opus, 60),
        (50, Some(50), Opus, 40),
        (60, Some(59), Opus, 40),
        (1000, None, Opus, 60),
        (40, Some(5), Opus, 10),
    ];
    for (wanted, maxptime, kind, sent) in table {
        assert_eq!(
            negotiate::send_ptime(wanted, maxptime, kind),
            sent,
            "{wanted} ms, maxptime {maxptime:?}, {kind:?}"
        );
    }
}

#[test]
fn ptime_from_the_remote_sdp() {
    let pcmu = local();
    let opus = LocalParams {
        codecs: &[OPUS],
        ..local()
    };
    // (offer attributes, legato's parameters, remote ptime, remote maxptime, sent)
    let cases = [
        ("a=ptime:30\r\n", &pcmu, Some(30), None, 30),
        ("a=ptime:7\r\n", &pcmu, Some(7), None, 10),
        ("a=ptime:0\r\n", &pcmu, None, None, 20),
        ("a=ptime:1000\r\n", &pcmu, Some(1000), None, 60),
        (
            "a=ptime:20\r\na=maxptime:5\r\n",
            &pcmu,
            Some(20),
            Some(5),
            10,
        ),
        ("a=ptime:20.5\r\na=maxptime:x\r\n", &pcmu, None, None, 20),
        ("a=ptime:30\r\n", &opus, Some(30), None, 40),
        (
            "a=ptime:30\r\na=maxptime:30\r\n",
            &opus,
            Some(30),
            Some(30),
            20,
        ),
        // The Opus fmtp spelling counts when a=ptime/a=maxptime are absent.
        (
            "a=fmtp:111 ptime=40;maxptime=60\r\n",
            &opus,
            Some(40),
            Some(60),
            40,
        ),
        (
            "a=ptime:10\r\na=fmtp:111 ptime=40\r\n",
            &opus,
            Some(10),
            None,
            10,
        ),
    ];
    for (attributes, params, remote, remote_max, sent) in cases {
        let offer = offer_of(
            "0 111",
            &format!("a=rtpmap:111 opus/48000/2\r\n{attributes}"),
        );
        let (negotiated, _) = answer_text(&offer, params).unwrap();
        assert_eq!(
            (
                negotiated.remote_ptime,
                negotiated.remote_maxptime,
                negotiated.send_ptime_ms,
                negotiated.recv_ptime_ms
            ),
            (remote, remote_max, sent, 20),
            "{attributes:?} with {:?}",
            params.codecs
        );
    }
    // Session-level a=maxptime counts like a=ptime.
    let offer = format!("{SESSION}a=maxptime:20\r\nm=audio 4000 RTP/AVP 0\r\na=ptime:40\r\n");
    let (negotiated, _) = answer_text(&offer, &pcmu).unwrap();
    assert_eq!(
        (negotiated.remote_maxptime, negotiated.send_ptime_ms),
        (Some(20), 20)
    );
    // legato's own request: written and reported; 0 writes none and means 20.
    let (negotiated, text) = answer_text(
        ASTERISK,
        &LocalParams {
            ptime: 30,
            ..local()
        },
    )
    .unwrap();
    assert_eq!(
        (negotiated.recv_ptime_ms, negotiated.send_ptime_ms),
        (30, 20)
    );
    assert!(text.contains("a=ptime:30\r\na=maxptime:60\r\n"), "{text}");
    let (negotiated, text) = answer_text(
        CISCO,
        &LocalParams {
            ptime: 0,
            ..local()
        },
    )
    .unwrap();
    assert_eq!(
        (negotiated.recv_ptime_ms, negotiated.send_ptime_ms),
        (20, 30)
    );
    assert!(!text.contains("a=ptime") && text.contains("a=maxptime:60\r\n"));
    // Without a remote a=ptime legato sends what it asked for itself.
    let offer = offer_of("0", "");
    let (negotiated, _) = answer_text(
        &offer,
        &LocalParams {
            ptime: 40,
            ..local()
        },
    )
    .unwrap();
    assert_eq!(negotiated.send_ptime_ms, 40);
}

#[test]
fn receive_formats_follow_the_answer() {
    let alice = LocalParams {
        codecs: DEFAULT_CODECS,
        ..local()
    };
    let apply = |media: &str| apply_answer(&parse(&format!("{SESSION}{media}")).unwrap(), &alice);

    // The answerer kept four of legato's codecs: it may switch between them.
    let negotiated = apply(
        "m=audio 5000 RTP/AVP 8 0 111 9 18 101\r\na=rtpmap:111 opus/48000/2\r\n\
         a=fmtp:111 stereo=1\r\na=rtpmap:18 G729/8000\r\n",
    )
    .unwrap();
    assert_eq!((negotiated.codec, negotiated.payload_type), (PCMA, 8));
    assert_eq!(
        negotiated.receive_formats.iter().collect::<Vec<_>>(),
        [(8, PCMA), (0, PCMU), (96, OPUS), (9, G722)]
    );
    assert_eq!(negotiated.receive_formats.len(), 4);
    assert_eq!(negotiated.receive_formats.codec_for(96), Some(OPUS));
    assert_eq!(negotiated.receive_formats.codec_for(111), None);
    assert_eq!(negotiated.receive_formats.codec_for(18), None);
    // 101 without rtpmap: legato's telephone-event/8000, matching PCMA's clock.
    assert_eq!(
        (
            negotiated.telephone_event_pt,
            negotiated.local_telephone_event_pt,
            negotiated.telephone_event_rate
        ),
        (Some(101), Some(101), Some(8000))
    );
    // Opus is among the formats: its parameters are there for a switch.
    assert_eq!(
        negotiated.opus,
        Some(OpusParams {
            stereo: true,
            ..OpusParams::default()
        })
    );

    // One codec under two numbers: listed once, under legato's number.
    let negotiated = apply("m=audio 5000 RTP/AVP 0 112\r\na=rtpmap:112 PCMU/8000\r\n").unwrap();
    assert_eq!(
        negotiated.receive_formats.iter().collect::<Vec<_>>(),
        [(0, PCMU)]
    );
    assert_eq!(negotiated.opus, None);

    // Opus chosen: telephone-event/48000 answered under the answerer's number;
    // /8000 is not taken for Opus.
    let negotiated = apply(
        "m=audio 5000 RTP/AVP 111 110 101\r\na=rtpmap:111 opus/48000/2\r\n\
         a=rtpmap:110 telephone-event/48000\r\na=rtpmap:101 telephone-event/8000\r\n",
    )
    .unwrap();
    assert_eq!(negotiated.codec, OPUS);
    assert_eq!(
        (
            negotiated.telephone_event_pt,
            negotiated.local_telephone_event_pt,
            negotiated.telephone_event_rate
        ),
        (Some(110), Some(97), Some(48000))
    );
    let negotiated = apply(
        "m=audio 5000 RTP/AVP 111 101\r\na=rtpmap:111 opus/48000/2\r\n\
         a=rtpmap:101 telephone-event/8000\r\n",
    )
    .unwrap();
    assert_eq!(negotiated.telephone_event_pt, None);
    // Legato's /48000 number without rtpmap does not count for PCMU.
    let negotiated = apply("m=audio 5000 RTP/AVP 0 97\r\n").unwrap();
    assert_eq!(negotiated.telephone_event_pt, None);

    // When legato answers, only the chosen codec may come.
    let (negotiated, _) = answer_text(FREESWITCH, &alice).unwrap();
    assert_eq!(
        negotiated.receive_formats.iter().collect::<Vec<_>>(),
        [(0, PCMU)]
    );

    // The container is bounded and refuses duplicates.
    let mut formats = ReceiveFormats::default();
    assert!(formats.is_empty() && formats.first().is_none());
    for (pt, codec) in [(0, PCMU), (8, PCMA), (9, G722), (96, OPUS)] {
        assert!(formats.push(pt, codec));
    }
    assert!(!formats.push(97, PCMU));
    assert!(!formats.push(0, PCMA));
    assert_eq!(formats.len(), MAX_RECEIVE_FORMATS);
}

/// (alice's codecs, bob's codecs, codec, telephone-event PT at alice, its rate)
type Trip = (
    &'static [CodecSpec],
    &'static [CodecSpec],
    CodecSpec,
    Option<u8>,
    u32,
);

#[test]
fn round_trips_with_new_codecs() {
    let bob = |codecs: &'static [CodecSpec]| LocalParams {
        address: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 2)),
        rtp_port: 40000,
        rtcp_port: 40001,
        codecs,
        ..local()
    };
    // (alice's codecs, bob's codecs, codec, te PT at alice, te rate)
    let cases: [Trip; 4] = [
        (DEFAULT_CODECS, DEFAULT_CODECS, PCMU, Some(101), 8000),
        (DEFAULT_CODECS, &[G722], G722, Some(101), 8000),
        (DEFAULT_CODECS, &[OPUS], OPUS, Some(97), 48000),
        (&[OPUS], &[OPUS, PCMU], OPUS, Some(97), 48000),
    ];
    for (alice_codecs, bob_codecs, codec, te, rate) in cases {
        let alice = LocalParams {
            codecs: alice_codecs,
            ..local()
        };
        let offer = build_offer(&alice).unwrap();
        let (at_bob, answer_text) = answer(&parse(&offer).unwrap(), &bob(bob_codecs)).unwrap();
        let at_alice = apply_answer(&parse(&answer_text).unwrap(), &alice).unwrap();
        for negotiated in [&at_bob, &at_alice] {
            assert_eq!(negotiated.codec, codec, "{answer_text}");
            assert_eq!(negotiated.telephone_event_pt, te, "{answer_text}");
            assert_eq!(negotiated.telephone_event_rate, Some(rate));
            assert_eq!(negotiated.send_ptime_ms, 20);
            assert_eq!(negotiated.remote_maxptime, Some(60));
            assert_eq!(negotiated.receive_formats.len(), 1);
        }
        if codec == OPUS {
            // Each side reads the other's legato fmtp.
            let expected = Some(OpusParams::parse(LEGATO_OPUS_FMTP));
            assert_eq!((at_bob.opus, at_alice.opus), (expected, expected));
        }
    }
}
