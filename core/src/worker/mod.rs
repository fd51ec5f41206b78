//! Worker: one data-plane thread, a glommio `LocalExecutor` pinned to a CPU,
//! owning the Routers placed on it.
//!
//! The control plane sends [`Command`]s over a bounded crossbeam channel
//! ([`WorkerConfig::command_queue`]; a full queue is [`Error::QueueFull`] to
//! a `try_send`) and receives [`Event`]s on another bounded channel, which
//! the worker never blocks on: when it is full the event is dropped, counted
//! in [`Counters::events_dropped`] and logged. The worker drains its inbox between packet batches
//! without blocking (a control task polls it every [`INBOX_POLL`]), so control
//! work never stalls forwarding. Replies travel in the command as a
//! [`Reply`] callback, so the control plane may use any runtime.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use glommio::net::UdpSocket;
use glommio::{LocalExecutorBuilder, Placement};

use crate::error::{Error, Result};
use crate::ids::{ConsumerId, ProducerId, RouterId, TransportId};
use crate::io::{SocketConfig, bind_udp};
use crate::proto::dtls::{self, Certificate};
use crate::router::{ConsumerParams, ProducerParams, Router, RouterConfig, RouterEvent};
use crate::stats::Counters;
use crate::transport::{CloseReason, TransportParams};

/// How often the control task looks at the inbox when idle.
pub const INBOX_POLL: Duration = Duration::from_millis(2);
/// Longest a router task waits on its socket before checking timers and shutdown.
const MAX_RECV_WAIT: Duration = Duration::from_millis(50);
/// How often a router task rescans its transports for the next timer.
/// Timers (DTLS retransmission, consent, keyframe pacing) need no finer grain.
const TIMER_RESCAN: Duration = Duration::from_millis(10);
/// Largest datagram we read (bytes); WebRTC stays under the 1500 B path MTU.
const RECV_BUF: usize = 2048;

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
    /// Liveness probe of the control plane's watchdog: answered at once by
    /// the command loop. A worker that does not answer is stalled.
    Ping {
        /// Gets `Ok(())`.
        reply: Reply<()>,
    },
    /// Fault injection for tests of panic containment: makes `router` panic
    /// inside the worker, as a bug would. The worker then fails as described
    /// on [`Event::WorkerFailed`].
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
            Self::Ping { .. } => "Ping",
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
    /// ICE and DTLS completed.
    TransportConnected {
        /// The router.
        router: RouterId,
        /// The transport.
        transport: TransportId,
    },
    /// A transport closed by itself (consent, timeouts, DTLS failure) or on request.
    TransportClosed {
        /// The router.
        router: RouterId,
        /// The transport.
        transport: TransportId,
        /// Why.
        reason: CloseReason,
    },
    /// A router on this worker panicked (a bug). The panic was caught and
    /// logged, every router of the worker was closed (sockets released), and
    /// the worker stopped; other workers are unaffected.
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

/// Settings of a worker.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// CPU to pin to (`Placement::Fixed`), or `None` to let the OS place it.
    pub cpu: Option<usize>,
    /// Socket binding.
    pub socket: SocketConfig,
    /// Router settings.
    pub router: RouterConfig,
    /// glommio io_uring registered memory in bytes (1 MiB: the default 10 MiB
    /// silently fails with a low `ulimit -l`, DESIGN §6).
    pub io_memory: usize,
    /// Capacity of the command queue, in commands (4096).
    pub command_queue: usize,
    /// Which incarnation of worker `index` this is: 0 at start, one more on
    /// each restart. Carried in the worker's lifecycle events.
    pub generation: u32,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            cpu: None,
            socket: SocketConfig::default(),
            router: RouterConfig::default(),
            io_memory: 1 << 20,
            command_queue: 4096,
            generation: 0,
        }
    }
}

/// Handle to a running worker thread. Dropping it shuts the worker down and joins it.
#[derive(Debug)]
pub struct Worker {
    index: usize,
    tx: Sender<Command>,
    join: Option<glommio::ExecutorJoinHandle<()>>,
    counters: Arc<Counters>,
}

