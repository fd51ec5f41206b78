//! Prometheus text exposition (format 0.0.4) of the data plane's counters.
//!
//! Room names are labels, so their number is capped: the
//! `metrics_max_rooms` rooms with the most participants (then by name) get
//! series of their own, and the rest are summed into series labelled
//! `rooms="other"` (a label no room series has, so no room name can collide
//! with it); `sfu_rooms_aggregated` says how many rooms that sum holds.

mod reach;

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

pub(crate) fn family(out: &mut String, name: &str, kind: &str, help: &str, rows: &[(String, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, v) in rows {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {v}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {v}");
        }
    }
}

fn counter_rows(items: &[(String, &Counters)], f: impl Fn(&Counters) -> u64) -> Vec<(String, u64)> {
    items.iter().map(|(l, c)| (l.clone(), f(c))).collect()
}

/// A listed room: its labels, participants and a snapshot of its counters.
type Listed = (String, u64, Counters);
/// The summed rest: how many rooms, their participants and summed counters.
type Rest = (usize, u64, Counters);

/// The rooms to list one by one (largest first, at most `max`), and the
/// rest summed into one set of counters (`None` when nothing is left over).
fn cap_rooms(mut rooms: Vec<crate::hub::RoomView>, max: usize) -> (Vec<Listed>, Option<Rest>) {
    use std::sync::atomic::Ordering;
    let size = |r: &crate::hub::RoomView| r.participants.load(Ordering::Relaxed) as u64;
    rooms.sort_by(|a, b| size(b).cmp(&size(a)).then_with(|| a.name.cmp(&b.name)));
    let rest = if rooms.len() > max {
        rooms.split_off(max)
    } else {
        Vec::new()
    };
    let snap = |r: &crate::hub::RoomView| {
        let sum = Counters::default();
        for c in &r.counters {
            sum.add_all(c);
        }
        sum
    };
    let listed = rooms
        .iter()
        .map(|r| {
            (
                format!("room=\"{}\",worker=\"{}\"", escape(&r.name), r.worker),
                size(r),
                snap(r),
            )
        })
        .collect();
    let other = (!rest.is_empty()).then(|| {
        let sum = Counters::default();
        for r in &rest {
            sum.add_all(&snap(r));
        }
        (rest.len(), rest.iter().map(size).sum(), sum)
    });
    (listed, other)
}

