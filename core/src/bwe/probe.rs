//! Bandwidth probing: measuring whether a subscriber's path takes more than
//! it receives now, so that a consumer held on a low simulcast layer can
//! climb back once the path allows.
//!
//! A subscriber that receives less than it could (application-limited)
//! gives the estimator no evidence of more capacity. As libwebrtc does
//! (its `BitrateProber` and `ProbeBitrateEstimator`), the router sends a
//! short cluster of padding at a target rate — padding-only RTX packets
//! (RFC 4588, RFC 3550 §5.1), which the receiver's transport-wide feedback
//! reports and its decoder never sees — and takes the rate at which the
//! cluster arrived as what the path takes: the lower of the rates it was
//! sent and received at, or nothing when too much of it was lost.

use std::time::{Duration, Instant};

use super::send_side::SendSideBwe;
use super::twcc_sender::PacketResult;

/// How long a cluster lasts.
pub const CLUSTER: Duration = Duration::from_millis(250);
/// Padding bytes in one probe packet: the most an RTP padding count (one
/// byte) can say.
pub const PADDING: usize = 255;
/// After a probe the path took whole, the next (while still needed) may
/// start this soon: a chain of probes climbs 1.5× a step, and a path whose
/// cap was lifted is found a step sooner (libwebrtc's `ProbeController`
/// sends its next exponential probe as soon as a result says the path took
/// the last).
pub const CHAIN_INTERVAL: Duration = Duration::from_millis(500);
/// Other probes of the same subscriber are at least this far apart…
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// …and, after probes that found nothing more (or whose rise congestion
/// undid), up to this far: a path whose cap is lifted is found within it.
pub const MAX_INTERVAL: Duration = Duration::from_secs(8);
/// A rise a probe brought that no congestion undid for this long was real.
pub const CONFIRM: Duration = super::send_side::PROBE_CONFIRM;
/// A cluster losing more than this fraction found nothing.
pub const MAX_LOSS: f64 = 0.10;
/// Fewer received packets than this measure nothing.
pub const MIN_PACKETS: u32 = 5;

/// What a cluster found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// The path took this many bit/s.
    Rate(u64),
    /// Too much was lost, or too little arrived to tell.
    Failed,
}

/// One cluster being measured: everything sent in its time span counts,
/// media included.
#[derive(Debug, Clone)]
pub struct ProbeCluster {
    /// Its span on the transport-wide send clock, µs.
    start_us: i64,
    end_us: i64,
    /// The rate it was sent at, bit/s.
    pub target_bps: u64,
    packets: u32,
    lost: u32,
    bytes: u64,
    first_send: Option<(i64, u16)>,
    last_send: Option<(i64, u16)>,
    first_recv: Option<(i64, u16)>,
    last_recv: Option<i64>,
}

impl ProbeCluster {
    /// A cluster sent from `start_us` (send clock, µs) for [`CLUSTER`] at
    /// `target_bps`.
    pub fn new(start_us: i64, target_bps: u64) -> Self {
        Self {
            start_us,
            end_us: start_us + CLUSTER.as_micros() as i64,
            target_bps,
            packets: 0,
            lost: 0,
            bytes: 0,
            first_send: None,
            last_send: None,
            first_recv: None,
            last_recv: None,
        }
    }

    /// Whether `send_us` falls in the cluster.
    pub fn covers(&self, send_us: i64) -> bool {
        (self.start_us..self.end_us).contains(&send_us)
    }

    /// The send-clock time the cluster ends, µs.
    pub fn end_us(&self) -> i64 {
        self.end_us
    }

    /// Takes one feedback's results; returns the outcome once a result sent
    /// after the cluster shows that the cluster's have all been reported,
    /// or [`ProbeOutcome::Failed`] as soon as more than [`MAX_LOSS`] of
    /// those reported so far (and at least [`MIN_PACKETS`]) were lost.
    pub fn on_results(&mut self, results: &[PacketResult]) -> Option<ProbeOutcome> {
        let mut after = false;
        for r in results {
            if r.send_us >= self.end_us {
                after = true;
                continue;
            }
            if r.send_us < self.start_us {
                continue;
            }
            self.packets += 1;
            self.bytes += u64::from(r.size);
            if self.first_send.is_none_or(|(t, _)| r.send_us < t) {
                self.first_send = Some((r.send_us, r.size));
            }
            if self.last_send.is_none_or(|(t, _)| r.send_us > t) {
                self.last_send = Some((r.send_us, r.size));
            }
            match r.recv_us {
                None => self.lost += 1,
                Some(at) => {
                    if self.first_recv.is_none_or(|(t, _)| at < t) {
                        self.first_recv = Some((at, r.size));
                    }
                    if self.last_recv.is_none_or(|t| at > t) {
                        self.last_recv = Some(at);
                    }
                }
            }
        }
        if after {
            return Some(self.outcome());
        }
        // Losing already: a policer's bucket ran dry. Every further probe
        // packet would only take the place of media, so the cluster ends
        // here rather than at its time.
        let lost_enough =
            self.lost >= MIN_PACKETS && f64::from(self.lost) > MAX_LOSS * f64::from(self.packets);
        lost_enough.then_some(ProbeOutcome::Failed)
    }

