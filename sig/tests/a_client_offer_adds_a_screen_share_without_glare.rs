//! The client offers (docs/signaling.md, flow 5): `offer-request` waits for
//! an outstanding update's answer, no update goes out while the client holds
//! the turn, the offer's new m-section becomes a screen-share producer the
//! others are offered under `p<id>-screen`, and stopping it ends the
//! producer. A refused offer changes nothing.

mod common;

use sfu_core::proto::rtp::{Extension, ExtensionMap};
use std::time::Duration;

use common::*;
use sfu_core::router::MediaKind;
use sfu_sig::protocol::ClientMsg;
use sfu_sig::sdp::{self, Codec, Direction, LocalMedia, LocalParams};

/// `sdp`'s m-sections as ours to write, in `direction` (else as they
/// are there).
fn sections_of(sdp: &sdp::PeerSdp, direction: Option<Direction>) -> Vec<LocalMedia> {
    sdp.media
        .iter()
        .map(|m| LocalMedia {
            direction: direction.unwrap_or(m.direction),
            codec: m.codecs.first().cloned(),
            extensions: ExtensionMap::EMPTY.with(Extension::Mid, m.extensions.get(Extension::Mid)),
            rejected: m.rejected,
            ..LocalMedia::closed(&m.mid, m.kind)
        })
        .collect()
}

/// Session-level SDP parameters with these ICE credentials and fingerprint.
fn params(ufrag: &str, pwd: &str, fingerprint: &[u8; 32], ice_lite: bool) -> LocalParams {
    LocalParams {
        ice_ufrag: ufrag.into(),
        ice_pwd: pwd.into(),
        fingerprint: sfu_core::proto::dtls::format_fingerprint(fingerprint),
        ip: "127.0.0.1".parse().expect("ip"),
        port: 9,
        tcp_port: None,
        session_id: 7,
        session_version: 3,
        ice_lite,
    }
}

/// The client's offer for the session it answered with `answer` (its own
/// ICE credentials and fingerprint, from its join offer), with `extra`
/// m-sections appended.
fn client_offer(answer: &str, extra: Vec<LocalMedia>) -> String {
    let join = sdp::parse(OFFER).expect("join offer");
    let mut media = sections_of(&sdp::parse(answer).expect("answer"), None);
    media.extend(extra);
    let local = params(&join.ice_ufrag, &join.ice_pwd, &join.fingerprint, false);
    sdp::write(&local, "actpass", &media)
}

/// The server's join answer as the helpers can answer it: the client's own
/// two sections, nothing received yet.
fn sdp_of_join_answer() -> String {
    let media = sections_of(
        &sdp::parse(OFFER).expect("offer"),
        Some(Direction::RecvOnly),
    );
    let local = params("srvr", "server-password-0123456789", &[1; 32], true);
    sdp::write(&local, "passive", &media)
}

/// A sendonly VP8 m-section under `mid` with SSRC `ssrc` (a screen share).
fn screen(mid: &str, ssrc: u32) -> LocalMedia {
    LocalMedia {
        direction: Direction::SendOnly,
        codec: Some(Codec {
            pt: 96,
            name: "VP8".into(),
            clock_rate: 90_000,
            channels: None,
            fmtp: None,
        }),
        extensions: ExtensionMap::EMPTY.with(Extension::Mid, Some(9)),
        send: Some((
            ssrc,
            "screen".into(),
            "screen".into(),
            "screen-track".into(),
        )),
        rejected: false,
        ..LocalMedia::closed(mid, Some(MediaKind::Video))
    }
}

fn types(msgs: &[serde_json::Value]) -> Vec<String> {
    msgs.iter()
        .map(|m| m["type"].as_str().unwrap_or("?").to_string())
        .collect()
}

async fn drain(c: &mut Client, within: Duration) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    while let Some(m) = c.recv_within(within).await {
        out.push(m);
    }
    out
}