/// Renders `/metrics`: per-worker and per-room counters, rooms, participants.
pub fn render(app: &AppState) -> String {
    let mut out = String::with_capacity(8192);
    let worker_counters = app
        .registry
        .workers
        .lock()
        .map(|g| g.clone())
        .unwrap_or_default();
    let workers: Vec<(String, &Counters)> = worker_counters
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
    let room_count = rooms.len();
    let (listed, other) = cap_rooms(rooms, app.metrics_max_rooms);
    let mut room_items: Vec<(String, &Counters)> =
        listed.iter().map(|(l, _, c)| (l.clone(), c)).collect();
    let mut parts: Vec<(String, u64)> = listed.iter().map(|(l, n, _)| (l.clone(), *n)).collect();
    if let Some((_, n, c)) = &other {
        room_items.push(("rooms=\"other\"".into(), c));
        parts.push(("rooms=\"other\"".into(), *n));
    }
    for (prefix, items) in [("sfu_worker", &workers), ("sfu_room", &room_items)] {
        let defs: [Def; 28] = [
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
            (
                "nacks_received_total",
                "Generic NACKs received from subscribers.",
                |c| c.nacks_received.get(),
            ),
            (
                "nacks_sent_total",
                "Generic NACKs sent to publishers.",
                |c| c.nacks_sent.get(),
            ),
            (
                "retransmissions_sent_total",
                "Packets retransmitted to subscribers (RTX, or on the media SSRC).",
                |c| c.retransmissions_sent.get(),
            ),
            (
                "retransmissions_over_budget_total",
                "NACKed packets not resent: over the subscriber's retransmission budget (a quarter of the lower of its estimate or loss ceiling and what it is sent, the latter taken as at least 2 Mbit/s; 250 ms burst).",
                |c| c.retransmissions_over_budget.get(),
            ),
            (
                "packets_recovered_total",
                "Missing publisher packets that arrived after all (RTX or late).",
                |c| c.packets_recovered.get(),
            ),
            (
                "packets_lost_total",
                "Missing publisher packets given up on (1 s or 10 NACKs), each followed by a keyframe request.",
                |c| c.packets_lost.get(),
            ),
            (
                "rembs_received_total",
                "REMBs received from subscribers (their own bandwidth estimates).",
                |c| c.rembs_received.get(),
            ),
            (
                "probes_total",
                "Probe clusters sent to subscribers: padding that measures whether their path takes a higher simulcast layer.",
                |c| c.probes.get(),
            ),
            (
                "reliefs_total",
                "Reliefs: a probe above a subscriber's loss ceiling spent its policer's bucket (the probe failed, or a NACK came in its fallout), and its videos at full frame rate left out most of their top temporal layer for 1 s to let resends through.",
                |c| c.reliefs.get(),
            ),
            (
                "layer_switches_total",
                "Simulcast layer switches made by consumers (each at a keyframe).",
                |c| c.layer_switches.get(),
            ),
            (
                "chain_breaks_total",
                "AV1 chains broken by a publisher's frame given up: until the next keyframe, consumers of the spatial layers a broken chain protects step down to one still whole (full SVC) or leave them out.",
                |c| c.chain_breaks.get(),
            ),
            (
                "send_calls_total",
                "sendmmsg system calls (packets_out / send_calls = datagrams per call).",
                |c| c.send_calls.get(),
            ),
            (
                "gso_messages_total",
                "UDP GSO messages: two datagrams or more to one participant in one kernel send.",
                |c| c.gso_messages.get(),
            ),
            ("keyframe_requests_total", "PLIs sent to publishers.", |c| {
                c.keyframe_requests.get()
            }),
            (
                "gop_replays_total",
                "Subscribers started from an RTMP stream's kept GOP (it cannot be asked for a keyframe).",
                |c| c.gop_replays.get(),
            ),
            (
                "events_dropped_total",
                "Events to the control plane dropped because its queue was full.",
                |c| c.events_dropped.get(),
            ),
            (
                "rtt_ms_total",
                "Round-trip time samples to participants, summed, ms (the mean is rate(rtt_ms_total) / rate(rtt_samples_total)).",
                |c| c.rtt_ms_sum.get(),
            ),
            (
                "rtt_samples_total",
                "Round-trip time samples (from receiver reports and XR DLRR).",
                |c| c.rtt_samples.get(),
            ),
            (
                "packets_lost_out_total",
                "Packets subscribers reported lost of what we sent them (transport-wide feedback, else receiver reports).",
                |c| c.packets_lost_out.get(),
            ),
            (
                "packets_reported_out_total",
                "Packets subscribers reported on (the loss out is packets_lost_out / packets_reported_out).",
                |c| c.packets_reported_out.get(),
            ),
            (
                "piped_packets_out_total",
                "Packets sent through pipes to the room's Routers on other workers (a room spread over cores).",
                |c| c.piped_out.get(),
            ),
            (
                "piped_packets_in_total",
                "Packets received through pipes from the room's Routers on other workers.",
                |c| c.piped_in.get(),
            ),
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
        let gauges: [Def; 7] = [
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
            (
                "paused_consumers",
                "Consumers paused: the subscriber hides the tile (video-hidden), or has not answered yet.",
                |c| c.paused_consumers.get(),
            ),
            (
                "subscriber_estimates",
                "Subscribers whose send-side bandwidth estimate knows a limit (updated every second).",
                |c| c.estimates.get(),
            ),
            (
                "subscriber_estimate_bps_sum",
                "Those estimates summed, bit/s (the mean is this / subscriber_estimates).",
                |c| c.estimate_bps_sum.get(),
            ),
            (
                "capped_subscribers",
                "Subscribers that saw congestion and cap the publishers they receive (REMB).",
                |c| c.capped_subscribers.get(),
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
    family(
        &mut out,
        "sfu_room_participants",
        "gauge",
        "Members of the room: participants and viewers.",
        &parts,
    );
    let _ = writeln!(
        out,
        "# HELP sfu_rooms Open rooms.\n# TYPE sfu_rooms gauge\nsfu_rooms {room_count}"
    );
    let _ = writeln!(
        out,
        "# HELP sfu_rooms_aggregated Rooms summed into the rooms=\"other\" series (beyond metrics_max_rooms).\n# TYPE sfu_rooms_aggregated gauge\nsfu_rooms_aggregated {}",
        other.as_ref().map_or(0, |(n, _, _)| *n)
    );
    let total: u64 = parts.iter().map(|(_, n)| n).sum();
    let _ = writeln!(
        out,
        "# HELP sfu_participants Members of all rooms: participants and viewers.\n# TYPE sfu_participants gauge\nsfu_participants {total}"
    );
    let _ = writeln!(
        out,
        "# HELP sfu_worker_restarts_total Data-plane workers replaced after a failure or stall.\n# TYPE sfu_worker_restarts_total counter\nsfu_worker_restarts_total {}",
        app.registry
            .worker_restarts
            .load(std::sync::atomic::Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "# HELP sfu_signaling_dropped_total Client messages dropped because their room's inbox was full (sig/src/hub.rs when_full).\n# TYPE sfu_signaling_dropped_total counter\nsfu_signaling_dropped_total {}",
        app.registry
            .signaling_dropped
            .load(std::sync::atomic::Ordering::Relaxed)
    );
    if let Some(c) = &app.cluster {
        render_cluster(&mut out, c);
    }
    reach::render_data_channels(&mut out, &workers);
    reach::render_ice_tcp(&mut out, &workers);
    render_sessions(&mut out, &app.sessions);
    render_ingest(&mut out, &app.ingest);
    app.recordings.render_metrics(&mut out);
    app.playbacks.render_metrics(&mut out);
    out
}

/// RTMP ingest: connections, live streams, refusals by reason, and what
/// the streams carried.
fn render_ingest(out: &mut String, m: &crate::ingest::rtmp::IngestMetrics) {
    use crate::ingest::rtmp::Refusal;
    use std::sync::atomic::Ordering;
    let one = |v: &std::sync::atomic::AtomicU64| vec![(String::new(), v.load(Ordering::Relaxed))];
    let defs: [(&str, &str, &str, &std::sync::atomic::AtomicU64); 8] = [
        (
            "sfu_ingest_connections_total",
            "counter",
            "RTMP connections accepted.",
            &m.connections,
        ),
        (
            "sfu_ingest_connections",
            "gauge",
            "RTMP connections open.",
            &m.open,
        ),
        (
            "sfu_ingest_streams",
            "gauge",
            "RTMP streams in a room now.",
            &m.live,
        ),
        (
            "sfu_ingest_video_frames_total",
            "counter",
            "H.264 access units forwarded from RTMP.",
            &m.video_frames,
        ),
        (
            "sfu_ingest_audio_frames_total",
            "counter",
            "AAC frames transcoded to Opus.",
            &m.audio_frames,
        ),
        (
            "sfu_ingest_packets_total",
            "counter",
            "RTP packets made from RTMP streams.",
            &m.packets,
        ),
        (
            "sfu_ingest_bytes_total",
            "counter",
            "RTP payload bytes made from RTMP streams.",
            &m.bytes,
        ),
        (
            "sfu_ingest_dropped_total",
            "counter",
            "RTP packets of RTMP streams dropped: the worker's queue was full.",
            &m.dropped,
        ),
    ];
    for (name, kind, help, v) in defs {
        family(out, name, kind, help, &one(v));
    }
    let rows: Vec<(String, u64)> = Refusal::ALL
        .iter()
        .zip(&m.refused)
        .map(|(r, v)| {
            (
                format!("reason=\"{}\"", r.as_str()),
                v.load(Ordering::Relaxed),
            )
        })
        .collect();
    family(
        out,
        "sfu_ingest_refused_total",
        "counter",
        "RTMP connections ended early, by reason (b_frames, video_codec, audio_codec, key, …).",
        &rows,
    );
}

/// WHIP and WHEP sessions: live, created and refused, by endpoint.
fn render_sessions(out: &mut String, s: &crate::whip::Sessions) {
    use crate::whip::Endpoint;
    use std::sync::atomic::Ordering;
    let live = [
        (
            "endpoint=\"whip\"".to_string(),
            s.live(Endpoint::Whip) as u64,
        ),
        (
            "endpoint=\"whep\"".to_string(),
            s.live(Endpoint::Whep) as u64,
        ),
    ];
    family(
        out,
        "sfu_http_sessions",
        "gauge",
        "Live WHIP (RFC 9725) and WHEP sessions.",
        &live,
    );
    let mut rows = Vec::new();
    for (i, e) in ["whip", "whep"].iter().enumerate() {
        rows.push((
            format!("endpoint=\"{e}\",result=\"created\""),
            s.created[i].load(Ordering::Relaxed),
        ));
        rows.push((
            format!("endpoint=\"{e}\",result=\"refused\""),
            s.refused[i].load(Ordering::Relaxed),
        ));
    }
    family(
        out,
        "sfu_http_sessions_total",
        "counter",
        "WHIP and WHEP POSTs: sessions created, and offers refused with an error status.",
        &rows,
    );
}

/// A relay metric family: (name, type, help, how to read it).
type RelayDef = (
    &'static str,
    &'static str,
    &'static str,
    fn(&sfu_core::transport::RelayCounters) -> u64,
);

/// A cluster node's series: the nodes it sees, whether the directory
/// answers, and each relay of its rooms (labelled by room and far node).
fn render_cluster(out: &mut String, c: &crate::cluster::Cluster) {
    let _ = writeln!(
        out,
        "# HELP sfu_nodes Live nodes of the cluster, as the directory showed them at the last heartbeat.\n# TYPE sfu_nodes gauge\nsfu_nodes {}",
        c.nodes().len()
    );
    let _ = writeln!(
        out,
        "# HELP sfu_directory_up Whether the directory (Redis) answered the last heartbeat.\n# TYPE sfu_directory_up gauge\nsfu_directory_up {}",
        u8::from(c.is_up())
    );
    let relays = c.relays();
    let rows = |f: fn(&sfu_core::transport::RelayCounters) -> u64| -> Vec<(String, u64)> {
        relays
            .iter()
            .map(|r| {
                (
                    format!("room=\"{}\",node=\"{}\"", escape(&r.room), escape(&r.node)),
                    f(&r.counters),
                )
            })
            .collect()
    };
    let defs: [RelayDef; 5] = [
        (
            "sfu_relay_packets_in_total",
            "counter",
            "Datagrams received on a relay from another node.",
            |r| r.packets_in.get(),
        ),
        (
            "sfu_relay_packets_out_total",
            "counter",
            "Datagrams sent on a relay to another node.",
            |r| r.packets_out.get(),
        ),
        (
            "sfu_relay_bytes_in_total",
            "counter",
            "Bytes received on a relay (SRTP included).",
            |r| r.bytes_in.get(),
        ),
        (
            "sfu_relay_bytes_out_total",
            "counter",
            "Bytes sent on a relay (SRTP included).",
            |r| r.bytes_out.get(),
        ),
        (
            "sfu_relay_rtt_ms",
            "gauge",
            "Round-trip time of a relay, ms (RTCP reports; 0 until measured).",
            |r| r.rtt_ms.get(),
        ),
    ];
    for (name, kind, help, f) in defs {
        family(out, name, kind, help, &rows(f));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, AtomicUsize};

    use super::*;
    use crate::hub::{Registry, RoomView};
    use crate::ratelimit::IpLimiter;

    fn app(rooms: usize, max: usize) -> AppState {
        let registry = Registry::default();
        let views = (0..rooms)
            .map(|i| {
                let c = Counters::default();
                c.packets_in.add(10);
                RoomView {
                    name: format!("room-{i:04}"),
                    worker: 0,
                    participants: Arc::new(AtomicUsize::new(1 + i % 7)),
                    counters: vec![Arc::new(c)],
                }
            })
            .collect();
        *registry.rooms.lock().expect("lock") = views;
        let (hub, _) = tokio::sync::mpsc::channel(1);
        AppState {
            hub,
            next_conn: Arc::new(AtomicU64::new(1)),
            registry: Arc::new(registry),
            ws_idle_timeout: std::time::Duration::from_secs(60),
            ws_write_timeout: std::time::Duration::from_secs(10),
            limiter: Arc::new(IpLimiter::new(Default::default())),
            metrics_max_rooms: max,
            cluster: None,
            sessions: Arc::default(),
            ingest: Arc::default(),
            rtmp_port: None,
            auth: false,
            auth_secret: None,
            recordings: Arc::default(),
            playbacks: Arc::default(),
        }
    }

    fn value(body: &str, series: &str) -> Option<u64> {
        body.lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    #[test]
    fn room_series_are_capped_largest_first_and_the_rest_summed() {
        let body = render(&app(1200, 500));
        let listed = body
            .lines()
            .filter(|l| l.starts_with("sfu_room_packets_in_total{room="))
            .count();
        assert_eq!(listed, 500, "one series per listed room");
        // Every listed room is one of the largest (7 participants and 6 …).
        assert!(
            !body.contains("sfu_room_participants{room=\"room-0000\""),
            "1 participant: summed"
        );
        assert!(
            body.contains("sfu_room_participants{room=\"room-0006\""),
            "7 participants: listed"
        );
        assert_eq!(value(&body, "sfu_rooms_aggregated "), Some(700));
        assert_eq!(
            value(&body, "sfu_room_packets_in_total{rooms=\"other\"}"),
            Some(7000),
            "the other 700 rooms' 10 packets each"
        );
        assert_eq!(value(&body, "sfu_rooms "), Some(1200));
        let participants: u64 = (0..1200u64).map(|i| 1 + i % 7).sum();
        assert_eq!(value(&body, "sfu_participants "), Some(participants));
        // Under the cap nothing is summed.
        let small = render(&app(3, 500));
        assert_eq!(value(&small, "sfu_rooms_aggregated "), Some(0));
        assert!(
            !small
                .lines()
                .any(|l| !l.starts_with('#') && l.contains("rooms=\"other\"")),
            "no aggregate series"
        );
    }
}
