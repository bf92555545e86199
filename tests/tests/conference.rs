//! Conferences on the PCM path against the real legatod: mix-minus with
//! PCMU, PCMA, G.722 and Opus members, click-free join and leave (of a
//! G.711 talker, and of wideband talkers that change the mix's rate),
//! listen-only members, talker gain, DeleteConference, and the routing
//! errors conferences add.
//!
//! Every peer sends a steady tone of its own as paced 20 ms packets of its
//! codec over 127.0.0.1; what each member receives is decoded at its
//! codec's rate (8, 16 or 48 kHz) and measured per tone with a
//! Hann-windowed DFT bin over windows of at least 0.5 s, taken after a
//! settling time (jitter buffer filling, fades). A sine of peak A reads
//! 20·log10(A) dB, so the 4000-peak tones used below read 72 dB. All
//! tones lie below 3.4 kHz, so narrowband members hear the wideband ones.
//! The measured figures are printed with `--nocapture`.

use std::time::{Duration, Instant};

use legato_client::{Client, Code, MediaEndpoint, proto};
use legato_tests::{
    Codec, G711, Io, Options, Peer, Received, ToneStream, connected_leg_codec, daemon_or_skip,
    decode_window, local_rtp, max_step_window, paced, per_backend, spawn_collector, tone_level_db,
    tone_level_db_at,
};

/// 20 ms, the packet period of every peer.
const PTIME: Duration = Duration::from_millis(20);
/// Peak amplitude of the members' tones (72 dB).
const AMPLITUDE: f64 = 4000.0;

/// A peer with its connected leg, its codec and the tone it sends.
struct Member {
    peer: Peer,
    leg: proto::Leg,
    codec: Codec,
    hz: f64,
}

impl Member {
    async fn new(client: &Client, session: &str, codec: impl Into<Codec>, hz: f64) -> Self {
        let codec = codec.into();
        let peer = Peer::new().unwrap();
        let leg = connected_leg_codec(client, session, &peer, codec)
            .await
            .unwrap();
        assert_eq!(
            leg.codec.as_ref().map(|c| c.payload_type),
            Some(u32::from(codec.pt())),
            "{codec:?} negotiated"
        );
        Self {
            peer,
            leg,
            codec,
            hz,
        }
    }

    fn id(&self) -> &str {
        &self.leg.leg_id
    }

    fn stream(&self) -> ToneStream {
        ToneStream::new(
            &self.peer,
            local_rtp(&self.leg),
            self.codec,
            self.hz,
            AMPLITUDE,
        )
        .unwrap()
    }
}

fn conf(id: &str) -> MediaEndpoint {
    MediaEndpoint::Conference(id.to_owned())
}

/// Makes `m` talk in conference `c`.
async fn talk(client: &Client, m: &Member, c: &str) {
    client.send_media(m.id(), conf(c)).await.unwrap();
}

/// Makes `m` listen to conference `c`.
async fn listen(client: &Client, m: &Member, c: &str) {
    client.send_media(conf(c), m.id()).await.unwrap();
}

/// Sends every stream's packets in step, paced from `start`, for `count`
/// periods, in a thread.
fn spawn_senders(
    mut streams: Vec<ToneStream>,
    start: Instant,
    count: usize,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        paced(start, count, PTIME, |_| {
            for s in &mut streams {
                s.send().unwrap();
            }
        });
    })
}

fn db(x: f64) -> String {
    format!("{x:.1}")
}

