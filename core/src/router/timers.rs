//! The Router's timers: one heap of deadlines ([`Timer`]), with transports
//! rescheduled after each input, and the periodic work each timer does.

use super::*;
use crate::proto::rtp::Extension;

/// What a timer-heap entry is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Timer {
    /// A transport's own timers (ICE, DTLS, consent).
    Transport(TransportId),
    /// A deferred keyframe request of a producer's encoding.
    Keyframe(ProducerId, u8),
    /// NACKs to its publisher on a producer's encoding.
    Nack(ProducerId, u8),
    /// Simulcast layer selection.
    Layers,
    /// Padding of a subscriber transport's probe cluster.
    Probe(TransportId),
    /// Receiver reports to every publisher, once a second.
    Reports,
    /// Transport-wide congestion control feedback to publishers.
    TwccFeedback,
    /// A lowered REMB cap to publishers.
    Remb,
    /// The dominant-speaker decision.
    ActiveSpeaker,
    /// A transport's held data-channel messages go out (coalescing).
    DataFlush(TransportId),
}

impl Router {
    /// Drains a transport's transmits and events after any call into it.
    /// Puts the transport's next deadline in the heap when it is earlier
    /// than the one scheduled (a later one is found when the entry pops).
    pub(super) fn schedule_transport(&mut self, tid: TransportId) {
        let Some(entry) = self.transports.get_mut(tid) else {
            return;
        };
        if let Some(t) = entry.transport.poll_timeout()
            && entry.scheduled.is_none_or(|s| t < s)
        {
            entry.scheduled = Some(t);
            self.timers.push(Reverse((t, Timer::Transport(tid))));
        }
    }

    pub(super) fn after_transport(&mut self, tid: TransportId) {
        self.schedule_transport(tid);
        let Some(entry) = self.transports.get_mut(tid) else {
            return;
        };
        while let Some(t) = entry.transport.poll_transmit() {
            self.transmits.push_back(t);
        }
        let mut closed = None;
        let mut connected = false;
        while let Some(ev) = entry.transport.poll_event() {
            match ev {
                TransportEvent::Selected(path) => match path.tcp {
                    None => {
                        self.by_addr.retain(|_, t| *t != tid);
                        self.by_addr.insert(path.addr, tid);
                    }
                    // Bound when its first check passed (Router::handle_on).
                    Some(conn) => {
                        self.by_tcp.insert(conn, tid);
                    }
                },
                TransportEvent::Connected => {
                    connected = true;
                    self.events.push_back(RouterEvent::TransportConnected(tid))
                }
                TransportEvent::Closed(reason) => closed = Some(reason),
            }
        }
        let mut data_events = Vec::new();
        if let Some(t) = entry.transport.as_webrtc_mut() {
            while let Some(ev) = t.poll_data_event() {
                data_events.push(ev);
            }
        }
        for ev in data_events {
            self.on_data_event(self.now, tid, ev);
        }
        if connected {
            // Keyframe requests made while the publisher was connecting.
            let mut pending = Vec::new();
            let publishing = self.transports.get(tid).map(|e| e.producers.as_slice());
            for pid in publishing.unwrap_or_default() {
                let Some(p) = self.producers.get(*pid) else {
                    continue;
                };
                for (i, e) in p.encodings.iter().enumerate() {
                    if e.keyframe_pending {
                        pending.push((*pid, i as u8));
                    }
                }
            }
            for (p, e) in pending {
                self.request_keyframe(self.now, p, e);
            }
            self.start_unsent_consumers(tid);
        }
        if let Some(reason) = closed {
            if matches!(reason, CloseReason::DtlsFailed(_)) {
                self.count_drop(DropReason::Dtls);
            }
            self.remove_transport(tid);
            self.events
                .push_back(RouterEvent::TransportClosed(tid, reason));
        }
    }

