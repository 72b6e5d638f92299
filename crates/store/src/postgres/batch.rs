//! Group commit on PostgreSQL: the hot writes (publishes and delivery
//! outcomes) are merged into shared transactions.
//!
//! One transaction per publish caps a server at what the database commits
//! per second with one row each (about 11k/s on the development machine,
//! with 64 clients). So publishes and outcomes queue here; a writer takes
//! everything queued (up to [`MAX_BATCH`]) and commits it as one
//! transaction whose statements each carry the whole batch as arrays
//! (`unnest`): one statement for all outcomes' new states, one for all new
//! messages, one for every log entry and its keys. A few writers run at
//! once, so one batch is built while another waits for its commit.
//!
//! A batch that fails for a reason of its own (not the database being
//! away) is split: each request runs alone, so one bad request fails alone.

use std::sync::Arc;

use deadpool_postgres::Pool;
use qstash_core::clock::Millis;
use qstash_core::cluster::Signal;
use qstash_core::message::{Arrival, Inserted, NewMessage};
use qstash_core::outcome::Outcome;
use tokio::sync::{mpsc, oneshot, Mutex};

use super::events::Events;
use super::listen::Channel;
use super::messages;
use crate::{Announcer, Result, StoreError};

/// Most requests merged into one transaction.
const MAX_BATCH: usize = 512;
/// Requests waiting for a writer before callers are made to wait.
const QUEUE_DEPTH: usize = 16 * 1024;
/// Times a batch is run again after the database aborted it as a deadlock.
const CONFLICT_RETRIES: usize = 3;

enum Op {
    Insert {
        messages: Vec<NewMessage>,
        now: Millis,
        reply: oneshot::Sender<Result<Vec<Inserted>>>,
    },
    Outcomes {
        outcomes: Vec<Outcome>,
        reply: oneshot::Sender<Result<()>>,
    },
}

impl Op {
    fn fail(self, e: StoreError) {
        match self {
            Op::Insert { reply, .. } => {
                let _ = reply.send(Err(e));
            }
            Op::Outcomes { reply, .. } => {
                let _ = reply.send(Err(e));
            }
        }
    }
}

#[derive(Clone)]
pub struct Batcher {
    ops: mpsc::Sender<Op>,
}

impl Batcher {
    /// Starts `writers` writer tasks; each commit signals its arrivals to
    /// the other nodes (once per batch) and then announces them here.
    ///
    /// In a cluster a node keeps half of its writers (at least one): the
    /// database's commits are shared by every node, and more group commits
    /// in flight make each group smaller. Measured with three nodes on one
    /// database (docs/ARCHITECTURE.md, "A cluster"): two writers each made
    /// the three nodes publish 65-72% of what one node did, one writer each
    /// 89%.
    pub fn start(writes: Writes, writers: usize) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let rx = Arc::new(Mutex::new(rx));
        let writers = writers.max(1);
        let in_cluster = (writers / 2).max(1);
        for i in 0..writers {
            let spare = i >= in_cluster;
            tokio::spawn(writer(writes.clone(), rx.clone(), spare));
        }
        Self { ops: tx }
    }

    pub async fn insert(&self, messages: Vec<NewMessage>, now: Millis) -> Result<Vec<Inserted>> {
        let (reply, answer) = oneshot::channel();
        let op = Op::Insert {
            messages,
            now,
            reply,
        };
        self.ops.send(op).await.map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    pub async fn outcomes(&self, outcomes: Vec<Outcome>) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        let op = Op::Outcomes { outcomes, reply };
        self.ops.send(op).await.map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

/// Takes whatever is queued (waiting for the first request), commits it,
/// answers, and again. The queue's lock is held only while taking, so
/// another writer takes the next batch while this one commits.
/// A writer loop. A `spare` writer takes no batch while other nodes live.
async fn writer(writes: Writes, rx: Arc<Mutex<mpsc::Receiver<Op>>>, spare: bool) {
    loop {
        while spare && writes.channel.others() {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        let ops = {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else {
                return;
            };
            let mut ops = vec![first];
            while ops.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(op) => ops.push(op),
                    Err(_) => break,
                }
            }
            ops
        };
        run(&writes, ops).await;
    }
}

