//! SDP offer -> parameters, and writing an answer from what parsed.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sfu_sig::sdp;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(offer) = sdp::parse(text) else { return };
    if sdp::validate_offer(&offer).is_err() {
        return;
    }
    for m in &offer.media {
        let _ = m.preferred_codec();
    }
});
