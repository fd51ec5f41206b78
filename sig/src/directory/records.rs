//! What the directory holds, and the checks every record passes before a
//! node uses it: a record that is not JSON of the right shape, or whose
//! values are out of bounds (an id with odd characters, an address that is
//! not an IP, a port of 0), is refused with [`RecordError`], logged by the
//! caller and ignored: a corrupt or foreign record never crashes a node.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

/// The most bytes of one record or message a node reads from Redis.
pub const MAX_RECORD: usize = 64 * 1024;

/// Why a record from the directory was not used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    /// Larger than [`MAX_RECORD`].
    #[error("record of {0} bytes (at most {MAX_RECORD})")]
    TooLarge(usize),
    /// Not JSON of the expected shape.
    #[error("not a record of ours: {0}")]
    Shape(String),
    /// A field out of bounds.
    #[error("bad {field}: {why}")]
    Field {
        /// The field.
        field: &'static str,
        /// What is wrong.
        why: &'static str,
    },
}

/// Checks a node id: 1–100 characters of `[A-Za-z0-9._:-]` (a hostname and
/// a port, by default).
///
/// Errors: [`RecordError::Field`].
pub fn validate_node_id(id: &str) -> Result<(), RecordError> {
    let ok = (1..=100).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(RecordError::Field {
            field: "node id",
            why: "1-100 characters of A-Z a-z 0-9 . _ : -",
        })
    }
}

/// One node as the registry shows it (`sfu:node:{id}`, JSON), refreshed by
/// its heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeRecord {
    /// The node's id (`--node-id`).
    pub id: String,
    /// The IP other nodes reach its Routers' UDP sockets on
    /// (`--node-address`): a relay goes from one room's port to another's.
    pub address: IpAddr,
    /// The base URL its clients join on (`http://host:port`), for
    /// `redirect`s to it.
    pub url: String,
    /// Its data-plane workers.
    pub cores: u16,
    /// Consumers it forwards to now (its load).
    pub consumers: u64,
    /// The consumers it takes at most before it redirects joins.
    pub capacity: u64,
    /// Rooms it holds (as origin or edge).
    pub rooms: u32,
}

impl NodeRecord {
    /// Parses and checks a record read from Redis.
    ///
    /// Errors: [`RecordError`].
    pub fn parse(bytes: &[u8]) -> Result<Self, RecordError> {
        let r: Self = parse_json(bytes)?;
        r.validate()?;
        Ok(r)
    }

    /// Checks the fields' bounds.
    ///
    /// Errors: [`RecordError::Field`].
    pub fn validate(&self) -> Result<(), RecordError> {
        validate_node_id(&self.id)?;
        let bad = |field, why| Err(RecordError::Field { field, why });
        if self.address.is_unspecified() || self.address.is_multicast() {
            return bad("address", "not a unicast address");
        }
        let url_ok = self.url.len() <= 200
            && (self.url.starts_with("http://") || self.url.starts_with("https://"))
            && !self
                .url
                .chars()
                .any(|c| c.is_control() || c.is_whitespace());
        if !url_ok {
            return bad("url", "an http(s) URL of at most 200 characters");
        }
        if self.cores == 0 || self.cores > 4096 {
            return bad("cores", "1-4096");
        }
        Ok(())
    }

    /// Whether it takes `more` consumers more.
    pub fn has_room_for(&self, more: u64) -> bool {
        self.consumers.saturating_add(more) <= self.capacity
    }
}

/// A room's place in the cluster (`sfu:room:{name}`): its origin node and
/// each edge with the node that feeds it (its parent in the relay tree).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomRecord {
    /// The node holding the room's origin, if any.
    pub origin: Option<String>,
    /// (edge, parent) pairs.
    pub edges: Vec<(String, String)>,
}

impl RoomRecord {
    /// Builds it from the room hash's fields (`origin`, `edge:{node}` =
    /// parent), skipping (and returning) fields that do not check out.
    pub fn from_fields(fields: Vec<(String, String)>) -> (Self, Vec<String>) {
        let mut r = Self::default();
        let mut bad = Vec::new();
        for (k, v) in fields {
            if k == "origin" && validate_node_id(&v).is_ok() {
                r.origin = Some(v);
            } else if let Some(edge) = k.strip_prefix("edge:")
                && validate_node_id(edge).is_ok()
                && validate_node_id(&v).is_ok()
                && edge != v
            {
                r.edges.push((edge.to_owned(), v));
            } else {
                bad.push(k);
            }
        }
        r.edges.sort();
        (r, bad)
    }

