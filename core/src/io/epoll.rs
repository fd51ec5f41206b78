//! The epoll backend's system calls: an epoll set, an eventfd to wake the
//! loop, and batched UDP receive (`recvmmsg`) and send (`sendmmsg`) into
//! buffers allocated once. Linux only; every `unsafe` block is a plain
//! system call on descriptors and memory this module owns.

use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::{Waker, cvt};
use crate::transport::{Datagram, SendOutcome};

/// Datagrams received or sent per system call at most.
pub const BATCH: usize = 64;
/// Bytes per receive buffer: WebRTC stays under the 1500 B path MTU, and
/// anything longer than this is truncated (and then fails authentication).
pub const RECV_BUF: usize = 2048;

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

    /// Changes what `fd` is watched for (`EPOLLIN`, `EPOLLOUT`, …).
    pub fn modify(&self, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: as in `add`.
        cvt(unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_MOD, fd, &mut ev) })?;
        Ok(())
    }

    /// The epoll descriptor itself (readable when one it watches is ready:
    /// another loop may watch it).
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
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
    /// Control messages (the kernel receive timestamp) per datagram.
    ctrls: Vec<[u64; super::CMSG_BUF / 8]>,
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
            ctrls: vec![[0u64; super::CMSG_BUF / 8]; BATCH],
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
            m.msg_hdr.msg_control = self.ctrls[i].as_mut_ptr().cast();
            m.msg_hdr.msg_controllen = super::CMSG_BUF;
            m.msg_hdr.msg_flags = 0;
            m.msg_len = 0;
        }
        // SAFETY: `msgs[..max]` point into `bufs`, `ctrls`, `addrs` and `iovs`, which
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

    /// As [`Self::get`], with the bytes writable (decrypted in place).
    pub fn get_mut(&mut self, i: usize) -> Option<(SocketAddr, &mut [u8])> {
        if i >= self.len {
            return None;
        }
        let from = super::from_storage(&self.addrs[i])?;
        let n = (self.msgs[i].msg_len as usize).min(RECV_BUF);
        Some((from, &mut self.bufs[i][..n]))
    }

    /// When the kernel received datagram `i` of the last receive (realtime
    /// clock, ns), if the socket has `SO_TIMESTAMPNS`.
    pub fn rx_timestamp_ns(&self, i: usize) -> Option<i128> {
        if i >= self.len {
            return None;
        }
        super::rx_timestamp_ns(&self.msgs[i].msg_hdr)
    }
}

/// Segments per UDP GSO send at most: the kernel's `UDP_MAX_SEGMENTS` (64
/// before Linux 6.10, 128 since).
pub const GSO_MAX_SEGMENTS: usize = 64;
/// Payload bytes per UDP GSO send at most (one IPv4 datagram's 65,507, with margin).
pub const GSO_MAX_BYTES: usize = 65_000;

/// Whether this kernel takes `UDP_SEGMENT` (Linux ≥ 4.18): the option is
/// readable on a fresh UDP socket, as quinn-udp probes it.
pub fn gso_supported() -> bool {
    // SAFETY: plain system calls on a socket this function owns and closes.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return false;
        }
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        let rc = libc::getsockopt(
            fd,
            libc::SOL_UDP,
            libc::UDP_SEGMENT,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        );
        libc::close(fd);
        rc == 0
    }
}

/// One planned message: `count` datagrams (positions `first..first+count`
/// of the send order) to one destination, sent as UDP GSO segments of
/// `seg` bytes when `count` > 1.
#[derive(Debug, Clone, Copy)]
struct Planned {
    first: u32,
    count: u16,
    seg: u16,
}

/// Control-message space for one `UDP_SEGMENT` (a u16), 8-byte aligned.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct GsoCmsg([u8; 32]);

/// Sends batches of datagrams with `sendmmsg`, up to [`BATCH`] messages per
/// system call, from scratch space allocated once.
///
/// With UDP GSO on (RFC-free kernel feature, `UDP_SEGMENT`), datagrams to
/// the same destination are grouped — in their order — and each run of
/// equal-size ones (the last may be shorter) goes out as one message that
/// the kernel splits: one route lookup and one pass down the stack for up to
/// [`GSO_MAX_SEGMENTS`] datagrams. If the kernel refuses a GSO send (no
/// support, or a device without checksum offload: `EIO`), GSO is turned off
/// for this batcher and the datagrams go out one by one, as quinn-udp does.
pub struct SendBatch {
    addrs: Vec<libc::sockaddr_storage>,
    iovs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
    cmsgs: Vec<GsoCmsg>,
    /// Send order: (destination key, item index), sorted when grouping.
    order: Vec<(u64, u32)>,
    plan: Vec<Planned>,
    gso: bool,
    max_segments: usize,
}

