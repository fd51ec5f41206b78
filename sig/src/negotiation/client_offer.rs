//! The client's own offers (docs/signaling.md, flow 5): the grant
//! (`offer-request`), and checking and applying an offer that adds,
//! recycles or stops its m-sections, with the answer to it.

use std::time::{Duration, Instant};

use super::*;

/// Why a client's offer was not taken. The client rolls it back; the
/// session stays as it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OfferError {
    /// The client offered without `offer-granted`.
    #[error("offer without offer-granted: send offer-request and wait for offer-granted")]
    NotGranted,
    /// New ICE credentials or a new certificate fingerprint.
    #[error("an offer may not restart ICE or change the DTLS fingerprint")]
    Restart,
    /// An m-section the session has is missing, moved or renamed.
    #[error("m-section {index} has mid {got:?}; the session has {want:?} there")]
    Mismatch {
        /// Index of the m-section.
        index: usize,
        /// The mid in the offer.
        got: String,
        /// The mid the session has there.
        want: String,
    },
    /// The offer has fewer m-sections than the session.
    #[error("the offer has {got} m-sections; the session has {want}")]
    Missing {
        /// m-sections in the offer.
        got: usize,
        /// m-sections in the session.
        want: usize,
    },
    /// A new m-section reuses a mid of the session.
    #[error("the new m-section's mid {0:?} is already used in this session")]
    MidTaken(String),
}

/// What a client's offer changes, once the room published its new sections.
#[derive(Debug, Default)]
pub struct ClientOfferOutcome {
    /// The answer's m-sections, in the offer's order.
    pub answer: Vec<LocalMedia>,
    /// Producers of sections the client stopped sending on: close them.
    pub ended: Vec<ProducerId>,
    /// Tracks the client stopped receiving (it stopped their transceivers):
    /// close their consumers. They are not offered to it again.
    pub rejected: Vec<OutTrack>,
    /// Live consumers whose section in the offer leaves out something we
    /// offered before (the RTX codec, a header extension): narrow them on
    /// the data plane, as for an answer.
    pub narrowed: Vec<(ConsumerId, Answered)>,
}

impl Negotiation {
    /// The client asks to send an offer of its own (`offer-request`).
    /// Returns true when it may now (send `offer-granted`); else it may once
    /// the outstanding update is answered or failed
    /// ([`Self::take_pending_grant`]). Until its offer arrives, or `now +
    /// timeout`, no update goes out, so offers never cross (no glare).
    pub fn request_offer(&mut self, now: Instant, timeout: Duration) -> bool {
        match self.grant {
            Grant::Given(_) => {
                self.grant = Grant::Given(now + timeout);
                true
            }
            _ if self.in_flight.is_some() => {
                self.grant = Grant::Pending;
                false
            }
            _ => {
                self.grant = Grant::Given(now + timeout);
                true
            }
        }
    }

    /// After an update was answered or failed: true when a request to offer
    /// waited for it and is granted now (send `offer-granted`).
    pub fn take_pending_grant(&mut self, now: Instant, timeout: Duration) -> bool {
        if self.grant == Grant::Pending && self.in_flight.is_none() {
            self.grant = Grant::Given(now + timeout);
            return true;
        }
        false
    }

    /// True when the client may offer now.
    pub fn granted(&self) -> bool {
        matches!(self.grant, Grant::Given(_))
    }

    /// True when a grant went unused until its deadline: call
    /// [`Self::end_grant`] then.
    pub fn grant_expired(&self, now: Instant) -> bool {
        matches!(self.grant, Grant::Given(d) if now >= d)
    }

    /// Withdraws the grant (it expired, or the client's offer was refused);
    /// updates may go out again.
    pub fn end_grant(&mut self) {
        self.grant = Grant::None;
    }

    /// Checks a client's offer against the session (it must have been
    /// granted; the same ICE credentials and fingerprint; every m-section
    /// of the session in place, a closed one possibly recycled) and returns
    /// the indices of its new m-sections: those after the session's, and
    /// closed ones it recycled (RFC 8829 §5.2.2). Changes nothing.
    ///
    /// Errors: [`OfferError`]; the room then calls [`Self::end_grant`].
    pub fn check_client_offer(&self, offer: &PeerSdp) -> Result<Vec<usize>, OfferError> {
        if !self.granted() {
            return Err(OfferError::NotGranted);
        }
        if (&offer.ice_ufrag, &offer.ice_pwd, offer.fingerprint)
            != (&self.ice.0, &self.ice.1, self.ice.2)
        {
            return Err(OfferError::Restart);
        }
        let own = self.own.len();
        let known = own + self.client_view.len();
        if offer.media.len() < known {
            return Err(OfferError::Missing {
                got: offer.media.len(),
                want: known,
            });
        }
        let mut new = Vec::new();
        for (i, m) in offer.media.iter().enumerate() {
            let want = if i < own {
                Some((self.own[i].mid.as_str(), true))
            } else {
                self.client_view
                    .get(i - own)
                    .map(|(mid, open)| (mid.as_str(), *open))
            };
            match want {
                Some((mid, _)) if m.mid == mid => {}
                // A closed m-section the client recycled for a new one.
                Some((_, false)) => new.push(i),
                Some((mid, true)) => {
                    return Err(OfferError::Mismatch {
                        index: i,
                        got: m.mid.clone(),
                        want: mid.to_string(),
                    });
                }
                None => new.push(i),
            }
        }
        for &i in &new {
            let mid = &offer.media[i].mid;
            let taken = self.own.iter().any(|o| &o.mid == mid)
                || self.slots.iter().any(|s| &s.mid == mid)
                || new.iter().filter(|&&j| &offer.media[j].mid == mid).count() > 1;
            if taken {
                return Err(OfferError::MidTaken(mid.clone()));
            }
        }
        Ok(new)
    }

