//! Configuration: defaults, overridden by a TOML file (`--config FILE`),
//! overridden by `SFU_*` environment variables, overridden by flags.
//!
//! Every error names the field and the reason; nothing here panics.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

mod cluster;
mod flags;
mod load;
#[cfg(test)]
mod tests;

pub use cluster::ClusterConfig;
use cluster::ClusterInput;
use flags::FileConfig;
pub use flags::{Cmd, Flags};
pub use load::{ConfigError, parse_port_range, parse_ttl};

/// Limits that protect the server; reaching one is a clear error to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Rooms per worker.
    pub rooms_per_worker: usize,
    /// Participants (publishers) per room.
    pub participants_per_room: usize,
    /// Viewers (receive-only members) per room.
    pub viewers_per_room: usize,
    /// Published tracks per participant.
    pub producers_per_participant: usize,
    /// Received tracks per participant.
    pub consumers_per_transport: usize,
    /// Consumers a worker holds before a room's new viewers go to the
    /// least-loaded worker, the room spread there by a pipe.
    pub worker_consumer_budget: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            rooms_per_worker: 1000,
            participants_per_room: 100,
            viewers_per_room: 10_000,
            producers_per_participant: 4,
            consumers_per_transport: 400,
            worker_consumer_budget: 2000,
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

/// Data-channel limits per participant (RFC 8831 relay,
/// `sfu_core::router::data_channels`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataChannelLimits {
    /// Messages per second one participant may send.
    pub max_messages_per_sec: u32,
    /// Bytes per second one participant may send.
    pub max_bytes_per_sec: u64,
}

impl Default for DataChannelLimits {
    fn default() -> Self {
        let d = sfu_core::router::DataChannelConfig::default();
        Self {
            max_messages_per_sec: d.max_messages_per_sec,
            max_bytes_per_sec: d.max_bytes_per_sec,
        }
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// HTTP listen address.
    pub http_listen: SocketAddr,
    /// RTMP ingest listen address (`None`: no RTMP).
    pub rtmp_listen: Option<SocketAddr>,
    /// Recording settings.
    pub recording: crate::recording::RecordingConfig,
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
    /// Data-channel limits.
    pub data_channels: DataChannelLimits,
    /// STUN/TURN servers for clients (in the join reply).
    pub ice_servers: Vec<crate::ice_servers::IceServerConfig>,
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
    /// ICE-TCP (RFC 6544): worker 0's listening port (worker i's is one
    /// more per i), or `None` for UDP only.
    pub ice_tcp: Option<u16>,
    /// HS256 secret for join tokens; `None`: rooms are open.
    pub auth_secret: Option<String>,
    /// This node's place in a cluster (`--redis`); `None`: it runs alone.
    pub cluster: Option<ClusterConfig>,
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
    /// Recording settings, and the server's recordings.
    pub recordings: std::sync::Arc<crate::recording::Recordings>,
    /// Data-channel limits (for the error a sender over them gets).
    pub data_channels: DataChannelLimits,
    /// STUN/TURN servers handed to each member in its join reply.
    pub ice_servers: Vec<crate::ice_servers::IceServerConfig>,
}
