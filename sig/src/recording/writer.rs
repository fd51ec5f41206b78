//! A recording's thread: takes what the worker's tap queues (plain RTP and
//! the relayed sender reports of the recording's consumers), and appends
//! each to its track's file ([`super::file`]), with the manifest of the
//! recording beside them.
//!
//! The room tells the thread of each track (its SSRC, its file's header)
//! on a control queue before the track's consumer exists, and the thread
//! reads that queue before each packet, so a packet always finds its file.
//! The tap's queue closes when the worker drops the recording's transport
//! (the recording stopped, the room closed, the worker failed): the files
//! are then flushed and the manifest written. A write that fails (a full
//! disk) ends the recording at once with the error: the tap's queue is
//! dropped, so what the worker hands over after that is counted as
//! dropped, and forwarding goes on untouched.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use sfu_core::transport::Tapped;

use super::file::{self, RecordKind, TrackHeader};
use super::{Entry, Recordings, State, lock, unix_ms};

/// How often the thread drains the queue from the worker.
const POLL: std::time::Duration = std::time::Duration::from_millis(20);

/// The kind and SSRC of a tapped packet: an RTP packet's (RFC 3550
/// §5.1), or the sender's of an RTCP one (its first packet's).
fn ssrc_of(data: &[u8]) -> Option<(RecordKind, u32)> {
    let (kind, at) = match sfu_core::proto::demux::classify(data) {
        sfu_core::proto::demux::PacketClass::Rtp => (RecordKind::Rtp, 8),
        sfu_core::proto::demux::PacketClass::Rtcp => (RecordKind::Rtcp, 4),
        _ => return None,
    };
    let b = data.get(at..at + 4)?;
    Some((kind, u32::from_be_bytes([b[0], b[1], b[2], b[3]])))
}

/// Bytes buffered per track file before a write.
const FILE_BUFFER: usize = 64 * 1024;

/// What the room tells a recording's thread.
#[derive(Debug)]
pub enum Control {
    /// A track to record: packets with `ssrc` go to `file` (a name in the
    /// recording's directory), which starts with `header`; the room listed
    /// it as row `row` of the recording's `tracks`.
    Track {
        /// Its row in the recording's `tracks`.
        row: usize,
        /// The SSRC of the recording's consumer of the track.
        ssrc: u32,
        /// The file name.
        file: String,
        /// Its header.
        header: TrackHeader,
    },
}

#[derive(Debug)]
struct TrackFile {
    out: BufWriter<File>,
    /// Its row in the recording's `tracks`.
    row: usize,
}

/// One recording's writer (run on a thread of its own by [`spawn`]).
#[derive(Debug)]
pub struct Writer {
    dir: PathBuf,
    /// The instant of `at` = 0 in the files.
    t0: Instant,
    entry: Arc<Entry>,
    recordings: Arc<Recordings>,
    tracks: HashMap<u32, TrackFile>,
    buf: Vec<u8>,
}

impl Writer {
    /// A writer of recording `entry` into `dir` (which exists), its times
    /// counted from `t0`.
    pub fn new(dir: PathBuf, t0: Instant, entry: Arc<Entry>, recordings: Arc<Recordings>) -> Self {
        Self {
            dir,
            t0,
            entry,
            recordings,
            tracks: HashMap::new(),
            buf: Vec::with_capacity(2048),
        }
    }

    fn on_control(&mut self, c: Control) -> io::Result<()> {
        let Control::Track {
            ssrc,
            file,
            header,
            row,
        } = c;
        let path = self.dir.join(&file);
        let mut out = BufWriter::with_capacity(FILE_BUFFER, File::create(&path)?);
        self.buf.clear();
        file::write_header(&header, &mut self.buf);
        out.write_all(&self.buf)?;
        self.count_bytes(self.buf.len());
        // A track recorded again (a new consumer of it) replaces nothing:
        // its SSRC is new.
        self.tracks.insert(ssrc, TrackFile { out, row });
        Ok(())
    }

    fn on_packet(&mut self, p: &Tapped) -> io::Result<()> {
        let Some((kind, ssrc)) = ssrc_of(&p.data) else {
            return Ok(());
        };
        let Some(t) = self.tracks.get_mut(&ssrc) else {
            return Ok(());
        };
        let at_us = p.at.saturating_duration_since(self.t0).as_micros() as u64;
        let Some(head) = file::record_head(kind, at_us, p.data.len()) else {
            return Ok(());
        };
        t.out.write_all(&head)?;
        t.out.write_all(&p.data)?;
        let n = (head.len() + p.data.len()) as u64;
        self.recordings.bytes.fetch_add(n, Ordering::Relaxed);
        let mut info = lock(&self.entry.info);
        info.bytes += n;
        if kind == RecordKind::Rtp {
            info.packets += 1;
            if let Some(s) = info.tracks.get_mut(t.row) {
                s.packets += 1;
                s.first_ms.get_or_insert(at_us / 1000);
                s.last_ms = Some(at_us / 1000);
            }
        }
        Ok(())
    }

