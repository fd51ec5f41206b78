//! Playback: a muxed recording published into a room as a participant.
//!
//! `POST /rooms/{room}/playback {"file": …, "loop": bool}` (and `sfu play`)
//! opens the file ([`source`]: WebM or MP4, under `--recordings-dir`), joins
//! the room as a publisher on a direct transport (as an RTMP stream does,
//! [`crate::protocol::Via::Playback`]: the same validation, placement,
//! limits, and spreading over workers and nodes), and sends each frame as
//! RTP when its time comes: VP8 and VP9 packetized by webrtc-rs `rtp`'s
//! payloaders, H.264 by the ingest's RFC 6184 packetizer, Opus as is, with
//! sender reports every second on one NTP clock so players keep audio and
//! video together. A file that ends starts over with `loop`, its
//! timestamps going on. A keyframe request (a subscriber's PLI, which the
//! Router reports for a direct publisher) is answered with the file's next
//! keyframe when one comes within 3 s: the frames before it are skipped
//! (for every subscriber: they share the stream). New subscribers get the
//! Router's kept GOP at once. It stops on `DELETE`, when the file ends
//! (without `loop`), or when the room closes.

pub mod api;
mod frames;
pub mod source;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtp::packetizer::Payloader;
use serde::Serialize;
use sfu_core::Ssrc;
use sfu_core::proto::codec::VideoCodec;
use sfu_core::worker::Command;
use tokio::sync::{mpsc, watch};

use self::source::SourceFrame;
use super::{lock, unix_ms};
use crate::conn::{DirectLink, Outgoing};
use crate::hub::HubMsg;
use crate::ingest::offer::{DirectVideo, direct_offer};
use crate::ingest::session::{AUDIO_PT, MAX_PAYLOAD, SR_INTERVAL, Stream, ntp_before_now, ntp_of};
use crate::protocol::Via;

/// Payload type of played-back VP8 and VP9 (H.264 keeps the ingest's).
const VPX_PT: u8 = 96;
/// How far ahead (file time, ms) a keyframe request looks for a keyframe
/// to skip to.
const JUMP_MAX_MS: u64 = 3000;
/// Finished playbacks remembered for `GET`.
const KEEP_FINISHED: usize = 200;

/// Where a playback is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlayState {
    /// Sending.
    Playing,
    /// Over: stopped, the file ended, or the room closed.
    Stopped,
    /// Ended by an error (`error` says which).
    Failed,
}

/// A playback as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PlaybackInfo {
    /// Its id.
    pub id: String,
    /// The room.
    pub room: String,
    /// The file, as asked for (under `--recordings-dir`).
    pub file: String,
    /// It starts over at the end.
    #[serde(rename = "loop")]
    pub looped: bool,
    /// Its participant id in the room (`p7`).
    pub participant: String,
    /// Where it is.
    pub state: PlayState,
    /// Why it failed.
    pub error: Option<String>,
    /// Wall-clock start, ms since the Unix epoch.
    pub started_unix_ms: u64,
    /// Frames sent.
    pub frames: u64,
    /// Times the file started over.
    pub loops: u64,
    /// Keyframe requests answered by skipping to the next keyframe.
    pub keyframe_jumps: u64,
}

#[derive(Debug)]
struct Entry {
    info: Mutex<PlaybackInfo>,
    stop: watch::Sender<bool>,
}

/// The server's playbacks.
#[derive(Debug, Default)]
pub struct Playbacks {
    entries: Mutex<Vec<Arc<Entry>>>,
}

impl Playbacks {
    /// The playbacks of `room`, oldest first.
    pub fn of_room(&self, room: &str) -> Vec<PlaybackInfo> {
        lock(&self.entries)
            .iter()
            .map(|e| lock(&e.info).clone())
            .filter(|i| i.room == room)
            .collect()
    }

    /// Stops playback `id` of `room`; returns it (stopping), or `None`.
    pub fn stop(&self, room: &str, id: &str) -> Option<PlaybackInfo> {
        let all = lock(&self.entries);
        let e = all.iter().find(|e| {
            let i = lock(&e.info);
            i.room == room && i.id == id
        })?;
        let _ = e.stop.send(true);
        Some(lock(&e.info).clone())
    }

