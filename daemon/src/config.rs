//! Daemon configuration: built-in defaults, overridden by a TOML file,
//! overridden by command-line flags, validated once into typed values.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::sdp::{self, CodecSpec};

/// Which I/O backend the engine shards use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IoMode {
    /// io_uring when the kernel allows it, epoll otherwise.
    #[default]
    Auto,
    /// io_uring only: startup fails if it is unavailable.
    Uring,
    /// epoll only.
    Epoll,
}

impl std::str::FromStr for IoMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "uring" | "io_uring" | "io-uring" => Ok(Self::Uring),
            "epoll" => Ok(Self::Epoll),
            other => Err(format!("unknown io backend '{other}' (auto, uring, epoll)")),
        }
    }
}

/// Log output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The configuration file, every field optional (see README "Configuration").
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// gRPC listen address.
    pub grpc_listen: Option<SocketAddr>,
    /// Prometheus metrics HTTP address (none: no endpoint).
    pub metrics_listen: Option<SocketAddr>,
    /// Address media sockets bind to.
    pub media_address: Option<IpAddr>,
    /// Address written into SDP (public address behind NAT).
    pub advertised_address: Option<IpAddr>,
    /// Lowest media port.
    pub port_min: Option<u16>,
    /// Highest media port.
    pub port_max: Option<u16>,
    /// Engine shard threads (0: one per CPU).
    pub shards: Option<usize>,
    /// I/O backend.
    pub io: Option<IoMode>,
    /// Most legs alive at once.
    pub max_legs: Option<usize>,
    /// Most sessions alive at once.
    pub max_sessions: Option<usize>,
    /// Codec preference, by SDP encoding name.
    pub codecs: Option<Vec<String>>,
    /// Packet duration legs ask for in their SDP, in ms.
    pub ptime_ms: Option<u32>,
    /// Offer rtcp-mux on outgoing legs.
    pub rtcp_mux: Option<bool>,
    /// Never latch to a source other than the SDP address.
    pub strict_source: Option<bool>,
    /// RtpStopped after this many ms without RTP.
    pub rtp_timeout_ms: Option<u64>,
    /// Minimum RTCP report interval, in ms.
    pub rtcp_interval_ms: Option<u64>,
    /// Early media ends after this many ms without answer.
    pub early_media_timeout_ms: Option<u64>,
    /// Another source may start probation after the latched one is silent
    /// this many ms.
    pub relatch_after_ms: Option<u64>,
    /// Consecutive in-sequence packets a source other than the SDP address
    /// sends before legato latches to it.
    pub latch_probation_packets: Option<u8>,
    /// Connect a leg's RTP socket to its source once that is settled.
    pub kernel_source_filter: Option<bool>,
    /// Events kept for WatchEvents resume.
    pub event_replay: Option<usize>,
    /// Live events buffered per watcher before it counts as lagging.
    pub event_watch_buffer: Option<usize>,
    /// Kernel receive buffer asked for each media socket, in bytes.
    pub socket_recv_buffer: Option<usize>,
    /// io_uring receive buffers per shard (a power of two).
    pub recv_buffers: Option<u32>,
    /// SCHED_FIFO priority of the shard threads (1-99); none: ordinary.
    pub realtime_priority: Option<u8>,
    /// At shutdown, the most ms spent delivering the last events.
    pub shutdown_drain_ms: Option<u64>,
    /// Most WatchEvents streams open at once.
    pub max_watchers: Option<usize>,
    /// Directories prompt files may be played from.
    pub prompt_dirs: Option<Vec<PathBuf>>,
    /// Largest prompt file, MiB.
    pub prompt_max_file_mb: Option<u64>,
    /// Longest prompt, seconds.
    pub prompt_max_seconds: Option<u32>,
    /// Decoded prompt audio cached, MiB.
    pub prompt_cache_mb: Option<usize>,
    /// Prompt decodes at once.
    pub prompt_workers: Option<usize>,
    /// Text-to-speech command (argv) instead of espeak-ng.
    pub tts_command: Option<Vec<String>>,
    /// Text-to-speech HTTP endpoint instead of a command.
    pub tts_url: Option<String>,
    /// Hosts http(s) prompts may be fetched from.
    pub prompt_hosts: Option<Vec<String>>,
    /// PEM certificates trusted for https prompts besides the webpki roots.
    pub prompt_ca_file: Option<PathBuf>,
    /// Directory of the on-disk prompt cache.
    pub prompt_cache_dir: Option<PathBuf>,
    /// Size of the on-disk prompt cache, MiB.
    pub prompt_cache_dir_mb: Option<u64>,
    /// HTTP/2 keepalive ping interval (and answer timeout) of gRPC
    /// connections, in ms; 0: no pings.
    pub grpc_keepalive_ms: Option<u64>,
    /// Default session idle limit in ms (0: none).
    pub session_idle_timeout_ms: Option<u64>,
    /// Default session lifetime limit in ms (0: none).
    pub session_max_duration_ms: Option<u64>,
    /// Log format.
    pub log_format: Option<LogFormat>,
    /// Directory recordings are written to.
    pub recording_dir: Option<PathBuf>,
    /// Recording file name template.
    pub recording_name: Option<String>,
    /// Free space kept in the recording directory, MiB.
    pub recording_min_free_mb: Option<u64>,
    /// Recording writer threads.
    pub recording_writers: Option<usize>,
    /// Base URL recordings are served under.
    pub recording_url_base: Option<String>,
    /// Recordings running at once, at most.
    pub max_recordings: Option<usize>,
    /// S3-compatible endpoint finished recordings are uploaded to.
    pub recording_upload_endpoint: Option<String>,
    /// Its bucket.
    pub recording_upload_bucket: Option<String>,
    /// Its signing region.
    pub recording_upload_region: Option<String>,
    /// Object key prefix.
    pub recording_upload_prefix: Option<String>,
    /// Upload attempts after the first.
    pub recording_upload_retries: Option<u32>,
    /// PEM certificate chain of the gRPC listener; turns TLS on.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// PEM CA bundle; when set, clients must present a certificate it signed.
    pub tls_client_ca: Option<PathBuf>,
    /// File of bearer tokens, one a line; when set, every RPC needs one.
    pub auth_token_file: Option<PathBuf>,
    /// The health service needs a token too.
    pub health_requires_auth: Option<bool>,
    /// Serve gRPC server reflection.
    pub reflection: Option<bool>,
}