    /// The lower of the send and receive rates (each over its own span,
    /// without the packet that ends it, as libwebrtc counts), or
    /// [`ProbeOutcome::Failed`].
    pub fn outcome(&self) -> ProbeOutcome {
        let received = self.packets - self.lost;
        if received < MIN_PACKETS
            || f64::from(self.lost) > MAX_LOSS * f64::from(self.packets.max(1))
        {
            return ProbeOutcome::Failed;
        }
        let (Some((s0, _)), Some((s1, last_size)), Some((r0, first_size)), Some(r1)) = (
            self.first_send,
            self.last_send,
            self.first_recv,
            self.last_recv,
        ) else {
            return ProbeOutcome::Failed;
        };
        let (send_us, recv_us) = (s1 - s0, r1 - r0);
        if send_us <= 0 || recv_us <= 0 {
            return ProbeOutcome::Failed;
        }
        let send = (self.bytes - u64::from(last_size)) as f64 * 8e6 / send_us as f64;
        let recv = (self.bytes - u64::from(first_size)) as f64 * 8e6 / recv_us as f64;
        ProbeOutcome::Rate(send.min(recv) as u64)
    }
}

/// When a subscriber's transport may probe next, and what a probe's
/// outcome does to its estimate. A probe that finds nothing more, or whose
/// rise congestion soon undoes (a policer's bucket letting a burst
/// through), doubles the wait up to [`MAX_INTERVAL`]; a probe the path took
/// whole may be followed after [`CHAIN_INTERVAL`], and a rise that held for
/// [`CONFIRM`] brings the wait back to [`MIN_INTERVAL`]. Sans-IO: fed the
/// time and the estimator.
#[derive(Debug)]
pub struct ProbeController {
    /// No new probe before then.
    next: Option<Instant>,
    /// The wait after a probe that finds nothing more.
    interval: Duration,
    /// When a probe last raised the estimate, and the estimate (bit/s)
    /// before the chain of rises it belongs to.
    raised: Option<(Instant, u64)>,
}

impl Default for ProbeController {
    fn default() -> Self {
        Self {
            next: None,
            interval: MIN_INTERVAL,
            raised: None,
        }
    }
}

impl ProbeController {
    /// Whether a new probe may start at `now`.
    #[must_use]
    pub fn may_probe(&self, now: Instant) -> bool {
        self.next.is_none_or(|t| now >= t)
    }

    /// A cluster of `target_bps` ended with `outcome` at `now`: raises
    /// `bwe` by a rate it measured, undoes the previous rise when this
    /// probe contradicts it within [`CONFIRM`], and sets when the next
    /// probe may start. Returns that wait.
    pub fn on_outcome(
        &mut self,
        now: Instant,
        target_bps: u64,
        outcome: ProbeOutcome,
        bwe: &mut SendSideBwe,
    ) -> Duration {
        let before = bwe.bps();
        // The path took all of it: probe again soon if still needed (a rise
        // that congestion undoes backs off, in `on_tick`). It took less (a
        // bottleneck spread it out) or lost it: back off, so a capped path
        // is not hammered.
        let took_all = match outcome {
            ProbeOutcome::Rate(bps) => {
                if bwe.on_probe_result(now, bps) {
                    // A chain of rises is undone to where it began.
                    let was = self.raised.map_or(before, |(_, w)| w);
                    self.raised = Some((now, was));
                }
                bps >= target_bps * 9 / 10
            }
            ProbeOutcome::Failed => false,
        };
        // A rise the very next probe contradicts was a bucket's burst.
        if !took_all
            && let Some((at, was)) = self.raised.take()
            && now.saturating_duration_since(at) < CONFIRM
        {
            bwe.undo_probe(was);
        }
        let wait = if took_all {
            CHAIN_INTERVAL
        } else {
            self.back_off()
        };
        self.next = Some(now + wait);
        wait
    }

    /// Called periodically: a probe's rise that congestion (`bwe`'s last
    /// at or after it) undid backs off from the congestion; one that held
    /// for [`CONFIRM`] was real and resets the wait.
    pub fn on_tick(&mut self, now: Instant, bwe: &SendSideBwe) {
        let Some((r, _)) = self.raised else { return };
        match bwe.last_congestion() {
            Some(c) if c >= r => {
                self.next = Some(c + self.back_off());
                self.raised = None;
            }
            _ if now.saturating_duration_since(r) >= CONFIRM => {
                self.interval = MIN_INTERVAL;
                self.raised = None;
            }
            _ => {}
        }
    }

