//! A participant's media as WebM (Matroska for the web) through the `webm`
//! crate (libwebm's muxer; AV1 with its `av1C` as CodecPrivate): file mode, so the segment carries Cues (each
//! video keyframe) and its Duration, and a browser can seek in it.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use sfu_core::proto::codec::VideoCodec;
use webm::mux::{AudioCodecId, SegmentBuilder, SegmentMode, Track, VideoCodecId, Writer};

use super::Media;

/// The Opus identification header (RFC 7845 §5.1), the track's
/// CodecPrivate (the Matroska Opus mapping): version 1, `channels`, no
/// pre-skip, 48 kHz, no gain, mapping family 0.
fn opus_head(channels: u8) -> Vec<u8> {
    let mut h = b"OpusHead".to_vec();
    h.push(1);
    h.push(channels);
    h.extend_from_slice(&0u16.to_le_bytes());
    h.extend_from_slice(&48_000u32.to_le_bytes());
    h.extend_from_slice(&0i16.to_le_bytes());
    h.push(0);
    h
}

/// Writes `media` to `path` (replaced whole: written beside it, then
/// renamed).
///
/// Errors: what went wrong, as text (libwebm gives no more).
pub(super) fn write(path: &Path, media: &Media) -> Result<(), String> {
    let tmp = path.with_extension("webm.part");
    let file = File::create(&tmp).map_err(|e| e.to_string())?;
    let writer = Writer::new(BufWriter::new(file));
    let e = |what: &'static str| move |err: webm::mux::Error| format!("{what}: {err:?}");
    let mut builder = SegmentBuilder::new(writer)
        .map_err(e("segment"))?
        .set_mode(SegmentMode::File)
        .map_err(e("mode"))?
        .set_writing_app("sfu")
        .map_err(e("writing app"))?;
    let mut video_track = None;
    if let Some((codec, (w, h), _)) = &media.video {
        let id = match codec {
            VideoCodec::Vp8 => VideoCodecId::VP8,
            VideoCodec::Vp9 => VideoCodecId::VP9,
            VideoCodec::Av1 => VideoCodecId::AV1,
            VideoCodec::H264 => return Err("H.264 goes to MP4, not WebM".into()),
        };
        let (mut b, t) = builder
            .add_video_track(u32::from(*w).max(2), u32::from(*h).max(2), id, None)
            .map_err(e("video track"))?;
        if let Some(c) = &media.av1c {
            b = b.set_codec_private(t, c).map_err(e("av1C"))?;
        }
        builder = b;
        video_track = Some(t);
    }
    let mut audio_track = None;
    if let Some((channels, _)) = &media.audio {
        let (b, t) = builder
            .add_audio_track(48_000, u32::from(*channels), AudioCodecId::Opus, None)
            .map_err(e("audio track"))?;
        builder = b
            .set_codec_private(t, &opus_head(*channels))
            .map_err(e("OpusHead"))?;
        audio_track = Some(t);
    }
    let mut segment = builder.build();
    for (video, _, f) in media.in_time_order() {
        let track = if video {
            video_track.map(|t| t.track_number())
        } else {
            audio_track.map(|t| t.track_number())
        };
        let Some(track) = track else { continue };
        segment
            .add_frame(track, &f.data, f.us.max(0) as u64 * 1000, f.keyframe)
            .map_err(e("frame"))?;
    }
    // Duration in the segment's timecode scale (libwebm's default: 1 ms).
    let duration_ms = (media.duration_us() / 1000).max(1) as u64;
    let writer = segment
        .finalize(Some(duration_ms))
        .map_err(|_| "finalizing the segment failed".to_string())?;
    let mut out = writer.into_inner();
    std::io::Write::flush(&mut out).map_err(|e| e.to_string())?;
    drop(out);
    std::fs::rename(&tmp, path).map_err(|e| e.to_string())
}
