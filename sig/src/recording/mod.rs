//! Recording: every track of a room (or of one participant) to a file, on
//! the data plane's terms.
//!
//! A recording is a [`sfu_core::transport::DirectTransport`] with a tap on
//! the room's home Router, and one consumer on it per track, created
//! running (so the publisher is asked for a keyframe at once) and never
//! limited by a bandwidth estimate (a simulcast track is recorded at its
//! best layer, switching at keyframes as a subscriber would). The worker
//! hands each packet its consumers send, in the clear, with the time it
//! arrived, to the recording's thread ([`writer`]) over a bounded queue;
//! a full queue drops and counts (`sfu_recording_dropped_total`), and the
//! worker never waits for the disk. The thread appends each track's
//! packets and sender reports to a file of its own ([`file`]) under
//! `--recordings-dir`/ROOM/ID/, with a `manifest.json`: who, when, which
//! files. A write that fails (a full disk) ends the recording with an
//! error.
//!
//! The room's side is `crate::room` (`recordings.rs`); the HTTP API and
//! the `sfu record` CLI are [`api`].

pub mod api;
pub mod file;
pub mod mux;
pub mod playback;
pub mod writer;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::oneshot;

/// Finished recordings remembered for `GET` (the oldest are forgotten).
const KEEP_FINISHED: usize = 1000;

/// The recording settings (`--recordings-dir`, `--record-mux`,
/// `--record-rooms`).
#[derive(Debug, Clone)]
pub struct RecordingConfig {
    /// Where recordings go: ROOM/ID/ under it.
    pub dir: PathBuf,
    /// Mux each recording to WebM/MP4 when it stops.
    pub mux: bool,
    /// Rooms recorded from their first publisher (a glob: `*`, `?`, `[…]`).
    pub rooms: Option<glob::Pattern>,
    /// Packets the queue from the worker to a recording's thread holds.
    pub queue: usize,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("recordings"),
            mux: true,
            rooms: None,
            queue: 8192,
        }
    }
}

/// Where a recording is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Packets are being written.
    Recording,
    /// Stopped; the thread is writing out what it has.
    Stopping,
    /// The track files are whole; the playable files are being made.
    Muxing,
    /// Done: every file is whole.
    Stopped,
    /// Ended by an error (`error` says which): the files hold what came
    /// before it.
    Failed,
}

/// One track's file, as the manifest lists it.
#[derive(Debug, Clone, Serialize)]
pub struct TrackSummary {
    /// File name, in the recording's directory.
    pub file: String,
    /// The publisher (`p7`).
    pub participant: String,
    /// Its display name.
    pub name: String,
    /// `audio` or `video`.
    pub kind: String,
    /// A screen share.
    pub screen: bool,
    /// The codec (`VP8`, `opus`, …).
    pub codec: String,
    /// RTP packets written.
    pub packets: u64,
    /// The first and last packet's arrival, ms since the recording started.
    pub first_ms: Option<u64>,
    /// See `first_ms`.
    pub last_ms: Option<u64>,
}

impl TrackSummary {
    /// The row of a track whose file `file` starts with `h`, nothing
    /// written yet.
    pub fn of(file: &str, h: &file::TrackHeader) -> Self {
        Self {
            file: file.into(),
            participant: h.participant.clone(),
            name: h.name.clone(),
            kind: h.kind.clone(),
            screen: h.screen,
            codec: h.codec.clone(),
            packets: 0,
            first_ms: None,
            last_ms: None,
        }
    }
}

/// A recording as the API shows it (and `manifest.json` holds it).
#[derive(Debug, Clone, Serialize)]
pub struct RecordingInfo {
    /// Its id (a directory name under the room's).
    pub id: String,
    /// The room.
    pub room: String,
    /// The one participant recorded (`p7`); `None`: the whole room.
    pub participant: Option<String>,
    /// Where it is.
    pub state: State,
    /// Why it failed.
    pub error: Option<String>,
    /// Its directory.
    pub dir: String,
    /// Wall-clock start, ms since the Unix epoch.
    pub started_unix_ms: u64,
    /// Wall-clock end.
    pub stopped_unix_ms: Option<u64>,
    /// Packets written, all tracks.
    pub packets: u64,
    /// Bytes written, all files.
    pub bytes: u64,
    /// Packets dropped: the queue from the worker was full, or the thread
    /// had stopped.
    pub dropped: u64,
    /// Its tracks' files.
    pub tracks: Vec<TrackSummary>,
    /// The playable files muxed from them (one per participant).
    pub outputs: Vec<mux::Output>,
    /// Why muxing failed, if it did.
    pub mux_error: Option<String>,
}

