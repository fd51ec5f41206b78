use super::*;
use crate::proto::rtp::RtpHeader;
use crate::testing::AV1_DD_EXT_ID as DD_ID;

/// (marker, descriptor bytes) of each packet of a capture.
fn captured(name: &str) -> Vec<(bool, Vec<u8>)> {
    crate::testing::testdata_rtp(name)
        .iter()
        .map(|pkt| {
            let h = RtpHeader::parse(pkt).expect("captured RTP parses");
            let dd = h.extension(pkt, DD_ID).expect("a dependency descriptor");
            (h.marker, dd.to_vec())
        })
        .collect()
}

#[test]
fn chromium_l3t3_template_structure_decodes() {
    // Chromium 156's AV1 L3T3 at 960x540: the keyframe's first packet
    // carries the structure (95 bytes).
    let packets = captured("av1-l3t3.sfurec");
    let d = DependencyDescriptor::parse(&packets[0].1, None).expect("decodes alone");
    let s = d.structure.as_deref().expect("a structure");
    assert!(d.start_of_frame && !d.inter_picture && d.spatial == 0);
    // Five templates per spatial layer: T0 (two), T1, T2 (two).
    let layers: Vec<(u8, u8)> = s
        .templates
        .iter()
        .map(|t| (t.spatial, t.temporal))
        .collect();
    let want: Vec<(u8, u8)> = (0..3)
        .flat_map(|sid| [0, 0, 1, 2, 2].map(|tid| (sid, tid)))
        .collect();
    assert_eq!(layers, want);
    assert_eq!(s.spatial_layers(), 3);
    // Nine decode targets, (S, T) for each pair, protected by one chain
    // per spatial layer.
    let targets: Vec<(u8, u8)> = (0..3)
        .flat_map(|sid| (0..3).map(move |tid| (sid, tid)))
        .collect();
    assert_eq!(s.decode_targets, targets);
    assert_eq!(s.chains, 3);
    assert_eq!(s.protected_by, [0, 0, 0, 1, 1, 1, 2, 2, 2]);
    assert_eq!(
        s.resolutions.as_deref(),
        Some(&[(240, 135), (480, 270), (960, 540)][..])
    );
    // S1's first T0 template: required for its own targets, a switch point
    // of S2's, references the T0 of four pictures before (12 frames) and
    // S0 of its own picture (1), and its chains.
    let t = &s.templates[5];
    let dtis: Vec<u8> = (0..9).map(|dt| t.dti(dt)).collect();
    assert_eq!(dtis, [0, 0, 0, 2, 2, 2, DTI_SWITCH, DTI_SWITCH, DTI_SWITCH]);
    assert_eq!(t.fdiffs, [12, 1]);
    assert_eq!(t.chain_fdiffs, [1, 1, 1]);
    // The S0 T0 keyframe template references nothing.
    assert!(s.templates[1].fdiffs.is_empty());
}

#[test]
fn chromium_l3t3_packets_decode_against_the_structure() {
    let packets = captured("av1-l3t3.sfurec");
    let mut latest: Option<Box<DdStructure>> = None;
    let mut frames = 0;
    let mut last: Option<DependencyDescriptor> = None;
    for (marker, dd) in &packets {
        let d = DependencyDescriptor::parse(dd, latest.as_deref()).expect("decodes");
        if let Some(s) = &d.structure {
            latest = Some(s.clone());
        }
        // The marker ends the temporal unit: the end of S2's frame.
        assert_eq!(*marker, d.end_of_frame && d.spatial == 2, "{d:?}");
        if let Some(l) = &last {
            if d.start_of_frame {
                assert!(l.end_of_frame, "a frame starts after one ended");
                assert_eq!(d.frame_number, l.frame_number.wrapping_add(1));
                // S0, S1, S2 in each temporal unit, one temporal id.
                assert_eq!(d.spatial, (l.spatial + 1) % 3);
                if d.spatial > 0 {
                    assert_eq!(d.temporal, l.temporal);
                }
            } else {
                assert_eq!(d.frame_number, l.frame_number, "one frame");
            }
        }
        if d.start_of_frame {
            frames += 1;
            // Full SVC: every upper frame references the one below.
            assert_eq!(d.inter_layer, d.spatial > 0, "{d:?}");
            // References go back within a second of frames.
            for r in d.references() {
                let back = d.frame_number.wrapping_sub(r);
                assert!((1..=12).contains(&back), "{d:?}");
            }
        }
        last = Some(d);
    }
    assert!(frames >= 30, "{frames} frames");
}

#[test]
fn short_or_unknown_descriptors_decode_to_nothing() {
    let packets = captured("av1-l3t3.sfurec");
    let with_structure = &packets[0].1;
    // Every cut of the structure's packet is refused or decodes; none
    // panics. Cut inside the mandatory fields: refused.
    for n in 0..with_structure.len() {
        let r = DependencyDescriptor::parse(&with_structure[..n], None);
        if n < 3 {
            assert_eq!(r, None, "{n} bytes");
        }
    }
    // A packet naming a template, with no structure in force: nothing.
    let later = &packets[1].1;
    assert_eq!(later.len(), 3);
    assert_eq!(DependencyDescriptor::parse(later, None), None);
    // A template id beyond the structure's templates: nothing.
    let structure = DependencyDescriptor::parse(with_structure, None)
        .and_then(|d| d.structure)
        .expect("structure");
    let mut bad = later.clone();
    bad[0] = (bad[0] & 0xc0) | 40;
    assert_eq!(DependencyDescriptor::parse(&bad, Some(&structure)), None);
    // Garbage never panics.
    let mut x = 0x1234_5678u32;
    for len in 0..64 {
        let v: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        let _ = DependencyDescriptor::parse(&v, Some(&structure));
        let _ = DependencyDescriptor::parse(&v, None);
    }
}
