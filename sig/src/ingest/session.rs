//! One RTMP publisher's media, sans-IO: fed the RTMP video and audio
//! messages (FLV payloads with RTMP millisecond timestamps) and the time,
//! it returns RTP packets for the room's direct transport, and every
//! second a sender report per stream.
//!
//! Both RTP clocks come from the one RTMP clock (video 90 kHz, Opus
//! 48 kHz), and both streams' sender reports map it to one NTP base (RFC
//! 3550 §6.4.1), so a browser keeps the two in sync.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sfu_core::Ssrc;
use sfu_core::proto::rtcp::SenderInfo;
use shiguredo_rtmp::{
    AudioFormat, AudioFrame, AvcPacketType, VideoCodec, VideoFrame, VideoFrameType,
};

use super::audio::{AacToOpus, AudioError, OPUS_FRAME};
use super::flv::{AvcConfig, avcc_nal_units};
use super::h264;

/// Largest RTP payload sent (bytes): room for SRTP and the header
/// extensions consumers add, under a 1,280-byte path MTU.
pub const MAX_PAYLOAD: usize = 1100;
/// Payload types of the tracks (what the synthesized offer names).
pub const VIDEO_PT: u8 = 102;
/// Opus's payload type.
pub const AUDIO_PT: u8 = 111;
/// Audio whose RTMP timestamps drift further than this from the samples
/// counted is re-timed from the RTMP clock (ms).
const AUDIO_RESYNC_MS: i64 = 200;
/// Sender reports go out this often.
pub(crate) const SR_INTERVAL: Duration = Duration::from_secs(1);
/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// Why a stream is refused: each message names the encoder setting to
/// change, and goes to the encoder and the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    /// H.264 with B-frames (a non-zero composition time offset).
    #[error(
        "the video has B-frames (composition time offset {0} ms), which browsers cannot play over WebRTC: \
         turn them off (ffmpeg/x264: -bf 0; OBS: x264 profile baseline, or B-frames 0)"
    )]
    BFrames(i32),
    /// Not H.264.
    #[error(
        "the video is {0}, which is not taken: send H.264 (ffmpeg: -c:v libx264; OBS: x264 or NVENC H.264)"
    )]
    VideoCodec(String),
    /// Not AAC-LC.
    #[error("{0}")]
    Audio(String),
    /// A payload that does not parse.
    #[error("malformed stream: {0}")]
    Malformed(String),
}

/// What the room is told of the stream once it is known: its tracks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracks {
    /// The video's `profile-level-id` (from its SPS), when there is video.
    pub video: Option<String>,
    /// Whether there is audio.
    pub audio: bool,
}

/// Counts for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngestStats {
    /// Video frames (access units) packetized.
    pub video_frames: u64,
    /// AAC frames transcoded.
    pub audio_frames: u64,
    /// AAC frames the decoder refused (skipped).
    pub audio_errors: u64,
    /// RTP packets made.
    pub packets: u64,
    /// Payload bytes made.
    pub bytes: u64,
}

/// One RTP stream a direct publisher sends: its SSRC, payload type,
/// sequence numbers, clock, and the counts its sender reports carry.
#[derive(Debug)]
pub(crate) struct Stream {
    ssrc: Ssrc,
    pt: u8,
    seq: u16,
    /// RTP timestamp of RTMP time 0 (random, RFC 3550 §5.1).
    offset: u32,
    /// Ticks per millisecond: 90 or 48.
    per_ms: u32,
    packets: u32,
    octets: u32,
}

impl Stream {
    /// A stream of `ssrc` and `pt` whose clock runs `per_ms` ticks per
    /// millisecond (90 video, 48 Opus), from a random sequence number and
    /// timestamp (RFC 3550 §5.1).
    pub(crate) fn new(ssrc: Ssrc, pt: u8, per_ms: u32) -> Self {
        Self {
            ssrc,
            pt,
            seq: rand::random(),
            offset: rand::random(),
            per_ms,
            packets: 0,
            octets: 0,
        }
    }