/// Where finished recordings are uploaded (see `recording/upload.rs`).
#[derive(Clone, PartialEq, Eq)]
pub struct RecordingUpload {
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub prefix: String,
    pub retries: u32,
    pub access_key: String,
    pub secret_key: String,
}

impl std::fmt::Debug for RecordingUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingUpload")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("prefix", &self.prefix)
            .field("retries", &self.retries)
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .finish()
    }
}

impl FileConfig {
    /// Reads and parses a TOML configuration file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("invalid config file {}: {e}", path.display()))
    }

    /// Overlays `other` on `self`: every field set in `other` wins.
    pub fn overlay(self, other: Self) -> Self {
        Self {
            grpc_listen: other.grpc_listen.or(self.grpc_listen),
            metrics_listen: other.metrics_listen.or(self.metrics_listen),
            media_address: other.media_address.or(self.media_address),
            advertised_address: other.advertised_address.or(self.advertised_address),
            port_min: other.port_min.or(self.port_min),
            port_max: other.port_max.or(self.port_max),
            shards: other.shards.or(self.shards),
            io: other.io.or(self.io),
            max_legs: other.max_legs.or(self.max_legs),
            max_sessions: other.max_sessions.or(self.max_sessions),
            codecs: other.codecs.or(self.codecs),
            ptime_ms: other.ptime_ms.or(self.ptime_ms),
            rtcp_mux: other.rtcp_mux.or(self.rtcp_mux),
            strict_source: other.strict_source.or(self.strict_source),
            rtp_timeout_ms: other.rtp_timeout_ms.or(self.rtp_timeout_ms),
            rtcp_interval_ms: other.rtcp_interval_ms.or(self.rtcp_interval_ms),
            early_media_timeout_ms: other.early_media_timeout_ms.or(self.early_media_timeout_ms),
            relatch_after_ms: other.relatch_after_ms.or(self.relatch_after_ms),
            latch_probation_packets: other
                .latch_probation_packets
                .or(self.latch_probation_packets),
            kernel_source_filter: other.kernel_source_filter.or(self.kernel_source_filter),
            event_replay: other.event_replay.or(self.event_replay),
            event_watch_buffer: other.event_watch_buffer.or(self.event_watch_buffer),
            socket_recv_buffer: other.socket_recv_buffer.or(self.socket_recv_buffer),
            recv_buffers: other.recv_buffers.or(self.recv_buffers),
            realtime_priority: other.realtime_priority.or(self.realtime_priority),
            shutdown_drain_ms: other.shutdown_drain_ms.or(self.shutdown_drain_ms),
            max_watchers: other.max_watchers.or(self.max_watchers),
            prompt_dirs: other.prompt_dirs.or(self.prompt_dirs),
            prompt_max_file_mb: other.prompt_max_file_mb.or(self.prompt_max_file_mb),
            prompt_max_seconds: other.prompt_max_seconds.or(self.prompt_max_seconds),
            prompt_cache_mb: other.prompt_cache_mb.or(self.prompt_cache_mb),
            prompt_workers: other.prompt_workers.or(self.prompt_workers),
            tts_command: other.tts_command.or(self.tts_command),
            tts_url: other.tts_url.or(self.tts_url),
            prompt_hosts: other.prompt_hosts.or(self.prompt_hosts),
            prompt_ca_file: other.prompt_ca_file.or(self.prompt_ca_file),
            prompt_cache_dir: other.prompt_cache_dir.or(self.prompt_cache_dir),
            prompt_cache_dir_mb: other.prompt_cache_dir_mb.or(self.prompt_cache_dir_mb),
            grpc_keepalive_ms: other.grpc_keepalive_ms.or(self.grpc_keepalive_ms),
            session_idle_timeout_ms: other
                .session_idle_timeout_ms
                .or(self.session_idle_timeout_ms),
            session_max_duration_ms: other
                .session_max_duration_ms
                .or(self.session_max_duration_ms),
            log_format: other.log_format.or(self.log_format),
            recording_dir: other.recording_dir.or(self.recording_dir),
            recording_name: other.recording_name.or(self.recording_name),
            recording_min_free_mb: other.recording_min_free_mb.or(self.recording_min_free_mb),
            recording_writers: other.recording_writers.or(self.recording_writers),
            recording_url_base: other.recording_url_base.or(self.recording_url_base),
            max_recordings: other.max_recordings.or(self.max_recordings),
            recording_upload_endpoint: other
                .recording_upload_endpoint
                .or(self.recording_upload_endpoint),
            recording_upload_bucket: other
                .recording_upload_bucket
                .or(self.recording_upload_bucket),
            recording_upload_region: other
                .recording_upload_region
                .or(self.recording_upload_region),
            recording_upload_prefix: other
                .recording_upload_prefix
                .or(self.recording_upload_prefix),
            recording_upload_retries: other
                .recording_upload_retries
                .or(self.recording_upload_retries),
            tls_cert: other.tls_cert.or(self.tls_cert),
            tls_key: other.tls_key.or(self.tls_key),
            tls_client_ca: other.tls_client_ca.or(self.tls_client_ca),
            auth_token_file: other.auth_token_file.or(self.auth_token_file),
            health_requires_auth: other.health_requires_auth.or(self.health_requires_auth),
            reflection: other.reflection.or(self.reflection),
        }
    }
}

/// Validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// gRPC listen address (default 127.0.0.1:50051).
    pub grpc_listen: SocketAddr,
    /// Address of the Prometheus endpoint, `GET /metrics` over plain HTTP
    /// (default none: no endpoint). It has no authentication, so keep it
    /// on loopback or a management network.
    pub metrics_listen: Option<SocketAddr>,
    /// Address media sockets bind to (default 127.0.0.1).
    pub media_address: IpAddr,
    /// Address written into SDP (default: the media address).
    pub advertised_address: IpAddr,
    /// Media port range, inclusive (default 16384-32767: 8,192 pairs, below
    /// Linux's ephemeral ports, so a peer on legato's own address that
    /// binds port 0 is never mistaken for a media loop); each leg takes an
    /// even/odd pair (RTP, RTCP).
    pub port_min: u16,
    /// See `port_min`.
    pub port_max: u16,
    /// Engine shard threads (default: one per CPU).
    pub shards: usize,
    /// I/O backend (default auto).
    pub io: IoMode,
    /// Most legs alive at once (default 20,000).
    pub max_legs: usize,
    /// Most sessions alive at once (default 20,000).
    pub max_sessions: usize,
    /// Codec preference (default PCMU, PCMA, G722, opus).
    pub(crate) codecs: Vec<CodecSpec>,
    /// Packet duration (`a=ptime`) a leg asks for when its CreateLeg does
    /// not name one, in ms: 10, 20, 30, 40, 50 or 60 (default 20). What
    /// legato sends follows the remote's `a=ptime` instead.
    pub ptime_ms: u32,
    /// Offer rtcp-mux on outgoing legs (default true).
    pub rtcp_mux: bool,
    /// Never latch (default false: symmetric RTP latching on, with the
    /// RTP-bleed protections described at `latch_probation_packets`).
    pub strict_source: bool,
    /// RtpStopped timeout (default 7 s, per the Call API).
    pub rtp_timeout: Duration,
    /// Minimum RTCP report interval (default 5 s, RFC 3550 §6.2; reports
    /// go out at 0.5-1.5 times it, randomised).
    pub rtcp_interval: Duration,
    /// Early-media limit (default 60 s, per the Call API).
    pub early_media_timeout: Duration,
    /// How long the latched source must be silent before another source
    /// may start its probation (default 2 s). Never applies to the SDP
    /// address once it has sent: nothing displaces it.
    pub relatch_after: Duration,
    /// Probation of a new RTP source (default 5 packets, 1-255): a source
    /// other than the address in the remote SDP is learned (latched to,
    /// and sent to) only after this many consecutive in-sequence packets
    /// (one SSRC, sequence numbers +1 each) while the current source is
    /// silent; those packets are dropped. The SDP address needs none and,
    /// once it has sent, is never displaced. Five 20 ms packets cost a
    /// NAT'd party 100 ms of audio at the start of the call (and after a
    /// NAT rebinding); a stranger guessing the port must know nothing
    /// more than a consistent SSRC/sequence, but can never displace a
    /// party whose SDP address sends. 1 learns at the first packet.
    pub latch_probation_packets: u8,
    /// Once a leg's RTP source is settled for good (the SDP address has
    /// sent, or from the start with strict source), connect the leg's RTP
    /// socket to it (default true). The kernel then drops datagrams from
    /// any other source on arrival, before they take room in the socket's
    /// receive buffer: a junk flood on the leg's port costs the leg none of
    /// its party's packets, whatever the buffer size, and no shard time.
    /// Those datagrams are then not seen by legatod, so they are not in
    /// the leg's `unexpected_source_packets` (the kernel counts them as UDP
    /// "no port" errors, and answers with rate-limited ICMP port
    /// unreachable). A NAT'd party learned by probation gets a classic BPF
    /// socket filter instead while it sends (its address and the SDP
    /// address only, IPv4), lifted while it is silent for `relatch_after`
    /// so that a new NAT mapping can pass probation. Until a source is
    /// learned the socket is open to every source and the receive buffer
    /// is the only protection.
    pub kernel_source_filter: bool,
    /// Events retained for resume (default 65,536).
    pub event_replay: usize,
    /// Live events buffered per watcher before it gets EventsDropped
    /// (default 8,192).
    pub event_watch_buffer: usize,
    /// Kernel receive buffer asked for each media socket (default 16 KiB).
    /// Linux doubles it for bookkeeping and a small datagram costs about
    /// 768 bytes of it, so 16 KiB holds about 40 RTP packets: 800 ms of a
    /// 20 ms stream. That rides out scheduling hiccups, and under overload
    /// it bounds the queueing delay: older audio is useless to a call, so
    /// the kernel drops it instead of legatod relaying it seconds late.
    /// A junk flood on a leg's port does not fill it once the leg's source
    /// is settled (`kernel_source_filter`); before that (or for a NAT'd
    /// party learned by probation) a flood competes with the party for this
    /// buffer, and a larger one (256 KiB) trades the latency bound for
    /// surviving it. Measured in benches/README.md ("Junk flood").
    pub socket_recv_buffer: usize,
    /// Receive buffers (2 KiB each) in each io_uring shard's provided-buffer
    /// ring (default 4,096; a power of two, 64 to 32,768). A loop turn can
    /// take in at most this many datagrams before the sockets' own queues
    /// hold the rest; fewer buffers are reused sooner and so stay in cache.
    pub recv_buffers: u16,
    /// SCHED_FIFO priority for the shard threads, 1-99 (default none:
    /// ordinary scheduling). A shard at normal priority shares its core
    /// with kernel workers and whatever else runs there, each able to hold
    /// it off for milliseconds, which then shows as jitter on every call it
    /// relays. Needs CAP_SYS_NICE (or RLIMIT_RTPRIO); without it legatod
    /// warns and runs at normal priority.
    pub realtime_priority: Option<u8>,
    /// At SIGTERM, how long legatod keeps delivering the last events
    /// (every leg's Disconnected/Failed) to WatchEvents clients before it
    /// closes their connections and exits (default 3 s). A client that
    /// stopped reading cannot hold the shutdown longer than this.
    pub shutdown_drain: Duration,
    /// WatchEvents streams open at once (default 1,024); one more gets
    /// RESOURCE_EXHAUSTED. Each holds a 1,024-event queue and, when it
    /// asks for a replay, a copy of the retained window's references.
    pub max_watchers: usize,
    /// Directories StartPlayback may play files from (resolved; default
    /// none: any file legatod can read). A file outside them is refused
    /// with PERMISSION_DENIED.
    pub prompt_dirs: Vec<PathBuf>,
    /// Largest prompt file (default 64 MiB, 1 MiB to 4 GiB).
    pub prompt_max_file_bytes: u64,
    /// Longest prompt (default 3,600 s, 1 s to 24 h).
    pub prompt_max_seconds: u32,
    /// Decoded prompt audio the cache keeps (default 256 MiB, 1 MiB to
    /// 64 GiB), least recently used out first.
    pub prompt_cache_bytes: usize,
    /// Prompt decodes running at once (default 2, 1-64), off the shards;
    /// 64 more may wait, beyond which StartPlayback gets
    /// RESOURCE_EXHAUSTED.
    pub prompt_workers: usize,
    /// Say's text-to-speech command, as argv (default: espeak-ng): text on
    /// its standard input, a WAV file written to `{out}`; `{voice}` and
    /// `{lang}` are filled in (see `prompts/tts.rs`). No shell runs it.
    pub tts_command: Vec<String>,
    /// Say's text-to-speech HTTP endpoint (default none), instead of a
    /// command: legatod POSTs the text, language and voice as JSON and
    /// plays the audio it answers with (see `prompts/tts.rs`).
    pub tts_url: Option<String>,
    /// Hosts http(s) prompts may come from, redirects included: exact
    /// names or `*.suffix` (default none: any host).
    pub prompt_hosts: Vec<String>,
    /// Certificates (PEM, read from `prompt_ca_file` at start) trusted
    /// for https prompts and `tts_url` besides the webpki roots, e.g. a
    /// carrier's private CA.
    pub prompt_ca_pem: Option<Vec<u8>>,
    /// Directory of the on-disk prompt cache (default none: memory only):
    /// downloads and speech survive a restart there.
    pub prompt_cache_dir: Option<PathBuf>,
    /// Bytes the on-disk prompt cache may hold (default 1 GiB, 1 MiB to
    /// 1 TiB), least recently used out first.
    pub prompt_cache_dir_bytes: u64,
    /// legatod pings every gRPC connection this often over HTTP/2 and
    /// closes it when a ping is not answered within the same time (default
    /// 20 s). A controller that died without closing its connection would
    /// otherwise keep its WatchEvents streams (and their `max_watchers`
    /// places) open until the kernel's TCP timeout, hours later. `None`:
    /// no pings.
    pub grpc_keepalive: Option<Duration>,
    /// Idle limit of sessions whose CreateSession does not set one
    /// (default none): a session with no RPC naming it or its legs and no
    /// RTP on its legs for this long is deleted. Cleans up after a
    /// controller that crashed.
    pub session_idle_timeout: Option<Duration>,
    /// Lifetime limit of sessions whose CreateSession does not set one
    /// (default none).
    pub session_max_duration: Option<Duration>,
    /// Log format (default text).
    pub log_format: LogFormat,
    /// Where recordings are written (default `recordings` in legatod's
    /// working directory, made absolute at start; created at the first
    /// recording). At start legatod repairs the WAV
    /// and MP3 files an earlier run left unfinalized there.
    pub recording_dir: PathBuf,
    /// Recording file names, without extension (default
    /// `{start}-{session}-{leg}-{recording}`; `{start}` is UTC like
    /// `20261207T160405Z`). An existing file is never overwritten.
    pub recording_name: String,
    /// StartRecording answers RESOURCE_EXHAUSTED when the recording
    /// directory has less free space than this (default 256 MiB).
    pub recording_min_free_bytes: u64,
    /// Threads encoding and writing recordings (default 2, 1-64).
    pub recording_writers: usize,
    /// With it, RecordStarted and RecordStopped carry the file's URL: this
    /// base followed by the file name (default none).
    pub recording_url_base: Option<String>,
    /// Recordings running at once (default 1,000, 1-100,000); one more
    /// gets RESOURCE_EXHAUSTED. Each holds a ring (195 KB: 5 s of 8 kHz
    /// audio, 1 s at 48 kHz) between its shard and its writer.
    pub max_recordings: usize,
    /// Where finished recordings are uploaded (default none: they stay
    /// local only). Credentials come from the environment
    /// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`), read at start.
    pub recording_upload: Option<RecordingUpload>,
    /// TLS on the gRPC listener (default none: plain HTTP/2).
    pub tls: Option<TlsFiles>,
    /// File of accepted bearer tokens (default none: no token asked for).
    /// Read at startup; see `control::auth` for its format.
    pub auth_token_file: Option<PathBuf>,
    /// Whether `grpc.health.v1.Health` needs a token too (default false:
    /// load balancers and orchestrators probe it without credentials).
    pub health_requires_auth: bool,
    /// Whether gRPC server reflection is served (default true: grpcurl
    /// and similar tools work without the .proto files). It describes the
    /// API only, and is behind the token when one is configured.
    pub reflection: bool,
}

