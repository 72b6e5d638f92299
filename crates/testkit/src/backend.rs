//! Which storage backend the tests run the server on. One switch for every
//! suite: `QSTASH_TEST_BACKEND=postgres` runs them on PostgreSQL at
//! `QSTASH_TEST_DATABASE_URL` (default: the local server, user `postgres`,
//! database `postgres`), each server in a schema of its own so tests run in
//! parallel; anything else (or unset) runs them on embedded SQLite.
//! `scripts/test` finds or starts a database and sets both.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// True when the tests run on PostgreSQL.
pub fn postgres() -> bool {
    std::env::var("QSTASH_TEST_BACKEND").is_ok_and(|b| b.eq_ignore_ascii_case("postgres"))
}

/// The schema that holds the data of the server on `data_dir`: the same
/// for every start on that directory, so a restart finds its data. Its name
/// starts with `QSTASH_TEST_SCHEMA_PREFIX` (`scripts/test` sets one per run,
/// and drops that run's schemas at its end), else `qt_`.
pub fn schema_for(data_dir: &Path) -> String {
    let mut h = DefaultHasher::new();
    data_dir.hash(&mut h);
    format!("{}{:016x}", schema_prefix(), h.finish())
}

pub fn schema_prefix() -> String {
    std::env::var("QSTASH_TEST_SCHEMA_PREFIX").unwrap_or_else(|_| "qt_".into())
}

/// The `--database-url` of a server on `data_dir`, on PostgreSQL runs.
pub fn database_url_for(data_dir: &Path) -> Option<String> {
    postgres().then(|| with_schema(&base_url(), &schema_for(data_dir)))
}

pub fn base_url() -> String {
    std::env::var("QSTASH_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.into())
}

/// `url` with its tables in `schema` (the server creates it).
pub fn with_schema(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-csearch_path%3D{schema}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_schema_per_data_dir_and_it_joins_the_url() {
        let a = schema_for(Path::new("/tmp/a"));
        assert_eq!(a, schema_for(Path::new("/tmp/a")));
        assert_ne!(a, schema_for(Path::new("/tmp/b")));
        assert_eq!(
            with_schema("postgres://u@h/db", "s"),
            "postgres://u@h/db?options=-csearch_path%3Ds"
        );
        assert_eq!(
            with_schema("postgres://u@h/db?sslmode=disable", "s"),
            "postgres://u@h/db?sslmode=disable&options=-csearch_path%3Ds"
        );
    }
}
