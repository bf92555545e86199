//! A leg: one RTP endpoint towards a remote party (VoxEngine's `Call`).
//!
//! The leg owns its SDP negotiation, state (PROGRESSING → ALERTING →
//! EARLY_MEDIA → CONNECTED → TERMINATED), symmetric-RTP latching, receive
//! bookkeeping (first packet, RtpStopped/RtpResumed, hold) and its relayed
//! output stream. It is sans-IO: the shard hands it packets and the time,
//! and it answers with verdicts, forward plans and events.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use legato_dsp::codec::g711::Law;

use crate::rtp::RtpHeader;
use crate::sdp::{self, CodecKind, CodecSpec, LocalParams, MediaDirection, Negotiated};

use smallvec::SmallVec;

use super::media::{Endpoint, GENERATED, Source};
use super::rtcp::{RtcpConfig, RtcpSession};
use super::stats::{CodecInfo, JitterBufferStats, MediaStats};
use super::stream::OutStream;
use super::{EngineError, EventKind, EventSink};

/// A peer switching between negotiated formats is followed at most this
/// often (each switch re-plans the shard's media paths).
const FORMAT_SWITCH_EVERY: Duration = Duration::from_secs(1);

/// Call state as in the VoxEngine Call API, plus EARLY_MEDIA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum LegState {
    Progressing,
    Alerting,
    EarlyMedia,
    Connected,
    Terminated,
}

impl LegState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Progressing => "PROGRESSING",
            Self::Alerting => "ALERTING",
            Self::EarlyMedia => "EARLY_MEDIA",
            Self::Connected => "CONNECTED",
            Self::Terminated => "TERMINATED",
        }
    }
}

/// Controller metadata stored with a leg and returned verbatim.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Metadata {
    pub(crate) caller_id: String,
    pub(crate) display_name: String,
    pub(crate) number: String,
    /// Proto enum value of the client type.
    pub(crate) client_type: i32,
    pub(crate) custom_data: String,
}

/// Timing and policy knobs of legs, from the daemon configuration.
#[derive(Clone, Debug)]
pub(crate) struct LegParams {
    /// RtpStopped after this long without RTP on a connected leg.
    pub(crate) rtp_timeout: Duration,
    /// Minimum RTCP report interval (RFC 3550 §6.2).
    pub(crate) rtcp_interval: Duration,
    /// Early media ends (code 408) after this long without an answer.
    pub(crate) early_media_timeout: Duration,
    /// Another source may start probation only after the latched one has
    /// been silent this long (NAT rebinding).
    pub(crate) relatch_after: Duration,
    /// Consecutive in-sequence packets of one SSRC a source other than the
    /// SDP address must send before legato learns it (at least 1).
    pub(crate) probation_packets: u8,
    /// legato's own media sockets: SDP pointing there is refused.
    pub(crate) own_media: OwnMedia,
    /// Offer and accept RFC 4733 telephone-event.
    pub(crate) telephone_event: bool,
}

/// legato's own media sockets: the media address (and the advertised one)
/// with a port in the media range. SDP naming one is refused and datagrams
/// from one are dropped, so a leg can never be pointed at legato itself
/// (a media loop).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OwnMedia {
    pub(crate) media_address: IpAddr,
    pub(crate) advertised_address: IpAddr,
    pub(crate) port_min: u16,
    pub(crate) port_max: u16,
}

impl OwnMedia {
    /// Whether `addr` is (or may be) one of legato's own media sockets.
    /// With a wildcard media address every loopback address counts too;
    /// other addresses of the host's interfaces are not known here.
    pub(crate) fn contains(&self, addr: SocketAddr) -> bool {
        let port = addr.port();
        if port < self.port_min || port > self.port_max {
            return false;
        }
        let ip = addr.ip().to_canonical();
        ip == self.media_address
            || ip == self.advertised_address
            || (self.media_address.is_unspecified() && ip.is_loopback())
    }
}

/// Why a leg's media source changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SourceChange {
    /// The address in the remote SDP sent.
    SdpAddress,
    /// Another source passed probation.
    Probation,
}

/// A source that is not (yet) the leg's: how far it got through probation.
#[derive(Clone, Copy, Debug, Default)]
struct Probation {
    source: Option<SocketAddr>,
    ssrc: u32,
    next_sequence: u16,
    /// Consecutive in-sequence packets seen so far.
    count: u8,
}

/// What a received RTP packet carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PacketKind {
    Audio,
    TelephoneEvent,
}

/// How a leg gets its source's audio; chosen by `Legs::replan` whenever
/// routing, codecs or options change, never per packet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum MediaPath {
    /// No source.
    #[default]
    None,
    /// Packets forwarded as they are (same codec and packet duration).
    Relay,
    /// Packets forwarded with every G.711 code mapped to the sink's law
    /// (µ-law ↔ A-law, same packet duration): transcoding at the relay's
    /// cost, with no jitter buffer and no added delay.
    Convert { from: Law, to: Law },
    /// Decoded through a jitter buffer, mixed or resampled, re-encoded on
    /// the media clock.
    Pcm,
}

impl MediaPath {
    /// Whether the source's packets reach the leg on the relay path.
    pub(crate) fn is_relayed(self) -> bool {
        matches!(self, Self::Relay | Self::Convert { .. })
    }
}

/// Where and how to send one relayed packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ForwardPlan {
    /// The G.711 law conversion its payload needs, if any.
    pub(crate) convert: Option<(Law, Law)>,
    pub(crate) destination: SocketAddr,
    pub(crate) marker: bool,
    pub(crate) payload_type: u8,
    pub(crate) sequence: u16,
    pub(crate) timestamp: u32,
    pub(crate) ssrc: u32,
}

impl ForwardPlan {
    /// Writes the planned header fields into `packet`, an RTP packet of
    /// at least a fixed header.
    pub(crate) fn stamp(&self, packet: &mut [u8]) {
        crate::rtp::rewrite_header(
            packet,
            self.marker,
            self.payload_type,
            self.sequence,
            self.timestamp,
            self.ssrc,
        );
    }
}

/// The sources the kernel lets through to a leg's RTP socket, so that a
/// flood from anyone else is dropped before it takes room in the socket's
/// receive queue (`kernel_source_filter`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KernelFilter {
    /// Everyone (latching is open).
    Open,
    /// One address: the socket is connected to it.
    Only(SocketAddr),
    /// The SDP address and a source learned by probation.
    Pair(SocketAddr, SocketAddr),
}

/// What the shard must do after a timeout check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TimeoutAction {
    None,
    Hangup { code: u16, reason: String },
}

/// Changes requested by UpdateLeg.
#[derive(Clone, Debug, Default)]
pub(crate) struct LegUpdate {
    /// A remote SDP: `(is_offer, text)`.
    pub(crate) remote_sdp: Option<(bool, String)>,
    pub(crate) create_offer: bool,
    pub(crate) local_direction: Option<MediaDirection>,
    pub(crate) state: Option<LegState>,
}

