//! Which simulcast layer a consumer forwards: a small sans-IO state machine
//! per consumer, fed the producer's layers, the consumer's share of its
//! subscriber's estimated bandwidth and the largest width the subscriber
//! shows the track at.
//!
//! - The wanted layer is the best that fits both: the highest whose rate
//!   fits the share, among those not wider than needed (the smallest layer
//!   at least as wide as the tile, and those below it). When even the
//!   lowest does not fit, the lowest.
//! - Down at once: a layer that no longer fits must stop.
//! - Up only after the share has held above the higher layer's rate ×
//!   [`UP_MARGIN`] for [`UP_HOLD`]; a share that is not limited (the
//!   subscriber has seen no congestion) moves up at once.
//! - An upgrade that has to go back down within [`FAILED_WITHIN`] failed:
//!   the link did not take the layer although the estimate said it would
//!   (the estimate grows while a subscriber receives less than it could).
//!   That layer and those above are not tried again for [`BACKOFF_MIN`],
//!   doubling with each failure up to [`BACKOFF_MAX`], as libwebrtc backs
//!   off its probes; an upgrade that holds resets it.
//! - The switch itself happens at the target layer's next keyframe (the
//!   router's job); this only names the target.
//!
//! Layers are ranked by their measured rate, not by their order in the
//! SDP, so any RID order works.

use std::time::{Duration, Instant};

/// An upgrade to a better encoding needs the share to exceed its rate by
/// this factor…
pub const UP_MARGIN: f64 = 1.2;
/// …for this long.
pub const UP_HOLD: Duration = Duration::from_secs(2);
/// A temporal layer more (within an encoding) needs its rate × this…
pub const TEMPORAL_UP_MARGIN: f64 = 1.05;
/// …for this long: undoing it costs no keyframe, only the next frames.
pub const TEMPORAL_UP_HOLD: Duration = Duration::from_secs(1);
/// After its path lost packets, a subscriber's layers climb no higher than
/// what got through then for this long. A policer's token bucket lets an
/// estimate run past the rate for seconds before it drops anything; this
/// keeps the next climb from running into the same wall at once.
pub const LOSS_CEILING_HOLD: Duration = Duration::from_secs(8);
/// Going back down this soon after an upgrade means the upgrade failed.
pub const FAILED_WITHIN: Duration = Duration::from_secs(5);
/// A failed layer is not tried again for this long at first…
pub const BACKOFF_MIN: Duration = Duration::from_secs(10);
/// …and at most this long after repeated failures.
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// What is known of one layer (encoding) of a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerInfo {
    /// Its received rate, bit/s.
    pub bps: u64,
    /// Its width in pixels, when known (from a VP8 keyframe or an H.264 SPS).
    pub width: Option<u16>,
    /// It is being received (a packet in the last second or so).
    pub active: bool,
    /// The received rate of each of its temporal layers alone (TID 0–3),
    /// bit/s; all 0 when the stream has none or they are not known.
    pub temporal_bps: [u64; 4],
}

/// The active layers ranked by rate (lowest first), and how many of them
/// are not wider than needed for `max_width`: up to the first at least as
/// wide.
fn ranked(layers: &[LayerInfo], max_width: Option<u16>) -> (Vec<usize>, usize) {
    let mut ranked: Vec<usize> = (0..layers.len()).filter(|i| layers[*i].active).collect();
    ranked.sort_by_key(|i| (layers[*i].bps, *i));
    let by_size = match max_width {
        Some(w) => ranked
            .iter()
            .position(|i| layers[*i].width.is_some_and(|lw| lw >= w))
            .map_or(ranked.len(), |p| p + 1),
        None => ranked.len(),
    };
    (ranked, by_size)
}

/// The layers (bit i: layer i) a consumer shown at `max_width` can use,
/// active or not: all when its width is unknown, else those narrower than
/// it and the narrowest at least as wide; a layer of unknown width counts.
/// The rest need not be encoded for it.
pub fn needed_for_size(layers: &[LayerInfo], max_width: Option<u16>) -> u8 {
    let all = (1u16 << layers.len().min(8)).wrapping_sub(1) as u8;
    let Some(w) = max_width else {
        return all;
    };
    let cover = layers
        .iter()
        .enumerate()
        .filter_map(|(i, l)| l.width.filter(|lw| *lw >= w).map(|lw| (lw, i)))
        .min();
    layers
        .iter()
        .enumerate()
        .filter(|(i, l)| match l.width {
            None => true,
            Some(lw) => lw < w || cover.is_some_and(|(_, c)| c == *i),
        })
        .fold(0, |m, (i, _)| m | (1 << i))
}

