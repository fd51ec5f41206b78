//! `sfu-sig`: the control plane of sfu — configuration, HTTP, the signaling
//! WebSocket, SDP, rooms, metrics and the embedded web client.
//!
//! [`run`] starts the data-plane workers, the rooms hub and the HTTP server,
//! and stops them all, cleanly, when its `shutdown` future completes.

// The server's code handles what it can fail on; tests (integration tests
// are crates of their own, unit tests are allowed by clippy.toml) expect.
#![warn(clippy::expect_used)]

pub mod auth;
pub mod cluster;
pub mod config;
pub mod conn;
pub mod directory;
pub mod error;
pub mod http;
pub mod hub;
pub mod ice_servers;
pub mod ingest;
pub mod metrics;
pub mod negotiation;
pub mod protocol;
pub mod ratelimit;
pub mod recording;
pub mod room;
pub mod sdp;
pub mod session;
pub mod whip;
pub mod worker_link;
pub mod ws;

use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sfu_core::io::SocketConfig;
use sfu_core::proto::dtls::Certificate;
use sfu_core::router::RouterConfig;
use sfu_core::transport::TransportTimeouts;
use sfu_core::worker::{Worker, WorkerConfig};
use tokio::sync::{mpsc, oneshot};

use crate::config::Config;
use crate::error::ServerError;
use crate::hub::{HUB_QUEUE, Hub, HubConfig, HubMsg, Registry, Spawner};
use crate::ratelimit::IpLimiter;
use crate::ws::AppState;

/// Capacity of the workers' shared event queue (events from the data plane
/// to the hub). When full, a worker drops the event and counts it
/// (`sfu_worker_events_dropped_total`) rather than block forwarding.
pub const EVENT_QUEUE: usize = 65_536;

/// The CPUs this process may run on (its affinity mask), in order.
pub use sfu_core::worker::affinity::allowed_cpus;

