//! Subscribing: every other participant's tracks become Consumers on this
//! participant's transport, offered in `update`s (sans-IO state in
//! `crate::negotiation`); answers, failed updates and their timeouts.

use super::*;

impl Room {
    /// Creates paused consumers on `sub` for every track of `publisher`.
    pub(super) async fn subscribe_all(&mut self, sub: u64, publisher: u64) {
        let tracks = self.tracks_of(publisher);
        for t in &tracks {
            self.add_consumer(sub, publisher, t).await;
        }
    }

    /// Creates a paused consumer on `sub` of `publisher`'s `track`, to go
    /// out in `sub`'s next update.
    pub(super) async fn add_consumer(&mut self, sub: u64, publisher: u64, track: &Track) {
        let Track {
            producer,
            kind,
            ref codec,
            screen,
            ..
        } = *track;
        let Some(i) = self.idx(sub) else { return };
        // Only the WebSocket protocol renegotiates: WHIP and WHEP sessions
        // keep what their one answer carried. A data-only client gets no
        // media.
        if !self.participants[i].via.negotiates() || !self.participants[i].neg.takes_media() {
            return;
        }
        let router = self.participants[i].router;
        let Some(home) = self.home() else { return };
        // On another Router than home: the track's mirror there.
        let Some((worker, local)) = self
            .shard(router)
            .map(|s| s.worker.clone())
            .zip(Self::producer_on(track, home, router))
        else {
            tracing::warn!(room = %self.name, participant = sub, %router, "a track is not piped to this participant's router; not sent");
            return;
        };
        let publisher_name = self.name_of(publisher);
        let max = self.ctx.cfg.limits.consumers_per_transport;
        let s = &mut self.participants[i];
        if s.neg.declined(producer) {
            return;
        }
        if s.neg.receiving() >= max {
            tracing::warn!(participant = sub, max, "consumer limit reached");
            s.conn.send(&ServerMsg::error(
                "consumer-limit",
                format!(
                    "you receive the maximum of {max} tracks; a {} track of {publisher_name:?} is not sent to you",
                    kind.as_str()
                ),
            ));
            return;
        }
        // Offer the track with its own codec; the subscriber's answer decides.
        let sub_codec = s.neg.codec_for(codec);
        // Video is retransmitted as RTX on a stream of its own (RFC 4588).
        let rtx = (kind == MediaKind::Video)
            .then(|| (s.neg.rtx_codec_for(&sub_codec), rand::random::<u32>() | 1));
        let mid = s.neg.allocate_mid();
        let ssrc: u32 = rand::random::<u32>() | 1;
        // The extensions the update offer declares for this track.
        let ext = s.neg.offered_for(kind, &sub_codec, rtx.is_some());
        let params = ConsumerParams {
            transport: s.transport,
            producer: local,
            ssrc: Ssrc(ssrc),
            mid: Mid::new(&mid),
            extensions: ext.extensions,
            pt_map: vec![(Pt(codec.pt), Pt(sub_codec.pt))],
            paused: true,
            rtx: rtx.as_ref().map(|(c, ssrc)| (Ssrc(*ssrc), Pt(c.pt))),
        };
        let consumer = match call(&worker, |reply| Command::CreateConsumer {
            router,
            params,
            reply,
        })
        .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(participant = sub, error = %e, "consumer not created");
                if let Some(i) = self.idx(sub) {
                    self.participants[i].conn.send(&ServerMsg::error(
                        "server-error",
                        format!(
                            "the {} track of {publisher_name:?} could not be set up for you: {e}",
                            kind.as_str()
                        ),
                    ));
                }
                return;
            }
        };
        let Some(i) = self.idx(sub) else { return };
        self.participants[i].neg.add(
            mid,
            OutTrack {
                producer,
                consumer,
                publisher,
                kind,
                codec: sub_codec,
                ssrc,
                rtx,
                screen,
            },
        );
    }

    /// Sends an `update` offer if the participant's tracks changed and no
    /// offer is awaiting an answer.
    pub(super) fn negotiate(&mut self, pid: u64) {
        let timeout = self.ctx.cfg.offer_timeout;
        let Some(i) = self.idx(pid) else { return };
        let p = &mut self.participants[i];
        if !p.via.negotiates() {
            return;
        }
        if p.neg.take_pending_grant(Instant::now(), timeout) {
            p.conn.send(&ServerMsg::OfferGranted);
            self.watch_deadline(pid);
            return;
        }
        if !p.neg.needs_offer() {
            return;
        }
        let media = p.neg.make_offer(Instant::now(), timeout);
        p.local.session_version += 1;
        let offer = sdp::write(&p.local, "actpass", &media);
        p.conn.send(&ServerMsg::Update { sdp: offer });
        self.watch_deadline(pid);
    }

    pub(super) async fn on_answer(&mut self, conn: &ConnHandle, answer_sdp: &str) {
        let Some(pid) = self.pid_of(conn.id()) else {
            conn.send(&ServerMsg::error("not-joined", "join a room first"));
            return;
        };
        let Some(i) = self.idx(pid) else { return };
        let p = &mut self.participants[i];
        if !p.neg.waiting() {
            conn.send(&ServerMsg::error(
                "unexpected-answer",
                AnswerError::NotWaiting.to_string(),
            ));
            return;
        }
        let answer = match sdp::parse(answer_sdp) {
            Ok(a) => a,
            Err(e) => {
                conn.send(&ServerMsg::error(e.code(), format!("bad answer: {e}")));
                self.failed_update(pid, "the answer does not parse").await;
                return;
            }
        };
        let outcome = match p.neg.on_answer(&answer.media) {
            Ok(o) => o,
            Err(e) => {
                conn.send(&ServerMsg::error("unexpected-answer", e.to_string()));
                return;
            }
        };
        let p = &self.participants[i];
        let router = p.router;
        let resume: Vec<_> = outcome
            .resume
            .into_iter()
            .filter(|c| {
                !p.neg.live_tracks().any(|t| {
                    t.consumer == *c
                        && t.kind == MediaKind::Video
                        && p.hidden.contains(&t.stream_id())
                })
            })
            .collect();
        // Consumers that just went live get the width their tile has.
        let sized: Vec<_> = p
            .neg
            .live_tracks()
            .filter(|t| t.kind == MediaKind::Video && resume.contains(&t.consumer))
            .filter_map(|t| p.widths.get(&t.stream_id()).map(|w| (t.consumer, *w)))
            .collect();
        for consumer in resume {
            self.command(
                router,
                Command::SetConsumerPaused {
                    router,
                    consumer,
                    paused: false,
                },
            );
        }
        for (consumer, width) in sized {
            self.command(
                router,
                Command::SetConsumerMaxWidth {
                    router,
                    consumer,
                    width: Some(width),
                },
            );
        }
        self.narrow(router, pid, &outcome.narrowed);
        for t in outcome.rejected {
            self.command(
                router,
                Command::CloseConsumer {
                    router,
                    consumer: t.consumer,
                },
            );
            let from = self
                .idx(t.publisher)
                .map(|j| self.participants[j].name.clone())
                .unwrap_or_default();
            tracing::info!(participant = pid, publisher = t.publisher, codec = %t.codec.name, "subscriber refused a track");
            conn.send(&ServerMsg::error(
                "track-rejected",
                format!(
                    "your answer refused the {} track of {from:?} ({}/{}): it is not sent to you",
                    t.kind.as_str(),
                    t.codec.name,
                    t.codec.clock_rate
                ),
            ));
        }
        self.negotiate(pid);
    }

    pub(super) async fn on_update_failed(&mut self, conn: &ConnHandle, message: &str) {
        let Some(pid) = self.pid_of(conn.id()) else {
            conn.send(&ServerMsg::error("not-joined", "join a room first"));
            return;
        };
        let waiting = self
            .idx(pid)
            .is_some_and(|i| self.participants[i].neg.waiting());
        if !waiting {
            conn.send(&ServerMsg::error(
                "unexpected-answer",
                AnswerError::NotWaiting.to_string(),
            ));
            return;
        }
        let reason: String = message.chars().take(1000).collect();
        tracing::warn!(room = %self.name, participant = pid, reason = %reason, "client could not apply an update");
        self.failed_update(pid, "the client could not apply it")
            .await;
    }

    /// The outstanding update of `pid` failed: offer again, or give up.
    pub(super) async fn failed_update(&mut self, pid: u64, why: &str) {
        let Some(i) = self.idx(pid) else { return };
        match self.participants[i].neg.on_failure() {
            AfterFailure::Retry => self.negotiate(pid),
            AfterFailure::GiveUp => {
                let conn = self.participants[i].conn.clone();
                tracing::warn!(room = %self.name, participant = pid, "negotiation failed repeatedly; participant removed");
                conn.send(&ServerMsg::error(
                    "negotiation-failed",
                    format!(
                        "{} updates in a row failed (last: {why}); you were removed from the room — join again",
                        crate::negotiation::MAX_FAILURES
                    ),
                ));
                self.remove_participant(pid, true).await;
            }
        }
    }

    pub(super) async fn on_timeouts(&mut self, now: Instant) {
        // The members whose deadline may have passed (the heap's due
        // entries), each once.
        let mut due_pids = Vec::new();
        while let Some(std::cmp::Reverse((at, pid))) = self.deadlines.peek().copied() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            due_pids.push(pid);
        }
        due_pids.sort_unstable();
        due_pids.dedup();
        let expired: Vec<u64> = due_pids
            .iter()
            .copied()
            .filter(|pid| {
                self.participants
                    .get(*pid)
                    .is_some_and(|p| p.neg.grant_expired(now))
            })
            .collect();
        for pid in expired {
            let Some(i) = self.idx(pid) else { continue };
            let p = &mut self.participants[i];
            p.neg.end_grant();
            let secs = self.ctx.cfg.offer_timeout.as_secs();
            p.conn.send(&ServerMsg::error(
                "offer-timeout",
                format!("no offer within {secs} s of offer-granted; send offer-request again"),
            ));
            self.negotiate(pid);
        }
        let due: Vec<u64> = due_pids
            .iter()
            .copied()
            .filter(|pid| {
                self.participants
                    .get(*pid)
                    .is_some_and(|p| p.neg.handle_timeout(now))
            })
            .collect();
        for pid in due {
            let Some(i) = self.idx(pid) else { continue };
            let secs = self.ctx.cfg.offer_timeout.as_secs();
            self.participants[i].conn.send(&ServerMsg::error(
                "update-timeout",
                format!("no answer to the update within {secs} s; sending the current state again"),
            ));
            self.failed_update(pid, "no answer in time").await;
        }
    }
}
