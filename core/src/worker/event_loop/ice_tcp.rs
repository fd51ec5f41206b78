//! The loop's ICE-TCP side (RFC 6544): frames from the worker's TCP
//! connections to their rooms' Routers, TCP transmits back, and closes.
//! The sockets are `io::tcp`'s; this binds each connection to the room
//! whose transport its first accepted connectivity check named.

use std::collections::HashMap;
use std::time::Instant;

use slab::Slab;

use super::{Failed, Io, Room, caught};
use crate::ids::TcpConnId;
use crate::io::tcp::{TcpClose, TcpServer};
use crate::proto::demux::{PacketClass, classify};
use crate::proto::stun;
use crate::router::Router;
use crate::stats::{Counters, DropReason};
use crate::transport::{SendOutcome, Transmit};

/// Reads the ready connections and hands each frame to its room's Router
/// (a connection not bound yet: the room with a transport of the ufrag its
/// STUN names). Rooms fed are added to `touched` for [`Io::after`].
pub(super) fn poll(
    now: Instant,
    tcp: &mut TcpServer,
    rooms: &mut Slab<Room>,
    failed: &mut Failed,
    touched: &mut Vec<usize>,
    counters: &Counters,
) {
    let mut bound: HashMap<TcpConnId, usize> = HashMap::new();
    tcp.poll(now, &mut |conn, from, room, frame| {
        let slot = match room.or_else(|| bound.get(&conn).copied()) {
            Some(s) => s,
            None => {
                // Until bound, only a check naming a ufrag of one of this
                // worker's rooms is taken.
                let found = (classify(frame) == PacketClass::Stun)
                    .then(|| stun::peek_local_ufrag(frame))
                    .flatten()
                    .and_then(|u| {
                        rooms
                            .iter()
                            .find(|(_, r)| !r.failed && r.router.has_ufrag(u))
                            .map(|(s, _)| s)
                    });
                let Some(s) = found else {
                    counters.count_drop(DropReason::BadStun);
                    return;
                };
                s
            }
        };
        let Some(r) = rooms.get_mut(slot).filter(|r| !r.failed) else {
            return;
        };
        match caught(|| r.router.handle_tcp_frame(now, conn, from, frame)) {
            Ok(is_bound) => {
                if is_bound && room.is_none() {
                    bound.insert(conn, slot);
                }
                r.fed += 1;
                if r.fed == 1 {
                    touched.push(slot);
                }
            }
            Err(msg) => {
                r.failed = true;
                failed.push((slot, msg));
            }
        }
    });
    for (conn, slot) in bound {
        tcp.bind_room(conn, slot);
    }
}

/// Sends a Router's ICE-TCP datagram on its connection (framed), counts it
/// as the UDP batches are counted, and gives the buffer back.
pub(super) fn send(tcp: &mut TcpServer, router: &mut Router, t: Transmit) {
    let Some(conn) = t.tcp else { return };
    let ok = tcp.send(conn, &t.data);
    router.count_sent_batch(&SendOutcome {
        sent: usize::from(ok),
        bytes: if ok { t.data.len() } else { 0 },
        failed: usize::from(!ok),
        messages: usize::from(ok),
        syscalls: 1,
        gso_messages: 0,
    });
    router.recycle(t.data);
}

/// Tells each Router of its connections that closed (by the peer,
/// stalled, idle, or because their transport went: [`Io::after`] closes
/// those), and counts them.
pub(super) fn reap(tcp: &mut TcpServer, rooms: &mut Slab<Room>, io_counters: &Counters) {
    while let Some((conn, room, why)) = tcp.poll_closed() {
        match why {
            TcpClose::Idle => io_counters.tcp_closed_idle.add(1),
            TcpClose::Stalled => io_counters.tcp_closed_stalled.add(1),
            TcpClose::Peer => io_counters.tcp_closed_peer.add(1),
            TcpClose::Local => {}
        }
        if let Some(r) = room.and_then(|s| rooms.get_mut(s)).filter(|r| !r.failed) {
            r.router.tcp_closed(conn);
        }
    }
    io_counters.tcp_connections.set(tcp.len() as u64);
}

impl Io {
    /// The ICE timeout: unbound connections older than it are closed.
    pub(super) fn tcp_deadline(&self) -> Option<Instant> {
        self.tcp.as_ref()?.next_expiry(self.ice_timeout)
    }
}
