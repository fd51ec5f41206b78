//! `sfu-load`: scenario flags, spawning (and pinning) the server, running
//! the clients, and the summary.
//!
//! Joins that fail or time out are reported with the reason and counted;
//! the run stops by itself after `--ramp` + `--duration` and cleans up.

#![expect(
    unsafe_code,
    reason = "kill(2) of the spawned server, and pinning it between fork and exec"
)]

mod cluster;
pub mod floor;
pub mod media;
pub mod report;
pub mod signal;

use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use rand::Rng;
use rand::distr::Alphanumeric;
use sfu_core::proto::dtls::Certificate;

use self::media::{MediaClient, MediaConfig};
use self::report::{Scenario, Summary, process_cpu_seconds, process_rss_bytes, quantile};
use self::signal::ClientSpec;

/// Seconds after the ramp before measuring starts.
const SETTLE: Duration = Duration::from_secs(2);

/// Command-line flags of `sfu-load`.
#[derive(Debug, Parser, Clone)]
#[command(
    name = "sfu-load",
    about = "Load generator for sfu: real WebRTC clients over loopback"
)]
pub struct Args {
    /// Signaling URL of the server; several, comma-separated, for nodes
    /// of a cluster: publishers join on the first, subscribers round-robin
    /// over all of them from the second on.
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
    pub server: String,
    /// Number of rooms.
    #[arg(long, default_value_t = 1)]
    pub rooms: usize,
    /// Publishers per room (each also receives the other publishers); 0
    /// with --room, to watch a room others publish in.
    #[arg(long, default_value_t = 1)]
    pub publishers: usize,
    /// Receive-only subscribers per room.
    #[arg(long, default_value_t = 10)]
    pub subscribers: usize,
    /// The role the subscribers join as: `viewer` (counted, not listed;
    /// their joins update no one) or `participant` (listed, as a browser
    /// joins).
    #[arg(long, default_value = "viewer", value_parser = ["viewer", "participant"])]
    pub role: String,
    /// Join this room (for example one that browsers are in) instead of
    /// rooms named for the run; only with --rooms 1.
    #[arg(long)]
    pub room: Option<String>,
    /// Video bitrate per publisher, kbit/s.
    #[arg(long, default_value_t = 1000)]
    pub video_kbps: u32,
    /// Plain RTP video packet size, bytes.
    #[arg(long, default_value_t = 1200)]
    pub packet_size: usize,
    /// Also send Opus-sized audio (50 pkt/s) from each publisher.
    #[arg(long)]
    pub audio: bool,
    /// Data-channel chat messages per second each publisher sends (it
    /// joins with data channels and opens a `chat` channel; every other
    /// publisher of the room receives each message); 0: none. With
    /// --video-kbps 0 the publishers send no video: a chat-only room.
    #[arg(long, default_value_t = 0.0)]
    pub datachannel_rate: f64,
    /// Seconds to run after the ramp (the first 2 s are not measured).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds over which clients join.
    #[arg(long, default_value_t = 2.0)]
    pub ramp: f64,
    /// PID of the server, for its CPU time and RSS.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Start the server (pinned to --server-cpu) on a free loopback port.
    #[arg(long)]
    pub spawn_server: bool,
    /// Start a cluster of this many nodes on loopback instead (each its own
    /// HTTP port and RTC ports, pinned as --spawn-server pins one), sharing
    /// the directory at --redis, or at a redis-server started for the run;
    /// publishers join the first node, subscribers round-robin over them.
    /// Server CPU and RSS are the nodes' summed.
    #[arg(long, default_value_t = 0)]
    pub spawn_cluster: usize,
    /// The directory of --spawn-cluster (`redis://host:port`) [default: a
    /// redis-server started on a free loopback port].
    #[arg(long)]
    pub redis: Option<String>,
    /// Internal: the PIDs of a spawned cluster's other nodes.
    #[arg(skip)]
    pub more_server_pids: Vec<u32>,
    /// Also (or, without a server, only) run the scenario through a
    /// reference relay (pinned to --server-cpu) that sends every datagram
    /// on with recvmmsg/sendmmsg and nothing else: the floor this machine
    /// sets, reported as floor_cpu_us_per_forwarded_packet.
    #[arg(long)]
    pub spawn_floor: bool,
    /// Internal: run as the reference relay on this loopback port.
    #[arg(long, hide = true)]
    pub floor_relay: Option<u16>,
    /// Processes the clients are spread over [default: as many as the
    /// open-file limit needs: each client holds a UDP socket and a
    /// WebSocket]. The first process measures and reports.
    #[arg(long)]
    pub processes: Option<usize>,
    /// Internal: this process runs the clients whose index is this modulo
    /// --processes, from the shared start in --shard-start-unix-ms, and
    /// writes their figures to --shard-out.
    #[arg(long, hide = true)]
    pub shard: Option<usize>,
    /// Internal: the shared start, ms since the Unix epoch.
    #[arg(long, hide = true)]
    pub shard_start_unix_ms: Option<u64>,
    /// Internal: the room-name tag shared by the shards.
    #[arg(long, hide = true)]
    pub shard_tag: Option<String>,
    /// Internal: where a shard writes its figures.
    #[arg(long, hide = true)]
    pub shard_out: Option<PathBuf>,
    /// The sfu-load binary the other processes run [default: this one].
    #[arg(long, hide = true)]
    pub load_bin: Option<PathBuf>,
    /// The `sfu` binary for --spawn-server [default: next to sfu-load].
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
    /// CPU the spawned server is pinned to (its workers pin themselves,
    /// one per CPU from 0, with --server-cores above 1).
    #[arg(long, default_value_t = 0)]
    pub server_cpu: usize,
    /// Workers of the spawned server (`sfu --cores`); 0: one per CPU of
    /// this machine, as `sfu` runs by default. With more than one, a room
    /// spreads over them once one holds `--worker-consumer-budget`
    /// consumers, and the server is not pinned as a process (each worker
    /// pins itself to its CPU).
    #[arg(long, default_value_t = 0)]
    pub server_cores: usize,
    /// CPU this generator pins itself to (-1: no pinning) [default: 1, or
    /// none when a spawned server has a worker on every CPU].
    #[arg(long, allow_negative_numbers = true)]
    pub cpu: Option<i64>,
    /// Decrypt and verify one in this many received packets.
    #[arg(long, default_value_t = 10)]
    pub verify_every: u32,
    /// Write the JSON summary to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// [`run`] on a thread of its own, given at most `limit` (a hung run is
/// an error, not a hung caller: what tests use).
///
/// Errors: the run's own, or that it did not finish within `limit`.
pub fn run_within(args: Args, limit: Duration) -> Result<Summary, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(run(args));
    });
    rx.recv_timeout(limit)
        .map_err(|_| format!("sfu-load did not finish within {} s", limit.as_secs()))?
}

