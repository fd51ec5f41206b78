//! The delay-based half of Google Congestion Control, send side
//! (draft-ietf-rmcat-gcc-02 §5, as libwebrtc implements it in
//! `modules/congestion_controller/goog_cc`: `InterArrivalDelta`,
//! `TrendlineEstimator` and `AimdRateControl`).
//!
//! Packets are grouped by send time (a group spans at most 5 ms); the
//! difference between how far apart two groups arrived and how far apart
//! they were sent is the queue growth between them. A linear regression over
//! the last 20 groups of the smoothed accumulated growth gives the delay
//! trend; a trend above an adaptive threshold is overuse (the bottleneck's
//! queue is filling), below its negative underuse (it is draining). The rate
//! controller (AIMD) cuts the estimate to 0.85 × the rate acknowledged as
//! received on overuse, and otherwise raises it: multiplicatively (8 %/s)
//! while far from the last capacity found, additively (about one packet per
//! response time) near it.

use std::collections::VecDeque;
use std::time::Duration;

/// Packets sent within this span of a group's first one belong to it (ms).
pub const BURST_MS: f64 = 5.0;
/// Groups the trend is fitted over.
pub const WINDOW: usize = 20;
/// Smoothing of the accumulated delay (exponential, this weight on the old).
pub const SMOOTHING: f64 = 0.9;
/// Gain applied to the trend before it is compared with the threshold.
pub const THRESHOLD_GAIN: f64 = 4.0;
/// Threshold adaptation speeds: when the trend is above it, and below it.
pub const K_UP: f64 = 0.0087;
/// See [`K_UP`].
pub const K_DOWN: f64 = 0.039;
/// Multiplicative decrease on overuse, of the acknowledged rate.
pub const BETA: f64 = 0.85;

/// What the delay trend says about the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// The queue neither grows nor drains.
    Normal,
    /// The queue grows: we send more than the bottleneck carries.
    Overusing,
    /// The queue drains.
    Underusing,
}

#[derive(Debug, Clone, Copy)]
struct Group {
    first_send_ms: f64,
    last_send_ms: f64,
    last_recv_ms: f64,
}

/// Packet grouping and the trendline overuse detector.
#[derive(Debug)]
pub struct Trendline {
    group: Option<Group>,
    prev: Option<Group>,
    first_recv_ms: Option<f64>,
    accumulated: f64,
    smoothed: f64,
    history: VecDeque<(f64, f64)>,
    num_deltas: u32,
    threshold: f64,
    last_threshold_update_ms: Option<f64>,
    prev_trend: f64,
    time_over_using: f64,
    overuse_count: u32,
    usage: Usage,
}

impl Default for Trendline {
    fn default() -> Self {
        Self {
            group: None,
            prev: None,
            first_recv_ms: None,
            accumulated: 0.0,
            smoothed: 0.0,
            history: VecDeque::with_capacity(WINDOW + 1),
            num_deltas: 0,
            threshold: 12.5,
            last_threshold_update_ms: None,
            prev_trend: 0.0,
            time_over_using: -1.0,
            overuse_count: 0,
            usage: Usage::Normal,
        }
    }
}

impl Trendline {
    /// The detector's current verdict.
    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// Takes one received packet: sent at `send_us` (our clock), arrived at
    /// `recv_us` (the receiver's clock), both µs. Packets must come in
    /// sequence order; one sent before the current group started is ignored.
    pub fn on_packet(&mut self, send_us: i64, recv_us: i64) {
        let (send, recv) = (send_us as f64 / 1000.0, recv_us as f64 / 1000.0);
        let Some(g) = &mut self.group else {
            self.group = Some(Group {
                first_send_ms: send,
                last_send_ms: send,
                last_recv_ms: recv,
            });
            return;
        };
        if send < g.first_send_ms {
            return; // reordered behind its group
        }
        // The same group: sent within the burst span, or arrived in a burst
        // right behind it (queued behind it: it arrived no later, relative
        // to when it was sent).
        let in_burst = recv - g.last_recv_ms <= BURST_MS
            && (recv - g.last_recv_ms) - (send - g.last_send_ms) < 0.0;
        if send - g.first_send_ms <= BURST_MS || in_burst {
            g.last_send_ms = g.last_send_ms.max(send);
            g.last_recv_ms = g.last_recv_ms.max(recv);
            return;
        }
        let done = *g;
        *g = Group {
            first_send_ms: send,
            last_send_ms: send,
            last_recv_ms: recv,
        };
        if let Some(p) = self.prev {
            let send_delta = done.last_send_ms - p.last_send_ms;
            let recv_delta = done.last_recv_ms - p.last_recv_ms;
            // A receiver clock jump (or a reordering of whole groups) says
            // nothing about the queue.
            if recv_delta.abs() < 3000.0 {
                self.update(recv_delta, send_delta, done.last_recv_ms);
            }
        }
        self.prev = Some(done);
    }

