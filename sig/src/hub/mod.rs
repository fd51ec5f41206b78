//! The hub: the connection registry, room placement, and the supervisor of
//! the data-plane workers (docs/architecture.md, Threads).
//!
//! One tokio task owns which connection is in which room and which room is
//! on which worker. It never awaits a worker or a room: it validates joins,
//! places new rooms on the least-loaded healthy worker, and forwards each
//! request to the room's own task ([`crate::room`]), which does the slow
//! work. A stalled worker therefore stalls only its own rooms.
//!
//! Queues, and what happens when one is full:
//! - the hub's inbox ([`HUB_QUEUE`]): socket tasks wait for room (the
//!   client's further messages wait in TCP); the worker-event thread waits
//!   too, and the workers' bounded event queue then drops and counts;
//! - a room's inbox ([`crate::room::ROOM_QUEUE`]): a new join gets
//!   `room-busy`; for the other client messages `when_full` decides, in
//!   one place: an answer, `update-failed`, `video-hidden`, `video-size` and
//!   `media-state` are dropped (counted in `sfu_signaling_dropped_total`,
//!   logged at most once per 10 s: the update times out and is sent again,
//!   the client sends its state again), while `offer-request`, `offer`,
//!   leaves, disconnects and worker events are queued by a task of their
//!   own, never dropped;
//! - a worker's command queue: the request fails with `room-busy`;
//! - a connection's outgoing queue ([`crate::conn::OUT_QUEUE`]): the
//!   connection is closed and its participant removed.
//!
//! A router that panics fails its room alone (`Event::RouterFailed`: that
//! room's participants get `room-failed`). A watchdog pings every worker
//! each second; one that does not answer within [`WATCHDOG_TIMEOUT`] is
//! failed like one that panicked outside any room: its rooms get
//! `room-failed`, and a new worker is started on the same CPU.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::TrySendError;
use sfu_core::RouterId;
use sfu_core::router::RouterEvent;
use sfu_core::stats::Counters;
use sfu_core::worker::{Command, CommandSender, Event, link_workers};
use tokio::sync::{mpsc, oneshot, watch};

pub use crate::config::HubConfig;
use crate::conn::{ConnHandle, ConnId, Outgoing};
use crate::error::ServerError;
use crate::protocol::{ClientMsg, Role, ServerMsg, Via, validate_name};
use crate::room::{Notices, ROOM_QUEUE, Room, RoomCtx, RoomMsg, RoomNotice};
use crate::sdp;

mod cluster;
mod placement;
use placement::JoinAsk;
mod supervision;
mod when_full;
pub use crate::worker_link::WorkerRef;
use when_full::{WhenFull, deliver, when_full};

/// Capacity of the hub's inbox, in messages.
pub const HUB_QUEUE: usize = 4096;
/// How often the watchdog pings each worker.
pub const WATCHDOG_INTERVAL: Duration = Duration::from_secs(1);
/// A worker that does not answer a ping within this is marked failed.
pub const WATCHDOG_TIMEOUT: Duration = Duration::from_secs(2);

/// Starts worker `index` (generation `generation`) and returns its command
/// channel and counters, or why it could not start. The caller keeps the
/// thread handle; a replaced worker is abandoned, not joined.
pub type Spawner =
    Arc<dyn Fn(usize, u32) -> Result<(CommandSender, Arc<Counters>), ServerError> + Send + Sync>;

/// Per-room figures for `/metrics`.
#[derive(Debug, Clone)]
pub struct RoomView {
    /// Room name.
    pub name: String,
    /// Worker index (of its home router).
    pub worker: usize,
    /// Members now: participants and viewers.
    pub participants: Arc<AtomicUsize>,
    /// Its routers' counters, once they exist (more than one when the room
    /// is spread over workers).
    pub counters: Vec<Arc<Counters>>,
}

/// Shared, read-mostly view for `/metrics` (the hub writes it).
#[derive(Debug, Default)]
pub struct Registry {
    /// Rooms now.
    pub rooms: Mutex<Vec<RoomView>>,
    /// Counters of the current worker at each index.
    pub workers: Mutex<Vec<Arc<Counters>>>,
    /// Workers restarted since start.
    pub worker_restarts: AtomicU64,
    /// Client messages dropped because their room's inbox was full.
    pub signaling_dropped: AtomicU64,
}

