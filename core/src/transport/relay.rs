//! A relay: a pipe between a room's Routers on two *nodes* (machines), over
//! UDP. The pipe consumers, mirrors and feedback are those of a pipe
//! between workers (`super::pipe`); only the carriage differs. Packets go
//! from one Router's socket to the other's as SRTP and SRTCP (RFC 3711,
//! with the AEAD profile of RFC 7714), keyed without DTLS: the two nodes
//! share a secret per node pair through the directory, and each relay's
//! keys are derived from it with HKDF (RFC 5869) and a relay id that names
//! the room and is fresh for every relay, so no two relays (nor one relay
//! opened again) ever share a key.
//!
//! A datagram reaches a relay end only from the one address it was
//! connected to (the Router's address map, as for a WebRtcTransport's
//! selected address); anything else is dropped as from an unknown address.

use std::net::SocketAddr;
use std::sync::Arc;

use ring::hkdf;

use crate::proto::srtp::{SrtpError, SrtpProfile, SrtpSession};
use crate::stats::{Counter, Gauge};

/// The SRTP profile of every relay: AES-128-GCM (RFC 7714 §14.2).
pub const RELAY_PROFILE: SrtpProfile = SrtpProfile::AeadAes128Gcm;

/// Bytes of a node pair's shared secret (the HKDF input keying material).
pub const PAIR_SECRET_LEN: usize = 32;

/// Counters of one relay end, shared with the control plane for
/// `/metrics`: written only by the worker that owns the relay.
#[derive(Debug, Default)]
pub struct RelayCounters {
    /// Datagrams received from the far node and authenticated.
    pub packets_in: Counter,
    /// Their bytes (as received, SRTP included).
    pub bytes_in: Counter,
    /// Datagrams queued for the far node.
    pub packets_out: Counter,
    /// Their bytes (as sent, SRTP included).
    pub bytes_out: Counter,
    /// The round-trip time to the far node's Router, ms (RTCP reports on
    /// the relay, RFC 3550 §6.4.1 and RFC 3611 §4.5); 0 until measured.
    pub rtt_ms: Gauge,
}

/// The far end of a relay: its node's Router socket address and this end's
/// SRTP state.
#[derive(Debug)]
pub struct RelayPeer {
    /// The far Router's UDP address (its node's address, the room's port).
    pub addr: SocketAddr,
    /// The keys of this relay, both directions.
    pub(crate) srtp: SrtpSession,
    /// This end's counters.
    pub counters: Arc<RelayCounters>,
}

impl RelayPeer {
    /// The far end at `addr`, keyed from the node pair's secret
    /// `pair_secret` (at least 16 bytes; [`PAIR_SECRET_LEN`] are made) and
    /// this relay's id `relay_id` (the room and a nonce fresh for the
    /// relay, the same on both ends). `lower` says which half of the key
    /// material is ours: true on the node whose id sorts first, false on
    /// the other, so the two directions never share a key.
    ///
    /// Errors: [`SrtpError::BadKey`] for a secret under 16 bytes.
    pub fn new(
        addr: SocketAddr,
        pair_secret: &[u8],
        relay_id: &[u8],
        lower: bool,
        counters: Arc<RelayCounters>,
    ) -> Result<Self, SrtpError> {
        let material = derive_material(pair_secret, relay_id)?;
        let srtp = SrtpSession::new(RELAY_PROFILE, &material, lower)?;
        Ok(Self {
            addr,
            srtp,
            counters,
        })
    }
}

/// The RFC 5764 §4.2 keying material (`client_key | server_key |
/// client_salt | server_salt`) of one relay: HKDF-SHA256 (RFC 5869) with
/// the relay id as salt and a fixed label as info.
fn derive_material(pair_secret: &[u8], relay_id: &[u8]) -> Result<Vec<u8>, SrtpError> {
    struct Len(usize);
    impl hkdf::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    if pair_secret.len() < 16 {
        return Err(SrtpError::BadKey);
    }
    let n = RELAY_PROFILE.keying_material_len();
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, relay_id).extract(pair_secret);
    let info = [&b"sfu relay srtp"[..]];
    let okm = prk.expand(&info, Len(n)).map_err(|_| SrtpError::BadKey)?;
    let mut out = vec![0; n];
    okm.fill(&mut out).map_err(|_| SrtpError::BadKey)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(seq: u16) -> Vec<u8> {
        let mut p = vec![0x80, 96, 0, 0, 0, 0, 0, 1, 0, 0, 0, 9];
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(b"payload");
        p
    }

    fn pair(secret: &[u8], id: &[u8]) -> (RelayPeer, RelayPeer) {
        let addr: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        let c = Arc::new(RelayCounters::default());
        (
            RelayPeer::new(addr, secret, id, true, c.clone()).expect("keys"),
            RelayPeer::new(addr, secret, id, false, c).expect("keys"),
        )
    }

    #[test]
    fn the_two_ends_of_a_relay_read_each_other_and_not_another_relay() {
        let secret = [7u8; PAIR_SECRET_LEN];
        let (mut a, mut b) = pair(&secret, b"room-a/1");
        let mut buf = Vec::new();
        a.srtp.protect_rtp_into(&rtp(1), &mut buf).expect("protect");
        assert_ne!(&buf[12..19], b"payload", "encrypted");
        let mut got = buf.clone();
        let n = b.srtp.unprotect_rtp_in_place(&mut got).expect("b reads a");
        assert_eq!(&got[..n], rtp(1).as_slice());
        // The other direction has its own key.
        let mut echo = buf.clone();
        assert!(a.srtp.unprotect_rtp_in_place(&mut echo).is_err());
        // Another relay id (the room's relay opened again) reads nothing.
        let (_, mut other) = pair(&secret, b"room-a/2");
        let mut copy = buf;
        assert_eq!(
            other.srtp.unprotect_rtp_in_place(&mut copy),
            Err(SrtpError::Auth)
        );
    }

    #[test]
    fn a_short_secret_is_refused() {
        let addr: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        let r = RelayPeer::new(addr, &[1; 8], b"x", true, Arc::default());
        assert_eq!(r.err(), Some(SrtpError::BadKey));
    }
}
