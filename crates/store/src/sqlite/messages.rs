//! Message rows and their log entries. Every function runs inside a writer
//! job or a read, on a plain connection.

use std::sync::LazyLock;

use qstash_core::clock::Millis;
use qstash_core::dedup::WINDOW_MS;
use qstash_core::message::{Arrival, LogState};
use qstash_core::{Message, MessageState};
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};

use super::statements::Prepare;
use super::Tx;
use crate::rows::{self, encode, DlqRow, Encoded, EventDetail, Head, Prepared};
use crate::{
    CancelRequest, CancelResult, Inserted, MessageFilter, NewMessage, Outcome, PurgeCounts, Result,
};

pub(super) const COLUMNS: &str =
    "id, user_id, state, due_at, created_at, not_before, retried, spec, body";

pub fn insert(conn: &Tx, messages: &[NewMessage], now: Millis) -> Result<Vec<Inserted>> {
    insert_encoded(conn, messages, &encode(messages)?, now)
}

/// Inserts `messages`, whose columns `encoded` holds in the same order.
/// The one function that stores messages: each pending one is noted as an
/// arrival, announced after the commit.
pub fn insert_encoded(
    conn: &Tx,
    messages: &[NewMessage],
    encoded: &[Encoded],
    now: Millis,
) -> Result<Vec<Inserted>> {
    let mut out = Vec::with_capacity(messages.len());
    for (new, enc) in messages.iter().zip(encoded) {
        let m = &new.message;
        if let Some(key) = &new.dedup_key {
            if let Some(existing) = dedup_hit(conn, &m.user_id, key, now)? {
                out.push(Inserted::Duplicate(existing));
                continue;
            }
            conn.with_statement(
                "INSERT OR REPLACE INTO dedup (user_id, key, message_id, expires_at) VALUES (?1, ?2, ?3, ?4)",
                |d| Ok(d.execute(params![m.user_id, key, m.id, now + WINDOW_MS])?),
            )?;
        }
        let s = &m.spec;
        conn.with_statement(
            "INSERT INTO messages (id, user_id, state, due_at, created_at, not_before, retried, updated_at, url,
                topic_name, queue_name, schedule_id, flow_control_key, caller_ip, labels, spec, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?5, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
            |insert| {
                Ok(insert.execute(params![
                    m.id,
                    m.user_id,
                    m.state.as_str(),
                    m.due_at,
                    m.created_at,
                    m.not_before,
                    m.retried,
                    s.url,
                    s.topic_name,
                    s.queue_name,
                    s.schedule_id,
                    s.flow_control.as_ref().map(|f| &f.key),
                    s.caller_ip,
                    enc.labels,
                    enc.spec,
                    &m.body[..],
                ])?)
            },
        )?;
        let none = EventDetail::default();
        let (user, id, keys) = (&m.user_id, &m.id, &enc.keys);
        log_keyed(conn, user, id, keys, m.created_at, LogState::Created, &none)?;
        // Stored already in flight: its delivery starts right after the commit.
        if m.state == MessageState::Active {
            log_keyed(conn, user, id, keys, now, LogState::Active, &none)?;
        }
        super::gates::on_insert(conn, m, now)?;
        if let Some(arrival) = Arrival::of(m) {
            conn.arrived(arrival);
        }
        out.push(Inserted::New(m.id.clone()));
    }
    Ok(out)
}

fn dedup_hit(conn: &Tx, user_id: &str, key: &str, now: Millis) -> Result<Option<String>> {
    conn.with_statement(
        "SELECT message_id FROM dedup WHERE user_id = ?1 AND key = ?2 AND expires_at > ?3",
        |s| {
            Ok(s.query_row(params![user_id, key, now], |r| r.get(0))
                .optional()?)
        },
    )
}

pub fn get(conn: &Connection, id: &str) -> Result<Option<Message>> {
    let sql = format!("SELECT {COLUMNS} FROM messages WHERE id = ?1");
    let row = conn
        .prepare_cached(&sql)?
        .query_row([id], read_row)
        .optional()?;
    row.map(decode).transpose()
}

