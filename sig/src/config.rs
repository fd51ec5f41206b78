//! Configuration: defaults, overridden by a TOML file (`--config FILE`),
//! overridden by `SFU_*` environment variables, overridden by flags.
//!
//! Every error names the field and the reason; nothing here panics.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

/// Command-line flags (each also readable from an `SFU_*` environment variable).
#[derive(Debug, Parser, Default)]
#[command(
    name = "sfu",
    version,
    about = "WebRTC SFU: thread-per-core data plane, signaling and web client"
)]
pub struct Flags {
    /// TOML config file; flags and SFU_* variables override its values.
    #[arg(long, env = "SFU_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// HTTP(S) listen address for the web client, /ws, /metrics, /healthz [default: 127.0.0.1:8080].
    #[arg(long, env = "SFU_HTTP_LISTEN")]
    pub http_listen: Option<String>,
    /// IP address put in ICE candidates (what browsers send media to) [default: 127.0.0.1].
    #[arg(long, env = "SFU_ANNOUNCED_IP")]
    pub announced_ip: Option<String>,
    /// Local IP the rooms' UDP sockets bind to [default: 0.0.0.0].
    #[arg(long, env = "SFU_RTC_LISTEN_IP")]
    pub rtc_listen_ip: Option<String>,
    /// UDP port range for rooms, MIN-MAX (one port per room) [default: 40000-40999].
    #[arg(long, env = "SFU_RTC_PORTS")]
    pub rtc_ports: Option<String>,
    /// Number of data-plane workers, one pinned per CPU 0..N-1 [default: all CPUs].
    #[arg(long, env = "SFU_CORES")]
    pub cores: Option<String>,
    /// PEM certificate chain for HTTPS (with --tls-key).
    #[arg(long, env = "SFU_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for HTTPS (with --tls-cert).
    #[arg(long, env = "SFU_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Log filter in tracing's EnvFilter syntax [default: info].
    #[arg(long, env = "SFU_LOG")]
    pub log: Option<String>,
    /// SO_RCVBUF and SO_SNDBUF of each room's UDP socket, in bytes (the kernel caps them at
    /// net.core.rmem_max/wmem_max) [default: 4194304].
    #[arg(long, env = "SFU_UDP_BUFFER_BYTES")]
    pub udp_buffer_bytes: Option<String>,
    /// Seconds without a valid ICE consent check before a participant is dropped [default: 30].
    #[arg(long, env = "SFU_CONSENT_TIMEOUT")]
    pub consent_timeout: Option<String>,
    /// Seconds a new participant has to complete ICE [default: 15].
    #[arg(long, env = "SFU_ICE_TIMEOUT")]
    pub ice_timeout: Option<String>,
    /// Seconds a participant has to complete DTLS after ICE [default: 15].
    #[arg(long, env = "SFU_DTLS_TIMEOUT")]
    pub dtls_timeout: Option<String>,
    /// Seconds of silence (no message, no pong) before a WebSocket is closed; pings go out
    /// every third of it [default: 60].
    #[arg(long, env = "SFU_WS_IDLE_TIMEOUT")]
    pub ws_idle_timeout: Option<String>,
    /// Rooms one worker hosts at most [default: 1000].
    #[arg(long, env = "SFU_MAX_ROOMS_PER_WORKER")]
    pub max_rooms_per_worker: Option<String>,
    /// Participants in one room at most [default: 100].
    #[arg(long, env = "SFU_MAX_PARTICIPANTS_PER_ROOM")]
    pub max_participants_per_room: Option<String>,
    /// Tracks one participant may publish at most [default: 4].
    #[arg(long, env = "SFU_MAX_PRODUCERS_PER_PARTICIPANT")]
    pub max_producers_per_participant: Option<String>,
    /// Tracks one participant may receive at most [default: 400].
    #[arg(long, env = "SFU_MAX_CONSUMERS_PER_TRANSPORT")]
    pub max_consumers_per_transport: Option<String>,
    /// Seconds a client has to answer an `update` offer; then it gets `update-timeout` and the
    /// current state again [default: 10].
    #[arg(long, env = "SFU_OFFER_TIMEOUT")]
    pub offer_timeout: Option<String>,
    /// Seconds one WebSocket write may take; a client that stops reading is closed after it and
    /// its participant removed [default: 10].
    #[arg(long, env = "SFU_WS_WRITE_TIMEOUT")]
    pub ws_write_timeout: Option<String>,
    /// Messages per second one WebSocket may send (bursts up to the same number) [default: 20].
    #[arg(long, env = "SFU_MAX_MESSAGES_PER_SECOND")]
    pub max_messages_per_second: Option<String>,
    /// Messages per second all WebSockets from one IP address may send together [default: 200].
    #[arg(long, env = "SFU_MAX_MESSAGES_PER_SECOND_PER_IP")]
    pub max_messages_per_second_per_ip: Option<String>,
    /// Joins per minute one WebSocket may send [default: 10].
    #[arg(long, env = "SFU_MAX_JOINS_PER_MINUTE")]
    pub max_joins_per_minute: Option<String>,
    /// Joins per minute all WebSockets from one IP address may send together [default: 600].
    #[arg(long, env = "SFU_MAX_JOINS_PER_MINUTE_PER_IP")]
    pub max_joins_per_minute_per_ip: Option<String>,
    /// Data-plane run loop: epoll (our loop over epoll), uring (our loop over io_uring), or auto
    /// (io_uring when io_uring_setup is allowed, else epoll) [default: epoll, which measured
    /// cheaper per forwarded packet].
    #[arg(long, env = "SFU_IO_BACKEND")]
    pub io_backend: Option<String>,
    /// SRTP implementation: native (our own, in place) or webrtc-srtp (the first one, kept for
    /// comparison) [default: native].
    #[arg(long, env = "SFU_SRTP")]
    pub srtp: Option<String>,
    /// UDP GSO (UDP_SEGMENT): on sends several equal-size datagrams to one participant as one
    /// kernel send when the kernel supports it, off sends each alone [default: on].
    #[arg(long, env = "SFU_UDP_GSO")]
    pub udp_gso: Option<String>,
    /// Rooms that get their own series in /metrics, largest first; the rest are summed into
    /// series labelled rooms="other" [default: 500].
    #[arg(long, env = "SFU_METRICS_MAX_ROOMS")]
    pub metrics_max_rooms: Option<String>,
    /// Secret for HS256 join tokens; when set, every join must carry a valid token (at least
    /// 32 characters).
    #[arg(long, env = "SFU_AUTH_SECRET", global = true, hide_env_values = true)]
    pub auth_secret: Option<String>,
    /// Subcommand (none: run the server).
    #[command(subcommand)]
    pub command: Option<Cmd>,
}

