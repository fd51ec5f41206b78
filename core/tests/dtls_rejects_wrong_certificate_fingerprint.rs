//! A DTLS peer whose certificate does not hash to the signalled
//! `a=fingerprint` fails the transport (RFC 8122 §5): it never gets SRTP keys
//! and the control plane is told.

mod common;

use common::Net;
use sfu_core::proto::dtls::DtlsError;
use sfu_core::router::RouterEvent;
use sfu_core::stats::DropReason;
use sfu_core::transport::CloseReason;

#[test]
fn peer_with_wrong_certificate_fingerprint_is_closed_and_reported() {
    let mut net = Net::new();
    let good = net.add_peer();
    let bad = net.add_peer_with("serverpassword-0123456789", None, None, Some([0x42; 32]));
    net.advance(std::time::Duration::from_secs(3));
    assert!(
        net.peers[good].client.is_connected(),
        "the honest peer is not affected"
    );
    assert!(!net.peers[bad].client.is_connected());
    let bad_tid = net.peers[bad].transport;
    assert!(net.router.transport(bad_tid).is_none(), "transport removed");
    let mut saw = false;
    while let Some(ev) = net.router.poll_event() {
        if let RouterEvent::TransportClosed(t, CloseReason::DtlsFailed(why)) = ev {
            assert_eq!(t, bad_tid);
            assert_eq!(why, DtlsError::FingerprintMismatch, "{why}");
            saw = true;
        }
    }
    assert!(saw, "closed event with the reason");
    assert!(net.counters().drops(DropReason::Dtls) >= 1);
}
