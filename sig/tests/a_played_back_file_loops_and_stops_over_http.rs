//! Playback against the real server in-process: a short WebM (written by
//! our own muxer) played into a room with `loop` goes round and round and
//! is listed as a participant of the room, DELETE stops it, and each bad
//! request gets its own status and error code. What a browser decodes of
//! a played-back recording is the end-to-end test's (scripts/record.sh).

use std::time::Duration;

use sfu_core::proto::codec::VideoCodec;
use sfu_sig::config::Flags;
use sfu_sig::recording::mux::{Media, Timed, write_webm};

#[path = "common/http.rs"]
mod http;
#[path = "common/server.rs"]
mod server;
use http::request;
use server::{run, server};

const SECRET: &str = "test-secret-test-secret-test-secret!";

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// 1 s of 10 fps VP8-shaped frames (a keyframe every 5) and Opus packets.
fn media() -> Media {
    let video = (0..10)
        .map(|i| Timed {
            us: i * 100_000,
            dur_us: 100_000,
            data: vec![if i % 5 == 0 { 0x10 } else { 0x11 }, 0, 0, 1, 2, 3],
            keyframe: i % 5 == 0,
        })
        .collect();
    let audio = (0..50)
        .map(|i| Timed {
            us: i * 20_000,
            dur_us: 20_000,
            data: vec![0xfc, 1, 2],
            keyframe: true,
        })
        .collect();
    Media {
        video: Some((VideoCodec::Vp8, (320, 240), video)),
        sps_pps: None,
        av1c: None,
        audio: Some((2, audio)),
    }
}

#[test]
fn a_looped_playback_goes_round_until_deleted_and_bad_files_are_refused() {
    let dir = std::env::temp_dir().join(format!("sfu-playback-api-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("show")).expect("dir");
    write_webm(&dir.join("show/clip.webm"), &media()).expect("webm");
    std::fs::write(dir.join("show/junk.webm"), b"no media here").expect("junk");
    std::fs::write(dir.join("../outside.webm"), b"x").expect("outside");
    let srv = server(Flags {
        auth_secret: Some(SECRET.into()),
        recordings_dir: Some(dir.clone()),
        ..Flags::default()
    });
    let addr = srv.addr;
    run(async move {
        let admin = sfu_sig::auth::mint_admin(SECRET, "", "ops", Duration::from_secs(60))
            .expect("admin token");
        let bearer = format!("Bearer {admin}");
        let auth = [("Authorization", bearer.as_str())];
        let post = |body: &'static str| async move {
            request(addr, "POST", "/rooms/stage/playback", &auth, body).await
        };
        let code = |r: &http::Response| json(&r.body)["error"].as_str().map(String::from);

        let r = request(addr, "POST", "/rooms/stage/playback", &[], "{}").await;
        assert_eq!(
            (r.status, code(&r).as_deref()),
            (401, Some("token-required"))
        );
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
        let r = post("{\"loop\":true}").await;
        assert_eq!((r.status, code(&r).as_deref()), (400, Some("bad-json")));
        for missing in [
            "{\"file\":\"show/none.webm\"}",
            "{\"file\":\"../outside.webm\"}",
            "{\"file\":\"/etc/passwd\"}",
            "{\"file\":\"show\"}",
        ] {
            let r = post(missing).await;
            assert_eq!(
                (r.status, code(&r).as_deref()),
                (404, Some("no-such-file")),
                "{missing}"
            );
        }
        let r = post("{\"file\":\"show/junk.webm\"}").await;
        assert_eq!(
            (r.status, code(&r).as_deref()),
            (422, Some("bad-file")),
            "{}",
            r.body
        );
        assert!(
            r.body.contains("damaged") || r.body.contains("not a WebM"),
            "{}",
            r.body
        );

        let r = post("{\"file\":\"show/clip.webm\",\"loop\":true,\"name\":\"clip\"}").await;
        assert_eq!(r.status, 201, "{}", r.body);
        let pb = json(&r.body);
        let id = pb["id"].as_str().expect("an id").to_string();
        assert_eq!(pb["state"], "playing");
        assert!(
            pb["participant"]
                .as_str()
                .is_some_and(|p| p.starts_with('p'))
        );
        // 1 s a round: after 3.5 s it has started over at least twice.
        tokio::time::sleep(Duration::from_millis(3500)).await;
        let r = request(addr, "GET", "/rooms/stage/playback", &auth, "").await;
        let now = json(&r.body)["playbacks"][0].clone();
        assert_eq!(now["state"], "playing", "{now}");
        assert!(now["loops"].as_u64().is_some_and(|n| n >= 2), "{now}");
        assert!(now["frames"].as_u64().is_some_and(|n| n >= 150), "{now}");
        let m = request(addr, "GET", "/metrics", &[], "").await.body;
        assert!(m.contains("sfu_playbacks 1"), "{m}");

        let path = format!("/rooms/stage/playback/{id}");
        let r = request(addr, "DELETE", &path, &auth, "").await;
        assert_eq!(r.status, 200, "{}", r.body);
        let mut state = String::new();
        for _ in 0..50 {
            let r = request(addr, "GET", "/rooms/stage/playback", &auth, "").await;
            state = json(&r.body)["playbacks"][0]["state"]
                .as_str()
                .unwrap_or("")
                .to_string();
            if state == "stopped" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(state, "stopped");
        let r = request(addr, "DELETE", "/rooms/stage/playback/nope", &auth, "").await;
        assert_eq!(
            (r.status, code(&r).as_deref()),
            (404, Some("no-such-playback"))
        );
    });
    srv.stop().expect("stop");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(std::env::temp_dir().join("outside.webm"));
}
