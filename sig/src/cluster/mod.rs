//! This node in a cluster (`--redis`): its heartbeat in the directory, the
//! nodes it sees, the rooms it holds, its inbox of [`NodeMsg`]s from other
//! nodes, and the relays of its rooms (for `/metrics`).
//!
//! Nothing here is on a join's or a packet's path while the directory is
//! down: rooms already running keep forwarding (their relays are UDP
//! between the nodes' Routers), the heartbeat retries every
//! [`HEARTBEAT`](crate::directory::HEARTBEAT), and only a join that needs
//! the directory (a room this node does not hold yet) fails, with
//! `directory-unavailable`.

pub mod wire;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sfu_core::transport::{RelayCounters, RelayPeer};
use tokio::sync::{mpsc, watch};

use crate::config::ClusterConfig;
use crate::directory::records::check_relay_addr;
use crate::directory::{Directory, DirectoryError, HEARTBEAT, NODE_TTL, NodeRecord, inbox};

pub use self::wire::NodeMsg;

/// A relay of one of this node's rooms, for `/metrics`.
#[derive(Debug, Clone)]
pub struct RelayView {
    /// The room.
    pub room: String,
    /// The node at its far end.
    pub node: String,
    /// Its counters (packets and bytes both ways, RTT).
    pub counters: Arc<RelayCounters>,
}

/// What the heartbeat reports of this node's load.
pub type LoadFn = Arc<dyn Fn() -> u64 + Send + Sync>;

/// This node's membership of the cluster; shared by the hub, the rooms and
/// `/metrics`.
pub struct Cluster {
    /// Its settings.
    pub cfg: ClusterConfig,
    /// The directory.
    pub dir: Directory,
    cores: u16,
    nodes: watch::Sender<Vec<NodeRecord>>,
    up: AtomicBool,
    /// Since when the directory has answered every heartbeat.
    up_since: Mutex<Option<Instant>>,
    /// Rooms held here: name → the node feeding it (`None`: the origin).
    held: Mutex<BTreeMap<String, Option<String>>>,
    relays: Mutex<Vec<RelayView>>,
    load: LoadFn,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node", &self.cfg.node_id)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Joins the cluster: starts the heartbeat (every [`HEARTBEAT`]) and the
    /// inbox listener, whose messages go to `inbox_tx` once checked.
    /// `load` gives the consumers this node forwards to now.
    ///
    /// Errors: [`DirectoryError::Unavailable`] for a bad URL only; a
    /// directory that is down is retried.
    pub fn start(
        cfg: ClusterConfig,
        cores: u16,
        load: LoadFn,
        inbox_tx: mpsc::Sender<NodeMsg>,
    ) -> Result<Arc<Self>, DirectoryError> {
        let dir = Directory::new(&cfg.redis)?;
        let (nodes, _) = watch::channel(Vec::new());
        let me = Arc::new(Self {
            cfg,
            dir,
            cores,
            nodes,
            up: AtomicBool::new(false),
            up_since: Mutex::new(None),
            held: Mutex::new(BTreeMap::new()),
            relays: Mutex::new(Vec::new()),
            load,
        });
        tokio::spawn(heartbeat(Arc::downgrade(&me)));
        tokio::spawn(listen(Arc::downgrade(&me), inbox_tx));
        Ok(me)
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.cfg.node_id
    }

    /// The live nodes as of the last heartbeat (this one included).
    pub fn nodes(&self) -> Vec<NodeRecord> {
        self.nodes.borrow().clone()
    }

    /// The live nodes, as they change.
    pub fn watch_nodes(&self) -> watch::Receiver<Vec<NodeRecord>> {
        self.nodes.subscribe()
    }

    /// Whether the directory answered the last heartbeat.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Whether the node list can be trusted to name every live node: the
    /// directory has answered for a whole [`NODE_TTL`] (after it comes
    /// back empty, nodes register again one heartbeat at a time).
    pub fn nodes_settled(&self) -> bool {
        self.up_since
            .lock()
            .ok()
            .and_then(|t| *t)
            .is_some_and(|t| t.elapsed() >= NODE_TTL)
    }

    /// Marks room `room` held here, fed by `parent` (`None`: its origin):
    /// the heartbeat keeps its record alive, and writes it again should the
    /// directory lose it.
    pub fn hold(&self, room: &str, parent: Option<String>) {
        if let Ok(mut h) = self.held.lock() {
            h.insert(room.to_owned(), parent);
        }
    }

    /// Room `room` is no longer held here.
    pub fn release(&self, room: &str) {
        if let Ok(mut h) = self.held.lock() {
            h.remove(room);
        }
    }

