//! A room's relays over time: one that falls silent is dropped and its
//! node avoided for a while, one whose node left the directory too, a
//! room that lost its parent attaches again, and a room with nobody left
//! here leaves the cluster (`relays.rs` opens them). A dropped relay's
//! tracks that another relay announced too are mirrored from that one
//! ([`Announced`]).

use std::collections::BTreeMap;

use super::relays::{REATTACH_DELAY, RELAY_CHECK, RELAY_SILENCE, SUSPECT_FOR};
use super::*;
use crate::cluster::NodeMsg;
use crate::cluster::wire::{WirePublisher, WireTrack};

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

    /// Drops relay `relay_id` with every publisher that came through it
    /// (the others are told); a lost parent means attaching again.
    pub(super) async fn drop_relay(&mut self, relay_id: &str) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        let Some(i) = c.relays.iter().position(|r| r.relay_id == relay_id) else {
            return;
        };
        let r = c.relays.remove(i);
        c.cluster.remove_relay(&self.name, &r.node);
        c.viewers_sent.remove(relay_id);
        let viewers_gone = c.viewers_via.remove(relay_id).is_some();
        // The far end drops it too, should it still be there.
        c.send(
            &r.node,
            NodeMsg::RelayClose {
                room: self.name.clone(),
                from: c.me().to_owned(),
                relay_id: r.relay_id.clone(),
            },
        );
        if r.parent {
            c.attached = false;
            c.cluster.release(&self.name);
            c.reattach_at = Some(Instant::now() + REATTACH_DELAY);
        }
        let lost: Vec<(u64, String)> = c
            .remote
            .values()
            .filter(|p| p.via == relay_id)
            .map(|p| (p.pid, p.id.clone()))
            .collect();
        if let Some(home) = self.home() {
            self.command(
                home,
                Command::CloseTransport {
                    router: home,
                    transport: r.transport,
                },
            );
        }
        tracing::info!(room = %self.name, node = %r.node, publishers = lost.len(), "relay closed");
        if viewers_gone {
            self.viewers_changed(Instant::now());
        }
        for (pid, _) in &lost {
            self.remove_remote(*pid).await;
        }
        self.relay_gone(
            None,
            Vec::new(),
            lost.into_iter().map(|(_, id)| id).collect(),
        );
        self.take_over_announced().await;
    }

    /// Mirrors, from the relay that announced it, every track announced
    /// but not known here: one that came through a relay since dropped,
    /// while another relay announced it too (a node that attached again
    /// before this one saw its old path die). Passes them on.
    async fn take_over_announced(&mut self) {
        let Some(c) = self.cluster.as_ref() else {
            return;
        };
        let sources: Vec<(String, TransportId, Vec<WireTrack>)> = c
            .relays
            .iter()
            .filter(|r| r.ready)
            .map(|r| {
                (
                    r.relay_id.clone(),
                    r.transport,
                    r.announced.unknown(|id| c.knows_track(id)),
                )
            })
            .collect();
        for (relay_id, transport, tracks) in sources {
            let mut passed = Vec::new();
            for w in tracks {
                if let Some(t) = self.mirror_remote(&relay_id, transport, &w).await {
                    passed.push((w, t));
                }
            }
            if !passed.is_empty() {
                tracing::info!(room = %self.name, relay = %relay_id, tracks = passed.len(), "tracks taken over from another relay");
            }
            self.relay_to_all(Some(&relay_id), passed).await;
        }
    }
}

/// What a far node announced through one relay and has not taken back:
/// its tracks by id in the cluster, each publisher's state kept current. A
/// track known already through another relay is not mirrored from this
/// one; should that relay drop, the track is mirrored from here
/// ([`Room::take_over_announced`]).
#[derive(Debug, Default)]
pub(super) struct Announced(BTreeMap<String, WireTrack>);

impl Announced {
    /// Takes one `tracks` message: `added` tracks, `removed` track ids and
    /// the tracks of the `left` publishers (ids in the cluster).
    pub(super) fn apply(&mut self, added: &[WireTrack], removed: &[String], left: &[String]) {
        for w in added {
            self.0.insert(w.id.clone(), w.clone());
        }
        for id in removed {
            self.0.remove(id);
        }
        self.0.retain(|_, w| !left.contains(&w.publisher.id));
    }

    /// Takes publisher `who`'s new state.
    pub(super) fn publisher_state(&mut self, who: &WirePublisher) {
        for w in self.0.values_mut().filter(|w| w.publisher.id == who.id) {
            w.publisher = who.clone();
        }
    }

    /// The tracks announced for which `known` (by track id) is false.
    pub(super) fn unknown(&self, known: impl Fn(&str) -> bool) -> Vec<WireTrack> {
        self.0.values().filter(|w| !known(&w.id)).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::wire::WireKind;

    fn track(id: &str, publisher: &str) -> WireTrack {
        WireTrack {
            id: id.into(),
            publisher: WirePublisher {
                id: publisher.into(),
                name: "cat".into(),
                audio_muted: false,
                video_off: false,
            },
            kind: WireKind::Video,
            codec: crate::sdp::Codec {
                pt: 96,
                name: "VP8".into(),
                clock_rate: 90_000,
                channels: None,
                fmtp: None,
            },
            screen: false,
            rids: Vec::new(),
            ssrcs: vec![1],
            keep_gop: false,
        }
    }

    fn ids(v: Vec<WireTrack>) -> Vec<String> {
        v.into_iter().map(|w| w.id).collect()
    }

    #[test]
    fn a_track_known_through_another_relay_is_taken_over_once_that_one_drops() {
        // C attached to A again before A saw B (C's old path) die: C's
        // tracks are announced through the new relay while known via B.
        let mut via_c = Announced::default();
        via_c.apply(&[track("c/1", "c/p22"), track("c/2", "c/p22")], &[], &[]);
        let mut known_via_b = vec!["c/1".to_owned(), "c/2".to_owned()];
        assert!(
            via_c
                .unknown(|id| known_via_b.iter().any(|k| k == id))
                .is_empty()
        );
        // B dropped with what came through it: both are C's to give now.
        known_via_b.clear();
        assert_eq!(ids(via_c.unknown(|_| false)), ["c/1", "c/2"]);
        // The state as it changed since the announcement.
        via_c.publisher_state(&WirePublisher {
            id: "c/p22".into(),
            name: "cat".into(),
            audio_muted: true,
            video_off: false,
        });
        assert!(
            via_c
                .unknown(|_| false)
                .iter()
                .all(|w| w.publisher.audio_muted)
        );
    }

    #[test]
    fn what_a_relay_took_back_is_not_taken_over() {
        let mut a = Announced::default();
        a.apply(
            &[
                track("c/1", "c/p22"),
                track("c/2", "c/p22"),
                track("c/3", "c/p23"),
            ],
            &[],
            &[],
        );
        a.apply(&[], &["c/1".to_owned()], &[]);
        assert_eq!(ids(a.unknown(|_| false)), ["c/2", "c/3"]);
        a.apply(&[], &[], &["c/p22".to_owned()]);
        assert_eq!(ids(a.unknown(|_| false)), ["c/3"]);
        assert!(a.unknown(|id| id == "c/3").is_empty());
    }
}
