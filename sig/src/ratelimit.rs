//! Token-bucket rate limits on signaling messages, sans-IO (fed `Instant`s):
//! per connection, and per client IP address across all its connections.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::RateLimits;

/// A token bucket: holds up to `capacity` tokens, refilled at `capacity`
/// per `period`; each allowed event takes one.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    capacity: f64,
    per_sec: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket allowing `capacity` events per `period` (bursts up to `capacity`).
    pub fn new(capacity: u32, period: Duration, now: Instant) -> Self {
        let capacity = f64::from(capacity.max(1));
        Self {
            capacity,
            per_sec: capacity / period.as_secs_f64().max(1e-3),
            tokens: capacity,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * self.per_sec).min(self.capacity);
        self.last = self.last.max(now);
    }

    /// Takes a token if one is there; false means over the limit.
    pub fn allow(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// True when the bucket has refilled completely (nothing to remember).
    pub fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.capacity
    }
}

/// Which limit a message exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    /// Messages per second of this connection.
    ConnMessages,
    /// Messages per second of this IP address.
    IpMessages,
    /// Joins per minute of this connection.
    ConnJoins,
    /// Joins per minute of this IP address.
    IpJoins,
}

impl Exceeded {
    /// The message for the `rate-limited` error.
    pub fn describe(self, l: &RateLimits) -> String {
        match self {
            Self::ConnMessages => format!(
                "more than {} messages per second on this connection; message dropped",
                l.messages_per_second
            ),
            Self::IpMessages => format!(
                "more than {} messages per second from your address; message dropped",
                l.messages_per_second_per_ip
            ),
            Self::ConnJoins => format!(
                "more than {} joins per minute on this connection; join dropped",
                l.joins_per_minute
            ),
            Self::IpJoins => format!(
                "more than {} joins per minute from your address; join dropped",
                l.joins_per_minute_per_ip
            ),
        }
    }
}

/// The limits of one connection.
#[derive(Debug)]
pub struct ConnLimiter {
    messages: TokenBucket,
    joins: TokenBucket,
}

impl ConnLimiter {
    /// Full buckets for `limits`.
    pub fn new(limits: &RateLimits, now: Instant) -> Self {
        Self {
            messages: TokenBucket::new(limits.messages_per_second, Duration::from_secs(1), now),
            joins: TokenBucket::new(limits.joins_per_minute, Duration::from_secs(60), now),
        }
    }
}

#[derive(Debug)]
struct IpBuckets {
    messages: TokenBucket,
    joins: TokenBucket,
}

/// The limits of every client IP address, shared by its connections. The
/// table forgets addresses whose buckets are full again, so it holds only
/// recently active ones.
#[derive(Debug)]
pub struct IpLimiter {
    limits: RateLimits,
    table: Mutex<HashMap<IpAddr, IpBuckets>>,
}

/// Past this many addresses the table is swept of idle ones.
const SWEEP_AT: usize = 4096;

