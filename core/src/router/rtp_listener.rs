//! RtpListener: which producer stream an incoming RTP packet belongs to, by
//! SSRC, per transport.
//!
//! SSRCs the offer announced are known from the start. Simulcast offers
//! from Chromium announce none: each layer's SSRC is bound from the first
//! packet that carries the producer's MID and the layer's RID in header
//! extensions (RFC 8852 §3.1, RFC 8843 §15), and an RTX stream's from its
//! repaired RID (RFC 8852 §3.2). Chromium stops sending those extensions
//! once it has receiver reports for the SSRC, so a binding stays until the
//! producer closes or the same layer shows up under another SSRC.

use crate::ids::{Mid, ProducerId, Pt, Rid, Ssrc};
use crate::proto::rtp::{Extension, RtpHeader};
use crate::router::producer::ProducerParams;

/// Where a packet goes: a producer's encoding, as media or as its RTX.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The producer.
    pub producer: ProducerId,
    /// Index of the encoding in the producer's `encodings`.
    pub encoding: u8,
    /// The SSRC carries the encoding's RTX stream (RFC 4588).
    pub rtx: bool,
}

/// An SSRC bound from a packet's MID and RID extensions
/// ([`RtpListener::bind_from_extensions`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    /// Where the SSRC now goes.
    pub route: Route,
    /// The SSRC the same route had before (the publisher restarted the
    /// stream), now unbound.
    pub replaced: Option<Ssrc>,
}

/// How to recognise a producer's packets whose SSRC was not announced: its
/// MID and, per encoding, its RID (RFC 8843 §15, RFC 8852 §3).
#[derive(Debug)]
struct MidRule {
    producer: ProducerId,
    mid: Mid,
    mid_ext: u8,
    rid_ext: Option<u8>,
    repaired_rid_ext: Option<u8>,
    /// RTX payload types: a packet with one is the RTX stream of the
    /// encoding its repaired RID names.
    rtx_pts: Vec<Pt>,
    /// The RIDs of the encodings, by index.
    rids: Vec<Option<Rid>>,
}

/// A transport's SSRC table, and the MID/RID rules that bind SSRCs the
/// offer did not announce. A transport has a handful of streams, so a
/// linear scan of a small vector is the fastest lookup.
#[derive(Debug, Default)]
pub struct RtpListener {
    routes: Vec<(Ssrc, Route)>,
    rules: Vec<MidRule>,
}

impl RtpListener {
    /// The route of `ssrc`, if bound.
    #[inline]
    pub fn get(&self, ssrc: Ssrc) -> Option<Route> {
        self.routes
            .iter()
            .find(|(s, _)| *s == ssrc)
            .map(|(_, r)| *r)
    }

    /// Binds `ssrc` to `route`. A different SSRC bound to the same route
    /// before (the publisher restarted the stream) is unbound, and so is
    /// another route this SSRC had. Returns the SSRC it replaced, if any.
    pub fn bind(&mut self, ssrc: Ssrc, route: Route) -> Option<Ssrc> {
        let replaced = self
            .routes
            .iter()
            .find(|(s, r)| *r == route && *s != ssrc)
            .map(|(s, _)| *s);
        self.routes.retain(|(s, r)| *r != route && *s != ssrc);
        self.routes.push((ssrc, route));
        replaced
    }

    /// Adds producer `id`: binds the SSRCs of its encodings that the offer
    /// announced, and, when it has a MID and the MID extension, the rule
    /// that binds the others from their first packets.
    pub fn add_producer(&mut self, id: ProducerId, params: &ProducerParams) {
        for (i, e) in params.encodings.iter().enumerate() {
            let route = |rtx| Route {
                producer: id,
                encoding: i as u8,
                rtx,
            };
            if let Some(ssrc) = e.ssrc {
                self.bind(ssrc, route(false));
            }
            if let Some(ssrc) = e.rtx_ssrc {
                self.bind(ssrc, route(true));
            }
        }
        let ext = &params.extensions;
        if let (Some(mid), Some(mid_ext)) = (params.mid, ext.get(Extension::Mid)) {
            self.rules.push(MidRule {
                producer: id,
                mid,
                mid_ext,
                rid_ext: ext.get(Extension::Rid),
                repaired_rid_ext: ext.get(Extension::RepairedRid),
                rtx_pts: params.rtx_payload_types.iter().map(|(r, _)| *r).collect(),
                rids: params.encodings.iter().map(|e| e.rid).collect(),
            });
        }
    }

    /// Binds the SSRC of `pkt` (header `hdr`), which is not bound yet, from
    /// its MID and RID (or, on an RTX payload type, repaired RID) header
    /// extensions (RFC 8852 §3, RFC 8843 §15): the first producer whose MID
    /// it carries, its encoding with that RID. A producer with one encoding
    /// and no RID binds by MID alone. `None` when nothing matches.
    pub fn bind_from_extensions(&mut self, pkt: &[u8], hdr: &RtpHeader) -> Option<Bound> {
        let route = self.rules.iter().find_map(|rule| {
            if hdr.extension(pkt, rule.mid_ext) != Some(rule.mid.as_bytes()) {
                return None;
            }
            let rtx = rule.rtx_pts.contains(&hdr.pt);
            let rid_ext = if rtx {
                rule.repaired_rid_ext.or(rule.rid_ext)
            } else {
                rule.rid_ext
            };
            let rid = rid_ext
                .and_then(|id| hdr.extension(pkt, id))
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(Rid::new);
            let encoding = match (rid, rule.rids.as_slice()) {
                (Some(r), rids) => rids.iter().position(|x| *x == Some(r)),
                (None, [None]) => Some(0),
                (None, _) => None,
            }?;
            Some(Route {
                producer: rule.producer,
                encoding: encoding as u8,
                rtx,
            })
        })?;
        let replaced = self.bind(hdr.ssrc, route);
        Some(Bound { route, replaced })
    }

