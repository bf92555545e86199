//! Events a leg or session reports; the engine stamps them with time and
//! sequence and the control plane turns them into `legato.v1.Event`.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::sdp::{CodecSpec, MediaDirection};

use super::LegState;
use super::leg::SourceChange;

/// What happened. Names follow the VoxEngine CallEvents.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum EventKind {
    StateChanged {
        old: LegState,
        new: LegState,
    },
    Connected {
        codec: Option<CodecSpec>,
        payload_type: u8,
    },
    Disconnected {
        code: u16,
        reason: String,
        duration_seconds: f64,
    },
    Failed {
        code: u16,
        reason: String,
    },
    AudioStarted,
    FirstAudioPacketReceived {
        source: SocketAddr,
        payload_type: u8,
        ssrc: u32,
    },
    RtpStopped {
        silence_ms: u64,
    },
    RtpResumed {
        gap_ms: u64,
    },
    OnHold {
        remote_direction: MediaDirection,
    },
    OffHold {
        remote_direction: MediaDirection,
    },
    SessionDeleted {
        reason: String,
    },
    /// Periodic statistics (MonitorMediaStatistics).
    MediaStatistics(Box<super::MediaStats>),
    /// A leg's final statistics, when it is torn down (CallEvents.Statistics).
    Statistics(Box<super::MediaStats>),
    /// A prompt is wholly decoded and cached (CallEvents.PlaybackReady).
    PlaybackReady {
        playback: Arc<str>,
        duration_ms: u64,
    },
    /// A player's first frame went to the leg (CallEvents.PlaybackStarted);
    /// `duration_ms` 0 when it plays until stopped.
    PlaybackStarted {
        playback: Arc<str>,
        duration_ms: u64,
    },
    /// A player ended on its own, or could not play (`error`)
    /// (CallEvents.PlaybackFinished). Not raised by StopPlayback.
    PlaybackFinished {
        playback: Arc<str>,
        error: Option<String>,
    },
    /// A recording's file was created (CallEvents.RecordStarted).
    RecordStarted {
        recording: Arc<str>,
        path: String,
        url: String,
    },
    /// A recording's file is finalized (CallEvents.RecordStopped).
    RecordStopped {
        recording: Arc<str>,
        path: String,
        url: String,
        duration_ms: u64,
        bytes: u64,
    },
    /// A finished recording is in object storage at `url`.
    RecordUploaded {
        recording: Arc<str>,
        path: String,
        url: String,
    },
    /// A recording went wrong (CallEvents.RecordError); the call goes on.
    RecordError {
        recording: Arc<str>,
        error: String,
    },
    /// A DTMF key press the leg received, while tone handling is on
    /// (CallEvents.ToneReceived).
    ToneReceived {
        tone: char,
        source: ToneSource,
        duration_ms: u32,
    },
    /// A voicemail beep was heard (CallEvents.BeepDetectionComplete):
    /// its onset from when detection was enabled, its frequency, and how
    /// long it had lasted at the decision.
    BeepDetectionComplete {
        frequency_hz: f64,
        duration_ms: u32,
        offset_ms: u64,
    },
    /// Beep detection ended without a beep (CallEvents.BeepDetectionError).
    BeepDetectionError {
        error: String,
    },
    /// A call-progress tone (CallEvents.ToneDetected), once per call.
    ToneDetected {
        tone: &'static str,
        country: &'static str,
        offset_ms: u64,
    },
    /// The party started or stopped speaking (CallEvents.MicStatusChange).
    MicStatusChange {
        active: bool,
    },
    /// legato's own: the same, with when the speech started or ended.
    VoiceActivity {
        active: bool,
        offset_ms: u64,
    },
    /// Answering-machine detection started.
    AudioIdentificationStarted,
    /// Answering-machine detection decided.
    AudioIdentificationResult {
        result: &'static str,
        reason: &'static str,
        decision_ms: u64,
    },
    /// Answering-machine detection is over.
    AudioIdentificationStopped,
    /// The leg's RTP source (and destination) changed (RTP latching).
    MediaSourceChanged {
        old: Option<SocketAddr>,
        new: SocketAddr,
        ssrc: u32,
        reason: SourceChange,
    },
}

/// How a key press arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ToneSource {
    Rfc4733,
    InBand,
    /// InjectDigits (SIP INFO the controller received).
    SipInfo,
}

/// Where state machines put their events.
pub(crate) trait EventSink {
    /// Records an event of `session` (and `leg`, if any).
    fn emit(&mut self, session: &Arc<str>, leg: Option<&Arc<str>>, kind: EventKind);
}

impl EventSink for Vec<(Option<Arc<str>>, EventKind)> {
    fn emit(&mut self, _session: &Arc<str>, leg: Option<&Arc<str>>, kind: EventKind) {
        self.push((leg.cloned(), kind));
    }
}
