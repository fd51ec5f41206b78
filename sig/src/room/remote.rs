//! Publishers of the room on other nodes, and the tracks that cross the
//! relays: what this node pipes through each relay and announces
//! (`tracks`), the mirror producers it makes of what others announce, and
//! the lookups the rest of the room uses for a publisher here or remote
//! (`relays.rs` holds the relays themselves).

use sfu_core::router::PipeConsumerParams;

use super::relays::RemotePublisher;
use super::*;
use crate::cluster::NodeMsg;
use crate::cluster::wire::{WireKind, WirePublisher, WireTrack};

impl Room {
    /// Every track this node has, as announced to other nodes, but those
    /// that came through relay `except`.
    pub(super) fn wire_tracks(&self, except: Option<&str>) -> Vec<(WireTrack, Track)> {
        let Some(me) = self.node_id() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for p in self.participants.participants() {
            let who = local_publisher(&me, p);
            for t in &p.published {
                out.push((wire(&format!("{me}/{}", t.producer.0), &who, t), t.clone()));
            }
        }
        for r in self.cluster.iter().flat_map(|c| c.remote.values()) {
            if Some(r.via.as_str()) == except {
                continue;
            }
            for (id, t) in &r.tracks {
                out.push((wire(id, &r.wire(), t), t.clone()));
            }
        }
        out
    }

    /// Pipes every track to relay `relay_id` and announces them.
    pub(super) async fn announce_all(&mut self, relay_id: &str) {
        let tracks = self.wire_tracks(Some(relay_id));
        self.announce(relay_id, tracks).await;
    }

    /// Pipes `tracks` through relay `relay_id` (a pipe consumer per
    /// encoding, fresh SSRCs) and announces them there.
    pub(super) async fn announce(&mut self, relay_id: &str, tracks: Vec<(WireTrack, Track)>) {
        let Some(c) = self.cluster.as_ref() else {
            return;
        };
        let Some(r) = c.relays.iter().find(|r| r.relay_id == relay_id && r.ready) else {
            return;
        };
        let (node, transport) = (r.node.clone(), r.transport);
        let Some(home) = self.shards.first() else {
            return;
        };
        let (worker, router) = (home.worker.clone(), home.router);
        let mut added = Vec::new();
        for (mut wire, t) in tracks {
            let mut ssrcs = Vec::new();
            for i in 0..t.params.encodings.len() {
                let ssrc = rand::random::<u32>() | 1;
                let params = PipeConsumerParams {
                    transport,
                    producer: t.producer,
                    encoding: i as u8,
                    ssrc: Ssrc(ssrc),
                };
                match call(&worker, |reply| Command::CreatePipeConsumer {
                    router,
                    params,
                    reply,
                })
                .await
                {
                    Ok(_) => ssrcs.push(ssrc),
                    Err(e) => {
                        tracing::warn!(room = %self.name, %node, error = %e, "a track was not piped to a relay");
                        break;
                    }
                }
            }
            if ssrcs.len() == t.params.encodings.len() {
                wire.ssrcs = ssrcs;
                added.push(wire);
            }
        }
        if added.is_empty() {
            return;
        }
        let Some(c) = self.cluster.as_ref() else {
            return;
        };
        for chunk in added.chunks(crate::cluster::wire::MAX_TRACKS) {
            c.send(
                &node,
                NodeMsg::Tracks {
                    room: self.name.clone(),
                    from: c.me().to_owned(),
                    relay_id: relay_id.to_owned(),
                    added: chunk.to_vec(),
                    removed: Vec::new(),
                    left: Vec::new(),
                },
            );
        }
    }

    /// Pipes participant `pid`'s `tracks` (just published) to every relay.
    pub(super) async fn relay_published(&mut self, pid: u64, tracks: &[Track]) {
        let (Some(me), Some(p)) = (self.node_id(), self.participants.get(pid)) else {
            return;
        };
        let who = local_publisher(&me, p);
        let tracks: Vec<(WireTrack, Track)> = tracks
            .iter()
            .map(|t| (wire(&format!("{me}/{}", t.producer.0), &who, t), t.clone()))
            .collect();
        self.relay_to_all(None, tracks).await;
    }

    /// Participant `pid`'s media state changed: tells every relay.
    pub(super) fn relay_state(&self, pid: u64) {
        let (Some(me), Some(p)) = (self.node_id(), self.participants.get(pid)) else {
            return;
        };
        self.send_state(None, local_publisher(&me, p));
    }

    /// Sends publisher `who`'s state to every ready relay but `except`.
    fn send_state(&self, except: Option<&str>, who: WirePublisher) {
        let Some(c) = self.cluster.as_ref() else {
            return;
        };
        c.to_relays(except, |from, relay_id| NodeMsg::Publisher {
            room: self.name.clone(),
            from,
            relay_id,
            publisher: who.clone(),
        });
    }

