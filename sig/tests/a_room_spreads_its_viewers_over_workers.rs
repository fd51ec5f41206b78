//! One room over every core: once home's worker holds more consumers than
//! `worker_consumer_budget`, a room's new viewers go to the least-loaded
//! worker. The room opens a Router there, links it to home by a pair of
//! pipe ends, pipes each producer (a pipe consumer per encoding on home, a
//! mirror producer with those SSRCs there), and the viewer consumes the
//! mirrors. A worker that fails takes down only its side of the room.

mod common;

use std::time::Duration;

use common::*;
use sfu_core::router::RouterEvent;
use sfu_core::worker::Event;
use sfu_sig::protocol::Role;

fn spread_config() -> sfu_sig::hub::HubConfig {
    let mut cfg = hub_config(Duration::from_secs(10));
    cfg.limits.worker_consumer_budget = 5;
    cfg
}

/// A publisher on home (worker 0) and a viewer spread to worker 1.
async fn spread_room(hub: &mut TestHub) -> (Client, Client) {
    let mut ann = hub.joined("big", "ann", OFFER).await;
    drain_answering(&mut ann, Duration::from_millis(300)).await;
    // Worker 0 is over its budget; worker 1 is idle.
    hub.workers[0].counters.consumers.add(10);
    let mut v = hub.connect().await;
    v.join_as("big", "v", RECVONLY_OFFER, Some(Role::Viewer))
        .await;
    v.expect("answer").await;
    let update = v.expect("update").await;
    let sdp = update["sdp"].as_str().expect("sdp");
    assert_eq!(sdp.matches("a=sendonly").count(), 2, "{sdp}");
    (ann, v)
}

#[test]
fn a_viewer_past_the_budget_goes_to_the_least_loaded_worker_through_a_pipe() {
    run(Duration::from_secs(30), async {
        let mut hub = TestHub::start(2, spread_config(), false);
        let (_ann, _v) = spread_room(&mut hub).await;
        let (w0, w1) = (&hub.workers[0], &hub.workers[1]);
        assert_eq!(w1.count("CreateRouter"), 1, "the room opened on worker 1");
        assert_eq!(w0.count("CreatePipeTransport"), 1);
        assert_eq!(w1.count("CreatePipeTransport"), 1);
        assert_eq!(w0.count("ConnectPipeTransport"), 1);
        assert_eq!(w1.count("ConnectPipeTransport"), 1);
        assert_eq!(w1.count("CreateTransport"), 1, "the viewer's transport");
        {
            let s0 = w0.state.lock().expect("state");
            let s1 = w1.state.lock().expect("state");
            // Audio and video, one encoding each: a pipe consumer each on home.
            assert_eq!(s0.pipe_consumers.len(), 2);
            // Their mirrors on worker 1 announce the pipe consumers' SSRCs and
            // arrive on worker 1's pipe end.
            assert_eq!(s1.producer_params.len(), 2);
            let (_, pipe_end) = s1.pipe_ends[0];
            for (m, pc) in s1.producer_params.iter().zip(&s0.pipe_consumers) {
                assert_eq!(m.transport, pipe_end);
                assert_eq!(m.encodings[0].ssrc, Some(pc.ssrc));
            }
            // The viewer consumes the mirrors, on worker 1; nothing of it on 0.
            let mirrors: Vec<_> = s1.producer_ids.iter().map(|(_, p)| *p).collect();
            assert_eq!(s1.consumer_params.len(), 2);
            for c in &s1.consumer_params {
                assert!(mirrors.contains(&c.producer), "{c:?}");
            }
            assert_eq!(s0.consumer_params.len(), 0, "ann has no one to receive");
        }
        hub.stop().await;
    });
}

#[test]
fn a_failed_worker_takes_down_only_its_side_of_a_spread_room() {
    run(Duration::from_secs(30), async {
        let mut hub = TestHub::start(2, spread_config(), false);
        let (mut ann, mut v) = spread_room(&mut hub).await;
        drain_answering(&mut ann, Duration::from_millis(300)).await;
        hub.event(Event::WorkerFailed {
            worker: 1,
            generation: 0,
            message: "injected".into(),
        })
        .await;
        let got = v.expect("room-failed").await;
        assert_eq!(got["type"], "error", "{got}");
        // Home closed its end of the pipe to worker 1; ann was told only
        // that a viewer left, and still takes part.
        tokio::time::sleep(Duration::from_millis(300)).await;
        {
            let s0 = hub.workers[0].state.lock().expect("state");
            let (_, home_end) = s0.pipe_ends[0];
            assert!(s0.closed_transports.contains(&home_end));
        }
        for m in drain_answering(&mut ann, Duration::from_millis(500)).await {
            assert_ne!(m["code"], "room-failed", "{m}");
        }
        let _bob = hub.joined("big", "bob", OFFER).await;
        let update = ann.expect("update").await;
        assert!(
            update["sdp"]
                .as_str()
                .is_some_and(|s| s.contains("m=video"))
        );
        hub.stop().await;
    });
}

