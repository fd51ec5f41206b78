//! `--spawn-cluster N`: a redis-server (unless `--redis` names one) and N
//! `sfu` nodes on loopback, each with its own HTTP port and RTC port range,
//! pinned as `--spawn-server` pins one server, all registered in the
//! directory before the run starts.

use sfu_sig::directory::server::RedisServer;

use super::*;

/// RTC ports each node gets, from 43000 up.
const PORTS_PER_NODE: u16 = 300;

/// A spawned cluster; its nodes and its redis-server stop when dropped.
pub(super) struct SpawnedCluster {
    nodes: Vec<SpawnedServer>,
    // Stopped after the nodes (fields drop in order).
    _redis: Option<RedisServer>,
}

impl SpawnedCluster {
    /// The nodes' PIDs, first node first.
    pub(super) fn pids(&self) -> Vec<u32> {
        self.nodes.iter().map(|n| n.child.id()).collect()
    }
}

/// Starts the cluster and returns it with the nodes' signaling URLs,
/// comma-separated, once every node sees all of them in the directory.
///
/// Errors: redis-server or a node cannot start, or the nodes do not all
/// register within 20 s.
pub(super) fn spawn(args: &Args) -> Result<(SpawnedCluster, String), String> {
    let n = args.spawn_cluster;
    if n > 20 {
        return Err("--spawn-cluster takes at most 20 nodes".into());
    }
    let (redis, url) = match &args.redis {
        Some(u) => (None, u.clone()),
        None => {
            let r = RedisServer::start()?;
            let u = r.url();
            (Some(r), u)
        }
    };
    let bin = match &args.server_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()
            .map_err(|e| e.to_string())?
            .with_file_name("sfu"),
    };
    let cpu = (server_cores(args) == 1).then_some(args.server_cpu);
    let mut nodes = Vec::with_capacity(n);
    let mut urls = Vec::with_capacity(n);
    let mut ports = Vec::with_capacity(n);
    for k in 0..n {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let port = probe.local_addr().map_err(|e| e.to_string())?.port();
        drop(probe);
        let low = 43000 + k as u16 * PORTS_PER_NODE;
        let mut a = server_args_on(args, port, &format!("{low}-{}", low + PORTS_PER_NODE - 1));
        a.extend([
            "--redis".to_string(),
            url.clone(),
            "--node-id".to_string(),
            format!("load-node-{k}"),
        ]);
        nodes.push(spawn_pinned(&bin, &a, cpu)?);
        urls.push(format!("ws://127.0.0.1:{port}/ws"));
        ports.push(port);
    }
    let end = Instant::now() + Duration::from_secs(20);
    for port in ports {
        let ws = format!("ws://127.0.0.1:{port}/ws");
        loop {
            let seen = report::scrape_page_metric(&ws, "sfu_nodes ");
            if seen == Some(n as u64) {
                break;
            }
            if Instant::now() > end {
                return Err(format!(
                    "the node on port {port} sees {seen:?} nodes, not {n}, after 20 s"
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok((
        SpawnedCluster {
            nodes,
            _redis: redis,
        },
        urls.join(","),
    ))
}
