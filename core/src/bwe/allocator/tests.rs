//! The allocator's tables and timelines.
use super::*;

fn layer(kbps: u64, width: u16) -> LayerInfo {
    LayerInfo {
        bps: kbps * 1000,
        width: Some(width),
        active: true,
        temporal_bps: [0; 4],
        sync_bps: [0; 4],
    }
}

/// Three layers as Chromium sends a 640×480 camera: 160, 320, 640 wide.
fn three() -> Vec<LayerInfo> {
    vec![layer(100, 160), layer(300, 320), layer(900, 640)]
}

#[test]
fn layers_needed_by_size_whatever_is_active() {
    let mut paused_top = three();
    paused_top[2].active = false;
    let mut unknown = three();
    unknown[1].width = None;
    let mut reordered = three();
    reordered.reverse();
    let cases: [(&str, &[LayerInfo], Option<u16>, u8); 8] = [
        ("no width: all", &three(), None, 0b111),
        ("a 160 px tile: q", &three(), Some(160), 0b001),
        ("150 px: q covers it", &three(), Some(150), 0b001),
        ("200 px: q and h", &three(), Some(200), 0b011),
        ("1000 px: all, none covers", &three(), Some(1000), 0b111),
        ("a paused layer still counts", &paused_top, Some(600), 0b111),
        ("unknown width counts", &unknown, Some(160), 0b011),
        ("SDP order f, h, q", &reordered, Some(300), 0b110),
    ];
    for (name, layers, width, want) in cases {
        assert_eq!(
            needed_for_size(layers, width),
            want,
            "{name}: {:b}",
            needed_for_size(layers, width)
        );
    }
}

#[test]
fn table() {
    let mut inactive_top = three();
    inactive_top[2].active = false;
    let mut reordered = three();
    reordered.reverse(); // SDP order f, h, q
    /// (case, layers, share kbit/s, max width, target before, want)
    type Case = (
        &'static str,
        Vec<LayerInfo>,
        Option<u64>,
        Option<u16>,
        Option<usize>,
        usize,
    );
    let cases: Vec<Case> = vec![
        ("unlimited, any size: the top", three(), None, None, None, 2),
        (
            "unlimited, small tile: the layer that covers it",
            three(),
            None,
            Some(200),
            None,
            1,
        ),
        (
            "unlimited, tile exactly a layer's width",
            three(),
            None,
            Some(320),
            None,
            1,
        ),
        (
            "unlimited, tiny tile: the lowest",
            three(),
            None,
            Some(100),
            None,
            0,
        ),
        ("share fits the middle", three(), Some(500), None, None, 1),
        (
            "share below the lowest: still the lowest",
            three(),
            Some(50),
            None,
            None,
            0,
        ),
        (
            "share ample but tile small",
            three(),
            Some(5000),
            Some(300),
            None,
            1,
        ),
        ("top layer stopped", inactive_top, None, None, Some(2), 1),
        (
            "SDP order reversed: ranked by rate",
            reordered,
            Some(500),
            None,
            None,
            1,
        ),
        ("down at once", three(), Some(200), None, Some(2), 0),
        (
            "unlimited moves up at once",
            three(),
            None,
            None,
            Some(0),
            2,
        ),
        ("limited: up waits", three(), Some(5000), None, Some(0), 0),
    ];
    let now = Instant::now();
    for (name, layers, share, width, before, want) in cases {
        let mut s = LayerSelector {
            target: before.map(|spatial| LayerOption {
                spatial,
                temporal: ALL_TEMPORAL,
                bps: 0,
            }),
            ..Default::default()
        };
        let got = s.select_alone(now, &layers, share.map(|k| k * 1000), width);
        assert_eq!(got.map(|o| o.spatial), Some(want), "{name}");
    }
}

