//! A producer stream's recent packets, kept for retransmission (RFC 4588):
//! plaintext, stored once for all consumers, in a power-of-two ring indexed
//! by sequence number, and aged out by RTP timestamp.
//!
//! The ring starts at [`MIN_SLOTS`] and doubles (up to [`SLOTS`]) when a
//! packet would overwrite one still younger than the age limit: a 1 Mbit/s
//! camera needs 256 slots (384 KB), a 2.5 Mbit/s one 1,024 (1.5 MB). It
//! grows at most three times per stream, never in steady state.

/// Packets kept at most (a power of two): about 4 s of 2 Mbit/s video in
/// 1,200-byte packets; the age limit usually ends an entry's life first.
pub const SLOTS: usize = 1024;
/// Packets kept at first (a power of two): 1.3 s at 100 packets/s.
pub const MIN_SLOTS: usize = 128;
/// Largest packet stored, bytes; a longer one (never seen from WebRTC
/// senders, which stay under the path MTU) is not kept.
pub const SLOT_BYTES: usize = 1500;

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    seq: u16,
    /// 0: empty.
    len: u16,
    timestamp: u32,
}

/// The ring. Its storage is one zeroed allocation (made at creation and at
/// each doubling), which the OS backs with memory only as packets are
/// written.
pub struct RetransmissionBuffer {
    data: Box<[u8]>,
    slots: Box<[Slot]>,
    /// The newest RTP timestamp stored (ages are measured from it).
    newest: Option<u32>,
    max_age_ticks: u32,
}

impl std::fmt::Debug for RetransmissionBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetransmissionBuffer")
            .field("newest", &self.newest)
            .field("max_age_ticks", &self.max_age_ticks)
            .finish()
    }
}

/// What [`RetransmissionBuffer::insert`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// A packet not seen before; stored (or too long to store).
    New,
    /// The same sequence number is already stored: a duplicate (a
    /// retransmission of a packet that was not lost, or a replay).
    Duplicate,
}

impl RetransmissionBuffer {
    /// An empty buffer keeping packets for `max_age_ticks` RTP timestamp
    /// ticks (e.g. 1.5 s of 90 kHz video: 135,000).
    pub fn new(max_age_ticks: u32) -> Self {
        Self {
            data: vec![0u8; MIN_SLOTS * SLOT_BYTES].into_boxed_slice(),
            slots: vec![Slot::default(); MIN_SLOTS].into_boxed_slice(),
            newest: None,
            max_age_ticks,
        }
    }

    /// Packets it can hold now.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Doubles the ring, moving every stored packet to its new slot.
    fn grow(&mut self) {
        let n = self.slots.len() * 2;
        let mut data = vec![0u8; n * SLOT_BYTES].into_boxed_slice();
        let mut slots = vec![Slot::default(); n].into_boxed_slice();
        for (i, s) in self.slots.iter().enumerate() {
            if s.len == 0 {
                continue;
            }
            let j = s.seq as usize & (n - 1);
            let len = s.len as usize;
            data[j * SLOT_BYTES..j * SLOT_BYTES + len]
                .copy_from_slice(&self.data[i * SLOT_BYTES..i * SLOT_BYTES + len]);
            slots[j] = *s;
        }
        self.data = data;
        self.slots = slots;
    }

    fn too_old(&self, timestamp: u32) -> bool {
        self.newest
            .is_some_and(|n| n.wrapping_sub(timestamp) as i32 > self.max_age_ticks as i32)
    }

    /// Stores plain RTP packet `pkt` with sequence number `seq` and RTP
    /// timestamp `timestamp`, replacing whatever held its slot.
    pub fn insert(&mut self, seq: u16, timestamp: u32, pkt: &[u8]) -> Stored {
        let mut i = seq as usize & (self.slots.len() - 1);
        let s = self.slots[i];
        if s.len != 0 && s.seq == seq && s.timestamp == timestamp {
            return Stored::Duplicate;
        }
        // Overwriting a packet still within the age limit: too small a ring
        // for this stream's rate.
        if s.len != 0 && s.seq != seq && !self.too_old(s.timestamp) && self.slots.len() < SLOTS {
            self.grow();
            i = seq as usize & (self.slots.len() - 1);
            let s = self.slots[i];
            if s.len != 0 && s.seq == seq && s.timestamp == timestamp {
                return Stored::Duplicate;
            }
        }
        if self
            .newest
            .is_none_or(|n| timestamp.wrapping_sub(n) as i32 > 0)
        {
            self.newest = Some(timestamp);
        }
        if pkt.len() > SLOT_BYTES || pkt.is_empty() {
            self.slots[i].len = 0;
            return Stored::New;
        }
        self.data[i * SLOT_BYTES..i * SLOT_BYTES + pkt.len()].copy_from_slice(pkt);
        self.slots[i] = Slot {
            seq,
            len: pkt.len() as u16,
            timestamp,
        };
        Stored::New
    }

