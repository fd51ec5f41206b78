//! RFC 4571 framing (ICE-TCP): the stream `data` (its first byte picks the
//! frame limit and how the stream is cut) through the decoder. It never
//! panics, never yields a frame over the limit, and what it yields, framed
//! again, is exactly the stream it consumed.
//! Input: (u8 setup, stream bytes).
#![no_main]
use libfuzzer_sys::fuzz_target;
use sfu_core::proto::framing::{FrameDecoder, MAX_FRAME, encode};

fuzz_target!(|data: &[u8]| {
    let Some((&setup, stream)) = data.split_first() else {
        return;
    };
    let max = if setup & 1 == 0 { 1500 } else { MAX_FRAME };
    let cut = usize::from(setup >> 1) + 1;
    let mut d = FrameDecoder::new(max);
    let mut again = Vec::new();
    let mut refused = false;
    'feed: for chunk in stream.chunks(cut) {
        d.push(chunk);
        loop {
            match d.next_frame() {
                Ok(Some(f)) => {
                    assert!(f.len() <= max);
                    assert!(encode(f, &mut again));
                }
                Ok(None) => break,
                Err(_) => {
                    refused = true;
                    break 'feed;
                }
            }
        }
    }
    if !refused {
        // Everything consumed is the frames; the rest is pending.
        assert_eq!(again.len() + d.pending(), stream.len());
        assert_eq!(&stream[..again.len()], &again[..]);
    }
});