async fn run(writes: &Writes, ops: Vec<Op>) {
    let mut tries = 0;
    let result = loop {
        tries += 1;
        let started = std::time::Instant::now();
        let committed = commit(writes, &ops).await;
        crate::meter::group_commit(ops.len(), started.elapsed());
        match committed {
            Err(StoreError::Conflict(_)) if tries <= CONFLICT_RETRIES => continue,
            other => break other,
        }
    };
    match result {
        Ok((answers, arrivals)) => {
            writes.announcer.announce(&arrivals);
            for (op, answer) in ops.into_iter().zip(answers) {
                match op {
                    Op::Insert { reply, .. } => {
                        let _ = reply.send(Ok(answer));
                    }
                    Op::Outcomes { reply, .. } => {
                        let _ = reply.send(Ok(()));
                    }
                }
            }
        }
        // Something in the batch itself failed: each request alone, so
        // only the bad one fails.
        Err(e) if ops.len() > 1 && !e.is_transient() => {
            tracing::warn!(error = %e, requests = ops.len(), "store: a batch failed; committing its requests one by one");
            for op in ops {
                Box::pin(run(writes, vec![op])).await;
            }
        }
        Err(e) => {
            for op in ops {
                op.fail(e.clone());
            }
        }
    }
}

/// Commits `ops` in one transaction; answers each request's inserted
/// messages (empty for outcomes) and the arrivals to announce.
async fn commit(writes: &Writes, ops: &[Op]) -> Result<(Vec<Vec<Inserted>>, Vec<Arrival>)> {
    let mut client = writes.pool.get().await?;
    let tx = client.transaction().await?;
    let mut events = Events::default();
    let mut arrivals = Vec::new();
    // Outcomes first: the callbacks they create join the inserts.
    let outcomes: Vec<&Outcome> = ops
        .iter()
        .filter_map(|op| match op {
            Op::Outcomes { outcomes, .. } => Some(outcomes.iter()),
            Op::Insert { .. } => None,
        })
        .flatten()
        .collect();
    let (callbacks, recorded) = if outcomes.is_empty() {
        (Vec::new(), messages::Recorded::default())
    } else {
        messages::record(&tx, &outcomes, &mut events, &mut arrivals).await?
    };
    let mut items: Vec<(&NewMessage, Millis)> = Vec::new();
    let mut spans = Vec::with_capacity(ops.len());
    for op in ops {
        let start = items.len();
        if let Op::Insert { messages, now, .. } = op {
            items.extend(messages.iter().map(|m| (m, *now)));
        }
        spans.push(start..items.len());
    }
    items.extend(callbacks);
    let node = &writes.channel.node;
    let (inserted, rows) =
        messages::prepare_insert(&tx, &items, node, &mut events, &mut arrivals).await?;
    let signal = Signal::for_others(&arrivals, soon());
    // The statements left depend on nothing but what was read: sent at
    // once, the driver pipelines them (one round trip instead of four).
    let notify = async {
        match &signal {
            Some(s) => writes.channel.notify(&tx, s).await,
            None => Ok(()),
        }
    };
    futures_util::try_join!(
        recorded.write(&tx),
        rows.write(&tx),
        events.write(&tx),
        notify
    )?;
    tx.commit().await?;
    let answers = spans.into_iter().map(|s| inserted[s].to_vec()).collect();
    Ok((answers, arrivals))
}

/// Plain messages due by then are signalled to the other nodes (to share
/// the work at once); later ones they find in the due index themselves.
fn soon() -> Millis {
    use qstash_core::clock::{Clock, SystemClock};
    SystemClock.now_ms() + 1_000
}

/// What every write needs: connections, this node's announcer, and the
/// channel to the other nodes.
#[derive(Clone)]
pub struct Writes {
    pub pool: Pool,
    pub announcer: Arc<Announcer>,
    pub channel: Arc<Channel>,
}

impl Writes {
    /// Runs `work` in its own transaction on a pooled connection, writes
    /// the log entries it noted, signals the other nodes, commits, and then
    /// announces its arrivals here. For the writes that are not merged
    /// into batches (claims, cancels, DLQ retries, schedule fires, ...).
    pub async fn run<T, F>(&self, work: F) -> Result<T>
    where
        F: AsyncFnOnce(&deadpool_postgres::Transaction<'_>, &mut Noted) -> Result<T>,
    {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let mut noted = Noted::default();
        let out = work(&tx, &mut noted).await?;
        noted.events.write(&tx).await?;
        noted
            .signals
            .extend(Signal::for_others(&noted.arrivals, soon()));
        for signal in &noted.signals {
            self.channel.notify(&tx, signal).await?;
        }
        tx.commit().await?;
        self.announcer.announce(&noted.arrivals);
        Ok(out)
    }
}

/// What a write notes for after its statements: log entries to write in
/// bulk, arrivals to announce after the commit, and signals for the other
/// nodes.
#[derive(Default)]
pub struct Noted {
    pub events: Events,
    pub arrivals: Vec<Arrival>,
    pub signals: Vec<Signal>,
}
