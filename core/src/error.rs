//! Errors of the data plane. One `#[non_exhaustive]` enum per layer, wrapped by [`Error`].

use crate::ids::{ConsumerId, ProducerId, Rid, RouterId, Ssrc, TransportId};
use crate::proto::rtp::ExtensionMapError;

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
    /// The worker's ICE-TCP listener could not be set up (the port in use,
    /// say): `--rtc-tcp-port` picks another, `--ice-tcp off` goes without.
    #[error("cannot listen for ICE-TCP on {addr}: {source}")]
    IceTcp {
        /// The address it tried.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
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
    InvalidParams(#[from] ParamsError),
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
}

/// Why the control plane's parameters for a router, transport, producer
/// or consumer were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParamsError {
    /// A router with this id exists on the worker.
    #[error("router {0} exists")]
    RouterExists(RouterId),
    /// ICE credentials outside RFC 8839 §5.4: ufrag 4–256, pwd 22–256
    /// characters.
    #[error("ICE ufrag must be 4-256 and pwd 22-256 characters")]
    IceCredentialLength,
    /// The ufrag has a ':' (it separates ufrags in the STUN USERNAME).
    #[error("ICE ufrag must not contain ':'")]
    UfragColon,
    /// Another transport of the router has this ufrag.
    #[error("ICE ufrag already in use")]
    UfragInUse,
    /// A producer has 1–[`crate::router::producer::MAX_ENCODINGS`]
    /// encodings.
    #[error("a producer has 1-{max} encodings, not {n}")]
    EncodingCount {
        /// Encodings given.
        n: usize,
        /// The most allowed.
        max: usize,
    },
    /// More than one encoding for audio.
    #[error("simulcast is for video only")]
    SimulcastAudio,
    /// A simulcast encoding (by index) without a RID.
    #[error("simulcast encoding {0} has no RID")]
    MissingRid(usize),
    /// Two encodings with one RID.
    #[error("RID {0} appears twice")]
    DuplicateRid(Rid),
    /// An encoding (by index) with no SSRC and no MID and RID (with their
    /// extension ids) to bind one from (RFC 8852 §3).
    #[error("encoding {0} has no SSRC, and no MID and RID to bind one from")]
    Unbindable(usize),
    /// Header extension ids that cannot be used (RFC 8285).
    #[error(transparent)]
    Extensions(#[from] ExtensionMapError),
    /// The transport already receives a stream with this SSRC.
    #[error("SSRC {} already produced on this transport", .0.0)]
    SsrcProduced(Ssrc),
    /// The transport already sends a consumer with this SSRC.
    #[error("SSRC {} already consumed on this transport", .0.0)]
    SsrcConsumed(Ssrc),
    /// A pipe operation on a transport that is not a pipe end.
    #[error("transport {0} is not a pipe")]
    NotAPipe(TransportId),
    /// A pipe consumer of an encoding the producer does not have.
    #[error("the producer has no encoding {0}")]
    NoSuchEncoding(u8),
}

/// Result alias of the data plane.
pub type Result<T> = std::result::Result<T, Error>;
