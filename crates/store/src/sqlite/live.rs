//! Live messages (pending or in flight) of one user, for the console: a
//! page newest first, and counts. Both walk `messages_live`, a partial
//! index that holds only live rows, so delivered, failed and cancelled
//! messages kept for the logs are never read.

use qstash_core::clock::Millis;
use rusqlite::{params, params_from_iter, Connection};

use super::filters::Where;
use super::messages::{decode, read_row, COLUMNS};
use crate::{LiveCounts, LiveCursor, LivePage, MessageFilter, Result};

/// One row per live message, ordered by (user, rowid): rowids grow with
/// every insert, so this is the order messages were stored in. A row
/// enters it on insert and leaves when the message is finished.
pub const LIVE_INDEX: &str = r#"
CREATE INDEX IF NOT EXISTS messages_live ON messages(user_id) WHERE state IN ('pending', 'active');
"#;

/// The FROM and WHERE of a walk over the user's live messages matching
/// `f`, before `cursor`.
fn selection(user_id: &str, f: &MessageFilter, cursor: Option<LiveCursor>) -> (String, Where) {
    let mut w = Where::default();
    let user = w.arg(user_id.to_string());
    // Written exactly as the index's WHERE, so SQLite can use it.
    w.push(format!(
        "user_id = {user} AND state IN ('pending', 'active')"
    ));
    if let Some(c) = cursor {
        let c = w.arg(c.0);
        w.push(format!("rowid < {c}"));
    }
    w.any_of("url", &f.url);
    w.any_of("topic_name", &f.topic_name);
    w.any_of("queue_name", &f.queue_name);
    w.any_of("schedule_id", &f.schedule_id);
    w.any_of("flow_control_key", &f.flow_control_key);
    w.any_of("caller_ip", &f.caller_ip);
    w.any_label("labels", &f.label);
    w.any_of("url_host(url)", &f.host);
    w.any_of("url_path(url)", &f.path);
    if let Some(from) = f.from_date {
        let from = w.arg(from);
        w.push(format!("created_at >= {from}"));
    }
    if let Some(to) = f.to_date {
        let to = w.arg(to);
        w.push(format!("created_at <= {to}"));
    }
    let from = "messages INDEXED BY messages_live".to_string();
    (from, w)
}

/// The SQL of a page query, with its arguments; exposed for the plan test.
pub fn page_sql(
    user_id: &str,
    f: &MessageFilter,
    cursor: Option<LiveCursor>,
    limit: usize,
) -> (String, Vec<rusqlite::types::Value>) {
    let (from, w) = selection(user_id, f, cursor);
    let sql = format!(
        "SELECT {COLUMNS}, rowid FROM {from} WHERE {} ORDER BY rowid DESC LIMIT {limit}",
        w.sql()
    );
    (sql, w.args)
}

pub fn list(
    conn: &Connection,
    user_id: &str,
    f: &MessageFilter,
    cursor: Option<LiveCursor>,
    count: usize,
) -> Result<LivePage> {
    let (sql, args) = page_sql(user_id, f, cursor, count + 1);
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(args), |r| {
        Ok((read_row(r)?, r.get::<_, i64>(9)?))
    })?;
    let mut messages = Vec::with_capacity(count);
    let mut last = None;
    let mut more = false;
    for row in rows {
        let (raw, rowid) = row?;
        if messages.len() == count {
            more = true;
            break;
        }
        messages.push(decode(raw)?);
        last = Some(rowid);
    }
    Ok(LivePage {
        messages,
        cursor: last.filter(|_| more).map(LiveCursor),
    })
}

/// Counts the matching live messages by kind, reading at most `cap` + 1
/// rows: when there are more than `cap`, `capped` is set and the counts
/// are those of the first `cap` + 1 (a lower bound).
pub fn count(
    conn: &Connection,
    user_id: &str,
    f: &MessageFilter,
    now: Millis,
    cap: u64,
) -> Result<LiveCounts> {
    let (from, mut w) = selection(user_id, f, None);
    let now = w.arg(now);
    let limit = w.arg(cap as i64 + 1);
    let sql = format!(
        "SELECT
            COALESCE(SUM(state = 'pending' AND retried = 0 AND due_at <= {now}), 0),
            COALESCE(SUM(state = 'pending' AND retried = 0 AND due_at > {now}), 0),
            COALESCE(SUM(state = 'pending' AND retried > 0), 0),
            COALESCE(SUM(state = 'active'), 0),
            COUNT(*)
         FROM (SELECT state, due_at, retried FROM {from} WHERE {} LIMIT {limit})",
        w.sql()
    );
    let row = conn
        .prepare_cached(&sql)?
        .query_row(params_from_iter(w.args), |r| {
            Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?])
        })?;
    let [waiting, delayed, retrying, in_flight, all]: [i64; 5] = row;
    Ok(LiveCounts {
        waiting: waiting as u64,
        delayed: delayed as u64,
        retrying: retrying as u64,
        in_flight: in_flight as u64,
        capped: all as u64 > cap,
    })
}

/// How many entries the user's DLQ holds, up to `cap` (one more when
/// there are more), along the `dlq_user` index.
pub fn count_dlq(conn: &Connection, user_id: &str, cap: u64) -> Result<u64> {
    Ok(conn
        .prepare_cached("SELECT COUNT(*) FROM (SELECT 1 FROM dlq WHERE user_id = ?1 LIMIT ?2)")?
        .query_row(params![user_id, cap as i64 + 1], |r| r.get::<_, i64>(0))? as u64)
}
