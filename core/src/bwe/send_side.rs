//! What a subscriber can receive: a send-side bandwidth estimate per
//! subscriber transport, after Google Congestion Control
//! (draft-ietf-rmcat-gcc-02).
//!
//! - With transport-wide cc feedback (the subscriber numbers nothing; we
//!   stamp our own transport-wide sequence numbers and it reports arrivals),
//!   the delay-based controller ([`super::delay_based`], §5) and the
//!   loss-based controller (§6) run on each feedback, and the estimate is
//!   the lower of the two.
//! - Without it, the loss-based controller runs on the fraction lost of the
//!   subscriber's receiver reports (RFC 3550 §6.4.1), and a subscriber that
//!   sends REMB (its own receive-side estimate, which our abs-send-time
//!   feeds) bounds the estimate with it ([`SendSideBwe::on_remb`]).
//!
//! Until simulcast exists the estimate can only cap publishers (REMB), so it
//! caps nothing until the subscriber has seen real congestion: loss above
//! 10 %, or a delay overuse with a standing queue of at least
//! [`QUEUE_CONGESTION`]. A subscriber that merely receives less than it
//! could (application-limited) never caps. After congestion the cap follows
//! the estimate as it grows back (8 %/s), and is lifted once the estimate
//! has grown to [`LIFT_FACTOR`] × where the congestion left it, with no
//! congestion for [`HOLD`]: publishers climb back gradually instead of
//! jumping to full rate into the link that just dropped their packets.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::delay_based::{AimdRateControl, Trendline, Usage};
use super::twcc_sender::PacketResult;

/// Loss above this fraction in two windows in a row is congestion:
/// decrease. (One window of 100 packets exceeds it about once in 80 under
/// 5 % random loss; two in a row, once in 6,000.)
pub const DECREASE_ABOVE: f64 = 0.10;
/// Loss above this fraction in one window is congestion at once.
pub const DECREASE_AT_ONCE_ABOVE: f64 = 0.20;
/// Loss below this fraction: increase by [`INCREASE_PER_S`].
pub const INCREASE_BELOW: f64 = 0.02;
/// Multiplicative increase per second without loss.
pub const INCREASE_PER_S: f64 = 1.08;
/// Increase per second near the capacity found, as a share of it.
pub const NEAR_CAPACITY_PER_S: f64 = 0.02;
/// The estimate never goes below this, bit/s (a thumbnail still gets through).
pub const MIN_BPS: u64 = 50_000;
/// Nor above this, bit/s.
pub const MAX_BPS: u64 = 100_000_000;
/// A cap lasts at least this long after the last congestion.
pub const HOLD: Duration = Duration::from_secs(10);
/// The cap is lifted once the estimate is this many times where the last
/// congestion left it.
pub const LIFT_FACTOR: u64 = 4;
/// A delay overuse is congestion when the queue it grew stands this high.
pub const QUEUE_CONGESTION: Duration = Duration::from_millis(40);
/// Transport-wide loss is evaluated over at least this many packets…
/// (With 5 % random loss, a window of 100 exceeds 10 % about once in 90.)
pub const LOSS_MIN_PACKETS: u32 = 100;
/// …and at least this long.
pub const LOSS_MIN_SPAN: Duration = Duration::from_millis(500);
/// A subscriber's REMBs are ignored this long after its first.
pub const REMB_WARMUP: Duration = Duration::from_secs(5);
/// Two low REMBs this far apart are congestion.
pub const REMB_CONFIRM: Duration = Duration::from_secs(1);
/// A probe's rise lifts no cap until it has held this long.
pub const PROBE_CONFIRM: Duration = Duration::from_secs(5);
/// The acknowledged rate is measured over this much arrival time.
pub const ACKED_WINDOW_US: i64 = 500_000;

/// The loss-based controller (gcc-02 §6).
#[derive(Debug, Clone)]
pub struct LossBasedEstimate {
    bps: u64,
    last_update: Option<Instant>,
    /// What got through when loss last exceeded [`DECREASE_ABOVE`]
    /// (sent × (1 − p)), bit/s: the capacity found.
    capacity: Option<u64>,
    /// The previous window's loss was above [`DECREASE_ABOVE`].
    above: bool,
}