/// Claims due messages; answers their rows undecoded, so the JSON is
/// parsed off the writer thread ([`decode`]).
///
/// The rows are read, then updated one by one by rowid. One `UPDATE ...
/// RETURNING` did both, but SQLite runs RETURNING as a trigger program per
/// row: a claim through it cost about 44,000 more instructions per message
/// on the writer thread (callgrind, `scripts/instructions --queue`).
pub fn claim_due(conn: &Tx, now: Millis, limit: usize) -> Result<Vec<RawRow>> {
    let sql: &'static str = &DUE;
    let due = conn.with_statement(sql, |stmt| {
        let rows = stmt.query_map(params![now, limit as i64], read_claimable)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    })?;
    due.into_iter()
        .map(|(rowid, raw, keys)| activate(conn, rowid, raw, &keys, now))
        .collect()
}

/// Claims message `id` if it is still pending; answers its row undecoded
/// (see [`claim_due`]).
pub fn claim_one(conn: &Tx, id: &str, now: Millis) -> Result<Option<RawRow>> {
    let sql: &'static str = &PENDING;
    let found = conn.with_statement(sql, |stmt| {
        Ok(stmt.query_row([id], read_claimable).optional()?)
    })?;
    found
        .map(|(rowid, raw, keys)| activate(conn, rowid, raw, &keys, now))
        .transpose()
}

/// The due plain messages, earliest first (the `messages_due_plain` index).
static DUE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {COLUMNS}, {HEAD_COLUMNS}, rowid FROM messages
         WHERE state = 'pending' AND queue_name IS NULL AND flow_control_key IS NULL
             AND due_at <= ?1
         ORDER BY due_at LIMIT ?2"
    )
});

/// One message, if it is pending.
static PENDING: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {COLUMNS}, {HEAD_COLUMNS}, rowid FROM messages WHERE id = ?1 AND state = 'pending'"
    )
});

/// A pending row read for a claim (`COLUMNS`, `HEAD_COLUMNS`, then the
/// rowid): its rowid, its columns and its log keys.
fn read_claimable(r: &Row) -> rusqlite::Result<(i64, RawRow, Vec<String>)> {
    // After the nine of COLUMNS and the six of HEAD_COLUMNS.
    const ROWID: usize = 15;
    Ok((r.get(ROWID)?, read_row(r)?, read_keys(r, 9)?))
}

/// Makes a pending row read by a claim active, with its ACTIVE log entry;
/// answers the row as it now is.
fn activate(
    conn: &Tx,
    rowid: i64,
    mut raw: RawRow,
    keys: &[String],
    now: Millis,
) -> Result<RawRow> {
    conn.with_statement(
        "UPDATE messages SET state = 'active', updated_at = ?2 WHERE rowid = ?1",
        |s| Ok(s.execute(params![rowid, now])?),
    )?;
    raw.2 = MessageState::Active.as_str().to_string();
    let none = EventDetail::default();
    log_keyed(conn, &raw.1, &raw.0, keys, now, LogState::Active, &none)?;
    Ok(raw)
}