impl std::fmt::Debug for SendBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendBatch").field("gso", &self.gso).finish()
    }
}

impl Default for SendBatch {
    fn default() -> Self {
        Self::new(false)
    }
}

/// A key equal for equal addresses (exact for IPv4; a hash for IPv6, where
/// runs are still checked for address equality).
fn dest_key(a: &SocketAddr) -> u64 {
    match a {
        SocketAddr::V4(v) => (u64::from(u32::from(*v.ip())) << 16) | u64::from(v.port()),
        SocketAddr::V6(v) => {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for b in v.ip().octets().iter().chain(&v.port().to_be_bytes()) {
                h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
            }
            h | (1 << 63)
        }
    }
}

/// Whether a send error means "this kernel or device cannot do GSO".
fn is_gso_refusal(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EIO | libc::EINVAL | libc::EOPNOTSUPP | libc::ENOPROTOOPT)
    )
}

impl SendBatch {
    /// Scratch space for [`BATCH`] messages; `gso` asks for UDP GSO, used
    /// only when [`gso_supported`].
    pub fn new(gso: bool) -> Self {
        Self {
            addrs: vec![zeroed_storage(); BATCH],
            iovs: Vec::with_capacity(BATCH * GSO_MAX_SEGMENTS),
            // SAFETY: all-zero is a valid mmsghdr.
            msgs: vec![unsafe { MaybeUninit::<libc::mmsghdr>::zeroed().assume_init() }; BATCH],
            cmsgs: vec![GsoCmsg([0; 32]); BATCH],
            order: Vec::with_capacity(1024),
            plan: Vec::with_capacity(1024),
            gso: gso && gso_supported(),
            max_segments: GSO_MAX_SEGMENTS,
        }
    }

    /// Whether GSO is in use (asked for, supported, and never refused).
    pub fn gso(&self) -> bool {
        self.gso
    }

