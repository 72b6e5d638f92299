//! The PostgreSQL store: the same tables and indexes as the SQLite one,
//! publishes and outcomes merged into group commits (`batch.rs`), every
//! other write in its own transaction, reads on pooled connections.
//!
//! `qstash serve --database-url postgres://user@host/db` picks it. Tables
//! go into the first schema of the connection's `search_path` (created if
//! missing), so one database can hold several independent servers.

mod batch;
mod cluster;
mod connect;
pub mod dlq;
mod events;
pub mod gates;
mod listen;
pub mod live;
pub mod logs;
pub mod messages;
mod migrations;
mod safety;
mod schedules;
pub mod sql;
mod workflow;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::Pool;
use qstash_core::clock::Millis;
use qstash_core::cluster::Signal;
use qstash_core::live::{LiveCounts, LiveCursor, LivePage};
use qstash_core::message::MessageFilter;
use qstash_core::schedule::Schedule;
use qstash_core::signing::SigningKeys;
use qstash_core::url_group::{Endpoint, EndpointRef};
use qstash_core::Message;
use tokio::sync::watch;
use tokio_postgres::NoTls;

use crate::{
    Announcer, CancelRequest, CancelResult, CatchUp, DlqDeleted, DlqEntry, DlqPage, DlqQuery,
    DlqRetry, DueCursor, DueSchedule, FlowKey, FlowKeyChange, GateClaim, GateLook, GateSnapshot,
    GateView, Inserted, LogCursor, LogFilter, LogPage, NewMessage, Outcome, PurgeCounts, QueueInfo,
    Reads, Result, ScheduleFire, ScheduleInfo, Store, StoreError, UrlGroup,
};
use batch::{Batcher, Writes};
pub use connect::masked;
use listen::Channel;

/// How a PostgreSQL store is set up.
#[derive(Debug, Clone)]
pub struct PgOptions {
    pub url: String,
    /// Most connections the server opens (reads, writers, claims).
    pub pool_size: usize,
    /// Group-commit writers running at once.
    pub writers: usize,
    /// This node's id in a cluster: its claims carry it. Keep it across
    /// restarts (the binary keeps it in its data directory) so that a
    /// restarted node takes back its own claims at once.
    pub node_id: String,
}

impl PgOptions {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            pool_size: 16,
            writers: 2,
            node_id: qstash_core::ids::node_id(),
        }
    }
}

/// How long the first connection may take before start-up gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct PgStore {
    pool: Pool,
    batcher: Batcher,
    writes: Writes,
    announcer: Arc<Announcer>,
    leader: watch::Receiver<bool>,
    leaving: watch::Sender<bool>,
}

impl PgStore {
    /// Connects, applies pending migrations and starts the writers. An
    /// unreachable database is an error naming the URL (password masked).
    pub async fn connect(options: &PgOptions) -> Result<Self> {
        let mut config = connect::config(&options.url)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let url = masked(&options.url);
        let (mut client, connection) = config.connect(NoTls).await.map_err(|e| {
            StoreError::Unavailable(format!("cannot connect to {url}: {}", StoreError::from(e)))
        })?;
        let driver = tokio::spawn(connection);
        let (schema, version) = migrations::migrate(&mut client)
            .await
            .map_err(|e| StoreError::Unavailable(format!("migrating {url}: {e}")))?;
        drop(client);
        let _ = driver.await;
        tracing::info!(database = %url, schema, schema_version = version, node = %options.node_id, "store: PostgreSQL ready");
        let pool = connect::pool(config.clone(), options.pool_size.max(options.writers + 2))?;
        let announcer = Arc::new(Announcer::default());
        let channel = Arc::new(Channel::new(&schema, &options.node_id));
        let (leader_tx, leader) = watch::channel(false);
        let (leaving, leaving_rx) = watch::channel(false);
        tokio::spawn(listen::run(
            config,
            channel.clone(),
            announcer.clone(),
            leader_tx,
            leaving_rx,
        ));
        let writes = Writes {
            pool: pool.clone(),
            announcer: announcer.clone(),
            channel,
        };
        Ok(Self {
            batcher: Batcher::start(writes.clone(), options.writers),
            writes,
            pool,
            announcer,
            leader,
            leaving,
        })
    }

    fn node(&self) -> &str {
        &self.writes.channel.node
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        Ok(self.pool.get().await?)
    }
}

fn queue_changed(user_id: &str, name: &str) -> Signal {
    Signal::QueueChanged {
        user_id: user_id.to_string(),
        name: name.to_string(),
    }
}

fn schedule_due(s: &Schedule) -> Option<Signal> {
    s.next_fire.map(|at| Signal::ScheduleDue { at })
}