/// One recording's shared state: what the API reads, the thread writes.
#[derive(Debug)]
pub struct Entry {
    /// What the API shows.
    pub info: Mutex<RecordingInfo>,
    /// Drops counted by the worker's tap.
    pub dropped: Arc<AtomicU64>,
}

impl Entry {
    /// A snapshot of its info.
    pub fn snapshot(&self) -> RecordingInfo {
        let mut i = lock(&self.info).clone();
        i.dropped = self.dropped.load(Ordering::Relaxed);
        i
    }
}

/// The server's recordings: settings, every live and recently finished
/// recording, and the counters `/metrics` shows.
#[derive(Debug, Default)]
pub struct Recordings {
    /// Settings.
    pub cfg: RecordingConfig,
    entries: Mutex<Vec<Arc<Entry>>>,
    /// Recordings started.
    pub started: AtomicU64,
    /// Recordings that ended with an error.
    pub failed: AtomicU64,
    /// Packets dropped between a worker and a recording thread.
    pub dropped: Arc<AtomicU64>,
    /// Bytes written to recording files.
    pub bytes: AtomicU64,
}

/// The lock, even when a thread panicked holding it (the data is plain
/// counters and strings).
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Now, ms since the Unix epoch.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Recordings {
    /// The registry for `cfg`.
    pub fn new(cfg: RecordingConfig) -> Self {
        Self {
            cfg,
            ..Self::default()
        }
    }

    /// Registers a new recording of `room`; returns its entry.
    pub fn add(&self, info: RecordingInfo) -> Arc<Entry> {
        let e = Arc::new(Entry {
            info: Mutex::new(info),
            dropped: Arc::new(AtomicU64::new(0)),
        });
        let mut all = lock(&self.entries);
        all.push(e.clone());
        // Forget the oldest finished ones beyond KEEP_FINISHED.
        let finished = all.iter().filter(|e| !e.is_live()).count();
        if finished > KEEP_FINISHED {
            let mut extra = finished - KEEP_FINISHED;
            all.retain(|e| {
                if extra > 0 && !e.is_live() {
                    extra -= 1;
                    false
                } else {
                    true
                }
            });
        }
        self.started.fetch_add(1, Ordering::Relaxed);
        e
    }

    /// The recordings of `room`, oldest first.
    pub fn of_room(&self, room: &str) -> Vec<RecordingInfo> {
        lock(&self.entries)
            .iter()
            .map(|e| e.snapshot())
            .filter(|i| i.room == room)
            .collect()
    }

    /// Recording `id` of `room`.
    pub fn get(&self, room: &str, id: &str) -> Option<Arc<Entry>> {
        lock(&self.entries)
            .iter()
            .find(|e| {
                let i = lock(&e.info);
                i.room == room && i.id == id
            })
            .cloned()
    }

    /// Recordings being written now.
    pub fn active(&self) -> usize {
        lock(&self.entries).iter().filter(|e| e.is_live()).count()
    }

    /// Appends the recording series to a `/metrics` page.
    pub fn render_metrics(&self, out: &mut String) {
        let v = |c: &AtomicU64| vec![(String::new(), c.load(Ordering::Relaxed))];
        let family = crate::metrics::family;
        family(
            out,
            "sfu_recordings",
            "gauge",
            "Recordings being written now.",
            &[(String::new(), self.active() as u64)],
        );
        family(
            out,
            "sfu_recordings_started_total",
            "counter",
            "Recordings started.",
            &v(&self.started),
        );
        family(
            out,
            "sfu_recordings_failed_total",
            "counter",
            "Recordings ended by an error (a write failed: a full disk).",
            &v(&self.failed),
        );
        family(
            out,
            "sfu_recording_dropped_total",
            "counter",
            "Packets not recorded: the queue from the worker to the recording thread was full (a slow disk), or the recording had failed.",
            &v(&self.dropped),
        );
        family(
            out,
            "sfu_recording_bytes_total",
            "counter",
            "Bytes written to recording files.",
            &v(&self.bytes),
        );
    }
}

