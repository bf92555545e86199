//! The legato.v1 MediaPlane service: validates requests, sends commands to
//! the shard that owns the session, and awaits its reply. Handlers never
//! touch media state themselves.
//!
//! One file per group of RPCs: `lifecycle` (sessions and legs), `routing`
//! (SendMedia/StopMedia), `watchers` (WatchEvents). This file holds the
//! service, its helpers and the trait impl, which delegates to them; RPCs
//! not built yet answer UNIMPLEMENTED here until their group is built.

mod detection;
mod lifecycle;
mod playback;
mod recording;
mod routing;
mod watchers;

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use futures::Stream;
use legato_proto::v1 as pb;
use legato_proto::v1::media_plane_server::MediaPlane;
use tokio::sync::{oneshot, watch};
use tonic::{Request, Response, Status, Streaming};

use super::events::EventHub;
use super::limits::quote;
use super::metrics::ControlMetrics;
use super::status::unimplemented;
use crate::engine::{Command, Engine, LegCommand, Reply, RouteCommand};
use crate::prompts::{PromptLimits, Prompts};
use crate::recording::Recorders;
use crate::session::{Endpoint, LegState};
pub(crate) use recording::{Owners, start_recorders};

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
    /// Prompt decoding and cache (off the shards).
    prompts: Arc<Prompts>,
    /// Recording writers (off the shards); `None` if they could not start.
    recorders: Option<Arc<Recorders>>,
    /// The leg of each running recording, for its events.
    recording_owners: Arc<Owners>,
}

impl Service {
    pub(crate) fn new(
        engine: Arc<Engine>,
        hub: Arc<EventHub>,
        stopping: Arc<AtomicBool>,
        closing: watch::Receiver<bool>,
        metrics: Arc<ControlMetrics>,
        recorders: Option<Arc<Recorders>>,
        recording_owners: Arc<Owners>,
    ) -> Self {
        let prompts = Arc::new(Prompts::new(PromptLimits::from_config(
            &engine.shared().config,
        )));
        Self {
            engine,
            hub,
            stopping,
            closing,
            metrics,
            watchers: Arc::new(AtomicUsize::new(0)),
            prompts,
            recorders,
            recording_owners,
        }
    }

    /// Sends a command to shard `shard` and awaits the reply.
    async fn call<T, C: Into<Command>>(
        &self,
        shard: usize,
        make: impl FnOnce(Reply<T>) -> C,
    ) -> Result<T, Status> {
        if self.stopping.load(Ordering::Relaxed) {
            return Err(Status::unavailable("legatod is shutting down"));
        }
        let (reply, rx) = oneshot::channel();
        self.engine.send(shard, make(reply).into())?;
        match rx.await {
            Ok(result) => result.map_err(Status::from),
            Err(_) => Err(Status::unavailable("legatod is shutting down")),
        }
    }

    /// Calls every shard and concatenates the results.
    async fn call_all<T, C: Into<Command>>(
        &self,
        make: impl Fn(Reply<Vec<T>>) -> C,
    ) -> Result<Vec<T>, Status> {
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

    /// The leg or conference a request names (exactly one of `leg_id`
    /// and `conference_id`), checked to exist on its shard.
    async fn target(&self, leg_id: &str, conference_id: &str) -> Result<Target, Status> {
        match (leg_id.is_empty(), conference_id.is_empty()) {
            (false, true) => {
                let shard = self.leg_shard(leg_id)?;
                let leg: Arc<str> = leg_id.into();
                let view = self
                    .call(shard, |reply| LegCommand::Get {
                        leg: leg.clone(),
                        reply,
                    })
                    .await?;
                Ok(Target {
                    endpoint: Endpoint::Leg(leg),
                    shard,
                    session: view.session,
                    terminated: view.state == LegState::Terminated,
                })
            }
            (true, false) => {
                let shard = leg_shard(conference_id)
                    .filter(|&s| s < self.engine.shard_count())
                    .ok_or_else(|| {
                        Status::not_found(format!("no such conference {}", quote(conference_id)))
                    })?;
                let id: Arc<str> = conference_id.into();
                let session = self
                    .call(shard, |reply| RouteCommand::CheckConference {
                        id: id.clone(),
                        reply,
                    })
                    .await?;
                Ok(Target {
                    endpoint: Endpoint::Conference(id),
                    shard,
                    session,
                    terminated: false,
                })
            }
            (true, true) => Err(Status::invalid_argument(
                "leg_id or conference_id is required",
            )),
            (false, false) => Err(Status::invalid_argument(
                "give leg_id or conference_id, not both",
            )),
        }
    }

    /// Fails with NOT_FOUND unless leg `leg` exists (on its shard).
    async fn check_leg_exists(&self, leg: &str) -> Result<(), Status> {
        let shard = self.leg_shard(leg)?;
        let id: Arc<str> = leg.into();
        self.call(shard, |reply| LegCommand::Get { leg: id, reply })
            .await
            .map(drop)
    }
}

/// A leg or conference a request names, as [`Service::target`] found it.
struct Target {
    endpoint: Endpoint,
    shard: usize,
    session: Arc<str>,
    /// A leg that has ended.
    terminated: bool,
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

fn required<'a>(value: &'a str, what: &str) -> Result<&'a str, Status> {
    if value.is_empty() {
        Err(Status::invalid_argument(format!("{what} is required")))
    } else {
        Ok(value)
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
        lifecycle::create_session(self, request).await
    }

