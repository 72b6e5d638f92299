//! Workflow runs and step logs on SQLite (see `crate::workflow`).

use async_trait::async_trait;
use qstash_core::clock::Millis;
use qstash_core::message::{CancelRequest, Inserted, NewMessage};
use qstash_core::workflow::{Run, RunFilter, RunState, StepEntry, Waiter};
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{messages, SqliteStore, Tx};
use crate::workflow::{
    by_id_page, call_type, cancels_leftovers, decode_config, decode_json, decode_state,
    encode_config, encode_json, resume_message, Appended, EndIf, Ended, Failing, Resume, RunPage,
    RunWalk,
};
use crate::{Result, Workflows};

pub const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS workflow_runs (
    user_id      TEXT NOT NULL,
    run_id       TEXT NOT NULL,
    url          TEXT NOT NULL,
    label        TEXT,
    state        TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    initial_body BLOB NOT NULL,
    -- JSON: the trigger settings later steps inherit.
    config       TEXT NOT NULL,
    result       BLOB,
    failure      TEXT,
    trigger_id   TEXT NOT NULL,
    -- The seq the next log entry takes.
    next_seq     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, run_id)
);
CREATE INDEX IF NOT EXISTS workflow_runs_created ON workflow_runs(user_id, created_at);
CREATE TABLE IF NOT EXISTS workflow_steps (
    user_id    TEXT NOT NULL,
    run_id     TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    message_id TEXT NOT NULL,
    call_type  TEXT NOT NULL,
    body       BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, run_id, seq)
);
CREATE TABLE IF NOT EXISTS workflow_waiters (
    user_id         TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    run_id          TEXT NOT NULL,
    url             TEXT NOT NULL,
    deadline        INTEGER NOT NULL,
    headers         TEXT NOT NULL,
    timeout_url     TEXT NOT NULL,
    timeout_headers TEXT NOT NULL,
    step            TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (user_id, event_id, run_id)
);
CREATE INDEX IF NOT EXISTS workflow_waiters_deadline ON workflow_waiters(deadline);
CREATE INDEX IF NOT EXISTS workflow_waiters_run ON workflow_waiters(user_id, run_id);
-- Events notified to a run before it waited for them (lookback).
CREATE TABLE IF NOT EXISTS workflow_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    TEXT NOT NULL,
    run_id     TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    data       BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS workflow_events_run ON workflow_events(user_id, run_id, event_id, id);
"#;

/// Runs a step's final failure was recorded for, until the run is ended
/// (written in the outcome's commit; see `Workflows::failing_runs`).
pub const FAILING: &str = r#"
CREATE TABLE IF NOT EXISTS workflow_failing (
    user_id    TEXT NOT NULL,
    run_id     TEXT NOT NULL,
    message_id TEXT NOT NULL,
    error      TEXT NOT NULL,
    at         INTEGER NOT NULL,
    PRIMARY KEY (user_id, run_id, message_id)
);
CREATE INDEX IF NOT EXISTS workflow_failing_at ON workflow_failing(at);
"#;

const RUN_COLUMNS: &str = "user_id, run_id, url, label, state, created_at, updated_at, initial_body, config, result, failure";

fn run_of(r: &Row) -> rusqlite::Result<(Run, String, String)> {
    Ok((
        Run {
            user_id: r.get(0)?,
            run_id: r.get(1)?,
            url: r.get(2)?,
            label: r.get(3)?,
            state: RunState::Running,
            created_at: r.get(5)?,
            updated_at: r.get(6)?,
            initial_body: r.get(7)?,
            config: Default::default(),
            result: r.get(9)?,
            failure: r.get(10)?,
        },
        r.get(4)?,
        r.get(8)?,
    ))
}

fn finish((mut run, state, config): (Run, String, String)) -> Result<Run> {
    run.state = decode_state(&state)?;
    run.config = decode_config(&config)?;
    Ok(run)
}

