//! Producer: an incoming track of a WebRtcTransport.

use std::time::{Duration, Instant};

use crate::error::ParamsError;
use crate::ids::{ConsumerId, Mid, Pt, Rid, Ssrc, TransportId};
use crate::proto::codec::VideoCodec;
use crate::proto::rtcp::SenderInfo;
use crate::proto::rtp::{Extension, ExtensionMap};
use crate::router::nack::NackGenerator;
use crate::router::rate_meter::RateMeter;
use crate::router::receive_stats::ReceiveStats;
use crate::router::retransmission::RetransmissionBuffer;
use crate::router::svc::SpatialLayers;

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

/// One RTP stream of a producer: its only one, or one simulcast layer
/// (RFC 8853).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodingParams {
    /// The layer's RID (`a=rid`, RFC 8851); `None` for a single stream.
    pub rid: Option<Rid>,
    /// Media SSRC, when the offer announced it (`a=ssrc`, or the first of
    /// `a=ssrc-group:FID`). Without it the SSRC is bound from the first
    /// packet that carries the producer's MID and this RID (RFC 8852 §3.1).
    pub ssrc: Option<Ssrc>,
    /// RTX SSRC (second of `a=ssrc-group:FID`), when announced; else bound
    /// from the first RTX packet carrying the MID and this RID as its
    /// repaired RID (RFC 8852 §3.2). Used only with RTX payload types.
    pub rtx_ssrc: Option<Ssrc>,
}

impl EncodingParams {
    /// A single stream with announced SSRCs.
    pub fn single(ssrc: Ssrc, rtx_ssrc: Option<Ssrc>) -> Self {
        Self {
            rid: None,
            ssrc: Some(ssrc),
            rtx_ssrc,
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
    /// Its RTP streams: one, or 2–4 simulcast layers (video only), each
    /// with its own SSRCs, counters and retransmission buffer. Consumers
    /// forward one layer at a time.
    pub encodings: Vec<EncodingParams>,
    /// MID of the m-section.
    pub mid: Option<Mid>,
    /// Payload types accepted from the publisher; others are dropped.
    pub payload_types: Vec<Pt>,
    /// The video codec of `payload_types` (for keyframes and VP8 picture
    /// IDs when switching layers); `None` for audio.
    pub video_codec: Option<VideoCodec>,
    /// RTX payload types (RFC 4588 §8.6: `a=fmtp:<rtx> apt=<pt>`), as
    /// (RTX payload type, associated payload type); packets on `rtx_ssrc`
    /// with one of them are unwrapped and fill the stream's gaps.
    pub rtx_payload_types: Vec<(Pt, Pt)>,
    /// The header extension ids the publisher negotiated (RFC 8285). Of
    /// them the router reads the transport-wide sequence number (then the
    /// publisher's transport gets transport-cc feedback), the audio level
    /// (copied to subscribers and used for the active speaker), the MID and
    /// RIDs (to bind SSRCs the offer did not announce, RFC 8843 §15, RFC
    /// 8852 §3) and the AV1 dependency descriptor (copied to subscribers).
    pub extensions: ExtensionMap,
    /// The publisher cannot be asked for a keyframe (an RTMP encoder, or
    /// the mirror of one's track): the Router keeps the video's packets
    /// since the last keyframe and starts each consumer from them
    /// (`crate::router::direct`). Producers on a direct transport always do.
    pub keep_gop: bool,
}

impl ProducerParams {
    /// Checks what the router relies on: 1–4 encodings, more than one only
    /// for video and each with its RID, and an encoding without an
    /// announced SSRC only with a MID, RID and their extension ids.
    ///
    /// Errors: [`ParamsError::EncodingCount`], [`ParamsError::SimulcastAudio`],
    /// [`ParamsError::Extensions`], [`ParamsError::MissingRid`],
    /// [`ParamsError::DuplicateRid`], [`ParamsError::Unbindable`].
    pub fn validate(&self) -> Result<(), ParamsError> {
        let n = self.encodings.len();
        if n == 0 || n > MAX_ENCODINGS {
            return Err(ParamsError::EncodingCount {
                n,
                max: MAX_ENCODINGS,
            });
        }
        if n > 1 && self.kind != MediaKind::Video {
            return Err(ParamsError::SimulcastAudio);
        }
        self.extensions.validate()?;
        for (i, e) in self.encodings.iter().enumerate() {
            if n > 1 && e.rid.is_none() {
                return Err(ParamsError::MissingRid(i));
            }
            if n > 1
                && let Some(r) = e.rid
                && self.encodings[..i].iter().any(|o| o.rid == Some(r))
            {
                return Err(ParamsError::DuplicateRid(r));
            }
            let bindable = e.rid.is_some()
                && self.mid.is_some()
                && self.extensions.has(Extension::Mid)
                && self.extensions.has(Extension::Rid);
            if e.ssrc.is_none() && !bindable {
                return Err(ParamsError::Unbindable(i));
            }
        }
        Ok(())
    }
}

/// What a forwarded RTP packet carries on the wire beyond itself, bytes:
/// the SRTP authentication tag (10, HMAC-SHA1-80, RFC 3711 §4.2), UDP (8)
/// and IPv4 (20). A 20 ms Opus packet of ~100 bytes grows by over a third.
pub const PACKET_OVERHEAD_BYTES: u64 = 38;

/// What a datagram carries on the wire beyond its UDP payload, bytes: UDP
/// (8) and IPv4 (20). What we send a subscriber, and the sizes its
/// transport-wide feedback acknowledges, count it, as libwebrtc's
/// estimator counts transport overhead, so that an estimate and a layer's
/// rate ([`PACKET_OVERHEAD_BYTES`]) are in the same bytes.
pub const UDP_IP_OVERHEAD_BYTES: usize = 28;

/// Encodings a producer has at most.
pub const MAX_ENCODINGS: usize = 4;

/// What one temporal layer of an encoding carries: its bytes of RTP, the
/// part in layer-sync frames (VP8's Y bit), and their rates.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TemporalMeter {
    bytes: u64,
    sync_bytes: u64,
    pub(crate) rate: RateMeter,
    pub(crate) sync_rate: RateMeter,
}

impl TemporalMeter {
    /// Counts a packet of `len` bytes (`sync`: of a layer-sync frame).
    #[inline]
    pub(crate) fn on_packet(&mut self, len: usize, sync: bool) {
        self.bytes += len as u64;
        if sync {
            self.sync_bytes += len as u64;
        }
    }

