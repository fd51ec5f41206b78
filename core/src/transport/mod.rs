//! WebRtcTransport: one peer's ICE-lite + DTLS + SRTP state, sans-IO.
//!
//! Feed it datagrams with [`WebRtcTransport::handle_datagram`] and time with
//! [`WebRtcTransport::handle_timeout`]; take datagrams to send with
//! [`WebRtcTransport::poll_transmit`] after each call, and call
//! `handle_timeout` no later than [`WebRtcTransport::poll_timeout`].

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::proto::dcep::ChannelParams;
use crate::proto::demux::{PacketClass, classify};
use crate::proto::dtls::{Certificate, DtlsEndpoint, DtlsError, DtlsRole, Fingerprint};
use crate::proto::sctp::{DataChannels, DataEvent, DataSendError, SctpConfig};
use crate::proto::srtp::{SrtpBackend, SrtpError, SrtpSession};
use crate::proto::stun;
use crate::stats::DropReason;

pub mod direct;
pub mod pipe;
pub mod relay;
pub mod transmit;

pub use direct::{DirectTransport, Tap, Tapped};
pub use pipe::{PIPE_EXTENSIONS, PipePacket, PipePeer, PipeTarget, PipeTransport};
pub use relay::{RelayCounters, RelayPeer};
pub use transmit::{Datagram, Outbox, SendOutcome, Transmit};

/// A Router's transport: a peer's [`WebRtcTransport`], or one end of a
/// [`PipeTransport`] to the room's Router on another worker or node.
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "a WebRtcTransport is read for every forwarded copy: kept inline, not behind a Box; pipe ends are few (one per other worker of a spread room)"
)]
pub enum Transport {
    /// A browser or other WebRTC peer.
    WebRtc(WebRtcTransport),
    /// A pipe to another Router of the room.
    Pipe(PipeTransport),
    /// No network: the control plane hands its packets in (an ingest),
    /// or its consumers' go to a recording.
    Direct(DirectTransport),
}

impl Transport {
    /// The WebRtcTransport, if it is one.
    pub fn as_webrtc(&self) -> Option<&WebRtcTransport> {
        match self {
            Self::WebRtc(t) => Some(t),
            Self::Pipe(_) | Self::Direct(_) => None,
        }
    }

    /// The WebRtcTransport, mutably, if it is one.
    pub fn as_webrtc_mut(&mut self) -> Option<&mut WebRtcTransport> {
        match self {
            Self::WebRtc(t) => Some(t),
            Self::Pipe(_) | Self::Direct(_) => None,
        }
    }

    /// Whether it is a pipe end.
    pub fn is_pipe(&self) -> bool {
        matches!(self, Self::Pipe(_))
    }

    /// Whether it is a direct transport (its packets come from the
    /// control plane).
    pub fn is_direct(&self) -> bool {
        matches!(self, Self::Direct(_))
    }

    /// Whether it is a relay: a pipe end connected to another node.
    pub fn is_relay(&self) -> bool {
        matches!(self, Self::Pipe(p) if p.relay_counters().is_some())
    }

    /// Whether media may flow: ICE and DTLS done, or the pipe connected.
    pub fn is_connected(&self) -> bool {
        match self {
            Self::WebRtc(t) => t.is_connected(),
            Self::Pipe(p) => p.is_connected(),
            Self::Direct(d) => d.is_connected(),
        }
    }

