//! Publishers get a receiver report every second (RFC 3550 §6.4.2) with the
//! loss and jitter the server saw, and a subscriber's report on the SRs it
//! was sent gives the server the round-trip time to it.
#![allow(clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Net, rtp};
use sfu_core::Ssrc;
use sfu_core::proto::rtcp::{self, ReportBlock, RtcpIter, SenderInfo};
use sfu_core::router::MediaKind;

fn blocks(net: &mut Net, peer: usize) -> Vec<ReportBlock> {
    let mut out = Vec::new();
    for c in std::mem::take(&mut net.peers[peer].rtcp) {
        for p in RtcpIter::new(&c) {
            if p.pt == rtcp::PT_RR {
                out.extend(rtcp::report_blocks(&p));
            }
        }
    }
    out
}

#[test]
fn a_known_loss_pattern_is_reported_with_its_jitter() {
    let mut net = Net::new();
    let publisher = net.add_peer();
    net.connect_all();
    net.produce(publisher, MediaKind::Video, 4321, 96);
    net.step();
    net.peers[publisher].rtcp.clear();
    // 100 packets 10 ms apart in RTP time, every 10th lost on the way; each
    // delivered 10 ms apart too, except that every other one is 10 ms late.
    let from = net.peers[publisher].addr;
    for i in 0..100u32 {
        let pkt = rtp(96, 1000 + i as u16, i * 900, 4321, &[1; 500]);
        assert!(net.peers[publisher].client.send_rtp(&pkt));
        let d = net.peers[publisher].client.poll_transmit().expect("srtp");
        net.advance(Duration::from_millis(10));
        if i % 10 == 9 {
            continue;
        }
        let late = i % 2 == 1;
        let now = net.now + Duration::from_millis(if late { 10 } else { 0 });
        net.router.handle_datagram(now, from, &mut d.to_vec());
    }
    net.advance(Duration::from_millis(1100));
    let b = blocks(&mut net, publisher);
    let last = b.last().expect("a receiver report within a second");
    assert_eq!(last.ssrc, Ssrc(4321));
    assert_eq!(
        last.cumulative_lost, 9,
        "10 sent every 10th lost; the 100th is not known yet"
    );
    assert_eq!(last.ext_highest_seq & 0xffff, 1098);
    // Transit alternates by 10 ms (900 ticks), so |D| is 900 between
    // neighbours, and 0 across a loss (both neighbours on time): J (RFC 3550
    // A.8) settles a little under 900.
    assert!((600..=900).contains(&last.jitter), "jitter {}", last.jitter);
    let total: u32 = b.iter().map(|x| u32::from(x.fraction_lost)).sum();
    assert!(total > 0, "the loss shows in the fractions: {b:?}");
}

#[test]
fn a_subscribers_report_gives_the_rtt() {
    let mut net = Net::new();
    let (a, b) = (net.add_peer(), net.add_peer());
    net.connect_all();
    let prod = net.produce(a, MediaKind::Audio, 5, 111);
    net.consume(b, prod, 6, (111, 111));
    net.step();
    assert!(net.peers[a].client.send_rtp(&rtp(111, 1, 0, 5, &[0; 50])));
    let mut sr = Vec::new();
    SenderInfo {
        ssrc: Ssrc(5),
        ntp: 0x1122_3344_5566_7788,
        rtp_ts: 0,
        packets: 1,
        octets: 50,
    }
    .write(&mut sr);
    assert!(net.peers[a].client.send_rtcp(&sr));
    net.step();
    assert!(
        net.peers[b]
            .rtcp
            .iter()
            .any(|c| RtcpIter::new(c).any(|p| p.pt == rtcp::PT_SR))
    );
    let tb = net.peers[b].transport;
    assert_eq!(net.router.transport_rtt(tb), None);
    // The subscriber answers 300 ms later, having held the SR for 100 ms:
    // the network took the other 200 ms.
    net.advance(Duration::from_millis(300));
    let mut rr = Vec::new();
    rtcp::write_rr(
        Ssrc(77),
        &[ReportBlock {
            ssrc: Ssrc(6),
            fraction_lost: 0,
            cumulative_lost: 0,
            ext_highest_seq: 1,
            jitter: 0,
            lsr: 0x3344_5566,
            dlsr: 65536 / 10,
        }],
        &mut rr,
    );
    assert!(net.peers[b].client.send_rtcp(&rr));
    net.step();
    let rtt = net.router.transport_rtt(tb).expect("measured");
    assert!(
        (Duration::from_millis(195)..=Duration::from_millis(205)).contains(&rtt),
        "rtt {rtt:?}"
    );
}
