//! `sfu recording mux DIR`: a recording's track files to files a browser
//! plays: WebM (VP8/VP9/AV1 + Opus, with Cues and Duration, seekable) or MP4
//! (H.264 + Opus, its moov first), one per participant (camera and
//! microphone together; a screen share in a file of its own).
//! Compositing several participants into one picture is out of scope.
//!
//! Each track is read back as frames ([`track`]), then put on one
//! timeline per participant: a track's RTP timestamps are placed by its
//! first sender report (its NTP ↔ RTP mapping: audio and video of one
//! publisher share the NTP clock, RFC 3550 §6.4.1), or, when some track
//! of the participant has none, by its first packet's arrival. So audio
//! and video line up as the publisher captured them. Audio keeps its own
//! timestamps: a gap (DTX, a lost run, a late start) is filled with Opus
//! silence, so the audio is as long as the recording and never drifts
//! against the video. The containers are the `webm` crate (libwebm) and
//! `shiguredo_mp4`.

pub mod av1;
mod mp4_out;
pub mod track;
mod webm_out;

use std::path::{Path, PathBuf};

use serde::Serialize;
use sfu_core::proto::codec::VideoCodec;

use self::track::{TimeBase, Track};

/// A frame on an output's timeline.
#[derive(Debug, Clone)]
pub struct Timed {
    /// Its start, µs from the output's start.
    pub us: i64,
    /// Its length, µs (video: up to the next frame; audio: its samples).
    pub dur_us: i64,
    /// The bitstream.
    pub data: Vec<u8>,
    /// A video keyframe (always true for audio).
    pub keyframe: bool,
}

/// What one output file holds.
#[derive(Debug, Default)]
pub struct Media {
    /// Video: its codec, size (pixels) and frames.
    pub video: Option<(VideoCodec, (u16, u16), Vec<Timed>)>,
    /// H.264's SPS and PPS (for the MP4 avcC box).
    pub sps_pps: Option<(Vec<u8>, Vec<u8>)>,
    /// AV1's `av1C` record (the WebM track's CodecPrivate).
    pub av1c: Option<Vec<u8>>,
    /// Opus: channels and frames.
    pub audio: Option<(u8, Vec<Timed>)>,
}

impl Media {
    /// The video frames (none without video).
    pub fn video_frames(&self) -> &[Timed] {
        self.video.as_ref().map_or(&[], |(_, _, f)| f.as_slice())
    }

    /// The audio frames (none without audio).
    pub fn audio_frames(&self) -> &[Timed] {
        self.audio.as_ref().map_or(&[], |(_, f)| f.as_slice())
    }

    /// Every frame of both tracks in time order, video first at equal
    /// times (containers want timestamps that never go back across
    /// tracks): `(is_video, index in its track, frame)`.
    pub fn in_time_order(&self) -> impl Iterator<Item = (bool, usize, &Timed)> {
        let (v, a) = (self.video_frames(), self.audio_frames());
        let (mut i, mut j) = (0, 0);
        std::iter::from_fn(move || {
            let video = j >= a.len() || (i < v.len() && v[i].us <= a[j].us);
            if video {
                i += 1;
                v.get(i - 1).map(|f| (true, i - 1, f))
            } else {
                j += 1;
                a.get(j - 1).map(|f| (false, j - 1, f))
            }
        })
    }

    /// µs up to the end of the last frame.
    pub fn duration_us(&self) -> i64 {
        let end = |f: &[Timed]| f.last().map_or(0, |l| l.us + l.dur_us);
        end(self.video_frames()).max(end(self.audio_frames()))
    }
}

