//! The sending side of transport-wide congestion control
//! (draft-holmer-rmcat-transport-wide-cc-extensions-01 §2–§3): numbers every
//! RTP packet we send a subscriber transport with its own transport-wide
//! sequence number, remembers when each left and how big it was, and turns
//! the subscriber's feedback into per-packet results (sent when, arrived
//! when or lost) for the send-side estimator ([`super::send_side`]).

use std::time::Instant;

use crate::proto::twcc::Feedback;

/// Packets remembered (a power of two): about 4 s at 2.5 Mbit/s of 1,200 B
/// packets, far longer than feedback takes (50–100 ms).
pub const HISTORY: usize = 1024;

/// What became of one packet we sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketResult {
    /// When it was sent: µs since the sender's epoch.
    pub send_us: i64,
    /// When it arrived, on the receiver's clock (µs, arbitrary origin), or
    /// `None` when the receiver reports it lost.
    pub recv_us: Option<i64>,
    /// Its size on the wire, bytes.
    pub size: u16,
}

/// One slot of the history: (sequence number, send time µs since the
/// epoch, wrapping at ~71 min, size in bytes).
#[derive(Debug, Clone, Copy, Default)]
struct Sent {
    seq: u16,
    send_us: u32,
    size: u16,
    used: bool,
}

/// One subscriber transport's transport-wide numbering and send history.
#[derive(Debug)]
pub struct TwccSender {
    epoch: Instant,
    next: u16,
    history: Box<[Sent; HISTORY]>,
}

impl TwccSender {
    /// A sender whose first packet gets sequence number 1 (RFC-free choice;
    /// Chromium starts at 1 too).
    pub fn new(now: Instant) -> Self {
        Self {
            epoch: now,
            next: 1,
            history: Box::new([Sent::default(); HISTORY]),
        }
    }

    /// The sequence number the next packet gets; call [`Self::on_sent`] once
    /// it really is sent (a packet that is not sent takes no number).
    pub fn peek(&self) -> u16 {
        self.next
    }

    /// `now` on the send clock of [`PacketResult::send_us`], µs.
    pub fn now_us(&self, now: Instant) -> i64 {
        now.saturating_duration_since(self.epoch).as_micros() as i64
    }

    /// Records that the packet numbered [`Self::peek`] left at `now`,
    /// `size` bytes on the wire, and moves to the next number.
    pub fn on_sent(&mut self, now: Instant, size: usize) {
        let us = now.saturating_duration_since(self.epoch).as_micros() as u32;
        self.history[self.next as usize % HISTORY] = Sent {
            seq: self.next,
            send_us: us,
            size: size.min(u16::MAX as usize) as u16,
            used: true,
        };
        self.next = self.next.wrapping_add(1);
    }

    /// Matches feedback `fb` against the history, appending one result per
    /// covered packet still remembered to `out` (cleared first), in sequence
    /// order. Send times are unwrapped relative to the newest packet sent, so
    /// they stay monotonic across the 32-bit µs wrap.
    pub fn on_feedback(&self, fb: &Feedback, out: &mut Vec<PacketResult>) {
        out.clear();
        let newest = self.history[self.next.wrapping_sub(1) as usize % HISTORY];
        for (i, arrival) in fb.arrivals.iter().enumerate() {
            let seq = fb.base_seq.wrapping_add(i as u16);
            // Only the last HISTORY numbers can be in the ring; anything
            // "ahead" of what we sent is bogus.
            if self.next.wrapping_sub(seq) as usize > HISTORY || seq == self.next {
                continue;
            }
            let s = self.history[seq as usize % HISTORY];
            if !s.used || s.seq != seq {
                continue;
            }
            let back = i64::from(newest.send_us.wrapping_sub(s.send_us) as i32);
            out.push(PacketResult {
                send_us: i64::from(newest.send_us) - back,
                recv_us: *arrival,
                size: s.size,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Ssrc;
    use std::time::Duration;

    #[test]
    fn feedback_is_matched_to_what_was_sent() {
        let t0 = Instant::now();
        let mut s = TwccSender::new(t0);
        for k in 0..5u64 {
            assert_eq!(s.peek(), 1 + k as u16);
            s.on_sent(t0 + Duration::from_millis(10 * k), 1000 + k as usize);
        }
        let fb = Feedback {
            sender_ssrc: Ssrc(1),
            media_ssrc: Ssrc(2),
            base_seq: 2,
            fb_count: 0,
            arrivals: vec![Some(500), None, Some(20_750), Some(1), Some(2)],
        };
        let mut out = Vec::new();
        s.on_feedback(&fb, &mut out);
        // Seqs 2, 3, 4, 5 were sent; 6 was not (skipped).
        assert_eq!(
            out,
            vec![
                PacketResult {
                    send_us: 10_000,
                    recv_us: Some(500),
                    size: 1001
                },
                PacketResult {
                    send_us: 20_000,
                    recv_us: None,
                    size: 1002
                },
                PacketResult {
                    send_us: 30_000,
                    recv_us: Some(20_750),
                    size: 1003
                },
                PacketResult {
                    send_us: 40_000,
                    recv_us: Some(1),
                    size: 1004
                },
            ]
        );
    }

    #[test]
    fn old_numbers_no_longer_in_the_ring_are_skipped() {
        let t0 = Instant::now();
        let mut s = TwccSender::new(t0);
        for _ in 0..(HISTORY + 10) {
            s.on_sent(t0, 100);
        }
        let fb = Feedback {
            sender_ssrc: Ssrc(1),
            media_ssrc: Ssrc(2),
            base_seq: 1,
            fb_count: 0,
            arrivals: vec![Some(0); 20],
        };
        let mut out = Vec::new();
        s.on_feedback(&fb, &mut out);
        assert_eq!(out.len(), 20 - 10, "1..=10 were overwritten");
    }
}
