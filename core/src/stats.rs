//! Lock-free counters of the data plane, readable from the control plane
//! (for `/metrics`) without locking or slowing the packet path.
//!
//! Each counter has exactly one writer (the worker thread that owns it), so
//! an increment is a relaxed load and store, not a locked read-modify-write.
//! Readers on other threads see monotonically growing values.

use std::sync::atomic::{AtomicU64, Ordering};

/// Why a datagram or packet was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum DropReason {
    /// From an address no transport has selected, and not a valid STUN request.
    UnknownAddress,
    /// STUN that failed USERNAME, MESSAGE-INTEGRITY or FINGERPRINT checks, or is malformed.
    BadStun,
    /// DTLS record that failed, or a DTLS association that failed.
    Dtls,
    /// SRTP/SRTCP authentication tag did not verify.
    SrtpAuth,
    /// SRTP/SRTCP index already seen.
    Replay,
    /// RTP that is truncated or not version 2, or SRTP too short.
    MalformedRtp,
    /// RTCP that is truncated or malformed.
    MalformedRtcp,
    /// RTP/RTCP before ICE and DTLS both completed.
    NotConnected,
    /// RTP whose SSRC belongs to no producer of the transport.
    UnknownSsrc,
    /// A datagram whose first byte matches no protocol (RFC 7983).
    UnknownProtocol,
    /// An RTP packet (often a retransmission) already received: not forwarded twice.
    Duplicate,
    /// A packet for another worker's Router of the room found the pipe's
    /// ring full (that worker is behind) or no ring to that worker (not
    /// linked): dropped, and recovered by the far end's NACK if it matters.
    PipeFull,
    /// A packet-path step met an id its router's own tables no longer hold
    /// (a bug, never a peer's doing): that step was skipped instead of
    /// panicking.
    StaleId,
}

impl DropReason {
    /// Every reason, in index order.
    pub const ALL: [DropReason; 13] = [
        Self::UnknownAddress,
        Self::BadStun,
        Self::Dtls,
        Self::SrtpAuth,
        Self::Replay,
        Self::MalformedRtp,
        Self::MalformedRtcp,
        Self::NotConnected,
        Self::UnknownSsrc,
        Self::UnknownProtocol,
        Self::Duplicate,
        Self::PipeFull,
        Self::StaleId,
    ];

    /// Label used in metrics (`reason="…"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownAddress => "unknown_address",
            Self::BadStun => "bad_stun",
            Self::Dtls => "dtls",
            Self::SrtpAuth => "srtp_auth",
            Self::Replay => "replay",
            Self::MalformedRtp => "malformed_rtp",
            Self::MalformedRtcp => "malformed_rtcp",
            Self::NotConnected => "not_connected",
            Self::UnknownSsrc => "unknown_ssrc",
            Self::UnknownProtocol => "unknown_protocol",
            Self::Duplicate => "duplicate",
            Self::PipeFull => "pipe_full",
            Self::StaleId => "stale_id",
        }
    }
}

/// Why a data-channel message (or what a peer sent on its SCTP
/// association) was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum DataDropReason {
    /// Over its sender's messages/s or bytes/s limit.
    RateLimited,
    /// Over the receiver's `a=max-message-size`, or over ours (256 KiB).
    TooBig,
    /// The receiver's send queue was full: dropped for that receiver only.
    QueueFull,
    /// A DCEP message that is garbage, has a label or protocol over 1 KiB,
    /// or opens a stream of the wrong parity or one already open.
    BadDcep,
    /// A message on a stream no channel of the peer's is open on.
    UnknownChannel,
    /// A DATA_CHANNEL_OPEN past the 1,024 channels of an association.
    TooManyChannels,
    /// An SCTP packet or chunk the association refused.
    BadSctp,
}

impl DataDropReason {
    /// Every reason, in index order.
    pub const ALL: [DataDropReason; 7] = [
        Self::RateLimited,
        Self::TooBig,
        Self::QueueFull,
        Self::BadDcep,
        Self::UnknownChannel,
        Self::TooManyChannels,
        Self::BadSctp,
    ];

    /// Label used in metrics (`reason="…"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RateLimited => "rate_limited",
            Self::TooBig => "too_big",
            Self::QueueFull => "queue_full",
            Self::BadDcep => "bad_dcep",
            Self::UnknownChannel => "unknown_channel",
            Self::TooManyChannels => "too_many_channels",
            Self::BadSctp => "bad_sctp",
        }
    }
}

/// A single-writer monotonically increasing counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`. Must only be called from the owning worker thread.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    /// Current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A single-writer gauge (a value that goes up and down).
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    /// Adds `d` (may be negative). Must only be called from the owning worker thread.
    #[inline]
    pub fn add(&self, d: i64) {
        let v = self.0.load(Ordering::Relaxed) as i64 + d;
        self.0.store(v.max(0) as u64, Ordering::Relaxed);
    }

    /// Sets it to `v`. Must only be called from the owning worker thread.
    #[inline]
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }

    /// Current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Counters of one worker or one router.
