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

use std::net::SocketAddr;

use super::relay::{RelayCounters, RelayPeer};
use super::{CloseReason, Outbox, Path, Received, Transmit, TransportEvent};
use crate::ids::{RouterId, TransportId};
use crate::proto::demux::{PacketClass, classify};
use crate::proto::rtp::{Extension, ExtensionMap};
use crate::stats::DropReason;

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

/// Where a pipe end sends: the room's Router on another worker of this
/// process (an SPSC ring), or on another node (a relay, over UDP).
#[derive(Debug)]
pub enum PipePeer {
    /// Another worker's Router.
    Worker(PipeTarget),
    /// Another node's Router (its SRTP state is large, and a relay end is
    /// one per node pair of a room).
    Node(Box<RelayPeer>),
}

impl From<PipeTarget> for PipePeer {
    fn from(t: PipeTarget) -> Self {
        Self::Worker(t)
    }
}

impl From<RelayPeer> for PipePeer {
    fn from(r: RelayPeer) -> Self {
        Self::Node(Box::new(r))
    }
}

/// One end of a pipe; connected once it knows the far end.
#[derive(Debug, Default)]
pub struct PipeTransport {
    peer: Option<PipePeer>,
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
    /// ([`TransportEvent::Connected`] the first time); a relay's end also
    /// says which address its datagrams come from
    /// ([`TransportEvent::Selected`]).
    pub fn connect(&mut self, peer: PipePeer) {
        if self.closed {
            return;
        }
        if let PipePeer::Node(r) = &peer {
            self.events
                .push_back(TransportEvent::Selected(Path::udp(r.addr)));
        }
        if self.peer.is_none() {
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
    pub fn peer(&self) -> Option<&PipePeer> {
        self.peer.as_ref()
    }

    /// The relay's counters, when the far end is on another node.
    pub fn relay_counters(&self) -> Option<&RelayCounters> {
        match &self.peer {
            Some(PipePeer::Node(r)) => Some(&r.counters),
            _ => None,
        }
    }

    /// Whether the far end is known.
    pub fn is_connected(&self) -> bool {
        self.peer.is_some()
    }

    /// Sends the plain RTP packet `plain` to the far end: copied into `buf`
    /// for a worker's ring, or SRTP-protected into `buf` as a datagram for
    /// a node. Returns its length as sent (bytes), or `None` before
    /// [`PipeTransport::connect`].
    pub fn send_rtp(&mut self, plain: &[u8], mut buf: Vec<u8>, out: &mut Outbox) -> Option<usize> {
        match self.peer.as_mut()? {
            PipePeer::Worker(to) => {
                buf.clear();
                buf.extend_from_slice(plain);
                let len = buf.len();
                out.piped.push_back(PipePacket { to: *to, data: buf });
                Some(len)
            }
            PipePeer::Node(r) => {
                r.srtp.protect_rtp_into(plain, &mut buf).ok()?;
                let len = buf.len();
                r.counters.packets_out.add(1);
                r.counters.bytes_out.add(len as u64);
                out.transmits.push_back(Transmit {
                    dest: r.addr,
                    tcp: None,
                    data: buf,
                });
                Some(len)
            }
        }
    }

    /// Sends the plain compound RTCP packet `rtcp` to the far end (SRTCP
    /// to a node). Returns true when it was queued.
    pub fn send_rtcp(&mut self, rtcp: &[u8], out: &mut Outbox) -> bool {
        match self.peer.as_mut() {
            None => false,
            Some(PipePeer::Worker(to)) => {
                out.piped.push_back(PipePacket {
                    to: *to,
                    data: rtcp.to_vec(),
                });
                true
            }
            Some(PipePeer::Node(r)) => {
                let Ok(data) = r.srtp.protect_rtcp(rtcp) else {
                    return false;
                };
                r.counters.packets_out.add(1);
                r.counters.bytes_out.add(data.len() as u64);
                out.transmits.push_back(Transmit {
                    dest: r.addr,
                    tcp: None,
                    data: data.to_vec(),
                });
                true
            }
        }
    }

    /// Handles one datagram of a relay from `from`: SRTP or SRTCP from the
    /// far node, authenticated and decrypted in `data` itself. The plain
    /// packet is `data[..n]` on [`Received::Rtp`]`(n)` or
    /// [`Received::Rtcp`]`(n)`.
    ///
    /// Errors: [`DropReason::UnknownAddress`] when this end is not a relay
    /// or `from` is not its far node; the SRTP errors (auth, replay,
    /// malformed); [`DropReason::UnknownProtocol`] for anything but RTP and
    /// RTCP.
    pub fn handle_datagram(
        &mut self,
        from: SocketAddr,
        data: &mut [u8],
    ) -> Result<Received, DropReason> {
        let Some(PipePeer::Node(r)) = self.peer.as_mut() else {
            return Err(DropReason::UnknownAddress);
        };
        if r.addr != from {
            return Err(DropReason::UnknownAddress);
        }
        let len = data.len() as u64;
        let got = match classify(data) {
            PacketClass::Rtp => r
                .srtp
                .unprotect_rtp_in_place(data)
                .map(Received::Rtp)
                .map_err(super::srtp_drop)?,
            PacketClass::Rtcp => r
                .srtp
                .unprotect_rtcp_in_place(data)
                .map(Received::Rtcp)
                .map_err(|e| match super::srtp_drop(e) {
                    DropReason::MalformedRtp => DropReason::MalformedRtcp,
                    d => d,
                })?,
            _ => return Err(DropReason::UnknownProtocol),
        };
        r.counters.packets_in.add(1);
        r.counters.bytes_in.add(len);
        Ok(got)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn a_pipe_sends_nothing_until_connected_then_copies_the_packet() {
        let mut p = PipeTransport::new();
        let mut out = Outbox::default();
        assert!(!p.is_connected());
        assert!(p.send_rtp(b"abc", Vec::new(), &mut out).is_none());
        let to = PipeTarget {
            worker: 1,
            router: RouterId(7),
            transport: TransportId(3),
        };
        p.connect(to.into());
        assert_eq!(p.poll_event(), Some(TransportEvent::Connected));
        assert_eq!(p.send_rtp(b"abc", b"old".to_vec(), &mut out), Some(3));
        let sent = out.piped.pop_front().expect("queued");
        assert_eq!((sent.to, sent.data.as_slice()), (to, &b"abc"[..]));
        p.close(CloseReason::Closed);
        p.close(CloseReason::Closed);
        assert_eq!(
            p.poll_event(),
            Some(TransportEvent::Closed(CloseReason::Closed))
        );
        assert_eq!(p.poll_event(), None, "closed once");
        assert!(p.send_rtp(b"abc", Vec::new(), &mut out).is_none());
    }

    fn relay_end(addr: &str, lower: bool) -> (PipeTransport, Arc<RelayCounters>) {
        let counters = Arc::new(RelayCounters::default());
        let peer = RelayPeer::new(
            addr.parse().expect("addr"),
            &[3; 32],
            b"room/nonce",
            lower,
            counters.clone(),
        )
        .expect("keys");
        let mut p = PipeTransport::new();
        p.connect(peer.into());
        (p, counters)
    }

    #[test]
    fn a_relay_end_sends_srtp_to_its_node_and_reads_only_from_it() {
        let (mut a, a_counters) = relay_end("127.0.0.1:4002", true);
        let (mut b, b_counters) = relay_end("127.0.0.1:4001", false);
        assert_eq!(
            a.poll_event(),
            Some(TransportEvent::Selected(Path::udp(
                "127.0.0.1:4002".parse().expect("addr")
            )))
        );
        assert_eq!(a.poll_event(), Some(TransportEvent::Connected));
        let rtp = [0x80, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9, 1, 2, 3];
        let mut out = Outbox::default();
        let n = a.send_rtp(&rtp, Vec::new(), &mut out).expect("sent");
        assert_eq!(n, rtp.len() + 16, "the AEAD tag");
        let tx = out.transmits.pop_front().expect("a datagram");
        assert_eq!(tx.dest.port(), 4002);
        assert_ne!(&tx.data[12..15], &rtp[12..]);

        let from_a = "127.0.0.1:4001".parse().expect("addr");
        let mut forged = tx.data.clone();
        assert!(
            matches!(
                b.handle_datagram("127.0.0.1:9".parse().expect("addr"), &mut forged),
                Err(DropReason::UnknownAddress)
            ),
            "only the far node's address"
        );
        let mut data = tx.data.clone();
        let Ok(Received::Rtp(n)) = b.handle_datagram(from_a, &mut data) else {
            panic!("not read");
        };
        assert_eq!(&data[..n], &rtp);
        let mut replay = tx.data;
        assert!(matches!(
            b.handle_datagram(from_a, &mut replay),
            Err(DropReason::Replay)
        ));
        assert!(b.send_rtcp(&[0x80, 201, 0, 1, 0, 0, 0, 2], &mut out));
        let mut rtcp = out.transmits.pop_front().expect("srtcp").data;
        let from_b = "127.0.0.1:4002".parse().expect("addr");
        assert!(matches!(
            a.handle_datagram(from_b, &mut rtcp),
            Ok(Received::Rtcp(8))
        ));
        assert_eq!(
            (a_counters.packets_out.get(), a_counters.packets_in.get()),
            (1, 1)
        );
        assert_eq!(
            (b_counters.packets_out.get(), b_counters.packets_in.get()),
            (1, 1),
            "the forged and the replayed datagram are not counted in"
        );
    }
}
