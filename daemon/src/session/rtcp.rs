//! RTCP for one leg (RFC 3550 §6): reception statistics of the remote
//! source, sender counters of our own stream, the reports we send and what
//! we learn from the peer's reports.
//!
//! [`RtcpSession`] is sans-IO like the leg that owns it. The owner feeds it
//! every RTP packet received ([`RtcpSession::on_rtp_received`]) and sent
//! ([`RtcpSession::on_rtp_sent`]) and every RTCP datagram received
//! ([`RtcpSession::handle_rtcp`]); it asks [`RtcpSession::poll_timeout`]
//! when the next report is due and, at or after that time, calls
//! [`RtcpSession::poll_transmit`] with a buffer of at least
//! [`MAX_COMPOUND_LEN`] bytes, which returns the length of a compound
//! packet to send. [`RtcpSession::bye`] writes the last packet at teardown.
//!
//! Time: every method takes the caller's monotonic `now`. Wall-clock time
//! (the NTP timestamps of a sender report and the RTT fallback) is passed
//! in as `wall: SystemTime`; nothing here reads a clock. Arrival times of
//! RTP packets are converted to RTP timestamp units (for the RFC 3550 A.8
//! jitter) from `now` relative to a base instant, by one 64x64-bit
//! multiplication with a precomputed factor: no division per packet.
//!
//! Model: a leg is a two-party session (legato and one peer), so the
//! session has two members and at most one remote source. A new remote
//! SSRC replaces the previous one (its statistics start over). The report
//! interval follows RFC 3550 §6.2/§6.3 and A.7 for that membership:
//! a deterministic interval (the configured minimum, 5 s by default, or
//! the bandwidth-derived one if larger), halved for the first report,
//! multiplied by a factor uniform in [0.5, 1.5] from a seeded generator
//! and divided by e - 3/2. Timer reconsideration and BYE reconsideration
//! (A.7) do not change anything with two fixed members and are left out.
//!
//! RTT: when a report block about our SSRC carries an LSR matching one of
//! our recent sender reports, RTT is the monotonic time since that report
//! minus DLSR, which is RFC 3550 §6.4.1's `A - LSR - DLSR` measured on a
//! clock that cannot step. An LSR we do not remember falls back to the
//! wall-clock formula.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use legato_dsp::stats::report_block::ReportBlocks;
use legato_dsp::stats::{
    NtpTime, ReceiverReport, ReceiverStats, ReportBlock, SenderReport, compound, rtt,
};

/// RTCP parse and build errors (shared with legato-dsp's parsers).
pub(crate) use legato_dsp::stats::RtcpError;

/// Largest compound packet [`RtcpSession`] writes: an SR with one report
/// block (52 bytes), an SDES with a 255-byte CNAME (268) and a BYE (8).
pub(crate) const MAX_COMPOUND_LEN: usize = 52 + SDES_MAX_LEN + BYE_LEN;

/// Report scheduling knobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RtcpConfig {
    /// Minimum deterministic report interval, RFC 3550 §6.2 (5 s). The
    /// first report uses half of it.
    pub(crate) min_interval: Duration,
    /// Session bandwidth in bit/s, if known (e.g. from SDP `b=AS`); RTCP
    /// gets 5 % of it (§6.2). `None`: the interval is the minimum, which is
    /// what any audio session gets anyway (at 64 kbit/s and 100-byte
    /// reports the bandwidth rule gives 0.3 s, far below 5 s).
    pub(crate) session_bandwidth: Option<u32>,
}

impl Default for RtcpConfig {
    fn default() -> Self {
        Self {
            min_interval: Duration::from_secs(5),
            session_bandwidth: None,
        }
    }
}

/// What the peer said about our stream in its last report block about
/// our SSRC.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct RemoteReport {
    /// Fraction of our packets lost in its last interval, 0..=1.
    pub(crate) fraction_lost: f64,
    /// Cumulative packets of ours it lost (negative with duplicates).
    pub(crate) packets_lost: i64,
    /// Its interarrival jitter of our packets, in milliseconds.
    pub(crate) jitter_ms: f64,
    /// Extended highest sequence number of ours it received.
    pub(crate) highest_seq: u32,
    /// When that report arrived.
    pub(crate) at: Instant,
}

