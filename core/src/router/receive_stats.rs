//! What a receiver reports about one incoming RTP stream (RFC 3550 §6.4.1):
//! packets lost (cumulative and as a fraction since the last report), the
//! extended highest sequence number, and the interarrival jitter, computed
//! as RFC 3550 Appendix A.3 and A.8 describe. Sans-IO: times are given.

use std::time::{Duration, Instant};

use crate::ids::{SeqNo, Ssrc};
use crate::proto::rtcp::ReportBlock;

/// One stream's receive statistics.
#[derive(Debug, Clone)]
pub struct ReceiveStats {
    clock_rate: u32,
    /// First extended sequence number (the base of RFC 3550 A.3).
    base: Option<u64>,
    highest: u64,
    received: u64,
    expected_prior: u64,
    received_prior: u64,
    /// Interarrival jitter in RTP ticks, ×16 (A.8's integer form).
    jitter_x16: u64,
    last_transit: Option<i64>,
    /// Arrival-clock zero.
    epoch: Option<Instant>,
    /// The last SR: its NTP middle 32 bits and when it arrived.
    last_sr: Option<(u32, Instant)>,
}

impl ReceiveStats {
    /// Statistics of a stream with RTP clock `clock_rate` Hz (90,000 video, 48,000 Opus).
    pub fn new(clock_rate: u32) -> Self {
        Self {
            clock_rate: clock_rate.max(1),
            base: None,
            highest: 0,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            jitter_x16: 0,
            last_transit: None,
            epoch: None,
            last_sr: None,
        }
    }

    /// Records a packet with sequence number `seq` and RTP timestamp
    /// `timestamp` that arrived at `now` (on the media SSRC: a packet
    /// recovered through RTX is not a reception of this stream).
    pub fn on_packet(&mut self, now: Instant, seq: u16, timestamp: u32) {
        self.received += 1;
        match self.base {
            None => {
                self.base = Some(SeqNo::first(seq).0);
                self.highest = SeqNo::first(seq).0;
            }
            Some(_) => {
                let ext = SeqNo(self.highest).unwrap(seq).0;
                self.highest = self.highest.max(ext);
            }
        }
        // A.8: transit = arrival - timestamp, both in RTP ticks.
        let epoch = *self.epoch.get_or_insert(now);
        // µs × clock fits u64 for millennia of stream time; no u128 division.
        let us = now.saturating_duration_since(epoch).as_micros() as u64;
        let arrival = (us * u64::from(self.clock_rate) / 1_000_000) as i64;
        let transit = arrival - i64::from(timestamp);
        if let Some(last) = self.last_transit {
            let d = (transit - last).unsigned_abs();
            // J += (|D| - J) / 16, kept ×16 in integers as A.8 does.
            self.jitter_x16 = self.jitter_x16 + d - ((self.jitter_x16 + 8) >> 4);
        }
        self.last_transit = Some(transit);
    }

    /// Records a sender report: its NTP timestamp, received at `now`.
    pub fn on_sender_report(&mut self, now: Instant, ntp: u64) {
        self.last_sr = Some(((ntp >> 16) as u32, now));
    }

    /// Interarrival jitter, RTP ticks.
    pub fn jitter(&self) -> u32 {
        (self.jitter_x16 >> 4).min(u64::from(u32::MAX)) as u32
    }

    /// The report block about `ssrc` at `now`, and the start of the next
    /// interval; `None` before the first packet.
    pub fn report(&mut self, now: Instant, ssrc: Ssrc) -> Option<ReportBlock> {
        let base = self.base?;
        let expected = self.highest - base + 1;
        let lost = expected as i64 - self.received as i64;
        let expected_interval = expected - self.expected_prior;
        let received_interval = self.received - self.received_prior;
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = expected_interval as i64 - received_interval as i64;
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / expected_interval as i64).min(255) as u8
        };
        let (lsr, dlsr) = match self.last_sr {
            Some((lsr, at)) => (lsr, to_1_65536(now.saturating_duration_since(at))),
            None => (0, 0),
        };
        Some(ReportBlock {
            ssrc,
            fraction_lost,
            cumulative_lost: lost.clamp(-0x80_0000, 0x7f_ffff) as i32,
            ext_highest_seq: self.highest as u32,
            jitter: self.jitter(),
            lsr,
            dlsr,
        })
    }
}

/// A duration in units of 1/65536 s (RFC 3550 §6.4.1 DLSR).
pub fn to_1_65536(d: Duration) -> u32 {
    ((d.as_nanos() << 16) / 1_000_000_000).min(u128::from(u32::MAX)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_fraction_extended_highest_and_jitter_follow_rfc3550() {
        let t0 = Instant::now();
        let mut s = ReceiveStats::new(90_000);
        // 100 packets across the sequence wrap, every 10th lost; sent 10 ms
        // apart by RTP time but arriving alternately 5 and 15 ms apart.
        let mut arrival = t0;
        for i in 0..100u32 {
            let seq = 65_500u16.wrapping_add(i as u16);
            arrival += Duration::from_millis(if i % 2 == 0 { 5 } else { 15 });
            if i % 10 != 9 {
                s.on_packet(arrival, seq, i * 900);
            }
        }
        let b = s.report(arrival, Ssrc(7)).expect("a block");
        assert_eq!(b.cumulative_lost, 9, "packet 99 is not known missing yet");
        // 65,500 + 98 wrapped once: cycle count 1 in the high 16 bits.
        assert_eq!(b.ext_highest_seq, (1 << 16) | 62);
        assert_eq!(b.fraction_lost, (9 * 256 / 99) as u8);
        // |D| is 450 ticks (5 ms), except 0 across each loss (two intervals
        // of 20 ms): J settles a little under 450.
        assert!((380..=450).contains(&b.jitter), "jitter {}", b.jitter);
        // The next interval: 10 more packets; 99 is now known lost (1 of 11).
        for i in 100..110u32 {
            arrival += Duration::from_millis(10);
            s.on_packet(arrival, 65_500u16.wrapping_add(i as u16), i * 900);
        }
        let b = s.report(arrival, Ssrc(7)).expect("a block");
        assert_eq!(b.fraction_lost, (256 / 11) as u8);
        assert_eq!(b.cumulative_lost, 10, "packet 99 never came");
        assert_eq!((b.lsr, b.dlsr), (0, 0), "no SR yet");
        s.on_sender_report(arrival, 0x1122_3344_5566_7788);
        let b = s
            .report(arrival + Duration::from_millis(500), Ssrc(7))
            .expect("a block");
        assert_eq!((b.lsr, b.dlsr), (0x3344_5566, 32_768));
    }
}