impl Worker {
    /// Starts worker `index`. Events go to `events`.
    ///
    /// Errors: [`Error::Io`] if the executor cannot start (io_uring missing, CPU absent).
    pub fn spawn(
        index: usize,
        config: WorkerConfig,
        cert: Certificate,
        events: Sender<Event>,
    ) -> Result<Self> {
        let (tx, rx) = crossbeam_channel::bounded(config.command_queue.max(1));
        let counters = Arc::new(Counters::default());
        let generation = config.generation;
        let placement = match config.cpu {
            Some(cpu) => Placement::Fixed(cpu),
            None => Placement::Unbound,
        };
        let c = counters.clone();
        let join = LocalExecutorBuilder::new(placement)
            .name(&format!("sfu-worker-{index}"))
            .io_memory(config.io_memory)
            .spawn(move || async move {
                run(index, config, cert, rx, events.clone(), c.clone()).await;
                send_event(
                    &events,
                    &c,
                    Event::WorkerStopped {
                        worker: index,
                        generation,
                    },
                );
            })
            .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?;
        Ok(Self {
            index,
            tx,
            join: Some(join),
            counters,
        })
    }

    /// Index given at spawn.
    pub fn index(&self) -> usize {
        self.index
    }

    /// A sender for commands (clone freely).
    pub fn sender(&self) -> Sender<Command> {
        self.tx.clone()
    }

