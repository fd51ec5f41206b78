//! Sequence-number continuity for a consumer (RFC 3550 §A.1 unwrapping).
//!
//! A consumer's output sequence numbers must be gapless where the input is
//! gapless, keep the input's gaps and order, and continue without a jump
//! when the consumer switches to another input (producer switch, resume).

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
            ext
        } else {
            let h = self.highest_in?.0;
            let ext = SeqNo(h).unwrap(seq).0;
            if ext < self.epoch_start.0 {
                return None;
            }
            if ext > h {
                self.highest_in = Some(SeqNo(ext));
            }
            ext
        };
        let out = (ext_in as i64 + self.offset) as u64;
        if self.highest_out.is_none_or(|h| out > h.0) {
            self.highest_out = Some(SeqNo(out));
        }
        Some(out as u16)
    }

    /// Maps an output sequence number back to the input one of the current
    /// epoch (for relaying NACKs to the producer).
    pub fn output_to_input(&self, out: u16) -> u16 {
        (out as i64 - self.offset) as u16
    }

    /// Like [`SeqManager::output_to_input`], but `None` for an output sent
    /// before the current epoch began (another input, e.g. another
    /// simulcast layer, whose packets this epoch's input cannot replace).
    pub fn output_to_input_in_epoch(&self, out: u16) -> Option<u16> {
        let h = self.highest_out?.0;
        let first = (self.epoch_start.0 as i64 + self.offset) as u64;
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
}
