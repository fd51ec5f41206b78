//! Worker: one data-plane thread pinned to a CPU, owning the Routers placed
//! on it, run by our own event loop over epoll or io_uring ([`IoBackend`]).
//! (The first version ran a glommio executor: it wedged for good now and
//! then at shutdown, polled its inbox every 2 ms, and had no batched IO.)
//!
//! The control plane sends [`Command`]s over a bounded crossbeam channel
//! ([`WorkerConfig::command_queue`]; a full queue is [`Error::QueueFull`] to
//! a `try_send`) and receives [`Event`]s on another bounded channel, which
//! the worker never blocks on: when it is full the event is dropped, counted
//! in [`Counters::events_dropped`] and logged. The event loop is woken by an eventfd when a
//! command is queued ([`CommandSender`]) and drains at most a bounded number
//! of commands per iteration, so control work never stalls forwarding and a
//! flood of datagrams never starves commands. Replies travel in the command as a
//! [`Reply`] callback, so the control plane may use any runtime.

pub mod affinity;
mod command;
mod event_loop;
pub mod pipes;

pub use command::{Command, Event, Reply, RouterInfo};

use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, TrySendError};

use crate::error::{Error, Result};
use crate::io::SocketConfig;
use crate::io::Waker;
use crate::proto::dtls::Certificate;
use crate::router::RouterConfig;
use crate::stats::Counters;
use pipes::{PIPE_RING, PipeLink};

/// Which run loop and IO a worker uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IoBackend {
    /// io_uring when `io_uring_setup` is allowed here, else epoll (Docker's
    /// default seccomp profile refuses io_uring). See [`IoBackend::resolve`].
    Auto,
    /// Our own loop over io_uring: outstanding `RecvMsg` requests per
    /// socket, an eventfd read, the wait's timeout in `io_uring_enter`.
    Uring,
    /// Our own loop over epoll: `recvmmsg`/`sendmmsg` batches, an eventfd
    /// for commands, one wait until the earliest deadline. The default: it
    /// measured equal or cheaper than io_uring per forwarded packet
    /// (perf/README.md).
    #[default]
    Epoll,
}

impl IoBackend {
    /// The setting's name (`auto`, `uring`, `epoll`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Uring => "uring",
            Self::Epoll => "epoll",
        }
    }

    /// The backend a worker will really use: `Auto` becomes `Uring` when
    /// io_uring can be set up here and `Epoll` otherwise (logged with the
    /// reason); the others are themselves.
    pub fn resolve(self) -> Self {
        match self {
            Self::Auto => match crate::io::uring::available() {
                Ok(()) => Self::Uring,
                Err(e) => {
                    tracing::info!(error = %e, "io_uring is not available here; using epoll");
                    Self::Epoll
                }
            },
            other => other,
        }
    }
}

/// The sending side of a worker's command queue (clone freely): queues a
/// command without blocking and wakes the worker's loop at once.
#[derive(Debug, Clone)]
pub struct CommandSender {
    tx: Sender<Command>,
    waker: Option<Arc<Waker>>,
}

impl CommandSender {
    /// A sender over `tx` that wakes `waker` after each command (`None`: a
    /// loop that polls, or a test stand-in).
    pub fn new(tx: Sender<Command>, waker: Option<Arc<Waker>>) -> Self {
        Self { tx, waker }
    }

    /// Queues `cmd` and wakes the worker.
    ///
    /// Errors: the command back when the queue is full or the worker gone.
    #[expect(
        clippy::result_large_err,
        reason = "commands are control-plane messages (a few per join): moving one back on a full queue costs nothing that matters"
    )]
    pub fn try_send(&self, cmd: Command) -> std::result::Result<(), TrySendError<Command>> {
        self.tx.try_send(cmd)?;
        if let Some(w) = &self.waker {
            w.wake();
        }
        Ok(())
    }

    /// True when the queue is full.
    pub fn is_full(&self) -> bool {
        self.tx.is_full()
    }

    /// The worker loop's waker, if it has one.
    pub fn waker(&self) -> Option<Arc<Waker>> {
        self.waker.clone()
    }
}

