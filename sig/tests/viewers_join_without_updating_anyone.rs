//! Viewers (`role: "viewer"`) receive every participant's tracks but are
//! not listed, only counted: a viewer's join sends no `update` to anyone
//! and creates no consumer of anyone's; everyone learns the new count in
//! one `deltas` message. A viewer that offers to send, or asks to, is
//! refused with `viewer-cannot-publish`, and a viewer that stops reading
//! is closed alone.

mod common;

use std::time::Duration;

use common::*;
use sfu_sig::protocol::{ClientMsg, Role};

#[test]
fn a_viewers_join_sends_no_update_and_only_a_count() {
    run(Duration::from_secs(30), async {
        let mut hub = TestHub::start(1, hub_config(Duration::from_secs(10)), false);
        let mut ann = hub.joined("r", "ann", OFFER).await;
        let mut bob = hub.joined("r", "bob", OFFER).await;
        // Let ann and bob settle: answer their updates, read the deltas.
        for _ in 0..2 {
            drain_answering(&mut ann, Duration::from_millis(400)).await;
            drain_answering(&mut bob, Duration::from_millis(400)).await;
        }
        let consumers_before = hub.workers[0].count("CreateConsumer");

        let mut v = hub.connect().await;
        v.join_as("r", "v", RECVONLY_OFFER, Some(Role::Viewer))
            .await;
        v.expect("answer").await;
        // One snapshot: both participants, one viewer, not the viewer itself.
        let snap = v.recv().await;
        assert_eq!(snap["type"], "participants", "{snap}");
        assert_eq!(snap["participants"].as_array().map(Vec::len), Some(2));
        assert_eq!(snap["viewers"], 1);
        assert!(v.listed("v").is_none(), "viewers are not listed");
        // It receives ann's and bob's audio and video.
        let update = v.expect("update").await;
        let sdp = update["sdp"].as_str().expect("sdp");
        assert_eq!(sdp.matches("a=sendonly").count(), 4, "{sdp}");
        assert_eq!(
            hub.workers[0].count("CreateConsumer") - consumers_before,
            4,
            "the viewer's consumers only"
        );

        // Nobody else gets an update; they get the count, once.
        for c in [&mut ann, &mut bob] {
            let mut got = Vec::new();
            while let Some(m) = c.recv_within(Duration::from_millis(1500)).await {
                got.push(m);
            }
            assert!(
                got.iter().all(|m| m["type"] != "update"),
                "no update for a viewer's join: {got:?}"
            );
            let deltas: Vec<_> = got.iter().filter(|m| m["type"] == "deltas").collect();
            assert_eq!(deltas.len(), 1, "{got:?}");
            assert_eq!(
                deltas[0]["events"],
                serde_json::json!([{"type": "viewers", "count": 1}])
            );
            assert_eq!(c.viewers, 1);
            assert_eq!(c.roster.len(), 2, "the roster is unchanged");
        }

        // The viewer leaves: the count goes back, still no update.
        v.send(ClientMsg::Leave).await;
        v.expect("left").await;
        let mut got = Vec::new();
        while let Some(m) = ann.recv_within(Duration::from_millis(1500)).await {
            got.push(m);
        }
        assert!(got.iter().all(|m| m["type"] != "update"), "{got:?}");
        assert_eq!(ann.viewers, 0, "{got:?}");
        hub.stop().await;
    });
}

#[test]
fn a_viewer_cannot_publish() {
    run(Duration::from_secs(30), async {
        let mut hub = TestHub::start(1, hub_config(Duration::from_secs(10)), false);
        let _ann = hub.joined("r", "ann", OFFER).await;
        // An offer that sends, as a viewer: refused, nothing created.
        let transports = hub.workers[0].count("CreateTransport");
        let mut v = hub.connect().await;
        v.join_as("r", "v", OFFER, Some(Role::Viewer)).await;
        let e = v.expect("viewer-cannot-publish").await;
        assert_eq!(e["type"], "error", "{e}");
        assert_eq!(hub.workers[0].count("CreateTransport"), transports);
        // It may join again, receive-only; then asking to offer, or
        // announcing a muted microphone, is refused too.
        v.join_as("r", "v", RECVONLY_OFFER, Some(Role::Viewer))
            .await;
        v.expect("answer").await;
        v.send(ClientMsg::OfferRequest).await;
        v.expect("viewer-cannot-publish").await;
        v.send(ClientMsg::MediaState {
            audio_muted: true,
            video_off: true,
        })
        .await;
        v.expect("viewer-cannot-publish").await;
        hub.stop().await;
    });
}

