//! Consumer: one subscriber's outgoing copy of a Producer.

use crate::ids::{Mid, ProducerId, Pt, Ssrc, TransportId};
use crate::proto::rtp::{Extension, ExtensionMap, Rewrite};
use crate::router::seq_manager::SeqManager;
use crate::router::simulcast_consumer::SimulcastConsumer;
use crate::router::temporal::TemporalFilter;

/// What the control plane tells the data plane about a subscription.
#[derive(Debug, Clone)]
pub struct ConsumerParams {
    /// The subscriber's transport.
    pub transport: TransportId,
    /// The track it copies.
    pub producer: ProducerId,
    /// SSRC announced to the subscriber (`a=ssrc` of our offer).
    pub ssrc: Ssrc,
    /// MID of the subscriber's m-section.
    pub mid: Option<Mid>,
    /// The header extension ids negotiated with the subscriber (RFC 8285),
    /// each written into what it is sent: the MID, our own transport-wide
    /// sequence number (its feedback then drives our estimate), the
    /// publisher's audio level, our abs-send-time (for its receive-side
    /// estimator) and the publisher's AV1 dependency descriptor.
    pub extensions: ExtensionMap,
    /// (producer PT, subscriber PT) pairs; packets with other PTs are not forwarded.
    pub pt_map: Vec<(Pt, Pt)>,
    /// Start paused.
    pub paused: bool,
    /// The subscriber's RTX stream for this consumer (RFC 4588): (SSRC,
    /// payload type). With it, retransmissions go out as RTX; without, they
    /// are resent on the consumer's own SSRC and sequence number.
    pub rtx: Option<(Ssrc, Pt)>,
}

/// What a subscriber's SDP answer accepted of the m-section we offered for a
/// consumer (RFC 3264 §6): whether it kept the RTX codec, and the header
/// extension ids it echoed (RFC 8285 §6: an answer keeps an offered id or
/// drops the extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answered {
    /// The RTX codec (RFC 4588) is in the answer.
    pub rtx: bool,
    /// The header extension ids the answer declares.
    pub extensions: ExtensionMap,
}

/// A subscriber's copy of a producer.
#[derive(Debug)]
pub struct Consumer {
    pub(crate) params: ConsumerParams,
    pub(crate) seq: SeqManager,
    /// Added to the producer's RTP timestamp (wrapping).
    pub(crate) ts_offset: u32,
    pub(crate) paused: bool,
    pub(crate) packets_sent: u32,
    pub(crate) octets_sent: u32,
    /// Next RTX sequence number.
    pub(crate) rtx_seq: u16,
    /// State for NACKs and reports, kept apart so the fields the forwarding
    /// loop reads for every copy stay on few cache lines.
    pub(crate) feedback: Box<ConsumerFeedback>,
    /// The producer encoding it forwards: always 0 for a single stream; for
    /// simulcast, `None` until the first keyframe of `target_layer`.
    pub(crate) layer: Option<u8>,
    /// The encoding it should forward; switched to at its next keyframe.
    /// [`NO_LAYER`] when its subscriber's bandwidth has no room for it.
    pub(crate) target_layer: u8,
    /// The temporal layers it forwards (all unless its bandwidth is short).
    pub(crate) temporal: TemporalFilter,
    /// Layer switching state, for a consumer of a layered producer
    /// (simulcast or VP9).
    pub(crate) simulcast: Option<Box<SimulcastConsumer>>,
}

/// A consumer's state for retransmissions and RTCP reports (cold).
#[derive(Debug)]
pub(crate) struct ConsumerFeedback {
    /// Recent retransmissions: (consumer seq, ms since the router's epoch + 1;
    /// 0 = none), indexed by seq modulo the length, so one packet is resent
    /// at most once per RTT.
    pub(crate) resent: [(u16, u32); 64],
    /// The last SRs sent to the subscriber: (NTP middle 32 bits, ms since
    /// the router's epoch + 1), for the RTT from its receiver reports.
    pub(crate) sr_sent: [(u32, u32); 4],
    pub(crate) sr_next: usize,
    /// The subscriber's last report on this consumer: (extended highest
    /// sequence number, cumulative lost), to count loss across reports.
    pub(crate) last_reported: Option<(u32, i32)>,
}

/// A simulcast consumer's target when its subscriber's bandwidth has no
/// room even for the lowest layer: nothing is forwarded.
pub const NO_LAYER: u8 = u8::MAX;

