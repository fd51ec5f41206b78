//! A client-role WebRTC peer built from the same protocol code as the
//! server (stun-rs requests, dimpl client, webrtc-srtp), sans-IO.
//!
//! Used by the scenario tests and the load generator. It speaks to one
//! remote address (the server's candidate): it sends connectivity checks as
//! the controlling agent with USE-CANDIDATE, runs DTLS as the client once a
//! check succeeded, then protects and unprotects RTP/RTCP.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::proto::dcep::ChannelParams;
use crate::proto::demux::{PacketClass, classify};
use crate::proto::dtls::{Certificate, DtlsEndpoint, DtlsRole, Fingerprint};
use crate::proto::sctp::{DataChannels, DataEvent, DataSendError, SctpConfig};
use crate::proto::srtp::{SrtpError, SrtpSession};
use crate::proto::stun;

/// Interval between connectivity checks before success, and consent
/// refreshes after (RFC 7675 §5.1 says 5 s ± 50 %; we use the low end).
pub const CHECK_INTERVAL: Duration = Duration::from_millis(2500);
/// Retransmission interval of an unanswered first check.
const FIRST_CHECK_RTO: Duration = Duration::from_millis(200);

/// What the client knows from the server's SDP.
#[derive(Debug, Clone)]
pub struct ClientParams {
    /// Our ufrag (we put it in our SDP).
    pub local_ufrag: String,
    /// Our ICE password (in our SDP): checks from a full-ICE server are
    /// verified with it and answered.
    pub local_pwd: String,
    /// Server's `a=ice-ufrag`.
    pub remote_ufrag: String,
    /// Server's `a=ice-pwd`.
    pub remote_pwd: String,
    /// Server's `a=fingerprint`.
    pub remote_fingerprint: Fingerprint,
    /// Server's host candidate.
    pub server: SocketAddr,
}

/// A packet received by the client.
#[derive(Debug)]
pub enum ClientReceived {
    /// Nothing for the application (STUN, DTLS).
    Nothing,
    /// Decrypted RTP.
    Rtp(Bytes),
    /// Decrypted RTCP.
    Rtcp(Bytes),
}

/// Why a received datagram was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// Not from the server address.
    UnknownSource,
    /// STUN response that did not verify.
    BadStun,
    /// SRTP failure.
    Srtp(SrtpError),
    /// Media before DTLS finished.
    NotConnected,
    /// Not a protocol we know.
    Unknown,
}

/// A client-role peer.
#[derive(Debug)]
pub struct ClientPeer {
    params: ClientParams,
    dtls: DtlsEndpoint,
    srtp: Option<SrtpSession>,
    ice_ok: bool,
    next_check: Instant,
    check_rto: Duration,
    pending_tid: Option<[u8; 12]>,
    out: VecDeque<Bytes>,
    tid_counter: u64,
    /// Data channels: negotiated (made once DTLS is up), and the association.
    data_channels: Option<SctpConfig>,
    sctp: DataChannels,
}

impl ClientPeer {
    /// Creates the peer with our certificate `cert`; it sends its first check
    /// on the first [`ClientPeer::handle_timeout`] (or right away via `poll_transmit`).
    pub fn new(
        params: ClientParams,
        cert: &Certificate,
        dtls_config: Arc<dimpl::Config>,
        now: Instant,
    ) -> Self {
        let dtls = DtlsEndpoint::new(
            dtls_config,
            cert,
            DtlsRole::Client,
            params.remote_fingerprint,
            now,
        );
        let mut p = Self {
            params,
            dtls,
            srtp: None,
            ice_ok: false,
            next_check: now,
            check_rto: FIRST_CHECK_RTO,
            pending_tid: None,
            out: VecDeque::new(),
            tid_counter: rand::random(),
            data_channels: None,
            sctp: DataChannels::default(),
        };
        p.handle_timeout(now);
        p
    }

    /// Runs data channels too (its SDP would have `m=application`): an SCTP
    /// association, started by us as the DTLS client once DTLS is up.
    pub fn with_data_channels(self) -> Self {
        self.with_sctp_config(SctpConfig::default())
    }

    /// [`ClientPeer::with_data_channels`] with other SCTP limits (a test
    /// client that sends more than a browser would).
    pub fn with_sctp_config(mut self, config: SctpConfig) -> Self {
        self.data_channels = Some(config);
        self
    }

    /// Next data-channel event (the server's channels, their messages).
    pub fn poll_data_event(&mut self) -> Option<DataEvent> {
        self.sctp.poll_event()
    }

    /// True once the SCTP association is up.
    pub fn data_connected(&self) -> bool {
        self.sctp.is_connected()
    }

    /// Opens a data channel (an even stream); returns its id.
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

    /// Sends a message on our channel `stream`.
    ///
    /// Errors: [`DataSendError`].
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

    /// Closes our data channel `stream`.
    pub fn close_data_channel(&mut self, now: Instant, stream: u16) {
        self.sctp.close(now, stream, &mut self.dtls);
        self.flush_dtls();
    }

    /// Sends raw bytes as one DTLS application-data record, as if they
    /// were an SCTP packet (for tests that feed the server garbage).
    pub fn send_raw_sctp(&mut self, data: &[u8]) {
        self.dtls.send_application_data(data);
        self.flush_dtls();
    }

    /// True when SRTP keys are in place.
    pub fn is_connected(&self) -> bool {
        self.srtp.is_some()
    }

    /// The DTLS failure, if any.
    pub fn dtls_error(&self) -> Option<String> {
        self.dtls.error().map(|e| e.to_string())
    }

