//! Tables and indexes. Every query the engine runs per message is served by
//! an index; nothing scans all messages.

pub const SCHEMA: &str = r#"
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
CREATE INDEX IF NOT EXISTS messages_user ON messages(user_id, created_at);
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
"#;
