//! WebRtcTransport: one peer's ICE-lite + DTLS + SRTP state (and its data
//! channels' SCTP association), sans-IO.
//!
//! Feed it datagrams with [`WebRtcTransport::handle_datagram`] (or ICE-TCP
//! frames with [`WebRtcTransport::handle_tcp_frame`]) and time with
//! [`WebRtcTransport::handle_timeout`]; take datagrams to send with
//! [`WebRtcTransport::poll_transmit`] after each call, and call
//! `handle_timeout` no later than [`WebRtcTransport::poll_timeout`].

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use super::{
    CloseReason, Path, Received, Transmit, TransportEvent, TransportParams, TransportTimeouts,
    srtp_drop,
};
use crate::ids::TcpConnId;
use crate::proto::dcep::ChannelParams;
use crate::proto::demux::{PacketClass, classify};
use crate::proto::dtls::{Certificate, DtlsEndpoint, DtlsRole};
use crate::proto::sctp::{DataChannels, DataEvent, DataSendError, SctpConfig};
use crate::proto::srtp::{SrtpBackend, SrtpSession};
use crate::proto::stun;
use crate::stats::DropReason;

/// Nominated paths a transport remembers.
const NOMINATED_MAX: usize = 4;

/// One peer's ICE-lite + DTLS + SRTP.
#[derive(Debug)]
pub struct WebRtcTransport {
    params: TransportParams,
    timeouts: TransportTimeouts,
    dtls: DtlsEndpoint,
    srtp: Option<SrtpSession>,
    srtp_backend: SrtpBackend,
    selected: Option<Path>,
    /// Paths the peer nominated (USE-CANDIDATE), the newest last, at most
    /// [`NOMINATED_MAX`]: DTLS or media arriving on one of them makes it
    /// the selected one, since the controlling agent sends on the pair it
    /// chose (RFC 8445 §8.1.1), and a peer may nominate a UDP and a TCP pair
    /// and use either.
    nominated: Vec<Path>,
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
            nominated: Vec::new(),
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
        self.selected.map(|p| p.addr)
    }

    /// The nominated path (UDP, or an ICE-TCP connection), once ICE
    /// selected one.
    pub fn selected_path(&self) -> Option<Path> {
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
        self.handle_on(now, Path::udp(from), data)
    }

    /// [`WebRtcTransport::handle_datagram`] for one RFC 4571 frame of
    /// ICE-TCP connection `conn` from `from`: the connection is one more
    /// path for this transport (RFC 6544), selected like a UDP address.
    ///
    /// Errors: why it was dropped.
    pub fn handle_tcp_frame(
        &mut self,
        now: Instant,
        conn: TcpConnId,
        from: SocketAddr,
        data: &mut [u8],
    ) -> Result<Received, DropReason> {
        self.handle_on(
            now,
            Path {
                addr: from,
                tcp: Some(conn),
            },
            data,
        )
    }

    pub(super) fn handle_on(
        &mut self,
        now: Instant,
        from: Path,
        data: &mut [u8],
    ) -> Result<Received, DropReason> {
        if self.closed.is_some() {
            return Err(DropReason::UnknownAddress);
        }
        match classify(data) {
            PacketClass::Stun => self.handle_stun(now, from, data).map(|_| Received::Nothing),
            _ if Some(from) != self.selected && !self.follow(from) => {
                Err(DropReason::UnknownAddress)
            }
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

    fn handle_stun(&mut self, now: Instant, from: Path, data: &[u8]) -> Result<(), DropReason> {
        let req =
            stun::verify_binding_request(data, &self.params.local_ufrag, &self.params.local_pwd)
                .map_err(|_| DropReason::BadStun)?;
        if Some(from) == self.selected || req.use_candidate {
            self.last_consent = now;
        }
        if req.use_candidate {
            if !self.nominated.contains(&from) {
                if self.nominated.len() == NOMINATED_MAX {
                    self.nominated.remove(0);
                }
                self.nominated.push(from);
            }
            if self.selected != Some(from) {
                self.selected_at.get_or_insert(now);
                self.select(from);
            }
        }
        let n = stun::encode_binding_success(
            req.transaction_id,
            from.addr,
            &self.params.local_pwd,
            &mut self.stun_buf,
        )
        .map_err(|_| DropReason::BadStun)?;
        self.transmits
            .push_back(from.transmit(self.stun_buf[..n].to_vec()));
        Ok(())
    }

    /// Makes `path` the one we send on.
    fn select(&mut self, path: Path) {
        self.selected = Some(path);
        self.events.push_back(TransportEvent::Selected(path));
        self.flush_dtls();
    }

    /// DTLS or media from `from`, not the selected path: the peer uses it,
    /// so it becomes the selected path if the peer nominated it.
    fn follow(&mut self, from: Path) -> bool {
        if !self.nominated.contains(&from) {
            return false;
        }
        self.select(from);
        true
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
            self.transmits.push_back(dest.transmit(p));
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

    /// Queues several messages `(stream, ppid, data)` on our channels to
    /// the peer at once (bundled into as few SCTP packets as fit); returns
    /// each one's result.
    pub fn send_data_many(
        &mut self,
        now: Instant,
        msgs: Vec<(u16, u32, Vec<u8>)>,
    ) -> Vec<Result<(), DataSendError>> {
        let r = self.sctp.send_many(now, msgs, &mut self.dtls);
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
        Some(dest.transmit(buf))
    }

    /// Protects a plain compound RTCP packet for sending to this peer.
    pub fn protect_rtcp(&mut self, rtcp: &[u8]) -> Option<Transmit> {
        let dest = self.selected?;
        let data = self.srtp.as_mut()?.protect_rtcp(rtcp).ok()?.to_vec();
        Some(dest.transmit(data))
    }
}
