//! The log: one `events` row per state change of a message, listed newest
//! first by (time, seq) with the message joined in.
//!
//! Every listing walks one index backwards from the cursor and stops after
//! `count` matches; nothing scans the whole log. Which index depends on the
//! filters: the message id index for `messageId(s)`, the `event_key_hashes`
//! table for a message attribute (URL, URL group, queue, schedule, label,
//! flow-control key: one row per attribute value and event, written with
//! the event, holding a 64-bit hash of user and key instead of the key's
//! text), else the (user, state, time) index, one walk per state asked for
//! (every state when none is), merged.
//! The other filters are checked on the rows the walk meets
//! (`LogFilter::matches`), and a page examines at most `rows::SCAN_BUDGET`
//! of them before it answers what it found with a cursor to go on from.

use qstash_core::clock::Millis;
use rusqlite::{params, params_from_iter, Connection, Row};

use super::filters::Where;
use super::messages::{decode, RawRow};
use super::statements::Prepare;
use crate::rows;
use crate::{LogCursor, LogEntry, LogFilter, LogPage, Result};

/// Indexes the event `seq` of `user_id` by the message's attribute keys.
/// Runs in the transaction that writes the event.
pub fn index_event(
    conn: &impl Prepare,
    user_id: &str,
    keys: &[String],
    time: Millis,
    seq: i64,
) -> Result<()> {
    conn.with_statement(
        "INSERT OR IGNORE INTO event_key_hashes (hash, time, seq) VALUES (?1, ?2, ?3)",
        |s| {
            for key in keys {
                s.execute(params![key_hash(user_id, key), time, seq])?;
            }
            Ok(())
        },
    )
}

/// The stored form of an attribute key of `user_id`'s log (issue 17): a
/// 64-bit SipHash-1-3 of the user and the key. As text, the user and key
/// (a whole URL) were stored twice per log entry, in the key row and in its
/// time index, and compared as strings at every B-tree step. A hash can
/// collide, so a listing also checks the attribute on the joined message
/// and the user on the event (`key_check`). The value is stored: never
/// change it.
pub fn key_hash(user_id: &str, key: &str) -> i64 {
    use std::hash::Hasher;
    let mut h = siphasher::sip::SipHasher13::new_with_keys(KEY_HASH_SEED.0, KEY_HASH_SEED.1);
    h.write(user_id.as_bytes());
    // A user id has no NUL (refused at admission), so the pair is unambiguous.
    h.write(&[0]);
    h.write(key.as_bytes());
    h.finish() as i64
}

/// SipHash's keys for [`key_hash`]: fixed, since the hashes are stored.
const KEY_HASH_SEED: (u64, u64) = (0x7173_7461_7368_2d6c, 0x6f67_2d6b_6579_7300);

/// `qstash_key_hash(user_id, key)`: [`key_hash`] in SQL, for the migration
/// that hashed the keys already stored.
pub fn register_key_hash(conn: &Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    conn.create_scalar_function("qstash_key_hash", 2, flags, |ctx| {
        Ok(key_hash(&ctx.get::<String>(0)?, &ctx.get::<String>(1)?))
    })
}

/// The SQL that confirms a key row found by its hash: the message joined as
/// `m` has the attribute `key` (`<kind>:<value>`, as `rows::keys_of` builds
/// it), so a colliding hash never lists another message's entry.
fn key_check(w: &mut Where, key: &str) -> String {
    let (kind, value) = key.split_once(':').unwrap_or(("url", key));
    if kind == "label" {
        return format!("instr(m.labels, {}) > 0", w.arg(format!(",{value},")));
    }
    let column = match kind {
        "topic" => "m.topic_name",
        "queue" => "m.queue_name",
        "schedule" => "m.schedule_id",
        "flow" => "m.flow_control_key",
        _ => "m.url",
    };
    format!("{column} = {}", w.arg(value.to_string()))
}

/// The columns of a listed entry: the event's, then its message's.
const ENTRY_COLUMNS: &str = "e.seq AS seq, e.time AS time, e.state, e.error, e.next_delivery_time,
    e.response_status, e.response_header, e.response_body,
    m.id, m.user_id, m.state, m.due_at, m.created_at, m.not_before, m.retried, m.spec, m.body";

