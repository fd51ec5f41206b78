//! What a subscriber's path carried while it lost packets: the rate its
//! layers climb no higher than for [`HOLD`] after (or until a probe carries
//! [`LIFT`] times it).
//!
//! A policer's token bucket lets an estimate run past the policed rate for
//! seconds before it drops anything (a bucket of one second's rate takes
//! ~10 s to empty at 10 % over), then drops the tails of frame bursts.
//! Without a ceiling, each climb runs into the same wall every few
//! seconds. The ceiling is the median of the last [`SAMPLES`] rates the
//! subscriber acknowledged while losing (transport-wide feedback over
//! 500 ms): one taken as a probe or a burst of resends passed the bucket
//! reads far above the policed rate and must not set it. The loss of the
//! [`PROBE_FALLOUT`] after a probe that failed while the ceiling held is
//! the probe's own (it emptied the bucket) and counts for nothing.
//! Sans-IO: fed the time and the rates.

use std::time::{Duration, Instant};

/// How long the ceiling holds after the last lossy sample.
pub const HOLD: Duration = Duration::from_secs(30);
/// A probe that carries this many times the ceiling ends it: no bucket of
/// a second's rate passes the chain of probes it takes to get there (1.5×
/// each, 250 ms, 1 s apart).
pub const LIFT: u64 = 3;
/// Lossy samples the median is taken over.
pub const SAMPLES: usize = 5;
/// Loss this soon after a probe that failed while the ceiling held is the
/// probe's doing: it emptied the policer's bucket, which refills once the
/// probe stops. It says nothing new of the path.
pub const PROBE_FALLOUT: Duration = Duration::from_secs(1);

/// A subscriber's loss ceiling.
#[derive(Debug, Clone, Default)]
pub struct LossCeiling {
    /// The last `len` samples, bit/s, oldest first.
    samples: [u64; SAMPLES],
    len: usize,
    /// When the last was taken.
    at: Option<Instant>,
    /// When a probe last failed while the ceiling held.
    failed_probe: Option<Instant>,
}

impl LossCeiling {
    /// Takes what got through (bit/s) at `now`, in a layer pass whose path
    /// lost packets. Samples older than [`HOLD`] are forgotten first.
    pub fn on_lossy(&mut self, now: Instant, bps: u64) {
        if self.ceiling(now).is_none() {
            self.len = 0;
        }
        if self.len == SAMPLES {
            self.samples.rotate_left(1);
            self.len -= 1;
        }
        self.samples[self.len] = bps;
        self.len += 1;
        self.at = Some(now);
    }

    /// The ceiling at `now`, bit/s: the median of the samples (the lower
    /// middle one of an even count), or `None` once [`HOLD`] has passed
    /// since the last.
    #[must_use]
    pub fn ceiling(&self, now: Instant) -> Option<u64> {
        let at = self.at?;
        if now.saturating_duration_since(at) >= HOLD || self.len == 0 {
            return None;
        }
        let mut s = self.samples;
        let s = &mut s[..self.len];
        s.sort_unstable();
        Some(s[(s.len() - 1) / 2])
    }

    /// A probe failed at `now` (it lost packets): while the ceiling holds,
    /// the loss of the next [`PROBE_FALLOUT`] is its doing.
    pub fn on_probe_failed(&mut self, now: Instant) {
        if self.ceiling(now).is_some() {
            self.failed_probe = Some(now);
        }
    }

    /// Whether loss at `now` is a failed probe's fallout (see
    /// [`LossCeiling::on_probe_failed`]): it lowers neither the ceiling nor
    /// the layers.
    #[must_use]
    pub fn probe_fallout(&self, now: Instant) -> bool {
        self.failed_probe
            .is_some_and(|t| now.saturating_duration_since(t) < PROBE_FALLOUT)
            && self.ceiling(now).is_some()
    }

    /// A probe carried `bps`: at [`LIFT`] times the ceiling or more, the
    /// ceiling ends. Returns whether it did.
    pub fn on_probe(&mut self, now: Instant, bps: u64) -> bool {
        let lifted = self
            .ceiling(now)
            .is_some_and(|c| bps >= c.saturating_mul(LIFT));
        if lifted {
            self.len = 0;
            self.at = None;
        }
        lifted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_through_a_bucket_does_not_set_the_ceiling() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut c = LossCeiling::default();
        assert_eq!(c.ceiling(t0), None);
        // A policer passes ~300 kbit/s; one pass saw a probe get through.
        for (i, bps) in [300_000, 290_000, 420_000, 280_000, 305_000]
            .into_iter()
            .enumerate()
        {
            c.on_lossy(ms(500 * i as u64), bps);
        }
        assert_eq!(c.ceiling(ms(2_500)), Some(300_000));
        // Only the last five count.
        c.on_lossy(ms(3_000), 200_000);
        assert_eq!(c.ceiling(ms(3_000)), Some(290_000));
    }

    #[test]
    fn it_holds_for_its_time_and_a_probe_of_three_times_it_ends_it() {
        let t0 = Instant::now();
        let mut c = LossCeiling::default();
        c.on_lossy(t0, 300_000);
        assert_eq!(
            c.ceiling(t0 + HOLD - Duration::from_millis(1)),
            Some(300_000)
        );
        assert_eq!(c.ceiling(t0 + HOLD), None);
        // A new run of losses starts afresh.
        c.on_lossy(t0 + HOLD, 500_000);
        assert_eq!(c.ceiling(t0 + HOLD), Some(500_000));
        let t1 = t0 + HOLD + Duration::from_secs(1);
        assert!(!c.on_probe(t1, 1_400_000), "2.8x: a bucket may pass it");
        assert_eq!(c.ceiling(t1), Some(500_000));
        assert!(c.on_probe(t1, 1_500_000));
        assert_eq!(c.ceiling(t1), None);
    }

    #[test]
    fn loss_right_after_a_probe_failed_under_the_ceiling_is_the_probes() {
        let t0 = Instant::now();
        let ms = |m: u64| t0 + Duration::from_millis(m);
        let mut c = LossCeiling::default();
        // No ceiling: a failed probe is news of the path.
        c.on_probe_failed(t0);
        assert!(!c.probe_fallout(t0));
        c.on_lossy(ms(100), 300_000);
        c.on_probe_failed(ms(5_000));
        assert!(c.probe_fallout(ms(5_000)));
        assert!(c.probe_fallout(ms(5_999)));
        assert!(!c.probe_fallout(ms(6_000)));
    }
}
