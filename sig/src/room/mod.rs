//! One room: a tokio task that owns the room's participants, orchestrates
//! joins and leaves on the room's worker, and drives each participant's
//! [`Negotiation`].
//!
//! The room awaits its worker's replies, so a stalled worker stalls only the
//! rooms placed on it; the hub and every other room go
//! on. Messages reach the room in the order the hub received them, and the
//! room answers them in that order.
//!
//! After the join answer the server is the only offerer: whenever the set of
//! tracks a participant should receive changes, it sends an `update` offer
//! and queues further changes until the answer arrives. An update left
//! unanswered for the offer timeout, or refused with `update-failed`, is
//! sent again; the third failure in a row removes the participant
//! (`negotiation-failed`). New consumers are created paused and resumed only
//! once the subscriber's answer accepted their m-section, so the first
//! keyframe is not lost.

mod client_offer;
mod events;
mod join;
mod members;
mod recordings;
mod relay_health;
mod relays;
mod remote;
mod roster;
mod shards;
mod subscribe;
mod visibility;
mod whep;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use rand::Rng;
use rand::distr::Alphanumeric;
use sfu_core::proto::codec::VideoCodec;
use sfu_core::proto::dtls::DtlsRole;
use sfu_core::proto::rtp::{Extension, ExtensionMap};
use sfu_core::router::{Answered, ConsumerParams, EncodingParams, MediaKind, ProducerParams};
use sfu_core::transport::{CloseReason, TransportParams};
use sfu_core::worker::{Command, Event};
use sfu_core::{ConsumerId, Mid, ProducerId, Pt, RouterId, Ssrc, TransportId};
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::HubConfig;
use crate::conn::{ConnHandle, ConnId, DirectLink, Outgoing};
use crate::negotiation::{AfterFailure, AnswerError, Negotiation, OutTrack};
use crate::protocol::{ClientMsg, Delta, ParticipantInfo, Role, ServerMsg, Via};

use self::members::Members;
use self::relays::ClusterRoom;
use self::roster::Roster;
pub use self::roster::{DELTA_INTERVAL, VIEWERS_INTERVAL};
use self::shards::{Mirror, Shard};
use crate::sdp::{self, Codec, Direction, LocalMedia, LocalParams, PeerSdp, SimulcastRecv};
use crate::worker_link::{WorkerRef, call};

/// Capacity of a room's inbox, in messages. When it is full (the room is
/// stuck on its worker), the hub refuses new joins to it with `room-busy`.
pub const ROOM_QUEUE: usize = 1024;

/// Messages to a room.
#[derive(Debug)]
pub enum RoomMsg {
    /// A validated join.
    Join {
        /// The connection.
        conn: ConnHandle,
        /// The hub's sequence number of this join (returned in `RoomNotice::Left`).
        join: u64,
        /// Display name.
        name: String,
        /// Participant or viewer (the hub checked a viewer's offer sends
        /// nothing).
        role: Role,
        /// WebSocket, WHIP, WHEP or RTMP.
        via: Via,
        /// The parsed offer.
        offer: Box<PeerSdp>,
    },
    /// A client message for this room (all but `join`, which comes
    /// validated as [`RoomMsg::Join`]).
    Client {
        /// The connection.
        conn: ConnHandle,
        /// The message.
        msg: ClientMsg,
    },
    /// The WebSocket closed.
    Disconnected {
        /// The connection.
        conn: ConnId,
    },
    /// A reply decided by the hub for a connection in this room, sent through
    /// the room so that it keeps the order of the requests.
    Reply {
        /// The connection.
        conn: ConnHandle,
        /// The reply.
        msg: ServerMsg,
    },
    /// An event of the room's router.
    Core(Event),
    /// The room's router panicked, or its whole worker failed: tell
    /// everyone `room-failed` and stop.
    Failed,
    /// One Router of a room spread over workers failed (it panicked, or
    /// its worker did) while others live: the members on it get
    /// `room-failed`, the rest stay.
    ShardFailed {
        /// The Router that failed.
        router: RouterId,
    },
    /// A message from another node about this room (a relay, its tracks).
    Node(crate::cluster::NodeMsg),
    /// A request of the recording API.
    Record(crate::recording::RecordRequest),
    /// The hub forgot this idle room: close the router and stop.
    Close,
    /// The server stops: remove everyone, close the router, then signal.
    Shutdown {
        /// Signalled when done.
        done: oneshot::Sender<()>,
    },
}

