//! The negotiation state of one participant, sans-IO: which
//! m-sections the server added to its session, what the next `update` offer
//! holds, and what an answer accepted. Fed the time, track changes and the
//! client's answers; it returns what the room must do and never blocks.
//!
//! The session is the client's own m-sections (fixed at join) followed by
//! one slot per track it receives. A slot goes
//! `New → Offered → Live → Closing → ClosingOffered → Free`, and a `Free`
//! slot (closed with port 0 in an answered offer) is recycled for the next
//! track of the same kind under a new mid (RFC 8829 §5.2.2, "recycling"
//! m-sections), so the SDP stays bounded by the number of live tracks, not
//! by the history of the call.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use sfu_core::proto::rtp::{Extension, ExtensionMap};
use sfu_core::router::{Answered, MediaKind};
use sfu_core::{ConsumerId, ProducerId};

use crate::sdp::{Codec, Direction, LocalMedia, MediaSection, PeerSdp};

mod client_offer;
mod payload_types;
#[cfg(test)]
mod tests;

pub use client_offer::{ClientOfferOutcome, OfferError};
use payload_types::{PtTable, offered_for_track};

/// Consecutive failed updates (timeouts or `update-failed`) before the
/// server gives up on a participant.
pub const MAX_FAILURES: u32 = 3;

/// A track the participant receives, as carried by one slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutTrack {
    /// The producer forwarded.
    pub producer: ProducerId,
    /// The consumer that forwards it to this participant.
    pub consumer: ConsumerId,
    /// Participant id of the publisher (the msid stream is `p{publisher}`).
    pub publisher: u64,
    /// Audio or video.
    pub kind: MediaKind,
    /// The codec as offered to this participant (its payload type).
    pub codec: Codec,
    /// The SSRC the consumer sends with.
    pub ssrc: u32,
    /// Video: the RTX codec offered with `codec` and the RTX SSRC.
    pub rtx: Option<(Codec, u32)>,
    /// The publisher's screen share (its msid stream is `p{publisher}-screen`).
    pub screen: bool,
}

impl OutTrack {
    /// The msid stream id the subscriber sees: `p7` for a participant's
    /// camera and microphone, `p7-screen` for its screen share.
    pub fn stream_id(&self) -> String {
        stream_id(self.publisher, self.screen)
    }
}

/// The msid stream id of `publisher`'s tracks: `p7`, or `p7-screen` for
/// its screen share.
pub fn stream_id(publisher: u64, screen: bool) -> String {
    if screen {
        format!("p{publisher}-screen")
    } else {
        format!("p{publisher}")
    }
}

/// Where a slot is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotState {
    /// Carries a track not yet offered.
    New,
    /// Offered `sendonly` in the update awaiting an answer.
    Offered,
    /// Accepted by an answer; its consumer is resumed.
    Live,
    /// Its track ended or was refused; the next offer closes it (port 0).
    Closing,
    /// Closed in the update awaiting an answer.
    ClosingOffered,
    /// Closed in an answered update: may carry a new track under a new mid.
    Free,
    /// An m-section the client added in an offer of its own (a screen
    /// share): it publishes on it, and our offers keep it as answered.
    Published,
}

#[derive(Debug, Clone)]
struct Slot {
    mid: String,
    kind: MediaKind,
    state: SlotState,
    track: Option<OutTrack>,
    /// The client has seen an m-section at this index.
    offered_once: bool,
    /// For [`SlotState::Published`]: the section as answered, and the
    /// producer it feeds (none once the client stopped sending).
    published: Option<(LocalMedia, Option<ProducerId>)>,
}

impl Slot {
    /// Takes this slot's track, not yet offered, into a new slot under the
    /// same mid (to go at the end of the session).
    fn take_track(&mut self) -> Option<Slot> {
        let t = self.track.take()?;
        Some(Slot {
            mid: self.mid.clone(),
            kind: self.kind,
            state: SlotState::New,
            track: Some(t),
            offered_once: false,
            published: None,
        })
    }
}

/// Where a client's request to offer stands (`offer-request`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grant {
    None,
    /// Asked while an update was out: granted once it is answered.
    Pending,
    /// Granted: no update goes out until the client's offer arrives or
    /// this deadline passes.
    Given(Instant),
}

