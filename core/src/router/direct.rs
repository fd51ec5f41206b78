//! The Router's direct transports (`crate::transport::direct`): packets the
//! control plane hands in, and the group of pictures kept for the video
//! producers on them.
//!
//! An ingest's publisher (an RTMP encoder) cannot be asked for a keyframe,
//! so a subscriber that starts mid-stream would wait up to a whole GOP
//! (2 s at `-g 60` and 30 fps). Instead each video producer on a direct
//! transport keeps the packets since its last keyframe, and a consumer that
//! starts gets them at once before the live packets: the earlier frames
//! with their timestamps pulled together just before the newest (1 tick of
//! 90 kHz apart), so the decoder decodes through them at once and shows
//! the current picture without added delay (the GOP cache of Janus's
//! `videobufferkf` and of RTMP servers, made for a jitter buffer).

use super::*;
use crate::transport::Tap;

/// Most packets a kept GOP holds: a longer GOP is not kept (its viewers
/// wait for the next keyframe).
const GOP_MAX_PACKETS: usize = 4096;
/// Most bytes a kept GOP holds.
const GOP_MAX_BYTES: usize = 6 << 20;

/// The packets of one video producer since its last keyframe, in order.
#[derive(Debug, Default)]
pub struct GopCache {
    packets: Vec<Vec<u8>>,
    bytes: usize,
    /// The RTP timestamp of the keyframe that starts it; `None` until the
    /// first keyframe, and after a GOP too long to keep.
    key_ts: Option<u32>,
    spare: Vec<Vec<u8>>,
}

impl GopCache {
    /// Keeps `pkt` (plain RTP with timestamp `ts`); a packet of a new
    /// keyframe (`keyframe`, another timestamp than the kept one's) starts
    /// the GOP again.
    pub fn push(&mut self, pkt: &[u8], ts: u32, keyframe: bool) {
        if keyframe && self.key_ts != Some(ts) {
            self.clear();
            self.key_ts = Some(ts);
        }
        if self.key_ts.is_none() {
            return;
        }
        if self.packets.len() >= GOP_MAX_PACKETS || self.bytes + pkt.len() > GOP_MAX_BYTES {
            self.clear();
            return;
        }
        let mut b = self.spare.pop().unwrap_or_default();
        b.clear();
        b.extend_from_slice(pkt);
        self.bytes += pkt.len();
        self.packets.push(b);
    }

    fn clear(&mut self) {
        self.spare.append(&mut self.packets);
        self.spare.truncate(GOP_MAX_PACKETS);
        self.bytes = 0;
        self.key_ts = None;
    }

    /// Packets kept.
    pub fn len(&self) -> usize {
        self.packets.len()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    /// The kept packets, each with the timestamp it is replayed with: the
    /// newest frame's own, and each earlier frame one 90 kHz tick before
    /// the next.
    pub fn replay(&self) -> impl Iterator<Item = (&[u8], u32)> + '_ {
        let ts_of = |p: &Vec<u8>| {
            p.get(4..8)
                .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        let last = self.packets.last().map_or(0, ts_of);
        // Frames after each packet's (packets of a frame share a timestamp).
        let mut after = vec![0u32; self.packets.len()];
        let mut frames = 0u32;
        for i in (0..self.packets.len()).rev() {
            if i + 1 < self.packets.len() && ts_of(&self.packets[i]) != ts_of(&self.packets[i + 1])
            {
                frames += 1;
            }
            after[i] = frames;
        }
        self.packets
            .iter()
            .zip(after)
            .map(move |(p, n)| (p.as_slice(), last.wrapping_sub(n)))
    }
}

impl Router {
    /// Adds a direct transport. Without a tap, an ingest's: its packets
    /// come from [`Router::handle_direct`], and it sends nothing. With
    /// `tap`, a recording's: what its consumers send goes to the tap.
    pub fn create_direct_transport(&mut self, tap: Option<Tap>) -> TransportId {
        let id = self.insert_transport(Transport::Direct(crate::transport::DirectTransport::new(
            tap,
        )));
        self.after_transport(id);
        id
    }

