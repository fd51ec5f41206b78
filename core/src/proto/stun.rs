//! STUN for ICE-lite connectivity checks (RFC 5389, RFC 8445 §7.3, RFC 7675),
//! on top of stun-rs.
//!
//! Server side: [`peek_local_ufrag`] finds the transport a request is meant
//! for without decoding, [`verify_binding_request`] checks USERNAME,
//! MESSAGE-INTEGRITY and FINGERPRINT, [`encode_binding_success`] answers.
//! Client side (test peers and the load generator):
//! [`encode_binding_request`] and [`verify_binding_success`].

use std::net::SocketAddr;

use stun_rs::attributes::ice::{IceControlling, Priority, UseCandidate};
use stun_rs::attributes::stun::{Fingerprint, MessageIntegrity, UserName, XorMappedAddress};
use stun_rs::methods::BINDING;
use stun_rs::{
    DecoderContextBuilder, HMACKey, MessageClass, MessageDecoderBuilder, MessageEncoderBuilder,
    StunMessageBuilder, TransactionId,
};

/// STUN magic cookie (RFC 5389 §6).
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
/// STUN header length in bytes (RFC 5389 §6).
const HEADER_LEN: usize = 20;
/// USERNAME attribute type (RFC 5389 §15.3).
const ATTR_USERNAME: u16 = 0x0006;

/// Why a STUN message was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StunError {
    /// Not a well-formed STUN message (RFC 5389 §6–§15).
    #[error("malformed STUN message")]
    Malformed,
    /// A well-formed STUN message that is not a Binding Request.
    #[error("not a binding request")]
    NotBindingRequest,
    /// USERNAME missing, or its local part is not our ufrag (RFC 8445 §7.3).
    #[error("USERNAME does not match the local ufrag")]
    BadUsername,
    /// MESSAGE-INTEGRITY missing or wrong for our password (RFC 5389 §15.4).
    #[error("MESSAGE-INTEGRITY missing or invalid")]
    BadIntegrity,
    /// FINGERPRINT missing or wrong (RFC 5389 §15.5).
    #[error("FINGERPRINT missing or invalid")]
    BadFingerprint,
    /// The output buffer is too small.
    #[error("buffer too small")]
    BufferTooSmall,
}

/// Walks the attributes of a STUN message without allocating and returns the
/// value of the first attribute of type `attr`. `None` for malformed input.
fn find_attribute(msg: &[u8], attr: u16) -> Option<&[u8]> {
    if msg.len() < HEADER_LEN || msg[0] & 0xc0 != 0 || msg[4..8] != MAGIC_COOKIE {
        return None;
    }
    let body_len = u16::from_be_bytes([msg[2], msg[3]]) as usize;
    let body = msg.get(HEADER_LEN..HEADER_LEN + body_len)?;
    let mut pos = 0;
    while pos + 4 <= body.len() {
        let typ = u16::from_be_bytes([body[pos], body[pos + 1]]);
        let len = u16::from_be_bytes([body[pos + 2], body[pos + 3]]) as usize;
        let value = body.get(pos + 4..pos + 4 + len)?;
        if typ == attr {
            return Some(value);
        }
        pos += 4 + len.div_ceil(4) * 4;
    }
    None
}

/// Returns the local (first) part of USERNAME `local:remote` of a Binding
/// Request (RFC 8445 §7.2.2), without decoding the rest. Used to find the
/// transport a check is meant for before its address is known.
pub fn peek_local_ufrag(msg: &[u8]) -> Option<&[u8]> {
    let username = find_attribute(msg, ATTR_USERNAME)?;
    let colon = username.iter().position(|&b| b == b':')?;
    Some(&username[..colon])
}

/// A verified ICE Binding Request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingRequest {
    /// Transaction id to echo in the response.
    pub transaction_id: [u8; 12],
    /// USE-CANDIDATE was present: the controlling agent nominates this pair
    /// (RFC 8445 §7.3.1.5).
    pub use_candidate: bool,
}