    /// Starts again the video consumers of subscriber transport `tid`
    /// (just connected) that have sent nothing: they started while it was
    /// still connecting, when no RTP goes out (before ICE and DTLS
    /// complete), so what their start sent was lost. An ingest's kept GOP
    /// is replayed (its encoder cannot be asked for a keyframe, and the
    /// viewer would wait for the next one, up to a GOP's length), or a
    /// keyframe is asked for.
    fn start_unsent_consumers(&mut self, tid: TransportId) {
        let Some(e) = self.transports.get(tid) else {
            return;
        };
        let unsent: Vec<(ConsumerId, ProducerId, u8)> = e
            .consumers
            .iter()
            .filter_map(|cid| {
                let c = self.consumers.get(*cid)?;
                let video = self
                    .producers
                    .get(c.params.producer)
                    .is_some_and(|p| p.params.kind == MediaKind::Video);
                (video && !c.paused && c.packets_sent == 0).then_some((
                    *cid,
                    c.params.producer,
                    c.target_layer,
                ))
            })
            .collect();
        for (cid, pid, layer) in unsent {
            self.start_consumer(self.now, cid, pid, layer);
        }
    }

    /// One speaker-detection interval: each audio producer's loudest level
    /// becomes its activity, the detector decides, and a new speaker is an
    /// event. Re-armed while a producer sends levels.
    pub(super) fn decide_speaker(&mut self, now: Instant) {
        let mut activity = Vec::new();
        let mut levels = Vec::new();
        for (id, p) in self.producers.iter_mut() {
            if p.params.extensions.get(Extension::AudioLevel).is_none() {
                continue;
            }
            let level = p.loudest_level.min(127);
            activity.push((id, 127 - level));
            if level < 127 {
                levels.push((id, level));
            }
            p.loudest_level = 127;
        }
        let audible = !levels.is_empty();
        if audible || self.levels_audible {
            self.events.push_back(RouterEvent::AudioLevels(levels));
        }
        self.levels_audible = audible;
        if let Some(p) = self.speaker.on_interval(&activity) {
            self.events.push_back(RouterEvent::DominantSpeaker(p));
        }
        self.speaker_scheduled = !activity.is_empty();
        if self.speaker_scheduled {
            self.timers.push(Reverse((
                now + active_speaker::INTERVAL,
                Timer::ActiveSpeaker,
            )));
        }
    }

    /// Runs every timer due by `now`: transports' ICE, DTLS and consent
    /// timers, and deferred keyframe requests. Call it no later than
    /// [`Router::poll_timeout`]; calling it early is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        while let Some(&Reverse((at, timer))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            match timer {
                Timer::Transport(tid) => {
                    let Some(e) = self.transports.get_mut(tid) else {
                        continue;
                    };
                    if e.scheduled != Some(at) {
                        continue; // superseded by an earlier entry
                    }
                    e.scheduled = None;
                    if e.transport.poll_timeout().is_some_and(|t| t <= now) {
                        e.transport.handle_timeout(now);
                    }
                    // Reschedules (a deadline that moved later included).
                    self.after_transport(tid);
                }
                Timer::Reports => self.send_reports(now),
                Timer::TwccFeedback => self.send_twcc_feedback(),
                Timer::Remb => self.send_rembs(now, false),
                Timer::ActiveSpeaker => self.decide_speaker(now),
                Timer::DataFlush(tid) => self.flush_data(now, tid),
                Timer::Layers => self.select_layers(now),
                Timer::Probe(tid) => self.send_probe_padding(now, tid),
                Timer::Nack(pid, enc) => {
                    let Some(e) = self.encoding_mut(pid, enc) else {
                        continue;
                    };
                    if e.nack_scheduled != Some(at) {
                        continue; // superseded by an earlier entry
                    }
                    e.nack_scheduled = None;
                    self.send_nacks(now, pid, enc);
                }
                Timer::Keyframe(pid, enc) => {
                    let Some(e) = self.encoding_mut(pid, enc) else {
                        continue;
                    };
                    if e.keyframe_pending {
                        // Not pending any more, so request_keyframe re-arms.
                        e.keyframe_pending = false;
                        self.request_keyframe(now, pid, enc);
                    }
                }
            }
        }
    }

    /// The earliest instant by which [`Router::handle_timeout`] must be
    /// called (O(1); it may be earlier than needed, never later).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((t, _))| *t)
    }
}
