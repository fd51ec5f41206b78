//! The video codec is the client's first of VP8, VP9, AV1 and H264: a
//! client that prefers AV1 (`setCodecPreferences`) publishes AV1 with its
//! dependency descriptor passed through to subscribers that offered it; one
//! that prefers VP9 publishes VP9 profile 0. Simulcast stays VP8 (or H264).

mod common;

use sfu_core::proto::rtp::Extension;
use std::time::Duration;

use common::*;
use sfu_core::proto::codec::VideoCodec;
use sfu_sig::sdp;

/// Chromium's simulcast offer (it offers the dependency descriptor, id 12)
/// with the video codecs reordered so `first` (a payload type) leads, as
/// `setCodecPreferences` does; `simulcast: false` drops the RIDs and
/// announces an SSRC instead.
fn prefer(first: &str, simulcast: bool) -> String {
    let base = include_str!("../../testdata/sdp/offer-audio-video-simulcast.sdp");
    base.split_inclusive("\r\n")
        .filter(|l| simulcast || !(l.starts_with("a=rid:") || l.starts_with("a=simulcast:")))
        .map(|l| match l.strip_prefix("m=video 9 UDP/TLS/RTP/SAVPF ") {
            Some(pts) => {
                let rest: Vec<&str> = pts.split_whitespace().filter(|p| *p != first).collect();
                format!("m=video 9 UDP/TLS/RTP/SAVPF {first} {}\r\n", rest.join(" "))
            }
            // Without RIDs the video SSRC is announced, as Chromium does.
            None if !simulcast && l == "a=mid:1\r\n" => format!("{l}a=ssrc:4242 cname:test\r\n"),
            None => l.to_string(),
        })
        .collect()
}

const DD_URI: &str =
    "https://aomediacodec.github.io/av1-rtp-spec/#dependency-descriptor-rtp-header-extension";

#[test]
fn an_av1_publisher_keeps_its_codec_and_dependency_descriptor() {
    run(Duration::from_secs(30), async {
        let mut hub = TestHub::start(1, hub_config(Duration::from_secs(10)), false);
        let mut ann = hub.connect().await;
        ann.join("r", "ann", &prefer("45", false)).await;
        let answer = ann.expect("answer").await;
        let a = sdp::parse(answer["sdp"].as_str().expect("sdp")).expect("answer parses");
        let video = &a.media[1];
        assert_eq!(video.codecs[0].name, "AV1");
        assert_eq!(
            video.extensions.get(Extension::DependencyDescriptor),
            Some(12),
            "the descriptor is answered"
        );
        assert!(
            answer["sdp"]
                .as_str()
                .unwrap_or("")
                .contains("a=extmap-allow-mixed")
        );
        let video_params = {
            let s = hub.workers[0].state.lock().expect("state");
            s.producer_params
                .iter()
                .find(|p| p.video_codec.is_some())
                .cloned()
                .expect("a video producer")
        };
        assert_eq!(video_params.video_codec, Some(VideoCodec::Av1));
        assert_eq!(
            video_params.extensions.get(Extension::DependencyDescriptor),
            Some(12)
        );
        assert_eq!(video_params.encodings.len(), 1, "a single stream");
        // bob (VP8 first, but AV1 offered, with the descriptor) is offered
        // AV1 with the descriptor under his id.
        let mut bob = hub.connect().await;
        bob.join("r", "bob", &prefer("96", false)).await;
        bob.expect("answer").await;
        let update = bob.expect("update").await;
        let u = sdp::parse(update["sdp"].as_str().expect("sdp")).expect("update parses");
        let av1 = u
            .media
            .iter()
            .find(|m| m.codecs.first().is_some_and(|c| c.name == "AV1"))
            .expect("ann's video offered in AV1");
        assert_eq!(
            av1.extensions.get(Extension::DependencyDescriptor),
            Some(12)
        );
        let bob_consumers = {
            let s = hub.workers[0].state.lock().expect("state");
            s.consumer_params
                .iter()
                .map(|c| c.extensions.get(Extension::DependencyDescriptor))
                .collect::<Vec<_>>()
        };
        assert!(bob_consumers.contains(&Some(12)), "{bob_consumers:?}");
        // ann is offered bob's VP8 without the descriptor.
        let update = ann.expect("update").await;
        let text = update["sdp"].as_str().expect("sdp");
        let vp8 = text.split("m=video").nth(2).expect("bob's video section");
        assert!(vp8.contains("VP8/90000") && !vp8.contains(DD_URI), "{vp8}");
        hub.stop().await;
    });
}

#[test]
fn vp9_is_published_as_a_single_stream_and_simulcast_stays_vp8() {
    run(Duration::from_secs(30), async {
        let mut hub = TestHub::start(1, hub_config(Duration::from_secs(10)), false);
        let mut ann = hub.connect().await;
        // VP9 profile 0 first, without simulcast: VP9.
        ann.join("r", "ann", &prefer("98", false)).await;
        let answer = ann.expect("answer").await;
        let a = sdp::parse(answer["sdp"].as_str().expect("sdp")).expect("parses");
        let c = &a.media[1].codecs[0];
        assert_eq!((c.name.as_str(), c.pt), ("VP9", 98));
        assert_eq!(
            a.media[1].extensions.get(Extension::DependencyDescriptor),
            None,
            "no descriptor for VP9"
        );
        // VP9 profile 2 first: skipped for the first forwardable one.
        let mut bob = hub.connect().await;
        bob.join("r", "bob", &prefer("100", false)).await;
        let answer = bob.expect("answer").await;
        let b = sdp::parse(answer["sdp"].as_str().expect("sdp")).expect("parses");
        assert_eq!(b.media[1].codecs[0].name, "VP8");
        // VP9 first with simulcast: VP8, in layers.
        let mut cat = hub.connect().await;
        cat.join("r", "cat", &prefer("98", true)).await;
        let answer = cat.expect("answer").await;
        let text = answer["sdp"].as_str().expect("sdp");
        let c = sdp::parse(text).expect("parses");
        assert_eq!(c.media[1].codecs[0].name, "VP8");
        assert!(text.contains("a=simulcast:recv"), "{text}");
        let codecs: Vec<_> = {
            let s = hub.workers[0].state.lock().expect("state");
            s.producer_params
                .iter()
                .filter_map(|p| p.video_codec.map(|v| (v, p.encodings.len())))
                .collect()
        };
        assert_eq!(
            codecs,
            [
                (VideoCodec::Vp9, 1),
                (VideoCodec::Vp8, 1),
                (VideoCodec::Vp8, 3)
            ]
        );
        hub.stop().await;
    });
}
