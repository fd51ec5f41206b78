//! Our own SRTP and SRTCP transforms: RFC 3711 (AES128_CM_HMAC_SHA1_80) and
//! RFC 7714 (AEAD_AES_128_GCM, AEAD_AES_256_GCM), encrypting in place in the
//! output buffer with no other copy.
//!
//! - Session keys are derived once per session with the AES-CM PRF
//!   (RFC 3711 §4.3.3; RFC 7714 §11 uses the same KDF) and the ciphers keyed
//!   once: ring's `LessSafeKey` for GCM, RustCrypto AES for CM (counter mode
//!   from a cloned key schedule), and a keyed HMAC-SHA1 whose state is cloned
//!   per packet.
//! - The rollover counter is estimated per SSRC (RFC 3711 Appendix A) and a
//!   [`REPLAY_WINDOW`]-packet replay window is kept per SSRC (§3.3.2); state is
//!   only updated after a packet authenticated. SRTCP keeps its own 31-bit
//!   index per SSRC and its own replay window.

use aes::cipher::generic_array::GenericArray;
use aes::cipher::{BlockEncrypt, InnerIvInit, KeyInit, StreamCipher};
use aes::{Aes128, Aes256};
use hmac::{Hmac, Mac};
use ring::aead::{AES_128_GCM, AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use sha1::Sha1;

use super::{SrtpError, SrtpProfile};
use crate::proto::rtp::RtpHeader;

type HmacSha1 = Hmac<Sha1>;
type Aes128Ctr = ctr::Ctr128BE<Aes128>;

/// Replay window in packets (RFC 3711 §3.3.2 asks for at least 64).
pub const REPLAY_WINDOW: u64 = 128;
/// HMAC-SHA1-80 tag bytes.
const CM_TAG: usize = 10;
/// AES-GCM tag bytes.
const GCM_TAG: usize = 16;
/// HMAC-SHA1 session key bytes (RFC 3711 §8.2: n_a = 160 bits).
const AUTH_KEY_LEN: usize = 20;
/// The E flag of the SRTCP index word (RFC 3711 §3.4).
const E_FLAG: u32 = 0x8000_0000;

/// KDF labels (RFC 3711 §4.3.1).
const LABEL_RTP_KEY: u8 = 0;
const LABEL_RTP_AUTH: u8 = 1;
const LABEL_RTP_SALT: u8 = 2;
const LABEL_RTCP_KEY: u8 = 3;
const LABEL_RTCP_AUTH: u8 = 4;
const LABEL_RTCP_SALT: u8 = 5;

/// The AES-CM PRF of RFC 3711 §4.3.3 with a key derivation rate of 0
/// (RFC 5764 §4.2): `x = label·2^48 XOR master_salt`, the keystream blocks
/// `AES(master_key, x·2^16 + i)` concatenated into `out`.
fn derive(master_key: &[u8], master_salt: &[u8], label: u8, out: &mut [u8]) {
    let mut x = [0u8; 16];
    x[..master_salt.len()].copy_from_slice(master_salt);
    x[7] ^= label;
    for (i, chunk) in out.chunks_mut(16).enumerate() {
        let mut block = x;
        block[14..16].copy_from_slice(&(i as u16).to_be_bytes());
        let mut b = GenericArray::from(block);
        if master_key.len() == 32 {
            Aes256::new(GenericArray::from_slice(master_key)).encrypt_block(&mut b);
        } else {
            Aes128::new(GenericArray::from_slice(master_key)).encrypt_block(&mut b);
        }
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
}

/// XORs the AES-CM keystream from `iv` over `data` (RFC 3711 §4.1.1),
/// reusing the expanded key schedule.
fn cm_keystream(key: &Aes128, iv: [u8; 16], data: &mut [u8]) {
    let core =
        ctr::CtrCore::<Aes128, ctr::flavors::Ctr128BE>::inner_iv_init(key.clone(), &iv.into());
    Aes128Ctr::from_core(core).apply_keystream(data);
}

/// The 128-bit AES-CM IV (RFC 3711 §4.1.1): `salt·2^16 XOR ssrc·2^64 XOR
/// index·2^16`, with `index` up to 48 bits.
fn cm_iv(salt: &[u8; 14], ssrc: u32, index: u64) -> [u8; 16] {
    let mut iv = [0u8; 16];
    iv[4..8].copy_from_slice(&ssrc.to_be_bytes());
    iv[8..14].copy_from_slice(&index.to_be_bytes()[2..8]);
    for (v, s) in iv.iter_mut().zip(salt) {
        *v ^= s;
    }
    iv
}

/// `n XOR salt` as a GCM nonce.
fn salted(mut n: [u8; 12], salt: &[u8; 12]) -> Nonce {
    for (v, s) in n.iter_mut().zip(salt) {
        *v ^= s;
    }
    Nonce::assume_unique_for_key(n)
}

/// The SRTP GCM nonce (RFC 7714 §8.1): `00 00 || SSRC || ROC || SEQ`, XOR
/// the salt.
fn gcm_rtp_nonce(salt: &[u8; 12], ssrc: u32, roc: u32, seq: u16) -> Nonce {
    let mut n = [0u8; 12];
    n[2..6].copy_from_slice(&ssrc.to_be_bytes());
    n[6..10].copy_from_slice(&roc.to_be_bytes());
    n[10..12].copy_from_slice(&seq.to_be_bytes());
    salted(n, salt)
}

/// The SRTCP GCM nonce (RFC 7714 §9.1): `00 00 || SSRC || 00 00 || 0 ||
/// 31-bit index`, XOR the salt.
fn gcm_rtcp_nonce(salt: &[u8; 12], ssrc: u32, index: u32) -> Nonce {
    let mut n = [0u8; 12];
    n[2..6].copy_from_slice(&ssrc.to_be_bytes());
    n[8..12].copy_from_slice(&index.to_be_bytes());
    salted(n, salt)
}

#[expect(
    clippy::large_enum_variant,
    reason = "one per context, never moved per packet: boxing would only add an indirection"
)]
enum Keys {
    Cm {
        rtp: Aes128,
        rtp_salt: [u8; 14],
        rtp_auth: HmacSha1,
        rtcp: Aes128,
        rtcp_salt: [u8; 14],
        rtcp_auth: HmacSha1,
    },
    Gcm {
        rtp: LessSafeKey,
        rtp_salt: [u8; 12],
        rtcp: LessSafeKey,
        rtcp_salt: [u8; 12],
    },
}