    fn add(&self, e: Arc<Entry>) {
        let mut all = lock(&self.entries);
        all.push(e);
        let finished = |e: &Arc<Entry>| lock(&e.info).state != PlayState::Playing;
        let mut extra = all
            .iter()
            .filter(|e| finished(e))
            .count()
            .saturating_sub(KEEP_FINISHED);
        all.retain(|e| {
            if extra > 0 && finished(e) {
                extra -= 1;
                false
            } else {
                true
            }
        });
    }

    /// Playbacks sending now.
    pub fn active(&self) -> usize {
        lock(&self.entries)
            .iter()
            .filter(|e| lock(&e.info).state == PlayState::Playing)
            .count()
    }

    /// Appends the playback series to a `/metrics` page.
    pub fn render_metrics(&self, out: &mut String) {
        crate::metrics::family(
            out,
            "sfu_playbacks",
            "gauge",
            "Recordings being played into rooms now.",
            &[(String::new(), self.active() as u64)],
        );
    }
}

/// Why a playback could not start.
#[derive(Debug, thiserror::Error)]
pub enum PlayError {
    /// The path leaves `--recordings-dir`, or does not exist.
    #[error("file {0:?} is not a file under the recordings directory")]
    NotFound(String),
    /// The file cannot be played.
    #[error("file {0:?} cannot be played: {1}")]
    File(String, source::SourceError),
    /// The room refused the join (or did not answer).
    #[error("the room refused the playback: {0}")]
    Join(String),
}

impl PlayError {
    /// Stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "no-such-file",
            Self::File(..) => "bad-file",
            Self::Join(_) => "join-refused",
        }
    }
}

/// What starting a playback needs.
#[derive(Debug, Clone)]
pub struct PlayContext {
    /// The hub's inbox.
    pub hub: mpsc::Sender<HubMsg>,
    /// Source of connection ids.
    pub next_conn: Arc<AtomicU64>,
    /// Join tokens are minted with it (the API checked the admin token).
    pub auth_secret: Option<Arc<str>>,
    /// `--recordings-dir`.
    pub dir: PathBuf,
}

/// `file` (relative to `dir`, or absolute inside it) as a path inside
/// `dir`, symlinks resolved; `None` when it is elsewhere or missing.
pub fn resolve(dir: &Path, file: &str) -> Option<PathBuf> {
    let root = dir.canonicalize().ok()?;
    let path = root.join(file).canonicalize().ok()?;
    (path.starts_with(&root) && path.is_file()).then_some(path)
}

/// Starts playing `file` into `room` (`looped`: over and over), as a
/// participant named `name` (empty: `playback-<n>`).
///
/// Errors: [`PlayError::NotFound`], [`PlayError::File`], [`PlayError::Join`].
pub async fn start(
    ctx: &PlayContext,
    playbacks: &Arc<Playbacks>,
    room: &str,
    file: &str,
    looped: bool,
    name: &str,
) -> Result<PlaybackInfo, PlayError> {
    let path = resolve(&ctx.dir, file).ok_or_else(|| PlayError::NotFound(file.into()))?;
    let source = source::open(&path).map_err(|e| PlayError::File(file.into(), e))?;
    let info = source.info().clone();
    let (vssrc, assrc) = (rand::random::<u32>() | 1, rand::random::<u32>() | 1);
    let video = info.video.map(|c| match c {
        VideoCodec::H264 => DirectVideo {
            pt: crate::ingest::session::VIDEO_PT,
            codec: "H264",
            fmtp: Some(format!(
                "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id={}",
                info.sps_pps
                    .as_ref()
                    .and_then(|(s, _)| crate::ingest::h264::profile_level_id(s))
                    .unwrap_or_else(|| "42e01f".into())
            )),
        },
        VideoCodec::Vp9 => DirectVideo {
            pt: VPX_PT,
            codec: "VP9",
            fmtp: Some("profile-id=0".into()),
        },
        VideoCodec::Av1 => DirectVideo {
            pt: VPX_PT,
            codec: "AV1",
            fmtp: None,
        },
        _ => DirectVideo {
            pt: VPX_PT,
            codec: "VP8",
            fmtp: None,
        },
    });
    let sdp = direct_offer(video.as_ref(), info.audio, (vssrc, assrc), "playback");
    let token = match &ctx.auth_secret {
        Some(secret) => Some(
            crate::auth::mint(
                secret,
                room,
                if name.is_empty() { "playback" } else { name },
                Duration::from_secs(60),
                Some(crate::protocol::Role::Participant),
            )
            .map_err(|e| PlayError::Join(e.to_string()))?,
        ),
        None => None,
    };
    let (conn, link, participant, rx) = crate::session::join_direct(
        &ctx.hub,
        &ctx.next_conn,
        room,
        sdp,
        token,
        (name.to_string(), Via::Playback),
    )
    .await
    .map_err(PlayError::Join)?;
    let (stop, stop_rx) = watch::channel(false);
    let entry = Arc::new(Entry {
        info: Mutex::new(PlaybackInfo {
            id: super::new_id(),
            room: room.into(),
            file: file.into(),
            looped,
            participant,
            state: PlayState::Playing,
            error: None,
            started_unix_ms: unix_ms(),
            frames: 0,
            loops: 0,
            keyframe_jumps: 0,
        }),
        stop,
    });
    playbacks.add(entry.clone());
    let snapshot = lock(&entry.info).clone();
    tracing::info!(room, file, id = %snapshot.id, participant = %snapshot.participant, "playback started");
    let player = Player::new(
        frames::Frames::new(source, looped),
        link,
        video.map(|v| v.pt),
        (Ssrc(vssrc), Ssrc(assrc)),
    );
    let hub = ctx.hub.clone();
    tokio::spawn(async move {
        let result = tokio::select! {
            r = player.run(rx, stop_rx, &entry) => r,
            // The room removed the participant (it closed, or failed).
            () = conn.closed() => Ok(()),
        };
        {
            let mut info = lock(&entry.info);
            match result {
                Ok(()) => info.state = PlayState::Stopped,
                Err(e) => {
                    tracing::warn!(id = %info.id, error = %e, "playback failed");
                    info.state = PlayState::Failed;
                    info.error = Some(e.to_string());
                }
            }
            tracing::info!(id = %info.id, frames = info.frames, "playback ended");
        }
        let _ = hub.send(HubMsg::Disconnect { conn: conn.id() }).await;
    });
    Ok(snapshot)
}

