//! The floor: what forwarding the scenario's packets costs this machine and
//! kernel with no SFU logic at all. A reference relay (its own process,
//! pinned like the server) takes each publisher's datagrams with `recvmmsg`
//! and sends the same bytes to every other member of its room with
//! `sendmmsg`: no ICE, DTLS, SRTP or RTP. The clients send and count plain
//! datagrams of the scenario's sizes and rates, and the relay's CPU time per
//! forwarded packet is measured as the server's is.
//!
//! A client joins the relay's room `r` by sending the 8 bytes
//! `b"JOIN" + r` (big-endian u32); after that, everything it sends goes to
//! the room's other members.

#![expect(
    unsafe_code,
    reason = "the relay's own UDP IO: recvmmsg, sendmmsg and poll through libc"
)]

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use super::media::{Batch, to_socket_addr};

/// Datagrams sent per `sendmmsg` call.
const SEND_BATCH: usize = 64;
/// The relay exits after this long without a datagram.
const IDLE_EXIT: Duration = Duration::from_secs(30);

/// Runs the relay on `127.0.0.1:port` until it has been idle for 30 s or
/// `lifetime` has passed.
///
/// Errors: the socket cannot be bound.
pub fn run_relay(port: u16, lifetime: Duration) -> Result<(), String> {
    let sock = UdpSocket::bind(("127.0.0.1", port)).map_err(|e| format!("relay bind: {e}"))?;
    let fd = sock.as_raw_fd();
    set_buffers(fd, 4 << 20);
    let mut batch = Batch::new();
    let mut room_of: HashMap<SocketAddr, u32> = HashMap::new();
    let mut rooms: HashMap<u32, Vec<SocketAddr>> = HashMap::new();
    let mut sends: Vec<(SocketAddr, usize, usize)> = Vec::with_capacity(SEND_BATCH);
    let mut out = SendBatch::new();
    let started = Instant::now();
    let mut last = Instant::now();
    while started.elapsed() < lifetime && last.elapsed() < IDLE_EXIT {
        wait_readable(&[fd], 100);
        let n = batch.recv(fd);
        if n == 0 {
            continue;
        }
        last = Instant::now();
        for i in 0..n {
            let (len, from) = (batch.datagram_len(i), to_socket_addr(&batch.addrs[i]));
            let Some(from) = from else { continue };
            let data = &batch.bufs[i][..len];
            if len == 8 && &data[..4] == b"JOIN" {
                let room = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
                if room_of.insert(from, room).is_none() {
                    rooms.entry(room).or_default().push(from);
                }
                continue;
            }
            let Some(members) = room_of.get(&from).and_then(|r| rooms.get(r)) else {
                continue;
            };
            for &to in members.iter().filter(|m| **m != from) {
                sends.push((to, i, len));
                if sends.len() == SEND_BATCH {
                    out.send(fd, &batch, &sends);
                    sends.clear();
                }
            }
        }
        out.send(fd, &batch, &sends);
        sends.clear();
    }
    Ok(())
}

/// The headers of one `sendmmsg` call, reused for every call so the relay
/// allocates nothing per datagram.
struct SendBatch {
    addrs: Vec<libc::sockaddr_in>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

impl SendBatch {
    fn new() -> Self {
        Self {
            addrs: Vec::with_capacity(SEND_BATCH),
            iovs: Vec::with_capacity(SEND_BATCH),
            hdrs: Vec::with_capacity(SEND_BATCH),
        }
    }

    /// Sends each `(to, buffer index, length)` of `batch` (at most
    /// [`SEND_BATCH`]) with `sendmmsg`.
    fn send(&mut self, fd: i32, batch: &Batch, sends: &[(SocketAddr, usize, usize)]) {
        self.addrs.clear();
        self.iovs.clear();
        self.hdrs.clear();
        for &(to, i, len) in sends.iter().take(SEND_BATCH) {
            let SocketAddr::V4(v4) = to else { continue };
            self.addrs.push(libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*v4.ip()).to_be(),
                },
                sin_zero: [0; 8],
            });
            self.iovs.push(libc::iovec {
                iov_base: batch.bufs[i].as_ptr() as *mut libc::c_void,
                iov_len: len,
            });
        }
        // The vectors hold at most their capacity: the pointers below stay put.
        for k in 0..self.iovs.len() {
            // SAFETY: an all-zero mmsghdr is a valid empty value.
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            h.msg_hdr.msg_name = (&mut self.addrs[k] as *mut libc::sockaddr_in).cast();
            h.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
            h.msg_hdr.msg_iov = &mut self.iovs[k];
            h.msg_hdr.msg_iovlen = 1;
            self.hdrs.push(h);
        }
        let mut off = 0;
        while off < self.hdrs.len() {
            // SAFETY: every header points at live addresses and buffers above.
            let r = unsafe {
                libc::sendmmsg(
                    fd,
                    self.hdrs[off..].as_mut_ptr(),
                    (self.hdrs.len() - off) as u32,
                    0,
                )
            };
            if r <= 0 {
                break; // a full socket buffer drops the rest, as the server's would
            }
            off += r as usize;
        }
    }
}

/// Waits up to `timeout_ms` for one of `fds` to be readable.
pub(crate) fn wait_readable(fds: &[i32], timeout_ms: i32) {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: poll reads and writes the array we pass, of the length we pass.
    unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, timeout_ms) };
}