/// The SQL of one chunk of a listing's walk, with its arguments: the rows
/// of the driving index strictly before `upper`, newest first, at most
/// `limit`, each joined to its message. Only what the index holds is in the
/// SQL (and, for a key found by its hash, the check that the message has
/// the attribute); `rows::Scan` checks the other filters. Exposed for the
/// plan test.
pub fn page_sql(
    user_id: &str,
    f: &LogFilter,
    upper: Option<LogCursor>,
    limit: usize,
) -> (String, Vec<rusqlite::types::Value>) {
    let mut w = Where::default();
    let user = w.arg(user_id.to_string());
    let (from, driver) = if !f.message_ids.is_empty() {
        let marks: Vec<String> = f.message_ids.iter().map(|id| w.arg(id.clone())).collect();
        w.push(format!("e.message_id IN ({})", marks.join(", ")));
        w.push(format!("e.user_id = {user}"));
        ("events e INDEXED BY events_message", "e")
    } else if let Some(key) = rows::driving_key(f) {
        let hash = w.arg(key_hash(user_id, &key));
        w.push(format!(
            "k.hash = {hash} AND e.seq = k.seq AND e.time = k.time AND e.user_id = {user}"
        ));
        let check = key_check(&mut w, &key);
        w.push(check);
        ("event_key_hashes k CROSS JOIN events e", "k")
    } else {
        return by_state_sql(w, &user, f, upper, limit);
    };
    push_bounds(&mut w, driver, f, upper);
    w.push("m.id = e.message_id".into());
    let sql = format!(
        "SELECT {ENTRY_COLUMNS}
         FROM {from} CROSS JOIN messages m
         WHERE {}
         ORDER BY {driver}.time DESC, {driver}.seq DESC
         LIMIT {}",
        w.sql(),
        limit
    );
    (sql, w.args)
}

/// A walk by state, for a listing with no message or attribute filter.
/// The log has no (user, time) index, which every event would pay for
/// (issue 17): the user's (user, state, time) index holds the same order
/// per state, so each state asked for (or every state) is walked newest
/// first and SQLite merges the walks (`MERGE (UNION ALL)`: no sort, and
/// each walk reads only as far as the merge takes from it). Several
/// `state` values are answered exactly this way too.
fn by_state_sql(
    mut w: Where,
    user: &str,
    f: &LogFilter,
    upper: Option<LogCursor>,
    limit: usize,
) -> (String, Vec<rusqlite::types::Value>) {
    w.push(format!("e.user_id = {user}"));
    push_bounds(&mut w, "e", f, upper);
    w.push("m.id = e.message_id".into());
    let shared = w.sql();
    let arms: Vec<String> = rows::walked_states(f)
        .map(|s| {
            let state = w.arg(s.as_str().to_string());
            format!(
                "SELECT {ENTRY_COLUMNS}
                 FROM events e INDEXED BY events_user_state CROSS JOIN messages m
                 WHERE e.state = {state} AND {shared}"
            )
        })
        .collect();
    let sql = format!(
        "{}\nORDER BY time DESC, seq DESC\nLIMIT {limit}",
        arms.join("\nUNION ALL\n")
    );
    (sql, w.args)
}

/// Strictly before the cursor `upper`, and from `fromDate` on, on the
/// walked index's (time, seq).
fn push_bounds(w: &mut Where, driver: &str, f: &LogFilter, upper: Option<LogCursor>) {
    if let Some(c) = upper {
        let (t, s) = (w.arg(c.time), w.arg(c.seq));
        w.push(format!(
            "{driver}.time <= {t} AND ({driver}.time < {t} OR {driver}.seq < {s})"
        ));
    }
    if let Some(from) = f.from_date {
        let from = w.arg(from);
        w.push(format!("{driver}.time >= {from}"));
    }
}

