//! Where settings come from: command-line flags (each also an `SFU_*`
//! environment variable, through clap) and the TOML file's shape.

use std::path::PathBuf;

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
    /// RTMP ingest listen address, e.g. 0.0.0.0:1935: encoders push to rtmp://HOST/live/ROOM [default: off].
    #[arg(long, env = "SFU_RTMP_LISTEN")]
    pub rtmp_listen: Option<String>,
    /// Directory recordings are written under (ROOM/ID/ in it) [default: ./recordings].
    #[arg(long, env = "SFU_RECORDINGS_DIR", global = true)]
    pub recordings_dir: Option<PathBuf>,
    /// Mux a recording to WebM/MP4 when it stops: on or off [default: on].
    #[arg(long, env = "SFU_RECORD_MUX")]
    pub record_mux: Option<String>,
    /// Record every room whose name matches this glob (`*`, `?`, `[...]`) from its first
    /// publisher [default: none].
    #[arg(long, env = "SFU_RECORD_ROOMS")]
    pub record_rooms: Option<String>,
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
    /// Viewers (receive-only members, `role: "viewer"`) in one room at most
    /// [default: 10000].
    #[arg(long, env = "SFU_MAX_VIEWERS_PER_ROOM")]
    pub max_viewers_per_room: Option<String>,
    /// Tracks one participant may publish at most [default: 4].
    #[arg(long, env = "SFU_MAX_PRODUCERS_PER_PARTICIPANT")]
    pub max_producers_per_participant: Option<String>,
    /// Tracks one participant may receive at most [default: 400].
    #[arg(long, env = "SFU_MAX_CONSUMERS_PER_TRANSPORT")]
    pub max_consumers_per_transport: Option<String>,
    /// Consumers (outgoing track copies) a worker holds before a room's new viewers go to the
    /// least-loaded worker, the room piped there: one room then uses every core
    /// [default: 2000].
    #[arg(long, env = "SFU_WORKER_CONSUMER_BUDGET")]
    pub worker_consumer_budget: Option<String>,
    /// The directory of a cluster of nodes, `redis://host:port[/db]`: with it, a room may span
    /// nodes and any node takes any join; without it, this node runs alone.
    #[arg(long, env = "SFU_REDIS")]
    pub redis: Option<String>,
    /// This node's id in the directory [default: hostname:http-port].
    #[arg(long, env = "SFU_NODE_ID")]
    pub node_id: Option<String>,
    /// The IP other nodes reach this node's RTC ports on, for relays between nodes [default:
    /// the announced IP].
    #[arg(long, env = "SFU_NODE_ADDRESS")]
    pub node_address: Option<String>,
    /// The base URL clients reach this node on, sent to clients redirected here [default:
    /// http(s)://announced-ip:http-port].
    #[arg(long, env = "SFU_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Consumers this node forwards to before it redirects new joins to a node with room
    /// [default: the worker consumer budget times the cores].
    #[arg(long, env = "SFU_NODE_CAPACITY")]
    pub node_capacity: Option<String>,
    /// Edges one node feeds a room at most; more attach below them, as a tree [default: 4].
    #[arg(long, env = "SFU_RELAY_FANOUT")]
    pub relay_fanout: Option<String>,
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
    /// Data-channel messages per second one participant may send; over it they are dropped
    /// and the sender told once [default: 200].
    #[arg(long, env = "SFU_DATACHANNEL_MAX_MESSAGES_PER_SECOND")]
    pub datachannel_max_messages_per_second: Option<String>,
    /// Data-channel bytes per second one participant may send (a burst of one second's, or
    /// one 256 KiB message) [default: 1048576].
    #[arg(long, env = "SFU_DATACHANNEL_MAX_BYTES_PER_SECOND")]
    pub datachannel_max_bytes_per_second: Option<String>,
    /// Data-plane run loop: epoll (our loop over epoll), uring (our loop over io_uring), or auto
    /// (io_uring when io_uring_setup is allowed, else epoll) [default: epoll, which measured
    /// cheaper per forwarded packet].
    #[arg(long, env = "SFU_IO_BACKEND")]
    pub io_backend: Option<String>,
    /// SRTP implementation: native (our own, in place) or webrtc-srtp (the first one, kept for
    /// comparison) [default: native].
    #[arg(long, env = "SFU_SRTP")]
    pub srtp: Option<String>,
    /// STUN/TURN servers handed to clients in the join reply, as an inline TOML array:
    /// '[{urls = ["turn:turn.example.com:3478"], secret = "S"}]' (secret: coturn's
    /// static-auth-secret, from which each member gets time-limited credentials; or username
    /// and credential) [default: none].
    #[arg(long, env = "SFU_ICE_SERVERS")]
    pub ice_servers: Option<String>,
    /// ICE over TCP (RFC 6544): on answers every participant with a passive TCP host candidate
    /// too (below UDP's priority, so UDP wins whenever it works), for networks that block
    /// UDP [default: on].
    #[arg(long, env = "SFU_ICE_TCP")]
    pub ice_tcp: Option<String>,
    /// The ICE-TCP port of worker 0; worker i listens on PORT+i (0: each on any free port)
    /// [default: 7881].
    #[arg(long, env = "SFU_RTC_TCP_PORT")]
    pub rtc_tcp_port: Option<String>,
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
    /// Check the configuration (flags, environment, the file) and exit: 0 when it is valid,
    /// else 2 with the field and the reason.
    #[arg(long)]
    pub check: bool,
    /// Subcommand (none: run the server).
    #[command(subcommand)]
    pub command: Option<Cmd>,
}

