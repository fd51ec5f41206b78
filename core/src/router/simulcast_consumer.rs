//! A simulcast consumer's layer switch: sequence numbers, timestamps and
//! the VP8 picture id continue across the switch.

use super::*;

/// Clock ticks of 90 kHz video in one second.
pub(super) const VIDEO_CLOCK: i64 = 90_000;

/// Switches simulcast consumer `c` to encoding `to`, at a keyframe whose
/// RTP timestamp is `ts`: its sequence numbers continue where they were,
/// its timestamps continue from the same capture clock (mapped through the
/// two encodings' sender reports, RFC 3550 §6.4.1, as mediasoup does; from
/// the time since the last packet without them), and the VP8 picture ID
/// and TL0PICIDX continue by one (RFC 7741 §4.2).
pub(super) fn switch_layer(
    c: &mut Consumer,
    encodings: &[producer::Encoding],
    to: u8,
    ts: u32,
    vp8: Option<&Vp8Descriptor>,
    now: Instant,
) {
    let Some(s) = c.simulcast.as_deref_mut() else {
        c.layer = Some(to);
        c.seq.sync();
        return;
    };
    let from = c.layer.or(s.last_layer);
    c.layer = Some(to);
    c.seq.sync();
    s.last_layer = Some(to);
    if from.is_some_and(|f| f != to) {
        s.switches += 1;
    }
    if let (Some(from), Some((last_ts, at))) = (from, s.last_ts) {
        let elapsed =
            (now.saturating_duration_since(at).as_micros() as i64 * VIDEO_CLOCK / 1_000_000).max(1);
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
            s.picture_id_offset =
                last.wrapping_add(1).wrapping_sub(p) & (d.picture_id_modulus() - 1);
        }
        if let (Some(t), Some(last)) = (d.tl0picidx, s.last_tl0picidx) {
            s.tl0picidx_offset = last.wrapping_add(1).wrapping_sub(t);
        }
    }
}
