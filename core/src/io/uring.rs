//! The io_uring driver (the `io-uring` crate, tokio-rs): [`RECVS_PER_SOCKET`]
//! `RecvMsg` requests stay outstanding on each room's socket, each into a
//! buffer of its own, re-armed as soon as its datagram is handed on; a
//! `Read` on the command eventfd wakes the loop; the wait's timeout goes in
//! the same `io_uring_enter` (`EXT_ARG`). Sends use `sendmmsg`
//! ([`super::epoll::SendBatch`]), which measured no worse than send SQEs
//! for our batch sizes and needs no buffer kept alive after the call.
//!
//! Memory safety: the kernel writes into a request's buffer until its
//! completion arrives. A deregistered socket's requests are cancelled (by
//! `user_data`) and its buffers are kept until every one of them has
//! completed; on drop, everything outstanding is cancelled and awaited, and
//! if that does not finish in time the buffers are leaked rather than freed.

use std::collections::HashMap;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use io_uring::types::{CancelBuilder, Fd, SubmitArgs, Timespec};
use io_uring::{IoUring, opcode};

use super::Waker;
use super::epoll::RECV_BUF;
use super::{Driver, from_storage};

/// Receive requests kept outstanding per socket (so at most this many
/// datagrams per socket are handled per loop iteration).
pub const RECVS_PER_SOCKET: usize = 32;
/// Submission queue entries.
const RING_ENTRIES: u32 = 1024;
/// `user_data` of the eventfd read.
const WAKER_UD: u64 = u64::MAX;
/// `user_data` of cancel requests (their completions are ignored).
const CANCEL_UD: u64 = u64::MAX - 1;
/// user_data of the poll on the watched descriptor ([`Driver::watch`]).
const WATCH_UD: u64 = u64::MAX - 2;

struct RecvSlot {
    buf: [u8; RECV_BUF],
    /// Control messages: the kernel receive timestamp.
    ctrl: [u64; super::CMSG_BUF / 8],
    addr: libc::sockaddr_storage,
    iov: libc::iovec,
    msg: libc::msghdr,
}

/// The receive requests of one socket.
struct SocketRecv {
    fd: RawFd,
    generation: u16,
    slots: Box<[RecvSlot]>,
    /// Requests submitted and not yet completed.
    pending: usize,
}

fn user_data(slot: usize, generation: u16, idx: usize) -> u64 {
    ((slot as u64) << 32) | (u64::from(generation) << 16) | idx as u64
}

fn split(ud: u64) -> (usize, u16, usize) {
    (
        (ud >> 32) as usize,
        ((ud >> 16) & 0xffff) as u16,
        (ud & 0xffff) as usize,
    )
}

/// Whether io_uring can be set up here: not refused by seccomp (EPERM),
/// not disabled by the administrator (`kernel.io_uring_disabled`, Linux
/// 6.6+: EPERM), present in the kernel (ENOSYS).
pub fn available() -> io::Result<()> {
    IoUring::new(8).map(|_| ())
}

/// The io_uring driver of one worker.
pub struct UringDriver {
    ring: IoUring,
    waker: Arc<Waker>,
    waker_buf: Box<u64>,
    waker_armed: bool,
    live: HashMap<usize, SocketRecv>,
    dying: Vec<(usize, SocketRecv)>,
    next_generation: u16,
    completions: Vec<(u64, i32)>,
    /// The watched descriptor, whether its poll is in the ring, and
    /// whether it fired since [`Driver::take_watched`].
    watched: Option<RawFd>,
    watch_armed: bool,
    watch_ready: bool,
}

impl std::fmt::Debug for UringDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UringDriver")
            .field("sockets", &self.live.len())
            .field("dying", &self.dying.len())
            .finish()
    }
}

