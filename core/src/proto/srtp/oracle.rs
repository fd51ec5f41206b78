//! The first SRTP transform, webrtc-srtp 0.17, kept selectable
//! ([`super::SrtpBackend::WebrtcSrtp`]) and as the test oracle of our own.
//! It allocates and copies per packet.

use bytes::Bytes;
use webrtc_srtp::context::Context;
use webrtc_srtp::option::{srtcp_replay_protection, srtp_replay_protection};
use webrtc_srtp::protection_profile::ProtectionProfile;

use super::{SrtpError, SrtpProfile};
use crate::proto::rtp::RtpHeader;

/// Replay window in packets (RFC 3711 §3.3.2 recommends at least 64).
const REPLAY_WINDOW: usize = 128;

fn to_webrtc(p: SrtpProfile) -> ProtectionProfile {
    match p {
        SrtpProfile::Aes128CmSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
        SrtpProfile::AeadAes128Gcm => ProtectionProfile::AeadAes128Gcm,
        SrtpProfile::AeadAes256Gcm => ProtectionProfile::AeadAes256Gcm,
    }
}

fn map_err(e: webrtc_srtp::Error) -> SrtpError {
    use webrtc_srtp::Error as E;
    match e {
        E::SrtpSsrcDuplicated(..) | E::SrtcpSsrcDuplicated(..) | E::ErrDuplicated => {
            SrtpError::Replay
        }
        E::RtpFailedToVerifyAuthTag
        | E::RtcpFailedToVerifyAuthTag
        | E::ErrFailedToVerifyAuthTag
        | E::RtcpInvalidLengthAuthTag(..) => SrtpError::Auth,
        E::ErrTooShortRtp | E::ErrTooShortRtcp => SrtpError::Malformed,
        // AEAD open failures come back as aes-gcm's opaque error.
        E::AesGcm(_) => SrtpError::Auth,
        _ => SrtpError::Malformed,
    }
}

/// One direction pair of SRTP state for a transport: `local` protects what
/// we send, `remote` unprotects what we receive.
pub struct Session {
    profile: SrtpProfile,
    local: Context,
    remote: Context,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("oracle::Session")
            .field("profile", &self.profile)
            .finish()
    }
}

impl Session {
    /// Builds both contexts from DTLS-SRTP keying material laid out as
    /// `client_key | server_key | client_salt | server_salt` (RFC 5764 §4.2).
    /// `is_dtls_client` says which half is ours.
    ///
    /// Errors: [`SrtpError::BadKey`] when `keying_material` is not
    /// [`SrtpProfile::keying_material_len`] bytes.
    pub fn new(
        profile: SrtpProfile,
        (lk, ls): (&[u8], &[u8]),
        (rk, rs): (&[u8], &[u8]),
    ) -> Result<Self, SrtpError> {
        let p = to_webrtc(profile);
        let local = Context::new(lk, ls, p, None, None).map_err(|_| SrtpError::BadKey)?;
        let remote = Context::new(
            rk,
            rs,
            p,
            Some(srtp_replay_protection(REPLAY_WINDOW)),
            Some(srtcp_replay_protection(REPLAY_WINDOW)),
        )
        .map_err(|_| SrtpError::BadKey)?;
        Ok(Self {
            profile,
            local,
            remote,
        })
    }

    /// The negotiated profile.
    pub fn profile(&self) -> SrtpProfile {
        self.profile
    }

    /// Encrypts and authenticates a plain RTP packet (RFC 3711 §3.3).
    pub fn protect_rtp(&mut self, rtp: &[u8]) -> Result<Bytes, SrtpError> {
        self.local.encrypt_rtp(rtp).map_err(map_err)
    }

    /// Authenticates, replay-checks and decrypts an SRTP packet (RFC 3711 §3.3).
    ///
    /// The header is validated by [`RtpHeader::parse`] first: webrtc-srtp's
    /// header parser panics on extension elements that run past the datagram.
    pub fn unprotect_rtp(&mut self, srtp: &[u8]) -> Result<Bytes, SrtpError> {
        if RtpHeader::parse(srtp).is_none() {
            return Err(SrtpError::Malformed);
        }
        self.remote.decrypt_rtp(srtp).map_err(map_err)
    }

    /// Encrypts and authenticates a plain compound RTCP packet (RFC 3711 §3.4).
    pub fn protect_rtcp(&mut self, rtcp: &[u8]) -> Result<Bytes, SrtpError> {
        if rtcp.len() < 8 {
            return Err(SrtpError::Malformed);
        }
        self.local.encrypt_rtcp(rtcp).map_err(map_err)
    }

    /// Authenticates, replay-checks and decrypts an SRTCP packet (RFC 3711 §3.4).
    ///
    /// Anything shorter than the 8-byte RTCP header plus
    /// [`SrtpProfile::rtcp_overhead`] is refused first: webrtc-srtp computes
    /// the index position by subtraction and panics on shorter input.
    pub fn unprotect_rtcp(&mut self, srtcp: &[u8]) -> Result<Bytes, SrtpError> {
        if srtcp.len() < 8 + self.profile.rtcp_overhead() {
            return Err(SrtpError::Malformed);
        }
        // webrtc-srtp 0.17 returns AES-CM SRTCP whose E flag is 0 ("not
        // encrypted") without checking its authentication tag, although RFC 3711
        // §3.4 makes SRTCP authentication mandatory. WebRTC endpoints always
        // encrypt SRTCP, so such a packet is refused as unauthenticated.
        if self.profile == SrtpProfile::Aes128CmSha1_80 {
            let e_flag = srtcp[srtcp.len() - self.profile.rtcp_overhead()] >> 7;
            if e_flag == 0 {
                return Err(SrtpError::Auth);
            }
        }
        self.remote.decrypt_rtcp(srtcp).map_err(map_err)
    }
}
