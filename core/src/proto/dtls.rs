//! DTLS 1.2 for DTLS-SRTP (RFC 6347, RFC 5764) on top of dimpl, sans-IO.
//!
//! The peer certificate is accepted only if its SHA-256 fingerprint equals
//! the `a=fingerprint` the peer signalled (RFC 8122 §5).

use std::sync::Arc;
use std::time::Instant;

use dimpl::{Config, Dtls, DtlsCertificate, Output};
use sha2::{Digest, Sha256};

use super::srtp::SrtpProfile;

/// A SHA-256 certificate fingerprint (32 bytes).
pub type Fingerprint = [u8; 32];

/// Our DTLS certificate: ECDSA P-256, self-signed, created once per process
/// and shared by every transport of every worker.
#[derive(Clone)]
pub struct Certificate {
    inner: DtlsCertificate,
    fingerprint: Fingerprint,
}

impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Certificate(sha-256 {})",
            format_fingerprint(&self.fingerprint)
        )
    }
}

impl Certificate {
    /// Generates a fresh self-signed ECDSA P-256 certificate.
    ///
    /// Errors: [`DtlsError::Certificate`] (only if the system RNG fails).
    pub fn generate() -> Result<Self, DtlsError> {
        let inner = dimpl::certificate::generate_self_signed_certificate()?;
        let fingerprint = sha256(&inner.certificate);
        Ok(Self { inner, fingerprint })
    }

    /// SHA-256 fingerprint of the DER certificate.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// Fingerprint as written in SDP `a=fingerprint:sha-256 <this>` (RFC 8122 §5):
    /// upper-case hex pairs separated by colons.
    pub fn fingerprint_sdp(&self) -> String {
        format_fingerprint(&self.fingerprint)
    }
}

fn sha256(data: &[u8]) -> Fingerprint {
    Sha256::digest(data).into()
}

/// Formats a fingerprint as `AB:CD:…` (RFC 8122 §5).
pub fn format_fingerprint(fp: &Fingerprint) -> String {
    let mut s = String::with_capacity(95);
    for (i, b) in fp.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        s.push_str(&format!("{b:02X}"));
    }
    s
}

/// Parses the value of `a=fingerprint:sha-256 AB:CD:…` (the part after the
/// hash name). Case-insensitive. `None` unless exactly 32 hex pairs.
pub fn parse_fingerprint(value: &str) -> Option<Fingerprint> {
    let mut out = [0u8; 32];
    let mut n = 0;
    for part in value.trim().split(':') {
        if n == 32 || part.len() != 2 {
            return None;
        }
        out[n] = u8::from_str_radix(part, 16).ok()?;
        n += 1;
    }
    (n == 32).then_some(out)
}

/// Which side of the DTLS handshake we take (RFC 5763 §5: `a=setup`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtlsRole {
    /// We wait for the ClientHello (we answered `a=setup:passive`).
    Server,
    /// We send the ClientHello (we answered `a=setup:active`).
    Client,
}

/// Why the DTLS association failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DtlsError {
    /// The peer certificate's fingerprint is not the signalled one.
    #[error("peer certificate fingerprint does not match a=fingerprint")]
    FingerprintMismatch,
    /// The handshake completed without a peer certificate.
    #[error("peer sent no certificate")]
    NoPeerCertificate,
    /// DTLS-SRTP keys were not exported (no `use_srtp` agreed).
    #[error("no SRTP profile negotiated")]
    NoSrtp,
    /// dimpl reported a fatal error (handshake failure, timeout, alert…).
    #[error("dtls: {0}")]
    Protocol(#[from] dimpl::Error),
    /// The certificate could not be generated (the system RNG failed).
    #[error("cannot generate the DTLS certificate: {0}")]
    Certificate(#[from] dimpl::certificate::CertificateError),
    /// The exported keys do not make an SRTP session (RFC 5764 §4.2).
    #[error("SRTP keys: {0}")]
    Srtp(#[from] crate::proto::srtp::SrtpError),
    /// The peer closed the association (close_notify).
    #[error("peer closed DTLS")]
    Closed,
}

/// Exported SRTP keys.
#[derive(Debug, Clone)]
pub struct SrtpKeys {
    /// Profile chosen in the handshake.
    pub profile: SrtpProfile,
    /// `client_key | server_key | client_salt | server_salt` (RFC 5764 §4.2).
    pub material: Vec<u8>,
}

/// A DTLS endpoint: feed datagrams and time, take datagrams to send, and
/// read its keys (`keys()`) once connected.
pub struct DtlsEndpoint {
    dtls: Dtls,
    role: DtlsRole,
    remote_fingerprint: Fingerprint,
    peer_verified: bool,
    keys: Option<SrtpKeys>,
    handshake_done: bool,
    connected: bool,
    failed: Option<DtlsError>,
    next_timeout: Option<Instant>,
    out: Vec<Vec<u8>>,
    /// Application data received (SCTP packets, RFC 8261), oldest first.
    app_in: std::collections::VecDeque<Vec<u8>>,
    buf: Vec<u8>,
}

impl std::fmt::Debug for DtlsEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DtlsEndpoint")
            .field("role", &self.role)
            .field("connected", &self.connected)
            .field("failed", &self.failed)
            .finish()
    }
}

