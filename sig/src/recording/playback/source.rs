//! A muxed recording read back frame by frame, in time order, with the
//! crates that wrote it read in reverse: WebM (VP8/VP9 + Opus) through
//! `matroska-demuxer` (libwebm's parser is not exposed by the `webm`
//! crate), MP4 (H.264 + Opus) through `shiguredo_mp4`'s demuxer. The file
//! is streamed, never loaded whole; [`Source::rewind`] starts it over (a
//! looped playback).

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;

use sfu_core::proto::codec::VideoCodec;

/// One frame of the file.
#[derive(Debug, Clone)]
pub struct SourceFrame {
    /// Its time, ms from the file's start.
    pub ms: u64,
    /// Video (else Opus audio).
    pub video: bool,
    /// The bitstream: a VP8/VP9 frame, H.264 as AVCC (4-byte lengths), an
    /// Opus packet.
    pub data: Vec<u8>,
    /// A video keyframe.
    pub keyframe: bool,
}

/// What the file holds.
#[derive(Debug, Clone, Default)]
pub struct SourceInfo {
    /// Its video codec, if it has video.
    pub video: Option<VideoCodec>,
    /// H.264: the SPS and PPS of its avcC box.
    pub sps_pps: Option<(Vec<u8>, Vec<u8>)>,
    /// It has Opus audio.
    pub audio: bool,
}

/// Why a file cannot be played.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Opening or reading it failed.
    #[error("cannot read the file: {0}")]
    Io(#[from] std::io::Error),
    /// Neither WebM nor MP4.
    #[error("not a WebM or MP4 file")]
    Format,
    /// The container is damaged (truncated, garbage).
    #[error("the file is damaged: {0}")]
    Damaged(String),
    /// No track we can publish.
    #[error("no track to publish: {0}")]
    NoTracks(String),
}

/// A file being read.
pub trait Source: Send {
    /// What it holds.
    fn info(&self) -> &SourceInfo;
    /// The next frame, in time order; `None` at the end.
    ///
    /// Errors: [`SourceError::Damaged`], [`SourceError::Io`].
    fn next_frame(&mut self) -> Result<Option<SourceFrame>, SourceError>;
    /// Back to the first frame.
    ///
    /// Errors: as [`Source::next_frame`].
    fn rewind(&mut self) -> Result<(), SourceError>;
}

/// Opens `path` as WebM or MP4 (told apart by their first bytes).
///
/// Errors: [`SourceError::Io`], [`SourceError::Format`],
/// [`SourceError::Damaged`], [`SourceError::NoTracks`].
pub fn open(path: &Path) -> Result<Box<dyn Source>, SourceError> {
    if !std::fs::metadata(path)?.is_file() {
        return Err(SourceError::Format);
    }
    let mut file = File::open(path)?;
    let mut head = [0u8; 12];
    let n = file.read(&mut head)?;
    file.seek(SeekFrom::Start(0))?;
    if n >= 4 && head[..4] == [0x1a, 0x45, 0xdf, 0xa3] {
        return Ok(Box::new(WebmSource::open(file)?));
    }
    if n >= 8 && &head[4..8] == b"ftyp" {
        return Ok(Box::new(Mp4Source::open(file)?));
    }
    Err(SourceError::Format)
}

/// A WebM file.
struct WebmSource {
    file: matroska_demuxer::MatroskaFile<BufReader<File>>,
    info: SourceInfo,
    video_track: Option<u64>,
    audio_track: Option<u64>,
    /// ns per timestamp unit.
    scale: u64,
    frame: matroska_demuxer::Frame,
}

fn damaged(e: impl std::fmt::Display) -> SourceError {
    SourceError::Damaged(e.to_string())
}

impl WebmSource {
    fn open(file: File) -> Result<Self, SourceError> {
        let file = matroska_demuxer::MatroskaFile::open(BufReader::new(file)).map_err(damaged)?;
        let mut info = SourceInfo::default();
        let (mut video_track, mut audio_track) = (None, None);
        let mut seen = Vec::new();
        for t in file.tracks() {
            seen.push(t.codec_id().to_string());
            let codec = match t.codec_id() {
                "V_VP8" => Some(VideoCodec::Vp8),
                "V_VP9" => Some(VideoCodec::Vp9),
                "V_AV1" => Some(VideoCodec::Av1),
                _ => None,
            };
            if let (Some(c), None) = (codec, video_track) {
                info.video = Some(c);
                video_track = Some(t.track_number().get());
            }
            if t.codec_id() == "A_OPUS" && audio_track.is_none() {
                info.audio = true;
                audio_track = Some(t.track_number().get());
            }
        }
        if video_track.is_none() && audio_track.is_none() {
            return Err(SourceError::NoTracks(format!(
                "the WebM has {seen:?}; VP8, VP9, AV1 or Opus are played"
            )));
        }
        let scale = file.info().timestamp_scale().get();
        Ok(Self {
            file,
            info,
            video_track,
            audio_track,
            scale,
            frame: matroska_demuxer::Frame::default(),
        })
    }
}

