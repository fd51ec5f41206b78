//! Errors of starting and running the server itself: its DTLS certificate,
//! its data-plane workers, its threads and listeners. What a client did
//! wrong is answered on the wire (`docs/signaling.md`), not with these.

use sfu_core::proto::dtls::DtlsError;

/// Why the server could not start, a worker could not be (re)started, or
/// the server did not end cleanly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The DTLS certificate could not be generated.
    #[error("cannot create the DTLS certificate: {0}")]
    Certificate(#[from] DtlsError),
    /// A data-plane worker could not start (no free UDP port, the thread…).
    #[error("cannot start data-plane worker {index}: {source}")]
    Worker {
        /// The worker's index.
        index: usize,
        /// The data plane's error.
        #[source]
        source: sfu_core::Error,
    },
    /// A thread of the server could not be started.
    #[error("cannot start the {what} thread: {source}")]
    Thread {
        /// Which thread.
        what: &'static str,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// The TLS certificate or key could not be loaded.
    #[error("invalid configuration: tls_cert/tls_key: {0}")]
    Tls(#[source] std::io::Error),
    /// The HTTP listener could not be used.
    #[error("the HTTP listener: {0}")]
    Listener(#[source] std::io::Error),
    /// The RTMP listener could not bind (`--rtmp-listen`).
    #[error("the RTMP listener (rtmp_listen): {0}")]
    RtmpListener(#[source] std::io::Error),
    /// The cluster's directory URL could not be used.
    #[error("the cluster's directory: {0}")]
    Directory(String),
    /// The async runtime could not be built.
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// A thread panicked while holding the table of workers.
    #[error("the worker table is poisoned")]
    Poisoned,
    /// The task that restarts a worker panicked or was cancelled.
    #[error("the restart task failed: {0}")]
    RestartTask(#[from] tokio::task::JoinError),
    /// The server's thread panicked.
    #[error("the server thread panicked")]
    Panicked,
}
