//! The single writer thread: group commit.
//!
//! SQLite allows one writer, and an fsync costs as much as thousands of row
//! writes, so every write job queued while the previous commit was syncing
//! runs in the next transaction, and all of them are answered after that
//! one commit.
//!
//! A job that fails must not take the others down with it. Wrapping every
//! job in a savepoint would guarantee that, but SQLite then copies each
//! page a job touches into the savepoint journal: a seventh of the writer's
//! time under load (measured with perf). So jobs run bare, and only when
//! one fails is the transaction rolled back and the batch run again with
//! a savepoint per job. Jobs are plain database functions (`Fn`), so a
//! second run does exactly what the first one would have.

use std::cell::RefCell;
use std::ops::Deref;
use std::sync::Arc;

use qstash_core::message::Arrival;
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::statements::{Prepare, Statements};
use crate::{Announcer, Result, StoreError};

/// Most jobs in one transaction; bounds the latency of the first one.
const MAX_BATCH: usize = 1024;
/// Jobs waiting for the writer before callers are made to wait.
const QUEUE_DEPTH: usize = 16 * 1024;

/// A write job's view of the open transaction: the connection, plus the
/// arrivals its inserts noted, announced only once the transaction has
/// committed (and dropped if the job's work is rolled back).
pub struct Tx<'t, 'c> {
    conn: &'t Connection,
    statements: &'t Statements<'c>,
    arrivals: RefCell<Vec<Arrival>>,
}

impl Deref for Tx<'_, '_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn
    }
}

/// A job prepares from the writer's own statements (`statements.rs`).
impl Prepare for Tx<'_, '_> {
    fn with_statement<T>(
        &self,
        sql: &'static str,
        f: impl FnOnce(&mut rusqlite::Statement<'_>) -> Result<T>,
    ) -> Result<T> {
        self.statements.with_statement(sql, f)
    }
}

impl<'t, 'c> Tx<'t, 'c> {
    pub fn new(conn: &'t Connection, statements: &'t Statements<'c>) -> Self {
        Self {
            conn,
            statements,
            arrivals: RefCell::new(Vec::new()),
        }
    }

    /// A message became pending in this transaction.
    pub fn arrived(&self, arrival: Arrival) {
        self.arrivals.borrow_mut().push(arrival);
    }

    pub fn into_arrivals(self) -> Vec<Arrival> {
        self.arrivals.into_inner()
    }
}

/// A queued write: run (possibly twice, see the module comment), then
/// told whether its transaction committed.
trait Job: Send {
    /// Runs the work, keeping its result and arrivals; answers whether it
    /// succeeded.
    fn run(&mut self, conn: &Connection, statements: &Statements) -> bool;
    /// The arrivals of its last successful run.
    fn take_arrivals(&mut self) -> Vec<Arrival>;
    /// Answers the caller with the result, or the commit's error.
    fn finish(self: Box<Self>, committed: Result<()>);
    /// Whether its last run failed for lack of space.
    fn failed_full(&self) -> bool;
}

struct Pending<T, F> {
    work: F,
    result: Option<Result<T>>,
    arrivals: Vec<Arrival>,
    /// The work goes back with the answer: what it captured (message
    /// bodies, encoded rows) was allocated on a tokio worker, and freed
    /// where the caller resumes it is mostly a local free in mimalloc; on
    /// this thread it was always a cross-thread free (about 2% of the
    /// server's CPU per publish). A caller that is gone leaves it here.
    reply: oneshot::Sender<(Result<T>, F)>,
}

impl<T, F> Job for Pending<T, F>
where
    T: Send,
    F: Fn(&Tx) -> Result<T> + Send,
{
    fn run(&mut self, conn: &Connection, statements: &Statements) -> bool {
        let tx = Tx::new(conn, statements);
        let result = (self.work)(&tx);
        let ok = result.is_ok();
        self.arrivals = if ok { tx.into_arrivals() } else { Vec::new() };
        self.result = Some(result);
        ok
    }

    fn take_arrivals(&mut self) -> Vec<Arrival> {
        std::mem::take(&mut self.arrivals)
    }

    fn finish(self: Box<Self>, committed: Result<()>) {
        let Pending {
            work,
            result,
            reply,
            ..
        } = *self;
        let result = result.unwrap_or(Err(StoreError::Closed));
        let _ = reply.send((committed.and(result), work));
    }

    fn failed_full(&self) -> bool {
        matches!(self.result, Some(Err(StoreError::Full(_))))
    }
}

#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Box<dyn Job>>,
}