    fn update(&mut self, recv_delta: f64, send_delta: f64, recv_ms: f64) {
        let delta = recv_delta - send_delta;
        self.num_deltas = (self.num_deltas + 1).min(1000);
        self.accumulated += delta;
        self.smoothed = SMOOTHING * self.smoothed + (1.0 - SMOOTHING) * self.accumulated;
        let first = *self.first_recv_ms.get_or_insert(recv_ms);
        self.history.push_back((recv_ms - first, self.smoothed));
        if self.history.len() > WINDOW {
            self.history.pop_front();
        }
        let mut trend = self.prev_trend;
        if self.history.len() == WINDOW
            && let Some(slope) = linear_fit_slope(&self.history)
        {
            trend = slope;
        }
        self.detect(trend, send_delta, recv_ms);
    }

    fn detect(&mut self, trend: f64, send_delta: f64, now_ms: f64) {
        if self.num_deltas < 2 {
            self.usage = Usage::Normal;
            return;
        }
        let modified = f64::from(self.num_deltas.min(60)) * trend * THRESHOLD_GAIN;
        if modified > self.threshold {
            if self.time_over_using < 0.0 {
                self.time_over_using = send_delta / 2.0;
            } else {
                self.time_over_using += send_delta;
            }
            self.overuse_count += 1;
            if self.time_over_using > 10.0 && self.overuse_count > 1 && trend >= self.prev_trend {
                self.time_over_using = 0.0;
                self.overuse_count = 0;
                self.usage = Usage::Overusing;
            }
        } else if modified < -self.threshold {
            self.time_over_using = -1.0;
            self.overuse_count = 0;
            self.usage = Usage::Underusing;
        } else {
            self.time_over_using = -1.0;
            self.overuse_count = 0;
            self.usage = Usage::Normal;
        }
        self.prev_trend = trend;
        self.update_threshold(modified, now_ms);
    }

    /// The threshold follows the trend's magnitude, fast down and slowly
    /// up, so it tolerates the path's usual jitter (gcc-02 §5.4).
    fn update_threshold(&mut self, modified: f64, now_ms: f64) {
        let last = *self.last_threshold_update_ms.get_or_insert(now_ms);
        if modified.abs() > self.threshold + 15.0 {
            // A spike (a route change, a clock jump): not adapted to.
            self.last_threshold_update_ms = Some(now_ms);
            return;
        }
        let k = if modified.abs() < self.threshold {
            K_DOWN
        } else {
            K_UP
        };
        let dt = (now_ms - last).clamp(0.0, 100.0);
        self.threshold += k * (modified.abs() - self.threshold) * dt;
        self.threshold = self.threshold.clamp(6.0, 600.0);
        self.last_threshold_update_ms = Some(now_ms);
    }
}

/// Least-squares slope of `points` (x, y); `None` when x does not vary.
fn linear_fit_slope(points: &VecDeque<(f64, f64)>) -> Option<f64> {
    let n = points.len() as f64;
    let (sx, sy) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    let (mx, my) = (sx / n, sy / n);
    let (mut num, mut den) = (0.0, 0.0);
    for (x, y) in points {
        num += (x - mx) * (y - my);
        den += (x - mx) * (x - mx);
    }
    (den != 0.0).then(|| num / den)
}

/// The AIMD rate controller (gcc-02 §5.5).
#[derive(Debug, Default)]
pub struct AimdRateControl {
    bps: Option<f64>,
    increasing: bool,
    /// The link capacity seen at decreases: (mean, variance) in kbit/s,
    /// normalised by the mean as libwebrtc does.
    capacity: Option<(f64, f64)>,
}

impl AimdRateControl {
    /// The estimate, bit/s; `None` until the first overuse sets it.
    pub fn bps(&self) -> Option<u64> {
        self.bps.map(|b| b as u64)
    }

    /// Undoes growth since `before` beyond `ceiling` bit/s (it never goes
    /// below `before` for it).
    pub fn limit_growth(&mut self, before: f64, ceiling: f64) {
        if let Some(b) = self.bps
            && b > before
            && b > ceiling
        {
            self.bps = Some(before.max(ceiling));
        }
    }

    /// Lowers a set estimate to `bps` when it is higher (undoing a rise).
    pub fn lower_to(&mut self, bps: f64) {
        if let Some(b) = self.bps {
            self.bps = Some(b.min(bps));
        }
    }

    /// Raises a set estimate to `bps` (a probe's result) when it is
    /// higher; the capacity seen at decreases no longer holds.
    pub fn raise_to(&mut self, bps: f64) {
        if let Some(b) = self.bps
            && bps > b
        {
            self.bps = Some(bps);
            self.capacity = None;
        }
    }

