//! Demultiplexing of a datagram arriving on a shared port (RFC 7983 §7).

/// The protocol class of a datagram, decided by its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketClass {
    /// First byte 0–3: STUN (RFC 5389).
    Stun,
    /// First byte 20–63: DTLS (RFC 6347).
    Dtls,
    /// First byte 128–191 and second byte not an RTCP type: RTP (RFC 3550).
    Rtp,
    /// First byte 128–191 and second byte 192–223: RTCP (RFC 5761 §4).
    Rtcp,
    /// Anything else, including an empty datagram.
    Unknown,
}

/// Classifies `datagram` by RFC 7983 §7 (first byte) and RFC 5761 §4
/// (RTCP packet types 192–223 in the second byte, which covers the payload
/// types RTP can never use with rtcp-mux).
pub fn classify(datagram: &[u8]) -> PacketClass {
    match datagram.first() {
        Some(0..=3) => PacketClass::Stun,
        Some(20..=63) => PacketClass::Dtls,
        Some(128..=191) => match datagram.get(1) {
            Some(192..=223) => PacketClass::Rtcp,
            Some(_) => PacketClass::Rtp,
            None => PacketClass::Unknown,
        },
        _ => PacketClass::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_by_first_byte() {
        let cases: &[(&[u8], PacketClass)] = &[
            (&[], PacketClass::Unknown),
            (&[0x00, 0x01], PacketClass::Stun),
            (&[0x03], PacketClass::Stun),
            (&[4], PacketClass::Unknown),
            (&[20], PacketClass::Dtls),
            (&[22, 0xfe, 0xfd], PacketClass::Dtls),
            (&[63], PacketClass::Dtls),
            (&[64], PacketClass::Unknown),
            (&[0x80], PacketClass::Unknown),
            (&[0x80, 96], PacketClass::Rtp),
            (&[0x90, 0xe0], PacketClass::Rtp),
            (&[0x80, 200], PacketClass::Rtcp),
            (&[0x81, 206], PacketClass::Rtcp),
            (&[0x80, 223], PacketClass::Rtcp),
            (&[0x80, 224], PacketClass::Rtp),
            (&[192], PacketClass::Unknown),
            (&[255], PacketClass::Unknown),
        ];
        for (input, want) in cases {
            assert_eq!(classify(input), *want, "{input:?}");
        }
    }
}
