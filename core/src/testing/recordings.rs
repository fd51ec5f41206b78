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
/// pictures of three spatial layers, to its last marker) played `times`
/// times, each play's
/// frame numbers and sequence numbers continuing where the last ended, so
/// that each play starts with a keyframe of its own. Each packet's
/// (sequence number, marker bit, dependency descriptor bytes).
pub fn av1_l3t3_replayed(times: u16) -> Vec<(u16, bool, Vec<u8>)> {
    use crate::proto::rtp::RtpHeader;
    let once: Vec<(u16, bool, Vec<u8>)> = testdata_rtp("av1-l3t3.sfurec")
        .iter()
        .map(|pkt| {
            let h = RtpHeader::parse(pkt).expect("captured RTP parses");
            let v = h
                .extension(pkt, AV1_DD_EXT_ID)
                .expect("a dependency descriptor");
            (h.seq, h.marker, v.to_vec())
        })
        .collect();
    // Whole pictures: the capture ends inside one.
    let mut once = once;
    let ended = once.iter().rposition(|p| p.1).expect("a marker");
    once.truncate(ended + 1);
    let frame = |v: &[u8]| u16::from_be_bytes([v[1], v[2]]);
    let frames = frame(&once[once.len() - 1].2).wrapping_sub(frame(&once[0].2)) + 1;
    let packets = once.len() as u16;
    let mut out = Vec::new();
    for k in 0..times {
        for (seq, marker, v) in &once {
            let mut v = v.clone();
            let n = frame(&v).wrapping_add(k * frames).to_be_bytes();
            v[1..3].copy_from_slice(&n);
            out.push((seq.wrapping_add(k * packets), *marker, v));
        }
    }
    out
}
