//! The kernel's UDP send path, per datagram, three ways: `sendmmsg` of
//! single datagrams, `sendmmsg` with UDP GSO (runs to one destination as
//! one message), and one io_uring submission of `SendMsg` SQEs. Each
//! iteration sends 64 datagrams of 1,200 B from one socket on loopback,
//! either as a fan-out (64 destinations, one each: what one incoming packet
//! makes at 1→64) or as bursts (8 destinations × 8 datagrams: what a
//! batch of a frame's packets makes). Only the sends are timed; the
//! receivers are drained between iterations.
//!
//!     cargo bench -p sfu-bench --bench udp_send
//!
//! Loopback caveat: the receivers' softirq work runs in the sender's
//! context here, so segmenting a GSO message on receive is charged to the
//! send; on a NIC with UDP segmentation offload it is not.

#![expect(
    unsafe_code,
    reason = "measures the send system calls themselves: sendmmsg and io_uring SQEs"
)]

use std::hint::black_box;
use std::mem::MaybeUninit;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use io_uring::{IoUring, opcode, types::Fd};
use sfu_core::io::epoll::SendBatch;

const N: usize = 64;
const SIZE: usize = 1200;

struct Setup {
    tx: UdpSocket,
    rx: Vec<UdpSocket>,
    items: Vec<(SocketAddr, Vec<u8>)>,
}

/// `dests` receivers, `N / dests` datagrams to each, in fan-out order
/// (round robin) — the order the router makes them in.
fn setup(dests: usize) -> Setup {
    let tx = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let rx: Vec<UdpSocket> = (0..dests)
        .map(|_| {
            let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
            s.set_nonblocking(true).expect("nonblocking");
            s
        })
        .collect();
    let items = (0..N)
        .map(|i| {
            let to = rx[i % dests].local_addr().expect("addr");
            (to, vec![i as u8; SIZE])
        })
        .collect();
    Setup { tx, rx, items }
}

fn drain(rx: &[UdpSocket]) {
    let mut buf = [0u8; 2048];
    for s in rx {
        while s.recv(&mut buf).is_ok() {}
    }
}

/// Times `iters` sends of the batch with `send`, draining in between.
fn timed(s: &Setup, iters: u64, mut send: impl FnMut(&Setup) -> usize) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let t = Instant::now();
        let sent = send(s);
        total += t.elapsed();
        assert_eq!(sent, N, "every datagram taken");
        drain(&s.rx);
    }
    total
}

/// One io_uring submission of N `SendMsg` SQEs and a wait for all of them.
struct UringSend {
    ring: IoUring,
    addrs: Vec<libc::sockaddr_in>,
    iovs: Vec<libc::iovec>,
    msgs: Vec<libc::msghdr>,
}

impl UringSend {
    fn new() -> Self {
        // SAFETY: all-zero is valid for these plain C structs.
        let zero_addr = unsafe { MaybeUninit::<libc::sockaddr_in>::zeroed().assume_init() };
        let zero_msg = unsafe { MaybeUninit::<libc::msghdr>::zeroed().assume_init() };
        Self {
            ring: IoUring::new(256).expect("io_uring"),
            addrs: vec![zero_addr; N],
            iovs: vec![
                libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0
                };
                N
            ],
            msgs: vec![zero_msg; N],
        }
    }

    fn send(&mut self, s: &Setup) -> usize {
        for (i, (dest, data)) in s.items.iter().enumerate() {
            let SocketAddr::V4(v4) = dest else {
                panic!("IPv4 only")
            };
            self.addrs[i].sin_family = libc::AF_INET as libc::sa_family_t;
            self.addrs[i].sin_port = v4.port().to_be();
            self.addrs[i].sin_addr.s_addr = u32::from(*v4.ip()).to_be();
            self.iovs[i] = libc::iovec {
                iov_base: data.as_ptr() as *mut libc::c_void,
                iov_len: data.len(),
            };
            let m = &mut self.msgs[i];
            m.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_in).cast();
            m.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
            m.msg_iov = &mut self.iovs[i];
            m.msg_iovlen = 1;
            let sqe = opcode::SendMsg::new(Fd(s.tx.as_raw_fd()), m)
                .build()
                .user_data(i as u64);
            // SAFETY: the msghdr, its iovec, address and payload live until
            // the completions are reaped below.
            unsafe { self.ring.submission().push(&sqe).expect("sq space") };
        }
        self.ring.submit_and_wait(N).expect("submit");
        self.ring.completion().filter(|c| c.result() >= 0).count()
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("udp_send_1200B");
    g.throughput(Throughput::Elements(N as u64));
    for (shape, dests) in [("fanout_64x1", N), ("bursts_8x8", 8)] {
        let s = setup(dests);
        let mut plain = SendBatch::new(false);
        g.bench_function(format!("{shape}/sendmmsg"), |b| {
            b.iter_custom(|iters| {
                timed(&s, iters, |s| {
                    black_box(plain.send(s.tx.as_raw_fd(), &s.items, true)).sent
                })
            })
        });
        let mut gso = SendBatch::new(true);
        assert!(gso.gso(), "this kernel has UDP GSO");
        g.bench_function(format!("{shape}/sendmmsg_gso"), |b| {
            b.iter_custom(|iters| {
                timed(&s, iters, |s| {
                    black_box(gso.send(s.tx.as_raw_fd(), &s.items, true)).sent
                })
            })
        });
        let mut uring = UringSend::new();
        g.bench_function(format!("{shape}/io_uring_sendmsg"), |b| {
            b.iter_custom(|iters| timed(&s, iters, |s| uring.send(s)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
