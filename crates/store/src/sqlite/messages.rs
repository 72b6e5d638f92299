//! Message rows and their log entries. Every function runs inside a writer
//! job or a read, on a plain connection.

use qstash_core::clock::Millis;
use qstash_core::dedup::WINDOW_MS;
use qstash_core::message::LogState;
use qstash_core::{Message, MessageSpec, MessageState};
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};

use crate::{
    AttemptResponse, CancelRequest, CancelResult, Inserted, MessageFilter, NewMessage, Outcome,
    OutcomeKind, PurgeCounts, Result, StoreError,
};

pub(super) const COLUMNS: &str =
    "id, user_id, state, due_at, created_at, not_before, retried, spec, body";

pub fn insert(conn: &Connection, messages: &[NewMessage], now: Millis) -> Result<Vec<Inserted>> {
    let mut out = Vec::with_capacity(messages.len());
    let mut insert = conn.prepare_cached(
        "INSERT INTO messages (id, user_id, state, due_at, created_at, not_before, retried, updated_at, url,
            topic_name, queue_name, schedule_id, flow_control_key, caller_ip, labels, spec, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?5, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
    )?;
    for new in messages {
        let m = &new.message;
        if let Some(key) = &new.dedup_key {
            if let Some(existing) = dedup_hit(conn, &m.user_id, key, now)? {
                out.push(Inserted::Duplicate(existing));
                continue;
            }
            conn.prepare_cached(
                "INSERT OR REPLACE INTO dedup (user_id, key, message_id, expires_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![m.user_id, key, m.id, now + WINDOW_MS])?;
        }
        let s = &m.spec;
        let spec = serde_json::to_string(s).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let labels = (!s.labels.is_empty()).then(|| format!(",{},", s.labels.join(",")));
        insert.execute(params![
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
            labels,
            spec,
            m.body,
        ])?;
        log(
            conn,
            m,
            m.created_at,
            LogState::Created,
            &EventDetail::default(),
        )?;
        super::gates::on_insert(conn, m, now)?;
        out.push(Inserted::New(m.id.clone()));
    }
    Ok(out)
}

fn dedup_hit(conn: &Connection, user_id: &str, key: &str, now: Millis) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached(
            "SELECT message_id FROM dedup WHERE user_id = ?1 AND key = ?2 AND expires_at > ?3",
        )?
        .query_row(params![user_id, key, now], |r| r.get(0))
        .optional()?)
}

pub fn get(conn: &Connection, id: &str) -> Result<Option<Message>> {
    let sql = format!("SELECT {COLUMNS} FROM messages WHERE id = ?1");
    let row = conn
        .prepare_cached(&sql)?
        .query_row([id], read_row)
        .optional()?;
    row.map(decode).transpose()
}

pub fn claim_due(conn: &Connection, now: Millis, limit: usize) -> Result<Vec<Message>> {
    let sql = format!(
        "UPDATE messages SET state = 'active', updated_at = ?1
         WHERE id IN (SELECT id FROM messages WHERE state = 'pending' AND queue_name IS NULL
             AND flow_control_key IS NULL AND due_at <= ?1 ORDER BY due_at LIMIT ?2)
         RETURNING {COLUMNS}"
    );
    let rows: Vec<RawRow> = conn
        .prepare_cached(&sql)?
        .query_map(params![now, limit as i64], read_row)?
        .collect::<rusqlite::Result<_>>()?;
    let mut messages = rows.into_iter().map(decode).collect::<Result<Vec<_>>>()?;
    messages.sort_by_key(|m| m.due_at);
    for m in &messages {
        log(conn, m, now, LogState::Active, &EventDetail::default())?;
    }
    Ok(messages)
}

