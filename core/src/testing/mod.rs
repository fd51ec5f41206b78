//! In-memory network for scenario tests and benches: one [`Router`] and any
//! number of client-role peers ([`ClientPeer`]) on a virtual clock. No
//! sockets, no sleeps. Datagrams are delivered by [`Net::step`], or, on a
//! shaped [`Link`] (delay, jitter that reorders, a rate limit with a
//! drop-tail queue, seeded loss), by [`Net::advance`] when they arrive.
//!
//! Not used by the server itself.
#![allow(clippy::expect_used, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::bwe::twcc_receiver::{FEEDBACK_INTERVAL, TwccReceiver};
use crate::client::{ClientParams, ClientPeer, ClientReceived};
use crate::proto::codec::VideoCodec;
use crate::proto::dtls::{Certificate, DtlsRole, default_config};
use crate::proto::rtp::{Extension, ExtensionMap, RtpHeader};
use crate::router::{
    ConsumerParams, EncodingParams, MediaKind, ProducerParams, Router, RouterConfig,
};
use crate::stats::Counters;
use crate::transport::{Transmit, TransportParams};
use crate::{ConsumerId, Mid, ProducerId, Pt, Rid, RouterId, Ssrc, TransportId};

mod packets;
mod pipe;
mod recordings;
mod simulcast;

pub use packets::{av1_rtp, take_plis};
pub use pipe::{PIPE_SSRC_BASE, PipedNets};
pub use recordings::{AV1_DD_EXT_ID, Av1L3t3Play, av1_l3t3_replayed, testdata_rtp};
pub use simulcast::{FRAME, Layer, MAX_PACKET, SimulcastSource, TAGGED_PACKETS};

pub const SERVER: &str = "127.0.0.1:40000";
/// The transport-wide sequence number extension id of the harness's producers.
pub const TWCC_EXT_ID: u8 = 3;
/// The audio level extension id of the harness's audio producers.
pub const AUDIO_LEVEL_EXT_ID: u8 = 1;
/// The MID header extension id publishers use (RFC 8843 §15).
pub const MID_EXT_ID: u8 = 4;
/// The RID header extension id publishers use (RFC 8852 §3.1).
pub const RID_EXT_ID: u8 = 6;
/// The repaired RID header extension id publishers use (RFC 8852 §3.2).
pub const REPAIRED_RID_EXT_ID: u8 = 7;
/// The ids the harness's subscribers negotiated for the audio level and
/// abs-send-time (the MID is 4).
pub const SUBSCRIBER_AUDIO_LEVEL_EXT_ID: u8 = 10;
pub const SUBSCRIBER_ABS_SEND_TIME_EXT_ID: u8 = 11;

/// One direction of a peer's path, like str0m's netem: seeded loss, a
/// bottleneck (rate limit and a drop-tail queue), a fixed delay and a
/// random extra delay (jitter: later datagrams may overtake earlier ones).
#[derive(Debug, Clone, Default)]
pub struct Link {
    /// Share of datagrams dropped at random (0–1).
    pub loss: f64,
    /// The bottleneck's rate, bit/s; `None`: unlimited.
    pub rate_bps: Option<u64>,
    /// The longest the bottleneck's queue may hold a datagram before it
    /// drops newcomers (drop-tail).
    pub queue_limit: Duration,
    /// Propagation delay.
    pub delay: Duration,
    /// Extra delay, uniform in `[0, jitter)`, per datagram.
    pub jitter: Duration,
    /// Datagrams dropped by the queue.
    pub queue_drops: u64,
    busy_until: Option<Instant>,
    /// (arrival, order sent, datagram).
    in_flight: Vec<(Instant, u64, Vec<u8>)>,
    sent: u64,
}

impl Link {
    fn shaped(&self) -> bool {
        self.rate_bps.is_some() || !self.delay.is_zero() || !self.jitter.is_zero()
    }

    /// When a datagram of `len` bytes sent at `now` arrives, or `None` when
    /// it is lost or the queue is full.
    fn admit(&mut self, now: Instant, len: usize, rng: &mut SeededRng) -> Option<Instant> {
        if rng.next_f64() < self.loss {
            return None;
        }
        let mut at = now;
        if let Some(rate) = self.rate_bps {
            let start = self.busy_until.map_or(now, |b| b.max(now));
            if start - now > self.queue_limit {
                self.queue_drops += 1;
                return None;
            }
            at = start + Duration::from_nanos(len as u64 * 8 * 1_000_000_000 / rate.max(1));
            self.busy_until = Some(at);
        }
        let jitter = if self.jitter.is_zero() {
            Duration::ZERO
        } else {
            self.jitter.mul_f64(rng.next_f64())
        };
        Some(at + self.delay + jitter)
    }

