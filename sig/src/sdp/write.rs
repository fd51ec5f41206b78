//! Writing our answers and offers (ICE-lite, BUNDLE, rtcp-mux).

use std::net::IpAddr;

use sdp::description::common::{Address, ConnectionInformation};
use sdp::description::media::{MediaDescription, MediaName, RangedPort};
use sdp::description::session::{Origin, SessionDescription};
use sfu_core::proto::rtp::{Extension, ExtensionMap};
use sfu_core::router::MediaKind;

use super::*;

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
    /// The ICE-TCP port of the room's worker (a passive TCP host candidate,
    /// RFC 6544), if any.
    pub tcp_port: Option<u16>,
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
    /// The header extensions to declare (`a=extmap`, RFC 8285 §5), in
    /// [`Extension::ALL`] order: what we send carries them (MID, audio
    /// level, abs-send-time, dependency descriptor), or in an answer to a
    /// publisher, what we read (transport-wide sequence number: we send
    /// transport-cc feedback; RID and repaired RID with `simulcast_recv`).
    pub extensions: ExtensionMap,
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
    /// Data channels (an `m=application` section, not rejected): the
    /// `a=sctp-port` to write, with our `a=max-message-size` (RFC 8841
    /// §5, §6).
    pub sctp_port: Option<u16>,
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
            extensions: ExtensionMap::EMPTY,
            send: None,
            rtx: None,
            rtx_ssrc: None,
            rejected: true,
            simulcast_recv: None,
            sctp_port: None,
        }
    }
}

/// The simulcast layers an answer accepts (RFC 8853 §5.3); the RID
/// extension ids go in [`LocalMedia::extensions`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulcastRecv {
    /// The RIDs, in the offer's order.
    pub rids: Vec<String>,
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
    if media
        .iter()
        .any(|m| m.extensions.has(Extension::DependencyDescriptor) && !m.rejected)
    {
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
        if let Some(port) = m.sctp_port {
            md = a(md, "sctp-port", port.to_string());
            md = a(
                md,
                "max-message-size",
                sfu_core::proto::sctp::MAX_MESSAGE_SIZE.to_string(),
            );
            md = candidate(md, &mut candidate_written, &ip, local);
            sd = sd.with_media(md);
            continue;
        }
        for (ext, id) in m.extensions.iter() {
            md = a(md, "extmap", format!("{id} {}", ext.uri()));
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
        md = candidate(md, &mut candidate_written, &ip, local);
        sd = sd.with_media(md);
    }
    sd.marshal()
}

/// Priority of our UDP host candidate (RFC 8445 §5.1.2.1: type
/// preference 126, local preference 65535, component 1).
const UDP_PRIORITY: u32 = (126 << 24) | (65535 << 8) | 255;
/// Priority of our passive TCP host candidate (RFC 6544 §4.2: type
/// preference 90, as libwebrtc gives host TCP; local preference with the
/// passive direction's 4 << 13 and 8191 others): below UDP's, so UDP wins
/// whenever it works.
const TCP_PRIORITY: u32 = (90 << 24) | ((4 << 13 | 8191) << 8) | 255;

/// Our host candidates (UDP, and passive TCP when the room's worker
/// listens), on the first bundled m-section only.
fn candidate(
    md: MediaDescription,
    written: &mut bool,
    ip: &str,
    local: &LocalParams,
) -> MediaDescription {
    if std::mem::replace(written, true) {
        return md;
    }
    let mut md = md.with_value_attribute(
        "candidate".into(),
        format!("1 1 udp {UDP_PRIORITY} {ip} {} typ host", local.port),
    );
    if let Some(tcp) = local.tcp_port {
        md = md.with_value_attribute(
            "candidate".into(),
            format!("2 1 tcp {TCP_PRIORITY} {ip} {tcp} typ host tcptype passive"),
        );
    }
    md.with_property_attribute("end-of-candidates".into())
}
