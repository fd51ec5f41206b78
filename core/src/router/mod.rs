//! Router: one room's forwarding graph — its transports, producers and
//! consumers — driven sans-IO by the worker that owns the room's socket.
//!
//! Feed datagrams with [`Router::handle_datagram`], time with
//! [`Router::handle_timeout`] (no later than [`Router::poll_timeout`]), and
//! after each call drain [`Router::poll_transmit`] and [`Router::poll_event`].

pub mod active_speaker;
pub mod bwe;
pub mod consumer;
pub mod delay_based;
pub mod id_slab;
pub mod layers;
pub mod nack;
pub mod probe;
pub mod producer;
pub mod rate_meter;
pub mod receive_stats;
pub mod retransmission;
pub mod rtp_listener;
pub mod seq_manager;
pub mod twcc_receiver;
pub mod twcc_sender;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use consumer::{Answered, Consumer, ConsumerParams};
pub use producer::{EncodingParams, MediaKind, Producer, ProducerParams};

use self::active_speaker::SpeakerDetector;
use self::bwe::SendSideBwe;
use self::consumer::{NO_LAYER, RTX_BURST};
use self::id_slab::IdSlab;
use self::layers::LayerInfo;
use self::nack::{Arrival, NackGenerator};
use self::probe::{ProbeCluster, ProbeOutcome};
use self::rate_meter::RateMeter;
use self::retransmission::{RetransmissionBuffer, Stored};
use self::rtp_listener::{Route, RtpListener};
use self::twcc_receiver::{FEEDBACK_INTERVAL, TwccReceiver};
use self::twcc_sender::{PacketResult, TwccSender};
use crate::error::{Error, Result};
use crate::ids::{ConsumerId, ProducerId, Rid, RouterId, Ssrc, TransportId};
use crate::proto::codec::{VideoCodec, Vp8Descriptor, h264_sps_size};
use crate::proto::demux::{PacketClass, classify};
use crate::proto::dtls::Certificate;
use crate::proto::rtcp::{self, RtcpIter, SenderInfo};
use crate::proto::rtp::{Rewrite, RtpHeader, padding_len, unwrap_rtx, write_forwarded};
use crate::proto::{stun, twcc};
use crate::stats::{Counters, DropReason};
use crate::transport::{
    CloseReason, Received, Transmit, TransportEvent, TransportParams, TransportTimeouts,
    WebRtcTransport,
};

/// Capacity of a pooled send buffer, bytes: a 1500 B MTU datagram plus the
/// SRTP tag, with room to spare.
pub const SEND_BUF: usize = 1536;
/// Pooled send buffers kept per router at most.
pub const POOL_MAX: usize = 4096;
/// Packets a subscriber's loss is evaluated over at least.
pub const LOSS_WINDOW_PACKETS: u64 = 100;
/// How often publishers get receiver reports (RFC 3550 §6.4.2).
pub const REPORT_INTERVAL: Duration = Duration::from_secs(1);
/// A lowered REMB cap goes out at once, but no more often than this.
pub const REMB_MIN_INTERVAL: Duration = Duration::from_millis(200);
/// How often simulcast consumers' layers are chosen (and encodings' rates
/// measured).
pub const LAYERS_INTERVAL: Duration = Duration::from_millis(500);
/// How long the lowest layer must go on not fitting a lossy path before a
/// consumer (not the first of its subscriber) gets no video: a loss burst
/// alone pauses nothing.
pub const NO_ROOM_HOLD: Duration = Duration::from_secs(2);
/// How long no consumer may need an encoding before its publisher is told
/// to stop it ([`RouterEvent::SourceLayers`]).
pub const SOURCE_LAYERS_HOLD: Duration = Duration::from_secs(3);
/// An encoding with no packet for this long is not offered to consumers.
pub const ENCODING_INACTIVE_AFTER: Duration = Duration::from_millis(1500);

/// `elapsed` as abs-send-time: 6.18 fixed-point seconds, wrapping at 64 s
/// (24 bits; `http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time`).
pub fn abs_send_time(elapsed: Duration) -> u32 {
    // u64 only: this runs per forwarded packet (no u128 division).
    let frac = (u64::from(elapsed.subsec_nanos()) << 18) / 1_000_000_000;
    (((elapsed.as_secs() << 18) | frac) & 0x00ff_ffff) as u32
}

/// Settings of a router.
#[derive(Debug, Clone, Copy)]
pub struct RouterConfig {
    /// Transport timers (ICE, DTLS, consent).
    pub timeouts: TransportTimeouts,
    /// At most one keyframe request per producer per this interval (500 ms).
    pub keyframe_min_interval: Duration,
    /// The SRTP implementation of new transports.
    pub srtp: crate::proto::srtp::SrtpBackend,
    /// A packet missing from a publisher's video is NACKed this long after
    /// the gap is seen (5 ms), so packets merely reordered cost no NACK.
    pub nack_reorder_delay: Duration,
    /// How long a video packet stays in its producer's retransmission buffer
    /// (1.5 s), measured by RTP timestamp.
    pub retransmission_max_age: Duration,
    /// Round-trip time assumed for NACK retries and for resending a packet
    /// at most once per RTT, until one is measured (100 ms).
    pub default_rtt: Duration,
}

impl Default for RouterConfig {
    fn default() -> Self {
        Self {
            timeouts: TransportTimeouts::default(),
            keyframe_min_interval: Duration::from_millis(500),
            srtp: crate::proto::srtp::SrtpBackend::default(),
            nack_reorder_delay: Duration::from_millis(5),
            retransmission_max_age: Duration::from_millis(1500),
            default_rtt: Duration::from_millis(100),
        }
    }
}

/// What a router reports to the control plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouterEvent {
    /// ICE and DTLS completed on the transport.
    TransportConnected(TransportId),
    /// The transport closed (and with it its producers and consumers).
    TransportClosed(TransportId, CloseReason),
    /// The room's dominant speaker changed: this audio producer's
    /// publisher ([`active_speaker`]).
    DominantSpeaker(ProducerId),
    /// The loudest level in the last speaker interval (300 ms) of each
    /// audio producer above silence, as RFC 6464 carries it: 0 is 0 dBov,
    /// 126 is -126 dBov; those left out were silent. Emitted every interval
    /// while one is above silence, then once more (empty).
    AudioLevels(Vec<(ProducerId, u8)>),
    /// The encodings of a simulcast producer that anyone can use changed
    /// (one bool per encoding, in its order): the publisher may stop
    /// encoding the others (`RTCRtpEncodingParameters.active`) and start
    /// them again when told ([`Router`]'s layer pass, every 500 ms).
    SourceLayers(ProducerId, Vec<bool>),
}

#[derive(Debug)]
struct TransportEntry {
    transport: WebRtcTransport,
    producers: Vec<ProducerId>,
    consumers: Vec<ConsumerId>,
    /// The deadline this transport has in the timer heap, if any.
    scheduled: Option<Instant>,
    /// Smoothed round-trip time, measured from the participant's receiver
    /// reports on the SRs we sent it (RFC 3550 §6.4.1), if any yet.
    rtt: Option<Duration>,
    /// Arrival times for transport-cc feedback, when the participant
    /// publishes with the transport-wide sequence number extension.
    twcc: Option<TwccReceiver>,
    /// What this participant can receive: our send-side estimate from its
    /// transport-wide feedback, or from the loss its reports show.
    bwe: SendSideBwe,
    /// Our transport-wide numbering of what we send it, when it negotiated
    /// the extension on any of its consumers.
    twcc_send: Option<TwccSender>,
    /// The last REMB we sent it as a publisher: (when, bit/s).
    last_remb: Option<(Instant, u64)>,
    /// Bytes sent to this participant so far.
    sent_bytes: u64,
    /// The rate we send it at, measured once a second from `sent_bytes`.
    sending_rate: RateMeter,
    /// When its loss was last evaluated, and `sent_bytes` then.
    last_report: Option<(Instant, u64)>,
    /// Packets expected and lost in its reports since then.
    loss_window: (u64, u64),
    /// REMBs still to send that lift a cap this publisher was given (a lost
    /// one would leave the cap in place).
    remb_lifts_left: u8,
    /// Which producer stream each incoming SSRC belongs to.
    listener: RtpListener,
    /// The probe cluster being sent or measured ([`probe`]).
    probe: Option<ActiveProbe>,
    /// No new probe before then.
    probe_next: Option<Instant>,
    /// The wait after a probe that finds nothing more: doubles with each
    /// such probe, back to the least after one that holds.
    probe_interval: Duration,
    /// When a probe last raised its estimate, and the estimate before.
    probe_raised: Option<(Instant, u64)>,
    /// Our last XR RRTRs to it: (NTP middle 32 bits, ms since epoch + 1).
    rrtr_sent: [(u32, u32); 4],
    rrtr_next: usize,
    /// Its last RRTR, for our DLRR: (its SSRC, NTP middle 32 bits, when).
    their_rrtr: Option<(Ssrc, u32, Instant)>,
}

/// A probe cluster of a subscriber transport.
#[derive(Debug)]
struct ActiveProbe {
    cluster: ProbeCluster,
    /// The consumer whose RTX stream carries the padding.
    consumer: ConsumerId,
    started: Instant,
    /// The transport's `sent_bytes` when it started.
    bytes_at_start: u64,
}

/// What a timer-heap entry is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    /// A transport's own timers (ICE, DTLS, consent).
    Transport(TransportId),
    /// A deferred keyframe request of a producer's encoding.
    Keyframe(ProducerId, u8),
    /// NACKs to its publisher on a producer's encoding.
    Nack(ProducerId, u8),
    /// Simulcast layer selection.
    Layers,
    /// Padding of a subscriber transport's probe cluster.
    Probe(TransportId),
    /// Receiver reports to every publisher, once a second.
    Reports,
    /// Transport-wide congestion control feedback to publishers.
    TwccFeedback,
    /// A lowered REMB cap to publishers.
    Remb,
    /// The dominant-speaker decision.
    ActiveSpeaker,
}

/// One room's forwarding graph.
#[derive(Debug)]
pub struct Router {
    id: RouterId,
    cert: Certificate,
    dtls_config: Arc<dimpl::Config>,
    config: RouterConfig,
    transports: IdSlab<TransportId, TransportEntry>,
    by_addr: HashMap<SocketAddr, TransportId>,
    by_ufrag: HashMap<Box<[u8]>, TransportId>,
    producers: IdSlab<ProducerId, Producer>,
    consumers: IdSlab<ConsumerId, Consumer>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<RouterEvent>,
    /// Deadlines, kept incrementally: an entry is pushed when a deadline
    /// becomes earlier than the one scheduled; a popped entry that is not
    /// due (its deadline moved later) is rescheduled. No rescan of all
    /// transports ever happens, and [`Router::poll_timeout`] is O(1).
    timers: BinaryHeap<Reverse<(Instant, Timer)>>,
    counters: Arc<Counters>,
    worker_counters: Arc<Counters>,
    scratch: Vec<u8>,
    /// Send buffers given back after sending ([`Router::recycle`]), so a
    /// forwarded copy in steady state allocates nothing.
    pool: Vec<Vec<u8>>,
    rtcp_buf: Vec<u8>,
    /// A publisher's RTX packet rebuilt as the original (reused).
    unwrap_buf: Vec<u8>,
    /// The plain packet probe padding is written from: a 12-byte header
    /// with the P bit, then [`probe::PADDING`] bytes of padding.
    padding_src: Vec<u8>,
    /// Sequence numbers of one NACK (reused).
    nack_seqs: Vec<u16>,
    /// When the router was created: the zero of its millisecond stamps.
    epoch: Instant,
    /// The receiver-report timer is in the heap.
    reports_scheduled: bool,
    /// The transport-cc feedback timer is in the heap.
    twcc_scheduled: bool,
    /// The REMB timer is in the heap.
    remb_scheduled: bool,
    /// The room's dominant speaker, from audio levels.
    speaker: SpeakerDetector,
    /// The speaker timer is in the heap.
    speaker_scheduled: bool,
    /// The last [`RouterEvent::AudioLevels`] had a level above silence.
    levels_audible: bool,
    /// The layer-selection timer is in the heap.
    layers_scheduled: bool,
    /// When REMBs last went out.
    last_rembs: Option<Instant>,
    /// Results of one transport-wide feedback (reused).
    twcc_results: Vec<PacketResult>,
    /// What the estimate gauges were last set to: (estimates, their sum,
    /// capped subscribers).
    estimate_gauges: (u64, u64, u64),
    rtcp_ssrc: Ssrc,
    /// The latest time the router was given (sans-IO: it never reads a clock).
    now: Instant,
}

