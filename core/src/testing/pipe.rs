//! A room spread over two workers or two nodes, in memory: Router A (its
//! [`Net`] with the publishers) pipes its producers to Router B (its
//! [`Net`] with the subscribers), wired as the control plane wires them: a
//! PipeTransport on each side, a pipe consumer per encoding on A, a mirror
//! producer on B. The pipe is a worker's ring ([`PipedNets::new`]) or a
//! relay between nodes, SRTP over "UDP" ([`PipedNets::relayed`]). Both
//! clocks move together, and what each side sends the other is carried by
//! hand, so a test can lose it.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::proto::rtp::RtpHeader;
use crate::router::PipeConsumerParams;
use crate::transport::{PipeTarget, RelayCounters, RelayPeer};
use crate::{ProducerId, RouterId, Ssrc, TransportId};

use super::Net;

/// The SSRCs the pipe consumers send with: this plus the encoding index.
pub const PIPE_SSRC_BASE: u32 = 3333;

/// B's Router address when the two are nodes (A's is [`super::SERVER`]).
const NODE_B: &str = "127.0.0.2:40000";

#[derive(Debug)]
pub struct PipedNets {
    /// The producers' side (worker 0, or node A).
    pub a: Net,
    /// The mirrors' side (worker 1, or node B).
    pub b: Net,
    /// A's pipe end, and B's.
    pub pipe: (TransportId, TransportId),
    /// The relay's counters on A and on B, when the pipe is a relay.
    pub relay: Option<(Arc<RelayCounters>, Arc<RelayCounters>)>,
    /// RTP from A to B with these sequence numbers (of the pipe) is lost,
    /// once each.
    pub drop_seqs: HashSet<u16>,
    /// What was lost so far.
    pub dropped: Vec<u16>,
}

impl Default for PipedNets {
    fn default() -> Self {
        Self::new()
    }
}

impl PipedNets {
    fn routers() -> (Net, Net) {
        let a = Net::new();
        let mut b = Net::new();
        b.now = a.now;
        b.server = NODE_B.parse().expect("addr");
        (a, b)
    }

    /// Two empty Routers on two workers, their pipe connected.
    pub fn new() -> Self {
        let (mut a, mut b) = Self::routers();
        let pipe_a = a.router.create_pipe_transport();
        let pipe_b = b.router.create_pipe_transport();
        let target = |worker, transport| PipeTarget {
            worker,
            router: RouterId(1),
            transport,
        };
        a.router
            .connect_pipe_transport(pipe_a, target(1, pipe_b))
            .expect("connect A");
        b.router
            .connect_pipe_transport(pipe_b, target(0, pipe_a))
            .expect("connect B");
        Self::with(a, b, (pipe_a, pipe_b), None)
    }

    /// Two empty Routers on two nodes, their relay connected (keys from
    /// one pair secret and relay id, A the lower node).
    pub fn relayed() -> Self {
        let (mut a, mut b) = Self::routers();
        let pipe_a = a.router.create_pipe_transport();
        let pipe_b = b.router.create_pipe_transport();
        let counters = (Arc::default(), Arc::default());
        let secret = [0x5a; 32];
        let end = |addr: SocketAddr, lower, c: &Arc<RelayCounters>| {
            RelayPeer::new(addr, &secret, b"room/relay-1", lower, c.clone()).expect("keys")
        };
        a.router
            .connect_pipe_transport(pipe_a, end(b.server, true, &counters.0))
            .expect("connect A");
        b.router
            .connect_pipe_transport(pipe_b, end(a.server, false, &counters.1))
            .expect("connect B");
        Self::with(a, b, (pipe_a, pipe_b), Some(counters))
    }

    fn with(
        a: Net,
        b: Net,
        pipe: (TransportId, TransportId),
        relay: Option<(Arc<RelayCounters>, Arc<RelayCounters>)>,
    ) -> Self {
        Self {
            a,
            b,
            pipe,
            relay,
            drop_seqs: HashSet::new(),
            dropped: Vec::new(),
        }
    }