/// Links workers `a` and `b` (index and command sender each) with a pair
/// of SPSC rings ([`pipes`]), replacing any link they had (a restarted
/// worker is linked anew), so that pipes between their Routers can carry
/// packets.
///
/// Errors: [`Error::WorkerGone`] when either has no waker or is gone,
/// [`Error::QueueFull`] when either's command queue is full.
pub fn link_workers(a: (usize, &CommandSender), b: (usize, &CommandSender)) -> Result<()> {
    let (Some(wa), Some(wb)) = (a.1.waker(), b.1.waker()) else {
        return Err(Error::WorkerGone);
    };
    let (la, lb) = PipeLink::pair((a.0, wa), (b.0, wb), PIPE_RING);
    for (tx, link) in [(a.1, la), (b.1, lb)] {
        tx.try_send(Command::LinkWorker { link })
            .map_err(|e| match e {
                TrySendError::Full(_) => Error::QueueFull,
                TrySendError::Disconnected(_) => Error::WorkerGone,
            })?;
    }
    Ok(())
}

/// Settings of a worker.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// CPU to pin to (`Placement::Fixed`), or `None` to let the OS place it.
    pub cpu: Option<usize>,
    /// Socket binding.
    pub socket: SocketConfig,
    /// Router settings.
    pub router: RouterConfig,
    /// Capacity of the command queue, in commands (4096).
    pub command_queue: usize,
    /// Which incarnation of worker `index` this is: 0 at start, one more on
    /// each restart. Carried in the worker's lifecycle events.
    pub generation: u32,
    /// The run loop and IO.
    pub backend: IoBackend,
    /// Where the worker's ICE-TCP listener binds (RFC 6544 passive
    /// candidates), or `None` for UDP only.
    pub ice_tcp: Option<std::net::SocketAddr>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            cpu: None,
            socket: SocketConfig::default(),
            router: RouterConfig::default(),
            command_queue: 4096,
            generation: 0,
            backend: IoBackend::default(),
            ice_tcp: None,
        }
    }
}

/// Handle to a running worker thread. Dropping it shuts the worker down and joins it.
#[derive(Debug)]
pub struct Worker {
    index: usize,
    tx: CommandSender,
    join: Option<std::thread::JoinHandle<()>>,
    counters: Arc<Counters>,
}

