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

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use sfu_core::router::{Answered, MediaKind};
use sfu_core::{ConsumerId, ProducerId};

use crate::sdp::{Codec, Direction, LocalMedia, MediaSection, PeerSdp};

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

/// Payload types used in this session, so one PT never names two codecs in
/// the BUNDLE group (RFC 8843 §9.1; Chromium refuses such an offer).
#[derive(Debug, Clone, Default)]
struct PtTable {
    used: HashMap<u8, (String, u32, Option<u8>)>,
}

fn codec_key(c: &Codec) -> (String, u32, Option<u8>) {
    let mut name = c.name.to_ascii_lowercase();
    // An RTX payload type means "RTX of that one codec" (its apt).
    if name == "rtx"
        && let Some(apt) = c.fmtp.as_deref().and_then(crate::sdp::rtx_apt)
    {
        name = format!("rtx apt={apt}");
    }
    (name, c.clock_rate, c.channels)
}

impl PtTable {
    fn claim(&mut self, c: &Codec) {
        self.used.entry(c.pt).or_insert_with(|| codec_key(c));
    }

    /// `c` with a payload type that is free or already means this codec.
    fn assign(&mut self, c: &Codec) -> Codec {
        let key = codec_key(c);
        let fits = |pt: u8, used: &HashMap<u8, _>| used.get(&pt).is_none_or(|k| *k == key);
        let pt = std::iter::once(c.pt)
            .chain(96..=127)
            .chain(35..=63)
            .find(|&pt| fits(pt, &self.used))
            .unwrap_or(c.pt);
        self.used.insert(pt, key);
        Codec { pt, ..c.clone() }
    }
}

/// The header extension ids of a session: the client's own, from its join
/// offer (ids are unique per BUNDLE group, RFC 8285 §6), and we offer the
/// tracks we send it under them.
#[derive(Debug, Clone, Copy)]
struct ExtIds {
    mid: Option<u8>,
    twcc: Option<u8>,
    audio_level: Option<u8>,
    abs_send_time: Option<u8>,
    dd: Option<u8>,
}

impl ExtIds {
    /// What we offer with a track of `kind` sent in `codec`: every id, the
    /// audio level only for audio, the dependency descriptor only for AV1;
    /// and whether it comes with RTX.
    fn for_track(self, kind: MediaKind, codec: &Codec, rtx: bool) -> Answered {
        Answered {
            rtx,
            mid_ext_id: self.mid,
            twcc_ext_id: self.twcc,
            audio_level_ext_id: self.audio_level.filter(|_| kind == MediaKind::Audio),
            abs_send_time_ext_id: self.abs_send_time,
            dependency_descriptor_ext_id: self.dd.filter(|_| codec.is("AV1")),
        }
    }
}

/// What the client's m-section `m` (its answer to our offer, or its own
/// offer) takes of `offered` for track `t`: the RTX codec if it lists its
/// payload type, and each header extension we offered that it names, with
/// its id (RFC 8285 §7: the answerer's ids stand in an answer, the
/// offerer's in an offer).
fn accepted_by(m: &MediaSection, t: &OutTrack, offered: Answered) -> Answered {
    let take = |o: Option<u8>, a: Option<u8>| o.and(a);
    Answered {
        rtx: offered.rtx
            && t.rtx
                .as_ref()
                .is_some_and(|(rtx, _)| m.codecs.iter().any(|c| c.pt == rtx.pt)),
        mid_ext_id: take(offered.mid_ext_id, m.mid_ext_id),
        twcc_ext_id: take(offered.twcc_ext_id, m.twcc_ext_id),
        audio_level_ext_id: take(offered.audio_level_ext_id, m.audio_level_ext_id),
        abs_send_time_ext_id: take(offered.abs_send_time_ext_id, m.abs_send_time_ext_id),
        dependency_descriptor_ext_id: take(offered.dependency_descriptor_ext_id, m.dd_ext_id),
    }
}