impl UringDriver {
    /// A ring for one worker, woken by `waker`.
    ///
    /// Errors: `io_uring_setup` refused (seccomp or `kernel.io_uring_disabled`:
    /// EPERM; old kernel: ENOSYS).
    pub fn new(waker: Arc<Waker>) -> io::Result<Self> {
        available()?;
        Ok(Self {
            ring: IoUring::new(RING_ENTRIES)?,
            waker,
            waker_buf: Box::new(0),
            waker_armed: false,
            live: HashMap::new(),
            dying: Vec::new(),
            next_generation: 0,
            completions: Vec::with_capacity(1024),
            watched: None,
            watch_armed: false,
            watch_ready: false,
        })
    }

    /// Queues an SQE, submitting first when the queue is full.
    fn push(&mut self, sqe: &io_uring::squeue::Entry) {
        loop {
            // SAFETY: every SQE we push points into memory that stays valid
            // until its completion (buffers of `live`/`dying`, `waker_buf`).
            if unsafe { self.ring.submission().push(sqe) }.is_ok() {
                return;
            }
            if let Err(e) = self.ring.submit() {
                tracing::warn!(error = %e, "io_uring submit failed");
                return;
            }
        }
    }

    fn arm_recv(&mut self, slot: usize, idx: usize) {
        let Some(s) = self.live.get_mut(&slot) else {
            return;
        };
        let r = &mut s.slots[idx];
        r.iov = libc::iovec {
            iov_base: r.buf.as_mut_ptr().cast(),
            iov_len: RECV_BUF,
        };
        r.msg.msg_name = (&mut r.addr as *mut libc::sockaddr_storage).cast();
        r.msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
        r.msg.msg_iov = &mut r.iov;
        r.msg.msg_iovlen = 1;
        r.msg.msg_control = r.ctrl.as_mut_ptr().cast();
        r.msg.msg_controllen = super::CMSG_BUF;
        r.msg.msg_flags = 0;
        let sqe = opcode::RecvMsg::new(Fd(s.fd), &mut r.msg)
            .build()
            .user_data(user_data(slot, s.generation, idx));
        s.pending += 1;
        self.push(&sqe);
    }

    fn arm_waker(&mut self) {
        if self.waker_armed {
            return;
        }
        let sqe = opcode::Read::new(
            Fd(self.waker.raw_fd()),
            (&mut *self.waker_buf as *mut u64).cast(),
            8,
        )
        .build()
        .user_data(WAKER_UD);
        self.waker_armed = true;
        self.push(&sqe);
    }

    fn arm_watch(&mut self) {
        let Some(fd) = self.watched.filter(|_| !self.watch_armed) else {
            return;
        };
        // A one-shot poll: no buffer of ours for the kernel to hold.
        let sqe = opcode::PollAdd::new(Fd(fd), libc::POLLIN as u32)
            .build()
            .user_data(WATCH_UD);
        self.watch_armed = true;
        self.push(&sqe);
    }

    /// Records the completion of a dying socket's request; frees its
    /// buffers after the last one.
    fn retire(&mut self, slot: usize, generation: u16) {
        if let Some(i) = self
            .dying
            .iter()
            .position(|(s, r)| *s == slot && r.generation == generation)
        {
            let d = &mut self.dying[i].1;
            d.pending = d.pending.saturating_sub(1);
            if d.pending == 0 {
                self.dying.swap_remove(i);
            }
        }
    }
}