    /// The nodes fed by `node`.
    pub fn children<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.edges
            .iter()
            .filter(move |(_, p)| p == node)
            .map(|(e, _)| e.as_str())
    }

    /// `node`'s parent, when it is an edge.
    pub fn parent(&self, node: &str) -> Option<&str> {
        self.edges
            .iter()
            .find(|(e, _)| e == node)
            .map(|(_, p)| p.as_str())
    }

    /// Where a new edge attaches: the origin while it feeds fewer than
    /// `fanout` edges, else the edge nearest the origin (then by id) that
    /// does, so the relays form a tree of at most `fanout` children per
    /// node. `None` when the room has no origin.
    pub fn parent_for_new_edge(&self, fanout: usize) -> Option<&str> {
        let origin = self.origin.as_deref()?;
        let mut level = vec![origin];
        let mut seen = 0;
        while !level.is_empty() && seen <= self.edges.len() {
            let mut next = Vec::new();
            for n in &level {
                if self.children(n).count() < fanout.max(1) {
                    return Some(n);
                }
                next.extend(self.children(n));
            }
            seen += next.len();
            level = next;
        }
        None
    }
}

/// Parses JSON of at most [`MAX_RECORD`] bytes.
///
/// Errors: [`RecordError::TooLarge`], [`RecordError::Shape`].
pub fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, RecordError> {
    if bytes.len() > MAX_RECORD {
        return Err(RecordError::TooLarge(bytes.len()));
    }
    serde_json::from_slice(bytes).map_err(|e| RecordError::Shape(e.to_string()))
}

/// A relay address a node claims: must be on `node`'s registered address.
///
/// Errors: [`RecordError::Field`] when the IP differs or the port is 0.
pub fn check_relay_addr(node: &NodeRecord, addr: SocketAddr) -> Result<(), RecordError> {
    if addr.ip() != node.address || addr.port() == 0 {
        return Err(RecordError::Field {
            field: "relay address",
            why: "not on the node's registered address",
        });
    }
    Ok(())
}

/// A valid record of node `id` on 127.0.0.1, for tests.
#[cfg(test)]
pub(super) fn sample_node(id: &str) -> NodeRecord {
    NodeRecord {
        id: id.into(),
        address: std::net::Ipv4Addr::LOCALHOST.into(),
        url: "http://127.0.0.1:8080".into(),
        cores: 2,
        consumers: 10,
        capacity: 1000,
        rooms: 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str) -> NodeRecord {
        sample_node(id)
    }

    #[test]
    fn a_node_record_round_trips_and_bad_ones_are_refused() {
        let n = node("a:8080");
        let json = serde_json::to_vec(&n).expect("json");
        assert_eq!(NodeRecord::parse(&json), Ok(n.clone()));
        assert!(matches!(
            NodeRecord::parse(b"{\"id\":1}"),
            Err(RecordError::Shape(_))
        ));
        assert!(matches!(
            NodeRecord::parse(b"\xff\xfe"),
            Err(RecordError::Shape(_))
        ));
        assert!(matches!(
            NodeRecord::parse(&vec![b' '; MAX_RECORD + 1]),
            Err(RecordError::TooLarge(_))
        ));
        for bad in [
            NodeRecord {
                id: "a b".into(),
                ..n.clone()
            },
            NodeRecord {
                address: "0.0.0.0".parse().expect("ip"),
                ..n.clone()
            },
            NodeRecord {
                url: "javascript:alert(1)".into(),
                ..n.clone()
            },
            NodeRecord { cores: 0, ..n },
        ] {
            let json = serde_json::to_vec(&bad).expect("json");
            assert!(
                matches!(NodeRecord::parse(&json), Err(RecordError::Field { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_room_record_skips_bad_fields_and_places_edges_as_a_tree() {
        let f = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        let (r, bad) = RoomRecord::from_fields(vec![
            f("origin", "a"),
            f("edge:b", "a"),
            f("edge:c", "a"),
            f("edge:d", "b"),
            f("edge:x y", "a"),
            f("edge:e", "e"),
            f("junk", "1"),
        ]);
        assert_eq!(bad, ["edge:x y", "edge:e", "junk"]);
        assert_eq!(r.origin.as_deref(), Some("a"));
        assert_eq!(r.parent("d"), Some("b"));
        assert_eq!(r.children("a").collect::<Vec<_>>(), ["b", "c"]);
        assert_eq!(r.parent_for_new_edge(3), Some("a"));
        // a feeds 2 (full at 2): b feeds 1, so b.
        assert_eq!(r.parent_for_new_edge(2), Some("b"));
        // With one child each: a→b, b→d, so c.
        assert_eq!(r.parent_for_new_edge(1), Some("c"));
        assert_eq!(RoomRecord::default().parent_for_new_edge(2), None);
    }

    #[test]
    fn a_relay_address_must_be_on_the_nodes_own_address() {
        let n = node("a");
        assert!(check_relay_addr(&n, "127.0.0.1:40000".parse().expect("addr")).is_ok());
        assert!(check_relay_addr(&n, "127.0.0.2:40000".parse().expect("addr")).is_err());
        assert!(check_relay_addr(&n, "127.0.0.1:0".parse().expect("addr")).is_err());
    }
}
