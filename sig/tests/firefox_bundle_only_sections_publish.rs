//! Firefox (`bundlePolicy: "max-bundle"`) offers every m-section after the
//! first with port 0 and `a=bundle-only` (RFC 9143 §6). Those sections are
//! bundled, not rejected: its camera is published (simulcast or not), the
//! answer accepts them with a real port and a direction, and the others are
//! offered its tracks. Firefox 153's real offers (testdata/sdp).

mod common;

use std::time::Duration;

use common::*;
use sfu_core::router::MediaKind;
use sfu_sig::sdp::{self, Direction};

const FF_SIMULCAST: &str =
    include_str!("../../testdata/sdp/firefox-offer-audio-video-simulcast.sdp");
const FF_SINGLE: &str = include_str!("../../testdata/sdp/firefox-offer-audio-video.sdp");

/// The m-line of each section of `sdp`, in order.
fn m_lines(sdp: &str) -> Vec<&str> {
    sdp.lines().filter(|l| l.starts_with("m=")).collect()
}

#[test]
fn firefox_publishes_audio_and_video_from_bundle_only_sections() {
    run(Duration::from_secs(30), async {
        let mut hub = TestHub::start(1, hub_config(Duration::from_secs(10)), false);
        let mut fox = hub.connect().await;
        fox.join("r", "fox", FF_SIMULCAST).await;
        let answer = fox.expect("answer").await;
        let text = answer["sdp"].as_str().expect("sdp");
        // Both sections accepted with the BUNDLE transport's port (9, the
        // candidate names the real one), in the BUNDLE group, recvonly.
        assert_eq!(
            m_lines(text),
            [
                "m=audio 9 UDP/TLS/RTP/SAVPF 109",
                "m=video 9 UDP/TLS/RTP/SAVPF 120 124"
            ],
            "{text}"
        );
        assert!(text.contains("a=group:BUNDLE 0 1"), "{text}");
        assert!(!text.contains("bundle-only"), "{text}");
        let a = sdp::parse(text).expect("answer parses");
        assert!(a.media.iter().all(|m| m.direction == Direction::RecvOnly));
        assert!(text.contains("a=simulcast:recv h;f"), "{text}");
        let params = {
            let s = hub.workers[0].state.lock().expect("state");
            s.producer_params.clone()
        };
        assert_eq!(params.len(), 2, "audio and video producers");
        let video = params
            .iter()
            .find(|p| p.kind == MediaKind::Video)
            .expect("video producer");
        let rids: Vec<String> = video
            .encodings
            .iter()
            .filter_map(|e| e.rid.map(|r| r.to_string()))
            .collect();
        assert_eq!(rids, ["h", "f"]);
        assert_eq!(video.payload_types.first().map(|p| p.0), Some(120));

        // A second Firefox without simulcast: one SSRC with its RTX.
        let mut fern = hub.connect().await;
        fern.join("r", "fern", FF_SINGLE).await;
        let answer = fern.expect("answer").await;
        let text = answer["sdp"].as_str().expect("sdp");
        assert_eq!(m_lines(text)[1], "m=video 9 UDP/TLS/RTP/SAVPF 120 124");
        let update = fern.expect("update").await;
        let offered = sdp::parse(update["sdp"].as_str().expect("sdp")).expect("update parses");
        let sending: Vec<_> = offered
            .media
            .iter()
            .filter(|m| !m.rejected && m.direction == Direction::SendOnly)
            .map(|m| m.kind)
            .collect();
        assert_eq!(
            sending,
            [Some(MediaKind::Audio), Some(MediaKind::Video)],
            "fox's tracks offered to fern"
        );
        let params = {
            let s = hub.workers[0].state.lock().expect("state");
            s.producer_params.clone()
        };
        let single = params
            .iter()
            .filter(|p| p.kind == MediaKind::Video)
            .nth(1)
            .expect("fern's video producer");
        assert_eq!(single.encodings.len(), 1);
        assert_eq!(single.encodings[0].ssrc.map(|s| s.0), Some(1_934_572_943));
        assert_eq!(
            single.encodings[0].rtx_ssrc.map(|s| s.0),
            Some(2_812_827_909)
        );
        hub.stop().await;
    });
}
