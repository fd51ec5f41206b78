//! Receiving RTP: a publisher's packet from its transport through the
//! RtpListener (SSRC binding by MID/RID, RFC 8843 §15, RFC 8852) to its
//! Producer, and the NACKs we send publishers for their gaps (RFC 4585 §6.2.1).

use super::*;

impl Router {
    pub(super) fn on_rtp(&mut self, now: Instant, tid: TransportId, pkt: &[u8]) {
        let Some(hdr) = RtpHeader::parse(pkt) else {
            self.count_drop(DropReason::MalformedRtp);
            return;
        };
        // Every packet of the transport counts for transport-cc, RTX and
        // padding included.
        let Some(entry) = self.transports.get_mut(tid) else {
            self.count_drop(DropReason::StaleId);
            return;
        };
        if let Some(tw) = &mut entry.twcc
            && let Some(&[a, b, ..]) = hdr.extension(pkt, tw.ext_id)
        {
            tw.on_packet(now, u16::from_be_bytes([a, b]));
            if !self.twcc_scheduled {
                self.twcc_scheduled = true;
                self.timers
                    .push(Reverse((now + FEEDBACK_INTERVAL, Timer::TwccFeedback)));
            }
        }
        let route = match entry.listener.get(hdr.ssrc) {
            Some(r) => r,
            None => match entry.listener.bind_from_extensions(pkt, &hdr) {
                Some(b) => {
                    self.on_bound(hdr.ssrc, b);
                    b.route
                }
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
            let Some(e) = p.encodings.get_mut(enc as usize) else {
                self.count_drop(DropReason::StaleId);
                return;
            };
            e.stats.on_packet(now, hdr.seq, hdr.timestamp);
            e.bytes += pkt.len() as u64;
            e.packets += 1;
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
        let Some(media) = p.encodings.get(enc as usize).and_then(|e| e.ssrc) else {
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

    /// Records an SSRC the RtpListener bound from a packet's MID and RID
    /// extensions on the producer's encoding, as its media or RTX SSRC.
    fn on_bound(&mut self, ssrc: Ssrc, Bound { route, replaced }: Bound) {
        let Some(enc) = self
            .producers
            .get_mut(route.producer)
            .and_then(|p| p.encodings.get_mut(route.encoding as usize))
        else {
            return;
        };
        if route.rtx {
            enc.rtx_ssrc = Some(ssrc);
        } else {
            enc.ssrc = Some(ssrc);
        }
        tracing::debug!(
            router = %self.id,
            producer = %route.producer,
            rid = ?enc.rid.map(|r| r.to_string()),
            ssrc = ssrc.0,
            rtx = route.rtx,
            replaced = ?replaced.map(|s| s.0),
            "bound an SSRC from its MID and RID"
        );
    }

    /// Puts the next NACK deadline of producer `pid`'s encoding `enc` in
    /// the heap when it is earlier than the one scheduled.
    pub(super) fn schedule_nack(&mut self, pid: ProducerId, enc: u8) {
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
    pub(super) fn send_nacks(&mut self, now: Instant, pid: ProducerId, enc: u8) {
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
        self.lost_seqs.clear();
        let gave_up = g.poll(now, rtt, &mut self.nack_seqs, &mut self.lost_seqs);
        if gave_up > 0 {
            self.counters.packets_lost.add(gave_up as u64);
            self.worker_counters.packets_lost.add(gave_up as u64);
            // AV1: the frames those packets were in are lost, and the
            // chains through them broken.
            if let Some(s) = &mut e.spatial {
                for seq in &self.lost_seqs {
                    s.chains.on_lost(*seq);
                }
                let breaks = s.chains.take_breaks();
                self.counters.chain_breaks.add(breaks);
                self.worker_counters.chain_breaks.add(breaks);
            }
        }
        if !self.nack_seqs.is_empty() {
            let items = rtcp::nack_items(&self.nack_seqs);
            if self.send_feedback(tid, |ours, b| rtcp::write_nack(ours, media, &items, b)) {
                self.counters.nacks_sent.add(1);
                self.worker_counters.nacks_sent.add(1);
            }
        }
        self.schedule_nack(pid, enc);
        if gave_up > 0 {
            self.request_keyframe(now, pid, enc);
        }
    }
}