    /// A remote publisher's new media state, from relay `relay_id`: shown
    /// here and passed on.
    pub(super) fn on_remote_state(&mut self, relay_id: &str, who: WirePublisher) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        for r in c.relays.iter_mut().filter(|r| r.relay_id == relay_id) {
            r.announced.publisher_state(&who);
        }
        let Some(r) = c
            .remote
            .values_mut()
            .find(|r| r.id == who.id && r.via == relay_id)
        else {
            return;
        };
        if (r.audio_muted, r.video_off) == (who.audio_muted, who.video_off) {
            return;
        }
        (r.audio_muted, r.video_off) = (who.audio_muted, who.video_off);
        let pid = r.pid;
        if let Some(info) = self.remote_info(pid) {
            self.queue_delta(
                Instant::now(),
                Delta::ParticipantUpdated { participant: info },
            );
        }
        self.send_state(Some(relay_id), who);
    }

    /// Viewers here and on every other node of the room, as far as the
    /// relays told.
    pub(super) fn viewer_count(&self) -> usize {
        let remote: u64 = self
            .cluster
            .iter()
            .flat_map(|c| c.viewers_via.values())
            .sum();
        self.participants.viewers() + remote as usize
    }

    /// Tells each relay how many viewers are on this side of it (here, and
    /// behind every other relay), when that changed.
    pub(super) fn sync_viewers(&mut self) {
        let local = self.participants.viewers() as u64;
        let name = self.name.clone();
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        let total: u64 = local + c.viewers_via.values().sum::<u64>();
        let mut out = Vec::new();
        for r in c.relays.iter().filter(|r| r.ready) {
            let count = total - c.viewers_via.get(&r.relay_id).copied().unwrap_or(0);
            if c.viewers_sent.get(&r.relay_id) != Some(&count) {
                out.push((r.node.clone(), r.relay_id.clone(), count));
            }
        }
        for (node, relay_id, count) in out {
            c.viewers_sent.insert(relay_id.clone(), count);
            c.send(
                &node,
                NodeMsg::Viewers {
                    room: name.clone(),
                    from: c.me().to_owned(),
                    relay_id,
                    count,
                },
            );
        }
    }

    /// Pipes `tracks` through every ready relay but `except`.
    pub(super) async fn relay_to_all(
        &mut self,
        except: Option<&str>,
        tracks: Vec<(WireTrack, Track)>,
    ) {
        if tracks.is_empty() {
            return;
        }
        let ids: Vec<String> = self
            .cluster
            .iter()
            .flat_map(|c| &c.relays)
            .filter(|r| r.ready && Some(r.relay_id.as_str()) != except)
            .map(|r| r.relay_id.clone())
            .collect();
        for id in ids {
            self.announce(&id, tracks.clone()).await;
        }
    }

    /// Tells every ready relay but `except` that `removed` tracks and
    /// `left` publishers (ids in the cluster) are gone.
    pub(super) fn relay_gone(&self, except: Option<&str>, removed: Vec<String>, left: Vec<String>) {
        let Some(c) = self.cluster.as_ref() else {
            return;
        };
        if removed.is_empty() && left.is_empty() {
            return;
        }
        c.to_relays(except, |from, relay_id| NodeMsg::Tracks {
            room: self.name.clone(),
            from,
            relay_id,
            added: Vec::new(),
            removed: removed.clone(),
            left: left.clone(),
        });
    }

    /// The ids in the cluster of participant `pid` and its `tracks`.
    pub(super) fn local_ids(&self, pid: u64, tracks: &[Track]) -> (String, Vec<String>) {
        let me = self.node_id().unwrap_or_default();
        (
            format!("{me}/p{pid}"),
            tracks
                .iter()
                .map(|t| format!("{me}/{}", t.producer.0))
                .collect(),
        )
    }

    /// Tracks announced through relay `relay_id`: mirror the new ones and
    /// offer them to every member; drop what is gone; pass it all on.
    pub(super) async fn on_tracks(
        &mut self,
        relay_id: &str,
        added: Vec<WireTrack>,
        removed: Vec<String>,
        left: Vec<String>,
    ) {
        let Some(transport) = self.cluster.as_mut().and_then(|c| {
            let r = c
                .relays
                .iter_mut()
                .find(|r| r.relay_id == relay_id && r.ready)?;
            r.announced.apply(&added, &removed, &left);
            Some(r.transport)
        }) else {
            return;
        };
        let mut passed = Vec::new();
        for w in added {
            if let Some(t) = self.mirror_remote(relay_id, transport, &w).await {
                passed.push((w, t));
            }
        }
        self.relay_to_all(Some(relay_id), passed).await;
        let mut gone_tracks = Vec::new();
        // What came through another relay is that relay's to take back.
        for id in removed {
            if self.remove_remote_track(relay_id, &id).await {
                gone_tracks.push(id);
            }
        }
        let mut gone = Vec::new();
        for id in left {
            let pid = self.cluster.as_ref().and_then(|c| {
                c.remote
                    .values()
                    .find(|r| r.id == id && r.via == relay_id)
                    .map(|r| r.pid)
            });
            if let Some(pid) = pid {
                self.remove_remote(pid).await;
                gone.push(id);
            }
        }
        self.relay_gone(Some(relay_id), gone_tracks, gone);
    }

    /// Makes a mirror producer on home of track `w` from relay `relay_id`
    /// and offers it to every member. Returns it, or `None` when known
    /// already or not made.
    pub(super) async fn mirror_remote(
        &mut self,
        relay_id: &str,
        transport: TransportId,
        w: &WireTrack,
    ) -> Option<Track> {
        let c = self.cluster.as_ref()?;
        // Known already, or this node's own (it never comes back in a tree).
        let own = format!("{}/", c.me());
        if w.id.starts_with(&own) || w.publisher.id.starts_with(&own) || c.knows_track(&w.id) {
            return None;
        }
        let home = self.shards.first()?;
        let (worker, router) = (home.worker.clone(), home.router);
        let kind = MediaKind::from(w.kind);
        let rids: Vec<Option<sfu_core::Rid>> = if w.rids.is_empty() {
            vec![None]
        } else {
            w.rids.iter().map(|r| sfu_core::Rid::new(r)).collect()
        };
        let origin = ProducerParams {
            transport,
            kind,
            encodings: rids
                .into_iter()
                .map(|rid| EncodingParams {
                    rid,
                    ssrc: None,
                    rtx_ssrc: None,
                })
                .collect(),
            mid: None,
            payload_types: vec![Pt(w.codec.pt)],
            video_codec: VideoCodec::from_name(&w.codec.name),
            rtx_payload_types: Vec::new(),
            extensions: ExtensionMap::EMPTY,
            keep_gop: w.keep_gop,
        };
        let ssrcs: Vec<Ssrc> = w.ssrcs.iter().map(|s| Ssrc(*s)).collect();
        let params = origin.mirror(transport, &ssrcs);
        let kept = params.clone();
        let producer = match call(&worker, |reply| Command::CreateProducer {
            router,
            params,
            reply,
        })
        .await
        {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(room = %self.name, track = %w.id, error = %e, "a relayed track was not mirrored");
                return None;
            }
        };
        let mut track = Track {
            producer,
            kind,
            codec: w.codec.clone(),
            screen: w.screen && kind == MediaKind::Video,
            mid: String::new(),
            rids: w.rids.clone(),
            params: kept,
            mirrors: Vec::new(),
        };
        self.pipe_everywhere(&mut track).await;
        let now = Instant::now();
        let c = self.cluster.as_mut()?;
        let existing = c
            .remote
            .values()
            .find(|r| r.id == w.publisher.id)
            .map(|r| r.pid);
        let pid = match existing {
            Some(pid) => pid,
            None => {
                let pid = self.ctx.next_pid.fetch_add(1, Ordering::Relaxed);
                c.remote.insert(
                    pid,
                    RemotePublisher {
                        pid,
                        id: w.publisher.id.clone(),
                        name: w.publisher.name.clone(),
                        audio_muted: w.publisher.audio_muted,
                        video_off: w.publisher.video_off,
                        via: relay_id.to_owned(),
                        tracks: Vec::new(),
                    },
                );
                pid
            }
        };
        if let Some(r) = c.remote.get_mut(&pid) {
            r.tracks.push((w.id.clone(), track.clone()));
        }
        if let Some(info) = self.remote_info(pid) {
            self.queue_delta(
                now,
                if existing.is_some() {
                    Delta::ParticipantUpdated { participant: info }
                } else {
                    Delta::ParticipantJoined { participant: info }
                },
            );
        }
        for member in self.participants.ids() {
            self.add_consumer(member, pid, &track).await;
            self.negotiate(member);
        }
        self.record_tracks(pid).await;
        Some(track)
    }

    /// The roster entry of remote publisher `pid`.
    pub(super) fn remote_info(&self, pid: u64) -> Option<ParticipantInfo> {
        let r = self.cluster.as_ref()?.remote.get(&pid)?;
        Some(ParticipantInfo {
            id: format!("p{pid}"),
            name: r.name.clone(),
            audio_muted: r.audio_muted,
            video_off: r.video_off,
            screen: r.tracks.iter().any(|(_, t)| t.screen),
        })
    }

    /// Closes a remote track (by id in the cluster) that came through
    /// relay `via` and takes it from every member. Returns whether it was
    /// known.
    pub(super) async fn remove_remote_track(&mut self, via: &str, id: &str) -> bool {
        let Some(home) = self.home() else {
            return false;
        };
        let Some(c) = self.cluster.as_mut() else {
            return false;
        };
        let Some((pid, track)) = c.remote.values_mut().find_map(|r| {
            if r.via != via {
                return None;
            }
            let i = r.tracks.iter().position(|(t, _)| t == id)?;
            Some((r.pid, r.tracks.remove(i).1))
        }) else {
            return false;
        };
        self.close_track(home, &track);
        for member in self.participants.ids() {
            if let Some(m) = self.participants.get_mut(member) {
                m.neg.remove_producer(track.producer);
            }
            self.negotiate(member);
        }
        if let Some(info) = self.remote_info(pid) {
            self.queue_delta(
                Instant::now(),
                Delta::ParticipantUpdated { participant: info },
            );
        }
        true
    }

    /// Removes remote publisher `pid` with its tracks.
    pub(super) async fn remove_remote(&mut self, pid: u64) {
        let Some(home) = self.home() else { return };
        let Some(r) = self.cluster.as_mut().and_then(|c| c.remote.remove(&pid)) else {
            return;
        };
        for (_, t) in &r.tracks {
            self.close_track(home, t);
        }
        for member in self.participants.ids() {
            if let Some(m) = self.participants.get_mut(member) {
                m.neg.remove_publisher(pid);
            }
            self.negotiate(member);
        }
        tracing::info!(room = %self.name, participant = pid, id = %r.id, "remote publisher left");
        self.queue_delta(
            Instant::now(),
            Delta::ParticipantLeft {
                id: format!("p{pid}"),
            },
        );
    }

    /// The publisher ids of the room's remote publishers.
    pub(super) fn remote_publishers(&self) -> Vec<u64> {
        self.cluster
            .iter()
            .flat_map(|c| c.remote.keys().copied())
            .collect()
    }

    /// The tracks of publisher `pid`, here or remote.
    pub(super) fn tracks_of(&self, pid: u64) -> Vec<Track> {
        if let Some(p) = self.participants.get(pid) {
            return p.published.clone();
        }
        self.cluster
            .iter()
            .filter_map(|c| c.remote.get(&pid))
            .flat_map(|r| r.tracks.iter().map(|(_, t)| t.clone()))
            .collect()
    }

    /// The track whose producer on home is `producer`, here or remote.
    pub(super) fn track_mut(&mut self, producer: ProducerId) -> Option<&mut Track> {
        let Self {
            participants,
            cluster,
            ..
        } = self;
        let local = participants
            .participants()
            .find(|p| p.published.iter().any(|t| t.producer == producer))
            .map(|p| p.id);
        if let Some(pid) = local {
            return participants
                .get_mut(pid)?
                .published
                .iter_mut()
                .find(|t| t.producer == producer);
        }
        cluster
            .as_mut()?
            .remote
            .values_mut()
            .flat_map(|r| r.tracks.iter_mut().map(|(_, t)| t))
            .find(|t| t.producer == producer)
    }

    /// The display name of publisher `pid`, here or remote.
    pub(super) fn name_of(&self, pid: u64) -> String {
        if let Some(p) = self.participants.get(pid) {
            return p.name.clone();
        }
        self.cluster
            .iter()
            .find_map(|c| c.remote.get(&pid))
            .map(|r| r.name.clone())
            .unwrap_or_default()
    }

    /// The publisher of producer `producer` on home, here or remote.
    pub(super) fn publisher_of(&self, producer: ProducerId) -> Option<u64> {
        self.participants
            .participants()
            .find(|p| p.published.iter().any(|t| t.producer == producer))
            .map(|p| p.id)
            .or_else(|| {
                self.cluster.iter().find_map(|c| {
                    c.remote
                        .values()
                        .find(|r| r.tracks.iter().any(|(_, t)| t.producer == producer))
                        .map(|r| r.pid)
                })
            })
    }
}
/// Participant `p` of node `me`, as other nodes see it.
fn local_publisher(me: &str, p: &Participant) -> WirePublisher {
    WirePublisher {
        id: format!("{me}/p{}", p.id),
        name: p.name.clone(),
        audio_muted: p.audio_muted,
        video_off: p.video_off,
    }
}

/// Track `t`, with id `id` in the cluster, of publisher `who`, for other
/// nodes (its SSRCs on the relay are set when piped).
fn wire(id: &str, who: &WirePublisher, t: &Track) -> WireTrack {
    WireTrack {
        id: id.to_owned(),
        publisher: who.clone(),
        kind: WireKind::from(t.kind),
        codec: t.codec.clone(),
        screen: t.screen,
        rids: t.rids.clone(),
        ssrcs: Vec::new(),
        keep_gop: t.params.keep_gop,
    }
}
