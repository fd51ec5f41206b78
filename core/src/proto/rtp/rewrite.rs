//! The forwarded copy of a packet: a consumer's header rewrite, and RTX
//! wrapping and unwrapping (RFC 4588 §4).

use super::{FIXED_HEADER_LEN, RtpHeader, padding_len};
use crate::ids::{Mid, Pt, Ssrc};

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

/// Sets or clears the marker bit (RFC 3550 §5.1) of the RTP packet in
/// `pkt` (a forwarded copy: a consumer of some of a picture's spatial
/// layers ends the picture at the last it forwards). Nothing for a packet
/// shorter than two bytes.
pub fn set_marker(pkt: &mut [u8], marker: bool) {
    if let Some(b) = pkt.get_mut(1) {
        *b = (*b & 0x7f) | (u8::from(marker) << 7);
    }
}

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
    use crate::proto::rtp::tests::packet_with_ext;

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
        // The marker bit cleared and set again (VP9: the picture's end).
        for m in [false, true] {
            set_marker(&mut out, m);
            let o = RtpHeader::parse(&out).expect("valid");
            assert_eq!((o.marker, o.pt), (m, Pt(109)), "{m}");
        }

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