impl Default for LossBasedEstimate {
    fn default() -> Self {
        Self {
            bps: MAX_BPS,
            last_update: None,
            capacity: None,
            above: false,
        }
    }
}

impl LossBasedEstimate {
    /// Takes `fraction_lost` (of 256) over an interval in which we sent
    /// `sending_bps`. Above [`DECREASE_AT_ONCE_ABOVE`], or above
    /// [`DECREASE_ABOVE`] twice in a row, the estimate drops to
    /// `(1 − p/2)` × the lower of itself and what was sent (gcc-02 §6; not
    /// from a stale, higher estimate); below [`INCREASE_BELOW`] it grows by
    /// [`INCREASE_PER_S`] per second since the last update, but only by
    /// [`NEAR_CAPACITY_PER_S`] of the capacity found while within
    /// 0.85–1.1 × it, as GCC's rate controller does near a known capacity
    /// (gcc-02 §5.5): a policer's bucket hides an overshoot for seconds,
    /// then drops a burst. Returns true when it decreased.
    pub fn on_report(&mut self, now: Instant, fraction_lost: u8, sending_bps: u64) -> bool {
        let p = f64::from(fraction_lost) / 256.0;
        // Updates come as often as enough packets do: seconds apart at
        // thumbnail rates.
        let dt = self.last_update.map_or(0.0, |t| {
            now.saturating_duration_since(t).as_secs_f64().min(5.0)
        });
        self.last_update = Some(now);
        let above = p > DECREASE_ABOVE;
        let confirmed = p > DECREASE_AT_ONCE_ABOVE || (above && self.above);
        self.above = above;
        if above && !confirmed {
            false // hold: one window may be random loss
        } else if confirmed {
            let base = self.bps.min(sending_bps.max(MIN_BPS)) as f64;
            self.bps = ((base * (1.0 - 0.5 * p)) as u64).max(MIN_BPS);
            self.capacity = Some(((sending_bps as f64 * (1.0 - p)) as u64).max(MIN_BPS));
            true
        } else {
            if p < INCREASE_BELOW {
                let b = self.bps as f64;
                let grown = b * INCREASE_PER_S.powf(dt);
                self.bps = match self.capacity.map(|c| c as f64) {
                    // Far above without loss: the capacity moved; search again.
                    Some(c) if b > 1.1 * c => {
                        self.capacity = None;
                        grown
                    }
                    Some(c) if b >= 0.85 * c => b + c * NEAR_CAPACITY_PER_S * dt,
                    Some(c) => grown.min(0.85 * c).max(b),
                    None => grown,
                } as u64;
                self.bps = self.bps.min(MAX_BPS);
            }
            false
        }
    }

    /// The estimate, bit/s.
    pub fn bps(&self) -> u64 {
        self.bps
    }

    /// Undoes growth since `before` beyond `ceiling` bit/s (it never goes
    /// below `before` for it).
    pub fn limit_growth(&mut self, before: u64, ceiling: u64) {
        if self.bps > before && self.bps > ceiling {
            self.bps = before.max(ceiling);
        }
    }

    /// Lowers the estimate to `bps` when it is higher (undoing a rise).
    pub fn lower_to(&mut self, bps: u64) {
        self.bps = self.bps.min(bps.max(MIN_BPS));
    }

    /// Raises the estimate to `bps` (a probe's result) when it is higher;
    /// the capacity found before no longer holds.
    pub fn raise_to(&mut self, bps: u64) {
        if bps > self.bps {
            self.bps = bps.min(MAX_BPS);
            self.capacity = None;
        }
    }
}

/// The rate at which packets arrived at the receiver, from transport-wide
/// feedback, over the last [`ACKED_WINDOW_US`] of arrival time.
#[derive(Debug, Default)]
struct AckedBitrate {
    /// (arrival µs on the receiver's clock, bytes), in the order reported.
    window: VecDeque<(i64, u16)>,
    bytes: u64,
    /// The latest arrival reported.
    newest: Option<i64>,
}

