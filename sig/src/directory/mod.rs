//! The directory of nodes and rooms across machines, in Redis (`--redis`).
//!
//! Keys (all under `sfu:`):
//! - `sfu:node:{id}`: a node's [`NodeRecord`] (JSON), set by its heartbeat
//!   with an expiry of [`NODE_TTL`]: a node that stops heartbeating leaves
//!   the registry within that; `sfu:nodes` is the set of ids, pruned of
//!   those whose record expired.
//! - `sfu:room:{name}`: a hash, `origin` = the node holding the room, and
//!   `edge:{node}` = the node that feeds that edge (the relay tree),
//!   expiring [`ROOM_TTL`] after the last node holding it refreshed it.
//! - `sfu:lock:{name}`: the room's lock, `SET NX PX` with a random token,
//!   released only by its holder (compare and delete, in Lua).
//! - `sfu:pair:{a}|{b}`: the secret two nodes key their relays from (hex
//!   of 32 random bytes, set once by whichever asks first).
//!
//! Pub/sub channels: `sfu:inbox:{node}` for requests and replies between
//! two nodes ([`Subscription`]).
//!
//! Every call has a short timeout: when Redis is unreachable it fails with
//! [`DirectoryError::Unavailable`] at once (rooms already running do not
//! need the directory), and the connection is made again, with backoff,
//! on a later call. Everything read back is checked ([`records`]) before
//! use; what does not check out is logged and skipped.

pub mod records;
pub mod server;

use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::mpsc;

pub use self::records::{NodeRecord, RecordError, RoomRecord};

/// How long a node's record lives after its last heartbeat.
pub const NODE_TTL: Duration = Duration::from_secs(10);
/// How often a node heartbeats (well inside [`NODE_TTL`]).
pub const HEARTBEAT: Duration = Duration::from_secs(3);
/// How long a room's record lives after the last refresh by a node holding it.
pub const ROOM_TTL: Duration = Duration::from_secs(30);
/// How long a Redis call may take before the directory counts as unavailable.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(1500);

/// Why a directory call failed.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// Redis did not answer (down, unreachable, or too slow).
    #[error("the directory (Redis) is unavailable: {0}")]
    Unavailable(String),
    /// Redis answered with something that is not ours.
    #[error("the directory holds a bad record: {0}")]
    Record(#[from] RecordError),
}

