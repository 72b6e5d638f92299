//! URL groups, queues, flow-control keys, and the dispatch gate's reads
//! and claims. Queued and flow-controlled messages are kept out of the
//! plain due-time index: each queue and key has its own indexed line, and
//! the engine's gate decides when the head of a line may start.

use qstash_core::clock::Millis;
use qstash_core::gate::KeyLimits;
use qstash_core::url_group::{remove_endpoints, upsert_endpoints, Endpoint, EndpointRef};
use qstash_core::{Message, MessageState};
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::messages::{self, RawRow};
use super::statements::Prepare;
use super::Tx;
use crate::{
    CancelRequest, Candidate, FlowKey, FlowKeyChange, GateClaim, GateConfig, GateLook, GateRef,
    GateSnapshot, GateView, MessageFilter, QueueInfo, Result, StoreError, UrlGroup,
};

/// Called for every inserted message, in its transaction: an enqueue
/// creates its queue, and a flow-controlled message creates or updates
/// its key (the latest message's limits win unless pinned).
pub fn on_insert(conn: &Connection, m: &Message, now: Millis) -> Result<()> {
    if let Some(queue) = &m.spec.queue_name {
        conn.prepare_cached(
            "INSERT OR IGNORE INTO queues (user_id, name, parallelism, paused, created_at, updated_at)
             VALUES (?1, ?2, 1, 0, ?3, ?3)",
        )?
        .execute(params![m.user_id, queue, now])?;
    }
    if let Some(fc) = &m.spec.flow_control {
        let mut key = load_key(conn, &m.user_id, &fc.key)?
            .unwrap_or_else(|| new_key(&m.user_id, &fc.key, now));
        key.limits.apply_message(fc);
        key.updated_at = now;
        save_key(conn, &key)?;
    }
    Ok(())
}

fn new_key(user_id: &str, key: &str, now: Millis) -> FlowKey {
    FlowKey {
        user_id: user_id.into(),
        key: key.into(),
        limits: KeyLimits::default(),
        paused: false,
        rate_reset_at: 0,
        created_at: now,
        updated_at: now,
    }
}

const KEY_COLUMNS: &str = "user_id, key, parallelism, rate, period, pinned_parallelism, pinned_rate, paused, rate_reset_at, created_at, updated_at";

fn read_key(r: &Row) -> rusqlite::Result<FlowKey> {
    Ok(FlowKey {
        user_id: r.get(0)?,
        key: r.get(1)?,
        limits: KeyLimits {
            parallelism: r.get(2)?,
            rate: r.get(3)?,
            period_secs: r.get::<_, i64>(4)? as u64,
            pinned_parallelism: r.get(5)?,
            pinned_rate: r.get(6)?,
        },
        paused: r.get(7)?,
        rate_reset_at: r.get(8)?,
        created_at: r.get(9)?,
        updated_at: r.get(10)?,
    })
}

pub fn load_key(conn: &Connection, user_id: &str, key: &str) -> Result<Option<FlowKey>> {
    let sql =
        format!("SELECT {KEY_COLUMNS} FROM flow_control_keys WHERE user_id = ?1 AND key = ?2");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params![user_id, key], read_key)
        .optional()?)
}

fn save_key(conn: &Connection, k: &FlowKey) -> Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO flow_control_keys (user_id, key, parallelism, rate, period, pinned_parallelism,
            pinned_rate, paused, rate_reset_at, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        k.user_id,
        k.key,
        k.limits.parallelism,
        k.limits.rate,
        k.limits.period_secs as i64,
        k.limits.pinned_parallelism,
        k.limits.pinned_rate,
        k.paused,
        k.rate_reset_at,
        k.created_at,
        k.updated_at
    ])?;
    Ok(())
}

/// Messages waiting on a key (not counting queued ones, which wait on
/// their queue).
fn wait_list_size(conn: &Connection, user_id: &str, key: &str) -> Result<u64> {
    Ok(conn
        .prepare_cached(
            "SELECT COUNT(*) FROM messages WHERE user_id = ?1 AND flow_control_key = ?2
             AND flow_control_key IS NOT NULL AND queue_name IS NULL AND state = 'pending'",
        )?
        .query_row(params![user_id, key], |r| r.get::<_, i64>(0))? as u64)
}

pub fn flow_key(conn: &Connection, user_id: &str, key: &str) -> Result<Option<(FlowKey, u64)>> {
    match load_key(conn, user_id, key)? {
        Some(k) => Ok(Some((k, wait_list_size(conn, user_id, key)?))),
        None => Ok(None),
    }
}

