//! The receiving side of transport-wide congestion control
//! (draft-holmer-rmcat-transport-wide-cc-extensions-01): records when each
//! packet of a publisher's transport arrived, by its transport-wide
//! sequence number, and turns the record into feedback messages every
//! [`FEEDBACK_INTERVAL`], from which the publisher's own estimator (in
//! Chromium: GCC) learns the path's capacity and ramps up.

use std::time::{Duration, Instant};

use crate::ids::{SeqNo, Ssrc};
use crate::proto::twcc::{self, Feedback, MAX_PACKETS};

/// How often feedback goes out while packets arrive (the draft suggests
/// 50–100 ms; Chromium sends about every 50 ms at typical rates).
pub const FEEDBACK_INTERVAL: Duration = Duration::from_millis(50);
/// Arrivals kept between two feedbacks at most (beyond: the oldest go).
const MAX_PENDING: usize = 4 * MAX_PACKETS;

/// One transport's arrival record.
#[derive(Debug)]
pub struct TwccReceiver {
    /// The extension's id in this transport's packets (RFC 8285).
    pub ext_id: u8,
    epoch: Instant,
    highest: Option<u64>,
    /// The first sequence number the next feedback starts at.
    next_base: Option<u64>,
    /// (extended sequence number, arrival µs since `epoch`), unsorted.
    pending: Vec<(u64, i64)>,
    fb_count: u8,
}

impl TwccReceiver {
    /// A record for packets carrying the extension as `ext_id`.
    pub fn new(ext_id: u8, now: Instant) -> Self {
        Self {
            ext_id,
            epoch: now,
            highest: None,
            next_base: None,
            pending: Vec::with_capacity(256),
            fb_count: 0,
        }
    }

    /// True when arrivals wait for feedback.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Records that the packet with transport-wide sequence number `seq`
    /// arrived at `now`. A packet older than what was already reported is
    /// ignored.
    pub fn on_packet(&mut self, now: Instant, seq: u16) {
        let ext = match self.highest {
            None => SeqNo::first(seq).0,
            Some(h) => SeqNo(h).unwrap(seq).0,
        };
        if self.highest.is_none_or(|h| ext > h) {
            self.highest = Some(ext);
        }
        if self.next_base.is_some_and(|b| ext < b) {
            return;
        }
        if self.pending.len() >= MAX_PENDING {
            self.pending.remove(0);
        }
        let us = now.saturating_duration_since(self.epoch).as_micros() as i64;
        self.pending.push((ext, us));
    }

    /// Writes the feedback for what arrived since the last one to `out`
    /// (several messages when more than [`MAX_PACKETS`] are covered).
    /// Returns how many messages were written.
    pub fn write_feedback(&mut self, sender: Ssrc, media: Ssrc, out: &mut Vec<u8>) -> usize {
        if self.pending.is_empty() {
            return 0;
        }
        self.pending.sort_unstable();
        self.pending.dedup_by_key(|(seq, _)| *seq);
        let first = self.pending[0].0;
        let last = self.pending[self.pending.len() - 1].0;
        let mut base = self.next_base.map_or(first, |b| b.max(first.min(b)));
        // A gap larger than a message can say is skipped, not reported as lost.
        if first > base && first - base > MAX_PACKETS as u64 {
            base = first;
        }
        let mut written = 0;
        let mut i = 0;
        while base <= last {
            let end = (base + MAX_PACKETS as u64 - 1).min(last);
            let mut arrivals = vec![None; (end - base + 1) as usize];
            while i < self.pending.len() && self.pending[i].0 <= end {
                let (seq, us) = self.pending[i];
                if seq >= base {
                    arrivals[(seq - base) as usize] = Some(us);
                }
                i += 1;
            }
            let fb = Feedback {
                sender_ssrc: sender,
                media_ssrc: media,
                base_seq: base as u16,
                fb_count: self.fb_count,
                arrivals,
            };
            if twcc::write(&fb, out) {
                self.fb_count = self.fb_count.wrapping_add(1);
                written += 1;
            }
            base = end + 1;
        }
        self.next_base = Some(last + 1);
        self.pending.clear();
        written
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::rtcp::RtcpIter;

    #[test]
    fn feedback_covers_each_packet_once_with_losses_and_reordering() {
        let t0 = Instant::now();
        let mut r = TwccReceiver::new(3, t0);
        for (k, seq) in [65_534u16, 65_535, 1, 0, 3].iter().enumerate() {
            r.on_packet(t0 + Duration::from_millis(k as u64 * 5), *seq);
        }
        let mut buf = Vec::new();
        assert_eq!(r.write_feedback(Ssrc(1), Ssrc(2), &mut buf), 1);
        let fb = twcc::parse(&buf).expect("decodes");
        assert_eq!(fb.base_seq, 65_534);
        let got: Vec<bool> = fb.arrivals.iter().map(Option::is_some).collect();
        assert_eq!(
            got,
            [true, true, true, true, false, true],
            "65534 … 3, 2 lost"
        );
        // 1 arrived at 10 ms, before 0 at 15 ms: a negative delta survives.
        assert_eq!(
            fb.arrivals[3].expect("1") - fb.arrivals[2].expect("0"),
            -5000
        );
        // Next feedback starts after 3; a late 2 is not reported again.
        r.on_packet(t0 + Duration::from_millis(30), 2);
        r.on_packet(t0 + Duration::from_millis(31), 4);
        buf.clear();
        assert_eq!(r.write_feedback(Ssrc(1), Ssrc(2), &mut buf), 1);
        let fb = twcc::parse(&buf).expect("decodes");
        assert_eq!((fb.base_seq, fb.arrivals.len(), fb.fb_count), (4, 1, 1));
        assert_eq!(RtcpIter::new(&buf).count(), 1);
        assert_eq!(
            r.write_feedback(Ssrc(1), Ssrc(2), &mut buf),
            0,
            "nothing new"
        );
    }
}
