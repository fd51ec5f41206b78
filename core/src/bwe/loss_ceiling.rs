//! What a subscriber's path carried while it lost packets: the rate its
//! layers climb no higher than for [`HOLD`] after (or until a chain of
//! probes carries [`LIFT_EXCESS`] of it beyond it).
//!
//! A policer's token bucket lets an estimate run past the policed rate for
//! seconds before it drops anything (a bucket of one second's rate takes
//! ~10 s to empty at 10 % over), then drops the tails of frame bursts.
//! Without a ceiling, each climb runs into the same wall every few
//! seconds. The ceiling is the median of the last [`SAMPLES`] rates the
//! subscriber acknowledged while losing (transport-wide feedback over
//! 500 ms): one taken as a probe or a burst of resends passed the bucket
//! reads far above the policed rate and must not set it. A probe above
//! the ceiling spends the bucket, which then refills only as fast as the
//! media leaves room: the loss of the [`PROBE_FALLOUT`] after such a probe
//! is the probe's own and counts for nothing. Sans-IO: fed the time and
//! the rates.

use std::time::{Duration, Instant};

use super::probe::CLUSTER;

/// How long the ceiling holds after the last lossy sample. Under a cap
/// that stays, its end is a try of the layers above it, which costs each
/// video a freeze of up to a second while the policer's bucket is empty
/// and the resends wait: once a minute, not twice. A cap that is lifted
/// ends it sooner, by probes ([`LIFT_EXCESS`]).
pub const HOLD: Duration = Duration::from_secs(60);
/// A chain of probes ends the ceiling once what its clusters carried above
/// it adds up to this long at the ceiling's rate: more than a policer's
/// bucket holds (nftables' `limit rate` holds one second's rate when no
/// burst is given) and refills between probes. By its rate alone a probe
/// says nothing: an estimate already above a policed rate reaches three
/// times it in two 1.5× probes, which a full bucket passes.
pub const LIFT_EXCESS: Duration = Duration::from_millis(1_500);
/// Probes farther apart than this are not one chain: the bucket has had
/// time to refill between them. After one that passed, the next starts
/// 0.5–1 s on (`probe::CHAIN_INTERVAL`, then the next layer pass), and each
/// is measured ~½ s after it starts.
pub const CHAIN_GAP: Duration = Duration::from_millis(2_500);
/// Lossy samples the median is taken over.
pub const SAMPLES: usize = 5;
/// Loss this soon after a probe above the ceiling (one that failed, or
/// passed without ending it) is the probe's doing: it emptied the
/// policer's bucket, which refills once the probe stops, at the rate the
/// media leaves free (~10 % of the policed rate in a full path, more while
/// the consumers make room, `router::allocation::RELIEF`). It says nothing
/// new of the path.
pub const PROBE_FALLOUT: Duration = Duration::from_secs(2);

/// A subscriber's loss ceiling.
#[derive(Debug, Clone, Default)]
pub struct LossCeiling {
    /// The last `len` samples, bit/s, oldest first.
    samples: [u64; SAMPLES],
    len: usize,
    /// When the last was taken.
    at: Option<Instant>,
    /// When a probe above the ceiling last ended while it held.
    probed: Option<Instant>,
    /// Bits the current chain of passed probes carried above the ceiling.
    chain_excess: u64,
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

    /// The ceiling at `now`, bit/s: the median of the samples (the mean of
    /// the middle two of an even count), or `None` once [`HOLD`] has passed
    /// since the last. A sample taken in a 500 ms window reads ±10 % about
    /// a policed rate (the bucket lets a burst through, or has just been
    /// emptied): the lower of two would hold the layers one such error
    /// below the path for the whole hold.
    #[must_use]
    pub fn ceiling(&self, now: Instant) -> Option<u64> {
        let at = self.at?;
        if now.saturating_duration_since(at) >= HOLD || self.len == 0 {
            return None;
        }
        let mut s = self.samples;
        let s = &mut s[..self.len];
        s.sort_unstable();
        let n = s.len();
        Some(if n % 2 == 1 {
            s[n / 2]
        } else {
            s[n / 2 - 1] / 2 + s[n / 2] / 2
        })
    }

    /// A probe failed at `now` (it lost packets): while the ceiling holds,
    /// the loss of the next [`PROBE_FALLOUT`] is its doing, and the chain
    /// of probes it ended starts afresh.
    pub fn on_probe_failed(&mut self, now: Instant) {
        self.chain_excess = 0;
        if self.ceiling(now).is_some() {
            self.probed = Some(now);
        }
    }