/// One muxed file.
#[derive(Debug, Clone, Serialize)]
pub struct Output {
    /// File name, in the recording's directory.
    pub file: String,
    /// The participant (`p7`).
    pub participant: String,
    /// Its display name.
    pub name: String,
    /// A screen share.
    pub screen: bool,
    /// `webm` or `mp4`.
    pub container: &'static str,
    /// The video codec, if any.
    pub video_codec: Option<String>,
    /// Video frames written.
    pub video_frames: usize,
    /// Video frames dropped (incomplete, or after a loss until a keyframe).
    pub dropped_video_frames: usize,
    /// Opus packets written, silence fill included.
    pub audio_frames: usize,
    /// Length, ms.
    pub duration_ms: u64,
}

/// What a mux made, and which files it could not use.
#[derive(Debug, Default, Serialize)]
pub struct MuxReport {
    /// The files written.
    pub outputs: Vec<Output>,
    /// Track files left out, with why.
    pub skipped: Vec<(String, String)>,
    /// Track files used with a caveat (cut short, bad records), with it.
    pub notes: Vec<(String, String)>,
}

/// Why a recording could not be muxed.
#[derive(Debug, thiserror::Error)]
pub enum MuxError {
    /// Reading or writing a file failed.
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// No track file in the directory could be used.
    #[error("no recorded track to mux in {dir}{}", reasons(.skipped))]
    NoTracks {
        /// The directory.
        dir: PathBuf,
        /// Each file left out, with why.
        skipped: Vec<(String, String)>,
    },
    /// The container library refused.
    #[error("writing {0}: {1}")]
    Container(String, String),
}

fn reasons(skipped: &[(String, String)]) -> String {
    skipped
        .iter()
        .map(|(f, why)| format!("; {f}: {why}"))
        .collect()
}

/// The track files of recording directory `dir`: the manifest's, or every
/// `*.sfurec` when there is no readable manifest.
fn track_files(dir: &Path) -> Result<Vec<String>, MuxError> {
    let from_manifest = std::fs::read(dir.join("manifest.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|m| {
            m["tracks"].as_array().map(|t| {
                t.iter()
                    .filter_map(|t| t["file"].as_str().map(String::from))
                    .collect::<Vec<_>>()
            })
        });
    if let Some(files) = from_manifest.filter(|f| !f.is_empty()) {
        // Names from the manifest stay inside the directory.
        return Ok(files
            .into_iter()
            .filter(|f| !f.contains('/') && !f.starts_with('.'))
            .collect());
    }
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| MuxError::Io(dir.to_path_buf(), e))?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(&format!(".{}", crate::recording::file::EXTENSION)))
        .collect();
    files.sort();
    Ok(files)
}

/// Muxes the recording in `dir`: one file per participant (and screen
/// share) beside its track files.
///
/// Errors: [`MuxError::Io`], [`MuxError::NoTracks`] (nothing usable:
/// garbage, or not a recording), [`MuxError::Container`].
pub fn mux_dir(dir: &Path) -> Result<MuxReport, MuxError> {
    let mut report = MuxReport::default();
    let mut tracks: Vec<(String, Track)> = Vec::new();
    for f in track_files(dir)? {
        let path = dir.join(&f);
        // Only regular files: a device or a FIFO would be read forever.
        if !std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            report.skipped.push((f, "not a regular file".into()));
            continue;
        }
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                report.skipped.push((f, e.to_string()));
                continue;
            }
        };
        match Track::read(&bytes) {
            Ok(t) if !t.frames.is_empty() => {
                if t.trailing > 0 {
                    let note = format!(
                        "cut short: {} bytes after its last whole record left out",
                        t.trailing
                    );
                    report.notes.push((f.clone(), note));
                }
                if t.bad_records > 0 {
                    let note = format!(
                        "{} records that are not RTP or RTCP left out",
                        t.bad_records
                    );
                    report.notes.push((f.clone(), note));
                }
                tracks.push((f, t));
            }
            Ok(_) => report.skipped.push((f, "no whole frame in it".into())),
            Err(e) => report.skipped.push((f, e.to_string())),
        }
    }
    if tracks.is_empty() {
        return Err(MuxError::NoTracks {
            dir: dir.to_path_buf(),
            skipped: report.skipped,
        });
    }
    // One output per (participant, screen), in the order first seen.
    let mut groups: Vec<((String, bool), Vec<Track>)> = Vec::new();
    for (_, t) in tracks {
        let key = (t.header.participant.clone(), t.header.screen);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, g)) => g.push(t),
            None => groups.push((key, vec![t])),
        }
    }
    for ((participant, screen), group) in groups {
        let name = group[0].header.name.clone();
        let dropped = group.iter().map(|t| t.dropped_frames).sum();
        let media = timeline(&group);
        let stem = format!("{participant}{}", if screen { "-screen" } else { "" });
        let (container, file) = match &media.video {
            Some((VideoCodec::H264, ..)) => ("mp4", format!("{stem}.mp4")),
            _ => ("webm", format!("{stem}.webm")),
        };
        let path = dir.join(&file);
        let written = if container == "mp4" {
            write_mp4(&path, &media)
        } else {
            write_webm(&path, &media)
        };
        written.map_err(|e| MuxError::Container(file.clone(), e))?;
        report.outputs.push(Output {
            file,
            participant,
            name,
            screen,
            container,
            video_codec: media.video.as_ref().map(|(c, ..)| format!("{c:?}")),
            video_frames: media.video_frames().len(),
            dropped_video_frames: dropped,
            audio_frames: media.audio_frames().len(),
            duration_ms: (media.duration_us() / 1000) as u64,
        });
    }
    Ok(report)
}