impl Router {
    /// Creates an empty router at time `now`. `counters` are this router's,
    /// `worker_counters` the owning worker's; both are updated on the packet path.
    pub fn new(
        id: RouterId,
        cert: Certificate,
        dtls_config: Arc<dimpl::Config>,
        config: RouterConfig,
        counters: Arc<Counters>,
        worker_counters: Arc<Counters>,
        now: Instant,
    ) -> Self {
        Self {
            id,
            cert,
            dtls_config,
            config,
            transports: IdSlab::new(),
            by_addr: HashMap::new(),
            by_ufrag: HashMap::new(),
            producers: IdSlab::new(),
            consumers: IdSlab::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            timers: BinaryHeap::new(),
            counters,
            worker_counters,
            scratch: Vec::with_capacity(1500),
            pool: Vec::new(),
            rtcp_buf: Vec::with_capacity(256),
            unwrap_buf: Vec::with_capacity(SEND_BUF),
            padding_src: {
                let mut p = vec![0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
                p.resize(12 + probe::PADDING - 1, 0);
                p.push(probe::PADDING as u8);
                p
            },
            nack_seqs: Vec::with_capacity(64),
            epoch: now,
            reports_scheduled: false,
            twcc_scheduled: false,
            remb_scheduled: false,
            speaker: SpeakerDetector::default(),
            speaker_scheduled: false,
            levels_audible: false,
            layers_scheduled: false,
            last_rembs: None,
            twcc_results: Vec::with_capacity(256),
            estimate_gauges: (0, 0, 0),
            rtcp_ssrc: Ssrc(rand::random::<u32>() | 1),
            now,
        }
    }

    /// This router's id.
    pub fn id(&self) -> RouterId {
        self.id
    }

    /// This router's counters.
    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// Number of live transports.
    pub fn transport_count(&self) -> usize {
        self.transports.len()
    }

    /// The transport, if it exists (for inspection in tests).
    pub fn transport(&self, id: TransportId) -> Option<&WebRtcTransport> {
        self.transports.get(id).map(|e| &e.transport)
    }

    fn gauge(&self, f: impl Fn(&Counters)) {
        f(&self.counters);
        f(&self.worker_counters);
    }

    fn count_drop(&self, r: DropReason) {
        self.counters.count_drop(r);
        self.worker_counters.count_drop(r);
    }

    /// Adds a WebRtcTransport.
    ///
    /// Errors: [`Error::InvalidParams`] if the ufrag is already used in this
    /// router or the credentials are out of the RFC 8839 §5.4 lengths.
    pub fn create_transport(
        &mut self,
        now: Instant,
        params: TransportParams,
    ) -> Result<TransportId> {
        let u = params.local_ufrag.as_bytes();
        if !(4..=256).contains(&u.len()) || !(22..=256).contains(&params.local_pwd.len()) {
            return Err(Error::InvalidParams(
                "ICE ufrag must be 4-256 and pwd 22-256 characters".into(),
            ));
        }
        if u.contains(&b':') {
            return Err(Error::InvalidParams(
                "ICE ufrag must not contain ':'".into(),
            ));
        }
        if self.by_ufrag.contains_key(u) {
            return Err(Error::InvalidParams("ICE ufrag already in use".into()));
        }
        let ufrag: Box<[u8]> = u.into();
        let t = WebRtcTransport::new(
            params,
            self.config.timeouts,
            &self.cert,
            self.dtls_config.clone(),
            now,
        )
        .with_srtp_backend(self.config.srtp);
        let id = self.transports.insert(TransportEntry {
            transport: t,
            rtt: None,
            twcc: None,
            bwe: SendSideBwe::default(),
            twcc_send: None,
            last_remb: None,
            sent_bytes: 0,
            sending_rate: RateMeter::default(),
            last_report: None,
            loss_window: (0, 0),
            remb_lifts_left: 0,
            rrtr_sent: [(0, 0); 4],
            rrtr_next: 0,
            their_rrtr: None,
            listener: RtpListener::default(),
            probe: None,
            probe_next: None,
            probe_interval: probe::MIN_INTERVAL,
            probe_raised: None,
            producers: Vec::new(),
            consumers: Vec::new(),
            scheduled: None,
        });
        self.by_ufrag.insert(ufrag, id);
        self.schedule_transport(id);
        self.gauge(|c| c.transports.add(1));
        Ok(id)
    }

    /// Closes a transport and everything it owns: its producers (with all
    /// their consumers) and its consumers.
    ///
    /// Errors: [`Error::UnknownTransport`].
    pub fn close_transport(&mut self, id: TransportId) -> Result<()> {
        let entry = self
            .transports
            .get_mut(id)
            .ok_or(Error::UnknownTransport(id))?;
        entry.transport.close(CloseReason::Closed);
        self.after_transport(id);
        Ok(())
    }

    fn remove_transport(&mut self, id: TransportId) {
        let Some(entry) = self.transports.try_remove(id) else {
            return;
        };
        self.by_ufrag
            .remove(entry.transport.local_ufrag().as_bytes());
        self.by_addr.retain(|_, t| *t != id);
        for p in entry.producers {
            self.remove_producer(p);
        }
        for c in entry.consumers {
            self.remove_consumer(c);
        }
        self.gauge(|c| c.transports.add(-1));
    }

    /// Adds a producer on `params.transport`. The SSRCs of its encodings
    /// that the offer announced are bound at once, the others from their
    /// first packets ([`rtp_listener`]).
    ///
    /// Errors: [`Error::UnknownTransport`]; [`Error::InvalidParams`] when
    /// [`ProducerParams::validate`] fails or the transport already has a
    /// stream with one of its SSRCs.
    pub fn create_producer(&mut self, params: ProducerParams) -> Result<ProducerId> {
        let tid = params.transport;
        let entry = self
            .transports
            .get(tid)
            .ok_or(Error::UnknownTransport(tid))?;
        params.validate().map_err(Error::InvalidParams)?;
        let announced = params
            .encodings
            .iter()
            .flat_map(|e| e.ssrc.into_iter().chain(e.rtx_ssrc));
        for ssrc in announced {
            if entry.listener.contains(ssrc) {
                return Err(Error::InvalidParams(format!(
                    "SSRC {} already produced on this transport",
                    ssrc.0
                )));
            }
        }
        let video = params.kind == MediaKind::Video;
        if let Some(id) = params.twcc_ext_id.filter(|id| (1..=14).contains(id)) {
            let now = self.now;
            let e = &mut self.transports[tid];
            if e.twcc.is_none() {
                e.twcc = Some(TwccReceiver::new(id, now));
            }
        }
        let mut producer = Producer::new(params);
        if video {
            // 90 kHz: the RTP clock of every video codec we forward.
            let ticks = self.config.retransmission_max_age.as_millis() as u32 * 90;
            for e in &mut producer.encodings {
                e.buffer = Some(RetransmissionBuffer::new(ticks));
                e.nack = Some(NackGenerator::new(self.config.nack_reorder_delay));
            }
        }
        let simulcast = producer.is_simulcast();
        let id = self.producers.insert(producer);
        let entry = &mut self.transports[tid];
        entry.producers.push(id);
        for (i, e) in self.producers[id].encodings.iter().enumerate() {
            let route = |rtx| Route {
                producer: id,
                encoding: i as u8,
                rtx,
            };
            if let Some(ssrc) = e.ssrc {
                entry.listener.bind(ssrc, route(false));
            }
            if let Some(ssrc) = e.rtx_ssrc {
                entry.listener.bind(ssrc, route(true));
            }
        }
        if !self.reports_scheduled {
            self.reports_scheduled = true;
            self.timers
                .push(Reverse((self.now + REPORT_INTERVAL, Timer::Reports)));
        }
        if self.producers[id].params.audio_level_ext_id.is_some() && !self.speaker_scheduled {
            self.speaker_scheduled = true;
            self.timers.push(Reverse((
                self.now + active_speaker::INTERVAL,
                Timer::ActiveSpeaker,
            )));
        }
        if simulcast && !self.layers_scheduled {
            self.layers_scheduled = true;
            self.timers
                .push(Reverse((self.now + LAYERS_INTERVAL, Timer::Layers)));
        }
        self.gauge(|c| c.producers.add(1));
        Ok(id)
    }

    /// Closes a producer and all its consumers.
    ///
    /// Errors: [`Error::UnknownProducer`].
    pub fn close_producer(&mut self, id: ProducerId) -> Result<()> {
        let p = self.producers.get(id).ok_or(Error::UnknownProducer(id))?;
        let tid = p.params.transport;
        if let Some(e) = self.transports.get_mut(tid) {
            e.producers.retain(|x| *x != id);
        }
        self.remove_producer(id);
        Ok(())
    }

    fn remove_producer(&mut self, id: ProducerId) {
        let Some(p) = self.producers.try_remove(id) else {
            return;
        };
        if let Some(e) = self.transports.get_mut(p.params.transport) {
            e.listener.remove_producer(id);
        }
        self.speaker.remove(id);
        for c in p.consumers {
            if let Some(cons) = self.consumers.get(c) {
                let tid = cons.params.transport;
                if let Some(e) = self.transports.get_mut(tid) {
                    e.consumers.retain(|x| *x != c);
                }
            }
            self.remove_consumer(c);
        }
        self.gauge(|c| c.producers.add(-1));
    }

    /// Adds a consumer of `params.producer` on `params.transport` and asks the
    /// producer for a keyframe so the subscriber can start decoding.
    ///
    /// Errors: [`Error::UnknownTransport`], [`Error::UnknownProducer`],
    /// [`Error::InvalidParams`] (SSRC in use on that transport, bad ext id).
    pub fn create_consumer(&mut self, now: Instant, params: ConsumerParams) -> Result<ConsumerId> {
        let tid = params.transport;
        let entry = self
            .transports
            .get(tid)
            .ok_or(Error::UnknownTransport(tid))?;
        if !self.producers.contains(params.producer) {
            return Err(Error::UnknownProducer(params.producer));
        }
        if entry
            .consumers
            .iter()
            .any(|c| self.consumers[*c].params.ssrc == params.ssrc)
        {
            return Err(Error::InvalidParams(format!(
                "SSRC {} already consumed on this transport",
                params.ssrc.0
            )));
        }
        if params.mid_ext_id.is_some_and(|id| !(1..=14).contains(&id)) {
            return Err(Error::InvalidParams("mid extension id must be 1-14".into()));
        }
        if params.twcc_ext_id.is_some_and(|id| !(1..=14).contains(&id)) {
            return Err(Error::InvalidParams(
                "transport-wide sequence number extension id must be 1-14".into(),
            ));
        }
        if params.twcc_ext_id.is_some() && entry.twcc_send.is_none() {
            self.transports[tid].twcc_send = Some(TwccSender::new(now));
        }
        let pid = params.producer;
        let paused = params.paused;
        let simulcast = self.producers[pid].is_simulcast();
        let mut c = Consumer::new(params, rand::random(), rand::random(), simulcast);
        if simulcast {
            // Until the first selection: the best layer being received.
            let p = &self.producers[pid];
            let layers = Self::layer_infos(p, now);
            if let Some(t) = c
                .simulcast
                .as_mut()
                .and_then(|s| s.selector.select(now, &layers, None, s.max_width))
            {
                c.target_layer = t as u8;
            } else {
                c.target_layer = (p.encodings.len() - 1) as u8;
            }
        }
        let target = c.target_layer;
        let id = self.consumers.insert(c);
        self.transports[tid].consumers.push(id);
        self.producers[pid].consumers.push(id);
        self.gauge(|c| c.consumers.add(1));
        if paused {
            self.gauge(|c| c.paused_consumers.add(1));
        } else {
            self.request_keyframe(now, pid, target);
        }
        Ok(id)
    }

    /// Closes a consumer; forwarding to it stops at once.
    ///
    /// Errors: [`Error::UnknownConsumer`].
    pub fn close_consumer(&mut self, id: ConsumerId) -> Result<()> {
        let c = self.consumers.get(id).ok_or(Error::UnknownConsumer(id))?;
        let tid = c.params.transport;
        if let Some(e) = self.transports.get_mut(tid) {
            e.consumers.retain(|x| *x != id);
        }
        self.remove_consumer(id);
        Ok(())
    }

    fn remove_consumer(&mut self, id: ConsumerId) {
        let Some(c) = self.consumers.try_remove(id) else {
            return;
        };
        if let Some(p) = self.producers.get_mut(c.params.producer) {
            p.consumers.retain(|x| *x != id);
        }
        self.gauge(|c| c.consumers.add(-1));
        if c.paused {
            self.gauge(|c| c.paused_consumers.add(-1));
        }
    }

    /// Pauses or resumes a consumer. Pausing stops forwarding at once;
    /// resuming continues the sequence numbers without a jump and asks the
    /// producer for a keyframe.
    ///
    /// Errors: [`Error::UnknownConsumer`].
    pub fn set_consumer_paused(
        &mut self,
        now: Instant,
        id: ConsumerId,
        paused: bool,
    ) -> Result<()> {
        let c = self
            .consumers
            .get_mut(id)
            .ok_or(Error::UnknownConsumer(id))?;
        if c.paused == paused {
            return Ok(());
        }
        c.paused = paused;
        if !paused {
            c.seq.sync();
            let pid = c.params.producer;
            // A simulcast consumer starts again at a keyframe of its target.
            if let Some(s) = c.simulcast.as_deref_mut() {
                s.last_layer = c.layer.or(s.last_layer);
                c.layer = None;
            }
            let layer = c.target_layer;
            self.gauge(|c| c.paused_consumers.add(-1));
            self.request_keyframe(now, pid, layer);
        } else {
            self.gauge(|c| c.paused_consumers.add(1));
        }
        Ok(())
    }

    /// Narrows a consumer to what the subscriber's answer accepted: without
    /// the RTX codec, retransmissions go out on the media SSRC; an
    /// extension the answer dropped (or gave another id) is not written.
    ///
    /// Errors: [`Error::UnknownConsumer`].
    pub fn consumer_answered(&mut self, id: ConsumerId, answered: &Answered) -> Result<()> {
        let c = self
            .consumers
            .get_mut(id)
            .ok_or(Error::UnknownConsumer(id))?;
        let p = &mut c.params;
        let kept = |ours: Option<u8>, theirs: Option<u8>| ours.filter(|id| theirs == Some(*id));
        p.rtx = p.rtx.filter(|_| answered.rtx);
        p.mid_ext_id = kept(p.mid_ext_id, answered.mid_ext_id);
        p.twcc_ext_id = kept(p.twcc_ext_id, answered.twcc_ext_id);
        p.audio_level_ext_id = kept(p.audio_level_ext_id, answered.audio_level_ext_id);
        p.abs_send_time_ext_id = kept(p.abs_send_time_ext_id, answered.abs_send_time_ext_id);
        p.dependency_descriptor_ext_id = kept(
            p.dependency_descriptor_ext_id,
            answered.dependency_descriptor_ext_id,
        );
        Ok(())
    }

    fn encoding_mut(&mut self, pid: ProducerId, enc: u8) -> Option<&mut producer::Encoding> {
        self.producers
            .get_mut(pid)
            .and_then(|p| p.encodings.get_mut(enc as usize))
    }

    /// The producer, if it exists.
    pub fn producer(&self, id: ProducerId) -> Option<&Producer> {
        self.producers.get(id)
    }

    /// The consumer, if it exists.
    pub fn consumer(&self, id: ConsumerId) -> Option<&Consumer> {
        self.consumers.get(id)
    }

    /// Handles one datagram received on the router's socket from `from`.
    /// SRTP/SRTCP is decrypted in `data` itself (zero-copy receive), so its
    /// contents are unspecified afterwards.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &mut [u8]) {
        self.now = self.now.max(now);
        self.counters.packets_in.add(1);
        self.counters.bytes_in.add(data.len() as u64);
        self.worker_counters.packets_in.add(1);
        self.worker_counters.bytes_in.add(data.len() as u64);
        let tid = match self.by_addr.get(&from) {
            Some(t) => *t,
            None => {
                if classify(data) != PacketClass::Stun {
                    self.count_drop(DropReason::UnknownAddress);
                    return;
                }
                match stun::peek_local_ufrag(data).and_then(|u| self.by_ufrag.get(u)) {
                    Some(t) => *t,
                    None => {
                        self.count_drop(DropReason::BadStun);
                        return;
                    }
                }
            }
        };
        let Some(entry) = self.transports.get_mut(tid) else {
            return;
        };
        let res = entry.transport.handle_datagram(now, from, data);
        self.after_transport(tid);
        match res {
            Err(r) => self.count_drop(r),
            Ok(Received::Nothing) => {}
            Ok(Received::Rtp(n)) => self.on_rtp(now, tid, &data[..n]),
            Ok(Received::Rtcp(n)) => self.on_rtcp(now, tid, &data[..n]),
        }
    }

