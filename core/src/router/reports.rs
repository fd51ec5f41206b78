//! Reports and round-trip time: sender reports relayed to subscribers, our
//! receiver reports to publishers (RFC 3550 §6.4), XR RRTR/DLRR (RFC 3611
//! §4.4-4.5), RTT from report blocks, and the loss subscribers report.

use super::*;

impl Router {
    /// Rewrites a producer's SR for each of its consumers (SSRC, RTP timestamp
    /// offset, the consumer's own counts) so subscribers can sync audio and video.
    pub(super) fn relay_sender_report(&mut self, now: Instant, tid: TransportId, si: SenderInfo) {
        let now_ms = self.ms_since_epoch(now);
        let Self {
            transports,
            producers,
            consumers,
            transmits,
            rtcp_buf,
            ..
        } = self;
        let Some(entry) = transports.get(tid) else {
            return;
        };
        let Some(route) = entry.listener.get(si.ssrc).filter(|r| !r.rtx) else {
            return;
        };
        let Some(producer) = producers.get_mut(route.producer) else {
            return;
        };
        let Some(e) = producer.encodings.get_mut(route.encoding as usize) else {
            return;
        };
        e.last_sr = Some(si);
        e.stats.on_sender_report(now, si.ntp);
        for cid in &producer.consumers {
            let Some(c) = consumers.get(*cid) else {
                continue;
            };
            if c.paused || c.layer != Some(route.encoding) {
                continue;
            }
            let sr = SenderInfo {
                ssrc: c.params.ssrc,
                ntp: si.ntp,
                rtp_ts: si.rtp_ts.wrapping_add(c.ts_offset),
                packets: c.packets_sent,
                octets: c.octets_sent,
            };
            if let Some(t) = transports.get_mut(c.params.transport)
                && send_rtcp(&mut t.transport, rtcp_buf, transmits, |b| {
                    sr.write(b);
                    true
                })
            {
                // For the RTT, when the subscriber reports on this SR.
                let ntp_mid = (si.ntp >> 16) as u32;
                let Some(c) = consumers.get_mut(*cid) else {
                    continue;
                };
                let f = &mut c.feedback;
                f.sr_sent[f.sr_next % f.sr_sent.len()] = (ntp_mid, now_ms);
                f.sr_next = f.sr_next.wrapping_add(1);
            }
        }
    }

    pub(super) fn ms_since_epoch(&self, now: Instant) -> u32 {
        now.saturating_duration_since(self.epoch).as_millis() as u32 + 1
    }

    /// The round-trip time measured to transport `id` from its receiver
    /// reports, if any yet.
    pub fn transport_rtt(&self, id: TransportId) -> Option<Duration> {
        self.transports.get(id).and_then(|e| e.rtt)
    }

    /// The RTT to transport `tid`: measured, else the configured default.
    pub(super) fn rtt(&self, tid: TransportId) -> Duration {
        self.transports
            .get(tid)
            .and_then(|e| e.rtt)
            .unwrap_or(self.config.default_rtt)
    }

    /// A subscriber's report block about one of our consumer SSRCs gives the
    /// RTT to it (RFC 3550 §6.4.1: now − LSR's send time − DLSR), smoothed
    /// with a 1/8 gain as TCP does (RFC 6298 §2).
    pub(super) fn on_report_block(
        &mut self,
        now: Instant,
        tid: TransportId,
        b: &rtcp::ReportBlock,
    ) {
        if b.lsr == 0 {
            return;
        }
        let Some(cid) = self.find_consumer(tid, b.ssrc) else {
            return;
        };
        let now_ms = self.ms_since_epoch(now);
        let Some(c) = self.consumers.get(cid) else {
            return;
        };
        let Some(&(_, sent_ms)) = c
            .feedback
            .sr_sent
            .iter()
            .find(|(lsr, ms)| *lsr == b.lsr && *ms != 0)
        else {
            return;
        };
        self.rtt_sample(tid, now_ms, sent_ms, b.dlsr);
    }

