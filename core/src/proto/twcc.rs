//! Transport-wide congestion control feedback
//! (draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1): the RTCP
//! message (RTPFB, FMT 15) that tells a sender when each of its packets,
//! numbered by the transport-wide sequence number header extension (§2),
//! arrived. Encoder and decoder; sans-IO.

use crate::ids::Ssrc;
use crate::proto::rtcp::PT_RTPFB;

/// RTPFB FMT of the feedback.
pub const FMT: u8 = 15;
/// One receive-delta tick, µs.
pub const DELTA_US: i64 = 250;
/// One reference-time tick, µs.
pub const REFERENCE_US: i64 = 64_000;
/// Packets one feedback message covers at most (the status count is 16 bits;
/// this keeps a message well under the MTU).
pub const MAX_PACKETS: usize = 1000;

/// A decoded feedback message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feedback {
    /// SSRC of the feedback's sender.
    pub sender_ssrc: Ssrc,
    /// SSRC of the media source (informational).
    pub media_ssrc: Ssrc,
    /// The first transport-wide sequence number covered.
    pub base_seq: u16,
    /// Feedback message counter (wraps at 256).
    pub fb_count: u8,
    /// For each sequence number from `base_seq` on: its arrival time on the
    /// receiver's clock in µs (reference time plus deltas, 250 µs
    /// resolution), or `None` when it was not received.
    pub arrivals: Vec<Option<i64>>,
}

/// Writes `fb` as an RTCP packet to `out`. Arrival times are quantised to
/// the message's resolution (reference time 64 ms, deltas 250 µs) with no
/// drift: each delta is taken from the previous quantised time. Returns
/// false (and writes nothing) when nothing in `fb.arrivals` was received,
/// which the format cannot express, or there are more than
/// [`MAX_PACKETS`].
pub fn write(fb: &Feedback, out: &mut Vec<u8>) -> bool {
    let Some(first) = fb.arrivals.iter().flatten().next().copied() else {
        return false;
    };
    if fb.arrivals.len() > MAX_PACKETS {
        return false;
    }
    let reference = first.div_euclid(REFERENCE_US);
    // Symbols and deltas.
    let mut symbols = Vec::with_capacity(fb.arrivals.len());
    let mut deltas: Vec<u8> = Vec::with_capacity(fb.arrivals.len() * 2);
    let mut prev = reference * REFERENCE_US;
    for a in &fb.arrivals {
        match a {
            None => symbols.push(0u8),
            Some(t) => {
                let d = (t - prev)
                    .div_euclid(DELTA_US)
                    .clamp(i64::from(i16::MIN), i64::from(i16::MAX));
                prev += d * DELTA_US;
                if (0..=255).contains(&d) {
                    symbols.push(1);
                    deltas.push(d as u8);
                } else {
                    symbols.push(2);
                    deltas.extend_from_slice(&(d as i16).to_be_bytes());
                }
            }
        }
    }
    let start = out.len();
    out.extend_from_slice(&[0x80 | FMT, PT_RTPFB, 0, 0]);
    out.extend_from_slice(&fb.sender_ssrc.0.to_be_bytes());
    out.extend_from_slice(&fb.media_ssrc.0.to_be_bytes());
    out.extend_from_slice(&fb.base_seq.to_be_bytes());
    out.extend_from_slice(&(symbols.len() as u16).to_be_bytes());
    let r = (reference as i32 as u32) & 0x00ff_ffff;
    out.extend_from_slice(&((r << 8) | u32::from(fb.fb_count)).to_be_bytes());
    // Chunks: a run-length chunk for a run of 7 or more equal symbols, else
    // a two-bit status vector of the next 7 (padded with "not received").
    let mut i = 0;
    while i < symbols.len() {
        let s = symbols[i];
        let run = symbols[i..]
            .iter()
            .take_while(|&&x| x == s)
            .count()
            .min(0x1fff);
        if run >= 7 {
            out.extend_from_slice(&((u16::from(s) << 13) | run as u16).to_be_bytes());
            i += run;
        } else {
            let mut chunk: u16 = 0xc000;
            for (k, &sym) in symbols[i..].iter().take(7).enumerate() {
                chunk |= u16::from(sym) << (12 - 2 * k);
            }
            out.extend_from_slice(&chunk.to_be_bytes());
            i += 7;
        }
    }
    out.extend_from_slice(&deltas);
    while !(out.len() - start).is_multiple_of(4) {
        out.push(0);
    }
    let words = ((out.len() - start) / 4 - 1) as u16;
    out[start + 2..start + 4].copy_from_slice(&words.to_be_bytes());
    true
}

