//! A room spread over two workers, in memory: Router A (its [`Net`] with
//! the publishers) pipes its producers to Router B (its [`Net`] with the
//! subscribers), wired as the control plane wires them: a PipeTransport on
//! each side, a pipe consumer per encoding on A, a mirror producer on B.
//! Both clocks move together, and what each side queues for the pipe is
//! carried to the other by hand, so a test can lose it.

use std::collections::HashSet;
use std::time::Duration;

use crate::proto::rtp::RtpHeader;
use crate::router::PipeConsumerParams;
use crate::transport::PipeTarget;
use crate::{ProducerId, RouterId, Ssrc, TransportId};

use super::Net;

/// The SSRCs the pipe consumers send with: this plus the encoding index.
pub const PIPE_SSRC_BASE: u32 = 3333;

#[derive(Debug)]
pub struct PipedNets {
    /// The producers' side (worker 0).
    pub a: Net,
    /// The mirrors' side (worker 1).
    pub b: Net,
    /// A's pipe end, and B's.
    pub pipe: (TransportId, TransportId),
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
    /// Two empty Routers with their pipe connected.
    pub fn new() -> Self {
        let mut a = Net::new();
        let mut b = Net::new();
        b.now = a.now;
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
        Self {
            a,
            b,
            pipe: (pipe_a, pipe_b),
            drop_seqs: HashSet::new(),
            dropped: Vec::new(),
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
    /// nothing moves; RTP from A numbered in `drop_seqs` is lost once.
    pub fn carry(&mut self) {
        for _ in 0..100 {
            let mut moved = false;
            while let Some(p) = self.a.router.poll_piped() {
                moved = true;
                if let Some(h) = RtpHeader::parse(&p.data)
                    && !(192..=223).contains(&p.data[1])
                    && self.drop_seqs.remove(&h.seq)
                {
                    self.dropped.push(h.seq);
                    continue;
                }
                let now = self.b.now;
                self.b.router.handle_piped(now, p.to.transport, &p.data);
            }
            while let Some(p) = self.b.router.poll_piped() {
                moved = true;
                let now = self.a.now;
                self.a.router.handle_piped(now, p.to.transport, &p.data);
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
