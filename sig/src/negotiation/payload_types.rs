//! Payload types and header-extension ids of one session: a PT never names
//! two codecs in the BUNDLE group (RFC 8843 §9.1), and each extension keeps
//! the id the client chose at join (RFC 8285).

use std::collections::HashMap;

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

/// The header extension ids of a session: the client's own, from its join
/// offer (ids are unique per BUNDLE group, RFC 8285 §6), and we offer the
/// tracks we send it under them.
#[derive(Debug, Clone, Copy)]
pub(super) struct ExtIds {
    pub(super) mid: Option<u8>,
    pub(super) twcc: Option<u8>,
    pub(super) audio_level: Option<u8>,
    pub(super) abs_send_time: Option<u8>,
    pub(super) dd: Option<u8>,
}

impl ExtIds {
    /// What we offer with a track of `kind` sent in `codec`: every id, the
    /// audio level only for audio, the dependency descriptor only for AV1;
    /// and whether it comes with RTX.
    pub(super) fn for_track(self, kind: MediaKind, codec: &Codec, rtx: bool) -> Answered {
        Answered {
            rtx,
            mid_ext_id: self.mid,
            twcc_ext_id: self.twcc,
            audio_level_ext_id: self.audio_level.filter(|_| kind == MediaKind::Audio),
            abs_send_time_ext_id: self.abs_send_time,
            dependency_descriptor_ext_id: self.dd.filter(|_| codec.is("AV1")),
        }
    }
}
