//! Loss detection on a publisher's stream and the NACKs that ask for the
//! missing packets again (RFC 4585 §6.2.1 Generic NACK), sans-IO.
//!
//! The algorithm is the usual receiver-side one (libwebrtc's NACK module
//! and mediasoup's NackGenerator work the same way; this is our own code):
//! a gap in the extended sequence numbers (RFC 3550 §A.1) marks each
//! skipped packet missing; after a short reorder tolerance it is NACKed,
//! and again once per round-trip time until it arrives, it has been asked
//! for [`MAX_RETRIES`] times, or it is [`MAX_AGE`] old. Then the packet is
//! given up and the caller asks for a keyframe, since frames after it may
//! not decode. A gap too large to track also asks for a keyframe.

use std::time::{Duration, Instant};

use crate::ids::SeqNo;

/// Missing packets tracked at most; a larger gap is not NACKed packet by
/// packet (a keyframe is cheaper than hundreds of retransmissions).
pub const MAX_MISSING: usize = 512;
/// NACKs per missing packet at most.
pub const MAX_RETRIES: u8 = 10;
/// A missing packet is given up this long after it was found missing.
pub const MAX_AGE: Duration = Duration::from_secs(1);
/// Retries are never closer than this, however short the RTT.
pub const MIN_RETRY_INTERVAL: Duration = Duration::from_millis(20);

#[derive(Debug, Clone, Copy)]
struct Missing {
    seq: u64,
    since: Instant,
    sent: u8,
    last_sent: Option<Instant>,
}

/// What an arriving packet was, for the stream's counters and forwarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// In order, or ahead with a gap (the gap is now tracked).
    New,
    /// A packet that was missing (retransmitted, or reordered).
    Recovered,
    /// Older than the highest and not missing: a duplicate or very late.
    Old,
    /// A gap larger than [`MAX_MISSING`]: tracking restarted; ask for a keyframe.
    Reset,
}

/// Per-stream loss tracker.
#[derive(Debug)]
pub struct NackGenerator {
    highest: Option<u64>,
    missing: Vec<Missing>,
    reorder_delay: Duration,
}

impl NackGenerator {
    /// A tracker that NACKs a missing packet `reorder_delay` after it was
    /// found missing (a packet arriving out of order within it costs no NACK).
    pub fn new(reorder_delay: Duration) -> Self {
        Self {
            highest: None,
            missing: Vec::with_capacity(64),
            reorder_delay,
        }
    }

    /// Packets currently missing.
    pub fn missing(&self) -> usize {
        self.missing.len()
    }

    /// Records the arrival of `seq` at `now`.
    pub fn on_packet(&mut self, now: Instant, seq: u16) -> Arrival {
        let Some(h) = self.highest else {
            self.highest = Some(SeqNo::first(seq).0);
            return Arrival::New;
        };
        let ext = SeqNo(h).unwrap(seq).0;
        if ext > h {
            self.highest = Some(ext);
            let gap = (ext - h - 1) as usize;
            if gap == 0 {
                return Arrival::New;
            }
            if self.missing.len() + gap > MAX_MISSING {
                self.missing.clear();
                return Arrival::Reset;
            }
            self.missing.extend((h + 1..ext).map(|seq| Missing {
                seq,
                since: now,
                sent: 0,
                last_sent: None,
            }));
            return Arrival::New;
        }
        match self.missing.binary_search_by_key(&ext, |m| m.seq) {
            Ok(i) => {
                self.missing.remove(i);
                Arrival::Recovered
            }
            Err(_) => Arrival::Old,
        }
    }

    /// Appends to `out` the sequence numbers to NACK now (with `rtt`
    /// between retries) and to `given_up` those it stops asking for, and
    /// returns how many packets were given up.
    pub fn poll(
        &mut self,
        now: Instant,
        rtt: Duration,
        out: &mut Vec<u16>,
        given_up: &mut Vec<u16>,
    ) -> usize {
        let retry = rtt.max(MIN_RETRY_INTERVAL);
        let before = self.missing.len();
        self.missing.retain(|m| {
            let keep = m.sent < MAX_RETRIES && now.saturating_duration_since(m.since) < MAX_AGE;
            if !keep {
                given_up.push(m.seq as u16);
            }
            keep
        });
        let gave_up = before - self.missing.len();
        for m in &mut self.missing {
            let due = match m.last_sent {
                None => m.since + self.reorder_delay,
                Some(t) => t + retry,
            };
            if due <= now {
                out.push(m.seq as u16);
                m.sent += 1;
                m.last_sent = Some(now);
            }
        }
        gave_up
    }

