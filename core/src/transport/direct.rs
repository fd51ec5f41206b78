//! DirectTransport: a transport with no network under it (mediasoup's
//! DirectTransport). The control plane hands its packets to the Router
//! ([`crate::router::Router::handle_direct`]): plain RTP and RTCP an
//! ingest made (RTMP packetized to RTP, transcoded audio, its sender
//! reports). It is connected from its creation and sends nothing: the
//! producers on it cannot be asked for keyframes, so their Router keeps
//! the last group of pictures for new subscribers instead
//! (`crate::router::direct`).
//!
//! A direct transport with a [`Tap`] is a recording's: its consumers'
//! packets (plain RTP as a subscriber would get it, and the sender
//! reports relayed to them) go to the recording thread over a bounded
//! queue. A full queue (a slow disk) drops and counts the packet; the
//! worker never waits for the disk.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use super::{CloseReason, TransportEvent};

/// One packet a recording transport's consumers sent: plain RTP, or a
/// compound RTCP packet (told apart as RFC 5761 §4 does), with the time
/// the Router handled it (an RTP packet's arrival from its publisher).
#[derive(Debug)]
pub struct Tapped {
    /// When the Router handled it.
    pub at: Instant,
    /// The packet.
    pub data: Vec<u8>,
}

/// Where a recording transport's packets go: a bounded queue to the
/// recording thread, the buffers that thread gives back (so a copy in
/// steady state allocates nothing), and the counters of what a full or
/// closed queue dropped (the recording's own, and the server's total).
#[derive(Debug, Clone)]
pub struct Tap {
    tx: Sender<Tapped>,
    spare: Receiver<Vec<u8>>,
    dropped: Arc<AtomicU64>,
    dropped_total: Arc<AtomicU64>,
}

impl Tap {
    /// A tap into `tx`, taking its buffers from `spare` when there are
    /// any, counting drops in `dropped` and `dropped_total`.
    pub fn new(
        tx: Sender<Tapped>,
        spare: Receiver<Vec<u8>>,
        (dropped, dropped_total): (Arc<AtomicU64>, Arc<AtomicU64>),
    ) -> Self {
        Self {
            tx,
            spare,
            dropped,
            dropped_total,
        }
    }
}

/// One direct transport: only its state changes, and a recording's tap.
#[derive(Debug, Default)]
pub struct DirectTransport {
    closed: bool,
    events: VecDeque<TransportEvent>,
    tap: Option<Tap>,
    /// When the last RTP packet was tapped (an RTCP packet is stamped
    /// with it).
    last_at: Option<Instant>,
}

impl DirectTransport {
    /// A new direct transport, connected ([`TransportEvent::Connected`]
    /// comes first); with `tap`, a recording's.
    pub fn new(tap: Option<Tap>) -> Self {
        Self {
            closed: false,
            events: VecDeque::from([TransportEvent::Connected]),
            tap,
            last_at: None,
        }
    }

    /// Whether it is a recording's.
    pub fn is_tapped(&self) -> bool {
        self.tap.is_some()
    }

    /// Hands the plain RTP packet `plain` to the tap, copied into a buffer
    /// the recording thread gave back, else into `buf`. Returns its
    /// length, or `None` when there is no tap or the packet was dropped
    /// (the queue full or its reader gone: counted).
    pub fn send_rtp(&mut self, now: Instant, plain: &[u8], buf: Vec<u8>) -> Option<usize> {
        self.last_at = Some(now);
        let mut buf = self
            .tap
            .as_ref()
            .and_then(|t| t.spare.try_recv().ok())
            .unwrap_or(buf);
        buf.clear();
        buf.extend_from_slice(plain);
        self.hand(now, buf).then_some(plain.len())
    }

    /// Hands the compound RTCP packet `rtcp` (a relayed sender report) to
    /// the tap. Returns true when it was queued.
    pub fn send_rtcp(&mut self, rtcp: &[u8]) -> bool {
        let at = self.last_at.unwrap_or_else(Instant::now);
        self.hand(at, rtcp.to_vec())
    }

    fn hand(&mut self, at: Instant, data: Vec<u8>) -> bool {
        if self.closed {
            return false;
        }
        let Some(tap) = &self.tap else {
            return false;
        };
        match tap.tx.try_send(Tapped { at, data }) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                tap.dropped.fetch_add(1, Ordering::Relaxed);
                tap.dropped_total.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Whether it is open.
    pub fn is_connected(&self) -> bool {
        !self.closed
    }

    /// Closes it; emits [`TransportEvent::Closed`] once.
    pub fn close(&mut self, reason: CloseReason) {
        if !self.closed {
            self.closed = true;
            self.events.push_back(TransportEvent::Closed(reason));
        }
    }

    /// Next state change.
    pub fn poll_event(&mut self) -> Option<TransportEvent> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_or_closed_tap_drops_and_counts() {
        let (tx, rx) = crossbeam_channel::bounded(2);
        let (give_back, spare) = crossbeam_channel::bounded(4);
        let (own, total) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let mut d = DirectTransport::new(Some(Tap::new(tx, spare, (own.clone(), total.clone()))));
        let t0 = Instant::now();
        assert_eq!(d.send_rtp(t0, &[0x80, 96, 0, 1], Vec::new()), Some(4));
        assert!(d.send_rtcp(&[0x80, 200, 0, 0]));
        assert_eq!(d.send_rtp(t0, &[0x80, 96, 0, 2], Vec::new()), None);
        assert_eq!(
            (own.load(Ordering::Relaxed), total.load(Ordering::Relaxed)),
            (1, 1)
        );
        let first = rx.recv().expect("queued");
        assert_eq!((first.at, &first.data[..]), (t0, &[0x80, 96, 0, 1][..]));
        let sr = rx.recv().expect("queued");
        assert_eq!(sr.at, t0, "RTCP stamped with the last RTP's time");
        // A buffer the recording thread gave back is used again: no new
        // allocation for the copy.
        let mut given = Vec::with_capacity(1500);
        given.push(9);
        let at = given.as_ptr();
        give_back.try_send(given).expect("room");
        assert_eq!(d.send_rtp(t0, &[0x80, 96, 0, 3], Vec::new()), Some(4));
        let again = rx.recv().expect("queued");
        assert_eq!(
            (again.data.as_ptr(), &again.data[..]),
            (at, &[0x80, 96, 0, 3][..])
        );
        drop(rx);
        assert!(!d.send_rtcp(&[0x80, 200, 0, 0]));
        assert_eq!(own.load(Ordering::Relaxed), 2);
        // Without a tap nothing is sent, and nothing counted.
        let mut plain = DirectTransport::new(None);
        assert_eq!(plain.send_rtp(t0, &[0x80], Vec::new()), None);
    }
}