/// A page of the log: the walk of `page_sql` in chunks, as `rows::Scan`
/// asks for them, so a filter the index cannot answer examines a bounded
/// number of rows per page.
pub fn list(
    conn: &Connection,
    user_id: &str,
    f: &LogFilter,
    cursor: Option<LogCursor>,
    count: usize,
) -> Result<LogPage> {
    let mut scan = rows::Scan::new(f, cursor, count);
    while let Some((upper, limit)) = scan.next_chunk() {
        let (sql, args) = page_sql(user_id, f, upper, limit);
        let mut stmt = conn.prepare_cached(&sql)?;
        let raw = stmt
            .query_map(params_from_iter(args), read_entry)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let chunk = raw
            .into_iter()
            .map(|(seq, raw)| {
                let entry = raw.decode()?;
                Ok((
                    LogCursor {
                        time: entry.time,
                        seq,
                    },
                    entry,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        scan.take(limit, chunk);
    }
    Ok(scan.finish())
}

struct RawEntry {
    time: Millis,
    state: String,
    error: Option<String>,
    next_delivery_time: Option<Millis>,
    response_status: Option<u16>,
    response_header: Option<String>,
    response_body: Option<Vec<u8>>,
    message: RawRow,
}

fn read_entry(r: &Row) -> rusqlite::Result<(i64, RawEntry)> {
    Ok((
        r.get(0)?,
        RawEntry {
            time: r.get(1)?,
            state: r.get(2)?,
            error: r.get(3)?,
            next_delivery_time: r.get(4)?,
            response_status: r.get(5)?,
            response_header: r.get(6)?,
            response_body: r.get(7)?,
            message: (
                r.get(8)?,
                r.get(9)?,
                r.get(10)?,
                r.get(11)?,
                r.get(12)?,
                r.get(13)?,
                r.get(14)?,
                r.get(15)?,
                r.get(16)?,
            ),
        },
    ))
}

impl RawEntry {
    fn decode(self) -> Result<LogEntry> {
        Ok(LogEntry {
            time: self.time,
            state: rows::log_state(&self.state)?,
            error: self.error,
            next_delivery_time: self.next_delivery_time,
            response: rows::response_of(
                self.response_status,
                self.response_header.as_deref(),
                self.response_body,
            )?,
            message: decode(self.message)?,
        })
    }
}

/// Drops attribute keys of events past retention (the events themselves
/// are purged with the messages).
pub fn purge_keys(conn: &Connection, before: Millis) -> Result<u64> {
    Ok(conn.execute("DELETE FROM event_key_hashes WHERE time < ?1", [before])? as u64)
}

/// SQL functions the log filters use: `url_host(url)` and `url_path(url)`,
/// the host (without port) and path of a destination URL, NULL if it does
/// not parse. Registered on every connection that lists the log.
pub fn register_url_functions(conn: &Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    conn.create_scalar_function("url_host", 1, flags, |ctx| {
        let url = ctx.get::<String>(0)?;
        Ok(url::Url::parse(&url)
            .ok()
            .and_then(|u| u.host_str().map(String::from)))
    })?;
    conn.create_scalar_function("url_path", 1, flags, |ctx| {
        let url = ctx.get::<String>(0)?;
        Ok(url::Url::parse(&url).ok().map(|u| u.path().to_string()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hashes are stored, so they must never change: pinned against a
    /// SipHash-1-3 written separately (a few lines of Python, from the
    /// paper's definition).
    #[test]
    fn key_hashes_are_pinned() {
        assert_eq!(key_hash("u", "url:http://a/x"), 7343168639093290295);
        assert_eq!(
            key_hash("defaultUser", "label:billing"),
            2522105128424157251
        );
    }

    #[test]
    fn key_hashes_tell_users_and_keys_apart() {
        let h = key_hash("u", "url:http://a/x");
        assert_ne!(h, key_hash("v", "url:http://a/x"));
        assert_ne!(h, key_hash("u", "url:http://a/y"));
        // The separator: ("ab", "c") is not ("a", "bc").
        assert_ne!(key_hash("ab", "c"), key_hash("a", "bc"));
    }

    #[test]
    fn the_sql_function_is_the_same_hash() {
        let conn = Connection::open_in_memory().unwrap();
        register_key_hash(&conn).unwrap();
        let h: i64 = conn
            .query_row("SELECT qstash_key_hash('u', 'url:http://a/x')", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(h, key_hash("u", "url:http://a/x"));
    }

    #[test]
    fn a_key_is_confirmed_on_the_message_by_its_attribute() {
        let mut w = Where::default();
        assert_eq!(key_check(&mut w, "url:http://a/x?y=1"), "m.url = ?1");
        assert_eq!(key_check(&mut w, "label:red"), "instr(m.labels, ?2) > 0");
        assert_eq!(key_check(&mut w, "flow:k:1"), "m.flow_control_key = ?3");
        let args: Vec<_> = w.args.iter().map(|v| format!("{v:?}")).collect();
        assert_eq!(
            args,
            [
                "Text(\"http://a/x?y=1\")",
                "Text(\",red,\")",
                "Text(\"k:1\")"
            ]
        );
    }
}