    /// Rooms held here, with their parents.
    pub fn held(&self) -> Vec<(String, Option<String>)> {
        self.held
            .lock()
            .map(|h| h.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    /// Adds a relay to `/metrics`.
    pub fn add_relay(&self, view: RelayView) {
        if let Ok(mut r) = self.relays.lock() {
            r.push(view);
        }
    }

    /// Removes room `room`'s relay to `node` from `/metrics`.
    pub fn remove_relay(&self, room: &str, node: &str) {
        if let Ok(mut r) = self.relays.lock() {
            r.retain(|v| !(v.room == room && v.node == node));
        }
    }

    /// The relays of this node's rooms.
    pub fn relays(&self) -> Vec<RelayView> {
        self.relays.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// The live node with the most room to spare, other than this one,
    /// that takes `more` consumers more.
    pub fn node_with_room(&self, more: u64) -> Option<NodeRecord> {
        self.nodes
            .borrow()
            .iter()
            .filter(|n| n.id != self.cfg.node_id && n.has_room_for(more))
            .max_by_key(|n| n.capacity.saturating_sub(n.consumers))
            .cloned()
    }

    /// Whether this node takes `more` consumers more (`--node-capacity`).
    pub fn has_room_for(&self, more: u64) -> bool {
        (self.load)().saturating_add(more) <= self.cfg.capacity
    }

    /// Sends `msg` to node `node`'s inbox.
    ///
    /// Errors: [`DirectoryError::Unavailable`].
    pub async fn send(&self, node: &str, msg: &NodeMsg) -> Result<(), DirectoryError> {
        let json = serde_json::to_vec(msg)
            .map_err(|e| DirectoryError::Unavailable(format!("cannot encode: {e}")))?;
        self.dir.publish(&inbox(node), &json).await?;
        Ok(())
    }

    /// The far end of room `relay_id`'s relay to node `node`, whose Router
    /// is at `addr`: checked against `node`'s record (a live node, its
    /// registered address) and keyed from the pair's secret.
    ///
    /// Errors: [`DirectoryError::Unavailable`]; [`DirectoryError::Record`]
    /// when `node` is not live or `addr` is not on its address.
    pub async fn relay_peer(
        &self,
        node: &str,
        addr: SocketAddr,
        relay_id: &str,
        counters: Arc<RelayCounters>,
    ) -> Result<RelayPeer, DirectoryError> {
        let rec = self
            .dir
            .node(node)
            .await?
            .ok_or(crate::directory::RecordError::Field {
                field: "node",
                why: "not a live node",
            })?;
        check_relay_addr(&rec, addr)?;
        let secret = self.dir.pair_secret(self.node_id(), node).await?;
        let lower = self.node_id() < node;
        RelayPeer::new(addr, &secret, relay_id.as_bytes(), lower, counters).map_err(|e| {
            DirectoryError::Record(crate::directory::RecordError::Shape(e.to_string()))
        })
    }

    fn record(&self) -> NodeRecord {
        NodeRecord {
            id: self.cfg.node_id.clone(),
            address: self.cfg.node_address,
            url: self.cfg.public_url.clone(),
            cores: self.cores,
            consumers: (self.load)(),
            capacity: self.cfg.capacity,
            rooms: self.held.lock().map_or(0, |h| h.len() as u32),
        }
    }

    /// Leaves the directory at once (a clean stop).
    pub async fn leave(&self) {
        let id = self.node_id().to_owned();
        for (room, _) in self.held() {
            let _ = self.dir.leave_room(&room, &id).await;
        }
        if let Err(e) = self.dir.leave(&id).await {
            tracing::warn!(error = %e, "directory: could not leave");
        }
    }
}

/// Beats every [`HEARTBEAT`] while the cluster handle lives.
async fn heartbeat(me: std::sync::Weak<Cluster>) {
    let mut last_warn: Option<Instant> = None;
    let mut tick = tokio::time::interval(HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(c) = me.upgrade() else { return };
        let rec = c.record();
        let res = async {
            c.dir.heartbeat(&rec, &c.held()).await?;
            c.dir.nodes().await
        }
        .await;
        match res {
            Ok(nodes) => {
                if let Ok(mut t) = c.up_since.lock() {
                    t.get_or_insert_with(Instant::now);
                }
                if !c.up.swap(true, Ordering::Relaxed) {
                    tracing::info!(node = %rec.id, nodes = nodes.len(), "directory: registered");
                }
                c.nodes.send_if_modified(|n| {
                    let changed = *n != nodes;
                    *n = nodes;
                    changed
                });
            }
            Err(e) => {
                c.up.store(false, Ordering::Relaxed);
                if let Ok(mut t) = c.up_since.lock() {
                    *t = None;
                }
                let now = Instant::now();
                if last_warn.is_none_or(|t| now - t >= Duration::from_secs(10)) {
                    last_warn = Some(now);
                    tracing::warn!(error = %e, "directory: heartbeat failed; rooms running go on, new cross-node joins wait for it");
                }
            }
        }
    }
}

/// Forwards the inbox's checked messages from live nodes to `tx`.
async fn listen(me: std::sync::Weak<Cluster>, tx: mpsc::Sender<NodeMsg>) {
    let Some(mut sub) = me
        .upgrade()
        .map(|c| c.dir.subscribe(vec![inbox(c.node_id())]))
    else {
        return;
    };
    let mut last_warn: Option<Instant> = None;
    while let Some((_, payload)) = sub.rx.recv().await {
        let Some(c) = me.upgrade() else { return };
        let msg = match NodeMsg::parse(&payload) {
            Ok(m) if m.from() != c.node_id() => m,
            Ok(_) => continue,
            Err(e) => {
                let now = Instant::now();
                if last_warn.is_none_or(|t| now - t >= Duration::from_secs(10)) {
                    last_warn = Some(now);
                    tracing::warn!(error = %e, "directory: a message to this node was ignored");
                }
                continue;
            }
        };
        if tx.send(msg).await.is_err() {
            return;
        }
    }
}
