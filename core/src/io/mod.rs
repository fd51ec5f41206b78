//! The only code that touches sockets: binding a room's UDP socket from a
//! port range with socket2 (RFC-free plumbing; see DESIGN §6), and the
//! per-core loop's two [`Driver`]s: [`epoll`] and [`uring`].

pub mod epoll;
pub mod uring;

use std::time::Duration;

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
    fn poll(
        &mut self,
        timeout: Option<Duration>,
        on: &mut dyn FnMut(usize, SocketAddr, &mut [u8]),
    ) -> std::io::Result<()>;
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
