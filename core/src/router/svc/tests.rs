use super::*;
use crate::proto::codec::Vp9Descriptor;
use crate::proto::rtp::RtpHeader;
use crate::router::temporal::ALL_TEMPORAL;
use std::time::Duration;

/// One packet of a synthetic VP9 SVC stream: (sequence number, its
/// descriptor).
type Packet = (u16, Vp9Descriptor);

/// `pictures` pictures of three spatial layers, two packets per frame,
/// temporal layers 0, 2, 1, 2 (U set on each T1 and T2 frame), a keyframe
/// every `key_every` pictures (from the first); upper layers' inter frames
/// depend on the layer below only with `full_svc`.
fn stream(pictures: u16, key_every: u16, full_svc: bool) -> Vec<Packet> {
    let mut out = Vec::new();
    let mut seq = 100u16;
    for pic in 0..pictures {
        let key = pic % key_every == 0;
        let tid = [0, 2, 1, 2][usize::from(pic % 4)];
        for sid in 0..3u8 {
            for part in 0..2 {
                let d = Vp9Descriptor {
                    picture_id: Some(pic),
                    inter_picture: !key,
                    flexible: true,
                    begin: part == 0,
                    end: part == 1,
                    sid,
                    tid: Some(tid),
                    switching_up: tid > 0,
                    inter_layer: sid > 0 && (key || full_svc),
                    tl0picidx: None,
                    spatial_layers: (key && sid == 0 && part == 0).then_some(3),
                    sizes: (key && sid == 0 && part == 0).then_some([
                        (160, 120),
                        (320, 240),
                        (640, 480),
                        (0, 0),
                    ]),
                };
                out.push((seq, d));
                seq = seq.wrapping_add(1);
            }
        }
    }
    out
}

fn consumer() -> Consumer {
    Consumer::layered_for_test()
}

/// What a consumer sent of one packet: (its picture (ID or RTP
/// timestamp), SID, TID, output sequence number, marker written).
type Sent = (u32, u8, u8, u16, bool);

/// What `c` sends of `packets`.
fn run(c: &mut Consumer, packets: &[Packet], key_svc: bool) -> Vec<Sent> {
    let mut sent = Vec::new();
    for (seq, d) in packets {
        let Some(marker) = c.svc_pass(&d.frame(), *seq, key_svc, 0) else {
            continue;
        };
        let out = c.seq.input(*seq).expect("forwarded packets get a number");
        // The publisher marks the end of the top layer's frame.
        let marker = marker.unwrap_or(d.sid == 2 && d.end);
        sent.push((
            u32::from(d.picture_id.unwrap()),
            d.sid,
            d.tid.unwrap(),
            out,
            marker,
        ));
    }
    sent
}

fn assert_gapless(sent: &[Sent]) {
    for w in sent.windows(2) {
        assert_eq!(
            w[1].3,
            w[0].3.wrapping_add(1),
            "gap: {:?} → {:?}",
            w[0],
            w[1]
        );
    }
}

/// Each picture sent ends with exactly one marker, on its last packet.
fn assert_one_marker_per_picture(sent: &[Sent]) {
    for (i, p) in sent.iter().enumerate() {
        let last_of_picture = sent.get(i + 1).is_none_or(|n| n.0 != p.0);
        assert_eq!(p.4, last_of_picture, "marker at {p:?}");
    }
}

#[test]
fn k_svc_forwards_one_spatial_layer_between_keyframes_and_switches_at_one() {
    let packets = stream(24, 12, false);
    let mut c = consumer();
    c.set_layer_target(true, 0, ALL_TEMPORAL);
    // Pictures 0–7 at S0, then S2 asked for: it starts at the keyframe (12).
    let (a, b) = packets.split_at(8 * 6);
    let mut sent = run(&mut c, a, true);
    c.set_layer_target(true, 2, ALL_TEMPORAL);
    assert!(c.simulcast.as_ref().unwrap().spatial.needs_keyframe(true));
    sent.extend(run(&mut c, b, true));
    assert_gapless(&sent);
    assert_one_marker_per_picture(&sent);
    for p in &sent {
        match p.0 {
            0..12 => assert_eq!(p.1, 0, "S0 until the keyframe: {p:?}"),
            12 => {}
            _ => assert_eq!(p.1, 2, "S2 alone after it: {p:?}"),
        }
    }
    let key: Vec<u8> = sent.iter().filter(|p| p.0 == 12).map(|p| p.1).collect();
    assert_eq!(
        key,
        [0, 0, 1, 1, 2, 2],
        "the keyframe with the layers below"
    );
    assert_eq!(c.spatial_layers(), Some((2, 2)));
    assert!(!c.simulcast.as_ref().unwrap().spatial.needs_keyframe(true));

    // Down again: in K-SVC that waits for a keyframe as well.
    c.set_layer_target(true, 1, ALL_TEMPORAL);
    // The same stream on (sequence numbers go on), its next keyframe at 36.
    let more = stream(38, 36, false);
    let sent = run(&mut c, &more[24 * 6..], true);
    assert_gapless(&sent);
    assert!(sent.iter().filter(|p| p.0 < 36).all(|p| p.1 == 2));
    assert!(sent.iter().filter(|p| p.0 == 37).all(|p| p.1 == 1));
    assert!(sent.iter().any(|p| p.0 == 37));
}