/// A snapshot of a leg's RTCP view, for statistics.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct RtcpStats {
    /// RTP packets received (all sources, duplicates included).
    pub(crate) packets_received: u64,
    /// RTP payload bytes received.
    pub(crate) bytes_received: u64,
    /// RTP packets sent.
    pub(crate) packets_sent: u64,
    /// RTP payload bytes sent.
    pub(crate) bytes_sent: u64,
    /// SSRC of the remote source the reception figures below are about.
    pub(crate) remote_ssrc: Option<u32>,
    /// Packets expected from the remote source (RFC 3550 A.3).
    pub(crate) packets_expected: u64,
    /// Cumulative packets lost from the remote source (negative with
    /// duplicates).
    pub(crate) packets_lost: i64,
    /// Fraction lost (0..=1) since our last report; the fraction we last
    /// reported when nothing was expected since.
    pub(crate) fraction_lost: f64,
    /// Interarrival jitter of the remote source (RFC 3550 A.8), in
    /// milliseconds.
    pub(crate) jitter_ms: f64,
    /// Latest round-trip time from the peer's report blocks.
    pub(crate) rtt: Option<Duration>,
    /// The peer's latest report block about our stream.
    pub(crate) remote: Option<RemoteReport>,
    /// SR and RR packets we wrote (BYE packets included).
    pub(crate) reports_sent: u64,
    /// SR and RR packets received from the peer.
    pub(crate) reports_received: u64,
    /// When we last sent a sender report.
    pub(crate) last_sr_sent: Option<Instant>,
    /// When we last sent a receiver report.
    pub(crate) last_rr_sent: Option<Instant>,
    /// When the peer's last sender report arrived.
    pub(crate) last_sr_received: Option<Instant>,
    /// When the peer's last SR or RR arrived.
    pub(crate) last_report_received: Option<Instant>,
    /// Whether the peer sent a BYE.
    pub(crate) bye_received: bool,
}

/// The RTCP state of one leg. See the module docs for the call pattern.
#[derive(Debug)]
pub(crate) struct RtcpSession {
    ssrc: u32,
    config: RtcpConfig,
    rng: fastrand::Rng,
    clock_rate: u32,
    /// `clock_rate * 2^64 / 1e9`: nanoseconds to RTP units by a multiply.
    units_per_ns: u64,
    /// Arrival clock: `arrival_base + units(now - rebased_at)` so that a
    /// clock-rate change does not make the arrival time jump.
    rebased_at: Instant,
    arrival_base: u64,
    /// The SDES packet with our CNAME, built once.
    sdes: Vec<u8>,

    // Reception.
    remote: Option<Remote>,
    packets_received: u64,
    bytes_received: u64,
    last_received_at: Option<Instant>,
    received_since_report: bool,
    /// (expected, received) of the remote source at our last report.
    prior: (u64, u64),
    last_fraction_reported: u8,
    remote_sr: Option<RemoteSr>,

    // Sending.
    packets_sent: u64,
    bytes_sent: u64,
    last_sent: Option<(u32, Instant)>,
    /// Our recent SRs: (NTP middle 32 bits, when sent), for RTT.
    sent_srs: [Option<(u32, Instant)>; SENT_SRS],
    sent_srs_next: usize,

    // Peer reports.
    rtt: Option<Duration>,
    remote_report: Option<RemoteReport>,
    reports_received: u64,
    last_sr_received: Option<Instant>,
    last_report_received: Option<Instant>,
    bye_received: bool,

    // Scheduling.
    next_report: Instant,
    /// The last two report times, newest first (A.7 "senders" timeout).
    report_times: [Option<Instant>; 2],
    avg_rtcp_size: f64,
    reports_sent: u64,
    last_sr_sent: Option<Instant>,
    last_rr_sent: Option<Instant>,
    closed: bool,
}

