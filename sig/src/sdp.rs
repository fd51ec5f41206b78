//! SDP ↔ typed parameters (RFC 8829 JSEP, RFC 8843 BUNDLE, RFC 8839 ICE,
//! RFC 8122 fingerprints), with the `sdp` crate. The data plane never sees SDP.

use std::io::Cursor;
use std::net::IpAddr;

use sdp::description::common::{Address, Attribute, ConnectionInformation};
use sdp::description::media::{MediaDescription, MediaName, RangedPort};
use sdp::description::session::{Origin, SessionDescription};
use sfu_core::Rid;
use sfu_core::proto::dtls::{Fingerprint, parse_fingerprint};
use sfu_core::router::MediaKind;

/// The header extension we negotiate: the MID of the m-section (RFC 8843 §15).
pub const MID_EXT_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
/// URI of the RTP stream id (RID) header extension (RFC 8852 §3.1).
pub const RID_EXT_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id";
/// URI of the repaired RTP stream id header extension (RFC 8852 §3.2).
pub const REPAIRED_RID_EXT_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id";
/// The audio level header extension (RFC 6464).
pub const AUDIO_LEVEL_EXT_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";
/// The absolute send time header extension (Chromium's receive-side
/// estimator reads it when there is no transport-wide feedback).
pub const ABS_SEND_TIME_EXT_URI: &str =
    "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time";
/// The AV1 dependency descriptor header extension (AV1 RTP specification,
/// appendix A), passed through for AV1 tracks.
pub const DEPENDENCY_DESCRIPTOR_EXT_URI: &str =
    "https://aomediacodec.github.io/av1-rtp-spec/#dependency-descriptor-rtp-header-extension";

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
    #[error("the offer has no usable codec (opus/48000/2, VP8, or H264 packetization-mode=1)")]
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

/// An RTP codec of an m-section (`a=rtpmap`, `a=fmtp`).
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// Id of the MID header extension, if offered.
    pub mid_ext_id: Option<u8>,
    /// Id of the transport-wide sequence number extension, if offered.
    pub twcc_ext_id: Option<u8>,
    /// Id of the audio level extension (RFC 6464), if offered.
    pub audio_level_ext_id: Option<u8>,
    /// Id of the abs-send-time extension, if offered.
    pub abs_send_time_ext_id: Option<u8>,
    /// The simulcast layers the writer sends (RFC 8853 `a=simulcast:send`,
    /// each declared by `a=rid:<id> send`, RFC 8851), in the order of
    /// `a=simulcast`; the first of a layer's alternatives. Empty without
    /// simulcast.
    pub send_rids: Vec<String>,
    /// Id of the RID extension (RFC 8852 §3.1), if offered.
    pub rid_ext_id: Option<u8>,
    /// Id of the repaired RID extension (RFC 8852 §3.2), if offered.
    pub repaired_rid_ext_id: Option<u8>,
    /// Id of the AV1 dependency descriptor extension, if offered.
    pub dd_ext_id: Option<u8>,
}

impl Codec {
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

    /// True when the client sends on this m-section with a codec we
    /// forward: it would become a track (counted against the publish limit).
    pub fn publishes(&self) -> bool {
        !self.rejected && self.direction.sends() && self.preferred_codec().is_some()
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

fn attr<'a>(attrs: &'a [Attribute], key: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_deref())
}

fn parse_direction(attrs: &[Attribute]) -> Direction {
    for a in attrs {
        match a.key.as_str() {
            "sendonly" => return Direction::SendOnly,
            "recvonly" => return Direction::RecvOnly,
            "inactive" => return Direction::Inactive,
            "sendrecv" => return Direction::SendRecv,
            _ => {}
        }
    }
    Direction::SendRecv
}

