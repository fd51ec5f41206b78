//! The recording file: one track's packets as the data plane handed them
//! over, to be muxed later (`crate::recording::mux`) or played back.
//!
//! Like Janus's `.mjr` (janus-gateway `src/record.c`: a JSON header, then
//! each packet with its receive time), with the sender reports kept too
//! for A/V alignment:
//!
//! ```text
//! magic    8 bytes  "SFUREC" 0x00 0x01 (the last byte is the version)
//! hlen     u32 BE   bytes of the header
//! header   JSON     TrackHeader: codec, clock rate, who, when
//! records  …        each: kind u8 (1 RTP, 2 RTCP), at u64 BE (µs since
//!                   the recording started), len u16 BE, then len bytes:
//!                   a plain RTP packet (RFC 3550 §5.1) or a compound RTCP
//!                   packet carrying the track's sender report (§6.4.1):
//!                   its NTP ↔ RTP timestamp mapping.
//! ```
//!
//! A file cut short (a crash, a full disk) reads up to its last whole
//! record. Everything here is sans-IO: bytes in, bytes out.

use serde::{Deserialize, Serialize};

/// The first 8 bytes of a recording file.
pub const MAGIC: &[u8; 8] = b"SFUREC\x00\x01";
/// Largest header accepted, bytes.
pub const MAX_HEADER: usize = 64 * 1024;
/// File name extension of a track's recording.
pub const EXTENSION: &str = "sfurec";

/// What a track's file starts with (its JSON header).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackHeader {
    /// The room.
    pub room: String,
    /// The recording's id.
    pub recording: String,
    /// The publisher's id in the room (`p7`).
    pub participant: String,
    /// The publisher's display name.
    pub name: String,
    /// `audio` or `video`.
    pub kind: String,
    /// A screen share's video (`p7-screen`), not the camera's.
    #[serde(default)]
    pub screen: bool,
    /// The codec's name as in SDP `a=rtpmap` (`VP8`, `VP9`, `AV1`, `H264`,
    /// `opus`).
    pub codec: String,
    /// RTP clock rate, Hz (90000 for video, 48000 for Opus).
    pub clock_rate: u32,
    /// Audio channels (2 for Opus, RFC 7587 §7); 0 for video.
    #[serde(default)]
    pub channels: u8,
    /// The payload type of its packets.
    pub payload_type: u8,
    /// The SSRC of its packets.
    pub ssrc: u32,
    /// The codec's `a=fmtp` parameters (H.264's profile), if any.
    #[serde(default)]
    pub fmtp: String,
    /// Wall-clock time at `at` = 0, ms since the Unix epoch.
    pub started_unix_ms: u64,
    /// The RTP header extension id its packets carry AV1's dependency
    /// descriptor under (AV1 RTP specification appendix A), when they do
    /// ([`AV1_DD_EXT_ID`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependency_descriptor_id: Option<u8>,
}

/// The header extension id an AV1 track's recorded packets carry the
/// publisher's dependency descriptor under: its layers and frame
/// dependencies, which a player or a test reads back.
pub const AV1_DD_EXT_ID: u8 = 12;

/// What a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// A plain RTP packet.
    Rtp = 1,
    /// A compound RTCP packet (the track's sender report).
    Rtcp = 2,
}

/// One record of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// RTP or RTCP.
    pub kind: RecordKind,
    /// When the data plane handled it, µs since the recording started.
    pub at_us: u64,
    /// The packet.
    pub data: &'a [u8],
}

/// Why a file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    /// It does not start with [`MAGIC`] (another version, or not ours).
    #[error("not a recording file (no SFUREC version 1 magic)")]
    NotARecording,
    /// It ends inside its header.
    #[error("the file ends inside its header")]
    Truncated,
    /// The header is too long or not the JSON expected.
    #[error("the file's header is not valid: {0}")]
    BadHeader(String),
}

/// Appends the start of a file (magic and header) to `out`.
pub fn write_header(h: &TrackHeader, out: &mut Vec<u8>) {
    let json = serde_json::to_vec(h).unwrap_or_default();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(&json);
}

/// The 11 bytes that start a record of a `len`-byte packet; `None` for
/// a packet over 65,535 bytes (no RTP packet over UDP is).
pub fn record_head(kind: RecordKind, at_us: u64, len: usize) -> Option<[u8; 11]> {
    let len = u16::try_from(len).ok()?;
    let mut h = [0u8; 11];
    h[0] = kind as u8;
    h[1..9].copy_from_slice(&at_us.to_be_bytes());
    h[9..].copy_from_slice(&len.to_be_bytes());
    Some(h)
}

