//! A client that joins with receive-only transceivers (as docs/signaling.md
//! recommends for one without camera or microphone) is offered every track
//! with the codec its producer uses, even codecs and kinds its own offer
//! never named. Its answer decides: a track it refuses (port 0) is closed on
//! the data plane and reported with `track-rejected`, never silently lost,
//! and is not offered to it again.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// The Chromium recvonly offer cut down to its audio m-section.
fn recvonly_audio_only() -> String {
    let video_at = RECVONLY_OFFER.find("m=video").expect("a video section");
    RECVONLY_OFFER[..video_at].replace("a=group:BUNDLE 0 1", "a=group:BUNDLE 0")
}

#[test]
fn a_receive_only_client_gets_video_too_and_hears_about_refused_tracks() {
    run(Duration::from_secs(30), async {
        let mut hub = TestHub::start(1, hub_config(Duration::from_secs(10)), false);
        let watcher_offer = recvonly_audio_only();
        assert!(
            !watcher_offer.contains("VP8"),
            "the offer names no video codec"
        );
        let mut w = hub.joined("r", "watcher", &watcher_offer).await;
        let _p = hub.joined("r", "publisher", OFFER).await;

        let update = w.expect("update").await;
        let sdp = update["sdp"].as_str().expect("sdp");
        assert!(
            sdp.contains("m=video") && sdp.contains("VP8/90000"),
            "{sdp}"
        );
        assert!(
            sdp.contains("m=audio") && sdp.matches("a=sendonly").count() == 2,
            "{sdp}"
        );

        // The watcher takes the audio and refuses the video.
        w.answer(sdp, Some("video")).await;
        let refused = w.expect("track-rejected").await;
        let msg = refused["message"].as_str().expect("message");
        assert!(msg.contains("video") && msg.contains("publisher"), "{msg}");
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            let (closed, resumed) = {
                let s = hub.workers[0].state.lock().expect("state");
                let resumed = s.paused.iter().filter(|(_, p)| !p).count();
                (s.closed_consumers.len(), resumed)
            };
            if (closed, resumed) == (1, 1) {
                break;
            }
            assert!(Instant::now() < end, "video consumer closed, audio resumed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        hub.stop().await;
    });
}
