//! The VP8 payload descriptor (RFC 7741 §4.2): keyframes, and the picture
//! ID and TL0PICIDX a layer switch keeps continuous.

/// The fields of a VP8 payload descriptor (RFC 7741 §4.2) an SFU uses,
/// with where they sit, to rewrite them in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vp8Descriptor {
    /// The picture ID (7 or 15 bits), if present.
    pub picture_id: Option<u16>,
    /// The picture ID has 15 bits (M bit set).
    pub long_picture_id: bool,
    /// Byte offset of the picture ID in the payload.
    picture_id_at: usize,
    /// TL0PICIDX (the running index of base-layer frames), if present.
    pub tl0picidx: Option<u8>,
    /// Byte offset of TL0PICIDX in the payload.
    tl0picidx_at: usize,
    /// The temporal layer index (TID, 0–3), when the T bit is set.
    pub tid: Option<u8>,
    /// The Y bit: this frame depends only on base-layer (TID 0) frames, so
    /// a receiver may start its layer here (a layer sync).
    pub layer_sync: bool,
    /// Start of a VP8 partition (S bit) with partition index 0: the first
    /// packet of a frame.
    pub frame_start: bool,
    /// The first packet of a keyframe.
    pub keyframe: bool,
    /// A keyframe's size in pixels (width, height), from its header
    /// (RFC 6386 §9.1), when this packet starts one.
    pub size: Option<(u16, u16)>,
}

impl Vp8Descriptor {
    /// Parses the descriptor at the start of `payload`; `None` when it is
    /// truncated.
    pub fn parse(payload: &[u8]) -> Option<Self> {
        let b0 = *payload.first()?;
        let mut at = 1;
        let (mut picture_id, mut long_picture_id, mut picture_id_at) = (None, false, 0);
        let (mut tl0picidx, mut tl0picidx_at) = (None, 0);
        let (mut tid, mut layer_sync) = (None, false);
        if b0 & 0x80 != 0 {
            let x = *payload.get(at)?;
            at += 1;
            if x & 0x80 != 0 {
                let p0 = *payload.get(at)?;
                picture_id_at = at;
                if p0 & 0x80 != 0 {
                    let p1 = *payload.get(at + 1)?;
                    picture_id = Some(u16::from_be_bytes([p0 & 0x7f, p1]));
                    long_picture_id = true;
                    at += 2;
                } else {
                    picture_id = Some(u16::from(p0));
                    at += 1;
                }
            }
            if x & 0x40 != 0 {
                tl0picidx = Some(*payload.get(at)?);
                tl0picidx_at = at;
                at += 1;
            }
            // TID(2) Y(1) KEYIDX(5), present with T or K.
            if x & 0x30 != 0 {
                let t = *payload.get(at)?;
                if x & 0x20 != 0 {
                    tid = Some(t >> 6);
                    layer_sync = t & 0x20 != 0;
                }
                at += 1;
            }
        }
        let frame_start = b0 & 0x10 != 0 && b0 & 0x0f == 0;
        let header = payload.get(at..).unwrap_or(&[]);
        let keyframe = frame_start && header.first().is_some_and(|h| h & 0x01 == 0);
        // A keyframe's uncompressed header: 3-byte frame tag, the start code
        // 9d 01 2a, then 14-bit width and height, little-endian.
        let size = match header {
            [_, _, _, 0x9d, 0x01, 0x2a, w0, w1, h0, h1, ..] if keyframe => Some((
                u16::from_le_bytes([*w0, *w1]) & 0x3fff,
                u16::from_le_bytes([*h0, *h1]) & 0x3fff,
            )),
            _ => None,
        };
        Some(Self {
            picture_id,
            long_picture_id,
            picture_id_at,
            tl0picidx,
            tl0picidx_at,
            tid,
            layer_sync,
            frame_start,
            keyframe,
            size,
        })
    }