/// Where the gRPC listener's TLS material lives. The files are read and
/// checked once at startup (see `control::auth`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, the server's own certificate first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of that certificate.
    pub key: PathBuf,
    /// PEM bundle of the CAs that sign client certificates; when set, a
    /// client without a certificate signed by one of them is refused
    /// during the handshake (mutual TLS).
    pub client_ca: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Self::from_file(FileConfig::default())
            .unwrap_or_else(|e| unreachable!("defaults are valid: {e}"))
    }
}

impl Config {
    /// Validates a (merged) file configuration, filling in defaults.
    pub fn from_file(f: FileConfig) -> Result<Self, String> {
        let media_address = f.media_address.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        if media_address.is_unspecified() && f.advertised_address.is_none() {
            return Err(
                "media_address is a wildcard: set advertised_address so SDP names a reachable address"
                    .into(),
            );
        }
        let advertised_address = f.advertised_address.unwrap_or(media_address);
        if advertised_address.is_ipv4() != media_address.is_ipv4() {
            return Err("advertised_address and media_address must be the same IP family".into());
        }
        let port_min = f.port_min.unwrap_or(16_384);
        let port_max = f.port_max.unwrap_or(32_767);
        if port_min == 0 || port_min > port_max {
            return Err(format!("invalid port range {port_min}-{port_max}"));
        }
        let first_even = port_min + port_min % 2;
        if first_even.checked_add(1).is_none_or(|p| p > port_max) {
            return Err(format!(
                "port range {port_min}-{port_max} holds no even/odd pair (RTP needs an even port and the next odd one for RTCP)"
            ));
        }
        let shards = match f.shards.unwrap_or(0) {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n if n > 256 => return Err(format!("shards = {n}: at most 256")),
            n => n,
        };
        let codec_names = f.codecs.unwrap_or_else(|| {
            sdp::DEFAULT_CODEC_NAMES
                .iter()
                .map(|&name| name.to_owned())
                .collect()
        });
        let codecs = parse_codecs(&codec_names)?;
        let ptime_ms = match f.ptime_ms {
            None => sdp::DEFAULT_PTIME_MS,
            Some(ms) => check_ptime(ms).map_err(|e| format!("ptime_ms = {ms}: {e}"))?,
        };
        let ms = |v: Option<u64>, default: u64, name: &str| -> Result<Duration, String> {
            match v.unwrap_or(default) {
                0 => Err(format!("{name} must be above 0")),
                n => Ok(Duration::from_millis(n)),
            }
        };
        Ok(Self {
            grpc_listen: f
                .grpc_listen
                .unwrap_or_else(|| SocketAddr::from((Ipv4Addr::LOCALHOST, 50_051))),
            metrics_listen: f.metrics_listen,
            media_address,
            advertised_address,
            port_min,
            port_max,
            shards,
            io: f.io.unwrap_or_default(),
            max_legs: f.max_legs.unwrap_or(20_000).max(1),
            max_sessions: f.max_sessions.unwrap_or(20_000).max(1),
            codecs,
            ptime_ms,
            rtcp_mux: f.rtcp_mux.unwrap_or(true),
            strict_source: f.strict_source.unwrap_or(false),
            rtp_timeout: ms(f.rtp_timeout_ms, 7_000, "rtp_timeout_ms")?,
            rtcp_interval: match f.rtcp_interval_ms.unwrap_or(5_000) {
                ms @ 500..=60_000 => Duration::from_millis(ms),
                ms => {
                    return Err(format!(
                        "rtcp_interval_ms = {ms}: must be between 500 and 60000"
                    ));
                }
            },
            early_media_timeout: ms(f.early_media_timeout_ms, 60_000, "early_media_timeout_ms")?,
            relatch_after: ms(f.relatch_after_ms, 2_000, "relatch_after_ms")?,
            kernel_source_filter: f.kernel_source_filter.unwrap_or(true),
            latch_probation_packets: match f.latch_probation_packets.unwrap_or(5) {
                0 => return Err("latch_probation_packets must be 1 to 255".into()),
                n => n,
            },
            event_replay: f.event_replay.unwrap_or(65_536).clamp(16, 10_000_000),
            event_watch_buffer: f.event_watch_buffer.unwrap_or(8_192).clamp(16, 1_000_000),
            socket_recv_buffer: f
                .socket_recv_buffer
                .unwrap_or(16 * 1024)
                .clamp(4 * 1024, 64 * 1024 * 1024),
            recv_buffers: match f.recv_buffers.unwrap_or(4_096) {
                n @ 64..=32_768 if n.is_power_of_two() => n as u16,
                n => {
                    return Err(format!(
                        "recv_buffers = {n}: must be a power of two from 64 to 32768"
                    ));
                }
            },
            realtime_priority: match f.realtime_priority {
                None => None,
                Some(p @ 1..=99) => Some(p),
                Some(p) => {
                    return Err(format!("realtime_priority = {p}: must be 1 to 99"));
                }
            },
            max_watchers: f.max_watchers.unwrap_or(1_024).clamp(1, 100_000),
            prompt_dirs: f
                .prompt_dirs
                .unwrap_or_default()
                .into_iter()
                .map(|d| {
                    d.canonicalize()
                        .map_err(|e| format!("prompt_dirs: {}: {e}", d.display()))
                })
                .collect::<Result<_, _>>()?,
            prompt_max_file_bytes: f.prompt_max_file_mb.unwrap_or(64).clamp(1, 4096) << 20,
            prompt_max_seconds: f.prompt_max_seconds.unwrap_or(3600).clamp(1, 86_400),
            prompt_cache_bytes: f.prompt_cache_mb.unwrap_or(256).clamp(1, 65_536) << 20,
            prompt_workers: f.prompt_workers.unwrap_or(2).clamp(1, 64),
            tts_url: match (f.tts_url, &f.tts_command) {
                (Some(_), Some(_)) => {
                    return Err("tts_url and tts_command: configure one engine, not both".into());
                }
                (Some(url), None) => {
                    let parsed =
                        reqwest::Url::parse(&url).map_err(|e| format!("tts_url = {url:?}: {e}"))?;
                    if !matches!(parsed.scheme(), "http" | "https") {
                        return Err(format!("tts_url = {url:?}: must be http:// or https://"));
                    }
                    Some(url)
                }
                (None, _) => None,
            },
            tts_command: f.tts_command.unwrap_or_default(),
            prompt_hosts: {
                let hosts = f.prompt_hosts.unwrap_or_default();
                if let Some(bad) = hosts.iter().find(|h| {
                    let name = h.strip_prefix("*.").unwrap_or(h);
                    name.is_empty()
                        || name.len() > 253
                        || !name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c))
                }) {
                    return Err(format!(
                        "prompt_hosts: {bad:?} is not a host name (or *.suffix)"
                    ));
                }
                hosts
            },
            prompt_ca_pem: match f.prompt_ca_file {
                None => None,
                Some(path) => {
                    let pem = std::fs::read(&path)
                        .map_err(|e| format!("prompt_ca_file {}: {e}", path.display()))?;
                    match reqwest::Certificate::from_pem_bundle(&pem) {
                        Ok(certs) if !certs.is_empty() => Some(pem),
                        Ok(_) => {
                            return Err(format!(
                                "prompt_ca_file {}: no PEM certificate in it",
                                path.display()
                            ));
                        }
                        Err(e) => {
                            return Err(format!("prompt_ca_file {}: {e}", path.display()));
                        }
                    }
                }
            },
            prompt_cache_dir: f.prompt_cache_dir,
            prompt_cache_dir_bytes: f.prompt_cache_dir_mb.unwrap_or(1024).clamp(1, 1 << 20) << 20,
            grpc_keepalive: match f.grpc_keepalive_ms.unwrap_or(20_000) {
                0 => None,
                ms => Some(Duration::from_millis(ms.clamp(100, 3_600_000))),
            },
            shutdown_drain: Duration::from_millis(
                f.shutdown_drain_ms.unwrap_or(3_000).clamp(100, 600_000),
            ),
            session_idle_timeout: f
                .session_idle_timeout_ms
                .filter(|&ms| ms > 0)
                .map(Duration::from_millis),
            session_max_duration: f
                .session_max_duration_ms
                .filter(|&ms| ms > 0)
                .map(Duration::from_millis),
            log_format: f.log_format.unwrap_or_default(),
            recording_dir: {
                let dir = f
                    .recording_dir
                    .unwrap_or_else(|| PathBuf::from("recordings"));
                if dir.is_absolute() {
                    dir
                } else {
                    std::env::current_dir()
                        .map_err(|e| format!("recording_dir: no working directory: {e}"))?
                        .join(dir)
                }
            },
            recording_name: match f.recording_name {
                None => "{start}-{session}-{leg}-{recording}".to_owned(),
                Some(name) if name.is_empty() || name.len() > 200 || name.contains('/') => {
                    return Err(format!(
                        "recording_name = {name:?}: 1-200 characters, no '/'"
                    ));
                }
                Some(name) => name,
            },
            recording_min_free_bytes: f.recording_min_free_mb.unwrap_or(256).min(1 << 30) << 20,
            recording_writers: f.recording_writers.unwrap_or(2).clamp(1, 64),
            recording_url_base: f.recording_url_base,
            max_recordings: f.max_recordings.unwrap_or(1000).clamp(1, 100_000),
            recording_upload: match (f.recording_upload_endpoint, f.recording_upload_bucket) {
                (None, None) => None,
                (Some(endpoint), Some(bucket)) => {
                    let key = |name: &str| {
                        std::env::var(name).ok().filter(|v| !v.is_empty()).ok_or_else(|| {
                            format!("recording_upload_endpoint is set: {name} must be in the environment")
                        })
                    };
                    Some(RecordingUpload {
                        endpoint,
                        bucket,
                        region: f
                            .recording_upload_region
                            .unwrap_or_else(|| "us-east-1".to_owned()),
                        prefix: f.recording_upload_prefix.unwrap_or_default(),
                        retries: f.recording_upload_retries.unwrap_or(5).min(20),
                        access_key: key("AWS_ACCESS_KEY_ID")?,
                        secret_key: key("AWS_SECRET_ACCESS_KEY")?,
                    })
                }
                _ => {
                    return Err(
                        "recording_upload_endpoint and recording_upload_bucket go together".into(),
                    );
                }
            },
            tls: match (f.tls_cert, f.tls_key, f.tls_client_ca) {
                (Some(cert), Some(key), client_ca) => Some(TlsFiles {
                    cert,
                    key,
                    client_ca,
                }),
                (None, None, None) => None,
                (Some(_), None, _) => {
                    return Err("tls_cert is set without tls_key: TLS needs both".into());
                }
                (None, Some(_), _) => {
                    return Err("tls_key is set without tls_cert: TLS needs both".into());
                }
                (None, None, Some(_)) => {
                    return Err("tls_client_ca needs TLS: set tls_cert and tls_key as well".into());
                }
            },
            health_requires_auth: match (f.health_requires_auth, &f.auth_token_file) {
                (Some(true), None) => {
                    return Err(
                        "health_requires_auth needs auth_token_file: without tokens there is nothing to require"
                            .into(),
                    );
                }
                (value, _) => value.unwrap_or(false),
            },
            auth_token_file: f.auth_token_file,
            reflection: f.reflection.unwrap_or(true),
        })
    }
}