pub fn flow_keys(conn: &Connection, user_id: &str) -> Result<Vec<(FlowKey, u64)>> {
    let sql =
        format!("SELECT {KEY_COLUMNS} FROM flow_control_keys WHERE user_id = ?1 ORDER BY key");
    let keys: Vec<FlowKey> = conn
        .prepare_cached(&sql)?
        .query_map([user_id], read_key)?
        .collect::<rusqlite::Result<_>>()?;
    keys.into_iter()
        .map(|k| {
            let n = wait_list_size(conn, user_id, &k.key)?;
            Ok((k, n))
        })
        .collect()
}

pub fn change_flow_key(
    conn: &Connection,
    user_id: &str,
    key: &str,
    change: &FlowKeyChange,
    now: Millis,
) -> Result<FlowKey> {
    let mut k = load_key(conn, user_id, key)?.unwrap_or_else(|| new_key(user_id, key, now));
    let reset = |k: &mut FlowKey| -> Result<()> {
        k.rate_reset_at = now;
        conn.prepare_cached("DELETE FROM flow_control_starts WHERE user_id = ?1 AND key = ?2")?
            .execute(params![user_id, key])?;
        Ok(())
    };
    match change {
        FlowKeyChange::Pause => k.paused = true,
        FlowKeyChange::Resume => k.paused = false,
        FlowKeyChange::Pin {
            parallelism,
            rate,
            period_secs,
        } => {
            k.limits.pin(*parallelism, *rate, *period_secs);
            reset(&mut k)?;
        }
        FlowKeyChange::Unpin { parallelism, rate } => k.limits.unpin(*parallelism, *rate),
        FlowKeyChange::ResetRate => reset(&mut k)?,
    }
    k.updated_at = now;
    save_key(conn, &k)?;
    Ok(k)
}

// --- URL groups ---

fn read_group(r: &Row) -> rusqlite::Result<(String, Millis, Millis, String)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn decode_group(row: (String, Millis, Millis, String)) -> Result<UrlGroup> {
    let (name, created_at, updated_at, endpoints) = row;
    let endpoints = serde_json::from_str(&endpoints)
        .map_err(|e| StoreError::Corrupt(format!("url group {name}: {e}")))?;
    Ok(UrlGroup {
        name,
        created_at,
        updated_at,
        endpoints,
    })
}

pub fn url_group(conn: &Connection, user_id: &str, name: &str) -> Result<Option<UrlGroup>> {
    conn.prepare_cached(
        "SELECT name, created_at, updated_at, endpoints FROM url_groups WHERE user_id = ?1 AND name = ?2",
    )?
    .query_row(params![user_id, name], read_group)
    .optional()?
    .map(decode_group)
    .transpose()
}

pub fn url_groups(conn: &Connection, user_id: &str) -> Result<Vec<UrlGroup>> {
    let rows: Vec<_> = conn
        .prepare_cached(
            "SELECT name, created_at, updated_at, endpoints FROM url_groups WHERE user_id = ?1 ORDER BY name",
        )?
        .query_map([user_id], read_group)?
        .collect::<rusqlite::Result<_>>()?;
    rows.into_iter().map(decode_group).collect()
}

fn save_group(conn: &Connection, user_id: &str, g: &UrlGroup) -> Result<()> {
    let endpoints =
        serde_json::to_string(&g.endpoints).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    conn.prepare_cached(
        "INSERT OR REPLACE INTO url_groups (user_id, name, created_at, updated_at, endpoints)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        user_id,
        g.name,
        g.created_at,
        g.updated_at,
        endpoints
    ])?;
    Ok(())
}

pub fn upsert_group_endpoints(
    conn: &Connection,
    user_id: &str,
    name: &str,
    endpoints: Vec<Endpoint>,
    now: Millis,
) -> Result<()> {
    let mut g = url_group(conn, user_id, name)?.unwrap_or(UrlGroup {
        name: name.into(),
        created_at: now,
        updated_at: now,
        endpoints: vec![],
    });
    upsert_endpoints(&mut g.endpoints, endpoints);
    g.updated_at = now;
    save_group(conn, user_id, &g)
}