impl From<redis::RedisError> for DirectoryError {
    fn from(e: redis::RedisError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

/// A room's lock while held ([`Directory::lock_room`]).
#[derive(Debug)]
pub struct RoomLock {
    key: String,
    token: String,
}

/// The directory: a handle that is cheap to clone (one multiplexed,
/// reconnecting connection underneath).
#[derive(Clone)]
pub struct Directory {
    client: redis::Client,
    conn: ConnectionManager,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory").finish_non_exhaustive()
    }
}

fn node_key(id: &str) -> String {
    format!("sfu:node:{id}")
}

fn room_key(name: &str) -> String {
    format!("sfu:room:{name}")
}

/// The pub/sub channel of node `id`'s inbox.
pub fn inbox(id: &str) -> String {
    format!("sfu:inbox:{id}")
}

const NODES: &str = "sfu:nodes";

impl Directory {
    /// A directory at `url` (`redis://host:port[/db]`). Connects lazily:
    /// the server starts even while Redis is down, and calls fail with
    /// [`DirectoryError::Unavailable`] until it is back.
    ///
    /// Errors: [`DirectoryError::Unavailable`] for a URL that does not parse.
    pub fn new(url: &str) -> Result<Self, DirectoryError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CALL_TIMEOUT))
            .set_response_timeout(Some(CALL_TIMEOUT))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(100))
            .set_max_delay(Duration::from_secs(2));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
        Ok(Self { client, conn })
    }

    /// Publishes `rec` as this node's record, alive for [`NODE_TTL`], and
    /// refreshes the records of `rooms` (the rooms it holds, each with the
    /// node feeding it, `None` for an origin) for [`ROOM_TTL`]. What the
    /// directory lost of them (Redis restarted empty) is written again: an
    /// edge entry, and the origin unless another node took it.
    ///
    /// Errors: [`DirectoryError::Unavailable`].
    pub async fn heartbeat(
        &self,
        rec: &NodeRecord,
        rooms: &[(String, Option<String>)],
    ) -> Result<(), DirectoryError> {
        let json = serde_json::to_vec(rec).map_err(|e| RecordError::Shape(e.to_string()))?;
        let mut pipe = redis::pipe();
        pipe.set_options(
            node_key(&rec.id),
            json,
            redis::SetOptions::default()
                .with_expiration(redis::SetExpiry::PX(NODE_TTL.as_millis() as u64)),
        )
        .ignore()
        .sadd(NODES, &rec.id)
        .ignore();
        for (r, parent) in rooms {
            let key = room_key(r);
            match parent {
                None => pipe.hset_nx(&key, "origin", &rec.id).ignore(),
                Some(p) => pipe.hset(&key, format!("edge:{}", rec.id), p).ignore(),
            };
            pipe.pexpire(&key, ROOM_TTL.as_millis() as i64).ignore();
        }
        let mut c = self.conn.clone();
        let () = pipe.query_async(&mut c).await?;
        Ok(())
    }

    /// Removes node `id` from the registry at once (a clean stop).
    ///
    /// Errors: [`DirectoryError::Unavailable`].
    pub async fn leave(&self, id: &str) -> Result<(), DirectoryError> {
        let mut c = self.conn.clone();
        let () = redis::pipe()
            .del(node_key(id))
            .ignore()
            .srem(NODES, id)
            .ignore()
            .query_async(&mut c)
            .await?;
        Ok(())
    }

    /// Node `id`'s record, if it is alive and checks out (a bad one is
    /// logged and taken as absent).
    ///
    /// Errors: [`DirectoryError::Unavailable`].
    pub async fn node(&self, id: &str) -> Result<Option<NodeRecord>, DirectoryError> {
        let mut c = self.conn.clone();
        let raw: Option<Vec<u8>> = c.get(node_key(id)).await?;
        Ok(raw.and_then(|b| checked_node(id, &b)))
    }

    /// Every live node whose record checks out, by id. Ids whose record
    /// expired are pruned from the set.
    ///
    /// Errors: [`DirectoryError::Unavailable`].
    pub async fn nodes(&self) -> Result<Vec<NodeRecord>, DirectoryError> {
        let mut c = self.conn.clone();
        let mut ids: Vec<String> = c.smembers(NODES).await?;
        ids.sort();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|i| node_key(i)).collect();
        let raw: Vec<Option<Vec<u8>>> = redis::cmd("MGET").arg(&keys).query_async(&mut c).await?;
        let mut out = Vec::new();
        let mut gone = Vec::new();
        for (id, r) in ids.iter().zip(raw) {
            match r {
                None => gone.push(id.clone()),
                Some(b) => out.extend(checked_node(id, &b)),
            }
        }
        if !gone.is_empty() {
            let _: Result<(), _> = c.srem(NODES, &gone).await;
        }
        Ok(out)
    }

    /// Takes room `name`'s lock for `ttl` (then it frees itself), or `None`
    /// when another node holds it.
    ///
    /// Errors: [`DirectoryError::Unavailable`].
    pub async fn lock_room(
        &self,
        name: &str,
        ttl: Duration,
    ) -> Result<Option<RoomLock>, DirectoryError> {
        let key = format!("sfu:lock:{name}");
        let token = format!("{:032x}", rand::random::<u128>());
        let mut c = self.conn.clone();
        let set: Option<String> = c
            .set_options(
                &key,
                &token,
                redis::SetOptions::default()
                    .conditional_set(redis::ExistenceCheck::NX)
                    .with_expiration(redis::SetExpiry::PX(ttl.as_millis() as u64)),
            )
            .await?;
        Ok(set.map(|_| RoomLock { key, token }))
    }

    /// Releases `lock` if it is still ours (it may have expired and been
    /// taken by another node: then it is left alone).
    ///
    /// Errors: [`DirectoryError::Unavailable`].
    pub async fn unlock_room(&self, lock: RoomLock) -> Result<(), DirectoryError> {
        let script = redis::Script::new(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end",
        );
        let mut c = self.conn.clone();
        let _: i64 = script
            .key(&lock.key)
            .arg(&lock.token)
            .invoke_async(&mut c)
            .await?;
        Ok(())
    }

    /// Room `name`'s record (empty when no node holds it). Fields that do
    /// not check out are logged and skipped.
    ///
    /// Errors: [`DirectoryError::Unavailable`].
    pub async fn room(&self, name: &str) -> Result<RoomRecord, DirectoryError> {
        let mut c = self.conn.clone();
        let fields: Vec<(String, String)> = c.hgetall(room_key(name)).await?;
        let (rec, bad) = RoomRecord::from_fields(fields);
        if !bad.is_empty() {
            tracing::warn!(room = %name, fields = ?bad, "directory: room record fields ignored");
        }
        Ok(rec)
    }

    /// Makes `node` room `name`'s origin (hold the room's lock). An edge
    /// entry of `node` goes: it no longer has a parent.
    ///
    /// Errors: [`DirectoryError::Unavailable`].
    pub async fn set_origin(&self, name: &str, node: &str) -> Result<(), DirectoryError> {
        let key = room_key(name);
        let mut pipe = redis::pipe();
        pipe.hset(&key, "origin", node)
            .ignore()
            .hdel(&key, format!("edge:{node}"))
            .ignore();
        self.write_room(&key, pipe).await
    }

    /// Runs `pipe` (writes to the room hash `key`) and renews the hash's
    /// expiry.
    async fn write_room(&self, key: &str, mut pipe: redis::Pipeline) -> Result<(), DirectoryError> {
        pipe.pexpire(key, ROOM_TTL.as_millis() as i64).ignore();
        let mut c = self.conn.clone();
        let () = pipe.query_async(&mut c).await?;
        Ok(())
    }

    /// Records `edge` as an edge of room `name`, fed by `parent`.
    ///
    /// Errors: [`DirectoryError::Unavailable`].
    pub async fn set_edge(
        &self,
        name: &str,
        edge: &str,
        parent: &str,
    ) -> Result<(), DirectoryError> {
        let key = room_key(name);
        let mut pipe = redis::pipe();
        pipe.hset(&key, format!("edge:{edge}"), parent).ignore();
        self.write_room(&key, pipe).await
    }

    /// Removes `node` from room `name` (it no longer holds it): its edge
    /// entry, or the origin when it is that node.
    ///
    /// Errors: [`DirectoryError::Unavailable`].
    pub async fn leave_room(&self, name: &str, node: &str) -> Result<(), DirectoryError> {
        let script = redis::Script::new(
            "redis.call('HDEL', KEYS[1], 'edge:' .. ARGV[1]) \
             if redis.call('HGET', KEYS[1], 'origin') == ARGV[1] then redis.call('HDEL', KEYS[1], 'origin') end \
             return 0",
        );
        let mut c = self.conn.clone();
        let _: i64 = script
            .key(room_key(name))
            .arg(node)
            .invoke_async(&mut c)
            .await?;
        Ok(())
    }

    /// The secret nodes `a` and `b` key their relays from
    /// ([`sfu_core::transport::RelayPeer::new`]): made by whichever of the
    /// two asks first, the same for both after.
    ///
    /// Errors: [`DirectoryError::Unavailable`]; [`DirectoryError::Record`]
    /// when the stored secret is not 64 hex digits.
    pub async fn pair_secret(&self, a: &str, b: &str) -> Result<Vec<u8>, DirectoryError> {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let key = format!("sfu:pair:{lo}|{hi}");
        let fresh: [u8; 32] = rand::random();
        let hex: String = fresh.iter().map(|b| format!("{b:02x}")).collect();
        let mut c = self.conn.clone();
        let _: Option<String> = c
            .set_options(
                &key,
                &hex,
                redis::SetOptions::default().conditional_set(redis::ExistenceCheck::NX),
            )
            .await?;
        let stored: Option<String> = c.get(&key).await?;
        stored
            .as_deref()
            .and_then(parse_hex32)
            .ok_or(DirectoryError::Record(RecordError::Field {
                field: "pair secret",
                why: "64 hex digits",
            }))
    }

    /// Publishes `payload` on `channel`; returns how many subscribers got it.
    ///
    /// Errors: [`DirectoryError::Unavailable`].
    pub async fn publish(&self, channel: &str, payload: &[u8]) -> Result<usize, DirectoryError> {
        let mut c = self.conn.clone();
        Ok(c.publish(channel, payload).await?)
    }

    /// Listens on `channels` from a task of its own, for as long as the
    /// returned [`Subscription`] is kept: messages come as (channel,
    /// payload); a lost connection is made again with backoff (up to
    /// 2 s), and messages published meanwhile are lost, as pub/sub does.
    pub fn subscribe(&self, channels: Vec<String>) -> Subscription {
        let (tx, rx) = mpsc::channel(1024);
        let client = self.client.clone();
        let task = tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                match listen(&client, &channels, &tx).await {
                    Ok(()) => return, // the receiver is gone
                    Err(e) => {
                        tracing::warn!(error = %e, "directory: subscription lost; retrying");
                    }
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                if tx.is_closed() {
                    return;
                }
            }
        });
        Subscription { rx, task }
    }
}