impl Writer {
    /// Starts the writer thread; after each commit it announces the
    /// arrivals of the committed jobs through `announcer`.
    pub fn start(conn: Connection, announcer: Arc<Announcer>) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        std::thread::Builder::new()
            .name("qstash-store-writer".into())
            .spawn(move || run(conn, rx, &announcer))
            .expect("spawn the store writer thread");
        Self { jobs: tx }
    }

    /// Runs `work` in the next group transaction; answers once it is
    /// committed. `work` may run twice (after a rollback), so it must only
    /// touch the database.
    pub async fn write<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(&Tx) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Pending {
            work,
            result: None,
            arrivals: Vec::new(),
            reply,
        });
        self.jobs.send(job).await.map_err(|_| StoreError::Closed)?;
        let (result, work) = answer.await.map_err(|_| StoreError::Closed)?;
        drop(work);
        result
    }
}

fn run(conn: Connection, mut rx: mpsc::Receiver<Box<dyn Job>>, announcer: &Announcer) {
    let statements = Statements::new(&conn);
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        jobs.push(first);
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let started = std::time::Instant::now();
        let committed = run_batch(&conn, &statements, &mut jobs);
        crate::meter::group_commit(jobs.len(), started.elapsed());
        if committed.is_ok() {
            let arrivals: Vec<Arrival> = jobs.iter_mut().flat_map(|j| j.take_arrivals()).collect();
            announcer.announce(&arrivals);
        }
        for job in jobs.drain(..) {
            let status = match &committed {
                Ok(()) => Ok(()),
                Err(StoreError::Full(e)) => Err(StoreError::Full(e.clone())),
                Err(e) => Err(StoreError::Commit(e.to_string())),
            };
            job.finish(status);
        }
    }
}

/// Runs `jobs` in one transaction and commits it.
fn run_batch(conn: &Connection, statements: &Statements, jobs: &mut [Box<dyn Job>]) -> Result<()> {
    run_cached(statements, "BEGIN IMMEDIATE").inspect_err(|e| {
        tracing::error!(error = %e, "store: cannot begin a transaction");
    })?;
    let all_ok = jobs.iter_mut().all(|job| job.run(conn, statements));
    if !all_ok {
        lost_transaction(conn, jobs.iter().any(|j| j.failed_full()))?;
        // Undo the bare run, then isolate each job in a savepoint so the
        // failed one rolls back alone.
        run_cached(statements, "ROLLBACK")?;
        run_cached(statements, "BEGIN IMMEDIATE")?;
        for job in jobs.iter_mut() {
            in_savepoint(conn, statements, job.as_mut())?;
        }
    }
    run_cached(statements, "COMMIT").map_err(|e| {
        tracing::error!(error = %e, "store: commit failed");
        let _ = conn.execute_batch("ROLLBACK");
        match e {
            StoreError::Full(e) => StoreError::Full(e),
            e => StoreError::Commit(e.to_string()),
        }
    })
}

fn in_savepoint(conn: &Connection, statements: &Statements, job: &mut dyn Job) -> Result<()> {
    run_cached(statements, "SAVEPOINT job")?;
    if !job.run(conn, statements) {
        lost_transaction(conn, job.failed_full())?;
        run_cached(statements, "ROLLBACK TO job")?;
    }
    run_cached(statements, "RELEASE job")
}

/// On a full disk (or an I/O error) SQLite rolls back the whole
/// transaction by itself; then there is nothing to roll back to, and the
/// batch fails with the reason rather than "no transaction is active".
fn lost_transaction(conn: &Connection, full: bool) -> Result<()> {
    if !conn.is_autocommit() {
        return Ok(());
    }
    if full {
        return Err(StoreError::Full("database or disk is full".into()));
    }
    Err(StoreError::Commit(
        "the transaction was rolled back by the database".into(),
    ))
}