/// A failed step of a request: the error message to send.
#[derive(Debug)]
pub struct Fail(pub ServerMsg);

impl From<sfu_core::Error> for Fail {
    fn from(e: sfu_core::Error) -> Self {
        Fail(match e {
            sfu_core::Error::PortRangeExhausted { .. } => ServerMsg::error(
                "no-capacity",
                format!("the server cannot open another room: {e}"),
            ),
            sfu_core::Error::WorkerGone | sfu_core::Error::RouterFailed(_) => ServerMsg::error(
                "room-failed",
                "the room's data-plane worker failed or stalled; join again",
            ),
            sfu_core::Error::QueueFull => ServerMsg::error(
                "room-busy",
                "the room's data-plane worker is overloaded; try again",
            ),
            other => ServerMsg::error("server-error", format!("data plane error: {other}")),
        })
    }
}

#[derive(Debug, Clone)]
struct Track {
    producer: ProducerId,
    kind: MediaKind,
    codec: Codec,
    /// A screen share (`offer` with `screen`).
    screen: bool,
    /// Its m-section's mid.
    mid: String,
    /// Simulcast: its encodings' RIDs, in the producer's order.
    rids: Vec<String>,
    /// What the producer was created with (for its mirrors).
    params: ProducerParams,
    /// Its mirrors on the room's other Routers.
    mirrors: Vec<Mirror>,
}

#[derive(Debug)]
struct Participant {
    id: u64,
    name: String,
    /// Participant (publishes, listed) or viewer (receives, counted).
    role: Role,
    /// WebSocket (negotiates `update`s), or WHIP, WHEP, RTMP (one
    /// offer/answer).
    via: Via,
    conn: ConnHandle,
    join: u64,
    /// The Router (of the room's, one per worker it spans) its transport is on.
    router: RouterId,
    transport: TransportId,
    local: LocalParams,
    published: Vec<Track>,
    neg: Negotiation,
    /// msid streams (`p7`, `p7-screen`) whose video this participant
    /// hides (`video-hidden`).
    hidden: std::collections::HashSet<String>,
    /// The widths it shows each msid stream's video at, pixels (`video-size`).
    widths: std::collections::HashMap<String, u16>,
    /// Our DTLS role in answers to its offers (`passive` or `active`).
    setup: &'static str,
    /// Its microphone is muted (`media-state`).
    audio_muted: bool,
    /// Its camera is off (`media-state`).
    video_off: bool,
}

/// What a room tells whoever placed it (the hub wraps these in its own
/// messages): the room never names the hub.
#[derive(Debug)]
pub enum RoomNotice {
    /// This connection's membership `join` (the sequence number the hub gave
    /// its join) ended, or the join failed.
    Left {
        /// Connection id.
        conn: ConnId,
        /// The join's sequence number.
        join: u64,
    },
    /// A router of the room exists: its first, or one more on another
    /// worker when the room spreads.
    Opened {
        /// The room's name.
        room: String,
        /// The router.
        router: RouterId,
        /// The worker it is on.
        worker: usize,
        /// The router's counters.
        counters: Arc<sfu_core::stats::Counters>,
    },
    /// The room has no participant after handling `joins_seen` joins.
    Idle {
        /// The room's router.
        router: RouterId,
        /// Joins the room has handled.
        joins_seen: u64,
    },
}

/// Where a room's [`RoomNotice`]s go: a function that never waits (the
/// hub's queues them on its inbox, from a task of their own when it is full).
#[derive(Clone)]
pub struct Notices(pub Arc<dyn Fn(RoomNotice) + Send + Sync>);

