//! The embedded store: SQLite in WAL mode, one writer thread doing group
//! commit, and a small pool of read connections that never block it.

mod dlq;
mod filters;
mod gates;
mod gathered_writes;
pub mod live;
pub mod logs;
mod messages;
mod migrations;
mod schedules;
mod statements;
mod url_group_headers;
mod workflow;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use qstash_core::clock::Millis;
use qstash_core::schedule::Schedule;
use qstash_core::signing::SigningKeys;
use qstash_core::Message;
use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension};

use crate::{
    Announcer, CancelRequest, CancelResult, DlqDeleted, DlqEntry, DlqPage, DlqQuery, DlqRetry,
    Inserted, LogCursor, LogFilter, LogPage, NewMessage, Outcome, PurgeCounts, Reads, Result,
    Store, StoreError,
};
use crate::{CatchUp, DueCursor, DueSchedule, ScheduleFire, ScheduleInfo};
use crate::{
    FlowKey, FlowKeyChange, GateClaim, GateLook, GateSnapshot, GateView, QueueInfo, UrlGroup,
};
use qstash_core::url_group::{Endpoint, EndpointRef};
pub use writer::Tx;
use writer::Writer;

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => StoreError::Full(e.to_string()),
            Some(ErrorCode::CannotOpen | ErrorCode::ReadOnly | ErrorCode::SystemIoFailure) => {
                StoreError::Unavailable(e.to_string())
            }
            _ => StoreError::Database(e.to_string()),
        }
    }
}

/// How hard a commit tries to survive a power cut. `Full` fsyncs the WAL on
/// every commit; `Normal` survives a process crash but may lose the last
/// commits on power loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    #[default]
    Full,
    Normal,
}

/// Prepared statements kept per connection: more than the store has.
const STATEMENT_CACHE: usize = 256;

#[derive(Clone)]
pub struct SqliteStore {
    writer: Writer,
    readers: Arc<ReaderPool>,
    announcer: Arc<Announcer>,
}

struct ReaderPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl SqliteStore {
    /// Opens (or creates) `dir/qstash.db`.
    pub fn open(dir: &Path, durability: Durability) -> Result<Self> {
        Self::open_limited(dir, durability, None)
    }

    /// [`open`](Self::open), with the database file capped at about
    /// `max_bytes`: past it, writes fail as on a full disk
    /// ([`StoreError::Full`]) and nothing is stored.
    pub fn open_limited(
        dir: &Path,
        durability: Durability,
        max_bytes: Option<u64>,
    ) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Corrupt(format!("{}: {e}", dir.display())))?;
        let path = dir.join("qstash.db");
        let conn = open_writer(&path, durability)?;
        let sync = match durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        };
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = {sync}; PRAGMA busy_timeout = 5000;
             PRAGMA temp_store = MEMORY; PRAGMA cache_size = -65536;"
        ))?;
        // The writer runs a few dozen distinct statements; with the default
        // cache of 16 they evicted each other and were parsed again per job.
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // Migrated before the cap is set: a migration that rebuilds a table
        // needs room for both copies until it commits, and a database near
        // its cap must still start (its writes then fail as full until
        // the purge frees pages).
        migrations::migrate(&conn)?;
        if let Some(max) = max_bytes {
            let page: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
            let page = page.max(1) as u64;
            conn.execute_batch(&format!("PRAGMA max_page_count = {}", (max / page).max(1)))?;
        }
        // Bulk cancel filters by host and path on the writer (`live.rs`).
        logs::register_url_functions(&conn)?;
        let announcer = Arc::new(Announcer::default());
        Ok(Self {
            writer: Writer::start(conn, announcer.clone()),
            readers: Arc::new(ReaderPool {
                path,
                idle: Mutex::new(Vec::new()),
            }),
            announcer,
        })
    }

    /// Runs a read on a pooled connection, off the async threads.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let pool = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pool.take()?;
            let result = f(&conn);
            pool.give_back(conn);
            result
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }
}

/// The writer's connection. At `Full` its writes to the WAL and the
/// database are gathered into a few large ones (`gathered_writes`); at
/// `Normal` they cannot be.
fn open_writer(path: &Path, durability: Durability) -> Result<Connection> {
    match (durability, gathered_writes::vfs()) {
        (Durability::Full, Some(vfs)) => Ok(Connection::open_with_flags_and_vfs(
            path,
            OpenFlags::default(),
            vfs,
        )?),
        _ => Ok(Connection::open(path)?),
    }
}

