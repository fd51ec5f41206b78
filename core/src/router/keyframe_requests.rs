//! Keyframe requests: PLIs to publishers (RFC 4585 §6.3.1), at most one per
//! producer encoding per 500 ms, on a subscriber's PLI/FIR or a lost packet.

use super::*;

impl Router {
    pub(super) fn find_consumer(&self, tid: TransportId, ssrc: Ssrc) -> Option<ConsumerId> {
        let entry = self.transports.get(tid)?;
        entry.consumers.iter().copied().find(|c| {
            self.consumers
                .get(*c)
                .is_some_and(|c| c.params.ssrc == ssrc)
        })
    }

    /// A subscriber's PLI or FIR: a keyframe of the encoding its consumer
    /// forwards, or of the one it is to switch to.
    pub(super) fn keyframe_for_consumer_ssrc(
        &mut self,
        now: Instant,
        tid: TransportId,
        ssrc: Ssrc,
    ) {
        if let Some(cid) = self.find_consumer(tid, ssrc)
            && let Some(c) = self.consumers.get(cid)
        {
            let (pid, enc) = (c.params.producer, c.layer.unwrap_or(c.target_layer));
            self.request_keyframe(now, pid, enc);
        }
    }

    /// Sends a PLI to the producer's publisher, at most one per
    /// `keyframe_min_interval`; a request inside the interval is deferred to
    /// its end, and one made before the publisher's transport is connected
    /// is deferred until it is — neither is lost.
    pub(super) fn request_keyframe(&mut self, now: Instant, pid: ProducerId, enc: u8) {
        let interval = self.config.keyframe_min_interval;
        let Some(p) = self.producers.get_mut(pid) else {
            return;
        };
        if p.params.kind != MediaKind::Video {
            return;
        }
        let tid = p.params.transport;
        let Some(p) = p.encodings.get_mut(enc as usize) else {
            return;
        };
        let publisher_connected = self
            .transports
            .get(tid)
            .is_some_and(|e| e.transport.is_connected());
        if !publisher_connected || p.last_keyframe_request.is_some_and(|t| now < t + interval) {
            // Sent once the interval has passed (a timer), or once the
            // publisher connects (after_transport).
            if !p.keyframe_pending
                && publisher_connected
                && let Some(last) = p.last_keyframe_request
            {
                self.timers
                    .push(Reverse((last + interval, Timer::Keyframe(pid, enc))));
            }
            p.keyframe_pending = true;
            return;
        }
        // An SSRC not bound yet: its first keyframe comes anyway.
        let Some(media) = p.ssrc else { return };
        p.last_keyframe_request = Some(now);
        p.keyframe_pending = false;
        // A direct transport's publisher (a file played back) is told
        // through the control plane.
        if self
            .transports
            .get(tid)
            .is_some_and(|e| e.transport.is_direct())
        {
            self.events.push_back(RouterEvent::KeyframeRequested(pid));
            self.counters.keyframe_requests.add(1);
            self.worker_counters.keyframe_requests.add(1);
            return;
        }
        if self.send_feedback(tid, |ours, b| rtcp::write_pli(ours, media, b)) {
            self.counters.keyframe_requests.add(1);
            self.worker_counters.keyframe_requests.add(1);
        }
    }
}