fn parse_media(md: &MediaDescription, bundle: &[&str]) -> Result<MediaSection, SdpError> {
    let attrs = &md.attributes;
    let mid = attr(attrs, "mid")
        .ok_or(SdpError::NoMid)?
        .trim()
        .to_string();
    let kind = match md.media_name.media.as_str() {
        "audio" => Some(MediaKind::Audio),
        "video" => Some(MediaKind::Video),
        _ => None,
    };
    let mut codecs = Vec::new();
    for f in &md.media_name.formats {
        let Ok(pt) = f.parse::<u8>() else { continue };
        let Some(map) = attrs
            .iter()
            .filter(|a| a.key == "rtpmap")
            .filter_map(|a| a.value.as_deref())
            .find(|v| v.split_whitespace().next() == Some(f.as_str()))
        else {
            continue;
        };
        let enc = map.split_whitespace().nth(1).unwrap_or("");
        let mut parts = enc.split('/');
        let name = parts.next().unwrap_or("").to_string();
        let Some(clock_rate) = parts.next().and_then(|c| c.parse().ok()) else {
            continue;
        };
        let channels = parts.next().and_then(|c| c.parse().ok());
        let fmtp = attrs
            .iter()
            .filter(|a| a.key == "fmtp")
            .filter_map(|a| a.value.as_deref())
            .find(|v| v.split_whitespace().next() == Some(f.as_str()))
            .and_then(|v| v.split_once(' ').map(|(_, p)| p.trim().to_string()));
        codecs.push(Codec {
            pt,
            name,
            clock_rate,
            channels,
            fmtp,
        });
    }
    let mut ssrc = None;
    let mut rtx_ssrc = None;
    if let Some(g) = attrs
        .iter()
        .filter(|a| a.key == "ssrc-group")
        .filter_map(|a| a.value.as_deref())
        .find(|v| v.starts_with("FID "))
    {
        let mut it = g
            .split_whitespace()
            .skip(1)
            .filter_map(|s| s.parse::<u32>().ok());
        ssrc = it.next();
        rtx_ssrc = it.next();
    }
    if ssrc.is_none() {
        ssrc = attrs
            .iter()
            .filter(|a| a.key == "ssrc")
            .filter_map(|a| a.value.as_deref())
            .find_map(|v| v.split_whitespace().next().and_then(|s| s.parse().ok()));
    }
    let ext_id = |uri: &str| {
        attrs
            .iter()
            .filter(|a| a.key == "extmap")
            .filter_map(|a| a.value.as_deref())
            .find(|v| v.split_whitespace().nth(1) == Some(uri))
            .and_then(|v| v.split(['/', ' ']).next())
            .and_then(|id| id.parse::<u8>().ok())
            .filter(|id| (1..=14).contains(id))
    };
    let mid_ext_id = ext_id(MID_EXT_URI);
    let twcc_ext_id = ext_id(sfu_core::proto::twcc::TWCC_URI);
    let audio_level_ext_id = ext_id(AUDIO_LEVEL_EXT_URI);
    let abs_send_time_ext_id = ext_id(ABS_SEND_TIME_EXT_URI);
    let rid_ext_id = ext_id(RID_EXT_URI);
    let repaired_rid_ext_id = ext_id(REPAIRED_RID_EXT_URI);
    let dd_ext_id = ext_id(DEPENDENCY_DESCRIPTOR_EXT_URI);
    // RFC 8853 §5.1: `a=simulcast:send 1;2,~3` — layers by `;`, a layer's
    // alternatives by `,`, `~` marks one paused; each RID must be declared
    // with `a=rid:<id> send` (RFC 8851 §4).
    let declared: Vec<&str> = attrs
        .iter()
        .filter(|a| a.key == "rid")
        .filter_map(|a| a.value.as_deref())
        .filter_map(|v| {
            let mut it = v.split_whitespace();
            let id = it.next()?;
            (it.next() == Some("send")).then_some(id)
        })
        .collect();
    let mut send_rids = Vec::new();
    if let Some(list) = attr(attrs, "simulcast").and_then(|v| {
        let mut it = v.split_whitespace();
        (it.next() == Some("send")).then(|| it.next()).flatten()
    }) {
        for layer in list.split(';') {
            let first = layer
                .split(',')
                .next()
                .unwrap_or("")
                .trim_start_matches('~');
            if declared.contains(&first)
                && Rid::new(first).is_some()
                && !send_rids.iter().any(|r| r == first)
            {
                send_rids.push(first.to_string());
            }
        }
    }
    // One layer is no simulcast (and 4 is our most).
    if send_rids.len() < 2 {
        send_rids.clear();
    }
    send_rids.truncate(sfu_core::router::producer::MAX_ENCODINGS);
    Ok(MediaSection {
        kind,
        rejected: md.media_name.port.value == 0
            && !(attrs.iter().any(|a| a.key == "bundle-only") && bundle.contains(&mid.as_str())),
        mid,
        direction: parse_direction(attrs),
        codecs,
        ssrc,
        rtx_ssrc,
        mid_ext_id,
        twcc_ext_id,
        audio_level_ext_id,
        abs_send_time_ext_id,
        send_rids,
        rid_ext_id,
        repaired_rid_ext_id,
        dd_ext_id,
    })
}

