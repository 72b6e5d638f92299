//! The cluster side of the PostgreSQL store: heartbeats, the leader lock
//! (held by `listen.rs`), and the claims of nodes that went silent.

use std::time::Duration;

use async_trait::async_trait;
use qstash_core::clock::{Clock, Millis, SystemClock};
use qstash_core::cluster::NodeInfo;
use tokio::sync::watch;

use super::listen::LEADER_LOCK;
use super::{messages, sql, PgStore};
use crate::{Cluster, InheritedClaims, Result};

/// The database's clock in milliseconds: heartbeats and leases are read
/// against one clock, so nodes' own clocks need not agree.
const DB_NOW: &str = "(extract(epoch from clock_timestamp()) * 1000)::int8";

#[async_trait]
impl Cluster for PgStore {
    fn node_id(&self) -> &str {
        self.node()
    }

    fn leadership(&self) -> watch::Receiver<bool> {
        self.leader.clone()
    }

    async fn heartbeat(&self, address: &str, started_at: Millis, lease: Duration) -> Result<()> {
        let sql = format!(
            "INSERT INTO nodes (id, address, started_at, heartbeat_at) VALUES ($1, $2, $3, {DB_NOW})
             ON CONFLICT (id) DO UPDATE SET address = excluded.address,
                started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at"
        );
        let node = self.node();
        let client = self.client().await?;
        sql::execute(&client, &sql, &[&node, &address, &started_at]).await?;
        // Whether anyone else listens: a node alone sends no signals.
        let others = format!(
            "SELECT EXISTS (SELECT 1 FROM nodes WHERE id <> $1 AND heartbeat_at >= {DB_NOW} - $2)"
        );
        let lease_ms = lease.as_millis() as i64;
        let row = sql::query_one(&client, &others, &[&node, &lease_ms]).await?;
        self.writes.channel.set_others(row.try_get(0)?);
        Ok(())
    }

    async fn release_lapsed(&self, lease: Duration) -> Result<u64> {
        let lease_ms = lease.as_millis() as i64;
        let now = SystemClock.now_ms();
        let which = format!(
            "state = 'active' AND claimed_by IS DISTINCT FROM $2 AND NOT EXISTS (
                SELECT 1 FROM nodes n WHERE n.id = messages.claimed_by
                  AND n.heartbeat_at >= {DB_NOW} - $3)"
        );
        self.writes
            .run(async |tx, noted| {
                let node = self.node();
                let released =
                    messages::release(tx, &which, now, node, Some(lease_ms), &mut noted.arrivals)
                        .await?;
                let forget = format!("DELETE FROM nodes WHERE heartbeat_at < {DB_NOW} - $1");
                sql::execute(tx, &forget, &[&lease_ms]).await?;
                Ok(released)
            })
            .await
    }

    async fn leave(&self) -> Result<u64> {
        let now = SystemClock.now_ms();
        let released = self
            .writes
            .run(async |tx, noted| {
                let node = self.node();
                let mine = "state = 'active' AND claimed_by = $2";
                let released =
                    messages::release(tx, mine, now, node, None, &mut noted.arrivals).await?;
                sql::execute(tx, "DELETE FROM nodes WHERE id = $1", &[&node]).await?;
                Ok(released)
            })
            .await?;
        self.leaving.send_replace(true);
        Ok(released)
    }

    async fn nodes(&self, lease: Duration) -> Result<Vec<NodeInfo>> {
        let client = self.client().await?;
        let lease_ms = lease.as_millis() as i64;
        let leader: Option<String> = sql::query_opt(
            &client,
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
               AND l.classid = $1::int8::oid AND l.objid = (hashtext($2)::int8 & 4294967295)::oid",
            &[&i64::from(LEADER_LOCK), &self.writes.channel.schema],
        )
        .await?
        .map(|r| r.try_get::<_, String>(0))
        .transpose()?
        .map(|name| name.trim_start_matches("qstash:").to_string());
        let sql = format!(
            "SELECT n.id, n.address, n.started_at, n.heartbeat_at,
                (SELECT COUNT(*) FROM messages m WHERE m.state = 'active' AND m.claimed_by = n.id)
             FROM nodes n WHERE n.heartbeat_at >= {DB_NOW} - $1 ORDER BY n.started_at, n.id"
        );
        sql::query(&client, &sql, &[&lease_ms])
            .await?
            .iter()
            .map(|r| {
                let id: String = r.try_get(0)?;
                Ok(NodeInfo {
                    leader: leader.as_deref() == Some(id.as_str()),
                    id,
                    address: r.try_get(1)?,
                    started_at: r.try_get(2)?,
                    heartbeat_at: r.try_get(3)?,
                    claims: r.try_get::<_, i64>(4)? as u64,
                })
            })
            .collect()
    }

    async fn inherited_claims(&self, term_started: Millis) -> Result<InheritedClaims> {
        // A claim sets updated_at to the claiming node's clock, which is
        // the clock `term_started` was read from.
        let rows = sql::query(
            &self.client().await?,
            "SELECT user_id, flow_control_key, COUNT(*) FROM messages
             WHERE state = 'active' AND (queue_name IS NOT NULL OR flow_control_key IS NOT NULL)
               AND NOT (claimed_by IS NOT DISTINCT FROM $1 AND updated_at >= $2)
             GROUP BY user_id, flow_control_key",
            &[&self.node(), &term_started],
        )
        .await?;
        let mut claims = InheritedClaims::default();
        let mut users: std::collections::BTreeMap<String, u32> = Default::default();
        for r in &rows {
            let (user, key, n): (String, Option<String>, i64) =
                (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
            *users.entry(user.clone()).or_default() += n as u32;
            if let Some(key) = key {
                claims.keys.push((user, key, n as u32));
            }
        }
        claims.users = users.into_iter().collect();
        Ok(claims)
    }
}
