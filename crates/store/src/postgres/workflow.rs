//! Workflow runs and step logs on PostgreSQL (see `crate::workflow`). A
//! log append locks its run row (`FOR UPDATE`), so appends of one run get
//! their sequence numbers in commit order on every node.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use qstash_core::clock::Millis;
use qstash_core::cluster::Signal;
use qstash_core::message::{CancelRequest, Inserted, NewMessage};
use qstash_core::workflow::{Run, RunFilter, RunState, StepEntry, Waiter};
use tokio_postgres::Row;

use super::batch::Noted;
use super::{messages, sql, PgStore};
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
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    initial_body BYTEA NOT NULL,
    config       TEXT NOT NULL,
    result       BYTEA,
    failure      TEXT,
    trigger_id   TEXT NOT NULL,
    next_seq     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, run_id)
);
CREATE INDEX IF NOT EXISTS workflow_runs_created ON workflow_runs(user_id, created_at);
CREATE TABLE IF NOT EXISTS workflow_steps (
    user_id    TEXT NOT NULL,
    run_id     TEXT NOT NULL,
    seq        BIGINT NOT NULL,
    message_id TEXT NOT NULL,
    call_type  TEXT NOT NULL,
    body       BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, run_id, seq)
);
CREATE TABLE IF NOT EXISTS workflow_waiters (
    user_id         TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    run_id          TEXT NOT NULL,
    url             TEXT NOT NULL,
    deadline        BIGINT NOT NULL,
    headers         TEXT NOT NULL,
    timeout_url     TEXT NOT NULL,
    timeout_headers TEXT NOT NULL,
    step            TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (user_id, event_id, run_id)
);
CREATE INDEX IF NOT EXISTS workflow_waiters_deadline ON workflow_waiters(deadline);
CREATE INDEX IF NOT EXISTS workflow_waiters_run ON workflow_waiters(user_id, run_id);
CREATE TABLE IF NOT EXISTS workflow_events (
    id         BIGSERIAL PRIMARY KEY,
    user_id    TEXT NOT NULL,
    run_id     TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    data       BYTEA NOT NULL,
    created_at BIGINT NOT NULL
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
    at         BIGINT NOT NULL,
    PRIMARY KEY (user_id, run_id, message_id)
);
CREATE INDEX IF NOT EXISTS workflow_failing_at ON workflow_failing(at);
"#;

const RUN_COLUMNS: &str = "user_id, run_id, url, label, state, created_at, updated_at, initial_body, config, result, failure";

fn run_of(r: &Row) -> Result<Run> {
    Ok(Run {
        user_id: r.try_get(0)?,
        run_id: r.try_get(1)?,
        url: r.try_get(2)?,
        label: r.try_get(3)?,
        state: decode_state(r.try_get(4)?)?,
        created_at: r.try_get(5)?,
        updated_at: r.try_get(6)?,
        initial_body: r.try_get(7)?,
        config: decode_config(r.try_get(8)?)?,
        result: r.try_get(9)?,
        failure: r.try_get(10)?,
    })
}

async fn log<C: GenericClient>(
    c: &C,
    user_id: &str,
    run_id: &str,
    seq: i64,
    batch: &[NewMessage],
    inserted: &[Inserted],
    now: Millis,
) -> Result<i64> {
    let mut next = seq;
    for (m, ins) in batch.iter().zip(inserted) {
        if let Inserted::New(id) = ins {
            sql::execute(
                c,
                "INSERT INTO workflow_steps (user_id, run_id, seq, message_id, call_type, body, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[&user_id, &run_id, &next, id, &call_type(m), &&m.message.body[..], &now],
            )
            .await?;
            next += 1;
        }
    }
    sql::execute(
        c,
        "UPDATE workflow_runs SET next_seq = $3 WHERE user_id = $1 AND run_id = $2",
        &[&user_id, &run_id, &next],
    )
    .await?;
    Ok(next)
}

