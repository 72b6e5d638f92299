//! URL groups, queues, flow-control keys, and the dispatch gate's reads
//! and claims, as in `sqlite/gates.rs`: queued and flow-controlled
//! messages wait in their own indexed lines, never in the plain due index.

use std::collections::BTreeMap;

use deadpool_postgres::GenericClient;
use qstash_core::clock::Millis;
use qstash_core::flow_control::{FlowKey, FlowKeyChange};
use qstash_core::gate::{
    Candidate, GateClaim, GateConfig, GateLook, GateRef, GateSnapshot, GateView, KeyLimits,
};
use qstash_core::message::{CancelRequest, MessageFilter};
use qstash_core::queue::QueueInfo;
use qstash_core::url_group::{remove_endpoints, upsert_endpoints, Endpoint, EndpointRef, UrlGroup};
use qstash_core::{Message, MessageState};
use tokio_postgres::Row;

use super::events::Events;
use super::{messages, sql};
use crate::{Result, StoreError};

/// For new messages, in their transaction: an enqueue creates its queue,
/// and a flow-controlled message creates or updates its key (the latest
/// message's limits win unless pinned). Rows are taken in (user, name)
/// order, so concurrent batches never deadlock on them.
pub async fn on_insert<C: GenericClient>(c: &C, fresh: &[(&Message, Millis)]) -> Result<()> {
    let mut queues: BTreeMap<(&str, &str), Millis> = BTreeMap::new();
    let mut keys: BTreeMap<(&str, &str), Vec<(&Message, Millis)>> = BTreeMap::new();
    for (m, now) in fresh {
        if let Some(q) = &m.spec.queue_name {
            queues.entry((&m.user_id, q)).or_insert(*now);
        }
        if let Some(fc) = &m.spec.flow_control {
            keys.entry((&m.user_id, &fc.key))
                .or_default()
                .push((m, *now));
        }
    }
    if !queues.is_empty() {
        let users: Vec<&str> = queues.keys().map(|(u, _)| *u).collect();
        let names: Vec<&str> = queues.keys().map(|(_, n)| *n).collect();
        let nows: Vec<Millis> = queues.values().copied().collect();
        sql::execute(
            c,
            "INSERT INTO queues (user_id, name, parallelism, paused, created_at, updated_at)
             SELECT u, n, 1, FALSE, t, t FROM unnest($1::text[], $2::text[], $3::int8[]) AS x(u, n, t)
             ON CONFLICT (user_id, name) DO NOTHING",
            &[&users, &names, &nows],
        )
        .await?;
    }
    if keys.is_empty() {
        return Ok(());
    }
    let users: Vec<&str> = keys.keys().map(|(u, _)| *u).collect();
    let names: Vec<&str> = keys.keys().map(|(_, k)| *k).collect();
    let sql = format!(
        "SELECT {KEY_COLUMNS} FROM flow_control_keys
         WHERE (user_id, key) IN (SELECT * FROM unnest($1::text[], $2::text[]))
         ORDER BY user_id, key FOR UPDATE"
    );
    let mut stored: BTreeMap<(String, String), FlowKey> = BTreeMap::new();
    for r in sql::query(c, &sql, &[&users, &names]).await? {
        let k = read_key(&r)?;
        stored.insert((k.user_id.clone(), k.key.clone()), k);
    }
    let mut changed = Vec::with_capacity(keys.len());
    for ((user, key), arrivals) in keys {
        let mut k = stored
            .remove(&(user.to_string(), key.to_string()))
            .unwrap_or_else(|| new_key(user, key, arrivals[0].1));
        for (m, now) in arrivals {
            if let Some(fc) = &m.spec.flow_control {
                k.limits.apply_message(fc);
            }
            k.updated_at = now;
        }
        changed.push(k);
    }
    save_keys(c, &changed).await
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

fn read_key(r: &Row) -> Result<FlowKey> {
    let count = |i: usize| -> Result<Option<u32>> {
        Ok(r.try_get::<_, Option<i32>>(i)?.map(|v| v.max(0) as u32))
    };
    Ok(FlowKey {
        user_id: r.try_get(0)?,
        key: r.try_get(1)?,
        limits: KeyLimits {
            parallelism: count(2)?,
            rate: count(3)?,
            period_secs: r.try_get::<_, i64>(4)?.max(0) as u64,
            pinned_parallelism: r.try_get(5)?,
            pinned_rate: r.try_get(6)?,
        },
        paused: r.try_get(7)?,
        rate_reset_at: r.try_get(8)?,
        created_at: r.try_get(9)?,
        updated_at: r.try_get(10)?,
    })
}

async fn save_keys<C: GenericClient>(c: &C, keys: &[FlowKey]) -> Result<()> {
    let col = |f: fn(&FlowKey) -> Option<i32>| keys.iter().map(f).collect::<Vec<_>>();
    let users: Vec<&str> = keys.iter().map(|k| k.user_id.as_str()).collect();
    let names: Vec<&str> = keys.iter().map(|k| k.key.as_str()).collect();
    let parallelism = col(|k| k.limits.parallelism.map(|v| v as i32));
    let rate = col(|k| k.limits.rate.map(|v| v as i32));
    let period: Vec<i64> = keys.iter().map(|k| k.limits.period_secs as i64).collect();
    let pin_p: Vec<bool> = keys.iter().map(|k| k.limits.pinned_parallelism).collect();
    let pin_r: Vec<bool> = keys.iter().map(|k| k.limits.pinned_rate).collect();
    let paused: Vec<bool> = keys.iter().map(|k| k.paused).collect();
    let reset: Vec<Millis> = keys.iter().map(|k| k.rate_reset_at).collect();
    let created: Vec<Millis> = keys.iter().map(|k| k.created_at).collect();
    let updated: Vec<Millis> = keys.iter().map(|k| k.updated_at).collect();
    let sql = format!(
        "INSERT INTO flow_control_keys ({KEY_COLUMNS})
         SELECT * FROM unnest($1::text[], $2::text[], $3::int4[], $4::int4[], $5::int8[],
            $6::bool[], $7::bool[], $8::bool[], $9::int8[], $10::int8[], $11::int8[])
         ON CONFLICT (user_id, key) DO UPDATE SET parallelism = excluded.parallelism,
            rate = excluded.rate, period = excluded.period,
            pinned_parallelism = excluded.pinned_parallelism, pinned_rate = excluded.pinned_rate,
            paused = excluded.paused, rate_reset_at = excluded.rate_reset_at,
            updated_at = excluded.updated_at"
    );
    sql::execute(
        c,
        &sql,
        &[
            &users,
            &names,
            &parallelism,
            &rate,
            &period,
            &pin_p,
            &pin_r,
            &paused,
            &reset,
            &created,
            &updated,
        ],
    )
    .await?;
    Ok(())
}

pub async fn load_key<C: GenericClient>(
    c: &C,
    user_id: &str,
    key: &str,
) -> Result<Option<FlowKey>> {
    let sql =
        format!("SELECT {KEY_COLUMNS} FROM flow_control_keys WHERE user_id = $1 AND key = $2");
    sql::query_opt(c, &sql, &[&user_id, &key])
        .await?
        .map(|r| read_key(&r))
        .transpose()
}

/// Messages waiting on a key (queued ones wait on their queue).
async fn wait_list_size<C: GenericClient>(c: &C, user_id: &str, key: &str) -> Result<u64> {
    let n: i64 = sql::query_one(
        c,
        "SELECT COUNT(*) FROM messages WHERE user_id = $1 AND flow_control_key = $2
         AND queue_name IS NULL AND state = 'pending'",
        &[&user_id, &key],
    )
    .await?
    .try_get(0)?;
    Ok(n as u64)
}

pub async fn flow_key<C: GenericClient>(
    c: &C,
    user_id: &str,
    key: &str,
) -> Result<Option<(FlowKey, u64)>> {
    match load_key(c, user_id, key).await? {
        Some(k) => Ok(Some((k, wait_list_size(c, user_id, key).await?))),
        None => Ok(None),
    }
}

pub async fn flow_keys<C: GenericClient>(c: &C, user_id: &str) -> Result<Vec<(FlowKey, u64)>> {
    let sql =
        format!("SELECT {KEY_COLUMNS} FROM flow_control_keys WHERE user_id = $1 ORDER BY key");
    let mut out = Vec::new();
    for r in sql::query(c, &sql, &[&user_id]).await? {
        let k = read_key(&r)?;
        let n = wait_list_size(c, user_id, &k.key).await?;
        out.push((k, n));
    }
    Ok(out)
}

pub async fn change_flow_key<C: GenericClient>(
    c: &C,
    user_id: &str,
    key: &str,
    change: &FlowKeyChange,
    now: Millis,
) -> Result<FlowKey> {
    let sql = format!(
        "SELECT {KEY_COLUMNS} FROM flow_control_keys WHERE user_id = $1 AND key = $2 FOR UPDATE"
    );
    let mut k = match sql::query_opt(c, &sql, &[&user_id, &key]).await? {
        Some(r) => read_key(&r)?,
        None => new_key(user_id, key, now),
    };
    let reset = matches!(change, FlowKeyChange::Pin { .. } | FlowKeyChange::ResetRate);
    match change {
        FlowKeyChange::Pause => k.paused = true,
        FlowKeyChange::Resume => k.paused = false,
        FlowKeyChange::Pin {
            parallelism,
            rate,
            period_secs,
        } => k.limits.pin(*parallelism, *rate, *period_secs),
        FlowKeyChange::Unpin { parallelism, rate } => k.limits.unpin(*parallelism, *rate),
        FlowKeyChange::ResetRate => {}
    }
    if reset {
        k.rate_reset_at = now;
        sql::execute(
            c,
            "DELETE FROM flow_control_starts WHERE user_id = $1 AND key = $2",
            &[&user_id, &key],
        )
        .await?;
    }
    k.updated_at = now;
    save_keys(c, std::slice::from_ref(&k)).await?;
    Ok(k)
}

// --- URL groups ---

fn read_group(r: &Row) -> Result<UrlGroup> {
    let name: String = r.try_get(0)?;
    let endpoints: String = r.try_get(3)?;
    let endpoints = serde_json::from_str(&endpoints)
        .map_err(|e| StoreError::Corrupt(format!("url group {name}: {e}")))?;
    Ok(UrlGroup {
        name,
        created_at: r.try_get(1)?,
        updated_at: r.try_get(2)?,
        endpoints,
    })
}

pub async fn url_group<C: GenericClient>(
    c: &C,
    user_id: &str,
    name: &str,
) -> Result<Option<UrlGroup>> {
    sql::query_opt(
        c,
        "SELECT name, created_at, updated_at, endpoints FROM url_groups WHERE user_id = $1 AND name = $2",
        &[&user_id, &name],
    )
    .await?
    .map(|r| read_group(&r))
    .transpose()
}

pub async fn url_groups<C: GenericClient>(c: &C, user_id: &str) -> Result<Vec<UrlGroup>> {
    sql::query(
        c,
        "SELECT name, created_at, updated_at, endpoints FROM url_groups WHERE user_id = $1 ORDER BY name",
        &[&user_id],
    )
    .await?
    .iter()
    .map(read_group)
    .collect()
}

async fn group_for_update<C: GenericClient>(
    c: &C,
    user_id: &str,
    name: &str,
) -> Result<Option<UrlGroup>> {
    sql::query_opt(
        c,
        "SELECT name, created_at, updated_at, endpoints FROM url_groups
         WHERE user_id = $1 AND name = $2 FOR UPDATE",
        &[&user_id, &name],
    )
    .await?
    .map(|r| read_group(&r))
    .transpose()
}

async fn save_group<C: GenericClient>(c: &C, user_id: &str, g: &UrlGroup) -> Result<()> {
    let endpoints =
        serde_json::to_string(&g.endpoints).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    sql::execute(
        c,
        "INSERT INTO url_groups (user_id, name, created_at, updated_at, endpoints)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (user_id, name) DO UPDATE SET updated_at = excluded.updated_at,
            endpoints = excluded.endpoints",
        &[&user_id, &g.name, &g.created_at, &g.updated_at, &endpoints],
    )
    .await?;
    Ok(())
}

pub async fn upsert_group_endpoints<C: GenericClient>(
    c: &C,
    user_id: &str,
    name: &str,
    endpoints: Vec<Endpoint>,
    now: Millis,
) -> Result<()> {
    let mut g = group_for_update(c, user_id, name)
        .await?
        .unwrap_or(UrlGroup {
            name: name.into(),
            created_at: now,
            updated_at: now,
            endpoints: vec![],
        });
    upsert_endpoints(&mut g.endpoints, endpoints);
    g.updated_at = now;
    save_group(c, user_id, &g).await
}

pub async fn remove_group_endpoints<C: GenericClient>(
    c: &C,
    user_id: &str,
    name: &str,
    refs: &[EndpointRef],
    now: Millis,
) -> Result<bool> {
    let Some(mut g) = group_for_update(c, user_id, name).await? else {
        return Ok(false);
    };
    remove_endpoints(&mut g.endpoints, refs);
    if g.endpoints.is_empty() {
        delete_group(c, user_id, name).await?;
    } else {
        g.updated_at = now;
        save_group(c, user_id, &g).await?;
    }
    Ok(true)
}

pub async fn delete_group<C: GenericClient>(c: &C, user_id: &str, name: &str) -> Result<bool> {
    // Its default headers go with it (issue 13).
    sql::execute(
        c,
        "DELETE FROM url_group_headers WHERE user_id = $1 AND name = $2",
        &[&user_id, &name],
    )
    .await?;
    Ok(sql::execute(
        c,
        "DELETE FROM url_groups WHERE user_id = $1 AND name = $2",
        &[&user_id, &name],
    )
    .await?
        > 0)
}

// --- queues ---

async fn queue_info<C: GenericClient>(c: &C, user_id: &str, r: &Row) -> Result<QueueInfo> {
    let name: String = r.try_get(0)?;
    let lag: i64 = sql::query_one(
        c,
        "SELECT COUNT(*) FROM messages WHERE user_id = $1 AND queue_name = $2
         AND state IN ('pending', 'active')",
        &[&user_id, &name],
    )
    .await?
    .try_get(0)?;
    Ok(QueueInfo {
        name,
        parallelism: r.try_get::<_, i32>(1)?.max(1) as u32,
        paused: r.try_get(2)?,
        created_at: r.try_get(3)?,
        updated_at: r.try_get(4)?,
        lag: lag as u64,
    })
}

pub async fn queue<C: GenericClient>(
    c: &C,
    user_id: &str,
    name: &str,
) -> Result<Option<QueueInfo>> {
    match sql::query_opt(
        c,
        "SELECT name, parallelism, paused, created_at, updated_at FROM queues
         WHERE user_id = $1 AND name = $2",
        &[&user_id, &name],
    )
    .await?
    {
        Some(r) => Ok(Some(queue_info(c, user_id, &r).await?)),
        None => Ok(None),
    }
}

pub async fn queues<C: GenericClient>(c: &C, user_id: &str) -> Result<Vec<QueueInfo>> {
    let rows = sql::query(
        c,
        "SELECT name, parallelism, paused, created_at, updated_at FROM queues
         WHERE user_id = $1 ORDER BY name",
        &[&user_id],
    )
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        out.push(queue_info(c, user_id, r).await?);
    }
    Ok(out)
}

