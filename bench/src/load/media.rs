//! The media side of the generator: one thread, every client's UDP socket,
//! epoll for readiness (what a wake costs is what is ready, not the number
//! of sockets: 10,000 clients) and `recvmmsg` for batched receive. The
//! clients' timers are looked at only when the earliest is due.
//!
//! Publishers send paced synthetic VP8 RTP (and Opus-sized audio) carrying
//! a send timestamp; receivers count packets per SSRC from the clear RTP
//! header and decrypt 1 in `verify_every` to check the payload and measure
//! one-way latency.

#![expect(
    unsafe_code,
    reason = "the generator's own UDP IO: recvmmsg, epoll and sockaddr casts"
)]

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use sfu_core::client::{ClientPeer, ClientReceived};
use sfu_core::proto::dcep::{ChannelParams, PPID_STRING, Reliability};
use sfu_core::proto::dtls::Certificate;
use sfu_core::proto::rtcp::{self, RtcpIter};
use sfu_core::proto::rtp::RtpHeader;
use sfu_core::proto::sctp::DataEvent;

use super::signal::SignalEvent;

/// Magic bytes after the send timestamp in every synthetic payload.
const MAGIC: &[u8; 4] = b"SFUL";
/// Datagrams read per `recvmmsg` call.
const BATCH: usize = 32;
/// Video frames per second of the synthetic stream.
const FPS: u32 = 30;

/// Settings of the media loop.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// Epoch of the send timestamps.
    pub epoch: Instant,
    /// Measurement window start.
    pub window_start: Instant,
    /// Measurement window end; the loop stops here.
    pub end: Instant,
    /// Video bitrate per publisher, kbit/s.
    pub video_kbps: u32,
    /// Plain RTP video packet size, bytes.
    pub packet_size: usize,
    /// Send audio (50 pkt/s, 100-byte payloads).
    pub audio: bool,
    /// Decrypt and verify one in this many received packets.
    pub verify_every: u32,
    /// Server PIDs (every node of a spawned cluster) for the progress
    /// line's CPU figure.
    pub server_pids: Vec<u32>,
    /// Print a progress line a second (the first load process only).
    pub progress: bool,
    /// Data-channel messages per second each publisher sends on a `chat`
    /// channel of its own (0: none); with `video_kbps` 0, no video.
    pub datachannel_rate: f64,
}

/// One client as the media loop sees it.
#[derive(Debug)]
pub struct MediaClient {
    /// Index (matches the signaling side).
    pub idx: usize,
    /// Room index.
    pub room: usize,
    /// Publishes media.
    pub publisher: bool,
    /// Video SSRC.
    pub video_ssrc: u32,
    /// Audio SSRC.
    pub audio_ssrc: u32,
    /// Its socket (non-blocking).
    pub sock: UdpSocket,
    /// Runs data channels (its offer had a data section).
    pub data_channels: bool,
}

/// What one client measured.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct ClientStats {
    /// Completed ICE + DTLS.
    pub connected: bool,
    /// Failure reason, if it never connected.
    pub failure: Option<String>,
    /// Packets sent in the window (publishers).
    pub sent_window: u64,
    /// RTP packets received in the window.
    pub recv_window: u64,
    /// Packets decrypted and checked.
    pub verified: u64,
    /// Checked packets that failed.
    pub verify_failures: u64,
    /// Packets whose sequence number went backwards.
    pub reordered: u64,
    /// One-way latency of verified packets in the window, ms.
    pub latencies_ms: Vec<f64>,
    /// PLIs received (publishers).
    pub plis: u64,
    /// Packets sent since the start (publishers), for the progress line.
    pub sent_total: u64,
    /// RTP packets received since the start, for the progress line.
    pub recv_total: u64,
    /// Data-channel messages sent in the window.
    #[serde(default)]
    pub dc_sent_window: u64,
    /// Data-channel messages received in the window (the others' chat).
    #[serde(default)]
    pub dc_recv_window: u64,
}

struct State {
    c: MediaClient,
    peer: Option<ClientPeer>,
    server: Option<SocketAddr>,
    stats: ClientStats,
    next_video: Instant,
    next_audio: Instant,
    vseq: u16,
    aseq: u16,
    frame: u32,
    packet_in_frame: u32,
    keyframe: bool,
    last_seq: HashMap<u32, u16>,
    verify_count: u32,
    /// Our chat channel once open, when the next message is due, and its
    /// sequence number.
    dc_stream: Option<u16>,
    next_dc: Instant,
    dc_seq: u64,
}