    /// Removes every SSRC and the rule of `producer`.
    pub fn remove_producer(&mut self, producer: ProducerId) {
        self.routes.retain(|(_, r)| r.producer != producer);
        self.rules.retain(|r| r.producer != producer);
    }

    /// Whether `ssrc` is bound to anything.
    pub fn contains(&self, ssrc: Ssrc) -> bool {
        self.get(ssrc).is_some()
    }

    /// Bound SSRCs.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Nothing bound.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(p: u64, e: u8, rtx: bool) -> Route {
        Route {
            producer: ProducerId(p),
            encoding: e,
            rtx,
        }
    }

    #[test]
    fn binds_rebinds_and_forgets() {
        let mut l = RtpListener::default();
        assert_eq!(l.bind(Ssrc(1), route(1, 0, false)), None);
        assert_eq!(l.bind(Ssrc(2), route(1, 1, false)), None);
        assert_eq!(l.bind(Ssrc(3), route(1, 1, true)), None);
        assert_eq!(l.get(Ssrc(2)), Some(route(1, 1, false)));
        assert_eq!(l.get(Ssrc(3)), Some(route(1, 1, true)));
        // The same layer under a new SSRC replaces the old one.
        assert_eq!(l.bind(Ssrc(4), route(1, 1, false)), Some(Ssrc(2)));
        assert_eq!(l.get(Ssrc(2)), None);
        assert_eq!(l.get(Ssrc(4)), Some(route(1, 1, false)));
        // Binding the same again changes nothing.
        assert_eq!(l.bind(Ssrc(4), route(1, 1, false)), None);
        assert_eq!(l.len(), 3);
        l.bind(Ssrc(9), route(2, 0, false));
        l.remove_producer(ProducerId(1));
        assert_eq!(l.len(), 1);
        assert!(l.contains(Ssrc(9)) && !l.contains(Ssrc(1)));
    }

    /// A packet on `ssrc` with payload type `pt` and one-byte extensions
    /// MID (id 1) and RID or repaired RID (id 2 or 3).
    fn packet(ssrc: u32, pt: u8, mid: &str, rid: Option<(u8, &str)>) -> Vec<u8> {
        let mut ext = vec![0x10 | (mid.len() as u8 - 1)];
        ext.extend_from_slice(mid.as_bytes());
        if let Some((id, r)) = rid {
            ext.push((id << 4) | (r.len() as u8 - 1));
            ext.extend_from_slice(r.as_bytes());
        }
        while ext.len() % 4 != 0 {
            ext.push(0);
        }
        let mut p = vec![0x90, pt, 0, 1, 0, 0, 0, 1];
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(&[0xbe, 0xde, 0, (ext.len() / 4) as u8]);
        p.extend_from_slice(&ext);
        p.extend_from_slice(b"payload");
        p
    }

    fn simulcast(mid: &str) -> ProducerParams {
        use crate::proto::rtp::ExtensionMap;
        use crate::router::{EncodingParams, MediaKind};
        ProducerParams {
            transport: crate::ids::TransportId(1),
            kind: MediaKind::Video,
            encodings: ["l", "h"]
                .iter()
                .map(|r| EncodingParams {
                    rid: Rid::new(r),
                    ssrc: None,
                    rtx_ssrc: None,
                })
                .collect(),
            mid: Mid::new(mid),
            payload_types: vec![Pt(96)],
            video_codec: None,
            rtx_payload_types: vec![(Pt(97), Pt(96))],
            extensions: ExtensionMap::EMPTY
                .with(Extension::Mid, Some(1))
                .with(Extension::Rid, Some(2))
                .with(Extension::RepairedRid, Some(3)),
            keep_gop: false,
        }
    }

    #[test]
    fn unannounced_ssrcs_bind_by_mid_and_rid() {
        let mut l = RtpListener::default();
        l.add_producer(ProducerId(1), &simulcast("0"));
        l.add_producer(ProducerId(2), &simulcast("1"));
        let bind = |l: &mut RtpListener, p: &[u8]| {
            let h = RtpHeader::parse(p).expect("valid");
            l.bind_from_extensions(p, &h)
        };
        // MID "1", RID "h": producer 2's second encoding.
        let b = bind(&mut l, &packet(10, 96, "1", Some((2, "h"))));
        assert_eq!(
            b,
            Some(Bound {
                route: route(2, 1, false),
                replaced: None
            })
        );
        assert_eq!(l.get(Ssrc(10)), Some(route(2, 1, false)));
        // RTX of MID "0", repaired RID "l".
        let b = bind(&mut l, &packet(11, 97, "0", Some((3, "l"))));
        assert_eq!(b.map(|b| b.route), Some(route(1, 0, true)));
        // An unknown RID, an unknown MID, and no RID on a simulcast
        // producer bind nothing.
        assert_eq!(bind(&mut l, &packet(12, 96, "0", Some((2, "x")))), None);
        assert_eq!(bind(&mut l, &packet(13, 96, "7", Some((2, "l")))), None);
        assert_eq!(bind(&mut l, &packet(14, 96, "0", None)), None);
        // The layer restarts under a new SSRC: the old one is replaced.
        let b = bind(&mut l, &packet(15, 96, "1", Some((2, "h"))));
        assert_eq!(b.and_then(|b| b.replaced), Some(Ssrc(10)));
        // A closed producer's rule is gone with its SSRCs.
        l.remove_producer(ProducerId(2));
        assert_eq!(bind(&mut l, &packet(16, 96, "1", Some((2, "l")))), None);
        assert_eq!(l.get(Ssrc(15)), None);
    }
}