/// Checks a requested packet duration (configuration or CreateLeg): 10, 20,
/// 30, 40, 50 or 60 ms; the error says so.
pub(crate) fn check_ptime(ms: u32) -> Result<u32, &'static str> {
    if sdp::is_valid_ptime(ms) {
        Ok(ms)
    } else {
        Err("must be one of 10, 20, 30, 40, 50, 60 (ms)")
    }
}

/// Resolves codec names to codecs legato supports, keeping the order.
pub(crate) fn parse_codecs(names: &[String]) -> Result<Vec<CodecSpec>, String> {
    if names.is_empty() {
        return Err("the codec list is empty".into());
    }
    let mut codecs = Vec::with_capacity(names.len());
    for name in names {
        let codec = sdp::codec_by_name(name).ok_or_else(|| {
            format!(
                "unknown codec '{name}' (supported: {})",
                sdp::SUPPORTED_CODECS
                    .iter()
                    .map(|c| c.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
        if !codecs.contains(&codec) {
            codecs.push(codec);
        }
    }
    Ok(codecs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_readme() {
        let c = Config::default();
        assert_eq!(c.grpc_listen, "127.0.0.1:50051".parse().unwrap());
        assert_eq!((c.port_min, c.port_max), (16_384, 32_767));
        assert_eq!(c.rtp_timeout, Duration::from_secs(7));
        assert_eq!(c.early_media_timeout, Duration::from_secs(60));
        assert_eq!(
            c.codecs,
            [sdp::PCMU, sdp::PCMA, sdp::G722, sdp::OPUS],
            "PCMU, PCMA, G722, opus"
        );
        assert_eq!(c.ptime_ms, 20);
        assert_eq!(c.io, IoMode::Auto);
        assert_eq!(c.recv_buffers, 4_096);
        assert_eq!(c.realtime_priority, None);
        assert_eq!(c.metrics_listen, None);
        assert_eq!(c.latch_probation_packets, 5);
        assert_eq!(c.relatch_after, Duration::from_secs(2));
        assert_eq!(c.shutdown_drain, Duration::from_secs(3));
        assert_eq!(c.max_watchers, 1_024);
        assert_eq!(c.grpc_keepalive, Some(Duration::from_secs(20)));
        assert_eq!(c.session_idle_timeout, None);
        assert_eq!(c.session_max_duration, None);
        assert_eq!(c.tls, None);
        assert_eq!(c.auth_token_file, None);
        assert!(!c.health_requires_auth);
        assert!(c.reflection);
    }

    #[test]
    fn tls_files_come_in_pairs() {
        let c = Config::from_file(
            toml::from_str(
                "tls_cert = \"/etc/legato/cert.pem\"\ntls_key = \"/etc/legato/key.pem\"\nreflection = false\n",
            )
            .unwrap(),
        )
        .unwrap();
        let tls = c.tls.unwrap();
        assert_eq!(tls.cert, Path::new("/etc/legato/cert.pem"));
        assert_eq!(tls.client_ca, None);
        assert!(!c.reflection);
        for (text, message) in [
            ("tls_cert = \"c\"", "tls_cert is set without tls_key"),
            ("tls_key = \"k\"", "tls_key is set without tls_cert"),
            ("tls_client_ca = \"ca\"", "tls_client_ca needs TLS"),
            (
                "health_requires_auth = true",
                "health_requires_auth needs auth_token_file",
            ),
        ] {
            let err = Config::from_file(toml::from_str(text).unwrap()).unwrap_err();
            assert!(err.contains(message), "{text}: {err}");
        }
    }

    #[test]
    fn file_and_overlay() {
        let f: FileConfig = toml::from_str(
            "port_min = 40000\nport_max = 40009\nio = \"epoll\"\ncodecs = [\"pcma\"]\nmetrics_listen = \"127.0.0.1:9090\"\n",
        )
        .unwrap();
        let cli = FileConfig {
            port_max: Some(40_003),
            ..FileConfig::default()
        };
        let c = Config::from_file(f.overlay(cli)).unwrap();
        assert_eq!((c.port_min, c.port_max), (40_000, 40_003));
        assert_eq!(c.io, IoMode::Epoll);
        assert_eq!(c.codecs[0].name, "PCMA");
        assert_eq!(c.ptime_ms, 20);
        assert_eq!(c.metrics_listen, Some("127.0.0.1:9090".parse().unwrap()));
    }

    #[test]
    fn rejects_bad_values() {
        for text in [
            "port_min = 5\nport_max = 4",
            "port_min = 7\nport_max = 8",
            "codecs = [\"G729\"]",
            "ptime_ms = 0",
            "ptime_ms = 25",
            "ptime_ms = 70",
            "ptime_ms = 5",
            "codecs = []",
            "rtp_timeout_ms = 0",
            "recv_buffers = 1000",
            "recv_buffers = 32",
            "recv_buffers = 65536",
            "realtime_priority = 0",
            "latch_probation_packets = 0",
            "latch_probation_packets = 256",
            "realtime_priority = 100",
            "media_address = \"0.0.0.0\"",
            "bogus = 1",
        ] {
            let parsed: Result<FileConfig, _> = toml::from_str(text);
            let result = parsed
                .map_err(|e| e.to_string())
                .and_then(Config::from_file);
            assert!(result.is_err(), "{text}");
        }
    }

    #[test]
    fn codec_names_and_ptime() {
        let c = Config::from_file(
            toml::from_str("codecs = [\"OPUS\", \"g722\", \"Opus\"]\nptime_ms = 40\n").unwrap(),
        )
        .unwrap();
        assert_eq!(c.codecs, [sdp::OPUS, sdp::G722]);
        assert_eq!(c.ptime_ms, 40);
        for ms in [10, 20, 30, 40, 50, 60] {
            assert_eq!(check_ptime(ms), Ok(ms));
        }
        for ms in [0, 1, 15, 61, 70, 120, u32::MAX] {
            assert!(check_ptime(ms).is_err(), "{ms}");
        }
        let err = Config::from_file(toml::from_str("ptime_ms = 25").unwrap()).unwrap_err();
        assert_eq!(
            err,
            "ptime_ms = 25: must be one of 10, 20, 30, 40, 50, 60 (ms)"
        );
        let err = Config::from_file(toml::from_str("codecs = [\"G729\"]").unwrap()).unwrap_err();
        assert_eq!(
            err,
            "unknown codec 'G729' (supported: PCMU, PCMA, G722, opus)"
        );
    }

    /// Every key of the configuration file is in the README's
    /// configuration table, so the documentation cannot fall behind.
    #[test]
    fn every_key_is_documented() {
        let source = include_str!("config.rs");
        let readme = include_str!("../../README.md");
        let start = source.find("pub struct FileConfig").unwrap();
        let end = start + source[start..].find("\n}\n").unwrap();
        let keys: Vec<&str> = source[start..end]
            .lines()
            .filter_map(|l| l.trim().strip_prefix("pub "))
            .filter_map(|l| l.split(':').next())
            .filter(|k| !k.contains(' '))
            .collect();
        assert!(keys.len() > 20, "{keys:?}");
        for key in keys {
            assert!(
                readme.contains(&format!("`{key}`")),
                "config key {key} is missing from README.md's configuration table"
            );
        }
    }
}