/// Five members on four codecs (PCMU, PCMA, G.722, Opus, PCMU), each
/// talking and listening: everyone hears the four others at their level
/// and not itself. The mix runs at 48 kHz (the Opus member's rate); each
/// member receives its own codec, with its own RTP clock.
///
/// No tone lies within 50 Hz of a harmonic or of a second- or third-order
/// intermodulation product of the other four (such as 2·f₁ − f₂): a lossy
/// codec coding the others' tones puts energy there, which is not the
/// member hearing itself. With 400/600/850/1100/1400 Hz, 1100 = 2·850 − 600
/// and the Opus member read 21-38 dB at "its own" frequency depending on
/// the members' relative phase, from opus-rs's coding alone (the mix it
/// encoded carried nothing at 1100 Hz: −240 dB, checked offline).
async fn mix_minus(io: Io) {
    const MEMBERS: [(Codec, f64); 5] = [
        (Codec::Pcmu, 450.0),
        (Codec::Pcma, 670.0),
        (Codec::G722, 840.0),
        (Codec::Opus, 1170.0),
        (Codec::Pcmu, 1450.0),
    ];
    /// A frequency nobody sends: the noise floor of one bin.
    const QUIET_HZ: f64 = 1700.0;
    let daemon = daemon_or_skip!(Options::new(io));
    let client = daemon.client().await.unwrap();
    let session = client.create_session(None).await.unwrap();
    let c = client.create_conference(&session).await.unwrap();
    let mut members = Vec::new();
    for (codec, hz) in MEMBERS {
        let m = Member::new(&client, &session, codec, hz).await;
        talk(&client, &m, &c).await;
        listen(&client, &m, &c).await;
        members.push(m);
    }
    for m in &members {
        let leg = client.get_leg(m.id()).await.unwrap();
        assert!(leg.transcoding, "a conference listener is on the PCM path");
        assert_eq!(leg.media_source_conference_id, c);
        assert!(leg.media_source_leg_id.is_empty());
    }
    let start = Instant::now() + Duration::from_millis(50);
    let until = start + Duration::from_millis(4000);
    let collectors: Vec<_> = members
        .iter()
        .map(|m| spawn_collector(&m.peer, until).unwrap())
        .collect();
    let sender = spawn_senders(members.iter().map(Member::stream).collect(), start, 200);
    sender.join().unwrap();
    let received: Vec<Vec<Received>> = collectors.into_iter().map(|h| h.join().unwrap()).collect();
    // Settled after 1.5 s; 2 s of audio (0.5 Hz bins at any rate).
    let (from, to) = (
        start + Duration::from_millis(1500),
        start + Duration::from_millis(3500),
    );
    for (i, (m, got)) in members.iter().zip(&received).enumerate() {
        let codec = m.codec;
        assert!(
            got.iter().all(|p| p.rtp.pt == codec.pt()),
            "member {i} gets its own codec, {codec:?}"
        );
        // Its RTP clock: consecutive packets 20 ms apart in its units.
        let steps = got
            .windows(2)
            .filter(|w| w[1].rtp.seq == w[0].rtp.seq.wrapping_add(1))
            .filter(|w| w[1].rtp.ts.wrapping_sub(w[0].rtp.ts) != codec.rtp_units_per_frame())
            .count();
        assert_eq!(steps, 0, "member {i} ({codec:?}): timestamps step by 20 ms");
        if codec == Codec::G722 {
            assert!(
                got.iter().all(|p| p.payload.len() == 160),
                "G.722: 160 bytes per 20 ms"
            );
        }
        let rate = codec.audio_rate();
        let pcm = decode_window(got, codec, from, to);
        assert!(
            pcm.len() >= 3 * rate as usize / 2,
            "member {i} ({codec:?}): {} samples in 2 s",
            pcm.len()
        );
        let own = tone_level_db_at(&pcm, rate, m.hz);
        let noise = tone_level_db_at(&pcm, rate, QUIET_HZ);
        let others: Vec<(f64, f64)> = members
            .iter()
            .filter(|o| o.hz != m.hz)
            .map(|o| (o.hz, tone_level_db_at(&pcm, rate, o.hz)))
            .collect();
        let weakest = others.iter().map(|o| o.1).fold(f64::INFINITY, f64::min);
        eprintln!(
            "{io:?} member {i} ({codec:?}, {} Hz): others {:?} dB, own {} dB ({} below the \
             weakest), noise bin {} dB",
            m.hz,
            others
                .iter()
                .map(|(hz, l)| (*hz, db(*l)))
                .collect::<Vec<_>>(),
            db(own),
            db(weakest - own),
            db(noise),
        );
        let expected = 20.0 * AMPLITUDE.log10();
        for &(hz, level) in &others {
            assert!(
                (level - expected).abs() < 3.0,
                "member {i} ({codec:?}) hears {hz} Hz at {level:.1} dB, expected {expected:.1}"
            );
            assert!(
                level - noise > 40.0,
                "member {i} ({codec:?}): {hz} Hz only {:.1} dB above the noise bin",
                level - noise
            );
        }
        assert!(
            weakest - own >= 40.0,
            "member {i} ({codec:?}) hears itself: own tone {own:.1} dB, weakest other \
             {weakest:.1} dB"
        );
    }
}

