//! The AV1 dependency descriptor (AV1 RTP payload specification v1.0,
//! appendix A): an RTP header extension that says, for each packet, which
//! frame it belongs to and how that frame depends on others, by a
//! template of a structure the encoder sends with keyframes.
//!
//! Decoded here: the template structure (templates with their spatial and
//! temporal ids, decode target indications, frame differences and chain
//! differences; the decode targets' layers; the spatial layers'
//! resolutions) and, per packet, the frame's layer ids, boundaries,
//! references and switch points, with the structure in force.

use super::LayeredFrame;
use super::bits::BitReader;

/// Decode target indication "switch" (§A.8.3 table A.1): the frame is a
/// switch point of the decode target: from it on, the target decodes
/// without anything before it.
pub const DTI_SWITCH: u8 = 3;

/// References of one frame kept (AV1 frames have up to 7).
pub const MAX_REFERENCES: usize = 8;

/// Chains of one frame kept (a structure may have up to 32, one per decode
/// target; encoders use one per spatial layer, up to 4). A decode target
/// protected by a chain past these is not followed.
pub const MAX_CHAINS: usize = 8;

/// A frame dependency template (§A.8.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DdTemplate {
    /// Its spatial id.
    pub spatial: u8,
    /// Its temporal id.
    pub temporal: u8,
    /// Its decode target indications, 2 bits each (target 0 lowest).
    dtis: u64,
    /// Its frame differences: this frame depends on frame numbers
    /// `frame_number - fdiff`.
    pub fdiffs: Vec<u8>,
    /// Its chain differences, one per chain.
    pub chain_fdiffs: Vec<u8>,
}

impl DdTemplate {
    /// Its indication for decode target `dt` (0 not present, 1
    /// discardable, 2 required, 3 switch).
    pub fn dti(&self, dt: usize) -> u8 {
        if dt >= 32 {
            return 0;
        }
        ((self.dtis >> (2 * dt)) & 3) as u8
    }
}

/// The template dependency structure (§A.8.3), sent with keyframes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DdStructure {
    /// Template ids are offset by this (mod 64).
    pub template_id_offset: u8,
    /// The templates, indexed by `(template_id - offset) mod 64`.
    pub templates: Vec<DdTemplate>,
    /// Each decode target's highest (spatial, temporal) ids (1–32 targets).
    pub decode_targets: Vec<(u8, u8)>,
    /// Each decode target's protecting chain, when there are chains.
    pub protected_by: Vec<u8>,
    /// The number of chains (0 when none).
    pub chains: u8,
    /// Each spatial layer's render size (width, height), lowest first,
    /// when present.
    pub resolutions: Option<Vec<(u16, u16)>>,
}

impl DdStructure {
    /// The number of spatial layers its templates use.
    pub fn spatial_layers(&self) -> u8 {
        self.templates
            .iter()
            .map(|t| t.spatial)
            .max()
            .map_or(1, |s| s + 1)
    }
}

/// One packet's dependency descriptor, decoded against the structure in
/// force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DependencyDescriptor {
    /// The first packet of a frame.
    pub start_of_frame: bool,
    /// The last packet of a frame.
    pub end_of_frame: bool,
    /// The frame number (16 bits, wrapping).
    pub frame_number: u16,
    /// The frame's spatial id.
    pub spatial: u8,
    /// The frame's temporal id.
    pub temporal: u8,
    /// Its indication for the decode target of its own layers
    /// ([`DTI_SWITCH`]: a frame a receiver may start that target at).
    pub own_dti: u8,
    /// The frames it depends on, as differences of frame numbers (its
    /// template's, or its own), up to [`MAX_REFERENCES`].
    fdiffs: [u16; MAX_REFERENCES],
    fdiff_count: u8,
    /// Its chain differences (its template's, or its own), one per chain
    /// up to [`MAX_CHAINS`]: `frame_number - d` is the previous frame of
    /// that chain, and 0 says there is none (the chain starts here).
    chain_fdiffs: [u8; MAX_CHAINS],
    chain_count: u8,
    /// It depends on an earlier frame of its own temporal unit (the
    /// spatial layer below: inter-layer prediction).
    pub inter_layer: bool,
    /// It depends on a frame of an earlier temporal unit.
    pub inter_picture: bool,
    /// The structure this packet carries (keyframes), if any.
    pub structure: Option<Box<DdStructure>>,
    /// Active decode targets (bit i: target i), when the packet says.
    pub active_decode_targets: Option<u32>,
}

