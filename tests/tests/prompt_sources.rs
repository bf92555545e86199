//! Where prompts come from, against real servers started by the test
//! (Python's http.server on 127.0.0.1, plain or behind TLS with a CA made
//! here by rcgen, logging every request):
//!
//! - https: without `--prompt-ca-file` the test CA's server is refused
//!   with a certificate error; with it, the prompt plays;
//! - `--prompt-host`: a host not listed is PERMISSION_DENIED, and a
//!   redirect from a listed host to another fails the playback;
//! - stale-if-error: once a cached copy is stale and the server answers
//!   503, the stale copy plays; once the server says 404, it does not;
//! - `--prompt-cache-dir`: after a restart, a fresh download plays with no
//!   request, a stale one is revalidated (304) and plays, speech is not
//!   synthesized again;
//! - `--tts-url`: Say through an HTTP engine (JSON in, WAV out), cached
//!   by voice; an engine error ends with PlaybackFinished naming it;
//! - bad configuration (a missing CA file, a tts_url that is not http,
//!   both engines) stops legatod at start with the reason.

use std::io::BufRead as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use legato_client::{Client, Code, EventFilter, proto};
use legato_tests::{
    G711, Io, Options, Peer, connected_leg_with, daemon_or_skip, decode_window, legatod_path,
    per_backend, sine, spawn_collector, tempdir, tone_level_db, wait_event,
};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

const SERVER: &str = r#"
import hashlib, http.server, json, math, os, ssl, struct, sys, urllib.parse
root, log = sys.argv[1], open(sys.argv[2], "a", buffering=1)
def tone(seconds, hz):
    n = int(8000 * seconds)
    pcm = b"".join(struct.pack("<h", int(6000 * math.sin(2 * math.pi * hz * i / 8000))) for i in range(n))
    return (b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVEfmt " +
            struct.pack("<IHHIIHH", 16, 1, 1, 8000, 16000, 2, 16) + b"data" + struct.pack("<I", len(pcm)) + pcm)
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def reply(self, code, headers=(), body=b""):
        self.send_response(code)
        for k, v in headers: self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        log.write("POST %s %s\n" % (self.path, body.get("voice") or "-"))
        if body.get("voice") == "broken":
            return self.reply(500, [("Content-Type", "text/plain")], b"engine exploded\n")
        self.reply(200, [("Content-Type", "audio/wav")], tone(1.0, 500))
    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(u.query)
        inm = self.headers.get("If-None-Match")
        log.write("GET %s %s\n" % (self.path, inm or "-"))
        if u.path == "/redirect":
            return self.reply(302, [("Location", q["to"][0])])
        if os.path.exists(os.path.join(root, "down")):
            return self.reply(503)
        path = os.path.join(root, u.path.strip("/"))
        if not os.path.isfile(path):
            return self.reply(404)
        data = open(path, "rb").read()
        etag = '"%s"' % hashlib.sha1(data).hexdigest()
        cc = [("ETag", etag), ("Cache-Control", "max-age=%s" % q.get("age", ["2"])[0])]
        if inm == etag:
            return self.reply(304, cc)
        self.reply(200, cc + [("Content-Type", "audio/wav")], data)
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
srv.daemon_threads = True
if len(sys.argv) > 3:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[3], sys.argv[4])
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(srv.server_address[1], flush=True)
srv.serve_forever()
"#;

/// The test's server: files under `root`, requests logged; TLS with the
/// files in `tls` (certificate, key) when given.
struct Server {
    child: Child,
    port: u16,
    root: PathBuf,
    log: PathBuf,
    scheme: &'static str,
}

