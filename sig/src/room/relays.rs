//! A room across nodes (`--redis`): where this node's part of the room
//! sits in the room's tree of relays, the relays themselves, and the
//! publishers that reach it through them.
//!
//! - **Attaching.** Before its first join the room asks the directory,
//!   under the room's lock: with no live origin this node becomes the
//!   origin; else it is an edge, fed by the node the directory's tree has
//!   room under (`RoomRecord::parent_for_new_edge`, at most
//!   `--relay-fanout` edges per node).
//! - **A relay** is a PipeTransport pair between home Routers of two nodes
//!   (`sfu_core::transport::relay`), opened by `relay-open` / `relay-ready`
//!   through the nodes' inboxes ([`crate::cluster::wire`]).
//! - **Tracks flow along the tree.** Each node pipes through each relay
//!   every track it has (its own publishers', and those from its other
//!   relays) and announces them (`tracks`). The far node makes a mirror
//!   producer of each and offers it to its members as a publisher of the
//!   room (a [`RemotePublisher`], with an id of this node). What leaves
//!   (a track, a publisher) is announced the same way.
//! - **Failure.** A relay whose node leaves the directory (or that falls
//!   silent) is dropped with what came through it; a room that lost its
//!   parent attaches again (taking the origin if the origin is gone). A
//!   track that another relay announced too (its node attached again
//!   first) is then mirrored from that relay.

use std::collections::BTreeMap;

use sfu_core::transport::RelayCounters;

use super::relay_health::Announced;
use super::*;
use crate::cluster::wire::WirePublisher;
use crate::cluster::{Cluster, NodeMsg, RelayView};
use crate::directory::DirectoryError;

/// How long a join waits for the room's lock in the directory.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);
/// How long the room's lock is held at most (it frees itself after).
const LOCK_TTL: std::time::Duration = std::time::Duration::from_secs(5);
/// A room whose relay to its parent was refused or lost tries again after this.
pub(super) const REATTACH_DELAY: std::time::Duration = std::time::Duration::from_millis(500);
/// A connected relay from which nothing arrives for this long is dead (its
/// ends exchange RTCP reports every second, media or not): dropped, as
/// ICE consent would drop a peer, well before its node's record expires.
pub(super) const RELAY_SILENCE: std::time::Duration = std::time::Duration::from_secs(4);
/// How often relays are checked for silence.
pub(super) const RELAY_CHECK: std::time::Duration = std::time::Duration::from_secs(1);
/// A node whose relay went silent is not attached to again for this long
/// (or until it leaves the directory).
pub(super) const SUSPECT_FOR: std::time::Duration = std::time::Duration::from_secs(30);

/// A publisher of the room on another node.
#[derive(Debug)]
pub(super) struct RemotePublisher {
    /// Its participant id on this node (its msid streams are `p{pid}`).
    pub(super) pid: u64,
    /// Its id in the cluster.
    pub(super) id: String,
    pub(super) name: String,
    pub(super) audio_muted: bool,
    pub(super) video_off: bool,
    /// The relay its tracks come through.
    pub(super) via: String,
    /// Its tracks (ids in the cluster), mirrored on home.
    pub(super) tracks: Vec<(String, Track)>,
}

impl RemotePublisher {
    /// As other nodes see it.
    pub(super) fn wire(&self) -> WirePublisher {
        WirePublisher {
            id: self.id.clone(),
            name: self.name.clone(),
            audio_muted: self.audio_muted,
            video_off: self.video_off,
        }
    }
}

/// One relay of the room's home Router to another node's.
#[derive(Debug)]
pub(super) struct Relay {
    pub(super) node: String,
    pub(super) relay_id: String,
    /// Its end on home.
    pub(super) transport: TransportId,
    pub(super) counters: Arc<RelayCounters>,
    /// Connected both ways, tracks announced.
    pub(super) ready: bool,
    /// Packets received as last checked, and since when that count stands.
    pub(super) last_in: (u64, Instant),
    /// The node that feeds this one (it was opened to attach).
    pub(super) parent: bool,
    /// What the far node announced through it (see [`Announced`]).
    pub(super) announced: Announced,
}

