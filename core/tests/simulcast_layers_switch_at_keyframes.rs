//! Simulcast through the in-memory network: a publisher sends three VP8
//! layers (160, 320 and 640 px wide) whose SSRCs the offer did not
//! announce, with MID and RID header extensions only on their first
//! packets, as Chromium does. The server binds each SSRC from them and
//! keeps routing after they stop; a subscriber's consumer switches layers
//! only at keyframes, and what it receives stays one continuous stream:
//! sequence numbers without a gap, timestamps that only move forward, VP8
//! picture IDs and TL0PICIDX that count up by one per frame. Behind a
//! 300 kbit/s bottleneck the consumer settles on the lowest layer and tries
//! the next one rarely (its estimate grows while it gets less than it
//! could; a failed try backs off); once the limit is lifted, probe padding
//! finds the room and it is back on the top layer within 10 s.
#![allow(clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{FRAME, Net, SimulcastSource, TAGGED_PACKETS};
use sfu_core::proto::codec::Vp8Descriptor;
use sfu_core::proto::rtp::RtpHeader;
use sfu_core::router::RouterEvent;
use sfu_core::{ConsumerId, ProducerId};

const SUB_SSRC: u32 = 1001;
const SUB_RTX_SSRC: u32 = 1002;
const SUB_TWCC: u8 = 5;

/// What the subscriber got, packet by packet.
#[derive(Debug, Clone, Copy)]
struct Got {
    seq: u16,
    ts: u32,
    picture_id: u16,
    tl0: u8,
    frame_start: bool,
    keyframe: bool,
    layer: u8,
}

fn received(net: &mut Net, sub: usize, out: &mut Vec<Got>) {
    for b in std::mem::take(&mut net.peers[sub].rtp) {
        let h = RtpHeader::parse(&b).expect("forwarded RTP parses");
        if h.ssrc.0 != SUB_SSRC {
            continue;
        }
        let payload = &b[h.header_len..];
        let d = Vp8Descriptor::parse(payload).expect("VP8 descriptor");
        out.push(Got {
            seq: h.seq,
            ts: h.timestamp,
            picture_id: d.picture_id.expect("picture ID"),
            tl0: d.tl0picidx.expect("TL0PICIDX"),
            frame_start: d.frame_start,
            keyframe: d.keyframe,
            layer: *payload.last().expect("layer byte"),
        });
    }
}

fn setup(net: &mut Net) -> (usize, ProducerId, ConsumerId) {
    let (publisher, sub) = (net.add_peer(), net.add_peer());
    assert_eq!(publisher, 0);
    net.connect_all();
    let prod = net.produce_simulcast(publisher, &["q", "h", "f"], 97);
    // With RTX: retransmissions and probe padding go on its own SSRC.
    let cons = net.consume_with_rtx(sub, prod, SUB_SSRC, (96, 96), Some((SUB_RTX_SSRC, 97)));
    (sub, prod, cons)
}

/// Checks one continuous stream; returns the layers in the order seen.
fn check_continuity(got: &[Got]) -> Vec<u8> {
    let mut layers = vec![got[0].layer];
    assert!(got[0].keyframe, "the first packet starts a keyframe");
    for w in got.windows(2) {
        let (a, b) = (w[0], w[1]);
        assert_eq!(
            b.seq,
            a.seq.wrapping_add(1),
            "gapless sequence numbers: {a:?} → {b:?}"
        );
        assert!(
            (b.ts.wrapping_sub(a.ts) as i32) >= 0,
            "timestamps move forward: {a:?} → {b:?}"
        );
        if b.frame_start {
            assert!(
                b.ts != a.ts,
                "a new frame has a new timestamp: {a:?} → {b:?}"
            );
            assert_eq!(
                b.picture_id,
                (a.picture_id + 1) & 0x7fff,
                "picture ID +1: {a:?} → {b:?}"
            );
            assert_eq!(b.tl0, a.tl0.wrapping_add(1), "TL0PICIDX +1: {a:?} → {b:?}");
        } else {
            assert_eq!(
                (b.ts, b.picture_id, b.tl0),
                (a.ts, a.picture_id, a.tl0),
                "same frame"
            );
        }
        if b.layer != a.layer {
            assert!(
                b.keyframe,
                "a switch to layer {} starts at a keyframe",
                b.layer
            );
            layers.push(b.layer);
        }
    }
    layers
}

