//! One track's recording file read back as timed frames: packets put in
//! sequence order (a late or retransmitted packet takes its place, a
//! duplicate is dropped), sequence numbers and timestamps unwrapped, video
//! depacketized per codec and reassembled into whole frames, and the
//! sender reports kept for A/V alignment.
//!
//! Depacketizing is webrtc-rs's `rtp` crate (`codecs::{vp8, vp9, h264}`),
//! and ours for AV1 (`super::av1`: the crate has no AV1 depacketizer);
//! what makes a frame whole, and what a loss costs, is ours: a frame with a
//! missing packet, and every frame after a loss up to the next keyframe,
//! is dropped (a decoder cannot use them), and a track starts at its first
//! keyframe. Audio keeps its RTP timestamps: silence and DTX leave gaps
//! the muxer fills ([`super`]).

use bytes::Bytes;
use rtp::packetizer::Depacketizer;
use sfu_core::proto::codec::{VideoCodec, Vp8Descriptor, h264_sps_size};
use sfu_core::proto::demux::{PacketClass, classify};
use sfu_core::proto::rtcp::{RtcpIter, SenderInfo};
use sfu_core::proto::rtp::{RtpHeader, padding_len};

use crate::recording::file::{Reader, RecordKind, TrackHeader};

/// One frame: a video access unit or an Opus packet.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Its RTP timestamp, unwrapped (clock-rate ticks).
    pub ts: i64,
    /// The codec's bitstream: a VP8/VP9 frame, H.264 as AVCC (4-byte
    /// lengths, ISO/IEC 14496-15), an Opus packet.
    pub data: Vec<u8>,
    /// A video keyframe (always true for audio).
    pub keyframe: bool,
}

/// Where a track's timestamps sit on a clock shared with the other tracks
/// of its publisher.
#[derive(Debug, Clone, Copy)]
pub enum TimeBase {
    /// A sender report: `ntp_us` (µs on the publisher's NTP clock) is at
    /// unwrapped RTP timestamp `ts`.
    Report {
        /// µs.
        ntp_us: i64,
        /// Unwrapped RTP timestamp.
        ts: i64,
    },
    /// No sender report: the first packet's arrival, `at_us` µs after the
    /// recording started, at unwrapped timestamp `ts`.
    Arrival {
        /// µs.
        at_us: i64,
        /// Unwrapped RTP timestamp.
        ts: i64,
    },
}

/// A track read back.
#[derive(Debug)]
pub struct Track {
    /// Its header.
    pub header: TrackHeader,
    /// The video codec; `None`: audio (Opus).
    pub video: Option<VideoCodec>,
    /// Its frames, in order.
    pub frames: Vec<Frame>,
    /// The first keyframe's size (width, height), when the bitstream or
    /// the payload descriptor gives it.
    pub size: Option<(u16, u16)>,
    /// H.264: the first SPS and PPS seen (NAL units without start codes).
    pub sps_pps: Option<(Vec<u8>, Vec<u8>)>,
    /// AV1: the `av1C` record of the first sequence header seen (WebM's
    /// CodecPrivate).
    pub av1c: Option<Vec<u8>>,
    /// Its first sender report, if any.
    pub report: Option<TimeBase>,
    /// Its first packet's arrival.
    pub arrival: Option<TimeBase>,
    /// Video frames dropped: incomplete, or after a loss until a keyframe.
    pub dropped_frames: usize,
    /// Records that were not valid RTP or RTCP.
    pub bad_records: usize,
    /// Bytes after the last whole record (a file cut short).
    pub trailing: usize,
}