    /// Datagrams that arrived by `now`, in arrival order.
    fn arrived(&mut self, now: Instant) -> Vec<(Instant, Vec<u8>)> {
        if self.in_flight.is_empty() {
            return Vec::new();
        }
        self.in_flight.sort_by_key(|(t, n, _)| (*t, *n));
        let due = self.in_flight.partition_point(|(t, _, _)| *t <= now);
        self.in_flight
            .drain(..due)
            .map(|(t, _, d)| (t, d))
            .collect()
    }
}

#[derive(Debug)]
pub struct Peer {
    pub client: ClientPeer,
    pub addr: SocketAddr,
    pub transport: TransportId,
    pub rtp: Vec<Bytes>,
    pub rtcp: Vec<Bytes>,
    pub errors: usize,
    /// This peer's datagrams to the server.
    pub up: Link,
    /// The server's datagrams to this peer.
    pub down: Link,
    /// When set, the peer records the transport-wide sequence numbers the
    /// server stamps and sends it transport-cc feedback every 50 ms.
    pub twcc: Option<TwccReceiver>,
    twcc_due: Option<Instant>,
}

/// A seeded xorshift64* generator: the network's losses repeat run to run.
#[derive(Debug, Clone)]
pub struct SeededRng(u64);

impl SeededRng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Debug)]
pub struct Net {
    pub router: Router,
    pub peers: Vec<Peer>,
    pub now: Instant,
    pub server_cert: Certificate,
    pub server: SocketAddr,
    /// Decides the links' losses and jitter ([`Link`]).
    pub rng: SeededRng,
    /// The transport-wide sequence number extension id consumers are
    /// created with (none by default).
    pub subscriber_twcc_ext_id: Option<u8>,
    /// (publisher's, subscriber's) id of the AV1 dependency descriptor
    /// extension for producers and consumers made from now on; producers
    /// are then AV1.
    pub dependency_descriptor_ext_ids: Option<(u8, u8)>,
    /// What the Router sent to addresses that are none of its peers (a
    /// relay's datagrams to another node), for the test to carry.
    pub outside: Vec<Transmit>,
    /// Peers added from now on negotiate data channels (both sides run
    /// SCTP once DTLS is up).
    pub data_channels: bool,
    /// The `a=max-message-size` the clients added from now on "signal"
    /// (0: none).
    pub remote_max_message: usize,
    /// The SCTP limits of the clients added from now on.
    pub client_sctp: crate::proto::sctp::SctpConfig,
}

pub fn server_addr() -> SocketAddr {
    SERVER.parse().expect("addr")
}

impl Default for Net {
    fn default() -> Self {
        Self::new()
    }
}

impl Net {
    pub fn new() -> Self {
        Self::with_config(RouterConfig::default())
    }

    pub fn with_config(config: RouterConfig) -> Self {
        let server_cert = Certificate::generate().expect("cert");
        let now = Instant::now();
        let router = Router::new(
            RouterId(1),
            server_cert.clone(),
            default_config(),
            config,
            Arc::new(Counters::default()),
            Arc::new(Counters::default()),
            now,
        );
        Self {
            router,
            peers: Vec::new(),
            now,
            server_cert,
            server: server_addr(),
            rng: SeededRng::new(0x5eed),
            subscriber_twcc_ext_id: None,
            dependency_descriptor_ext_ids: None,
            outside: Vec::new(),
            data_channels: false,
            client_sctp: Default::default(),
            remote_max_message: 0,
        }
    }

