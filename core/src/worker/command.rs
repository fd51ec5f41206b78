//! The messages between the control plane and a worker: [`Command`]s in
//! (each request carrying its [`Reply`] callback) and [`Event`]s out.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::error::Result;
use crate::ids::{ConsumerId, ProducerId, RouterId, TransportId};
use crate::router::RouterEvent;
use crate::router::{ConsumerParams, PipeConsumerParams, ProducerParams};
use crate::stats::Counters;
use crate::transport::{PipePeer, TransportParams};

use super::pipes::PipeLink;

/// A reply to a command, called exactly once on the worker thread.
pub type Reply<T> = Box<dyn FnOnce(Result<T>) + Send>;

/// What a new router tells the control plane.
#[derive(Debug, Clone)]
pub struct RouterInfo {
    /// The router's socket address (the port goes in the ICE candidate).
    pub local_addr: SocketAddr,
    /// The router's counters (read without locking).
    pub counters: Arc<Counters>,
}

/// Requests from the control plane.
#[non_exhaustive]
pub enum Command {
    /// Bind a socket and create a router for a room.
    CreateRouter {
        /// Id chosen by the control plane, unique in the process.
        router: RouterId,
        /// Gets the socket address or [`Error::PortRangeExhausted`].
        reply: Reply<RouterInfo>,
    },
    /// Close a router, its transports and its socket.
    CloseRouter {
        /// The router.
        router: RouterId,
    },
    /// Add a WebRtcTransport to a router.
    CreateTransport {
        /// The router.
        router: RouterId,
        /// ICE and DTLS parameters.
        params: TransportParams,
        /// Gets the transport id.
        reply: Reply<TransportId>,
    },
    /// Close a transport and what it owns.
    CloseTransport {
        /// The router.
        router: RouterId,
        /// The transport.
        transport: TransportId,
    },
    /// Add a producer.
    CreateProducer {
        /// The router.
        router: RouterId,
        /// Track parameters.
        params: ProducerParams,
        /// Gets the producer id.
        reply: Reply<ProducerId>,
    },
    /// Close a producer and its consumers.
    CloseProducer {
        /// The router.
        router: RouterId,
        /// The producer.
        producer: ProducerId,
    },
    /// Add a consumer.
    CreateConsumer {
        /// The router.
        router: RouterId,
        /// Subscription parameters.
        params: ConsumerParams,
        /// Gets the consumer id.
        reply: Reply<ConsumerId>,
    },
    /// Close a consumer.
    CloseConsumer {
        /// The router.
        router: RouterId,
        /// The consumer.
        consumer: ConsumerId,
    },
    /// Pause or resume a consumer.
    SetConsumerPaused {
        /// The router.
        router: RouterId,
        /// The consumer.
        consumer: ConsumerId,
        /// New state.
        paused: bool,
    },
    /// Set the largest width a subscriber shows a consumer's video at
    /// ([`crate::router::Router::set_consumer_max_width`]).
    SetConsumerMaxWidth {
        /// The router.
        router: RouterId,
        /// The consumer.
        consumer: ConsumerId,
        /// Pixels; `None`: no limit.
        width: Option<u16>,
    },
    /// Narrow a consumer to what the subscriber's answer accepted
    /// ([`crate::router::Router::consumer_answered`]).
    ConsumerAnswered {
        /// The router.
        router: RouterId,
        /// The consumer.
        consumer: ConsumerId,
        /// What the answer kept.
        answered: crate::router::Answered,
    },
    /// This worker's end of the rings to another worker
    /// ([`link_workers`]); replaces an older link to the same worker.
    LinkWorker {
        /// The link.
        link: PipeLink,
    },
    /// Add a direct transport to a router
    /// ([`crate::router::Router::create_direct_transport`]): an ingest's,
    /// or with a tap a recording's.
    CreateDirectTransport {
        /// The router.
        router: RouterId,
        /// A recording's queue to its thread.
        tap: Option<crate::transport::Tap>,
        /// Gets its transport id.
        reply: Reply<TransportId>,
    },
    /// Plain RTP and RTCP packets for a direct transport
    /// ([`crate::router::Router::handle_direct`]), in order. No reply: a
    /// packet for a transport or router that is gone is dropped and counted.
    SendDirect {
        /// The router.
        router: RouterId,
        /// The direct transport.
        transport: TransportId,
        /// The packets, each one RTP packet or compound RTCP packet.
        packets: Vec<Vec<u8>>,
    },
    /// Add one end of a pipe to a router
    /// ([`crate::router::Router::create_pipe_transport`]).
    CreatePipeTransport {
        /// The router.
        router: RouterId,
        /// Gets the pipe end's transport id.
        reply: Reply<TransportId>,
    },
    /// Connect a pipe end to its far end
    /// ([`crate::router::Router::connect_pipe_transport`]).
    ConnectPipeTransport {
        /// The router.
        router: RouterId,
        /// The pipe end.
        transport: TransportId,
        /// The far end: a worker's Router, or a node's (a relay).
        peer: PipePeer,
        /// Gets `Ok(())` or the error.
        reply: Reply<()>,
    },
    /// Add a pipe consumer
    /// ([`crate::router::Router::create_pipe_consumer`]).
    CreatePipeConsumer {
        /// The router.
        router: RouterId,
        /// What it sends.
        params: PipeConsumerParams,
        /// Gets the consumer id.
        reply: Reply<ConsumerId>,
    },
    /// Liveness probe of the control plane's watchdog: answered at once by
    /// the command loop. A worker that does not answer is stalled.
    Ping {
        /// Gets `Ok(())`.
        reply: Reply<()>,
    },
    /// Fault injection for tests of panic containment (the `testing`
    /// feature only): makes `router` panic
    /// inside the worker, as a bug in it would. That room then fails alone,
    /// as described on [`Event::RouterFailed`].
    #[cfg(any(test, feature = "testing"))]
    FaultInjectPanic {
        /// The router.
        router: RouterId,
    },
    /// Close every router and stop the thread.
    Shutdown,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            Self::CreateRouter { .. } => "CreateRouter",
            Self::CloseRouter { .. } => "CloseRouter",
            Self::CreateTransport { .. } => "CreateTransport",
            Self::CloseTransport { .. } => "CloseTransport",
            Self::CreateProducer { .. } => "CreateProducer",
            Self::CloseProducer { .. } => "CloseProducer",
            Self::CreateConsumer { .. } => "CreateConsumer",
            Self::CloseConsumer { .. } => "CloseConsumer",
            Self::SetConsumerPaused { .. } => "SetConsumerPaused",
            Self::SetConsumerMaxWidth { .. } => "SetConsumerMaxWidth",
            Self::ConsumerAnswered { .. } => "ConsumerAnswered",
            Self::LinkWorker { .. } => "LinkWorker",
            Self::CreateDirectTransport { .. } => "CreateDirectTransport",
            Self::SendDirect { .. } => "SendDirect",
            Self::CreatePipeTransport { .. } => "CreatePipeTransport",
            Self::ConnectPipeTransport { .. } => "ConnectPipeTransport",
            Self::CreatePipeConsumer { .. } => "CreatePipeConsumer",
            Self::Ping { .. } => "Ping",
            #[cfg(any(test, feature = "testing"))]
            Self::FaultInjectPanic { .. } => "FaultInjectPanic",
            Self::Shutdown => "Shutdown",
        };
        f.write_str(name)
    }
}

/// Notifications to the control plane.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// What one router reported ([`RouterEvent`]: a transport connected or
    /// closed, the dominant speaker, audio levels, source layers).
    Router {
        /// The router.
        router: RouterId,
        /// Its event.
        event: RouterEvent,
    },
    /// A router panicked (a bug) while it handled a datagram, a timer or a
    /// command. The panic was caught and logged, and that router alone was
    /// dropped without calling into it again (its socket released); the
    /// worker's other rooms keep forwarding.
    RouterFailed {
        /// The router.
        router: RouterId,
        /// The panic message.
        message: String,
    },
    /// The worker itself panicked outside any router (a bug). The panic was
    /// caught and logged, every router of the worker was closed (sockets
    /// released), and the worker stopped; other workers are unaffected.
    WorkerFailed {
        /// Index of the worker.
        worker: usize,
        /// [`WorkerConfig::generation`] of the worker (a restarted worker has a new one).
        generation: u32,
        /// The panic message.
        message: String,
    },
    /// The worker thread stopped.
    WorkerStopped {
        /// Index of the worker.
        worker: usize,
        /// [`WorkerConfig::generation`] of the worker.
        generation: u32,
    },
}
