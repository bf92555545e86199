//! The legato.v1 MediaPlane service: validates requests, sends commands to
//! the shard that owns the session, and awaits its reply. Handlers never
//! touch media state themselves.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use futures::Stream;
use legato_proto::v1 as pb;
use legato_proto::v1::media_plane_server::MediaPlane;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::convert;
use super::events::{EventHub, Filter, Subscription};
use super::limits::{self, quote};
use super::metrics::ControlMetrics;
use super::status::unimplemented;
use crate::config;
use crate::engine::{
    Admitted, Command, CreateLeg, Engine, Limit, Page, Reply, SessionLimits, Shared,
};
use crate::session::{LegRequest, LegUpdate, Metadata};

/// Events buffered per WatchEvents stream towards the client.
const WATCH_BUFFER: usize = 1024;

/// The MediaPlane implementation.
#[derive(Debug, Clone)]
pub(crate) struct Service {
    engine: Arc<Engine>,
    hub: Arc<EventHub>,
    stopping: Arc<AtomicBool>,
    closing: watch::Receiver<bool>,
    metrics: Arc<ControlMetrics>,
    /// WatchEvents streams open now.
    watchers: Arc<AtomicUsize>,
}

impl Service {
    pub(crate) fn new(
        engine: Arc<Engine>,
        hub: Arc<EventHub>,
        stopping: Arc<AtomicBool>,
        closing: watch::Receiver<bool>,
        metrics: Arc<ControlMetrics>,
    ) -> Self {
        Self {
            engine,
            hub,
            stopping,
            closing,
            metrics,
            watchers: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Sends a command to shard `shard` and awaits the reply.
    async fn call<T>(
        &self,
        shard: usize,
        make: impl FnOnce(Reply<T>) -> Command,
    ) -> Result<T, Status> {
        if self.stopping.load(Ordering::Relaxed) {
            return Err(Status::unavailable("legatod is shutting down"));
        }
        let (reply, rx) = oneshot::channel();
        self.engine.send(shard, make(reply))?;
        match rx.await {
            Ok(result) => result.map_err(Status::from),
            Err(_) => Err(Status::unavailable("legatod is shutting down")),
        }
    }

    /// Calls every shard and concatenates the results.
    async fn call_all<T>(&self, make: impl Fn(Reply<Vec<T>>) -> Command) -> Result<Vec<T>, Status> {
        let mut all = Vec::new();
        for shard in 0..self.engine.shard_count() {
            all.extend(self.call(shard, &make).await?);
        }
        Ok(all)
    }

    fn session_shard(&self, session: &str) -> usize {
        shard_of_session(session, self.engine.shard_count())
    }

    fn leg_shard(&self, leg: &str) -> Result<usize, Status> {
        leg_shard(leg)
            .filter(|&s| s < self.engine.shard_count())
            .ok_or_else(|| Status::not_found(format!("no such leg {}", quote(leg))))
    }

    /// Fails with NOT_FOUND unless leg `leg` exists (on its shard).
    async fn check_leg_exists(&self, leg: &str) -> Result<(), Status> {
        let shard = self.leg_shard(leg)?;
        let id: Arc<str> = leg.into();
        self.call(shard, |reply| Command::GetLeg { leg: id, reply })
            .await
            .map(drop)
    }

    /// The two legs of a route, on one shard; NOT_FOUND when either does
    /// not exist, INVALID_ARGUMENT when they are in different sessions.
    async fn route_shard(&self, from: &str, to: &str) -> Result<usize, Status> {
        let shard = self.leg_shard(from)?;
        let to_shard = self.leg_shard(to)?;
        if to_shard != shard {
            // Different shards mean different sessions, but an unknown id
            // is the more useful answer when one of them does not exist.
            self.check_leg_exists(from).await?;
            self.check_leg_exists(to).await?;
            return Err(Status::invalid_argument(format!(
                "legs '{from}' and '{to}' belong to different sessions"
            )));
        }
        Ok(shard)
    }
}

/// One listing page from every shard, merged in id order and cut to the
/// page size and [`limits::MAX_PAGE_BYTES`]. Returns the items and the next
/// page token (empty on the last page).
fn merge_page<T, P: prost::Message>(
    mut items: Vec<T>,
    limit: usize,
    id: impl Fn(&T) -> &str,
    encode: impl Fn(&T) -> P,
) -> (Vec<P>, String) {
    items.sort_unstable_by(|a, b| id(a).cmp(id(b)));
    let more = items.len() > limit;
    items.truncate(limit);
    let mut page = Vec::with_capacity(items.len());
    let mut bytes = 0;
    let mut next = String::new();
    for (i, item) in items.iter().enumerate() {
        let encoded = encode(item);
        // Field tag, length prefix and body of one repeated entry.
        let len = encoded.encoded_len() + 8;
        if i > 0 && bytes + len > limits::MAX_PAGE_BYTES {
            next = id(&items[i - 1]).to_owned();
            return (page, next);
        }
        bytes += len;
        page.push(encoded);
    }
    if more && let Some(last) = items.last() {
        next = id(last).to_owned();
    }
    (page, next)
}

/// The page a listing request asks for.
fn requested_page(page_size: u32, token: String) -> Result<Page, Status> {
    limits::at_most(&token, limits::MAX_PAGE_TOKEN, "page_token")?;
    Ok(Page {
        after: (!token.is_empty()).then(|| token.as_str().into()),
        // One more than asked, to know whether another page follows.
        limit: limits::page_size(page_size)? + 1,
    })
}

fn millis(d: Option<std::time::Duration>) -> u64 {
    d.map_or(0, |d| d.as_millis() as u64)
}

fn limit_from(ms: u64, default: Option<std::time::Duration>) -> Option<std::time::Duration> {
    match ms {
        0 => default,
        ms => Some(std::time::Duration::from_millis(ms)),
    }
}

/// The shard that owns a session: FNV-1a of its id.
fn shard_of_session(session: &str, shards: usize) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in session.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % shards.max(1) as u64) as usize
}

