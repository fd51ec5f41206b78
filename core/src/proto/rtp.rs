//! Zero-copy RTP header parsing and the per-consumer header rewrite
//! (RFC 3550 §5.1, one-byte and two-byte header extensions RFC 8285 §4).

use crate::ids::{Mid, Pt, Ssrc};

/// Fixed RTP header length in bytes (RFC 3550 §5.1).
pub const FIXED_HEADER_LEN: usize = 12;

/// True for a header extension id we negotiate and write: 1–14, what a
/// one-byte header can carry (RFC 8285 §4.2: 0 is padding, 15 reserved).
/// The one check of an extension id, for SDP and the data plane alike.
#[inline]
pub fn valid_ext_id(id: u8) -> bool {
    (1..=14).contains(&id)
}

/// Checks named extension ids (`("mid", Some(4))`, …): every one given is
/// [`valid_ext_id`].
///
/// Errors: a message naming the first invalid one.
pub fn check_ext_ids(ids: &[(&str, Option<u8>)]) -> Result<(), String> {
    match ids
        .iter()
        .find(|(_, id)| id.is_some_and(|i| !valid_ext_id(i)))
    {
        Some((name, Some(id))) => Err(format!("{name} extension id {id}: must be 1-14")),
        _ => Ok(()),
    }
}

/// A parsed view of an RTP header. Offsets index the packet it was parsed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// Marker bit (end of a video frame).
    pub marker: bool,
    /// Payload type.
    pub pt: Pt,
    /// 16-bit sequence number.
    pub seq: u16,
    /// Media timestamp in clock-rate ticks (48 kHz Opus, 90 kHz video).
    pub timestamp: u32,
    /// Synchronization source.
    pub ssrc: Ssrc,
    /// Extension profile (0xBEDE one-byte, 0x100x two-byte) if the X bit is set.
    pub ext_profile: Option<u16>,
    /// Byte range of the extension data (after the 4-byte extension header).
    pub ext_range: (usize, usize),
    /// Header length in bytes, where the payload starts.
    pub header_len: usize,
}

impl RtpHeader {
    /// Parses the header of a plain (or SRTP: the header is clear) RTP packet.
    /// Returns `None` if the version is not 2 or a length runs past the end.
    pub fn parse(pkt: &[u8]) -> Option<Self> {
        if pkt.len() < FIXED_HEADER_LEN || pkt[0] >> 6 != 2 {
            return None;
        }
        let cc = (pkt[0] & 0x0f) as usize;
        let has_ext = pkt[0] & 0x10 != 0;
        let mut len = FIXED_HEADER_LEN + 4 * cc;
        let mut ext_profile = None;
        let mut ext_range = (len, len);
        if has_ext {
            let h = pkt.get(len..len + 4)?;
            let profile = u16::from_be_bytes([h[0], h[1]]);
            let words = u16::from_be_bytes([h[2], h[3]]) as usize;
            ext_range = (len + 4, len + 4 + 4 * words);
            len = ext_range.1;
            ext_profile = Some(profile);
        }
        if len > pkt.len() {
            return None;
        }
        if let Some(profile) = ext_profile
            && !extension_elements_fit(profile, &pkt[ext_range.0..ext_range.1])
        {
            return None;
        }
        Some(Self {
            marker: pkt[1] & 0x80 != 0,
            pt: Pt(pkt[1] & 0x7f),
            seq: u16::from_be_bytes([pkt[2], pkt[3]]),
            timestamp: u32::from_be_bytes([pkt[4], pkt[5], pkt[6], pkt[7]]),
            ssrc: Ssrc(u32::from_be_bytes([pkt[8], pkt[9], pkt[10], pkt[11]])),
            ext_profile,
            ext_range,
            header_len: len,
        })
    }

