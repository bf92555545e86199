//! Recording RPCs: StartRecording and StopRecording (Call.record,
//! Call.stopRecording). The file is created off the shards (a blocking
//! task), then the leg's shard gets the recording's tap; writer threads
//! (`crate::recording`) encode and write, and report RecordStarted,
//! RecordError and RecordStopped through the engine's event queue, so a
//! call that ends gives Disconnected before RecordStopped.
//!
//! Recording ids have the shape of leg ids (16 hex digits of randomness,
//! then the leg's shard in 4 hex digits).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use legato_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::{Service, new_leg_id};
use crate::control::limits::quote;
use crate::engine::{EngineEvent, PlayCommand, Shared};
use crate::recording::{
    Format, Recorders, RecordingEvent, RecordingSpec, StartError, UploadConfig, Uploader,
};
use crate::session::{Endpoint, EventKind};

/// Default MP3 bit rate (the Call API's), kbit/s.
const DEFAULT_BITRATE: u32 = 32;
/// Default sample rate (the Call API's), Hz.
const DEFAULT_RATE: u32 = 8000;

/// Recording id → (session, leg; none for a conference).
type OwnerMap = HashMap<String, (Arc<str>, Option<Arc<str>>)>;

/// Which leg (and session) each running recording belongs to, so the
/// writers' events can name them.
#[derive(Debug, Default)]
pub(crate) struct Owners(Mutex<OwnerMap>);

impl Owners {
    fn lock(&self) -> std::sync::MutexGuard<'_, OwnerMap> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Uploads running at once; the rest wait their turn.
const UPLOADS: usize = 4;

/// Uploads of finished recordings, when configured: tasks on the daemon's
/// runtime, [`UPLOADS`] at a time.
struct Uploads {
    uploader: Arc<Uploader>,
    runtime: tokio::runtime::Handle,
    slots: Arc<tokio::sync::Semaphore>,
}

/// The recorder's event callback: each event, with its session and leg,
/// into the engine's event queue (the one the shards use); a finished
/// recording is then uploaded when `uploads` is configured (RecordUploaded,
/// or RecordError once the retries are spent; the local file stays).
fn event_sink(
    shared: Arc<Shared>,
    owners: Arc<Owners>,
    url_base: Option<String>,
    uploads: Option<Uploads>,
) -> impl Fn(RecordingEvent) + Send + Sync + 'static {
    move |event| {
        let url = |path: &Path| match (&url_base, path.file_name()) {
            (Some(base), Some(name)) => format!("{base}{}", name.to_string_lossy()),
            _ => String::new(),
        };
        let (id, kind) = match event {
            RecordingEvent::Started { id, path } => {
                let kind = EventKind::RecordStarted {
                    recording: id.as_str().into(),
                    url: url(&path),
                    path: path.display().to_string(),
                };
                (id, kind)
            }
            RecordingEvent::Error { id, error } => {
                let kind = EventKind::RecordError {
                    recording: id.as_str().into(),
                    error,
                };
                (id, kind)
            }
            RecordingEvent::Stopped {
                id,
                path,
                duration_ms,
                bytes,
            } => {
                let kind = EventKind::RecordStopped {
                    recording: id.as_str().into(),
                    url: url(&path),
                    path: path.display().to_string(),
                    duration_ms,
                    bytes,
                };
                (id, kind)
            }
        };
        let stopped = matches!(kind, EventKind::RecordStopped { .. });
        let owner = if stopped {
            owners.lock().remove(&id)
        } else {
            owners.lock().get(&id).cloned()
        };
        let Some((session, leg)) = owner else {
            tracing::warn!(recording = %id, "event of an unknown recording dropped");
            return;
        };
        let upload = match (&kind, &uploads) {
            (EventKind::RecordStopped { path, .. }, Some(uploads)) => Some((path.clone(), uploads)),
            _ => None,
        };
        shared.events.post(EngineEvent {
            session: session.clone(),
            leg: leg.clone(),
            at: SystemTime::now(),
            kind,
        });
        if let Some((path, uploads)) = upload {
            let (shared, uploader, slots) = (
                shared.clone(),
                uploads.uploader.clone(),
                uploads.slots.clone(),
            );
            uploads.runtime.spawn(async move {
                let _slot = slots.acquire_owned().await;
                let kind = match uploader.upload(Path::new(&path)).await {
                    Ok(url) => EventKind::RecordUploaded {
                        recording: id.as_str().into(),
                        path,
                        url,
                    },
                    Err(error) => {
                        tracing::warn!(recording = %id, %error, "recording upload failed");
                        EventKind::RecordError {
                            recording: id.as_str().into(),
                            error: format!("{error}; the local file is kept"),
                        }
                    }
                };
                shared.events.post(EngineEvent {
                    session,
                    leg,
                    at: SystemTime::now(),
                    kind,
                });
            });
        }
    }
}