/// Runs the server on `listener` until `shutdown` completes: then tells every
/// participant, closes rooms, stops HTTP and joins the workers.
///
/// Errors: [`ServerError`] when the certificate, a worker, the event
/// thread, TLS or the listener cannot be set up.
pub async fn run(
    cfg: Config,
    listener: std::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let cert = Certificate::generate()?;
    let (ev_tx, ev_rx) = crossbeam_channel::bounded(EVENT_QUEUE);
    let cpus = allowed_cpus();
    // Decided once, so every worker (and every restart) uses the same loop.
    let backend = cfg.io_backend.resolve();
    let worker_config = {
        let cfg = cfg.clone();
        let cpus = cpus.clone();
        move |i: usize, generation: u32| WorkerConfig {
            cpu: cpus.get(i).copied(),
            socket: SocketConfig {
                bind_ip: cfg.rtc_listen_ip,
                port_min: cfg.rtc_port_min,
                port_max: cfg.rtc_port_max,
                recv_buffer: cfg.udp_buffer_bytes,
                send_buffer: cfg.udp_buffer_bytes,
                udp_gso: cfg.udp_gso,
            },
            router: RouterConfig {
                timeouts: TransportTimeouts {
                    consent: cfg.consent_timeout,
                    ice: cfg.ice_timeout,
                    dtls: cfg.dtls_timeout,
                },
                srtp: cfg.srtp,
                data: sfu_core::router::DataChannelConfig {
                    max_messages_per_sec: cfg.data_channels.max_messages_per_sec,
                    max_bytes_per_sec: cfg.data_channels.max_bytes_per_sec,
                    ..Default::default()
                },
                ..RouterConfig::default()
            },
            generation,
            backend,
            ice_tcp: cfg.ice_tcp.map(|p| {
                let port = if p == 0 { 0 } else { p + i as u16 };
                std::net::SocketAddr::new(cfg.rtc_listen_ip, port)
            }),
            ..WorkerConfig::default()
        }
    };
    let mut workers = Vec::new();
    for i in 0..cfg.cores {
        let w = Worker::spawn(i, worker_config(i, 0), cert.clone(), ev_tx.clone())
            .map_err(|source| ServerError::Worker { index: i, source })?;
        workers.push(w);
    }
    tracing::info!(workers = workers.len(), io_backend = backend.as_str(), requested = cfg.io_backend.as_str(), cpus = ?&cpus[..cfg.cores.min(cpus.len())], fingerprint = %cert.fingerprint_sdp(), "data plane started");
    let channels: Vec<_> = workers
        .iter()
        .map(|w| (w.sender(), w.counters().clone()))
        .collect();
    // The handles of the running workers, by index; a restart abandons the
    // failed one (it may never return) and keeps the new one here.
    let handles = Arc::new(Mutex::new(
        workers.into_iter().map(Some).collect::<Vec<_>>(),
    ));
    let spawner: Spawner = {
        let handles = handles.clone();
        let cert = cert.clone();
        Arc::new(move |i: usize, generation: u32| {
            let w = Worker::spawn(i, worker_config(i, generation), cert.clone(), ev_tx.clone())
                .map_err(|source| ServerError::Worker { index: i, source })?;
            let out = (w.sender(), w.counters().clone());
            let mut h = handles.lock().map_err(|_| ServerError::Poisoned)?;
            if let Some(old) = h.get_mut(i).and_then(Option::take) {
                old.abandon();
            }
            if let Some(slot) = h.get_mut(i) {
                *slot = Some(w);
            }
            Ok(out)
        })
    };

    let registry = Arc::new(Registry::default());
    let recordings = Arc::new(recording::Recordings::new(cfg.recording.clone()));
    let (hub_tx, hub_rx) = mpsc::channel(HUB_QUEUE);
    let hub = Hub::new(
        HubConfig {
            announced_ip: cfg.announced_ip,
            fingerprint: cert.fingerprint_sdp(),
            limits: cfg.limits,
            auth_secret: cfg.auth_secret.clone(),
            offer_timeout: cfg.offer_timeout,
            recordings: recordings.clone(),
            data_channels: cfg.data_channels,
            ice_servers: cfg.ice_servers.clone(),
        },
        channels,
        registry.clone(),
        Some(spawner),
        hub_tx.clone(),
    );
    // In a cluster: the heartbeat, and other nodes' messages into the hub.
    let http_port = listener.local_addr().map_err(ServerError::Listener)?.port();
    let cluster = match cfg.cluster.clone().map(|c| c.on_port(http_port)) {
        None => None,
        Some(cc) => {
            let reg = registry.clone();
            let load: cluster::LoadFn = Arc::new(move || {
                reg.workers
                    .lock()
                    .map(|w| w.iter().map(|c| c.consumers.get()).sum())
                    .unwrap_or(0)
            });
            let (inbox_tx, mut inbox_rx) = mpsc::channel(1024);
            let c = cluster::Cluster::start(cc, cfg.cores as u16, load, inbox_tx)
                .map_err(|e| ServerError::Directory(e.to_string()))?;
            tracing::info!(node = %c.node_id(), redis = %c.cfg.redis, "node of a cluster");
            let to_hub = hub_tx.clone();
            tokio::spawn(async move {
                while let Some(m) = inbox_rx.recv().await {
                    if to_hub.send(HubMsg::Node(m)).await.is_err() {
                        break;
                    }
                }
            });
            Some(c)
        }
    };
    let hub = match &cluster {
        Some(c) => hub.with_cluster(c.clone()),
        None => hub,
    };
    let hub_task = tokio::spawn(hub.run(hub_rx));
    let bridge_tx = hub_tx.clone();
    // Stops the bridge at shutdown: an abandoned (stalled) worker may hold
    // its event sender forever, so the event channel alone may never close.
    let (bridge_stop, bridge_stopped) = crossbeam_channel::bounded::<()>(1);
    let bridge = std::thread::Builder::new()
        .name("sfu-events".into())
        .spawn(move || {
            loop {
                crossbeam_channel::select! {
                    recv(ev_rx) -> ev => match ev {
                        Ok(ev) => {
                            if bridge_tx.blocking_send(HubMsg::Core(ev)).is_err() {
                                break;
                            }
                        }
                        Err(_) => break,
                    },
                    recv(bridge_stopped) -> _ => break,
                }
            }
        })
        .map_err(|source| ServerError::Thread {
            what: "event",
            source,
        })?;

    let mut state = AppState {
        hub: hub_tx.clone(),
        next_conn: Arc::new(AtomicU64::new(1)),
        registry,
        ws_idle_timeout: cfg.ws_idle_timeout,
        ws_write_timeout: cfg.ws_write_timeout,
        limiter: Arc::new(IpLimiter::new(cfg.rate_limits)),
        metrics_max_rooms: cfg.metrics_max_rooms,
        cluster: cluster.clone(),
        sessions: Arc::default(),
        ingest: Arc::default(),
        rtmp_port: None,
        auth: cfg.auth_secret.is_some(),
        auth_secret: cfg.auth_secret.clone().map(Arc::from),
        recordings,
        playbacks: Arc::default(),
    };
    if let Some(addr) = cfg.rtmp_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(ServerError::RtmpListener)?;
        let bound = listener.local_addr().unwrap_or(addr);
        state.rtmp_port = Some(bound.port());
        tracing::info!(addr = %bound, "RTMP ingest listening");
        let ctx = ingest::rtmp::RtmpContext {
            hub: hub_tx.clone(),
            next_conn: state.next_conn.clone(),
            auth_secret: cfg.auth_secret.clone(),
            metrics: state.ingest.clone(),
        };
        tokio::spawn(ingest::rtmp::serve(listener, ctx));
    }
    let app = http::router(state);
    listener
        .set_nonblocking(true)
        .map_err(ServerError::Listener)?;
    let addr = listener.local_addr().map_err(ServerError::Listener)?;
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let server = match &cfg.tls {
        Some((cert_path, key_path)) => {
            let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert_path, key_path)
                .await
                .map_err(ServerError::Tls)?;
            let handle = axum_server::Handle::new();
            let h = handle.clone();
            tokio::spawn(async move {
                let _ = stop_rx.await;
                h.graceful_shutdown(Some(Duration::from_secs(2)));
            });
            tracing::info!(%addr, "serving HTTPS");
            let srv = axum_server::from_tcp_rustls(listener, tls).map_err(ServerError::Listener)?;
            tokio::spawn(async move {
                if let Err(e) = srv
                    .handle(handle)
                    .serve(app.into_make_service_with_connect_info::<std::net::SocketAddr>())
                    .await
                {
                    tracing::error!(error = %e, "HTTPS server failed");
                }
            })
        }
        None => {
            let l = tokio::net::TcpListener::from_std(listener).map_err(ServerError::Listener)?;
            tracing::info!(%addr, "serving HTTP");
            tokio::spawn(async move {
                let r = axum::serve(
                    l,
                    app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
                )
                .with_graceful_shutdown(async move {
                    let _ = stop_rx.await;
                })
                .await;
                if let Err(e) = r {
                    tracing::error!(error = %e, "HTTP server failed");
                }
            })
        }
    };

    shutdown.await;
    tracing::info!("shutting down: telling participants, closing rooms");
    let (done_tx, done_rx) = oneshot::channel();
    if hub_tx
        .send(HubMsg::Shutdown { done: done_tx })
        .await
        .is_ok()
    {
        let _ = tokio::time::timeout(Duration::from_secs(8), done_rx).await;
    }
    if let Some(c) = &cluster {
        let _ = tokio::time::timeout(Duration::from_secs(2), c.leave()).await;
    }
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), hub_task).await;
    // Joining workers blocks: do it off the async threads.
    drop(hub_tx);
    drop(bridge_stop);
    let _ = tokio::task::spawn_blocking(move || {
        let current: Vec<Worker> = handles
            .lock()
            .map(|mut h| h.iter_mut().filter_map(Option::take).collect())
            .unwrap_or_default();
        for w in current {
            w.shutdown();
        }
        let _ = bridge.join();
    })
    .await;
    tracing::info!("stopped");
    Ok(())
}

/// The server running on a thread of its own (for tests, tools and embedding).
/// Dropping it stops the server and waits for it.
#[derive(Debug)]
pub struct Background {
    /// The HTTP address it listens on.
    pub addr: std::net::SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), ServerError>>>,
}

impl Background {
    /// Starts the server with `cfg` on `listener`.
    ///
    /// Errors: [`ServerError::Listener`], [`ServerError::Thread`]; what
    /// [`run`] returns comes from [`Self::stop`].
    pub fn start(cfg: Config, listener: std::net::TcpListener) -> Result<Self, ServerError> {
        let addr = listener.local_addr().map_err(ServerError::Listener)?;
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("sfu-server".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .map_err(ServerError::Runtime)?;
                rt.block_on(run(cfg, listener, async move {
                    let _ = stop_rx.await;
                }))
            })
            .map_err(|source| ServerError::Thread {
                what: "server",
                source,
            })?;
        Ok(Self {
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// Stops the server (participants told, rooms closed, workers joined) and
    /// returns how it ended.
    pub fn stop(mut self) -> Result<(), ServerError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), ServerError> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        match self.thread.take() {
            Some(t) => t.join().map_err(|_| ServerError::Panicked)?,
            None => Ok(()),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}
