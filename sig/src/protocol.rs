//! The JSON signaling messages over `/ws` (documented in docs/signaling.md).

use serde::{Deserialize, Serialize};

/// Largest text message accepted from a client, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Messages a client sends.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ClientMsg {
    /// Join `room` as `name`, with an SDP offer of what the client publishes.
    Join {
        /// Room name, 1–64 printable characters.
        room: String,
        /// Display name, 1–64 printable characters.
        name: String,
        /// The client's SDP offer.
        sdp: String,
        /// Join token (JWT), required when the server has an auth secret.
        #[serde(default)]
        token: Option<String>,
        /// `participant` (the default: publishes, is listed) or `viewer`
        /// (receives only, is counted). A token's `role` claim wins.
        #[serde(default)]
        role: Option<Role>,
        /// How the member came: over the WebSocket (always, from the wire),
        /// or as a WHIP, WHEP or RTMP session the server opened.
        #[serde(skip)]
        via: Via,
    },
    /// The client's SDP answer to the last `update`.
    Answer {
        /// SDP answer.
        sdp: String,
    },
    /// The client could not apply the last `update` (its `setRemoteDescription`
    /// or `createAnswer` failed). The server logs the reason and sends the
    /// current state again; after three failures in a row it gives up with
    /// `negotiation-failed`.
    UpdateFailed {
        /// What went wrong, for the server's log (at most 1,000 characters are kept).
        #[serde(default)]
        message: String,
    },
    /// The participants whose video the client does not show (a grid
    /// with fewer tiles than participants): their video is paused for it
    /// until a later `video-hidden` leaves them out. Each message replaces
    /// the previous list; everyone's video is sent until the first.
    VideoHidden {
        /// Participant ids, as in `participants` (at most 1,000).
        ids: Vec<String>,
    },
    /// The width, in device pixels, at which the client shows each
    /// participant's video: the server forwards no larger simulcast layer
    /// than covers it. Each message replaces the previous one; a
    /// participant left out has no limit.
    VideoSize {
        /// Participant id → width in pixels (at most 1,000 entries).
        widths: std::collections::HashMap<String, u32>,
    },
    /// The client wants to send an offer of its own (to add or stop a
    /// screen share). The server replies `offer-granted` once no update of
    /// its own is outstanding, and sends none until the client's `offer`.
    OfferRequest,
    /// The client's offer, after `offer-granted`: the session's m-sections
    /// in place, plus new ones it sends on (or closed ones it recycled).
    /// Answered with `offer-answer`.
    Offer {
        /// SDP offer.
        sdp: String,
        /// Mids of the new m-sections that carry a screen share.
        #[serde(default)]
        screen: Vec<String>,
    },
    /// The client's microphone is muted and/or its camera off; the others
    /// show it (`participants`).
    MediaState {
        /// The microphone is muted.
        audio_muted: bool,
        /// The camera is off (the client sends no video).
        video_off: bool,
    },
    /// Leave the room (the WebSocket stays open; the client may join again).
    Leave,
}

impl ClientMsg {
    /// The message's `type`, as the client wrote it (for logs and metrics).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Join { .. } => "join",
            Self::Answer { .. } => "answer",
            Self::UpdateFailed { .. } => "update-failed",
            Self::VideoHidden { .. } => "video-hidden",
            Self::VideoSize { .. } => "video-size",
            Self::OfferRequest => "offer-request",
            Self::Offer { .. } => "offer",
            Self::MediaState { .. } => "media-state",
            Self::Leave => "leave",
        }
    }
}

/// What a member of a room may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Publishes and receives; listed in `participants` and announced to
    /// everyone.
    #[default]
    Participant,
    /// Receives only; not listed, but counted (`viewers`). An offer that
    /// sends is refused with `viewer-cannot-publish`.
    Viewer,
}

