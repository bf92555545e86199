//! A conference: a mix-minus bridge on its session's shard. Members join
//! by routing (SendMedia leg → conference makes the leg talk, conference →
//! leg makes it listen); each listener hears every talker but itself.
//!
//! The mix runs at the widest rate among the members (8, 16 or 48 kHz), so
//! two wideband members hear each other in wideband even when narrowband
//! members are present. Talkers' frames are resampled up to it on the way
//! in; listeners' send sides resample the mix down to their codec.
//!
//! Joining and leaving never click: a new talker's audio is faded in over
//! one 20 ms frame, a leaving talker's faded out over one frame before its
//! slot is released, and a new listener hears the mix faded in.
//!
//! A conference may also play one prompt or tone (a [`Player`]) that every
//! listener hears over the mix, resampled to the mix's rate.

use std::sync::Arc;

use legato_dsp::mix::{Gain, Mixer};
use legato_dsp::resample::Resampler;
use legato_dsp::time::ClockRate;

use super::player::{Player, Step};
use super::{FRAME_MS, Frame, MAX_FRAME, Recording, frame_len};

/// Members of one conference at most (a bound on RPC-driven growth).
pub(crate) const MAX_MEMBERS: usize = 64;

/// Where a member's gain stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fade {
    /// Fading in during the next frame.
    In,
    On,
    /// Fading out during the next frame, then gone.
    Out,
}

/// A leg in the conference.
#[derive(Debug)]
struct Member {
    leg: u32,
    talks: bool,
    listens: bool,
    gain: Gain,
    talk_fade: Fade,
    listen_fade: Fade,
    /// Whether the member's audio was mixed last frame: audio that comes
    /// back after a gap (its jitter buffer ran dry) is faded in too.
    was_heard: bool,
    /// Resampler of the leg's frames up to the conference rate.
    up: Option<(ClockRate, Resampler)>,
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Conference {
    pub(crate) id: Arc<str>,
    pub(crate) session: Arc<str>,
    rate: ClockRate,
    /// The rate CreateConference fixed, if any.
    fixed_rate: Option<ClockRate>,
    members: Vec<Member>,
    mixer: Mixer,
    /// A talker's frame decoded from G.711 codes before resampling.
    scratch: Box<[i16; MAX_FRAME]>,
    /// What every listener hears over the mix, with its resampler to the
    /// mix's rate.
    player: Option<Box<Player>>,
    player_up: Option<(ClockRate, Resampler)>,
    /// The player's frame this tick, at the mix's rate, when it played
    /// one (for recordings of the conference).
    played: Box<[i16; MAX_FRAME]>,
    player_heard: bool,
    /// Recordings of the whole conference (StartRecording with
    /// conference_id).
    pub(crate) recordings: Vec<Recording>,
}

/// What one tick of a conference's player did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PlayerTick {
    /// Nothing to report.
    Quiet,
    /// Its first frame went to the listeners (the duration, 0 while not
    /// known).
    Started(u64),
    /// Its rate became known: reconfigure before the next tick.
    Replan,
    /// It ended (with an error, perhaps): it is gone.
    Ended(Option<String>),
}

impl Conference {
    /// An empty conference mixing at `fixed_rate`, or (`None`) at the
    /// widest member's rate.
    pub(crate) fn new(id: Arc<str>, session: Arc<str>, fixed_rate: Option<ClockRate>) -> Self {
        let rate = fixed_rate.unwrap_or(ClockRate::HZ_8000);
        Self {
            id,
            session,
            rate,
            fixed_rate,
            members: Vec::new(),
            mixer: Mixer::new(0, frame_len(rate)),
            scratch: Box::new([0; MAX_FRAME]),
            player: None,
            player_up: None,
            played: Box::new([0; MAX_FRAME]),
            player_heard: false,
            recordings: Vec::new(),
        }
    }

