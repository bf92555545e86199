//! Session and leg RPCs: CreateSession, DeleteSession, ListSessions,
//! CreateLeg, UpdateLeg, HangupLeg, GetLeg, ListLegs.

use std::sync::Arc;

use legato_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::{Service, new_leg_id, required};
use crate::config;
use crate::control::convert;
use crate::control::limits;
use crate::engine::{
    Admitted, CreateLeg, LegCommand, Limit, Page, SessionCommand, SessionLimits, Shared,
};
use crate::session::{LegRequest, LegUpdate, Metadata};

pub(super) async fn create_session(
    svc: &Service,
    request: Request<pb::CreateSessionRequest>,
) -> Result<Response<pb::CreateSessionResponse>, Status> {
    let req = request.into_inner();
    let mut id = req.session_id;
    if id.is_empty() {
        id = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
    }
    limits::session_id(&id)?;
    let shared = svc.engine.shared();
    let limits = SessionLimits {
        idle_timeout: limit_from(req.idle_timeout_ms, shared.config.session_idle_timeout),
        max_duration: limit_from(req.max_duration_ms, shared.config.session_max_duration),
    };
    // The unit travels with the command: the shard keeps it, or it
    // comes back when dropped, whatever happens to this call.
    let admitted = Admitted::take(shared, Limit::Sessions)?;
    let session: Arc<str> = id.as_str().into();
    svc.call(svc.session_shard(&id), |reply| SessionCommand::Create {
        id: session,
        admitted,
        limits,
        reply,
    })
    .await?;
    Ok(Response::new(pb::CreateSessionResponse { session_id: id }))
}

pub(super) async fn delete_session(
    svc: &Service,
    request: Request<pb::DeleteSessionRequest>,
) -> Result<Response<pb::DeleteSessionResponse>, Status> {
    let id = request.into_inner().session_id;
    required(&id, "session_id")?;
    limits::session_id(&id)?;
    let session: Arc<str> = id.as_str().into();
    let legs_terminated = svc
        .call(svc.session_shard(&id), |reply| SessionCommand::Delete {
            id: session,
            reply,
        })
        .await?;
    Ok(Response::new(pb::DeleteSessionResponse { legs_terminated }))
}

