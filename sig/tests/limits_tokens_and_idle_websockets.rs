//! Join tokens, server limits and idle WebSockets, against the real server
//! in-process. Every wait is bounded.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use sfu_sig::config::Flags;
use tokio_tungstenite::tungstenite::Message;

#[path = "common/server.rs"]
mod server;
use server::{run, server};
#[path = "common/ws.rs"]
mod ws;
use ws::{OFFER, Ws};

const SECRET: &str = "test-secret-test-secret-test-secret!";

async fn next_json(ws: &mut Ws) -> serde_json::Value {
    ws::next_json_within(ws, 10).await
}

/// The next message of `kind` (skipping participants/update noise).
async fn next_of(ws: &mut Ws, kind: &str) -> serde_json::Value {
    loop {
        let v = next_json(ws).await;
        if v["type"] == kind {
            return v;
        }
        assert!(
            v["type"] == "participants" || v["type"] == "update",
            "unexpected {v}"
        );
    }
}

async fn join(
    addr: std::net::SocketAddr,
    room: &str,
    token: Option<&str>,
) -> (Ws, serde_json::Value) {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .expect("ws");
    let mut msg = serde_json::json!({"type": "join", "room": room, "name": "n", "sdp": OFFER});
    if let Some(t) = token {
        msg["token"] = t.into();
    }
    ws.send(Message::Text(msg.to_string().into()))
        .await
        .expect("send");
    let v = loop {
        let v = next_json(&mut ws).await;
        if v["type"] == "answer" || v["type"] == "error" {
            break v;
        }
    };
    (ws, v)
}

#[test]
fn join_tokens_admit_only_to_their_room() {
    let srv = server(Flags {
        rtc_ports: Some("47100-47199".into()),
        auth_secret: Some(SECRET.into()),
        ..Flags::default()
    });
    let addr = srv.addr;
    let ok =
        sfu_sig::auth::mint(SECRET, "vip", "alice", Duration::from_secs(60), None).expect("mint");
    let forged = sfu_sig::auth::mint(
        "some-other-secret-some-other-secret",
        "vip",
        "eve",
        Duration::from_secs(60),
        None,
    )
    .expect("mint");
    run(async move {
        assert_eq!(join(addr, "vip", None).await.1["code"], "token-required");
        assert_eq!(
            join(addr, "other", Some(&ok)).await.1["code"],
            "token-wrong-room"
        );
        assert_eq!(
            join(addr, "vip", Some(&forged)).await.1["code"],
            "token-invalid"
        );
        assert_eq!(
            join(addr, "vip", Some("garbage")).await.1["code"],
            "token-invalid"
        );
        let (_ws, v) = join(addr, "vip", Some(&ok)).await;
        assert_eq!(v["type"], "answer", "{v}");
    });
    srv.stop().expect("clean stop");
}

#[test]
fn limits_are_clear_errors() {
    let srv = server(Flags {
        rtc_ports: Some("47200-47299".into()),
        max_participants_per_room: Some("2".into()),
        max_rooms_per_worker: Some("2".into()),
        max_consumers_per_transport: Some("1".into()),
        ..Flags::default()
    });
    let addr = srv.addr;
    run(async move {
        let (mut a, v) = join(addr, "r1", None).await;
        assert_eq!(v["type"], "answer");
        let (_b, v) = join(addr, "r1", None).await;
        assert_eq!(v["type"], "answer");
        // a receives one of b's two tracks; the other is refused with a clear error.
        let e = next_of(&mut a, "error").await;
        assert_eq!(e["code"], "consumer-limit", "{e}");
        assert_eq!(join(addr, "r1", None).await.1["code"], "room-full");
        let (_c, v) = join(addr, "r2", None).await;
        assert_eq!(v["type"], "answer");
        assert_eq!(
            join(addr, "r3", None).await.1["code"],
            "no-capacity",
            "2 rooms per worker, 1 worker"
        );
    });
    srv.stop().expect("clean stop");
    let srv = server(Flags {
        rtc_ports: Some("47300-47399".into()),
        max_producers_per_participant: Some("1".into()),
        ..Flags::default()
    });
    let addr = srv.addr;
    run(async move {
        let v = join(addr, "r", None).await.1;
        assert_eq!(v["code"], "too-many-tracks", "{v}");
    });
    srv.stop().expect("clean stop");
}

/// Reads `ws` until `pred` accepts a JSON text message or `within` passes
/// (pings and other frames do not extend the deadline). It sends a ping of
/// its own every 500 ms: any frame from the client counts as activity.
async fn wait_for(
    ws: &mut Ws,
    within: Duration,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> Option<serde_json::Value> {
    let end = tokio::time::Instant::now() + within;
    loop {
        let step = (tokio::time::Instant::now() + Duration::from_millis(500)).min(end);
        let m = match tokio::time::timeout_at(step, ws.next()).await {
            Ok(Some(Ok(m))) => m,
            Ok(_) => return None,
            Err(_) if step == end => return None,
            Err(_) => {
                let _ = ws.send(Message::Ping(Default::default())).await;
                continue;
            }
        };
        if let Message::Text(t) = m {
            let v: serde_json::Value = serde_json::from_str(t.as_str()).expect("json");
            if pred(&v) {
                return Some(v);
            }
        }
    }
}

/// A WebSocket client on a raw TCP socket: it upgrades, sends one masked
/// text frame (RFC 6455 §5.3), and then never reads or writes again — truly
/// silent, with no library answering pings on its behalf.
fn raw_silent_join(addr: std::net::SocketAddr, text: &str) -> std::net::TcpStream {
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect(addr).expect("tcp");
    tcp.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        tcp,
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .expect("upgrade");
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tcp.read_exact(&mut b).expect("upgrade response");
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    let payload = text.as_bytes();
    let mask = [1u8, 2, 3, 4];
    let mut frame = vec![0x81, 0x80 | 127];
    frame.extend_from_slice(&(payload.len() as u64).to_be_bytes());
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, c)| c ^ mask[i % 4]));
    tcp.write_all(&frame).expect("join frame");
    tcp
}

