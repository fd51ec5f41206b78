//! sfu-load against the real server in-process: 1 publisher and 2
//! subscribers join, media flows, the figures add up. The clients are
//! spread over two load processes, as a run beyond one process's open-file
//! limit is: the second reports its clients' figures to the first. Bounded
//! by a watchdog.

use std::time::Duration;

use sfu_bench::load::{Args, run_within};
use sfu_sig::Background;
use sfu_sig::config::Config;

#[test]
fn load_generator_joins_verifies_and_counts() {
    let cfg = Config::loopback("48000-48099").expect("config");
    let server = Background::start(
        cfg,
        std::net::TcpListener::bind("127.0.0.1:0").expect("bind"),
    )
    .expect("server");
    let addr = server.addr;
    let args = Args {
        subscribers: 2,
        video_kbps: 500,
        packet_size: 1000,
        audio: true,
        duration: 4.0,
        ramp: 0.5,
        server_pid: Some(std::process::id()),
        processes: Some(2),
        load_bin: Some(env!("CARGO_BIN_EXE_sfu-load").into()),
        cpu: Some(-1),
        verify_every: 2,
        ..Args::against(&format!("ws://{addr}/ws"))
    };
    let summary = run_within(args, Duration::from_secs(60)).expect("run ok");
    server.stop().expect("server stopped cleanly");

    assert_eq!(summary.joined, 3, "{:?}", summary.join_failures);
    assert!(summary.join_failures.is_empty());
    // 500 kbit/s in 1000 B packets = 62.5 pkt/s + 50 audio pkt/s, to 2 receivers, for ~2 s.
    assert!(summary.expected_packets > 300, "{summary:?}");
    assert!(summary.loss_ratio < 0.05, "{summary:?}");
    assert!(
        summary.verified_packets > 100 && summary.verify_failures == 0,
        "{summary:?}"
    );
    assert!(
        summary.latency_p50_ms > 0.0 && summary.latency_p99_ms < 500.0,
        "{summary:?}"
    );
    assert!(
        summary
            .server_cpu_us_per_forwarded_packet
            .is_some_and(|c| c > 0.0)
    );
    assert!(
        summary.keyframe_requests >= 1,
        "a new consumer asks the publisher for a keyframe"
    );
    // Signaling figures: three joins answered, and the largest message
    // is an SDP (an answer or update), not nothing.
    assert!(
        summary.join_latency_p50_ms > 0.0
            && summary.join_latency_p99_ms >= summary.join_latency_p50_ms
            && summary.join_latency_p99_ms < 5000.0,
        "{summary:?}"
    );
    assert!(summary.largest_signaling_message_bytes > 500, "{summary:?}");
    assert_eq!(summary.scenario.role, "viewer");
}