/// Per-user claims for `--max-in-flight-per-user`: up to `room` due plain
/// messages of each listed user, at most `limit` in all, earliest first.
/// Each user's messages are read from `messages_due_plain_user` (migration
/// 2; an index
/// seek per user), so a user with a large due backlog at its cap costs
/// nothing: it is simply not listed.
pub fn claim_due_of_users(
    conn: &Tx,
    now: Millis,
    rooms: &[(String, usize)],
    limit: usize,
) -> Result<Vec<RawRow>> {
    let mut candidates: Vec<(Millis, String)> = Vec::new();
    let mut pick = conn.prepare_cached(
        "SELECT due_at, id FROM messages INDEXED BY messages_due_plain_user
         WHERE user_id = ?1 AND state = 'pending' AND queue_name IS NULL
             AND flow_control_key IS NULL AND due_at <= ?2
         ORDER BY due_at LIMIT ?3",
    )?;
    for (user, room) in rooms {
        let rows = pick.query_map(params![user, now, (*room).min(limit) as i64], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
        for row in rows {
            candidates.push(row?);
        }
    }
    candidates.sort();
    candidates.truncate(limit);
    let mut out = Vec::new();
    for (_, id) in candidates {
        out.extend(claim_one(conn, &id, now)?);
    }
    Ok(out)
}

/// When the earliest pending plain message of any of `users` is due.
pub fn next_due_of_users(conn: &Connection, users: &[String]) -> Result<Option<Millis>> {
    let mut stmt = conn.prepare_cached(
        "SELECT MIN(due_at) FROM messages INDEXED BY messages_due_plain_user
         WHERE user_id = ?1 AND state = 'pending' AND queue_name IS NULL
             AND flow_control_key IS NULL",
    )?;
    let mut earliest: Option<Millis> = None;
    for user in users {
        let due: Option<Millis> = stmt.query_row([user], |r| r.get(0))?;
        earliest = match (earliest, due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    Ok(earliest)
}

/// The message columns the log keys are built from (see `logs::keys_of`).
const HEAD_COLUMNS: &str = "url, topic_name, queue_name, schedule_id, flow_control_key, labels";

/// The log keys of the row whose `HEAD_COLUMNS` start at column `at`.
fn read_keys(r: &Row, at: usize) -> rusqlite::Result<Vec<String>> {
    let url: String = r.get(at)?;
    let opt = |i: usize| r.get::<_, Option<String>>(at + i);
    let (topic, queue, schedule, flow, labels) = (opt(1)?, opt(2)?, opt(3)?, opt(4)?, opt(5)?);
    Ok(rows::keys_of_columns(
        &url,
        topic.as_deref(),
        queue.as_deref(),
        schedule.as_deref(),
        flow.as_deref(),
        labels.as_deref(),
    ))
}

/// The message's head and its rowid: the update that follows finds the
/// row by the rowid instead of searching the id index a second time.
/// Its SQL is built once: it runs for every delivered message, on the
/// writer thread.
fn get_head(conn: &Tx, id: &str) -> Result<Option<(i64, Head)>> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT rowid, user_id, state, due_at, retried, {HEAD_COLUMNS} FROM messages WHERE id = ?1"
        )
    });
    let sql: &'static str = &SQL;
    conn.with_statement(sql, |s| {
        Ok(s.query_row([id], |r| {
            let head = Head {
                id: id.to_string(),
                user_id: r.get(1)?,
                state: r.get(2)?,
                due_at: r.get(3)?,
                retried: r.get(4)?,
                queue: r.get(7)?,
                flow_control_key: r.get(9)?,
                keys: read_keys(r, 5)?,
            };
            Ok((r.get(0)?, head))
        })
        .optional()?)
    })
}

/// Records outcomes; `prepared[i]` is `rows::prepare(&outcomes[i])`.
/// Reads only the columns it needs of each
/// message: decoding whole messages here cost the writer thread dearly.
pub fn record_outcomes(conn: &Tx, outcomes: &[Outcome], prepared: &[Prepared]) -> Result<()> {
    for (o, prepared) in outcomes.iter().zip(prepared) {
        let Some((rowid, m)) = get_head(conn, &o.message_id)? else {
            continue;
        };
        // A message cancelled while in flight keeps its cancellation.
        let Some(t) = rows::transition(&m, o, &prepared.response) else {
            continue;
        };
        let row = MessageRow::Rowid(rowid);
        set_state(conn, row, t.state, t.due_at, t.retried, o.at)?;
        for (state, detail) in &t.events {
            log_keyed(conn, &m.user_id, &m.id, &m.keys, o.at, *state, detail)?;
        }
        if let Some(dlq) = &t.dlq {
            insert_dlq(conn, &m.user_id, &m.id, o.at, dlq)?;
            if let Some(run_id) = &o.fails_run {
                note_failing(conn, &m.user_id, run_id, &m.id, &dlq.error, o.at)?;
            }
        }
        if let Some(arrival) = t.arrival {
            conn.arrived(arrival);
        }
        if !o.callbacks.is_empty() {
            insert_encoded(conn, &o.callbacks, &prepared.callbacks, o.at)?;
        }
    }
    Ok(())
}

