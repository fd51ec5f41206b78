//! Compound RTCP walking and the packet readers the router uses.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sfu_core::proto::rtcp::{self, RtcpIter, SenderInfo};

fuzz_target!(|data: &[u8]| {
    let _ = rtcp::is_well_formed(data);
    for p in RtcpIter::new(data) {
        let _ = p.sender_ssrc();
        let _ = p.media_ssrc();
        let _ = SenderInfo::parse(&p);
        let _ = p.fir_ssrcs().count();
        let _ = rtcp::nack_seqs(&p).take(100_000).count();
    }
});