    /// When [`Transport::handle_timeout`] is due; a pipe has no timer.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Self::WebRtc(t) => t.poll_timeout(),
            Self::Pipe(_) | Self::Direct(_) => None,
        }
    }

    /// Runs the transport's timers (ICE, DTLS, consent).
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Self::WebRtc(t) = self {
            t.handle_timeout(now);
        }
    }

    /// Next datagram of its own (STUN, DTLS) to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        match self {
            Self::WebRtc(t) => t.poll_transmit(),
            Self::Pipe(_) | Self::Direct(_) => None,
        }
    }

    /// Next state change.
    pub fn poll_event(&mut self) -> Option<TransportEvent> {
        match self {
            Self::WebRtc(t) => t.poll_event(),
            Self::Pipe(p) => p.poll_event(),
            Self::Direct(d) => d.poll_event(),
        }
    }

    /// Closes it; emits [`TransportEvent::Closed`] once.
    pub fn close(&mut self, reason: CloseReason) {
        match self {
            Self::WebRtc(t) => t.close(reason),
            Self::Pipe(p) => p.close(reason),
            Self::Direct(d) => d.close(reason),
        }
    }

    /// Sends the plain RTP packet `plain`: SRTP-protected into `buf` and
    /// queued as a datagram, or copied into `buf` for the pipe. Returns its
    /// length as sent (bytes), or `None` when it cannot be sent yet.
    /// A recording's direct transport hands it to its tap, stamped `now`.
    pub fn send_rtp(
        &mut self,
        now: Instant,
        plain: &[u8],
        buf: Vec<u8>,
        out: &mut Outbox,
    ) -> Option<usize> {
        match self {
            Self::WebRtc(t) => {
                let tx = t.protect_rtp(plain, buf)?;
                let len = tx.data.len();
                out.transmits.push_back(tx);
                Some(len)
            }
            Self::Pipe(p) => p.send_rtp(plain, buf, out),
            // Nothing is sent to an ingest; a recording's is tapped.
            Self::Direct(d) => d.send_rtp(now, plain, buf),
        }
    }

    /// Sends the plain compound RTCP packet `rtcp` (SRTCP on a
    /// WebRtcTransport). Returns true when it was queued.
    pub fn send_rtcp(&mut self, rtcp: &[u8], out: &mut Outbox) -> bool {
        match self {
            Self::WebRtc(t) => match t.protect_rtcp(rtcp) {
                Some(tx) => {
                    out.transmits.push_back(tx);
                    true
                }
                None => false,
            },
            Self::Pipe(p) => p.send_rtcp(rtcp, out),
            // An ingest's keyframe requests are answered from the
            // Router's cache, and its reports have no one to go to; a
            // recording's sender reports are tapped.
            Self::Direct(d) => d.is_tapped() && d.send_rtcp(rtcp),
        }
    }

    /// Handles one datagram from `from` on the Router's socket: a peer's
    /// (see [`WebRtcTransport::handle_datagram`]) or a relay's
    /// ([`PipeTransport::handle_datagram`]).
    ///
    /// Errors: why it was dropped.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: &mut [u8],
    ) -> Result<Received, DropReason> {
        match self {
            Self::WebRtc(t) => t.handle_datagram(now, from, data),
            Self::Pipe(p) => p.handle_datagram(from, data),
            // A direct transport has no address: nothing is routed to it.
            Self::Direct(_) => Err(DropReason::UnknownAddress),
        }
    }
}

/// What the control plane tells a transport (from the SDP exchange).
#[derive(Debug, Clone)]
pub struct TransportParams {
    /// Our ICE ufrag (`a=ice-ufrag` of our SDP), 4–256 chars (RFC 8839 §5.4).
    pub local_ufrag: String,
    /// Our ICE password (`a=ice-pwd`), 22–256 chars.
    pub local_pwd: String,
    /// SHA-256 fingerprint of the peer's DTLS certificate (`a=fingerprint`).
    pub remote_fingerprint: Fingerprint,
    /// Our DTLS role: `Server` when we answered `a=setup:passive`.
    pub dtls_role: DtlsRole,
    /// The peer's data channels: `Some` with its `a=max-message-size`,
    /// bytes (0: no limit; RFC 8841 §6.1 says 65,536 when absent), when
    /// its SDP has an `m=application … webrtc-datachannel` section we
    /// accepted; `None` when it has none.
    pub sctp_max_message_size: Option<usize>,
}

/// Timers of a transport.
#[derive(Debug, Clone, Copy)]
pub struct TransportTimeouts {
    /// No valid STUN request for this long closes a connected transport (RFC 7675 §5.1: 30 s).
    pub consent: Duration,
    /// ICE must select an address within this long of creation.
    pub ice: Duration,
    /// DTLS must complete within this long of ICE selection.
    pub dtls: Duration,
}

impl Default for TransportTimeouts {
    fn default() -> Self {
        Self {
            consent: Duration::from_secs(30),
            ice: Duration::from_secs(15),
            dtls: Duration::from_secs(15),
        }
    }
}

