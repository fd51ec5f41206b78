//! AV1 out of RTP and into WebM: the RTP payload (AV1 RTP specification
//! §4: an aggregation header, then OBU elements, the first and last of
//! which may be fragments of OBUs spanning packets) back to OBUs in the
//! low-overhead bitstream format Matroska stores (each OBU with its
//! `obu_size`; temporal delimiters and tile lists dropped: the AV1
//! Matroska mapping §4.2, RTP spec §5), and the `av1C` record its
//! CodecPrivate holds (AV1-ISOBMFF §2.3), made from the sequence header.

use sfu_core::proto::codec::BitReader;

/// OBU types (AV1 spec §6.2.2).
const OBU_SEQUENCE_HEADER: u8 = 1;
const OBU_TEMPORAL_DELIMITER: u8 = 2;
const OBU_TILE_LIST: u8 = 8;

/// Reads a LEB128 value (AV1 spec §4.10.5) at `at`; returns it and its
/// length in bytes.
fn leb128(data: &[u8], at: usize) -> Option<(usize, usize)> {
    let mut value: u64 = 0;
    for i in 0..8 {
        let b = *data.get(at + i)?;
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((usize::try_from(value).ok()?, i + 1));
        }
    }
    None
}

fn push_leb128(out: &mut Vec<u8>, mut v: usize) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// The OBUs of one temporal unit from its RTP payloads, in order: each a
/// whole OBU as RTP carries it (its header, maybe without `obu_size`).
/// `None` when a payload is malformed or a fragment has no start.
pub fn depacketize<'a>(payloads: impl IntoIterator<Item = &'a [u8]>) -> Option<Vec<Vec<u8>>> {
    let mut obus = Vec::new();
    let mut partial: Option<Vec<u8>> = None;
    for p in payloads {
        let (&agg, rest) = p.split_first()?;
        let (z, y, w) = (agg & 0x80 != 0, agg & 0x40 != 0, (agg >> 4) & 0x03);
        let mut at = 0;
        let mut elements = Vec::new();
        let mut i = 0;
        while at < rest.len() {
            i += 1;
            // With W, the last element has no length: it runs to the end.
            let len = if w != 0 && i == usize::from(w) {
                rest.len() - at
            } else {
                let (len, n) = leb128(rest, at)?;
                at += n;
                len
            };
            elements.push(rest.get(at..at + len)?);
            at += len;
        }
        let n = elements.len();
        for (k, e) in elements.into_iter().enumerate() {
            let continues = k == 0 && z;
            let continued = k + 1 == n && y;
            let mut obu = if continues {
                // A fragment without its start is lost data.
                let mut o = partial.take()?;
                o.extend_from_slice(e);
                o
            } else {
                e.to_vec()
            };
            if continued {
                partial = Some(std::mem::take(&mut obu));
            } else if !obu.is_empty() {
                obus.push(obu);
            }
        }
    }
    Some(obus)
}

/// One OBU as Matroska stores it (with `obu_size`), or `None` to leave it
/// out (a temporal delimiter, a tile list) or when it is malformed.
pub fn with_size(obu: &[u8]) -> Option<Vec<u8>> {
    let header = *obu.first()?;
    let kind = (header >> 3) & 0x0f;
    if kind == OBU_TEMPORAL_DELIMITER || kind == OBU_TILE_LIST {
        return None;
    }
    let ext = header & 0x04 != 0;
    let head_len = if ext { 2 } else { 1 };
    let body = if header & 0x02 != 0 {
        // It has its size already: keep exactly that many bytes.
        let (size, n) = leb128(obu, head_len)?;
        obu.get(head_len + n..head_len + n + size)?
    } else {
        obu.get(head_len..)?
    };
    let mut out = Vec::with_capacity(obu.len() + 4);
    out.push(header | 0x02);
    if ext {
        out.push(*obu.get(1)?);
    }
    push_leb128(&mut out, body.len());
    out.extend_from_slice(body);
    Some(out)
}

/// A temporal unit for Matroska from its RTP payloads: its OBUs, each
/// with `obu_size`, temporal delimiters left out. `None` when malformed.
pub fn temporal_unit<'a>(payloads: impl IntoIterator<Item = &'a [u8]>) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for obu in depacketize(payloads)? {
        if let Some(o) = with_size(&obu) {
            out.extend_from_slice(&o);
        }
    }
    (!out.is_empty()).then_some(out)
}

/// The sequence header OBU (with `obu_size`) of a temporal unit made by
/// [`temporal_unit`], if it has one.
pub fn sequence_header(tu: &[u8]) -> Option<&[u8]> {
    let mut at = 0;
    while at < tu.len() {
        let header = tu[at];
        let head_len = if header & 0x04 != 0 { 2 } else { 1 };
        let (size, n) = leb128(tu, at + head_len)?;
        let end = at + head_len + n + size;
        if (header >> 3) & 0x0f == OBU_SEQUENCE_HEADER {
            return tu.get(at..end);
        }
        at = end;
    }
    None
}

