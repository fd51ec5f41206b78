//! The `/ws` signaling endpoint: one WebSocket per participant.
//!
//! Messages over [`MAX_MESSAGE_BYTES`] get a `message-too-large` error and
//! the connection stays open (frames up to 1 MiB are read so they can be
//! answered; larger frames close the socket, as tungstenite enforces).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;

use crate::protocol::{MAX_MESSAGE_BYTES, ServerMsg, parse_client};
use crate::rooms::{HubMsg, Outgoing};

/// Hard cap on a WebSocket message read from a client (bytes).
const READ_LIMIT: usize = 1 << 20;

/// Shared state of the HTTP side.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The hub's inbox.
    pub hub: mpsc::UnboundedSender<HubMsg>,
    /// Source of connection ids.
    pub next_conn: Arc<AtomicU64>,
    /// Rooms for /metrics.
    pub registry: Arc<crate::rooms::Registry>,
    /// Worker counters for /metrics.
    pub workers: Arc<Vec<Arc<sfu_core::stats::Counters>>>,
}

/// Upgrades `/ws`.
pub async fn handler(ws: WebSocketUpgrade, State(app): State<AppState>) -> Response {
    ws.max_message_size(READ_LIMIT)
        .max_frame_size(READ_LIMIT)
        .on_upgrade(move |socket| run(socket, app))
}

async fn run(socket: WebSocket, app: AppState) {
    let conn = app.next_conn.fetch_add(1, Ordering::Relaxed);
    let (mut sink, mut stream) = socket.split();
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Outgoing>();
    if app
        .hub
        .send(HubMsg::Connect {
            conn,
            out: out_tx.clone(),
        })
        .is_err()
    {
        return;
    }
    let writer = tokio::spawn(async move {
        while let Some(o) = out_rx.recv().await {
            match o {
                Outgoing::Text(t) => {
                    if sink.send(Message::Text(t.into())).await.is_err() {
                        break;
                    }
                }
                Outgoing::Close => break,
            }
        }
        let _ = sink.close().await;
    });
    let reply = |m: ServerMsg| {
        let _ = out_tx.send(Outgoing::Text(m.to_json()));
    };
    while let Some(msg) = stream.next().await {
        match msg {
            Ok(Message::Text(text)) => match parse_client(text.as_str()) {
                Ok(msg) => {
                    if app.hub.send(HubMsg::Client { conn, msg }).is_err() {
                        break;
                    }
                }
                Err(e) => reply(e),
            },
            Ok(Message::Binary(b)) => {
                if b.len() > MAX_MESSAGE_BYTES {
                    reply(ServerMsg::error(
                        "message-too-large",
                        format!("message of {} bytes exceeds the limit", b.len()),
                    ));
                } else {
                    reply(ServerMsg::error(
                        "bad-message",
                        "binary messages are not supported; send JSON text",
                    ));
                }
            }
            Ok(Message::Close(_)) => break,
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(conn, error = %e, "websocket read ended");
                break;
            }
        }
    }
    let _ = app.hub.send(HubMsg::Disconnect { conn });
    drop(out_tx);
    let _ = writer.await;
}
