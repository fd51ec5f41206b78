//! A local `redis-server` (Debian's package) on a free loopback port, for
//! the directory's tests and the load generator's `--spawn-cluster`: no
//! persistence, stopped (SIGKILL) when dropped.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `redis-server` child process.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
}

impl RedisServer {
    /// Starts `redis-server` on a free port of 127.0.0.1 and waits (at most
    /// 10 s) until it accepts connections.
    ///
    /// Errors: a message when `redis-server` is not installed (install
    /// Debian's `redis-server`), does not start, or does not listen in time.
    pub fn start() -> Result<Self, String> {
        // A port found free may be taken by another server before ours
        // binds it: then ours exits, or the one answering is not ours.
        let mut last = String::new();
        for _ in 0..5 {
            let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .and_then(|l| l.local_addr())
                .map_err(|e| format!("no free port: {e}"))?
                .port();
            let mut s = Self { child: None, port };
            match s.spawn() {
                Ok(()) => return Ok(s),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Whether the server answering on our port is our child (its INFO's
    /// `process_id`).
    fn answers_as_ours(&self) -> bool {
        use std::io::{Read, Write};
        let Some(pid) = self.child.as_ref().map(Child::id) else {
            return false;
        };
        let Ok(mut s) = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        if s.write_all(b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")
            .is_err()
        {
            return false;
        }
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got);
            if let Some(line) = text.lines().find(|l| l.starts_with("process_id:")) {
                return line.trim_start_matches("process_id:").trim() == pid.to_string();
            }
        }
        false
    }

    fn spawn(&mut self) -> Result<(), String> {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot run redis-server (apt-get install redis-server): {e}"))?;
        self.child = Some(child);
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if let Some(c) = &mut self.child
                && let Ok(Some(st)) = c.try_wait()
            {
                self.child = None;
                return Err(format!("redis-server exited: {st}"));
            }
            if TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).is_ok() {
                if self.answers_as_ours() {
                    return Ok(());
                }
                self.stop();
                return Err(format!("port {} is another server's", self.port));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!(
            "redis-server did not listen on {} in 10 s",
            self.port
        ))
    }

    /// Its URL (`redis://127.0.0.1:port`).
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills it (as a crash would): the directory becomes unavailable.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port, empty.
    ///
    /// Errors: as [`RedisServer::start`].
    pub fn restart(&mut self) -> Result<(), String> {
        self.stop();
        self.spawn()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
