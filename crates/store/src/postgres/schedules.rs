//! Schedule rows, as in `sqlite/schedules.rs`: the timer finds due ticks
//! through the partial index on `next_fire`, and a fire advances the
//! schedule and inserts its messages in one transaction, guarded by the
//! row's version and tick, so a tick commits once or not at all.

use deadpool_postgres::GenericClient;
use qstash_core::clock::Millis;
use qstash_core::message::Arrival;
use qstash_core::schedule::{
    CatchUp, CronExpr, DueCursor, DueSchedule, Schedule, ScheduleFire, ScheduleInfo,
};
use qstash_core::MessageState;
use tokio_postgres::Row;

use super::events::Events;
use super::{messages, sql};
use crate::rows::{self, fired_ids, ScheduleRow, SCHEDULE_COLUMNS};
use crate::{Result, StoreError};

fn read_row(r: &Row) -> Result<ScheduleRow> {
    Ok(ScheduleRow {
        user_id: r.try_get(0)?,
        id: r.try_get(1)?,
        cron: r.try_get(2)?,
        destination: r.try_get(3)?,
        spec: r.try_get(4)?,
        body: r.try_get(5)?,
        queue_name: r.try_get(6)?,
        delay_secs: r.try_get(7)?,
        caller_ip: r.try_get(8)?,
        created_at: r.try_get(9)?,
        paused: r.try_get(10)?,
        next_fire: r.try_get(11)?,
        last_fire: r.try_get(12)?,
        last_messages: r.try_get(13)?,
        last_error: r.try_get(14)?,
        version: r.try_get(15)?,
    })
}

fn decode(r: &Row) -> Result<DueSchedule> {
    read_row(r)?.decode()
}

/// Creates the schedule, or replaces every setting of the user's schedule
/// with that id (creation time, paused flag and last fire stay; a tick
/// already due and not yet fired stays due).
pub async fn put<C: GenericClient>(c: &C, s: &Schedule, now: Millis) -> Result<Schedule> {
    let spec = serde_json::to_string(&s.spec).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let delay = s.delay_secs.map(|d| d as i64);
    let sql = format!(
        "INSERT INTO schedules (user_id, id, cron, destination, spec, body, queue_name, delay_secs,
            caller_ip, created_at, updated_at, version, paused, next_fire, last_fire, last_messages,
            last_error)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 1, $12, $13, NULL, '[]', NULL)
         ON CONFLICT (user_id, id) DO UPDATE SET
            cron = excluded.cron, destination = excluded.destination, spec = excluded.spec,
            body = excluded.body, queue_name = excluded.queue_name,
            delay_secs = excluded.delay_secs, caller_ip = excluded.caller_ip,
            updated_at = excluded.updated_at, version = schedules.version + 1,
            next_fire = CASE
                WHEN schedules.paused THEN NULL
                WHEN schedules.next_fire <= $11 THEN schedules.next_fire
                ELSE excluded.next_fire END
         RETURNING {SCHEDULE_COLUMNS}"
    );
    let row = sql::query_one(
        c,
        &sql,
        &[
            &s.user_id,
            &s.id,
            &s.cron,
            &s.destination,
            &spec,
            &s.body,
            &s.queue_name,
            &delay,
            &s.caller_ip,
            &s.created_at,
            &now,
            &s.paused,
            &s.next_fire,
        ],
    )
    .await?;
    Ok(decode(&row)?.schedule)
}

pub async fn get<C: GenericClient>(c: &C, user_id: &str, id: &str) -> Result<Option<DueSchedule>> {
    let sql = format!("SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE user_id = $1 AND id = $2");
    sql::query_opt(c, &sql, &[&user_id, &id])
        .await?
        .map(|r| decode(&r))
        .transpose()
}

pub async fn list<C: GenericClient>(c: &C, user_id: &str) -> Result<Vec<ScheduleInfo>> {
    let sql = format!(
        "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE user_id = $1 ORDER BY created_at, id"
    );
    let mut out = Vec::new();
    for r in sql::query(c, &sql, &[&user_id]).await? {
        out.push(info(c, decode(&r)?.schedule).await?);
    }
    Ok(out)
}

/// The schedule with the states of its last fire's messages (those not
/// yet purged).
pub async fn info<C: GenericClient>(c: &C, schedule: Schedule) -> Result<ScheduleInfo> {
    let rows = sql::query(
        c,
        "SELECT id, state FROM messages WHERE id = ANY($1)",
        &[&schedule.last_messages],
    )
    .await?;
    let mut states = std::collections::HashMap::new();
    for r in &rows {
        let (id, state): (String, String) = (r.try_get(0)?, r.try_get(1)?);
        if let Some(state) = MessageState::parse(&state) {
            states.insert(id, state);
        }
    }
    let last_states = schedule
        .last_messages
        .iter()
        .filter_map(|id| states.get(id).map(|s| (id.clone(), *s)))
        .collect();
    Ok(ScheduleInfo {
        schedule,
        last_states,
    })
}

