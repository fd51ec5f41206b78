//! RFC 4571 framing: each packet on a TCP stream is preceded by its length
//! as a 16-bit big-endian number. ICE-TCP (RFC 6544 §3) carries STUN,
//! DTLS, RTP and RTCP this way. Sans-IO: the IO layer appends what `read`
//! gave and takes whole frames out, however the stream was cut.

/// The largest frame RFC 4571 can carry, bytes.
pub const MAX_FRAME: usize = u16::MAX as usize;

/// Why a stream is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FramingError {
    /// A frame longer than the decoder's limit was announced.
    #[error("a {0}-byte frame is over the limit")]
    TooLong(usize),
}

/// Reassembles frames from a byte stream. Holds at most one frame and its
/// 2-byte length: its buffer starts small and grows to the longest frame
/// allowed only when one is announced.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    /// Bytes of `buf` that hold stream data.
    filled: usize,
    /// Where the next frame starts in `buf`.
    start: usize,
    max: usize,
}

impl FrameDecoder {
    /// A decoder taking frames of at most `max` bytes (at most
    /// [`MAX_FRAME`]).
    pub fn new(max: usize) -> Self {
        Self {
            buf: vec![0; 2048],
            filled: 0,
            start: 0,
            max: max.min(MAX_FRAME),
        }
    }

    /// Changes the limit (a connection bound to a transport may carry
    /// larger frames than one not yet known).
    pub fn set_max(&mut self, max: usize) {
        self.max = max.min(MAX_FRAME);
    }

    /// Where the next `read` should write: free space after the data held
    /// (never empty).
    pub fn spare(&mut self) -> &mut [u8] {
        self.compact();
        if self.filled == self.buf.len() {
            // A frame bigger than the buffer is being read (it was checked
            // against the limit when its length arrived).
            let want = (self.buf.len() * 2).min(self.max + 2);
            self.buf.resize(want.max(self.buf.len() + 1), 0);
        }
        &mut self.buf[self.filled..]
    }

    /// Records that `n` bytes were written into [`FrameDecoder::spare`].
    pub fn filled(&mut self, n: usize) {
        self.filled = (self.filled + n).min(self.buf.len());
    }

    /// Appends `data` (for callers that do not read in place).
    pub fn push(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let spare = self.spare();
            let n = spare.len().min(data.len());
            spare[..n].copy_from_slice(&data[..n]);
            self.filled(n);
            data = &data[n..];
        }
    }

    /// The next whole frame, if one has arrived, to decrypt in place.
    ///
    /// Errors: [`FramingError::TooLong`] when the next frame announces more
    /// than the limit; the stream cannot be read further.
    pub fn next_frame(&mut self) -> Result<Option<&mut [u8]>, FramingError> {
        let held = &self.buf[self.start..self.filled];
        if held.len() < 2 {
            return Ok(None);
        }
        let len = usize::from(u16::from_be_bytes([held[0], held[1]]));
        if len > self.max {
            return Err(FramingError::TooLong(len));
        }
        if held.len() < 2 + len {
            // Make room for the rest of it.
            if self.buf.len() < 2 + len {
                self.compact();
                self.buf.resize(2 + len, 0);
            }
            return Ok(None);
        }
        let from = self.start + 2;
        self.start = from + len;
        Ok(Some(&mut self.buf[from..from + len]))
    }

    /// Bytes held: a partial frame (or frames not taken yet).
    pub fn pending(&self) -> usize {
        self.filled - self.start
    }

    fn compact(&mut self) {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.filled, 0);
            self.filled -= self.start;
            self.start = 0;
        }
    }
}

/// Writes `frame` with its RFC 4571 length into `out`. Returns false (and
/// writes nothing) for a frame over [`MAX_FRAME`].
pub fn encode(frame: &[u8], out: &mut Vec<u8>) -> bool {
    let Ok(len) = u16::try_from(frame.len()) else {
        return false;
    };
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(frame);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(d: &mut FrameDecoder) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Ok(Some(f)) = d.next_frame() {
            out.push(f.to_vec());
        }
        out
    }

    #[test]
    fn coalesced_and_split_frames_come_out_whole_and_in_order() {
        let mut stream = Vec::new();
        let sent: Vec<Vec<u8>> = (0..50u8)
            .map(|i| vec![i; 1 + usize::from(i) * 37])
            .collect();
        for f in &sent {
            assert!(encode(f, &mut stream));
        }
        // Every way of cutting the stream gives the same frames.
        for cut in [1, 2, 3, 7, 100, 1500, stream.len()] {
            let mut d = FrameDecoder::new(MAX_FRAME);
            let mut got = Vec::new();
            for chunk in stream.chunks(cut) {
                d.push(chunk);
                got.extend(frames(&mut d));
            }
            assert_eq!(got, sent, "cut {cut}");
            assert_eq!(d.pending(), 0);
        }
    }

    #[test]
    fn a_frame_over_the_limit_is_refused_and_a_big_one_under_it_grows_the_buffer() {
        let mut d = FrameDecoder::new(1500);
        d.push(&[0xff, 0xff]);
        assert_eq!(d.next_frame(), Err(FramingError::TooLong(65535)));
        let mut d = FrameDecoder::new(MAX_FRAME);
        let big = vec![9u8; MAX_FRAME];
        let mut s = Vec::new();
        assert!(encode(&big, &mut s));
        d.push(&s[..1000]);
        assert_eq!(d.next_frame(), Ok(None), "partial");
        d.push(&s[1000..]);
        assert_eq!(
            d.next_frame().expect("ok").map(|f| f.len()),
            Some(MAX_FRAME)
        );
        assert!(!encode(&vec![0; MAX_FRAME + 1], &mut s));
    }

    #[test]
    fn reading_in_place_through_spare() {
        let mut s = Vec::new();
        encode(b"hello", &mut s);
        encode(b"world!", &mut s);
        let mut d = FrameDecoder::new(MAX_FRAME);
        let spare = d.spare();
        spare[..s.len()].copy_from_slice(&s);
        d.filled(s.len());
        assert_eq!(frames(&mut d), vec![b"hello".to_vec(), b"world!".to_vec()]);
    }
}