impl IpLimiter {
    /// An empty table for `limits`.
    pub fn new(limits: RateLimits) -> Self {
        Self {
            limits,
            table: Mutex::new(HashMap::new()),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &RateLimits {
        &self.limits
    }

    /// Takes a token from the connection's bucket, then from the address's
    /// (`pick` chooses which of the two), naming the limit that was reached.
    fn take(
        &self,
        conn: &mut TokenBucket,
        ip: IpAddr,
        now: Instant,
        pick: fn(&mut IpBuckets) -> &mut TokenBucket,
        errors: (Exceeded, Exceeded),
    ) -> Result<(), Exceeded> {
        if !conn.allow(now) {
            return Err(errors.0);
        }
        let Ok(mut table) = self.table.lock() else {
            return Ok(());
        };
        if table.len() >= SWEEP_AT && !table.contains_key(&ip) {
            table.retain(|_, b| !(b.messages.is_full(now) && b.joins.is_full(now)));
        }
        let l = &self.limits;
        let b = table.entry(ip).or_insert_with(|| IpBuckets {
            messages: TokenBucket::new(l.messages_per_second_per_ip, Duration::from_secs(1), now),
            joins: TokenBucket::new(l.joins_per_minute_per_ip, Duration::from_secs(60), now),
        });
        if pick(b).allow(now) {
            Ok(())
        } else {
            Err(errors.1)
        }
    }

    /// Checks one message of connection `conn` from address `ip`, before it
    /// is parsed; `Err` names the limit it exceeds (drop the message then).
    /// The connection's own limit is checked first, so a flooding connection
    /// does not use up its address's allowance.
    pub fn check_message(
        &self,
        conn: &mut ConnLimiter,
        ip: IpAddr,
        now: Instant,
    ) -> Result<(), Exceeded> {
        self.take(
            &mut conn.messages,
            ip,
            now,
            |b| &mut b.messages,
            (Exceeded::ConnMessages, Exceeded::IpMessages),
        )
    }

    /// Checks a `join` (after [`Self::check_message`]).
    pub fn check_join(
        &self,
        conn: &mut ConnLimiter,
        ip: IpAddr,
        now: Instant,
    ) -> Result<(), Exceeded> {
        self.take(
            &mut conn.joins,
            ip,
            now,
            |b| &mut b.joins,
            (Exceeded::ConnJoins, Exceeded::IpJoins),
        )
    }

    /// Addresses remembered now.
    pub fn tracked(&self) -> usize {
        self.table.lock().map_or(0, |t| t.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> RateLimits {
        RateLimits {
            messages_per_second: 5,
            messages_per_second_per_ip: 8,
            joins_per_minute: 2,
            joins_per_minute_per_ip: 3,
        }
    }

    #[test]
    fn bucket_allows_a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(4, Duration::from_secs(1), t0);
        assert_eq!((0..6).filter(|_| b.allow(t0)).count(), 4, "burst of 4");
        assert!(!b.allow(t0 + Duration::from_millis(100)));
        assert!(
            b.allow(t0 + Duration::from_millis(260)),
            "one token per 250 ms"
        );
        assert!(!b.allow(t0 + Duration::from_millis(260)));
        assert!(b.is_full(t0 + Duration::from_secs(5)));
    }

    #[test]
    fn each_limit_applies_and_names_itself() {
        let t0 = Instant::now();
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        let lim = IpLimiter::new(limits());
        let mut a = ConnLimiter::new(&limits(), t0);
        let mut b = ConnLimiter::new(&limits(), t0);
        // Connection a: 5 messages, then its own limit.
        for _ in 0..5 {
            assert_eq!(lim.check_message(&mut a, ip, t0), Ok(()));
        }
        assert_eq!(
            lim.check_message(&mut a, ip, t0),
            Err(Exceeded::ConnMessages)
        );
        // Connection b from the same address: 3 more reach the address's 8.
        for _ in 0..3 {
            assert_eq!(lim.check_message(&mut b, ip, t0), Ok(()));
        }
        assert_eq!(lim.check_message(&mut b, ip, t0), Err(Exceeded::IpMessages));
        // Another address is not affected.
        let other: IpAddr = "192.0.2.2".parse().expect("ip");
        let mut c = ConnLimiter::new(&limits(), t0);
        assert_eq!(lim.check_join(&mut c, other, t0), Ok(()));
        // Joins: 2 per connection per minute, 3 per address.
        let t1 = t0 + Duration::from_secs(2);
        let mut d = ConnLimiter::new(&limits(), t1);
        let mut e = ConnLimiter::new(&limits(), t1);
        assert_eq!(lim.check_join(&mut d, ip, t1), Ok(()));
        assert_eq!(lim.check_join(&mut d, ip, t1), Ok(()));
        assert_eq!(lim.check_join(&mut d, ip, t1), Err(Exceeded::ConnJoins));
        assert_eq!(lim.check_join(&mut e, ip, t1), Ok(()));
        assert_eq!(lim.check_join(&mut e, ip, t1), Err(Exceeded::IpJoins));
    }

    #[test]
    fn the_address_table_forgets_idle_addresses() {
        let t0 = Instant::now();
        let lim = IpLimiter::new(limits());
        for i in 0..SWEEP_AT as u32 {
            let mut c = ConnLimiter::new(&limits(), t0);
            let ip = IpAddr::from(i.to_be_bytes());
            assert!(lim.check_message(&mut c, ip, t0).is_ok());
        }
        assert_eq!(lim.tracked(), SWEEP_AT);
        let later = t0 + Duration::from_secs(120);
        let mut c = ConnLimiter::new(&limits(), later);
        assert!(
            lim.check_message(&mut c, "198.51.100.7".parse().expect("ip"), later)
                .is_ok()
        );
        assert_eq!(lim.tracked(), 1, "idle addresses swept");
    }
}
