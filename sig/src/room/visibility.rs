//! What each participant shows: hidden tiles pause video (`video-hidden`),
//! tile widths cap simulcast layers (`video-size`), and mute and camera-off
//! badges (`media-state`).

use super::*;

impl Room {
    /// `video-hidden`: pauses this participant's consumers of the hidden
    /// publishers' video and resumes the others' (only tracks it answered
    /// for; one still being negotiated is resumed or not by its answer).
    pub(super) fn on_video_hidden(&mut self, conn: &ConnHandle, ids: &[String]) {
        let Some(pid) = self.pid_of(conn.id()) else {
            conn.send(&ServerMsg::error("not-joined", "join a room first"));
            return;
        };
        if ids.len() > 1000 {
            conn.send(&ServerMsg::error(
                "bad-message",
                "video-hidden lists at most 1,000 participants",
            ));
            return;
        }
        let hidden: std::collections::HashSet<String> = ids.iter().cloned().collect();
        let Some(i) = self.idx(pid) else { return };
        let p = &mut self.participants[i];
        let changes: Vec<(sfu_core::ConsumerId, bool)> = p
            .neg
            .live_tracks()
            .filter(|t| t.kind == MediaKind::Video)
            .filter(|t| {
                let id = t.stream_id();
                hidden.contains(&id) != p.hidden.contains(&id)
            })
            .map(|t| (t.consumer, hidden.contains(&t.stream_id())))
            .collect();
        p.hidden = hidden;
        let router = p.router;
        tracing::debug!(room = %self.name, participant = pid, changes = changes.len(), "video-hidden");
        for (consumer, paused) in changes {
            self.command(
                router,
                Command::SetConsumerPaused {
                    router,
                    consumer,
                    paused,
                },
            );
        }
    }

    /// `video-size`: each live video consumer of this participant forwards
    /// no larger simulcast layer than covers the width it is shown at
    /// (publishers left out: no limit). Only changes are sent to the core.
    pub(super) fn on_video_size(
        &mut self,
        conn: &ConnHandle,
        widths: &std::collections::HashMap<String, u32>,
    ) {
        let Some(pid) = self.pid_of(conn.id()) else {
            conn.send(&ServerMsg::error("not-joined", "join a room first"));
            return;
        };
        if widths.len() > 1000 {
            conn.send(&ServerMsg::error(
                "bad-message",
                "video-size lists at most 1,000 participants",
            ));
            return;
        }
        let widths: std::collections::HashMap<String, u16> = widths
            .iter()
            .map(|(id, w)| (id.clone(), (*w).clamp(1, u32::from(u16::MAX)) as u16))
            .collect();
        let Some(i) = self.idx(pid) else { return };
        let p = &mut self.participants[i];
        let changes: Vec<(sfu_core::ConsumerId, Option<u16>)> = p
            .neg
            .live_tracks()
            .filter(|t| t.kind == MediaKind::Video)
            .filter(|t| {
                let id = t.stream_id();
                widths.get(&id) != p.widths.get(&id)
            })
            .map(|t| (t.consumer, widths.get(&t.stream_id()).copied()))
            .collect();
        p.widths = widths;
        let router = p.router;
        tracing::debug!(room = %self.name, participant = pid, changes = changes.len(), "video-size");
        for (consumer, width) in changes {
            self.command(
                router,
                Command::SetConsumerMaxWidth {
                    router,
                    consumer,
                    width,
                },
            );
        }
    }

    /// `media-state`: tells everyone (in `participants`) when it changed.
    pub(super) fn on_media_state(&mut self, conn: &ConnHandle, audio_muted: bool, video_off: bool) {
        let Some(pid) = self.pid_of(conn.id()) else {
            conn.send(&ServerMsg::error("not-joined", "join a room first"));
            return;
        };
        let Some(i) = self.idx(pid) else { return };
        let p = &mut self.participants[i];
        if p.role == Role::Viewer {
            conn.send(&viewer_cannot_publish("media-state"));
            return;
        }
        if (p.audio_muted, p.video_off) == (audio_muted, video_off) {
            return;
        }
        p.audio_muted = audio_muted;
        p.video_off = video_off;
        let participant = roster::info(p);
        self.queue_delta(Instant::now(), Delta::ParticipantUpdated { participant });
        self.relay_state(pid);
    }
}
