//! Temporal layers: which frames of a stream a consumer forwards, by their
//! temporal layer id, and the VP8 picture IDs that stay continuous when
//! frames are left out.
//!
//! A temporal layer T*n* holds frames that depend only on frames of layers
//! up to *n* (VP8: RFC 7741 §4.2, the TID and Y bits). Leaving out every
//! frame above a layer halves or quarters the frame rate without breaking
//! decoding. Going down can happen at any frame; going up only at a frame
//! that depends on nothing of its own layer sent before (a layer sync, the
//! Y bit), one layer at a time, or at a keyframe.
//!
//! The consumer renumbers what it forwards so that the decoder sees no
//! gap: sequence numbers (`SeqManager::leave_out`) and the VP8 picture ID
//! ([`PictureIds`]). TL0PICIDX counts base-layer frames, never left out,
//! and needs nothing.

use super::consumer::Consumer;
use super::seq_manager::OffsetHistory;
use crate::bwe::allocator::temporal_parts;
pub use crate::bwe::allocator::{ALL_TEMPORAL, WITH_NEXT_SYNC};
use crate::proto::codec::Vp8Descriptor;

/// The highest layer id (temporal, or a VP9 stream's spatial) a consumer
/// forwards now, `current`, and the one it should, `target`; `u8::MAX` is
/// every layer; a temporal one may add [`WITH_NEXT_SYNC`]. `current`
/// follows `target` where the codec allows: for temporal layers
/// ([`TemporalFilter`]) down at the next frame, up at a layer sync; for
/// spatial ones, `crate::router::svc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerFilter {
    pub(crate) current: u8,
    pub(crate) target: u8,
}

/// Which temporal layers a consumer forwards.
pub type TemporalFilter = LayerFilter;

impl Default for LayerFilter {
    fn default() -> Self {
        Self {
            current: ALL_TEMPORAL,
            target: ALL_TEMPORAL,
        }
    }
}

impl LayerFilter {
    /// The highest layer id forwarded now (`u8::MAX`: all).
    pub fn current(&self) -> u8 {
        self.current
    }

    /// The highest it should forward.
    pub fn target(&self) -> u8 {
        self.target
    }

    /// Sets the highest layer id to forward (`u8::MAX`: all), from where
    /// the codec allows.
    pub fn set_target(&mut self, target: u8) {
        self.target = target;
    }

    /// A keyframe (or a switch to another encoding, which starts at one):
    /// nothing before it is needed, so the target applies at once.
    pub fn on_keyframe(&mut self) {
        self.current = self.target;
    }

    /// Whether a packet of temporal layer `tid` is forwarded. At the first
    /// packet of a frame (`frame_start`) the current layer moves towards
    /// the target: down at once, up by one layer at a frame of that layer
    /// marked `layer_sync` (VP8's Y bit). The next layer's sync frames
    /// ([`WITH_NEXT_SYNC`]) depend only on layers forwarded already, so
    /// they are added at once. Every packet of a frame has the same `tid`
    /// and `layer_sync`, so a frame is forwarded whole or not at all.
    #[inline]
    pub fn pass(&mut self, tid: u8, frame_start: bool, layer_sync: bool) -> bool {
        if frame_start && self.current != self.target {
            let target = rank(self.target);
            if target < rank(self.current) {
                self.current = self.target;
            } else {
                let layer = self.current & !WITH_NEXT_SYNC;
                if layer_sync && tid == layer.wrapping_add(1) && rank(tid) <= target {
                    self.current = tid;
                }
                if rank(self.current) < target {
                    self.current |= WITH_NEXT_SYNC;
                }
            }
        }
        let layer = self.current & !WITH_NEXT_SYNC;
        tid <= layer
            || (layer_sync && self.current & WITH_NEXT_SYNC != 0 && tid == layer.wrapping_add(1))
    }
}

/// `target` while resends and a policer's refill need room (for `RELIEF`
/// after a probe above its subscriber's loss ceiling spent the bucket):
/// all layers
/// become all but the top one (the highest TID with a rate in
/// `temporal_bps`, bit/s per TID), with its sync frames. Chromium's L1T3
/// sends T2 frames as non-reference (VP8's N bit), so nothing else
/// depends on what is left out: 20 fps become 12.5 (T0, T1 and T2's
/// layer-sync frames) and about a third of the stream's bytes are freed.
/// Any other target, or a stream of one layer, is kept.
pub(crate) fn relieved(target: u8, temporal_bps: &[u64; 4]) -> u8 {
    let top = temporal_bps.iter().rposition(|&b| b > 0).unwrap_or(0) as u8;
    if target == ALL_TEMPORAL && top > 0 {
        (top - 1) | WITH_NEXT_SYNC
    } else {
        target
    }
}

