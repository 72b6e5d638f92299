//! What the engine needs of a store that several nodes share: who leads,
//! heartbeats, and the claims of nodes that stopped answering. Only the
//! PostgreSQL store has it; an embedded store is one node by construction.

use std::time::Duration;

use async_trait::async_trait;
use qstash_core::clock::Millis;
use qstash_core::cluster::NodeInfo;
use tokio::sync::watch;

use crate::Result;

/// Gated deliveries in flight that a leader's gate did not start in its
/// current term (other nodes', or this node's from an earlier term), by
/// what they count against: the gate counts them until they finish or
/// their lease runs out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InheritedClaims {
    /// (user, flow-control key) → deliveries.
    pub keys: Vec<(String, String, u32)>,
    /// user → queued and flow-controlled deliveries.
    pub users: Vec<(String, u32)>,
}

#[async_trait]
pub trait Cluster: Send + Sync {
    /// This node's id; its claims carry it.
    fn node_id(&self) -> &str;

    /// True while this node holds the leader lock. It turns false as soon
    /// as the connection holding the lock is lost.
    fn leadership(&self) -> watch::Receiver<bool>;

    /// Says this node is alive (on the database's clock) and where its API
    /// listens; learns whether other nodes live (within `lease`).
    async fn heartbeat(&self, address: &str, started_at: Millis, lease: Duration) -> Result<()>;

    /// Returns to pending the claims of nodes silent for longer than
    /// `lease` (their deliveries will run again elsewhere); answers how
    /// many. The leader runs it.
    async fn release_lapsed(&self, lease: Duration) -> Result<u64>;

    /// Leaving for good (SIGTERM): returns this node's remaining claims to
    /// pending at once, drops its row and gives up the leader lock.
    async fn leave(&self) -> Result<u64>;

    /// Every node that sent a heartbeat within `lease`, with its claims.
    async fn nodes(&self, lease: Duration) -> Result<Vec<NodeInfo>>;

    /// Gated deliveries in flight, but for those this node claimed since
    /// `term_started` (its gate counts those itself).
    async fn inherited_claims(&self, term_started: Millis) -> Result<InheritedClaims>;
}
