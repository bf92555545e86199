//! StartPlayback of http:// prompts against a real HTTP server started by
//! the test (Python's http.server on 127.0.0.1, logging every request):
//!
//! - the first play fetches; a second within max-age (5 s) does not touch
//!   the server; after expiry the server sees a conditional request
//!   (If-None-Match) and answers 304; a changed file (new ETag) is fetched
//!   again and its new audio plays;
//! - a URL whose query string holds dots plays (and is its own cache key);
//! - 20 concurrent StartPlayback of one uncached URL cause one download;
//! - a 10-minute MP3 served slowly starts playing within 500 ms, long
//!   before its download ends;
//! - 404, connection refused, a server that stalls and an HTML page each
//!   end with a PlaybackFinished error.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use legato_client::{Client, EventFilter, proto};
use legato_tests::{
    Io, Options, Peer, connected_leg_with, daemon_or_skip, per_backend, sine, spawn_collector,
    wait_event,
};

const SERVER: &str = r#"
import hashlib, http.server, os, sys, time, urllib.parse
root, log = sys.argv[1], open(sys.argv[2], "a", buffering=1)
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        name = u.path.strip("/")
        inm = self.headers.get("If-None-Match")
        log.write("GET %s %s\n" % (self.path, inm or "-"))
        if name == "stall.wav":
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"RIFF")
            self.wfile.flush()
            time.sleep(30)
            return
        slow = name.startswith("slow/")
        path = os.path.join(root, name[5:] if slow else name)
        if not os.path.isfile(path):
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = open(path, "rb").read()
        etag = '"%s"' % hashlib.sha1(data).hexdigest()
        if inm == etag:
            self.send_response(304)
            self.send_header("ETag", etag)
            self.send_header("Cache-Control", "max-age=5")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("ETag", etag)
        self.send_header("Cache-Control", "max-age=5")
        self.send_header("Content-Type", "text/html" if name.endswith(".html") else "audio/wav")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            if slow:
                for i in range(0, len(data), 4096):
                    self.wfile.write(data[i:i + 4096])
                    self.wfile.flush()
                    time.sleep(0.1)
            else:
                self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
srv.daemon_threads = True
print(srv.server_address[1], flush=True)
srv.serve_forever()
"#;

/// The test's HTTP server: files under `root`, requests logged.
struct Server {
    child: Child,
    port: u16,
    root: PathBuf,
    log: PathBuf,
}

impl Server {
    fn start() -> Self {
        let root = std::env::temp_dir().join(format!("legato-http-{}", fastrand::u64(..)));
        std::fs::create_dir_all(&root).unwrap();
        let log = root.join("requests.log");
        let mut child = Command::new("python3")
            .args(["-c", SERVER])
            .arg(&root)
            .arg(&log)
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
            root,
            log,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    /// Requests so far whose path starts with `/prefix`: (path, If-None-Match).
    fn requests(&self, prefix: &str) -> Vec<(String, String)> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut f = l.split(' ').skip(1);
                Some((f.next()?.to_owned(), f.next()?.to_owned()))
            })
            .filter(|(p, _)| p.starts_with(&format!("/{prefix}")))
            .collect()
    }

    fn write(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.root.join(name), bytes).unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// A 16-bit mono WAV at 8 kHz holding `seconds` of a `hz` tone.
fn wav(seconds: f64, hz: f64) -> Vec<u8> {
    legato_tests::wav(
        8000,
        &sine(hz, 6000.0, 0, (8000.0 * seconds) as usize),
        None,
    )
}

/// How long a play's packets are counted: its 1-2 s and a margin.
const LISTEN: Duration = Duration::from_millis(2600);

fn request(leg: &str, url: &str) -> proto::StartPlaybackRequest {
    proto::StartPlaybackRequest {
        leg_id: leg.to_owned(),
        url: url.to_owned(),
        ..Default::default()
    }
}

/// Plays `url` on `leg`, waiting for its PlaybackFinished: its error, and
/// the packets `peer` got in the `listen` after the start.
async fn play_to_end(
    client: &Client,
    leg: &str,
    peer: &Peer,
    url: &str,
    listen: Duration,
) -> (String, usize) {
    let mut events = client
        .watch_events(EventFilter::new().leg(leg))
        .await
        .unwrap();
    let collector = spawn_collector(peer, Instant::now() + listen).unwrap();
    let id = client.start_playback(request(leg, url)).await.unwrap();
    let e = wait_event(
        &mut events,
        Duration::from_secs(15),
        |e| matches!(&e.kind, Some(proto::event::Kind::PlaybackFinished(f)) if f.playback_id == id),
    )
    .await
    .unwrap();
    let Some(proto::event::Kind::PlaybackFinished(f)) = e.kind else {
        unreachable!()
    };
    (f.error, collector.join().unwrap().len())
}