/// The shared dimpl configuration: client certificates required (WebRTC
/// is mutually authenticated by fingerprints), 1150-byte records.
pub fn default_config() -> Arc<Config> {
    Arc::new(Config::default())
}

impl DtlsEndpoint {
    /// Creates an endpoint in `role` that will accept only a peer whose
    /// certificate hashes to `remote_fingerprint`.
    pub fn new(
        config: Arc<Config>,
        cert: &Certificate,
        role: DtlsRole,
        remote_fingerprint: Fingerprint,
        now: Instant,
    ) -> Self {
        let mut dtls = Dtls::new_12(config, cert.inner.clone(), now);
        if role == DtlsRole::Client {
            dtls.set_active(true);
        }
        let mut ep = Self {
            dtls,
            role,
            remote_fingerprint,
            peer_verified: false,
            keys: None,
            handshake_done: false,
            connected: false,
            failed: None,
            next_timeout: None,
            out: Vec::new(),
            app_in: std::collections::VecDeque::new(),
            buf: vec![0u8; 2048],
        };
        // dimpl needs its clock set before the first packet (it panics otherwise).
        ep.handle_timeout(now);
        ep
    }

    /// Our role.
    pub fn role(&self) -> DtlsRole {
        self.role
    }

    /// Feeds one received DTLS datagram.
    pub fn handle_packet(&mut self, now: Instant, datagram: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        if let Err(e) = self.dtls.handle_timeout(now) {
            self.fail(DtlsError::Protocol(e));
            return;
        }
        if let Err(e) = self.dtls.handle_packet(datagram) {
            self.fail(DtlsError::Protocol(e));
            return;
        }
        self.drain();
    }

