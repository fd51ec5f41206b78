//! The hub as a node of a cluster (`--redis`): how it is made one, and
//! where other nodes' messages go (`crate::cluster` is the node's
//! membership, `crate::room` the rooms' relays).

use super::*;

impl Hub {
    /// Makes this hub a node of `cluster`: rooms it does not hold are
    /// found or placed through the directory, and a full node redirects
    /// joins to one with room.
    pub fn with_cluster(mut self, cluster: Arc<crate::cluster::Cluster>) -> Self {
        self.ctx.cluster = Some(cluster);
        self
    }

    /// Hands a message from another node to its room; a relay asked of a
    /// room this node does not hold is refused.
    pub(super) fn on_node(&self, msg: crate::cluster::NodeMsg) {
        use crate::cluster::NodeMsg;
        if let Some(r) = self.rooms.get(msg.room()) {
            deliver(&r.tx, RoomMsg::Node(msg));
            return;
        }
        let (
            Some(c),
            NodeMsg::RelayOpen {
                room,
                from,
                relay_id,
                ..
            },
        ) = (&self.ctx.cluster, msg)
        else {
            return;
        };
        let c = c.clone();
        tokio::spawn(async move {
            let refusal = NodeMsg::RelayRefused {
                room,
                from: c.node_id().to_owned(),
                relay_id,
                reason: "the room is not on this node".into(),
            };
            let _ = c.send(&from, &refusal).await;
        });
    }
}
