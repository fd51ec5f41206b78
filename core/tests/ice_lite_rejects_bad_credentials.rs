//! ICE-lite accepts a Binding Request only with the right ufrag, a
//! MESSAGE-INTEGRITY that verifies with the transport's password and a
//! correct FINGERPRINT (RFC 8445 §7.3, RFC 5389 §15.4–15.5).

mod common;

use std::time::Duration;

use common::Net;
use sfu_core::proto::stun;
use sfu_core::stats::DropReason;

const PWD: &str = "serverpassword-0123456789";

#[test]
fn wrong_ice_password_is_dropped_and_never_selects_an_address() {
    let mut net = Net::new();
    let p = net.add_peer_with(PWD, None, Some("not-the-password-0123456"), None);
    net.advance(Duration::from_secs(2));
    assert!(!net.peers[p].client.is_connected());
    assert!(
        net.router
            .transport(net.peers[p].transport)
            .expect("alive")
            .selected()
            .is_none()
    );
    assert!(net.counters().drops(DropReason::BadStun) >= 2);
    assert_eq!(
        net.counters().packets_out.get(),
        0,
        "no response to a bad check"
    );
}

#[test]
fn wrong_ufrag_is_dropped() {
    let mut net = Net::new();
    let p = net.add_peer_with(PWD, Some("nobody"), None, None);
    net.advance(Duration::from_secs(2));
    assert!(!net.peers[p].client.is_connected());
    assert!(net.counters().drops(DropReason::BadStun) >= 2);
}

#[test]
fn bad_stun_fingerprint_is_dropped() {
    let mut net = Net::new();
    let p = net.add_peer();
    net.raw_check(p, PWD, |m| {
        let n = m.len();
        m[n - 2] ^= 0x55;
    });
    assert_eq!(net.counters().drops(DropReason::BadStun), 1);
    assert!(net.router.poll_transmit().is_none());
    assert!(
        net.router
            .transport(net.peers[p].transport)
            .expect("t")
            .selected()
            .is_none()
    );
    // The same request, intact, is answered and selects the address.
    net.raw_check(p, PWD, |_| {});
    let from = net.peers[p].addr;
    let resp = net.router.poll_transmit().expect("a response");
    assert_eq!(resp.dest, from);
    assert!(stun::verify_binding_success(&resp.data, PWD).is_ok());
    assert_eq!(
        net.router
            .transport(net.peers[p].transport)
            .expect("t")
            .selected(),
        Some(from)
    );
}

#[test]
fn client_peer_answers_checks_from_a_full_ice_server() {
    let mut net = Net::new();
    let p = net.add_peer();
    assert!(net.server_check_answered(p));
}
