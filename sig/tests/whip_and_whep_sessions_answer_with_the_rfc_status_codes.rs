//! WHIP (RFC 9725) and WHEP sessions against the real server in-process:
//! what a POST, DELETE, PATCH and OPTIONS answer, with and without join
//! tokens, and the errors each bad request gets. Media is exercised by the
//! end-to-end tests (aiortc and Chromium); here every wait is bounded.

use std::time::Duration;

use futures_util::SinkExt;
use sfu_sig::config::Flags;
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

const RECVONLY: &str = include_str!("../../testdata/sdp/offer-recvonly-audio-video.sdp");
const SECRET: &str = "test-secret-test-secret-test-secret!";
const SDP: (&str, &str) = ("Content-Type", "application/sdp");

/// The participants (id, name) a viewer joining `room` over the WebSocket
/// sees listed.
async fn listed(
    addr: std::net::SocketAddr,
    room: &str,
    token: Option<&str>,
) -> Vec<(String, String)> {
    let (mut s, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .expect("ws");
    let mut msg = serde_json::json!({"type": "join", "room": room, "name": "look", "sdp": RECVONLY, "role": "viewer"});
    if let Some(t) = token {
        msg["token"] = t.into();
    }
    s.send(Message::Text(msg.to_string().into()))
        .await
        .expect("send");
    loop {
        let v = ws::next_json_within(&mut s, 10).await;
        if v["type"] == "participants" {
            return v["participants"]
                .as_array()
                .expect("a list")
                .iter()
                .map(|p| {
                    let field = |k: &str| p[k].as_str().unwrap_or("").to_string();
                    (field("id"), field("name"))
                })
                .collect();
        }
    }
}

#[test]
fn a_whip_publisher_and_a_whep_viewer_get_sessions_they_can_end() {
    let srv = server(Flags {
        rtc_ports: Some("47200-47299".into()),
        ..Flags::default()
    });
    let addr = srv.addr;
    run(async move {
        // Nothing to watch yet.
        let r = request(addr, "POST", "/whep/stage", &[SDP], RECVONLY).await;
        assert_eq!(r.status, 404, "{}", r.body);
        assert!(r.body.starts_with("nothing-to-watch"), "{}", r.body);

        let r = request(addr, "POST", "/whip/stage", &[SDP], OFFER).await;
        assert_eq!(r.status, 201, "{}", r.body);
        assert_eq!(r.header("content-type"), Some("application/sdp"));
        let location = r.header("location").expect("a Location").to_string();
        assert!(location.starts_with("/whip/stage/"), "{location}");
        assert!(r.header("etag").is_some_and(|e| e.starts_with('"')));
        assert!(r.header("accept-patch").is_none(), "no PATCH is taken");
        assert_eq!(r.header("access-control-allow-origin"), Some("*"));
        assert!(r.body.contains("a=ice-lite") && r.body.contains("a=recvonly"));
        let members = listed(addr, "stage", None).await;
        let [(id, name)] = members.as_slice() else {
            panic!("one publisher: {members:?}");
        };
        assert!(
            name.starts_with("whip-"),
            "named whip-<n> without a token: {name}"
        );

        // A viewer of that publisher: sendonly sections with its SSRCs.
        let path = format!("/whep/stage?participant={id}");
        let r = request(addr, "POST", &path, &[SDP], RECVONLY).await;
        assert_eq!(r.status, 201, "{}", r.body);
        assert_eq!(r.body.matches("a=sendonly").count(), 2, "{}", r.body);
        assert_eq!(
            r.body.matches(&format!("a=msid:{id} ")).count(),
            2,
            "{}",
            r.body
        );
        let viewer = r.header("location").expect("a Location").to_string();
        assert!(viewer.starts_with("/whep/stage/"), "{viewer}");
        let r = request(
            addr,
            "POST",
            "/whep/stage?participant=p99",
            &[SDP],
            RECVONLY,
        )
        .await;
        assert_eq!(r.status, 404, "{}", r.body);
        let r = request(addr, "POST", "/whep/stage?participant=x", &[SDP], RECVONLY).await;
        assert_eq!(r.status, 400, "{}", r.body);

        // PATCH: ICE-lite takes no trickle or restart.
        let r = request(
            addr,
            "PATCH",
            &location,
            &[("Content-Type", "application/trickle-ice-sdpfrag")],
            "a=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n",
        )
        .await;
        assert_eq!(r.status, 405);
        assert_eq!(r.header("allow"), Some("DELETE, OPTIONS"));
        let r = request(addr, "OPTIONS", "/whip/stage", &[], "").await;
        assert_eq!(r.status, 204);
        assert_eq!(r.header("accept-post"), Some("application/sdp"));
        assert!(
            r.header("access-control-allow-methods")
                .is_some_and(|m| m.contains("DELETE"))
        );

        // DELETE ends the session, and the publisher leaves the room.
        let r = request(addr, "DELETE", &location, &[], "").await;
        assert_eq!(r.status, 200);
        let r = request(addr, "DELETE", &location, &[], "").await;
        assert_eq!(r.status, 404, "a session ends once");
        let r = request(addr, "PATCH", &location, &[], "").await;
        assert_eq!(r.status, 404);
        let r = request(addr, "DELETE", &viewer, &[], "").await;
        assert_eq!(r.status, 200);
        assert!(listed(addr, "stage", None).await.is_empty());
        let metrics = request(addr, "GET", "/metrics", &[], "").await.body;
        assert!(
            metrics.contains("sfu_http_sessions_total{endpoint=\"whip\",result=\"created\"} 1"),
            "{metrics}"
        );
        assert!(
            metrics.contains("sfu_http_sessions{endpoint=\"whep\"} 0"),
            "{metrics}"
        );
    });
    srv.stop().expect("stop");
}

#[test]
fn bad_whip_requests_get_their_status_and_the_room_goes_on() {
    let srv = server(Flags {
        rtc_ports: Some("47300-47399".into()),
        auth_secret: Some(SECRET.into()),
        ..Flags::default()
    });
    let addr = srv.addr;
    let alice =
        sfu_sig::auth::mint(SECRET, "stage", "alice", Duration::from_secs(60), None).expect("mint");
    let elsewhere =
        sfu_sig::auth::mint(SECRET, "other", "bob", Duration::from_secs(60), None).expect("mint");
    let forged = sfu_sig::auth::mint(
        "some-other-secret-some-other-secret",
        "stage",
        "eve",
        Duration::from_secs(60),
        None,
    )
    .expect("mint");
    let alice_token = alice.clone();
    run(async move {
        let alice = alice_token;
        let bearer = |t: &str| format!("Bearer {t}");
        let r = request(addr, "POST", "/whip/stage", &[SDP], OFFER).await;
        assert_eq!(r.status, 401, "{}", r.body);
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
        let f = bearer(&forged);
        let r = request(
            addr,
            "POST",
            "/whip/stage",
            &[SDP, ("Authorization", &f)],
            OFFER,
        )
        .await;
        assert_eq!(r.status, 401, "{}", r.body);
        let e = bearer(&elsewhere);
        let r = request(
            addr,
            "POST",
            "/whip/stage",
            &[SDP, ("Authorization", &e)],
            OFFER,
        )
        .await;
        assert_eq!(r.status, 403, "{}", r.body);
        let r = request(
            addr,
            "POST",
            "/whip/stage",
            &[("Authorization", "Basic eDp5")],
            OFFER,
        )
        .await;
        assert_eq!(
            r.status, 415,
            "the content type is checked first: {}",
            r.body
        );
        let r = request(
            addr,
            "POST",
            "/whip/stage",
            &[SDP, ("Authorization", "Basic eDp5")],
            OFFER,
        )
        .await;
        assert_eq!(r.status, 401, "{}", r.body);

        let a = bearer(&alice);
        let auth = ("Authorization", a.as_str());
        // An offer that sends nothing, one that does not parse, one too big.
        let r = request(addr, "POST", "/whip/stage", &[SDP, auth], RECVONLY).await;
        assert_eq!(r.status, 422, "{}", r.body);
        assert!(r.body.starts_with("nothing-to-publish"), "{}", r.body);
        let r = request(
            addr,
            "POST",
            "/whip/stage",
            &[SDP, auth],
            "v=0\r\nbogus\r\n",
        )
        .await;
        assert_eq!(r.status, 400, "{}", r.body);
        let big = "a".repeat(70_000);
        let r = request(addr, "POST", "/whip/stage", &[SDP, auth], &big).await;
        assert_eq!(r.status, 413, "{}", r.body);
        let r = request(
            addr,
            "POST",
            "/whip/stage",
            &[("Content-Type", "text/plain"), auth],
            OFFER,
        )
        .await;
        assert_eq!(r.status, 415, "{}", r.body);
        let r = request(addr, "DELETE", "/whip/stage/no-such-session", &[auth], "").await;
        assert_eq!(r.status, 404, "{}", r.body);

        // After all that, the token's holder publishes under its identity.
        let r = request(addr, "POST", "/whip/stage", &[SDP, auth], OFFER).await;
        assert_eq!(r.status, 201, "{}", r.body);
        let r = request(addr, "POST", "/whep/stage", &[SDP, auth], RECVONLY).await;
        assert_eq!(r.status, 201, "a token admits a viewer too: {}", r.body);
        let members = listed(addr, "stage", Some(&alice)).await;
        assert!(
            members.iter().any(|(_, name)| name == "alice"),
            "named by the token's identity: {members:?}"
        );
        let metrics = request(addr, "GET", "/metrics", &[], "").await.body;
        assert!(
            metrics.contains("sfu_http_sessions{endpoint=\"whip\"} 1"),
            "{metrics}"
        );
    });
    srv.stop().expect("stop");
}
