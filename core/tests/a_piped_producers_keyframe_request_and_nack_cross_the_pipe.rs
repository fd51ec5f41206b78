//! A room spread over two workers, or two nodes: the publisher's Router (A)
//! pipes its video to the subscriber's Router (B), wired as the control
//! plane does (a PipeTransport on each side, a pipe consumer per encoding
//! on A, a mirror producer on B; `sfu_core::testing::PipedNets`). Each
//! scenario runs over a worker's ring and over a relay between nodes (SRTP
//! over UDP, keyed from the node pair's secret). The subscriber's
//! keyframe request reaches the publisher through the pipe; a packet lost
//! on the pipe is NACKed by B and resent by A from the producer's
//! retransmission buffer; and a simulcast producer's layers are chosen on
//! B, switching at keyframes asked for through the pipe. Virtual clock, no
//! sockets: the pipe is carried by hand.
#![allow(clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{FRAME, PipedNets, SimulcastSource, rtp};
use sfu_core::proto::rtcp;
use sfu_core::proto::rtp::RtpHeader;
use sfu_core::router::MediaKind;
use sfu_core::stats::DropReason;
use sfu_core::{ProducerId, Ssrc};

const PUB_SSRC: u32 = 1111;
const PT: u8 = 96;
const SUB_SSRC: u32 = 2222;

/// Publisher 0 on A, subscriber 0 on B, A's video piped to B; returns
/// the mirror.
fn spread(mut s: PipedNets) -> (PipedNets, ProducerId) {
    s.a.add_peer();
    s.b.add_peer();
    s.connect_all();
    let producer = s.a.produce(0, MediaKind::Video, PUB_SSRC, PT);
    let mirror = s.pipe_producer(producer);
    (s, mirror)
}

/// PLIs the publisher received since the last call.
fn plis_at_publisher(s: &mut PipedNets) -> usize {
    common::take_plis(&mut s.a.peers[0].rtcp, Ssrc(PUB_SSRC))
}

#[test]
fn a_subscribers_keyframe_request_reaches_the_publisher_through_the_pipe() {
    keyframe_request_crosses(PipedNets::new());
}

#[test]
fn a_subscribers_keyframe_request_reaches_the_publisher_through_a_relay() {
    keyframe_request_crosses(PipedNets::relayed());
}

fn keyframe_request_crosses(s: PipedNets) {
    let (mut s, mirror) = spread(s);
    // The pipe consumer's own first request, and the interval after it.
    s.carry();
    s.advance(Duration::from_secs(1));
    plis_at_publisher(&mut s);
    let piped_in = s.carried_into_a();
    s.b.consume(0, mirror, SUB_SSRC, (PT, PT));
    s.carry();
    // The new consumer on B asked for a keyframe: B's mirror asked the
    // pipe, and A asked the publisher.
    s.advance(Duration::from_millis(20));
    assert_eq!(
        plis_at_publisher(&mut s),
        1,
        "the new consumer's keyframe request"
    );
    assert!(s.b.counters().keyframe_requests.get() >= 1);
    assert!(s.carried_into_a() > piped_in, "it came through the pipe");
    // Later, the subscriber's own PLI does the same.
    s.advance(Duration::from_millis(600));
    plis_at_publisher(&mut s);
    let mut pli = Vec::new();
    rtcp::write_empty_rr(Ssrc(5), &mut pli);
    rtcp::write_pli(Ssrc(5), Ssrc(SUB_SSRC), &mut pli);
    assert!(s.b.peers[0].client.send_rtcp(&pli));
    s.b.step();
    s.carry();
    assert_eq!(
        plis_at_publisher(&mut s),
        1,
        "the subscriber's PLI crossed the pipe"
    );
    assert!(s.carried_into_a() >= 2, "RTCP came back through the pipe");
}

#[test]
fn a_packet_lost_on_the_pipe_is_nacked_and_resent_from_the_producers_buffer() {
    loss_is_repaired(PipedNets::new());
}

#[test]
fn a_packet_lost_on_a_relay_is_nacked_and_resent_from_the_producers_buffer() {
    loss_is_repaired(PipedNets::relayed());
}

