//! Router: one room's forwarding graph — its transports, producers and
//! consumers — driven sans-IO by the worker that owns the room's socket.
//!
//! Feed datagrams with [`Router::handle_datagram`], time with
//! [`Router::handle_timeout`] (no later than [`Router::poll_timeout`]), and
//! after each call drain [`Router::poll_transmit`] and [`Router::poll_event`].

pub mod active_speaker;
mod allocation;
mod congestion;
pub mod consumer;
mod consumers;
pub mod data_channels;
mod datagram_in;
pub mod direct;
mod forward;
mod keyframe_requests;
pub mod nack;
mod pipe;
pub mod producer;
mod producers;
pub mod rate_meter;
pub mod receive_stats;
mod reports;
pub mod retransmission;
mod rtcp_in;
mod rtp_in;
pub mod rtp_listener;
pub mod rtx_budget;
pub mod seq_manager;
mod simulcast_consumer;
pub mod svc;
pub mod temporal;
mod timers;
mod transport_state;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use consumer::{Answered, Consumer, ConsumerParams};
pub use data_channels::DataChannelConfig;
pub use pipe::PipeConsumerParams;
pub use producer::{EncodingParams, MediaKind, Producer, ProducerParams};

use self::active_speaker::SpeakerDetector;
use self::consumer::NO_LAYER;
use self::forward::{payload_of, send_rtcp, send_rtp};
use self::nack::{Arrival, NackGenerator};
use self::rate_meter::RateMeter;
use self::retransmission::{RetransmissionBuffer, Stored};
use self::rtp_listener::{Bound, RtpListener};
use self::rtx_budget::RtxBudget;
use self::timers::Timer;
use self::transport_state::{ActiveProbe, TransportEntry};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::bwe::allocator::LayerInfo;
use crate::bwe::loss_ceiling::LossCeiling;
use crate::bwe::probe::{ProbeCluster, ProbeController, ProbeOutcome};
use crate::bwe::twcc_receiver::{FEEDBACK_INTERVAL, TwccReceiver};
use crate::bwe::twcc_sender::{PacketResult, TwccSender};
use crate::bwe::{self, SendSideBwe, allocator, probe};
use crate::error::{Error, ParamsError, Result};
use crate::ids::{ConsumerId, ProducerId, RouterId, Ssrc, TcpConnId, TransportId};
use crate::proto::codec::{
    DependencyDescriptor, VP9_MAX_SPATIAL, VideoCodec, Vp8Descriptor, Vp9Descriptor, h264_sps_size,
};
use crate::proto::demux::{PacketClass, classify};
use crate::proto::dtls::Certificate;
use crate::proto::rtcp::{self, RtcpIter, SenderInfo};
use crate::proto::rtp::{Rewrite, RtpHeader, padding_len, unwrap_rtx, write_forwarded};
use crate::proto::{stun, twcc};
use crate::slab::IdSlab;
use crate::stats::{Counters, DropReason};
use crate::transport::{
    CloseReason, Outbox, Path, PipePacket, Received, SendOutcome, Transmit, Transport,
    TransportEvent, TransportParams, TransportTimeouts, WebRtcTransport,
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
    /// Seed of the router's random numbers (our RTCP SSRC, each consumer's
    /// first sequence number, timestamp offset and RTX sequence number), so
    /// that a run is reproducible: the worker gives each router a random
    /// one, tests a fixed one.
    pub seed: u64,
    /// Data-channel limits ([`data_channels`]).
    pub data: DataChannelConfig,
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
            seed: 0,
            data: DataChannelConfig::default(),
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
    /// A keyframe of this video producer is wanted, and its publisher is
    /// on a direct transport (a file being played back), which no PLI
    /// reaches: the control plane that feeds it is told instead, at most
    /// once per `keyframe_min_interval` as a PLI would be.
    KeyframeRequested(ProducerId),
    /// The Router opened data channel `stream` to `transport`'s peer: its
    /// copy of a channel `from`'s peer opened ([`data_channels`]), so the
    /// control plane can tell the receiver whose it is.
    DataConsumerOpened {
        /// The receiver.
        transport: TransportId,
        /// Our stream id to it (`RTCDataChannel.id` on its side).
        stream: u16,
        /// The sender, whose channel it copies.
        from: TransportId,
    },
    /// This transport's peer sent data-channel messages over its
    /// messages/s or bytes/s limit, which were dropped; reported at most
    /// once per [`data_channels::RATE_NOTICE_INTERVAL`].
    DataRateLimited(TransportId),
    /// This consumer's video stopped: its subscriber's bandwidth has no
    /// room even for its least option (the lowest encoding's base temporal
    /// layer) after every video got down to that ([`Router`]'s layer
    /// pass). The control plane tells the subscriber, whose page shows why
    /// instead of a frozen frame.
    VideoPaused(ConsumerId, PauseReason),
    /// A consumer paused so ([`RouterEvent::VideoPaused`]) forwards again
    /// from its next keyframe.
    VideoResumed(ConsumerId),
}

/// Why the Router stopped a consumer's video.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseReason {
    /// Its subscriber's estimated bandwidth has no room for it.
    LowBandwidth,
}

