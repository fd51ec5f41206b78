//! One room: a tokio task that owns the room's participants, orchestrates
//! joins and leaves on the room's worker, and drives each participant's
//! [`Negotiation`].
//!
//! The room awaits its worker's replies, so a stalled worker stalls only the
//! rooms placed on it; the [`Hub`](crate::hub::Hub) and every other room go
//! on. Messages reach the room in the order the hub received them, and the
//! room answers them in that order.
//!
//! After the join answer the server is the only offerer: whenever the set of
//! tracks a participant should receive changes, it sends an `update` offer
//! and queues further changes until the answer arrives. An update left
//! unanswered for the offer timeout, or refused with `update-failed`, is
//! sent again; the third failure in a row removes the participant
//! (`negotiation-failed`). New consumers are created paused and resumed only
//! once the subscriber's answer accepted their m-section, so the first
//! keyframe is not lost.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use rand::Rng;
use rand::distr::Alphanumeric;
use sfu_core::proto::codec::VideoCodec;
use sfu_core::proto::dtls::DtlsRole;
use sfu_core::router::{Answered, ConsumerParams, EncodingParams, MediaKind, ProducerParams};
use sfu_core::transport::{CloseReason, TransportParams};
use sfu_core::worker::{Command, Event};
use sfu_core::{ConsumerId, Mid, ProducerId, Pt, Rid, RouterId, Ssrc, TransportId};
use tokio::sync::{mpsc, oneshot};

use crate::config::HubConfig;
use crate::conn::{ConnHandle, ConnId};
use crate::negotiation::{AfterFailure, AnswerError, Negotiation, OutTrack};
use crate::protocol::{ParticipantInfo, ServerMsg};
use crate::sdp::{self, Codec, Direction, LocalMedia, LocalParams, PeerSdp, SimulcastRecv};
use crate::worker_link::{WorkerRef, call};

/// Capacity of a room's inbox, in messages. When it is full (the room is
/// stuck on its worker), the hub refuses new joins to it with `room-busy`.
pub const ROOM_QUEUE: usize = 1024;

/// Messages to a room.
#[derive(Debug)]
pub enum RoomMsg {
    /// A validated join.
    Join {
        /// The connection.
        conn: ConnHandle,
        /// The hub's sequence number of this join (returned in `RoomNotice::Left`).
        join: u64,
        /// Display name.
        name: String,
        /// The parsed offer.
        offer: Box<PeerSdp>,
    },
    /// An answer to an update.
    Answer {
        /// The connection.
        conn: ConnHandle,
        /// SDP text.
        sdp: String,
    },
    /// The client could not apply the last update.
    UpdateFailed {
        /// The connection.
        conn: ConnHandle,
        /// The client's reason.
        message: String,
    },
    /// The participants whose video the client hides.
    VideoHidden {
        /// The connection.
        conn: ConnHandle,
        /// Participant ids (`p7`).
        ids: Vec<String>,
    },
    /// The widths the client shows participants' video at.
    VideoSize {
        /// The connection.
        conn: ConnHandle,
        /// Participant id (`p7`) → pixels.
        widths: std::collections::HashMap<String, u32>,
    },
    /// `offer-request`: the client wants to offer.
    OfferRequest {
        /// The connection.
        conn: ConnHandle,
    },
    /// The client's own offer.
    Offer {
        /// The connection.
        conn: ConnHandle,
        /// SDP text.
        sdp: String,
        /// Mids of new m-sections that carry a screen share.
        screen: Vec<String>,
    },
    /// `media-state`: muted microphone, camera off.
    MediaState {
        /// The connection.
        conn: ConnHandle,
        /// The microphone is muted.
        audio_muted: bool,
        /// The camera is off.
        video_off: bool,
    },
    /// An explicit `leave`: reply `left`.
    Leave {
        /// The connection.
        conn: ConnHandle,
    },
    /// The WebSocket closed.
    Disconnected {
        /// The connection.
        conn: ConnId,
    },
    /// A reply decided by the hub for a connection in this room, sent through
    /// the room so that it keeps the order of the requests.
    Reply {
        /// The connection.
        conn: ConnHandle,
        /// The reply.
        msg: ServerMsg,
    },
    /// An event of the room's router.
    Core(Event),
    /// The room's router panicked, or its whole worker failed: tell
    /// everyone `room-failed` and stop.
    Failed,
    /// The hub forgot this idle room: close the router and stop.
    Close,
    /// The server stops: remove everyone, close the router, then signal.
    Shutdown {
        /// Signalled when done.
        done: oneshot::Sender<()>,
    },
}

