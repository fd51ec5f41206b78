//! A participant's H.264 + Opus as MP4 through `shiguredo_mp4`: progressive
//! (not fragmented: Chromium seeks in it), its moov box reserved at the
//! start (faststart) when it fits. MP4 has no timestamps of its own, only
//! each sample's duration: the first video frame is shown from 0, and
//! audio is continuous (its gaps were filled with silence).

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::num::NonZeroU32;
use std::path::Path;

use shiguredo_mp4::boxes::{
    AudioSampleEntryFields, Avc1Box, AvccBox, DopsBox, OpusBox, SampleEntry,
    VisualSampleEntryFields,
};
use shiguredo_mp4::mux::{
    Mp4FileMuxer, Mp4FileMuxerOptions, Sample, estimate_maximum_moov_box_size,
};
use shiguredo_mp4::{FixedPointNumber, TrackKind, Uint};

use super::{Media, opus_samples};

const VIDEO_TIMESCALE: u32 = 90_000;
const AUDIO_TIMESCALE: u32 = 48_000;

fn avc1(size: (u16, u16), sps: &[u8], pps: &[u8]) -> SampleEntry {
    SampleEntry::Avc1(Avc1Box {
        visual: VisualSampleEntryFields {
            data_reference_index: VisualSampleEntryFields::DEFAULT_DATA_REFERENCE_INDEX,
            width: size.0,
            height: size.1,
            horizresolution: VisualSampleEntryFields::DEFAULT_HORIZRESOLUTION,
            vertresolution: VisualSampleEntryFields::DEFAULT_VERTRESOLUTION,
            frame_count: VisualSampleEntryFields::DEFAULT_FRAME_COUNT,
            compressorname: VisualSampleEntryFields::NULL_COMPRESSORNAME,
            depth: VisualSampleEntryFields::DEFAULT_DEPTH,
        },
        avcc_box: AvccBox {
            // profile_idc, constraint flags, level_idc: the SPS's bytes 1–3.
            avc_profile_indication: sps.get(1).copied().unwrap_or(66),
            profile_compatibility: sps.get(2).copied().unwrap_or(0),
            avc_level_indication: sps.get(3).copied().unwrap_or(31),
            length_size_minus_one: Uint::new(3),
            sps_list: vec![sps.to_vec()],
            pps_list: vec![pps.to_vec()],
            chroma_format: None,
            bit_depth_luma_minus8: None,
            bit_depth_chroma_minus8: None,
            sps_ext_list: vec![],
        },
        unknown_boxes: vec![],
    })
}

fn opus(channels: u8) -> SampleEntry {
    SampleEntry::Opus(OpusBox {
        audio: AudioSampleEntryFields {
            data_reference_index: AudioSampleEntryFields::DEFAULT_DATA_REFERENCE_INDEX,
            channelcount: u16::from(channels),
            samplesize: AudioSampleEntryFields::DEFAULT_SAMPLESIZE,
            samplerate: FixedPointNumber::new(AUDIO_TIMESCALE as u16, 0),
        },
        dops_box: DopsBox {
            output_channel_count: channels,
            pre_skip: 0,
            input_sample_rate: AUDIO_TIMESCALE,
            output_gain: 0,
        },
        unknown_boxes: vec![],
    })
}

/// Writes `media` to `path` (replaced whole: written beside it, then
/// renamed).
///
/// Errors: what went wrong, as text.
pub(super) fn write(path: &Path, media: &Media) -> Result<(), String> {
    let (v, a) = (media.video_frames(), media.audio_frames());
    let mut video_entry = match (&media.video, &media.sps_pps) {
        (Some((_, size, _)), Some((sps, pps))) => Some(avc1(*size, sps, pps)),
        (Some(_), None) => return Err("no SPS and PPS in the H.264 track".into()),
        (None, _) => None,
    };
    let mut audio_entry = media.audio.as_ref().map(|(c, _)| opus(*c));
    let options = Mp4FileMuxerOptions {
        reserved_moov_box_size: estimate_maximum_moov_box_size(&[v.len(), a.len()]),
        ..Default::default()
    };
    let e = |err: shiguredo_mp4::mux::MuxError| err.to_string();
    let mut muxer = Mp4FileMuxer::with_options(options).map_err(e)?;
    let tmp = path.with_extension("mp4.part");
    let io = |err: std::io::Error| err.to_string();
    let mut out = BufWriter::new(File::create(&tmp).map_err(io)?);
    out.write_all(muxer.initial_boxes_bytes()).map_err(io)?;
    let mut offset = muxer.initial_boxes_bytes().len() as u64;
    for (video, i, f) in media.in_time_order() {
        let sample = if video {
            // The first frame from 0: MP4 cannot start a track later.
            let dur_us = if i == 0 { f.us + f.dur_us } else { f.dur_us };
            Sample {
                track_kind: TrackKind::Video,
                sample_entry: video_entry.take(),
                keyframe: f.keyframe,
                timescale: NonZeroU32::new(VIDEO_TIMESCALE).ok_or("timescale")?,
                duration: ((dur_us * i64::from(VIDEO_TIMESCALE) / 1_000_000).max(1)) as u32,
                composition_time_offset: None,
                data_offset: offset,
                data_size: f.data.len(),
            }
        } else {
            Sample {
                track_kind: TrackKind::Audio,
                sample_entry: audio_entry.take(),
                keyframe: true,
                timescale: NonZeroU32::new(AUDIO_TIMESCALE).ok_or("timescale")?,
                duration: opus_samples(&f.data) as u32,
                composition_time_offset: None,
                data_offset: offset,
                data_size: f.data.len(),
            }
        };
        out.write_all(&f.data).map_err(io)?;
        offset += f.data.len() as u64;
        muxer.append_sample(&sample).map_err(e)?;
    }
    let finalized = muxer.finalize().map_err(e)?;
    for (at, bytes) in finalized.offset_and_bytes_pairs() {
        out.seek(SeekFrom::Start(at)).map_err(io)?;
        out.write_all(bytes).map_err(io)?;
    }
    out.flush().map_err(io)?;
    drop(out);
    std::fs::rename(&tmp, path).map_err(io)
}