/// Notes that `run_id` fails with its step `id` (cleared when the run is
/// ended; see `Workflows::failing_runs`).
fn note_failing(
    conn: &Tx,
    user_id: &str,
    run_id: &str,
    id: &str,
    error: &str,
    at: Millis,
) -> Result<()> {
    conn.with_statement(
        "INSERT OR IGNORE INTO workflow_failing (user_id, run_id, message_id, error, at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        |s| Ok(s.execute(params![user_id, run_id, id, error, at])?),
    )?;
    Ok(())
}

fn insert_dlq(conn: &Tx, user_id: &str, id: &str, at: Millis, d: &DlqRow) -> Result<()> {
    conn.with_statement(
        "INSERT INTO dlq (dlq_id, user_id, message_id, created_at, response_status, response_header, response_body, error)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        |s| Ok(s.execute(params![d.dlq_id, user_id, id, at, d.status, d.header, d.body, d.error])?),
    )?;
    Ok(())
}

/// Which message row an update is for.
#[derive(Clone, Copy)]
enum MessageRow<'a> {
    Id(&'a str),
    /// Found by a read in the same transaction (the writer's only).
    Rowid(i64),
}

fn set_state(
    conn: &impl Prepare,
    row: MessageRow,
    state: MessageState,
    due_at: Millis,
    retried: u32,
    now: Millis,
) -> Result<()> {
    let (sql, key): (_, &dyn rusqlite::ToSql) = match &row {
        MessageRow::Id(id) => (
            "UPDATE messages SET state = ?2, due_at = ?3, retried = ?4, updated_at = ?5 WHERE id = ?1",
            id,
        ),
        MessageRow::Rowid(rowid) => (
            "UPDATE messages SET state = ?2, due_at = ?3, retried = ?4, updated_at = ?5 WHERE rowid = ?1",
            rowid,
        ),
    };
    conn.with_statement(sql, |s| {
        Ok(s.execute(params![key, state.as_str(), due_at, retried, now])?)
    })?;
    Ok(())
}

pub fn cancel(
    conn: &Connection,
    user_id: &str,
    req: &CancelRequest,
    now: Millis,
) -> Result<CancelResult> {
    let ids = if req.message_ids.is_empty() {
        // One more than `count`, to know whether more match.
        matching_live_ids(conn, user_id, &req.filter, req.count.map(|n| n + 1))?
    } else {
        req.message_ids.clone()
    };
    let limit = req.count.unwrap_or(usize::MAX);
    let mut cancelled = 0u64;
    let mut last = None;
    let mut more_after = None;
    for id in ids {
        let Some(m) = get(conn, &id)? else { continue };
        if m.user_id != user_id || !m.state.is_live() {
            continue;
        }
        if cancelled as usize >= limit {
            more_after = last;
            break;
        }
        set_state(
            conn,
            MessageRow::Id(&m.id),
            MessageState::Cancelled,
            m.due_at,
            m.retried,
            now,
        )?;
        log(
            conn,
            &m,
            now,
            LogState::CancelRequested,
            &EventDetail::default(),
        )?;
        log(conn, &m, now, LogState::Canceled, &EventDetail::default())?;
        cancelled += 1;
        last = Some(m.id);
    }
    Ok(CancelResult {
        cancelled,
        more_after,
    })
}

