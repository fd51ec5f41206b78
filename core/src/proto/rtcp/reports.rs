//! Reports (RFC 3550 §6.4): sender info, reception report blocks,
//! receiver reports, and extended reports (RFC 3611) for the RTT of
//! receivers.

use super::{PT_RR, PT_SR, RtcpPacket};
use crate::ids::Ssrc;

/// The sender info of a sender report (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderInfo {
    /// Sender SSRC.
    pub ssrc: Ssrc,
    /// NTP timestamp (64-bit fixed point, seconds since 1900).
    pub ntp: u64,
    /// RTP timestamp corresponding to `ntp`, in clock-rate ticks.
    pub rtp_ts: u32,
    /// Sender's packet count.
    pub packets: u32,
    /// Sender's payload octet count.
    pub octets: u32,
}

impl SenderInfo {
    /// Reads the sender info of an SR packet; `None` if `pkt` is not one.
    pub fn parse(pkt: &RtcpPacket<'_>) -> Option<Self> {
        if pkt.pt != PT_SR {
            return None;
        }
        let b = pkt.bytes.get(4..28)?;
        let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Some(Self {
            ssrc: Ssrc(u32_at(0)),
            ntp: ((u32_at(4) as u64) << 32) | u32_at(8) as u64,
            rtp_ts: u32_at(12),
            packets: u32_at(16),
            octets: u32_at(20),
        })
    }

    /// Appends an SR with no report blocks (28 bytes) to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[0x80, PT_SR, 0, 6]);
        out.extend_from_slice(&self.ssrc.0.to_be_bytes());
        out.extend_from_slice(&self.ntp.to_be_bytes());
        out.extend_from_slice(&self.rtp_ts.to_be_bytes());
        out.extend_from_slice(&self.packets.to_be_bytes());
        out.extend_from_slice(&self.octets.to_be_bytes());
    }
}

/// Appends an empty receiver report (RFC 3550 §6.4.2, 8 bytes): the first
/// packet of a compound when we have nothing to report.
pub fn write_empty_rr(sender: Ssrc, out: &mut Vec<u8>) {
    out.extend_from_slice(&[0x80, PT_RR, 0, 1]);
    out.extend_from_slice(&sender.0.to_be_bytes());
}

/// A reception report block (RFC 3550 §6.4.1), in an SR or RR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBlock {
    /// The source this block is about.
    pub ssrc: Ssrc,
    /// Packets lost since the previous report, as a fraction of 256.
    pub fraction_lost: u8,
    /// Packets lost since the start (24-bit signed).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub ext_highest_seq: u32,
    /// Interarrival jitter, RTP timestamp ticks.
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR received (0: none).
    pub lsr: u32,
    /// Delay since that SR, in 1/65536 s.
    pub dlsr: u32,
}

impl ReportBlock {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.ssrc.0.to_be_bytes());
        let lost = (self.cumulative_lost as u32) & 0x00ff_ffff;
        out.extend_from_slice(&(u32::from(self.fraction_lost) << 24 | lost).to_be_bytes());
        for v in [self.ext_highest_seq, self.jitter, self.lsr, self.dlsr] {
            out.extend_from_slice(&v.to_be_bytes());
        }
    }

    fn parse(b: &[u8]) -> Option<Self> {
        let u = |i: usize| Some(u32::from_be_bytes(b.get(i..i + 4)?.try_into().ok()?));
        let w = u(4)?;
        // Sign-extend the 24-bit count.
        let cumulative_lost = ((w << 8) as i32) >> 8;
        Some(Self {
            ssrc: Ssrc(u(0)?),
            fraction_lost: (w >> 24) as u8,
            cumulative_lost,
            ext_highest_seq: u(8)?,
            jitter: u(12)?,
            lsr: u(16)?,
            dlsr: u(20)?,
        })
    }
}

/// Appends a receiver report (RFC 3550 §6.4.2) from `sender` with up to 31
/// `blocks` (more are left out) to `out`.
pub fn write_rr(sender: Ssrc, blocks: &[ReportBlock], out: &mut Vec<u8>) {
    let blocks = &blocks[..blocks.len().min(31)];
    out.extend_from_slice(&[0x80 | blocks.len() as u8, PT_RR]);
    out.extend_from_slice(&((1 + 6 * blocks.len()) as u16).to_be_bytes());
    out.extend_from_slice(&sender.0.to_be_bytes());
    for b in blocks {
        b.write(out);
    }
}

/// RTCP extended reports (RFC 3611 §2).
pub const PT_XR: u8 = 207;

/// Appends an XR packet with one Receiver Reference Time Report block
/// (RFC 3611 §4.4): `ntp` is our clock as a 64-bit NTP timestamp.
pub fn write_xr_rrtr(sender: Ssrc, ntp: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(&[0x80, PT_XR, 0, 4]);
    out.extend_from_slice(&sender.0.to_be_bytes());
    out.extend_from_slice(&[4, 0, 0, 2]);
    out.extend_from_slice(&ntp.to_be_bytes());
}