/// A failed step of a request: the error message to send.
#[derive(Debug)]
pub struct Fail(pub ServerMsg);

impl From<sfu_core::Error> for Fail {
    fn from(e: sfu_core::Error) -> Self {
        Fail(match e {
            sfu_core::Error::PortRangeExhausted { .. } => ServerMsg::error(
                "no-capacity",
                format!("the server cannot open another room: {e}"),
            ),
            sfu_core::Error::WorkerGone | sfu_core::Error::RouterFailed(_) => ServerMsg::error(
                "room-failed",
                "the room's data-plane worker failed or stalled; join again",
            ),
            sfu_core::Error::QueueFull => ServerMsg::error(
                "room-busy",
                "the room's data-plane worker is overloaded; try again",
            ),
            other => ServerMsg::error("server-error", format!("data plane error: {other}")),
        })
    }
}

fn random_token(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

#[derive(Debug, Clone)]
struct Track {
    producer: ProducerId,
    kind: MediaKind,
    codec: Codec,
    /// A screen share (`offer` with `screen`).
    screen: bool,
    /// Its m-section's mid.
    mid: String,
    /// Simulcast: its encodings' RIDs, in the producer's order.
    rids: Vec<String>,
}

#[derive(Debug)]
struct Participant {
    id: u64,
    name: String,
    conn: ConnHandle,
    join: u64,
    transport: TransportId,
    local: LocalParams,
    published: Vec<Track>,
    neg: Negotiation,
    /// msid streams (`p7`, `p7-screen`) whose video this participant
    /// hides (`video-hidden`).
    hidden: std::collections::HashSet<String>,
    /// The widths it shows each msid stream's video at, pixels (`video-size`).
    widths: std::collections::HashMap<String, u16>,
    /// Our DTLS role in answers to its offers (`passive` or `active`).
    setup: &'static str,
    /// Its microphone is muted (`media-state`).
    audio_muted: bool,
    /// Its camera is off (`media-state`).
    video_off: bool,
}

/// What a room tells whoever placed it (the hub wraps these in its own
/// messages): the room never names the hub.
#[derive(Debug)]
pub enum RoomNotice {
    /// This connection's membership `join` (the sequence number the hub gave
    /// its join) ended, or the join failed.
    Left {
        /// Connection id.
        conn: ConnId,
        /// The join's sequence number.
        join: u64,
    },
    /// The room's router exists.
    Opened {
        /// The room's router.
        router: RouterId,
        /// The router's counters.
        counters: Arc<sfu_core::stats::Counters>,
    },
    /// The room has no participant after handling `joins_seen` joins.
    Idle {
        /// The room's router.
        router: RouterId,
        /// Joins the room has handled.
        joins_seen: u64,
    },
}

/// Where a room's [`RoomNotice`]s go: a function that never waits (the
/// hub's queues them on its inbox, from a task of their own when it is full).
#[derive(Clone)]
pub struct Notices(pub Arc<dyn Fn(RoomNotice) + Send + Sync>);

impl std::fmt::Debug for Notices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Notices")
    }
}

/// Shared settings and handles every room gets from the hub.
#[derive(Debug, Clone)]
pub struct RoomCtx {
    /// Static settings.
    pub cfg: Arc<HubConfig>,
    /// Where the room's notices go.
    pub notices: Notices,
    /// Source of participant ids, unique in the process.
    pub next_pid: Arc<AtomicU64>,
}

/// A room's state, run by [`Room::run`].
#[derive(Debug)]
pub struct Room {
    name: String,
    router: RouterId,
    worker: WorkerRef,
    port: Option<u16>,
    participants: Vec<Participant>,
    joins_seen: u64,
    count: Arc<AtomicUsize>,
    ctx: RoomCtx,
    /// The dominant speaker's participant id, once the data plane named one.
    speaker: Option<u64>,
}

impl Room {
    /// A room `name` whose router will be `router` on `worker`; `count`
    /// mirrors its number of participants for /metrics.
    pub fn new(
        name: String,
        router: RouterId,
        worker: WorkerRef,
        count: Arc<AtomicUsize>,
        ctx: RoomCtx,
    ) -> Self {
        Self {
            name,
            router,
            worker,
            port: None,
            participants: Vec::new(),
            joins_seen: 0,
            count,
            ctx,
            speaker: None,
        }
    }

