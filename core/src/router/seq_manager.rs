//! Sequence-number continuity for a consumer (RFC 3550 §A.1 unwrapping).
//!
//! A consumer's output sequence numbers must be gapless where the input is
//! gapless, keep the input's gaps and order, and continue without a jump
//! when the consumer switches to another input (producer switch, resume).
//! A packet the consumer leaves out on purpose (a temporal layer it does
//! not forward) leaves no gap either: later ones move down by one
//! ([`SeqManager::leave_out`]), as mediasoup's `SeqManager::Drop` does.

use crate::ids::SeqNo;

/// Maps a producer's 16-bit sequence numbers to a consumer's.
#[derive(Debug, Clone)]
pub struct SeqManager {
    /// Output = input + offset, in the extended (u64) domain, as i64.
    offset: i64,
    /// Highest extended input seen in the current epoch.
    highest_in: Option<SeqNo>,
    /// First extended input of the current epoch; older inputs are dropped.
    epoch_start: SeqNo,
    /// Highest extended output sent so far.
    highest_out: Option<SeqNo>,
    /// The next input starts a new epoch (after [`SeqManager::sync`]).
    resync: bool,
    /// Output value of the very first packet.
    initial_out: u16,
    /// The offsets before this epoch's drops, once it has any: for packets
    /// that arrive late and for NACKs of what was sent before.
    history: Option<Box<OffsetHistory>>,
}

/// The offsets (output − input) a stream of extended counters had, newest
/// last: each from its first input on. A counter left out moves the ones
/// after it down by one; what came before keeps its offset. Kept for the
/// last [`OffsetHistory::LEN`] changes (consecutive drops make one).
#[derive(Debug, Clone, Default)]
pub(crate) struct OffsetHistory {
    /// (first input, offset), inputs ascending. Each offset is one lower
    /// than the one before it per input left out right before its first.
    regimes: std::collections::VecDeque<(u64, i64)>,
}

impl OffsetHistory {
    /// Changes kept: at 30 frames/s with every other frame left out, about
    /// two seconds, longer than a NACK is answered for.
    pub(crate) const LEN: usize = 32;

    /// Starts over: from `first` on, `offset`.
    pub(crate) fn reset(&mut self, first: u64, offset: i64) {
        self.regimes.clear();
        self.regimes.push_back((first, offset));
    }

    /// Whether input `ext` was left out (so has no output of its own).
    pub(crate) fn was_left_out(&self, ext: u64) -> bool {
        let r = &self.regimes;
        r.iter()
            .zip(r.iter().skip(1))
            .any(|((_, before), (first, off))| {
                let n = (before - off) as u64;
                ext < *first && ext + n >= *first
            })
    }

    /// The current offset (that of the newest input).
    pub(crate) fn current(&self) -> i64 {
        self.regimes.back().map_or(0, |r| r.1)
    }

    /// The offset input `ext` had (the oldest kept, for one older still).
    pub(crate) fn offset_at(&self, ext: u64) -> i64 {
        self.regimes
            .iter()
            .rev()
            .find(|(first, _)| *first <= ext)
            .or(self.regimes.front())
            .map_or(0, |r| r.1)
    }

    /// The input that was sent as output `ext_out`.
    pub(crate) fn input_of(&self, ext_out: u64) -> u64 {
        let off = self
            .regimes
            .iter()
            .rev()
            .find(|(first, off)| (*first as i64 + off) as u64 <= ext_out)
            .or(self.regimes.front())
            .map_or(0, |r| r.1);
        (ext_out as i64 - off) as u64
    }

    /// Input `ext` is left out: the inputs after it map one lower. One
    /// before the newest change (late, or left out already) changes
    /// nothing. Returns whether it changed the mapping.
    pub(crate) fn leave_out(&mut self, ext: u64) -> bool {
        let Some(&(first, off)) = self.regimes.back() else {
            return false;
        };
        if ext < first {
            return false;
        }
        if ext == first
            && self.regimes.len() > 1
            && let Some(last) = self.regimes.back_mut()
        {
            // Right after the last one left out: one change for both.
            *last = (ext + 1, off - 1);
        } else {
            if self.regimes.len() == Self::LEN {
                self.regimes.pop_front();
            }
            self.regimes.push_back((ext + 1, off - 1));
        }
        true
    }
}

impl SeqManager {
    /// Creates a manager whose first output is `initial_out` (random in production).
    pub fn new(initial_out: u16) -> Self {
        Self {
            offset: 0,
            highest_in: None,
            epoch_start: SeqNo(0),
            highest_out: None,
            resync: true,
            initial_out,
            history: None,
        }
    }

