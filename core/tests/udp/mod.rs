//! Real client peers over loopback UDP against a `Worker` thread: commands
//! with a bounded wait, two peers connected through a router, and a
//! publish/subscribe pair between them. Every wait is bounded.
#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use sfu_core::client::{ClientParams, ClientPeer, ClientReceived};
use sfu_core::proto::dtls::{Certificate, DtlsRole, default_config};
use sfu_core::proto::rtp::{Extension, ExtensionMap};
use sfu_core::router::{ConsumerParams, EncodingParams, MediaKind, ProducerParams};
use sfu_core::transport::TransportParams;
use sfu_core::worker::{Command, Event, Reply, Worker};
use sfu_core::{Mid, Pt, RouterId, Ssrc, TransportId};

/// Sends a command and waits up to 5 s for its reply.
pub(crate) fn call<T: Send + 'static>(
    worker: &Worker,
    make: impl FnOnce(Reply<T>) -> Command,
) -> T {
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

/// One client peer with its socket.
pub(crate) struct Side {
    pub sock: UdpSocket,
    pub peer: ClientPeer,
    pub server: SocketAddr,
}

impl Side {
    /// Runs the peer's timers, sends what it has, and reads what arrived.
    pub(crate) fn pump(&mut self, now: Instant) -> Vec<ClientReceived> {
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

/// Connects two client peers through `router` (ICE + DTLS), waits until the
/// worker reports both connected, and returns them with their transports.
pub(crate) fn connect_pair(
    worker: &Worker,
    events: &Receiver<Event>,
    router: RouterId,
    server: SocketAddr,
    server_cert: &Certificate,
) -> (Vec<Side>, Vec<TransportId>) {
    let mut sides = Vec::new();
    let mut tids = Vec::new();
    for i in 0..2 {
        let client_cert = Certificate::generate().expect("cert");
        let (ufrag, pwd) = (
            format!("r{}p{i}ufrag", router.0),
            format!("room-{}-{i}-password-0123456789", router.0),
        );
        let params = TransportParams {
            local_ufrag: ufrag.clone(),
            local_pwd: pwd.clone(),
            remote_fingerprint: client_cert.fingerprint(),
            dtls_role: DtlsRole::Server,
            sctp_max_message_size: None,
        };
        tids.push(call(worker, |reply| Command::CreateTransport {
            router,
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
        if matches!(ev, Event::Router { router: r, event: sfu_core::router::RouterEvent::TransportConnected(_) } if r == router)
        {
            connected += 1;
            if connected == 2 {
                break;
            }
        }
    }
    assert_eq!(connected, 2, "control plane told of both connections");
    (sides, tids)
}

/// Makes side 0 publish an audio track (SSRC 1000, PT 111) and side 1
/// receive it (SSRC 2000).
pub(crate) fn publish_subscribe(worker: &Worker, router: RouterId, tids: &[TransportId]) {
    let producer = call(worker, |reply| Command::CreateProducer {
        router,
        params: ProducerParams {
            transport: tids[0],
            kind: MediaKind::Audio,
            encodings: vec![EncodingParams::single(Ssrc(1000), None)],
            mid: Mid::new("0"),
            payload_types: vec![Pt(111)],
            video_codec: None,
            rtx_payload_types: vec![],
            extensions: ExtensionMap::EMPTY,
            keep_gop: false,
        },
        reply,
    });
    call(worker, |reply| Command::CreateConsumer {
        router,
        params: ConsumerParams {
            transport: tids[1],
            producer,
            ssrc: Ssrc(2000),
            mid: Mid::new("1"),
            extensions: ExtensionMap::EMPTY.with(Extension::Mid, Some(3)),
            pt_map: vec![(Pt(111), Pt(111))],
            paused: false,
            rtx: None,
        },
        reply,
    });
}

/// An Opus-sized RTP packet from SSRC 1000 with sequence number `seq`.
pub(crate) fn audio_packet(seq: u16) -> Vec<u8> {
    let mut pkt = vec![0x80, 111];
    pkt.extend_from_slice(&seq.to_be_bytes());
    pkt.extend_from_slice(&(u32::from(seq) * 960).to_be_bytes());
    pkt.extend_from_slice(&1000u32.to_be_bytes());
    pkt.extend_from_slice(&[seq as u8; 80]);
    pkt
}

/// Sends packets from side 0 until side 1 has received `want` of them, or
/// `within` passes; returns what side 1 received.
pub(crate) fn forward(sides: &mut [Side], want: usize, within: Duration) -> Vec<bytes::Bytes> {
    let mut received = Vec::new();
    let deadline = Instant::now() + within;
    let mut seq = 0u16;
    while received.len() < want && Instant::now() < deadline {
        if seq < 4 * want as u16 {
            assert!(sides[0].peer.send_rtp(&audio_packet(seq)));
            seq += 1;
        }
        sides[0].pump(Instant::now());
        for r in sides[1].pump(Instant::now()) {
            if let ClientReceived::Rtp(p) = r {
                received.push(p);
            }
        }
    }
    received
}

/// Runs `scenario` on a thread of its own and fails if it panics or does
/// not finish within `limit` (a hung worker never hangs the test run).
pub(crate) fn with_watchdog(what: &str, limit: Duration, scenario: impl FnOnce() + Send + 'static) {
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(scenario));
        let _ = done_tx.send(r.map_err(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        }));
    });
    match done_rx.recv_timeout(limit) {
        Ok(Ok(())) => {}
        Ok(Err(msg)) => panic!("{what}: scenario failed: {msg:?}"),
        Err(_) => panic!("{what}: watchdog: scenario hung for {limit:?}"),
    }
}