/// One playback's sending state.
struct Player {
    frames: frames::Frames,
    link: DirectLink,
    video: Stream,
    audio: Stream,
    codec: Option<VideoCodec>,
    vp8: rtp::codecs::vp8::Vp8Payloader,
    vp9: rtp::codecs::vp9::Vp9Payloader,
    av1: rtp::codecs::av1::Av1Payloader,
    /// Wall-clock ms since `start` of stream time 0 (shrinks at each
    /// keyframe jump).
    offset_ms: i64,
    start: Instant,
    /// NTP time of `start`.
    ntp_zero: u64,
}

impl Player {
    fn new(frames: frames::Frames, link: DirectLink, vpt: Option<u8>, ssrcs: (Ssrc, Ssrc)) -> Self {
        let mut vp8 = rtp::codecs::vp8::Vp8Payloader::default();
        vp8.enable_picture_id = true;
        Self {
            codec: frames.info().video,
            frames,
            link,
            video: Stream::new(ssrcs.0, vpt.unwrap_or(VPX_PT), 90),
            audio: Stream::new(ssrcs.1, AUDIO_PT, 48),
            vp8,
            vp9: rtp::codecs::vp9::Vp9Payloader::default(),
            av1: rtp::codecs::av1::Av1Payloader::default(),
            offset_ms: 0,
            start: Instant::now(),
            ntp_zero: ntp_before_now(Duration::ZERO),
        }
    }

    /// The next frame (on the stream clock), counted in the API's loops.
    fn next(&mut self, entry: &Entry) -> Result<Option<SourceFrame>, source::SourceError> {
        let f = self.frames.next()?;
        lock(&entry.info).loops = self.frames.loops;
        Ok(f)
    }

    fn due(&self, f: &SourceFrame) -> Instant {
        let ms = (f.ms as i64 + self.offset_ms).max(0) as u64;
        self.start + Duration::from_millis(ms)
    }

