//! Congestion control of what we send and receive: transport-wide feedback
//! from subscribers into their send-side estimates, probe clusters, our
//! transport-cc feedback to publishers, and REMB caps on publishers.

use super::*;

impl Router {
    /// Transport `id`'s send-side bandwidth estimate (what we may send it).
    pub fn transport_bwe(&self, id: TransportId) -> Option<&SendSideBwe> {
        self.transports.get(id).map(|e| &e.bwe)
    }

    /// A subscriber's transport-wide feedback (draft-holmer-rmcat-transport-
    /// wide-cc-extensions-01 §3.1) on what we sent it: matched against what
    /// we sent, it feeds the subscriber's send-side estimate.
    pub(super) fn on_twcc_feedback(
        &mut self,
        now: Instant,
        tid: TransportId,
        p: &rtcp::RtcpPacket<'_>,
    ) {
        let Some(fb) = twcc::parse(p.bytes) else {
            self.count_drop(DropReason::MalformedRtcp);
            return;
        };
        // `--log sfu::twcc=trace` shows each one (how the Chromium capture in
        // testdata/packets was taken).
        tracing::trace!(
            target: "sfu::twcc",
            hex = %p.bytes.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            packets = fb.arrivals.len(),
            "transport-cc feedback from a subscriber"
        );
        let rtt = self.rtt(tid);
        let Some(e) = self.transports.get_mut(tid) else {
            return;
        };
        let Some(sender) = &e.twcc_send else { return };
        sender.on_feedback(&fb, &mut self.twcc_results);
        if self.twcc_results.is_empty() {
            return;
        }
        let now_us = sender.now_us(now);
        let lost = self
            .twcc_results
            .iter()
            .filter(|r| r.recv_us.is_none())
            .count();
        for c in [&self.counters, &self.worker_counters] {
            c.packets_lost_out.add(lost as u64);
            c.packets_reported_out.add(self.twcc_results.len() as u64);
        }
        let lowered = e.bwe.on_feedback(now, now_us, &self.twcc_results, rtt);
        let outcome = match &mut e.probe {
            Some(p) => p.cluster.on_results(&self.twcc_results).or_else(|| {
                // Feedback that never covers the end: give up on it.
                (now.saturating_duration_since(p.started) > Duration::from_secs(2))
                    .then_some(ProbeOutcome::Failed)
            }),
            None => None,
        };
        if let Some(outcome) = outcome {
            let target = e.probe.take().map_or(0, |p| p.cluster.target_bps);
            let before = e.bwe.bps();
            let wait = e.probing.on_outcome(now, target, outcome, &mut e.bwe);
            match outcome {
                ProbeOutcome::Rate(r) => {
                    e.loss_ceiling.on_probe(now, r);
                }
                ProbeOutcome::Failed => e.loss_ceiling.on_probe_failed(now),
            }
            tracing::debug!(
                target: "sfu::bwe",
                transport = %tid,
                target,
                ?outcome,
                before,
                after = e.bwe.bps(),
                next_in_ms = wait.as_millis() as u64,
                "probe measured"
            );
            if outcome == ProbeOutcome::Failed {
                self.relieve(now, tid);
            }
        }
        if lowered {
            self.schedule_rembs(now);
        }
    }

    /// Starts a probe cluster of `target_bps` to subscriber transport `tid`,
    /// its padding on consumer `cid`'s RTX stream.
    pub(super) fn start_probe(
        &mut self,
        now: Instant,
        tid: TransportId,
        cid: ConsumerId,
        target_bps: u64,
    ) {
        let Some(e) = self.transports.get_mut(tid) else {
            return;
        };
        let Some(sender) = &e.twcc_send else { return };
        e.probe = Some(ActiveProbe {
            cluster: ProbeCluster::new(sender.now_us(now), target_bps),
            consumer: cid,
            started: now,
            bytes_at_start: e.sent_bytes,
        });
        self.counters.probes.add(1);
        self.worker_counters.probes.add(1);
        self.send_probe_padding(now, tid);
    }