/// A temporal target's place in order: T0, T0 with T1's sync frames, T1,
/// …, all.
fn rank(t: u8) -> u16 {
    let (layer, sync) = temporal_parts(t);
    2 * u16::from(layer) + u16::from(sync)
}

impl Consumer {
    /// Whether this consumer forwards the VP8 packet with descriptor `d`
    /// and sequence number `seq` (`keyframe`: it starts one) by its
    /// temporal layers. One it does not is left out of its sequence
    /// numbers and picture IDs, so what it sends has no gap. A packet
    /// without a TID passes.
    #[inline]
    pub(crate) fn temporal_pass(&mut self, d: &Vp8Descriptor, seq: u16, keyframe: bool) -> bool {
        let Some(tid) = d.tid else { return true };
        if keyframe {
            self.temporal.on_keyframe();
        }
        if self.temporal.pass(tid, d.frame_start, d.layer_sync) {
            return true;
        }
        self.seq.leave_out(seq);
        if let (Some(s), Some(p)) = (self.simulcast.as_deref_mut(), d.picture_id) {
            s.pictures.leave_out(p, d.picture_id_modulus());
        }
        false
    }
}

/// A consumer's VP8 picture IDs (RFC 7741 §4.2, 7 or 15 bits): output =
/// input + an offset set at each layer switch (so the IDs continue by one)
/// and lowered by one for each picture left out.
#[derive(Debug, Clone, Default)]
pub struct PictureIds {
    /// The highest input picture ID seen, extended past its wraps.
    highest: Option<u64>,
    /// Offsets by input picture (extended).
    history: OffsetHistory,
    /// 2^7 or 2^15, as the publisher sends them.
    modulus: u16,
}

impl PictureIds {
    /// `id` extended to the picture nearest the highest seen (`modulus`
    /// is a power of two: masks, not divisions, on the packet path).
    fn extend(&self, id: u16, modulus: u16) -> Option<u64> {
        let h = self.highest?;
        let mask = i64::from(modulus) - 1;
        let d = (i64::from(id) - (h as i64 & mask)) & mask;
        let d = if d > mask / 2 { d - mask - 1 } else { d };
        Some((h as i64 + d) as u64)
    }

    /// Starts over at input picture `id` (a layer switch or the first
    /// picture), sent as `out`.
    pub fn restart(&mut self, id: u16, out: u16, modulus: u16) {
        // Far from zero, so that late pictures still extend.
        let ext = (1u64 << 32) + u64::from(id);
        self.highest = Some(ext);
        self.modulus = modulus;
        let offset = i64::from(out.wrapping_sub(id) & (modulus - 1));
        self.history.reset(ext, offset);
    }

    /// The output picture ID of input `id` (a packet being sent), kept to
    /// `modulus`. The first call starts the mapping with no offset.
    pub fn output(&mut self, id: u16, modulus: u16) -> u16 {
        let ext = match self.extend(id, modulus).filter(|_| self.modulus == modulus) {
            Some(e) => e,
            None => {
                self.restart(id, id, modulus);
                return id;
            }
        };
        if self.highest.is_some_and(|h| ext > h) {
            self.highest = Some(ext);
        }
        let out = ext as i64 + self.history.offset_at(ext);
        (out as u64 & u64::from(modulus - 1)) as u16
    }

