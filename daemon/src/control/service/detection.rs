//! Detection RPCs: beep (EnableBeepDetection, DisableBeepDetection),
//! call-progress tones (EnableToneDetection), voice activity
//! (SetMicStatusHandling) and answering-machine detection
//! (StartAudioIdentification, StopAudioIdentification). Each builds its
//! detector here, off the shard, and hands it over; the shard only
//! attaches it.

use legato_dsp::amd::AmdConfig;
use legato_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::{Service, required};
use crate::control::limits::quote;
use crate::engine::PlayCommand;
use crate::session::DetectorChange;
use crate::session::{AmdTap, BEEP_WAIT_MS, BeepTap, ProgressTap, VadTap};

/// Longest beep-detection timeout: an hour.
const MAX_BEEP_TIMEOUT_MS: u32 = 3_600_000;
/// Most countries one EnableToneDetection may name (the table has 10).
const MAX_COUNTRIES: usize = 16;
/// Longest answering-machine timing parameter: a minute.
const MAX_AMD_MS: u32 = 60_000;
/// Most words a greeting may be given.
const MAX_AMD_WORDS: u32 = 100;

/// Most digits one InjectDigits may carry.
const MAX_INJECTED_DIGITS: usize = 64;
/// Longest key press InjectDigits may report: a minute.
const MAX_INJECTED_MS: u32 = 60_000;

pub(super) async fn set_tone_handling(
    svc: &Service,
    request: Request<pb::SetToneHandlingRequest>,
) -> Result<Response<pb::SetToneHandlingResponse>, Status> {
    let req = request.into_inner();
    let shard = svc.leg_shard(required(&req.leg_id, "leg_id")?)?;
    let (leg, enabled) = (req.leg_id.as_str().into(), req.enabled);
    let keep_in_audio = enabled && req.keep_in_audio;
    svc.call(shard, |reply| PlayCommand::ToneHandling {
        leg,
        enabled,
        keep_in_audio,
        reply,
    })
    .await?;
    Ok(Response::new(pb::SetToneHandlingResponse {}))
}

pub(super) async fn inject_digits(
    svc: &Service,
    request: Request<pb::InjectDigitsRequest>,
) -> Result<Response<pb::InjectDigitsResponse>, Status> {
    let req = request.into_inner();
    let shard = svc.leg_shard(required(&req.leg_id, "leg_id")?)?;
    let digits = required(&req.digits, "digits")?;
    if digits.chars().count() > MAX_INJECTED_DIGITS {
        return Err(Status::invalid_argument(format!(
            "{} digits: at most {MAX_INJECTED_DIGITS}",
            digits.chars().count()
        )));
    }
    if let Some(bad) = digits
        .chars()
        .find(|c| !matches!(c.to_ascii_uppercase(), '0'..='9' | '*' | '#' | 'A'..='D'))
    {
        return Err(Status::invalid_argument(format!(
            "digits: {} is not a DTMF key (0-9, *, #, A-D)",
            quote(&bad.to_string())
        )));
    }
    if req.duration_ms > MAX_INJECTED_MS {
        return Err(Status::invalid_argument(format!(
            "duration_ms = {}: at most {MAX_INJECTED_MS} (0: unknown)",
            req.duration_ms
        )));
    }
    let (leg, digits) = (req.leg_id.as_str().into(), digits.to_ascii_uppercase());
    let duration_ms = req.duration_ms;
    svc.call(shard, |reply| PlayCommand::InjectDigits {
        leg,
        digits,
        duration_ms,
        reply,
    })
    .await?;
    Ok(Response::new(pb::InjectDigitsResponse {}))
}

/// Sends `change` for `leg` to its shard.
async fn change(svc: &Service, leg: &str, change: DetectorChange) -> Result<(), Status> {
    let shard = svc.leg_shard(required(leg, "leg_id")?)?;
    let leg = leg.into();
    svc.call(shard, |reply| PlayCommand::Detect { leg, change, reply })
        .await
}

fn internal(what: &str, e: String) -> Status {
    Status::internal(format!("{what}: {e}"))
}

pub(super) async fn enable_beep_detection(
    svc: &Service,
    request: Request<pb::EnableBeepDetectionRequest>,
) -> Result<Response<pb::EnableBeepDetectionResponse>, Status> {
    let req = request.into_inner();
    if req.timeout_ms > MAX_BEEP_TIMEOUT_MS {
        return Err(Status::invalid_argument(format!(
            "timeout_ms = {}: at most {MAX_BEEP_TIMEOUT_MS} (an hour); 0 waits until DisableBeepDetection",
            req.timeout_ms
        )));
    }
    let tap = BeepTap::new(u64::from(req.timeout_ms)).map_err(|e| internal("beep detector", e))?;
    change(svc, &req.leg_id, DetectorChange::Beep(Box::new(tap))).await?;
    Ok(Response::new(pb::EnableBeepDetectionResponse {}))
}

