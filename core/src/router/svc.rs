//! Spatial layers of one VP9 stream (SVC, RFC 9628): what a producer
//! measures of each, and which of them a consumer forwards.
//!
//! A VP9 SVC picture is one frame per spatial layer, lowest first, all
//! under one RTP timestamp; the marker bit ends the picture (§4.1). How an
//! upper layer depends on the one below decides what a consumer needs:
//! - full SVC (`L3T3`): every upper frame is predicted from the layer below
//!   (D bit), so a consumer of layer *s* gets layers 0..=*s* and may drop
//!   to a lower one at any picture; going up needs a keyframe;
//! - K-SVC (`L3T3_KEY`, what Chromium sends for `L3T3_KEY`): the layers
//!   depend on each other only in keyframes, so between keyframes a
//!   consumer of layer *s* gets that layer's frames alone, and changing
//!   layer either way waits for a keyframe (as mediasoup's VP9 consumer
//!   does).
//!
//! Either way the last frame it forwards of a picture gets the marker bit,
//! and temporal layers are left out as for VP8 ([`super::temporal`]), with
//! the U bit as the layer sync.

use std::time::Instant;

use super::consumer::Consumer;
use super::rate_meter::RateMeter;
use super::temporal::LayerFilter;
use crate::bwe::allocator::LayerInfo;
use crate::proto::codec::{VP9_MAX_SPATIAL, Vp9Descriptor};

/// A spatial target or current layer meaning "every layer".
pub const ALL_SPATIAL_LAYERS: u8 = u8::MAX;

/// What a producer measures of the spatial layers of its VP9 stream.
#[derive(Debug, Clone, Default)]
pub struct SpatialLayers {
    /// Bytes of RTP received per (spatial, temporal) layer, and their rates.
    bytes: [[u64; 4]; VP9_MAX_SPATIAL],
    rates: [[RateMeter; 4]; VP9_MAX_SPATIAL],
    /// Packets per spatial layer, as wire overhead
    /// ([`super::producer::PACKET_OVERHEAD_BYTES`] each), and its rate.
    overhead: [u64; VP9_MAX_SPATIAL],
    overhead_rates: [RateMeter; VP9_MAX_SPATIAL],
    /// When a packet of each spatial layer last arrived.
    last_packet: [Option<Instant>; VP9_MAX_SPATIAL],
    /// Each layer's size (width, height), from the last scalability
    /// structure.
    sizes: [Option<(u16, u16)>; VP9_MAX_SPATIAL],
    /// Upper layers' inter frames seen, and whether the last one was
    /// predicted from the layer below (full SVC) or not (K-SVC).
    inter_layer: Option<bool>,
}

impl SpatialLayers {
    /// Counts a packet of `len` bytes with descriptor `d` received at `now`.
    pub fn on_packet(&mut self, d: &Vp9Descriptor, len: usize, now: Instant) {
        let s = usize::from(d.sid).min(VP9_MAX_SPATIAL - 1);
        let t = usize::from(d.tid.unwrap_or(0) & 3);
        self.bytes[s][t] += len as u64;
        self.overhead[s] += super::producer::PACKET_OVERHEAD_BYTES;
        self.last_packet[s] = Some(now);
        if d.sid > 0 && d.inter_picture && d.begin {
            self.inter_layer = Some(d.inter_layer);
        }
        if let (Some(n), Some(sizes)) = (d.spatial_layers, d.sizes) {
            for (k, slot) in self.sizes.iter_mut().enumerate() {
                *slot = (k < usize::from(n)).then_some(sizes[k]);
            }
        }
    }

    /// Measures the rates (about once a second).
    pub fn sample(&mut self, now: Instant, min_span: std::time::Duration) {
        for s in 0..VP9_MAX_SPATIAL {
            for t in 0..4 {
                self.rates[s][t].sample(now, self.bytes[s][t], min_span);
            }
            self.overhead_rates[s].sample(now, self.overhead[s], min_span);
        }
    }

    /// Whether more than one spatial layer has been received: only then
    /// is there a spatial layer to choose.
    pub fn is_layered(&self) -> bool {
        self.last_packet[1..].iter().any(Option::is_some)
    }

    /// Whether the upper layers depend on the ones below only in keyframes
    /// (K-SVC). Until an upper layer's inter frame is seen, no: forwarding
    /// the layers below is what a full-SVC stream needs, and harmless
    /// otherwise.
    pub fn key_svc(&self) -> bool {
        self.inter_layer == Some(false)
    }

