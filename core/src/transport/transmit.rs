//! The outgoing datagram type ([`Transmit`]), a Router's outgoing work
//! ([`Outbox`]: datagrams and piped packets) and what sending a batch of
//! datagrams did ([`SendOutcome`]): the seam between the sans-IO layers, which
//! produce datagrams, and the IO drivers, which send them (`io/`).

use std::collections::VecDeque;
use std::net::SocketAddr;

use crate::ids::TcpConnId;

/// Where a peer's datagrams come from and go: a UDP address, or an ICE-TCP
/// connection (RFC 6544) from that address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Path {
    /// The peer's address (of its TCP connection, for TCP).
    pub addr: SocketAddr,
    /// The connection, for ICE-TCP.
    pub tcp: Option<TcpConnId>,
}

impl Path {
    /// A UDP path from and to `addr`.
    pub fn udp(addr: SocketAddr) -> Self {
        Self { addr, tcp: None }
    }

    /// A datagram on this path.
    pub fn transmit(self, data: Vec<u8>) -> Transmit {
        Transmit {
            dest: self.addr,
            tcp: self.tcp,
            data,
        }
    }
}

/// A datagram to send.
#[derive(Debug, Clone)]
pub struct Transmit {
    /// Destination.
    pub dest: SocketAddr,
    /// The ICE-TCP connection to send it on (RFC 4571 framed), or `None`
    /// for the Router's UDP socket.
    pub tcp: Option<TcpConnId>,
    /// UDP payload. A router gets these buffers back with
    /// [`crate::router::Router::recycle`] once sent.
    pub data: Vec<u8>,
}

impl Datagram for Transmit {
    fn dest(&self) -> SocketAddr {
        self.dest
    }
    fn payload(&self) -> &[u8] {
        &self.data
    }
}

/// Outgoing work of a Router: datagrams for its socket, and packets for
/// pipes to its room's Routers on other workers.
#[derive(Debug, Default)]
pub struct Outbox {
    /// Datagrams for the Router's socket.
    pub transmits: VecDeque<Transmit>,
    /// Packets for pipes.
    pub piped: VecDeque<super::PipePacket>,
}

impl Outbox {
    /// Queues a datagram.
    pub fn push_back(&mut self, t: Transmit) {
        self.transmits.push_back(t);
    }

    /// The next datagram.
    pub fn pop_front(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }
}

/// What one batch send did (the IO drivers' `SendBatch::send`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendOutcome {
    /// Datagrams the kernel took (a GSO send of n segments counts n).
    pub sent: usize,
    /// Their payload bytes.
    pub bytes: usize,
    /// Datagrams refused (full socket buffer, no route, …): dropped, as UDP does.
    pub failed: usize,
    /// Messages the kernel took: equal to `sent` without GSO, fewer with it.
    pub messages: usize,
    /// Of those, UDP GSO messages (two datagrams or more).
    pub gso_messages: usize,
    /// System calls made.
    pub syscalls: usize,
}

/// A datagram to hand to a batch send: where it goes and its UDP payload.
pub trait Datagram {
    /// Destination.
    fn dest(&self) -> SocketAddr;
    /// UDP payload.
    fn payload(&self) -> &[u8];
}

impl<T: AsRef<[u8]>> Datagram for (SocketAddr, T) {
    fn dest(&self) -> SocketAddr {
        self.0
    }
    fn payload(&self) -> &[u8] {
        self.1.as_ref()
    }
}
