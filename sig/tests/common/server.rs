//! The real server in-process on one worker and a free port, and a
//! runtime whose whole test is bounded (`#[path = "common/server.rs"] mod
//! server;`).

use std::time::Duration;

use sfu_sig::Background;
use sfu_sig::config::{Config, Flags};

/// Starts the server with `flags` on 127.0.0.1, one worker.
pub(crate) fn server(flags: Flags) -> Background {
    let cfg = Config::load(Flags {
        rtc_listen_ip: Some("127.0.0.1".into()),
        cores: Some("1".into()),
        // Tests run side by side: each ICE-TCP listener on a free port.
        rtc_tcp_port: Some("0".into()),
        ..flags
    })
    .expect("config");
    Background::start(
        cfg,
        std::net::TcpListener::bind("127.0.0.1:0").expect("bind"),
    )
    .expect("server")
}

/// Runs `f` on a current-thread runtime, failing after 60 s.
pub(crate) fn run(f: impl std::future::Future<Output = ()>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(60), f)
            .await
            .expect("watchdog: 60 s")
    });
}
