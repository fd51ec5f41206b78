//! Rooms and participants: the signaling state machine (DESIGN §3).
//!
//! One tokio task (the hub) owns all state and handles one message at a time,
//! so joins, answers and leaves never race. Data-plane work goes to the
//! room's worker as `Command`s; the hub awaits each reply (a few ms).
//!
//! After the join answer the server is the only offerer: whenever the set of
//! tracks a participant should receive changes, it sends an `update` offer
//! and queues further changes until the answer arrives. New consumers are
//! created paused and resumed only once the subscriber's answer accepted
//! their m-section, so the first keyframe is not lost.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::Sender;
use rand::Rng;
use rand::distr::Alphanumeric;
use sfu_core::proto::dtls::DtlsRole;
use sfu_core::router::{ConsumerParams, MediaKind, ProducerParams};
use sfu_core::stats::Counters;
use sfu_core::transport::{CloseReason, TransportParams};
use sfu_core::worker::{Command, Event, Reply};
use sfu_core::{ConsumerId, Mid, ProducerId, Pt, RouterId, Ssrc, TransportId};
use tokio::sync::{mpsc, oneshot};

use crate::config::Limits;
use crate::protocol::{ClientMsg, ParticipantInfo, ServerMsg, validate_name};
use crate::sdp::{self, Codec, Direction, LocalMedia, LocalParams, PeerSdp};

/// How long the hub waits for a worker's reply.
const CORE_REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// Id of one WebSocket connection.
pub type ConnId = u64;

/// What the hub sends to a connection's writer.
#[derive(Debug)]
pub enum Outgoing {
    /// A JSON text message.
    Text(String),
    /// A WebSocket ping (keep-alive; the client's pong counts as activity).
    Ping,
    /// Close the WebSocket.
    Close,
}

/// Messages to the hub.
#[derive(Debug)]
pub enum HubMsg {
    /// A WebSocket opened.
    Connect {
        /// Connection id.
        conn: ConnId,
        /// Its outgoing queue.
        out: mpsc::UnboundedSender<Outgoing>,
    },
    /// A parsed client message.
    Client {
        /// Connection id.
        conn: ConnId,
        /// The message.
        msg: ClientMsg,
    },
    /// A reply decided by the socket task (a message that did not parse),
    /// sent through the hub so replies keep the order of the requests.
    Reply {
        /// Connection id.
        conn: ConnId,
        /// The reply.
        msg: ServerMsg,
    },
    /// The WebSocket closed.
    Disconnect {
        /// Connection id.
        conn: ConnId,
    },
    /// An event from a worker.
    Core(Event),
    /// Tell everyone, close every room, then reply.
    Shutdown {
        /// Signalled when done.
        done: oneshot::Sender<()>,
    },
}

/// A worker as the hub sees it.
#[derive(Debug, Clone)]
pub struct WorkerRef {
    /// Command channel.
    pub tx: Sender<Command>,
    /// Its counters (for placement and metrics).
    pub counters: Arc<Counters>,
}

/// Per-room figures for `/metrics`.
#[derive(Debug, Clone)]
pub struct RoomView {
    /// Room name.
    pub name: String,
    /// Worker index.
    pub worker: usize,
    /// Participants now.
    pub participants: usize,
    /// The router's counters.
    pub counters: Arc<Counters>,
}

/// Shared, read-mostly view of the rooms for `/metrics` (the hub writes it).
#[derive(Debug, Default)]
pub struct Registry {
    /// Rooms now.
    pub rooms: Mutex<Vec<RoomView>>,
}

/// Static settings of the hub.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Address put in ICE candidates.
    pub announced_ip: IpAddr,
    /// Our DTLS certificate fingerprint, `AB:CD:…`.
    pub fingerprint: String,
    /// Server limits.
    pub limits: Limits,
    /// HS256 secret of join tokens; `None`: open rooms.
    pub auth_secret: Option<String>,
}

type PId = u64;

#[derive(Debug)]
struct Track {
    producer: ProducerId,
    kind: MediaKind,
    codec: Codec,
}

