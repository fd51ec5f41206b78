//! What nodes tell each other through the directory's pub/sub
//! (`sfu:inbox:{node}`), as JSON. Every message is checked
//! ([`NodeMsg::parse`]) before a room sees it: sizes, ids, codecs and
//! SSRCs are bounded, so a corrupt or foreign message is dropped and
//! logged, never trusted.
//!
//! A relay between two nodes' Routers of a room opens in two steps: the
//! node that attaches (an edge) sends [`NodeMsg::RelayOpen`] with its
//! Router's address, the other answers [`NodeMsg::RelayReady`] with its
//! own (or [`NodeMsg::RelayRefused`]). Then each side announces the tracks
//! it pipes through the relay ([`NodeMsg::Tracks`]): its own publishers'
//! and those it gets from its other relays, so that tracks flow along the
//! tree of relays to every node of the room.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use sfu_core::router::MediaKind;

use crate::directory::records::{RecordError, parse_json, validate_node_id};
use crate::protocol::validate_name;
use crate::sdp::Codec;

/// Tracks one message announces at most.
pub const MAX_TRACKS: usize = 256;

/// A message from one node to another about room `room`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum NodeMsg {
    /// Open a relay: `from`'s Router of `room` is at `addr`.
    RelayOpen {
        /// The room.
        room: String,
        /// The sending node.
        from: String,
        /// Fresh per relay (hex), the same on both ends: the relay's keys
        /// are derived from the node pair's secret and it.
        relay_id: String,
        /// Its Router's UDP address.
        addr: SocketAddr,
    },
    /// The relay is connected on `from`'s side, its Router at `addr`.
    RelayReady {
        /// The room.
        room: String,
        /// The sending node.
        from: String,
        /// The relay's id, as in the `relay-open`.
        relay_id: String,
        /// Its Router's UDP address.
        addr: SocketAddr,
    },
    /// No relay: `from` does not hold the room, or could not open one.
    RelayRefused {
        /// The room.
        room: String,
        /// The sending node.
        from: String,
        /// The relay's id.
        relay_id: String,
        /// Why.
        reason: String,
    },
    /// Tracks `from` now pipes through the relay (`added`), or no longer
    /// (`removed`, by track id), and publishers gone (`left`, by id).
    Tracks {
        /// The room.
        room: String,
        /// The sending node.
        from: String,
        /// The relay's id.
        relay_id: String,
        /// New tracks.
        #[serde(default)]
        added: Vec<WireTrack>,
        /// Track ids no longer sent.
        #[serde(default)]
        removed: Vec<String>,
        /// Publisher ids that left the room.
        #[serde(default)]
        left: Vec<String>,
    },
    /// `from` closes its end of the relay (it leaves the room).
    RelayClose {
        /// The room.
        room: String,
        /// The sending node.
        from: String,
        /// The relay's id.
        relay_id: String,
    },
    /// A publisher's media state changed (`media-state` of its client).
    Publisher {
        /// The room.
        room: String,
        /// The sending node.
        from: String,
        /// The relay's id.
        relay_id: String,
        /// The publisher, with its state.
        publisher: WirePublisher,
    },
    /// Viewers of the room on `from`'s side of the relay (its own and those
    /// of the nodes behind it), for everyone's viewer count.
    Viewers {
        /// The room.
        room: String,
        /// The sending node.
        from: String,
        /// The relay's id.
        relay_id: String,
        /// How many.
        count: u64,
    },
}

/// A publisher as other nodes see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WirePublisher {
    /// Unique in the cluster: `{node}/p{pid}` of the node it joined.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Its microphone is muted.
    #[serde(default)]
    pub audio_muted: bool,
    /// Its camera is off.
    #[serde(default)]
    pub video_off: bool,
}

/// A track's kind on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WireKind {
    /// Audio.
    Audio,
    /// Video.
    Video,
}

impl From<MediaKind> for WireKind {
    fn from(k: MediaKind) -> Self {
        match k {
            MediaKind::Audio => Self::Audio,
            MediaKind::Video => Self::Video,
        }
    }
}

impl From<WireKind> for MediaKind {
    fn from(k: WireKind) -> Self {
        match k {
            WireKind::Audio => Self::Audio,
            WireKind::Video => Self::Video,
        }
    }
}