#[async_trait]
impl Reads for PgStore {
    async fn get_message(&self, user_id: &str, id: &str) -> Result<Option<Message>> {
        let m = messages::get(&self.client().await?, id).await?;
        Ok(m.filter(|m| m.user_id == user_id && m.state.is_live()))
    }

    async fn url_group(&self, user_id: &str, name: &str) -> Result<Option<UrlGroup>> {
        gates::url_group(&self.client().await?, user_id, name).await
    }

    async fn url_groups(&self, user_id: &str) -> Result<Vec<UrlGroup>> {
        gates::url_groups(&self.client().await?, user_id).await
    }

    async fn url_group_headers(&self, user_id: &str, name: &str) -> Result<Vec<(String, String)>> {
        safety::url_group_headers(&self.client().await?, user_id, name).await
    }

    async fn queue(&self, user_id: &str, name: &str) -> Result<Option<QueueInfo>> {
        gates::queue(&self.client().await?, user_id, name).await
    }

    async fn queues(&self, user_id: &str) -> Result<Vec<QueueInfo>> {
        gates::queues(&self.client().await?, user_id).await
    }

    async fn flow_key(&self, user_id: &str, key: &str) -> Result<Option<(FlowKey, u64)>> {
        gates::flow_key(&self.client().await?, user_id, key).await
    }

    async fn flow_keys(&self, user_id: &str) -> Result<Vec<(FlowKey, u64)>> {
        gates::flow_keys(&self.client().await?, user_id).await
    }

    async fn list_logs(
        &self,
        user_id: &str,
        filter: LogFilter,
        cursor: Option<LogCursor>,
        count: usize,
    ) -> Result<LogPage> {
        logs::list(&self.client().await?, user_id, &filter, cursor, count).await
    }

    async fn list_dlq(&self, user_id: &str, query: DlqQuery) -> Result<DlqPage> {
        dlq::list(&self.client().await?, user_id, &query).await
    }

    async fn get_dlq(&self, user_id: &str, dlq_id: &str) -> Result<Option<DlqEntry>> {
        dlq::get(&self.client().await?, user_id, dlq_id).await
    }

    async fn get_schedule(&self, user_id: &str, id: &str) -> Result<Option<ScheduleInfo>> {
        let client = self.client().await?;
        match schedules::get(&client, user_id, id).await? {
            Some(d) => Ok(Some(schedules::info(&client, d.schedule).await?)),
            None => Ok(None),
        }
    }

    async fn list_schedules(&self, user_id: &str) -> Result<Vec<ScheduleInfo>> {
        schedules::list(&self.client().await?, user_id).await
    }

    // --- The console's reads (issue 16: web console) ---

    async fn list_live_messages(
        &self,
        user_id: &str,
        filter: MessageFilter,
        cursor: Option<LiveCursor>,
        count: usize,
    ) -> Result<LivePage> {
        live::list(&self.client().await?, user_id, &filter, cursor, count).await
    }

    async fn count_live_messages(
        &self,
        user_id: &str,
        filter: MessageFilter,
        now: Millis,
        cap: u64,
    ) -> Result<LiveCounts> {
        live::count(&self.client().await?, user_id, &filter, now, cap).await
    }

    async fn count_dlq(&self, user_id: &str, cap: u64) -> Result<u64> {
        live::count_dlq(&self.client().await?, user_id, cap).await
    }
}

#[async_trait]
impl Store for PgStore {
    fn announcer(&self) -> &Announcer {
        &self.announcer
    }

    fn workflows(&self) -> &dyn crate::Workflows {
        self
    }

    fn cluster(&self) -> Option<&dyn crate::Cluster> {
        Some(self)
    }

    async fn insert_messages(
        &self,
        messages: Vec<NewMessage>,
        now: Millis,
    ) -> Result<Vec<Inserted>> {
        self.batcher.insert(messages, now).await
    }

    async fn next_due_at(&self) -> Result<Option<Millis>> {
        Ok(
            sql::query_one(&self.client().await?, messages::NEXT_DUE, &[])
                .await?
                .try_get(0)?,
        )
    }

    async fn claim_due(&self, now: Millis, limit: usize) -> Result<Vec<Message>> {
        self.writes
            .run(async |tx, noted| {
                messages::claim_due(tx, now, limit, self.node(), &mut noted.events).await
            })
            .await
    }

    async fn record_outcomes(&self, outcomes: Vec<Outcome>) -> Result<()> {
        self.batcher.outcomes(outcomes).await
    }

