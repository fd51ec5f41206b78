//! The recording API against the real server in-process: a recording of a
//! room gets a file per track (its header names the codec) and a manifest,
//! `--record-rooms` records a matching room from its first publisher, and
//! each bad request gets its own status and error code. The publisher here
//! joins over the WebSocket without sending media (so the files hold their
//! headers only); media is recorded by the end-to-end tests in Chromium.

use std::time::Duration;

use futures_util::SinkExt;
use sfu_sig::config::Flags;
use sfu_sig::recording::file::Reader;
use tokio_tungstenite::tungstenite::Message;

#[path = "common/http.rs"]
mod http;
#[path = "common/server.rs"]
mod server;
use server::{run, server};
#[path = "common/ws.rs"]
mod ws;
use http::request;
use ws::OFFER;

const SECRET: &str = "test-secret-test-secret-test-secret!";

/// Joins `room` as a participant publishing audio and video; the socket
/// keeps the membership.
async fn publisher(addr: std::net::SocketAddr, room: &str) -> ws::Ws {
    let (mut s, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .expect("ws");
    let token =
        sfu_sig::auth::mint(SECRET, room, "alice", Duration::from_secs(60), None).expect("token");
    let msg = serde_json::json!({"type": "join", "room": room, "name": "alice", "sdp": OFFER, "token": token});
    s.send(Message::Text(msg.to_string().into()))
        .await
        .expect("send");
    loop {
        if ws::next_json_within(&mut s, 10).await["type"] == "answer" {
            return s;
        }
    }
}

/// The next `recording` message on `ws`: whether the room is recorded.
async fn recording_notice(ws: &mut ws::Ws) -> bool {
    loop {
        let v = ws::next_json_within(ws, 10).await;
        if v["type"] == "recording" {
            return v["active"].as_bool().expect("active");
        }
    }
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[test]
fn a_room_is_recorded_to_a_file_per_track_and_bad_requests_are_refused() {
    let dir = std::env::temp_dir().join(format!("sfu-rec-api-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let srv = server(Flags {
        auth_secret: Some(SECRET.into()),
        recordings_dir: Some(dir.clone()),
        record_rooms: Some("auto-*".into()),
        ..Flags::default()
    });
    let addr = srv.addr;
    let rec_root = dir.clone();
    run(async move {
        let dir = rec_root;
        let admin = sfu_sig::auth::mint_admin(SECRET, "", "ops", Duration::from_secs(60))
            .expect("admin token");
        let bearer = format!("Bearer {admin}");
        let auth = [("Authorization", bearer.as_str())];
        let post = |path: &'static str,
                    headers: Vec<(&'static str, String)>,
                    body: &'static str| async move {
            let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            request(addr, "POST", path, &h, body).await
        };

        // No token, a join token, an admin token of another room.
        let r = post("/rooms/demo/recordings", vec![], "").await;
        assert_eq!(
            (r.status, json(&r.body)["error"].as_str()),
            (401, Some("token-required"))
        );
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
        let join = sfu_sig::auth::mint(SECRET, "demo", "bob", Duration::from_secs(60), None)
            .expect("token");
        let r = post(
            "/rooms/demo/recordings",
            vec![("Authorization", format!("Bearer {join}"))],
            "",
        )
        .await;
        assert_eq!(
            (r.status, json(&r.body)["error"].as_str()),
            (403, Some("token-not-admin"))
        );
        let other = sfu_sig::auth::mint_admin(SECRET, "other", "ops", Duration::from_secs(60))
            .expect("token");
        let r = post(
            "/rooms/demo/recordings",
            vec![("Authorization", format!("Bearer {other}"))],
            "",
        )
        .await;
        assert_eq!(
            (r.status, json(&r.body)["error"].as_str()),
            (403, Some("token-wrong-room"))
        );
        // A room name that would leave the directory, a room that does not
        // exist, a body that is not the one expected.
        let r = request(addr, "POST", "/rooms/..%2F..%2Fetc/recordings", &auth, "").await;
        assert_eq!(
            (r.status, json(&r.body)["error"].as_str()),
            (400, Some("bad-room-name")),
            "{}",
            r.body
        );
        let r = request(addr, "POST", "/rooms/nobody-here/recordings", &auth, "").await;
        assert_eq!(
            (r.status, json(&r.body)["error"].as_str()),
            (404, Some("no-such-room"))
        );
        let r = request(addr, "POST", "/rooms/demo/recordings", &auth, "{\"who\":1}").await;
        assert_eq!(
            (r.status, json(&r.body)["error"].as_str()),
            (400, Some("bad-json"))
        );

        // A room with a publisher: one file per track.
        let mut alice = publisher(addr, "demo").await;
        let r = request(
            addr,
            "POST",
            "/rooms/demo/recordings",
            &auth,
            "{\"participant\":\"p999\"}",
        )
        .await;
        assert_eq!(
            (r.status, json(&r.body)["error"].as_str()),
            (404, Some("no-such-participant"))
        );
        let r = request(addr, "POST", "/rooms/demo/recordings", &auth, "").await;
        assert_eq!(r.status, 201, "{}", r.body);
        let rec = json(&r.body);
        let id = rec["id"].as_str().expect("an id").to_string();
        // The members are told, so the page can show it.
        assert!(recording_notice(&mut alice).await);
        assert_eq!(rec["state"], "recording");
        let kinds: Vec<&str> = rec["tracks"]
            .as_array()
            .expect("tracks")
            .iter()
            .filter_map(|t| t["kind"].as_str())
            .collect();
        assert_eq!(kinds.len(), 2, "audio and video: {rec}");
        let r = request(addr, "GET", "/rooms/demo/recordings", &auth, "").await;
        assert_eq!(json(&r.body)["recordings"][0]["id"], id.as_str());
        let r = request(
            addr,
            "DELETE",
            "/rooms/demo/recordings/no-such-id",
            &auth,
            "",
        )
        .await;
        assert_eq!(
            (r.status, json(&r.body)["error"].as_str()),
            (404, Some("no-such-recording"))
        );
        let path = format!("/rooms/demo/recordings/{id}");
        let r = request(addr, "DELETE", &path, &auth, "").await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(!recording_notice(&mut alice).await);
        let mut state = String::new();
        for _ in 0..100 {
            let r = request(addr, "GET", &path, &auth, "").await;
            state = json(&r.body)["state"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if state == "stopped" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(state, "stopped");
        let rec_dir = dir.join("demo").join(&id);
        let manifest =
            json(&std::fs::read_to_string(rec_dir.join("manifest.json")).expect("manifest"));
        assert_eq!(manifest["state"], "stopped");
        let mut codecs = Vec::new();
        for t in manifest["tracks"].as_array().expect("tracks") {
            let bytes =
                std::fs::read(rec_dir.join(t["file"].as_str().expect("file"))).expect("track file");
            let r = Reader::new(&bytes).expect("a recording file");
            assert_eq!(
                (r.header.room.as_str(), r.header.name.as_str()),
                ("demo", "alice")
            );
            codecs.push(r.header.codec.to_lowercase());
        }
        codecs.sort();
        assert_eq!(codecs, ["opus", "vp8"]);

        // --record-rooms auto-*: recorded from the first publisher on.
        let _bob = publisher(addr, "auto-1").await;
        // The room records the tracks right after its answer to the join.
        let mut list = serde_json::Value::Null;
        for _ in 0..100 {
            let r = request(addr, "GET", "/rooms/auto-1/recordings", &auth, "").await;
            list = json(&r.body);
            if list["recordings"][0]["tracks"].as_array().map(Vec::len) == Some(2) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            list["recordings"].as_array().map(Vec::len),
            Some(1),
            "{list}"
        );
        assert_eq!(
            list["recordings"][0]["tracks"].as_array().map(Vec::len),
            Some(2),
            "{list}"
        );
        let r = request(addr, "GET", "/metrics", &[], "").await;
        assert!(
            r.body.contains("sfu_recordings_started_total 2"),
            "{}",
            r.body
        );
    });
    srv.stop().expect("stop");
    let _ = std::fs::remove_dir_all(&dir);
}