impl PauseReason {
    /// `low-bandwidth`: the reason as signaling names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LowBandwidth => "low-bandwidth",
        }
    }
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
    /// ICE-TCP connections bound to a transport: each by the first
    /// connectivity check on it that the transport accepted.
    by_tcp: HashMap<TcpConnId, TransportId>,
    /// Connections whose transport went: for the worker to close.
    tcp_to_close: Vec<TcpConnId>,
    by_ufrag: HashMap<Box<[u8]>, TransportId>,
    producers: IdSlab<ProducerId, Producer>,
    consumers: IdSlab<ConsumerId, Consumer>,
    /// Data channels peers opened, by (transport, stream).
    data_producers: HashMap<(TransportId, u16), data_channels::DataProducer>,
    /// One message's receivers (reused).
    data_targets: Vec<(TransportId, u16)>,
    transmits: Outbox,
    events: VecDeque<RouterEvent>,
    /// Deadlines, kept incrementally: an entry is pushed when a deadline
    /// becomes earlier than the one scheduled; a popped entry that is not
    /// due (its deadline moved later) is rescheduled. No rescan of all
    /// transports ever happens, and [`Router::poll_timeout`] is O(1).
    timers: BinaryHeap<Reverse<(Instant, Timer)>>,
    counters: Arc<Counters>,
    worker_counters: Arc<Counters>,
    scratch: Vec<u8>,
    /// One kept packet at a time, retimed for a GOP replay.
    replay_buf: Vec<u8>,
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
    /// Sequence numbers a NACK poll gave up (reused).
    lost_seqs: Vec<u16>,
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
    /// The router's random numbers, from [`RouterConfig::seed`].
    rng: StdRng,
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
        let mut rng = StdRng::seed_from_u64(config.seed);
        Self {
            rtcp_ssrc: Ssrc(rng.random::<u32>() | 1),
            rng,
            id,
            cert,
            dtls_config,
            config,
            transports: IdSlab::new(),
            by_addr: HashMap::new(),
            by_tcp: HashMap::new(),
            tcp_to_close: Vec::new(),
            by_ufrag: HashMap::new(),
            producers: IdSlab::new(),
            consumers: IdSlab::new(),
            data_producers: HashMap::new(),
            data_targets: Vec::new(),
            transmits: Outbox::default(),
            events: VecDeque::new(),
            timers: BinaryHeap::new(),
            counters,
            worker_counters,
            scratch: Vec::with_capacity(1500),
            replay_buf: Vec::with_capacity(1500),
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
            lost_seqs: Vec::new(),
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
        self.transports
            .get(id)
            .and_then(|e| e.transport.as_webrtc())
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
            return Err(ParamsError::IceCredentialLength.into());
        }
        if u.contains(&b':') {
            return Err(ParamsError::UfragColon.into());
        }
        if self.by_ufrag.contains_key(u) {
            return Err(ParamsError::UfragInUse.into());
        }
        let ufrag: Box<[u8]> = u.into();
        let t = WebRtcTransport::new(
            params,
            self.config.timeouts,
            &self.cert,
            self.dtls_config.clone(),
            now,
        )
        .with_srtp_backend(self.config.srtp)
        .with_sctp_config(self.config.data.sctp);
        let id = self.insert_transport(Transport::WebRtc(t));
        self.by_ufrag.insert(ufrag, id);
        self.schedule_transport(id);
        Ok(id)
    }

    /// Adds `transport` to the table with fresh state.
    fn insert_transport(&mut self, transport: Transport) -> TransportId {
        let id = self.transports.insert(TransportEntry {
            transport,
            rtt: None,
            twcc: None,
            bwe: SendSideBwe::default(),
            twcc_send: None,
            last_remb: None,
            sent_bytes: 0,
            sending_rate: RateMeter::default(),
            loss_ceiling: LossCeiling::default(),
            relief: None,
            rtx_budget: RtxBudget::default(),
            last_report: None,
            loss_window: (0, 0),
            remb_lifts_left: 0,
            rrtr_sent: [(0, 0); 4],
            rrtr_next: 0,
            their_rrtr: None,
            listener: RtpListener::default(),
            probe: None,
            probing: ProbeController::default(),
            producers: Vec::new(),
            consumers: Vec::new(),
            scheduled: None,
            data: data_channels::DataPeer::default(),
        });
        self.gauge(|c| c.transports.add(1));
        id
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
        self.forget_data_peer(self.now, id);
        let Some(entry) = self.transports.try_remove(id) else {
            return;
        };
        if let Some(t) = entry.transport.as_webrtc() {
            self.by_ufrag.remove(t.local_ufrag().as_bytes());
        }
        self.by_addr.retain(|_, t| *t != id);
        let gone = &mut self.tcp_to_close;
        self.by_tcp.retain(|c, t| {
            let keep = *t != id;
            if !keep {
                gone.push(*c);
            }
            keep
        });
        for p in entry.producers {
            self.remove_producer(p);
        }
        for c in entry.consumers {
            self.remove_consumer(c);
        }
        self.gauge(|c| c.transports.add(-1));
    }

    /// The producer, if it exists.
    pub fn producer(&self, id: ProducerId) -> Option<&Producer> {
        self.producers.get(id)
    }

    /// The consumer, if it exists.
    pub fn consumer(&self, id: ConsumerId) -> Option<&Consumer> {
        self.consumers.get(id)
    }

    /// Next datagram to send on the router's socket.
    #[must_use]
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
    pub fn count_sent_batch(&self, r: &SendOutcome) {
        for c in [&self.counters, &self.worker_counters] {
            c.packets_out.add(r.sent as u64);
            c.bytes_out.add(r.bytes as u64);
            c.send_errors.add(r.failed as u64);
            c.send_calls.add(r.syscalls as u64);
            c.gso_messages.add(r.gso_messages as u64);
        }
    }

    /// Next event for the control plane.
    #[must_use]
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
