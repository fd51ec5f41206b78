//! RTP header parsing, extension lookup and the consumer rewrite.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sfu_core::proto::rtp::{Rewrite, RtpHeader, write_forwarded};
use sfu_core::{Mid, Pt, Ssrc};

fuzz_target!(|data: &[u8]| {
    let Some(h) = RtpHeader::parse(data) else { return };
    for id in 0..16 {
        let _ = h.extension(data, id);
    }
    let rw = Rewrite { ssrc: Ssrc(1), pt: Pt(96), seq: 2, timestamp: 3, mid: Mid::new("s1").map(|m| (4, m)) };
    let mut out = Vec::new();
    write_forwarded(data, &h, &rw, &mut out);
    let o = RtpHeader::parse(&out).expect("our own output parses");
    assert_eq!(&out[o.header_len..], &data[h.header_len..], "payload kept");
});
