//! The writer's prepared statements, kept for the life of its connection.
//!
//! rusqlite's `prepare_cached` trims and hashes the SQL text, moves the
//! statement out of an LRU map and back, and clears its bindings, on every
//! use: about 1,500 instructions a statement, 6 to 8% of the writer
//! thread's instructions per publish and per delivered message (callgrind,
//! `scripts/instructions`). The writer's hot statements are `&'static
//! str`, so they are found here by the address and length of that text in
//! a short list. rusqlite resets a statement after each `execute` and when
//! its rows are dropped; its bindings are cleared when it goes back, so a
//! kept statement holds no copy of the last message body.
//!
//! A write function that can run in a job or on a plain connection (a
//! test, a reader) takes `&impl Prepare`; on a plain connection it falls
//! back to rusqlite's cache.

use std::cell::RefCell;

use rusqlite::{Connection, PrepFlags, Statement};

use crate::Result;

/// Where a write prepares its statements.
pub trait Prepare {
    /// Runs `f` with the prepared statement of `sql`.
    fn with_statement<T>(
        &self,
        sql: &'static str,
        f: impl FnOnce(&mut Statement<'_>) -> Result<T>,
    ) -> Result<T>;
}

impl Prepare for Connection {
    fn with_statement<T>(
        &self,
        sql: &'static str,
        f: impl FnOnce(&mut Statement<'_>) -> Result<T>,
    ) -> Result<T> {
        f(&mut *self.prepare_cached(sql)?)
    }
}

/// The address and length of a statement's SQL text.
type SqlKey = (usize, usize);

/// The statements not in use. A statement used again while in use (a
/// nested call) is prepared a second time, and both are kept.
pub struct Statements<'c> {
    conn: &'c Connection,
    idle: RefCell<Vec<(SqlKey, Statement<'c>)>>,
}

impl<'c> Statements<'c> {
    pub fn new(conn: &'c Connection) -> Self {
        Self {
            conn,
            idle: RefCell::new(Vec::new()),
        }
    }

    pub fn with_statement<T>(
        &self,
        sql: &'static str,
        f: impl FnOnce(&mut Statement<'_>) -> Result<T>,
    ) -> Result<T> {
        let key = (sql.as_ptr() as usize, sql.len());
        let mut stmt = self.take(key, sql)?;
        let result = f(&mut stmt);
        stmt.clear_bindings();
        self.idle.borrow_mut().push((key, stmt));
        result
    }

    fn take(&self, key: SqlKey, sql: &str) -> Result<Statement<'c>> {
        let mut idle = self.idle.borrow_mut();
        match idle.iter().position(|(k, _)| *k == key) {
            Some(i) => Ok(idle.swap_remove(i).1),
            None => {
                drop(idle);
                let flags = PrepFlags::SQLITE_PREPARE_PERSISTENT;
                Ok(self.conn.prepare_with_flags(sql, flags)?)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INSERT: &str = "INSERT INTO t (v) VALUES (?1)";
    const COUNT: &str = "SELECT COUNT(*) FROM t";

    fn count(s: &Statements) -> i64 {
        s.with_statement(COUNT, |c| Ok(c.query_row([], |r| r.get(0))?))
            .unwrap()
    }

    #[test]
    fn a_statement_is_prepared_once_and_used_again() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (v INTEGER)").unwrap();
        let s = Statements::new(&conn);
        for v in 0..3 {
            s.with_statement(INSERT, |i| Ok(i.execute([v])?)).unwrap();
        }
        assert_eq!(count(&s), 3);
        assert_eq!(s.idle.borrow().len(), 2, "one INSERT and one COUNT kept");
    }

    #[test]
    fn a_statement_in_use_can_be_used_again_inside() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (v INTEGER)").unwrap();
        let s = Statements::new(&conn);
        s.with_statement(INSERT, |outer| {
            outer.execute([1])?;
            s.with_statement(INSERT, |inner| Ok(inner.execute([2])?))?;
            outer.execute([3])?;
            Ok(())
        })
        .unwrap();
        assert_eq!(count(&s), 3);
    }

    #[test]
    fn a_failed_use_leaves_the_statement_usable() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (v INTEGER NOT NULL)")
            .unwrap();
        let s = Statements::new(&conn);
        let null: Option<i64> = None;
        assert!(s
            .with_statement(INSERT, |i| Ok(i.execute([null])?))
            .is_err());
        s.with_statement(INSERT, |i| Ok(i.execute([Some(7)])?))
            .unwrap();
        assert_eq!(count(&s), 1);
    }
}
