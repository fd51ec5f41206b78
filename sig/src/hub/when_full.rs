//! The one policy for a client message to a room whose inbox is full
//! ([`when_full`]), and delivering to a room without waiting ([`deliver`]).

use tokio::sync::mpsc;

use crate::protocol::ClientMsg;
use crate::room::RoomMsg;

/// What to do with a client message whose room's inbox is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WhenFull {
    /// Queue it from a task of its own: it must not be lost.
    Queue,
    /// Drop it; the text says what follows.
    Drop(&'static str),
}

/// The one policy for client messages to a full room inbox. Every kind is
/// named, so a new one needs a decision here.
pub(super) fn when_full(msg: &ClientMsg) -> WhenFull {
    match msg {
        ClientMsg::Answer { .. } | ClientMsg::UpdateFailed { .. } => {
            WhenFull::Drop("the update times out and is sent again")
        }
        ClientMsg::VideoHidden { .. }
        | ClientMsg::VideoSize { .. }
        | ClientMsg::MediaState { .. } => {
            WhenFull::Drop("the client sends its state again when it changes")
        }
        // A lost one would leave the client waiting. (Joins come as
        // RoomMsg::Join, never this way.)
        ClientMsg::OfferRequest
        | ClientMsg::Offer { .. }
        | ClientMsg::Leave
        | ClientMsg::Join { .. } => WhenFull::Queue,
    }
}

/// Delivers `msg` to a room without waiting: at once when its inbox has
/// room, else from a task of its own.
pub(super) fn deliver(tx: &mpsc::Sender<RoomMsg>, msg: RoomMsg) {
    if let Err(mpsc::error::TrySendError::Full(msg)) = tx.try_send(msg) {
        let tx = tx.clone();
        tokio::spawn(async move {
            let _ = tx.send(msg).await;
        });
    }
}