/// Why a transport closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// No valid consent check within the consent timeout (RFC 7675).
    ConsentExpired,
    /// No nominated ICE pair within the ICE timeout.
    IceTimeout,
    /// DTLS did not complete within the DTLS timeout.
    DtlsTimeout,
    /// DTLS failed (wrong fingerprint, alert, …), or its keys made no
    /// SRTP session.
    DtlsFailed(DtlsError),
    /// Closed by the control plane.
    Closed,
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ConsentExpired => f.write_str("ICE consent expired"),
            Self::IceTimeout => f.write_str("ICE did not complete in time"),
            Self::DtlsTimeout => f.write_str("DTLS did not complete in time"),
            Self::DtlsFailed(e) => write!(f, "DTLS failed: {e}"),
            Self::Closed => f.write_str("closed"),
        }
    }
}

/// State changes the router must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportEvent {
    /// ICE nominated `addr`: datagrams from it now belong to this transport.
    Selected(SocketAddr),
    /// ICE and DTLS are done; SRTP flows.
    Connected,
    /// The transport is dead and must be removed.
    Closed(CloseReason),
}

/// A received packet after demux and SRTP.
#[derive(Debug)]
pub enum Received {
    /// Handled internally (STUN, DTLS) — nothing for the router.
    Nothing,
    /// A decrypted RTP packet of this many bytes, now at the start of the
    /// datagram's buffer (decrypted in place).
    Rtp(usize),
    /// A decrypted compound RTCP packet of this many bytes, now at the start
    /// of the datagram's buffer.
    Rtcp(usize),
}

/// One peer's ICE-lite + DTLS + SRTP.
#[derive(Debug)]
pub struct WebRtcTransport {
    params: TransportParams,
    timeouts: TransportTimeouts,
    dtls: DtlsEndpoint,
    srtp: Option<SrtpSession>,
    srtp_backend: SrtpBackend,
    selected: Option<SocketAddr>,
    created: Instant,
    selected_at: Option<Instant>,
    last_consent: Instant,
    closed: Option<CloseReason>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<TransportEvent>,
    stun_buf: [u8; 128],
    /// Data channels (RFC 8831): made once DTLS is up, if negotiated.
    sctp: DataChannels,
    sctp_config: SctpConfig,
}

impl WebRtcTransport {
    /// Creates a transport at `now` with our `cert`.
    pub fn new(
        params: TransportParams,
        timeouts: TransportTimeouts,
        cert: &Certificate,
        dtls_config: Arc<dimpl::Config>,
        now: Instant,
    ) -> Self {
        let dtls = DtlsEndpoint::new(
            dtls_config,
            cert,
            params.dtls_role,
            params.remote_fingerprint,
            now,
        );
        Self {
            params,
            timeouts,
            dtls,
            srtp: None,
            srtp_backend: SrtpBackend::default(),
            selected: None,
            created: now,
            selected_at: None,
            last_consent: now,
            closed: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stun_buf: [0; 128],
            sctp: DataChannels::default(),
            sctp_config: SctpConfig::default(),
        }
    }

    /// Uses `config` for its data channels' SCTP association.
    pub fn with_sctp_config(mut self, config: SctpConfig) -> Self {
        self.sctp_config = config;
        self
    }

    /// Uses `backend` for the SRTP session made when DTLS completes.
    pub fn with_srtp_backend(mut self, backend: SrtpBackend) -> Self {
        self.srtp_backend = backend;
        self
    }

    /// Our ICE ufrag.
    pub fn local_ufrag(&self) -> &str {
        &self.params.local_ufrag
    }

    /// The nominated remote address, once ICE selected one.
    pub fn selected(&self) -> Option<SocketAddr> {
        self.selected
    }

    /// True when ICE and DTLS are done and SRTP keys are in place.
    pub fn is_connected(&self) -> bool {
        self.srtp.is_some() && self.closed.is_none()
    }

    /// True once closed for any reason.
    pub fn is_closed(&self) -> bool {
        self.closed.is_some()
    }