/// Counters of a leg's media path. Each one is a Prometheus metric
/// through one line of `engine::metrics::LEG_COUNTERS`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub(crate) struct Counters {
    pub(crate) rtp_packets_received: u64,
    pub(crate) rtp_bytes_received: u64,
    pub(crate) rtp_packets_sent: u64,
    pub(crate) rtp_bytes_sent: u64,
    pub(crate) rtcp_packets_received: u64,
    pub(crate) malformed_packets: u64,
    pub(crate) unexpected_source_packets: u64,
    pub(crate) unsupported_payload_packets: u64,
    pub(crate) send_failures: u64,
    pub(crate) telephone_event_packets_received: u64,
    /// Packets routed to this leg that it did not send because it may not
    /// send now: not CONNECTED or in EARLY_MEDIA, on hold, or a direction
    /// that does not send.
    pub(crate) held_back_packets: u64,
    pub(crate) source_switches: u64,
    pub(crate) probation_packets: u64,
    pub(crate) oversize_packets: u64,
    pub(crate) loop_packets: u64,
    pub(crate) unsendable_payload_packets: u64,
}

impl Counters {
    /// Counts a datagram of `len` bytes sent to the remote party, or a
    /// send failure when it could not be queued.
    pub(crate) fn count_send(&mut self, sent: bool, len: usize) {
        if sent {
            self.rtp_packets_sent += 1;
            self.rtp_bytes_sent += len as u64;
        } else {
            self.send_failures += 1;
        }
    }
}

/// A snapshot of a leg for GetLeg/ListLegs.
#[derive(Clone, Debug)]
pub(crate) struct LegView {
    pub(crate) id: Arc<str>,
    pub(crate) session: Arc<str>,
    pub(crate) state: LegState,
    pub(crate) incoming: bool,
    pub(crate) metadata: Metadata,
    pub(crate) codec: Option<(CodecSpec, u8)>,
    pub(crate) telephone_event_pt: Option<u8>,
    pub(crate) local_rtp: SocketAddr,
    pub(crate) local_rtcp: SocketAddr,
    pub(crate) remote_rtp: Option<SocketAddr>,
    pub(crate) latched_rtp: Option<SocketAddr>,
    pub(crate) rtcp_mux: bool,
    pub(crate) remote_direction: Option<MediaDirection>,
    pub(crate) local_direction: MediaDirection,
    pub(crate) on_hold: bool,
    pub(crate) source: Option<Endpoint>,
    pub(crate) sinks: Vec<Arc<str>>,
    /// How the source reaches the leg.
    pub(crate) path: MediaPath,
    /// The playback the leg hears, if its source is a player.
    pub(crate) playback: Option<Arc<str>>,
    pub(crate) created_at: SystemTime,
    pub(crate) connected_at: Option<SystemTime>,
    pub(crate) counters: Counters,
    pub(crate) termination_code: u16,
    /// Whether the party is speaking (Call.vad()).
    pub(crate) voice_active: bool,
}

/// The local side of the leg's SDP.
#[derive(Debug)]
struct LocalSide {
    /// Address written in SDP (the advertised address).
    address: IpAddr,
    rtp_port: u16,
    rtcp_port: u16,
    codecs: Vec<CodecSpec>,
    rtcp_mux: bool,
    direction: MediaDirection,
    /// `a=ptime` legato writes, in ms.
    ptime: u32,
    sdp_session_id: u64,
    sdp_version: u64,
}

/// An offer legato made that awaits the remote answer.
#[derive(Clone, Copy, Debug)]
struct PendingOffer {
    direction: MediaDirection,
    version: u64,
}

/// A leg. See the module docs.
///
/// `repr(C)` keeps the declared order: the fields every relayed packet
/// reads or writes come first, so a packet touches a few adjacent cache
/// lines of its two legs instead of lines scattered over the struct.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct Leg {
    // Packet path: both directions.
    state: LegState,
    strict_source: bool,
    first_packet_seen: bool,
    rtp_stopped: bool,
    on_hold: bool,
    /// The address the RTP socket may be restricted to may have changed
    /// (see [`Leg::take_peer_change`]).
    peer_changed: bool,
    /// Slots of the legs that send this leg's received audio (relayed or
    /// through the PCM path).
    pub(crate) sinks: SmallVec<[u32; 2]>,
    /// Payload type of the audio format being received: the fast check of
    /// every packet.
    receive_pt: u8,
    /// How this leg's source reaches it: relayed packet by packet (as they
    /// are or G.711-converted) or through the PCM path. Set by
    /// `Legs::replan`.
    pub(crate) path: MediaPath,
    /// Audio sent to this leg always takes the PCM path (the controller's
    /// `always_transcode`).
    pub(crate) always_transcode: bool,
    /// SendDigits keys are being played: the leg's send side must exist
    /// (the PCM path, even with no source) until they are over.
    pub(crate) sending_digits: bool,
    /// SetToneHandling: the digits this leg receives are reported and
    /// removed from what its sinks get (they take the PCM path), unless
    /// `keep_tones`.
    pub(crate) handle_tones: bool,
    /// SetToneHandling's `keep_in_audio`: the digits are reported but left
    /// in the audio (its sinks may stay relayed).
    pub(crate) keep_tones: bool,
    /// Whether any of `sinks` is relayed (else the relay loop is skipped:
    /// every sink gets this leg's audio through the PCM path). Set by
    /// `Legs::replan`.
    pub(crate) relays: bool,
    latched: Option<SocketAddr>,
    last_from_latched: Option<Instant>,
    /// The SDP address has sent: it holds the latch until the SDP changes.
    sdp_locked: bool,
    /// A source learned by probation (NAT) has been silent for
    /// `relatch_after`: the kernel filter is lifted so that a new NAT
    /// mapping can pass probation (see [`Leg::kernel_filter`]).
    latched_quiet: bool,
    /// Reference point of RtpStopped: the last RTP packet, or when RTP
    /// became expected (connect, off hold).
    activity: Instant,
    last_rtp: Option<Instant>,
    /// Read by the timer sweep, like `activity` and `on_hold`.
    early_media_deadline: Option<Instant>,
    out: OutStream,
    media: Option<Negotiated>,
    pub(crate) counters: Counters,
    /// A source trying to replace the latched one (see `accept_source`).
    probation: Probation,
    // Control path.
    pub(crate) id: Arc<str>,
    pub(crate) session: Arc<str>,
    incoming: bool,
    audio_started: bool,
    termination_code: u16,
    metadata: Metadata,
    params: LegParams,
    created_at: SystemTime,
    connected: Option<(Instant, SystemTime)>,
    local: LocalSide,
    pending_offer: Option<PendingOffer>,
    /// What this leg sends to its remote party (its single source).
    pub(crate) source: Option<Source>,
    /// RTCP: reception statistics, reports sent and read (RFC 3550).
    rtcp: RtcpSession,
    /// MonitorMediaStatistics: the interval and when the next event is due.
    stats_every: Option<(Duration, Instant)>,
    /// The format the peer switched to, if it did (see `follow_format`).
    receive_codec: Option<CodecSpec>,
    last_format_switch: Option<Instant>,
    format_changed: bool,
}

