//! Reading a bitstream's syntax elements, most significant bit first: an
//! H.264 SPS's RBSP (ITU-T H.264 §7.2), an AV1 sequence header (AV1
//! specification §4.10).

/// Reads `data` bit by bit, most significant first.
#[derive(Debug, Clone)]
pub struct BitReader<'a> {
    data: &'a [u8],
    bit: usize,
}

impl<'a> BitReader<'a> {
    /// A reader at the first bit of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, bit: 0 }
    }

    /// The next `n` (at most 32) bits as an unsigned number (H.264
    /// `u(n)`, AV1 `f(n)`); `None` past the end.
    pub fn bits(&mut self, n: u32) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            let byte = *self.data.get(self.bit / 8)?;
            v = (v << 1) | u32::from((byte >> (7 - self.bit % 8)) & 1);
            self.bit += 1;
        }
        Some(v)
    }

    /// An unsigned Exp-Golomb code: H.264 `ue(v)` (§9.1), which is AV1's
    /// `uvlc()` (§4.10.3); at most 31 leading zeros, else `None`.
    pub fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bits(1)? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        let rest = self.bits(zeros)?;
        ((1u64 << zeros) - 1 + u64::from(rest)).try_into().ok()
    }

    /// A signed Exp-Golomb code, H.264 `se(v)` (§9.1.1).
    pub fn se(&mut self) -> Option<i64> {
        let k = i64::from(self.ue()?);
        Some(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_and_exp_golomb_codes() {
        // 1 | 010 (ue 1) | 011 (ue 2 = se -1) | 00100 (ue 3 = se 2)
        let mut r = BitReader::new(&[0b1010_0110, 0b0100_0000]);
        assert_eq!(r.bits(1), Some(1));
        assert_eq!(r.ue(), Some(1));
        assert_eq!(r.se(), Some(-1));
        assert_eq!(r.se(), Some(2));
        assert_eq!(r.bits(8), None, "past the end");
    }
}