    /// Packets A took from the pipe so far (RTCP from B).
    pub fn carried_into_a(&self) -> u64 {
        match &self.relay {
            Some((a, _)) => a.packets_in.get(),
            None => self.a.counters().piped_in.get(),
        }
    }

    /// What A has queued for B now, as it would cross.
    pub fn take_from_a(&mut self) -> Vec<Vec<u8>> {
        self.take(true)
    }

    /// Hands B one packet from A.
    pub fn deliver_to_b(&mut self, data: Vec<u8>) {
        self.deliver(true, data);
    }

    /// What one side (A when `from_a`) queued for the other.
    fn take(&mut self, from_a: bool) -> Vec<Vec<u8>> {
        let (from, to) = if from_a {
            (&mut self.a, self.b.server)
        } else {
            (&mut self.b, self.a.server)
        };
        if self.relay.is_none() {
            return std::iter::from_fn(|| from.router.poll_piped())
                .map(|p| p.data)
                .collect();
        }
        let (sent, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut from.outside)
            .into_iter()
            .partition(|t| t.dest == to);
        from.outside = rest;
        sent.into_iter().map(|t| t.data).collect()
    }

    /// Hands the other side (B when `to_b`) one packet.
    fn deliver(&mut self, to_b: bool, mut data: Vec<u8>) {
        let (to, from, pipe) = if to_b {
            (&mut self.b, self.a.server, self.pipe.1)
        } else {
            (&mut self.a, self.b.server, self.pipe.0)
        };
        let now = to.now;
        if self.relay.is_some() {
            to.router.handle_datagram(now, from, &mut data);
        } else {
            to.router.handle_piped(now, pipe, &data);
        }
    }

    /// Connects every peer of both sides.
    pub fn connect_all(&mut self) {
        self.a.connect_all();
        self.b.connect_all();
        self.b.now = self.a.now.max(self.b.now);
        self.a.now = self.b.now;
    }

    /// Pipes A's `producer` to B: a pipe consumer per encoding (SSRC
    /// [`PIPE_SSRC_BASE`] + its index) and the mirror, which it returns.
    pub fn pipe_producer(&mut self, producer: ProducerId) -> ProducerId {
        let params = self
            .a
            .router
            .producer(producer)
            .expect("producer")
            .params()
            .clone();
        let ssrcs: Vec<Ssrc> = (0..params.encodings.len() as u32)
            .map(|i| Ssrc(PIPE_SSRC_BASE + i))
            .collect();
        let now = self.a.now;
        for (i, ssrc) in ssrcs.iter().enumerate() {
            self.a
                .router
                .create_pipe_consumer(
                    now,
                    PipeConsumerParams {
                        transport: self.pipe.0,
                        producer,
                        encoding: i as u8,
                        ssrc: *ssrc,
                    },
                )
                .expect("pipe consumer");
        }
        let mirror = params.mirror(self.pipe.1, &ssrcs);
        self.b.router.create_producer(mirror).expect("mirror")
    }

    /// Carries what each side queued for the pipe to the other, until
    /// nothing moves; RTP from A numbered in `drop_seqs` is lost once (a
    /// relay's RTP header is in the clear, as SRTP leaves it).
    pub fn carry(&mut self) {
        for _ in 0..100 {
            let mut moved = false;
            for data in self.take_from_a() {
                moved = true;
                if let Some(h) = RtpHeader::parse(&data)
                    && !(192..=223).contains(&data[1])
                    && self.drop_seqs.remove(&h.seq)
                {
                    self.dropped.push(h.seq);
                    continue;
                }
                self.deliver_to_b(data);
            }
            for data in self.take(false) {
                moved = true;
                self.deliver(false, data);
            }
            self.a.step();
            self.b.step();
            if !moved {
                return;
            }
        }
        panic!("the pipe did not settle");
    }

    /// Moves both clocks by `d`, in 5 ms steps, carrying the pipe.
    pub fn advance(&mut self, d: Duration) {
        let end = self.a.now + d;
        while self.a.now < end {
            let step = Duration::from_millis(5).min(end - self.a.now);
            self.a.advance(step);
            self.b.advance(step);
            self.carry();
        }
    }
}