/// Appends an XR packet with one DLRR block (RFC 3611 §4.5) of
/// `(SSRC of the receiver, LRR, DLRR)` sub-blocks: LRR is the middle 32
/// bits of its last RRTR's NTP timestamp, DLRR the delay since, 1/65536 s.
pub fn write_xr_dlrr(sender: Ssrc, items: &[(Ssrc, u32, u32)], out: &mut Vec<u8>) {
    let items = &items[..items.len().min(60)];
    out.extend_from_slice(&[0x80, PT_XR]);
    out.extend_from_slice(&((1 + 1 + 3 * items.len()) as u16).to_be_bytes());
    out.extend_from_slice(&sender.0.to_be_bytes());
    out.extend_from_slice(&[5, 0]);
    out.extend_from_slice(&((3 * items.len()) as u16).to_be_bytes());
    for (ssrc, lrr, dlrr) in items {
        for v in [ssrc.0, *lrr, *dlrr] {
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
}

/// What an XR packet holds that we use: its RRTR timestamps (64-bit NTP)
/// and its DLRR sub-blocks `(SSRC, LRR, DLRR)`. Unknown blocks are skipped.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ExtendedReport {
    /// Receiver Reference Time Reports (RFC 3611 §4.4).
    pub rrtr: Vec<u64>,
    /// DLRR sub-blocks (RFC 3611 §4.5).
    pub dlrr: Vec<(Ssrc, u32, u32)>,
}

/// Reads an XR packet (`None` when `pkt` is not one).
pub fn parse_xr(pkt: &RtcpPacket<'_>) -> Option<ExtendedReport> {
    if pkt.pt != PT_XR {
        return None;
    }
    let mut xr = ExtendedReport::default();
    let b = pkt.bytes;
    let mut at = 8;
    while at + 4 <= b.len() {
        let bt = b[at];
        let words = usize::from(u16::from_be_bytes([b[at + 2], b[at + 3]]));
        let body = b.get(at + 4..at + 4 + 4 * words)?;
        match bt {
            4 if body.len() >= 8 => xr.rrtr.push(u64::from_be_bytes(body[..8].try_into().ok()?)),
            5 => xr.dlrr.extend(body.chunks_exact(12).map(|c| {
                let u = |i: usize| u32::from_be_bytes([c[i], c[i + 1], c[i + 2], c[i + 3]]);
                (Ssrc(u(0)), u(4), u(8))
            })),
            _ => {}
        }
        at += 4 + 4 * words;
    }
    Some(xr)
}

/// The report blocks of an SR or RR packet (none for other packets).
pub fn report_blocks<'a>(pkt: &RtcpPacket<'a>) -> impl Iterator<Item = ReportBlock> + 'a {
    let start = match pkt.pt {
        PT_SR => 28,
        PT_RR => 8,
        _ => usize::MAX,
    };
    let n = usize::from(pkt.count_or_fmt);
    pkt.bytes
        .get(start..)
        .unwrap_or(&[])
        .chunks_exact(24)
        .take(n)
        .filter_map(ReportBlock::parse)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::rtcp::{RtcpIter, is_well_formed};

    #[test]
    fn sender_info_round_trips() {
        let si = SenderInfo {
            ssrc: Ssrc(5),
            ntp: 0x0102_0304_0506_0708,
            rtp_ts: 9,
            packets: 10,
            octets: 11,
        };
        let mut buf = Vec::new();
        si.write(&mut buf);
        let p = RtcpIter::new(&buf).next().expect("one packet");
        assert_eq!(SenderInfo::parse(&p), Some(si));
    }

    #[test]
    fn extended_reports_round_trip() {
        let mut buf = Vec::new();
        write_xr_rrtr(Ssrc(1), 0x1122_3344_5566_7788, &mut buf);
        write_xr_dlrr(
            Ssrc(1),
            &[(Ssrc(5), 0x3344_5566, 6553), (Ssrc(6), 7, 8)],
            &mut buf,
        );
        assert!(is_well_formed(&buf));
        let xrs: Vec<ExtendedReport> = RtcpIter::new(&buf).filter_map(|p| parse_xr(&p)).collect();
        assert_eq!(xrs.len(), 2);
        assert_eq!(xrs[0].rrtr, [0x1122_3344_5566_7788]);
        assert_eq!(xrs[1].dlrr, [(Ssrc(5), 0x3344_5566, 6553), (Ssrc(6), 7, 8)]);
        // A block running past the end: not read.
        let mut bad = buf[..16].to_vec();
        bad[14] = 0x10;
        let p = RtcpIter::new(&bad).next();
        assert!(p.is_none_or(|p| parse_xr(&p).is_none_or(|x| x.rrtr.is_empty())));
    }

    #[test]
    fn receiver_reports_round_trip() {
        let blocks = [
            ReportBlock {
                ssrc: Ssrc(9),
                fraction_lost: 25,
                cumulative_lost: -3,
                ext_highest_seq: 0x0001_0005,
                jitter: 450,
                lsr: 0x3344_5566,
                dlsr: 32_768,
            },
            ReportBlock {
                ssrc: Ssrc(10),
                fraction_lost: 0,
                cumulative_lost: 0x7f_ffff,
                ext_highest_seq: 7,
                jitter: 0,
                lsr: 0,
                dlsr: 0,
            },
        ];
        let mut buf = Vec::new();
        write_rr(Ssrc(1), &blocks, &mut buf);
        assert!(is_well_formed(&buf));
        let p = RtcpIter::new(&buf).next().expect("one packet");
        assert_eq!((p.pt, p.count_or_fmt), (PT_RR, 2));
        assert_eq!(report_blocks(&p).collect::<Vec<_>>(), blocks);
    }
}