impl Source for WebmSource {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn next_frame(&mut self) -> Result<Option<SourceFrame>, SourceError> {
        loop {
            if !self.file.next_frame(&mut self.frame).map_err(damaged)? {
                return Ok(None);
            }
            let video = Some(self.frame.track) == self.video_track;
            if !video && Some(self.frame.track) != self.audio_track {
                continue;
            }
            let data = std::mem::take(&mut self.frame.data);
            // A VP8 keyframe has the P bit (bit 0 of its first byte) clear
            // (RFC 6386 §9.1); a VP9 one the frame_type bit of its
            // uncompressed header (VP9 spec §6.2): the block flag says it too.
            let keyframe = video
                && self.frame.is_keyframe.unwrap_or_else(|| {
                    self.info.video == Some(VideoCodec::Vp8)
                        && data.first().is_some_and(|b| b & 1 == 0)
                });
            return Ok(Some(SourceFrame {
                ms: self.frame.timestamp.saturating_mul(self.scale) / 1_000_000,
                video,
                data,
                keyframe,
            }));
        }
    }

    fn rewind(&mut self) -> Result<(), SourceError> {
        self.file.seek(0).map_err(damaged)
    }
}

/// An MP4 file.
struct Mp4Source {
    file: File,
    demuxer: shiguredo_mp4::demux::Mp4FileDemuxer,
    info: SourceInfo,
    buf: Vec<u8>,
}

/// Most bytes one read for the demuxer may ask for (its boxes; samples
/// are read on their own).
const MP4_MAX_READ: usize = 64 << 20;

impl Mp4Source {
    fn open(file: File) -> Result<Self, SourceError> {
        use shiguredo_mp4::boxes::SampleEntry;
        let mut s = Self {
            file,
            demuxer: shiguredo_mp4::demux::Mp4FileDemuxer::new(),
            info: SourceInfo::default(),
            buf: Vec::new(),
        };
        s.feed()?;
        let kinds: Vec<_> = s.demuxer.tracks().map_err(damaged)?.to_vec();
        // The sample entries come with the samples: the first of each
        // track says its codec.
        while let Some(sample) = s.demuxer.next_sample().map_err(damaged)? {
            match sample.sample_entry {
                Some(SampleEntry::Avc1(b)) if s.info.video.is_none() => {
                    s.info.video = Some(VideoCodec::H264);
                    s.info.sps_pps = b
                        .avcc_box
                        .sps_list
                        .first()
                        .cloned()
                        .zip(b.avcc_box.pps_list.first().cloned());
                }
                Some(SampleEntry::Opus(_)) => s.info.audio = true,
                _ => {}
            }
            if (s.info.video.is_some()
                || kinds
                    .iter()
                    .all(|k| k.kind != shiguredo_mp4::TrackKind::Video))
                && (s.info.audio
                    || kinds
                        .iter()
                        .all(|k| k.kind != shiguredo_mp4::TrackKind::Audio))
            {
                break;
            }
        }
        if s.info.video.is_none() && !s.info.audio {
            return Err(SourceError::NoTracks(
                "the MP4 has no H.264 or Opus track".into(),
            ));
        }
        s.demuxer.seek(Duration::ZERO).map_err(damaged)?;
        Ok(s)
    }

    /// Gives the demuxer the bytes it asks for until it asks no more.
    fn feed(&mut self) -> Result<(), SourceError> {
        while let Some(req) = self.demuxer.required_input() {
            let len = match req.size {
                Some(n) => n,
                None => {
                    let total = self.file.metadata()?.len();
                    total.saturating_sub(req.position) as usize
                }
            };
            if len > MP4_MAX_READ {
                return Err(SourceError::Damaged(format!(
                    "a box of {len} bytes is more than {MP4_MAX_READ}"
                )));
            }
            self.buf.resize(len, 0);
            self.file.seek(SeekFrom::Start(req.position))?;
            let mut got = 0;
            while got < len {
                let n = self.file.read(&mut self.buf[got..])?;
                if n == 0 {
                    break;
                }
                got += n;
            }
            if got < len && req.size.is_some() {
                return Err(SourceError::Damaged("the file ends early".into()));
            }
            self.demuxer.handle_input(shiguredo_mp4::demux::Input {
                position: req.position,
                data: &self.buf[..got],
            });
            if got == 0 {
                return Err(SourceError::Damaged("the file ends early".into()));
            }
        }
        Ok(())
    }
}

impl Source for Mp4Source {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn next_frame(&mut self) -> Result<Option<SourceFrame>, SourceError> {
        loop {
            let Some(sample) = self.demuxer.next_sample().map_err(damaged)? else {
                return Ok(None);
            };
            let video = sample.track.kind == shiguredo_mp4::TrackKind::Video;
            if !video && sample.track.kind != shiguredo_mp4::TrackKind::Audio {
                continue;
            }
            let ms =
                sample.timestamp.saturating_mul(1000) / u64::from(sample.track.timescale.get());
            let (offset, size, keyframe) = (sample.data_offset, sample.data_size, sample.keyframe);
            if size > MP4_MAX_READ {
                return Err(SourceError::Damaged(format!("a sample of {size} bytes")));
            }
            let mut data = vec![0; size];
            self.file.seek(SeekFrom::Start(offset))?;
            self.file
                .read_exact(&mut data)
                .map_err(|_| SourceError::Damaged("a sample runs past the end".into()))?;
            return Ok(Some(SourceFrame {
                ms,
                video,
                data,
                keyframe: video && keyframe,
            }));
        }
    }

