//! 1,000 join/leave cycles with real clients (signaling, ICE, DTLS, SRTP)
//! leak no memory, file descriptors or rooms. Alone in its test binary, so
//! the process's RSS and descriptors are the server's and this test's only.

mod common;

use std::time::{Duration, Instant};

use common::*;
use sfu_core::proto::dtls::Certificate;
use sfu_sig::config::Flags;

#[test]
fn thousand_join_leave_cycles_leak_nothing() {
    let srv = server("49000-49099", Flags::default());
    let addr = srv.addr;
    let cert = Certificate::generate().expect("cert");
    let (rss_100, rss_end, fds_before, targets_before) =
        block_on(Duration::from_secs(300), async {
            let mut rss_100 = 0;
            let (mut fds_before, mut targets_before) = (0, Vec::new());
            for i in 0..1000 {
                // Alternate two rooms so both "room opens" and "room already open" paths run.
                let c = Client::connect(
                    addr,
                    i,
                    if i % 2 == 0 { "cycle-a" } else { "cycle-b" },
                    &cert,
                    true,
                )
                .await;
                c.leave().await;
                if i == 0 {
                    // Baseline once everything started lazily exists (the worker's
                    // io_uring rings, the HTTP runtime) and the first room closed.
                    let end = Instant::now() + Duration::from_secs(5);
                    while metric(addr, "sfu_rooms ") != 0 && Instant::now() < end {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    fds_before = open_fds();
                    targets_before = fd_targets();
                }
                if i == 99 {
                    rss_100 = self_rss();
                }
            }
            (rss_100, self_rss(), fds_before, targets_before)
        });
    let end = Instant::now() + Duration::from_secs(10);
    while metric(addr, "sfu_rooms ") != 0 || metric(addr, "sfu_worker_transports") != 0 {
        assert!(Instant::now() < end, "rooms and transports back to 0");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The count covers server and clients: give closing connections a moment.
    let end = Instant::now() + Duration::from_secs(5);
    let mut fds_after = open_fds();
    while fds_after > fds_before && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
        fds_after = open_fds();
    }
    eprintln!(
        "rss after 100 cycles {rss_100} B, after 1000 {rss_end} B; fds {fds_before} -> {fds_after}"
    );
    assert!(
        rss_end as f64 <= rss_100 as f64 * 1.10,
        "RSS grew more than 10%: {rss_100} -> {rss_end}"
    );
    assert!(
        fds_after <= fds_before,
        "file descriptors leaked: {fds_before} -> {fds_after}: before {targets_before:?} after {:?}",
        fd_targets()
    );
    assert_eq!(metric(addr, "sfu_worker_routers"), 0);
    srv.stop().expect("clean stop");
}