    /// Applies a client's offer that [`Self::check_client_offer`] took:
    /// `published` holds, for each new m-section (by index in the offer),
    /// its answer and the producer the room created for it (none when it
    /// does not send). Returns the answer and what to close, and ends the
    /// grant. Server tracks the client had not seen yet move after its new
    /// sections and go out in the next update.
    pub fn apply_client_offer(
        &mut self,
        offer: &PeerSdp,
        mut published: Vec<(usize, LocalMedia, Option<ProducerId>)>,
    ) -> ClientOfferOutcome {
        self.grant = Grant::None;
        self.failures = 0;
        let own = self.own.len();
        let mut out = ClientOfferOutcome::default();
        let seen = self.client_view.len().min(self.slots.len());
        let unseen = self.slots.split_off(seen);
        let mut moved = Vec::new();
        for c in offer.media.iter().flat_map(|m| &m.codecs) {
            self.pts.claim(c);
        }
        let rejected = |mid: &str, m: &MediaSection| LocalMedia::closed(mid, m.kind);
        for (i, m) in offer.media.iter().enumerate() {
            if i < own {
                if m.rejected {
                    self.own[i].rejected = true;
                }
                out.answer.push(self.own[i].clone());
                continue;
            }
            let new = published
                .iter()
                .position(|(j, _, _)| *j == i)
                .map(|k| published.swap_remove(k));
            if let Some((_, media, producer)) = new {
                let slot = Slot {
                    mid: m.mid.clone(),
                    kind: m.kind.unwrap_or(MediaKind::Video),
                    state: SlotState::Published,
                    track: None,
                    offered_once: true,
                    published: Some((media.clone(), producer)),
                };
                out.answer.push(media);
                match self.slots.get_mut(i - own) {
                    Some(s) => {
                        // A recycled closed slot; a track we had put in it
                        // moves to the end.
                        moved.extend(s.take_track());
                        *s = slot;
                    }
                    None => self.slots.push(slot),
                }
                continue;
            }
            let Some(s) = self.slots.get_mut(i - own) else {
                // Checked: every index past the session's is new.
                out.answer.push(rejected(&m.mid, m));
                continue;
            };
            let open = self.client_view.get(i - own).is_some_and(|(_, o)| *o);
            match s.state {
                SlotState::Published => {
                    let sending = !m.rejected && m.direction.sends();
                    match &s.published {
                        Some((media, _)) if sending => out.answer.push(media.clone()),
                        _ => {
                            if let Some((_, Some(p))) = s.published.take() {
                                out.ended.push(p);
                            }
                            s.state = SlotState::Free;
                            s.track = None;
                            out.answer.push(rejected(&m.mid, m));
                        }
                    }
                }
                SlotState::Live if !m.rejected && m.direction.receives() => {
                    // As our last offer had it, less what this offer leaves
                    // out: an answer names only extensions and codecs the
                    // offer has (RFC 8285 §7, RFC 3264 §6.1; Firefox
                    // refuses others).
                    out.answer.push(match &s.track {
                        Some(t) => {
                            let offered =
                                offered_for_track(&self.ext, s.kind, &t.codec, t.rtx.is_some());
                            let accepted = accepted_by(m, t, offered);
                            if accepted != offered {
                                out.narrowed.push((t.consumer, accepted));
                            }
                            Self::track_media(&s.mid, s.kind, t, accepted)
                        }
                        None => rejected(&m.mid, m),
                    });
                }
                _ if !open => {
                    // Closed for the client: stays closed; a track we put
                    // in it but did not offer yet moves to the end.
                    if s.state == SlotState::New {
                        moved.extend(s.take_track());
                    }
                    s.state = SlotState::Free;
                    out.answer.push(rejected(&m.mid, m));
                }
                _ => {
                    // Open for the client, but ending here (Closing), or
                    // refused by the client in its offer: closed now.
                    if let Some(t) = s.track.take() {
                        self.declined.insert(t.producer);
                        out.rejected.push(t);
                    }
                    s.state = SlotState::Free;
                    out.answer.push(rejected(&m.mid, m));
                }
            }
        }
        self.slots.extend(unseen);
        self.slots.extend(moved);
        self.client_view = out.answer[own..]
            .iter()
            .map(|m| (m.mid.clone(), !m.rejected))
            .collect();
        out
    }
}