/// Why a file could not be read as a track.
#[derive(Debug, thiserror::Error)]
pub enum TrackError {
    /// Not a recording file.
    #[error(transparent)]
    File(#[from] crate::recording::file::FileError),
    /// A codec the muxer does not write.
    #[error("codec {0:?} is not muxed (VP8, VP9, AV1, H264 and opus are)")]
    Codec(String),
}

#[derive(Debug)]
struct Packet {
    seq: i64,
    ts: i64,
    marker: bool,
    payload: Bytes,
}

/// Unwraps a 16- or 32-bit counter: the value nearest `last` (extended).
fn unwrap(last: i64, value: u64, bits: u32) -> i64 {
    let m = 1i64 << bits;
    let base = last.rem_euclid(m);
    let mut d = value as i64 - base;
    if d > m / 2 {
        d -= m;
    } else if d < -m / 2 {
        d += m;
    }
    last + d
}

/// NTP (RFC 3550 §4: 32.32 fixed point seconds) to µs.
fn ntp_us(ntp: u64) -> i64 {
    ((ntp >> 32) as i64) * 1_000_000 + (((ntp & 0xffff_ffff) * 1_000_000) >> 32) as i64
}

impl Track {
    /// Reads the recording file `bytes`.
    ///
    /// Errors: [`TrackError::File`] (not a recording), [`TrackError::Codec`].
    pub fn read(bytes: &[u8]) -> Result<Self, TrackError> {
        let mut reader = Reader::new(bytes)?;
        let header = reader.header.clone();
        let video = if header.kind == "audio" {
            if !header.codec.eq_ignore_ascii_case("opus") {
                return Err(TrackError::Codec(header.codec));
            }
            None
        } else {
            match VideoCodec::from_name(&header.codec) {
                Some(c) => Some(c),
                _ => return Err(TrackError::Codec(header.codec)),
            }
        };
        let mut t = Self {
            header,
            video,
            frames: Vec::new(),
            size: None,
            sps_pps: None,
            av1c: None,
            report: None,
            arrival: None,
            dropped_frames: 0,
            bad_records: 0,
            trailing: 0,
        };
        let mut packets = Vec::new();
        // Arrival order: unwrap against the previous packet.
        let mut last: Option<(i64, i64)> = None;
        for rec in reader.by_ref() {
            match (rec.kind, classify(rec.data)) {
                (RecordKind::Rtp, PacketClass::Rtp) => {
                    let Some(h) = RtpHeader::parse(rec.data) else {
                        t.bad_records += 1;
                        continue;
                    };
                    let Some(pad) = padding_len(rec.data, &h) else {
                        t.bad_records += 1;
                        continue;
                    };
                    let (seq, ts) = match last {
                        None => (i64::from(h.seq), i64::from(h.timestamp)),
                        Some((s, ts)) => (
                            unwrap(s, u64::from(h.seq), 16),
                            unwrap(ts, u64::from(h.timestamp), 32),
                        ),
                    };
                    last = Some((seq, ts));
                    t.arrival.get_or_insert(TimeBase::Arrival {
                        at_us: rec.at_us as i64,
                        ts,
                    });
                    packets.push(Packet {
                        seq,
                        ts,
                        marker: h.marker,
                        payload: Bytes::copy_from_slice(
                            &rec.data[h.header_len..rec.data.len() - pad],
                        ),
                    });
                }
                (RecordKind::Rtcp, PacketClass::Rtcp) => {
                    let Some((_, last_ts)) = last else { continue };
                    if t.report.is_some() {
                        continue;
                    }
                    if let Some(si) = RtcpIter::new(rec.data).find_map(|p| SenderInfo::parse(&p)) {
                        t.report = Some(TimeBase::Report {
                            ntp_us: ntp_us(si.ntp),
                            ts: unwrap(last_ts, u64::from(si.rtp_ts), 32),
                        });
                    }
                }
                _ => t.bad_records += 1,
            }
        }
        t.trailing = reader.trailing;
        packets.sort_by_key(|p| p.seq);
        packets.dedup_by_key(|p| p.seq);
        match t.video {
            None => {
                t.frames = packets
                    .into_iter()
                    .filter(|p| !p.payload.is_empty())
                    .map(|p| Frame {
                        ts: p.ts,
                        data: p.payload.to_vec(),
                        keyframe: true,
                    })
                    .collect();
            }
            Some(codec) => t.assemble(codec, &packets),
        }
        Ok(t)
    }

