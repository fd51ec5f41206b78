//! Two test peers exchange media through a Router on a real `Worker` thread
//! over loopback UDP; shutdown joins the thread and releases the port.
//! The whole test runs under a watchdog and fails instead of hanging.

mod udp;

use std::net::UdpSocket;
use std::time::Duration;

use crossbeam_channel::{Receiver, unbounded};
use sfu_core::io::SocketConfig;
use sfu_core::proto::dtls::Certificate;
use sfu_core::proto::rtp::RtpHeader;
use sfu_core::worker::{Command, Event, IoBackend, Worker, WorkerConfig};
use sfu_core::{RouterId, Ssrc};
use udp::{call, connect_pair, forward, publish_subscribe, with_watchdog};

const WATCHDOG: Duration = Duration::from_secs(60);

fn scenario(events: Receiver<Event>, worker: Worker, server_cert: Certificate) {
    let info = call(&worker, |reply| Command::CreateRouter {
        router: RouterId(1),
        reply,
    });
    let server = info.local_addr;
    let (mut sides, tids) = connect_pair(&worker, &events, RouterId(1), server, &server_cert);
    publish_subscribe(&worker, RouterId(1), &tids);
    let received = forward(&mut sides, 50, Duration::from_secs(10));
    assert!(
        received.len() >= 50,
        "only {} of 50 packets arrived",
        received.len()
    );
    for p in &received {
        let h = RtpHeader::parse(p).expect("rtp");
        assert_eq!(h.ssrc, Ssrc(2000));
        assert_eq!(&p[h.header_len..], &[p[h.header_len]; 80][..]);
    }
    assert!(worker.counters().rtp_forwarded.get() >= 50);
    assert!(info.counters.packets_in.get() > 50);

    worker.shutdown();
    let stopped = std::iter::from_fn(|| events.recv_timeout(Duration::from_secs(5)).ok())
        .any(|e| matches!(e, Event::WorkerStopped { worker: 0, .. }));
    assert!(stopped, "worker reported it stopped");
    UdpSocket::bind(server).expect("the room's port is released after shutdown");
}

fn spawn_and_run(backend: IoBackend, ports: u16) {
    let server_cert = Certificate::generate().expect("cert");
    let (ev_tx, ev_rx) = unbounded();
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
    scenario(ev_rx, worker, server_cert);
}

#[test]
fn epoll_two_peers_exchange_media_through_a_worker_and_shutdown_joins() {
    with_watchdog("epoll", WATCHDOG, || spawn_and_run(IoBackend::Epoll, 42000));
}

#[test]
fn uring_two_peers_exchange_media_through_a_worker_and_shutdown_joins() {
    with_watchdog("uring", WATCHDOG, || spawn_and_run(IoBackend::Uring, 42300));
}