const WAITER_COLUMNS: &str = "user_id, event_id, run_id, url, deadline, headers, timeout_url, timeout_headers, step, created_at";

fn waiter_of(r: &Row) -> Result<Waiter> {
    Ok(Waiter {
        user_id: r.try_get(0)?,
        event_id: r.try_get(1)?,
        run_id: r.try_get(2)?,
        url: r.try_get(3)?,
        deadline: r.try_get(4)?,
        headers: decode_json(r.try_get(5)?)?,
        timeout_url: r.try_get(6)?,
        timeout_headers: decode_json(r.try_get(7)?)?,
        step: decode_json(r.try_get(8)?)?,
        created_at: r.try_get(9)?,
    })
}

/// Resumes the running runs of taken waiters, each message stored and
/// logged in this transaction (the run row locked for its sequence).
async fn resume(
    tx: &deadpool_postgres::Transaction<'_>,
    noted: &mut Noted,
    node: &str,
    waiters: Vec<Waiter>,
    event: Option<&[u8]>,
    now: Millis,
) -> Result<Vec<(Waiter, String)>> {
    let mut out = Vec::new();
    for w in waiters {
        let run = sql::query_opt(
            tx,
            "SELECT state, config, next_seq FROM workflow_runs WHERE user_id = $1 AND run_id = $2 FOR UPDATE",
            &[&w.user_id, &w.run_id],
        )
        .await?;
        let Some(run) = run else { continue };
        if decode_state(run.try_get(0)?)? != RunState::Running {
            continue;
        }
        let config = decode_config(run.try_get(1)?)?;
        let Some(message) = resume_message(&w, event, &config, now) else {
            continue;
        };
        let batch = [message];
        let items = [(&batch[0], now)];
        let inserted =
            messages::insert(tx, &items, node, &mut noted.events, &mut noted.arrivals).await?;
        log(
            tx,
            &w.user_id,
            &w.run_id,
            run.try_get(2)?,
            &batch,
            &inserted,
            now,
        )
        .await?;
        out.push((w, batch[0].message.id.clone()));
    }
    Ok(out)
}

/// Deletes the run's failing notes; true when there was one.
async fn take_notes<C: GenericClient>(tx: &C, user_id: &str, run_id: &str) -> Result<bool> {
    let n = sql::execute(
        tx,
        "DELETE FROM workflow_failing WHERE user_id = $1 AND run_id = $2",
        &[&user_id, &run_id],
    )
    .await?;
    Ok(n > 0)
}

