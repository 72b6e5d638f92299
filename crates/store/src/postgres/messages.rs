//! Message rows: inserting them in bulk (with their dedup keys, queues,
//! flow-control keys and CREATED entries), recording outcomes in bulk,
//! claiming due messages, cancelling, and retention.

use std::collections::HashMap;

use deadpool_postgres::GenericClient;
use qstash_core::clock::Millis;
use qstash_core::dedup::WINDOW_MS;
use qstash_core::message::{
    Arrival, CancelRequest, CancelResult, Inserted, LogState, MessageFilter, NewMessage,
};
use qstash_core::outcome::Outcome;
use qstash_core::{Message, MessageState};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::events::Events;
use super::{gates, sql};
use crate::rows::{self, EventDetail, Head};
use crate::{PurgeCounts, Result};

/// The columns a [`Message`] is read from, in [`message_at`]'s order.
pub const COLUMNS: &str = "id, user_id, state, due_at, created_at, not_before, retried, spec, body";
/// Then the columns its log keys are built from, in [`keys_at`]'s order.
pub const KEY_COLUMNS: &str = "url, topic_name, queue_name, schedule_id, flow_control_key, labels";

/// The message whose [`COLUMNS`] start at column `at` of `r`.
pub fn message_at(r: &Row, at: usize) -> Result<Message> {
    rows::decode_message(
        r.try_get(at)?,
        r.try_get(at + 1)?,
        r.try_get(at + 2)?,
        r.try_get(at + 3)?,
        r.try_get(at + 4)?,
        r.try_get(at + 5)?,
        r.try_get::<_, i32>(at + 6)?.max(0) as u32,
        r.try_get(at + 7)?,
        r.try_get(at + 8)?,
    )
}

/// The log keys of the row whose [`KEY_COLUMNS`] start at column `at`.
pub fn keys_at(r: &Row, at: usize) -> Result<Vec<String>> {
    Ok(rows::keys_of_columns(
        r.try_get(at)?,
        r.try_get(at + 1)?,
        r.try_get(at + 2)?,
        r.try_get(at + 3)?,
        r.try_get(at + 4)?,
        r.try_get(at + 5)?,
    ))
}

/// Inserts messages (each with the time it was submitted), noting their
/// CREATED (and, when stored in flight, ACTIVE) entries in `events` and
/// the pending ones in `arrivals`. A message whose dedup key is live, or
/// that repeats the key of an earlier message of `items`, is not stored:
/// its answer names the message holding the key.
pub async fn insert<C: GenericClient>(
    c: &C,
    items: &[(&NewMessage, Millis)],
    node: &str,
    events: &mut Events,
    arrivals: &mut Vec<Arrival>,
) -> Result<Vec<Inserted>> {
    let (answers, columns) = prepare_insert(c, items, node, events, arrivals).await?;
    columns.write(c).await?;
    Ok(answers)
}

/// [`insert`] up to the message rows themselves, which it answers for the
/// caller to write (a group commit sends them with its other statements
/// at once). Dedup keys, queues and keys are written already.
pub async fn prepare_insert<'a, C: GenericClient>(
    c: &C,
    items: &[(&'a NewMessage, Millis)],
    node: &'a str,
    events: &mut Events,
    arrivals: &mut Vec<Arrival>,
) -> Result<(Vec<Inserted>, MessageColumns<'a>)> {
    let answers = dedup(c, items).await?;
    let fresh: Vec<(&Message, Millis)> = items
        .iter()
        .zip(&answers)
        .filter(|(_, a)| matches!(a, Inserted::New(_)))
        .map(|((new, now), _)| (&new.message, *now))
        .collect();
    let mut cols = MessageColumns::default();
    if fresh.is_empty() {
        return Ok((answers, cols));
    }
    gates::on_insert(c, &fresh).await?;
    for (m, now) in &fresh {
        let enc = rows::encode_one(m)?;
        cols.push(m, enc.spec, enc.labels, node);
        let none = EventDetail::default();
        events.push(
            &m.user_id,
            &m.id,
            &enc.keys,
            m.created_at,
            LogState::Created,
            &none,
        );
        // Stored already in flight: its delivery starts after the commit.
        if m.state == MessageState::Active {
            events.push(&m.user_id, &m.id, &enc.keys, *now, LogState::Active, &none);
        }
        arrivals.extend(Arrival::of(m));
    }
    Ok((answers, cols))
}

/// Message columns of a bulk insert.
#[derive(Default)]
pub struct MessageColumns<'a> {
    id: Vec<&'a str>,
    user_id: Vec<&'a str>,
    state: Vec<&'static str>,
    due_at: Vec<Millis>,
    created_at: Vec<Millis>,
    not_before: Vec<Millis>,
    retried: Vec<i32>,
    url: Vec<&'a str>,
    topic: Vec<Option<&'a str>>,
    queue: Vec<Option<&'a str>>,
    schedule: Vec<Option<&'a str>>,
    flow: Vec<Option<&'a str>>,
    caller_ip: Vec<Option<&'a str>>,
    labels: Vec<Option<String>>,
    spec: Vec<String>,
    body: Vec<&'a [u8]>,
    /// The node that delivers a message stored already in flight.
    claimed_by: Vec<Option<&'a str>>,
}