    /// A subscriber's report on its video: `expected` packets of which
    /// `lost` were lost since its previous reports. Once at least
    /// [`LOSS_WINDOW_PACKETS`] are counted, their loss fraction and the rate
    /// we sent it in the meantime feed its loss-based estimate (fewer
    /// packets would make random loss look like congestion now and then).
    pub(super) fn on_subscriber_loss(
        &mut self,
        now: Instant,
        tid: TransportId,
        expected: u64,
        lost: u64,
    ) {
        let Some(e) = self.transports.get_mut(tid) else {
            return;
        };
        if e.bwe.has_feedback() {
            return; // transport-wide feedback tells loss per packet, sooner
        }
        for c in [&self.counters, &self.worker_counters] {
            c.packets_lost_out.add(lost);
            c.packets_reported_out.add(expected);
        }
        let (at, bytes) = *e.last_report.get_or_insert((now, e.sent_bytes));
        e.loss_window.0 += expected;
        e.loss_window.1 += lost;
        let (exp, lst) = e.loss_window;
        let secs = now.saturating_duration_since(at).as_secs_f64();
        if exp < LOSS_WINDOW_PACKETS || secs < 0.2 {
            return;
        }
        let fraction = ((lst.min(exp) << 8) / exp).min(255) as u8;
        let bps = ((e.sent_bytes - bytes) as f64 * 8.0 / secs) as u64;
        let lowered = e.bwe.on_receiver_report(now, fraction, bps);
        e.last_report = Some((now, e.sent_bytes));
        e.loss_window = (0, 0);
        if lowered {
            self.schedule_rembs(now);
        }
    }

    /// Sends each publisher a receiver report on all its producers, and
    /// re-arms the timer while any producer exists.
    pub(super) fn send_reports(&mut self, now: Instant) {
        self.send_rembs(now, true);
        self.update_estimate_gauges(now);
        let (ntp, now_ms) = (self.ntp(now), self.ms_since_epoch(now));
        let Self {
            transports,
            producers,
            transmits,
            rtcp_buf,
            rtcp_ssrc,
            ..
        } = self;
        let mut blocks = Vec::new();
        for (_, e) in transports.iter_mut() {
            let publishes = !e.producers.is_empty();
            // A relay's two ends each measure the RTT between the nodes,
            // whichever way media flows.
            let relay = e.transport.is_relay();
            if !e.transport.is_connected() || (!publishes && !relay && e.their_rrtr.is_none()) {
                continue;
            }
            blocks.clear();
            for pid in &e.producers {
                let encodings = producers.get_mut(*pid).map(|p| p.encodings.as_mut_slice());
                for enc in encodings.unwrap_or_default() {
                    if let Some(ssrc) = enc.ssrc
                        && let Some(b) = enc.stats.report(now, ssrc)
                    {
                        blocks.push(b);
                    }
                }
            }
            let (rrtr_sent, rrtr_next, their_rrtr) =
                (&mut e.rrtr_sent, &mut e.rrtr_next, &mut e.their_rrtr);
            send_rtcp(&mut e.transport, rtcp_buf, transmits, |b| {
                rtcp::write_rr(*rtcp_ssrc, &blocks, b);
                let mut worth_sending = !blocks.is_empty();
                // RFC 3611: our reference time to a publisher, whose DLRR
                // gives us the RTT even when we send it no media (§4.4)…
                if (publishes && worth_sending) || relay {
                    worth_sending = true;
                    rtcp::write_xr_rrtr(*rtcp_ssrc, ntp, b);
                    rrtr_sent[*rrtr_next % rrtr_sent.len()] = ((ntp >> 16) as u32, now_ms);
                    *rrtr_next = rrtr_next.wrapping_add(1);
                }
                // …and the DLRR a receiver asked for with its own RRTR (§4.5).
                if let Some((ssrc, lrr, at)) = their_rrtr.take() {
                    let dlrr = receive_stats::to_1_65536(now.saturating_duration_since(at));
                    rtcp::write_xr_dlrr(*rtcp_ssrc, &[(ssrc, lrr, dlrr)], b);
                    worth_sending = true;
                }
                worth_sending
            });
        }
        self.reports_scheduled = self.transports.iter().any(|(_, e)| {
            !e.producers.is_empty() || e.their_rrtr.is_some() || e.transport.is_relay()
        });
        if self.reports_scheduled {
            self.timers
                .push(Reverse((now + REPORT_INTERVAL, Timer::Reports)));
        }
    }

