//! A transport that receives no valid consent check for the consent timeout
//! closes and reports it (RFC 7675 §5.1); one that keeps refreshing stays.

mod common;

use std::time::Duration;

use common::Net;
use sfu_core::router::{RouterConfig, RouterEvent};
use sfu_core::transport::{CloseReason, TransportTimeouts};

#[test]
fn silent_peer_is_closed_after_the_consent_timeout_and_live_peer_stays() {
    let mut net = Net::with_config(RouterConfig {
        timeouts: TransportTimeouts {
            consent: Duration::from_secs(10),
            ..TransportTimeouts::default()
        },
        ..RouterConfig::default()
    });
    let (live, silent) = (net.add_peer(), net.add_peer());
    net.connect_all();
    while net.router.poll_event().is_some() {}
    let silent_tid = net.peers[silent].transport;
    // The silent peer vanishes: remove it from the network.
    let gone = net.peers.remove(silent);
    net.advance(Duration::from_secs(9));
    assert!(
        net.router.transport(silent_tid).is_some(),
        "still within the timeout"
    );
    net.advance(Duration::from_secs(2));
    assert!(
        net.router.transport(silent_tid).is_none(),
        "closed after 10 s of silence"
    );
    assert_eq!(
        net.router.poll_event(),
        Some(RouterEvent::TransportClosed(
            silent_tid,
            CloseReason::ConsentExpired
        ))
    );
    assert!(
        net.router.transport(net.peers[live].transport).is_some(),
        "live peer refreshes consent"
    );
    net.advance(Duration::from_secs(30));
    assert!(net.router.transport(net.peers[live].transport).is_some());
    drop(gone);
}

#[test]
fn transport_that_never_completes_ice_is_closed() {
    let mut net = Net::new();
    net.add_peer_with(
        "serverpassword-0123456789",
        None,
        Some("wrong-wrong-wrong-wrong-"),
        None,
    );
    let tid = net.peers[0].transport;
    net.advance(Duration::from_secs(16));
    assert!(net.router.transport(tid).is_none());
    assert_eq!(
        net.router.poll_event(),
        Some(RouterEvent::TransportClosed(tid, CloseReason::IceTimeout))
    );
}

#[test]
fn transport_whose_dtls_never_completes_is_closed() {
    let mut net = Net::new();
    net.add_peer();
    let tid = net.peers[0].transport;
    // ICE completes with a hand-made check; no DTLS ClientHello ever comes.
    net.raw_check(0, "serverpassword-0123456789", |_| {});
    let gone = net.peers.remove(0);
    net.advance(Duration::from_secs(14));
    assert!(
        net.router.transport(tid).is_some(),
        "still within the 15 s DTLS timeout"
    );
    net.advance(Duration::from_secs(2));
    assert!(net.router.transport(tid).is_none());
    assert_eq!(
        net.router.poll_event(),
        Some(RouterEvent::TransportClosed(tid, CloseReason::DtlsTimeout))
    );
    drop(gone);
}