/// Replay state over a 64-bit index (RFC 3711 §3.3.2).
#[derive(Debug, Clone, Copy, Default)]
struct Replay {
    started: bool,
    highest: u64,
    /// Bit `d` set: index `highest - d` was received.
    window: u128,
}

impl Replay {
    fn check(&self, index: u64) -> Result<(), SrtpError> {
        if !self.started || index > self.highest {
            return Ok(());
        }
        let d = self.highest - index;
        if d >= REPLAY_WINDOW || self.window & (1u128 << d) != 0 {
            return Err(SrtpError::Replay);
        }
        Ok(())
    }

    fn accept(&mut self, index: u64) {
        if !self.started {
            *self = Self {
                started: true,
                highest: index,
                window: 1,
            };
        } else if index > self.highest {
            let shift = index - self.highest;
            self.window = if shift >= 128 {
                1
            } else {
                (self.window << shift) | 1
            };
            self.highest = index;
        } else {
            self.window |= 1u128 << (self.highest - index);
        }
    }
}

/// Per-SSRC state of one direction.
#[derive(Debug, Clone, Copy, Default)]
struct Stream {
    ssrc: u32,
    /// RTP: highest index seen/sent (ROC·2^16 + SEQ) and the replay window.
    rtp: Replay,
    /// SRTCP: next index to send.
    srtcp_next: u32,
    /// SRTCP: replay window over received indices.
    rtcp: Replay,
}

