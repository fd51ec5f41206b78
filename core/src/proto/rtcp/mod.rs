//! RTCP compound packet walking and the few packets an SFU writes
//! (RFC 3550 §6, RFC 4585 §6, RFC 5104 §4.3.1).
//!
//! `feedback`: PLI, Generic NACK and REMB; `reports`: sender and receiver
//! reports and extended reports (RFC 3611).

mod feedback;
mod reports;

pub use feedback::*;
pub use reports::*;

use crate::ids::Ssrc;

/// RTCP packet type: sender report (RFC 3550 §6.4.1).
pub const PT_SR: u8 = 200;
/// RTCP packet type: receiver report (RFC 3550 §6.4.2).
pub const PT_RR: u8 = 201;
/// RTCP packet type: source description (RFC 3550 §6.5).
pub const PT_SDES: u8 = 202;
/// RTCP packet type: goodbye (RFC 3550 §6.6).
pub const PT_BYE: u8 = 203;
/// RTCP packet type: transport-layer feedback (RFC 4585 §6.2).
pub const PT_RTPFB: u8 = 205;
/// RTCP packet type: payload-specific feedback (RFC 4585 §6.3).
pub const PT_PSFB: u8 = 206;

/// One packet of a compound RTCP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtcpPacket<'a> {
    /// Count (RC/SC) or feedback message type (FMT), the low 5 bits of byte 0.
    pub count_or_fmt: u8,
    /// Packet type (200–206 …).
    pub pt: u8,
    /// The whole packet including its 4-byte header.
    pub bytes: &'a [u8],
}

impl RtcpPacket<'_> {
    /// Sender SSRC (the first word after the header), if present.
    pub fn sender_ssrc(&self) -> Option<Ssrc> {
        self.bytes
            .get(4..8)
            .map(|b| Ssrc(u32::from_be_bytes([b[0], b[1], b[2], b[3]])))
    }

    /// Media source SSRC of a feedback packet (RFC 4585 §6.1).
    pub fn media_ssrc(&self) -> Option<Ssrc> {
        self.bytes
            .get(8..12)
            .map(|b| Ssrc(u32::from_be_bytes([b[0], b[1], b[2], b[3]])))
    }

    /// The media SSRCs a FIR asks a keyframe for (RFC 5104 §4.3.1: FCI entries
    /// of 8 bytes, SSRC first).
    pub fn fir_ssrcs(&self) -> impl Iterator<Item = Ssrc> + '_ {
        self.bytes
            .get(12..)
            .unwrap_or(&[])
            .chunks_exact(8)
            .map(|c| Ssrc(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
    }
}

/// Iterates the packets of a compound RTCP packet (RFC 3550 §6.1). Stops at the
/// first malformed packet; [`RtcpIter::malformed`] then tells so.
#[derive(Debug)]
pub struct RtcpIter<'a> {
    rest: &'a [u8],
    malformed: bool,
}

impl<'a> RtcpIter<'a> {
    /// Starts walking `buf` (plain RTCP, after SRTCP unprotect).
    pub fn new(buf: &'a [u8]) -> Self {
        Self {
            rest: buf,
            malformed: false,
        }
    }

    /// True when the walk stopped on a malformed packet.
    pub fn malformed(&self) -> bool {
        self.malformed
    }
}

impl<'a> Iterator for RtcpIter<'a> {
    type Item = RtcpPacket<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        if self.rest.len() < 4 || self.rest[0] >> 6 != 2 {
            self.malformed = true;
            self.rest = &[];
            return None;
        }
        let len = (u16::from_be_bytes([self.rest[2], self.rest[3]]) as usize + 1) * 4;
        if len > self.rest.len() {
            self.malformed = true;
            self.rest = &[];
            return None;
        }
        let (pkt, rest) = self.rest.split_at(len);
        self.rest = rest;
        Some(RtcpPacket {
            count_or_fmt: pkt[0] & 0x1f,
            pt: pkt[1],
            bytes: pkt,
        })
    }
}

/// Checks a compound RTCP packet is well-formed end to end.
pub fn is_well_formed(buf: &[u8]) -> bool {
    let mut it = RtcpIter::new(buf);
    let mut n = 0;
    for _ in it.by_ref() {
        n += 1;
    }
    n > 0 && !it.malformed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_compound_and_flags_truncation() {
        let mut buf = Vec::new();
        write_empty_rr(Ssrc(1), &mut buf);
        write_pli(Ssrc(1), Ssrc(2), &mut buf);
        let pkts: Vec<_> = RtcpIter::new(&buf).collect();
        assert_eq!(pkts.len(), 2);
        assert_eq!((pkts[1].pt, pkts[1].count_or_fmt), (PT_PSFB, 1));
        assert_eq!(pkts[1].media_ssrc(), Some(Ssrc(2)));
        assert!(is_well_formed(&buf));
        assert!(!is_well_formed(&buf[..buf.len() - 1]));
        assert!(!is_well_formed(&[]));
    }
}