impl DependencyDescriptor {
    /// Decodes the extension's value `data` (3 bytes or more) against the
    /// structure it carries or, without one, `latest`. `None` when it is
    /// truncated, malformed, or names a template no structure has (a
    /// packet before the first keyframe's structure).
    pub fn parse(data: &[u8], latest: Option<&DdStructure>) -> Option<Self> {
        let mut r = BitReader::new(data);
        let start_of_frame = r.bits(1)? == 1;
        let end_of_frame = r.bits(1)? == 1;
        let template_id = r.bits(6)? as u8;
        let frame_number = r.bits(16)? as u16;
        let (mut custom_dtis, mut custom_fdiffs, mut custom_chains) = (false, false, false);
        let mut structure = None;
        let mut active_decode_targets = None;
        if data.len() > 3 {
            let has_structure = r.bits(1)? == 1;
            let has_active = r.bits(1)? == 1;
            custom_dtis = r.bits(1)? == 1;
            custom_fdiffs = r.bits(1)? == 1;
            custom_chains = r.bits(1)? == 1;
            if has_structure {
                let s = read_structure(&mut r)?;
                active_decode_targets = Some(all_targets(s.decode_targets.len()));
                structure = Some(Box::new(s));
            }
            if has_active {
                let n = structure.as_deref().or(latest)?.decode_targets.len();
                active_decode_targets = Some(r.bits(n as u32)?);
            }
        }
        let s = structure.as_deref().or(latest)?;
        let index = (usize::from(template_id) + 64 - usize::from(s.template_id_offset)) % 64;
        let t = s.templates.get(index)?;
        let dt_count = s.decode_targets.len();
        let dtis = if custom_dtis {
            let mut d = 0u64;
            for i in 0..dt_count {
                d |= u64::from(r.bits(2)?) << (2 * i);
            }
            d
        } else {
            t.dtis
        };
        let mut fdiffs = [0u16; MAX_REFERENCES];
        let mut fdiff_count = 0u8;
        let mut note = |fdiff: u32| {
            if let Some(slot) = fdiffs.get_mut(usize::from(fdiff_count)) {
                *slot = fdiff as u16;
                fdiff_count += 1;
            }
        };
        if custom_fdiffs {
            loop {
                let size = r.bits(2)?;
                if size == 0 {
                    break;
                }
                note(r.bits(4 * size)? + 1);
            }
        } else {
            for f in &t.fdiffs {
                note(u32::from(*f));
            }
        }
        let mut chain_fdiffs = [0u8; MAX_CHAINS];
        let chain_count = usize::from(s.chains).min(MAX_CHAINS);
        if custom_chains {
            for c in 0..usize::from(s.chains) {
                let d = r.bits(8)? as u8;
                if let Some(slot) = chain_fdiffs.get_mut(c) {
                    *slot = d;
                }
            }
        } else {
            for (slot, d) in chain_fdiffs.iter_mut().zip(&t.chain_fdiffs) {
                *slot = *d;
            }
        }
        // Which of its references fall in its own temporal unit (within
        // its spatial id: the frames of the layers below, numbered just
        // before it) and which before.
        let refs = &fdiffs[..usize::from(fdiff_count)];
        let inter_layer = refs.iter().any(|f| *f <= u16::from(t.spatial));
        let inter_picture = refs.iter().any(|f| *f > u16::from(t.spatial));
        let own = s
            .decode_targets
            .iter()
            .position(|l| *l == (t.spatial, t.temporal))
            .map_or(0, |dt| ((dtis >> (2 * dt)) & 3) as u8);
        Some(Self {
            start_of_frame,
            end_of_frame,
            frame_number,
            spatial: t.spatial,
            temporal: t.temporal,
            own_dti: own,
            fdiffs,
            fdiff_count,
            chain_fdiffs,
            chain_count: chain_count as u8,
            inter_layer,
            inter_picture,
            structure,
            active_decode_targets,
        })
    }