pub async fn delete<C: GenericClient>(c: &C, user_id: &str, id: &str) -> Result<bool> {
    Ok(sql::execute(
        c,
        "DELETE FROM schedules WHERE user_id = $1 AND id = $2",
        &[&user_id, &id],
    )
    .await?
        > 0)
}

/// Pauses, or resumes from the first tick after `now`; None if there is
/// no such schedule.
pub async fn set_paused<C: GenericClient>(
    c: &C,
    user_id: &str,
    id: &str,
    paused: bool,
    now: Millis,
) -> Result<Option<Schedule>> {
    let sql = format!(
        "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE user_id = $1 AND id = $2 FOR UPDATE"
    );
    let Some(row) = sql::query_opt(c, &sql, &[&user_id, &id]).await? else {
        return Ok(None);
    };
    let s = decode(&row)?.schedule;
    if s.paused == paused {
        return Ok(Some(s));
    }
    let next_fire = if paused {
        None
    } else {
        CronExpr::parse(&s.cron)
            .map_err(|e| StoreError::Corrupt(format!("schedule {id}: {e}")))?
            .next_after(now)
    };
    let sql = format!(
        "UPDATE schedules SET paused = $3, next_fire = $4, updated_at = $5, version = version + 1
         WHERE user_id = $1 AND id = $2 RETURNING {SCHEDULE_COLUMNS}"
    );
    let row = sql::query_one(c, &sql, &[&user_id, &id, &paused, &next_fire, &now]).await?;
    Ok(Some(decode(&row)?.schedule))
}

pub async fn next_fire_at<C: GenericClient>(c: &C) -> Result<Option<Millis>> {
    Ok(sql::query_one(
        c,
        "SELECT MIN(next_fire) FROM schedules WHERE next_fire IS NOT NULL",
        &[],
    )
    .await?
    .try_get(0)?)
}

pub async fn due<C: GenericClient>(
    c: &C,
    now: Millis,
    after: Option<&DueCursor>,
    limit: usize,
) -> Result<Vec<DueSchedule>> {
    let (tick, user, id) = match after {
        Some(a) => (a.next_fire, a.user_id.as_str(), a.id.as_str()),
        None => (Millis::MIN, "", ""),
    };
    let sql = format!(
        "SELECT {SCHEDULE_COLUMNS} FROM schedules
         WHERE next_fire IS NOT NULL AND next_fire <= $1 AND (next_fire, user_id, id) > ($2, $3, $4)
         ORDER BY next_fire, user_id, id LIMIT $5"
    );
    sql::query(c, &sql, &[&now, &tick, &user, &id, &(limit as i64)])
        .await?
        .iter()
        .map(decode)
        .collect()
}

/// Commits one tick: advances the schedule and inserts the tick's messages,
/// only if the schedule is still at the version and tick that were read.
pub async fn fire<C: GenericClient>(
    c: &C,
    f: &ScheduleFire,
    events: &mut Events,
    arrivals: &mut Vec<Arrival>,
) -> Result<bool> {
    let last = fired_ids(f)?;
    let advanced = sql::execute(
        c,
        "UPDATE schedules SET next_fire = $5, last_fire = $6, last_messages = $7, last_error = $8
         WHERE user_id = $1 AND id = $2 AND version = $3 AND next_fire = $4",
        &[
            &f.user_id,
            &f.schedule_id,
            &f.version,
            &f.tick,
            &f.next_fire,
            &f.fired_at,
            &last,
            &f.error,
        ],
    )
    .await?;
    if advanced == 0 {
        return Ok(false);
    }
    let items: Vec<_> = f.messages.iter().map(|m| (m, f.fired_at)).collect();
    messages::insert(c, &items, events, arrivals).await?;
    Ok(true)
}

/// Start-up pass over schedules whose tick passed while no node ran.
pub async fn catch_up<C: GenericClient>(c: &C, now: Millis, window: Millis) -> Result<CatchUp> {
    let missed = sql::query(
        c,
        "SELECT user_id, id, cron, next_fire FROM schedules
         WHERE next_fire IS NOT NULL AND next_fire <= $1 FOR UPDATE",
        &[&now],
    )
    .await?;
    let mut out = CatchUp::default();
    for r in &missed {
        let (user_id, id, cron, next_fire): (String, String, String, Millis) =
            (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?);
        let Some((resume, fires)) = rows::catch_up(&cron, next_fire, now, window) else {
            continue;
        };
        if fires {
            out.firing += 1;
        } else {
            out.skipped += 1;
        }
        if resume != Some(next_fire) {
            sql::execute(
                c,
                "UPDATE schedules SET next_fire = $3, version = version + 1
                 WHERE user_id = $1 AND id = $2",
                &[&user_id, &id, &resume],
            )
            .await?;
        }
    }
    Ok(out)
}
