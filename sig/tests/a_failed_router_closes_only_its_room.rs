//! When one room's router panics on the data plane (`Event::RouterFailed`),
//! that room's participants get `room-failed` and the room is forgotten;
//! another room on the same worker goes on, and the failed room can be
//! joined again (as a new room).

mod common;

use std::time::Duration;

use common::*;
use sfu_core::worker::Event;

#[test]
fn a_failed_router_closes_only_its_room() {
    run(Duration::from_secs(30), async {
        let mut hub = TestHub::start(1, hub_config(Duration::from_secs(10)), false);
        let mut a = hub.joined("doomed", "a", OFFER).await;
        let doomed = {
            let s = hub.workers[0].state.lock().expect("state");
            let (_, router) = s.transports.iter().next().expect("a's transport");
            *router
        };
        let mut b = hub.joined("healthy", "b", OFFER).await;
        // What b is told after its answer (its roster) comes first.
        while b.recv_within(Duration::from_millis(300)).await.is_some() {}

        hub.event(Event::RouterFailed {
            router: doomed,
            message: "injected".into(),
        })
        .await;
        let got = a.expect("room-failed").await;
        assert_eq!(got["type"], "error", "{got}");

        // The healthy room did not hear of it, and still takes joins.
        let told = b.recv_within(Duration::from_millis(500)).await;
        assert!(told.is_none(), "b was told {told:?}");
        let _c = hub.joined("healthy", "c", OFFER).await;
        let update = b.expect("update").await;
        assert!(
            update["sdp"]
                .as_str()
                .is_some_and(|s| s.contains("m=video"))
        );
        // The failed room is gone from the hub: a join opens it anew, on
        // a router of its own.
        let routers_before = hub.workers[0].count("CreateRouter");
        let mut again = hub.connect().await;
        again.join("doomed", "a2", OFFER).await;
        again.expect("answer").await;
        assert_eq!(hub.workers[0].count("CreateRouter"), routers_before + 1);
        hub.stop().await;
    });
}
