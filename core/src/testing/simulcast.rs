//! A publisher's VP8 simulcast, as Chromium sends it: three layers (160,
//! 320 and 640 px wide) whose SSRCs the offer did not announce, with the MID
//! and RID header extensions only on their first packets, a keyframe on each
//! PLI, and a sender report a second per layer. The last payload byte of
//! each packet is its layer, for the subscriber's side of a test.

use std::time::Duration;

use crate::proto::rtcp::{self, RtcpIter, SenderInfo};

use super::{MID_EXT_ID, Net, RID_EXT_ID, rtp_with_ext};

/// One frame every this long.
pub const FRAME: Duration = Duration::from_millis(50);
/// The largest payload of a packet, bytes.
pub const MAX_PACKET: usize = 1000;
/// Packets of each layer that carry MID and RID before the publisher stops
/// writing them.
pub const TAGGED_PACKETS: u32 = 20;

#[derive(Debug)]
pub struct Layer {
    pub rid: &'static str,
    pub ssrc: u32,
    pub width: u16,
    pub bps: u64,
    pub seq: u16,
    pub ts_base: u32,
    pub picture_id: u16,
    pub tl0: u8,
    pub key_pending: bool,
    /// Encoded and sent (`RTCRtpEncodingParameters.active`).
    pub active: bool,
    pub sent: u32,
    pub octets: u32,
}

#[derive(Debug)]
pub struct SimulcastSource {
    pub layers: Vec<Layer>,
    pub t: Duration,
    pub keyframes: u32,
}

impl SimulcastSource {
    pub fn new() -> Self {
        let layer = |i: u32, rid, width, kbps: u64| Layer {
            rid,
            ssrc: 5000 + i,
            width,
            bps: kbps * 1000,
            seq: 60_000 + 1_000 * i as u16,
            ts_base: 0x7000_0000 * i,
            picture_id: 32_000 + 50 * i as u16,
            tl0: 250 + i as u8,
            key_pending: true,
            active: true,
            sent: 0,
            octets: 0,
        };
        Self {
            layers: vec![
                layer(0, "q", 160, 100),
                layer(1, "h", 320, 300),
                layer(2, "f", 640, 900),
            ],
            t: Duration::ZERO,
            keyframes: 0,
        }
    }

    /// One frame of every layer, a sender report per layer each second,
    /// and keyframes for the SSRCs the server sent a PLI for.
    /// One frame of each active layer from peer 0 of `net`, after the
    /// PLIs it got (a keyframe of that layer).
    pub fn tick(&mut self, net: &mut Net) {
        for c in std::mem::take(&mut net.peers[0].rtcp) {
            for p in RtcpIter::new(&c) {
                if p.pt == rtcp::PT_PSFB && p.count_or_fmt == 1 {
                    let ssrc = p.media_ssrc().expect("PLI names its SSRC").0;
                    for l in &mut self.layers {
                        l.key_pending |= l.ssrc == ssrc;
                    }
                }
            }
        }
        let ms = self.t.as_millis() as u64;
        for (i, l) in self.layers.iter_mut().enumerate() {
            if !l.active {
                continue;
            }
            let ts = l.ts_base.wrapping_add((ms * 90) as u32);
            if ms.is_multiple_of(1000) {
                let mut sr = Vec::new();
                SenderInfo {
                    ssrc: crate::Ssrc(l.ssrc),
                    ntp: (1_000_000u64 << 32) + (ms << 32) / 1000,
                    rtp_ts: ts,
                    packets: l.sent,
                    octets: l.octets,
                }
                .write(&mut sr);
                assert!(net.peers[0].client.send_rtcp(&sr));
            }
            let key = std::mem::take(&mut l.key_pending);
            self.keyframes += u32::from(key);
            let frame_bytes = (l.bps / 8 * FRAME.as_millis() as u64 / 1000) as usize;
            let packets = frame_bytes.div_ceil(MAX_PACKET).max(1);
            for k in 0..packets {
                // VP8 descriptor: X, S on the first packet; I and L; 15-bit
                // picture ID; TL0PICIDX.
                let [p0, p1] = (l.picture_id | 0x8000).to_be_bytes();
                let mut payload = vec![if k == 0 { 0x90 } else { 0x80 }, 0xc0, p0, p1, l.tl0];
                if k == 0 {
                    // Frame tag (P clear on a keyframe), start code, size.
                    payload.push(if key { 0x10 } else { 0x11 });
                    payload.extend_from_slice(&[0x02, 0x00, 0x9d, 0x01, 0x2a]);
                    payload.extend_from_slice(&l.width.to_le_bytes());
                    payload.extend_from_slice(&(l.width * 3 / 4).to_le_bytes());
                }
                payload.resize(frame_bytes / packets, 0);
                // The layer, for the subscriber's side of the test.
                payload.push(i as u8);
                let tagged = l.sent < TAGGED_PACKETS;
                let exts: Vec<(u8, &[u8])> = if tagged {
                    vec![(MID_EXT_ID, b"0"), (RID_EXT_ID, l.rid.as_bytes())]
                } else {
                    vec![]
                };
                let pkt = rtp_with_ext(96, l.seq, ts, l.ssrc, k + 1 == packets, &exts, &payload);
                assert!(net.peers[0].client.send_rtp(&pkt));
                l.seq = l.seq.wrapping_add(1);
                l.sent += 1;
                l.octets += payload.len() as u32;
            }
            l.picture_id = (l.picture_id + 1) & 0x7fff;
            l.tl0 = l.tl0.wrapping_add(1);
        }
        self.t += FRAME;
    }
}

impl Default for SimulcastSource {
    fn default() -> Self {
        Self::new()
    }
}
