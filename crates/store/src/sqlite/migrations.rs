//! The schema, as numbered migrations applied in order at start. The
//! database's `PRAGMA user_version` is the last one applied; each runs in
//! its own transaction with the version bump, so a crash mid-migration
//! leaves the previous version intact. Never edit a released migration:
//! append a new one.
//!
//! Every query the engine runs per message is served by an index; nothing
//! scans all messages.

use rusqlite::Connection;

use crate::Result;

/// One migration's change, run inside its transaction.
pub enum Change {
    Sql(&'static str),
    /// A change that depends on what the database holds, which SQL's
    /// schema statements cannot test.
    Code(fn(&Connection) -> Result<()>),
}

impl Change {
    fn run(&self, conn: &Connection) -> Result<()> {
        match self {
            Sql(sql) => Ok(conn.execute_batch(sql)?),
            Code(change) => change(conn),
        }
    }
}

use Change::{Code, Sql};

/// (version, what it does, change). Versions are 1, 2, 3, ... in order.
pub const MIGRATIONS: &[(u32, &str, Change)] = &[
    (1, "initial schema", Sql(INITIAL)),
    (
        2,
        "live-message index (console)",
        Sql(super::live::LIVE_INDEX),
    ),
    (
        3,
        "URL group default headers, per-user due index",
        Sql(SAFETY),
    ),
    (
        4,
        "workflow runs and step logs",
        Sql(super::workflow::SCHEMA),
    ),
    (5, "workflow runs failing", Sql(super::workflow::FAILING)),
    (6, "no per-user index of all messages", Sql(LEANER)),
    (7, "no (user, time) index of the log", Sql(LEANER_LOG)),
    (8, "log keys stored as hashes", Sql(HASHED_KEYS)),
    (
        9,
        "an empty log's seq without AUTOINCREMENT",
        Code(plain_log_seq),
    ),
];

/// Issue 17: with `AUTOINCREMENT`, every log entry reads and rewrites
/// the log's row in `sqlite_sequence`: about 3,000 of the writer's
/// instructions per entry, and a delivered message has three entries
/// (`scripts/instructions`, publish and `--e2e`). SQLite cannot drop it
/// in place, and copying a large log before the server listens is too
/// slow (5.3 s per million entries, in one
/// transaction that needs room for a second copy), so only an empty log
/// is rebuilt: every new data directory's. A data directory that already
/// has a log keeps `AUTOINCREMENT`, which behaves the same, at the old
/// cost.
///
/// Without it, a seq is reused only after the newest entry is deleted
/// (the whole log purged). A key row that outlived its entry then cannot
/// name a new one: listings join key rows on the time as well as the seq
/// (`logs::page_sql`), and a new entry is never as old as a purged one.
fn plain_log_seq(conn: &Connection) -> Result<()> {
    let empty: bool =
        conn.query_row("SELECT NOT EXISTS (SELECT 1 FROM events)", [], |r| r.get(0))?;
    if empty {
        conn.execute_batch(PLAIN_LOG_SEQ)?;
    }
    Ok(())
}

/// The log table as migrations 1 and 7 left it, but for `AUTOINCREMENT`.
const PLAIN_LOG_SEQ: &str = r#"
DROP TABLE events;
CREATE TABLE events (
    seq                INTEGER PRIMARY KEY,
    user_id            TEXT NOT NULL,
    message_id         TEXT NOT NULL,
    time               INTEGER NOT NULL,
    state              TEXT NOT NULL,
    error              TEXT,
    next_delivery_time INTEGER,
    response_status    INTEGER,
    response_header    TEXT,
    response_body      BLOB
);
CREATE INDEX events_message ON events(message_id);
CREATE INDEX events_user_state ON events(user_id, state, time, seq);
"#;

/// Issue 17: a log entry's attribute keys were stored as text, the user
/// and the whole key (`url:http://...`) in the key row and again in its
/// time index, 2x per entry, and compared as strings at each B-tree step.
/// They are 64-bit hashes now (`logs::key_hash`; a listing confirms the
/// attribute on the message, so a collision lists nothing wrong). The keys
/// stored so far are hashed here, in the migration's one transaction,
/// copied in key order (appends, not random inserts into a large B-tree),
/// and the time index is built after the copy. `migrate` sorts in temporary
/// files, not in memory, so a large log does not have to fit in RAM.
const HASHED_KEYS: &str = r#"
CREATE TABLE IF NOT EXISTS event_key_hashes (
    -- logs::key_hash(user_id, "<attribute>:<value>")
    hash INTEGER NOT NULL,
    time INTEGER NOT NULL,
    seq  INTEGER NOT NULL,
    PRIMARY KEY (hash, time, seq)
) WITHOUT ROWID;
INSERT OR IGNORE INTO event_key_hashes (hash, time, seq)
    SELECT qstash_key_hash(user_id, key), time, seq FROM event_keys ORDER BY 1, 2, 3;
DROP TABLE IF EXISTS event_keys;
CREATE INDEX IF NOT EXISTS event_key_hashes_time ON event_key_hashes(time);
"#;

/// Issue 17: every log entry wrote an entry in `events_user_time`, 7.5% of
/// the writer's instructions per delivered message (callgrind, three log
/// entries per message; migration 1's comments predate this). The (user,
/// state, time) index holds the same order per state:
/// listings merge the per-state walks and the purge walks it per state
/// (`logs::page_sql`, `messages::purge_events`).
const LEANER_LOG: &str = "DROP INDEX IF EXISTS events_user_time;";

/// Issue 17: every publish wrote an entry in `messages_user (user_id,
/// created_at)`, which only bulk cancel read, walking the user's delivered
/// and cancelled messages too; it walks the live indexes now (`live.rs`).
const LEANER: &str = "DROP INDEX IF EXISTS messages_user;";

/// Issue 13: default headers of URL groups (`PATCH /v2/topics/{name}`),
/// and the index `--max-in-flight-per-user` claims from (one seek per user
/// below its cap, so a capped user's backlog is never walked).
const SAFETY: &str = r#"
CREATE TABLE IF NOT EXISTS url_group_headers (
    user_id TEXT NOT NULL,
    name    TEXT NOT NULL,
    -- JSON list of [name, value] pairs, in the order given.
    headers TEXT NOT NULL,
    PRIMARY KEY (user_id, name)
);
CREATE INDEX IF NOT EXISTS messages_due_plain_user ON messages(user_id, due_at)
    WHERE state = 'pending' AND queue_name IS NULL AND flow_control_key IS NULL;
"#;

/// Applies the migrations the database has not seen yet; answers the
/// version it is at afterwards. Migration 1 uses `IF NOT EXISTS`
/// throughout, so a database made before versions were kept (user_version
/// 0, tables present) takes it as a no-op.
pub fn migrate(conn: &Connection) -> Result<u32> {
    let version: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if let Some(newer) = (version as usize)
        .checked_sub(MIGRATIONS.len())
        .filter(|n| *n > 0)
    {
        return Err(crate::StoreError::Corrupt(format!(
            "the database is at schema version {version}, {newer} newer than this qstash knows; use a newer qstash"
        )));
    }
    if version as usize == MIGRATIONS.len() {
        return Ok(version);
    }
    // Migration 8 hashes the stored log keys with the server's own function,
    // and sorts them: with temp_store = MEMORY SQLite's sorter never spills
    // to disk, so a large log would have to fit in memory.
    super::logs::register_key_hash(conn)?;
    let temp_store: i64 = conn.query_row("PRAGMA temp_store", [], |r| r.get(0))?;
    conn.execute_batch("PRAGMA temp_store = FILE")?;
    let applied = apply(conn, version);
    conn.execute_batch(&format!("PRAGMA temp_store = {temp_store}"))?;
    applied
}

/// Applies the migrations after `from`, each in its own transaction.
fn apply(conn: &Connection, from: u32) -> Result<u32> {
    let mut version = from;
    for (v, name, change) in MIGRATIONS.iter().filter(|(v, _, _)| *v > from) {
        tracing::info!(version = v, name, "store: applying migration");
        conn.execute_batch("BEGIN IMMEDIATE")?;
        change
            .run(conn)
            .and_then(|()| Ok(conn.execute_batch(&format!("PRAGMA user_version = {v}; COMMIT;"))?))
            .inspect_err(|_| {
                let _ = conn.execute_batch("ROLLBACK");
            })?;
        version = *v;
    }
    Ok(version)
}

const INITIAL: &str = r#"
CREATE TABLE IF NOT EXISTS messages (
    id               TEXT PRIMARY KEY,
    user_id          TEXT NOT NULL,
    state            TEXT NOT NULL,
    due_at           INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    not_before       INTEGER NOT NULL,
    retried          INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    url              TEXT NOT NULL,
    topic_name       TEXT,
    queue_name       TEXT,
    schedule_id      TEXT,
    flow_control_key TEXT,
    caller_ip        TEXT,
    -- ",a,b," so one label matches with LIKE '%,a,%'.
    labels           TEXT,
    spec             TEXT NOT NULL,
    body             BLOB NOT NULL
);
-- The scheduler's only way to find work: pending messages by due time.
-- Queued and flow-controlled messages wait in their own lines (gates.rs).
CREATE INDEX IF NOT EXISTS messages_due_plain ON messages(due_at)
    WHERE state = 'pending' AND queue_name IS NULL AND flow_control_key IS NULL;
CREATE INDEX IF NOT EXISTS messages_in_flight ON messages(state) WHERE state = 'active';
CREATE INDEX IF NOT EXISTS messages_user ON messages(user_id, created_at); -- dropped by migration 6
CREATE INDEX IF NOT EXISTS messages_finished ON messages(updated_at) WHERE state IN ('delivered', 'cancelled');

CREATE TABLE IF NOT EXISTS events (
    seq                INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id            TEXT NOT NULL,
    message_id         TEXT NOT NULL,
    time               INTEGER NOT NULL,
    state              TEXT NOT NULL,
    error              TEXT,
    next_delivery_time INTEGER,
    response_status    INTEGER,
    response_header    TEXT,
    response_body      BLOB
);
-- Listing uses events_user_time, events_user_state (logs.rs) and this;
-- purging walks events_user_time per user. Each index costs every write,
-- so there is no other (two were dropped for publish throughput).
CREATE INDEX IF NOT EXISTS events_message ON events(message_id);
DROP INDEX IF EXISTS events_user;
DROP INDEX IF EXISTS events_time;

CREATE TABLE IF NOT EXISTS dlq (
    dlq_id          TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL,
    message_id      TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    response_status INTEGER NOT NULL,
    response_header TEXT NOT NULL,
    response_body   BLOB NOT NULL,
    error           TEXT
);
CREATE INDEX IF NOT EXISTS dlq_user ON dlq(user_id, created_at);

CREATE TABLE IF NOT EXISTS dedup (
    user_id    TEXT NOT NULL,
    key        TEXT NOT NULL,
    message_id TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, key)
);
CREATE INDEX IF NOT EXISTS dedup_expiry ON dedup(expires_at);

