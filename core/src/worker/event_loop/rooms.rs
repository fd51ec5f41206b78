//! The loop's rooms under panic containment: a call into a Router (or its
//! output) that panics fails that room alone, which is dropped at the end
//! of the step without being called into again.

use std::collections::HashMap;

use slab::Slab;

use super::{Failed, Io, Room, caught};
use crate::error::{Error, Result};
use crate::ids::RouterId;
use crate::router::Router;
use crate::worker::{Event, send_event};

/// [`Io::after`] for each room in `touched` (those fed datagrams or piped
/// packets in this step); a panic fails that room alone.
pub(super) fn flush(rooms: &mut Slab<Room>, io: &mut Io, failed: &mut Failed, touched: &[usize]) {
    for &slot in touched {
        if let Some(room) = rooms.get_mut(slot).filter(|r| !r.failed)
            && let Err(msg) = caught(|| io.after(slot, room))
        {
            room.failed = true;
            failed.push((slot, msg));
        }
    }
}

/// Runs `f` on router `id` and then [`Io::after`], or fails with
/// [`Error::UnknownRouter`]. A panic in either is caught ([`caught`]): the
/// room is marked failed and put in `failed` for [`reap`], and the request
/// fails with [`Error::RouterFailed`].
pub(super) fn on_router<T>(
    rooms: &mut Slab<Room>,
    by_id: &HashMap<RouterId, usize>,
    io: &mut Io,
    failed: &mut Failed,
    id: RouterId,
    f: impl FnOnce(&mut Router) -> Result<T>,
) -> Result<T> {
    let slot = *by_id.get(&id).ok_or(Error::UnknownRouter(id))?;
    let room = rooms.get_mut(slot).ok_or(Error::UnknownRouter(id))?;
    if room.failed {
        return Err(Error::RouterFailed(id));
    }
    match caught(|| {
        let r = f(&mut room.router);
        io.after(slot, room);
        r
    }) {
        Ok(r) => r,
        Err(msg) => {
            room.failed = true;
            failed.push((slot, msg));
            Err(Error::RouterFailed(id))
        }
    }
}

/// Drops the rooms whose router panicked in this step, without calling
/// into them again (their state may be inconsistent): the socket is
/// deregistered and closed, and the control plane gets
/// [`Event::RouterFailed`]. The worker's other rooms are not touched.
pub(super) fn reap(
    rooms: &mut Slab<Room>,
    by_id: &mut HashMap<RouterId, usize>,
    io: &mut Io,
    failed: &mut Failed,
) {
    for (slot, message) in failed.drain(..) {
        let Some(room) = rooms.try_remove(slot) else {
            continue;
        };
        let router = room.id;
        by_id.remove(&router);
        if let Some(tcp) = io.tcp.as_mut() {
            tcp.close_room(slot);
        }
        io.driver.deregister(slot, &room.sock);
        io.counters.routers.add(-1);
        // Dropped (its socket closed) before the event says so.
        drop(room);
        tracing::error!(worker = io.index, %router, panic = %message, "router panicked: its room is closed; the worker's other rooms go on");
        send_event(
            &io.events,
            &io.counters,
            Event::RouterFailed { router, message },
        );
    }
}