#[test]
fn silent_websocket_is_closed_and_its_participant_removed() {
    let srv = server(Flags {
        rtc_ports: Some("47400-47499".into()),
        ws_idle_timeout: Some("3".into()),
        ..Flags::default()
    });
    let addr = srv.addr;
    run(async move {
        let (mut alive, a) = join(addr, "r", None).await;
        let alive_id = a["id"].clone();
        let join_msg =
            serde_json::json!({"type": "join", "room": "r", "name": "quiet", "sdp": OFFER});
        let mut silent = raw_silent_join(addr, &join_msg.to_string());
        // `alive` keeps reading (tungstenite answers pings while reading);
        // `silent` reads nothing, so it sends no pong and goes quiet.
        let silent_left = |v: &serde_json::Value| {
            v["type"] == "deltas"
                && v["events"].as_array().is_some_and(|e| {
                    e.iter()
                        .any(|e| e["type"] == "participant-left" && e["id"] != alive_id)
                })
        };
        let alone = wait_for(&mut alive, Duration::from_secs(10), silent_left).await;
        assert!(
            alone.is_some(),
            "the others were told the silent participant left"
        );
        // The silent socket was sent the idle-timeout error, then closed.
        // Meanwhile the reading client stays active, past the idle timeout.
        let reader = tokio::task::spawn_blocking(move || {
            use std::io::Read;
            let mut all = Vec::new();
            let _ = silent.read_to_end(&mut all);
            String::from_utf8_lossy(&all).into_owned()
        });
        let (got, nothing) = tokio::join!(
            reader,
            wait_for(&mut alive, Duration::from_secs(5), |_| false)
        );
        assert!(nothing.is_none());
        let got = got.expect("reader");
        assert!(got.contains("\"code\":\"idle-timeout\""), "{got:.300}");
        alive
            .send(Message::Text(r#"{"type":"leave"}"#.into()))
            .await
            .expect("still open");
        assert!(
            wait_for(&mut alive, Duration::from_secs(5), |v| v["type"] == "left")
                .await
                .is_some()
        );
    });
    srv.stop().expect("clean stop");
}

async fn send_n(ws: &mut Ws, n: usize, text: &str) {
    for _ in 0..n {
        ws.send(Message::Text(text.to_string().into()))
            .await
            .expect("send");
    }
}

/// Counts the `rate-limited` errors and the other replies, until `n` have
/// come or none comes for a second.
async fn replies(ws: &mut Ws, n: usize) -> (usize, usize) {
    let (mut limited, mut other) = (0, 0);
    while limited + other < n
        && let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_secs(1), ws.next()).await
    {
        if let Message::Text(t) = m {
            let v: serde_json::Value = serde_json::from_str(t.as_str()).expect("json");
            if v["code"] == "rate-limited" {
                limited += 1;
            } else {
                other += 1;
            }
        }
    }
    (limited, other)
}

#[test]
fn floods_are_rate_limited_per_connection_and_per_address() {
    run(async {
        let srv = server(Flags {
            rtc_ports: Some("47300-47309".into()),
            max_messages_per_second: Some("5".into()),
            max_messages_per_second_per_ip: Some("8".into()),
            max_joins_per_minute: Some("1".into()),
            max_joins_per_minute_per_ip: Some("2".into()),
            ..Flags::default()
        });
        let url = format!("ws://{}/ws", srv.addr);
        // One connection: 5 messages pass (each answered unknown-type), the
        // rest are dropped with one rate-limited error per second.
        let (mut a, _) = tokio_tungstenite::connect_async(&url).await.expect("ws");
        let (mut b, _) = tokio_tungstenite::connect_async(&url).await.expect("ws");
        send_n(&mut a, 20, r#"{"type":"dance"}"#).await;
        assert_eq!(replies(&mut a, 6).await, (1, 5), "one notice, five answers");
        // A second connection from the same address, right after, has only
        // the address's 8 - 5 = 3 left (one more may have refilled while A's
        // replies were read), not its own 5.
        send_n(&mut b, 5, r#"{"type":"dance"}"#).await;
        let (limited, answered) = replies(&mut b, 5).await;
        assert_eq!(limited, 1, "one notice");
        assert!((3..=4).contains(&answered), "{answered} answered");
        assert!(replies(&mut a, 1).await == (0, 0), "nothing more for A");

        // Joins: one per connection per minute, two per address.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let (mut c, v) = join(srv.addr, "rl", None).await;
        assert_eq!(v["type"], "answer", "{v}");
        c.send(Message::Text(r#"{"type":"leave"}"#.into()))
            .await
            .expect("send");
        next_of(&mut c, "left").await;
        let again = serde_json::json!({"type": "join", "room": "rl", "name": "n", "sdp": OFFER});
        c.send(Message::Text(again.to_string().into()))
            .await
            .expect("send");
        let v = next_of(&mut c, "error").await;
        assert_eq!(
            v["code"], "rate-limited",
            "second join on one connection: {v}"
        );
        let (_d, v) = join(srv.addr, "rl", None).await;
        assert_eq!(v["type"], "answer", "a new connection may join: {v}");
        let (_e, v) = join(srv.addr, "rl", None).await;
        assert_eq!(
            v["code"], "rate-limited",
            "third join from the address: {v}"
        );
        drop((a, b, c));
        srv.stop().expect("clean stop");
    });
}
