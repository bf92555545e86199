//! [`Client`]: one async method per RPC of `legato.v1.MediaPlane`.

use std::{
    fmt,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use futures::{Stream, StreamExt as _, stream};
use legato_proto::v1::media_plane_client::MediaPlaneClient;
use tonic::{
    Streaming,
    service::interceptor::InterceptedService,
    transport::{Channel, ClientTlsConfig},
};

use crate::connect::BearerAuth;
use crate::{
    ClientBuilder, CreateLeg, Error, EventFilter, MediaEndpoint, UpdateLeg, endpoint, proto,
};

/// The generated stub over a channel that adds the bearer token, if any.
type Stub = MediaPlaneClient<InterceptedService<Channel, BearerAuth>>;

/// A connection to one legato daemon.
///
/// Cloning is cheap (the clones share one HTTP/2 connection) and clones may
/// be used from several tasks at once. Every method sends exactly one RPC;
/// there is no retry and no deadline beyond the transport's own: wrap a call
/// in `tokio::time::timeout` when you need one. After a connection loss the
/// channel reconnects on its own; calls in between fail with
/// [`Code::Unavailable`](crate::Code::Unavailable).
#[derive(Clone, Debug)]
pub struct Client {
    stub: Stub,
    endpoint: Arc<str>,
}

/// Idle and lifetime limits of a session (`None`: the daemon's default,
/// itself none unless configured).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionLimits {
    /// Delete the session after this long with no RPC naming it or its
    /// legs and no RTP received on its legs.
    pub idle_timeout: Option<Duration>,
    /// Delete the session this long after it was created.
    pub max_duration: Option<Duration>,
}

/// What SendMedia did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Routed {
    /// The source the sink had before, now replaced.
    pub replaced: Option<MediaEndpoint>,
    /// Why the sink sends nothing yet, when it cannot send now.
    pub held_back: Option<String>,
}

/// A leg together with the SDP legato produced for it: the reply of
/// [`Client::create_leg`] and [`Client::update_leg`].
#[derive(Clone, Debug, PartialEq)]
pub struct LegAndSdp {
    /// The leg after the call.
    pub leg: proto::Leg,
    /// legato's SDP: the answer to a remote offer or legato's own offer.
    /// Always set by `create_leg`; empty after an `update_leg` that neither
    /// applied a remote offer nor asked for a new local offer.
    pub local_sdp: String,
}

impl Client {
    /// Connects to the daemon at `endpoint`, `"http://host:port"` or just
    /// `"host:port"`, without TLS or token; see [`Client::builder`] for those.
    ///
    /// Fails with [`Error::InvalidEndpoint`] for an unusable string
    /// (including `https://`, which needs [`Client::builder`] with TLS
    /// settings) and [`Error::Connect`] when no connection can be made
    /// within 5 seconds.
    pub async fn connect(endpoint: impl Into<String>) -> Result<Self, Error> {
        Self::connect_with(&endpoint.into(), None, BearerAuth::none()).await
    }

    /// Starts building a connection with TLS and/or a bearer token:
    ///
    /// ```no_run
    /// # async fn run(ca: Vec<u8>) -> Result<(), legato_client::Error> {
    /// let client = legato_client::Client::builder("legatod.internal:50051")
    ///     .tls(legato_client::Tls::new().ca_pem(ca))
    ///     .bearer_token("0123456789abcdef")
    ///     .connect()
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn builder(endpoint: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(endpoint.into())
    }

    pub(crate) async fn connect_with(
        given: &str,
        tls: Option<ClientTlsConfig>,
        auth: BearerAuth,
    ) -> Result<Self, Error> {
        let uri = endpoint::normalize(given, tls.is_some())?;
        let connect_error = |source: tonic::transport::Error| Error::Connect {
            endpoint: uri.clone(),
            source: Box::new(source),
        };
        let mut channel =
            Channel::from_shared(uri.clone()).map_err(|_| Error::InvalidEndpoint {
                endpoint: given.to_owned(),
                reason: "not a valid URI".to_owned(),
            })?;
        if let Some(tls) = tls {
            channel = channel
                .tls_config(tls)
                .map_err(|e| Error::InvalidCredentials {
                    reason: format!("TLS settings refused: {}", error_chain(&e)),
                })?;
        }
        let channel = channel
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            // Event streams can be idle for a long time: keep the HTTP/2
            // connection checked so a dead daemon is noticed.
            .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
            .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
            .keep_alive_while_idle(true)
            .connect()
            .await
            .map_err(connect_error)?;
        Ok(Self {
            stub: MediaPlaneClient::with_interceptor(channel, auth),
            endpoint: uri.into(),
        })
    }

