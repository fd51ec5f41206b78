//! A member of a room that the server opens on a client's behalf (a WHIP
//! publisher, a WHEP viewer, an RTMP stream): a connection whose queue is
//! read in-process instead of by a WebSocket, joined through the hub like
//! any client so that the same validation, placement and limits apply.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;

use crate::conn::{ConnHandle, OUT_QUEUE, Outgoing};
use crate::hub::HubMsg;
use crate::protocol::{ClientMsg, Via};

/// Registers a new connection with the hub and sends its `join` for
/// `room` with `sdp` (the offer), `token` and `via`; the display name is
/// the token's identity or `<via>-<n>`. Returns the connection and its
/// queue, whose first answer-like message (`answer`, `redirect` or
/// `error`; an ingest's `Outgoing::Direct` comes just before its answer)
/// says how the join went.
///
/// Errors: the hub is gone (the server is shutting down).
pub async fn open(
    hub: &mpsc::Sender<HubMsg>,
    next_conn: &AtomicU64,
    room: &str,
    sdp: String,
    token: Option<String>,
    via: Via,
) -> Result<(ConnHandle, mpsc::Receiver<Outgoing>), ShuttingDown> {
    let id = next_conn.fetch_add(1, Ordering::Relaxed);
    let (conn, rx) = ConnHandle::new(id, OUT_QUEUE);
    let msg = ClientMsg::Join {
        room: room.to_string(),
        name: String::new(),
        sdp,
        token,
        role: None,
        via,
    };
    hub.send(HubMsg::Connect { conn: conn.clone() })
        .await
        .map_err(|_| ShuttingDown)?;
    hub.send(HubMsg::Client { conn: id, msg })
        .await
        .map_err(|_| ShuttingDown)?;
    Ok((conn, rx))
}

/// The hub is gone: the server is shutting down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the server is shutting down")]
pub struct ShuttingDown;