    /// Finds the value of header extension `id` in `pkt` (RFC 8285 §4.2 one-byte
    /// or §4.3 two-byte form). `None` when absent or malformed.
    pub fn extension<'a>(&self, pkt: &'a [u8], id: u8) -> Option<&'a [u8]> {
        let data = pkt.get(self.ext_range.0..self.ext_range.1)?;
        let profile = self.ext_profile?;
        let mut i = 0;
        if profile == 0xBEDE {
            while i < data.len() {
                let b = data[i];
                if b == 0 {
                    i += 1;
                    continue;
                }
                let eid = b >> 4;
                let elen = (b & 0x0f) as usize + 1;
                if eid == 15 {
                    return None;
                }
                let v = data.get(i + 1..i + 1 + elen)?;
                if eid == id {
                    return Some(v);
                }
                i += 1 + elen;
            }
        } else if profile & 0xfff0 == 0x1000 {
            while i + 1 < data.len() {
                let eid = data[i];
                if eid == 0 {
                    i += 1;
                    continue;
                }
                let elen = data[i + 1] as usize;
                let v = data.get(i + 2..i + 2 + elen)?;
                if eid == id {
                    return Some(v);
                }
                i += 2 + elen;
            }
        }
        None
    }
}

/// Checks that every element of a one-byte (0xBEDE) or two-byte (0x100X)
/// extension block lies inside the block (RFC 8285 §4.2, §4.3); other
/// profiles are opaque (RFC 3550 §5.3.1). A packet failing this is malformed
/// and is dropped before any other parser sees it.
fn extension_elements_fit(profile: u16, block: &[u8]) -> bool {
    let mut i = 0;
    if profile == 0xBEDE {
        while i < block.len() {
            let b = block[i];
            if b == 0 {
                i += 1;
                continue;
            }
            if b >> 4 == 15 {
                return true; // reserved id: the rest of the block is ignored
            }
            i += 1 + (b & 0x0f) as usize + 1;
            if i > block.len() {
                return false;
            }
        }
    } else if profile & 0xfff0 == 0x1000 {
        while i < block.len() {
            if block[i] == 0 {
                i += 1;
                continue;
            }
            let Some(&len) = block.get(i + 1) else {
                return false;
            };
            i += 2 + len as usize;
            if i > block.len() {
                return false;
            }
        }
    }
    true
}

/// What a consumer changes in a forwarded packet's header.
#[derive(Debug, Clone, Copy)]
pub struct Rewrite<'a> {
    /// The consumer's SSRC.
    pub ssrc: Ssrc,
    /// The payload type the subscriber negotiated for this codec.
    pub pt: Pt,
    /// The consumer's sequence number.
    pub seq: u16,
    /// The consumer's timestamp (same clock rate as the producer's).
    pub timestamp: u32,
    /// The MID header extension to write: (extension id 1–14, value).
    pub mid: Option<(u8, Mid)>,
    /// The transport-wide sequence number to write (draft-holmer-rmcat-
    /// transport-wide-cc-extensions-01 §2): (extension id 1–14, the
    /// subscriber transport's own sequence number).
    pub twcc: Option<(u8, u16)>,
    /// The audio level to write (RFC 6464 §3): (extension id, the byte: V
    /// flag and level in −dBov).
    pub audio_level: Option<(u8, u8)>,
    /// abs-send-time to write: (extension id, 24-bit 6.18 fixed-point
    /// seconds).
    pub abs_send_time: Option<(u8, u32)>,
    /// The AV1 dependency descriptor to copy: (extension id, the
    /// publisher's value, 1–255 bytes). One over 16 bytes makes the block
    /// two-byte (RFC 8285 §4.3).
    pub dependency_descriptor: Option<(u8, &'a [u8])>,
    /// For an RTX packet (RFC 4588 §4): the original sequence number (the
    /// consumer's), written in front of the payload. `ssrc`, `pt` and `seq`
    /// are then the RTX stream's.
    pub osn: Option<u16>,
}

