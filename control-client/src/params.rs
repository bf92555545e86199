//! Parameter types of the richer calls: [`CreateLeg`], [`UpdateLeg`],
//! [`EventFilter`] and [`MediaEndpoint`].

use crate::proto;

/// Parameters of [`Client::create_leg`](crate::Client::create_leg).
///
/// Start with [`CreateLeg::incoming`] (the remote party offered, legato
/// answers) or [`CreateLeg::outgoing`] (legato offers), then chain the
/// optional settings:
///
/// ```
/// use legato_client::{CreateLeg, proto::ClientType};
///
/// let params = CreateLeg::outgoing("call-1")
///     .caller_id("+15551234567")
///     .client_type(ClientType::Pstn)
///     .codec("PCMA")
///     .codec("PCMU")
///     .strict_source(true);
/// assert_eq!(params.session_id(), "call-1");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct CreateLeg {
    session_id: String,
    remote_offer: Option<String>,
    metadata: proto::LegMetadata,
    codecs: Vec<String>,
    rtcp_mux: Option<bool>,
    strict_source: Option<bool>,
    local_direction: Option<proto::MediaDirection>,
    ptime_ms: u32,
    always_transcode: bool,
}

impl CreateLeg {
    /// An incoming leg in `session_id`: legato answers `remote_offer` (the
    /// SDP of the caller's INVITE).
    pub fn incoming(session_id: impl Into<String>, remote_offer: impl Into<String>) -> Self {
        Self::new(session_id.into(), Some(remote_offer.into()))
    }

    /// An outgoing leg in `session_id`: legato makes the offer; pass the
    /// remote answer later with [`UpdateLeg::remote_answer`].
    pub fn outgoing(session_id: impl Into<String>) -> Self {
        Self::new(session_id.into(), None)
    }

    fn new(session_id: String, remote_offer: Option<String>) -> Self {
        Self {
            session_id,
            remote_offer,
            metadata: proto::LegMetadata::default(),
            codecs: Vec::new(),
            rtcp_mux: None,
            strict_source: None,
            local_direction: None,
            ptime_ms: 0,
            always_transcode: false,
        }
    }

    /// Replaces all metadata at once.
    #[must_use]
    pub fn metadata(mut self, metadata: proto::LegMetadata) -> Self {
        self.metadata = metadata;
        self
    }

    /// Caller id shown to the callee, e.g. `"+15551234567"`.
    #[must_use]
    pub fn caller_id(mut self, caller_id: impl Into<String>) -> Self {
        self.metadata.caller_id = caller_id.into();
        self
    }

    /// Human-readable caller name.
    #[must_use]
    pub fn display_name(mut self, display_name: impl Into<String>) -> Self {
        self.metadata.display_name = display_name.into();
        self
    }

    /// Dialled number.
    #[must_use]
    pub fn number(mut self, number: impl Into<String>) -> Self {
        self.metadata.number = number.into();
        self
    }

    /// Kind of the remote client.
    #[must_use]
    pub fn client_type(mut self, client_type: proto::ClientType) -> Self {
        self.metadata.client_type = client_type.into();
        self
    }

    /// Free-form controller data, at most 8 KiB (the daemon enforces it).
    #[must_use]
    pub fn custom_data(mut self, custom_data: impl Into<String>) -> Self {
        self.metadata.custom_data = custom_data.into();
        self
    }

    /// Appends a codec, by encoding name (`"PCMU"`, `"PCMA"`), to the
    /// preference list. Without any, the daemon's configured list is used.
    #[must_use]
    pub fn codec(mut self, name: impl Into<String>) -> Self {
        self.codecs.push(name.into());
        self
    }

    /// Replaces the codec preference list.
    #[must_use]
    pub fn codecs<I>(mut self, names: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.codecs = names.into_iter().map(Into::into).collect();
        self
    }

    /// Whether an outgoing leg offers rtcp-mux (default: daemon config).
    #[must_use]
    pub fn rtcp_mux(mut self, enabled: bool) -> Self {
        self.rtcp_mux = Some(enabled);
        self
    }

    /// Only accept RTP/RTCP from the address in the remote SDP, never latch
    /// to another one (default: daemon config).
    #[must_use]
    pub fn strict_source(mut self, enabled: bool) -> Self {
        self.strict_source = Some(enabled);
        self
    }

    /// Audio routed to this leg always takes the PCM path (jitter buffer,
    /// decode, re-encode), even from a source it could relay or G.711-convert
    /// packet by packet (default: off).
    #[must_use]
    pub fn always_transcode(mut self, enabled: bool) -> Self {
        self.always_transcode = enabled;
        self
    }

    /// Direction legato writes in its own SDP (default `SENDRECV`).
    #[must_use]
    pub fn local_direction(mut self, direction: proto::MediaDirection) -> Self {
        self.local_direction = Some(direction);
        self
    }

    /// Packet duration legato asks to receive (`a=ptime`), in ms: 10, 20,
    /// 30, 40, 50 or 60 (default: the daemon's `ptime_ms`).
    #[must_use]
    pub fn ptime_ms(mut self, ms: u32) -> Self {
        self.ptime_ms = ms;
        self
    }

