//! A producer stream's recent packets, kept for retransmission (RFC 4588):
//! plaintext, stored once for all consumers, in a power-of-two ring indexed
//! by sequence number, and aged out by RTP timestamp.

/// Packets kept at most (a power of two): about 4 s of 2 Mbit/s video in
/// 1,200-byte packets; the age limit usually ends an entry's life first.
pub const SLOTS: usize = 1024;
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

/// The ring. Its storage is one zeroed allocation made at creation, which
/// the OS backs with memory only as packets are written.
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
            data: vec![0u8; SLOTS * SLOT_BYTES].into_boxed_slice(),
            slots: vec![Slot::default(); SLOTS].into_boxed_slice(),
            newest: None,
            max_age_ticks,
        }
    }

    fn too_old(&self, timestamp: u32) -> bool {
        self.newest
            .is_some_and(|n| n.wrapping_sub(timestamp) as i32 > self.max_age_ticks as i32)
    }

    /// Stores plain RTP packet `pkt` with sequence number `seq` and RTP
    /// timestamp `timestamp`, replacing whatever held its slot.
    pub fn insert(&mut self, seq: u16, timestamp: u32, pkt: &[u8]) -> Stored {
        let i = seq as usize & (SLOTS - 1);
        let s = self.slots[i];
        if s.len != 0 && s.seq == seq && s.timestamp == timestamp {
            return Stored::Duplicate;
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
        let i = seq as usize & (SLOTS - 1);
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
        assert_eq!(b.get(5), None, "overwritten by a packet 1024 later");
        assert_eq!(b.get(5 + SLOTS as u16), Some(&[2u8; 20][..]));
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