impl Server {
    fn start(root: &std::path::Path, tls: Option<(&str, &str)>) -> Self {
        std::fs::create_dir_all(root).unwrap();
        let log = root.join("requests.log");
        let mut command = Command::new("python3");
        command.args(["-c", SERVER]).arg(root).arg(&log);
        if let Some((cert, key)) = tls {
            command.args([cert, key]);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 (installed by scripts/test.sh)");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().expect("the server's port");
        Self {
            child,
            port,
            root: root.to_path_buf(),
            log,
            scheme: if tls.is_some() { "https" } else { "http" },
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}://127.0.0.1:{}/{path}", self.scheme, self.port)
    }

    /// Requests so far whose method and path start with `prefix` (e.g.
    /// "GET /a.wav"): the header field logged (If-None-Match or voice).
    fn requests(&self, prefix: &str) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with(prefix))
            .map(|l| l.rsplit(' ').next().unwrap_or("").to_owned())
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A CA and a server certificate for 127.0.0.1 and localhost, as PEM
/// files in `dir`: ca.pem, server.pem, server-key.pem.
fn make_pki(dir: &std::path::Path) {
    let mut ca = CertificateParams::new(Vec::new()).unwrap();
    ca.distinguished_name
        .push(DnType::CommonName, "legato prompt test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("server.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("server-key.pem"), key.serialize_pem()).unwrap();
}

/// A 16-bit mono WAV at 8 kHz holding `seconds` of a `hz` tone.
fn wav(seconds: f64, hz: f64) -> Vec<u8> {
    legato_tests::wav(
        8000,
        &sine(hz, 6000.0, 0, (8000.0 * seconds) as usize),
        None,
    )
}

/// What one playback gave: its PlaybackFinished error and the level of
/// `hz` in what the peer heard (dB; about -9 for the test tones).
struct Played {
    error: String,
    level: f64,
}

/// Starts a playback with `start` on `leg` and waits for its end.
async fn played<F>(client: &Client, leg: &str, peer: &Peer, hz: f64, start: F) -> Played
where
    F: AsyncFnOnce() -> Result<String, legato_client::Error>,
{
    let mut events = client
        .watch_events(EventFilter::new().leg(leg))
        .await
        .unwrap();
    let begin = Instant::now();
    let collector = spawn_collector(peer, begin + Duration::from_millis(2500)).unwrap();
    let id = start().await.unwrap();
    let e = wait_event(
        &mut events,
        Duration::from_secs(20),
        |e| matches!(&e.kind, Some(proto::event::Kind::PlaybackFinished(f)) if f.playback_id == id),
    )
    .await
    .unwrap();
    let Some(proto::event::Kind::PlaybackFinished(f)) = e.kind else {
        unreachable!()
    };
    let packets = collector.join().unwrap();
    let pcm = decode_window(&packets, G711::Pcmu, begin, Instant::now());
    Played {
        error: f.error,
        level: tone_level_db(&pcm, hz),
    }
}

async fn play_url(client: &Client, leg: &str, peer: &Peer, url: &str) -> Played {
    let request = proto::StartPlaybackRequest {
        leg_id: leg.to_owned(),
        url: url.to_owned(),
        ..Default::default()
    };
    played(client, leg, peer, 700.0, async || {
        client.start_playback(request).await
    })
    .await
}

async fn say(client: &Client, leg: &str, peer: &Peer, text: &str, voice: &str) -> Played {
    let request = proto::SayRequest {
        leg_id: leg.to_owned(),
        text: text.to_owned(),
        voice: voice.to_owned(),
        ..Default::default()
    };
    played(client, leg, peer, 500.0, async || client.say(request).await).await
}

/// https with and without the CA, the host list, redirects, and the stale
/// copy served while the server fails.
async fn https_hosts_and_stale_copies(io: Io) {
    let dir = tempdir("prompt-tls");
    make_pki(&dir);
    let arg = |f: &str| dir.join(f).to_str().unwrap().to_owned();
    let server = Server::start(
        &dir.join("www"),
        Some((&arg("server.pem"), &arg("server-key.pem"))),
    );
    std::fs::write(server.root.join("a.wav"), wav(1.0, 700.0)).unwrap();

    // Without the CA: a certificate error, nothing played.
    {
        let daemon = daemon_or_skip!(Options::new(io));
        let client = daemon.client().await.unwrap();
        let session = client.create_session(None).await.unwrap();
        let peer = Peer::new().unwrap();
        let leg = connected_leg_with(&client, &session, &peer, "0")
            .await
            .unwrap();
        let p = play_url(&client, &leg.leg_id, &peer, &server.url("a.wav")).await;
        assert!(p.error.contains("certificate"), "{}", p.error);
        assert!(p.level < -60.0, "nothing heard: {:.1} dB", p.level);
    }

    let options = Options::new(io)
        .arg("--prompt-ca-file")
        .arg(arg("ca.pem"))
        .arg("--prompt-host")
        .arg("127.0.0.1");
    let daemon = daemon_or_skip!(options);
    let client = daemon.client().await.unwrap();
    let session = client.create_session(None).await.unwrap();
    let peer = Peer::new().unwrap();
    let leg = connected_leg_with(&client, &session, &peer, "0")
        .await
        .unwrap();
    let p = play_url(&client, &leg.leg_id, &peer, &server.url("a.wav")).await;
    assert_eq!(p.error, "");
    assert!(p.level > -15.0, "the prompt heard: {:.1} dB", p.level);

    // Hosts: localhost is not listed, directly or through a redirect.
    let elsewhere = format!("https://localhost:{}/a.wav", server.port);
    let err = client
        .start_playback(proto::StartPlaybackRequest {
            leg_id: leg.leg_id.clone(),
            url: elsewhere.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err}");
    let redirect = server.url(&format!("redirect?to={elsewhere}"));
    let p = play_url(&client, &leg.leg_id, &peer, &redirect).await;
    assert!(p.error.contains("prompt_hosts"), "{}", p.error);

    // Stale (max-age 2 s) while the server fails: the cached copy plays.
    tokio::time::sleep(Duration::from_millis(2300)).await;
    std::fs::write(server.root.join("down"), b"").unwrap();
    let p = play_url(&client, &leg.leg_id, &peer, &server.url("a.wav")).await;
    assert_eq!(p.error, "", "stale-if-error");
    assert!(p.level > -15.0, "the stale copy heard: {:.1} dB", p.level);
    let conditional = server.requests("GET /a.wav");
    assert!(
        conditional.len() == 2 && conditional[1].starts_with('"'),
        "one download, then one conditional request: {conditional:?}"
    );
    // Gone (404): not served any more.
    std::fs::remove_file(server.root.join("down")).unwrap();
    std::fs::remove_file(server.root.join("a.wav")).unwrap();
    let p = play_url(&client, &leg.leg_id, &peer, &server.url("a.wav")).await;
    assert!(p.error.contains("404"), "{}", p.error);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The on-disk cache across a restart, and the HTTP text-to-speech engine.
async fn disk_cache_and_http_tts(io: Io) {
    let dir = tempdir("prompt-disk");
    let server = Server::start(&dir.join("www"), None);
    std::fs::write(server.root.join("long.wav"), wav(1.0, 700.0)).unwrap();
    std::fs::write(server.root.join("short.wav"), wav(1.0, 700.0)).unwrap();
    let fresh = server.url("long.wav?age=600");
    let stale = server.url("short.wav?age=1");
    let cache = dir.join("cache");
    let options = || {
        Options::new(io)
            .arg("--prompt-cache-dir")
            .arg(cache.to_str().unwrap())
            .arg("--tts-url")
            .arg(server.url("tts"))
    };
    {
        let daemon = daemon_or_skip!(options());
        let client = daemon.client().await.unwrap();
        let session = client.create_session(None).await.unwrap();
        let peer = Peer::new().unwrap();
        let leg = connected_leg_with(&client, &session, &peer, "0")
            .await
            .unwrap();
        for url in [&fresh, &stale] {
            let p = play_url(&client, &leg.leg_id, &peer, url).await;
            assert_eq!(p.error, "");
            assert!(p.level > -15.0, "{url}: {:.1} dB", p.level);
        }
        // Speech: one request per voice, the same voice again cached.
        for voice in ["f1", "f1", "f2"] {
            let p = say(&client, &leg.leg_id, &peer, "hello there", voice).await;
            assert_eq!(p.error, "");
            assert!(p.level > -15.0, "speech heard: {:.1} dB", p.level);
        }
        assert_eq!(server.requests("POST /tts"), ["f1", "f2"]);
        let p = say(&client, &leg.leg_id, &peer, "hello there", "broken").await;
        assert!(
            p.error.contains("HTTP 500") && p.error.contains("engine exploded"),
            "{}",
            p.error
        );
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // A new process on the same directory.
    let daemon = daemon_or_skip!(options());
    let client = daemon.client().await.unwrap();
    let session = client.create_session(None).await.unwrap();
    let peer = Peer::new().unwrap();
    let leg = connected_leg_with(&client, &session, &peer, "0")
        .await
        .unwrap();
    for url in [&fresh, &stale] {
        let p = play_url(&client, &leg.leg_id, &peer, url).await;
        assert_eq!(p.error, "");
        assert!(p.level > -15.0, "{url} after a restart: {:.1} dB", p.level);
    }
    assert_eq!(
        server.requests("GET /long.wav").len(),
        1,
        "a fresh copy on disk is played without a request"
    );
    let short = server.requests("GET /short.wav");
    assert!(
        short.len() == 2 && short[1].starts_with('"'),
        "a stale copy on disk is revalidated: {short:?}"
    );
    let p = say(&client, &leg.leg_id, &peer, "hello there", "f2").await;
    assert_eq!(p.error, "");
    assert!(p.level > -15.0, "speech from disk: {:.1} dB", p.level);
    assert_eq!(
        server.requests("POST /tts").len(),
        3,
        "speech from the disk cache"
    );
    drop(daemon);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Configuration legatod refuses at start, with the reason.
#[test]
fn bad_prompt_configuration_stops_legatod() {
    for (args, reason) in [
        (
            vec!["--prompt-ca-file", "/nonexistent/ca.pem"],
            "prompt_ca_file",
        ),
        (vec!["--tts-url", "ftp://host/tts"], "tts_url"),
        (
            vec!["--tts-url", "http://h/tts", "--tts-command", "/bin/true"],
            "one engine",
        ),
        (vec!["--prompt-host", "a b"], "prompt_hosts"),
    ] {
        let out = Command::new(legatod_path().unwrap())
            .args(["--grpc-listen", "127.0.0.1:0"])
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} started");
        assert!(stderr.contains(reason), "{args:?}: {stderr}");
    }
}

per_backend!(https_hosts_and_stale_copies, disk_cache_and_http_tts);
