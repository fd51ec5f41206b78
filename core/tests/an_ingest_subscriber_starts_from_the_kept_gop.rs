//! An ingest's video arrives on a direct transport (no network: the
//! control plane hands its RTP in) and cannot be asked for a keyframe, so
//! its Router keeps the packets since the last keyframe. A subscriber that
//! starts mid-GOP gets them at once, the earlier frames pulled together
//! just before the newest, then the live packets with gapless sequence
//! numbers and timestamps that go on from the newest frame's. The mirror
//! of such a track on another Router (a room spread over workers or nodes)
//! keeps its own GOP (`ProducerParams::keep_gop`).

mod common;

use common::{Net, rtp};
use sfu_core::proto::codec::VideoCodec;
use sfu_core::proto::rtp::{ExtensionMap, RtpHeader};
use sfu_core::router::{EncodingParams, MediaKind, ProducerParams};
use sfu_core::{ProducerId, Pt, Ssrc, TransportId};

const SPS_PPS_STAP_A: [u8; 13] = [
    24, 0, 4, 0x67, 0x42, 0xc0, 0x1f, 0, 4, 0x68, 0xce, 0x3c, 0x80,
];

/// The headers of what `peer` received.
fn headers(net: &Net, peer: usize) -> Vec<RtpHeader> {
    net.peers[peer]
        .rtp
        .iter()
        .map(|p| RtpHeader::parse(p).expect("rtp"))
        .collect()
}

/// A GOP of three packets: a keyframe (SPS and PPS, an IDR), a P-frame;
/// (sequence number, timestamp, payload).
fn short_gop() -> [(u16, u32, Vec<u8>); 3] {
    [
        (1, 3000, SPS_PPS_STAP_A.to_vec()),
        (2, 3000, vec![0x65, 1]),
        (3, 6000, vec![0x41, 2]),
    ]
}

/// An ingest's direct transport and its H.264 video producer (SSRC 5555,
/// payload type 102), which keeps its GOP as every direct producer does.
fn h264_ingest(net: &mut Net) -> (TransportId, ProducerId) {
    let ingest = net.router.create_direct_transport(None);
    let producer = net
        .router
        .create_producer(ProducerParams {
            transport: ingest,
            kind: MediaKind::Video,
            encodings: vec![EncodingParams::single(Ssrc(5555), None)],
            mid: None,
            payload_types: vec![Pt(102)],
            video_codec: Some(VideoCodec::H264),
            rtx_payload_types: Vec::new(),
            extensions: ExtensionMap::EMPTY,
            keep_gop: false,
        })
        .expect("producer");
    (ingest, producer)
}

#[test]
fn a_subscriber_gets_the_gop_at_once_then_the_live_packets() {
    let mut net = Net::new();
    let bob = net.add_peer();
    net.connect_all();
    let (ingest, producer) = h264_ingest(&mut net);
    let now = net.now;
    // A P-frame before any keyframe is not kept; then a keyframe (STAP-A
    // of SPS and PPS, an IDR in two FU-A fragments) and three P-frames.
    let frames: Vec<(u16, u32, Vec<u8>)> = vec![
        (9, 87_000, vec![0x41, 0]),
        (10, 90_000, SPS_PPS_STAP_A.to_vec()),
        (11, 90_000, vec![0x7c, 0x85, 1, 2]),
        (12, 90_000, vec![0x7c, 0x45, 3, 4]),
        (13, 93_000, vec![0x41, 5]),
        (14, 96_000, vec![0x41, 6]),
        (15, 99_000, vec![0x41, 7]),
    ];
    for (seq, ts, payload) in &frames {
        net.router
            .handle_direct(now, ingest, &rtp(102, *seq, *ts, 5555, payload));
    }
    // Nothing went anywhere: no one receives yet.
    net.step();
    assert!(net.peers[bob].rtp.is_empty());

    net.consume(bob, producer, 2222, (102, 102));
    net.step();
    let got = headers(&net, bob);
    assert_eq!(
        got.len(),
        6,
        "the keyframe's three packets and three P-frames"
    );
    assert_eq!(
        &net.peers[bob].rtp[0][got[0].header_len..],
        &SPS_PPS_STAP_A[..]
    );
    let ts: Vec<u32> = got
        .iter()
        .map(|h| h.timestamp.wrapping_sub(got[5].timestamp))
        .collect();
    assert_eq!(
        ts,
        vec![
            u32::MAX - 2,
            u32::MAX - 2,
            u32::MAX - 2,
            u32::MAX - 1,
            u32::MAX,
            0
        ],
        "earlier frames one tick apart before the newest"
    );
    for w in got.windows(2) {
        assert_eq!(w[1].seq, w[0].seq.wrapping_add(1), "gapless");
    }
    assert!(got.iter().all(|h| h.ssrc == Ssrc(2222)));
    assert_eq!(net.counters().gop_replays.get(), 1);
    assert_eq!(
        net.counters().keyframe_requests.get(),
        0,
        "no PLI to an ingest"
    );

    // Live packets go on from there.
    net.router
        .handle_direct(now, ingest, &rtp(102, 16, 102_000, 5555, &[0x41, 8]));
    net.step();
    let last = RtpHeader::parse(net.peers[bob].rtp.last().expect("one more")).expect("rtp");
    assert_eq!(last.seq, got[5].seq.wrapping_add(1));
    assert_eq!(last.timestamp, got[5].timestamp.wrapping_add(3000));

    // A packet for something that is not an open direct transport is
    // dropped and counted.
    let before = net.counters().drops(sfu_core::stats::DropReason::StaleId);
    net.router.handle_direct(
        now,
        net.peers[bob].transport,
        &rtp(102, 17, 105_000, 5555, &[0x41]),
    );
    assert_eq!(
        net.counters().drops(sfu_core::stats::DropReason::StaleId),
        before + 1
    );
}