    /// Drains a transport's transmits and events after any call into it.
    /// Puts the transport's next deadline in the heap when it is earlier
    /// than the one scheduled (a later one is found when the entry pops).
    fn schedule_transport(&mut self, tid: TransportId) {
        let Some(entry) = self.transports.get_mut(tid) else {
            return;
        };
        if let Some(t) = entry.transport.poll_timeout()
            && entry.scheduled.is_none_or(|s| t < s)
        {
            entry.scheduled = Some(t);
            self.timers.push(Reverse((t, Timer::Transport(tid))));
        }
    }

    fn after_transport(&mut self, tid: TransportId) {
        self.schedule_transport(tid);
        let Some(entry) = self.transports.get_mut(tid) else {
            return;
        };
        while let Some(t) = entry.transport.poll_transmit() {
            self.transmits.push_back(t);
        }
        let mut closed = None;
        let mut connected = false;
        while let Some(ev) = entry.transport.poll_event() {
            match ev {
                TransportEvent::Selected(addr) => {
                    self.by_addr.retain(|_, t| *t != tid);
                    self.by_addr.insert(addr, tid);
                }
                TransportEvent::Connected => {
                    connected = true;
                    self.events.push_back(RouterEvent::TransportConnected(tid))
                }
                TransportEvent::Closed(reason) => closed = Some(reason),
            }
        }
        if connected {
            // Keyframe requests made while the publisher was connecting.
            let mut pending = Vec::new();
            for pid in &self.transports[tid].producers {
                for (i, e) in self.producers[*pid].encodings.iter().enumerate() {
                    if e.keyframe_pending {
                        pending.push((*pid, i as u8));
                    }
                }
            }
            for (p, e) in pending {
                self.request_keyframe(self.now, p, e);
            }
        }
        if let Some(reason) = closed {
            if matches!(reason, CloseReason::DtlsFailed(_)) {
                self.count_drop(DropReason::Dtls);
            }
            self.remove_transport(tid);
            self.events
                .push_back(RouterEvent::TransportClosed(tid, reason));
        }
    }

    fn on_rtp(&mut self, now: Instant, tid: TransportId, pkt: &[u8]) {
        let Some(hdr) = RtpHeader::parse(pkt) else {
            self.count_drop(DropReason::MalformedRtp);
            return;
        };
        // Every packet of the transport counts for transport-cc, RTX and
        // padding included.
        if let Some(tw) = &mut self.transports[tid].twcc
            && let Some(&[a, b, ..]) = hdr.extension(pkt, tw.ext_id)
        {
            tw.on_packet(now, u16::from_be_bytes([a, b]));
            if !self.twcc_scheduled {
                self.twcc_scheduled = true;
                self.timers
                    .push(Reverse((now + FEEDBACK_INTERVAL, Timer::TwccFeedback)));
            }
        }
        let route = match self.transports[tid].listener.get(hdr.ssrc) {
            Some(r) => r,
            None => match self.bind_ssrc(tid, pkt, &hdr) {
                Some(r) => r,
                None => {
                    self.count_drop(DropReason::UnknownSsrc);
                    return;
                }
            },
        };
        let (pid, enc) = (route.producer, route.encoding);
        let Some(p) = self.producers.get_mut(pid) else {
            self.count_drop(DropReason::UnknownSsrc);
            return;
        };
        if !route.rtx {
            if !p.params.payload_types.contains(&hdr.pt) {
                self.count_drop(DropReason::UnknownSsrc);
                return;
            }
            let e = &mut p.encodings[enc as usize];
            e.stats.on_packet(now, hdr.seq, hdr.timestamp);
            e.bytes += pkt.len() as u64;
            e.last_packet = Some(now);
            self.forward(now, pid, enc, pkt, &hdr);
            return;
        }
        // RTX (RFC 4588 §4): rebuild the original, then handle it as such.
        let Some(apt) = p
            .params
            .rtx_payload_types
            .iter()
            .find(|(rtx, _)| *rtx == hdr.pt)
            .map(|(_, apt)| *apt)
        else {
            self.count_drop(DropReason::UnknownSsrc);
            return;
        };
        // The media SSRC is not bound yet: nothing to rebuild it as.
        let Some(media) = p.encodings[enc as usize].ssrc else {
            self.count_drop(DropReason::UnknownSsrc);
            return;
        };
        let mut buf = std::mem::take(&mut self.unwrap_buf);
        // No OSN: a padding-only probe, nothing to recover or forward.
        if unwrap_rtx(pkt, &hdr, media, apt, &mut buf).is_some()
            && let Some(orig) = RtpHeader::parse(&buf)
        {
            self.forward(now, pid, enc, &buf, &orig);
        }
        self.unwrap_buf = buf;
    }

    /// Binds an SSRC the offer did not announce from the packet's MID and
    /// RID (or, on an RTX payload type, repaired RID) header extensions
    /// (RFC 8852 §3, RFC 8843 §15): the producer whose MID it carries, its
    /// encoding with that RID. A producer with one encoding and no RID binds
    /// by MID alone. `None` when nothing matches.
    fn bind_ssrc(&mut self, tid: TransportId, pkt: &[u8], hdr: &RtpHeader) -> Option<Route> {
        let e = self.transports.get(tid)?;
        let mut found = None;
        for pid in &e.producers {
            let pp = &self.producers[*pid].params;
            let (Some(mid_id), Some(mid)) = (pp.mid_ext_id, pp.mid) else {
                continue;
            };
            if hdr.extension(pkt, mid_id) != Some(mid.as_bytes()) {
                continue;
            }
            let rtx = pp.rtx_payload_types.iter().any(|(r, _)| *r == hdr.pt);
            let rid_id = if rtx {
                pp.repaired_rid_ext_id.or(pp.rid_ext_id)
            } else {
                pp.rid_ext_id
            };
            let rid = rid_id
                .and_then(|id| hdr.extension(pkt, id))
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(Rid::new);
            let encoding = match rid {
                Some(r) => pp.encodings.iter().position(|e| e.rid == Some(r)),
                None if pp.encodings.len() == 1 && pp.encodings[0].rid.is_none() => Some(0),
                None => None,
            };
            if let Some(i) = encoding {
                found = Some(Route {
                    producer: *pid,
                    encoding: i as u8,
                    rtx,
                });
                break;
            }
        }
        let route = found?;
        let e = &mut self.transports[tid];
        let replaced = e.listener.bind(hdr.ssrc, route);
        let enc = &mut self.producers[route.producer].encodings[route.encoding as usize];
        if route.rtx {
            enc.rtx_ssrc = Some(hdr.ssrc);
        } else {
            enc.ssrc = Some(hdr.ssrc);
        }
        tracing::debug!(
            router = %self.id,
            producer = %route.producer,
            rid = ?enc.rid.map(|r| r.to_string()),
            ssrc = hdr.ssrc.0,
            rtx = route.rtx,
            replaced = ?replaced.map(|s| s.0),
            "bound an SSRC from its MID and RID"
        );
        Some(route)
    }