    /// The stored packet with sequence number `seq`, unless it was never
    /// stored, was overwritten, or is older than the age limit.
    pub fn get(&self, seq: u16) -> Option<&[u8]> {
        let i = seq as usize & (self.slots.len() - 1);
        let s = self.slots[i];
        if s.len == 0 || s.seq != seq || self.too_old(s.timestamp) {
            return None;
        }
        Some(&self.data[i * SLOT_BYTES..i * SLOT_BYTES + s.len as usize])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_recent_packets_and_forgets_old_or_overwritten_ones() {
        let mut b = RetransmissionBuffer::new(90_000); // 1 s of video
        for seq in 0..100u16 {
            let ts = u32::from(seq) * 3000; // 30 fps: newest is 297,000
            assert_eq!(b.insert(seq, ts, &[seq as u8; 100]), Stored::New);
        }
        assert_eq!(b.get(99), Some(&[99u8; 100][..]));
        assert_eq!(b.get(69), Some(&[69u8; 100][..]), "exactly 1 s old: kept");
        assert_eq!(b.get(68), None, "older than 1 s");
        assert_eq!(b.get(100), None, "never stored");
        assert_eq!(b.insert(99, 99 * 3000, &[0; 100]), Stored::Duplicate);
        assert_eq!(
            b.get(99),
            Some(&[99u8; 100][..]),
            "a duplicate changes nothing"
        );

        let mut b = RetransmissionBuffer::new(u32::MAX / 4);
        b.insert(5, 0, &[1; 10]);
        b.insert(5 + SLOTS as u16, 1, &[2; 20]);
        assert_eq!(
            b.get(5),
            None,
            "overwritten by a packet 1024 later (the ring grew once, to 256)"
        );
        assert_eq!(b.get(5 + SLOTS as u16), Some(&[2u8; 20][..]));
    }

    #[test]
    fn the_ring_grows_to_the_streams_rate_and_no_further() {
        // 1.5 s of 90 kHz video.
        let mut slow = RetransmissionBuffer::new(135_000);
        let mut fast = RetransmissionBuffer::new(135_000);
        for k in 0..2000u32 {
            // 30 packets/s, and 300 packets/s.
            slow.insert(k as u16, k * 3000, &[1; 1000]);
            fast.insert(k as u16, k * 300, &[2; 1000]);
        }
        assert_eq!(slow.capacity(), MIN_SLOTS, "45 packets in 1.5 s");
        assert_eq!(fast.capacity(), 512, "450 packets in 1.5 s");
        // Everything younger than the limit is there, after the moves.
        for k in 2000 - 450..2000u32 {
            assert_eq!(fast.get(k as u16), Some(&[2u8; 1000][..]), "{k}");
        }
        assert_eq!(fast.get(2000 - 452), None, "older than 1.5 s");
    }

    #[test]
    fn sequence_and_timestamp_wrap_around() {
        let mut b = RetransmissionBuffer::new(90_000);
        let mut ts = u32::MAX - 6000;
        for seq in [65534u16, 65535, 0, 1] {
            b.insert(seq, ts, &seq.to_be_bytes());
            ts = ts.wrapping_add(3000);
        }
        for seq in [65534u16, 65535, 0, 1] {
            assert_eq!(b.get(seq), Some(&seq.to_be_bytes()[..]), "seq {seq}");
        }
    }

    #[test]
    fn a_packet_longer_than_a_slot_is_not_kept() {
        let mut b = RetransmissionBuffer::new(90_000);
        assert_eq!(b.insert(1, 0, &[0; SLOT_BYTES + 1]), Stored::New);
        assert_eq!(b.get(1), None);
    }
}
