//! Feedback messages (RFC 4585 §6): Picture Loss Indication, Generic NACK,
//! and REMB (draft-alvestrand-rmcat-remb-03).

use super::{PT_PSFB, PT_RTPFB, RtcpPacket};
use crate::ids::Ssrc;

/// Appends a Picture Loss Indication (RFC 4585 §6.3.1) to `out`: 12 bytes.
pub fn write_pli(sender: Ssrc, media: Ssrc, out: &mut Vec<u8>) {
    out.extend_from_slice(&[0x81, PT_PSFB, 0, 2]);
    out.extend_from_slice(&sender.0.to_be_bytes());
    out.extend_from_slice(&media.0.to_be_bytes());
}

/// Packs sequence numbers (in order, wrapping allowed) into Generic NACK
/// items (RFC 4585 §6.2.1): (PID, BLP), where bit i of BLP asks for PID + i + 1.
pub fn nack_items(seqs: &[u16]) -> Vec<(u16, u16)> {
    let mut items: Vec<(u16, u16)> = Vec::new();
    for &s in seqs {
        match items.last_mut() {
            Some((pid, blp)) if (1..=16).contains(&s.wrapping_sub(*pid)) => {
                *blp |= 1 << (s.wrapping_sub(*pid) - 1);
            }
            _ => items.push((s, 0)),
        }
    }
    items
}

/// Appends a Generic NACK (RFC 4585 §6.2.1) to `out` with the given
/// (PID, BLP) pairs.
pub fn write_nack(sender: Ssrc, media: Ssrc, items: &[(u16, u16)], out: &mut Vec<u8>) {
    out.extend_from_slice(&[0x81, PT_RTPFB]);
    out.extend_from_slice(&((2 + items.len()) as u16).to_be_bytes());
    out.extend_from_slice(&sender.0.to_be_bytes());
    out.extend_from_slice(&media.0.to_be_bytes());
    for (pid, blp) in items {
        out.extend_from_slice(&pid.to_be_bytes());
        out.extend_from_slice(&blp.to_be_bytes());
    }
}

/// Appends a REMB (draft-alvestrand-rmcat-remb-03 §2.2: PSFB, FMT 15,
/// "REMB") to `out`: the receiver's estimate `bitrate_bps` for the total of
/// the streams `ssrcs` (at most 255).
pub fn write_remb(sender: Ssrc, bitrate_bps: u64, ssrcs: &[Ssrc], out: &mut Vec<u8>) {
    let ssrcs = &ssrcs[..ssrcs.len().min(255)];
    let (mut mantissa, mut exp) = (bitrate_bps, 0u32);
    while mantissa > 0x3_ffff {
        mantissa >>= 1;
        exp += 1;
    }
    out.extend_from_slice(&[0x80 | 15, PT_PSFB]);
    out.extend_from_slice(&((4 + ssrcs.len()) as u16).to_be_bytes());
    out.extend_from_slice(&sender.0.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(b"REMB");
    let word = ((ssrcs.len() as u32) << 24) | (exp.min(63) << 18) | mantissa as u32;
    out.extend_from_slice(&word.to_be_bytes());
    for s in ssrcs {
        out.extend_from_slice(&s.0.to_be_bytes());
    }
}

/// Reads a REMB: (bitrate in bit/s, the SSRCs it is about); `None` when
/// `pkt` is not one.
pub fn parse_remb(pkt: &RtcpPacket<'_>) -> Option<(u64, Vec<Ssrc>)> {
    let b = pkt.bytes;
    if pkt.pt != PT_PSFB || pkt.count_or_fmt != 15 || b.get(12..16)? != b"REMB" {
        return None;
    }
    let word = u32::from_be_bytes(b.get(16..20)?.try_into().ok()?);
    let n = (word >> 24) as usize;
    let bitrate = u64::from(word & 0x3_ffff) << ((word >> 18) & 0x3f);
    let ssrcs = b
        .get(20..20 + 4 * n)?
        .chunks_exact(4)
        .map(|c| Ssrc(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
        .collect();
    Some((bitrate, ssrcs))
}

/// Iterates the (PID, BLP) items of a Generic NACK (RFC 4585 §6.2.1) as the
/// individual lost sequence numbers.
pub fn nack_seqs<'a>(pkt: &RtcpPacket<'a>) -> impl Iterator<Item = u16> + 'a {
    pkt.bytes
        .get(12..)
        .unwrap_or(&[])
        .chunks_exact(4)
        .flat_map(|c| {
            let pid = u16::from_be_bytes([c[0], c[1]]);
            let blp = u16::from_be_bytes([c[2], c[3]]);
            std::iter::once(pid).chain(
                (0..16)
                    .filter(move |i| blp & (1 << i) != 0)
                    .map(move |i| pid.wrapping_add(i + 1)),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::rtcp::{RtcpIter, is_well_formed};

    #[test]
    fn nack_expands_bitmask() {
        let mut buf = Vec::new();
        write_nack(Ssrc(1), Ssrc(2), &[(65534, 0b101)], &mut buf);
        let p = RtcpIter::new(&buf).next().expect("one packet");
        assert_eq!(nack_seqs(&p).collect::<Vec<_>>(), vec![65534, 65535, 1]);
    }

    #[test]
    fn remb_round_trips_within_its_precision() {
        for bps in [50_000u64, 262_143, 262_144, 1_234_567, 100_000_000] {
            let mut buf = Vec::new();
            write_remb(Ssrc(1), bps, &[Ssrc(5), Ssrc(6)], &mut buf);
            assert!(is_well_formed(&buf));
            let p = RtcpIter::new(&buf).next().expect("packet");
            let (got, ssrcs) = parse_remb(&p).expect("a REMB");
            assert_eq!(ssrcs, [Ssrc(5), Ssrc(6)]);
            assert!(got <= bps && bps - got <= bps >> 17, "{bps} -> {got}");
        }
    }

    #[test]
    fn nack_items_pack_and_round_trip() {
        let seqs = [65530u16, 65531, 65535, 0, 10, 11, 40];
        let items = nack_items(&seqs);
        // 65531, 65535, 0 and 10 are bits 0, 4, 5 and 15 after 65530; 11 is too far.
        assert_eq!(items, [(65530, 0b1000_0000_0011_0001), (11, 0), (40, 0)]);
        let mut buf = Vec::new();
        write_nack(Ssrc(1), Ssrc(2), &items, &mut buf);
        let p = RtcpIter::new(&buf).next().expect("one packet");
        assert_eq!(nack_seqs(&p).collect::<Vec<_>>(), seqs);
    }
}