    /// Counts `n` bytes written (the recording's and the server's).
    fn count_bytes(&self, n: usize) {
        lock(&self.entry.info).bytes += n as u64;
        self.recordings.bytes.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Reads `ctl` and `tap` until the tap's queue closes; the first
    /// failed write ends it. The queue is drained every [`POLL`] instead
    /// of waited on: a thread blocked in `recv` would make the worker
    /// wake it (a futex call) for every packet it hands over.
    fn run(
        &mut self,
        (tap, spare): (Receiver<Tapped>, Sender<Vec<u8>>),
        ctl: Receiver<Control>,
    ) -> io::Result<()> {
        loop {
            while let Ok(c) = ctl.try_recv() {
                self.on_control(c)?;
            }
            loop {
                match tap.try_recv() {
                    Ok(p) => {
                        if !self.knows(&p) {
                            // Its track was announced after the drain above.
                            while let Ok(c) = ctl.try_recv() {
                                self.on_control(c)?;
                            }
                        }
                        self.on_packet(&p)?;
                        // The buffer goes back for the worker's next copy.
                        let _ = spare.try_send(p.data);
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        return self.finish(&ctl);
                    }
                }
            }
            std::thread::sleep(POLL);
        }
    }

    /// Whether `p`'s SSRC has a file.
    fn knows(&self, p: &Tapped) -> bool {
        ssrc_of(&p.data).is_some_and(|(_, s)| self.tracks.contains_key(&s))
    }

    /// The queue closed: the last tracks announced, then every file
    /// flushed to the disk.
    fn finish(&mut self, ctl: &Receiver<Control>) -> io::Result<()> {
        while let Ok(c) = ctl.try_recv() {
            self.on_control(c)?;
        }
        for t in self.tracks.values_mut() {
            t.out.flush()?;
            t.out.get_ref().sync_all()?;
        }
        Ok(())
    }

    /// Muxes what was written (`--record-mux on`): the outputs, or why
    /// not, go in the recording's info.
    fn mux(&self) {
        // The manifest lists the tracks for the muxer.
        if let Err(e) = Writer::write_manifest(&self.dir, &self.entry) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "recording manifest not written");
        }
        let started = Instant::now();
        let result = super::mux::mux_dir(&self.dir);
        let mut info = lock(&self.entry.info);
        match result {
            Ok(report) => {
                tracing::info!(recording = %info.id, files = report.outputs.len(), ms = started.elapsed().as_millis() as u64, "recording muxed");
                for (f, why) in &report.skipped {
                    tracing::warn!(recording = %info.id, file = %f, reason = %why, "track not muxed");
                }
                info.outputs = report.outputs;
            }
            Err(e) => {
                tracing::warn!(recording = %info.id, error = %e, "recording not muxed");
                info.mux_error = Some(e.to_string());
            }
        }
    }

    /// Writes the manifest (`manifest.json`, replaced whole).
    pub fn write_manifest(dir: &Path, entry: &Entry) -> io::Result<()> {
        let json = serde_json::to_vec_pretty(&entry.snapshot()).map_err(io::Error::other)?;
        let tmp = dir.join("manifest.json.tmp");
        std::fs::write(&tmp, json)?;
        std::fs::rename(tmp, dir.join("manifest.json"))
    }
}

