//! Header extensions are mapped per subscriber (RFC 8285): a publisher's
//! audio level arrives under the id the subscriber negotiated, the
//! transport-wide sequence number (or, without it, abs-send-time) is ours
//! (per subscriber transport), the MID is the subscriber's m-section's, and
//! extensions the subscriber did not negotiate are dropped.

mod common;

use std::time::Duration;

use common::{
    AUDIO_LEVEL_EXT_ID, Net, SUBSCRIBER_ABS_SEND_TIME_EXT_ID, SUBSCRIBER_AUDIO_LEVEL_EXT_ID,
};
use sfu_core::proto::rtp::RtpHeader;
use sfu_core::router::MediaKind;

/// An Opus packet with the publisher's extensions: audio level (id 1,
/// `level`), its own abs-send-time (id 2), transport-wide seq (id 3) and
/// an id the subscriber never negotiated (7).
fn audio(seq: u16, level: u8) -> Vec<u8> {
    let mut p = vec![0x90, 111];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 960).to_be_bytes());
    p.extend_from_slice(&77u32.to_be_bytes());
    p.extend_from_slice(&[0xBE, 0xDE, 0, 4]);
    p.extend_from_slice(&[AUDIO_LEVEL_EXT_ID << 4, level]);
    p.extend_from_slice(&[(2 << 4) | 2, 0x12, 0x34, 0x56]);
    p.extend_from_slice(&[(3 << 4) | 1, 0, seq as u8]);
    p.extend_from_slice(&[(7 << 4) | 3, 9, 9, 9, 9]);
    p.extend_from_slice(&[0, 0]); // padding to 16 bytes
    p.extend_from_slice(b"opus");
    p
}

/// What `bob` receives of ten 20 ms audio packets from `alice`, with the
/// transport-wide sequence number under `twcc` (or not negotiated).
fn forwarded_audio(twcc: Option<u8>) -> Vec<bytes::Bytes> {
    let mut net = Net::new();
    net.subscriber_twcc_ext_id = twcc;
    let (alice, bob) = (net.add_peer(), net.add_peer());
    net.connect_all();
    let producer = net.produce(alice, MediaKind::Audio, 77, 111);
    net.consume(bob, producer, 2222, (111, 109));
    net.step();
    for k in 0..10u16 {
        assert!(net.peers[alice].client.send_rtp(&audio(k, 0x80 | k as u8)));
        net.advance(Duration::from_millis(20));
    }
    let got = std::mem::take(&mut net.peers[bob].rtp);
    assert_eq!(got.len(), 10);
    for (k, pkt) in got.iter().enumerate() {
        let h = RtpHeader::parse(pkt).expect("valid rtp");
        assert_eq!(&pkt[h.header_len..], b"opus");
        assert_eq!(h.extension(pkt, 4), Some(&b"5"[..]), "the MID");
        assert_eq!(
            h.extension(pkt, SUBSCRIBER_AUDIO_LEVEL_EXT_ID),
            Some(&[0x80 | k as u8][..]),
            "the publisher's level, under the subscriber's id"
        );
        for id in [1, 2, 3, 7] {
            assert_eq!(h.extension(pkt, id), None, "publisher's id {id} dropped");
        }
    }
    got
}

#[test]
fn audio_level_mid_and_transport_seq_arrive_under_the_subscribers_ids() {
    let mut prev: Option<u16> = None;
    for pkt in forwarded_audio(Some(5)) {
        let h = RtpHeader::parse(&pkt).expect("valid rtp");
        let twcc = h.extension(&pkt, 5).expect("our transport-wide seq");
        let twcc = u16::from_be_bytes([twcc[0], twcc[1]]);
        if let Some(s) = prev {
            assert_eq!(twcc, s.wrapping_add(1), "numbered per transport");
        }
        prev = Some(twcc);
        // A receiver estimates from abs-send-time only the packets without
        // a transport-wide seq: it would be 4 bytes of nothing here.
        assert_eq!(
            h.extension(&pkt, SUBSCRIBER_ABS_SEND_TIME_EXT_ID),
            None,
            "no abs-send-time next to transport-cc"
        );
    }
}

#[test]
fn without_transport_cc_our_abs_send_time_advances_with_the_clock() {
    let mut prev: Option<u32> = None;
    for pkt in forwarded_audio(None) {
        let h = RtpHeader::parse(&pkt).expect("valid rtp");
        let abs = h
            .extension(&pkt, SUBSCRIBER_ABS_SEND_TIME_EXT_ID)
            .expect("our abs-send-time");
        assert_eq!(abs.len(), 3);
        let abs = u32::from_be_bytes([0, abs[0], abs[1], abs[2]]);
        if let Some(t) = prev {
            // 20 ms in 6.18 fixed-point seconds is 5,243 (1 ms of slack).
            let d = abs.wrapping_sub(t) & 0x00ff_ffff;
            assert!((4980..=5510).contains(&d), "{d}");
        }
        prev = Some(abs);
        assert_eq!(h.extension(&pkt, 5), None, "no transport-wide seq");
    }
}

/// An AV1 packet (SSRC 88, payload type 45) whose dependency descriptor
/// (id 12) is `dd`.
fn av1(seq: u16, dd: &[u8]) -> Vec<u8> {
    common::av1_rtp(seq, u32::from(seq) * 3000, false, (88, 45), dd, b"av1-obu")
}

#[test]
fn the_av1_dependency_descriptor_is_copied_under_the_subscribers_id() {
    let mut net = Net::new();
    net.dependency_descriptor_ext_ids = Some((12, 9));
    let (alice, bob) = (net.add_peer(), net.add_peer());
    net.connect_all();
    let producer = net.produce(alice, MediaKind::Video, 88, 45);
    net.consume(bob, producer, 3333, (45, 35));
    net.step();
    // Chromium's AV1 L3T3 (testdata/rtp): a keyframe's first descriptor
    // carries the template structure (95 bytes), the next names a template
    // of it (3 bytes).
    let captured: Vec<Vec<u8>> = sfu_core::testing::testdata_rtp("av1-l3t3.sfurec")
        .iter()
        .take(2)
        .map(|pkt| {
            let h = RtpHeader::parse(pkt).expect("captured RTP");
            h.extension(pkt, 12)
                .expect("a dependency descriptor")
                .to_vec()
        })
        .collect();
    let (long, short) = (&captured[0], &captured[1]);
    assert_eq!((long.len(), short.len()), (95, 3));
    assert!(net.peers[alice].client.send_rtp(&av1(1, long)));
    assert!(net.peers[alice].client.send_rtp(&av1(2, short)));
    net.advance(Duration::from_millis(20));
    let got = std::mem::take(&mut net.peers[bob].rtp);
    assert_eq!(got.len(), 2);
    for (pkt, want) in got.iter().zip([&long[..], &short[..]]) {
        let h = RtpHeader::parse(pkt).expect("valid rtp");
        assert_eq!(h.extension(pkt, 9), Some(want), "under the subscriber's id");
        assert_eq!(h.extension(pkt, 12), None, "not under the publisher's");
        assert_eq!(&pkt[h.header_len..], b"av1-obu");
    }
}