    /// Copies this tick's whole mix (every talker, plus the player) into
    /// each recording's ring. No allocation (the frame is on the stack).
    pub(crate) fn record(&mut self, tick: u64) {
        let heard = std::mem::take(&mut self.player_heard);
        if self.recordings.is_empty() {
            return;
        }
        let n = frame_len(self.rate);
        let mut mix = [0i16; MAX_FRAME];
        if self.mixer.members() == 0 || self.mixer.write_total(&mut mix[..n]).is_err() {
            mix[..n].fill(0);
        }
        if heard {
            for (m, &p) in mix[..n].iter_mut().zip(&self.played[..n]) {
                *m = m.saturating_add(p);
            }
        }
        for recording in &mut self.recordings {
            let _ = recording
                .tap
                .push(tick, self.rate.hz(), Some(&mix[..n]), None);
        }
    }

    /// Plays `player` to every listener, replacing the one playing (which
    /// ends without an event); `None` stops it.
    pub(crate) fn set_player(&mut self, player: Option<Player>) -> Option<Arc<str>> {
        let old = self.player.take().map(|p| p.id.clone());
        self.player = player.map(Box::new);
        old
    }

    /// The playback every listener hears, if any.
    pub(crate) fn playback(&self) -> Option<&Arc<str>> {
        self.player.as_ref().map(|p| &p.id)
    }

    /// One tick of the conference's player after [`Conference::mix`]: its
    /// frame is added to every listener's output. `ready` is called when a
    /// prompt is wholly decoded.
    pub(crate) fn tick_player(&mut self, mut ready: impl FnMut(&Arc<str>, u64)) -> PlayerTick {
        let Some(player) = self.player.as_mut() else {
            return PlayerTick::Quiet;
        };
        let step = player.tick();
        if let Some(duration_ms) = player.take_ready() {
            ready(&player.id, duration_ms);
        }
        match step {
            Step::Wait => return PlayerTick::Quiet,
            Step::Replan => return PlayerTick::Replan,
            Step::Ended(error) => {
                self.player = None;
                return PlayerTick::Ended(error);
            }
            Step::Frame => {}
        }
        let n = frame_len(self.rate);
        let frame = player.frame();
        let over: &[i16] = match &mut self.player_up {
            None if player.rate() == self.rate && frame.len() == n => frame,
            Some((from, up)) if *from == player.rate() => {
                if up.process(frame, &mut self.scratch[..n]).is_err() {
                    return PlayerTick::Quiet;
                }
                &self.scratch[..n]
            }
            _ => return PlayerTick::Quiet,
        };
        for (i, m) in self.members.iter().enumerate() {
            if m.listens
                && let Ok(out) = self.mixer.output_mut(i)
            {
                for (o, &p) in out.iter_mut().zip(over) {
                    *o = o.saturating_add(p);
                }
            }
        }
        self.played[..n].copy_from_slice(over);
        self.player_heard = true;
        if player.take_started() {
            PlayerTick::Started(player.duration_ms())
        } else {
            PlayerTick::Quiet
        }
    }

    /// The rate CreateConference fixed, if any.
    pub(crate) fn fixed_rate(&self) -> Option<ClockRate> {
        self.fixed_rate
    }

    /// The rate of the mix.
    pub(crate) fn rate(&self) -> ClockRate {
        self.rate
    }