impl std::fmt::Debug for Notices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Notices")
    }
}

/// Shared settings and handles every room gets from the hub.
#[derive(Debug, Clone)]
pub struct RoomCtx {
    /// Static settings.
    pub cfg: Arc<HubConfig>,
    /// Where the room's notices go.
    pub notices: Notices,
    /// Source of participant ids, unique in the process.
    pub next_pid: Arc<AtomicU64>,
    /// Source of router ids, unique in the process (shared with the hub).
    pub next_router: Arc<AtomicU32>,
    /// The healthy workers now (the hub updates it), for spreading a room.
    pub workers: watch::Receiver<Vec<WorkerRef>>,
    /// This node's cluster (`--redis`); `None`: it runs alone.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
}

/// A room's state, run by [`Room::run`].
#[derive(Debug)]
pub struct Room {
    name: String,
    /// The id its first router gets.
    first_router: RouterId,
    /// The worker its first router goes on.
    first_worker: WorkerRef,
    /// Its routers, one per worker it spans; the first is home: it holds
    /// the participants and their producers, and pipes them to the others.
    shards: Vec<Shard>,
    participants: Members,
    joins_seen: u64,
    count: Arc<AtomicUsize>,
    ctx: RoomCtx,
    /// The dominant speaker's participant id, once the data plane named one.
    speaker: Option<u64>,
    /// Roster changes not sent yet.
    roster: Roster,
    /// Members' negotiation deadlines (an update's answer, a grant's
    /// offer), pushed where one is set ([`Room::watch_deadline`]); an entry
    /// may be stale, and is checked against the member when it pops. The
    /// room's wait is O(1), not a scan of its members.
    deadlines: std::collections::BinaryHeap<std::cmp::Reverse<(Instant, u64)>>,
    /// The worker the room last could not spread to, and when.
    spread_failed: Option<(usize, Instant)>,
    /// Its part in a cluster of nodes, when in one.
    cluster: Option<ClusterRoom>,
    /// Its recordings.
    recordings: recordings::RoomRecordings,
}

impl Room {
    /// A room `name` whose router will be `router` on `worker`; `count`
    /// mirrors its number of participants for /metrics.
    pub fn new(
        name: String,
        router: RouterId,
        worker: WorkerRef,
        count: Arc<AtomicUsize>,
        ctx: RoomCtx,
    ) -> Self {
        Self {
            name,
            first_router: router,
            first_worker: worker,
            shards: Vec::new(),
            participants: Members::default(),
            joins_seen: 0,
            count,
            speaker: None,
            roster: Roster::default(),
            deadlines: std::collections::BinaryHeap::new(),
            spread_failed: None,
            cluster: ctx.cluster.clone().map(ClusterRoom::new),
            recordings: recordings::RoomRecordings::default(),
            ctx,
        }
    }