/// Runs `w` on a thread of its own until `tap` (the queue from the worker,
/// and where its buffers go back) closes or a write fails, then writes
/// the manifest and calls `on_end` with the error, if any.
///
/// Errors: the thread could not be started.
pub fn spawn(
    mut w: Writer,
    tap: (Receiver<Tapped>, Sender<Vec<u8>>),
    ctl: Receiver<Control>,
    on_end: impl FnOnce(Option<String>) + Send + 'static,
) -> io::Result<()> {
    let name = format!("rec-{}", lock(&w.entry.info).id);
    std::thread::Builder::new().name(name).spawn(move || {
        let result = w.run(tap, ctl);
        // Whatever was buffered for a failed disk is dropped with the
        // files (a BufWriter's drop tries one last write and ignores it).
        let error = result.err().map(|e| e.to_string());
        w.tracks.clear();
        if error.is_some() {
            w.recordings.failed.fetch_add(1, Ordering::Relaxed);
        }
        if w.recordings.cfg.mux {
            lock(&w.entry.info).state = State::Muxing;
            w.mux();
        }
        {
            let mut info = lock(&w.entry.info);
            info.stopped_unix_ms = Some(unix_ms());
            if let Some(e) = &error {
                info.state = State::Failed;
                info.error = Some(format!("writing the recording failed: {e}"));
            } else {
                info.state = State::Stopped;
            }
        }
        if let Err(e) = Writer::write_manifest(&w.dir, &w.entry) {
            tracing::warn!(dir = %w.dir.display(), error = %e, "recording manifest not written");
        }
        on_end(error);
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::{RecordingInfo, file::Reader};
    use std::time::Duration;

    fn setup(name: &str) -> (PathBuf, Arc<Entry>, Arc<Recordings>) {
        let dir = std::env::temp_dir().join(format!("sfu-writer-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let recs = Arc::new(Recordings::default());
        let entry = recs.add(RecordingInfo {
            id: "r1".into(),
            room: "demo".into(),
            participant: None,
            state: State::Recording,
            error: None,
            dir: dir.display().to_string(),
            started_unix_ms: 1,
            stopped_unix_ms: None,
            packets: 0,
            bytes: 0,
            dropped: 0,
            tracks: Vec::new(),
            outputs: Vec::new(),
            mux_error: None,
        });
        (dir, entry, recs)
    }

    fn track(ssrc: u32) -> Control {
        let mut header = crate::recording::file::tests::header();
        header.ssrc = ssrc;
        Control::Track {
            row: 0,
            ssrc,
            file: "p1-video.sfurec".into(),
            header,
        }
    }

    fn rtp(ssrc: u32, seq: u16) -> Vec<u8> {
        let mut p = vec![0x80, 96, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xAB];
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p[8..12].copy_from_slice(&ssrc.to_be_bytes());
        p
    }

    fn run(
        dir: &Path,
        entry: &Arc<Entry>,
        recs: &Arc<Recordings>,
        feed: Vec<Tapped>,
    ) -> Option<String> {
        let t0 = Instant::now();
        let (tap_tx, tap_rx) = crossbeam_channel::bounded(64);
        let (spare_tx, _spare_rx) = crossbeam_channel::bounded(4);
        let (ctl_tx, ctl_rx) = crossbeam_channel::unbounded();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let w = Writer::new(dir.to_path_buf(), t0, entry.clone(), recs.clone());
        spawn(w, (tap_rx, spare_tx), ctl_rx, move |e| {
            let _ = done_tx.send(e);
        })
        .expect("thread");
        lock(&entry.info)
            .tracks
            .push(crate::recording::TrackSummary::of(
                "p1-video.sfurec",
                &crate::recording::file::tests::header(),
            ));
        ctl_tx.send(track(7)).expect("ctl");
        for p in feed {
            let _ = tap_tx.send(p);
        }
        drop(tap_tx);
        done_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the writer ends")
    }

    #[test]
    fn packets_and_reports_go_to_their_tracks_file_and_the_manifest_lists_it() {
        let (dir, entry, recs) = setup("ok");
        let t0 = Instant::now();
        let mut sr = vec![0x80, 200, 0, 6];
        sr.extend_from_slice(&7u32.to_be_bytes());
        sr.extend_from_slice(&[0; 20]);
        let feed = vec![
            Tapped {
                at: t0 + Duration::from_millis(5),
                data: rtp(7, 1),
            },
            Tapped {
                at: t0 + Duration::from_millis(40),
                data: rtp(7, 2),
            },
            Tapped {
                at: t0 + Duration::from_millis(41),
                data: sr.clone(),
            },
            // Another SSRC: no track of this recording.
            Tapped {
                at: t0,
                data: rtp(9, 1),
            },
        ];
        assert_eq!(run(&dir, &entry, &recs, feed), None);
        let bytes = std::fs::read(dir.join("p1-video.sfurec")).expect("file");
        let r = Reader::new(&bytes).expect("reads");
        assert_eq!(r.header.ssrc, 7);
        let recs_in: Vec<_> = r.collect();
        assert_eq!(recs_in.len(), 3);
        assert_eq!(recs_in[0].data, &rtp(7, 1)[..]);
        assert_eq!(recs_in[2].kind, RecordKind::Rtcp);
        let info = entry.snapshot();
        assert_eq!((info.state, info.packets), (State::Stopped, 2));
        assert_eq!(info.tracks[0].packets, 2);
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).expect("manifest"))
                .expect("json");
        assert_eq!(manifest["state"], "stopped");
        assert_eq!(manifest["tracks"][0]["file"], "p1-video.sfurec");
        assert_eq!(recs.bytes.load(Ordering::Relaxed), bytes.len() as u64);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_full_disk_fails_the_recording_with_the_error() {
        let (dir, entry, recs) = setup("full");
        // /dev/full: every write fails with ENOSPC.
        std::os::unix::fs::symlink("/dev/full", dir.join("p1-video.sfurec")).expect("symlink");
        let t0 = Instant::now();
        let big = {
            let mut p = rtp(7, 1);
            p.resize(1200, 0);
            p
        };
        let feed: Vec<Tapped> = (0..60)
            .map(|_| Tapped {
                at: t0,
                data: big.clone(),
            })
            .collect();
        let err = run(&dir, &entry, &recs, feed).expect("an error");
        assert!(err.contains("No space left"), "{err}");
        let info = entry.snapshot();
        assert_eq!(info.state, State::Failed);
        assert!(info.error.is_some_and(|e| e.contains("No space left")));
        assert_eq!(recs.failed.load(Ordering::Relaxed), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
