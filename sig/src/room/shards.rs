//! One room over every core: the room's Routers, one per worker it spans.
//!
//! The first is home: participants join there, and their producers live
//! there. When home's worker has more consumers than
//! `--worker-consumer-budget`, a viewer goes to the least-loaded healthy
//! worker instead; the room opens a Router there (once), links it to home
//! by a pair of PipeTransports, and pipes every producer to it: a pipe
//! consumer per encoding on home, a mirror producer on the new Router. The
//! viewer's consumers are then of the mirrors. Nothing is wired by hand.
//!
//! A Router of the room that fails (a panic, or its worker) takes only its
//! own members with it: they get `room-failed`, and the others' pipes to it
//! close.

use std::time::Duration;

use sfu_core::router::PipeConsumerParams;
use sfu_core::transport::PipeTarget;

use super::*;

/// How long a worker the room could not spread to is not tried again.
pub(super) const SPREAD_RETRY: Duration = Duration::from_secs(10);

/// A track's mirror on another Router of the room, and home's pipe
/// consumers that feed it.
#[derive(Debug, Clone)]
pub(super) struct Mirror {
    /// The Router it is on.
    pub(super) router: RouterId,
    /// The mirror producer there.
    pub(super) producer: ProducerId,
    /// Home's pipe consumers of the track, one per encoding, in order.
    pub(super) pipe_consumers: Vec<ConsumerId>,
}

/// One Router of the room.
#[derive(Debug)]
pub(super) struct Shard {
    pub(super) worker: WorkerRef,
    pub(super) router: RouterId,
    /// The port of its socket (the ICE candidate's).
    pub(super) port: u16,
    /// Off home: its pipe from home, as (home's end, this Router's end).
    pub(super) pipe: Option<(TransportId, TransportId)>,
}

impl Room {
    pub(super) fn shard(&self, router: RouterId) -> Option<&Shard> {
        self.shards.iter().find(|s| s.router == router)
    }

    /// The producer that carries `track` on `router`: the track's own on
    /// home, else its mirror there.
    pub(super) fn producer_on(
        track: &Track,
        home: RouterId,
        router: RouterId,
    ) -> Option<ProducerId> {
        if router == home {
            return Some(track.producer);
        }
        track
            .mirrors
            .iter()
            .find(|m| m.router == router)
            .map(|m| m.producer)
    }

    /// Home's router id, once it exists.
    pub(super) fn home(&self) -> Option<RouterId> {
        self.shards.first().map(|s| s.router)
    }

    /// Creates a router on `worker` with id `router` and tells the hub.
    async fn open_router(&mut self, worker: WorkerRef, router: RouterId) -> Result<&Shard, Fail> {
        let info = call(&worker, |reply| Command::CreateRouter { router, reply }).await?;
        let port = info.local_addr.port();
        tracing::info!(room = %self.name, worker = worker.index, %router, port, home = self.shards.is_empty(), "room router opened");
        self.tell_hub(RoomNotice::Opened {
            room: self.name.clone(),
            router,
            worker: worker.index,
            counters: info.counters,
        });
        self.shards.push(Shard {
            worker,
            router,
            port,
            pipe: None,
        });
        self.shards.last().ok_or(Fail(ServerMsg::error(
            "server-error",
            "the room's router vanished",
        )))
    }

    /// The Router a new member goes on: home for a participant, or while
    /// home's worker is within its consumer budget; else the least-loaded
    /// healthy worker's Router of the room, opened and piped on first use.
    /// Returns the router and its port.
    ///
    /// Errors: home cannot be opened ([`Fail`] to send). A Router that
    /// cannot be opened elsewhere leaves the member on home.
    pub(super) async fn place(&mut self, role: Role) -> Result<(RouterId, u16), Fail> {
        if self.shards.is_empty() {
            let (w, r) = (self.first_worker.clone(), self.first_router);
            self.open_router(w, r).await?;
        }
        let Some(home) = self.shards.first() else {
            return Err(Fail(ServerMsg::error(
                "server-error",
                "the room has no router",
            )));
        };
        let at_home = (home.router, home.port);
        let budget = self.ctx.cfg.limits.worker_consumer_budget;
        if role == Role::Participant || home.worker.counters.consumers.get() < budget as u64 {
            return Ok(at_home);
        }
        let workers = self.ctx.workers.borrow().clone();
        let now = Instant::now();
        let Some(best) = workers
            .iter()
            .filter(|w| !*w.failed.borrow())
            // One that could not be spread to is left alone for a while.
            .filter(|w| {
                self.spread_failed
                    .is_none_or(|(i, at)| i != w.index || now >= at + SPREAD_RETRY)
            })
            .min_by_key(|w| {
                (
                    w.counters.consumers.get(),
                    w.index != home.worker.index,
                    w.index,
                )
            })
        else {
            return Ok(at_home);
        };
        if let Some(s) = self.shards.iter().find(|s| s.worker.index == best.index) {
            // A Router with no pipe from home (home failed since) gets no
            // tracks: the member stays on home instead.
            return Ok(if s.pipe.is_some() || s.router == home.router {
                (s.router, s.port)
            } else {
                at_home
            });
        }
        match self.open_shard(best.clone()).await {
            Ok(placed) => Ok(placed),
            Err(Fail(m)) => {
                tracing::warn!(room = %self.name, worker = best.index, error = ?m, "could not spread the room to another worker; the member stays on home");
                self.spread_failed = Some((best.index, now));
                Ok(at_home)
            }
        }
    }