pub fn remove_group_endpoints(
    conn: &Connection,
    user_id: &str,
    name: &str,
    refs: &[EndpointRef],
    now: Millis,
) -> Result<bool> {
    let Some(mut g) = url_group(conn, user_id, name)? else {
        return Ok(false);
    };
    remove_endpoints(&mut g.endpoints, refs);
    if g.endpoints.is_empty() {
        delete_group(conn, user_id, name)?;
    } else {
        g.updated_at = now;
        save_group(conn, user_id, &g)?;
    }
    Ok(true)
}

pub fn delete_group(conn: &Connection, user_id: &str, name: &str) -> Result<bool> {
    super::url_group_headers::forget(conn, user_id, name)?;
    Ok(conn.execute(
        "DELETE FROM url_groups WHERE user_id = ?1 AND name = ?2",
        params![user_id, name],
    )? > 0)
}

// --- queues ---

fn lag(conn: &Connection, user_id: &str, name: &str) -> Result<u64> {
    Ok(conn
        .prepare_cached(
            "SELECT COUNT(*) FROM messages WHERE user_id = ?1 AND queue_name = ?2
             AND queue_name IS NOT NULL AND state IN ('pending', 'active')",
        )?
        .query_row(params![user_id, name], |r| r.get::<_, i64>(0))? as u64)
}

type QueueRow = (String, u32, bool, Millis, Millis);

fn read_queue(r: &Row) -> rusqlite::Result<QueueRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

fn queue_info(conn: &Connection, user_id: &str, row: QueueRow) -> Result<QueueInfo> {
    let (name, parallelism, paused, created_at, updated_at) = row;
    let lag = lag(conn, user_id, &name)?;
    Ok(QueueInfo {
        name,
        parallelism,
        paused,
        created_at,
        updated_at,
        lag,
    })
}

pub fn queue(conn: &Connection, user_id: &str, name: &str) -> Result<Option<QueueInfo>> {
    conn.prepare_cached(
        "SELECT name, parallelism, paused, created_at, updated_at FROM queues WHERE user_id = ?1 AND name = ?2",
    )?
    .query_row(params![user_id, name], read_queue)
    .optional()?
    .map(|row| queue_info(conn, user_id, row))
    .transpose()
}

pub fn queues(conn: &Connection, user_id: &str) -> Result<Vec<QueueInfo>> {
    let rows: Vec<QueueRow> = conn
        .prepare_cached(
            "SELECT name, parallelism, paused, created_at, updated_at FROM queues WHERE user_id = ?1 ORDER BY name",
        )?
        .query_map([user_id], read_queue)?
        .collect::<rusqlite::Result<_>>()?;
    rows.into_iter()
        .map(|row| queue_info(conn, user_id, row))
        .collect()
}

pub fn upsert_queue(
    conn: &Connection,
    user_id: &str,
    name: &str,
    parallelism: u32,
    paused: bool,
    now: Millis,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO queues (user_id, name, parallelism, paused, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)
         ON CONFLICT (user_id, name) DO UPDATE SET parallelism = ?3, paused = ?4, updated_at = ?5",
    )?
    .execute(params![user_id, name, parallelism, paused, now])?;
    Ok(())
}

pub fn set_queue_paused(
    conn: &Connection,
    user_id: &str,
    name: &str,
    paused: bool,
    now: Millis,
) -> Result<bool> {
    Ok(conn.execute(
        "UPDATE queues SET paused = ?3, updated_at = ?4 WHERE user_id = ?1 AND name = ?2",
        params![user_id, name, paused, now],
    )? > 0)
}

pub fn delete_queue(
    conn: &Connection,
    user_id: &str,
    name: &str,
    now: Millis,
) -> Result<Option<u64>> {
    let deleted = conn.execute(
        "DELETE FROM queues WHERE user_id = ?1 AND name = ?2",
        params![user_id, name],
    )?;
    if deleted == 0 {
        return Ok(None);
    }
    let request = CancelRequest {
        filter: MessageFilter {
            queue_name: vec![name.into()],
            ..Default::default()
        },
        ..Default::default()
    };
    Ok(Some(
        messages::cancel(conn, user_id, &request, now)?.cancelled,
    ))
}

// --- the gate ---

