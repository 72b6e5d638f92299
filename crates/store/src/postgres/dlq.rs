//! The dead-letter queue, as in `sqlite/dlq.rs`: one `dlq` row per message
//! whose retries ran out, the message itself joined in from `messages`.

use deadpool_postgres::GenericClient;
use qstash_core::clock::Millis;
use qstash_core::dlq::{DlqDeleted, DlqEntry, DlqOrder, DlqPage, DlqQuery, DlqRetry};
use qstash_core::message::Arrival;
use qstash_core::outcome::AttemptResponse;
use tokio_postgres::Row;

use super::events::Events;
use super::logs::prefixed;
use super::messages::{self, message_at, COLUMNS};
use super::sql::{self, Where};
use crate::rows::parse_header;
use crate::Result;

fn select() -> String {
    format!(
        "SELECT d.dlq_id, d.created_at, d.response_status, d.response_header, d.response_body,
            d.error, {}",
        prefixed("m", COLUMNS)
    )
}

fn entry(r: &Row) -> Result<DlqEntry> {
    let header: String = r.try_get(3)?;
    Ok(DlqEntry {
        dlq_id: r.try_get(0)?,
        created_at: r.try_get(1)?,
        response: AttemptResponse {
            status: r.try_get::<_, i32>(2)? as u16,
            header: parse_header(Some(&header))?,
            body: r.try_get(4)?,
        },
        error: r.try_get(5)?,
        message: message_at(r, 6)?,
    })
}

/// The SQL of a DLQ page and its parameters; public for the plan test.
/// The user's entries are walked in order and each joined to its message
/// in a fenced `LATERAL` subquery, as the log listing does (`logs.rs`).
pub fn page_sql(user_id: &str, q: &DlqQuery) -> (String, Where) {
    let f = &q.filter;
    let mut w = Where::default();
    let user = w.arg(user_id.to_string());
    w.push(format!("d.user_id = {user}"));
    w.any_of("d.dlq_id", &f.dlq_ids);
    w.any_of("d.message_id", &f.message_id);
    let (after, dir) = match q.order {
        DlqOrder::EarliestFirst => (">", "ASC"),
        DlqOrder::LatestFirst => ("<", "DESC"),
    };
    if let Some(cur) = &q.cursor {
        let (t, id) = (w.arg(cur.created_at), w.arg(cur.dlq_id.clone()));
        w.push(format!("(d.created_at, d.dlq_id) {after} ({t}, {id})"));
    }
    if let Some(from) = f.from_date {
        let from = w.arg(from);
        w.push(format!("d.created_at >= {from}"));
    }
    if let Some(to) = f.to_date {
        let to = w.arg(to);
        w.push(format!("d.created_at <= {to}"));
    }
    let statuses: Vec<i32> = f.response_status.iter().map(|s| i32::from(*s)).collect();
    w.any_of("d.response_status", &statuses);
    let outer = w.take_sql();
    w.push("m.id = d.message_id".into());
    w.any_of("m.url", &f.url);
    w.any_of("m.topic_name", &f.topic_name);
    w.any_of("m.queue_name", &f.queue_name);
    w.any_of("m.schedule_id", &f.schedule_id);
    w.any_of("m.flow_control_key", &f.flow_control_key);
    w.any_of("m.caller_ip", &f.caller_ip);
    w.any_label("m.labels", &f.label);
    workflow_filters(&mut w, f);
    let inner = w.take_sql();
    let sql = format!(
        "SELECT d.dlq_id, d.created_at, d.response_status, d.response_header, d.response_body,
            d.error, x.*
         FROM dlq d CROSS JOIN LATERAL (
            SELECT {} FROM messages m WHERE {inner} OFFSET 0) x
         WHERE {outer}
         ORDER BY d.created_at {dir}, d.dlq_id {dir} LIMIT {}",
        prefixed("m", COLUMNS),
        q.count + 1
    );
    (sql, w)
}

