//! The control plane's link to one data-plane worker: [`WorkerRef`] and the
//! request/reply [`call`], with their errors (`sfu_core::Error`). Both the
//! hub and the rooms use it; it imports neither.

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::TrySendError;
use sfu_core::stats::Counters;
use sfu_core::worker::{Command, CommandSender, Reply};
use tokio::sync::{oneshot, watch};

/// How long a room waits for its worker's reply to one command.
pub const CORE_REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// A worker as rooms and the hub see it.
#[derive(Debug, Clone)]
pub struct WorkerRef {
    /// Index of the worker (its CPU slot).
    pub index: usize,
    /// Which incarnation at that index (0, then one more per restart).
    pub generation: u32,
    /// Command channel.
    pub tx: CommandSender,
    /// Its counters (for placement and metrics).
    pub counters: Arc<Counters>,
    /// Becomes true when the hub declares the worker failed; pending
    /// requests then give up at once.
    pub failed: watch::Receiver<bool>,
}

impl WorkerRef {
    /// Queues a command without blocking.
    ///
    /// Errors: [`sfu_core::Error::QueueFull`], [`sfu_core::Error::WorkerGone`].
    pub fn try_send(&self, cmd: Command) -> Result<(), sfu_core::Error> {
        if *self.failed.borrow() {
            return Err(sfu_core::Error::WorkerGone);
        }
        self.tx.try_send(cmd).map_err(|e| match e {
            TrySendError::Full(_) => sfu_core::Error::QueueFull,
            TrySendError::Disconnected(_) => sfu_core::Error::WorkerGone,
        })
    }
}

/// Sends a command to `worker` and awaits its reply, for at most
/// [`CORE_REPLY_TIMEOUT`] and never past the worker being declared failed.
///
/// Errors: [`sfu_core::Error::QueueFull`] when its queue is full,
/// [`sfu_core::Error::WorkerGone`] when it is gone, failed or silent, or the
/// command's own error.
pub async fn call<T: Send + 'static>(
    worker: &WorkerRef,
    make: impl FnOnce(Reply<T>) -> Command,
) -> Result<T, sfu_core::Error> {
    let (otx, orx) = oneshot::channel();
    worker.try_send(make(Box::new(move |r| {
        let _ = otx.send(r);
    })))?;
    let mut failed = worker.failed.clone();
    tokio::select! {
        r = tokio::time::timeout(CORE_REPLY_TIMEOUT, orx) => match r {
            Ok(Ok(r)) => r,
            _ => Err(sfu_core::Error::WorkerGone),
        },
        _ = failed.wait_for(|f| *f) => Err(sfu_core::Error::WorkerGone),
    }
}
