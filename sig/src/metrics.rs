//! Prometheus text exposition (format 0.0.4) of the data plane's counters.

use std::fmt::Write;

use sfu_core::stats::{Counters, DropReason};

use crate::ws::AppState;

/// A metric family: (name suffix, help text, how to read it from counters).
type Def = (&'static str, &'static str, fn(&Counters) -> u64);

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str, rows: &[(String, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, v) in rows {
        let _ = writeln!(out, "{name}{{{labels}}} {v}");
    }
}

fn counter_rows(items: &[(String, &Counters)], f: impl Fn(&Counters) -> u64) -> Vec<(String, u64)> {
    items.iter().map(|(l, c)| (l.clone(), f(c))).collect()
}

/// Renders `/metrics`: per-worker and per-room counters, rooms, participants.
pub fn render(app: &AppState) -> String {
    let mut out = String::with_capacity(8192);
    let workers: Vec<(String, &Counters)> = app
        .workers
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("worker=\"{i}\""), c.as_ref()))
        .collect();
    let rooms = app
        .registry
        .rooms
        .lock()
        .map(|g| g.clone())
        .unwrap_or_default();
    let room_items: Vec<(String, &Counters)> = rooms
        .iter()
        .map(|r| {
            (
                format!("room=\"{}\",worker=\"{}\"", escape(&r.name), r.worker),
                r.counters.as_ref(),
            )
        })
        .collect();
    for (prefix, items) in [("sfu_worker", &workers), ("sfu_room", &room_items)] {
        let defs: [Def; 7] = [
            ("packets_in_total", "UDP datagrams received.", |c| {
                c.packets_in.get()
            }),
            ("bytes_in_total", "UDP payload bytes received.", |c| {
                c.bytes_in.get()
            }),
            ("packets_out_total", "UDP datagrams sent.", |c| {
                c.packets_out.get()
            }),
            ("bytes_out_total", "UDP payload bytes sent.", |c| {
                c.bytes_out.get()
            }),
            (
                "rtp_forwarded_total",
                "RTP packets forwarded (one per consumer copy).",
                |c| c.rtp_forwarded.get(),
            ),
            (
                "send_errors_total",
                "Datagrams the socket refused to send.",
                |c| c.send_errors.get(),
            ),
            ("keyframe_requests_total", "PLIs sent to publishers.", |c| {
                c.keyframe_requests.get()
            }),
        ];
        for (name, help, f) in defs {
            family(
                &mut out,
                &format!("{prefix}_{name}"),
                "counter",
                help,
                &counter_rows(items, f),
            );
        }
        let mut drops = Vec::new();
        for (l, c) in items.iter() {
            for r in DropReason::ALL {
                drops.push((format!("{l},reason=\"{}\"", r.as_str()), c.drops(r)));
            }
        }
        family(
            &mut out,
            &format!("{prefix}_drops_total"),
            "counter",
            "Datagrams or packets dropped, by reason.",
            &drops,
        );
        let gauges: [Def; 3] = [
            ("transports", "Live WebRtcTransports.", |c| {
                c.transports.get()
            }),
            ("producers", "Live producers (incoming tracks).", |c| {
                c.producers.get()
            }),
            (
                "consumers",
                "Live consumers (outgoing track copies).",
                |c| c.consumers.get(),
            ),
        ];
        for (name, help, f) in gauges {
            family(
                &mut out,
                &format!("{prefix}_{name}"),
                "gauge",
                help,
                &counter_rows(items, f),
            );
        }
    }
    family(
        &mut out,
        "sfu_worker_routers",
        "gauge",
        "Rooms hosted by the worker.",
        &counter_rows(&workers, |c| c.routers.get()),
    );
    let parts: Vec<(String, u64)> = rooms
        .iter()
        .map(|r| {
            (
                format!("room=\"{}\",worker=\"{}\"", escape(&r.name), r.worker),
                r.participants as u64,
            )
        })
        .collect();
    family(
        &mut out,
        "sfu_room_participants",
        "gauge",
        "Participants in the room.",
        &parts,
    );
    let _ = writeln!(
        out,
        "# HELP sfu_rooms Open rooms.\n# TYPE sfu_rooms gauge\nsfu_rooms {}",
        rooms.len()
    );
    let total: usize = rooms.iter().map(|r| r.participants).sum();
    let _ = writeln!(
        out,
        "# HELP sfu_participants Participants in all rooms.\n# TYPE sfu_participants gauge\nsfu_participants {total}"
    );
    out
}