/// Verifies a Binding Request addressed to the agent with ufrag `local_ufrag`
/// and password `local_pwd` (RFC 8445 §7.3): USERNAME must start with
/// `local_ufrag:`, MESSAGE-INTEGRITY must verify with `local_pwd` and
/// FINGERPRINT must be present and right.
pub fn verify_binding_request(
    msg: &[u8],
    local_ufrag: &str,
    local_pwd: &str,
) -> Result<BindingRequest, StunError> {
    if msg.len() < HEADER_LEN || msg[4..8] != MAGIC_COOKIE {
        return Err(StunError::Malformed);
    }
    if u16::from_be_bytes([msg[0], msg[1]]) != 0x0001 {
        return Err(StunError::NotBindingRequest);
    }
    match peek_local_ufrag(msg) {
        Some(u) if u == local_ufrag.as_bytes() => {}
        _ => return Err(StunError::BadUsername),
    }
    let present_mi = find_attribute(msg, 0x0008).is_some();
    let present_fp = find_attribute(msg, 0x8028).is_some();
    if !present_mi {
        return Err(StunError::BadIntegrity);
    }
    if !present_fp {
        return Err(StunError::BadFingerprint);
    }
    let decoded = decode_verified(msg, local_pwd)?;
    let mut transaction_id = [0u8; 12];
    transaction_id.copy_from_slice(&msg[8..20]);
    Ok(BindingRequest {
        transaction_id,
        use_candidate: decoded.get::<UseCandidate>().is_some(),
    })
}

/// Decodes `msg` with stun-rs, requiring a FINGERPRINT and a MESSAGE-INTEGRITY
/// that verifies with short-term password `pwd` (RFC 5389 §10.1.2, §15.4–15.5).
/// FINGERPRINT is checked first (a cheap CRC) so a bad CRC is told apart from a bad HMAC.
fn decode_verified(msg: &[u8], pwd: &str) -> Result<stun_rs::StunMessage, StunError> {
    if !fingerprint_ok(msg) {
        return Err(StunError::BadFingerprint);
    }
    let key = HMACKey::new_short_term(pwd).map_err(|_| StunError::BadIntegrity)?;
    let ctx = DecoderContextBuilder::default()
        .with_key(key)
        .with_validation()
        .build();
    let decoder = MessageDecoderBuilder::default().with_context(ctx).build();
    let (decoded, _) = decoder.decode(msg).map_err(|_| StunError::BadIntegrity)?;
    if decoded.get::<MessageIntegrity>().is_none() {
        return Err(StunError::BadIntegrity);
    }
    Ok(decoded)
}

/// Checks the FINGERPRINT attribute, which must be last (RFC 5389 §15.5).
fn fingerprint_ok(msg: &[u8]) -> bool {
    let body_len = u16::from_be_bytes([msg[2], msg[3]]) as usize;
    let end = HEADER_LEN + body_len;
    if end < HEADER_LEN + 8 || end > msg.len() {
        return false;
    }
    let attr = &msg[end - 8..end];
    if attr[0..4] != [0x80, 0x28, 0x00, 0x04] {
        return false;
    }
    let want = u32::from_be_bytes([attr[4], attr[5], attr[6], attr[7]]);
    crc32(&msg[..end - 8]) ^ 0x5354_554e == want
}

/// CRC-32 (ISO-HDLC) as used by STUN FINGERPRINT.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Encodes a Binding Success Response (RFC 8445 §7.3.1.4) to `request`
/// into `out`: XOR-MAPPED-ADDRESS of `from`, MESSAGE-INTEGRITY keyed with
/// `local_pwd`, FINGERPRINT. Returns the length written (bytes).
pub fn encode_binding_success(
    transaction_id: [u8; 12],
    from: SocketAddr,
    local_pwd: &str,
    out: &mut [u8],
) -> Result<usize, StunError> {
    let key = HMACKey::new_short_term(local_pwd).map_err(|_| StunError::BadIntegrity)?;
    let msg = StunMessageBuilder::new(BINDING, MessageClass::SuccessResponse)
        .with_transaction_id(TransactionId::from(transaction_id))
        .with_attribute(XorMappedAddress::from(from))
        .with_attribute(MessageIntegrity::new(key))
        .with_attribute(Fingerprint::default())
        .build();
    MessageEncoderBuilder::default()
        .build()
        .encode(out, &msg)
        .map_err(|_| StunError::BufferTooSmall)
}

/// Encodes a Binding Request of a controlling agent (RFC 8445 §7.2.2):
/// USERNAME `remote_ufrag:local_ufrag`, PRIORITY, ICE-CONTROLLING,
/// USE-CANDIDATE when `nominate`, MESSAGE-INTEGRITY keyed with `remote_pwd`,
/// FINGERPRINT. Returns the length written (bytes).
pub fn encode_binding_request(
    transaction_id: [u8; 12],
    remote_ufrag: &str,
    local_ufrag: &str,
    remote_pwd: &str,
    nominate: bool,
    out: &mut [u8],
) -> Result<usize, StunError> {
    let key = HMACKey::new_short_term(remote_pwd).map_err(|_| StunError::BadIntegrity)?;
    let username = UserName::new(format!("{remote_ufrag}:{local_ufrag}"))
        .map_err(|_| StunError::BadUsername)?;
    let mut b = StunMessageBuilder::new(BINDING, MessageClass::Request)
        .with_transaction_id(TransactionId::from(transaction_id))
        .with_attribute(username)
        .with_attribute(Priority::new(0x6e7f_1eff))
        .with_attribute(IceControlling::new(u64::from_be_bytes([
            transaction_id[0],
            transaction_id[1],
            transaction_id[2],
            transaction_id[3],
            transaction_id[4],
            transaction_id[5],
            transaction_id[6],
            transaction_id[7],
        ])));
    if nominate {
        b = b.with_attribute(UseCandidate::default());
    }
    let msg = b
        .with_attribute(MessageIntegrity::new(key))
        .with_attribute(Fingerprint::default())
        .build();
    MessageEncoderBuilder::default()
        .build()
        .encode(out, &msg)
        .map_err(|_| StunError::BufferTooSmall)
}

