//! The only code that touches sockets: binding a room's UDP socket from a
//! port range with socket2 (RFC-free plumbing), and the
//! per-core loop's two [`Driver`]s: [`epoll`] and [`uring`].

#![expect(
    unsafe_code,
    reason = "the IO layer: socket system calls, io_uring submission entries and their buffers"
)]

pub mod epoll;
pub mod tcp;
pub mod uring;
pub mod waker;

pub use waker::Waker;

use std::time::{Duration, Instant};

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use socket2::{Domain, Protocol, Socket, Type};

use crate::error::{Error, Result};

/// How the per-core loop waits and receives: one driver per worker, holding
/// every room socket of that worker (sends are `sendmmsg` batches for both).
pub trait Driver: std::fmt::Debug {
    /// Starts receiving on `sock`; its datagrams are reported with `slot`.
    ///
    /// Errors: the registration failed (the socket is not used).
    fn register(&mut self, slot: usize, sock: &socket2::Socket) -> std::io::Result<()>;

    /// Also wakes [`Driver::poll`] when `fd` turns readable (the ICE-TCP
    /// server's own epoll set, [`tcp::TcpServer::raw_fd`]); the loop then
    /// finds [`Driver::take_watched`] true. One descriptor per driver.
    ///
    /// Errors: the registration failed.
    fn watch(&mut self, fd: std::os::fd::RawFd) -> std::io::Result<()>;

    /// Whether the watched descriptor turned readable since the last call.
    fn take_watched(&mut self) -> bool;

    /// Stops receiving on `sock` at once; nothing more is reported for
    /// `slot`. Never blocks. The caller closes the socket afterwards.
    fn deregister(&mut self, slot: usize, sock: &socket2::Socket);

    /// Waits up to `timeout` (`None`: until something happens; zero: not
    /// at all) for datagrams or a wake-up, then hands each received datagram
    /// to `on(slot, source, bytes)`: a bounded number per socket per call,
    /// so one flooded socket cannot starve the loop. The bytes are the
    /// driver's receive buffer, lent mutably so the datagram is decrypted
    /// where the kernel wrote it (no copy).
    ///
    /// Errors: the wait itself failed.
    ///
    /// Each datagram comes with when the kernel received it
    /// (`SO_TIMESTAMPNS`), as an [`Instant`], when the kernel said: the
    /// arrival times of transport-wide feedback are then the network's,
    /// not those of this loop's scheduling.
    fn poll(&mut self, timeout: Option<Duration>, on: &mut OnDatagram<'_>) -> std::io::Result<()>;
}

/// What [`Driver::poll`] hands each datagram to: (socket slot, source, when
/// the kernel received it, the bytes).
pub type OnDatagram<'a> = dyn FnMut(usize, SocketAddr, Option<Instant>, &mut [u8]) + 'a;

/// Asks the kernel to stamp each datagram `sock` receives with its receive
/// time (`SO_TIMESTAMPNS`), which the drivers hand on with the datagram.
///
/// Errors: the socket option was refused.
pub fn enable_rx_timestamps(sock: &impl std::os::fd::AsRawFd) -> std::io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: a valid socket and a c_int option value of its size.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Control-message space per received datagram: one `SCM_TIMESTAMPNS`
/// (`CMSG_SPACE(16)` = 32 bytes on 64-bit Linux), with room to spare.
pub(crate) const CMSG_BUF: usize = 64;

/// The kernel's receive time of a datagram (`SCM_TIMESTAMPNS`, the
/// realtime clock, ns), from the control messages `recvmsg` filled in `msg`.
pub(crate) fn rx_timestamp_ns(msg: &libc::msghdr) -> Option<i128> {
    if msg.msg_control.is_null() || msg.msg_controllen < std::mem::size_of::<libc::cmsghdr>() {
        return None;
    }
    // SAFETY: `msg` was filled by the kernel; CMSG_FIRSTHDR/NXTHDR stay
    // within `msg_control[..msg_controllen]` and return null at its end.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            let h = &*c;
            if h.cmsg_level == libc::SOL_SOCKET && h.cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::timespec>());
                return Some(i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec));
            }
            c = libc::CMSG_NXTHDR(msg, c);
        }
    }
    None
}

/// Turns kernel receive times (realtime clock) into [`Instant`]s: the two
/// clocks are read together once per poll, and a datagram that arrived
/// `d` before that realtime reading arrived `d` before that instant.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RxClock {
    instant: Instant,
    real_ns: i128,
}

impl RxClock {
    pub(crate) fn now() -> Self {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: a valid out-pointer; CLOCK_REALTIME always exists.
        unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
        Self {
            instant: Instant::now(),
            real_ns: i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec),
        }
    }

    /// The instant of kernel receive time `ns`; `None` when it is not
    /// plausible (in the future, or more than 10 s old: a clock step).
    pub(crate) fn arrival(&self, ns: Option<i128>) -> Option<Instant> {
        let ago = self.real_ns - ns?;
        (0..10_000_000_000)
            .contains(&ago)
            .then(|| self.instant - Duration::from_nanos(ago as u64))
    }
}