/// What the `av1C` record and the track need of a sequence header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequenceInfo {
    /// `seq_profile`.
    pub profile: u8,
    /// `seq_level_idx[0]`.
    pub level: u8,
    /// `seq_tier[0]`.
    pub tier: u8,
    /// `high_bitdepth`, `twelve_bit`, `mono_chrome`.
    pub bitdepth: (bool, bool, bool),
    /// `subsampling_x`, `subsampling_y`, `chroma_sample_position`.
    pub chroma: (bool, bool, u8),
    /// The largest frame size, pixels.
    pub size: (u16, u16),
}

/// Parses a sequence header OBU (with `obu_size`; AV1 spec §5.5).
pub fn parse_sequence_header(obu: &[u8]) -> Option<SequenceInfo> {
    let header = *obu.first()?;
    let head_len = if header & 0x04 != 0 { 2 } else { 1 };
    let (size, n) = leb128(obu, head_len)?;
    let mut r = BitReader::new(obu.get(head_len + n..head_len + n + size)?);
    let profile = r.bits(3)? as u8;
    let _still = r.bits(1)?;
    let reduced = r.bits(1)? == 1;
    let (level, tier);
    if reduced {
        level = r.bits(5)? as u8;
        tier = 0;
    } else {
        let mut decoder_model = false;
        let mut buffer_delay_len = 0;
        if r.bits(1)? == 1 {
            // timing_info()
            r.bits(32)?;
            r.bits(32)?;
            if r.bits(1)? == 1 {
                r.ue()?;
            }
            decoder_model = r.bits(1)? == 1;
            if decoder_model {
                buffer_delay_len = r.bits(5)? + 1;
                r.bits(32)?;
                r.bits(5)?;
                r.bits(5)?;
            }
        }
        let initial_display_delay = r.bits(1)? == 1;
        let points = r.bits(5)? + 1;
        let (mut first_level, mut first_tier) = (0, 0);
        for i in 0..points {
            r.bits(12)?;
            let l = r.bits(5)? as u8;
            let t = if l > 7 { r.bits(1)? as u8 } else { 0 };
            if i == 0 {
                (first_level, first_tier) = (l, t);
            }
            if decoder_model && r.bits(1)? == 1 {
                r.bits(buffer_delay_len)?;
                r.bits(buffer_delay_len)?;
                r.bits(1)?;
            }
            if initial_display_delay && r.bits(1)? == 1 {
                r.bits(4)?;
            }
        }
        (level, tier) = (first_level, first_tier);
    }
    let wbits = r.bits(4)? + 1;
    let hbits = r.bits(4)? + 1;
    let width = r.bits(wbits)? + 1;
    let height = r.bits(hbits)? + 1;
    if !reduced && r.bits(1)? == 1 {
        r.bits(4)?;
        r.bits(3)?;
    }
    r.bits(3)?; // use_128x128_superblock, enable_filter_intra, enable_intra_edge_filter
    if !reduced {
        r.bits(4)?; // interintra, masked compound, warped motion, dual filter
        let order_hint = r.bits(1)? == 1;
        if order_hint {
            r.bits(2)?; // jnt_comp, ref_frame_mvs
        }
        let screen_tools = if r.bits(1)? == 1 { 2 } else { r.bits(1)? };
        if screen_tools > 0 && r.bits(1)? == 0 {
            r.bits(1)?; // seq_force_integer_mv
        }
        if order_hint {
            r.bits(3)?;
        }
    }
    r.bits(3)?; // superres, cdef, restoration
    // color_config()
    let high = r.bits(1)? == 1;
    let twelve = profile == 2 && high && r.bits(1)? == 1;
    let mono = profile != 1 && r.bits(1)? == 1;
    let (mut cp, mut tc, mut mc) = (2, 2, 2);
    if r.bits(1)? == 1 {
        cp = r.bits(8)?;
        tc = r.bits(8)?;
        mc = r.bits(8)?;
    }
    let (mut sx, mut sy, mut pos) = (true, true, 0u8);
    if mono {
        r.bits(1)?;
    } else if cp == 1 && tc == 13 && mc == 0 {
        (sx, sy) = (false, false);
    } else {
        r.bits(1)?; // color_range
        match profile {
            0 => (sx, sy) = (true, true),
            1 => (sx, sy) = (false, false),
            _ => {
                if twelve {
                    sx = r.bits(1)? == 1;
                    sy = sx && r.bits(1)? == 1;
                } else {
                    (sx, sy) = (true, false);
                }
            }
        }
        if sx && sy {
            pos = r.bits(2)? as u8;
        }
    }
    Some(SequenceInfo {
        profile,
        level,
        tier,
        bitdepth: (high, twelve, mono),
        chroma: (sx, sy, pos),
        size: (
            u16::try_from(width).unwrap_or(u16::MAX),
            u16::try_from(height).unwrap_or(u16::MAX),
        ),
    })
}

