//! Our own per-core run loop (docs/architecture.md, Threads): one pinned OS thread, one
//! [`Driver`] (epoll or io_uring) holding every room's UDP socket and the
//! command eventfd.
//!
//! Each iteration:
//! 1. handles at most [`MAX_COMMANDS`] commands (more left: the wait below
//!    does not block);
//!    Then it takes at most [`PIPE_BATCH`] packets from each ring of a
//!    linked worker ([`super::pipes`]: the pipes of rooms spread over
//!    cores) and hands each to its Router;
//! 2. runs the routers whose deadline has passed (a heap of each router's
//!    O(1) [`Router::poll_timeout`]; nothing is rescanned);
//! 3. waits until a datagram or a command arrives (eventfd) or the earliest
//!    deadline — an idle worker sleeps until then;
//! 4. takes a bounded batch of datagrams from each socket that has some
//!    (epoll: one `recvmmsg` of 64; io_uring: the completed ones of its 32
//!    outstanding receives), feeds them to the router, and sends each
//!    router's output in `sendmmsg` batches.
//!
//! Packets a Router queued for a pipe are pushed into the ring to that
//! worker as its output is flushed, and that worker is woken once per
//! step.
//!
//! A flooded room therefore gets one batch per iteration and the rest waits
//! its turn: commands, timers and other rooms are never starved. Closing a
//! room deregisters its socket (io_uring: cancels its receives) and drops it
//! on the spot; nothing waits for a pending receive.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use slab::Slab;

use super::{Command, Event, RouterInfo, WorkerConfig, caught, log_failure, send_event};
use crate::error::{Error, ParamsError, Result};
use crate::ids::RouterId;
use crate::io::Waker;
use crate::io::epoll::{BATCH, EpollDriver, SendBatch};
use crate::io::uring::UringDriver;
use crate::io::{Driver, bind_udp};
use crate::proto::dtls::{self, Certificate};
use crate::router::{Router, RouterConfig};
use crate::stats::Counters;
use crate::stats::DropReason;
use crate::transport::{PipePacket, Transmit};

use super::pipes::{PIPE_BATCH, PipeLink};
use crate::io::tcp::TcpServer;

mod ice_tcp;
mod rooms;

use rooms::{flush, on_router, reap};

/// Commands handled per iteration at most.
pub(crate) const MAX_COMMANDS: usize = 64;

struct Room {
    id: RouterId,
    router: Router,
    sock: socket2::Socket,
    /// The deadline this room has in the worker's heap, if any.
    scheduled: Option<Instant>,
    /// Datagrams fed in this iteration (its output is flushed after the poll).
    fed: u32,
    /// The router panicked: it is not called into again, and is dropped at
    /// the end of the current step ([`reap`]).
    failed: bool,
}

/// Rooms whose router panicked in the current step: (slot, panic message).
type Failed = Vec<(usize, String)>;

/// The loop's state apart from its rooms.
struct Io {
    index: usize,
    driver: Box<dyn Driver>,
    send: SendBatch,
    out: Vec<Transmit>,
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    events: Sender<Event>,
    counters: Arc<Counters>,
    /// Rings to the other workers, for the pipes of spread rooms.
    links: Vec<PipeLink>,
    /// The ICE-TCP listener and connections (`--ice-tcp`), and the ICE
    /// timeout their binding must beat.
    tcp: Option<TcpServer>,
    ice_timeout: Duration,
}

