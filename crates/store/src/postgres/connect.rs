//! Reaching the database: the URL (shown with its password masked), the
//! connection pool, the schema named by `search_path`, and how driver
//! errors become [`StoreError`]s.

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Config, NoTls};

use crate::{Result, StoreError};

/// How long a request waits for a pooled connection, or for a new one to
/// be made, before it answers that the database is unavailable.
const POOL_WAIT: Duration = Duration::from_secs(5);

/// The URL with any password replaced by `***`, for messages and logs.
pub fn masked(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "<unparsable database URL>".into(),
    }
}

pub fn config(url: &str) -> Result<Config> {
    Config::from_str(url)
        .map_err(|e| StoreError::Unavailable(format!("bad database URL {}: {e}", masked(url))))
}

pub fn pool(config: Config, size: usize) -> Result<Pool> {
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            // A connection broken while idle is found by its next query,
            // which fails, and the pool drops it; checking each one before
            // use would cost a round trip per request.
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(POOL_WAIT))
        .create_timeout(Some(POOL_WAIT))
        .recycle_timeout(Some(POOL_WAIT))
        .build()
        .map_err(|e| StoreError::Unavailable(format!("cannot build the connection pool: {e}")))
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        let text = error_text(&e);
        match e.code() {
            Some(code) if code == &SqlState::DISK_FULL => StoreError::Full(text),
            Some(code)
                if code == &SqlState::T_R_DEADLOCK_DETECTED
                    || code == &SqlState::T_R_SERIALIZATION_FAILURE =>
            {
                StoreError::Conflict(text)
            }
            Some(code) if is_unavailable(code) => StoreError::Unavailable(text),
            Some(_) => StoreError::Database(text),
            // No SQL state: the connection broke or could not be made.
            None => StoreError::Unavailable(text),
        }
    }
}

/// Errors that go away by themselves: the connection, the server starting
/// or stopping, or running out of resources.
fn is_unavailable(code: &SqlState) -> bool {
    let class = &code.code()[..2];
    matches!(class, "08" | "53" | "57" | "58")
}

/// The error with its database detail, which `Display` leaves out.
fn error_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                text.push_str(": ");
                text.push_str(&s.to_string());
                source = s.source();
            }
            text
        }
    }
}

impl From<PoolError> for StoreError {
    fn from(e: PoolError) -> Self {
        match e {
            PoolError::Backend(e) => e.into(),
            other => StoreError::Unavailable(format!("no database connection: {other}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            masked("postgres://app:s3cret@db.internal:5432/q"),
            "postgres://app:***@db.internal:5432/q"
        );
        assert_eq!(
            masked("postgres://app@db/q?options=-csearch_path%3Dx"),
            "postgres://app@db/q?options=-csearch_path%3Dx"
        );
        assert!(!masked("postgres://a:hunter2@[nope").contains("hunter2"));
    }

    #[test]
    fn a_bad_url_is_an_error_naming_it_masked() {
        let e = config("postgres://u:pw@host:notaport/db").unwrap_err();
        assert!(!e.to_string().contains("pw"), "{e}");
    }
}