/// What an answer did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AnswerOutcome {
    /// Consumers whose m-section was accepted: resume them.
    pub resume: Vec<ConsumerId>,
    /// Tracks the answer refused (port 0, not receiving, or without the
    /// codec): close their consumers and tell the client. They are not
    /// offered to this participant again.
    pub rejected: Vec<OutTrack>,
    /// Accepted consumers whose answer left out something we offered (the
    /// RTX codec, a header extension): narrow them on the data plane.
    pub narrowed: Vec<(ConsumerId, Answered)>,
}

/// Why an answer was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// No update is awaiting an answer.
    #[error("no update offer is waiting for an answer")]
    NotWaiting,
    /// The answer does not have the offer's m-sections (an answer to an
    /// earlier update, or a broken one).
    #[error("the answer has {got} m-sections; the outstanding update has {want}")]
    Mismatch {
        /// m-sections in the answer.
        got: usize,
        /// m-sections in the offer.
        want: usize,
    },
}

/// After a failed update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Send the current state again.
    Retry,
    /// [`MAX_FAILURES`] in a row: remove the participant.
    GiveUp,
}

/// What the client's m-section `m` (its answer to our offer, or its own
/// offer) takes of `offered` for track `t`: the RTX codec if it lists its
/// payload type, and each header extension we offered that it names, with
/// its id (RFC 8285 §7: the answerer's ids stand in an answer, the
/// offerer's in an offer).
fn accepted_by(m: &MediaSection, t: &OutTrack, offered: Answered) -> Answered {
    Answered {
        rtx: offered.rtx
            && t.rtx
                .as_ref()
                .is_some_and(|(rtx, _)| m.codecs.iter().any(|c| c.pt == rtx.pt)),
        extensions: offered.extensions.restricted_to(&m.extensions),
    }
}

/// The negotiation state of one participant.
#[derive(Debug)]
pub struct Negotiation {
    own: Vec<LocalMedia>,
    client_media: Vec<MediaSection>,
    /// The session's header extension ids: for each, the first id the
    /// join offer gives it.
    ext: ExtensionMap,
    slots: Vec<Slot>,
    next_mid: u32,
    /// Deadline of the update awaiting an answer, and its m-section count.
    in_flight: Option<(Instant, usize)>,
    declined: HashSet<ProducerId>,
    failures: u32,
    retry: bool,
    pts: PtTable,
    /// The sections after the client's own as the client has them, by
    /// the last answer (its or ours): (mid, open).
    client_view: Vec<(String, bool)>,
    grant: Grant,
    /// The join offer's ICE ufrag and password and DTLS fingerprint.
    ice: (String, String, sfu_core::proto::dtls::Fingerprint),
}

impl Negotiation {
    /// The state after the join answer: `own` are the client's m-sections as
    /// answered; `offer` is the client's join offer (its codecs and the MID
    /// extension id it uses).
    pub fn new(own: Vec<LocalMedia>, offer: &PeerSdp) -> Self {
        let mut pts = PtTable::default();
        for c in offer.media.iter().flat_map(|m| &m.codecs) {
            pts.claim(c);
        }
        let mut ext: ExtensionMap = Extension::ALL
            .into_iter()
            .filter_map(|e| {
                let id = offer.media.iter().find_map(|m| m.extensions.get(e))?;
                Some((e, id))
            })
            .collect();
        // AV1's dependency descriptor for the tracks it receives, even when
        // its join offer did not name it (a viewer's offers only audio):
        // under an id that offer left free. Without it, AV1 with spatial
        // layers cannot be decoded.
        if !ext.has(Extension::DependencyDescriptor) {
            let used = offer.media.iter().fold(0u16, |u, m| u | m.ext_ids)
                | ext.iter().fold(0u16, |u, (_, id)| u | 1 << id);
            let free = (1..=14u8).find(|id| used & (1 << id) == 0);
            ext.set(Extension::DependencyDescriptor, free);
        }
        Self {
            own,
            client_media: offer.media.clone(),
            ext,
            slots: Vec::new(),
            next_mid: 1,
            in_flight: None,
            declined: HashSet::new(),
            failures: 0,
            retry: false,
            pts,
            client_view: Vec::new(),
            grant: Grant::None,
            ice: (
                offer.ice_ufrag.clone(),
                offer.ice_pwd.clone(),
                offer.fingerprint,
            ),
        }
    }

