//! The captures in `testdata/rtp/`: recordings (`sfu record`) of what
//! Chromium sent, as plain RTP packets.

/// The RTP packets of `testdata/rtp/<name>`, a recording file (sig's
/// `recording::file`: magic, header length, JSON header, then records of
/// kind (1 byte), µs (8), length (2), data). Panics when the file is
/// missing or not a recording: a test that reads it fails, never skips.
pub fn testdata_rtp(name: &str) -> Vec<Vec<u8>> {
    let path = format!("{}/../testdata/rtp/{name}", env!("CARGO_MANIFEST_DIR"));
    let file = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e} (testdata/README.md)"));
    assert_eq!(&file[..8], b"SFUREC\x00\x01", "{path}: not a recording");
    let hlen = u32::from_be_bytes([file[8], file[9], file[10], file[11]]) as usize;
    let mut at = 12 + hlen;
    let mut out = Vec::new();
    while at + 11 <= file.len() {
        let len = usize::from(u16::from_be_bytes([file[at + 9], file[at + 10]]));
        if file[at] == 1 && at + 11 + len <= file.len() {
            out.push(file[at + 11..at + 11 + len].to_vec());
        }
        at += 11 + len;
    }
    out
}

/// The dependency descriptors' extension id in the captures (sig's
/// `recording::file::AV1_DD_EXT_ID`).
pub const AV1_DD_EXT_ID: u8 = 12;

/// Chromium's AV1 L3T3 capture (`av1-l3t3.sfurec`: one keyframe, then 17
/// pictures of three spatial layers, to its last marker) as an endless
/// play: each time round, its frame numbers, sequence numbers and pictures
/// continue where the last ended, so that each round starts with a
/// keyframe of its own.
#[derive(Debug, Clone)]
pub struct Av1L3t3Play {
    /// One round: each packet's (sequence number, picture from 0, marker
    /// bit, dependency descriptor bytes).
    once: Vec<(u16, u32, bool, Vec<u8>)>,
    /// Frames and pictures in a round.
    frames: u16,
    pictures: u32,
}

impl Av1L3t3Play {
    pub fn load() -> Self {
        use crate::proto::rtp::RtpHeader;
        let mut once = Vec::new();
        let mut picture = 0u32;
        for pkt in testdata_rtp("av1-l3t3.sfurec") {
            let h = RtpHeader::parse(&pkt).expect("captured RTP parses");
            let v = h
                .extension(&pkt, AV1_DD_EXT_ID)
                .expect("a dependency descriptor");
            once.push((h.seq, picture, h.marker, v.to_vec()));
            picture += u32::from(h.marker);
        }
        // Whole pictures: the capture ends inside one.
        let ended = once.iter().rposition(|p| p.2).expect("a marker");
        once.truncate(ended + 1);
        let frames = frame_number(&once[ended].3).wrapping_sub(frame_number(&once[0].3)) + 1;
        let pictures = once[ended].1 + 1;
        Self {
            once,
            frames,
            pictures,
        }
    }

    /// Packets in a round (never 0).
    pub fn round_len(&self) -> usize {
        self.once.len()
    }

    /// Packet `k` of the play (from 0): (sequence number, picture, marker
    /// bit, dependency descriptor bytes).
    pub fn packet(&self, k: usize) -> (u16, u32, bool, Vec<u8>) {
        let (round, i) = (k / self.once.len(), k % self.once.len());
        let (seq, picture, marker, v) = &self.once[i];
        let mut v = v.clone();
        let n = frame_number(&v).wrapping_add((round as u16).wrapping_mul(self.frames));
        v[1..3].copy_from_slice(&n.to_be_bytes());
        let seq = seq.wrapping_add((round * self.once.len()) as u16);
        (seq, round as u32 * self.pictures + picture, *marker, v)
    }
}

/// The frame number of dependency descriptor `v` (bytes 1–2, AV1 RTP
/// specification §A.8.2).
fn frame_number(v: &[u8]) -> u16 {
    u16::from_be_bytes([v[1], v[2]])
}

/// [`Av1L3t3Play`]'s first `times` rounds: each packet's (sequence number,
/// marker bit, dependency descriptor bytes).
pub fn av1_l3t3_replayed(times: u16) -> Vec<(u16, bool, Vec<u8>)> {
    let play = Av1L3t3Play::load();
    (0..usize::from(times) * play.round_len())
        .map(|k| {
            let (seq, _, marker, v) = play.packet(k);
            (seq, marker, v)
        })
        .collect()
}
