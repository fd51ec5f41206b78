//! Producer: an incoming track of a WebRtcTransport.

use std::time::Instant;

use crate::ids::{ConsumerId, Mid, Pt, Ssrc, TransportId};
use crate::proto::rtcp::SenderInfo;
use crate::router::nack::NackGenerator;
use crate::router::receive_stats::ReceiveStats;
use crate::router::retransmission::RetransmissionBuffer;

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// Audio (Opus, 48 kHz clock).
    Audio,
    /// Video (VP8/H264, 90 kHz clock).
    Video,
}

impl MediaKind {
    /// `"audio"` or `"video"`, as in SDP `m=` lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Audio => "audio",
            Self::Video => "video",
        }
    }
}

/// What the control plane tells the data plane about a track (from the offer).
#[derive(Debug, Clone)]
pub struct ProducerParams {
    /// The transport the track arrives on.
    pub transport: TransportId,
    /// Audio or video.
    pub kind: MediaKind,
    /// Media SSRC (`a=ssrc`, or the first of `a=ssrc-group:FID`).
    pub ssrc: Ssrc,
    /// RTX SSRC (second of `a=ssrc-group:FID`), if RTX was negotiated.
    pub rtx_ssrc: Option<Ssrc>,
    /// MID of the m-section.
    pub mid: Option<Mid>,
    /// Payload types accepted from the publisher; others are dropped.
    pub payload_types: Vec<Pt>,
    /// RTX payload types (RFC 4588 §8.6: `a=fmtp:<rtx> apt=<pt>`), as
    /// (RTX payload type, associated payload type); packets on `rtx_ssrc`
    /// with one of them are unwrapped and fill the stream's gaps.
    pub rtx_payload_types: Vec<(Pt, Pt)>,
    /// Id of the transport-wide sequence number header extension the
    /// publisher stamps (draft-holmer-rmcat-transport-wide-cc-extensions-01
    /// §2); with it, the publisher's transport gets transport-cc feedback.
    pub twcc_ext_id: Option<u8>,
    /// Id of the audio level header extension the publisher sends (RFC 6464,
    /// `urn:ietf:params:rtp-hdrext:ssrc-audio-level`), for audio: its value
    /// is copied to subscribers that negotiated it.
    pub audio_level_ext_id: Option<u8>,
}

/// An incoming track.
#[derive(Debug)]
pub struct Producer {
    pub(crate) params: ProducerParams,
    pub(crate) consumers: Vec<ConsumerId>,
    pub(crate) last_keyframe_request: Option<Instant>,
    pub(crate) keyframe_pending: bool,
    pub(crate) last_sr: Option<SenderInfo>,
    /// Recent packets for consumers' NACKs (video only).
    pub(crate) buffer: Option<RetransmissionBuffer>,
    /// Loss tracking and NACKs towards the publisher (video only).
    pub(crate) nack: Option<NackGenerator>,
    /// The deadline the NACK timer has in the router's heap, if any.
    pub(crate) nack_scheduled: Option<Instant>,
    /// The loudest audio level (RFC 6464, −dBov; 127 = silence) of the
    /// current speaker-detection interval.
    pub(crate) loudest_level: u8,
    /// Loss and jitter for the publisher's receiver reports.
    pub(crate) stats: ReceiveStats,
}

impl Producer {
    pub(crate) fn new(params: ProducerParams) -> Self {
        Self {
            params,
            consumers: Vec::new(),
            last_keyframe_request: None,
            keyframe_pending: false,
            last_sr: None,
            buffer: None,
            nack: None,
            nack_scheduled: None,
            loudest_level: 127,
            stats: ReceiveStats::new(90_000),
        }
    }

    /// The parameters it was created with.
    pub fn params(&self) -> &ProducerParams {
        &self.params
    }
}