impl<'a> MessageColumns<'a> {
    fn push(&mut self, m: &'a Message, spec: String, labels: Option<String>, node: &'a str) {
        let s = &m.spec;
        self.claimed_by
            .push((m.state == MessageState::Active).then_some(node));
        self.id.push(&m.id);
        self.user_id.push(&m.user_id);
        self.state.push(m.state.as_str());
        self.due_at.push(m.due_at);
        self.created_at.push(m.created_at);
        self.not_before.push(m.not_before);
        self.retried.push(m.retried as i32);
        self.url.push(&s.url);
        self.topic.push(s.topic_name.as_deref());
        self.queue.push(s.queue_name.as_deref());
        self.schedule.push(s.schedule_id.as_deref());
        self.flow
            .push(s.flow_control.as_ref().map(|f| f.key.as_str()));
        self.caller_ip.push(s.caller_ip.as_deref());
        self.labels.push(labels);
        self.spec.push(spec);
        self.body.push(&m.body);
    }

    pub async fn write<C: GenericClient>(&self, c: &C) -> Result<()> {
        if self.id.is_empty() {
            return Ok(());
        }
        sql::execute(
            c,
            "INSERT INTO messages (id, user_id, state, due_at, created_at, not_before, retried,
                updated_at, url, topic_name, queue_name, schedule_id, flow_control_key, caller_ip,
                labels, spec, body, claimed_by)
             SELECT id, user_id, state, due_at, created_at, not_before, retried, created_at, url,
                topic, queue, schedule, flow, ip, labels, spec, body, claimed_by
             FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::int8[],
                $7::int4[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[],
                $13::text[], $14::text[], $15::text[], $16::bytea[], $17::text[])
             AS t(id, user_id, state, due_at, created_at, not_before, retried, url, topic, queue,
                schedule, flow, ip, labels, spec, body, claimed_by)",
            &[
                &self.id,
                &self.user_id,
                &self.state,
                &self.due_at,
                &self.created_at,
                &self.not_before,
                &self.retried,
                &self.url,
                &self.topic,
                &self.queue,
                &self.schedule,
                &self.flow,
                &self.caller_ip,
                &self.labels,
                &self.spec,
                &self.body,
                &self.claimed_by,
            ],
        )
        .await?;
        Ok(())
    }
}