#[test]
fn ssrcs_are_bound_from_mid_and_rid_and_keep_routing_after_they_stop() {
    let mut net = Net::new();
    let (sub, prod, _) = setup(&mut net);
    let mut src = SimulcastSource::new();
    let mut got = Vec::new();
    for _ in 0..100 {
        src.tick(&mut net);
        net.advance(FRAME);
        received(&mut net, sub, &mut got);
    }
    let p = net.router.producer(prod).expect("producer");
    for (i, l) in src.layers.iter().enumerate() {
        assert_eq!(
            p.encoding_ssrc(i).map(|s| s.0),
            Some(l.ssrc),
            "layer {}",
            l.rid
        );
        assert!(
            l.sent > 3 * TAGGED_PACKETS,
            "most packets carried no MID/RID"
        );
    }
    // The top layer reaches the subscriber throughout, long after the
    // extensions stopped.
    let late = got.iter().filter(|g| g.layer == 2).count();
    assert!(late > 150, "only {late} packets of the top layer forwarded");
    assert_eq!(check_continuity(&got), vec![2]);
}

#[test]
fn layer_switches_happen_at_keyframes_and_the_stream_stays_continuous() {
    let mut net = Net::new();
    let (sub, _, cons) = setup(&mut net);
    let mut src = SimulcastSource::new();
    let mut got = Vec::new();
    // 3 s on the top layer, then tiles of 160 px (q), 320 px (h), any (f),
    // 3 s each.
    for (width, secs) in [(None, 3), (Some(160), 3), (Some(320), 3), (None, 3)] {
        net.router
            .set_consumer_max_width(cons, width)
            .expect("consumer");
        for _ in 0..secs * 20 {
            src.tick(&mut net);
            net.advance(FRAME);
            received(&mut net, sub, &mut got);
        }
    }
    let layers = check_continuity(&got);
    assert_eq!(layers, vec![2, 0, 1, 2], "the layers forwarded, in order");
    let c = net.router.consumer(cons).expect("consumer");
    assert_eq!(c.layer_switches(), 3);
    // Keyframes only as the switches asked: one per layer at the start and
    // one per switch, give or take a repeated request.
    assert!(src.keyframes <= 3 + 3 * 2, "{} keyframes", src.keyframes);
}

/// One frame through the network; prints the consumer's state once a
/// second. Returns the layer it forwards.
fn step(
    net: &mut Net,
    src: &mut SimulcastSource,
    sub: usize,
    cons: ConsumerId,
    got: &mut Vec<Got>,
    k: u32,
    label: &str,
) -> Option<u8> {
    src.tick(net);
    net.advance(FRAME);
    received(net, sub, got);
    let c = net.router.consumer(cons).expect("consumer");
    if k.is_multiple_of(20) {
        let tid = net.peers[sub].transport;
        let bwe = net.router.transport_bwe(tid).expect("transport");
        eprintln!(
            "{label}{:4.1} s layer {:?} target {} estimate {} cap {:?} probes {}",
            f64::from(k) / 20.0,
            c.layer(),
            c.target_layer(),
            bwe.bps(),
            bwe.cap(),
            net.counters().probes.get(),
        );
    }
    c.layer()
}

