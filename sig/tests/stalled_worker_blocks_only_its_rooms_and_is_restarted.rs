//! One stalled worker must not freeze signaling: joins to rooms on other
//! workers are answered at once; the watchdog marks the silent worker failed
//! within its 2 s ping timeout, its room is told `room-failed`, and a new
//! worker is started in its place and takes rooms again.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn a_stalled_worker_is_failed_restarted_and_never_blocks_other_rooms() {
    run(Duration::from_secs(60), async {
        let mut hub = TestHub::start(2, hub_config(Duration::from_secs(10)), true);
        // Worker 0 wedges before anyone joins.
        hub.workers[0].stalled.store(true, Ordering::Relaxed);

        // A's room goes to worker 0 (both idle: the lower index) and hangs there.
        let mut a = hub.connect().await;
        a.join("on-stalled", "a", OFFER).await;

        // B's room goes to worker 1 and is answered while A still waits.
        let mut b = hub.connect().await;
        let t0 = Instant::now();
        b.join("elsewhere", "b", OFFER).await;
        b.expect("answer").await;
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "B waited {:?} behind the stalled worker",
            t0.elapsed()
        );

        // The watchdog fails worker 0: A's join ends with room-failed.
        let got = a.expect("room-failed").await;
        assert_eq!(got["type"], "error", "{got}");

        // A replacement for worker 0 is started, and a new room can go there.
        let end = Instant::now() + Duration::from_secs(10);
        while hub.spawned.lock().expect("spawned").is_empty() {
            assert!(Instant::now() < end, "worker 0 restarted");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (index, generation) = {
            let s = hub.spawned.lock().expect("spawned");
            (s[0].0, s[0].1)
        };
        assert_eq!((index, generation), (0, 1), "same slot, next generation");
        // Spawned is not yet installed: the hub counts the restart once the
        // new worker is in place (which the rejoin below relies on too).
        while hub.registry.worker_restarts.load(Ordering::Relaxed) == 0 {
            assert!(
                Instant::now() < end,
                "restart installed and counted for /metrics"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(hub.registry.worker_restarts.load(Ordering::Relaxed), 1);
        // The new worker has no rooms, worker 1 has one: the rejoin lands on 0.
        a.join("on-stalled", "a", OFFER).await;
        a.expect("answer").await;
        let fresh = hub.spawned.lock().expect("spawned")[0].2.clone();
        assert_eq!(
            fresh.count("CreateRouter"),
            1,
            "the new room is on the new worker"
        );
        hub.stop().await;
    });
}
