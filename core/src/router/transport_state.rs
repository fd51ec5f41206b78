//! What the Router keeps per transport besides the transport itself: its
//! producers and consumers, estimates, RTT, probing and report state.

use super::*;

/// One transport of the Router and its state.
#[derive(Debug)]
pub(super) struct TransportEntry {
    pub(super) transport: Transport,
    pub(super) producers: Vec<ProducerId>,
    pub(super) consumers: Vec<ConsumerId>,
    /// The deadline this transport has in the timer heap, if any.
    pub(super) scheduled: Option<Instant>,
    /// Smoothed round-trip time, measured from the participant's receiver
    /// reports on the SRs we sent it (RFC 3550 §6.4.1), if any yet.
    pub(super) rtt: Option<Duration>,
    /// Arrival times for transport-cc feedback, when the participant
    /// publishes with the transport-wide sequence number extension.
    pub(super) twcc: Option<TwccReceiver>,
    /// What this participant can receive: our send-side estimate from its
    /// transport-wide feedback, or from the loss its reports show.
    pub(super) bwe: SendSideBwe,
    /// Our transport-wide numbering of what we send it, when it negotiated
    /// the extension on any of its consumers.
    pub(super) twcc_send: Option<TwccSender>,
    /// The last REMB we sent it as a publisher: (when, bit/s).
    pub(super) last_remb: Option<(Instant, u64)>,
    /// Bytes sent to this participant so far.
    pub(super) sent_bytes: u64,
    /// The rate we send it at, measured once a second from `sent_bytes`.
    pub(super) sending_rate: RateMeter,
    /// What got through the last time its path lost packets (bit/s), and
    /// when: the layer pass climbs no higher than that for
    /// a while after ([`crate::bwe::loss_ceiling`]).
    pub(super) loss_ceiling: LossCeiling,
    /// What may be resent to it in answer to its NACKs ([`rtx_budget`]).
    pub(super) rtx_budget: RtxBudget,
    /// When its consumers at full frame rate last began to leave out most
    /// of their top temporal layer for [`super::allocation::RELIEF`], to
    /// make room for resends and a policer's refill under its loss ceiling.
    pub(super) relief: Option<Instant>,
    /// When its loss was last evaluated, and `sent_bytes` then.
    pub(super) last_report: Option<(Instant, u64)>,
    /// Packets expected and lost in its reports since then.
    pub(super) loss_window: (u64, u64),
    /// REMBs still to send that lift a cap this publisher was given (a lost
    /// one would leave the cap in place).
    pub(super) remb_lifts_left: u8,
    /// Which producer stream each incoming SSRC belongs to.
    pub(super) listener: RtpListener,
    /// The probe cluster being sent or measured ([`probe`]).
    pub(super) probe: Option<ActiveProbe>,
    /// When it may probe next, and the backoff ([`probe::ProbeController`]).
    pub(super) probing: ProbeController,
    /// Our last XR RRTRs to it: (NTP middle 32 bits, ms since epoch + 1).
    pub(super) rrtr_sent: [(u32, u32); 4],
    pub(super) rrtr_next: usize,
    /// Its last RRTR, for our DLRR: (its SSRC, NTP middle 32 bits, when).
    pub(super) their_rrtr: Option<(Ssrc, u32, Instant)>,
    pub(super) data: super::data_channels::DataPeer,
}

/// A probe cluster of a subscriber transport.
#[derive(Debug)]
pub(super) struct ActiveProbe {
    pub(super) cluster: ProbeCluster,
    /// The consumer whose RTX stream carries the padding.
    pub(super) consumer: ConsumerId,
    pub(super) started: Instant,
    /// The transport's `sent_bytes` when it started.
    pub(super) bytes_at_start: u64,
}
