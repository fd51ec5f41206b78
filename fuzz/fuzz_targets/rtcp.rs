//! Compound RTCP walking and the packet readers the router uses.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sfu_core::proto::rtcp::{self, RtcpIter, SenderInfo};
use sfu_core::proto::twcc;

fuzz_target!(|data: &[u8]| {
    let _ = rtcp::is_well_formed(data);
    for p in RtcpIter::new(data) {
        let _ = p.sender_ssrc();
        let _ = p.media_ssrc();
        let _ = SenderInfo::parse(&p);
        let _ = p.fir_ssrcs().count();
        let _ = rtcp::nack_seqs(&p).take(100_000).count();
        let _ = rtcp::report_blocks(&p).count();
        let _ = rtcp::parse_remb(&p);
        if let Some(fb) = twcc::parse(p.bytes) {
            // What we decode, we can encode again, to the same statuses.
            let mut out = Vec::new();
            if twcc::write(&fb, &mut out) {
                let back = twcc::parse(&out).expect("our own feedback decodes");
                assert_eq!(back.arrivals.len(), fb.arrivals.len());
                assert!(back.arrivals.iter().zip(&fb.arrivals).all(|(a, b)| a.is_some() == b.is_some()));
            }
        }
    }
});
