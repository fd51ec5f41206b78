//! No RTP is accepted before ICE and DTLS complete; SRTP with a bad tag and
//! replayed SRTP are dropped and counted (RFC 3711 §3.3).

mod common;

use common::{Net, rtp};
use sfu_core::router::MediaKind;
use sfu_core::stats::DropReason;

#[test]
fn rtp_before_dtls_is_dropped() {
    let mut net = Net::new();
    let p = net.add_peer();
    net.raw_check(p, "serverpassword-0123456789", |_| {}); // ICE done, DTLS not started
    let (now, from) = (net.now, net.peers[p].addr);
    let pkt = rtp(96, 1, 1, 1, &[0u8; 40]);
    net.router.handle_datagram(now, from, &mut pkt.to_vec());
    assert_eq!(net.counters().drops(DropReason::NotConnected), 1);
    // From an address ICE never selected: unknown address.
    net.router
        .handle_datagram(now, "127.0.0.1:1".parse().expect("addr"), &mut pkt.to_vec());
    assert_eq!(net.counters().drops(DropReason::UnknownAddress), 1);
    assert_eq!(net.counters().rtp_forwarded.get(), 0);
}

fn connected_pair() -> Net {
    let mut net = Net::new();
    let (a, b) = (net.add_peer(), net.add_peer());
    net.connect_all();
    let prod = net.produce(a, MediaKind::Audio, 5, 111);
    net.consume(b, prod, 6, (111, 111));
    net
}

#[test]
fn srtp_with_a_bad_auth_tag_is_dropped() {
    let mut net = connected_pair();
    assert!(net.peers[0].client.send_rtp(&rtp(111, 1, 0, 5, b"hello")));
    let mut d = net.peers[0].client.poll_transmit().expect("srtp").to_vec();
    let last = d.len() - 1;
    d[last] ^= 0x01;
    let (now, from) = (net.now, net.peers[0].addr);
    net.router.handle_datagram(now, from, &mut d.to_vec());
    assert_eq!(net.counters().drops(DropReason::SrtpAuth), 1);
    net.step();
    assert!(net.peers[1].rtp.is_empty());
}

#[test]
fn replayed_srtp_is_dropped() {
    let mut net = connected_pair();
    assert!(net.peers[0].client.send_rtp(&rtp(111, 1, 0, 5, b"hello")));
    let d = net.peers[0].client.poll_transmit().expect("srtp");
    let (now, from) = (net.now, net.peers[0].addr);
    net.router.handle_datagram(now, from, &mut d.to_vec());
    net.router.handle_datagram(now, from, &mut d.to_vec());
    assert_eq!(net.counters().drops(DropReason::Replay), 1);
    net.step();
    assert_eq!(net.peers[1].rtp.len(), 1, "forwarded once");
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// Found by the `router` and `srtp_unprotect` fuzz targets: an RTP header
/// extension element longer than the datagram made webrtc-srtp's header
/// parser panic, which would have taken down the worker and every room on it.
#[test]
fn rtp_with_an_overflowing_header_extension_is_dropped_not_a_panic() {
    let mut net = connected_pair();
    let crashes = [
        hex("906f35237d18cbc337e41390bede000322eb8f74a5d800035380e06a0714fe065ff16d3173"),
        hex("90ef35207d18c0ffffffff90bede000378c17878787878787878787878ad7978"),
    ];
    let (now, from) = (net.now, net.peers[0].addr);
    for d in &crashes {
        net.router.handle_datagram(now, from, &mut d.to_vec());
    }
    assert_eq!(net.counters().drops(DropReason::MalformedRtp), 2);
    assert!(
        net.peers[0]
            .client
            .send_rtp(&rtp(111, 1, 0, 5, b"still fine"))
    );
    net.step();
    assert_eq!(net.peers[1].rtp.len(), 1, "the call goes on");
}
