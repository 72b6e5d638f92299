//! Schedule rows. The timer finds due schedules through the partial index
//! on `next_fire` (paused schedules have none), so schedules between their
//! ticks are never read. A fire inserts its messages and advances
//! `next_fire` in one job, guarded by the row's version: a tick commits
//! once, or not at all.

use qstash_core::clock::Millis;
use qstash_core::schedule::{CronExpr, Schedule};
use qstash_core::MessageState;
use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::rows::{catch_up as catch_up_one, fired_ids, ScheduleRow, SCHEDULE_COLUMNS};
use crate::sqlite::messages;
use crate::{CatchUp, DueCursor, DueSchedule, Result, ScheduleFire, ScheduleInfo, StoreError};

const COLUMNS: &str = SCHEDULE_COLUMNS;

/// Creates the schedule, or replaces every setting of the user's schedule
/// with that id. The creation time, the paused flag and the last fire's
/// record stay; a tick that is already due and not yet fired stays due, so
/// a replace never swallows it.
pub fn put(conn: &Connection, s: &Schedule, now: Millis) -> Result<Schedule> {
    let spec = serde_json::to_string(&s.spec).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    conn.prepare_cached(
        "INSERT INTO schedules (user_id, id, cron, destination, spec, body, queue_name, delay_secs,
            caller_ip, created_at, updated_at, version, paused, next_fire, last_fire, last_messages, last_error)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 1, ?12, ?13, NULL, '[]', NULL)
         ON CONFLICT (user_id, id) DO UPDATE SET
            cron = excluded.cron, destination = excluded.destination, spec = excluded.spec,
            body = excluded.body, queue_name = excluded.queue_name, delay_secs = excluded.delay_secs,
            caller_ip = excluded.caller_ip, updated_at = excluded.updated_at,
            version = schedules.version + 1,
            next_fire = CASE
                WHEN schedules.paused THEN NULL
                WHEN schedules.next_fire <= ?11 THEN schedules.next_fire
                ELSE excluded.next_fire END",
    )?
    .execute(params![
        s.user_id,
        s.id,
        s.cron,
        s.destination,
        spec,
        s.body,
        s.queue_name,
        s.delay_secs.map(|d| d as i64),
        s.caller_ip,
        s.created_at,
        now,
        s.paused,
        s.next_fire,
    ])?;
    get(conn, &s.user_id, &s.id)?
        .map(|d| d.schedule)
        .ok_or_else(|| StoreError::Corrupt(format!("schedule {} vanished", s.id)))
}

pub fn get(conn: &Connection, user_id: &str, id: &str) -> Result<Option<DueSchedule>> {
    let sql = format!("SELECT {COLUMNS} FROM schedules WHERE user_id = ?1 AND id = ?2");
    conn.prepare_cached(&sql)?
        .query_row(params![user_id, id], read_row)
        .optional()?
        .map(decode)
        .transpose()
}

pub fn list(conn: &Connection, user_id: &str) -> Result<Vec<ScheduleInfo>> {
    let sql = format!("SELECT {COLUMNS} FROM schedules WHERE user_id = ?1 ORDER BY created_at, id");
    let rows: Vec<ScheduleRow> = conn
        .prepare_cached(&sql)?
        .query_map([user_id], read_row)?
        .collect::<rusqlite::Result<_>>()?;
    rows.into_iter()
        .map(|r| info(conn, decode(r)?.schedule))
        .collect()
}

/// The schedule with the states of its last fire's messages.
pub fn info(conn: &Connection, schedule: Schedule) -> Result<ScheduleInfo> {
    let mut last_states = Vec::with_capacity(schedule.last_messages.len());
    let mut stmt = conn.prepare_cached("SELECT state FROM messages WHERE id = ?1")?;
    for id in &schedule.last_messages {
        let state: Option<String> = stmt.query_row([id], |r| r.get(0)).optional()?;
        if let Some(state) = state.as_deref().and_then(MessageState::parse) {
            last_states.push((id.clone(), state));
        }
    }
    Ok(ScheduleInfo {
        schedule,
        last_states,
    })
}

pub fn delete(conn: &Connection, user_id: &str, id: &str) -> Result<bool> {
    let n = conn.execute(
        "DELETE FROM schedules WHERE user_id = ?1 AND id = ?2",
        params![user_id, id],
    )?;
    Ok(n > 0)
}