    /// The next RTP packet: `payload` at timestamp `ts`, `marker` set.
    pub(crate) fn rtp(&mut self, ts: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
        let mut p = Vec::with_capacity(12 + payload.len());
        p.push(0x80);
        p.push(self.pt | if marker { 0x80 } else { 0 });
        p.extend_from_slice(&self.seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&self.ssrc.0.to_be_bytes());
        p.extend_from_slice(payload);
        self.seq = self.seq.wrapping_add(1);
        self.packets = self.packets.wrapping_add(1);
        self.octets = self.octets.wrapping_add(payload.len() as u32);
        p
    }

    /// Its sender report (RFC 3550 §6.4.1) for NTP time `ntp`, which is
    /// stream time `ms`; `None` before it sent anything.
    pub(crate) fn sender_report(&self, ntp: u64, ms: u32) -> Option<Vec<u8>> {
        if self.packets == 0 {
            return None;
        }
        let mut b = Vec::with_capacity(28);
        SenderInfo {
            ssrc: self.ssrc,
            ntp,
            rtp_ts: self.ts_at(ms),
            packets: self.packets,
            octets: self.octets,
        }
        .write(&mut b);
        Some(b)
    }

    /// The RTP timestamp of stream time `ms`.
    pub(crate) fn ts_at(&self, ms: u32) -> u32 {
        self.offset.wrapping_add(ms.wrapping_mul(self.per_ms))
    }
}

/// One publisher's media (see the module docs).
#[derive(Debug)]
pub struct Ingest {
    avc: Option<AvcConfig>,
    aac: Option<AacToOpus>,
    video: Stream,
    audio: Stream,
    /// The next Opus frame's RTP timestamp, counted in samples.
    audio_next: Option<u32>,
    /// The latest RTMP time seen (ms) and when.
    clock: Option<(u32, Instant)>,
    /// NTP time of RTMP time 0 (64-bit fixed point).
    ntp_zero: Option<u64>,
    next_sr: Option<Instant>,
    stats: IngestStats,
}

impl Ingest {
    /// A new stream whose RTP packets carry `video_ssrc` and `audio_ssrc`.
    pub fn new(video_ssrc: Ssrc, audio_ssrc: Ssrc) -> Self {
        Self {
            avc: None,
            aac: None,
            video: Stream::new(video_ssrc, VIDEO_PT, 90),
            audio: Stream::new(audio_ssrc, AUDIO_PT, 48),
            audio_next: None,
            clock: None,
            ntp_zero: None,
            next_sr: None,
            stats: IngestStats::default(),
        }
    }

    /// The tracks known so far (sequence headers seen).
    pub fn tracks(&self) -> Tracks {
        Tracks {
            video: self
                .avc
                .as_ref()
                .and_then(|c| c.sps.first())
                .and_then(|s| h264::profile_level_id(s)),
            audio: self.aac.is_some(),
        }
    }

    /// The SSRCs of the video and the audio stream.
    pub fn ssrcs(&self) -> (Ssrc, Ssrc) {
        (self.video.ssrc, self.audio.ssrc)
    }

    /// Counts so far.
    pub fn stats(&self) -> IngestStats {
        self.stats
    }

    fn tick(&mut self, now: Instant, ms: u32) {
        if self.ntp_zero.is_none() {
            self.ntp_zero = Some(ntp_before_now(Duration::from_millis(u64::from(ms))));
        }
        self.clock = Some((ms, now));
    }