/// The room's part in a cluster.
#[derive(Debug)]
pub(super) struct ClusterRoom {
    pub(super) cluster: Arc<Cluster>,
    /// The room found its place in the directory.
    pub(super) attached: bool,
    /// The directory may list this node in the room (it attached since it
    /// last left): leaving removes it.
    pub(super) in_directory: bool,
    pub(super) relays: Vec<Relay>,
    pub(super) remote: BTreeMap<u64, RemotePublisher>,
    /// Messages to other nodes, sent in order by a task of their own.
    outbox: mpsc::UnboundedSender<(String, NodeMsg)>,
    /// The live nodes, as the heartbeat sees them.
    pub(super) nodes: watch::Receiver<Vec<crate::directory::NodeRecord>>,
    /// When to attach again (after a refused or lost parent).
    pub(super) reattach_at: Option<Instant>,
    /// When to check the relays for silence next.
    pub(super) check_at: Option<Instant>,
    /// Nodes whose relay went silent, and until when they are avoided.
    pub(super) suspects: Vec<(String, Instant)>,
    /// Viewers behind each relay (by relay id), as it last said.
    pub(super) viewers_via: std::collections::HashMap<String, u64>,
    /// What each relay was last told of the viewers on this side.
    pub(super) viewers_sent: std::collections::HashMap<String, u64>,
}

impl ClusterRoom {
    pub(super) fn new(cluster: Arc<Cluster>) -> Self {
        let (outbox, mut rx) = mpsc::unbounded_channel::<(String, NodeMsg)>();
        let c = cluster.clone();
        tokio::spawn(async move {
            while let Some((node, msg)) = rx.recv().await {
                if let Err(e) = c.send(&node, &msg).await {
                    tracing::warn!(%node, error = %e, "a message to another node was not sent");
                }
            }
        });
        Self {
            nodes: cluster.watch_nodes(),
            cluster,
            attached: false,
            in_directory: false,
            relays: Vec::new(),
            remote: BTreeMap::new(),
            outbox,
            reattach_at: None,
            check_at: None,
            suspects: Vec::new(),
            viewers_via: std::collections::HashMap::new(),
            viewers_sent: std::collections::HashMap::new(),
        }
    }

    pub(super) fn me(&self) -> &str {
        self.cluster.node_id()
    }

    /// Whether track `id` (in the cluster) is mirrored here from a relay.
    pub(super) fn knows_track(&self, id: &str) -> bool {
        self.remote
            .values()
            .any(|r| r.tracks.iter().any(|(t, _)| t == id))
    }

    pub(super) fn send(&self, node: &str, msg: NodeMsg) {
        let _ = self.outbox.send((node.to_owned(), msg));
    }

    /// Sends every ready relay but `except` the message `make` builds from
    /// this node's id and the relay's id.
    pub(super) fn to_relays(&self, except: Option<&str>, make: impl Fn(String, String) -> NodeMsg) {
        for r in self
            .relays
            .iter()
            .filter(|r| r.ready && Some(r.relay_id.as_str()) != except)
        {
            self.send(&r.node, make(self.me().to_owned(), r.relay_id.clone()));
        }
    }
}

fn unavailable(e: &DirectoryError) -> Fail {
    Fail(ServerMsg::error(
        "directory-unavailable",
        format!(
            "this room is not on this node, and the cluster's directory cannot be reached to find it: {e}; try again shortly"
        ),
    ))
}

impl Room {
    /// This node's id in the cluster, when in one.
    pub(super) fn node_id(&self) -> Option<String> {
        self.cluster
            .as_ref()
            .map(|c| c.cluster.node_id().to_owned())
    }