/// Appends `messages` (already stored) to the log from `seq` on.
fn log(
    conn: &Connection,
    user_id: &str,
    run_id: &str,
    seq: i64,
    messages: &[NewMessage],
    inserted: &[Inserted],
    now: Millis,
) -> Result<i64> {
    let mut next = seq;
    let mut insert = conn.prepare_cached(
        "INSERT INTO workflow_steps (user_id, run_id, seq, message_id, call_type, body, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for (m, ins) in messages.iter().zip(inserted) {
        if let Inserted::New(id) = ins {
            insert.execute(params![
                user_id,
                run_id,
                next,
                id,
                call_type(m),
                &m.message.body[..],
                now
            ])?;
            next += 1;
        }
    }
    Ok(next)
}

fn start(
    conn: &Tx,
    run: &Run,
    config: &str,
    message: &NewMessage,
    encoded: &[crate::rows::Encoded],
    now: Millis,
) -> Result<Inserted> {
    let existing: Option<String> = conn
        .prepare_cached("SELECT trigger_id FROM workflow_runs WHERE user_id = ?1 AND run_id = ?2")?
        .query_row(params![run.user_id, run.run_id], |r| r.get(0))
        .optional()?;
    if let Some(id) = existing {
        return Ok(Inserted::Duplicate(id));
    }
    let batch = std::slice::from_ref(message);
    let inserted = messages::insert_encoded(conn, batch, encoded, now)?;
    let Some(Inserted::New(id)) = inserted.first().cloned() else {
        return Ok(inserted.into_iter().next().expect("one answer per message"));
    };
    conn.prepare_cached(
        "INSERT INTO workflow_runs (user_id, run_id, url, label, state, created_at, updated_at, initial_body, config, trigger_id, next_seq)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7, ?8, ?9, 0)",
    )?
    .execute(params![run.user_id, run.run_id, run.url, run.label, run.state.as_str(), run.created_at, run.initial_body, config, id])?;
    let next = log(conn, &run.user_id, &run.run_id, 0, batch, &inserted, now)?;
    set_next(conn, &run.user_id, &run.run_id, next)?;
    Ok(Inserted::New(id))
}

fn set_next(conn: &Connection, user_id: &str, run_id: &str, next: i64) -> Result<()> {
    conn.prepare_cached(
        "UPDATE workflow_runs SET next_seq = ?3 WHERE user_id = ?1 AND run_id = ?2",
    )?
    .execute(params![user_id, run_id, next])?;
    Ok(())
}

