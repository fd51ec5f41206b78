//! Data channels relayed in a room (RFC 8831), on mediasoup's
//! DataProducer/DataConsumer model: a channel a peer opens is a *data
//! producer*; the Router opens one channel of its own (a *data consumer*,
//! same label, protocol and delivery) to every other peer of the room with
//! data channels, now or when it connects later, and copies each message
//! to those.
//!
//! Limits, so no one peer costs the others: a sender's messages/s and
//! bytes/s (over them a message is dropped for everyone, and the control
//! plane told once per [`RATE_NOTICE_INTERVAL`]); a receiver's
//! `a=max-message-size` and send queue (over them a message is dropped for
//! that receiver alone). Each drop is counted by reason.

use super::*;
use crate::proto::dcep::ChannelParams;
use crate::proto::sctp::{DataEvent, DataSendError, SctpConfig};
use crate::stats::DataDropReason;

/// A sender over its limit is reported at most this often.
pub const RATE_NOTICE_INTERVAL: Duration = Duration::from_secs(10);

/// Data-channel limits of a Router.
#[derive(Debug, Clone, Copy)]
pub struct DataChannelConfig {
    /// Messages per second one peer may send (its burst is one second's).
    pub max_messages_per_sec: u32,
    /// Bytes per second one peer may send; its burst is one second's, or
    /// one largest message (256 KiB) if that is more.
    pub max_bytes_per_sec: u64,
    /// Each peer's SCTP association.
    pub sctp: SctpConfig,
    /// How long messages to one peer are held to go out together, bundled
    /// into as few SCTP packets (and DTLS records, and datagrams) as fit:
    /// 5 ms by default, which cuts the packets of a busy chat several
    /// times over for a delay no one reading a chat notices; zero sends
    /// each at once.
    pub coalesce: Duration,
}

impl Default for DataChannelConfig {
    fn default() -> Self {
        Self {
            max_messages_per_sec: 200,
            max_bytes_per_sec: 1 << 20,
            sctp: SctpConfig::default(),
            coalesce: Duration::from_millis(5),
        }
    }
}

/// A channel a peer opened, relayed to the room.
#[derive(Debug)]
pub(super) struct DataProducer {
    params: ChannelParams,
    /// Its copies: (receiver's transport, our stream to it).
    consumers: Vec<(TransportId, u16)>,
}

/// A peer's data-channel state in the Router.
#[derive(Debug, Default)]
pub(super) struct DataPeer {
    /// Our channels to it: stream → the data producer (transport, stream).
    relayed: HashMap<u16, (TransportId, u16)>,
    /// Token buckets: messages and bytes left, as of `refilled`.
    messages: f64,
    bytes: f64,
    refilled: Option<Instant>,
    /// When it was last reported over its limit.
    noticed: Option<Instant>,
    /// Messages to it waiting for the coalescing timer: (our stream, PPID,
    /// data), and their bytes.
    outbox: Vec<(u16, u32, Vec<u8>)>,
    outbox_bytes: usize,
}

impl DataPeer {
    /// Takes one message of `len` bytes from the buckets; false when over.
    fn admit(&mut self, now: Instant, len: usize, c: &DataChannelConfig) -> bool {
        let (msg_cap, byte_cap) = (
            f64::from(c.max_messages_per_sec),
            (c.max_bytes_per_sec as f64).max(crate::proto::sctp::MAX_MESSAGE_SIZE as f64),
        );
        let dt = self.refilled.map_or(f64::INFINITY, |t| {
            now.saturating_duration_since(t).as_secs_f64()
        });
        self.refilled = Some(now);
        self.messages = (self.messages + dt * f64::from(c.max_messages_per_sec)).min(msg_cap);
        self.bytes = (self.bytes + dt * c.max_bytes_per_sec as f64).min(byte_cap);
        if self.messages < 1.0 || self.bytes < len as f64 {
            return false;
        }
        self.messages -= 1.0;
        self.bytes -= len as f64;
        true
    }
}