impl Io {
    /// After any call into a room's router: sends its output in batches,
    /// forwards its events, and puts its next deadline in the heap. Runs to
    /// one destination (for UDP GSO) are looked for only when the router was
    /// fed more than one datagram: one packet's fan-out goes to distinct
    /// participants, and grouping it would cost without saving anything.
    fn after(&mut self, slot: usize, room: &mut Room) {
        let fed = std::mem::take(&mut room.fed);
        self.out.clear();
        while let Some(t) = room.router.poll_transmit() {
            match self.tcp.as_mut().filter(|_| t.tcp.is_some()) {
                Some(tcp) => ice_tcp::send(tcp, &mut room.router, t),
                None if t.tcp.is_some() => room.router.recycle(t.data),
                None => self.out.push(t),
            }
        }
        // ICE-TCP connections whose transport went.
        if let Some(tcp) = self.tcp.as_mut() {
            while let Some(conn) = room.router.poll_tcp_close() {
                tcp.close(conn);
            }
        }
        if !self.out.is_empty() {
            let r = self.send.send(room.sock.as_raw_fd(), &self.out, fed > 1);
            room.router.count_sent_batch(&r);
            for t in self.out.drain(..) {
                room.router.recycle(t.data);
            }
        }
        while let Some(p) = room.router.poll_piped() {
            self.pipe_out(p, &mut room.router);
        }
        while let Some(event) = room.router.poll_event() {
            let ev = Event::Router {
                router: room.id,
                event,
            };
            send_event(&self.events, &self.counters, ev);
        }
        if let Some(t) = room.router.poll_timeout()
            && room.scheduled.is_none_or(|s| t < s)
        {
            room.scheduled = Some(t);
            self.timers.push(Reverse((t, slot)));
        }
    }

    /// Pushes a packet into the ring to its worker; a full ring or an
    /// unlinked worker drops it (counted), and its buffer goes back to
    /// `router`.
    fn pipe_out(&mut self, p: PipePacket, router: &mut Router) {
        let back = match self.links.iter_mut().find(|l| l.peer == p.to.worker) {
            Some(link) => link.push(p).err(),
            None => Some(p),
        };
        if let Some(p) = back {
            router.counters().count_drop(DropReason::PipeFull);
            self.counters.count_drop(DropReason::PipeFull);
            router.recycle(p.data);
        }
    }

    /// Wakes each worker this one pushed packets to since it last did.
    fn wake_peers(&mut self) {
        for l in &mut self.links {
            l.wake_peer();
        }
    }

    /// Closes a room: its transports (their close events go out), then its
    /// socket, at once.
    fn close(&mut self, slot: usize, mut room: Room) {
        room.router.close_all();
        self.after(slot, &mut room);
        if let Some(tcp) = self.tcp.as_mut() {
            tcp.close_room(slot);
        }
        self.driver.deregister(slot, &room.sock);
        self.counters.routers.add(-1);
        tracing::debug!(worker = self.index, router = %room.id, "router closed");
    }
}

/// Creates the worker's driver for `backend` (`Uring` or `Epoll`), woken by
/// `waker`, and its ICE-TCP listener on `ice_tcp` (watched by the driver),
/// before the loop starts, so a failure is the caller's error.
/// A restarted worker (`generation` > 0) whose listener cannot be bound
/// (the stalled one it replaces may still hold it) goes on without ICE-TCP,
/// and says so.
pub(super) fn setup(
    backend: super::IoBackend,
    waker: &Arc<Waker>,
    ice_tcp: Option<std::net::SocketAddr>,
    generation: u32,
) -> Result<(Box<dyn Driver>, Option<TcpServer>)> {
    let mut driver: Box<dyn Driver> = match backend {
        super::IoBackend::Uring => Box::new(UringDriver::new(waker.clone())?),
        _ => Box::new(EpollDriver::new(waker.clone())?),
    };
    let tcp = match ice_tcp.map(|addr| (addr, TcpServer::bind(addr))) {
        Some((_, Ok(t))) => {
            driver.watch(t.raw_fd())?;
            Some(t)
        }
        Some((addr, Err(e))) if generation > 0 => {
            tracing::warn!(%addr, error = %e, "restarted worker cannot listen for ICE-TCP (the worker it replaces may hold the port): UDP only");
            None
        }
        Some((addr, Err(source))) => return Err(Error::IceTcp { addr, source }),
        None => None,
    };
    Ok((driver, tcp))
}