    /// The session the leg will belong to.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// Whether this describes an incoming leg.
    pub fn is_incoming(&self) -> bool {
        self.remote_offer.is_some()
    }

    pub(crate) fn into_request(self) -> proto::CreateLegRequest {
        let direction = if self.remote_offer.is_some() {
            proto::Direction::Incoming
        } else {
            proto::Direction::Outgoing
        };
        proto::CreateLegRequest {
            session_id: self.session_id,
            direction: direction.into(),
            remote_sdp: self.remote_offer.unwrap_or_default(),
            metadata: Some(self.metadata),
            codecs: self.codecs,
            rtcp_mux: self.rtcp_mux,
            strict_source: self.strict_source,
            local_direction: self
                .local_direction
                .unwrap_or(proto::MediaDirection::Unspecified)
                .into(),
            ptime_ms: self.ptime_ms,
            always_transcode: self.always_transcode,
        }
    }
}

/// Parameters of [`Client::update_leg`](crate::Client::update_leg).
///
/// ```
/// use legato_client::{UpdateLeg, proto::LegState};
///
/// # let answer = String::new();
/// // The callee answered legato's offer with a 200 OK.
/// let params = UpdateLeg::new("leg-1")
///     .remote_answer(answer)
///     .state(LegState::Connected);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct UpdateLeg {
    leg_id: String,
    remote_sdp: Option<proto::SessionDescription>,
    create_offer: bool,
    local_direction: Option<proto::MediaDirection>,
    state: Option<proto::LegState>,
}

impl UpdateLeg {
    /// An update of `leg_id` that changes nothing yet.
    pub fn new(leg_id: impl Into<String>) -> Self {
        Self {
            leg_id: leg_id.into(),
            remote_sdp: None,
            create_offer: false,
            local_direction: None,
            state: None,
        }
    }

    /// Applies a remote SDP offer (re-INVITE); legato's answer comes back in
    /// [`LegAndSdp::local_sdp`](crate::LegAndSdp::local_sdp). Replaces any
    /// SDP set before.
    #[must_use]
    pub fn remote_offer(self, sdp: impl Into<String>) -> Self {
        self.remote_sdp(proto::SdpType::Offer, sdp.into())
    }

    /// Applies the remote answer to legato's pending offer. Replaces any SDP
    /// set before.
    #[must_use]
    pub fn remote_answer(self, sdp: impl Into<String>) -> Self {
        self.remote_sdp(proto::SdpType::Answer, sdp.into())
    }

    fn remote_sdp(mut self, kind: proto::SdpType, sdp: String) -> Self {
        self.remote_sdp = Some(proto::SessionDescription {
            r#type: kind.into(),
            sdp,
        });
        self
    }

    /// Makes legato produce a new local offer (cannot be combined with a
    /// remote offer; the daemon refuses it).
    #[must_use]
    pub fn create_offer(mut self) -> Self {
        self.create_offer = true;
        self
    }

    /// New direction for legato's side of the SDP made by this update.
    #[must_use]
    pub fn local_direction(mut self, direction: proto::MediaDirection) -> Self {
        self.local_direction = Some(direction);
        self
    }

    /// Moves the leg to `ALERTING`, `EARLY_MEDIA` or `CONNECTED`. Use
    /// [`Client::hangup_leg`](crate::Client::hangup_leg) to terminate.
    #[must_use]
    pub fn state(mut self, state: proto::LegState) -> Self {
        self.state = Some(state);
        self
    }

    /// The leg this update applies to.
    pub fn leg_id(&self) -> &str {
        &self.leg_id
    }

    pub(crate) fn into_request(self) -> proto::UpdateLegRequest {
        proto::UpdateLegRequest {
            leg_id: self.leg_id,
            remote_sdp: self.remote_sdp,
            create_offer: self.create_offer,
            local_direction: self
                .local_direction
                .unwrap_or(proto::MediaDirection::Unspecified)
                .into(),
            state: self.state.unwrap_or(proto::LegState::Unspecified).into(),
        }
    }
}

/// Which events [`Client::watch_events`](crate::Client::watch_events)
/// delivers. The default is every live event of every session.
///
/// ```
/// use legato_client::EventFilter;
///
/// // Everything about one session, resuming after event 41.
/// let filter = EventFilter::new().session("call-1").from_sequence(42);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventFilter {
    session_id: Option<String>,
    leg_id: Option<String>,
    from_sequence: Option<u64>,
    strict_resume: bool,
}

impl EventFilter {
    /// Every live event of every session.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only events of this session.
    #[must_use]
    pub fn session(mut self, session_id: impl Into<String>) -> Self {
        self.session_id = Some(session_id.into());
        self
    }

    /// Only events of this leg (plus session-wide events of its session).
    #[must_use]
    pub fn leg(mut self, leg_id: impl Into<String>) -> Self {
        self.leg_id = Some(leg_id.into());
        self
    }