    /// Handles one media packet of producer `pid`'s encoding `enc`
    /// (received, or rebuilt from RTX): loss tracking, the retransmission
    /// buffer, then one rewritten and encrypted copy per consumer of that
    /// encoding. A packet already received is dropped. A simulcast consumer
    /// whose target is `enc` switches to it at its keyframe.
    fn forward(&mut self, now: Instant, pid: ProducerId, enc: u8, pkt: &[u8], hdr: &RtpHeader) {
        let mut keyframe_needed = false;
        let mut missing = false;
        let producer = &mut self.producers[pid];
        // The publisher's audio level (RFC 6464), copied to each subscriber
        // under its own id, and the loudest of the interval for the
        // speaker detection.
        let level = producer
            .params
            .audio_level_ext_id
            .and_then(|id| hdr.extension(pkt, id))
            .and_then(|v| v.first().copied());
        if let Some(l) = level {
            producer.loudest_level = producer.loudest_level.min(l & 0x7f);
        }
        let simulcast = producer.is_simulcast();
        let codec = producer.params.video_codec;
        let e = &mut producer.encodings[enc as usize];
        if let Some(g) = &mut e.nack {
            let arrival = g.on_packet(now, hdr.seq);
            missing = g.missing() > 0;
            match arrival {
                Arrival::New | Arrival::Old => {}
                Arrival::Recovered => {
                    self.counters.packets_recovered.add(1);
                    self.worker_counters.packets_recovered.add(1);
                }
                Arrival::Reset => keyframe_needed = true,
            }
        }
        if let Some(b) = &mut e.buffer
            && b.insert(hdr.seq, hdr.timestamp, pkt) == Stored::Duplicate
        {
            self.count_drop(DropReason::Duplicate);
            return;
        }
        // What a layer switch needs of the payload: only for simulcast.
        let (mut vp8, mut is_keyframe) = (None, false);
        if simulcast && let Some(codec) = codec {
            let payload = payload_of(pkt, hdr);
            if codec == VideoCodec::Vp8 {
                vp8 = Vp8Descriptor::parse(payload);
                is_keyframe = vp8.is_some_and(|d| d.keyframe);
                if let Some(size) = vp8.and_then(|d| d.size) {
                    e.size = Some(size);
                }
            } else {
                is_keyframe = codec.is_keyframe(payload);
                // An H.264 keyframe starts with its SPS: the layer's size.
                if is_keyframe
                    && codec == VideoCodec::H264
                    && let Some(size) = h264_sps_size(payload)
                {
                    e.size = Some(size);
                }
            }
        }
        // Nothing missing (the common case): no NACK timer to look at.
        if missing {
            self.schedule_nack(pid, enc);
        }
        if keyframe_needed {
            self.request_keyframe(now, pid, enc);
        }
        let Self {
            transports,
            producers,
            consumers,
            transmits,
            scratch,
            pool,
            counters,
            worker_counters,
            epoch,
            ..
        } = self;
        let producer = &producers[pid];
        let payload_len = (pkt.len() - hdr.header_len) as u32;
        // Our send time as abs-send-time.
        let send_time = abs_send_time(now.saturating_duration_since(*epoch));
        let dd = producer
            .params
            .dependency_descriptor_ext_id
            .and_then(|id| hdr.extension(pkt, id));
        for cid in &producer.consumers {
            let c = &mut consumers[*cid];
            if c.paused {
                continue;
            }
            if c.layer != Some(enc) {
                if c.target_layer != enc || !is_keyframe {
                    continue;
                }
                let before = c.layer_switches();
                switch_layer(
                    c,
                    &producer.encodings,
                    enc,
                    hdr.timestamp,
                    vp8.as_ref(),
                    now,
                );
                if c.layer_switches() > before {
                    counters.layer_switches.add(1);
                    worker_counters.layer_switches.add(1);
                }
            }
            let Some(pt) = c.map_pt(hdr.pt) else { continue };
            let Some(seq) = c.seq.input(hdr.seq) else {
                continue;
            };
            let Some(t) = transports.get_mut(c.params.transport) else {
                continue;
            };
            let timestamp = hdr.timestamp.wrapping_add(c.ts_offset);
            let rw = Rewrite {
                ssrc: c.params.ssrc,
                pt,
                seq,
                timestamp,
                mid: c.params.mid_ext_id.zip(c.params.mid),
                twcc: c
                    .params
                    .twcc_ext_id
                    .zip(t.twcc_send.as_ref().map(|s| s.peek())),
                audio_level: c.params.audio_level_ext_id.zip(level),
                abs_send_time: c.params.abs_send_time_ext_id.map(|id| (id, send_time)),
                dependency_descriptor: c.params.dependency_descriptor_ext_id.zip(dd),
                osn: None,
            };
            write_forwarded(pkt, hdr, &rw, scratch);
            if let Some(s) = c.simulcast.as_deref_mut() {
                s.on_forwarded(scratch, payload_len as usize, vp8.as_ref(), timestamp, now);
            }
            if send_rtp(t, scratch, pool, transmits, now, rw.twcc.is_some()).is_some() {
                c.packets_sent = c.packets_sent.wrapping_add(1);
                c.octets_sent = c.octets_sent.wrapping_add(payload_len);
                c.rtx_tokens = (c.rtx_tokens + 0.5).min(RTX_BURST);
                counters.rtp_forwarded.add(1);
                worker_counters.rtp_forwarded.add(1);
            }
        }
    }

    /// Puts the next NACK deadline of producer `pid`'s encoding `enc` in
    /// the heap when it is earlier than the one scheduled.
    fn schedule_nack(&mut self, pid: ProducerId, enc: u8) {
        let Some(tid) = self.producers.get(pid).map(|p| p.params.transport) else {
            return;
        };
        let rtt = self.rtt(tid);
        let Some(e) = self.encoding_mut(pid, enc) else {
            return;
        };
        if let Some(t) = e.nack.as_ref().and_then(|g| g.next_deadline(rtt))
            && e.nack_scheduled.is_none_or(|s| t < s)
        {
            e.nack_scheduled = Some(t);
            self.timers.push(Reverse((t, Timer::Nack(pid, enc))));
        }
    }

    /// Sends the due NACKs of producer `pid`'s encoding `enc` to its
    /// publisher; a packet given up asks for a keyframe.
    fn send_nacks(&mut self, now: Instant, pid: ProducerId, enc: u8) {
        let Some(tid) = self.producers.get(pid).map(|p| p.params.transport) else {
            return;
        };
        let rtt = self.rtt(tid);
        let Some(e) = self
            .producers
            .get_mut(pid)
            .and_then(|p| p.encodings.get_mut(enc as usize))
        else {
            return;
        };
        let Some(media) = e.ssrc else { return };
        let Some(g) = &mut e.nack else { return };
        self.nack_seqs.clear();
        let gave_up = g.poll(now, rtt, &mut self.nack_seqs);
        if gave_up > 0 {
            self.counters.packets_lost.add(gave_up as u64);
            self.worker_counters.packets_lost.add(gave_up as u64);
        }
        if !self.nack_seqs.is_empty() {
            let items = rtcp::nack_items(&self.nack_seqs);
            self.rtcp_buf.clear();
            rtcp::write_empty_rr(self.rtcp_ssrc, &mut self.rtcp_buf);
            rtcp::write_nack(self.rtcp_ssrc, media, &items, &mut self.rtcp_buf);
            if let Some(e) = self.transports.get_mut(tid)
                && let Some(tx) = e.transport.protect_rtcp(&self.rtcp_buf)
            {
                self.transmits.push_back(tx);
                self.counters.nacks_sent.add(1);
                self.worker_counters.nacks_sent.add(1);
            }
        }
        self.schedule_nack(pid, enc);
        if gave_up > 0 {
            self.request_keyframe(now, pid, enc);
        }
    }

    fn on_rtcp(&mut self, now: Instant, tid: TransportId, pkt: &[u8]) {
        if !rtcp::is_well_formed(pkt) {
            self.count_drop(DropReason::MalformedRtcp);
            return;
        }
        for p in RtcpIter::new(pkt) {
            // Loss on this subscriber's video since its previous reports.
            let (mut expected, mut lost) = (0u64, 0i64);
            for b in rtcp::report_blocks(&p) {
                self.on_report_block(now, tid, &b);
                if let Some(cid) = self.find_consumer(tid, b.ssrc)
                    && self
                        .producers
                        .get(self.consumers[cid].params.producer)
                        .is_some_and(|p| p.params.kind == MediaKind::Video)
                {
                    let c = &mut self.consumers[cid];
                    if let Some((hi, cum)) = c.feedback.last_reported
                        && b.ext_highest_seq.wrapping_sub(hi) < 1 << 16
                    {
                        expected += u64::from(b.ext_highest_seq.wrapping_sub(hi));
                        lost += i64::from(b.cumulative_lost - cum);
                    }
                    c.feedback.last_reported = Some((b.ext_highest_seq, b.cumulative_lost));
                }
            }
            if expected > 0 {
                self.on_subscriber_loss(now, tid, expected, lost.max(0) as u64);
            }
            match (p.pt, p.count_or_fmt) {
                (rtcp::PT_SR, _) => {
                    if let Some(si) = SenderInfo::parse(&p) {
                        self.relay_sender_report(now, tid, si);
                    }
                }
                (rtcp::PT_PSFB, 1) => {
                    if let Some(ssrc) = p.media_ssrc() {
                        self.keyframe_for_consumer_ssrc(now, tid, ssrc);
                    }
                }
                (rtcp::PT_PSFB, 4) => {
                    for ssrc in p.fir_ssrcs() {
                        self.keyframe_for_consumer_ssrc(now, tid, ssrc);
                    }
                }
                (rtcp::PT_RTPFB, 1) => self.on_nack(now, tid, &p),
                (rtcp::PT_RTPFB, twcc::FMT) => self.on_twcc_feedback(now, tid, &p),
                (rtcp::PT_XR, _) => self.on_xr(now, tid, &p),
                // A subscriber's own estimate (Chromium's receive-side
                // estimator, when it has REMB and no transport-cc).
                (rtcp::PT_PSFB, 15) => {
                    if let Some((bps, _)) = rtcp::parse_remb(&p) {
                        self.counters.rembs_received.add(1);
                        self.worker_counters.rembs_received.add(1);
                        if let Some(e) = self.transports.get_mut(tid)
                            && e.bwe.on_remb(now, bps, e.sending_rate.bps())
                        {
                            self.schedule_rembs(now);
                        }
                    }
                }
                // Receiver reports (taken above), SDES, BYE: consumed.
                _ => {}
            }
        }
    }

    fn find_consumer(&self, tid: TransportId, ssrc: Ssrc) -> Option<ConsumerId> {
        let entry = self.transports.get(tid)?;
        entry
            .consumers
            .iter()
            .copied()
            .find(|c| self.consumers[*c].params.ssrc == ssrc)
    }

    /// A subscriber's PLI or FIR: a keyframe of the encoding its consumer
    /// forwards, or of the one it is to switch to.
    fn keyframe_for_consumer_ssrc(&mut self, now: Instant, tid: TransportId, ssrc: Ssrc) {
        if let Some(cid) = self.find_consumer(tid, ssrc) {
            let c = &self.consumers[cid];
            let (pid, enc) = (c.params.producer, c.layer.unwrap_or(c.target_layer));
            self.request_keyframe(now, pid, enc);
        }
    }

    /// Sends a PLI to the producer's publisher, at most one per
    /// `keyframe_min_interval`; a request inside the interval is deferred to
    /// its end, and one made before the publisher's transport is connected
    /// is deferred until it is — neither is lost.
    fn request_keyframe(&mut self, now: Instant, pid: ProducerId, enc: u8) {
        let interval = self.config.keyframe_min_interval;
        let Some(p) = self.producers.get_mut(pid) else {
            return;
        };
        if p.params.kind != MediaKind::Video {
            return;
        }
        let tid = p.params.transport;
        let Some(p) = p.encodings.get_mut(enc as usize) else {
            return;
        };
        let publisher_connected = self
            .transports
            .get(tid)
            .is_some_and(|e| e.transport.is_connected());
        if !publisher_connected || p.last_keyframe_request.is_some_and(|t| now < t + interval) {
            // Sent once the interval has passed (a timer), or once the
            // publisher connects (after_transport).
            if !p.keyframe_pending
                && publisher_connected
                && let Some(last) = p.last_keyframe_request
            {
                self.timers
                    .push(Reverse((last + interval, Timer::Keyframe(pid, enc))));
            }
            p.keyframe_pending = true;
            return;
        }
        // An SSRC not bound yet: its first keyframe comes anyway.
        let Some(media) = p.ssrc else { return };
        p.last_keyframe_request = Some(now);
        p.keyframe_pending = false;
        self.rtcp_buf.clear();
        rtcp::write_empty_rr(self.rtcp_ssrc, &mut self.rtcp_buf);
        rtcp::write_pli(self.rtcp_ssrc, media, &mut self.rtcp_buf);
        if let Some(e) = self.transports.get_mut(tid)
            && let Some(tx) = e.transport.protect_rtcp(&self.rtcp_buf)
        {
            self.transmits.push_back(tx);
            self.counters.keyframe_requests.add(1);
            self.worker_counters.keyframe_requests.add(1);
        }
    }