#[test]
fn behind_a_300_kbit_s_bottleneck_the_consumer_settles_on_the_lowest_layer_and_climbs_back() {
    let mut net = Net::new();
    net.subscriber_twcc_ext_id = Some(SUB_TWCC);
    let (sub, _, cons) = setup(&mut net);
    net.send_twcc_feedback(sub, SUB_TWCC);
    let down = &mut net.peers[sub].down;
    down.rate_bps = Some(300_000);
    down.queue_limit = Duration::from_millis(400);
    down.delay = Duration::from_millis(20);
    let mut src = SimulcastSource::new();
    let mut got = Vec::new();
    // The layer forwarded after each frame, from 10 s on.
    let mut late_layers = Vec::new();
    for k in 0..30u32 * 20 {
        let c = step(&mut net, &mut src, sub, cons, &mut got, k, "");
        if k >= 10 * 20 {
            late_layers.push(c);
        }
    }
    // From 10 s on, the lowest layer at least 90 % of the time: the
    // estimate grows while the subscriber gets less than it could, and a
    // failed try of the next layer is not repeated before its backoff.
    let lowest = late_layers.iter().filter(|l| **l == Some(0)).count();
    assert!(
        lowest * 10 >= late_layers.len() * 9,
        "on the lowest layer {lowest} of {} frames",
        late_layers.len()
    );
    let tries = late_layers
        .windows(2)
        .filter(|w| w[0] == Some(0) && w[1] != Some(0))
        .count();
    assert!(tries <= 2, "{tries} tries of a higher layer in 20 s");
    // The limit is lifted: probes find the room, and the consumer is back on
    // the top layer within 10 s.
    net.peers[sub].down.rate_bps = None;
    let mut back = None;
    for k in 0..20u32 * 20 {
        let c = step(&mut net, &mut src, sub, cons, &mut got, k, "lifted +");
        if c == Some(2) && back.is_none() {
            back = Some(k as f64 / 20.0);
        }
    }
    assert!(
        back.is_some_and(|t| t <= 10.0),
        "back on the top layer {back:?} s after the lift"
    );
    assert!(net.counters().probes.get() > 0, "it probed");
    // The link drops packets, but what arrives never goes back.
    for w in got.windows(2) {
        let d = w[1].seq.wrapping_sub(w[0].seq);
        assert!((1..1000).contains(&d), "{:?} → {:?}", w[0], w[1]);
    }
}

#[test]
fn a_layer_no_tile_needs_is_stopped_at_the_source_and_started_again_at_once() {
    let mut net = Net::new();
    let (sub, prod, cons) = setup(&mut net);
    let mut src = SimulcastSource::new();
    let mut got = Vec::new();
    // Runs `secs`, acting on what the router tells the publisher as a
    // browser would (a restarted encoding begins with a keyframe); returns
    // the times (in frames from the start of the run) and contents of
    // those messages.
    let run = |net: &mut Net, src: &mut SimulcastSource, got: &mut Vec<Got>, secs: u32| {
        let mut told = Vec::new();
        for frame in 1..=secs * 20 {
            src.tick(net);
            net.advance(FRAME);
            received(net, sub, got);
            while let Some(ev) = net.router.poll_event() {
                if let RouterEvent::SourceLayers(p, active) = ev {
                    assert_eq!(p, prod);
                    for (l, on) in src.layers.iter_mut().zip(&active) {
                        l.key_pending |= *on && !l.active;
                        l.active = *on;
                    }
                    told.push((frame, active));
                }
            }
        }
        told
    };
    assert!(
        run(&mut net, &mut src, &mut got, 3).is_empty(),
        "all needed"
    );
    // A 160 px tile: only q is used; after the hold, h and f stop.
    net.router
        .set_consumer_max_width(cons, Some(160))
        .expect("consumer");
    let told = run(&mut net, &mut src, &mut got, 6);
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0].1, [true, false, false]);
    let after = Duration::from_millis(50 * u64::from(told[0].0));
    assert!(after >= Duration::from_secs(3), "held {after:?}");
    assert!(after <= Duration::from_secs(5), "held {after:?}");
    assert_eq!(
        net.router.consumer(cons).expect("consumer").layer(),
        Some(0)
    );
    // The tile grows: everything is needed at once, and the consumer is
    // back on the top layer.
    net.router
        .set_consumer_max_width(cons, None)
        .expect("consumer");
    let told = run(&mut net, &mut src, &mut got, 8);
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0].1, [true, true, true]);
    assert!(told[0].0 <= 11, "within a layer pass: {told:?}");
    assert_eq!(
        net.router.consumer(cons).expect("consumer").layer(),
        Some(2)
    );
    assert_eq!(check_continuity(&got), vec![2, 0, 2]);
}
