//! The data-channel families of `/metrics`: messages and bytes relayed,
//! and drops by reason, summed over the workers.

use sfu_core::stats::{Counters, DataDropReason};

use super::family;

/// Writes `sfu_datachannel_messages_{in,out}_total`,
/// `sfu_datachannel_bytes_{in,out}_total` and
/// `sfu_datachannel_dropped_total{reason}` from the workers' counters.
pub(super) fn render(out: &mut String, workers: &[(String, &Counters)]) {
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
