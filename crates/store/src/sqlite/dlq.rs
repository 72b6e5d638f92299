//! The dead-letter queue: one `dlq` row per message whose retries are
//! exhausted (written by `record_outcomes` with the FAILED state), the
//! message itself joined in from `messages`.

use qstash_core::clock::Millis;
use rusqlite::{params, params_from_iter, Connection, Row};

use super::filters::Where;
use super::messages::{decode, insert, RawRow};
use crate::rows::parse_header;
use crate::{
    AttemptResponse, DlqDeleted, DlqEntry, DlqOrder, DlqPage, DlqQuery, DlqRetry, NewMessage,
    Result,
};

const SELECT: &str = "SELECT d.dlq_id, d.created_at, d.response_status, d.response_header,
        d.response_body, d.error,
        m.id, m.user_id, m.state, m.due_at, m.created_at, m.not_before, m.retried, m.spec, m.body";

pub fn list(conn: &Connection, user_id: &str, q: &DlqQuery) -> Result<DlqPage> {
    let f = &q.filter;
    let mut w = Where::default();
    let user = w.arg(user_id.to_string());
    w.push(format!("d.user_id = {user} AND m.id = d.message_id"));
    // Ids name the rows directly; otherwise walk the user's entries in order.
    let from = if f.dlq_ids.is_empty() && f.message_id.is_empty() {
        "dlq d INDEXED BY dlq_order"
    } else {
        "dlq d"
    };
    w.any_of("d.dlq_id", &f.dlq_ids);
    w.any_of("d.message_id", &f.message_id);
    let after = match q.order {
        DlqOrder::EarliestFirst => ">",
        DlqOrder::LatestFirst => "<",
    };
    if let Some(c) = &q.cursor {
        let (t, id) = (w.arg(c.created_at), w.arg(c.dlq_id.clone()));
        w.push(format!(
            "d.created_at {after}= {t} AND (d.created_at {after} {t} OR d.dlq_id {after} {id})"
        ));
    }
    if let Some(from) = f.from_date {
        let from = w.arg(from);
        w.push(format!("d.created_at >= {from}"));
    }
    if let Some(to) = f.to_date {
        let to = w.arg(to);
        w.push(format!("d.created_at <= {to}"));
    }
    w.any_of("m.url", &f.url);
    w.any_of("m.topic_name", &f.topic_name);
    w.any_of("m.queue_name", &f.queue_name);
    w.any_of("m.schedule_id", &f.schedule_id);
    w.any_of("m.flow_control_key", &f.flow_control_key);
    w.any_of("m.caller_ip", &f.caller_ip);
    w.any_label("m.labels", &f.label);
    workflow_filters(&mut w, f);
    let statuses: Vec<i64> = f.response_status.iter().map(|s| *s as i64).collect();
    w.any_of("d.response_status", &statuses);
    let dir = match q.order {
        DlqOrder::EarliestFirst => "ASC",
        DlqOrder::LatestFirst => "DESC",
    };
    let sql = format!(
        "{SELECT} FROM {from} CROSS JOIN messages m WHERE {}
         ORDER BY d.created_at {dir}, d.dlq_id {dir} LIMIT {}",
        w.sql(),
        q.count + 1
    );
    let rows = conn
        .prepare_cached(&sql)?
        .query_map(params_from_iter(w.args), read_entry)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let more = rows.len() > q.count;
    let entries = rows
        .into_iter()
        .take(q.count)
        .map(RawEntry::decode)
        .collect::<Result<Vec<_>>>()?;
    let cursor = more
        .then(|| entries.last().map(|e| e.dlq_id.clone()))
        .flatten();
    Ok(DlqPage { entries, cursor })
}

