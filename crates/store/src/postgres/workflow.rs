//! Workflow runs and step logs on PostgreSQL (see `crate::workflow`). A
//! log append locks its run row (`FOR UPDATE`), so appends of one run get
//! their sequence numbers in commit order on every node.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use qstash_core::clock::Millis;
use qstash_core::message::{Inserted, NewMessage};
use qstash_core::workflow::{Run, RunFilter, RunState, StepEntry};
use tokio_postgres::Row;

use super::{messages, sql, PgStore};
use crate::workflow::{call_type, decode_config, decode_state, encode_config, Appended, Ended};
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
                &[&user_id, &run_id, &next, id, &call_type(m), &m.message.body, &now],
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
        state: RunState,
        result: Option<Vec<u8>>,
        failure: Option<String>,
        now: Millis,
    ) -> Result<Option<Ended>> {
        self.writes
            .run(async |tx, _noted| {
                let found = sql::query_opt(
                    tx,
                    "SELECT state FROM workflow_runs WHERE user_id = $1 AND run_id = $2 FOR UPDATE",
                    &[&user_id, &run_id],
                )
                .await?;
                let Some(row) = found else { return Ok(None) };
                let was = decode_state(row.try_get(0)?)?;
                if was == RunState::Running {
                    sql::execute(
                        tx,
                        "UPDATE workflow_runs SET state = $3, result = $4, failure = $5, updated_at = $6 WHERE user_id = $1 AND run_id = $2",
                        &[&user_id, &run_id, &state.as_str(), &result, &failure, &now],
                    )
                    .await?;
                }
                let ids = sql::query(
                    tx,
                    "SELECT message_id FROM workflow_steps WHERE user_id = $1 AND run_id = $2 ORDER BY seq",
                    &[&user_id, &run_id],
                )
                .await?;
                let message_ids = ids.iter().map(|r| r.try_get(0)).collect::<std::result::Result<_, _>>()?;
                Ok(Some(Ended { was, message_ids }))
            })
            .await
    }

    async fn list_runs(
        &self,
        user_id: &str,
        filter: RunFilter,
        before: Option<(Millis, String)>,
        count: usize,
    ) -> Result<Vec<Run>> {
        let client = self.client().await?;
        let (at, id) = before.unwrap_or((Millis::MAX, "\u{10ffff}".to_string()));
        let sql_text = format!(
            "SELECT {RUN_COLUMNS} FROM workflow_runs WHERE user_id = $1
             AND (created_at < $2 OR (created_at = $2 AND run_id < $3))
             ORDER BY created_at DESC, run_id DESC LIMIT 1000"
        );
        let rows = sql::query(&client, &sql_text, &[&user_id, &at, &id]).await?;
        let mut out = Vec::new();
        for r in &rows {
            let run = run_of(r)?;
            if filter.matches(&run) {
                out.push(run);
                if out.len() >= count {
                    break;
                }
            }
        }
        Ok(out)
    }
}
