//! Lifecycle against the real server in-process, with real clients
//! (signaling, ICE, DTLS, SRTP from sfu-core's client peer):
//! - 1,000 join/leave cycles leak no memory, sockets or rooms;
//! - a participant that vanishes (UDP and WebSocket just stop) is removed
//!   within the consent timeout and the others are told;
//! - garbage on a room's UDP port changes nothing for the call and shows in
//!   the drop counters.
//!
//! Every wait is bounded.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use sfu_bench::load::signal::{ClientSpec, join_offer, server_params, update_answer};
use sfu_bench::load::{Args, run};
use sfu_core::client::{ClientPeer, ClientReceived};
use sfu_core::proto::dtls::{Certificate, default_config};
use sfu_sig::Background;
use sfu_sig::config::{Config, Flags};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Client {
    spec: ClientSpec,
    ws: Ws,
    peer: ClientPeer,
    sock: UdpSocket,
    server: SocketAddr,
    rtp_received: usize,
    version: u64,
}

fn spec(idx: usize, room: &str, cert: &Certificate, publisher: bool) -> (ClientSpec, UdpSocket) {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_nonblocking(true).expect("nonblocking");
    let spec = ClientSpec {
        idx,
        name: format!("c{idx}"),
        room: room.into(),
        publisher,
        audio: true,
        ufrag: format!("u{idx:05}"),
        pwd: format!("lifecycle-password-{idx:08}"),
        fingerprint: cert.fingerprint_sdp(),
        local: sock.local_addr().expect("addr"),
        video_ssrc: 1000 + idx as u32,
        audio_ssrc: 2000 + idx as u32,
    };
    (spec, sock)
}

async fn next_text(ws: &mut Ws, within: Duration) -> Option<serde_json::Value> {
    let end = tokio::time::Instant::now() + within;
    while let Ok(Some(Ok(m))) = tokio::time::timeout_at(end, ws.next()).await {
        if let Message::Text(t) = m {
            return serde_json::from_str(t.as_str()).ok();
        }
    }
    None
}

impl Client {
    /// Joins `room` and completes ICE + DTLS.
    async fn connect(
        addr: SocketAddr,
        idx: usize,
        room: &str,
        cert: &Certificate,
        publisher: bool,
    ) -> Client {
        let (spec, sock) = spec(idx, room, cert, publisher);
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
            .await
            .expect("ws");
        let join = serde_json::json!({"type": "join", "room": room, "name": spec.name, "sdp": join_offer(&spec)});
        ws.send(Message::Text(join.to_string().into()))
            .await
            .expect("send");
        let answer = loop {
            let v = next_text(&mut ws, Duration::from_secs(5))
                .await
                .expect("answer in time");
            if v["type"] == "answer" {
                break v;
            }
            assert_ne!(v["type"], "error", "{v}");
        };
        let params = server_params(&spec, answer["sdp"].as_str().expect("sdp")).expect("params");
        let server = params.server;
        let peer = ClientPeer::new(params, cert, default_config(), Instant::now());
        let mut c = Client {
            spec,
            ws,
            peer,
            sock,
            server,
            rtp_received: 0,
            version: 1,
        };
        let end = Instant::now() + Duration::from_secs(5);
        while !c.peer.is_connected() {
            assert!(Instant::now() < end, "ICE/DTLS within 5 s");
            c.pump();
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        c
    }

    /// Moves datagrams both ways; counts received RTP.
    fn pump(&mut self) {
        let now = Instant::now();
        if self.peer.poll_timeout() <= now {
            self.peer.handle_timeout(now);
        }
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = self.sock.recv_from(&mut buf) {
            if let Ok(ClientReceived::Rtp(_)) =
                self.peer.handle_datagram(Instant::now(), from, &buf[..n])
            {
                self.rtp_received += 1;
            }
        }
        while let Some(d) = self.peer.poll_transmit() {
            let _ = self.sock.send_to(&d, self.server);
        }
    }

    /// Answers pending `update` offers; returns the other messages read.
    async fn signaling(&mut self, within: Duration) -> Vec<serde_json::Value> {
        let mut other = Vec::new();
        let end = tokio::time::Instant::now() + within;
        while let Ok(Some(Ok(m))) = tokio::time::timeout_at(end, self.ws.next()).await {
            let Message::Text(t) = m else { continue };
            let v: serde_json::Value = serde_json::from_str(t.as_str()).expect("json");
            if v["type"] == "update" {
                self.version += 1;
                let sdp = update_answer(&self.spec, v["sdp"].as_str().expect("sdp"), self.version)
                    .expect("answer");
                let msg = serde_json::json!({"type": "answer", "sdp": sdp});
                self.ws
                    .send(Message::Text(msg.to_string().into()))
                    .await
                    .expect("send");
            } else {
                other.push(v);
            }
        }
        other
    }

    async fn leave(mut self) {
        self.ws
            .send(Message::Text(r#"{"type":"leave"}"#.into()))
            .await
            .expect("send leave");
        let end = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let v = tokio::time::timeout_at(end, next_text(&mut self.ws, Duration::from_secs(5)))
                .await
                .expect("left in time")
                .expect("message");
            if v["type"] == "left" {
                break;
            }
        }
        let _ = self.ws.close(None).await;
    }

    fn send_rtp(&mut self, seq: u16) {
        let mut p = vec![0x80, 96];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&(seq as u32 * 3000).to_be_bytes());
        p.extend_from_slice(&self.spec.video_ssrc.to_be_bytes());
        p.extend_from_slice(&[0x10, 0, 1, 2, 3, 4, 5, 6]);
        p.resize(600, 0xaa);
        assert!(self.peer.send_rtp(&p));
        self.pump();
    }
}

fn self_rss() -> u64 {
    sfu_bench::load::report::process_rss_bytes(std::process::id()).expect("rss")
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .expect("fds")
}

/// What each open descriptor points at (for the failure message).
fn fd_targets() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.flatten()
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .map(|p| p.display().to_string())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn metric(addr: SocketAddr, name: &str) -> u64 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
        .expect("write");
    let mut body = String::new();
    s.read_to_string(&mut body).expect("read");
    body.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<u64>().ok()))
        .sum()
}