/// Ids of the user's live messages matching `filter`, oldest first (in
/// the order they were stored), from the live walks of `live.rs`: pending
/// messages along the user's pending index, in-flight ones along theirs.
/// Delivered and cancelled messages kept for the logs are never read.
fn matching_live_ids(
    conn: &Connection,
    user_id: &str,
    f: &MessageFilter,
    limit: Option<usize>,
) -> Result<Vec<String>> {
    let (pending, active, w) = super::live::selection(user_id, f, None);
    let limit = limit.map(|n| format!(" LIMIT {n}")).unwrap_or_default();
    let sql = format!(
        "SELECT id, rowid AS rid {pending} UNION ALL SELECT id, rowid AS rid {active} ORDER BY rid{limit}"
    );
    // Built per filter: not worth a place in the statement cache.
    let ids = conn
        .prepare(&sql)?
        .query_map(params_from_iter(w.args), |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(ids)
}

pub fn purge(conn: &Connection, now: Millis, retain_before: Millis) -> Result<PurgeCounts> {
    let dedup = conn.execute("DELETE FROM dedup WHERE expires_at <= ?1", [now])? as u64;
    let events = purge_events(conn, retain_before)?;
    let messages = conn.execute(
        "DELETE FROM messages WHERE state IN ('delivered', 'cancelled') AND updated_at < ?1",
        [retain_before],
    )? as u64;
    Ok(PurgeCounts {
        messages,
        events,
        dedup,
    })
}

/// Drops log entries older than `before`, one user and state at a time
/// along the (user, state, time) index, which the listing needs anyway:
/// the next user and the next state are each one seek (whatever states an
/// older version wrote), and each delete walks only what it deletes.
fn purge_events(conn: &Connection, before: Millis) -> Result<u64> {
    let mut next_user =
        conn.prepare_cached("SELECT MIN(user_id) FROM events WHERE user_id > ?1")?;
    let mut next_state =
        conn.prepare_cached("SELECT MIN(state) FROM events WHERE user_id = ?1 AND state > ?2")?;
    let mut delete =
        conn.prepare_cached("DELETE FROM events WHERE user_id = ?1 AND state = ?2 AND time < ?3")?;
    let mut user = String::new();
    let mut purged = 0;
    while let Some(u) = next_user.query_row([&user], |r| r.get::<_, Option<String>>(0))? {
        let mut state = String::new();
        while let Some(s) =
            next_state.query_row(params![u, state], |r| r.get::<_, Option<String>>(0))?
        {
            purged += delete.execute(params![u, s, before])? as u64;
            state = s;
        }
        user = u;
    }
    Ok(purged)
}

fn log(
    conn: &impl Prepare,
    m: &Message,
    at: Millis,
    state: LogState,
    d: &EventDetail,
) -> Result<()> {
    let keys = rows::keys(m);
    log_keyed(conn, &m.user_id, &m.id, &keys, at, state, d)
}

/// Writes one log entry of message `id`, indexed by its attribute `keys`.
fn log_keyed(
    conn: &impl Prepare,
    user_id: &str,
    id: &str,
    keys: &[String],
    at: Millis,
    state: LogState,
    d: &EventDetail,
) -> Result<()> {
    let seq = conn.with_statement(
        "INSERT INTO events (user_id, message_id, time, state, error, next_delivery_time, response_status,
            response_header, response_body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        |s| {
            Ok(s.insert(params![
                user_id,
                id,
                at,
                state.as_str(),
                d.error,
                d.next_delivery_time,
                d.response_status,
                d.response_header,
                d.response_body
            ])?)
        },
    )?;
    super::logs::index_event(conn, user_id, keys, at, seq)
}

pub(super) type RawRow = (String, String, String, i64, i64, i64, u32, String, Vec<u8>);

pub(super) fn read_row(r: &Row) -> rusqlite::Result<RawRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
    ))
}

pub(super) fn decode(row: RawRow) -> Result<Message> {
    let (id, user_id, state, due_at, created_at, not_before, retried, spec, body) = row;
    rows::decode_message(
        id, user_id, &state, due_at, created_at, not_before, retried, &spec, body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(conn: &Connection, sql: &str) -> Vec<String> {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let n = stmt.parameter_count();
        let args = vec![rusqlite::types::Value::Integer(0); n];
        stmt.query_map(params_from_iter(args), |r| r.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    /// A claim reads the due messages from their index in due order (no
    /// scan, no sort), and one message by its id.
    #[test]
    fn claims_read_from_an_index() {
        let conn = Connection::open_in_memory().unwrap();
        super::super::migrations::migrate(&conn).unwrap();
        let due = plan(&conn, &DUE);
        assert_eq!(due.len(), 1, "{due:?}");
        assert!(due[0].contains("INDEX messages_due_plain "), "{due:?}");
        let one = plan(&conn, &PENDING);
        assert_eq!(one.len(), 1, "{one:?}");
        assert!(
            one[0].contains("INDEX sqlite_autoindex_messages_1"),
            "{one:?}"
        );
    }
}