#[test]
fn full_svc_goes_down_at_any_picture_and_up_at_a_keyframe() {
    let packets = stream(24, 12, true);
    let mut c = consumer();
    c.set_layer_target(true, 1, ALL_TEMPORAL);
    let mut sent = run(&mut c, &packets[..3 * 6 + 1], false);
    // Down to S0 in the middle of picture 3: from picture 4 on.
    c.set_layer_target(true, 0, ALL_TEMPORAL);
    assert!(!c.simulcast.as_ref().unwrap().spatial.needs_keyframe(false));
    sent.extend(run(&mut c, &packets[3 * 6 + 1..6 * 6], false));
    c.set_layer_target(true, 2, ALL_TEMPORAL);
    assert!(c.simulcast.as_ref().unwrap().spatial.needs_keyframe(false));
    sent.extend(run(&mut c, &packets[6 * 6..], false));
    assert_gapless(&sent);
    assert_one_marker_per_picture(&sent);
    let layers = |pic: u32| -> Vec<u8> {
        let mut v: Vec<u8> = sent.iter().filter(|p| p.0 == pic).map(|p| p.1).collect();
        v.dedup();
        v
    };
    assert_eq!(layers(0), [0, 1], "full SVC: the layers below too");
    assert_eq!(layers(3), [0, 1], "a picture begun goes on at its layers");
    assert_eq!(layers(4), [0]);
    assert_eq!(layers(11), [0], "up waits for the keyframe");
    assert_eq!(layers(12), [0, 1, 2]);
    assert_eq!(layers(23), [0, 1, 2]);
}

#[test]
fn temporal_layers_of_an_svc_stream_go_whole_pictures_at_a_time() {
    let packets = stream(24, 100, false);
    let mut c = consumer();
    c.set_layer_target(true, 1, 0);
    let mut sent = run(&mut c, &packets[..12 * 6], true);
    // Back to all temporal layers: up one layer per switching-up point.
    c.set_layer_target(true, 1, ALL_TEMPORAL);
    sent.extend(run(&mut c, &packets[12 * 6..], true));
    assert_gapless(&sent);
    assert_one_marker_per_picture(&sent);
    let tids_of = |range: std::ops::Range<u32>| -> Vec<u8> {
        let mut v: Vec<(u32, u8)> = sent
            .iter()
            .filter(|p| range.contains(&p.0))
            .map(|p| (p.0, p.2))
            .collect();
        v.dedup();
        v.into_iter().map(|(_, t)| t).collect()
    };
    // The keyframe (T0, S0 and S1), then T0 pictures only: 0, 4, 8.
    assert_eq!(tids_of(0..12), [0, 0, 0]);
    // Up at picture 13 (T2 above T0: not one step) no; at 14 (T1, U): T1;
    // at 15 (T2, U): T2.
    assert_eq!(tids_of(12..20), [0, 1, 2, 0, 2, 1, 2]);
    // Every picture forwarded has its S1 frame (the consumer's layer).
    for pic in sent.iter().map(|p| p.0) {
        assert!(sent.iter().any(|p| p.0 == pic && p.1 == 1), "picture {pic}");
    }
}

#[test]
fn a_consumer_without_layer_state_forwards_the_stream_as_it_came() {
    let packets = stream(8, 4, false);
    let mut c = consumer();
    c.simulcast = None;
    for (seq, d) in &packets {
        assert_eq!(c.svc_pass(&d.frame(), *seq, true, 0), Some(None));
    }
}