    /// Advances time: retransmissions and the handshake deadline.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.failed.is_some() {
            return;
        }
        if let Err(e) = self.dtls.handle_timeout(now) {
            self.fail(DtlsError::Protocol(e));
            return;
        }
        self.drain();
    }

    fn fail(&mut self, e: DtlsError) {
        if self.failed.is_none() {
            self.failed = Some(e);
        }
        self.next_timeout = None;
    }

    fn drain(&mut self) {
        loop {
            match self.dtls.poll_output(&mut self.buf) {
                Output::Packet(p) => self.out.push(p.to_vec()),
                Output::BufferTooSmall { needed } => self.buf.resize(needed, 0),
                Output::Timeout(t) => {
                    self.next_timeout = Some(t);
                    break;
                }
                Output::Connected => self.handshake_done = true,
                Output::PeerCert(der) => {
                    if sha256(der) == self.remote_fingerprint {
                        self.peer_verified = true;
                    } else {
                        self.fail(DtlsError::FingerprintMismatch);
                        return;
                    }
                }
                Output::KeyingMaterial(km, profile) => {
                    let profile = match profile {
                        dimpl::SrtpProfile::AES128_CM_SHA1_80 => SrtpProfile::Aes128CmSha1_80,
                        dimpl::SrtpProfile::AEAD_AES_128_GCM => SrtpProfile::AeadAes128Gcm,
                        dimpl::SrtpProfile::AEAD_AES_256_GCM => SrtpProfile::AeadAes256Gcm,
                        _ => {
                            self.fail(DtlsError::NoSrtp);
                            return;
                        }
                    };
                    self.keys = Some(SrtpKeys {
                        profile,
                        material: km.to_vec(),
                    });
                }
                // At most this many SCTP packets wait here: the transport
                // reads them after every datagram.
                Output::ApplicationData(d) if self.app_in.len() < 1024 => {
                    self.app_in.push_back(d.to_vec());
                }
                Output::CloseNotify => {
                    self.fail(DtlsError::Closed);
                    return;
                }
                _ => {}
            }
        }
        if self.handshake_done && !self.connected {
            if !self.peer_verified {
                self.fail(DtlsError::NoPeerCertificate);
            } else if self.keys.is_none() {
                self.fail(DtlsError::NoSrtp);
            } else {
                self.connected = true;
            }
        }
    }

    /// Takes the datagrams to send, oldest first.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if self.out.is_empty() {
            None
        } else {
            Some(self.out.remove(0))
        }
    }

    /// Encrypts `data` (one SCTP packet) as one application-data record
    /// for [`DtlsEndpoint::poll_transmit`]. Returns false, sending nothing,
    /// before the handshake completed or after the association failed.
    pub fn send_application_data(&mut self, data: &[u8]) -> bool {
        if !self.is_connected() {
            return false;
        }
        match self.dtls.send_application_data(data) {
            Ok(n) if n == data.len() => {
                self.drain();
                true
            }
            Ok(_) => false,
            Err(e) => {
                self.fail(DtlsError::Protocol(e));
                false
            }
        }
    }

    /// Next application data the peer sent (an SCTP packet), oldest first.
    pub fn poll_application_data(&mut self) -> Option<Vec<u8>> {
        self.app_in.pop_front()
    }

    /// When [`DtlsEndpoint::handle_timeout`] must next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.connected || self.failed.is_some() {
            None
        } else {
            self.next_timeout
        }
    }

    /// True once the handshake completed with a verified peer and SRTP keys.
    pub fn is_connected(&self) -> bool {
        self.connected && self.failed.is_none()
    }

    /// The failure, if the association is dead.
    pub fn error(&self) -> Option<&DtlsError> {
        self.failed.as_ref()
    }

    /// Takes the exported SRTP keys (once) after connecting.
    pub fn take_keys(&mut self) -> Option<SrtpKeys> {
        if self.is_connected() {
            self.keys.take()
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_parse_and_format_round_trip() {
        let fp: Fingerprint = std::array::from_fn(|i| i as u8 * 7);
        let s = format_fingerprint(&fp);
        assert_eq!(s.len(), 95);
        assert_eq!(parse_fingerprint(&s), Some(fp));
        assert_eq!(parse_fingerprint(&s.to_lowercase()), Some(fp));
        assert_eq!(parse_fingerprint(&s[..s.len() - 3]), None);
        assert_eq!(parse_fingerprint("zz"), None);
        assert_eq!(parse_fingerprint(&format!("{s}:00")), None);
    }

    /// Runs a handshake in memory; the server expects `server_expects`
    /// (the client's real fingerprint when `None`).
    fn handshake(server_expects: Option<Fingerprint>) -> (DtlsEndpoint, DtlsEndpoint) {
        let now = Instant::now();
        let (cs, cc) = (
            Certificate::generate().expect("cert"),
            Certificate::generate().expect("cert"),
        );
        let cfg = default_config();
        let expect = server_expects.unwrap_or(cc.fingerprint());
        let mut server = DtlsEndpoint::new(cfg.clone(), &cs, DtlsRole::Server, expect, now);
        let mut client = DtlsEndpoint::new(cfg, &cc, DtlsRole::Client, cs.fingerprint(), now);
        for _ in 0..20 {
            while let Some(p) = client.poll_transmit() {
                server.handle_packet(now, &p);
            }
            while let Some(p) = server.poll_transmit() {
                client.handle_packet(now, &p);
            }
        }
        (server, client)
    }

    #[test]
    fn handshake_exports_matching_keys() {
        let (mut server, mut client) = handshake(None);
        assert!(server.is_connected(), "{server:?}");
        assert!(client.is_connected(), "{client:?}");
        let (ks, kc) = (
            server.take_keys().expect("keys"),
            client.take_keys().expect("keys"),
        );
        assert_eq!(ks.profile, kc.profile);
        assert_eq!(ks.material, kc.material);
        assert_eq!(ks.material.len(), ks.profile.keying_material_len());
    }

    #[test]
    fn wrong_peer_fingerprint_fails_the_server() {
        let (server, _client) = handshake(Some([0xaa; 32]));
        assert!(!server.is_connected());
        assert_eq!(server.error(), Some(&DtlsError::FingerprintMismatch));
    }
}