#[test]
fn a_screen_share_is_offered_by_the_client_and_glare_cannot_happen() {
    run(Duration::from_secs(30), async {
        let mut hub = TestHub::start(1, hub_config(Duration::from_secs(10)), false);
        let mut ann = hub.joined("r", "ann", OFFER).await;
        let mut bob = hub.joined("r", "bob", OFFER).await;
        // ann gets an update with bob's tracks and does not answer yet.
        let update = ann.expect("update").await;
        let update_sdp = update["sdp"].as_str().expect("sdp").to_string();
        ann.send(ClientMsg::OfferRequest).await;
        let early = drain(&mut ann, Duration::from_millis(300)).await;
        assert!(
            !types(&early).contains(&"offer-granted".to_string()),
            "granted while our update was out: {early:?}"
        );
        let answer = answer_for(&update_sdp, None);
        ann.send(ClientMsg::Answer {
            sdp: answer.clone(),
        })
        .await;
        ann.expect("offer-granted").await;
        // While ann holds the turn, a newcomer's tracks wait.
        let _cat = hub.joined("r", "cat", OFFER).await;
        let held = drain(&mut ann, Duration::from_millis(500)).await;
        assert!(
            !types(&held).contains(&"update".to_string()),
            "an update crossed the client's turn: {held:?}"
        );
        let producers_before = hub.workers[0].count("CreateProducer");
        let offer = client_offer(&answer, vec![screen("7", 777)]);
        ann.send(ClientMsg::Offer {
            sdp: offer,
            screen: vec!["7".into()],
        })
        .await;
        let reply = ann.expect("offer-answer").await;
        let answer_sdp = reply["sdp"].as_str().expect("sdp").to_string();
        let a = sdp::parse(&answer_sdp).expect("our answer parses");
        let last = a.media.last().expect("sections");
        assert_eq!(
            (last.mid.as_str(), last.direction, !last.rejected),
            ("7", Direction::RecvOnly, true),
            "the share is received"
        );
        assert_eq!(hub.workers[0].count("CreateProducer"), producers_before + 1);
        // Then the held-back update: cat's tracks, after ann's new section.
        let next = ann.expect("update").await;
        let next_sdp = next["sdp"].as_str().expect("sdp").to_string();
        let n = sdp::parse(&next_sdp).expect("update parses");
        let mids: Vec<&str> = n.media.iter().map(|m| m.mid.as_str()).collect();
        let at = mids
            .iter()
            .position(|m| *m == "7")
            .expect("ann's section kept");
        assert_eq!(at, a.media.len() - 1, "in place");
        assert_eq!(
            mids.len(),
            a.media.len() + 2,
            "cat's audio and video after it"
        );
        ann.answer(&next_sdp, None).await;
        // bob is offered the share under ann's screen stream.
        let ann_id = {
            let msgs = drain_answering(&mut bob, Duration::from_millis(500)).await;
            let who = bob.listed("ann").expect("ann").clone();
            assert_eq!(who["screen"], true, "listed as sharing: {who}");
            let offers: Vec<&str> = msgs
                .iter()
                .filter(|m| m["type"] == "update")
                .filter_map(|m| m["sdp"].as_str())
                .collect();
            let id = who["id"].as_str().expect("id").to_string();
            let screen_stream = format!("a=msid:{id}-screen ");
            assert!(
                offers.iter().any(|o| o.contains(&screen_stream)),
                "bob is offered {screen_stream}: {offers:?}"
            );
            id
        };
        // ann stops sharing: port 0 on her section; the producer closes.
        ann.send(ClientMsg::OfferRequest).await;
        ann.expect("offer-granted").await;
        let mut stopped = client_offer(&answer_for(&next_sdp, None), vec![]);
        let m7 = stopped.find("a=mid:7").expect("section 7");
        let mline = stopped[..m7].rfind("m=video 9 ").expect("its m-line");
        stopped.replace_range(mline..mline + "m=video 9 ".len(), "m=video 0 ");
        ann.send(ClientMsg::Offer {
            sdp: stopped,
            screen: vec![],
        })
        .await;
        let reply = ann.expect("offer-answer").await;
        let a = sdp::parse(reply["sdp"].as_str().expect("sdp")).expect("parses");
        assert!(a.media.iter().any(|m| m.mid == "7" && m.rejected));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(hub.workers[0].count("CloseProducer"), 1);
        drain_answering(&mut bob, Duration::from_millis(500)).await;
        let ann_entry = &bob.roster[&ann_id];
        assert!(
            ann_entry.get("screen").is_none(),
            "not sharing any more: {ann_entry}"
        );
        hub.stop().await;
    });
}

#[test]
fn a_refused_or_ungranted_offer_changes_nothing() {
    run(Duration::from_secs(30), async {
        let mut hub = TestHub::start(1, hub_config(Duration::from_secs(10)), false);
        let mut ann = hub.joined("r", "ann", OFFER).await;
        let offer = client_offer(
            &answer_for(&sdp_of_join_answer(), None),
            vec![screen("7", 777)],
        );
        ann.send(ClientMsg::Offer {
            sdp: offer.clone(),
            screen: vec![],
        })
        .await;
        ann.expect("offer-not-granted").await;
        ann.send(ClientMsg::OfferRequest).await;
        ann.expect("offer-granted").await;
        // An ICE restart is refused, and the turn is given back.
        let restarted = offer.replace("a=ice-ufrag:WQdc", "a=ice-ufrag:Zzzz");
        ann.send(ClientMsg::Offer {
            sdp: restarted,
            screen: vec![],
        })
        .await;
        let e = ann.expect("offer-refused").await;
        assert!(e["message"].as_str().unwrap_or("").contains("ICE"), "{e}");
        assert_eq!(
            hub.workers[0].count("CreateProducer"),
            2,
            "nothing published"
        );
        ann.send(ClientMsg::Offer {
            sdp: offer,
            screen: vec![],
        })
        .await;
        ann.expect("offer-not-granted").await;
        // media-state reaches everyone in participants.
        let mut bob = hub.joined("r", "bob", OFFER).await;
        ann.send(ClientMsg::MediaState {
            audio_muted: true,
            video_off: true,
        })
        .await;
        let ann_entry = loop {
            bob.recv().await;
            if let Some(a) = bob.listed("ann").filter(|a| a["audio_muted"] == true) {
                break a.clone();
            }
        };
        assert_eq!(
            (
                ann_entry["audio_muted"].clone(),
                ann_entry["video_off"].clone()
            ),
            (serde_json::json!(true), serde_json::json!(true))
        );
        hub.stop().await;
    });
}
