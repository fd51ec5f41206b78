//! Step 1 of a datagram's path (docs/architecture.md): which transport it
//! is for. A UDP datagram is found by its source address, once ICE selected
//! it; an ICE-TCP frame (RFC 6544) by its connection, once a check on it
//! was accepted; before that, only a STUN check naming one of the Router's
//! ufrags is taken.

use super::*;

impl Router {
    /// Handles one datagram received on the router's socket from `from`.
    /// SRTP/SRTCP is decrypted in `data` itself (zero-copy receive), so its
    /// contents are unspecified afterwards.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &mut [u8]) {
        self.handle_on(now, Path::udp(from), data);
    }

    /// Handles one RFC 4571 frame of the worker's ICE-TCP connection
    /// `conn` from `from` (RFC 6544): as a datagram, the connection being
    /// the path. A connection is bound to the transport whose ufrag its
    /// first accepted connectivity check names; until then it carries only
    /// such checks. Returns whether `conn` is bound to a transport of this
    /// Router (the worker then keeps it for this room).
    pub fn handle_tcp_frame(
        &mut self,
        now: Instant,
        conn: TcpConnId,
        from: SocketAddr,
        data: &mut [u8],
    ) -> bool {
        self.handle_on(
            now,
            Path {
                addr: from,
                tcp: Some(conn),
            },
            data,
        );
        self.by_tcp.contains_key(&conn)
    }

    /// Next ICE-TCP connection whose transport closed, for the worker to
    /// close.
    pub fn poll_tcp_close(&mut self) -> Option<TcpConnId> {
        self.tcp_to_close.pop()
    }

    /// True when a transport of this Router has ICE ufrag `ufrag` (the
    /// worker binds a new ICE-TCP connection to the Router that does).
    pub fn has_ufrag(&self, ufrag: &[u8]) -> bool {
        self.by_ufrag.contains_key(ufrag)
    }

    /// The worker closed ICE-TCP connection `conn`: it is no path any more
    /// (a transport that had selected it stops sending until the peer
    /// nominates another, or its consent expires).
    pub fn tcp_closed(&mut self, conn: TcpConnId) {
        self.by_tcp.remove(&conn);
    }

    fn handle_on(&mut self, now: Instant, from: Path, data: &mut [u8]) {
        self.now = self.now.max(now);
        self.counters.packets_in.add(1);
        self.counters.bytes_in.add(data.len() as u64);
        self.worker_counters.packets_in.add(1);
        self.worker_counters.bytes_in.add(data.len() as u64);
        let known = match from.tcp {
            None => self.by_addr.get(&from.addr),
            Some(conn) => self.by_tcp.get(&conn),
        };
        let tid = match known {
            Some(t) => *t,
            None => {
                if classify(data) != PacketClass::Stun {
                    self.count_drop(DropReason::UnknownAddress);
                    return;
                }
                match stun::peek_local_ufrag(data).and_then(|u| self.by_ufrag.get(u)) {
                    Some(t) => *t,
                    None => {
                        self.count_drop(DropReason::BadStun);
                        return;
                    }
                }
            }
        };
        let Some(t) = self.transports.get_mut(tid).map(|e| &mut e.transport) else {
            return;
        };
        let res = t.handle_datagram(now, from, data);
        // A connection's first accepted check binds it to the transport.
        if let (Some(conn), Ok(_)) = (from.tcp, &res) {
            self.by_tcp.entry(conn).or_insert(tid);
        }
        self.after_transport(tid);
        match res {
            Err(r) => self.count_drop(r),
            Ok(Received::Nothing) => {}
            Ok(Received::Rtp(n)) => self.on_rtp(now, tid, &data[..n]),
            Ok(Received::Rtcp(n)) => self.on_rtcp(now, tid, &data[..n]),
        }
    }
}
