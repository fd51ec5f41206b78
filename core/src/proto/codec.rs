//! What an SFU reads and rewrites in a video payload without decoding it:
//! whether a packet starts a keyframe, a VP8 keyframe's size or an H.264
//! SPS's, and the VP8 picture ID and TL0PICIDX that must stay continuous
//! when a consumer switches between simulcast layers.
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

/// The picture size (width, height in pixels, after cropping) of the
/// H.264 sequence parameter set in `payload`: a single SPS NAL unit or one
/// in a STAP-A (RFC 6184 §5.6, §5.7.1). Parses ITU-T H.264 §7.3.2.1.1 up to
/// the frame cropping (§7.4.2.1.1: crop units by chroma format); `None`
/// when there is no SPS or it is truncated or odd.
pub fn h264_sps_size(payload: &[u8]) -> Option<(u16, u16)> {
    const SPS: u8 = 7;
    let &b0 = payload.first()?;
    let nal = match b0 & 0x1f {
        SPS => payload,
        24 => {
            let mut at = 1;
            loop {
                let size = usize::from(u16::from_be_bytes([
                    *payload.get(at)?,
                    *payload.get(at + 1)?,
                ]));
                let unit = payload.get(at + 2..at + 2 + size)?;
                if unit.first().is_some_and(|h| h & 0x1f == SPS) {
                    break unit;
                }
                at += 2 + size;
            }
        }
        _ => return None,
    };
    // The SPS's RBSP: without its NAL header and emulation prevention
    // bytes (0x000003 → 0x0000, §7.4.1). An SPS is small: 64 bytes do.
    let mut rbsp = [0u8; 64];
    let mut len = 0;
    let mut zeros = 0;
    for &b in nal.get(1..)?.iter().take(80) {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        if len == rbsp.len() {
            break;
        }
        rbsp[len] = b;
        len += 1;
    }
    let mut r = BitReader {
        data: &rbsp[..len],
        bit: 0,
    };
    let profile = r.bits(8)?;
    r.bits(16)?; // constraint flags, level
    r.ue()?; // seq_parameter_set_id
    let mut chroma_format = 1;
    if matches!(
        profile,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format = r.ue()?;
        if chroma_format == 3 {
            r.bits(1)?; // separate_colour_plane_flag
        }
        r.ue()?; // bit_depth_luma_minus8
        r.ue()?; // bit_depth_chroma_minus8
        r.bits(1)?; // qpprime_y_zero_transform_bypass_flag
        if r.bits(1)? == 1 {
            // seq_scaling_matrix_present_flag: scaling_list() (§7.3.2.1.1.1)
            let lists = if chroma_format == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.bits(1)? == 1 {
                    let size = if i < 6 { 16 } else { 64 };
                    let (mut last, mut next) = (8i64, 8i64);
                    for _ in 0..size {
                        if next != 0 {
                            next = (last + r.se()? + 256).rem_euclid(256);
                        }
                        if next != 0 {
                            last = next;
                        }
                    }
                }
            }
        }
    }
    r.ue()?; // log2_max_frame_num_minus4
    match r.ue()? {
        0 => {
            r.ue()?; // log2_max_pic_order_cnt_lsb_minus4
        }
        1 => {
            r.bits(1)?; // delta_pic_order_always_zero_flag
            r.se()?; // offset_for_non_ref_pic
            r.se()?; // offset_for_top_to_bottom_field
            let cycle = r.ue()?;
            if cycle > 255 {
                return None;
            }
            for _ in 0..cycle {
                r.se()?;
            }
        }
        _ => {}
    }
    r.ue()?; // max_num_ref_frames
    r.bits(1)?; // gaps_in_frame_num_value_allowed_flag
    let width_mbs = r.ue()?.checked_add(1)?;
    let height_units = r.ue()?.checked_add(1)?;
    let frame_mbs_only = r.bits(1)?;
    if frame_mbs_only == 0 {
        r.bits(1)?; // mb_adaptive_frame_field_flag
    }
    r.bits(1)?; // direct_8x8_inference_flag
    let (mut left, mut right, mut top, mut bottom) = (0, 0, 0, 0);
    if r.bits(1)? == 1 {
        (left, right, top, bottom) = (r.ue()?, r.ue()?, r.ue()?, r.ue()?);
    }
    // Crop units (Table 6-1, §7.4.2.1.1): monochrome 1×1, 4:2:0 2×2, 4:2:2
    // 2×1, 4:4:4 1×1; vertically times two for field coding.
    let (sub_w, sub_h): (u64, u64) = match chroma_format {
        1 => (2, 2),
        2 => (2, 1),
        _ => (1, 1),
    };
    let fields = 2 - u64::from(frame_mbs_only);
    let width = u64::from(width_mbs) * 16;
    let height = fields * u64::from(height_units) * 16;
    let width = width.checked_sub(sub_w * (u64::from(left) + u64::from(right)))?;
    let height = height.checked_sub(sub_h * fields * (u64::from(top) + u64::from(bottom)))?;
    Some((u16::try_from(width).ok()?, u16::try_from(height).ok()?))
}

/// Reads an RBSP bit by bit, most significant first.
struct BitReader<'a> {
    data: &'a [u8],
    bit: usize,
}