/// Subcommands of `sfu`.
#[derive(Debug, clap::Subcommand)]
pub enum Cmd {
    /// Print a join token (JWT, HS256) for --room and --identity, signed with the auth secret.
    Token {
        /// The room the token admits to.
        #[arg(long)]
        room: String,
        /// Who the holder is (the token's `sub`).
        #[arg(long)]
        identity: String,
        /// How long it is valid: e.g. 90s, 30m, 1h, 7d [default: 1h].
        #[arg(long, default_value = "1h")]
        ttl: String,
    },
}

/// The TOML file's shape: the same names as the flags, with underscores.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    http_listen: Option<String>,
    announced_ip: Option<String>,
    rtc_listen_ip: Option<String>,
    rtc_ports: Option<String>,
    cores: Option<toml::Value>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    log: Option<String>,
    udp_buffer_bytes: Option<toml::Value>,
    consent_timeout: Option<toml::Value>,
    ice_timeout: Option<toml::Value>,
    dtls_timeout: Option<toml::Value>,
    ws_idle_timeout: Option<toml::Value>,
    max_rooms_per_worker: Option<toml::Value>,
    max_participants_per_room: Option<toml::Value>,
    max_producers_per_participant: Option<toml::Value>,
    max_consumers_per_transport: Option<toml::Value>,
    offer_timeout: Option<toml::Value>,
    ws_write_timeout: Option<toml::Value>,
    max_messages_per_second: Option<toml::Value>,
    max_messages_per_second_per_ip: Option<toml::Value>,
    max_joins_per_minute: Option<toml::Value>,
    max_joins_per_minute_per_ip: Option<toml::Value>,
    metrics_max_rooms: Option<toml::Value>,
    io_backend: Option<String>,
    srtp: Option<String>,
    udp_gso: Option<bool>,
    auth_secret: Option<String>,
}

/// Limits that protect the server; reaching one is a clear error to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Rooms per worker.
    pub rooms_per_worker: usize,
    /// Participants per room.
    pub participants_per_room: usize,
    /// Published tracks per participant.
    pub producers_per_participant: usize,
    /// Received tracks per participant.
    pub consumers_per_transport: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            rooms_per_worker: 1000,
            participants_per_room: 100,
            producers_per_participant: 4,
            consumers_per_transport: 400,
        }
    }
}