    /// Rewrites a producer's SR for each of its consumers (SSRC, RTP timestamp
    /// offset, the consumer's own counts) so subscribers can sync audio and video.
    fn relay_sender_report(&mut self, now: Instant, tid: TransportId, si: SenderInfo) {
        let now_ms = self.ms_since_epoch(now);
        let Self {
            transports,
            producers,
            consumers,
            transmits,
            rtcp_buf,
            ..
        } = self;
        let Some(entry) = transports.get(tid) else {
            return;
        };
        let Some(route) = entry.listener.get(si.ssrc).filter(|r| !r.rtx) else {
            return;
        };
        let Some(producer) = producers.get_mut(route.producer) else {
            return;
        };
        let e = &mut producer.encodings[route.encoding as usize];
        e.last_sr = Some(si);
        e.stats.on_sender_report(now, si.ntp);
        for cid in &producer.consumers {
            let c = &consumers[*cid];
            if c.paused || c.layer != Some(route.encoding) {
                continue;
            }
            rtcp_buf.clear();
            SenderInfo {
                ssrc: c.params.ssrc,
                ntp: si.ntp,
                rtp_ts: si.rtp_ts.wrapping_add(c.ts_offset),
                packets: c.packets_sent,
                octets: c.octets_sent,
            }
            .write(rtcp_buf);
            if let Some(t) = transports.get_mut(c.params.transport)
                && let Some(tx) = t.transport.protect_rtcp(rtcp_buf)
            {
                transmits.push_back(tx);
                // For the RTT, when the subscriber reports on this SR.
                let ntp_mid = (si.ntp >> 16) as u32;
                let c = &mut consumers[*cid];
                let f = &mut c.feedback;
                f.sr_sent[f.sr_next % f.sr_sent.len()] = (ntp_mid, now_ms);
                f.sr_next = f.sr_next.wrapping_add(1);
            }
        }
    }

    fn ms_since_epoch(&self, now: Instant) -> u32 {
        now.saturating_duration_since(self.epoch).as_millis() as u32 + 1
    }

    /// The round-trip time measured to transport `id` from its receiver
    /// reports, if any yet.
    pub fn transport_rtt(&self, id: TransportId) -> Option<Duration> {
        self.transports.get(id).and_then(|e| e.rtt)
    }

    /// Transport `id`'s send-side bandwidth estimate (what we may send it).
    pub fn transport_bwe(&self, id: TransportId) -> Option<&SendSideBwe> {
        self.transports.get(id).map(|e| &e.bwe)
    }

    /// The RTT to transport `tid`: measured, else the configured default.
    fn rtt(&self, tid: TransportId) -> Duration {
        self.transports
            .get(tid)
            .and_then(|e| e.rtt)
            .unwrap_or(self.config.default_rtt)
    }

    /// A subscriber's report block about one of our consumer SSRCs gives the
    /// RTT to it (RFC 3550 §6.4.1: now − LSR's send time − DLSR), smoothed
    /// with a 1/8 gain as TCP does (RFC 6298 §2).
    fn on_report_block(&mut self, now: Instant, tid: TransportId, b: &rtcp::ReportBlock) {
        if b.lsr == 0 {
            return;
        }
        let Some(cid) = self.find_consumer(tid, b.ssrc) else {
            return;
        };
        let now_ms = self.ms_since_epoch(now);
        let c = &self.consumers[cid];
        let Some(&(_, sent_ms)) = c
            .feedback
            .sr_sent
            .iter()
            .find(|(lsr, ms)| *lsr == b.lsr && *ms != 0)
        else {
            return;
        };
        self.rtt_sample(tid, now_ms, sent_ms, b.dlsr);
    }

    /// A subscriber's report on its video: `expected` packets of which
    /// `lost` were lost since its previous reports. Once at least
    /// [`LOSS_WINDOW_PACKETS`] are counted, their loss fraction and the rate
    /// we sent it in the meantime feed its loss-based estimate (fewer
    /// packets would make random loss look like congestion now and then).
    fn on_subscriber_loss(&mut self, now: Instant, tid: TransportId, expected: u64, lost: u64) {
        let Some(e) = self.transports.get_mut(tid) else {
            return;
        };
        if e.bwe.has_feedback() {
            return; // transport-wide feedback tells loss per packet, sooner
        }
        for c in [&self.counters, &self.worker_counters] {
            c.packets_lost_out.add(lost);
            c.packets_reported_out.add(expected);
        }
        let (at, bytes) = *e.last_report.get_or_insert((now, e.sent_bytes));
        e.loss_window.0 += expected;
        e.loss_window.1 += lost;
        let (exp, lst) = e.loss_window;
        let secs = now.saturating_duration_since(at).as_secs_f64();
        if exp < LOSS_WINDOW_PACKETS || secs < 0.2 {
            return;
        }
        let fraction = ((lst.min(exp) << 8) / exp).min(255) as u8;
        let bps = ((e.sent_bytes - bytes) as f64 * 8.0 / secs) as u64;
        let lowered = e.bwe.on_receiver_report(now, fraction, bps);
        e.last_report = Some((now, e.sent_bytes));
        e.loss_window = (0, 0);
        if lowered {
            self.schedule_rembs(now);
        }
    }

    /// A subscriber's transport-wide feedback (draft-holmer-rmcat-transport-
    /// wide-cc-extensions-01 §3.1) on what we sent it: matched against what
    /// we sent, it feeds the subscriber's send-side estimate.
    fn on_twcc_feedback(&mut self, now: Instant, tid: TransportId, p: &rtcp::RtcpPacket<'_>) {
        let Some(fb) = twcc::parse(p.bytes) else {
            self.count_drop(DropReason::MalformedRtcp);
            return;
        };
        // `--log sfu::twcc=trace` shows each one (how the Chromium capture in
        // testdata/packets was taken).
        tracing::trace!(
            target: "sfu::twcc",
            hex = %p.bytes.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            packets = fb.arrivals.len(),
            "transport-cc feedback from a subscriber"
        );
        let rtt = self.rtt(tid);
        let Some(e) = self.transports.get_mut(tid) else {
            return;
        };
        let Some(sender) = &e.twcc_send else { return };
        sender.on_feedback(&fb, &mut self.twcc_results);
        if self.twcc_results.is_empty() {
            return;
        }
        let now_us = sender.now_us(now);
        let lost = self
            .twcc_results
            .iter()
            .filter(|r| r.recv_us.is_none())
            .count();
        for c in [&self.counters, &self.worker_counters] {
            c.packets_lost_out.add(lost as u64);
            c.packets_reported_out.add(self.twcc_results.len() as u64);
        }
        let lowered = e.bwe.on_feedback(now, now_us, &self.twcc_results, rtt);
        let outcome = match &mut e.probe {
            Some(p) => p.cluster.on_results(&self.twcc_results).or_else(|| {
                // Feedback that never covers the end: give up on it.
                (now.saturating_duration_since(p.started) > Duration::from_secs(2))
                    .then_some(ProbeOutcome::Failed)
            }),
            None => None,
        };
        if let Some(outcome) = outcome {
            let target = e.probe.take().map_or(0, |p| p.cluster.target_bps);
            let before = e.bwe.bps();
            // The path took all of it: probe again soon if still needed (a
            // rise that congestion undoes backs off, in select_layers). It
            // took less (a bottleneck spread it out) or lost it: back off,
            // so a capped path is not hammered.
            let took_all = match outcome {
                ProbeOutcome::Rate(bps) => {
                    if e.bwe.on_probe_result(now, bps) {
                        // A chain of rises is undone to where it began.
                        let was = e.probe_raised.map_or(before, |(_, w)| w);
                        e.probe_raised = Some((now, was));
                    }
                    bps >= target * 9 / 10
                }
                ProbeOutcome::Failed => false,
            };
            // A rise the very next probe contradicts was a bucket's burst.
            if !took_all
                && let Some((at, was)) = e.probe_raised.take()
                && now.saturating_duration_since(at) < probe::CONFIRM
            {
                e.bwe.undo_probe(was);
            }
            let wait = if took_all {
                probe::MIN_INTERVAL
            } else {
                e.probe_interval = (e.probe_interval * 2).min(probe::MAX_INTERVAL);
                e.probe_interval
            };
            e.probe_next = Some(now + wait);
            tracing::debug!(
                target: "sfu::bwe",
                transport = %tid,
                target,
                ?outcome,
                before,
                after = e.bwe.bps(),
                next_in_ms = wait.as_millis() as u64,
                "probe measured"
            );
        }
        if lowered {
            self.schedule_rembs(now);
        }
    }

    /// Starts a probe cluster of `target_bps` to subscriber transport `tid`,
    /// its padding on consumer `cid`'s RTX stream.
    fn start_probe(&mut self, now: Instant, tid: TransportId, cid: ConsumerId, target_bps: u64) {
        let Some(e) = self.transports.get_mut(tid) else {
            return;
        };
        let Some(sender) = &e.twcc_send else { return };
        e.probe = Some(ActiveProbe {
            cluster: ProbeCluster::new(sender.now_us(now), target_bps),
            consumer: cid,
            started: now,
            bytes_at_start: e.sent_bytes,
        });
        self.counters.probes.add(1);
        self.worker_counters.probes.add(1);
        self.send_probe_padding(now, tid);
    }

    /// Sends what a probe cluster is due by `now` beyond the media sent
    /// meanwhile, as padding-only RTX packets (RFC 3550 §5.1, RFC 4588),
    /// and re-arms itself every 5 ms until the cluster's time is over.
    fn send_probe_padding(&mut self, now: Instant, tid: TransportId) {
        const TICK: Duration = Duration::from_millis(5);
        let send_time = abs_send_time(now.saturating_duration_since(self.epoch));
        let Self {
            transports,
            consumers,
            transmits,
            scratch,
            pool,
            padding_src,
            timers,
            ..
        } = self;
        let Some(t) = transports.get_mut(tid) else {
            return;
        };
        let Some(p) = &t.probe else { return };
        let elapsed = now.saturating_duration_since(p.started);
        if elapsed >= probe::CLUSTER {
            return;
        }
        let Some(c) = consumers.get_mut(p.consumer) else {
            return;
        };
        let Some((rtx_ssrc, rtx_pt)) = c.params.rtx else {
            return;
        };
        let due = (p.cluster.target_bps as f64 * (elapsed + TICK).as_secs_f64() / 8.0) as u64;
        let sent = t.sent_bytes - p.bytes_at_start;
        let mut left = due.saturating_sub(sent);
        let Some(hdr) = RtpHeader::parse(padding_src) else {
            return;
        };
        let timestamp = c
            .simulcast
            .as_ref()
            .and_then(|s| s.last_ts)
            .map_or(0, |(ts, _)| ts);
        // At most 64 a tick: a 5 ms tick of a 10 Mbit/s probe.
        for _ in 0..64 {
            if left == 0 {
                break;
            }
            let rw = Rewrite {
                ssrc: rtx_ssrc,
                pt: rtx_pt,
                seq: c.rtx_seq,
                timestamp,
                mid: c.params.mid_ext_id.zip(c.params.mid),
                twcc: c
                    .params
                    .twcc_ext_id
                    .zip(t.twcc_send.as_ref().map(|s| s.peek())),
                audio_level: None,
                abs_send_time: c.params.abs_send_time_ext_id.map(|id| (id, send_time)),
                dependency_descriptor: None,
                osn: None,
            };
            write_forwarded(padding_src, &hdr, &rw, scratch);
            let Some(len) = send_rtp(t, scratch, pool, transmits, now, rw.twcc.is_some()) else {
                break;
            };
            c.rtx_seq = c.rtx_seq.wrapping_add(1);
            left = left.saturating_sub(len as u64);
        }
        timers.push(Reverse((now + TICK, Timer::Probe(tid))));
    }

    /// Sends the publishers' lowered REMB caps now, or as soon as
    /// [`REMB_MIN_INTERVAL`] since the last ones allows.
    fn schedule_rembs(&mut self, now: Instant) {
        if self.remb_scheduled {
            return;
        }
        self.remb_scheduled = true;
        let at = self
            .last_rembs
            .map_or(now, |t| (t + REMB_MIN_INTERVAL).max(now));
        self.timers.push(Reverse((at, Timer::Remb)));
    }