/// Writes the forwarded copy of `pkt` (plain RTP with header `hdr`) into
/// `out`, which is cleared first: the fixed header with the values of `rw`,
/// the CSRCs, a fresh one-byte extension block (RFC 8285 §4.2) holding the
/// extensions `rw` sets (MID, transport-wide sequence number, audio level,
/// abs-send-time) under the subscriber's ids, then the payload and padding
/// unchanged.
///
/// Extensions of the producer's side are not forwarded: their ids were
/// negotiated with the publisher, not with this subscriber. With `rw.osn`
/// the copy is an RTX packet: the two OSN bytes go before the payload.
pub fn write_forwarded(pkt: &[u8], hdr: &RtpHeader, rw: &Rewrite<'_>, out: &mut Vec<u8>) {
    out.clear();
    let cc = (pkt[0] & 0x0f) as usize;
    let mut b0 = pkt[0] & 0xef; // V, P, CC; X cleared
    let dd = rw
        .dependency_descriptor
        .filter(|(_, v)| !v.is_empty() && v.len() <= 255);
    let any_ext = rw.mid.is_some()
        || rw.twcc.is_some()
        || rw.audio_level.is_some()
        || rw.abs_send_time.is_some()
        || dd.is_some();
    if any_ext {
        b0 |= 0x10;
    }
    out.push(b0);
    out.push((pkt[1] & 0x80) | (rw.pt.0 & 0x7f));
    out.extend_from_slice(&rw.seq.to_be_bytes());
    out.extend_from_slice(&rw.timestamp.to_be_bytes());
    out.extend_from_slice(&rw.ssrc.0.to_be_bytes());
    out.extend_from_slice(&pkt[FIXED_HEADER_LEN..FIXED_HEADER_LEN + 4 * cc]);
    if any_ext {
        let mid = rw.mid.as_ref().map(|(id, m)| (*id, m.as_bytes()));
        // One-byte elements hold 1–16 bytes; a longer dependency
        // descriptor needs the two-byte form for the whole block.
        if dd.is_some_and(|(_, v)| v.len() > 16) {
            write_two_byte_extensions(rw, mid, dd, out);
        } else {
            let ext_len = mid.map_or(0, |(_, v)| 1 + v.len())
                + rw.twcc.map_or(0, |_| 3)
                + rw.audio_level.map_or(0, |_| 2)
                + rw.abs_send_time.map_or(0, |_| 4)
                + dd.map_or(0, |(_, v)| 1 + v.len());
            let words = ext_len.div_ceil(4);
            out.extend_from_slice(&[0xBE, 0xDE]);
            out.extend_from_slice(&(words as u16).to_be_bytes());
            if let Some((id, v)) = mid {
                out.push((id << 4) | (v.len() as u8 - 1));
                out.extend_from_slice(v);
            }
            if let Some((id, seq)) = rw.twcc {
                out.push((id << 4) | 1);
                out.extend_from_slice(&seq.to_be_bytes());
            }
            if let Some((id, level)) = rw.audio_level {
                out.push(id << 4);
                out.push(level);
            }
            if let Some((id, t)) = rw.abs_send_time {
                out.push((id << 4) | 2);
                out.extend_from_slice(&t.to_be_bytes()[1..]);
            }
            if let Some((id, v)) = dd {
                out.push((id << 4) | (v.len() as u8 - 1));
                out.extend_from_slice(v);
            }
            out.resize(out.len() + words * 4 - ext_len, 0);
        }
    }
    if let Some(osn) = rw.osn {
        out.extend_from_slice(&osn.to_be_bytes());
    }
    out.extend_from_slice(&pkt[hdr.header_len..]);
}

/// The extension block of [`write_forwarded`] in the two-byte form (RFC
/// 8285 §4.3: profile 0x1000, then id and length bytes per element), for a
/// dependency descriptor over 16 bytes (a keyframe's, with its template
/// structure). Off the common path.
#[cold]
fn write_two_byte_extensions(
    rw: &Rewrite<'_>,
    mid: Option<(u8, &[u8])>,
    dd: Option<(u8, &[u8])>,
    out: &mut Vec<u8>,
) {
    let ext_len = mid.map_or(0, |(_, v)| 2 + v.len())
        + rw.twcc.map_or(0, |_| 4)
        + rw.audio_level.map_or(0, |_| 3)
        + rw.abs_send_time.map_or(0, |_| 5)
        + dd.map_or(0, |(_, v)| 2 + v.len());
    let words = ext_len.div_ceil(4);
    out.extend_from_slice(&[0x10, 0x00]);
    out.extend_from_slice(&(words as u16).to_be_bytes());
    let mut element = |id: u8, v: &[u8]| {
        out.push(id);
        out.push(v.len() as u8);
        out.extend_from_slice(v);
    };
    if let Some((id, v)) = mid {
        element(id, v);
    }
    if let Some((id, seq)) = rw.twcc {
        element(id, &seq.to_be_bytes());
    }
    if let Some((id, level)) = rw.audio_level {
        element(id, &[level]);
    }
    if let Some((id, t)) = rw.abs_send_time {
        element(id, &t.to_be_bytes()[1..]);
    }
    if let Some((id, v)) = dd {
        element(id, v);
    }
    out.resize(out.len() + words * 4 - ext_len, 0);
}