impl Stream {
    /// The packet index of `seq` relative to the highest one (RFC 3711
    /// Appendix A): the rollover counter guess `v` and `v·2^16 + seq`.
    fn estimate(&self, seq: u16) -> (u32, u64) {
        if !self.rtp.started {
            return (0, u64::from(seq));
        }
        let roc = (self.rtp.highest >> 16) as u32;
        let s_l = self.rtp.highest as u16;
        let v = if s_l < 0x8000 {
            if seq > s_l && seq - s_l > 0x8000 {
                roc.wrapping_sub(1)
            } else {
                roc
            }
        } else if s_l - 0x8000 > seq {
            roc.wrapping_add(1)
        } else {
            roc
        };
        (v, (u64::from(v) << 16) | u64::from(seq))
    }
}

/// One direction of SRTP/SRTCP (a crypto context per RFC 3711 §3.2, for all
/// the SSRCs one side sends).
pub struct Context {
    keys: Keys,
    /// Few SSRCs per transport: a short vector beats hashing.
    streams: Vec<Stream>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("native::Context")
            .field("streams", &self.streams.len())
            .finish()
    }
}

impl Context {
    /// Derives the session keys of `profile` from a master key and salt.
    ///
    /// Errors: [`SrtpError::BadKey`] for lengths that do not fit the profile.
    pub fn new(
        profile: SrtpProfile,
        master_key: &[u8],
        master_salt: &[u8],
    ) -> Result<Self, SrtpError> {
        if master_key.len() != profile.key_len() || master_salt.len() != profile.salt_len() {
            return Err(SrtpError::BadKey);
        }
        let keys = match profile {
            SrtpProfile::Aes128CmSha1_80 => {
                let mut k = [0u8; 16];
                let mut a = [0u8; AUTH_KEY_LEN];
                let (mut rtp_salt, mut rtcp_salt) = ([0u8; 14], [0u8; 14]);
                derive(master_key, master_salt, LABEL_RTP_KEY, &mut k);
                let rtp = Aes128::new(GenericArray::from_slice(&k));
                derive(master_key, master_salt, LABEL_RTP_AUTH, &mut a);
                let rtp_auth =
                    <HmacSha1 as Mac>::new_from_slice(&a).map_err(|_| SrtpError::BadKey)?;
                derive(master_key, master_salt, LABEL_RTP_SALT, &mut rtp_salt);
                derive(master_key, master_salt, LABEL_RTCP_KEY, &mut k);
                let rtcp = Aes128::new(GenericArray::from_slice(&k));
                derive(master_key, master_salt, LABEL_RTCP_AUTH, &mut a);
                let rtcp_auth =
                    <HmacSha1 as Mac>::new_from_slice(&a).map_err(|_| SrtpError::BadKey)?;
                derive(master_key, master_salt, LABEL_RTCP_SALT, &mut rtcp_salt);
                Keys::Cm {
                    rtp,
                    rtp_salt,
                    rtp_auth,
                    rtcp,
                    rtcp_salt,
                    rtcp_auth,
                }
            }
            SrtpProfile::AeadAes128Gcm | SrtpProfile::AeadAes256Gcm => {
                let alg = if profile == SrtpProfile::AeadAes128Gcm {
                    &AES_128_GCM
                } else {
                    &AES_256_GCM
                };
                let mut k = vec![0u8; master_key.len()];
                let (mut rtp_salt, mut rtcp_salt) = ([0u8; 12], [0u8; 12]);
                derive(master_key, master_salt, LABEL_RTP_KEY, &mut k);
                let rtp =
                    LessSafeKey::new(UnboundKey::new(alg, &k).map_err(|_| SrtpError::BadKey)?);
                derive(master_key, master_salt, LABEL_RTP_SALT, &mut rtp_salt);
                derive(master_key, master_salt, LABEL_RTCP_KEY, &mut k);
                let rtcp =
                    LessSafeKey::new(UnboundKey::new(alg, &k).map_err(|_| SrtpError::BadKey)?);
                derive(master_key, master_salt, LABEL_RTCP_SALT, &mut rtcp_salt);
                Keys::Gcm {
                    rtp,
                    rtp_salt,
                    rtcp,
                    rtcp_salt,
                }
            }
        };
        Ok(Self {
            keys,
            streams: Vec::new(),
        })
    }