impl Consumer {
    /// The header rewrite of a packet this consumer sends now: its SSRC,
    /// payload type `pt`, sequence number `seq` and `timestamp`, and the
    /// extensions it negotiated: its MID, the transport-wide sequence number
    /// `twcc_seq` its transport gives the packet, and abs-send-time
    /// `send_time` (6.18 fixed point) only on a packet that carries no
    /// transport-wide sequence number. A receiver estimates from
    /// abs-send-time only the packets without one (libwebrtc's
    /// `ReceiveSideCongestionController::OnReceivedPacket`), so on the rest
    /// it would be 4 bytes a packet on the wire for nothing. The caller adds
    /// what only some packets carry (the audio level, the dependency
    /// descriptor, RTX's original sequence number, RFC 4588 §4).
    #[inline]
    pub(crate) fn rewrite<'a>(
        &self,
        pt: Pt,
        seq: u16,
        timestamp: u32,
        twcc_seq: Option<u16>,
        send_time: u32,
    ) -> Rewrite<'a> {
        let twcc = self
            .params
            .extensions
            .get(Extension::TransportWideCc)
            .zip(twcc_seq);
        Rewrite {
            ssrc: self.params.ssrc,
            pt,
            seq,
            timestamp,
            mid: self
                .params
                .extensions
                .get(Extension::Mid)
                .zip(self.params.mid),
            twcc,
            audio_level: None,
            abs_send_time: self
                .params
                .extensions
                .get(Extension::AbsSendTime)
                .filter(|_| twcc.is_none())
                .map(|id| (id, send_time)),
            dependency_descriptor: None,
            osn: None,
        }
    }

    pub(crate) fn new(
        params: ConsumerParams,
        initial_seq: u16,
        ts_offset: u32,
        rtx_seq: u16,
        layered: bool,
    ) -> Self {
        let paused = params.paused;
        Self {
            layer: (!layered).then_some(0),
            target_layer: 0,
            temporal: TemporalFilter::default(),
            simulcast: layered.then(Box::default),
            params,
            seq: SeqManager::new(initial_seq),
            ts_offset,
            paused,
            packets_sent: 0,
            octets_sent: 0,
            rtx_seq,
            feedback: Box::new(ConsumerFeedback {
                resent: [(0, 0); 64],
                sr_sent: [(0, 0); 4],
                sr_next: 0,
                last_reported: None,
            }),
        }
    }

    /// The parameters it was created with.
    pub fn params(&self) -> &ConsumerParams {
        &self.params
    }

    /// The encoding of its producer it forwards now (0 for a single
    /// stream; `None` before a simulcast consumer's first keyframe).
    pub fn layer(&self) -> Option<u8> {
        self.layer
    }

    /// The encoding it will switch to at that encoding's next keyframe.
    pub fn target_layer(&self) -> u8 {
        self.target_layer
    }

    /// The temporal layers it forwards now and should forward: highest
    /// temporal layer ids, [`crate::router::temporal::ALL_TEMPORAL`]
    /// for all; with [`crate::router::temporal::WITH_NEXT_SYNC`] added, the
    /// next layer's sync frames too.
    pub fn temporal_layers(&self) -> (u8, u8) {
        (self.temporal.current(), self.temporal.target())
    }

    /// The spatial layers of a VP9 stream it forwards now and should
    /// forward ([`crate::router::svc::ALL_SPATIAL_LAYERS`]: all); `None`
    /// for a consumer that does not choose layers.
    pub fn spatial_layers(&self) -> Option<(u8, u8)> {
        self.simulcast
            .as_ref()
            .map(|s| (s.spatial.current(), s.spatial.target()))
    }

    /// Layer switches done so far.
    pub fn layer_switches(&self) -> u32 {
        self.simulcast.as_ref().map_or(0, |s| s.switches)
    }

    /// Whether forwarding is paused.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Sets what a layered consumer should forward: for a producer with
    /// spatial layers in one stream (`svc`, [`crate::router::producer::Producer::is_svc`])
    /// spatial layer `layer` of its encoding, else encoding `layer`; and
    /// temporal layers up to `temporal`.
    pub(crate) fn set_layer_target(&mut self, svc: bool, layer: u8, temporal: u8) {
        match self.simulcast.as_deref_mut() {
            Some(s) if svc => {
                self.target_layer = 0;
                s.spatial.set_target(layer);
            }
            _ => self.target_layer = layer,
        }
        self.temporal.set_target(temporal);
    }

    /// What [`Consumer::set_layer_target`] set: (spatial layer or
    /// encoding, temporal layer).
    pub(crate) fn layer_target(&self, svc: bool) -> (u8, u8) {
        let layer = match self.simulcast.as_deref() {
            Some(s) if svc && self.target_layer != NO_LAYER => s.spatial.target(),
            _ => self.target_layer,
        };
        (layer, self.temporal.target())
    }

    /// A consumer with layer state on encoding 0 of a producer, for unit
    /// tests that feed it packets.
    #[cfg(test)]
    pub(crate) fn layered_for_test() -> Self {
        use crate::slab::SlabId;
        let params = ConsumerParams {
            transport: TransportId::from_raw(1),
            producer: ProducerId::from_raw(1),
            ssrc: Ssrc(9),
            mid: None,
            extensions: ExtensionMap::EMPTY,
            pt_map: vec![],
            paused: false,
            rtx: None,
        };
        let mut c = Self::new(params, 1000, 0, 0, true);
        c.layer = Some(0);
        c
    }

    pub(crate) fn map_pt(&self, pt: Pt) -> Option<Pt> {
        self.params
            .pt_map
            .iter()
            .find(|(p, _)| *p == pt)
            .map(|(_, c)| *c)
    }
}