/// How a member came into a room, which decides how its session is
/// negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Via {
    /// Our WebSocket protocol: the server offers `update`s as tracks come
    /// and go (docs/signaling.md).
    #[default]
    Ws,
    /// A WHIP publisher (RFC 9725): one offer, one answer, no
    /// renegotiation; it publishes and receives nothing.
    Whip,
    /// A WHEP viewer (draft-ietf-wish-whep): one offer of receive-only
    /// m-sections, each answered with one track of the room (of
    /// `participant` first, when given), never renegotiated.
    Whep {
        /// The participant id to watch (`?participant=p7`).
        participant: Option<u64>,
    },
    /// An RTMP publisher (`crate::ingest`): its offer is made by the
    /// server from the stream, its transport is a direct one (no network:
    /// the ingest hands its RTP packets to the Router), and it receives
    /// nothing.
    Rtmp,
    /// A recording played back into the room (`crate::recording::playback`):
    /// a publisher on a direct transport, as [`Via::Rtmp`], whose offer the
    /// server made from the file.
    Playback,
}

impl Via {
    /// Whether the member receives the room's tracks through `update`s
    /// (only the WebSocket protocol renegotiates).
    pub fn negotiates(self) -> bool {
        self == Self::Ws
    }

    /// Whether its transport is a direct one (no network: the server
    /// hands its packets to the Router): RTMP and playback.
    pub fn is_direct(self) -> bool {
        matches!(self, Self::Rtmp | Self::Playback)
    }

    /// The session kind in logs and names: `ws`, `whip`, `whep`, `rtmp`,
    /// `playback`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ws => "ws",
            Self::Whip => "whip",
            Self::Whep { .. } => "whep",
            Self::Rtmp => "rtmp",
            Self::Playback => "playback",
        }
    }
}

impl Role {
    /// The role's name on the wire and in tokens.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Participant => "participant",
            Self::Viewer => "viewer",
        }
    }
}

/// One change to a room's roster, as carried by `deltas`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Delta {
    /// A participant joined (or, after a snapshot that had it, is still
    /// there: apply as an upsert).
    ParticipantJoined {
        /// The participant.
        participant: ParticipantInfo,
    },
    /// A participant left (unknown ids are ignored).
    ParticipantLeft {
        /// Its id.
        id: String,
    },
    /// A participant's state changed (mute, camera, screen share).
    ParticipantUpdated {
        /// The participant as it is now.
        participant: ParticipantInfo,
    },
    /// The number of viewers changed.
    Viewers {
        /// Viewers in the room now.
        count: usize,
    },
}

/// One participant as listed to clients.
#[derive(Debug, Clone, Serialize)]
pub struct ParticipantInfo {
    /// Participant id; also the msid stream id of its tracks.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Its microphone is muted (`media-state`); left out when not.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub audio_muted: bool,
    /// Its camera is off (`media-state`); left out when not.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub video_off: bool,
    /// It shares its screen (the track's msid stream is `<id>-screen`);
    /// left out when not.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub screen: bool,
}

