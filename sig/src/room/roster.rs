//! Who is in the room, as clients see it: one snapshot (`participants`) to
//! whoever joins, then `deltas` to everyone, coalesced to at most one
//! message per connection per [`DELTA_INTERVAL`] and serialized once for
//! all of them. Viewers are not listed, only counted, and the count goes
//! out at most once per [`VIEWERS_INTERVAL`]: a viewer's join costs the
//! room O(1) messages, not one to everyone.

use std::time::Duration;

use super::*;
use crate::conn::Broadcast;

/// Deltas are sent at most this often to one connection.
pub const DELTA_INTERVAL: Duration = Duration::from_millis(200);
/// A change of the viewer count alone is sent at most this often.
pub const VIEWERS_INTERVAL: Duration = Duration::from_secs(1);

/// Roster changes not sent yet.
#[derive(Debug, Default)]
pub(super) struct Roster {
    pending: Vec<Delta>,
    /// The viewer count everyone was last told (in a snapshot or delta).
    viewers_sent: usize,
    /// When the count was last sent in `deltas`.
    viewers_sent_at: Option<Instant>,
    /// When the pending changes go out.
    flush_at: Option<Instant>,
}

impl Roster {
    /// When [`Room::flush_roster`] is due.
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.flush_at
    }
}

pub(super) fn info(p: &Participant) -> ParticipantInfo {
    ParticipantInfo {
        id: format!("p{}", p.id),
        name: p.name.clone(),
        audio_muted: p.audio_muted,
        video_off: p.video_off,
        screen: p.published.iter().any(|t| t.screen),
    }
}

impl Room {
    /// Sends member `pid` the room as it is now: the participants, the
    /// viewer count, and who speaks.
    pub(super) fn send_snapshot(&self, pid: u64) {
        let Some(p) = self.participants.get(pid) else {
            return;
        };
        p.conn.send(&ServerMsg::Participants {
            room: self.name.clone(),
            participants: self
                .participants
                .participants()
                .map(info)
                .chain(
                    self.remote_publishers()
                        .into_iter()
                        .filter_map(|r| self.remote_info(r)),
                )
                .collect(),
            viewers: self.viewer_count(),
        });
        if self.is_recorded() {
            p.conn.send(&ServerMsg::Recording { active: true });
        }
        if let Some(id) = self
            .speaker
            .filter(|s| self.participants.contains(*s) || self.remote_publishers().contains(s))
        {
            p.conn.send(&ServerMsg::Speaker {
                id: format!("p{id}"),
            });
        }
    }

    /// Queues a change for everyone. An update of a participant whose
    /// join or update is still queued replaces it in place.
    pub(super) fn queue_delta(&mut self, now: Instant, d: Delta) {
        if let Delta::ParticipantUpdated { participant } = &d
            && let Some(queued) = self.roster.pending.iter_mut().find_map(|q| match q {
                Delta::ParticipantJoined { participant: p }
                | Delta::ParticipantUpdated { participant: p }
                    if p.id == participant.id =>
                {
                    Some(p)
                }
                _ => None,
            })
        {
            *queued = participant.clone();
        } else {
            self.roster.pending.push(d);
        }
        self.schedule_roster(now);
    }

    /// The viewer count changed: schedules it (at most once per
    /// [`VIEWERS_INTERVAL`], or with other deltas).
    pub(super) fn viewers_changed(&mut self, now: Instant) {
        self.schedule_roster(now);
    }

    fn schedule_roster(&mut self, now: Instant) {
        let viewers_due = self
            .roster
            .viewers_sent_at
            .map_or(now, |t| t + VIEWERS_INTERVAL);
        let at = if self.roster.pending.is_empty() {
            viewers_due.max(now + DELTA_INTERVAL)
        } else {
            now + DELTA_INTERVAL
        };
        self.roster.flush_at = Some(self.roster.flush_at.map_or(at, |t| t.min(at)));
    }

    /// Sends the queued changes (and the viewer count when it changed) to
    /// everyone in one `deltas` message, serialized once.
    pub(super) fn flush_roster(&mut self, now: Instant) {
        if self.roster.flush_at.is_none_or(|t| t > now) {
            return;
        }
        self.roster.flush_at = None;
        // Other nodes learn this side's viewers at the same pace.
        self.sync_viewers();
        let mut events = std::mem::take(&mut self.roster.pending);
        let count = self.viewer_count();
        if count != self.roster.viewers_sent {
            events.push(Delta::Viewers { count });
            self.roster.viewers_sent = count;
            self.roster.viewers_sent_at = Some(now);
        }
        if events.is_empty() {
            return;
        }
        let msg = Broadcast::new(&ServerMsg::Deltas { events });
        for p in self.participants.iter() {
            msg.send_to(&p.conn);
        }
    }
}
