//! A member of a room that the server opens on a client's behalf (a WHIP
//! publisher, a WHEP viewer, an RTMP stream): a connection whose queue is
//! read in-process instead of by a WebSocket, joined through the hub like
//! any client so that the same validation, placement and limits apply.

use std::sync::atomic::{AtomicU64, Ordering};

use std::time::Duration;

use tokio::sync::mpsc;

use crate::conn::{ConnHandle, DirectLink, OUT_QUEUE, Outgoing};
use crate::hub::HubMsg;
use crate::protocol::{ClientMsg, Via};

/// Registers a new connection with the hub and sends its `join` for
/// `room` with `sdp` (the offer), `token`, display name `name` and `via`;
/// an empty name is the token's identity or `<via>-<n>`. Returns the connection and its
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
    (name, via): (String, Via),
) -> Result<(ConnHandle, mpsc::Receiver<Outgoing>), ShuttingDown> {
    let id = next_conn.fetch_add(1, Ordering::Relaxed);
    let (conn, rx) = ConnHandle::new(id, OUT_QUEUE);
    let msg = ClientMsg::Join {
        room: room.to_string(),
        name,
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

/// What answers a session's join, read back from its queue.
#[derive(Debug)]
pub enum Reply {
    /// Joined: our SDP answer, the participant id, and for an ingest its
    /// direct transport.
    Answer {
        /// The SDP answer.
        sdp: String,
        /// The participant id (`p7`).
        id: String,
        /// Where an ingest's packets go (`Outgoing::Direct`).
        direct: Option<DirectLink>,
    },
    /// This node is full: join on the node at `url`.
    Redirect {
        /// The node's base URL.
        url: String,
    },
    /// Refused, with the code and reason of docs/signaling.md.
    Error {
        /// The error code.
        code: String,
        /// The reason.
        message: String,
    },
}

/// The first reply that answers a join on `rx`: the answer (with the
/// direct link sent just before it), a redirect or an error; `None` when
/// the connection closed first.
pub async fn first_reply(rx: &mut mpsc::Receiver<Outgoing>) -> Option<Reply> {
    let mut direct = None;
    while let Some(out) = rx.recv().await {
        let text = match out {
            Outgoing::Text(t) => t,
            Outgoing::Shared(t) => t.to_string(),
            Outgoing::Direct(l) => {
                direct = Some(l);
                continue;
            }
            Outgoing::Ping | Outgoing::KeyframeRequest => continue,
            Outgoing::Close => return None,
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        let field = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
        match v.get("type").and_then(|t| t.as_str()) {
            Some("answer") => {
                return Some(Reply::Answer {
                    sdp: field("sdp"),
                    id: field("id"),
                    direct,
                });
            }
            Some("redirect") => return Some(Reply::Redirect { url: field("url") }),
            Some("error") => {
                return Some(Reply::Error {
                    code: field("code"),
                    message: field("message"),
                });
            }
            _ => {}
        }
    }
    None
}

/// Longest a direct publisher waits for its room's answer.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Joins `room` as a publisher on a direct transport (an RTMP stream, a
/// file played back: [`open`] with `sdp` made by the server) and waits
/// for the answer. Returns the connection, where its packets go, its
/// participant id (`p7`) and its queue (later messages: roster changes,
/// keyframe requests, `Close`).
///
/// Errors: the room's refusal (`code: reason`), a redirect, the room
/// closing first, or no answer within [`JOIN_TIMEOUT`]; the connection is
/// then gone.
pub async fn join_direct(
    hub: &mpsc::Sender<HubMsg>,
    next_conn: &AtomicU64,
    room: &str,
    sdp: String,
    token: Option<String>,
    named: (String, Via),
) -> Result<(ConnHandle, DirectLink, String, mpsc::Receiver<Outgoing>), String> {
    let (conn, mut rx) = open(hub, next_conn, room, sdp, token, named)
        .await
        .map_err(|e| e.to_string())?;
    let answer = tokio::time::timeout(JOIN_TIMEOUT, async {
        match first_reply(&mut rx).await {
            Some(Reply::Answer { direct, id, .. }) => direct
                .map(|d| (d, id))
                .ok_or_else(|| "no direct transport".to_string()),
            Some(Reply::Error { code, message }) => Err(format!("{code}: {message}")),
            Some(Reply::Redirect { url }) => Err(format!("this node is full: use {url} instead")),
            None => Err("the room closed".to_string()),
        }
    })
    .await
    .unwrap_or_else(|_| {
        Err(format!(
            "the room did not answer within {} s",
            JOIN_TIMEOUT.as_secs()
        ))
    });
    match answer {
        Ok((link, id)) => Ok((conn, link, id, rx)),
        Err(e) => {
            let _ = hub.send(HubMsg::Disconnect { conn: conn.id() }).await;
            Err(e)
        }
    }
}
