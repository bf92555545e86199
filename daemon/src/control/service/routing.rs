//! Routing RPCs: SendMedia and StopMedia (Call.sendMediaTo, stopMediaTo).

use legato_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::Service;
use crate::control::limits::{self, quote};
use crate::control::status::unimplemented;
use crate::engine::RouteCommand;

pub(super) async fn send_media(
    svc: &Service,
    request: Request<pb::SendMediaRequest>,
) -> Result<Response<pb::SendMediaResponse>, Status> {
    let req = request.into_inner();
    let from = leg_endpoint(req.from.as_ref(), "from")?;
    let to = leg_endpoint(req.to.as_ref(), "to")?;
    let shard = svc.route_shard(&from, &to).await?;
    let routed = svc
        .call(shard, |reply| RouteCommand::Send {
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

pub(super) async fn stop_media(
    svc: &Service,
    request: Request<pb::StopMediaRequest>,
) -> Result<Response<pb::StopMediaResponse>, Status> {
    let req = request.into_inner();
    let from = leg_endpoint(req.from.as_ref(), "from")?;
    let to = leg_endpoint(req.to.as_ref(), "to")?;
    let shard = svc.leg_shard(&from)?;
    if svc.leg_shard(&to)? != shard {
        svc.check_leg_exists(&from).await?;
        svc.check_leg_exists(&to).await?;
        return Err(Status::not_found(format!(
            "leg '{from}' is not sending media to leg '{to}'"
        )));
    }
    svc.call(shard, |reply| RouteCommand::Stop {
        from: from.as_str().into(),
        to: to.as_str().into(),
        reply,
    })
    .await?;
    Ok(Response::new(pb::StopMediaResponse {}))
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