#[test]
fn roster_changes_are_coalesced_into_one_message_per_interval() {
    run(Duration::from_secs(30), async {
        let mut hub = TestHub::start(1, hub_config(Duration::from_secs(10)), false);
        let mut ann = hub.joined("r", "ann", RECVONLY_OFFER).await;
        ann.expect("participants").await;
        // Five participants and three viewers join back to back.
        let mut others = Vec::new();
        for i in 0..5 {
            others.push(hub.joined("r", &format!("p{i}"), RECVONLY_OFFER).await);
        }
        for i in 0..3 {
            let v = hub.connect().await;
            v.join_as("r", &format!("v{i}"), RECVONLY_OFFER, Some(Role::Viewer))
                .await;
            others.push(v);
        }
        let mut arrivals = Vec::new();
        while let Some(m) = ann.recv_within(Duration::from_millis(1500)).await {
            if m["type"] == "deltas" {
                arrivals.push((tokio::time::Instant::now(), m));
            }
        }
        let events: usize = arrivals
            .iter()
            .map(|(_, m)| m["events"].as_array().map_or(0, Vec::len))
            .sum();
        assert!(
            arrivals.len() < 6,
            "9 changes in fewer messages: {arrivals:?}"
        );
        // Ann's own join (queued before her snapshot went out: deltas are
        // upserts), the five, and one count.
        assert_eq!(events, 7, "six joins and one count: {arrivals:?}");
        for w in arrivals.windows(2) {
            assert!(
                w[1].0 - w[0].0 >= Duration::from_millis(150),
                "at most one per interval: {arrivals:?}"
            );
        }
        assert_eq!(ann.roster.len(), 6);
        assert_eq!(ann.viewers, 3);
        hub.stop().await;
    });
}

#[test]
fn a_viewer_that_stops_reading_is_closed_alone() {
    run(Duration::from_secs(30), async {
        let mut hub = TestHub::start(1, hub_config(Duration::from_secs(10)), false);
        let mut ann = hub.joined("r", "ann", OFFER).await;
        // A viewer whose queue holds 3 messages and that never reads: its
        // answer, snapshot and first update fill it.
        let slow = hub.connect_with_queue(3).await;
        slow.join_as("r", "slow", RECVONLY_OFFER, Some(Role::Viewer))
            .await;
        let mut fine = hub.connect().await;
        fine.join_as("r", "fine", RECVONLY_OFFER, Some(Role::Viewer))
            .await;
        fine.expect("answer").await;
        // bob joins: each viewer gets an update and deltas; the slow one's
        // queue overflows and it is removed.
        let mut bob = hub.joined("r", "bob", OFFER).await;
        let mut seen = Vec::new();
        for _ in 0..3 {
            seen.extend(drain_answering(&mut fine, Duration::from_millis(600)).await);
            drain_answering(&mut ann, Duration::from_millis(100)).await;
            drain_answering(&mut bob, Duration::from_millis(100)).await;
            if fine.viewers == 1 {
                break;
            }
        }
        assert_eq!(fine.viewers, 1, "the slow viewer was removed: {seen:?}");
        assert!(
            seen.iter().all(|m| m["type"] != "error"),
            "nothing went wrong for the others: {seen:?}"
        );
        assert_eq!(fine.roster.len(), 2, "ann and bob");
        // The others still negotiate: bob's tracks reached the fine viewer.
        let offers = seen.iter().filter(|m| m["type"] == "update").count();
        assert!(offers >= 1, "{seen:?}");
        hub.stop().await;
    });
}
