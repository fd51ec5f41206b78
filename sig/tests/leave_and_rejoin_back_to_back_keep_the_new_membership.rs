//! A client may send `leave` and a new `join` back to back without waiting
//! for `left`. The room's late notice that the old membership ended must not
//! end the new one: the client's later answers still reach the room.

mod common;

use std::time::Duration;

use common::*;
use sfu_sig::protocol::ClientMsg;

#[test]
fn a_pipelined_leave_and_join_leaves_the_client_in_the_room() {
    run(Duration::from_secs(30), async {
        let mut hub = TestHub::start(1, hub_config(Duration::from_secs(10)), false);
        let mut a = hub.joined("r", "a", OFFER).await;
        a.send(ClientMsg::Leave).await;
        a.join("r", "a", OFFER).await;
        a.expect("left").await;
        a.expect("answer").await;

        // Someone joins: A is offered the tracks and its answer is taken.
        let _b = hub.joined("r", "b", OFFER).await;
        let update = a.expect("update").await;
        a.answer(update["sdp"].as_str().expect("sdp"), None).await;
        hub.workers[0].wait_resumed(2).await;
        if let Some(v) = a.recv_within(Duration::from_millis(500)).await {
            assert_ne!(v["code"], "not-joined", "{v}");
        }
        hub.stop().await;
    });
}