    /// When [`Self::poll`] next has something to do, if anything is missing.
    pub fn next_deadline(&self, rtt: Duration) -> Option<Instant> {
        let retry = rtt.max(MIN_RETRY_INTERVAL);
        self.missing
            .iter()
            .map(|m| {
                let due = match m.last_sent {
                    None => m.since + self.reorder_delay,
                    Some(t) => t + retry,
                };
                due.min(m.since + MAX_AGE)
            })
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RTT: Duration = Duration::from_millis(100);

    #[test]
    fn a_gap_is_nacked_after_the_reorder_delay_then_once_per_rtt() {
        let t0 = Instant::now();
        let mut g = NackGenerator::new(Duration::from_millis(5));
        let (mut out, mut lost) = (Vec::new(), Vec::new());
        assert_eq!(g.on_packet(t0, 10), Arrival::New);
        assert_eq!(g.on_packet(t0, 13), Arrival::New);
        assert_eq!(g.missing(), 2);
        assert_eq!(g.poll(t0, RTT, &mut out, &mut lost), 0);
        assert!(out.is_empty(), "inside the reorder tolerance");
        assert_eq!(g.next_deadline(RTT), Some(t0 + Duration::from_millis(5)));
        g.poll(t0 + Duration::from_millis(5), RTT, &mut out, &mut lost);
        assert_eq!(out, [11, 12]);
        out.clear();
        g.poll(t0 + Duration::from_millis(50), RTT, &mut out, &mut lost);
        assert!(out.is_empty(), "not again within the RTT");
        assert_eq!(
            g.on_packet(t0 + Duration::from_millis(60), 11),
            Arrival::Recovered
        );
        g.poll(t0 + Duration::from_millis(105), RTT, &mut out, &mut lost);
        assert_eq!(out, [12], "only what is still missing");
        assert_eq!(g.on_packet(t0, 11), Arrival::Old, "a duplicate");
    }

    #[test]
    fn a_reordered_packet_costs_no_nack() {
        let t0 = Instant::now();
        let mut g = NackGenerator::new(Duration::from_millis(5));
        g.on_packet(t0, 1);
        g.on_packet(t0, 3);
        assert_eq!(
            g.on_packet(t0 + Duration::from_millis(1), 2),
            Arrival::Recovered
        );
        let (mut out, mut lost) = (Vec::new(), Vec::new());
        g.poll(t0 + Duration::from_millis(10), RTT, &mut out, &mut lost);
        assert!(out.is_empty());
        assert_eq!(g.next_deadline(RTT), None);
    }

    #[test]
    fn gives_up_after_the_retries_or_the_age_limit() {
        let t0 = Instant::now();
        let mut g = NackGenerator::new(Duration::ZERO);
        g.on_packet(t0, 65534);
        g.on_packet(t0, 1); // 65535 and 0 missing, across the wrap
        let (mut out, mut lost) = (Vec::new(), Vec::new());
        let mut t = t0;
        let mut gave_up = 0;
        for _ in 0..20 {
            gave_up += g.poll(t, Duration::from_millis(20), &mut out, &mut lost);
            t += Duration::from_millis(20);
        }
        assert_eq!(gave_up, 2);
        assert_eq!(out.len(), 2 * MAX_RETRIES as usize);
        assert!(out.iter().all(|s| *s == 65535 || *s == 0));
        assert_eq!(lost, [65535, 0], "the packets given up");
        lost.clear();
        let mut g = NackGenerator::new(Duration::ZERO);
        g.on_packet(t0, 1);
        g.on_packet(t0, 3);
        assert_eq!(
            g.poll(t0 + MAX_AGE, Duration::from_secs(10), &mut out, &mut lost),
            1,
            "too old"
        );
        assert_eq!(lost, [2]);
    }

    #[test]
    fn a_huge_gap_resets_and_asks_for_a_keyframe() {
        let t0 = Instant::now();
        let mut g = NackGenerator::new(Duration::ZERO);
        g.on_packet(t0, 0);
        assert_eq!(g.on_packet(t0, 2000), Arrival::Reset);
        assert_eq!(g.missing(), 0);
        assert_eq!(g.on_packet(t0, 2001), Arrival::New);
    }
}
