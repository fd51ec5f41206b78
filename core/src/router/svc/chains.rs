//! AV1 chains: which of a publisher's decode targets can still decode
//! after a loss (AV1 RTP specification, appendix A: its terms Chain and
//! Decode target, and each frame's `frame_chain_fdiff`).
//!
//! A chain is a sequence of frames each of which points back at the one
//! before it (its chain difference; 0 starts the chain, as a keyframe
//! does). Each decode target is protected by one chain: while every frame
//! of it has arrived, the target decodes. Chromium's `L3T3` has one chain
//! per spatial layer, holding the T0 frames of that layer and of those
//! below it (full SVC), so a lost S2 T0 frame breaks S2's chain alone and
//! S0 and S1 still decode; a lost S0 T0 frame breaks all three.
//!
//! A frame missing is not yet lost: the publisher's NACK may bring it
//! back, and a consumer that left out what comes after it would turn a
//! repaired loss into a keyframe. So a chain breaks only when a frame of
//! it is *given up* ([`Chains::on_lost`], from the NACK generator's given-up
//! sequence numbers), whichever comes first of that and the next frame of
//! the chain pointing at it. It mends at a frame that starts it again (a
//! keyframe), and a frame given up after that restart no longer counts.
//!
//! Sans-IO: fed each packet's decoded descriptor and sequence number, and
//! the sequence numbers given up.

use crate::proto::codec::{DdStructure, DependencyDescriptor, MAX_CHAINS};

use super::MAX_SPATIAL;

/// Frames kept, by frame number modulo this: three spatial layers at
/// 30 frames/s for 2.8 s, longer than a packet is asked for again
/// (`nack::MAX_AGE`).
const WINDOW: usize = 256;

/// Frames at most counted lost between two frames seen around a given-up
/// packet (more is a gap the NACK generator resets at).
const MAX_SPAN: u16 = 64;

/// What is known of one frame number.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// The slot holds this frame number.
    used: bool,
    number: u16,
    /// A packet of it arrived: the lowest and highest sequence numbers,
    /// and whether its first and last packets were among them.
    seen: bool,
    first_seq: u16,
    last_seq: u16,
    begin: bool,
    end: bool,
    /// A packet of it was given up, or it was never seen and a packet
    /// given up falls where it would have been.
    lost: bool,
    /// Chains (bit *c*) whose next frame points back at it.
    linked: u8,
}

/// The chains of one AV1 stream: which are broken now.
#[derive(Debug, Clone, Default)]
pub struct Chains {
    /// [`WINDOW`] slots once the first packet is fed (none for VP9).
    slots: Vec<Slot>,
    /// The newest frame number seen.
    newest: Option<u16>,
    /// Bit *c*: chain *c* is broken.
    broken: u8,
    /// Where each chain last started (a frame with chain difference 0):
    /// a frame lost before it is no part of the chain any more.
    started: [Option<u16>; MAX_CHAINS],
    /// The chains the structure in force has (at most [`MAX_CHAINS`]).
    count: u8,
    /// The chain protecting each spatial layer's highest decode target.
    layer_chain: [Option<u8>; MAX_SPATIAL],
    /// Times a chain went from whole to broken since [`Self::take_breaks`].
    breaks: u64,
}

/// `a` is newer than `b` (16-bit wrapping numbers, half the range).
fn newer(a: u16, b: u16) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000
}

impl Chains {
    /// Takes the chains of a structure that came into force (a
    /// keyframe's): how many there are, and which protects each spatial
    /// layer's highest decode target. The keyframe itself starts them
    /// again (chain differences 0), so nothing is mended here: a resent
    /// old keyframe packet carries the structure too.
    pub fn set_structure(&mut self, s: &DdStructure) {
        self.count = s.chains.min(MAX_CHAINS as u8);
        self.broken &= self.all();
        self.layer_chain = [None; MAX_SPATIAL];
        for (spatial, slot) in self.layer_chain.iter_mut().enumerate() {
            let top = s
                .decode_targets
                .iter()
                .enumerate()
                .filter(|(_, l)| usize::from(l.0) == spatial)
                .max_by_key(|(_, l)| l.1);
            *slot = top
                .and_then(|(dt, _)| s.protected_by.get(dt).copied())
                .filter(|c| usize::from(*c) < MAX_CHAINS);
        }
    }

    /// The slot of frame `number`, emptied if it held an older one; `None`
    /// when it holds a newer frame (`number` is too old to follow).
    fn slot(&mut self, number: u16) -> Option<&mut Slot> {
        if self.slots.is_empty() {
            self.slots = vec![Slot::default(); WINDOW];
        }
        let s = &mut self.slots[usize::from(number) % WINDOW];
        if s.used && s.number != number {
            if newer(s.number, number) {
                return None;
            }
            *s = Slot::default();
        }
        if !s.used {
            *s = Slot {
                used: true,
                number,
                ..Slot::default()
            };
        }
        Some(s)
    }

