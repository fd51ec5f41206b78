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
    /// The part of each `temporal_bps` in layer-sync frames (VP8's Y bit,
    /// RFC 7741 §4.2: frames that depend on no earlier frame of their own
    /// layer), bit/s; all 0 when not known.
    pub sync_bps: [u64; 4],
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

/// Added to a temporal layer id *t* (below [`ALL_TEMPORAL`]): layers up to
/// *t* and the layer-sync frames of *t* + 1, which depend on nothing of
/// their own layer and so decode without its other frames. Chromium's VP8
/// L1T3 marks every other T1 frame so: T0 at 5 fps, this at 7.5, T1 at 10.
pub const WITH_NEXT_SYNC: u8 = 0x80;

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

/// A temporal layer id's layer (`0x7f`, above any other, for
/// [`ALL_TEMPORAL`]) and whether it adds the next layer's sync frames
/// ([`WITH_NEXT_SYNC`]).
pub(crate) fn temporal_parts(t: u8) -> (u8, bool) {
    if t == ALL_TEMPORAL {
        (!WITH_NEXT_SYNC, false)
    } else {
        (t & !WITH_NEXT_SYNC, t & WITH_NEXT_SYNC != 0)
    }
}

impl LayerOption {
    fn same(&self, o: &LayerOption) -> bool {
        self.spatial == o.spatial && self.temporal == o.temporal
    }
}

/// A consumer's options from least to most, for its tile width
/// `max_width` (`None`: any): the lowest encoding at each of its temporal
/// layers (its base layer alone first), each followed, where only some of
/// the next layer's frames are layer-sync frames, by it with those
/// ([`WITH_NEXT_SYNC`]); then each better encoding not wider than needed
/// at its full frame rate. Frame rate is what is given
/// up first, but only on the lowest encoding: above it, resolution goes
/// before frame rate. An encoding whose temporal layers are unknown (no
/// rates per layer) is one option. Empty while no layer is active.
pub fn ladder(layers: &[LayerInfo], max_width: Option<u16>) -> Vec<LayerOption> {
    let (ranked, n) = ranked(layers, max_width);
    let mut out = Vec::with_capacity(n + 6);
    for (k, &i) in ranked[..n].iter().enumerate() {
        let l = &layers[i];
        let total: u64 = l.temporal_bps.iter().sum();
        let layers_seen = l
            .temporal_bps
            .iter()
            .rposition(|b| *b > 0)
            .map_or(0, |t| t + 1);
        if k == 0 && layers_seen > 1 && total > 0 {
            // A part of the layers' sum, scaled to the encoding's rate
            // (which also counts packet overhead).
            let scaled = |part: u64| (l.bps as u128 * u128::from(part) / u128::from(total)) as u64;
            let mut cum = 0;
            for t in 0..layers_seen - 1 {
                cum += l.temporal_bps[t];
                out.push(LayerOption {
                    spatial: i,
                    temporal: t as u8,
                    bps: scaled(cum),
                });
                let sync = l.sync_bps[t + 1];
                if sync > 0 && sync < l.temporal_bps[t + 1] {
                    out.push(LayerOption {
                        spatial: i,
                        temporal: t as u8 | WITH_NEXT_SYNC,
                        bps: scaled(cum + sync),
                    });
                }
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
/// it gets in its ladder, or `None` when even its first does not fit. The
/// first consumer always gets its lowest encoding at full frame rate: it
/// is never paused, so it gives up no frame rate to spare a pause (as the
/// lowest simulcast layer always was). In rounds, each round in order of
/// importance:
/// 1. each other its first option (the lowest encoding's base temporal
///    layer);
/// 2. the speaker the lowest encoding's full frame rate;
/// 3. everyone the lowest encoding's full frame rate;
/// 4. everyone better encodings, as far as the budget goes.
///
/// So a shrinking budget takes, in turn: the better encodings (from the
/// least important), the frame rate of the others (a speaker who is not
/// first last), and only then a whole video, the least important first.
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
    // The last option at the lowest encoding's full frame rate.
    let base_top = |d: &Demand<'_>| {
        d.ladder
            .iter()
            .position(|o| o.temporal == ALL_TEMPORAL)
            .unwrap_or(0)
    };
    let mut left = budget;
    let mut got: Vec<Option<usize>> = Vec::with_capacity(demands.len());
    for i in 0..demands.len() {
        if i == 0 {
            // The first is never paused, so it has no need to give up
            // frame rate either: its lowest encoding at full rate.
            let top = base_top(&demands[0]);
            left = left.map(|l| l.saturating_sub(cost(0, None, top)));
            got.push(Some(top));
            continue;
        }
        let c = cost(i, None, 0);
        if left.is_none_or(|l| l >= c) {
            left = left.map(|l| l.saturating_sub(c));
            got.push(Some(0));
        } else {
            got.push(None);
        }
    }
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

/// Whether an upgrade must wait out [`UP_HOLD`] ([`TEMPORAL_UP_HOLD`])
/// before a [`LayerSelector`] takes it: only while `budget` (bit/s;
/// `None`: not limited) is short of the best option of every one of
/// `ladders` with [`UP_MARGIN`]. With room for all of them (a chain of
/// probes has just found a cap lifted), no noise in the estimate can
/// take an upgrade back, and each consumer moves to what it wants at once.
pub fn upgrades_wait(ladders: &[Vec<LayerOption>], budget: Option<u64>) -> bool {
    budget.is_some_and(|b| {
        let best: u64 = ladders.iter().filter_map(|l| l.last()).map(|o| o.bps).sum();
        (b as f64) < best as f64 * UP_MARGIN
    })
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
                // One layer down: T1 from all, T0 with T1's sync frames
                // from T1 with T2's (the frame rate falls to no less than
                // half).
                let (layer, sync) = temporal_parts(ladder[current].temporal);
                (wanted..current)
                    .rev()
                    .find(|r| {
                        let (l, s) = temporal_parts(ladder[*r].temporal);
                        l < layer && s == sync
                    })
                    .unwrap_or(wanted)
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
mod tests;
