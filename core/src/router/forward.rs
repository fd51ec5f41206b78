//! Fan-out: a producer's packet to each of its consumers, rewritten for
//! the subscriber (SSRC, sequence number, timestamp, header extensions),
//! SRTP-protected and queued on the subscriber's transport.

use super::*;
use crate::proto::rtp::{Extension, set_marker};

impl Router {
    /// Handles one media packet of producer `pid`'s encoding `enc`
    /// (received, or rebuilt from RTX): loss tracking, the retransmission
    /// buffer, then one rewritten and encrypted copy per consumer of that
    /// encoding. A packet already received is dropped. A simulcast consumer
    /// whose target is `enc` switches to it at its keyframe.
    pub(super) fn forward(
        &mut self,
        now: Instant,
        pid: ProducerId,
        enc: u8,
        pkt: &[u8],
        hdr: &RtpHeader,
    ) {
        let mut keyframe_needed = false;
        let mut missing = false;
        // AV1 chains this packet broke (a reset of its loss tracking, or
        // its frame pointing at one given up).
        let mut chain_breaks = 0;
        let Some(producer) = self.producers.get_mut(pid) else {
            self.count_drop(DropReason::StaleId);
            return;
        };
        // The publisher's audio level (RFC 6464), copied to each subscriber
        // under its own id, and the loudest of the interval for the
        // speaker detection.
        let level = producer
            .params
            .extensions
            .get(Extension::AudioLevel)
            .and_then(|id| hdr.extension(pkt, id))
            .and_then(|v| v.first().copied());
        if let Some(l) = level {
            producer.loudest_level = producer.loudest_level.min(l & 0x7f);
        }
        let simulcast = producer.is_simulcast();
        let layered_codec = producer.is_layered();
        let codec = producer.params.video_codec;
        // AV1's dependency descriptor: the frame's layers, and copied to
        // each subscriber.
        let dd = producer
            .params
            .extensions
            .get(Extension::DependencyDescriptor)
            .and_then(|id| hdr.extension(pkt, id));
        let Some(e) = producer.encodings.get_mut(enc as usize) else {
            self.counters.count_drop(DropReason::StaleId);
            self.worker_counters.count_drop(DropReason::StaleId);
            return;
        };
        if let Some(g) = &mut e.nack {
            let arrival = g.on_packet(now, hdr.seq);
            missing = g.missing() > 0;
            match arrival {
                Arrival::New | Arrival::Old => {}
                Arrival::Recovered => {
                    self.counters.packets_recovered.add(1);
                    self.worker_counters.packets_recovered.add(1);
                }
                Arrival::Reset => {
                    keyframe_needed = true;
                    if let Some(s) = &mut e.spatial {
                        s.chains.on_reset();
                    }
                }
            }
        }
        if let Some(b) = &mut e.buffer
            && b.insert(hdr.seq, hdr.timestamp, pkt) == Stored::Duplicate
        {
            self.count_drop(DropReason::Duplicate);
            return;
        }
        // An ingest's video: kept since its last keyframe for subscribers
        // that start later.
        if let (Some(g), Some(codec)) = (&mut producer.gop, codec) {
            g.push(pkt, hdr.timestamp, codec.is_keyframe(payload_of(pkt, hdr)));
        }
        let Some(e) = producer.encodings.get_mut(enc as usize) else {
            return;
        };
        // What a layer switch needs of the payload: for simulcast, and for
        // the layers within a VP9 or AV1 stream.
        let (mut vp8, mut layered, mut is_keyframe) = (None, None, false);
        if let Some(codec) = codec
            && (simulcast || layered_codec)
        {
            let payload = payload_of(pkt, hdr);
            if codec == VideoCodec::Vp9 || codec == VideoCodec::Av1 {
                let spatial = e.spatial.get_or_insert_with(Box::default);
                let frame = match codec {
                    VideoCodec::Vp9 => Vp9Descriptor::parse(payload).map(|d| {
                        if let (Some(n), Some(sizes)) = (d.spatial_layers, d.sizes) {
                            let n = usize::from(n).min(VP9_MAX_SPATIAL);
                            spatial.set_sizes(&sizes[..n]);
                        }
                        d.frame()
                    }),
                    _ => dd.and_then(|v| spatial.av1_packet(v, hdr.seq)),
                };
                chain_breaks = spatial.chains.take_breaks();
                // The stream's size: its highest spatial layer's.
                if let Some(size) = spatial.top_size() {
                    e.size = Some(size);
                }
                if let Some(f) = &frame {
                    is_keyframe = f.keyframe();
                    spatial.on_packet(f, pkt.len(), now);
                } else if codec == VideoCodec::Av1 {
                    is_keyframe = codec.is_keyframe(payload);
                }
                layered = frame;
            } else if codec == VideoCodec::Vp8 {
                vp8 = Vp8Descriptor::parse(payload);
                is_keyframe = vp8.is_some_and(|d| d.keyframe);
                if let Some(d) = vp8
                    && let Some(t) = d.tid
                {
                    e.temporal[usize::from(t & 3)].on_packet(pkt.len(), d.layer_sync);
                }
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
        if chain_breaks > 0 {
            self.counters.chain_breaks.add(chain_breaks);
            self.worker_counters.chain_breaks.add(chain_breaks);
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
        let Some(producer) = producers.get(pid) else {
            return;
        };
        let payload_len = (pkt.len() - hdr.header_len) as u32;
        // Our send time as abs-send-time.
        let send_time = abs_send_time(now.saturating_duration_since(*epoch));
        // K-SVC, and the spatial layers an AV1 chain broken upstream
        // leaves undecodable (bit per layer).
        let (key_svc, broken) = producer
            .encodings
            .get(enc as usize)
            .and_then(|e| e.spatial.as_ref())
            .map_or((false, 0), |s| (s.key_svc(), s.chains.broken_layers()));
        for cid in &producer.consumers {
            let Some(c) = consumers.get_mut(*cid) else {
                counters.count_drop(DropReason::StaleId);
                worker_counters.count_drop(DropReason::StaleId);
                continue;
            };
            if c.paused {
                continue;
            }
            if c.layer != Some(enc) {
                if c.target_layer != enc || !is_keyframe {
                    continue;
                }
                let before = c.layer_switches();
                c.switch_layer(&producer.encodings, enc, hdr.timestamp, vp8.as_ref(), now);
                if c.layer_switches() > before {
                    counters.layer_switches.add(1);
                    worker_counters.layer_switches.add(1);
                }
            }
            if let Some(d) = &vp8
                && !c.temporal_pass(d, hdr.seq, is_keyframe)
            {
                continue;
            }
            let mut marker = None;
            if let Some(d) = &layered {
                let Some(m) = c.svc_pass(d, hdr.seq, key_svc, broken) else {
                    continue;
                };
                marker = m;
            }
            let copy = Copy {
                now,
                send_time,
                level,
                dd,
                vp8: vp8.as_ref(),
                marker,
                payload_len,
            };
            if copy_to(c, transports, scratch, pool, transmits, pkt, hdr, &copy) {
                counters.rtp_forwarded.add(1);
                worker_counters.rtp_forwarded.add(1);
            }
        }
    }

    /// Sends one packet of producer `pid` to its consumer `cid` only, as
    /// [`Router::forward`] sends it to each (a kept GOP replayed to a
    /// consumer that starts). Nothing is recorded on the producer.
    pub(super) fn forward_one(
        &mut self,
        now: Instant,
        pid: ProducerId,
        cid: ConsumerId,
        pkt: &[u8],
        hdr: &RtpHeader,
    ) {
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
        let (Some(producer), Some(c)) = (producers.get(pid), consumers.get_mut(cid)) else {
            return;
        };
        if c.paused || c.params.producer != pid {
            return;
        }
        let copy = Copy {
            now,
            send_time: abs_send_time(now.saturating_duration_since(*epoch)),
            level: None,
            dd: producer
                .params
                .extensions
                .get(Extension::DependencyDescriptor)
                .and_then(|id| hdr.extension(pkt, id)),
            vp8: None,
            marker: None,
            payload_len: (pkt.len() - hdr.header_len) as u32,
        };
        if copy_to(c, transports, scratch, pool, transmits, pkt, hdr, &copy) {
            counters.rtp_forwarded.add(1);
            worker_counters.rtp_forwarded.add(1);
        }
    }
}

/// What every consumer's copy of one packet shares.
struct Copy<'a> {
    now: Instant,
    /// Our send time, as abs-send-time (24 bits, 6.18 fixed-point seconds).
    send_time: u32,
    /// The publisher's audio level (RFC 6464), if it sent one.
    level: Option<u8>,
    /// The AV1 dependency descriptor, passed through.
    dd: Option<&'a [u8]>,
    /// The VP8 payload descriptor, for a simulcast consumer's picture ids.
    vp8: Option<&'a Vp8Descriptor>,
    /// The marker bit to write (`None`: the publisher's): a VP9 or AV1
    /// picture ends at the highest spatial layer this consumer forwards.
    marker: Option<bool>,
    /// Payload bytes (for the consumer's sender report).
    payload_len: u32,
}

/// Rewrites `pkt` for consumer `c` (payload type, sequence number,
/// timestamp, header extensions), protects it for its transport and queues
/// it. Returns true when it was queued.
#[expect(
    clippy::too_many_arguments,
    reason = "the Router's fields, split to borrow them together"
)]
fn copy_to(
    c: &mut Consumer,
    transports: &mut IdSlab<TransportId, TransportEntry>,
    scratch: &mut Vec<u8>,
    pool: &mut Vec<Vec<u8>>,
    transmits: &mut Outbox,
    pkt: &[u8],
    hdr: &RtpHeader,
    x: &Copy<'_>,
) -> bool {
    let Some(pt) = c.map_pt(hdr.pt) else {
        return false;
    };
    let Some(seq) = c.seq.input(hdr.seq) else {
        return false;
    };
    let Some(t) = transports.get_mut(c.params.transport) else {
        return false;
    };
    let timestamp = hdr.timestamp.wrapping_add(c.ts_offset);
    let twcc_seq = t.twcc_send.as_ref().map(|s| s.peek());
    let rw = Rewrite {
        audio_level: c.params.extensions.get(Extension::AudioLevel).zip(x.level),
        dependency_descriptor: c
            .params
            .extensions
            .get(Extension::DependencyDescriptor)
            .zip(x.dd),
        ..c.rewrite(pt, seq, timestamp, twcc_seq, x.send_time)
    };
    write_forwarded(pkt, hdr, &rw, scratch);
    if let Some(m) = x.marker {
        set_marker(scratch, m);
    }
    if let Some(s) = c.simulcast.as_deref_mut() {
        s.on_forwarded(scratch, x.payload_len as usize, x.vp8, timestamp, x.now);
    }
    if send_rtp(t, scratch, pool, transmits, x.now, rw.twcc.is_some()).is_none() {
        return false;
    }
    c.packets_sent = c.packets_sent.wrapping_add(1);
    c.octets_sent = c.octets_sent.wrapping_add(x.payload_len);
    true
}