impl AckedBitrate {
    fn on_received(&mut self, recv_us: i64, size: u16) {
        if self.window.len() >= 8192
            && let Some((_, s)) = self.window.pop_front()
        {
            self.bytes -= u64::from(s);
        }
        self.window.push_back((recv_us, size));
        self.bytes += u64::from(size);
        let newest = *self
            .newest
            .insert(self.newest.map_or(recv_us, |n| n.max(recv_us)));
        while let Some(&(t, s)) = self.window.front()
            && newest.saturating_sub(t) > ACKED_WINDOW_US
        {
            self.window.pop_front();
            self.bytes -= u64::from(s);
        }
    }

    /// bit/s, once at least 100 ms of arrivals are known.
    fn bps(&self) -> Option<f64> {
        let (&(oldest, _), newest) = (self.window.front()?, self.newest?);
        let span = newest.saturating_sub(oldest);
        (span >= 100_000).then(|| self.bytes as f64 * 8e6 / span as f64)
    }
}

/// How much queue stands on the path: one-way delay (receiver clock minus
/// ours, an unknown constant apart) above its minimum over the last ~10 s,
/// smoothed.
#[derive(Debug, Default)]
struct QueueDelay {
    /// Minimum one-way delay per ~1 s slot: (slot start µs, min µs).
    mins: VecDeque<(i64, i64)>,
    smoothed_us: f64,
}

impl QueueDelay {
    fn on_received(&mut self, send_us: i64, recv_us: i64) {
        let owd = recv_us - send_us;
        match self.mins.back_mut() {
            Some((start, m)) if send_us - *start < 1_000_000 => *m = (*m).min(owd),
            _ => {
                self.mins.push_back((send_us, owd));
                if self.mins.len() > 10 {
                    self.mins.pop_front();
                }
            }
        }
        let base = self.mins.iter().map(|(_, m)| *m).min().unwrap_or(owd);
        self.smoothed_us += ((owd - base) as f64 - self.smoothed_us) / 8.0;
    }

    fn get(&self) -> Duration {
        Duration::from_micros(self.smoothed_us.max(0.0) as u64)
    }
}

/// One subscriber transport's send-side estimate.
#[derive(Debug, Default)]
pub struct SendSideBwe {
    loss: LossBasedEstimate,
    trendline: Trendline,
    aimd: AimdRateControl,
    acked: AckedBitrate,
    queue: QueueDelay,
    /// Transport-wide loss since the last evaluation: (packets, lost,
    /// bytes sent, since).
    loss_window: (u32, u32, u64, Option<Instant>),
    last_feedback: Option<Instant>,
    has_feedback: bool,
    /// Capping since the last congestion: (when, the estimate it left).
    congestion: Option<(Instant, u64)>,
    /// Loss is counted only on packets sent from here on (send clock, µs):
    /// after a decrease, what was sent at the old rate and is still in
    /// flight says nothing about the new one (libwebrtc waits 300 ms + RTT
    /// between loss-based decreases for the same reason).
    loss_from_us: i64,
    /// The subscriber's own REMB, when it sends no transport-wide feedback:
    /// (when, bit/s, it was below what we sent).
    remb: Option<(Instant, u64, bool)>,
    /// When the first REMB came (its estimator's warm-up starts then).
    first_remb: Option<Instant>,
    /// The loss of the last transport-wide loss window (0–1).
    last_loss: f64,
    /// A probe raised the estimate: the cap is not lifted before then
    /// (a policer's bucket may have let the probe through).
    no_lift_until: Option<Instant>,
}

impl SendSideBwe {
    /// True once transport-wide feedback arrived: receiver-report loss is
    /// then not used (the feedback has it, per packet and sooner).
    pub fn has_feedback(&self) -> bool {
        self.has_feedback
    }

