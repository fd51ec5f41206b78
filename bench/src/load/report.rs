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
