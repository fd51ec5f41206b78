//! VP8 temporal layers (L1T3 in each simulcast layer, as the page sends
//! them) through the in-memory network. A second video whose subscriber's
//! REMB leaves no room for its lowest layer at full frame rate gets it at
//! a lower one (the first video, never paused, keeps its full rate),
//! whole frames left out, and what it receives stays one stream a decoder
//! takes without asking for a keyframe: sequence numbers without a gap,
//! picture IDs up by one per frame, TL0PICIDX up by one per base-layer
//! frame, and a climb back up only at layer-sync frames. With two videos
//! and room for one at full rate, the second loses frame rate, not its
//! video. Random loss under a loss ceiling leaves every layer in: a NACK
//! is only a resend (a relief is for a bucket a probe spent).
#![allow(clippy::expect_used)]

mod common;

use common::{FRAME, Net, SimulcastSource};
use sfu_core::proto::codec::Vp8Descriptor;
use sfu_core::proto::rtcp;
use sfu_core::proto::rtp::RtpHeader;
use sfu_core::{ConsumerId, Ssrc};

/// One packet a subscriber got.
#[derive(Debug, Clone, Copy)]
struct Got {
    ssrc: u32,
    seq: u16,
    picture_id: u16,
    tl0: u8,
    tid: u8,
    sync: bool,
    frame_start: bool,
    keyframe: bool,
    /// Seconds since the start.
    at: f64,
}

fn received(net: &mut Net, sub: usize, at: f64, out: &mut Vec<Got>) {
    for b in std::mem::take(&mut net.peers[sub].rtp) {
        let h = RtpHeader::parse(&b).expect("forwarded RTP parses");
        if h.ssrc.0 % 10 == 2 {
            continue; // the RTX streams (1002, 1012): resends, probe padding
        }
        let Some(d) = Vp8Descriptor::parse(&b[h.header_len..]) else {
            continue;
        };
        out.push(Got {
            ssrc: h.ssrc.0,
            seq: h.seq,
            picture_id: d.picture_id.expect("picture ID"),
            tl0: d.tl0picidx.expect("TL0PICIDX"),
            tid: d.tid.expect("TID"),
            sync: d.layer_sync,
            frame_start: d.frame_start,
            keyframe: d.keyframe,
            at,
        });
    }
}

/// One second: 20 frames from each source, the subscriber's REMB of `bps`
/// each 250 ms on `ssrcs`.
fn second(
    net: &mut Net,
    srcs: &mut [SimulcastSource],
    sub: usize,
    ssrcs: &[u32],
    bps: u64,
    got: &mut Vec<Got>,
) {
    for k in 0..20 {
        if k % 5 == 0 {
            let mut remb = Vec::new();
            rtcp::write_empty_rr(Ssrc(77), &mut remb);
            let ssrcs: Vec<Ssrc> = ssrcs.iter().map(|s| Ssrc(*s)).collect();
            rtcp::write_remb(Ssrc(77), bps, &ssrcs, &mut remb);
            assert!(net.peers[sub].client.send_rtcp(&remb));
        }
        for s in srcs.iter_mut() {
            s.tick(net);
        }
        net.advance(FRAME);
        let at = srcs[0].t.as_secs_f64();
        received(net, sub, at, got);
    }
}

/// Frames of `ssrc` that started within [from, to) seconds, per second.
fn fps(got: &[Got], ssrc: u32, from: f64, to: f64) -> f64 {
    let n = got
        .iter()
        .filter(|g| g.ssrc == ssrc && g.frame_start && g.at >= from && g.at < to)
        .count();
    n as f64 / (to - from)
}