/// The `av1C` record (AV1-ISOBMFF §2.3.3): version 1, the sequence's
/// profile, level, tier and color format, then its sequence header OBU.
pub fn av1c(info: &SequenceInfo, sequence_header: &[u8]) -> Vec<u8> {
    let b = |v: bool| u8::from(v);
    let mut out = vec![
        0x81,
        (info.profile << 5) | (info.level & 0x1f),
        (info.tier << 7)
            | (b(info.bitdepth.0) << 6)
            | (b(info.bitdepth.1) << 5)
            | (b(info.bitdepth.2) << 4)
            | (b(info.chroma.0) << 3)
            | (b(info.chroma.1) << 2)
            | (info.chroma.2 & 0x03),
        0,
    ];
    out.extend_from_slice(sequence_header);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sequence header of profile 0, level 8 (4.0), 640x480, 8-bit
    /// 4:2:0: the bits of AV1 spec §5.5 written out.
    fn seq_header() -> Vec<u8> {
        let mut bits: Vec<u8> = Vec::new();
        let mut put = |v: u32, n: usize| {
            for i in (0..n).rev() {
                bits.push(((v >> i) & 1) as u8);
            }
        };
        put(0, 3); // seq_profile
        put(0, 1); // still_picture
        put(0, 1); // reduced_still_picture_header
        put(0, 1); // timing_info_present_flag
        put(0, 1); // initial_display_delay_present_flag
        put(0, 5); // operating_points_cnt_minus_1
        put(0, 12); // operating_point_idc
        put(8, 5); // seq_level_idx
        put(0, 1); // seq_tier (level > 7)
        put(15, 4); // frame_width_bits_minus_1
        put(15, 4); // frame_height_bits_minus_1
        put(639, 16);
        put(479, 16);
        put(0, 1); // frame_id_numbers_present_flag
        put(0, 3); // 128x128, filter intra, intra edge
        put(0, 4);
        put(1, 1); // enable_order_hint
        put(0, 2);
        put(1, 1); // seq_choose_screen_content_tools
        put(1, 1); // seq_choose_integer_mv
        put(6, 3); // order_hint_bits_minus_1
        put(0, 3); // superres, cdef, restoration
        put(0, 1); // high_bitdepth
        put(0, 1); // mono_chrome
        put(0, 1); // color_description_present_flag
        put(0, 1); // color_range
        put(0, 2); // chroma_sample_position
        put(1, 1); // film_grain_params_present... and trailing bits
        while !bits.len().is_multiple_of(8) {
            bits.push(0);
        }
        let body: Vec<u8> = bits
            .chunks(8)
            .map(|c| c.iter().fold(0u8, |a, b| (a << 1) | b))
            .collect();
        let mut obu = vec![OBU_SEQUENCE_HEADER << 3 | 0x02];
        push_leb128(&mut obu, body.len());
        obu.extend_from_slice(&body);
        obu
    }

    #[test]
    fn fragments_across_packets_become_whole_obus_with_their_size() {
        // A temporal delimiter (dropped), then a frame OBU (type 6) of 5
        // bytes split over two packets: W=2 then Z=1, W=1.
        let td = [OBU_TEMPORAL_DELIMITER << 3];
        let frame = [6 << 3, 1, 2, 3, 4];
        let mut p1 = vec![0x60]; // Y=1, W=2
        p1.push(td.len() as u8);
        p1.extend_from_slice(&td);
        p1.extend_from_slice(&frame[..2]);
        let mut p2 = vec![0x90]; // Z=1, W=1
        p2.extend_from_slice(&frame[2..]);
        let tu = temporal_unit([p1.as_slice(), p2.as_slice()]).expect("a temporal unit");
        assert_eq!(tu, vec![6 << 3 | 0x02, 4, 1, 2, 3, 4]);
        // A continuation whose start was lost is no temporal unit.
        assert!(temporal_unit([p2.as_slice()]).is_none());
    }

    #[test]
    fn the_sequence_header_gives_the_av1c_record_and_the_size() {
        let sh = seq_header();
        let mut tu = vec![6 << 3 | 0x02, 1, 9];
        tu.extend_from_slice(&sh);
        let found = sequence_header(&tu).expect("found");
        assert_eq!(found, sh.as_slice());
        let info = parse_sequence_header(found).expect("parses");
        assert_eq!((info.profile, info.level, info.tier), (0, 8, 0));
        assert_eq!(info.size, (640, 480));
        assert_eq!(info.chroma, (true, true, 0));
        let c = av1c(&info, found);
        assert_eq!(&c[..4], &[0x81, 0x08, 0x0c, 0]);
        assert_eq!(&c[4..], sh.as_slice());
    }
}
