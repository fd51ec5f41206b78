//! Packets scenario tests send, and feedback they read.

use bytes::Bytes;

use super::AV1_DD_EXT_ID;
use crate::Ssrc;
use crate::proto::rtcp::{self, RtcpIter};

/// An AV1 RTP packet (SSRC `ssrc`, payload type `pt`, 90 kHz timestamp
/// `ts`) whose dependency descriptor `dd` is under [`AV1_DD_EXT_ID`], in a
/// one-byte extension block, or a two-byte one (RFC 8285 §4.3) when over
/// 16 bytes, followed by `payload`.
pub fn av1_rtp(
    seq: u16,
    ts: u32,
    marker: bool,
    (ssrc, pt): (u32, u8),
    dd: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let mut p = vec![0x90, pt | if marker { 0x80 } else { 0 }];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    let long = dd.len() > 16;
    let mut block = Vec::new();
    if long {
        block.extend_from_slice(&[AV1_DD_EXT_ID, dd.len() as u8]);
    } else {
        block.push((AV1_DD_EXT_ID << 4) | (dd.len() as u8 - 1));
    }
    block.extend_from_slice(dd);
    block.resize(block.len().div_ceil(4) * 4, 0);
    p.extend_from_slice(if long { &[0x10, 0x00] } else { &[0xBE, 0xDE] });
    p.extend_from_slice(&((block.len() / 4) as u16).to_be_bytes());
    p.extend_from_slice(&block);
    p.extend_from_slice(payload);
    p
}

/// The PLIs (RFC 4585 §6.3.1) for `media` in the RTCP compound packets
/// `rtcp` (a peer's), which are taken.
pub fn take_plis(rtcp: &mut Vec<Bytes>, media: Ssrc) -> usize {
    std::mem::take(rtcp)
        .iter()
        .flat_map(|c| RtcpIter::new(c).collect::<Vec<_>>())
        .filter(|p| (p.pt, p.count_or_fmt) == (rtcp::PT_PSFB, 1) && p.media_ssrc() == Some(media))
        .count()
}
