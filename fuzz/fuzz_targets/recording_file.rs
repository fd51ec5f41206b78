//! A recording file (`sfu_sig::recording::file`) as mux and playback read
//! it: the header, then every record, however the bytes are cut or forged.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sfu_sig::recording::file::Reader;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = Reader::new(data) {
        let mut n = 0usize;
        for rec in r {
            n += rec.data.len();
        }
        std::hint::black_box(n);
    }
});
