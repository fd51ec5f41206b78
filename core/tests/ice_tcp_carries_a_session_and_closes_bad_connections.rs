//! ICE-TCP (RFC 6544, RFC 4571 framing) on a real `Worker` over loopback:
//! a client peer reaches its transport over TCP and receives what a UDP
//! peer publishes; 1,000 idle connections are closed on the ICE timeout, a
//! connection announcing a 65,535-byte frame and then stopping is closed at
//! once, and the session goes on throughout. Under a watchdog.

mod udp;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use crossbeam_channel::unbounded;
use sfu_core::client::{ClientParams, ClientPeer, ClientReceived};
use sfu_core::io::SocketConfig;
use sfu_core::proto::dtls::{Certificate, DtlsRole, default_config};
use sfu_core::proto::framing::{FrameDecoder, MAX_FRAME, encode};
use sfu_core::router::RouterConfig;
use sfu_core::transport::{TransportParams, TransportTimeouts};
use sfu_core::worker::{Command, IoBackend, Worker, WorkerConfig};
use sfu_core::{RouterId, TransportId};
use udp::{Side, audio_packet, call, publish_subscribe, with_watchdog};

const WATCHDOG: Duration = Duration::from_secs(90);
const ICE_TIMEOUT: Duration = Duration::from_secs(3);

/// A client peer whose datagrams go over one TCP connection, framed.
struct TcpSide {
    stream: TcpStream,
    peer: ClientPeer,
    server: SocketAddr,
    decoder: FrameDecoder,
}

impl TcpSide {
    fn pump(&mut self) -> Vec<ClientReceived> {
        let now = Instant::now();
        if self.peer.poll_timeout() <= now {
            self.peer.handle_timeout(now);
        }
        self.flush();
        let mut got = Vec::new();
        loop {
            match self.stream.read(self.decoder.spare()) {
                Ok(0) => panic!("the server closed the session's connection"),
                Ok(n) => self.decoder.filled(n),
                Err(_) => break, // read timeout: nothing more for now
            }
            while let Some(f) = self.decoder.next_frame().expect("a frame") {
                if let Ok(r) = self.peer.handle_datagram(Instant::now(), self.server, f) {
                    got.push(r);
                }
            }
        }
        self.flush();
        got
    }

    fn flush(&mut self) {
        while let Some(d) = self.peer.poll_transmit() {
            let mut framed = Vec::new();
            assert!(encode(&d, &mut framed));
            self.stream.write_all(&framed).expect("write");
        }
    }
}

fn transport(
    worker: &Worker,
    router: RouterId,
    i: usize,
    cert: &Certificate,
) -> (TransportId, String, String) {
    let (ufrag, pwd) = (
        format!("tcp{i}ufrag"),
        format!("tcp-room-{i}-password-0123456789"),
    );
    let tid = call(worker, |reply| Command::CreateTransport {
        router,
        params: TransportParams {
            local_ufrag: ufrag.clone(),
            local_pwd: pwd.clone(),
            remote_fingerprint: cert.fingerprint(),
            dtls_role: DtlsRole::Server,
            sctp_max_message_size: None,
        },
        reply,
    });
    (tid, ufrag, pwd)
}

fn client(
    ufrag: String,
    pwd: String,
    server: SocketAddr,
    server_cert: &Certificate,
    cert: &Certificate,
) -> ClientPeer {
    ClientPeer::new(
        ClientParams {
            local_ufrag: "cxyz".into(),
            local_pwd: "client-password-0123456789".into(),
            remote_ufrag: ufrag,
            remote_pwd: pwd,
            remote_fingerprint: server_cert.fingerprint(),
            server,
        },
        cert,
        default_config(),
        Instant::now(),
    )
}

