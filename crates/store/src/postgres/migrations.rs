//! The PostgreSQL schema, as numbered migrations. They are applied at start
//! in one transaction holding an advisory lock on the schema, so several
//! nodes starting at once migrate once: the others wait for the lock, then
//! find nothing left to do. `qstash_migrations` records what was applied.
//! Never edit a released migration: append a new one.
//!
//! The tables mirror the SQLite ones (`sqlite/migrations.rs`), with the
//! same partial indexes: every query the engine runs per message is served
//! by an index. `messages.seq` gives a queue its enqueue order (SQLite's
//! rowid).

use tokio_postgres::Client;

use crate::{Result, StoreError};

/// (version, what it does, SQL). Versions are 1, 2, 3, ... in order.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "initial schema", INITIAL),
    (2, "live-message index (console)", super::live::LIVE_INDEX),
    (3, "URL group default headers, per-user due index", SAFETY),
    (4, "nodes and the claims they hold", CLUSTER),
    (5, "workflow runs and step logs", super::workflow::SCHEMA),
    (6, "workflow runs failing", super::workflow::FAILING),
    (
        7,
        "no per-user index of all messages",
        "DROP INDEX IF EXISTS messages_user;",
    ),
    // Issue 17, as SQLite's migration 7: listings merge the per-state walks
    // of events_user_state, and the purge walks it per user and state.
    (
        8,
        "no (user, time) index of the log",
        "DROP INDEX IF EXISTS events_user_time;",
    ),
];

/// Issue 13, as SQLite's migration 3.
const SAFETY: &str = r#"
CREATE TABLE IF NOT EXISTS url_group_headers (
    user_id TEXT NOT NULL,
    name    TEXT NOT NULL,
    headers TEXT NOT NULL,
    PRIMARY KEY (user_id, name)
);
CREATE INDEX IF NOT EXISTS messages_due_plain_user ON messages(user_id, due_at)
    WHERE state = 'pending' AND queue_name IS NULL AND flow_control_key IS NULL;
"#;

/// First key of the advisory lock: "qs" (the second is the schema's hash).
const LOCK: i32 = 0x7173;

/// Creates the schema named first in `search_path` if it is missing, then
/// applies the migrations it has not seen; answers the schema and the
/// version it is at.
pub async fn migrate(client: &mut Client) -> Result<(String, i32)> {
    let schema = target_schema(client).await?;
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext($2))",
        &[&LOCK, &schema],
    )
    .await?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {};
         CREATE TABLE IF NOT EXISTS qstash_migrations (
             version    INTEGER PRIMARY KEY,
             name       TEXT NOT NULL,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         );",
        quote_ident(&schema)
    ))
    .await?;
    let mut version: i32 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM qstash_migrations",
            &[],
        )
        .await?
        .get(0);
    if version > MIGRATIONS.len() as i32 {
        return Err(StoreError::Corrupt(format!(
            "the database is at schema version {version}, newer than this qstash knows ({}); use a newer qstash",
            MIGRATIONS.len()
        )));
    }
    let from = version;
    for (v, name, sql) in MIGRATIONS.iter().filter(|(v, _, _)| *v > from) {
        tracing::info!(version = v, name, schema, "store: applying migration");
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO qstash_migrations (version, name) VALUES ($1, $2)",
            &[v, name],
        )
        .await?;
        version = *v;
    }
    tx.commit().await?;
    Ok((schema, version))
}

/// The schema tables go into: the first one of `search_path`, which need
/// not exist yet (`?options=-csearch_path%3Dqstash` in the URL picks one).
async fn target_schema(client: &Client) -> Result<String> {
    let row = client
        .query_one(
            "SELECT current_schema(), current_setting('search_path'), current_user",
            &[],
        )
        .await?;
    if let Some(existing) = row.get::<_, Option<String>>(0) {
        return Ok(existing);
    }
    let path: String = row.get(1);
    let user: String = row.get(2);
    let first = path
        .split(',')
        .next()
        .unwrap_or("")
        .trim()
        .trim_matches('"');
    Ok(match first {
        "" => "public".into(),
        "$user" => user,
        name => name.to_string(),
    })
}

pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

const INITIAL: &str = r#"
CREATE TABLE messages (
    id               TEXT PRIMARY KEY,
    -- Enqueue order: a queue's line is read in this order.
    seq              BIGINT GENERATED ALWAYS AS IDENTITY,
    user_id          TEXT NOT NULL,
    state            TEXT NOT NULL,
    due_at           BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    not_before       BIGINT NOT NULL,
    retried          INTEGER NOT NULL,
    updated_at       BIGINT NOT NULL,
    url              TEXT NOT NULL,
    topic_name       TEXT,
    queue_name       TEXT,
    schedule_id      TEXT,
    flow_control_key TEXT,
    caller_ip        TEXT,
    -- ",a,b," so one label matches with LIKE '%,a,%'.
    labels           TEXT,
    spec             TEXT NOT NULL,
    body             BYTEA NOT NULL
);
-- The scheduler's only way to find work: plain pending messages by due
-- time. Queued and flow-controlled messages wait in their own lines.
CREATE INDEX messages_due_plain ON messages (due_at)
    WHERE state = 'pending' AND queue_name IS NULL AND flow_control_key IS NULL;
CREATE INDEX messages_in_flight ON messages (state) WHERE state = 'active';
CREATE INDEX messages_user ON messages (user_id, created_at);
CREATE INDEX messages_finished ON messages (updated_at) WHERE state IN ('delivered', 'cancelled');
CREATE INDEX messages_failed ON messages (updated_at) WHERE state = 'failed';
-- A queue's line: its undelivered messages in enqueue order.
CREATE INDEX messages_queue_line ON messages (user_id, queue_name, seq)
    WHERE queue_name IS NOT NULL AND state IN ('pending', 'active');
-- A flow-control key's line: its waiting messages by due time.
CREATE INDEX messages_key_line ON messages (user_id, flow_control_key, due_at, seq)
    WHERE flow_control_key IS NOT NULL AND queue_name IS NULL AND state = 'pending';

CREATE TABLE events (
    seq                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id            TEXT NOT NULL,
    message_id         TEXT NOT NULL,
    time               BIGINT NOT NULL,
    state              TEXT NOT NULL,
    error              TEXT,
    next_delivery_time BIGINT,
    response_status    INTEGER,
    response_header    TEXT,
    response_body      BYTEA
);
CREATE INDEX events_message ON events (message_id);
CREATE INDEX events_user_time ON events (user_id, time, seq);
CREATE INDEX events_user_state ON events (user_id, state, time, seq);

-- One row per attribute value of each event ("url:http://a/b",
-- "label:billing"), written with the event: a log filter on one attribute
-- walks this index from its cursor.
CREATE TABLE event_keys (
    user_id TEXT NOT NULL,
    key     TEXT NOT NULL,
    time    BIGINT NOT NULL,
    seq     BIGINT NOT NULL,
    PRIMARY KEY (user_id, key, time, seq)
);
CREATE INDEX event_keys_time ON event_keys (time);

CREATE TABLE dlq (
    dlq_id          TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL,
    message_id      TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    response_status INTEGER NOT NULL,
    response_header TEXT NOT NULL,
    response_body   BYTEA NOT NULL,
    error           TEXT
);
CREATE INDEX dlq_order ON dlq (user_id, created_at, dlq_id);
CREATE INDEX dlq_message ON dlq (message_id);
CREATE INDEX dlq_created ON dlq (created_at);

CREATE TABLE dedup (
    user_id    TEXT NOT NULL,
    key        TEXT NOT NULL,
    message_id TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, key)
);
CREATE INDEX dedup_expiry ON dedup (expires_at);

