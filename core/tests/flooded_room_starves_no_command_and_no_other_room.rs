//! Fairness of the per-core loop: while one room's port is flooded with
//! garbage at full speed, the same worker answers commands within 500 ms
//! and another room on it keeps forwarding media. The flood is bounded in
//! count and time and stops by itself; the test has a watchdog.

mod udp;

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::unbounded;
use sfu_core::RouterId;
use sfu_core::io::SocketConfig;
use sfu_core::proto::dtls::Certificate;
use sfu_core::stats::DropReason;
use sfu_core::worker::{Command, IoBackend, Worker, WorkerConfig};
use udp::{call, connect_pair, forward, publish_subscribe, with_watchdog};

const WATCHDOG: Duration = Duration::from_secs(90);
const FLOOD_MAX: u64 = 20_000_000;
const FLOOD_TIME: Duration = Duration::from_secs(20);

fn scenario(backend: IoBackend, ports: u16) {
    let server_cert = Certificate::generate().expect("cert");
    let (ev_tx, events) = unbounded();
    let config = WorkerConfig {
        socket: SocketConfig {
            port_min: ports,
            port_max: ports + 99,
            ..SocketConfig::default()
        },
        backend,
        ..WorkerConfig::default()
    };
    let worker = Worker::spawn(0, config, server_cert.clone(), ev_tx).expect("worker starts");
    let flooded = call(&worker, |reply| Command::CreateRouter {
        router: RouterId(1),
        reply,
    });
    let quiet = call(&worker, |reply| Command::CreateRouter {
        router: RouterId(2),
        reply,
    });
    let (mut sides, tids) = connect_pair(
        &worker,
        &events,
        RouterId(2),
        quiet.local_addr,
        &server_cert,
    );
    publish_subscribe(&worker, RouterId(2), &tids);
    assert_eq!(
        forward(&mut sides, 20, Duration::from_secs(10)).len(),
        20,
        "media flows before the flood"
    );

    // Two threads blast garbage at the flooded room as fast as they can.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let blasters: Vec<_> = (0..2)
        .map(|i| {
            let (stop, sent, to) = (stop.clone(), sent.clone(), flooded.local_addr);
            std::thread::spawn(move || {
                let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
                let garbage = [0x80u8 | i, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 7, 1, 2, 3, 4];
                let end = Instant::now() + FLOOD_TIME;
                while !stop.load(Ordering::Relaxed)
                    && Instant::now() < end
                    && sent.load(Ordering::Relaxed) < FLOOD_MAX
                {
                    if s.send_to(&garbage, to).is_ok() {
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    // Wait until the flood really reaches the worker.
    let end = Instant::now() + Duration::from_secs(5);
    while flooded.counters.drops(DropReason::UnknownAddress) < 100_000 {
        assert!(Instant::now() < end, "the flood reached the worker");
        std::thread::sleep(Duration::from_millis(10));
    }

    // Commands are answered quickly, again and again, during the flood.
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let t0 = Instant::now();
        call(&worker, |reply| Command::Ping { reply });
        slowest = slowest.max(t0.elapsed());
        std::thread::sleep(Duration::from_millis(20));
    }
    // And the other room keeps forwarding.
    let got = forward(&mut sides, 50, Duration::from_secs(10)).len();
    let dropped = flooded.counters.drops(DropReason::UnknownAddress);
    stop.store(true, Ordering::Relaxed);
    for b in blasters {
        b.join().expect("blaster");
    }
    eprintln!(
        "{backend:?} flood: {} datagrams sent, {dropped} dropped by the room; slowest command reply {slowest:?}; {got} packets forwarded in the other room",
        sent.load(Ordering::Relaxed)
    );
    assert!(
        slowest < Duration::from_millis(500),
        "a command waited {slowest:?}"
    );
    assert_eq!(got, 50, "the other room kept forwarding");
    worker.shutdown();
}

#[test]
fn epoll_commands_and_other_rooms_go_on_while_a_room_is_flooded() {
    with_watchdog("epoll", WATCHDOG, || scenario(IoBackend::Epoll, 42100));
}

#[test]
fn uring_commands_and_other_rooms_go_on_while_a_room_is_flooded() {
    with_watchdog("uring", WATCHDOG, || scenario(IoBackend::Uring, 42200));
}
