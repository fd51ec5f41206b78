//! A WHIP or WHEP POST body -> the checks before it reaches a room, and the
//! offer the server makes for an RTMP stream from what parsed.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sfu_sig::whip::{Endpoint, check_offer};

fuzz_target!(|data: &[u8]| {
    let Some((sel, body)) = data.split_first() else {
        return;
    };
    let endpoint = if sel & 1 == 0 { Endpoint::Whip } else { Endpoint::Whep };
    if let Ok(text) = check_offer(endpoint, body) {
        let offer = sfu_sig::sdp::parse(&text).expect("parsed once already");
        for m in &offer.media {
            let _ = m.preferred_codec();
            let _ = m.publication();
        }
    }
});
