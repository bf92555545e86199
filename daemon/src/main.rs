//! legatod: command line → configuration, logging, engine, gRPC server,
//! signals. Runs with no configuration at all; see `legatod --help`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use legato_daemon::{Config, ControlSecurity, Engine, FileConfig, IoMode, LogFormat};
use tracing_subscriber::EnvFilter;

/// legato media-plane daemon: RTP legs, bridging and events, driven over
/// gRPC (legato.v1.MediaPlane).
#[derive(Debug, Parser)]
#[command(name = "legatod", version, about)]
struct Cli {
    /// TOML configuration file; flags override its values.
    #[arg(long, short = 'c', env = "LEGATO_CONFIG")]
    config: Option<PathBuf>,
    /// gRPC listen address [default: 127.0.0.1:50051].
    #[arg(long)]
    grpc_listen: Option<SocketAddr>,
    /// Serve Prometheus metrics (GET /metrics) on this address, e.g.
    /// 127.0.0.1:9090 [default: off].
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
    /// Address media sockets bind to [default: 127.0.0.1].
    #[arg(long)]
    media_address: Option<IpAddr>,
    /// Address written into SDP, e.g. the public address behind NAT
    /// [default: the media address].
    #[arg(long)]
    advertised_address: Option<IpAddr>,
    /// Lowest media port [default: 16384].
    #[arg(long)]
    port_min: Option<u16>,
    /// Highest media port [default: 32767].
    #[arg(long)]
    port_max: Option<u16>,
    /// Engine shard threads; 0 = one per CPU [default: 0].
    #[arg(long)]
    shards: Option<usize>,
    /// I/O backend: auto, uring or epoll [default: auto].
    #[arg(long)]
    io: Option<IoMode>,
    /// Most legs alive at once [default: 20000].
    #[arg(long)]
    max_legs: Option<usize>,
    /// Most sessions alive at once [default: 20000].
    #[arg(long)]
    max_sessions: Option<usize>,
    /// Codec preference, comma separated [default: PCMU,PCMA,G722,opus].
    #[arg(long, value_delimiter = ',')]
    codecs: Option<Vec<String>>,
    /// Packet duration legs ask for (a=ptime), ms: 10, 20, ..., 60 [default: 20].
    #[arg(long)]
    ptime_ms: Option<u32>,
    /// Do not offer rtcp-mux on outgoing legs.
    #[arg(long)]
    no_rtcp_mux: bool,
    /// Accept RTP only from the address in the remote SDP (no latching).
    #[arg(long)]
    strict_source: bool,
    /// RTP from a source other than the SDP address is learned after this
    /// many consecutive in-sequence packets (1-255) [default: 5].
    #[arg(long)]
    latch_probation_packets: Option<u8>,
    /// Another source may start probation after the latched one is silent
    /// this many ms [default: 2000].
    #[arg(long)]
    relatch_after_ms: Option<u64>,
    /// Do not connect a leg's RTP socket to its settled source (the kernel
    /// then delivers every source's datagrams and legatod filters them).
    #[arg(long)]
    no_kernel_source_filter: bool,
    /// RtpStopped after this many ms without RTP [default: 7000].
    #[arg(long)]
    rtp_timeout_ms: Option<u64>,
    /// Minimum RTCP report interval in ms, 500-60000 [default: 5000].
    #[arg(long)]
    rtcp_interval_ms: Option<u64>,
    /// End early media without answer after this many ms [default: 60000].
    #[arg(long)]
    early_media_timeout_ms: Option<u64>,
    /// Live events buffered per WatchEvents stream before the watcher gets
    /// EventsDropped [default: 8192].
    #[arg(long)]
    event_watch_buffer: Option<usize>,
    /// Kernel receive buffer per media socket in bytes [default: 16384].
    #[arg(long)]
    socket_recv_buffer: Option<usize>,
    /// io_uring receive buffers per shard, a power of two [default: 4096].
    #[arg(long)]
    recv_buffers: Option<u32>,
    /// Run the shard threads under SCHED_FIFO at this priority (1-99);
    /// needs CAP_SYS_NICE [default: ordinary scheduling].
    #[arg(long)]
    realtime_priority: Option<u8>,
    /// At SIGTERM, the most ms spent delivering the last events before
    /// exiting [default: 3000].
    #[arg(long)]
    shutdown_drain_ms: Option<u64>,
    /// Most WatchEvents streams open at once [default: 1024].
    #[arg(long)]
    max_watchers: Option<usize>,
    /// A directory StartPlayback may play files from (repeat for more);
    /// none: any file legatod can read.
    #[arg(long = "prompt-dir", value_name = "DIR")]
    prompt_dirs: Vec<PathBuf>,
    /// Largest prompt file in MiB [default: 64].
    #[arg(long)]
    prompt_max_file_mb: Option<u64>,
    /// Longest prompt in seconds [default: 3600].
    #[arg(long)]
    prompt_max_seconds: Option<u32>,
    /// Decoded prompt audio the cache keeps, in MiB [default: 256].
    #[arg(long)]
    prompt_cache_mb: Option<usize>,
    /// Prompt decodes running at once [default: 2].
    #[arg(long)]
    prompt_workers: Option<usize>,
    /// Say's text-to-speech command, one argument per flag (e.g.
    /// `--tts-command /opt/tts.sh --tts-command {lang} --tts-command
    /// {out}`); text on its input, a WAV written to {out} [default:
    /// espeak-ng].
    #[arg(long = "tts-command", value_name = "ARG", allow_hyphen_values = true)]
    tts_command: Vec<String>,
    /// Say's text-to-speech HTTP endpoint, instead of a command: the text,
    /// language and voice POSTed as JSON, audio expected back.
    #[arg(long, value_name = "URL")]
    tts_url: Option<String>,
    /// A host http(s) prompts may come from (repeat for more; `*.suffix`
    /// for its subdomains); none: any host.
    #[arg(long = "prompt-host", value_name = "HOST")]
    prompt_hosts: Vec<String>,
    /// PEM certificates trusted for https prompts besides the webpki roots.
    #[arg(long, value_name = "FILE")]
    prompt_ca_file: Option<PathBuf>,
    /// Directory of an on-disk prompt cache that survives restarts.
    #[arg(long, value_name = "DIR")]
    prompt_cache_dir: Option<PathBuf>,
    /// Size of the on-disk prompt cache in MiB [default: 1024].
    #[arg(long)]
    prompt_cache_dir_mb: Option<u64>,
    /// HTTP/2 keepalive ping interval and timeout of gRPC connections in
    /// ms, to find dead controllers; 0: no pings [default: 20000].
    #[arg(long)]
    grpc_keepalive_ms: Option<u64>,
    /// Delete sessions idle (no RPC, no RTP) this many ms; 0: never
    /// [default: 0]. CreateSession can set its own.
    #[arg(long)]
    session_idle_timeout_ms: Option<u64>,
    /// Delete sessions this many ms after creation; 0: never [default: 0].
    /// CreateSession can set its own.
    #[arg(long)]
    session_max_duration_ms: Option<u64>,
    /// PEM certificate chain for the gRPC listener; turns TLS on (needs
    /// --tls-key).
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// PEM bundle of CAs whose client certificates are accepted; makes a
    /// client certificate mandatory (mutual TLS).
    #[arg(long, value_name = "FILE")]
    tls_client_ca: Option<PathBuf>,
    /// File of bearer tokens, one a line (# comments); every RPC must carry
    /// `authorization: Bearer <token>`. SIGHUP re-reads it.
    #[arg(long, value_name = "FILE")]
    auth_token_file: Option<PathBuf>,
    /// The health service needs a bearer token too.
    #[arg(long)]
    health_requires_auth: bool,
    /// Do not serve gRPC server reflection.
    #[arg(long)]
    no_reflection: bool,
    /// Log format: text or json [default: text]. Levels via RUST_LOG.
    #[arg(long, value_parser = parse_log_format)]
    log_format: Option<LogFormat>,
    /// Directory recordings are written to [default: ./recordings].
    #[arg(long, value_name = "DIR")]
    recording_dir: Option<PathBuf>,
    /// Recording file names without extension, from {session}, {leg},
    /// {recording} and {start} [default: {start}-{session}-{leg}-{recording}].
    #[arg(long, value_name = "TEMPLATE")]
    recording_name: Option<String>,
    /// Free space kept in the recording directory, MiB [default: 256].
    #[arg(long)]
    recording_min_free_mb: Option<u64>,
    /// Threads encoding and writing recordings [default: 2].
    #[arg(long)]
    recording_writers: Option<usize>,
    /// Base URL of the recording directory, for the events' url field.
    #[arg(long, value_name = "URL")]
    recording_url_base: Option<String>,
    /// Recordings running at once, at most [default: 1000].
    #[arg(long)]
    max_recordings: Option<usize>,
    /// S3-compatible endpoint finished recordings are uploaded to (e.g.
    /// https://s3.eu-west-1.amazonaws.com); credentials from
    /// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
    #[arg(long, value_name = "URL")]
    recording_upload_endpoint: Option<String>,
    /// The bucket recordings are uploaded to.
    #[arg(long)]
    recording_upload_bucket: Option<String>,
    /// Signing region of the endpoint [default: us-east-1].
    #[arg(long)]
    recording_upload_region: Option<String>,
    /// Object key prefix (e.g. recordings/).
    #[arg(long)]
    recording_upload_prefix: Option<String>,
    /// Upload attempts after the first [default: 5].
    #[arg(long)]
    recording_upload_retries: Option<u32>,
    /// Print the effective configuration and exit.
    #[arg(long)]
    check_config: bool,
}