/// A listener hears two steady talkers; a third talker joins, then leaves.
///
/// Criterion: a hard (unfaded) start or stop of a tone of peak A adds a
/// step of up to A between two samples, while the steady signal's own
/// largest step is D = Σ Aᵢ·2π·fᵢ/8000 (plus G.711 quantisation). With the
/// linear fades legato applies over one 20 ms frame (160 samples) the
/// joining tone adds at most A₃·(2π·f₃/8000 + 1/160) per sample. So across
/// the join and leave moments the largest step must stay below the steady
/// signal's measured largest step + A₃·(2π·f₃/8000 + 1/160) + 512 (the
/// quantisation step of both laws at the louder level the sum reaches,
/// counted twice as each of the two samples may be off by half of it).
/// The steady tones are low (330 and 470 Hz, peak 3000: not multiples of
/// 50 Hz, so neither a 20 ms shift nor a cut on a frame boundary finds
/// them at the same phase or at a zero crossing) and the joining
/// one lower and louder (200 Hz, peak 8000), so that its own slope (1257)
/// is small beside its amplitude, and it is sent as a cosine, at its peak
/// on every frame boundary: a hard edge there would add a step of 8000,
/// far above the bound.
async fn join_and_leave_without_clicks(io: Io) {
    join_and_leave(io, Codec::Pcma, Codec::Pcmu, 8000.0, 0).await;
}

/// As [`join_and_leave_without_clicks`] with an Opus talker joining and
/// leaving a conference created at 48 kHz (its rate never changes), which
/// must not click for a PCMU listener either. (A conference at the
/// automatic rate goes from 8 to 48 kHz and back instead, and its
/// listeners hear one 20 ms gap at the switch: see CreateConferenceRequest.)
async fn opus_joins_and_leaves_without_clicks(io: Io) {
    join_and_leave(io, Codec::Pcmu, Codec::Opus, 8000.0, 48_000).await;
}

/// A silent Opus member joins and leaves as a talker of a 48 kHz
/// conference: the listener's largest step must stay within the steady
/// signal's own + 512 (the bound above with no joining tone): a resampler
/// starting from empty history, or a frame lost or repeated, would jump by
/// up to the steady peak (6000).
async fn opus_joins_and_leaves_silently(io: Io) {
    join_and_leave(io, Codec::Pcmu, Codec::Opus, 0.0, 48_000).await;
}

/// As [`join_and_leave_without_clicks`] with a G.722 talker joining and
/// leaving a 16 kHz conference.
async fn g722_joins_and_leaves_without_clicks(io: Io) {
    join_and_leave(io, Codec::Pcmu, Codec::G722, 8000.0, 16_000).await;
}

