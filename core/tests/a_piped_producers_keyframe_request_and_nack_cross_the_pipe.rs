//! A room spread over two workers: the publisher's Router (A) pipes its
//! video to the subscriber's Router (B), wired by hand as the control plane
//! does (a PipeTransport on each side, a pipe consumer on A, a mirror
//! producer on B). The subscriber's keyframe request reaches the publisher
//! through the pipe; a packet lost on the pipe is NACKed by B and resent
//! by A from the producer's retransmission buffer. Virtual clock, no
//! sockets: the pipe is carried by hand.
#![allow(clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{Net, rtp};
use sfu_core::proto::rtcp::{self, RtcpIter};
use sfu_core::proto::rtp::RtpHeader;
use sfu_core::router::{MediaKind, PipeConsumerParams};
use sfu_core::transport::PipeTarget;
use sfu_core::{ProducerId, RouterId, Ssrc, TransportId};

const PUB_SSRC: u32 = 1111;
const PT: u8 = 96;
const PIPE_SSRC: u32 = 3333;
const SUB_SSRC: u32 = 2222;

struct Spread {
    a: Net,
    b: Net,
    /// Pipe packets (A to B) dropped so far, and which to drop: the RTP
    /// packets with these pipe sequence numbers, once each.
    drop_seqs: HashSet<u16>,
    dropped: Vec<u16>,
}

impl Spread {
    /// Publisher 0 on A, subscriber 0 on B, A's producer piped to B.
    fn new() -> (Self, ProducerId) {
        let mut a = Net::new();
        let mut b = Net::new();
        a.add_peer();
        b.add_peer();
        a.connect_all();
        b.connect_all();
        b.now = a.now;
        let producer = a.produce(0, MediaKind::Video, PUB_SSRC, PT);
        let pipe_a = a.router.create_pipe_transport();
        let pipe_b = b.router.create_pipe_transport();
        let target = |worker, transport: TransportId| PipeTarget {
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
        let now = a.now;
        a.router
            .create_pipe_consumer(
                now,
                PipeConsumerParams {
                    transport: pipe_a,
                    producer,
                    encoding: 0,
                    ssrc: Ssrc(PIPE_SSRC),
                },
            )
            .expect("pipe consumer");
        let mirror = a
            .router
            .producer(producer)
            .expect("producer")
            .params()
            .mirror(pipe_b, &[Ssrc(PIPE_SSRC)]);
        let mirror = b.router.create_producer(mirror).expect("mirror");
        (
            Self {
                a,
                b,
                drop_seqs: HashSet::new(),
                dropped: Vec::new(),
            },
            mirror,
        )
    }

    /// Carries what each side queued for the pipe to the other, until
    /// nothing moves; RTP from A to B numbered in `drop_seqs` is lost once.
    fn carry(&mut self) {
        for _ in 0..100 {
            let mut moved = false;
            while let Some(p) = self.a.router.poll_piped() {
                moved = true;
                if let Some(h) = RtpHeader::parse(&p.data)
                    && p.data[1] & 0x7f == PT
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

    fn advance(&mut self, d: Duration) {
        let end = self.a.now + d;
        while self.a.now < end {
            self.a.advance(Duration::from_millis(5));
            self.b.advance(Duration::from_millis(5));
            self.carry();
        }
    }

    /// PLIs the publisher received since the last call.
    fn plis_at_publisher(&mut self) -> usize {
        std::mem::take(&mut self.a.peers[0].rtcp)
            .iter()
            .flat_map(|c| RtcpIter::new(c).collect::<Vec<_>>())
            .filter(|p| {
                (p.pt, p.count_or_fmt) == (rtcp::PT_PSFB, 1)
                    && p.media_ssrc() == Some(Ssrc(PUB_SSRC))
            })
            .count()
    }
}

#[test]
fn a_subscribers_keyframe_request_reaches_the_publisher_through_the_pipe() {
    let (mut s, mirror) = Spread::new();
    // The pipe consumer's own first request, and the interval after it.
    s.carry();
    s.advance(Duration::from_secs(1));
    s.plis_at_publisher();
    let piped_in = s.a.counters().piped_in.get();
    s.b.consume(0, mirror, SUB_SSRC, (PT, PT));
    s.carry();
    // The new consumer on B asked for a keyframe: B's mirror asked the
    // pipe, and A asked the publisher.
    s.advance(Duration::from_millis(20));
    assert_eq!(
        s.plis_at_publisher(),
        1,
        "the new consumer's keyframe request"
    );
    assert!(s.b.counters().keyframe_requests.get() >= 1);
    assert!(
        s.a.counters().piped_in.get() > piped_in,
        "it came through the pipe"
    );
    // Later, the subscriber's own PLI does the same.
    s.advance(Duration::from_millis(600));
    s.plis_at_publisher();
    let mut pli = Vec::new();
    rtcp::write_empty_rr(Ssrc(5), &mut pli);
    rtcp::write_pli(Ssrc(5), Ssrc(SUB_SSRC), &mut pli);
    assert!(s.b.peers[0].client.send_rtcp(&pli));
    s.b.step();
    s.carry();
    assert_eq!(
        s.plis_at_publisher(),
        1,
        "the subscriber's PLI crossed the pipe"
    );
    assert!(
        s.a.counters().piped_in.get() >= 2,
        "RTCP came back through the pipe"
    );
}

#[test]
fn a_packet_lost_on_the_pipe_is_nacked_and_resent_from_the_producers_buffer() {
    let (mut s, mirror) = Spread::new();
    s.b.consume(0, mirror, SUB_SSRC, (PT, PT));
    s.carry();
    s.advance(Duration::from_millis(20));
    // The pipe consumer numbers its packets from a random start: learn it
    // from the first one, then lose the fifth after it once.
    let mut first = None;
    for i in 0..20u32 {
        let mut payload = i.to_be_bytes().to_vec();
        payload.resize(200, 0xab);
        let pkt = rtp(PT, 100 + i as u16, i * 3000, PUB_SSRC, &payload);
        assert!(s.a.peers[0].client.send_rtp(&pkt));
        s.a.step();
        if first.is_none() {
            let p = s.a.router.poll_piped().expect("piped");
            let h = RtpHeader::parse(&p.data).expect("rtp");
            first = Some(h.seq);
            s.drop_seqs.insert(h.seq.wrapping_add(5));
            let now = s.b.now;
            s.b.router.handle_piped(now, p.to.transport, &p.data);
        }
        s.advance(Duration::from_millis(10));
    }
    s.advance(Duration::from_millis(500));
    assert_eq!(s.dropped.len(), 1, "one packet lost on the pipe");
    let got: HashSet<u32> = s.b.peers[0]
        .rtp
        .iter()
        .filter_map(|p| {
            let h = RtpHeader::parse(p)?;
            let id = p.get(h.header_len..h.header_len + 4)?;
            (h.ssrc == Ssrc(SUB_SSRC)).then(|| u32::from_be_bytes([id[0], id[1], id[2], id[3]]))
        })
        .collect();
    assert_eq!(
        got.len(),
        20,
        "every packet reached the subscriber: {got:?}"
    );
    assert!(s.b.counters().nacks_sent.get() >= 1, "B NACKed the pipe");
    assert!(s.a.counters().nacks_received.get() >= 1, "A got the NACK");
    assert!(
        s.a.counters().retransmissions_sent.get() >= 1,
        "A resent from the producer's buffer"
    );
}