fn parse_log_format(s: &str) -> Result<LogFormat, String> {
    match s {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        other => Err(format!("unknown log format '{other}' (text, json)")),
    }
}

impl Cli {
    fn overrides(&self) -> FileConfig {
        FileConfig {
            grpc_listen: self.grpc_listen,
            metrics_listen: self.metrics_listen,
            media_address: self.media_address,
            advertised_address: self.advertised_address,
            port_min: self.port_min,
            port_max: self.port_max,
            shards: self.shards,
            io: self.io,
            max_legs: self.max_legs,
            max_sessions: self.max_sessions,
            codecs: self.codecs.clone(),
            ptime_ms: self.ptime_ms,
            rtcp_mux: self.no_rtcp_mux.then_some(false),
            strict_source: self.strict_source.then_some(true),
            latch_probation_packets: self.latch_probation_packets,
            relatch_after_ms: self.relatch_after_ms,
            kernel_source_filter: self.no_kernel_source_filter.then_some(false),
            rtp_timeout_ms: self.rtp_timeout_ms,
            rtcp_interval_ms: self.rtcp_interval_ms,
            early_media_timeout_ms: self.early_media_timeout_ms,
            log_format: self.log_format,
            recording_dir: self.recording_dir.clone(),
            recording_name: self.recording_name.clone(),
            recording_min_free_mb: self.recording_min_free_mb,
            recording_writers: self.recording_writers,
            recording_url_base: self.recording_url_base.clone(),
            max_recordings: self.max_recordings,
            recording_upload_endpoint: self.recording_upload_endpoint.clone(),
            recording_upload_bucket: self.recording_upload_bucket.clone(),
            recording_upload_region: self.recording_upload_region.clone(),
            recording_upload_prefix: self.recording_upload_prefix.clone(),
            recording_upload_retries: self.recording_upload_retries,
            event_watch_buffer: self.event_watch_buffer,
            socket_recv_buffer: self.socket_recv_buffer,
            recv_buffers: self.recv_buffers,
            realtime_priority: self.realtime_priority,
            shutdown_drain_ms: self.shutdown_drain_ms,
            max_watchers: self.max_watchers,
            prompt_dirs: (!self.prompt_dirs.is_empty()).then(|| self.prompt_dirs.clone()),
            prompt_max_file_mb: self.prompt_max_file_mb,
            prompt_max_seconds: self.prompt_max_seconds,
            prompt_cache_mb: self.prompt_cache_mb,
            prompt_workers: self.prompt_workers,
            tts_command: (!self.tts_command.is_empty()).then(|| self.tts_command.clone()),
            tts_url: self.tts_url.clone(),
            prompt_hosts: (!self.prompt_hosts.is_empty()).then(|| self.prompt_hosts.clone()),
            prompt_ca_file: self.prompt_ca_file.clone(),
            prompt_cache_dir: self.prompt_cache_dir.clone(),
            prompt_cache_dir_mb: self.prompt_cache_dir_mb,
            grpc_keepalive_ms: self.grpc_keepalive_ms,
            session_idle_timeout_ms: self.session_idle_timeout_ms,
            session_max_duration_ms: self.session_max_duration_ms,
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            tls_client_ca: self.tls_client_ca.clone(),
            auth_token_file: self.auth_token_file.clone(),
            health_requires_auth: self.health_requires_auth.then_some(true),
            reflection: self.no_reflection.then_some(false),
            ..FileConfig::default()
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let file = match &cli.config {
        Some(path) => match FileConfig::load(path) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("legatod: {e}");
                return ExitCode::from(2);
            }
        },
        None => FileConfig::default(),
    };
    let config = match Config::from_file(file.overlay(cli.overrides())) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("legatod: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing(config.log_format);
    // rustls takes its cryptography from whichever providers its crate
    // features enable; name ring explicitly, so a dependency that enables a
    // second provider cannot turn TLS setup into a run-time failure.
    #[allow(
        deprecated,
        reason = "ring lacks post-quantum key exchange, but builds with only a C compiler (aws-lc-rs is the heavier build)"
    )]
    let _ = rustls::crypto::ring::default_provider().install_default();
    // TLS files and tokens are read now, so a bad file is a configuration
    // error before anything listens.
    let security = match ControlSecurity::load(&config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("legatod: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    if cli.check_config {
        println!("{config:#?}");
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("legato-control")
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("legatod: cannot start the control runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config, security)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("legatod: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config, security: ControlSecurity) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.grpc_listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.grpc_listen))?;
    let grpc = listener.local_addr()?;
    let metrics = match config.metrics_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen for metrics on {addr}: {e}"))?,
        ),
        None => None,
    };
    let metrics_addr = metrics.as_ref().map(|l| l.local_addr()).transpose()?;
    for warning in security.exposure_warnings(grpc) {
        tracing::warn!("{warning}");
    }
    if let Some(tokens) = security.tokens() {
        tokio::spawn(reload_tokens_on_sighup(tokens.clone()));
    }
    let engine = Arc::new(Engine::start(config.clone())?);
    tracing::info!(
        grpc = %grpc,
        media = %config.media_address,
        ports = %format!("{}-{}", config.port_min, config.port_max),
        shards = config.shards,
        backend = engine.backend().as_str(),
        tls = security.is_tls(),
        mutual_tls = security.is_mutual_tls(),
        tokens = security.tokens().is_some(),
        "legatod ready"
    );
    if let Some(addr) = metrics_addr {
        tracing::info!(metrics = %addr, "Prometheus metrics at http://{addr}/metrics");
    }
    // The signal handlers exist before "ready" is printed: a SIGTERM from
    // then on starts the graceful shutdown, never the default action.
    let shutdown = shutdown_signal();
    // One machine-readable line on stdout for scripts and tests.
    let metrics_field = metrics_addr.map_or_else(String::new, |a| format!(" metrics={a}"));
    println!(
        "legatod ready grpc={grpc} backend={} shards={}{}{metrics_field}",
        engine.backend().as_str(),
        config.shards,
        if security.is_tls() { " tls=on" } else { "" }
    );
    legato_daemon::serve_secured(engine, listener, security, metrics, shutdown).await?;
    tracing::info!("legatod stopped");
    Ok(())
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed when this is
/// called, not when the future is first polled (which is later, inside the
/// server).
fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}

