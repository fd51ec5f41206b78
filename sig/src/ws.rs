//! The `/ws` signaling endpoint: one WebSocket per participant.
//!
//! Messages over [`MAX_MESSAGE_BYTES`] get a `message-too-large` error and
//! the connection stays open (frames up to 1 MiB are read so they can be
//! answered; larger frames close the socket, as tungstenite enforces).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
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
    /// Silence after which a WebSocket is closed; pings go out every third of it.
    pub ws_idle_timeout: std::time::Duration,
}

/// Upgrades `/ws`.
pub async fn handler(
    ws: WebSocketUpgrade,
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
) -> Response {
    ws.max_message_size(READ_LIMIT)
        .max_frame_size(READ_LIMIT)
        .on_upgrade(move |socket| run(socket, app, peer))
}

/// Completes the close handshake (RFC 6455 §7.1.1): reads, and ignores,
/// until the client's Close or end of stream, for at most 2 s. Dropping the
/// socket with unread input would make the kernel reset the connection and
/// the client lose the messages still in flight, such as the error saying why.
async fn drain(stream: &mut futures_util::stream::SplitStream<WebSocket>) {
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
        while let Some(Ok(m)) = stream.next().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

async fn run(socket: WebSocket, app: AppState, peer: std::net::SocketAddr) {
    let conn = app.next_conn.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(conn, %peer, "websocket opened");
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
                Outgoing::Ping => {
                    if sink.send(Message::Ping(Default::default())).await.is_err() {
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
    let idle = app.ws_idle_timeout;
    let mut ping = tokio::time::interval(idle / 3);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    let mut last_heard = tokio::time::Instant::now();
    loop {
        let msg = tokio::select! {
            m = stream.next() => match m {
                Some(m) => m,
                None => break,
            },
            _ = ping.tick() => {
                if last_heard.elapsed() >= idle {
                    tracing::info!(conn, %peer, ?idle, "closing a silent WebSocket");
                    reply(ServerMsg::error("idle-timeout", format!("nothing received for {} s; closing", idle.as_secs())));
                    let _ = out_tx.send(Outgoing::Close);
                    drain(&mut stream).await;
                    break;
                }
                let _ = out_tx.send(Outgoing::Ping);
                continue;
            }
        };
        last_heard = tokio::time::Instant::now();
        match msg {
            Ok(Message::Text(text)) => match parse_client(text.as_str()) {
                Ok(msg) => {
                    if app.hub.send(HubMsg::Client { conn, msg }).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    let _ = app.hub.send(HubMsg::Reply { conn, msg: e });
                }
            },
            Ok(Message::Binary(b)) => {
                let msg = if b.len() > MAX_MESSAGE_BYTES {
                    ServerMsg::error(
                        "message-too-large",
                        format!("message of {} bytes exceeds the limit", b.len()),
                    )
                } else {
                    ServerMsg::error(
                        "bad-message",
                        "binary messages are not supported; send JSON text",
                    )
                };
                let _ = app.hub.send(HubMsg::Reply { conn, msg });
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
