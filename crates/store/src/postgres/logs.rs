//! The log listing: newest first by (time, seq), each query walking one
//! index from the cursor and stopping after `count` + 1 matches, as in
//! `sqlite/logs.rs`. PostgreSQL has no index hints: the plan test in
//! `crates/store/tests/history.rs` checks with `EXPLAIN` that the planner
//! walks the intended index and never sorts or scans the log.

use deadpool_postgres::GenericClient;
use qstash_core::clock::Millis;
use qstash_core::log::{LogCursor, LogEntry, LogFilter, LogPage};

use super::messages::{message_at, COLUMNS};
use super::sql::{self, Where};
use crate::rows;
use crate::Result;

/// The SQL of a page query and its parameters; public for the plan test.
///
/// The driving index is walked from the cursor in the outer query, and each
/// row it meets is joined to its entry and message in a `LATERAL` subquery
/// fenced with `OFFSET 0`. The fence keeps the planner from flattening the
/// join and driving it from a filter on `messages` that looks selective in
/// its statistics (a whole-table scan and sort on a large server). SQLite
/// gets the same walk from `CROSS JOIN` and `INDEXED BY`.
pub fn page_sql(
    user_id: &str,
    f: &LogFilter,
    cursor: Option<LogCursor>,
    limit: usize,
) -> (String, Where) {
    let mut w = Where::default();
    let user = w.arg(user_id.to_string());
    let upper = rows::upper_bound(cursor, f.to_date);
    let by_key = rows::driving_key(f).filter(|_| f.message_ids.is_empty());
    let driver = if by_key.is_some() { "k" } else { "e" };
    if !f.message_ids.is_empty() {
        let ids = w.arg(f.message_ids.clone());
        w.push(format!("e.message_id = ANY({ids}) AND e.user_id = {user}"));
    } else if let Some(key) = by_key.clone() {
        let key = w.arg(key);
        w.push(format!("k.user_id = {user} AND k.key = {key}"));
    } else if let [state] = f.states.as_slice() {
        let state = w.arg(state.as_str().to_string());
        w.push(format!("e.user_id = {user} AND e.state = {state}"));
    } else {
        w.push(format!("e.user_id = {user}"));
    }
    if let Some(c) = upper {
        let (t, s) = (w.arg(c.time), w.arg(c.seq));
        w.push(format!("({driver}.time, {driver}.seq) < ({t}, {s})"));
    }
    if let Some(from) = f.from_date {
        let from = w.arg(from);
        w.push(format!("{driver}.time >= {from}"));
    }
    let states: Vec<String> = f.states.iter().map(|s| s.as_str().to_string()).collect();
    if by_key.is_none() {
        w.any_of("e.state", &states);
    }
    let outer = w.take_sql();
    if by_key.is_some() {
        w.push("e.seq = k.seq".into());
        w.any_of("e.state", &states);
    } else {
        w.push("m.id = e.message_id".into());
    }
    w.any_of("m.url", &f.url);
    w.any_of("m.topic_name", &f.topic_name);
    w.any_of("m.queue_name", &f.queue_name);
    w.any_of("m.schedule_id", &f.schedule_id);
    w.any_of("m.flow_control_key", &f.flow_control_key);
    w.any_of("m.caller_ip", &f.caller_ip);
    w.any_label("m.labels", &f.label);
    w.any_of("qstash_url_host(m.url)", &f.host);
    w.any_of("qstash_url_path(m.url)", &f.path);
    let inner = w.take_sql();
    let entry = "seq, time, state, error, next_delivery_time, response_status, response_header, response_body";
    let message = prefixed("m", COLUMNS);
    let sql = if by_key.is_some() {
        format!(
            "SELECT x.* FROM event_keys k CROSS JOIN LATERAL (
                SELECT {}, {message} FROM events e JOIN messages m ON m.id = e.message_id
                WHERE {inner} OFFSET 0) x
             WHERE {outer}
             ORDER BY k.time DESC, k.seq DESC LIMIT {limit}",
            prefixed("e", entry)
        )
    } else {
        format!(
            "SELECT {}, x.* FROM events e CROSS JOIN LATERAL (
                SELECT {message} FROM messages m WHERE {inner} OFFSET 0) x
             WHERE {outer}
             ORDER BY e.time DESC, e.seq DESC LIMIT {limit}",
            prefixed("e", entry)
        )
    };
    (sql, w)
}

/// `a, b` as `p.a, p.b`.
pub fn prefixed(p: &str, columns: &str) -> String {
    columns
        .split(',')
        .map(|c| format!("{p}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

pub async fn list<C: GenericClient>(
    c: &C,
    user_id: &str,
    f: &LogFilter,
    cursor: Option<LogCursor>,
    count: usize,
) -> Result<LogPage> {
    let (sql, w) = page_sql(user_id, f, cursor, count + 1);
    let rows = sql::query(c, &sql, &w.params()).await?;
    let more = rows.len() > count;
    let mut entries = Vec::with_capacity(count.min(rows.len()));
    let mut last = None;
    for r in rows.iter().take(count) {
        let seq: i64 = r.try_get(0)?;
        let time: Millis = r.try_get(1)?;
        let status: Option<i32> = r.try_get(5)?;
        entries.push(LogEntry {
            time,
            state: rows::log_state(r.try_get(2)?)?,
            error: r.try_get(3)?,
            next_delivery_time: r.try_get(4)?,
            response: rows::response_of(status.map(|s| s as u16), r.try_get(6)?, r.try_get(7)?)?,
            message: message_at(r, 8)?,
        });
        last = Some(LogCursor { time, seq });
    }
    Ok(LogPage {
        entries,
        cursor: if more { last } else { None },
    })
}

/// Drops attribute keys of log entries past retention, in batches.
pub async fn purge_keys<C: GenericClient>(c: &C, before: Millis) -> Result<u64> {
    super::messages::purge_batched(
        c,
        "DELETE FROM event_keys WHERE (user_id, key, time, seq) IN
            (SELECT user_id, key, time, seq FROM event_keys WHERE time < $1 LIMIT $2)",
        before,
    )
    .await
}
