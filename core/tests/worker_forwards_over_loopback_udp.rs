//! Two test peers exchange media through a Router on a real `Worker` thread
//! over loopback UDP; shutdown joins the thread and releases the port.
//! The whole test runs under a watchdog and fails instead of hanging.

use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, unbounded};
use sfu_core::client::{ClientParams, ClientPeer, ClientReceived};
use sfu_core::io::SocketConfig;
use sfu_core::proto::dtls::{Certificate, DtlsRole, default_config};
use sfu_core::proto::rtp::RtpHeader;
use sfu_core::router::{ConsumerParams, MediaKind, ProducerParams};
use sfu_core::transport::TransportParams;
use sfu_core::worker::{Command, Event, Reply, Worker, WorkerConfig};
use sfu_core::{Mid, Pt, RouterId, Ssrc};

const WATCHDOG: Duration = Duration::from_secs(60);

fn call<T: Send + 'static>(worker: &Worker, make: impl FnOnce(Reply<T>) -> Command) -> T {
    let (tx, rx) = crossbeam_channel::bounded(1);
    worker
        .send(make(Box::new(move |r| {
            let _ = tx.send(r);
        })))
        .expect("worker alive");
    rx.recv_timeout(Duration::from_secs(5))
        .expect("reply in time")
        .expect("command ok")
}

struct Side {
    sock: UdpSocket,
    peer: ClientPeer,
    server: SocketAddr,
}

impl Side {
    fn pump(&mut self, now: Instant) -> Vec<ClientReceived> {
        if self.peer.poll_timeout() <= now {
            self.peer.handle_timeout(now);
        }
        while let Some(d) = self.peer.poll_transmit() {
            self.sock.send_to(&d, self.server).expect("send");
        }
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = self.sock.recv_from(&mut buf) {
            if let Ok(r) = self.peer.handle_datagram(Instant::now(), from, &buf[..n]) {
                got.push(r);
            }
        }
        while let Some(d) = self.peer.poll_transmit() {
            self.sock.send_to(&d, self.server).expect("send");
        }
        got
    }
}

fn scenario(events: Receiver<Event>, worker: Worker, server_cert: Certificate) {
    let info = call(&worker, |reply| Command::CreateRouter {
        router: RouterId(1),
        reply,
    });
    let server = info.local_addr;
    let mut sides = Vec::new();
    let mut tids = Vec::new();
    for i in 0..2 {
        let client_cert = Certificate::generate().expect("cert");
        let (ufrag, pwd) = (
            format!("room{i}ufrag"),
            format!("room-{i}-password-0123456789"),
        );
        let params = TransportParams {
            local_ufrag: ufrag.clone(),
            local_pwd: pwd.clone(),
            remote_fingerprint: client_cert.fingerprint(),
            dtls_role: DtlsRole::Server,
        };
        tids.push(call(&worker, |reply| Command::CreateTransport {
            router: RouterId(1),
            params,
            reply,
        }));
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
        sock.set_read_timeout(Some(Duration::from_millis(5)))
            .expect("timeout");
        let peer = ClientPeer::new(
            ClientParams {
                local_ufrag: format!("c{i}xx"),
                local_pwd: "client-password-0123456789".into(),
                remote_ufrag: ufrag,
                remote_pwd: pwd,
                remote_fingerprint: server_cert.fingerprint(),
                server,
            },
            &client_cert,
            default_config(),
            Instant::now(),
        );
        sides.push(Side { sock, peer, server });
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sides.iter().all(|s| s.peer.is_connected()) {
        assert!(
            Instant::now() < deadline,
            "peers did not connect over loopback"
        );
        for s in &mut sides {
            s.pump(Instant::now());
        }
    }
    let mut connected = 0;
    while let Ok(ev) = events.recv_timeout(Duration::from_secs(2)) {
        if matches!(ev, Event::TransportConnected { .. }) {
            connected += 1;
            if connected == 2 {
                break;
            }
        }
    }
    assert_eq!(connected, 2, "control plane told of both connections");

    let producer = call(&worker, |reply| Command::CreateProducer {
        router: RouterId(1),
        params: ProducerParams {
            transport: tids[0],
            kind: MediaKind::Audio,
            ssrc: Ssrc(1000),
            rtx_ssrc: None,
            mid: Mid::new("0"),
            payload_types: vec![Pt(111)],
        },
        reply,
    });
    call(&worker, |reply| Command::CreateConsumer {
        router: RouterId(1),
        params: ConsumerParams {
            transport: tids[1],
            producer,
            ssrc: Ssrc(2000),
            mid: Mid::new("1"),
            mid_ext_id: Some(3),
            pt_map: vec![(Pt(111), Pt(111))],
            paused: false,
        },
        reply,
    });

    let mut received = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seq = 0u16;
    while received.len() < 50 {
        assert!(
            Instant::now() < deadline,
            "only {} of 50 packets arrived",
            received.len()
        );
        if seq < 200 {
            let mut pkt = vec![0x80, 111];
            pkt.extend_from_slice(&seq.to_be_bytes());
            pkt.extend_from_slice(&(seq as u32 * 960).to_be_bytes());
            pkt.extend_from_slice(&1000u32.to_be_bytes());
            pkt.extend_from_slice(&[seq as u8; 80]);
            assert!(sides[0].peer.send_rtp(&pkt));
            seq += 1;
        }
        sides[0].pump(Instant::now());
        for r in sides[1].pump(Instant::now()) {
            if let ClientReceived::Rtp(p) = r {
                received.push(p);
            }
        }
    }
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

#[test]
fn two_peers_exchange_media_through_a_worker_and_shutdown_joins() {
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let server_cert = Certificate::generate().expect("cert");
        let (ev_tx, ev_rx) = unbounded();
        let config = WorkerConfig {
            socket: SocketConfig {
                port_min: 42000,
                port_max: 42999,
                ..SocketConfig::default()
            },
            ..WorkerConfig::default()
        };
        let worker = Worker::spawn(0, config, server_cert.clone(), ev_tx).expect("worker starts");
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            scenario(ev_rx, worker, server_cert)
        }));
        let _ = done_tx.send(r.map_err(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        }));
    });
    match done_rx.recv_timeout(WATCHDOG) {
        Ok(Ok(())) => {}
        Ok(Err(msg)) => panic!("scenario failed: {msg:?}"),
        Err(_) => panic!("watchdog: scenario hung for {WATCHDOG:?}"),
    }
}