impl ReaderPool {
    fn take(&self) -> Result<Connection> {
        if let Some(conn) = self.idle.lock().expect("reader pool lock").pop() {
            return Ok(conn);
        }
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.execute_batch("PRAGMA busy_timeout = 5000; PRAGMA cache_size = -16384;")?;
        logs::register_url_functions(&conn)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(conn)
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = self.idle.lock().expect("reader pool lock");
        if idle.len() < 8 {
            idle.push(conn);
        }
    }
}

#[async_trait]
impl Reads for SqliteStore {
    async fn get_message(&self, user_id: &str, id: &str) -> Result<Option<Message>> {
        let (user_id, id) = (user_id.to_string(), id.to_string());
        self.read(move |conn| {
            let m = messages::get(conn, &id)?;
            Ok(m.filter(|m| m.user_id == user_id && m.state.is_live()))
        })
        .await
    }

    async fn url_group(&self, user_id: &str, name: &str) -> Result<Option<UrlGroup>> {
        let (u, n) = (user_id.to_string(), name.to_string());
        self.read(move |c| gates::url_group(c, &u, &n)).await
    }

    async fn url_groups(&self, user_id: &str) -> Result<Vec<UrlGroup>> {
        let u = user_id.to_string();
        self.read(move |c| gates::url_groups(c, &u)).await
    }

    async fn url_group_headers(&self, user_id: &str, name: &str) -> Result<Vec<(String, String)>> {
        let (u, n) = (user_id.to_string(), name.to_string());
        self.read(move |c| url_group_headers::get(c, &u, &n)).await
    }

    async fn queue(&self, user_id: &str, name: &str) -> Result<Option<QueueInfo>> {
        let (u, n) = (user_id.to_string(), name.to_string());
        self.read(move |c| gates::queue(c, &u, &n)).await
    }

    async fn queues(&self, user_id: &str) -> Result<Vec<QueueInfo>> {
        let u = user_id.to_string();
        self.read(move |c| gates::queues(c, &u)).await
    }

    async fn flow_key(&self, user_id: &str, key: &str) -> Result<Option<(FlowKey, u64)>> {
        let (u, k) = (user_id.to_string(), key.to_string());
        self.read(move |c| gates::flow_key(c, &u, &k)).await
    }

    async fn flow_keys(&self, user_id: &str) -> Result<Vec<(FlowKey, u64)>> {
        let u = user_id.to_string();
        self.read(move |c| gates::flow_keys(c, &u)).await
    }

    async fn list_logs(
        &self,
        user_id: &str,
        filter: LogFilter,
        cursor: Option<LogCursor>,
        count: usize,
    ) -> Result<LogPage> {
        let user_id = user_id.to_string();
        self.read(move |conn| logs::list(conn, &user_id, &filter, cursor, count))
            .await
    }

    async fn list_dlq(&self, user_id: &str, query: DlqQuery) -> Result<DlqPage> {
        let user_id = user_id.to_string();
        self.read(move |conn| dlq::list(conn, &user_id, &query))
            .await
    }

    async fn get_dlq(&self, user_id: &str, dlq_id: &str) -> Result<Option<DlqEntry>> {
        let (user_id, dlq_id) = (user_id.to_string(), dlq_id.to_string());
        self.read(move |conn| dlq::get(conn, &user_id, &dlq_id))
            .await
    }

    async fn get_schedule(&self, user_id: &str, id: &str) -> Result<Option<ScheduleInfo>> {
        let (user_id, id) = (user_id.to_string(), id.to_string());
        self.read(move |conn| {
            schedules::get(conn, &user_id, &id)?
                .map(|d| schedules::info(conn, d.schedule))
                .transpose()
        })
        .await
    }

    async fn list_schedules(&self, user_id: &str) -> Result<Vec<ScheduleInfo>> {
        let user_id = user_id.to_string();
        self.read(move |conn| schedules::list(conn, &user_id)).await
    }

    // --- The console's reads (issue 16: web console) ---