    /// The estimate, bit/s: the lower of the delay-based and loss-based
    /// ones ([`MAX_BPS`] while neither knows a limit).
    pub fn bps(&self) -> u64 {
        let remb = self
            .remb
            .filter(|_| !self.has_feedback)
            .map_or(MAX_BPS, |(_, b, _)| b);
        self.aimd
            .bps()
            .map_or(self.loss.bps(), |d| d.min(self.loss.bps()))
            .min(remb)
    }

    /// The delay-based estimate, bit/s, once an overuse set it.
    pub fn delay_based_bps(&self) -> Option<u64> {
        self.aimd.bps()
    }

    /// The loss-based estimate, bit/s.
    pub fn loss_based_bps(&self) -> u64 {
        self.loss.bps()
    }

    /// The rate acknowledged as received in the last 500 ms, bit/s.
    pub fn acked_bps(&self) -> Option<u64> {
        self.acked.bps().map(|b| b as u64)
    }

    /// When congestion last lowered the estimate, while it caps.
    pub fn last_congestion(&self) -> Option<Instant> {
        self.congestion.map(|(t, _)| t)
    }

    /// The fraction of packets lost in the last transport-wide loss window
    /// (at least [`LOSS_MIN_PACKETS`] packets and [`LOSS_MIN_SPAN`]).
    pub fn last_loss(&self) -> f64 {
        self.last_loss
    }

    /// The queue standing on the path to the subscriber, smoothed.
    pub fn queue_delay(&self) -> Duration {
        self.queue.get()
    }

    /// The estimate when it caps what publishers send to this subscriber:
    /// from its first congestion until the cap is lifted (module docs).
    pub fn cap(&self) -> Option<u64> {
        self.congestion.map(|_| self.bps())
    }

    /// Takes one transport-wide feedback's results (sequence order), with
    /// the transport's round-trip time; `now_us` is `now` on the results'
    /// send clock. Returns true when the estimate decreased while capping,
    /// so the cap should go out now.
    pub fn on_feedback(
        &mut self,
        now: Instant,
        now_us: i64,
        results: &[PacketResult],
        rtt: Duration,
    ) -> bool {
        self.has_feedback = true;
        let (mut packets, mut lost, mut bytes) = (0u32, 0u32, 0u64);
        for r in results {
            if r.send_us >= self.loss_from_us {
                packets += 1;
                bytes += u64::from(r.size);
            }
            match r.recv_us {
                None => lost += u32::from(r.send_us >= self.loss_from_us),
                Some(recv) => {
                    self.trendline.on_packet(r.send_us, recv);
                    self.acked.on_received(recv, r.size);
                    self.queue.on_received(r.send_us, recv);
                }
            }
        }
        let dt = self
            .last_feedback
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        self.last_feedback = Some(now);
        let acked = self.acked.bps();
        let usage = self.trendline.usage();
        let before = self.bps();
        let (loss_before, aimd_before) = (self.loss.bps(), self.aimd.bps());
        let mut congested = false;
        if self
            .aimd
            .update(usage, dt, acked, rtt, MIN_BPS as f64, MAX_BPS as f64)
            && self.queue.get() >= QUEUE_CONGESTION
        {
            congested = true;
            tracing::debug!(
                target: "sfu::bwe",
                estimate = self.bps(),
                acked = ?acked.map(|a| a as u64),
                queue_ms = self.queue.get().as_millis() as u64,
                "delay-based decrease: the subscriber's queue grows"
            );
        }
        // Loss over windows of enough packets that random loss averages out.
        // What was sent is measured over the same window as the loss.
        let w = &mut self.loss_window;
        w.0 += packets;
        w.1 += lost;
        w.2 += bytes;
        let since = *w.3.get_or_insert(now);
        let span = now.saturating_duration_since(since);
        if w.0 >= LOSS_MIN_PACKETS && span >= LOSS_MIN_SPAN {
            let fraction = ((u64::from(w.1) << 8) / u64::from(w.0)).min(255) as u8;
            self.last_loss = f64::from(w.1) / f64::from(w.0);
            let sending = (w.2 as f64 * 8.0 / span.as_secs_f64()) as u64;
            *w = (0, 0, 0, Some(now));
            if self.loss.on_report(now, fraction, sending) {
                congested = true;
                self.loss_from_us = now_us;
                tracing::debug!(
                    target: "sfu::bwe",
                    estimate = self.bps(),
                    loss_pct = u32::from(fraction) * 100 / 256,
                    sending,
                    "loss-based decrease"
                );
            }
        }
        // A subscriber that receives less than it could proves no more than
        // that: the estimate grows to at most 1.5 × the acknowledged rate +
        // 10 kbit/s (libwebrtc's bound on its rate controller's increase);
        // probes ([`super::probe`]) raise it beyond.
        if !congested && let Some(a) = acked {
            let ceiling = (1.5 * a) as u64 + 10_000;
            self.loss.limit_growth(loss_before, ceiling);
            if let Some(b) = aimd_before {
                self.aimd.limit_growth(b as f64, ceiling as f64);
            }
        }
        self.after_update(now, congested);
        congested || (self.congestion.is_some() && self.bps() < before * 95 / 100)
    }

