//! The rings between two workers that carry a spread room's pipes
//! (`crate::transport::pipe`): per worker pair, one lock-free SPSC ring
//! each way (`rtrb`), so a packet crosses cores with no lock and no
//! system call. A worker that pushed into a ring wakes the other worker's
//! loop once per step (its eventfd), not once per packet.

use std::sync::Arc;

use crate::io::Waker;
use crate::transport::PipePacket;

/// Packets a ring holds (each way, per worker pair): about 100 ms of a
/// busy room's piped media. A full ring drops (`DropReason::PipeFull`) and
/// the far end's NACKs recover what matters.
pub const PIPE_RING: usize = 4096;

/// Packets taken from one ring per loop iteration at most, so that a busy
/// pipe never starves the worker's sockets, timers or commands.
pub(crate) const PIPE_BATCH: usize = 256;

/// This worker's end of its link to worker `peer`: the ring it sends on,
/// the ring it receives from, and the peer's waker.
pub struct PipeLink {
    pub(crate) peer: usize,
    pub(crate) tx: rtrb::Producer<PipePacket>,
    pub(crate) rx: rtrb::Consumer<PipePacket>,
    pub(crate) peer_waker: Arc<Waker>,
    /// Packets were pushed since the peer was last woken.
    pub(crate) pushed: bool,
}

impl std::fmt::Debug for PipeLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipeLink")
            .field("peer", &self.peer)
            .finish()
    }
}

impl PipeLink {
    /// The worker at the other end.
    pub fn peer(&self) -> usize {
        self.peer
    }

    /// Both ends of a link between workers `a` and `b` (index and waker
    /// each), with rings of `capacity` packets each way: `.0` for `a`,
    /// `.1` for `b`.
    pub fn pair(a: (usize, Arc<Waker>), b: (usize, Arc<Waker>), capacity: usize) -> (Self, Self) {
        let (ab_tx, ab_rx) = rtrb::RingBuffer::new(capacity.max(1));
        let (ba_tx, ba_rx) = rtrb::RingBuffer::new(capacity.max(1));
        (
            Self {
                peer: b.0,
                tx: ab_tx,
                rx: ba_rx,
                peer_waker: b.1,
                pushed: false,
            },
            Self {
                peer: a.0,
                tx: ba_tx,
                rx: ab_rx,
                peer_waker: a.1,
                pushed: false,
            },
        )
    }

    /// Queues `p` for the peer. Errors: the packet back when the ring is
    /// full.
    pub(crate) fn push(&mut self, p: PipePacket) -> Result<(), PipePacket> {
        match self.tx.push(p) {
            Ok(()) => {
                self.pushed = true;
                Ok(())
            }
            Err(rtrb::PushError::Full(p)) => Err(p),
        }
    }

    /// Wakes the peer if anything was pushed since the last wake.
    pub(crate) fn wake_peer(&mut self) {
        if std::mem::take(&mut self.pushed) {
            self.peer_waker.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{RouterId, TransportId};
    use crate::transport::PipeTarget;

    fn packet(n: u8) -> PipePacket {
        PipePacket {
            to: PipeTarget {
                worker: 1,
                router: RouterId(1),
                transport: TransportId(0),
            },
            data: vec![n],
        }
    }

    #[test]
    fn a_link_carries_packets_each_way_in_order_and_refuses_when_full() {
        let wa = Arc::new(Waker::new().expect("eventfd"));
        let wb = Arc::new(Waker::new().expect("eventfd"));
        let (mut a, mut b) = PipeLink::pair((0, wa), (1, wb), 2);
        assert_eq!((a.peer(), b.peer()), (1, 0));
        a.push(packet(1)).expect("room");
        a.push(packet(2)).expect("room");
        let back = a.push(packet(3)).expect_err("full");
        assert_eq!(back.data, vec![3]);
        assert!(a.pushed);
        a.wake_peer();
        assert!(!a.pushed);
        assert_eq!(b.rx.pop().map(|p| p.data), Ok(vec![1]));
        assert_eq!(b.rx.pop().map(|p| p.data), Ok(vec![2]));
        assert!(b.rx.pop().is_err());
        b.push(packet(9)).expect("room");
        assert_eq!(a.rx.pop().map(|p| p.data), Ok(vec![9]));
    }
}
