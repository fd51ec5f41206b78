//! WebRTC data channels of one peer, sans-IO: an SCTP association over
//! DTLS (RFC 8261) run by dcSCTP, and DCEP (RFC 8832, [`super::dcep`]) on
//! top of it.
//!
//! Feed it the SCTP packets DTLS decrypted with
//! [`SctpAssociation::handle_packet`] and time with
//! [`SctpAssociation::handle_timeout`] (no later than
//! [`SctpAssociation::poll_timeout`]); after each call take the SCTP
//! packets to encrypt and send with [`SctpAssociation::poll_packet`] and
//! what happened with [`SctpAssociation::poll_event`].
//!
//! Stream ids: the DTLS client opens channels on even streams, the DTLS
//! server on odd ones (RFC 8832 §6), so both may open at once without
//! collision. A channel closes by resetting its stream both ways (RFC
//! 8831 §6.7); an id is reused only once the reset is done.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use dcsctp::api::{
    DcSctpSocket, Message, Options, PpId, SendError, SendOptions, SocketEvent, SocketTime, StreamId,
};

use super::dcep::{self, ChannelParams, DcepMessage, PPID_DCEP, Reliability};
use crate::stats::DataDropReason;

/// Streams each way we announce (RFC 9260 §5.1 OS/MIS): Chromium opens at
/// most 1,024 channels, so mediasoup and libwebrtc use this too.
pub const MAX_STREAMS: u16 = 1024;
/// The largest message we receive (`a=max-message-size` of our SDP, RFC
/// 8841 §6), bytes; larger ones are dropped.
pub const MAX_MESSAGE_SIZE: usize = 256 * 1024;
/// The peer's maximum message size when its SDP gives none (RFC 8841 §6.1).
pub const DEFAULT_REMOTE_MAX_MESSAGE_SIZE: usize = 64 * 1024;
/// SCTP packet size, bytes: one DTLS record under dimpl's 1,150-byte
/// datagrams (13-byte header and up to 24 bytes of AEAD protection).
const SCTP_MTU: usize = 1100;
/// Longest label or protocol accepted in a DATA_CHANNEL_OPEN, bytes.
pub const MAX_LABEL: usize = 1024;

/// Limits of one association.
#[derive(Debug, Clone, Copy)]
pub struct SctpConfig {
    /// Bytes queued to this peer at most, all channels together; a message
    /// that does not fit is dropped for this peer alone
    /// ([`DataDropReason::QueueFull`]).
    pub send_buffer: usize,
    /// Receive window, bytes: at most this much of the peer's data is held
    /// before it is read. dcSCTP takes no new data over 90 % of it, so it
    /// must be over [`MAX_MESSAGE_SIZE`] by more than that; a peer that
    /// sends a message bigger than that gets no acknowledgement for it and
    /// ends its own association after its retransmissions.
    pub receive_window: usize,
    /// The largest message taken from the peer or sent to it, bytes
    /// ([`MAX_MESSAGE_SIZE`], what our SDP advertises).
    pub max_message_size: usize,
}

impl Default for SctpConfig {
    fn default() -> Self {
        Self {
            send_buffer: 1 << 20,
            receive_window: MAX_MESSAGE_SIZE + (128 << 10),
            max_message_size: MAX_MESSAGE_SIZE,
        }
    }
}

/// What an association reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataEvent {
    /// The association is up: channels can be opened.
    Connected,
    /// The peer opened a channel on `stream`.
    Opened {
        /// Its stream id.
        stream: u16,
        /// Its label and delivery.
        params: ChannelParams,
    },
    /// A whole message on an open channel the peer opened.
    Message {
        /// The channel's stream id.
        stream: u16,
        /// Payload protocol identifier (51 string, 53 binary, 56/57 empty).
        ppid: u32,
        /// The message, bytes.
        data: Vec<u8>,
    },
    /// A channel closed (the peer reset its stream, or ours was reset).
    Closed {
        /// Its stream id.
        stream: u16,
    },
    /// Something the peer sent was dropped.
    Dropped(DataDropReason),
    /// The association failed (ABORT, too many retransmissions): no more
    /// events follow.
    Failed(String),
}

/// Why a message was not queued to the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DataSendError {
    /// No such channel of ours, or the association is not up.
    #[error("no such open data channel")]
    NoChannel,
    /// Over the peer's `a=max-message-size`.
    #[error("message over the peer's maximum message size")]
    TooBig,
    /// The peer's send queue is full.
    #[error("the peer's send queue is full")]
    QueueFull,
    /// All our stream ids are in use.
    #[error("no free stream id")]
    NoStream,
}

