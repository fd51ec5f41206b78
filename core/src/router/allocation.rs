//! Layer allocation: every 500 ms each subscriber's budget is shared out
//! over the simulcast and temporal layers it receives
//! ([`allocator::allocate`]), and encodings nobody needs are paused at the
//! source.

use super::*;
use crate::bwe::allocator::{Demand, LayerOption};
use crate::router::temporal::relieved;

/// How long, after a probe above a subscriber's loss ceiling spent a
/// policer's bucket (it failed, or a NACK came in its fallout), the
/// consumers at full frame rate leave out most of their top temporal layer
/// ([`temporal::relieved`]): the bucket refills only as fast as the media
/// leaves room (~10 % of its rate in a full path). Until it does, frame
/// bursts lose their tails and each resend takes the place of media; a
/// receiver gives a packet up after ten NACKs (libwebrtc's
/// `kMaxNackRetries`, 20 ms apart) and the video freezes until the keyframe
/// it then asks for. libwebrtc's pacer sends resends before new media for
/// the same reason. Loss of another cause (a lossy radio: random loss
/// under a ceiling) gets no relief: frame rate would be given up for
/// nothing. The layer pass meanwhile takes the path's loss as fallout. A
/// relief starts no sooner than [`RELIEF_GAP`] after the last ended.
pub(super) const RELIEF: Duration = Duration::from_secs(1);
/// See [`RELIEF`].
pub(super) const RELIEF_GAP: Duration = Duration::from_secs(2);

/// Whether a relief that began at `start` holds at `now`.
fn relief_holds(start: Option<Instant>, now: Instant) -> bool {
    start.is_some_and(|t| now.saturating_duration_since(t) < RELIEF)
}

/// Whether simulcast consumer `c` (`cid`) gets video in this layer pass,
/// where `left` (bit/s; `None`: not limited) is what its subscriber's
/// budget leaves after the least option of each consumer before it, `min`
/// its own least option's rate, and `first` says it is the first in order
/// (which always keeps video). Pauses and resumes it, with a
/// [`RouterEvent::VideoPaused`] or [`RouterEvent::VideoResumed`]:
/// - paused when `min` has not fit for [`NO_ROOM_HOLD`] on a `lossy` path
///   (at once right after a resume from such a pause: the resume failed);
///   a receiver starved of CPU also delays its feedback, and that alone
///   must not take tiles away;
/// - resumed once `min` has fit with the upgrade margin for as long as a
///   probe's rise takes to be confirmed (a policer's bucket lets a chain
///   of probes through for seconds), after its backoff (doubling, 10–60 s,
///   for a pause that comes soon after a resume).
#[expect(
    clippy::too_many_arguments,
    reason = "one consumer's inputs to the pause decision, each a number"
)]
fn keeps_video(
    now: Instant,
    c: &mut Consumer,
    cid: ConsumerId,
    first: bool,
    left: Option<u64>,
    min: u64,
    lossy: bool,
    events: &mut VecDeque<RouterEvent>,
) -> bool {
    let Some(s) = c.simulcast.as_deref_mut() else {
        return false;
    };
    let room = left.is_none_or(|b| b as f64 >= min as f64 * allocator::UP_MARGIN);
    if c.target_layer == NO_LAYER && room {
        s.room_since.get_or_insert(now);
    } else {
        s.room_since = None;
    }
    let resting = c.target_layer == NO_LAYER
        && (s.no_room_until.is_some_and(|t| now < t)
            || s.room_since
                .is_none_or(|t| now.saturating_duration_since(t) < probe::CONFIRM));
    if lossy && left.is_some_and(|b| b < min) {
        s.starved_since.get_or_insert(now);
    } else {
        s.starved_since = None;
    }
    let just_resumed = s.no_room_backoff.is_some_and(|(_, resumed)| {
        now.saturating_duration_since(resumed) < allocator::FAILED_WITHIN
    });
    let hold = if just_resumed {
        Duration::ZERO
    } else {
        NO_ROOM_HOLD
    };
    let starved = s
        .starved_since
        .is_some_and(|t| now.saturating_duration_since(t) >= hold);
    if !first && (resting || starved) {
        if c.target_layer != NO_LAYER {
            // Paused again soon after a resume: wait longer.
            let wait = match s.no_room_backoff {
                Some((d, resumed)) if now.saturating_duration_since(resumed) < d => {
                    (d * 2).min(allocator::BACKOFF_MAX)
                }
                _ => allocator::BACKOFF_MIN,
            };
            s.no_room_until = Some(now + wait);
            s.no_room_backoff = Some((wait, now));
            tracing::debug!(
                target: "sfu::layers",
                consumer = %cid,
                left = ?left,
                lowest = min,
                "no room for the lowest layer: video paused"
            );
            s.last_layer = c.layer.or(s.last_layer);
            c.layer = None;
            c.target_layer = NO_LAYER;
            events.push_back(RouterEvent::VideoPaused(cid, PauseReason::LowBandwidth));
        }
        return false;
    }
    if c.target_layer == NO_LAYER {
        if let Some((d, _)) = s.no_room_backoff {
            s.no_room_backoff = Some((d, now));
        }
        events.push_back(RouterEvent::VideoResumed(cid));
    }
    true
}