CREATE TABLE IF NOT EXISTS signing_keys (
    user_id TEXT PRIMARY KEY,
    current TEXT NOT NULL,
    next    TEXT NOT NULL
);
-- The plain due index left out queued and flow-controlled messages; the
-- old index covered them too.
DROP INDEX IF EXISTS messages_due;

CREATE TABLE IF NOT EXISTS url_groups (
    user_id    TEXT NOT NULL,
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    endpoints  TEXT NOT NULL,
    PRIMARY KEY (user_id, name)
);

CREATE TABLE IF NOT EXISTS queues (
    user_id     TEXT NOT NULL,
    name        TEXT NOT NULL,
    parallelism INTEGER NOT NULL,
    paused      INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (user_id, name)
);

CREATE TABLE IF NOT EXISTS flow_control_keys (
    user_id            TEXT NOT NULL,
    key                TEXT NOT NULL,
    parallelism        INTEGER,
    rate               INTEGER,
    period             INTEGER NOT NULL,
    pinned_parallelism INTEGER NOT NULL,
    pinned_rate        INTEGER NOT NULL,
    paused             INTEGER NOT NULL,
    rate_reset_at      INTEGER NOT NULL,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    PRIMARY KEY (user_id, key)
);

-- Start times of deliveries of rate-limited keys, so the sliding rate
-- window survives a restart exactly. Pruned to one period as keys start.
CREATE TABLE IF NOT EXISTS flow_control_starts (
    user_id TEXT NOT NULL,
    key     TEXT NOT NULL,
    at      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS flow_control_starts_key ON flow_control_starts(user_id, key, at);

-- A queue's line: its undelivered messages in enqueue order (the rowid,
-- implicit in every index, orders equal keys).
CREATE INDEX IF NOT EXISTS messages_queue_line ON messages(user_id, queue_name)
    WHERE queue_name IS NOT NULL AND state IN ('pending', 'active');