    /// Input picture `id` is left out: the pictures after it are sent one
    /// lower. Only a picture newer than any seen counts, once.
    pub fn leave_out(&mut self, id: u16, modulus: u16) {
        let Some(ext) = self.extend(id, modulus).filter(|_| self.modulus == modulus) else {
            return;
        };
        if self.highest.is_some_and(|h| ext > h) && self.history.leave_out(ext) {
            self.highest = Some(ext);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relief_leaves_out_the_top_layer_but_its_sync_frames_and_only_at_full_rate() {
        let l1t3 = [40_000, 15_000, 45_000, 0];
        assert_eq!(relieved(ALL_TEMPORAL, &l1t3), 1 | WITH_NEXT_SYNC);
        assert_eq!(relieved(1, &l1t3), 1);
        assert_eq!(relieved(WITH_NEXT_SYNC, &l1t3), WITH_NEXT_SYNC);
        assert_eq!(
            relieved(ALL_TEMPORAL, &[40_000, 20_000, 0, 0]),
            WITH_NEXT_SYNC
        );
        // One layer, or none known: nothing to leave out.
        assert_eq!(relieved(ALL_TEMPORAL, &[90_000, 0, 0, 0]), ALL_TEMPORAL);
        assert_eq!(relieved(ALL_TEMPORAL, &[0; 4]), ALL_TEMPORAL);
    }

    #[test]
    fn down_at_any_frame_up_one_layer_at_a_sync() {
        let mut f = TemporalFilter::default();
        // All layers by default.
        assert!(f.pass(2, true, false));
        f.set_target(0);
        // Mid-frame: the frame that started goes on whole.
        assert!(f.pass(2, false, false));
        assert!(!f.pass(2, true, false), "down at the next frame");
        assert!(!f.pass(1, true, true));
        assert!(f.pass(0, true, false));
        f.set_target(2);
        assert!(!f.pass(2, true, true), "up one layer at a time");
        assert!(!f.pass(1, true, false), "T1 without the Y bit");
        assert!(f.pass(0, true, false));
        assert!(f.pass(1, true, true), "T1 sync: up to T1");
        assert!(f.pass(1, false, false));
        assert!(!f.pass(2, true, false));
        assert!(f.pass(2, true, true), "T2 sync: up to T2");
        assert_eq!(f.current(), 2);
        f.set_target(1);
        assert!(f.pass(0, true, false));
        assert!(!f.pass(2, true, true));
        // A keyframe applies the target at once.
        f.set_target(ALL_TEMPORAL);
        f.on_keyframe();
        assert!(f.pass(3, true, false));
    }

    #[test]
    fn with_the_next_layers_sync_frames_at_once_in_both_directions() {
        let mut f = TemporalFilter::default();
        f.set_target(1);
        assert!(f.pass(0, true, false));
        // From T1 down to T0 with T1's sync frames: at the next frame.
        f.set_target(WITH_NEXT_SYNC);
        assert!(!f.pass(1, true, false), "a T1 frame that is no sync");
        assert!(f.pass(1, true, true), "a T1 sync frame");
        assert!(!f.pass(2, true, true), "nothing of T2");
        assert!(f.pass(0, true, false));
        // From T0 up: the sync frames at once, without waiting for one.
        f.set_target(0);
        assert!(!f.pass(1, true, true));
        f.set_target(WITH_NEXT_SYNC);
        assert!(f.pass(1, true, true));
        assert_eq!(f.current(), WITH_NEXT_SYNC);
        // Up to T1 at its next sync frame, then T2's sync frames too.
        f.set_target(1 | WITH_NEXT_SYNC);
        assert!(!f.pass(1, true, false), "T1 without the Y bit");
        assert!(f.pass(1, true, true));
        assert!(f.pass(1, true, false), "now all of T1");
        assert!(f.pass(2, true, true) && !f.pass(2, true, false));
        assert_eq!(f.current(), 1 | WITH_NEXT_SYNC);
    }

    #[test]
    fn picture_ids_continue_across_pictures_left_out_and_wraps() {
        let m = 1 << 15;
        let mut p = PictureIds::default();
        assert_eq!(p.output(32766, m), 32766);
        p.leave_out(32767, m);
        assert_eq!(p.output(0, m), 32767, "one left out: one lower");
        p.leave_out(1, m);
        p.leave_out(1, m); // its second packet: once only
        p.leave_out(2, m);
        assert_eq!(p.output(3, m), 0, "three left out, across the wrap");
        assert_eq!(p.output(3, m), 0, "the next packet of it");
        // A late packet of an earlier picture keeps the ID it was sent with.
        assert_eq!(p.output(0, m), 32767);
        assert_eq!(p.output(32766, m), 32766);
        // A switch: continues by one from what was sent last.
        p.restart(500, 1, m);
        assert_eq!(p.output(500, m), 1);
        assert_eq!(p.output(501, m), 2);
        // 7-bit IDs.
        let mut s = PictureIds::default();
        assert_eq!(s.output(126, 128), 126);
        s.leave_out(127, 128);
        assert_eq!(s.output(0, 128), 127);
        assert_eq!(s.output(1, 128), 0);
    }

    /// A packet sent: (TID, Y, frame start, seq, picture ID, TL0PICIDX).
    type Sent = (u8, bool, bool, u16, Option<u16>, Option<u8>);

    /// What [`through_a_switch`] saw: what was sent as (TID, Y, frame
    /// start, seq, picture ID, TL0PICIDX), frames of each TID in the
    /// source, frames left out, steps up and (TID, Y) of the frames sent
    /// while the target was lower.
    struct Switch {
        sent: Vec<Sent>,
        source_tids: [usize; 4],
        left_out_frames: usize,
        ups: usize,
        lowered: Vec<(u8, bool)>,
    }

    /// Chromium's VP8 L1T3 through a consumer whose temporal target goes
    /// from all layers to `lower` for the middle third and back, as
    /// `Router::forward` sends each packet: the temporal check, the
    /// sequence number, the rewritten copy and its picture ID and
    /// TL0PICIDX. Asserts that what is sent has no gap in any of them.
    fn through_a_switch(lower: u8) -> Switch {
        use crate::ids::Pt;
        use crate::proto::rtp::{RtpHeader, write_forwarded};
        use std::time::Instant;

        let packets = crate::testing::testdata_rtp("vp8-l1t3.sfurec");
        assert!(packets.len() > 60, "{} packets", packets.len());
        let mut c = Consumer::layered_for_test();
        let now = Instant::now();
        let third = packets.len() / 3;
        let layer = |t: u8| {
            if t == ALL_TEMPORAL {
                t
            } else {
                t & !WITH_NEXT_SYNC
            }
        };
        let mut r = Switch {
            sent: Vec::new(),
            source_tids: [0; 4],
            left_out_frames: 0,
            ups: 0,
            lowered: Vec::new(),
        };
        let mut out = Vec::new();
        for (i, pkt) in packets.iter().enumerate() {
            let middle = (third..2 * third).contains(&i);
            c.temporal
                .set_target(if middle { lower } else { ALL_TEMPORAL });
            let h = RtpHeader::parse(pkt).expect("captured RTP parses");
            let payload = &pkt[h.header_len..];
            let d = Vp8Descriptor::parse(payload).expect("VP8 descriptor");
            let tid = d.tid.expect("L1T3 packets carry a TID");
            if d.frame_start {
                r.source_tids[usize::from(tid)] += 1;
            }
            let before = layer(c.temporal.current());
            let passed = c.temporal_pass(&d, h.seq, d.keyframe);
            let after = layer(c.temporal.current());
            if after > before && before != ALL_TEMPORAL && !d.keyframe {
                // Up only at a layer sync, one layer at a time.
                assert!(
                    d.layer_sync && after == before + 1 && tid == after,
                    "up from T{before} at {d:?}"
                );
                r.ups += 1;
            }
            if !passed {
                r.left_out_frames += usize::from(d.frame_start);
                continue;
            }
            if middle && d.frame_start {
                r.lowered.push((tid, d.layer_sync));
            }
            let seq = c.seq.input(h.seq).expect("in the epoch");
            let rw = c.rewrite(Pt(96), seq, h.timestamp, None, 0);
            write_forwarded(pkt, &h, &rw, &mut out);
            let s = c.simulcast.as_deref_mut().expect("simulcast consumer");
            s.on_forwarded(&mut out, payload.len(), Some(&d), h.timestamp, now);
            let o = RtpHeader::parse(&out).expect("copy parses");
            let od = Vp8Descriptor::parse(&out[o.header_len..]).expect("copy's descriptor");
            r.sent.push((
                tid,
                od.layer_sync,
                od.frame_start,
                o.seq,
                od.picture_id,
                od.tl0picidx,
            ));
        }
        // A real L1T3 stream: all three layers, 1 : 1 : 2 frames.
        let t = r.source_tids;
        assert!(t[0] >= 10 && t[1] >= 10 && t[2] >= 20, "{t:?}");
        for w in r.sent.windows(2) {
            let (a, b) = (w[0], w[1]);
            assert_eq!(b.3, a.3.wrapping_add(1), "no gap: {a:?} → {b:?}");
            if b.2 {
                let m = 1u16 << 15;
                assert_eq!(
                    b.4.map(|p| p % m),
                    a.4.map(|p| (p + 1) % m),
                    "picture ID +1: {a:?} → {b:?}"
                );
                let step = u8::from(b.0 == 0);
                assert_eq!(
                    b.5,
                    a.5.map(|t| t.wrapping_add(step)),
                    "TL0PICIDX: {a:?} → {b:?}"
                );
            }
        }
        r
    }

    #[test]
    fn chromium_l1t3_through_a_temporal_switch_down_and_up_stays_continuous() {
        let r = through_a_switch(0);
        assert!(
            r.left_out_frames >= 10,
            "{} frames left out",
            r.left_out_frames
        );
        assert!(r.lowered.iter().all(|(t, _)| *t == 0), "{:?}", r.lowered);
        assert_eq!(r.ups, 2, "back up to T2 in two steps");
    }

    /// T0 with T1's sync frames: every other T1 frame, none of T2, and
    /// still no gap in what is sent.
    #[test]
    fn chromium_l1t3_t0_with_the_t1_sync_frames_stays_continuous() {
        let r = through_a_switch(WITH_NEXT_SYNC);
        let count = |f: fn(&(u8, bool)) -> bool| r.lowered.iter().filter(|x| f(x)).count();
        let (t0, t1) = (count(|x| x.0 == 0), count(|x| x.0 == 1));
        assert!(t0 >= 3 && t1 >= 2, "{:?}", r.lowered);
        assert_eq!(count(|x| x.0 == 1 && x.1), t1, "T1 sync frames only");
        assert_eq!(count(|x| x.0 == 2), 0, "no T2: {:?}", r.lowered);
        // 3 frames in Chromium's 8-frame pattern of 0 2 1 2 0 2 1 2.
        assert!(t1 * 3 >= t0 && t1 <= t0, "{t0} T0, {t1} T1");
        assert_eq!(r.ups, 2, "back up to T2 in two steps");
    }
}