impl RtcpSession {
    /// The RTCP state of a leg sending as `ssrc` with canonical name
    /// `cname` (truncated to 255 bytes), media clock `clock_rate` Hz, report
    /// times drawn from `seed`, created at `now`. The first report is due
    /// at half a randomised interval.
    pub(crate) fn new(ssrc: u32, cname: &str, clock_rate: u32, seed: u64, now: Instant) -> Self {
        let sdes = sdes_packet(ssrc, cname);
        let clock_rate = clock_rate.max(1);
        let mut session = Self {
            ssrc,
            config: RtcpConfig::default(),
            rng: fastrand::Rng::with_seed(seed),
            clock_rate,
            units_per_ns: units_per_ns(clock_rate),
            rebased_at: now,
            arrival_base: 0,
            // An RR without blocks plus our SDES, with UDP/IP headers (A.7
            // initial avg_rtcp_size).
            avg_rtcp_size: (8 + sdes.len() + UDP_IP_OVERHEAD) as f64,
            sdes,
            remote: None,
            packets_received: 0,
            bytes_received: 0,
            last_received_at: None,
            received_since_report: false,
            prior: (0, 0),
            last_fraction_reported: 0,
            remote_sr: None,
            packets_sent: 0,
            bytes_sent: 0,
            last_sent: None,
            sent_srs: [None; SENT_SRS],
            sent_srs_next: 0,
            rtt: None,
            remote_report: None,
            reports_received: 0,
            last_sr_received: None,
            last_report_received: None,
            bye_received: false,
            next_report: now,
            report_times: [None; 2],
            reports_sent: 0,
            last_sr_sent: None,
            last_rr_sent: None,
            closed: false,
        };
        session.next_report = now + session.interval(true);
        session
    }

    /// Replaces the scheduling knobs; the next report time is redrawn with
    /// them from `now` (as a first report if none was sent yet).
    pub(crate) fn set_config(&mut self, now: Instant, config: RtcpConfig) {
        self.config = config;
        let initial = self.reports_sent == 0;
        self.next_report = now + self.interval(initial);
    }

    /// The media clock changed (new codec) at `now`. Arrival times continue
    /// from their current value at the new rate, so the jitter estimate
    /// does not see a jump. Call it with the arrival time of the first
    /// packet of the new codec, before [`on_rtp_received`](Self::on_rtp_received)
    /// for it: a change at any other time counts the packets in between at
    /// the wrong rate, one jitter spike (about 1 ms for a 25 ms error at
    /// 8 to 48 kHz).
    pub(crate) fn set_clock_rate(&mut self, now: Instant, clock_rate: u32) {
        let clock_rate = clock_rate.max(1);
        if clock_rate == self.clock_rate {
            return;
        }
        self.arrival_base = self.arrival_units(now);
        self.rebased_at = now;
        if let Some((ts, at)) = self.last_sent {
            // Re-anchor the SR extrapolation at the old rate too.
            self.last_sent = Some((ts.wrapping_add(self.units_since(at, now) as u32), now));
        }
        self.clock_rate = clock_rate;
        self.units_per_ns = units_per_ns(clock_rate);
    }

    /// An RTP packet from `ssrc` arrived at `now` (ideally its receive
    /// time, not the loop's). Runs per packet: no allocation, no division;
    /// about 10 ns in a release build (half of it the arrival-time
    /// conversion, see the `rtcp_receive_cost` test).
    #[inline]
    pub(crate) fn on_rtp_received(
        &mut self,
        now: Instant,
        ssrc: u32,
        seq: u16,
        rtp_timestamp: u32,
        payload_len: usize,
    ) {
        self.packets_received += 1;
        self.bytes_received += payload_len as u64;
        self.last_received_at = Some(now);
        self.received_since_report = true;
        let arrival = self.arrival_units(now);
        let remote = match &mut self.remote {
            Some(r) if r.ssrc == ssrc => r,
            slot => {
                // A new source: its statistics start over (RFC 3550 §8.2
                // collisions and restarts look the same to a relay).
                self.prior = (0, 0);
                self.last_fraction_reported = 0;
                slot.insert(Remote {
                    ssrc,
                    stats: ReceiverStats::new(ssrc),
                })
            }
        };
        remote.stats.handle_packet(arrival, seq, rtp_timestamp);
    }

