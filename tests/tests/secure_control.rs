//! The secured control plane against a real legatod: TLS, mutual TLS and
//! bearer tokens, from legato-client, legatoctl and Python grpcio.
//!
//! Certificates are made at test time with rcgen (a CA, a server
//! certificate for 127.0.0.1 and localhost, a client certificate from the
//! CA and one from a rogue CA) and written to a temporary directory that is
//! removed afterwards; no key is ever committed.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use futures::StreamExt as _;
use legato_client::{Client, Code, EventFilter, Tls};
use legato_tests::{Io, Options, daemon_or_skip, legatoctl_path, legatod_path};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

const TOKEN_A: &str = "legato-test-token-aaaaaaaaaaaaaaaa";
const TOKEN_B: &str = "legato-test-token-bbbbbbbbbbbbbbbb";
const WRONG_TOKEN: &str = "legato-test-token-wrong-wrong-wrong";
/// Bounds every call that is expected to fail, so a hang is a failure.
const FAIL_WITHIN: Duration = Duration::from_secs(15);

/// PEM files of a small PKI in a temporary directory, removed on drop.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("legato-pki-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = new_ca("legato test CA");
        let rogue = new_ca("rogue CA");
        let write = |file: &str, text: &str| std::fs::write(dir.join(file), text).unwrap();
        write("ca.pem", &ca.pem());
        write("rogue-ca.pem", &rogue.pem());

        let server_key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "legatod test");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server = params.signed_by(&server_key, &ca).unwrap();
        write("server.pem", &server.pem());
        write("server-key.pem", &server_key.serialize_pem());

        for (name, issuer) in [("client", &ca), ("rogue-client", &rogue)] {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(Vec::new()).unwrap();
            params
                .distinguished_name
                .push(DnType::CommonName, format!("{name} controller"));
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            let cert = params.signed_by(&key, issuer).unwrap();
            write(&format!("{name}.pem"), &cert.pem());
            write(&format!("{name}-key.pem"), &key.serialize_pem());
        }
        write(
            "tokens",
            &format!("# two tokens: rotation\n{TOKEN_A}\n\n{TOKEN_B}\n"),
        );
        Self { dir }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    fn arg(&self, file: &str) -> String {
        self.path(file).to_str().unwrap().to_owned()
    }

    fn read(&self, file: &str) -> Vec<u8> {
        std::fs::read(self.path(file)).unwrap()
    }

    /// TLS trusting `ca`, with the client certificate `client` if given.
    fn tls(&self, ca: &str, client: Option<&str>) -> Tls {
        let tls = Tls::new().ca_pem(self.read(ca));
        match client {
            Some(name) => tls.identity_pem(
                self.read(&format!("{name}.pem")),
                self.read(&format!("{name}-key.pem")),
            ),
            None => tls,
        }
    }

    /// Daemon flags for TLS, with mutual TLS when `mutual`.
    fn server_args(&self, options: Options, mutual: bool) -> Options {
        let options = options
            .arg("--tls-cert")
            .arg(self.arg("server.pem"))
            .arg("--tls-key")
            .arg(self.arg("server-key.pem"));
        if mutual {
            options.arg("--tls-client-ca").arg(self.arg("ca.pem"))
        } else {
            options
        }
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn new_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn https(daemon: &legato_tests::Daemon) -> String {
    format!("https://{}", daemon.grpc)
}

/// Connects and lists sessions, bounded in time: the error of whichever
/// step failed.
async fn try_list(builder: legato_client::ClientBuilder) -> Result<usize, legato_client::Error> {
    let attempt = async {
        let client = builder.connect().await?;
        client.list_sessions().await.map(|s| s.len())
    };
    tokio::time::timeout(FAIL_WITHIN, attempt)
        .await
        .expect("the call neither succeeded nor failed in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_the_right_ca_works_and_plaintext_fails() {
    let pki = Pki::new("tls");
    let daemon = daemon_or_skip!(pki.server_args(Options::new(Io::Epoll), false));

    let client = Client::builder(https(&daemon))
        .tls(pki.tls("ca.pem", None))
        .connect()
        .await
        .expect("TLS connect");
    assert!(client.endpoint().starts_with("https://"));
    let session = client.create_session(Some("tls-session")).await.unwrap();
    assert_eq!(session, "tls-session");
    let sessions = client.list_sessions().await.unwrap();
    assert!(sessions.iter().any(|s| s.session_id == "tls-session"));

    // A bare host:port with TLS settings means https; the name in the
    // certificate may also be given explicitly.
    let by_name = Client::builder(daemon.grpc.to_string())
        .tls(pki.tls("ca.pem", None).domain_name("localhost"))
        .connect()
        .await
        .expect("TLS connect with a domain name");
    assert_eq!(by_name.list_sessions().await.unwrap().len(), 1);

    // A name the certificate does not carry is refused.
    let err = try_list(
        Client::builder(https(&daemon)).tls(pki.tls("ca.pem", None).domain_name("legatod.example")),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");

    // A client that trusts another CA refuses the daemon.
    let err = try_list(Client::builder(https(&daemon)).tls(pki.tls("rogue-ca.pem", None)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");

    // Plain HTTP/2 to the TLS port fails, promptly. How it fails depends
    // on which the client notices first: the daemon's TLS alert read as a
    // bad HTTP/2 frame (INTERNAL) or the closed connection (CANCELLED,
    // UNAVAILABLE).
    let err = try_list(Client::builder(daemon.endpoint()))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.code(),
            Code::Unavailable | Code::Unknown | Code::Internal | Code::Cancelled
        ),
        "{err}"
    );

    // The daemon still serves after all of that.
    assert_eq!(client.list_sessions().await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_needs_a_client_certificate_from_the_ca() {
    let pki = Pki::new("mtls");
    let daemon = daemon_or_skip!(pki.server_args(Options::new(Io::Epoll), true));

    let count = try_list(Client::builder(https(&daemon)).tls(pki.tls("ca.pem", Some("client"))))
        .await
        .expect("a client certificate from the CA is accepted");
    assert_eq!(count, 0);

    // Without a client certificate the handshake is refused.
    let err = try_list(Client::builder(https(&daemon)).tls(pki.tls("ca.pem", None)))
        .await
        .unwrap_err();
    // Refused by the TLS layer (an alert or a closed connection), not by
    // the service.
    assert!(
        matches!(
            err.code(),
            Code::Unavailable | Code::Unknown | Code::Cancelled
        ),
        "{err}"
    );

    // A certificate from another CA is refused the same way.
    let err =
        try_list(Client::builder(https(&daemon)).tls(pki.tls("ca.pem", Some("rogue-client"))))
            .await
            .unwrap_err();
    // Refused by the TLS layer (an alert or a closed connection), not by
    // the service.
    assert!(
        matches!(
            err.code(),
            Code::Unavailable | Code::Unknown | Code::Cancelled
        ),
        "{err}"
    );

    // And the daemon still serves the right client.
    let count = try_list(Client::builder(https(&daemon)).tls(pki.tls("ca.pem", Some("client"))))
        .await
        .unwrap();
    assert_eq!(count, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_guard_every_rpc_but_health() {
    let pki = Pki::new("token");
    let daemon = daemon_or_skip!(
        Options::new(Io::Epoll)
            .arg("--auth-token-file")
            .arg(pki.arg("tokens"))
    );
    let endpoint = daemon.endpoint();

    for token in [TOKEN_A, TOKEN_B] {
        let client = Client::builder(&endpoint)
            .bearer_token(token)
            .connect()
            .await
            .unwrap();
        client.create_session(None).await.unwrap();
        assert!(!client.list_sessions().await.unwrap().is_empty());
    }

    let plain = Client::connect(&endpoint).await.unwrap();
    let err = plain.list_sessions().await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(err.status_message(), Some("missing bearer token"));

    let wrong = Client::builder(&endpoint)
        .bearer_token(WRONG_TOKEN)
        .connect()
        .await
        .unwrap();
    let err = wrong.create_session(None).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(err.status_message(), Some("invalid bearer token"));
    assert!(!err.to_string().contains(WRONG_TOKEN), "{err}");

    // A stream is refused the same way, up front or as its first item.
    let refused = tokio::time::timeout(FAIL_WITHIN, async {
        match plain.watch_events(EventFilter::new()).await {
            Err(err) => err,
            Ok(mut events) => events
                .next()
                .await
                .expect("an item")
                .expect_err("an event without a token"),
        }
    })
    .await
    .expect("WatchEvents refused in time");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused}");

    // Health stays open by default; reflection does not.
    assert_eq!(health(&endpoint, None).await, Ok(()));
    assert_eq!(
        reflection(&endpoint, None).await,
        Err(tonic::Code::Unauthenticated)
    );
    assert_eq!(reflection(&endpoint, Some(TOKEN_A)).await, Ok(()));

    // Rotation: a new file and SIGHUP; the old token stops working, the new
    // one works, without a restart.
    let token_c = "legato-test-token-cccccccccccccccc";
    std::fs::write(pki.path("tokens"), format!("{TOKEN_B}\n{token_c}\n")).unwrap();
    let pid = daemon.pid().unwrap().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = tokio::time::Instant::now() + FAIL_WITHIN;
    let new_client = Client::builder(&endpoint)
        .bearer_token(token_c)
        .connect()
        .await
        .unwrap();
    while new_client.list_sessions().await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "reload not seen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let old = Client::builder(&endpoint)
        .bearer_token(TOKEN_A)
        .connect()
        .await
        .unwrap();
    assert_eq!(
        old.list_sessions().await.unwrap_err().code(),
        Code::Unauthenticated
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_auth_and_reflection_switches() {
    let pki = Pki::new("switches");
    let daemon = daemon_or_skip!(
        Options::new(Io::Epoll)
            .arg("--auth-token-file")
            .arg(pki.arg("tokens"))
            .arg("--health-requires-auth")
            .arg("--no-reflection")
    );
    let endpoint = daemon.endpoint();
    assert_eq!(
        health(&endpoint, None).await,
        Err(tonic::Code::Unauthenticated)
    );
    assert_eq!(health(&endpoint, Some(TOKEN_B)).await, Ok(()));
    assert_eq!(
        reflection(&endpoint, Some(TOKEN_B)).await,
        Err(tonic::Code::Unimplemented)
    );
}

/// grpc.health.v1 Check of the whole server, with an optional token.
async fn health(endpoint: &str, token: Option<&str>) -> Result<(), tonic::Code> {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let channel = tonic::transport::Channel::from_shared(endpoint.to_owned())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut request = tonic::Request::new(HealthCheckRequest {
        service: String::new(),
    });
    add_token(&mut request, token);
    HealthClient::new(channel)
        .check(request)
        .await
        .map(|_| ())
        .map_err(|s| s.code())
}

/// A grpc.reflection.v1 ListServices, with an optional token.
async fn reflection(endpoint: &str, token: Option<&str>) -> Result<(), tonic::Code> {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let channel = tonic::transport::Channel::from_shared(endpoint.to_owned())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let ask = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut request = tonic::Request::new(futures::stream::iter([ask]));
    add_token(&mut request, token);
    let mut replies = ServerReflectionClient::new(channel)
        .server_reflection_info(request)
        .await
        .map_err(|s| s.code())?
        .into_inner();
    let reply = replies
        .next()
        .await
        .expect("a reply")
        .map_err(|s| s.code())?;
    match reply.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            assert!(
                list.service
                    .iter()
                    .any(|s| s.name == "legato.v1.MediaPlane"),
                "{list:?}"
            );
            Ok(())
        }
        other => panic!("unexpected reflection reply {other:?}"),
    }
}

fn add_token<T>(request: &mut tonic::Request<T>, token: Option<&str>) {
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
}

fn ctl(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut command = Command::new(legatoctl_path().expect("legatoctl"));
    command
        .args(args)
        .env_remove("LEGATO_ENDPOINT")
        .env_remove("LEGATO_TLS_CA")
        .env_remove("LEGATO_TLS_CERT")
        .env_remove("LEGATO_TLS_KEY")
        .env_remove("LEGATO_TLS_DOMAIN")
        .env_remove("LEGATO_TOKEN_FILE");
    for (key, value) in env {
        command.env(key, value);
    }
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run legatoctl");
    wait_bounded(child)
}

/// Waits for a child at most [`FAIL_WITHIN`], killing it past that.
fn wait_bounded(mut child: std::process::Child) -> Output {
    let deadline = std::time::Instant::now() + FAIL_WITHIN;
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("{child:?} did not finish in time");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn legatoctl_with_tls_and_token() {
    let pki = Pki::new("ctl");
    let daemon = daemon_or_skip!(
        pki.server_args(Options::new(Io::Epoll), true)
            .arg("--auth-token-file")
            .arg(pki.arg("tokens"))
    );
    let endpoint = https(&daemon);
    let (ca, cert, key, tokens) = (
        pki.arg("ca.pem"),
        pki.arg("client.pem"),
        pki.arg("client-key.pem"),
        pki.arg("tokens"),
    );
    let tls: Vec<&str> = vec![
        "--endpoint",
        &endpoint,
        "--tls-ca",
        &ca,
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
    ];

    let mut args = tls.clone();
    args.extend([
        "--token-file",
        &tokens,
        "session",
        "create",
        "--id",
        "ctl-tls",
    ]);
    let out = ctl(&args, &[]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out.stdout).trim(), "ctl-tls");

    // The same through the environment.
    let out = ctl(
        &["--endpoint", &endpoint, "session", "list"],
        &[
            ("LEGATO_TLS_CA", &pki.path("ca.pem")),
            ("LEGATO_TLS_CERT", &pki.path("client.pem")),
            ("LEGATO_TLS_KEY", &pki.path("client-key.pem")),
            ("LEGATO_TOKEN_FILE", &pki.path("tokens")),
        ],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(text(&out.stdout).contains("ctl-tls"), "{out:?}");

    // No token: refused with a clear message and status 1.
    let mut args = tls.clone();
    args.extend(["session", "list"]);
    let out = ctl(&args, &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        text(&out.stderr).trim(),
        "legatoctl: UNAUTHENTICATED: missing bearer token"
    );

    // https without a CA to trust.
    let out = ctl(&["--endpoint", &endpoint, "session", "list"], &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(text(&out.stderr).contains("TLS needs --tls-ca"), "{out:?}");

    // A client certificate from the rogue CA: the handshake is refused.
    let (rogue, rogue_key) = (pki.arg("rogue-client.pem"), pki.arg("rogue-client-key.pem"));
    let out = ctl(
        &[
            "--endpoint",
            &endpoint,
            "--tls-ca",
            &ca,
            "--tls-cert",
            &rogue,
            "--tls-key",
            &rogue_key,
            "--token-file",
            &tokens,
            "session",
            "list",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(text(&out.stderr).starts_with("legatoctl: "), "{out:?}");

    // A missing file is named.
    let out = ctl(
        &[
            "--endpoint",
            &endpoint,
            "--tls-ca",
            "/nonexistent/ca.pem",
            "session",
            "list",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        text(&out.stderr).contains("cannot read --tls-ca /nonexistent/ca.pem"),
        "{out:?}"
    );
}

#[test]
fn bad_security_settings_stop_legatod_at_startup() {
    let pki = Pki::new("bad");
    std::fs::write(pki.path("junk.pem"), "not a pem file\n").unwrap();
    std::fs::write(pki.path("empty-tokens"), "# nothing yet\n\n").unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--tls-cert".into(), pki.arg("server.pem")],
            "tls_cert is set without tls_key",
        ),
        (
            vec!["--tls-key".into(), pki.arg("server-key.pem")],
            "tls_key is set without tls_cert",
        ),
        (
            vec![
                "--tls-cert".into(),
                pki.arg("junk.pem"),
                "--tls-key".into(),
                pki.arg("server-key.pem"),
            ],
            "no PEM CERTIFICATE block found",
        ),
        (
            vec![
                "--tls-cert".into(),
                pki.arg("server.pem"),
                "--tls-key".into(),
                pki.arg("junk.pem"),
            ],
            "no usable private key",
        ),
        (
            // The key of another certificate.
            vec![
                "--tls-cert".into(),
                pki.arg("server.pem"),
                "--tls-key".into(),
                pki.arg("client-key.pem"),
            ],
            "TLS setup from tls_cert",
        ),
        (
            vec![
                "--tls-cert".into(),
                pki.arg("server.pem"),
                "--tls-key".into(),
                pki.arg("server-key.pem"),
                "--tls-client-ca".into(),
                pki.arg("missing.pem"),
            ],
            "cannot read tls_client_ca",
        ),
        (
            vec!["--auth-token-file".into(), pki.arg("empty-tokens")],
            "no token in the file",
        ),
        (
            vec!["--auth-token-file".into(), pki.arg("missing-tokens")],
            "cannot read auth_token_file",
        ),
    ];
    for (args, message) in cases {
        let child = Command::new(legatod_path().unwrap())
            .args([
                "--grpc-listen",
                "127.0.0.1:0",
                "--io",
                "epoll",
                "--check-config",
            ])
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = wait_bounded(child);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}

#[test]
fn non_loopback_listener_without_protection_warns() {
    // Listens on the wildcard address for a moment; no traffic is sent.
    let mut child = Command::new(legatod_path().unwrap())
        .args([
            "--grpc-listen",
            "0.0.0.0:0",
            "--io",
            "epoll",
            "--shards",
            "1",
        ])
        .args(["--port-min", "61000", "--port-max", "61019"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let ready = rx.recv_timeout(Duration::from_secs(30));
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = wait_bounded(child);
    let stderr = text(&out.stderr);
    assert!(
        ready
            .as_deref()
            .is_ok_and(|l| l.starts_with("legatod ready")),
        "{ready:?}: {stderr}"
    );
    assert!(stderr.contains("without TLS"), "{stderr}");
    assert!(stderr.contains("without client authentication"), "{stderr}");
}

#[test]
fn python_grpcio_over_tls_with_tokens() {
    let check = Command::new("python3")
        .args(["-c", "import grpc, grpc_tools, grpc_health"])
        .status();
    assert!(
        matches!(check, Ok(s) if s.success()),
        "python3 with grpcio, grpcio-tools and grpcio-health-checking is needed: run scripts/test.sh, which installs them"
    );
    let pki = Pki::new("python");
    let daemon = daemon_or_skip!(
        pki.server_args(Options::new(Io::Epoll), true)
            .arg("--auth-token-file")
            .arg(pki.arg("tokens"))
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/secure_client_test.py");
    let child = Command::new("python3")
        .arg(script)
        .arg(daemon.grpc.to_string())
        .arg(legato_proto::PROTO_DIR)
        .arg(&pki.dir)
        .arg(TOKEN_B)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3");
    let output = wait_bounded_long(child);
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    assert!(
        output.status.success(),
        "python client failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("python secure client: ok"), "{stdout}");
}

/// Like [`wait_bounded`] with room for Python to compile the .proto files
/// on a loaded machine.
fn wait_bounded_long(mut child: std::process::Child) -> Output {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("python did not finish in 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}
