//! A publisher's VP8 simulcast, as Chromium sends it: three layers (160,
//! 320 and 640 px wide) whose SSRCs the offer did not announce, with the MID
//! and RID header extensions only on their first packets, a keyframe on each
//! PLI, and a sender report a second per layer. The last payload byte of
//! each packet is its layer, for the subscriber's side of a test. With
//! [`SimulcastSource::l1t3`] each layer has three temporal layers as
//! libwebrtc's VP8 encoder makes them (`L1T3`): TIDs 0, 2, 1, 2 in turn, the
//! first T2 and the T1 after each T0 marked as layer syncs (Y), TL0PICIDX
//! counting T0 frames, and 40 / 20 / 40 % of the bits.

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
    /// The peer of the net that publishes.
    pub peer: usize,
    /// Three temporal layers per layer (L1T3).
    pub temporal: bool,
    /// Frames sent.
    pub frames: u32,
}

impl SimulcastSource {
    pub fn new() -> Self {
        Self::on_peer(0, 5000, false)
    }

    /// L1T3 layers from `peer`, SSRCs from `ssrc_base`.
    pub fn l1t3(peer: usize, ssrc_base: u32) -> Self {
        Self::on_peer(peer, ssrc_base, true)
    }

    fn on_peer(peer: usize, ssrc_base: u32, temporal: bool) -> Self {
        let layer = |i: u32, rid, width, kbps: u64| Layer {
            rid,
            ssrc: ssrc_base + i,
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
            peer,
            temporal,
            frames: 0,
        }
    }

    /// One frame of every layer, a sender report per layer each second,
    /// and keyframes for the SSRCs the server sent a PLI for.
    /// One frame of each active layer from peer 0 of `net`, after the
    /// PLIs it got (a keyframe of that layer).
    pub fn tick(&mut self, net: &mut Net) {
        let peer = self.peer;
        for c in std::mem::take(&mut net.peers[peer].rtcp) {
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
        // L1T3: TID 0, 2, 1, 2; the T2 and T1 right after a T0 are syncs.
        let (tid, sync, share) = match self.frames % 4 {
            _ if !self.temporal => (0, false, 10),
            0 => (0u8, false, 16u64),
            1 => (2, true, 8),
            2 => (1, true, 8),
            _ => (2, false, 8),
        };
        self.frames += 1;
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
                assert!(net.peers[peer].client.send_rtcp(&sr));
            }
            // A keyframe is a T0 frame: one asked for waits for the next.
            let key = tid == 0 && std::mem::take(&mut l.key_pending);
            self.keyframes += u32::from(key);
            let frame_bytes = (l.bps / 8 * FRAME.as_millis() as u64 / 1000 * share / 10) as usize;
            let packets = frame_bytes.div_ceil(MAX_PACKET).max(1);
            for k in 0..packets {
                // VP8 descriptor: X, S on the first packet; I and L; 15-bit
                // picture ID; TL0PICIDX.
                let [p0, p1] = (l.picture_id | 0x8000).to_be_bytes();
                let x = if self.temporal { 0xe0 } else { 0xc0 };
                let mut payload = vec![if k == 0 { 0x90 } else { 0x80 }, x, p0, p1, l.tl0];
                if self.temporal {
                    // TID, Y, KEYIDX 0.
                    payload.push((tid << 6) | if sync { 0x20 } else { 0 });
                }
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
                assert!(net.peers[peer].client.send_rtp(&pkt));
                l.seq = l.seq.wrapping_add(1);
                l.sent += 1;
                l.octets += payload.len() as u32;
            }
            l.picture_id = (l.picture_id + 1) & 0x7fff;
            // TL0PICIDX counts T0 frames; the others carry their T0's.
            if !self.temporal || self.frames.is_multiple_of(4) {
                l.tl0 = l.tl0.wrapping_add(1);
            }
        }
        self.t += FRAME;
    }
}

impl Default for SimulcastSource {
    fn default() -> Self {
        Self::new()
    }
}