impl BitReader<'_> {
    /// The next `n` (at most 32) bits.
    fn bits(&mut self, n: u32) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            let byte = *self.data.get(self.bit / 8)?;
            v = (v << 1) | u32::from((byte >> (7 - self.bit % 8)) & 1);
            self.bit += 1;
        }
        Some(v)
    }

    /// An unsigned Exp-Golomb code, ue(v) (§9.1); at most 31 leading zeros.
    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bits(1)? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        let rest = self.bits(zeros)?;
        ((1u64 << zeros) - 1 + u64::from(rest)).try_into().ok()
    }

    /// A signed Exp-Golomb code, se(v) (§9.1.1).
    fn se(&mut self) -> Option<i64> {
        let k = i64::from(self.ue()?);
        Some(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }
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

    /// Writes bits, Exp-Golomb codes, and an SPS from them.
    #[derive(Default)]
    struct BitWriter {
        bits: Vec<bool>,
    }

    impl BitWriter {
        fn put(&mut self, v: u32, n: u32) -> &mut Self {
            for i in (0..n).rev() {
                self.bits.push((v >> i) & 1 == 1);
            }
            self
        }
        fn ue(&mut self, v: u32) -> &mut Self {
            let x = v + 1;
            let n = 32 - x.leading_zeros();
            self.put(0, n - 1).put(x, n)
        }
        fn se(&mut self, v: i32) -> &mut Self {
            let k = if v > 0 { 2 * v - 1 } else { -2 * v };
            self.ue(k as u32)
        }
        /// The NAL unit: header 0x67, the bits with a stop bit, and
        /// emulation prevention bytes.
        fn nal(&mut self) -> Vec<u8> {
            self.bits.push(true);
            while !self.bits.len().is_multiple_of(8) {
                self.bits.push(false);
            }
            let raw: Vec<u8> = self
                .bits
                .chunks(8)
                .map(|c| c.iter().fold(0u8, |b, bit| (b << 1) | u8::from(*bit)))
                .collect();
            let mut out = vec![0x67];
            let mut zeros = 0;
            for b in raw {
                if zeros >= 2 && b <= 3 {
                    out.push(3);
                    zeros = 0;
                }
                zeros = if b == 0 { zeros + 1 } else { 0 };
                out.push(b);
            }
            out
        }
    }

    /// An SPS of `profile` for `mbs` macroblocks (width, height) with
    /// frame cropping `crop` (left, right, top, bottom) in crop units.
    fn sps(profile: u32, mbs: (u32, u32), crop: Option<(u32, u32, u32, u32)>) -> Vec<u8> {
        let mut w = BitWriter::default();
        w.put(profile, 8).put(0xc0, 8).put(31, 8).ue(0);
        if profile == 100 {
            // 4:2:0, 8 bit, a scaling matrix: list 0 with 16 deltas, list 1
            // ended by a delta that makes the next scale 0, six absent.
            w.ue(1).ue(0).ue(0).put(0, 1).put(1, 1);
            w.put(1, 1);
            for _ in 0..16 {
                w.se(1);
            }
            w.put(1, 1).se(-8);
            w.put(0, 6);
        }
        w.ue(0).ue(1).se(-1).se(2).ue(2).se(3).se(-4); // frame num; POC type 1
        w.ue(1)
            .put(0, 1)
            .ue(mbs.0 - 1)
            .ue(mbs.1 - 1)
            .put(1, 1)
            .put(1, 1);
        match crop {
            Some((l, r, t, b)) => w.put(1, 1).ue(l).ue(r).ue(t).ue(b),
            None => w.put(0, 1),
        };
        w.put(0, 1); // vui_parameters_present_flag
        w.nal()
    }

    #[test]
    fn h264_sps_gives_the_cropped_picture_size() {
        // 640×480: 40×30 macroblocks, no cropping.
        assert_eq!(h264_sps_size(&sps(66, (40, 30), None)), Some((640, 480)));
        // 1280×720 in High profile with a scaling list.
        assert_eq!(h264_sps_size(&sps(100, (80, 45), None)), Some((1280, 720)));
        // 320×180: 20×12 macroblocks (192 rows) cropped by 6 units of 2.
        let s = sps(66, (20, 12), Some((0, 0, 0, 6)));
        assert_eq!(h264_sps_size(&s), Some((320, 180)));
        // In a STAP-A after a PPS, as Chromium sends keyframes.
        let mut stap = vec![24, 0, 2, 0x68, 0xce];
        stap.extend_from_slice(&(s.len() as u16).to_be_bytes());
        stap.extend_from_slice(&s);
        assert_eq!(h264_sps_size(&stap), Some((320, 180)));
        // x264's 1280×720 High profile SPS (with VUI, emulation
        // prevention bytes).
        let x264 = [
            0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00,
            0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83, 0x19, 0x60,
        ];
        assert_eq!(h264_sps_size(&x264), Some((1280, 720)));
        // Truncated, or not an SPS: nothing, never a panic.
        for cut in 0..s.len() - 1 {
            let _ = h264_sps_size(&s[..cut]);
        }
        assert_eq!(h264_sps_size(&s[..4]), None);
        assert_eq!(h264_sps_size(&[0x65, 0x88]), None);
        assert_eq!(h264_sps_size(&[24, 0xff, 0xff, 0x67]), None);
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