pub(super) async fn disable_beep_detection(
    svc: &Service,
    request: Request<pb::DisableBeepDetectionRequest>,
) -> Result<Response<pb::DisableBeepDetectionResponse>, Status> {
    let req = request.into_inner();
    change(svc, &req.leg_id, DetectorChange::NoBeep).await?;
    Ok(Response::new(pb::DisableBeepDetectionResponse {}))
}

pub(super) async fn enable_tone_detection(
    svc: &Service,
    request: Request<pb::EnableToneDetectionRequest>,
) -> Result<Response<pb::EnableToneDetectionResponse>, Status> {
    let req = request.into_inner();
    if req.countries.len() > MAX_COUNTRIES {
        return Err(Status::invalid_argument(format!(
            "{} countries: at most {MAX_COUNTRIES}",
            req.countries.len()
        )));
    }
    let mut countries = Vec::with_capacity(req.countries.len());
    for code in &req.countries {
        let country = super::playback::country(code)?;
        if !countries.contains(&country) {
            countries.push(country);
        }
    }
    let tap = ProgressTap::new(&countries);
    change(svc, &req.leg_id, DetectorChange::Tones(Box::new(tap))).await?;
    Ok(Response::new(pb::EnableToneDetectionResponse {}))
}

pub(super) async fn disable_tone_detection(
    svc: &Service,
    request: Request<pb::DisableToneDetectionRequest>,
) -> Result<Response<pb::DisableToneDetectionResponse>, Status> {
    let req = request.into_inner();
    change(svc, &req.leg_id, DetectorChange::NoTones).await?;
    Ok(Response::new(pb::DisableToneDetectionResponse {}))
}

pub(super) async fn set_mic_status_handling(
    svc: &Service,
    request: Request<pb::SetMicStatusHandlingRequest>,
) -> Result<Response<pb::SetMicStatusHandlingResponse>, Status> {
    let req = request.into_inner();
    let vad = if req.enabled {
        Some(Box::new(VadTap::new().map_err(|e| internal("VAD", e))?))
    } else {
        None
    };
    change(svc, &req.leg_id, DetectorChange::Vad(vad)).await?;
    Ok(Response::new(pb::SetMicStatusHandlingResponse {}))
}

pub(super) async fn start_audio_identification(
    svc: &Service,
    request: Request<pb::StartAudioIdentificationRequest>,
) -> Result<Response<pb::StartAudioIdentificationResponse>, Status> {
    let req = request.into_inner();
    let mut config = AmdConfig::default();
    for (value, name, field) in [
        (
            req.initial_silence_ms,
            "initial_silence_ms",
            &mut config.initial_silence_ms,
        ),
        (req.greeting_ms, "greeting_ms", &mut config.greeting_ms),
        (
            req.after_greeting_silence_ms,
            "after_greeting_silence_ms",
            &mut config.after_greeting_silence_ms,
        ),
        (
            req.total_analysis_ms,
            "total_analysis_ms",
            &mut config.total_analysis_ms,
        ),
    ] {
        if value > MAX_AMD_MS {
            return Err(Status::invalid_argument(format!(
                "{name} = {value}: at most {MAX_AMD_MS} ms (0 keeps the default)"
            )));
        }
        if value > 0 {
            *field = value;
        }
    }
    if req.max_words > MAX_AMD_WORDS {
        return Err(Status::invalid_argument(format!(
            "max_words = {}: at most {MAX_AMD_WORDS} (0 keeps the default)",
            req.max_words
        )));
    }
    if req.max_words > 0 {
        config.max_words = req.max_words;
    }
    let tap = AmdTap::new(config, BEEP_WAIT_MS)
        .map_err(|e| Status::invalid_argument(format!("answering-machine detection: {e}")))?;
    change(svc, &req.leg_id, DetectorChange::Identify(Box::new(tap))).await?;
    Ok(Response::new(pb::StartAudioIdentificationResponse {}))
}

pub(super) async fn stop_audio_identification(
    svc: &Service,
    request: Request<pb::StopAudioIdentificationRequest>,
) -> Result<Response<pb::StopAudioIdentificationResponse>, Status> {
    let req = request.into_inner();
    change(svc, &req.leg_id, DetectorChange::StopIdentify).await?;
    Ok(Response::new(pb::StopAudioIdentificationResponse {}))
}
