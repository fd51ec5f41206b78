//! The room's recordings (`crate::recording`): a tapped direct transport
//! on home with a running consumer of each recorded track, the thread that
//! writes them, and the API's start and stop.

use std::collections::HashSet;

use crossbeam_channel::Sender;
use sfu_core::transport::Tap;

use super::*;
use crate::recording::TrackSummary;
use crate::recording::file::TrackHeader;
use crate::recording::writer::{self, Control, Writer};
use crate::recording::{
    Entry, RecordError, RecordRequest, RecordingInfo, State, check_room_name, lock, new_id, unix_ms,
};

/// Buffers a recording thread keeps for the worker to copy into (a
/// packet's worth each: 512 hold ~0.6 s of 10 tracks).
const SPARE_BUFFERS: usize = 512;

/// A recording thread's end, for the room.
#[derive(Debug)]
pub(super) struct Ended {
    id: String,
    error: Option<String>,
}

/// One recording being written.
#[derive(Debug)]
struct Active {
    entry: Arc<Entry>,
    id: String,
    /// The one participant recorded; `None`: everyone.
    participant: Option<u64>,
    /// Its tapped transport, on home.
    router: RouterId,
    transport: TransportId,
    ctl: Sender<Control>,
    /// The producers (on home) it has a consumer of.
    recorded: HashSet<ProducerId>,
    started: Instant,
}

/// The room's recordings.
#[derive(Debug)]
pub(super) struct RoomRecordings {
    active: Vec<Active>,
    ended_tx: mpsc::UnboundedSender<Ended>,
    /// Recording threads that ended (read by the room's loop).
    pub(super) ended: mpsc::UnboundedReceiver<Ended>,
    /// `--record-rooms` started its recording of this room.
    auto_started: bool,
}

impl Default for RoomRecordings {
    fn default() -> Self {
        let (ended_tx, ended) = mpsc::unbounded_channel();
        Self {
            active: Vec::new(),
            ended_tx,
            ended,
            auto_started: false,
        }
    }
}

impl Room {
    /// Answers a request of the recording API.
    pub(super) async fn on_record(&mut self, req: RecordRequest) {
        match req {
            RecordRequest::Start { participant, reply } => {
                let r = self.start_recording(participant.as_deref()).await;
                let _ = reply.send(r);
            }
            RecordRequest::Stop { id, reply } => {
                let _ = reply.send(self.stop_recording(&id));
            }
        }
    }

