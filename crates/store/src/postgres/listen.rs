//! A node's own connection to the database, outside the pool: it LISTENs
//! for the other nodes' signals and holds the leader lock.
//!
//! Nodes tell each other what they committed with `pg_notify` inside the
//! committing transaction (so a signal is seen only if its change is), at
//! most once per transaction: the group commits of `batch.rs` carry one
//! signal for the whole group. A notification is `<node> <signal JSON>`;
//! a node ignores its own.
//!
//! The leader is whoever holds a session advisory lock on this connection.
//! If the connection breaks (the node died, the database restarted), the
//! lock is gone at once and another node takes it within a second; this
//! node learns it lost the lock from the same broken connection. After
//! every (re)connection the node resyncs: notifications sent while it was
//! not listening are lost, so it looks at everything again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::GenericClient;
use futures_util::StreamExt;
use qstash_core::cluster::Signal;
use tokio::sync::{mpsc, watch};
use tokio_postgres::{AsyncMessage, Config, NoTls};

use super::migrations::quote_ident;
use super::sql;
use crate::{Announcer, Result, StoreError};

/// First key of the leader lock ("ql"; the second is the schema's hash).
pub const LEADER_LOCK: i32 = 0x716c;
/// How often a node that does not lead tries to take the lock, and the
/// leader checks its connection is alive.
const TICK: Duration = Duration::from_secs(1);

/// Where this node's signals go, and how they are marked as its own.
#[derive(Debug)]
pub struct Channel {
    pub name: String,
    pub node: String,
    pub schema: String,
    /// Whether other nodes may be listening. A node alone sends nothing: a
    /// NOTIFY makes PostgreSQL serialize commits on a global lock. Set by
    /// every heartbeat from the live nodes, and at once by any other
    /// node's signal (a new node announces itself when it starts).
    others: AtomicBool,
}

impl Channel {
    pub fn new(schema: &str, node: &str) -> Self {
        Self {
            name: format!("qstash:{schema}"),
            node: node.to_string(),
            schema: schema.to_string(),
            // Until the first heartbeat says otherwise, assume company.
            others: AtomicBool::new(true),
        }
    }

    /// Whether other nodes may be listening.
    pub fn others(&self) -> bool {
        self.others.load(Ordering::Acquire)
    }

    pub fn set_others(&self, others: bool) {
        self.others.store(others, Ordering::Release);
    }

    /// Sends `signal` to the other nodes when the caller's transaction
    /// commits; nothing when this node is alone.
    pub async fn notify<C: GenericClient>(&self, c: &C, signal: &Signal) -> Result<()> {
        if !self.others.load(Ordering::Acquire) {
            return Ok(());
        }
        let payload = format!("{} {}", self.node, signal.encode());
        sql::query(c, "SELECT pg_notify($1, $2)", &[&self.name, &payload]).await?;
        Ok(())
    }

    /// The signal in `payload`, unless this node sent it.
    fn read(&self, payload: &str) -> Option<Signal> {
        let (from, json) = payload.split_once(' ')?;
        if from == self.node {
            return None;
        }
        self.set_others(true);
        Some(Signal::decode(json))
    }
}

/// Runs the connection until `leaving` turns true, reconnecting after
/// errors; `leader` says whether the lock is held.
pub async fn run(
    mut config: Config,
    channel: Arc<Channel>,
    announcer: Arc<Announcer>,
    leader: watch::Sender<bool>,
    mut leaving: watch::Receiver<bool>,
) {
    config.application_name(format!("qstash:{}", channel.node));
    config.keepalives_idle(Duration::from_secs(10));
    let mut pause = Duration::from_millis(100);
    while !*leaving.borrow() {
        let result = session(&config, &channel, &announcer, &leader, &mut leaving).await;
        leader.send_replace(false);
        match result {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cluster: the listening connection failed; reconnecting");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
        }
    }
}

async fn session(
    config: &Config,
    channel: &Channel,
    announcer: &Announcer,
    leader: &watch::Sender<bool>,
    leaving: &mut watch::Receiver<bool>,
) -> Result<()> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let (tx, mut notifications) = mpsc::unbounded_channel::<String>();
    // The connection is driven here; notifications come out of it, and it
    // ends (dropping `tx`) when the connection breaks.
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let AsyncMessage::Notification(n) = message {
                if tx.send(n.payload().to_string()).is_err() {
                    break;
                }
            }
        }
    });
    let _stop_driver = AbortOnDrop(driver);
    client
        .batch_execute(&format!("LISTEN {}", quote_ident(&channel.name)))
        .await?;
    let hello = format!("{} {}", channel.node, Signal::Joined.encode());
    client
        .query("SELECT pg_notify($1, $2)", &[&channel.name, &hello])
        .await?;
    announcer.signal(&Signal::Resync);
    let mut tick = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            payload = notifications.recv() => match payload {
                Some(p) => {
                    if let Some(signal) = channel.read(&p) {
                        announcer.signal(&signal);
                    }
                }
                None => return Err(StoreError::Unavailable("the listening connection closed".into())),
            },
            _ = tick.tick() => {
                if *leader.borrow() {
                    // The leader makes sure its connection (and lock) is alive.
                    client.simple_query("SELECT 1").await?;
                } else {
                    let won: bool = client
                        .query_one(
                            "SELECT pg_try_advisory_lock($1, hashtext($2))",
                            &[&LEADER_LOCK, &channel.schema],
                        )
                        .await?
                        .get(0);
                    if won {
                        tracing::info!(node = %channel.node, "cluster: this node leads");
                        leader.send_replace(true);
                    }
                }
            }
            _ = leaving.changed() => {
                if *leader.borrow() {
                    let _ = client
                        .query("SELECT pg_advisory_unlock($1, hashtext($2))", &[&LEADER_LOCK, &channel.schema])
                        .await;
                }
                return Ok(());
            }
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_ignores_its_own_signals() {
        let ch = Channel::new("s", "node-a");
        let mine = format!("node-a {}", Signal::Resync.encode());
        let theirs = format!("node-b {}", Signal::Resync.encode());
        assert_eq!(ch.read(&mine), None);
        assert_eq!(ch.read(&theirs), Some(Signal::Resync));
        assert_eq!(ch.read("garbage"), None);
    }
}