    /// Opens the room's Router on `worker`, pipes it from home and pipes
    /// every producer there. A Router opened but not piped is closed again.
    async fn open_shard(&mut self, worker: WorkerRef) -> Result<(RouterId, u16), Fail> {
        let Some(home) = self.shards.first() else {
            return Err(Fail(ServerMsg::error(
                "server-error",
                "the room has no router",
            )));
        };
        let (home_worker, home_router) = (home.worker.clone(), home.router);
        let router = RouterId(self.ctx.next_router.fetch_add(1, Ordering::Relaxed));
        let port = self.open_router(worker.clone(), router).await?.port;
        let pipe = match connect_shard(&worker, router, &home_worker, home_router).await {
            Ok(p) => p,
            Err(e) => {
                self.command(router, Command::CloseRouter { router });
                self.shards.retain(|s| s.router != router);
                return Err(e);
            }
        };
        if let Some(s) = self.shards.iter_mut().find(|s| s.router == router) {
            s.pipe = Some(pipe);
        }
        // Every track on home: its participants', and other nodes'.
        let mut tracks: Vec<Track> = self
            .participants
            .participants()
            .flat_map(|p| p.published.iter().cloned())
            .collect();
        for r in self.remote_publishers() {
            tracks.extend(self.tracks_of(r));
        }
        for t in tracks {
            if let Some(mirror) = self.pipe_track(&t, router).await
                && let Some(track) = self.track_mut(t.producer)
            {
                track.mirrors.push(mirror);
            }
        }
        tracing::info!(room = %self.name, worker = worker.index, %router, "room spread to another worker");
        Ok((router, port))
    }

    /// Pipes home's `track` to the room's Router `router`: a pipe consumer
    /// per encoding on home, and the mirror producer there. Returns them,
    /// or `None` (logged) when they could not be made.
    pub(super) async fn pipe_track(&self, track: &Track, router: RouterId) -> Option<Mirror> {
        let home = self.shards.first()?;
        let shard = self.shard(router)?;
        let (at_home, here) = shard.pipe?;
        let ssrcs: Vec<Ssrc> = track
            .params
            .encodings
            .iter()
            .map(|_| Ssrc(rand::random::<u32>() | 1))
            .collect();
        let mut pipe_consumers = Vec::with_capacity(ssrcs.len());
        for (i, ssrc) in ssrcs.iter().enumerate() {
            let params = PipeConsumerParams {
                transport: at_home,
                producer: track.producer,
                encoding: i as u8,
                ssrc: *ssrc,
            };
            let made = call(&home.worker, |reply| Command::CreatePipeConsumer {
                router: home.router,
                params,
                reply,
            })
            .await;
            match made {
                Ok(c) => pipe_consumers.push(c),
                Err(e) => {
                    tracing::warn!(room = %self.name, %router, error = %e, "pipe consumer not created");
                    return None;
                }
            }
        }
        let params = track.params.mirror(here, &ssrcs);
        match call(&shard.worker, |reply| Command::CreateProducer {
            router,
            params,
            reply,
        })
        .await
        {
            Ok(producer) => Some(Mirror {
                router,
                producer,
                pipe_consumers,
            }),
            Err(e) => {
                tracing::warn!(room = %self.name, %router, error = %e, "mirror producer not created");
                None
            }
        }
    }

    /// Closes `track`'s producer on `router` and its mirrors elsewhere
    /// (each with its consumers).
    pub(super) fn close_track(&self, router: RouterId, track: &Track) {
        self.command(
            router,
            Command::CloseProducer {
                router,
                producer: track.producer,
            },
        );
        self.close_mirrors(track);
    }