pub(super) async fn list_sessions(
    svc: &Service,
    request: Request<pb::ListSessionsRequest>,
) -> Result<Response<pb::ListSessionsResponse>, Status> {
    let req = request.into_inner();
    let page = requested_page(req.page_size, req.page_token)?;
    let limit = page.limit - 1;
    let all = svc
        .call_all(|reply| SessionCommand::List {
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

pub(super) async fn create_leg(
    svc: &Service,
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
    let shared = svc.engine.shared();
    let codecs = if req.codecs.is_empty() {
        shared.config.codecs.clone()
    } else {
        config::parse_codecs(&req.codecs).map_err(Status::invalid_argument)?
    };
    let local_direction = convert::requested_direction(req.local_direction)?.unwrap_or_default();
    let ptime = match req.ptime_ms {
        0 => shared.config.ptime_ms,
        ms => config::check_ptime(ms)
            .map_err(|e| Status::invalid_argument(format!("ptime_ms = {ms}: {e}")))?,
    };
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
    let shard = svc.session_shard(&req.session_id);
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
            ptime,
            always_transcode: req.always_transcode,
        },
    };
    let (view, local_sdp) = svc
        .call(shard, |reply| LegCommand::Create {
            leg: Box::new(leg),
            reply,
        })
        .await?;
    Ok(Response::new(pb::CreateLegResponse {
        leg: Some(convert::leg(&view)),
        local_sdp,
    }))
}

pub(super) async fn update_leg(
    svc: &Service,
    request: Request<pb::UpdateLegRequest>,
) -> Result<Response<pb::UpdateLegResponse>, Status> {
    let req = request.into_inner();
    let shard = svc.leg_shard(required(&req.leg_id, "leg_id")?)?;
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
    let (view, local_sdp) = svc
        .call(shard, |reply| LegCommand::Update {
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

pub(super) async fn hangup_leg(
    svc: &Service,
    request: Request<pb::HangupLegRequest>,
) -> Result<Response<pb::HangupLegResponse>, Status> {
    let req = request.into_inner();
    let shard = svc.leg_shard(required(&req.leg_id, "leg_id")?)?;
    limits::at_most(&req.reason, limits::MAX_REASON, "reason")?;
    let code = u16::try_from(req.code).map_err(|_| {
        Status::invalid_argument(format!(
            "hangup code {} is not a SIP final response code (200..699)",
            req.code
        ))
    })?;
    let leg: Arc<str> = req.leg_id.as_str().into();
    let view = svc
        .call(shard, |reply| LegCommand::Hangup {
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

pub(super) async fn get_leg(
    svc: &Service,
    request: Request<pb::GetLegRequest>,
) -> Result<Response<pb::GetLegResponse>, Status> {
    let req = request.into_inner();
    let shard = svc.leg_shard(required(&req.leg_id, "leg_id")?)?;
    let leg: Arc<str> = req.leg_id.as_str().into();
    let view = svc
        .call(shard, |reply| LegCommand::Get { leg, reply })
        .await?;
    Ok(Response::new(pb::GetLegResponse {
        leg: Some(convert::leg(&view)),
    }))
}

pub(super) async fn get_statistics(
    svc: &Service,
    request: Request<pb::GetStatisticsRequest>,
) -> Result<Response<pb::GetStatisticsResponse>, Status> {
    let req = request.into_inner();
    let shard = svc.leg_shard(required(&req.leg_id, "leg_id")?)?;
    let leg: Arc<str> = req.leg_id.as_str().into();
    let stats = svc
        .call(shard, |reply| LegCommand::Statistics { leg, reply })
        .await?;
    Ok(Response::new(pb::GetStatisticsResponse {
        statistics: Some(convert::media_statistics(&stats)),
    }))
}

/// Shortest MonitorMediaStatistics interval.
const MIN_STATS_INTERVAL_MS: u32 = 1000;

pub(super) async fn monitor_media_statistics(
    svc: &Service,
    request: Request<pb::MonitorMediaStatisticsRequest>,
) -> Result<Response<pb::MonitorMediaStatisticsResponse>, Status> {
    let req = request.into_inner();
    let shard = svc.leg_shard(required(&req.leg_id, "leg_id")?)?;
    let interval = match req.interval_ms {
        0 => None,
        ms if ms < MIN_STATS_INTERVAL_MS => {
            return Err(Status::invalid_argument(format!(
                "interval_ms = {ms}: the shortest interval is {MIN_STATS_INTERVAL_MS} ms (0 turns the events off)"
            )));
        }
        ms => Some(std::time::Duration::from_millis(u64::from(ms))),
    };
    let leg: Arc<str> = req.leg_id.as_str().into();
    svc.call(shard, |reply| LegCommand::MonitorStatistics {
        leg,
        interval,
        reply,
    })
    .await?;
    Ok(Response::new(pb::MonitorMediaStatisticsResponse {}))
}

pub(super) async fn list_legs(
    svc: &Service,
    request: Request<pb::ListLegsRequest>,
) -> Result<Response<pb::ListLegsResponse>, Status> {
    let req = request.into_inner();
    let page = requested_page(req.page_size, req.page_token)?;
    let limit = page.limit - 1;
    let views = if req.session_id.is_empty() {
        svc.call_all(|reply| LegCommand::List {
            session: None,
            page: page.clone(),
            reply,
        })
        .await?
    } else {
        limits::session_id(&req.session_id)?;
        let session: Arc<str> = req.session_id.as_str().into();
        svc.call(svc.session_shard(&req.session_id), |reply| {
            LegCommand::List {
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