impl Router {
    /// Subscriber transport `tid` sent a NACK, or a probe to it failed, at
    /// `now`: within a probe's fallout under its loss ceiling
    /// ([`crate::bwe::loss_ceiling::LossCeiling::probe_fallout`]), its VP8
    /// consumers at full frame rate leave out most of their top temporal
    /// layer from their next frame on, for [`RELIEF`] (the layer pass keeps
    /// them there meanwhile), unless a relief began less than [`RELIEF`] +
    /// [`RELIEF_GAP`] ago.
    pub(super) fn relieve(&mut self, now: Instant, tid: TransportId) {
        let Some(t) = self.transports.get_mut(tid) else {
            return;
        };
        let recent = t
            .relief
            .is_some_and(|s| now.saturating_duration_since(s) < RELIEF + RELIEF_GAP);
        if recent || !t.loss_ceiling.probe_fallout(now) {
            return;
        }
        t.relief = Some(now);
        let mut relieved_any = false;
        for cid in &t.consumers {
            let Some(c) = self.consumers.get_mut(*cid) else {
                continue;
            };
            let Some(p) = self.producers.get(c.params.producer) else {
                continue;
            };
            if p.is_svc() || c.simulcast.is_none() {
                continue;
            }
            let Some(e) = c.layer.and_then(|l| p.encodings.get(usize::from(l))) else {
                continue;
            };
            let rates = e.temporal.map(|x| x.rate.bps());
            let (layer, temporal) = c.layer_target(false);
            let to = relieved(temporal, &rates);
            relieved_any |= to != temporal;
            c.set_layer_target(false, layer, to);
        }
        if relieved_any {
            self.counters.reliefs.add(1);
            self.worker_counters.reliefs.add(1);
            tracing::debug!(target: "sfu::layers", transport = %tid, "relief: room for resends");
        }
    }

    /// What consumers can choose from of producer `p` at `now`: its
    /// encodings, or the spatial layers (one or more) of its one VP9 or
    /// AV1 stream, once its packets said their layers.
    pub(super) fn layer_infos(p: &Producer, now: Instant) -> Vec<LayerInfo> {
        if !p.is_simulcast()
            && let Some(s) = p.encodings.first().and_then(|e| e.spatial.as_ref())
        {
            let infos = s.infos(now, ENCODING_INACTIVE_AFTER);
            if !infos.is_empty() {
                return infos;
            }
        }
        p.encodings
            .iter()
            .map(|e| LayerInfo {
                bps: e.rate.bps() + e.overhead_rate.bps(),
                width: e.size.map(|(w, _)| w),
                active: e
                    .last_packet
                    .is_some_and(|t| now.saturating_duration_since(t) < ENCODING_INACTIVE_AFTER),
                temporal_bps: e.temporal.map(|t| t.rate.bps()),
                sync_bps: e.temporal.map(|t| t.sync_rate.bps()),
            })
            .collect()
    }

