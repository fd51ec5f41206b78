//! The Router's consumer API: create, pause, narrow to an answer, and close
//! a subscriber's copy of a producer.

use super::*;
use crate::proto::rtp::Extension;

impl Router {
    /// Adds a consumer of `params.producer` on `params.transport` and asks the
    /// producer for a keyframe so the subscriber can start decoding.
    ///
    /// Errors: [`Error::UnknownTransport`], [`Error::UnknownProducer`],
    /// [`Error::InvalidParams`] (SSRC in use on that transport, bad ext id).
    pub fn create_consumer(&mut self, now: Instant, params: ConsumerParams) -> Result<ConsumerId> {
        self.add_consumer(now, params, None)
    }

    /// [`Router::create_consumer`], or with `pinned` a consumer that
    /// forwards that encoding alone and never switches (a pipe consumer).
    pub(super) fn add_consumer(
        &mut self,
        now: Instant,
        params: ConsumerParams,
        pinned: Option<u8>,
    ) -> Result<ConsumerId> {
        let tid = params.transport;
        let entry = self
            .transports
            .get(tid)
            .ok_or(Error::UnknownTransport(tid))?;
        if !self.producers.contains(params.producer) {
            return Err(Error::UnknownProducer(params.producer));
        }
        if entry
            .consumers
            .iter()
            .any(|c| self.consumers[*c].params.ssrc == params.ssrc)
        {
            return Err(ParamsError::SsrcConsumed(params.ssrc).into());
        }
        params.extensions.validate().map_err(ParamsError::from)?;
        if params.extensions.get(Extension::TransportWideCc).is_some() && entry.twcc_send.is_none()
        {
            self.transports[tid].twcc_send = Some(TwccSender::new(now));
        }
        let pid = params.producer;
        let paused = params.paused;
        let layered = self.producers[pid].is_layered();
        let (seq, ts, rtx_seq) = (self.rng.random(), self.rng.random(), self.rng.random());
        let mut c = Consumer::new(params, seq, ts, rtx_seq, layered && pinned.is_none());
        if let Some(enc) = pinned {
            c.layer = Some(enc);
            c.target_layer = enc;
        } else if layered {
            // Until the first selection: the best layer being received.
            let p = &self.producers[pid];
            let layers = Self::layer_infos(p, now);
            if let Some(t) = c
                .simulcast
                .as_mut()
                .and_then(|s| s.selector.select_alone(now, &layers, None, s.max_width))
            {
                c.set_layer_target(p.is_svc(), t.spatial as u8, t.temporal);
            } else {
                c.target_layer = (p.encodings.len() - 1) as u8;
            }
        }
        let target = c.target_layer;
        let id = self.consumers.insert(c);
        self.transports[tid].consumers.push(id);
        self.producers[pid].consumers.push(id);
        self.gauge(|c| c.consumers.add(1));
        if paused {
            self.gauge(|c| c.paused_consumers.add(1));
        } else {
            self.start_consumer(now, id, pid, target);
        }
        Ok(id)
    }

    /// Closes a consumer; forwarding to it stops at once.
    ///
    /// Errors: [`Error::UnknownConsumer`].
    pub fn close_consumer(&mut self, id: ConsumerId) -> Result<()> {
        let c = self.consumers.get(id).ok_or(Error::UnknownConsumer(id))?;
        let tid = c.params.transport;
        if let Some(e) = self.transports.get_mut(tid) {
            e.consumers.retain(|x| *x != id);
        }
        self.remove_consumer(id);
        Ok(())
    }

    pub(super) fn remove_consumer(&mut self, id: ConsumerId) {
        let Some(c) = self.consumers.try_remove(id) else {
            return;
        };
        if let Some(p) = self.producers.get_mut(c.params.producer) {
            p.consumers.retain(|x| *x != id);
        }
        self.gauge(|c| c.consumers.add(-1));
        if c.paused {
            self.gauge(|c| c.paused_consumers.add(-1));
        }
    }

    /// Pauses or resumes a consumer. Pausing stops forwarding at once;
    /// resuming continues the sequence numbers without a jump and asks the
    /// producer for a keyframe.
    ///
    /// Errors: [`Error::UnknownConsumer`].
    pub fn set_consumer_paused(
        &mut self,
        now: Instant,
        id: ConsumerId,
        paused: bool,
    ) -> Result<()> {
        let c = self
            .consumers
            .get_mut(id)
            .ok_or(Error::UnknownConsumer(id))?;
        if c.paused == paused {
            return Ok(());
        }
        c.paused = paused;
        if !paused {
            c.seq.sync();
            let pid = c.params.producer;
            // A simulcast consumer starts again at a keyframe of its target.
            if let Some(s) = c.simulcast.as_deref_mut() {
                s.last_layer = c.layer.or(s.last_layer);
                c.layer = None;
            }
            let layer = c.target_layer;
            self.gauge(|c| c.paused_consumers.add(-1));
            self.start_consumer(now, id, pid, layer);
        } else {
            self.gauge(|c| c.paused_consumers.add(1));
        }
        Ok(())
    }

    /// Narrows a consumer to what the subscriber's answer accepted: without
    /// the RTX codec, retransmissions go out on the media SSRC; an
    /// extension the answer dropped (or gave another id) is not written.
    ///
    /// Errors: [`Error::UnknownConsumer`].
    pub fn consumer_answered(&mut self, id: ConsumerId, answered: &Answered) -> Result<()> {
        let c = self
            .consumers
            .get_mut(id)
            .ok_or(Error::UnknownConsumer(id))?;
        let p = &mut c.params;
        p.rtx = p.rtx.filter(|_| answered.rtx);
        p.extensions = p.extensions.common(&answered.extensions);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::router::{MediaKind, RouterConfig};
    use crate::testing::Net;

    /// (RTCP SSRC, a consumer's timestamp offset and RTX sequence number)
    /// of a router seeded with `seed`.
    fn randoms(seed: u64) -> (u32, u32, u16) {
        let mut net = Net::with_config(RouterConfig {
            seed,
            ..RouterConfig::default()
        });
        let (a, b) = (net.add_peer(), net.add_peer());
        net.connect_all();
        let p = net.produce(a, MediaKind::Video, 1000, 96);
        let c = net.consume(b, p, 2000, (96, 96));
        let consumer = net.router.consumer(c).expect("consumer");
        (net.router.rtcp_ssrc.0, consumer.ts_offset, consumer.rtx_seq)
    }

    #[test]
    fn a_routers_random_numbers_come_from_its_seed() {
        assert_eq!(randoms(7), randoms(7), "the same seed, the same run");
        assert_ne!(randoms(7), randoms(8));
    }
}
