//! A room's relays over time: one that falls silent is dropped and its
//! node avoided for a while, one whose node left the directory too, a
//! room that lost its parent attaches again, and a room with nobody left
//! here leaves the cluster (`relays.rs` opens them).

use super::relays::{REATTACH_DELAY, RELAY_CHECK, RELAY_SILENCE, SUSPECT_FOR};
use super::*;
use crate::cluster::NodeMsg;

impl Room {
    /// Drops relays from which nothing arrived for [`RELAY_SILENCE`]; their
    /// nodes are avoided for a while. Re-armed while relays exist.
    pub(super) async fn check_relays(&mut self, now: Instant) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        if c.check_at.is_none_or(|t| t > now) {
            return;
        }
        let mut silent = Vec::new();
        for r in c.relays.iter_mut() {
            // A relay not answered yet counts from when it was opened.
            let n = r.counters.packets_in.get();
            if n != r.last_in.0 {
                r.last_in = (n, now);
            } else if now.duration_since(r.last_in.1) >= RELAY_SILENCE {
                silent.push((r.relay_id.clone(), r.node.clone()));
            }
        }
        c.suspects.retain(|(_, until)| *until > now);
        for (_, node) in &silent {
            c.suspects.push((node.clone(), now + SUSPECT_FOR));
        }
        c.check_at = (!c.relays.is_empty()).then_some(now + RELAY_CHECK);
        for (id, node) in silent {
            tracing::warn!(room = %self.name, %node, "relay silent for {} s: dropped", RELAY_SILENCE.as_secs());
            self.drop_relay(&id).await;
        }
    }

    /// The live nodes changed: relays to nodes gone are dropped.
    pub(super) async fn on_nodes_changed(&mut self) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        let live: Vec<String> = c
            .nodes
            .borrow_and_update()
            .iter()
            .map(|n| n.id.clone())
            .collect();
        // Right after the directory comes back, nodes not registered again
        // yet are not gone (a dead one's relay falls silent anyway).
        if !c.cluster.nodes_settled() {
            return;
        }
        let gone: Vec<String> = c
            .relays
            .iter()
            .filter(|r| !live.contains(&r.node))
            .map(|r| r.relay_id.clone())
            .collect();
        for id in gone {
            tracing::warn!(room = %self.name, relay = %id, "a relay's node left the directory");
            self.drop_relay(&id).await;
        }
    }

    /// Attaches again once due (a refused or lost parent); retried later
    /// while the directory is down.
    pub(super) async fn reattach_if_due(&mut self, now: Instant) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        if c.reattach_at.is_none_or(|t| t > now) {
            return;
        }
        c.reattach_at = None;
        if self.participants.is_empty() && !self.has_children() {
            return;
        }
        if let Err(Fail(m)) = self.attach().await {
            tracing::warn!(room = %self.name, error = ?m, "room not attached again; retrying");
            if let Some(c) = self.cluster.as_mut() {
                c.reattach_at = Some(now + REATTACH_DELAY);
            }
        }
    }

    /// Whether other nodes attach below this one.
    pub(super) fn has_children(&self) -> bool {
        self.cluster
            .as_ref()
            .is_some_and(|c| c.relays.iter().any(|r| !r.parent))
    }

    /// The room has no member here: unless it feeds other nodes, it leaves
    /// the cluster (its parent is told, the directory forgets it here).
    pub(super) fn leave_cluster(&mut self) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        if !c.attached && !c.in_directory {
            return;
        }
        c.attached = false;
        c.in_directory = false;
        let me = c.me().to_owned();
        for r in std::mem::take(&mut c.relays) {
            c.cluster.remove_relay(&self.name, &r.node);
            c.send(
                &r.node,
                NodeMsg::RelayClose {
                    room: self.name.clone(),
                    from: me.clone(),
                    relay_id: r.relay_id.clone(),
                },
            );
        }
        c.remote.clear();
        c.cluster.release(&self.name);
        let (cluster, name) = (c.cluster.clone(), self.name.clone());
        tokio::spawn(async move {
            if let Err(e) = cluster.dir.leave_room(&name, &me).await {
                tracing::warn!(room = %name, error = %e, "directory: room not left (it expires)");
            }
        });
    }
}
