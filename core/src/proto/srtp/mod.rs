//! SRTP/SRTCP protection (RFC 3711; AEAD profiles RFC 7714).
//!
//! [`SrtpSession`] holds both directions of one transport. The transform is
//! our own ([`native`]: in place, keys derived once, no per-packet
//! allocation beyond the output buffer) or, selectable while ours is proven,
//! webrtc-srtp ([`oracle`]), which stays the test oracle.

pub mod native;
pub mod oracle;

use bytes::Bytes;

/// The SRTP protection profiles negotiated through DTLS-SRTP `use_srtp`
/// (RFC 5764 §4.1.2, RFC 7714 §14.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SrtpProfile {
    /// SRTP_AES128_CM_HMAC_SHA1_80: 16 B key, 14 B salt, 10 B tag.
    Aes128CmSha1_80,
    /// SRTP_AEAD_AES_128_GCM: 16 B key, 12 B salt, 16 B tag.
    AeadAes128Gcm,
    /// SRTP_AEAD_AES_256_GCM: 32 B key, 12 B salt, 16 B tag.
    AeadAes256Gcm,
}

impl SrtpProfile {
    /// Master key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            Self::Aes128CmSha1_80 | Self::AeadAes128Gcm => 16,
            Self::AeadAes256Gcm => 32,
        }
    }

    /// Master salt length in bytes.
    pub fn salt_len(self) -> usize {
        match self {
            Self::Aes128CmSha1_80 => 14,
            Self::AeadAes128Gcm | Self::AeadAes256Gcm => 12,
        }
    }

    /// Bytes of keying material exported by DTLS (RFC 5764 §4.2): 2 keys + 2 salts.
    pub fn keying_material_len(self) -> usize {
        2 * (self.key_len() + self.salt_len())
    }

    /// Bytes SRTP adds to an RTP packet: the HMAC-SHA1-80 tag (10) or the
    /// AEAD tag (16).
    pub fn rtp_overhead(self) -> usize {
        match self {
            Self::Aes128CmSha1_80 => 10,
            Self::AeadAes128Gcm | Self::AeadAes256Gcm => 16,
        }
    }

    /// Bytes SRTCP adds to an RTCP packet: the E flag + index word and the
    /// auth or AEAD tag (RFC 3711 §3.4, RFC 7714 §9).
    pub fn rtcp_overhead(self) -> usize {
        4 + self.rtp_overhead()
    }
}

/// Why an SRTP/SRTCP packet was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SrtpError {
    /// Too short or not parseable as RTP/RTCP.
    #[error("malformed SRTP packet")]
    Malformed,
    /// Authentication tag (or AEAD tag) did not verify (RFC 3711 §3.4).
    #[error("SRTP authentication failed")]
    Auth,
    /// Index already seen within the replay window (RFC 3711 §3.3.2).
    #[error("SRTP replay")]
    Replay,
    /// Keying material has the wrong length for the profile.
    #[error("bad keying material")]
    BadKey,
    /// Other failure of the transform (e.g. index exhausted).
    #[error("SRTP transform failed")]
    Other,
}

/// Which SRTP implementation a session uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SrtpBackend {
    /// Our own transform ([`native`]).
    #[default]
    Native,
    /// webrtc-srtp 0.17 ([`oracle`]), the first implementation.
    WebrtcSrtp,
}

#[expect(
    clippy::large_enum_variant,
    reason = "one per transport, never moved per packet: boxing would only add an indirection"
)]
enum Imp {
    Native {
        local: native::Context,
        remote: native::Context,
    },
    Oracle(oracle::Session),
}

/// One direction pair of SRTP state for a transport: `local` protects what
/// we send, `remote` unprotects what we receive.
pub struct SrtpSession {
    profile: SrtpProfile,
    imp: Imp,
}

impl std::fmt::Debug for SrtpSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpSession")
            .field("profile", &self.profile)
            .field(
                "backend",
                &match self.imp {
                    Imp::Native { .. } => SrtpBackend::Native,
                    Imp::Oracle(_) => SrtpBackend::WebrtcSrtp,
                },
            )
            .finish()
    }
}

