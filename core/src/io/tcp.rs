//! ICE-TCP's sockets (RFC 6544 passive candidates): one listening TCP port
//! per worker and its connections, each framed by RFC 4571
//! ([`crate::proto::framing`]). Non-blocking throughout, in an epoll set of
//! its own that the worker's driver watches as one descriptor (so both the
//! epoll and the io_uring loop take it the same way).
//!
//! Bounded everywhere: a connection holds at most one frame in (1,500 bytes
//! until it is bound to a transport by its first STUN message, 65,535
//! after) and [`MAX_OUT`] bytes out; a peer that reads too slowly, or says
//! a frame is longer than allowed, is closed and counted; one not bound
//! within the ICE timeout is closed and counted too.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use super::epoll::Epoll;
use crate::ids::TcpConnId;
use crate::proto::framing::{self, FrameDecoder, MAX_FRAME};

/// Bytes queued to one connection at most; past that the peer is not
/// reading, and the connection is closed ([`TcpClose::Stalled`]).
pub const MAX_OUT: usize = 512 * 1024;
/// Longest frame of a connection not yet bound: its first message is a
/// STUN binding request, well under this.
pub const UNBOUND_MAX_FRAME: usize = 1500;
/// Connections one worker keeps at most; more are closed on accept.
pub const MAX_CONNS: usize = 16_384;
/// Bytes read from one connection per poll at most, so one peer cannot
/// keep the loop.
const READ_BUDGET: usize = 256 * 1024;
/// The listener's epoll token; a connection's is its id + 1.
const LISTENER: u64 = 0;

/// Why a connection closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpClose {
    /// The peer closed it, or it failed.
    Peer,
    /// Not bound to a transport within the ICE timeout.
    Idle,
    /// Its out queue filled (a slow reader), or a frame over the limit.
    Stalled,
    /// Closed by the worker (its transport or room went).
    Local,
}

struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    decoder: FrameDecoder,
    out: Vec<u8>,
    /// Bytes of `out` already written.
    out_head: usize,
    writable_armed: bool,
    /// The worker's room the connection carries a transport of.
    room: Option<usize>,
}

/// What [`TcpServer::poll`] hands each whole frame to: (connection, its
/// peer, the room it is bound to if any, the frame).
pub type OnFrame<'a> = dyn FnMut(TcpConnId, SocketAddr, Option<usize>, &mut [u8]) + 'a;

/// One worker's ICE-TCP listener and connections.
pub struct TcpServer {
    listener: TcpListener,
    local: SocketAddr,
    ep: Epoll,
    conns: HashMap<u32, Conn>,
    next_id: u32,
    ready: Vec<u64>,
    closed: Vec<(TcpConnId, Option<usize>, TcpClose)>,
    /// Connections in the order accepted, for the ICE timeout (some may be
    /// bound or gone since: skipped when reached).
    accepted: VecDeque<(Instant, u32)>,
}

impl std::fmt::Debug for TcpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpServer")
            .field("local", &self.local)
            .field("conns", &self.conns.len())
            .finish()
    }
}