/// Parses a peer's offer or answer. For an offer, use [`validate_offer`] too.
///
/// Errors: [`SdpError::Parse`], [`SdpError::NoMedia`], [`SdpError::NoMid`],
/// [`SdpError::NoIceCredentials`], [`SdpError::NoFingerprint`].
pub fn parse(sdp: &str) -> Result<PeerSdp, SdpError> {
    let mut cur = Cursor::new(sdp.as_bytes());
    let sd = SessionDescription::unmarshal(&mut cur).map_err(|e| SdpError::Parse(e.to_string()))?;
    if sd.media_descriptions.is_empty() {
        return Err(SdpError::NoMedia);
    }
    // RFC 5888 §5 / RFC 9143 §7: `a=group:BUNDLE <mid> …` at session level.
    let bundle: Vec<&str> = sd
        .attributes
        .iter()
        .filter(|a| a.key == "group")
        .filter_map(|a| a.value.as_deref())
        .filter_map(|v| v.strip_prefix("BUNDLE"))
        .flat_map(str::split_whitespace)
        .collect();
    let media = sd
        .media_descriptions
        .iter()
        .map(|md| parse_media(md, &bundle))
        .collect::<Result<Vec<_>, _>>()?;
    // ICE and DTLS attributes may be at session or media level; with BUNDLE
    // the first m-section's apply (RFC 8843 §7.1.3).
    let first = &sd.media_descriptions[0].attributes;
    let get = |key: &str| {
        attr(&sd.attributes, key)
            .or_else(|| attr(first, key))
            .map(str::trim)
    };
    let ice_ufrag = get("ice-ufrag").filter(|u| (4..=256).contains(&u.len()) && !u.contains(':'));
    let ice_pwd = get("ice-pwd").filter(|p| (22..=256).contains(&p.len()));
    let (Some(ice_ufrag), Some(ice_pwd)) = (ice_ufrag, ice_pwd) else {
        return Err(SdpError::NoIceCredentials);
    };
    let fingerprint = sd
        .attributes
        .iter()
        .chain(first.iter())
        .filter(|a| a.key == "fingerprint")
        .filter_map(|a| a.value.as_deref())
        .find_map(|v| {
            let (hash, value) = v.trim().split_once(' ')?;
            hash.eq_ignore_ascii_case("sha-256")
                .then(|| parse_fingerprint(value))
                .flatten()
        })
        .ok_or(SdpError::NoFingerprint)?;
    let setup = get("setup").unwrap_or("actpass").to_string();
    Ok(PeerSdp {
        ice_ufrag: ice_ufrag.into(),
        ice_pwd: ice_pwd.into(),
        fingerprint,
        setup,
        media,
    })
}

/// Checks that an offer has at least one audio/video m-section with a codec
/// we forward (or one the client only wants to receive on).
///
/// Errors: [`SdpError::NoUsableCodec`].
pub fn validate_offer(offer: &PeerSdp) -> Result<(), SdpError> {
    if offer
        .media
        .iter()
        .any(|m| !m.rejected && m.preferred_codec().is_some())
    {
        Ok(())
    } else {
        Err(SdpError::NoUsableCodec)
    }
}

/// Our side of the session, common to answers and offers.
#[derive(Debug, Clone)]
pub struct LocalParams {
    /// Our ICE ufrag.
    pub ice_ufrag: String,
    /// Our ICE password.
    pub ice_pwd: String,
    /// `sha-256` fingerprint of our certificate, `AB:CD:…`.
    pub fingerprint: String,
    /// Announced IP of the host candidate.
    pub ip: IpAddr,
    /// The room's UDP port.
    pub port: u16,
    /// `o=` session id.
    pub session_id: u64,
    /// `o=` session version (increment on every new offer).
    pub session_version: u64,
    /// Write `a=ice-lite` (true for the server; false for a full-ICE client).
    pub ice_lite: bool,
}

/// What one m-section of ours carries.
#[derive(Debug, Clone)]
pub struct LocalMedia {
    /// `a=mid`.
    pub mid: String,
    /// Audio or video (`None`: an m-section we reject with port 0).
    pub kind: Option<MediaKind>,
    /// Media type token for a rejected section (`application` …).
    pub media_token: String,
    /// Our direction.
    pub direction: Direction,
    /// The single codec we use on it.
    pub codec: Option<Codec>,
    /// MID extension id to declare.
    pub mid_ext_id: Option<u8>,
    /// Transport-wide sequence number extension id to declare (answers to
    /// a publisher's offer that has it: we send transport-cc feedback).
    pub twcc_ext_id: Option<u8>,
    /// Audio level extension id to declare (what we send carries it).
    pub audio_level_ext_id: Option<u8>,
    /// abs-send-time extension id to declare (what we send carries it).
    pub abs_send_time_ext_id: Option<u8>,
    /// AV1 dependency descriptor extension id to declare (AV1 only: what
    /// the publisher sends, and we copy to subscribers).
    pub dd_ext_id: Option<u8>,
    /// What we send on it: (SSRC, CNAME, msid stream id, msid track id).
    pub send: Option<(u32, String, String, String)>,
    /// The RTX codec for `codec` (RFC 4588), video only.
    pub rtx: Option<Codec>,
    /// The RTX SSRC we send with (`a=ssrc-group:FID <ssrc> <rtx>`).
    pub rtx_ssrc: Option<u32>,
    /// Port 0: rejected/removed section.
    pub rejected: bool,
    /// Simulcast layers we receive (answer to `a=simulcast:send`): the
    /// RIDs, written as `a=rid:<id> recv` and `a=simulcast:recv`, with the
    /// RID and repaired RID extension ids to declare.
    pub simulcast_recv: Option<SimulcastRecv>,
}

