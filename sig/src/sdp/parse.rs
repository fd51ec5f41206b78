//! Reading a peer's offer or answer with the `sdp` crate.

use std::io::Cursor;

use sdp::description::common::Attribute;
use sdp::description::media::MediaDescription;
use sdp::description::session::SessionDescription;
use sfu_core::Rid;
use sfu_core::proto::dtls::parse_fingerprint;
use sfu_core::proto::rtp::{Extension, valid_ext_id};
use sfu_core::router::MediaKind;

use super::*;

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
    let extmaps: Vec<&str> = attrs
        .iter()
        .filter(|a| a.key == "extmap")
        .filter_map(|a| a.value.as_deref())
        .collect();
    let extensions = Extension::ALL
        .into_iter()
        .filter_map(|e| {
            // `a=extmap:<id>[/<direction>] <uri>`; the first line of a URI
            // counts, and an id outside 1–14 drops the extension.
            let line = extmaps
                .iter()
                .find(|v| v.split_whitespace().nth(1) == Some(e.uri()))?;
            let id = line.split(['/', ' ']).next()?.parse::<u8>().ok()?;
            valid_ext_id(id).then_some((e, id))
        })
        .collect();
    let ext_ids = extmaps
        .iter()
        .filter_map(|v| v.split(['/', ' ']).next()?.parse::<u8>().ok())
        .filter(|id| valid_ext_id(*id))
        .fold(0u16, |m, id| m | 1 << id);
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
    // RFC 8841 §4.1: the proto ends in DTLS/SCTP and the format is
    // `webrtc-datachannel` (the pre-2017 `DTLS/SCTP 5000` + `a=sctpmap`
    // form is not taken).
    let sctp = (kind.is_none()
        && md.media_name.protos.join("/").ends_with("DTLS/SCTP")
        && md
            .media_name
            .formats
            .iter()
            .any(|f| f == "webrtc-datachannel"))
    .then(|| SctpSection {
        port: attr(attrs, "sctp-port")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or(5000),
        max_message_size: attr(attrs, "max-message-size")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or(sfu_core::proto::sctp::DEFAULT_REMOTE_MAX_MESSAGE_SIZE),
    });
    Ok(MediaSection {
        kind,
        rejected: md.media_name.port.value == 0
            && !(attrs.iter().any(|a| a.key == "bundle-only") && bundle.contains(&mid.as_str())),
        mid,
        direction: parse_direction(attrs),
        codecs,
        ssrc,
        rtx_ssrc,
        extensions,
        ext_ids,
        send_rids,
        sctp,
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
/// we forward (or one the client only wants to receive on), or data
/// channels.
///
/// Errors: [`SdpError::NoUsableCodec`].
pub fn validate_offer(offer: &PeerSdp) -> Result<(), SdpError> {
    if offer
        .media
        .iter()
        .any(|m| !m.rejected && m.preferred_codec().is_some())
        || offer.data_channels().is_some()
    {
        Ok(())
    } else {
        Err(SdpError::NoUsableCodec)
    }
}
