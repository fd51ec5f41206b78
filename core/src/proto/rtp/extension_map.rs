//! The RTP header extensions we understand and the ids one side negotiated
//! for them (RFC 8285 §5–6): one map for what an SDP section offers, what we
//! declare back, what a producer's packets carry and what a consumer writes.

use std::fmt;

/// True for a header extension id we negotiate and write: 1–14, what a
/// one-byte header can carry (RFC 8285 §4.2: 0 is padding, 15 reserved).
/// The one check of an extension id, for SDP and the data plane alike.
#[inline]
#[must_use]
pub fn valid_ext_id(id: u8) -> bool {
    (1..=14).contains(&id)
}

/// A header extension we read or write. The order of the variants is the
/// order `a=extmap` lines are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Extension {
    /// The MID (RFC 8843 §15), `urn:ietf:params:rtp-hdrext:sdes:mid`: binds
    /// an SSRC the SDP did not announce to its m-section.
    Mid,
    /// The transport-wide sequence number
    /// (draft-holmer-rmcat-transport-wide-cc-extensions-01 §2): 16 bits
    /// per transport, what transport-cc feedback reports on.
    TransportWideCc,
    /// The audio level (RFC 6464 §3): one byte, the V flag and −dBov.
    AudioLevel,
    /// abs-send-time: the send time, 24-bit 6.18 fixed-point seconds, for a
    /// receive-side estimator.
    AbsSendTime,
    /// The AV1 dependency descriptor (AV1 RTP specification, appendix A),
    /// 1–255 bytes, copied from publisher to subscriber.
    DependencyDescriptor,
    /// The RTP stream id (RFC 8852 §3.1): names a simulcast layer.
    Rid,
    /// The repaired RTP stream id (RFC 8852 §3.2): names the layer an RTX
    /// stream repairs.
    RepairedRid,
}

impl Extension {
    /// Every extension, in the order of the variants.
    pub const ALL: [Self; 7] = [
        Self::Mid,
        Self::TransportWideCc,
        Self::AudioLevel,
        Self::AbsSendTime,
        Self::DependencyDescriptor,
        Self::Rid,
        Self::RepairedRid,
    ];

    /// The URI that names it in `a=extmap` (RFC 8285 §5).
    #[must_use]
    pub const fn uri(self) -> &'static str {
        match self {
            Self::Mid => "urn:ietf:params:rtp-hdrext:sdes:mid",
            Self::TransportWideCc => {
                "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
            }
            Self::AudioLevel => "urn:ietf:params:rtp-hdrext:ssrc-audio-level",
            Self::AbsSendTime => "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
            Self::DependencyDescriptor => {
                "https://aomediacodec.github.io/av1-rtp-spec/#dependency-descriptor-rtp-header-extension"
            }
            Self::Rid => "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
            Self::RepairedRid => "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id",
        }
    }

    /// The extension a URI names, or `None` for one we do not use.
    #[must_use]
    pub fn from_uri(uri: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.uri() == uri)
    }

    /// A short name for messages ("transport-wide sequence number").
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Mid => "mid",
            Self::TransportWideCc => "transport-wide sequence number",
            Self::AudioLevel => "audio level",
            Self::AbsSendTime => "abs-send-time",
            Self::DependencyDescriptor => "dependency descriptor",
            Self::Rid => "rid",
            Self::RepairedRid => "repaired rid",
        }
    }
}

impl fmt::Display for Extension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The header extension ids one side negotiated: for each [`Extension`],
/// its id (1–14 once [`ExtensionMap::validate`]d) or nothing. 7 bytes,
/// `Copy`; a lookup is an array index.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct ExtensionMap {
    ids: [Option<u8>; Extension::ALL.len()],
}

/// Why an [`ExtensionMap`] cannot be used (RFC 8285 §4.2, §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ExtensionMapError {
    /// An id outside 1–14.
    #[error("{ext} extension id {id}: must be 1-14")]
    InvalidId {
        /// The extension given it.
        ext: Extension,
        /// The id.
        id: u8,
    },
    /// One id for two extensions.
    #[error("extension id {id} is given to both {first} and {second}")]
    DuplicateId {
        /// The id.
        id: u8,
        /// The first extension given it.
        first: Extension,
        /// The second.
        second: Extension,
    },
}

impl ExtensionMap {
    /// No extension.
    pub const EMPTY: Self = Self {
        ids: [None; Extension::ALL.len()],
    };

    /// The id of `ext`, if negotiated.
    #[inline]
    #[must_use]
    pub fn get(&self, ext: Extension) -> Option<u8> {
        self.ids[ext as usize]
    }

    /// Whether `ext` has an id.
    #[inline]
    #[must_use]
    pub fn has(&self, ext: Extension) -> bool {
        self.get(ext).is_some()
    }

