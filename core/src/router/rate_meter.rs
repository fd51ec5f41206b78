//! A rate measured from a growing byte counter now and then (a producer
//! encoding's received bytes, what a transport was sent).

use std::time::{Duration, Instant};

/// The rate of a byte counter between its last two samples.
#[derive(Debug, Clone, Copy, Default)]
pub struct RateMeter {
    at: Option<Instant>,
    bytes: u64,
    bps: u64,
}

impl RateMeter {
    /// Takes the counter's `total` at `now`: the rate becomes the bytes
    /// since the previous sample over the time since, bit/s. A sample less
    /// than `min_span` after the previous one is ignored (the rate stays).
    pub fn sample(&mut self, now: Instant, total: u64, min_span: Duration) {
        let span = self.at.map(|t| now.saturating_duration_since(t));
        if span.is_some_and(|s| s < min_span) {
            return;
        }
        let secs = span.map_or(0.0, |s| s.as_secs_f64());
        self.bps = if secs > 0.0 {
            (total.saturating_sub(self.bytes) as f64 * 8.0 / secs) as u64
        } else {
            0
        };
        self.at = Some(now);
        self.bytes = total;
    }

    /// The last measured rate, bit/s (0 before two samples).
    pub fn bps(&self) -> u64 {
        self.bps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_between_samples_and_ignores_early_ones() {
        let t0 = Instant::now();
        let s = |ms| t0 + Duration::from_millis(ms);
        let mut m = RateMeter::default();
        m.sample(t0, 1_000, Duration::ZERO);
        assert_eq!(m.bps(), 0);
        m.sample(s(1000), 126_000, Duration::from_millis(900));
        assert_eq!(m.bps(), 1_000_000);
        // Too soon: kept.
        m.sample(s(1500), 200_000, Duration::from_millis(900));
        assert_eq!(m.bps(), 1_000_000);
        m.sample(s(2000), 188_500, Duration::from_millis(900));
        assert_eq!(m.bps(), 500_000);
    }
}