    /// Runs until the hub closes the room, its worker fails, or the server stops.
    pub async fn run(mut self, mut rx: mpsc::Receiver<RoomMsg>) {
        loop {
            let deadline = self
                .deadlines
                .peek()
                .map(|d| d.0.0)
                .into_iter()
                .chain(self.roster.poll_timeout())
                .chain(self.cluster.as_ref().and_then(|c| c.reattach_at))
                .chain(self.cluster.as_ref().and_then(|c| c.check_at))
                .min();
            let watching = self.cluster.is_some();
            let msg = tokio::select! {
                m = rx.recv() => match m {
                    Some(m) => m,
                    None => break,
                },
                Some(ended) = self.recordings.ended.recv() => {
                    self.on_recording_ended(ended);
                    continue;
                }
                _ = nodes_changed(self.cluster.as_mut()), if watching => {
                    self.on_nodes_changed().await;
                    self.report_if_idle();
                    continue;
                }
                _ = sleep_until(deadline), if deadline.is_some() => {
                    let now = Instant::now();
                    self.on_timeouts(now).await;
                    self.check_relays(now).await;
                    self.reattach_if_due(now).await;
                    self.report_if_idle();
                    self.flush_roster(now);
                    continue;
                }
            };
            match msg {
                RoomMsg::Join {
                    conn,
                    join,
                    name,
                    role,
                    via,
                    offer,
                } => {
                    self.joins_seen += 1;
                    let asked = (name, role, via);
                    if let Err(Fail(m)) = self.join(conn.clone(), join, asked, *offer).await {
                        conn.send(&m);
                        self.tell_hub(RoomNotice::Left {
                            conn: conn.id(),
                            join,
                        });
                        self.report_if_idle();
                    }
                }
                RoomMsg::Client { conn, msg } => self.on_client(conn, msg).await,
                RoomMsg::Disconnected { conn } => {
                    if let Some(pid) = self.pid_of(conn) {
                        self.remove_participant(pid, true).await;
                    }
                }
                RoomMsg::Reply { conn, msg } => {
                    conn.send(&msg);
                }
                RoomMsg::Core(ev) => self.on_core(ev).await,
                RoomMsg::Node(msg) => self.on_node(msg).await,
                RoomMsg::Failed => {
                    self.fail_all(&mut rx).await;
                    return;
                }
                RoomMsg::ShardFailed { router } => self.on_shard_failed(router).await,
                RoomMsg::Record(req) => self.on_record(req).await,
                RoomMsg::Close => {
                    if self.participants.is_empty() {
                        self.stop_recordings();
                        self.leave_cluster();
                        self.close_router();
                        return;
                    }
                    tracing::error!(room = %self.name, "asked to close with participants; ignored");
                }
                RoomMsg::Shutdown { done } => {
                    for pid in self.participants.iter().map(|p| p.id).collect::<Vec<_>>() {
                        self.remove_participant(pid, true).await;
                    }
                    self.stop_recordings();
                    self.leave_cluster();
                    self.close_router();
                    let _ = done.send(());
                    return;
                }
            }
        }
    }

    /// A client message of a participant (or of a connection whose join
    /// is still queued).
    async fn on_client(&mut self, conn: ConnHandle, msg: ClientMsg) {
        match msg {
            ClientMsg::Answer { sdp } => self.on_answer(&conn, &sdp).await,
            ClientMsg::UpdateFailed { message } => self.on_update_failed(&conn, &message).await,
            ClientMsg::VideoHidden { ids } => self.on_video_hidden(&conn, &ids),
            ClientMsg::VideoSize { widths } => self.on_video_size(&conn, &widths),
            ClientMsg::OfferRequest => self.on_offer_request(&conn),
            ClientMsg::Offer { sdp, screen } => self.on_offer(&conn, &sdp, &screen).await,
            ClientMsg::MediaState {
                audio_muted,
                video_off,
            } => self.on_media_state(&conn, audio_muted, video_off),
            ClientMsg::Leave => {
                if let Some(pid) = self.pid_of(conn.id()) {
                    self.remove_participant(pid, true).await;
                }
                conn.send(&ServerMsg::Left);
            }
            // The hub validates joins and sends them as RoomMsg::Join.
            ClientMsg::Join { .. } => {}
        }
    }

    /// Puts member `pid`'s negotiation deadline, if it has one, in the
    /// room's heap: call it wherever one may be set.
    fn watch_deadline(&mut self, pid: u64) {
        if let Some(d) = self
            .participants
            .get(pid)
            .and_then(|p| p.neg.poll_timeout())
        {
            self.deadlines.push(std::cmp::Reverse((d, pid)));
        }
    }

    fn pid_of(&self, conn: ConnId) -> Option<u64> {
        self.participants.pid_of(conn)
    }

    /// `pid` when it is a member (then `self.participants[pid]` is it).
    fn idx(&self, pid: u64) -> Option<u64> {
        self.participants.contains(pid).then_some(pid)
    }

    /// Tells whoever placed the room, without ever waiting on it.
    fn tell_hub(&self, notice: RoomNotice) {
        (self.ctx.notices.0)(notice);
    }