    /// The REMB cap for each publisher transport: the lowest share of a
    /// congested subscriber's estimate among the subscribers of its video.
    /// A subscriber's estimate, less 5 % for retransmissions and RTCP, is
    /// shared evenly by the publishers whose video it receives.
    fn publisher_caps(&self) -> Vec<(TransportId, u64)> {
        let mut caps: Vec<(TransportId, u64)> = Vec::new();
        let mut publishers: Vec<TransportId> = Vec::new();
        for (_, sub) in self.transports.iter() {
            let Some(cap) = sub.bwe.cap() else {
                continue;
            };
            // REMB caps all a publisher sends (its audio too), so the
            // subscriber's estimate is shared by the publishers whose video
            // it receives.
            publishers.clear();
            for x in &sub.consumers {
                // A simulcast producer is not capped: the estimate picks
                // its consumer's layer instead.
                if let Some(p) = self.producers.get(self.consumers[*x].params.producer)
                    && p.params.kind == MediaKind::Video
                    && !p.is_simulcast()
                    && !publishers.contains(&p.params.transport)
                {
                    publishers.push(p.params.transport);
                }
            }
            let share = cap * 95 / 100 / publishers.len().max(1) as u64;
            for t in &publishers {
                match caps.iter_mut().find(|(c, _)| c == t) {
                    Some((_, v)) => *v = (*v).min(share),
                    None => caps.push((*t, share)),
                }
            }
        }
        caps
    }

    /// What consumers can choose from of producer `p`'s encodings at `now`.
    fn layer_infos(p: &Producer, now: Instant) -> Vec<LayerInfo> {
        p.encodings
            .iter()
            .map(|e| LayerInfo {
                bps: e.rate.bps(),
                width: e.size.map(|(w, _)| w),
                active: e
                    .last_packet
                    .is_some_and(|t| now.saturating_duration_since(t) < ENCODING_INACTIVE_AFTER),
            })
            .collect()
    }

    /// Measures each encoding's rate, then chooses each simulcast
    /// consumer's target layer ([`layers`]). A subscriber's estimate, when
    /// congestion limits it, less 5 % and less what its other consumers
    /// receive, is shared by its simulcast consumers in order, the dominant
    /// speaker's first: each gets its lowest layer while the estimate has
    /// room for it, and better ones in that order; one with no room left
    /// gets no video ([`NO_LAYER`]), the first always its lowest. A consumer not
    /// yet on its target asks for a keyframe of it (again, should the
    /// request or the keyframe have been lost). Every [`LAYERS_INTERVAL`]
    /// while a simulcast producer exists.
    fn select_layers(&mut self, now: Instant) {
        let mut any = false;
        for (_, p) in self.producers.iter_mut() {
            any |= p.is_simulcast();
            for e in &mut p.encodings {
                e.rate.sample(now, e.bytes, Duration::from_millis(900));
            }
        }
        if !any {
            self.layers_scheduled = false;
            return;
        }
        // A probe's rise that congestion undid was a policer's bucket
        // letting a short burst through: back off. One that held for
        // PROBE_CONFIRM was real.
        for (_, e) in self.transports.iter_mut() {
            let Some((r, _)) = e.probe_raised else {
                continue;
            };
            match e.bwe.last_congestion() {
                Some(c) if c >= r => {
                    e.probe_interval = (e.probe_interval * 2).min(probe::MAX_INTERVAL);
                    e.probe_next = Some(c + e.probe_interval);
                    e.probe_raised = None;
                }
                _ if now.saturating_duration_since(r) >= probe::CONFIRM => {
                    e.probe_interval = probe::MIN_INTERVAL;
                    e.probe_raised = None;
                }
                _ => {}
            }
        }
        let speaker = self
            .speaker
            .current()
            .and_then(|p| self.producers.get(p))
            .map(|p| p.params.transport);
        // Each simulcast producer's layers, and the rate of its lowest
        // active one, once for every consumer.
        let infos: HashMap<ProducerId, (Vec<LayerInfo>, u64)> = self
            .producers
            .iter()
            .filter(|(_, p)| p.is_simulcast())
            .map(|(id, p)| {
                let layers = Self::layer_infos(p, now);
                let lowest = layers
                    .iter()
                    .filter(|l| l.active)
                    .map(|l| l.bps)
                    .min()
                    .unwrap_or(0);
                (id, (layers, lowest))
            })
            .collect();
        let Self {
            transports,
            producers,
            consumers,
            ..
        } = self;
        let mut requests = Vec::new();
        let mut probes = Vec::new();
        let mut ours: Vec<(bool, ConsumerId)> = Vec::new();
        for (tid, sub) in transports.iter() {
            ours.clear();
            let mut other = 0u64;
            for cid in &sub.consumers {
                let c = &consumers[*cid];
                let Some(p) = producers.get(c.params.producer) else {
                    continue;
                };
                if c.paused {
                    continue;
                }
                if p.is_simulcast() {
                    ours.push((Some(p.params.transport) != speaker, *cid));
                } else {
                    other += p.encodings[0].rate.bps();
                }
            }
            if ours.is_empty() {
                continue;
            }
            ours.sort();
            // Loss the estimate holds through (2–10 %, gcc-02 §6) means the
            // path is full: what got through is the bound then.
            let loss = sub.bwe.last_loss();
            let through = (loss > bwe::INCREASE_BELOW)
                .then_some((sub.sending_rate.bps() as f64 * (1.0 - loss)) as u64);
            let mut budget = sub
                .bwe
                .cap()
                .map(|cap| (cap.min(through.unwrap_or(u64::MAX)) * 95 / 100).saturating_sub(other));
            let limited = budget.is_some();
            // Video is paused for want of room only on a path that loses
            // packets: a receiver starved of CPU also delays its feedback,
            // and that alone must not take tiles away.
            let lossy = loss > bwe::INCREASE_BELOW;
            let mut reserve: u64 = ours
                .iter()
                .filter_map(|(_, c)| infos.get(&consumers[*c].params.producer))
                .map(|(_, lowest)| lowest)
                .sum();
            for (i, (_, cid)) in ours.iter().enumerate() {
                let c = &mut consumers[*cid];
                let Some((offered, min)) = infos.get(&c.params.producer) else {
                    continue;
                };
                let min = *min;
                reserve = reserve.saturating_sub(min);
                let Some(s) = c.simulcast.as_deref_mut() else {
                    continue;
                };
                // Not even the lowest layer fits what is left: this one
                // gets no video rather than everyone too much (those before
                // it in the order keep theirs; the first always has one).
                // A paused one resumes once the lowest layer has fit with
                // the upgrade margin for as long as a probe's rise takes to
                // be confirmed (a policer's bucket lets a chain of probes
                // through for seconds), after its backoff.
                let room = budget.is_none_or(|b| b as f64 >= min as f64 * layers::UP_MARGIN);
                if c.target_layer == NO_LAYER && room {
                    s.room_since.get_or_insert(now);
                } else {
                    s.room_since = None;
                }
                let resting = c.target_layer == NO_LAYER
                    && (s.no_room_until.is_some_and(|t| now < t)
                        || s.room_since
                            .is_none_or(|t| now.saturating_duration_since(t) < probe::CONFIRM));
                // Starved for NO_ROOM_HOLD on a lossy path: no room. Right
                // after a resume from such a pause, at once: the resume
                // failed, and waiting would congest the others.
                if lossy && budget.is_some_and(|b| b < min) {
                    s.starved_since.get_or_insert(now);
                } else {
                    s.starved_since = None;
                }
                let just_resumed = s.no_room_backoff.is_some_and(|(_, resumed)| {
                    now.saturating_duration_since(resumed) < layers::FAILED_WITHIN
                });
                let hold = if just_resumed {
                    Duration::ZERO
                } else {
                    NO_ROOM_HOLD
                };
                let starved = s
                    .starved_since
                    .is_some_and(|t| now.saturating_duration_since(t) >= hold);
                if i > 0 && (resting || starved) {
                    if c.target_layer != NO_LAYER {
                        // Paused again soon after a resume: wait longer.
                        let wait = match s.no_room_backoff {
                            Some((d, resumed)) if now.saturating_duration_since(resumed) < d => {
                                (d * 2).min(layers::BACKOFF_MAX)
                            }
                            _ => layers::BACKOFF_MIN,
                        };
                        s.no_room_until = Some(now + wait);
                        s.no_room_backoff = Some((wait, now));
                        tracing::debug!(
                            target: "sfu::layers",
                            consumer = %cid,
                            budget = ?budget,
                            lowest = min,
                            "no room for the lowest layer: video paused"
                        );
                        s.last_layer = c.layer.or(s.last_layer);
                        c.layer = None;
                        c.target_layer = NO_LAYER;
                    }
                    continue;
                }
                if c.target_layer == NO_LAYER
                    && let Some((d, _)) = s.no_room_backoff
                {
                    s.no_room_backoff = Some((d, now));
                }
                let share = budget.map(|b| b.saturating_sub(reserve));
                let Some(t) = s.selector.select(now, offered, share, s.max_width) else {
                    continue;
                };
                if c.target_layer != t as u8 {
                    tracing::debug!(
                        target: "sfu::layers",
                        consumer = %cid,
                        from = c.target_layer,
                        to = t,
                        share = ?share,
                        layer_bps = offered[t].bps,
                        "new target layer"
                    );
                }
                c.target_layer = t as u8;
                budget = budget.map(|b| b.saturating_sub(offered[t].bps));
                if c.layer != Some(c.target_layer) {
                    requests.push((c.params.producer, c.target_layer));
                }
            }
            // Consumers held below what their tiles want by the estimate
            // alone: probe whether the path takes enough for that.
            if limited
                && sub.probe.is_none()
                && sub.twcc_send.is_some()
                && sub.bwe.has_feedback()
                && sub.probe_next.is_none_or(|t| now >= t)
            {
                let mut need = 0u64;
                let mut via = None;
                for (_, cid) in &ours {
                    let c = &consumers[*cid];
                    let Some((offered, _)) = infos.get(&c.params.producer) else {
                        continue;
                    };
                    let max_width = c.simulcast.as_ref().and_then(|s| s.max_width);
                    let Some(best) = layers::best_for_size(offered, max_width) else {
                        continue;
                    };
                    let current = offered.get(c.target_layer as usize).map_or(0, |l| l.bps);
                    if offered[best].bps > current {
                        need += (offered[best].bps as f64 * layers::UP_MARGIN) as u64 - current;
                        if c.params.rtx.is_some() {
                            via = Some(*cid);
                        }
                    }
                }
                if let Some(cid) = via {
                    let est = sub.bwe.bps();
                    let target = (est + need * 100 / 95).clamp(est * 12 / 10, est * 3 / 2);
                    probes.push((tid, cid, target));
                }
            }
        }
        for (pid, enc) in requests {
            self.request_keyframe(now, pid, enc);
        }
        for (tid, cid, target) in probes {
            self.start_probe(now, tid, cid, target);
        }
        self.update_source_layers(now, &infos);
        self.timers
            .push(Reverse((now + LAYERS_INTERVAL, Timer::Layers)));
    }

    /// Which encodings of each simulcast producer someone can use: those
    /// its unpaused consumers' tiles need by width
    /// ([`layers::needed_for_size`]), those they forward now, and always
    /// the narrowest. A change is a [`RouterEvent::SourceLayers`]: at once
    /// when more are needed, after [`SOURCE_LAYERS_HOLD`] of needing
    /// fewer (a tile that shrinks for a moment stops nothing).
    /// `infos`: each simulcast producer's layers, as this layer pass
    /// measured them.
    fn update_source_layers(
        &mut self,
        now: Instant,
        infos: &HashMap<ProducerId, (Vec<LayerInfo>, u64)>,
    ) {
        let Self {
            producers,
            consumers,
            events,
            ..
        } = self;
        for (pid, p) in producers.iter_mut() {
            let Some((infos, _)) = infos.get(&pid) else {
                continue;
            };
            let n = infos.len().min(8);
            let all = ((1u16 << n) - 1) as u8;
            let narrowest = infos
                .iter()
                .enumerate()
                .min_by_key(|(i, l)| (l.width.unwrap_or(u16::MAX), *i))
                .map_or(0, |(i, _)| i);
            let mut needed = 1u8 << narrowest;
            for cid in &p.consumers {
                let Some(c) = consumers.get(*cid) else {
                    continue;
                };
                if c.paused {
                    continue;
                }
                if let Some(l) = c.layer {
                    needed |= 1 << l;
                }
                let max_width = c.simulcast.as_ref().and_then(|s| s.max_width);
                needed |= layers::needed_for_size(infos, max_width);
            }
            needed &= all;
            let sent = p.source_layers.0 & all;
            let mut next = sent | needed;
            if sent & !needed != 0 {
                let since = *p.source_layers.1.get_or_insert(now);
                if now.saturating_duration_since(since) >= SOURCE_LAYERS_HOLD {
                    next = needed;
                }
            }
            if next == needed {
                p.source_layers.1 = None;
            }
            if next != sent {
                tracing::debug!(
                    target: "sfu::layers",
                    producer = %pid,
                    from = format_args!("{sent:b}"),
                    to = format_args!("{next:b}"),
                    "encodings the publisher should send"
                );
                p.source_layers.0 = next;
                events.push_back(RouterEvent::SourceLayers(
                    pid,
                    (0..n).map(|i| next & (1 << i) != 0).collect(),
                ));
            }
        }
    }