    async fn list_live_messages(
        &self,
        user_id: &str,
        filter: crate::MessageFilter,
        cursor: Option<crate::LiveCursor>,
        count: usize,
    ) -> Result<crate::LivePage> {
        let u = user_id.to_string();
        self.read(move |c| live::list(c, &u, &filter, cursor, count))
            .await
    }

    async fn count_live_messages(
        &self,
        user_id: &str,
        filter: crate::MessageFilter,
        now: Millis,
        cap: u64,
    ) -> Result<crate::LiveCounts> {
        let u = user_id.to_string();
        self.read(move |c| live::count(c, &u, &filter, now, cap))
            .await
    }

    async fn count_dlq(&self, user_id: &str, cap: u64) -> Result<u64> {
        let u = user_id.to_string();
        self.read(move |c| live::count_dlq(c, &u, cap)).await
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn announcer(&self) -> &Announcer {
        &self.announcer
    }

    fn workflows(&self) -> &dyn crate::Workflows {
        self
    }

    async fn insert_messages(
        &self,
        messages: Vec<NewMessage>,
        now: Millis,
    ) -> Result<Vec<Inserted>> {
        let encoded = crate::rows::encode(&messages)?;
        self.writer
            .write(move |conn| messages::insert_encoded(conn, &messages, &encoded, now))
            .await
    }

    async fn next_due_at(&self) -> Result<Option<Millis>> {
        self.read(|conn| {
            Ok(conn.query_row(
                "SELECT MIN(due_at) FROM messages WHERE state = 'pending' AND queue_name IS NULL AND flow_control_key IS NULL",
                [],
                |r| r.get(0),
            )?)
        })
        .await
    }

    async fn claim_due(&self, now: Millis, limit: usize) -> Result<Vec<Message>> {
        let rows = self
            .writer
            .write(move |conn| messages::claim_due(conn, now, limit))
            .await?;
        let mut claimed = rows
            .into_iter()
            .map(messages::decode)
            .collect::<Result<Vec<_>>>()?;
        claimed.sort_by_key(|m| m.due_at);
        Ok(claimed)
    }

    async fn record_outcomes(&self, outcomes: Vec<Outcome>) -> Result<()> {
        let prepared = outcomes
            .iter()
            .map(crate::rows::prepare)
            .collect::<Result<Vec<_>>>()?;
        self.writer
            .write(move |conn| messages::record_outcomes(conn, &outcomes, &prepared))
            .await
    }

    async fn cancel(
        &self,
        user_id: &str,
        request: CancelRequest,
        now: Millis,
    ) -> Result<CancelResult> {
        let user_id = user_id.to_string();
        self.writer
            .write(move |conn| messages::cancel(conn, &user_id, &request, now))
            .await
    }

    async fn probe(&self) -> Result<()> {
        // Setting user_version to itself rewrites the header page: a real
        // write and fsync through the group commit, leaving nothing behind.
        self.writer
            .write(|conn| {
                let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
                conn.execute_batch(&format!("PRAGMA user_version = {v}"))?;
                Ok(())
            })
            .await?;
        let dir = self
            .readers
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        tokio::task::spawn_blocking(move || probe_file(&dir))
            .await
            .map_err(|e| StoreError::Commit(e.to_string()))?
    }

    async fn release_in_flight(&self, now: Millis) -> Result<u64> {
        self.writer
            .write(move |conn| {
                let n = conn.execute(
                    "UPDATE messages SET state = 'pending', due_at = MIN(due_at, ?1), updated_at = ?1 WHERE state = 'active'",
                    params![now],
                )?;
                Ok(n as u64)
            })
            .await
    }

    async fn signing_keys(&self, user_id: &str, initial: &SigningKeys) -> Result<SigningKeys> {
        let (user_id, initial) = (user_id.to_string(), initial.clone());
        let found = {
            let user_id = user_id.clone();
            self.read(move |conn| load_keys(conn, &user_id)).await?
        };
        match found {
            Some(keys) => Ok(keys),
            None => {
                self.writer
                    .write(move |conn| ensure_keys(conn, &user_id, &initial))
                    .await
            }
        }
    }

    async fn rotate_signing_keys(
        &self,
        user_id: &str,
        initial: &SigningKeys,
        new_next: &str,
    ) -> Result<SigningKeys> {
        let (user_id, initial, new_next) =
            (user_id.to_string(), initial.clone(), new_next.to_string());
        self.writer
            .write(move |conn| {
                let old = ensure_keys(conn, &user_id, &initial)?;
                let keys = SigningKeys {
                    current: old.next,
                    next: new_next.clone(),
                };
                conn.execute(
                    "UPDATE signing_keys SET current = ?2, next = ?3 WHERE user_id = ?1",
                    params![user_id, keys.current, keys.next],
                )?;
                Ok(keys)
            })
            .await
    }

    async fn purge(&self, now: Millis, retain_before: Millis) -> Result<PurgeCounts> {
        self.writer
            .write(move |conn| messages::purge(conn, now, retain_before))
            .await
    }

    async fn upsert_endpoints(
        &self,
        user_id: &str,
        name: &str,
        endpoints: Vec<Endpoint>,
        now: Millis,
    ) -> Result<()> {
        let (u, n) = (user_id.to_string(), name.to_string());
        self.writer
            .write(move |c| gates::upsert_group_endpoints(c, &u, &n, endpoints.clone(), now))
            .await
    }

    async fn remove_endpoints(
        &self,
        user_id: &str,
        name: &str,
        endpoints: Vec<EndpointRef>,
        now: Millis,
    ) -> Result<bool> {
        let (u, n) = (user_id.to_string(), name.to_string());
        self.writer
            .write(move |c| gates::remove_group_endpoints(c, &u, &n, &endpoints, now))
            .await
    }

    async fn delete_url_group(&self, user_id: &str, name: &str) -> Result<bool> {
        let (u, n) = (user_id.to_string(), name.to_string());
        self.writer
            .write(move |c| gates::delete_group(c, &u, &n))
            .await
    }

    async fn upsert_queue(
        &self,
        user_id: &str,
        name: &str,
        parallelism: u32,
        paused: bool,
        now: Millis,
    ) -> Result<()> {
        let (u, n) = (user_id.to_string(), name.to_string());
        self.writer
            .write(move |c| gates::upsert_queue(c, &u, &n, parallelism, paused, now))
            .await
    }

    async fn set_queue_paused(
        &self,
        user_id: &str,
        name: &str,
        paused: bool,
        now: Millis,
    ) -> Result<bool> {
        let (u, n) = (user_id.to_string(), name.to_string());
        self.writer
            .write(move |c| gates::set_queue_paused(c, &u, &n, paused, now))
            .await
    }

    async fn delete_queue(&self, user_id: &str, name: &str, now: Millis) -> Result<Option<u64>> {
        let (u, n) = (user_id.to_string(), name.to_string());
        self.writer
            .write(move |c| gates::delete_queue(c, &u, &n, now))
            .await
    }

    async fn change_flow_key(
        &self,
        user_id: &str,
        key: &str,
        change: FlowKeyChange,
        now: Millis,
    ) -> Result<FlowKey> {
        let (u, k) = (user_id.to_string(), key.to_string());
        self.writer
            .write(move |c| gates::change_flow_key(c, &u, &k, &change, now))
            .await
    }

    async fn gate_snapshot(&self, now: Millis) -> Result<GateSnapshot> {
        self.read(move |c| gates::gate_snapshot(c, now)).await
    }

    async fn gate_views(&self, looks: Vec<GateLook>) -> Result<Vec<GateView>> {
        self.read(move |c| gates::gate_views(c, &looks)).await
    }

    async fn claim_gated(&self, claims: Vec<GateClaim>, now: Millis) -> Result<Vec<Message>> {
        let rows = self
            .writer
            .write(move |c| gates::claim_gated(c, &claims, now))
            .await?;
        rows.into_iter().map(messages::decode).collect()
    }

    async fn delete_dlq(&self, user_id: &str, query: DlqQuery) -> Result<DlqDeleted> {
        let user_id = user_id.to_string();
        self.writer
            .write(move |conn| dlq::delete(conn, &user_id, &query))
            .await
    }

    async fn retry_dlq(
        &self,
        user_id: &str,
        retries: Vec<DlqRetry>,
        now: Millis,
    ) -> Result<Vec<Option<String>>> {
        let user_id = user_id.to_string();
        self.writer
            .write(move |conn| dlq::retry(conn, &user_id, &retries, now))
            .await
    }

    async fn purge_history(&self, log_before: Millis, dlq_before: Millis) -> Result<u64> {
        self.writer
            .write(move |conn| {
                Ok(logs::purge_keys(conn, log_before)? + dlq::purge(conn, log_before, dlq_before)?)
            })
            .await
    }

    async fn put_schedule(&self, schedule: Schedule, now: Millis) -> Result<Schedule> {
        self.writer
            .write(move |conn| schedules::put(conn, &schedule, now))
            .await
    }

    async fn delete_schedule(&self, user_id: &str, id: &str) -> Result<bool> {
        let (user_id, id) = (user_id.to_string(), id.to_string());
        self.writer
            .write(move |conn| schedules::delete(conn, &user_id, &id))
            .await
    }

    async fn set_schedule_paused(
        &self,
        user_id: &str,
        id: &str,
        paused: bool,
        now: Millis,
    ) -> Result<Option<Schedule>> {
        let (user_id, id) = (user_id.to_string(), id.to_string());
        self.writer
            .write(move |conn| schedules::set_paused(conn, &user_id, &id, paused, now))
            .await
    }

    async fn next_schedule_at(&self) -> Result<Option<Millis>> {
        self.read(schedules::next_fire_at).await
    }

    async fn due_schedules(
        &self,
        now: Millis,
        after: Option<DueCursor>,
        limit: usize,
    ) -> Result<Vec<DueSchedule>> {
        self.read(move |conn| schedules::due(conn, now, after.as_ref(), limit))
            .await
    }

    async fn fire_schedule(&self, fire: ScheduleFire) -> Result<bool> {
        self.writer
            .write(move |conn| schedules::fire(conn, &fire))
            .await
    }

    async fn catch_up_schedules(&self, now: Millis, window: Millis) -> Result<CatchUp> {
        self.writer
            .write(move |conn| schedules::catch_up(conn, now, window))
            .await
    }

    async fn claim_due_of_users(
        &self,
        now: Millis,
        rooms: Vec<(String, usize)>,
        limit: usize,
    ) -> Result<Vec<Message>> {
        let rows = self
            .writer
            .write(move |conn| messages::claim_due_of_users(conn, now, &rooms, limit))
            .await?;
        let mut claimed = rows
            .into_iter()
            .map(messages::decode)
            .collect::<Result<Vec<_>>>()?;
        claimed.sort_by_key(|m| m.due_at);
        Ok(claimed)
    }

    async fn next_due_of_users(&self, users: Vec<String>) -> Result<Option<Millis>> {
        self.read(move |conn| messages::next_due_of_users(conn, &users))
            .await
    }

    async fn set_url_group_headers(
        &self,
        user_id: &str,
        name: &str,
        headers: Vec<(String, String)>,
    ) -> Result<bool> {
        let (u, n) = (user_id.to_string(), name.to_string());
        self.writer
            .write(move |conn| url_group_headers::set(conn, &u, &n, &headers))
            .await
    }
}

fn load_keys(conn: &Connection, user_id: &str) -> Result<Option<SigningKeys>> {
    Ok(conn
        .query_row(
            "SELECT current, next FROM signing_keys WHERE user_id = ?1",
            [user_id],
            |r| {
                Ok(SigningKeys {
                    current: r.get(0)?,
                    next: r.get(1)?,
                })
            },
        )
        .optional()?)
}

fn ensure_keys(conn: &Connection, user_id: &str, initial: &SigningKeys) -> Result<SigningKeys> {
    if let Some(keys) = load_keys(conn, user_id)? {
        return Ok(keys);
    }
    conn.execute(
        "INSERT INTO signing_keys (user_id, current, next) VALUES (?1, ?2, ?3)",
        params![user_id, initial.current, initial.next],
    )?;
    Ok(initial.clone())
}

/// Writes, syncs and removes a small file in `dir`: fails when the data
/// directory cannot take new data (a full or read-only file system).
fn probe_file(dir: &Path) -> Result<()> {
    use std::io::Write;
    let path = dir.join(".ready-probe");
    let written = std::fs::File::create(&path).and_then(|mut f| {
        f.write_all(b"qstash readiness probe\n")?;
        f.sync_all()
    });
    let _ = std::fs::remove_file(&path);
    written.map_err(|e| match e.raw_os_error() {
        Some(28) => StoreError::Full(format!("{}: {e}", dir.display())),
        _ => StoreError::Commit(format!("writing in {}: {e}", dir.display())),
    })
}