    async fn delete_session(
        &self,
        request: Request<pb::DeleteSessionRequest>,
    ) -> Result<Response<pb::DeleteSessionResponse>, Status> {
        lifecycle::delete_session(self, request).await
    }

    async fn list_sessions(
        &self,
        request: Request<pb::ListSessionsRequest>,
    ) -> Result<Response<pb::ListSessionsResponse>, Status> {
        lifecycle::list_sessions(self, request).await
    }

    async fn create_leg(
        &self,
        request: Request<pb::CreateLegRequest>,
    ) -> Result<Response<pb::CreateLegResponse>, Status> {
        lifecycle::create_leg(self, request).await
    }

    async fn update_leg(
        &self,
        request: Request<pb::UpdateLegRequest>,
    ) -> Result<Response<pb::UpdateLegResponse>, Status> {
        lifecycle::update_leg(self, request).await
    }

    async fn hangup_leg(
        &self,
        request: Request<pb::HangupLegRequest>,
    ) -> Result<Response<pb::HangupLegResponse>, Status> {
        lifecycle::hangup_leg(self, request).await
    }

    async fn get_leg(
        &self,
        request: Request<pb::GetLegRequest>,
    ) -> Result<Response<pb::GetLegResponse>, Status> {
        lifecycle::get_leg(self, request).await
    }

    async fn list_legs(
        &self,
        request: Request<pb::ListLegsRequest>,
    ) -> Result<Response<pb::ListLegsResponse>, Status> {
        lifecycle::list_legs(self, request).await
    }

    async fn send_media(
        &self,
        request: Request<pb::SendMediaRequest>,
    ) -> Result<Response<pb::SendMediaResponse>, Status> {
        routing::send_media(self, request).await
    }

    async fn stop_media(
        &self,
        request: Request<pb::StopMediaRequest>,
    ) -> Result<Response<pb::StopMediaResponse>, Status> {
        routing::stop_media(self, request).await
    }

    async fn create_conference(
        &self,
        request: Request<pb::CreateConferenceRequest>,
    ) -> Result<Response<pb::CreateConferenceResponse>, Status> {
        routing::create_conference(self, request).await
    }

    async fn delete_conference(
        &self,
        request: Request<pb::DeleteConferenceRequest>,
    ) -> Result<Response<pb::DeleteConferenceResponse>, Status> {
        routing::delete_conference(self, request).await
    }

    async fn start_playback(
        &self,
        request: Request<pb::StartPlaybackRequest>,
    ) -> Result<Response<pb::StartPlaybackResponse>, Status> {
        playback::start_playback(self, request).await
    }

    async fn stop_playback(
        &self,
        request: Request<pb::StopPlaybackRequest>,
    ) -> Result<Response<pb::StopPlaybackResponse>, Status> {
        playback::stop_playback(self, request).await
    }