#[test]
fn spatial_layer_rates_are_each_layers_own_in_k_svc_and_cumulative_in_full_svc() {
    let t0 = Instant::now();
    for full_svc in [false, true] {
        let mut layers = SpatialLayers::default();
        layers.sample(t0, Duration::ZERO);
        let packets = stream(40, 20, full_svc);
        for (i, (_, d)) in packets.iter().enumerate() {
            // S0 packets 100 bytes, S1 200, S2 400: 4 pictures per 100 ms.
            let at = t0 + Duration::from_millis(25 * (i / 6) as u64);
            layers.on_packet(&d.frame(), 100 << d.sid, at);
            if let (Some(n), Some(sizes)) = (d.spatial_layers, d.sizes) {
                layers.set_sizes(&sizes[..usize::from(n)]);
            }
        }
        let end = t0 + Duration::from_secs(1);
        layers.sample(end, Duration::ZERO);
        assert!(layers.is_layered());
        assert_eq!(layers.key_svc(), !full_svc);
        let infos = layers.infos(end, Duration::from_secs(2));
        assert_eq!(infos.len(), 3);
        let widths: Vec<_> = infos.iter().map(|l| l.width).collect();
        assert_eq!(widths, [Some(160), Some(320), Some(640)]);
        // 80 packets a layer in 1 s, plus 38 bytes of headers each.
        let own = |sid: u64| 80 * 8 * ((100 << sid) + 38);
        let want: Vec<u64> = if full_svc {
            vec![own(0), own(0) + own(1), own(0) + own(1) + own(2)]
        } else {
            vec![own(0), own(1), own(2)]
        };
        let got: Vec<u64> = infos.iter().map(|l| l.bps).collect();
        assert_eq!(got, want, "full SVC: {full_svc}");
        // Temporal layers 0, 2, 1, 2: T2 is half of each layer's payload.
        let s0 = infos[0].temporal_bps;
        assert_eq!(s0[2], s0[0] + s0[1]);
        assert!(infos.iter().all(|l| l.active));
    }
}

/// The VP9 descriptors of a capture in `testdata/rtp/`, with each
/// packet's sequence number and marker bit.
fn captured(name: &str) -> Vec<(u16, bool, Vp9Descriptor)> {
    crate::testing::testdata_rtp(name)
        .iter()
        .map(|pkt| {
            let h = RtpHeader::parse(pkt).expect("captured RTP parses");
            let d = Vp9Descriptor::parse(&pkt[h.header_len..]).expect("VP9 descriptor");
            (h.seq, h.marker, d)
        })
        .collect()
}

/// A captured packet: sequence number, marker bit, RTP timestamp, its
/// frame's layers.
type Frame = (u16, bool, u32, LayeredFrame);

/// The frames of a capture: VP9 by its payload descriptor, AV1 by the
/// dependency descriptor its recording keeps (`testing::AV1_DD_EXT_ID`),
/// followed through `layers`.
fn captured_frames(name: &str, layers: &mut SpatialLayers) -> Vec<Frame> {
    crate::testing::testdata_rtp(name)
        .iter()
        .map(|pkt| {
            let h = RtpHeader::parse(pkt).expect("captured RTP parses");
            let f = match h.extension(pkt, crate::testing::AV1_DD_EXT_ID) {
                Some(v) => layers.av1_packet(v, h.seq).expect("dependency descriptor"),
                None => Vp9Descriptor::parse(&pkt[h.header_len..])
                    .expect("VP9 descriptor")
                    .frame(),
            };
            layers.on_packet(&f, pkt.len(), Instant::now());
            (h.seq, h.marker, h.timestamp, f)
        })
        .collect()
}

#[test]
fn chromium_l3t3_key_descriptors_as_a_top_layer_consumer_got_them() {
    // Chromium 156's L3T3_KEY at 960x540 (flexible mode), recorded: the
    // keyframe with all three layers, then S2's frames alone (K-SVC).
    let packets = captured("vp9-l3t3-key.sfurec");
    assert!(packets.len() > 100, "{} packets", packets.len());
    let (_, _, first) = packets[0];
    assert!(first.keyframe() && first.flexible);
    assert_eq!(first.spatial_layers, Some(3));
    assert_eq!(
        first.sizes.unwrap()[..3],
        [(240, 135), (480, 270), (960, 540)]
    );
    let mut layers = SpatialLayers::default();
    let t0 = Instant::now();
    for (_, marker, d) in &packets {
        layers.on_packet(&d.frame(), 1000, t0);
        // The picture ends at S2, the top layer.
        assert_eq!(*marker, d.end && d.sid == 2, "{d:?}");
        if d.inter_picture {
            assert_eq!(d.sid, 2, "only S2 between keyframes: {d:?}");
            assert!(!d.inter_layer, "K-SVC: no inter-layer prediction: {d:?}");
        }
    }
    assert!(layers.key_svc());
    // Temporal layers 0, 2, 1, 2 at 20 frames/s: T0 every fourth picture.
    let t0_pictures = packets
        .iter()
        .filter(|(_, _, d)| d.begin && d.sid == 2 && d.tid == Some(0))
        .count();
    let pictures = packets
        .iter()
        .filter(|(_, _, d)| d.begin && d.sid == 2)
        .count();
    assert!(
        pictures >= 20 && t0_pictures * 4 <= pictures + 4 && t0_pictures * 4 + 4 >= pictures,
        "{t0_pictures} of {pictures}"
    );
}