    /// Sends a command without blocking. Errors: [`Error::WorkerGone`] if the
    /// thread stopped, [`Error::QueueFull`] if its queue is full.
    pub fn send(&self, cmd: Command) -> Result<()> {
        self.tx.try_send(cmd).map_err(|e| match e {
            crossbeam_channel::TrySendError::Full(_) => Error::QueueFull,
            crossbeam_channel::TrySendError::Disconnected(_) => Error::WorkerGone,
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
        let _ = self.tx.send(Command::Shutdown);
        if let Some(j) = self.join.take()
            && let Err(e) = j.join()
        {
            tracing::error!(worker = self.index, error = %e, "worker thread ended with an error");
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop();
    }
}

struct RouterSlot {
    router: Rc<RefCell<Router>>,
    closed: Rc<Cell<bool>>,
    task: glommio::task::JoinHandle<()>,
}

async fn run(
    index: usize,
    config: WorkerConfig,
    cert: Certificate,
    rx: Receiver<Command>,
    events: Sender<Event>,
    counters: Arc<Counters>,
) {
    let dtls_config = dtls::default_config();
    let mut routers: HashMap<RouterId, RouterSlot> = HashMap::new();
    let mut port_hint: u16 = (index as u16).wrapping_mul(97);
    let failure: Failure = Rc::new(RefCell::new(None));
    loop {
        if failure.borrow().is_some() {
            break;
        }
        let cmd = match rx.try_recv() {
            Ok(c) => c,
            Err(TryRecvError::Empty) => {
                glommio::timer::sleep(INBOX_POLL).await;
                continue;
            }
            Err(TryRecvError::Disconnected) => break,
        };
        let now = Instant::now();
        match cmd {
            Command::Shutdown => break,
            Command::Ping { reply } => reply(Ok(())),
            Command::FaultInjectPanic { router } => {
                log_failure(on_router(&routers, &failure, router, |_| -> Result<()> {
                    panic!("fault injection: router {router} made to panic")
                }));
            }
            Command::CreateRouter { router, reply } => {
                if routers.contains_key(&router) {
                    reply(Err(Error::InvalidParams(format!("router {router} exists"))));
                    continue;
                }
                match bind_udp(&config.socket, port_hint) {
                    Err(e) => reply(Err(e)),
                    Ok((sock, addr)) => {
                        port_hint = port_hint.wrapping_add(1);
                        // SAFETY: `into_raw_fd` hands over sole ownership of a valid UDP socket fd.
                        let sock = Rc::new(unsafe { UdpSocket::from_raw_fd(sock.into_raw_fd()) });
                        let rc = Arc::new(Counters::default());
                        let r = Router::new(
                            router,
                            cert.clone(),
                            dtls_config.clone(),
                            config.router,
                            rc.clone(),
                            counters.clone(),
                            now,
                        );
                        counters.routers.add(1);
                        let r = Rc::new(RefCell::new(r));
                        let closed = Rc::new(Cell::new(false));
                        let task = glommio::spawn_local(router_task(
                            r.clone(),
                            sock,
                            closed.clone(),
                            events.clone(),
                            failure.clone(),
                            counters.clone(),
                        ))
                        .detach();
                        routers.insert(
                            router,
                            RouterSlot {
                                router: r,
                                closed,
                                task,
                            },
                        );
                        reply(Ok(RouterInfo {
                            local_addr: addr,
                            counters: rc,
                        }));
                    }
                }
            }
            Command::CloseRouter { router } => {
                if let Some(slot) = routers.remove(&router) {
                    close_router(slot, &counters).await;
                }
            }
            Command::CreateTransport {
                router,
                params,
                reply,
            } => {
                reply(on_router(&routers, &failure, router, |r| {
                    r.create_transport(now, params)
                }));
            }
            Command::CloseTransport { router, transport } => {
                log_failure(on_router(&routers, &failure, router, |r| {
                    r.close_transport(transport)
                }));
            }
            Command::CreateProducer {
                router,
                params,
                reply,
            } => {
                reply(on_router(&routers, &failure, router, |r| {
                    r.create_producer(params)
                }));
            }
            Command::CloseProducer { router, producer } => {
                log_failure(on_router(&routers, &failure, router, |r| {
                    r.close_producer(producer)
                }));
            }
            Command::CreateConsumer {
                router,
                params,
                reply,
            } => {
                reply(on_router(&routers, &failure, router, |r| {
                    r.create_consumer(now, params)
                }));
            }
            Command::CloseConsumer { router, consumer } => {
                log_failure(on_router(&routers, &failure, router, |r| {
                    r.close_consumer(consumer)
                }));
            }
            Command::SetConsumerPaused {
                router,
                consumer,
                paused,
            } => {
                log_failure(on_router(&routers, &failure, router, |r| {
                    r.set_consumer_paused(now, consumer, paused)
                }));
            }
        }
    }
    let failed = failure.borrow_mut().take();
    if let Some(message) = failed {
        // A router's state may be inconsistent after a panic: do not call into
        // any of them again; stop their tasks and drop them, releasing sockets.
        tracing::error!(worker = index, rooms = routers.len(), panic = %message, "worker failed: closing its rooms");
        for (_, slot) in routers.drain() {
            slot.closed.set(true);
            let _ = slot.task.await;
            counters.routers.add(-1);
        }
        send_event(
            &events,
            &counters,
            Event::WorkerFailed {
                worker: index,
                generation: config.generation,
                message,
            },
        );
        return;
    }
    for (_, slot) in routers.drain() {
        close_router(slot, &counters).await;
    }
}

/// The first panic caught on this worker, if any.
type Failure = Rc<RefCell<Option<String>>>;

/// Runs `f`, catching a panic: the panic is recorded in `failure` (the worker
/// then closes its rooms and stops) and `None` is returned.
fn guarded<T>(failure: &Failure, f: impl FnOnce() -> T) -> Option<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(v) => Some(v),
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic with a non-string payload".into());
            failure.borrow_mut().get_or_insert(msg);
            None
        }
    }
}

/// Runs `f` on router `id`, or fails with [`Error::UnknownRouter`]; a panic
/// in `f` is caught ([`guarded`]) and reported as [`Error::WorkerGone`].
fn on_router<T>(
    routers: &HashMap<RouterId, RouterSlot>,
    failure: &Failure,
    id: RouterId,
    f: impl FnOnce(&mut Router) -> Result<T>,
) -> Result<T> {
    let slot = routers.get(&id).ok_or(Error::UnknownRouter(id))?;
    guarded(failure, || f(&mut slot.router.borrow_mut())).unwrap_or(Err(Error::WorkerGone))
}

