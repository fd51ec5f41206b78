//! Client signaling messages: JSON, message shape, names.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sfu_sig::protocol::{ClientMsg, parse_client, validate_name};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(ClientMsg::Join { room, name, .. }) = parse_client(text) {
        let _ = validate_name("room", &room);
        let _ = validate_name("name", &name);
    }
});