    fn send_check(&mut self, now: Instant) {
        self.tid_counter = self.tid_counter.wrapping_add(1);
        let mut tid = [0u8; 12];
        tid[..8].copy_from_slice(&self.tid_counter.to_be_bytes());
        let mut buf = [0u8; 256];
        if let Ok(n) = stun::encode_binding_request(
            tid,
            &self.params.remote_ufrag,
            &self.params.local_ufrag,
            &self.params.remote_pwd,
            true,
            &mut buf,
        ) {
            self.out.push_back(Bytes::copy_from_slice(&buf[..n]));
            self.pending_tid = Some(tid);
        }
        if self.ice_ok {
            self.next_check = now + CHECK_INTERVAL;
        } else {
            self.next_check = now + self.check_rto;
            self.check_rto = (self.check_rto * 2).min(CHECK_INTERVAL);
        }
    }

    /// Handles one datagram from `from`.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: &[u8],
    ) -> Result<ClientReceived, ClientError> {
        if from != self.params.server {
            return Err(ClientError::UnknownSource);
        }
        match classify(data) {
            PacketClass::Stun if data.get(..2) == Some(&[0x00, 0x01]) => {
                // A check from a full-ICE server (RFC 8445 §7.3): verify and answer.
                let req = stun::verify_binding_request(
                    data,
                    &self.params.local_ufrag,
                    &self.params.local_pwd,
                )
                .map_err(|_| ClientError::BadStun)?;
                let mut buf = [0u8; 128];
                let n = stun::encode_binding_success(
                    req.transaction_id,
                    from,
                    &self.params.local_pwd,
                    &mut buf,
                )
                .map_err(|_| ClientError::BadStun)?;
                self.out.push_back(Bytes::copy_from_slice(&buf[..n]));
                Ok(ClientReceived::Nothing)
            }
            PacketClass::Stun => {
                let (tid, _) = stun::verify_binding_success(data, &self.params.remote_pwd)
                    .map_err(|_| ClientError::BadStun)?;
                if Some(tid) == self.pending_tid {
                    self.pending_tid = None;
                    if !self.ice_ok {
                        self.ice_ok = true;
                        self.next_check = now + CHECK_INTERVAL;
                        self.flush_dtls();
                    }
                }
                Ok(ClientReceived::Nothing)
            }
            PacketClass::Dtls => {
                self.dtls.handle_packet(now, data);
                self.after_dtls(now);
                Ok(ClientReceived::Nothing)
            }
            PacketClass::Rtp => {
                let s = self.srtp.as_mut().ok_or(ClientError::NotConnected)?;
                s.unprotect_rtp(data)
                    .map(ClientReceived::Rtp)
                    .map_err(ClientError::Srtp)
            }
            PacketClass::Rtcp => {
                let s = self.srtp.as_mut().ok_or(ClientError::NotConnected)?;
                s.unprotect_rtcp(data)
                    .map(ClientReceived::Rtcp)
                    .map_err(ClientError::Srtp)
            }
            PacketClass::Unknown => Err(ClientError::Unknown),
        }
    }

    fn after_dtls(&mut self, now: Instant) {
        self.flush_dtls();
        if self.srtp.is_none()
            && let Some(k) = self.dtls.take_keys()
        {
            self.srtp = SrtpSession::new(k.profile, &k.material, true).ok();
            if let Some(config) = self.data_channels {
                self.sctp.start(now, true, 0, config, &mut self.dtls);
            }
        }
        self.sctp.feed(now, &mut self.dtls);
        self.flush_dtls();
    }

    fn flush_dtls(&mut self) {
        if !self.ice_ok {
            return;
        }
        while let Some(p) = self.dtls.poll_transmit() {
            self.out.push_back(Bytes::from(p));
        }
    }

    /// Advances timers: checks, consent refreshes, DTLS retransmission.
    pub fn handle_timeout(&mut self, now: Instant) {
        if now >= self.next_check {
            self.send_check(now);
        }
        if self.ice_ok && self.srtp.is_none() {
            self.dtls.handle_timeout(now);
            self.after_dtls(now);
        }
        self.sctp.handle_timeout(now, &mut self.dtls);
        self.flush_dtls();
    }

    /// When to call [`ClientPeer::handle_timeout`] next.
    #[must_use]
    pub fn poll_timeout(&self) -> Instant {
        let t = match (self.ice_ok && self.srtp.is_none())
            .then(|| self.dtls.poll_timeout())
            .flatten()
        {
            Some(t) => t.min(self.next_check),
            None => self.next_check,
        };
        match self.sctp.poll_timeout() {
            Some(s) => t.min(s),
            None => t,
        }
    }

    /// Next datagram to send to the server.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.out.pop_front()
    }

    /// Protects and queues a plain RTP packet. Returns false when not connected.
    pub fn send_rtp(&mut self, rtp: &[u8]) -> bool {
        match self.srtp.as_mut().map(|s| s.protect_rtp(rtp)) {
            Some(Ok(b)) => {
                self.out.push_back(b);
                true
            }
            _ => false,
        }
    }

    /// Protects and queues a plain compound RTCP packet. Returns false when not connected.
    pub fn send_rtcp(&mut self, rtcp: &[u8]) -> bool {
        match self.srtp.as_mut().map(|s| s.protect_rtcp(rtcp)) {
            Some(Ok(b)) => {
                self.out.push_back(b);
                true
            }
            _ => false,
        }
    }

    /// Queues an arbitrary datagram (for tests that inject raw bytes).
    pub fn send_raw(&mut self, data: &[u8]) {
        self.out.push_back(Bytes::copy_from_slice(data));
    }
}