    /// The frame numbers of the frames it depends on.
    pub fn references(&self) -> impl Iterator<Item = u16> + '_ {
        self.fdiffs[..usize::from(self.fdiff_count)]
            .iter()
            .map(|f| self.frame_number.wrapping_sub(*f))
    }

    /// Its chain differences, one per chain (at most [`MAX_CHAINS`]):
    /// `frame_number - d` is the previous frame of the chain, 0 none
    /// (§A.8.2 `frame_chain_fdiff`).
    pub fn chain_fdiffs(&self) -> &[u8] {
        &self.chain_fdiffs[..usize::from(self.chain_count)]
    }

    /// The frame as the layer selection sees it. `switching_up`: whether a
    /// consumer may start taking its temporal layer here, which the
    /// caller knows from the frames it references
    /// ([`crate::router::svc::SpatialLayers`] follows them); a frame the
    /// structure marks a switch point of its own target always is.
    pub fn frame(&self, switching_up: bool) -> LayeredFrame {
        LayeredFrame {
            sid: self.spatial,
            tid: Some(self.temporal),
            begin: self.start_of_frame,
            end: self.end_of_frame,
            inter_picture: self.inter_picture,
            inter_layer: self.inter_layer,
            switching_up: switching_up || self.own_dti == DTI_SWITCH,
        }
    }
}

fn all_targets(n: usize) -> u32 {
    if n >= 32 { u32::MAX } else { (1u32 << n) - 1 }
}

/// `ns(n)` (§A.8.1): a value below `n` in non-symmetric bits.
fn ns(r: &mut BitReader<'_>, n: u32) -> Option<u32> {
    let w = 32 - n.leading_zeros();
    let m = (1u32 << w) - n;
    let v = if w > 1 { r.bits(w - 1)? } else { 0 };
    if v < m {
        return Some(v);
    }
    let extra = r.bits(1)?;
    Some((v << 1) - m + extra)
}

/// `template_dependency_structure()` (§A.8.3).
fn read_structure(r: &mut BitReader<'_>) -> Option<DdStructure> {
    let template_id_offset = r.bits(6)? as u8;
    let dt_count = r.bits(5)? as usize + 1;
    // template_layers(): each next_layer_idc says where the next template
    // is (0 same layers, 1 next temporal, 2 next spatial, 3 no more).
    let mut templates = Vec::new();
    let (mut spatial, mut temporal) = (0u8, 0u8);
    loop {
        if templates.len() >= 64 {
            return None;
        }
        templates.push(DdTemplate {
            spatial,
            temporal,
            dtis: 0,
            fdiffs: Vec::new(),
            chain_fdiffs: Vec::new(),
        });
        match r.bits(2)? {
            0 => {}
            1 => temporal = temporal.checked_add(1).filter(|t| *t < 8)?,
            2 => {
                temporal = 0;
                spatial = spatial.checked_add(1).filter(|s| *s < 4)?;
            }
            _ => break,
        }
    }
    for t in &mut templates {
        for dt in 0..dt_count {
            t.dtis |= u64::from(r.bits(2)?) << (2 * dt);
        }
    }
    for t in &mut templates {
        while r.bits(1)? == 1 {
            t.fdiffs.push(r.bits(4)? as u8 + 1);
        }
    }
    let chains = ns(r, dt_count as u32 + 1)? as u8;
    let mut protected_by = Vec::new();
    if chains > 0 {
        for _ in 0..dt_count {
            protected_by.push(ns(r, u32::from(chains))? as u8);
        }
        for t in &mut templates {
            for _ in 0..chains {
                t.chain_fdiffs.push(r.bits(4)? as u8);
            }
        }
    }
    // decode_target_layers(): each target's highest layers among the
    // templates that take part in it.
    let decode_targets = (0..dt_count)
        .map(|dt| {
            templates
                .iter()
                .filter(|t| t.dti(dt) != 0)
                .fold((0, 0), |(s, tt), t| (s.max(t.spatial), tt.max(t.temporal)))
        })
        .collect();
    let resolutions = if r.bits(1)? == 1 {
        let n = usize::from(spatial) + 1;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            let w = r.bits(16)? + 1;
            let h = r.bits(16)? + 1;
            v.push((w as u16, h as u16));
        }
        Some(v)
    } else {
        None
    };
    Some(DdStructure {
        template_id_offset,
        templates,
        decode_targets,
        protected_by,
        chains,
        resolutions,
    })
}

#[cfg(test)]
mod tests;