/// Messages to the hub.
#[derive(Debug)]
pub enum HubMsg {
    /// A WebSocket opened.
    Connect {
        /// Its sending side.
        conn: ConnHandle,
    },
    /// A parsed client message.
    Client {
        /// Connection id.
        conn: ConnId,
        /// The message.
        msg: ClientMsg,
    },
    /// A reply decided by the socket task (a message that did not parse),
    /// sent through the hub (and the room) so replies keep request order.
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
    /// A request of the recording API for a room.
    Record {
        /// The room.
        room: String,
        /// The request; refused with `no-such-room` when the room is not
        /// on this node.
        req: crate::recording::RecordRequest,
    },
    /// A message from another node of the cluster.
    Node(crate::cluster::NodeMsg),
    /// Tell everyone, close every room, then reply.
    Shutdown {
        /// Signalled when done.
        done: oneshot::Sender<()>,
    },
    /// From a room.
    Room(RoomNotice),
    /// From a watchdog: the worker did not answer a ping in time.
    WorkerUnresponsive {
        /// Index.
        worker: usize,
        /// Generation pinged.
        generation: u32,
    },
    /// A replacement worker started (or could not).
    WorkerRestarted {
        /// Index.
        worker: usize,
        /// The new worker's generation.
        generation: u32,
        /// Its channel and counters, or why it failed.
        result: Result<(CommandSender, Arc<Counters>), ServerError>,
    },
}

#[derive(Debug)]
struct WorkerSlot {
    r: WorkerRef,
    failed_tx: watch::Sender<bool>,
    healthy: bool,
    watchdog: Option<tokio::task::JoinHandle<()>>,
}

#[derive(Debug)]
struct ConnEntry {
    handle: ConnHandle,
    /// The room this connection joined, and that join's sequence number.
    room: Option<(String, u64)>,
}

#[derive(Debug)]
struct RoomEntry {
    /// Its routers and their workers; the first is home (its worker is
    /// the room's for placement and `/metrics`).
    routers: Vec<(RouterId, usize)>,
    tx: mpsc::Sender<RoomMsg>,
    joins_sent: u64,
    view: RoomView,
}

/// The hub: owner of connections, rooms and workers.
pub struct Hub {
    cfg: Arc<HubConfig>,
    workers: Vec<WorkerSlot>,
    spawner: Option<Spawner>,
    conns: HashMap<ConnId, ConnEntry>,
    rooms: HashMap<String, RoomEntry>,
    by_router: HashMap<RouterId, String>,
    registry: Arc<Registry>,
    /// The healthy workers, as rooms see them (to spread over).
    workers_tx: watch::Sender<Vec<WorkerRef>>,
    next_join: u64,
    ctx: RoomCtx,
    /// The hub's own inbox (for watchdogs and restarts).
    hub_tx: mpsc::Sender<HubMsg>,
    /// When a dropped client message was last logged.
    last_drop_log: std::cell::Cell<Option<std::time::Instant>>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("workers", &self.workers.len())
            .field("conns", &self.conns.len())
            .field("rooms", &self.rooms.len())
            .finish()
    }
}

/// Rooms' notices, as messages on the hub's inbox: at once when it has
/// room, else from a task of their own (a room never waits on the hub).
fn notices_to(hub: mpsc::Sender<HubMsg>) -> Notices {
    Notices(Arc::new(move |n| {
        if let Err(mpsc::error::TrySendError::Full(msg)) = hub.try_send(HubMsg::Room(n)) {
            let hub = hub.clone();
            tokio::spawn(async move {
                let _ = hub.send(msg).await;
            });
        }
    }))
}

impl Hub {
    /// Creates the hub for `workers` (their command channels and counters,
    /// by index). `hub_tx` is the sending side of the inbox [`Hub::run`]
    /// will read. With a `spawner`, a failed worker is replaced.
    pub fn new(
        cfg: HubConfig,
        workers: Vec<(CommandSender, Arc<Counters>)>,
        registry: Arc<Registry>,
        spawner: Option<Spawner>,
        hub_tx: mpsc::Sender<HubMsg>,
    ) -> Self {
        let cfg = Arc::new(cfg);
        let (workers_tx, workers_rx) = watch::channel(Vec::new());
        let mut hub = Self {
            cfg: cfg.clone(),
            workers: Vec::new(),
            spawner,
            conns: HashMap::new(),
            rooms: HashMap::new(),
            by_router: HashMap::new(),
            registry,
            workers_tx,
            next_join: 1,
            ctx: RoomCtx {
                cfg,
                notices: notices_to(hub_tx.clone()),
                next_pid: Arc::new(AtomicU64::new(1)),
                next_router: Arc::new(AtomicU32::new(1)),
                workers: workers_rx,
                cluster: None,
            },
            hub_tx,
            last_drop_log: std::cell::Cell::new(None),
        };
        for (i, (tx, counters)) in workers.into_iter().enumerate() {
            let slot = hub.make_slot(i, 0, tx, counters);
            hub.workers.push(slot);
        }
        for i in 0..hub.workers.len() {
            hub.link_worker(i);
        }
        hub.publish_workers();
        hub.update_registry();
        hub
    }

