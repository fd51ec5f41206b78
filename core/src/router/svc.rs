//! Spatial layers of one VP9 or AV1 stream (SVC): what a producer
//! measures of each, and which of them a consumer forwards.
//!
//! An SVC picture is one frame per spatial layer, lowest first, all under
//! one RTP timestamp; the marker bit ends the picture (VP9: RFC 9628 §4.1;
//! AV1: its temporal unit). VP9 says each frame's layers in its payload
//! descriptor, AV1 in the dependency descriptor's template
//! (`crate::proto::codec::DependencyDescriptor`). How an
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
//! the U bit as the layer sync. An AV1 stream's chains ([`Chains`]) say
//! which spatial layers a frame given up upstream left undecodable: those
//! are left out until the next keyframe, and a full-SVC consumer above
//! them steps down to the highest layer still whole.

use std::time::Instant;

mod chains;

pub use chains::Chains;

use super::consumer::Consumer;
use super::rate_meter::RateMeter;
use super::temporal::LayerFilter;
use crate::bwe::allocator::LayerInfo;
use crate::proto::codec::{DdStructure, DependencyDescriptor, LayeredFrame, VP9_MAX_SPATIAL};

/// A spatial target or current layer meaning "every layer".
pub const ALL_SPATIAL_LAYERS: u8 = u8::MAX;

/// Spatial layers a [`SpatialLayers`] measures (VP9 and AV1 encoders send
/// up to 3).
pub const MAX_SPATIAL: usize = VP9_MAX_SPATIAL;

/// What a producer measures of the spatial layers of its VP9 or AV1
/// stream.
#[derive(Debug, Clone, Default)]
pub struct SpatialLayers {
    /// Bytes of RTP received per (spatial, temporal) layer, and their rates.
    bytes: [[u64; 4]; MAX_SPATIAL],
    rates: [[RateMeter; 4]; MAX_SPATIAL],
    /// Packets per spatial layer, as wire overhead
    /// ([`super::producer::PACKET_OVERHEAD_BYTES`] each), and its rate.
    overhead: [u64; MAX_SPATIAL],
    overhead_rates: [RateMeter; MAX_SPATIAL],
    /// When a packet of each spatial layer last arrived.
    last_packet: [Option<Instant>; MAX_SPATIAL],
    /// Each layer's size (width, height), from the last scalability
    /// structure.
    sizes: [Option<(u16, u16)>; MAX_SPATIAL],
    /// Upper layers' inter frames seen, and whether the last one was
    /// predicted from the layer below (full SVC) or not (K-SVC).
    inter_layer: Option<bool>,
    /// AV1: the dependency descriptor's template structure in force (the
    /// last keyframe's), which each packet's template id refers to.
    pub(crate) av1_structure: Option<Box<DdStructure>>,
    /// AV1: the recent frames' (frame number, temporal id), by frame
    /// number modulo the length, to follow each frame's references.
    recent: [Option<(u16, u8)>; RECENT_FRAMES],
    /// AV1: the chains, and which of them a loss has broken.
    pub(crate) chains: Chains,
}

/// AV1 frames whose temporal id [`SpatialLayers`] keeps (a second of three
/// spatial layers at 10 frames/s).
const RECENT_FRAMES: usize = 32;

impl SpatialLayers {
    /// Counts a packet of `len` bytes of frame `f` received at `now`.
    pub fn on_packet(&mut self, f: &LayeredFrame, len: usize, now: Instant) {
        let s = usize::from(f.sid).min(MAX_SPATIAL - 1);
        let t = usize::from(f.tid.unwrap_or(0) & 3);
        self.bytes[s][t] += len as u64;
        self.overhead[s] += super::producer::PACKET_OVERHEAD_BYTES;
        self.last_packet[s] = Some(now);
        if f.sid > 0 && f.inter_picture && f.begin {
            self.inter_layer = Some(f.inter_layer);
        }
    }

    /// AV1: the frame of packet `seq` whose dependency descriptor is
    /// `value`, decoded against the structure in force, or `None` when it
    /// does not decode. A structure it carries (a keyframe's) becomes the
    /// one in force, with its spatial layers' sizes and chains; the
    /// frame's chain differences go to [`Chains::on_packet`].
    pub fn av1_packet(&mut self, value: &[u8], seq: u16) -> Option<LayeredFrame> {
        let d = DependencyDescriptor::parse(value, self.av1_structure.as_deref())?;
        if let Some(st) = d.structure.clone() {
            if let Some(r) = &st.resolutions {
                self.set_sizes(r);
            }
            self.chains.set_structure(&st);
            self.av1_structure = Some(st);
        }
        self.chains.on_packet(&d, seq);
        Some(self.av1_frame(&d))
    }