#[derive(Debug, Default)]
pub struct Counters {
    /// Datagrams received.
    pub packets_in: Counter,
    /// Bytes received (UDP payload).
    pub bytes_in: Counter,
    /// Datagrams sent.
    pub packets_out: Counter,
    /// Bytes sent (UDP payload).
    pub bytes_out: Counter,
    /// RTP packets forwarded to consumers (one per consumer copy).
    pub rtp_forwarded: Counter,
    /// Datagrams the socket refused to send.
    pub send_errors: Counter,
    /// NACKs received from subscribers (RTCP Generic NACK messages).
    pub nacks_received: Counter,
    /// NACKs sent to publishers.
    pub nacks_sent: Counter,
    /// Packets retransmitted to subscribers (RTX, or resent on the media SSRC).
    pub retransmissions_sent: Counter,
    /// NACKed packets not resent: over the subscriber's retransmission
    /// budget (`router::rtx_budget`).
    pub retransmissions_over_budget: Counter,
    /// Missing packets recovered from publishers (RTX or late arrivals).
    pub packets_recovered: Counter,
    /// Missing packets given up on (never recovered within 1 s or 10 NACKs).
    pub packets_lost: Counter,
    /// REMBs received from subscribers (their own bandwidth estimates).
    pub rembs_received: Counter,
    /// Probe clusters sent to subscribers (padding to measure their path).
    pub probes: Counter,
    /// Reliefs: a probe above a subscriber's loss ceiling spent a
    /// policer's bucket (it failed, or a NACK came in its fallout), and its
    /// consumers at full frame rate left out most of their top temporal
    /// layer for a second (`router::allocation`).
    pub reliefs: Counter,
    /// Simulcast layer switches made by consumers.
    pub layer_switches: Counter,
    /// AV1 chains broken by a publisher's frame given up
    /// (`router::svc::Chains`): until the next keyframe, consumers of the
    /// spatial layers they protect step down to a layer still whole, or
    /// leave those layers out.
    pub chain_breaks: Counter,
    /// `sendmmsg` system calls made.
    pub send_calls: Counter,
    /// UDP GSO messages sent (each two datagrams or more to one destination).
    pub gso_messages: Counter,
    /// Keyframe requests (PLI) sent to producers.
    pub keyframe_requests: Counter,
    /// Events to the control plane dropped because its queue was full
    /// (worker counters only).
    pub events_dropped: Counter,
    /// Round-trip time samples measured to participants (RFC 3550 §6.4.1,
    /// RFC 3611 §4.5), summed, ms…
    pub rtt_ms_sum: Counter,
    /// …and their number.
    pub rtt_samples: Counter,
    /// Packets subscribers reported lost of what we sent them (receiver
    /// reports, or transport-wide feedback when they send it)…
    pub packets_lost_out: Counter,
    /// …out of this many they reported on.
    pub packets_reported_out: Counter,
    /// Packets sent into pipes to the room's Routers on other workers
    /// (RTP and RTCP, in the clear).
    pub piped_out: Counter,
    /// Packets received from pipes.
    pub piped_in: Counter,
    /// Consumers started from an ingest producer's kept GOP instead of a
    /// keyframe request (`crate::router::direct`).
    pub gop_replays: Counter,
    /// Data-channel messages received from peers (on channels they opened).
    pub dc_messages_in: Counter,
    /// Data-channel messages queued to peers (one per receiver).
    pub dc_messages_out: Counter,
    /// Their bytes (payload), in…
    pub dc_bytes_in: Counter,
    /// …and out.
    pub dc_bytes_out: Counter,
    /// ICE-TCP connections closed: not bound to a transport within the
    /// ICE timeout (worker counters only)…
    pub tcp_closed_idle: Counter,
    /// …for a peer that did not read (its queue over 512 KiB) or announced
    /// a frame over the limit…
    pub tcp_closed_stalled: Counter,
    /// …and by the peer (or a failed read or write).
    pub tcp_closed_peer: Counter,
    drops: [Counter; DropReason::ALL.len()],
    dc_drops: [Counter; DataDropReason::ALL.len()],
    /// Live routers (worker counters only).
    pub routers: Gauge,
    /// Open ICE-TCP connections (worker counters only).
    pub tcp_connections: Gauge,
    /// The port the worker's ICE-TCP listener is bound to, 0 for none
    /// (worker counters only; set before the worker starts).
    pub ice_tcp_port: Gauge,
    /// Live WebRtcTransports.
    pub transports: Gauge,
    /// Live producers.
    pub producers: Gauge,
    /// Live consumers.
    pub consumers: Gauge,
    /// Of those, paused ones (hidden tiles, or not yet answered).
    pub paused_consumers: Gauge,
    /// Subscribers whose send-side estimate knows a limit, updated every
    /// second…
    pub estimates: Gauge,
    /// …the sum of those estimates, bit/s…
    pub estimate_bps_sum: Gauge,
    /// …and how many of them cap publishers (REMB) after congestion.
    pub capped_subscribers: Gauge,
}

