//! The epoll backend's system calls: an epoll set, an eventfd to wake the
//! loop, and batched UDP receive (`recvmmsg`) and send (`sendmmsg`) into
//! buffers allocated once. Linux only; every `unsafe` block is a plain
//! system call on descriptors and memory this module owns.

use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Datagrams received or sent per system call at most.
pub const BATCH: usize = 64;
/// Bytes per receive buffer: WebRTC stays under the 1500 B path MTU, and
/// anything longer than this is truncated (and then fails authentication).
pub const RECV_BUF: usize = 2048;

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// An epoll set in level-triggered mode: a socket with datagrams left after
/// a bounded batch is reported again by the next wait.
#[derive(Debug)]
pub struct Epoll {
    fd: OwnedFd,
    events: Vec<libc::epoll_event>,
}

impl Epoll {
    /// A new epoll set. Errors: the `epoll_create1` failure.
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain system call; the returned descriptor is owned below.
        let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        Ok(Self {
            // SAFETY: `fd` is a fresh descriptor nobody else owns.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            events: vec![libc::epoll_event { events: 0, u64: 0 }; 256],
        })
    }

    /// Watches `fd` for readability, reported with `token`.
    pub fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: both descriptors are valid; `ev` lives across the call.
        cvt(unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) })?;
        Ok(())
    }

    /// Stops watching `fd`.
    pub fn delete(&self, fd: RawFd) -> io::Result<()> {
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: as in `add`.
        cvt(unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, &mut ev) })?;
        Ok(())
    }

    /// Waits up to `timeout` (`None`: until something happens) and returns
    /// the tokens of the ready descriptors. An interrupted wait returns none.
    pub fn wait(&mut self, timeout: Option<Duration>) -> io::Result<Vec<u64>> {
        let mut out = Vec::new();
        self.wait_into(timeout, &mut out)?;
        Ok(out)
    }

    /// As [`Self::wait`], into a caller-owned vector (cleared first).
    pub fn wait_into(&mut self, timeout: Option<Duration>, out: &mut Vec<u64>) -> io::Result<()> {
        out.clear();
        let ms = match timeout {
            None => -1,
            // Round up, so a wait never ends just before its deadline.
            Some(d) => d.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32,
        };
        // SAFETY: `events` is a valid buffer of the length passed.
        let n = unsafe {
            libc::epoll_wait(
                self.fd.as_raw_fd(),
                self.events.as_mut_ptr(),
                self.events.len() as i32,
                ms,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(())
            } else {
                Err(e)
            };
        }
        out.extend(self.events[..n as usize].iter().map(|e| e.u64));
        Ok(())
    }
}

/// An eventfd: any thread may [`Waker::wake`] the loop that watches it.
#[derive(Debug)]
pub struct Waker {
    fd: OwnedFd,
}

