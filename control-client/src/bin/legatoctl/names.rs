//! Short upper-case names of the API's enums (`CONNECTED`, `SENDRECV`),
//! shared by the human and the JSON output.

use legato_client::proto;

/// Declares `fn $name(value: i32) -> String` for a generated enum: the proto
/// name without its prefix, or `UNKNOWN(n)` for a value this build does not
/// know (a newer daemon).
macro_rules! short_name {
    ($name:ident, $enum:ty, $prefix:literal) => {
        pub(crate) fn $name(value: i32) -> String {
            match <$enum>::try_from(value) {
                Ok(known) => {
                    let full = known.as_str_name();
                    full.strip_prefix($prefix).unwrap_or(full).to_owned()
                }
                Err(_) => format!("UNKNOWN({value})"),
            }
        }
    };
}

short_name!(leg_state, proto::LegState, "LEG_STATE_");
short_name!(media_direction, proto::MediaDirection, "MEDIA_DIRECTION_");
short_name!(client_type, proto::ClientType, "CLIENT_TYPE_");
short_name!(media_path, proto::MediaPath, "MEDIA_PATH_");
short_name!(tone_source, proto::ToneSource, "TONE_SOURCE_");
short_name!(
    source_change_reason,
    proto::MediaSourceChangeReason,
    "MEDIA_SOURCE_CHANGE_REASON_"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(leg_state(proto::LegState::EarlyMedia.into()), "EARLY_MEDIA");
        assert_eq!(leg_state(99), "UNKNOWN(99)");
        assert_eq!(
            media_direction(proto::MediaDirection::Sendonly.into()),
            "SENDONLY"
        );
        assert_eq!(client_type(proto::ClientType::Wab.into()), "WAB");
        assert_eq!(tone_source(proto::ToneSource::InBand.into()), "IN_BAND");
    }
}