/// A temporal layer id meaning "all of them".
pub const ALL_TEMPORAL: u8 = u8::MAX;

/// One thing a consumer can forward: an encoding (a simulcast layer or
/// spatial layer, by index) up to a temporal layer, and its rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerOption {
    /// The encoding's index among the producer's.
    pub spatial: usize,
    /// The highest temporal layer id forwarded; [`ALL_TEMPORAL`]: all.
    pub temporal: u8,
    /// Its rate, bit/s.
    pub bps: u64,
}

impl LayerOption {
    fn same(&self, o: &LayerOption) -> bool {
        self.spatial == o.spatial && self.temporal == o.temporal
    }
}

/// A consumer's options from least to most, for its tile width
/// `max_width` (`None`: any): the lowest encoding at each of its temporal
/// layers (its base layer alone first), then each better encoding not
/// wider than needed at its full frame rate. Frame rate is what is given
/// up first, but only on the lowest encoding: above it, resolution goes
/// before frame rate. An encoding whose temporal layers are unknown (no
/// rates per layer) is one option. Empty while no layer is active.
pub fn ladder(layers: &[LayerInfo], max_width: Option<u16>) -> Vec<LayerOption> {
    let (ranked, n) = ranked(layers, max_width);
    let mut out = Vec::with_capacity(n + 3);
    for (k, &i) in ranked[..n].iter().enumerate() {
        let l = &layers[i];
        let total: u64 = l.temporal_bps.iter().sum();
        let layers_seen = l
            .temporal_bps
            .iter()
            .rposition(|b| *b > 0)
            .map_or(0, |t| t + 1);
        if k == 0 && layers_seen > 1 && total > 0 {
            let mut cum = 0;
            for t in 0..layers_seen - 1 {
                cum += l.temporal_bps[t];
                out.push(LayerOption {
                    spatial: i,
                    temporal: t as u8,
                    bps: (l.bps as u128 * u128::from(cum) / u128::from(total)) as u64,
                });
            }
        }
        out.push(LayerOption {
            spatial: i,
            temporal: ALL_TEMPORAL,
            bps: l.bps,
        });
    }
    out
}

/// The layer a consumer shown at `max_width` would take with bandwidth to
/// spare, if any is active.
pub fn best_for_size(layers: &[LayerInfo], max_width: Option<u16>) -> Option<usize> {
    let (ranked, n) = ranked(layers, max_width);
    n.checked_sub(1).map(|i| ranked[i])
}

/// One consumer's part in [`allocate`].
#[derive(Debug, Clone, Copy)]
pub struct Demand<'a> {
    /// Its options ([`ladder`]), least first; not empty.
    pub ladder: &'a [LayerOption],
    /// It shows the dominant speaker.
    pub speaker: bool,
}

