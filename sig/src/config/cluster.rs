//! The settings of a node in a cluster (`--redis` and what goes with it):
//! absent, the server runs alone.

use std::net::{IpAddr, SocketAddr};

use super::ConfigError;
use super::flags::{FileConfig, Flags};
use super::load::{err, number};
use crate::directory::records::validate_node_id;

/// A node's place in a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// The directory's URL (`redis://host:port[/db]`).
    pub redis: String,
    /// This node's id in the directory (default: hostname:port).
    pub node_id: String,
    /// The IP other nodes reach this node's Routers' UDP sockets on (the
    /// relays between nodes): `--node-address`, default the announced IP.
    pub node_address: IpAddr,
    /// The base URL clients reach this node's HTTP on, for `redirect`s to
    /// it (`--public-url`, default `http(s)://{announced_ip}:{port}`).
    pub public_url: String,
    /// Consumers this node takes before it sends new joins elsewhere
    /// (`--node-capacity`).
    pub capacity: u64,
    /// Edges one node feeds at most (`--relay-fanout`): more edges
    /// attach below them, as a tree.
    pub fanout: usize,
    /// Whether `public_url` (and `node_id`) were derived from the HTTP
    /// port rather than given: [`ClusterConfig::on_port`] follows the port
    /// actually bound.
    pub derived: (bool, bool),
}

impl ClusterConfig {
    /// This configuration for a server whose HTTP listener is on `port`:
    /// the derived `public_url` and `node_id` name that port.
    pub fn on_port(mut self, port: u16) -> Self {
        let (url, id) = self.derived;
        if url && let Some(i) = self.public_url.rfind(':') {
            self.public_url = format!("{}:{port}", &self.public_url[..i]);
        }
        if id && let Some(i) = self.node_id.rfind(':') {
            self.node_id = format!("{}:{port}", &self.node_id[..i]);
        }
        self
    }
}

/// The flags and file fields of a cluster, taken out of [`Flags`] and
/// [`FileConfig`] by the loader.
pub(super) struct ClusterInput {
    pub(super) redis: Option<String>,
    pub(super) node_id: Option<String>,
    pub(super) node_address: Option<String>,
    pub(super) public_url: Option<String>,
    pub(super) node_capacity: Option<String>,
    pub(super) relay_fanout: Option<String>,
}

impl ClusterInput {
    /// The cluster fields of the flags, each else the file's.
    pub(super) fn take(flags: &mut Flags, file: &mut FileConfig) -> Self {
        let f = |a: &mut Option<String>, b: &mut Option<toml::Value>| {
            a.take().or_else(|| {
                b.take().map(|v| match v {
                    toml::Value::String(s) => s,
                    other => other.to_string(),
                })
            })
        };
        Self {
            redis: f(&mut flags.redis, &mut file.redis),
            node_id: f(&mut flags.node_id, &mut file.node_id),
            node_address: f(&mut flags.node_address, &mut file.node_address),
            public_url: f(&mut flags.public_url, &mut file.public_url),
            node_capacity: f(&mut flags.node_capacity, &mut file.node_capacity),
            relay_fanout: f(&mut flags.relay_fanout, &mut file.relay_fanout),
        }
    }

    /// Checks them. `None` without `redis`.
    ///
    /// Errors: a [`ConfigError`] naming the field.
    pub(super) fn build(
        self,
        announced_ip: IpAddr,
        http_listen: SocketAddr,
        tls: bool,
        default_capacity: u64,
    ) -> Result<Option<ClusterConfig>, ConfigError> {
        let Some(redis) = self.redis else {
            for (field, set) in [
                ("node_id", self.node_id.is_some()),
                ("node_address", self.node_address.is_some()),
                ("public_url", self.public_url.is_some()),
            ] {
                if set {
                    return Err(err(field, "needs redis (a node alone has no cluster)"));
                }
            }
            return Ok(None);
        };
        let redis = redis.trim().to_owned();
        if !(redis.starts_with("redis://")
            || redis.starts_with("rediss://")
            || redis.starts_with("redis+unix://"))
            || redis::Client::open(redis.as_str()).is_err()
        {
            return Err(err(
                "redis",
                format!("expected redis://host:port[/db], got {redis:?}"),
            ));
        }
        let derived = (self.public_url.is_none(), self.node_id.is_none());
        let node_id = match self.node_id {
            Some(id) => id.trim().to_owned(),
            None => format!("{}:{}", hostname(), http_listen.port()),
        };
        validate_node_id(&node_id).map_err(|e| err("node_id", e.to_string()))?;
        let node_address = match self.node_address {
            None => announced_ip,
            Some(a) => a
                .trim()
                .parse()
                .ok()
                .filter(|ip: &IpAddr| !ip.is_unspecified() && !ip.is_multicast())
                .ok_or_else(|| err("node_address", format!("{a:?} is not a unicast IP")))?,
        };
        let public_url = match self.public_url {
            Some(u) => u.trim().trim_end_matches('/').to_owned(),
            None => {
                let scheme = if tls { "https" } else { "http" };
                match announced_ip {
                    IpAddr::V6(ip) => format!("{scheme}://[{ip}]:{}", http_listen.port()),
                    IpAddr::V4(ip) => format!("{scheme}://{ip}:{}", http_listen.port()),
                }
            }
        };
        if !(public_url.starts_with("http://") || public_url.starts_with("https://"))
            || public_url.len() > 200
            || public_url
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(err(
                "public_url",
                format!("expected an http(s) URL, got {public_url:?}"),
            ));
        }
        let capacity = number(
            "node_capacity",
            self.node_capacity,
            None,
            default_capacity,
            1..=100_000_000,
            "consumers",
        )?;
        let fanout = number("relay_fanout", self.relay_fanout, None, 4, 1..=64, "edges")? as usize;
        Ok(Some(ClusterConfig {
            redis,
            node_id,
            node_address,
            public_url,
            capacity,
            fanout,
            derived,
        }))
    }
}

/// This machine's hostname, or `localhost` when it has none to give.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| validate_node_id(h).is_ok())
        .unwrap_or_else(|| "localhost".into())
}
