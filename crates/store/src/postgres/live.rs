//! Live messages (pending or in flight) of one user, for the console, as in
//! `sqlite/live.rs`: a page newest first and counts, both along
//! `messages_live`, a partial index that holds only live rows, in `seq`
//! (= insert) order.

use deadpool_postgres::GenericClient;
use qstash_core::clock::Millis;
use qstash_core::live::{LiveCounts, LiveCursor, LivePage};
use qstash_core::message::MessageFilter;

use super::messages::{message_at, COLUMNS};
use super::sql::{self, Where};
use crate::Result;

pub const LIVE_INDEX: &str = r#"
CREATE INDEX messages_live ON messages (user_id, seq) WHERE state IN ('pending', 'active');
"#;

/// The WHERE of a walk over the user's live messages matching `f`, before
/// `cursor`.
fn selection(user_id: &str, f: &MessageFilter, cursor: Option<LiveCursor>) -> Where {
    let mut w = Where::default();
    let user = w.arg(user_id.to_string());
    // Written as the index's WHERE, so the planner can use it.
    w.push(format!(
        "user_id = {user} AND state IN ('pending', 'active')"
    ));
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
    w
}

/// The SQL of a page query, with its arguments; exposed for plan tests.
pub fn page_sql(
    user_id: &str,
    f: &MessageFilter,
    cursor: Option<LiveCursor>,
    limit: usize,
) -> (String, Where) {
    let w = selection(user_id, f, cursor);
    let sql = format!(
        "SELECT {COLUMNS}, seq FROM messages WHERE {} ORDER BY seq DESC LIMIT {limit}",
        w.sql()
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
/// rows (see `sqlite::live::count`).
pub async fn count<C: GenericClient>(
    c: &C,
    user_id: &str,
    f: &MessageFilter,
    now: Millis,
    cap: u64,
) -> Result<LiveCounts> {
    let mut w = selection(user_id, f, None);
    let now = w.arg(now);
    let limit = w.arg(cap as i64 + 1);
    let sql = format!(
        "SELECT
            COUNT(*) FILTER (WHERE state = 'pending' AND retried = 0 AND due_at <= {now}),
            COUNT(*) FILTER (WHERE state = 'pending' AND retried = 0 AND due_at > {now}),
            COUNT(*) FILTER (WHERE state = 'pending' AND retried > 0),
            COUNT(*) FILTER (WHERE state = 'active'),
            COUNT(*)
         FROM (SELECT state, due_at, retried FROM messages WHERE {} LIMIT {limit}) live",
        w.sql()
    );
    let r = sql::query_one(c, &sql, &w.params()).await?;
    let n = |i: usize| -> Result<u64> { Ok(r.try_get::<_, i64>(i)? as u64) };
    Ok(LiveCounts {
        waiting: n(0)?,
        delayed: n(1)?,
        retrying: n(2)?,
        in_flight: n(3)?,
        capped: n(4)? > cap,
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