/// Writes `media` as WebM to `path` ([`webm_out`]).
///
/// Errors: what libwebm or the file refused, as text.
pub fn write_webm(path: &Path, media: &Media) -> Result<(), String> {
    webm_out::write(path, media)
}

/// Writes `media` (H.264 + Opus) as MP4 to `path` ([`mp4_out`]).
///
/// Errors: what the muxer or the file refused, as text.
pub fn write_mp4(path: &Path, media: &Media) -> Result<(), String> {
    mp4_out::write(path, media)
}

/// Opus silence: one 20 ms CELT frame (TOC 0xF8: config 31, mono, one
/// frame; RFC 6716 §3.1) that decodes to silence.
pub const OPUS_SILENCE: [u8; 3] = [0xf8, 0xff, 0xfe];
/// 20 ms, µs.
const SILENCE_US: i64 = 20_000;

/// The samples (at 48 kHz) of Opus packet `p` (RFC 6716 §3.1: the TOC
/// byte's configuration and frame count); 960 (20 ms) when it cannot tell.
pub fn opus_samples(p: &[u8]) -> i64 {
    let Some(&toc) = p.first() else { return 960 };
    let config = toc >> 3;
    // Frame size in 48 kHz samples.
    let frame = match config {
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
        12..=15 => [480, 960][usize::from(config % 2)],
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    };
    let frames = match toc & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => p.get(1).map_or(1, |b| i64::from(b & 0x3f)),
    };
    (frame * frames).clamp(120, 5760)
}