/// How a channel's messages go (RFC 8831 §6.6: ordered or not, with its
/// retransmission limit).
fn send_options(ordered: bool, reliability: Reliability) -> SendOptions {
    SendOptions {
        unordered: !ordered,
        max_retransmissions: match reliability {
            Reliability::MaxRetransmits(n) => Some(n.min(u32::from(u16::MAX)) as u16),
            _ => None,
        },
        lifetime: match reliability {
            Reliability::MaxLifetimeMs(ms) => Some(Duration::from_millis(u64::from(ms))),
            _ => None,
        },
        lifecycle_id: None,
    }
}

fn send_error(e: SendError) -> DataSendError {
    match e {
        SendError::MessageTooLarge { .. } | SendError::EmptyPayload => DataSendError::TooBig,
        SendError::ResourceExhaustion => DataSendError::QueueFull,
        SendError::ShuttingDown => DataSendError::NoChannel,
    }
}

#[derive(Debug)]
struct Channel {
    params: ChannelParams,
    /// Opened by the peer (messages come in on it), else by us.
    by_peer: bool,
}

/// One peer's SCTP association and data channels.
pub struct SctpAssociation {
    socket: Box<dyn DcSctpSocket>,
    epoch: Instant,
    is_dtls_client: bool,
    connected: bool,
    failed: bool,
    remote_max_message: usize,
    max_message: usize,
    channels: HashMap<u16, Channel>,
    /// Our streams being reset: not reused until the reset is done.
    resetting: Vec<u16>,
    events: VecDeque<DataEvent>,
    packets: VecDeque<Vec<u8>>,
}

impl std::fmt::Debug for SctpAssociation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SctpAssociation")
            .field("connected", &self.connected)
            .field("channels", &self.channels.len())
            .finish()
    }
}

impl SctpAssociation {
    /// A new association at `now`, once DTLS is up. The DTLS client starts
    /// it (sends INIT); the server waits for the peer's. `remote_max_message`
    /// is the peer's `a=max-message-size`, bytes (0: no limit; absent:
    /// [`DEFAULT_REMOTE_MAX_MESSAGE_SIZE`]).
    pub fn new(
        now: Instant,
        is_dtls_client: bool,
        remote_max_message: usize,
        config: SctpConfig,
    ) -> Self {
        let options = Options {
            announced_maximum_incoming_streams: MAX_STREAMS,
            announced_maximum_outgoing_streams: MAX_STREAMS,
            mtu: SCTP_MTU,
            max_message_size: config.max_message_size,
            max_receiver_window_buffer_size: config.receive_window,
            max_send_buffer_size: config.send_buffer,
            per_stream_send_queue_limit: config.send_buffer,
            total_buffered_amount_low_threshold: config.send_buffer / 2,
            ..Options::default()
        };
        let mut socket = dcsctp::new_socket("sfu", &options);
        if is_dtls_client {
            socket.connect();
        }
        let mut a = Self {
            socket,
            epoch: now,
            is_dtls_client,
            connected: false,
            failed: false,
            remote_max_message: match remote_max_message {
                0 => config.max_message_size,
                n => n.min(config.max_message_size),
            },
            max_message: config.max_message_size,
            channels: HashMap::new(),
            resetting: Vec::new(),
            events: VecDeque::new(),
            packets: VecDeque::new(),
        };
        a.drain();
        a
    }

    fn time(&self, now: Instant) -> SocketTime {
        SocketTime::zero() + now.saturating_duration_since(self.epoch)
    }

    /// True once the association is up and has not failed.
    pub fn is_connected(&self) -> bool {
        self.connected && !self.failed
    }

    /// The largest message the peer takes, bytes.
    pub fn remote_max_message(&self) -> usize {
        self.remote_max_message
    }

    /// Handles one SCTP packet (a DTLS record's plaintext) at `now`.
    pub fn handle_packet(&mut self, now: Instant, packet: &[u8]) {
        if self.failed {
            return;
        }
        self.socket.advance_time(self.time(now));
        self.socket.handle_input(packet);
        self.drain();
    }