    fn stream(&mut self, ssrc: u32) -> &mut Stream {
        let i = match self.streams.iter().position(|s| s.ssrc == ssrc) {
            Some(i) => i,
            None => {
                self.streams.push(Stream {
                    ssrc,
                    ..Stream::default()
                });
                self.streams.len() - 1
            }
        };
        &mut self.streams[i]
    }

    /// Protects the RTP packet in `buf` in place: encrypts its payload and
    /// appends the tag (10 B CM, 16 B GCM).
    ///
    /// Errors: [`SrtpError::Malformed`] when `buf` is not an RTP packet.
    pub fn protect_rtp(&mut self, buf: &mut Vec<u8>) -> Result<(), SrtpError> {
        let h = RtpHeader::parse(buf).ok_or(SrtpError::Malformed)?;
        let (ssrc, seq, hlen) = (h.ssrc.0, h.seq, h.header_len);
        let (roc, index) = self.stream(ssrc).estimate(seq);
        match &self.keys {
            Keys::Cm {
                rtp,
                rtp_salt,
                rtp_auth,
                ..
            } => {
                let iv = cm_iv(rtp_salt, ssrc, index);
                cm_keystream(rtp, iv, &mut buf[hlen..]);
                let mut mac = rtp_auth.clone();
                mac.update(buf);
                mac.update(&roc.to_be_bytes());
                let tag = mac.finalize().into_bytes();
                buf.extend_from_slice(&tag[..CM_TAG]);
            }
            Keys::Gcm { rtp, rtp_salt, .. } => {
                let nonce = gcm_rtp_nonce(rtp_salt, ssrc, roc, seq);
                let (head, payload) = buf.split_at_mut(hlen);
                let tag = rtp
                    .seal_in_place_separate_tag(nonce, Aad::from(&*head), payload)
                    .map_err(|_| SrtpError::Other)?;
                buf.extend_from_slice(tag.as_ref());
            }
        }
        let s = self.stream(ssrc);
        if !s.rtp.started || index > s.rtp.highest {
            s.rtp.accept(index);
        }
        Ok(())
    }

    /// Authenticates, replay-checks and decrypts the SRTP packet in `buf` in
    /// place; on success returns the plain RTP packet's length: it is
    /// `buf[..n]` (the tag, at the end, is no longer part of it).
    ///
    /// Errors: [`SrtpError::Malformed`], [`SrtpError::Replay`],
    /// [`SrtpError::Auth`]; the state is unchanged then, and the packet must
    /// be dropped (a failed GCM open may have overwritten `buf`).
    pub fn unprotect_rtp(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        let h = RtpHeader::parse(buf).ok_or(SrtpError::Malformed)?;
        let (ssrc, seq, hlen) = (h.ssrc.0, h.seq, h.header_len);
        let tag_len = match self.keys {
            Keys::Cm { .. } => CM_TAG,
            Keys::Gcm { .. } => GCM_TAG,
        };
        if buf.len() < hlen + tag_len {
            return Err(SrtpError::Malformed);
        }
        let stream = *self.stream(ssrc);
        let (roc, index) = stream.estimate(seq);
        stream.rtp.check(index)?;
        let end = buf.len() - tag_len;
        match &self.keys {
            Keys::Cm {
                rtp,
                rtp_salt,
                rtp_auth,
                ..
            } => {
                let mut mac = rtp_auth.clone();
                mac.update(&buf[..end]);
                mac.update(&roc.to_be_bytes());
                mac.verify_truncated_left(&buf[end..])
                    .map_err(|_| SrtpError::Auth)?;
                let iv = cm_iv(rtp_salt, ssrc, index);
                cm_keystream(rtp, iv, &mut buf[hlen..end]);
            }
            Keys::Gcm { rtp, rtp_salt, .. } => {
                let nonce = gcm_rtp_nonce(rtp_salt, ssrc, roc, seq);
                let (head, rest) = buf.split_at_mut(hlen);
                let mut tag = [0u8; GCM_TAG];
                tag.copy_from_slice(&rest[rest.len() - GCM_TAG..]);
                let body_len = rest.len() - GCM_TAG;
                rtp.open_in_place_separate_tag(
                    nonce,
                    Aad::from(&*head),
                    ring::aead::Tag::from(tag),
                    &mut rest[..body_len],
                    0..,
                )
                .map_err(|_| SrtpError::Auth)?;
            }
        }
        self.stream(ssrc).rtp.accept(index);
        Ok(end)
    }