    /// Whole video frames from `packets` (in sequence order).
    fn assemble(&mut self, codec: VideoCodec, packets: &[Packet]) {
        // Until a keyframe: at the start, and after a loss.
        let mut broken = true;
        let mut prev_end: Option<i64> = None;
        let mut i = 0;
        while i < packets.len() {
            let ts = packets[i].ts;
            let mut j = i + 1;
            while j < packets.len() && packets[j].ts == ts {
                j += 1;
            }
            let group = &packets[i..j];
            i = j;
            let contiguous = group.windows(2).all(|w| w[1].seq == w[0].seq + 1);
            let lost_before = prev_end.is_some_and(|e| group[0].seq != e + 1);
            prev_end = group.last().map(|p| p.seq);
            let ended = group.last().is_some_and(|p| p.marker);
            let first = &group[0].payload;
            let starts = match codec {
                VideoCodec::Vp8 => Vp8Descriptor::parse(first).is_some_and(|d| d.frame_start),
                VideoCodec::Vp9 => first.first().is_some_and(|b| b & 0x08 != 0),
                // Not the continuation of a fragment (the Z bit).
                VideoCodec::Av1 => first.first().is_some_and(|b| b & 0x80 == 0),
                _ => rtp::codecs::h264::H264Packet::default().is_partition_head(first),
            };
            if lost_before || !contiguous || !ended || !starts {
                broken = true;
                self.dropped_frames += 1;
                continue;
            }
            let keyframe = codec.is_keyframe(first);
            if broken && !keyframe {
                self.dropped_frames += 1;
                continue;
            }
            let Some(data) = self.depacketize(codec, group, keyframe) else {
                broken = true;
                self.dropped_frames += 1;
                continue;
            };
            broken = false;
            self.frames.push(Frame { ts, data, keyframe });
        }
    }

    /// One frame's bitstream from its packets; `None` when a packet does
    /// not parse.
    fn depacketize(&mut self, codec: VideoCodec, group: &[Packet], key: bool) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        match codec {
            VideoCodec::Vp8 => {
                if key && self.size.is_none() {
                    self.size = Vp8Descriptor::parse(&group[0].payload).and_then(|d| d.size);
                }
                let mut d = rtp::codecs::vp8::Vp8Packet::default();
                for p in group {
                    out.extend_from_slice(&d.depacketize(&p.payload).ok()?);
                }
            }
            VideoCodec::Vp9 => {
                // One frame per spatial layer (B…E); several make a
                // superframe (VP9 bitstream spec Annex B).
                let mut frames: Vec<Vec<u8>> = Vec::new();
                for p in group {
                    let mut d = rtp::codecs::vp9::Vp9Packet::default();
                    let body = d.depacketize(&p.payload).ok()?;
                    if self.size.is_none() && d.v && d.y {
                        self.size = d.width.first().copied().zip(d.height.first().copied());
                    }
                    if d.b || frames.is_empty() {
                        frames.push(Vec::new());
                    }
                    frames.last_mut()?.extend_from_slice(&body);
                }
                out = superframe(frames)?;
            }
            VideoCodec::Av1 => {
                out = super::av1::temporal_unit(group.iter().map(|p| &p.payload[..]))?;
                if self.av1c.is_none()
                    && let Some(sh) = super::av1::sequence_header(&out)
                    && let Some(info) = super::av1::parse_sequence_header(sh)
                {
                    self.size = Some(info.size);
                    self.av1c = Some(super::av1::av1c(&info, sh));
                }
            }
            VideoCodec::H264 => {
                let mut d = rtp::codecs::h264::H264Packet::default();
                d.is_avc = true;
                for p in group {
                    out.extend_from_slice(&d.depacketize(&p.payload).ok()?);
                }
                if self.sps_pps.is_none() || self.size.is_none() {
                    self.find_sps_pps(&out);
                }
            }
        }
        (!out.is_empty()).then_some(out)
    }

    /// Keeps the first SPS and PPS of an AVCC access unit, and the SPS's
    /// picture size.
    fn find_sps_pps(&mut self, avcc: &[u8]) {
        let nals = crate::ingest::flv::avcc_nal_units(avcc, 4).unwrap_or_default();
        let of = |kind: u8| nals.iter().copied().find(|n| n[0] & 0x1f == kind);
        if let (Some(s), Some(p)) = (of(7), of(8)) {
            self.size = self.size.or_else(|| h264_sps_size(s));
            self.sps_pps.get_or_insert((s.to_vec(), p.to_vec()));
        }
    }

    /// The clock rate, Hz (at least 1).
    pub fn clock(&self) -> i64 {
        i64::from(self.header.clock_rate.max(1))
    }
}