    fn rewind(&mut self) -> Result<(), SourceError> {
        self.demuxer.seek(Duration::ZERO).map_err(damaged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::mux::{Media, Timed};

    fn frames(
        n: usize,
        step_us: i64,
        key_every: usize,
        data: impl Fn(usize, bool) -> Vec<u8>,
    ) -> Vec<Timed> {
        (0..n)
            .map(|i| Timed {
                us: i as i64 * step_us,
                dur_us: step_us,
                data: data(i, i % key_every == 0),
                keyframe: i % key_every == 0,
            })
            .collect()
    }

    fn read_all(path: &Path) -> (SourceInfo, Vec<SourceFrame>) {
        let mut s = open(path).expect("opens");
        let mut out = Vec::new();
        while let Some(f) = s.next_frame().expect("reads") {
            out.push(f);
        }
        // Rewinding starts over.
        s.rewind().expect("rewinds");
        let first = s.next_frame().expect("reads").expect("a frame");
        assert_eq!(first.ms, out[0].ms);
        (s.info().clone(), out)
    }

    fn tmp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("sfu-source-{}-{name}", std::process::id()))
    }

    use std::path::PathBuf;

    #[test]
    fn a_webm_we_mux_reads_back_frame_for_frame() {
        // VP8 frames: a keyframe has the P bit clear (RFC 6386 §9.1).
        let video = frames(30, 33_333, 10, |i, key| {
            vec![if key { 0x10 } else { 0x11 }, i as u8, 1, 2]
        });
        let audio = frames(50, 20_000, 1, |i, _| vec![0xfc, i as u8]);
        let media = Media {
            video: Some((VideoCodec::Vp8, (320, 240), video)),
            sps_pps: None,
            av1c: None,
            audio: Some((2, audio)),
        };
        let path = tmp("a.webm");
        crate::recording::mux::write_webm(&path, &media).expect("muxed");
        let (info, got) = read_all(&path);
        assert_eq!((info.video, info.audio), (Some(VideoCodec::Vp8), true));
        let v: Vec<_> = got.iter().filter(|f| f.video).collect();
        let a: Vec<_> = got.iter().filter(|f| !f.video).collect();
        assert_eq!((v.len(), a.len()), (30, 50));
        assert_eq!(v.iter().filter(|f| f.keyframe).count(), 3);
        assert_eq!((v[3].ms, v[3].data[1]), (99, 3));
        assert_eq!((a[10].ms, a[10].data.as_slice()), (200, &[0xfc, 10][..]));
        assert!(got.windows(2).all(|w| w[0].ms <= w[1].ms), "in time order");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn an_mp4_we_mux_reads_back_with_its_parameter_sets() {
        let sps = vec![0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01];
        let pps = vec![0x68, 0xce, 0x3c, 0x80];
        let video = frames(20, 50_000, 10, |i, key| {
            let nal = [if key { 0x65 } else { 0x41 }, i as u8, 7];
            let mut d = (nal.len() as u32).to_be_bytes().to_vec();
            d.extend_from_slice(&nal);
            d
        });
        let audio = frames(50, 20_000, 1, |i, _| vec![0xfc, i as u8]);
        let media = Media {
            video: Some((VideoCodec::H264, (640, 480), video)),
            sps_pps: Some((sps.clone(), pps.clone())),
            av1c: None,
            audio: Some((2, audio)),
        };
        let path = tmp("a.mp4");
        crate::recording::mux::write_mp4(&path, &media).expect("muxed");
        let (info, got) = read_all(&path);
        assert_eq!(info.video, Some(VideoCodec::H264));
        assert_eq!(info.sps_pps, Some((sps, pps)));
        assert!(info.audio);
        let v: Vec<_> = got.iter().filter(|f| f.video).collect();
        assert_eq!(v.len(), 20);
        assert_eq!(v.iter().filter(|f| f.keyframe).count(), 2);
        assert_eq!(v[2].ms, 100);
        assert_eq!(got.iter().filter(|f| !f.video).count(), 50);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn garbage_and_cut_files_are_refused_with_a_reason() {
        let path = tmp("junk.webm");
        std::fs::write(&path, b"not a media file at all").expect("write");
        assert!(matches!(open(&path).err(), Some(SourceError::Format)));
        std::fs::write(&path, [0x1a, 0x45, 0xdf, 0xa3, 0x9f, 0, 0]).expect("write");
        assert!(matches!(open(&path).err(), Some(SourceError::Damaged(_))));
        let mut mp4 = vec![0, 0, 0, 24];
        mp4.extend_from_slice(b"ftypisom");
        std::fs::write(&path, &mp4).expect("write");
        assert!(matches!(open(&path).err(), Some(SourceError::Damaged(_))));
        let _ = std::fs::remove_file(&path);
    }
}