    async fn cancel(
        &self,
        user_id: &str,
        request: CancelRequest,
        now: Millis,
    ) -> Result<CancelResult> {
        self.writes
            .run(async |tx, noted| {
                let result =
                    messages::cancel(tx, user_id, &request, now, &mut noted.events).await?;
                if result.cancelled > 0 {
                    noted.signals.push(Signal::Cancelled {
                        user_id: user_id.to_string(),
                    });
                }
                Ok(result)
            })
            .await
    }

    async fn probe(&self) -> Result<()> {
        // One statement, its own transaction: taking a transaction id makes
        // it a write that commits. (A BEGIN ... COMMIT batch whose middle
        // failed, on a standby say, would hand the pool a connection stuck
        // in an aborted transaction.)
        let client = self.client().await?;
        client.batch_execute("SELECT pg_current_xact_id()").await?;
        Ok(())
    }

    async fn release_in_flight(&self, now: Millis) -> Result<u64> {
        self.writes
            .run(async |tx, noted| {
                messages::release_in_flight(tx, now, self.node(), &mut noted.arrivals).await
            })
            .await
    }

    async fn signing_keys(&self, user_id: &str, initial: &SigningKeys) -> Result<SigningKeys> {
        let client = self.client().await?;
        sql::execute(
            &client,
            "INSERT INTO signing_keys (user_id, current, next) VALUES ($1, $2, $3)
             ON CONFLICT (user_id) DO NOTHING",
            &[&user_id, &initial.current, &initial.next],
        )
        .await?;
        let row = sql::query_one(
            &client,
            "SELECT current, next FROM signing_keys WHERE user_id = $1",
            &[&user_id],
        )
        .await?;
        Ok(SigningKeys {
            current: row.try_get(0)?,
            next: row.try_get(1)?,
        })
    }

    async fn rotate_signing_keys(
        &self,
        user_id: &str,
        initial: &SigningKeys,
        new_next: &str,
    ) -> Result<SigningKeys> {
        self.signing_keys(user_id, initial).await?;
        self.writes
            .run(async |tx, noted| {
                let row = sql::query_one(
                    tx,
                    "UPDATE signing_keys SET current = next, next = $2 WHERE user_id = $1
                     RETURNING current, next",
                    &[&user_id, &new_next],
                )
                .await?;
                noted.signals.push(Signal::KeysRotated {
                    user_id: user_id.to_string(),
                });
                Ok(SigningKeys {
                    current: row.try_get(0)?,
                    next: row.try_get(1)?,
                })
            })
            .await
    }

    async fn purge(&self, now: Millis, retain_before: Millis) -> Result<PurgeCounts> {
        messages::purge(&self.client().await?, now, retain_before).await
    }

    async fn upsert_endpoints(
        &self,
        user_id: &str,
        name: &str,
        endpoints: Vec<Endpoint>,
        now: Millis,
    ) -> Result<()> {
        self.writes
            .run(async |tx, _| {
                gates::upsert_group_endpoints(tx, user_id, name, endpoints, now).await
            })
            .await
    }

    async fn remove_endpoints(
        &self,
        user_id: &str,
        name: &str,
        endpoints: Vec<EndpointRef>,
        now: Millis,
    ) -> Result<bool> {
        self.writes
            .run(async |tx, _| {
                gates::remove_group_endpoints(tx, user_id, name, &endpoints, now).await
            })
            .await
    }

    async fn delete_url_group(&self, user_id: &str, name: &str) -> Result<bool> {
        gates::delete_group(&self.client().await?, user_id, name).await
    }

    async fn upsert_queue(
        &self,
        user_id: &str,
        name: &str,
        parallelism: u32,
        paused: bool,
        now: Millis,
    ) -> Result<()> {
        self.writes
            .run(async |tx, noted| {
                gates::upsert_queue(tx, user_id, name, parallelism, paused, now).await?;
                noted.signals.push(queue_changed(user_id, name));
                Ok(())
            })
            .await
    }

    async fn set_queue_paused(
        &self,
        user_id: &str,
        name: &str,
        paused: bool,
        now: Millis,
    ) -> Result<bool> {
        self.writes
            .run(async |tx, noted| {
                let found = gates::set_queue_paused(tx, user_id, name, paused, now).await?;
                noted.signals.push(queue_changed(user_id, name));
                Ok(found)
            })
            .await
    }

    async fn delete_queue(&self, user_id: &str, name: &str, now: Millis) -> Result<Option<u64>> {
        self.writes
            .run(async |tx, noted| {
                let cancelled =
                    gates::delete_queue(tx, user_id, name, now, &mut noted.events).await?;
                noted.signals.push(queue_changed(user_id, name));
                Ok(cancelled)
            })
            .await
    }

