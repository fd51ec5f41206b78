//! A recording file (`sfu_sig::recording::file`) as mux and playback read
//! it: the header, then every record, however the bytes are cut or forged;
//! and the mux's track reader on the same bytes (RTP reordering, VP8/VP9/
//! H.264/AV1 depacketizing, sender reports), with the header's codec forced to
//! each one the muxer takes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sfu_sig::recording::file::{Reader, write_header};
use sfu_sig::recording::mux::track::Track;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = Reader::new(data) {
        let mut n = 0usize;
        for rec in r {
            n += rec.data.len();
        }
        std::hint::black_box(n);
        let _ = Track::read(data);
    }
    // The same bytes as the records of a file of each codec.
    let Some((&sel, records)) = data.split_first() else {
        return;
    };
    let (kind, codec) = match sel % 5 {
        0 => ("video", "VP8"),
        1 => ("video", "VP9"),
        2 => ("video", "H264"),
        3 => ("video", "AV1"),
        _ => ("audio", "opus"),
    };
    let header = sfu_sig::recording::file::TrackHeader {
        room: "r".into(),
        recording: "1".into(),
        participant: "p1".into(),
        name: "n".into(),
        kind: kind.into(),
        screen: false,
        codec: codec.into(),
        clock_rate: if kind == "audio" { 48_000 } else { 90_000 },
        channels: 2,
        payload_type: 96,
        ssrc: 1,
        fmtp: String::new(),
        started_unix_ms: 0,
        dependency_descriptor_id: (codec == "AV1").then_some(12),
    };
    let mut file = Vec::new();
    write_header(&header, &mut file);
    file.extend_from_slice(records);
    if let Ok(t) = Track::read(&file) {
        std::hint::black_box(t.frames.len());
    }
});