pub fn record_outcomes(conn: &Connection, outcomes: &[Outcome]) -> Result<()> {
    for o in outcomes {
        let Some(m) = get(conn, &o.message_id)? else {
            continue;
        };
        // A message cancelled while in flight keeps its cancellation.
        if m.state != MessageState::Active {
            continue;
        }
        let response = EventDetail::response(&o.response);
        match &o.kind {
            OutcomeKind::Delivered => {
                set_state(
                    conn,
                    &m.id,
                    MessageState::Delivered,
                    m.due_at,
                    m.retried,
                    o.at,
                )?;
                log(conn, &m, o.at, LogState::Delivered, &response)?;
            }
            OutcomeKind::Retry { next_due, error } => {
                set_state(
                    conn,
                    &m.id,
                    MessageState::Pending,
                    *next_due,
                    m.retried + 1,
                    o.at,
                )?;
                log(
                    conn,
                    &m,
                    o.at,
                    LogState::Error,
                    &EventDetail {
                        error: Some(error.clone()),
                        ..response.clone()
                    },
                )?;
                let retry = EventDetail {
                    next_delivery_time: Some(*next_due),
                    ..Default::default()
                };
                log(conn, &m, o.at, LogState::Retry, &retry)?;
            }
            OutcomeKind::Failed { error } => {
                set_state(conn, &m.id, MessageState::Failed, m.due_at, m.retried, o.at)?;
                let failed = EventDetail {
                    error: Some(error.clone()),
                    ..response
                };
                log(conn, &m, o.at, LogState::Error, &failed)?;
                log(conn, &m, o.at, LogState::Failed, &failed)?;
                insert_dlq(conn, &m, o, error)?;
            }
        }
        if !o.callbacks.is_empty() {
            insert(conn, &o.callbacks, o.at)?;
        }
    }
    Ok(())
}

fn insert_dlq(conn: &Connection, m: &Message, o: &Outcome, error: &str) -> Result<()> {
    let rowid: i64 = conn.query_row("SELECT rowid FROM messages WHERE id = ?1", [&m.id], |r| {
        r.get(0)
    })?;
    let header = serde_json::to_string(&o.response.header)
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    conn.prepare_cached(
        "INSERT INTO dlq (dlq_id, user_id, message_id, created_at, response_status, response_header, response_body, error)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        o.dlq_id.clone().unwrap_or_else(|| format!("{}-{}", o.at, rowid)),
        m.user_id,
        m.id,
        o.at,
        o.response.status,
        header,
        o.response.body,
        error
    ])?;
    Ok(())
}

fn set_state(
    conn: &Connection,
    id: &str,
    state: MessageState,
    due_at: Millis,
    retried: u32,
    now: Millis,
) -> Result<()> {
    conn.prepare_cached(
        "UPDATE messages SET state = ?2, due_at = ?3, retried = ?4, updated_at = ?5 WHERE id = ?1",
    )?
    .execute(params![id, state.as_str(), due_at, retried, now])?;
    Ok(())
}

