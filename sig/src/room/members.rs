//! A room's members, participants and viewers, by participant id (which
//! grows with each join, so iteration is in join order) and by connection.
//! Lookups are O(log n) either way: a room of 10,000 viewers handles each
//! message without scanning them.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::Participant;
use crate::conn::ConnId;
use crate::protocol::Role;

#[derive(Debug, Default)]
pub(super) struct Members {
    by_pid: BTreeMap<u64, Participant>,
    by_conn: HashMap<ConnId, u64>,
    /// The participants' (publishers') ids, so that listing them costs
    /// their number, not the room's (a room of 10,000 viewers).
    participant_ids: BTreeSet<u64>,
}

impl Members {
    pub(super) fn insert(&mut self, p: Participant) {
        self.by_conn.insert(p.conn.id(), p.id);
        if p.role == Role::Participant {
            self.participant_ids.insert(p.id);
        } else {
            self.participant_ids.remove(&p.id);
        }
        self.by_pid.insert(p.id, p);
    }

    pub(super) fn remove(&mut self, pid: u64) -> Option<Participant> {
        let p = self.by_pid.remove(&pid)?;
        if self.by_conn.get(&p.conn.id()) == Some(&pid) {
            self.by_conn.remove(&p.conn.id());
        }
        self.participant_ids.remove(&pid);
        Some(p)
    }

    pub(super) fn get(&self, pid: u64) -> Option<&Participant> {
        self.by_pid.get(&pid)
    }

    pub(super) fn get_mut(&mut self, pid: u64) -> Option<&mut Participant> {
        self.by_pid.get_mut(&pid)
    }

    pub(super) fn contains(&self, pid: u64) -> bool {
        self.by_pid.contains_key(&pid)
    }

    /// The participant id of connection `conn`'s membership.
    pub(super) fn pid_of(&self, conn: ConnId) -> Option<u64> {
        self.by_conn.get(&conn).copied()
    }

    /// Everyone, in join order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Participant> {
        self.by_pid.values()
    }

    /// The participants (publishers), in join order.
    pub(super) fn participants(&self) -> impl Iterator<Item = &Participant> {
        self.participant_ids
            .iter()
            .filter_map(|pid| self.by_pid.get(pid))
    }

    /// The ids of every member, in join order (a copy).
    pub(super) fn ids(&self) -> Vec<u64> {
        self.by_pid.keys().copied().collect()
    }

    /// The ids of every member but `pid`, in join order (a copy: the
    /// caller awaits the worker between them).
    pub(super) fn others(&self, pid: u64) -> Vec<u64> {
        self.by_pid.keys().copied().filter(|o| *o != pid).collect()
    }

    /// The ids of every participant (publisher) but `pid`, in join order.
    pub(super) fn other_participants(&self, pid: u64) -> Vec<u64> {
        self.participant_ids
            .iter()
            .copied()
            .filter(|o| *o != pid)
            .collect()
    }

    pub(super) fn len(&self) -> usize {
        self.by_pid.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.by_pid.is_empty()
    }

    pub(super) fn viewers(&self) -> usize {
        self.len() - self.participant_ids.len()
    }

    /// Members that are participants (publishers).
    pub(super) fn participant_count(&self) -> usize {
        self.participant_ids.len()
    }
}

impl std::ops::Index<u64> for Members {
    type Output = Participant;

    /// The member `pid`; only for ids just looked up (`Room::idx`).
    fn index(&self, pid: u64) -> &Participant {
        &self.by_pid[&pid]
    }
}

impl std::ops::IndexMut<u64> for Members {
    #[expect(
        clippy::expect_used,
        reason = "as Index: only for ids just looked up; BTreeMap's own Index panics the same way"
    )]
    fn index_mut(&mut self, pid: u64) -> &mut Participant {
        self.by_pid
            .get_mut(&pid)
            .expect("a member looked up just before")
    }
}

impl IntoIterator for Members {
    type Item = Participant;
    type IntoIter = std::collections::btree_map::IntoValues<u64, Participant>;

    fn into_iter(self) -> Self::IntoIter {
        self.by_pid.into_values()
    }
}