    /// Handles one plain RTP or RTCP packet (told apart as RFC 5761 §4
    /// does) that the control plane made for direct transport `transport`:
    /// its producers' media and sender reports, taken as a decrypted
    /// publisher's are. A packet for anything but an open direct transport
    /// is dropped and counted (`stale_id`).
    pub fn handle_direct(&mut self, now: Instant, transport: TransportId, data: &[u8]) {
        self.now = self.now.max(now);
        if !self
            .transports
            .get(transport)
            .is_some_and(|e| e.transport.is_direct() && e.transport.is_connected())
        {
            self.count_drop(DropReason::StaleId);
            return;
        }
        for c in [&self.counters, &self.worker_counters] {
            c.packets_in.add(1);
            c.bytes_in.add(data.len() as u64);
        }
        match classify(data) {
            PacketClass::Rtp => self.on_rtp(now, transport, data),
            PacketClass::Rtcp => self.on_rtcp(now, transport, data),
            _ => self.count_drop(DropReason::UnknownProtocol),
        }
    }

    /// Starts consumer `cid` (created running, or resumed) on encoding
    /// `enc` of producer `pid`: from the producer's kept GOP when it has
    /// one (an ingest's), else with a keyframe request to the publisher.
    pub(super) fn start_consumer(
        &mut self,
        now: Instant,
        cid: ConsumerId,
        pid: ProducerId,
        enc: u8,
    ) {
        if !self.replay_gop(now, cid, pid) {
            self.request_keyframe(now, pid, enc);
        }
    }

    /// Sends consumer `cid` the GOP producer `pid` keeps. Returns false
    /// when it keeps none.
    fn replay_gop(&mut self, now: Instant, cid: ConsumerId, pid: ProducerId) -> bool {
        let Some(gop) = self
            .producers
            .get_mut(pid)
            .and_then(|p| p.gop.take())
            .filter(|g| !g.is_empty())
        else {
            return false;
        };
        let mut buf = std::mem::take(&mut self.replay_buf);
        for (pkt, ts) in gop.replay() {
            buf.clear();
            buf.extend_from_slice(pkt);
            buf[4..8].copy_from_slice(&ts.to_be_bytes());
            if let Some(hdr) = RtpHeader::parse(&buf) {
                self.forward_one(now, pid, cid, &buf, &hdr);
            }
        }
        self.replay_buf = buf;
        self.counters.gop_replays.add(1);
        self.worker_counters.gop_replays.add(1);
        if let Some(p) = self.producers.get_mut(pid) {
            p.gop = Some(gop);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(seq: u16, ts: u32) -> Vec<u8> {
        let mut p = vec![0x80, 96, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xAA];
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p[4..8].copy_from_slice(&ts.to_be_bytes());
        p
    }

    #[test]
    fn a_gop_starts_at_a_keyframe_and_replays_with_frames_pulled_together() {
        let mut g = GopCache::default();
        g.push(&pkt(1, 1000), 1000, false);
        assert!(g.is_empty(), "nothing before the first keyframe");
        // A keyframe of two packets, then two frames of one and two packets.
        g.push(&pkt(2, 3000), 3000, true);
        g.push(&pkt(3, 3000), 3000, true);
        g.push(&pkt(4, 6000), 6000, false);
        g.push(&pkt(5, 9000), 9000, false);
        g.push(&pkt(6, 9000), 9000, false);
        let ts: Vec<u32> = g.replay().map(|(_, ts)| ts).collect();
        assert_eq!(ts, vec![8998, 8998, 8999, 9000, 9000]);
        // The next keyframe starts a new GOP.
        g.push(&pkt(7, 12000), 12000, true);
        assert_eq!(g.len(), 1);
        let ts: Vec<u32> = g.replay().map(|(_, ts)| ts).collect();
        assert_eq!(ts, vec![12000]);
    }

    #[test]
    fn a_gop_too_long_to_keep_is_dropped_until_the_next_keyframe() {
        let mut g = GopCache::default();
        g.push(&pkt(0, 0), 0, true);
        for i in 1..GOP_MAX_PACKETS as u16 + 10 {
            g.push(&pkt(i, u32::from(i) * 3000), u32::from(i) * 3000, false);
        }
        assert!(g.is_empty());
        g.push(&pkt(9, 1), 1, true);
        assert_eq!(g.len(), 1);
    }

    #[test]
    fn timestamps_wrap() {
        let mut g = GopCache::default();
        g.push(&pkt(1, u32::MAX), u32::MAX, true);
        g.push(&pkt(2, 2999), 2999, false);
        let ts: Vec<u32> = g.replay().map(|(_, ts)| ts).collect();
        assert_eq!(ts, vec![2998, 2999]);
    }
}