pub fn cancel(
    conn: &Connection,
    user_id: &str,
    req: &CancelRequest,
    now: Millis,
) -> Result<CancelResult> {
    let ids = if req.message_ids.is_empty() {
        matching_live_ids(conn, user_id, &req.filter)?
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
            &m.id,
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

/// Ids of the user's live messages matching `filter`, oldest first. SQL
/// narrows by the indexed columns; host and path are checked on the URL.
fn matching_live_ids(conn: &Connection, user_id: &str, f: &MessageFilter) -> Result<Vec<String>> {
    let mut sql = String::from(
        "SELECT id, url FROM messages WHERE user_id = ?1 AND state IN ('pending', 'active')",
    );
    let mut args: Vec<Value> = vec![Value::Text(user_id.into())];
    let any_of = |column: &str, values: &[String], args: &mut Vec<Value>, sql: &mut String| {
        if values.is_empty() {
            return;
        }
        let marks: Vec<String> = values
            .iter()
            .map(|v| {
                args.push(Value::Text(v.clone()));
                format!("?{}", args.len())
            })
            .collect();
        sql.push_str(&format!(" AND {column} IN ({})", marks.join(", ")));
    };
    any_of("url", &f.url, &mut args, &mut sql);
    any_of("topic_name", &f.topic_name, &mut args, &mut sql);
    any_of("queue_name", &f.queue_name, &mut args, &mut sql);
    any_of("schedule_id", &f.schedule_id, &mut args, &mut sql);
    any_of("flow_control_key", &f.flow_control_key, &mut args, &mut sql);
    any_of("caller_ip", &f.caller_ip, &mut args, &mut sql);
    if !f.label.is_empty() {
        let likes: Vec<String> = f
            .label
            .iter()
            .map(|l| {
                args.push(Value::Text(format!("%,{l},%")));
                format!("labels LIKE ?{}", args.len())
            })
            .collect();
        sql.push_str(&format!(" AND ({})", likes.join(" OR ")));
    }
    if let Some(from) = f.from_date {
        args.push(Value::Integer(from));
        sql.push_str(&format!(" AND created_at >= ?{}", args.len()));
    }
    if let Some(to) = f.to_date {
        args.push(Value::Integer(to));
        sql.push_str(&format!(" AND created_at <= ?{}", args.len()));
    }
    sql.push_str(" ORDER BY created_at, id");
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(params_from_iter(args), |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut ids = Vec::new();
    for row in rows {
        let (id, url) = row?;
        if url_matches(&url, &f.host, &f.path) {
            ids.push(id);
        }
    }
    Ok(ids)
}

fn url_matches(url: &str, hosts: &[String], paths: &[String]) -> bool {
    if hosts.is_empty() && paths.is_empty() {
        return true;
    }
    let Ok(u) = url::Url::parse(url) else {
        return false;
    };
    let host_ok = hosts.is_empty() || hosts.iter().any(|h| Some(h.as_str()) == u.host_str());
    let path_ok = paths.is_empty() || paths.iter().any(|p| p == u.path());
    host_ok && path_ok
}

pub fn purge(conn: &Connection, now: Millis, retain_before: Millis) -> Result<PurgeCounts> {
    let dedup = conn.execute("DELETE FROM dedup WHERE expires_at <= ?1", [now])? as u64;
    let events = conn.execute("DELETE FROM events WHERE time < ?1", [retain_before])? as u64;
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

/// Per-event details beyond the message itself.
#[derive(Debug, Clone, Default)]
struct EventDetail {
    error: Option<String>,
    next_delivery_time: Option<Millis>,
    response_status: Option<u16>,
    response_header: Option<String>,
    response_body: Option<Vec<u8>>,
}

impl EventDetail {
    fn response(r: &AttemptResponse) -> Self {
        EventDetail {
            response_status: Some(r.status),
            response_header: serde_json::to_string(&r.header).ok(),
            response_body: Some(r.body.clone()),
            ..Default::default()
        }
    }
}

/// A log entry with no details beyond the message (such as ACTIVE).
pub fn log_state(conn: &Connection, m: &Message, at: Millis, state: LogState) -> Result<()> {
    log(conn, m, at, state, &EventDetail::default())
}

fn log(conn: &Connection, m: &Message, at: Millis, state: LogState, d: &EventDetail) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO events (user_id, message_id, time, state, error, next_delivery_time, response_status,
            response_header, response_body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        m.user_id,
        m.id,
        at,
        state.as_str(),
        d.error,
        d.next_delivery_time,
        d.response_status,
        d.response_header,
        d.response_body
    ])?;
    super::logs::index_event(conn, m, at, conn.last_insert_rowid())?;
    Ok(())
}

pub(super) type RawRow = (String, String, String, i64, i64, i64, u32, String, Vec<u8>);

fn read_row(r: &Row) -> rusqlite::Result<RawRow> {
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
    let spec: MessageSpec =
        serde_json::from_str(&spec).map_err(|e| StoreError::Corrupt(format!("{id}: {e}")))?;
    let state = MessageState::parse(&state)
        .ok_or_else(|| StoreError::Corrupt(format!("{id}: state {state}")))?;
    Ok(Message {
        id,
        user_id,
        spec,
        body,
        created_at,
        not_before,
        due_at,
        retried,
        state,
    })
}
