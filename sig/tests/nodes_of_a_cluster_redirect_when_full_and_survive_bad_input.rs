//! Two nodes of a cluster against a real redis-server (started on a free
//! port), in-process: each lists the live nodes (`GET /nodes`), a node full
//! by its own `--node-capacity` redirects a join to the other, a corrupt
//! message in a node's inbox is ignored, and with Redis gone a join that
//! needs the directory gets `directory-unavailable`. Every wait is bounded.

use std::time::{Duration, Instant};

use futures_util::SinkExt;
use sfu_sig::Background;
use sfu_sig::config::{Config, Flags};
use sfu_sig::directory::server::RedisServer;
use tokio_tungstenite::tungstenite::Message;

#[path = "common/ws.rs"]
mod ws;
use ws::{OFFER, Ws};

fn node(redis: &str, id: &str, capacity: &str, rtc: &str) -> Background {
    let cfg = Config::load(Flags {
        rtc_listen_ip: Some("127.0.0.1".into()),
        rtc_ports: Some(rtc.into()),
        cores: Some("1".into()),
        // Tests run side by side: each ICE-TCP listener on a free port.
        rtc_tcp_port: Some("0".into()),
        redis: Some(redis.into()),
        node_id: Some(id.into()),
        node_capacity: Some(capacity.into()),
        ..Flags::default()
    })
    .expect("config");
    Background::start(
        cfg,
        std::net::TcpListener::bind("127.0.0.1:0").expect("bind"),
    )
    .expect("node")
}

async fn get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut body = String::new();
    s.read_to_string(&mut body).await.expect("read");
    body
}

/// Joins `room` on `addr`; returns the socket and the first `answer`,
/// `redirect` or `error`.
async fn join(addr: std::net::SocketAddr, room: &str) -> (Ws, serde_json::Value) {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .expect("ws");
    let msg = serde_json::json!({"type": "join", "room": room, "name": "n", "sdp": OFFER});
    ws.send(Message::Text(msg.to_string().into()))
        .await
        .expect("send");
    loop {
        let v = ws::next_json_within(&mut ws, 10).await;
        if ["answer", "redirect", "error"].contains(&v["type"].as_str().unwrap_or_default()) {
            return (ws, v);
        }
    }
}

/// Waits until `GET /nodes` on `addr` lists `n` nodes; returns them.
async fn nodes(addr: std::net::SocketAddr, n: usize) -> Vec<serde_json::Value> {
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        let body = get(addr, "/nodes").await;
        let json = body.split("\r\n\r\n").nth(1).unwrap_or_default();
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(json)
            && let Some(list) = v["nodes"].as_array()
            && list.len() == n
        {
            return list.clone();
        }
        assert!(
            Instant::now() < until,
            "{addr} never listed {n} nodes: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_node_redirects_bad_inbox_messages_are_ignored_and_a_lost_directory_is_said() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let mut redis = RedisServer::start().expect("redis-server (apt-get install redis-server)");
        let a = node(&redis.url(), "a", "100000", "47000-47099");
        let b = node(&redis.url(), "b", "1", "47100-47199");
        let on_b = nodes(b.addr, 2).await;
        assert_eq!(on_b[0]["id"], "b", "this node first: {on_b:?}");
        assert_eq!(on_b[1]["id"], "a");
        let a_url = format!("http://127.0.0.1:{}", a.addr.port());
        assert_eq!(on_b[1]["url"], a_url.as_str());

        // Two participants on b: it then forwards 4 consumers, over its 1.
        let (_p1, v) = join(b.addr, "full").await;
        assert_eq!(v["type"], "answer", "{v}");
        let (_p2, v) = join(b.addr, "full").await;
        assert_eq!(v["type"], "answer", "{v}");
        let until = Instant::now() + Duration::from_secs(10);
        let redirected = loop {
            let (_ws, v) = join(b.addr, "full").await;
            if v["type"] == "redirect" {
                break v;
            }
            assert!(Instant::now() < until, "b never redirected: {v}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(redirected["url"], a_url.as_str());

        // Junk and forged messages in a's inbox change nothing.
        let client = redis::Client::open(redis.url()).expect("url");
        let mut c = client
            .get_multiplexed_async_connection()
            .await
            .expect("redis");
        for junk in [
            &b"not json"[..],
            br#"{"type":"relay-open","room":"x","from":"evil node","relay_id":"0123456789abcdef","addr":"127.0.0.1:1"}"#,
            br#"{"type":"tracks","room":"x","from":"b","relay_id":"0123456789abcdef","added":[{"id":"nope"}]}"#,
        ] {
            let _: i64 = redis::cmd("PUBLISH")
                .arg("sfu:inbox:a")
                .arg(junk)
                .query_async(&mut c)
                .await
                .expect("publish");
        }
        let (_q, v) = join(a.addr, "after-junk").await;
        assert_eq!(v["type"], "answer", "a still takes joins: {v}");

        // Redis gone: a room a does not hold needs the directory.
        redis.stop();
        let (_r, v) = join(a.addr, "needs-the-directory").await;
        assert_eq!(v["code"], "directory-unavailable", "{v}");
        // A room it holds does not.
        let (_s, v) = join(a.addr, "after-junk").await;
        assert_eq!(v["type"], "answer", "{v}");
        drop((a, b));
    })
    .await
    .expect("the test timed out");
}