    /// Sets the largest width, in pixels, at which the subscriber shows
    /// consumer `id`'s video (`None`: no limit): a simulcast consumer then
    /// forwards no wider layer than covers it. The next layer selection
    /// (within [`LAYERS_INTERVAL`]) applies it.
    ///
    /// Errors: [`Error::UnknownConsumer`].
    pub fn set_consumer_max_width(&mut self, id: ConsumerId, width: Option<u16>) -> Result<()> {
        let c = self
            .consumers
            .get_mut(id)
            .ok_or(Error::UnknownConsumer(id))?;
        if let Some(s) = c.simulcast.as_deref_mut() {
            s.max_width = width;
        }
        Ok(())
    }

    /// One speaker-detection interval: each audio producer's loudest level
    /// becomes its activity, the detector decides, and a new speaker is an
    /// event. Re-armed while a producer sends levels.
    fn decide_speaker(&mut self, now: Instant) {
        let mut activity = Vec::new();
        let mut levels = Vec::new();
        for (id, p) in self.producers.iter_mut() {
            if p.params.audio_level_ext_id.is_none() {
                continue;
            }
            let level = p.loudest_level.min(127);
            activity.push((id, 127 - level));
            if level < 127 {
                levels.push((id, level));
            }
            p.loudest_level = 127;
        }
        let audible = !levels.is_empty();
        if audible || self.levels_audible {
            self.events.push_back(RouterEvent::AudioLevels(levels));
        }
        self.levels_audible = audible;
        if let Some(p) = self.speaker.on_interval(&activity) {
            self.events.push_back(RouterEvent::DominantSpeaker(p));
        }
        self.speaker_scheduled = !activity.is_empty();
        if self.speaker_scheduled {
            self.timers.push(Reverse((
                now + active_speaker::INTERVAL,
                Timer::ActiveSpeaker,
            )));
        }
    }

    /// Sends each publisher with transport-cc its feedback on what arrived
    /// since the last one; the timer is re-armed by the next packet.
    fn send_twcc_feedback(&mut self) {
        self.twcc_scheduled = false;
        let Self {
            transports,
            producers,
            transmits,
            rtcp_buf,
            rtcp_ssrc,
            ..
        } = self;
        for e in transports.values_mut() {
            let Some(tw) = e.twcc.as_mut().filter(|t| t.has_pending()) else {
                continue;
            };
            let media = e
                .producers
                .iter()
                .find_map(|p| producers[*p].encodings.iter().find_map(|e| e.ssrc))
                .unwrap_or(Ssrc(0));
            rtcp_buf.clear();
            if tw.write_feedback(*rtcp_ssrc, media, rtcp_buf) > 0
                && e.transport.is_connected()
                && let Some(tx) = e.transport.protect_rtcp(rtcp_buf)
            {
                transmits.push_back(tx);
            }
        }
    }

    /// Sends each publisher whose subscribers are congested its REMB cap
    /// (draft-alvestrand-rmcat-remb): every second with the reports
    /// (`periodic`), and at once when a cap was lowered by 5 % or more. A
    /// lifted cap is announced three times (a lost REMB would leave it).
    fn send_rembs(&mut self, now: Instant, periodic: bool) {
        if !periodic {
            self.remb_scheduled = false;
        }
        let caps = self.publisher_caps();
        let Self {
            transports,
            producers,
            transmits,
            rtcp_buf,
            rtcp_ssrc,
            last_rembs,
            ..
        } = self;
        let mut ssrcs = Vec::new();
        for (tid, e) in transports.iter_mut() {
            if e.producers.is_empty() || !e.transport.is_connected() {
                continue;
            }
            let bps = match caps.iter().find(|(t, _)| *t == tid) {
                Some(&(_, cap)) => {
                    let lowered = e.last_remb.is_none_or(|(_, b)| cap < b * 95 / 100);
                    if !periodic && !lowered {
                        continue;
                    }
                    e.remb_lifts_left = 3;
                    cap
                }
                None if periodic && e.remb_lifts_left > 0 => {
                    e.remb_lifts_left -= 1;
                    bwe::MAX_BPS
                }
                None => continue,
            };
            ssrcs.clear();
            ssrcs.extend(
                e.producers
                    .iter()
                    .flat_map(|p| producers[*p].encodings.iter().filter_map(|e| e.ssrc)),
            );
            rtcp_buf.clear();
            rtcp::write_empty_rr(*rtcp_ssrc, rtcp_buf);
            rtcp::write_remb(*rtcp_ssrc, bps, &ssrcs, rtcp_buf);
            if let Some(tx) = e.transport.protect_rtcp(rtcp_buf) {
                transmits.push_back(tx);
                e.last_remb = Some((now, bps));
                *last_rembs = Some(now);
            }
        }
    }

    /// Sends each publisher a receiver report on all its producers, and
    /// re-arms the timer while any producer exists.
    fn send_reports(&mut self, now: Instant) {
        self.send_rembs(now, true);
        self.update_estimate_gauges(now);
        let (ntp, now_ms) = (self.ntp(now), self.ms_since_epoch(now));
        let Self {
            transports,
            producers,
            transmits,
            rtcp_buf,
            rtcp_ssrc,
            ..
        } = self;
        let mut blocks = Vec::new();
        for (_, e) in transports.iter_mut() {
            let publishes = !e.producers.is_empty();
            if !e.transport.is_connected() || (!publishes && e.their_rrtr.is_none()) {
                continue;
            }
            blocks.clear();
            for pid in &e.producers {
                for enc in &mut producers[*pid].encodings {
                    if let Some(ssrc) = enc.ssrc
                        && let Some(b) = enc.stats.report(now, ssrc)
                    {
                        blocks.push(b);
                    }
                }
            }
            rtcp_buf.clear();
            rtcp::write_rr(*rtcp_ssrc, &blocks, rtcp_buf);
            let mut worth_sending = !blocks.is_empty();
            // RFC 3611: our reference time to a publisher, whose DLRR gives
            // us the RTT even when we send it no media (§4.4)…
            if publishes && worth_sending {
                rtcp::write_xr_rrtr(*rtcp_ssrc, ntp, rtcp_buf);
                e.rrtr_sent[e.rrtr_next % e.rrtr_sent.len()] = ((ntp >> 16) as u32, now_ms);
                e.rrtr_next = e.rrtr_next.wrapping_add(1);
            }
            // …and the DLRR a receiver asked for with its own RRTR (§4.5).
            if let Some((ssrc, lrr, at)) = e.their_rrtr.take() {
                let dlrr = receive_stats::to_1_65536(now.saturating_duration_since(at));
                rtcp::write_xr_dlrr(*rtcp_ssrc, &[(ssrc, lrr, dlrr)], rtcp_buf);
                worth_sending = true;
            }
            if worth_sending && let Some(tx) = e.transport.protect_rtcp(rtcp_buf) {
                transmits.push_back(tx);
            }
        }
        self.reports_scheduled = self
            .transports
            .iter()
            .any(|(_, e)| !e.producers.is_empty() || e.their_rrtr.is_some());
        if self.reports_scheduled {
            self.timers
                .push(Reverse((now + REPORT_INTERVAL, Timer::Reports)));
        }
    }

    /// Measures the rate we send each participant at, and sets the estimate
    /// gauges (`estimates`, `estimate_bps_sum`, `capped_subscribers`) of the
    /// room, moving the worker's by as much. Once a second.
    fn update_estimate_gauges(&mut self, now: Instant) {
        let (mut n, mut sum, mut capped) = (0u64, 0u64, 0u64);
        for (_, e) in self.transports.iter_mut() {
            e.sending_rate.sample(now, e.sent_bytes, Duration::ZERO);
        }
        for (_, e) in self.transports.iter() {
            if e.consumers.is_empty() {
                continue;
            }
            let bps = e.bwe.bps();
            if bps < bwe::MAX_BPS {
                n += 1;
                sum += bps;
            }
            capped += u64::from(e.bwe.cap().is_some());
        }
        for c in [&self.counters, &self.worker_counters] {
            c.estimates.add(n as i64 - self.estimate_gauges.0 as i64);
            c.estimate_bps_sum
                .add(sum as i64 - self.estimate_gauges.1 as i64);
            c.capped_subscribers
                .add(capped as i64 - self.estimate_gauges.2 as i64);
        }
        self.estimate_gauges = (n, sum, capped);
    }

    /// Our clock as a 64-bit NTP timestamp (RFC 3550 §4), for XR RRTR: time
    /// since the router's epoch, which only we interpret when it comes back.
    fn ntp(&self, now: Instant) -> u64 {
        let d = now.saturating_duration_since(self.epoch);
        (d.as_secs() << 32) | ((u64::from(d.subsec_nanos()) << 32) / 1_000_000_000)
    }

    /// An extended report (RFC 3611) from transport `tid`: a receiver's
    /// RRTR is remembered for our DLRR; a DLRR on our RRTR gives the RTT.
    fn on_xr(&mut self, now: Instant, tid: TransportId, p: &rtcp::RtcpPacket<'_>) {
        let Some(xr) = rtcp::parse_xr(p) else { return };
        let sender = p.sender_ssrc();
        let now_ms = self.ms_since_epoch(now);
        let ours = self.rtcp_ssrc;
        if let (Some(ntp), Some(ssrc)) = (xr.rrtr.last(), sender) {
            if let Some(e) = self.transports.get_mut(tid) {
                e.their_rrtr = Some((ssrc, (ntp >> 16) as u32, now));
            }
            if !self.reports_scheduled {
                self.reports_scheduled = true;
                self.timers
                    .push(Reverse((now + REPORT_INTERVAL, Timer::Reports)));
            }
        }
        for (ssrc, lrr, dlrr) in xr.dlrr {
            if ssrc != ours || lrr == 0 {
                continue;
            }
            let Some(&(_, sent_ms)) = self
                .transports
                .get(tid)
                .and_then(|e| e.rrtr_sent.iter().find(|(m, ms)| *m == lrr && *ms != 0))
            else {
                continue;
            };
            self.rtt_sample(tid, now_ms, sent_ms, dlrr);
        }
    }

    /// One RTT sample (RFC 3550 §6.4.1 / RFC 3611 §4.5: now − when our
    /// reference went out − the peer's delay), smoothed with a 1/8 gain as
    /// TCP does (RFC 6298 §2).
    fn rtt_sample(&mut self, tid: TransportId, now_ms: u32, sent_ms: u32, delay_1_65536: u32) {
        let delay_ms = (u64::from(delay_1_65536) * 1000 / 65536) as u32;
        let Some(rtt_ms) = now_ms
            .checked_sub(sent_ms)
            .and_then(|d| d.checked_sub(delay_ms))
        else {
            return;
        };
        let sample = Duration::from_millis(u64::from(rtt_ms.max(1)));
        for c in [&self.counters, &self.worker_counters] {
            c.rtt_ms_sum.add(u64::from(rtt_ms.max(1)));
            c.rtt_samples.add(1);
        }
        if let Some(e) = self.transports.get_mut(tid) {
            e.rtt = Some(match e.rtt {
                None => sample,
                Some(r) => (r * 7 + sample) / 8,
            });
        }
    }