    /// Sends what a probe cluster is due by `now` beyond the media sent
    /// meanwhile, as padding-only RTX packets (RFC 3550 §5.1, RFC 4588),
    /// and re-arms itself every 5 ms until the cluster's time is over.
    pub(super) fn send_probe_padding(&mut self, now: Instant, tid: TransportId) {
        const TICK: Duration = Duration::from_millis(5);
        let send_time = abs_send_time(now.saturating_duration_since(self.epoch));
        let Self {
            transports,
            consumers,
            transmits,
            scratch,
            pool,
            padding_src,
            timers,
            ..
        } = self;
        let Some(t) = transports.get_mut(tid) else {
            return;
        };
        let Some(p) = &t.probe else { return };
        let elapsed = now.saturating_duration_since(p.started);
        if elapsed >= probe::CLUSTER {
            return;
        }
        let Some(c) = consumers.get_mut(p.consumer) else {
            return;
        };
        let Some((rtx_ssrc, rtx_pt)) = c.params.rtx else {
            return;
        };
        let due = (p.cluster.target_bps as f64 * (elapsed + TICK).as_secs_f64() / 8.0) as u64;
        let sent = t.sent_bytes - p.bytes_at_start;
        let mut left = due.saturating_sub(sent);
        let Some(hdr) = RtpHeader::parse(padding_src) else {
            return;
        };
        let timestamp = c
            .simulcast
            .as_ref()
            .and_then(|s| s.last_ts)
            .map_or(0, |(ts, _)| ts);
        // At most 64 a tick: a 5 ms tick of a 10 Mbit/s probe.
        for _ in 0..64 {
            if left == 0 {
                break;
            }
            let twcc_seq = t.twcc_send.as_ref().map(|s| s.peek());
            // Padding on the RTX stream (RFC 4588 §4, no original payload).
            let rw = Rewrite {
                ssrc: rtx_ssrc,
                ..c.rewrite(rtx_pt, c.rtx_seq, timestamp, twcc_seq, send_time)
            };
            write_forwarded(padding_src, &hdr, &rw, scratch);
            let Some(len) = send_rtp(t, scratch, pool, transmits, now, rw.twcc.is_some()) else {
                break;
            };
            c.rtx_seq = c.rtx_seq.wrapping_add(1);
            left = left.saturating_sub(len as u64);
        }
        timers.push(Reverse((now + TICK, Timer::Probe(tid))));
    }

    /// Sends the publishers' lowered REMB caps now, or as soon as
    /// [`REMB_MIN_INTERVAL`] since the last ones allows.
    pub(super) fn schedule_rembs(&mut self, now: Instant) {
        if self.remb_scheduled {
            return;
        }
        self.remb_scheduled = true;
        let at = self
            .last_rembs
            .map_or(now, |t| (t + REMB_MIN_INTERVAL).max(now));
        self.timers.push(Reverse((at, Timer::Remb)));
    }

    /// The REMB cap for each publisher transport: the lowest share of a
    /// congested subscriber's estimate among the subscribers of its video.
    /// A subscriber's estimate, less 5 % for retransmissions and RTCP, is
    /// shared evenly by the publishers whose video it receives.
    pub(super) fn publisher_caps(&self) -> Vec<(TransportId, u64)> {
        let mut caps: Vec<(TransportId, u64)> = Vec::new();
        let mut publishers: Vec<TransportId> = Vec::new();
        for (_, sub) in self.transports.iter() {
            let Some(cap) = sub.bwe.cap() else {
                continue;
            };
            // REMB caps all a publisher sends (its audio too), so the
            // subscriber's estimate is shared by the publishers whose video
            // it receives.
            publishers.clear();
            for x in &sub.consumers {
                // A simulcast or spatially layered (VP9 SVC) producer is
                // not capped: the estimate picks its consumer's layer
                // instead.
                if let Some(c) = self.consumers.get(*x)
                    && let Some(p) = self.producers.get(c.params.producer)
                    && p.params.kind == MediaKind::Video
                    && !p.is_simulcast()
                    && !p.is_svc()
                    && !publishers.contains(&p.params.transport)
                {
                    publishers.push(p.params.transport);
                }
            }
            let share = cap * 95 / 100 / publishers.len().max(1) as u64;
            for t in &publishers {
                match caps.iter_mut().find(|(c, _)| c == t) {
                    Some((_, v)) => *v = (*v).min(share),
                    None => caps.push((*t, share)),
                }
            }
        }
        caps
    }

