//! In a long meeting, a participant who stays sees many others join and
//! leave. Closed m-sections are recycled under new mids, so its SDP stays
//! bounded by the tracks it receives now, not by the history of the call:
//! after 200 joins and leaves its update has as many m-sections as after
//! the first, and stays far below the 64 KiB message limit.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn two_hundred_joins_and_leaves_leave_the_stayers_sdp_bounded() {
    run(Duration::from_secs(120), async {
        let mut hub = TestHub::start(1, hub_config(Duration::from_secs(10)), false);
        let mut alice = hub.joined("long", "alice", OFFER).await;
        let mut first_sections = None;
        let mut largest = 0;
        for i in 0..200 {
            let guest = hub.connect().await;
            guest.join("long", &format!("guest-{i}"), OFFER).await;
            // Alice gets the guest's two tracks…
            let add = alice.expect("update").await;
            let sdp = add["sdp"].as_str().expect("sdp").to_string();
            alice.answer(&sdp, None).await;
            let n = sections(&sdp);
            first_sections.get_or_insert(n);
            assert_eq!(Some(n), first_sections, "cycle {i}: m-sections {n}");
            largest = largest.max(sdp.len());
            // …then the guest leaves and they close.
            guest.disconnect().await;
            let close = alice.expect("update").await;
            let sdp = close["sdp"].as_str().expect("sdp").to_string();
            assert!(
                sdp.contains("m=video 0 ") && sdp.contains("m=audio 0 "),
                "{sdp}"
            );
            alice.answer(&sdp, None).await;
        }
        assert_eq!(
            first_sections,
            Some(4),
            "alice's own two and one per guest track"
        );
        assert!(largest < 8 * 1024, "largest update {largest} B");
        hub.stop().await;
    });
}