    /// Writes `picture_id` (kept to the descriptor's own 7 or 15 bits) and
    /// `tl0picidx` into `payload`, where this descriptor was parsed from;
    /// fields the descriptor lacks are left out.
    pub fn rewrite(&self, payload: &mut [u8], picture_id: u16, tl0picidx: u8) {
        if self.picture_id.is_some() {
            if self.long_picture_id {
                let [hi, lo] = (picture_id & 0x7fff).to_be_bytes();
                payload[self.picture_id_at] = 0x80 | hi;
                payload[self.picture_id_at + 1] = lo;
            } else {
                payload[self.picture_id_at] = (picture_id & 0x7f) as u8;
            }
        }
        if self.tl0picidx.is_some() {
            payload[self.tl0picidx_at] = tl0picidx;
        }
    }

    /// The modulus of this descriptor's picture ID: 2^15 or 2^7.
    pub fn picture_id_modulus(&self) -> u16 {
        if self.long_picture_id {
            1 << 15
        } else {
            1 << 7
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::codec::VideoCodec;

    /// A VP8 keyframe's first packet: X, S, PID 0; I and L; 15-bit picture
    /// ID 0x1234; TL0PICIDX 7; frame tag (P clear), start code, 640×480.
    fn vp8_keyframe() -> Vec<u8> {
        vec![
            0x90, 0xc0, 0x92, 0x34, 7, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01,
        ]
    }

    #[test]
    fn vp8_keyframe_is_parsed_with_its_size_and_indices() {
        let d = Vp8Descriptor::parse(&vp8_keyframe()).expect("descriptor");
        assert!(d.keyframe && d.frame_start);
        assert_eq!(d.picture_id, Some(0x1234));
        assert!(d.long_picture_id);
        assert_eq!(d.tl0picidx, Some(7));
        assert_eq!(d.size, Some((640, 480)));
        assert!(VideoCodec::Vp8.is_keyframe(&vp8_keyframe()));
    }

    #[test]
    fn vp8_delta_frames_and_continuations_are_not_keyframes() {
        let mut delta = vp8_keyframe();
        delta[5] |= 0x01; // P bit: inter frame
        assert!(!VideoCodec::Vp8.is_keyframe(&delta));
        let mut cont = vp8_keyframe();
        cont[0] &= !0x10; // not the start of a partition
        assert!(!VideoCodec::Vp8.is_keyframe(&cont));
        assert_eq!(Vp8Descriptor::parse(&cont).expect("descriptor").size, None);
    }

    #[test]
    fn vp8_rewrite_keeps_the_width_of_the_picture_id() {
        let mut p = vp8_keyframe();
        let d = Vp8Descriptor::parse(&p).expect("descriptor");
        d.rewrite(&mut p, 0x8001, 200);
        let r = Vp8Descriptor::parse(&p).expect("descriptor");
        assert_eq!((r.picture_id, r.tl0picidx), (Some(0x0001), Some(200)));
        // 7-bit picture ID, no TL0PICIDX.
        let mut short = vec![0x90, 0x80, 0x05, 0x10, 0, 0];
        let d = Vp8Descriptor::parse(&short).expect("descriptor");
        assert_eq!(d.picture_id_modulus(), 128);
        d.rewrite(&mut short, 130, 9);
        assert_eq!(short, vec![0x90, 0x80, 0x02, 0x10, 0, 0]);
    }

    #[test]
    fn truncated_or_empty_payloads_are_nothing() {
        let k = vp8_keyframe();
        for n in 0..5 {
            assert!(Vp8Descriptor::parse(&k[..n]).is_none(), "{n} bytes");
        }
        for c in [
            VideoCodec::Vp8,
            VideoCodec::Vp9,
            VideoCodec::H264,
            VideoCodec::Av1,
        ] {
            assert!(!c.is_keyframe(&[]));
            for n in 0..k.len() {
                let _ = c.is_keyframe(&k[..n]);
            }
        }
    }
}
