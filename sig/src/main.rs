//! The `sfu` binary: see README.md for flags, and `sfu --help`.

// The server's code handles what it can fail on; tests (integration tests
// are crates of their own, unit tests are allowed by clippy.toml) expect.
#![warn(clippy::expect_used)]

use std::process::ExitCode;

use clap::Parser;
use sfu_sig::config::{Cmd, Config, Flags, parse_ttl};
use sfu_sig::protocol::{Role, validate_name};

fn main() -> ExitCode {
    let mut flags = Flags::parse();
    match flags.command.take() {
        Some(Cmd::Token {
            room,
            identity,
            ttl,
            admin,
            role,
        }) => {
            let role = match role.as_deref() {
                Some("viewer") => Some(Role::Viewer),
                Some(_) => Some(Role::Participant),
                None => None,
            };
            return mint_token(flags, &room, &identity, &ttl, role, admin);
        }
        Some(Cmd::Play {
            file,
            room,
            looped,
            name,
            stop,
            url,
            token,
        }) => {
            let what = (room.as_str(), stop.as_deref(), looped, name.as_str());
            let r = sfu_sig::recording::playback::api::run_cli(
                file.as_deref(),
                what,
                &url,
                token.as_deref(),
            );
            return printed("play", r);
        }
        Some(Cmd::Recording { action }) => {
            return printed(
                "recording",
                sfu_sig::recording::api::run_recording_cli(&action),
            );
        }
        Some(Cmd::Record { action, url, token }) => {
            let r = sfu_sig::recording::api::run_cli(&action, &url, token.as_deref());
            return printed("record", r);
        }
        None => {}
    }
    let check = flags.check;
    let cfg = match Config::load(flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sfu: {e}");
            return ExitCode::from(2);
        }
    };
    if check {
        let cluster = cfg.cluster.as_ref().map_or("alone".to_string(), |c| {
            format!("node {} of the cluster at {}", c.node_id, c.redis)
        });
        println!(
            "sfu: configuration ok: http {}, rtc ports {}-{}, {} worker(s), {cluster}",
            cfg.http_listen, cfg.rtc_port_min, cfg.rtc_port_max, cfg.cores
        );
        return ExitCode::SUCCESS;
    }
    // dcSCTP logs every SCTP packet at info: kept out unless asked for.
    let log = if cfg.log.contains("dcsctp") {
        cfg.log.clone()
    } else {
        format!("{},dcsctp=warn", cfg.log)
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&log).unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .init();
    // One WebSocket per member: a room of 10,000 needs more open files than
    // the usual soft limit of 1,024.
    match sfu_core::io::raise_fd_limit(65_536) {
        Ok(n) => tracing::info!(open_files = n, "open-file limit (one per WebSocket)"),
        Err(e) => tracing::warn!(error = %e, "cannot read the open-file limit"),
    }

    let listener = match std::net::TcpListener::bind(cfg.http_listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("sfu: cannot listen on http_listen {}: {e}", cfg.http_listen);
            return ExitCode::from(1);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sfu: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = rt.block_on(sfu_sig::run(cfg, listener, shutdown_signal()));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sfu: {e}");
            ExitCode::from(1)
        }
    }
}

/// A subcommand's outcome: its output on stdout (exit 0), or its error on
/// stderr after `sfu <what>:` (exit 1).
fn printed(what: &str, result: Result<String, String>) -> ExitCode {
    match result {
        Ok(text) => {
            println!("{}", text.trim_end());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sfu {what}: {e}");
            ExitCode::from(1)
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = ctrl_c.await;
            return;
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}

/// `sfu token`: prints a join token (or with `admin` an admin token)
/// signed with the configured auth secret.
fn mint_token(
    flags: Flags,
    room: &str,
    identity: &str,
    ttl: &str,
    role: Option<Role>,
    admin: bool,
) -> ExitCode {
    let fail = |msg: String| {
        eprintln!("sfu token: {msg}");
        ExitCode::from(2)
    };
    let ttl = match parse_ttl(ttl) {
        Ok(t) => t,
        Err(e) => return fail(format!("--ttl: {e}")),
    };
    let names = if admin && room.is_empty() {
        validate_name("identity", identity)
    } else {
        validate_name("room", room).and_then(|()| validate_name("identity", identity))
    };
    if let Err(e) = names {
        return fail(e.to_string());
    }
    let cfg = match Config::load(flags) {
        Ok(c) => c,
        Err(e) => return fail(e.to_string()),
    };
    let Some(secret) = cfg.auth_secret else {
        return fail(
            "no auth secret: set --auth-secret, SFU_AUTH_SECRET or auth_secret in the config file"
                .into(),
        );
    };
    let minted = if admin {
        sfu_sig::auth::mint_admin(&secret, room, identity, ttl)
    } else {
        sfu_sig::auth::mint(&secret, room, identity, ttl, role)
    };
    match minted {
        Ok(t) => {
            println!("{t}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(e.to_string()),
    }
}