    /// The legs that talk or listen.
    pub(crate) fn legs(&self) -> impl Iterator<Item = u32> + '_ {
        self.members.iter().map(|m| m.leg)
    }

    /// The legs that talk (their received audio is mixed).
    pub(crate) fn talkers(&self) -> impl Iterator<Item = u32> + '_ {
        self.members
            .iter()
            .filter(|m| m.talks || m.talk_fade == Fade::Out)
            .map(|m| m.leg)
    }

    /// Number of members.
    pub(crate) fn len(&self) -> usize {
        self.members.len()
    }

    fn member(&mut self, leg: u32) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.leg == leg)
    }

    /// Makes `leg` talk (`talk`) or listen (`!talk`). Returns false when the
    /// conference is full.
    pub(crate) fn join(&mut self, leg: u32, talk: bool) -> bool {
        let member = match self.members.iter().position(|m| m.leg == leg) {
            Some(i) => &mut self.members[i],
            None => {
                if self.members.len() >= MAX_MEMBERS {
                    return false;
                }
                self.members.push(Member {
                    leg,
                    talks: false,
                    listens: false,
                    gain: Gain::UNITY,
                    talk_fade: Fade::On,
                    listen_fade: Fade::On,
                    was_heard: false,
                    up: None,
                });
                self.members.last_mut().expect("just pushed")
            }
        };
        if talk && !member.talks {
            member.talks = true;
            member.talk_fade = Fade::In;
        } else if !talk && !member.listens {
            member.listens = true;
            member.listen_fade = Fade::In;
        }
        true
    }

    /// Stops `leg` talking or listening. A talker fades out over the next
    /// frame. Returns whether it was doing so.
    pub(crate) fn leave(&mut self, leg: u32, talk: bool) -> bool {
        let Some(member) = self.member(leg) else {
            return false;
        };
        if talk {
            let was = member.talks;
            if was {
                member.talks = false;
                member.talk_fade = Fade::Out;
            }
            was
        } else {
            let was = member.listens;
            member.listens = false;
            was
        }
    }

    /// Removes `leg` at once (its leg is gone: nothing left to fade).
    pub(crate) fn remove(&mut self, leg: u32) {
        self.members.retain(|m| m.leg != leg);
    }

    /// Sets a member's gain.
    pub(crate) fn set_gain(&mut self, leg: u32, gain: Gain) -> bool {
        match self.member(leg) {
            Some(m) => {
                m.gain = gain;
                true
            }
            None => false,
        }
    }

    /// Drops the members that neither talk nor listen any more and have
    /// finished fading out, so that [`Conference::legs`] lists only those
    /// the mix still needs (its rate is the widest of theirs).
    pub(crate) fn prune(&mut self) {
        self.members
            .retain(|m| m.talks || m.listens || m.talk_fade == Fade::Out);
    }

    /// Sizes the mixer and resamplers for the current members (after
    /// [`Conference::prune`]), mixing at `rate` (the widest member's).
    /// Control path: may allocate.
    pub(crate) fn configure(
        &mut self,
        rate: ClockRate,
        member_rates: impl Fn(u32) -> Option<ClockRate>,
    ) {
        self.prune();
        self.rate = rate;
        let n = frame_len(rate);
        self.player_up = match self.player.as_ref().map(|p| p.rate()) {
            Some(from) if from != rate => match self.player_up.take() {
                Some((r, up)) if r == from && up.output_len() == n => Some((r, up)),
                _ => Resampler::new(from, rate, FRAME_MS).ok().map(|r| (from, r)),
            },
            _ => None,
        };
        if self.mixer.members() != self.members.len() || self.mixer.frame_len() != n {
            self.mixer = Mixer::new(self.members.len(), n);
        }
        for (i, m) in self.members.iter_mut().enumerate() {
            let _ = self.mixer.set_gain(i, m.gain);
            let from = member_rates(m.leg).unwrap_or(rate);
            m.up = if from == rate {
                None
            } else if m
                .up
                .as_ref()
                .is_some_and(|(r, u)| *r == from && u.output_len() == n)
            {
                m.up.take()
            } else {
                Resampler::new(from, rate, FRAME_MS).ok().map(|r| (from, r))
            };
        }
    }

    /// Mixes one frame: `input(leg)` gives a talker's frame and its rate
    /// when it has audio this tick. Returns whether a member finished
    /// fading out (the caller then reconfigures).
    pub(crate) fn mix<'a>(
        &mut self,
        input: impl Fn(u32) -> Option<(Frame<'a>, ClockRate)>,
    ) -> bool {
        let n = frame_len(self.rate);
        let mut gone = false;
        for (i, m) in self.members.iter_mut().enumerate() {
            if !(m.talks || m.talk_fade == Fade::Out) {
                continue;
            }
            let Some((frame, rate)) = input(m.leg) else {
                m.was_heard = false;
                if m.talk_fade == Fade::Out {
                    m.talk_fade = Fade::On;
                    gone = true;
                }
                continue;
            };
            if !m.was_heard && m.talk_fade == Fade::On {
                m.talk_fade = Fade::In;
            }
            m.was_heard = true;
            let Ok(slot) = self.mixer.input_mut(i) else {
                continue;
            };
            let ok = match &mut m.up {
                None if rate == self.rate && frame.len() == n => {
                    frame.write_pcm(slot);
                    true
                }
                Some((from, up)) if *from == rate => {
                    up.process(frame.pcm(&mut self.scratch[..]), slot).is_ok()
                }
                _ => false,
            };
            if !ok {
                slot.fill(0);
            }
            match m.talk_fade {
                Fade::In => {
                    ramp(slot, true);
                    m.talk_fade = Fade::On;
                }
                Fade::Out => {
                    ramp(slot, false);
                    m.talk_fade = Fade::On;
                    m.was_heard = false;
                    gone = true;
                }
                Fade::On => {}
            }
        }
        self.mixer.mix();
        for (i, m) in self.members.iter_mut().enumerate() {
            if m.listens
                && m.listen_fade == Fade::In
                && let Ok(out) = self.mixer.output_mut(i)
            {
                ramp(out, true);
                m.listen_fade = Fade::On;
            }
        }
        gone
    }

    /// What listener `leg` hears this tick (at [`Conference::rate`]).
    pub(crate) fn output(&self, leg: u32) -> Option<&[i16]> {
        let i = self
            .members
            .iter()
            .position(|m| m.leg == leg && m.listens)?;
        self.mixer.output(i).ok()
    }
}

