//! Issue 13 on PostgreSQL: URL group default headers and the per-user
//! claims of `--max-in-flight-per-user` (migration 2, as on SQLite).

use deadpool_postgres::GenericClient;
use qstash_core::clock::Millis;
use qstash_core::Message;

use super::events::Events;
use super::{messages, sql};
use crate::{Result, StoreError};

pub async fn url_group_headers<C: GenericClient>(
    c: &C,
    user_id: &str,
    name: &str,
) -> Result<Vec<(String, String)>> {
    let row = sql::query_opt(
        c,
        "SELECT headers FROM url_group_headers WHERE user_id = $1 AND name = $2",
        &[&user_id, &name],
    )
    .await?;
    match row {
        Some(r) => {
            let text: String = r.try_get(0)?;
            serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(e.to_string()))
        }
        None => Ok(Vec::new()),
    }
}

/// Replaces the group's default headers; false when there is no group.
pub async fn set_url_group_headers<C: GenericClient>(
    c: &C,
    user_id: &str,
    name: &str,
    headers: &[(String, String)],
) -> Result<bool> {
    let json = serde_json::to_string(headers).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let n = sql::execute(
        c,
        "INSERT INTO url_group_headers (user_id, name, headers)
         SELECT $1, $2, $3 WHERE EXISTS
             (SELECT 1 FROM url_groups WHERE user_id = $1 AND name = $2)
         ON CONFLICT (user_id, name) DO UPDATE SET headers = EXCLUDED.headers",
        &[&user_id, &name, &json],
    )
    .await?;
    Ok(n > 0)
}

/// Up to `room` due plain messages of each listed user, `limit` in all,
/// earliest first; rows another claim holds are skipped.
pub async fn claim_due_of_users<C: GenericClient>(
    c: &C,
    now: Millis,
    rooms: &[(String, usize)],
    limit: usize,
    node: &str,
    events: &mut Events,
) -> Result<Vec<Message>> {
    let mut candidates: Vec<(Millis, String)> = Vec::new();
    for (user, room) in rooms {
        let rows = sql::query(
            c,
            "SELECT due_at, id FROM messages
             WHERE user_id = $1 AND state = 'pending' AND queue_name IS NULL
               AND flow_control_key IS NULL AND due_at <= $2
             ORDER BY due_at LIMIT $3 FOR UPDATE SKIP LOCKED",
            &[user, &now, &((*room).min(limit) as i64)],
        )
        .await?;
        for r in rows {
            candidates.push((r.try_get(0)?, r.try_get(1)?));
        }
    }
    candidates.sort();
    candidates.truncate(limit);
    let ids: Vec<&str> = candidates.iter().map(|(_, id)| id.as_str()).collect();
    let mut claimed = messages::claim_ids(c, &ids, now, node, events).await?;
    claimed.sort_by_key(|m| m.due_at);
    Ok(claimed)
}

/// When the earliest pending plain message of one of `users` is due (one
/// index seek per user).
pub async fn next_due_of_users<C: GenericClient>(
    c: &C,
    users: &[String],
) -> Result<Option<Millis>> {
    let mut earliest: Option<Millis> = None;
    for user in users {
        let due: Option<Millis> = sql::query_one(
            c,
            "SELECT MIN(due_at) FROM messages
             WHERE user_id = $1 AND state = 'pending' AND queue_name IS NULL
               AND flow_control_key IS NULL",
            &[user],
        )
        .await?
        .try_get(0)?;
        earliest = match (earliest, due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    Ok(earliest)
}
