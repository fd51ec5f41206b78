//! The `/ws` signaling endpoint: one WebSocket per participant.
//!
//! Messages over [`MAX_MESSAGE_BYTES`] get a `message-too-large` error and
//! the connection stays open (frames up to 1 MiB are read so they can be
//! answered; larger frames close the socket, as tungstenite enforces).
//! Messages beyond the rate limits ([`crate::ratelimit`]) are dropped with a
//! `rate-limited` error (at most one such error per second). A write that
//! does not complete within the write timeout, or an outgoing queue that
//! fills up, closes the connection: a client that stops reading cannot make
//! the server hold its messages without limit.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::response::Response;
use futures_util::{Sink, SinkExt, StreamExt};
use tokio::sync::mpsc;

use crate::conn::{ConnHandle, OUT_QUEUE, Outgoing};
use crate::hub::{HubMsg, Registry};
use crate::protocol::{ClientMsg, MAX_MESSAGE_BYTES, ServerMsg, parse_client};
use crate::ratelimit::{ConnLimiter, IpLimiter};

/// Hard cap on a WebSocket message read from a client (bytes).
const READ_LIMIT: usize = 1 << 20;
/// Read and write buffer of each WebSocket (bytes). Signaling messages are
/// small and rare, and tungstenite's 128 KiB defaults cost that much
/// resident memory per participant; larger messages still pass.
const SOCKET_BUFFER: usize = 8 << 10;
/// Most a connection's unsent bytes may reach inside the WebSocket layer
/// before writes fail and the connection closes (bytes).
const MAX_WRITE_BUFFER: usize = 2 << 20;

/// Shared state of the HTTP side.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The hub's inbox.
    pub hub: mpsc::Sender<HubMsg>,
    /// Source of connection ids.
    pub next_conn: Arc<AtomicU64>,
    /// Rooms and workers for /metrics.
    pub registry: Arc<Registry>,
    /// Silence after which a WebSocket is closed; pings go out every third of it.
    pub ws_idle_timeout: Duration,
    /// Longest one WebSocket write may take.
    pub ws_write_timeout: Duration,
    /// Rate limits, with the per-address table.
    pub limiter: Arc<IpLimiter>,
    /// Rooms with their own series in /metrics.
    pub metrics_max_rooms: usize,
    /// This node's cluster, when in one (`/metrics`: nodes, relays).
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// Live WHIP and WHEP sessions.
    pub sessions: Arc<crate::whip::Sessions>,
    /// RTMP ingest counters (zero without `--rtmp-listen`).
    pub ingest: Arc<crate::ingest::rtmp::IngestMetrics>,
    /// The RTMP port encoders push to (`None`: no RTMP), for the page.
    pub rtmp_port: Option<u16>,
    /// Whether joins need a token (WHIP bearer, RTMP stream key).
    pub auth: bool,
    /// The HS256 secret of tokens (the recording API's admin tokens).
    pub auth_secret: Option<Arc<str>>,
    /// The server's recordings.
    pub recordings: Arc<crate::recording::Recordings>,
    /// Recordings being played into rooms.
    pub playbacks: Arc<crate::recording::playback::Playbacks>,
}

/// Upgrades `/ws`.
pub async fn handler(
    ws: WebSocketUpgrade,
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    ws.max_message_size(READ_LIMIT)
        .max_frame_size(READ_LIMIT)
        .read_buffer_size(SOCKET_BUFFER)
        .write_buffer_size(SOCKET_BUFFER)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .on_upgrade(move |socket| run(socket, app, peer))
}

/// Completes the close handshake (RFC 6455 §7.1.1): reads, and ignores,
/// until the client's Close or end of stream, for at most 2 s. Dropping the
/// socket with unread input would make the kernel reset the connection and
/// the client lose the messages still in flight, such as the error saying why.
async fn drain(stream: &mut futures_util::stream::SplitStream<WebSocket>) {
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(m)) = stream.next().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// Why a connection's writer stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum WriterEnd {
    /// Asked to close, or the queue closed.
    Closed,
    /// A write failed (the connection broke).
    Failed,
    /// A write took longer than the write timeout: the client stopped reading.
    TimedOut,
}

/// Writes the connection's queue to `sink`, each write bounded by
/// `write_timeout`, until a close, an error or a timeout; then closes the
/// connection through `conn` so the reader stops too.
pub async fn write_loop<S>(
    mut sink: S,
    mut out: mpsc::Receiver<Outgoing>,
    conn: ConnHandle,
    write_timeout: Duration,
) -> WriterEnd
where
    S: Sink<Message> + Unpin,
{
    let end = loop {
        let msg = match out.recv().await {
            Some(Outgoing::Text(t)) => Message::Text(t.into()),
            Some(Outgoing::Shared(t)) => Message::Text((*t).into()),
            Some(Outgoing::Ping) => Message::Ping(Default::default()),
            Some(Outgoing::Direct(_) | Outgoing::KeyframeRequest) => continue,
            Some(Outgoing::Close) | None => break WriterEnd::Closed,
        };
        match tokio::time::timeout(write_timeout, sink.send(msg)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => break WriterEnd::Failed,
            Err(_) => {
                tracing::warn!(
                    conn = conn.id(),
                    ?write_timeout,
                    "client stopped reading: a write timed out, closing"
                );
                break WriterEnd::TimedOut;
            }
        }
    };
    if end == WriterEnd::Closed {
        let _ = tokio::time::timeout(write_timeout, sink.close()).await;
    }
    conn.close();
    end
}