#[test]
fn up_only_after_the_share_holds_above_the_rate_with_margin() {
    let t0 = Instant::now();
    let ms = |m: u64| t0 + Duration::from_millis(m);
    let hold = UP_HOLD.as_millis() as u64;
    let mut s = LayerSelector::default();
    assert_eq!(
        s.select_alone(t0, &three(), Some(150_000), None)
            .map(|o| o.spatial),
        Some(0)
    );
    // 330 kbit/s fits layer 1 (300) but not with the 20 % margin on its
    // step up (100 + 200 × 1.2 = 340).
    for t in (0..5000).step_by(500) {
        assert_eq!(
            s.select_alone(ms(t), &three(), Some(330_000), None)
                .map(|o| o.spatial),
            Some(0)
        );
    }
    // 400 kbit/s: up after UP_HOLD of it, not before.
    assert_eq!(
        s.select_alone(ms(5000), &three(), Some(400_000), None)
            .map(|o| o.spatial),
        Some(0)
    );
    assert_eq!(
        s.select_alone(ms(5000 + hold - 500), &three(), Some(400_000), None)
            .map(|o| o.spatial),
        Some(0)
    );
    // A dip below the margin restarts the wait.
    assert_eq!(
        s.select_alone(ms(5000 + hold - 200), &three(), Some(330_000), None)
            .map(|o| o.spatial),
        Some(0)
    );
    let t1 = 5000 + hold;
    assert_eq!(
        s.select_alone(ms(t1), &three(), Some(400_000), None)
            .map(|o| o.spatial),
        Some(0)
    );
    assert_eq!(
        s.select_alone(ms(t1 + hold - 100), &three(), Some(400_000), None)
            .map(|o| o.spatial),
        Some(0)
    );
    assert_eq!(
        s.select_alone(ms(t1 + hold), &three(), Some(400_000), None)
            .map(|o| o.spatial),
        Some(1)
    );
    // And straight back down when the share falls.
    assert_eq!(
        s.select_alone(ms(t1 + hold + 100), &three(), Some(200_000), None)
            .map(|o| o.spatial),
        Some(0)
    );
}

#[test]
fn a_failed_upgrade_is_not_tried_again_before_its_backoff() {
    let t0 = Instant::now();
    let at = |t: u64| t0 + Duration::from_secs(t);
    let (h, b) = (UP_HOLD.as_secs(), BACKOFF_MIN.as_secs());
    let (low, mid, high) = (Some(200_000), Some(400_000), Some(1_200_000));
    let mut s = LayerSelector::default();
    let mut pick = |t: u64, share: Option<u64>| {
        s.select_alone(at(t), &three(), share, None)
            .map(|o| o.spatial)
    };
    assert_eq!(pick(0, Some(150_000)), Some(0));
    assert_eq!(pick(1, mid), Some(0));
    let up1 = 1 + h;
    assert_eq!(pick(up1, mid), Some(1));
    // Congestion right after: back down, and layer 1 is blocked.
    assert_eq!(pick(up1 + 1, low), Some(0));
    for t in up1 + 2..up1 + 1 + b {
        assert_eq!(pick(t, mid), Some(0), "{t} s");
    }
    // Tried again after the backoff (and the hold).
    assert_eq!(pick(up1 + 1 + b, mid), Some(0));
    let up2 = up1 + 1 + b + h;
    assert_eq!(pick(up2, mid), Some(1));
    // A second failure blocks it twice as long.
    assert_eq!(pick(up2 + 1, low), Some(0));
    for t in up2 + 2..up2 + 1 + 2 * b {
        assert_eq!(pick(t, mid), Some(0), "{t} s");
    }
    assert_eq!(pick(up2 + 1 + 2 * b, mid), Some(0));
    let up3 = up2 + 1 + 2 * b + h;
    assert_eq!(pick(up3, mid), Some(1));
    // It holds this time; a later failure starts again at BACKOFF_MIN.
    let held = up3 + FAILED_WITHIN.as_secs();
    assert_eq!(pick(held, mid), Some(1));
    assert_eq!(pick(held + 1, high), Some(1));
    let up4 = held + 1 + h;
    assert_eq!(pick(up4, high), Some(2));
    assert_eq!(pick(up4 + 1, mid), Some(1));
    assert_eq!(pick(up4 + b, high), Some(1));
    assert_eq!(pick(up4 + 1 + b, high), Some(1));
    assert_eq!(pick(up4 + 1 + b + h, high), Some(2));
}

#[test]
fn nothing_active_keeps_the_target() {
    let mut s = LayerSelector::default();
    let mut off = three();
    off.iter_mut().for_each(|l| l.active = false);
    assert_eq!(
        s.select_alone(Instant::now(), &off, None, None)
            .map(|o| o.spatial),
        None
    );
    assert_eq!(
        s.select_alone(Instant::now(), &three(), None, None)
            .map(|o| o.spatial),
        Some(2)
    );
    assert_eq!(
        s.select_alone(Instant::now(), &off, None, None)
            .map(|o| o.spatial),
        Some(2)
    );
    assert_eq!(
        s.select_alone(Instant::now(), &[], None, None)
            .map(|o| o.spatial),
        Some(2)
    );
}