    /// Runs until the hub closes the room, its worker fails, or the server stops.
    pub async fn run(mut self, mut rx: mpsc::Receiver<RoomMsg>) {
        loop {
            let deadline = self
                .participants
                .iter()
                .filter_map(|p| p.neg.poll_timeout())
                .min();
            let msg = tokio::select! {
                m = rx.recv() => match m {
                    Some(m) => m,
                    None => break,
                },
                _ = sleep_until(deadline), if deadline.is_some() => {
                    self.on_timeouts(Instant::now()).await;
                    continue;
                }
            };
            match msg {
                RoomMsg::Join {
                    conn,
                    join,
                    name,
                    offer,
                } => {
                    self.joins_seen += 1;
                    if let Err(Fail(m)) = self.join(conn.clone(), join, name, *offer).await {
                        conn.send(&m);
                        self.tell_hub(RoomNotice::Left {
                            conn: conn.id(),
                            join,
                        });
                        self.report_if_idle();
                    }
                }
                RoomMsg::Answer { conn, sdp } => self.on_answer(&conn, &sdp).await,
                RoomMsg::UpdateFailed { conn, message } => {
                    self.on_update_failed(&conn, &message).await;
                }
                RoomMsg::VideoHidden { conn, ids } => self.on_video_hidden(&conn, &ids),
                RoomMsg::VideoSize { conn, widths } => self.on_video_size(&conn, &widths),
                RoomMsg::OfferRequest { conn } => self.on_offer_request(&conn),
                RoomMsg::Offer { conn, sdp, screen } => self.on_offer(&conn, &sdp, &screen).await,
                RoomMsg::MediaState {
                    conn,
                    audio_muted,
                    video_off,
                } => self.on_media_state(&conn, audio_muted, video_off),
                RoomMsg::Leave { conn } => {
                    if let Some(pid) = self.pid_of(conn.id()) {
                        self.remove_participant(pid, true).await;
                    }
                    conn.send(&ServerMsg::Left);
                }
                RoomMsg::Disconnected { conn } => {
                    if let Some(pid) = self.pid_of(conn) {
                        self.remove_participant(pid, true).await;
                    }
                }
                RoomMsg::Reply { conn, msg } => {
                    conn.send(&msg);
                }
                RoomMsg::Core(ev) => self.on_core(ev).await,
                RoomMsg::Failed => {
                    self.fail_all(&mut rx).await;
                    return;
                }
                RoomMsg::Close => {
                    if self.participants.is_empty() {
                        self.close_router();
                        return;
                    }
                    tracing::error!(room = %self.name, "asked to close with participants; ignored");
                }
                RoomMsg::Shutdown { done } => {
                    for pid in self.participants.iter().map(|p| p.id).collect::<Vec<_>>() {
                        self.remove_participant(pid, true).await;
                    }
                    self.close_router();
                    let _ = done.send(());
                    return;
                }
            }
        }
    }

    fn pid_of(&self, conn: ConnId) -> Option<u64> {
        self.participants
            .iter()
            .find(|p| p.conn.id() == conn)
            .map(|p| p.id)
    }

    fn idx(&self, pid: u64) -> Option<usize> {
        self.participants.iter().position(|p| p.id == pid)
    }

    /// Tells whoever placed the room, without ever waiting on it.
    fn tell_hub(&self, notice: RoomNotice) {
        (self.ctx.notices.0)(notice);
    }

    /// A fire-and-forget command; a full queue or a gone worker is logged.
    fn command(&self, cmd: Command) {
        if let Err(e) = self.worker.try_send(cmd) {
            tracing::warn!(room = %self.name, error = %e, "command to the worker not sent");
        }
    }

    /// Consumers of `pid` whose client's answer or offer left out the RTX
    /// codec or a header extension we offered: the data plane stops
    /// writing them (or writes the client's ids).
    fn narrow(&self, router: RouterId, pid: u64, narrowed: &[(ConsumerId, Answered)]) {
        for &(consumer, answered) in narrowed {
            tracing::info!(participant = pid, ?answered, "subscriber narrowed a track");
            self.command(Command::ConsumerAnswered {
                router,
                consumer,
                answered,
            });
        }
    }

    fn close_router(&self) {
        if self.port.is_some() {
            self.command(Command::CloseRouter {
                router: self.router,
            });
            tracing::info!(room = %self.name, "room closed");
        }
    }

    fn report_if_idle(&self) {
        if self.participants.is_empty() {
            self.tell_hub(RoomNotice::Idle {
                router: self.router,
                joins_seen: self.joins_seen,
            });
        }
    }