/// Messages the server sends.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ServerMsg {
    /// Answer to `join`.
    Answer {
        /// The SDP answer.
        sdp: String,
        /// The joining participant's own id.
        id: String,
        /// The room joined.
        room: String,
        /// STUN/TURN servers for the client's `RTCPeerConnection`
        /// (`setConfiguration` before `setLocalDescription` of its join
        /// offer), TURN credentials its own; left out when none are set.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        ice_servers: Vec<crate::ice_servers::IceServer>,
    },
    /// A new server offer: the tracks this participant receives changed.
    Update {
        /// SDP offer; reply with `answer`.
        sdp: String,
    },
    /// The room's participants: a snapshot, sent once to whoever joins
    /// (participant or viewer). Changes after it come as `deltas`.
    Participants {
        /// Room name.
        room: String,
        /// Every participant (not the viewers), the receiver included when
        /// it is one.
        participants: Vec<ParticipantInfo>,
        /// Viewers in the room, the receiver included when it is one.
        viewers: usize,
    },
    /// Changes to the roster since the last snapshot or `deltas`, in order,
    /// at most one message per connection per 200 ms.
    Deltas {
        /// The changes.
        events: Vec<Delta>,
    },
    /// This node is full: join again at `url` (another node of the
    /// cluster, with room), with the same message. The WebSocket stays
    /// open but joined to nothing.
    Redirect {
        /// The base URL of the node to join on (`http(s)://host:port`);
        /// its WebSocket is `{url}/ws` with `ws(s)`.
        url: String,
    },
    /// The room's dominant speaker changed (from the audio levels its
    /// publishers send; sent again with each `participants`).
    Speaker {
        /// The speaker's participant id (as in `participants`).
        id: String,
    },
    /// Whether the room is being recorded (`docs/recording.md`): sent to
    /// everyone when a recording starts or the last one ends, and after
    /// the `participants` snapshot while one runs, so the page can say so.
    Recording {
        /// A recording of the room (or of one of its participants) runs.
        active: bool,
    },
    /// The server opened data channel `id` to this client (it fires as
    /// `ondatachannel`, `RTCDataChannel.id == id`): the server's copy of a
    /// channel participant `from` opened, so what arrives on it is
    /// `from`'s. Sent right after the channel is opened: a client that
    /// sees the channel first holds its messages until this names it.
    DataChannel {
        /// The channel's stream id (`RTCDataChannel.id`).
        id: u16,
        /// The sender's participant id (as in `participants`).
        from: String,
    },
    /// The client may send its `offer` now.
    OfferGranted,
    /// The answer to the client's `offer`.
    OfferAnswer {
        /// SDP answer.
        sdp: String,
    },
    /// The loudest audio level each participant above silence sent in
    /// the last 300 ms, in dBov (RFC 6464: 0 is the loudest); those left
    /// out were silent. Sent every 300 ms while anyone is above silence,
    /// then once more (empty).
    Levels {
        /// Participant id → level in dBov (-126 to 0).
        levels: std::collections::BTreeMap<String, i8>,
    },
    /// Which simulcast encodings of the client's track on `mid` someone
    /// receives: the client may stop encoding the others
    /// (`RTCRtpEncodingParameters.active = false`) until a later message
    /// turns them on again.
    SourceLayers {
        /// The m-section of the track.
        mid: String,
        /// RID → someone can use it.
        active: std::collections::BTreeMap<String, bool>,
    },
    /// The server stopped forwarding the video of msid stream `id` (`p7`,
    /// `p7-screen`) to this client: its bandwidth has no room for it even
    /// after every video was brought down to its lowest frame rate.
    VideoPaused {
        /// The msid stream.
        id: String,
        /// Why: `low-bandwidth`.
        reason: &'static str,
    },
    /// The video of msid stream `id` paused by `video-paused` comes again
    /// (from its next keyframe).
    VideoResumed {
        /// The msid stream.
        id: String,
    },
    /// Confirms `leave`.
    Left,
    /// Something went wrong; the connection stays usable unless said otherwise.
    Error {
        /// Stable error code (docs/signaling.md).
        code: &'static str,
        /// Human-readable explanation.
        message: String,
    },
}

impl ServerMsg {
    /// Serializes to JSON text.
    pub fn to_json(&self) -> String {
        // Serializing these plain structs cannot fail; fall back to a fixed error.
        serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"type":"error","code":"server-error","message":"encoding failed"}"#.into()
        })
    }

    /// Shorthand for an error message.
    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        Self::Error {
            code,
            message: message.into(),
        }
    }
}

/// Parses a client text message, or says which error to send back.
pub fn parse_client(text: &str) -> Result<ClientMsg, ServerMsg> {
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(ServerMsg::error(
            "message-too-large",
            format!(
                "message of {} bytes exceeds the limit of {MAX_MESSAGE_BYTES}",
                text.len()
            ),
        ));
    }
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| ServerMsg::error("bad-json", format!("not valid JSON: {e}")))?;
    let Some(t) = value.get("type").and_then(|t| t.as_str()) else {
        return Err(ServerMsg::error(
            "bad-message",
            "a message must be a JSON object with a string \"type\"",
        ));
    };
    if !matches!(
        t,
        "join"
            | "answer"
            | "update-failed"
            | "video-hidden"
            | "video-size"
            | "offer-request"
            | "offer"
            | "media-state"
            | "leave"
    ) {
        return Err(ServerMsg::error(
            "unknown-type",
            format!("unknown message type {t:?}"),
        ));
    }
    let t = t.to_string();
    serde_json::from_value(value)
        .map_err(|e| ServerMsg::error("bad-message", format!("bad {t:?} message: {e}")))
}