/// Padding bytes at the end of `pkt` (RFC 3550 §5.1: the P bit, then the
/// last byte counts them), or `None` when the count runs into the header.
pub fn padding_len(pkt: &[u8], hdr: &RtpHeader) -> Option<usize> {
    if pkt[0] & 0x20 == 0 {
        return Some(0);
    }
    let n = *pkt.last()? as usize;
    (n >= 1 && hdr.header_len + n <= pkt.len()).then_some(n)
}

/// Rebuilds the original packet from an RTX packet `rtx` (RFC 4588 §4) into
/// `out` (cleared first): the same header with `media_ssrc`, payload type
/// `apt` and the original sequence number from the payload's first two
/// bytes, then the rest of the payload and the padding.
///
/// Returns the original sequence number, or `None` when the payload holds
/// no OSN (a padding-only probe, or a truncated packet): nothing to recover.
pub fn unwrap_rtx(
    rtx: &[u8],
    hdr: &RtpHeader,
    media_ssrc: Ssrc,
    apt: Pt,
    out: &mut Vec<u8>,
) -> Option<u16> {
    let pad = padding_len(rtx, hdr)?;
    let payload = &rtx[hdr.header_len..rtx.len() - pad];
    if payload.len() < 2 {
        return None;
    }
    let osn = u16::from_be_bytes([payload[0], payload[1]]);
    out.clear();
    out.extend_from_slice(&rtx[..hdr.header_len]);
    out[1] = (out[1] & 0x80) | (apt.0 & 0x7f);
    out[2..4].copy_from_slice(&osn.to_be_bytes());
    out[8..12].copy_from_slice(&media_ssrc.0.to_be_bytes());
    out.extend_from_slice(&rtx[hdr.header_len + 2..]);
    Some(osn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_ids_are_one_byte_ids_and_the_first_bad_one_is_named() {
        assert!(!valid_ext_id(0) && valid_ext_id(1) && valid_ext_id(14) && !valid_ext_id(15));
        assert_eq!(check_ext_ids(&[("mid", Some(4)), ("rid", None)]), Ok(()));
        assert_eq!(
            check_ext_ids(&[
                ("mid", Some(4)),
                ("audio level", Some(15)),
                ("rid", Some(0))
            ]),
            Err("audio level extension id 15: must be 1-14".into())
        );
    }

    fn packet_with_ext() -> Vec<u8> {
        let mut p = vec![
            0x90,
            0x80 | 111,
            0x12,
            0x34,
            0,
            0,
            0x10,
            0,
            0xde,
            0xad,
            0xbe,
            0xef,
        ];
        // one-byte ext: id 1 len 1 (audio level), id 4 len 1 ("0"), padding.
        p.extend_from_slice(&[0xBE, 0xDE, 0, 2, 0x10, 0x7f, 0x40, b'0', 0, 0, 0, 0]);
        p.extend_from_slice(b"payload");
        p
    }

    #[test]
    fn parses_header_and_extensions() {
        let p = packet_with_ext();
        let h = RtpHeader::parse(&p).expect("valid");
        assert!(h.marker);
        assert_eq!(h.pt, Pt(111));
        assert_eq!(h.seq, 0x1234);
        assert_eq!(h.timestamp, 0x1000);
        assert_eq!(h.ssrc, Ssrc(0xdead_beef));
        assert_eq!(h.header_len, 24);
        assert_eq!(h.extension(&p, 4), Some(&b"0"[..]));
        assert_eq!(h.extension(&p, 1), Some(&[0x7f][..]));
        assert_eq!(h.extension(&p, 5), None);
        assert_eq!(&p[h.header_len..], b"payload");
    }

    #[test]
    fn rejects_extension_elements_that_overflow_their_block() {
        // One-byte element id 2 claiming 16 bytes in a 4-byte block.
        let mut p = vec![
            0x90, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0xBE, 0xDE, 0, 1, 0x2f, 0, 0, 0,
        ];
        assert!(RtpHeader::parse(&p).is_none());
        p.extend_from_slice(&[0u8; 40]); // even with payload bytes behind it
        assert!(RtpHeader::parse(&p).is_none());
        // Two-byte element claiming 9 bytes in a 4-byte block.
        let p = [
            0x90, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0x10, 0x00, 0, 1, 3, 9, 0, 0, 1, 2, 3,
        ];
        assert!(RtpHeader::parse(&p).is_none());
        // Reserved id 15 ends the walk; padding is fine.
        let p = [
            0x90, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0xBE, 0xDE, 0, 1, 0, 0xff, 0, 0,
        ];
        assert!(RtpHeader::parse(&p).is_some());
    }

    #[test]
    fn rejects_truncated_and_wrong_version() {
        let p = packet_with_ext();
        for n in 0..24 {
            assert!(RtpHeader::parse(&p[..n]).is_none(), "len {n}");
        }
        let mut v1 = p.clone();
        v1[0] = 0x50;
        assert!(RtpHeader::parse(&v1).is_none());
    }

    #[test]
    fn forwarded_copy_has_new_ids_and_only_the_mid_extension() {
        let p = packet_with_ext();
        let h = RtpHeader::parse(&p).expect("valid");
        let rw = Rewrite {
            ssrc: Ssrc(7),
            pt: Pt(109),
            seq: 65535,
            timestamp: 99,
            mid: Some((9, Mid::new("m12").expect("mid"))),
            twcc: None,
            audio_level: None,
            abs_send_time: None,
            dependency_descriptor: None,
            osn: None,
        };
        let mut out = Vec::new();
        write_forwarded(&p, &h, &rw, &mut out);
        let o = RtpHeader::parse(&out).expect("valid");
        assert_eq!(
            (o.ssrc, o.pt, o.seq, o.timestamp, o.marker),
            (Ssrc(7), Pt(109), 65535, 99, true)
        );
        assert_eq!(o.extension(&out, 9), Some(&b"m12"[..]));
        assert_eq!(o.extension(&out, 1), None);
        assert_eq!(&out[o.header_len..], b"payload");

        // With the transport-wide sequence number beside the MID, and alone.
        let rw = Rewrite {
            twcc: Some((3, 0xabcd)),
            ..rw
        };
        write_forwarded(&p, &h, &rw, &mut out);
        let o = RtpHeader::parse(&out).expect("valid");
        assert_eq!(o.extension(&out, 9), Some(&b"m12"[..]));
        assert_eq!(o.extension(&out, 3), Some(&[0xab, 0xcd][..]));
        assert_eq!(&out[o.header_len..], b"payload");
        let rw = Rewrite { mid: None, ..rw };
        write_forwarded(&p, &h, &rw, &mut out);
        let o = RtpHeader::parse(&out).expect("valid");
        assert_eq!(o.header_len, 12 + 4 + 4);
        assert_eq!(o.extension(&out, 3), Some(&[0xab, 0xcd][..]));
        // All four, under the subscriber's ids; the publisher's id 1 is gone.
        let all = Rewrite {
            mid: Some((9, Mid::new("m12").expect("mid"))),
            audio_level: Some((12, 0x85)),
            abs_send_time: Some((13, 0x00ab_cdef)),
            ..rw
        };
        write_forwarded(&p, &h, &all, &mut out);
        let o = RtpHeader::parse(&out).expect("valid");
        assert_eq!(o.extension(&out, 9), Some(&b"m12"[..]));
        assert_eq!(o.extension(&out, 3), Some(&[0xab, 0xcd][..]));
        assert_eq!(o.extension(&out, 12), Some(&[0x85][..]));
        assert_eq!(o.extension(&out, 13), Some(&[0xab, 0xcd, 0xef][..]));
        assert_eq!(o.extension(&out, 1), None);
        assert_eq!(&out[o.header_len..], b"payload");

        let rw = Rewrite {
            mid: None,
            twcc: None,
            ..rw
        };
        write_forwarded(&p, &h, &rw, &mut out);
        let o = RtpHeader::parse(&out).expect("valid");
        assert_eq!(o.header_len, 12);
        assert_eq!(o.ext_profile, None);
        // A dependency descriptor of up to 16 bytes keeps the one-byte
        // form; a longer one makes the block two-byte (RFC 8285 §4.3).
        let short = [0x80, 0x01, 0x02];
        let dd = Rewrite {
            dependency_descriptor: Some((11, &short[..])),
            ..all
        };
        write_forwarded(&p, &h, &dd, &mut out);
        let o = RtpHeader::parse(&out).expect("valid");
        assert_eq!(o.ext_profile, Some(0xBEDE));
        assert_eq!(o.extension(&out, 11), Some(&short[..]));
        assert_eq!(o.extension(&out, 9), Some(&b"m12"[..]));
        let long: Vec<u8> = (0..40).collect();
        let dd = Rewrite {
            dependency_descriptor: Some((11, &long[..])),
            ..all
        };
        write_forwarded(&p, &h, &dd, &mut out);
        let o = RtpHeader::parse(&out).expect("valid");
        assert_eq!(o.ext_profile, Some(0x1000));
        assert_eq!(o.extension(&out, 11), Some(&long[..]));
        assert_eq!(o.extension(&out, 9), Some(&b"m12"[..]));
        assert_eq!(o.extension(&out, 3), Some(&[0xab, 0xcd][..]));
        assert_eq!(o.extension(&out, 12), Some(&[0x85][..]));
        assert_eq!(o.extension(&out, 13), Some(&[0xab, 0xcd, 0xef][..]));
        assert_eq!(&out[o.header_len..], b"payload");
    }

    #[test]
    fn rtx_wraps_with_the_osn_and_unwraps_to_the_original() {
        let p = packet_with_ext();
        let h = RtpHeader::parse(&p).expect("valid");
        let rw = Rewrite {
            ssrc: Ssrc(0x5678),
            pt: Pt(97),
            seq: 9,
            timestamp: 0x1000,
            mid: None,
            twcc: None,
            audio_level: None,
            abs_send_time: None,
            dependency_descriptor: None,
            osn: Some(0x4242),
        };
        let mut rtx = Vec::new();
        write_forwarded(&p, &h, &rw, &mut rtx);
        let rh = RtpHeader::parse(&rtx).expect("valid");
        assert_eq!((rh.ssrc, rh.pt, rh.seq), (Ssrc(0x5678), Pt(97), 9));
        assert_eq!(&rtx[rh.header_len..rh.header_len + 2], &[0x42, 0x42]);
        let mut back = Vec::new();
        let osn = unwrap_rtx(&rtx, &rh, Ssrc(0xdead_beef), Pt(96), &mut back);
        assert_eq!(osn, Some(0x4242));
        let bh = RtpHeader::parse(&back).expect("valid");
        assert_eq!(
            (bh.ssrc, bh.pt, bh.seq, bh.timestamp),
            (Ssrc(0xdead_beef), Pt(96), 0x4242, 0x1000)
        );
        assert_eq!(&back[bh.header_len..], b"payload");
    }

    #[test]
    fn a_padding_only_rtx_probe_recovers_nothing() {
        // P bit, 12-byte header, 4 bytes of padding (count 4), no payload.
        let probe = [0xa0, 97, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 4];
        let h = RtpHeader::parse(&probe).expect("valid");
        assert_eq!(padding_len(&probe, &h), Some(4));
        assert_eq!(
            unwrap_rtx(&probe, &h, Ssrc(1), Pt(96), &mut Vec::new()),
            None
        );
        // A padding count longer than the packet is malformed.
        let bad = [0xa0, 97, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 40];
        let h = RtpHeader::parse(&bad).expect("header");
        assert_eq!(padding_len(&bad, &h), None);
        assert_eq!(unwrap_rtx(&bad, &h, Ssrc(1), Pt(96), &mut Vec::new()), None);
        // Truncated: one byte after the header.
        let short = [0x80, 97, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 7];
        let h = RtpHeader::parse(&short).expect("header");
        assert_eq!(
            unwrap_rtx(&short, &h, Ssrc(1), Pt(96), &mut Vec::new()),
            None
        );
    }
}