/// Subcommands of `sfu`.
#[derive(Debug, clap::Subcommand)]
pub enum Cmd {
    /// Print a join token (JWT, HS256) for --room and --identity, signed with the auth secret.
    Token {
        /// The room the token admits to (with --admin: the only room it manages
        /// [default: every room]).
        #[arg(long, required_unless_present = "admin", default_value = "")]
        room: String,
        /// Who the holder is (the token's `sub`).
        #[arg(long, default_value = "admin")]
        identity: String,
        /// An admin token (claim `admin: true`) for the recording API, not for joining.
        #[arg(long)]
        admin: bool,
        /// How long it is valid: e.g. 90s, 30m, 1h, 7d [default: 1h].
        #[arg(long, default_value = "1h")]
        ttl: String,
        /// The role it joins as, whatever the join message asks: participant
        /// or viewer [default: the join message decides].
        #[arg(long, value_parser = ["participant", "viewer"])]
        role: Option<String>,
    },
    /// Play a recording (a muxed WebM or MP4 under the server's --recordings-dir) into a
    /// room as a participant; with --stop ID, stop one; with neither, list them.
    Play {
        /// The file, relative to the server's --recordings-dir (e.g. demo/ID/p1.webm).
        file: Option<String>,
        /// The room.
        #[arg(long)]
        room: String,
        /// Start over at the end.
        #[arg(long = "loop")]
        looped: bool,
        /// The participant's display name [default: playback-<n>].
        #[arg(long, default_value = "")]
        name: String,
        /// Stop the playback with this id instead.
        #[arg(long)]
        stop: Option<String>,
        /// The server's base URL.
        #[arg(long, env = "SFU_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        /// An admin token (`sfu token --admin`), when the server has an auth secret.
        #[arg(long, env = "SFU_ADMIN_TOKEN")]
        token: Option<String>,
    },
    /// Work on a recording's directory: mux its tracks to WebM/MP4.
    Recording {
        /// What to do.
        #[command(subcommand)]
        action: crate::recording::api::RecordingCmd,
    },
    /// Start, stop or list the recordings of a room on a running server (its HTTP API).
    Record {
        /// What to do.
        #[command(subcommand)]
        action: crate::recording::api::RecordCmd,
        /// The server's base URL.
        #[arg(
            long,
            env = "SFU_URL",
            default_value = "http://127.0.0.1:8080",
            global = true
        )]
        url: String,
        /// An admin token (`sfu token --admin`), when the server has an auth secret.
        #[arg(long, env = "SFU_ADMIN_TOKEN", global = true)]
        token: Option<String>,
    },
}

/// The TOML file's shape: the same names as the flags, with underscores.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    pub(super) http_listen: Option<String>,
    pub(super) rtmp_listen: Option<String>,
    pub(super) recordings_dir: Option<PathBuf>,
    pub(super) record_mux: Option<bool>,
    pub(super) record_rooms: Option<String>,
    pub(super) announced_ip: Option<String>,
    pub(super) rtc_listen_ip: Option<String>,
    pub(super) rtc_ports: Option<String>,
    pub(super) cores: Option<toml::Value>,
    pub(super) tls_cert: Option<PathBuf>,
    pub(super) tls_key: Option<PathBuf>,
    pub(super) log: Option<String>,
    pub(super) udp_buffer_bytes: Option<toml::Value>,
    pub(super) consent_timeout: Option<toml::Value>,
    pub(super) ice_timeout: Option<toml::Value>,
    pub(super) dtls_timeout: Option<toml::Value>,
    pub(super) ws_idle_timeout: Option<toml::Value>,
    pub(super) max_rooms_per_worker: Option<toml::Value>,
    pub(super) max_participants_per_room: Option<toml::Value>,
    pub(super) max_viewers_per_room: Option<toml::Value>,
    pub(super) max_producers_per_participant: Option<toml::Value>,
    pub(super) max_consumers_per_transport: Option<toml::Value>,
    pub(super) worker_consumer_budget: Option<toml::Value>,
    pub(super) redis: Option<toml::Value>,
    pub(super) node_id: Option<toml::Value>,
    pub(super) node_address: Option<toml::Value>,
    pub(super) public_url: Option<toml::Value>,
    pub(super) node_capacity: Option<toml::Value>,
    pub(super) relay_fanout: Option<toml::Value>,
    pub(super) offer_timeout: Option<toml::Value>,
    pub(super) ws_write_timeout: Option<toml::Value>,
    pub(super) max_messages_per_second: Option<toml::Value>,
    pub(super) max_messages_per_second_per_ip: Option<toml::Value>,
    pub(super) max_joins_per_minute: Option<toml::Value>,
    pub(super) max_joins_per_minute_per_ip: Option<toml::Value>,
    pub(super) datachannel_max_messages_per_second: Option<toml::Value>,
    pub(super) datachannel_max_bytes_per_second: Option<toml::Value>,
    pub(super) metrics_max_rooms: Option<toml::Value>,
    pub(super) io_backend: Option<String>,
    pub(super) srtp: Option<String>,
    pub(super) udp_gso: Option<bool>,
    pub(super) ice_tcp: Option<bool>,
    pub(super) ice_servers: Option<Vec<crate::ice_servers::IceServerConfig>>,
    pub(super) rtc_tcp_port: Option<toml::Value>,
    pub(super) auth_secret: Option<String>,
}