    /// The normalised endpoint URI, e.g. `"http://127.0.0.1:50051"`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    // ---- lifecycle ------------------------------------------------------

    /// Creates a session and returns its id: `session_id` if given (e.g.
    /// the SIP Call-ID), otherwise one generated by the daemon.
    pub async fn create_session(&self, session_id: Option<&str>) -> Result<String, Error> {
        self.create_session_with_limits(session_id, SessionLimits::default())
            .await
    }

    /// Creates a session with an idle and/or lifetime limit (`None`: the
    /// daemon's default): when one passes, legatod deletes the session as
    /// DeleteSession would, which cleans up after a crashed controller.
    pub async fn create_session_with_limits(
        &self,
        session_id: Option<&str>,
        limits: SessionLimits,
    ) -> Result<String, Error> {
        let ms = |d: Option<Duration>| d.map_or(0, |d| d.as_millis().max(1) as u64);
        let request = proto::CreateSessionRequest {
            session_id: session_id.unwrap_or_default().to_owned(),
            idle_timeout_ms: ms(limits.idle_timeout),
            max_duration_ms: ms(limits.max_duration),
        };
        let reply = self.stub().create_session(request).await.map_err(status)?;
        Ok(reply.into_inner().session_id)
    }

    /// Deletes a session, hanging up its legs; returns how many legs were
    /// hung up.
    pub async fn delete_session(&self, session_id: &str) -> Result<u32, Error> {
        let request = proto::DeleteSessionRequest {
            session_id: session_id.to_owned(),
        };
        let reply = self.stub().delete_session(request).await.map_err(status)?;
        Ok(reply.into_inner().legs_terminated)
    }