    /// Sends each publisher with transport-cc its feedback on what arrived
    /// since the last one; the timer is re-armed by the next packet.
    pub(super) fn send_twcc_feedback(&mut self) {
        self.twcc_scheduled = false;
        let Self {
            transports,
            producers,
            transmits,
            rtcp_buf,
            rtcp_ssrc,
            ..
        } = self;
        for e in transports.values_mut() {
            let Some(tw) = e.twcc.as_mut().filter(|t| t.has_pending()) else {
                continue;
            };
            let media = e
                .producers
                .iter()
                .filter_map(|p| producers.get(*p))
                .find_map(|p| p.encodings.iter().find_map(|e| e.ssrc))
                .unwrap_or(Ssrc(0));
            let connected = e.transport.is_connected();
            send_rtcp(&mut e.transport, rtcp_buf, transmits, |b| {
                tw.write_feedback(*rtcp_ssrc, media, b) > 0 && connected
            });
        }
    }

    /// Sends each publisher whose subscribers are congested its REMB cap
    /// (draft-alvestrand-rmcat-remb): every second with the reports
    /// (`periodic`), and at once when a cap was lowered by 5 % or more. A
    /// lifted cap is announced three times (a lost REMB would leave it).
    pub(super) fn send_rembs(&mut self, now: Instant, periodic: bool) {
        if !periodic {
            self.remb_scheduled = false;
        }
        let caps = self.publisher_caps();
        let Self {
            transports,
            producers,
            transmits,
            rtcp_buf,
            rtcp_ssrc,
            last_rembs,
            ..
        } = self;
        let mut ssrcs = Vec::new();
        for (tid, e) in transports.iter_mut() {
            if e.producers.is_empty() || !e.transport.is_connected() {
                continue;
            }
            let bps = match caps.iter().find(|(t, _)| *t == tid) {
                Some(&(_, cap)) => {
                    let lowered = e.last_remb.is_none_or(|(_, b)| cap < b * 95 / 100);
                    if !periodic && !lowered {
                        continue;
                    }
                    e.remb_lifts_left = 3;
                    cap
                }
                None if periodic && e.remb_lifts_left > 0 => {
                    e.remb_lifts_left -= 1;
                    bwe::MAX_BPS
                }
                None => continue,
            };
            ssrcs.clear();
            ssrcs.extend(
                e.producers
                    .iter()
                    .filter_map(|p| producers.get(*p))
                    .flat_map(|p| p.encodings.iter().filter_map(|e| e.ssrc)),
            );
            let sent = send_rtcp(&mut e.transport, rtcp_buf, transmits, |b| {
                rtcp::write_empty_rr(*rtcp_ssrc, b);
                rtcp::write_remb(*rtcp_ssrc, bps, &ssrcs, b);
                true
            });
            if sent {
                e.last_remb = Some((now, bps));
                *last_rembs = Some(now);
            }
        }
    }

    /// Measures the rate we send each participant at, and sets the estimate
    /// gauges (`estimates`, `estimate_bps_sum`, `capped_subscribers`) of the
    /// room, moving the worker's by as much. Once a second.
    pub(super) fn update_estimate_gauges(&mut self, now: Instant) {
        let (mut n, mut sum, mut capped) = (0u64, 0u64, 0u64);
        for (_, e) in self.transports.iter_mut() {
            e.sending_rate.sample(now, e.sent_bytes, Duration::ZERO);
        }
        for (_, e) in self.transports.iter() {
            if e.consumers.is_empty() || e.transport.is_pipe() {
                continue;
            }
            let bps = e.bwe.bps();
            if bps < bwe::MAX_BPS {
                n += 1;
                sum += bps;
            }
            capped += u64::from(e.bwe.cap().is_some());
        }
        for c in [&self.counters, &self.worker_counters] {
            c.estimates.add(n as i64 - self.estimate_gauges.0 as i64);
            c.estimate_bps_sum
                .add(sum as i64 - self.estimate_gauges.1 as i64);
            c.capped_subscribers
                .add(capped as i64 - self.estimate_gauges.2 as i64);
        }
        self.estimate_gauges = (n, sum, capped);
    }
}