fn wait(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < end, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn scenario(backend: IoBackend, ports: u16) {
    sfu_core::io::raise_fd_limit(8192).expect("getrlimit");
    let server_cert = Certificate::generate().expect("cert");
    let (ev_tx, _ev_rx) = unbounded();
    let config = WorkerConfig {
        socket: SocketConfig {
            port_min: ports,
            port_max: ports + 99,
            ..SocketConfig::default()
        },
        router: RouterConfig {
            timeouts: TransportTimeouts {
                ice: ICE_TIMEOUT,
                ..TransportTimeouts::default()
            },
            ..RouterConfig::default()
        },
        backend,
        ice_tcp: Some("127.0.0.1:0".parse().expect("addr")),
        ..WorkerConfig::default()
    };
    let worker = Worker::spawn(0, config, server_cert.clone(), ev_tx).expect("worker starts");
    let counters = worker.counters().clone();
    let tcp_port = counters.ice_tcp_port.get() as u16;
    assert_ne!(tcp_port, 0, "the listener's port is published");
    let tcp_addr: SocketAddr = format!("127.0.0.1:{tcp_port}").parse().expect("addr");
    let router = RouterId(7);
    let info = call(&worker, |reply| Command::CreateRouter { router, reply });

    // A UDP publisher and a TCP subscriber.
    let (c0, c1) = (
        Certificate::generate().expect("cert"),
        Certificate::generate().expect("cert"),
    );
    let (t0, u0, p0) = transport(&worker, router, 0, &c0);
    let (t1, u1, p1) = transport(&worker, router, 1, &c1);
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_millis(5)))
        .expect("timeout");
    let mut udp = Side {
        sock,
        peer: client(u0, p0, info.local_addr, &server_cert, &c0),
        server: info.local_addr,
    };
    let stream = TcpStream::connect(tcp_addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_millis(5)))
        .expect("timeout");
    stream.set_nodelay(true).expect("nodelay");
    let mut tcp = TcpSide {
        stream,
        peer: client(u1, p1, tcp_addr, &server_cert, &c1),
        server: tcp_addr,
        decoder: FrameDecoder::new(MAX_FRAME),
    };
    wait(
        "both connect (ICE + DTLS, one over TCP)",
        Duration::from_secs(10),
        || {
            udp.pump(Instant::now());
            tcp.pump();
            udp.peer.is_connected() && tcp.peer.is_connected()
        },
    );
    publish_subscribe(&worker, router, &[t0, t1]);
    let mut seq = 0u16;
    let mut forward = |udp: &mut Side, tcp: &mut TcpSide, n: usize| {
        let mut got = 0;
        let end = Instant::now() + Duration::from_secs(10);
        while got < n && Instant::now() < end {
            seq = seq.wrapping_add(1);
            assert!(udp.peer.send_rtp(&audio_packet(seq)));
            udp.pump(Instant::now());
            got += tcp
                .pump()
                .into_iter()
                .filter(|r| matches!(r, ClientReceived::Rtp(_)))
                .count();
        }
        got
    };
    assert!(
        forward(&mut udp, &mut tcp, 50) >= 50,
        "media reaches the TCP subscriber"
    );

    // 1,000 idle connections: held until the ICE timeout, then closed.
    let idle: Vec<TcpStream> = (0..1000)
        .map(|_| TcpStream::connect(tcp_addr).expect("connect"))
        .collect();
    wait("1,001 connections open", Duration::from_secs(10), || {
        counters.tcp_connections.get() == 1001
    });
    // One that says a 65,535-byte frame follows, and stops.
    let mut liar = TcpStream::connect(tcp_addr).expect("connect");
    liar.write_all(&[0xff, 0xff, 0x00, 0x01]).expect("write");
    wait("the liar is closed at once", Duration::from_secs(2), || {
        counters.tcp_closed_stalled.get() == 1
    });
    liar.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    assert_eq!(
        liar.read(&mut [0u8; 4]).unwrap_or(0),
        0,
        "closed by the server"
    );
    // The session goes on meanwhile, and after the idle ones go.
    assert!(forward(&mut udp, &mut tcp, 20) >= 20);
    wait(
        "idle connections closed on the ICE timeout",
        ICE_TIMEOUT + Duration::from_secs(5),
        || {
            udp.pump(Instant::now());
            tcp.pump();
            counters.tcp_closed_idle.get() == 1000
        },
    );
    assert_eq!(counters.tcp_connections.get(), 1, "the session's stays");
    assert!(
        forward(&mut udp, &mut tcp, 20) >= 20,
        "and still carries media"
    );
    drop(idle);

    // Its transport closed: the connection is closed too.
    worker
        .send(Command::CloseTransport {
            router,
            transport: t1,
        })
        .expect("sent");
    wait(
        "the closed transport's connection is closed",
        Duration::from_secs(5),
        || counters.tcp_connections.get() == 0,
    );
    worker.shutdown();
}

#[test]
fn epoll_ice_tcp_session_and_bad_connections() {
    with_watchdog("epoll", WATCHDOG, || scenario(IoBackend::Epoll, 42600));
}

#[test]
fn uring_ice_tcp_session_and_bad_connections() {
    with_watchdog("uring", WATCHDOG, || scenario(IoBackend::Uring, 42700));
}