    /// One RTMP video message: its RTP packets (none for a sequence
    /// header).
    ///
    /// Errors: [`IngestError::VideoCodec`] for anything but H.264,
    /// [`IngestError::BFrames`], [`IngestError::Malformed`].
    pub fn on_video(&mut self, now: Instant, f: &VideoFrame) -> Result<Vec<Vec<u8>>, IngestError> {
        if f.codec != VideoCodec::Avc {
            return Err(IngestError::VideoCodec(format!("{:?}", f.codec)));
        }
        if f.frame_type == VideoFrameType::VideoInfoOrCommandFrame {
            return Ok(Vec::new());
        }
        let ms = f.timestamp.as_millis();
        match f.avc_packet_type {
            Some(AvcPacketType::SequenceHeader) => {
                let cfg =
                    AvcConfig::parse(&f.data).map_err(|e| IngestError::Malformed(e.to_string()))?;
                self.avc = Some(cfg);
                return Ok(Vec::new());
            }
            Some(AvcPacketType::EndOfSequence) | None => return Ok(Vec::new()),
            Some(AvcPacketType::NalUnit) => {}
        }
        let cts = f.composition_timestamp_offset.as_millis();
        if cts != 0 {
            return Err(IngestError::BFrames(cts));
        }
        let Some(cfg) = &self.avc else {
            return Err(IngestError::Malformed(
                "H.264 frames before the AVC sequence header".into(),
            ));
        };
        let nals = avcc_nal_units(&f.data, cfg.length_size)
            .map_err(|e| IngestError::Malformed(e.to_string()))?;
        let sets: Vec<&[u8]> = cfg.sps.iter().chain(&cfg.pps).map(Vec::as_slice).collect();
        let payloads = h264::packetize(&nals, &sets, MAX_PAYLOAD);
        self.tick(now, ms);
        let ts = self.video.ts_at(ms);
        let n = payloads.len();
        let out: Vec<Vec<u8>> = payloads
            .iter()
            .enumerate()
            .map(|(i, p)| self.video.rtp(ts, i + 1 == n, p))
            .collect();
        self.stats.video_frames += 1;
        self.count(&out);
        Ok(out)
    }

    /// One RTMP audio message: its Opus RTP packets (none for the
    /// sequence header, one or two for an AAC frame). A frame the AAC
    /// decoder refuses is skipped and counted.
    ///
    /// Errors: [`IngestError::Audio`] for audio that is not AAC-LC.
    pub fn on_audio(&mut self, now: Instant, f: &AudioFrame) -> Result<Vec<Vec<u8>>, IngestError> {
        if f.format != AudioFormat::Aac {
            let name = match f.format {
                AudioFormat::Mp3 | AudioFormat::Mp3_8khz => "MP3".to_string(),
                other => format!("{other:?}"),
            };
            return Err(IngestError::Audio(format!(
                "the audio is {name}, which is not taken: send AAC-LC (ffmpeg: -c:a aac; OBS: AAC)"
            )));
        }
        if f.is_aac_sequence_header {
            let t = AacToOpus::new(&f.data).map_err(|e| IngestError::Audio(e.to_string()))?;
            self.aac = Some(t);
            self.audio_next = None;
            return Ok(Vec::new());
        }
        let ms = f.timestamp.as_millis();
        let Some(aac) = &mut self.aac else {
            return Err(IngestError::Malformed(
                "AAC frames before the AAC sequence header".into(),
            ));
        };
        let frames = match aac.push(&f.data) {
            Ok(p) => p,
            Err(AudioError::Decode(e)) => {
                self.stats.audio_errors += 1;
                tracing::debug!(error = %e, "AAC frame skipped");
                return Ok(Vec::new());
            }
            Err(e) => return Err(IngestError::Audio(e.to_string())),
        };
        self.stats.audio_frames += 1;
        self.tick(now, ms);
        // The samples counted, unless the RTMP clock says otherwise.
        let from_clock = self.audio.ts_at(ms);
        let next = match self.audio_next {
            Some(n)
                if (i64::from(n.wrapping_sub(from_clock) as i32) / 48).abs() <= AUDIO_RESYNC_MS =>
            {
                n
            }
            _ => from_clock,
        };
        let mut ts = next;
        let out: Vec<Vec<u8>> = frames
            .iter()
            .map(|p| {
                let pkt = self.audio.rtp(ts, false, p);
                ts = ts.wrapping_add(OPUS_FRAME as u32);
                pkt
            })
            .collect();
        self.audio_next = Some(ts);
        self.count(&out);
        Ok(out)
    }

    fn count(&mut self, pkts: &[Vec<u8>]) {
        self.stats.packets += pkts.len() as u64;
        self.stats.bytes += pkts.iter().map(|p| p.len() as u64 - 12).sum::<u64>();
    }