/// Appends one record to `out`. A packet over 65,535 bytes is not
/// written (false).
pub fn write_record(kind: RecordKind, at_us: u64, data: &[u8], out: &mut Vec<u8>) -> bool {
    let Some(head) = record_head(kind, at_us, data.len()) else {
        return false;
    };
    out.extend_from_slice(&head);
    out.extend_from_slice(data);
    true
}

/// A file being read: its header, then its records in file order.
#[derive(Debug)]
pub struct Reader<'a> {
    /// The header.
    pub header: TrackHeader,
    rest: &'a [u8],
    /// Bytes after the last whole record (a file cut short), or of a
    /// record of an unknown kind (where reading stopped).
    pub trailing: usize,
}

impl<'a> Reader<'a> {
    /// Reads the header of `file`.
    ///
    /// Errors: [`FileError::NotARecording`], [`FileError::Truncated`],
    /// [`FileError::BadHeader`].
    pub fn new(file: &'a [u8]) -> Result<Self, FileError> {
        let rest = file
            .strip_prefix(MAGIC.as_slice())
            .ok_or(FileError::NotARecording)?;
        let len = rest.get(..4).ok_or(FileError::Truncated)?;
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        if len > MAX_HEADER {
            return Err(FileError::BadHeader(format!(
                "{len} bytes, more than {MAX_HEADER}"
            )));
        }
        let json = rest.get(4..4 + len).ok_or(FileError::Truncated)?;
        let header: TrackHeader =
            serde_json::from_slice(json).map_err(|e| FileError::BadHeader(e.to_string()))?;
        Ok(Self {
            header,
            rest: &rest[4 + len..],
            trailing: 0,
        })
    }
}

impl<'a> Iterator for Reader<'a> {
    type Item = Record<'a>;

    fn next(&mut self) -> Option<Record<'a>> {
        if self.rest.is_empty() {
            return None;
        }
        let stop = |r: &mut Self| {
            r.trailing = r.rest.len();
            r.rest = &[];
            None
        };
        let Some(head) = self.rest.get(..11) else {
            return stop(self);
        };
        let kind = match head[0] {
            1 => RecordKind::Rtp,
            2 => RecordKind::Rtcp,
            _ => return stop(self),
        };
        let mut at = [0u8; 8];
        at.copy_from_slice(&head[1..9]);
        let len = u16::from_be_bytes([head[9], head[10]]) as usize;
        let Some(data) = self.rest.get(11..11 + len) else {
            return stop(self);
        };
        self.rest = &self.rest[11 + len..];
        Some(Record {
            kind,
            at_us: u64::from_be_bytes(at),
            data,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn header() -> TrackHeader {
        TrackHeader {
            room: "demo".into(),
            recording: "r1".into(),
            participant: "p1".into(),
            name: "alice".into(),
            kind: "video".into(),
            screen: false,
            codec: "VP8".into(),
            clock_rate: 90_000,
            channels: 0,
            payload_type: 96,
            ssrc: 0x1234,
            fmtp: String::new(),
            started_unix_ms: 1,
            dependency_descriptor_id: None,
        }
    }

    #[test]
    fn a_file_reads_back_and_a_cut_one_up_to_its_last_whole_record() {
        let mut f = Vec::new();
        write_header(&header(), &mut f);
        assert!(write_record(RecordKind::Rtp, 10, &[0x80, 96, 0, 1], &mut f));
        assert!(write_record(
            RecordKind::Rtcp,
            20,
            &[0x80, 200, 0, 0],
            &mut f
        ));
        assert!(!write_record(RecordKind::Rtp, 30, &vec![0; 70_000], &mut f));
        let r = Reader::new(&f).expect("reads");
        assert_eq!(r.header, header());
        let recs: Vec<_> = r.collect();
        assert_eq!(recs.len(), 2);
        assert_eq!((recs[0].kind, recs[0].at_us), (RecordKind::Rtp, 10));
        assert_eq!(
            (recs[1].kind, recs[1].data),
            (RecordKind::Rtcp, &[0x80, 200, 0, 0][..])
        );
        // Cut inside the last record: the first still reads.
        let mut cut = Reader::new(&f[..f.len() - 2]).expect("reads");
        assert!(cut.next().is_some());
        assert!(cut.next().is_none());
        assert_eq!(cut.trailing, 13);
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        assert_eq!(Reader::new(b"hello").err(), Some(FileError::NotARecording));
        assert_eq!(Reader::new(MAGIC).err(), Some(FileError::Truncated));
        let mut f = MAGIC.to_vec();
        f.extend_from_slice(&5u32.to_be_bytes());
        f.extend_from_slice(b"{nope");
        assert!(matches!(Reader::new(&f), Err(FileError::BadHeader(_))));
        let mut f = MAGIC.to_vec();
        f.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(Reader::new(&f), Err(FileError::BadHeader(_))));
    }
}
