//! A router that panics (a bug) fails its own room only: the worker drops
//! that router without calling into it again, releases its socket and
//! reports `RouterFailed`, while another room on the same worker keeps
//! forwarding media and the worker keeps taking commands. Runs under a
//! watchdog.

mod udp;

use std::net::UdpSocket;
use std::time::Duration;

use crossbeam_channel::{Receiver, unbounded};
use sfu_core::io::SocketConfig;
use sfu_core::proto::dtls::Certificate;
use sfu_core::worker::{Command, Event, Worker, WorkerConfig};
use sfu_core::{Error, RouterId};
use udp::{call, connect_pair, forward, publish_subscribe, with_watchdog};

/// Sends a command and waits up to 5 s for its reply, error or not.
fn try_call<T: Send + 'static>(
    worker: &Worker,
    make: impl FnOnce(sfu_core::worker::Reply<T>) -> Command,
) -> sfu_core::Result<T> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    worker.send(make(Box::new(move |r| {
        let _ = tx.send(r);
    })))?;
    rx.recv_timeout(Duration::from_secs(5))
        .map_err(|_| Error::WorkerGone)?
}

fn scenario(events: Receiver<Event>, worker: Worker, cert: Certificate) {
    let doomed = call(&worker, |reply| Command::CreateRouter {
        router: RouterId(1),
        reply,
    });
    let healthy = call(&worker, |reply| Command::CreateRouter {
        router: RouterId(2),
        reply,
    });
    // A live call in the healthy room, on the same worker.
    let (mut sides, tids) = connect_pair(&worker, &events, RouterId(2), healthy.local_addr, &cert);
    publish_subscribe(&worker, RouterId(2), &tids);
    let before = forward(&mut sides, 50, Duration::from_secs(10));
    assert!(
        before.len() >= 50,
        "{} of 50 before the panic",
        before.len()
    );

    worker
        .send(Command::FaultInjectPanic {
            router: RouterId(1),
        })
        .expect("send");
    let mut seen = Vec::new();
    let failed = std::iter::from_fn(|| events.recv_timeout(Duration::from_secs(5)).ok())
        .find_map(|e| {
            seen.push(format!("{e:?}"));
            match e {
                Event::RouterFailed { router, message } => Some((router, message)),
                _ => None,
            }
        })
        .expect("RouterFailed reported");
    assert_eq!(failed.0, RouterId(1));
    assert!(failed.1.contains("fault injection"), "{}", failed.1);
    assert!(
        !seen.iter().any(|e| e.contains("WorkerFailed")),
        "the worker did not fail: {seen:?}"
    );
    // The failed room's port is free again; its router is gone.
    UdpSocket::bind(doomed.local_addr).expect("port of room 1 released");
    let gone = try_call(&worker, |reply| Command::CreateTransport {
        router: RouterId(1),
        params: sfu_core::transport::TransportParams {
            local_ufrag: "gone".into(),
            local_pwd: "doomed-password-0123456789".into(),
            remote_fingerprint: [1; 32],
            dtls_role: sfu_core::proto::dtls::DtlsRole::Server,
            sctp_max_message_size: None,
        },
        reply,
    });
    assert!(
        matches!(gone, Err(Error::UnknownRouter(RouterId(1)))),
        "{gone:?}"
    );

    // The other room on the same worker keeps forwarding.
    let after = forward(&mut sides, 50, Duration::from_secs(10));
    assert!(after.len() >= 50, "{} of 50 after the panic", after.len());
    // And the worker still takes new rooms.
    let fresh = try_call(&worker, |reply| Command::CreateRouter {
        router: RouterId(3),
        reply,
    });
    assert!(fresh.is_ok(), "{fresh:?}");
    assert_eq!(worker.counters().routers.get(), 2, "rooms 2 and 3");
    worker.shutdown();
}

#[test]
fn a_panicking_router_fails_only_its_room() {
    with_watchdog("router panic", Duration::from_secs(60), || {
        let cert = Certificate::generate().expect("cert");
        let (ev_tx, ev_rx) = unbounded();
        let config = WorkerConfig {
            socket: SocketConfig {
                port_min: 42100,
                port_max: 42199,
                ..SocketConfig::default()
            },
            ..WorkerConfig::default()
        };
        let worker = Worker::spawn(0, config, cert.clone(), ev_tx).expect("worker");
        scenario(ev_rx, worker, cert);
    });
}