    /// Adds a peer whose server-side transport expects `server_ufrag`/`server_pwd`,
    /// while the client uses `client_ufrag_for_server`/`client_pwd_for_server`
    /// (so tests can make them disagree).
    pub fn add_peer_with(
        &mut self,
        server_pwd: &str,
        client_knows_ufrag: Option<&str>,
        client_knows_pwd: Option<&str>,
        server_expects_fp: Option<[u8; 32]>,
    ) -> usize {
        let n = self.peers.len();
        let ufrag = format!("srv{n}x");
        let client_cert = Certificate::generate().expect("cert");
        let transport = self
            .router
            .create_transport(
                self.now,
                TransportParams {
                    local_ufrag: ufrag.clone(),
                    local_pwd: server_pwd.to_string(),
                    remote_fingerprint: server_expects_fp.unwrap_or(client_cert.fingerprint()),
                    dtls_role: DtlsRole::Server,
                    sctp_max_message_size: self.data_channels.then_some(self.remote_max_message),
                },
            )
            .expect("transport");
        let client = ClientPeer::new(
            ClientParams {
                local_ufrag: format!("cli{n}"),
                local_pwd: "client-password-0123456789".into(),
                remote_ufrag: client_knows_ufrag.unwrap_or(&ufrag).to_string(),
                remote_pwd: client_knows_pwd.unwrap_or(server_pwd).to_string(),
                remote_fingerprint: self.server_cert.fingerprint(),
                server: self.server,
            },
            &client_cert,
            default_config(),
            self.now,
        );
        let client = if self.data_channels {
            client.with_sctp_config(self.client_sctp)
        } else {
            client
        };
        let addr: SocketAddr = format!("127.0.0.1:{}", 50000 + n).parse().expect("addr");
        self.peers.push(Peer {
            client,
            addr,
            transport,
            rtp: Vec::new(),
            rtcp: Vec::new(),
            errors: 0,
            up: Link::default(),
            down: Link::default(),
            twcc: None,
            twcc_due: None,
        });
        n
    }

    pub fn add_peer(&mut self) -> usize {
        self.add_peer_with("serverpassword-0123456789", None, None, None)
    }

    /// Sends every datagram waiting until nobody has anything to send:
    /// unshaped links deliver at once, shaped ones when [`Self::advance`]
    /// reaches their arrival.
    pub fn step(&mut self) {
        for _ in 0..1000 {
            let mut moved = false;
            for i in 0..self.peers.len() {
                while let Some(d) = self.peers[i].client.poll_transmit() {
                    moved = true;
                    let Some(at) = self.peers[i].up.admit(self.now, d.len(), &mut self.rng) else {
                        continue;
                    };
                    let up = &mut self.peers[i].up;
                    if up.shaped() {
                        up.sent += 1;
                        up.in_flight.push((at, up.sent, d.to_vec()));
                        continue;
                    }
                    let from = self.peers[i].addr;
                    self.router.handle_datagram(self.now, from, &mut d.to_vec());
                }
            }
            while let Some(t) = self.router.poll_transmit() {
                moved = true;
                let Some(p) = self.peers.iter_mut().find(|p| p.addr == t.dest) else {
                    self.outside.push(t);
                    continue;
                };
                let Some(at) = p.down.admit(self.now, t.data.len(), &mut self.rng) else {
                    continue;
                };
                if p.down.shaped() {
                    p.down.sent += 1;
                    p.down.in_flight.push((at, p.down.sent, t.data));
                    continue;
                }
                let now = self.now;
                self.deliver_to_peer(t.dest, now, &t.data);
            }
            if !moved {
                return;
            }
        }
        panic!("network did not settle");
    }

    fn deliver_to_peer(&mut self, dest: SocketAddr, at: Instant, data: &[u8]) {
        let server = self.server;
        if let Some(p) = self.peers.iter_mut().find(|p| p.addr == dest) {
            match p.client.handle_datagram(at, server, data) {
                Ok(ClientReceived::Rtp(b)) => {
                    if let Some(tw) = &mut p.twcc
                        && let Some(h) = RtpHeader::parse(&b)
                        && let Some(&[x, y]) = h.extension(&b, tw.ext_id)
                    {
                        tw.on_packet(at, u16::from_be_bytes([x, y]));
                    }
                    p.rtp.push(b)
                }
                Ok(ClientReceived::Rtcp(b)) => p.rtcp.push(b),
                Ok(ClientReceived::Nothing) => {}
                Err(_) => p.errors += 1,
            }
        }
    }

    /// Has peer `peer` send transport-cc feedback on what the server
    /// stamps with extension id `ext_id` (see [`Peer::twcc`]).
    pub fn send_twcc_feedback(&mut self, peer: usize, ext_id: u8) {
        self.peers[peer].twcc = Some(TwccReceiver::new(ext_id, self.now));
    }