    /// Answers a subscriber's NACK (RFC 4585 §6.2.1) from the producer's
    /// retransmission buffer: each packet still there is sent again, as RTX
    /// on the consumer's RTX SSRC with the original sequence number in front
    /// (RFC 4588 §4) when the subscriber negotiated RTX, else as it was.
    /// A packet is resent at most once per RTT, and within the consumer's
    /// retransmission budget.
    fn on_nack(&mut self, now: Instant, tid: TransportId, p: &rtcp::RtcpPacket<'_>) {
        let Some(ssrc) = p.media_ssrc() else { return };
        let Some(cid) = self.find_consumer(tid, ssrc) else {
            return;
        };
        self.counters.nacks_received.add(1);
        self.worker_counters.nacks_received.add(1);
        let rtt_ms = self.rtt(tid).as_millis() as u32;
        let now_ms = self.ms_since_epoch(now);
        let send_time = abs_send_time(now.saturating_duration_since(self.epoch));
        let Self {
            transports,
            producers,
            consumers,
            transmits,
            scratch,
            pool,
            counters,
            worker_counters,
            ..
        } = self;
        let c = &mut consumers[cid];
        let Some(layer) = c.layer else { return };
        let Some(producer) = producers.get(c.params.producer) else {
            return;
        };
        let simulcast = producer.is_simulcast();
        let vp8 = producer.params.video_codec == Some(VideoCodec::Vp8);
        let Some(buffer) = producer.encodings[layer as usize].buffer.as_ref() else {
            return;
        };
        let Some(t) = transports.get_mut(c.params.transport) else {
            return;
        };
        for out_seq in rtcp::nack_seqs(p) {
            // After a layer switch, what was sent before it is not in this
            // layer's buffer under the same number.
            let input = if simulcast {
                c.seq.output_to_input_in_epoch(out_seq)
            } else {
                Some(c.seq.output_to_input(out_seq))
            };
            let Some(pkt) = input.and_then(|i| buffer.get(i)) else {
                continue;
            };
            let Some(hdr) = RtpHeader::parse(pkt) else {
                continue;
            };
            let si = out_seq as usize % c.feedback.resent.len();
            let (last_seq, last_ms) = c.feedback.resent[si];
            if last_seq == out_seq && last_ms != 0 && now_ms.wrapping_sub(last_ms) < rtt_ms {
                continue;
            }
            if c.rtx_tokens < 1.0 {
                break;
            }
            let Some(pt) = c.map_pt(hdr.pt) else { continue };
            let dd = producer
                .params
                .dependency_descriptor_ext_id
                .and_then(|id| hdr.extension(pkt, id));
            let mut rw = Rewrite {
                ssrc: c.params.ssrc,
                pt,
                seq: out_seq,
                timestamp: hdr.timestamp.wrapping_add(c.ts_offset),
                mid: c.params.mid_ext_id.zip(c.params.mid),
                twcc: c
                    .params
                    .twcc_ext_id
                    .zip(t.twcc_send.as_ref().map(|s| s.peek())),
                audio_level: None,
                abs_send_time: c.params.abs_send_time_ext_id.map(|id| (id, send_time)),
                dependency_descriptor: c.params.dependency_descriptor_ext_id.zip(dd),
                osn: None,
            };
            if let Some((rtx_ssrc, rtx_pt)) = c.params.rtx {
                rw.ssrc = rtx_ssrc;
                rw.pt = rtx_pt;
                rw.seq = c.rtx_seq;
                rw.osn = Some(out_seq);
            }
            write_forwarded(pkt, &hdr, &rw, scratch);
            // The same picture ID and TL0PICIDX as the original copy had.
            if vp8 && let Some(s) = c.simulcast.as_deref_mut() {
                let payload = payload_of(pkt, &hdr);
                if let Some(d) = Vp8Descriptor::parse(payload) {
                    let len = pkt.len() - hdr.header_len;
                    s.on_forwarded(scratch, len, Some(&d), rw.timestamp, now);
                }
            }
            if send_rtp(t, scratch, pool, transmits, now, rw.twcc.is_some()).is_some() {
                if c.params.rtx.is_some() {
                    c.rtx_seq = c.rtx_seq.wrapping_add(1);
                }
                c.feedback.resent[si] = (out_seq, now_ms);
                c.rtx_tokens -= 1.0;
                counters.retransmissions_sent.add(1);
                worker_counters.retransmissions_sent.add(1);
            }
        }
    }

    /// Runs every timer due by `now`: transports' ICE, DTLS and consent
    /// timers, and deferred keyframe requests. Call it no later than
    /// [`Router::poll_timeout`]; calling it early is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        while let Some(&Reverse((at, timer))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            match timer {
                Timer::Transport(tid) => {
                    let Some(e) = self.transports.get_mut(tid) else {
                        continue;
                    };
                    if e.scheduled != Some(at) {
                        continue; // superseded by an earlier entry
                    }
                    e.scheduled = None;
                    if e.transport.poll_timeout().is_some_and(|t| t <= now) {
                        e.transport.handle_timeout(now);
                    }
                    // Reschedules (a deadline that moved later included).
                    self.after_transport(tid);
                }
                Timer::Reports => self.send_reports(now),
                Timer::TwccFeedback => self.send_twcc_feedback(),
                Timer::Remb => self.send_rembs(now, false),
                Timer::ActiveSpeaker => self.decide_speaker(now),
                Timer::Layers => self.select_layers(now),
                Timer::Probe(tid) => self.send_probe_padding(now, tid),
                Timer::Nack(pid, enc) => {
                    let Some(e) = self.encoding_mut(pid, enc) else {
                        continue;
                    };
                    if e.nack_scheduled != Some(at) {
                        continue; // superseded by an earlier entry
                    }
                    e.nack_scheduled = None;
                    self.send_nacks(now, pid, enc);
                }
                Timer::Keyframe(pid, enc) => {
                    let Some(e) = self.encoding_mut(pid, enc) else {
                        continue;
                    };
                    if e.keyframe_pending {
                        // Not pending any more, so request_keyframe re-arms.
                        e.keyframe_pending = false;
                        self.request_keyframe(now, pid, enc);
                    }
                }
            }
        }
    }

    /// The earliest instant by which [`Router::handle_timeout`] must be
    /// called (O(1); it may be earlier than needed, never later).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((t, _))| *t)
    }

    /// Next datagram to send on the router's socket.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Gives a sent datagram's buffer back for reuse by the next forwarded
    /// copies (call it with each [`Transmit`]'s `data` once sent). At most
    /// [`POOL_MAX`] buffers are kept.
    pub fn recycle(&mut self, buf: Vec<u8>) {
        if self.pool.len() < POOL_MAX && buf.capacity() >= SEND_BUF {
            self.pool.push(buf);
        }
    }

    /// Records what one batch send did (datagrams, bytes, refusals, system
    /// calls, GSO messages) in the room's and the worker's counters.
    pub fn count_sent_batch(&self, r: &crate::io::epoll::SendOutcome) {
        for c in [&self.counters, &self.worker_counters] {
            c.packets_out.add(r.sent as u64);
            c.bytes_out.add(r.bytes as u64);
            c.send_errors.add(r.failed as u64);
            c.send_calls.add(r.syscalls as u64);
            c.gso_messages.add(r.gso_messages as u64);
        }
    }

    /// Next event for the control plane.
    pub fn poll_event(&mut self) -> Option<RouterEvent> {
        self.events.pop_front()
    }

    /// Closes every transport (router shutdown).
    pub fn close_all(&mut self) {
        let ids = self.transports.ids();
        for k in ids {
            let _ = self.close_transport(k);
        }
        // The worker's estimate gauges no longer count this room.
        self.update_estimate_gauges(self.now);
    }
}

/// Encrypts the plain RTP packet `plain` for subscriber transport `t` into
/// a pooled buffer and queues it: its bytes count towards what `t` was
/// sent, and with `twcc` (the packet carries the transport's next
/// transport-wide sequence number) it enters the send history. Returns its
/// length on the wire, or `None` when the transport cannot protect yet.
fn send_rtp(
    t: &mut TransportEntry,
    plain: &[u8],
    pool: &mut Vec<Vec<u8>>,
    transmits: &mut VecDeque<Transmit>,
    now: Instant,
    twcc: bool,
) -> Option<usize> {
    let buf = pool.pop().unwrap_or_else(|| Vec::with_capacity(SEND_BUF));
    let tx = t.transport.protect_rtp(plain, buf)?;
    let len = tx.data.len();
    t.sent_bytes += len as u64;
    if twcc && let Some(s) = &mut t.twcc_send {
        s.on_sent(now, len);
    }
    transmits.push_back(tx);
    Some(len)
}

/// The payload of `pkt` without its padding (RFC 3550 §5.1); empty when
/// the padding count is bad.
fn payload_of<'a>(pkt: &'a [u8], hdr: &RtpHeader) -> &'a [u8] {
    match padding_len(pkt, hdr) {
        Some(pad) => &pkt[hdr.header_len..pkt.len() - pad],
        None => &[],
    }
}

/// Clock ticks of 90 kHz video in one second.
const VIDEO_CLOCK: i64 = 90_000;

/// Switches simulcast consumer `c` to encoding `to`, at a keyframe whose
/// RTP timestamp is `ts`: its sequence numbers continue where they were,
/// its timestamps continue from the same capture clock (mapped through the
/// two encodings' sender reports, RFC 3550 §6.4.1, as mediasoup does; from
/// the time since the last packet without them), and the VP8 picture ID
/// and TL0PICIDX continue by one (RFC 7741 §4.2).
fn switch_layer(
    c: &mut Consumer,
    encodings: &[producer::Encoding],
    to: u8,
    ts: u32,
    vp8: Option<&Vp8Descriptor>,
    now: Instant,
) {
    let Some(s) = c.simulcast.as_deref_mut() else {
        c.layer = Some(to);
        c.seq.sync();
        return;
    };
    let from = c.layer.or(s.last_layer);
    c.layer = Some(to);
    c.seq.sync();
    s.last_layer = Some(to);
    if from.is_some_and(|f| f != to) {
        s.switches += 1;
    }
    if let (Some(from), Some((last_ts, at))) = (from, s.last_ts) {
        let elapsed =
            (now.saturating_duration_since(at).as_micros() as i64 * VIDEO_CLOCK / 1_000_000).max(1);
        let by_time = last_ts.wrapping_add(elapsed as u32);
        // The new packet's capture time in the old encoding's clock.
        let by_sr = match (
            encodings.get(from as usize).and_then(|e| e.last_sr),
            encodings.get(to as usize).and_then(|e| e.last_sr),
        ) {
            (Some(a), Some(b)) => {
                let since_b = i64::from(ts.wrapping_sub(b.rtp_ts) as i32);
                let ntp_ticks =
                    ((i128::from(b.ntp) - i128::from(a.ntp)) * i128::from(VIDEO_CLOCK)) >> 32;
                let in_a = a.rtp_ts.wrapping_add((since_b + ntp_ticks as i64) as u32);
                Some(in_a.wrapping_add(c.ts_offset))
            }
            _ => None,
        };
        // Sender reports of the two layers that disagree with the clock by
        // over a second are not trusted.
        let mut out = by_sr
            .filter(|o| i64::from(o.wrapping_sub(by_time) as i32).abs() < VIDEO_CLOCK)
            .unwrap_or(by_time);
        if (out.wrapping_sub(last_ts) as i32) <= 0 {
            out = last_ts.wrapping_add(1);
        }
        c.ts_offset = out.wrapping_sub(ts);
    }
    if let Some(d) = vp8 {
        if let (Some(p), Some(last)) = (d.picture_id, s.last_picture_id) {
            s.picture_id_offset =
                last.wrapping_add(1).wrapping_sub(p) & (d.picture_id_modulus() - 1);
        }
        if let (Some(t), Some(last)) = (d.tl0picidx, s.last_tl0picidx) {
            s.tl0picidx_offset = last.wrapping_add(1).wrapping_sub(t);
        }
    }
}

#[cfg(test)]
mod abs_send_time_tests {
    use super::*;

    #[test]
    fn abs_send_time_is_6_18_fixed_point_seconds_wrapping_at_64_s() {
        assert_eq!(abs_send_time(Duration::ZERO), 0);
        assert_eq!(abs_send_time(Duration::from_millis(500)), 1 << 17);
        assert_eq!(abs_send_time(Duration::from_secs(1)), 1 << 18);
        assert_eq!(
            abs_send_time(Duration::from_millis(63_750)),
            (63 << 18) | (3 << 16)
        );
        assert_eq!(abs_send_time(Duration::from_secs(64)), 0, "wraps");
        assert_eq!(
            abs_send_time(Duration::from_micros(3_814)),
            999,
            "rounds down"
        );
    }
}