/// The frames of one picture's spatial layers as one VP9 superframe
/// (VP9 bitstream specification, Annex B): the frames, then an index of
/// their sizes framed by a marker byte. One frame is itself.
fn superframe(mut frames: Vec<Vec<u8>>) -> Option<Vec<u8>> {
    frames.retain(|f| !f.is_empty());
    if frames.len() <= 1 {
        return frames.pop();
    }
    if frames.len() > 8 {
        return None;
    }
    let biggest = frames.iter().map(Vec::len).max().unwrap_or(0);
    let bytes = match biggest {
        0..=0xff => 1,
        0x100..=0xffff => 2,
        0x1_0000..=0xff_ffff => 3,
        _ => 4,
    };
    let marker = 0xc0 | ((bytes - 1) << 3) as u8 | (frames.len() - 1) as u8;
    let mut out: Vec<u8> = frames.concat();
    out.push(marker);
    for f in &frames {
        out.extend_from_slice(&(f.len() as u32).to_le_bytes()[..bytes]);
    }
    out.push(marker);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A VP8 RTP packet: descriptor (S bit on a frame's first packet,
    /// partition 0), then a payload header whose P bit marks inter frames.
    fn vp8(seq: u16, ts: u32, start: bool, key: bool, marker: bool) -> Vec<u8> {
        let mut p = vec![0x80, if marker { 0x80 | 96 } else { 96 }];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&1234u32.to_be_bytes());
        p.push(if start { 0x10 } else { 0x00 });
        if start {
            // A keyframe's header: P clear, then the start code and size.
            if key {
                p.extend_from_slice(&[0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00]);
            } else {
                p.extend_from_slice(&[0x11, 0x02, 0x00]);
            }
        } else {
            p.extend_from_slice(&[0xaa, 0xbb, 0xcc, 0xdd]);
        }
        p
    }

    fn file(packets: &[(u64, Vec<u8>)]) -> Vec<u8> {
        let mut h = crate::recording::file::tests::header();
        h.ssrc = 1234;
        let mut f = Vec::new();
        crate::recording::file::write_header(&h, &mut f);
        for (at, p) in packets {
            crate::recording::file::write_record(RecordKind::Rtp, *at, p, &mut f);
        }
        f
    }

    #[test]
    fn video_is_reordered_and_a_loss_drops_frames_until_the_next_keyframe() {
        let packets = vec![
            // A P-frame before any keyframe: dropped.
            (0, vp8(9, 0, true, false, true)),
            // Keyframe of two packets, arriving out of order.
            (10, vp8(11, 3000, false, false, true)),
            (11, vp8(10, 3000, true, true, false)),
            // A P-frame, then one whose second packet (seq 14) is lost,
            // then a P-frame after the loss: both dropped.
            (20, vp8(12, 6000, true, false, true)),
            (30, vp8(13, 9000, true, false, false)),
            (40, vp8(15, 12000, true, false, true)),
            // The next keyframe starts again; a duplicate is dropped.
            (50, vp8(16, 15000, true, true, true)),
            (51, vp8(16, 15000, true, true, true)),
            (60, vp8(17, 18000, true, false, true)),
        ];
        let t = Track::read(&file(&packets)).expect("reads");
        let ts: Vec<i64> = t.frames.iter().map(|f| f.ts).collect();
        assert_eq!(ts, vec![3000, 6000, 15000, 18000]);
        assert!(t.frames[0].keyframe && t.frames[2].keyframe);
        assert_eq!(t.size, Some((320, 240)));
        assert_eq!(t.dropped_frames, 3);
        // The keyframe is its two payloads, descriptors removed.
        assert_eq!(t.frames[0].data.len(), 10 + 4);
    }

    #[test]
    fn counters_unwrap_both_ways() {
        assert_eq!(unwrap(65_535, 0, 16), 65_536);
        assert_eq!(unwrap(65_536, 65_535, 16), 65_535);
        assert_eq!(unwrap(10, 5, 16), 5);
        assert_eq!(
            unwrap(i64::from(u32::MAX), 10, 32),
            i64::from(u32::MAX) + 11
        );
    }

    #[test]
    fn ntp_converts_to_microseconds() {
        assert_eq!(ntp_us(3 << 32), 3_000_000);
        assert_eq!(ntp_us((3 << 32) | (1 << 31)), 3_500_000);
    }

    #[test]
    fn spatial_layers_make_a_superframe() {
        let sf = superframe(vec![vec![1; 3], vec![2; 300]]).expect("superframe");
        let n = sf.len();
        assert_eq!(sf[n - 1], 0xc9, "2 frames, 2-byte sizes");
        assert_eq!(sf[n - 6], 0xc9);
        assert_eq!(&sf[n - 5..n - 1], &[3, 0, 44, 1]);
        assert_eq!(superframe(vec![vec![7]]), Some(vec![7]));
    }
}
