//! The tracks we offer a subscriber declare the header extensions its own
//! join offer named, under its ids (RFC 8285 §6): the MID, the
//! transport-wide sequence number (then its feedback drives our estimate),
//! abs-send-time, and for audio the audio level (RFC 6464). The data plane
//! gets the same ids for each consumer. And the join answer accepts the
//! audio level of what a participant publishes, so that it sends it.

mod common;

use sfu_core::proto::rtp::Extension;
use std::time::Duration;

use common::*;

/// The `a=` lines of each m-section of `sdp`, as (m-line, lines).
fn sections(sdp: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for l in sdp.lines() {
        if l.starts_with("m=") {
            out.push((l.to_string(), Vec::new()));
        } else if let Some((_, attrs)) = out.last_mut() {
            attrs.push(l.to_string());
        }
    }
    out
}

#[test]
fn offered_tracks_declare_the_subscribers_extension_ids() {
    run(Duration::from_secs(30), async {
        let mut hub = TestHub::start(1, hub_config(Duration::from_secs(10)), false);
        // Chromium's offer: 1 audio level, 2 abs-send-time, 3 transport-wide
        // seq, 4 MID. The answer takes the audio level of what it publishes
        // (else Chromium would not send it).
        let mut sub = hub.connect().await;
        sub.join("r", "sub", OFFER).await;
        let answer = sub.expect("answer").await;
        let answer = answer["sdp"].as_str().expect("sdp");
        let audio = sections(answer)
            .into_iter()
            .find(|(m, _)| m.starts_with("m=audio"))
            .expect("audio section");
        assert!(
            audio
                .1
                .iter()
                .any(|l| l == "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level"),
            "{answer}"
        );
        let _publisher = hub.joined("r", "publisher", OFFER).await;
        let update = sub.expect("update").await;
        let sdp = update["sdp"].as_str().expect("sdp");
        let sends: Vec<_> = sections(sdp)
            .into_iter()
            .filter(|(_, a)| a.iter().any(|l| l == "a=sendonly"))
            .collect();
        assert_eq!(sends.len(), 2, "{sdp}");
        for (m, attrs) in &sends {
            let has = |l: &str| attrs.iter().any(|x| x == l);
            assert!(has("a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid"), "{m}");
            assert!(
                has(
                    "a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
                ),
                "{m}"
            );
            assert!(
                has("a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"),
                "{m}"
            );
            let level = has("a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level");
            assert_eq!(
                level,
                m.starts_with("m=audio"),
                "audio level only on audio: {m}"
            );
        }
        let s = hub.workers[0].state.lock().expect("state");
        // Both ways: each participant receives the other's audio and video.
        assert_eq!(s.consumer_params.len(), 4);
        for c in &s.consumer_params {
            assert_eq!(c.extensions.get(Extension::Mid), Some(4), "{c:?}");
            assert_eq!(
                c.extensions.get(Extension::TransportWideCc),
                Some(3),
                "{c:?}"
            );
            assert_eq!(c.extensions.get(Extension::AbsSendTime), Some(2), "{c:?}");
            let opus = c.pt_map.iter().any(|(p, _)| p.0 == 111);
            assert_eq!(
                c.extensions.get(Extension::AudioLevel),
                opus.then_some(1),
                "{c:?}"
            );
        }
    });
}
