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

/// Peer `a` publishes audio (SSRC 5) that peer `b` receives (SSRC 6).
fn audio_pair() -> (Net, usize, usize) {
    let mut net = Net::new();
    let (a, b) = (net.add_peer(), net.add_peer());
    net.connect_all();
    let prod = net.produce(a, MediaKind::Audio, 5, 111);
    net.consume(b, prod, 6, (111, 111));
    net.step();
    (net, a, b)
}

#[test]
fn a_subscribers_report_gives_the_rtt() {
    let (mut net, a, b) = audio_pair();
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
    // /metrics: one sample, summed in ms.
    let c = net.counters();
    assert_eq!(c.rtt_samples.get(), 1);
    assert!(
        (195..=205).contains(&c.rtt_ms_sum.get()),
        "{}",
        c.rtt_ms_sum.get()
    );
}

/// The RRTRs (RFC 3611 §4.4) peer `peer` received since the last call, with
/// the SSRC of the report they came with.
fn rrtrs(net: &mut Net, peer: usize) -> Vec<(Ssrc, u64)> {
    let mut out = Vec::new();
    for c in std::mem::take(&mut net.peers[peer].rtcp) {
        let mut sender = None;
        for p in RtcpIter::new(&c) {
            if p.pt == rtcp::PT_RR {
                sender = p.sender_ssrc();
            }
            if let (Some(xr), Some(s)) = (rtcp::parse_xr(&p), sender) {
                out.extend(xr.rrtr.iter().map(|n| (s, *n)));
            }
        }
    }
    out
}

#[test]
fn a_publish_only_participant_gets_its_rtt_measured_through_xr() {
    let mut net = Net::new();
    let epoch = net.now; // the router's clock starts here (our NTP zero)
    let publisher = net.add_peer();
    net.connect_all();
    net.produce(publisher, MediaKind::Audio, 8, 111);
    net.step();
    net.peers[publisher].rtcp.clear();
    for seq in 0..60u16 {
        let pkt = rtp(111, seq, u32::from(seq) * 960, 8, &[0; 60]);
        assert!(net.peers[publisher].client.send_rtp(&pkt));
        net.advance(Duration::from_millis(20));
    }
    let (ours, ntp) = *rrtrs(&mut net, publisher)
        .last()
        .expect("an RRTR with our RR");
    let tp = net.peers[publisher].transport;
    assert_eq!(net.router.transport_rtt(tp), None);
    // The publisher answers 300 ms after the RRTR left, having held it for
    // 100 ms: the network took 200 ms.
    let sent = epoch
        + Duration::from_secs(ntp >> 32)
        + Duration::from_nanos(((ntp & 0xffff_ffff) * 1_000_000_000) >> 32);
    let answer_at = sent + Duration::from_millis(300);
    net.advance(answer_at.saturating_duration_since(net.now));
    let mut xr = Vec::new();
    rtcp::write_empty_rr(Ssrc(99), &mut xr);
    rtcp::write_xr_dlrr(Ssrc(99), &[(ours, (ntp >> 16) as u32, 65536 / 10)], &mut xr);
    assert!(net.peers[publisher].client.send_rtcp(&xr));
    net.step();
    let rtt = net.router.transport_rtt(tp).expect("measured through XR");
    assert!(
        (Duration::from_millis(195)..=Duration::from_millis(212)).contains(&rtt),
        "rtt {rtt:?}"
    );
}

#[test]
fn a_receivers_rrtr_is_answered_with_a_dlrr() {
    let (mut net, _, b) = audio_pair();
    net.peers[b].rtcp.clear();
    let mut xr = Vec::new();
    rtcp::write_empty_rr(Ssrc(77), &mut xr);
    rtcp::write_xr_rrtr(Ssrc(77), 0x0000_0005_8000_0000, &mut xr);
    assert!(net.peers[b].client.send_rtcp(&xr));
    net.step();
    net.advance(Duration::from_millis(1100));
    let mut dlrr = Vec::new();
    for c in std::mem::take(&mut net.peers[b].rtcp) {
        for p in RtcpIter::new(&c) {
            if let Some(x) = rtcp::parse_xr(&p) {
                dlrr.extend(x.dlrr);
            }
        }
    }
    let (ssrc, lrr, delay) = *dlrr.first().expect("a DLRR within a second");
    assert_eq!((ssrc, lrr), (Ssrc(77), 0x0005_8000));
    assert!(
        (1..=65536 * 12 / 10).contains(&delay),
        "held for at most 1.2 s: {delay}"
    );
}
