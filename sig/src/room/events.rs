//! Events of the room's router (connections, closes, the dominant speaker,
//! audio levels, source layers), and failing the room.

use sfu_core::router::RouterEvent;

use super::*;
use crate::conn::Broadcast;

impl Room {
    pub(super) async fn on_core(&mut self, ev: Event) {
        let Event::Router { router, event } = ev else {
            tracing::debug!(room = %self.name, event = ?ev, "core event");
            return;
        };
        // Home holds the publishers' own producers: the speaker, levels
        // and source layers are its. The other routers' are of mirrors.
        let from_home = self.home() == Some(router);
        match event {
            RouterEvent::TransportConnected(transport) => {
                tracing::debug!(room = %self.name, %transport, "transport connected");
            }
            // What a mirror's consumers need goes back to home's pipe
            // consumers, and from there to the publisher.
            RouterEvent::SourceLayers(mirror, active) if !from_home => {
                self.mirror_layers(router, mirror, &active);
            }
            RouterEvent::DominantSpeaker(_) | RouterEvent::AudioLevels(_) if !from_home => {}
            RouterEvent::DominantSpeaker(producer) => {
                // A publisher here, or on another node (its mirror).
                let Some(pid) = self.publisher_of(producer) else {
                    return;
                };
                if self.speaker == Some(pid) {
                    return;
                }
                self.speaker = Some(pid);
                tracing::debug!(room = %self.name, participant = pid, "dominant speaker");
                let msg = Broadcast::new(&ServerMsg::Speaker {
                    id: format!("p{pid}"),
                });
                for p in self.participants.iter() {
                    msg.send_to(&p.conn);
                }
            }
            RouterEvent::SourceLayers(producer, active) => {
                let Some((p, t)) = self.participants.participants().find_map(|p| {
                    p.published
                        .iter()
                        .find(|t| t.producer == producer)
                        .map(|t| (p, t))
                }) else {
                    return;
                };
                let active: std::collections::BTreeMap<String, bool> =
                    t.rids.iter().cloned().zip(active).collect();
                tracing::debug!(room = %self.name, participant = p.id, mid = %t.mid, ?active, "source layers");
                p.conn.send(&ServerMsg::SourceLayers {
                    mid: t.mid.clone(),
                    active,
                });
            }
            // A played-back file's video was asked for a keyframe: its
            // player jumps to the next one.
            RouterEvent::KeyframeRequested(producer) => {
                if let Some(p) = self
                    .participants
                    .participants()
                    .find(|p| p.published.iter().any(|t| t.producer == producer))
                    && !p.via.negotiates()
                {
                    p.conn.push(Outgoing::KeyframeRequest);
                }
            }
            // The Router opened its copy of a participant's data channel
            // to another: the receiver learns whose it is.
            RouterEvent::DataConsumerOpened {
                transport,
                stream,
                from,
            } => {
                let on = |t| {
                    self.participants
                        .iter()
                        .find(move |p| p.router == router && p.transport == t)
                };
                if let (Some(to), Some(sender)) = (on(transport), on(from)) {
                    to.conn.send(&ServerMsg::DataChannel {
                        id: stream,
                        from: format!("p{}", sender.id),
                    });
                }
            }
            RouterEvent::DataRateLimited(transport) => {
                if let Some(p) = self
                    .participants
                    .iter()
                    .find(|p| p.router == router && p.transport == transport)
                {
                    let d = self.ctx.cfg.data_channels;
                    tracing::info!(room = %self.name, participant = p.id, "data-channel messages over the limit dropped");
                    p.conn.send(&ServerMsg::error(
                        "datachannel-rate-limited",
                        format!(
                            "data-channel messages over {} per second or {} bytes per second are dropped",
                            d.max_messages_per_sec, d.max_bytes_per_sec
                        ),
                    ));
                }
            }
            // A subscriber's video of someone stopped or comes again for
            // its bandwidth: its page shows why instead of a frozen frame.
            RouterEvent::VideoPaused(consumer, reason) => {
                self.tell_video_state(router, consumer, |id| ServerMsg::VideoPaused {
                    id,
                    reason: reason.as_str(),
                });
            }
            RouterEvent::VideoResumed(consumer) => {
                self.tell_video_state(router, consumer, |id| ServerMsg::VideoResumed { id });
            }
            RouterEvent::AudioLevels(levels) => {
                let levels: std::collections::BTreeMap<String, i8> = levels
                    .iter()
                    .filter_map(|(producer, level)| {
                        let p = self
                            .participants
                            .participants()
                            .find(|p| p.published.iter().any(|t| t.producer == *producer))?;
                        Some((format!("p{}", p.id), -(i8::try_from(*level).unwrap_or(127))))
                    })
                    .collect();
                // To participants only: every 300 ms to thousands of viewers
                // would cost more than it shows them.
                let msg = Broadcast::new(&ServerMsg::Levels { levels });
                for p in self.participants.participants() {
                    msg.send_to(&p.conn);
                }
            }
            RouterEvent::TransportClosed(transport, reason) => {
                if reason == CloseReason::Closed {
                    return;
                }
                // Ids are never reused, so this is the participant whose
                // transport closed, even if someone joined since.
                let Some(p) = self
                    .participants
                    .iter()
                    .find(|p| p.router == router && p.transport == transport)
                else {
                    return;
                };
                let (pid, conn) = (p.id, p.conn.clone());
                tracing::info!(room = %self.name, participant = pid, %reason, "media connection closed");
                conn.send(&ServerMsg::error(
                    "transport-closed",
                    format!("media connection closed: {reason}; join again"),
                ));
                self.remove_participant(pid, false).await;
            }
        }
    }

    /// Sends the subscriber of `consumer` (on `router`) `msg` of the msid
    /// stream it forwards.
    fn tell_video_state(
        &self,
        router: RouterId,
        consumer: ConsumerId,
        msg: impl FnOnce(String) -> ServerMsg,
    ) {
        let Some((p, t)) = self
            .participants
            .iter()
            .filter(|p| p.router == router)
            .find_map(|p| Some((p, p.neg.live_tracks().find(|t| t.consumer == consumer)?)))
        else {
            return;
        };
        let msg = msg(t.stream_id());
        tracing::debug!(room = %self.name, participant = p.id, ?msg, "video state");
        p.conn.send(&msg);
    }

    /// The router or its worker failed: everyone, and every join still
    /// queued, gets `room-failed`.
    pub(super) async fn fail_all(&mut self, rx: &mut mpsc::Receiver<RoomMsg>) {
        let failed = ServerMsg::error(
            "room-failed",
            "the server hit an internal error in this room; join again",
        );
        for p in std::mem::take(&mut self.participants) {
            p.conn.send(&failed);
            self.tell_hub(RoomNotice::Left {
                conn: p.conn.id(),
                join: p.join,
            });
            if !p.via.negotiates() {
                p.conn.close();
            }
        }
        self.set_count();
        self.stop_recordings();
        rx.close();
        while let Ok(m) = rx.try_recv() {
            match m {
                RoomMsg::Join { conn, join, .. } => {
                    conn.send(&failed);
                    self.tell_hub(RoomNotice::Left {
                        conn: conn.id(),
                        join,
                    });
                }
                RoomMsg::Shutdown { done } => {
                    let _ = done.send(());
                }
                _ => {}
            }
        }
        tracing::warn!(room = %self.name, "room failed with its worker");
    }
}