    /// The RTP packets of `f`.
    fn packetize(&mut self, f: &SourceFrame) -> Vec<Vec<u8>> {
        let t = (f.ms as i64 + self.offset_ms).max(0) as u32;
        if !f.video {
            let ts = self.audio.ts_at(t);
            return vec![self.audio.rtp(ts, false, &f.data)];
        }
        let ts = self.video.ts_at(t);
        let payloads: Vec<Vec<u8>> = match self.codec {
            Some(VideoCodec::H264) => {
                // A sample that does not parse is sent as nothing.
                let nals = crate::ingest::flv::avcc_nal_units(&f.data, 4).unwrap_or_default();
                let sets: Vec<&[u8]> = self
                    .frames
                    .info()
                    .sps_pps
                    .as_ref()
                    .map(|(s, p)| vec![s.as_slice(), p.as_slice()])
                    .unwrap_or_default();
                crate::ingest::h264::packetize(&nals, &sets, MAX_PAYLOAD)
            }
            codec => {
                let payloader: &mut dyn Payloader = match codec {
                    Some(VideoCodec::Av1) => &mut self.av1,
                    Some(VideoCodec::Vp9) => &mut self.vp9,
                    _ => &mut self.vp8,
                };
                payloader
                    .payload(MAX_PAYLOAD, &Bytes::copy_from_slice(&f.data))
                    .map(|v| v.into_iter().map(|b| b.to_vec()).collect())
                    .unwrap_or_default()
            }
        };
        let n = payloads.len();
        payloads
            .iter()
            .enumerate()
            .map(|(i, p)| self.video.rtp(ts, i + 1 == n, p))
            .collect()
    }

    /// Sender reports of both streams for `now`, on one NTP clock.
    fn reports(&self, now: Instant) -> Vec<Vec<u8>> {
        let since = now.saturating_duration_since(self.start);
        let ms = since.as_millis() as u32;
        let ntp = self.ntp_zero.wrapping_add(ntp_of(since));
        [&self.video, &self.audio]
            .into_iter()
            .filter_map(|s| s.sender_report(ntp, ms))
            .collect()
    }

    fn send(&self, packets: Vec<Vec<u8>>) {
        if packets.is_empty() {
            return;
        }
        let cmd = Command::SendDirect {
            router: self.link.router,
            transport: self.link.transport,
            packets,
        };
        if self.link.worker.try_send(cmd).is_err() {
            tracing::debug!("playback: the worker's queue is full; packets dropped");
        }
    }

    /// A keyframe request while `current` is next: when a video keyframe
    /// comes within [`JUMP_MAX_MS`] of stream time after it, the frames
    /// before that keyframe are skipped and it is sent now; else nothing
    /// is skipped (the request is left to the file's own next keyframe:
    /// a recording of a browser may have one a minute, and every
    /// subscriber would lose that much). Returns the frame to send next.
    fn jump(
        &mut self,
        current: SourceFrame,
        entry: &Entry,
    ) -> Result<SourceFrame, source::SourceError> {
        if current.video && current.keyframe {
            return Ok(current);
        }
        match self.frames.keyframe_within(&current, JUMP_MAX_MS)? {
            Some(k) => {
                let now_ms = self.start.elapsed().as_millis() as i64;
                self.offset_ms = now_ms - k.ms as i64;
                lock(&entry.info).keyframe_jumps += 1;
                Ok(k)
            }
            None => Ok(current),
        }
    }

    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Outgoing>,
        mut stop: watch::Receiver<bool>,
        entry: &Entry,
    ) -> Result<(), source::SourceError> {
        let mut pending = self.next(entry)?;
        let mut reports = tokio::time::interval(SR_INTERVAL);
        while let Some(f) = pending.take() {
            let due = tokio::time::Instant::from_std(self.due(&f));
            tokio::select! {
                _ = tokio::time::sleep_until(due) => {
                    // Everything due now goes in one batch.
                    let mut packets = self.packetize(&f);
                    let mut frames = 1;
                    pending = self.next(entry)?;
                    while let Some(n) = pending.as_ref().filter(|n| self.due(n) <= Instant::now()) {
                        let n = n.clone();
                        packets.extend(self.packetize(&n));
                        frames += 1;
                        pending = self.next(entry)?;
                    }
                    self.send(packets);
                    lock(&entry.info).frames += frames;
                }
                m = rx.recv() => match m {
                    Some(Outgoing::KeyframeRequest) if self.codec.is_some() => {
                        pending = Some(self.jump(f, entry)?);
                    }
                    Some(Outgoing::Close) | None => return Ok(()),
                    Some(_) => pending = Some(f),
                },
                _ = stop.changed() => return Ok(()),
                _ = reports.tick() => {
                    self.send(self.reports(Instant::now()));
                    pending = Some(f);
                }
            }
        }
        Ok(())
    }
}
