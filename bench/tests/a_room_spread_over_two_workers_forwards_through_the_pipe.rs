//! One room spread over both workers, for real: a server with two workers
//! and a consumer budget of 4 puts the first viewers on the room's home
//! worker and the rest on the other, where the publisher's tracks arrive
//! through a pipe (a pipe consumer per track on home, a mirror producer on
//! the other worker, over the lock-free ring between them). Every viewer
//! gets the media, SRTP-verified, with the keyframe it asked for; the
//! server's /metrics shows consumers on both workers and packets piped.
//! Bounded by a watchdog.

use std::time::Duration;

use sfu_bench::load::{Args, run_within};
use sfu_sig::Background;
use sfu_sig::config::Config;

#[test]
fn a_room_spread_over_two_workers_forwards_through_the_pipe() {
    let mut cfg = Config::loopback("48100-48199").expect("config");
    cfg.cores = 2;
    cfg.limits.worker_consumer_budget = 4;
    let server = Background::start(
        cfg,
        std::net::TcpListener::bind("127.0.0.1:0").expect("bind"),
    )
    .expect("server");
    let addr = server.addr;
    let args = Args {
        subscribers: 12,
        video_kbps: 500,
        packet_size: 1000,
        audio: true,
        duration: 5.0,
        ramp: 1.0,
        server_pid: Some(std::process::id()),
        processes: Some(1),
        cpu: Some(-1),
        verify_every: 2,
        ..Args::against(&format!("ws://{addr}/ws"))
    };
    let summary = run_within(args, Duration::from_secs(60)).expect("run ok");
    server.stop().expect("server stopped cleanly");

    assert_eq!(summary.joined, 13, "{:?}", summary.join_failures);
    assert!(summary.expected_packets > 1000, "{summary:?}");
    assert!(summary.loss_ratio < 0.05, "{summary:?}");
    assert!(
        summary.verified_packets > 500 && summary.verify_failures == 0,
        "{summary:?}"
    );
    // Two consumers a viewer (audio, video): 4 fit the budget on home,
    // then the other worker takes viewers until it holds as many.
    let per_worker = summary.worker_consumers.clone().expect("metrics read");
    assert_eq!(per_worker.len(), 2, "{summary:?}");
    assert!(
        per_worker.iter().all(|&c| c >= 8),
        "both workers hold consumers: {per_worker:?}"
    );
    assert!(
        summary.piped_packets.is_some_and(|p| p > 200),
        "the publisher's packets crossed the pipe: {summary:?}"
    );
    assert!(summary.keyframe_requests >= 1, "{summary:?}");
}
