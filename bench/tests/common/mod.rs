//! Shared by the lifecycle tests: a real client (signaling, ICE, DTLS, SRTP
//! from sfu-core's client peer), process figures and the in-process server.
#![allow(dead_code, unused_imports)]

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

pub(crate) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(crate) struct Client {
    pub spec: ClientSpec,
    pub ws: Ws,
    pub peer: ClientPeer,
    pub sock: UdpSocket,
    pub server: SocketAddr,
    pub rtp_received: usize,
    pub version: u64,
}

pub(crate) fn spec(
    idx: usize,
    room: &str,
    cert: &Certificate,
    publisher: bool,
) -> (ClientSpec, UdpSocket) {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_nonblocking(true).expect("nonblocking");
    let spec = ClientSpec {
        idx,
        name: format!("c{idx}"),
        room: room.into(),
        publisher,
        viewer: false,
        audio: true,
        ufrag: format!("u{idx:05}"),
        pwd: format!("lifecycle-password-{idx:08}"),
        fingerprint: cert.fingerprint_sdp(),
        local: sock.local_addr().expect("addr"),
        video_ssrc: 1000 + idx as u32,
        audio_ssrc: 2000 + idx as u32,
        data_channels: false,
    };
    (spec, sock)
}

pub(crate) async fn next_text(ws: &mut Ws, within: Duration) -> Option<serde_json::Value> {
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
    pub(crate) async fn connect(
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
    pub(crate) fn pump(&mut self) {
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
    pub(crate) async fn signaling(&mut self, within: Duration) -> Vec<serde_json::Value> {
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

    pub(crate) async fn leave(mut self) {
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

    pub(crate) fn send_rtp(&mut self, seq: u16) {
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

pub(crate) fn self_rss() -> u64 {
    sfu_bench::load::report::process_rss_bytes(std::process::id()).expect("rss")
}

pub(crate) fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .expect("fds")
}

/// What each open descriptor points at (for the failure message).
pub(crate) fn fd_targets() -> Vec<String> {
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

pub(crate) fn metric(addr: SocketAddr, name: &str) -> u64 {
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

pub(crate) fn server(ports: &str, flags: Flags) -> Background {
    let cfg = Config::load(Flags {
        rtc_ports: Some(ports.into()),
        rtc_listen_ip: Some("127.0.0.1".into()),
        cores: Some("1".into()),
        // Tests run side by side: each ICE-TCP listener on a free port.
        rtc_tcp_port: Some("0".into()),
        ..flags
    })
    .expect("config");
    Background::start(
        cfg,
        std::net::TcpListener::bind("127.0.0.1:0").expect("bind"),
    )
    .expect("server")
}

pub(crate) fn block_on<F: std::future::Future>(within: Duration, f: F) -> F::Output {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async { tokio::time::timeout(within, f).await.expect("watchdog") })
}