/// One track piped through a relay: what the far side needs to make its
/// mirror producer and offer the track to its subscribers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireTrack {
    /// Unique in the cluster: `{node}/{producer}` of the node it was
    /// published on.
    pub id: String,
    /// Its publisher.
    pub publisher: WirePublisher,
    /// Audio or video.
    pub kind: WireKind,
    /// Its codec (payload type as the publisher sends it).
    pub codec: Codec,
    /// A screen share.
    pub screen: bool,
    /// Simulcast RIDs, in the producer's order (empty: one encoding).
    pub rids: Vec<String>,
    /// The SSRC of each encoding on the relay.
    pub ssrcs: Vec<u32>,
    /// Its publisher cannot be asked for keyframes (RTMP): the mirror
    /// keeps its GOP for the consumers that start (absent: false).
    #[serde(default)]
    pub keep_gop: bool,
}

impl NodeMsg {
    /// Parses and checks a message read from the directory.
    ///
    /// Errors: [`RecordError`] naming what does not check out.
    pub fn parse(bytes: &[u8]) -> Result<Self, RecordError> {
        let m: Self = parse_json(bytes)?;
        m.validate()?;
        Ok(m)
    }

    /// The room it is about.
    pub fn room(&self) -> &str {
        match self {
            Self::RelayOpen { room, .. }
            | Self::RelayReady { room, .. }
            | Self::RelayRefused { room, .. }
            | Self::Tracks { room, .. }
            | Self::RelayClose { room, .. }
            | Self::Publisher { room, .. }
            | Self::Viewers { room, .. } => room,
        }
    }

    /// The node that sent it.
    pub fn from(&self) -> &str {
        match self {
            Self::RelayOpen { from, .. }
            | Self::RelayReady { from, .. }
            | Self::RelayRefused { from, .. }
            | Self::Tracks { from, .. }
            | Self::RelayClose { from, .. }
            | Self::Publisher { from, .. }
            | Self::Viewers { from, .. } => from,
        }
    }

    /// The relay it is about.
    pub fn relay_id(&self) -> &str {
        match self {
            Self::RelayOpen { relay_id, .. }
            | Self::RelayReady { relay_id, .. }
            | Self::RelayRefused { relay_id, .. }
            | Self::Tracks { relay_id, .. }
            | Self::RelayClose { relay_id, .. }
            | Self::Publisher { relay_id, .. }
            | Self::Viewers { relay_id, .. } => relay_id,
        }
    }