CREATE TABLE signing_keys (
    user_id TEXT PRIMARY KEY,
    current TEXT NOT NULL,
    next    TEXT NOT NULL
);

CREATE TABLE url_groups (
    user_id    TEXT NOT NULL,
    name       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    endpoints  TEXT NOT NULL,
    PRIMARY KEY (user_id, name)
);

CREATE TABLE queues (
    user_id     TEXT NOT NULL,
    name        TEXT NOT NULL,
    parallelism INTEGER NOT NULL,
    paused      BOOLEAN NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (user_id, name)
);

CREATE TABLE flow_control_keys (
    user_id            TEXT NOT NULL,
    key                TEXT NOT NULL,
    parallelism        INTEGER,
    rate               INTEGER,
    period             BIGINT NOT NULL,
    pinned_parallelism BOOLEAN NOT NULL,
    pinned_rate        BOOLEAN NOT NULL,
    paused             BOOLEAN NOT NULL,
    rate_reset_at      BIGINT NOT NULL,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    PRIMARY KEY (user_id, key)
);

-- Start times of deliveries of rate-limited keys, so the sliding rate
-- window survives a restart exactly. Pruned to one period as keys start.
CREATE TABLE flow_control_starts (
    user_id TEXT NOT NULL,
    key     TEXT NOT NULL,
    at      BIGINT NOT NULL
);
CREATE INDEX flow_control_starts_key ON flow_control_starts (user_id, key, at);

CREATE TABLE schedules (
    user_id       TEXT NOT NULL,
    id            TEXT NOT NULL,
    cron          TEXT NOT NULL,
    destination   TEXT NOT NULL,
    spec          TEXT NOT NULL,
    body          BYTEA NOT NULL,
    queue_name    TEXT,
    delay_secs    BIGINT,
    caller_ip     TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    -- Bumped by every replace, pause and resume; a fire commits only at
    -- the version it read.
    version       BIGINT NOT NULL,
    paused        BOOLEAN NOT NULL,
    -- NULL while paused, so the due index holds only live schedules.
    next_fire     BIGINT,
    last_fire     BIGINT,
    -- JSON array of the message ids of the last fire.
    last_messages TEXT NOT NULL,
    last_error    TEXT,
    PRIMARY KEY (user_id, id)
);
CREATE INDEX schedules_due ON schedules (next_fire, user_id, id) WHERE next_fire IS NOT NULL;
CREATE INDEX schedules_user ON schedules (user_id, created_at);

-- The host (without port) and the path of a destination URL, for the
-- log's `host` and `path` filters (SQLite has the same two functions).
CREATE FUNCTION qstash_url_host(url TEXT) RETURNS TEXT
    LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURNS NULL ON NULL INPUT
    AS $$ SELECT lower(substring(url from '^[A-Za-z][A-Za-z0-9+.-]*://(?:[^@/?#]*@)?(\[[^]]*\]|[^:/?#]*)')) $$;
CREATE FUNCTION qstash_url_path(url TEXT) RETURNS TEXT
    LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURNS NULL ON NULL INPUT
    AS $$ SELECT COALESCE(NULLIF(substring(url from '^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*([^?#]*)'), ''), '/') $$;
"#;

/// A cluster: every node has a row it refreshes (its heartbeat, on the
/// database's clock, so nodes' clocks need not agree), and an in-flight
/// message names the node that claimed it. A claim lasts as long as its
/// node keeps sending heartbeats: the node's lease is the claim's.
const CLUSTER: &str = r#"
CREATE TABLE nodes (
    id           TEXT PRIMARY KEY,
    address      TEXT NOT NULL,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);
ALTER TABLE messages ADD COLUMN claimed_by TEXT;
-- Every row in flight, by the node that claimed it: it replaces the index
-- of in-flight rows (a second index over the same rows would cost every
-- claim and outcome twice).
CREATE INDEX messages_claims ON messages (claimed_by) WHERE state = 'active';
DROP INDEX messages_in_flight;
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

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
