//! Player RPCs: PlayProgressTone and StopPlayback (Call.playProgressTone,
//! Call.stopPlayback), and SendDigits (Call.sendDigits). A player replaces
//! the leg's source, as SendMedia does (a leg hears one stream);
//! StopPlayback leaves the leg with no source. StartPlayback and Say will
//! start players the same way.
//!
//! Playback ids have the shape of leg ids (16 hex digits of randomness,
//! then the leg's shard in 4 hex digits).

use std::sync::Arc;

use legato_dsp::dtmf::Digit;
use legato_dsp::tone::{Country, ProgressTone};
use legato_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::{Service, new_leg_id, required};
use crate::control::limits::quote;
use crate::engine::PlayCommand;
use crate::session::{
    DIGIT_COMMA_MS, DigitMode, Endpoint, Key, MAX_QUEUED_KEYS, Player, country_code, tone_by_name,
    tone_name,
};

/// Default and bounds of a SendDigits tone and of the pause after it, ms.
const DEFAULT_DIGIT_MS: u32 = 100;
const MIN_DIGIT_MS: u32 = 40;
const MAX_DIGIT_MS: u32 = 5000;

pub(super) async fn start_playback(
    svc: &Service,
    request: Request<pb::StartPlaybackRequest>,
) -> Result<Response<pb::StartPlaybackResponse>, Status> {
    let req = request.into_inner();
    // The target first: no decode for a request that cannot play.
    let (target, shard) = target(svc, &req.leg_id, &req.conference_id).await?;
    let audio = svc.prompts.open(&req.url).await?;
    let id: Arc<str> = new_leg_id(shard).into();
    if req.preload_only {
        let Endpoint::Leg(leg) = target else {
            return Err(Status::invalid_argument(
                "preload_only applies to a leg: give leg_id, not conference_id",
            ));
        };
        svc.call(shard, |reply| PlayCommand::Preload {
            leg,
            playback: id.clone(),
            audio,
            reply,
        })
        .await?;
    } else {
        let player = Player::prompt(id.clone(), audio, req.r#loop);
        svc.call(shard, |reply| PlayCommand::Start {
            target,
            player: Box::new(player),
            reply,
        })
        .await?;
    }
    Ok(Response::new(pb::StartPlaybackResponse {
        playback_id: id.to_string(),
    }))
}

pub(super) async fn say(
    svc: &Service,
    request: Request<pb::SayRequest>,
) -> Result<Response<pb::SayResponse>, Status> {
    let req = request.into_inner();
    let (target, shard) = target(svc, &req.leg_id, &req.conference_id).await?;
    let audio = svc.prompts.say(&req.text, &req.language, &req.voice)?;
    let id: Arc<str> = new_leg_id(shard).into();
    let player = Player::prompt(id.clone(), audio, false);
    svc.call(shard, |reply| PlayCommand::Start {
        target,
        player: Box::new(player),
        reply,
    })
    .await?;
    Ok(Response::new(pb::SayResponse {
        playback_id: id.to_string(),
    }))
}

pub(super) async fn play_progress_tone(
    svc: &Service,
    request: Request<pb::PlayProgressToneRequest>,
) -> Result<Response<pb::PlayProgressToneResponse>, Status> {
    let req = request.into_inner();
    let country = country(&req.country)?;
    let tone = tone(&req.tone)?;
    let (target, shard) = target(svc, &req.leg_id, &req.conference_id).await?;
    let id: Arc<str> = new_leg_id(shard).into();
    let player = Player::tone(id.clone(), country, tone).ok_or_else(|| {
        Status::internal(format!(
            "the {} {} tone could not be set up",
            country.code(),
            tone_name(tone)
        ))
    })?;
    svc.call(shard, |reply| PlayCommand::Start {
        target,
        player: Box::new(player),
        reply,
    })
    .await?;
    Ok(Response::new(pb::PlayProgressToneResponse {
        playback_id: id.to_string(),
    }))
}

pub(super) async fn stop_playback(
    svc: &Service,
    request: Request<pb::StopPlaybackRequest>,
) -> Result<Response<pb::StopPlaybackResponse>, Status> {
    let req = request.into_inner();
    let (target, shard) = target(svc, &req.leg_id, &req.conference_id).await?;
    svc.call(shard, |reply| PlayCommand::Stop { target, reply })
        .await?;
    Ok(Response::new(pb::StopPlaybackResponse {}))
}

/// The leg or conference a player request names (exactly one), checked to
/// exist, and its shard.
async fn target(
    svc: &Service,
    leg_id: &str,
    conference_id: &str,
) -> Result<(Endpoint, usize), Status> {
    let target = svc.target(leg_id, conference_id).await?;
    Ok((target.endpoint, target.shard))
}

pub(super) async fn send_digits(
    svc: &Service,
    request: Request<pb::SendDigitsRequest>,
) -> Result<Response<pb::SendDigitsResponse>, Status> {
    let req = request.into_inner();
    let leg = required(&req.leg_id, "leg_id")?;
    let on_ms = duration(req.duration_ms, "duration_ms")?;
    let off_ms = duration(req.pause_ms, "pause_ms")?;
    let keys = keys(&req.digits, on_ms, off_ms)?;
    let mode = match pb::DtmfMode::try_from(req.mode) {
        Ok(pb::DtmfMode::Unspecified | pb::DtmfMode::Auto) => DigitMode::Auto,
        Ok(pb::DtmfMode::Rfc4733) => DigitMode::Rfc4733,
        Ok(pb::DtmfMode::InBand) => DigitMode::InBand,
        Err(_) => {
            return Err(Status::invalid_argument(format!(
                "unknown DTMF mode {}: AUTO, RFC4733 or IN_BAND",
                req.mode
            )));
        }
    };
    let shard = svc.leg_shard(leg)?;
    svc.call(shard, |reply| PlayCommand::Digits {
        leg: leg.into(),
        keys,
        mode,
        reply,
    })
    .await?;
    Ok(Response::new(pb::SendDigitsResponse {}))
}

/// A tone or pause duration: 0 for the default, else within bounds.
fn duration(ms: u32, field: &str) -> Result<u32, Status> {
    match ms {
        0 => Ok(DEFAULT_DIGIT_MS),
        MIN_DIGIT_MS..=MAX_DIGIT_MS => Ok(ms),
        _ => Err(Status::invalid_argument(format!(
            "{field} must be 0 (default {DEFAULT_DIGIT_MS}) or {MIN_DIGIT_MS}-{MAX_DIGIT_MS} ms, not {ms}"
        ))),
    }
}

/// The keys of a digit string: 0-9 * # A-D (any case), ',' for a pause of
/// [`DIGIT_COMMA_MS`].
fn keys(digits: &str, on_ms: u32, off_ms: u32) -> Result<Vec<Key>, Status> {
    let digits = required(digits, "digits")?;
    if digits.len() > MAX_QUEUED_KEYS {
        return Err(Status::invalid_argument(format!(
            "digits: at most {MAX_QUEUED_KEYS} characters, not {}",
            digits.len()
        )));
    }
    digits
        .chars()
        .enumerate()
        .map(|(i, c)| {
            let digit = match c {
                ',' => None,
                c => Some(Digit::from_char(c.to_ascii_uppercase()).ok_or_else(|| {
                    Status::invalid_argument(format!(
                        "digits: {:?} at position {i} is not one of 0-9 * # A-D or ',' ({DIGIT_COMMA_MS} ms pause)",
                        c
                    ))
                })?),
            };
            Ok(Key {
                digit,
                on_ms,
                off_ms,
                events: false,
            })
        })
        .collect()
}

/// The country of a progress tone (ISO 3166 alpha-2, any case).
pub(super) fn country(code: &str) -> Result<Country, Status> {
    let code = required(code, "country")?;
    Country::from_code(code).ok_or_else(|| {
        Status::invalid_argument(format!(
            "unknown country {}: one of {} (GB for the UK, CA as US)",
            quote(code),
            Country::ALL
                .iter()
                .map(|c| country_code(*c))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}

/// A progress tone's kind by name.
fn tone(name: &str) -> Result<ProgressTone, Status> {
    let name = required(name, "tone")?;
    tone_by_name(name).ok_or_else(|| {
        Status::invalid_argument(format!(
            "unknown tone {}: one of {}",
            quote(name),
            ProgressTone::ALL
                .iter()
                .map(|t| tone_name(*t))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digit_strings_and_durations_are_checked() {
        let k = keys("1a,#", 100, 50).unwrap();
        assert_eq!(k.len(), 4);
        assert_eq!(k[1].digit, Some(Digit::A));
        assert_eq!(k[2].digit, None);
        assert_eq!((k[3].on_ms, k[3].off_ms), (100, 50));
        let err = keys("12x", 100, 100).unwrap_err();
        assert!(err.message().contains("position 2"), "{}", err.message());
        assert!(keys("", 100, 100).is_err());
        assert!(keys(&"1".repeat(MAX_QUEUED_KEYS + 1), 100, 100).is_err());
        assert!(keys(&"1".repeat(MAX_QUEUED_KEYS), 100, 100).is_ok());
        assert_eq!(duration(0, "d").unwrap(), DEFAULT_DIGIT_MS);
        assert_eq!(duration(40, "d").unwrap(), 40);
        assert!(duration(39, "d").is_err());
        assert!(duration(5001, "d").is_err());
    }

    #[test]
    fn countries_and_tones_are_checked_with_the_valid_ones_listed() {
        assert_eq!(country("gb").unwrap(), Country::Uk);
        assert_eq!(country("US").unwrap(), Country::Us);
        let err = country("XX").unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(
            err.message()
                .contains("AU, BR, CN, DE, FR, IN, JP, RU, GB, US")
        );
        assert_eq!(
            country("").unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
        assert_eq!(tone("call_waiting").unwrap(), ProgressTone::CallWaiting);
        let err = tone("x".repeat(10_000).as_str()).unwrap_err();
        assert!(
            err.message()
                .contains("busy, call_waiting, congestion, dial, ringback, sit")
        );
        assert!(err.message().len() < 300, "bounded: {}", err.message());
    }
}