    /// Starts a recording of the room, or of participant `who` (`p7`).
    ///
    /// Errors: [`RecordError::BadRoomName`], [`RecordError::NoParticipant`],
    /// [`RecordError::Storage`], [`RecordError::DataPlane`].
    async fn start_recording(&mut self, who: Option<&str>) -> Result<RecordingInfo, RecordError> {
        check_room_name(&self.name)?;
        let participant = match who {
            None => None,
            Some(w) => Some(
                w.strip_prefix('p')
                    .and_then(|n| n.parse::<u64>().ok())
                    .filter(|pid| {
                        self.participants.contains(*pid) || self.remote_publishers().contains(pid)
                    })
                    .ok_or_else(|| RecordError::NoParticipant(w.into()))?,
            ),
        };
        let recordings = self.ctx.cfg.recordings.clone();
        let Some((router, worker)) = self.shards.first().map(|s| (s.router, s.worker.clone()))
        else {
            return Err(RecordError::DataPlane("the room has no router yet".into()));
        };
        let id = new_id();
        let dir = recordings.cfg.dir.join(&self.name).join(&id);
        std::fs::create_dir_all(&dir)
            .map_err(|e| RecordError::Storage(format!("{}: {e}", dir.display())))?;
        let entry = recordings.add(RecordingInfo {
            id: id.clone(),
            room: self.name.clone(),
            participant: participant.map(|p| format!("p{p}")),
            state: State::Recording,
            error: None,
            dir: dir.display().to_string(),
            started_unix_ms: unix_ms(),
            stopped_unix_ms: None,
            packets: 0,
            bytes: 0,
            dropped: 0,
            tracks: Vec::new(),
            outputs: Vec::new(),
            mux_error: None,
        });
        let (tap_tx, tap_rx) = crossbeam_channel::bounded(recordings.cfg.queue);
        // Buffers the thread gives back for the worker's next copies.
        let (spare_tx, spare_rx) = crossbeam_channel::bounded(SPARE_BUFFERS);
        let (ctl, ctl_rx) = crossbeam_channel::unbounded();
        let dropped = (entry.dropped.clone(), recordings.dropped.clone());
        let tap = Tap::new(tap_tx, spare_rx, dropped);
        let transport = match call(&worker, |reply| Command::CreateDirectTransport {
            router,
            tap: Some(tap),
            reply,
        })
        .await
        {
            Ok(t) => t,
            Err(e) => {
                let mut info = lock(&entry.info);
                info.state = State::Failed;
                info.error = Some(e.to_string());
                info.stopped_unix_ms = Some(unix_ms());
                return Err(RecordError::DataPlane(e.to_string()));
            }
        };
        let started = Instant::now();
        if let Err(e) = Writer::write_manifest(&dir, &entry) {
            tracing::warn!(dir = %dir.display(), error = %e, "recording manifest not written");
        }
        let w = Writer::new(dir, started, entry.clone(), recordings.clone());
        let ended_tx = self.recordings.ended_tx.clone();
        let rid = id.clone();
        let spawned = writer::spawn(w, (tap_rx, spare_tx), ctl_rx, move |error| {
            let _ = ended_tx.send(Ended { id: rid, error });
        });
        if let Err(e) = spawned {
            self.command(router, Command::CloseTransport { router, transport });
            let mut info = lock(&entry.info);
            info.state = State::Failed;
            info.error = Some(format!("cannot start the recording thread: {e}"));
            return Err(RecordError::Storage(format!(
                "cannot start the recording thread: {e}"
            )));
        }
        tracing::info!(room = %self.name, recording = %id, participant = ?participant, "recording started");
        let first = !self.is_recorded();
        self.recordings.active.push(Active {
            entry: entry.clone(),
            id,
            participant,
            router,
            transport,
            ctl,
            recorded: HashSet::new(),
            started,
        });
        let publishers: Vec<u64> = match participant {
            Some(p) => vec![p],
            None => self
                .participants
                .participants()
                .map(|p| p.id)
                .chain(self.remote_publishers())
                .collect(),
        };
        if first {
            self.tell_recording(true);
        }
        for p in publishers {
            self.add_recorded_tracks(p).await;
        }
        Ok(entry.snapshot())
    }

    /// Stops recording `id`: its transport closes, and its thread writes
    /// out what it has.
    ///
    /// Errors: [`RecordError::NoRecording`].
    fn stop_recording(&mut self, id: &str) -> Result<RecordingInfo, RecordError> {
        let i = self
            .recordings
            .active
            .iter()
            .position(|a| a.id == id)
            .ok_or_else(|| RecordError::NoRecording(id.into()))?;
        let a = self.recordings.active.remove(i);
        self.end_recording(&a);
        tracing::info!(room = %self.name, recording = %id, seconds = a.started.elapsed().as_secs(), "recording stopped");
        Ok(a.entry.snapshot())
    }

    /// Whether a recording of the room runs.
    pub(super) fn is_recorded(&self) -> bool {
        !self.recordings.active.is_empty()
    }

    /// Tells every member whether the room is being recorded.
    fn tell_recording(&self, active: bool) {
        let msg = crate::conn::Broadcast::new(&ServerMsg::Recording { active });
        for p in self.participants.iter() {
            msg.send_to(&p.conn);
        }
    }

    /// Ends recording `a` (removed from the active ones): its transport
    /// closes; members hear when it was the last.
    fn end_recording(&self, a: &Active) {
        if !self.is_recorded() {
            self.tell_recording(false);
        }
        self.close_recording(a);
    }

    fn close_recording(&self, a: &Active) {
        {
            let mut info = lock(&a.entry.info);
            if info.state == State::Recording {
                info.state = State::Stopping;
            }
        }
        self.command(
            a.router,
            Command::CloseTransport {
                router: a.router,
                transport: a.transport,
            },
        );
    }

    /// A recording's thread ended: with an error (a full disk), the
    /// recording stops here too.
    pub(super) fn on_recording_ended(&mut self, ended: Ended) {
        let Some(i) = self.recordings.active.iter().position(|a| a.id == ended.id) else {
            return;
        };
        let a = self.recordings.active.remove(i);
        self.end_recording(&a);
        match ended.error {
            Some(e) => {
                tracing::warn!(room = %self.name, recording = %a.id, error = %e, "recording failed");
            }
            None => tracing::info!(room = %self.name, recording = %a.id, "recording ended"),
        }
    }

