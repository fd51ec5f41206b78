//! A WHEP viewer's one answer (draft-ietf-wish-whep §4): each receive-only
//! m-section of its offer carries one track of the room, chosen when it
//! joins, and the session is never renegotiated.

use super::*;

impl Room {
    /// Answers `offer`'s m-sections for a WHEP viewer on `transport` of
    /// `router`: each audio or video section that receives gets the next
    /// track of its kind in a codec it offers, of `participant` when given,
    /// else of the room's publishers in join order (here, then on other
    /// nodes), cameras before screens as they were published. The
    /// consumers are created running. Returns the answer's m-sections and
    /// the tracks carried, by mid.
    ///
    /// Errors (the transport is the caller's to close): `not-found` when
    /// `participant` is not in the room, `nothing-to-watch` when no section
    /// got a track, `server-error` when the worker refused a consumer.
    pub(super) async fn whep_sections(
        &mut self,
        router: RouterId,
        transport: TransportId,
        offer: &PeerSdp,
        participant: Option<u64>,
        neg: &mut Negotiation,
    ) -> Result<Vec<LocalMedia>, Fail> {
        let publishers = match participant {
            Some(p) if self.participants.contains(p) || self.remote_publishers().contains(&p) => {
                vec![p]
            }
            Some(p) => {
                return Err(Fail(ServerMsg::error(
                    "not-found",
                    format!("room {:?} has no participant p{p}", self.name),
                )));
            }
            None => {
                let mut all: Vec<u64> = self.participants.participants().map(|p| p.id).collect();
                all.extend(self.remote_publishers());
                all
            }
        };
        let mut candidates: Vec<(u64, Track)> = Vec::new();
        for p in publishers {
            candidates.extend(self.tracks_of(p).into_iter().map(|t| (p, t)));
        }
        let (Some(home), Some(worker)) =
            (self.home(), self.shard(router).map(|s| s.worker.clone()))
        else {
            return Err(Fail(ServerMsg::error(
                "server-error",
                "the room's router vanished",
            )));
        };
        let mut media = Vec::with_capacity(offer.media.len());
        let mut carried = 0;
        for m in &offer.media {
            let wanted = m
                .kind
                .filter(|_| !m.rejected && m.direction.receives() && !m.direction.sends());
            let pick = wanted.and_then(|kind| {
                candidates.iter().enumerate().find_map(|(i, (_, t))| {
                    let c = m.matching_codec(&t.codec).filter(|_| t.kind == kind)?;
                    Some((i, c.clone()))
                })
            });
            let Some((i, codec)) = pick else {
                media.push(LocalMedia::closed(&m.mid, m.kind));
                continue;
            };
            let (publisher, track) = candidates.remove(i);
            let Some(local) = Self::producer_on(&track, home, router) else {
                media.push(LocalMedia::closed(&m.mid, m.kind));
                continue;
            };
            // RTX only when the offer has it for this codec: an answer
            // cannot add payload types.
            let rtx = m
                .rtx_for(codec.pt)
                .filter(|_| track.kind == MediaKind::Video)
                .map(|c| (c.clone(), rand::random::<u32>() | 1));
            let ssrc = rand::random::<u32>() | 1;
            let answered = neg.offered_for(track.kind, &codec, rtx.is_some());
            let params = ConsumerParams {
                transport,
                producer: local,
                ssrc: Ssrc(ssrc),
                mid: Mid::new(&m.mid),
                extensions: answered.extensions,
                pt_map: vec![(Pt(track.codec.pt), Pt(codec.pt))],
                paused: false,
                rtx: rtx.as_ref().map(|(c, ssrc)| (Ssrc(*ssrc), Pt(c.pt))),
            };
            let consumer = call(&worker, |reply| Command::CreateConsumer {
                router,
                params,
                reply,
            })
            .await?;
            let out = OutTrack {
                producer: track.producer,
                consumer,
                publisher,
                kind: track.kind,
                codec,
                ssrc,
                rtx,
                screen: track.screen,
            };
            media.push(neg.carry_answered(&m.mid, out));
            carried += 1;
        }
        if carried == 0 {
            return Err(Fail(ServerMsg::error(
                "nothing-to-watch",
                format!(
                    "room {:?} has no track the offer can receive: no one publishes yet, \
                     or not in a codec the offer lists",
                    self.name
                ),
            )));
        }
        Ok(media)
    }
}