    fn set_count(&self) {
        self.count.store(self.participants.len(), Ordering::Relaxed);
    }

    async fn ensure_router(&mut self) -> Result<u16, Fail> {
        if let Some(port) = self.port {
            return Ok(port);
        }
        let router = self.router;
        let info = call(&self.worker, |reply| Command::CreateRouter {
            router,
            reply,
        })
        .await?;
        let port = info.local_addr.port();
        tracing::info!(room = %self.name, worker = self.worker.index, port, "room opened");
        self.port = Some(port);
        self.tell_hub(RoomNotice::Opened {
            router,
            counters: info.counters,
        });
        Ok(port)
    }

    async fn join(
        &mut self,
        conn: ConnHandle,
        join: u64,
        name: String,
        offer: PeerSdp,
    ) -> Result<(), Fail> {
        let limits = self.ctx.cfg.limits;
        if self.participants.len() >= limits.participants_per_room {
            return Err(Fail(ServerMsg::error(
                "room-full",
                format!(
                    "room {:?} has its maximum of {} participants",
                    self.name, limits.participants_per_room
                ),
            )));
        }
        let port = self.ensure_router().await?;
        let router = self.router;
        let (dtls_role, setup) = if offer.setup == "passive" {
            (DtlsRole::Client, "active")
        } else {
            (DtlsRole::Server, "passive")
        };
        let cfg = &self.ctx.cfg;
        let local = LocalParams {
            ice_ufrag: random_token(8),
            ice_pwd: random_token(24),
            fingerprint: cfg.fingerprint.clone(),
            ip: cfg.announced_ip,
            port,
            session_id: rand::random::<u32>() as u64,
            session_version: 1,
            ice_lite: true,
        };
        let params = TransportParams {
            local_ufrag: local.ice_ufrag.clone(),
            local_pwd: local.ice_pwd.clone(),
            remote_fingerprint: offer.fingerprint,
            dtls_role,
        };
        let transport = call(&self.worker, |reply| Command::CreateTransport {
            router,
            params,
            reply,
        })
        .await?;
        let mut own = Vec::new();
        let mut published = Vec::new();
        let mid_ext_id = offer.media.iter().find_map(|m| m.mid_ext_id);
        for m in &offer.media {
            match self.publish_section(transport, m, mid_ext_id, false).await {
                Ok((media, track)) => {
                    own.push(media);
                    published.extend(track);
                }
                Err(e) => {
                    self.command(Command::CloseTransport { router, transport });
                    return Err(e);
                }
            }
        }
        let answer = sdp::write(&local, setup, &own);
        let pid = self.ctx.next_pid.fetch_add(1, Ordering::Relaxed);
        tracing::info!(room = %self.name, participant = pid, name = %name, tracks = published.len(), "participant joined");
        conn.send(&ServerMsg::Answer {
            sdp: answer,
            id: format!("p{pid}"),
            room: self.name.clone(),
        });
        let neg = Negotiation::new(own, &offer);
        let others: Vec<u64> = self.participants.iter().map(|p| p.id).collect();
        self.participants.push(Participant {
            id: pid,
            name,
            conn,
            join,
            transport,
            local,
            published,
            neg,
            hidden: std::collections::HashSet::new(),
            widths: std::collections::HashMap::new(),
            setup,
            audio_muted: false,
            video_off: false,
        });
        self.set_count();
        self.broadcast_participants();
        for other in others {
            self.subscribe_all(pid, other).await;
            self.subscribe_all(other, pid).await;
            self.negotiate(other);
        }
        self.negotiate(pid);
        Ok(())
    }

