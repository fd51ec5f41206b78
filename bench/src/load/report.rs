//! Figures of a load run and the process statistics they come from.

#![expect(unsafe_code, reason = "sysconf(3) for the clock tick")]

use serde::Serialize;

/// The JSON summary written by `--json` and printed at the end.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Summary {
    /// The scenario as given on the command line.
    pub scenario: Scenario,
    /// Clients that completed join + ICE + DTLS.
    pub joined: usize,
    /// Clients that failed, with the reason, e.g. `"sub-3: timeout waiting for answer"`.
    pub join_failures: Vec<String>,
    /// Seconds of the measurement window (after the ramp and a 2 s settle).
    pub window_seconds: f64,
    /// RTP packets received by all clients in the window.
    pub forwarded_packets: u64,
    /// Packets the clients should have received in the window: every packet a
    /// publisher sent, once per other client in its room.
    pub expected_packets: u64,
    /// `1 - forwarded/expected`, at least 0.
    pub loss_ratio: f64,
    /// Packets received per second in the window.
    pub forwarded_packets_per_second: f64,
    /// Packets decrypted and checked (1 in `verify_every`).
    pub verified_packets: u64,
    /// Verified packets that failed SRTP authentication or had a bad payload.
    pub verify_failures: u64,
    /// Received packets whose sequence number went backwards (per SSRC).
    pub reordered_packets: u64,
    /// One-way latency median over verified packets, ms.
    pub latency_p50_ms: f64,
    /// One-way latency 99th percentile, ms.
    pub latency_p99_ms: f64,
    /// Server CPU time (user + system) in the window, seconds; `null` without a server PID.
    pub server_cpu_seconds: Option<f64>,
    /// Server CPU over the window as a share of one core, percent.
    pub server_cpu_percent: Option<f64>,
    /// Server CPU µs per forwarded packet.
    pub server_cpu_us_per_forwarded_packet: Option<f64>,
    /// Server resident set size at the end, bytes.
    pub server_rss_bytes: Option<u64>,
    /// PLIs the publishers received.
    pub keyframe_requests: u64,
    /// Join latency (WebSocket connect to the join answer), median, ms.
    pub join_latency_p50_ms: f64,
    /// Join latency, 99th percentile, ms.
    pub join_latency_p99_ms: f64,
    /// Joins answered per second, from the first to the last answer.
    pub join_rate_per_second: f64,
    /// The largest signaling message any client received, bytes.
    pub largest_signaling_message_bytes: usize,
    /// Consumers on each of the server's workers, by index, one second
    /// before the end (its `/metrics`); `null` when it could not be read.
    pub worker_consumers: Option<Vec<u64>>,
    /// Packets the server's workers sent each other through pipes (a room
    /// spread over workers), all run long.
    pub piped_packets: Option<u64>,
    /// Against several nodes: datagrams their relays sent each other in
    /// the window (`sfu_relay_packets_out_total`, all nodes).
    pub relayed_packets: Option<u64>,
    /// `--spawn-floor`: datagrams the reference relay's subscribers received
    /// in the window.
    pub floor_forwarded_packets: Option<u64>,
    /// `--spawn-floor`: their loss ratio.
    pub floor_loss_ratio: Option<f64>,
    /// `--spawn-floor`: the relay's CPU µs per forwarded packet, the floor
    /// of this machine and kernel for the scenario.
    pub floor_cpu_us_per_forwarded_packet: Option<f64>,
    /// Server CPU per forwarded packet over the floor's, in the same run.
    pub server_to_floor_cpu_ratio: Option<f64>,
    /// `--datachannel-rate`: chat messages the publishers sent in the window…
    pub datachannel_messages_sent: u64,
    /// …the messages the others received…
    pub datachannel_messages_received: u64,
    /// …and what they should have: each once per other publisher of its room.
    pub datachannel_messages_expected: u64,
}

/// The scenario flags, echoed in the summary.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Scenario {
    /// Signaling URL.
    pub server: String,
    /// Rooms.
    pub rooms: usize,
    /// Publishers per room (they also receive each other).
    pub publishers: usize,
    /// Receive-only subscribers per room.
    pub subscribers: usize,
    /// Video bitrate per publisher, kbit/s.
    pub video_kbps: u32,
    /// Video packet size, bytes.
    pub packet_size: usize,
    /// Opus-sized audio at 50 pkt/s per publisher.
    pub audio: bool,
    /// Data-channel chat messages per second per publisher.
    pub datachannel_rate: f64,
    /// Seconds after the ramp.
    pub duration: f64,
    /// Seconds over which clients join.
    pub ramp: f64,
    /// One in this many received packets is decrypted and verified.
    pub verify_every: u32,
    /// The role `--subscribers` join as (`viewer` or `participant`).
    pub role: String,
}