/// A G.711 `listener` hears two steady G.711 talkers while a `joiner`
/// talker joins and leaves; see [`join_and_leave_without_clicks`] for the
/// criterion. The joiner's cosine is at its peak on every frame boundary
/// at any rate (200 Hz makes four whole periods per 20 ms); after a
/// wideband codec's delay and the resampling down to 8 kHz it no longer
/// lands exactly there, but a hard edge anywhere in its cycle still adds
/// a step of the order of its amplitude. A joiner of `joiner_amplitude`
/// 0 sends silence: then only the join's side effects (the mix's rate
/// changing) are measured, against the steady signal's step + 512.
async fn join_and_leave(
    io: Io,
    listener_codec: Codec,
    joiner_codec: Codec,
    joiner_amplitude: f64,
    sample_rate: u32,
) {
    const STEADY: [(f64, f64); 2] = [(330.0, 3000.0), (470.0, 3000.0)];
    const JOINER_HZ: f64 = 200.0;
    let audible = joiner_amplitude > 0.0;
    assert_eq!(
        listener_codec.audio_rate(),
        8000,
        "the criterion is at 8 kHz"
    );
    let daemon = daemon_or_skip!(Options::new(io));
    let client = daemon.client().await.unwrap();
    let session = client.create_session(None).await.unwrap();
    let c = client
        .create_conference_at(&session, sample_rate)
        .await
        .unwrap();
    let listener = Member::new(&client, &session, listener_codec, 0.0).await;
    listen(&client, &listener, &c).await;
    let mut steady = Vec::new();
    for (i, &(hz, _)) in STEADY.iter().enumerate() {
        let law = if i == 0 { G711::Pcmu } else { G711::Pcma };
        let m = Member::new(&client, &session, law, hz).await;
        talk(&client, &m, &c).await;
        steady.push(m);
    }
    let joiner = Member::new(&client, &session, joiner_codec, JOINER_HZ).await;
    let mut streams: Vec<ToneStream> = steady
        .iter()
        .zip(STEADY)
        .map(|(m, (_, amplitude))| {
            let mut s = m.stream();
            s.amplitude = amplitude;
            s
        })
        .collect();
    let mut joining = joiner.stream();
    joining.amplitude = joiner_amplitude;
    // A cosine: at its peak on every 20 ms frame boundary (200 Hz makes
    // four whole periods per frame), where a hard edge would be largest.
    joining.phase = std::f64::consts::FRAC_PI_2;
    streams.push(joining);
    let start = Instant::now() + Duration::from_millis(50);
    let until = start + Duration::from_millis(4500);
    let collector = spawn_collector(&listener.peer, until).unwrap();
    let sender = spawn_senders(streams, start, 225);
    tokio::time::sleep_until((start + Duration::from_millis(1500)).into()).await;
    let join_at = Instant::now();
    talk(&client, &joiner, &c).await;
    let joined = Instant::now();
    tokio::time::sleep_until((start + Duration::from_millis(3000)).into()).await;
    let leave_at = Instant::now();
    client.stop_media(joiner.id(), conf(&c)).await.unwrap();
    let left = Instant::now();
    sender.join().unwrap();
    let got = collector.join().unwrap();
    let law = listener.codec;
    let ms = |t: Instant, ms: i64| {
        if ms >= 0 {
            t + Duration::from_millis(ms as u64)
        } else {
            t - Duration::from_millis((-ms) as u64)
        }
    };
    let (d_steady, gaps_steady) = max_step_window(&got, law, ms(start, 700), ms(start, 1450));
    // The joiner's receive side starts at the join: its jitter buffer
    // fills first, so its fade-in comes up to a few hundred ms later.
    let (d_join, gaps_join) = max_step_window(&got, law, ms(join_at, -40), ms(joined, 500));
    let (d_leave, gaps_leave) = max_step_window(&got, law, ms(leave_at, -40), ms(left, 300));
    let slope = joiner_amplitude * 2.0 * std::f64::consts::PI * JOINER_HZ / 8000.0;
    let bound = d_steady + (slope + joiner_amplitude / 160.0).ceil() as i32 + 512;
    let window = |t: Instant, from_ms: u64, len_ms: u64| {
        decode_window(
            &got,
            law,
            t + Duration::from_millis(from_ms),
            t + Duration::from_millis(from_ms + len_ms),
        )
    };
    // The joiner came in inside the join window and was gone inside the
    // leave window (200 ms windows: 5 Hz bins, 330 Hz is 26 bins away).
    let join_end = tone_level_db(&window(joined, 300, 200), JOINER_HZ);
    let leave_end = tone_level_db(&window(left, 100, 200), JOINER_HZ);
    let before = window(start, 500, 900);
    let during = window(joined, 500, 900);
    let after = window(left, 500, 900);
    let joiner_before = tone_level_db(&before, JOINER_HZ);
    let joiner_during = tone_level_db(&during, JOINER_HZ);
    let joiner_after = tone_level_db(&after, JOINER_HZ);
    let steady_during = tone_level_db(&during, STEADY[0].0);
    // Beyond clicks: how the steady talkers come through the join and the
    // leave, on the whole stream's sample index.
    let all = decode_window(&got, law, got[0].at, until);
    let at = |t: Instant| decode_window(&got, law, got[0].at, t).len();
    let floor = min_rms(&all[at(ms(start, 700))..at(ms(start, 1450))]);
    let dip_join = db_ratio(
        min_rms(&all[at(ms(join_at, -40))..at(ms(joined, 500))]),
        floor,
    );
    let dip_leave = db_ratio(
        min_rms(&all[at(ms(leave_at, -40))..at(ms(left, 300))]),
        floor,
    );
    let freqs = STEADY.map(|(hz, _)| hz);
    let shift_join = shift_ms(&all, at(ms(join_at, -300)), at(ms(joined, 500)), freqs);
    let shift_leave = shift_ms(&all, at(ms(leave_at, -300)), at(ms(left, 500)), freqs);
    eprintln!(
        "{io:?} {joiner_codec:?} joiner, {listener_codec:?} listener: largest step: steady \
         {d_steady}, at join {d_join}, at leave {d_leave}, bound \
         {bound}; sequence gaps {gaps_steady}/{gaps_join}/{gaps_leave}; joiner {} dB before \
         joining, {} dB while in, {} dB after leaving; {} Hz {} dB; lowest 20 ms RMS against \
         the steady one's: {} dB at the join, {} dB at the leave; steady tones shifted by \
         {shift_join:.3} ms at the join, {shift_leave:.3} ms at the leave",
        db(joiner_before),
        db(joiner_during),
        db(joiner_after),
        STEADY[0].0,
        db(steady_during),
        db(dip_join),
        db(dip_leave),
    );
    if audible {
        assert!(
            join_end > 70.0,
            "joiner not in by the end of the join window: {join_end:.1} dB"
        );
        assert!(
            leave_end < 40.0,
            "joiner not gone by the end of the leave window: {leave_end:.1} dB"
        );
        assert!(
            (joiner_during - 20.0 * joiner_amplitude.log10()).abs() < 3.0,
            "the joiner is heard at {joiner_during:.1} dB"
        );
        assert!(
            joiner_during - joiner_after >= 40.0,
            "the joiner is still heard after leaving: {joiner_after:.1} dB"
        );
    }
    // The steady talkers never drop out: no 20 ms of the listener's audio
    // is more than 6 dB below the quietest 20 ms of the steady mix (a
    // frame of silence reads about -50 dB).
    assert!(
        dip_join > -6.0 && dip_leave > -6.0,
        "the steady talkers drop out: lowest 20 ms {dip_join:.1} dB at the join, \
         {dip_leave:.1} dB at the leave"
    );
    assert!(
        d_join <= bound,
        "click at the join: step {d_join} > {bound}"
    );
    assert!(
        d_leave <= bound,
        "click at the leave: step {d_leave} > {bound}"
    );
}