    /// Handles one datagram from `from`. The router calls this only for
    /// datagrams from the selected address, or for STUN whose USERNAME named
    /// our ufrag. SRTP and SRTCP are authenticated and decrypted in `data`
    /// itself: on [`Received::Rtp`]`(n)` or [`Received::Rtcp`]`(n)` the plain
    /// packet is `data[..n]`. Errors say why it was dropped (`data` may then
    /// hold anything).
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: &mut [u8],
    ) -> Result<Received, DropReason> {
        if self.closed.is_some() {
            return Err(DropReason::UnknownAddress);
        }
        match classify(data) {
            PacketClass::Stun => self.handle_stun(now, from, data).map(|_| Received::Nothing),
            _ if Some(from) != self.selected => Err(DropReason::UnknownAddress),
            PacketClass::Dtls => {
                self.dtls.handle_packet(now, data);
                self.after_dtls(now);
                if self.dtls.error().is_some() {
                    Err(DropReason::Dtls)
                } else {
                    Ok(Received::Nothing)
                }
            }
            PacketClass::Rtp => {
                let srtp = self.srtp.as_mut().ok_or(DropReason::NotConnected)?;
                srtp.unprotect_rtp_in_place(data)
                    .map(Received::Rtp)
                    .map_err(srtp_drop)
            }
            PacketClass::Rtcp => {
                let srtp = self.srtp.as_mut().ok_or(DropReason::NotConnected)?;
                srtp.unprotect_rtcp_in_place(data)
                    .map(Received::Rtcp)
                    .map_err(|e| match srtp_drop(e) {
                        DropReason::MalformedRtp => DropReason::MalformedRtcp,
                        r => r,
                    })
            }
            PacketClass::Unknown => Err(DropReason::UnknownProtocol),
        }
    }

    fn handle_stun(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: &[u8],
    ) -> Result<(), DropReason> {
        let req =
            stun::verify_binding_request(data, &self.params.local_ufrag, &self.params.local_pwd)
                .map_err(|_| DropReason::BadStun)?;
        if Some(from) == self.selected || req.use_candidate {
            self.last_consent = now;
        }
        if req.use_candidate && self.selected != Some(from) {
            self.selected = Some(from);
            self.selected_at.get_or_insert(now);
            self.events.push_back(TransportEvent::Selected(from));
            self.flush_dtls();
        }
        let n = stun::encode_binding_success(
            req.transaction_id,
            from,
            &self.params.local_pwd,
            &mut self.stun_buf,
        )
        .map_err(|_| DropReason::BadStun)?;
        self.transmits.push_back(Transmit {
            dest: from,
            data: self.stun_buf[..n].to_vec(),
        });
        Ok(())
    }

    fn after_dtls(&mut self, now: Instant) {
        if let Some(e) = self.dtls.error() {
            let reason = CloseReason::DtlsFailed(e.clone());
            self.close(reason);
            return;
        }
        self.flush_dtls();
        if self.srtp.is_some() {
            self.sctp.feed(now, &mut self.dtls);
            self.flush_dtls();
        }
        if self.srtp.is_none()
            && let Some(keys) = self.dtls.take_keys()
        {
            let is_client = self.params.dtls_role == DtlsRole::Client;
            match SrtpSession::with_backend(
                self.srtp_backend,
                keys.profile,
                &keys.material,
                is_client,
            ) {
                Ok(s) => {
                    self.srtp = Some(s);
                    self.events.push_back(TransportEvent::Connected);
                    if let Some(max) = self.params.sctp_max_message_size {
                        // With the records that came with the handshake's
                        // last flight.
                        self.sctp
                            .start(now, is_client, max, self.sctp_config, &mut self.dtls);
                        self.flush_dtls();
                    }
                }
                Err(e) => self.close(CloseReason::DtlsFailed(e.into())),
            }
        }
    }

    fn flush_dtls(&mut self) {
        let Some(dest) = self.selected else { return };
        while let Some(p) = self.dtls.poll_transmit() {
            self.transmits.push_back(Transmit {
                dest,
                data: p.to_vec(),
            });
        }
    }

    /// Advances timers: DTLS retransmission, ICE/DTLS deadlines, consent.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed.is_some() {
            return;
        }
        if self.selected.is_none() {
            if now >= self.created + self.timeouts.ice {
                self.close(CloseReason::IceTimeout);
            }
            return;
        }
        if now >= self.last_consent + self.timeouts.consent {
            self.close(CloseReason::ConsentExpired);
            return;
        }
        if self.srtp.is_none() {
            if let Some(at) = self.selected_at
                && now >= at + self.timeouts.dtls
            {
                self.close(CloseReason::DtlsTimeout);
                return;
            }
            self.dtls.handle_timeout(now);
            self.after_dtls(now);
        } else {
            self.sctp.handle_timeout(now, &mut self.dtls);
            self.flush_dtls();
        }
    }

    /// The latest instant by which [`WebRtcTransport::handle_timeout`] must be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed.is_some() {
            return None;
        }
        let Some(at) = self.selected_at else {
            return Some(self.created + self.timeouts.ice);
        };
        let mut t = self.last_consent + self.timeouts.consent;
        if self.srtp.is_none() {
            t = t.min(at + self.timeouts.dtls);
            if let Some(d) = self.dtls.poll_timeout() {
                t = t.min(d);
            }
        } else if let Some(d) = self.sctp.poll_timeout() {
            t = t.min(d);
        }
        Some(t)
    }

    /// Closes the transport; emits [`TransportEvent::Closed`] once.
    pub fn close(&mut self, reason: CloseReason) {
        if self.closed.is_none() {
            self.closed = Some(reason.clone());
            self.srtp = None;
            self.sctp.abort();
            self.events.push_back(TransportEvent::Closed(reason));
        }
    }

    /// Next datagram to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Next state change.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<TransportEvent> {
        self.events.pop_front()
    }

    /// Next data-channel event (channels the peer opened, their
    /// messages, closes), once the association is up.
    pub fn poll_data_event(&mut self) -> Option<DataEvent> {
        self.sctp.poll_event()
    }

    /// True once the peer's SCTP association is up.
    pub fn data_connected(&self) -> bool {
        self.sctp.is_connected()
    }

    /// Opens a data channel to the peer (RFC 8832); returns its stream id.
    ///
    /// Errors: [`DataSendError`].
    pub fn open_data_channel(
        &mut self,
        now: Instant,
        params: ChannelParams,
    ) -> Result<u16, DataSendError> {
        let r = self.sctp.open(now, params, &mut self.dtls);
        self.flush_dtls();
        r
    }

    /// Queues one message on our channel `stream` to the peer.
    ///
    /// Errors: [`DataSendError`] (nothing was queued).
    pub fn send_data(
        &mut self,
        now: Instant,
        stream: u16,
        ppid: u32,
        data: Vec<u8>,
    ) -> Result<(), DataSendError> {
        let r = self.sctp.send(now, stream, ppid, data, &mut self.dtls);
        self.flush_dtls();
        r
    }

    /// Closes data channel `stream` (the peer's or ours).
    pub fn close_data_channel(&mut self, now: Instant, stream: u16) {
        self.sctp.close(now, stream, &mut self.dtls);
        self.flush_dtls();
    }

    /// Protects a plain RTP packet for sending to this peer. `None` when not
    /// connected (no RTP is sent before ICE and DTLS complete) or on error.
    pub fn protect_rtp(&mut self, rtp: &[u8], mut buf: Vec<u8>) -> Option<Transmit> {
        let dest = self.selected?;
        self.srtp.as_mut()?.protect_rtp_into(rtp, &mut buf).ok()?;
        Some(Transmit { dest, data: buf })
    }

    /// Protects a plain compound RTCP packet for sending to this peer.
    pub fn protect_rtcp(&mut self, rtcp: &[u8]) -> Option<Transmit> {
        let dest = self.selected?;
        let data = self.srtp.as_mut()?.protect_rtcp(rtcp).ok()?.to_vec();
        Some(Transmit { dest, data })
    }
}

pub(crate) fn srtp_drop(e: SrtpError) -> DropReason {
    match e {
        SrtpError::Auth => DropReason::SrtpAuth,
        SrtpError::Replay => DropReason::Replay,
        _ => DropReason::MalformedRtp,
    }
}