fn server(ports: &str, flags: Flags) -> Background {
    let cfg = Config::load(Flags {
        rtc_ports: Some(ports.into()),
        rtc_listen_ip: Some("127.0.0.1".into()),
        cores: Some("1".into()),
        ..flags
    })
    .expect("config");
    Background::start(
        cfg,
        std::net::TcpListener::bind("127.0.0.1:0").expect("bind"),
    )
    .expect("server")
}

fn block_on<F: std::future::Future>(within: Duration, f: F) -> F::Output {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async { tokio::time::timeout(within, f).await.expect("watchdog") })
}

#[test]
fn thousand_join_leave_cycles_leak_nothing() {
    let srv = server("49000-49099", Flags::default());
    let addr = srv.addr;
    let cert = Certificate::generate().expect("cert");
    let (rss_100, rss_end, fds_before, targets_before) =
        block_on(Duration::from_secs(300), async {
            let mut rss_100 = 0;
            let (mut fds_before, mut targets_before) = (0, Vec::new());
            for i in 0..1000 {
                // Alternate two rooms so both "room opens" and "room already open" paths run.
                let c = Client::connect(
                    addr,
                    i,
                    if i % 2 == 0 { "cycle-a" } else { "cycle-b" },
                    &cert,
                    true,
                )
                .await;
                c.leave().await;
                if i == 0 {
                    // Baseline once everything started lazily exists (the worker's
                    // io_uring rings, the HTTP runtime) and the first room closed.
                    let end = Instant::now() + Duration::from_secs(5);
                    while metric(addr, "sfu_rooms ") != 0 && Instant::now() < end {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    fds_before = open_fds();
                    targets_before = fd_targets();
                }
                if i == 99 {
                    rss_100 = self_rss();
                }
            }
            (rss_100, self_rss(), fds_before, targets_before)
        });
    let end = Instant::now() + Duration::from_secs(10);
    while metric(addr, "sfu_rooms ") != 0 || metric(addr, "sfu_worker_transports") != 0 {
        assert!(Instant::now() < end, "rooms and transports back to 0");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The count covers server and clients: give closing connections a moment.
    let end = Instant::now() + Duration::from_secs(5);
    let mut fds_after = open_fds();
    while fds_after > fds_before && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
        fds_after = open_fds();
    }
    eprintln!(
        "rss after 100 cycles {rss_100} B, after 1000 {rss_end} B; fds {fds_before} -> {fds_after}"
    );
    assert!(
        rss_end as f64 <= rss_100 as f64 * 1.10,
        "RSS grew more than 10%: {rss_100} -> {rss_end}"
    );
    assert!(
        fds_after <= fds_before,
        "file descriptors leaked: {fds_before} -> {fds_after}: before {targets_before:?} after {:?}",
        fd_targets()
    );
    assert_eq!(metric(addr, "sfu_worker_routers"), 0);
    srv.stop().expect("clean stop");
}

#[test]
fn vanished_participant_is_removed_within_the_consent_timeout() {
    let srv = server(
        "49100-49199",
        Flags {
            consent_timeout: Some("5".into()),
            ..Flags::default()
        },
    );
    let addr = srv.addr;
    let cert = Certificate::generate().expect("cert");
    block_on(Duration::from_secs(60), async {
        let mut stays = Client::connect(addr, 1, "v", &cert, true).await;
        let mut vanishes = Client::connect(addr, 2, "v", &cert, true).await;
        // Let both negotiate and exchange a little media.
        for seq in 0..50u16 {
            stays.send_rtp(seq);
            vanishes.send_rtp(seq);
            let _ = stays.signaling(Duration::from_millis(20)).await;
            let _ = vanishes.signaling(Duration::from_millis(20)).await;
            stays.pump();
            vanishes.pump();
        }
        assert!(
            stays.rtp_received > 0 && vanishes.rtp_received > 0,
            "media flowed both ways"
        );
        // `vanishes` stops sending anything on UDP and WebSocket, without leaving.
        let started = Instant::now();
        let mut told = false;
        while started.elapsed() < Duration::from_secs(12) {
            stays.pump();
            for v in stays.signaling(Duration::from_millis(100)).await {
                if v["type"] == "participants"
                    && v["participants"].as_array().is_some_and(|p| p.len() == 1)
                {
                    told = true;
                }
            }
            if told {
                break;
            }
        }
        let took = started.elapsed();
        assert!(told, "the others were told within 12 s");
        // Consent runs out 5 s after the last valid check, and the client checks
        // every 2.5 s: so no sooner than 2.5 s after it went silent.
        assert!(
            took >= Duration::from_millis(2400),
            "not before the consent timeout: {took:?}"
        );
        drop(vanishes);
    });
    assert_eq!(metric(addr, "sfu_participants "), 1);
    srv.stop().expect("clean stop");
}

#[test]
fn garbage_on_the_room_port_changes_nothing_for_the_call() {
    let srv = server("49200-49299", Flags::default());
    let addr = srv.addr;
    // A 1 publisher -> 2 subscriber call through sfu-load, in a thread.
    let load = std::thread::spawn(move || {
        run(Args {
            server: format!("ws://{addr}/ws"),
            rooms: 1,
            publishers: 1,
            subscribers: 2,
            video_kbps: 500,
            packet_size: 1000,
            audio: true,
            duration: 6.0,
            ramp: 0.5,
            server_pid: None,
            spawn_server: false,
            server_bin: None,
            server_cpu: 0,
            cpu: -1,
            verify_every: 1,
            json: None,
        })
    });
    // Find the room's port once it exists, then spray it for ~3 s.
    let end = Instant::now() + Duration::from_secs(5);
    let port = loop {
        assert!(Instant::now() < end, "room opened");
        if metric(addr, "sfu_rooms ") == 1 {
            break 49200u16;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(2000));
    let room: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let stranger = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures/packets");
    let mut samples: Vec<Vec<u8>> = std::fs::read_dir(fixtures)
        .map(|d| {
            d.flatten()
                .filter_map(|e| std::fs::read(e.path()).ok())
                .collect()
        })
        .unwrap_or_default();
    let mut seed = 99u32;
    let mut rnd = || {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        (seed >> 16) as u8
    };
    for first in [0u8, 1, 22, 0x80, 0x90, 200, 255] {
        let mut d: Vec<u8> = (0..200).map(|_| rnd()).collect();
        d[0] = first;
        samples.push(d);
    }
    let spray_end = Instant::now() + Duration::from_secs(3);
    let mut sent = 0u64;
    while Instant::now() < spray_end && sent < 20_000 {
        let s = &samples[(sent as usize) % samples.len()];
        let cut = (rnd() as usize) % (s.len() + 1);
        let _ = stranger.send_to(&s[..cut.max(1)], room);
        sent += 1;
        if sent.is_multiple_of(200) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let summary = load.join().expect("load thread").expect("load run");
    assert_eq!(summary.joined, 3, "{:?}", summary.join_failures);
    assert!(summary.loss_ratio < 0.02, "the call went on: {summary:?}");
    assert_eq!(summary.verify_failures, 0);
    let drops = metric(addr, "sfu_worker_drops_total");
    assert!(
        drops > sent / 2,
        "garbage shows in the drop counters: {drops} of {sent}"
    );
    srv.stop().expect("clean stop");
}