impl LocalMedia {
    /// A closed m-section (port 0, `inactive`, nothing in it) under `mid`;
    /// also the base to build others on with `..LocalMedia::closed(..)`.
    pub fn closed(mid: &str, kind: Option<MediaKind>) -> Self {
        Self {
            mid: mid.to_string(),
            kind,
            media_token: kind.map_or("application", |k| k.as_str()).to_string(),
            direction: Direction::Inactive,
            codec: None,
            mid_ext_id: None,
            twcc_ext_id: None,
            audio_level_ext_id: None,
            abs_send_time_ext_id: None,
            dd_ext_id: None,
            send: None,
            rtx: None,
            rtx_ssrc: None,
            rejected: true,
            simulcast_recv: None,
        }
    }
}

/// The simulcast layers an answer accepts (RFC 8853 §5.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulcastRecv {
    /// The RIDs, in the offer's order.
    pub rids: Vec<String>,
    /// RID extension id (RFC 8852 §3.1).
    pub rid_ext_id: u8,
    /// Repaired RID extension id (RFC 8852 §3.2), if offered.
    pub repaired_rid_ext_id: Option<u8>,
}

fn fb_lines(kind: MediaKind) -> &'static [&'static str] {
    match kind {
        MediaKind::Audio => &["transport-cc"],
        // goog-remb: we cap publishers with REMB (draft-alvestrand-rmcat-remb);
        // rrtr: Chromium then sends XR RRTR (RFC 3611), our DLRR gives it the RTT.
        MediaKind::Video => &[
            "goog-remb",
            "nack",
            "nack pli",
            "ccm fir",
            "transport-cc",
            "rrtr",
        ],
    }
}

