//! The client's own offers (docs/signaling.md, flow 5): `offer-request`, the
//! grant, and the offer that adds, recycles or stops its m-sections (a screen share).

use super::*;

impl Room {
    /// `offer-request`: grant it now, or once the outstanding update is
    /// answered ([`Negotiation::request_offer`]).
    pub(super) fn on_offer_request(&mut self, conn: &ConnHandle) {
        let Some(pid) = self.pid_of(conn.id()) else {
            conn.send(&ServerMsg::error("not-joined", "join a room first"));
            return;
        };
        let timeout = self.ctx.cfg.offer_timeout;
        let Some(i) = self.idx(pid) else { return };
        if self.participants[i].role == Role::Viewer {
            conn.send(&viewer_cannot_publish("offer"));
            return;
        }
        if self.participants[i]
            .neg
            .request_offer(Instant::now(), timeout)
        {
            conn.send(&ServerMsg::OfferGranted);
        }
        self.watch_deadline(pid);
    }

    /// The client's own offer (after `offer-granted`): publishes its new
    /// m-sections, closes the producers of those it stopped, answers with
    /// `offer-answer`, and subscribes everyone else to the new tracks.
    pub(super) async fn on_offer(&mut self, conn: &ConnHandle, offer_sdp: &str, screen: &[String]) {
        let Some(pid) = self.pid_of(conn.id()) else {
            conn.send(&ServerMsg::error("not-joined", "join a room first"));
            return;
        };
        let Some(i) = self.idx(pid) else { return };
        if !self.participants[i].neg.granted() {
            conn.send(&ServerMsg::error(
                "offer-not-granted",
                crate::negotiation::OfferError::NotGranted.to_string(),
            ));
            return;
        }
        let checked = sdp::parse(offer_sdp)
            .map_err(|e| ServerMsg::error(e.code(), format!("bad offer: {e}")))
            .and_then(|offer| {
                let p = &self.participants[i];
                let new = p
                    .neg
                    .check_client_offer(&offer)
                    .map_err(|e| ServerMsg::error("offer-refused", e.to_string()))?;
                let sending = new.iter().filter(|&&j| offer.media[j].publishes()).count();
                let max = self.ctx.cfg.limits.producers_per_participant;
                if p.published.len() + sending > max {
                    return Err(ServerMsg::error(
                        "too-many-tracks",
                        format!("a participant may publish at most {max} tracks"),
                    ));
                }
                Ok((offer, new))
            });
        let (offer, new) = match checked {
            Ok(x) => x,
            Err(m) => {
                tracing::info!(room = %self.name, participant = pid, error = ?m, "client offer refused");
                conn.send(&m);
                self.participants[i].neg.end_grant();
                self.negotiate(pid);
                return;
            }
        };
        let transport = self.participants[i].transport;
        let mid_ext_id = offer
            .media
            .iter()
            .find_map(|m| m.extensions.get(Extension::Mid));
        let router = self.participants[i].router;
        let mut published = Vec::new();
        let mut tracks = Vec::new();
        for j in new {
            let m = &offer.media[j];
            match self
                .publish_section(
                    router,
                    transport,
                    m,
                    mid_ext_id,
                    screen.contains(&m.mid),
                    false,
                )
                .await
            {
                Ok((media, track)) => {
                    published.push((j, media, track.as_ref().map(|t| t.producer)));
                    tracks.extend(track);
                }
                Err(Fail(msg)) => {
                    for t in &tracks {
                        self.close_track(router, t);
                    }
                    conn.send(&msg);
                    if let Some(i) = self.idx(pid) {
                        self.participants[i].neg.end_grant();
                    }
                    self.negotiate(pid);
                    return;
                }
            }
        }
        let Some(i) = self.idx(pid) else { return };
        let p = &mut self.participants[i];
        let outcome = p.neg.apply_client_offer(&offer, published);
        p.local.session_version += 1;
        let answer = sdp::write(&p.local, p.setup, &outcome.answer);
        conn.send(&ServerMsg::OfferAnswer { sdp: answer });
        let was_sharing = p.published.iter().any(|t| t.screen);
        let ended: Vec<Track> = p
            .published
            .iter()
            .filter(|t| outcome.ended.contains(&t.producer))
            .cloned()
            .collect();
        p.published.retain(|t| !outcome.ended.contains(&t.producer));
        let added = tracks.clone();
        p.published.extend(tracks);
        let sharing = p.published.iter().any(|t| t.screen);
        tracing::info!(
            room = %self.name,
            participant = pid,
            added = added.len(),
            ended = outcome.ended.len(),
            sharing,
            "client offer applied"
        );
        for t in &outcome.rejected {
            self.command(
                router,
                Command::CloseConsumer {
                    router,
                    consumer: t.consumer,
                },
            );
        }
        self.narrow(router, pid, &outcome.narrowed);
        for t in &ended {
            self.close_track(router, t);
        }
        let (_, ended_ids) = self.local_ids(pid, &ended);
        self.relay_gone(None, ended_ids, Vec::new());
        self.relay_published(pid, &added).await;
        self.record_tracks(pid).await;
        for other in self.participants.others(pid) {
            if let Some(j) = self.idx(other) {
                for producer in &outcome.ended {
                    // The data plane closed its consumers with it.
                    self.participants[j].neg.remove_producer(*producer);
                }
            }
            for t in &added {
                self.add_consumer(other, pid, t).await;
            }
            self.negotiate(other);
        }
        if sharing != was_sharing
            && let Some(p) = self.participants.get(pid)
        {
            let participant = roster::info(p);
            self.queue_delta(Instant::now(), Delta::ParticipantUpdated { participant });
        }
        self.negotiate(pid);
    }
}