/// Rate limits on signaling messages (token buckets whose burst equals the rate).
/// Past one, the message is dropped and the client gets `rate-limited`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Messages per second per WebSocket.
    pub messages_per_second: u32,
    /// Messages per second per client IP address, all its WebSockets together.
    pub messages_per_second_per_ip: u32,
    /// Joins per minute per WebSocket.
    pub joins_per_minute: u32,
    /// Joins per minute per client IP address.
    pub joins_per_minute_per_ip: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            messages_per_second: 20,
            messages_per_second_per_ip: 200,
            joins_per_minute: 10,
            joins_per_minute_per_ip: 600,
        }
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// HTTP listen address.
    pub http_listen: SocketAddr,
    /// ICE candidate address.
    pub announced_ip: IpAddr,
    /// Bind address of room sockets.
    pub rtc_listen_ip: IpAddr,
    /// Lowest room port.
    pub rtc_port_min: u16,
    /// Highest room port.
    pub rtc_port_max: u16,
    /// Worker count.
    pub cores: usize,
    /// HTTPS certificate and key.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Log filter.
    pub log: String,
    /// SO_RCVBUF/SO_SNDBUF of room sockets, bytes.
    pub udp_buffer_bytes: usize,
    /// ICE consent timeout (RFC 7675).
    pub consent_timeout: Duration,
    /// Time to complete ICE.
    pub ice_timeout: Duration,
    /// Time to complete DTLS after ICE.
    pub dtls_timeout: Duration,
    /// WebSocket silence before closing.
    pub ws_idle_timeout: Duration,
    /// Server limits.
    pub limits: Limits,
    /// Signaling rate limits.
    pub rate_limits: RateLimits,
    /// Time a client has to answer an `update`.
    pub offer_timeout: Duration,
    /// Longest one WebSocket write may take.
    pub ws_write_timeout: Duration,
    /// Rooms with their own series in /metrics.
    pub metrics_max_rooms: usize,
    /// The data plane's run loop.
    pub io_backend: sfu_core::worker::IoBackend,
    /// The SRTP implementation.
    pub srtp: sfu_core::proto::srtp::SrtpBackend,
    /// Use UDP GSO when the kernel has it.
    pub udp_gso: bool,
    /// HS256 secret for join tokens; `None`: rooms are open.
    pub auth_secret: Option<String>,
}

/// A configuration error: which field, and why.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {field}: {reason}")]
pub struct ConfigError {
    /// The field (flag name without dashes, as in the TOML file).
    pub field: &'static str,
    /// Why it is invalid.
    pub reason: String,
}

fn err(field: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        field,
        reason: reason.into(),
    }
}

fn value_str(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A whole-number setting from the flag (or its env variable), else the file,
/// else `default`; it must lie in `range`.
fn number(
    field: &'static str,
    flag: Option<String>,
    file: Option<&toml::Value>,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
    unit: &str,
) -> Result<u64, ConfigError> {
    let Some(v) = flag.or(file.map(value_str)) else {
        return Ok(default);
    };
    v.trim()
        .parse::<u64>()
        .ok()
        .filter(|n| range.contains(n))
        .ok_or_else(|| {
            err(
                field,
                format!(
                    "expected a whole number of {unit} in {}..={}, got {v:?}",
                    range.start(),
                    range.end()
                ),
            )
        })
}

/// Parses a duration like `90s`, `30m`, `1h`, `7d` (a bare number is seconds).
pub fn parse_ttl(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 's')) => (&s[..i], 1),
        Some((i, 'm')) => (&s[..i], 60),
        Some((i, 'h')) => (&s[..i], 3600),
        Some((i, 'd')) => (&s[..i], 86400),
        _ => (s, 1),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 90s, 30m, 1h or 7d"))?;
    if n == 0 || n.saturating_mul(mult) > 366 * 86400 {
        return Err(format!("{s:?} must be between 1 s and 366 days"));
    }
    Ok(Duration::from_secs(n * mult))
}

