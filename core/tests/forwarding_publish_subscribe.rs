//! connect → publish RTP → a second peer subscribes and receives the same
//! payloads with its own SSRC, PT and gapless sequence numbers.

mod common;

use common::{Net, rtp};
use sfu_core::proto::rtcp::{self, RtcpIter, SenderInfo};
use sfu_core::proto::rtp::RtpHeader;
use sfu_core::router::MediaKind;
use sfu_core::{Pt, Ssrc};

#[test]
fn subscriber_receives_publisher_payloads_with_its_own_ssrc_and_gapless_seq() {
    let mut net = Net::new();
    let (alice, bob) = (net.add_peer(), net.add_peer());
    net.connect_all();
    let producer = net.produce(alice, MediaKind::Video, 1111, 96);
    let _consumer = net.consume(bob, producer, 2222, (96, 100));
    net.step();
    // The new consumer made the router ask alice for a keyframe.
    let pli = net.peers[alice].rtcp.iter().any(|c| {
        RtcpIter::new(c).any(|p| {
            p.pt == rtcp::PT_PSFB && p.count_or_fmt == 1 && p.media_ssrc() == Some(Ssrc(1111))
        })
    });
    assert!(pli, "publisher got a PLI for the new consumer");

    // 100 packets across the 16-bit wrap.
    let payloads: Vec<Vec<u8>> = (0..100u32)
        .map(|i| format!("frame-{i}").into_bytes())
        .collect();
    for (i, pl) in payloads.iter().enumerate() {
        let seq = 65500u16.wrapping_add(i as u16);
        let pkt = rtp(96, seq, 90_000 + 3000 * i as u32, 1111, pl);
        assert!(net.peers[alice].client.send_rtp(&pkt));
    }
    net.step();

    let got = &net.peers[bob].rtp;
    assert_eq!(got.len(), payloads.len());
    let mut prev: Option<(u16, u32)> = None;
    for (pkt, want) in got.iter().zip(&payloads) {
        let h = RtpHeader::parse(pkt).expect("valid rtp");
        assert_eq!(h.ssrc, Ssrc(2222));
        assert_eq!(h.pt, Pt(100));
        assert_eq!(&pkt[h.header_len..], &want[..]);
        assert_eq!(
            h.extension(pkt, 4),
            Some(&b"5"[..]),
            "MID extension of the consumer"
        );
        if let Some((s, ts)) = prev {
            assert_eq!(h.seq, s.wrapping_add(1), "gapless");
            assert_eq!(h.timestamp, ts.wrapping_add(3000), "timestamp continuity");
        }
        prev = Some((h.seq, h.timestamp));
    }
    assert_eq!(net.counters().rtp_forwarded.get(), 100);
    // The publisher does not get its own media back.
    assert!(net.peers[alice].rtp.is_empty());

    // A sender report is rewritten for the consumer.
    let mut sr = Vec::new();
    SenderInfo {
        ssrc: Ssrc(1111),
        ntp: 1 << 40,
        rtp_ts: 90_000,
        packets: 100,
        octets: 900,
    }
    .write(&mut sr);
    assert!(net.peers[alice].client.send_rtcp(&sr));
    net.step();
    let relayed = net.peers[bob]
        .rtcp
        .iter()
        .flat_map(|c| {
            RtcpIter::new(c)
                .filter_map(|p| SenderInfo::parse(&p))
                .collect::<Vec<_>>()
        })
        .next_back()
        .expect("an SR reached the subscriber");
    assert_eq!(relayed.ssrc, Ssrc(2222));
    assert_eq!(relayed.ntp, 1 << 40);
    assert_eq!(relayed.packets, 100);
    // Same offset as the media: SR rtp_ts maps like the first packet's timestamp.
    let first = RtpHeader::parse(&net.peers[bob].rtp[0]).expect("rtp");
    assert_eq!(relayed.rtp_ts, first.timestamp);
}

#[test]
fn paused_and_closed_consumers_stop_at_once_and_resume_without_a_gap() {
    let mut net = Net::new();
    let (alice, bob) = (net.add_peer(), net.add_peer());
    net.connect_all();
    let producer = net.produce(alice, MediaKind::Audio, 7, 111);
    let consumer = net.consume(bob, producer, 8, (111, 111));
    let send = |net: &mut Net, seq: u16| {
        let pkt = rtp(111, seq, seq as u32 * 960, 7, b"opus");
        assert!(net.peers[alice].client.send_rtp(&pkt));
        net.step();
    };
    send(&mut net, 1);
    send(&mut net, 2);
    let now = net.now;
    net.router
        .set_consumer_paused(now, consumer, true)
        .expect("pause");
    send(&mut net, 3);
    send(&mut net, 4);
    assert_eq!(net.peers[bob].rtp.len(), 2, "nothing while paused");
    net.router
        .set_consumer_paused(now, consumer, false)
        .expect("resume");
    send(&mut net, 5);
    assert_eq!(net.peers[bob].rtp.len(), 3);
    let seqs: Vec<u16> = net.peers[bob]
        .rtp
        .iter()
        .map(|p| RtpHeader::parse(p).expect("rtp").seq)
        .collect();
    assert_eq!(seqs[1], seqs[0].wrapping_add(1));
    assert_eq!(seqs[2], seqs[1].wrapping_add(1), "no gap after resume");
    net.router.close_consumer(consumer).expect("close");
    send(&mut net, 6);
    assert_eq!(net.peers[bob].rtp.len(), 3, "nothing after close");
}

#[test]
fn keyframe_requests_are_limited_to_one_per_500ms_and_deferred_not_lost() {
    let mut net = Net::new();
    let (alice, bob) = (net.add_peer(), net.add_peer());
    net.connect_all();
    let producer = net.produce(alice, MediaKind::Video, 1, 96);
    let _c = net.consume(bob, producer, 2, (96, 96));
    net.step();
    let plis = |net: &Net| {
        net.peers[alice]
            .rtcp
            .iter()
            .map(|c| RtcpIter::new(c).filter(|p| p.pt == rtcp::PT_PSFB).count())
            .sum::<usize>()
    };
    assert_eq!(plis(&net), 1);
    // Bob asks three times at once: deferred into a single request 500 ms later.
    for _ in 0..3 {
        let mut fb = Vec::new();
        rtcp::write_empty_rr(Ssrc(99), &mut fb);
        rtcp::write_pli(Ssrc(99), Ssrc(2), &mut fb);
        assert!(net.peers[bob].client.send_rtcp(&fb));
    }
    net.step();
    assert_eq!(plis(&net), 1);
    net.advance(std::time::Duration::from_millis(600));
    assert_eq!(plis(&net), 2);
}

#[test]
fn keyframe_request_before_the_publisher_connects_is_sent_once_it_does() {
    let mut net = Net::new();
    let (alice, bob) = (net.add_peer(), net.add_peer());
    // The consumer exists before anyone has connected.
    let producer = net.produce(alice, MediaKind::Video, 1, 96);
    let _c = net.consume(bob, producer, 2, (96, 96));
    assert_eq!(
        net.counters().keyframe_requests.get(),
        0,
        "nothing can be sent yet"
    );
    net.connect_all();
    net.step();
    let plis: usize = net.peers[alice]
        .rtcp
        .iter()
        .map(|c| {
            RtcpIter::new(c)
                .filter(|p| p.pt == rtcp::PT_PSFB && p.media_ssrc() == Some(Ssrc(1)))
                .count()
        })
        .sum();
    assert_eq!(
        plis, 1,
        "the deferred request went out when alice connected"
    );
    assert_eq!(net.counters().keyframe_requests.get(), 1);
}
