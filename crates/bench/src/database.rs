//! Runs on PostgreSQL (`--database-url`): each server gets a fresh schema
//! of its own (dropped at the end of the run), and the database's own
//! ceiling is measured with `pgbench` for the ratios the targets are set in.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

use anyhow::Context;
use qstash_testkit::backend::with_schema;
use tokio_postgres::{Client, NoTls};

pub struct Database {
    pub url: String,
    admin: Client,
    schemas: Mutex<Vec<String>>,
}

impl Database {
    pub async fn connect(url: &str) -> anyhow::Result<Database> {
        let (admin, conn) = tokio_postgres::connect(url, NoTls)
            .await
            .with_context(|| format!("connecting to {url}"))?;
        tokio::spawn(conn);
        Ok(Database {
            url: url.to_string(),
            admin,
            schemas: Mutex::new(Vec::new()),
        })
    }

    /// The `--database-url` of a new server: a schema nobody used yet.
    pub fn fresh_url(&self) -> String {
        let mut schemas = self.schemas.lock().expect("schemas");
        let name = format!("qb_{}_{}", std::process::id(), schemas.len());
        schemas.push(name.clone());
        with_schema(&self.url, &name)
    }

    /// Bytes the tables and indexes of the last server's schema take.
    pub async fn last_schema_bytes(&self) -> anyhow::Result<u64> {
        let Some(schema) = self.schemas.lock().expect("schemas").last().cloned() else {
            return Ok(0);
        };
        let row = self
            .admin
            .query_one(
                "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::int8 FROM pg_class c
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = $1 AND c.relkind = 'r'",
                &[&schema],
            )
            .await?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    /// The current end of the write-ahead log, in bytes from its start.
    pub async fn wal_position(&self) -> anyhow::Result<u64> {
        let row = self
            .admin
            .query_one(
                "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::int8",
                &[],
            )
            .await?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    /// Drops every schema this run made.
    pub async fn cleanup(&self) {
        let schemas: Vec<String> = self.schemas.lock().expect("schemas").drain(..).collect();
        for s in schemas {
            let _ = self
                .admin
                .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{s}\" CASCADE"))
                .await;
        }
    }

    /// `pgbench` with `rows` INSERTs of a 1 KB value into a one-index table
    /// per transaction, `clients` connections, for `seconds`: transactions
    /// per second (the server's `synchronous_commit` applies, as for us).
    pub async fn pgbench(&self, rows: u32, clients: usize, seconds: u64) -> anyhow::Result<f64> {
        let schema = {
            let mut schemas = self.schemas.lock().expect("schemas");
            let name = format!("qb_{}_pgbench_{}", std::process::id(), schemas.len());
            schemas.push(name.clone());
            name
        };
        self.admin
            .batch_execute(&format!(
                "CREATE SCHEMA \"{schema}\";
                 CREATE TABLE \"{schema}\".m (id bigserial PRIMARY KEY, body text NOT NULL);"
            ))
            .await?;
        let dir = tempfile::tempdir()?;
        let script = dir.path().join("insert.sql");
        let values = vec!["(repeat('x', 1024))"; rows as usize].join(", ");
        std::fs::write(
            &script,
            format!("BEGIN;\nINSERT INTO m (body) VALUES {values};\nEND;\n"),
        )?;
        let bin = pgbench_bin().context("pgbench not found (Debian's postgresql-client)")?;
        let out = tokio::task::spawn_blocking({
            let url = with_schema(&self.url, &schema);
            let script = script.clone();
            move || {
                Command::new(bin)
                    .args(["-n", "-c", &clients.to_string(), "-j", "2"])
                    .args(["-T", &seconds.to_string(), "-f"])
                    .arg(&script)
                    .arg(url)
                    .output()
            }
        })
        .await??;
        let text = String::from_utf8_lossy(&out.stdout);
        anyhow::ensure!(
            out.status.success(),
            "pgbench failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        parse_tps(&text).with_context(|| format!("no tps in pgbench's output: {text}"))
    }
}

fn pgbench_bin() -> Option<PathBuf> {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("pgbench");
        if p.exists() {
            return Some(p);
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin/pgbench")))
        .filter(|p| p.exists())
        .collect();
    found.sort();
    found.pop().or_else(|| Some(PathBuf::from("pgbench")))
}

/// `tps = 11234.5 (without initial connection time)`.
fn parse_tps(text: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.trim_start_matches("tps = ").split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pgbench_tps() {
        let out =
            "latency average = 5.1 ms\ntps = 11234.567890 (without initial connection time)\n";
        assert_eq!(parse_tps(out), Some(11234.56789));
        assert_eq!(parse_tps("nothing"), None);
    }
}