/// The lowest RMS of the 20 ms windows (at 8 kHz, every 2.5 ms) in
/// `pcm`.
fn min_rms(pcm: &[i16]) -> f64 {
    pcm.windows(160)
        .step_by(20)
        .map(|w| (w.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / 160.0).sqrt())
        .fold(f64::INFINITY, f64::min)
}

/// `a` against `b` in dB.
fn db_ratio(a: f64, b: f64) -> f64 {
    20.0 * (a.max(1e-9) / b.max(1e-9)).log10()
}

/// Phase (radians) of the `hz` component of the 200 ms of 8 kHz `pcm`
/// from sample `i0` on, referred to sample 0 of `pcm` (Hann window).
fn tone_phase(pcm: &[i16], i0: usize, hz: f64) -> f64 {
    const LEN: usize = 1600;
    let w = 2.0 * std::f64::consts::PI * hz / 8000.0;
    let (mut re, mut im) = (0.0f64, 0.0f64);
    for (k, &x) in pcm[i0..(i0 + LEN).min(pcm.len())].iter().enumerate() {
        let hann = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * k as f64 / LEN as f64).cos();
        let i = (i0 + k) as f64;
        re += f64::from(x) * hann * (w * i).cos();
        im -= f64::from(x) * hann * (w * i).sin();
    }
    im.atan2(re)
}

/// How much later (ms, within ±40) the steady tones `freqs` of 8 kHz
/// `pcm` run from sample `after` on than from sample `before` on: the
/// delay that best explains both tones' phase changes (330 and 470 Hz
/// only repeat together every 100 ms).
fn shift_ms(pcm: &[i16], before: usize, after: usize, freqs: [f64; 2]) -> f64 {
    let turns = freqs.map(|hz| tone_phase(pcm, before, hz) - tone_phase(pcm, after, hz));
    (-320i32..=320)
        .map(|d| {
            let misfit: f64 = freqs
                .iter()
                .zip(turns)
                .map(|(hz, turn)| {
                    1.0 - (2.0 * std::f64::consts::PI * hz * f64::from(d) / 8000.0 - turn).cos()
                })
                .sum();
            (d, misfit)
        })
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map_or(0.0, |(d, _)| f64::from(d) / 8.0)
}

/// A member that listens but does not talk hears everyone and is heard by
/// nobody, although it sends a tone of its own.
async fn listen_only(io: Io) {
    listen_only_with(io, [Codec::Pcmu, Codec::Pcma, Codec::Pcmu], false).await;
}

