//! Issue interleaving: A's transport expires on the worker; B joins the same
//! room before the hub has seen A's `TransportClosed`; then the event
//! arrives. With ids that are never reused, the event names A's transport,
//! not B's: A is told and removed, B stays.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn a_late_transport_closed_kicks_its_owner_not_the_newcomer() {
    run(Duration::from_secs(30), async {
        let mut hub = TestHub::start(1, hub_config(Duration::from_secs(10)), false);
        let mut a = hub.joined("r", "a", OFFER).await;
        let a_transport = hub.workers[0].last_transport();

        // A's transport expires on the worker; the event is held back.
        let late = hub.workers[0].expire(a_transport);

        let mut b = hub.joined("r", "b", OFFER).await;
        let b_transport = hub.workers[0].last_transport();
        assert_ne!(b_transport, a_transport, "the worker never reuses an id");

        hub.event(late).await;
        let got = a.expect("transport-closed").await;
        assert_eq!(got["type"], "error", "{got}");
        // B is told that A left, and is still in the room.
        loop {
            let v = b.recv().await;
            assert_ne!(v["code"], "transport-closed", "B was kicked: {v}");
            if v["type"] == "deltas" && b.roster.len() == 1 {
                assert!(b.listed("b").is_some(), "{:?}", b.roster);
                break;
            }
        }
        hub.stop().await;
    });
}