    fn validate(&self) -> Result<(), RecordError> {
        let bad = |field, why| RecordError::Field { field, why };
        validate_name("room", self.room()).map_err(|_| bad("room", "not a room name"))?;
        validate_node_id(self.from())?;
        let rid = self.relay_id();
        if !(16..=64).contains(&rid.len()) || !rid.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("relay_id", "16-64 hex digits"));
        }
        match self {
            Self::RelayOpen { addr, .. } | Self::RelayReady { addr, .. } if addr.port() == 0 => {
                Err(bad("addr", "port 0"))
            }
            Self::RelayRefused { reason, .. } if reason.len() > 500 => {
                Err(bad("reason", "at most 500 bytes"))
            }
            Self::Publisher { publisher, .. } => publisher.validate(),
            Self::Viewers { count, .. } if *count > 100_000_000 => {
                Err(bad("count", "at most 100,000,000"))
            }
            Self::Tracks {
                added,
                removed,
                left,
                ..
            } => {
                if added.len() + removed.len() + left.len() > MAX_TRACKS {
                    return Err(bad("tracks", "too many in one message"));
                }
                added.iter().try_for_each(WireTrack::validate)?;
                if !removed.iter().chain(left).all(|id| global_id_ok(id)) {
                    return Err(bad("id", "not a node/id pair"));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// `{node}/{local}`: a node id, a slash, 1–24 of `[a-z0-9]`.
fn global_id_ok(id: &str) -> bool {
    id.rsplit_once('/').is_some_and(|(node, local)| {
        validate_node_id(node).is_ok()
            && (1..=24).contains(&local.len())
            && local
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}

impl WirePublisher {
    fn validate(&self) -> Result<(), RecordError> {
        if !global_id_ok(&self.id) {
            return Err(RecordError::Field {
                field: "publisher id",
                why: "not a node/id pair",
            });
        }
        validate_name("name", &self.name).map_err(|_| RecordError::Field {
            field: "publisher name",
            why: "not a display name",
        })
    }
}

impl WireTrack {
    fn validate(&self) -> Result<(), RecordError> {
        let bad = |field, why| Err(RecordError::Field { field, why });
        if !global_id_ok(&self.id) {
            return bad("track id", "not a node/id pair");
        }
        self.publisher.validate()?;
        let c = &self.codec;
        let codec_ok = (1..=32).contains(&c.name.len())
            && c.name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && (96..=127).contains(&c.pt)
            && (1000..=200_000).contains(&c.clock_rate)
            && c.fmtp
                .as_ref()
                .is_none_or(|f| f.len() <= 500 && !f.contains(['\r', '\n']));
        if !codec_ok {
            return bad("codec", "name, payload type 96-127, clock rate, fmtp");
        }
        let forwardable = match self.kind {
            WireKind::Audio => c.is("opus"),
            WireKind::Video => c.forwardable_video(),
        };
        if !forwardable {
            return bad("codec", "not a codec we forward");
        }
        let n = self.ssrcs.len();
        let layers_ok = match self.kind {
            WireKind::Audio => n == 1 && self.rids.is_empty(),
            WireKind::Video => {
                (1..=4).contains(&n)
                    && (self.rids.is_empty() && n == 1 || self.rids.len() == n)
                    && self.rids.iter().all(|r| {
                        (1..=16).contains(&r.len()) && r.bytes().all(|b| b.is_ascii_alphanumeric())
                    })
            }
        };
        if !layers_ok || self.ssrcs.contains(&0) {
            return bad(
                "encodings",
                "1-4 SSRCs (not 0), one RID each with simulcast",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn track() -> WireTrack {
        WireTrack {
            id: "a:8080/12".into(),
            publisher: WirePublisher {
                id: "a:8080/p3".into(),
                name: "Ann".into(),
                audio_muted: false,
                video_off: true,
            },
            kind: WireKind::Video,
            codec: Codec {
                pt: 96,
                name: "VP8".into(),
                clock_rate: 90_000,
                channels: None,
                fmtp: None,
            },
            screen: false,
            rids: vec!["q".into(), "h".into(), "f".into()],
            ssrcs: vec![11, 12, 13],
            keep_gop: false,
        }
    }

    fn tracks(added: Vec<WireTrack>) -> NodeMsg {
        NodeMsg::Tracks {
            room: "demo".into(),
            from: "a:8080".into(),
            relay_id: "0123456789abcdef".into(),
            added,
            removed: vec!["a:8080/7".into()],
            left: vec![],
        }
    }

    #[test]
    fn a_message_round_trips_and_bad_ones_are_refused() {
        let m = tracks(vec![track()]);
        let json = serde_json::to_vec(&m).expect("json");
        assert_eq!(NodeMsg::parse(&json), Ok(m));
        let open = br#"{"type":"relay-open","room":"demo","from":"b","relay_id":"0123456789abcdef","addr":"127.0.0.1:40000"}"#;
        assert!(NodeMsg::parse(open).is_ok());
        let state = br#"{"type":"publisher","room":"demo","from":"b","relay_id":"0123456789abcdef","publisher":{"id":"b/p1","name":"Bo","audio_muted":true}}"#;
        assert!(matches!(
            NodeMsg::parse(state),
            Ok(NodeMsg::Publisher { publisher, .. }) if publisher.audio_muted && !publisher.video_off
        ));
        let viewers = br#"{"type":"viewers","room":"demo","from":"b","relay_id":"0123456789abcdef","count":3}"#;
        assert!(NodeMsg::parse(viewers).is_ok());
        for bad in [
            &br#"{"type":"viewers","room":"demo","from":"b","relay_id":"0123456789abcdef","count":100000001}"#[..],
            br#"{"type":"publisher","room":"demo","from":"b","relay_id":"0123456789abcdef","publisher":{"id":"nope","name":"Bo"}}"#,
            br#"{"type":"relay-open","room":"demo","from":"b c","relay_id":"0123456789abcdef","addr":"127.0.0.1:40000"}"#,
            br#"{"type":"relay-open","room":"demo","from":"b","relay_id":"xyz","addr":"127.0.0.1:40000"}"#,
            br#"{"type":"relay-open","room":"demo","from":"b","relay_id":"0123456789abcdef","addr":"127.0.0.1:0"}"#,
            br#"{"type":"relay-open","room":"","from":"b","relay_id":"0123456789abcdef","addr":"127.0.0.1:1"}"#,
            br#"{"type":"nonsense"}"#,
            b"\x00\x01",
        ] {
            assert!(NodeMsg::parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let mutate = |f: fn(&mut WireTrack)| {
            let mut t = track();
            f(&mut t);
            serde_json::to_vec(&tracks(vec![t])).expect("json")
        };
        for bytes in [
            mutate(|t| t.codec.name = "H263".into()),
            mutate(|t| t.codec.pt = 200),
            mutate(|t| t.ssrcs = vec![1, 2]),
            mutate(|t| t.ssrcs[0] = 0),
            mutate(|t| t.id = "no-slash".into()),
            mutate(|t| t.publisher.name = String::new()),
            mutate(|t| t.rids[0] = "a b".into()),
            mutate(|t| t.kind = WireKind::Audio),
        ] {
            assert!(NodeMsg::parse(&bytes).is_err());
        }
    }
}