impl SrtpSession {
    /// Builds both contexts with our own transform; see [`Self::with_backend`].
    ///
    /// Errors: [`SrtpError::BadKey`].
    pub fn new(
        profile: SrtpProfile,
        keying_material: &[u8],
        is_dtls_client: bool,
    ) -> Result<Self, SrtpError> {
        Self::with_backend(
            SrtpBackend::Native,
            profile,
            keying_material,
            is_dtls_client,
        )
    }

    /// Builds both contexts from DTLS-SRTP keying material laid out as
    /// `client_key | server_key | client_salt | server_salt` (RFC 5764 §4.2).
    /// `is_dtls_client` says which half is ours.
    ///
    /// Errors: [`SrtpError::BadKey`] when `keying_material` is not
    /// [`SrtpProfile::keying_material_len`] bytes.
    pub fn with_backend(
        backend: SrtpBackend,
        profile: SrtpProfile,
        keying_material: &[u8],
        is_dtls_client: bool,
    ) -> Result<Self, SrtpError> {
        let (kl, sl) = (profile.key_len(), profile.salt_len());
        if keying_material.len() != profile.keying_material_len() {
            return Err(SrtpError::BadKey);
        }
        let client = (
            &keying_material[..kl],
            &keying_material[2 * kl..2 * kl + sl],
        );
        let server = (
            &keying_material[kl..2 * kl],
            &keying_material[2 * kl + sl..],
        );
        let (local, remote) = if is_dtls_client {
            (client, server)
        } else {
            (server, client)
        };
        let imp = match backend {
            SrtpBackend::Native => Imp::Native {
                local: native::Context::new(profile, local.0, local.1)?,
                remote: native::Context::new(profile, remote.0, remote.1)?,
            },
            SrtpBackend::WebrtcSrtp => Imp::Oracle(oracle::Session::new(profile, local, remote)?),
        };
        Ok(Self { profile, imp })
    }

    /// The negotiated profile.
    pub fn profile(&self) -> SrtpProfile {
        self.profile
    }

    /// Protects `rtp` into `out` (cleared first; its capacity is reused, so
    /// a pooled buffer makes this allocation-free with our transform).
    ///
    /// Errors: [`SrtpError::Malformed`] when it is not RTP.
    pub fn protect_rtp_into(&mut self, rtp: &[u8], out: &mut Vec<u8>) -> Result<(), SrtpError> {
        out.clear();
        match &mut self.imp {
            Imp::Native { local, .. } => {
                out.extend_from_slice(rtp);
                local.protect_rtp(out)
            }
            Imp::Oracle(s) => {
                out.extend_from_slice(&s.protect_rtp(rtp)?);
                Ok(())
            }
        }
    }

    /// Authenticates, replay-checks and decrypts the SRTP packet in `buf` in
    /// place (RFC 3711 §3.3, RFC 7714 §8); returns the plain packet's length
    /// `n`: it is `buf[..n]`. No copy with our transform.
    ///
    /// Errors: [`SrtpError::Malformed`], [`SrtpError::Replay`], [`SrtpError::Auth`]
    /// (then `buf` may have been overwritten and must be dropped).
    pub fn unprotect_rtp_in_place(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        match &mut self.imp {
            Imp::Native { remote, .. } => remote.unprotect_rtp(buf),
            Imp::Oracle(s) => {
                let plain = s.unprotect_rtp(buf)?;
                buf[..plain.len()].copy_from_slice(&plain);
                Ok(plain.len())
            }
        }
    }

    /// As [`Self::unprotect_rtp_in_place`], for SRTCP (RFC 3711 §3.4, RFC 7714 §9).
    ///
    /// Errors: as [`Self::unprotect_rtcp`].
    pub fn unprotect_rtcp_in_place(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        match &mut self.imp {
            Imp::Native { remote, .. } => remote.unprotect_rtcp(buf),
            Imp::Oracle(s) => {
                let plain = s.unprotect_rtcp(buf)?;
                buf[..plain.len()].copy_from_slice(&plain);
                Ok(plain.len())
            }
        }
    }

    /// Encrypts and authenticates a plain RTP packet (RFC 3711 §3.3).
    ///
    /// Errors: [`SrtpError::Malformed`] when it is not RTP.
    pub fn protect_rtp(&mut self, rtp: &[u8]) -> Result<Bytes, SrtpError> {
        match &mut self.imp {
            Imp::Native { local, .. } => {
                let mut buf = Vec::with_capacity(rtp.len() + self.profile.rtp_overhead());
                buf.extend_from_slice(rtp);
                local.protect_rtp(&mut buf)?;
                Ok(Bytes::from(buf))
            }
            Imp::Oracle(s) => s.protect_rtp(rtp),
        }
    }

