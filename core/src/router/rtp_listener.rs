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

use crate::ids::{ProducerId, Ssrc};

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

/// A transport's SSRC table. A transport has a handful of streams, so a
/// linear scan of a small vector is the fastest lookup.
#[derive(Debug, Default)]
pub struct RtpListener {
    routes: Vec<(Ssrc, Route)>,
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

    /// Removes every SSRC of `producer`.
    pub fn remove_producer(&mut self, producer: ProducerId) {
        self.routes.retain(|(_, r)| r.producer != producer);
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
}
