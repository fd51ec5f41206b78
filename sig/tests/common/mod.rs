//! The hub driven directly, against fake data-plane workers: each fake
//! answers commands on a thread of its own, allocating ids exactly as the
//! real router does (`IdSlab`), records what it was sent, and can be
//! stalled or made to expire a transport. Every wait is bounded.
#![allow(dead_code)]

use sfu_core::proto::rtp::{Extension, ExtensionMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sfu_core::router::RouterEvent;
use sfu_core::slab::IdSlab;
use sfu_core::stats::Counters;
use sfu_core::transport::CloseReason;
use sfu_core::worker::{Command, CommandSender, Event, RouterInfo};
use sfu_core::{ConsumerId, ProducerId, RouterId, TransportId};
use sfu_sig::config::Limits;
use sfu_sig::conn::{ConnHandle, Outgoing};
use sfu_sig::hub::{Hub, HubConfig, HubMsg, Registry, Spawner};
use sfu_sig::protocol::{ClientMsg, Role};
use sfu_sig::sdp::{self, Direction, LocalMedia, LocalParams};
use tokio::sync::{mpsc, oneshot};

pub(crate) const OFFER: &str = include_str!("../../../testdata/sdp/offer-audio-video-sendrecv.sdp");
pub(crate) const RECVONLY_OFFER: &str =
    include_str!("../../../testdata/sdp/offer-recvonly-audio-video.sdp");

/// What a fake worker knows and did.
#[derive(Debug, Default)]
pub(crate) struct FakeState {
    pub commands: Vec<String>,
    pub transports: IdSlab<TransportId, RouterId>,
    pub producers: IdSlab<ProducerId, ()>,
    pub consumers: IdSlab<ConsumerId, ()>,
    pub paused: Vec<(ConsumerId, bool)>,
    pub closed_consumers: Vec<ConsumerId>,
    /// The parameters of every consumer created.
    pub consumer_params: Vec<sfu_core::router::ConsumerParams>,
    /// Every consumer created, in order (matches `consumer_params`).
    pub consumer_ids: Vec<ConsumerId>,
    /// Every producer created, in order, with its router.
    pub producer_ids: Vec<(RouterId, ProducerId)>,
    /// The parameters of every producer created (matches `producer_ids`).
    pub producer_params: Vec<sfu_core::router::ProducerParams>,
    /// Every transport closed, in order.
    pub closed_transports: Vec<TransportId>,
    /// Refuse pipe ends (a worker that cannot take them).
    pub refuse_pipes: bool,
    /// Every pipe end created, with its router.
    pub pipe_ends: Vec<(RouterId, TransportId)>,
    /// Every pipe consumer created, in order (matches `pipe_consumers`).
    pub pipe_consumer_ids: Vec<ConsumerId>,
    /// The parameters of every pipe consumer created.
    pub pipe_consumers: Vec<sfu_core::router::PipeConsumerParams>,
}

/// A stand-in worker thread.
#[derive(Debug, Clone)]
pub(crate) struct FakeWorker {
    pub tx: CommandSender,
    pub counters: Arc<Counters>,
    pub state: Arc<Mutex<FakeState>>,
    /// While set, the worker takes commands but answers none (a wedged worker).
    pub stalled: Arc<AtomicBool>,
}

impl FakeWorker {
    pub(crate) fn spawn() -> Self {
        let (tx, rx) = crossbeam_channel::bounded::<Command>(4096);
        let state = Arc::new(Mutex::new(FakeState::default()));
        let stalled = Arc::new(AtomicBool::new(false));
        let (st, stall) = (state.clone(), stalled.clone());
        std::thread::spawn(move || {
            let mut held = Vec::new();
            while let Ok(cmd) = rx.recv_timeout(Duration::from_secs(120)) {
                let mut s = st.lock().expect("state");
                s.commands.push(format!("{cmd:?}"));
                if stall.load(Ordering::Relaxed) {
                    held.push(cmd); // never answered
                    continue;
                }
                match cmd {
                    Command::CreateRouter { reply, .. } => reply(Ok(RouterInfo {
                        local_addr: "127.0.0.1:40000".parse().expect("addr"),
                        counters: Arc::new(Counters::default()),
                    })),
                    Command::CreateTransport { router, reply, .. } => {
                        let id = s.transports.insert(router);
                        reply(Ok(id))
                    }
                    Command::CreateProducer {
                        router,
                        params,
                        reply,
                    } => {
                        let id = s.producers.insert(());
                        s.producer_ids.push((router, id));
                        s.producer_params.push(params);
                        reply(Ok(id))
                    }
                    Command::CreateConsumer { params, reply, .. } => {
                        s.consumer_params.push(params);
                        let id = s.consumers.insert(());
                        s.consumer_ids.push(id);
                        reply(Ok(id))
                    }
                    Command::CreatePipeTransport { reply, .. } if s.refuse_pipes => {
                        reply(Err(sfu_core::Error::QueueFull))
                    }
                    Command::CreatePipeTransport { router, reply } => {
                        let id = s.transports.insert(router);
                        s.pipe_ends.push((router, id));
                        reply(Ok(id))
                    }
                    Command::ConnectPipeTransport { reply, .. } => reply(Ok(())),
                    Command::CreatePipeConsumer { params, reply, .. } => {
                        let id = s.consumers.insert(());
                        s.pipe_consumers.push(params);
                        s.pipe_consumer_ids.push(id);
                        reply(Ok(id))
                    }
                    Command::CloseTransport { transport, .. } => {
                        s.closed_transports.push(transport);
                        s.transports.try_remove(transport);
                    }
                    Command::CloseConsumer { consumer, .. } => {
                        s.consumers.try_remove(consumer);
                        s.closed_consumers.push(consumer);
                    }
                    Command::SetConsumerPaused {
                        consumer, paused, ..
                    } => s.paused.push((consumer, paused)),
                    Command::Ping { reply } => reply(Ok(())),
                    Command::Shutdown => break,
                    _ => {}
                }
            }
            drop(held);
        });
        Self {
            tx: CommandSender::new(tx, None),
            counters: Arc::new(Counters::default()),
            state,
            stalled,
        }
    }

    pub(crate) fn count(&self, name: &str) -> usize {
        let s = self.state.lock().expect("state");
        s.commands.iter().filter(|c| *c == name).count()
    }

    /// Removes a transport as a consent timeout would, and returns the event
    /// the worker would send (the test decides when the hub gets it).
    pub(crate) fn expire(&self, transport: TransportId) -> Event {
        let mut s = self.state.lock().expect("state");
        let router = s.transports.try_remove(transport).expect("live transport");
        Event::Router {
            router,
            event: RouterEvent::TransportClosed(transport, CloseReason::ConsentExpired),
        }
    }

    /// Waits (up to 5 s) until at least `n` consumers were resumed.
    pub(crate) async fn wait_resumed(&self, n: usize) {
        let end = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let resumed = {
                let s = self.state.lock().expect("state");
                s.paused.iter().filter(|(_, p)| !p).count()
            };
            if resumed >= n {
                return;
            }
            assert!(
                std::time::Instant::now() < end,
                "{resumed} of {n} consumers resumed"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The newest live transport.
    pub(crate) fn last_transport(&self) -> TransportId {
        let s = self.state.lock().expect("state");
        s.transports
            .iter()
            .map(|(id, _)| id)
            .max_by_key(|id| id.0 >> 32)
            .expect("a transport")
    }
}

pub(crate) fn hub_config(offer_timeout: Duration) -> HubConfig {
    HubConfig {
        announced_ip: "127.0.0.1".parse().expect("ip"),
        fingerprint: sfu_core::proto::dtls::format_fingerprint(&[1; 32]),
        limits: Limits::default(),
        auth_secret: None,
        offer_timeout,
        recordings: Default::default(),
        data_channels: Default::default(),
        ice_servers: Vec::new(),
    }
}

/// A hub on its own task over `workers`; with `respawn`, a failed worker is
/// replaced by a new fake, recorded in the returned list.
pub(crate) struct TestHub {
    pub tx: mpsc::Sender<HubMsg>,
    pub workers: Vec<FakeWorker>,
    pub spawned: Arc<Mutex<Vec<(usize, u32, FakeWorker)>>>,
    pub registry: Arc<Registry>,
    task: tokio::task::JoinHandle<()>,
    next_conn: u64,
}

impl TestHub {
    pub(crate) fn start(n: usize, cfg: HubConfig, respawn: bool) -> Self {
        let workers: Vec<FakeWorker> = (0..n).map(|_| FakeWorker::spawn()).collect();
        let spawned = Arc::new(Mutex::new(Vec::new()));
        let spawner: Option<Spawner> = respawn.then(|| {
            let spawned = spawned.clone();
            let s: Spawner = Arc::new(move |i, generation| {
                let w = FakeWorker::spawn();
                let out = (w.tx.clone(), w.counters.clone());
                spawned.lock().expect("spawned").push((i, generation, w));
                Ok(out)
            });
            s
        });
        let (tx, rx) = mpsc::channel(sfu_sig::hub::HUB_QUEUE);
        let registry = Arc::new(Registry::default());
        let hub = Hub::new(
            cfg,
            workers
                .iter()
                .map(|w| (w.tx.clone(), w.counters.clone()))
                .collect(),
            registry.clone(),
            spawner,
            tx.clone(),
        );
        let task = tokio::spawn(hub.run(rx));
        Self {
            tx,
            workers,
            spawned,
            registry,
            task,
            next_conn: 1,
        }
    }

    pub(crate) async fn connect(&mut self) -> Client {
        self.connect_with_queue(1024).await
    }

    /// A connection whose outgoing queue holds `queue` messages; when the
    /// queue overflows, it disconnects as the WebSocket task would.
    pub(crate) async fn connect_with_queue(&mut self, queue: usize) -> Client {
        let id = self.next_conn;
        self.next_conn += 1;
        let (conn, rx) = ConnHandle::new(id, queue);
        let (watch, hub) = (conn.clone(), self.tx.clone());
        tokio::spawn(async move {
            watch.closed().await;
            let _ = hub.send(HubMsg::Disconnect { conn: id }).await;
        });
        self.tx
            .send(HubMsg::Connect { conn: conn.clone() })
            .await
            .expect("hub");
        Client {
            id,
            conn,
            rx,
            hub: self.tx.clone(),
            roster: std::collections::BTreeMap::new(),
            viewers: 0,
        }
    }

    /// A new connection that joined `room` and got its answer.
    pub(crate) async fn joined(&mut self, room: &str, name: &str, sdp: &str) -> Client {
        let mut c = self.connect().await;
        c.join(room, name, sdp).await;
        c.expect("answer").await;
        c
    }

    pub(crate) async fn event(&self, ev: Event) {
        self.tx.send(HubMsg::Core(ev)).await.expect("hub");
    }

    pub(crate) async fn stop(self) {
        let (done, wait) = oneshot::channel();
        let _ = self.tx.send(HubMsg::Shutdown { done }).await;
        let _ = tokio::time::timeout(Duration::from_secs(10), wait).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
        for w in self.workers.iter().chain(
            self.spawned
                .lock()
                .expect("spawned")
                .iter()
                .map(|(_, _, w)| w),
        ) {
            w.stalled.store(false, Ordering::Relaxed);
            let _ = w.tx.try_send(Command::Shutdown);
        }
    }
}

/// A signaling client talking to the hub as a WebSocket task would.
pub(crate) struct Client {
    pub id: u64,
    pub conn: ConnHandle,
    pub rx: mpsc::Receiver<Outgoing>,
    hub: mpsc::Sender<HubMsg>,
    /// The room's participants by id as the messages received so far tell
    /// them (the `participants` snapshot, then `deltas`), as a client keeps
    /// them.
    pub roster: std::collections::BTreeMap<String, serde_json::Value>,
    /// The viewer count the messages received so far tell.
    pub viewers: u64,
}

impl Client {
    pub(crate) async fn send(&self, msg: ClientMsg) {
        self.hub
            .send(HubMsg::Client { conn: self.id, msg })
            .await
            .expect("hub");
    }

    pub(crate) async fn join(&self, room: &str, name: &str, sdp: &str) {
        self.join_as(room, name, sdp, None).await;
    }

    /// Joins with `role` (`None`: the server's default, a participant).
    pub(crate) async fn join_as(&self, room: &str, name: &str, sdp: &str, role: Option<Role>) {
        self.send(ClientMsg::Join {
            room: room.into(),
            name: name.into(),
            sdp: sdp.into(),
            token: None,
            role,
            via: Default::default(),
        })
        .await;
    }

    pub(crate) async fn disconnect(&self) {
        self.hub
            .send(HubMsg::Disconnect { conn: self.id })
            .await
            .expect("hub");
    }

    /// The participant named `name` in [`Self::roster`].
    pub(crate) fn listed(&self, name: &str) -> Option<&serde_json::Value> {
        self.roster.values().find(|p| p["name"] == name)
    }

    /// Keeps [`Self::roster`] and [`Self::viewers`] as a client does.
    fn apply_roster(&mut self, v: &serde_json::Value) {
        let id = |p: &serde_json::Value| p["id"].as_str().unwrap_or_default().to_string();
        match v["type"].as_str() {
            Some("participants") => {
                self.roster = v["participants"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| (id(p), p.clone()))
                    .collect();
                self.viewers = v["viewers"].as_u64().unwrap_or(0);
            }
            Some("deltas") => {
                for e in v["events"].as_array().into_iter().flatten() {
                    match e["type"].as_str() {
                        Some("participant-joined" | "participant-updated") => {
                            let p = &e["participant"];
                            self.roster.insert(id(p), p.clone());
                        }
                        Some("participant-left") => {
                            self.roster.remove(e["id"].as_str().unwrap_or_default());
                        }
                        Some("viewers") => self.viewers = e["count"].as_u64().unwrap_or(0),
                        other => panic!("unknown delta {other:?} in {v}"),
                    }
                }
            }
            _ => {}
        }
    }

    /// The next JSON message, within `within`, or `None` when nothing came.
    pub(crate) async fn recv_within(&mut self, within: Duration) -> Option<serde_json::Value> {
        let end = tokio::time::Instant::now() + within;
        loop {
            let text: String = match tokio::time::timeout_at(end, self.rx.recv()).await {
                Ok(Some(Outgoing::Text(t))) => t,
                Ok(Some(Outgoing::Shared(t))) => t.to_string(),
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => return None,
            };
            let v: serde_json::Value = serde_json::from_str(&text).expect("json");
            self.apply_roster(&v);
            return Some(v);
        }
    }

    pub(crate) async fn recv(&mut self) -> serde_json::Value {
        self.recv_within(Duration::from_secs(10))
            .await
            .expect("a message within 10 s")
    }

    /// The next message of type `kind` (or an error with code `kind`),
    /// skipping `participants`, `deltas` and `update`; anything else is a
    /// failure.
    pub(crate) async fn expect(&mut self, kind: &str) -> serde_json::Value {
        loop {
            let v = self.recv().await;
            if v["type"] == kind || v["code"] == kind {
                return v;
            }
            assert!(
                v["type"] == "participants" || v["type"] == "deltas" || v["type"] == "update",
                "expected {kind}, got {v}"
            );
        }
    }

    /// Answers an update offer, refusing (port 0) the m-sections of `refuse` kind.
    pub(crate) async fn answer(&self, offer: &str, refuse: Option<&str>) {
        self.send(ClientMsg::Answer {
            sdp: answer_for(offer, refuse),
        })
        .await;
    }
}

/// Every message until none comes for `within`, answering every update (as
/// a browser would).
pub(crate) async fn drain_answering(c: &mut Client, within: Duration) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    while let Some(m) = c.recv_within(within).await {
        if m["type"] == "update" {
            c.answer(m["sdp"].as_str().expect("sdp"), None).await;
        }
        out.push(m);
    }
    out
}

/// A client's answer to a server `update` offer: receives every `sendonly`
/// section (refusing those of kind `refuse` with port 0), keeps closed ones
/// closed and answers its own sections in kind.
pub(crate) fn answer_for(offer: &str, refuse: Option<&str>) -> String {
    let o = sdp::parse(offer).expect("the server's offer parses");
    let local = LocalParams {
        ice_ufrag: "clnt".into(),
        ice_pwd: "client-password-0123456789".into(),
        fingerprint: sfu_core::proto::dtls::format_fingerprint(&[2; 32]),
        ip: "127.0.0.1".parse().expect("ip"),
        port: 9,
        tcp_port: None,
        session_id: 7,
        session_version: 2,
        ice_lite: false,
    };
    let media: Vec<LocalMedia> = o
        .media
        .iter()
        .map(|m| {
            let kind = m.kind.map(|k| k.as_str());
            let rejected = m.rejected || (refuse.is_some() && kind == refuse);
            LocalMedia {
                mid: m.mid.clone(),
                kind: m.kind,
                media_token: kind.unwrap_or("application").into(),
                direction: match m.direction {
                    Direction::SendOnly => Direction::RecvOnly,
                    Direction::RecvOnly => Direction::SendOnly,
                    d => d,
                },
                codec: m.codecs.first().cloned(),
                // Echoes the MID and the dependency descriptor, as Chromium
                // does.
                extensions: ExtensionMap::EMPTY
                    .with(Extension::Mid, m.extensions.get(Extension::Mid))
                    .with(
                        Extension::DependencyDescriptor,
                        m.extensions.get(Extension::DependencyDescriptor),
                    ),
                send: None,
                rtx: m.codecs.first().and_then(|c| m.rtx_for(c.pt)).cloned(),
                rtx_ssrc: None,
                rejected,
                simulcast_recv: None,
                sctp_port: m.sctp.filter(|_| !rejected).map(|s| s.port),
            }
        })
        .collect();
    sdp::write(&local, "active", &media)
}

/// m-sections in an SDP.
pub(crate) fn sections(sdp: &str) -> usize {
    sdp.lines().filter(|l| l.starts_with("m=")).count()
}

/// Runs `f` on a fresh runtime with a hard timeout.
pub(crate) fn run<F: std::future::Future>(within: Duration, f: F) -> F::Output {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        tokio::time::timeout(within, f)
            .await
            .expect("test watchdog")
    })
}