#[test]
fn with_room_for_every_best_option_an_upgrade_is_taken_at_once() {
    let two = vec![ladder(&three(), None), ladder(&three(), None)];
    // 2 x 900 kbit/s, with the 20 % margin: 2.16 Mbit/s.
    assert!(upgrades_wait(&two, Some(2_100_000)));
    assert!(!upgrades_wait(&two, Some(2_200_000)));
    assert!(!upgrades_wait(&two, None));
    // One consumer on the lowest layer; a chain of probes finds 1.1
    // Mbit/s, room for its best (900 kbit/s) with the margin: it moves
    // there at the next decision, not UP_HOLD later.
    let t0 = Instant::now();
    let one = vec![ladder(&three(), None)];
    let l = &one[0];
    let mut s = LayerSelector::default();
    let share = Some(150_000);
    assert_eq!(
        s.select(t0, l, 0, 0, upgrades_wait(&one, share), false)
            .map(|o| o.spatial),
        Some(0)
    );
    let share = Some(1_100_000);
    assert!(!upgrades_wait(&one, share));
    assert_eq!(
        s.select(
            t0 + Duration::from_millis(500),
            l,
            2,
            2,
            upgrades_wait(&one, share),
            false
        )
        .map(|o| o.spatial),
        Some(2)
    );
    // Where the estimate is short of that, the same step waits.
    let mut s = LayerSelector::default();
    s.select(t0, l, 0, 0, true, false);
    assert_eq!(
        s.select(
            t0 + Duration::from_millis(500),
            l,
            2,
            2,
            upgrades_wait(&one, Some(1_000_000)),
            false
        )
        .map(|o| o.spatial),
        Some(0)
    );
}

/// Three layers as [`three`], each with three temporal layers at
/// libwebrtc's 40/20/40 % split (its VP8 L1T3 rate allocation).
fn three_l1t3() -> Vec<LayerInfo> {
    three()
        .into_iter()
        .map(|l| LayerInfo {
            temporal_bps: [l.bps * 4 / 10, l.bps * 2 / 10, l.bps * 4 / 10, 0],
            ..l
        })
        .collect()
}

/// A ladder as (encoding, temporal layer, kbit/s).
fn options(l: &[LayerOption]) -> Vec<(usize, u8, u64)> {
    l.iter()
        .map(|o| (o.spatial, o.temporal, o.bps / 1000))
        .collect()
}

#[test]
fn the_ladder_gives_up_frame_rate_only_on_the_lowest_encoding() {
    assert_eq!(
        options(&ladder(&three_l1t3(), None)),
        vec![
            (0, 0, 40),
            (0, 1, 60),
            (0, ALL_TEMPORAL, 100),
            (1, ALL_TEMPORAL, 300),
            (2, ALL_TEMPORAL, 900),
        ]
    );
    // A small tile: up to the layer that covers it.
    assert_eq!(ladder(&three_l1t3(), Some(300)).len(), 4);
    // No temporal layers known: one option per encoding, as simulcast.
    assert_eq!(ladder(&three(), None).len(), 3);
}

/// [`three_l1t3`] with Chromium's sync frames: every other T1 frame and
/// one T2 frame in four.
fn three_l1t3_sync() -> Vec<LayerInfo> {
    three_l1t3()
        .into_iter()
        .map(|l| LayerInfo {
            sync_bps: [0, l.temporal_bps[1] / 2, l.temporal_bps[2] / 4, 0],
            ..l
        })
        .collect()
}

#[test]
fn the_next_layers_sync_frames_are_a_step_between_two_layers() {
    let l = ladder(&three_l1t3_sync(), None);
    assert_eq!(
        options(&l),
        vec![
            (0, 0, 40),
            (0, WITH_NEXT_SYNC, 50),
            (0, 1, 60),
            (0, 1 | WITH_NEXT_SYNC, 70),
            (0, ALL_TEMPORAL, 100),
            (1, ALL_TEMPORAL, 300),
            (2, ALL_TEMPORAL, 900),
        ]
    );
    // Where every frame of a layer is a sync frame, no step.
    let all_sync: Vec<LayerInfo> = three_l1t3()
        .into_iter()
        .map(|l| LayerInfo {
            sync_bps: l.temporal_bps,
            ..l
        })
        .collect();
    assert_eq!(ladder(&all_sync, None).len(), 5);
    // Down one layer per decision (the rate at least halved, no more):
    // all → T1 → T0; from T1 with T2's sync frames to T0 with T1's.
    let t0 = Instant::now();
    let mut s = LayerSelector::default();
    let mut pick = |ms: u64, wanted: usize, limited: bool| {
        s.select(
            t0 + Duration::from_millis(ms),
            &l,
            wanted,
            wanted,
            limited,
            false,
        )
        .map(|o| o.temporal)
    };
    assert_eq!(pick(0, 4, false), Some(ALL_TEMPORAL));
    assert_eq!(pick(500, 0, true), Some(1));
    assert_eq!(pick(1000, 0, true), Some(0));
    assert_eq!(pick(1500, 3, false), Some(1 | WITH_NEXT_SYNC));
    assert_eq!(pick(2000, 0, true), Some(WITH_NEXT_SYNC));
    assert_eq!(pick(2500, 0, true), Some(0));
    // Not below what is wanted.
    assert_eq!(pick(3000, 4, false), Some(ALL_TEMPORAL));
    assert_eq!(pick(3500, 3, true), Some(1 | WITH_NEXT_SYNC));
}