    /// Samples both rates at `now` (see [`RateMeter::sample`]).
    pub(crate) fn sample(&mut self, now: Instant, min_span: Duration) {
        self.rate.sample(now, self.bytes, min_span);
        self.sync_rate.sample(now, self.sync_bytes, min_span);
    }
}

/// The receive side of one encoding: what is known of its stream, its
/// retransmission buffer, its loss tracking and its measured rate.
#[derive(Debug)]
pub(crate) struct Encoding {
    pub(crate) rid: Option<Rid>,
    pub(crate) ssrc: Option<Ssrc>,
    pub(crate) rtx_ssrc: Option<Ssrc>,
    pub(crate) last_keyframe_request: Option<Instant>,
    pub(crate) keyframe_pending: bool,
    pub(crate) last_sr: Option<SenderInfo>,
    /// Recent packets for consumers' NACKs (video only).
    pub(crate) buffer: Option<RetransmissionBuffer>,
    /// Loss tracking and NACKs towards the publisher (video only).
    pub(crate) nack: Option<NackGenerator>,
    /// The deadline the NACK timer has in the router's heap, if any.
    pub(crate) nack_scheduled: Option<Instant>,
    /// Loss and jitter for the publisher's receiver reports.
    pub(crate) stats: ReceiveStats,
    /// Bytes of RTP received (headers included).
    pub(crate) bytes: u64,
    /// Packets received, and what their headers below RTP add on a
    /// subscriber's path ([`PACKET_OVERHEAD_BYTES`] each), measured with
    /// `rate`: the layer pass counts what a layer costs on the wire.
    pub(crate) packets: u64,
    pub(crate) overhead_rate: RateMeter,
    /// The received rate, measured by the router about once a second.
    pub(crate) rate: RateMeter,
    /// What each temporal layer id carries (TID 0–3, VP8; a VP9 or AV1
    /// stream counts its layers per spatial layer in `spatial`), measured
    /// with `rate`.
    pub(crate) temporal: [TemporalMeter; 4],
    /// When its last packet arrived.
    pub(crate) last_packet: Option<Instant>,
    /// Its picture size (width, height) from its last keyframe, when the
    /// codec tells it (VP8, H.264's SPS, VP9's scalability structure, AV1's
    /// template structure).
    pub(crate) size: Option<(u16, u16)>,
    /// A VP9 or AV1 stream's spatial layers, once a packet that says its
    /// layers arrived.
    pub(crate) spatial: Option<Box<SpatialLayers>>,
}

impl Encoding {
    fn new(p: &EncodingParams, clock_rate: u32) -> Self {
        Self {
            rid: p.rid,
            ssrc: p.ssrc,
            rtx_ssrc: p.rtx_ssrc,
            last_keyframe_request: None,
            keyframe_pending: false,
            last_sr: None,
            buffer: None,
            nack: None,
            nack_scheduled: None,
            stats: ReceiveStats::new(clock_rate),
            bytes: 0,
            packets: 0,
            overhead_rate: RateMeter::default(),
            rate: RateMeter::default(),
            temporal: [TemporalMeter::default(); 4],
            last_packet: None,
            size: None,
            spatial: None,
        }
    }
}

/// An incoming track.
#[derive(Debug)]
pub struct Producer {
    pub(crate) params: ProducerParams,
    pub(crate) consumers: Vec<ConsumerId>,
    /// One per `params.encodings`, in the same order.
    pub(crate) encodings: Vec<Encoding>,
    /// The loudest audio level (RFC 6464, −dBov; 127 = silence) of the
    /// current speaker-detection interval.
    pub(crate) loudest_level: u8,
    /// Simulcast: the encodings the publisher was last told to send (bit
    /// i: encoding i; all at first), and since when fewer would do.
    pub(crate) source_layers: (u8, Option<Instant>),
    /// The packets since the last keyframe, for a video producer whose
    /// publisher cannot be asked for one (on a direct transport).
    pub(crate) gop: Option<crate::router::direct::GopCache>,
}

impl Producer {
    pub(crate) fn new(params: ProducerParams) -> Self {
        // The RTP clocks of what we forward: 90 kHz video, 48 kHz Opus.
        let clock = match params.kind {
            MediaKind::Video => 90_000,
            MediaKind::Audio => 48_000,
        };
        let encodings = params
            .encodings
            .iter()
            .map(|e| Encoding::new(e, clock))
            .collect();
        Self {
            params,
            consumers: Vec::new(),
            encodings,
            loudest_level: 127,
            source_layers: (u8::MAX, None),
            gop: None,
        }
    }