/// A full-SVC capture (three spatial layers, temporal layers 0, 2, 1, 2)
/// through a consumer at S1, then S0 at T0, then S0 at all temporal
/// layers: what it sends is gapless, each picture ends with the marker,
/// the spatial layer goes down at the next picture, and the temporal
/// layers come back one at a time.
fn through_switches(frames: &[Frame]) {
    assert!(frames.len() > 100, "{} packets", frames.len());
    let mut c = consumer();
    let n = frames.len();
    // (phase, what was sent)
    let mut sent: Vec<(usize, Sent)> = Vec::new();
    for (i, (seq, marker, ts, f)) in frames.iter().enumerate() {
        let phase = match i * 20 / n {
            0..5 => 0,
            5..14 => 1,
            _ => 2,
        };
        let (s, t) = [(1, ALL_TEMPORAL), (0, 0), (0, ALL_TEMPORAL)][phase];
        c.set_layer_target(true, s, t);
        let Some(m) = c.svc_pass(f, *seq, false, 0) else {
            continue;
        };
        let out = c.seq.input(*seq).expect("forwarded packets get a number");
        sent.push((
            phase,
            (*ts, f.sid, f.tid.unwrap(), out, m.unwrap_or(*marker)),
        ));
    }
    let all: Vec<Sent> = sent.iter().map(|x| x.1).collect();
    assert_gapless(&all);
    assert_one_marker_per_picture(&all);
    // Pictures (timestamp, SIDs, TID) sent in each phase.
    let pictures = |phase: usize| {
        let mut v: Vec<(u32, Vec<u8>, u8)> = Vec::new();
        for (_, p) in sent.iter().filter(|x| x.0 == phase) {
            match v.last_mut() {
                Some(l) if l.0 == p.0 => {
                    if !l.1.contains(&p.1) {
                        l.1.push(p.1);
                    }
                }
                _ => v.push((p.0, vec![p.1], p.2)),
            }
        }
        v
    };
    let (a, b, c3) = (pictures(0), pictures(1), pictures(2));
    // S1 with S0 below it (full SVC), never S2.
    assert!(a.len() >= 2 && a.iter().all(|p| p.1 == [0, 1]), "{a:?}");
    // S0 alone from the next picture on, T0 only.
    assert!(b.len() >= 2, "{b:?}");
    assert!(b[1..].iter().all(|p| p.1 == [0] && p.2 == 0), "{b:?}");
    // Up one temporal layer per switching-up point: T1 before any T2.
    let tids: Vec<u8> = c3.iter().map(|p| p.2).collect();
    let first_up = tids.iter().position(|t| *t != 0).expect("back up");
    assert_eq!(tids[first_up], 1, "T1 first: {tids:?}");
    assert!(tids[first_up..].contains(&2), "then T2: {tids:?}");
    assert!(c3.iter().all(|p| p.1 == [0]), "{c3:?}");
}

#[test]
fn chromium_vp9_l3t3_through_spatial_and_temporal_switches_stays_decodable() {
    // Chromium 156's VP9 L3T3 at 960x540 (flexible mode; U on every frame).
    let mut layers = SpatialLayers::default();
    let frames = captured_frames("vp9-l3t3.sfurec", &mut layers);
    assert!(
        !layers.key_svc(),
        "full SVC: upper layers predicted from below"
    );
    through_switches(&frames);
}

#[test]
fn chromium_av1_l3t3_through_spatial_and_temporal_switches_stays_decodable() {
    // Chromium 156's AV1 L3T3 at 960x540: layers from the dependency
    // descriptor's templates, switching-up points from its references.
    let mut layers = SpatialLayers::default();
    let frames = captured_frames("av1-l3t3.sfurec", &mut layers);
    assert!(
        !layers.key_svc(),
        "full SVC: upper layers predicted from below"
    );
    let infos = layers.infos(Instant::now(), std::time::Duration::from_secs(5));
    let widths: Vec<_> = infos.iter().map(|l| l.width).collect();
    assert_eq!(widths, [Some(240), Some(480), Some(960)]);
    through_switches(&frames);
}