pub fn get(conn: &Connection, user_id: &str, dlq_id: &str) -> Result<Option<DlqEntry>> {
    let sql = format!(
        "{SELECT} FROM dlq d CROSS JOIN messages m
         WHERE d.dlq_id = ?1 AND d.user_id = ?2 AND m.id = d.message_id"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query_map(params![dlq_id, user_id], read_entry)?;
    rows.next().transpose()?.map(RawEntry::decode).transpose()
}

pub fn delete(conn: &Connection, user_id: &str, q: &DlqQuery) -> Result<DlqDeleted> {
    let page = list(conn, user_id, q)?;
    let mut stmt = conn.prepare_cached("DELETE FROM dlq WHERE dlq_id = ?1 AND user_id = ?2")?;
    let mut deleted = 0;
    for e in &page.entries {
        deleted += stmt.execute(params![e.dlq_id, user_id])? as u64;
    }
    Ok(DlqDeleted {
        deleted,
        cursor: page.cursor,
    })
}

pub fn retry(
    conn: &super::Tx,
    user_id: &str,
    retries: &[DlqRetry],
    now: Millis,
) -> Result<Vec<Option<String>>> {
    let mut out = Vec::with_capacity(retries.len());
    for r in retries {
        let removed = conn
            .prepare_cached("DELETE FROM dlq WHERE dlq_id = ?1 AND user_id = ?2")?
            .execute(params![r.dlq_id, user_id])?;
        if removed == 0 {
            out.push(None);
            continue;
        }
        let inserted = insert(conn, std::slice::from_ref::<NewMessage>(&r.message), now)?;
        out.push(inserted.first().map(|i| i.id().to_string()));
    }
    Ok(out)
}

/// DLQ entries past their retention, and failed messages that are no
/// longer in the DLQ and past the log retention.
pub fn purge(conn: &Connection, log_before: Millis, dlq_before: Millis) -> Result<u64> {
    let entries = conn.execute("DELETE FROM dlq WHERE created_at < ?1", [dlq_before])?;
    let messages = conn.execute(
        "DELETE FROM messages WHERE state = 'failed' AND updated_at < ?1
           AND NOT EXISTS (SELECT 1 FROM dlq WHERE dlq.message_id = messages.id)",
        [log_before],
    )?;
    Ok((entries + messages) as u64)
}

struct RawEntry {
    dlq_id: String,
    created_at: Millis,
    status: u16,
    header: String,
    body: Vec<u8>,
    error: Option<String>,
    message: RawRow,
}

fn read_entry(r: &Row) -> rusqlite::Result<RawEntry> {
    Ok(RawEntry {
        dlq_id: r.get(0)?,
        created_at: r.get(1)?,
        status: r.get(2)?,
        header: r.get(3)?,
        body: r.get(4)?,
        error: r.get(5)?,
        message: (
            r.get(6)?,
            r.get(7)?,
            r.get(8)?,
            r.get(9)?,
            r.get(10)?,
            r.get(11)?,
            r.get(12)?,
            r.get(13)?,
            r.get(14)?,
        ),
    })
}

impl RawEntry {
    fn decode(self) -> Result<DlqEntry> {
        Ok(DlqEntry {
            dlq_id: self.dlq_id,
            created_at: self.created_at,
            response: AttemptResponse {
                status: self.status,
                header: parse_header(Some(&self.header))?,
                body: self.body,
            },
            error: self.error,
            message: decode(self.message)?,
        })
    }
}

/// The workflow filters of `client.dlq.list` (`@upstash/workflow`), read
/// from the workflow tag of the message's spec; the creation time is the
/// run's, found by its primary key.
fn workflow_filters(w: &mut super::filters::Where, f: &qstash_core::dlq::DlqFilter) {
    const RUN_ID: &str = "json_extract(m.spec, '$.workflow.runId')";
    if f.workflow_only {
        w.push("json_extract(m.spec, '$.workflow') IS NOT NULL".into());
    }
    w.any_of(RUN_ID, &f.workflow_run_id);
    if let Some(at) = f.workflow_created_at {
        let at = w.arg(at);
        w.push(format!(
            "EXISTS (SELECT 1 FROM workflow_runs r WHERE r.user_id = m.user_id AND r.run_id = {RUN_ID} AND r.created_at = {at})"
        ));
    }
}