/// A G.722 member talking with a PCMU and an Opus talker (a 48 kHz mix)
/// is switched to listen-only mid-call: heard by both talkers before, by
/// neither after, and it still hears them.
async fn switched_to_listen_only(io: Io) {
    listen_only_with(io, [Codec::Pcmu, Codec::Opus, Codec::G722], true).await;
}

/// Talkers `a` and `b` and a listen-only member on `codecs`, sending 500,
/// 700 and 1000 Hz. When `switched`, the third member talks too until
/// 1.2 s, when it stops talking (routed no longer to the conference, still
/// from it).
async fn listen_only_with(io: Io, codecs: [Codec; 3], switched: bool) {
    const TONES: [f64; 3] = [500.0, 700.0, 1000.0];
    let daemon = daemon_or_skip!(Options::new(io));
    let client = daemon.client().await.unwrap();
    let session = client.create_session(None).await.unwrap();
    let c = client.create_conference(&session).await.unwrap();
    let a = Member::new(&client, &session, codecs[0], TONES[0]).await;
    let b = Member::new(&client, &session, codecs[1], TONES[1]).await;
    let quiet = Member::new(&client, &session, codecs[2], TONES[2]).await;
    for m in [&a, &b] {
        talk(&client, m, &c).await;
        listen(&client, m, &c).await;
    }
    if switched {
        talk(&client, &quiet, &c).await;
    }
    listen(&client, &quiet, &c).await;
    let leg = client.get_leg(quiet.id()).await.unwrap();
    assert_eq!(leg.media_source_conference_id, c);
    assert!(leg.transcoding);
    let start = Instant::now() + Duration::from_millis(50);
    let until = start + Duration::from_millis(3500);
    let members = [&a, &b, &quiet];
    let collectors: Vec<_> = members
        .iter()
        .map(|m| spawn_collector(&m.peer, until).unwrap())
        .collect();
    let sender = spawn_senders(members.iter().map(|m| m.stream()).collect(), start, 175);
    let switch_at = start + Duration::from_millis(1200);
    if switched {
        tokio::time::sleep_until(switch_at.into()).await;
        client.stop_media(quiet.id(), conf(&c)).await.unwrap();
        let leg = client.get_leg(quiet.id()).await.unwrap();
        assert_eq!(
            leg.media_source_conference_id, c,
            "still listening after the switch"
        );
    }
    sender.join().unwrap();
    let received: Vec<Vec<Received>> = collectors.into_iter().map(|h| h.join().unwrap()).collect();
    // Levels of the three tones each member hears in `from..to`.
    let levels_in = |from: Instant, to: Instant| -> Vec<[f64; 3]> {
        received
            .iter()
            .zip(members)
            .map(|(got, m)| {
                let rate = m.codec.audio_rate();
                let pcm = decode_window(got, m.codec, from, to);
                let secs = to.duration_since(from).as_secs_f64();
                assert!(
                    pcm.len() as f64 >= 0.7 * secs * f64::from(rate),
                    "{:?}: {} samples in {secs} s",
                    m.codec,
                    pcm.len()
                );
                TONES.map(|hz| tone_level_db_at(&pcm, rate, hz))
            })
            .collect()
    };
    let expected = 20.0 * AMPLITUDE.log10();
    if switched {
        // Settled, and not yet switched (0.6 s: 1.7 Hz bins).
        let levels = levels_in(
            start + Duration::from_millis(600),
            start + Duration::from_millis(1200),
        );
        eprintln!(
            "{io:?} before the switch, levels at 500/700/1000 Hz (dB): talker a ({:?}) {:?}, \
             talker b ({:?}) {:?}, third member ({:?}) {:?}",
            codecs[0],
            levels[0].map(db),
            codecs[1],
            levels[1].map(db),
            codecs[2],
            levels[2].map(db)
        );
        for (who, level) in [("a", levels[0][2]), ("b", levels[1][2])] {
            assert!(
                (level - expected).abs() < 3.0,
                "{who} hears the talking third member at {level:.1} dB"
            );
        }
    }
    // After the switch (its fade and the jitter buffers are over by then).
    let levels = levels_in(
        start + Duration::from_millis(1800),
        start + Duration::from_millis(3300),
    );
    eprintln!(
        "{io:?} levels at 500/700/1000 Hz (dB): talker a ({:?}) {:?}, talker b ({:?}) {:?}, \
         listen-only ({:?}) {:?}",
        codecs[0],
        levels[0].map(db),
        codecs[1],
        levels[1].map(db),
        codecs[2],
        levels[2].map(db)
    );
    // a hears b, b hears a, the listen-only member hears both.
    for (who, level) in [
        ("a hears b", levels[0][1]),
        ("b hears a", levels[1][0]),
        ("listen-only hears a", levels[2][0]),
        ("listen-only hears b", levels[2][1]),
    ] {
        assert!((level - expected).abs() < 3.0, "{who} at {level:.1} dB");
    }
    for (who, heard, quiet) in [
        ("a", levels[0][1], levels[0][2]),
        ("b", levels[1][0], levels[1][2]),
        ("listen-only (itself)", levels[2][0], levels[2][2]),
    ] {
        assert!(
            heard - quiet >= 40.0,
            "{who} hears the listen-only member at {quiet:.1} dB"
        );
    }
}