/// Shares `budget` (bit/s; `None`: not limited) over consumers in their
/// order of importance. Returns per consumer the index of the best option
/// it gets in its ladder, or `None` when even its first does not fit (the
/// first consumer always gets its first). In rounds, each round in order
/// of importance:
/// 1. each its first option (the lowest encoding's base temporal layer);
/// 2. the speaker the lowest encoding's full frame rate;
/// 3. everyone the lowest encoding's full frame rate;
/// 4. everyone better encodings, as far as the budget goes.
///
/// So a shrinking budget takes, in turn: the better encodings (from the
/// least important), the frame rate of the others, then of the speaker,
/// and only then a whole video, the least important first.
pub fn allocate(demands: &[Demand<'_>], budget: Option<u64>) -> Vec<Option<usize>> {
    allocate_with(demands, budget, None)
}

/// Per consumer, the best option [`allocate`] would give it were its own
/// rates higher by the upgrade margin ([`UP_MARGIN`] for a step to a
/// better encoding, [`TEMPORAL_UP_MARGIN`] for a temporal layer, which
/// costs no keyframe to undo): what it may climb to. 0 for one that gets
/// nothing.
pub fn allocate_up(demands: &[Demand<'_>], budget: Option<u64>) -> Vec<usize> {
    (0..demands.len())
        .map(|i| allocate_with(demands, budget, Some(i))[i].unwrap_or(0))
        .collect()
}

fn allocate_with(
    demands: &[Demand<'_>],
    budget: Option<u64>,
    with_margin: Option<usize>,
) -> Vec<Option<usize>> {
    // The cost of demand `i` moving from option `from` (None: nothing) to
    // option `to`.
    let cost = |i: usize, from: Option<usize>, to: usize| {
        let l = demands[i].ladder;
        let bps = l[to].bps.saturating_sub(from.map_or(0, |f| l[f].bps));
        let m = match from {
            Some(f) if with_margin == Some(i) && l[f].spatial == l[to].spatial => {
                TEMPORAL_UP_MARGIN
            }
            Some(_) if with_margin == Some(i) => UP_MARGIN,
            _ => 1.0,
        };
        (bps as f64 * m) as u64
    };
    let mut left = budget;
    let mut got: Vec<Option<usize>> = Vec::with_capacity(demands.len());
    for i in 0..demands.len() {
        let c = cost(i, None, 0);
        if i == 0 || left.is_none_or(|l| l >= c) {
            left = left.map(|l| l.saturating_sub(c));
            got.push(Some(0));
        } else {
            got.push(None);
        }
    }
    // The last option at the lowest encoding's full frame rate.
    let base_top = |d: &Demand<'_>| {
        d.ladder
            .iter()
            .position(|o| o.temporal == ALL_TEMPORAL)
            .unwrap_or(0)
    };
    for round in 0..3 {
        for (i, d) in demands.iter().enumerate() {
            let Some(mut r) = got[i] else { continue };
            let limit = match round {
                0 if d.speaker => base_top(d),
                0 => 0,
                1 => base_top(d),
                _ => d.ladder.len() - 1,
            };
            while r < limit {
                let extra = cost(i, Some(r), r + 1);
                if left.is_some_and(|l| l < extra) {
                    break;
                }
                left = left.map(|l| l - extra);
                r += 1;
            }
            got[i] = Some(r);
        }
    }
    got
}

/// One consumer's layer choice.
#[derive(Debug, Clone, Default)]
pub struct LayerSelector {
    target: Option<LayerOption>,
    /// A better option that fits, and since when it has.
    up: Option<(LayerOption, Instant)>,
    /// The last upgrade: (to which option, when), until it has held for
    /// [`FAILED_WITHIN`].
    upgraded: Option<(LayerOption, Instant)>,
    /// An option that failed, not to be tried (nor any above it) until then.
    blocked: Option<(LayerOption, Instant)>,
    /// The next failure's backoff.
    backoff: Duration,
}

impl LayerSelector {
    /// What the consumer should forward, or `None` while no layer is
    /// active.
    pub fn target(&self) -> Option<LayerOption> {
        self.target
    }

    /// Decides at `now` among `ladder` (the consumer's options, least
    /// first, as [`ladder`] makes them): `wanted` is the best that fits its
    /// share now, `up` the best that fits with [`UP_MARGIN`] (indices into
    /// `ladder`, as [`allocate`] gives them); `limited`: its subscriber's
    /// bandwidth is limited (else it moves to `wanted` at once); `lossy`:
    /// its path is losing packets now (then down goes all the way at
    /// once). Returns the target.
    pub fn select(
        &mut self,
        now: Instant,
        ladder: &[LayerOption],
        wanted: usize,
        up: usize,
        limited: bool,
        lossy: bool,
    ) -> Option<LayerOption> {
        let Some(&wanted_option) = ladder.get(wanted) else {
            return self.target;
        };
        let rank_of =
            |t: Option<LayerOption>| t.and_then(|t| ladder.iter().position(|o| o.same(&t)));
        let Some(current) = rank_of(self.target) else {
            // No target yet, or it stopped: take what fits now.
            self.target = Some(wanted_option);
            self.up = None;
            return self.target;
        };
        // Rates move: keep the ladder's, the option is the same.
        self.target = Some(ladder[current]);
        if let Some((_, at)) = self.upgraded
            && now.saturating_duration_since(at) >= FAILED_WITHIN
        {
            // It held: the next failure starts the backoff afresh.
            self.upgraded = None;
            self.backoff = BACKOFF_MIN;
        }
        if wanted < current {
            // A failed step to a better encoding is not tried again for a
            // while; a temporal layer costs no keyframe to try, and the
            // loss ceiling keeps it from the same wall.
            if let Some((l, _)) = self.upgraded.take()
                && self.target.is_some_and(|t| t.same(&l))
                && ladder[current - 1].spatial != l.spatial
            {
                self.backoff = self.backoff.clamp(BACKOFF_MIN, BACKOFF_MAX);
                self.blocked = Some((l, now + self.backoff));
                self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
            }
            // Frame rate goes down one temporal layer per decision: a
            // halved rate is no gap a receiver counts as a freeze, a
            // quartered one at once is (WebRTC's freeze: a frame later than
            // three times the mean interval). Another encoding is taken at
            // once, at its full frame rate. A path losing packets gets
            // what fits at once.
            let to = if lossy {
                wanted
            } else if ladder[wanted].spatial == ladder[current].spatial {
                wanted.max(current - 1)
            } else {
                (wanted..current)
                    .rev()
                    .find(|r| ladder[*r].spatial == ladder[wanted].spatial)
                    .unwrap_or(wanted)
            };
            self.target = Some(ladder[to]);
            self.up = None;
            return self.target;
        }
        if !limited && wanted != current {
            self.target = Some(wanted_option);
            self.up = None;
            return self.target;
        }
        // Up: what fits with the margin, held long enough, below an option
        // that failed recently.
        let mut up = up.min(ladder.len() - 1);
        if let Some((l, until)) = self.blocked {
            match rank_of(Some(l)) {
                Some(r) if now < until => up = up.min(r.saturating_sub(1)),
                _ => self.blocked = None,
            }
        }
        if up > current {
            let option = ladder[up];
            let hold = if option.spatial == ladder[current].spatial {
                TEMPORAL_UP_HOLD
            } else {
                UP_HOLD
            };
            match self.up {
                Some((l, since)) if l.same(&option) || rank_of(Some(l)) > Some(up) => {
                    if now.saturating_duration_since(since) >= hold {
                        self.target = Some(option);
                        self.up = None;
                        self.upgraded = Some((option, now));
                    } else {
                        self.up = Some((option, since));
                    }
                }
                _ => self.up = Some((option, now)),
            }
        } else {
            self.up = None;
        }
        self.target
    }

    /// [`LayerSelector::select`] for a consumer alone with its share
    /// `share_bps` of the bandwidth (`None`: not limited), shown at
    /// `max_width`.
    pub fn select_alone(
        &mut self,
        now: Instant,
        layers: &[LayerInfo],
        share_bps: Option<u64>,
        max_width: Option<u16>,
    ) -> Option<LayerOption> {
        let ladder = ladder(layers, max_width);
        if ladder.is_empty() {
            return self.target;
        }
        let d = [Demand {
            ladder: &ladder,
            speaker: true,
        }];
        let wanted = allocate(&d, share_bps)[0].unwrap_or(0);
        let up = allocate_up(&d, share_bps)[0];
        self.select(now, &ladder, wanted, up, share_bps.is_some(), false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(kbps: u64, width: u16) -> LayerInfo {
        LayerInfo {
            bps: kbps * 1000,
            width: Some(width),
            active: true,
            temporal_bps: [0; 4],
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

    #[test]
    fn the_ladder_gives_up_frame_rate_only_on_the_lowest_encoding() {
        let l = ladder(&three_l1t3(), None);
        let got: Vec<(usize, u8, u64)> = l
            .iter()
            .map(|o| (o.spatial, o.temporal, o.bps / 1000))
            .collect();
        assert_eq!(
            got,
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
            // Frame rate of the others, then of the speaker…
            (260, vec![Some(low), Some(low), Some((0, 1))]),
            (180, vec![Some(low), Some((0, 0)), Some((0, 0))]),
            (150, vec![Some((0, 1)), Some((0, 0)), Some((0, 0))]),
            (120, vec![Some((0, 0)), Some((0, 0)), Some((0, 0))]),
            // …and only then a whole video, the least important first.
            (80, vec![Some((0, 0)), Some((0, 0)), None]),
            (10, vec![Some((0, 0)), None, None]),
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
        let ms = |m: u64| t0 + Duration::from_millis(m);
        let layers = three_l1t3();
        let mut s = LayerSelector::default();
        let pick = |s: &mut LayerSelector, t: u64, kbps: u64| {
            s.select_alone(ms(t), &layers, Some(kbps * 1000), None)
                .map(|o| (o.spatial, o.temporal))
        };
        assert_eq!(pick(&mut s, 0, 50), Some((0, 0)));
        // 80 kbit/s fits T1 (60) with the margin: after the hold.
        assert_eq!(pick(&mut s, 500, 80), Some((0, 0)));
        assert_eq!(
            pick(&mut s, 500 + UP_HOLD.as_millis() as u64, 80),
            Some((0, 1))
        );
        // Down to the base layer at once.
        assert_eq!(pick(&mut s, 3000, 45), Some((0, 0)));
        // Not limited: the top at once. Then short of room: the lowest
        // encoding at its full rate at once, then one temporal layer per
        // decision.
        let top = s.select_alone(ms(3500), &layers, None, None);
        assert_eq!(
            top.map(|o| (o.spatial, o.temporal)),
            Some((2, ALL_TEMPORAL))
        );
        assert_eq!(pick(&mut s, 4000, 45), Some((0, ALL_TEMPORAL)));
        assert_eq!(pick(&mut s, 4500, 45), Some((0, 1)));
        assert_eq!(pick(&mut s, 5000, 45), Some((0, 0)));
    }
}