    /// Takes the detector's verdict, `dt` after the previous update, with
    /// the rate acknowledged as received (bit/s) and the round-trip time.
    /// Returns true when it decreased the estimate.
    pub fn update(
        &mut self,
        usage: Usage,
        dt: Duration,
        acked_bps: Option<f64>,
        rtt: Duration,
        min_bps: f64,
        max_bps: f64,
    ) -> bool {
        match usage {
            Usage::Overusing => {
                let Some(acked) = acked_bps else {
                    return false;
                };
                let new = BETA * acked;
                let new = match self.bps {
                    Some(old) if new > old => old,
                    _ => new,
                };
                self.update_capacity(acked / 1000.0);
                self.bps = Some(new.clamp(min_bps, max_bps));
                self.increasing = false;
                true
            }
            Usage::Underusing => {
                self.increasing = false;
                false
            }
            Usage::Normal => {
                if !self.increasing {
                    self.increasing = true;
                    return false;
                }
                let Some(bps) = self.bps else { return false };
                if let Some((mean, var)) = self.capacity {
                    let std = (var * mean).sqrt();
                    if bps / 1000.0 > mean + 3.0 * std {
                        self.capacity = None; // far above: search again
                    }
                }
                let secs = dt.as_secs_f64().min(1.0);
                let inc = if self.capacity.is_some() {
                    // About one packet per response time (libwebrtc's
                    // near-max increase): frames at 30 fps, packets ≤ 1200 B.
                    let frame_bits = bps / 30.0;
                    let packets = (frame_bits / (1200.0 * 8.0)).ceil().max(1.0);
                    let response = rtt.as_secs_f64() + 0.1;
                    (frame_bits / packets / response).max(4000.0) * secs
                } else {
                    (bps * (1.08f64.powf(secs) - 1.0)).max(1000.0 * secs)
                };
                self.bps = Some((bps + inc).clamp(min_bps, max_bps));
                false
            }
        }
    }

    fn update_capacity(&mut self, sample_kbps: f64) {
        let (mean, var) = match self.capacity {
            None => (sample_kbps, 0.4),
            Some((mean, var)) => {
                let a = 0.05;
                let mean2 = (1.0 - a) * mean + a * sample_kbps;
                let norm = mean2.max(1.0);
                let e = mean2 - sample_kbps;
                (mean2, ((1.0 - a) * var + a * e * e / norm).clamp(0.4, 2.5))
            }
        };
        self.capacity = Some((mean, var));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Group `k` (two packets, 10 ms apart from the next) arrives
    /// `extra_ms` later than a steady path would deliver it.
    fn group(t: &mut Trendline, k: i64, extra_ms: f64) {
        let send = k * 10_000;
        let recv = send + 50_000 + (extra_ms * 1000.0) as i64;
        t.on_packet(send, recv);
        t.on_packet(send + 100, recv + 100);
    }

    #[test]
    fn a_steady_path_is_normal_and_a_filling_queue_is_overuse() {
        let mut t = Trendline::default();
        for k in 0..100 {
            // Jitter of ±1 ms is no trend.
            group(&mut t, k, if k % 2 == 0 { 1.0 } else { -1.0 });
            assert_ne!(t.usage(), Usage::Overusing, "group {k}");
        }
        // Each group now arrives 2 ms later than the previous, relative to
        // when it was sent: the queue grows by 20 % of the sending rate.
        let mut at = None;
        for k in 0..60 {
            group(&mut t, 100 + k, 2.0 * k as f64);
            if t.usage() == Usage::Overusing {
                at = Some(k);
                break;
            }
        }
        let at = at.expect("a growing queue is overuse");
        assert!(at < 30, "seen after {at} groups");
    }

    #[test]
    fn aimd_cuts_to_beta_of_acked_then_grows() {
        let mut a = AimdRateControl::default();
        let rtt = Duration::from_millis(100);
        let dt = Duration::from_millis(50);
        assert_eq!(a.bps(), None);
        assert!(!a.update(Usage::Normal, dt, Some(1e6), rtt, 1e4, 1e8));
        assert_eq!(a.bps(), None, "no estimate before the first overuse");
        assert!(a.update(Usage::Overusing, dt, Some(1e6), rtt, 1e4, 1e8));
        assert_eq!(a.bps(), Some(850_000));
        // Never raised by a decrease.
        assert!(a.update(Usage::Overusing, dt, Some(2e6), rtt, 1e4, 1e8));
        assert_eq!(a.bps(), Some(850_000));
        a.update(Usage::Normal, dt, Some(8e5), rtt, 1e4, 1e8); // hold → increase
        for _ in 0..20 {
            a.update(Usage::Normal, dt, Some(8e5), rtt, 1e4, 1e8);
        }
        let b = a.bps().unwrap_or(0);
        // Near the capacity found: additive, tens of kbit/s per second.
        assert!((860_000..950_000).contains(&b), "{b}");
    }
}