/// Parses a `MIN-MAX` port range.
pub fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("expected MIN-MAX, got {s:?}"))?;
    let min: u16 = a
        .trim()
        .parse()
        .map_err(|_| format!("{a:?} is not a port number"))?;
    let max: u16 = b
        .trim()
        .parse()
        .map_err(|_| format!("{b:?} is not a port number"))?;
    if min == 0 || min > max {
        return Err(format!("expected 1 <= MIN <= MAX <= 65535, got {s:?}"));
    }
    Ok((min, max))
}

impl Config {
    /// A one-worker server on loopback with room ports `rtc_ports` (`MIN-MAX`),
    /// otherwise the defaults: for tests and tools that embed the server.
    ///
    /// Errors: a [`ConfigError`] for a bad port range.
    pub fn loopback(rtc_ports: &str) -> Result<Self, ConfigError> {
        Self::load(Flags {
            rtc_ports: Some(rtc_ports.into()),
            rtc_listen_ip: Some("127.0.0.1".into()),
            cores: Some("1".into()),
            ..Flags::default()
        })
    }

    /// Builds the configuration from flags (with their environment variables)
    /// and the optional TOML file they name.
    ///
    /// Errors: a [`ConfigError`] naming the first invalid field.
    pub fn load(flags: Flags) -> Result<Self, ConfigError> {
        let file = match &flags.config {
            None => FileConfig::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| err("config", format!("cannot read {}: {e}", path.display())))?;
                toml::from_str(&text)
                    .map_err(|e| err("config", format!("{}: {}", path.display(), e.message())))?
            }
        };
        let pick = |flag: Option<String>, file: Option<String>, default: &str| {
            flag.or(file).unwrap_or_else(|| default.to_string())
        };
        let http = pick(flags.http_listen, file.http_listen, "127.0.0.1:8080");
        let http_listen = http.parse().map_err(|_| {
            err(
                "http_listen",
                format!("{http:?} is not an IP:PORT socket address"),
            )
        })?;
        let ann = pick(flags.announced_ip, file.announced_ip, "127.0.0.1");
        let announced_ip: IpAddr = ann
            .parse()
            .map_err(|_| err("announced_ip", format!("{ann:?} is not an IP address")))?;
        if announced_ip.is_unspecified() {
            return Err(err(
                "announced_ip",
                "0.0.0.0/:: cannot be announced; give the address browsers can reach",
            ));
        }
        let bind = pick(flags.rtc_listen_ip, file.rtc_listen_ip, "0.0.0.0");
        let rtc_listen_ip = bind
            .parse()
            .map_err(|_| err("rtc_listen_ip", format!("{bind:?} is not an IP address")))?;
        let ports = pick(flags.rtc_ports, file.rtc_ports, "40000-40999");
        let (rtc_port_min, rtc_port_max) =
            parse_port_range(&ports).map_err(|r| err("rtc_ports", r))?;
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
        let cores = number(
            "cores",
            flags.cores,
            file.cores.as_ref(),
            cpus,
            1..=cpus,
            "workers (the CPUs of this machine)",
        )?;
        let tls = match (
            flags.tls_cert.or(file.tls_cert),
            flags.tls_key.or(file.tls_key),
        ) {
            (None, None) => None,
            (Some(c), Some(k)) => {
                for (field, p) in [("tls_cert", &c), ("tls_key", &k)] {
                    if !p.is_file() {
                        return Err(err(
                            field,
                            format!("{} is not a readable file", p.display()),
                        ));
                    }
                }
                Some((c, k))
            }
            (Some(_), None) => return Err(err("tls_key", "required when tls_cert is set")),
            (None, Some(_)) => return Err(err("tls_cert", "required when tls_key is set")),
        };
        let log = pick(flags.log, file.log, "info");
        tracing_subscriber::EnvFilter::try_new(&log).map_err(|e| err("log", e.to_string()))?;
        let secs = |field, flag, file: &Option<toml::Value>, default, range| {
            number(field, flag, file.as_ref(), default, range, "seconds").map(Duration::from_secs)
        };
        let count = |field, flag, file: &Option<toml::Value>, default: usize, max: u64| {
            number(field, flag, file.as_ref(), default as u64, 1..=max, "items").map(|n| n as usize)
        };
        let d = Limits::default();
        let limits = Limits {
            rooms_per_worker: count(
                "max_rooms_per_worker",
                flags.max_rooms_per_worker,
                &file.max_rooms_per_worker,
                d.rooms_per_worker,
                100_000,
            )?,
            participants_per_room: count(
                "max_participants_per_room",
                flags.max_participants_per_room,
                &file.max_participants_per_room,
                d.participants_per_room,
                10_000,
            )?,
            producers_per_participant: count(
                "max_producers_per_participant",
                flags.max_producers_per_participant,
                &file.max_producers_per_participant,
                d.producers_per_participant,
                64,
            )?,
            consumers_per_transport: count(
                "max_consumers_per_transport",
                flags.max_consumers_per_transport,
                &file.max_consumers_per_transport,
                d.consumers_per_transport,
                100_000,
            )?,
        };
        let rd = RateLimits::default();
        let rate = |field, flag, file: &Option<toml::Value>, default: u32, unit| {
            number(
                field,
                flag,
                file.as_ref(),
                default.into(),
                1..=1_000_000,
                unit,
            )
            .map(|n| n as u32)
        };
        let rate_limits = RateLimits {
            messages_per_second: rate(
                "max_messages_per_second",
                flags.max_messages_per_second,
                &file.max_messages_per_second,
                rd.messages_per_second,
                "messages per second",
            )?,
            messages_per_second_per_ip: rate(
                "max_messages_per_second_per_ip",
                flags.max_messages_per_second_per_ip,
                &file.max_messages_per_second_per_ip,
                rd.messages_per_second_per_ip,
                "messages per second",
            )?,
            joins_per_minute: rate(
                "max_joins_per_minute",
                flags.max_joins_per_minute,
                &file.max_joins_per_minute,
                rd.joins_per_minute,
                "joins per minute",
            )?,
            joins_per_minute_per_ip: rate(
                "max_joins_per_minute_per_ip",
                flags.max_joins_per_minute_per_ip,
                &file.max_joins_per_minute_per_ip,
                rd.joins_per_minute_per_ip,
                "joins per minute",
            )?,
        };
        let offer_timeout = secs(
            "offer_timeout",
            flags.offer_timeout,
            &file.offer_timeout,
            10,
            1..=600,
        )?;
        let ws_write_timeout = secs(
            "ws_write_timeout",
            flags.ws_write_timeout,
            &file.ws_write_timeout,
            10,
            1..=600,
        )?;
        let metrics_max_rooms = count(
            "metrics_max_rooms",
            flags.metrics_max_rooms,
            &file.metrics_max_rooms,
            500,
            100_000,
        )?;
        let backend = pick(flags.io_backend, file.io_backend, "epoll");
        use sfu_core::worker::IoBackend;
        let io_backend = match backend.trim() {
            "auto" => IoBackend::Auto,
            "uring" => IoBackend::Uring,
            "epoll" => IoBackend::Epoll,
            other => {
                return Err(err(
                    "io_backend",
                    format!("expected epoll, uring or auto, got {other:?}"),
                ));
            }
        };
        let srtp_name = pick(flags.srtp, file.srtp, "native");
        let srtp = match srtp_name.trim() {
            "native" => sfu_core::proto::srtp::SrtpBackend::Native,
            "webrtc-srtp" => sfu_core::proto::srtp::SrtpBackend::WebrtcSrtp,
            other => {
                return Err(err(
                    "srtp",
                    format!("expected native or webrtc-srtp, got {other:?}"),
                ));
            }
        };
        let udp_gso = match flags.udp_gso.as_deref().map(str::trim) {
            None => file.udp_gso.unwrap_or(true),
            Some("on" | "true" | "1") => true,
            Some("off" | "false" | "0") => false,
            Some(other) => {
                return Err(err("udp_gso", format!("expected on or off, got {other:?}")));
            }
        };
        let auth_secret = flags.auth_secret.or(file.auth_secret);
        if let Some(s) = &auth_secret
            && s.len() < 32
        {
            return Err(err(
                "auth_secret",
                format!("must be at least 32 characters, got {}", s.len()),
            ));
        }
        Ok(Self {
            http_listen,
            announced_ip,
            rtc_listen_ip,
            rtc_port_min,
            rtc_port_max,
            cores: cores as usize,
            tls,
            log,
            udp_buffer_bytes: number(
                "udp_buffer_bytes",
                flags.udp_buffer_bytes,
                file.udp_buffer_bytes.as_ref(),
                4 << 20,
                64 << 10..=256 << 20,
                "bytes",
            )? as usize,
            consent_timeout: secs(
                "consent_timeout",
                flags.consent_timeout,
                &file.consent_timeout,
                30,
                5..=3600,
            )?,
            ice_timeout: secs(
                "ice_timeout",
                flags.ice_timeout,
                &file.ice_timeout,
                15,
                1..=600,
            )?,
            dtls_timeout: secs(
                "dtls_timeout",
                flags.dtls_timeout,
                &file.dtls_timeout,
                15,
                1..=600,
            )?,
            ws_idle_timeout: secs(
                "ws_idle_timeout",
                flags.ws_idle_timeout,
                &file.ws_idle_timeout,
                60,
                3..=86400,
            )?,
            limits,
            rate_limits,
            offer_timeout,
            ws_write_timeout,
            metrics_max_rooms,
            io_backend,
            srtp,
            udp_gso,
            auth_secret,
        })
    }
}

