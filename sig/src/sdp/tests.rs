//! Tests of the SDP model, parser and writer, on real browser SDP (testdata/sdp).

use sfu_core::proto::rtp::{Extension, ExtensionMap};
use sfu_core::router::MediaKind;

use super::*;

const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/sdp");

/// A captured SDP; a missing file fails the test (testdata/README.md).
fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{FIX}/{name}"))
        .unwrap_or_else(|e| panic!("testdata/sdp/{name}: {e}"))
}

fn codec(pt: u8, name: &str, fmtp: Option<&str>) -> Codec {
    Codec {
        pt,
        name: name.into(),
        clock_rate: 90_000,
        channels: None,
        fmtp: fmtp.map(str::to_string),
    }
}

#[test]
fn video_codecs_follow_the_clients_order_and_match_by_profile() {
    let section = |codecs: Vec<Codec>| {
        let mut m = parse(include_str!(
            "../../../testdata/sdp/offer-audio-video-sendrecv.sdp"
        ))
        .expect("offer")
        .media
        .remove(1);
        m.codecs = codecs;
        m
    };
    let pick = |codecs: Vec<Codec>| section(codecs).preferred_codec().map(|c| c.pt);
    let vp8 = codec(96, "VP8", None);
    let vp9_2 = codec(100, "VP9", Some("profile-id=2"));
    let vp9_0 = codec(98, "VP9", Some("profile-id=0"));
    let av1 = codec(45, "AV1", Some("level-idx=5;profile=0;tier=0"));
    let h264_0 = codec(104, "H264", Some("packetization-mode=0"));
    let h264_1 = codec(
        102,
        "H264",
        Some("level-asymmetry-allowed=1;packetization-mode=1"),
    );
    assert_eq!(pick(vec![av1.clone(), vp8.clone()]), Some(45));
    assert_eq!(
        pick(vec![vp9_2.clone(), vp9_0.clone(), vp8.clone()]),
        Some(98)
    );
    assert_eq!(pick(vec![h264_0.clone(), h264_1.clone()]), Some(102));
    assert_eq!(pick(vec![h264_0.clone(), vp9_2.clone()]), None);
    // A subscriber's own payload type for the publisher's codec: the
    // same VP9 profile (absent means 0), not just the same name.
    let sub = section(vec![vp9_2, codec(50, "VP9", None), av1, vp8]);
    assert_eq!(sub.matching_codec(&vp9_0).map(|c| c.pt), Some(50));
    assert_eq!(
        sub.matching_codec(&codec(35, "AV1", None)).map(|c| c.pt),
        Some(45)
    );
    assert_eq!(sub.matching_codec(&h264_1), None);
    assert_eq!(fmtp_param(Some("a=1; b = 2"), "b"), Some("2"));
}

#[test]
fn parses_chromium_offer() {
    let sdp = fixture("offer-audio-video-sendrecv.sdp");
    let o = parse(&sdp).expect("parses");
    validate_offer(&o).expect("usable");
    assert_eq!(o.setup, "actpass");
    assert_eq!(o.media.len(), 2);
    let audio = &o.media[0];
    assert_eq!(audio.kind, Some(MediaKind::Audio));
    assert_eq!(audio.direction, Direction::SendRecv);
    assert!(audio.ssrc.is_some());
    assert_eq!(
        audio.preferred_codec().map(|c| c.name.as_str()),
        Some("opus")
    );
    let video = &o.media[1];
    assert_eq!(
        video.preferred_codec().map(|c| c.name.as_str()),
        Some("VP8")
    );
    assert!(video.rtx_ssrc.is_some(), "FID group read");
    let vp8 = video.preferred_codec().expect("vp8").pt;
    let rtx = video.rtx_for(vp8).expect("Chromium offers RTX for VP8");
    assert_eq!((rtx.name.as_str(), rtx.clock_rate), ("rtx", 90000));
    assert!(
        audio
            .rtx_for(audio.preferred_codec().expect("opus").pt)
            .is_none()
    );
    assert!(audio.extensions.get(Extension::Mid).is_some());
    assert!(
        video.extensions.get(Extension::TransportWideCc).is_some(),
        "Chromium offers transport-cc"
    );
}