    /// The parameters it was created with.
    pub fn params(&self) -> &ProducerParams {
        &self.params
    }

    /// Whether it has more than one encoding (simulcast).
    pub fn is_simulcast(&self) -> bool {
        self.encodings.len() > 1
    }

    /// Whether its consumers choose layers: simulcast, or VP9 or AV1 (with
    /// the dependency descriptor), whose one stream may carry spatial and
    /// temporal layers (SVC).
    pub fn is_layered(&self) -> bool {
        self.is_simulcast()
            || match self.params.video_codec {
                Some(VideoCodec::Vp9) => true,
                Some(VideoCodec::Av1) => {
                    self.params.extensions.has(Extension::DependencyDescriptor)
                }
                _ => false,
            }
    }

    /// Whether its one stream has been seen to carry more than one spatial
    /// layer: its consumers then choose among those.
    pub fn is_svc(&self) -> bool {
        !self.is_simulcast()
            && self
                .encodings
                .first()
                .and_then(|e| e.spatial.as_ref())
                .is_some_and(|s| s.is_layered())
    }

    /// The SSRC encoding `i` arrives with, announced or bound, if known.
    pub fn encoding_ssrc(&self, i: usize) -> Option<Ssrc> {
        self.encodings.get(i).and_then(|e| e.ssrc)
    }

    /// Encoding `i`'s received rate, bit/s (measured about once a second).
    pub fn encoding_bps(&self, i: usize) -> Option<u64> {
        self.encodings.get(i).map(|e| e.rate.bps())
    }
}