/// A fire-and-forget command that failed (e.g. the object was already
/// closed by a timeout): worth a debug line, not more.
fn log_failure(r: Result<()>) {
    if let Err(e) = r {
        tracing::debug!(error = %e, "command had no effect");
    }
}

async fn close_router(slot: RouterSlot, counters: &Counters) {
    slot.router.borrow_mut().close_all();
    slot.closed.set(true);
    // The task sees the flag within MAX_RECV_WAIT, sends what is queued and
    // forwards the close events; then the socket is dropped.
    let _ = slot.task.await;
    counters.routers.add(-1);
}

async fn router_task(
    router: Rc<RefCell<Router>>,
    sock: Rc<UdpSocket>,
    closed: Rc<Cell<bool>>,
    events: Sender<Event>,
    failure: Failure,
    worker_counters: Arc<Counters>,
) {
    let mut buf = vec![0u8; RECV_BUF];
    let id = router.borrow().id();
    let mut last_error_log: Option<Instant> = None;
    // The router's next timer, rescanned at most every TIMER_RESCAN: the scan
    // is O(transports), and must not run once per datagram.
    let mut deadline: Option<Instant> = None;
    let mut next_rescan = Instant::now();
    loop {
        flush(&router, &sock, &events, &worker_counters, id).await;
        if closed.get() {
            break;
        }
        let now = Instant::now();
        if now >= next_rescan {
            deadline = router.borrow().poll_timeout();
            next_rescan = now + TIMER_RESCAN;
        }
        let wake = deadline.map_or(next_rescan, |d| d.min(next_rescan));
        let wait = wake
            .saturating_duration_since(now)
            .clamp(Duration::from_millis(1), MAX_RECV_WAIT);
        let _ = sock.set_read_timeout(Some(wait));
        match sock.recv_from(&mut buf).await {
            Ok((n, from)) => {
                let handled = guarded(&failure, || {
                    router
                        .borrow_mut()
                        .handle_datagram(Instant::now(), from, &buf[..n])
                });
                if handled.is_none() {
                    break;
                }
            }
            Err(glommio::GlommioError::TimedOut(_)) => {}
            Err(e) => {
                let e = std::io::Error::from(e);
                let timed_out = matches!(
                    e.kind(),
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
                );
                if !timed_out
                    && last_error_log.is_none_or(|t| t.elapsed() > Duration::from_secs(10))
                {
                    tracing::warn!(router = %id, error = %e, "UDP receive failed");
                    last_error_log = Some(Instant::now());
                }
            }
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| d <= now) {
            if guarded(&failure, || router.borrow_mut().handle_timeout(now)).is_none() {
                break;
            }
            deadline = router.borrow().poll_timeout();
            next_rescan = now + TIMER_RESCAN;
        }
    }
    flush(&router, &sock, &events, &worker_counters, id).await;
}

async fn flush(
    router: &Rc<RefCell<Router>>,
    sock: &UdpSocket,
    events: &Sender<Event>,
    worker_counters: &Counters,
    id: RouterId,
) {
    loop {
        let next = router.borrow_mut().poll_transmit();
        let Some(t) = next else { break };
        let ok = sock.send_to(&t.data, t.dest).await.is_ok();
        router.borrow().count_sent(t.data.len(), ok);
    }
    loop {
        let ev = router.borrow_mut().poll_event();
        let Some(ev) = ev else { break };
        let ev = match ev {
            RouterEvent::TransportConnected(transport) => Event::TransportConnected {
                router: id,
                transport,
            },
            RouterEvent::TransportClosed(transport, reason) => Event::TransportClosed {
                router: id,
                transport,
                reason,
            },
        };
        send_event(events, worker_counters, ev);
    }
}

/// Sends an event without ever blocking the data plane: when the control
/// plane's queue is full the event is dropped, counted and logged (at most
/// once per 10 s per thread).
fn send_event(events: &Sender<Event>, counters: &Counters, ev: Event) {
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
