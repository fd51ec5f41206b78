//! What we read of a peer's SDP: its m-sections and their codecs.

use sfu_core::Rid;
use sfu_core::proto::dtls::Fingerprint;
use sfu_core::proto::rtp::{Extension, ExtensionMap};
use sfu_core::router::MediaKind;

use super::{Direction, fmtp_param};

/// An RTP codec of an m-section (`a=rtpmap`, `a=fmtp`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Codec {
    /// Payload type.
    pub pt: u8,
    /// Encoding name as written (`opus`, `VP8`, `H264`, …).
    pub name: String,
    /// Clock rate in Hz.
    pub clock_rate: u32,
    /// Audio channels, if given.
    pub channels: Option<u8>,
    /// `a=fmtp` parameters, if any.
    pub fmtp: Option<String>,
}

impl Codec {
    /// True when this codec's name is `name` (case-insensitive, RFC 4855 §3).
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }

    /// True for a video codec we forward: VP8; VP9 profile 0 (RFC 9628
    /// §6: `profile-id`, absent means 0); AV1 profile 0 (AV1 RTP
    /// specification §7.2: `profile`, absent means 0); H264 with
    /// packetization-mode=1 (RFC 6184 §8.1).
    pub fn forwardable_video(&self) -> bool {
        let param = |k: &str| fmtp_param(self.fmtp.as_deref(), k);
        self.clock_rate == 90_000
            && (self.is("VP8")
                || (self.is("VP9") && param("profile-id").is_none_or(|p| p == "0"))
                || (self.is("AV1") && param("profile").is_none_or(|p| p == "0"))
                || (self.is("H264") && param("packetization-mode") == Some("1")))
    }
}

/// One m-section of a peer's SDP.
#[derive(Debug, Clone)]
pub struct MediaSection {
    /// `a=mid`.
    pub mid: String,
    /// Audio or video; `None` for other media (application …).
    pub kind: Option<MediaKind>,
    /// Rejected or removed: port 0 on the m-line, unless the section is
    /// `a=bundle-only` and in the session's BUNDLE group (RFC 9143 §6.2:
    /// there port 0 means "only if bundled", as Firefox's `max-bundle`
    /// offers write every section after the first). Decided here only.
    pub rejected: bool,
    /// Direction from the writer's point of view.
    pub direction: Direction,
    /// Codecs in preference order.
    pub codecs: Vec<Codec>,
    /// Media SSRC the writer sends with (first of `a=ssrc-group:FID`, or the only `a=ssrc`).
    pub ssrc: Option<u32>,
    /// RTX SSRC (second of `a=ssrc-group:FID`).
    pub rtx_ssrc: Option<u32>,
    /// The header extensions the writer declares (`a=extmap`, RFC 8285 §5)
    /// that we know, with ids 1–14; the first line of a URI counts.
    pub extensions: ExtensionMap,
    /// Every one-byte extension id (1–14) it declares, known to us or not
    /// (bit i: id i): ids an extension we add must not take (RFC 8285 §6).
    pub ext_ids: u16,
    /// The simulcast layers the writer sends (RFC 8853 `a=simulcast:send`,
    /// each declared by `a=rid:<id> send`, RFC 8851), in the order of
    /// `a=simulcast`; the first of a layer's alternatives. Empty without
    /// simulcast.
    pub send_rids: Vec<String>,
    /// Data channels: `m=application … UDP/DTLS/SCTP webrtc-datachannel`
    /// (RFC 8841 §4.1); `None` for any other section.
    pub sctp: Option<SctpSection>,
}

/// What an `m=application` section of data channels says (RFC 8841).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SctpSection {
    /// `a=sctp-port` (5000 when absent, RFC 8841 §5).
    pub port: u16,
    /// `a=max-message-size`, bytes: the largest message the writer takes;
    /// 0 means no limit, and absent means 65,536 (RFC 8841 §6).
    pub max_message_size: usize,
}

impl MediaSection {
    /// The codec we forward for this kind: Opus 48000/2 for audio; for
    /// video the first the client lists of VP8, VP9, AV1 and H264 with
    /// packetization-mode=1 ([`Codec::forwardable_video`]): the client's
    /// preference (Chromium lists VP8 first; `setCodecPreferences`
    /// changes it).
    pub fn preferred_codec(&self) -> Option<&Codec> {
        match self.kind? {
            MediaKind::Audio => self
                .codecs
                .iter()
                .find(|c| c.is("opus") && c.clock_rate == 48000),
            MediaKind::Video => self.codecs.iter().find(|c| c.forwardable_video()),
        }
    }

    /// The codec our answer takes for this section: with simulcast
    /// (`a=simulcast:send`, two layers or more) the first of VP8 and H264
    /// the client lists (their layers we forward; VP9 and AV1 go as single
    /// streams), else [`Self::preferred_codec`].
    pub fn answer_codec(&self) -> Option<&Codec> {
        let simulcast_codec = || {
            self.codecs
                .iter()
                .find(|c| c.forwardable_video() && (c.is("VP8") || c.is("H264")))
        };
        if self.send_rids.len() > 1 {
            simulcast_codec().or(self.preferred_codec())
        } else {
            self.preferred_codec()
        }
    }