    /// Takes the subscriber's own REMB (draft-alvestrand-rmcat-remb §2.2:
    /// its receive-side estimate, bit/s), for subscribers that send REMB
    /// instead of transport-wide feedback: it bounds the estimate, and it
    /// is congestion when two REMBs at least [`REMB_CONFIRM`] apart both
    /// say it takes less than 80 % of the `sending_bps` we send it. REMBs
    /// in the first [`REMB_WARMUP`] are ignored: a receiver's estimator
    /// starts low and follows the incoming rate up. Returns true when the
    /// estimate should go out now.
    pub fn on_remb(&mut self, now: Instant, bps: u64, sending_bps: u64) -> bool {
        if self.has_feedback {
            return false;
        }
        let first = *self.first_remb.get_or_insert(now);
        if now.saturating_duration_since(first) < REMB_WARMUP {
            return false;
        }
        let below = bps < sending_bps / 10 * 8;
        let congested = match self.remb {
            Some((at, _, true)) if below => now.saturating_duration_since(at) >= REMB_CONFIRM,
            _ => false,
        };
        // Keep the first of a run of low REMBs as the run's start.
        let since = match self.remb {
            Some((at, _, true)) if below && !congested => at,
            _ => now,
        };
        let before = self.bps();
        self.remb = Some((since, bps.max(MIN_BPS), below));
        self.after_update(now, congested);
        congested || (self.congestion.is_some() && self.bps() < before * 95 / 100)
    }

    /// Takes a receiver-report loss window (for subscribers without
    /// transport-wide feedback): `fraction_lost` of 256 while we sent it
    /// `sending_bps`.
    pub fn on_receiver_report(
        &mut self,
        now: Instant,
        fraction_lost: u8,
        sending_bps: u64,
    ) -> bool {
        let congested = self.loss.on_report(now, fraction_lost, sending_bps);
        self.after_update(now, congested);
        congested
    }

    fn after_update(&mut self, now: Instant, congested: bool) {
        if congested {
            self.congestion = Some((now, self.bps()));
        } else if let Some((at, left)) = self.congestion
            && now.saturating_duration_since(at) >= HOLD
            && self.no_lift_until.is_none_or(|t| now >= t)
            && self.bps() >= left.saturating_mul(LIFT_FACTOR)
        {
            self.congestion = None;
        }
    }

    /// Takes a probe's result (bit/s the path took, [`super::probe`]): the
    /// estimate rises to it when it is higher. Returns whether it rose.
    pub fn on_probe_result(&mut self, now: Instant, bps: u64) -> bool {
        if bps <= self.bps() {
            return false;
        }
        self.loss.raise_to(bps);
        self.aimd.raise_to(bps as f64);
        self.no_lift_until = Some(now + PROBE_CONFIRM);
        true
    }

    /// Undoes a probe's rise: the estimate goes back to at most `bps` (what
    /// it was before), when a higher probe right after found the path
    /// taking less — a policer's bucket had let the first burst through.
    pub fn undo_probe(&mut self, bps: u64) {
        self.loss.lower_to(bps);
        self.aimd.lower_to(bps as f64);
    }