/// Why a room or display name was refused; `what` names the field
/// ("room", "name", "identity").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Not 1–64 characters.
    #[error("{what} must be 1-64 characters, got {n}")]
    Length {
        /// The field.
        what: &'static str,
        /// Its length in characters.
        n: usize,
    },
    /// A control character.
    #[error("{what} must be printable (no control characters)")]
    Control {
        /// The field.
        what: &'static str,
    },
    /// Only white space.
    #[error("{what} must not be blank")]
    Blank {
        /// The field.
        what: &'static str,
    },
}

/// Validates a room or display name: 1–64 characters, none of them control
/// characters, not only spaces.
///
/// Errors: [`NameError`], naming the field `what`.
pub fn validate_name(what: &'static str, s: &str) -> Result<(), NameError> {
    let n = s.chars().count();
    if n == 0 || n > 64 {
        return Err(NameError::Length { what, n });
    }
    if s.chars().any(|c| c.is_control()) {
        return Err(NameError::Control { what });
    }
    if s.trim().is_empty() {
        return Err(NameError::Blank { what });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(r: Result<ClientMsg, ServerMsg>) -> &'static str {
        match r {
            Err(ServerMsg::Error { code, .. }) => code,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn bad_messages_get_codes() {
        assert_eq!(code(parse_client("{")), "bad-json");
        assert_eq!(code(parse_client("[1]")), "bad-message");
        assert_eq!(code(parse_client(r#"{"type":"dance"}"#)), "unknown-type");
        assert_eq!(
            code(parse_client(r#"{"type":"join","room":"a"}"#)),
            "bad-message"
        );
        assert_eq!(
            code(parse_client(&format!(
                r#"{{"type":"leave","x":"{}"}}"#,
                "a".repeat(70_000)
            ))),
            "message-too-large"
        );
        assert!(matches!(
            parse_client(r#"{"type":"leave"}"#),
            Ok(ClientMsg::Leave)
        ));
        assert!(matches!(
            parse_client(r#"{"type":"video-hidden","ids":["p3","p9"]}"#),
            Ok(ClientMsg::VideoHidden { ids }) if ids == ["p3", "p9"]
        ));
        assert_eq!(
            code(parse_client(r#"{"type":"video-hidden","ids":"p3"}"#)),
            "bad-message"
        );
        assert!(matches!(
            parse_client(r#"{"type":"video-size","widths":{"p3":320}}"#),
            Ok(ClientMsg::VideoSize { widths }) if widths.get("p3") == Some(&320)
        ));
        assert_eq!(
            code(parse_client(r#"{"type":"video-size","widths":{"p3":-1}}"#)),
            "bad-message"
        );
        assert!(matches!(
            parse_client(r#"{"type":"update-failed","message":"InvalidAccessError"}"#),
            Ok(ClientMsg::UpdateFailed { .. })
        ));
        assert!(matches!(
            parse_client(r#"{"type":"update-failed"}"#),
            Ok(ClientMsg::UpdateFailed { .. })
        ));
        assert!(matches!(
            parse_client(r#"{"type":"join","room":"r","name":"n","sdp":"x"}"#),
            Ok(ClientMsg::Join { .. })
        ));
    }

    #[test]
    fn names_are_validated() {
        assert!(validate_name("room", "demo").is_ok());
        assert!(validate_name("room", "Ünïcode room 1").is_ok());
        assert!(validate_name("room", "").is_err());
        assert!(validate_name("room", "   ").is_err());
        assert!(validate_name("room", "a\nb").is_err());
        assert!(validate_name("room", &"x".repeat(65)).is_err());
    }
}