impl Waker {
    /// A new non-blocking eventfd. Errors: the `eventfd` failure.
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain system call; the descriptor is owned below.
        let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
        Ok(Self {
            // SAFETY: fresh descriptor.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// The descriptor, for an epoll set.
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Makes the descriptor readable (wakes the loop). Never blocks.
    pub fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64; a full counter (EAGAIN)
        // means a wake-up is pending anyway.
        let _ = unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    /// Clears pending wake-ups.
    pub fn drain(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64.
        let _ = unsafe { libc::read(self.fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
    }
}

/// Writes `addr` into `ss`; returns the length to pass to the kernel.
fn from_socket_addr(addr: &SocketAddr, ss: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in.
            let s =
                unsafe { &mut *(ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            s.sin_family = libc::AF_INET as libc::sa_family_t;
            s.sin_port = a.port().to_be();
            s.sin_addr = libc::in_addr {
                s_addr: u32::from(*a.ip()).to_be(),
            };
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            // SAFETY: as above, for sockaddr_in6.
            let s =
                unsafe { &mut *(ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            s.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            s.sin6_port = a.port().to_be();
            s.sin6_flowinfo = a.flowinfo();
            s.sin6_addr = libc::in6_addr {
                s6_addr: a.ip().octets(),
            };
            s.sin6_scope_id = a.scope_id();
            std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

fn zeroed_storage() -> libc::sockaddr_storage {
    // SAFETY: all-zero is a valid sockaddr_storage.
    unsafe { MaybeUninit::<libc::sockaddr_storage>::zeroed().assume_init() }
}

/// Buffers for one `recvmmsg` of up to [`BATCH`] datagrams, allocated once.
pub struct RecvBatch {
    bufs: Vec<[u8; RECV_BUF]>,
    addrs: Vec<libc::sockaddr_storage>,
    iovs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
    len: usize,
}

impl std::fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvBatch").field("len", &self.len).finish()
    }
}

impl Default for RecvBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl RecvBatch {
    /// Buffers for [`BATCH`] datagrams of up to [`RECV_BUF`] bytes.
    pub fn new() -> Self {
        Self {
            bufs: vec![[0u8; RECV_BUF]; BATCH],
            addrs: vec![zeroed_storage(); BATCH],
            iovs: Vec::with_capacity(BATCH),
            // SAFETY: all-zero is a valid mmsghdr (null pointers, zero lengths).
            msgs: vec![unsafe { MaybeUninit::<libc::mmsghdr>::zeroed().assume_init() }; BATCH],
            len: 0,
        }
    }

    /// Receives up to `max` (≤ [`BATCH`]) datagrams from non-blocking
    /// socket `fd` without waiting. Returns how many; 0 when none is queued.
    ///
    /// Errors: socket errors other than "would block" and interruption.
    pub fn recv(&mut self, fd: RawFd, max: usize) -> io::Result<usize> {
        let max = max.clamp(1, BATCH);
        self.iovs.clear();
        for b in self.bufs.iter_mut().take(max) {
            self.iovs.push(libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: RECV_BUF,
            });
        }
        for i in 0..max {
            let m = &mut self.msgs[i];
            m.msg_hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
            m.msg_hdr.msg_iov = &mut self.iovs[i];
            m.msg_hdr.msg_iovlen = 1;
            m.msg_hdr.msg_control = std::ptr::null_mut();
            m.msg_hdr.msg_controllen = 0;
            m.msg_hdr.msg_flags = 0;
            m.msg_len = 0;
        }
        // SAFETY: `msgs[..max]` point into `bufs`, `addrs` and `iovs`, which
        // outlive the call and are not otherwise borrowed during it.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.msgs.as_mut_ptr(),
                max as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            self.len = 0;
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(e),
            };
        }
        self.len = n as usize;
        Ok(self.len)
    }

    /// Datagram `i` of the last receive: its source and its bytes.
    pub fn get(&self, i: usize) -> Option<(SocketAddr, &[u8])> {
        if i >= self.len {
            return None;
        }
        let from = super::from_storage(&self.addrs[i])?;
        let n = (self.msgs[i].msg_len as usize).min(RECV_BUF);
        Some((from, &self.bufs[i][..n]))
    }
}

/// What one [`SendBatch::send`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendOutcome {
    /// Datagrams the kernel took.
    pub sent: usize,
    /// Their payload bytes.
    pub bytes: usize,
    /// Datagrams refused (full socket buffer, no route, …): dropped, as UDP does.
    pub failed: usize,
}

/// Scratch space for one `sendmmsg` of up to [`BATCH`] datagrams.
pub struct SendBatch {
    addrs: Vec<libc::sockaddr_storage>,
    iovs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
}

impl std::fmt::Debug for SendBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendBatch").finish()
    }
}

impl Default for SendBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl SendBatch {
    /// Scratch space for [`BATCH`] datagrams.
    pub fn new() -> Self {
        Self {
            addrs: vec![zeroed_storage(); BATCH],
            iovs: Vec::with_capacity(BATCH),
            // SAFETY: all-zero is a valid mmsghdr.
            msgs: vec![unsafe { MaybeUninit::<libc::mmsghdr>::zeroed().assume_init() }; BATCH],
        }
    }

    /// Sends `datagrams` (destination, payload) from socket `fd`, up to
    /// [`BATCH`] per system call, and says how many the kernel took.
    pub fn send<'a>(
        &mut self,
        fd: RawFd,
        datagrams: impl Iterator<Item = (SocketAddr, &'a [u8])>,
    ) -> SendOutcome {
        let mut it = datagrams.peekable();
        let mut out = SendOutcome::default();
        while it.peek().is_some() {
            self.iovs.clear();
            let mut n = 0;
            while n < BATCH {
                let Some((dest, data)) = it.next() else { break };
                let len = from_socket_addr(&dest, &mut self.addrs[n]);
                self.iovs.push(libc::iovec {
                    iov_base: data.as_ptr() as *mut libc::c_void,
                    iov_len: data.len(),
                });
                let m = &mut self.msgs[n];
                m.msg_hdr.msg_name = (&mut self.addrs[n] as *mut libc::sockaddr_storage).cast();
                m.msg_hdr.msg_namelen = len;
                m.msg_hdr.msg_iovlen = 1;
                m.msg_hdr.msg_control = std::ptr::null_mut();
                m.msg_hdr.msg_controllen = 0;
                m.msg_hdr.msg_flags = 0;
                m.msg_len = 0;
                n += 1;
            }
            for (i, iov) in self.iovs.iter_mut().enumerate() {
                self.msgs[i].msg_hdr.msg_iov = iov;
            }
            let mut done = 0;
            while done < n {
                // SAFETY: `msgs[done..n]` point into `addrs`, `iovs` and the
                // caller's payloads, all alive for the call.
                let rc = unsafe {
                    libc::sendmmsg(
                        fd,
                        self.msgs[done..].as_mut_ptr(),
                        (n - done) as u32,
                        libc::MSG_DONTWAIT,
                    )
                };
                if rc > 0 {
                    let k = rc as usize;
                    out.sent += k;
                    out.bytes += self.iovs[done..done + k]
                        .iter()
                        .map(|v| v.iov_len)
                        .sum::<usize>();
                    done += k;
                    continue;
                }
                let e = io::Error::last_os_error();
                if rc < 0 && e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // Would block, or this datagram was refused (e.g. no route):
                // skip it and go on with the rest.
                out.failed += 1;
                done += 1;
            }
        }
        out
    }
}

/// The epoll driver: level-triggered readiness, then one `recvmmsg` of at
/// most [`BATCH`] datagrams per readable socket per poll.
#[derive(Debug)]
pub struct EpollDriver {
    ep: Epoll,
    waker: std::sync::Arc<Waker>,
    recv: RecvBatch,
    ready: Vec<u64>,
    fds: std::collections::HashMap<usize, RawFd>,
}

/// The epoll token of the eventfd (sockets use their slot).
const WAKER_TOKEN: u64 = u64::MAX;

impl EpollDriver {
    /// An epoll set watching `waker`.
    ///
    /// Errors: `epoll_create1` or `epoll_ctl` failed.
    pub fn new(waker: std::sync::Arc<Waker>) -> io::Result<Self> {
        let ep = Epoll::new()?;
        ep.add(waker.raw_fd(), WAKER_TOKEN)?;
        Ok(Self {
            ep,
            waker,
            recv: RecvBatch::new(),
            ready: Vec::with_capacity(256),
            fds: std::collections::HashMap::new(),
        })
    }
}

impl super::Driver for EpollDriver {
    fn register(&mut self, slot: usize, sock: &socket2::Socket) -> io::Result<()> {
        self.ep.add(sock.as_raw_fd(), slot as u64)?;
        self.fds.insert(slot, sock.as_raw_fd());
        Ok(())
    }

