//! RFC 7983 demultiplexing of any datagram.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sfu_core::proto::demux::classify;

fuzz_target!(|data: &[u8]| {
    let _ = classify(data);
});