    /// The largest spatial layer's size (width, height), when known.
    pub fn top_size(&self) -> Option<(u16, u16)> {
        self.sizes.iter().rev().find_map(|s| *s)
    }

    /// AV1: the frame of a packet with dependency descriptor `d`, following
    /// its references: a consumer may start taking its temporal layer here
    /// when every frame it references in earlier temporal units is of a
    /// lower temporal layer (which a consumer below this layer has), as a
    /// T1 frame that references only T0 frames. A reference to a frame not
    /// seen (lost, or too long ago) makes it no such point.
    fn av1_frame(&mut self, d: &DependencyDescriptor) -> LayeredFrame {
        let up = d.references().all(|r| {
            d.frame_number.wrapping_sub(r) <= u16::from(d.spatial)
                || self.recent[usize::from(r) % RECENT_FRAMES]
                    .is_some_and(|(n, t)| n == r && t < d.temporal)
        });
        self.recent[usize::from(d.frame_number) % RECENT_FRAMES] =
            Some((d.frame_number, d.temporal));
        d.frame(up)
    }

    /// Sets the spatial layers' sizes (width, height), lowest first, from
    /// a VP9 scalability structure or an AV1 template structure.
    pub fn set_sizes(&mut self, sizes: &[(u16, u16)]) {
        for (k, slot) in self.sizes.iter_mut().enumerate() {
            *slot = sizes.get(k).copied();
        }
    }

    /// Measures the rates (about once a second).
    pub fn sample(&mut self, now: Instant, min_span: std::time::Duration) {
        for s in 0..MAX_SPATIAL {
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
    /// `inactive_after`. No sync-frame rates: only VP8 marks those.
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
                    // Not measured: VP9's and AV1's switching points say
                    // when to go up, not that a frame needs no other of
                    // its layer.
                    sync_bps: [0; 4],
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

    /// Whether a packet of frame `d` is forwarded, moving `current` to the
    /// target where that is safe. `broken` (bit per spatial layer, AV1's
    /// [`Chains::broken_layers`]): layers that cannot decode until the
    /// next keyframe. Their frames are left out; in full SVC, where each
    /// layer's chain holds the ones below it, a consumer above them steps
    /// down at the next picture to the highest layer still whole, and
    /// back up at the keyframe (which the allocator asks for, as the
    /// current layer is then below the target).
    fn pass_spatial(&mut self, d: &LayeredFrame, key_svc: bool, broken: u8) -> bool {
        if d.keyframe() || (!key_svc && d.picture_start() && self.target < self.current) {
            self.current = self.target;
        }
        if broken != 0 {
            let whole = broken.trailing_zeros() as u8;
            if !key_svc && d.picture_start() && whole > 0 && self.current >= whole {
                self.current = whole - 1;
            }
            if broken & (1 << d.sid.min(7)) != 0 {
                return false;
            }
        }
        if self.current == ALL_SPATIAL_LAYERS {
            return true;
        }
        // K-SVC: below the current layer only what a keyframe needs.
        d.sid == self.current || (d.sid < self.current && (!key_svc || !d.inter_picture))
    }
}

impl Consumer {
    /// Whether this consumer forwards the packet of frame `d` (VP9 or AV1)
    /// with sequence number `seq` by its spatial and temporal layers, given
    /// whether the stream is K-SVC ([`SpatialLayers::key_svc`]) and the
    /// spatial layers a broken AV1 chain leaves undecodable (`broken`, bit
    /// per layer, [`Chains::broken_layers`]; 0 for VP9). Returns
    /// `None` for a packet left out (out of its sequence numbers too, so
    /// what it sends has no gap), else the marker bit to write: set on the
    /// last packet of the highest spatial layer it forwards, clear below
    /// it, the publisher's otherwise. A consumer without layer state
    /// forwards everything as it came.
    #[inline]
    pub(crate) fn svc_pass(
        &mut self,
        d: &LayeredFrame,
        seq: u16,
        key_svc: bool,
        broken: u8,
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
        if !(s.spatial.pass_spatial(d, key_svc, broken) && temporal) {
            self.seq.leave_out(seq);
            return None;
        }
        Some(self.svc_marker(d))
    }

    /// The marker bit this consumer writes on a packet of frame `d` it
    /// forwards (or resends): set on the last packet of the highest spatial
    /// layer it forwards, clear below it; `None` (the publisher's) when it
    /// forwards all layers. (VP9 ends a picture with it, RFC 9628 §4.1;
    /// AV1 a temporal unit, AV1 RTP specification §7.1.)
    pub(crate) fn svc_marker(&self, d: &LayeredFrame) -> Option<bool> {
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
