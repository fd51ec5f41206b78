//! A WebSocket client of the real server, for the tests that run it
//! in-process (`#[path = "common/ws.rs"] mod ws;`).

use std::time::Duration;

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

/// A client's WebSocket to the server.
pub(crate) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A real Chromium offer that sends audio and video.
pub(crate) const OFFER: &str = include_str!("../../../testdata/sdp/offer-audio-video-sendrecv.sdp");

/// The next JSON text message, within `secs` seconds (binary frames and
/// pings are skipped).
pub(crate) async fn next_json_within(ws: &mut Ws, secs: u64) -> serde_json::Value {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(secs), ws.next())
            .await
            .unwrap_or_else(|_| panic!("a message within {secs} s"))
            .expect("socket open")
            .expect("no websocket error");
        if let Message::Text(t) = m {
            return serde_json::from_str(t.as_str()).expect("server sends JSON");
        }
    }
}