    /// Sender reports due at `now` (one compound RTCP packet per stream
    /// that sent), every second once media flows.
    pub fn poll_reports(&mut self, now: Instant) -> Vec<Vec<u8>> {
        let (Some((ms, at)), Some(zero)) = (self.clock, self.ntp_zero) else {
            return Vec::new();
        };
        if self.next_sr.is_some_and(|t| now < t) {
            return Vec::new();
        }
        self.next_sr = Some(now + SR_INTERVAL);
        let elapsed = now.saturating_duration_since(at).as_millis() as u32;
        let now_ms = ms.wrapping_add(elapsed);
        let ntp = zero.wrapping_add(ntp_of(Duration::from_millis(u64::from(now_ms))));
        [&self.video, &self.audio]
            .into_iter()
            .filter_map(|s| s.sender_report(ntp, now_ms))
            .collect()
    }
}

/// The wall clock `ago` before now as a 64-bit NTP timestamp (RFC 5905
/// §6, seconds since 1900): the NTP time of a stream's time 0.
pub(crate) fn ntp_before_now(ago: Duration) -> u64 {
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_sub(ago);
    ntp_of(wall).wrapping_add(NTP_UNIX_OFFSET << 32)
}

/// A span as 64-bit NTP fixed point (RFC 5905 §6: 32 bits of seconds,
/// 32 of fraction).
pub(crate) fn ntp_of(d: Duration) -> u64 {
    let secs = d.as_secs();
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

#[cfg(test)]
mod tests {
    use super::*;
    use shiguredo_rtmp::{AudioSampleRate, RtmpTimestamp, RtmpTimestampDelta};

    const RECORD: [u8; 21] = [
        0x01, 0x42, 0xc0, 0x1f, 0xff, 0xe1, 0x00, 0x05, 0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01, 0x00,
        0x04, 0x68, 0xce, 0x3c, 0x80, 0x00,
    ];

    fn video(ms: u32, cts: i32, packet: AvcPacketType, key: bool, data: Vec<u8>) -> VideoFrame {
        VideoFrame {
            timestamp: RtmpTimestamp::from_millis(ms),
            composition_timestamp_offset: RtmpTimestampDelta::from_millis(cts),
            frame_type: if key {
                VideoFrameType::KeyFrame
            } else {
                VideoFrameType::InterFrame
            },
            codec: VideoCodec::Avc,
            avc_packet_type: Some(packet),
            data,
        }
    }

    fn audio(ms: u32, format: AudioFormat, header: bool, data: &[u8]) -> AudioFrame {
        AudioFrame {
            timestamp: RtmpTimestamp::from_millis(ms),
            format,
            sample_rate: AudioSampleRate::Khz44,
            is_8bit_sample: false,
            is_stereo: true,
            is_aac_sequence_header: header,
            data: data.to_vec(),
        }
    }

    fn avcc(nals: &[&[u8]]) -> Vec<u8> {
        nals.iter()
            .flat_map(|n| {
                (n.len() as u32)
                    .to_be_bytes()
                    .into_iter()
                    .chain(n.iter().copied())
            })
            .collect()
    }

    #[test]
    fn h264_frames_become_rtp_on_the_rtmp_clock_and_reports_share_one_ntp_base() {
        let now = Instant::now();
        let mut s = Ingest::new(Ssrc(7), Ssrc(8));
        let mut record = RECORD.to_vec();
        record.pop();
        let header = video(0, 0, AvcPacketType::SequenceHeader, true, record);
        assert!(s.on_video(now, &header).expect("header").is_empty());
        assert_eq!(s.tracks().video.as_deref(), Some("42c01f"));
        let idr: Vec<u8> = std::iter::once(0x65).chain(vec![9; 3000]).collect();
        let key = s
            .on_video(
                now,
                &video(1000, 0, AvcPacketType::NalUnit, true, avcc(&[&idr])),
            )
            .expect("keyframe");
        // STAP-A of SPS and PPS, then 3,000 bytes in FU-As of <= 1,100.
        assert_eq!(key.len(), 4);
        let hdr = |p: &[u8]| sfu_core::proto::rtp::RtpHeader::parse(p).expect("rtp");
        assert_eq!(key[0][12] & 0x1f, 24);
        assert!(key[..3].iter().all(|p| !hdr(p).marker) && hdr(&key[3]).marker);
        let p = s
            .on_video(
                now,
                &video(1033, 0, AvcPacketType::NalUnit, false, avcc(&[&[0x41, 1]])),
            )
            .expect("P-frame");
        let (t0, t1) = (hdr(&key[0]).timestamp, hdr(&p[0]).timestamp);
        assert_eq!(t1.wrapping_sub(t0), 33 * 90, "90 kHz from the RTMP ms");
        assert_eq!(hdr(&p[0]).seq, hdr(&key[3]).seq.wrapping_add(1));
        assert_eq!(hdr(&p[0]).ssrc, Ssrc(7));

        // The sender report maps the same RTMP instant for both streams.
        let asc = [0x12, 0x10];
        assert!(
            s.on_audio(now, &audio(0, AudioFormat::Aac, true, &asc))
                .expect("header")
                .is_empty()
        );
        let srs = s.poll_reports(now);
        assert_eq!(srs.len(), 1, "audio sent nothing yet");
        let pkt = sfu_core::proto::rtcp::RtcpIter::new(&srs[0])
            .next()
            .expect("rtcp");
        let sr = SenderInfo::parse(&pkt).expect("an SR");
        assert_eq!(sr.ssrc, Ssrc(7));
        assert_eq!(sr.rtp_ts, t1, "at the latest RTMP time, no time passed");
        assert_eq!(sr.packets, 5);
        assert!(
            s.poll_reports(now + Duration::from_millis(500)).is_empty(),
            "one a second"
        );
        let later = s.poll_reports(now + Duration::from_secs(1));
        let sr2 = SenderInfo::parse(
            &sfu_core::proto::rtcp::RtcpIter::new(&later[0])
                .next()
                .expect("rtcp"),
        )
        .expect("an SR");
        assert_eq!(sr2.rtp_ts.wrapping_sub(sr.rtp_ts), 90_000);
        let ntp_ms = |n: u64| ((n >> 32) * 1000) + (((n & 0xffff_ffff) * 1000) >> 32);
        assert_eq!(ntp_ms(sr2.ntp) - ntp_ms(sr.ntp), 1000);
    }

    #[test]
    fn streams_browsers_cannot_play_are_refused_with_the_setting_to_change() {
        let now = Instant::now();
        let mut s = Ingest::new(Ssrc(7), Ssrc(8));
        let mut record = RECORD.to_vec();
        record.pop();
        s.on_video(
            now,
            &video(0, 0, AvcPacketType::SequenceHeader, true, record),
        )
        .expect("header");
        let b = s.on_video(
            now,
            &video(40, 66, AvcPacketType::NalUnit, false, avcc(&[&[0x41, 1]])),
        );
        assert!(matches!(b, Err(IngestError::BFrames(66))));
        assert!(b.expect_err("B").to_string().contains("-bf 0"));
        let mp3 = s.on_audio(now, &audio(0, AudioFormat::Mp3, false, &[0xff, 0xfb]));
        assert!(mp3.expect_err("MP3").to_string().contains("-c:a aac"));
        let he = s.on_audio(now, &audio(0, AudioFormat::Aac, true, &[0x2b, 0x10]));
        assert!(matches!(he, Err(IngestError::Audio(_))));
        let vp6 = VideoFrame {
            codec: VideoCodec::Vp6,
            ..video(0, 0, AvcPacketType::NalUnit, true, vec![1])
        };
        assert!(matches!(
            s.on_video(now, &vp6),
            Err(IngestError::VideoCodec(_))
        ));
        let cut = s.on_video(
            now,
            &video(80, 0, AvcPacketType::NalUnit, false, vec![0, 0, 0, 9, 1]),
        );
        assert!(matches!(cut, Err(IngestError::Malformed(_))));
        let fresh = Ingest::new(Ssrc(1), Ssrc(2)).on_video(
            now,
            &video(0, 0, AvcPacketType::NalUnit, true, avcc(&[&[0x65]])),
        );
        assert!(
            matches!(fresh, Err(IngestError::Malformed(_))),
            "frames before the header"
        );
    }
}