    /// What the client publishes on this section, if it does: it sends
    /// (not rejected, `sendonly`/`sendrecv`), with a codec we forward, and
    /// either announces its SSRC or sends simulcast layers by RID (RFC 8853:
    /// VP8 or H264 video, with the MID and RID extensions). The one
    /// definition of "this section publishes", for the publish limit and
    /// for creating the producer.
    pub fn publication(&self) -> Option<Publication> {
        if self.rejected || !self.direction.sends() {
            return None;
        }
        let kind = self.kind?;
        let codec = self.answer_codec()?.clone();
        let video = kind == MediaKind::Video;
        let simulcast = (video
            && self.extensions.has(Extension::Rid)
            && self.extensions.has(Extension::Mid)
            && (codec.is("VP8") || codec.is("H264")))
        .then(|| {
            self.send_rids
                .iter()
                .filter_map(|r| Rid::new(r))
                .collect::<Vec<_>>()
        })
        .filter(|rids| rids.len() > 1);
        if self.ssrc.is_none() && simulcast.is_none() {
            return None;
        }
        Some(Publication {
            kind,
            rtx: self.rtx_for(codec.pt).filter(|_| video).cloned(),
            dd_ext_id: self
                .extensions
                .get(Extension::DependencyDescriptor)
                .filter(|_| codec.is("AV1")),
            codec,
            simulcast,
        })
    }

    /// True when the client publishes on this section ([`Self::publication`]):
    /// it becomes a track, counted against the publish limit.
    pub fn publishes(&self) -> bool {
        self.publication().is_some()
    }

    /// The RTX codec associated with payload type `pt` (RFC 4588 §8.6:
    /// `a=rtpmap:<rtx> rtx/90000`, `a=fmtp:<rtx> apt=<pt>`), if offered.
    pub fn rtx_for(&self, pt: u8) -> Option<&Codec> {
        self.codecs
            .iter()
            .find(|c| c.is("rtx") && c.fmtp.as_deref().and_then(rtx_apt) == Some(pt))
    }

    /// The offered codec that matches `codec` (same name and clock; for
    /// H264 packetization-mode=1, for VP9 and AV1 the same profile), for
    /// choosing the subscriber-side payload type.
    pub fn matching_codec(&self, codec: &Codec) -> Option<&Codec> {
        fn profile<'a>(c: &'a Codec, key: &str) -> &'a str {
            fmtp_param(c.fmtp.as_deref(), key).unwrap_or("0")
        }
        self.codecs.iter().find(|c| {
            c.is(&codec.name)
                && c.clock_rate == codec.clock_rate
                && (!c.is("H264")
                    || fmtp_param(c.fmtp.as_deref(), "packetization-mode") == Some("1"))
                && (!c.is("VP9") || profile(c, "profile-id") == profile(codec, "profile-id"))
                && (!c.is("AV1") || profile(c, "profile") == profile(codec, "profile"))
        })
    }
}

/// The `apt` (associated payload type) of an RTX codec's fmtp, e.g. 96 in
/// `apt=96` (RFC 4588 §8.6).
pub fn rtx_apt(fmtp: &str) -> Option<u8> {
    fmtp.split(';')
        .find_map(|kv| kv.trim().strip_prefix("apt="))
        .and_then(|v| v.trim().parse().ok())
}

/// What a section publishes ([`MediaSection::publication`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    /// Audio or video.
    pub kind: MediaKind,
    /// The codec it sends that we forward.
    pub codec: Codec,
    /// Its RTX codec (RFC 4588), video only, when offered for `codec`.
    pub rtx: Option<Codec>,
    /// The AV1 dependency descriptor extension id, for AV1 only.
    pub dd_ext_id: Option<u8>,
    /// Simulcast layers by RID (two or more), or `None`: one stream whose
    /// SSRC the section announces.
    pub simulcast: Option<Vec<Rid>>,
}

impl PeerSdp {
    /// The section of its data channels, if it has one we can take (the
    /// first `webrtc-datachannel` section that is not rejected).
    pub fn data_channels(&self) -> Option<(&MediaSection, SctpSection)> {
        self.media
            .iter()
            .filter(|m| !m.rejected)
            .find_map(|m| Some((m, m.sctp?)))
    }
}

/// What we need of a peer's SDP.
#[derive(Debug, Clone)]
pub struct PeerSdp {
    /// `a=ice-ufrag`.
    pub ice_ufrag: String,
    /// `a=ice-pwd`.
    pub ice_pwd: String,
    /// `a=fingerprint:sha-256`.
    pub fingerprint: Fingerprint,
    /// `a=setup` value (`actpass`, `active`, `passive`).
    pub setup: String,
    /// The m-sections in order.
    pub media: Vec<MediaSection>,
}
