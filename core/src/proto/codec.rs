//! What an SFU reads and rewrites in a video payload without decoding it:
//! whether a packet starts a keyframe, a VP8 keyframe's size, and the VP8
//! picture ID and TL0PICIDX that must stay continuous when a consumer
//! switches between simulcast layers.
//!
//! Every function takes the RTP payload (after the header and extensions,
//! before any padding) and returns "nothing found" on short or odd input;
//! none panics.

/// A video codec we forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    /// VP8 (RFC 7741).
    Vp8,
    /// VP9 (RFC 9628).
    Vp9,
    /// H.264 with packetization-mode 1 (RFC 6184).
    H264,
    /// AV1 (AV1 RTP payload specification v1.0).
    Av1,
}

impl VideoCodec {
    /// The codec of an SDP encoding name (`a=rtpmap`), case-insensitive.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            ("VP8", Self::Vp8),
            ("VP9", Self::Vp9),
            ("H264", Self::H264),
            ("AV1", Self::Av1),
        ]
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, c)| c)
    }

    /// Whether `payload` is the first packet of a keyframe (a frame the
    /// decoder can start from):
    /// - VP8: start of partition 0 with the P bit clear (RFC 7741 §4.3);
    /// - VP9: B bit set, P bit clear, spatial layer 0 (RFC 9628 §4.2);
    /// - H.264: an IDR slice or an SPS, alone, in a STAP-A, or at the start
    ///   of an FU-A (RFC 6184 §5.6–5.8);
    /// - AV1: the N bit of the aggregation header (a new coded video
    ///   sequence, AV1 RTP specification §4.4).
    pub fn is_keyframe(self, payload: &[u8]) -> bool {
        match self {
            Self::Vp8 => Vp8Descriptor::parse(payload).is_some_and(|d| d.keyframe),
            Self::Vp9 => vp9_is_keyframe(payload),
            Self::H264 => h264_is_keyframe(payload),
            Self::Av1 => payload.first().is_some_and(|b| b & 0x08 != 0),
        }
    }
}

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
            if x & 0x30 != 0 {
                payload.get(at)?;
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

fn vp9_is_keyframe(payload: &[u8]) -> bool {
    let Some(&b0) = payload.first() else {
        return false;
    };
    let (i, p, l, b) = (
        b0 & 0x80 != 0,
        b0 & 0x40 != 0,
        b0 & 0x20 != 0,
        b0 & 0x08 != 0,
    );
    if p || !b {
        return false;
    }
    if !l {
        return true;
    }
    let mut at = 1;
    if i {
        let Some(&pid) = payload.get(at) else {
            return false;
        };
        at += if pid & 0x80 != 0 { 2 } else { 1 };
    }
    // Layer indices: TID(3) U(1) SID(3) D(1); the keyframe is spatial layer 0.
    payload.get(at).is_some_and(|li| (li >> 1) & 0x07 == 0)
}

fn h264_is_keyframe(payload: &[u8]) -> bool {
    const IDR: u8 = 5;
    const SPS: u8 = 7;
    let Some(&b0) = payload.first() else {
        return false;
    };
    match b0 & 0x1f {
        IDR | SPS => true,
        // STAP-A: (16-bit size, NAL unit)*.
        24 => {
            let mut at = 1;
            while let (Some(&s0), Some(&s1)) = (payload.get(at), payload.get(at + 1)) {
                let size = usize::from(u16::from_be_bytes([s0, s1]));
                let Some(&nal) = payload.get(at + 2) else {
                    return false;
                };
                if size > 0 && matches!(nal & 0x1f, IDR | SPS) {
                    return true;
                }
                at += 2 + size;
            }
            false
        }
        // FU-A: the start fragment (S bit) of an IDR slice.
        28 => payload
            .get(1)
            .is_some_and(|h| h & 0x80 != 0 && matches!(h & 0x1f, IDR | SPS)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn h264_keyframes_alone_aggregated_and_fragmented() {
        let cases: &[(&str, &[u8], bool)] = &[
            ("IDR", &[0x65, 0x88], true),
            ("SPS", &[0x67, 0x42], true),
            ("non-IDR slice", &[0x41, 0x9a], false),
            (
                "STAP-A SPS+PPS",
                &[0x78, 0, 2, 0x67, 0x42, 0, 2, 0x68, 0xce],
                true,
            ),
            ("STAP-A of slices", &[0x78, 0, 2, 0x41, 0x9a], false),
            ("STAP-A truncated", &[0x78, 0, 9], false),
            ("FU-A IDR start", &[0x7c, 0x85, 0x88], true),
            ("FU-A IDR middle", &[0x7c, 0x05, 0x88], false),
            ("FU-A slice start", &[0x7c, 0x81, 0x9a], false),
        ];
        for (name, p, want) in cases {
            assert_eq!(VideoCodec::H264.is_keyframe(p), *want, "{name}");
        }
    }

    #[test]
    fn vp9_and_av1_keyframes() {
        let cases: &[(&str, VideoCodec, &[u8], bool)] = &[
            ("VP9 key, no layers", VideoCodec::Vp9, &[0x88], true),
            ("VP9 inter", VideoCodec::Vp9, &[0xc8, 0x01], false),
            (
                "VP9 key, not a frame start",
                VideoCodec::Vp9,
                &[0x80, 0x01],
                false,
            ),
            (
                "VP9 key, SID 0",
                VideoCodec::Vp9,
                &[0xa8, 0x81, 0x01, 0x00, 0],
                true,
            ),
            (
                "VP9 key, SID 1",
                VideoCodec::Vp9,
                &[0xa8, 0x01, 0x02, 0],
                false,
            ),
            ("AV1 new sequence", VideoCodec::Av1, &[0x18, 0], true),
            ("AV1 other", VideoCodec::Av1, &[0x10, 0], false),
        ];
        for (name, c, p, want) in cases {
            assert_eq!(c.is_keyframe(p), *want, "{name}");
        }
    }
}