/// The negotiation state of one participant.
#[derive(Debug)]
pub struct Negotiation {
    own: Vec<LocalMedia>,
    client_media: Vec<MediaSection>,
    ext: ExtIds,
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
        Self {
            own,
            client_media: offer.media.clone(),
            ext: ExtIds {
                mid: offer.media.iter().find_map(|m| m.mid_ext_id),
                twcc: offer.media.iter().find_map(|m| m.twcc_ext_id),
                audio_level: offer.media.iter().find_map(|m| m.audio_level_ext_id),
                abs_send_time: offer.media.iter().find_map(|m| m.abs_send_time_ext_id),
                dd: offer.media.iter().find_map(|m| m.dd_ext_id),
            },
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
        self.ext.for_track(kind, codec, rtx)
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
                    ext.for_track(s.kind, &t.codec, t.rtx.is_some()),
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
            mid_ext_id: offered.mid_ext_id,
            twcc_ext_id: offered.twcc_ext_id,
            audio_level_ext_id: offered.audio_level_ext_id,
            abs_send_time_ext_id: offered.abs_send_time_ext_id,
            dd_ext_id: offered.dependency_descriptor_ext_id,
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
                            let offered = ext.for_track(s.kind, &t.codec, t.rtx.is_some());
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
                            let offered = self.ext.for_track(s.kind, &t.codec, t.rtx.is_some());
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

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = include_str!("../../testdata/sdp/offer-audio-video-sendrecv.sdp");
    const RECVONLY_AUDIO: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        a=group:BUNDLE 0\r\na=fingerprint:sha-256 \
        7B:31:07:E0:64:2F:6A:98:4D:EA:21:A6:76:D7:40:85:03:64:F1:3A:5F:8C:B5:1B:48:0D:37:DA:EC:E2:27:BC\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=ice-ufrag:abcd\r\n\
        a=ice-pwd:0123456789012345678901\r\na=setup:actpass\r\na=recvonly\r\n\
        a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\na=rtpmap:111 opus/48000/2\r\n";

    fn vp8(pt: u8) -> Codec {
        Codec {
            pt,
            name: "VP8".into(),
            clock_rate: 90000,
            channels: None,
            fmtp: None,
        }
    }

    fn opus() -> Codec {
        Codec {
            pt: 111,
            name: "opus".into(),
            clock_rate: 48000,
            channels: Some(2),
            fmtp: Some("minptime=10;useinbandfec=1".into()),
        }
    }

    fn own(n: usize) -> Vec<LocalMedia> {
        (0..n)
            .map(|i| LocalMedia {
                direction: Direction::RecvOnly,
                codec: Some(opus()),
                mid_ext_id: Some(4),
                rejected: false,
                ..LocalMedia::closed(&i.to_string(), Some(MediaKind::Audio))
            })
            .collect()
    }

    fn neg(offer: &str, own_sections: usize) -> Negotiation {
        Negotiation::new(own(own_sections), &crate::sdp::parse(offer).expect("offer"))
    }

    /// An answer to `offer` that accepts every sendonly section whose mid is
    /// not in `refuse` (those get port 0), and keeps closed ones closed.
    fn answer(offer: &[LocalMedia], refuse: &[&str]) -> Vec<MediaSection> {
        offer
            .iter()
            .map(|m| {
                let refused = refuse.contains(&m.mid.as_str()) || m.rejected;
                MediaSection {
                    mid: m.mid.clone(),
                    kind: m.kind,
                    rejected: refused,
                    direction: match m.direction {
                        Direction::SendOnly => Direction::RecvOnly,
                        Direction::RecvOnly => Direction::SendOnly,
                        d => d,
                    },
                    codecs: m.codec.iter().chain(&m.rtx).cloned().collect(),
                    ssrc: None,
                    rtx_ssrc: None,
                    mid_ext_id: m.mid_ext_id,
                    twcc_ext_id: m.twcc_ext_id,
                    audio_level_ext_id: m.audio_level_ext_id,
                    abs_send_time_ext_id: m.abs_send_time_ext_id,
                    send_rids: vec![],
                    rid_ext_id: None,
                    repaired_rid_ext_id: None,
                    dd_ext_id: None,
                }
            })
            .collect()
    }

    fn track(n: u64, publisher: u64, kind: MediaKind) -> OutTrack {
        OutTrack {
            producer: ProducerId(n),
            consumer: ConsumerId(100 + n),
            publisher,
            kind,
            codec: if kind == MediaKind::Audio {
                opus()
            } else {
                vp8(96)
            },
            ssrc: 1000 + n as u32,
            rtx: None,
            screen: false,
        }
    }

    /// One step of a table test and what must hold after it.
    enum Step {
        /// Add track n of publisher p.
        Add(u64, u64, MediaKind),
        /// Publisher p leaves.
        Leave(u64),
        /// Make an offer; its slot sections must read like this
        /// (`mid=send`, `mid=closed`).
        Offer(&'static str),
        /// Answer, refusing these mids; resumed consumers and refused producers.
        Answer(&'static [&'static str], &'static [u64], &'static [u64]),
        /// The update failed (timeout or update-failed).
        Fail(AfterFailure),
        /// No offer is due.
        Quiet,
    }

    fn shape(offer: &[LocalMedia], own: usize) -> String {
        offer[own..]
            .iter()
            .map(|m| format!("{}={}", m.mid, if m.rejected { "closed" } else { "send" }))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn run(name: &str, steps: &[Step]) {
        use MediaKind::{Audio, Video};
        let _ = (Audio, Video);
        let mut n = neg(OFFER, 2);
        let t0 = Instant::now();
        let mut last: Vec<LocalMedia> = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            let at = format!("{name}, step {i}");
            match step {
                Step::Add(t, p, kind) => {
                    let mid = n.allocate_mid();
                    n.add(mid, track(*t, *p, *kind));
                }
                Step::Leave(p) => {
                    n.remove_publisher(*p);
                }
                Step::Offer(want) => {
                    assert!(n.needs_offer(), "{at}: an offer is due");
                    last = n.make_offer(t0, Duration::from_secs(10));
                    assert_eq!(shape(&last, 2), *want, "{at}");
                    assert!(!n.needs_offer(), "{at}: one update at a time");
                }
                Step::Answer(refuse, resumed, refused) => {
                    let out = n.on_answer(&answer(&last, refuse)).expect(&at);
                    let r: Vec<u64> = out.resume.iter().map(|c| c.0 - 100).collect();
                    let x: Vec<u64> = out.rejected.iter().map(|t| t.producer.0).collect();
                    assert_eq!((&r[..], &x[..]), (*resumed, *refused), "{at}");
                }
                Step::Fail(want) => assert_eq!(n.on_failure(), *want, "{at}"),
                Step::Quiet => assert!(!n.needs_offer(), "{at}: nothing to offer"),
            }
        }
    }

    #[test]
    fn an_answer_without_rtx_or_an_extension_narrows_that_consumer() {
        let setup = || {
            let mut n = neg(OFFER, 2);
            let mut video = track(1, 7, MediaKind::Video);
            video.rtx = Some((
                Codec {
                    pt: 97,
                    name: "rtx".into(),
                    clock_rate: 90000,
                    channels: None,
                    fmtp: Some("apt=96".into()),
                },
                4242,
            ));
            for t in [video, track(2, 7, MediaKind::Audio)] {
                let mid = n.allocate_mid();
                n.add(mid, t);
            }
            let offer = n.make_offer(Instant::now(), Duration::from_secs(10));
            (n, offer)
        };
        let (mut full, offer) = setup();
        let (v, a) = (&offer[2], &offer[3]);
        assert_eq!(
            (v.twcc_ext_id, v.abs_send_time_ext_id, v.audio_level_ext_id),
            (Some(3), Some(2), None),
            "Chromium's ids; no audio level on video"
        );
        assert_eq!(a.audio_level_ext_id, Some(1));
        // A full echo narrows nothing.
        let out = full.on_answer(&answer(&offer, &[])).expect("answer");
        assert_eq!(out.resume.len(), 2);
        assert!(out.narrowed.is_empty(), "{:?}", out.narrowed);
        // Video without its RTX codec, audio without transport-cc.
        let (mut n, offer) = setup();
        let mut ans = answer(&offer, &[]);
        ans[2].codecs.retain(|c| c.name != "rtx");
        ans[3].twcc_ext_id = None;
        let out = n.on_answer(&ans).expect("answer");
        assert_eq!(out.resume.len(), 2);
        assert_eq!(
            out.narrowed,
            vec![
                (
                    ConsumerId(101),
                    Answered {
                        rtx: false,
                        mid_ext_id: Some(4),
                        twcc_ext_id: Some(3),
                        audio_level_ext_id: None,
                        abs_send_time_ext_id: Some(2),
                        dependency_descriptor_ext_id: None,
                    }
                ),
                (
                    ConsumerId(102),
                    Answered {
                        rtx: false,
                        mid_ext_id: Some(4),
                        twcc_ext_id: None,
                        audio_level_ext_id: Some(1),
                        abs_send_time_ext_id: Some(2),
                        dependency_descriptor_ext_id: None,
                    }
                ),
            ]
        );
    }

    #[test]
    fn negotiation_table() {
        use MediaKind::{Audio, Video};
        use Step::*;
        let cases: &[(&str, &[Step])] = &[
            (
                "a publisher joins: both tracks offered, accepted, resumed",
                &[
                    Add(1, 7, Audio),
                    Add(2, 7, Video),
                    Offer("s1=send s2=send"),
                    Answer(&[], &[1, 2], &[]),
                    Quiet,
                ],
            ),
            (
                "changes during an update wait for its answer",
                &[
                    Add(1, 7, Audio),
                    Offer("s1=send"),
                    Add(2, 8, Audio),
                    Quiet,
                    Answer(&[], &[1], &[]),
                    Offer("s1=send s2=send"),
                    Answer(&[], &[2], &[]),
                ],
            ),
            (
                "a publisher leaves: its sections close, then are recycled under new mids",
                &[
                    Add(1, 7, Audio),
                    Add(2, 7, Video),
                    Offer("s1=send s2=send"),
                    Answer(&[], &[1, 2], &[]),
                    Leave(7),
                    Offer("s1=closed s2=closed"),
                    Answer(&[], &[], &[]),
                    Add(3, 8, Video),
                    Add(4, 8, Audio),
                    Offer("s4=send s3=send"),
                    Answer(&[], &[4, 3], &[]),
                ],
            ),
            (
                "a free slot is reused only by the same kind",
                &[
                    Add(1, 7, Audio),
                    Offer("s1=send"),
                    Answer(&[], &[1], &[]),
                    Leave(7),
                    Offer("s1=closed"),
                    Answer(&[], &[], &[]),
                    Add(2, 8, Video),
                    Offer("s1=closed s2=send"),
                ],
            ),
            (
                "a section still closing is not reused before the answer",
                &[
                    Add(1, 7, Audio),
                    Offer("s1=send"),
                    Answer(&[], &[1], &[]),
                    Leave(7),
                    Offer("s1=closed"),
                    Add(2, 8, Audio),
                    Answer(&[], &[], &[]),
                    Offer("s1=closed s2=send"),
                ],
            ),
            (
                "a track that leaves before it was offered never reaches the SDP",
                &[Add(1, 7, Audio), Leave(7), Quiet],
            ),
            (
                "a track that leaves while offered is closed in the next update",
                &[
                    Add(1, 7, Video),
                    Offer("s1=send"),
                    Leave(7),
                    Answer(&[], &[], &[]),
                    Offer("s1=closed"),
                ],
            ),
            (
                "a refused track is reported, its section freed, and not offered again",
                &[
                    Add(1, 7, Audio),
                    Add(2, 7, Video),
                    Offer("s1=send s2=send"),
                    Answer(&["s2"], &[1], &[2]),
                    Quiet,
                    Add(3, 8, Video),
                    Offer("s1=send s3=send"),
                ],
            ),
            (
                "a failed update is offered again, and the third failure gives up",
                &[
                    Add(1, 7, Audio),
                    Offer("s1=send"),
                    Fail(AfterFailure::Retry),
                    Offer("s1=send"),
                    Fail(AfterFailure::Retry),
                    Offer("s1=send"),
                    Fail(AfterFailure::GiveUp),
                ],
            ),
            (
                "an answer resets the failure count",
                &[
                    Add(1, 7, Audio),
                    Offer("s1=send"),
                    Fail(AfterFailure::Retry),
                    Offer("s1=send"),
                    Fail(AfterFailure::Retry),
                    Offer("s1=send"),
                    Answer(&[], &[1], &[]),
                    Add(2, 8, Audio),
                    Offer("s1=send s2=send"),
                    Fail(AfterFailure::Retry),
                ],
            ),
        ];
        for (name, steps) in cases {
            run(name, steps);
        }
    }

    #[test]
    fn unexpected_and_stale_answers_change_nothing() {
        let mut n = neg(OFFER, 2);
        assert_eq!(n.on_answer(&[]), Err(AnswerError::NotWaiting));
        let mid = n.allocate_mid();
        n.add(mid, track(1, 7, MediaKind::Audio));
        let offer = n.make_offer(Instant::now(), Duration::from_secs(1));
        let short = answer(&offer[..2], &[]);
        assert_eq!(
            n.on_answer(&short),
            Err(AnswerError::Mismatch { got: 2, want: 3 })
        );
        assert!(n.waiting(), "still waiting for the real answer");
        assert_eq!(
            n.on_answer(&answer(&offer, &[])).map(|o| o.resume),
            Ok(vec![ConsumerId(101)])
        );
    }

    /// A client offer: the join offer's session with these m-sections.
    fn client_offer(media: Vec<MediaSection>) -> PeerSdp {
        let mut o = crate::sdp::parse(OFFER).expect("offer");
        o.media = media;
        o
    }

    /// A new sendonly video m-section under `mid` (a screen share).
    fn screen_section(mid: &str) -> MediaSection {
        MediaSection {
            mid: mid.into(),
            kind: Some(MediaKind::Video),
            rejected: false,
            direction: Direction::SendOnly,
            codecs: vec![vp8(96)],
            ssrc: Some(4242),
            rtx_ssrc: None,
            mid_ext_id: Some(4),
            twcc_ext_id: None,
            audio_level_ext_id: None,
            abs_send_time_ext_id: None,
            send_rids: vec![],
            rid_ext_id: None,
            repaired_rid_ext_id: None,
            dd_ext_id: None,
        }
    }

    /// What the room answers for a published section.
    fn published_media(mid: &str) -> LocalMedia {
        LocalMedia {
            direction: Direction::RecvOnly,
            codec: Some(vp8(96)),
            mid_ext_id: Some(4),
            rejected: false,
            ..LocalMedia::closed(mid, Some(MediaKind::Video))
        }
    }

    /// A session with one received video track (producer 1 of publisher
    /// 7) live, and the client's m-sections as it has them.
    fn with_live_video() -> (Negotiation, Vec<MediaSection>, Instant, Duration) {
        let t0 = Instant::now();
        let timeout = Duration::from_secs(10);
        let mut n = neg(OFFER, 2);
        let mid = n.allocate_mid();
        n.add(mid, track(1, 7, MediaKind::Video));
        let offer = n.make_offer(t0, timeout);
        let seen = answer(&offer, &[]);
        n.on_answer(&seen).expect("answer");
        (n, seen, t0, timeout)
    }

    #[test]
    fn a_request_to_offer_waits_for_the_outstanding_update_and_holds_ours_back() {
        let t0 = Instant::now();
        let timeout = Duration::from_secs(10);
        let mut n = neg(OFFER, 2);
        let mid = n.allocate_mid();
        n.add(mid, track(1, 7, MediaKind::Audio));
        let offer = n.make_offer(t0, timeout);
        assert!(!n.request_offer(t0, timeout), "an update is out: not yet");
        assert!(!n.granted());
        n.on_answer(&answer(&offer, &[])).expect("answer");
        assert!(
            n.take_pending_grant(t0, timeout),
            "granted after the answer"
        );
        assert!(!n.take_pending_grant(t0, timeout), "once");
        let mid = n.allocate_mid();
        n.add(mid, track(2, 8, MediaKind::Audio));
        assert!(!n.needs_offer(), "no update while the client may offer");
        assert_eq!(n.poll_timeout(), Some(t0 + timeout));
        assert!(!n.grant_expired(t0 + timeout / 2));
        assert!(n.grant_expired(t0 + timeout));
        n.end_grant();
        assert!(
            n.needs_offer(),
            "the held-back update goes out after the grant"
        );
        // Without an update out, a request is granted at once.
        let offer = n.make_offer(t0, timeout);
        n.on_answer(&answer(&offer, &[])).expect("answer");
        assert!(n.request_offer(t0, timeout));
    }

    #[test]
    fn a_client_offer_adds_a_section_and_unseen_tracks_move_after_it() {
        let (mut n, mut seen, t0, timeout) = with_live_video();
        let no_grant = client_offer(seen.clone());
        assert_eq!(n.check_client_offer(&no_grant), Err(OfferError::NotGranted));
        assert!(n.request_offer(t0, timeout));
        // A track added after the grant has not been seen by the client.
        let mid = n.allocate_mid();
        n.add(mid, track(2, 8, MediaKind::Audio));
        seen.push(screen_section("3"));
        let o = client_offer(seen.clone());
        assert_eq!(n.check_client_offer(&o), Ok(vec![3]));
        let out = n.apply_client_offer(&o, vec![(3, published_media("3"), Some(ProducerId(50)))]);
        let mids: Vec<_> = out.answer.iter().map(|m| m.mid.as_str()).collect();
        assert_eq!(mids, ["0", "1", "s1", "3"]);
        assert_eq!(
            out.answer[2].direction,
            Direction::SendOnly,
            "s1 still sent"
        );
        assert_eq!(
            out.answer[3].direction,
            Direction::RecvOnly,
            "we receive the share"
        );
        assert!(out.ended.is_empty() && out.rejected.is_empty());
        assert!(!n.granted(), "the grant is used up");
        // The held-back track goes out after the client's section.
        assert!(n.needs_offer());
        let next = n.make_offer(t0, timeout);
        assert_eq!(shape(&next, 2), "s1=send 3=send s2=send");
        assert_eq!(next[3].direction, Direction::RecvOnly);
        n.on_answer(&answer(&next, &[])).expect("answer");
        // The client stops sharing (port 0): the producer ends, the slot is free.
        assert!(n.request_offer(t0, timeout));
        let mut again = answer(&next, &[]);
        again[3].rejected = true;
        let o = client_offer(again);
        assert_eq!(n.check_client_offer(&o), Ok(vec![]));
        let out = n.apply_client_offer(&o, vec![]);
        assert_eq!(out.ended, vec![ProducerId(50)]);
        assert!(out.answer[3].rejected);
        assert_eq!(
            n.slots()[1],
            ("3".to_string(), SlotState::Free),
            "recyclable by either side"
        );
    }

    /// Firefox's own offer lists only the extensions it kept for a section
    /// it receives on; our answer names no others (Firefox refuses an answer
    /// with an extension its offer lacks), and the consumer is narrowed.
    #[test]
    fn an_answer_to_a_client_offer_names_only_what_the_offer_has() {
        let (mut n, mut seen, t0, timeout) = with_live_video();
        assert_eq!(seen[2].abs_send_time_ext_id, Some(2), "accepted before");
        assert!(n.request_offer(t0, timeout));
        seen[2].abs_send_time_ext_id = None;
        let o = client_offer(seen);
        assert_eq!(n.check_client_offer(&o), Ok(vec![]));
        let out = n.apply_client_offer(&o, vec![]);
        let video = &out.answer[2];
        assert_eq!(video.direction, Direction::SendOnly);
        assert_eq!(video.abs_send_time_ext_id, None);
        assert_eq!((video.twcc_ext_id, video.mid_ext_id), (Some(3), Some(4)));
        assert_eq!(
            out.narrowed,
            vec![(
                ConsumerId(101),
                Answered {
                    rtx: false,
                    mid_ext_id: Some(4),
                    twcc_ext_id: Some(3),
                    audio_level_ext_id: None,
                    abs_send_time_ext_id: None,
                    dependency_descriptor_ext_id: None,
                }
            )]
        );
    }

    #[test]
    fn a_client_may_recycle_a_closed_section_and_our_track_there_moves() {
        let (mut n, _, t0, timeout) = with_live_video();
        n.remove_publisher(7);
        let offer = n.make_offer(t0, timeout);
        let seen = answer(&offer, &[]);
        n.on_answer(&seen).expect("answer");
        // We put a new video track in the free slot, but the client's
        // offer recycles that m-section for its screen share.
        let mid = n.allocate_mid();
        n.add(mid, track(2, 8, MediaKind::Video));
        assert!(n.request_offer(t0, timeout));
        let mut media = seen.clone();
        media[2] = screen_section("2");
        let o = client_offer(media);
        assert_eq!(n.check_client_offer(&o), Ok(vec![2]));
        let out = n.apply_client_offer(&o, vec![(2, published_media("2"), Some(ProducerId(60)))]);
        assert_eq!(out.answer.len(), 3);
        let next = n.make_offer(t0, timeout);
        assert_eq!(shape(&next, 2), "2=send s2=send");
    }

    #[test]
    fn a_client_offer_that_moves_renames_or_restarts_is_refused() {
        let (mut n, seen, t0, timeout) = with_live_video();
        assert!(n.request_offer(t0, timeout));
        let o = client_offer(seen[..2].to_vec());
        assert_eq!(
            n.check_client_offer(&o),
            Err(OfferError::Missing { got: 2, want: 3 })
        );
        let mut renamed = seen.clone();
        renamed[2].mid = "x".into();
        assert!(matches!(
            n.check_client_offer(&client_offer(renamed)),
            Err(OfferError::Mismatch { index: 2, .. })
        ));
        let mut taken = seen.clone();
        taken.push(screen_section("s1"));
        assert_eq!(
            n.check_client_offer(&client_offer(taken)),
            Err(OfferError::MidTaken("s1".into()))
        );
        let mut restart = client_offer(seen.clone());
        restart.ice_ufrag = "other".into();
        assert_eq!(n.check_client_offer(&restart), Err(OfferError::Restart));
        assert!(n.granted(), "checking changes nothing");
    }

    #[test]
    fn an_unanswered_update_times_out_at_its_deadline() {
        let mut n = neg(OFFER, 2);
        let mid = n.allocate_mid();
        n.add(mid, track(1, 7, MediaKind::Audio));
        let t0 = Instant::now();
        n.make_offer(t0, Duration::from_secs(10));
        assert_eq!(n.poll_timeout(), Some(t0 + Duration::from_secs(10)));
        assert!(!n.handle_timeout(t0 + Duration::from_secs(9)));
        assert!(n.handle_timeout(t0 + Duration::from_secs(10)));
    }

    #[test]
    fn sections_stay_bounded_by_live_tracks_over_many_joins_and_leaves() {
        let mut n = neg(OFFER, 2);
        let t0 = Instant::now();
        let mut max_sections = 0;
        for p in 0..300u64 {
            for (k, kind) in [MediaKind::Audio, MediaKind::Video].into_iter().enumerate() {
                let mid = n.allocate_mid();
                n.add(mid, track(2 * p + k as u64, p, kind));
            }
            let offer = n.make_offer(t0, Duration::from_secs(10));
            n.on_answer(&answer(&offer, &[])).expect("answer");
            n.remove_publisher(p);
            let offer = n.make_offer(t0, Duration::from_secs(10));
            n.on_answer(&answer(&offer, &[])).expect("answer");
            max_sections = max_sections.max(n.section_count());
        }
        assert_eq!(
            max_sections,
            2 + 2,
            "the client's own two plus one per live track"
        );
    }

    #[test]
    fn codecs_keep_the_clients_payload_types_and_never_collide() {
        // A client that offered VP8 as 96 gets VP8 as 96, whatever the publisher used.
        let mut n = neg(OFFER, 2);
        let c = n.codec_for(&vp8(100));
        assert_eq!((c.name.as_str(), c.pt), ("VP8", 96));
        // A receive-only audio client never offered VP8: the publisher's PT is
        // used, unless it already names another codec of the session.
        let mut n = neg(RECVONLY_AUDIO, 1);
        assert_eq!(n.codec_for(&vp8(96)).pt, 96);
        let taken = n.codec_for(&vp8(111));
        assert_ne!(taken.pt, 111, "111 is the client's opus");
        assert_eq!(n.codec_for(&vp8(taken.pt)).pt, taken.pt, "stable");
    }
}
