//! DTLS record handling inside a WebRtcTransport: after a valid ICE check
//! selects the address, every datagram of the input goes to the transport.
//! Input: a sequence of (u16 big-endian length, bytes) datagrams.
#![no_main]
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use sfu_core::proto::dtls::{Certificate, DtlsRole, default_config};
use sfu_core::proto::stun;
use sfu_core::transport::{TransportParams, TransportTimeouts, WebRtcTransport};

static CERT: OnceLock<Certificate> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let cert = CERT.get_or_init(|| Certificate::generate().expect("cert"));
    let now = Instant::now();
    let params = TransportParams {
        local_ufrag: "fuzz".into(),
        local_pwd: "fuzz-password-0123456789".into(),
        remote_fingerprint: [0x42; 32],
        dtls_role: DtlsRole::Server,
        sctp_max_message_size: Some(0),
    };
    let mut t = WebRtcTransport::new(params, TransportTimeouts::default(), cert, default_config(), now);
    let from = "127.0.0.1:5000".parse().expect("addr");
    let mut buf = [0u8; 256];
    let n = stun::encode_binding_request([1; 12], "fuzz", "peer", "fuzz-password-0123456789", true, &mut buf)
        .expect("encode");
    t.handle_datagram(now, from, &mut buf[..n]).expect("valid check");
    let mut rest = data;
    let mut step = 0u64;
    while rest.len() >= 2 {
        let len = (u16::from_be_bytes([rest[0], rest[1]]) as usize).min(rest.len() - 2);
        let (d, r) = rest[2..].split_at(len);
        rest = r;
        step += 1;
        let at = now + Duration::from_millis(step * 10);
        let _ = t.handle_datagram(at, from, &mut d.to_vec());
        t.handle_timeout(at);
        while t.poll_transmit().is_some() {}
        while t.poll_event().is_some() {}
    }
});