    /// Doubles the wait (up to [`MAX_INTERVAL`]) and returns it.
    fn back_off(&mut self) -> Duration {
        self.interval = (self.interval * 2).min(MAX_INTERVAL);
        self.interval
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` packets of `size` bytes sent every `gap_us` from 1 s, arriving
    /// every `recv_gap_us`; every `lose_every`-th lost (0: none).
    fn results(
        n: i64,
        size: u16,
        gap_us: i64,
        recv_gap_us: i64,
        lose_every: i64,
    ) -> Vec<PacketResult> {
        (0..n)
            .map(|i| PacketResult {
                send_us: 1_000_000 + i * gap_us,
                recv_us: (lose_every == 0 || i % lose_every != 0)
                    .then_some(5_000 + i * recv_gap_us),
                size,
            })
            .collect()
    }

    fn after() -> PacketResult {
        PacketResult {
            send_us: 2_000_000,
            recv_us: Some(9_000_000),
            size: 100,
        }
    }

    #[test]
    fn a_cluster_that_gets_through_measures_its_rate() {
        // 300 B every 2 ms = 1.2 Mbit/s, received as sent.
        let mut c = ProbeCluster::new(1_000_000, 1_200_000);
        assert_eq!(c.on_results(&results(100, 300, 2_000, 2_000, 0)), None);
        let Some(ProbeOutcome::Rate(r)) = c.on_results(&[after()]) else {
            panic!("no rate");
        };
        assert!((1_150_000..=1_250_000).contains(&r), "{r}");
    }

    #[test]
    fn a_bottleneck_shows_in_the_receive_rate() {
        // Sent at 1.2 Mbit/s, spread out to 400 kbit/s by the path.
        let mut c = ProbeCluster::new(1_000_000, 1_200_000);
        let mut r = results(100, 300, 2_000, 6_000, 0);
        r.push(after());
        let Some(ProbeOutcome::Rate(rate)) = c.on_results(&r) else {
            panic!("no rate");
        };
        assert!((380_000..=420_000).contains(&rate), "{rate}");
    }

    #[test]
    fn heavy_loss_or_too_few_packets_measure_nothing() {
        let mut lossy = ProbeCluster::new(1_000_000, 1_200_000);
        let mut r = results(100, 300, 2_000, 2_000, 5);
        r.push(after());
        assert_eq!(lossy.on_results(&r), Some(ProbeOutcome::Failed));
        let mut few = ProbeCluster::new(1_000_000, 1_200_000);
        let mut r = results(3, 300, 2_000, 2_000, 0);
        r.push(after());
        assert_eq!(few.on_results(&r), Some(ProbeOutcome::Failed));
    }

    #[test]
    fn a_cluster_losing_early_fails_before_its_end() {
        let mut c = ProbeCluster::new(1_000_000, 1_200_000);
        // The first 50 ms: all through.
        assert_eq!(c.on_results(&results(25, 300, 2_000, 2_000, 0)), None);
        // The next: a third lost, the cluster not over yet.
        let mut r = results(50, 300, 2_000, 2_000, 3);
        r.drain(..25);
        assert_eq!(c.on_results(&r), Some(ProbeOutcome::Failed));
        // A few lost alone end nothing.
        let mut c = ProbeCluster::new(1_000_000, 1_200_000);
        assert_eq!(c.on_results(&results(20, 300, 2_000, 2_000, 5)), None);
    }

    #[test]
    fn the_controller_backs_off_and_undoes_a_rise_the_next_probe_contradicts() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut bwe = SendSideBwe::default();
        bwe.undo_probe(1_000_000); // an estimate of 1 Mbit/s to probe above
        let mut c = ProbeController::default();
        assert!(c.may_probe(t0));
        // Probes that find nothing wait 2, 4, 8, 8 s.
        let mut now = t0;
        for want in [2, 4, 8, 8] {
            let wait = c.on_outcome(now, 2_000_000, ProbeOutcome::Failed, &mut bwe);
            assert_eq!(wait, s(want));
            assert!(!c.may_probe(now + wait - Duration::from_millis(1)));
            now += wait;
            assert!(c.may_probe(now));
        }
        assert_eq!(bwe.bps(), 1_000_000, "nothing measured, nothing raised");
        // A probe the path takes whole raises the estimate; the next of
        // its chain may follow soon.
        let wait = c.on_outcome(now, 2_000_000, ProbeOutcome::Rate(1_950_000), &mut bwe);
        assert_eq!((wait, bwe.bps()), (CHAIN_INTERVAL, 1_950_000));
        // The next, higher, probe gets less through within CONFIRM: the
        // rise was a bucket's burst and is undone, and it backs off.
        now += wait;
        let wait = c.on_outcome(now, 4_000_000, ProbeOutcome::Rate(1_500_000), &mut bwe);
        assert_eq!(bwe.bps(), 1_000_000);
        assert_eq!(wait, s(8), "the backoff went on from where it was");
        // A rise that holds for CONFIRM resets the backoff.
        now += wait;
        c.on_outcome(now, 2_000_000, ProbeOutcome::Rate(2_000_000), &mut bwe);
        c.on_tick(now + CONFIRM, &bwe);
        let wait = c.on_outcome(now + CONFIRM, 4_000_000, ProbeOutcome::Failed, &mut bwe);
        assert_eq!((wait, bwe.bps()), (s(2), 2_000_000));
    }
}