impl Driver for UringDriver {
    fn register(&mut self, slot: usize, sock: &socket2::Socket) -> io::Result<()> {
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1);
        let slots: Box<[RecvSlot]> = (0..RECVS_PER_SOCKET)
            .map(|_| RecvSlot {
                buf: [0; RECV_BUF],
                ctrl: [0; super::CMSG_BUF / 8],
                // SAFETY: all-zero is valid for these plain C structs.
                addr: unsafe { MaybeUninit::zeroed().assume_init() },
                iov: libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0,
                },
                // SAFETY: as above.
                msg: unsafe { MaybeUninit::zeroed().assume_init() },
            })
            .collect();
        self.live.insert(
            slot,
            SocketRecv {
                fd: sock.as_raw_fd(),
                generation,
                slots,
                pending: 0,
            },
        );
        for idx in 0..RECVS_PER_SOCKET {
            self.arm_recv(slot, idx);
        }
        self.ring.submit()?;
        Ok(())
    }

    fn watch(&mut self, fd: RawFd) -> io::Result<()> {
        self.watched = Some(fd);
        self.arm_watch();
        self.ring.submit()?;
        Ok(())
    }

    fn take_watched(&mut self) -> bool {
        std::mem::take(&mut self.watch_ready)
    }

    fn deregister(&mut self, slot: usize, _sock: &socket2::Socket) {
        let Some(s) = self.live.remove(&slot) else {
            return;
        };
        if s.pending == 0 {
            return;
        }
        for idx in 0..RECVS_PER_SOCKET {
            let sqe = opcode::AsyncCancel2::new(CancelBuilder::user_data(user_data(
                slot,
                s.generation,
                idx,
            )))
            .build()
            .user_data(CANCEL_UD);
            self.push(&sqe);
        }
        // Submitted now, while the socket is still open.
        let _ = self.ring.submit();
        self.dying.push((slot, s));
    }

    fn poll(
        &mut self,
        timeout: Option<Duration>,
        on: &mut super::OnDatagram<'_>,
    ) -> io::Result<()> {
        self.arm_waker();
        self.arm_watch();
        let r = match timeout {
            Some(d) if d.is_zero() => self.ring.submit(),
            Some(d) => {
                let ts = Timespec::new().sec(d.as_secs()).nsec(d.subsec_nanos());
                let args = SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(1, &args)
            }
            None => self.ring.submit_and_wait(1),
        };
        if let Err(e) = r
            && !matches!(
                e.raw_os_error(),
                Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY)
            )
        {
            return Err(e);
        }
        let clock = super::RxClock::now();
        self.completions.clear();
        self.completions
            .extend(self.ring.completion().map(|c| (c.user_data(), c.result())));
        let completions = std::mem::take(&mut self.completions);
        for &(ud, res) in &completions {
            match ud {
                WAKER_UD => self.waker_armed = false,
                CANCEL_UD => {}
                WATCH_UD => {
                    self.watch_armed = false;
                    self.watch_ready = true;
                }
                _ => {
                    let (slot, generation, idx) = split(ud);
                    let is_live = self
                        .live
                        .get(&slot)
                        .is_some_and(|s| s.generation == generation);
                    if !is_live {
                        self.retire(slot, generation);
                        continue;
                    }
                    if let Some(s) = self.live.get_mut(&slot) {
                        s.pending = s.pending.saturating_sub(1);
                        if res >= 0 && idx < s.slots.len() {
                            // Completed: the kernel no longer writes here until re-armed.
                            let r = &mut s.slots[idx];
                            if let Some(from) = from_storage(&r.addr) {
                                let n = (res as usize).min(RECV_BUF);
                                let at = clock.arrival(super::rx_timestamp_ns(&r.msg));
                                on(slot, from, at, &mut r.buf[..n]);
                            }
                        } else if res < 0 && res != -libc::ECANCELED {
                            tracing::debug!(slot, error = %io::Error::from_raw_os_error(-res), "io_uring receive failed");
                        }
                    }
                    // `on` may not deregister (only commands close rooms), so
                    // the socket is still live: take the next datagram.
                    if res != -libc::ECANCELED && idx < RECVS_PER_SOCKET {
                        self.arm_recv(slot, idx);
                    }
                }
            }
        }
        self.completions = completions;
        Ok(())
    }
}

