//! `sfu-load --spawn-server` at a scenario above the server's default room
//! size (100 participants): the server it starts gets limits that fit, and
//! all 121 clients join. The same flags go through the server's own parser
//! here, and the server runs in-process. Bounded by a watchdog.

use std::time::Duration;

use clap::Parser;
use sfu_bench::load::{Args, run_within, server_args};
use sfu_sig::Background;
use sfu_sig::config::{Config, Flags, Limits};

#[test]
fn a_room_of_121_joins_without_a_failure() {
    let subscribers = 120;
    assert!(subscribers + 1 > Limits::default().participants_per_room);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mut args = Args {
        subscribers,
        // Participants, as browsers join: the room limit is what is tested.
        role: "participant".into(),
        video_kbps: 100,
        packet_size: 1000,
        audio: false,
        duration: 3.0,
        ramp: 2.0,
        spawn_server: true,
        cpu: Some(-1),
        verify_every: 8,
        ..Args::against("")
    };
    // What --spawn-server would run, parsed as the server parses it.
    let flags =
        Flags::try_parse_from(std::iter::once("sfu".to_string()).chain(server_args(&args, port)))
            .expect("the server takes sfu-load's flags");
    let cfg = Config::load(flags).expect("config");
    assert!(
        cfg.limits.participants_per_room > subscribers,
        "room for all 121"
    );
    let server = Background::start(cfg, listener).expect("server");
    args.server = format!("ws://127.0.0.1:{port}/ws");
    args.spawn_server = false;
    let summary = run_within(args, Duration::from_secs(120)).expect("run ok");
    server.stop().expect("server stopped cleanly");
    assert!(
        summary.join_failures.is_empty(),
        "{:?}",
        summary.join_failures
    );
    assert_eq!(summary.joined, subscribers + 1);
}
