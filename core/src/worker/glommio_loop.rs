//! The glommio run loop (the first data plane, kept beside the event loop
//! until that one is proven; see [`super::IoBackend`]): a `LocalExecutor`
//! per worker, a control task polling the inbox every [`INBOX_POLL`], and one
//! task per router reading its socket.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use glommio::net::UdpSocket;

use super::{Command, Event, Failure, RouterInfo, WorkerConfig, guarded, log_failure, send_event};
use crate::error::{Error, Result};
use crate::ids::RouterId;
use crate::io::bind_udp;
use crate::proto::dtls::{self, Certificate};
use crate::router::{Router, RouterEvent};
use crate::stats::Counters;

/// How often the control task looks at the inbox when idle.
pub const INBOX_POLL: Duration = Duration::from_millis(2);
/// Longest a router task waits on its socket before checking timers and shutdown.
const MAX_RECV_WAIT: Duration = Duration::from_millis(50);
/// How often a router task rescans its transports for the next timer.
const TIMER_RESCAN: Duration = Duration::from_millis(10);
/// Largest datagram we read (bytes); WebRTC stays under the 1500 B path MTU.
const RECV_BUF: usize = 2048;

struct RouterSlot {
    router: Rc<RefCell<Router>>,
    closed: Rc<Cell<bool>>,
    task: glommio::task::JoinHandle<()>,
}

pub(super) async fn run(
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