    /// Runs the association's timers (retransmission, delayed SACK,
    /// heartbeat).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.failed {
            return;
        }
        self.socket.advance_time(self.time(now));
        self.drain();
    }

    /// When [`SctpAssociation::handle_timeout`] is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.failed {
            return None;
        }
        let d: Duration = self.socket.poll_timeout() - SocketTime::zero();
        self.epoch.checked_add(d)
    }

    /// Next SCTP packet to send (encrypted by DTLS as one record).
    pub fn poll_packet(&mut self) -> Option<Vec<u8>> {
        self.packets.pop_front()
    }

    /// Next event.
    pub fn poll_event(&mut self) -> Option<DataEvent> {
        self.events.pop_front()
    }

    /// Opens a channel to the peer with `params` (DCEP OPEN on a free
    /// stream of our parity). Returns its stream id.
    ///
    /// Errors: [`DataSendError::NoChannel`] before the association is up,
    /// [`DataSendError::NoStream`] when every id of our parity is in use.
    pub fn open(&mut self, now: Instant, params: ChannelParams) -> Result<u16, DataSendError> {
        if !self.is_connected() {
            return Err(DataSendError::NoChannel);
        }
        let first = if self.is_dtls_client { 0 } else { 1 };
        let stream = (first..MAX_STREAMS)
            .step_by(2)
            .find(|s| !self.channels.contains_key(s) && !self.resetting.contains(s))
            .ok_or(DataSendError::NoStream)?;
        self.socket.advance_time(self.time(now));
        let open = dcep::write_open(&params);
        // DCEP goes ordered and reliable whatever the channel (RFC 8832 §6).
        let sent = self.socket.send(
            Message::new(StreamId(stream), PpId(PPID_DCEP), open),
            &SendOptions::default(),
        );
        if sent.is_err() {
            self.drain();
            return Err(DataSendError::QueueFull);
        }
        self.channels.insert(
            stream,
            Channel {
                params,
                by_peer: false,
            },
        );
        self.drain();
        Ok(stream)
    }

    /// Sends one message on our channel `stream`, with that channel's
    /// delivery (ordered or not, retransmission limits).
    ///
    /// Errors: [`DataSendError`]; nothing is queued then.
    pub fn send(
        &mut self,
        now: Instant,
        stream: u16,
        ppid: u32,
        data: Vec<u8>,
    ) -> Result<(), DataSendError> {
        let ch = self
            .channels
            .get(&stream)
            .filter(|c| !c.by_peer && self.connected && !self.failed)
            .ok_or(DataSendError::NoChannel)?;
        if data.len() > self.remote_max_message {
            return Err(DataSendError::TooBig);
        }
        let options = send_options(ch.params.ordered, ch.params.reliability);
        self.socket.advance_time(self.time(now));
        let r = self
            .socket
            .send(Message::new(StreamId(stream), PpId(ppid), data), &options);
        self.drain();
        r.map_err(send_error)
    }

    /// Sends several messages `(stream, ppid, data)` at once: those of
    /// channels with the same delivery go in as one batch, so several fit
    /// one SCTP packet (RFC 9260 §6.10 bundling). Returns each message's
    /// result, in order.
    pub fn send_many(
        &mut self,
        now: Instant,
        msgs: Vec<(u16, u32, Vec<u8>)>,
    ) -> Vec<Result<(), DataSendError>> {
        let mut results = vec![Ok(()); msgs.len()];
        // (ordered, reliability) → (message indexes, messages).
        type Group = ((bool, Reliability), Vec<usize>, Vec<Message>);
        let mut groups: Vec<Group> = Vec::new();
        for (i, (stream, ppid, data)) in msgs.into_iter().enumerate() {
            let Some(ch) = self
                .channels
                .get(&stream)
                .filter(|c| !c.by_peer && self.connected && !self.failed)
            else {
                results[i] = Err(DataSendError::NoChannel);
                continue;
            };
            if data.len() > self.remote_max_message || data.is_empty() {
                results[i] = Err(DataSendError::TooBig);
                continue;
            }
            let key = (ch.params.ordered, ch.params.reliability);
            let m = Message::new(StreamId(stream), PpId(ppid), data);
            match groups.iter_mut().find(|g| g.0 == key) {
                Some(g) => {
                    g.1.push(i);
                    g.2.push(m);
                }
                None => groups.push((key, vec![i], vec![m])),
            }
        }
        self.socket.advance_time(self.time(now));
        for ((ordered, reliability), idx, messages) in groups {
            if let Err(e) = self
                .socket
                .send_many(messages, &send_options(ordered, reliability))
            {
                for (k, err) in e.0 {
                    if let Some(&i) = idx.get(k) {
                        results[i] = Err(send_error(err));
                    }
                }
            }
        }
        self.drain();
        results
    }

    /// Closes channel `stream` (either side's): resets our outgoing stream
    /// (RFC 8831 §6.7). A [`DataEvent::Closed`] follows once it is done.
    pub fn close(&mut self, now: Instant, stream: u16) {
        if self.channels.remove(&stream).is_none() || !self.is_connected() {
            return;
        }
        self.socket.advance_time(self.time(now));
        if self.socket.reset_streams(&[StreamId(stream)]).is_ok() {
            self.resetting.push(stream);
        }
        self.drain();
    }

    /// Aborts the association (the transport is closing).
    pub fn abort(&mut self) {
        if !self.failed {
            self.socket.close();
            self.drain();
            self.failed = true;
        }
    }

    fn drain(&mut self) {
        while let Some(ev) = self.socket.poll_event() {
            match ev {
                SocketEvent::SendPacket(p) => self.packets.push_back(p),
                SocketEvent::OnConnected() if !self.connected => {
                    self.connected = true;
                    self.events.push_back(DataEvent::Connected);
                }
                SocketEvent::OnAborted(kind, why) => {
                    self.failed = true;
                    self.events
                        .push_back(DataEvent::Failed(format!("{kind:?}: {why}")));
                }
                SocketEvent::OnClosed() => {
                    self.failed = true;
                    self.events
                        .push_back(DataEvent::Failed("closed by the peer".into()));
                }
                // Our own send queue full: the sender counts that.
                SocketEvent::OnError(dcsctp::api::ErrorKind::ResourceExhaustion, _) => {}
                // A packet or chunk dcSCTP refused (the association goes on).
                SocketEvent::OnError(..) => self
                    .events
                    .push_back(DataEvent::Dropped(DataDropReason::BadSctp)),
                SocketEvent::OnIncomingStreamReset(streams) => {
                    for StreamId(s) in streams {
                        // The peer closed a channel: close our side too.
                        // (Ours that we closed first are gone already.)
                        if self.channels.remove(&s).is_some() {
                            if self.socket.reset_streams(&[StreamId(s)]).is_ok() {
                                self.resetting.push(s);
                            }
                            self.events.push_back(DataEvent::Closed { stream: s });
                        }
                    }
                }
                SocketEvent::OnStreamsResetPerformed(streams)
                | SocketEvent::OnStreamsResetFailed(streams) => {
                    self.resetting.retain(|s| !streams.contains(&StreamId(*s)));
                }
                _ => {}
            }
        }
        while let Some(m) = self.socket.get_next_message() {
            self.on_message(m);
        }
        // Messages handled above may have queued packets (ACKs) and events.
        while let Some(ev) = self.socket.poll_event() {
            if let SocketEvent::SendPacket(p) = ev {
                self.packets.push_back(p);
            }
        }
    }

    fn on_message(&mut self, m: Message) {
        let StreamId(stream) = m.stream_id;
        let PpId(ppid) = m.ppid;
        if ppid == PPID_DCEP {
            return self.on_dcep(stream, &m.payload);
        }
        if m.payload.len() > self.max_message {
            return self
                .events
                .push_back(DataEvent::Dropped(DataDropReason::TooBig));
        }
        match self.channels.get(&stream) {
            Some(ch) if ch.by_peer => self.events.push_back(DataEvent::Message {
                stream,
                ppid,
                data: m.payload,
            }),
            // On a channel we opened (relayed to this peer), or none.
            _ => self
                .events
                .push_back(DataEvent::Dropped(DataDropReason::UnknownChannel)),
        }
    }

    fn on_dcep(&mut self, stream: u16, payload: &[u8]) {
        match dcep::parse(payload, MAX_LABEL) {
            Ok(DcepMessage::Ack) => {}
            Ok(DcepMessage::Open(params)) => {
                let peer_parity = if self.is_dtls_client { 1 } else { 0 };
                if stream % 2 != peer_parity || self.channels.contains_key(&stream) {
                    // An OPEN on a stream we own, or twice: RFC 8832 §6
                    // leaves it to us; the stream is not a channel.
                    return self
                        .events
                        .push_back(DataEvent::Dropped(DataDropReason::BadDcep));
                }
                if self.channels.len() >= usize::from(MAX_STREAMS) {
                    let _ = self.socket.reset_streams(&[StreamId(stream)]);
                    return self
                        .events
                        .push_back(DataEvent::Dropped(DataDropReason::TooManyChannels));
                }
                let ack = self.socket.send(
                    Message::new(StreamId(stream), PpId(PPID_DCEP), dcep::write_ack()),
                    &SendOptions::default(),
                );
                if ack.is_err() {
                    return self
                        .events
                        .push_back(DataEvent::Dropped(DataDropReason::QueueFull));
                }
                self.channels.insert(
                    stream,
                    Channel {
                        params: params.clone(),
                        by_peer: true,
                    },
                );
                self.events.push_back(DataEvent::Opened { stream, params });
            }
            Err(_) => {
                // Refused (a huge label, garbage): the stream is reset so
                // the peer's channel fails instead of waiting.
                if self.is_connected() {
                    let _ = self.socket.reset_streams(&[StreamId(stream)]);
                }
                self.events
                    .push_back(DataEvent::Dropped(DataDropReason::BadDcep));
            }
        }
    }
}

mod over_dtls;
#[cfg(test)]
mod tests;

pub use over_dtls::DataChannels;