/// Static settings the hub and its rooms share (made from [`Config`]).
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Address put in ICE candidates.
    pub announced_ip: IpAddr,
    /// Our DTLS certificate fingerprint, `AB:CD:…`.
    pub fingerprint: String,
    /// Server limits.
    pub limits: Limits,
    /// HS256 secret of join tokens; `None`: open rooms.
    pub auth_secret: Option<String>,
    /// Time a client has to answer an `update`.
    pub offer_timeout: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let c = Config::load(Flags::default()).expect("defaults");
        assert_eq!(c.http_listen, "127.0.0.1:8080".parse().expect("addr"));
        assert_eq!((c.rtc_port_min, c.rtc_port_max), (40000, 40999));
        assert!(c.cores >= 1);
    }

    #[test]
    fn errors_name_the_field() {
        let cases: Vec<(Flags, &str)> = vec![
            (
                Flags {
                    rtc_ports: Some("5-1".into()),
                    ..Flags::default()
                },
                "rtc_ports",
            ),
            (
                Flags {
                    rtc_ports: Some("abc".into()),
                    ..Flags::default()
                },
                "rtc_ports",
            ),
            (
                Flags {
                    http_listen: Some("nope".into()),
                    ..Flags::default()
                },
                "http_listen",
            ),
            (
                Flags {
                    announced_ip: Some("0.0.0.0".into()),
                    ..Flags::default()
                },
                "announced_ip",
            ),
            (
                Flags {
                    cores: Some("0".into()),
                    ..Flags::default()
                },
                "cores",
            ),
            (
                Flags {
                    cores: Some("9999".into()),
                    ..Flags::default()
                },
                "cores",
            ),
            (
                Flags {
                    tls_cert: Some("/nonexistent".into()),
                    ..Flags::default()
                },
                "tls_key",
            ),
            (
                Flags {
                    consent_timeout: Some("1".into()),
                    ..Flags::default()
                },
                "consent_timeout",
            ),
            (
                Flags {
                    config: Some("/nonexistent.toml".into()),
                    ..Flags::default()
                },
                "config",
            ),
            (
                Flags {
                    io_backend: Some("dpdk".into()),
                    ..Flags::default()
                },
                "io_backend",
            ),
        ];
        for (flags, field) in cases {
            let e = Config::load(flags).expect_err(field);
            assert_eq!(e.field, field, "{e}");
        }
    }

    #[test]
    fn ttl_parses_units() {
        assert_eq!(parse_ttl("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_ttl("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_ttl("7d"), Ok(Duration::from_secs(7 * 86400)));
        assert_eq!(parse_ttl("42"), Ok(Duration::from_secs(42)));
        assert!(parse_ttl("0s").is_err() && parse_ttl("1y").is_err() && parse_ttl("999d").is_err());
    }

    #[test]
    fn file_values_apply_and_flags_override_them() {
        let dir = std::env::temp_dir().join(format!("sfu-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("sfu.toml");
        std::fs::write(
            &path,
            "rtc_ports = \"41000-41010\"\nannounced_ip = \"127.0.0.2\"\ncores = 1\n",
        )
        .expect("write");
        let c = Config::load(Flags {
            config: Some(path.clone()),
            ..Flags::default()
        })
        .expect("load");
        assert_eq!((c.rtc_port_min, c.rtc_port_max, c.cores), (41000, 41010, 1));
        let c = Config::load(Flags {
            config: Some(path.clone()),
            announced_ip: Some("127.0.0.3".into()),
            ..Flags::default()
        })
        .expect("load");
        assert_eq!(c.announced_ip.to_string(), "127.0.0.3");
        std::fs::write(&path, "bogus_field = 1\n").expect("write");
        let e = Config::load(Flags {
            config: Some(path),
            ..Flags::default()
        })
        .expect_err("unknown field");
        assert!(e.reason.contains("bogus_field"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
