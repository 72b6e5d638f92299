//! WAL checkpoints off the writer thread.
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses the
//! threshold, on the writer thread: every job queued behind that commit
//! waits while the checkpoint copies the WAL into the database and fsyncs
//! it (measured: 6 to 25 commits a second of 5 to 100 ms at 1,000 publishes
//! a second, which made the publish p99 tens of milliseconds). So the
//! writer's connection has automatic checkpoints off, and this thread runs
//! PASSIVE checkpoints on its own connection, which never block the writer.
//!
//! A PASSIVE checkpoint cannot reset the WAL while the writer keeps
//! appending, so under continuous load the WAL would only grow; the writer
//! therefore checks its size now and then and, past [`WAL_LIMIT`], runs one
//! blocking checkpoint itself (TRUNCATE, which also gives the disk back). By then this thread has copied nearly every
//! frame, so that checkpoint is short.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::Connection;

/// How often the background checkpoint runs.
const INTERVAL: Duration = Duration::from_millis(100);
/// WAL size past which the writer restarts the WAL itself.
pub const WAL_LIMIT: u64 = 64 * 1024 * 1024;
/// The writer looks at the WAL size every this many commits.
pub const CHECK_EVERY: u32 = 256;

/// Keeps the checkpoint thread alive; it stops when this is dropped.
pub struct Running {
    _stop: mpsc::Sender<()>,
}

/// Starts the checkpoint thread on `db`.
pub fn start(db: &Path) -> crate::Result<Running> {
    let conn = Connection::open(db)?;
    conn.execute_batch("PRAGMA busy_timeout = 5000;")?;
    let (stop, stopped) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("qstash-store-checkpoint".into())
        .spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
                if let Err(e) = passive(&conn) {
                    tracing::warn!(error = %e, "store: background checkpoint failed");
                }
            }
        })
        .expect("spawn the store checkpoint thread");
    Ok(Running { _stop: stop })
}

fn passive(conn: &Connection) -> rusqlite::Result<()> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
}

/// The writer's side: restarts the WAL when it grew past [`WAL_LIMIT`].
pub struct WalGuard {
    wal: PathBuf,
    limit: u64,
    commits: u32,
}

impl WalGuard {
    pub fn new(db: &Path, limit: u64) -> WalGuard {
        let mut wal = db.as_os_str().to_owned();
        wal.push("-wal");
        WalGuard {
            wal: wal.into(),
            limit,
            commits: 0,
        }
    }

    /// Called after each commit, on the writer's connection.
    pub fn after_commit(&mut self, conn: &Connection) {
        self.commits += 1;
        if self.commits < CHECK_EVERY {
            return;
        }
        self.commits = 0;
        let size = std::fs::metadata(&self.wal).map_or(0, |m| m.len());
        if size > self.limit {
            if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
                tracing::warn!(error = %e, "store: restarting the WAL failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wal_db(dir: &Path) -> (PathBuf, Connection) {
        let path = dir.join("t.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
             CREATE TABLE t (x BLOB);",
        )
        .unwrap();
        (path, conn)
    }

    fn fill(conn: &Connection, rows: usize) {
        for _ in 0..rows {
            conn.execute("INSERT INTO t VALUES (zeroblob(4000))", [])
                .unwrap();
        }
    }

    #[test]
    fn background_thread_copies_the_wal_into_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let (path, conn) = wal_db(dir.path());
        fill(&conn, 200);
        // Until a checkpoint, the rows live only in the WAL.
        assert!(std::fs::metadata(&path).unwrap().len() < 100_000);
        let _running = start(&path).unwrap();
        std::thread::sleep(INTERVAL * 5);
        assert!(std::fs::metadata(&path).unwrap().len() > 200 * 4000);
    }

    #[test]
    fn the_writer_truncates_a_wal_past_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let (path, conn) = wal_db(dir.path());
        let wal = dir.path().join("t.db-wal");
        let mut guard = WalGuard::new(&path, 256 * 1024);
        fill(&conn, 20);
        for _ in 0..CHECK_EVERY {
            guard.after_commit(&conn);
        }
        let small = std::fs::metadata(&wal).unwrap().len();
        assert!(small > 0, "a WAL under the limit is left alone");
        fill(&conn, 200);
        assert!(std::fs::metadata(&wal).unwrap().len() > 256 * 1024);
        for _ in 0..CHECK_EVERY {
            guard.after_commit(&conn);
        }
        assert_eq!(std::fs::metadata(&wal).unwrap().len(), 0);
        let rows: i64 = conn
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 220);
    }
}
