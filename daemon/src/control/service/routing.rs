//! Routing RPCs: SendMedia and StopMedia (Call.sendMediaTo, stopMediaTo)
//! between legs and conferences, and CreateConference / DeleteConference.
//!
//! Conference ids have the shape of leg ids (16 hex digits of randomness,
//! then the shard in 4 hex digits): a conference lives on its session's
//! shard, with its legs.

use std::sync::Arc;

use legato_dsp::time::ClockRate;
use legato_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::{Service, leg_shard, new_leg_id, required};
use crate::control::limits::{self, quote};
use crate::engine::RouteCommand;
use crate::session::Endpoint;

/// Bounds of a conference talker's gain.
const MIN_GAIN_DB: f32 = -60.0;
const MAX_GAIN_DB: f32 = 12.0;

pub(super) async fn send_media(
    svc: &Service,
    request: Request<pb::SendMediaRequest>,
) -> Result<Response<pb::SendMediaResponse>, Status> {
    let req = request.into_inner();
    let from = endpoint(req.from.as_ref(), "from")?;
    let to = endpoint(req.to.as_ref(), "to")?;
    let gain_db = req.gain_db;
    if !gain_db.is_finite() || !(MIN_GAIN_DB..=MAX_GAIN_DB).contains(&gain_db) {
        return Err(Status::invalid_argument(format!(
            "gain_db must be between {MIN_GAIN_DB} and {MAX_GAIN_DB} dB"
        )));
    }
    if gain_db != 0.0 && !matches!((&from, &to), (Endpoint::Leg(_), Endpoint::Conference(_))) {
        return Err(Status::invalid_argument(
            "gain_db applies only to a leg talking in a conference (from a leg to a conference)",
        ));
    }
    let shard = route_shard(svc, &from, &to).await?;
    let routed = svc
        .call(shard, |reply| RouteCommand::Send {
            from,
            to,
            gain_db,
            reply,
        })
        .await?;
    Ok(Response::new(pb::SendMediaResponse {
        replaced: routed.replaced.map(|e| to_pb(&e)),
        held_back: routed.held_back.unwrap_or_default(),
    }))
}

pub(super) async fn stop_media(
    svc: &Service,
    request: Request<pb::StopMediaRequest>,
) -> Result<Response<pb::StopMediaResponse>, Status> {
    let req = request.into_inner();
    let from = endpoint(req.from.as_ref(), "from")?;
    let to = endpoint(req.to.as_ref(), "to")?;
    let shard = shard_of(svc, &from)?;
    if shard_of(svc, &to)? != shard {
        return Err(Status::not_found(format!(
            "{} is not sending media to {}",
            describe(&from),
            describe(&to)
        )));
    }
    svc.call(shard, |reply| RouteCommand::Stop { from, to, reply })
        .await?;
    Ok(Response::new(pb::StopMediaResponse {}))
}

pub(super) async fn create_conference(
    svc: &Service,
    request: Request<pb::CreateConferenceRequest>,
) -> Result<Response<pb::CreateConferenceResponse>, Status> {
    let req = request.into_inner();
    required(&req.session_id, "session_id")?;
    limits::session_id(&req.session_id)?;
    let rate = match req.sample_rate {
        0 => None,
        8000 => Some(ClockRate::HZ_8000),
        16_000 => Some(ClockRate::HZ_16000),
        48_000 => Some(ClockRate::HZ_48000),
        other => {
            return Err(Status::invalid_argument(format!(
                "sample_rate = {other}: must be 8000, 16000, 48000 or 0 (the widest member's)"
            )));
        }
    };
    let shard = svc.session_shard(&req.session_id);
    let id: Arc<str> = new_leg_id(shard).into();
    let session: Arc<str> = req.session_id.as_str().into();
    svc.call(shard, |reply| RouteCommand::CreateConference {
        id: id.clone(),
        session,
        rate,
        reply,
    })
    .await?;
    Ok(Response::new(pb::CreateConferenceResponse {
        conference_id: id.to_string(),
    }))
}

pub(super) async fn delete_conference(
    svc: &Service,
    request: Request<pb::DeleteConferenceRequest>,
) -> Result<Response<pb::DeleteConferenceResponse>, Status> {
    let id = request.into_inner().conference_id;
    required(&id, "conference_id")?;
    let endpoint = Endpoint::Conference(checked_id(&id, "conference")?);
    let shard = shard_of(svc, &endpoint)?;
    let id = endpoint.id().clone();
    svc.call(shard, |reply| RouteCommand::DeleteConference { id, reply })
        .await?;
    Ok(Response::new(pb::DeleteConferenceResponse {}))
}

/// The shard both ends live on; NOT_FOUND for an unknown id,
/// INVALID_ARGUMENT when they are in different sessions.
async fn route_shard(svc: &Service, from: &Endpoint, to: &Endpoint) -> Result<usize, Status> {
    let shard = shard_of(svc, from)?;
    let to_shard = shard_of(svc, to)?;
    if to_shard == shard {
        return Ok(shard);
    }
    // Different shards mean different sessions, but an unknown id is the
    // more useful answer when one of them does not exist.
    for end in [from, to] {
        match end {
            Endpoint::Leg(id) => svc.check_leg_exists(id).await?,
            Endpoint::Conference(id) => {
                let shard = shard_of(svc, end)?;
                let id = id.clone();
                svc.call(shard, |reply| RouteCommand::CheckConference { id, reply })
                    .await?;
            }
        }
    }
    Err(Status::invalid_argument(format!(
        "{} and {} belong to different sessions",
        describe(from),
        describe(to)
    )))
}

fn shard_of(svc: &Service, end: &Endpoint) -> Result<usize, Status> {
    leg_shard(end.id())
        .filter(|&s| s < svc.engine.shard_count())
        .ok_or_else(|| Status::not_found(format!("no such {}", describe(end))))
}

fn describe(end: &Endpoint) -> String {
    match end {
        Endpoint::Leg(id) => format!("leg {}", quote(id)),
        Endpoint::Conference(id) => format!("conference {}", quote(id)),
    }
}

fn checked_id(id: &str, kind: &str) -> Result<Arc<str>, Status> {
    if id.len() > limits::LEG_ID_LEN {
        return Err(Status::not_found(format!("no such {kind} {}", quote(id))));
    }
    Ok(id.into())
}

fn endpoint(endpoint: Option<&pb::MediaEndpoint>, what: &str) -> Result<Endpoint, Status> {
    match endpoint.and_then(|e| e.endpoint.as_ref()) {
        Some(pb::media_endpoint::Endpoint::LegId(id)) if !id.is_empty() => {
            Ok(Endpoint::Leg(checked_id(id, "leg")?))
        }
        Some(pb::media_endpoint::Endpoint::ConferenceId(id)) if !id.is_empty() => {
            Ok(Endpoint::Conference(checked_id(id, "conference")?))
        }
        _ => Err(Status::invalid_argument(format!(
            "{what} must name a leg or a conference"
        ))),
    }
}

fn to_pb(end: &Endpoint) -> pb::MediaEndpoint {
    let endpoint = match end {
        Endpoint::Leg(id) => pb::media_endpoint::Endpoint::LegId(id.to_string()),
        Endpoint::Conference(id) => pb::media_endpoint::Endpoint::ConferenceId(id.to_string()),
    };
    pb::MediaEndpoint {
        endpoint: Some(endpoint),
    }
}
