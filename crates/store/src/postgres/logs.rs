//! The log listing: newest first by (time, seq), each query walking one
//! index from the cursor (or, with no message or attribute filter, one
//! walk per state, merged) and stopping after `count` + 1 matches, as in
//! `sqlite/logs.rs`. PostgreSQL has no index hints: the plan test in
//! `crates/store/tests/postgres_plans.rs` checks with `EXPLAIN` that the
//! planner walks the intended index and never sorts or scans the log.

use deadpool_postgres::GenericClient;
use qstash_core::clock::Millis;
use qstash_core::log::{LogCursor, LogEntry, LogFilter, LogPage};

use super::messages::{message_at, COLUMNS};
use super::sql::{self, Where};
use crate::rows;
use crate::Result;

/// The SQL of one chunk of a listing's walk and its parameters: the rows
/// of the driving index strictly before `upper`, newest first, at most
/// `limit`, each joined to its entry and message. Only what the index holds
/// is in the SQL; `rows::Scan` checks the other filters. Public for the
/// plan test.
///
/// The driving index is walked in the outer query, and each row it meets
/// is joined to its entry and message in a `LATERAL` subquery fenced with
/// `OFFSET 0`, so that the planner keeps the walk (and its LIMIT) outside
/// and never plans a join that reads the whole log first. SQLite gets the
/// same walk from `CROSS JOIN` and `INDEXED BY`.
pub fn page_sql(
    user_id: &str,
    f: &LogFilter,
    upper: Option<LogCursor>,
    limit: usize,
) -> (String, Where) {
    let mut w = Where::default();
    let user = w.arg(user_id.to_string());
    let by_key = rows::driving_key(f).filter(|_| f.message_ids.is_empty());
    let driver = if by_key.is_some() { "k" } else { "e" };
    if !f.message_ids.is_empty() {
        let ids = w.arg(f.message_ids.clone());
        w.push(format!("e.message_id = ANY({ids}) AND e.user_id = {user}"));
    } else if let Some(key) = by_key.clone() {
        let key = w.arg(key);
        w.push(format!("k.user_id = {user} AND k.key = {key}"));
    } else {
        // Walked once per state, below.
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
    let outer = w.take_sql();
    if by_key.is_some() {
        w.push("e.seq = k.seq".into());
    }
    w.push("m.id = e.message_id".into());
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
    } else if !f.message_ids.is_empty() {
        by_event(&prefixed("e", entry), &message, &inner, &outer, limit)
    } else {
        // No (user, time) index (migration 8): each state's walk of the
        // (user, state, time) index, merged (`Merge Append`: no sort, and
        // each walk read only as far as the merge takes from it).
        let entry = prefixed("e", entry);
        let arms: Vec<String> = rows::walked_states(f)
            .map(|s| {
                let state = w.arg(s.as_str().to_string());
                let outer = format!("e.state = {state} AND {outer}");
                format!("({})", by_event(&entry, &message, &inner, &outer, limit))
            })
            .collect();
        format!(
            "SELECT * FROM ({}) u ORDER BY u.time DESC, u.seq DESC LIMIT {limit}",
            arms.join(" UNION ALL ")
        )
    };
    (sql, w)
}

/// A walk of an index of `events` (as `outer` selects), newest first, each
/// entry joined to its message.
fn by_event(entry: &str, message: &str, inner: &str, outer: &str, limit: usize) -> String {
    format!(
        "SELECT {entry}, x.* FROM events e CROSS JOIN LATERAL (
            SELECT {message} FROM messages m WHERE {inner} OFFSET 0) x
         WHERE {outer}
         ORDER BY e.time DESC, e.seq DESC LIMIT {limit}"
    )
}

/// `a, b` as `p.a, p.b`.
pub fn prefixed(p: &str, columns: &str) -> String {
    columns
        .split(',')
        .map(|c| format!("{p}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A page of the log: the walk of `page_sql` in chunks, as `rows::Scan`
/// asks for them, so a filter the index cannot answer examines a bounded
/// number of rows per page.
pub async fn list<C: GenericClient>(
    c: &C,
    user_id: &str,
    f: &LogFilter,
    cursor: Option<LogCursor>,
    count: usize,
) -> Result<LogPage> {
    let mut scan = rows::Scan::new(f, cursor, count);
    while let Some((upper, limit)) = scan.next_chunk() {
        let (sql, w) = page_sql(user_id, f, upper, limit);
        let found = sql::query(c, &sql, &w.params()).await?;
        let mut chunk = Vec::with_capacity(found.len());
        for r in &found {
            let seq: i64 = r.try_get(0)?;
            let time: Millis = r.try_get(1)?;
            let status: Option<i32> = r.try_get(5)?;
            let entry = LogEntry {
                time,
                state: rows::log_state(r.try_get(2)?)?,
                error: r.try_get(3)?,
                next_delivery_time: r.try_get(4)?,
                response: rows::response_of(
                    status.map(|s| s as u16),
                    r.try_get(6)?,
                    r.try_get(7)?,
                )?,
                message: message_at(r, 8)?,
            };
            chunk.push((LogCursor { time, seq }, entry));
        }
        scan.take(limit, chunk);
    }
    Ok(scan.finish())
}

/// Drops attribute keys of log entries past retention, in batches.
pub async fn purge_keys<C: GenericClient>(c: &C, before: Millis) -> Result<u64> {
    let sql = super::messages::batch_delete(PURGE_KEYS);
    super::messages::purge_batched(c, &sql, &[&before]).await
}

/// Attribute keys past retention (see `messages::batch_delete`).
pub const PURGE_KEYS: (&str, &str) = ("event_keys", "t.time < $2");