pub async fn upsert_queue<C: GenericClient>(
    c: &C,
    user_id: &str,
    name: &str,
    parallelism: u32,
    paused: bool,
    now: Millis,
) -> Result<()> {
    sql::execute(
        c,
        "INSERT INTO queues (user_id, name, parallelism, paused, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $5)
         ON CONFLICT (user_id, name) DO UPDATE SET parallelism = $3, paused = $4, updated_at = $5",
        &[&user_id, &name, &(parallelism as i32), &paused, &now],
    )
    .await?;
    Ok(())
}

pub async fn set_queue_paused<C: GenericClient>(
    c: &C,
    user_id: &str,
    name: &str,
    paused: bool,
    now: Millis,
) -> Result<bool> {
    Ok(sql::execute(
        c,
        "UPDATE queues SET paused = $3, updated_at = $4 WHERE user_id = $1 AND name = $2",
        &[&user_id, &name, &paused, &now],
    )
    .await?
        > 0)
}

/// Deletes the queue and cancels its undelivered messages.
pub async fn delete_queue<C: GenericClient>(
    c: &C,
    user_id: &str,
    name: &str,
    now: Millis,
    events: &mut Events,
) -> Result<Option<u64>> {
    let deleted = sql::execute(
        c,
        "DELETE FROM queues WHERE user_id = $1 AND name = $2",
        &[&user_id, &name],
    )
    .await?;
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
    let cancelled = messages::cancel(c, user_id, &request, now, events).await?;
    Ok(Some(cancelled.cancelled))
}

