//! A publisher that stamps the transport-wide sequence number extension
//! gets transport-cc feedback (draft-holmer-rmcat-transport-wide-cc-
//! extensions-01) about 50 ms apart, saying which packets arrived and when:
//! what Chromium's estimator needs to raise its send rate.
#![allow(clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Net, TWCC_EXT_ID};
use sfu_core::proto::rtcp::{self, RtcpIter};
use sfu_core::proto::twcc;
use sfu_core::router::MediaKind;

/// A VP8-sized packet with the transport-wide sequence number `tw`.
fn stamped(seq: u16, tw: u16) -> Vec<u8> {
    let mut p = vec![0x90, 96];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 3000).to_be_bytes());
    p.extend_from_slice(&77u32.to_be_bytes());
    // RFC 8285 one-byte extension block: one element of 2 bytes, padded.
    p.extend_from_slice(&[0xBE, 0xDE, 0, 1, (TWCC_EXT_ID << 4) | 1]);
    p.extend_from_slice(&tw.to_be_bytes());
    p.push(0);
    p.extend_from_slice(&[7; 900]);
    p
}

#[test]
fn feedback_reports_arrivals_and_losses_every_50_ms() {
    let mut net = Net::new();
    let publisher = net.add_peer();
    net.connect_all();
    net.produce(publisher, MediaKind::Video, 77, 96);
    net.step();
    net.peers[publisher].rtcp.clear();
    let from = net.peers[publisher].addr;
    // 40 packets over 400 ms; transport-wide numbers 65_520.. wrap; every
    // 8th never arrives.
    for i in 0..40u16 {
        let tw = 65_520u16.wrapping_add(i);
        assert!(net.peers[publisher].client.send_rtp(&stamped(i, tw)));
        let d = net.peers[publisher].client.poll_transmit().expect("srtp");
        if i % 8 != 7 {
            let now = net.now;
            net.router.handle_datagram(now, from, &mut d.to_vec());
        }
        net.advance(Duration::from_millis(10));
    }
    net.advance(Duration::from_millis(100));
    let mut feedbacks = Vec::new();
    for c in std::mem::take(&mut net.peers[publisher].rtcp) {
        for p in RtcpIter::new(&c) {
            if (p.pt, p.count_or_fmt) == (rtcp::PT_RTPFB, twcc::FMT) {
                feedbacks.push(twcc::parse(p.bytes).expect("our feedback decodes"));
            }
        }
    }
    assert!(
        (7..=10).contains(&feedbacks.len()),
        "one about every 50 ms over 500 ms: {}",
        feedbacks.len()
    );
    let mut seen = Vec::new();
    for fb in &feedbacks {
        for (k, a) in fb.arrivals.iter().enumerate() {
            seen.push((fb.base_seq.wrapping_add(k as u16), a.is_some()));
        }
    }
    let expected: Vec<(u16, bool)> = (0..39u16)
        .map(|i| (65_520u16.wrapping_add(i), i % 8 != 7))
        .collect();
    assert_eq!(seen, expected, "every packet once, in order, losses marked");
    // Arrivals 10 ms apart (250 µs resolution), counting across feedbacks.
    let times: Vec<i64> = feedbacks
        .iter()
        .flat_map(|f| f.arrivals.iter().flatten().copied())
        .collect();
    assert!(
        times
            .windows(2)
            .all(|w| (10_000..=20_000).contains(&(w[1] - w[0]))),
        "{times:?}"
    );
}
