//! A WebSocket connection as the hub and the rooms see it: a bounded
//! outgoing queue and a way to close the connection.
//!
//! Nothing waits on a client: a message is queued without blocking, and when
//! the queue is full (the client stopped reading) the connection is closed
//! and its participant removed, instead of letting the queue grow.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{Notify, mpsc};

use crate::protocol::ServerMsg;

/// Id of one WebSocket connection.
pub type ConnId = u64;

/// Capacity of a connection's outgoing queue, in messages.
pub const OUT_QUEUE: usize = 256;

/// What goes to a connection's writer.
#[derive(Debug)]
pub enum Outgoing {
    /// A JSON text message.
    Text(String),
    /// A JSON text message serialized once for many connections (a
    /// broadcast to a room).
    Shared(Arc<str>),
    /// A WebSocket ping (keep-alive; the client's pong counts as activity).
    Ping,
    /// Close the WebSocket.
    Close,
    /// To an ingest's session only (never a socket's): where to hand its
    /// packets, sent before its `answer`.
    Direct(DirectLink),
    /// To a direct publisher only (a file played back): a subscriber
    /// wants a keyframe of its video.
    KeyframeRequest,
}

/// An ingest's direct transport: the worker, Router and transport its RTP
/// packets go to (`sfu_core::worker::Command::SendDirect`).
#[derive(Debug, Clone)]
pub struct DirectLink {
    /// The worker that owns the Router.
    pub worker: crate::worker_link::WorkerRef,
    /// The room's home Router.
    pub router: sfu_core::RouterId,
    /// The direct transport.
    pub transport: sfu_core::TransportId,
}

#[derive(Debug, Default)]
struct Closer {
    notify: Notify,
    closed: AtomicBool,
}

/// The sending side of one connection (clone freely).
#[derive(Debug, Clone)]
pub struct ConnHandle {
    id: ConnId,
    out: mpsc::Sender<Outgoing>,
    closer: Arc<Closer>,
}

impl ConnHandle {
    /// A handle for connection `id` whose outgoing queue holds `capacity`
    /// messages, and the queue's receiving end (for the writer).
    pub fn new(id: ConnId, capacity: usize) -> (Self, mpsc::Receiver<Outgoing>) {
        let (out, rx) = mpsc::channel(capacity.max(1));
        (
            Self {
                id,
                out,
                closer: Arc::default(),
            },
            rx,
        )
    }

    /// The connection's id.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// Queues a message. Returns false when it was not queued: the
    /// connection is gone, or its queue was full, in which case the
    /// connection is closed now (see [`Self::closed`]).
    pub fn send(&self, msg: &ServerMsg) -> bool {
        self.push(Outgoing::Text(msg.to_json()))
    }

    /// Queues a message serialized once for many connections
    /// ([`Broadcast`]); as [`Self::send`].
    pub fn send_shared(&self, json: &Arc<str>) -> bool {
        self.push(Outgoing::Shared(json.clone()))
    }

    /// Queues a ping or close; as [`Self::send`].
    pub fn push(&self, o: Outgoing) -> bool {
        match self.out.try_send(o) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                if !self.closer.closed.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        conn = self.id,
                        "client is not reading its messages: outgoing queue full, closing"
                    );
                }
                self.close();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Closes the connection: the socket task stops reading and writing, and
    /// the participant is removed as on a disconnect.
    pub fn close(&self) {
        self.closer.closed.store(true, Ordering::Relaxed);
        self.closer.notify.notify_one();
    }

    /// Completes once [`Self::close`] was called (before or after).
    pub async fn closed(&self) {
        loop {
            let n = self.closer.notify.notified();
            if self.closer.closed.load(Ordering::Relaxed) {
                return;
            }
            n.await;
        }
    }
}

/// A message to many connections, serialized once.
#[derive(Debug, Clone)]
pub struct Broadcast(Arc<str>);

impl Broadcast {
    /// Serializes `msg`.
    pub fn new(msg: &ServerMsg) -> Self {
        Self(msg.to_json().into())
    }

    /// Queues it on `conn` ([`ConnHandle::send_shared`]).
    pub fn send_to(&self, conn: &ConnHandle) -> bool {
        conn.send_shared(&self.0)
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it is empty (never, for a serialized message).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_closes_the_connection_instead_of_growing() {
        let (h, mut rx) = ConnHandle::new(1, 3);
        let m = ServerMsg::Left;
        assert!(h.send(&m) && h.send(&m) && h.send(&m));
        assert!(!h.send(&m), "the fourth does not fit");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt");
        rt.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(1), h.closed())
                .await
                .expect("closed");
        });
        assert_eq!(
            std::iter::from_fn(|| rx.try_recv().ok()).count(),
            3,
            "nothing beyond capacity"
        );
    }
}
