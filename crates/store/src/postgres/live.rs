//! Live messages (pending or in flight) of one user, for the console, as in
//! `sqlite/live.rs`: a page newest first and counts, from two walks in
//! `seq` (= insert) order: pending messages along `messages_pending_user`,
//! in-flight ones along `messages_claims`, the index of rows in flight (at
//! most `--max-in-flight` rows per node).

use deadpool_postgres::GenericClient;
use qstash_core::clock::Millis;
use qstash_core::live::{LiveCounts, LiveCursor, LivePage};
use qstash_core::message::MessageFilter;

use super::messages::{message_at, COLUMNS};
use super::sql::{self, Where};
use crate::Result;

pub const LIVE_INDEX: &str = r#"
CREATE INDEX messages_pending_user ON messages (user_id, seq) WHERE state = 'pending';
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
        w.push(format!("seq < {c}"));
    }
    w.any_of("url", &f.url);
    w.any_of("topic_name", &f.topic_name);
    w.any_of("queue_name", &f.queue_name);
    w.any_of("schedule_id", &f.schedule_id);
    w.any_of("flow_control_key", &f.flow_control_key);
    w.any_of("caller_ip", &f.caller_ip);
    w.any_label("labels", &f.label);
    w.any_of("qstash_url_host(url)", &f.host);
    w.any_of("qstash_url_path(url)", &f.path);
    if let Some(from) = f.from_date {
        let from = w.arg(from);
        w.push(format!("created_at >= {from}"));
    }
    if let Some(to) = f.to_date {
        let to = w.arg(to);
        w.push(format!("created_at <= {to}"));
    }
    let rest = w.sql();
    // Each written as its index's WHERE, so the planner can use it.
    let pending = format!("FROM messages WHERE user_id = {user} AND state = 'pending' AND {rest}");
    let active = format!("FROM messages WHERE state = 'active' AND user_id = {user} AND {rest}");
    (pending, active, w)
}

/// The SQL of a page query, with its arguments; exposed for plan tests.
pub fn page_sql(
    user_id: &str,
    f: &MessageFilter,
    cursor: Option<LiveCursor>,
    limit: usize,
) -> (String, Where) {
    let (pending, active, w) = selection(user_id, f, cursor);
    let sql = format!(
        "(SELECT {COLUMNS}, seq {pending} ORDER BY seq DESC LIMIT {limit})
         UNION ALL
         (SELECT {COLUMNS}, seq {active})
         ORDER BY seq DESC LIMIT {limit}"
    );
    (sql, w)
}

pub async fn list<C: GenericClient>(
    c: &C,
    user_id: &str,
    f: &MessageFilter,
    cursor: Option<LiveCursor>,
    count: usize,
) -> Result<LivePage> {
    let (sql, w) = page_sql(user_id, f, cursor, count + 1);
    let rows = sql::query(c, &sql, &w.params()).await?;
    let more = rows.len() > count;
    let mut messages = Vec::with_capacity(count);
    let mut last = None;
    for r in rows.iter().take(count) {
        messages.push(message_at(r, 0)?);
        last = Some(r.try_get::<_, i64>(9)?);
    }
    Ok(LivePage {
        messages,
        cursor: last.filter(|_| more).map(LiveCursor),
    })
}

/// Counts the matching live messages by kind, reading at most `cap` + 1
/// pending rows and the user's in-flight ones (see `sqlite::live::count`).
pub async fn count<C: GenericClient>(
    c: &C,
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
            COUNT(*) FILTER (WHERE state = 'pending' AND retried = 0 AND due_at <= {now}),
            COUNT(*) FILTER (WHERE state = 'pending' AND retried = 0 AND due_at > {now}),
            COUNT(*) FILTER (WHERE state = 'pending' AND retried > 0),
            COUNT(*) FILTER (WHERE state = 'active')
         FROM ((SELECT state, due_at, retried {pending} LIMIT {limit})
               UNION ALL
               (SELECT state, due_at, retried {active})) live"
    );
    let r = sql::query_one(c, &sql, &w.params()).await?;
    let n = |i: usize| -> Result<u64> { Ok(r.try_get::<_, i64>(i)? as u64) };
    let (waiting, delayed, retrying) = (n(0)?, n(1)?, n(2)?);
    Ok(LiveCounts {
        waiting,
        delayed,
        retrying,
        in_flight: n(3)?,
        capped: waiting + delayed + retrying > cap,
    })
}

/// How many entries the user's DLQ holds, up to `cap` (one more when
/// there are more), along its (user, created_at) index.
pub async fn count_dlq<C: GenericClient>(c: &C, user_id: &str, cap: u64) -> Result<u64> {
    let r = sql::query_one(
        c,
        "SELECT COUNT(*) FROM (SELECT 1 FROM dlq WHERE user_id = $1 LIMIT $2) d",
        &[&user_id, &(cap as i64 + 1)],
    )
    .await?;
    Ok(r.try_get::<_, i64>(0)? as u64)
}