#[test]
fn av1_consumer_steps_down_to_the_layers_a_lost_frame_leaves_whole() {
    // Chromium's AV1 L3T3 played twice (a keyframe at each start). S2's
    // second T0 inter frame is lost upstream, and its packets are given up
    // six frames later: S2's chain is broken until the second keyframe.
    let packets = crate::testing::av1_l3t3_replayed(2);
    let frame_number = |v: &[u8]| u16::from_be_bytes([v[1], v[2]]);
    let mut layers = SpatialLayers::default();
    let mut probe = SpatialLayers::default();
    let lost = packets
        .iter()
        .map(|(seq, _, v)| (frame_number(v), probe.av1_packet(v, *seq).unwrap()))
        .filter(|(_, f)| f.begin && f.inter_picture && f.sid == 2 && f.tid == Some(0))
        .nth(1)
        .expect("a second S2 T0 inter frame")
        .0;
    let mut c = consumer();
    c.set_layer_target(true, ALL_SPATIAL_LAYERS, ALL_TEMPORAL);
    let (mut lost_seqs, mut sent) = (Vec::new(), Vec::new());
    let (mut pic, mut lost_in, mut given_up_at, mut key_at) = (0u32, 0, None, None);
    for (seq, marker, v) in &packets {
        let n = frame_number(v);
        if n == lost {
            lost_seqs.push(*seq);
            lost_in = pic;
            continue;
        }
        let f = layers.av1_packet(v, *seq).expect("decodes");
        if f.picture_start() {
            pic += 1;
            if f.keyframe() && given_up_at.is_some() {
                key_at = Some(pic);
            }
        }
        if given_up_at.is_none() && n == lost.wrapping_add(6) {
            for s in &lost_seqs {
                layers.chains.on_lost(*s);
            }
            given_up_at = Some(pic);
        }
        let broken = layers.chains.broken_layers();
        let pass = c.svc_pass(&f, *seq, false, broken);
        if let (Some(g), None) = (given_up_at, key_at)
            && pic > g
        {
            assert_eq!(broken, 0b100, "S2's chain, picture {pic}");
            let spatial = c.simulcast.as_ref().unwrap().spatial;
            assert_eq!(spatial.current(), 1, "picture {pic}");
            assert!(spatial.needs_keyframe(false), "to climb back");
        }
        let Some(m) = pass else {
            continue;
        };
        let out = c.seq.input(*seq).expect("forwarded packets get a number");
        sent.push((pic, f.sid, f.tid.unwrap(), out, m.unwrap_or(*marker)));
    }
    let (g, k) = (given_up_at.expect("given up"), key_at.expect("a keyframe"));
    // No gap but the lost frame's: what is left out is renumbered.
    let gaps: Vec<u16> = sent
        .windows(2)
        .map(|w| w[1].3.wrapping_sub(w[0].3))
        .filter(|d| *d != 1)
        .collect();
    assert_eq!(gaps, [1 + lost_seqs.len() as u16], "only the lost frame's");
    // The picture of the lost frame, and the one the loss became known in,
    // end without a marker (its S1 frame had gone out before S2's was left
    // out); every other picture ends with one.
    let before: Vec<Sent> = sent
        .iter()
        .copied()
        .filter(|p| p.0 < g && p.0 != lost_in)
        .collect();
    let after: Vec<Sent> = sent.iter().copied().filter(|p| p.0 > g).collect();
    assert_one_marker_per_picture(&before);
    assert_one_marker_per_picture(&after);
    let sids = |from: u32, to: u32| -> Vec<u8> {
        let mut v: Vec<u8> = sent
            .iter()
            .filter(|p| (from..to).contains(&p.0))
            .map(|p| p.1)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    assert_eq!(sids(1, g), [0, 1, 2], "every layer before");
    assert_eq!(sids(g, k), [0, 1], "S0 and S1 until the keyframe");
    assert_eq!(sids(k, pic + 1), [0, 1, 2], "every layer from it");
    // S0 and S1 kept every temporal layer meanwhile.
    let tids: Vec<u8> = sent
        .iter()
        .filter(|p| (g + 1..k).contains(&p.0))
        .map(|p| p.2)
        .collect();
    assert!([0, 1, 2].iter().all(|t| tids.contains(t)), "{tids:?}");
}
