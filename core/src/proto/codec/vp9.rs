//! The VP9 payload descriptor (RFC 9628 §4.2): the spatial and temporal
//! layer of each packet, the frame and picture boundaries, and the sizes
//! of the spatial layers from the scalability structure (§4.2.1).

use super::LayeredFrame;

/// Spatial layers whose size a [`Vp9Descriptor`] keeps from the
/// scalability structure (the descriptor allows 8; encoders send up to 3).
pub const VP9_MAX_SPATIAL: usize = 4;

/// The fields of a VP9 payload descriptor (RFC 9628 §4.2) an SFU uses to
/// choose layers per subscriber. Nothing in it is rewritten: in flexible
/// mode the references are picture ID differences, which a renumbering
/// would break, and a receiver takes gaps in picture IDs of layers it does
/// not get (as it must when an SFU drops them, §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vp9Descriptor {
    /// The picture ID (7 or 15 bits), if present (I bit).
    pub picture_id: Option<u16>,
    /// P bit: the frame is predicted from earlier pictures (not a
    /// keyframe nor an upper layer that depends only on the layer below).
    pub inter_picture: bool,
    /// F bit: flexible mode (references as picture ID differences).
    pub flexible: bool,
    /// B bit: the first packet of a frame (of one spatial layer).
    pub begin: bool,
    /// E bit: the last packet of a frame. The RTP marker goes on the last
    /// packet of a picture (its highest spatial layer), so a subscriber
    /// that gets fewer spatial layers needs it set on this one (§4.1).
    pub end: bool,
    /// The spatial layer id (SID); 0 without layer indices (L bit clear).
    pub sid: u8,
    /// The temporal layer id (TID), with layer indices.
    pub tid: Option<u8>,
    /// U bit: a switching-up point. Frames of this temporal layer from here
    /// on depend on no frame of it before, so a receiver may start taking
    /// this layer here.
    pub switching_up: bool,
    /// D bit: the frame depends on the frame of the spatial layer below in
    /// the same picture.
    pub inter_layer: bool,
    /// TL0PICIDX, in non-flexible mode with layer indices.
    pub tl0picidx: Option<u8>,
    /// The number of spatial layers the scalability structure (V bit)
    /// announces, 1–8, when this packet carries one.
    pub spatial_layers: Option<u8>,
    /// Their sizes (width, height) in pixels, lowest first, for up to
    /// [`VP9_MAX_SPATIAL`] of them, when the structure has them (Y bit).
    pub sizes: Option<[(u16, u16); VP9_MAX_SPATIAL]>,
}

impl Vp9Descriptor {
    /// Parses the descriptor at the start of `payload`; `None` when it is
    /// truncated (including a truncated scalability structure).
    pub fn parse(payload: &[u8]) -> Option<Self> {
        let b0 = *payload.first()?;
        let bit = |m: u8| b0 & m != 0;
        let (i, p, l, f, b, e, v) = (
            bit(0x80),
            bit(0x40),
            bit(0x20),
            bit(0x10),
            bit(0x08),
            bit(0x04),
            bit(0x02),
        );
        let mut at = 1;
        let mut picture_id = None;
        if i {
            let p0 = *payload.get(at)?;
            if p0 & 0x80 != 0 {
                picture_id = Some(u16::from_be_bytes([p0 & 0x7f, *payload.get(at + 1)?]));
                at += 2;
            } else {
                picture_id = Some(u16::from(p0));
                at += 1;
            }
        }
        let (mut sid, mut tid, mut switching_up, mut inter_layer, mut tl0picidx) =
            (0, None, false, false, None);
        if l {
            // TID(3) U(1) SID(3) D(1)
            let li = *payload.get(at)?;
            at += 1;
            tid = Some(li >> 5);
            switching_up = li & 0x10 != 0;
            sid = (li >> 1) & 0x07;
            inter_layer = li & 0x01 != 0;
            if !f {
                tl0picidx = Some(*payload.get(at)?);
                at += 1;
            }
        }
        if f && p {
            // Up to three reference differences, each with N (another follows).
            for _ in 0..3 {
                let d = *payload.get(at)?;
                at += 1;
                if d & 0x01 == 0 {
                    break;
                }
            }
        }
        let (mut spatial_layers, mut sizes) = (None, None);
        if v {
            let ss = *payload.get(at)?;
            at += 1;
            let n = (ss >> 5) + 1;
            spatial_layers = Some(n);
            if ss & 0x10 != 0 {
                let mut s = [(0u16, 0u16); VP9_MAX_SPATIAL];
                for k in 0..usize::from(n) {
                    let r = payload.get(at..at + 4)?;
                    at += 4;
                    if let Some(slot) = s.get_mut(k) {
                        *slot = (
                            u16::from_be_bytes([r[0], r[1]]),
                            u16::from_be_bytes([r[2], r[3]]),
                        );
                    }
                }
                sizes = Some(s);
            }
        }
        Some(Self {
            picture_id,
            inter_picture: p,
            flexible: f,
            begin: b,
            end: e,
            sid,
            tid,
            switching_up,
            inter_layer,
            tl0picidx,
            spatial_layers,
            sizes,
        })
    }

