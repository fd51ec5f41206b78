//! `sfu-load`: drives real WebRTC clients against an sfu server and reports
//! forwarded packets, loss, latency and the server's CPU per packet.

// The server's code handles what it can fail on; tests (integration tests
// are crates of their own, unit tests are allowed by clippy.toml) expect.
#![warn(clippy::expect_used)]

use std::process::ExitCode;

use clap::Parser;
use sfu_bench::load::{Args, run, run_floor_relay};

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(port) = args.floor_relay {
        return match run_floor_relay(port) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("sfu-load relay: {e}");
                ExitCode::from(2)
            }
        };
    }
    let shard = args.shard.is_some();
    match run(args) {
        // A shard reported to its parent, which prints the summary.
        Ok(_) if shard => ExitCode::SUCCESS,
        Ok(summary) => {
            match serde_json::to_string_pretty(&summary) {
                Ok(s) => println!("{s}"),
                Err(e) => eprintln!("sfu-load: {e}"),
            }
            if summary.joined == 0 && summary.floor_forwarded_packets.is_none() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("sfu-load: {e}");
            ExitCode::from(2)
        }
    }
}