    async fn say(
        &self,
        request: Request<pb::SayRequest>,
    ) -> Result<Response<pb::SayResponse>, Status> {
        playback::say(self, request).await
    }

    async fn play_progress_tone(
        &self,
        request: Request<pb::PlayProgressToneRequest>,
    ) -> Result<Response<pb::PlayProgressToneResponse>, Status> {
        playback::play_progress_tone(self, request).await
    }

    async fn send_digits(
        &self,
        request: Request<pb::SendDigitsRequest>,
    ) -> Result<Response<pb::SendDigitsResponse>, Status> {
        playback::send_digits(self, request).await
    }

    async fn start_recording(
        &self,
        request: Request<pb::StartRecordingRequest>,
    ) -> Result<Response<pb::StartRecordingResponse>, Status> {
        recording::start_recording(self, request).await
    }

    async fn stop_recording(
        &self,
        request: Request<pb::StopRecordingRequest>,
    ) -> Result<Response<pb::StopRecordingResponse>, Status> {
        recording::stop_recording(self, request).await
    }

    async fn set_tone_handling(
        &self,
        request: Request<pb::SetToneHandlingRequest>,
    ) -> Result<Response<pb::SetToneHandlingResponse>, Status> {
        detection::set_tone_handling(self, request).await
    }

    async fn inject_digits(
        &self,
        request: Request<pb::InjectDigitsRequest>,
    ) -> Result<Response<pb::InjectDigitsResponse>, Status> {
        detection::inject_digits(self, request).await
    }

    async fn enable_beep_detection(
        &self,
        request: Request<pb::EnableBeepDetectionRequest>,
    ) -> Result<Response<pb::EnableBeepDetectionResponse>, Status> {
        detection::enable_beep_detection(self, request).await
    }

    async fn disable_beep_detection(
        &self,
        request: Request<pb::DisableBeepDetectionRequest>,
    ) -> Result<Response<pb::DisableBeepDetectionResponse>, Status> {
        detection::disable_beep_detection(self, request).await
    }

    async fn enable_tone_detection(
        &self,
        request: Request<pb::EnableToneDetectionRequest>,
    ) -> Result<Response<pb::EnableToneDetectionResponse>, Status> {
        detection::enable_tone_detection(self, request).await
    }

    async fn disable_tone_detection(
        &self,
        request: Request<pb::DisableToneDetectionRequest>,
    ) -> Result<Response<pb::DisableToneDetectionResponse>, Status> {
        detection::disable_tone_detection(self, request).await
    }

    async fn set_mic_status_handling(
        &self,
        request: Request<pb::SetMicStatusHandlingRequest>,
    ) -> Result<Response<pb::SetMicStatusHandlingResponse>, Status> {
        detection::set_mic_status_handling(self, request).await
    }

    async fn start_audio_identification(
        &self,
        request: Request<pb::StartAudioIdentificationRequest>,
    ) -> Result<Response<pb::StartAudioIdentificationResponse>, Status> {
        detection::start_audio_identification(self, request).await
    }

    async fn stop_audio_identification(
        &self,
        request: Request<pb::StopAudioIdentificationRequest>,
    ) -> Result<Response<pb::StopAudioIdentificationResponse>, Status> {
        detection::stop_audio_identification(self, request).await
    }

    async fn monitor_media_statistics(
        &self,
        request: Request<pb::MonitorMediaStatisticsRequest>,
    ) -> Result<Response<pb::MonitorMediaStatisticsResponse>, Status> {
        lifecycle::monitor_media_statistics(self, request).await
    }

    async fn get_statistics(
        &self,
        request: Request<pb::GetStatisticsRequest>,
    ) -> Result<Response<pb::GetStatisticsResponse>, Status> {
        lifecycle::get_statistics(self, request).await
    }

    type WatchEventsStream = EventStream;

    async fn watch_events(
        &self,
        request: Request<pb::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        watchers::watch_events(self, request).await
    }

    type StreamAudioStream = AudioStream;

    async fn stream_audio(
        &self,
        _request: Request<Streaming<pb::StreamAudioRequest>>,
    ) -> Result<Response<Self::StreamAudioStream>, Status> {
        Err(unimplemented("StreamAudio", "audio forking"))
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
}