#[derive(Debug)]
struct Slot {
    mid: String,
    kind: MediaKind,
    codec: Codec,
    ssrc: u32,
    publisher: PId,
    producer: ProducerId,
    consumer: Option<ConsumerId>,
    /// Still wanted (false once the publisher left: the m-section goes inactive).
    active: bool,
    /// Accepted by the subscriber's answer and resumed.
    live: bool,
    /// Included as sendonly in the offer now awaiting an answer.
    offered: bool,
}

#[derive(Debug)]
struct Participant {
    id: PId,
    name: String,
    room: String,
    conn: ConnId,
    transport: TransportId,
    local: LocalParams,
    own: Vec<LocalMedia>,
    offer: PeerSdp,
    mid_ext_id: Option<u8>,
    published: Vec<Track>,
    slots: Vec<Slot>,
    next_slot: u32,
    negotiating: bool,
    dirty: bool,
}

#[derive(Debug)]
struct Room {
    worker: usize,
    router: RouterId,
    port: u16,
    counters: Arc<Counters>,
    participants: Vec<PId>,
}

/// The hub: owner of all signaling state.
#[derive(Debug)]
pub struct Hub {
    cfg: HubConfig,
    workers: Vec<WorkerRef>,
    conns: HashMap<ConnId, (mpsc::UnboundedSender<Outgoing>, Option<PId>)>,
    participants: HashMap<PId, Participant>,
    rooms: HashMap<String, Room>,
    registry: Arc<Registry>,
    next_router: u32,
    next_pid: PId,
    /// Workers that failed (a caught panic): no new rooms go there.
    failed_workers: std::collections::HashSet<usize>,
}

/// A failed step of a client request: the error message to send.
struct Fail(ServerMsg);

impl From<sfu_core::Error> for Fail {
    fn from(e: sfu_core::Error) -> Self {
        match e {
            sfu_core::Error::PortRangeExhausted { .. } => Fail(ServerMsg::error(
                "no-capacity",
                format!("the server cannot open another room: {e}"),
            )),
            other => Fail(ServerMsg::error(
                "server-error",
                format!("data plane error: {other}"),
            )),
        }
    }
}

async fn call<T: Send + 'static>(
    tx: &Sender<Command>,
    make: impl FnOnce(Reply<T>) -> Command,
) -> Result<T, sfu_core::Error> {
    let (otx, orx) = oneshot::channel();
    tx.send(make(Box::new(move |r| {
        let _ = otx.send(r);
    })))
    .map_err(|_| sfu_core::Error::WorkerGone)?;
    match tokio::time::timeout(CORE_REPLY_TIMEOUT, orx).await {
        Ok(Ok(r)) => r,
        _ => Err(sfu_core::Error::WorkerGone),
    }
}

