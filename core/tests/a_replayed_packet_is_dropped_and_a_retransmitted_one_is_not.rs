//! Retransmissions are not replays: a publisher's RTX packet for a missing
//! packet is forwarded, while a replayed SRTP datagram (of the media or of
//! the RTX stream) is dropped by the replay check (RFC 3711 §3.3.2), and an
//! RTX copy of a packet already received is dropped as a duplicate.
#![allow(clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Net, rtp};
use sfu_core::proto::rtcp::{self, RtcpIter};
use sfu_core::proto::rtp::RtpHeader;
use sfu_core::router::MediaKind;
use sfu_core::stats::DropReason;

fn payload(n: u8) -> Vec<u8> {
    vec![n; 200]
}

/// The sequence numbers the server NACKed to the publisher so far.
fn nacked(net: &mut Net, publisher: usize) -> Vec<u16> {
    let mut seqs = Vec::new();
    for c in std::mem::take(&mut net.peers[publisher].rtcp) {
        for p in RtcpIter::new(&c) {
            if (p.pt, p.count_or_fmt) == (rtcp::PT_RTPFB, 1) {
                seqs.extend(rtcp::nack_seqs(&p));
            }
        }
    }
    seqs
}

#[test]
fn replays_are_dropped_and_retransmissions_are_forwarded() {
    let mut net = Net::new();
    let (a, b) = (net.add_peer(), net.add_peer());
    net.connect_all();
    let prod = net.produce_with_rtx(a, MediaKind::Video, 5, 96, Some((6, 97)));
    net.consume_with_rtx(b, prod, 7, (96, 96), Some((8, 97)));
    net.step();
    net.peers[b].rtp.clear();
    let from = net.peers[a].addr;

    // Packets 1..=6 leave the publisher; 4 is lost on the way.
    let mut sent = Vec::new();
    for seq in 1..=6u16 {
        assert!(
            net.peers[a]
                .client
                .send_rtp(&rtp(96, seq, 0, 5, &payload(seq as u8)))
        );
        sent.push(net.peers[a].client.poll_transmit().expect("srtp"));
    }
    for (i, d) in sent.iter().enumerate() {
        if i != 3 {
            let now = net.now;
            net.router.handle_datagram(now, from, &mut d.to_vec());
        }
    }
    // Packet 3 replayed: dropped by SRTP, forwarded once only.
    let now = net.now;
    net.router.handle_datagram(now, from, &mut sent[2].to_vec());
    assert_eq!(net.counters().drops(DropReason::Replay), 1);
    net.advance(Duration::from_millis(20));
    assert_eq!(net.peers[b].rtp.len(), 5, "1, 2, 3, 5, 6, each once");
    assert_eq!(nacked(&mut net, a), [4], "the server asks for the lost one");

    // The publisher answers with RTX (RFC 4588): OSN 4 in front.
    let mut rtx_payload = 4u16.to_be_bytes().to_vec();
    rtx_payload.extend_from_slice(&payload(4));
    assert!(
        net.peers[a]
            .client
            .send_rtp(&rtp(97, 100, 0, 6, &rtx_payload))
    );
    let rtx = net.peers[a].client.poll_transmit().expect("srtp");
    let now = net.now;
    net.router.handle_datagram(now, from, &mut rtx.to_vec());
    net.step();
    assert_eq!(net.peers[b].rtp.len(), 6, "the retransmission is forwarded");
    let last = net.peers[b].rtp.last().expect("packet 4").clone();
    let h = RtpHeader::parse(&last).expect("rtp");
    assert_eq!((h.ssrc.0, h.pt.0), (7, 96), "as the consumer's own packet");
    assert_eq!(&last[h.header_len..], &payload(4)[..]);
    assert_eq!(net.counters().drops(DropReason::Replay), 1, "not a replay");
    assert_eq!(net.counters().packets_recovered.get(), 1);

    // The same RTX datagram replayed: SRTP drops it.
    let now = net.now;
    net.router.handle_datagram(now, from, &mut rtx.to_vec());
    assert_eq!(net.counters().drops(DropReason::Replay), 2);
    // A fresh RTX of packet 5, which arrived: a duplicate, not forwarded.
    let mut dup = 5u16.to_be_bytes().to_vec();
    dup.extend_from_slice(&payload(5));
    assert!(net.peers[a].client.send_rtp(&rtp(97, 101, 0, 6, &dup)));
    net.step();
    assert_eq!(net.counters().drops(DropReason::Duplicate), 1);
    assert_eq!(net.peers[b].rtp.len(), 6);
    // Nothing more is NACKed.
    net.advance(Duration::from_millis(500));
    assert!(nacked(&mut net, a).is_empty());
}