/// A talker routed with gain_db = -20 is heard 20 dB lower than one at
/// 0 dB; routing it again with -6 changes its level to 6 dB lower.
async fn talker_gain(io: Io) {
    const LOUD_HZ: f64 = 500.0;
    const SOFT_HZ: f64 = 900.0;
    let daemon = daemon_or_skip!(Options::new(io));
    let client = daemon.client().await.unwrap();
    let session = client.create_session(None).await.unwrap();
    let c = client.create_conference(&session).await.unwrap();
    let loud = Member::new(&client, &session, G711::Pcmu, LOUD_HZ).await;
    let soft = Member::new(&client, &session, G711::Pcma, SOFT_HZ).await;
    let listener = Member::new(&client, &session, G711::Pcmu, 0.0).await;
    talk(&client, &loud, &c).await;
    client
        .send_media_with_gain(soft.id(), conf(&c), -20.0)
        .await
        .unwrap();
    listen(&client, &listener, &c).await;
    let start = Instant::now() + Duration::from_millis(50);
    let until = start + Duration::from_millis(4000);
    let collector = spawn_collector(&listener.peer, until).unwrap();
    let sender = spawn_senders(vec![loud.stream(), soft.stream()], start, 200);
    tokio::time::sleep_until((start + Duration::from_millis(2000)).into()).await;
    let changed = Instant::now();
    client
        .send_media_with_gain(soft.id(), conf(&c), -6.0)
        .await
        .unwrap();
    sender.join().unwrap();
    let got = collector.join().unwrap();
    let measure = |from: Instant, len_ms: u64| {
        let pcm = decode_window(
            &got,
            listener.codec,
            from,
            from + Duration::from_millis(len_ms),
        );
        assert!(pcm.len() >= 4000, "{} samples", pcm.len());
        (tone_level_db(&pcm, LOUD_HZ), tone_level_db(&pcm, SOFT_HZ))
    };
    let (loud_20, soft_20) = measure(start + Duration::from_millis(1000), 900);
    let (loud_6, soft_6) = measure(changed + Duration::from_millis(500), 1200);
    eprintln!(
        "{io:?} gain -20 dB: loud {} dB, soft {} dB, difference {}; gain -6 dB: loud {} dB, \
         soft {} dB, difference {}",
        db(loud_20),
        db(soft_20),
        db(soft_20 - loud_20),
        db(loud_6),
        db(soft_6),
        db(soft_6 - loud_6)
    );
    assert!((loud_20 - 20.0 * AMPLITUDE.log10()).abs() < 2.0);
    assert!(
        (soft_20 - loud_20 + 20.0).abs() <= 2.0,
        "-20 dB talker heard {:.1} dB from the 0 dB one",
        soft_20 - loud_20
    );
    assert!(
        (soft_6 - loud_6 + 6.0).abs() <= 2.0,
        "-6 dB talker heard {:.1} dB from the 0 dB one",
        soft_6 - loud_6
    );
}

