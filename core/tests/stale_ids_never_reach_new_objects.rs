//! Ids are never reused within a router: a transport or consumer id held by
//! the control plane after its object went away (a timeout raced with a new
//! join) finds nothing, and never the object that took its slab slot.

mod common;

use common::{Net, rtp};
use sfu_core::Error;
use sfu_core::router::MediaKind;

#[test]
fn a_stale_transport_or_consumer_id_does_not_touch_the_newcomer() {
    let mut net = Net::new();
    let (alice, bob) = (net.add_peer(), net.add_peer());
    net.connect_all();
    let producer = net.produce(alice, MediaKind::Video, 1111, 96);
    let bob_consumer = net.consume(bob, producer, 2222, (96, 96));
    net.step();

    // Bob's transport goes away (as on a consent timeout), with his consumer.
    let bob_transport = net.peers[bob].transport;
    net.router.close_transport(bob_transport).expect("close");

    // Carol joins and takes the freed slab slots.
    let carol = net.add_peer();
    net.connect_all();
    let carol_consumer = net.consume(carol, producer, 3333, (96, 96));
    assert_ne!(
        net.peers[carol].transport, bob_transport,
        "new transport id"
    );
    assert_ne!(carol_consumer, bob_consumer, "new consumer id");

    // The control plane, late, acts on Bob's old ids: nothing happens to Carol.
    assert!(matches!(
        net.router.close_transport(bob_transport),
        Err(Error::UnknownTransport(_))
    ));
    let now = net.now;
    assert!(matches!(
        net.router.set_consumer_paused(now, bob_consumer, true),
        Err(Error::UnknownConsumer(_))
    ));
    assert!(net.router.transport(net.peers[carol].transport).is_some());

    net.step();
    net.peers[carol].rtp.clear();
    for i in 0..10u16 {
        let pkt = rtp(96, 100 + i, 9000 * u32::from(i), 1111, b"payload");
        assert!(net.peers[alice].client.send_rtp(&pkt));
    }
    net.step();
    assert_eq!(net.peers[carol].rtp.len(), 10, "carol still receives");
}
