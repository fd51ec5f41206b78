//! Payload types and header-extension ids of one session: a PT never names
//! two codecs in the BUNDLE group (RFC 8843 §9.1), and each extension keeps
//! the id the client chose at join (RFC 8285).

use std::collections::HashMap;

use sfu_core::proto::rtp::{Extension, ExtensionMap};
use sfu_core::router::{Answered, MediaKind};

use crate::sdp::Codec;

/// Payload types used in this session, so one PT never names two codecs in
/// the BUNDLE group (RFC 8843 §9.1; Chromium refuses such an offer).
#[derive(Debug, Clone, Default)]
pub(super) struct PtTable {
    pub(super) used: HashMap<u8, (String, u32, Option<u8>)>,
}

fn codec_key(c: &Codec) -> (String, u32, Option<u8>) {
    let mut name = c.name.to_ascii_lowercase();
    // An RTX payload type means "RTX of that one codec" (its apt).
    if name == "rtx"
        && let Some(apt) = c.fmtp.as_deref().and_then(crate::sdp::rtx_apt)
    {
        name = format!("rtx apt={apt}");
    }
    (name, c.clock_rate, c.channels)
}

impl PtTable {
    pub(super) fn claim(&mut self, c: &Codec) {
        self.used.entry(c.pt).or_insert_with(|| codec_key(c));
    }

    /// `c` with a payload type that is free or already means this codec.
    pub(super) fn assign(&mut self, c: &Codec) -> Codec {
        let key = codec_key(c);
        let fits = |pt: u8, used: &HashMap<u8, _>| used.get(&pt).is_none_or(|k| *k == key);
        let pt = std::iter::once(c.pt)
            .chain(96..=127)
            .chain(35..=63)
            .find(|&pt| fits(pt, &self.used))
            .unwrap_or(c.pt);
        self.used.insert(pt, key);
        Codec { pt, ..c.clone() }
    }
}

/// What we offer with a track of `kind` sent in `codec`, of the session's
/// header extensions `session` (the client's own ids from its join offer:
/// ids are unique per BUNDLE group, RFC 8285 §6): the MID, transport-wide
/// sequence number and abs-send-time, the audio level only for audio, the
/// dependency descriptor only for AV1, never the RIDs; and whether it comes
/// with RTX.
pub(super) fn offered_for_track(
    session: &ExtensionMap,
    kind: MediaKind,
    codec: &Codec,
    rtx: bool,
) -> Answered {
    Answered {
        rtx,
        extensions: session
            .without(Extension::Rid)
            .without(Extension::RepairedRid)
            .keep_if(Extension::AudioLevel, kind == MediaKind::Audio)
            .keep_if(Extension::DependencyDescriptor, codec.is("AV1")),
    }
}