    /// Protects the compound RTCP packet in `buf` in place (RFC 3711 §3.4,
    /// RFC 7714 §9): encrypts all after the first 8 bytes and appends the
    /// E flag + SRTCP index word and the tag in the profile's order.
    ///
    /// Errors: [`SrtpError::Malformed`] for fewer than 8 bytes.
    pub fn protect_rtcp(&mut self, buf: &mut Vec<u8>) -> Result<(), SrtpError> {
        if buf.len() < 8 {
            return Err(SrtpError::Malformed);
        }
        let ssrc = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let s = self.stream(ssrc);
        let index = s.srtcp_next;
        s.srtcp_next = (s.srtcp_next + 1) & !E_FLAG;
        let word = (index | E_FLAG).to_be_bytes();
        match &self.keys {
            Keys::Cm {
                rtcp,
                rtcp_salt,
                rtcp_auth,
                ..
            } => {
                let iv = cm_iv(rtcp_salt, ssrc, u64::from(index));
                cm_keystream(rtcp, iv, &mut buf[8..]);
                buf.extend_from_slice(&word);
                let mut mac = rtcp_auth.clone();
                mac.update(buf);
                let tag = mac.finalize().into_bytes();
                buf.extend_from_slice(&tag[..CM_TAG]);
            }
            Keys::Gcm {
                rtcp, rtcp_salt, ..
            } => {
                let nonce = gcm_rtcp_nonce(rtcp_salt, ssrc, index);
                let mut aad = [0u8; 12];
                aad[..8].copy_from_slice(&buf[..8]);
                aad[8..].copy_from_slice(&word);
                let tag = rtcp
                    .seal_in_place_separate_tag(nonce, Aad::from(&aad), &mut buf[8..])
                    .map_err(|_| SrtpError::Other)?;
                buf.extend_from_slice(tag.as_ref());
                buf.extend_from_slice(&word);
            }
        }
        Ok(())
    }