#[expect(
    clippy::too_many_arguments,
    reason = "the loop's parts, made before it starts so set-up errors reach the caller"
)]
pub(super) fn run(
    index: usize,
    config: WorkerConfig,
    cert: Certificate,
    driver: Box<dyn Driver>,
    tcp: Option<TcpServer>,
    rx: Receiver<Command>,
    events: Sender<Event>,
    counters: Arc<Counters>,
) {
    if let Some(cpu) = config.cpu
        && let Err(e) = super::affinity::pin(0, cpu)
    {
        tracing::warn!(worker = index, cpu, error = %e, "could not pin the worker to its CPU");
    }
    let dtls_config = dtls::default_config();
    let mut rooms: Slab<Room> = Slab::new();
    let mut by_id: HashMap<RouterId, usize> = HashMap::new();
    let mut io = Io {
        index,
        driver,
        send: SendBatch::new(config.socket.udp_gso),
        out: Vec::with_capacity(4 * BATCH),
        timers: BinaryHeap::new(),
        events,
        counters,
        links: Vec::new(),
        tcp,
        ice_timeout: config.router.timeouts.ice,
    };
    tracing::debug!(
        worker = index,
        udp_gso = io.send.gso(),
        asked = config.socket.udp_gso,
        "UDP send path (GSO needs Linux >= 4.18)"
    );
    let mut touched: Vec<usize> = Vec::with_capacity(64);
    let mut port_hint: u16 = (index as u16).wrapping_mul(97);
    let mut failed: Failed = Vec::new();
    'run: loop {
        // 1. Commands, a bounded number.
        let mut more = false;
        for n in 0..=MAX_COMMANDS {
            if n == MAX_COMMANDS {
                more = !rx.is_empty();
                break;
            }
            let cmd = match rx.try_recv() {
                Ok(c) => c,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => break 'run,
            };
            let now = Instant::now();
            match cmd {
                Command::Shutdown => break 'run,
                Command::Ping { reply } => reply(Ok(())),
                Command::LinkWorker { link } => {
                    io.links.retain(|l| l.peer != link.peer);
                    tracing::debug!(worker = index, peer = link.peer, "linked to a worker");
                    io.links.push(link);
                }
                Command::CreateDirectTransport { router, tap, reply } => reply(on_router(
                    &mut rooms,
                    &by_id,
                    &mut io,
                    &mut failed,
                    router,
                    |r| Ok(r.create_direct_transport(tap)),
                )),
                Command::SendDirect {
                    router,
                    transport,
                    packets,
                } => {
                    let sent = on_router(&mut rooms, &by_id, &mut io, &mut failed, router, |r| {
                        for p in &packets {
                            r.handle_direct(now, transport, p);
                        }
                        Ok(())
                    });
                    if sent.is_err() {
                        io.counters.count_drop(DropReason::StaleId);
                    }
                }
                Command::CreatePipeTransport { router, reply } => reply(on_router(
                    &mut rooms,
                    &by_id,
                    &mut io,
                    &mut failed,
                    router,
                    |r| Ok(r.create_pipe_transport()),
                )),
                Command::ConnectPipeTransport {
                    router,
                    transport,
                    peer,
                    reply,
                } => reply(on_router(
                    &mut rooms,
                    &by_id,
                    &mut io,
                    &mut failed,
                    router,
                    |r| r.connect_pipe_transport(transport, peer),
                )),
                Command::CreatePipeConsumer {
                    router,
                    params,
                    reply,
                } => reply(on_router(
                    &mut rooms,
                    &by_id,
                    &mut io,
                    &mut failed,
                    router,
                    |r| r.create_pipe_consumer(now, params),
                )),
                Command::CreateRouter { router, reply } => {
                    if by_id.contains_key(&router) {
                        reply(Err(ParamsError::RouterExists(router).into()));
                        continue;
                    }
                    let (sock, addr) = match bind_udp(&config.socket, port_hint) {
                        Ok(s) => s,
                        Err(e) => {
                            reply(Err(e));
                            continue;
                        }
                    };
                    port_hint = port_hint.wrapping_add(1);
                    let rc = Arc::new(Counters::default());
                    let r = Router::new(
                        router,
                        cert.clone(),
                        dtls_config.clone(),
                        RouterConfig {
                            seed: rand::random(),
                            ..config.router
                        },
                        rc.clone(),
                        io.counters.clone(),
                        now,
                    );
                    let slot = rooms.vacant_entry();
                    let key = slot.key();
                    if let Err(e) = io.driver.register(key, &sock) {
                        reply(Err(Error::Io(e)));
                        continue;
                    }
                    slot.insert(Room {
                        id: router,
                        router: r,
                        sock,
                        scheduled: None,
                        fed: 0,
                        failed: false,
                    });
                    by_id.insert(router, key);
                    io.counters.routers.add(1);
                    reply(Ok(RouterInfo {
                        local_addr: addr,
                        counters: rc,
                    }));
                }
                Command::CloseRouter { router } => {
                    if let Some(key) = by_id.remove(&router) {
                        let room = rooms.remove(key);
                        io.close(key, room);
                    }
                }
                #[cfg(any(test, feature = "testing"))]
                Command::FaultInjectPanic { router } => log_failure(on_router(
                    &mut rooms,
                    &by_id,
                    &mut io,
                    &mut failed,
                    router,
                    |_| -> Result<()> { panic!("fault injection: router {router} made to panic") },
                )),
                Command::CreateTransport {
                    router,
                    params,
                    reply,
                } => reply(on_router(
                    &mut rooms,
                    &by_id,
                    &mut io,
                    &mut failed,
                    router,
                    |r| r.create_transport(now, params),
                )),
                Command::CloseTransport { router, transport } => log_failure(on_router(
                    &mut rooms,
                    &by_id,
                    &mut io,
                    &mut failed,
                    router,
                    |r| r.close_transport(transport),
                )),
                Command::CreateProducer {
                    router,
                    params,
                    reply,
                } => reply(on_router(
                    &mut rooms,
                    &by_id,
                    &mut io,
                    &mut failed,
                    router,
                    |r| r.create_producer(params),
                )),
                Command::CloseProducer { router, producer } => log_failure(on_router(
                    &mut rooms,
                    &by_id,
                    &mut io,
                    &mut failed,
                    router,
                    |r| r.close_producer(producer),
                )),
                Command::CreateConsumer {
                    router,
                    params,
                    reply,
                } => reply(on_router(
                    &mut rooms,
                    &by_id,
                    &mut io,
                    &mut failed,
                    router,
                    |r| r.create_consumer(now, params),
                )),
                Command::CloseConsumer { router, consumer } => log_failure(on_router(
                    &mut rooms,
                    &by_id,
                    &mut io,
                    &mut failed,
                    router,
                    |r| r.close_consumer(consumer),
                )),
                Command::SetConsumerPaused {
                    router,
                    consumer,
                    paused,
                } => log_failure(on_router(
                    &mut rooms,
                    &by_id,
                    &mut io,
                    &mut failed,
                    router,
                    |r| r.set_consumer_paused(now, consumer, paused),
                )),
                Command::SetConsumerMaxWidth {
                    router,
                    consumer,
                    width,
                } => log_failure(on_router(
                    &mut rooms,
                    &by_id,
                    &mut io,
                    &mut failed,
                    router,
                    |r| r.set_consumer_max_width(consumer, width),
                )),
                Command::ConsumerAnswered {
                    router,
                    consumer,
                    answered,
                } => log_failure(on_router(
                    &mut rooms,
                    &by_id,
                    &mut io,
                    &mut failed,
                    router,
                    |r| r.consumer_answered(consumer, &answered),
                )),
            }
            reap(&mut rooms, &mut by_id, &mut io, &mut failed);
        }

        // 1b. Packets from other workers' Routers of spread rooms, a
        // bounded batch per ring.
        let now = Instant::now();
        touched.clear();
        for l in 0..io.links.len() {
            for _ in 0..PIPE_BATCH {
                let Ok(p) = io.links[l].rx.pop() else { break };
                let Some(&slot) = by_id.get(&p.to.router) else {
                    io.counters.count_drop(DropReason::StaleId);
                    continue;
                };
                let Some(room) = rooms.get_mut(slot).filter(|r| !r.failed) else {
                    continue;
                };
                let PipePacket { to, data } = p;
                match caught(|| room.router.handle_piped(now, to.transport, &data)) {
                    Ok(()) => {
                        room.router.recycle(data);
                        room.fed += 1;
                        if room.fed == 1 {
                            touched.push(slot);
                        }
                    }
                    Err(msg) => {
                        room.failed = true;
                        failed.push((slot, msg));
                    }
                }
            }
            more |= !io.links[l].rx.is_empty();
        }
        flush(&mut rooms, &mut io, &mut failed, &touched);
        reap(&mut rooms, &mut by_id, &mut io, &mut failed);

        // 2. Timers that are due (and ICE-TCP connections past the ICE
        // timeout unbound).
        if io.tcp_deadline().is_some_and(|t| t <= now)
            && let Some(tcp) = io.tcp.as_mut()
        {
            tcp.expire(now, io.ice_timeout);
            ice_tcp::reap(tcp, &mut rooms, &io.counters);
        }
        while let Some(&Reverse((at, slot))) = io.timers.peek() {
            if at > now {
                break;
            }
            io.timers.pop();
            let Some(room) = rooms.get_mut(slot) else {
                continue;
            };
            if room.scheduled != Some(at) || room.failed {
                continue; // superseded, or a slot reused since
            }
            room.scheduled = None;
            if let Err(msg) = caught(|| {
                room.router.handle_timeout(now);
                io.after(slot, room);
            }) {
                room.failed = true;
                failed.push((slot, msg));
            }
        }
        reap(&mut rooms, &mut by_id, &mut io, &mut failed);

        // 3. Wait for datagrams, a command, or the next deadline; 4. feed
        // each socket's batch to its router, then flush those routers.
        let timeout = if more {
            Some(Duration::ZERO)
        } else {
            let next = io.timers.peek().map(|Reverse((t, _))| *t);
            next.into_iter()
                .chain(io.tcp_deadline())
                .min()
                .map(|t| t.saturating_duration_since(Instant::now()))
        };
        io.wake_peers();
        touched.clear();
        let mut now: Option<Instant> = None;
        let polled = io.driver.poll(timeout, &mut |slot, from, arrived, data| {
            let Some(room) = rooms.get_mut(slot).filter(|r| !r.failed) else {
                return;
            };
            // When the kernel received it (transport-cc arrival times are
            // then the network's), else when this loop reads it.
            let now = arrived.unwrap_or_else(|| *now.get_or_insert_with(Instant::now));
            match caught(|| room.router.handle_datagram(now, from, data)) {
                Ok(()) => {
                    room.fed += 1;
                    if room.fed == 1 {
                        touched.push(slot);
                    }
                }
                Err(msg) => {
                    room.failed = true;
                    failed.push((slot, msg));
                }
            }
        });
        if let Err(e) = polled {
            tracing::error!(worker = index, error = %e, "waiting for datagrams failed");
            std::thread::sleep(Duration::from_millis(10));
        }
        if io.driver.take_watched()
            && let Some(mut tcp) = io.tcp.take()
        {
            let now = Instant::now();
            ice_tcp::poll(
                now,
                &mut tcp,
                &mut rooms,
                &mut failed,
                &mut touched,
                &io.counters,
            );
            io.tcp = Some(tcp);
        }
        flush(&mut rooms, &mut io, &mut failed, &touched);
        if let Some(tcp) = io.tcp.as_mut() {
            ice_tcp::reap(tcp, &mut rooms, &io.counters);
        }
        reap(&mut rooms, &mut by_id, &mut io, &mut failed);
        io.wake_peers();
    }

    let keys: Vec<usize> = rooms.iter().map(|(k, _)| k).collect();
    for key in keys {
        let room = rooms.remove(key);
        io.close(key, room);
    }
}
