//! Default headers of a URL group (`PATCH /v2/topics/{name}`), applied to
//! publishes to the group where the request does not set them. A table of
//! its own (migration 2), so the `url_groups` rows and their writes stay as
//! they are.

use rusqlite::{params, Connection, OptionalExtension};

use crate::{Result, StoreError};

pub fn get(conn: &Connection, user_id: &str, name: &str) -> Result<Vec<(String, String)>> {
    let text: Option<String> = conn
        .prepare_cached("SELECT headers FROM url_group_headers WHERE user_id = ?1 AND name = ?2")?
        .query_row(params![user_id, name], |r| r.get(0))
        .optional()?;
    match text {
        Some(t) => serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(e.to_string())),
        None => Ok(Vec::new()),
    }
}

/// Replaces the group's default headers; false when the group does not
/// exist.
pub fn set(
    conn: &Connection,
    user_id: &str,
    name: &str,
    headers: &[(String, String)],
) -> Result<bool> {
    let exists = conn
        .prepare_cached("SELECT 1 FROM url_groups WHERE user_id = ?1 AND name = ?2")?
        .exists(params![user_id, name])?;
    if !exists {
        return Ok(false);
    }
    let json = serde_json::to_string(headers).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    conn.prepare_cached(
        "INSERT OR REPLACE INTO url_group_headers (user_id, name, headers) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![user_id, name, json])?;
    Ok(true)
}

/// Called when the group is deleted, so a new group of the same name
/// starts without them.
pub fn forget(conn: &Connection, user_id: &str, name: &str) -> Result<()> {
    conn.prepare_cached("DELETE FROM url_group_headers WHERE user_id = ?1 AND name = ?2")?
        .execute(params![user_id, name])?;
    Ok(())
}