    /// A fire-and-forget command to the worker of `router`; a full queue
    /// or a gone worker is logged.
    fn command(&self, router: RouterId, cmd: Command) {
        let Some(s) = self.shard(router) else {
            tracing::debug!(room = %self.name, %router, "command for a router the room no longer has");
            return;
        };
        if let Err(e) = s.worker.try_send(cmd) {
            tracing::warn!(room = %self.name, error = %e, "command to the worker not sent");
        }
    }

    /// Consumers of `pid` whose client's answer or offer left out the RTX
    /// codec or a header extension we offered: the data plane stops
    /// writing them (or writes the client's ids).
    fn narrow(&self, router: RouterId, pid: u64, narrowed: &[(ConsumerId, Answered)]) {
        for &(consumer, answered) in narrowed {
            tracing::info!(participant = pid, ?answered, "subscriber narrowed a track");
            self.command(
                router,
                Command::ConsumerAnswered {
                    router,
                    consumer,
                    answered,
                },
            );
        }
    }

    fn close_router(&self) {
        for s in &self.shards {
            self.command(s.router, Command::CloseRouter { router: s.router });
        }
        if !self.shards.is_empty() {
            tracing::info!(room = %self.name, routers = self.shards.len(), "room closed");
        }
    }

    /// Tells the hub when the room has no member (and, in a cluster, feeds
    /// no other node: then it leaves the cluster first).
    fn report_if_idle(&mut self) {
        if self.participants.is_empty() {
            if self.has_children() {
                return;
            }
            self.leave_cluster();
            self.tell_hub(RoomNotice::Idle {
                router: self.shards.first().map_or(self.first_router, |s| s.router),
                joins_seen: self.joins_seen,
            });
        }
    }

    fn set_count(&self) {
        self.count.store(self.participants.len(), Ordering::Relaxed);
    }

    /// Removes a participant: closes its transport (and with it its
    /// producers and every consumer of them) and updates the others.
    async fn remove_participant(&mut self, pid: u64, close_transport: bool) {
        let Some(p) = self.participants.remove(pid) else {
            return;
        };
        self.set_count();
        if close_transport {
            self.command(
                p.router,
                Command::CloseTransport {
                    router: p.router,
                    transport: p.transport,
                },
            );
        }
        // Its producers closed with its transport; their mirrors on the
        // room's other routers go too (with every consumer of them).
        for t in &p.published {
            self.close_mirrors(t);
        }
        // Other nodes drop it too.
        if p.role == Role::Participant {
            let (id, tracks) = self.local_ids(pid, &p.published);
            self.relay_gone(None, tracks, vec![id]);
        }
        self.tell_hub(RoomNotice::Left {
            conn: p.conn.id(),
            join: p.join,
        });
        // A session the server opened (WHIP, WHEP, RTMP) is its
        // membership: it ends here.
        if !p.via.negotiates() {
            p.conn.close();
        }
        tracing::info!(room = %self.name, participant = pid, name = %p.name, role = p.role.as_str(), "participant left");
        let now = Instant::now();
        match p.role {
            // A viewer published nothing: no one's tracks change.
            Role::Viewer => self.viewers_changed(now),
            Role::Participant => {
                for other in self.participants.others(pid) {
                    if let Some(o) = self.participants.get_mut(other) {
                        // The data plane removed the consumers with the producers.
                        o.neg.remove_publisher(pid);
                    }
                    self.negotiate(other);
                }
                self.queue_delta(
                    now,
                    Delta::ParticipantLeft {
                        id: format!("p{pid}"),
                    },
                );
            }
        }
        self.report_if_idle();
    }
}

/// The error a viewer gets for trying to publish (`what`: the message).
fn viewer_cannot_publish(what: &str) -> ServerMsg {
    ServerMsg::error(
        "viewer-cannot-publish",
        format!(
            "a viewer receives only: {what} is for participants; join as a participant to publish"
        ),
    )
}

/// Waits until the cluster's live nodes change (forever without one).
async fn nodes_changed(c: Option<&mut ClusterRoom>) {
    match c {
        Some(c) => {
            if c.nodes.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}