#[test]
fn parses_recvonly_offer_and_simulcast_offer() {
    for f in [
        "offer-recvonly-audio-video.sdp",
        "offer-audio-video-simulcast.sdp",
    ] {
        let sdp = fixture(f);
        let o = parse(&sdp).expect(f);
        validate_offer(&o).expect(f);
    }
    // Chromium's three layers, in a=simulcast order, and their extensions.
    let o = parse(&fixture("offer-audio-video-simulcast.sdp")).expect("simulcast offer");
    let video = o
        .media
        .iter()
        .find(|m| m.kind == Some(MediaKind::Video))
        .expect("video");
    assert_eq!(video.send_rids, ["q", "h", "f"]);
    assert_eq!(
        (
            video.extensions.get(Extension::Rid),
            video.extensions.get(Extension::RepairedRid)
        ),
        (Some(10), Some(11))
    );
    assert_eq!(video.ssrc, None, "Chromium announces no SSRC for simulcast");
}

/// Firefox 153 (`max-bundle`) offers every m-section after the first
/// with port 0 and `a=bundle-only` (RFC 9143 §6): bundled, not rejected.
#[test]
fn firefox_bundle_only_sections_are_accepted() {
    let o = parse(&fixture("firefox-offer-audio-video-simulcast.sdp")).expect("parses");
    validate_offer(&o).expect("usable");
    assert_eq!(o.setup, "actpass");
    let video = &o.media[1];
    assert!(!video.rejected, "bundle-only in the BUNDLE group");
    assert!(video.publishes());
    assert_eq!(video.direction, Direction::SendOnly);
    assert_eq!(
        video.preferred_codec().map(|c| (c.name.as_str(), c.pt)),
        Some(("VP8", 120))
    );
    assert_eq!(video.rtx_for(120).map(|c| c.pt), Some(124));
    // Firefox's layers, and its per-layer FID groups (the first read).
    assert_eq!(video.send_rids, ["h", "f"]);
    assert_eq!(
        (
            video.extensions.get(Extension::Rid),
            video.extensions.get(Extension::RepairedRid)
        ),
        (Some(9), Some(10)),
        "extmap ids with a direction (`9/sendonly`)"
    );
    assert_eq!(
        (video.ssrc, video.rtx_ssrc),
        (Some(1_185_204_161), Some(1_186_419_574))
    );
    assert_eq!(
        video.extensions.get(Extension::DependencyDescriptor),
        Some(8)
    );
    assert_eq!(video.extensions.get(Extension::TransportWideCc), Some(7));
    assert_eq!(video.extensions.get(Extension::AbsSendTime), Some(4));
    let audio = &o.media[0];
    assert!(audio.publishes());
    assert_eq!(audio.extensions.get(Extension::AudioLevel), Some(1));

    let o = parse(&fixture("firefox-offer-audio-video.sdp")).expect("parses");
    let video = &o.media[1];
    assert!(video.publishes() && video.send_rids.is_empty());
    assert_eq!(
        (video.ssrc, video.rtx_ssrc),
        (Some(1_934_572_943), Some(2_812_827_909))
    );
}

/// Port 0 rejects a section that is not bundle-only, or that is
/// bundle-only but outside the BUNDLE group.
#[test]
fn port_zero_outside_bundle_or_without_bundle_only_is_rejected() {
    let ff = fixture("firefox-offer-audio-video-simulcast.sdp");
    let outside = ff.replace("a=group:BUNDLE 0 1", "a=group:BUNDLE 0");
    assert!(parse(&outside).expect("parses").media[1].rejected);
    let no_group = ff.replace("a=group:BUNDLE 0 1\r\n", "");
    assert!(parse(&no_group).expect("parses").media[1].rejected);
    let plain = ff.replace("a=bundle-only\r\n", "");
    let o = parse(&plain).expect("parses");
    assert!(o.media[1].rejected && !o.media[1].publishes());
    assert!(!o.media[0].rejected, "the first section has its port");
}

/// Firefox's answer to one of our offers (a `update`): port 9 on every
/// section, DTLS `active`, extmap directions; all accepted.
#[test]
fn firefox_answer_to_our_offer_accepts_every_section() {
    let offer = parse(&fixture("sfu-offer-to-firefox.input.sdp")).expect("ours parses");
    let a = parse(&fixture("firefox-answer-to-sfu-offer.sdp")).expect("parses");
    assert_eq!(a.setup, "active");
    let mids = |p: &PeerSdp| p.media.iter().map(|m| m.mid.clone()).collect::<Vec<_>>();
    assert_eq!(mids(&a), mids(&offer));
    assert!(a.media.iter().all(|m| !m.rejected));
    let recv: Vec<Direction> = a.media[2..].iter().map(|m| m.direction).collect();
    assert_eq!(recv, [Direction::RecvOnly, Direction::RecvOnly]);
    // Firefox declines abs-send-time on the audio it receives.
    assert_eq!(a.media[2].extensions.get(Extension::AbsSendTime), None);
    assert_eq!(a.media[3].extensions.get(Extension::AbsSendTime), Some(4));
}