impl Drop for UringDriver {
    fn drop(&mut self) {
        // Cancel everything and wait (bounded) for the kernel to let go of
        // our buffers before they are freed.
        let slots: Vec<usize> = self.live.keys().copied().collect();
        for slot in slots {
            if let Some(s) = self.live.remove(&slot) {
                self.dying.push((slot, s));
            }
        }
        let sqe = opcode::AsyncCancel2::new(CancelBuilder::any())
            .build()
            .user_data(CANCEL_UD);
        self.push(&sqe);
        let end = Instant::now() + Duration::from_secs(1);
        while (self.waker_armed || self.dying.iter().any(|(_, d)| d.pending > 0))
            && Instant::now() < end
        {
            if self.waker_armed {
                self.waker.wake();
            }
            let ts = Timespec::new().nsec(50_000_000);
            let args = SubmitArgs::new().timespec(&ts);
            let _ = self.ring.submitter().submit_with_args(1, &args);
            let done: Vec<u64> = self.ring.completion().map(|c| c.user_data()).collect();
            for ud in done {
                match ud {
                    WAKER_UD => self.waker_armed = false,
                    CANCEL_UD | WATCH_UD => {}
                    _ => {
                        let (slot, generation, _) = split(ud);
                        self.retire(slot, generation);
                    }
                }
            }
        }
        if self.waker_armed || !self.dying.is_empty() {
            tracing::error!(
                "io_uring requests still outstanding at shutdown: leaking their buffers"
            );
            std::mem::forget(std::mem::take(&mut self.dying));
            std::mem::forget(std::mem::replace(&mut self.waker_buf, Box::new(0)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::epoll::SendBatch;
    use std::net::UdpSocket;

    #[test]
    fn receives_batches_wakes_and_cancels_cleanly() {
        let waker = Arc::new(Waker::new().expect("eventfd"));
        let mut d = match UringDriver::new(waker.clone()) {
            Ok(d) => d,
            Err(e) => panic!("io_uring is required on this machine: {e}"),
        };
        let a = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let b = socket2::Socket::from(UdpSocket::bind("127.0.0.1:0").expect("bind"));
        b.set_nonblocking(true).expect("nonblocking");
        super::super::enable_rx_timestamps(&b).expect("SO_TIMESTAMPNS");
        let to = b.local_addr().expect("addr").as_socket().expect("inet");
        d.register(3, &b).expect("register");
        let sent_at = Instant::now();
        let payloads: Vec<Vec<u8>> = (0..100u8).map(|i| vec![i; 20 + i as usize]).collect();
        let items: Vec<_> = payloads.iter().map(|p| (to, p.as_slice())).collect();
        SendBatch::new(false).send(a.as_raw_fd(), &items, false);
        let mut got = Vec::new();
        let end = Instant::now() + Duration::from_secs(5);
        while got.len() < 100 && Instant::now() < end {
            d.poll(
                Some(Duration::from_millis(100)),
                &mut |slot, from, at, data| {
                    assert_eq!(slot, 3);
                    assert_eq!(from, a.local_addr().expect("addr"));
                    // The kernel's receive time, on the Instant clock.
                    let at = at.expect("a kernel receive timestamp");
                    assert!(at >= sent_at - Duration::from_millis(50) && at <= Instant::now());
                    got.push(data.to_vec());
                },
            )
            .expect("poll");
        }
        assert_eq!(got, payloads, "all 100 in order");
        // A wake-up ends a wait at once.
        waker.wake();
        let t0 = Instant::now();
        d.poll(Some(Duration::from_secs(5)), &mut |_, _, _, _| {})
            .expect("poll");
        assert!(t0.elapsed() < Duration::from_secs(2), "woken");
        // Deregistering cancels its receives; its buffers go once they completed.
        d.deregister(3, &b);
        drop(b);
        let end = Instant::now() + Duration::from_secs(5);
        while !d.dying.is_empty() && Instant::now() < end {
            d.poll(Some(Duration::from_millis(50)), &mut |_, _, _, _| {
                panic!("no datagram after close")
            })
            .expect("poll");
        }
        assert!(d.dying.is_empty(), "every cancelled receive completed");
    }
}