/// A kernel socket address as a [`SocketAddr`], for IPv4 and IPv6.
pub(crate) fn from_storage(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match ss.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says this storage holds a sockaddr_in.
            let a = unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this storage holds a sockaddr_in6.
            let a = unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Where and how rooms' sockets are bound.
#[derive(Debug, Clone)]
pub struct SocketConfig {
    /// Local address to bind (e.g. 0.0.0.0, 127.0.0.1).
    pub bind_ip: IpAddr,
    /// Lowest UDP port of the range (inclusive).
    pub port_min: u16,
    /// Highest UDP port of the range (inclusive).
    pub port_max: u16,
    /// SO_RCVBUF in bytes.
    pub recv_buffer: usize,
    /// SO_SNDBUF in bytes.
    pub send_buffer: usize,
    /// Send several datagrams to one destination as one UDP GSO message
    /// (`UDP_SEGMENT`) when the kernel supports it (see [`epoll::SendBatch`]).
    pub udp_gso: bool,
}

impl Default for SocketConfig {
    fn default() -> Self {
        Self {
            bind_ip: IpAddr::from([127, 0, 0, 1]),
            port_min: 40000,
            port_max: 40999,
            recv_buffer: 4 << 20,
            send_buffer: 4 << 20,
            udp_gso: true,
        }
    }
}

/// Binds a non-blocking UDP socket on the first free port of the range,
/// starting the scan at `start_hint` (so workers do not all probe the same
/// ports). A port in use is skipped. Without SO_REUSEPORT, so the kernel
/// never spreads one room over several sockets.
///
/// Errors: [`Error::PortRangeExhausted`] when no port is free or the range
/// is empty; [`Error::Io`] for other socket failures.
pub fn bind_udp(cfg: &SocketConfig, start_hint: u16) -> Result<(Socket, SocketAddr)> {
    if cfg.port_min == 0 || cfg.port_min > cfg.port_max {
        return Err(Error::PortRangeExhausted {
            min: cfg.port_min,
            max: cfg.port_max,
        });
    }
    let span = (cfg.port_max - cfg.port_min) as u32 + 1;
    for i in 0..span {
        let port = cfg.port_min + ((start_hint as u32 + i) % span) as u16;
        let addr = SocketAddr::new(cfg.bind_ip, port);
        let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        socket.set_nonblocking(true)?;
        // Buffer sizes are best effort: the kernel clamps them to rmem_max/wmem_max.
        let _ = socket.set_recv_buffer_size(cfg.recv_buffer);
        let _ = socket.set_send_buffer_size(cfg.send_buffer);
        // Best effort: without them a datagram's arrival is when the loop
        // reads it.
        let _ = enable_rx_timestamps(&socket);
        match socket.bind(&addr.into()) {
            Ok(()) => return Ok((socket, addr)),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
            Err(e) => return Err(Error::Io(e)),
        }
    }
    Err(Error::PortRangeExhausted {
        min: cfg.port_min,
        max: cfg.port_max,
    })
}

/// A libc return code as a result: negative is the thread's `errno`.
pub(crate) fn cvt(rc: libc::c_int) -> std::io::Result<libc::c_int> {
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Raises this process's open-file limit (`RLIMIT_NOFILE`) towards `need`
/// files, as servers with many sockets do at start: the soft limit up to
/// the hard one, and the hard one too when the process may (root with
/// `CAP_SYS_RESOURCE`). Returns the soft limit now in force, which is below
/// `need` when the hard limit is and cannot be raised.
///
/// Errors: `getrlimit(2)` failing.
pub fn raise_fd_limit(need: u64) -> std::io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if lim.rlim_cur >= need {
        return Ok(lim.rlim_cur);
    }
    let hard = lim.rlim_max;
    // First the hard limit too; without the privilege, up to it.
    for max in [hard.max(need), hard] {
        let want = libc::rlimit {
            rlim_cur: need.min(max),
            rlim_max: max,
        };
        // SAFETY: setrlimit reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } == 0 {
            return Ok(want.rlim_cur);
        }
    }
    Ok(lim.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(min: u16, max: u16) -> SocketConfig {
        SocketConfig {
            port_min: min,
            port_max: max,
            ..SocketConfig::default()
        }
    }

    #[test]
    fn skips_ports_in_use_and_reports_exhaustion() {
        // Find two adjacent free ports by binding an ephemeral one first.
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let port = probe.local_addr().expect("addr").port();
        drop(probe);
        let (min, max) = if port < 65000 {
            (port, port + 1)
        } else {
            (port - 1, port)
        };
        let held = std::net::UdpSocket::bind(("127.0.0.1", min));
        let (_s, addr) = bind_udp(&cfg(min, max), 0).expect("a free port");
        if held.is_ok() {
            assert_eq!(addr.port(), max, "the port in use was skipped");
            assert!(matches!(
                bind_udp(&cfg(min, max), 0),
                Err(Error::PortRangeExhausted { .. })
            ));
        }
    }

    #[test]
    fn empty_range_is_an_error_not_a_panic() {
        assert!(matches!(
            bind_udp(&cfg(10, 9), 0),
            Err(Error::PortRangeExhausted { .. })
        ));
        assert!(matches!(
            bind_udp(&cfg(0, 0), 0),
            Err(Error::PortRangeExhausted { .. })
        ));
    }
}
