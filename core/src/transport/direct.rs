//! DirectTransport: a transport with no network under it (mediasoup's
//! DirectTransport). The control plane hands its packets to the Router
//! ([`crate::router::Router::handle_direct`]): plain RTP and RTCP an
//! ingest made (RTMP packetized to RTP, transcoded audio, its sender
//! reports). It is connected from its creation and sends nothing: the
//! producers on it cannot be asked for keyframes, so their Router keeps
//! the last group of pictures for new subscribers instead
//! (`crate::router::direct`).

use std::collections::VecDeque;

use super::{CloseReason, TransportEvent};

/// One direct transport: only its state changes.
#[derive(Debug, Default)]
pub struct DirectTransport {
    closed: bool,
    events: VecDeque<TransportEvent>,
}

impl DirectTransport {
    /// A new direct transport, connected ([`TransportEvent::Connected`]
    /// comes first).
    pub fn new() -> Self {
        Self {
            closed: false,
            events: VecDeque::from([TransportEvent::Connected]),
        }
    }

    /// Whether it is open.
    pub fn is_connected(&self) -> bool {
        !self.closed
    }

    /// Closes it; emits [`TransportEvent::Closed`] once.
    pub fn close(&mut self, reason: CloseReason) {
        if !self.closed {
            self.closed = true;
            self.events.push_back(TransportEvent::Closed(reason));
        }
    }

    /// Next state change.
    pub fn poll_event(&mut self) -> Option<TransportEvent> {
        self.events.pop_front()
    }
}