/// Decodes a feedback message: `pkt` is one RTCP packet (header included)
/// with PT 205 and FMT 15. `None` when it is truncated or inconsistent.
pub fn parse(pkt: &[u8]) -> Option<Feedback> {
    if pkt.len() < 20 || pkt[1] != PT_RTPFB || pkt[0] & 0x1f != FMT {
        return None;
    }
    let u16_at = |i: usize| Some(u16::from_be_bytes(pkt.get(i..i + 2)?.try_into().ok()?));
    let u32_at = |i: usize| Some(u32::from_be_bytes(pkt.get(i..i + 4)?.try_into().ok()?));
    let count = usize::from(u16_at(14)?);
    let rt = u32_at(16)?;
    let reference = i64::from(((rt & 0xffff_ff00) as i32) >> 8);
    let mut symbols = Vec::with_capacity(count);
    let mut at = 20;
    while symbols.len() < count {
        let chunk = u16_at(at)?;
        at += 2;
        if chunk & 0x8000 == 0 {
            let s = ((chunk >> 13) & 3) as u8;
            let run = usize::from(chunk & 0x1fff);
            symbols.extend(std::iter::repeat_n(s, run.min(count - symbols.len())));
        } else if chunk & 0x4000 == 0 {
            for k in 0..14 {
                if symbols.len() < count {
                    symbols.push(((chunk >> (13 - k)) & 1) as u8);
                }
            }
        } else {
            for k in 0..7 {
                if symbols.len() < count {
                    symbols.push(((chunk >> (12 - 2 * k)) & 3) as u8);
                }
            }
        }
    }
    let mut t = reference * REFERENCE_US;
    let mut arrivals = Vec::with_capacity(count);
    for s in symbols {
        match s {
            0 => arrivals.push(None),
            1 => {
                t += i64::from(*pkt.get(at)?) * DELTA_US;
                at += 1;
                arrivals.push(Some(t));
            }
            2 => {
                t += i64::from(u16_at(at)? as i16) * DELTA_US;
                at += 2;
                arrivals.push(Some(t));
            }
            _ => return None,
        }
    }
    Some(Feedback {
        sender_ssrc: Ssrc(u32_at(4)?),
        media_ssrc: Ssrc(u32_at(8)?),
        base_seq: u16_at(12)?,
        fb_count: (rt & 0xff) as u8,
        arrivals,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::rtcp::{RtcpIter, is_well_formed};

    fn round_trip(arrivals: Vec<Option<i64>>) -> Feedback {
        let fb = Feedback {
            sender_ssrc: Ssrc(1),
            media_ssrc: Ssrc(2),
            base_seq: 65_530,
            fb_count: 7,
            arrivals,
        };
        let mut buf = Vec::new();
        assert!(write(&fb, &mut buf));
        assert!(is_well_formed(&buf), "one well-formed RTCP packet");
        let p = RtcpIter::new(&buf).next().expect("packet");
        assert_eq!((p.pt, p.count_or_fmt), (PT_RTPFB, FMT));
        parse(&buf).expect("decodes")
    }

    #[test]
    fn arrivals_round_trip_at_250_us_resolution() {
        // Small, large, negative (reordered) deltas, losses, runs.
        let mut a: Vec<Option<i64>> = vec![
            Some(1_000_000),
            Some(1_000_250),
            None,
            Some(1_100_000),
            Some(1_099_000),
            Some(1_099_000),
        ];
        a.extend(std::iter::repeat_n(None, 20));
        a.extend((0..30).map(|k| Some(1_200_000 + k * 1000)));
        let back = round_trip(a.clone());
        assert_eq!(back.base_seq, 65_530);
        assert_eq!(back.fb_count, 7);
        assert_eq!(back.arrivals.len(), a.len());
        for (i, (want, got)) in a.iter().zip(&back.arrivals).enumerate() {
            match (want, got) {
                (None, None) => {}
                (Some(w), Some(g)) => assert!((w - g).abs() < DELTA_US, "packet {i}: {w} vs {g}"),
                _ => panic!("packet {i}: {want:?} vs {got:?}"),
            }
        }
    }

    #[test]
    fn nothing_received_cannot_be_written() {
        let fb = Feedback {
            sender_ssrc: Ssrc(1),
            media_ssrc: Ssrc(2),
            base_seq: 0,
            fb_count: 0,
            arrivals: vec![None; 3],
        };
        assert!(!write(&fb, &mut Vec::new()));
    }

    #[test]
    fn decodes_one_bit_vectors_and_rejects_truncation() {
        // base 10, 14 packets, reference 1 (64 ms), count 3; one 1-bit
        // vector chunk: received, lost, received, then lost; 2 small deltas.
        let mut p = vec![
            0x8f, 205, 0, 5, 0, 0, 0, 1, 0, 0, 0, 2, 0, 10, 0, 14, 0, 0, 1, 3,
        ];
        p.extend_from_slice(&[0b1010_1000, 0]);
        p.extend_from_slice(&[4, 8]);
        let fb = parse(&p).expect("decodes");
        assert_eq!(fb.arrivals.len(), 14);
        assert_eq!(fb.arrivals[0], Some(64_000 + 1000));
        assert_eq!(fb.arrivals[1], None);
        assert_eq!(fb.arrivals[2], Some(64_000 + 3000));
        assert!(fb.arrivals[3..].iter().all(Option::is_none));
        for n in 0..p.len() {
            assert_eq!(parse(&p[..n]), None, "truncated to {n}");
        }
    }
}

#[cfg(test)]
mod chromium {
    use super::*;

    /// A feedback Chromium 156 sent our server (testdata/README.md).
    fn captured(name: &str) -> Vec<u8> {
        let path = format!("{}/../testdata/packets/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn feedback_captured_from_chromium_decodes_and_re_encodes() {
        // 1: early in a call on a 200 kbit/s policed downlink: video
        // packets lost between audio packets every ~20 ms.
        let one = parse(&captured("rtcp-twcc-feedback-1.bin")).expect("decodes");
        assert_eq!((one.base_seq, one.fb_count), (91, 12));
        assert_eq!(one.arrivals.len(), 47);
        assert_eq!(one.arrivals.iter().flatten().count(), 12);
        assert_eq!(one.arrivals[5], Some(19_896_442_750));
        assert_eq!(one.arrivals[46], Some(19_896_494_000));
        // 2: padded (the P bit), all 28 received over 50 ms.
        let pkt = captured("rtcp-twcc-feedback-2.bin");
        assert_eq!(pkt[0] & 0x20, 0x20, "padded");
        let two = parse(&pkt).expect("decodes");
        assert_eq!((two.base_seq, two.fb_count), (17, 4));
        assert_eq!(two.arrivals.len(), 28);
        let t: Vec<i64> = two.arrivals.iter().flatten().copied().collect();
        assert_eq!(t.len(), 28);
        assert!(t.windows(2).all(|w| w[1] >= w[0]));
        assert_eq!(t[27] - t[0], 50_000);
        // Our encoder writes the same information back.
        for fb in [one, two] {
            let mut buf = Vec::new();
            assert!(write(&fb, &mut buf));
            assert_eq!(parse(&buf), Some(fb));
        }
    }
}
