//! An `update` the client never answers times out: the client gets
//! `update-timeout` and the current state again. A client may refuse an
//! update with `update-failed`; it gets the state again, and the third
//! failure in a row removes it with `negotiation-failed`.

mod common;

use std::time::{Duration, Instant};

use common::*;
use sfu_sig::protocol::ClientMsg;

#[test]
fn an_unanswered_update_times_out_and_is_offered_again() {
    run(Duration::from_secs(30), async {
        let mut hub = TestHub::start(1, hub_config(Duration::from_secs(1)), false);
        let mut a = hub.joined("r", "a", OFFER).await;
        let _b = hub.joined("r", "b", OFFER).await;

        // A gets B's tracks and does not answer.
        let first = a.expect("update").await;
        let t0 = Instant::now();
        let err = a.expect("update-timeout").await;
        assert!(t0.elapsed() >= Duration::from_millis(900), "{err}");
        let again = a.expect("update").await;
        assert_eq!(
            sections(first["sdp"].as_str().expect("sdp")),
            sections(again["sdp"].as_str().expect("sdp")),
            "the same state again"
        );
        // Answering the new one works: B's consumers are resumed.
        a.answer(again["sdp"].as_str().expect("sdp"), None).await;
        hub.workers[0].wait_resumed(2).await;
        assert!(
            a.recv_within(Duration::from_millis(1500)).await.is_none(),
            "nothing more once answered"
        );
        hub.stop().await;
    });
}

#[test]
fn update_failed_gets_the_state_again_and_three_in_a_row_remove_the_client() {
    run(Duration::from_secs(30), async {
        let mut hub = TestHub::start(1, hub_config(Duration::from_secs(10)), false);
        let mut a = hub.joined("r", "a", OFFER).await;
        let mut b = hub.joined("r", "b", OFFER).await;
        a.expect("update").await;
        let refuse = || ClientMsg::UpdateFailed {
            message: "InvalidAccessError: setRemoteDescription failed".into(),
        };
        a.send(refuse()).await;
        a.expect("update").await;
        a.send(refuse()).await;
        a.expect("update").await;
        a.send(refuse()).await;
        let gone = a.expect("negotiation-failed").await;
        assert_eq!(gone["type"], "error", "{gone}");
        // B sees A leave; A may join again.
        loop {
            let v = b.recv().await;
            if v["type"] == "deltas" && b.roster.len() == 1 {
                break;
            }
        }
        a.join("r", "a", OFFER).await;
        a.expect("answer").await;
        // update-failed with no update outstanding is refused.
        let mut c = hub.connect().await;
        c.send(refuse()).await;
        assert_eq!(c.expect("not-joined").await["type"], "error");
        hub.stop().await;
    });
}
