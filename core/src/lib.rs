//! `sfu-core`: the thread-per-core data plane of the sfu WebRTC SFU.
//!
//! # Threading model
//! One [`worker::Worker`] per selected CPU runs our own event loop on an OS
//! thread pinned to that CPU, over epoll or io_uring ([`io::Driver`]), woken
//! by an eventfd when a command arrives. Each [`router::Router`] (a room) lives
//! on exactly one worker and owns one UDP socket; nothing on the packet path
//! takes a lock or crosses a core. The control plane talks to a worker only
//! through [`worker::Command`]s on a crossbeam channel and reads
//! [`worker::Event`]s and lock-free counters ([`stats`]) back.
//!
//! # Run-loop contract
//! Protocol state ([`proto`], [`transport`], [`router`]) is sans-IO: it is
//! fed `(Instant, datagram, from)` and polled for datagrams to send and for the
//! next timeout. Only [`io`] and [`worker`] touch sockets.

// The server's code handles what it can fail on; tests (integration tests
// are crates of their own, unit tests are allowed by clippy.toml) expect.
#![warn(clippy::expect_used)]
#![warn(missing_docs)]

pub mod bwe;
#[cfg(any(test, feature = "testing"))]
pub mod client;
pub mod error;
pub mod ids;
pub mod io;
pub mod proto;
pub mod router;
pub mod slab;
pub mod stats;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod transport;
pub mod worker;

pub use error::{Error, ParamsError, Result};
pub use ids::{ConsumerId, Mid, ProducerId, Pt, Rid, RouterId, SeqNo, Ssrc, TransportId};