    /// Publishes what m-section `m` of a client's offer sends: a Producer
    /// on `transport` (simulcast by RID, RFC 8853) when it sends with a
    /// codec we forward. Returns the section's answer and the track, if
    /// any. `mid_ext_id` is the session's MID extension id; `screen` marks
    /// a screen share.
    ///
    /// Errors: the worker refused the producer ([`Fail`] to send).
    async fn publish_section(
        &mut self,
        transport: TransportId,
        m: &sdp::MediaSection,
        mid_ext_id: Option<u8>,
        screen: bool,
    ) -> Result<(LocalMedia, Option<Track>), Fail> {
        let router = self.router;
        let mut track = None;
        // Simulcast is forwarded for VP8 (picture IDs rewritten across
        // layers) and H264; VP9 and AV1 as single streams. A simulcast
        // offer gets the first of VP8 and H264 the client lists, if any.
        let simulcast_codec = m
            .codecs
            .iter()
            .find(|c| c.forwardable_video() && (c.is("VP8") || c.is("H264")));
        let codec = if m.send_rids.len() > 1 {
            simulcast_codec.or(m.preferred_codec())
        } else {
            m.preferred_codec()
        }
        .cloned();
        // The AV1 dependency descriptor, passed through for AV1.
        let dd_ext_id = m
            .dd_ext_id
            .filter(|_| codec.as_ref().is_some_and(|c| c.is("AV1")));
        // RTX (RFC 4588) for video, when the client offers it for the codec.
        let rtx = codec
            .as_ref()
            .filter(|_| m.kind == Some(MediaKind::Video))
            .and_then(|c| m.rtx_for(c.pt))
            .cloned();
        // Simulcast (RFC 8853): layers by RID, their SSRCs bound from
        // the first packets carrying the MID and RID extensions.
        let simulcast = (m.kind == Some(MediaKind::Video)
            && m.rid_ext_id.is_some()
            && m.mid_ext_id.is_some()
            && codec.as_ref().is_some_and(|c| c.is("VP8") || c.is("H264")))
        .then(|| {
            m.send_rids
                .iter()
                .filter_map(|r| Rid::new(r))
                .collect::<Vec<_>>()
        })
        .filter(|rids| rids.len() > 1);
        let publish = !m.rejected
            && m.direction.sends()
            && codec.is_some()
            && (m.ssrc.is_some() || simulcast.is_some());
        if publish && let (Some(kind), Some(c)) = (m.kind, &codec) {
            // `publish` needs one of the two: an SSRC or simulcast.
            let encodings = match (&simulcast, m.ssrc) {
                (Some(rids), _) => rids
                    .iter()
                    .map(|r| EncodingParams {
                        rid: Some(*r),
                        ssrc: None,
                        rtx_ssrc: None,
                    })
                    .collect(),
                (None, ssrc) => ssrc
                    .map(|s| {
                        EncodingParams::single(
                            Ssrc(s),
                            m.rtx_ssrc.filter(|_| rtx.is_some()).map(Ssrc),
                        )
                    })
                    .into_iter()
                    .collect(),
            };
            let params = ProducerParams {
                transport,
                kind,
                encodings,
                mid: Mid::new(&m.mid),
                payload_types: vec![Pt(c.pt)],
                video_codec: VideoCodec::from_name(&c.name),
                rtx_payload_types: rtx.iter().map(|r| (Pt(r.pt), Pt(c.pt))).collect(),
                twcc_ext_id: m.twcc_ext_id,
                audio_level_ext_id: m.audio_level_ext_id.filter(|_| kind == MediaKind::Audio),
                mid_ext_id: m.mid_ext_id,
                rid_ext_id: simulcast.as_ref().and(m.rid_ext_id),
                repaired_rid_ext_id: simulcast.as_ref().and(m.repaired_rid_ext_id),
                dependency_descriptor_ext_id: dd_ext_id,
            };
            let producer = call(&self.worker, |reply| Command::CreateProducer {
                router,
                params,
                reply,
            })
            .await?;
            track = Some(Track {
                producer,
                kind,
                codec: c.clone(),
                screen: screen && kind == MediaKind::Video,
                mid: m.mid.clone(),
                rids: simulcast.iter().flatten().map(|r| r.to_string()).collect(),
            });
        }
        let usable = !m.rejected && m.kind.is_some() && codec.is_some();
        let simulcast_recv = simulcast
            .as_ref()
            .zip(m.rid_ext_id)
            .map(|(rids, id)| SimulcastRecv {
                rids: rids.iter().map(|r| r.to_string()).collect(),
                rid_ext_id: id,
                repaired_rid_ext_id: m.repaired_rid_ext_id.filter(|_| rtx.is_some()),
            });
        let media = LocalMedia {
            mid: m.mid.clone(),
            kind: if usable { m.kind } else { None },
            media_token: m
                .kind
                .map_or("application".to_string(), |k| k.as_str().to_string()),
            direction: if publish {
                Direction::RecvOnly
            } else {
                Direction::Inactive
            },
            codec,
            mid_ext_id,
            // We answer transport-cc feedback for what the client sends.
            twcc_ext_id: m.twcc_ext_id.filter(|_| usable),
            // What the publisher may send: its audio level (RFC 6464),
            // which subscribers get and the room's speaker detection
            // reads. Nothing of ours is stamped on a receive-only
            // section.
            audio_level_ext_id: m
                .audio_level_ext_id
                .filter(|_| publish && m.kind == Some(MediaKind::Audio)),
            abs_send_time_ext_id: None,
            dd_ext_id: dd_ext_id.filter(|_| publish),
            send: None,
            rtx,
            rtx_ssrc: None,
            rejected: !usable,
            simulcast_recv: simulcast_recv.filter(|_| publish && usable),
        };
        Ok((media, track))
    }