    /// The frame as the layer selection sees it.
    pub fn frame(&self) -> LayeredFrame {
        LayeredFrame {
            sid: self.sid,
            tid: self.tid,
            begin: self.begin,
            end: self.end,
            inter_picture: self.inter_picture,
            inter_layer: self.inter_layer,
            switching_up: self.switching_up,
        }
    }

    /// Whether this packet starts a keyframe ([`LayeredFrame::keyframe`]).
    pub fn keyframe(&self) -> bool {
        self.frame().keyframe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_flexible_with_layer_indices_and_a_scalability_structure() {
        // I, L, B, V; 15-bit picture ID 0x1234; TID 2, U, SID 1, D;
        // TL0PICIDX 7; SS: 3 layers with sizes, no G.
        let mut p = vec![
            0xaa,
            0x92,
            0x34,
            (2 << 5) | 0x10 | (1 << 1) | 1,
            7,
            (2 << 5) | 0x10,
        ];
        for (w, h) in [(160u16, 120u16), (320, 240), (640, 480)] {
            p.extend_from_slice(&w.to_be_bytes());
            p.extend_from_slice(&h.to_be_bytes());
        }
        p.push(0xff);
        let d = Vp9Descriptor::parse(&p).unwrap();
        assert_eq!(d.picture_id, Some(0x1234));
        assert_eq!(
            (d.sid, d.tid, d.switching_up, d.inter_layer),
            (1, Some(2), true, true)
        );
        assert_eq!(d.tl0picidx, Some(7));
        assert!(!d.flexible && d.begin && !d.end && !d.inter_picture);
        assert_eq!(d.spatial_layers, Some(3));
        assert_eq!(d.sizes.unwrap()[..3], [(160, 120), (320, 240), (640, 480)]);
        assert!(!d.keyframe(), "SID 1 does not start a keyframe");
        // Every prefix is truncated, none panics.
        for n in 0..p.len() - 1 {
            assert_eq!(Vp9Descriptor::parse(&p[..n]), None, "{n} bytes");
        }
    }

    #[test]
    fn flexible_mode_reference_differences() {
        // I, P, L, F, E; 7-bit picture ID 5; TID 1, SID 0; two P_DIFFs.
        let p = [0xf4, 0x05, 1 << 5, (2 << 1) | 1, 4 << 1, 0xaa];
        let d = Vp9Descriptor::parse(&p).unwrap();
        assert_eq!((d.picture_id, d.tid, d.sid), (Some(5), Some(1), 0));
        assert!(d.flexible && d.inter_picture && d.end && !d.begin);
        assert_eq!(d.tl0picidx, None);
        // A third P_DIFF announced (N) but missing.
        assert_eq!(Vp9Descriptor::parse(&[0xf4, 0x05, 0x20, 0x05, 0x09]), None);
    }

    #[test]
    fn keyframe_and_picture_start() {
        let d = Vp9Descriptor::parse(&[0x88, 0x01]).unwrap();
        assert!(d.keyframe() && d.frame().picture_start() && d.tid.is_none());
        let d = Vp9Descriptor::parse(&[0xc8, 0x01]).unwrap();
        assert!(!d.keyframe() && d.frame().picture_start());
    }
}