async fn run(socket: WebSocket, app: AppState, peer: SocketAddr) {
    let conn_id = app.next_conn.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(conn = conn_id, %peer, "websocket opened");
    let (sink, mut stream) = socket.split();
    let (conn, out_rx) = ConnHandle::new(conn_id, OUT_QUEUE);
    if app
        .hub
        .send(HubMsg::Connect { conn: conn.clone() })
        .await
        .is_err()
    {
        return;
    }
    let writer = tokio::spawn(write_loop(sink, out_rx, conn.clone(), app.ws_write_timeout));
    let idle = app.ws_idle_timeout;
    let mut ping = tokio::time::interval(idle / 3);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    let mut last_heard = tokio::time::Instant::now();
    let mut limits = ConnLimiter::new(app.limiter.limits(), Instant::now());
    let mut last_limited: Option<Instant> = None;
    loop {
        let msg = tokio::select! {
            m = stream.next() => match m {
                Some(m) => m,
                None => break,
            },
            _ = conn.closed() => break,
            _ = ping.tick() => {
                if last_heard.elapsed() >= idle {
                    tracing::info!(conn = conn_id, %peer, ?idle, "closing a silent WebSocket");
                    conn.send(&ServerMsg::error("idle-timeout", format!("nothing received for {} s; closing", idle.as_secs())));
                    conn.push(Outgoing::Close);
                    drain(&mut stream).await;
                    break;
                }
                conn.push(Outgoing::Ping);
                continue;
            }
        };
        last_heard = tokio::time::Instant::now();
        let counted = matches!(msg, Ok(Message::Text(_) | Message::Binary(_)));
        if counted {
            let now = Instant::now();
            let mut verdict = app.limiter.check_message(&mut limits, peer.ip(), now);
            let parsed = match (&verdict, &msg) {
                (Ok(()), Ok(Message::Text(text))) => Some(parse_client(text.as_str())),
                _ => None,
            };
            if verdict.is_ok() && matches!(parsed, Some(Ok(ClientMsg::Join { .. }))) {
                verdict = app.limiter.check_join(&mut limits, peer.ip(), now);
            }
            if let Err(which) = verdict {
                if last_limited.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1)) {
                    last_limited = Some(now);
                    tracing::info!(conn = conn_id, %peer, ?which, "signaling rate limit");
                    conn.send(&ServerMsg::error(
                        "rate-limited",
                        which.describe(app.limiter.limits()),
                    ));
                }
                continue;
            }
            let hub_msg = match (parsed, msg) {
                (Some(Ok(msg)), _) => HubMsg::Client { conn: conn_id, msg },
                (Some(Err(e)), _) => HubMsg::Reply {
                    conn: conn_id,
                    msg: e,
                },
                (None, Ok(Message::Binary(b))) => HubMsg::Reply {
                    conn: conn_id,
                    msg: if b.len() > MAX_MESSAGE_BYTES {
                        ServerMsg::error(
                            "message-too-large",
                            format!("message of {} bytes exceeds the limit", b.len()),
                        )
                    } else {
                        ServerMsg::error(
                            "bad-message",
                            "binary messages are not supported; send JSON text",
                        )
                    },
                },
                (None, _) => continue,
            };
            if app.hub.send(hub_msg).await.is_err() {
                break;
            }
            continue;
        }
        match msg {
            Ok(Message::Close(_)) => break,
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(conn = conn_id, error = %e, "websocket read ended");
                break;
            }
        }
    }
    let _ = app.hub.send(HubMsg::Disconnect { conn: conn_id }).await;
    conn.push(Outgoing::Close);
    let _ = tokio::time::timeout(app.ws_write_timeout + Duration::from_secs(1), writer).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// A sink whose peer never reads: every send stays pending.
    struct Stuck;

    impl Sink<Message> for Stuck {
        type Error = std::io::Error;
        fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Pending
        }
        fn start_send(self: Pin<&mut Self>, _: Message) -> Result<(), Self::Error> {
            Ok(())
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Pending
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Pending
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_stops_reading_is_closed_after_the_write_timeout() {
        let (conn, rx) = ConnHandle::new(7, 8);
        conn.send(&ServerMsg::Left);
        let end = tokio::time::timeout(
            Duration::from_secs(60),
            write_loop(Stuck, rx, conn.clone(), Duration::from_secs(10)),
        )
        .await
        .expect("the writer gives up");
        assert_eq!(end, WriterEnd::TimedOut);
        tokio::time::timeout(Duration::from_secs(1), conn.closed())
            .await
            .expect("and closes the connection, so the reader stops");
    }
}
