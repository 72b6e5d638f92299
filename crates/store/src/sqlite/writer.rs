//! The single writer thread: group commit.
//!
//! SQLite allows one writer, and an fsync costs as much as thousands of row
//! writes, so every write job queued while the previous commit was syncing
//! runs in the next transaction, each in its own savepoint, and all of
//! them are answered after that one commit.

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::{Result, StoreError};

/// Most jobs in one transaction; bounds the latency of the first one.
const MAX_BATCH: usize = 1024;
/// Jobs waiting for the writer before callers are made to wait.
const QUEUE_DEPTH: usize = 16 * 1024;

type Completion = Box<dyn FnOnce(Result<()>) + Send>;
type Job = Box<dyn FnOnce(&Connection) -> Completion + Send>;

#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    pub fn start(conn: Connection) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        std::thread::Builder::new()
            .name("qstash-store-writer".into())
            .spawn(move || run(conn, rx))
            .expect("spawn the store writer thread");
        Self { jobs: tx }
    }

    /// Runs `f` in the next group transaction; answers once it is committed.
    pub async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let result = in_savepoint(conn, f);
            Box::new(move |committed: Result<()>| {
                let _ = reply.send(committed.and(result));
            })
        });
        self.jobs.send(job).await.map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

fn in_savepoint<T>(conn: &Connection, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    conn.execute_batch("SAVEPOINT job")?;
    let result = f(conn);
    match &result {
        Ok(_) => conn.execute_batch("RELEASE job")?,
        Err(_) => conn.execute_batch("ROLLBACK TO job; RELEASE job")?,
    }
    result
}

fn run(conn: Connection, mut rx: mpsc::Receiver<Job>) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        jobs.push(first);
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let completions = match conn.execute_batch("BEGIN IMMEDIATE") {
            Ok(()) => jobs.drain(..).map(|job| job(&conn)).collect::<Vec<_>>(),
            Err(e) => {
                let msg = e.to_string();
                jobs.drain(..).for_each(|job| drop(job));
                tracing::error!(error = %msg, "store: cannot begin a transaction");
                continue;
            }
        };
        let committed = conn.execute_batch("COMMIT").map_err(|e| {
            tracing::error!(error = %e, "store: commit failed");
            let _ = conn.execute_batch("ROLLBACK");
            StoreError::Commit(e.to_string())
        });
        for complete in completions {
            let status = match &committed {
                Ok(()) => Ok(()),
                Err(e) => Err(StoreError::Commit(e.to_string())),
            };
            complete(status);
        }
    }
}