    fn deregister(&mut self, slot: usize, sock: &socket2::Socket) {
        let _ = self.ep.delete(sock.as_raw_fd());
        self.fds.remove(&slot);
    }

    fn poll(
        &mut self,
        timeout: Option<Duration>,
        on: &mut dyn FnMut(usize, SocketAddr, &[u8]),
    ) -> io::Result<()> {
        let mut ready = std::mem::take(&mut self.ready);
        let r = self.ep.wait_into(timeout, &mut ready);
        for &token in &ready {
            if token == WAKER_TOKEN {
                self.waker.drain();
                continue;
            }
            let slot = token as usize;
            let Some(&fd) = self.fds.get(&slot) else {
                continue;
            };
            match self.recv.recv(fd, BATCH) {
                Ok(n) => {
                    for i in 0..n {
                        if let Some((from, data)) = self.recv.get(i) {
                            on(slot, from, data);
                        }
                    }
                }
                Err(e) => tracing::debug!(slot, error = %e, "UDP receive failed"),
            }
        }
        self.ready = ready;
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;

    #[test]
    fn batches_go_out_and_come_back_with_their_sources() {
        let a = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let b = UdpSocket::bind("127.0.0.1:0").expect("bind");
        b.set_nonblocking(true).expect("nonblocking");
        let to = b.local_addr().expect("addr");
        let payloads: Vec<Vec<u8>> = (0..100u8).map(|i| vec![i; 10 + i as usize]).collect();
        let mut sb = SendBatch::new();
        let sent = sb.send(a.as_raw_fd(), payloads.iter().map(|p| (to, p.as_slice())));
        assert_eq!(sent.sent, 100);
        assert_eq!(sent.bytes, payloads.iter().map(Vec::len).sum::<usize>());
        assert_eq!(sent.failed, 0);
        let mut ep = Epoll::new().expect("epoll");
        ep.add(b.as_raw_fd(), 7).expect("add");
        assert_eq!(
            ep.wait(Some(Duration::from_secs(5))).expect("wait"),
            vec![7]
        );
        let mut rb = RecvBatch::new();
        let mut got = Vec::new();
        loop {
            let n = rb.recv(b.as_raw_fd(), BATCH).expect("recv");
            if n == 0 {
                break;
            }
            for i in 0..n {
                let (from, data) = rb.get(i).expect("datagram");
                assert_eq!(from, a.local_addr().expect("addr"));
                got.push(data.to_vec());
            }
        }
        assert_eq!(got, payloads, "all 100, in order, in two batches");
        assert!(ep.wait(Some(Duration::ZERO)).expect("wait").is_empty());
    }

    #[test]
    fn a_waker_wakes_an_epoll_wait() {
        let mut ep = Epoll::new().expect("epoll");
        let w = Waker::new().expect("eventfd");
        ep.add(w.raw_fd(), 1).expect("add");
        assert!(ep.wait(Some(Duration::ZERO)).expect("wait").is_empty());
        w.wake();
        w.wake();
        assert_eq!(
            ep.wait(Some(Duration::from_secs(5))).expect("wait"),
            vec![1]
        );
        w.drain();
        assert!(ep.wait(Some(Duration::ZERO)).expect("wait").is_empty());
    }
}