/// What the controller asked for when creating a leg.
#[derive(Debug)]
pub(crate) struct LegRequest {
    pub(crate) incoming: bool,
    pub(crate) metadata: Metadata,
    /// The remote offer (incoming legs only).
    pub(crate) remote_offer: Option<String>,
    /// Codec preference.
    pub(crate) codecs: Vec<CodecSpec>,
    pub(crate) rtcp_mux: bool,
    pub(crate) strict_source: bool,
    pub(crate) local_direction: MediaDirection,
    /// Packet duration to ask for (`a=ptime`), in ms: 10, 20, ..., 60.
    pub(crate) ptime: u32,
    /// Audio sent to the leg always takes the PCM path.
    pub(crate) always_transcode: bool,
}

/// Arguments of [`Leg::new`]: the request plus what the engine assigned.
#[derive(Debug)]
pub(crate) struct NewLeg {
    pub(crate) id: Arc<str>,
    pub(crate) session: Arc<str>,
    pub(crate) request: LegRequest,
    pub(crate) advertised: IpAddr,
    pub(crate) rtp_port: u16,
    pub(crate) rtcp_port: u16,
    /// Random values for SSRC, initial sequence/timestamp and SDP ids.
    pub(crate) seeds: [u64; 2],
}

impl Leg {
    /// Creates a leg and makes its first SDP: the answer to `remote_offer`
    /// for an incoming leg, an offer for an outgoing one. Nothing is
    /// created when the SDP is unacceptable.
    pub(crate) fn new(
        args: NewLeg,
        params: LegParams,
        now: Instant,
        wall: SystemTime,
    ) -> Result<(Self, String), EngineError> {
        let [a, b] = args.seeds;
        let request = args.request;
        let cname = format!("{}@legato", args.id);
        let rtcp_config = RtcpConfig {
            min_interval: params.rtcp_interval,
            session_bandwidth: None,
        };
        let local = LocalSide {
            address: args.advertised,
            rtp_port: args.rtp_port,
            rtcp_port: args.rtcp_port,
            codecs: request.codecs,
            rtcp_mux: request.rtcp_mux,
            direction: request.local_direction,
            ptime: request.ptime,
            sdp_session_id: a >> 1,
            sdp_version: 1,
        };
        let mut rtcp = RtcpSession::new(b as u32, &cname, 8000, a ^ b, now);
        rtcp.set_config(now, rtcp_config);
        let mut leg = Self {
            id: args.id,
            session: args.session,
            incoming: request.incoming,
            metadata: request.metadata,
            state: LegState::Progressing,
            params,
            created_at: wall,
            connected: None,
            termination_code: 0,
            local,
            pending_offer: None,
            media: None,
            strict_source: request.strict_source,
            latched: None,
            last_from_latched: None,
            sdp_locked: false,
            latched_quiet: false,
            peer_changed: true,
            probation: Probation::default(),
            on_hold: false,
            audio_started: false,
            first_packet_seen: false,
            activity: now,
            last_rtp: None,
            rtp_stopped: false,
            early_media_deadline: None,
            counters: Counters::default(),
            source: None,
            sinks: SmallVec::new(),
            path: MediaPath::None,
            always_transcode: request.always_transcode,
            sending_digits: false,
            handle_tones: false,
            keep_tones: false,
            relays: false,
            receive_pt: u8::MAX,
            receive_codec: None,
            last_format_switch: None,
            format_changed: false,
            out: OutStream::new(b as u32, (b >> 32) as u16, (b >> 48) as u32 * 7919),
            rtcp,
            stats_every: None,
        };
        let sdp = if request.incoming {
            let offer = request.remote_offer.ok_or_else(|| {
                EngineError::InvalidArgument("an incoming leg needs the remote SDP offer".into())
            })?;
            let offer = sdp::parse(&offer)?;
            let (negotiated, answer) =
                sdp::answer(&offer, &leg.local_params(leg.local.sdp_version))?;
            leg.check_remote(&negotiated)?;
            leg.receive_pt = negotiated.local_payload_type;
            leg.rtcp.set_clock_rate(now, negotiated.codec.clock_rate);
            leg.media = Some(negotiated);
            answer
        } else {
            if request.remote_offer.is_some() {
                return Err(EngineError::InvalidArgument(
                    "an outgoing leg makes the offer: pass no remote SDP (send the answer with UpdateLeg)".into(),
                ));
            }
            let offer = sdp::build_offer(&leg.local_params(leg.local.sdp_version))?;
            leg.pending_offer = Some(PendingOffer {
                direction: leg.local.direction,
                version: leg.local.sdp_version,
            });
            offer
        };
        Ok((leg, sdp))
    }