impl TcpServer {
    /// Listens on `addr` (non-blocking, `SO_REUSEADDR`).
    ///
    /// Errors: the socket, bind or listen failed (a port in use, say).
    pub fn bind(addr: SocketAddr) -> io::Result<Self> {
        let sock = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        sock.set_reuse_address(true)?;
        sock.set_nonblocking(true)?;
        sock.bind(&addr.into())?;
        sock.listen(1024)?;
        let listener: TcpListener = sock.into();
        let local = listener.local_addr()?;
        let ep = Epoll::new()?;
        ep.add(listener.as_raw_fd(), LISTENER)?;
        Ok(Self {
            listener,
            local,
            ep,
            conns: HashMap::new(),
            next_id: 0,
            ready: Vec::with_capacity(256),
            closed: Vec::new(),
            accepted: VecDeque::new(),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The descriptor the driver watches: readable when a connection or
    /// the listener has something.
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        self.ep.raw_fd()
    }

    /// Open connections.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// True with no open connection.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Accepts new connections, reads the ready ones and hands each whole
    /// frame to `on`, and writes out what waits for writable ones. Never
    /// blocks.
    pub fn poll(&mut self, now: Instant, on: &mut OnFrame<'_>) {
        let mut ready = std::mem::take(&mut self.ready);
        if let Err(e) = self.ep.wait_into(Some(Duration::ZERO), &mut ready) {
            tracing::debug!(error = %e, "ICE-TCP wait failed");
        }
        for &token in &ready {
            if token == LISTENER {
                self.accept(now);
                continue;
            }
            let id = (token - 1) as u32;
            self.flush(id);
            self.read(id, on);
        }
        self.ready = ready;
    }

    fn accept(&mut self, now: Instant) {
        for _ in 0..256 {
            let (stream, peer) = match self.listener.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::debug!(error = %e, "ICE-TCP accept failed");
                    return;
                }
            };
            if self.conns.len() >= MAX_CONNS || stream.set_nonblocking(true).is_err() {
                continue; // dropped: closed at once
            }
            let _ = stream.set_nodelay(true);
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1);
            if self.ep.add(stream.as_raw_fd(), u64::from(id) + 1).is_err() {
                continue;
            }
            self.accepted.push_back((now, id));
            self.conns.insert(
                id,
                Conn {
                    stream,
                    peer,
                    decoder: FrameDecoder::new(UNBOUND_MAX_FRAME),
                    out: Vec::new(),
                    out_head: 0,
                    writable_armed: false,
                    room: None,
                },
            );
        }
    }

    fn read(&mut self, id: u32, on: &mut OnFrame<'_>) {
        let mut budget = READ_BUDGET;
        let why = loop {
            let Some(c) = self.conns.get_mut(&id) else {
                return;
            };
            match c.stream.read(c.decoder.spare()) {
                Ok(0) => break Some(TcpClose::Peer),
                Ok(n) => {
                    c.decoder.filled(n);
                    budget = budget.saturating_sub(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break Some(TcpClose::Peer),
            }
            let (peer, room) = (c.peer, c.room);
            let mut bad = false;
            loop {
                match c.decoder.next_frame() {
                    Ok(Some(frame)) => on(TcpConnId(id), peer, room, frame),
                    Ok(None) => break,
                    Err(_) => {
                        bad = true;
                        break;
                    }
                }
            }
            if bad {
                break Some(TcpClose::Stalled);
            }
            if budget == 0 {
                break None;
            }
        };
        if let Some(why) = why {
            self.close_as(TcpConnId(id), why);
        }
    }

    /// Binds connection `id` to the worker's `room` (its first STUN
    /// message named a transport there): it may carry frames up to 65,535
    /// bytes from now on.
    pub fn bind_room(&mut self, id: TcpConnId, room: usize) {
        if let Some(c) = self.conns.get_mut(&id.0) {
            c.room = Some(room);
            c.decoder.set_max(MAX_FRAME);
        }
    }

    /// Queues `frame` to connection `id` and writes what the socket takes.
    /// Returns false when the connection is gone, or was closed now
    /// because its queue is over [`MAX_OUT`] (a peer that does not read).
    pub fn send(&mut self, id: TcpConnId, frame: &[u8]) -> bool {
        let Some(c) = self.conns.get_mut(&id.0) else {
            return false;
        };
        if c.out.len() - c.out_head + frame.len() + 2 > MAX_OUT {
            self.close_as(id, TcpClose::Stalled);
            return false;
        }
        if !framing::encode(frame, &mut c.out) {
            return false;
        }
        self.flush(id.0);
        true
    }

    fn flush(&mut self, id: u32) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let mut failed = false;
        while c.out_head < c.out.len() {
            match c.stream.write(&c.out[c.out_head..]) {
                Ok(0) => {
                    failed = true;
                    break;
                }
                Ok(n) => c.out_head += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        if c.out_head == c.out.len() {
            c.out.clear();
            c.out_head = 0;
        } else if c.out_head > MAX_OUT / 2 {
            c.out.drain(..c.out_head);
            c.out_head = 0;
        }
        // Writable interest only while something waits.
        let want = c.out_head < c.out.len();
        if want != c.writable_armed {
            let events = if want {
                (libc::EPOLLIN | libc::EPOLLOUT) as u32
            } else {
                libc::EPOLLIN as u32
            };
            if self
                .ep
                .modify(c.stream.as_raw_fd(), events, u64::from(id) + 1)
                .is_ok()
            {
                c.writable_armed = want;
            }
        }
        if failed {
            self.close_as(TcpConnId(id), TcpClose::Peer);
        }
    }

    /// Closes connections not bound within `ice_timeout` of their accept.
    pub fn expire(&mut self, now: Instant, ice_timeout: Duration) {
        while let Some(&(at, id)) = self.accepted.front() {
            if now.saturating_duration_since(at) < ice_timeout {
                return;
            }
            self.accepted.pop_front();
            if self.conns.get(&id).is_some_and(|c| c.room.is_none()) {
                self.close_as(TcpConnId(id), TcpClose::Idle);
            }
        }
    }

    /// When [`TcpServer::expire`] may have something to do next (no later
    /// than the oldest unbound connection reaches `ice_timeout`).
    pub fn next_expiry(&self, ice_timeout: Duration) -> Option<Instant> {
        self.accepted.front().map(|(at, _)| *at + ice_timeout)
    }

    /// Closes connection `id` (its transport or room went).
    pub fn close(&mut self, id: TcpConnId) {
        self.close_as(id, TcpClose::Local);
    }

    /// Closes every connection bound to `room`.
    pub fn close_room(&mut self, room: usize) {
        let ids: Vec<u32> = self
            .conns
            .iter()
            .filter(|(_, c)| c.room == Some(room))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.close_as(TcpConnId(id), TcpClose::Local);
        }
    }

    fn close_as(&mut self, id: TcpConnId, why: TcpClose) {
        if let Some(c) = self.conns.remove(&id.0) {
            let _ = self.ep.delete(c.stream.as_raw_fd());
            let _ = c.stream.shutdown(std::net::Shutdown::Both);
            self.closed.push((id, c.room, why));
        }
    }

    /// Next connection closed since the last call: (id, its room, why).
    pub fn poll_closed(&mut self) -> Option<(TcpConnId, Option<usize>, TcpClose)> {
        self.closed.pop()
    }
}

#[cfg(test)]
mod tests;