    /// The header extensions (ids from the client's join offer) that a
    /// track of `kind` in `codec` we send this participant carries, and
    /// whether it comes with RTX: the same that [`Self::make_offer`]
    /// declares for it.
    pub fn offered_for(&self, kind: MediaKind, codec: &Codec, rtx: bool) -> Answered {
        offered_for_track(&self.ext, kind, codec, rtx)
    }

    /// Whether this participant is offered media at all: its join offer
    /// had an audio or video m-section. An offer of data channels alone
    /// (a chat bot, a data-only client) is offered no tracks.
    pub fn takes_media(&self) -> bool {
        self.client_media.iter().any(|m| m.kind.is_some())
    }

    /// Tracks carried now (offered or live, not closing).
    pub fn receiving(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| {
                matches!(
                    s.state,
                    SlotState::New | SlotState::Offered | SlotState::Live
                )
            })
            .count()
    }

    /// m-sections in the session: the client's own plus every slot.
    pub fn section_count(&self) -> usize {
        self.own.len() + self.slots.len()
    }

    /// The tracks the participant receives and answered for.
    pub fn live_tracks(&self) -> impl Iterator<Item = &OutTrack> + '_ {
        self.slots
            .iter()
            .filter(|s| s.state == SlotState::Live)
            .filter_map(|s| s.track.as_ref())
    }

    /// True when this participant refused `producer` before: do not offer it again.
    pub fn declined(&self, producer: ProducerId) -> bool {
        self.declined.contains(&producer)
    }

    /// The codec to offer this participant for a track sent with `codec`:
    /// the client's own entry for it when its join offer had one (its payload
    /// type and parameters), else `codec` under a payload type free in this
    /// session. The client's answer decides whether it can receive it.
    pub fn codec_for(&mut self, codec: &Codec) -> Codec {
        if let Some(c) = self
            .client_media
            .iter()
            .find_map(|m| m.matching_codec(codec))
        {
            return c.clone();
        }
        self.pts.assign(codec)
    }

    /// The RTX codec to offer with `codec` (as returned by
    /// [`Self::codec_for`]): the client's own RTX entry for that payload type
    /// when its join offer had one, else `rtx/90000` with `apt=<codec pt>`
    /// under a payload type free in this session.
    pub fn rtx_codec_for(&mut self, codec: &Codec) -> Codec {
        if let Some(c) = self.client_media.iter().find_map(|m| {
            m.codecs
                .iter()
                .any(|c| c.pt == codec.pt && c.name.eq_ignore_ascii_case(&codec.name))
                .then(|| m.rtx_for(codec.pt))
                .flatten()
        }) {
            return c.clone();
        }
        self.pts.assign(&Codec {
            pt: codec.pt.wrapping_add(1).min(127),
            name: "rtx".into(),
            clock_rate: 90_000,
            channels: None,
            fmtp: Some(format!("apt={}", codec.pt)),
        })
    }

    /// Carries `track` on the client's own m-section `mid`, already
    /// answered (a WHEP session: its offer's receive-only sections are
    /// answered `sendonly` with the room's tracks). The track is live at
    /// once. Returns the section of our answer.
    pub fn carry_answered(&mut self, mid: &str, track: OutTrack) -> LocalMedia {
        let kind = track.kind;
        let offered = offered_for_track(&self.ext, kind, &track.codec, track.rtx.is_some());
        let media = Self::track_media(mid, kind, &track, offered);
        self.slots.push(Slot {
            mid: mid.to_string(),
            kind,
            state: SlotState::Live,
            track: Some(track),
            offered_once: true,
            published: None,
        });
        media
    }

    /// Sets the client's own m-sections as answered at join (for a session
    /// built before its answer was known).
    pub fn set_own(&mut self, own: Vec<LocalMedia>) {
        self.own = own;
    }

    /// A mid never used in this session (`s1`, `s2`, …), for a new track.
    pub fn allocate_mid(&mut self) -> String {
        let mid = format!("s{}", self.next_mid);
        self.next_mid += 1;
        mid
    }

    /// Adds `track` under `mid` (from [`Self::allocate_mid`]): in a free slot
    /// of the same kind when there is one, else in a new slot at the end.
    /// It goes out in the next offer.
    pub fn add(&mut self, mid: String, track: OutTrack) {
        let kind = track.kind;
        let slot = Slot {
            mid,
            kind,
            state: SlotState::New,
            track: Some(track),
            offered_once: false,
            published: None,
        };
        match self
            .slots
            .iter_mut()
            .find(|s| s.state == SlotState::Free && s.kind == kind)
        {
            Some(s) => {
                *s = Slot {
                    offered_once: true,
                    ..slot
                }
            }
            None => self.slots.push(slot),
        }
    }

    /// Stops carrying every track of `publisher` (it left; the data plane
    /// removed the consumers with its producers). Returns how many.
    pub fn remove_publisher(&mut self, publisher: u64) -> usize {
        let mut n = 0;
        for i in (0..self.slots.len()).rev() {
            if self.slots[i]
                .track
                .as_ref()
                .is_some_and(|t| t.publisher == publisher)
            {
                self.end_slot(i);
                n += 1;
            }
        }
        n
    }

    fn end_slot(&mut self, i: usize) {
        let last = i + 1 == self.slots.len();
        let s = &mut self.slots[i];
        match s.state {
            SlotState::New if !s.offered_once && last => {
                // Never seen by the client: it can simply go.
                self.slots.pop();
            }
            SlotState::New | SlotState::Offered | SlotState::Live => {
                s.state = SlotState::Closing;
                s.track = None;
            }
            SlotState::Closing
            | SlotState::ClosingOffered
            | SlotState::Free
            | SlotState::Published => {}
        }
    }

    /// Stops carrying the track of `producer` (its publisher stopped it;
    /// the data plane removed its consumers). Returns whether one was.
    pub fn remove_producer(&mut self, producer: ProducerId) -> bool {
        let Some(i) = self
            .slots
            .iter()
            .position(|s| s.track.as_ref().is_some_and(|t| t.producer == producer))
        else {
            return false;
        };
        self.end_slot(i);
        true
    }

    /// True when an update should go out now: something changed (or the
    /// last one failed) and no update awaits an answer.
    pub fn needs_offer(&self) -> bool {
        self.in_flight.is_none()
            && self.grant == Grant::None
            && (self.retry
                || self
                    .slots
                    .iter()
                    .any(|s| matches!(s.state, SlotState::New | SlotState::Closing)))
    }

    /// The m-sections of the next update offer (the client's own first),
    /// which then awaits an answer until `now + timeout`.
    pub fn make_offer(&mut self, now: Instant, timeout: Duration) -> Vec<LocalMedia> {
        let mut media = self.own.clone();
        let ext = self.ext;
        for s in &mut self.slots {
            s.state = match s.state {
                SlotState::New => SlotState::Offered,
                SlotState::Closing => SlotState::ClosingOffered,
                other => other,
            };
            s.offered_once = true;
            if let Some((m, _)) = &s.published {
                media.push(m.clone());
                continue;
            }
            media.push(match &s.track {
                Some(t) => Self::track_media(
                    &s.mid,
                    s.kind,
                    t,
                    offered_for_track(&ext, s.kind, &t.codec, t.rtx.is_some()),
                ),
                None => LocalMedia::closed(&s.mid, Some(s.kind)),
            });
        }
        self.retry = false;
        self.in_flight = Some((now + timeout, media.len()));
        media
    }

    /// The `sendonly` m-section that carries `t` to the client under `mid`,
    /// with the RTX codec and the header extensions `offered` names.
    fn track_media(mid: &str, kind: MediaKind, t: &OutTrack, offered: Answered) -> LocalMedia {
        let stream = t.stream_id();
        LocalMedia {
            mid: mid.to_string(),
            kind: Some(kind),
            media_token: kind.as_str().to_string(),
            direction: Direction::SendOnly,
            codec: Some(t.codec.clone()),
            extensions: offered.extensions,
            send: Some((
                t.ssrc,
                stream.clone(),
                stream,
                format!("{}-{}", kind.as_str(), t.producer.0),
            )),
            rtx: t
                .rtx
                .as_ref()
                .filter(|_| offered.rtx)
                .map(|(c, _)| c.clone()),
            rtx_ssrc: t
                .rtx
                .as_ref()
                .filter(|_| offered.rtx)
                .map(|(_, ssrc)| *ssrc),
            rejected: false,
            simulcast_recv: None,
            sctp_port: None,
        }
    }

    /// Takes the client's answer (its m-sections) to the outstanding update.
    ///
    /// Errors: [`AnswerError::NotWaiting`], [`AnswerError::Mismatch`]; the
    /// state is unchanged then.
    pub fn on_answer(&mut self, answer: &[MediaSection]) -> Result<AnswerOutcome, AnswerError> {
        let Some((_, want)) = self.in_flight else {
            return Err(AnswerError::NotWaiting);
        };
        if answer.len() != want {
            return Err(AnswerError::Mismatch {
                got: answer.len(),
                want,
            });
        }
        self.in_flight = None;
        self.failures = 0;
        self.client_view = answer[self.own.len()..]
            .iter()
            .map(|m| (m.mid.clone(), !m.rejected))
            .collect();
        let mut out = AnswerOutcome::default();
        let ext = self.ext;
        for s in &mut self.slots {
            let section = answer.iter().find(|m| m.mid == s.mid);
            match s.state {
                SlotState::Offered => {
                    let Some(t) = s.track.clone() else { continue };
                    let accepted = section.is_some_and(|m| {
                        !m.rejected
                            && m.direction.receives()
                            && m.codecs.iter().any(|c| c.pt == t.codec.pt)
                    });
                    if accepted {
                        s.state = SlotState::Live;
                        out.resume.push(t.consumer);
                        if let Some(m) = section {
                            let offered =
                                offered_for_track(&ext, s.kind, &t.codec, t.rtx.is_some());
                            let answered = accepted_by(m, &t, offered);
                            if answered != offered {
                                out.narrowed.push((t.consumer, answered));
                            }
                        }
                    } else {
                        // Port 0: the client already stopped the m-section.
                        let closed = section.is_none_or(|m| m.rejected);
                        s.state = if closed {
                            SlotState::Free
                        } else {
                            SlotState::Closing
                        };
                        s.track = None;
                        self.declined.insert(t.producer);
                        out.rejected.push(t);
                    }
                }
                SlotState::ClosingOffered => s.state = SlotState::Free,
                _ => {}
            }
        }
        Ok(out)
    }

    /// The outstanding update failed (the client said `update-failed`, or
    /// [`Self::handle_timeout`] found it unanswered): everything it carried
    /// goes out again in the next offer, unless this was the
    /// [`MAX_FAILURES`]th failure in a row.
    pub fn on_failure(&mut self) -> AfterFailure {
        self.in_flight = None;
        for s in &mut self.slots {
            s.state = match s.state {
                SlotState::Offered => SlotState::New,
                SlotState::ClosingOffered => SlotState::Closing,
                other => other,
            };
        }
        self.failures += 1;
        self.retry = true;
        if self.failures >= MAX_FAILURES {
            AfterFailure::GiveUp
        } else {
            AfterFailure::Retry
        }
    }

    /// True when an update awaits an answer.
    pub fn waiting(&self) -> bool {
        self.in_flight.is_some()
    }

    /// When the outstanding update or an unused grant times out, if one is
    /// outstanding.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let grant = match self.grant {
            Grant::Given(d) => Some(d),
            _ => None,
        };
        self.in_flight
            .map(|(d, _)| d)
            .into_iter()
            .chain(grant)
            .min()
    }

    /// True when the outstanding update has timed out by `now`: call
    /// [`Self::on_failure`] then.
    pub fn handle_timeout(&self, now: Instant) -> bool {
        self.in_flight.is_some_and(|(d, _)| now >= d)
    }

    /// The state of each slot with its mid, in m-section order (for tests and logs).
    pub fn slots(&self) -> Vec<(String, SlotState)> {
        self.slots
            .iter()
            .map(|s| (s.mid.clone(), s.state))
            .collect()
    }
}
