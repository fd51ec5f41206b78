//! Errors of the data plane. One `#[non_exhaustive]` enum per layer, wrapped by [`Error`].

use crate::ids::{ConsumerId, ProducerId, RouterId, TransportId};

/// Errors returned to the control plane (`sig`) in command replies.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No free UDP port in the configured range (all in use or range empty).
    #[error("no free UDP port in range {min}-{max}")]
    PortRangeExhausted {
        /// Lowest port of the range.
        min: u16,
        /// Highest port of the range.
        max: u16,
    },
    /// A socket operation failed.
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
    /// The router id is unknown to this worker.
    #[error("unknown router {0}")]
    UnknownRouter(RouterId),
    /// The transport id is unknown to the router.
    #[error("unknown transport {0}")]
    UnknownTransport(TransportId),
    /// The producer id is unknown to the router.
    #[error("unknown producer {0}")]
    UnknownProducer(ProducerId),
    /// The consumer id is unknown to the router.
    #[error("unknown consumer {0}")]
    UnknownConsumer(ConsumerId),
    /// Parameters given by the control plane are invalid.
    #[error("invalid parameters: {0}")]
    InvalidParams(String),
    /// The worker thread is gone (shut down or crashed).
    #[error("worker is not running")]
    WorkerGone,
    /// The router panicked (a bug) while handling the request: it was
    /// closed alone ([`crate::worker::Event::RouterFailed`]).
    #[error("router {0} failed and was closed")]
    RouterFailed(RouterId),
    /// The worker's command queue is full: it is overloaded or stalled.
    #[error("the worker's command queue is full")]
    QueueFull,
    /// DTLS set-up failed.
    #[error("dtls: {0}")]
    Dtls(String),
}

/// Result alias of the data plane.
pub type Result<T> = std::result::Result<T, Error>;