    fn break_chains(&mut self, bits: u8) {
        let fresh = bits & !self.broken;
        if fresh != 0 {
            self.breaks += u64::from(fresh.count_ones());
            tracing::debug!(
                target: "sfu::layers",
                chains = fresh,
                "AV1 chain broken by a lost frame"
            );
        }
        self.broken |= bits;
    }

    /// A packet of frame `d` (decoded against the structure in force) with
    /// sequence number `seq`. The first packet seen of a frame follows its
    /// chain differences: a chain starting here mends (when the frame is
    /// the newest yet), one pointing at a frame given up breaks.
    pub fn on_packet(&mut self, d: &DependencyDescriptor, seq: u16) {
        let n = d.frame_number;
        let Some(s) = self.slot(n) else { return };
        let first = !s.seen;
        if first {
            s.seen = true;
            s.first_seq = seq;
            s.last_seq = seq;
        } else if newer(s.first_seq, seq) {
            s.first_seq = seq;
        } else if newer(seq, s.last_seq) {
            s.last_seq = seq;
        }
        s.begin |= d.start_of_frame;
        s.end |= d.end_of_frame;
        if !first {
            return;
        }
        let newest = self.newest.is_none_or(|m| newer(n, m));
        if newest {
            self.newest = Some(n);
        }
        for (c, &diff) in d.chain_fdiffs().iter().enumerate() {
            let bit = 1u8 << c;
            if diff == 0 {
                if newest {
                    self.broken &= !bit;
                    self.started[c] = Some(n);
                }
                continue;
            }
            let prev = n.wrapping_sub(u16::from(diff));
            let Some(p) = self.slot(prev) else { continue };
            p.linked |= bit;
            if p.lost {
                self.break_chains(bit);
            }
        }
    }

    /// The publisher's packet `seq` was given up (asked for again until the
    /// NACK generator stopped). The frame it was in is lost: the frame
    /// whose packets seen span it, or else the frames between the nearest
    /// seen before and after it (each of those two as well unless its
    /// first or last packet is known). A chain linked through a lost frame
    /// breaks.
    pub fn on_lost(&mut self, seq: u16) {
        let (mut before, mut after): (Option<Slot>, Option<Slot>) = (None, None);
        for s in self.slots.iter().filter(|s| s.used && s.seen) {
            if !newer(s.first_seq, seq) && !newer(seq, s.last_seq) {
                let n = s.number;
                self.lose(n);
                return;
            }
            if newer(seq, s.last_seq) {
                if before.is_none_or(|b| newer(s.last_seq, b.last_seq)) {
                    before = Some(*s);
                }
            } else if after.is_none_or(|a| newer(a.first_seq, s.first_seq)) {
                after = Some(*s);
            }
        }
        if let Some(b) = before.filter(|b| !b.end) {
            self.lose(b.number);
        }
        if let Some(a) = after.filter(|a| !a.begin) {
            self.lose(a.number);
        }
        if let (Some(b), Some(a)) = (before, after) {
            let span = a.number.wrapping_sub(b.number);
            if span <= MAX_SPAN {
                for k in 1..span {
                    self.lose(b.number.wrapping_add(k));
                }
            }
        }
    }

    /// Frame `n` is lost: the chains linked through it break, unless
    /// they started again after it.
    fn lose(&mut self, n: u16) {
        let Some(s) = self.slot(n) else { return };
        s.lost = true;
        let mut linked = s.linked;
        for (c, start) in self.started.iter().enumerate() {
            if start.is_some_and(|st| newer(st, n)) {
                linked &= !(1 << c);
            }
        }
        self.break_chains(linked);
    }

    /// Packets were lost beyond what the NACK generator follows (its
    /// reset): every chain is broken until it starts again.
    pub fn on_reset(&mut self) {
        self.break_chains(self.all());
    }

    /// A bit for each chain of the structure in force.
    fn all(&self) -> u8 {
        if usize::from(self.count) >= MAX_CHAINS {
            u8::MAX
        } else {
            (1u8 << self.count) - 1
        }
    }

    /// Bit *s*: spatial layer *s*'s highest decode target is protected by a
    /// broken chain, so what a consumer of it receives cannot decode until
    /// a keyframe.
    pub fn broken_layers(&self) -> u8 {
        if self.broken == 0 {
            return 0;
        }
        let mut out = 0;
        for (s, c) in self.layer_chain.iter().enumerate() {
            if c.is_some_and(|c| self.broken & (1 << c) != 0) {
                out |= 1 << s;
            }
        }
        out
    }

    /// Times a chain went from whole to broken since the last call (for
    /// the Router's counter).
    pub fn take_breaks(&mut self) -> u64 {
        std::mem::take(&mut self.breaks)
    }
}

#[cfg(test)]
mod tests;