// --- the gate ---

pub async fn gate_snapshot<C: GenericClient>(c: &C, now: Millis) -> Result<GateSnapshot> {
    let queues = sql::query(c, "SELECT user_id, name FROM queues", &[])
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<Vec<(String, String)>>>()?;
    let sql = format!("SELECT {KEY_COLUMNS} FROM flow_control_keys");
    let mut keys = Vec::new();
    for r in sql::query(c, &sql, &[]).await? {
        let k = read_key(&r)?;
        let starts = match k.limits.rate {
            Some(rate) => sql::query(
                c,
                "SELECT at FROM flow_control_starts WHERE user_id = $1 AND key = $2 AND at > $3
                   AND at >= $4
                 ORDER BY at DESC LIMIT $5",
                &[
                    &k.user_id,
                    &k.key,
                    &(now - k.limits.period_ms()),
                    &k.rate_reset_at,
                    &i64::from(rate),
                ],
            )
            .await?
            .iter()
            .map(|r| Ok(r.try_get(0)?))
            .collect::<Result<Vec<Millis>>>()?,
            None => vec![],
        };
        keys.push((k, starts));
    }
    Ok(GateSnapshot { queues, keys })
}

/// The head of a queue's line ($1 user, $2 queue, $3 parallelism): its
/// first undelivered messages in enqueue order.
pub const QUEUE_LINE: &str = "SELECT id, state, due_at, flow_control_key FROM messages
    WHERE user_id = $1 AND queue_name = $2 AND state IN ('pending', 'active')
    ORDER BY seq LIMIT $3";

