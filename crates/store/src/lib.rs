//! Durable storage behind one trait, [`Store`], with two backends: embedded
//! SQLite ([`sqlite::SqliteStore`], the default) and PostgreSQL. Every write
//! is committed before the call returns, and concurrent writes share one
//! commit (group commit).
//!
//! The values that cross this boundary (messages, outcomes, filters, gate
//! views, schedules) live in `qstash-core`; they are re-exported here so a
//! backend reads as one module. The API only reads through [`Reads`], a
//! read-only facade; every write goes through the engine.

mod announce;
mod cluster;
mod error;
mod meter;
pub mod postgres;
pub mod rows;
pub mod sqlite;
pub mod workflow;

pub use announce::{Announcer, Listener};
pub use cluster::{Cluster, InheritedClaims};
pub use error::{Result, StoreError};
pub use workflow::{Appended, EndIf, Ended, Failing, Resume, RunPage, Workflows, RUN_SCAN_BUDGET};

pub use qstash_core::dlq::{
    DlqCursor, DlqDeleted, DlqEntry, DlqFilter, DlqOrder, DlqPage, DlqQuery, DlqRetry,
};
pub use qstash_core::flow_control::{FlowKey, FlowKeyChange};
pub use qstash_core::gate::{
    Candidate, GateClaim, GateConfig, GateLook, GateRef, GateSnapshot, GateView,
};
pub use qstash_core::live::{LiveCounts, LiveCursor, LivePage};
pub use qstash_core::log::{LogCursor, LogEntry, LogFilter, LogPage};
pub use qstash_core::message::{
    Arrival, CancelRequest, CancelResult, Inserted, MessageFilter, NewMessage, PurgeCounts,
};
pub use qstash_core::outcome::{AttemptResponse, Outcome, OutcomeKind};
pub use qstash_core::queue::QueueInfo;
pub use qstash_core::schedule::{CatchUp, DueCursor, DueSchedule, ScheduleFire, ScheduleInfo};
pub use qstash_core::url_group::UrlGroup;

use async_trait::async_trait;
use qstash_core::clock::Millis;
use qstash_core::schedule::Schedule;
use qstash_core::signing::SigningKeys;
use qstash_core::url_group::{Endpoint, EndpointRef};
use qstash_core::Message;

/// What the API may read: everything a `GET` answers. No method here
/// changes anything.
#[async_trait]
pub trait Reads: Send + Sync {
    /// A live (pending or in-flight) message of `user_id`.
    async fn get_message(&self, user_id: &str, id: &str) -> Result<Option<Message>>;

    async fn url_group(&self, user_id: &str, name: &str) -> Result<Option<UrlGroup>>;
    async fn url_groups(&self, user_id: &str) -> Result<Vec<UrlGroup>>;
    /// The default headers of a URL group (`PATCH /v2/topics/{name}`), in
    /// the order they were set; empty when none or no such group.
    async fn url_group_headers(&self, user_id: &str, name: &str) -> Result<Vec<(String, String)>>;

    async fn queue(&self, user_id: &str, name: &str) -> Result<Option<QueueInfo>>;
    async fn queues(&self, user_id: &str) -> Result<Vec<QueueInfo>>;

    /// The key and how many messages wait on it.
    async fn flow_key(&self, user_id: &str, key: &str) -> Result<Option<(FlowKey, u64)>>;
    async fn flow_keys(&self, user_id: &str) -> Result<Vec<(FlowKey, u64)>>;

    /// A page of the user's log, newest first, starting after `cursor`.
    async fn list_logs(
        &self,
        user_id: &str,
        filter: LogFilter,
        cursor: Option<LogCursor>,
        count: usize,
    ) -> Result<LogPage>;

    /// A page of the user's DLQ.
    async fn list_dlq(&self, user_id: &str, query: DlqQuery) -> Result<DlqPage>;
    async fn get_dlq(&self, user_id: &str, dlq_id: &str) -> Result<Option<DlqEntry>>;

    async fn get_schedule(&self, user_id: &str, id: &str) -> Result<Option<ScheduleInfo>>;
    /// The user's schedules, oldest first.
    async fn list_schedules(&self, user_id: &str) -> Result<Vec<ScheduleInfo>>;

    // --- The console's reads (issue 16: web console) ---

