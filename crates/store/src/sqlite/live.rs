//! Live messages (pending or in flight) of one user, for the console: a
//! page newest first, and counts. Delivered, failed and cancelled messages
//! kept for the logs are never read. Two walks, merged in rowid order
//! (rowids grow with every insert: the order messages were stored in):
//!
//! - pending messages along `messages_pending_user (user_id) WHERE state =
//!   'pending'`: a row enters it when a message is stored or comes back for
//!   a retry and leaves when it is claimed. A publish that starts at once
//!   (stored already in flight) never touches it.
//! - in-flight messages along the existing `messages_in_flight`, which
//!   holds at most `--max-in-flight` rows for all users together.

use qstash_core::clock::Millis;
use rusqlite::{params, params_from_iter, Connection};

use super::filters::Where;
use super::messages::{decode, read_row, COLUMNS};
use crate::{LiveCounts, LiveCursor, LivePage, MessageFilter, Result};

pub const LIVE_INDEX: &str = r#"
CREATE INDEX IF NOT EXISTS messages_pending_user ON messages(user_id) WHERE state = 'pending';
"#;

/// The two walks over the user's live messages matching `f`, before
/// `cursor`: (pending part, in-flight part) with shared parameters.
pub(super) fn selection(
    user_id: &str,
    f: &MessageFilter,
    cursor: Option<LiveCursor>,
) -> (String, String, Where) {
    let mut w = Where::default();
    let user = w.arg(user_id.to_string());
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
    let rest = w.sql();
    // Each written as its index's WHERE, so SQLite can use it.
    let pending = format!(
        "FROM messages INDEXED BY messages_pending_user
         WHERE user_id = {user} AND state = 'pending' AND {rest}"
    );
    let active = format!(
        "FROM messages INDEXED BY messages_in_flight
         WHERE state = 'active' AND user_id = {user} AND {rest}"
    );
    (pending, active, w)
}

/// The SQL of a page query, with its arguments; exposed for the plan test.
pub fn page_sql(
    user_id: &str,
    f: &MessageFilter,
    cursor: Option<LiveCursor>,
    limit: usize,
) -> (String, Vec<rusqlite::types::Value>) {
    let (pending, active, w) = selection(user_id, f, cursor);
    let sql = format!(
        "SELECT {COLUMNS}, rowid AS rid {pending}
         UNION ALL
         SELECT {COLUMNS}, rowid AS rid {active}
         ORDER BY rid DESC LIMIT {limit}"
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
/// pending rows (and the user's in-flight ones, at most `--max-in-flight`):
/// past `cap`, `capped` is set and the counts are a lower bound.
pub fn count(
    conn: &Connection,
    user_id: &str,
    f: &MessageFilter,
    now: Millis,
    cap: u64,
) -> Result<LiveCounts> {
    let (pending, active, mut w) = selection(user_id, f, None);
    let now = w.arg(now);
    let limit = w.arg(cap as i64 + 1);
    let sql = format!(
        "SELECT
            COALESCE(SUM(state = 'pending' AND retried = 0 AND due_at <= {now}), 0),
            COALESCE(SUM(state = 'pending' AND retried = 0 AND due_at > {now}), 0),
            COALESCE(SUM(state = 'pending' AND retried > 0), 0),
            COALESCE(SUM(state = 'active'), 0),
            COUNT(*)
         FROM (SELECT * FROM (SELECT state, due_at, retried {pending} LIMIT {limit})
               UNION ALL
               SELECT state, due_at, retried {active})"
    );
    let row = conn
        .prepare_cached(&sql)?
        .query_row(params_from_iter(w.args), |r| {
            Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?])
        })?;
    let [waiting, delayed, retrying, in_flight, _]: [i64; 5] = row;
    Ok(LiveCounts {
        waiting: waiting as u64,
        delayed: delayed as u64,
        retrying: retrying as u64,
        in_flight: in_flight as u64,
        capped: (waiting + delayed + retrying) as u64 > cap,
    })
}

/// How many entries the user's DLQ holds, up to `cap` (one more when
/// there are more), along the `dlq_user` index.
pub fn count_dlq(conn: &Connection, user_id: &str, cap: u64) -> Result<u64> {
    Ok(conn
        .prepare_cached("SELECT COUNT(*) FROM (SELECT 1 FROM dlq WHERE user_id = ?1 LIMIT ?2)")?
        .query_row(params![user_id, cap as i64 + 1], |r| r.get::<_, i64>(0))? as u64)
}