#[async_trait]
impl Workflows for PgStore {
    async fn start_run(&self, run: Run, message: NewMessage, now: Millis) -> Result<Inserted> {
        let config = encode_config(&run)?;
        self.writes
            .run(async |tx, noted| {
                // Takes the run id first: a second trigger of the same id
                // waits here and then finds it taken.
                let taken = sql::query_opt(
                    tx,
                    "INSERT INTO workflow_runs (user_id, run_id, url, label, state, created_at, updated_at, initial_body, config, trigger_id)
                     VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8, $9)
                     ON CONFLICT (user_id, run_id) DO NOTHING RETURNING run_id",
                    &[&run.user_id, &run.run_id, &run.url, &run.label, &run.state.as_str(), &run.created_at, &run.initial_body, &config, &message.message.id],
                )
                .await?;
                if taken.is_none() {
                    let row = sql::query_one(
                        tx,
                        "SELECT trigger_id FROM workflow_runs WHERE user_id = $1 AND run_id = $2",
                        &[&run.user_id, &run.run_id],
                    )
                    .await?;
                    return Ok(Inserted::Duplicate(row.try_get(0)?));
                }
                let items = [(&message, now)];
                let inserted = messages::insert(tx, &items, self.node(), &mut noted.events, &mut noted.arrivals).await?;
                log(tx, &run.user_id, &run.run_id, 0, std::slice::from_ref(&message), &inserted, now).await?;
                Ok(inserted.into_iter().next().expect("one answer per message"))
            })
            .await
    }

    async fn append_to_run(
        &self,
        user_id: &str,
        run_id: &str,
        batch: Vec<NewMessage>,
        now: Millis,
    ) -> Result<Appended> {
        self.writes
            .run(async |tx, noted| {
                let found = sql::query_opt(
                    tx,
                    "SELECT state, next_seq FROM workflow_runs WHERE user_id = $1 AND run_id = $2 FOR UPDATE",
                    &[&user_id, &run_id],
                )
                .await?;
                let Some(row) = found else {
                    return Ok(Appended::Unknown);
                };
                let state = decode_state(row.try_get(0)?)?;
                if state != RunState::Running {
                    return Ok(Appended::Ended(state));
                }
                let seq: i64 = row.try_get(1)?;
                let items: Vec<(&NewMessage, Millis)> = batch.iter().map(|m| (m, now)).collect();
                let inserted = messages::insert(tx, &items, self.node(), &mut noted.events, &mut noted.arrivals).await?;
                log(tx, user_id, run_id, seq, &batch, &inserted, now).await?;
                Ok(Appended::Stored(inserted))
            })
            .await
    }

    async fn get_run(&self, user_id: &str, run_id: &str) -> Result<Option<Run>> {
        let sql_text =
            format!("SELECT {RUN_COLUMNS} FROM workflow_runs WHERE user_id = $1 AND run_id = $2");
        sql::query_opt(&self.client().await?, &sql_text, &[&user_id, &run_id])
            .await?
            .map(|r| run_of(&r))
            .transpose()
    }

    async fn run_steps(&self, user_id: &str, run_id: &str) -> Result<Vec<StepEntry>> {
        let rows = sql::query(
            &self.client().await?,
            "SELECT seq, message_id, call_type, body, created_at FROM workflow_steps
             WHERE user_id = $1 AND run_id = $2 ORDER BY seq",
            &[&user_id, &run_id],
        )
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StepEntry {
                    seq: r.try_get(0)?,
                    message_id: r.try_get(1)?,
                    call_type: r.try_get(2)?,
                    body: r.try_get(3)?,
                    created_at: r.try_get(4)?,
                })
            })
            .collect()
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
        self.writes
            .run(async |tx, noted| {
                // The run's row is locked before its notes, as a DLQ
                // resume does (no lock-order deadlock between the two).
                let found = sql::query_opt(
                    tx,
                    "SELECT state FROM workflow_runs WHERE user_id = $1 AND run_id = $2 FOR UPDATE",
                    &[&user_id, &run_id],
                )
                .await?;
                // However the run ends (or if it is gone), it is no longer
                // failing; for `EndIf::Noted` taking a note (the delete of
                // the first of two racing commits wins) is the permission.
                let took_note = take_notes(tx, user_id, run_id).await?;
                let Some(row) = found else { return Ok(None) };
                let was = decode_state(row.try_get(0)?)?;
                let changed = was == RunState::Running && (when == EndIf::Running || took_note);
                if changed {
                    sql::execute(
                        tx,
                        "UPDATE workflow_runs SET state = $3, result = $4, failure = $5, updated_at = $6 WHERE user_id = $1 AND run_id = $2",
                        &[&user_id, &run_id, &state.as_str(), &result, &failure, &now],
                    )
                    .await?;
                    for table in ["workflow_waiters", "workflow_events"] {
                        sql::execute(
                            tx,
                            &format!("DELETE FROM {table} WHERE user_id = $1 AND run_id = $2"),
                            &[&user_id, &run_id],
                        )
                        .await?;
                    }
                }
                // Lock order: this run, the invoking run, the messages
                // (the leftovers' cancel), then what inserting locks
                // (flow-control keys). An outcome batch locks messages
                // before keys, and a run's own cancel its row before its
                // messages, so neither can wait on this in a cycle.
                let parent = match (&resume, changed) {
                    (Some(resume), true) => sql::query_opt(
                        tx,
                        "SELECT config, next_seq FROM workflow_runs WHERE user_id = $1 AND run_id = $2 AND state = $3 FOR UPDATE",
                        &[&user_id, &resume.run_id, &RunState::Running.as_str()],
                    )
                    .await?
                    .map(|row| (resume, row)),
                    _ => None,
                };
                let now_state = if changed { state } else { was };
                let mut cancelled = 0;
                if cancels_leftovers(now_state) {
                    let ids = sql::query(
                        tx,
                        "SELECT message_id FROM workflow_steps WHERE user_id = $1 AND run_id = $2 ORDER BY seq",
                        &[&user_id, &run_id],
                    )
                    .await?;
                    let message_ids = ids.iter().map(|r| r.try_get(0)).collect::<std::result::Result<_, _>>()?;
                    let request = CancelRequest { message_ids, ..Default::default() };
                    cancelled = messages::cancel(tx, user_id, &request, now, &mut noted.events).await?.cancelled;
                    if cancelled > 0 {
                        noted.signals.push(Signal::Cancelled { user_id: user_id.to_string() });
                    }
                }
                // The invoking run resumes in this same commit, if it is
                // still running (with its trigger settings).
                if let Some((resume, row)) = parent {
                    let mut message = resume.message.clone();
                    decode_config(row.try_get(0)?)?.apply(&mut message.message.spec);
                    let seq: i64 = row.try_get(1)?;
                    let batch = [message];
                    let items = [(&batch[0], now)];
                    let inserted = messages::insert(tx, &items, self.node(), &mut noted.events, &mut noted.arrivals).await?;
                    log(tx, user_id, &resume.run_id, seq, &batch, &inserted, now).await?;
                }
                Ok(Some(Ended { was, changed, cancelled }))
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
        let client = self.client().await?;
        let (at, id) = before
            .clone()
            .unwrap_or((Millis::MAX, "\u{10ffff}".to_string()));
        // Runs named by id: one primary-key lookup for all of them.
        if !filter.run_ids.is_empty() {
            let sql_text = format!(
                "SELECT {RUN_COLUMNS} FROM workflow_runs WHERE user_id = $1 AND run_id = ANY($2)"
            );
            let rows = sql::query(&client, &sql_text, &[&user_id, &filter.run_ids]).await?;
            let runs = rows.iter().map(run_of).collect::<Result<Vec<_>>>()?;
            return Ok(by_id_page(runs, &filter, (at, &id), count));
        }
        // Newest first through the (user, created) index within the date
        // bounds, in chunks, the other filters checked per row, at most
        // `budget` rows examined.
        let sql_text = format!(
            "SELECT {RUN_COLUMNS} FROM workflow_runs WHERE user_id = $1
             AND (created_at < $2 OR (created_at = $2 AND run_id < $3))
             AND ($4::bigint IS NULL OR created_at >= $4) AND ($5::bigint IS NULL OR created_at <= $5)
             ORDER BY created_at DESC, run_id DESC LIMIT $6"
        );
        let mut walk = RunWalk::new(&filter, before, count, budget);
        while walk.want() > 0 {
            let (at, id) = walk.from();
            let limit = walk.want() as i64;
            let rows = sql::query(
                &client,
                &sql_text,
                &[
                    &user_id,
                    &at,
                    &id,
                    &filter.from_date,
                    &filter.to_date,
                    &limit,
                ],
            )
            .await?;
            walk.feed(rows.iter().map(run_of).collect::<Result<Vec<_>>>()?);
        }
        Ok(walk.finish())
    }

    async fn add_waiter(&self, w: Waiter) -> Result<Appended> {
        let (headers, timeout_headers, step) = (
            encode_json(&w.headers)?,
            encode_json(&w.timeout_headers)?,
            encode_json(&w.step)?,
        );
        self.writes
            .run(async |tx, noted| {
                let found = sql::query_opt(
                    tx,
                    "SELECT state FROM workflow_runs WHERE user_id = $1 AND run_id = $2 FOR UPDATE",
                    &[&w.user_id, &w.run_id],
                )
                .await?;
                let Some(row) = found else { return Ok(Appended::Unknown) };
                let state = decode_state(row.try_get(0)?)?;
                if state != RunState::Running {
                    return Ok(Appended::Ended(state));
                }
                // An event notified to the run before it waited resumes it
                // at once (the run row, locked above, orders this against a
                // run-scoped notify).
                let kept = sql::query_opt(
                    tx,
                    "DELETE FROM workflow_events WHERE id = (SELECT id FROM workflow_events
                     WHERE user_id = $1 AND run_id = $2 AND event_id = $3 ORDER BY id LIMIT 1) RETURNING data",
                    &[&w.user_id, &w.run_id, &w.event_id],
                )
                .await?;
                if let Some(kept) = kept {
                    let data: Vec<u8> = kept.try_get(0)?;
                    let resumed = resume(tx, noted, self.node(), vec![w.clone()], Some(&data), w.created_at).await?;
                    return Ok(Appended::Stored(resumed.into_iter().map(|(_, id)| Inserted::New(id)).collect()));
                }
                let sql_text = format!(
                    "INSERT INTO workflow_waiters ({WAITER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                     ON CONFLICT (user_id, event_id, run_id) DO UPDATE SET url = $4, deadline = $5, headers = $6,
                     timeout_url = $7, timeout_headers = $8, step = $9, created_at = $10"
                );
                sql::execute(
                    tx,
                    &sql_text,
                    &[&w.user_id, &w.event_id, &w.run_id, &w.url, &w.deadline, &headers, &w.timeout_url, &timeout_headers, &step, &w.created_at],
                )
                .await?;
                Ok(Appended::Stored(Vec::new()))
            })
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
        self.writes
            .run(async |tx, noted| {
                let sql_text = format!(
                    "DELETE FROM workflow_waiters WHERE user_id = $1 AND event_id = $2 AND ($3::text IS NULL OR run_id = $3)
                     RETURNING {WAITER_COLUMNS}"
                );
                // A run-scoped notify locks the run first, so that it and a
                // wait of that run see each other (see `add_waiter`).
                let running = match &run_id {
                    Some(run) => sql::query_opt(
                        tx,
                        "SELECT state FROM workflow_runs WHERE user_id = $1 AND run_id = $2 FOR UPDATE",
                        &[&user_id, run],
                    )
                    .await?
                    .map(|r| r.try_get::<_, String>(0))
                    .transpose()?
                    .is_some_and(|s| s == RunState::Running.as_str()),
                    None => false,
                };
                let rows = sql::query(tx, &sql_text, &[&user_id, &event_id, &run_id]).await?;
                let mut waiters = rows.iter().map(waiter_of).collect::<Result<Vec<_>>>()?;
                waiters.sort_by_key(|w| w.created_at);
                let resumed = resume(tx, noted, self.node(), waiters, Some(&event), now).await?;
                if let (true, true, Some(run)) = (resumed.is_empty(), running, &run_id) {
                    sql::execute(
                        tx,
                        "INSERT INTO workflow_events (user_id, run_id, event_id, data, created_at) VALUES ($1, $2, $3, $4, $5)",
                        &[&user_id, run, &event_id, &event, &now],
                    )
                    .await?;
                }
                Ok(resumed)
            })
            .await
    }

    async fn expire_waiters(&self, now: Millis, limit: usize) -> Result<usize> {
        self.writes
            .run(async |tx, noted| {
                // SKIP LOCKED: nodes expiring at once take different waiters.
                let sql_text = format!(
                    "DELETE FROM workflow_waiters WHERE (user_id, event_id, run_id) IN (
                         SELECT user_id, event_id, run_id FROM workflow_waiters WHERE deadline <= $1
                         ORDER BY deadline LIMIT $2 FOR UPDATE SKIP LOCKED)
                     RETURNING {WAITER_COLUMNS}"
                );
                let rows = sql::query(tx, &sql_text, &[&now, &(limit as i64)]).await?;
                let waiters = rows.iter().map(waiter_of).collect::<Result<Vec<_>>>()?;
                let n = waiters.len();
                resume(tx, noted, self.node(), waiters, None, now).await?;
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
        self.writes
            .run(async |tx, noted| {
                // Only a failed run resumes: a second entry of a run resumed
                // already (parallel branches) changes nothing.
                let state = sql::query_opt(
                    tx,
                    "SELECT state FROM workflow_runs WHERE user_id = $1 AND run_id = $2 FOR UPDATE",
                    &[&user_id, &run_id],
                )
                .await?;
                let failed = match state {
                    Some(row) => decode_state(row.try_get(0)?)? == RunState::Failed,
                    None => false,
                };
                if !failed {
                    return Ok(None);
                }
                let created = super::dlq::retry(tx, user_id, std::slice::from_ref(&retry), now, self.node(), &mut noted.events, &mut noted.arrivals).await?;
                let Some(Some(id)) = created.into_iter().next() else { return Ok(None) };
                sql::execute(
                    tx,
                    "UPDATE workflow_steps SET message_id = $4 WHERE user_id = $1 AND run_id = $2 AND message_id = $3",
                    &[&user_id, &run_id, &failed_message_id, &id],
                )
                .await?;
                sql::execute(
                    tx,
                    "UPDATE workflow_runs SET state = 'RUN_STARTED', failure = NULL, updated_at = $3 WHERE user_id = $1 AND run_id = $2",
                    &[&user_id, &run_id, &now],
                )
                .await?;
                for (old, m) in &revive {
                    let inserted = messages::insert(tx, &[(m, now)], self.node(), &mut noted.events, &mut noted.arrivals).await?;
                    if let Some(new) = inserted.first() {
                        sql::execute(
                            tx,
                            "UPDATE workflow_steps SET message_id = $4 WHERE user_id = $1 AND run_id = $2 AND message_id = $3",
                            &[&user_id, &run_id, old, &new.id()],
                        )
                        .await?;
                    }
                }
                // Notes left of the failure resumed (a crash before its
                // end, a parallel branch's) must not fail the revived run.
                take_notes(tx, user_id, run_id).await?;
                Ok(Some(id))
            })
            .await
    }

    async fn next_waiter_deadline(&self) -> Result<Option<Millis>> {
        let row = sql::query_one(
            &self.client().await?,
            "SELECT MIN(deadline) FROM workflow_waiters",
            &[],
        )
        .await?;
        Ok(row.try_get(0)?)
    }

    async fn list_waiters(&self, user_id: &str, event_id: &str) -> Result<Vec<Waiter>> {
        let sql_text = format!(
            "SELECT {WAITER_COLUMNS} FROM workflow_waiters WHERE user_id = $1 AND event_id = $2 ORDER BY created_at"
        );
        let rows = sql::query(&self.client().await?, &sql_text, &[&user_id, &event_id]).await?;
        rows.iter().map(waiter_of).collect()
    }

    async fn failing_runs(&self, before: Millis, limit: usize) -> Result<Vec<Failing>> {
        let rows = sql::query(
            &self.client().await?,
            "SELECT user_id, run_id, error FROM workflow_failing WHERE at < $1 ORDER BY at LIMIT $2",
            &[&before, &(limit as i64)],
        )
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Failing {
                    user_id: r.try_get(0)?,
                    run_id: r.try_get(1)?,
                    error: r.try_get(2)?,
                })
            })
            .collect()
    }

    async fn runs_waiters(&self, user_id: &str, run_ids: &[String]) -> Result<Vec<Waiter>> {
        let sql_text = format!(
            "SELECT {WAITER_COLUMNS} FROM workflow_waiters WHERE user_id = $1 AND run_id = ANY($2) ORDER BY created_at"
        );
        let ids = run_ids.to_vec();
        let rows = sql::query(&self.client().await?, &sql_text, &[&user_id, &ids]).await?;
        rows.iter().map(waiter_of).collect()
    }
}
