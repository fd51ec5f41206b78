//! Bad input at the signaling layer gets a clear error message, the socket
//! stays usable, nothing crashes, and a participant already in the room is
//! unaffected. Runs the real server in-process on loopback, under a watchdog.

use std::time::Duration;

use futures_util::SinkExt;
use sfu_sig::Background;
use sfu_sig::config::Config;
use tokio_tungstenite::tungstenite::Message;

#[path = "common/ws.rs"]
mod ws;
use ws::{OFFER, Ws};

async fn recv_json(ws: &mut Ws) -> serde_json::Value {
    ws::next_json_within(ws, 5).await
}

async fn expect_error(ws: &mut Ws, send: String, code: &str) {
    ws.send(Message::Text(send.into())).await.expect("send");
    // Skip state messages (participants, update) that may be queued before it.
    let mut v = recv_json(ws).await;
    while v["type"] == "participants" || v["type"] == "update" {
        v = recv_json(ws).await;
    }
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["code"], code, "{v}");
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
}

fn join(room: &str, name: &str, sdp: &str) -> String {
    serde_json::json!({"type": "join", "room": room, "name": name, "sdp": sdp}).to_string()
}

fn without(sdp: &str, prefix: &str) -> String {
    sdp.lines()
        .filter(|l| !l.starts_with(prefix))
        .map(|l| format!("{l}\r\n"))
        .collect()
}

async fn metrics(addr: std::net::SocketAddr) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut body = String::new();
    s.read_to_string(&mut body).await.expect("read");
    body
}

async fn scenario(addr: std::net::SocketAddr) {
    let url = format!("ws://{addr}/ws");
    let (mut alice, _) = tokio_tungstenite::connect_async(&url).await.expect("ws");
    alice
        .send(Message::Text(join("room-1", "alice", OFFER).into()))
        .await
        .expect("send");
    let answer = recv_json(&mut alice).await;
    assert_eq!(answer["type"], "answer", "{answer}");
    let sdp = answer["sdp"].as_str().expect("sdp");
    assert!(
        sdp.contains("a=ice-lite") && sdp.contains("a=setup:passive") && sdp.contains("typ host"),
        "{sdp}"
    );
    assert!(
        sdp.contains("a=recvonly"),
        "the server receives alice's tracks"
    );
    assert!(
        !sdp.contains("red/90000") && !sdp.contains("ulpfec"),
        "RED/ULPFEC are not answered"
    );
    let list = recv_json(&mut alice).await;
    assert_eq!(list["type"], "participants");

    let (mut m, _) = tokio_tungstenite::connect_async(&url).await.expect("ws");
    expect_error(&mut m, "{oops".into(), "bad-json").await;
    expect_error(&mut m, r#"{"type":"teleport"}"#.into(), "unknown-type").await;
    expect_error(&mut m, r#"{"no":"type"}"#.into(), "bad-message").await;
    expect_error(
        &mut m,
        r#"{"type":"join","room":"room-1"}"#.into(),
        "bad-message",
    )
    .await;
    expect_error(
        &mut m,
        r#"{"type":"answer","sdp":"v=0"}"#.into(),
        "not-joined",
    )
    .await;
    expect_error(&mut m, r#"{"type":"leave"}"#.into(), "not-joined").await;
    expect_error(&mut m, "x".repeat(64 * 1024 + 1), "message-too-large").await;
    expect_error(&mut m, join(&"r".repeat(65), "m", OFFER), "bad-room").await;
    expect_error(&mut m, join("bad\u{7}room", "m", OFFER), "bad-room").await;
    expect_error(&mut m, join("room-1", "", OFFER), "bad-name").await;
    expect_error(&mut m, join("room-1", "m", "not sdp at all"), "sdp-invalid").await;
    expect_error(
        &mut m,
        join("room-1", "m", &without(OFFER, "a=fingerprint")),
        "sdp-no-fingerprint",
    )
    .await;
    expect_error(
        &mut m,
        join("room-1", "m", &without(OFFER, "a=ice-ufrag")),
        "sdp-no-ice-credentials",
    )
    .await;
    let no_codecs: String = OFFER
        .lines()
        .filter(|l| {
            !["opus", "VP8", "VP9", "AV1", "H264"]
                .iter()
                .any(|c| l.contains(c))
        })
        .map(|l| format!("{l}\r\n"))
        .collect();
    expect_error(
        &mut m,
        join("room-1", "m", &no_codecs),
        "sdp-no-usable-codec",
    )
    .await;
    m.send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .expect("send");
    assert_eq!(recv_json(&mut m).await["code"], "bad-message");

    // The socket is still usable: a valid join works after all that.
    m.send(Message::Text(join("room-1", "mallory", OFFER).into()))
        .await
        .expect("send");
    assert_eq!(recv_json(&mut m).await["type"], "answer");
    expect_error(&mut m, join("room-1", "again", OFFER), "already-joined").await;

    // Alice is still in the room and now gets an update offer with mallory's tracks.
    let mut saw_update = false;
    for _ in 0..3 {
        let v = recv_json(&mut alice).await;
        if v["type"] == "update" {
            let offer = v["sdp"].as_str().expect("sdp");
            assert!(
                offer.contains("a=setup:actpass") && offer.contains("a=sendonly"),
                "{offer}"
            );
            saw_update = true;
            break;
        }
    }
    assert!(saw_update, "alice got an update offer");
    let body = metrics(addr).await;
    assert!(body.contains("\nsfu_participants 2\n"), "{body}");
    assert!(
        body.contains("sfu_room_participants{room=\"room-1\""),
        "{body}"
    );

    // Leave releases the room when the last one goes.
    m.send(Message::Text(r#"{"type":"leave"}"#.into()))
        .await
        .expect("send");
    assert_eq!(recv_json(&mut m).await["type"], "left");
    drop(alice);
    let mut closed = false;
    for _ in 0..50 {
        if metrics(addr).await.contains("\nsfu_rooms 0\n") {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(closed, "room closed after everyone left");
}

#[test]
fn bad_signaling_input_gets_clear_errors_and_harms_no_one() {
    let cfg = Config::loopback("47000-47099").expect("config");
    let server = Background::start(
        cfg,
        std::net::TcpListener::bind("127.0.0.1:0").expect("bind"),
    )
    .expect("server");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let addr = server.addr;
    let outcome =
        rt.block_on(async { tokio::time::timeout(Duration::from_secs(60), scenario(addr)).await });
    server.stop().expect("server stopped cleanly");
    outcome.expect("watchdog: scenario finished within 60 s");
}