    /// Sends `items` from socket `fd` and says what the kernel took. Each
    /// destination receives its datagrams in their order in `items`. With
    /// `group` (and GSO on), runs to one destination are gathered into GSO
    /// messages; without, each datagram is its own message.
    pub fn send<D: Datagram>(&mut self, fd: RawFd, items: &[D], group: bool) -> SendOutcome {
        self.order.clear();
        self.plan.clear();
        if self.gso && group && items.len() > 1 {
            self.order.extend(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, d)| (dest_key(&d.dest()), i as u32)),
            );
            // (key, index): equal destinations together, each in its order.
            self.order.sort_unstable();
            self.plan_runs(items);
        } else {
            self.order.extend((0..items.len() as u32).map(|i| (0, i)));
            self.plan_singles(0);
        }
        let mut out = SendOutcome::default();
        let mut p = 0;
        while p < self.plan.len() {
            let end = (p + BATCH).min(self.plan.len());
            let n = self.fill(items, p, end);
            let mut done = 0;
            while done < n {
                // SAFETY: `msgs[done..n]` point into `addrs`, `iovs`, `cmsgs`
                // and the caller's payloads, all alive for the call.
                let rc = unsafe {
                    libc::sendmmsg(
                        fd,
                        self.msgs[done..].as_mut_ptr(),
                        (n - done) as u32,
                        libc::MSG_DONTWAIT,
                    )
                };
                out.syscalls += 1;
                if rc > 0 {
                    for m in &self.plan[p + done..p + done + rc as usize] {
                        out.messages += 1;
                        out.gso_messages += usize::from(m.count > 1);
                        out.sent += usize::from(m.count);
                        out.bytes += self.order[m.first as usize..][..usize::from(m.count)]
                            .iter()
                            .map(|&(_, i)| items[i as usize].payload().len())
                            .sum::<usize>();
                    }
                    done += rc as usize;
                    continue;
                }
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                let m = self.plan[p + done];
                if m.count > 1 && is_gso_refusal(&e) {
                    tracing::warn!(error = %e, "the kernel refused a UDP GSO send; sending datagrams one by one from now on");
                    self.gso = false;
                    // Re-plan everything from this message on as singles.
                    self.plan.truncate(p + done);
                    self.plan_singles(m.first as usize);
                    break;
                }
                // Would block, or refused (e.g. no route): drop it, go on.
                out.failed += usize::from(m.count);
                done += 1;
            }
            p += done;
        }
        out
    }

    /// Plans `order[from..]` as one message per datagram.
    fn plan_singles(&mut self, from: usize) {
        let plan = &mut self.plan;
        plan.extend((from..self.order.len()).map(|i| Planned {
            first: i as u32,
            count: 1,
            seg: 0,
        }));
    }

    /// Plans the (grouped) send order as GSO runs: same destination, equal
    /// sizes, a shorter one only last, within the kernel's limits.
    fn plan_runs<D: Datagram>(&mut self, items: &[D]) {
        let mut i = 0;
        while i < self.order.len() {
            let (key, first) = self.order[i];
            let head = &items[first as usize];
            let dest = head.dest();
            let seg = head.payload().len();
            let max = if seg == 0 || seg > usize::from(u16::MAX) {
                1
            } else {
                self.max_segments.min(GSO_MAX_BYTES / seg).max(1)
            };
            let mut count = 1;
            while count < max && i + count < self.order.len() {
                let (k, idx) = self.order[i + count];
                let d = &items[idx as usize];
                let len = d.payload().len();
                if k != key || len > seg || len == 0 || d.dest() != dest {
                    break;
                }
                count += 1;
                if len < seg {
                    break; // a shorter segment ends the message
                }
            }
            self.plan.push(Planned {
                first: i as u32,
                count: count as u16,
                seg: seg as u16,
            });
            i += count;
        }
    }

    /// Writes messages `plan[p..end]` into `msgs`; returns how many.
    fn fill<D: Datagram>(&mut self, items: &[D], p: usize, end: usize) -> usize {
        self.iovs.clear();
        for m in &self.plan[p..end] {
            for &(_, i) in &self.order[m.first as usize..][..usize::from(m.count)] {
                let data = items[i as usize].payload();
                self.iovs.push(libc::iovec {
                    iov_base: data.as_ptr() as *mut libc::c_void,
                    iov_len: data.len(),
                });
            }
        }
        let mut iov_at = 0;
        for (k, m) in self.plan[p..end].iter().enumerate() {
            let dest = items[self.order[m.first as usize].1 as usize].dest();
            let len = from_socket_addr(&dest, &mut self.addrs[k]);
            let hdr = &mut self.msgs[k].msg_hdr;
            hdr.msg_name = (&mut self.addrs[k] as *mut libc::sockaddr_storage).cast();
            hdr.msg_namelen = len;
            hdr.msg_iov = &mut self.iovs[iov_at];
            hdr.msg_iovlen = usize::from(m.count);
            hdr.msg_flags = 0;
            iov_at += usize::from(m.count);
            if m.count > 1 {
                let buf = &mut self.cmsgs[k];
                hdr.msg_control = buf.0.as_mut_ptr().cast();
                // SAFETY: CMSG_SPACE/CMSG_LEN are arithmetic.
                hdr.msg_controllen = unsafe { libc::CMSG_SPACE(2) } as _;
                // SAFETY: the control buffer is 32 aligned bytes, larger than
                // CMSG_SPACE(2); CMSG_FIRSTHDR points at its start.
                unsafe {
                    let c = libc::CMSG_FIRSTHDR(hdr);
                    (*c).cmsg_level = libc::SOL_UDP;
                    (*c).cmsg_type = libc::UDP_SEGMENT;
                    (*c).cmsg_len = libc::CMSG_LEN(2) as _;
                    std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), m.seg);
                }
            } else {
                hdr.msg_control = std::ptr::null_mut();
                hdr.msg_controllen = 0;
            }
            self.msgs[k].msg_len = 0;
        }
        end - p
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
    /// The watched descriptor fired since [`super::Driver::take_watched`].
    watch_ready: bool,
}

/// The epoll token of the eventfd (sockets use their slot).
const WAKER_TOKEN: u64 = u64::MAX;
/// The epoll token of the watched descriptor ([`super::Driver::watch`]).
const WATCH_TOKEN: u64 = u64::MAX - 1;

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
            watch_ready: false,
        })
    }
}

impl super::Driver for EpollDriver {
    fn register(&mut self, slot: usize, sock: &socket2::Socket) -> io::Result<()> {
        self.ep.add(sock.as_raw_fd(), slot as u64)?;
        self.fds.insert(slot, sock.as_raw_fd());
        Ok(())
    }

    fn watch(&mut self, fd: RawFd) -> io::Result<()> {
        self.ep.add(fd, WATCH_TOKEN)
    }

    fn take_watched(&mut self) -> bool {
        std::mem::take(&mut self.watch_ready)
    }

    fn deregister(&mut self, slot: usize, sock: &socket2::Socket) {
        let _ = self.ep.delete(sock.as_raw_fd());
        self.fds.remove(&slot);
    }