    /// Authenticates, replay-checks and decrypts the SRTCP packet in `buf`
    /// in place; on success returns the plain compound RTCP packet's length
    /// (it is `buf[..n]`).
    ///
    /// Errors: [`SrtpError::Malformed`] (shorter than 8 bytes plus the
    /// overhead), [`SrtpError::Replay`], [`SrtpError::Auth`] (a bad tag, or
    /// the E flag clear: WebRTC always encrypts SRTCP).
    pub fn unprotect_rtcp(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        let overhead = 4 + match self.keys {
            Keys::Cm { .. } => CM_TAG,
            Keys::Gcm { .. } => GCM_TAG,
        };
        if buf.len() < 8 + overhead {
            return Err(SrtpError::Malformed);
        }
        let ssrc = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let len = buf.len();
        let word_at = match self.keys {
            Keys::Cm { .. } => len - CM_TAG - 4,
            Keys::Gcm { .. } => len - 4,
        };
        let word = u32::from_be_bytes([
            buf[word_at],
            buf[word_at + 1],
            buf[word_at + 2],
            buf[word_at + 3],
        ]);
        if word & E_FLAG == 0 {
            return Err(SrtpError::Auth);
        }
        let index = word & !E_FLAG;
        self.stream(ssrc).rtcp.check(u64::from(index))?;
        let plain_len = match &self.keys {
            Keys::Cm {
                rtcp,
                rtcp_salt,
                rtcp_auth,
                ..
            } => {
                let mut mac = rtcp_auth.clone();
                mac.update(&buf[..len - CM_TAG]);
                mac.verify_truncated_left(&buf[len - CM_TAG..])
                    .map_err(|_| SrtpError::Auth)?;
                let iv = cm_iv(rtcp_salt, ssrc, u64::from(index));
                cm_keystream(rtcp, iv, &mut buf[8..word_at]);
                word_at
            }
            Keys::Gcm {
                rtcp, rtcp_salt, ..
            } => {
                let mut aad = [0u8; 12];
                aad[..8].copy_from_slice(&buf[..8]);
                aad[8..].copy_from_slice(&word.to_be_bytes());
                let mut tag = [0u8; GCM_TAG];
                tag.copy_from_slice(&buf[word_at - GCM_TAG..word_at]);
                rtcp.open_in_place_separate_tag(
                    gcm_rtcp_nonce(rtcp_salt, ssrc, index),
                    Aad::from(&aad),
                    ring::aead::Tag::from(tag),
                    &mut buf[8..word_at - GCM_TAG],
                    0..,
                )
                .map_err(|_| SrtpError::Auth)?;
                word_at - GCM_TAG
            }
        };
        self.stream(ssrc).rtcp.accept(u64::from(index));
        Ok(plain_len)
    }
}