    /// Starts a new epoch: the next input maps to the highest output + 1.
    /// Call on producer switch or resume.
    pub fn sync(&mut self) {
        self.resync = true;
    }

    /// Maps input `seq` to the output sequence number, or `None` when the
    /// packet belongs to a previous epoch (older than the sync point) and must
    /// not be forwarded.
    pub fn input(&mut self, seq: u16) -> Option<u16> {
        let ext_in = if self.resync {
            // Start the extended input domain high enough that older packets
            // of the new epoch still unwrap to a value >= 0.
            let base = self.highest_in.map_or(1 << 32, |h| h.0 + (1 << 20));
            let ext = (base & !0xffff) | seq as u64;
            let next_out = self
                .highest_out
                .map_or(self.initial_out as u64 + (1 << 32), |h| h.0 + 1);
            self.offset = next_out as i64 - ext as i64;
            self.epoch_start = SeqNo(ext);
            self.highest_in = Some(SeqNo(ext));
            self.resync = false;
            self.history = None;
            ext
        } else {
            let h = self.highest_in?.0;
            let ext = SeqNo(h).unwrap(seq).0;
            if ext < self.epoch_start.0 {
                return None;
            }
            if ext > h {
                self.highest_in = Some(SeqNo(ext));
            } else if let Some(hist) = &self.history {
                // Late: the offset it had before later drops; one left out
                // has no number (later ones took its place).
                if hist.was_left_out(ext) {
                    return None;
                }
                let out = (ext as i64 + hist.offset_at(ext)) as u64;
                return Some(out as u16);
            }
            ext
        };
        let out = (ext_in as i64 + self.offset) as u64;
        if self.highest_out.is_none_or(|h| out > h.0) {
            self.highest_out = Some(SeqNo(out));
        }
        Some(out as u16)
    }

    /// Leaves input `seq` out: it gets no output number, and the inputs
    /// after it continue without a gap. Only a packet newer than any seen
    /// counts: one that arrives late, after later ones were sent, keeps
    /// its gap (moving those would renumber what was sent).
    pub fn leave_out(&mut self, seq: u16) {
        let Some(h) = self.highest_in.filter(|_| !self.resync) else {
            return;
        };
        let ext = h.unwrap(seq).0;
        if ext <= h.0 {
            return;
        }
        let (offset, start) = (self.offset, self.epoch_start.0);
        let hist = self.history.get_or_insert_with(|| {
            let mut hist = Box::<OffsetHistory>::default();
            hist.reset(start, offset);
            hist
        });
        if hist.leave_out(ext) {
            self.offset = hist.current();
            self.highest_in = Some(SeqNo(ext));
        }
    }

    /// Maps an output sequence number back to the input one of the current
    /// epoch (for relaying NACKs to the producer).
    pub fn output_to_input(&self, out: u16) -> u16 {
        match (&self.history, self.highest_out) {
            (Some(hist), Some(h)) => hist.input_of(h.unwrap(out).0) as u16,
            _ => (out as i64 - self.offset) as u16,
        }
    }

