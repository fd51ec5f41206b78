//! The Data Channel Establishment Protocol (DCEP, RFC 8832) and the SCTP
//! payload protocol identifiers of WebRTC data channels (RFC 8831 §8).
//!
//! A channel is opened by a `DATA_CHANNEL_OPEN` on the stream it will use
//! and acknowledged by a `DATA_CHANNEL_ACK` on the same stream, both with
//! PPID 50. Parsing is total: bad input is an error, never a panic.

/// PPID of DCEP messages (RFC 8832 §8.1).
pub const PPID_DCEP: u32 = 50;
/// PPID of a UTF-8 string message (RFC 8831 §8).
pub const PPID_STRING: u32 = 51;
/// PPID of a binary message.
pub const PPID_BINARY: u32 = 53;
/// PPID of an empty string message (sent as one zero byte).
pub const PPID_STRING_EMPTY: u32 = 56;
/// PPID of an empty binary message (sent as one zero byte).
pub const PPID_BINARY_EMPTY: u32 = 57;

/// `DATA_CHANNEL_OPEN` message type (RFC 8832 §5.1).
const OPEN: u8 = 0x03;
/// `DATA_CHANNEL_ACK` message type (RFC 8832 §5.2).
const ACK: u8 = 0x02;
/// Bytes of a `DATA_CHANNEL_OPEN` before its label and protocol.
const OPEN_HEAD: usize = 12;

/// How a channel's messages are delivered (RFC 8832 §5.1, Channel Type
/// and Reliability Parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reliability {
    /// Every message is delivered (retransmitted until acknowledged).
    Reliable,
    /// A message is retransmitted at most this many times.
    MaxRetransmits(u32),
    /// A message is retransmitted for at most this many milliseconds.
    MaxLifetimeMs(u32),
}

/// What a `DATA_CHANNEL_OPEN` says about a channel.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChannelParams {
    /// `RTCDataChannel.label`, UTF-8 (lossily decoded when it is not).
    pub label: String,
    /// `RTCDataChannel.protocol`, the subprotocol name.
    pub protocol: String,
    /// Messages delivered in order.
    pub ordered: bool,
    /// Retransmission limits.
    pub reliability: Reliability,
    /// Priority (RFC 8832 §5.1; 256 is WebRTC's "low", the default).
    pub priority: u16,
}

/// A DCEP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DcepMessage {
    /// `DATA_CHANNEL_OPEN`.
    Open(ChannelParams),
    /// `DATA_CHANNEL_ACK`.
    Ack,
}

/// Why a DCEP message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DcepError {
    /// Shorter than its header, or than the lengths it gives.
    #[error("DCEP message truncated")]
    Truncated,
    /// A message type other than OPEN (3) or ACK (2).
    #[error("unknown DCEP message type {0}")]
    UnknownType(u8),
    /// A channel type RFC 8832 §5.1 does not define.
    #[error("unknown DCEP channel type {0:#04x}")]
    UnknownChannelType(u8),
    /// A label or protocol longer than the limit the caller set, bytes.
    #[error("DCEP label or protocol of {0} bytes is over the limit")]
    TooLong(usize),
}

/// Parses a DCEP message (the payload of an SCTP message with PPID 50).
/// A label or protocol over `max_text` bytes is refused.
///
/// Errors: [`DcepError`].
pub fn parse(data: &[u8], max_text: usize) -> Result<DcepMessage, DcepError> {
    match data.first() {
        None => Err(DcepError::Truncated),
        Some(&ACK) => Ok(DcepMessage::Ack),
        Some(&OPEN) => parse_open(data, max_text).map(DcepMessage::Open),
        Some(&t) => Err(DcepError::UnknownType(t)),
    }
}

