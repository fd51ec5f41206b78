use super::*;

/// Chromium's AV1 L3T3 capture played `times` times
/// (`testing::av1_l3t3_replayed`): (sequence number, descriptor).
fn decoded(times: u16) -> Vec<(u16, DependencyDescriptor)> {
    let mut latest: Option<Box<DdStructure>> = None;
    crate::testing::av1_l3t3_replayed(times)
        .iter()
        .map(|(seq, _, v)| {
            let d = DependencyDescriptor::parse(v, latest.as_deref()).expect("decodes");
            if let Some(s) = &d.structure {
                latest = Some(s.clone());
            }
            (*seq, d)
        })
        .collect()
}

/// Feeds `d`'s packet to `c`, taking the structure it carries.
fn feed(c: &mut Chains, seq: u16, d: &DependencyDescriptor) {
    if let Some(s) = &d.structure {
        c.set_structure(s);
    }
    c.on_packet(d, seq);
}

/// The frame number of the `nth` (from 0) inter frame of layers
/// (`spatial`, `temporal`) in `packets`.
fn nth_frame(
    packets: &[(u16, DependencyDescriptor)],
    spatial: u8,
    temporal: u8,
    nth: usize,
) -> u16 {
    packets
        .iter()
        .filter(|(_, d)| {
            d.start_of_frame && d.inter_picture && d.spatial == spatial && d.temporal == temporal
        })
        .nth(nth)
        .expect("such a frame")
        .1
        .frame_number
}

/// The index in `packets` of the last keyframe's first packet.
fn last_keyframe(packets: &[(u16, DependencyDescriptor)]) -> usize {
    packets
        .iter()
        .rposition(|(_, d)| d.start_of_frame && !d.inter_picture && d.spatial == 0)
        .expect("a keyframe")
}

/// The sequence numbers of frame `n`'s packets.
fn seqs_of(packets: &[(u16, DependencyDescriptor)], n: u16) -> Vec<u16> {
    packets
        .iter()
        .filter(|(_, d)| d.frame_number == n)
        .map(|(s, _)| *s)
        .collect()
}

#[test]
fn chromium_l3t3_arriving_whole_breaks_no_chain() {
    let packets = decoded(2);
    let mut c = Chains::default();
    for (seq, d) in &packets {
        feed(&mut c, *seq, d);
        assert_eq!(c.broken_layers(), 0, "{d:?}");
    }
    // One chain per spatial layer, each of its own layer's T0 frames and
    // those below (the keyframe starts all three).
    assert_eq!(c.layer_chain, [Some(0), Some(1), Some(2), None]);
    assert_eq!(packets[0].1.chain_fdiffs(), [0, 0, 0]);
    assert_eq!(c.take_breaks(), 0);
}

#[test]
fn a_lost_s2_frame_breaks_s2_alone_until_the_next_keyframe() {
    let packets = decoded(2);
    let lost = nth_frame(&packets, 2, 0, 1);
    let lost_seqs = seqs_of(&packets, lost);
    assert!(!lost_seqs.is_empty());
    let mut c = Chains::default();
    let mut after = 0;
    let mut keyframes = 0;
    for (seq, d) in &packets {
        if d.frame_number == lost {
            continue;
        }
        if d.start_of_frame && !d.inter_picture && d.spatial == 0 {
            keyframes += 1;
        }
        feed(&mut c, *seq, d);
        if newer(d.frame_number, lost) && d.start_of_frame {
            after += 1;
            // Missing, and maybe on its way again: nothing broken yet.
            if after < 6 {
                assert_eq!(c.broken_layers(), 0);
            }
            // The NACK generator gives its packets up.
            if after == 6 {
                for s in &lost_seqs {
                    c.on_lost(*s);
                }
            }
        }
        let want = if after >= 6 && keyframes < 2 {
            0b100
        } else {
            0
        };
        assert_eq!(c.broken_layers(), want, "frame {}", d.frame_number);
    }
    assert_eq!(keyframes, 2);
    assert_eq!(c.take_breaks(), 1);
}

