//! `video-hidden` pauses a subscriber's consumers of the hidden
//! participants' video (audio goes on) and a later list resumes them; the
//! data plane's dominant speaker reaches every participant as `speaker`.

mod common;

use std::time::Duration;

use common::*;
use sfu_core::worker::Event;
use sfu_sig::protocol::ClientMsg;

/// The participant id (`p7`) in the `a=msid` lines of an update offer.
fn publisher_in(sdp: &str) -> String {
    sdp.lines()
        .find_map(|l| l.strip_prefix("a=msid:"))
        .and_then(|v| v.split_whitespace().next())
        .expect("an msid")
        .to_string()
}

#[test]
fn hidden_video_is_paused_and_shown_video_resumed() {
    run(Duration::from_secs(30), async {
        let mut hub = TestHub::start(1, hub_config(Duration::from_secs(10)), false);
        let mut sub = hub.joined("r", "sub", OFFER).await;
        let _pub = hub.joined("r", "pub", OFFER).await;
        let update = sub.expect("update").await;
        let sdp = update["sdp"].as_str().expect("sdp");
        let publisher = publisher_in(sdp);
        sub.answer(sdp, None).await;
        hub.workers[0].wait_resumed(2).await;
        // sub's consumers of pub's tracks are the last two created.
        let (video, audio) = {
            let s = hub.workers[0].state.lock().expect("state");
            let n = s.consumer_ids.len();
            let mine: Vec<_> = (n - 2..n)
                .map(|i| (s.consumer_ids[i], s.consumer_params[i].pt_map[0].0.0))
                .collect();
            let v = mine.iter().find(|(_, pt)| *pt != 111).expect("video").0;
            let a = mine.iter().find(|(_, pt)| *pt == 111).expect("audio").0;
            (v, a)
        };
        let paused = |hub: &TestHub| hub.workers[0].state.lock().expect("state").paused.clone();
        let before = paused(&hub).len();
        sub.send(ClientMsg::VideoHidden {
            ids: vec![publisher.clone()],
        })
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            paused(&hub)[before..],
            [(video, true)],
            "video paused, audio not"
        );
        // The same list again changes nothing; an empty one shows it again.
        sub.send(ClientMsg::VideoHidden {
            ids: vec![publisher],
        })
        .await;
        sub.send(ClientMsg::VideoHidden { ids: vec![] }).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(paused(&hub)[before..], [(video, true), (video, false)]);
        assert!(!paused(&hub)[before..].iter().any(|(c, _)| *c == audio));
    });
}

#[test]
fn the_dominant_speaker_is_announced_to_everyone() {
    run(Duration::from_secs(30), async {
        let mut hub = TestHub::start(1, hub_config(Duration::from_secs(10)), false);
        let mut a = hub.connect().await;
        a.join("r", "a", OFFER).await;
        let a_id = a.expect("answer").await["id"]
            .as_str()
            .expect("id")
            .to_string();
        let mut b = hub.joined("r", "b", OFFER).await;
        // a's producers were created first.
        let (router, producer) = hub.workers[0].state.lock().expect("state").producer_ids[0];
        hub.event(Event::Router {
            router,
            event: sfu_core::router::RouterEvent::DominantSpeaker(producer),
        })
        .await;
        for c in [&mut a, &mut b] {
            let m = c.expect("speaker").await;
            assert_eq!(m["id"], a_id.as_str());
        }
    });
}