impl Worker {
    /// Starts worker `index` with `config.backend`. Events go to `events`.
    ///
    /// Errors: [`Error::Io`] if the thread, its epoll set or its executor
    /// cannot be set up (io_uring missing, CPU absent).
    pub fn spawn(
        index: usize,
        config: WorkerConfig,
        cert: Certificate,
        events: Sender<Event>,
    ) -> Result<Self> {
        let (tx, rx) = crossbeam_channel::bounded(config.command_queue.max(1));
        let counters = Arc::new(Counters::default());
        let generation = config.generation;
        let c = counters.clone();
        let backend = config.backend.resolve();
        let (join, waker) = match backend {
            IoBackend::Auto | IoBackend::Uring | IoBackend::Epoll => {
                let waker = Arc::new(Waker::new()?);
                let w = waker.clone();
                // The driver is made on the worker's own thread (it holds
                // raw pointers into its buffers); set-up errors come back here.
                let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel::<Result<()>>(1);
                let join = std::thread::Builder::new()
                    .name(format!("sfu-worker-{index}"))
                    .spawn(move || {
                        let (driver, tcp) = match event_loop::setup(backend, &w, config.ice_tcp, generation) {
                            Ok(d) => {
                                // Published before the worker is handed out.
                                let port = d.1.as_ref().map_or(0, |t| t.local_addr().port());
                                c.ice_tcp_port.set(u64::from(port));
                                let _ = ready_tx.send(Ok(()));
                                d
                            }
                            Err(e) => {
                                let _ = ready_tx.send(Err(e));
                                return;
                            }
                        };
                        // A panic in a router fails its room alone (the
                        // loop catches it); one anywhere else in the loop
                        // fails the worker: unwinding drops its rooms and
                        // releases their sockets.
                        let run = caught(|| {
                            event_loop::run(index, config, cert, driver, tcp, rx, events.clone(), c.clone())
                        });
                        if let Err(message) = run {
                            tracing::error!(worker = index, panic = %message, "worker failed: its rooms are closed");
                            send_event(
                                &events,
                                &c,
                                Event::WorkerFailed {
                                    worker: index,
                                    generation,
                                    message,
                                },
                            );
                        }
                        send_event(
                            &events,
                            &c,
                            Event::WorkerStopped {
                                worker: index,
                                generation,
                            },
                        );
                    })?;
                match ready_rx.recv() {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        let _ = join.join();
                        return Err(e);
                    }
                    Err(_) => {
                        let _ = join.join();
                        return Err(Error::WorkerGone);
                    }
                }
                (join, Some(waker))
            }
        };
        Ok(Self {
            index,
            tx: CommandSender::new(tx, waker),
            join: Some(join),
            counters,
        })
    }

    /// Index given at spawn.
    pub fn index(&self) -> usize {
        self.index
    }

    /// A sender for commands (clone freely).
    pub fn sender(&self) -> CommandSender {
        self.tx.clone()
    }

    /// Sends a command without blocking. Errors: [`Error::WorkerGone`] if the
    /// thread stopped, [`Error::QueueFull`] if its queue is full.
    pub fn send(&self, cmd: Command) -> Result<()> {
        self.tx.try_send(cmd).map_err(|e| match e {
            TrySendError::Full(_) => Error::QueueFull,
            TrySendError::Disconnected(_) => Error::WorkerGone,
        })
    }

    /// The worker's counters (read without locking).
    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// Shuts down: closes every router, then joins the thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    /// Asks a stalled worker to stop and lets its thread go without waiting
    /// for it (joining a thread that never returns would hang the caller).
    /// Its sockets are released if it ever comes back and sees the request.
    pub fn abandon(mut self) {
        let _ = self.tx.try_send(Command::Shutdown);
        self.join = None;
    }

    fn stop(&mut self) {
        // A full queue: wait for room (the loop drains it), as a shutdown must arrive.
        let mut cmd = Command::Shutdown;
        while let Err(TrySendError::Full(c)) = self.tx.try_send(cmd) {
            cmd = c;
            std::thread::sleep(Duration::from_millis(1));
        }
        let result = match self.join.take() {
            Some(j) => j.join().map_err(|_| "the thread panicked".to_string()),
            None => Ok(()),
        };
        if let Err(e) = result {
            tracing::error!(worker = self.index, error = %e, "worker thread ended with an error");
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `f`, catching a panic: `Err` holds its message.
pub(crate) fn caught<T>(f: impl FnOnce() -> T) -> std::result::Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|payload| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panic with a non-string payload".into())
    })
}

/// A fire-and-forget command that failed (e.g. the object was already
/// closed by a timeout): worth a debug line, not more.
pub(crate) fn log_failure(r: Result<()>) {
    if let Err(e) = r {
        tracing::debug!(error = %e, "command had no effect");
    }
}

/// Sends an event without ever blocking the data plane: when the control
/// plane's queue is full the event is dropped, counted and logged (at most
/// once per 10 s per thread).
pub(crate) fn send_event(events: &Sender<Event>, counters: &Counters, ev: Event) {
    if let Err(crossbeam_channel::TrySendError::Full(ev)) = events.try_send(ev) {
        counters.events_dropped.add(1);
        thread_local!(static LAST_LOG: Cell<Option<Instant>> = const { Cell::new(None) });
        let due = LAST_LOG.with(|l| {
            let due = l
                .get()
                .is_none_or(|t| t.elapsed() > Duration::from_secs(10));
            if due {
                l.set(Some(Instant::now()));
            }
            due
        });
        if due {
            tracing::error!(event = ?ev, dropped = counters.events_dropped.get(), "control plane event queue full: event dropped");
        }
    }
}