    /// Whether loss at `now` is a probe's fallout (see
    /// [`LossCeiling::on_probe_failed`], [`LossCeiling::on_probe`]): it
    /// lowers neither the ceiling nor the layers.
    #[must_use]
    pub fn probe_fallout(&self, now: Instant) -> bool {
        self.probed
            .is_some_and(|t| now.saturating_duration_since(t) < PROBE_FALLOUT)
            && self.ceiling(now).is_some()
    }

    /// A probe of [`CLUSTER`] passed at `now`, carrying `bps`. Above the
    /// ceiling it spent that much of a policer's bucket: its loss
    /// afterwards is fallout, and it adds to its chain's excess (a chain
    /// is probes less than [`CHAIN_GAP`] apart). Once the chain's excess
    /// reaches [`LIFT_EXCESS`] at the ceiling's rate, no bucket explains it
    /// and the ceiling ends. Returns whether it did.
    pub fn on_probe(&mut self, now: Instant, bps: u64) -> bool {
        let Some(c) = self.ceiling(now) else {
            return false;
        };
        if bps <= c {
            return false;
        }
        if self
            .probed
            .is_none_or(|t| now.saturating_duration_since(t) >= CHAIN_GAP)
        {
            self.chain_excess = 0;
        }
        self.probed = Some(now);
        self.chain_excess += ((bps - c) as f64 * CLUSTER.as_secs_f64()) as u64;
        let lifted = self.chain_excess as f64 >= c as f64 * LIFT_EXCESS.as_secs_f64();
        if lifted {
            self.len = 0;
            self.at = None;
            self.probed = None;
            self.chain_excess = 0;
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
    fn of_two_samples_the_ceiling_is_their_mean() {
        let t0 = Instant::now();
        let mut c = LossCeiling::default();
        c.on_lossy(t0, 297_000);
        c.on_lossy(t0 + Duration::from_secs(5), 262_000);
        assert_eq!(c.ceiling(t0 + Duration::from_secs(5)), Some(279_500));
    }

    #[test]
    fn it_holds_for_its_time_and_a_chain_of_probes_past_any_bucket_ends_it() {
        let t0 = Instant::now();
        let mut c = LossCeiling::default();
        c.on_lossy(t0, 300_000);
        assert_eq!(
            c.ceiling(t0 + HOLD - Duration::from_millis(1)),
            Some(300_000)
        );
        assert_eq!(c.ceiling(t0 + HOLD), None);
        // A new run of losses starts afresh.
        c.on_lossy(t0 + HOLD, 300_000);
        assert_eq!(c.ceiling(t0 + HOLD), Some(300_000));
        let s = |n: u64| t0 + HOLD + Duration::from_secs(n);
        // An estimate at 420 kbit/s probes 1.5x: 630k, 945k. Three times
        // the ceiling, but 0.8 s of it over, all told: a bucket of a
        // second's rate passed them.
        assert!(!c.on_probe(s(1), 630_000));
        assert!(!c.on_probe(s(2), 945_000));
        assert_eq!(c.ceiling(s(2)), Some(300_000));
        // A third that is not of the chain starts a new one.
        assert!(!c.on_probe(s(6), 1_420_000));
        assert_eq!(c.ceiling(s(6)), Some(300_000));
        // The next, 1 s on, brings the chain past 1.5 s of it: no bucket.
        assert!(c.on_probe(s(7), 2_130_000));
        assert_eq!(c.ceiling(s(7)), None);
    }

    #[test]
    fn a_failed_probe_ends_its_chain() {
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        let mut c = LossCeiling::default();
        c.on_lossy(t0, 300_000);
        assert!(!c.on_probe(s(1), 1_400_000));
        c.on_probe_failed(s(2));
        assert!(!c.on_probe(s(3), 1_400_000), "0.92 s of it over");
        assert!(c.on_probe(s(4), 1_400_000), "1.83 s");
    }

    #[test]
    fn loss_right_after_a_probe_above_the_ceiling_is_the_probes() {
        let t0 = Instant::now();
        let ms = |m: u64| t0 + Duration::from_millis(m);
        let mut c = LossCeiling::default();
        // No ceiling: a failed probe is news of the path.
        c.on_probe_failed(t0);
        assert!(!c.probe_fallout(t0));
        c.on_lossy(ms(100), 300_000);
        c.on_probe_failed(ms(5_000));
        assert!(c.probe_fallout(ms(5_000)));
        assert!(c.probe_fallout(ms(6_999)));
        assert!(!c.probe_fallout(ms(7_000)));
        // One that passed, above it, spent the bucket as well; one below
        // it did not.
        assert!(!c.on_probe(ms(10_000), 290_000));
        assert!(!c.probe_fallout(ms(10_000)));
        assert!(!c.on_probe(ms(10_000), 450_000));
        assert!(c.probe_fallout(ms(11_999)));
    }
}