    /// Finds the room's place in the cluster before its first join (or
    /// again after losing its parent): the origin, or an edge with a relay
    /// to its parent. Nothing to do when the node runs alone.
    ///
    /// Errors: `directory-unavailable`; `room-busy` when the room's lock
    /// stays taken.
    pub(super) async fn attach(&mut self) -> Result<(), Fail> {
        let Some(c) = self.cluster.as_ref().filter(|c| !c.attached) else {
            return Ok(());
        };
        let cluster = c.cluster.clone();
        let now = Instant::now();
        let suspects: Vec<String> = c
            .suspects
            .iter()
            .filter(|(_, until)| *until > now)
            .map(|(n, _)| n.clone())
            .collect();
        let me = cluster.node_id().to_owned();
        let dir = &cluster.dir;
        let until = Instant::now() + LOCK_WAIT;
        let lock = loop {
            match dir.lock_room(&self.name, LOCK_TTL).await {
                Ok(Some(l)) => break l,
                Ok(None) if Instant::now() < until => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Ok(None) => {
                    return Err(Fail(ServerMsg::error(
                        "room-busy",
                        "the room is being set up on another node; try again",
                    )));
                }
                Err(e) => return Err(unavailable(&e)),
            }
        };
        let placed = async {
            let rec = dir.room(&self.name).await?;
            // An origin whose relay to this node fell silent is taken for
            // gone before its record expires (the room's lock keeps two
            // edges from both taking over).
            let origin_live = match rec.origin.as_deref() {
                Some(o) if o != me && !suspects.iter().any(|s| s == o) => {
                    dir.node(o).await?.is_some()
                }
                _ => false,
            };
            if !origin_live {
                dir.set_origin(&self.name, &me).await?;
                return Ok(None);
            }
            // Not below itself: a node of its own subtree would make a loop.
            let mut subtree = vec![me.clone()];
            let mut i = 0;
            while let Some(n) = subtree.get(i).cloned() {
                subtree.extend(rec.children(&n).map(str::to_owned));
                i += 1;
            }
            let live: Vec<String> = cluster.nodes().into_iter().map(|n| n.id).collect();
            // Edges of nodes gone are forgotten, once the node list can be
            // trusted to name every live node.
            if cluster.nodes_settled() {
                for (e, _) in rec.edges.iter().filter(|(e, _)| !live.contains(e)) {
                    dir.leave_room(&self.name, e).await?;
                }
            }
            let usable = |n: &String| live.contains(n) && !suspects.contains(n);
            let mut tree = rec.clone();
            tree.edges
                .retain(|(e, p)| !subtree.contains(e) && usable(e) && usable(p));
            let parent = tree
                .parent_for_new_edge(cluster.cfg.fanout)
                .unwrap_or(rec.origin.as_deref().unwrap_or_default())
                .to_owned();
            dir.set_edge(&self.name, &me, &parent).await?;
            Ok::<_, DirectoryError>(Some(parent))
        }
        .await;
        let _ = dir.unlock_room(lock).await;
        let parent = placed.map_err(|e| unavailable(&e))?;
        cluster.hold(&self.name, parent.clone());
        tracing::info!(room = %self.name, node = %me, parent = ?parent, "room attached to the cluster");
        if let Some(c) = self.cluster.as_mut() {
            c.attached = true;
            c.in_directory = true;
        }
        if let Some(p) = parent {
            self.open_relay(&p).await?;
        }
        Ok(())
    }

    /// Opens a relay to `node`, this node's parent in the room's tree.
    async fn open_relay(&mut self, node: &str) -> Result<(), Fail> {
        let Some(home) = self.shards.first() else {
            return Err(Fail(ServerMsg::error(
                "server-error",
                "the room has no router",
            )));
        };
        let (worker, router, port) = (home.worker.clone(), home.router, home.port);
        let transport = call(&worker, |reply| Command::CreatePipeTransport {
            router,
            reply,
        })
        .await?;
        let Some(c) = self.cluster.as_mut() else {
            return Ok(());
        };
        let relay_id = format!("{:032x}", rand::random::<u128>());
        let addr = std::net::SocketAddr::new(c.cluster.cfg.node_address, port);
        // An answer that never comes is a silent relay too.
        c.check_at.get_or_insert(Instant::now() + RELAY_CHECK);
        c.relays.push(Relay {
            node: node.to_owned(),
            relay_id: relay_id.clone(),
            transport,
            counters: Arc::default(),
            ready: false,
            last_in: (0, Instant::now()),
            parent: true,
            announced: Announced::default(),
        });
        c.send(
            node,
            NodeMsg::RelayOpen {
                room: self.name.clone(),
                from: c.me().to_owned(),
                relay_id,
                addr,
            },
        );
        Ok(())
    }

    /// A message from another node about this room.
    pub(super) async fn on_node(&mut self, msg: NodeMsg) {
        match msg {
            NodeMsg::RelayOpen {
                from,
                relay_id,
                addr,
                ..
            } => self.on_relay_open(from, relay_id, addr).await,
            NodeMsg::RelayReady {
                from,
                relay_id,
                addr,
                ..
            } => self.on_relay_ready(&from, &relay_id, addr).await,
            NodeMsg::RelayRefused {
                from,
                relay_id,
                reason,
                ..
            } => {
                tracing::warn!(room = %self.name, node = %from, %reason, "relay refused; attaching again shortly");
                self.drop_relay(&relay_id).await;
            }
            NodeMsg::RelayClose { relay_id, .. } => {
                self.drop_relay(&relay_id).await;
                self.report_if_idle();
            }
            NodeMsg::Tracks {
                relay_id,
                added,
                removed,
                left,
                ..
            } => self.on_tracks(&relay_id, added, removed, left).await,
            NodeMsg::Publisher {
                relay_id,
                publisher,
                ..
            } => self.on_remote_state(&relay_id, publisher),
            NodeMsg::Viewers {
                relay_id, count, ..
            } => {
                let Some(c) = self.cluster.as_mut() else {
                    return;
                };
                if c.relays.iter().any(|r| r.relay_id == relay_id && r.ready) {
                    c.viewers_via.insert(relay_id, count);
                    self.viewers_changed(Instant::now());
                }
            }
        }
    }