fn parse_open(d: &[u8], max_text: usize) -> Result<ChannelParams, DcepError> {
    let head = d.get(..OPEN_HEAD).ok_or(DcepError::Truncated)?;
    let u16_at = |i: usize| usize::from(u16::from_be_bytes([head[i], head[i + 1]]));
    let channel_type = head[1];
    let priority = u16::from_be_bytes([head[2], head[3]]);
    let param = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
    let (label_len, protocol_len) = (u16_at(8), u16_at(10));
    for n in [label_len, protocol_len] {
        if n > max_text {
            return Err(DcepError::TooLong(n));
        }
    }
    let label = d
        .get(OPEN_HEAD..OPEN_HEAD + label_len)
        .ok_or(DcepError::Truncated)?;
    let protocol = d
        .get(OPEN_HEAD + label_len..OPEN_HEAD + label_len + protocol_len)
        .ok_or(DcepError::Truncated)?;
    let reliability = match channel_type & 0x7f {
        0x00 => Reliability::Reliable,
        0x01 => Reliability::MaxRetransmits(param),
        0x02 => Reliability::MaxLifetimeMs(param),
        _ => return Err(DcepError::UnknownChannelType(channel_type)),
    };
    Ok(ChannelParams {
        label: String::from_utf8_lossy(label).into_owned(),
        protocol: String::from_utf8_lossy(protocol).into_owned(),
        ordered: channel_type & 0x80 == 0,
        reliability,
        priority,
    })
}

/// Writes the `DATA_CHANNEL_OPEN` of `p`. A label or protocol longer than
/// 65,535 bytes is cut to that (the field is 16 bits).
pub fn write_open(p: &ChannelParams) -> Vec<u8> {
    let (kind, param) = match p.reliability {
        Reliability::Reliable => (0x00, 0),
        Reliability::MaxRetransmits(n) => (0x01, n),
        Reliability::MaxLifetimeMs(ms) => (0x02, ms),
    };
    let kind = if p.ordered { kind } else { kind | 0x80 };
    let label = &p.label.as_bytes()[..p.label.len().min(usize::from(u16::MAX))];
    let protocol = &p.protocol.as_bytes()[..p.protocol.len().min(usize::from(u16::MAX))];
    let mut out = Vec::with_capacity(OPEN_HEAD + label.len() + protocol.len());
    out.push(OPEN);
    out.push(kind);
    out.extend_from_slice(&p.priority.to_be_bytes());
    out.extend_from_slice(&param.to_be_bytes());
    out.extend_from_slice(&(label.len() as u16).to_be_bytes());
    out.extend_from_slice(&(protocol.len() as u16).to_be_bytes());
    out.extend_from_slice(label);
    out.extend_from_slice(protocol);
    out
}

/// The `DATA_CHANNEL_ACK` message.
pub fn write_ack() -> Vec<u8> {
    vec![ACK]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(reliability: Reliability, ordered: bool) -> ChannelParams {
        ChannelParams {
            label: "chat".into(),
            protocol: "json".into(),
            ordered,
            reliability,
            priority: 256,
        }
    }

    #[test]
    fn open_round_trips_for_every_channel_type() {
        for r in [
            Reliability::Reliable,
            Reliability::MaxRetransmits(3),
            Reliability::MaxLifetimeMs(1500),
        ] {
            for ordered in [true, false] {
                let p = params(r, ordered);
                let m = parse(&write_open(&p), 1024).expect("parses");
                assert_eq!(m, DcepMessage::Open(p));
            }
        }
        assert_eq!(parse(&write_ack(), 1024), Ok(DcepMessage::Ack));
    }

    #[test]
    fn open_of_an_ordered_reliable_channel_at_low_priority() {
        // createDataChannel("chat") with the defaults: RFC 8832 §5.1's
        // layout byte for byte.
        let bytes = [
            0x03, 0x00, 0x01, 0x00, 0, 0, 0, 0, 0x00, 0x04, 0x00, 0x00, b'c', b'h', b'a', b't',
        ];
        let DcepMessage::Open(p) = parse(&bytes, 1024).expect("parses") else {
            panic!("not an open");
        };
        assert_eq!(p.label, "chat");
        assert_eq!(p.protocol, "");
        assert!(p.ordered);
        assert_eq!(p.reliability, Reliability::Reliable);
        assert_eq!(p.priority, 256);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert_eq!(parse(&[], 1024), Err(DcepError::Truncated));
        assert_eq!(parse(&[0x09], 1024), Err(DcepError::UnknownType(9)));
        assert_eq!(parse(&[0x03, 0, 0], 1024), Err(DcepError::Truncated));
        let mut huge = vec![0x03, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0];
        assert_eq!(parse(&huge, 1024), Err(DcepError::TooLong(65535)));
        assert_eq!(parse(&huge, 65535), Err(DcepError::Truncated));
        huge.resize(12 + 65535, b'a');
        assert!(parse(&huge, 65535).is_ok());
        let bad_type = [0x03, 0x05, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            parse(&bad_type, 1024),
            Err(DcepError::UnknownChannelType(5))
        );
    }
}