pub fn gate_snapshot(conn: &Connection, now: Millis) -> Result<GateSnapshot> {
    let queues = conn
        .prepare("SELECT user_id, name FROM queues")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let sql = format!("SELECT {KEY_COLUMNS} FROM flow_control_keys");
    let keys: Vec<FlowKey> = conn
        .prepare(&sql)?
        .query_map([], read_key)?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = Vec::with_capacity(keys.len());
    for k in keys {
        let starts = match k.limits.rate {
            Some(rate) => conn
                .prepare_cached(
                    "SELECT at FROM flow_control_starts WHERE user_id = ?1 AND key = ?2 AND at > ?3 AND at >= ?4
                     ORDER BY at DESC LIMIT ?5",
                )?
                .query_map(
                    params![k.user_id, k.key, now - k.limits.period_ms(), k.rate_reset_at, rate],
                    |r| r.get(0),
                )?
                .collect::<rusqlite::Result<_>>()?,
            None => vec![],
        };
        out.push((k, starts));
    }
    Ok(GateSnapshot { queues, keys: out })
}

pub fn gate_views(conn: &Connection, looks: &[GateLook]) -> Result<Vec<GateView>> {
    looks.iter().map(|look| gate_view(conn, look)).collect()
}

fn gate_view(conn: &Connection, look: &GateLook) -> Result<GateView> {
    match &look.gate {
        GateRef::Queue { user_id, name } => {
            let config: Option<(u32, bool)> = conn
                .prepare_cached(
                    "SELECT parallelism, paused FROM queues WHERE user_id = ?1 AND name = ?2",
                )?
                .query_row(params![user_id, name], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            // A queue whose row is gone (deleted) still drains in order.
            let (parallelism, paused) = config.unwrap_or((1, false));
            let candidates = if paused {
                vec![]
            } else {
                conn.prepare_cached(
                    "SELECT id, state, due_at, flow_control_key FROM messages
                     WHERE user_id = ?1 AND queue_name = ?2 AND queue_name IS NOT NULL
                       AND state IN ('pending', 'active')
                     ORDER BY rowid LIMIT ?3",
                )?
                .query_map(params![user_id, name, parallelism], |r| {
                    Ok(Candidate {
                        id: r.get(0)?,
                        active: r.get::<_, String>(1)? == MessageState::Active.as_str(),
                        due_at: r.get(2)?,
                        flow_control_key: r.get(3)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?
            };
            Ok(GateView {
                gate: look.gate.clone(),
                config: Some(GateConfig::Queue {
                    parallelism,
                    paused,
                }),
                candidates,
            })
        }
        GateRef::Key { user_id, key } => {
            let Some(k) = load_key(conn, user_id, key)? else {
                return Ok(GateView {
                    gate: look.gate.clone(),
                    config: None,
                    candidates: vec![],
                });
            };
            let room = k
                .limits
                .parallelism
                .map_or(u32::MAX, |p| p.saturating_sub(look.in_flight))
                .min(look.cap);
            let candidates = if k.paused || room == 0 {
                vec![]
            } else {
                conn.prepare_cached(
                    "SELECT id, due_at FROM messages
                     WHERE user_id = ?1 AND flow_control_key = ?2 AND flow_control_key IS NOT NULL
                       AND queue_name IS NULL AND state = 'pending'
                     ORDER BY due_at, rowid LIMIT ?3",
                )?
                .query_map(params![user_id, key, room], |r| {
                    Ok(Candidate {
                        id: r.get(0)?,
                        active: false,
                        due_at: r.get(1)?,
                        flow_control_key: None,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?
            };
            Ok(GateView {
                gate: look.gate.clone(),
                config: Some(GateConfig::Key(k)),
                candidates,
            })
        }
    }
}

/// Claims the messages the gates let through; answers their rows
/// undecoded, so their JSON is parsed off the writer thread
/// (`messages::decode`).
pub fn claim_gated(conn: &Tx, claims: &[GateClaim], now: Millis) -> Result<Vec<RawRow>> {
    let mut out = Vec::with_capacity(claims.len());
    for c in claims {
        let Some(raw) = messages::claim_one(conn, &c.message_id, now)? else {
            continue;
        };
        if let Some((user_id, key, forget_before)) = &c.rate_start {
            conn.with_statement(
                "INSERT INTO flow_control_starts (user_id, key, at) VALUES (?1, ?2, ?3)",
                |s| Ok(s.execute(params![user_id, key, now])?),
            )?;
            conn.with_statement(
                "DELETE FROM flow_control_starts WHERE user_id = ?1 AND key = ?2 AND at <= ?3",
                |s| Ok(s.execute(params![user_id, key, forget_before])?),
            )?;
        }
        out.push(raw);
    }
    Ok(out)
}