    /// Our clock as a 64-bit NTP timestamp (RFC 3550 §4), for XR RRTR: time
    /// since the router's epoch, which only we interpret when it comes back.
    pub(super) fn ntp(&self, now: Instant) -> u64 {
        let d = now.saturating_duration_since(self.epoch);
        (d.as_secs() << 32) | ((u64::from(d.subsec_nanos()) << 32) / 1_000_000_000)
    }

    /// An extended report (RFC 3611) from transport `tid`: a receiver's
    /// RRTR is remembered for our DLRR; a DLRR on our RRTR gives the RTT.
    pub(super) fn on_xr(&mut self, now: Instant, tid: TransportId, p: &rtcp::RtcpPacket<'_>) {
        let Some(xr) = rtcp::parse_xr(p) else { return };
        let sender = p.sender_ssrc();
        let now_ms = self.ms_since_epoch(now);
        let ours = self.rtcp_ssrc;
        if let (Some(ntp), Some(ssrc)) = (xr.rrtr.last(), sender) {
            if let Some(e) = self.transports.get_mut(tid) {
                e.their_rrtr = Some((ssrc, (ntp >> 16) as u32, now));
            }
            if !self.reports_scheduled {
                self.reports_scheduled = true;
                self.timers
                    .push(Reverse((now + REPORT_INTERVAL, Timer::Reports)));
            }
        }
        for (ssrc, lrr, dlrr) in xr.dlrr {
            if ssrc != ours || lrr == 0 {
                continue;
            }
            let Some(&(_, sent_ms)) = self
                .transports
                .get(tid)
                .and_then(|e| e.rrtr_sent.iter().find(|(m, ms)| *m == lrr && *ms != 0))
            else {
                continue;
            };
            self.rtt_sample(tid, now_ms, sent_ms, dlrr);
        }
    }

    /// One RTT sample (RFC 3550 §6.4.1 / RFC 3611 §4.5: now − when our
    /// reference went out − the peer's delay), smoothed with a 1/8 gain as
    /// TCP does (RFC 6298 §2).
    pub(super) fn rtt_sample(
        &mut self,
        tid: TransportId,
        now_ms: u32,
        sent_ms: u32,
        delay_1_65536: u32,
    ) {
        let delay_ms = (u64::from(delay_1_65536) * 1000 / 65536) as u32;
        let Some(rtt_ms) = now_ms
            .checked_sub(sent_ms)
            .and_then(|d| d.checked_sub(delay_ms))
        else {
            return;
        };
        let sample = Duration::from_millis(u64::from(rtt_ms.max(1)));
        for c in [&self.counters, &self.worker_counters] {
            c.rtt_ms_sum.add(u64::from(rtt_ms.max(1)));
            c.rtt_samples.add(1);
        }
        if let Some(e) = self.transports.get_mut(tid) {
            let rtt = match e.rtt {
                None => sample,
                Some(r) => (r * 7 + sample) / 8,
            };
            e.rtt = Some(rtt);
            if let Transport::Pipe(p) = &e.transport
                && let Some(c) = p.relay_counters()
            {
                c.rtt_ms.set(rtt.as_millis() as u64);
            }
        }
    }
}