/// Leg ids are 16 random hex digits followed by 4 hex digits naming the
/// shard, so any leg RPC finds its shard without a shared directory.
fn new_leg_id(shard: usize) -> String {
    format!("{:016x}{:04x}", fastrand::u64(..), shard)
}

fn leg_shard(leg: &str) -> Option<usize> {
    if leg.len() != 20 || !leg.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    usize::from_str_radix(leg.get(16..)?, 16).ok()
}

/// Binds a free port pair. Pairs of legs that were just hung up come back
/// once the shard closed their sockets (within a loop turn), so a short
/// wait for them is worth it before reporting exhaustion. Cancelling the
/// wait loses nothing: a pair is only ever held by its guard.
async fn allocate_ports(shared: &Arc<Shared>) -> Option<crate::engine::PortPair> {
    for _ in 0..100 {
        if let Some(pair) = shared.ports.allocate() {
            return Some(pair);
        }
        if !shared.ports.has_closing() {
            return None;
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    None
}

fn required<'a>(value: &'a str, what: &str) -> Result<&'a str, Status> {
    if value.is_empty() {
        Err(Status::invalid_argument(format!("{what} is required")))
    } else {
        Ok(value)
    }
}

fn leg_endpoint(endpoint: Option<&pb::MediaEndpoint>, what: &str) -> Result<String, Status> {
    match endpoint.and_then(|e| e.endpoint.as_ref()) {
        Some(pb::media_endpoint::Endpoint::LegId(id)) if id.len() > limits::LEG_ID_LEN => {
            Err(Status::not_found(format!("no such leg {}", quote(id))))
        }
        Some(pb::media_endpoint::Endpoint::LegId(id)) if !id.is_empty() => Ok(id.clone()),
        Some(pb::media_endpoint::Endpoint::ConferenceId(_)) => Err(unimplemented(
            "SendMedia/StopMedia",
            "routing to or from conferences",
        )),
        _ => Err(Status::invalid_argument(format!("{what} must name a leg"))),
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::Event, Status>> + Send>>;
type AudioStream = Pin<Box<dyn Stream<Item = Result<pb::StreamAudioResponse, Status>> + Send>>;

#[tonic::async_trait]
impl MediaPlane for Service {
    async fn create_session(
        &self,
        request: Request<pb::CreateSessionRequest>,
    ) -> Result<Response<pb::CreateSessionResponse>, Status> {
        let req = request.into_inner();
        let mut id = req.session_id;
        if id.is_empty() {
            id = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        }
        limits::session_id(&id)?;
        let shared = self.engine.shared();
        let limits = SessionLimits {
            idle_timeout: limit_from(req.idle_timeout_ms, shared.config.session_idle_timeout),
            max_duration: limit_from(req.max_duration_ms, shared.config.session_max_duration),
        };
        // The unit travels with the command: the shard keeps it, or it
        // comes back when dropped, whatever happens to this call.
        let admitted = Admitted::take(shared, Limit::Sessions)?;
        let session: Arc<str> = id.as_str().into();
        self.call(self.session_shard(&id), |reply| Command::CreateSession {
            id: session,
            admitted,
            limits,
            reply,
        })
        .await?;
        Ok(Response::new(pb::CreateSessionResponse { session_id: id }))
    }

    async fn delete_session(
        &self,
        request: Request<pb::DeleteSessionRequest>,
    ) -> Result<Response<pb::DeleteSessionResponse>, Status> {
        let id = request.into_inner().session_id;
        required(&id, "session_id")?;
        limits::session_id(&id)?;
        let session: Arc<str> = id.as_str().into();
        let legs_terminated = self
            .call(self.session_shard(&id), |reply| Command::DeleteSession {
                id: session,
                reply,
            })
            .await?;
        Ok(Response::new(pb::DeleteSessionResponse { legs_terminated }))
    }

    async fn list_sessions(
        &self,
        request: Request<pb::ListSessionsRequest>,
    ) -> Result<Response<pb::ListSessionsResponse>, Status> {
        let req = request.into_inner();
        let page = requested_page(req.page_size, req.page_token)?;
        let limit = page.limit - 1;
        let all = self
            .call_all(|reply| Command::ListSessions {
                page: page.clone(),
                reply,
            })
            .await?;
        let (sessions, next_page_token) = merge_page(
            all,
            limit,
            |s| &s.id,
            |s| pb::SessionInfo {
                session_id: s.id.to_string(),
                leg_ids: s.legs.iter().map(|l| l.to_string()).collect(),
                created_at_ms: s
                    .created_at
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64),
                idle_timeout_ms: millis(s.limits.idle_timeout),
                max_duration_ms: millis(s.limits.max_duration),
                idle_ms: s.idle.as_millis() as u64,
            },
        );
        Ok(Response::new(pb::ListSessionsResponse {
            sessions,
            next_page_token,
        }))
    }

    async fn create_leg(
        &self,
        request: Request<pb::CreateLegRequest>,
    ) -> Result<Response<pb::CreateLegResponse>, Status> {
        let req = request.into_inner();
        required(&req.session_id, "session_id")?;
        limits::session_id(&req.session_id)?;
        limits::at_most(&req.remote_sdp, limits::MAX_SDP, "remote_sdp")?;
        if req.codecs.len() > limits::MAX_CODECS {
            return Err(Status::invalid_argument(format!(
                "codecs has {} entries; at most {}",
                req.codecs.len(),
                limits::MAX_CODECS
            )));
        }
        for name in &req.codecs {
            limits::at_most(name, limits::MAX_CODEC_NAME, "a codec name")?;
        }
        let incoming = match pb::Direction::try_from(req.direction) {
            Ok(pb::Direction::Incoming) => true,
            Ok(pb::Direction::Outgoing) => false,
            _ => {
                return Err(Status::invalid_argument(
                    "direction must be INCOMING or OUTGOING",
                ));
            }
        };
        if incoming && req.remote_sdp.is_empty() {
            return Err(Status::invalid_argument(
                "an incoming leg needs remote_sdp (the remote offer)",
            ));
        }
        if !incoming && !req.remote_sdp.is_empty() {
            return Err(Status::invalid_argument(
                "an outgoing leg makes the offer: leave remote_sdp empty and pass the answer with UpdateLeg",
            ));
        }
        let metadata = req.metadata.unwrap_or_default();
        limits::at_most(
            &metadata.custom_data,
            limits::MAX_CUSTOM_DATA,
            "metadata.custom_data",
        )?;
        for (value, field) in [
            (&metadata.caller_id, "metadata.caller_id"),
            (&metadata.display_name, "metadata.display_name"),
            (&metadata.number, "metadata.number"),
        ] {
            limits::at_most(value, limits::MAX_METADATA_FIELD, field)?;
        }
        if pb::ClientType::try_from(metadata.client_type).is_err() {
            return Err(Status::invalid_argument(format!(
                "unknown client_type {}",
                metadata.client_type
            )));
        }
        let shared = self.engine.shared();
        let codecs = if req.codecs.is_empty() {
            shared.config.codecs.clone()
        } else {
            config::parse_codecs(&req.codecs).map_err(Status::invalid_argument)?
        };
        let local_direction =
            convert::requested_direction(req.local_direction)?.unwrap_or_default();
        // Both guards travel with the command; dropped anywhere on the way
        // (an error, this call cancelled), they give their unit back.
        let admitted = Admitted::take(shared, Limit::Legs)?;
        let Some(ports) = allocate_ports(shared).await else {
            return Err(Status::resource_exhausted(format!(
                "no free media port pair in {}-{} ({} pairs, all in use)",
                shared.config.port_min,
                shared.config.port_max,
                shared.ports.total()
            )));
        };
        let shard = self.session_shard(&req.session_id);
        let leg = CreateLeg {
            id: new_leg_id(shard).into(),
            ports,
            admitted,
            session: req.session_id.as_str().into(),
            request: LegRequest {
                incoming,
                metadata: Metadata {
                    caller_id: metadata.caller_id,
                    display_name: metadata.display_name,
                    number: metadata.number,
                    client_type: metadata.client_type,
                    custom_data: metadata.custom_data,
                },
                remote_offer: incoming.then_some(req.remote_sdp),
                codecs,
                rtcp_mux: req.rtcp_mux.unwrap_or(shared.config.rtcp_mux),
                strict_source: req.strict_source.unwrap_or(shared.config.strict_source),
                local_direction,
            },
        };
        let (view, local_sdp) = self
            .call(shard, |reply| Command::CreateLeg {
                leg: Box::new(leg),
                reply,
            })
            .await?;
        Ok(Response::new(pb::CreateLegResponse {
            leg: Some(convert::leg(&view)),
            local_sdp,
        }))
    }

    async fn update_leg(
        &self,
        request: Request<pb::UpdateLegRequest>,
    ) -> Result<Response<pb::UpdateLegResponse>, Status> {
        let req = request.into_inner();
        let shard = self.leg_shard(required(&req.leg_id, "leg_id")?)?;
        if let Some(sd) = &req.remote_sdp {
            limits::at_most(&sd.sdp, limits::MAX_SDP, "remote_sdp.sdp")?;
        }
        let remote_sdp = match req.remote_sdp {
            None => None,
            Some(sd) if sd.sdp.is_empty() => {
                return Err(Status::invalid_argument("remote_sdp.sdp is empty"));
            }
            Some(sd) => match pb::SdpType::try_from(sd.r#type) {
                Ok(pb::SdpType::Offer) => Some((true, sd.sdp)),
                Ok(pb::SdpType::Answer) => Some((false, sd.sdp)),
                _ => {
                    return Err(Status::invalid_argument(
                        "remote_sdp.type must be OFFER or ANSWER",
                    ));
                }
            },
        };
        let update = LegUpdate {
            remote_sdp,
            create_offer: req.create_offer,
            local_direction: convert::requested_direction(req.local_direction)?,
            state: convert::requested_state(req.state)?,
        };
        let leg: Arc<str> = req.leg_id.as_str().into();
        let (view, local_sdp) = self
            .call(shard, |reply| Command::UpdateLeg {
                leg,
                update: Box::new(update),
                reply,
            })
            .await?;
        Ok(Response::new(pb::UpdateLegResponse {
            leg: Some(convert::leg(&view)),
            local_sdp: local_sdp.unwrap_or_default(),
        }))
    }

    async fn hangup_leg(
        &self,
        request: Request<pb::HangupLegRequest>,
    ) -> Result<Response<pb::HangupLegResponse>, Status> {
        let req = request.into_inner();
        let shard = self.leg_shard(required(&req.leg_id, "leg_id")?)?;
        limits::at_most(&req.reason, limits::MAX_REASON, "reason")?;
        let code = u16::try_from(req.code).map_err(|_| {
            Status::invalid_argument(format!(
                "hangup code {} is not a SIP final response code (200..699)",
                req.code
            ))
        })?;
        let leg: Arc<str> = req.leg_id.as_str().into();
        let view = self
            .call(shard, |reply| Command::HangupLeg {
                leg,
                code,
                reason: req.reason,
                reply,
            })
            .await?;
        Ok(Response::new(pb::HangupLegResponse {
            leg: Some(convert::leg(&view)),
        }))
    }

    async fn get_leg(
        &self,
        request: Request<pb::GetLegRequest>,
    ) -> Result<Response<pb::GetLegResponse>, Status> {
        let req = request.into_inner();
        let shard = self.leg_shard(required(&req.leg_id, "leg_id")?)?;
        let leg: Arc<str> = req.leg_id.as_str().into();
        let view = self
            .call(shard, |reply| Command::GetLeg { leg, reply })
            .await?;
        Ok(Response::new(pb::GetLegResponse {
            leg: Some(convert::leg(&view)),
        }))
    }

    async fn list_legs(
        &self,
        request: Request<pb::ListLegsRequest>,
    ) -> Result<Response<pb::ListLegsResponse>, Status> {
        let req = request.into_inner();
        let page = requested_page(req.page_size, req.page_token)?;
        let limit = page.limit - 1;
        let views = if req.session_id.is_empty() {
            self.call_all(|reply| Command::ListLegs {
                session: None,
                page: page.clone(),
                reply,
            })
            .await?
        } else {
            limits::session_id(&req.session_id)?;
            let session: Arc<str> = req.session_id.as_str().into();
            self.call(self.session_shard(&req.session_id), |reply| {
                Command::ListLegs {
                    session: Some(session),
                    page,
                    reply,
                }
            })
            .await?
        };
        let (legs, next_page_token) = merge_page(views, limit, |v| &v.id, convert::leg);
        Ok(Response::new(pb::ListLegsResponse {
            legs,
            next_page_token,
        }))
    }

    async fn send_media(
        &self,
        request: Request<pb::SendMediaRequest>,
    ) -> Result<Response<pb::SendMediaResponse>, Status> {
        let req = request.into_inner();
        let from = leg_endpoint(req.from.as_ref(), "from")?;
        let to = leg_endpoint(req.to.as_ref(), "to")?;
        let shard = self.route_shard(&from, &to).await?;
        let routed = self
            .call(shard, |reply| Command::SendMedia {
                from: from.as_str().into(),
                to: to.as_str().into(),
                reply,
            })
            .await?;
        Ok(Response::new(pb::SendMediaResponse {
            replaced: routed.replaced.map(|id| pb::MediaEndpoint {
                endpoint: Some(pb::media_endpoint::Endpoint::LegId(id.to_string())),
            }),
            held_back: routed.held_back.unwrap_or_default(),
        }))
    }

    async fn stop_media(
        &self,
        request: Request<pb::StopMediaRequest>,
    ) -> Result<Response<pb::StopMediaResponse>, Status> {
        let req = request.into_inner();
        let from = leg_endpoint(req.from.as_ref(), "from")?;
        let to = leg_endpoint(req.to.as_ref(), "to")?;
        let shard = self.leg_shard(&from)?;
        if self.leg_shard(&to)? != shard {
            self.check_leg_exists(&from).await?;
            self.check_leg_exists(&to).await?;
            return Err(Status::not_found(format!(
                "leg '{from}' is not sending media to leg '{to}'"
            )));
        }
        self.call(shard, |reply| Command::StopMedia {
            from: from.as_str().into(),
            to: to.as_str().into(),
            reply,
        })
        .await?;
        Ok(Response::new(pb::StopMediaResponse {}))
    }

    async fn create_conference(
        &self,
        _request: Request<pb::CreateConferenceRequest>,
    ) -> Result<Response<pb::CreateConferenceResponse>, Status> {
        Err(unimplemented("CreateConference", "conference mixing"))
    }

    async fn delete_conference(
        &self,
        _request: Request<pb::DeleteConferenceRequest>,
    ) -> Result<Response<pb::DeleteConferenceResponse>, Status> {
        Err(unimplemented("DeleteConference", "conference mixing"))
    }

    async fn start_playback(
        &self,
        _request: Request<pb::StartPlaybackRequest>,
    ) -> Result<Response<pb::StartPlaybackResponse>, Status> {
        Err(unimplemented("StartPlayback", "prompt playback"))
    }

    async fn stop_playback(
        &self,
        _request: Request<pb::StopPlaybackRequest>,
    ) -> Result<Response<pb::StopPlaybackResponse>, Status> {
        Err(unimplemented("StopPlayback", "prompt playback"))
    }

    async fn say(
        &self,
        _request: Request<pb::SayRequest>,
    ) -> Result<Response<pb::SayResponse>, Status> {
        Err(unimplemented("Say", "text-to-speech"))
    }

    async fn play_progress_tone(
        &self,
        _request: Request<pb::PlayProgressToneRequest>,
    ) -> Result<Response<pb::PlayProgressToneResponse>, Status> {
        Err(unimplemented("PlayProgressTone", "progress tone playback"))
    }

    async fn send_digits(
        &self,
        _request: Request<pb::SendDigitsRequest>,
    ) -> Result<Response<pb::SendDigitsResponse>, Status> {
        Err(unimplemented("SendDigits", "DTMF generation"))
    }

    async fn start_recording(
        &self,
        _request: Request<pb::StartRecordingRequest>,
    ) -> Result<Response<pb::StartRecordingResponse>, Status> {
        Err(unimplemented("StartRecording", "recording"))
    }

    async fn stop_recording(
        &self,
        _request: Request<pb::StopRecordingRequest>,
    ) -> Result<Response<pb::StopRecordingResponse>, Status> {
        Err(unimplemented("StopRecording", "recording"))
    }

    async fn set_tone_handling(
        &self,
        _request: Request<pb::SetToneHandlingRequest>,
    ) -> Result<Response<pb::SetToneHandlingResponse>, Status> {
        Err(unimplemented("SetToneHandling", "DTMF detection"))
    }

    async fn inject_digits(
        &self,
        _request: Request<pb::InjectDigitsRequest>,
    ) -> Result<Response<pb::InjectDigitsResponse>, Status> {
        Err(unimplemented("InjectDigits", "DTMF handling"))
    }

    async fn enable_beep_detection(
        &self,
        _request: Request<pb::EnableBeepDetectionRequest>,
    ) -> Result<Response<pb::EnableBeepDetectionResponse>, Status> {
        Err(unimplemented("EnableBeepDetection", "beep detection"))
    }

    async fn disable_beep_detection(
        &self,
        _request: Request<pb::DisableBeepDetectionRequest>,
    ) -> Result<Response<pb::DisableBeepDetectionResponse>, Status> {
        Err(unimplemented("DisableBeepDetection", "beep detection"))
    }

    async fn enable_tone_detection(
        &self,
        _request: Request<pb::EnableToneDetectionRequest>,
    ) -> Result<Response<pb::EnableToneDetectionResponse>, Status> {
        Err(unimplemented(
            "EnableToneDetection",
            "call-progress tone detection",
        ))
    }

    async fn set_mic_status_handling(
        &self,
        _request: Request<pb::SetMicStatusHandlingRequest>,
    ) -> Result<Response<pb::SetMicStatusHandlingResponse>, Status> {
        Err(unimplemented(
            "SetMicStatusHandling",
            "microphone status reporting",
        ))
    }

    async fn start_audio_identification(
        &self,
        _request: Request<pb::StartAudioIdentificationRequest>,
    ) -> Result<Response<pb::StartAudioIdentificationResponse>, Status> {
        Err(unimplemented(
            "StartAudioIdentification",
            "answering-machine detection",
        ))
    }

    async fn stop_audio_identification(
        &self,
        _request: Request<pb::StopAudioIdentificationRequest>,
    ) -> Result<Response<pb::StopAudioIdentificationResponse>, Status> {
        Err(unimplemented(
            "StopAudioIdentification",
            "answering-machine detection",
        ))
    }

    async fn monitor_media_statistics(
        &self,
        _request: Request<pb::MonitorMediaStatisticsRequest>,
    ) -> Result<Response<pb::MonitorMediaStatisticsResponse>, Status> {
        Err(unimplemented(
            "MonitorMediaStatistics",
            "periodic media statistics",
        ))
    }

    async fn get_statistics(
        &self,
        _request: Request<pb::GetStatisticsRequest>,
    ) -> Result<Response<pb::GetStatisticsResponse>, Status> {
        Err(unimplemented(
            "GetStatistics",
            "RTCP statistics (packet counters are in GetLeg)",
        ))
    }

    type WatchEventsStream = EventStream;

    async fn watch_events(
        &self,
        request: Request<pb::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        if self.stopping.load(Ordering::Relaxed) {
            return Err(Status::unavailable("legatod is shutting down"));
        }
        let req = request.into_inner();
        limits::at_most(&req.session_id, limits::MAX_ID_LEN, "session_id")?;
        limits::at_most(&req.leg_id, limits::LEG_ID_LEN, "leg_id")?;
        let slot = WatcherSlot::take(&self.watchers, self.engine.shared().config.max_watchers)?;
        let filter = Filter {
            session: req.session_id,
            leg: req.leg_id,
        };
        let from = req.from_sequence;
        let subscription = self.hub.subscribe(from);
        let gap = if from > 0 && from < subscription.oldest {
            subscription.oldest - from
        } else {
            0
        };
        if gap > 0 && req.strict_resume {
            return Err(Status::out_of_range(format!(
                "events from {from} are no longer retained; the oldest is {}",
                subscription.oldest
            )));
        }
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        let start = from.max(subscription.oldest);
        let (closing, metrics) = (self.closing.clone(), self.metrics.clone());
        tokio::spawn(async move {
            // Held for as long as the stream's task runs.
            let _slot = slot;
            forward_events(subscription, filter, gap, start, tx, closing, metrics).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type StreamAudioStream = AudioStream;

    async fn stream_audio(
        &self,
        _request: Request<Streaming<pb::StreamAudioRequest>>,
    ) -> Result<Response<Self::StreamAudioStream>, Status> {
        Err(unimplemented("StreamAudio", "audio forking"))
    }
}

/// Feeds one WatchEvents stream: the gap notice (events older than the
/// replay window), the replay, then live events until the client goes away
/// or the daemon closes. A watcher that lags behind the live buffer gets
/// EventsDropped with the count and the first sequence it missed.
///
/// The task ends as soon as the client's stream is gone (`tx.closed()`),
/// whether or not an event for it ever comes again: a filtered watcher of
/// a finished call would otherwise stay subscribed, and cost every later
/// event a wake-up, until the daemon restarts.
async fn forward_events(
    subscription: Subscription,
    filter: Filter,
    gap: u64,
    start: u64,
    tx: mpsc::Sender<Result<pb::Event, Status>>,
    mut closing: watch::Receiver<bool>,
    metrics: Arc<ControlMetrics>,
) {
    let _counted = metrics.watcher();
    let mut live = subscription.live;
    // Sequence number of the last event this watcher saw (or skipped).
    let mut last = start.saturating_sub(1);
    if gap > 0 && tx.send(Ok(dropped_event(gap, start - gap))).await.is_err() {
        return;
    }
    for event in subscription.replay {
        last = event.sequence;
        if filter.matches(&event) && tx.send(Ok((*event).clone())).await.is_err() {
            return;
        }
    }
    loop {
        tokio::select! {
            biased;
            () = tx.closed() => return,
            received = live.recv() => match received {
                Ok(event) => {
                    if event.sequence != 0 {
                        last = event.sequence;
                    }
                    if filter.matches(&event) && tx.send(Ok((*event).clone())).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(count)) => {
                    metrics.watcher_dropped(count);
                    if tx.send(Ok(dropped_event(count, last + 1))).await.is_err() {
                        return;
                    }
                    last += count;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = async { let _ = closing.wait_for(|c| *c).await; } => {
                // Deliver what is already published, then end.
                while let Ok(event) = live.try_recv() {
                    if filter.matches(&event) && tx.send(Ok((*event).clone())).await.is_err() {
                        return;
                    }
                }
                return;
            }
        }
    }
}

/// One of the `max_watchers` WatchEvents streams open at once, given back
/// when the stream's task ends.
#[derive(Debug)]
struct WatcherSlot(Arc<AtomicUsize>);

impl WatcherSlot {
    fn take(open: &Arc<AtomicUsize>, max: usize) -> Result<Self, Status> {
        if open.fetch_add(1, Ordering::Relaxed) >= max {
            open.fetch_sub(1, Ordering::Relaxed);
            return Err(Status::resource_exhausted(format!(
                "{max} WatchEvents streams are open (max_watchers): close one first"
            )));
        }
        Ok(Self(open.clone()))
    }
}

impl Drop for WatcherSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An EventsDropped event for one watcher (not numbered: it is not part of
/// the daemon-wide sequence).
fn dropped_event(count: u64, first_missing: u64) -> pb::Event {
    pb::Event {
        sequence: 0,
        timestamp: Some(convert::timestamp(std::time::SystemTime::now())),
        kind: Some(pb::event::Kind::EventsDropped(pb::EventsDropped {
            count,
            first_missing,
        })),
        ..pb::Event::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leg_ids_name_their_shard() {
        for shard in [0, 1, 7, 255] {
            let id = new_leg_id(shard);
            assert_eq!(leg_shard(&id), Some(shard));
        }
        for bad in ["", "xyz", "0123456789abcdef000g", "0123456789abcdef00000"] {
            assert_eq!(leg_shard(bad), None, "{bad}");
        }
    }

    #[test]
    fn sessions_spread_over_shards() {
        let mut seen = [0usize; 4];
        for i in 0..400 {
            seen[shard_of_session(&format!("call-{i}"), 4)] += 1;
        }
        assert!(seen.iter().all(|&n| n > 50), "{seen:?}");
        assert_eq!(shard_of_session("x", 1), 0);
    }

    #[tokio::test]
    async fn lagging_watcher_gets_events_dropped() {
        let hub = EventHub::new(1_000, 8);
        let subscription = hub.subscribe(0);
        let (tx, mut rx) = mpsc::channel(4);
        let (_closing_tx, closing) = watch::channel(false);
        let event = |leg: &str| pb::Event {
            session_id: "s".into(),
            leg_id: leg.into(),
            ..pb::Event::default()
        };
        // Nobody reads: the forwarder fills its 4-slot channel, then the
        // 8-event live buffer overflows.
        let task = tokio::spawn(forward_events(
            subscription,
            Filter::default(),
            0,
            1,
            tx,
            closing,
            Arc::new(ControlMetrics::new()),
        ));
        for _ in 0..50 {
            hub.publish(event("a"));
            tokio::task::yield_now().await;
        }
        let mut seen = Vec::new();
        while let Ok(Some(Ok(e))) =
            tokio::time::timeout(std::time::Duration::from_millis(200), rx.recv()).await
        {
            seen.push(e);
        }
        let dropped: Vec<_> = seen
            .iter()
            .filter_map(|e| match &e.kind {
                Some(pb::event::Kind::EventsDropped(d)) => Some((d.count, d.first_missing)),
                _ => None,
            })
            .collect();
        assert!(
            !dropped.is_empty(),
            "no EventsDropped in {} events",
            seen.len()
        );
        let delivered = seen.iter().filter(|e| e.sequence > 0).count() as u64;
        let lost: u64 = dropped.iter().map(|d| d.0).sum();
        assert_eq!(delivered + lost, 50, "every event delivered or counted");
        // The first missing sequence follows the last delivered one.
        let (_, first_missing) = dropped[0];
        let before = seen
            .iter()
            .take_while(|e| e.sequence > 0)
            .last()
            .map_or(0, |e| e.sequence);
        assert_eq!(first_missing, before + 1);
        task.abort();
    }
}
