//! The reach families of `/metrics`: data channels (messages and bytes
//! relayed, drops by reason, summed over the workers) and ICE-TCP (open
//! connections and closes by reason, per worker).

use sfu_core::stats::{Counters, DataDropReason};

use super::family;

/// Writes `sfu_worker_tcp_connections` and
/// `sfu_worker_tcp_closed_total{reason}` (ICE-TCP, RFC 6544).
pub(super) fn render_ice_tcp(out: &mut String, workers: &[(String, &Counters)]) {
    family(
        out,
        "sfu_worker_tcp_connections",
        "gauge",
        "Open ICE-TCP connections (RFC 6544) of the worker.",
        &workers
            .iter()
            .map(|(l, c)| (l.clone(), c.tcp_connections.get()))
            .collect::<Vec<_>>(),
    );
    let mut closed = Vec::new();
    for (l, c) in workers {
        for (reason, v) in [
            ("idle", c.tcp_closed_idle.get()),
            ("stalled", c.tcp_closed_stalled.get()),
            ("peer", c.tcp_closed_peer.get()),
        ] {
            closed.push((format!("{l},reason=\"{reason}\""), v));
        }
    }
    family(
        out,
        "sfu_worker_tcp_closed_total",
        "counter",
        "ICE-TCP connections closed: idle (not bound to a transport within the ICE timeout), stalled (a peer not reading, or a frame over the limit), peer (closed by the peer, or failed).",
        &closed,
    );
}

/// Writes `sfu_datachannel_messages_{in,out}_total`,
/// `sfu_datachannel_bytes_{in,out}_total` and
/// `sfu_datachannel_dropped_total{reason}` from the workers' counters.
pub(super) fn render_data_channels(out: &mut String, workers: &[(String, &Counters)]) {
    let sum = |f: &dyn Fn(&Counters) -> u64| workers.iter().map(|(_, c)| f(c)).sum::<u64>();
    let one = |v: u64| vec![(String::new(), v)];
    family(
        out,
        "sfu_datachannel_messages_in_total",
        "counter",
        "Data-channel messages received from participants (RFC 8831).",
        &one(sum(&|c| c.dc_messages_in.get())),
    );
    family(
        out,
        "sfu_datachannel_messages_out_total",
        "counter",
        "Data-channel messages relayed to participants (one per receiver).",
        &one(sum(&|c| c.dc_messages_out.get())),
    );
    family(
        out,
        "sfu_datachannel_bytes_in_total",
        "counter",
        "Payload bytes of the data-channel messages received.",
        &one(sum(&|c| c.dc_bytes_in.get())),
    );
    family(
        out,
        "sfu_datachannel_bytes_out_total",
        "counter",
        "Payload bytes of the data-channel messages relayed.",
        &one(sum(&|c| c.dc_bytes_out.get())),
    );
    let drops: Vec<(String, u64)> = DataDropReason::ALL
        .iter()
        .map(|r| {
            (
                format!("reason=\"{}\"", r.as_str()),
                sum(&|c| c.data_drops(*r)),
            )
        })
        .collect();
    family(
        out,
        "sfu_datachannel_dropped_total",
        "counter",
        "Data-channel messages (or what a peer sent on its SCTP association) dropped, by reason: over the sender's rate, over a maximum message size, a receiver's full queue, bad DCEP or SCTP, no such channel, too many channels.",
        &drops,
    );
}
