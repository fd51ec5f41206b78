//! Room placement: a join is validated (name, token, SDP, limits), its room
//! is found or opened on the least-loaded healthy worker, and the join goes
//! to the room.

use super::*;

/// What a join asks for, before the hub validates it.
#[derive(Debug)]
pub(crate) struct JoinAsk {
    /// Room name.
    pub(crate) room: String,
    /// Display name (empty for WHIP, WHEP and RTMP: the token's identity,
    /// else `whip-<n>`, `whep-<n>` or `rtmp-<n>`).
    pub(crate) name: String,
    /// Participant or viewer (a token's `role` claim wins).
    pub(crate) role: Role,
    /// WebSocket, WHIP, WHEP or RTMP.
    pub(crate) via: Via,
}

impl Hub {
    /// The healthy worker with the fewest transports (then rooms) among
    /// those under the rooms-per-worker limit, or `None` when all are full.
    pub(super) fn least_loaded_worker(&self) -> Option<usize> {
        let rooms_on = |i: usize| {
            self.rooms
                .values()
                .filter(|r| r.routers.first().is_some_and(|&(_, w)| w == i))
                .count()
        };
        (0..self.workers.len())
            .filter(|&i| self.workers[i].healthy)
            .filter(|&i| rooms_on(i) < self.cfg.limits.rooms_per_worker)
            .min_by_key(|&i| (self.workers[i].r.counters.transports.get(), rooms_on(i), i))
    }

    /// Validates a join and hands it to its room, creating the room on the
    /// least-loaded worker when it does not exist.
    pub(super) fn join(
        &mut self,
        conn: ConnHandle,
        asked: JoinAsk,
        offer_sdp: &str,
        token: Option<&str>,
    ) -> Result<(), ServerMsg> {
        let JoinAsk {
            room,
            mut name,
            mut role,
            via,
        } = asked;
        validate_name("room", &room).map_err(|e| ServerMsg::error("bad-room", e.to_string()))?;
        let mut identity = None;
        if let Some(secret) = &self.cfg.auth_secret {
            let claims = crate::auth::verify(secret, token, &room)
                .map_err(|e| ServerMsg::error(e.code(), e.to_string()))?;
            tracing::debug!(room = %room, identity = %claims.sub, "join token accepted");
            // The token's role wins over the one the join asks for.
            if let Some(r) = claims.role {
                role = r;
            }
            identity = Some(claims.sub);
        }
        // Sessions the server opens carry no name: the token's identity,
        // else `whip-<n>`, `whep-<n>`, `rtmp-<n>`.
        if via != Via::Ws && name.is_empty() {
            name = identity
                .filter(|i| validate_name("name", i).is_ok())
                .unwrap_or_else(|| format!("{}-{}", via.as_str(), self.next_join));
        }
        // Sessions the server opens have their role from their kind.
        match via {
            Via::Ws => {}
            Via::Whip | Via::Rtmp | Via::Playback => role = Role::Participant,
            Via::Whep { .. } => role = Role::Viewer,
        }
        validate_name("name", &name).map_err(|e| ServerMsg::error("bad-name", e.to_string()))?;
        let offer = sdp::parse(offer_sdp).map_err(|e| ServerMsg::error(e.code(), e.to_string()))?;
        sdp::validate_offer(&offer).map_err(|e| ServerMsg::error(e.code(), e.to_string()))?;
        let limits = self.cfg.limits;
        let publishing = offer.media.iter().filter(|m| m.publishes()).count();
        if role == Role::Viewer && publishing > 0 {
            return Err(ServerMsg::error(
                "viewer-cannot-publish",
                format!(
                    "a viewer receives only, but the offer sends {publishing} track(s): \
                     make its transceivers recvonly, or join as a participant"
                ),
            ));
        }
        if matches!(via, Via::Whip | Via::Rtmp | Via::Playback) && publishing == 0 {
            return Err(ServerMsg::error(
                "nothing-to-publish",
                "the offer sends no audio or video track with a codec we forward \
                 (Opus, VP8, VP9, AV1, H264 packetization-mode=1)",
            ));
        }
        if publishing > limits.producers_per_participant {
            return Err(ServerMsg::error(
                "too-many-tracks",
                format!(
                    "the offer sends {publishing} tracks; at most {} are allowed",
                    limits.producers_per_participant
                ),
            ));
        }
        // A full node sends the client to one with room (`redirect`).
        if let Some(c) = &self.ctx.cluster
            && !c.has_room_for(1)
            && let Some(node) = c.node_with_room(1)
        {
            tracing::info!(room = %room, node = %node.id, "node full: join redirected");
            return Err(ServerMsg::Redirect { url: node.url });
        }
        if !self.rooms.contains_key(&room) {
            self.open_room(&room)?;
        }
        let entry = self
            .rooms
            .get_mut(&room)
            .ok_or_else(|| ServerMsg::error("server-error", "the room vanished while joining"))?;
        let conn_id = conn.id();
        let join = self.next_join;
        let msg = RoomMsg::Join {
            conn,
            join,
            name,
            role,
            via,
            offer: Box::new(offer),
        };
        if entry.tx.try_send(msg).is_err() {
            return Err(ServerMsg::error(
                "room-busy",
                format!("room {room:?} is not keeping up; try again in a few seconds"),
            ));
        }
        entry.joins_sent += 1;
        self.next_join += 1;
        if let Some(c) = self.conns.get_mut(&conn_id) {
            c.room = Some((room, join));
        }
        Ok(())
    }

    pub(super) fn open_room(&mut self, name: &str) -> Result<(), ServerMsg> {
        let Some(worker) = self.least_loaded_worker() else {
            return Err(ServerMsg::error(
                "no-capacity",
                format!(
                    "every worker hosts its maximum of {} rooms or has failed; try again later",
                    self.cfg.limits.rooms_per_worker
                ),
            ));
        };
        let router = RouterId(self.ctx.next_router.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = mpsc::channel(ROOM_QUEUE);
        let count = Arc::new(AtomicUsize::new(0));
        let room = Room::new(
            name.to_string(),
            router,
            self.workers[worker].r.clone(),
            count.clone(),
            self.ctx.clone(),
        );
        tokio::spawn(room.run(rx));
        self.by_router.insert(router, name.to_string());
        self.rooms.insert(
            name.to_string(),
            RoomEntry {
                routers: vec![(router, worker)],
                tx,
                joins_sent: 0,
                view: RoomView {
                    name: name.to_string(),
                    worker,
                    participants: count,
                    counters: Vec::new(),
                },
            },
        );
        self.update_registry();
        Ok(())
    }

    /// Forgets an idle room, unless a join is on its way to it.
    pub(super) fn on_room_idle(&mut self, router: RouterId, joins_seen: u64) {
        let Some(name) = self.by_router.get(&router) else {
            return;
        };
        let Some(entry) = self.rooms.get(name) else {
            return;
        };
        if entry.joins_sent != joins_seen {
            return;
        }
        let name = name.clone();
        if let Some(entry) = self.rooms.remove(&name) {
            for (r, _) in &entry.routers {
                self.by_router.remove(r);
            }
            deliver(&entry.tx, RoomMsg::Close);
        }
        self.update_registry();
    }
}