    /// What a consumer of each spatial layer (lowest first, up to the
    /// highest received) receives: its rate with what it needs below it
    /// (full SVC), or its own (K-SVC), per temporal layer, with packet
    /// overhead; its width; whether it was received in the last
    /// `inactive_after`.
    pub fn infos(&self, now: Instant, inactive_after: std::time::Duration) -> Vec<LayerInfo> {
        let n = self
            .last_packet
            .iter()
            .rposition(Option::is_some)
            .map_or(0, |s| s + 1);
        let key_svc = self.key_svc();
        (0..n)
            .map(|s| {
                let from = if key_svc { s } else { 0 };
                let mut temporal_bps = [0u64; 4];
                let mut overhead = 0;
                for k in from..=s {
                    for (t, r) in temporal_bps.iter_mut().zip(&self.rates[k]) {
                        *t += r.bps();
                    }
                    overhead += self.overhead_rates[k].bps();
                }
                LayerInfo {
                    bps: temporal_bps.iter().sum::<u64>() + overhead,
                    width: self.sizes[s].map(|(w, _)| w),
                    active: self.last_packet[s]
                        .is_some_and(|t| now.saturating_duration_since(t) < inactive_after),
                    temporal_bps,
                }
            })
            .collect()
    }
}

/// Which spatial layers a consumer forwards: up to `current`, which
/// follows `target` at keyframes (and, in full SVC, down at a picture).
pub type SpatialFilter = LayerFilter;

impl LayerFilter {
    /// Whether reaching the target needs a keyframe the consumer should
    /// ask for: any change in K-SVC, a step up in full SVC.
    pub fn needs_keyframe(&self, key_svc: bool) -> bool {
        self.current != self.target && (key_svc || self.target > self.current)
    }

    /// Whether a packet with descriptor `d` is forwarded, moving `current`
    /// to the target where that is safe.
    fn pass_spatial(&mut self, d: &Vp9Descriptor, key_svc: bool) -> bool {
        if d.keyframe() || (!key_svc && d.picture_start() && self.target < self.current) {
            self.current = self.target;
        }
        if self.current == ALL_SPATIAL_LAYERS {
            return true;
        }
        // K-SVC: below the current layer only what a keyframe needs.
        d.sid == self.current || (d.sid < self.current && (!key_svc || !d.inter_picture))
    }
}

impl Consumer {
    /// Whether this consumer forwards the VP9 packet with descriptor `d` and
    /// sequence number `seq` by its spatial and temporal layers, given
    /// whether the stream is K-SVC ([`SpatialLayers::key_svc`]). Returns
    /// `None` for a packet left out (out of its sequence numbers too, so
    /// what it sends has no gap), else the marker bit to write: set on the
    /// last packet of the highest spatial layer it forwards, clear below
    /// it, the publisher's otherwise. A consumer without layer state
    /// forwards everything as it came.
    #[inline]
    pub(crate) fn svc_pass(
        &mut self,
        d: &Vp9Descriptor,
        seq: u16,
        key_svc: bool,
    ) -> Option<Option<bool>> {
        let Some(s) = self.simulcast.as_deref_mut() else {
            return Some(None);
        };
        if d.keyframe() {
            self.temporal.on_keyframe();
        }
        let temporal = d
            .tid
            .is_none_or(|t| self.temporal.pass(t, d.picture_start(), d.switching_up));
        if !(s.spatial.pass_spatial(d, key_svc) && temporal) {
            self.seq.leave_out(seq);
            return None;
        }
        Some(self.svc_marker(d))
    }

    /// The marker bit this consumer writes on a VP9 packet with descriptor
    /// `d` it forwards (or resends): set on the last packet of the highest
    /// spatial layer it forwards, clear below it; `None` (the publisher's)
    /// when it forwards all layers.
    pub(crate) fn svc_marker(&self, d: &Vp9Descriptor) -> Option<bool> {
        let top = self
            .simulcast
            .as_ref()
            .map_or(ALL_SPATIAL_LAYERS, |s| s.spatial.current);
        if top == ALL_SPATIAL_LAYERS {
            None
        } else if d.sid == top {
            d.end.then_some(true)
        } else {
            Some(false)
        }
    }
}

#[cfg(test)]
mod tests;
