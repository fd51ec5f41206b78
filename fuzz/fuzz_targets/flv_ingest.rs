//! RTMP ingest: bytes from an encoder -> the RTMP connection, its FLV video
//! and audio payloads -> RTP (H.264 packetized, AAC transcoded to Opus),
//! and the AVC and AAC configuration records and AVCC NAL units alone.
#![no_main]
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use sfu_core::Ssrc;
use sfu_sig::ingest::flv::{AacConfig, AvcConfig, avcc_nal_units};
use sfu_sig::ingest::session::Ingest;
use shiguredo_rtmp::{
    AudioFormat, AudioFrame, AudioSampleRate, AvcPacketType, RtmpConnectionEvent, RtmpServerConnection,
    RtmpTimestamp, RtmpTimestampDelta, VideoCodec, VideoFrame, VideoFrameType,
};

fuzz_target!(|data: &[u8]| {
    let Some((sel, rest)) = data.split_first() else {
        return;
    };
    let _ = AvcConfig::parse(rest);
    let _ = AacConfig::parse(rest);
    let _ = avcc_nal_units(rest, usize::from(sel & 3) + 1);
    let now = Instant::now();
    let mut ingest = Ingest::new(Ssrc(1), Ssrc(2));
    // The input as an encoder's bytes on the RTMP connection.
    let mut conn = RtmpServerConnection::new();
    let _ = conn.feed_recv_buf(rest);
    while let Some(ev) = conn.next_event() {
        match ev {
            RtmpConnectionEvent::PublishRequested { .. } => {
                let _ = conn.accept();
            }
            RtmpConnectionEvent::VideoReceived(f) => {
                let _ = ingest.on_video(now, &f);
            }
            RtmpConnectionEvent::AudioReceived(f) => {
                let _ = ingest.on_audio(now, &f);
            }
            _ => {}
        }
    }
    // FLV payloads as the RTMP layer hands them over: each piece is
    // [flags, len_hi, len_lo, payload...]; flags pick audio or video, the
    // AVC packet type, a sequence header, the composition time.
    let mut at = 0;
    let mut ms = 0u32;
    while at + 3 <= rest.len() {
        let flags = rest[at];
        let len = usize::from(u16::from_be_bytes([rest[at + 1], rest[at + 2]]));
        let end = (at + 3 + len).min(rest.len());
        let data = rest[at + 3..end].to_vec();
        ms = ms.wrapping_add(33);
        let timestamp = RtmpTimestamp::from_millis(ms);
        if flags & 1 == 0 {
            let f = VideoFrame {
                timestamp,
                composition_timestamp_offset: RtmpTimestampDelta::from_millis(i32::from(flags >> 7)),
                frame_type: if flags & 2 == 0 { VideoFrameType::KeyFrame } else { VideoFrameType::InterFrame },
                codec: VideoCodec::Avc,
                avc_packet_type: Some(match (flags >> 2) & 3 {
                    0 => AvcPacketType::SequenceHeader,
                    1 => AvcPacketType::EndOfSequence,
                    _ => AvcPacketType::NalUnit,
                }),
                data,
            };
            let _ = ingest.on_video(now, &f);
        } else {
            let f = AudioFrame {
                timestamp,
                format: if flags & 2 == 0 { AudioFormat::Aac } else { AudioFormat::Mp3 },
                sample_rate: AudioSampleRate::Khz44,
                is_8bit_sample: false,
                is_stereo: true,
                is_aac_sequence_header: flags & 4 != 0,
                data,
            };
            let _ = ingest.on_audio(now, &f);
        }
        at = end;
    }
    let _ = ingest.poll_reports(now);
});