fn random_token(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

impl Hub {
    /// Creates the hub for these workers.
    pub fn new(cfg: HubConfig, workers: Vec<WorkerRef>, registry: Arc<Registry>) -> Self {
        Self {
            cfg,
            workers,
            conns: HashMap::new(),
            participants: HashMap::new(),
            rooms: HashMap::new(),
            registry,
            next_router: 1,
            next_pid: 1,
            failed_workers: Default::default(),
        }
    }

    /// Runs until the channel closes or a `Shutdown` is handled.
    pub async fn run(mut self, mut rx: mpsc::UnboundedReceiver<HubMsg>) {
        while let Some(msg) = rx.recv().await {
            match msg {
                HubMsg::Connect { conn, out } => {
                    self.conns.insert(conn, (out, None));
                }
                HubMsg::Client { conn, msg } => self.on_client(conn, msg).await,
                HubMsg::Reply { conn, msg } => self.send_conn(conn, &msg),
                HubMsg::Disconnect { conn } => {
                    if let Some((_, Some(pid))) = self.conns.get(&conn) {
                        let pid = *pid;
                        self.remove_participant(pid, true).await;
                    }
                    self.conns.remove(&conn);
                }
                HubMsg::Core(ev) => self.on_core(ev).await,
                HubMsg::Shutdown { done } => {
                    self.shutdown().await;
                    let _ = done.send(());
                    return;
                }
            }
        }
    }

    fn send_conn(&self, conn: ConnId, msg: &ServerMsg) {
        if let Some((out, _)) = self.conns.get(&conn) {
            let _ = out.send(Outgoing::Text(msg.to_json()));
        }
    }

    fn send(&self, pid: PId, msg: &ServerMsg) {
        if let Some(p) = self.participants.get(&pid) {
            self.send_conn(p.conn, msg);
        }
    }

    async fn on_client(&mut self, conn: ConnId, msg: ClientMsg) {
        let pid = self.conns.get(&conn).and_then(|(_, p)| *p);
        match (msg, pid) {
            (
                ClientMsg::Join {
                    room,
                    name,
                    sdp,
                    token,
                },
                None,
            ) => {
                if let Err(Fail(m)) = self.join(conn, room, name, &sdp, token.as_deref()).await {
                    self.send_conn(conn, &m);
                }
            }
            (ClientMsg::Join { .. }, Some(_)) => {
                self.send_conn(
                    conn,
                    &ServerMsg::error(
                        "already-joined",
                        "leave the current room before joining another",
                    ),
                );
            }
            (ClientMsg::Answer { sdp }, Some(pid)) => self.on_answer(pid, &sdp).await,
            (ClientMsg::Leave, Some(pid)) => {
                self.remove_participant(pid, true).await;
                self.send_conn(conn, &ServerMsg::Left);
            }
            (ClientMsg::Answer { .. } | ClientMsg::Leave, None) => {
                self.send_conn(conn, &ServerMsg::error("not-joined", "join a room first"));
            }
        }
    }

    /// The worker with the fewest transports (then rooms) among those under
    /// the rooms-per-worker limit, or `None` when all are full.
    fn least_loaded_worker(&self) -> Option<usize> {
        let rooms_on = |i: usize| self.rooms.values().filter(|r| r.worker == i).count();
        (0..self.workers.len())
            .filter(|&i| !self.failed_workers.contains(&i))
            .filter(|&i| rooms_on(i) < self.cfg.limits.rooms_per_worker)
            .min_by_key(|&i| (self.workers[i].counters.transports.get(), rooms_on(i), i))
    }

    async fn ensure_room(&mut self, name: &str) -> Result<(), Fail> {
        if self.rooms.contains_key(name) {
            return Ok(());
        }
        let Some(worker) = self.least_loaded_worker() else {
            return Err(Fail(ServerMsg::error(
                "no-capacity",
                format!(
                    "every worker hosts its maximum of {} rooms; try again later",
                    self.cfg.limits.rooms_per_worker
                ),
            )));
        };
        let router = RouterId(self.next_router);
        self.next_router += 1;
        let tx = self
            .workers
            .get(worker)
            .ok_or(Fail(ServerMsg::error("server-error", "no workers")))?
            .tx
            .clone();
        let info = call(&tx, |reply| Command::CreateRouter { router, reply }).await?;
        tracing::info!(
            room = name,
            worker,
            port = info.local_addr.port(),
            "room opened"
        );
        self.rooms.insert(
            name.to_string(),
            Room {
                worker,
                router,
                port: info.local_addr.port(),
                counters: info.counters,
                participants: Vec::new(),
            },
        );
        Ok(())
    }

    async fn close_room_if_empty(&mut self, name: &str) {
        let Some(room) = self.rooms.get(name) else {
            return;
        };
        if !room.participants.is_empty() {
            return;
        }
        let room = self.rooms.remove(name).expect("checked above");
        let _ = self.workers[room.worker].tx.send(Command::CloseRouter {
            router: room.router,
        });
        tracing::info!(room = name, "room closed");
    }

    async fn join(
        &mut self,
        conn: ConnId,
        room: String,
        name: String,
        offer_sdp: &str,
        token: Option<&str>,
    ) -> Result<(), Fail> {
        validate_name("room", &room).map_err(|m| Fail(ServerMsg::error("bad-room", m)))?;
        validate_name("name", &name).map_err(|m| Fail(ServerMsg::error("bad-name", m)))?;
        if let Some(secret) = &self.cfg.auth_secret {
            let claims = crate::auth::verify(secret, token, &room)
                .map_err(|e| Fail(ServerMsg::error(e.code(), e.to_string())))?;
            tracing::debug!(room = %room, identity = %claims.sub, "join token accepted");
        }
        let offer =
            sdp::parse(offer_sdp).map_err(|e| Fail(ServerMsg::error(e.code(), e.to_string())))?;
        sdp::validate_offer(&offer).map_err(|e| Fail(ServerMsg::error(e.code(), e.to_string())))?;
        let limits = self.cfg.limits;
        let publishing = offer
            .media
            .iter()
            .filter(|m| m.port != 0 && m.direction.sends() && m.preferred_codec().is_some())
            .count();
        if publishing > limits.producers_per_participant {
            return Err(Fail(ServerMsg::error(
                "too-many-tracks",
                format!(
                    "the offer sends {publishing} tracks; at most {} are allowed",
                    limits.producers_per_participant
                ),
            )));
        }
        if self
            .rooms
            .get(&room)
            .is_some_and(|r| r.participants.len() >= limits.participants_per_room)
        {
            return Err(Fail(ServerMsg::error(
                "room-full",
                format!(
                    "room {room:?} has its maximum of {} participants",
                    limits.participants_per_room
                ),
            )));
        }
        self.ensure_room(&room).await?;
        let r = &self.rooms[&room];
        let (worker, router, port) = (r.worker, r.router, r.port);
        let tx = self.workers[worker].tx.clone();
        let (dtls_role, setup) = if offer.setup == "passive" {
            (DtlsRole::Client, "active")
        } else {
            (DtlsRole::Server, "passive")
        };
        let local = LocalParams {
            ice_ufrag: random_token(8),
            ice_pwd: random_token(24),
            fingerprint: self.cfg.fingerprint.clone(),
            ip: self.cfg.announced_ip,
            port,
            session_id: rand::random::<u32>() as u64,
            session_version: 1,
            ice_lite: true,
        };
        let params = TransportParams {
            local_ufrag: local.ice_ufrag.clone(),
            local_pwd: local.ice_pwd.clone(),
            remote_fingerprint: offer.fingerprint,
            dtls_role,
        };
        let transport = match call(&tx, |reply| Command::CreateTransport {
            router,
            params,
            reply,
        })
        .await
        {
            Ok(t) => t,
            Err(e) => {
                self.close_room_if_empty(&room).await;
                return Err(e.into());
            }
        };
        let mut own = Vec::new();
        let mut published = Vec::new();
        let mid_ext_id = offer.media.iter().find_map(|m| m.mid_ext_id);
        for m in &offer.media {
            let codec = m.preferred_codec().cloned();
            let publish = m.port != 0 && m.direction.sends() && codec.is_some() && m.ssrc.is_some();
            if publish && let (Some(kind), Some(c), Some(ssrc)) = (m.kind, &codec, m.ssrc) {
                let params = ProducerParams {
                    transport,
                    kind,
                    ssrc: Ssrc(ssrc),
                    rtx_ssrc: m.rtx_ssrc.map(Ssrc),
                    mid: Mid::new(&m.mid),
                    payload_types: vec![Pt(c.pt)],
                };
                match call(&tx, |reply| Command::CreateProducer {
                    router,
                    params,
                    reply,
                })
                .await
                {
                    Ok(producer) => published.push(Track {
                        producer,
                        kind,
                        codec: c.clone(),
                    }),
                    Err(e) => {
                        let _ = tx.send(Command::CloseTransport { router, transport });
                        self.close_room_if_empty(&room).await;
                        return Err(e.into());
                    }
                }
            }
            let usable = m.port != 0 && m.kind.is_some() && codec.is_some();
            own.push(LocalMedia {
                mid: m.mid.clone(),
                kind: if usable { m.kind } else { None },
                media_token: m
                    .kind
                    .map_or("application".to_string(), |k| k.as_str().to_string()),
                direction: if publish {
                    Direction::RecvOnly
                } else {
                    Direction::Inactive
                },
                codec,
                mid_ext_id,
                send: None,
                rejected: !usable,
            });
        }
        let answer = sdp::write(&local, setup, &own);
        let pid = self.next_pid;
        self.next_pid += 1;
        tracing::info!(room = %room, participant = pid, name = %name, tracks = published.len(), "participant joined");
        self.participants.insert(
            pid,
            Participant {
                id: pid,
                name,
                room: room.clone(),
                conn,
                transport,
                local,
                own,
                offer,
                mid_ext_id,
                published,
                slots: Vec::new(),
                next_slot: 1,
                negotiating: false,
                dirty: false,
            },
        );
        if let Some(c) = self.conns.get_mut(&conn) {
            c.1 = Some(pid);
        }
        self.send(
            pid,
            &ServerMsg::Answer {
                sdp: answer,
                id: format!("p{pid}"),
                room: room.clone(),
            },
        );
        let others: Vec<PId> = self.rooms[&room].participants.clone();
        self.rooms
            .get_mut(&room)
            .expect("room exists")
            .participants
            .push(pid);
        self.broadcast_participants(&room);
        for other in others {
            self.subscribe_all(pid, other).await;
            self.subscribe_all(other, pid).await;
            self.negotiate(other);
        }
        self.negotiate(pid);
        self.update_registry();
        Ok(())
    }

    /// Creates paused consumers on `sub` for every track of `publisher`.
    async fn subscribe_all(&mut self, sub: PId, publisher: PId) {
        let Some(p) = self.participants.get(&publisher) else {
            return;
        };
        let tracks: Vec<(ProducerId, MediaKind, Codec)> = p
            .published
            .iter()
            .map(|t| (t.producer, t.kind, t.codec.clone()))
            .collect();
        for (producer, kind, codec) in tracks {
            self.add_consumer(sub, publisher, producer, kind, &codec)
                .await;
        }
    }

    async fn add_consumer(
        &mut self,
        sub: PId,
        publisher: PId,
        producer: ProducerId,
        kind: MediaKind,
        codec: &Codec,
    ) {
        let Some(s) = self.participants.get(&sub) else {
            return;
        };
        let Some(room) = self.rooms.get(&s.room) else {
            return;
        };
        // The subscriber must be able to receive this codec: take its payload type for it.
        let Some(sub_codec) = s
            .offer
            .media
            .iter()
            .filter(|m| m.kind == Some(kind))
            .find_map(|m| m.matching_codec(codec))
            .cloned()
        else {
            tracing::warn!(participant = sub, codec = %codec.name, "subscriber cannot receive this codec; not subscribed");
            return;
        };
        let receiving = s.slots.iter().filter(|x| x.active).count();
        let max = self.cfg.limits.consumers_per_transport;
        if receiving >= max {
            let (conn, name) = (
                s.conn,
                self.participants
                    .get(&publisher)
                    .map(|p| p.name.clone())
                    .unwrap_or_default(),
            );
            tracing::warn!(participant = sub, max, "consumer limit reached");
            self.send_conn(
                conn,
                &ServerMsg::error(
                    "consumer-limit",
                    format!("you receive the maximum of {max} tracks; a {} track of {name:?} is not sent to you", kind.as_str()),
                ),
            );
            return;
        }
        let mid = format!("s{}", s.next_slot);
        let ssrc: u32 = rand::random::<u32>() | 1;
        let params = ConsumerParams {
            transport: s.transport,
            producer,
            ssrc: Ssrc(ssrc),
            mid: Mid::new(&mid),
            mid_ext_id: s.mid_ext_id,
            pt_map: vec![(Pt(codec.pt), Pt(sub_codec.pt))],
            paused: true,
        };
        let (router, tx) = (room.router, self.workers[room.worker].tx.clone());
        let consumer = match call(&tx, |reply| Command::CreateConsumer {
            router,
            params,
            reply,
        })
        .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(participant = sub, error = %e, "consumer not created");
                return;
            }
        };
        let Some(s) = self.participants.get_mut(&sub) else {
            return;
        };
        s.next_slot += 1;
        s.slots.push(Slot {
            mid,
            kind,
            codec: sub_codec,
            ssrc,
            publisher,
            producer,
            consumer: Some(consumer),
            active: true,
            live: false,
            offered: false,
        });
        s.dirty = true;
    }

    /// Sends an `update` offer if the participant's tracks changed and no
    /// offer is awaiting an answer.
    fn negotiate(&mut self, pid: PId) {
        let Some(p) = self.participants.get_mut(&pid) else {
            return;
        };
        if p.negotiating || !p.dirty {
            return;
        }
        p.dirty = false;
        p.negotiating = true;
        p.local.session_version += 1;
        let mut media = p.own.clone();
        for s in &mut p.slots {
            s.offered = s.active;
            media.push(LocalMedia {
                mid: s.mid.clone(),
                kind: Some(s.kind),
                media_token: s.kind.as_str().to_string(),
                direction: if s.active {
                    Direction::SendOnly
                } else {
                    Direction::Inactive
                },
                codec: Some(s.codec.clone()),
                mid_ext_id: p.mid_ext_id,
                send: s.active.then(|| {
                    let stream = format!("p{}", s.publisher);
                    (
                        s.ssrc,
                        stream.clone(),
                        stream,
                        format!("{}-{}", s.kind.as_str(), s.producer.0),
                    )
                }),
                rejected: false,
            });
        }
        let offer = sdp::write(&p.local, "actpass", &media);
        self.send(pid, &ServerMsg::Update { sdp: offer });
    }

    async fn on_answer(&mut self, pid: PId, answer_sdp: &str) {
        let Some(p) = self.participants.get_mut(&pid) else {
            return;
        };
        if !p.negotiating {
            let conn = p.conn;
            self.send_conn(
                conn,
                &ServerMsg::error(
                    "unexpected-answer",
                    "no update offer is waiting for an answer",
                ),
            );
            return;
        }
        p.negotiating = false;
        let answer = match sdp::parse(answer_sdp) {
            Ok(a) => a,
            Err(e) => {
                let conn = p.conn;
                self.send_conn(
                    conn,
                    &ServerMsg::error(e.code(), format!("bad answer: {e}")),
                );
                return;
            }
        };
        let room = &self.rooms[&p.room];
        let (router, tx) = (room.router, self.workers[room.worker].tx.clone());
        for s in &mut p.slots {
            if !(s.offered && s.active && !s.live) {
                continue;
            }
            let accepted = answer
                .media
                .iter()
                .any(|m| m.mid == s.mid && m.port != 0 && m.direction.receives());
            if let (true, Some(consumer)) = (accepted, s.consumer) {
                s.live = true;
                let _ = tx.send(Command::SetConsumerPaused {
                    router,
                    consumer,
                    paused: false,
                });
            }
        }
        self.negotiate(pid);
    }

    /// Removes a participant: closes its transport (and with it its producers
    /// and every consumer of them), updates the others.
    async fn remove_participant(&mut self, pid: PId, close_transport: bool) {
        let Some(p) = self.participants.remove(&pid) else {
            return;
        };
        if let Some(c) = self.conns.get_mut(&p.conn) {
            c.1 = None;
        }
        let Some(room) = self.rooms.get_mut(&p.room) else {
            return;
        };
        room.participants.retain(|x| *x != pid);
        if close_transport {
            let _ = self.workers[room.worker].tx.send(Command::CloseTransport {
                router: room.router,
                transport: p.transport,
            });
        }
        tracing::info!(room = %p.room, participant = pid, name = %p.name, "participant left");
        let others = room.participants.clone();
        for other in others {
            if let Some(o) = self.participants.get_mut(&other) {
                for s in o
                    .slots
                    .iter_mut()
                    .filter(|s| s.publisher == pid && s.active)
                {
                    // The data plane removed the consumer with the producer.
                    s.active = false;
                    s.live = false;
                    s.consumer = None;
                    o.dirty = true;
                }
            }
            self.negotiate(other);
        }
        self.broadcast_participants(&p.room);
        self.close_room_if_empty(&p.room).await;
        self.update_registry();
    }

    fn broadcast_participants(&self, room: &str) {
        let Some(r) = self.rooms.get(room) else {
            return;
        };
        let participants: Vec<ParticipantInfo> = r
            .participants
            .iter()
            .filter_map(|id| self.participants.get(id))
            .map(|p| ParticipantInfo {
                id: format!("p{}", p.id),
                name: p.name.clone(),
            })
            .collect();
        let msg = ServerMsg::Participants {
            room: room.to_string(),
            participants,
        };
        for id in &r.participants {
            self.send(*id, &msg);
        }
    }

    async fn on_core(&mut self, ev: Event) {
        match ev {
            Event::TransportConnected { router, transport } => {
                tracing::debug!(router = %router, transport = %transport, "transport connected");
            }
            Event::TransportClosed {
                router,
                transport,
                reason,
            } => {
                if reason == CloseReason::Closed {
                    return;
                }
                let found = self.participants.values().find(|p| {
                    p.transport == transport
                        && self.rooms.get(&p.room).is_some_and(|r| r.router == router)
                });
                if let Some(p) = found {
                    let (pid, conn) = (p.id, p.conn);
                    tracing::info!(participant = pid, %reason, "media connection closed");
                    self.send_conn(
                        conn,
                        &ServerMsg::error(
                            "transport-closed",
                            format!("media connection closed: {reason}; join again"),
                        ),
                    );
                    self.remove_participant(pid, false).await;
                }
            }
            Event::WorkerFailed { worker, message } => {
                tracing::error!(worker, panic = %message, "data-plane worker failed; its rooms are closed");
                self.failed_workers.insert(worker);
                let rooms: Vec<String> = self
                    .rooms
                    .iter()
                    .filter(|(_, r)| r.worker == worker)
                    .map(|(n, _)| n.clone())
                    .collect();
                for room in rooms {
                    let pids = self
                        .rooms
                        .get(&room)
                        .map(|r| r.participants.clone())
                        .unwrap_or_default();
                    for pid in pids {
                        self.send(
                            pid,
                            &ServerMsg::error(
                                "room-failed",
                                "the server hit an internal error in this room; join again",
                            ),
                        );
                        self.remove_participant(pid, false).await;
                    }
                    self.rooms.remove(&room);
                }
                self.update_registry();
            }
            Event::WorkerStopped { worker } => {
                tracing::warn!(worker, "worker stopped");
            }
            other => tracing::debug!(event = ?other, "core event"),
        }
    }

    async fn shutdown(&mut self) {
        for (out, _) in self.conns.values() {
            let m = ServerMsg::error("server-shutdown", "the server is shutting down");
            let _ = out.send(Outgoing::Text(m.to_json()));
            let _ = out.send(Outgoing::Close);
        }
        let pids: Vec<PId> = self.participants.keys().copied().collect();
        for pid in pids {
            self.remove_participant(pid, true).await;
        }
    }

    fn update_registry(&self) {
        let views = self
            .rooms
            .iter()
            .map(|(name, r)| RoomView {
                name: name.clone(),
                worker: r.worker,
                participants: r.participants.len(),
                counters: r.counters.clone(),
            })
            .collect();
        if let Ok(mut g) = self.registry.rooms.lock() {
            *g = views;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sfu_core::worker::RouterInfo;

    const OFFER: &str = include_str!("../../testdata/sdp/offer-audio-video-sendrecv.sdp");

    /// A stand-in data-plane worker on a thread: answers every command the way
    /// a worker does, with fresh ids, and records what it was sent.
    fn fake_worker() -> (WorkerRef, std::thread::JoinHandle<Vec<String>>) {
        let (tx, rx) = crossbeam_channel::unbounded::<Command>();
        let counters = Arc::new(Counters::default());
        let t = std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut next = 0u64;
            for cmd in rx {
                seen.push(format!("{cmd:?}"));
                next += 1;
                match cmd {
                    Command::CreateRouter { reply, .. } => reply(Ok(RouterInfo {
                        local_addr: "127.0.0.1:40000".parse().expect("addr"),
                        counters: Arc::new(Counters::default()),
                    })),
                    Command::CreateTransport { reply, .. } => reply(Ok(TransportId(next))),
                    Command::CreateProducer { reply, .. } => reply(Ok(ProducerId(next))),
                    Command::CreateConsumer { reply, .. } => reply(Ok(ConsumerId(next))),
                    Command::Shutdown => break,
                    _ => {}
                }
            }
            seen
        });
        (WorkerRef { tx, counters }, t)
    }

    async fn recv(out: &mut mpsc::UnboundedReceiver<Outgoing>) -> serde_json::Value {
        loop {
            let o = tokio::time::timeout(Duration::from_secs(5), out.recv())
                .await
                .expect("a message within 5 s")
                .expect("open");
            if let Outgoing::Text(t) = o {
                return serde_json::from_str(&t).expect("json");
            }
        }
    }

    #[tokio::test]
    async fn worker_failure_tells_its_rooms_to_rejoin_and_moves_new_rooms_elsewhere() {
        let (w0, t0) = fake_worker();
        let (w1, t1) = fake_worker();
        let cfg = HubConfig {
            announced_ip: "127.0.0.1".parse().expect("ip"),
            fingerprint: sfu_core::proto::dtls::format_fingerprint(&[1; 32]),
            limits: Limits::default(),
            auth_secret: None,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let hub = tokio::spawn(
            Hub::new(
                cfg,
                vec![w0.clone(), w1.clone()],
                Arc::new(Registry::default()),
            )
            .run(rx),
        );
        let (out_tx, mut out) = mpsc::unbounded_channel();
        tx.send(HubMsg::Connect {
            conn: 1,
            out: out_tx,
        })
        .expect("hub");
        let join = |room: &str| ClientMsg::Join {
            room: room.into(),
            name: "a".into(),
            sdp: OFFER.into(),
            token: None,
        };
        tx.send(HubMsg::Client {
            conn: 1,
            msg: join("r"),
        })
        .expect("hub");
        assert_eq!(recv(&mut out).await["type"], "answer");
        // The room went to worker 0 (both idle: the lower index). It fails.
        tx.send(HubMsg::Core(Event::WorkerFailed {
            worker: 0,
            message: "bug".into(),
        }))
        .expect("hub");
        let mut got = recv(&mut out).await;
        while got["type"] == "participants" {
            got = recv(&mut out).await;
        }
        assert_eq!(got["code"], "room-failed", "{got}");
        // Joining again works, on worker 1.
        tx.send(HubMsg::Client {
            conn: 1,
            msg: join("r"),
        })
        .expect("hub");
        let mut got = recv(&mut out).await;
        while got["type"] == "participants" {
            got = recv(&mut out).await;
        }
        assert_eq!(got["type"], "answer", "{got}");
        let (done_tx, done_rx) = oneshot::channel();
        tx.send(HubMsg::Shutdown { done: done_tx }).expect("hub");
        let _ = tokio::time::timeout(Duration::from_secs(5), done_rx).await;
        let _ = hub.await;
        let _ = w0.tx.send(Command::Shutdown);
        let _ = w1.tx.send(Command::Shutdown);
        let (seen0, seen1) = (t0.join().expect("w0"), t1.join().expect("w1"));
        assert_eq!(seen0.iter().filter(|c| *c == "CreateRouter").count(), 1);
        assert_eq!(
            seen1.iter().filter(|c| *c == "CreateRouter").count(),
            1,
            "the new room went to worker 1"
        );
    }
}