/// Sets a socket's receive and send buffers (best effort).
fn set_buffers(fd: i32, bytes: i32) {
    for opt in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
        // SAFETY: setsockopt reads the int we pass, of the size we pass.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&bytes as *const i32).cast(),
                std::mem::size_of::<i32>() as u32,
            )
        };
    }
}

/// What the floor run measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct FloorFigures {
    /// Datagrams the subscribers received in the window.
    pub forwarded: u64,
    /// Datagrams they should have received.
    pub expected: u64,
    /// The relay's CPU time in the window, seconds.
    pub cpu_seconds: Option<f64>,
}

/// Drives the scenario of `sc` (rooms, publishers, subscribers, rates and
/// sizes) against the relay at `relay`, whose PID is `relay_pid`: joins
/// every client, settles 1 s, then sends and counts for `window`.
///
/// Errors: a client socket cannot be bound.
pub fn run_clients(
    sc: &super::Args,
    window: Duration,
    relay_pid: u32,
    relay: SocketAddr,
) -> Result<FloorFigures, String> {
    let per_room = sc.publishers + sc.subscribers;
    let mut socks = Vec::with_capacity(sc.rooms * per_room);
    for idx in 0..sc.rooms * per_room {
        let s = UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("floor client: {e}"))?;
        s.set_nonblocking(true).map_err(|e| e.to_string())?;
        set_buffers(s.as_raw_fd(), 1 << 20);
        let mut join = b"JOIN".to_vec();
        join.extend_from_slice(&((idx / per_room) as u32).to_be_bytes());
        s.send_to(&join, relay)
            .map_err(|e| format!("floor join: {e}"))?;
        socks.push(s);
    }
    let video_pps = (f64::from(sc.video_kbps) * 1000.0 / 8.0 / sc.packet_size as f64).max(1.0);
    let video_interval = Duration::from_secs_f64(1.0 / video_pps);
    let audio_interval = Duration::from_millis(20);
    let video = vec![0x5au8; sc.packet_size];
    let audio = vec![0x5au8; 112];
    let start = Instant::now() + Duration::from_secs(1);
    let end = start + window;
    let publishers: Vec<usize> = (0..socks.len())
        .filter(|i| i % per_room < sc.publishers)
        .collect();
    let mut next: Vec<(Instant, Instant)> = publishers.iter().map(|_| (start, start)).collect();
    let fds: Vec<i32> = socks.iter().map(|s| s.as_raw_fd()).collect();
    let mut sent = 0u64;
    let mut received = 0u64;
    let mut buf = [0u8; 2048];
    let mut cpu_at_start = None;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        if now >= start && cpu_at_start.is_none() {
            cpu_at_start = super::report::process_cpu_seconds(relay_pid);
        }
        let mut wake = end;
        for (k, &i) in publishers.iter().enumerate() {
            let (v, a) = &mut next[k];
            while *v <= now {
                if socks[i].send_to(&video, relay).is_ok() && now >= start {
                    sent += 1;
                }
                *v += video_interval;
            }
            while sc.audio && *a <= now {
                if socks[i].send_to(&audio, relay).is_ok() && now >= start {
                    sent += 1;
                }
                *a += audio_interval;
            }
            wake = wake.min(*v);
            if sc.audio {
                wake = wake.min(*a);
            }
        }
        let ms = wake.saturating_duration_since(Instant::now()).as_millis() as i32;
        wait_readable(&fds, ms.clamp(0, 20));
        let counting = Instant::now() >= start;
        for s in &socks {
            while s.recv_from(&mut buf).is_ok() {
                if counting {
                    received += 1;
                }
            }
        }
    }
    let cpu_at_end = super::report::process_cpu_seconds(relay_pid);
    // Each datagram a publisher sent goes to every other member of its room.
    let expected = sent * (per_room as u64 - 1);
    Ok(FloorFigures {
        forwarded: received,
        expected,
        cpu_seconds: match (cpu_at_start, cpu_at_end) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relay_sends_each_datagram_to_every_other_member_of_its_room() {
        let probe = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let port = probe.local_addr().expect("addr").port();
        drop(probe);
        let relay = std::thread::spawn(move || run_relay(port, Duration::from_secs(4)));
        std::thread::sleep(Duration::from_millis(200));
        use clap::Parser;
        let sc = crate::load::Args::parse_from([
            "sfu-load",
            "--rooms",
            "2",
            "--subscribers",
            "3",
            "--video-kbps",
            "200",
            "--packet-size",
            "1000",
            "--audio",
        ]);
        let f = run_clients(
            &sc,
            Duration::from_secs(2),
            std::process::id(),
            ([127, 0, 0, 1], port).into(),
        )
        .expect("run");
        // 25 video + 50 audio datagrams a second from each of 2
        // publishers, to 3 others each, for 2 s: about 900.
        assert!(f.expected > 600, "{f:?}");
        // Nothing lost on loopback; the window's two edges may each count
        // a datagram in flight one way.
        let (got, want) = (f.forwarded as f64, f.expected as f64);
        assert!((got - want).abs() <= want * 0.02, "{f:?}");
        assert!(f.cpu_seconds.is_some());
        relay.join().expect("relay thread").expect("relay");
    }
}