    /// We sent an RTP packet with timestamp `rtp_timestamp` and
    /// `payload_len` payload bytes at `now`.
    #[inline]
    pub(crate) fn on_rtp_sent(&mut self, now: Instant, rtp_timestamp: u32, payload_len: usize) {
        self.packets_sent += 1;
        self.bytes_sent += payload_len as u64;
        self.last_sent = Some((rtp_timestamp, now));
    }

    /// Handles a received RTCP datagram (one compound packet) that arrived
    /// at `now`, wall-clock `wall`. The whole datagram is checked before
    /// anything is applied, so a malformed one changes nothing. SR, RR and
    /// BYE are used; SDES, APP and unknown types are skipped.
    pub(crate) fn handle_rtcp(
        &mut self,
        now: Instant,
        wall: SystemTime,
        datagram: &[u8],
    ) -> Result<(), RtcpError> {
        if datagram.is_empty() {
            return Err(RtcpError::Truncated);
        }
        for item in compound(datagram) {
            let (pt, pkt) = item?;
            match pt {
                SenderReport::PT => {
                    SenderReport::parse(pkt)?;
                }
                ReceiverReport::PT => {
                    ReceiverReport::parse(pkt)?;
                }
                PT_BYE => {
                    bye_sources(pkt)?;
                }
                _ => {}
            }
        }
        self.avg_rtcp_size = smoothed(self.avg_rtcp_size, datagram.len());
        for item in compound(datagram) {
            // Checked above; a second error cannot happen, but is not
            // unwrapped either.
            let (pt, pkt) = item?;
            match pt {
                SenderReport::PT => {
                    let sr = SenderReport::parse(pkt)?;
                    if sr.ssrc == self.ssrc {
                        continue;
                    }
                    self.remote_sr = Some(RemoteSr {
                        ssrc: sr.ssrc,
                        middle: sr.ntp.middle32(),
                        at: now,
                    });
                    self.last_sr_received = Some(now);
                    self.note_report(now, wall, sr.blocks.as_slice());
                }
                ReceiverReport::PT => {
                    let rr = ReceiverReport::parse(pkt)?;
                    if rr.ssrc == self.ssrc {
                        continue;
                    }
                    self.note_report(now, wall, rr.blocks.as_slice());
                }
                PT_BYE => {
                    let (count, body) = bye_sources(pkt)?;
                    if body
                        .chunks_exact(4)
                        .take(count)
                        .any(|s| s != self.ssrc.to_be_bytes())
                    {
                        self.bye_received = true;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// When the next report is due; `None` after [`bye`](Self::bye).
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        (!self.closed).then_some(self.next_report)
    }

    /// When a report is due at `now`, writes a compound packet (SR or RR,
    /// then SDES CNAME) into `out` and returns its length, and schedules
    /// the next one. `None` when none is due, after [`bye`](Self::bye), or
    /// when `out` is shorter than [`MAX_COMPOUND_LEN`] (then that report is
    /// skipped, not retried in a loop).
    pub(crate) fn poll_transmit(
        &mut self,
        now: Instant,
        wall: SystemTime,
        out: &mut [u8],
    ) -> Option<usize> {
        if self.closed || now < self.next_report {
            return None;
        }
        let written = self.write_compound(now, wall, out, false);
        self.next_report = now + self.interval(false);
        written.ok()
    }

    /// Writes the last compound packet (SR or RR, SDES CNAME, BYE) into
    /// `out` and stops reporting. `None` if already closed or `out` is too
    /// small (the session is closed either way).
    pub(crate) fn bye(&mut self, now: Instant, wall: SystemTime, out: &mut [u8]) -> Option<usize> {
        if self.closed {
            return None;
        }
        let written = self.write_compound(now, wall, out, true);
        self.closed = true;
        written.ok()
    }

    /// A snapshot of the statistics at `now`. Every figure is as of the
    /// last input (`now` is taken for the sans-IO shape; no figure ages
    /// yet).
    pub(crate) fn stats(&self, _now: Instant) -> RtcpStats {
        let (remote_ssrc, expected, lost, jitter, fraction) = match &self.remote {
            Some(r) => {
                let expected = r.stats.expected();
                let received = r.stats.received();
                let expected_interval = expected.saturating_sub(self.prior.0);
                let received_interval = received.saturating_sub(self.prior.1);
                let fraction = if expected_interval == 0 {
                    f64::from(self.last_fraction_reported) / 256.0
                } else {
                    (expected_interval.saturating_sub(received_interval) as f64
                        / expected_interval as f64)
                        .clamp(0.0, 1.0)
                };
                (
                    Some(r.ssrc),
                    expected,
                    r.stats.cumulative_lost(),
                    self.units_to_ms(r.stats.jitter()),
                    fraction,
                )
            }
            None => (None, 0, 0, 0.0, 0.0),
        };
        RtcpStats {
            packets_received: self.packets_received,
            bytes_received: self.bytes_received,
            packets_sent: self.packets_sent,
            bytes_sent: self.bytes_sent,
            remote_ssrc,
            packets_expected: expected,
            packets_lost: lost,
            fraction_lost: fraction,
            jitter_ms: jitter,
            rtt: self.rtt,
            remote: self.remote_report,
            reports_sent: self.reports_sent,
            reports_received: self.reports_received,
            last_sr_sent: self.last_sr_sent,
            last_rr_sent: self.last_rr_sent,
            last_sr_received: self.last_sr_received,
            last_report_received: self.last_report_received,
            bye_received: self.bye_received,
        }
    }

    /// Takes in the report blocks of one SR/RR from the peer.
    fn note_report(&mut self, now: Instant, wall: SystemTime, blocks: &[ReportBlock]) {
        self.reports_received += 1;
        self.last_report_received = Some(now);
        let Some(b) = blocks.iter().find(|b| b.ssrc == self.ssrc) else {
            return;
        };
        self.remote_report = Some(RemoteReport {
            fraction_lost: f64::from(b.fraction_lost) / 256.0,
            packets_lost: i64::from(b.cumulative_lost),
            jitter_ms: self.units_to_ms(b.jitter),
            highest_seq: b.highest_seq,
            at: now,
        });
        if b.lsr == 0 {
            return;
        }
        let ours = self.sent_srs.iter().flatten().find(|(m, _)| *m == b.lsr);
        let measured = match ours {
            Some(&(_, sent)) => now
                .checked_duration_since(sent)
                .and_then(|d| d.checked_sub(from_q16(b.dlsr))),
            None => rtt(ntp(wall), b.lsr, b.dlsr),
        };
        if measured.is_some() {
            self.rtt = measured;
        }
    }

    /// Builds SR/RR (+ SDES, + BYE) into `out` and updates the report
    /// state. Nothing changes if `out` is too small.
    fn write_compound(
        &mut self,
        now: Instant,
        wall: SystemTime,
        out: &mut [u8],
        bye: bool,
    ) -> Result<usize, RtcpError> {
        if out.len() < MAX_COMPOUND_LEN {
            return Err(RtcpError::OutputTooSmall);
        }
        let ntp_now = ntp(wall);
        let mut blocks = ReportBlocks::new();
        if self.received_since_report
            && let Some(r) = &mut self.remote
        {
            let mut block = r.stats.report_block(ntp_now);
            (block.lsr, block.dlsr) = match self.remote_sr {
                Some(sr) if sr.ssrc == r.ssrc => {
                    (sr.middle, to_q16(now.saturating_duration_since(sr.at)))
                }
                _ => (0, 0),
            };
            self.prior = (r.stats.expected(), r.stats.received());
            self.last_fraction_reported = block.fraction_lost;
            blocks.push(block)?;
        }
        let we_sent = self.is_recent(self.last_sent.map(|(_, at)| at));
        let mut len = match self.last_sent {
            Some((ts, at)) if we_sent => {
                let sr = SenderReport {
                    ssrc: self.ssrc,
                    ntp: ntp_now,
                    rtp_timestamp: ts.wrapping_add(self.units_since(at, now) as u32),
                    // 32-bit counters on the wire wrap (§6.4.1).
                    packet_count: self.packets_sent as u32,
                    octet_count: self.bytes_sent as u32,
                    blocks,
                };
                let n = sr.write(out)?;
                self.sent_srs[self.sent_srs_next] = Some((ntp_now.middle32(), now));
                self.sent_srs_next = (self.sent_srs_next + 1) % SENT_SRS;
                self.last_sr_sent = Some(now);
                n
            }
            _ => {
                let n = ReceiverReport {
                    ssrc: self.ssrc,
                    blocks,
                }
                .write(out)?;
                self.last_rr_sent = Some(now);
                n
            }
        };
        out[len..len + self.sdes.len()].copy_from_slice(&self.sdes);
        len += self.sdes.len();
        if bye {
            out[len] = 0x81;
            out[len + 1] = PT_BYE;
            out[len + 2..len + 4].copy_from_slice(&1u16.to_be_bytes());
            out[len + 4..len + 8].copy_from_slice(&self.ssrc.to_be_bytes());
            len += BYE_LEN;
        }
        self.received_since_report = false;
        self.reports_sent += 1;
        self.report_times = [Some(now), self.report_times[0]];
        self.avg_rtcp_size = smoothed(self.avg_rtcp_size, len);
        Ok(len)
    }

    /// A randomised report interval (RFC 3550 A.7 `rtcp_interval` for two
    /// members).
    fn interval(&mut self, initial: bool) -> Duration {
        let we_sent = self.is_recent(self.last_sent.map(|(_, at)| at));
        let senders = u32::from(we_sent) + u32::from(self.is_recent(self.last_received_at));
        let t = deterministic_interval(
            self.config,
            MEMBERS,
            senders,
            we_sent,
            self.avg_rtcp_size,
            initial,
        );
        let factor = self.rng.f64() + 0.5;
        Duration::from_secs_f64(t * factor / COMPENSATION)
    }

    /// Whether `t` falls after the report before last: RFC 3550 §6.3.8 and
    /// A.7 count a participant as a sender for two report intervals.
    fn is_recent(&self, t: Option<Instant>) -> bool {
        match (t, self.report_times[1]) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(t), Some(older)) => t > older,
        }
    }

    /// The arrival clock at `now`, in RTP units.
    #[inline]
    fn arrival_units(&self, now: Instant) -> u64 {
        self.arrival_base
            .wrapping_add(self.units_since(self.rebased_at, now))
    }

    /// RTP units from `since` to `now` (0 if `now` is earlier).
    #[inline]
    fn units_since(&self, since: Instant, now: Instant) -> u64 {
        // Truncating to u64 wraps after 584 years; the product fits u128.
        let ns = now.saturating_duration_since(since).as_nanos() as u64;
        ((u128::from(ns) * u128::from(self.units_per_ns)) >> 64) as u64
    }

    fn units_to_ms(&self, units: u32) -> f64 {
        f64::from(units) * 1000.0 / f64::from(self.clock_rate)
    }
}

/// The remote source and its reception statistics.
#[derive(Clone, Debug)]
struct Remote {
    ssrc: u32,
    stats: ReceiverStats,
}

/// The peer's last sender report: its NTP time's middle 32 bits and when
/// it arrived, for the LSR/DLSR of our next report block.
#[derive(Clone, Copy, Debug)]
struct RemoteSr {
    ssrc: u32,
    middle: u32,
    at: Instant,
}

/// RFC 3550 A.7 deterministic interval in seconds, before randomisation.
fn deterministic_interval(
    config: RtcpConfig,
    members: u32,
    senders: u32,
    we_sent: bool,
    avg_rtcp_size: f64,
    initial: bool,
) -> f64 {
    let mut t_min = config.min_interval.as_secs_f64();
    if initial {
        t_min /= 2.0;
    }
    let Some(bandwidth) = config.session_bandwidth.filter(|&b| b > 0) else {
        return t_min;
    };
    // RTCP gets 5 % of the session bandwidth, in bytes per second.
    let rtcp_bw = f64::from(bandwidth) / 8.0 * RTCP_BANDWIDTH_FRACTION;
    let (mut n, mut bw) = (f64::from(members), rtcp_bw);
    if senders > 0 && f64::from(senders) <= f64::from(members) * SENDER_BANDWIDTH_FRACTION {
        if we_sent {
            bw *= SENDER_BANDWIDTH_FRACTION;
            n = f64::from(senders);
        } else {
            bw *= 1.0 - SENDER_BANDWIDTH_FRACTION;
            n -= f64::from(senders);
        }
    }
    (avg_rtcp_size * n / bw).max(t_min)
}

/// The SDES packet (RFC 3550 §6.5) with one chunk: our SSRC and CNAME,
/// the item list ended by a null octet and padded to 32 bits.
fn sdes_packet(ssrc: u32, cname: &str) -> Vec<u8> {
    let mut end = cname.len().min(255);
    while !cname.is_char_boundary(end) {
        end -= 1;
    }
    let cname = &cname.as_bytes()[..end];
    // Header, SSRC, type + length + text, then at least one null octet.
    let len = (4 + 4 + 2 + cname.len() + 1).next_multiple_of(4);
    let mut p = Vec::with_capacity(len);
    p.push(0x81);
    p.push(PT_SDES);
    p.extend_from_slice(&((len / 4 - 1) as u16).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.push(SDES_CNAME);
    p.push(cname.len() as u8);
    p.extend_from_slice(cname);
    p.resize(len, 0);
    p
}

/// The source count and the SSRC list of a BYE packet.
fn bye_sources(pkt: &[u8]) -> Result<(usize, &[u8]), RtcpError> {
    let body = pkt.get(4..).ok_or(RtcpError::Truncated)?;
    let count = usize::from(pkt[0] & 0x1F);
    if body.len() < count * 4 {
        return Err(RtcpError::Malformed);
    }
    Ok((count, body))
}

/// `clock_rate * 2^64 / 1e9`, the RTP units per nanosecond in 0.64 fixed
/// point (exact to 1 part in 10^14 for audio rates).
fn units_per_ns(clock_rate: u32) -> u64 {
    ((u128::from(clock_rate) << 64) / 1_000_000_000) as u64
}

fn ntp(wall: SystemTime) -> NtpTime {
    NtpTime::from_unix(wall.duration_since(UNIX_EPOCH).unwrap_or_default())
}

/// A duration in 1/65536 s, saturating (DLSR).
fn to_q16(d: Duration) -> u32 {
    let q = (d.as_nanos() << 16) / 1_000_000_000;
    u32::try_from(q).unwrap_or(u32::MAX)
}

/// A duration from 1/65536 s.
fn from_q16(v: u32) -> Duration {
    Duration::from_nanos((u64::from(v) * 1_000_000_000) >> 16)
}

/// A.7 running average of compound sizes, UDP/IP headers included.
fn smoothed(avg: f64, len: usize) -> f64 {
    (len + UDP_IP_OVERHEAD) as f64 / 16.0 + avg * 15.0 / 16.0
}

/// Members of a leg's RTP session: legato and the peer.
const MEMBERS: u32 = 2;
/// e - 3/2: compensates the timer reconsideration bias (RFC 3550 A.7).
const COMPENSATION: f64 = core::f64::consts::E - 1.5;
/// Share of the session bandwidth for RTCP (§6.2).
const RTCP_BANDWIDTH_FRACTION: f64 = 0.05;
/// Share of the RTCP bandwidth for senders when they are few (§6.2).
const SENDER_BANDWIDTH_FRACTION: f64 = 0.25;
/// IPv4 + UDP header bytes counted in the average RTCP size (§6.2).
const UDP_IP_OVERHEAD: usize = 28;
/// Our SRs remembered for matching LSR in the peer's blocks.
const SENT_SRS: usize = 4;
const PT_SDES: u8 = 202;
const PT_BYE: u8 = 203;
const SDES_CNAME: u8 = 1;
/// SDES with one chunk and a 255-byte CNAME: 4 + 4 + 2 + 255 + 1, padded.
const SDES_MAX_LEN: usize = 268;
const BYE_LEN: usize = 8;

#[cfg(test)]
mod tests;