#[test]
fn simulcast_is_read_only_from_declared_send_rids() {
    let base = fixture("offer-audio-video-simulcast.sdp");
    let video = |sdp: &str| {
        parse(sdp)
            .expect("parses")
            .media
            .into_iter()
            .find(|m| m.kind == Some(MediaKind::Video))
            .expect("video")
    };
    // Paused layers (~) count; alternatives take the first; an
    // undeclared RID is left out; one layer left is no simulcast.
    let cases = [
        ("a=simulcast:send q;h;f", vec!["q", "h", "f"]),
        ("a=simulcast:send ~q;h,f", vec!["q", "h"]),
        ("a=simulcast:send q;x", vec![]),
        ("a=simulcast:recv q;h;f", vec![]),
    ];
    for (line, want) in cases {
        let sdp = base.replace("a=simulcast:send q;h;f", line);
        assert_eq!(video(&sdp).send_rids, want, "{line}");
    }
}

#[test]
fn an_answer_accepting_simulcast_lists_the_rids_and_extensions() {
    let local = test_local();
    let vp8 = Codec {
        pt: 96,
        name: "VP8".into(),
        clock_rate: 90000,
        channels: None,
        fmtp: None,
    };
    let media = vec![LocalMedia {
        direction: Direction::RecvOnly,
        codec: Some(vp8),
        extensions: ExtensionMap::EMPTY
            .with(Extension::Mid, Some(4))
            .with(Extension::Rid, Some(10))
            .with(Extension::RepairedRid, Some(11)),
        rejected: false,
        simulcast_recv: Some(SimulcastRecv {
            rids: vec!["q".into(), "h".into(), "f".into()],
        }),
        ..LocalMedia::closed("1", Some(MediaKind::Video))
    }];
    let s = write(&local, "passive", &media);
    for line in [
        "a=rid:q recv\r\n",
        "a=rid:h recv\r\n",
        "a=rid:f recv\r\n",
        "a=simulcast:recv q;h;f\r\n",
        "a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id\r\n",
        "a=extmap:11 urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id\r\n",
    ] {
        assert!(s.contains(line), "{line:?} missing in {s}");
    }
}