impl Counters {
    /// Counts one dropped datagram or packet.
    #[inline]
    pub fn count_drop(&self, reason: DropReason) {
        self.drops[reason as usize].add(1);
    }

    /// Counts one dropped data-channel message.
    #[inline]
    pub fn count_data_drop(&self, reason: DataDropReason) {
        self.dc_drops[reason as usize].add(1);
    }

    /// Number of data-channel drops for `reason`.
    pub fn data_drops(&self, reason: DataDropReason) -> u64 {
        self.dc_drops[reason as usize].get()
    }

    /// Number of drops for `reason`.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize].get()
    }

    /// Every [`Counter`] field (a new field must be listed here: a test
    /// checks the count against the struct's size).
    fn counter_fields(&self) -> [&Counter; 35] {
        [
            &self.packets_in,
            &self.bytes_in,
            &self.packets_out,
            &self.bytes_out,
            &self.rtp_forwarded,
            &self.send_errors,
            &self.nacks_received,
            &self.nacks_sent,
            &self.retransmissions_sent,
            &self.retransmissions_over_budget,
            &self.packets_recovered,
            &self.packets_lost,
            &self.rembs_received,
            &self.probes,
            &self.reliefs,
            &self.layer_switches,
            &self.chain_breaks,
            &self.send_calls,
            &self.gso_messages,
            &self.keyframe_requests,
            &self.events_dropped,
            &self.rtt_ms_sum,
            &self.rtt_samples,
            &self.packets_lost_out,
            &self.packets_reported_out,
            &self.piped_out,
            &self.piped_in,
            &self.gop_replays,
            &self.dc_messages_in,
            &self.dc_messages_out,
            &self.dc_bytes_in,
            &self.dc_bytes_out,
            &self.tcp_closed_idle,
            &self.tcp_closed_stalled,
            &self.tcp_closed_peer,
        ]
    }

    /// Every [`Gauge`] field.
    fn gauge_fields(&self) -> [&Gauge; 10] {
        [
            &self.routers,
            &self.tcp_connections,
            &self.ice_tcp_port,
            &self.transports,
            &self.producers,
            &self.consumers,
            &self.paused_consumers,
            &self.estimates,
            &self.estimate_bps_sum,
            &self.capped_subscribers,
        ]
    }

    /// A copy of the current values, owned by the caller (for summing).
    pub fn snapshot(&self) -> Counters {
        let c = Counters::default();
        c.add_all(self);
        c
    }

    /// Adds every value of `other` to this one. The caller must be this
    /// set's only writer (e.g. a snapshot it owns).
    pub fn add_all(&self, other: &Counters) {
        for (a, b) in self.counter_fields().iter().zip(other.counter_fields()) {
            a.add(b.get());
        }
        for (a, b) in self.drops.iter().zip(&other.drops) {
            a.add(b.get());
        }
        for (a, b) in self.dc_drops.iter().zip(&other.dc_drops) {
            a.add(b.get());
        }
        for (a, b) in self.gauge_fields().iter().zip(other.gauge_fields()) {
            a.add(b.get() as i64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_copies_every_counter_and_gauge() {
        let c = Counters::default();
        // Every field is listed: the struct is made of exactly these.
        let fields = c.counter_fields().len()
            + DropReason::ALL.len()
            + DataDropReason::ALL.len()
            + c.gauge_fields().len();
        assert_eq!(
            std::mem::size_of::<Counters>(),
            8 * fields,
            "a field is missing from the lists"
        );
        for (i, f) in c.counter_fields().iter().enumerate() {
            f.add(i as u64 + 1);
        }
        for (i, g) in c.gauge_fields().iter().enumerate() {
            g.add(i as i64 + 100);
        }
        c.count_drop(DropReason::Duplicate);
        c.count_data_drop(DataDropReason::QueueFull);
        let s = c.snapshot();
        for (i, f) in s.counter_fields().iter().enumerate() {
            assert_eq!(f.get(), i as u64 + 1, "counter {i}");
        }
        for (i, g) in s.gauge_fields().iter().enumerate() {
            assert_eq!(g.get(), i as u64 + 100, "gauge {i}");
        }
        assert_eq!(s.drops(DropReason::Duplicate), 1);
        assert_eq!(s.data_drops(DataDropReason::QueueFull), 1);
    }
}
