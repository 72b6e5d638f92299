//! Several nodes on one database act as one QStash.
//!
//! Every node accepts publishes and delivers plain messages: the due-now
//! shortcut delivers on the node that took the publish, and every node's
//! scheduler claims due messages with `FOR UPDATE SKIP LOCKED`, so they
//! share the work without coordination. A claim names its node, and lasts
//! as long as the node sends heartbeats (every third of `--lease`).
//!
//! One node at a time *leads*: it holds a database lock (the store's
//! `Cluster::leadership`) and runs what must run once for the cluster: the
//! gate (queues, flow-control keys, global parallelism), the schedule
//! timer, retention, and the release of the claims of nodes whose lease
//! lapsed. Leadership comes in terms: when it is won, the leader's tasks
//! start afresh from the store; when it is lost (the lock's connection
//! broke), they stop at once, and another node takes over within a second.
//! An embedded store has no cluster: its one node leads from start to end.

use std::sync::Arc;
use std::time::Duration;

use qstash_core::clock::Millis;
use qstash_core::cluster::NodeInfo;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::Engine;

/// A leader's term: over when leadership is lost or the engine stops.
#[derive(Clone)]
pub(crate) struct Term(watch::Receiver<bool>);

impl Term {
    /// A term that ends only with the engine (a node alone).
    fn until(shutdown: watch::Receiver<bool>) -> Self {
        Term(shutdown)
    }

    pub fn over(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves when the term is over.
    pub async fn ended(&mut self) {
        let _ = self.0.wait_for(|over| *over).await;
    }
}

/// Runs leader terms until the engine stops: always one term for a node
/// alone, else one per won leadership.
pub(crate) async fn lead(engine: Arc<Engine>) {
    let mut shutdown = engine.shutdown.subscribe();
    let Some(cluster) = engine.store.cluster() else {
        term(&engine, Term::until(shutdown)).await;
        return;
    };
    let mut leading = cluster.leadership();
    loop {
        tokio::select! {
            _ = leading.wait_for(|lead| *lead) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        if *shutdown.borrow() {
            return;
        }
        tracing::info!(node = %engine.config.node_id, "cluster: this node leads; starting the gate, the schedule timer and retention");
        let (over_tx, over) = watch::channel(false);
        let ends = {
            let (mut leading, mut shutdown) = (leading.clone(), shutdown.clone());
            async move {
                tokio::select! {
                    _ = leading.wait_for(|lead| !*lead) => {}
                    _ = shutdown.wait_for(|stop| *stop) => {}
                }
                let _ = over_tx.send(true);
            }
        };
        tokio::join!(term(&engine, Term(over)), ends);
        tracing::info!(node = %engine.config.node_id, "cluster: this node no longer leads");
    }
}

/// One term: the leader's tasks, until the term is over. (Ticks missed
/// while no node ran were caught up by every node at its start, before it
/// served; ticks missed between two leaders are late, and the timer fires
/// them as soon as it runs.)
async fn term(engine: &Arc<Engine>, term: Term) {
    let tasks: Vec<JoinHandle<()>> = vec![
        tokio::spawn(crate::gate::run(engine.clone(), term.clone())),
        tokio::spawn(crate::schedules::run(engine.clone(), term.clone())),
        tokio::spawn(crate::scheduler::housekeeping(engine.clone(), term.clone())),
        tokio::spawn(release_lapsed(engine.clone(), term)),
    ];
    for t in tasks {
        let _ = t.await;
    }
}

/// The leader returns to pending the claims of nodes that stopped sending
/// heartbeats (killed, cut off): their deliveries run again elsewhere.
async fn release_lapsed(engine: Arc<Engine>, mut term: Term) {
    let Some(cluster) = engine.store.cluster() else {
        return;
    };
    let lease = engine.config.lease;
    let every = (lease / 4).max(Duration::from_millis(100));
    while !term.over() {
        match cluster.release_lapsed(lease).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                released = n,
                "cluster: deliveries claimed by nodes whose lease lapsed will run again"
            ),
            Err(e) => tracing::warn!(error = %e, "cluster: releasing lapsed claims failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = term.ended() => {}
        }
    }
}

/// Says this node is alive, every third of the lease, until it stops.
pub(crate) async fn heartbeats(engine: Arc<Engine>) {
    let Some(cluster) = engine.store.cluster() else {
        return;
    };
    let mut shutdown = engine.shutdown.subscribe();
    let every = (engine.config.lease / 3).max(Duration::from_millis(100));
    while !*shutdown.borrow() {
        let address = engine.address();
        let lease = engine.config.lease;
        if let Err(e) = cluster.heartbeat(&address, engine.started_at, lease).await {
            tracing::warn!(error = %e, "cluster: a heartbeat failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// What `GET /v2/cluster` shows.
#[derive(Debug, Clone)]
pub struct ClusterView {
    /// This node's id.
    pub node: String,
    pub nodes: Vec<NodeInfo>,
    /// The leader's id, when some node leads.
    pub leader: Option<String>,
}

impl Engine {
    /// Every live node, with its heartbeat and its claims, and the leader.
    pub async fn cluster_view(&self) -> Result<ClusterView, qstash_store::StoreError> {
        let nodes = match self.store.cluster() {
            Some(cluster) => cluster.nodes(self.config.lease).await?,
            // A node alone leads, and holds what it has in flight.
            None => vec![NodeInfo {
                id: self.config.node_id.clone(),
                address: self.address(),
                started_at: self.started_at,
                heartbeat_at: self.now(),
                leader: true,
                claims: (self.config.max_in_flight - self.in_flight.available_permits()) as u64,
            }],
        };
        let leader = nodes.iter().find(|n| n.leader).map(|n| n.id.clone());
        Ok(ClusterView {
            node: self.config.node_id.clone(),
            nodes,
            leader,
        })
    }

    /// Where this node's API listens, as it was told.
    pub fn address(&self) -> String {
        self.address.get().cloned().unwrap_or_default()
    }

    /// Tells the engine where its API listens (shown to the other nodes).
    pub fn set_address(&self, address: String) {
        let _ = self.address.set(address);
    }

    /// When this node started (ms).
    pub fn started_at(&self) -> Millis {
        self.started_at
    }
}
