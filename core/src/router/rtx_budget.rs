//! How much a subscriber may be sent again in answer to its NACKs: a token
//! bucket in bytes, per subscriber transport, filled at a share of what
//! its path takes.
//!
//! Retransmissions travel the same path as the media. When that path is
//! full (a policer's bucket empty, a queue at its limit), what it lost was
//! lost for want of room, and a burst of resends only loses more: on
//! loopback a receiver re-NACKs every ~20 ms, and resending each time
//! turned a 250 ms probe's loss into a second of 1 Mbit/s into a
//! 300 kbit/s link. libwebrtc bounds its retransmissions by the target rate
//! (its `RateLimiter` over 1 s, `retransmission_rate_limiter_`); an SFU
//! forwards unpaced, so the share here is smaller and the burst shorter.
//! Sans-IO: fed the time and the base rate.

use std::time::{Duration, Instant};

/// The share of the base rate retransmissions may use over time.
pub const SHARE: f64 = 0.25;
/// How much of the base rate's time the bucket holds: a loss burst this
/// long is repaired at once, at up to [`SHARE`] after.
pub const BURST: Duration = Duration::from_millis(250);
/// What the rate we send a subscriber counts as at least, bit/s: that rate
/// is measured once a second, and a subscriber that just joined gets a
/// stream's keyframe and the frames since (an ingest's GOP cache) in one
/// burst, whose losses must be repaired at once. Its estimate, once one
/// limits it, still bounds the budget.
pub const MIN_BASE_BPS: u64 = 2_000_000;

/// A subscriber's retransmission bucket.
#[derive(Debug, Clone, Copy, Default)]
pub struct RtxBudget {
    /// Bytes that may be resent now.
    tokens: f64,
    /// When it was last filled; `None`: never (it starts full).
    at: Option<Instant>,
}

impl RtxBudget {
    /// The base rate (bit/s) the budget follows for a subscriber whose
    /// estimate is `estimate_bps`, whose loss ceiling (where one holds,
    /// [`crate::bwe::loss_ceiling`]) is `ceiling_bps`, and that we send
    /// `sending_bps` to: the lowest of the estimate (an estimate nobody has
    /// limited yet is no rate), the ceiling (the truer rate of a policed
    /// path, which the estimate floats above meanwhile) and the sending
    /// rate taken as at least [`MIN_BASE_BPS`].
    #[must_use]
    pub fn base_bps(estimate_bps: u64, ceiling_bps: Option<u64>, sending_bps: u64) -> u64 {
        estimate_bps
            .min(ceiling_bps.unwrap_or(u64::MAX))
            .min(sending_bps.max(MIN_BASE_BPS))
    }

    /// Fills the bucket for the time since the last call at [`SHARE`] of
    /// `base_bps` (bit/s), up to [`BURST`] of it, then takes `bytes` if
    /// they are there. Returns whether the packet may be resent.
    pub fn try_take(&mut self, now: Instant, base_bps: u64, bytes: usize) -> bool {
        let bytes_per_s = base_bps as f64 / 8.0;
        let cap = bytes_per_s * BURST.as_secs_f64();
        self.tokens = match self.at {
            None => cap,
            Some(t) => {
                let secs = now.saturating_duration_since(t).as_secs_f64();
                (self.tokens + secs * bytes_per_s * SHARE).min(cap)
            }
        };
        self.at = Some(now);
        if self.tokens < bytes as f64 {
            return false;
        }
        self.tokens -= bytes as f64;
        true
    }

    /// Returns `bytes` taken for a packet that was not sent after all.
    pub fn give_back(&mut self, bytes: usize) {
        self.tokens += bytes as f64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_repaired_at_once_then_at_the_share() {
        let t0 = Instant::now();
        let mut b = RtxBudget::default();
        // 320 kbit/s: 40,000 B/s; the bucket holds 10,000 B, refills at
        // 10,000 B/s.
        let base = 320_000;
        let sent = (0..20).take_while(|_| b.try_take(t0, base, 1_000)).count();
        assert_eq!(sent, 10);
        // 100 ms later: 1,000 B more.
        let t1 = t0 + Duration::from_millis(100);
        assert!(b.try_take(t1, base, 1_000));
        assert!(!b.try_take(t1, base, 1_000));
        // A packet that could not be sent gives its bytes back.
        b.give_back(1_000);
        assert!(b.try_take(t1, base, 1_000));
        assert!(!b.try_take(t1, base, 1_000));
        // Long idle: full again, not more.
        let t2 = t1 + Duration::from_secs(10);
        let sent = (0..20).take_while(|_| b.try_take(t2, base, 1_000)).count();
        assert_eq!(sent, 10);
    }

    #[test]
    fn the_base_is_the_estimate_or_ceiling_bounding_the_sending_rate_or_its_floor() {
        assert_eq!(RtxBudget::base_bps(100_000_000, None, 3_000_000), 3_000_000);
        assert_eq!(RtxBudget::base_bps(300_000, None, 1_000_000), 300_000);
        // Just joined: nothing measured yet, no estimate.
        assert_eq!(RtxBudget::base_bps(100_000_000, None, 0), MIN_BASE_BPS);
        // A capped path's estimate bounds it even then.
        assert_eq!(RtxBudget::base_bps(250_000, None, 0), 250_000);
        // Under a loss ceiling the estimate floats above the policed rate.
        let ceiling = Some(300_000);
        assert_eq!(RtxBudget::base_bps(450_000, ceiling, 1_000_000), 300_000);
        assert_eq!(RtxBudget::base_bps(250_000, ceiling, 1_000_000), 250_000);
    }
}
