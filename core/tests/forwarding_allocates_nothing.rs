//! The packet path allocates nothing in steady state: 10,000 SRTP packets
//! forwarded 1→10 through a router (decrypt once, rewrite and encrypt ten
//! copies, hand the buffers back after "sending") with a global allocator
//! that counts every allocation made on this thread while it is switched on.

#![expect(
    unsafe_code,
    reason = "a counting GlobalAlloc that delegates to the system allocator"
)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::SocketAddr;
use std::time::Instant;

use common::{Net, rtp};
use sfu_core::router::{MediaKind, Router};

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    if COUNTING.with(Cell::get) {
        ALLOCATIONS.with(|a| a.set(a.get() + 1));
    }
}

// SAFETY: every call is passed on unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// One datagram into the router, through `recv` (as the driver's receive
/// buffer: decrypted in place), and its ten copies out and back to the pool.
fn forward(
    router: &mut Router,
    now: Instant,
    from: SocketAddr,
    datagram: &[u8],
    recv: &mut [u8; 2048],
) -> usize {
    let buf = &mut recv[..datagram.len()];
    buf.copy_from_slice(datagram);
    router.handle_datagram(now, from, buf);
    let mut copies = 0;
    while let Some(t) = router.poll_transmit() {
        copies += 1;
        router.recycle(t.data);
    }
    copies
}

#[test]
fn ten_thousand_packets_one_to_ten_allocate_nothing() {
    let mut net = Net::new();
    let publisher = net.add_peer();
    let subscribers: Vec<usize> = (0..10).map(|_| net.add_peer()).collect();
    net.connect_all();
    let producer = net.produce(publisher, MediaKind::Video, 1111, 96);
    for (i, s) in subscribers.iter().enumerate() {
        net.consume(*s, producer, 2000 + i as u32, (96, 96));
    }
    net.step();

    // The publisher's SRTP datagrams, made before anything is counted.
    let mut datagrams = Vec::new();
    for i in 0..10_200u32 {
        let pkt = rtp(96, i as u16, i * 3000, 1111, &[0xab; 1100]);
        assert!(net.peers[publisher].client.send_rtp(&pkt));
        while let Some(d) = net.peers[publisher].client.poll_transmit() {
            datagrams.push(d);
        }
    }
    let (from, now) = (net.peers[publisher].addr, net.now);
    let (warm_up, measured) = datagrams.split_at(200);
    let mut recv = [0u8; 2048];
    for d in warm_up {
        forward(&mut net.router, now, from, d, &mut recv);
    }

    COUNTING.with(|c| c.set(true));
    let mut copies = 0;
    for d in measured {
        copies += forward(&mut net.router, now, from, d, &mut recv);
    }
    COUNTING.with(|c| c.set(false));

    let allocations = ALLOCATIONS.with(Cell::get);
    assert_eq!(copies, 10 * measured.len(), "every packet reached all ten");
    assert_eq!(
        allocations,
        0,
        "{allocations} allocations while forwarding {} packets to 10 subscribers",
        measured.len()
    );
}
