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

/// An upgrade needs the share to exceed the layer's rate by this factor…
pub const UP_MARGIN: f64 = 1.2;
/// …for this long.
pub const UP_HOLD: Duration = Duration::from_secs(2);
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

/// The layer a consumer shown at `max_width` would take with bandwidth to
/// spare, if any is active.
pub fn best_for_size(layers: &[LayerInfo], max_width: Option<u16>) -> Option<usize> {
    let (ranked, n) = ranked(layers, max_width);
    n.checked_sub(1).map(|i| ranked[i])
}

/// One consumer's layer choice.
#[derive(Debug, Clone, Default)]
pub struct LayerSelector {
    target: Option<usize>,
    /// A better layer that fits, and since when it has.
    up: Option<(usize, Instant)>,
    /// The last upgrade: (to which layer, when), until it has held for
    /// [`FAILED_WITHIN`].
    upgraded: Option<(usize, Instant)>,
    /// A layer that failed, not to be tried (nor any above it) until then.
    blocked: Option<(usize, Instant)>,
    /// The next failure's backoff.
    backoff: Duration,
}

impl LayerSelector {
    /// The layer the consumer should forward (index into `layers`), or
    /// `None` while no layer is active.
    pub fn target(&self) -> Option<usize> {
        self.target
    }

    /// Decides at `now`. `layers` are the producer's encodings in their
    /// order; `share_bps` the consumer's share of its subscriber's
    /// estimate (`None`: not limited); `max_width` the largest width it is
    /// shown at, pixels (`None`: any). Returns the target.
    pub fn select(
        &mut self,
        now: Instant,
        layers: &[LayerInfo],
        share_bps: Option<u64>,
        max_width: Option<u16>,
    ) -> Option<usize> {
        // Not wider than needed: up to the first layer at least as wide.
        let (ranked, n) = ranked(layers, max_width);
        if n == 0 {
            return self.target;
        }
        let allowed = &ranked[..n];
        let fits = |margin: f64| {
            allowed
                .iter()
                .rposition(|i| share_bps.is_none_or(|s| layers[*i].bps as f64 * margin <= s as f64))
                .unwrap_or(0)
        };
        let wanted = fits(1.0);
        let rank_of = |t: Option<usize>| t.and_then(|t| ranked.iter().position(|i| *i == t));
        let Some(current) = rank_of(self.target) else {
            // No target yet, or it stopped: take what fits now.
            self.target = Some(allowed[wanted]);
            self.up = None;
            return self.target;
        };
        if let Some((_, at)) = self.upgraded
            && now.saturating_duration_since(at) >= FAILED_WITHIN
        {
            // It held: the next failure starts the backoff afresh.
            self.upgraded = None;
            self.backoff = BACKOFF_MIN;
        }
        if wanted < current {
            if let Some((l, _)) = self.upgraded.take()
                && self.target == Some(l)
            {
                self.backoff = self.backoff.clamp(BACKOFF_MIN, BACKOFF_MAX);
                self.blocked = Some((l, now + self.backoff));
                self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
            }
            self.target = Some(allowed[wanted]);
            self.up = None;
            return self.target;
        }
        if share_bps.is_none() && wanted != current {
            self.target = Some(allowed[wanted]);
            self.up = None;
            return self.target;
        }
        // Up: what fits with the margin, held long enough, below a layer
        // that failed recently.
        let mut up = fits(UP_MARGIN);
        if let Some((l, until)) = self.blocked {
            match rank_of(Some(l)) {
                Some(r) if now < until => up = up.min(r.saturating_sub(1)),
                _ => self.blocked = None,
            }
        }
        if up > current {
            let layer = allowed[up];
            match self.up {
                Some((l, since)) if l == layer || rank_of(Some(l)) > Some(up) => {
                    if now.saturating_duration_since(since) >= UP_HOLD {
                        self.target = Some(layer);
                        self.up = None;
                        self.upgraded = Some((layer, now));
                    } else {
                        self.up = Some((layer, since));
                    }
                }
                _ => self.up = Some((layer, now)),
            }
        } else {
            self.up = None;
        }
        self.target
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
                target: before,
                ..Default::default()
            };
            let got = s.select(now, &layers, share.map(|k| k * 1000), width);
            assert_eq!(got, Some(want), "{name}");
        }
    }

    #[test]
    fn up_only_after_the_share_holds_above_the_rate_with_margin() {
        let t0 = Instant::now();
        let ms = |m: u64| t0 + Duration::from_millis(m);
        let hold = UP_HOLD.as_millis() as u64;
        let mut s = LayerSelector::default();
        assert_eq!(s.select(t0, &three(), Some(150_000), None), Some(0));
        // 330 kbit/s fits layer 1 (300) but not with the 20 % margin (360).
        for t in (0..5000).step_by(500) {
            assert_eq!(s.select(ms(t), &three(), Some(330_000), None), Some(0));
        }
        // 400 kbit/s: up after UP_HOLD of it, not before.
        assert_eq!(s.select(ms(5000), &three(), Some(400_000), None), Some(0));
        assert_eq!(
            s.select(ms(5000 + hold - 500), &three(), Some(400_000), None),
            Some(0)
        );
        // A dip below the margin restarts the wait.
        assert_eq!(
            s.select(ms(5000 + hold - 200), &three(), Some(340_000), None),
            Some(0)
        );
        let t1 = 5000 + hold;
        assert_eq!(s.select(ms(t1), &three(), Some(400_000), None), Some(0));
        assert_eq!(
            s.select(ms(t1 + hold - 100), &three(), Some(400_000), None),
            Some(0)
        );
        assert_eq!(
            s.select(ms(t1 + hold), &three(), Some(400_000), None),
            Some(1)
        );
        // And straight back down when the share falls.
        assert_eq!(
            s.select(ms(t1 + hold + 100), &three(), Some(200_000), None),
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
        let mut pick = |t: u64, share: Option<u64>| s.select(at(t), &three(), share, None);
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
        assert_eq!(s.select(Instant::now(), &off, None, None), None);
        assert_eq!(s.select(Instant::now(), &three(), None, None), Some(2));
        assert_eq!(s.select(Instant::now(), &off, None, None), Some(2));
        assert_eq!(s.select(Instant::now(), &[], None, None), Some(2));
    }
}
