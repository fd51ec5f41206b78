//! A Router with two connected peers and a forwarding consumer, fed
//! arbitrary datagrams from a peer's address and from a stranger's; the call
//! must still forward afterwards.
//! Input: a sequence of (u8 source, u16 big-endian length, bytes).
#![no_main]
use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use sfu_core::router::MediaKind;
use sfu_core::testing::{Net, rtp};

thread_local! {
    // A Router is its worker thread's (an SCTP association is not Send).
    static NET: RefCell<Option<(Net, u16)>> = const { RefCell::new(None) };
}

fuzz_target!(|data: &[u8]| NET.with_borrow_mut(|guard| {
    let (net, seq) = guard.get_or_insert_with(|| {
        let mut net = Net::new();
        let (a, b) = (net.add_peer(), net.add_peer());
        net.connect_all();
        let p = net.produce(a, MediaKind::Video, 10, 96);
        net.consume(b, p, 20, (96, 96));
        net.step();
        (net, 0)
    });
    let stranger = "127.0.0.1:9".parse().expect("addr");
    let mut rest = data;
    while rest.len() >= 3 {
        let src = rest[0];
        let len = (u16::from_be_bytes([rest[1], rest[2]]) as usize).min(rest.len() - 3);
        let (d, r) = rest[3..].split_at(len);
        rest = r;
        let from = if src & 1 == 0 { net.peers[0].addr } else { stranger };
        let now = net.now;
        net.router.handle_datagram(now, from, &mut d.to_vec());
        while net.router.poll_transmit().is_some() {}
    }
    // Valid media still flows.
    *seq = seq.wrapping_add(1);
    let before = net.peers[1].rtp.len();
    assert!(net.peers[0].client.send_rtp(&rtp(96, *seq, 0, 10, b"ok")));
    net.step();
    assert_eq!(net.peers[1].rtp.len(), before + 1, "forwarding survived the input");
    net.peers[1].rtp.clear();
    net.peers[0].rtcp.clear();
}));