/// DeleteConference: its listeners stop getting the mix (no packets, or
/// silence), every leg stays CONNECTED with no source; then the errors of
/// routing with conferences.
async fn delete_and_bad_input(io: Io) {
    let daemon = daemon_or_skip!(Options::new(io));
    let client = daemon.client().await.unwrap();
    let session = client.create_session(None).await.unwrap();
    let c = client.create_conference(&session).await.unwrap();
    let a = Member::new(&client, &session, G711::Pcmu, 500.0).await;
    let b = Member::new(&client, &session, G711::Pcma, 700.0).await;
    for m in [&a, &b] {
        talk(&client, m, &c).await;
        listen(&client, m, &c).await;
    }
    let start = Instant::now() + Duration::from_millis(50);
    let until = start + Duration::from_millis(3000);
    let collectors = [
        spawn_collector(&a.peer, until).unwrap(),
        spawn_collector(&b.peer, until).unwrap(),
    ];
    let sender = spawn_senders(vec![a.stream(), b.stream()], start, 150);
    tokio::time::sleep_until((start + Duration::from_millis(1200)).into()).await;
    let deleted = Instant::now();
    client.delete_conference(&c).await.unwrap();
    let after_delete = Instant::now();
    sender.join().unwrap();
    for ((m, hears), h) in [(&a, 700.0), (&b, 500.0)].into_iter().zip(collectors) {
        let got = h.join().unwrap();
        let before = decode_window(&got, m.codec, start + Duration::from_millis(500), deleted);
        let level = tone_level_db(&before, hears);
        // One tick may be under way when the command lands.
        let late: Vec<&Received> = got
            .iter()
            .filter(|p| p.at > after_delete + Duration::from_millis(60))
            .collect();
        let loudest = late
            .iter()
            .flat_map(|p| m.codec.decoder().unwrap().decode(&p.payload).unwrap())
            .map(|x| i32::from(x).abs())
            .max()
            .unwrap_or(0);
        eprintln!(
            "{io:?} {:?} member heard {hears} Hz at {} dB before the delete; {} packets after \
             it, loudest sample {loudest}",
            m.codec,
            db(level),
            late.len()
        );
        assert!((level - 20.0 * AMPLITUDE.log10()).abs() < 3.0);
        assert!(loudest <= 16, "the mix goes on after DeleteConference");
        let leg = client.get_leg(m.id()).await.unwrap();
        assert_eq!(leg.state(), proto::LegState::Connected);
        assert!(leg.media_source_conference_id.is_empty());
        assert!(!leg.transcoding);
    }
    // The deleted conference is gone.
    let err = client.send_media(a.id(), conf(&c)).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err}");
    let err = client.delete_conference(&c).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err}");

    let c = client.create_conference(&session).await.unwrap();
    // A conference cannot feed itself or another conference.
    let err = client.send_media(conf(&c), conf(&c)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    let other = client.create_conference(&session).await.unwrap();
    let err = client.send_media(conf(&c), conf(&other)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    // Unknown conferences: malformed, and well-formed on the leg's shard.
    let unknown = format!("{}{}", "0123456789abcdef", &c[16..]);
    for id in ["no-such-conference", unknown.as_str()] {
        let err = client.send_media(a.id(), conf(id)).await.unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "{id}: {err}");
        let err = client.send_media(conf(id), a.id()).await.unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "{id}: {err}");
        let err = client.delete_conference(id).await.unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "{id}: {err}");
    }
    // CreateConference: an unsupported rate, an unknown or empty session.
    for rate in [1, 12_345, 44_100] {
        let err = client
            .create_conference_at(&session, rate)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "rate {rate}: {err}");
    }
    let err = client
        .create_conference("no-such-session")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err}");
    let err = client.create_conference("").await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    // A conference of another session.
    let session2 = client.create_session(None).await.unwrap();
    let foreign = client.create_conference(&session2).await.unwrap();
    let err = client.send_media(a.id(), conf(&foreign)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    let err = client.send_media(conf(&foreign), a.id()).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    // Gains out of range, or on a route that is not a talker's.
    for gain in [f32::NAN, 100.0, f32::INFINITY, -61.0] {
        let err = client
            .send_media_with_gain(a.id(), conf(&c), gain)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "gain {gain}: {err}");
    }
    let err = client
        .send_media_with_gain(conf(&c), a.id(), -6.0)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    let err = client
        .send_media_with_gain(a.id(), b.id(), -6.0)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    // None of that changed the legs.
    for m in [&a, &b] {
        let leg = client.get_leg(m.id()).await.unwrap();
        assert_eq!(leg.state(), proto::LegState::Connected);
        assert!(leg.media_source_conference_id.is_empty());
    }
}

per_backend!(
    mix_minus,
    join_and_leave_without_clicks,
    opus_joins_and_leaves_without_clicks,
    opus_joins_and_leaves_silently,
    g722_joins_and_leaves_without_clicks,
    listen_only,
    switched_to_listen_only,
    talker_gain,
    delete_and_bad_input
);
