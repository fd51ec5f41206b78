//! STUN parsing and verification, server and client side.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sfu_core::proto::stun;

fuzz_target!(|data: &[u8]| {
    let _ = stun::peek_local_ufrag(data);
    // The Chromium fixture's credentials, so seeds verify and mutations go deep.
    let _ = stun::verify_binding_request(data, "0rdp", "2wCUJ6GfzJauAqu9b8iPmNvl");
    let _ = stun::verify_binding_success(data, "GwyxuLjKzjY5Oxo4kcEXKM7f");
});