    /// Links worker `i` with each healthy worker of a lower index, or of
    /// any index when `i` was restarted (its old links are gone), so that
    /// rooms can spread across them.
    pub(super) fn link_worker(&self, i: usize) {
        let Some(me) = self.workers.get(i) else {
            return;
        };
        let restarted = me.r.generation > 0;
        for (j, other) in self.workers.iter().enumerate() {
            if j == i || !other.healthy || (!restarted && j > i) {
                continue;
            }
            if let Err(e) = link_workers((i, &me.r.tx), (j, &other.r.tx)) {
                tracing::warn!(worker = i, peer = j, error = %e, "workers not linked: rooms will not spread across them");
            }
        }
    }

    /// Tells rooms which workers are healthy now.
    pub(super) fn publish_workers(&self) {
        let healthy = self
            .workers
            .iter()
            .filter(|w| w.healthy)
            .map(|w| w.r.clone())
            .collect();
        self.workers_tx.send_replace(healthy);
    }

    fn make_slot(
        &self,
        index: usize,
        generation: u32,
        tx: CommandSender,
        counters: Arc<Counters>,
    ) -> WorkerSlot {
        let (failed_tx, failed) = watch::channel(false);
        WorkerSlot {
            r: WorkerRef {
                index,
                generation,
                tx,
                counters,
                failed,
            },
            failed_tx,
            healthy: true,
            watchdog: None,
        }
    }

    /// Runs until the inbox closes or a `Shutdown` is handled.
    pub async fn run(mut self, mut rx: mpsc::Receiver<HubMsg>) {
        for i in 0..self.workers.len() {
            self.start_watchdog(i);
        }
        while let Some(msg) = rx.recv().await {
            match msg {
                HubMsg::Connect { conn } => {
                    self.conns.insert(
                        conn.id(),
                        ConnEntry {
                            handle: conn,
                            room: None,
                        },
                    );
                }
                HubMsg::Client { conn, msg } => self.on_client(conn, msg),
                HubMsg::Reply { conn, msg } => self.reply(conn, msg),
                HubMsg::Disconnect { conn } => {
                    if let Some(ConnEntry {
                        room: Some((name, _)),
                        ..
                    }) = self.conns.remove(&conn)
                        && let Some(r) = self.rooms.get(&name)
                    {
                        deliver(&r.tx, RoomMsg::Disconnected { conn });
                    }
                }
                HubMsg::Core(ev) => self.on_core(ev),
                HubMsg::Record { room, req } => match self.rooms.get(&room) {
                    Some(r) => deliver(&r.tx, RoomMsg::Record(req)),
                    None => req.refuse(crate::recording::RecordError::NoRoom(room)),
                },
                HubMsg::Node(msg) => self.on_node(msg),
                HubMsg::Room(RoomNotice::Left { conn, join }) => {
                    // Only the membership that ended: after a pipelined
                    // leave and join, the new one stays.
                    if let Some(c) = self.conns.get_mut(&conn)
                        && c.room.as_ref().is_some_and(|(_, j)| *j == join)
                    {
                        c.room = None;
                    }
                }
                HubMsg::Room(RoomNotice::Opened {
                    room,
                    router,
                    worker,
                    counters,
                }) => {
                    if let Some(r) = self.rooms.get_mut(&room) {
                        if !r.routers.iter().any(|(x, _)| *x == router) {
                            r.routers.push((router, worker));
                        }
                        r.view.counters.push(counters);
                        self.by_router.insert(router, room);
                    }
                    self.update_registry();
                }
                HubMsg::Room(RoomNotice::Idle { router, joins_seen }) => {
                    self.on_room_idle(router, joins_seen)
                }
                HubMsg::WorkerUnresponsive { worker, generation } => {
                    let why = format!(
                        "no answer to a ping within {} s",
                        WATCHDOG_TIMEOUT.as_secs()
                    );
                    self.fail_worker(worker, generation, &why);
                }
                HubMsg::WorkerRestarted {
                    worker,
                    generation,
                    result,
                } => self.on_restarted(worker, generation, result),
                HubMsg::Shutdown { done } => {
                    self.shutdown().await;
                    let _ = done.send(());
                    return;
                }
            }
        }
    }