/// The head of a key's line ($1 user, $2 key, $3 room): its waiting
/// messages by due time.
pub const KEY_LINE: &str = "SELECT id, due_at FROM messages
    WHERE user_id = $1 AND flow_control_key = $2 AND queue_name IS NULL AND state = 'pending'
    ORDER BY due_at, seq LIMIT $3";

/// The head of every line looked at, each read concurrently on the same
/// connection (the driver pipelines them: one round trip in all).
pub async fn gate_views<C: GenericClient>(c: &C, looks: &[GateLook]) -> Result<Vec<GateView>> {
    futures_util::future::try_join_all(looks.iter().map(|look| gate_view(c, look))).await
}

async fn gate_view<C: GenericClient>(c: &C, look: &GateLook) -> Result<GateView> {
    match &look.gate {
        GateRef::Queue { user_id, name } => {
            let config = sql::query_opt(
                c,
                "SELECT parallelism, paused FROM queues WHERE user_id = $1 AND name = $2",
                &[user_id, name],
            )
            .await?;
            // A queue whose row is gone (deleted) still drains in order.
            let (parallelism, paused) = match config {
                Some(r) => (r.try_get::<_, i32>(0)?.max(1) as u32, r.try_get(1)?),
                None => (1, false),
            };
            let candidates = if paused {
                vec![]
            } else {
                sql::query(c, QUEUE_LINE, &[user_id, name, &i64::from(parallelism)])
                    .await?
                    .iter()
                    .map(|r| {
                        Ok(Candidate {
                            id: r.try_get(0)?,
                            active: r.try_get::<_, &str>(1)? == MessageState::Active.as_str(),
                            due_at: r.try_get(2)?,
                            flow_control_key: r.try_get(3)?,
                        })
                    })
                    .collect::<Result<_>>()?
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
            let Some(k) = load_key(c, user_id, key).await? else {
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
                sql::query(c, KEY_LINE, &[user_id, key, &i64::from(room)])
                    .await?
                    .iter()
                    .map(|r| {
                        Ok(Candidate {
                            id: r.try_get(0)?,
                            active: false,
                            due_at: r.try_get(1)?,
                            flow_control_key: None,
                        })
                    })
                    .collect::<Result<_>>()?
            };
            Ok(GateView {
                gate: look.gate.clone(),
                config: Some(GateConfig::Key(k)),
                candidates,
            })
        }
    }
}

/// Marks the claimed messages in flight (skipping any no longer waiting)
/// and records the starts of rate-limited keys.
pub async fn claim_gated<C: GenericClient>(
    c: &C,
    claims: &[GateClaim],
    now: Millis,
    node: &str,
    events: &mut Events,
) -> Result<Vec<Message>> {
    let ids: Vec<&str> = claims.iter().map(|c| c.message_id.as_str()).collect();
    let claimed = messages::claim_ids(c, &ids, now, node, events).await?;
    let started: std::collections::HashSet<&str> = claimed.iter().map(|m| m.id.as_str()).collect();
    let mut starts: BTreeMap<(&str, &str), (u32, Millis)> = BTreeMap::new();
    for claim in claims {
        if !started.contains(claim.message_id.as_str()) {
            continue;
        }
        if let Some((user_id, key, forget_before)) = &claim.rate_start {
            let entry = starts.entry((user_id, key)).or_insert((0, *forget_before));
            entry.0 += 1;
            entry.1 = entry.1.max(*forget_before);
        }
    }
    if !starts.is_empty() {
        let mut users = Vec::new();
        let mut keys = Vec::new();
        for ((user, key), (n, _)) in &starts {
            for _ in 0..*n {
                users.push(*user);
                keys.push(*key);
            }
        }
        sql::execute(
            c,
            "INSERT INTO flow_control_starts (user_id, key, at)
             SELECT u, k, $3 FROM unnest($1::text[], $2::text[]) AS x(u, k)",
            &[&users, &keys, &now],
        )
        .await?;
        let users: Vec<&str> = starts.keys().map(|(u, _)| *u).collect();
        let keys: Vec<&str> = starts.keys().map(|(_, k)| *k).collect();
        let before: Vec<Millis> = starts.values().map(|(_, b)| *b).collect();
        sql::execute(
            c,
            "DELETE FROM flow_control_starts s USING unnest($1::text[], $2::text[], $3::int8[])
                AS x(u, k, b)
             WHERE s.user_id = x.u AND s.key = x.k AND s.at <= x.b",
            &[&users, &keys, &before],
        )
        .await?;
    }
    Ok(claimed)
}