    /// Another node attaches below this one: open our end, answer, and
    /// send it every track.
    async fn on_relay_open(&mut self, from: String, relay_id: String, addr: std::net::SocketAddr) {
        let refuse = |c: &ClusterRoom, name: &str, reason: String| {
            c.send(
                &from,
                NodeMsg::RelayRefused {
                    room: name.to_owned(),
                    from: c.me().to_owned(),
                    relay_id: relay_id.clone(),
                    reason,
                },
            );
        };
        // A node has one relay with this one per room: a new one replaces
        // what is left of an old one (it attached again).
        let old: Vec<String> = self
            .cluster
            .iter()
            .flat_map(|c| &c.relays)
            .filter(|r| r.node == from && r.relay_id != relay_id)
            .map(|r| r.relay_id.clone())
            .collect();
        for id in old {
            self.drop_relay(&id).await;
        }
        let Some(c) = self.cluster.as_ref() else {
            return;
        };
        let Some(home) = self.shards.first().filter(|_| c.attached) else {
            refuse(c, &self.name, "the room is not set up on this node".into());
            return;
        };
        let (worker, router, port) = (home.worker.clone(), home.router, home.port);
        let counters = Arc::new(RelayCounters::default());
        let peer = match c
            .cluster
            .relay_peer(&from, addr, &relay_id, counters.clone())
            .await
        {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(room = %self.name, node = %from, error = %e, "relay-open refused");
                refuse(c, &self.name, e.to_string());
                return;
            }
        };
        let made = call(&worker, |reply| Command::CreatePipeTransport {
            router,
            reply,
        })
        .await;
        let connected = match made {
            Ok(transport) => call(&worker, |reply| Command::ConnectPipeTransport {
                router,
                transport,
                peer: peer.into(),
                reply,
            })
            .await
            .map(|()| transport)
            .inspect_err(|_| {
                // Not left behind on the Router.
                self.command(router, Command::CloseTransport { router, transport });
            }),
            Err(e) => Err(e),
        };
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        let transport = match connected {
            Ok(t) => t,
            Err(e) => {
                refuse(c, &self.name, e.to_string());
                return;
            }
        };
        let me = c.me().to_owned();
        c.relays.push(Relay {
            node: from.clone(),
            relay_id: relay_id.clone(),
            transport,
            counters,
            ready: false,
            last_in: (0, Instant::now()),
            parent: false,
            announced: Announced::default(),
        });
        c.send(
            &from,
            NodeMsg::RelayReady {
                room: self.name.clone(),
                from: me,
                relay_id: relay_id.clone(),
                addr: std::net::SocketAddr::new(c.cluster.cfg.node_address, port),
            },
        );
        self.relay_connected(&relay_id, "relay opened to an edge")
            .await;
    }

    /// Relay `relay_id` is connected at this end: it counts in `/metrics`
    /// and its silence is watched; every track goes through it, and the
    /// viewer counts follow.
    async fn relay_connected(&mut self, relay_id: &str, what: &str) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        let Some(r) = c.relays.iter_mut().find(|r| r.relay_id == relay_id) else {
            return;
        };
        r.ready = true;
        r.last_in = (0, Instant::now());
        c.cluster.add_relay(RelayView {
            room: self.name.clone(),
            node: r.node.clone(),
            counters: r.counters.clone(),
        });
        tracing::info!(room = %self.name, node = %r.node, "{what}");
        c.check_at.get_or_insert(Instant::now() + RELAY_CHECK);
        self.announce_all(relay_id).await;
        self.viewers_changed(Instant::now());
    }

    /// Our parent opened its end: connect ours and send it every track.
    async fn on_relay_ready(&mut self, from: &str, relay_id: &str, addr: std::net::SocketAddr) {
        let Some(c) = self.cluster.as_ref() else {
            return;
        };
        let Some(r) = c
            .relays
            .iter()
            .find(|r| r.relay_id == relay_id && r.node == from && !r.ready)
        else {
            return;
        };
        let (transport, counters) = (r.transport, r.counters.clone());
        let Some(home) = self.shards.first() else {
            return;
        };
        let (worker, router) = (home.worker.clone(), home.router);
        let connected = match c.cluster.relay_peer(from, addr, relay_id, counters).await {
            Ok(peer) => call(&worker, |reply| Command::ConnectPipeTransport {
                router,
                transport,
                peer: peer.into(),
                reply,
            })
            .await
            .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = connected {
            tracing::warn!(room = %self.name, node = %from, error = %e, "relay not connected");
            self.drop_relay(relay_id).await;
            return;
        }
        self.relay_connected(relay_id, "relay to the parent connected")
            .await;
    }
}