/// A viewer's consumer may start while its WebRtcTransport is still
/// connecting (signaling outruns ICE and DTLS): the replay then goes
/// nowhere, and is made again once the transport connects.
#[test]
fn a_subscriber_that_starts_before_it_connects_gets_the_gop_once_connected() {
    let mut net = Net::new();
    let bob = net.add_peer();
    let (ingest, producer) = h264_ingest(&mut net);
    let now = net.now;
    for (seq, ts, payload) in short_gop() {
        net.router
            .handle_direct(now, ingest, &rtp(102, seq, ts, 5555, &payload));
    }
    assert!(!net.peers[bob].client.is_connected());
    net.consume(bob, producer, 2222, (102, 102));
    assert_eq!(net.counters().gop_replays.get(), 1, "replayed to nowhere");
    net.connect_all();
    net.step();
    let got = headers(&net, bob);
    assert_eq!(got.len(), 3, "the GOP, once connected");
    assert_eq!(
        &net.peers[bob].rtp[0][got[0].header_len..],
        &SPS_PPS_STAP_A[..]
    );
    for w in got.windows(2) {
        assert_eq!(w[1].seq, w[0].seq.wrapping_add(1), "gapless");
    }
    assert_eq!(
        net.counters().gop_replays.get(),
        2,
        "at the start, and again"
    );
    assert_eq!(net.counters().keyframe_requests.get(), 0);
}

#[test]
fn the_mirror_of_an_ingest_track_keeps_its_own_gop() {
    let mut net = Net::new();
    let bob = net.add_peer();
    net.connect_all();
    let pipe = net.router.create_pipe_transport();
    let params = ProducerParams {
        transport: pipe,
        kind: MediaKind::Video,
        encodings: vec![EncodingParams::single(Ssrc(7000), None)],
        mid: None,
        payload_types: vec![Pt(102)],
        video_codec: Some(VideoCodec::H264),
        rtx_payload_types: Vec::new(),
        extensions: ExtensionMap::EMPTY,
        keep_gop: true,
    };
    let mirror = net.router.create_producer(params).expect("mirror");
    let now = net.now;
    for (seq, ts, payload) in short_gop() {
        net.router
            .handle_piped(now, pipe, &rtp(102, seq, ts, 7000, &payload));
    }
    net.consume(bob, mirror, 3333, (102, 102));
    net.step();
    assert_eq!(net.peers[bob].rtp.len(), 3, "started from the mirror's GOP");
    assert_eq!(net.counters().gop_replays.get(), 1);
}

/// A file played back is a publisher on a direct transport too, which no
/// PLI reaches: a subscriber's keyframe request is reported to the
/// control plane instead (its player skips to the next keyframe), at most
/// once per keyframe interval as a PLI would be.
#[test]
fn a_keyframe_request_for_a_direct_producer_is_reported_as_an_event() {
    use sfu_core::proto::rtcp;
    use sfu_core::router::RouterEvent;
    let mut net = Net::new();
    let bob = net.add_peer();
    net.connect_all();
    let player = net.router.create_direct_transport(None);
    let producer = net
        .router
        .create_producer(ProducerParams {
            transport: player,
            kind: MediaKind::Video,
            encodings: vec![EncodingParams::single(Ssrc(4444), None)],
            mid: None,
            payload_types: vec![Pt(96)],
            video_codec: Some(VideoCodec::Vp8),
            rtx_payload_types: Vec::new(),
            extensions: ExtensionMap::EMPTY,
            keep_gop: true,
        })
        .expect("producer");
    let now = net.now;
    net.router
        .handle_direct(now, player, &rtp(96, 1, 3000, 4444, &[0x10, 0x11, 0, 0]));
    net.consume(bob, producer, 5555, (96, 96));
    net.step();
    let requested = |net: &mut Net| {
        let mut n = 0;
        while let Some(ev) = net.router.poll_event() {
            if ev == RouterEvent::KeyframeRequested(producer) {
                n += 1;
            }
        }
        n
    };
    // No kept GOP (no keyframe yet): the new consumer's start asks.
    assert_eq!(requested(&mut net), 1);
    // bob's PLI: inside the interval, deferred, not repeated.
    let mut pli = Vec::new();
    rtcp::write_pli(Ssrc(1), Ssrc(5555), &mut pli);
    assert!(net.peers[bob].client.send_rtcp(&pli));
    net.step();
    assert_eq!(requested(&mut net), 0);
    net.advance(std::time::Duration::from_secs(1));
    assert_eq!(
        requested(&mut net),
        1,
        "the deferred request, after the interval"
    );
}