    /// Gives `ext` the id `id`, or removes it with `None`. Not checked until
    /// [`Self::validate`].
    pub const fn set(&mut self, ext: Extension, id: Option<u8>) {
        self.ids[ext as usize] = id;
    }

    /// This map with `ext` set to `id` (see [`Self::set`]).
    #[must_use]
    pub const fn with(mut self, ext: Extension, id: Option<u8>) -> Self {
        self.set(ext, id);
        self
    }

    /// This map without `ext`.
    #[must_use]
    pub fn without(self, ext: Extension) -> Self {
        self.with(ext, None)
    }

    /// This map with `ext` kept only when `keep`.
    #[must_use]
    pub fn keep_if(self, ext: Extension, keep: bool) -> Self {
        if keep { self } else { self.without(ext) }
    }

    /// The extensions with an id, in [`Extension::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (Extension, u8)> + '_ {
        Extension::ALL
            .into_iter()
            .filter_map(|e| self.get(e).map(|id| (e, id)))
    }

    /// The extensions both maps give the same id: what an answer that
    /// echoed `other` of our offer `self` leaves us (RFC 8285 §6: an
    /// answer keeps an offered id or drops the extension).
    #[must_use]
    pub fn common(&self, other: &Self) -> Self {
        let mut out = Self::EMPTY;
        for (e, id) in self.iter() {
            if other.get(e) == Some(id) {
                out.set(e, Some(id));
            }
        }
        out
    }

    /// Only the extensions that `other` has too, with the ids of `self`.
    #[must_use]
    pub fn restricted_to(&self, other: &Self) -> Self {
        let mut out = *self;
        for e in Extension::ALL {
            if !other.has(e) {
                out.set(e, None);
            }
        }
        out
    }

    /// Checks every id is 1–14 ([`valid_ext_id`]) and no id names two
    /// extensions (RFC 8285 §6).
    ///
    /// Errors: the first invalid id, in [`Extension::ALL`] order, or the
    /// first id given twice.
    pub fn validate(&self) -> Result<(), ExtensionMapError> {
        if let Some((ext, id)) = self.iter().find(|(_, id)| !valid_ext_id(*id)) {
            return Err(ExtensionMapError::InvalidId { ext, id });
        }
        for (i, (first, id)) in self.iter().enumerate() {
            if let Some((second, _)) = self.iter().skip(i + 1).find(|(_, o)| *o == id) {
                return Err(ExtensionMapError::DuplicateId { id, first, second });
            }
        }
        Ok(())
    }
}

impl fmt::Debug for ExtensionMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl FromIterator<(Extension, u8)> for ExtensionMap {
    fn from_iter<I: IntoIterator<Item = (Extension, u8)>>(iter: I) -> Self {
        let mut m = Self::EMPTY;
        for (e, id) in iter {
            m.set(e, Some(id));
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_one_byte_ids_and_the_first_bad_one_is_named() {
        assert!(!valid_ext_id(0) && valid_ext_id(1) && valid_ext_id(14) && !valid_ext_id(15));
        let ok: ExtensionMap = [(Extension::Mid, 4)].into_iter().collect();
        assert_eq!(ok.validate(), Ok(()));
        let bad = ok
            .with(Extension::AudioLevel, Some(15))
            .with(Extension::Rid, Some(0));
        assert_eq!(
            bad.validate().map_err(|e| e.to_string()),
            Err("audio level extension id 15: must be 1-14".into())
        );
        let twice = ok.with(Extension::RepairedRid, Some(4));
        assert_eq!(
            twice.validate(),
            Err(ExtensionMapError::DuplicateId {
                id: 4,
                first: Extension::Mid,
                second: Extension::RepairedRid
            })
        );
    }

    #[test]
    fn uris_name_each_extension_once() {
        for e in Extension::ALL {
            assert_eq!(Extension::from_uri(e.uri()), Some(e));
        }
        assert_eq!(Extension::from_uri("urn:example:unknown"), None);
    }

    #[test]
    fn an_answer_keeps_only_the_ids_it_echoed() {
        let offer: ExtensionMap = [
            (Extension::Mid, 1),
            (Extension::TransportWideCc, 3),
            (Extension::AbsSendTime, 2),
        ]
        .into_iter()
        .collect();
        let answer: ExtensionMap = [(Extension::Mid, 1), (Extension::TransportWideCc, 5)]
            .into_iter()
            .collect();
        assert_eq!(
            offer.common(&answer),
            [(Extension::Mid, 1)].into_iter().collect()
        );
        assert_eq!(
            offer.restricted_to(&answer),
            [(Extension::Mid, 1), (Extension::TransportWideCc, 3)]
                .into_iter()
                .collect()
        );
        assert_eq!(
            offer.iter().map(|(e, _)| e).collect::<Vec<_>>(),
            [
                Extension::Mid,
                Extension::TransportWideCc,
                Extension::AbsSendTime
            ]
        );
    }
}