#[test]
fn missing_pieces_are_named() {
    let sdp = fixture("offer-audio-video-sendrecv.sdp");
    let no_fp: String = sdp
        .lines()
        .filter(|l| !l.starts_with("a=fingerprint"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    assert_eq!(parse(&no_fp).err(), Some(SdpError::NoFingerprint));
    let no_ice: String = sdp
        .lines()
        .filter(|l| !l.starts_with("a=ice-pwd"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    assert_eq!(parse(&no_ice).err(), Some(SdpError::NoIceCredentials));
    let no_codec: String = sdp
        .lines()
        .filter(|l| {
            !["opus", "VP8", "VP9", "AV1", "H264"]
                .iter()
                .any(|c| l.contains(c))
        })
        .map(|l| format!("{l}\r\n"))
        .collect();
    let o = parse(&no_codec).expect("still parses");
    assert_eq!(validate_offer(&o).err(), Some(SdpError::NoUsableCodec));
    assert!(matches!(parse("hello"), Err(SdpError::Parse(_))));
}

fn test_local() -> LocalParams {
    LocalParams {
        ice_ufrag: "abcd".into(),
        ice_pwd: "0123456789012345678901".into(),
        fingerprint: sfu_core::proto::dtls::format_fingerprint(&[7; 32]),
        ip: "127.0.0.1".parse().expect("ip"),
        port: 40000,
        tcp_port: None,
        session_id: 1,
        session_version: 2,
        ice_lite: true,
    }
}

#[test]
fn written_answer_parses_back() {
    let local = test_local();
    let codec = Codec {
        pt: 111,
        name: "opus".into(),
        clock_rate: 48000,
        channels: Some(2),
        fmtp: None,
    };
    let media = vec![
        LocalMedia {
            direction: Direction::RecvOnly,
            codec: Some(codec.clone()),
            extensions: ExtensionMap::EMPTY.with(Extension::Mid, Some(4)),
            rejected: false,
            ..LocalMedia::closed("0", Some(MediaKind::Audio))
        },
        LocalMedia {
            direction: Direction::SendOnly,
            codec: Some(codec),
            extensions: ExtensionMap::EMPTY.with(Extension::Mid, Some(4)),
            send: Some((42, "c".into(), "p1".into(), "t1".into())),
            rejected: false,
            ..LocalMedia::closed("s1", Some(MediaKind::Audio))
        },
    ];
    let s = write(&local, "passive", &media);
    assert!(s.contains("a=ice-lite\r\n"), "{s}");
    assert!(s.contains("a=group:BUNDLE 0 s1\r\n"));
    assert!(s.contains("a=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host\r\n"));
    let back = parse(&s).expect("our SDP parses");
    assert_eq!(back.ice_ufrag, "abcd");
    assert_eq!(back.fingerprint, [7; 32]);
    assert_eq!(back.media[1].ssrc, Some(42));
    assert_eq!(back.media[1].direction, Direction::SendOnly);
    assert_eq!(back.media[0].extensions.get(Extension::Mid), Some(4));
}

#[test]
fn a_video_section_with_rtx_writes_the_fid_group_and_parses_back() {
    let local = test_local();
    let vp8 = Codec {
        pt: 96,
        name: "VP8".into(),
        clock_rate: 90000,
        channels: None,
        fmtp: None,
    };
    let rtx = Codec {
        pt: 97,
        name: "rtx".into(),
        clock_rate: 90000,
        channels: None,
        fmtp: Some("apt=96".into()),
    };
    let media = vec![LocalMedia {
        mid: "s1".into(),
        kind: Some(MediaKind::Video),
        media_token: "video".into(),
        direction: Direction::SendOnly,
        codec: Some(vp8),
        extensions: ExtensionMap::EMPTY.with(Extension::Mid, Some(4)),
        send: Some((42, "c".into(), "p1".into(), "t1".into())),
        rtx: Some(rtx.clone()),
        rtx_ssrc: Some(43),
        rejected: false,
        simulcast_recv: None,
        sctp_port: None,
    }];
    let s = write(&local, "actpass", &media);
    assert!(s.contains("m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\n"), "{s}");
    assert!(s.contains("a=fmtp:97 apt=96\r\n"), "{s}");
    assert!(s.contains("a=ssrc-group:FID 42 43\r\n"), "{s}");
    let back = parse(&s).expect("our SDP parses");
    let m = &back.media[0];
    assert_eq!((m.ssrc, m.rtx_ssrc), (Some(42), Some(43)));
    assert_eq!(m.rtx_for(96), Some(&rtx));
    assert_eq!(rtx_apt("apt=96; rtx-time=3000"), Some(96));
    assert_eq!(rtx_apt("rtx-time=3000"), None);
}

#[test]
fn a_data_channel_section_and_a_passive_tcp_candidate_are_written_and_read_back() {
    // A data section in the form browsers offer it (RFC 8841 §5, §6).
    let offer = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
        m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n\
        a=ice-ufrag:wxyz\r\na=ice-pwd:0123456789012345678901\r\n\
        a=fingerprint:sha-256 07:07:07:07:07:07:07:07:07:07:07:07:07:07:07:07:07:07:07:07:07:07:07:07:07:07:07:07:07:07:07:07\r\n\
        a=setup:actpass\r\na=mid:0\r\na=sctp-port:5000\r\na=max-message-size:262144\r\n";
    let o = parse(offer).expect("parses");
    assert_eq!(
        o.media[0].sctp,
        Some(SctpSection {
            port: 5000,
            max_message_size: 262144
        })
    );
    assert!(validate_offer(&o).is_ok(), "data channels alone are enough");
    let (m, _) = o.data_channels().expect("data channels");
    assert_eq!(m.mid, "0");
    // Absent a=max-message-size means 64 KiB (RFC 8841 §6.1).
    let o2 = parse(&offer.replace("a=max-message-size:262144\r\n", "")).expect("parses");
    assert_eq!(o2.media[0].sctp.map(|s| s.max_message_size), Some(65536));

    let local = LocalParams {
        tcp_port: Some(7881),
        ..test_local()
    };
    let media = vec![LocalMedia {
        rejected: false,
        sctp_port: Some(5000),
        ..LocalMedia::closed("0", None)
    }];
    let s = write(&local, "passive", &media);
    assert!(
        s.contains("m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"),
        "{s}"
    );
    assert!(s.contains("a=sctp-port:5000\r\na=max-message-size:262144\r\n"));
    assert!(s.contains("a=group:BUNDLE 0\r\n"));
    assert!(!s.contains("a=rtcp-mux"), "no RTP attributes on it");
    assert!(s.contains("a=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host\r\n"));
    assert!(
        s.contains("a=candidate:2 1 tcp 1520435199 127.0.0.1 7881 typ host tcptype passive\r\n"),
        "{s}"
    );
    let back = parse(&s).expect("our SDP parses");
    assert_eq!(back.media[0].sctp.map(|s| s.port), Some(5000));
}
