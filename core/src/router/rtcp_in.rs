//! RTCP from participants (RFC 3550 §6, RFC 4585, RFC 5104): each compound
//! packet is dispatched by type to reports, NACK, feedback and XR handling.

use super::*;
use crate::proto::rtp::Extension;

impl Router {
    pub(super) fn on_rtcp(&mut self, now: Instant, tid: TransportId, pkt: &[u8]) {
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
                    && let Some(c) = self.consumers.get_mut(cid)
                    && self
                        .producers
                        .get(c.params.producer)
                        .is_some_and(|p| p.params.kind == MediaKind::Video)
                {
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

    /// Answers a subscriber's NACK (RFC 4585 §6.2.1) from the producer's
    /// retransmission buffer: each packet still there is sent again, as RTX
    /// on the consumer's RTX SSRC with the original sequence number in front
    /// (RFC 4588 §4) when the subscriber negotiated RTX, else as it was.
    /// A packet is resent at most once per RTT, and within the subscriber's
    /// retransmission budget ([`super::rtx_budget`]); what is over it is
    /// counted (`retransmissions_over_budget`) and not sent.
    pub(super) fn on_nack(&mut self, now: Instant, tid: TransportId, p: &rtcp::RtcpPacket<'_>) {
        let Some(ssrc) = p.media_ssrc() else { return };
        let Some(cid) = self.find_consumer(tid, ssrc) else {
            return;
        };
        self.counters.nacks_received.add(1);
        self.worker_counters.nacks_received.add(1);
        self.relieve(now, tid);
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
        let Some(c) = consumers.get_mut(cid) else {
            return;
        };
        let Some(layer) = c.layer else { return };
        let Some(producer) = producers.get(c.params.producer) else {
            return;
        };
        // A consumer that switches layers (or pauses for want of room)
        // starts an epoch of sequence numbers at each switch.
        let switches = producer.is_simulcast() || c.simulcast.is_some();
        let codec = producer.params.video_codec;
        let Some(buffer) = producer
            .encodings
            .get(layer as usize)
            .and_then(|e| e.buffer.as_ref())
        else {
            return;
        };
        let av1_structure = producer
            .encodings
            .get(layer as usize)
            .and_then(|e| e.spatial.as_ref())
            .and_then(|s| s.av1_structure.as_deref());
        let Some(t) = transports.get_mut(c.params.transport) else {
            return;
        };
        let rtx_base = RtxBudget::base_bps(
            t.bwe.bps(),
            t.loss_ceiling.ceiling(now),
            t.sending_rate.bps(),
        );
        let mut seqs = rtcp::nack_seqs(p);
        while let Some(out_seq) = seqs.next() {
            // After a layer switch, what was sent before it is not in this
            // layer's buffer under the same number.
            let input = if switches {
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
            let Some(pt) = c.map_pt(hdr.pt) else { continue };
            // As the path carries it: SRTP's tag, UDP and IP.
            let wire = pkt.len() + producer::PACKET_OVERHEAD_BYTES as usize;
            if !t.rtx_budget.try_take(now, rtx_base, wire) {
                let over = 1 + seqs.count() as u64;
                counters.retransmissions_over_budget.add(over);
                worker_counters.retransmissions_over_budget.add(over);
                break;
            }
            let dd = producer
                .params
                .extensions
                .get(Extension::DependencyDescriptor)
                .and_then(|id| hdr.extension(pkt, id));
            let twcc_seq = t.twcc_send.as_ref().map(|s| s.peek());
            let timestamp = hdr.timestamp.wrapping_add(c.ts_offset);
            let mut rw = Rewrite {
                dependency_descriptor: c
                    .params
                    .extensions
                    .get(Extension::DependencyDescriptor)
                    .zip(dd),
                ..c.rewrite(pt, out_seq, timestamp, twcc_seq, send_time)
            };
            // VP9 and AV1: the marker bit the original copy had.
            let frame = match codec {
                Some(VideoCodec::Vp9) => {
                    Vp9Descriptor::parse(payload_of(pkt, &hdr)).map(|d| d.frame())
                }
                Some(VideoCodec::Av1) => dd
                    .and_then(|v| DependencyDescriptor::parse(v, av1_structure))
                    .map(|d| d.frame(false)),
                _ => None,
            };
            let marker = frame.and_then(|f| c.svc_marker(&f));
            if let Some((rtx_ssrc, rtx_pt)) = c.params.rtx {
                rw.ssrc = rtx_ssrc;
                rw.pt = rtx_pt;
                rw.seq = c.rtx_seq;
                rw.osn = Some(out_seq);
            }
            write_forwarded(pkt, &hdr, &rw, scratch);
            if let Some(m) = marker {
                crate::proto::rtp::set_marker(scratch, m);
            }
            // The same picture ID and TL0PICIDX as the original copy had.
            if codec == Some(VideoCodec::Vp8)
                && let Some(s) = c.simulcast.as_deref_mut()
            {
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
                counters.retransmissions_sent.add(1);
                worker_counters.retransmissions_sent.add(1);
            } else {
                t.rtx_budget.give_back(wire);
            }
        }
    }
}