/// Messages of a [`Directory::subscribe`]; dropping it stops the listener.
#[derive(Debug)]
pub struct Subscription {
    /// (channel, payload) as they arrive.
    pub rx: mpsc::Receiver<(String, Vec<u8>)>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Subscribes and forwards until the connection fails (`Err`) or the
/// receiver is gone (`Ok`).
async fn listen(
    client: &redis::Client,
    channels: &[String],
    tx: &mpsc::Sender<(String, Vec<u8>)>,
) -> Result<(), DirectoryError> {
    use futures_util::StreamExt;
    let mut ps = tokio::time::timeout(CALL_TIMEOUT, client.get_async_pubsub())
        .await
        .map_err(|_| DirectoryError::Unavailable("connect timed out".into()))??;
    for ch in channels {
        ps.subscribe(ch).await?;
    }
    let mut stream = ps.on_message();
    while let Some(m) = stream.next().await {
        let payload = m.get_payload_bytes();
        if payload.len() > records::MAX_RECORD {
            tracing::warn!(
                bytes = payload.len(),
                "directory: oversized message dropped"
            );
            continue;
        }
        if tx
            .send((m.get_channel_name().to_owned(), payload.to_vec()))
            .await
            .is_err()
        {
            return Ok(());
        }
    }
    Err(DirectoryError::Unavailable("subscription closed".into()))
}

fn checked_node(id: &str, bytes: &[u8]) -> Option<NodeRecord> {
    match NodeRecord::parse(bytes) {
        Ok(r) if r.id == id => Some(r),
        Ok(r) => {
            tracing::warn!(key = %id, record = %r.id, "directory: node record under another id ignored");
            None
        }
        Err(e) => {
            tracing::warn!(node = %id, error = %e, "directory: node record ignored");
            None
        }
    }
}

fn parse_hex32(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 {
        return None;
    }
    (0..32)
        .map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests;