/// One consumer's stream is continuous as a decoder needs it (from `from`
/// seconds on; from its start, it starts at a keyframe); returns the TIDs
/// of the frames, in order.
fn check_continuity(got: &[Got], ssrc: u32, from: f64) -> Vec<u8> {
    let s: Vec<&Got> = got
        .iter()
        .filter(|g| g.ssrc == ssrc && g.at >= from)
        .collect();
    assert!(from > 0.0 || s[0].keyframe, "starts at a keyframe");
    // (TID, layer sync) of each frame.
    let mut frames = vec![(s[0].tid, s[0].sync)];
    for w in s.windows(2) {
        let (a, b) = (w[0], w[1]);
        assert_eq!(b.seq, a.seq.wrapping_add(1), "no gap: {a:?} → {b:?}");
        if !b.frame_start {
            assert_eq!((b.picture_id, b.tl0, b.tid), (a.picture_id, a.tl0, a.tid));
            continue;
        }
        assert_eq!(b.picture_id, (a.picture_id + 1) & 0x7fff, "{a:?} → {b:?}");
        let tl0_step = u8::from(b.tid == 0);
        assert_eq!(b.tl0, a.tl0.wrapping_add(tl0_step), "{a:?} → {b:?}");
        frames.push((b.tid, b.sync));
    }
    // The one frame of the pattern that is no layer sync (the second T2,
    // which refers to the T1 and T2 before it) comes only after them (the
    // first two frames from `from` on have theirs before it).
    let known = if from > 0.0 { 2 } else { 0 };
    for (i, f) in frames.iter().enumerate().skip(known) {
        if f.0 > 0 && !f.1 {
            assert!(
                i >= 2 && frames[i - 1].0 == 1 && frames[i - 2].0 == 2,
                "frame {i} {f:?} without what it refers to: {:?}",
                &frames[i.saturating_sub(4)..=i]
            );
        }
    }
    frames.into_iter().map(|f| f.0).collect()
}

fn setup(net: &mut Net, publishers: usize) -> (usize, Vec<ConsumerId>, Vec<SimulcastSource>) {
    let pubs: Vec<usize> = (0..publishers).map(|_| net.add_peer()).collect();
    let sub = net.add_peer();
    net.connect_all();
    let mut cons = Vec::new();
    let mut srcs = Vec::new();
    for (i, p) in pubs.iter().enumerate() {
        let prod = net.produce_simulcast(*p, &["q", "h", "f"], 97);
        let ssrc = 1001 + 10 * i as u32;
        cons.push(net.consume_with_rtx(sub, prod, ssrc, (96, 96), Some((ssrc + 1, 97))));
        srcs.push(SimulcastSource::l1t3(*p, 5000 + 100 * i as u32));
    }
    (sub, cons, srcs)
}

#[test]
fn a_consumer_short_of_room_forwards_fewer_temporal_layers_and_its_stream_stays_continuous() {
    let mut net = Net::new();
    let (sub, cons, mut srcs) = setup(&mut net, 2);
    let mut got = Vec::new();
    let ssrcs = [1001, 1011];
    // 3 s with room for everything, 8 s with room for the first video's
    // lowest layer only (the first is never paused, so it keeps its full
    // frame rate; q is ~108 kbit/s on the wire, its T0 40 %), then room
    // again.
    for _ in 0..3 {
        second(&mut net, &mut srcs, sub, &ssrcs, 3_000_000, &mut got);
    }
    let full = fps(&got, 1011, 1.0, 3.0);
    for _ in 0..8 {
        second(&mut net, &mut srcs, sub, &ssrcs, 80_000, &mut got);
    }
    let c = net.router.consumer(cons[1]).expect("consumer");
    assert_eq!(c.layer(), Some(0), "the lowest layer");
    assert_eq!(c.temporal_layers(), (0, 0), "its base temporal layer");
    let low = fps(&got, 1011, 8.0, 11.0);
    let first = fps(&got, 1001, 8.0, 11.0);
    for _ in 0..20 {
        second(&mut net, &mut srcs, sub, &ssrcs, 3_000_000, &mut got);
    }
    let back = fps(&got, 1011, 28.0, 31.0);
    eprintln!("fps of the second: full {full}, short {low} (the first {first}), back {back}");
    assert!(full >= 19.0, "{full} fps with room");
    assert!((4.0..=6.0).contains(&low), "{low} fps on T0 alone");
    assert!(first >= 19.0, "the first keeps its frame rate: {first}");
    assert!(back >= 19.0, "{back} fps with room again");
    let tids = check_continuity(&got, 1011, 0.0);
    // Both ways through every layer.
    for t in 0..3 {
        assert!(tids.contains(&t), "T{t} forwarded");
    }
    check_continuity(&got, 1001, 0.0);
    let c = net.router.consumer(cons[1]).expect("consumer");
    assert_eq!(c.layer(), Some(2), "back on the top layer");
}