    /// First replay retained events with a sequence number `>= sequence`,
    /// then continue live. `0` means live events only.
    #[must_use]
    pub fn from_sequence(mut self, sequence: u64) -> Self {
        self.from_sequence = Some(sequence);
        self
    }

    /// Fail with [`Code::OutOfRange`](crate::Code::OutOfRange) instead of
    /// starting with `EventsDropped` when `from_sequence` is older than the
    /// daemon's replay window.
    #[must_use]
    pub fn strict_resume(mut self, strict: bool) -> Self {
        self.strict_resume = strict;
        self
    }

    pub(crate) fn into_request(self) -> proto::WatchEventsRequest {
        proto::WatchEventsRequest {
            session_id: self.session_id.unwrap_or_default(),
            leg_id: self.leg_id.unwrap_or_default(),
            from_sequence: self.from_sequence.unwrap_or(0),
            strict_resume: self.strict_resume,
        }
    }
}

/// A source or sink of audio for
/// [`Client::send_media`](crate::Client::send_media) and
/// [`Client::stop_media`](crate::Client::stop_media).
///
/// A plain string converts to a leg: `client.send_media("a", "b")` routes
/// leg `a` to leg `b`.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MediaEndpoint {
    /// A leg, by id.
    Leg(String),
    /// A conference, by id.
    Conference(String),
}

impl MediaEndpoint {
    /// The id of the leg or conference.
    pub fn id(&self) -> &str {
        match self {
            Self::Leg(id) | Self::Conference(id) => id,
        }
    }

    pub(crate) fn into_proto(self) -> proto::MediaEndpoint {
        use proto::media_endpoint::Endpoint;
        let endpoint = match self {
            Self::Leg(id) => Endpoint::LegId(id),
            Self::Conference(id) => Endpoint::ConferenceId(id),
        };
        proto::MediaEndpoint {
            endpoint: Some(endpoint),
        }
    }

    /// `None` for an endpoint without its oneof set.
    pub(crate) fn from_proto(endpoint: proto::MediaEndpoint) -> Option<Self> {
        use proto::media_endpoint::Endpoint;
        match endpoint.endpoint? {
            Endpoint::LegId(id) => Some(Self::Leg(id)),
            Endpoint::ConferenceId(id) => Some(Self::Conference(id)),
        }
    }
}

impl From<&str> for MediaEndpoint {
    fn from(leg_id: &str) -> Self {
        Self::Leg(leg_id.to_owned())
    }
}

impl From<String> for MediaEndpoint {
    fn from(leg_id: String) -> Self {
        Self::Leg(leg_id)
    }
}

impl From<&String> for MediaEndpoint {
    fn from(leg_id: &String) -> Self {
        Self::Leg(leg_id.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_leg_request() {
        let req = CreateLeg::incoming("s1", "v=0\r\n")
            .caller_id("+1555")
            .client_type(proto::ClientType::Sip)
            .codecs(["PCMA"])
            .codec("PCMU")
            .rtcp_mux(false)
            .local_direction(proto::MediaDirection::Recvonly)
            .into_request();
        assert_eq!(req.session_id, "s1");
        assert_eq!(req.direction(), proto::Direction::Incoming);
        assert_eq!(req.remote_sdp, "v=0\r\n");
        assert_eq!(req.codecs, ["PCMA", "PCMU"]);
        assert_eq!(req.rtcp_mux, Some(false));
        assert_eq!(req.strict_source, None);
        assert_eq!(req.local_direction(), proto::MediaDirection::Recvonly);
        let metadata = req.metadata.unwrap_or_default();
        assert_eq!(metadata.caller_id, "+1555");
        assert_eq!(metadata.client_type(), proto::ClientType::Sip);

        let req = CreateLeg::outgoing("s2").into_request();
        assert_eq!(req.direction(), proto::Direction::Outgoing);
        assert!(req.remote_sdp.is_empty());
        assert_eq!(req.local_direction(), proto::MediaDirection::Unspecified);
    }

    #[test]
    fn update_leg_request() {
        let req = UpdateLeg::new("l1")
            .remote_offer("offer")
            .remote_answer("answer")
            .state(proto::LegState::Connected)
            .into_request();
        let sdp = req.remote_sdp.clone().unwrap_or_default();
        assert_eq!(sdp.r#type(), proto::SdpType::Answer);
        assert_eq!(sdp.sdp, "answer");
        assert_eq!(req.state(), proto::LegState::Connected);
        assert!(!req.create_offer);

        let req = UpdateLeg::new("l1").create_offer().into_request();
        assert!(req.create_offer);
        assert!(req.remote_sdp.is_none());
        assert_eq!(req.state(), proto::LegState::Unspecified);
    }

    #[test]
    fn media_endpoint_round_trip() {
        for endpoint in [
            MediaEndpoint::from("l1"),
            MediaEndpoint::Conference("c1".into()),
        ] {
            let back = MediaEndpoint::from_proto(endpoint.clone().into_proto());
            assert_eq!(back.as_ref(), Some(&endpoint));
        }
        assert_eq!(
            MediaEndpoint::from_proto(proto::MediaEndpoint::default()),
            None
        );
    }
}