pub async fn list<C: GenericClient>(c: &C, user_id: &str, q: &DlqQuery) -> Result<DlqPage> {
    let (sql, w) = page_sql(user_id, q);
    let rows = sql::query(c, &sql, &w.params()).await?;
    let more = rows.len() > q.count;
    let entries = rows
        .iter()
        .take(q.count)
        .map(entry)
        .collect::<Result<Vec<_>>>()?;
    let cursor = more
        .then(|| entries.last().map(|e| e.dlq_id.clone()))
        .flatten();
    Ok(DlqPage { entries, cursor })
}

pub async fn get<C: GenericClient>(c: &C, user_id: &str, dlq_id: &str) -> Result<Option<DlqEntry>> {
    let sql = format!(
        "{} FROM dlq d JOIN messages m ON m.id = d.message_id
         WHERE d.dlq_id = $1 AND d.user_id = $2",
        select()
    );
    sql::query_opt(c, &sql, &[&dlq_id, &user_id])
        .await?
        .map(|r| entry(&r))
        .transpose()
}

pub async fn delete<C: GenericClient>(c: &C, user_id: &str, q: &DlqQuery) -> Result<DlqDeleted> {
    let page = list(c, user_id, q).await?;
    let ids: Vec<&str> = page.entries.iter().map(|e| e.dlq_id.as_str()).collect();
    let deleted = sql::execute(
        c,
        "DELETE FROM dlq WHERE dlq_id = ANY($1) AND user_id = $2",
        &[&ids, &user_id],
    )
    .await?;
    Ok(DlqDeleted {
        deleted,
        cursor: page.cursor,
    })
}

/// Each entry still present is removed and its new message inserted, in
/// the caller's transaction; an entry gone meanwhile creates nothing.
pub async fn retry<C: GenericClient>(
    c: &C,
    user_id: &str,
    retries: &[DlqRetry],
    now: Millis,
    node: &str,
    events: &mut Events,
    arrivals: &mut Vec<Arrival>,
) -> Result<Vec<Option<String>>> {
    let mut out = Vec::with_capacity(retries.len());
    for r in retries {
        let removed = sql::execute(
            c,
            "DELETE FROM dlq WHERE dlq_id = $1 AND user_id = $2",
            &[&r.dlq_id, &user_id],
        )
        .await?;
        if removed == 0 {
            out.push(None);
            continue;
        }
        let inserted = messages::insert(c, &[(&r.message, now)], node, events, arrivals).await?;
        out.push(inserted.first().map(|i| i.id().to_string()));
    }
    Ok(out)
}

/// DLQ entries past their retention, and failed messages that are no
/// longer in the DLQ and past the log retention, in batches.
pub async fn purge<C: GenericClient>(c: &C, log_before: Millis, dlq_before: Millis) -> Result<u64> {
    let entries =
        messages::purge_batched(c, &messages::batch_delete(PURGE_ENTRIES), &[&dlq_before]).await?;
    let failed =
        messages::purge_batched(c, &messages::batch_delete(PURGE_FAILED), &[&log_before]).await?;
    Ok(entries + failed)
}

/// DLQ entries past their retention (see `messages::batch_delete`).
pub const PURGE_ENTRIES: (&str, &str) = ("dlq", "t.created_at < $2");

/// Failed messages no longer in the DLQ, past the log retention.
pub const PURGE_FAILED: (&str, &str) = (
    "messages",
    "t.state = 'failed' AND t.updated_at < $2
       AND NOT EXISTS (SELECT 1 FROM dlq WHERE dlq.message_id = t.id)",
);

/// The workflow filters of `client.dlq.list` (`@upstash/workflow`), read
/// from the workflow tag of the message's spec; the creation time is the
/// run's, found by its primary key.
fn workflow_filters(w: &mut sql::Where, f: &qstash_core::dlq::DlqFilter) {
    const RUN_ID: &str = "(m.spec::jsonb -> 'workflow' ->> 'runId')";
    if f.workflow_only {
        w.push("(m.spec::jsonb -> 'workflow') IS NOT NULL".into());
    }
    w.any_of(RUN_ID, &f.workflow_run_id);
    if let Some(at) = f.workflow_created_at {
        let at = w.arg(at);
        w.push(format!(
            "EXISTS (SELECT 1 FROM workflow_runs r WHERE r.user_id = m.user_id AND r.run_id = {RUN_ID} AND r.created_at = {at})"
        ));
    }
}