pub(crate) fn to_socket_addr(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match ss.ss_family as i32 {
        libc::AF_INET => {
            // SAFETY: the family says this storage holds a sockaddr_in.
            let a = unsafe { &*(ss as *const _ as *const libc::sockaddr_in) };
            Some(SocketAddr::from((
                u32::from_be(a.sin_addr.s_addr).to_be_bytes(),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this storage holds a sockaddr_in6.
            let a = unsafe { &*(ss as *const _ as *const libc::sockaddr_in6) };
            Some(SocketAddr::from((
                a.sin6_addr.s6_addr,
                u16::from_be(a.sin6_port),
            )))
        }
        _ => None,
    }
}

/// Receive buffers for `recvmmsg`, reused for every call.
pub(crate) struct Batch {
    pub(crate) bufs: Vec<[u8; 2048]>,
    pub(crate) addrs: Vec<libc::sockaddr_storage>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

impl Batch {
    /// The length of datagram `i` of the last [`Self::recv`].
    pub(crate) fn datagram_len(&self, i: usize) -> usize {
        self.hdrs[i].msg_len as usize
    }

    pub(crate) fn new() -> Self {
        // SAFETY: all-zero sockaddr_storage / mmsghdr are valid empty values.
        let zeroed_addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        Self {
            bufs: vec![[0u8; 2048]; BATCH],
            addrs: vec![zeroed_addr; BATCH],
            iovs: Vec::with_capacity(BATCH),
            // SAFETY: as above.
            hdrs: (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect(),
        }
    }

    /// Reads up to BATCH datagrams without blocking; returns how many.
    pub(crate) fn recv(&mut self, fd: i32) -> usize {
        self.iovs.clear();
        for b in &mut self.bufs {
            self.iovs.push(libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: b.len(),
            });
        }
        for i in 0..BATCH {
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
            h.msg_iov = &mut self.iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            h.msg_flags = 0;
            self.hdrs[i].msg_len = 0;
        }
        // SAFETY: every header points at live buffers of this struct, sized as declared.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        n.max(0) as usize
    }
}

/// An epoll set of every client socket, each registered with its index.
struct Poller {
    fd: std::os::fd::OwnedFd,
}

impl Poller {
    fn new(socks: impl Iterator<Item = i32>) -> std::io::Result<Self> {
        use std::os::fd::FromRawFd;
        // SAFETY: plain system call; the descriptor is owned below.
        let raw = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if raw < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor nobody else owns.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) };
        for (i, sock) in socks.enumerate() {
            let mut ev = libc::epoll_event {
                events: libc::EPOLLIN as u32,
                u64: i as u64,
            };
            // SAFETY: both descriptors are live; `ev` outlives the call.
            if unsafe { libc::epoll_ctl(raw, libc::EPOLL_CTL_ADD, sock, &mut ev) } < 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(Self { fd })
    }

    /// Waits up to `timeout_ms` for readable sockets; fills `out` and
    /// returns how many (0 on a timeout or an interrupted wait).
    fn wait(&self, out: &mut [libc::epoll_event], timeout_ms: i32) -> usize {
        // SAFETY: `out` is a live array of that many events.
        let n = unsafe {
            libc::epoll_wait(
                self.fd.as_raw_fd(),
                out.as_mut_ptr(),
                out.len() as i32,
                timeout_ms,
            )
        };
        n.max(0) as usize
    }
}

fn synthetic_payload(
    out: &mut Vec<u8>,
    epoch: Instant,
    first_of_frame: bool,
    keyframe: bool,
    len: usize,
) {
    // VP8 payload descriptor (RFC 7741 §4.2): S bit on a frame's first packet;
    // then the VP8 payload header's P bit (0 = keyframe, RFC 7741 §4.3).
    out.push(if first_of_frame { 0x10 } else { 0x00 });
    out.push(if keyframe { 0x00 } else { 0x01 });
    out.extend_from_slice(&(epoch.elapsed().as_nanos() as u64).to_be_bytes());
    out.extend_from_slice(MAGIC);
    if out.len() < len {
        out.resize(len, 0x5a);
    }
}

/// Runs the media loop until `cfg.end`; returns each client's figures.
pub fn run(
    clients: Vec<MediaClient>,
    events: Receiver<SignalEvent>,
    cert: &Certificate,
    cfg: &MediaConfig,
) -> Vec<ClientStats> {
    let video_pps = (cfg.video_kbps as f64 * 1000.0 / 8.0 / cfg.packet_size as f64).max(1.0);
    let video_interval = Duration::from_secs_f64(1.0 / video_pps);
    let packets_per_frame = (video_pps / FPS as f64).ceil().max(1.0) as u32;
    let audio_interval = Duration::from_millis(20);
    let now = Instant::now();
    let mut st: Vec<State> = clients
        .into_iter()
        .map(|c| State {
            c,
            peer: None,
            server: None,
            stats: ClientStats::default(),
            next_video: now,
            next_audio: now,
            vseq: rand::random(),
            aseq: rand::random(),
            frame: 0,
            packet_in_frame: 0,
            keyframe: true,
            last_seq: HashMap::new(),
            verify_count: 0,
            dc_stream: None,
            next_dc: now,
            dc_seq: 0,
        })
        .collect();
    let dc_interval =
        (cfg.datachannel_rate > 0.0).then(|| Duration::from_secs_f64(1.0 / cfg.datachannel_rate));
    let poller = match Poller::new(st.iter().map(|s| s.c.sock.as_raw_fd())) {
        Ok(p) => p,
        Err(e) => {
            for s in &mut st {
                s.stats.failure = Some(format!("epoll: {e}"));
            }
            return st.into_iter().map(|s| s.stats).collect();
        }
    };
    let mut ready: Vec<libc::epoll_event> = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    // When the clients' timers are next due (pacing, ICE, DTLS, RTCP).
    let mut next_scan = now;
    let mut batch = Batch::new();
    let mut pkt = Vec::with_capacity(2048);
    let mut next_progress = now + Duration::from_secs(1);
    let mut last_expected_basis: Vec<(u64, u64)> = vec![(0, 0); st.len()];
    let (mut last_recv, mut last_sent, mut last_cpu) = (0u64, 0u64, cpu_of(&cfg.server_pids));
    let (mut total_recv, mut total_sent) = (0u64, 0u64);
    let started = now;
    let dtls_config = sfu_core::proto::dtls::default_config();

    loop {
        let now = Instant::now();
        if now >= cfg.end {
            break;
        }
        let mut scan = now >= next_scan;
        while let Ok(ev) = events.try_recv() {
            scan = true;
            match ev {
                SignalEvent::Ready { idx, params } => {
                    if let Some(s) = st.iter_mut().find(|s| s.c.idx == idx) {
                        s.server = Some(params.server);
                        let peer = ClientPeer::new(params, cert, dtls_config.clone(), now);
                        s.peer = Some(if s.c.data_channels {
                            peer.with_data_channels()
                        } else {
                            peer
                        });
                    }
                }
                SignalEvent::Failed { idx, reason } => {
                    if let Some(s) = st.iter_mut().find(|s| s.c.idx == idx) {
                        s.stats.failure = Some(reason);
                    }
                }
            }
        }
        let in_window = now >= cfg.window_start;
        let mut wake = cfg.end.min(next_progress);
        for s in st.iter_mut().filter(|_| scan) {
            let Some(peer) = s.peer.as_mut() else {
                continue;
            };
            if peer.poll_timeout() <= now {
                peer.handle_timeout(now);
            }
            let connected = peer.is_connected();
            if let Some(every) = dc_interval.filter(|_| connected && s.c.publisher) {
                send_chat(s, now, every, in_window);
                wake = wake.min(s.next_dc);
            }
            let Some(peer) = s.peer.as_mut() else {
                continue;
            };
            if connected {
                s.stats.connected = true;
                if s.c.publisher && cfg.video_kbps > 0 {
                    while s.next_video <= now {
                        let first = s.packet_in_frame == 0;
                        let last = s.packet_in_frame + 1 == packets_per_frame;
                        pkt.clear();
                        pkt.extend_from_slice(&[0x80, if last { 0x80 | 96 } else { 96 }]);
                        pkt.extend_from_slice(&s.vseq.to_be_bytes());
                        pkt.extend_from_slice(&(s.frame.wrapping_mul(90_000 / FPS)).to_be_bytes());
                        pkt.extend_from_slice(&s.c.video_ssrc.to_be_bytes());
                        synthetic_payload(
                            &mut pkt,
                            cfg.epoch,
                            first,
                            first && s.keyframe,
                            cfg.packet_size,
                        );
                        if first {
                            s.keyframe = false;
                        }
                        if peer.send_rtp(&pkt) {
                            s.stats.sent_total += 1;
                            if in_window {
                                s.stats.sent_window += 1;
                            }
                        }
                        total_sent += 1;
                        s.vseq = s.vseq.wrapping_add(1);
                        s.packet_in_frame += 1;
                        if last {
                            s.packet_in_frame = 0;
                            s.frame += 1;
                        }
                        s.next_video += video_interval;
                        if s.next_video + Duration::from_millis(200) < now {
                            s.next_video = now; // fell far behind: do not burst
                        }
                    }
                    wake = wake.min(s.next_video);
                }
                if s.c.publisher && cfg.audio {
                    while s.next_audio <= now {
                        pkt.clear();
                        pkt.extend_from_slice(&[0x80, 111]);
                        pkt.extend_from_slice(&s.aseq.to_be_bytes());
                        pkt.extend_from_slice(&(s.aseq as u32 * 960).to_be_bytes());
                        pkt.extend_from_slice(&s.c.audio_ssrc.to_be_bytes());
                        synthetic_payload(&mut pkt, cfg.epoch, true, false, 12 + 100);
                        if peer.send_rtp(&pkt) {
                            s.stats.sent_total += 1;
                            if in_window {
                                s.stats.sent_window += 1;
                            }
                        }
                        total_sent += 1;
                        s.aseq = s.aseq.wrapping_add(1);
                        s.next_audio += audio_interval;
                        if s.next_audio + Duration::from_millis(200) < now {
                            s.next_audio = now;
                        }
                    }
                    wake = wake.min(s.next_audio);
                }
            }
            if let Some(server) = s.server {
                while let Some(d) = peer.poll_transmit() {
                    let _ = s.c.sock.send_to(&d, server);
                }
            }
            wake = wake.min(peer.poll_timeout());
        }
        if scan {
            next_scan = wake;
        }
        let wake = wake.min(next_scan);

        let wait = wake.saturating_duration_since(Instant::now());
        // epoll waits in ms: round up, so a due timer is not spun on.
        let wait_ms = wait.as_micros().div_ceil(1000).min(1000) as i32;
        let n = poller.wait(&mut ready, wait_ms);
        for ev in &ready[..n] {
            let Some(s) = st.get_mut(ev.u64 as usize) else {
                continue;
            };
            let fd = s.c.sock.as_raw_fd();
            loop {
                let n = batch.recv(fd);
                let now = Instant::now();
                let in_window = now >= cfg.window_start;
                for k in 0..n {
                    let len = batch.hdrs[k].msg_len as usize;
                    let Some(from) = to_socket_addr(&batch.addrs[k]) else {
                        continue;
                    };
                    let data = &batch.bufs[k][..len];
                    total_recv += receive(s, from, data, in_window, cfg, now) as u64;
                }
                if n < BATCH {
                    break;
                }
            }
            if let (Some(peer), Some(server)) = (s.peer.as_mut(), s.server) {
                // Chat the others sent.
                let in_window = Instant::now() >= cfg.window_start;
                while let Some(ev) = peer.poll_data_event() {
                    if matches!(ev, DataEvent::Message { .. }) && in_window {
                        s.stats.dc_recv_window += 1;
                    }
                }
                while let Some(d) = peer.poll_transmit() {
                    let _ = s.c.sock.send_to(&d, server);
                }
                // What arrived may have set an earlier timer.
                next_scan = next_scan.min(peer.poll_timeout());
            }
        }

        if Instant::now() >= next_progress {
            next_progress += Duration::from_secs(1);
            let connected = st.iter().filter(|s| s.stats.connected).count();
            let failed = st.iter().filter(|s| s.stats.failure.is_some()).count();
            let cpu = cpu_of(&cfg.server_pids);
            let cpu_pct = match (cpu, last_cpu) {
                (Some(a), Some(b)) => format!("{:.0}%", (a - b) * 100.0),
                _ => "n/a".into(),
            };
            last_cpu = cpu;
            // Loss over the last second: what others' publishers sent, per connected receiver.
            let (mut expected, mut received) = (0u64, 0u64);
            for (i, s) in st.iter().enumerate() {
                let sent = s.stats.sent_total - last_expected_basis[i].0;
                let recv = s.stats.recv_total - last_expected_basis[i].1;
                last_expected_basis[i] = (s.stats.sent_total, s.stats.recv_total);
                received += recv;
                if s.c.publisher {
                    let receivers = st
                        .iter()
                        .filter(|o| o.c.room == s.c.room && o.c.idx != s.c.idx && o.stats.connected)
                        .count();
                    expected += sent * receivers as u64;
                }
            }
            let loss = if expected == 0 {
                0.0
            } else {
                (1.0 - received as f64 / expected as f64).max(0.0) * 100.0
            };
            if cfg.progress {
                eprintln!(
                    "t={:>4.0}s connected={}/{} failed={} pkt/s out={} in={} loss={:.2}% server_cpu={}",
                    started.elapsed().as_secs_f64(),
                    connected,
                    st.len(),
                    failed,
                    total_sent - last_sent,
                    total_recv - last_recv,
                    loss,
                    cpu_pct
                );
            }
            last_sent = total_sent;
            last_recv = total_recv;
        }
    }
    st.into_iter()
        .map(|mut s| {
            if !s.stats.connected && s.stats.failure.is_none() {
                s.stats.failure = Some(if s.peer.is_some() {
                    "ICE/DTLS did not complete before the end of the run".into()
                } else {
                    "no answer from signaling before the end of the run".into()
                });
            }
            s.stats
        })
        .collect()
}

/// Opens the client's `chat` channel once its association is up, then
/// sends the messages due at one per `every`.
fn send_chat(s: &mut State, now: Instant, every: Duration, in_window: bool) {
    let Some(peer) = s.peer.as_mut() else {
        return;
    };
    if !peer.data_connected() {
        return;
    }
    let stream = match s.dc_stream {
        Some(stream) => stream,
        None => {
            let chat = ChannelParams {
                label: "chat".into(),
                protocol: String::new(),
                ordered: true,
                reliability: Reliability::Reliable,
                priority: 256,
            };
            let Ok(stream) = peer.open_data_channel(now, chat) else {
                return;
            };
            s.next_dc = now;
            *s.dc_stream.insert(stream)
        }
    };
    while s.next_dc <= now {
        let text = format!("{{\"text\":\"load {} {}\"}}", s.c.idx, s.dc_seq);
        if peer
            .send_data(now, stream, PPID_STRING, text.into_bytes())
            .is_ok()
            && in_window
        {
            s.stats.dc_sent_window += 1;
        }
        s.dc_seq += 1;
        s.next_dc += every;
        if s.next_dc + Duration::from_millis(200) < now {
            s.next_dc = now; // fell far behind: do not burst
        }
    }
}

/// Handles one received datagram; returns 1 when it was an RTP packet.
fn receive(
    s: &mut State,
    from: SocketAddr,
    data: &[u8],
    in_window: bool,
    cfg: &MediaConfig,
    now: Instant,
) -> u8 {
    let Some(peer) = s.peer.as_mut() else {
        return 0;
    };
    let is_rtp =
        data.len() >= 12 && (128..=191).contains(&data[0]) && !(192..=223).contains(&data[1]);
    if is_rtp {
        let Some(h) = RtpHeader::parse(data) else {
            return 0;
        };
        if let Some(prev) = s.last_seq.insert(h.ssrc.0, h.seq)
            && (h.seq.wrapping_sub(prev) as i16) < 0
        {
            s.stats.reordered += 1;
        }
        if in_window {
            s.stats.recv_window += 1;
        }
        s.stats.recv_total += 1;
        s.verify_count += 1;
        if s.verify_count >= cfg.verify_every {
            s.verify_count = 0;
            s.stats.verified += 1;
            match peer.handle_datagram(now, from, data) {
                Ok(ClientReceived::Rtp(plain)) => {
                    let ok = RtpHeader::parse(&plain)
                        .and_then(|ph| plain.get(ph.header_len + 2..ph.header_len + 14));
                    match ok {
                        Some(p) if &p[8..12] == MAGIC => {
                            let mut ts = [0u8; 8];
                            ts.copy_from_slice(&p[..8]);
                            let sent = Duration::from_nanos(u64::from_be_bytes(ts));
                            let lat = now.saturating_duration_since(cfg.epoch + sent);
                            if in_window {
                                s.stats.latencies_ms.push(lat.as_secs_f64() * 1000.0);
                            }
                        }
                        _ => s.stats.verify_failures += 1,
                    }
                }
                _ => s.stats.verify_failures += 1,
            }
        }
        return 1;
    }
    if let Ok(ClientReceived::Rtcp(c)) = peer.handle_datagram(now, from, data) {
        for p in RtcpIter::new(&c) {
            if (p.pt == rtcp::PT_PSFB && (p.count_or_fmt == 1 || p.count_or_fmt == 4))
                && s.c.publisher
            {
                s.stats.plis += 1;
                s.keyframe = true;
            }
        }
    }
    0
}

/// CPU seconds of processes `pids`, summed; `None` when there are none or
/// one cannot be read.
fn cpu_of(pids: &[u32]) -> Option<f64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter()
        .map(|p| super::report::process_cpu_seconds(*p))
        .sum()
}