    /// Sends `msg` to a connection, through its room when it is in one so
    /// that the reply keeps the order of the requests.
    fn reply(&self, conn: ConnId, msg: ServerMsg) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        match c.room.as_ref().and_then(|(name, _)| self.rooms.get(name)) {
            Some(r) => deliver(
                &r.tx,
                RoomMsg::Reply {
                    conn: c.handle.clone(),
                    msg,
                },
            ),
            None => {
                c.handle.send(&msg);
            }
        }
    }

    fn on_client(&mut self, conn: ConnId, msg: ClientMsg) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let handle = c.handle.clone();
        let room = c
            .room
            .as_ref()
            .and_then(|(name, _)| self.rooms.get(name).map(|r| r.tx.clone()));
        match (msg, room) {
            (
                ClientMsg::Join {
                    room,
                    name,
                    sdp,
                    token,
                    role,
                    via,
                },
                None,
            ) => {
                let role = role.unwrap_or_default();
                let asked = JoinAsk {
                    room,
                    name,
                    role,
                    via,
                };
                if let Err(m) = self.join(handle.clone(), asked, &sdp, token.as_deref()) {
                    handle.send(&m);
                }
            }
            (ClientMsg::Join { .. }, Some(_)) => self.reply(
                conn,
                ServerMsg::error(
                    "already-joined",
                    "leave the current room before joining another",
                ),
            ),
            (ClientMsg::Leave, Some(tx)) => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.room = None;
                }
                self.to_room(&tx, handle, ClientMsg::Leave);
            }
            (msg, Some(tx)) => self.to_room(&tx, handle, msg),
            (_, None) => {
                handle.send(&ServerMsg::error("not-joined", "join a room first"));
            }
        }
    }

    /// Hands a client message to its room. What happens when the room's
    /// inbox is full is decided here, for every kind ([`when_full`]):
    /// queued from a task of its own, or dropped, counted
    /// (`sfu_signaling_dropped_total`) and logged at most once per 10 s.
    fn to_room(&self, tx: &mpsc::Sender<RoomMsg>, conn: ConnHandle, msg: ClientMsg) {
        let kind = msg.kind();
        let id = conn.id();
        let policy = when_full(&msg);
        let room_msg = RoomMsg::Client { conn, msg };
        match policy {
            WhenFull::Queue => deliver(tx, room_msg),
            WhenFull::Drop(then) => {
                if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(room_msg) {
                    self.registry
                        .signaling_dropped
                        .fetch_add(1, Ordering::Relaxed);
                    let now = std::time::Instant::now();
                    let due = self
                        .last_drop_log
                        .get()
                        .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(10));
                    if due {
                        self.last_drop_log.set(Some(now));
                        tracing::warn!(
                            conn = id,
                            message = kind,
                            "room inbox full: message dropped ({then})"
                        );
                    }
                }
            }
        }
    }

    async fn shutdown(&mut self) {
        for c in self.conns.values() {
            c.handle.send(&ServerMsg::error(
                "server-shutdown",
                "the server is shutting down",
            ));
            c.handle.push(Outgoing::Close);
        }
        let mut waits = Vec::new();
        for (_, entry) in self.rooms.drain() {
            let (done, wait) = oneshot::channel();
            deliver(&entry.tx, RoomMsg::Shutdown { done });
            waits.push(wait);
        }
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            futures_util::future::join_all(waits),
        )
        .await;
        for w in &mut self.workers {
            if let Some(h) = w.watchdog.take() {
                h.abort();
            }
        }
        self.by_router.clear();
        self.update_registry();
    }

    fn update_registry(&self) {
        let views = self.rooms.values().map(|r| r.view.clone()).collect();
        if let Ok(mut g) = self.registry.rooms.lock() {
            *g = views;
        }
        if let Ok(mut g) = self.registry.workers.lock() {
            *g = self.workers.iter().map(|w| w.r.counters.clone()).collect();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_room_inbox_drops_only_what_is_sent_again() {
        let msg = |json: &str| serde_json::from_str::<ClientMsg>(json).expect("client message");
        for json in [
            r#"{"type":"answer","sdp":"v=0"}"#,
            r#"{"type":"update-failed","message":"x"}"#,
            r#"{"type":"video-hidden","ids":[]}"#,
            r#"{"type":"video-size","widths":{}}"#,
            r#"{"type":"media-state","audio_muted":false,"video_off":false}"#,
        ] {
            assert!(matches!(when_full(&msg(json)), WhenFull::Drop(_)), "{json}");
        }
        for json in [
            r#"{"type":"offer-request"}"#,
            r#"{"type":"offer","sdp":"v=0","screen":[]}"#,
            r#"{"type":"leave"}"#,
        ] {
            assert_eq!(when_full(&msg(json)), WhenFull::Queue, "{json}");
        }
    }
}