    /// Authenticates, replay-checks and decrypts an SRTP packet (RFC 3711 §3.3).
    ///
    /// Errors: [`SrtpError::Malformed`], [`SrtpError::Replay`], [`SrtpError::Auth`].
    pub fn unprotect_rtp(&mut self, srtp: &[u8]) -> Result<Bytes, SrtpError> {
        match &mut self.imp {
            Imp::Native { remote, .. } => {
                let mut buf = srtp.to_vec();
                let n = remote.unprotect_rtp(&mut buf)?;
                buf.truncate(n);
                Ok(Bytes::from(buf))
            }
            Imp::Oracle(s) => s.unprotect_rtp(srtp),
        }
    }

    /// Encrypts and authenticates a plain compound RTCP packet (RFC 3711 §3.4).
    ///
    /// Errors: [`SrtpError::Malformed`] for fewer than 8 bytes.
    pub fn protect_rtcp(&mut self, rtcp: &[u8]) -> Result<Bytes, SrtpError> {
        match &mut self.imp {
            Imp::Native { local, .. } => {
                let mut buf = Vec::with_capacity(rtcp.len() + self.profile.rtcp_overhead());
                buf.extend_from_slice(rtcp);
                local.protect_rtcp(&mut buf)?;
                Ok(Bytes::from(buf))
            }
            Imp::Oracle(s) => s.protect_rtcp(rtcp),
        }
    }