/// A linear fade over the frame: in (0 → 1) or out (1 → 0).
fn ramp(frame: &mut [i16], fade_in: bool) {
    let n = frame.len().max(1) as i32;
    for (i, s) in frame.iter_mut().enumerate() {
        let k = if fade_in { i as i32 } else { n - 1 - i as i32 };
        *s = (i32::from(*s) * k / n) as i16;
    }
}

/// Largest frame a conference mixes (20 ms at 48 kHz).
const _: () = assert!(MAX_FRAME >= 960);

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(hz: f64, amp: f64, n: usize, phase: usize) -> Vec<i16> {
        (0..n)
            .map(|i| {
                let t = (i + phase) as f64 / 8000.0;
                (amp * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16
            })
            .collect()
    }

    #[test]
    fn mix_minus_and_click_free_join() {
        let mut c = Conference::new("c".into(), "s".into(), None);
        for leg in 0..3 {
            assert!(c.join(leg, true));
            assert!(c.join(leg, false));
        }
        c.configure(ClockRate::HZ_8000, |_| Some(ClockRate::HZ_8000));
        let frames: Vec<Vec<i16>> = (0..3)
            .map(|l| tone(400.0 + 300.0 * l as f64, 8000.0, 160, 0))
            .collect();
        for tick in 0..3 {
            c.mix(|leg| {
                Some((
                    Frame::Pcm(frames[leg as usize].as_slice()),
                    ClockRate::HZ_8000,
                ))
            });
            let out0 = c.output(0).unwrap();
            if tick == 0 {
                // Faded in: starts at silence.
                assert!(out0[0].abs() < 100);
            } else {
                // Leg 0 hears 1 and 2, not itself.
                for (i, &s) in out0.iter().enumerate() {
                    assert_eq!(s, frames[1][i] + frames[2][i]);
                }
            }
        }
        // Leaving fades out, then the slot goes.
        assert!(c.leave(1, true));
        let gone = c.mix(|leg| {
            Some((
                Frame::Pcm(frames[leg as usize].as_slice()),
                ClockRate::HZ_8000,
            ))
        });
        assert!(gone);
        let last = *c.output(0).unwrap().last().unwrap();
        assert!((i32::from(last) - i32::from(frames[2][159])).abs() < 200);
        c.configure(ClockRate::HZ_8000, |_| Some(ClockRate::HZ_8000));
        c.mix(|leg| {
            Some((
                Frame::Pcm(frames[leg as usize].as_slice()),
                ClockRate::HZ_8000,
            ))
        });
        assert_eq!(c.output(0).unwrap(), frames[2].as_slice());
    }
}