    /// The delay detector's verdict (for tests and logs).
    pub fn usage(&self) -> Usage {
        self.trendline.usage()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heavy_loss_decreases_from_the_sending_rate_and_light_loss_holds() {
        let t0 = Instant::now();
        let mut e = LossBasedEstimate::default();
        assert!(!e.on_report(t0, 13, 500_000), "5 %: hold");
        assert_eq!(e.bps(), MAX_BPS);
        assert!(e.on_report(t0, 128, 500_000), "50 %");
        assert_eq!(e.bps(), 375_000, "1 − p/2 of what was sent");
        assert!(e.on_report(t0, 128, 500_000));
        assert_eq!(e.bps(), 281_250, "then of the estimate, now lower");
        e.on_report(t0 + Duration::from_secs(1), 0, 300_000);
        assert_eq!(e.bps(), 303_750, "8 % in a second");
        for _ in 0..200 {
            e.on_report(t0, 255, 0);
        }
        assert_eq!(e.bps(), MIN_BPS);
    }

    #[test]
    fn moderate_loss_decreases_only_when_it_persists() {
        let t0 = Instant::now();
        let mut e = LossBasedEstimate::default();
        let mut t = t0;
        for k in 0..20 {
            t += Duration::from_millis(500);
            // 12 % every other window: random, not congestion.
            let f = if k % 2 == 0 { 31 } else { 13 };
            assert!(!e.on_report(t, f, 1_000_000), "window {k}");
        }
        assert!(!e.on_report(t, 31, 1_000_000));
        assert!(e.on_report(t, 31, 1_000_000), "twice in a row");
        assert_eq!(e.bps(), 939_453);
        // Near the capacity found (879 k), growth is slow: 2 % of it a second.
        let before = e.bps();
        e.on_report(t + Duration::from_secs(1), 0, 900_000);
        assert_eq!(e.bps() - before, 17_578);
    }

    /// Feedback is network input: arbitrary arrival times (jumps, going
    /// back, far apart), losses and sizes never panic and keep the estimate
    /// within its bounds.
    #[test]
    fn arbitrary_feedback_never_panics_and_stays_in_bounds() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let t0 = Instant::now();
        let mut e = SendSideBwe::default();
        let mut send_us = 0i64;
        let mut results = Vec::new();
        for k in 0..20_000u64 {
            results.clear();
            for _ in 0..(rnd() % 40) {
                send_us += (rnd() % 20_000) as i64;
                let recv = match rnd() % 8 {
                    0 => None,
                    1 => Some((rnd() % (1 << 40)) as i64 - (1 << 39)),
                    _ => Some(send_us + (rnd() % 200_000) as i64),
                };
                results.push(PacketResult {
                    send_us,
                    recv_us: recv,
                    size: (rnd() % 1500) as u16,
                });
            }
            let now = t0 + Duration::from_millis(k * 50);
            let rtt = Duration::from_millis(rnd() % 2000);
            e.on_feedback(now, send_us, &results, rtt);
            if k % 7 == 0 {
                e.on_remb(now, rnd() % 10_000_000, rnd() % 10_000_000);
            }
            assert!((MIN_BPS..=MAX_BPS).contains(&e.bps()), "{}", e.bps());
        }
    }

    #[test]
    fn a_cap_starts_at_congestion_and_lifts_only_after_growing_back() {
        let t0 = Instant::now();
        let mut e = SendSideBwe::default();
        e.on_receiver_report(t0, 0, 1_000_000);
        assert_eq!(e.cap(), None, "no congestion seen: no cap");
        assert!(e.on_receiver_report(t0, 128, 1_000_000));
        assert_eq!(e.cap(), Some(750_000));
        let mut t = t0;
        let mut lifted = None;
        for s in 1..60 {
            t += Duration::from_secs(1);
            e.on_receiver_report(t, 0, 500_000);
            if e.cap().is_none() {
                lifted = Some(s);
                break;
            }
            assert!(e.cap().is_some_and(|c| c > 750_000));
        }
        // 1.08^s ≥ 4: 18 s.
        assert_eq!(lifted, Some(19));
    }
}