    /// Authenticates, replay-checks and decrypts an SRTCP packet (RFC 3711 §3.4).
    ///
    /// Errors: [`SrtpError::Malformed`] (shorter than the 8-byte header plus
    /// [`SrtpProfile::rtcp_overhead`]), [`SrtpError::Replay`],
    /// [`SrtpError::Auth`] (also for the E flag clear: WebRTC always encrypts).
    pub fn unprotect_rtcp(&mut self, srtcp: &[u8]) -> Result<Bytes, SrtpError> {
        match &mut self.imp {
            Imp::Native { remote, .. } => {
                let mut buf = srtcp.to_vec();
                let n = remote.unprotect_rtcp(&mut buf)?;
                buf.truncate(n);
                Ok(Bytes::from(buf))
            }
            Imp::Oracle(s) => s.unprotect_rtcp(srtcp),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(profile: SrtpProfile) -> (SrtpSession, SrtpSession) {
        let km: Vec<u8> = (0..profile.keying_material_len())
            .map(|i| i as u8)
            .collect();
        (
            SrtpSession::new(profile, &km, true).expect("client"),
            SrtpSession::new(profile, &km, false).expect("server"),
        )
    }

    fn rtp(seq: u16) -> Vec<u8> {
        let mut p = vec![
            0x80,
            96,
            (seq >> 8) as u8,
            seq as u8,
            0,
            0,
            0,
            1,
            0,
            0,
            0,
            42,
        ];
        p.extend_from_slice(&[0xab; 100]);
        p
    }

    #[test]
    fn every_profile_round_trips_and_rejects_tampering_and_replay() {
        for profile in [
            SrtpProfile::Aes128CmSha1_80,
            SrtpProfile::AeadAes128Gcm,
            SrtpProfile::AeadAes256Gcm,
        ] {
            let (mut c, mut s) = pair(profile);
            let plain = rtp(1);
            let enc = c.protect_rtp(&plain).expect("protect");
            assert_eq!(enc.len(), plain.len() + profile.rtp_overhead());
            assert_eq!(&s.unprotect_rtp(&enc).expect("unprotect")[..], &plain[..]);
            assert_eq!(s.unprotect_rtp(&enc), Err(SrtpError::Replay), "{profile:?}");
            let mut bad = c.protect_rtp(&rtp(2)).expect("protect").to_vec();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            assert_eq!(s.unprotect_rtp(&bad), Err(SrtpError::Auth), "{profile:?}");
            // The other direction uses the other half of the keys.
            let back = s.protect_rtp(&rtp(9)).expect("protect");
            assert_eq!(&c.unprotect_rtp(&back).expect("unprotect")[..], &rtp(9)[..]);
            let rr = [0x80, 201, 0, 1, 0, 0, 0, 7];
            let enc = c.protect_rtcp(&rr).expect("protect rtcp");
            assert_eq!(
                &s.unprotect_rtcp(&enc).expect("unprotect rtcp")[..],
                &rr[..]
            );
        }
    }

    #[test]
    fn in_place_unprotect_leaves_the_plain_packet_at_the_front_with_both_backends() {
        let km: Vec<u8> = (0..128u8).collect();
        for backend in [SrtpBackend::Native, SrtpBackend::WebrtcSrtp] {
            for profile in [SrtpProfile::Aes128CmSha1_80, SrtpProfile::AeadAes128Gcm] {
                let km = &km[..profile.keying_material_len()];
                let mut c = SrtpSession::with_backend(backend, profile, km, true).expect("c");
                let mut s = SrtpSession::with_backend(backend, profile, km, false).expect("s");
                let mut buf = c.protect_rtp(&rtp(5)).expect("protect").to_vec();
                let n = s.unprotect_rtp_in_place(&mut buf).expect("unprotect");
                assert_eq!(&buf[..n], &rtp(5)[..], "{backend:?} {profile:?}");
                let rr = [0x80, 201, 0, 1, 0, 0, 0, 7];
                let mut buf = c.protect_rtcp(&rr).expect("protect").to_vec();
                let n = s.unprotect_rtcp_in_place(&mut buf).expect("unprotect");
                assert_eq!(&buf[..n], &rr[..], "{backend:?} {profile:?}");
                let mut again = c.protect_rtp(&rtp(5)).expect("protect").to_vec();
                assert_eq!(
                    s.unprotect_rtp_in_place(&mut again),
                    Err(SrtpError::Replay),
                    "{backend:?} {profile:?}"
                );
            }
        }
    }

    /// Found by the `srtp_unprotect` fuzz target: 12- and 13-byte SRTCP made
    /// webrtc-srtp's AES-CM index lookup underflow and panic; longer garbage
    /// with the E flag clear was accepted without authentication.
    #[test]
    fn short_srtcp_is_malformed_not_a_panic() {
        let crash = [
            0x90, 0x7d, 0x90, 0x57, 0x13, 0x18, 0xe4, 0x83, 0xcf, 0x37, 0xbe, 0x67,
        ];
        for profile in [
            SrtpProfile::Aes128CmSha1_80,
            SrtpProfile::AeadAes128Gcm,
            SrtpProfile::AeadAes256Gcm,
        ] {
            let (_, mut s) = pair(profile);
            for n in 0..=crash.len() + 20 {
                let d: Vec<u8> = crash.iter().copied().cycle().take(n).collect();
                if n < 8 + profile.rtcp_overhead() {
                    assert_eq!(
                        s.unprotect_rtcp(&d),
                        Err(SrtpError::Malformed),
                        "{profile:?} len {n}"
                    );
                } else {
                    let r = s.unprotect_rtcp(&d);
                    assert!(r.is_err(), "{profile:?} len {n}: {d:02x?} -> {r:02x?}");
                }
            }
        }
    }

    /// Clearing the E flag of a genuine AES-CM SRTCP packet must not turn it
    /// into one that is accepted without its tag being checked.
    #[test]
    fn srtcp_with_the_e_flag_cleared_is_refused() {
        let (mut c, mut s) = pair(SrtpProfile::Aes128CmSha1_80);
        let rr = [0x80, 201, 0, 1, 0, 0, 0, 7];
        let mut forged = c.protect_rtcp(&rr).expect("protect").to_vec();
        let e = forged.len() - SrtpProfile::Aes128CmSha1_80.rtcp_overhead();
        forged[e] &= 0x7f;
        forged.truncate(forged.len() - 10);
        forged.extend_from_slice(&[0u8; 10]); // any tag at all
        assert_eq!(s.unprotect_rtcp(&forged), Err(SrtpError::Auth));
        let genuine = c.protect_rtcp(&rr).expect("protect");
        assert_eq!(
            &s.unprotect_rtcp(&genuine).expect("genuine packet")[..],
            &rr[..]
        );
    }

    #[test]
    fn wrong_keying_material_length_is_an_error() {
        assert_eq!(
            SrtpSession::new(SrtpProfile::AeadAes256Gcm, &[0; 60], false).err(),
            Some(SrtpError::BadKey)
        );
    }
}