    /// Lists the sessions that exist now, in id order (every page).
    pub async fn list_sessions(&self) -> Result<Vec<proto::SessionInfo>, Error> {
        let mut all = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = proto::ListSessionsRequest {
                page_size: 0,
                page_token,
            };
            let reply = self
                .stub()
                .list_sessions(request)
                .await
                .map_err(status)?
                .into_inner();
            all.extend(reply.sessions);
            if reply.next_page_token.is_empty() {
                return Ok(all);
            }
            page_token = reply.next_page_token;
        }
    }

    /// Creates a leg; see [`CreateLeg`] for the incoming/outgoing variants.
    pub async fn create_leg(&self, params: CreateLeg) -> Result<LegAndSdp, Error> {
        let reply = self
            .stub()
            .create_leg(params.into_request())
            .await
            .map_err(status)?
            .into_inner();
        Ok(LegAndSdp {
            leg: reply.leg.ok_or(Error::MissingField("leg"))?,
            local_sdp: reply.local_sdp,
        })
    }

    /// Applies a remote SDP, makes a new offer and/or changes the leg's
    /// state; see [`UpdateLeg`].
    pub async fn update_leg(&self, params: UpdateLeg) -> Result<LegAndSdp, Error> {
        let reply = self
            .stub()
            .update_leg(params.into_request())
            .await
            .map_err(status)?
            .into_inner();
        Ok(LegAndSdp {
            leg: reply.leg.ok_or(Error::MissingField("leg"))?,
            local_sdp: reply.local_sdp,
        })
    }

    /// Hangs up a leg with a SIP-style `code` (`0`: 200 for a connected leg,
    /// 487 otherwise; else within 200..=699) and a free-text `reason`.
    /// Returns the terminated leg.
    pub async fn hangup_leg(
        &self,
        leg_id: &str,
        code: u32,
        reason: &str,
    ) -> Result<proto::Leg, Error> {
        let request = proto::HangupLegRequest {
            leg_id: leg_id.to_owned(),
            code,
            reason: reason.to_owned(),
        };
        let reply = self.stub().hangup_leg(request).await.map_err(status)?;
        reply.into_inner().leg.ok_or(Error::MissingField("leg"))
    }

    /// Reads one leg.
    pub async fn get_leg(&self, leg_id: &str) -> Result<proto::Leg, Error> {
        let request = proto::GetLegRequest {
            leg_id: leg_id.to_owned(),
        };
        let reply = self.stub().get_leg(request).await.map_err(status)?;
        reply.into_inner().leg.ok_or(Error::MissingField("leg"))
    }

    /// Lists the legs of one session, or of all sessions with `None`.
    /// Every page is fetched, in leg id order.
    pub async fn list_legs(&self, session_id: Option<&str>) -> Result<Vec<proto::Leg>, Error> {
        let mut all = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = proto::ListLegsRequest {
                session_id: session_id.unwrap_or_default().to_owned(),
                page_size: 0,
                page_token,
            };
            let reply = self
                .stub()
                .list_legs(request)
                .await
                .map_err(status)?
                .into_inner();
            all.extend(reply.legs);
            if reply.next_page_token.is_empty() {
                return Ok(all);
            }
            page_token = reply.next_page_token;
        }
    }

    // ---- routing --------------------------------------------------------

    /// Sends the audio received on `from` to `to`, replacing `to`'s previous
    /// source. Strings convert to leg ids. The reply names the replaced
    /// source, and says when `to` cannot send yet (not EARLY_MEDIA or
    /// CONNECTED, on hold): the route holds, but nothing reaches `to`'s
    /// remote party until that changes.
    pub async fn send_media(
        &self,
        from: impl Into<MediaEndpoint>,
        to: impl Into<MediaEndpoint>,
    ) -> Result<Routed, Error> {
        self.send_media_with_gain(from, to, 0.0).await
    }

    /// [`Client::send_media`] with a gain: a leg routed into a conference
    /// talks at `gain_db` (-60..=12 dB) in the mix; other routes need 0.
    pub async fn send_media_with_gain(
        &self,
        from: impl Into<MediaEndpoint>,
        to: impl Into<MediaEndpoint>,
        gain_db: f32,
    ) -> Result<Routed, Error> {
        let request = proto::SendMediaRequest {
            from: Some(from.into().into_proto()),
            to: Some(to.into().into_proto()),
            gain_db,
        };
        let reply = self
            .stub()
            .send_media(request)
            .await
            .map_err(status)?
            .into_inner();
        Ok(Routed {
            replaced: reply.replaced.and_then(MediaEndpoint::from_proto),
            held_back: (!reply.held_back.is_empty()).then_some(reply.held_back),
        })
    }

    /// Stops sending `from`'s audio to `to`. Strings convert to leg ids.
    pub async fn stop_media(
        &self,
        from: impl Into<MediaEndpoint>,
        to: impl Into<MediaEndpoint>,
    ) -> Result<(), Error> {
        let request = proto::StopMediaRequest {
            from: Some(from.into().into_proto()),
            to: Some(to.into().into_proto()),
        };
        self.stub().stop_media(request).await.map_err(status)?;
        Ok(())
    }

    /// Creates a conference in a session and returns its id.
    pub async fn create_conference(&self, session_id: &str) -> Result<String, Error> {
        self.create_conference_at(session_id, 0).await
    }

    /// Creates a conference that mixes at `sample_rate` (8000, 16000 or
    /// 48000 Hz) for its whole life; 0: at the widest member's rate.
    pub async fn create_conference_at(
        &self,
        session_id: &str,
        sample_rate: u32,
    ) -> Result<String, Error> {
        let request = proto::CreateConferenceRequest {
            session_id: session_id.to_owned(),
            sample_rate,
        };
        let reply = self
            .stub()
            .create_conference(request)
            .await
            .map_err(status)?;
        Ok(reply.into_inner().conference_id)
    }

    /// Deletes a conference.
    pub async fn delete_conference(&self, conference_id: &str) -> Result<(), Error> {
        let request = proto::DeleteConferenceRequest {
            conference_id: conference_id.to_owned(),
        };
        self.stub()
            .delete_conference(request)
            .await
            .map_err(status)?;
        Ok(())
    }

    // ---- prompts --------------------------------------------------------

    /// Plays an audio file or URL into a leg; returns the playback id.
    pub async fn start_playback(
        &self,
        request: proto::StartPlaybackRequest,
    ) -> Result<String, Error> {
        let reply = self.stub().start_playback(request).await.map_err(status)?;
        Ok(reply.into_inner().playback_id)
    }

    /// Stops the playback of a leg or (with a
    /// [`MediaEndpoint::Conference`]) a conference. Strings convert to leg
    /// ids.
    pub async fn stop_playback(&self, target: impl Into<MediaEndpoint>) -> Result<(), Error> {
        let (leg_id, conference_id) = split(target.into());
        let request = proto::StopPlaybackRequest {
            leg_id,
            conference_id,
        };
        self.stub().stop_playback(request).await.map_err(status)?;
        Ok(())
    }

    /// Speaks text into a leg; returns the playback id.
    pub async fn say(&self, request: proto::SayRequest) -> Result<String, Error> {
        let reply = self.stub().say(request).await.map_err(status)?;
        Ok(reply.into_inner().playback_id)
    }

    /// Plays a country's progress `tone` (`"ringback"`, `"busy"`, ...) into
    /// a leg or (with a [`MediaEndpoint::Conference`]) a conference, whose
    /// listeners all hear it; returns the playback id. Strings convert to
    /// leg ids.
    pub async fn play_progress_tone(
        &self,
        target: impl Into<MediaEndpoint>,
        country: &str,
        tone: &str,
    ) -> Result<String, Error> {
        let (leg_id, conference_id) = split(target.into());
        let request = proto::PlayProgressToneRequest {
            leg_id,
            country: country.to_owned(),
            tone: tone.to_owned(),
            conference_id,
        };
        let reply = self
            .stub()
            .play_progress_tone(request)
            .await
            .map_err(status)?;
        Ok(reply.into_inner().playback_id)
    }

    /// Sends DTMF digits to the remote party.
    pub async fn send_digits(&self, request: proto::SendDigitsRequest) -> Result<(), Error> {
        self.stub().send_digits(request).await.map_err(status)?;
        Ok(())
    }

    // ---- recording ------------------------------------------------------

    /// Starts recording a leg; returns the recording id and file path.
    pub async fn start_recording(
        &self,
        request: proto::StartRecordingRequest,
    ) -> Result<proto::StartRecordingResponse, Error> {
        let reply = self.stub().start_recording(request).await.map_err(status)?;
        Ok(reply.into_inner())
    }

    /// Stops one recording of a leg or conference, or all of them with
    /// `None`.
    pub async fn stop_recording(
        &self,
        target: impl Into<MediaEndpoint>,
        recording_id: Option<&str>,
    ) -> Result<(), Error> {
        let (leg_id, conference_id) = split(target.into());
        let request = proto::StopRecordingRequest {
            leg_id,
            recording_id: recording_id.unwrap_or_default().to_owned(),
            conference_id,
        };
        self.stub().stop_recording(request).await.map_err(status)?;
        Ok(())
    }

    // ---- detection ------------------------------------------------------

    /// Turns tone handling on or off for a leg (the Call API's
    /// `handleTones`): on, every digit it receives raises `ToneReceived`
    /// and is removed from what its sinks get.
    pub async fn set_tone_handling(&self, leg_id: &str, enabled: bool) -> Result<(), Error> {
        self.tone_handling(leg_id, enabled, false).await
    }

    /// Turns DTMF detection only on or off for a leg: every digit it
    /// receives raises `ToneReceived` but stays in the audio (no delay; a
    /// relayed leg stays relayed).
    pub async fn set_tone_detection(&self, leg_id: &str, enabled: bool) -> Result<(), Error> {
        self.tone_handling(leg_id, enabled, true).await
    }

    async fn tone_handling(
        &self,
        leg_id: &str,
        enabled: bool,
        keep_in_audio: bool,
    ) -> Result<(), Error> {
        let request = proto::SetToneHandlingRequest {
            leg_id: leg_id.to_owned(),
            enabled,
            keep_in_audio,
        };
        self.stub()
            .set_tone_handling(request)
            .await
            .map_err(status)?;
        Ok(())
    }

    /// Reports digits received by SIP INFO so they are handled like media
    /// DTMF (`duration_ms` 0: unknown).
    pub async fn inject_digits(
        &self,
        leg_id: &str,
        digits: &str,
        duration_ms: u32,
    ) -> Result<(), Error> {
        let request = proto::InjectDigitsRequest {
            leg_id: leg_id.to_owned(),
            digits: digits.to_owned(),
            duration_ms,
        };
        self.stub().inject_digits(request).await.map_err(status)?;
        Ok(())
    }

    /// Starts voicemail-beep detection, giving up after `timeout_ms`
    /// (0: until disabled).
    pub async fn enable_beep_detection(&self, leg_id: &str, timeout_ms: u32) -> Result<(), Error> {
        let request = proto::EnableBeepDetectionRequest {
            leg_id: leg_id.to_owned(),
            timeout_ms,
        };
        self.stub()
            .enable_beep_detection(request)
            .await
            .map_err(status)?;
        Ok(())
    }

    /// Stops beep detection.
    pub async fn disable_beep_detection(&self, leg_id: &str) -> Result<(), Error> {
        let request = proto::DisableBeepDetectionRequest {
            leg_id: leg_id.to_owned(),
        };
        self.stub()
            .disable_beep_detection(request)
            .await
            .map_err(status)?;
        Ok(())
    }

    /// Starts call-progress tone detection against the given country tables
    /// (empty: all known countries).
    pub async fn enable_tone_detection(
        &self,
        leg_id: &str,
        countries: Vec<String>,
    ) -> Result<(), Error> {
        let request = proto::EnableToneDetectionRequest {
            leg_id: leg_id.to_owned(),
            countries,
        };
        self.stub()
            .enable_tone_detection(request)
            .await
            .map_err(status)?;
        Ok(())
    }

    /// Stops call-progress tone detection (before it fired).
    pub async fn disable_tone_detection(&self, leg_id: &str) -> Result<(), Error> {
        let request = proto::DisableToneDetectionRequest {
            leg_id: leg_id.to_owned(),
        };
        self.stub()
            .disable_tone_detection(request)
            .await
            .map_err(status)?;
        Ok(())
    }

    /// Turns microphone-status reporting on or off.
    pub async fn set_mic_status_handling(&self, leg_id: &str, enabled: bool) -> Result<(), Error> {
        let request = proto::SetMicStatusHandlingRequest {
            leg_id: leg_id.to_owned(),
            enabled,
        };
        self.stub()
            .set_mic_status_handling(request)
            .await
            .map_err(status)?;
        Ok(())
    }

    /// Starts answering-machine detection.
    pub async fn start_audio_identification(
        &self,
        request: proto::StartAudioIdentificationRequest,
    ) -> Result<(), Error> {
        self.stub()
            .start_audio_identification(request)
            .await
            .map_err(status)?;
        Ok(())
    }

    /// Stops answering-machine detection.
    pub async fn stop_audio_identification(&self, leg_id: &str) -> Result<(), Error> {
        let request = proto::StopAudioIdentificationRequest {
            leg_id: leg_id.to_owned(),
        };
        self.stub()
            .stop_audio_identification(request)
            .await
            .map_err(status)?;
        Ok(())
    }

    // ---- quality --------------------------------------------------------

    /// Enables periodic `MediaStatisticsReceived` events every
    /// `interval_ms` (at least 1000), or disables them with 0.
    pub async fn monitor_media_statistics(
        &self,
        leg_id: &str,
        interval_ms: u32,
    ) -> Result<(), Error> {
        let request = proto::MonitorMediaStatisticsRequest {
            leg_id: leg_id.to_owned(),
            interval_ms,
        };
        self.stub()
            .monitor_media_statistics(request)
            .await
            .map_err(status)?;
        Ok(())
    }

    /// Reads a leg's media statistics now.
    pub async fn get_statistics(&self, leg_id: &str) -> Result<proto::MediaStatistics, Error> {
        let request = proto::GetStatisticsRequest {
            leg_id: leg_id.to_owned(),
        };
        let reply = self.stub().get_statistics(request).await.map_err(status)?;
        reply
            .into_inner()
            .statistics
            .ok_or(Error::MissingField("statistics"))
    }

    // ---- events ---------------------------------------------------------

    /// Starts watching events.
    ///
    /// Errors the daemon reports up front (e.g. [`Code::OutOfRange`] with
    /// [`EventFilter::strict_resume`]) are returned here; later failures
    /// (daemon shutdown, lost connection) are the last item of the stream.
    /// The stream ends when the daemon closes it.
    ///
    /// [`Code::OutOfRange`]: crate::Code::OutOfRange
    pub async fn watch_events(&self, filter: EventFilter) -> Result<EventStream, Error> {
        let reply = self
            .stub()
            .watch_events(filter.into_request())
            .await
            .map_err(status)?;
        Ok(EventStream {
            inner: reply.into_inner(),
        })
    }

    // ---- fork -----------------------------------------------------------

    /// Opens a bidirectional audio stream with a leg: `audio` is played
    /// into the leg (16-bit little-endian PCM at `sample_rate`: 8000, 16000
    /// or 48000 Hz), the returned stream yields the leg's received audio in
    /// the same format, 20 ms per item.
    pub async fn stream_audio<S>(
        &self,
        leg_id: &str,
        sample_rate: u32,
        audio: S,
    ) -> Result<AudioStream, Error>
    where
        S: Stream<Item = Vec<u8>> + Send + 'static,
    {
        use proto::stream_audio_request::Message;
        let start = proto::StreamAudioRequest {
            message: Some(Message::Start(proto::StreamAudioStart {
                leg_id: leg_id.to_owned(),
                sample_rate,
            })),
        };
        let requests =
            stream::once(async { start }).chain(audio.map(|pcm| proto::StreamAudioRequest {
                message: Some(Message::Audio(pcm)),
            }));
        let reply = self.stub().stream_audio(requests).await.map_err(status)?;
        Ok(AudioStream {
            inner: reply.into_inner(),
        })
    }

    fn stub(&self) -> Stub {
        // The generated methods take `&mut self`; tonic clients are meant
        // to be cloned per call (the clone shares the channel).
        self.stub.clone()
    }
}

