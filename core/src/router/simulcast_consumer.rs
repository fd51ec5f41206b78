//! A consumer of a simulcast (or VP9) producer: what it keeps so its
//! subscriber sees one continuous stream, and the layer switch at a
//! keyframe, across which sequence numbers, timestamps and the VP8 picture
//! ID and TL0PICIDX continue.

use super::*;
use crate::bwe::allocator::LayerSelector;
use crate::router::svc::SpatialFilter;
use crate::router::temporal::PictureIds;

/// Clock ticks of 90 kHz video in one second.
pub(super) const VIDEO_CLOCK: i64 = 90_000;

/// What a consumer of a layered producer ([`Producer::is_layered`]: simulcast,
/// or VP9 with spatial layers) keeps so that its subscriber sees one
/// continuous stream across layer switches.
#[derive(Debug, Default)]
pub(crate) struct SimulcastConsumer {
    pub(crate) selector: LayerSelector,
    /// The spatial layers of a VP9 stream it forwards ([`Producer::is_svc`]).
    pub(crate) spatial: SpatialFilter,
    /// The largest width its subscriber shows it at, pixels.
    pub(crate) max_width: Option<u16>,
    /// The VP8 picture IDs sent (RFC 7741 §4.2): continuous across layer
    /// switches and pictures left out.
    pub(crate) pictures: PictureIds,
    /// Output = input + offset (wrapping), for the VP8 TL0PICIDX.
    pub(crate) tl0picidx_offset: u8,
    /// The last picture ID and TL0PICIDX sent (output values).
    pub(crate) last_picture_id: Option<u16>,
    pub(crate) last_tl0picidx: Option<u8>,
    /// The last RTP timestamp sent (output value) and when.
    pub(crate) last_ts: Option<(u32, Instant)>,
    /// Layer switches done.
    pub(crate) switches: u32,
    /// The encoding forwarded last, kept across a pause so the next one
    /// continues its timestamps.
    pub(crate) last_layer: Option<u8>,
    /// Paused for want of bandwidth: not resumed before then, nor unless
    /// the lowest layer fits with the upgrade margin.
    pub(crate) no_room_until: Option<Instant>,
    /// Since when the lowest layer has fit again while paused so.
    pub(crate) room_since: Option<Instant>,
    /// Since when the lowest layer has not fit on a lossy path while
    /// forwarding: paused for want of room after [`crate::router::NO_ROOM_HOLD`].
    pub(crate) starved_since: Option<Instant>,
    /// How long the next such pause lasts at least (doubles, 10–60 s; a
    /// resume that holds resets it).
    pub(crate) no_room_backoff: Option<(std::time::Duration, Instant)>,
}

impl SimulcastConsumer {
    /// After a copy of a packet was written to `out` (its payload and
    /// padding, `payload_len` bytes, at the end): rewrites the VP8 picture
    /// ID and TL0PICIDX by the consumer's offsets, and keeps the latest
    /// output values for the next switch.
    pub(crate) fn on_forwarded(
        &mut self,
        out: &mut [u8],
        payload_len: usize,
        vp8: Option<&Vp8Descriptor>,
        timestamp: u32,
        now: Instant,
    ) {
        if self
            .last_ts
            .is_none_or(|(t, _)| (timestamp.wrapping_sub(t) as i32) >= 0)
        {
            self.last_ts = Some((timestamp, now));
        }
        let Some(d) = vp8 else { return };
        let at = out.len() - payload_len;
        let m = d.picture_id_modulus();
        let picture_id = d.picture_id.map(|p| self.pictures.output(p, m));
        let tl0 = d.tl0picidx.map(|t| t.wrapping_add(self.tl0picidx_offset));
        d.rewrite(&mut out[at..], picture_id.unwrap_or(0), tl0.unwrap_or(0));
        if let Some(p) = picture_id
            && self
                .last_picture_id
                .is_none_or(|l| p.wrapping_sub(l) & (m - 1) < m / 2)
        {
            self.last_picture_id = Some(p);
        }
        if let Some(t) = tl0
            && self.last_tl0picidx.is_none_or(|l| t.wrapping_sub(l) < 128)
        {
            self.last_tl0picidx = Some(t);
        }
    }
}

impl Consumer {
    /// Switches this consumer to encoding `to`, at a keyframe whose
    /// RTP timestamp is `ts`: its sequence numbers continue where they were,
    /// its timestamps continue from the same capture clock (mapped through the
    /// two encodings' sender reports, RFC 3550 §6.4.1, as mediasoup does; from
    /// the time since the last packet without them), and the VP8 picture ID
    /// and TL0PICIDX continue by one (RFC 7741 §4.2).
    pub(super) fn switch_layer(
        &mut self,
        encodings: &[producer::Encoding],
        to: u8,
        ts: u32,
        vp8: Option<&Vp8Descriptor>,
        now: Instant,
    ) {
        let c = self;
        let Some(s) = c.simulcast.as_deref_mut() else {
            c.layer = Some(to);
            c.seq.sync();
            return;
        };
        let from = c.layer.or(s.last_layer);
        c.layer = Some(to);
        c.seq.sync();
        c.temporal.on_keyframe();
        s.last_layer = Some(to);
        if from.is_some_and(|f| f != to) {
            s.switches += 1;
        }
        if let (Some(from), Some((last_ts, at))) = (from, s.last_ts) {
            let elapsed = (now.saturating_duration_since(at).as_micros() as i64 * VIDEO_CLOCK
                / 1_000_000)
                .max(1);
            let by_time = last_ts.wrapping_add(elapsed as u32);
            // The new packet's capture time in the old encoding's clock.
            let by_sr = match (
                encodings.get(from as usize).and_then(|e| e.last_sr),
                encodings.get(to as usize).and_then(|e| e.last_sr),
            ) {
                (Some(a), Some(b)) => {
                    let since_b = i64::from(ts.wrapping_sub(b.rtp_ts) as i32);
                    let ntp_ticks =
                        ((i128::from(b.ntp) - i128::from(a.ntp)) * i128::from(VIDEO_CLOCK)) >> 32;
                    let in_a = a.rtp_ts.wrapping_add((since_b + ntp_ticks as i64) as u32);
                    Some(in_a.wrapping_add(c.ts_offset))
                }
                _ => None,
            };
            // Sender reports of the two layers that disagree with the clock by
            // over a second are not trusted.
            let mut out = by_sr
                .filter(|o| i64::from(o.wrapping_sub(by_time) as i32).abs() < VIDEO_CLOCK)
                .unwrap_or(by_time);
            if (out.wrapping_sub(last_ts) as i32) <= 0 {
                out = last_ts.wrapping_add(1);
            }
            c.ts_offset = out.wrapping_sub(ts);
        }
        if let Some(d) = vp8 {
            if let (Some(p), Some(last)) = (d.picture_id, s.last_picture_id) {
                let m = d.picture_id_modulus();
                s.pictures.restart(p, last.wrapping_add(1) & (m - 1), m);
            }
            if let (Some(t), Some(last)) = (d.tl0picidx, s.last_tl0picidx) {
                s.tl0picidx_offset = last.wrapping_add(1).wrapping_sub(t);
            }
        }
    }
}
