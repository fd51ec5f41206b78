//! Truncated and random datagrams of every class, from a stranger and from a
//! connected peer, are dropped and counted; nothing panics and the call goes on.

mod common;

use common::{Net, rtp};
use sfu_core::router::MediaKind;
use sfu_core::stats::DropReason;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/packets");

fn lcg(seed: &mut u32) -> u8 {
    *seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
    (*seed >> 16) as u8
}

#[test]
fn garbage_of_every_class_is_dropped_and_the_call_continues() {
    let mut net = Net::new();
    let (a, b) = (net.add_peer(), net.add_peer());
    net.connect_all();
    let prod = net.produce(a, MediaKind::Video, 10, 96);
    net.consume(b, prod, 20, (96, 96));
    net.step();

    let mut samples: Vec<Vec<u8>> = Vec::new();
    // Real Chromium datagrams, truncated at every 7th length. A missing
    // testdata folder fails the test rather than shrinking it.
    let dir = std::fs::read_dir(FIXTURES).unwrap_or_else(|e| panic!("{FIXTURES}: {e}"));
    for e in dir.flatten() {
        let d = std::fs::read(e.path()).unwrap_or_else(|err| panic!("{:?}: {err}", e.path()));
        for n in (0..d.len()).step_by(7) {
            samples.push(d[..n].to_vec());
        }
        samples.push(d);
    }
    assert!(
        samples.len() > 100,
        "testdata/packets holds the captured datagrams"
    );
    // Random bytes behind each class's first byte.
    let mut seed = 7;
    for first in [0u8, 1, 3, 20, 22, 63, 128, 0x80, 0x90, 0xbf, 200, 255] {
        for len in [1usize, 2, 4, 12, 13, 20, 28, 100, 1200] {
            let mut d: Vec<u8> = (0..len).map(|_| lcg(&mut seed)).collect();
            d[0] = first;
            if len > 1 && first >= 128 {
                d[1] = [96u8, 200, 201, 205, 206][len % 5];
            }
            samples.push(d);
        }
    }
    let stranger = "127.0.0.1:9".parse().expect("addr");
    let now = net.now;
    for d in &samples {
        net.router.handle_datagram(now, stranger, &mut d.to_vec());
        net.router
            .handle_datagram(now, net.peers[a].addr, &mut d.to_vec());
    }
    let c = net.counters();
    let dropped: u64 = DropReason::ALL.iter().map(|r| c.drops(*r)).sum();
    assert!(
        dropped >= samples.len() as u64,
        "every stranger datagram counted: {dropped}"
    );
    assert!(c.drops(DropReason::UnknownAddress) > 0);
    assert!(c.drops(DropReason::BadStun) > 0);
    assert!(c.drops(DropReason::SrtpAuth) + c.drops(DropReason::MalformedRtp) > 0);
    assert!(c.drops(DropReason::UnknownProtocol) > 0);
    net.step();

    // The call still works.
    let before = net.peers[b].rtp.len();
    assert!(
        net.peers[a]
            .client
            .send_rtp(&rtp(96, 500, 0, 10, b"still here"))
    );
    net.step();
    assert_eq!(net.peers[b].rtp.len(), before + 1);
}