impl Router {
    /// Handles what transport `tid`'s data channels report.
    pub(super) fn on_data_event(&mut self, now: Instant, tid: TransportId, ev: DataEvent) {
        match ev {
            DataEvent::Connected => {
                tracing::debug!(transport = %tid, producers = self.data_producers.len(), "SCTP association up");
                let keys: Vec<(TransportId, u16)> = self
                    .data_producers
                    .keys()
                    .filter(|(t, _)| *t != tid)
                    .copied()
                    .collect();
                for key in keys {
                    self.open_data_consumer(now, key, tid);
                }
            }
            DataEvent::Opened { stream, params } => {
                tracing::debug!(transport = %tid, stream, label = %params.label, "data channel opened");
                let key = (tid, stream);
                self.data_producers.insert(
                    key,
                    DataProducer {
                        params,
                        consumers: Vec::new(),
                    },
                );
                let others: Vec<TransportId> = self
                    .transports
                    .iter()
                    .filter(|(id, e)| {
                        *id != tid
                            && e.transport
                                .as_webrtc()
                                .is_some_and(WebRtcTransport::data_connected)
                    })
                    .map(|(id, _)| id)
                    .collect();
                for to in others {
                    self.open_data_consumer(now, key, to);
                }
            }
            DataEvent::Message { stream, ppid, data } => {
                self.relay_message(now, (tid, stream), ppid, data);
            }
            DataEvent::Closed { stream } => {
                if self.data_producers.contains_key(&(tid, stream)) {
                    self.close_data_producer(now, (tid, stream));
                } else if let Some(key) = self
                    .transports
                    .get_mut(tid)
                    .and_then(|e| e.data.relayed.remove(&stream))
                    && let Some(p) = self.data_producers.get_mut(&key)
                {
                    // The receiver closed our copy: it gets no more.
                    p.consumers.retain(|c| *c != (tid, stream));
                }
            }
            DataEvent::Dropped(r) => self.count_data_drop(r),
            DataEvent::Failed(why) => {
                tracing::debug!(transport = %tid, %why, "SCTP association ended");
                self.forget_data_peer(now, tid);
            }
        }
    }

    fn count_data_drop(&self, r: DataDropReason) {
        self.counters.count_data_drop(r);
        self.worker_counters.count_data_drop(r);
    }

    /// Opens our copy of data producer `key` to transport `to`.
    fn open_data_consumer(&mut self, now: Instant, key: (TransportId, u16), to: TransportId) {
        let Some(p) = self.data_producers.get(&key) else {
            return;
        };
        let params = p.params.clone();
        let Some(entry) = self.transports.get_mut(to) else {
            return;
        };
        let Some(t) = entry.transport.as_webrtc_mut() else {
            return;
        };
        match t.open_data_channel(now, params) {
            Ok(stream) => {
                entry.data.relayed.insert(stream, key);
                if let Some(p) = self.data_producers.get_mut(&key) {
                    p.consumers.push((to, stream));
                }
                self.events.push_back(RouterEvent::DataConsumerOpened {
                    transport: to,
                    stream,
                    from: key.0,
                });
            }
            Err(e) => {
                tracing::debug!(transport = %to, error = %e, "data channel not opened");
                self.count_data_drop(match e {
                    DataSendError::QueueFull => DataDropReason::QueueFull,
                    _ => DataDropReason::TooManyChannels,
                });
            }
        }
        self.flush_transport(to);
    }

    /// Copies one message of data producer `key` to its consumers.
    fn relay_message(&mut self, now: Instant, key: (TransportId, u16), ppid: u32, data: Vec<u8>) {
        let len = data.len() as u64;
        self.gauge(|c| {
            c.dc_messages_in.add(1);
            c.dc_bytes_in.add(len);
        });
        let config = self.config.data;
        let Some(sender) = self.transports.get_mut(key.0) else {
            return;
        };
        if !sender.data.admit(now, data.len(), &config) {
            let notice = sender
                .data
                .noticed
                .is_none_or(|t| now.saturating_duration_since(t) >= RATE_NOTICE_INTERVAL);
            if notice {
                sender.data.noticed = Some(now);
                self.events.push_back(RouterEvent::DataRateLimited(key.0));
            }
            self.count_data_drop(DataDropReason::RateLimited);
            return;
        }
        let Some(p) = self.data_producers.get(&key) else {
            self.count_data_drop(DataDropReason::UnknownChannel);
            return;
        };
        let mut consumers = std::mem::take(&mut self.data_targets);
        consumers.clear();
        consumers.extend_from_slice(&p.consumers);
        let mut data = Some(data);
        let coalesce = config.coalesce;
        for (i, &(to, stream)) in consumers.iter().enumerate() {
            let Some(entry) = self.transports.get_mut(to) else {
                continue;
            };
            // The last copy takes the buffer itself.
            let copy = if i + 1 == consumers.len() {
                data.take().unwrap_or_default()
            } else {
                data.clone().unwrap_or_default()
            };
            if coalesce.is_zero() {
                let Some(t) = entry.transport.as_webrtc_mut() else {
                    continue;
                };
                let r = t.send_data(now, stream, ppid, copy);
                self.count_sent(to, stream, r, len);
                self.flush_transport(to);
                continue;
            }
            // Held for the receiver's next flush, within its queue's room.
            let peer = &mut entry.data;
            if peer.outbox_bytes + copy.len() > config.sctp.send_buffer {
                self.count_data_drop(DataDropReason::QueueFull);
                continue;
            }
            let first = peer.outbox.is_empty();
            peer.outbox_bytes += copy.len();
            peer.outbox.push((stream, ppid, copy));
            if first {
                self.timers
                    .push(Reverse((now + coalesce, Timer::DataFlush(to))));
            }
        }
        self.data_targets = consumers;
    }