/// Which of `items` are new and which repeat a live dedup key. The first
/// message of `items` with a key claims it (if no live entry holds it);
/// claims take the keys' rows in (user, key) order, so concurrent batches
/// never deadlock on them.
async fn dedup<C: GenericClient>(c: &C, items: &[(&NewMessage, Millis)]) -> Result<Vec<Inserted>> {
    let mut answers: Vec<Inserted> = items
        .iter()
        .map(|(n, _)| Inserted::New(n.message.id.clone()))
        .collect();
    // (user, key) -> index of the first message with it.
    let mut first: HashMap<(&str, &str), usize> = HashMap::new();
    for (i, (n, _)) in items.iter().enumerate() {
        let Some(key) = &n.dedup_key else { continue };
        match first.get(&(n.message.user_id.as_str(), key.as_str())) {
            Some(&j) => answers[i] = Inserted::Duplicate(items[j].0.message.id.clone()),
            None => {
                first.insert((&n.message.user_id, key), i);
            }
        }
    }
    if first.is_empty() {
        return Ok(answers);
    }
    let mut claims: Vec<((&str, &str), usize)> = first.into_iter().collect();
    claims.sort();
    let users: Vec<&str> = claims.iter().map(|((u, _), _)| *u).collect();
    let keys: Vec<&str> = claims.iter().map(|((_, k), _)| *k).collect();
    let ids: Vec<&str> = claims
        .iter()
        .map(|(_, i)| items[*i].0.message.id.as_str())
        .collect();
    let expires: Vec<Millis> = claims
        .iter()
        .map(|(_, i)| items[*i].1 + WINDOW_MS)
        .collect();
    // Every key comes back with the message that holds it now: ours when
    // the key was free or its entry expired (`expires_at - window` is the
    // claiming message's submit time), else the earlier holder. Taking the
    // row even to keep it is what makes a concurrent claim wait for ours.
    let holders = sql::query(
        c,
        "INSERT INTO dedup (user_id, key, message_id, expires_at)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[])
         ON CONFLICT (user_id, key) DO UPDATE SET
            message_id = CASE WHEN dedup.expires_at <= excluded.expires_at - $5
                THEN excluded.message_id ELSE dedup.message_id END,
            expires_at = CASE WHEN dedup.expires_at <= excluded.expires_at - $5
                THEN excluded.expires_at ELSE dedup.expires_at END
         RETURNING user_id, key, message_id",
        &[&users, &keys, &ids, &expires, &WINDOW_MS],
    )
    .await?;
    let index: HashMap<(&str, &str), usize> = claims.iter().map(|(k, i)| (*k, *i)).collect();
    for row in &holders {
        let (user, key, holder): (&str, &str, String) =
            (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        let Some(&i) = index.get(&(user, key)) else {
            continue;
        };
        if holder == items[i].0.message.id {
            continue;
        }
        // Held by an earlier message: so is every later one with the key.
        for (j, (n, _)) in items.iter().enumerate() {
            if n.message.user_id == user && n.dedup_key.as_deref() == Some(key) {
                answers[j] = Inserted::Duplicate(holder.clone());
            }
        }
    }
    Ok(answers)
}

/// Records outcomes: each message still in flight takes its transition
/// (state, log entries, DLQ row); the callbacks of applied outcomes are
/// answered (with the outcome's time) for the caller to insert in the same
/// transaction. Locks the messages in id order, so concurrent batches never
/// deadlock on them.
pub async fn record<'o, C: GenericClient>(
    c: &C,
    outcomes: &[&'o Outcome],
    events: &mut Events,
    arrivals: &mut Vec<Arrival>,
) -> Result<(Vec<(&'o NewMessage, Millis)>, Recorded)> {
    let mut ids: Vec<&str> = outcomes.iter().map(|o| o.message_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let sql = format!(
        "SELECT id, user_id, state, due_at, retried, {KEY_COLUMNS} FROM messages
         WHERE id = ANY($1) ORDER BY id FOR UPDATE"
    );
    let mut heads: HashMap<String, Head> = HashMap::new();
    for r in sql::query(c, &sql, &[&ids]).await? {
        let head = Head {
            id: r.try_get(0)?,
            user_id: r.try_get(1)?,
            state: r.try_get(2)?,
            due_at: r.try_get(3)?,
            retried: r.try_get::<_, i32>(4)?.max(0) as u32,
            queue: r.try_get(7)?,
            flow_control_key: r.try_get(9)?,
            keys: keys_at(&r, 5)?,
        };
        heads.insert(head.id.clone(), head);
    }
    let mut updates = Updates::default();
    let mut dlq = DlqRows::default();
    let mut failing = FailingRows::default();
    let mut callbacks = Vec::new();
    for o in outcomes {
        let Some(head) = heads.get_mut(&o.message_id) else {
            continue;
        };
        // Not in flight any more (cancelled, or recorded earlier in this
        // batch): the outcome and its callbacks are dropped.
        let Some(t) = rows::transition(head, o, &EventDetail::response(&o.response)) else {
            continue;
        };
        head.state = t.state.as_str().to_string();
        updates.push(&head.id, t.state, t.due_at, t.retried, o.at);
        for (state, detail) in &t.events {
            events.push(&head.user_id, &head.id, &head.keys, o.at, *state, detail);
        }
        if let Some(row) = t.dlq {
            if let Some(run_id) = &o.fails_run {
                failing.push(&head.user_id, run_id, &head.id, &row.error, o.at);
            }
            dlq.push(&head.user_id, &head.id, o.at, row);
        }
        arrivals.extend(t.arrival);
        callbacks.extend(o.callbacks.iter().map(|cb| (cb, o.at)));
    }
    Ok((
        callbacks,
        Recorded {
            updates,
            dlq,
            failing,
        },
    ))
}

/// What recording outcomes writes once the messages were read and locked:
/// their new states and DLQ rows, sent with a group's other statements.
#[derive(Default)]
pub struct Recorded {
    updates: Updates,
    dlq: DlqRows,
    failing: FailingRows,
}

impl Recorded {
    pub async fn write<C: GenericClient>(&self, c: &C) -> Result<()> {
        futures_util::try_join!(
            self.updates.write(c),
            self.dlq.write(c),
            self.failing.write(c)
        )?;
        Ok(())
    }
}

/// Workflow runs a step's final failure fails (`Outcome::fails_run`),
/// noted with its DLQ entry until the run is ended.
#[derive(Default)]
struct FailingRows {
    user_id: Vec<String>,
    run_id: Vec<String>,
    message_id: Vec<String>,
    error: Vec<String>,
    at: Vec<Millis>,
}

impl FailingRows {
    fn push(&mut self, user_id: &str, run_id: &str, id: &str, error: &str, at: Millis) {
        self.user_id.push(user_id.to_string());
        self.run_id.push(run_id.to_string());
        self.message_id.push(id.to_string());
        self.error.push(error.to_string());
        self.at.push(at);
    }

    async fn write<C: GenericClient>(&self, c: &C) -> Result<()> {
        if self.user_id.is_empty() {
            return Ok(());
        }
        sql::execute(
            c,
            "INSERT INTO workflow_failing (user_id, run_id, message_id, error, at)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[])
             ON CONFLICT DO NOTHING",
            &[
                &self.user_id,
                &self.run_id,
                &self.message_id,
                &self.error,
                &self.at,
            ],
        )
        .await?;
        Ok(())
    }
}

/// New states of messages, written with one statement.
#[derive(Default)]
struct Updates {
    id: Vec<String>,
    state: Vec<&'static str>,
    due_at: Vec<Millis>,
    retried: Vec<i32>,
    at: Vec<Millis>,
}

impl Updates {
    fn push(&mut self, id: &str, state: MessageState, due_at: Millis, retried: u32, at: Millis) {
        self.id.push(id.to_string());
        self.state.push(state.as_str());
        self.due_at.push(due_at);
        self.retried.push(retried as i32);
        self.at.push(at);
    }

    async fn write<C: GenericClient>(&self, c: &C) -> Result<()> {
        if self.id.is_empty() {
            return Ok(());
        }
        sql::execute(
            c,
            "UPDATE messages m SET state = u.state, due_at = u.due_at, retried = u.retried,
                updated_at = u.at, claimed_by = NULL
             FROM unnest($1::text[], $2::text[], $3::int8[], $4::int4[], $5::int8[])
                AS u(id, state, due_at, retried, at)
             WHERE m.id = u.id",
            &[&self.id, &self.state, &self.due_at, &self.retried, &self.at],
        )
        .await?;
        Ok(())
    }
}

/// DLQ entries of final failures, written with one statement.
#[derive(Default)]
struct DlqRows {
    dlq_id: Vec<String>,
    user_id: Vec<String>,
    message_id: Vec<String>,
    created_at: Vec<Millis>,
    status: Vec<i32>,
    header: Vec<String>,
    body: Vec<Vec<u8>>,
    error: Vec<String>,
}

impl DlqRows {
    fn push(&mut self, user_id: &str, id: &str, at: Millis, row: rows::DlqRow) {
        self.dlq_id.push(row.dlq_id);
        self.user_id.push(user_id.to_string());
        self.message_id.push(id.to_string());
        self.created_at.push(at);
        self.status.push(i32::from(row.status));
        self.header.push(row.header);
        self.body.push(row.body);
        self.error.push(row.error);
    }

    async fn write<C: GenericClient>(&self, c: &C) -> Result<()> {
        if self.dlq_id.is_empty() {
            return Ok(());
        }
        sql::execute(
            c,
            "INSERT INTO dlq (dlq_id, user_id, message_id, created_at, response_status,
                response_header, response_body, error)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::int4[],
                $6::text[], $7::bytea[], $8::text[])",
            &[
                &self.dlq_id,
                &self.user_id,
                &self.message_id,
                &self.created_at,
                &self.status,
                &self.header,
                &self.body,
                &self.error,
            ],
        )
        .await?;
        Ok(())
    }
}

pub async fn get<C: GenericClient>(c: &C, id: &str) -> Result<Option<Message>> {
    let sql = format!("SELECT {COLUMNS} FROM messages WHERE id = $1");
    sql::query_opt(c, &sql, &[&id])
        .await?
        .map(|r| message_at(&r, 0))
        .transpose()
}

/// When the earliest plain pending message is due: one step of the plain
/// due index.
pub const NEXT_DUE: &str = "SELECT MIN(due_at) FROM messages
    WHERE state = 'pending' AND queue_name IS NULL AND flow_control_key IS NULL";

/// The claim of due plain messages ($1 now, $2 limit, $3 the claiming
/// node), earliest first, skipping rows another claim holds.
pub fn claim_due_sql() -> String {
    format!(
        "UPDATE messages SET state = 'active', updated_at = $1, claimed_by = $3
         WHERE id IN (SELECT id FROM messages
             WHERE state = 'pending' AND queue_name IS NULL AND flow_control_key IS NULL
               AND due_at <= $1
             ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED)
         RETURNING {COLUMNS}, {KEY_COLUMNS}"
    )
}

/// Marks up to `limit` plain messages due by `now` in flight, earliest
/// first, skipping rows another claim holds, and logs them ACTIVE.
pub async fn claim_due<C: GenericClient>(
    c: &C,
    now: Millis,
    limit: usize,
    node: &str,
    events: &mut Events,
) -> Result<Vec<Message>> {
    let rows = sql::query(c, &claim_due_sql(), &[&now, &(limit as i64), &node]).await?;
    let mut claimed = Vec::with_capacity(rows.len());
    for r in &rows {
        let m = message_at(r, 0)?;
        let keys = keys_at(r, 9)?;
        let none = EventDetail::default();
        events.push(&m.user_id, &m.id, &keys, now, LogState::Active, &none);
        claimed.push(m);
    }
    claimed.sort_by_key(|m| m.due_at);
    Ok(claimed)
}

/// Marks the given pending messages in flight (skipping any that are no
/// longer pending) and logs them ACTIVE; answers those it marked.
pub async fn claim_ids<C: GenericClient>(
    c: &C,
    ids: &[&str],
    now: Millis,
    node: &str,
    events: &mut Events,
) -> Result<Vec<Message>> {
    let sql = format!(
        "UPDATE messages SET state = 'active', updated_at = $2, claimed_by = $3
         WHERE id = ANY($1) AND state = 'pending'
         RETURNING {COLUMNS}, {KEY_COLUMNS}"
    );
    let rows = sql::query(c, &sql, &[&ids, &now, &node]).await?;
    let mut claimed = Vec::with_capacity(rows.len());
    for r in &rows {
        let m = message_at(r, 0)?;
        let keys = keys_at(r, 9)?;
        let none = EventDetail::default();
        events.push(&m.user_id, &m.id, &keys, now, LogState::Active, &none);
        claimed.push(m);
    }
    Ok(claimed)
}

/// Cancels the user's live messages named by `req` (by ids, in the order
/// given, or by filter, oldest first), at most `count` of them.
pub async fn cancel<C: GenericClient>(
    c: &C,
    user_id: &str,
    req: &CancelRequest,
    now: Millis,
    events: &mut Events,
) -> Result<CancelResult> {
    // One more than `count`, to know whether more match.
    let ids = if req.message_ids.is_empty() {
        matching_live_ids(c, user_id, &req.filter, req.count.map(|n| n + 1)).await?
    } else {
        req.message_ids.clone()
    };
    // Locked in id order (two bulk cancels never wait on each other in a
    // circle), then put in the order asked for: `array_position` in SQL
    // was quadratic in the number of ids.
    let sql = format!(
        "SELECT {COLUMNS}, {KEY_COLUMNS} FROM messages
         WHERE id = ANY($1) AND user_id = $2 AND state IN ('pending', 'active')
         ORDER BY id FOR UPDATE"
    );
    let mut live = sql::query(c, &sql, &[&ids, &user_id]).await?;
    let position: std::collections::HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .rev()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    live.sort_by_cached_key(|r| {
        r.try_get::<_, &str>(0)
            .ok()
            .and_then(|id| position.get(id).copied())
            .unwrap_or(usize::MAX)
    });
    let limit = req.count.unwrap_or(usize::MAX);
    let mut cancelled: Vec<String> = Vec::new();
    for r in live.iter().take(limit) {
        let m = message_at(r, 0)?;
        let keys = keys_at(r, 9)?;
        let none = EventDetail::default();
        events.push(user_id, &m.id, &keys, now, LogState::CancelRequested, &none);
        events.push(user_id, &m.id, &keys, now, LogState::Canceled, &none);
        cancelled.push(m.id);
    }
    sql::execute(
        c,
        "UPDATE messages SET state = 'cancelled', updated_at = $2 WHERE id = ANY($1)",
        &[&cancelled, &now],
    )
    .await?;
    let more_after = (live.len() > cancelled.len())
        .then(|| cancelled.last().cloned())
        .flatten();
    Ok(CancelResult {
        cancelled: cancelled.len() as u64,
        more_after,
    })
}

/// Ids of the user's live messages matching `filter`, oldest first (in
/// the order they were stored), from the live walks of `live.rs`.
/// Delivered and cancelled messages kept for the logs are never read.
async fn matching_live_ids<C: GenericClient>(
    c: &C,
    user_id: &str,
    f: &MessageFilter,
    limit: Option<usize>,
) -> Result<Vec<String>> {
    let (pending, active, w) = super::live::selection(user_id, f, None);
    let limit = limit.map(|n| format!(" LIMIT {n}")).unwrap_or_default();
    let sql =
        format!("SELECT id, seq {pending} UNION ALL SELECT id, seq {active} ORDER BY seq{limit}");
    let rows = sql::query(c, &sql, &w.params()).await?;
    rows.iter()
        .map(|r| r.try_get(0).map_err(Into::into))
        .collect()
}

/// Returns to pending, due at once, the in-flight messages claimed by
/// `node` in an earlier run (its id is kept in its data directory) or by
/// no node (stored before claims were named). Other nodes' claims are
/// theirs until their lease lapses.
pub async fn release_in_flight<C: GenericClient>(
    c: &C,
    now: Millis,
    node: &str,
    arrivals: &mut Vec<Arrival>,
) -> Result<u64> {
    release(
        c,
        "state = 'active' AND (claimed_by = $2 OR claimed_by IS NULL)",
        now,
        node,
        None,
        arrivals,
    )
    .await
}

/// Returns the in-flight messages matching `which` ($2 is `node`, $3
/// `lease_ms` when given) to pending, due at once, noting their arrivals.
pub async fn release<C: GenericClient>(
    c: &C,
    which: &str,
    now: Millis,
    node: &str,
    lease_ms: Option<i64>,
    arrivals: &mut Vec<Arrival>,
) -> Result<u64> {
    let sql = format!(
        "UPDATE messages SET state = 'pending', due_at = LEAST(due_at, $1), updated_at = $1,
            claimed_by = NULL
         WHERE {which}
         RETURNING user_id, due_at, queue_name, flow_control_key"
    );
    let rows = match lease_ms {
        Some(lease) => sql::query(c, &sql, &[&now, &node, &lease]).await?,
        None => sql::query(c, &sql, &[&now, &node]).await?,
    };
    for r in &rows {
        arrivals.push(Arrival {
            user_id: r.try_get(0)?,
            due_at: r.try_get(1)?,
            queue: r.try_get(2)?,
            flow_control_key: r.try_get(3)?,
        });
    }
    Ok(rows.len() as u64)
}

/// Rows deleted per statement by retention: short statements, so retention
/// never holds locks for long on a large table.
pub const PURGE_BATCH: i64 = 5000;

/// Expired dedup keys, and finished messages and log entries older than
/// `retain_before`, each in batches.
pub async fn purge<C: GenericClient>(
    c: &C,
    now: Millis,
    retain_before: Millis,
) -> Result<PurgeCounts> {
    let dedup = purge_batched(c, &dedup_batch_delete(), &[&now]).await?;
    let events = purge_events(c, retain_before).await?;
    let messages = purge_batched(c, &batch_delete(PURGE_FINISHED), &[&retain_before]).await?;
    Ok(PurgeCounts {
        messages,
        events,
        dedup,
    })
}

/// Drops log entries older than `before`, one user and state at a time
/// along the (user, state, time) index that the listing needs anyway (an
/// index on time alone would cost every event write). The users, and each
/// user's states, are found by skipping through the same index, one lookup
/// each.
async fn purge_events<C: GenericClient>(c: &C, before: Millis) -> Result<u64> {
    let mut purged = 0;
    let mut user = String::new();
    let delete = batch_delete(PURGE_LOG_STATE);
    loop {
        let next: Option<String> = sql::query_one(
            c,
            "SELECT MIN(user_id) FROM events WHERE user_id > $1",
            &[&user],
        )
        .await?
        .try_get(0)?;
        let Some(next) = next else {
            return Ok(purged);
        };
        let mut state = String::new();
        loop {
            let found: Option<String> = sql::query_one(c, NEXT_LOG_STATE, &[&next, &state])
                .await?
                .try_get(0)?;
            let Some(found) = found else { break };
            purged += purge_batched(c, &delete, &[&next, &found, &before]).await?;
            state = found;
        }
        user = next;
    }
}

/// The purge's step to a user's next log state. Public for the plan test.
pub const NEXT_LOG_STATE: &str = "SELECT MIN(state) FROM events WHERE user_id = $1 AND state > $2";

/// A user's entries in one state past retention (see [`batch_delete`]).
pub const PURGE_LOG_STATE: (&str, &str) =
    ("events", "t.user_id = $2 AND t.state = $3 AND t.time < $4");

/// Expired dedup keys (see [`batch_delete`]).
pub const PURGE_DEDUP: (&str, &str) = ("dedup", "t.expires_at <= $2");

/// Finished messages past retention (see [`batch_delete`]).
pub const PURGE_FINISHED: (&str, &str) = (
    "messages",
    "t.state IN ('delivered', 'cancelled') AND t.updated_at < $2",
);

/// A batch of a purge: up to `$1` rows of `table` (as `t`) that
/// `condition` selects (its arguments from `$2`), deleted by their `ctid`,
/// a TID scan. With `key IN (SELECT key ... LIMIT n)` the planner may hash
/// the batch and scan the whole table for it, once per batch
/// (`postgres_plans.rs` checks). The rows of these tables are not updated
/// once they match, so the row deleted is the row selected.
pub fn batch_delete((table, condition): (&str, &str)) -> String {
    format!(
        "DELETE FROM {table} t WHERE ctid = ANY(ARRAY(
            SELECT ctid FROM {table} t WHERE {condition} LIMIT $1))"
    )
}

/// The batch of expired dedup keys, with the condition checked again on
/// the row deleted: a publish may take over an expired key meanwhile
/// (`ON CONFLICT DO UPDATE`), and PostgreSQL then deletes the new version
/// of the row unless the condition says otherwise. Dedup keys are few
/// (they expire), so the planner may walk their expiry index instead.
pub fn dedup_batch_delete() -> String {
    format!("{} AND {}", batch_delete(PURGE_DEDUP), PURGE_DEDUP.1)
}

/// Runs a [`batch_delete`] with the condition's `args` until it deletes
/// less than a batch; answers how many rows went.
pub async fn purge_batched<C: GenericClient>(
    c: &C,
    sql: &str,
    args: &[&(dyn ToSql + Sync)],
) -> Result<u64> {
    let params: Vec<&(dyn ToSql + Sync)> = std::iter::once(&PURGE_BATCH as _)
        .chain(args.iter().copied())
        .collect();
    let mut total = 0;
    loop {
        let n = sql::execute(c, sql, &params).await?;
        total += n;
        if n < PURGE_BATCH as u64 {
            return Ok(total);
        }
    }
}
