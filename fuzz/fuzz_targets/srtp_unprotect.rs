//! SRTP and SRTCP unprotect of arbitrary bytes, each profile.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sfu_core::proto::srtp::{SrtpProfile, SrtpSession};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let profile = match sel % 3 {
        0 => SrtpProfile::Aes128CmSha1_80,
        1 => SrtpProfile::AeadAes128Gcm,
        _ => SrtpProfile::AeadAes256Gcm,
    };
    let km: Vec<u8> = (0..profile.keying_material_len()).map(|i| i as u8).collect();
    let Ok(mut s) = SrtpSession::new(profile, &km, false) else { return };
    let _ = s.unprotect_rtp(rest);
    let _ = s.unprotect_rtcp(rest);
    // A valid packet after garbage still works.
    let mut c = SrtpSession::new(profile, &km, true).expect("keys");
    let pkt = [0x80, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 7, 1, 2, 3];
    let enc = c.protect_rtp(&pkt).expect("protect");
    if rest != &enc[..] {
        let _ = s.unprotect_rtp(&enc);
    }
});