-- A flow-control key's line: its waiting messages by due time.
CREATE INDEX IF NOT EXISTS messages_key_line ON messages(user_id, flow_control_key, due_at)
    WHERE flow_control_key IS NOT NULL AND queue_name IS NULL AND state = 'pending';
CREATE TABLE IF NOT EXISTS event_keys (
    user_id TEXT NOT NULL,
    -- "<attribute>:<value>", e.g. "url:http://a/b", "label:billing".
    key     TEXT NOT NULL,
    time    INTEGER NOT NULL,
    seq     INTEGER NOT NULL,
    PRIMARY KEY (user_id, key, time, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS event_keys_time ON event_keys(time);
CREATE INDEX IF NOT EXISTS events_user_time ON events(user_id, time, seq);
CREATE INDEX IF NOT EXISTS events_user_state ON events(user_id, state, time, seq);
CREATE INDEX IF NOT EXISTS dlq_order ON dlq(user_id, created_at, dlq_id);
CREATE INDEX IF NOT EXISTS dlq_message ON dlq(message_id);
CREATE INDEX IF NOT EXISTS dlq_created ON dlq(created_at);
CREATE INDEX IF NOT EXISTS messages_failed ON messages(updated_at) WHERE state = 'failed';
CREATE TABLE IF NOT EXISTS schedules (
    user_id       TEXT NOT NULL,
    id            TEXT NOT NULL,
    cron          TEXT NOT NULL,
    destination   TEXT NOT NULL,
    spec          TEXT NOT NULL,
    body          BLOB NOT NULL,
    queue_name    TEXT,
    delay_secs    INTEGER,
    caller_ip     TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    -- Bumped by every replace, pause and resume; a fire commits only at
    -- the version it read.
    version       INTEGER NOT NULL,
    paused        INTEGER NOT NULL,
    -- NULL while paused, so the due index holds only live schedules.
    next_fire     INTEGER,
    last_fire     INTEGER,
    -- JSON array of the message ids of the last fire.
    last_messages TEXT NOT NULL,
    last_error    TEXT,
    PRIMARY KEY (user_id, id)
);
-- (user_id, id) too, so a pass over many schedules due at the same tick
-- pages through the index.
CREATE INDEX IF NOT EXISTS schedules_due ON schedules(next_fire, user_id, id) WHERE next_fire IS NOT NULL;
CREATE INDEX IF NOT EXISTS schedules_user ON schedules(user_id, created_at);
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_count_up_from_one() {
        for (i, (v, _, _)) in MIGRATIONS.iter().enumerate() {
            assert_eq!(*v as usize, i + 1);
        }
    }

    fn log_schema(conn: &Connection) -> String {
        conn.query_row(
            "SELECT sql FROM sqlite_master WHERE name = 'events'",
            [],
            |r| r.get(0),
        )
        .unwrap()
    }

    /// Migration 9 rebuilds an empty log without `AUTOINCREMENT`, and
    /// leaves a log with entries as it is.
    #[test]
    fn only_an_empty_log_loses_autoincrement() {
        let fresh = Connection::open_in_memory().unwrap();
        migrate(&fresh).unwrap();
        assert!(!log_schema(&fresh).contains("AUTOINCREMENT"));
        let indexes: i64 = fresh
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE tbl_name = 'events' AND type = 'index'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(indexes, 2, "events_message and events_user_state");

        let kept = Connection::open_in_memory().unwrap();
        super::super::logs::register_key_hash(&kept).unwrap();
        assert_eq!(apply_until(&kept, 8), 8);
        kept.execute_batch(
            "INSERT INTO events (user_id, message_id, time, state) VALUES ('u', 'm', 1, 'CREATED')",
        )
        .unwrap();
        assert_eq!(migrate(&kept).unwrap(), 9);
        assert!(log_schema(&kept).contains("AUTOINCREMENT"));
        let entries: i64 = kept
            .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
            .unwrap();
        assert_eq!(entries, 1);
    }

    /// The migrations up to `last`, as an older qstash applied them.
    fn apply_until(conn: &Connection, last: u32) -> u32 {
        for (v, _, change) in MIGRATIONS.iter().filter(|(v, _, _)| *v <= last) {
            change.run(conn).unwrap();
            conn.execute_batch(&format!("PRAGMA user_version = {v}"))
                .unwrap();
        }
        last
    }

    #[test]
    fn migrating_twice_changes_nothing_and_a_newer_database_is_refused() {
        let conn = Connection::open_in_memory().unwrap();
        let last = MIGRATIONS.len() as u32;
        assert_eq!(migrate(&conn).unwrap(), last);
        assert_eq!(migrate(&conn).unwrap(), last);
        conn.execute_batch(&format!("PRAGMA user_version = {}", last + 1))
            .unwrap();
        assert!(migrate(&conn).unwrap_err().to_string().contains("newer"));
    }

    /// Migrations sort in files (a large log need not fit in memory), and
    /// the connection gets its own setting back afterwards.
    #[test]
    fn the_connections_temp_store_is_kept() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("PRAGMA temp_store = MEMORY").unwrap();
        migrate(&conn).unwrap();
        let temp_store: i64 = conn
            .query_row("PRAGMA temp_store", [], |r| r.get(0))
            .unwrap();
        assert_eq!(temp_store, 2, "MEMORY");
    }
}