    /// Measures each encoding's rate (and its temporal layers' and packet
    /// overhead), then chooses each simulcast consumer's target: an
    /// encoding and a temporal layer. A subscriber's estimate, when
    /// congestion limits it, less 5 % and less what its other consumers
    /// receive (at wire size), is shared by its simulcast consumers in
    /// order, the dominant speaker's first ([`allocator::allocate`]): base
    /// layers first, then frame rate, then better encodings. One whose
    /// base layer has no room gets no video ([`NO_LAYER`], after
    /// [`keeps_video`]'s hold), the first always keeps its own. Each
    /// consumer's `LayerSelector` moves to its share with hysteresis; the
    /// climb is bounded by what got through while the path lost packets
    /// ([`crate::bwe::loss_ceiling`]). A consumer not yet on its target
    /// encoding asks for a keyframe of it (again, should the request or
    /// the keyframe have been lost). Every [`LAYERS_INTERVAL`] while a
    /// simulcast producer exists.
    pub(super) fn select_layers(&mut self, now: Instant) {
        let mut any = false;
        for (_, p) in self.producers.iter_mut() {
            any |= p.is_layered();
            for e in &mut p.encodings {
                if let Some(s) = &mut e.spatial {
                    s.sample(now, Duration::from_millis(900));
                }
                e.rate.sample(now, e.bytes, Duration::from_millis(900));
                let overhead = e.packets * producer::PACKET_OVERHEAD_BYTES;
                e.overhead_rate
                    .sample(now, overhead, Duration::from_millis(900));
                for t in &mut e.temporal {
                    t.sample(now, Duration::from_millis(900));
                }
            }
        }
        if !any {
            self.layers_scheduled = false;
            return;
        }
        // A probe's rise that congestion undid was a policer's bucket
        // letting a short burst through: back off. One that held for
        // probe::CONFIRM was real (ProbeController::on_tick).
        for (_, e) in self.transports.iter_mut() {
            e.probing.on_tick(now, &e.bwe);
        }
        let speaker = self
            .speaker
            .current()
            .and_then(|p| self.producers.get(p))
            .map(|p| p.params.transport);
        // Each layered producer's layers, once for every consumer.
        let infos: HashMap<ProducerId, Vec<LayerInfo>> = self
            .producers
            .iter()
            .filter(|(_, p)| p.is_layered())
            .map(|(id, p)| (id, Self::layer_infos(p, now)))
            .collect();
        let Self {
            transports,
            producers,
            consumers,
            events,
            ..
        } = self;
        let mut requests = Vec::new();
        let mut probes = Vec::new();
        let mut ours: Vec<(bool, ConsumerId)> = Vec::new();
        for (tid, sub) in transports.iter_mut() {
            // A pipe carries every encoding; the far end's consumers choose.
            if sub.transport.is_pipe() {
                continue;
            }
            ours.clear();
            let mut other = 0u64;
            for cid in &sub.consumers {
                let Some(c) = consumers.get(*cid) else {
                    continue;
                };
                let Some(p) = producers.get(c.params.producer) else {
                    continue;
                };
                if c.paused {
                    continue;
                }
                if p.is_layered() {
                    ours.push((Some(p.params.transport) != speaker, *cid));
                } else {
                    other += p
                        .encodings
                        .first()
                        .map_or(0, |e| e.rate.bps() + e.overhead_rate.bps());
                }
            }
            if ours.is_empty() {
                continue;
            }
            ours.sort();
            // Loss the estimate holds through (2–10 %, gcc-02 §6) means the
            // path is full: what got through is the bound then, as the
            // subscriber acknowledged it (what we sent includes probes and
            // retransmissions; the receive-report fallback has no better).
            // Loss a probe above the ceiling caused (it emptied a policer's
            // bucket), or that falls in a relief, neither lowers the ceiling
            // nor the layers: it ends as soon as the bucket refills.
            let relief = relief_holds(sub.relief, now);
            let fallout = sub.loss_ceiling.probe_fallout(now) || relief;
            let loss = if fallout { 0.0 } else { sub.bwe.last_loss() };
            let through = (loss > bwe::INCREASE_BELOW).then(|| {
                sub.bwe
                    .acked_bps()
                    .unwrap_or((sub.sending_rate.bps() as f64 * (1.0 - loss)) as u64)
            });
            let budget = sub
                .bwe
                .cap()
                .map(|cap| (cap.min(through.unwrap_or(u64::MAX)) * 95 / 100).saturating_sub(other));
            if let Some(t) = through {
                sub.loss_ceiling.on_lossy(now, t);
                tracing::debug!(
                    target: "sfu::layers",
                    subscriber = %tid,
                    through = t,
                    sending = sub.sending_rate.bps(),
                    loss,
                    ceiling = ?sub.loss_ceiling.ceiling(now),
                    "lossy layer pass"
                );
            }
            // What the layers may climb to: not above what got through
            // when the path last lost packets, for a while. The ceiling is
            // a median of what did get through, no margin off it: the
            // video a cap of 300 kbit/s leaves room for (one video's T2,
            // the other's T1, two Opus streams) is 95 % of it, and 3 % off
            // a sample that read 5 % low held the second video at 5 fps.
            let climb_budget = match sub.loss_ceiling.ceiling(now) {
                Some(t) => {
                    let ceiling = t.saturating_sub(other);
                    Some(budget.map_or(ceiling, |b| b.min(ceiling)))
                }
                None => budget,
            };
            let limited = budget.is_some();
            // Video is paused for want of room only on a path that loses
            // packets: a receiver starved of CPU also delays its feedback,
            // and that alone must not take tiles away.
            let lossy = loss > bwe::INCREASE_BELOW;
            // Each one's options for its tile, least first.
            let ladders: Vec<Vec<LayerOption>> = ours
                .iter()
                .map(|(_, cid)| {
                    let c = consumers.get(*cid)?;
                    let offered = infos.get(&c.params.producer)?;
                    let max_width = c.simulcast.as_ref().and_then(|s| s.max_width);
                    Some(allocator::ladder(offered, max_width))
                })
                .map(Option::unwrap_or_default)
                .collect();
            // An upgrade waits out its hold only while the estimate is
            // near what the layers need.
            let held = allocator::upgrades_wait(&ladders, climb_budget);
            // Who gets video at all: each one's least option, in order.
            let mut left = budget;
            let mut active: Vec<usize> = Vec::with_capacity(ours.len());
            for (i, (_, cid)) in ours.iter().enumerate() {
                let Some(min) = ladders[i].first().map(|o| o.bps) else {
                    continue;
                };
                let Some(c) = consumers.get_mut(*cid) else {
                    continue;
                };
                if !keeps_video(now, c, *cid, i == 0, left, min, lossy, events) {
                    continue;
                }
                left = left.map(|b| b.saturating_sub(min));
                active.push(i);
            }
            // What each of them gets: frame rate is given up before a
            // video, resolution before frame rate (allocator::allocate).
            let demands: Vec<Demand<'_>> = active
                .iter()
                .map(|&i| Demand {
                    ladder: &ladders[i],
                    speaker: !ours[i].0,
                })
                .collect();
            let wanted = allocator::allocate(&demands, budget);
            let up = allocator::allocate_up(&demands, climb_budget);
            tracing::trace!(
                target: "sfu::layers",
                subscriber = %tid,
                budget = ?budget,
                climb_budget = ?climb_budget,
                wanted = ?wanted,
                up = ?up,
                demands = ?demands
                    .iter()
                    .map(|d| (d.speaker, d.ladder.iter().map(|o| o.bps / 1000).collect::<Vec<_>>()))
                    .collect::<Vec<_>>(),
                "layer pass"
            );
            for (k, &i) in active.iter().enumerate() {
                let cid = ours[i].1;
                let Some(c) = consumers.get_mut(cid) else {
                    continue;
                };
                let Some(p) = producers.get(c.params.producer) else {
                    continue;
                };
                let (svc, key_svc) = (
                    p.is_svc(),
                    p.encodings
                        .first()
                        .and_then(|e| e.spatial.as_ref())
                        .is_some_and(|s| s.key_svc()),
                );
                let Some(s) = c.simulcast.as_deref_mut() else {
                    continue;
                };
                let (w, u) = (wanted[k].unwrap_or(0), up[k]);
                let Some(t) = s.selector.select(now, &ladders[i], w, u, held, lossy) else {
                    continue;
                };
                // Resends after a loss need room, and the bucket refill (RELIEF).
                let temporal = match infos.get(&c.params.producer) {
                    Some(l) if relief && !svc => l
                        .get(t.spatial)
                        .map_or(t.temporal, |l| relieved(t.temporal, &l.temporal_bps)),
                    _ => t.temporal,
                };
                let to = (t.spatial as u8, temporal);
                if c.layer_target(svc) != to {
                    tracing::debug!(
                        target: "sfu::layers",
                        consumer = %cid,
                        from = ?c.layer_target(svc),
                        to = ?to,
                        budget = ?budget,
                        bps = t.bps,
                        order = i,
                        speaker = !ours[i].0,
                        wanted = w,
                        up = u,
                        ladder = ?ladders[i].iter().map(|o| o.bps / 1000).collect::<Vec<_>>(),
                        "new target layer"
                    );
                }
                c.set_layer_target(svc, to.0, to.1);
                // A consumer not yet on its encoding, or on its spatial
                // layer where that needs a keyframe, asks for one.
                let spatial_waits = svc
                    && c.simulcast
                        .as_ref()
                        .is_some_and(|s| s.spatial.needs_keyframe(key_svc));
                if c.layer != Some(c.target_layer) || spatial_waits {
                    requests.push((c.params.producer, c.target_layer));
                }
            }
            // Consumers held below what their tiles want by the estimate
            // alone: probe whether the path takes enough for that (not
            // during a relief: the bucket is refilling).
            if limited
                && !relief
                && sub.probe.is_none()
                && sub.twcc_send.is_some()
                && sub.bwe.has_feedback()
                && sub.probing.may_probe(now)
            {
                let mut need = 0u64;
                let mut via = None;
                for ((_, cid), ladder) in ours.iter().zip(&ladders) {
                    let (Some(c), Some(best)) = (consumers.get(*cid), ladder.last()) else {
                        continue;
                    };
                    let svc = producers.get(c.params.producer).is_some_and(|p| p.is_svc());
                    let (layer, temporal) = c.layer_target(svc);
                    let current = ladder
                        .iter()
                        .find(|o| o.spatial == usize::from(layer) && o.temporal == temporal)
                        .map_or(0, |o| o.bps);
                    if best.bps > current {
                        need += (best.bps as f64 * allocator::UP_MARGIN) as u64 - current;
                        if c.params.rtx.is_some() {
                            via = Some(*cid);
                        }
                    }
                }
                // At most twice the estimate, as libwebrtc's further
                // exponential probes: a chain that finds a lifted cap ends a
                // loss ceiling in fewer steps (what it carries above it is
                // what counts, `loss_ceiling::LIFT_EXCESS`).
                if let Some(cid) = via {
                    let est = sub.bwe.bps();
                    let target = (est + need * 100 / 95).clamp(est * 12 / 10, est * 2);
                    probes.push((tid, cid, target));
                }
            }
        }
        for (pid, enc) in requests {
            self.request_keyframe(now, pid, enc);
        }
        for (tid, cid, target) in probes {
            self.start_probe(now, tid, cid, target);
        }
        self.update_source_layers(now, &infos);
        self.timers
            .push(Reverse((now + LAYERS_INTERVAL, Timer::Layers)));
    }

