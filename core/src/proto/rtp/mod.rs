//! Zero-copy RTP header parsing (RFC 3550 §5.1, one-byte and two-byte
//! header extensions RFC 8285 §4), the negotiated extension ids, and the
//! per-consumer header rewrite.

mod extension_map;
mod rewrite;

pub use extension_map::{Extension, ExtensionMap, ExtensionMapError, valid_ext_id};
pub use rewrite::{Rewrite, set_marker, unwrap_rtx, write_forwarded};

use crate::ids::{Pt, Ssrc};

/// Fixed RTP header length in bytes (RFC 3550 §5.1).
pub const FIXED_HEADER_LEN: usize = 12;

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

/// last byte counts them), or `None` when the count runs into the header.
pub fn padding_len(pkt: &[u8], hdr: &RtpHeader) -> Option<usize> {
    if pkt[0] & 0x20 == 0 {
        return Some(0);
    }
    let n = *pkt.last()? as usize;
    (n >= 1 && hdr.header_len + n <= pkt.len()).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn packet_with_ext() -> Vec<u8> {
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
}