fn loss_is_repaired(s: PipedNets) {
    let (mut s, mirror) = spread(s);
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
            let mut sent = s.take_from_a();
            assert_eq!(sent.len(), 1, "the packet, and nothing else");
            let p = sent.remove(0);
            let h = RtpHeader::parse(&p).expect("rtp");
            first = Some(h.seq);
            s.drop_seqs.insert(h.seq.wrapping_add(5));
            s.deliver_to_b(p);
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

#[test]
fn a_subscriber_across_the_pipe_switches_simulcast_layers_at_keyframes() {
    layers_switch_across(PipedNets::new());
}

#[test]
fn a_subscriber_across_a_relay_switches_simulcast_layers_at_keyframes() {
    layers_switch_across(PipedNets::relayed());
}

fn layers_switch_across(mut s: PipedNets) {
    s.a.add_peer();
    s.b.add_peer();
    s.connect_all();
    let producer = s.a.produce_simulcast(0, &["q", "h", "f"], 97);
    let mirror = s.pipe_producer(producer);
    assert!(s.b.router.producer(mirror).expect("mirror").is_simulcast());
    let cons = s.b.consume(0, mirror, SUB_SSRC, (96, 96));
    let mut src = SimulcastSource::new();
    let mut layers: Vec<u8> = Vec::new();
    // The top layer, then a 160 px tile (q), then any size again: chosen
    // on B from what B measures of the mirror's encodings.
    for (width, secs) in [(None, 3), (Some(160), 3), (None, 3)] {
        s.b.router
            .set_consumer_max_width(cons, width)
            .expect("consumer");
        for _ in 0..secs * 20 {
            src.tick(&mut s.a);
            s.advance(FRAME);
            for p in std::mem::take(&mut s.b.peers[0].rtp) {
                let h = RtpHeader::parse(&p).expect("rtp");
                if h.ssrc == Ssrc(SUB_SSRC)
                    && let Some(&layer) = p.last()
                    && layers.last() != Some(&layer)
                {
                    layers.push(layer);
                }
            }
        }
    }
    assert_eq!(layers, vec![2, 0, 2], "the layers forwarded on B, in order");
    let c = s.b.router.consumer(cons).expect("consumer");
    assert_eq!(c.layer_switches(), 2);
    // Every layer switch asked the publisher, through the pipe, for a
    // keyframe of the layer switched to; no more than a few besides.
    assert!(
        src.keyframes >= 3 && src.keyframes <= 3 + 2 * 2,
        "{}",
        src.keyframes
    );
}

#[test]
fn a_relay_measures_its_rtt_and_drops_what_another_address_sends() {
    let (mut s, mirror) = spread(PipedNets::relayed());
    s.b.consume(0, mirror, SUB_SSRC, (PT, PT));
    for i in 0..100u32 {
        let pkt = rtp(PT, i as u16, i * 3000, PUB_SSRC, &[0xab; 100]);
        assert!(s.a.peers[0].client.send_rtp(&pkt));
        s.advance(Duration::from_millis(50));
    }
    let (on_a, on_b) = s.relay.clone().expect("a relay");
    assert!(on_a.packets_out.get() >= 100 && on_b.packets_in.get() >= 100);
    assert!(
        on_b.packets_out.get() >= 1,
        "B's reports and NACKs went back"
    );
    // Reports crossed both ways: each end measured the RTT (at least 1
    // ms, as the clocks here move together).
    assert!(on_a.rtt_ms.get() >= 1, "A's RTT from B's receiver reports");
    assert!(on_b.rtt_ms.get() >= 1, "B's RTT from A's DLRR");

    // The same SRTP from another address is not the relay's.
    let pkt = rtp(PT, 500, 0, PUB_SSRC, &[0xab; 100]);
    assert!(s.a.peers[0].client.send_rtp(&pkt));
    s.a.step();
    let sent = s.take_from_a();
    let dropped = s.b.counters().drops(DropReason::UnknownAddress);
    let mut forged = sent[0].clone();
    let now = s.b.now;
    s.b.router
        .handle_datagram(now, "127.0.0.3:40000".parse().expect("addr"), &mut forged);
    assert_eq!(
        s.b.counters().drops(DropReason::UnknownAddress),
        dropped + 1,
        "dropped and counted"
    );
    let before = on_b.packets_in.get();
    for p in sent {
        s.deliver_to_b(p);
    }
    assert_eq!(on_b.packets_in.get(), before + 1, "the real one is taken");
}
