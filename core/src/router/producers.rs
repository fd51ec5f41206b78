//! The Router's producer API: create and close a publisher's track, with its
//! encodings (one, or a simulcast producer's up to four), and bind them
//! into the transport's RtpListener.

use super::*;
use crate::proto::rtp::Extension;

impl Router {
    /// Adds a producer on `params.transport`. The SSRCs of its encodings
    /// that the offer announced are bound at once, the others from their
    /// first packets ([`rtp_listener`]).
    ///
    /// Errors: [`Error::UnknownTransport`]; [`Error::InvalidParams`] when
    /// [`ProducerParams::validate`] fails or the transport already has a
    /// stream with one of its SSRCs.
    pub fn create_producer(&mut self, params: ProducerParams) -> Result<ProducerId> {
        let tid = params.transport;
        let entry = self
            .transports
            .get(tid)
            .ok_or(Error::UnknownTransport(tid))?;
        params.validate()?;
        let announced = params
            .encodings
            .iter()
            .flat_map(|e| e.ssrc.into_iter().chain(e.rtx_ssrc));
        for ssrc in announced {
            if entry.listener.contains(ssrc) {
                return Err(ParamsError::SsrcProduced(ssrc).into());
            }
        }
        let video = params.kind == MediaKind::Video;
        let direct = entry.transport.is_direct();
        if let Some(id) = params.extensions.get(Extension::TransportWideCc) {
            let now = self.now;
            let e = &mut self.transports[tid];
            if e.twcc.is_none() {
                e.twcc = Some(TwccReceiver::new(id, now));
            }
        }
        let mut producer = Producer::new(params);
        if video && (direct || producer.params.keep_gop) {
            producer.gop = Some(Default::default());
        }
        if video {
            // 90 kHz: the RTP clock of every video codec we forward.
            let ticks = self.config.retransmission_max_age.as_millis() as u32 * 90;
            for e in &mut producer.encodings {
                e.buffer = Some(RetransmissionBuffer::new(ticks));
                e.nack = Some(NackGenerator::new(self.config.nack_reorder_delay));
            }
        }
        let layered = producer.is_layered();
        let id = self.producers.insert(producer);
        let entry = &mut self.transports[tid];
        entry.producers.push(id);
        entry.listener.add_producer(id, &self.producers[id].params);
        if !self.reports_scheduled {
            self.reports_scheduled = true;
            self.timers
                .push(Reverse((self.now + REPORT_INTERVAL, Timer::Reports)));
        }
        if self.producers[id]
            .params
            .extensions
            .get(Extension::AudioLevel)
            .is_some()
            && !self.speaker_scheduled
        {
            self.speaker_scheduled = true;
            self.timers.push(Reverse((
                self.now + active_speaker::INTERVAL,
                Timer::ActiveSpeaker,
            )));
        }
        if layered && !self.layers_scheduled {
            self.layers_scheduled = true;
            self.timers
                .push(Reverse((self.now + LAYERS_INTERVAL, Timer::Layers)));
        }
        self.gauge(|c| c.producers.add(1));
        Ok(id)
    }

    /// Closes a producer and all its consumers.
    ///
    /// Errors: [`Error::UnknownProducer`].
    pub fn close_producer(&mut self, id: ProducerId) -> Result<()> {
        let p = self.producers.get(id).ok_or(Error::UnknownProducer(id))?;
        let tid = p.params.transport;
        if let Some(e) = self.transports.get_mut(tid) {
            e.producers.retain(|x| *x != id);
        }
        self.remove_producer(id);
        Ok(())
    }

    pub(super) fn remove_producer(&mut self, id: ProducerId) {
        let Some(p) = self.producers.try_remove(id) else {
            return;
        };
        if let Some(e) = self.transports.get_mut(p.params.transport) {
            e.listener.remove_producer(id);
        }
        self.speaker.remove(id);
        for c in p.consumers {
            if let Some(cons) = self.consumers.get(c) {
                let tid = cons.params.transport;
                if let Some(e) = self.transports.get_mut(tid) {
                    e.consumers.retain(|x| *x != c);
                }
            }
            self.remove_consumer(c);
        }
        self.gauge(|c| c.producers.add(-1));
    }

    pub(super) fn encoding_mut(
        &mut self,
        pid: ProducerId,
        enc: u8,
    ) -> Option<&mut producer::Encoding> {
        self.producers
            .get_mut(pid)
            .and_then(|p| p.encodings.get_mut(enc as usize))
    }
}
