//! The kinds of transport a Router talks through ([`Transport`]): a peer's
//! [`WebRtcTransport`] (`webrtc.rs`), a pipe end to another Router of the
//! room ([`PipeTransport`]) and a [`DirectTransport`]; and what they share:
//! their parameters, timers, events and close reasons.

use std::time::{Duration, Instant};

use crate::proto::dtls::{DtlsError, DtlsRole, Fingerprint};
use crate::proto::srtp::SrtpError;
use crate::stats::DropReason;

pub mod direct;
pub mod pipe;
pub mod relay;
pub mod transmit;
mod webrtc;

pub use webrtc::WebRtcTransport;

pub use direct::{DirectTransport, Tap, Tapped};
pub use pipe::{PIPE_EXTENSIONS, PipePacket, PipePeer, PipeTarget, PipeTransport};
pub use relay::{RelayCounters, RelayPeer};
pub use transmit::{Datagram, Outbox, Path, SendOutcome, Transmit};

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
    /// ([`PipeTransport::handle_datagram`]); or, with `tcp`, one frame of
    /// that ICE-TCP connection (a WebRtcTransport's only).
    ///
    /// Errors: why it was dropped.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: Path,
        data: &mut [u8],
    ) -> Result<Received, DropReason> {
        match self {
            Self::WebRtc(t) => t.handle_on(now, from, data),
            Self::Pipe(p) if from.tcp.is_none() => p.handle_datagram(from.addr, data),
            Self::Pipe(_) => Err(DropReason::UnknownAddress),
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
    /// ICE nominated this path (a UDP address, or an ICE-TCP connection):
    /// datagrams from it now belong to this transport.
    Selected(Path),
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

pub(crate) fn srtp_drop(e: SrtpError) -> DropReason {
    match e {
        SrtpError::Auth => DropReason::SrtpAuth,
        SrtpError::Replay => DropReason::Replay,
        _ => DropReason::MalformedRtp,
    }
}
