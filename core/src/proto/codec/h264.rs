//! H.264 (RFC 6184): keyframes and the picture size of an SPS.

use super::BitReader;

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
    let mut r = BitReader::new(&rbsp[..len]);
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

pub(super) fn is_keyframe(payload: &[u8]) -> bool {
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
    use crate::proto::codec::VideoCodec;

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
}
