//! RTP header parsing, extension lookup, the consumer rewrite, and RTX
//! wrapping and unwrapping (RFC 4588).
#![no_main]
use libfuzzer_sys::fuzz_target;
use sfu_core::proto::rtp::{Rewrite, RtpHeader, unwrap_rtx, write_forwarded};
use sfu_core::{Mid, Pt, Ssrc};

fuzz_target!(|data: &[u8]| {
    let Some(h) = RtpHeader::parse(data) else { return };
    for id in 0..16 {
        let _ = h.extension(data, id);
    }
    let rw = Rewrite {
        ssrc: Ssrc(1),
        pt: Pt(96),
        seq: 2,
        timestamp: 3,
        mid: Mid::new("s1").map(|m| (4, m)),
        twcc: Some((5, 0x1234)),
        audio_level: Some((1, 0x7f)),
        abs_send_time: Some((3, 0x00ab_cdef)),
        // Up to 20 bytes of the input: over 16 makes the block two-byte.
        dependency_descriptor: Some((12, &data[..data.len().min(20)])),
        osn: None,
    };
    let mut out = Vec::new();
    write_forwarded(data, &h, &rw, &mut out);
    let o = RtpHeader::parse(&out).expect("our own output parses");
    assert_eq!(&out[o.header_len..], &data[h.header_len..], "payload kept");
    // As RTX and back: the original payload again.
    let rtx = Rewrite { osn: Some(7), ..rw };
    write_forwarded(data, &h, &rtx, &mut out);
    let r = RtpHeader::parse(&out).expect("our own RTX parses");
    let mut back = Vec::new();
    if let Some(osn) = unwrap_rtx(&out, &r, Ssrc(9), Pt(96), &mut back) {
        assert_eq!(osn, 7);
        let b = RtpHeader::parse(&back).expect("unwrapped parses");
        assert_eq!(&back[b.header_len..], &data[h.header_len..]);
    }
    let _ = unwrap_rtx(data, &h, Ssrc(9), Pt(96), &mut back);
});