#[cfg(test)]
impl Context {
    /// A GCM context keyed with session keys directly (the RFC 7714 vectors
    /// give session keys, not master keys).
    fn with_gcm_session_keys(key: &[u8], salt: [u8; 12]) -> Self {
        let alg = if key.len() == 16 {
            &AES_128_GCM
        } else {
            &AES_256_GCM
        };
        let k = || LessSafeKey::new(UnboundKey::new(alg, key).expect("key"));
        Self {
            keys: Keys::Gcm {
                rtp: k(),
                rtp_salt: salt,
                rtcp: k(),
                rtcp_salt: salt,
            },
            streams: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{SrtpBackend, SrtpSession};
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    #[test]
    fn rfc3711_b3_key_derivation() {
        let (mk, ms) = (
            hex("E1F97A0D3E018BE0D64FA32C06DE4139"),
            hex("0EC675AD498AFEEBB6960B3AABE6"),
        );
        let mut key = [0u8; 16];
        derive(&mk, &ms, LABEL_RTP_KEY, &mut key);
        assert_eq!(key[..], hex("C61E7A93744F39EE10734AFE3FF7A087")[..]);
        let mut salt = [0u8; 14];
        derive(&mk, &ms, LABEL_RTP_SALT, &mut salt);
        assert_eq!(salt[..], hex("30CBBC08863D8C85D49DB34A9AE1")[..]);
        let mut auth = [0u8; 20];
        derive(&mk, &ms, LABEL_RTP_AUTH, &mut auth);
        assert_eq!(
            auth[..],
            hex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4")[..]
        );
    }

    #[test]
    fn rfc3711_b2_aes_cm_keystream() {
        let key = Aes128::new(GenericArray::from_slice(&hex(
            "2B7E151628AED2A6ABF7158809CF4F3C",
        )));
        let mut salt = [0u8; 14];
        salt.copy_from_slice(&hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD"));
        let mut zeros = [0u8; 32];
        cm_keystream(&key, cm_iv(&salt, 0, 0), &mut zeros);
        assert_eq!(zeros[..16], hex("E03EAD0935C95E80E166B16DD92B4EB4")[..]);
    }

    const RFC7714_RTP: &str = "8040f17b 8041f8d3 5501a0b2 47616c6c 69612065 7374206f 6d6e6973
        20646976 69736120 696e2070 61727465 73207472 6573";
    const SALT: &str = "517569642070726f2071756f";

    fn salt() -> [u8; 12] {
        let mut s = [0u8; 12];
        s.copy_from_slice(&hex(SALT));
        s
    }

    #[test]
    fn rfc7714_16_aes_128_gcm_rtp() {
        let mut c =
            Context::with_gcm_session_keys(&hex("000102030405060708090a0b0c0d0e0f"), salt());
        let mut buf = hex(RFC7714_RTP);
        c.protect_rtp(&mut buf).expect("protect");
        let want = hex(
            "8040f17b 8041f8d3 5501a0b2 f24de3a3 fb34de6c acba861c 9d7e4bca be633bd5 0d294e6f
             42a5f47a 51c7d19b 36de3adf 8833899d 7f27beb1 6a9152cf 765ee439 0cce",
        );
        assert_eq!(buf, want);
        let mut r =
            Context::with_gcm_session_keys(&hex("000102030405060708090a0b0c0d0e0f"), salt());
        let n = r.unprotect_rtp(&mut buf).expect("unprotect");
        buf.truncate(n);
        assert_eq!(buf, hex(RFC7714_RTP));
    }

    #[test]
    fn rfc7714_17_aes_256_gcm_srtcp() {
        let key = hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
        let mut c = Context::with_gcm_session_keys(&key, salt());
        c.stream(0x4d61_7273).srtcp_next = 0x5d4;
        let plain = hex(
            "81c8000d 4d617273 4e545031 4e545032 52545020 0000042a 0000e930 4c756e61
             deadbeef deadbeef deadbeef deadbeef deadbeef",
        );
        let mut buf = plain.clone();
        c.protect_rtcp(&mut buf).expect("protect");
        let want = hex(
            "81c8000d 4d617273 d50ae4d1 f5ce5d30 4ba297e4 7d470c28 2c3ece5d bffe0a50 a2eaa5c1
             110555be 8415f658 c61de047 6f1b6fad 1d1eb30c 4446839f 57ff6f6c b26ac3be 800005d4",
        );
        assert_eq!(buf, want);
        let mut r = Context::with_gcm_session_keys(&key, salt());
        let n = r.unprotect_rtcp(&mut buf).expect("unprotect");
        buf.truncate(n);
        assert_eq!(buf, plain);
        // A replay is refused; a flipped bit fails authentication.
        let mut again = want.clone();
        assert_eq!(r.unprotect_rtcp(&mut again), Err(SrtpError::Replay));
        let mut bad = want;
        bad[20] ^= 1;
        let mut r2 = Context::with_gcm_session_keys(&key, salt());
        assert_eq!(r2.unprotect_rtcp(&mut bad), Err(SrtpError::Auth));
    }

    /// A deterministic generator for the cross tests.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u32 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) as u32
        }
        fn bytes(&mut self, n: usize) -> Vec<u8> {
            (0..n).map(|_| self.next() as u8).collect()
        }
    }

    /// An RTP packet of random shape: CSRCs, a one-byte-header extension,
    /// any payload length (including 0).
    fn random_rtp(g: &mut Lcg, ssrc: u32, seq: u16) -> Vec<u8> {
        let csrcs = (g.next() % 3) as usize;
        let ext = g.next() % 2 == 1;
        let mut p = vec![0x80 | csrcs as u8 | if ext { 0x10 } else { 0 }, 96 | 0x80];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&g.next().to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        for _ in 0..csrcs {
            p.extend_from_slice(&g.next().to_be_bytes());
        }
        if ext {
            p.extend_from_slice(&[0xBE, 0xDE, 0, 1, 0x10, 0xAB, 0, 0]);
        }
        let n = (g.next() % 1200) as usize;
        p.extend(g.bytes(n));
        p
    }

    #[test]
    fn cross_protect_and_unprotect_with_webrtc_srtp_in_every_profile() {
        for profile in [
            SrtpProfile::Aes128CmSha1_80,
            SrtpProfile::AeadAes128Gcm,
            SrtpProfile::AeadAes256Gcm,
        ] {
            let mut g = Lcg(profile.key_len() as u64 * 7919);
            let km = g.bytes(profile.keying_material_len());
            let mk =
                |b, client| SrtpSession::with_backend(b, profile, &km, client).expect("session");
            let (mut ours_c, mut ours_s) = (
                mk(SrtpBackend::Native, true),
                mk(SrtpBackend::Native, false),
            );
            let (mut theirs_c, mut theirs_s) = (
                mk(SrtpBackend::WebrtcSrtp, true),
                mk(SrtpBackend::WebrtcSrtp, false),
            );
            // 600 packets per SSRC from 65,300: across the 16-bit wrap (ROC 0 → 1).
            for i in 0..600u32 {
                let seq = (65_300 + i) as u16;
                let a = random_rtp(&mut g, 0x1111_1111, seq);
                let ours = ours_c.protect_rtp(&a).expect("ours protect");
                let theirs = theirs_c.protect_rtp(&a).expect("theirs protect");
                assert_eq!(ours, theirs, "{profile:?} seq {seq}: byte-identical SRTP");
                assert_eq!(
                    &theirs_s.unprotect_rtp(&ours).expect("theirs open ours")[..],
                    &a[..]
                );
                assert_eq!(
                    &ours_s.unprotect_rtp(&theirs).expect("ours open theirs")[..],
                    &a[..]
                );
                // Compound RTCP both ways (indices differ per side: compare plaintext).
                let mut rtcp = vec![0x81, 200, 0, 6];
                rtcp.extend_from_slice(&0x2222_2222u32.to_be_bytes());
                rtcp.extend(g.bytes(20));
                let o = ours_c.protect_rtcp(&rtcp).expect("ours rtcp");
                let t = theirs_c.protect_rtcp(&rtcp).expect("theirs rtcp");
                assert_eq!(
                    &theirs_s.unprotect_rtcp(&o).expect("theirs open ours rtcp")[..],
                    &rtcp[..]
                );
                assert_eq!(
                    &ours_s.unprotect_rtcp(&t).expect("ours open theirs rtcp")[..],
                    &rtcp[..]
                );
            }
        }
    }

    #[test]
    fn replay_window_and_reordering() {
        let km = vec![9u8; SrtpProfile::AeadAes128Gcm.keying_material_len()];
        let mut c = SrtpSession::new(SrtpProfile::AeadAes128Gcm, &km, true).expect("c");
        let mut s = SrtpSession::new(SrtpProfile::AeadAes128Gcm, &km, false).expect("s");
        let mut g = Lcg(5);
        let pkts: Vec<_> = (0..300u16)
            .map(|seq| c.protect_rtp(&random_rtp(&mut g, 7, seq)).expect("p"))
            .collect();
        // Out of order within the window: accepted once each.
        for i in [5usize, 3, 4, 0, 1, 2, 299, 200] {
            assert!(s.unprotect_rtp(&pkts[i]).is_ok(), "packet {i}");
        }
        assert_eq!(s.unprotect_rtp(&pkts[4]), Err(SrtpError::Replay));
        // 299 - 150 >= 128: too old now.
        assert_eq!(s.unprotect_rtp(&pkts[150]), Err(SrtpError::Replay));
        assert!(s.unprotect_rtp(&pkts[250]).is_ok());
    }
}
