//! Identifier newtypes used across the data plane (docs/architecture.md, Names).
//!
//! Objects live in slabs and refer to each other by these ids; none of them
//! allocates, so they are cheap to copy on the packet path.

use std::fmt;

/// RTP synchronization source identifier (RFC 3550 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ssrc(pub u32);

/// RTP payload type, 7 bits (RFC 3550 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pt(pub u8);

/// Extended RTP sequence number: the 16-bit wire value plus the count of
/// wrap-arounds in the upper bits, so wrap-around is handled once (RFC 3550 §A.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeqNo(pub u64);

impl SeqNo {
    /// The 16-bit value as carried in the RTP header.
    pub fn wire(self) -> u16 {
        self.0 as u16
    }

    /// The extended number of the first packet of a stream, `seq` on the
    /// wire: 2^32 cycles up, so a packet reordered before it still gets a
    /// smaller number.
    #[inline]
    pub fn first(seq: u16) -> Self {
        Self((1 << 32) | u64::from(seq))
    }

    /// The extended number of wire value `seq` nearest to `self` (within
    /// ±2^15): the one 16-bit unwrap (RFC 3550 §A.1) every receive-side
    /// table uses.
    #[inline]
    pub fn unwrap(self, seq: u16) -> Self {
        Self((self.0 as i64 + i64::from(seq.wrapping_sub(self.0 as u16) as i16)) as u64)
    }
}

/// Maximum length in bytes of a MID or RID value we accept (RFC 8843 §15
/// places no limit; browsers use 1–3 characters and a one-byte header
/// extension carries at most 16 bytes, RFC 8285 §4.2).
pub const MAX_TOKEN_LEN: usize = 16;

macro_rules! token_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name {
            len: u8,
            bytes: [u8; MAX_TOKEN_LEN],
        }

        impl $name {
            /// Builds the id from its SDP token. Returns `None` when the value is
            /// empty, longer than [`MAX_TOKEN_LEN`] bytes or not printable ASCII.
            pub fn new(value: &str) -> Option<Self> {
                let b = value.as_bytes();
                if b.is_empty() || b.len() > MAX_TOKEN_LEN || !b.iter().all(|c| c.is_ascii_graphic()) {
                    return None;
                }
                let mut bytes = [0u8; MAX_TOKEN_LEN];
                bytes[..b.len()].copy_from_slice(b);
                Some(Self { len: b.len() as u8, bytes })
            }

            /// The raw bytes, as written into an RTP header extension.
            pub fn as_bytes(&self) -> &[u8] {
                &self.bytes[..self.len as usize]
            }

            /// The value as a string slice.
            pub fn as_str(&self) -> &str {
                // Only printable ASCII is ever stored (checked in `new`).
                std::str::from_utf8(self.as_bytes()).unwrap_or("")
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.as_str())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

token_id!(
    /// Media identification tag of an m-section (RFC 8843 §2, `a=mid`).
    Mid
);
token_id!(
    /// RTP stream identifier of a simulcast layer (RFC 8851, `a=rid`).
    Rid
);

macro_rules! slab_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }

        impl crate::slab::SlabId for $name {
            fn from_raw(raw: u64) -> Self {
                Self(raw)
            }
            fn raw(self) -> u64 {
                self.0
            }
        }
    };
}

/// A TCP connection of a worker's ICE-TCP listener (RFC 6544): unique
/// within its worker until 2^32 connections later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TcpConnId(pub u32);

impl fmt::Display for TcpConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tcp{}", self.0)
    }
}

/// A Router (one room), chosen by the control plane — unique within the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouterId(pub u32);

impl fmt::Display for RouterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
slab_id!(
    /// A WebRtcTransport — never reused within its Router: the
    /// slab index (low 32 bits) and a creation serial (high 32 bits), so a
    /// stale id from the control plane finds nothing.
    TransportId
);
slab_id!(
    /// A Producer (incoming track) — never reused within its Router: the
    /// slab index (low 32 bits) and a creation serial (high 32 bits), so a
    /// stale id from the control plane finds nothing.
    ProducerId
);
slab_id!(
    /// A Consumer (one subscriber's copy of a Producer) — never reused within its Router: the
    /// slab index (low 32 bits) and a creation serial (high 32 bits), so a
    /// stale id from the control plane finds nothing.
    ConsumerId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mid_accepts_short_printable_tokens_only() {
        assert_eq!(
            Mid::new("0").map(|m| m.as_bytes().to_vec()),
            Some(b"0".to_vec())
        );
        assert!(Mid::new("").is_none());
        assert!(Mid::new("a b").is_none());
        assert!(Mid::new(&"x".repeat(17)).is_none());
        assert_eq!(
            Mid::new("audio").map(|m| m.to_string()),
            Some("audio".into())
        );
    }

    #[test]
    fn seqno_wire_truncates() {
        assert_eq!(SeqNo(65536 + 7).wire(), 7);
    }

    #[test]
    fn seqno_unwraps_to_the_nearest_across_wraps() {
        let first = SeqNo::first(65_530);
        assert_eq!(first.wire(), 65_530);
        let after_wrap = first.unwrap(3);
        assert_eq!(after_wrap.0, first.0 + 9, "forward across the wrap");
        assert_eq!(after_wrap.unwrap(65_534).0, first.0 + 4, "back across it");
        assert_eq!(first.unwrap(65_530), first);
        assert_eq!(first.unwrap(65_530 - 32_768).0, first.0 - 32_768);
        assert_eq!(
            first.unwrap(65_530u16.wrapping_add(32_767)).0,
            first.0 + 32_767
        );
    }
}