#[test]
fn with_room_for_one_video_at_full_rate_the_second_loses_frame_rate_not_its_video() {
    let mut net = Net::new();
    let (sub, cons, mut srcs) = setup(&mut net, 2);
    let mut got = Vec::new();
    // Two q layers at full rate need ~216 kbit/s on the wire (100 of
    // payload each, headers and 20 packets/s); 200 (less 5 %) leaves the
    // second one its T0 and T1 (60 % of the rate).
    for _ in 0..15 {
        second(&mut net, &mut srcs, sub, &[1001, 1011], 200_000, &mut got);
    }
    let (a, b) = (fps(&got, 1001, 10.0, 15.0), fps(&got, 1011, 10.0, 15.0));
    eprintln!("fps: first {a}, second {b}");
    assert!(a >= 19.0, "the first keeps its frame rate: {a}");
    assert!((8.0..=12.0).contains(&b), "the second at half rate: {b}");
    for (c, ssrc) in cons.iter().zip([1001, 1011]) {
        let c = net.router.consumer(*c).expect("consumer");
        assert_eq!(c.layer(), Some(0), "{ssrc}: the lowest layer");
        check_continuity(&got, ssrc, 0.0);
    }
}

/// Frames of `ssrc` within [from, to) seconds that are in the top layer
/// (T2) and no layer sync.
fn top_non_sync(got: &[Got], ssrc: u32, from: f64, to: f64) -> usize {
    got.iter()
        .filter(|g| g.ssrc == ssrc && g.frame_start && g.at >= from && g.at < to)
        .filter(|g| g.tid == 2 && !g.sync)
        .count()
}

fn nack(net: &mut Net, sub: usize, ssrc: u32, seq: u16) {
    let mut b = Vec::new();
    rtcp::write_empty_rr(Ssrc(77), &mut b);
    rtcp::write_nack(Ssrc(77), Ssrc(ssrc), &[(seq, 0)], &mut b);
    assert!(net.peers[sub].client.send_rtcp(&b));
}

#[test]
fn under_a_ceiling_from_random_loss_a_nack_is_only_a_resend_and_every_layer_stays() {
    let mut net = Net::new();
    net.subscriber_twcc_ext_id = Some(5);
    let (sub, _, mut srcs) = setup(&mut net, 1);
    net.send_twcc_feedback(sub, 5);
    let mut got = Vec::new();
    let last_seq = |got: &[Got]| got.iter().rev().find(|g| g.ssrc == 1001).map(|g| g.seq);
    for _ in 0..3 {
        second(&mut net, &mut srcs, sub, &[1001], 3_000_000, &mut got);
    }
    // A path that lost nothing: a NACK is only a resend.
    nack(&mut net, sub, 1001, last_seq(&got).expect("media"));
    second(&mut net, &mut srcs, sub, &[1001], 3_000_000, &mut got);
    let clean = top_non_sync(&got, 1001, 3.0, 4.0);
    assert_eq!(net.counters().reliefs.get(), 0, "no ceiling, no relief");
    // 2 s losing 8 % on the way: a loss ceiling holds for a while after.
    net.peers[sub].down.loss = 0.08;
    for _ in 0..2 {
        second(&mut net, &mut srcs, sub, &[1001], 3_000_000, &mut got);
    }
    net.peers[sub].down.loss = 0.0;
    for _ in 0..5 {
        second(&mut net, &mut srcs, sub, &[1001], 3_000_000, &mut got);
    }
    let before = top_non_sync(&got, 1001, 10.0, 11.0);
    nack(&mut net, sub, 1001, last_seq(&got).expect("media"));
    second(&mut net, &mut srcs, sub, &[1001], 3_000_000, &mut got);
    let next = (
        top_non_sync(&got, 1001, 11.1, 12.0),
        fps(&got, 1001, 11.1, 12.0),
    );
    eprintln!("T2 non-sync frames: clean {clean}, before {before}, after the NACK {next:?}");
    // The source's L1T3 at 20 fps (T0 T2 T1 T2, the T2 after a T0 a
    // sync): 5 of them a second.
    assert!(clean >= 4 && before >= 4, "at full rate: {clean}, {before}");
    // No probe spent a bucket (none ran: the estimate leaves room for
    // the top layer), so the loss was the path's own: giving up frame
    // rate would free nothing for the resends (scripts/quality.sh's
    // loss5 fell to 16 fps when it did).
    assert!(next.0 >= 4, "T2 kept after the NACK: {}", next.0);
    assert!(next.1 >= 19.0, "full frame rate: {}", next.1);
    assert_eq!(net.counters().reliefs.get(), 0, "no relief");
    check_continuity(&got, 1001, 9.0);
}