    fn poll(
        &mut self,
        timeout: Option<Duration>,
        on: &mut super::OnDatagram<'_>,
    ) -> io::Result<()> {
        let mut ready = std::mem::take(&mut self.ready);
        let r = self.ep.wait_into(timeout, &mut ready);
        let clock = super::RxClock::now();
        for &token in &ready {
            if token == WAKER_TOKEN {
                self.waker.drain();
                continue;
            }
            if token == WATCH_TOKEN {
                self.watch_ready = true;
                continue;
            }
            let slot = token as usize;
            let Some(&fd) = self.fds.get(&slot) else {
                continue;
            };
            match self.recv.recv(fd, BATCH) {
                Ok(n) => {
                    for i in 0..n {
                        let at = clock.arrival(self.recv.rx_timestamp_ns(i));
                        if let Some((from, data)) = self.recv.get_mut(i) {
                            on(slot, from, at, data);
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
        super::super::enable_rx_timestamps(&b).expect("SO_TIMESTAMPNS");
        let to = b.local_addr().expect("addr");
        let payloads: Vec<Vec<u8>> = (0..100u8).map(|i| vec![i; 10 + i as usize]).collect();
        let mut sb = SendBatch::new(false);
        let items: Vec<_> = payloads.iter().map(|p| (to, p.as_slice())).collect();
        let sent = sb.send(a.as_raw_fd(), &items, true);
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
                assert!(rb.rx_timestamp_ns(i).is_some(), "kernel receive time");
                let (from, data) = rb.get(i).expect("datagram");
                assert_eq!(from, a.local_addr().expect("addr"));
                got.push(data.to_vec());
            }
        }
        assert_eq!(got, payloads, "all 100, in order, in two batches");
        assert!(ep.wait(Some(Duration::ZERO)).expect("wait").is_empty());
    }

    /// Receives until `n` datagrams arrived or 5 s passed.
    fn drain(sock: &UdpSocket, n: usize) -> Vec<Vec<u8>> {
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        let end = std::time::Instant::now() + Duration::from_secs(5);
        while got.len() < n && std::time::Instant::now() < end {
            if let Ok(k) = sock.recv(&mut buf) {
                got.push(buf[..k].to_vec());
            }
        }
        got
    }

    #[test]
    fn gso_groups_each_destination_in_order_with_fewer_messages() {
        if !gso_supported() {
            panic!("this kernel has no UDP_SEGMENT (Linux >= 4.18 is required by the tests)");
        }
        let a = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let rx: Vec<UdpSocket> = (0..3)
            .map(|_| UdpSocket::bind("127.0.0.1:0").expect("bind"))
            .collect();
        // Interleaved as a fan-out makes them: packet k to each receiver in
        // turn; sizes 1200 except every 7th (shorter) and receiver 2's, which
        // vary (no equal run: single datagrams).
        let mut items: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
        for k in 0..40u16 {
            for (r, sock) in rx.iter().enumerate() {
                let len = match (r, k % 7) {
                    (2, _) => 100 + usize::from(k),
                    (_, 6) => 300,
                    _ => 1200,
                };
                let mut p = vec![r as u8; len];
                p[..2].copy_from_slice(&k.to_be_bytes());
                items.push((sock.local_addr().expect("addr"), p));
            }
        }
        let mut sb = SendBatch::new(true);
        assert!(sb.gso());
        let out = sb.send(a.as_raw_fd(), &items, true);
        assert_eq!(out.sent, items.len());
        assert_eq!(out.failed, 0);
        assert!(
            out.messages <= 40 + 2 * 12,
            "runs of 1200 B to receivers 0 and 1 must be grouped: {out:?}"
        );
        for (r, sock) in rx.iter().enumerate() {
            let want: Vec<Vec<u8>> = items
                .iter()
                .filter(|(d, _)| *d == sock.local_addr().expect("addr"))
                .map(|(_, p)| p.clone())
                .collect();
            let got = drain(sock, want.len());
            assert_eq!(got.len(), want.len(), "receiver {r}: all of them");
            assert!(got == want, "receiver {r}: in order, unchanged");
        }
    }

    #[test]
    fn a_refused_gso_send_falls_back_to_single_datagrams() {
        if !gso_supported() {
            panic!("this kernel has no UDP_SEGMENT (Linux >= 4.18 is required by the tests)");
        }
        let a = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let b = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let to = b.local_addr().expect("addr");
        let items: Vec<(SocketAddr, Vec<u8>)> = (0..150u16)
            .map(|k| (to, k.to_be_bytes().repeat(5)))
            .collect();
        let mut sb = SendBatch::new(true);
        // More segments than any kernel's UDP_MAX_SEGMENTS (128): EINVAL.
        sb.max_segments = 150;
        let out = sb.send(a.as_raw_fd(), &items, true);
        assert!(!sb.gso(), "GSO is off after the refusal");
        assert_eq!((out.sent, out.failed, out.messages), (150, 0, 150));
        let want: Vec<Vec<u8>> = items.iter().map(|(_, p)| p.clone()).collect();
        let got = drain(&b, 150);
        assert_eq!(got.len(), 150);
        assert!(got == want, "in order, unchanged");
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
