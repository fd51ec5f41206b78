//! What an SFU reads and rewrites in a video payload without decoding it:
//! whether a packet starts a keyframe, a VP8 keyframe's size or an H.264
//! SPS's, the VP8 picture ID and TL0PICIDX that must stay continuous
//! when a consumer switches between simulcast layers, and the VP9 and AV1
//! spatial and temporal layers a consumer chooses from.
//!
//! Every function takes the RTP payload (after the header and extensions,
//! before any padding) and returns "nothing found" on short or odd input;
//! none panics.

mod av1_dd;
mod bits;
mod h264;
mod vp8;
mod vp9;

pub use av1_dd::{
    DTI_SWITCH, DdStructure, DdTemplate, DependencyDescriptor, MAX_CHAINS, MAX_REFERENCES,
};
pub use bits::BitReader;
pub use h264::h264_sps_size;
pub use vp8::Vp8Descriptor;
pub use vp9::{VP9_MAX_SPATIAL, Vp9Descriptor};

/// One packet's frame in a stream with spatial and temporal layers (VP9's
/// payload descriptor, or AV1's dependency descriptor): what choosing
/// layers per consumer needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayeredFrame {
    /// The spatial layer id.
    pub sid: u8,
    /// The temporal layer id, when the stream has them.
    pub tid: Option<u8>,
    /// The first packet of the frame (of one spatial layer).
    pub begin: bool,
    /// The last packet of the frame.
    pub end: bool,
    /// The frame is predicted from earlier pictures (temporal units).
    pub inter_picture: bool,
    /// The frame is predicted from the spatial layer below in its picture.
    pub inter_layer: bool,
    /// Frames of its temporal layer from here on depend on none of that
    /// layer before it: a receiver may start taking the layer here.
    pub switching_up: bool,
}

impl LayeredFrame {
    /// Whether this packet starts a keyframe: the first packet of the
    /// lowest spatial layer of a picture predicted from no earlier one.
    pub fn keyframe(&self) -> bool {
        self.begin && !self.inter_picture && self.sid == 0
    }

    /// Whether this packet starts a picture (the first packet of its
    /// lowest spatial layer), where a subscriber's layers may change.
    pub fn picture_start(&self) -> bool {
        self.begin && self.sid == 0
    }
}

/// A video codec we forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    /// VP8 (RFC 7741).
    Vp8,
    /// VP9 (RFC 9628).
    Vp9,
    /// H.264 with packetization-mode 1 (RFC 6184).
    H264,
    /// AV1 (AV1 RTP payload specification v1.0).
    Av1,
}

impl VideoCodec {
    /// The codec of an SDP encoding name (`a=rtpmap`), case-insensitive.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            ("VP8", Self::Vp8),
            ("VP9", Self::Vp9),
            ("H264", Self::H264),
            ("AV1", Self::Av1),
        ]
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, c)| c)
    }

    /// Whether `payload` is the first packet of a keyframe (a frame the
    /// decoder can start from):
    /// - VP8: start of partition 0 with the P bit clear (RFC 7741 §4.3);
    /// - VP9: B bit set, P bit clear, spatial layer 0 (RFC 9628 §4.2);
    /// - H.264: an IDR slice or an SPS, alone, in a STAP-A, or at the start
    ///   of an FU-A (RFC 6184 §5.6–5.8);
    /// - AV1: the N bit of the aggregation header (a new coded video
    ///   sequence, AV1 RTP specification §4.4).
    pub fn is_keyframe(self, payload: &[u8]) -> bool {
        match self {
            Self::Vp8 => Vp8Descriptor::parse(payload).is_some_and(|d| d.keyframe),
            Self::Vp9 => Vp9Descriptor::parse(payload).is_some_and(|d| d.keyframe()),
            Self::H264 => h264::is_keyframe(payload),
            Self::Av1 => payload.first().is_some_and(|b| b & 0x08 != 0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp9_and_av1_keyframes() {
        let cases: &[(&str, VideoCodec, &[u8], bool)] = &[
            ("VP9 key, no layers", VideoCodec::Vp9, &[0x88, 0x01], true),
            ("VP9 inter", VideoCodec::Vp9, &[0xc8, 0x01], false),
            (
                "VP9 key, not a frame start",
                VideoCodec::Vp9,
                &[0x80, 0x01],
                false,
            ),
            (
                "VP9 key, SID 0",
                VideoCodec::Vp9,
                &[0xa8, 0x81, 0x01, 0x00, 0],
                true,
            ),
            (
                "VP9 key, SID 1",
                VideoCodec::Vp9,
                &[0xa8, 0x01, 0x02, 0],
                false,
            ),
            ("AV1 new sequence", VideoCodec::Av1, &[0x18, 0], true),
            ("AV1 other", VideoCodec::Av1, &[0x10, 0], false),
        ];
        for (name, c, p, want) in cases {
            assert_eq!(c.is_keyframe(p), *want, "{name}");
        }
    }
}