async fn cache_follows_the_headers(io: Io) {
    let server = Server::start();
    server.write("prompt.wav", &wav(1.0, 440.0));
    server.write("fresh.wav", &wav(0.5, 440.0));
    let daemon = daemon_or_skip!(Options::new(io));
    let client = daemon.client().await.unwrap();
    let session = client.create_session(None).await.unwrap();
    let peer = Peer::new().unwrap();
    let leg = connected_leg_with(&client, &session, &peer, "0")
        .await
        .unwrap();
    let url = server.url("prompt.wav");

    let (error, packets) = play_to_end(&client, &leg.leg_id, &peer, &url, LISTEN).await;
    assert_eq!(error, "");
    assert!((45..=55).contains(&packets), "{packets} packets for 1 s");
    assert_eq!(server.requests("prompt.wav").len(), 1, "first play fetches");
    // Right after: fresh. (No listening: the collector's window would
    // delay the next request.)
    let (error, _) = play_to_end(&client, &leg.leg_id, &peer, &url, Duration::ZERO).await;
    assert_eq!(error, "");
    assert_eq!(server.requests("prompt.wav").len(), 1, "fresh: no request");
    let _ = spawn_collector(&peer, Instant::now() + Duration::from_millis(200))
        .unwrap()
        .join();

    // Expired (max-age=5): a conditional request, 304, the cached audio.
    tokio::time::sleep(Duration::from_millis(5200)).await;
    let (error, packets) = play_to_end(&client, &leg.leg_id, &peer, &url, LISTEN).await;
    assert_eq!(error, "");
    assert!((45..=55).contains(&packets), "{packets}");
    let seen = server.requests("prompt.wav");
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen[1].1.starts_with('"'), "If-None-Match sent: {seen:?}");

    // Changed (another ETag): fetched again, the new audio plays.
    server.write("prompt.wav", &wav(2.0, 440.0));
    tokio::time::sleep(Duration::from_millis(5200)).await;
    let (error, packets) = play_to_end(&client, &leg.leg_id, &peer, &url, LISTEN).await;
    assert_eq!(error, "");
    assert!((95..=105).contains(&packets), "the new 2 s: {packets}");
    assert_eq!(server.requests("prompt.wav").len(), 3);

    // A query string with dots: its own key, plays.
    let signed = server.url("prompt.wav?sig=a.b.c&expires=1.5e9");
    let (error, _) = play_to_end(&client, &leg.leg_id, &peer, &signed, LISTEN).await;
    assert_eq!(error, "");
    assert_eq!(server.requests("prompt.wav?sig").len(), 1);

    // 20 concurrent requests for an uncached URL: one download.
    let fresh = server.url("fresh.wav");
    let calls = (0..20).map(|_| client.start_playback(request(&leg.leg_id, &fresh)));
    for result in futures::future::join_all(calls).await {
        result.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(server.requests("fresh.wav").len(), 1, "one download for 20");
}

async fn long_slow_and_broken_downloads(io: Io) {
    let server = Server::start();
    // Ten minutes of MP3 at 16 kbit/s (1.2 MB), served at 40 kB/s: a
    // 30 s download.
    let mp3 = server.root.join("long.mp3");
    let status = Command::new("ffmpeg")
        .args([
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:duration=600",
        ])
        .args(["-ar", "8000", "-ac", "1", "-b:a", "16k"])
        .arg(&mp3)
        .status()
        .expect("ffmpeg (installed by scripts/test.sh)");
    assert!(status.success());
    server.write(
        "page.html",
        b"<!doctype html><html><body>Not Found</body></html>",
    );
    let daemon = daemon_or_skip!(Options::new(io));
    let client = daemon.client().await.unwrap();
    let session = client.create_session(None).await.unwrap();
    let peer = Peer::new().unwrap();
    let leg = connected_leg_with(&client, &session, &peer, "0")
        .await
        .unwrap();
    let mut events = client
        .watch_events(EventFilter::new().leg(&leg.leg_id))
        .await
        .unwrap();

    let asked = Instant::now();
    let id = client
        .start_playback(request(&leg.leg_id, &server.url("slow/long.mp3")))
        .await
        .unwrap();
    let e = wait_event(&mut events, Duration::from_secs(5), |e| {
        matches!(
            &e.kind,
            Some(proto::event::Kind::PlaybackStarted(_) | proto::event::Kind::PlaybackReady(_))
        )
    })
    .await
    .unwrap();
    let started_after = asked.elapsed();
    assert!(
        matches!(&e.kind, Some(proto::event::Kind::PlaybackStarted(s)) if s.playback_id == id),
        "started before the download ended: {e:?}"
    );
    eprintln!("{io:?}: a 10-minute MP3 over a 40 kB/s link started after {started_after:?}");
    assert!(
        started_after < Duration::from_millis(500),
        "{started_after:?}"
    );
    client.stop_playback(&leg.leg_id).await.unwrap();

    // Broken downloads: PlaybackFinished with the reason, in bounded time.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let refused = format!("http://{}/x.wav", closed.local_addr().unwrap());
    drop(closed);
    for (url, reason) in [
        (server.url("missing.wav"), "404"),
        (refused, "fetching"),
        (server.url("stall.wav"), "stalled"),
        (server.url("page.html"), "not audio"),
    ] {
        let began = Instant::now();
        let (error, _) = play_to_end(&client, &leg.leg_id, &peer, &url, LISTEN).await;
        assert!(error.contains(reason), "{url}: {error:?}");
        assert!(
            began.elapsed() < Duration::from_secs(12),
            "{url}: {:?}",
            began.elapsed()
        );
    }
    let _ = Path::new(&server.root);
}

per_backend!(cache_follows_the_headers, long_slow_and_broken_downloads);