/// Re-reads the token file on each SIGHUP: how a token is rotated without
/// a restart. A file that does not parse leaves the tokens in use.
async fn reload_tokens_on_sighup(tokens: legato_daemon::TokenStore) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot watch SIGHUP, token reload is off: {e}");
            return;
        }
    };
    while hangup.recv().await.is_some() {
        match tokens.reload() {
            Ok(count) => tracing::info!(
                file = %tokens.path().display(),
                tokens = count,
                "SIGHUP: token file reloaded"
            ),
            Err(e) => tracing::error!("SIGHUP: {e}; the previous tokens stay in use"),
        }
    }
}

fn init_tracing(format: LogFormat) {
    // The prompt decoder's own log lines are off, whatever RUST_LOG says
    // (a directive there for one of these crates still wins): every
    // failure reaches the controller as PlaybackFinished with its reason,
    // and legatod logs it once itself.
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let asked = std::env::var("RUST_LOG").unwrap_or_default();
    for krate in [
        "symphonia_core",
        "symphonia_bundle_mp3",
        "symphonia_bundle_flac",
        "symphonia_format_riff",
        "symphonia_format_ogg",
        "symphonia_codec_pcm",
        "symphonia_codec_vorbis",
    ] {
        if !asked.contains(krate)
            && let Ok(directive) = format!("{krate}=off").parse()
        {
            filter = filter.add_directive(directive);
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