    /// Creates paused consumers on `sub` for every track of `publisher`.
    async fn subscribe_all(&mut self, sub: u64, publisher: u64) {
        let Some(p) = self.idx(publisher) else {
            return;
        };
        let tracks = self.participants[p].published.clone();
        for t in &tracks {
            self.add_consumer(sub, publisher, t).await;
        }
    }

    /// Creates a paused consumer on `sub` of `publisher`'s `track`, to go
    /// out in `sub`'s next update.
    async fn add_consumer(&mut self, sub: u64, publisher: u64, track: &Track) {
        let Track {
            producer,
            kind,
            ref codec,
            screen,
            ..
        } = *track;
        let Some(i) = self.idx(sub) else { return };
        let publisher_name = self
            .idx(publisher)
            .map(|j| self.participants[j].name.clone())
            .unwrap_or_default();
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
            producer,
            ssrc: Ssrc(ssrc),
            mid: Mid::new(&mid),
            mid_ext_id: ext.mid_ext_id,
            twcc_ext_id: ext.twcc_ext_id,
            audio_level_ext_id: ext.audio_level_ext_id,
            abs_send_time_ext_id: ext.abs_send_time_ext_id,
            dependency_descriptor_ext_id: ext.dependency_descriptor_ext_id,
            pt_map: vec![(Pt(codec.pt), Pt(sub_codec.pt))],
            paused: true,
            rtx: rtx.as_ref().map(|(c, ssrc)| (Ssrc(*ssrc), Pt(c.pt))),
        };
        let router = self.router;
        let consumer = match call(&self.worker, |reply| Command::CreateConsumer {
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
    fn negotiate(&mut self, pid: u64) {
        let timeout = self.ctx.cfg.offer_timeout;
        let Some(i) = self.idx(pid) else { return };
        let p = &mut self.participants[i];
        if p.neg.take_pending_grant(Instant::now(), timeout) {
            p.conn.send(&ServerMsg::OfferGranted);
            return;
        }
        if !p.neg.needs_offer() {
            return;
        }
        let media = p.neg.make_offer(Instant::now(), timeout);
        p.local.session_version += 1;
        let offer = sdp::write(&p.local, "actpass", &media);
        p.conn.send(&ServerMsg::Update { sdp: offer });
    }

    async fn on_answer(&mut self, conn: &ConnHandle, answer_sdp: &str) {
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
        let router = self.router;
        let p = &self.participants[i];
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
            self.command(Command::SetConsumerPaused {
                router,
                consumer,
                paused: false,
            });
        }
        for (consumer, width) in sized {
            self.command(Command::SetConsumerMaxWidth {
                router,
                consumer,
                width: Some(width),
            });
        }
        self.narrow(router, pid, &outcome.narrowed);
        for t in outcome.rejected {
            self.command(Command::CloseConsumer {
                router,
                consumer: t.consumer,
            });
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

    /// `video-hidden`: pauses this participant's consumers of the hidden
    /// publishers' video and resumes the others' (only tracks it answered
    /// for; one still being negotiated is resumed or not by its answer).
    fn on_video_hidden(&mut self, conn: &ConnHandle, ids: &[String]) {
        let Some(pid) = self.pid_of(conn.id()) else {
            conn.send(&ServerMsg::error("not-joined", "join a room first"));
            return;
        };
        if ids.len() > 1000 {
            conn.send(&ServerMsg::error(
                "bad-message",
                "video-hidden lists at most 1,000 participants",
            ));
            return;
        }
        let hidden: std::collections::HashSet<String> = ids.iter().cloned().collect();
        let Some(i) = self.idx(pid) else { return };
        let p = &mut self.participants[i];
        let changes: Vec<(sfu_core::ConsumerId, bool)> = p
            .neg
            .live_tracks()
            .filter(|t| t.kind == MediaKind::Video)
            .filter(|t| {
                let id = t.stream_id();
                hidden.contains(&id) != p.hidden.contains(&id)
            })
            .map(|t| (t.consumer, hidden.contains(&t.stream_id())))
            .collect();
        p.hidden = hidden;
        tracing::debug!(room = %self.name, participant = pid, changes = changes.len(), "video-hidden");
        let router = self.router;
        for (consumer, paused) in changes {
            self.command(Command::SetConsumerPaused {
                router,
                consumer,
                paused,
            });
        }
    }

    /// `video-size`: each live video consumer of this participant forwards
    /// no larger simulcast layer than covers the width it is shown at
    /// (publishers left out: no limit). Only changes are sent to the core.
    fn on_video_size(
        &mut self,
        conn: &ConnHandle,
        widths: &std::collections::HashMap<String, u32>,
    ) {
        let Some(pid) = self.pid_of(conn.id()) else {
            conn.send(&ServerMsg::error("not-joined", "join a room first"));
            return;
        };
        if widths.len() > 1000 {
            conn.send(&ServerMsg::error(
                "bad-message",
                "video-size lists at most 1,000 participants",
            ));
            return;
        }
        let widths: std::collections::HashMap<String, u16> = widths
            .iter()
            .map(|(id, w)| (id.clone(), (*w).clamp(1, u32::from(u16::MAX)) as u16))
            .collect();
        let Some(i) = self.idx(pid) else { return };
        let p = &mut self.participants[i];
        let changes: Vec<(sfu_core::ConsumerId, Option<u16>)> = p
            .neg
            .live_tracks()
            .filter(|t| t.kind == MediaKind::Video)
            .filter(|t| {
                let id = t.stream_id();
                widths.get(&id) != p.widths.get(&id)
            })
            .map(|t| (t.consumer, widths.get(&t.stream_id()).copied()))
            .collect();
        p.widths = widths;
        tracing::debug!(room = %self.name, participant = pid, changes = changes.len(), "video-size");
        let router = self.router;
        for (consumer, width) in changes {
            self.command(Command::SetConsumerMaxWidth {
                router,
                consumer,
                width,
            });
        }
    }

    /// `offer-request`: grant it now, or once the outstanding update is
    /// answered ([`Negotiation::request_offer`]).
    fn on_offer_request(&mut self, conn: &ConnHandle) {
        let Some(pid) = self.pid_of(conn.id()) else {
            conn.send(&ServerMsg::error("not-joined", "join a room first"));
            return;
        };
        let timeout = self.ctx.cfg.offer_timeout;
        let Some(i) = self.idx(pid) else { return };
        if self.participants[i]
            .neg
            .request_offer(Instant::now(), timeout)
        {
            conn.send(&ServerMsg::OfferGranted);
        }
    }

    /// The client's own offer (after `offer-granted`): publishes its new
    /// m-sections, closes the producers of those it stopped, answers with
    /// `offer-answer`, and subscribes everyone else to the new tracks.
    async fn on_offer(&mut self, conn: &ConnHandle, offer_sdp: &str, screen: &[String]) {
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
        let mid_ext_id = offer.media.iter().find_map(|m| m.mid_ext_id);
        let router = self.router;
        let mut published = Vec::new();
        let mut tracks = Vec::new();
        for j in new {
            let m = &offer.media[j];
            match self
                .publish_section(transport, m, mid_ext_id, screen.contains(&m.mid))
                .await
            {
                Ok((media, track)) => {
                    published.push((j, media, track.as_ref().map(|t| t.producer)));
                    tracks.extend(track);
                }
                Err(Fail(msg)) => {
                    for t in &tracks {
                        self.command(Command::CloseProducer {
                            router,
                            producer: t.producer,
                        });
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
            self.command(Command::CloseConsumer {
                router,
                consumer: t.consumer,
            });
        }
        self.narrow(router, pid, &outcome.narrowed);
        for &producer in &outcome.ended {
            self.command(Command::CloseProducer { router, producer });
        }
        let others: Vec<u64> = self
            .participants
            .iter()
            .map(|o| o.id)
            .filter(|o| *o != pid)
            .collect();
        for other in others {
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
        if sharing != was_sharing {
            self.broadcast_participants();
        }
        self.negotiate(pid);
    }

    /// `media-state`: tells everyone (in `participants`) when it changed.
    fn on_media_state(&mut self, conn: &ConnHandle, audio_muted: bool, video_off: bool) {
        let Some(pid) = self.pid_of(conn.id()) else {
            conn.send(&ServerMsg::error("not-joined", "join a room first"));
            return;
        };
        let Some(i) = self.idx(pid) else { return };
        let p = &mut self.participants[i];
        if (p.audio_muted, p.video_off) == (audio_muted, video_off) {
            return;
        }
        p.audio_muted = audio_muted;
        p.video_off = video_off;
        self.broadcast_participants();
    }

    async fn on_update_failed(&mut self, conn: &ConnHandle, message: &str) {
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
    async fn failed_update(&mut self, pid: u64, why: &str) {
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

    async fn on_timeouts(&mut self, now: Instant) {
        let expired: Vec<u64> = self
            .participants
            .iter()
            .filter(|p| p.neg.grant_expired(now))
            .map(|p| p.id)
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
        let due: Vec<u64> = self
            .participants
            .iter()
            .filter(|p| p.neg.handle_timeout(now))
            .map(|p| p.id)
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

    /// Removes a participant: closes its transport (and with it its
    /// producers and every consumer of them) and updates the others.
    async fn remove_participant(&mut self, pid: u64, close_transport: bool) {
        let Some(i) = self.idx(pid) else { return };
        let p = self.participants.remove(i);
        self.set_count();
        if close_transport {
            self.command(Command::CloseTransport {
                router: self.router,
                transport: p.transport,
            });
        }
        self.tell_hub(RoomNotice::Left {
            conn: p.conn.id(),
            join: p.join,
        });
        tracing::info!(room = %self.name, participant = pid, name = %p.name, "participant left");
        let others: Vec<u64> = self.participants.iter().map(|o| o.id).collect();
        for other in others {
            if let Some(j) = self.idx(other) {
                // The data plane removed the consumers with the producers.
                self.participants[j].neg.remove_publisher(pid);
            }
            self.negotiate(other);
        }
        self.broadcast_participants();
        self.report_if_idle();
    }

    fn broadcast_participants(&self) {
        let participants: Vec<ParticipantInfo> = self
            .participants
            .iter()
            .map(|p| ParticipantInfo {
                id: format!("p{}", p.id),
                name: p.name.clone(),
                audio_muted: p.audio_muted,
                video_off: p.video_off,
                screen: p.published.iter().any(|t| t.screen),
            })
            .collect();
        let msg = ServerMsg::Participants {
            room: self.name.clone(),
            participants,
        };
        for p in &self.participants {
            p.conn.send(&msg);
        }
        // Who speaks, for those who just joined (and it does no harm to
        // the others).
        if let Some(id) = self
            .speaker
            .filter(|s| self.participants.iter().any(|p| p.id == *s))
        {
            let msg = ServerMsg::Speaker {
                id: format!("p{id}"),
            };
            for p in &self.participants {
                p.conn.send(&msg);
            }
        }
    }

    async fn on_core(&mut self, ev: Event) {
        match ev {
            Event::TransportConnected { transport, .. } => {
                tracing::debug!(room = %self.name, %transport, "transport connected");
            }
            Event::DominantSpeaker { producer, .. } => {
                let Some(p) = self
                    .participants
                    .iter()
                    .find(|p| p.published.iter().any(|t| t.producer == producer))
                else {
                    return;
                };
                if self.speaker == Some(p.id) {
                    return;
                }
                self.speaker = Some(p.id);
                tracing::debug!(room = %self.name, participant = p.id, "dominant speaker");
                let msg = ServerMsg::Speaker {
                    id: format!("p{}", p.id),
                };
                for p in &self.participants {
                    p.conn.send(&msg);
                }
            }
            Event::SourceLayers {
                producer, active, ..
            } => {
                let Some((p, t)) = self.participants.iter().find_map(|p| {
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
            Event::AudioLevels { levels, .. } => {
                let levels: std::collections::BTreeMap<String, i8> = levels
                    .iter()
                    .filter_map(|(producer, level)| {
                        let p = self
                            .participants
                            .iter()
                            .find(|p| p.published.iter().any(|t| t.producer == *producer))?;
                        Some((format!("p{}", p.id), -(i8::try_from(*level).unwrap_or(127))))
                    })
                    .collect();
                let msg = ServerMsg::Levels { levels };
                for p in &self.participants {
                    p.conn.send(&msg);
                }
            }
            Event::TransportClosed {
                transport, reason, ..
            } => {
                if reason == CloseReason::Closed {
                    return;
                }
                // Ids are never reused, so this is the participant whose
                // transport closed, even if someone joined since.
                let Some(p) = self.participants.iter().find(|p| p.transport == transport) else {
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
            other => tracing::debug!(room = %self.name, event = ?other, "core event"),
        }
    }

    /// The router or its worker failed: everyone, and every join still
    /// queued, gets `room-failed`.
    async fn fail_all(&mut self, rx: &mut mpsc::Receiver<RoomMsg>) {
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
        }
        self.set_count();
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

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}