    /// Stops every recording (the room closes).
    pub(super) fn stop_recordings(&mut self) {
        let all = std::mem::take(&mut self.recordings.active);
        if !all.is_empty() {
            self.tell_recording(false);
        }
        for a in &all {
            self.close_recording(a);
        }
    }

    /// Records each track of publisher `pid` that a recording covering it
    /// does not have yet; with `--record-rooms` matching the room, its
    /// first publisher starts a recording of it.
    pub(super) async fn record_tracks(&mut self, pid: u64) {
        let auto = self
            .ctx
            .cfg
            .recordings
            .cfg
            .rooms
            .as_ref()
            .is_some_and(|g| g.matches(&self.name));
        if auto && !self.recordings.auto_started {
            self.recordings.auto_started = true;
            match self.start_recording(None).await {
                Ok(info) => {
                    tracing::info!(room = %self.name, recording = %info.id, "--record-rooms: recording the room");
                }
                Err(e) => {
                    tracing::warn!(room = %self.name, error = %e, "--record-rooms: cannot record the room");
                }
            }
            // start_recording recorded every publisher's tracks.
            return;
        }
        self.add_recorded_tracks(pid).await;
    }

    /// Adds a consumer of each track of `pid` to each recording covering
    /// it that has none yet.
    async fn add_recorded_tracks(&mut self, pid: u64) {
        let tracks = self.tracks_of(pid);
        if tracks.is_empty() {
            return;
        }
        let name = self.name_of(pid);
        for i in 0..self.recordings.active.len() {
            let a = &self.recordings.active[i];
            if a.participant.is_some_and(|p| p != pid) {
                continue;
            }
            for t in &tracks {
                let a = &self.recordings.active[i];
                if a.recorded.contains(&t.producer) {
                    continue;
                }
                let (router, transport) = (a.router, a.transport);
                let ssrc = rand::random::<u32>() | 1;
                let kind = t.kind.as_str();
                let file = format!(
                    "p{pid}-{kind}{}-{ssrc:08x}.{}",
                    if t.screen { "-screen" } else { "" },
                    crate::recording::file::EXTENSION
                );
                let header = TrackHeader {
                    room: self.name.clone(),
                    recording: a.id.clone(),
                    participant: format!("p{pid}"),
                    name: name.clone(),
                    kind: kind.into(),
                    screen: t.screen,
                    codec: t.codec.name.clone(),
                    clock_rate: t.codec.clock_rate,
                    channels: t.codec.channels.unwrap_or(0),
                    payload_type: t.codec.pt,
                    ssrc,
                    fmtp: t.codec.fmtp.clone().unwrap_or_default(),
                    started_unix_ms: lock(&a.entry.info).started_unix_ms,
                    dependency_descriptor_id: t
                        .codec
                        .name
                        .eq_ignore_ascii_case("AV1")
                        .then_some(crate::recording::file::AV1_DD_EXT_ID),
                };
                let row = {
                    let mut info = lock(&a.entry.info);
                    info.tracks.push(TrackSummary::of(&file, &header));
                    info.tracks.len() - 1
                };
                let dd_id = header.dependency_descriptor_id;
                // Before the consumer exists: its first packet finds the file.
                let track = Control::Track {
                    row,
                    ssrc,
                    file,
                    header,
                };
                if a.ctl.send(track).is_err() {
                    break;
                }
                let params = ConsumerParams {
                    transport,
                    producer: t.producer,
                    ssrc: Ssrc(ssrc),
                    mid: None,
                    extensions: ExtensionMap::default()
                        .with(Extension::DependencyDescriptor, dd_id),
                    pt_map: vec![(Pt(t.codec.pt), Pt(t.codec.pt))],
                    // Running: the publisher is asked for a keyframe now.
                    paused: false,
                    rtx: None,
                };
                let Some(worker) = self.shard(router).map(|s| s.worker.clone()) else {
                    return;
                };
                match call(&worker, |reply| Command::CreateConsumer {
                    router,
                    params,
                    reply,
                })
                .await
                {
                    Ok(_) => {
                        if let Some(a) = self.recordings.active.get_mut(i) {
                            a.recorded.insert(t.producer);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(room = %self.name, participant = pid, error = %e, "a track is not recorded");
                    }
                }
            }
        }
    }
}