#[test]
fn a_shrinking_budget_takes_resolution_then_frame_rate_then_a_video() {
    let l = ladder(&three_l1t3(), None);
    let demands = [
        Demand {
            ladder: &l,
            speaker: true,
        },
        Demand {
            ladder: &l,
            speaker: false,
        },
        Demand {
            ladder: &l,
            speaker: false,
        },
    ];
    // (budget kbit/s, each one's option as (spatial, temporal)).
    let full = (2, ALL_TEMPORAL);
    let low = (0, ALL_TEMPORAL);
    /// Each consumer's option as (spatial, temporal), or none.
    type Got = Vec<Option<(usize, u8)>>;
    let cases: Vec<(u64, Got)> = vec![
        (5000, vec![Some(full), Some(full), Some(full)]),
        (2000, vec![Some(full), Some(full), Some(low)]),
        // All at the lowest encoding's full rate, the rest in order.
        (500, vec![Some((1, ALL_TEMPORAL)), Some(low), Some(low)]),
        (300, vec![Some(low), Some(low), Some(low)]),
        // Frame rate of the others (the first keeps its lowest encoding
        // at full rate: it is never paused)…
        (260, vec![Some(low), Some(low), Some((0, 1))]),
        (180, vec![Some(low), Some((0, 0)), Some((0, 0))]),
        // …and only then a whole video, the least important first.
        (150, vec![Some(low), Some((0, 0)), None]),
        (120, vec![Some(low), None, None]),
        (10, vec![Some(low), None, None]),
    ];
    for (kbps, want) in cases {
        let got: Got = allocate(&demands, Some(kbps * 1000))
            .into_iter()
            .zip(&demands)
            .map(|(r, d)| r.map(|r| (d.ladder[r].spatial, d.ladder[r].temporal)))
            .collect();
        assert_eq!(got, want, "{kbps} kbit/s");
    }
    assert_eq!(allocate(&demands, None), vec![Some(4); 3]);
    assert_eq!(allocate_up(&demands, None), vec![4; 3]);
    // What each may climb to: its own steps count with the margin,
    // the others' as they are. At 320 kbit/s all three are at the
    // lowest encoding's full rate (300) and 20 are left: not enough
    // for anyone's next encoding (+200 × 1.2). At 265 the third gets
    // T1 (+20 × 1.05 of the 25 left); at 260 it gets T1 only without
    // the margin.
    assert_eq!(allocate_up(&demands, Some(320_000)), vec![2, 2, 2]);
    assert_eq!(allocate_up(&demands, Some(265_000)), vec![2, 2, 1]);
    assert_eq!(allocate_up(&demands, Some(260_000)), vec![2, 2, 0]);
    assert_eq!(allocate(&demands, Some(260_000))[2], Some(1));
}

#[test]
fn temporal_steps_up_with_a_smaller_margin_and_a_shorter_hold() {
    let t0 = Instant::now();
    let l = ladder(&three_l1t3(), None);
    let mut s = LayerSelector::default();
    // (ms, wanted, up, limited, lossy) -> (spatial, temporal)
    let mut pick = |t: u64, wanted: usize, up: usize, limited: bool, lossy: bool| {
        s.select(
            t0 + Duration::from_millis(t),
            &l,
            wanted,
            up,
            limited,
            lossy,
        )
        .map(|o| (o.spatial, o.temporal))
    };
    assert_eq!(pick(0, 0, 0, true, false), Some((0, 0)));
    // T1 fits with the temporal margin: after its hold.
    let hold = TEMPORAL_UP_HOLD.as_millis() as u64;
    assert_eq!(pick(500, 1, 1, true, false), Some((0, 0)));
    assert_eq!(pick(500 + hold - 100, 1, 1, true, false), Some((0, 0)));
    assert_eq!(pick(500 + hold, 1, 1, true, false), Some((0, 1)));
    // Down to the base layer at once.
    assert_eq!(pick(3000, 0, 0, true, false), Some((0, 0)));
    // Not limited: the top at once. Then short of room: the lowest
    // encoding at its full rate at once, then one temporal layer per
    // decision; on a lossy path all the way at once.
    assert_eq!(pick(3500, 4, 4, false, false), Some((2, ALL_TEMPORAL)));
    assert_eq!(pick(4000, 0, 0, true, false), Some((0, ALL_TEMPORAL)));
    assert_eq!(pick(4500, 0, 0, true, false), Some((0, 1)));
    assert_eq!(pick(5000, 0, 0, true, false), Some((0, 0)));
    assert_eq!(pick(5500, 4, 4, false, false), Some((2, ALL_TEMPORAL)));
    assert_eq!(pick(6000, 0, 0, true, true), Some((0, 0)));
}
