//! The Router's pipe API: one end of a [`PipeTransport`] to the room's
//! Router on another worker, the pipe consumers that send a producer's
//! encodings through it, and the packets that arrive from it
//! (`crate::transport::pipe` describes the whole pipe).

use super::*;
use crate::proto::rtp::Extension;
use crate::transport::{PIPE_EXTENSIONS, PipePeer, PipeTransport};

/// What a pipe consumer sends: one encoding of a producer, through a pipe,
/// with its own SSRC (announced to the far Router's mirror producer).
#[derive(Debug, Clone, Copy)]
pub struct PipeConsumerParams {
    /// The pipe end it sends through ([`Router::create_pipe_transport`]).
    pub transport: TransportId,
    /// The producer it copies.
    pub producer: ProducerId,
    /// Which of the producer's encodings (0 for a single stream).
    pub encoding: u8,
    /// The SSRC it sends with: the far mirror's encoding `encoding`.
    pub ssrc: Ssrc,
}

impl ProducerParams {
    /// The parameters of this producer's mirror on the far end of a pipe:
    /// the same kind, codec, payload types and RIDs, arriving on pipe
    /// end `transport` with the pipe consumers' SSRCs `ssrcs` (one per
    /// encoding, in order) and the pipe's header extensions. No RTX: what a
    /// pipe resends comes on the media SSRC.
    pub fn mirror(&self, transport: TransportId, ssrcs: &[Ssrc]) -> ProducerParams {
        ProducerParams {
            transport,
            kind: self.kind,
            encodings: self
                .encodings
                .iter()
                .zip(ssrcs)
                .map(|(e, s)| EncodingParams {
                    rid: e.rid,
                    ssrc: Some(*s),
                    rtx_ssrc: None,
                })
                .collect(),
            mid: None,
            payload_types: self.payload_types.clone(),
            video_codec: self.video_codec,
            rtx_payload_types: Vec::new(),
            extensions: PIPE_EXTENSIONS
                .keep_if(Extension::AudioLevel, self.kind == MediaKind::Audio),
            // A mirror of an ingest's track keeps its own GOP for the
            // consumers on its side.
            keep_gop: self.keep_gop,
        }
    }
}

impl Router {
    /// Adds one end of a pipe, not connected yet (what it would send is
    /// dropped until [`Router::connect_pipe_transport`]).
    pub fn create_pipe_transport(&mut self) -> TransportId {
        self.insert_transport(Transport::Pipe(PipeTransport::new()))
    }

    /// Connects pipe end `id` to its far end `peer`: a Router on another
    /// worker, or on another node (a relay: its datagrams are taken from
    /// `peer`'s address only, on this Router's socket).
    ///
    /// Errors: [`Error::UnknownTransport`]; [`ParamsError::NotAPipe`] when
    /// `id` is a WebRtcTransport.
    pub fn connect_pipe_transport(
        &mut self,
        id: TransportId,
        peer: impl Into<PipePeer>,
    ) -> Result<()> {
        let peer = peer.into();
        let e = self
            .transports
            .get_mut(id)
            .ok_or(Error::UnknownTransport(id))?;
        let Transport::Pipe(p) = &mut e.transport else {
            return Err(ParamsError::NotAPipe(id).into());
        };
        p.connect(peer);
        let relay = e.transport.is_relay();
        self.after_transport(id);
        if !self.reports_scheduled && relay {
            self.reports_scheduled = true;
            self.timers
                .push(Reverse((self.now + REPORT_INTERVAL, Timer::Reports)));
        }
        Ok(())
    }

    /// Adds a pipe consumer: encoding `params.encoding` of
    /// `params.producer`, every packet of it, through pipe end
    /// `params.transport`. It is never paused and never switches layers;
    /// the far end's consumers choose. A keyframe is requested so the far
    /// end can start at once.
    ///
    /// Errors: [`Error::UnknownTransport`], [`Error::UnknownProducer`],
    /// [`ParamsError::NotAPipe`], [`ParamsError::NoSuchEncoding`],
    /// [`ParamsError::SsrcConsumed`].
    pub fn create_pipe_consumer(
        &mut self,
        now: Instant,
        params: PipeConsumerParams,
    ) -> Result<ConsumerId> {
        let tid = params.transport;
        let e = self
            .transports
            .get(tid)
            .ok_or(Error::UnknownTransport(tid))?;
        if !e.transport.is_pipe() {
            return Err(ParamsError::NotAPipe(tid).into());
        }
        let p = self
            .producers
            .get(params.producer)
            .ok_or(Error::UnknownProducer(params.producer))?;
        if usize::from(params.encoding) >= p.encodings.len() {
            return Err(ParamsError::NoSuchEncoding(params.encoding).into());
        }
        let consumer = ConsumerParams {
            transport: tid,
            producer: params.producer,
            ssrc: params.ssrc,
            mid: None,
            extensions: PIPE_EXTENSIONS
                .keep_if(Extension::AudioLevel, p.params.kind == MediaKind::Audio),
            pt_map: p.params.payload_types.iter().map(|pt| (*pt, *pt)).collect(),
            paused: false,
            rtx: None,
        };
        self.add_consumer(now, consumer, Some(params.encoding))
    }

    /// Handles one packet that arrived through pipe end `transport` (plain
    /// RTP or RTCP, told apart as RFC 5761 §4 does): the mirror producer's
    /// media, or the far end's feedback to the pipe consumers. Give the
    /// buffer back with [`Router::recycle`] afterwards.
    pub fn handle_piped(&mut self, now: Instant, transport: TransportId, data: &[u8]) {
        self.now = self.now.max(now);
        for c in [&self.counters, &self.worker_counters] {
            c.piped_in.add(1);
        }
        if !self
            .transports
            .get(transport)
            .is_some_and(|e| e.transport.is_pipe())
        {
            self.count_drop(DropReason::StaleId);
            return;
        }
        match classify(data) {
            PacketClass::Rtp => self.on_rtp(now, transport, data),
            PacketClass::Rtcp => self.on_rtcp(now, transport, data),
            _ => self.count_drop(DropReason::UnknownProtocol),
        }
    }

    /// Next packet for a pipe (for the worker to carry to the far Router).
    #[must_use]
    pub fn poll_piped(&mut self) -> Option<PipePacket> {
        let p = self.transmits.piped.pop_front()?;
        for c in [&self.counters, &self.worker_counters] {
            c.piped_out.add(1);
        }
        Some(p)
    }
}