pub(super) async fn start_recording(
    svc: &Service,
    request: Request<pb::StartRecordingRequest>,
) -> Result<Response<pb::StartRecordingResponse>, Status> {
    let req = request.into_inner();
    let format = match pb::RecordingFormat::try_from(req.format) {
        Ok(pb::RecordingFormat::Unspecified | pb::RecordingFormat::Mp3) => Format::Mp3,
        Ok(pb::RecordingFormat::Wav) => Format::Wav,
        Err(_) => {
            return Err(Status::invalid_argument(format!(
                "unknown recording format {}: MP3 or WAV",
                req.format
            )));
        }
    };
    let (target, shard, session) = target(svc, &req.leg_id, &req.conference_id).await?;
    if req.stereo && matches!(target, Endpoint::Conference(_)) {
        return Err(Status::invalid_argument(
            "a conference is recorded in mono (its whole mix): stereo applies to a leg",
        ));
    }
    let Some(recorders) = svc.recorders.clone() else {
        return Err(Status::unavailable(
            "recording is off: its writer threads could not start (see legatod's log)",
        ));
    };
    let id: Arc<str> = new_leg_id(shard).into();
    let spec = RecordingSpec {
        format,
        stereo: req.stereo,
        sample_rate: if req.sample_rate == 0 {
            DEFAULT_RATE
        } else {
            req.sample_rate
        },
        bitrate_kbps: if req.bitrate_kbps == 0 {
            DEFAULT_BITRATE
        } else {
            req.bitrate_kbps
        },
        ..RecordingSpec::new(&session, target.id(), &id)
    };
    let leg = match &target {
        Endpoint::Leg(leg) => Some(leg.clone()),
        Endpoint::Conference(_) => None,
    };
    svc.recording_owners
        .lock()
        .insert(id.to_string(), (session.clone(), leg));
    let started = {
        let recorders = recorders.clone();
        tokio::task::spawn_blocking(move || recorders.start(&spec))
            .await
            .map_err(|_| Status::internal("the recording could not be started"))?
    };
    let (tap, info) = match started {
        Ok(started) => started,
        Err(e) => {
            svc.recording_owners.lock().remove(&*id);
            return Err(match e {
                StartError::InvalidArgument(m) => Status::invalid_argument(m),
                StartError::NoSpace { .. } | StartError::Busy(_) => {
                    Status::resource_exhausted(e.to_string())
                }
                StartError::Io(m) => Status::failed_precondition(m),
            });
        }
    };
    // The tap goes to the shard; if the leg ended meanwhile it is dropped
    // with the error, which ends the recording (RecordStopped follows).
    svc.call(shard, |reply| PlayCommand::Record {
        target,
        recording: id.clone(),
        tap,
        reply,
    })
    .await?;
    Ok(Response::new(pb::StartRecordingResponse {
        recording_id: id.to_string(),
        path: info.path.display().to_string(),
    }))
}

pub(super) async fn stop_recording(
    svc: &Service,
    request: Request<pb::StopRecordingRequest>,
) -> Result<Response<pb::StopRecordingResponse>, Status> {
    let req = request.into_inner();
    let (target, shard, _) = target(svc, &req.leg_id, &req.conference_id).await?;
    let recording = (!req.recording_id.is_empty()).then(|| Arc::from(req.recording_id.as_str()));
    svc.call(shard, |reply| PlayCommand::StopRecording {
        target,
        recording,
        reply,
    })
    .await?;
    Ok(Response::new(pb::StopRecordingResponse {}))
}

/// The leg (not terminated) or conference a request names (exactly one),
/// its shard and its session.
async fn target(
    svc: &Service,
    leg_id: &str,
    conference_id: &str,
) -> Result<(Endpoint, usize, Arc<str>), Status> {
    let target = svc.target(leg_id, conference_id).await?;
    if target.terminated {
        return Err(Status::failed_precondition(format!(
            "leg {} is terminated",
            quote(leg_id)
        )));
    }
    Ok((target.endpoint, target.shard, target.session))
}

/// Starts the recorder from the configuration, first repairing what an
/// earlier run left unfinalized in the recording directory (each repair
/// logged). `None` (logged) when its threads cannot start.
pub(crate) fn start_recorders(
    shared: &Arc<Shared>,
    owners: &Arc<Owners>,
) -> Option<Arc<Recorders>> {
    let config = &shared.config;
    let settings = crate::recording::RecordingConfig {
        dir: config.recording_dir.clone(),
        template: config.recording_name.clone(),
        free_space_floor_bytes: config.recording_min_free_bytes,
        writers: config.recording_writers,
        max_recordings: config.max_recordings,
        ..crate::recording::RecordingConfig::default()
    };
    for repaired in crate::recording::repair_dir(&settings.dir) {
        tracing::warn!(
            path = %repaired.path.display(),
            seconds = repaired.seconds,
            "repaired a recording an earlier run left unfinalized"
        );
    }
    let uploads = config.recording_upload.as_ref().and_then(|u| {
        let settings = UploadConfig {
            endpoint: u.endpoint.clone(),
            bucket: u.bucket.clone(),
            region: u.region.clone(),
            access_key: u.access_key.clone(),
            secret_key: u.secret_key.clone(),
            prefix: u.prefix.clone(),
            retries: u.retries,
            ..UploadConfig::default()
        };
        let client = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string());
        match client.and_then(|client| Uploader::new(settings, client)) {
            Ok(uploader) => Some(Uploads {
                uploader: Arc::new(uploader),
                runtime: tokio::runtime::Handle::current(),
                slots: Arc::new(tokio::sync::Semaphore::new(UPLOADS)),
            }),
            Err(e) => {
                tracing::error!(error = %e, "recording uploads are off");
                None
            }
        }
    });
    let sink = event_sink(
        shared.clone(),
        owners.clone(),
        config.recording_url_base.clone(),
        uploads,
    );
    match Recorders::new(settings, sink) {
        Ok(recorders) => Some(Arc::new(recorders)),
        Err(e) => {
            tracing::error!(error = %e, "recording is off: its writer threads did not start");
            None
        }
    }
}