    /// Closes `track`'s mirrors on the room's other Routers (each with its
    /// consumers); home's pipe consumers close with the track's producer.
    pub(super) fn close_mirrors(&self, track: &Track) {
        for m in &track.mirrors {
            self.command(
                m.router,
                Command::CloseProducer {
                    router: m.router,
                    producer: m.producer,
                },
            );
        }
    }

    /// Pipes a track just published on home to each of the room's other
    /// Routers, recording its mirrors and pipe consumers in it.
    pub(super) async fn pipe_everywhere(&self, track: &mut Track) {
        for s in self.shards.iter().skip(1) {
            if let Some(m) = self.pipe_track(track, s.router).await {
                track.mirrors.push(m);
            }
        }
    }

    /// The encodings Router `router`'s consumers of a mirror need
    /// ([`sfu_core::router::RouterEvent::SourceLayers`] of it): home's pipe
    /// consumers of the others pause, so home's producer counts only what
    /// is used anywhere when it tells the publisher which to send.
    pub(super) fn mirror_layers(&self, router: RouterId, mirror: ProducerId, active: &[bool]) {
        let Some(home) = self.home() else { return };
        let Some(pcs) = self
            .participants
            .participants()
            .flat_map(|p| &p.published)
            .flat_map(|t| &t.mirrors)
            .find(|m| m.router == router && m.producer == mirror)
            .map(|m| m.pipe_consumers.clone())
        else {
            return;
        };
        for (consumer, on) in pcs.into_iter().zip(active) {
            self.command(
                home,
                Command::SetConsumerPaused {
                    router: home,
                    consumer,
                    paused: !on,
                },
            );
        }
    }

    /// Router `router` failed while others live: its members get
    /// `room-failed` and leave; the pipes to it close; if it was home, the
    /// next Router is home from now on.
    pub(super) async fn on_shard_failed(&mut self, router: RouterId) {
        let Some(i) = self.shards.iter().position(|s| s.router == router) else {
            return;
        };
        let failed = ServerMsg::error(
            "room-failed",
            "the part of the room you were on failed (a server worker); join again",
        );
        let gone: Vec<u64> = self
            .participants
            .iter()
            .filter(|p| p.router == router)
            .map(|p| p.id)
            .collect();
        tracing::error!(room = %self.name, %router, members = gone.len(), "a router of the spread room failed; its members leave, the rest stay");
        // The pipe ends that led to or from it.
        if i == 0 {
            for s in self.shards.iter().skip(1) {
                if let Some((_, here)) = s.pipe {
                    self.command(
                        s.router,
                        Command::CloseTransport {
                            router: s.router,
                            transport: here,
                        },
                    );
                }
            }
        } else if let (Some(home), Some((at_home, _))) = (self.home(), self.shards[i].pipe) {
            self.command(
                home,
                Command::CloseTransport {
                    router: home,
                    transport: at_home,
                },
            );
        }
        let shard = self.shards.remove(i);
        let publishers: Vec<u64> = self.participants.participants().map(|p| p.id).collect();
        for pid in publishers {
            if let Some(p) = self.participants.get_mut(pid) {
                for t in &mut p.published {
                    t.mirrors.retain(|m| m.router != shard.router);
                }
            }
        }
        for pid in gone {
            if let Some(p) = self.participants.get(pid) {
                p.conn.send(&failed);
            }
            self.remove_participant(pid, false).await;
        }
        if i == 0 {
            // Home is gone with its producers: the rest have no pipe now.
            for s in &mut self.shards {
                s.pipe = None;
            }
        }
    }
}

/// The pipe between home (`home_router` on `home_worker`) and the room's
/// new Router `router` on `worker`: an end on each, each connected to the
/// other. Returns (home's end, the new Router's end).
async fn connect_shard(
    worker: &WorkerRef,
    router: RouterId,
    home_worker: &WorkerRef,
    home_router: RouterId,
) -> Result<(TransportId, TransportId), Fail> {
    let at_home = call(home_worker, |reply| Command::CreatePipeTransport {
        router: home_router,
        reply,
    })
    .await?;
    let here = call(worker, |reply| Command::CreatePipeTransport {
        router,
        reply,
    })
    .await?;
    call(home_worker, |reply| Command::ConnectPipeTransport {
        router: home_router,
        transport: at_home,
        peer: PipeTarget {
            worker: worker.index,
            router,
            transport: here,
        }
        .into(),
        reply,
    })
    .await?;
    call(worker, |reply| Command::ConnectPipeTransport {
        router,
        transport: here,
        peer: PipeTarget {
            worker: home_worker.index,
            router: home_router,
            transport: at_home,
        }
        .into(),
        reply,
    })
    .await?;
    Ok((at_home, here))
}
