//! SDP ↔ typed parameters (RFC 8829 JSEP, RFC 8843 BUNDLE, RFC 8839 ICE,
//! RFC 8122 fingerprints), with the `sdp` crate. The data plane never sees SDP.
//!
//! `model`: what we read of a peer's SDP; `parse`: reading it; `write`:
//! our answers and offers.

mod model;
mod parse;
mod write;

#[cfg(test)]
mod tests;

pub use model::{Codec, MediaSection, PeerSdp, Publication, SctpSection, rtx_apt};
pub use parse::{parse, validate_offer};
pub use write::{LocalMedia, LocalParams, SimulcastRecv, write};

/// The value of `key` in an fmtp line (`a=b;c=d`), e.g. `profile-id`.
pub fn fmtp_param<'a>(fmtp: Option<&'a str>, key: &str) -> Option<&'a str> {
    fmtp?.split(';').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k.trim() == key).then(|| v.trim())
    })
}

/// Why an SDP cannot be served. `code()` is the signaling error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// Not parseable as SDP.
    #[error("the SDP could not be parsed: {0}")]
    Parse(String),
    /// No m-section at all.
    #[error("the offer has no audio or video m-section")]
    NoMedia,
    /// `a=ice-ufrag`/`a=ice-pwd` missing or malformed.
    #[error("the offer has no ICE credentials (a=ice-ufrag and a=ice-pwd)")]
    NoIceCredentials,
    /// `a=fingerprint:sha-256` missing or malformed.
    #[error("the offer has no usable DTLS fingerprint (a=fingerprint:sha-256 with 32 hex bytes)")]
    NoFingerprint,
    /// No m-section offers a codec we forward.
    #[error(
        "the offer has no usable codec (opus/48000/2, VP8, VP9, AV1 or H264 packetization-mode=1) and no data channels"
    )]
    NoUsableCodec,
    /// An m-section lacks `a=mid` (BUNDLE requires it).
    #[error("an m-section has no a=mid")]
    NoMid,
}

impl SdpError {
    /// Stable error code for the signaling protocol (docs/signaling.md).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Parse(_) => "sdp-invalid",
            Self::NoMedia => "sdp-no-media",
            Self::NoIceCredentials => "sdp-no-ice-credentials",
            Self::NoFingerprint => "sdp-no-fingerprint",
            Self::NoUsableCodec => "sdp-no-usable-codec",
            Self::NoMid => "sdp-no-mid",
        }
    }
}

/// Media direction of an m-section, from the writer's point of view (RFC 8866 §6.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `a=sendrecv` (the default).
    SendRecv,
    /// `a=sendonly`.
    SendOnly,
    /// `a=recvonly`.
    RecvOnly,
    /// `a=inactive`.
    Inactive,
}

impl Direction {
    /// True when the writer sends media.
    pub fn sends(self) -> bool {
        matches!(self, Self::SendRecv | Self::SendOnly)
    }

    /// True when the writer receives media.
    pub fn receives(self) -> bool {
        matches!(self, Self::SendRecv | Self::RecvOnly)
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::SendRecv => "sendrecv",
            Self::SendOnly => "sendonly",
            Self::RecvOnly => "recvonly",
            Self::Inactive => "inactive",
        }
    }
}