fn run_cached(statements: &Statements, sql: &'static str) -> Result<()> {
    statements.with_statement(sql, |s| Ok(s.execute([])?))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(conn: &Connection) -> Vec<String> {
        let mut stmt = conn.prepare("SELECT v FROM t ORDER BY v").unwrap();
        let rows = stmt.query_map([], |r| r.get(0)).unwrap();
        rows.map(Result::unwrap).collect()
    }

    /// A failing job in a batch leaves no trace, and the jobs beside it
    /// commit exactly once (their first, bare run was rolled back).
    #[tokio::test]
    async fn a_failing_job_rolls_back_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE t (v TEXT PRIMARY KEY)")
            .unwrap();
        let writer = Writer::start(conn, Arc::default());
        let insert = |v: &'static str, fail: bool| {
            let writer = writer.clone();
            tokio::spawn(async move {
                writer
                    .write(move |c| {
                        c.execute("INSERT INTO t (v) VALUES (?1)", [v])?;
                        if fail {
                            return Err(StoreError::Corrupt("on purpose".into()));
                        }
                        Ok(())
                    })
                    .await
            })
        };
        // Hold the writer so the next three queue up and share one batch.
        let hold = writer.clone();
        let first = tokio::spawn(async move {
            hold.write(|_| {
                std::thread::sleep(std::time::Duration::from_millis(200));
                Ok(())
            })
            .await
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let (a, b, c) = (insert("a", false), insert("b", true), insert("c", false));
        first.await.unwrap().unwrap();
        a.await.unwrap().unwrap();
        assert!(matches!(b.await.unwrap(), Err(StoreError::Corrupt(_))));
        c.await.unwrap().unwrap();
        let read = Connection::open(&path).unwrap();
        assert_eq!(rows(&read), ["a", "c"]);
    }

    /// Notes the thread it is dropped on.
    struct DroppedOn(Arc<std::sync::Mutex<Option<std::thread::ThreadId>>>);

    impl Drop for DroppedOn {
        fn drop(&mut self) {
            *self.0.lock().unwrap() = Some(std::thread::current().id());
        }
    }

    /// What a job captured is freed by its caller, not on the writer
    /// thread (where every free of a caller's allocation is a
    /// cross-thread free).
    #[tokio::test(flavor = "current_thread")]
    async fn a_jobs_captures_are_freed_by_its_caller() {
        let writer = Writer::start(Connection::open_in_memory().unwrap(), Arc::default());
        let seen = Arc::new(std::sync::Mutex::new(None));
        let captured = DroppedOn(seen.clone());
        writer
            .write(move |_| {
                let _keep = &captured;
                Ok(())
            })
            .await
            .unwrap();
        assert_eq!(*seen.lock().unwrap(), Some(std::thread::current().id()));
    }

    struct Heard(std::sync::Mutex<Vec<Arrival>>);

    impl crate::Listener for Heard {
        fn arrived(&self, arrivals: &[Arrival]) {
            self.0.lock().unwrap().extend_from_slice(arrivals);
        }
    }

    fn arrival(user: &str) -> Arrival {
        Arrival {
            user_id: user.into(),
            due_at: 1,
            queue: Some("q".into()),
            flow_control_key: None,
        }
    }

    /// Arrivals are announced after the commit, and only those of jobs
    /// whose work committed: a failed job's are dropped with its rollback.
    #[tokio::test]
    async fn only_committed_arrivals_are_announced() {
        let conn = Connection::open_in_memory().unwrap();
        let announcer = Arc::new(Announcer::default());
        let heard = Arc::new(Heard(Default::default()));
        announcer.listen(Arc::downgrade(&heard) as std::sync::Weak<dyn crate::Listener>);
        let writer = Writer::start(conn, announcer);
        let job = |user: &'static str, fail: bool| {
            let writer = writer.clone();
            tokio::spawn(async move {
                writer
                    .write(move |tx| {
                        tx.arrived(arrival(user));
                        if fail {
                            return Err(StoreError::Corrupt("on purpose".into()));
                        }
                        Ok(())
                    })
                    .await
            })
        };
        let (a, b) = (job("ok", false), job("failed", true));
        a.await.unwrap().unwrap();
        assert!(b.await.unwrap().is_err());
        assert_eq!(*heard.0.lock().unwrap(), vec![arrival("ok")]);
    }
}
