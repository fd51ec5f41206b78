//! A router that panics (a bug) is contained: the worker logs it, closes all
//! its rooms (releasing their sockets), reports WorkerFailed and stops,
//! while another worker keeps serving. Runs under a watchdog.

use std::net::UdpSocket;
use std::sync::mpsc;
use std::time::Duration;

use crossbeam_channel::unbounded;
use sfu_core::io::SocketConfig;
use sfu_core::proto::dtls::{Certificate, DtlsRole};
use sfu_core::proto::stun;
use sfu_core::transport::TransportParams;
use sfu_core::worker::{Command, Event, Reply, Worker, WorkerConfig};
use sfu_core::{RouterId, TransportId};

fn call<T: Send + 'static>(
    worker: &Worker,
    make: impl FnOnce(Reply<T>) -> Command,
) -> sfu_core::Result<T> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    worker.send(make(Box::new(move |r| {
        let _ = tx.send(r);
    })))?;
    rx.recv_timeout(Duration::from_secs(5))
        .map_err(|_| sfu_core::Error::WorkerGone)?
}

fn scenario() {
    let cert = Certificate::generate().expect("cert");
    let (ev_tx, ev_rx) = unbounded();
    let cfg = |min| WorkerConfig {
        socket: SocketConfig {
            port_min: min,
            port_max: min + 9,
            ..SocketConfig::default()
        },
        ..WorkerConfig::default()
    };
    let w0 = Worker::spawn(0, cfg(42100), cert.clone(), ev_tx.clone()).expect("worker 0");
    let w1 = Worker::spawn(1, cfg(42200), cert.clone(), ev_tx).expect("worker 1");
    let doomed_a = call(&w0, |reply| Command::CreateRouter {
        router: RouterId(1),
        reply,
    })
    .expect("router");
    let doomed_b = call(&w0, |reply| Command::CreateRouter {
        router: RouterId(2),
        reply,
    })
    .expect("router");
    let healthy = call(&w1, |reply| Command::CreateRouter {
        router: RouterId(3),
        reply,
    })
    .expect("router");

    w0.send(Command::FaultInjectPanic {
        router: RouterId(1),
    })
    .expect("send");
    let failed = std::iter::from_fn(|| ev_rx.recv_timeout(Duration::from_secs(5)).ok())
        .find_map(|e| match e {
            Event::WorkerFailed {
                worker, message, ..
            } => Some((worker, message)),
            _ => None,
        })
        .expect("WorkerFailed reported");
    assert_eq!(failed.0, 0);
    assert!(failed.1.contains("fault injection"), "{}", failed.1);
    // Both rooms of the failed worker are closed: their ports are free again.
    UdpSocket::bind(doomed_a.local_addr).expect("port of room 1 released");
    UdpSocket::bind(doomed_b.local_addr).expect("port of room 2 released");
    // The failed worker takes no more commands.
    assert!(
        call(&w0, |reply| Command::CreateRouter {
            router: RouterId(9),
            reply
        })
        .is_err()
    );

    // The other worker still serves: a new transport answers ICE on its room's port.
    let params = TransportParams {
        local_ufrag: "okay".into(),
        local_pwd: "healthy-password-0123456789".into(),
        remote_fingerprint: [1; 32],
        dtls_role: DtlsRole::Server,
    };
    let _t: TransportId = call(&w1, |reply| Command::CreateTransport {
        router: RouterId(3),
        params,
        reply,
    })
    .expect("transport");
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let mut buf = [0u8; 256];
    let n = stun::encode_binding_request(
        [4; 12],
        "okay",
        "peer",
        "healthy-password-0123456789",
        true,
        &mut buf,
    )
    .expect("encode");
    sock.send_to(&buf[..n], healthy.local_addr).expect("send");
    let mut resp = [0u8; 256];
    let (m, _) = sock
        .recv_from(&mut resp)
        .expect("the healthy worker answers");
    assert!(stun::verify_binding_success(&resp[..m], "healthy-password-0123456789").is_ok());
    w1.shutdown();
    drop(w0);
}

#[test]
fn a_panicking_router_fails_only_its_worker() {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let r = std::panic::catch_unwind(scenario);
        let _ = tx.send(r.is_ok());
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(true) => {}
        Ok(false) => panic!("scenario failed (see output above)"),
        Err(_) => panic!("watchdog: scenario hung for 60 s"),
    }
}