impl Router {
    /// Sends transport `tid` one RTCP feedback message (a NACK, a PLI),
    /// written by `write` with our RTCP SSRC after an empty receiver report
    /// of ours (RFC 4585 §3.1: feedback goes in a compound packet). Returns
    /// true when it was queued.
    pub(super) fn send_feedback(
        &mut self,
        tid: TransportId,
        write: impl FnOnce(Ssrc, &mut Vec<u8>),
    ) -> bool {
        let ours = self.rtcp_ssrc;
        let Some(e) = self.transports.get_mut(tid) else {
            return false;
        };
        send_rtcp(
            &mut e.transport,
            &mut self.rtcp_buf,
            &mut self.transmits,
            |b| {
                rtcp::write_empty_rr(ours, b);
                write(ours, b);
                true
            },
        )
    }
}

/// Writes one compound RTCP packet into `buf` (cleared first) with `write`,
/// which says whether it is worth sending, then protects it for `transport`
/// (SRTCP, RFC 3711 §3.4) and queues it. Returns true when it was queued;
/// false when not worth sending or the transport cannot protect yet.
pub(super) fn send_rtcp(
    transport: &mut Transport,
    buf: &mut Vec<u8>,
    transmits: &mut Outbox,
    write: impl FnOnce(&mut Vec<u8>) -> bool,
) -> bool {
    buf.clear();
    if !write(buf) {
        return false;
    }
    transport.send_rtcp(buf, transmits)
}