    fn local_params(&self, version: u64) -> LocalParams<'_> {
        LocalParams {
            address: self.local.address,
            rtp_port: self.local.rtp_port,
            rtcp_port: self.local.rtcp_port,
            rtcp_mux: self.local.rtcp_mux,
            direction: self.local.direction,
            codecs: &self.local.codecs,
            telephone_event: self.params.telephone_event,
            session_id: self.local.sdp_session_id,
            version,
            ptime: self.local.ptime,
        }
    }

    pub(crate) fn is_terminated(&self) -> bool {
        self.state == LegState::Terminated
    }

    /// The call state (for metrics).
    pub(crate) fn state(&self) -> LegState {
        self.state
    }

    /// Reads the fields a relayed packet reads or writes and folds them
    /// into a meaningless value: the shard calls this for a whole batch of
    /// packets first, so their cache misses overlap.
    pub(crate) fn warm(&self) -> u64 {
        let media = self.media.as_ref().map_or(0, |m| {
            u64::from(m.payload_type)
                ^ u64::from(m.local_payload_type)
                ^ u64::from(m.remote_rtp.port())
                ^ u64::from(m.remote_on_hold_address)
                ^ u64::from(m.codec.clock_rate)
        });
        media
            ^ self.state as u64
            ^ self.latched.map_or(0, |a| u64::from(a.port()))
            ^ u64::from(self.last_rtp.is_some())
            ^ self.out.warm()
            ^ self.counters.rtp_packets_received
            ^ self.counters.rtp_bytes_received
            ^ self.counters.rtp_packets_sent
            ^ self.counters.rtp_bytes_sent
    }

    /// Negotiated codec, once SDP negotiation completed.
    pub(crate) fn codec(&self) -> Option<CodecSpec> {
        self.media.as_ref().map(|m| m.codec)
    }

    /// The packet duration (ms) legato sends to the remote party: what its
    /// SDP asked for, else legato's own.
    pub(crate) fn send_ptime(&self) -> u32 {
        self.media
            .as_ref()
            .map_or(self.local.ptime, |m| m.send_ptime_ms)
    }

    /// The packet duration (ms) the remote party is expected to send: the
    /// same as it asked for (most devices send what they ask to receive).
    pub(crate) fn receive_ptime(&self) -> u32 {
        self.send_ptime()
    }

    /// The Opus bit rate legato sends at: its own choice, lowered to the
    /// peer's `maxaveragebitrate` (RFC 7587 §6.1).
    pub(crate) fn opus_bitrate(&self) -> u32 {
        let own = super::media::OPUS_BITRATE;
        self.media
            .as_ref()
            .and_then(|m| m.opus)
            .and_then(|o| o.maxaveragebitrate)
            .map_or(own, |max| own.min(max))
    }

    /// The clock rate of the negotiated telephone events, if any.
    pub(crate) fn telephone_event_rate(&self) -> Option<u32> {
        self.media.as_ref()?.telephone_event_rate
    }

    /// Whether RTP and RTCP share the RTP port.
    pub(crate) fn rtcp_mux(&self) -> bool {
        self.media.as_ref().is_some_and(|m| m.rtcp_mux)
    }

    /// Applies an UpdateLeg request atomically: everything is validated
    /// before anything changes. Returns legato's new SDP, if one was made.
    pub(crate) fn update(
        &mut self,
        update: LegUpdate,
        now: Instant,
        wall: SystemTime,
        events: &mut impl EventSink,
    ) -> Result<Option<String>, EngineError> {
        if self.is_terminated() {
            return Err(EngineError::FailedPrecondition(format!(
                "leg '{}' is terminated",
                self.id
            )));
        }
        if let Some(target) = update.state {
            self.check_transition(target)?;
        }
        let direction = update.local_direction.unwrap_or(self.local.direction);
        let previous_direction = self.local.direction;
        // Compute the SDP outcome with the new direction, without committing.
        self.local.direction = direction;
        let outcome = self.negotiate(&update);
        if outcome.is_err() {
            self.local.direction = previous_direction;
        }
        let (negotiated, local_sdp, pending) = outcome?;
        if let Some(target) = update.state
            && matches!(target, LegState::EarlyMedia | LegState::Connected)
            && negotiated.is_none()
            && self.media.is_none()
        {
            self.local.direction = previous_direction;
            return Err(EngineError::FailedPrecondition(format!(
                "leg '{}' has no negotiated media yet: apply the remote SDP before {}",
                self.id,
                target.as_str()
            )));
        }
        // Commit.
        if local_sdp.is_some() {
            self.local.sdp_version += 1;
        }
        match pending {
            PendingChange::Keep => {}
            PendingChange::Clear => self.pending_offer = None,
            PendingChange::Set(p) => self.pending_offer = Some(p),
        }
        if let Some(negotiated) = negotiated {
            self.apply_media(negotiated, now, events);
        }
        if let Some(target) = update.state {
            self.enter_state(target, now, wall, events);
        }
        Ok(local_sdp)
    }

    fn negotiate(
        &self,
        update: &LegUpdate,
    ) -> Result<(Option<Negotiated>, Option<String>, PendingChange), EngineError> {
        let next_version = self.local.sdp_version + 1;
        match (&update.remote_sdp, update.create_offer) {
            (Some((true, _)), true) => Err(EngineError::InvalidArgument(
                "create_offer cannot be combined with a remote offer".into(),
            )),
            (Some((true, text)), false) => {
                if self.pending_offer.is_some() {
                    return Err(EngineError::FailedPrecondition(format!(
                        "leg '{}' has an offer of its own pending: apply the remote answer first",
                        self.id
                    )));
                }
                let offer = sdp::parse(text)?;
                let (negotiated, answer) = sdp::answer(&offer, &self.local_params(next_version))?;
                self.check_remote(&negotiated)?;
                Ok((Some(negotiated), Some(answer), PendingChange::Keep))
            }
            (Some((false, text)), create_offer) => {
                let Some(pending) = self.pending_offer else {
                    return Err(EngineError::InvalidArgument(format!(
                        "leg '{}' has no offer pending: send the remote SDP as an offer",
                        self.id
                    )));
                };
                let answer = sdp::parse(text)?;
                let mut params = self.local_params(pending.version);
                params.direction = pending.direction;
                let negotiated = sdp::apply_answer(&answer, &params)?;
                self.check_remote(&negotiated)?;
                if create_offer {
                    let offer = sdp::build_offer(&self.local_params(next_version))?;
                    Ok((
                        Some(negotiated),
                        Some(offer),
                        PendingChange::Set(PendingOffer {
                            direction: self.local.direction,
                            version: next_version,
                        }),
                    ))
                } else {
                    Ok((Some(negotiated), None, PendingChange::Clear))
                }
            }
            (None, true) => {
                let offer = sdp::build_offer(&self.local_params(next_version))?;
                Ok((
                    None,
                    Some(offer),
                    PendingChange::Set(PendingOffer {
                        direction: self.local.direction,
                        version: next_version,
                    }),
                ))
            }
            (None, false) => Ok((None, None, PendingChange::Keep)),
        }
    }

    /// Refuses remote addresses that are legato's own media sockets: media
    /// sent there would come back to legato and loop.
    fn check_remote(&self, negotiated: &Negotiated) -> Result<(), EngineError> {
        let own = &self.params.own_media;
        for (what, addr) in [
            ("RTP", negotiated.remote_rtp),
            ("RTCP", negotiated.remote_rtcp),
        ] {
            if own.contains(addr) {
                return Err(EngineError::InvalidArgument(format!(
                    "remote {what} address {addr} is one of legato's own media ports ({}-{}): the media would loop",
                    own.port_min, own.port_max
                )));
            }
        }
        Ok(())
    }

    fn check_transition(&self, target: LegState) -> Result<(), EngineError> {
        if target == LegState::Terminated {
            return Err(EngineError::InvalidArgument(
                "use HangupLeg to terminate a leg".into(),
            ));
        }
        if target < self.state {
            return Err(EngineError::InvalidArgument(format!(
                "leg '{}' cannot go back from {} to {}",
                self.id,
                self.state.as_str(),
                target.as_str()
            )));
        }
        Ok(())
    }

    fn apply_media(&mut self, negotiated: Negotiated, now: Instant, events: &mut impl EventSink) {
        let address_changed = self
            .media
            .as_ref()
            .is_none_or(|m| m.remote_rtp != negotiated.remote_rtp);
        if address_changed {
            // A new SDP address: latching starts over (it wins at once when
            // it sends; anything else goes through probation again).
            self.latched = None;
            self.last_from_latched = None;
            self.latched_quiet = false;
            self.sdp_locked = false;
            self.probation = Probation::default();
        }
        let hold = negotiated.remote_on_hold_address
            || matches!(
                negotiated.remote_direction,
                MediaDirection::SendOnly | MediaDirection::Inactive
            );
        let had_media = self.media.is_some();
        let codec_changed = self.media.as_ref().is_some_and(|m| {
            m.codec != negotiated.codec || m.payload_type != negotiated.payload_type
        });
        let remote_direction = negotiated.remote_direction;
        self.receive_pt = negotiated.local_payload_type;
        self.receive_codec = None;
        if codec_changed || !had_media {
            self.rtcp.set_clock_rate(now, negotiated.codec.clock_rate);
        }
        self.media = Some(negotiated);
        self.peer_changed = true;
        if codec_changed {
            self.out.reset_source();
        }
        if had_media && hold != self.on_hold {
            let kind = if hold {
                EventKind::OnHold { remote_direction }
            } else {
                self.activity = now;
                EventKind::OffHold { remote_direction }
            };
            events.emit(&self.session, Some(&self.id), kind);
        }
        self.on_hold = hold;
    }

    fn enter_state(
        &mut self,
        target: LegState,
        now: Instant,
        wall: SystemTime,
        events: &mut impl EventSink,
    ) {
        if target == self.state {
            return;
        }
        let old = self.state;
        self.state = target;
        events.emit(
            &self.session,
            Some(&self.id),
            EventKind::StateChanged { old, new: target },
        );
        match target {
            LegState::EarlyMedia => {
                self.early_media_deadline = Some(now + self.params.early_media_timeout);
                self.start_audio(events);
            }
            LegState::Connected => {
                self.early_media_deadline = None;
                self.connected = Some((now, wall));
                self.activity = now;
                let (codec, payload_type) = self
                    .media
                    .as_ref()
                    .map_or((None, 0), |m| (Some(m.codec), m.payload_type));
                events.emit(
                    &self.session,
                    Some(&self.id),
                    EventKind::Connected {
                        codec,
                        payload_type,
                    },
                );
                self.start_audio(events);
            }
            LegState::Progressing | LegState::Alerting | LegState::Terminated => {}
        }
    }

    fn start_audio(&mut self, events: &mut impl EventSink) {
        if !self.audio_started {
            self.audio_started = true;
            events.emit(&self.session, Some(&self.id), EventKind::AudioStarted);
        }
    }

    /// Terminates the leg with a SIP-style code (0: 200 when connected, 487
    /// otherwise). Emits Failed for an outgoing leg that never connected,
    /// Disconnected otherwise, as the VoxEngine Call API specifies. The
    /// caller removes routes and releases sockets.
    pub(crate) fn hangup(
        &mut self,
        code: u16,
        reason: &str,
        now: Instant,
        events: &mut impl EventSink,
    ) -> Result<(), EngineError> {
        if self.is_terminated() {
            return Err(EngineError::FailedPrecondition(format!(
                "leg '{}' is already terminated",
                self.id
            )));
        }
        let code = match code {
            0 if self.connected.is_some() => 200,
            0 => 487,
            200..=699 => code,
            other => {
                return Err(EngineError::InvalidArgument(format!(
                    "hangup code {other} is not a SIP final response code (200..699)"
                )));
            }
        };
        let old = self.state;
        self.state = LegState::Terminated;
        self.termination_code = code;
        self.early_media_deadline = None;
        events.emit(
            &self.session,
            Some(&self.id),
            EventKind::StateChanged {
                old,
                new: LegState::Terminated,
            },
        );
        let reason = reason.to_owned();
        let kind = match self.connected {
            None if !self.incoming => EventKind::Failed { code, reason },
            connected => EventKind::Disconnected {
                code,
                reason,
                duration_seconds: connected.map_or(0.0, |(at, _)| {
                    now.saturating_duration_since(at).as_secs_f64()
                }),
            },
        };
        events.emit(&self.session, Some(&self.id), kind);
        Ok(())
    }

    /// Periodic check: RtpStopped and the early-media limit.
    pub(crate) fn handle_timeout(
        &mut self,
        now: Instant,
        events: &mut impl EventSink,
    ) -> TimeoutAction {
        if !self.latched_quiet
            && !self.sdp_locked
            && self.latched.is_some()
            && self
                .last_from_latched
                .is_some_and(|t| now.saturating_duration_since(t) >= self.params.relatch_after)
        {
            self.latched_quiet = true;
            self.peer_changed = true;
        }
        if let Some(deadline) = self.early_media_deadline
            && self.state == LegState::EarlyMedia
            && now >= deadline
        {
            return TimeoutAction::Hangup {
                code: 408,
                reason: format!(
                    "not answered within {} s of early media",
                    self.params.early_media_timeout.as_secs()
                ),
            };
        }
        if self.expects_rtp() && !self.rtp_stopped {
            let silence = now.saturating_duration_since(self.activity);
            if silence >= self.params.rtp_timeout {
                self.rtp_stopped = true;
                events.emit(
                    &self.session,
                    Some(&self.id),
                    EventKind::RtpStopped {
                        silence_ms: silence.as_millis() as u64,
                    },
                );
            }
        }
        TimeoutAction::None
    }

    /// Whether the remote party should be sending RTP now: connected, not
    /// on hold, and its SDP direction sends.
    fn expects_rtp(&self) -> bool {
        self.state == LegState::Connected
            && !self.on_hold
            && self
                .media
                .as_ref()
                .is_some_and(|m| m.remote_direction.sends())
    }

    /// Checks a received RTP packet's source and payload type and does the
    /// receive bookkeeping. Returns what it carries, or `None` when it must
    /// be dropped (the reason is counted).
    pub(crate) fn handle_rtp(
        &mut self,
        now: Instant,
        source: SocketAddr,
        header: &RtpHeader,
        len: usize,
        events: &mut impl EventSink,
    ) -> Option<PacketKind> {
        let Some(media) = self.media.as_ref() else {
            self.counters.unexpected_source_packets += 1;
            return None;
        };
        // The remote sends with the numbers legato put in its SDP (RFC 3264
        // §5.1); accept its own numbering too, as many devices use it.
        let pt = header.payload_type;
        let kind = if pt == self.receive_pt {
            PacketKind::Audio
        } else if Some(pt) == media.local_telephone_event_pt || Some(pt) == media.telephone_event_pt
        {
            PacketKind::TelephoneEvent
        } else {
            self.follow_format(now, pt)?
        };
        let media = self.media.as_ref()?;
        // RFC 4733 §2.3: a telephone-event payload is 4-byte event blocks.
        // (The event code is one byte: every value is representable, and
        // codes legato does not know are relayed for the far end to judge.)
        if kind == PacketKind::TelephoneEvent
            && (header.payload_len == 0 || !header.payload_len.is_multiple_of(4))
        {
            self.counters.malformed_packets += 1;
            return None;
        }
        let expected = media.remote_rtp;
        if !self.accept_source(now, source, expected, header, events) {
            return None;
        }
        self.counters.rtp_packets_received += 1;
        self.counters.rtp_bytes_received += len as u64;
        self.rtcp.on_rtp_received(
            now,
            header.ssrc,
            header.sequence,
            header.timestamp,
            header.payload_len,
        );
        if kind == PacketKind::TelephoneEvent {
            self.counters.telephone_event_packets_received += 1;
        }
        if !self.first_packet_seen && kind == PacketKind::Audio {
            self.first_packet_seen = true;
            events.emit(
                &self.session,
                Some(&self.id),
                EventKind::FirstAudioPacketReceived {
                    source,
                    payload_type: header.payload_type,
                    ssrc: header.ssrc,
                },
            );
        }
        if self.rtp_stopped {
            self.rtp_stopped = false;
            events.emit(
                &self.session,
                Some(&self.id),
                EventKind::RtpResumed {
                    gap_ms: now
                        .saturating_duration_since(self.last_rtp.unwrap_or(self.activity))
                        .as_millis() as u64,
                },
            );
        }
        self.last_rtp = Some(now);
        self.activity = now;
        Some(kind)
    }

    /// A packet whose payload type is not the one being received: the same
    /// format under the other side's number, a switch to another format of
    /// the exchange (RFC 3264 §5.1 lets the peer send any it answered
    /// with), or one never negotiated (counted and dropped). A switch is
    /// followed at most once per [`FORMAT_SWITCH_EVERY`]; its first packet
    /// is dropped while the shard re-plans the leg's media path
    /// ([`Leg::take_format_change`]).
    fn follow_format(&mut self, now: Instant, pt: u8) -> Option<PacketKind> {
        let media = self.media.as_ref()?;
        let codec = if pt == media.local_payload_type || pt == media.payload_type {
            media.codec
        } else if let Some(codec) = media.receive_formats.codec_for(pt) {
            codec
        } else {
            self.counters.unsupported_payload_packets += 1;
            return None;
        };
        if codec == self.receive_codec() {
            self.receive_pt = pt;
            return Some(PacketKind::Audio);
        }
        if self
            .last_format_switch
            .is_some_and(|t| now.saturating_duration_since(t) < FORMAT_SWITCH_EVERY)
        {
            self.counters.unsupported_payload_packets += 1;
            return None;
        }
        self.receive_pt = pt;
        self.receive_codec = Some(codec);
        self.last_format_switch = Some(now);
        self.format_changed = true;
        None
    }

    /// Whether the peer switched to another negotiated format since the
    /// last call (the shard then re-plans the media path).
    pub(crate) fn take_format_change(&mut self) -> bool {
        std::mem::take(&mut self.format_changed)
    }

    /// The codec the peer currently sends (the negotiated one until it
    /// switches to another format of the exchange).
    pub(crate) fn receive_codec(&self) -> CodecSpec {
        match (self.receive_codec, self.media.as_ref()) {
            (Some(codec), _) => codec,
            (None, Some(media)) => media.codec,
            (None, None) => sdp::PCMU,
        }
    }

    /// Symmetric RTP latching, safe against "RTP bleed". Returns whether
    /// the packet is accepted; a refused one is counted here.
    ///
    /// - With strict source only the SDP address is accepted.
    /// - The SDP address always wins: its first packet makes it the source
    ///   (and the destination), and from then on it is never displaced
    ///   (until an SDP with another address arrives).
    /// - Any other source is learned only after a probation: `probation_packets`
    ///   consecutive in-sequence packets of one SSRC from it, while the
    ///   current source (if any) has been silent for `relatch_after`. Its
    ///   probation packets are dropped (counted), and a valid packet from the
    ///   current source cancels the probation. This keeps NAT'd parties (whose
    ///   SDP names an address they never send from) and NAT rebinding working.
    ///
    /// Every change of source is counted and reported (MediaSourceChanged).
    /// The common case, a packet from the current source, costs one compare.
    fn accept_source(
        &mut self,
        now: Instant,
        source: SocketAddr,
        expected: SocketAddr,
        header: &RtpHeader,
        events: &mut impl EventSink,
    ) -> bool {
        if self.strict_source {
            if source != expected {
                self.counters.unexpected_source_packets += 1;
            }
            return source == expected;
        }
        if self.latched == Some(source) {
            self.last_from_latched = Some(now);
            if self.latched_quiet {
                // The learned source is back: filter again.
                self.latched_quiet = false;
                self.peer_changed = true;
            }
            if self.probation.count != 0 {
                self.probation.count = 0;
            }
            return true;
        }
        if source == expected {
            self.sdp_locked = true;
            self.switch_source(now, source, header.ssrc, SourceChange::SdpAddress, events);
            return true;
        }
        let current_active = self.latched.is_some()
            && self
                .last_from_latched
                .is_some_and(|t| now.saturating_duration_since(t) < self.params.relatch_after);
        if self.sdp_locked || current_active {
            self.counters.unexpected_source_packets += 1;
            return false;
        }
        let p = &mut self.probation;
        if p.count > 0
            && p.source == Some(source)
            && p.ssrc == header.ssrc
            && p.next_sequence == header.sequence
        {
            p.count = p.count.saturating_add(1);
        } else {
            *p = Probation {
                source: Some(source),
                ssrc: header.ssrc,
                next_sequence: 0,
                count: 1,
            };
        }
        p.next_sequence = header.sequence.wrapping_add(1);
        self.counters.probation_packets += 1;
        if self.probation.count >= self.params.probation_packets.max(1) {
            self.switch_source(now, source, header.ssrc, SourceChange::Probation, events);
        }
        // The packets of the probation itself are never relayed.
        false
    }

    /// Makes `source` the leg's source (and destination), counting and
    /// reporting the change when there was a different one or none.
    fn switch_source(
        &mut self,
        now: Instant,
        source: SocketAddr,
        ssrc: u32,
        reason: SourceChange,
        events: &mut impl EventSink,
    ) {
        let old = self.latched.replace(source);
        self.last_from_latched = Some(now);
        self.probation = Probation::default();
        self.latched_quiet = false;
        self.peer_changed = true;
        // The first packet from the SDP address changes nothing a peer
        // sees: legato was sending there already.
        if old.is_none() && reason == SourceChange::SdpAddress {
            return;
        }
        self.counters.source_switches += 1;
        events.emit(
            &self.session,
            Some(&self.id),
            EventKind::MediaSourceChanged {
                old,
                new: source,
                ssrc,
                reason,
            },
        );
    }

    /// `Some(peer)` when the one address the RTP socket may receive from
    /// could have changed since the last call; the shard then connects the
    /// socket to `peer` (or, with `None`, unconnects it), so the kernel
    /// drops everyone else's datagrams before they take room in the
    /// socket's receive queue. Cheap when nothing changed: one flag.
    pub(crate) fn take_peer_change(&mut self) -> Option<KernelFilter> {
        if !self.peer_changed {
            return None;
        }
        self.peer_changed = false;
        Some(self.kernel_filter())
    }

    /// Which sources the kernel should let through to the RTP socket:
    ///
    /// - settled ([`Leg::kernel_peer`]): only that address (a connected
    ///   socket);
    /// - a source learned by probation (a NAT'd party) that is sending:
    ///   that source and the SDP address (which always wins), through a
    ///   socket filter; when the learned source falls silent for
    ///   `relatch_after`, everything again, so a new NAT mapping can pass
    ///   probation (a flood then meets no legitimate packets to push out);
    /// - otherwise everything: latching is open.
    pub(crate) fn kernel_filter(&self) -> KernelFilter {
        if let Some(peer) = self.kernel_peer() {
            return KernelFilter::Only(peer);
        }
        match (self.latched, self.media.as_ref()) {
            (Some(learned), Some(media))
                if !self.latched_quiet
                    && !self.is_terminated()
                    && !media.remote_on_hold_address =>
            {
                KernelFilter::Pair(media.remote_rtp, learned)
            }
            _ => KernelFilter::Open,
        }
    }

    /// The address this leg accepts RTP from for good, if it is settled:
    /// the SDP address once it has sent (nothing displaces it), or with
    /// strict source from the start. `None` while latching is open, on an
    /// old-style hold address, or terminated.
    fn kernel_peer(&self) -> Option<SocketAddr> {
        if self.is_terminated() {
            return None;
        }
        let media = self.media.as_ref()?;
        if media.remote_on_hold_address {
            return None;
        }
        (self.strict_source || self.sdp_locked).then_some(media.remote_rtp)
    }

    /// Whether an RTCP datagram from `source` is acceptable: from the SDP's
    /// RTCP or RTP address, the latched RTP source, or (NAT'd party without
    /// rtcp-mux) the port after the latched one. With strict source only
    /// the SDP's RTCP address (its RTP address with rtcp-mux). A refused
    /// one is counted.
    pub(crate) fn accept_rtcp_source(&mut self, source: SocketAddr) -> bool {
        let Some(media) = self.media.as_ref() else {
            self.counters.unexpected_source_packets += 1;
            return false;
        };
        let ok = if self.strict_source {
            source == media.remote_rtcp
        } else {
            source == media.remote_rtcp
                || source == media.remote_rtp
                || self.latched.is_some_and(|l| {
                    l == source
                        || (l.ip() == source.ip() && l.port().checked_add(1) == Some(source.port()))
                })
        };
        if !ok {
            self.counters.unexpected_source_packets += 1;
        }
        ok
    }

    /// Handles an RTCP datagram from the peer (its source already
    /// accepted): reports are read for loss, jitter and round-trip time; a
    /// malformed compound packet is counted and changes nothing.
    pub(crate) fn handle_rtcp(&mut self, now: Instant, wall: SystemTime, data: &[u8]) {
        if self.rtcp.handle_rtcp(now, wall, data).is_ok() {
            self.counters.rtcp_packets_received += 1;
        } else {
            self.counters.malformed_packets += 1;
        }
    }

    /// An RTCP report due at `now`, written into `out` (at least
    /// `MAX_COMPOUND_LEN` bytes), with where to send it. Reports continue
    /// while on hold (RFC 3550 §6: RTCP flows whenever the session exists),
    /// but never to an old-style hold address.
    pub(crate) fn poll_rtcp(
        &mut self,
        now: Instant,
        wall: SystemTime,
        out: &mut [u8],
    ) -> Option<(usize, SocketAddr)> {
        if self.is_terminated() || self.rtcp.poll_timeout().is_none_or(|t| t > now) {
            return None;
        }
        let to = self.rtcp_destination()?;
        let len = self.rtcp.poll_transmit(now, wall, out)?;
        Some((len, to))
    }

    /// The RTCP BYE for teardown (with a last report), and where it goes.
    pub(crate) fn rtcp_bye(
        &mut self,
        now: Instant,
        wall: SystemTime,
        out: &mut [u8],
    ) -> Option<(usize, SocketAddr)> {
        let to = self.rtcp_destination()?;
        let len = self.rtcp.bye(now, wall, out)?;
        Some((len, to))
    }

    /// Where RTCP goes: the SDP's RTCP address, or with rtcp-mux the RTP
    /// destination (the latched source of a NAT'd party).
    fn rtcp_destination(&self) -> Option<SocketAddr> {
        let media = self.media.as_ref()?;
        if media.remote_on_hold_address {
            return None;
        }
        Some(if media.rtcp_mux {
            self.latched.unwrap_or(media.remote_rtp)
        } else {
            media.remote_rtcp
        })
    }

    /// GetStatistics: the leg's figures, with its receive side's jitter
    /// buffer and concealment when it has one.
    pub(crate) fn media_stats(
        &self,
        now: Instant,
        jitter_buffer: JitterBufferStats,
        concealed_frames: u64,
    ) -> MediaStats {
        let codec = self.media.as_ref().map(|m| CodecInfo {
            name: m.codec.name,
            clock_rate: m.codec.clock_rate,
            payload_type: m.payload_type,
        });
        MediaStats::new(
            self.counters,
            self.rtcp.stats(now),
            jitter_buffer,
            concealed_frames,
            codec,
        )
    }

    /// MonitorMediaStatistics: a MediaStatisticsReceived event every
    /// `interval` from `now` on, or none.
    pub(crate) fn monitor_stats(&mut self, interval: Option<Duration>, now: Instant) {
        self.stats_every = interval.map(|every| (every, now + every));
    }

    /// Whether a MediaStatisticsReceived event is due at `now` (the next
    /// one is then scheduled).
    pub(crate) fn stats_due(&mut self, now: Instant) -> bool {
        match &mut self.stats_every {
            Some((every, next)) if now >= *next && self.state != LegState::Terminated => {
                // Keep the cadence; after a stall, start again from now.
                *next += *every;
                if *next <= now {
                    *next = now + *every;
                }
                true
            }
            _ => false,
        }
    }

    /// Plans sending a packet relayed from source slot `source` with codec
    /// `codec`. Returns `None` (and counts why) when this leg cannot send it,
    /// and `None` without counting when its source goes through the PCM
    /// path instead (the packet then reaches it decoded).
    pub(crate) fn plan_forward(
        &mut self,
        now: Instant,
        source: u32,
        header: &RtpHeader,
        kind: PacketKind,
        codec: Option<CodecSpec>,
    ) -> Option<ForwardPlan> {
        match self.path {
            MediaPath::Relay => self.plan_send(now, source, header, kind, codec),
            MediaPath::Convert { from, to } => {
                if kind == PacketKind::TelephoneEvent {
                    return self.plan_send(now, source, header, kind, codec);
                }
                // Only the law the plan was made for is converted; after a
                // switch the first packets wait for the re-plan.
                if codec.and_then(|c| law_of(c.kind)) != Some(from) {
                    self.counters.unsendable_payload_packets += 1;
                    return None;
                }
                let own = self.codec();
                let mut plan = self.plan_send(now, source, header, kind, own)?;
                plan.convert = Some((from, to));
                Some(plan)
            }
            MediaPath::None | MediaPath::Pcm => None,
        }
    }

    /// Plans sending a packet the PCM path made for this leg (in its own
    /// codec); `header` carries the generated stream's numbering.
    pub(crate) fn plan_generated(
        &mut self,
        now: Instant,
        header: &RtpHeader,
        kind: PacketKind,
    ) -> Option<ForwardPlan> {
        let codec = self.codec();
        self.plan_send(now, GENERATED, header, kind, codec)
    }

    fn plan_send(
        &mut self,
        now: Instant,
        source: u32,
        header: &RtpHeader,
        kind: PacketKind,
        codec: Option<CodecSpec>,
    ) -> Option<ForwardPlan> {
        if !matches!(self.state, LegState::EarlyMedia | LegState::Connected) {
            self.counters.held_back_packets += 1;
            return None;
        }
        let Some(media) = self.media.as_ref() else {
            self.counters.held_back_packets += 1;
            return None;
        };
        if media.remote_on_hold_address
            || !media.remote_direction.receives()
            || !media.local_direction.sends()
        {
            self.counters.held_back_packets += 1;
            return None;
        }
        let payload_type = match kind {
            PacketKind::Audio if codec == Some(media.codec) => media.payload_type,
            PacketKind::TelephoneEvent => match media.telephone_event_pt {
                Some(pt) => pt,
                None => {
                    self.counters.unsendable_payload_packets += 1;
                    return None;
                }
            },
            PacketKind::Audio => {
                self.counters.unsendable_payload_packets += 1;
                return None;
            }
        };
        let destination = self.latched.unwrap_or(media.remote_rtp);
        let clock_rate = media.codec.clock_rate;
        let r = self.out.map(now, source, header, clock_rate);
        self.rtcp.on_rtp_sent(now, r.timestamp, header.payload_len);
        Some(ForwardPlan {
            convert: None,
            destination,
            marker: r.marker && kind == PacketKind::Audio || header.marker,
            payload_type,
            sequence: r.sequence,
            timestamp: r.timestamp,
            ssrc: self.out.ssrc,
        })
    }

    /// Whether packets routed to this leg are sent to its remote party now
    /// (EARLY_MEDIA or CONNECTED, media negotiated, not on hold either way):
    /// the cheap form of [`Leg::held_back_reason`].
    pub(crate) fn can_send(&self) -> bool {
        matches!(self.state, LegState::EarlyMedia | LegState::Connected)
            && self.media.as_ref().is_some_and(|media| {
                !media.remote_on_hold_address
                    && media.remote_direction.receives()
                    && media.local_direction.sends()
            })
    }

    /// Why packets routed to this leg are not sent to its remote party now,
    /// or `None` when they are.
    pub(crate) fn held_back_reason(&self) -> Option<String> {
        if !matches!(self.state, LegState::EarlyMedia | LegState::Connected) {
            return Some(format!(
                "leg '{}' is {}: media is held back until it is EARLY_MEDIA or CONNECTED",
                self.id,
                self.state.as_str()
            ));
        }
        let media = self.media.as_ref()?;
        if media.remote_on_hold_address || !media.remote_direction.receives() {
            return Some(format!(
                "leg '{}' is on hold (its remote party does not receive): media is held back until it is taken off hold",
                self.id
            ));
        }
        if !media.local_direction.sends() {
            return Some(format!(
                "leg '{}' has local direction {}: media is held back until it sends",
                self.id,
                media.local_direction.as_str()
            ));
        }
        None
    }

    /// When RTP was last received, if ever.
    pub(crate) fn last_rtp(&self) -> Option<Instant> {
        self.last_rtp
    }

    /// Forgets the relayed stream's source mapping (route changed).
    pub(crate) fn reset_out_source(&mut self) {
        self.out.reset_source();
    }

    /// A snapshot for the control plane; `source` names the leg's source,
    /// `names` resolves slots to leg ids.
    pub(crate) fn view(
        &self,
        source: Option<Endpoint>,
        names: impl Fn(u32) -> Option<Arc<str>>,
    ) -> LegView {
        let rtcp_mux = self.rtcp_mux();
        LegView {
            id: self.id.clone(),
            session: self.session.clone(),
            state: self.state,
            incoming: self.incoming,
            metadata: self.metadata.clone(),
            codec: self.media.as_ref().map(|m| (m.codec, m.payload_type)),
            telephone_event_pt: self.media.as_ref().and_then(|m| m.telephone_event_pt),
            local_rtp: SocketAddr::new(self.local.address, self.local.rtp_port),
            local_rtcp: if rtcp_mux {
                SocketAddr::new(self.local.address, self.local.rtp_port)
            } else {
                SocketAddr::new(self.local.address, self.local.rtcp_port)
            },
            remote_rtp: self.media.as_ref().map(|m| m.remote_rtp),
            latched_rtp: self.latched,
            rtcp_mux,
            remote_direction: self.media.as_ref().map(|m| m.remote_direction),
            local_direction: self.local.direction,
            on_hold: self.on_hold,
            path: if self.source.is_some() {
                self.path
            } else {
                MediaPath::None
            },
            playback: None,
            source,
            sinks: self.sinks.iter().filter_map(|&s| names(s)).collect(),
            created_at: self.created_at,
            connected_at: self.connected.map(|(_, w)| w),
            counters: self.counters,
            termination_code: self.termination_code,
            voice_active: false,
        }
    }
}

/// How an update changes the pending local offer.
#[derive(Debug)]
enum PendingChange {
    Keep,
    Clear,
    Set(PendingOffer),
}

/// The G.711 law of a codec, if it is G.711.
pub(crate) fn law_of(kind: CodecKind) -> Option<Law> {
    match kind {
        CodecKind::Pcmu => Some(Law::Ulaw),
        CodecKind::Pcma => Some(Law::Alaw),
        _ => None,
    }
}