    /// Moves the virtual clock by `d` in 10 ms ticks: datagrams on shaped
    /// links arrive (each at its own arrival time), due timers fire, and
    /// peers send their transport-cc feedback.
    pub fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            let tick = (self.now + Duration::from_millis(10)).min(end);
            for i in 0..self.peers.len() {
                for (at, mut d) in self.peers[i].up.arrived(tick) {
                    let from = self.peers[i].addr;
                    self.router.handle_datagram(at, from, &mut d);
                }
                let addr = self.peers[i].addr;
                for (at, d) in self.peers[i].down.arrived(tick) {
                    self.deliver_to_peer(addr, at, &d);
                }
            }
            self.now = tick;
            if self.router.poll_timeout().is_some_and(|t| t <= self.now) {
                self.router.handle_timeout(self.now);
            }
            for (n, p) in self.peers.iter_mut().enumerate() {
                if p.client.poll_timeout() <= self.now {
                    p.client.handle_timeout(self.now);
                }
                if let Some(tw) = &mut p.twcc
                    && tw.has_pending()
                    && p.twcc_due.is_none_or(|t| t <= self.now)
                {
                    let mut fb = Vec::new();
                    tw.write_feedback(Ssrc(0x7c00 + n as u32), Ssrc(0), &mut fb);
                    p.client.send_rtcp(&fb);
                    p.twcc_due = Some(self.now + FEEDBACK_INTERVAL);
                }
            }
            self.step();
        }
    }

    /// Runs until every peer is connected (at most 5 virtual seconds).
    pub fn connect_all(&mut self) {
        self.step();
        for _ in 0..500 {
            if self.peers.iter().all(|p| p.client.is_connected()) {
                return;
            }
            self.advance(Duration::from_millis(10));
        }
        panic!("peers did not connect");
    }

    pub fn produce(&mut self, peer: usize, kind: MediaKind, ssrc: u32, pt: u8) -> ProducerId {
        self.produce_with_rtx(peer, kind, ssrc, pt, None)
    }

    /// As [`Self::produce`], with an RTX stream `(rtx SSRC, rtx payload type)`.
    pub fn produce_with_rtx(
        &mut self,
        peer: usize,
        kind: MediaKind,
        ssrc: u32,
        pt: u8,
        rtx: Option<(u32, u8)>,
    ) -> ProducerId {
        self.router
            .create_producer(ProducerParams {
                transport: self.peers[peer].transport,
                kind,
                encodings: vec![EncodingParams::single(
                    Ssrc(ssrc),
                    rtx.map(|(s, _)| Ssrc(s)),
                )],
                mid: Mid::new("0"),
                payload_types: vec![Pt(pt)],
                video_codec: (kind == MediaKind::Video).then_some(
                    match self.dependency_descriptor_ext_ids {
                        Some(_) => VideoCodec::Av1,
                        None => VideoCodec::Vp8,
                    },
                ),
                rtx_payload_types: rtx.map(|(_, p)| (Pt(p), Pt(pt))).into_iter().collect(),
                extensions: ExtensionMap::EMPTY
                    .with(Extension::TransportWideCc, Some(TWCC_EXT_ID))
                    .with(
                        Extension::AudioLevel,
                        (kind == MediaKind::Audio).then_some(AUDIO_LEVEL_EXT_ID),
                    )
                    .with(
                        Extension::DependencyDescriptor,
                        self.dependency_descriptor_ext_ids.map(|(p, _)| p),
                    ),
                keep_gop: false,
            })
            .expect("producer")
    }

    /// A VP8 simulcast producer on `peer` with MID "0" and one encoding per
    /// RID, whose SSRCs are bound from the MID and RID extensions
    /// ([`MID_EXT_ID`], [`RID_EXT_ID`]); RTX payload type `rtx_pt` for 96,
    /// bound by repaired RID.
    pub fn produce_simulcast(&mut self, peer: usize, rids: &[&str], rtx_pt: u8) -> ProducerId {
        self.router
            .create_producer(ProducerParams {
                transport: self.peers[peer].transport,
                kind: MediaKind::Video,
                encodings: rids
                    .iter()
                    .map(|r| EncodingParams {
                        rid: Rid::new(r),
                        ssrc: None,
                        rtx_ssrc: None,
                    })
                    .collect(),
                mid: Mid::new("0"),
                payload_types: vec![Pt(96)],
                video_codec: Some(VideoCodec::Vp8),
                rtx_payload_types: vec![(Pt(rtx_pt), Pt(96))],
                extensions: ExtensionMap::EMPTY
                    .with(Extension::TransportWideCc, Some(TWCC_EXT_ID))
                    .with(Extension::Mid, Some(MID_EXT_ID))
                    .with(Extension::Rid, Some(RID_EXT_ID))
                    .with(Extension::RepairedRid, Some(REPAIRED_RID_EXT_ID)),
                keep_gop: false,
            })
            .expect("producer")
    }

    pub fn consume(
        &mut self,
        peer: usize,
        producer: ProducerId,
        ssrc: u32,
        pt_map: (u8, u8),
    ) -> ConsumerId {
        self.consume_with_rtx(peer, producer, ssrc, pt_map, None)
    }

    /// As [`Self::consume`], with the subscriber's RTX `(SSRC, payload type)`.
    pub fn consume_with_rtx(
        &mut self,
        peer: usize,
        producer: ProducerId,
        ssrc: u32,
        pt_map: (u8, u8),
        rtx: Option<(u32, u8)>,
    ) -> ConsumerId {
        let now = self.now;
        self.router
            .create_consumer(
                now,
                ConsumerParams {
                    transport: self.peers[peer].transport,
                    producer,
                    ssrc: Ssrc(ssrc),
                    mid: Mid::new("5"),
                    extensions: ExtensionMap::EMPTY
                        .with(Extension::Mid, Some(4))
                        .with(Extension::TransportWideCc, self.subscriber_twcc_ext_id)
                        .with(Extension::AudioLevel, Some(SUBSCRIBER_AUDIO_LEVEL_EXT_ID))
                        .with(
                            Extension::AbsSendTime,
                            Some(SUBSCRIBER_ABS_SEND_TIME_EXT_ID),
                        )
                        .with(
                            Extension::DependencyDescriptor,
                            self.dependency_descriptor_ext_ids.map(|(_, s)| s),
                        ),
                    pt_map: vec![(Pt(pt_map.0), Pt(pt_map.1))],
                    paused: false,
                    rtx: rtx.map(|(s, p)| (Ssrc(s), Pt(p))),
                },
            )
            .expect("consumer")
    }

    /// Has peer `peer` answer a full-ICE server's check; returns the response.
    pub fn server_check_answered(&mut self, peer: usize) -> bool {
        let mut buf = [0u8; 256];
        let n = crate::proto::stun::encode_binding_request(
            [5; 12],
            &format!("cli{peer}"),
            "srv",
            "client-password-0123456789",
            false,
            &mut buf,
        )
        .expect("encode");
        let (now, server) = (self.now, self.server);
        let p = &mut self.peers[peer];
        while p.client.poll_transmit().is_some() {}
        p.client.handle_datagram(now, server, &buf[..n]).is_ok()
            && p.client.poll_transmit().is_some_and(|r| {
                crate::proto::stun::verify_binding_success(&r, "client-password-0123456789").is_ok()
            })
    }

    /// Sends one hand-made, valid ICE check with USE-CANDIDATE from `peer`'s
    /// address, as the client would; returns the raw bytes (for tampering).
    pub fn raw_check(&mut self, peer: usize, pwd: &str, tamper: impl FnOnce(&mut [u8])) {
        let ufrag = self
            .router
            .transport(self.peers[peer].transport)
            .expect("transport")
            .local_ufrag()
            .to_string();
        let mut buf = [0u8; 256];
        let n = crate::proto::stun::encode_binding_request(
            [9; 12], &ufrag, "cli0", pwd, true, &mut buf,
        )
        .expect("encode");
        tamper(&mut buf[..n]);
        let (now, from) = (self.now, self.peers[peer].addr);
        self.router.handle_datagram(now, from, &mut buf[..n]);
    }

    pub fn counters(&self) -> &Counters {
        self.router.counters()
    }
}

/// An RTP packet with one-byte header extensions (RFC 8285 §4.2) `exts`
/// (id, value of 1–16 bytes), and the marker bit when `marker`.
pub fn rtp_with_ext(
    pt: u8,
    seq: u16,
    ts: u32,
    ssrc: u32,
    marker: bool,
    exts: &[(u8, &[u8])],
    payload: &[u8],
) -> Vec<u8> {
    let mut p = vec![
        if exts.is_empty() { 0x80 } else { 0x90 },
        pt | if marker { 0x80 } else { 0 },
    ];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    if !exts.is_empty() {
        let mut body = Vec::new();
        for (id, v) in exts {
            body.push((id << 4) | (v.len() as u8 - 1));
            body.extend_from_slice(v);
        }
        body.resize(body.len().div_ceil(4) * 4, 0);
        p.extend_from_slice(&[0xBE, 0xDE]);
        p.extend_from_slice(&((body.len() / 4) as u16).to_be_bytes());
        p.extend_from_slice(&body);
    }
    p.extend_from_slice(payload);
    p
}

/// A plain RTP packet: V=2, PT, seq, timestamp, SSRC, then `payload`.
pub fn rtp(pt: u8, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, pt];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}
