//! Worker supervision: events from the data plane, the watchdog that pings
//! every worker, failing a worker's rooms, and starting its replacement.

use super::*;

impl Hub {
    pub(super) fn on_core(&mut self, ev: Event) {
        match ev {
            Event::Router {
                router,
                event: RouterEvent::AudioLevels(_),
            } => {
                // Levels are sent again in 300 ms: dropped when the room is busy.
                if let Some(r) = self.by_router.get(&router).and_then(|n| self.rooms.get(n)) {
                    let _ = r.tx.try_send(RoomMsg::Core(ev));
                }
            }
            Event::Router { router, .. } => {
                if let Some(r) = self.by_router.get(&router).and_then(|n| self.rooms.get(n)) {
                    deliver(&r.tx, RoomMsg::Core(ev));
                }
            }
            Event::RouterFailed { router, message } => {
                // That room alone (its side of it, when spread): its router
                // was dropped, the worker goes on.
                tracing::error!(%router, panic = %message, "a room's router failed");
                self.fail_routers(|r, _| r == router);
                self.update_registry();
            }
            Event::WorkerFailed {
                worker,
                generation,
                message,
            } => {
                let why = format!("the worker panicked outside any room: {message}");
                self.fail_worker(worker, generation, &why);
            }
            Event::WorkerStopped { worker, generation } => {
                tracing::debug!(worker, generation, "worker stopped");
            }
            other => tracing::debug!(event = ?other, "core event"),
        }
    }

    pub(super) fn start_watchdog(&mut self, i: usize) {
        let r = self.workers[i].r.clone();
        let hub = self.hub_tx.clone();
        self.workers[i].watchdog = Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(WATCHDOG_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let (otx, orx) = oneshot::channel();
                let sent = r.tx.try_send(Command::Ping {
                    reply: Box::new(move |_| {
                        let _ = otx.send(());
                    }),
                });
                let answered = match sent {
                    Ok(()) => matches!(
                        tokio::time::timeout(WATCHDOG_TIMEOUT, orx).await,
                        Ok(Ok(()))
                    ),
                    // A full queue: wait as long, then look again.
                    Err(TrySendError::Full(_)) => {
                        tokio::time::sleep(WATCHDOG_TIMEOUT).await;
                        !r.tx.is_full()
                    }
                    Err(TrySendError::Disconnected(_)) => false,
                };
                if !answered {
                    let _ = hub
                        .send(HubMsg::WorkerUnresponsive {
                            worker: r.index,
                            generation: r.generation,
                        })
                        .await;
                    return;
                }
            }
        }));
    }

    /// Marks worker `i` failed (if `generation` is the current one and it was
    /// healthy): its rooms get `room-failed`, nothing new goes there, and a
    /// replacement is started on the same CPU.
    pub(super) fn fail_worker(&mut self, i: usize, generation: u32, why: &str) {
        let Some(slot) = self.workers.get_mut(i) else {
            return;
        };
        if slot.r.generation != generation || !slot.healthy {
            return;
        }
        slot.healthy = false;
        let _ = slot.failed_tx.send(true);
        if let Some(w) = slot.watchdog.take() {
            w.abort();
        }
        tracing::error!(worker = i, generation, reason = %why, "data-plane worker failed; its rooms (or their routers on it) are closed");
        self.fail_routers(|_, w| w == i);
        self.publish_workers();
        self.update_registry();
        if let Some(spawner) = self.spawner.clone() {
            let hub = self.hub_tx.clone();
            let next = generation + 1;
            tokio::spawn(async move {
                let result = tokio::task::spawn_blocking(move || spawner(i, next))
                    .await
                    .unwrap_or_else(|e| Err(e.into()));
                let _ = hub
                    .send(HubMsg::WorkerRestarted {
                        worker: i,
                        generation: next,
                        result,
                    })
                    .await;
            });
        }
    }

    /// The routers for which `failed(router, worker)` holds are gone: a
    /// room with no other router fails whole (`room-failed` to all); a
    /// spread room loses only those ([`RoomMsg::ShardFailed`]).
    fn fail_routers(&mut self, failed: impl Fn(RouterId, usize) -> bool) {
        let mut closed = Vec::new();
        for (name, entry) in &mut self.rooms {
            if !entry.routers.iter().any(|&(r, w)| failed(r, w)) {
                continue;
            }
            if entry.routers.iter().all(|&(r, w)| failed(r, w)) {
                tracing::error!(room = %name, "the room's routers failed; the room is closed");
                closed.push(name.clone());
                continue;
            }
            for &(r, _) in entry.routers.iter().filter(|&&(r, w)| failed(r, w)) {
                self.by_router.remove(&r);
                deliver(&entry.tx, RoomMsg::ShardFailed { router: r });
            }
            entry.routers.retain(|&(r, w)| !failed(r, w));
            if let Some(&(_, w)) = entry.routers.first() {
                entry.view.worker = w;
            }
        }
        for name in closed {
            if let Some(entry) = self.rooms.remove(&name) {
                for (r, _) in &entry.routers {
                    self.by_router.remove(r);
                }
                deliver(&entry.tx, RoomMsg::Failed);
            }
        }
    }

    pub(super) fn on_restarted(
        &mut self,
        i: usize,
        generation: u32,
        result: Result<(CommandSender, Arc<Counters>), ServerError>,
    ) {
        match result {
            Ok((tx, counters)) => {
                let slot = self.make_slot(i, generation, tx, counters);
                if let Some(old) = self.workers.get_mut(i) {
                    *old = slot;
                }
                self.start_watchdog(i);
                self.link_worker(i);
                self.publish_workers();
                self.registry
                    .worker_restarts
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(worker = i, generation, "worker restarted");
                self.update_registry();
            }
            Err(e) => {
                tracing::error!(worker = i, error = %e, "worker could not be restarted; no new rooms go there");
            }
        }
    }
}