    /// Like [`SeqManager::output_to_input`], but `None` for an output sent
    /// before the current epoch began (another input, e.g. another
    /// simulcast layer, whose packets this epoch's input cannot replace).
    pub fn output_to_input_in_epoch(&self, out: u16) -> Option<u16> {
        let h = self.highest_out?.0;
        let start = self.epoch_start.0;
        let offset = self
            .history
            .as_ref()
            .map_or(self.offset, |x| x.offset_at(start));
        let first = (start as i64 + offset) as u64;
        let back = u64::from((h as u16).wrapping_sub(out));
        (back <= h.saturating_sub(first)).then(|| self.output_to_input(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each case: (initial_out, steps), a step is Some(seq) = input packet with
    /// the expected output, or None = sync().
    type Step = Option<(u16, Option<u16>)>;

    fn run(initial: u16, steps: &[Step]) {
        let mut m = SeqManager::new(initial);
        for (i, step) in steps.iter().enumerate() {
            match step {
                None => m.sync(),
                Some((input, want)) => {
                    assert_eq!(m.input(*input), *want, "step {i}: input {input}")
                }
            }
        }
    }

    #[test]
    fn table() {
        let cases: &[(&str, u16, &[Step])] = &[
            (
                "gapless",
                100,
                &[
                    Some((5, Some(100))),
                    Some((6, Some(101))),
                    Some((7, Some(102))),
                ],
            ),
            (
                "input wraps at 65535",
                10,
                &[
                    Some((65534, Some(10))),
                    Some((65535, Some(11))),
                    Some((0, Some(12))),
                    Some((1, Some(13))),
                ],
            ),
            (
                "output wraps at 65535",
                65534,
                &[
                    Some((1, Some(65534))),
                    Some((2, Some(65535))),
                    Some((3, Some(0))),
                    Some((4, Some(1))),
                ],
            ),
            (
                "gaps are kept",
                0,
                &[
                    Some((10, Some(0))),
                    Some((13, Some(3))),
                    Some((20, Some(10))),
                ],
            ),
            (
                "reordering is kept",
                0,
                &[
                    Some((10, Some(0))),
                    Some((12, Some(2))),
                    Some((11, Some(1))),
                    Some((13, Some(3))),
                ],
            ),
            (
                "reordering across the input wrap",
                0,
                &[
                    Some((65535, Some(0))),
                    Some((1, Some(2))),
                    Some((0, Some(1))),
                ],
            ),
            (
                "producer switch continues after the highest output",
                500,
                &[
                    Some((1000, Some(500))),
                    Some((1001, Some(501))),
                    None,
                    Some((40000, Some(502))),
                    Some((40001, Some(503))),
                ],
            ),
            (
                "packets older than the switch are dropped",
                0,
                &[
                    Some((7, Some(0))),
                    None,
                    Some((300, Some(1))),
                    Some((299, None)),
                    Some((301, Some(2))),
                ],
            ),
            (
                "switch to a source that wraps right away",
                0,
                &[
                    Some((1, Some(0))),
                    None,
                    Some((65535, Some(1))),
                    Some((0, Some(2))),
                ],
            ),
            (
                "duplicate maps to the same output",
                0,
                &[Some((3, Some(0))), Some((4, Some(1))), Some((4, Some(1)))],
            ),
        ];
        for (name, initial, steps) in cases {
            eprintln!("case: {name}");
            run(*initial, steps);
        }
    }

    #[test]
    fn output_maps_back_to_input() {
        let mut m = SeqManager::new(60000);
        assert_eq!(m.input(100), Some(60000));
        assert_eq!(m.input(6000), Some(364));
        assert_eq!(m.output_to_input(364), 6000);
        assert_eq!(m.output_to_input(60000), 100);
    }

    #[test]
    fn outputs_of_an_earlier_epoch_do_not_map_to_the_current_input() {
        let mut m = SeqManager::new(65534);
        assert_eq!(m.input(10), Some(65534));
        assert_eq!(m.input(11), Some(65535));
        m.sync();
        // Another layer: its 500 continues at 0 (wrapping).
        assert_eq!(m.input(500), Some(0));
        assert_eq!(m.input(501), Some(1));
        assert_eq!(m.output_to_input_in_epoch(0), Some(500));
        assert_eq!(m.output_to_input_in_epoch(1), Some(501));
        assert_eq!(m.output_to_input_in_epoch(65535), None);
        assert_eq!(m.output_to_input_in_epoch(65534), None);
        assert_eq!(m.output_to_input_in_epoch(2), None, "not sent yet");
    }

    #[test]
    fn packets_left_out_leave_no_gap_and_late_ones_keep_their_numbers() {
        let mut m = SeqManager::new(65533);
        assert_eq!(m.input(100), Some(65533));
        // 101 and 102 left out (one frame), 104 lost for now.
        m.leave_out(101);
        m.leave_out(102);
        assert_eq!(m.input(103), Some(65534));
        m.leave_out(105);
        assert_eq!(m.input(106), Some(0), "across the output wrap");
        // 104 arrives late: the number it would have had then.
        assert_eq!(m.input(104), Some(65535));
        // A late packet left out, or one already passed: no change.
        m.leave_out(102);
        m.leave_out(104);
        assert_eq!(m.input(107), Some(1));
        // A copy of one left out, arriving late, gets no number: 103 and
        // 106 have those it would have had.
        assert_eq!(m.input(101), None);
        assert_eq!(m.input(102), None);
        assert_eq!(m.input(105), None);
        assert_eq!(m.input(103), Some(65534));
        // NACKs map back past the changes.
        assert_eq!(m.output_to_input(65533), 100);
        assert_eq!(m.output_to_input(65534), 103);
        assert_eq!(m.output_to_input(65535), 104);
        assert_eq!(m.output_to_input(0), 106);
        assert_eq!(m.output_to_input(1), 107);
        assert_eq!(m.output_to_input_in_epoch(65533), Some(100));
        assert_eq!(m.output_to_input_in_epoch(1), Some(107));
        // A new epoch forgets them.
        m.sync();
        assert_eq!(m.input(9000), Some(2));
        assert_eq!(m.output_to_input(2), 9000);
        assert_eq!(m.output_to_input_in_epoch(1), None);
    }
}