    /// A page of the user's live messages (pending or in flight) matching
    /// `filter`, newest first, after `cursor`. Walks an index of live
    /// messages only, never the finished ones.
    async fn list_live_messages(
        &self,
        user_id: &str,
        filter: MessageFilter,
        cursor: Option<LiveCursor>,
        count: usize,
    ) -> Result<LivePage>;

    /// How many of the user's live messages match `filter`, by kind, as of
    /// `now`; stops counting past `cap` (then `capped` is set).
    async fn count_live_messages(
        &self,
        user_id: &str,
        filter: MessageFilter,
        now: Millis,
        cap: u64,
    ) -> Result<LiveCounts>;

    /// How many entries the user's DLQ holds, counting at most `cap` + 1.
    async fn count_dlq(&self, user_id: &str, cap: u64) -> Result<u64>;
}

/// The whole store: the reads, the engine's own reads and every write.
///
/// Every method that commits new pending messages (publish, callbacks in
/// an outcome, a retry, a DLQ retry, a schedule fire) tells the store's
/// [`Announcer`] after the commit, so the scheduler and the gate hear of
/// every message whatever path created it.
#[async_trait]
pub trait Store: Reads + 'static {
    /// Where committed arrivals are announced.
    fn announcer(&self) -> &Announcer;

    /// Upstash Workflow runs and their step logs (issue 14).
    fn workflows(&self) -> &dyn Workflows;

    /// Proves the store takes a write now, for readiness probes (`GET
    /// /readyz`): SQLite commits a write through its writer thread and
    /// writes and syncs a file in the data directory (a full disk fails
    /// there even when the WAL has room); PostgreSQL commits a transaction
    /// that takes a transaction id, so its commit record is flushed.
    async fn probe(&self) -> Result<()>;

    /// The cluster this store is shared by, when several nodes can share
    /// it (PostgreSQL); None for an embedded store.
    fn cluster(&self) -> Option<&dyn Cluster> {
        None
    }

    /// Commits new messages (and their CREATED log entries) atomically,
    /// answering the id of an earlier message for each deduplicated one.
    async fn insert_messages(
        &self,
        messages: Vec<NewMessage>,
        now: Millis,
    ) -> Result<Vec<Inserted>>;

    /// When the earliest plain pending message is due.
    async fn next_due_at(&self) -> Result<Option<Millis>>;

    /// Takes up to `limit` plain messages due by `now`, earliest first,
    /// and marks them in flight so no other claim returns them.
    async fn claim_due(&self, now: Millis, limit: usize) -> Result<Vec<Message>>;

    /// Records the results of delivery attempts.
    async fn record_outcomes(&self, outcomes: Vec<Outcome>) -> Result<()>;

    /// Cancels live messages; in-flight ones finish their attempt but are
    /// never retried.
    async fn cancel(
        &self,
        user_id: &str,
        request: CancelRequest,
        now: Millis,
    ) -> Result<CancelResult>;

    /// Returns in-flight messages of a previous run to pending, so they are
    /// delivered again (at-least-once). Called once at start.
    async fn release_in_flight(&self, now: Millis) -> Result<u64>;

    /// The user's signing keys, created from `initial` the first time.
    async fn signing_keys(&self, user_id: &str, initial: &SigningKeys) -> Result<SigningKeys>;

    /// Next becomes current and `new_next` becomes next.
    async fn rotate_signing_keys(
        &self,
        user_id: &str,
        initial: &SigningKeys,
        new_next: &str,
    ) -> Result<SigningKeys>;

    /// Drops expired dedup entries, and finished messages and log entries
    /// older than `retain_before`.
    async fn purge(&self, now: Millis, retain_before: Millis) -> Result<PurgeCounts>;

    // --- URL groups, queues and flow control ---

    /// Creates the group if missing; adds or updates endpoints.
    async fn upsert_endpoints(
        &self,
        user_id: &str,
        name: &str,
        endpoints: Vec<Endpoint>,
        now: Millis,
    ) -> Result<()>;
    /// False when the group does not exist. Removing the last endpoint
    /// deletes the group.
    async fn remove_endpoints(
        &self,
        user_id: &str,
        name: &str,
        endpoints: Vec<EndpointRef>,
        now: Millis,
    ) -> Result<bool>;
    async fn delete_url_group(&self, user_id: &str, name: &str) -> Result<bool>;

    async fn upsert_queue(
        &self,
        user_id: &str,
        name: &str,
        parallelism: u32,
        paused: bool,
        now: Millis,
    ) -> Result<()>;
    /// False when the queue does not exist.
    async fn set_queue_paused(
        &self,
        user_id: &str,
        name: &str,
        paused: bool,
        now: Millis,
    ) -> Result<bool>;
    /// Deletes the queue and cancels its undelivered messages; None when
    /// it does not exist.
    async fn delete_queue(&self, user_id: &str, name: &str, now: Millis) -> Result<Option<u64>>;

    /// Applies `change`, creating the key if missing.
    async fn change_flow_key(
        &self,
        user_id: &str,
        key: &str,
        change: FlowKeyChange,
        now: Millis,
    ) -> Result<FlowKey>;

    /// Every queue and key, for the gate to start from.
    async fn gate_snapshot(&self, now: Millis) -> Result<GateSnapshot>;
    /// The head of each gate's line, in one read.
    async fn gate_views(&self, looks: Vec<GateLook>) -> Result<Vec<GateView>>;
    /// Marks the claimed messages in flight (skipping any no longer
    /// waiting, such as cancelled ones) and records rate starts.
    async fn claim_gated(&self, claims: Vec<GateClaim>, now: Millis) -> Result<Vec<Message>>;

    // --- The dead-letter queue and history ---

    /// Deletes the entries `list_dlq` would answer for `query`, atomically.
    async fn delete_dlq(&self, user_id: &str, query: DlqQuery) -> Result<DlqDeleted>;

    /// Replaces DLQ entries by new messages, each in the same commit as
    /// the removal of its entry; an entry already gone creates nothing
    /// (its answer is None).
    async fn retry_dlq(
        &self,
        user_id: &str,
        retries: Vec<DlqRetry>,
        now: Millis,
    ) -> Result<Vec<Option<String>>>;

    /// Drops DLQ entries older than `dlq_before`, and log keys and failed
    /// messages (no longer in the DLQ) older than `log_before`.
    async fn purge_history(&self, log_before: Millis, dlq_before: Millis) -> Result<u64>;

    // --- Schedules ---

    /// Creates a schedule, or replaces every setting of the user's schedule
    /// with the same id (its creation time, paused flag and last fire stay).
    /// Answers the stored schedule.
    async fn put_schedule(&self, schedule: Schedule, now: Millis) -> Result<Schedule>;

    /// Answers whether there was such a schedule.
    async fn delete_schedule(&self, user_id: &str, id: &str) -> Result<bool>;

    /// Pauses, or resumes from the first tick after `now`; None if there is
    /// no such schedule.
    async fn set_schedule_paused(
        &self,
        user_id: &str,
        id: &str,
        paused: bool,
        now: Millis,
    ) -> Result<Option<Schedule>>;

    /// When the earliest unpaused schedule fires next.
    async fn next_schedule_at(&self) -> Result<Option<Millis>>;

    /// Up to `limit` unpaused schedules whose tick is due by `now`, in
    /// (tick, user, id) order, after `after` if given.
    async fn due_schedules(
        &self,
        now: Millis,
        after: Option<DueCursor>,
        limit: usize,
    ) -> Result<Vec<DueSchedule>>;

    /// Commits one tick (its messages and the schedule's next tick) in one
    /// job, if the schedule is unchanged since it was read; answers whether
    /// it fired.
    async fn fire_schedule(&self, fire: ScheduleFire) -> Result<bool>;

    /// At start: ticks missed while the server was down fire once if the
    /// latest is at most `window` old, else they are skipped.
    async fn catch_up_schedules(&self, now: Millis, window: Millis) -> Result<CatchUp>;

    // --- URL group default headers (issue 13; a table of their own) ---

    /// Replaces a URL group's default headers; false when the group does
    /// not exist. Deleting the group drops them.
    async fn set_url_group_headers(
        &self,
        user_id: &str,
        name: &str,
        headers: Vec<(String, String)>,
    ) -> Result<bool>;

    // --- Per-user delivery slots (issue 13, --max-in-flight-per-user) ---

    /// Like [`claim_due`](Store::claim_due), but at most `room` messages of
    /// each listed user (users not listed get none), `limit` in all,
    /// earliest first.
    async fn claim_due_of_users(
        &self,
        now: Millis,
        rooms: Vec<(String, usize)>,
        limit: usize,
    ) -> Result<Vec<Message>>;

    /// When the earliest pending plain message of one of `users` is due.
    async fn next_due_of_users(&self, users: Vec<String>) -> Result<Option<Millis>>;
}
