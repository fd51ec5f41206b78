//! PipeTransport: one end of a pipe between two Routers of the same room on
//! two workers (mediasoup's `pipeToRouter`, in-process). What crosses it is
//! plain RTP and RTCP: a packet is decrypted once on its producer's worker
//! and encrypted per consumer on the worker where that consumer lives.
//!
//! On the producer's side the pipe holds *pipe consumers*, one per encoding
//! of each piped producer, that forward every packet of that encoding with
//! the pipe's own SSRC and sequence numbers. On the other side the pipe
//! holds a *mirror* producer with those SSRCs announced, so the packet takes
//! that Router's usual path (RtpListener, producer, consumers). RTCP goes
//! back the same way: the mirror's keyframe requests (PLI) and NACKs reach
//! the pipe consumers, which ask the real publisher or answer from the real
//! producer's retransmission buffer; sender reports go forward.
//!
//! The pipe is sans-IO like the rest: packets are queued as [`PipePacket`]s
//! and carried by the workers over a lock-free SPSC ring per worker pair
//! (`crate::worker`).

use std::collections::VecDeque;

use super::{CloseReason, TransportEvent};
use crate::ids::{RouterId, TransportId};
use crate::proto::rtp::{Extension, ExtensionMap};

/// The header extensions written on a pipe (RFC 8285 ids), on both ends:
/// the publisher's audio level (the mirror side detects the speaker and
/// copies it to subscribers) and the AV1 dependency descriptor.
pub const PIPE_EXTENSIONS: ExtensionMap = ExtensionMap::EMPTY
    .with(Extension::AudioLevel, Some(1))
    .with(Extension::DependencyDescriptor, Some(2));

/// The far end of a pipe: the PipeTransport `transport` of Router `router`
/// on worker `worker`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PipeTarget {
    /// Index of the worker that owns the far Router.
    pub worker: usize,
    /// The far Router.
    pub router: RouterId,
    /// Its PipeTransport.
    pub transport: TransportId,
}

/// One plain RTP or RTCP packet on its way through a pipe (RFC 5761
/// demultiplexing tells which).
#[derive(Debug)]
pub struct PipePacket {
    /// Where it goes.
    pub to: PipeTarget,
    /// The packet, in the clear. The receiving Router takes the buffer
    /// back into its pool once handled.
    pub data: Vec<u8>,
}

/// One end of a pipe; connected once it knows the far end.
#[derive(Debug, Default)]
pub struct PipeTransport {
    peer: Option<PipeTarget>,
    closed: bool,
    events: VecDeque<TransportEvent>,
}

impl PipeTransport {
    /// A pipe end that is not connected yet: what it would send is dropped
    /// until [`PipeTransport::connect`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the far end. A pipe end is connected from then on
    /// ([`TransportEvent::Connected`] the first time).
    pub fn connect(&mut self, peer: PipeTarget) {
        if self.peer.is_none() && !self.closed {
            self.events.push_back(TransportEvent::Connected);
        }
        self.peer = Some(peer);
    }

    /// Closes this end; emits [`TransportEvent::Closed`] once. Nothing more
    /// is sent.
    pub fn close(&mut self, reason: CloseReason) {
        if !self.closed {
            self.closed = true;
            self.peer = None;
            self.events.push_back(TransportEvent::Closed(reason));
        }
    }

    /// Next state change.
    pub fn poll_event(&mut self) -> Option<TransportEvent> {
        self.events.pop_front()
    }

    /// The far end, once connected.
    pub fn peer(&self) -> Option<PipeTarget> {
        self.peer
    }

    /// Whether the far end is known.
    pub fn is_connected(&self) -> bool {
        self.peer.is_some()
    }

    /// Copies the plain packet `plain` into `buf` (cleared first) and
    /// addresses it to the far end. `None` before [`PipeTransport::connect`].
    pub fn wrap(&self, plain: &[u8], mut buf: Vec<u8>) -> Option<PipePacket> {
        let to = self.peer?;
        buf.clear();
        buf.extend_from_slice(plain);
        Some(PipePacket { to, data: buf })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipe_sends_nothing_until_connected_then_copies_the_packet() {
        let mut p = PipeTransport::new();
        assert!(!p.is_connected());
        assert!(p.wrap(b"abc", Vec::new()).is_none());
        let to = PipeTarget {
            worker: 1,
            router: RouterId(7),
            transport: TransportId(3),
        };
        p.connect(to);
        assert_eq!(p.poll_event(), Some(TransportEvent::Connected));
        let out = p.wrap(b"abc", b"old".to_vec()).expect("connected");
        assert_eq!((out.to, out.data.as_slice()), (to, &b"abc"[..]));
        p.close(CloseReason::Closed);
        p.close(CloseReason::Closed);
        assert_eq!(
            p.poll_event(),
            Some(TransportEvent::Closed(CloseReason::Closed))
        );
        assert_eq!(p.poll_event(), None, "closed once");
        assert!(p.wrap(b"abc", Vec::new()).is_none());
    }
}