/// Writes our SDP (answer when `setup` is `passive`/`active`, offer when
/// `actpass`): ICE-lite, BUNDLE of every non-rejected m-section, rtcp-mux,
/// one host candidate on the first bundled m-section.
pub fn write(local: &LocalParams, setup: &str, media: &[LocalMedia]) -> String {
    let ip = local.ip.to_string();
    let ip_ver = if local.ip.is_ipv4() { "IP4" } else { "IP6" };
    let bundle: Vec<&str> = media
        .iter()
        .filter(|m| !m.rejected)
        .map(|m| m.mid.as_str())
        .collect();
    let mut sd = SessionDescription::new_jsep_session_description(false);
    sd.origin = Origin {
        username: "-".into(),
        session_id: local.session_id,
        session_version: local.session_version,
        network_type: "IN".into(),
        address_type: ip_ver.into(),
        unicast_address: ip.clone(),
    };
    sd.session_name = "sfu".into();
    if local.ice_lite {
        sd = sd.with_property_attribute("ice-lite".into());
    }
    // A dependency descriptor over 16 bytes needs two-byte header
    // extensions (RFC 8285 §4.3, §6).
    if media.iter().any(|m| m.dd_ext_id.is_some() && !m.rejected) {
        sd = sd.with_property_attribute("extmap-allow-mixed".into());
    }
    sd = sd
        .with_value_attribute("group".into(), format!("BUNDLE {}", bundle.join(" ")))
        .with_value_attribute("msid-semantic".into(), " WMS *".into());
    let mut candidate_written = false;
    for m in media {
        let mut md = MediaDescription {
            media_name: MediaName {
                media: m
                    .kind
                    .map_or(m.media_token.clone(), |k| k.as_str().to_string()),
                port: RangedPort {
                    value: if m.rejected { 0 } else { 9 },
                    range: None,
                },
                protos: vec!["UDP".into(), "TLS".into(), "RTP".into(), "SAVPF".into()],
                formats: std::iter::once(
                    m.codec
                        .as_ref()
                        .map_or("0".to_string(), |c| c.pt.to_string()),
                )
                .chain(
                    m.codec
                        .as_ref()
                        .and(m.rtx.as_ref())
                        .map(|r| r.pt.to_string()),
                )
                .collect(),
            },
            media_title: None,
            connection_information: Some(ConnectionInformation {
                network_type: "IN".into(),
                address_type: ip_ver.into(),
                address: Some(Address {
                    address: ip.clone(),
                    ttl: None,
                    range: None,
                }),
            }),
            bandwidth: vec![],
            encryption_key: None,
            attributes: vec![],
        };
        if m.kind.is_none() && m.media_token == "application" {
            md.media_name.protos = vec!["UDP".into(), "DTLS".into(), "SCTP".into()];
            md.media_name.formats = vec!["webrtc-datachannel".into()];
        }
        let a = |md: MediaDescription, k: &str, v: String| md.with_value_attribute(k.into(), v);
        md = a(md, "mid", m.mid.clone());
        if m.rejected {
            sd = sd.with_media(md);
            continue;
        }
        md = a(md, "ice-ufrag", local.ice_ufrag.clone());
        md = a(md, "ice-pwd", local.ice_pwd.clone());
        md = a(md, "fingerprint", format!("sha-256 {}", local.fingerprint));
        md = a(md, "setup", setup.into());
        if let Some(id) = m.mid_ext_id {
            md = a(md, "extmap", format!("{id} {MID_EXT_URI}"));
        }
        if let Some(id) = m.twcc_ext_id {
            md = a(
                md,
                "extmap",
                format!("{id} {}", sfu_core::proto::twcc::TWCC_URI),
            );
        }
        if let Some(id) = m.audio_level_ext_id {
            md = a(md, "extmap", format!("{id} {AUDIO_LEVEL_EXT_URI}"));
        }
        if let Some(id) = m.abs_send_time_ext_id {
            md = a(md, "extmap", format!("{id} {ABS_SEND_TIME_EXT_URI}"));
        }
        if let Some(id) = m.dd_ext_id {
            md = a(
                md,
                "extmap",
                format!("{id} {DEPENDENCY_DESCRIPTOR_EXT_URI}"),
            );
        }
        if let Some(sc) = &m.simulcast_recv {
            md = a(md, "extmap", format!("{} {RID_EXT_URI}", sc.rid_ext_id));
            if let Some(id) = sc.repaired_rid_ext_id {
                md = a(md, "extmap", format!("{id} {REPAIRED_RID_EXT_URI}"));
            }
        }
        md = md.with_property_attribute(m.direction.as_str().into());
        if let Some((_, _, stream, track)) = &m.send {
            md = a(md, "msid", format!("{stream} {track}"));
        }
        md = md
            .with_property_attribute("rtcp-mux".into())
            .with_property_attribute("rtcp-rsize".into());
        if let (Some(c), Some(kind)) = (&m.codec, m.kind) {
            let enc = match c.channels {
                Some(ch) => format!("{}/{}/{}", c.name, c.clock_rate, ch),
                None => format!("{}/{}", c.name, c.clock_rate),
            };
            md = a(md, "rtpmap", format!("{} {}", c.pt, enc));
            for fb in fb_lines(kind) {
                md = a(md, "rtcp-fb", format!("{} {}", c.pt, fb));
            }
            if let Some(f) = &c.fmtp {
                md = a(md, "fmtp", format!("{} {}", c.pt, f));
            }
            if let Some(r) = &m.rtx {
                md = a(md, "rtpmap", format!("{} rtx/{}", r.pt, r.clock_rate));
                md = a(md, "fmtp", format!("{} apt={}", r.pt, c.pt));
            }
        }
        if let Some(sc) = &m.simulcast_recv {
            for r in &sc.rids {
                md = a(md, "rid", format!("{r} recv"));
            }
            md = a(md, "simulcast", format!("recv {}", sc.rids.join(";")));
        }
        if let Some((ssrc, cname, stream, track)) = &m.send {
            if let Some(rtx) = m.rtx_ssrc.filter(|_| m.rtx.is_some()) {
                md = a(md, "ssrc-group", format!("FID {ssrc} {rtx}"));
            }
            md = a(md, "ssrc", format!("{ssrc} cname:{cname}"));
            md = a(md, "ssrc", format!("{ssrc} msid:{stream} {track}"));
            if let Some(rtx) = m.rtx_ssrc.filter(|_| m.rtx.is_some()) {
                md = a(md, "ssrc", format!("{rtx} cname:{cname}"));
                md = a(md, "ssrc", format!("{rtx} msid:{stream} {track}"));
            }
        }
        if !candidate_written {
            md = a(
                md,
                "candidate",
                format!("1 1 udp 2130706431 {ip} {} typ host", local.port),
            );
            md = md.with_property_attribute("end-of-candidates".into());
            candidate_written = true;
        }
        sd = sd.with_media(md);
    }
    sd.marshal()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/sdp");

    /// A captured SDP; a missing file fails the test (testdata/README.md).
    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!("{FIX}/{name}"))
            .unwrap_or_else(|e| panic!("testdata/sdp/{name}: {e}"))
    }

    fn codec(pt: u8, name: &str, fmtp: Option<&str>) -> Codec {
        Codec {
            pt,
            name: name.into(),
            clock_rate: 90_000,
            channels: None,
            fmtp: fmtp.map(str::to_string),
        }
    }

    #[test]
    fn video_codecs_follow_the_clients_order_and_match_by_profile() {
        let section = |codecs: Vec<Codec>| {
            let mut m = parse(include_str!(
                "../../testdata/sdp/offer-audio-video-sendrecv.sdp"
            ))
            .expect("offer")
            .media
            .remove(1);
            m.codecs = codecs;
            m
        };
        let pick = |codecs: Vec<Codec>| section(codecs).preferred_codec().map(|c| c.pt);
        let vp8 = codec(96, "VP8", None);
        let vp9_2 = codec(100, "VP9", Some("profile-id=2"));
        let vp9_0 = codec(98, "VP9", Some("profile-id=0"));
        let av1 = codec(45, "AV1", Some("level-idx=5;profile=0;tier=0"));
        let h264_0 = codec(104, "H264", Some("packetization-mode=0"));
        let h264_1 = codec(
            102,
            "H264",
            Some("level-asymmetry-allowed=1;packetization-mode=1"),
        );
        assert_eq!(pick(vec![av1.clone(), vp8.clone()]), Some(45));
        assert_eq!(
            pick(vec![vp9_2.clone(), vp9_0.clone(), vp8.clone()]),
            Some(98)
        );
        assert_eq!(pick(vec![h264_0.clone(), h264_1.clone()]), Some(102));
        assert_eq!(pick(vec![h264_0.clone(), vp9_2.clone()]), None);
        // A subscriber's own payload type for the publisher's codec: the
        // same VP9 profile (absent means 0), not just the same name.
        let sub = section(vec![vp9_2, codec(50, "VP9", None), av1, vp8]);
        assert_eq!(sub.matching_codec(&vp9_0).map(|c| c.pt), Some(50));
        assert_eq!(
            sub.matching_codec(&codec(35, "AV1", None)).map(|c| c.pt),
            Some(45)
        );
        assert_eq!(sub.matching_codec(&h264_1), None);
        assert_eq!(fmtp_param(Some("a=1; b = 2"), "b"), Some("2"));
    }

    #[test]
    fn parses_chromium_offer() {
        let sdp = fixture("offer-audio-video-sendrecv.sdp");
        let o = parse(&sdp).expect("parses");
        validate_offer(&o).expect("usable");
        assert_eq!(o.setup, "actpass");
        assert_eq!(o.media.len(), 2);
        let audio = &o.media[0];
        assert_eq!(audio.kind, Some(MediaKind::Audio));
        assert_eq!(audio.direction, Direction::SendRecv);
        assert!(audio.ssrc.is_some());
        assert_eq!(
            audio.preferred_codec().map(|c| c.name.as_str()),
            Some("opus")
        );
        let video = &o.media[1];
        assert_eq!(
            video.preferred_codec().map(|c| c.name.as_str()),
            Some("VP8")
        );
        assert!(video.rtx_ssrc.is_some(), "FID group read");
        let vp8 = video.preferred_codec().expect("vp8").pt;
        let rtx = video.rtx_for(vp8).expect("Chromium offers RTX for VP8");
        assert_eq!((rtx.name.as_str(), rtx.clock_rate), ("rtx", 90000));
        assert!(
            audio
                .rtx_for(audio.preferred_codec().expect("opus").pt)
                .is_none()
        );
        assert!(audio.mid_ext_id.is_some());
        assert!(video.twcc_ext_id.is_some(), "Chromium offers transport-cc");
    }

    #[test]
    fn parses_recvonly_offer_and_simulcast_offer() {
        for f in [
            "offer-recvonly-audio-video.sdp",
            "offer-audio-video-simulcast.sdp",
        ] {
            let sdp = fixture(f);
            let o = parse(&sdp).expect(f);
            validate_offer(&o).expect(f);
        }
        // Chromium's three layers, in a=simulcast order, and their extensions.
        let o = parse(&fixture("offer-audio-video-simulcast.sdp")).expect("simulcast offer");
        let video = o
            .media
            .iter()
            .find(|m| m.kind == Some(MediaKind::Video))
            .expect("video");
        assert_eq!(video.send_rids, ["q", "h", "f"]);
        assert_eq!(
            (video.rid_ext_id, video.repaired_rid_ext_id),
            (Some(10), Some(11))
        );
        assert_eq!(video.ssrc, None, "Chromium announces no SSRC for simulcast");
    }

    /// Firefox 153 (`max-bundle`) offers every m-section after the first
    /// with port 0 and `a=bundle-only` (RFC 9143 §6): bundled, not rejected.
    #[test]
    fn firefox_bundle_only_sections_are_accepted() {
        let o = parse(&fixture("firefox-offer-audio-video-simulcast.sdp")).expect("parses");
        validate_offer(&o).expect("usable");
        assert_eq!(o.setup, "actpass");
        let video = &o.media[1];
        assert!(!video.rejected, "bundle-only in the BUNDLE group");
        assert!(video.publishes());
        assert_eq!(video.direction, Direction::SendOnly);
        assert_eq!(
            video.preferred_codec().map(|c| (c.name.as_str(), c.pt)),
            Some(("VP8", 120))
        );
        assert_eq!(video.rtx_for(120).map(|c| c.pt), Some(124));
        // Firefox's layers, and its per-layer FID groups (the first read).
        assert_eq!(video.send_rids, ["h", "f"]);
        assert_eq!(
            (video.rid_ext_id, video.repaired_rid_ext_id),
            (Some(9), Some(10)),
            "extmap ids with a direction (`9/sendonly`)"
        );
        assert_eq!(
            (video.ssrc, video.rtx_ssrc),
            (Some(1_185_204_161), Some(1_186_419_574))
        );
        assert_eq!(video.dd_ext_id, Some(8));
        assert_eq!(video.twcc_ext_id, Some(7));
        assert_eq!(video.abs_send_time_ext_id, Some(4));
        let audio = &o.media[0];
        assert!(audio.publishes());
        assert_eq!(audio.audio_level_ext_id, Some(1));

        let o = parse(&fixture("firefox-offer-audio-video.sdp")).expect("parses");
        let video = &o.media[1];
        assert!(video.publishes() && video.send_rids.is_empty());
        assert_eq!(
            (video.ssrc, video.rtx_ssrc),
            (Some(1_934_572_943), Some(2_812_827_909))
        );
    }

    /// Port 0 rejects a section that is not bundle-only, or that is
    /// bundle-only but outside the BUNDLE group.
    #[test]
    fn port_zero_outside_bundle_or_without_bundle_only_is_rejected() {
        let ff = fixture("firefox-offer-audio-video-simulcast.sdp");
        let outside = ff.replace("a=group:BUNDLE 0 1", "a=group:BUNDLE 0");
        assert!(parse(&outside).expect("parses").media[1].rejected);
        let no_group = ff.replace("a=group:BUNDLE 0 1\r\n", "");
        assert!(parse(&no_group).expect("parses").media[1].rejected);
        let plain = ff.replace("a=bundle-only\r\n", "");
        let o = parse(&plain).expect("parses");
        assert!(o.media[1].rejected && !o.media[1].publishes());
        assert!(!o.media[0].rejected, "the first section has its port");
    }

    /// Firefox's answer to one of our offers (a `update`): port 9 on every
    /// section, DTLS `active`, extmap directions; all accepted.
    #[test]
    fn firefox_answer_to_our_offer_accepts_every_section() {
        let offer = parse(&fixture("sfu-offer-to-firefox.input.sdp")).expect("ours parses");
        let a = parse(&fixture("firefox-answer-to-sfu-offer.sdp")).expect("parses");
        assert_eq!(a.setup, "active");
        let mids = |p: &PeerSdp| p.media.iter().map(|m| m.mid.clone()).collect::<Vec<_>>();
        assert_eq!(mids(&a), mids(&offer));
        assert!(a.media.iter().all(|m| !m.rejected));
        let recv: Vec<Direction> = a.media[2..].iter().map(|m| m.direction).collect();
        assert_eq!(recv, [Direction::RecvOnly, Direction::RecvOnly]);
        // Firefox declines abs-send-time on the audio it receives.
        assert_eq!(a.media[2].abs_send_time_ext_id, None);
        assert_eq!(a.media[3].abs_send_time_ext_id, Some(4));
    }

    #[test]
    fn simulcast_is_read_only_from_declared_send_rids() {
        let base = fixture("offer-audio-video-simulcast.sdp");
        let video = |sdp: &str| {
            parse(sdp)
                .expect("parses")
                .media
                .into_iter()
                .find(|m| m.kind == Some(MediaKind::Video))
                .expect("video")
        };
        // Paused layers (~) count; alternatives take the first; an
        // undeclared RID is left out; one layer left is no simulcast.
        let cases = [
            ("a=simulcast:send q;h;f", vec!["q", "h", "f"]),
            ("a=simulcast:send ~q;h,f", vec!["q", "h"]),
            ("a=simulcast:send q;x", vec![]),
            ("a=simulcast:recv q;h;f", vec![]),
        ];
        for (line, want) in cases {
            let sdp = base.replace("a=simulcast:send q;h;f", line);
            assert_eq!(video(&sdp).send_rids, want, "{line}");
        }
    }

    #[test]
    fn an_answer_accepting_simulcast_lists_the_rids_and_extensions() {
        let local = test_local();
        let vp8 = Codec {
            pt: 96,
            name: "VP8".into(),
            clock_rate: 90000,
            channels: None,
            fmtp: None,
        };
        let media = vec![LocalMedia {
            direction: Direction::RecvOnly,
            codec: Some(vp8),
            mid_ext_id: Some(4),
            rejected: false,
            simulcast_recv: Some(SimulcastRecv {
                rids: vec!["q".into(), "h".into(), "f".into()],
                rid_ext_id: 10,
                repaired_rid_ext_id: Some(11),
            }),
            ..LocalMedia::closed("1", Some(MediaKind::Video))
        }];
        let s = write(&local, "passive", &media);
        for line in [
            "a=rid:q recv\r\n",
            "a=rid:h recv\r\n",
            "a=rid:f recv\r\n",
            "a=simulcast:recv q;h;f\r\n",
            "a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id\r\n",
            "a=extmap:11 urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id\r\n",
        ] {
            assert!(s.contains(line), "{line:?} missing in {s}");
        }
    }

    #[test]
    fn missing_pieces_are_named() {
        let sdp = fixture("offer-audio-video-sendrecv.sdp");
        let no_fp: String = sdp
            .lines()
            .filter(|l| !l.starts_with("a=fingerprint"))
            .map(|l| format!("{l}\r\n"))
            .collect();
        assert_eq!(parse(&no_fp).err(), Some(SdpError::NoFingerprint));
        let no_ice: String = sdp
            .lines()
            .filter(|l| !l.starts_with("a=ice-pwd"))
            .map(|l| format!("{l}\r\n"))
            .collect();
        assert_eq!(parse(&no_ice).err(), Some(SdpError::NoIceCredentials));
        let no_codec: String = sdp
            .lines()
            .filter(|l| {
                !["opus", "VP8", "VP9", "AV1", "H264"]
                    .iter()
                    .any(|c| l.contains(c))
            })
            .map(|l| format!("{l}\r\n"))
            .collect();
        let o = parse(&no_codec).expect("still parses");
        assert_eq!(validate_offer(&o).err(), Some(SdpError::NoUsableCodec));
        assert!(matches!(parse("hello"), Err(SdpError::Parse(_))));
    }

    fn test_local() -> LocalParams {
        LocalParams {
            ice_ufrag: "abcd".into(),
            ice_pwd: "0123456789012345678901".into(),
            fingerprint: sfu_core::proto::dtls::format_fingerprint(&[7; 32]),
            ip: "127.0.0.1".parse().expect("ip"),
            port: 40000,
            session_id: 1,
            session_version: 2,
            ice_lite: true,
        }
    }

    #[test]
    fn written_answer_parses_back() {
        let local = test_local();
        let codec = Codec {
            pt: 111,
            name: "opus".into(),
            clock_rate: 48000,
            channels: Some(2),
            fmtp: None,
        };
        let media = vec![
            LocalMedia {
                direction: Direction::RecvOnly,
                codec: Some(codec.clone()),
                mid_ext_id: Some(4),
                rejected: false,
                ..LocalMedia::closed("0", Some(MediaKind::Audio))
            },
            LocalMedia {
                direction: Direction::SendOnly,
                codec: Some(codec),
                mid_ext_id: Some(4),
                send: Some((42, "c".into(), "p1".into(), "t1".into())),
                rejected: false,
                ..LocalMedia::closed("s1", Some(MediaKind::Audio))
            },
        ];
        let s = write(&local, "passive", &media);
        assert!(s.contains("a=ice-lite\r\n"), "{s}");
        assert!(s.contains("a=group:BUNDLE 0 s1\r\n"));
        assert!(s.contains("a=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host\r\n"));
        let back = parse(&s).expect("our SDP parses");
        assert_eq!(back.ice_ufrag, "abcd");
        assert_eq!(back.fingerprint, [7; 32]);
        assert_eq!(back.media[1].ssrc, Some(42));
        assert_eq!(back.media[1].direction, Direction::SendOnly);
        assert_eq!(back.media[0].mid_ext_id, Some(4));
    }

    #[test]
    fn a_video_section_with_rtx_writes_the_fid_group_and_parses_back() {
        let local = test_local();
        let vp8 = Codec {
            pt: 96,
            name: "VP8".into(),
            clock_rate: 90000,
            channels: None,
            fmtp: None,
        };
        let rtx = Codec {
            pt: 97,
            name: "rtx".into(),
            clock_rate: 90000,
            channels: None,
            fmtp: Some("apt=96".into()),
        };
        let media = vec![LocalMedia {
            mid: "s1".into(),
            kind: Some(MediaKind::Video),
            media_token: "video".into(),
            direction: Direction::SendOnly,
            codec: Some(vp8),
            mid_ext_id: Some(4),
            twcc_ext_id: None,
            audio_level_ext_id: None,
            abs_send_time_ext_id: None,
            dd_ext_id: None,
            send: Some((42, "c".into(), "p1".into(), "t1".into())),
            rtx: Some(rtx.clone()),
            rtx_ssrc: Some(43),
            rejected: false,
            simulcast_recv: None,
        }];
        let s = write(&local, "actpass", &media);
        assert!(s.contains("m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\n"), "{s}");
        assert!(s.contains("a=fmtp:97 apt=96\r\n"), "{s}");
        assert!(s.contains("a=ssrc-group:FID 42 43\r\n"), "{s}");
        let back = parse(&s).expect("our SDP parses");
        let m = &back.media[0];
        assert_eq!((m.ssrc, m.rtx_ssrc), (Some(42), Some(43)));
        assert_eq!(m.rtx_for(96), Some(&rtx));
        assert_eq!(rtx_apt("apt=96; rtx-time=3000"), Some(96));
        assert_eq!(rtx_apt("rtx-time=3000"), None);
    }
}