/// Encrypts the plain RTP packet `plain` for subscriber transport `t` into
/// a pooled buffer (or copies it, for a pipe) and queues it: its bytes count towards what `t` was
/// sent, and with `twcc` (the packet carries the transport's next
/// transport-wide sequence number) it enters the send history. Returns its
/// length on the wire, or `None` when the transport cannot protect yet.
pub(super) fn send_rtp(
    t: &mut TransportEntry,
    plain: &[u8],
    pool: &mut Vec<Vec<u8>>,
    transmits: &mut Outbox,
    now: Instant,
    twcc: bool,
) -> Option<usize> {
    // A recording's transport copies into buffers its thread gives back;
    // the pool's go out as datagrams and come back to it.
    let buf = if t.transport.is_direct() {
        Vec::new()
    } else {
        pool.pop().unwrap_or_else(|| Vec::with_capacity(SEND_BUF))
    };
    let len = t.transport.send_rtp(now, plain, buf, transmits)?;
    // Counted as the path carries it, as the layers' rates are.
    let wire = len + producer::UDP_IP_OVERHEAD_BYTES;
    t.sent_bytes += wire as u64;
    if twcc && let Some(s) = &mut t.twcc_send {
        s.on_sent(now, wire);
    }
    Some(len)
}

/// The payload of `pkt` without its padding (RFC 3550 §5.1); empty when
/// the padding count is bad.
pub(super) fn payload_of<'a>(pkt: &'a [u8], hdr: &RtpHeader) -> &'a [u8] {
    match padding_len(pkt, hdr) {
        Some(pad) => &pkt[hdr.header_len..pkt.len() - pad],
        None => &[],
    }
}