fn append(
    conn: &Tx,
    user_id: &str,
    run_id: &str,
    batch: &[NewMessage],
    encoded: &[crate::rows::Encoded],
    now: Millis,
) -> Result<Appended> {
    let found: Option<(String, i64)> = conn
        .prepare_cached(
            "SELECT state, next_seq FROM workflow_runs WHERE user_id = ?1 AND run_id = ?2",
        )?
        .query_row(params![user_id, run_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((state, seq)) = found else {
        return Ok(Appended::Unknown);
    };
    let state = decode_state(&state)?;
    if state != RunState::Running {
        return Ok(Appended::Ended(state));
    }
    let inserted = messages::insert_encoded(conn, batch, encoded, now)?;
    let next = log(conn, user_id, run_id, seq, batch, &inserted, now)?;
    set_next(conn, user_id, run_id, next)?;
    Ok(Appended::Stored(inserted))
}

#[allow(clippy::too_many_arguments)]
fn end(
    conn: &Tx,
    user_id: &str,
    run_id: &str,
    when: EndIf,
    state: RunState,
    result: Option<&[u8]>,
    failure: Option<&str>,
    resume: Option<Resume>,
    now: Millis,
) -> Result<Option<Ended>> {
    // However the run ends (or if it is gone), it is no longer failing;
    // for `EndIf::Noted` taking a note is the permission to end it.
    let noted = take_notes(conn, user_id, run_id)?;
    let found: Option<String> = conn
        .prepare_cached("SELECT state FROM workflow_runs WHERE user_id = ?1 AND run_id = ?2")?
        .query_row(params![user_id, run_id], |r| r.get(0))
        .optional()?;
    let Some(was) = found else { return Ok(None) };
    let was = decode_state(&was)?;
    let changed = was == RunState::Running && (when == EndIf::Running || noted);
    if changed {
        conn.prepare_cached(
            "UPDATE workflow_runs SET state = ?3, result = ?4, failure = ?5, updated_at = ?6 WHERE user_id = ?1 AND run_id = ?2",
        )?
        .execute(params![user_id, run_id, state.as_str(), result, failure, now])?;
        conn.prepare_cached("DELETE FROM workflow_waiters WHERE user_id = ?1 AND run_id = ?2")?
            .execute(params![user_id, run_id])?;
        conn.prepare_cached("DELETE FROM workflow_events WHERE user_id = ?1 AND run_id = ?2")?
            .execute(params![user_id, run_id])?;
        if let Some(resume) = resume {
            resume_invoker(conn, user_id, resume, now)?;
        }
    }
    let now_state = if changed { state } else { was };
    let mut cancelled = 0;
    if cancels_leftovers(now_state) {
        let message_ids = conn
            .prepare_cached(
                "SELECT message_id FROM workflow_steps WHERE user_id = ?1 AND run_id = ?2 ORDER BY seq",
            )?
            .query_map(params![user_id, run_id], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        let request = CancelRequest {
            message_ids,
            ..Default::default()
        };
        cancelled = messages::cancel(conn, user_id, &request, now)?.cancelled;
    }
    Ok(Some(Ended {
        was,
        changed,
        cancelled,
    }))
}

/// Deletes the run's failing notes; true when there was one.
fn take_notes(conn: &Connection, user_id: &str, run_id: &str) -> Result<bool> {
    let n = conn
        .prepare_cached("DELETE FROM workflow_failing WHERE user_id = ?1 AND run_id = ?2")?
        .execute(params![user_id, run_id])?;
    Ok(n > 0)
}

/// Appends `resume` to the invoking run if it is still running (with
/// that run's trigger settings); an ended or unknown one is left alone.
fn resume_invoker(conn: &Tx, user_id: &str, resume: Resume, now: Millis) -> Result<()> {
    let config: Option<String> = conn
        .prepare_cached(
            "SELECT config FROM workflow_runs WHERE user_id = ?1 AND run_id = ?2 AND state = ?3",
        )?
        .query_row(
            params![user_id, resume.run_id, RunState::Running.as_str()],
            |r| r.get(0),
        )
        .optional()?;
    let Some(config) = config else { return Ok(()) };
    let mut message = resume.message;
    decode_config(&config)?.apply(&mut message.message.spec);
    let batch = [message];
    let encoded = crate::rows::encode(&batch)?;
    append(conn, user_id, &resume.run_id, &batch, &encoded, now)?;
    Ok(())
}

/// Run ids one waiter query names (the statement is cached per length).
const RUNS_PER_QUERY: usize = 200;

const WAITER_COLUMNS: &str = "user_id, event_id, run_id, url, deadline, headers, timeout_url, timeout_headers, step, created_at";

type WaiterRow = (Waiter, String, String, String);

fn waiter_of(r: &Row) -> rusqlite::Result<WaiterRow> {
    Ok((
        Waiter {
            user_id: r.get(0)?,
            event_id: r.get(1)?,
            run_id: r.get(2)?,
            url: r.get(3)?,
            deadline: r.get(4)?,
            headers: Default::default(),
            timeout_url: r.get(6)?,
            timeout_headers: Default::default(),
            step: serde_json::Value::Null,
            created_at: r.get(9)?,
        },
        r.get(5)?,
        r.get(7)?,
        r.get(8)?,
    ))
}

fn finish_waiter((mut w, headers, timeout_headers, step): WaiterRow) -> Result<Waiter> {
    w.headers = decode_json(&headers)?;
    w.timeout_headers = decode_json(&timeout_headers)?;
    w.step = decode_json(&step)?;
    Ok(w)
}

fn add_waiter(conn: &Tx, w: &Waiter) -> Result<Appended> {
    let found: Option<String> = conn
        .prepare_cached("SELECT state FROM workflow_runs WHERE user_id = ?1 AND run_id = ?2")?
        .query_row(params![w.user_id, w.run_id], |r| r.get(0))
        .optional()?;
    let Some(state) = found else {
        return Ok(Appended::Unknown);
    };
    let state = decode_state(&state)?;
    if state != RunState::Running {
        return Ok(Appended::Ended(state));
    }
    // An event notified to the run before it waited resumes it at once.
    let kept: Option<(i64, Vec<u8>)> = conn
        .prepare_cached(
            "SELECT id, data FROM workflow_events WHERE user_id = ?1 AND run_id = ?2 AND event_id = ?3 ORDER BY id LIMIT 1",
        )?
        .query_row(params![w.user_id, w.run_id, w.event_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if let Some((id, data)) = kept {
        conn.prepare_cached("DELETE FROM workflow_events WHERE id = ?1")?
            .execute(params![id])?;
        let resumed = resume(conn, vec![w.clone()], Some(&data), w.created_at)?;
        return Ok(Appended::Stored(
            resumed
                .into_iter()
                .map(|(_, id)| Inserted::New(id))
                .collect(),
        ));
    }
    let sql = format!("INSERT OR REPLACE INTO workflow_waiters ({WAITER_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)");
    conn.prepare_cached(&sql)?.execute(params![
        w.user_id,
        w.event_id,
        w.run_id,
        w.url,
        w.deadline,
        encode_json(&w.headers)?,
        w.timeout_url,
        encode_json(&w.timeout_headers)?,
        encode_json(&w.step)?,
        w.created_at
    ])?;
    Ok(Appended::Stored(Vec::new()))
}

/// Keeps an event notified to a running run that does not wait for it
/// yet, for its next wait (lookback).
fn keep_event(
    conn: &Connection,
    user_id: &str,
    run_id: &str,
    event_id: &str,
    data: &[u8],
    now: Millis,
) -> Result<()> {
    let state: Option<String> = conn
        .prepare_cached("SELECT state FROM workflow_runs WHERE user_id = ?1 AND run_id = ?2")?
        .query_row(params![user_id, run_id], |r| r.get(0))
        .optional()?;
    if state.as_deref() == Some(RunState::Running.as_str()) {
        conn.prepare_cached(
            "INSERT INTO workflow_events (user_id, run_id, event_id, data, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![user_id, run_id, event_id, data, now])?;
    }
    Ok(())
}

/// Deletes the waiters and resumes their running runs, each message
/// stored and logged in this transaction.
fn resume(
    conn: &Tx,
    waiters: Vec<Waiter>,
    event: Option<&[u8]>,
    now: Millis,
) -> Result<Vec<(Waiter, String)>> {
    let mut out = Vec::new();
    for w in waiters {
        conn.prepare_cached(
            "DELETE FROM workflow_waiters WHERE user_id = ?1 AND event_id = ?2 AND run_id = ?3",
        )?
        .execute(params![w.user_id, w.event_id, w.run_id])?;
        let run: Option<(String, String, i64)> = conn
            .prepare_cached("SELECT state, config, next_seq FROM workflow_runs WHERE user_id = ?1 AND run_id = ?2")?
            .query_row(params![w.user_id, w.run_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        let Some((state, config, seq)) = run else {
            continue;
        };
        if decode_state(&state)? != RunState::Running {
            continue;
        }
        let Some(message) = resume_message(&w, event, &decode_config(&config)?, now) else {
            continue;
        };
        let batch = [message];
        let encoded = crate::rows::encode(&batch)?;
        let inserted = messages::insert_encoded(conn, &batch, &encoded, now)?;
        let next = log(conn, &w.user_id, &w.run_id, seq, &batch, &inserted, now)?;
        set_next(conn, &w.user_id, &w.run_id, next)?;
        out.push((w, batch[0].message.id.clone()));
    }
    Ok(out)
}

fn take_waiters(
    conn: &Connection,
    sql: &str,
    args: &[&dyn rusqlite::ToSql],
) -> Result<Vec<Waiter>> {
    let rows = conn
        .prepare_cached(sql)?
        .query_map(args, waiter_of)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter().map(finish_waiter).collect()
}

/// The retry `id` of the failed message `failed` takes its place in the
/// log, and the run runs again.
fn relog(
    conn: &Connection,
    user_id: &str,
    run_id: &str,
    failed: &str,
    id: &str,
    now: Millis,
) -> Result<()> {
    conn.prepare_cached("UPDATE workflow_steps SET message_id = ?4 WHERE user_id = ?1 AND run_id = ?2 AND message_id = ?3")?
        .execute(params![user_id, run_id, failed, id])?;
    conn.prepare_cached(
        "UPDATE workflow_runs SET state = 'RUN_STARTED', failure = NULL, updated_at = ?3 WHERE user_id = ?1 AND run_id = ?2",
    )?
    .execute(params![user_id, run_id, now])?;
    Ok(())
}

#[async_trait]
impl Workflows for SqliteStore {
    async fn start_run(&self, run: Run, message: NewMessage, now: Millis) -> Result<Inserted> {
        let encoded = crate::rows::encode(std::slice::from_ref(&message))?;
        let config = encode_config(&run)?;
        self.writer
            .write(move |conn| start(conn, &run, &config, &message, &encoded, now))
            .await
    }

    async fn append_to_run(
        &self,
        user_id: &str,
        run_id: &str,
        messages: Vec<NewMessage>,
        now: Millis,
    ) -> Result<Appended> {
        let encoded = crate::rows::encode(&messages)?;
        let (user_id, run_id) = (user_id.to_string(), run_id.to_string());
        self.writer
            .write(move |conn| append(conn, &user_id, &run_id, &messages, &encoded, now))
            .await
    }

    async fn get_run(&self, user_id: &str, run_id: &str) -> Result<Option<Run>> {
        let (user_id, run_id) = (user_id.to_string(), run_id.to_string());
        self.read(move |conn| {
            let sql = format!(
                "SELECT {RUN_COLUMNS} FROM workflow_runs WHERE user_id = ?1 AND run_id = ?2"
            );
            conn.prepare_cached(&sql)?
                .query_row(params![user_id, run_id], run_of)
                .optional()?
                .map(finish)
                .transpose()
        })
        .await
    }

    async fn run_steps(&self, user_id: &str, run_id: &str) -> Result<Vec<StepEntry>> {
        let (user_id, run_id) = (user_id.to_string(), run_id.to_string());
        self.read(move |conn| {
            let rows = conn
                .prepare_cached(
                    "SELECT seq, message_id, call_type, body, created_at FROM workflow_steps
                     WHERE user_id = ?1 AND run_id = ?2 ORDER BY seq",
                )?
                .query_map(params![user_id, run_id], |r| {
                    Ok(StepEntry {
                        seq: r.get(0)?,
                        message_id: r.get(1)?,
                        call_type: r.get(2)?,
                        body: r.get(3)?,
                        created_at: r.get(4)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn end_run(
        &self,
        user_id: &str,
        run_id: &str,
        when: EndIf,
        state: RunState,
        result: Option<Vec<u8>>,
        failure: Option<String>,
        resume: Option<Resume>,
        now: Millis,
    ) -> Result<Option<Ended>> {
        let (user_id, run_id) = (user_id.to_string(), run_id.to_string());
        self.writer
            .write(move |conn| {
                end(
                    conn,
                    &user_id,
                    &run_id,
                    when,
                    state,
                    result.as_deref(),
                    failure.as_deref(),
                    resume.clone(),
                    now,
                )
            })
            .await
    }

    async fn list_runs(
        &self,
        user_id: &str,
        filter: RunFilter,
        before: Option<(Millis, String)>,
        count: usize,
        budget: usize,
    ) -> Result<RunPage> {
        let user_id = user_id.to_string();
        self.read(move |conn| {
            let (at, id) = before
                .clone()
                .unwrap_or((Millis::MAX, "\u{10ffff}".to_string()));
            // Runs named by id: one primary-key lookup each.
            if !filter.run_ids.is_empty() {
                let sql = format!(
                    "SELECT {RUN_COLUMNS} FROM workflow_runs WHERE user_id = ?1 AND run_id = ?2"
                );
                let mut stmt = conn.prepare_cached(&sql)?;
                let mut out = Vec::new();
                for run_id in &filter.run_ids {
                    if let Some(row) = stmt
                        .query_row(params![user_id, run_id], run_of)
                        .optional()?
                    {
                        out.push(finish(row)?);
                    }
                }
                return Ok(by_id_page(out, &filter, (at, &id), count));
            }
            // Newest first through the (user, created) index within the
            // date bounds, in chunks, the other filters checked per row,
            // at most `budget` rows examined.
            let sql = format!(
                "SELECT {RUN_COLUMNS} FROM workflow_runs WHERE user_id = ?1
                 AND (created_at < ?2 OR (created_at = ?2 AND run_id < ?3))
                 AND (?4 IS NULL OR created_at >= ?4) AND (?5 IS NULL OR created_at <= ?5)
                 ORDER BY created_at DESC, run_id DESC LIMIT ?6"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut walk = RunWalk::new(&filter, before, count, budget);
            while walk.want() > 0 {
                let (at, id) = walk.from();
                let rows = stmt
                    .query_map(
                        params![
                            user_id,
                            at,
                            id,
                            filter.from_date,
                            filter.to_date,
                            walk.want() as i64
                        ],
                        run_of,
                    )?
                    .map(|r| finish(r?))
                    .collect::<Result<Vec<_>>>()?;
                walk.feed(rows);
            }
            Ok(walk.finish())
        })
        .await
    }

    async fn add_waiter(&self, waiter: Waiter) -> Result<Appended> {
        self.writer
            .write(move |conn| add_waiter(conn, &waiter))
            .await
    }

    async fn notify(
        &self,
        user_id: &str,
        event_id: &str,
        run_id: Option<String>,
        event: Vec<u8>,
        now: Millis,
    ) -> Result<Vec<(Waiter, String)>> {
        let (user_id, event_id) = (user_id.to_string(), event_id.to_string());
        self.writer
            .write(move |conn| {
                let sql = format!(
                    "SELECT {WAITER_COLUMNS} FROM workflow_waiters WHERE user_id = ?1 AND event_id = ?2 AND (?3 IS NULL OR run_id = ?3) ORDER BY created_at"
                );
                let waiters = take_waiters(conn, &sql, &[&user_id, &event_id, &run_id])?;
                let resumed = resume(conn, waiters, Some(&event), now)?;
                if let (true, Some(run)) = (resumed.is_empty(), &run_id) {
                    keep_event(conn, &user_id, run, &event_id, &event, now)?;
                }
                Ok(resumed)
            })
            .await
    }

    async fn expire_waiters(&self, now: Millis, limit: usize) -> Result<usize> {
        self.writer
            .write(move |conn| {
                let sql = format!("SELECT {WAITER_COLUMNS} FROM workflow_waiters WHERE deadline <= ?1 ORDER BY deadline LIMIT ?2");
                let waiters = take_waiters(conn, &sql, &[&now, &(limit as i64)])?;
                let n = waiters.len();
                resume(conn, waiters, None, now)?;
                Ok(n)
            })
            .await
    }

    async fn resume_from_dlq(
        &self,
        user_id: &str,
        run_id: &str,
        failed_message_id: &str,
        retry: qstash_core::dlq::DlqRetry,
        revive: Vec<(String, NewMessage)>,
        now: Millis,
    ) -> Result<Option<String>> {
        let (user_id, run_id, failed) = (
            user_id.to_string(),
            run_id.to_string(),
            failed_message_id.to_string(),
        );
        self.writer
            .write(move |conn| {
                // Only a failed run resumes: a second entry of a run resumed
                // already (parallel branches) changes nothing.
                let state: Option<String> = conn
                    .prepare_cached(
                        "SELECT state FROM workflow_runs WHERE user_id = ?1 AND run_id = ?2",
                    )?
                    .query_row(params![user_id, run_id], |r| r.get(0))
                    .optional()?;
                if state.as_deref() != Some(RunState::Failed.as_str()) {
                    return Ok(None);
                }
                let created = super::dlq::retry(conn, &user_id, std::slice::from_ref(&retry), now)?;
                let Some(Some(id)) = created.into_iter().next() else {
                    return Ok(None);
                };
                relog(conn, &user_id, &run_id, &failed, &id, now)?;
                for (old, m) in &revive {
                    let inserted = messages::insert(conn, std::slice::from_ref(m), now)?;
                    if let Some(new) = inserted.first() {
                        relog(conn, &user_id, &run_id, old, new.id(), now)?;
                    }
                }
                // Notes left of the failure resumed (a crash before its
                // end, a parallel branch's) must not fail the revived run.
                take_notes(conn, &user_id, &run_id)?;
                Ok(Some(id))
            })
            .await
    }

    async fn next_waiter_deadline(&self) -> Result<Option<Millis>> {
        self.read(|conn| {
            Ok(conn
                .prepare_cached("SELECT MIN(deadline) FROM workflow_waiters")?
                .query_row([], |r| r.get(0))?)
        })
        .await
    }

    async fn list_waiters(&self, user_id: &str, event_id: &str) -> Result<Vec<Waiter>> {
        let (user_id, event_id) = (user_id.to_string(), event_id.to_string());
        self.read(move |conn| {
            let sql = format!("SELECT {WAITER_COLUMNS} FROM workflow_waiters WHERE user_id = ?1 AND event_id = ?2 ORDER BY created_at");
            take_waiters(conn, &sql, &[&user_id, &event_id])
        })
        .await
    }

    async fn failing_runs(&self, before: Millis, limit: usize) -> Result<Vec<Failing>> {
        self.read(move |conn| {
            let rows = conn
                .prepare_cached(
                    "SELECT user_id, run_id, error FROM workflow_failing WHERE at < ?1 ORDER BY at LIMIT ?2",
                )?
                .query_map(params![before, limit as i64], |r| {
                    Ok(Failing {
                        user_id: r.get(0)?,
                        run_id: r.get(1)?,
                        error: r.get(2)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn runs_waiters(&self, user_id: &str, run_ids: &[String]) -> Result<Vec<Waiter>> {
        let (user_id, run_ids) = (user_id.to_string(), run_ids.to_vec());
        self.read(move |conn| {
            let mut out = Vec::new();
            for chunk in run_ids.chunks(RUNS_PER_QUERY) {
                let marks: Vec<String> = (2..chunk.len() + 2).map(|i| format!("?{i}")).collect();
                let sql = format!(
                    "SELECT {WAITER_COLUMNS} FROM workflow_waiters WHERE user_id = ?1 AND run_id IN ({}) ORDER BY created_at",
                    marks.join(", ")
                );
                let mut args: Vec<&dyn rusqlite::ToSql> = vec![&user_id];
                args.extend(chunk.iter().map(|r| r as &dyn rusqlite::ToSql));
                out.extend(take_waiters(conn, &sql, &args)?);
            }
            Ok(out)
        })
        .await
    }
}