    /// Sends the messages held for transport `tid` (its coalescing timer),
    /// bundled.
    pub(super) fn flush_data(&mut self, now: Instant, tid: TransportId) {
        let Some(entry) = self.transports.get_mut(tid) else {
            return;
        };
        let msgs = std::mem::take(&mut entry.data.outbox);
        entry.data.outbox_bytes = 0;
        if msgs.is_empty() {
            return;
        }
        let Some(t) = entry.transport.as_webrtc_mut() else {
            return;
        };
        let sizes: Vec<(u16, u64)> = msgs.iter().map(|(s, _, d)| (*s, d.len() as u64)).collect();
        let results = t.send_data_many(now, msgs);
        for ((stream, len), r) in sizes.into_iter().zip(results) {
            self.count_sent(tid, stream, r, len);
        }
        self.flush_transport(tid);
    }

    /// Counts what sending one message of `len` bytes to `to` did.
    fn count_sent(
        &self,
        to: TransportId,
        stream: u16,
        r: std::result::Result<(), DataSendError>,
        len: u64,
    ) {
        match r {
            Ok(()) => self.gauge(|c| {
                c.dc_messages_out.add(1);
                c.dc_bytes_out.add(len);
            }),
            Err(DataSendError::TooBig) => self.count_data_drop(DataDropReason::TooBig),
            Err(DataSendError::QueueFull) => self.count_data_drop(DataDropReason::QueueFull),
            Err(e) => {
                tracing::debug!(transport = %to, stream, error = %e, "data-channel message not relayed");
            }
        }
    }

    /// Closes data producer `key` and every copy of it.
    fn close_data_producer(&mut self, now: Instant, key: (TransportId, u16)) {
        let Some(p) = self.data_producers.remove(&key) else {
            return;
        };
        for (to, stream) in p.consumers {
            // What the sender sent before closing still goes first.
            self.flush_data(now, to);
            if let Some(e) = self.transports.get_mut(to) {
                e.data.relayed.remove(&stream);
                if let Some(t) = e.transport.as_webrtc_mut() {
                    t.close_data_channel(now, stream);
                }
            }
            self.flush_transport(to);
        }
    }

    /// Forgets a peer's data channels (its association ended, or the
    /// transport is going): its channels close for everyone, and its
    /// copies leave their producers.
    pub(super) fn forget_data_peer(&mut self, now: Instant, tid: TransportId) {
        let own: Vec<(TransportId, u16)> = self
            .data_producers
            .keys()
            .filter(|(t, _)| *t == tid)
            .copied()
            .collect();
        for key in own {
            self.close_data_producer(now, key);
        }
        let relayed = self
            .transports
            .get_mut(tid)
            .map(|e| std::mem::take(&mut e.data.relayed))
            .unwrap_or_default();
        for (stream, key) in relayed {
            if let Some(p) = self.data_producers.get_mut(&key) {
                p.consumers.retain(|c| *c != (tid, stream));
            }
        }
    }

    /// Moves a transport's queued datagrams to the Router's and
    /// reschedules its timer (after a send into it).
    fn flush_transport(&mut self, tid: TransportId) {
        if let Some(entry) = self.transports.get_mut(tid) {
            while let Some(t) = entry.transport.poll_transmit() {
                self.transmits.push_back(t);
            }
        }
        self.schedule_transport(tid);
    }

    /// Number of channels peers opened in this room (data producers).
    pub fn data_producer_count(&self) -> usize {
        self.data_producers.len()
    }
}