/// Verifies a Binding Success Response signed with `remote_pwd` and returns
/// its transaction id and XOR-MAPPED-ADDRESS.
pub fn verify_binding_success(
    msg: &[u8],
    remote_pwd: &str,
) -> Result<([u8; 12], SocketAddr), StunError> {
    if msg.len() < HEADER_LEN || u16::from_be_bytes([msg[0], msg[1]]) != 0x0101 {
        return Err(StunError::Malformed);
    }
    let decoded = decode_verified(msg, remote_pwd)?;
    let addr = decoded
        .get::<XorMappedAddress>()
        .and_then(|a| a.as_xor_mapped_address().ok())
        .map(|a| *a.socket_address())
        .ok_or(StunError::Malformed)?;
    let mut tid = [0u8; 12];
    tid.copy_from_slice(&msg[8..20]);
    Ok((tid, addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/packets");

    /// A captured datagram; a missing file fails the test (testdata/README.md).
    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{FIXTURES}/{name}"))
            .unwrap_or_else(|e| panic!("testdata/packets/{name}: {e}"))
    }

    #[test]
    fn chromium_binding_request_verifies_with_receiver_password() {
        // stun-binding-request-1: pc2 -> pc1, USERNAME "0rdp:z0GM", key pc1's pwd.
        let msg = fixture("stun-binding-request-1.bin");
        assert_eq!(peek_local_ufrag(&msg), Some(&b"0rdp"[..]));
        let req = verify_binding_request(&msg, "0rdp", "2wCUJ6GfzJauAqu9b8iPmNvl").expect("valid");
        assert_eq!(req.transaction_id[..], msg[8..20]);
        assert_eq!(
            verify_binding_request(&msg, "0rdp", "wrong-password-wrong-pwd"),
            Err(StunError::BadIntegrity)
        );
        assert_eq!(
            verify_binding_request(&msg, "xxxx", "2wCUJ6GfzJauAqu9b8iPmNvl"),
            Err(StunError::BadUsername)
        );
    }

    #[test]
    fn chromium_success_response_verifies() {
        let msg = fixture("stun-binding-success-response-1.bin");
        let (_, addr) = verify_binding_success(&msg, "GwyxuLjKzjY5Oxo4kcEXKM7f").expect("valid");
        assert!(addr.ip().is_loopback());
    }

    #[test]
    fn request_response_round_trip() {
        let mut buf = [0u8; 256];
        let n = encode_binding_request(
            [7; 12],
            "srv",
            "cli",
            "serverpassword0123456789",
            true,
            &mut buf,
        )
        .expect("encode");
        let req = verify_binding_request(&buf[..n], "srv", "serverpassword0123456789").expect("ok");
        assert!(req.use_candidate);
        let from: SocketAddr = "127.0.0.1:5000".parse().expect("addr");
        let mut out = [0u8; 256];
        let m = encode_binding_success(
            req.transaction_id,
            from,
            "serverpassword0123456789",
            &mut out,
        )
        .expect("encode");
        let (tid, mapped) =
            verify_binding_success(&out[..m], "serverpassword0123456789").expect("ok");
        assert_eq!(tid, [7; 12]);
        assert_eq!(mapped, from);
    }

    #[test]
    fn flipped_fingerprint_is_rejected() {
        let mut buf = [0u8; 256];
        let n = encode_binding_request(
            [1; 12],
            "srv",
            "cli",
            "serverpassword0123456789",
            false,
            &mut buf,
        )
        .expect("encode");
        buf[n - 1] ^= 0xff;
        assert_eq!(
            verify_binding_request(&buf[..n], "srv", "serverpassword0123456789"),
            Err(StunError::BadFingerprint)
        );
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 1u32;
        for len in 0..200 {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (seed >> 16) as u8
                })
                .collect();
            let _ = peek_local_ufrag(&data);
            let _ = verify_binding_request(&data, "a", "b");
            let _ = verify_binding_success(&data, "b");
        }
    }
}