#[test]
fn a_failed_home_router_leaves_the_viewers_on_the_other_worker_in_the_room() {
    run(Duration::from_secs(30), async {
        let mut hub = TestHub::start(2, spread_config(), false);
        let (mut ann, mut v) = spread_room(&mut hub).await;
        let home = hub.workers[0].state.lock().expect("state").pipe_ends[0].0;
        hub.event(Event::RouterFailed {
            router: home,
            message: "injected".into(),
        })
        .await;
        ann.expect("room-failed").await;
        // The viewer stays: it hears that ann left, not that the room failed.
        let mut left = false;
        for m in drain_answering(&mut v, Duration::from_millis(800)).await {
            assert_ne!(m["code"], "room-failed", "{m}");
            left |= m["type"] == "deltas"
                && m["events"]
                    .as_array()
                    .is_some_and(|e| e.iter().any(|e| e["type"] == "participant-left"));
        }
        assert!(left, "the viewer was told ann left");
        {
            let s1 = hub.workers[1].state.lock().expect("state");
            let (_, end) = s1.pipe_ends[0];
            assert!(
                s1.closed_transports.contains(&end),
                "the pipe from home closed"
            );
        }
        // A new participant joins the room on what is now its home.
        let routers = hub.workers[0].count("CreateRouter");
        let _bob = hub.joined("big", "bob", OFFER).await;
        assert_eq!(hub.workers[0].count("CreateRouter"), routers, "no new room");
        hub.stop().await;
    });
}

#[test]
fn a_router_that_cannot_be_piped_is_closed_and_the_viewer_stays_home() {
    run(Duration::from_secs(30), async {
        let mut hub = TestHub::start(2, spread_config(), false);
        hub.workers[1].state.lock().expect("state").refuse_pipes = true;
        let (_ann, _v) = spread_room(&mut hub).await;
        let (w0, w1) = (&hub.workers[0], &hub.workers[1]);
        assert_eq!(w1.count("CreateRouter"), 1, "tried worker 1");
        assert_eq!(w1.count("CloseRouter"), 1, "and closed what it opened");
        assert_eq!(w1.count("CreateTransport"), 0);
        assert_eq!(
            w0.count("CreateTransport"),
            2,
            "ann and the viewer, on home"
        );
        // The next viewer does not try worker 1 again so soon.
        let mut v2 = hub.connect().await;
        v2.join_as("big", "v2", RECVONLY_OFFER, Some(Role::Viewer))
            .await;
        v2.expect("answer").await;
        let (w0, w1) = (&hub.workers[0], &hub.workers[1]);
        assert_eq!(w1.count("CreateRouter"), 1, "not tried again");
        assert_eq!(w0.count("CreateTransport"), 3);
        hub.stop().await;
    });
}

#[test]
fn what_the_far_side_needs_of_a_track_reaches_home_through_its_pipe_consumers() {
    run(Duration::from_secs(30), async {
        let mut hub = TestHub::start(2, spread_config(), false);
        let (_ann, _v) = spread_room(&mut hub).await;
        let (far, mirror, pipe_consumer) = {
            let s0 = hub.workers[0].state.lock().expect("state");
            let s1 = hub.workers[1].state.lock().expect("state");
            let (far, mirror) = s1.producer_ids[1];
            (far, mirror, s0.pipe_consumer_ids[1])
        };
        // Nobody on worker 1 needs the mirror's encoding: home's pipe
        // consumer of it pauses; needed again, it resumes.
        for active in [false, true] {
            hub.event(Event::Router {
                router: far,
                event: RouterEvent::SourceLayers(mirror, vec![active]),
            })
            .await;
            let end = std::time::Instant::now() + Duration::from_secs(5);
            loop {
                let told = hub.workers[0]
                    .state
                    .lock()
                    .expect("state")
                    .paused
                    .contains(&(pipe_consumer, !active));
                if told {
                    break;
                }
                assert!(
                    std::time::Instant::now() < end,
                    "pipe consumer not told {active}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        hub.stop().await;
    });
}
