//! A recording is a direct transport with a tap: its consumers' packets,
//! in the clear and rewritten as a subscriber's, and the sender reports
//! relayed to them, go to a bounded queue with the time the Router handled
//! them. A consumer on it asks the publisher for a keyframe when it is
//! created. A full queue (a slow disk) drops and counts what does not fit,
//! and the other subscribers of the room get every packet all the same.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use common::{Net, rtp};
use sfu_core::proto::demux::{PacketClass, classify};
use sfu_core::proto::rtcp::{self, RtcpIter, SenderInfo};
use sfu_core::proto::rtp::{ExtensionMap, RtpHeader};
use sfu_core::router::{ConsumerParams, MediaKind};
use sfu_core::transport::Tap;
use sfu_core::{Pt, Ssrc};

#[test]
fn the_tap_gets_each_packet_and_sender_report_and_a_full_one_drops_only_its_own() {
    let mut net = Net::new();
    let (alice, bob) = (net.add_peer(), net.add_peer());
    net.connect_all();
    let producer = net.produce(alice, MediaKind::Video, 1111, 96);
    let _bob = net.consume(bob, producer, 2222, (96, 100));

    let (tx, rx) = crossbeam_channel::bounded(8);
    let (_give_back, spare) = crossbeam_channel::bounded(8);
    let (own, total) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let rec =
        net.router
            .create_direct_transport(Some(Tap::new(tx, spare, (own.clone(), total.clone()))));
    net.peers[alice].rtcp.clear();
    let now = net.now;
    net.router
        .create_consumer(
            now,
            ConsumerParams {
                transport: rec,
                producer,
                ssrc: Ssrc(3333),
                mid: None,
                extensions: ExtensionMap::EMPTY,
                pt_map: vec![(Pt(96), Pt(96))],
                paused: false,
                rtx: None,
            },
        )
        .expect("recording consumer");
    net.step();
    let pli = net.peers[alice].rtcp.iter().any(|c| {
        RtcpIter::new(c).any(|p| p.pt == rtcp::PT_PSFB && p.media_ssrc() == Some(Ssrc(1111)))
    });
    assert!(pli, "recording asks the publisher for a keyframe");

    // Five packets and a sender report fit in the queue of 8.
    for i in 0..5u16 {
        let pkt = rtp(96, 100 + i, 3000 * u32::from(i), 1111, &[i as u8; 20]);
        assert!(net.peers[alice].client.send_rtp(&pkt));
    }
    let mut sr = Vec::new();
    SenderInfo {
        ssrc: Ssrc(1111),
        ntp: 7 << 32,
        rtp_ts: 12_000,
        packets: 5,
        octets: 100,
    }
    .write(&mut sr);
    assert!(net.peers[alice].client.send_rtcp(&sr));
    net.step();
    let got: Vec<_> = rx.try_iter().collect();
    assert_eq!(got.len(), 6, "five RTP packets and one SR");
    let rtp_in: Vec<RtpHeader> = got
        .iter()
        .filter(|t| classify(&t.data) == PacketClass::Rtp)
        .map(|t| RtpHeader::parse(&t.data).expect("plain RTP"))
        .collect();
    assert_eq!(rtp_in.len(), 5);
    for (i, h) in rtp_in.iter().enumerate() {
        assert_eq!(h.ssrc, Ssrc(3333), "the recording consumer's SSRC");
        assert_eq!(h.pt, Pt(96));
        if i > 0 {
            assert_eq!(h.seq, rtp_in[i - 1].seq.wrapping_add(1));
            assert_eq!(h.timestamp, rtp_in[i - 1].timestamp.wrapping_add(3000));
        }
    }
    assert!(got.iter().all(|t| t.at <= net.now));
    let relayed = got
        .iter()
        .filter(|t| classify(&t.data) == PacketClass::Rtcp)
        .flat_map(|t| {
            RtcpIter::new(&t.data)
                .filter_map(|p| SenderInfo::parse(&p))
                .collect::<Vec<_>>()
        })
        .next()
        .expect("the SR reached the tap");
    assert_eq!((relayed.ssrc, relayed.ntp), (Ssrc(3333), 7 << 32));
    assert_eq!(
        relayed.rtp_ts, rtp_in[4].timestamp,
        "the SR maps like the packets"
    );

    // Nobody reads the queue (a stalled disk): what does not fit is
    // dropped and counted; bob gets everything.
    let bob_before = net.peers[bob].rtp.len();
    for i in 0..20u16 {
        let pkt = rtp(96, 105 + i, 15_000 + 3000 * u32::from(i), 1111, &[1; 20]);
        assert!(net.peers[alice].client.send_rtp(&pkt));
    }
    net.step();
    assert_eq!(net.peers[bob].rtp.len(), bob_before + 20);
    assert_eq!(rx.len(), 8);
    assert_eq!(own.load(Ordering::Relaxed), 12);
    assert_eq!(total.load(Ordering::Relaxed), 12);

    // Closing the transport ends the queue: the recording thread sees it
    // closed once it has read what is queued.
    net.router.close_transport(rec).expect("close");
    net.step();
    assert_eq!(rx.try_iter().count(), 8);
    assert!(rx.recv().is_err(), "the sender went with the transport");
}