/// CPU time (user + system) of a process, seconds, from `/proc/PID/stat`.
pub fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the ")" closing the command name: state is field 3; utime 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some((utime + stime) / hz.max(1.0))
}

/// Resident set size of a process, bytes, from `/proc/PID/status`.
pub fn process_rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The `q` quantile (0..=1) of `v` (sorted in place), or 0 for no samples.
pub fn quantile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v[i.min(v.len() - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process_figures() {
        let pid = std::process::id();
        assert!(process_cpu_seconds(pid).is_some());
        assert!(process_rss_bytes(pid).is_some_and(|b| b > 0));
    }

    #[test]
    fn quantiles() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&mut v, 0.5), 51.0);
        assert_eq!(quantile(&mut v, 0.99), 99.0);
        assert_eq!(quantile(&mut [], 0.5), 0.0);
    }
}

/// What a server's `/metrics` says of its workers.
#[derive(Debug, Clone, Default)]
pub struct WorkerFigures {
    /// `sfu_worker_consumers`, by worker index.
    pub consumers: Vec<u64>,
    /// `sfu_worker_piped_packets_out_total`, all workers.
    pub piped_out: u64,
    /// `sfu_relay_packets_out_total`, all relays.
    pub relay_out: u64,
}

/// Reads `/metrics` of the server whose WebSocket URL is `ws_url`
/// (`ws://host:port/...`, plain HTTP/1.0, 5 s at most); `None` when it
/// cannot.
pub fn scrape_workers(ws_url: &str) -> Option<WorkerFigures> {
    scrape_page(ws_url).map(|p| parse_worker_metrics(&p))
}

/// The `/metrics` page of the server whose WebSocket URL is `ws_url`.
fn scrape_page(ws_url: &str) -> Option<String> {
    use std::io::{Read, Write};
    let host = ws_url.strip_prefix("ws://")?.split('/').next()?;
    let addr: std::net::SocketAddr = host.parse().ok()?;
    let timeout = std::time::Duration::from_secs(5);
    let mut s = std::net::TcpStream::connect_timeout(&addr, timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    write!(s, "GET /metrics HTTP/1.0\r\nHost: {host}\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

/// `sfu_relay_packets_out_total` summed over every node of `server` (its
/// comma-separated signaling URLs); `None` when one cannot be read.
pub fn scrape_relayed(server: &str) -> Option<u64> {
    server
        .split(',')
        .map(|u| scrape_page(u.trim()).map(|p| parse_worker_metrics(&p).relay_out))
        .sum()
}

/// The value of the unlabelled series `name ` (with its trailing space) on
/// the `/metrics` page of `ws_url`.
pub fn scrape_page_metric(ws_url: &str, name: &str) -> Option<u64> {
    let page = scrape_page(ws_url)?;
    page.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().parse().ok())
}

/// The per-worker figures of a Prometheus text page.
pub fn parse_worker_metrics(page: &str) -> WorkerFigures {
    let mut f = WorkerFigures::default();
    for line in page.lines() {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(v) = value.parse::<f64>() else {
            continue;
        };
        let worker = || {
            series
                .split("worker=\"")
                .nth(1)?
                .split('"')
                .next()?
                .parse::<usize>()
                .ok()
        };
        if series.starts_with("sfu_worker_consumers{") {
            if let Some(i) = worker() {
                if f.consumers.len() <= i {
                    f.consumers.resize(i + 1, 0);
                }
                f.consumers[i] = v as u64;
            }
        } else if series.starts_with("sfu_worker_piped_packets_out_total{") {
            f.piped_out += v as u64;
        } else if series.starts_with("sfu_relay_packets_out_total{") {
            f.relay_out += v as u64;
        }
    }
    f
}

#[cfg(test)]
mod worker_metrics_tests {
    use super::*;

    #[test]
    fn per_worker_consumers_and_piped_packets_are_read_from_metrics() {
        let page = "# HELP sfu_worker_consumers Live consumers.\n\
                    sfu_worker_consumers{worker=\"1\"} 4200\n\
                    sfu_worker_consumers{worker=\"0\"} 5800\n\
                    sfu_room_consumers{room=\"r\",worker=\"0\"} 10000\n\
                    sfu_worker_piped_packets_out_total{worker=\"0\"} 77\n\
                    sfu_worker_piped_packets_out_total{worker=\"1\"} 3\n\
                    sfu_relay_packets_out_total{room=\"r\",node=\"b\"} 5\n\
                    sfu_relay_packets_out_total{room=\"s\",node=\"c\"} 6\n";
        let f = parse_worker_metrics(page);
        assert_eq!(f.consumers, vec![5800, 4200]);
        assert_eq!(f.piped_out, 80);
        assert_eq!(f.relay_out, 11);
    }
}
