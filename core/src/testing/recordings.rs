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