impl Entry {
    fn is_live(&self) -> bool {
        matches!(lock(&self.info).state, State::Recording | State::Stopping)
    }
}

/// Why a recording request failed; `code()` and `status()` are what the
/// API answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The room name cannot be a directory name.
    #[error(
        "room {0:?} cannot be recorded: its name must be a directory name (letters, digits, '-', '_' and '.', not starting with '.')"
    )]
    BadRoomName(String),
    /// No such room on this server.
    #[error("there is no room {0:?} on this server")]
    NoRoom(String),
    /// No such participant in the room.
    #[error("there is no participant {0:?} in the room")]
    NoParticipant(String),
    /// No such recording.
    #[error("there is no recording {0:?} of this room")]
    NoRecording(String),
    /// The recording directory cannot be made.
    #[error("cannot create the recording directory: {0}")]
    Storage(String),
    /// The room's worker failed or is too busy.
    #[error("the room's data plane cannot start it: {0}")]
    DataPlane(String),
}

impl RecordError {
    /// Stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRoomName(_) => "bad-room-name",
            Self::NoRoom(_) => "no-such-room",
            Self::NoParticipant(_) => "no-such-participant",
            Self::NoRecording(_) => "no-such-recording",
            Self::Storage(_) => "storage-error",
            Self::DataPlane(_) => "room-busy",
        }
    }
}

/// Checks that `room` can be a directory name under `--recordings-dir`:
/// 1–64 of `A-Za-z0-9-_.`, not starting with `.` (so never `..`).
///
/// Errors: [`RecordError::BadRoomName`].
pub fn check_room_name(room: &str) -> Result<(), RecordError> {
    let ok = !room.is_empty()
        && room.len() <= 64
        && !room.starts_with('.')
        && room
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(RecordError::BadRoomName(room.into()))
    }
}

/// A request to a room about its recordings (from the API, through the hub).
#[derive(Debug)]
pub enum RecordRequest {
    /// Start recording the room, or one participant of it (`p7`).
    Start {
        /// The participant; `None`: everyone.
        participant: Option<String>,
        /// Gets the new recording.
        reply: oneshot::Sender<Result<RecordingInfo, RecordError>>,
    },
    /// Stop recording `id`.
    Stop {
        /// The recording.
        id: String,
        /// Gets it, stopping.
        reply: oneshot::Sender<Result<RecordingInfo, RecordError>>,
    },
}

impl RecordRequest {
    /// Answers `err` (the room is not here).
    pub fn refuse(self, err: RecordError) {
        match self {
            Self::Start { reply, .. } | Self::Stop { reply, .. } => {
                let _ = reply.send(Err(err));
            }
        }
    }
}

/// A new recording id: the UTC start time and 4 random characters
/// (`20261205T171502Z-a3f9`), sortable and unique in a room.
pub fn new_id() -> String {
    use rand::Rng;
    let secs = unix_ms() / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    let suffix: String = rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(4)
        .map(|c| (c as char).to_ascii_lowercase())
        .collect();
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z-{suffix}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The proleptic Gregorian date of `days` since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names_that_could_leave_the_directory_are_refused() {
        for bad in ["../x", "..", ".hidden", "a/b", "a\\b", "", "sp ace", "é"] {
            assert!(check_room_name(bad).is_err(), "{bad:?}");
        }
        for good in ["demo", "Room_1", "a.b-c"] {
            assert!(check_room_name(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn dates_are_civil() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_792), (2026, 12, 5));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        let id = new_id();
        assert_eq!(id.len(), "20261205T171502Z-a3f9".len(), "{id}");
    }
}