#[test]
fn a_lost_s0_frame_breaks_every_chain() {
    // S0's T0 frame is in every chain: the next frame, S1's, points at it
    // as the last of each.
    let packets = decoded(1);
    let lost = nth_frame(&packets, 0, 0, 1);
    let lost_seqs = seqs_of(&packets, lost);
    let mut c = Chains::default();
    let mut given_up = false;
    for (seq, d) in &packets {
        if d.frame_number == lost {
            continue;
        }
        feed(&mut c, *seq, d);
        if !given_up && d.frame_number == lost.wrapping_add(1) {
            assert_eq!(c.broken_layers(), 0, "missing is not lost");
            for s in &lost_seqs {
                c.on_lost(*s);
            }
            given_up = true;
            assert_eq!(c.broken_layers(), 0b111);
        }
    }
    assert!(given_up);
    assert_eq!(c.broken_layers(), 0b111, "until a keyframe");
    assert_eq!(c.take_breaks(), 3);
}

#[test]
fn a_frame_resent_in_time_or_out_of_every_chain_breaks_nothing() {
    let packets = decoded(1);
    let late = nth_frame(&packets, 2, 0, 1);
    let dropped = nth_frame(&packets, 1, 2, 1);
    let mut c = Chains::default();
    let mut held = Vec::new();
    for (seq, d) in &packets {
        if d.frame_number == late {
            held.push((*seq, d.clone()));
            continue;
        }
        if d.frame_number == dropped {
            continue;
        }
        feed(&mut c, *seq, d);
        // The resend of the late frame comes four frames after it.
        if d.frame_number == late.wrapping_add(4) && d.start_of_frame {
            for (s, d) in held.drain(..) {
                feed(&mut c, s, &d);
            }
        }
    }
    // A T2 frame no chain holds, given up.
    for s in seqs_of(&packets, dropped) {
        c.on_lost(s);
    }
    assert_eq!(c.broken_layers(), 0);
    assert_eq!(c.take_breaks(), 0);
}

#[test]
fn a_frame_missing_one_packet_is_lost() {
    let packets = decoded(1);
    // An S2 T0 frame of more than two packets; its second is given up.
    let frame = (0..)
        .map(|k| nth_frame(&packets, 2, 0, k))
        .find(|n| seqs_of(&packets, *n).len() > 2)
        .expect("a frame of three packets or more");
    let missing = seqs_of(&packets, frame)[1];
    let mut c = Chains::default();
    for (seq, d) in &packets {
        if *seq != missing {
            feed(&mut c, *seq, d);
        }
    }
    assert_eq!(c.broken_layers(), 0);
    c.on_lost(missing);
    assert_eq!(c.broken_layers(), 0b100);
}

#[test]
fn a_reset_breaks_every_chain_until_a_keyframe() {
    let packets = decoded(2);
    let mut c = Chains::default();
    let second_key = last_keyframe(&packets);
    for (i, (seq, d)) in packets.iter().enumerate() {
        feed(&mut c, *seq, d);
        if i == 10 {
            c.on_reset();
        }
        let want = if (10..second_key).contains(&i) {
            0b111
        } else {
            0
        };
        assert_eq!(c.broken_layers(), want, "packet {i}");
    }
    // No chains before a structure: nothing to break.
    let mut none = Chains::default();
    none.on_reset();
    none.on_lost(5);
    assert_eq!(none.broken_layers(), 0);
}

#[test]
fn a_frame_given_up_after_the_next_keyframe_breaks_nothing() {
    // The publisher's NACKs for a frame run up to a second: a keyframe
    // that came meanwhile started every chain again without it.
    let packets = decoded(2);
    let lost = nth_frame(&packets, 2, 0, 3);
    let lost_seqs = seqs_of(&packets, lost);
    let second_key = last_keyframe(&packets);
    let mut c = Chains::default();
    for (i, (seq, d)) in packets.iter().enumerate() {
        if d.frame_number != lost {
            feed(&mut c, *seq, d);
        }
        if i == second_key + 3 {
            for s in &lost_seqs {
                c.on_lost(*s);
            }
        }
        assert_eq!(c.broken_layers(), 0, "packet {i}");
    }
    assert_eq!(c.take_breaks(), 0);
}
