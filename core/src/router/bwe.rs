//! A subscriber's available bandwidth, from the loss it reports: the
//! loss-based controller of Google Congestion Control
//! (draft-ietf-rmcat-gcc-02 §6), fed with the fraction lost of the
//! receiver reports (RFC 3550 §6.4.1) the subscriber sends about our
//! consumers. It only ever lowers what publishers send when the subscriber
//! has seen real congestion (loss above 10 %): a subscriber that merely
//! receives less than it could caps nothing.

use std::time::{Duration, Instant};

/// Loss above this fraction is congestion: decrease.
pub const DECREASE_ABOVE: f64 = 0.10;
/// Loss below this fraction: increase by [`INCREASE`].
pub const INCREASE_BELOW: f64 = 0.02;
/// Multiplicative increase per report without loss.
pub const INCREASE: f64 = 1.05;
/// The estimate never goes below this, bit/s (a thumbnail still gets through).
pub const MIN_BPS: u64 = 50_000;
/// Nor above this, bit/s.
pub const MAX_BPS: u64 = 100_000_000;
/// An estimate caps publishers for this long after the last congestion.
pub const HOLD: Duration = Duration::from_secs(10);

/// One subscriber transport's loss-based estimate.
#[derive(Debug, Clone)]
pub struct LossBasedEstimate {
    bps: u64,
    last_congestion: Option<Instant>,
}

impl Default for LossBasedEstimate {
    fn default() -> Self {
        Self {
            bps: MAX_BPS,
            last_congestion: None,
        }
    }
}

impl LossBasedEstimate {
    /// Takes a report: `fraction_lost` (of 256) over an interval in which we
    /// sent the subscriber `sending_bps`.
    pub fn on_report(&mut self, now: Instant, fraction_lost: u8, sending_bps: u64) {
        let p = f64::from(fraction_lost) / 256.0;
        if p > DECREASE_ABOVE {
            // From what was really sent, not from a stale higher estimate.
            let base = self.bps.min(sending_bps.max(MIN_BPS)) as f64;
            self.bps = ((base * (1.0 - 0.5 * p)) as u64).max(MIN_BPS);
            self.last_congestion = Some(now);
        } else if p < INCREASE_BELOW {
            self.bps = ((self.bps as f64 * INCREASE) as u64).min(MAX_BPS);
        }
    }

    /// The estimate, bit/s.
    pub fn bps(&self) -> u64 {
        self.bps
    }

    /// The estimate when it should cap what publishers send to this
    /// subscriber: only within [`HOLD`] of congestion.
    ///
    /// A subscriber's own REMB is not used here: measured in Chromium with
    /// a 200 kbit/s downlink (scripts/quality.sh cap200), capping at it drove
    /// the publisher down to 81 kbit/s and 10 fps, as Chromium's receive-side
    /// estimate follows the incoming rate down.
    pub fn cap(&self, now: Instant) -> Option<u64> {
        self.last_congestion
            .filter(|t| now.saturating_duration_since(*t) < HOLD)
            .map(|_| self.bps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heavy_loss_decreases_from_the_sending_rate_and_light_loss_holds() {
        let t0 = Instant::now();
        let mut e = LossBasedEstimate::default();
        assert_eq!(e.cap(t0), None, "no congestion seen: no cap");
        e.on_report(t0, 13, 500_000); // 5 %: hold
        assert_eq!(e.cap(t0), None);
        e.on_report(t0, 128, 500_000); // 50 %: 500 k × 0.75
        assert_eq!(e.cap(t0), Some(375_000));
        e.on_report(t0, 128, 500_000);
        assert_eq!(
            e.bps(),
            281_250,
            "from the estimate now below what was sent"
        );
        e.on_report(t0, 0, 300_000);
        assert_eq!(e.bps(), 295_312);
        assert!(e.cap(t0 + HOLD - Duration::from_millis(1)).is_some());
        assert_eq!(e.cap(t0 + HOLD), None, "the cap lifts after the hold");
        for _ in 0..200 {
            e.on_report(t0, 255, 0);
        }
        assert_eq!(e.bps(), MIN_BPS);
    }
}
