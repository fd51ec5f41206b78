//! Merging the sources (defaults < TOML file < environment < flags) and
//! validating every value; each error names its field.

use super::*;

/// A configuration error: which field, and why.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {field}: {reason}")]
pub struct ConfigError {
    /// The field (flag name without dashes, as in the TOML file).
    pub field: &'static str,
    /// Why it is invalid.
    pub reason: String,
}

pub(super) fn err(field: &'static str, reason: impl Into<String>) -> ConfigError {
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
pub(super) fn number(
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
    /// A one-worker server on loopback with room ports `rtc_ports` (`MIN-MAX`)
    /// and its ICE-TCP listener on any free port, otherwise the defaults:
    /// for tests and tools that embed the server (several may run at once).
    ///
    /// Errors: a [`ConfigError`] for a bad port range.
    pub fn loopback(rtc_ports: &str) -> Result<Self, ConfigError> {
        Self::load(Flags {
            rtc_ports: Some(rtc_ports.into()),
            rtc_listen_ip: Some("127.0.0.1".into()),
            cores: Some("1".into()),
            rtc_tcp_port: Some("0".into()),
            ..Flags::default()
        })
    }

    /// Builds the configuration from flags (with their environment variables)
    /// and the optional TOML file they name.
    ///
    /// Errors: a [`ConfigError`] naming the first invalid field.
    pub fn load(mut flags: Flags) -> Result<Self, ConfigError> {
        let mut file: FileConfig = match &flags.config {
            None => FileConfig::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| err("config", format!("cannot read {}: {e}", path.display())))?;
                toml::from_str(&text)
                    .map_err(|e| err("config", format!("{}: {}", path.display(), e.message())))?
            }
        };
        let cluster_input = ClusterInput::take(&mut flags, &mut file);
        let recording = recording(&mut flags, &mut file)?;
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
        let rtmp_listen = match flags.rtmp_listen.or(file.rtmp_listen) {
            None => None,
            Some(a) if a == "off" => None,
            Some(a) => Some(a.parse().map_err(|_| {
                err(
                    "rtmp_listen",
                    format!("{a:?} is not an IP:PORT socket address (or off)"),
                )
            })?),
        };
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
            viewers_per_room: count(
                "max_viewers_per_room",
                flags.max_viewers_per_room,
                &file.max_viewers_per_room,
                d.viewers_per_room,
                1_000_000,
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
            worker_consumer_budget: count(
                "worker_consumer_budget",
                flags.worker_consumer_budget,
                &file.worker_consumer_budget,
                d.worker_consumer_budget,
                100_000_000,
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
        let dd = DataChannelLimits::default();
        let data_channels = DataChannelLimits {
            max_messages_per_sec: number(
                "datachannel_max_messages_per_second",
                flags.datachannel_max_messages_per_second,
                file.datachannel_max_messages_per_second.as_ref(),
                dd.max_messages_per_sec.into(),
                1..=1_000_000,
                "messages per second",
            )? as u32,
            max_bytes_per_sec: number(
                "datachannel_max_bytes_per_second",
                flags.datachannel_max_bytes_per_second,
                file.datachannel_max_bytes_per_second.as_ref(),
                dd.max_bytes_per_sec,
                1..=10_000_000_000,
                "bytes per second",
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
        let on_off = |field, flag: Option<String>, file: Option<bool>| match flag
            .as_deref()
            .map(str::trim)
        {
            None => Ok(file.unwrap_or(true)),
            Some("on" | "true" | "1") => Ok(true),
            Some("off" | "false" | "0") => Ok(false),
            Some(other) => Err(err(field, format!("expected on or off, got {other:?}"))),
        };
        let udp_gso = on_off("udp_gso", flags.udp_gso, file.udp_gso)?;
        let ice_tcp_on = on_off("ice_tcp", flags.ice_tcp, file.ice_tcp)?;
        let tcp_port = number(
            "rtc_tcp_port",
            flags.rtc_tcp_port,
            file.rtc_tcp_port.as_ref(),
            7881,
            0..=u64::from(u16::MAX) + 1 - cores,
            "a TCP port (with one more per worker after it; 0: any free one each)",
        )? as u16;
        let ice_tcp = ice_tcp_on.then_some(tcp_port);
        let ice_servers = match flags.ice_servers.as_deref() {
            Some(v) => crate::ice_servers::parse_flag(v).map_err(|e| err("ice_servers", e))?,
            None => file.ice_servers.unwrap_or_default(),
        };
        crate::ice_servers::validate(&ice_servers).map_err(|e| err("ice_servers", e))?;
        let auth_secret = flags.auth_secret.or(file.auth_secret);
        if let Some(s) = &auth_secret
            && s.len() < 32
        {
            return Err(err(
                "auth_secret",
                format!("must be at least 32 characters, got {}", s.len()),
            ));
        }
        let cluster = cluster_input.build(
            announced_ip,
            http_listen,
            tls.is_some(),
            (limits.worker_consumer_budget as u64).saturating_mul(cores),
        )?;
        Ok(Self {
            cluster,
            http_listen,
            rtmp_listen,
            recording,
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
            data_channels,
            ice_servers,
            offer_timeout,
            ws_write_timeout,
            metrics_max_rooms,
            io_backend,
            srtp,
            udp_gso,
            ice_tcp,
            auth_secret,
        })
    }
}

/// `--recordings-dir`, `--record-mux` and `--record-rooms`.
fn recording(
    flags: &mut Flags,
    file: &mut FileConfig,
) -> Result<crate::recording::RecordingConfig, ConfigError> {
    let mut r = crate::recording::RecordingConfig::default();
    if let Some(d) = flags.recordings_dir.take().or(file.recordings_dir.take()) {
        r.dir = d;
    }
    r.mux = match flags.record_mux.as_deref().map(str::trim) {
        None => file.record_mux.unwrap_or(true),
        Some("on" | "true" | "1") => true,
        Some("off" | "false" | "0") => false,
        Some(other) => {
            return Err(err(
                "record_mux",
                format!("expected on or off, got {other:?}"),
            ));
        }
    };
    if let Some(g) = flags.record_rooms.take().or(file.record_rooms.take()) {
        r.rooms = Some(
            glob::Pattern::new(&g)
                .map_err(|e| err("record_rooms", format!("{g:?} is not a glob pattern: {e}")))?,
        );
    }
    Ok(r)
}