/// The events of [`Client::watch_events`], in sequence order.
///
/// After an `Err` item the stream ends.
pub struct EventStream {
    inner: Streaming<proto::Event>,
}

impl Stream for EventStream {
    type Item = Result<proto::Event, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner
            .poll_next_unpin(cx)
            .map(|item| item.map(|result| result.map_err(Error::from_status)))
    }
}

impl fmt::Debug for EventStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStream").finish_non_exhaustive()
    }
}

/// The audio a leg receives, from [`Client::stream_audio`]: 16-bit
/// little-endian PCM, 20 ms per item.
///
/// After an `Err` item the stream ends.
pub struct AudioStream {
    inner: Streaming<proto::StreamAudioResponse>,
}

impl Stream for AudioStream {
    type Item = Result<Vec<u8>, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_next_unpin(cx).map(|item| {
            item.map(|result| result.map(|reply| reply.audio).map_err(Error::from_status))
        })
    }
}

impl fmt::Debug for AudioStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AudioStream").finish_non_exhaustive()
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn status(status: tonic::Status) -> Error {
    Error::from_status(status)
}

/// How long [`Client::connect`] waits for the TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// HTTP/2 PING interval on an established connection.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// How long a PING may go unanswered before the connection is dropped.
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// A player request's target as its (leg_id, conference_id) fields.
fn split(target: MediaEndpoint) -> (String, String) {
    match target {
        MediaEndpoint::Leg(id) => (id, String::new()),
        MediaEndpoint::Conference(id) => (String::new(), id),
    }
}