/// The frames of a participant's tracks on one timeline (µs from the
/// first frame of any of them).
fn timeline(group: &[Track]) -> Media {
    let reports = group.iter().all(|t| t.report.is_some());
    let place = |t: &Track, ts: i64| -> i64 {
        let base = if reports { t.report } else { t.arrival };
        let (at, base_ts) = match base {
            Some(TimeBase::Report { ntp_us, ts }) => (ntp_us, ts),
            Some(TimeBase::Arrival { at_us, ts }) => (at_us, ts),
            None => (0, ts),
        };
        at + (ts - base_ts) * 1_000_000 / t.clock()
    };
    let mut media = Media::default();
    let mut video: Vec<Timed> = Vec::new();
    let mut audio: Vec<Timed> = Vec::new();
    for t in group {
        match t.video {
            Some(codec) => {
                let size = t.size.unwrap_or((640, 480));
                match &media.video {
                    None => media.video = Some((codec, size, Vec::new())),
                    // A republished track with another codec cannot share
                    // the output's video track.
                    Some((c, ..)) if *c != codec => continue,
                    Some(_) => {}
                }
                if media.sps_pps.is_none() {
                    media.sps_pps = t.sps_pps.clone();
                }
                if media.av1c.is_none() {
                    media.av1c = t.av1c.clone();
                }
                video.extend(t.frames.iter().map(|f| Timed {
                    us: place(t, f.ts),
                    dur_us: 0,
                    data: f.data.clone(),
                    keyframe: f.keyframe,
                }));
            }
            None => {
                let channels = t.header.channels.max(1);
                media.audio.get_or_insert((channels, Vec::new()));
                audio.extend(t.frames.iter().map(|f| Timed {
                    us: place(t, f.ts),
                    dur_us: opus_samples(&f.data) * 1_000_000 / 48_000,
                    data: f.data.clone(),
                    keyframe: true,
                }));
            }
        }
    }
    video.sort_by_key(|f| f.us);
    audio.sort_by_key(|f| f.us);
    let t0 = video
        .first()
        .map(|f| f.us)
        .into_iter()
        .chain(audio.first().map(|f| f.us))
        .min()
        .unwrap_or(0);
    for f in video.iter_mut().chain(audio.iter_mut()) {
        f.us -= t0;
    }
    // Video: each frame lasts until the next (the last, the median).
    let mut gaps: Vec<i64> = video.windows(2).map(|w| w[1].us - w[0].us).collect();
    gaps.sort_unstable();
    let typical = gaps.get(gaps.len() / 2).copied().unwrap_or(33_333).max(1);
    for i in 0..video.len() {
        video[i].dur_us = video.get(i + 1).map_or(typical, |n| n.us - video[i].us);
    }
    if let Some((_, _, v)) = &mut media.video {
        *v = video;
    }
    if let Some((_, a)) = &mut media.audio {
        *a = fill_silence(audio);
    }
    media
}

/// Audio frames from 0 with every gap of 20 ms or more filled with Opus
/// silence, and frames that overlap the one before dropped.
fn fill_silence(frames: Vec<Timed>) -> Vec<Timed> {
    let mut out: Vec<Timed> = Vec::with_capacity(frames.len());
    let mut end = 0i64;
    for f in frames {
        if f.us < end - 5_000 {
            continue;
        }
        while f.us - end >= SILENCE_US {
            out.push(Timed {
                us: end,
                dur_us: SILENCE_US,
                data: OPUS_SILENCE.to_vec(),
                keyframe: true,
            });
            end += SILENCE_US;
        }
        end = f.us.max(end) + f.dur_us;
        out.push(f);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(us: i64, dur_us: i64) -> Timed {
        Timed {
            us,
            dur_us,
            data: vec![0xfc],
            keyframe: true,
        }
    }

    #[test]
    fn opus_durations_come_from_the_toc() {
        assert_eq!(opus_samples(&[0xfc]), 960, "CELT FB 20 ms, one frame");
        assert_eq!(opus_samples(&[0x78]), 960, "SILK WB 20 ms");
        assert_eq!(opus_samples(&[0x79]), 1920, "two frames");
        assert_eq!(opus_samples(&[0x7b, 3]), 2880, "code 3, three frames");
        assert_eq!(opus_samples(&OPUS_SILENCE), 960);
        assert_eq!(opus_samples(&[]), 960);
    }

    #[test]
    fn gaps_in_audio_are_filled_with_silence_and_overlaps_dropped() {
        let out = fill_silence(vec![
            frame(40_000, 20_000),
            frame(60_000, 20_000),
            frame(61_000, 20_000),
            frame(150_000, 20_000),
        ]);
        let starts: Vec<i64> = out.iter().map(|f| f.us).collect();
        assert_eq!(
            starts,
            vec![0, 20_000, 40_000, 60_000, 80_000, 100_000, 120_000, 150_000]
        );
        let silent = out.iter().filter(|f| f.data == OPUS_SILENCE).count();
        assert_eq!(silent, 5);
    }
}
