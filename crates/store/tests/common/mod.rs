//! The store under test: SQLite, or PostgreSQL when the suite runs with
//! `QSTASH_TEST_BACKEND=postgres` (a schema of its own per store).
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use qstash_store::postgres::{PgOptions, PgStore};
use qstash_store::sqlite::{Durability, SqliteStore};
use qstash_store::Store;
use qstash_testkit::backend;

/// A fresh store; the directory keeps it (and names its schema).
pub async fn open() -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store = reopen(dir.path()).await;
    (dir, store)
}

/// The store of `dir`, opened again (a restart).
pub async fn reopen(dir: &Path) -> Arc<dyn Store> {
    match backend::database_url_for(dir) {
        Some(url) => {
            let options = PgOptions {
                pool_size: 6,
                ..PgOptions::new(url)
            };
            Arc::new(PgStore::connect(&options).await.unwrap())
        }
        None => Arc::new(SqliteStore::open(dir, Durability::Normal).unwrap()),
    }
}