    /// Which encodings of each simulcast producer someone can use: those
    /// its unpaused consumers' tiles need by width
    /// ([`allocator::needed_for_size`]), those they forward now, and always
    /// the narrowest. A change is a [`RouterEvent::SourceLayers`]: at once
    /// when more are needed, after [`SOURCE_LAYERS_HOLD`] of needing
    /// fewer (a tile that shrinks for a moment stops nothing).
    /// `infos`: each simulcast producer's layers, as this layer pass
    /// measured them.
    pub(super) fn update_source_layers(
        &mut self,
        now: Instant,
        infos: &HashMap<ProducerId, Vec<LayerInfo>>,
    ) {
        let Self {
            producers,
            consumers,
            events,
            ..
        } = self;
        for (pid, p) in producers.iter_mut() {
            // Only a simulcast publisher can be told to stop an encoding.
            if !p.is_simulcast() {
                continue;
            }
            let Some(infos) = infos.get(&pid) else {
                continue;
            };
            let n = infos.len().min(8);
            let all = ((1u16 << n) - 1) as u8;
            let narrowest = infos
                .iter()
                .enumerate()
                .min_by_key(|(i, l)| (l.width.unwrap_or(u16::MAX), *i))
                .map_or(0, |(i, _)| i);
            let mut needed = 1u8 << narrowest;
            for cid in &p.consumers {
                let Some(c) = consumers.get(*cid) else {
                    continue;
                };
                if c.paused {
                    continue;
                }
                if let Some(l) = c.layer {
                    needed |= 1 << l;
                }
                let max_width = c.simulcast.as_ref().and_then(|s| s.max_width);
                needed |= allocator::needed_for_size(infos, max_width);
            }
            needed &= all;
            let sent = p.source_layers.0 & all;
            let mut next = sent | needed;
            if sent & !needed != 0 {
                let since = *p.source_layers.1.get_or_insert(now);
                if now.saturating_duration_since(since) >= SOURCE_LAYERS_HOLD {
                    next = needed;
                }
            }
            if next == needed {
                p.source_layers.1 = None;
            }
            if next != sent {
                tracing::debug!(
                    target: "sfu::layers",
                    producer = %pid,
                    from = format_args!("{sent:b}"),
                    to = format_args!("{next:b}"),
                    "encodings the publisher should send"
                );
                p.source_layers.0 = next;
                events.push_back(RouterEvent::SourceLayers(
                    pid,
                    (0..n).map(|i| next & (1 << i) != 0).collect(),
                ));
            }
        }
    }

    /// Sets the largest width, in pixels, at which the subscriber shows
    /// consumer `id`'s video (`None`: no limit): a simulcast consumer then
    /// forwards no wider layer than covers it. The next layer selection
    /// (within [`LAYERS_INTERVAL`]) applies it.
    ///
    /// Errors: [`Error::UnknownConsumer`].
    pub fn set_consumer_max_width(&mut self, id: ConsumerId, width: Option<u16>) -> Result<()> {
        let c = self
            .consumers
            .get_mut(id)
            .ok_or(Error::UnknownConsumer(id))?;
        if let Some(s) = c.simulcast.as_deref_mut() {
            s.max_width = width;
        }
        Ok(())
    }
}