    async fn change_flow_key(
        &self,
        user_id: &str,
        key: &str,
        change: FlowKeyChange,
        now: Millis,
    ) -> Result<FlowKey> {
        let reset = matches!(change, FlowKeyChange::Pin { .. } | FlowKeyChange::ResetRate);
        self.writes
            .run(async |tx, noted| {
                let k = gates::change_flow_key(tx, user_id, key, &change, now).await?;
                noted.signals.push(Signal::KeyChanged {
                    user_id: user_id.to_string(),
                    key: key.to_string(),
                    reset_at: reset.then_some(now),
                });
                Ok(k)
            })
            .await
    }

    async fn gate_snapshot(&self, now: Millis) -> Result<GateSnapshot> {
        gates::gate_snapshot(&self.client().await?, now).await
    }

    async fn gate_views(&self, looks: Vec<GateLook>) -> Result<Vec<GateView>> {
        gates::gate_views(&self.client().await?, &looks).await
    }

    async fn claim_gated(&self, claims: Vec<GateClaim>, now: Millis) -> Result<Vec<Message>> {
        self.writes
            .run(async |tx, noted| {
                gates::claim_gated(tx, &claims, now, self.node(), &mut noted.events).await
            })
            .await
    }

    async fn delete_dlq(&self, user_id: &str, query: DlqQuery) -> Result<DlqDeleted> {
        self.writes
            .run(async |tx, _| dlq::delete(tx, user_id, &query).await)
            .await
    }

    async fn retry_dlq(
        &self,
        user_id: &str,
        retries: Vec<DlqRetry>,
        now: Millis,
    ) -> Result<Vec<Option<String>>> {
        self.writes
            .run(async |tx, noted| {
                let node = self.node();
                dlq::retry(
                    tx,
                    user_id,
                    &retries,
                    now,
                    node,
                    &mut noted.events,
                    &mut noted.arrivals,
                )
                .await
            })
            .await
    }

    async fn purge_history(&self, log_before: Millis, dlq_before: Millis) -> Result<u64> {
        let client = self.client().await?;
        Ok(logs::purge_keys(&client, log_before).await?
            + dlq::purge(&client, log_before, dlq_before).await?)
    }

    async fn put_schedule(&self, schedule: Schedule, now: Millis) -> Result<Schedule> {
        self.writes
            .run(async |tx, noted| {
                let stored = schedules::put(tx, &schedule, now).await?;
                noted.signals.extend(schedule_due(&stored));
                Ok(stored)
            })
            .await
    }

    async fn delete_schedule(&self, user_id: &str, id: &str) -> Result<bool> {
        schedules::delete(&self.client().await?, user_id, id).await
    }

    async fn set_schedule_paused(
        &self,
        user_id: &str,
        id: &str,
        paused: bool,
        now: Millis,
    ) -> Result<Option<Schedule>> {
        self.writes
            .run(async |tx, noted| {
                let stored = schedules::set_paused(tx, user_id, id, paused, now).await?;
                noted.signals.extend(stored.as_ref().and_then(schedule_due));
                Ok(stored)
            })
            .await
    }

    async fn next_schedule_at(&self) -> Result<Option<Millis>> {
        schedules::next_fire_at(&self.client().await?).await
    }

    async fn due_schedules(
        &self,
        now: Millis,
        after: Option<DueCursor>,
        limit: usize,
    ) -> Result<Vec<DueSchedule>> {
        schedules::due(&self.client().await?, now, after.as_ref(), limit).await
    }

    async fn fire_schedule(&self, fire: ScheduleFire) -> Result<bool> {
        self.writes
            .run(async |tx, noted| {
                let node = self.node();
                schedules::fire(tx, &fire, node, &mut noted.events, &mut noted.arrivals).await
            })
            .await
    }

    async fn catch_up_schedules(&self, now: Millis, window: Millis) -> Result<CatchUp> {
        self.writes
            .run(async |tx, _| schedules::catch_up(tx, now, window).await)
            .await
    }

    async fn set_url_group_headers(
        &self,
        user_id: &str,
        name: &str,
        headers: Vec<(String, String)>,
    ) -> Result<bool> {
        safety::set_url_group_headers(&self.client().await?, user_id, name, &headers).await
    }

    async fn claim_due_of_users(
        &self,
        now: Millis,
        rooms: Vec<(String, usize)>,
        limit: usize,
    ) -> Result<Vec<Message>> {
        self.writes
            .run(async |tx, noted| {
                let node = self.node();
                safety::claim_due_of_users(tx, now, &rooms, limit, node, &mut noted.events).await
            })
            .await
    }

    async fn next_due_of_users(&self, users: Vec<String>) -> Result<Option<Millis>> {
        safety::next_due_of_users(&self.client().await?, &users).await
    }
}