/// Pauses, or resumes from the first tick after `now` (ticks that passed
/// while paused are not fired). None if there is no such schedule.
pub fn set_paused(
    conn: &Connection,
    user_id: &str,
    id: &str,
    paused: bool,
    now: Millis,
) -> Result<Option<Schedule>> {
    let Some(current) = get(conn, user_id, id)? else {
        return Ok(None);
    };
    let s = current.schedule;
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
    conn.prepare_cached(
        "UPDATE schedules SET paused = ?3, next_fire = ?4, updated_at = ?5, version = version + 1
         WHERE user_id = ?1 AND id = ?2",
    )?
    .execute(params![user_id, id, paused, next_fire, now])?;
    Ok(get(conn, user_id, id)?.map(|d| d.schedule))
}

pub fn next_fire_at(conn: &Connection) -> Result<Option<Millis>> {
    Ok(conn
        .prepare_cached("SELECT MIN(next_fire) FROM schedules WHERE next_fire IS NOT NULL")?
        .query_row([], |r| r.get(0))?)
}

pub fn due(
    conn: &Connection,
    now: Millis,
    after: Option<&DueCursor>,
    limit: usize,
) -> Result<Vec<DueSchedule>> {
    let (tick, user, id) = match after {
        Some(c) => (c.next_fire, c.user_id.as_str(), c.id.as_str()),
        None => (Millis::MIN, "", ""),
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM schedules WHERE next_fire IS NOT NULL AND next_fire <= ?1
            AND (next_fire, user_id, id) > (?2, ?3, ?4)
         ORDER BY next_fire, user_id, id LIMIT ?5"
    );
    let rows: Vec<ScheduleRow> = conn
        .prepare_cached(&sql)?
        .query_map(params![now, tick, user, id, limit as i64], read_row)?
        .collect::<rusqlite::Result<_>>()?;
    rows.into_iter().map(decode).collect()
}

/// Commits one tick: advances the schedule and inserts the tick's messages,
/// only if the schedule is still at the version and tick that were read.
/// Answers whether it fired.
pub fn fire(conn: &super::Tx, f: &ScheduleFire) -> Result<bool> {
    let last = fired_ids(f)?;
    let advanced = conn
        .prepare_cached(
            "UPDATE schedules SET next_fire = ?5, last_fire = ?6, last_messages = ?7, last_error = ?8
             WHERE user_id = ?1 AND id = ?2 AND version = ?3 AND next_fire = ?4",
        )?
        .execute(params![
            f.user_id,
            f.schedule_id,
            f.version,
            f.tick,
            f.next_fire,
            f.fired_at,
            last,
            f.error
        ])?;
    if advanced == 0 {
        return Ok(false);
    }
    messages::insert(conn, &f.messages, f.fired_at)?;
    Ok(true)
}

/// Start-up pass over schedules whose tick passed while the server was
/// down (only those: the due index is a range scan up to `now`).
pub fn catch_up(conn: &Connection, now: Millis, window: Millis) -> Result<CatchUp> {
    let missed: Vec<(String, String, String, Millis)> = conn
        .prepare(
            "SELECT user_id, id, cron, next_fire FROM schedules
             WHERE next_fire IS NOT NULL AND next_fire <= ?1",
        )?
        .query_map([now], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = CatchUp::default();
    let mut update = conn.prepare(
        "UPDATE schedules SET next_fire = ?3, version = version + 1 WHERE user_id = ?1 AND id = ?2",
    )?;
    for (user_id, id, cron, next_fire) in missed {
        let Some((resume, fires)) = catch_up_one(&cron, next_fire, now, window) else {
            continue;
        };
        if fires {
            out.firing += 1;
        } else {
            out.skipped += 1;
        }
        if resume != Some(next_fire) {
            update.execute(params![user_id, id, resume])?;
        }
    }
    Ok(out)
}

fn read_row(r: &Row) -> rusqlite::Result<ScheduleRow> {
    Ok(ScheduleRow {
        user_id: r.get(0)?,
        id: r.get(1)?,
        cron: r.get(2)?,
        destination: r.get(3)?,
        spec: r.get(4)?,
        body: r.get(5)?,
        queue_name: r.get(6)?,
        delay_secs: r.get(7)?,
        caller_ip: r.get(8)?,
        created_at: r.get(9)?,
        paused: r.get(10)?,
        next_fire: r.get(11)?,
        last_fire: r.get(12)?,
        last_messages: r.get(13)?,
        last_error: r.get(14)?,
        version: r.get(15)?,
    })
}

fn decode(row: ScheduleRow) -> Result<DueSchedule> {
    row.decode()
}
