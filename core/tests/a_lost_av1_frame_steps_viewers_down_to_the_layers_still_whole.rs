//! An AV1 L3T3 publisher (Chromium's capture in `testdata/rtp`, played
//! three times, a keyframe at each start) loses one of S2's T0 frames for
//! good: the Router NACKs it until it gives up, counts S2's chain broken,
//! asks for a keyframe, and the subscriber gets S0 and S1 alone until the
//! next keyframe, then all three again. Virtual clock, no sockets.
#![allow(clippy::expect_used)]

use std::time::Duration;

use sfu_core::Ssrc;
use sfu_core::proto::codec::{DdStructure, DependencyDescriptor};
use sfu_core::proto::rtp::RtpHeader;
use sfu_core::router::MediaKind;
use sfu_core::testing::{AV1_DD_EXT_ID, Net, av1_l3t3_replayed, av1_rtp, take_plis};

const PUB_SSRC: u32 = 88;
const PT: u8 = 45;
/// The subscriber's id for the dependency descriptor.
const SUB_DD_EXT_ID: u8 = 9;

#[test]
fn a_lost_av1_frame_steps_viewers_down_to_the_layers_still_whole() {
    let mut net = Net::new();
    net.dependency_descriptor_ext_ids = Some((AV1_DD_EXT_ID, SUB_DD_EXT_ID));
    let (alice, bob) = (net.add_peer(), net.add_peer());
    net.connect_all();
    let producer = net.produce(alice, MediaKind::Video, PUB_SSRC, PT);
    net.consume(bob, producer, 3333, (PT, 35));
    net.step();
    let packets = av1_l3t3_replayed(3);
    // S2's first T0 inter frame never arrives.
    let mut latest: Option<Box<DdStructure>> = None;
    let decoded: Vec<DependencyDescriptor> = packets
        .iter()
        .map(|(_, _, v)| {
            let d = DependencyDescriptor::parse(v, latest.as_deref()).expect("decodes");
            if let Some(s) = &d.structure {
                latest = Some(s.clone());
            }
            d
        })
        .collect();
    let lost = decoded
        .iter()
        .find(|d| d.start_of_frame && d.inter_picture && d.spatial == 2 && d.temporal == 0)
        .expect("an S2 T0 inter frame")
        .frame_number;
    // (play, picture, spatial id) of each packet bob got, and when the
    // chain broke: the index in what bob got.
    let mut got: Vec<(usize, u8)> = Vec::new();
    let (mut picture, mut ts) = (0usize, 0u32);
    let mut broke_at = None;
    let mut plis_after_break = 0;
    let mut bob_latest: Option<Box<DdStructure>> = None;
    for ((seq, marker, v), d) in packets.iter().zip(&decoded) {
        if d.start_of_frame && d.spatial == 0 {
            picture += 1;
            ts = ts.wrapping_add(4500);
        }
        if d.frame_number != lost {
            let pkt = av1_rtp(*seq, ts, *marker, (PUB_SSRC, PT), v, &[0; 200]);
            assert!(net.peers[alice].client.send_rtp(&pkt));
        }
        // 20 pictures/s, three frames each.
        net.advance(Duration::from_millis(16));
        for pkt in std::mem::take(&mut net.peers[bob].rtp) {
            let h = RtpHeader::parse(&pkt).expect("valid RTP");
            let v = h.extension(&pkt, SUB_DD_EXT_ID).expect("the descriptor");
            let d = DependencyDescriptor::parse(v, bob_latest.as_deref()).expect("decodes");
            if let Some(s) = &d.structure {
                bob_latest = Some(s.clone());
            }
            got.push((picture, d.spatial));
        }
        let plis = take_plis(&mut net.peers[alice].rtcp, Ssrc(PUB_SSRC));
        if broke_at.is_none() && net.counters().chain_breaks.get() > 0 {
            broke_at = Some(picture);
        }
        if broke_at.is_some() {
            plis_after_break += plis;
        }
    }
    let broke_at = broke_at.expect("S2's chain broke");
    assert_eq!(net.counters().chain_breaks.get(), 1);
    assert_eq!(net.counters().packets_lost.get() as usize, {
        packets
            .iter()
            .zip(&decoded)
            .filter(|(_, d)| d.frame_number == lost)
            .count()
    });
    // One play is 18 pictures; the second starts with a keyframe.
    let per_play = picture / 3;
    assert!(
        broke_at < per_play,
        "given up within the first play: {broke_at} of {per_play}"
    );
    let layers = |from: usize, to: usize| -> Vec<u8> {
        let mut v: Vec<u8> = got
            .iter()
            .filter(|(p, _)| (from..to).contains(p))
            .map(|(_, s)| *s)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    assert_eq!(layers(1, broke_at), [0, 1, 2], "every layer before");
    assert_eq!(
        layers(broke_at + 1, per_play + 1),
        [0, 1],
        "S0 and S1 until the keyframe"
    );
    assert_eq!(
        layers(per_play + 1, picture + 1),
        [0, 1, 2],
        "every layer after"
    );
    // The Router asked the publisher for a keyframe when it gave up.
    assert!(plis_after_break >= 1, "{plis_after_break} PLIs");
}