impl Args {
    /// The command line's defaults, against the server at `server` (a
    /// signaling URL): what `sfu-load --server URL` runs. Tests and
    /// embedders set the rest with struct update syntax.
    pub fn against(server: &str) -> Self {
        Self::parse_from(["sfu-load", "--server", server])
    }
}

/// A server started with `--spawn-server`; killed (SIGTERM, then SIGKILL) on drop.
struct SpawnedServer {
    child: Child,
}

impl Drop for SpawnedServer {
    fn drop(&mut self) {
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The workers a spawned server gets: `--server-cores`, or one per CPU.
fn server_cores(args: &Args) -> usize {
    match args.server_cores {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

/// The CPU the generator pins itself to, if any: `--cpu`, else 1 unless
/// a spawned server has a worker on every CPU.
fn generator_cpu(args: &Args) -> Option<usize> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    match args.cpu {
        Some(c) => usize::try_from(c).ok(),
        None if args.spawn_server && server_cores(args) >= cpus => None,
        None => Some(1),
    }
}

/// The flags `--spawn-server` starts `sfu` with for the scenario in `args`
/// on HTTP port `port`: loopback addresses, one worker, the per-address
/// signaling limits lifted (every client comes from 127.0.0.1), and room
/// and track limits no lower than the scenario needs (a 1→200 room has 201
/// participants; the server's default is 100).
pub fn server_args(args: &Args, port: u16) -> Vec<String> {
    server_args_on(args, port, "43000-43999")
}

/// [`server_args`] with the RTC port range `rtc` (`MIN-MAX`).
fn server_args_on(args: &Args, port: u16, rtc: &str) -> Vec<String> {
    let limits = sfu_sig::config::Limits::default();
    let viewers = if args.role == "viewer" {
        args.subscribers
    } else {
        0
    };
    let per_room = (args.publishers + args.subscribers - viewers).max(limits.participants_per_room);
    let viewers_per_room = viewers.max(limits.viewers_per_room);
    let rooms = args.rooms.max(limits.rooms_per_worker);
    // Each participant receives every publisher's audio and video.
    let tracks = (2 * args.publishers).max(limits.consumers_per_transport);
    [
        "--http-listen",
        &format!("127.0.0.1:{port}"),
        "--announced-ip",
        "127.0.0.1",
        "--rtc-listen-ip",
        "127.0.0.1",
        "--rtc-ports",
        rtc,
        "--cores",
        &server_cores(args).to_string(),
        "--log",
        "warn",
        "--max-messages-per-second-per-ip",
        "1000000",
        "--max-joins-per-minute-per-ip",
        "1000000",
        "--max-participants-per-room",
        &per_room.to_string(),
        "--max-viewers-per-room",
        &viewers_per_room.to_string(),
        "--max-rooms-per-worker",
        &rooms.to_string(),
        "--max-consumers-per-transport",
        &tracks.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Starts `bin` with `args`, pinned to `cpu` (`None`: not pinned); killed
/// when dropped.
fn spawn_pinned(
    bin: &std::path::Path,
    args: &[String],
    cpu: Option<usize>,
) -> Result<SpawnedServer, String> {
    let mut cmd = Command::new(bin);
    cmd.args(args).stdin(Stdio::null());
    if let Some(cpu) = cpu {
        // SAFETY: only async-signal-safe work (sched_setaffinity) between fork and exec.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(move || sfu_core::worker::affinity::pin(0, cpu));
        }
    }
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    Ok(SpawnedServer { child })
}

fn spawn_server(args: &Args) -> Result<(SpawnedServer, String), String> {
    let bin = match &args.server_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()
            .map_err(|e| e.to_string())?
            .with_file_name("sfu"),
    };
    let probe = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = probe.local_addr().map_err(|e| e.to_string())?.port();
    drop(probe);
    // More than one worker: each pins itself to its own CPU, so the
    // process may not be confined to one.
    let cpu = (server_cores(args) == 1).then_some(args.server_cpu);
    let server = spawn_pinned(&bin, &server_args(args, port), cpu)?;
    let end = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > end {
            return Err("spawned server did not listen within 15 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((server, format!("ws://127.0.0.1:{port}/ws")))
}

fn scenario(args: &Args) -> Scenario {
    Scenario {
        server: args.server.clone(),
        rooms: args.rooms,
        publishers: args.publishers,
        subscribers: args.subscribers,
        video_kbps: args.video_kbps,
        packet_size: args.packet_size,
        audio: args.audio,
        datachannel_rate: args.datachannel_rate,
        duration: args.duration,
        ramp: args.ramp,
        verify_every: args.verify_every,
        role: args.role.clone(),
    }
}

/// Runs the reference relay (`--floor-relay PORT`, started by
/// `--spawn-floor`) for at most an hour.
///
/// Errors: its socket cannot be bound.
pub fn run_floor_relay(port: u16) -> Result<(), String> {
    floor::run_relay(port, Duration::from_secs(3600))
}

/// Starts the relay pinned to `--server-cpu` and drives the scenario
/// through it.
fn run_floor(args: &Args) -> Result<floor::FloorFigures, String> {
    let bin = std::env::current_exe().map_err(|e| e.to_string())?;
    let probe = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = probe.local_addr().map_err(|e| e.to_string())?.port();
    drop(probe);
    let relay = spawn_pinned(
        &bin,
        &["--floor-relay".to_string(), port.to_string()],
        Some(args.server_cpu),
    )?;
    // The relay binds at once; give it a moment before the joins.
    std::thread::sleep(Duration::from_millis(300));
    let window = Duration::from_secs_f64((args.duration - SETTLE.as_secs_f64()).max(1.0));
    let figures = floor::run_clients(
        args,
        window,
        relay.child.id(),
        ([127, 0, 0, 1], port).into(),
    );
    drop(relay);
    figures
}

/// What a shard process measured, for its parent.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct ShardFigures {
    /// Its clients' figures, by global index.
    clients: Vec<(usize, media::ClientStats)>,
    /// Its answered joins: (seconds after the shared start, ms to answer).
    joins: Vec<(f64, f64)>,
    /// The largest signaling message its clients received, bytes.
    largest_message: usize,
}

/// A shard process and the file it reports to.
struct Shard {
    process: SpawnedServer,
    out: PathBuf,
}

impl Shard {
    /// Its figures, once it has exited (killed after `deadline`).
    fn wait(mut self, deadline: Instant) -> Result<ShardFigures, String> {
        loop {
            match self.process.child.try_wait() {
                Ok(Some(status)) if status.success() => break,
                Ok(Some(status)) => return Err(format!("exited with {status}")),
                Ok(None) if Instant::now() > deadline => return Err("did not finish".into()),
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                Err(e) => return Err(e.to_string()),
            }
        }
        let text = std::fs::read_to_string(&self.out).map_err(|e| e.to_string())?;
        let _ = std::fs::remove_file(&self.out);
        serde_json::from_str(&text).map_err(|e| e.to_string())
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Starts this binary as shard `k` of `n` of the scenario in `args`, with
/// the shared start and room tag.
fn spawn_shard(
    args: &Args,
    k: usize,
    n: usize,
    start_unix_ms: u64,
    tag: &str,
) -> Result<Shard, String> {
    let bin = match &args.load_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe().map_err(|e| e.to_string())?,
    };
    let out = std::env::temp_dir().join(format!("sfu-load-{}-shard-{k}.json", std::process::id()));
    let mut a: Vec<String> = [
        ("--server", args.server.clone()),
        ("--rooms", args.rooms.to_string()),
        ("--publishers", args.publishers.to_string()),
        ("--subscribers", args.subscribers.to_string()),
        ("--role", args.role.clone()),
        ("--video-kbps", args.video_kbps.to_string()),
        ("--datachannel-rate", args.datachannel_rate.to_string()),
        ("--packet-size", args.packet_size.to_string()),
        ("--duration", args.duration.to_string()),
        ("--ramp", args.ramp.to_string()),
        (
            "--cpu",
            generator_cpu(args).map_or(-1, |c| c as i64).to_string(),
        ),
        ("--verify-every", args.verify_every.to_string()),
        ("--processes", n.to_string()),
        ("--shard", k.to_string()),
        ("--shard-start-unix-ms", start_unix_ms.to_string()),
        ("--shard-tag", tag.to_string()),
        ("--shard-out", out.display().to_string()),
    ]
    .into_iter()
    .flat_map(|(f, v)| [f.to_string(), v])
    .collect();
    if args.audio {
        a.push("--audio".into());
    }
    if let Some(room) = &args.room {
        a.extend(["--room".into(), room.clone()]);
    }
    let child = Command::new(&bin)
        .args(&a)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start load process {k}: {e}"))?;
    Ok(Shard {
        process: SpawnedServer { child },
        out,
    })
}

/// The PIDs of the server, or of every node of a spawned cluster.
fn server_pids(args: &Args) -> Vec<u32> {
    args.server_pid
        .into_iter()
        .chain(args.more_server_pids.iter().copied())
        .collect()
}

/// CPU time of the server (every node of a cluster, summed), seconds.
fn servers_cpu_seconds(args: &Args) -> Option<f64> {
    let pids = server_pids(args);
    if pids.is_empty() {
        return None;
    }
    pids.into_iter().map(process_cpu_seconds).sum()
}

/// The first of the comma-separated signaling URLs in `server`.
fn first_url(server: &str) -> &str {
    server.split(',').next().unwrap_or(server).trim()
}

/// Runs a scenario and returns its summary.
///
/// Errors: a message when the scenario is invalid or setup fails.
pub fn run(mut args: Args) -> Result<Summary, String> {
    if args.rooms == 0 || (args.publishers == 0 && args.room.is_none()) {
        return Err(
            "--rooms and --publishers must be at least 1 (--publishers 0 only with --room: \
             viewers of a room others publish in)"
                .into(),
        );
    }
    if !(100..=1400).contains(&args.packet_size) {
        return Err("--packet-size must be 100..=1400 bytes".into());
    }
    if args.duration < 3.0 || args.duration > 3600.0 || args.ramp < 0.0 || args.ramp > 600.0 {
        return Err("--duration must be 3..=3600 s and --ramp 0..=600 s".into());
    }
    if args.room.is_some() && args.rooms != 1 {
        return Err("--room joins one room: use it with --rooms 1".into());
    }
    // One UDP socket and one WebSocket per client, and a margin; more
    // clients than one process may open spread over several.
    let total = args.rooms * (args.publishers + args.subscribers);
    let limit = sfu_core::io::raise_fd_limit(2 * total as u64 + 256).map_err(|e| e.to_string())?;
    let per_process = (limit.saturating_sub(256) / 2).max(1) as usize;
    let processes = args
        .processes
        .unwrap_or_else(|| total.div_ceil(per_process))
        .max(1);
    if total.div_ceil(processes) > per_process {
        return Err(format!(
            "{total} clients in {processes} process(es) need {} open files each (a UDP socket \
             and a WebSocket per client), but the limit is {limit}: more --processes, or \
             ulimit -Hn",
            2 * total.div_ceil(processes) + 256
        ));
    }
    let shard = args.shard.unwrap_or(0);
    let cluster = if args.spawn_cluster > 0 && args.shard.is_none() {
        let (c, urls) = cluster::spawn(&args)?;
        args.server = urls;
        let pids = c.pids();
        args.server_pid = pids.first().copied();
        args.more_server_pids = pids.into_iter().skip(1).collect();
        Some(c)
    } else {
        None
    };
    let spawned = if args.spawn_server && cluster.is_none() {
        let (s, url) = spawn_server(&args)?;
        args.server = url;
        args.server_pid = Some(s.child.id());
        Some(s)
    } else {
        None
    };
    if let Some(cpu) = generator_cpu(&args) {
        sfu_core::worker::affinity::pin(0, cpu)
            .map_err(|e| format!("cannot pin to CPU {cpu}: {e}"))?;
    }
    // The floor first, with the machine otherwise idle.
    let floor = if args.spawn_floor {
        Some(run_floor(&args)?)
    } else {
        None
    };
    let floor_us = floor.and_then(|f| {
        f.cpu_seconds
            .filter(|_| f.forwarded > 0)
            .map(|c| c * 1e6 / f.forwarded as f64)
    });
    let floor_fields = |s: Summary| Summary {
        floor_forwarded_packets: floor.map(|f| f.forwarded),
        floor_loss_ratio: floor.map(|f| {
            if f.expected == 0 {
                0.0
            } else {
                (1.0 - f.forwarded as f64 / f.expected as f64).max(0.0)
            }
        }),
        floor_cpu_us_per_forwarded_packet: floor_us,
        server_to_floor_cpu_ratio: s
            .server_cpu_us_per_forwarded_packet
            .zip(floor_us)
            .map(|(a, b)| a / b),
        ..s
    };
    if args.spawn_floor && spawned.is_none() && args.server_pid.is_none() {
        // The floor alone, instead of a server.
        return Ok(floor_fields(Summary {
            scenario: scenario(&args),
            ..Summary::default()
        }));
    }
    let cert = Certificate::generate().map_err(|e| e.to_string())?;
    let per_room = args.publishers + args.subscribers;
    let mut specs = Vec::with_capacity(total);
    let mut clients = Vec::with_capacity(total);
    let tag: String = args.shard_tag.clone().unwrap_or_else(|| {
        rand::rng()
            .sample_iter(&Alphanumeric)
            .take(6)
            .map(char::from)
            .collect()
    });
    // The shared start: a shard's from its parent; the parent's far enough
    // ahead for its shards to start and open their sockets.
    let start_unix_ms = args.shard_start_unix_ms.unwrap_or_else(|| {
        let lead = if processes > 1 { 2000 } else { 0 };
        unix_ms() + lead
    });
    let mut shards = Vec::new();
    if args.shard.is_none() && processes > 1 {
        for k in 1..processes {
            shards.push(spawn_shard(&args, k, processes, start_unix_ms, &tag)?);
        }
    }
    for idx in (0..total).filter(|i| i % processes == shard) {
        let (room, k) = (idx / per_room, idx % per_room);
        let publisher = k < args.publishers;
        let sock = UdpSocket::bind("127.0.0.1:0")
            .map_err(|e| format!("cannot bind a client socket: {e}"))?;
        sock.set_nonblocking(true).map_err(|e| e.to_string())?;
        let local = sock.local_addr().map_err(|e| e.to_string())?;
        let (video_ssrc, audio_ssrc) = (rand::random::<u32>() | 1, rand::random::<u32>() | 1);
        specs.push(ClientSpec {
            idx,
            name: if publisher {
                format!("pub-{idx}")
            } else {
                format!("sub-{idx}")
            },
            room: args
                .room
                .clone()
                .unwrap_or_else(|| format!("load-{tag}-{room}")),
            publisher,
            viewer: !publisher && args.role == "viewer",
            audio: args.audio,
            ufrag: format!("l{idx:07}"),
            pwd: format!("load-password-{idx:012}"),
            fingerprint: cert.fingerprint_sdp(),
            local,
            video_ssrc,
            audio_ssrc,
            data_channels: publisher && args.datachannel_rate > 0.0,
        });
        clients.push(MediaClient {
            idx,
            room,
            publisher,
            video_ssrc,
            audio_ssrc,
            sock,
            data_channels: publisher && args.datachannel_rate > 0.0,
        });
    }

    let start = Instant::now() + Duration::from_millis(start_unix_ms.saturating_sub(unix_ms()));
    let ramp = Duration::from_secs_f64(args.ramp);
    let window_start = start + ramp + SETTLE;
    let end = start + ramp + Duration::from_secs_f64(args.duration);
    let (ev_tx, ev_rx) = crossbeam_channel::unbounded();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let urls: Vec<String> = args
        .server
        .split(',')
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty())
        .collect();
    if urls.is_empty() {
        return Err("--server needs at least one URL".into());
    }
    let url_for = {
        let publishers = args.publishers;
        move |idx: usize| -> String {
            // Publishers on the first node; subscribers over all of them,
            // from the second on (a lone subscriber crosses a relay).
            match (idx % per_room).checked_sub(publishers) {
                None => urls[0].clone(),
                Some(k) => urls[(k + 1) % urls.len()].clone(),
            }
        }
    };
    let sig_stats = std::sync::Arc::new(signal::SignalStats::default());
    let stats = sig_stats.clone();
    let signaling = std::thread::Builder::new()
        .name("sfu-load-signaling".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    for s in &specs {
                        let _ = ev_tx.send(signal::SignalEvent::Failed {
                            idx: s.idx,
                            reason: e.to_string(),
                        });
                    }
                    return;
                }
            };
            rt.block_on(async move {
                // Client `idx` of all `total` joins at its share of the
                // ramp, whichever process runs it.
                let n = total.max(1) as f64;
                let mut tasks = Vec::new();
                for spec in specs {
                    let at =
                        tokio::time::Instant::from_std(start) + ramp.mul_f64(spec.idx as f64 / n);
                    tokio::time::sleep_until(at).await;
                    tasks.push(tokio::spawn(signal::run_client(
                        url_for(spec.idx),
                        spec,
                        ev_tx.clone(),
                        stop_rx.clone(),
                        stats.clone(),
                    )));
                }
                for t in tasks {
                    let _ = tokio::time::timeout(Duration::from_secs(700), t).await;
                }
            });
        })
        .map_err(|e| e.to_string())?;

    let mcfg = MediaConfig {
        epoch: start,
        window_start,
        end,
        video_kbps: args.video_kbps,
        packet_size: args.packet_size,
        audio: args.audio,
        verify_every: args.verify_every.max(1),
        server_pids: server_pids(&args),
        progress: args.shard.is_none(),
        datachannel_rate: args.datachannel_rate,
    };
    let mut cpu_at_window = None;
    let mut workers = None;
    // Relay packets out on every node, at the window's start and near its end.
    let mut relayed = (None, None);
    let media = std::thread::scope(|scope| {
        let h = scope.spawn(|| media::run(clients, ev_rx, &cert, &mcfg));
        if args.server_pid.is_some() || args.shard.is_none() {
            std::thread::sleep(window_start.saturating_duration_since(Instant::now()));
            cpu_at_window = servers_cpu_seconds(&args);
            relayed.0 = report::scrape_relayed(&args.server);
        }
        // Where the consumers are, near the window's end (every client
        // still in).
        if args.shard.is_none() {
            let at = end.checked_sub(Duration::from_secs(1)).unwrap_or(end);
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
            workers = report::scrape_workers(first_url(&args.server));
            relayed.1 = report::scrape_relayed(&args.server);
        }
        h.join()
    })
    .map_err(|_| "the media thread panicked".to_string())?;
    let cpu_at_end = servers_cpu_seconds(&args);
    let rss = server_pids(&args)
        .into_iter()
        .map(process_rss_bytes)
        .sum::<Option<u64>>()
        .filter(|_| args.server_pid.is_some());
    let _ = stop_tx.send(true);
    let _ = signaling.join();
    let own: Vec<usize> = (0..total).filter(|i| i % processes == shard).collect();
    let mut joins: Vec<(f64, f64)> = sig_stats
        .joins
        .lock()
        .map(|j| {
            j.iter()
                .map(|(t, ms)| (t.saturating_duration_since(start).as_secs_f64(), *ms))
                .collect()
        })
        .unwrap_or_default();
    let mut largest = sig_stats
        .largest_message
        .load(std::sync::atomic::Ordering::Relaxed);
    if let Some(out) = &args.shard_out {
        // A shard reports to its parent and stops here.
        let figures = ShardFigures {
            clients: own.into_iter().zip(media).collect(),
            joins,
            largest_message: largest,
        };
        let text = serde_json::to_string(&figures).map_err(|e| e.to_string())?;
        std::fs::write(out, text).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
        return Ok(Summary::default());
    }
    // Every client's figures by index: ours, then the shards'.
    let mut all: Vec<media::ClientStats> = vec![media::ClientStats::default(); total];
    for (idx, s) in own.into_iter().zip(media) {
        all[idx] = s;
    }
    for (k, shard) in shards.into_iter().enumerate() {
        match shard.wait(end + Duration::from_secs(60)) {
            Ok(f) => {
                for (idx, s) in f.clients {
                    if let Some(slot) = all.get_mut(idx) {
                        *slot = s;
                    }
                }
                joins.extend(f.joins);
                largest = largest.max(f.largest_message);
            }
            Err(e) => {
                for (idx, slot) in all.iter_mut().enumerate() {
                    if idx % processes == k + 1 {
                        slot.failure = Some(format!("load process {} failed: {e}", k + 1));
                    }
                }
            }
        }
    }
    let media = all;
    drop(spawned);
    drop(cluster);

    // Expected: every packet a publisher sent in the window, once per other client of its room.
    let mut expected = 0u64;
    for (i, s) in media.iter().enumerate() {
        let room = i / per_room;
        if i % per_room < args.publishers {
            let receivers = (room * per_room..(room + 1) * per_room)
                .filter(|&j| j != i && media[j].connected)
                .count();
            expected += s.sent_window * receivers as u64;
        }
    }
    let forwarded: u64 = media.iter().map(|s| s.recv_window).sum();
    // Chat: each message a publisher sent, once per other publisher of its room.
    let mut dc_expected = 0u64;
    for (i, s) in media.iter().enumerate() {
        let room = i / per_room;
        if i % per_room < args.publishers {
            let receivers = (room * per_room..room * per_room + args.publishers)
                .filter(|&j| j != i && media[j].connected)
                .count();
            dc_expected += s.dc_sent_window * receivers as u64;
        }
    }
    let dc_received: u64 = media.iter().map(|s| s.dc_recv_window).sum();
    let mut lat: Vec<f64> = media
        .iter()
        .flat_map(|s| s.latencies_ms.iter().copied())
        .collect();
    let window = end.saturating_duration_since(window_start).as_secs_f64();
    let mut join_ms: Vec<f64> = joins.iter().map(|(_, ms)| *ms).collect();
    let first = joins.iter().map(|(t, _)| *t).fold(f64::INFINITY, f64::min);
    let last = joins.iter().map(|(t, _)| *t).fold(0.0, f64::max);
    let join_span = if joins.is_empty() { 0.0 } else { last - first };
    let cpu = match (cpu_at_window, cpu_at_end) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let summary = Summary {
        scenario: scenario(&args),
        joined: media.iter().filter(|s| s.connected).count(),
        join_failures: media
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.failure.as_ref().map(|f| format!("client {i}: {f}")))
            .collect(),
        window_seconds: window,
        forwarded_packets: forwarded,
        expected_packets: expected,
        loss_ratio: if expected == 0 {
            0.0
        } else {
            (1.0 - forwarded as f64 / expected as f64).max(0.0)
        },
        forwarded_packets_per_second: forwarded as f64 / window.max(1e-9),
        verified_packets: media.iter().map(|s| s.verified).sum(),
        verify_failures: media.iter().map(|s| s.verify_failures).sum(),
        reordered_packets: media.iter().map(|s| s.reordered).sum(),
        latency_p50_ms: quantile(&mut lat, 0.5),
        latency_p99_ms: quantile(&mut lat, 0.99),
        server_cpu_seconds: cpu,
        server_cpu_us_per_forwarded_packet: cpu
            .filter(|_| forwarded > 0)
            .map(|c| c * 1e6 / forwarded as f64),
        server_rss_bytes: rss,
        keyframe_requests: media.iter().map(|s| s.plis).sum(),
        join_latency_p50_ms: quantile(&mut join_ms, 0.5),
        join_latency_p99_ms: quantile(&mut join_ms, 0.99),
        join_rate_per_second: if join_span > 0.0 {
            (joins.len() - 1) as f64 / join_span
        } else {
            0.0
        },
        largest_signaling_message_bytes: largest,
        worker_consumers: workers.as_ref().map(|w| w.consumers.clone()),
        piped_packets: workers.as_ref().map(|w| w.piped_out),
        relayed_packets: match relayed {
            (Some(a), Some(b)) if args.server.contains(',') => Some(b.saturating_sub(a)),
            _ => None,
        },
        datachannel_messages_sent: media.iter().map(|s| s.dc_sent_window).sum(),
        datachannel_messages_received: dc_received,
        datachannel_messages_expected: dc_expected,
        server_cpu_percent: cpu.map(|c| c * 100.0 / window.max(1e-9)),
        ..Summary::default()
    };
    let summary = floor_fields(summary);
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(summary)
}
